from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


_PG_SH = Path(__file__).resolve().parents[1] / "scripts" / "pg.sh"
_PG_MISSING = 3  # scripts/pg.sh's exit code when no PostgreSQL server binaries are installed


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster for this test session; yields its superuser DSN.

    scripts/pg.sh creates and starts it on a free 127.0.0.1 port (as the `postgres` user when we
    are root), and it is stopped and deleted when the session ends, failed tests or not. Tests
    want ``pg_dsn``, a fresh database of their own, rather than this.
    """
    # Not tmp_path_factory: as root its base (/tmp/pytest-of-root) is 0700, which the `postgres`
    # user cannot enter.
    base = Path(tempfile.mkdtemp(prefix="trackwrap-pg-"))
    try:
        started = subprocess.run(
            ["bash", str(_PG_SH), "start", str(base)],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=180,
        )
    except BaseException:
        subprocess.run(["bash", str(_PG_SH), "stop", str(base)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
        raise
    if started.returncode != 0:
        subprocess.run(["bash", str(_PG_SH), "stop", str(base)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
        if started.returncode == _PG_MISSING:
            pytest.skip(f"PostgreSQL is not installed ({started.stderr.strip()})")
        pytest.fail(f"scripts/pg.sh start failed: {started.stderr.strip()}", pytrace=False)
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        stopped = subprocess.run(
            ["bash", str(_PG_SH), "stop", str(base)], capture_output=True, text=True
        )
        if stopped.returncode != 0:  # keep the cluster's files for a look
            pytest.fail(
                f"scripts/pg.sh stop failed, cluster left in {base}: {stopped.stderr.strip()}",
                pytrace=False,
            )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_dsn(pg_server: str) -> Iterator[str]:
    """A DSN (``postgresql://postgres@127.0.0.1:PORT/test_…``) of a new, empty database for this
    test only, on the session's ``pg_server``; dropped afterwards, open connections or not."""
    import psycopg
    from psycopg import sql

    name = f"test_{secrets.token_hex(6)}"
    with psycopg.connect(pg_server, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlsplit(pg_server)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(pg_server, autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def collector_server(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``collector_server(db, *flags)`` starts ``trackwrap collector serve --db DB`` on a free
    loopback port and returns its :class:`tests._collector.Server`; all are killed at the end."""
    from tests._collector import serve_collectors

    yield from serve_collectors(tmp_path)
