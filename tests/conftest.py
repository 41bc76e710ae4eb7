from __future__ import annotations

import os
from pathlib import Path

import pytest

from trackwrap.crypto import SigningKey


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def trackwrap_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own TRACKWRAP_HOME and never touches the OS keyring."""
    home = tmp_path / "trackwrap-home"
    home.mkdir()
    for name in list(os.environ):
        if name.startswith("TRACKWRAP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TRACKWRAP_HOME", str(home))
    monkeypatch.setenv("TRACKWRAP_KEY_BACKEND", "file")
    return home


@pytest.fixture
def key() -> SigningKey:
    """A fresh Ed25519 key for one test."""
    return SigningKey.generate()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Where a test's ledger database goes."""
    return tmp_path / "ledger.db"
