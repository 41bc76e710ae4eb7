"""Every public package lists its names, sorted and complete."""

from __future__ import annotations
import __future__

import importlib
import types

import pytest

PACKAGES = [
    "trackwrap.approvals",
    "trackwrap.cli",
    "trackwrap.collector",
    "trackwrap.config",
    "trackwrap.crypto",
    "trackwrap.errors",
    "trackwrap.inspectors",
    "trackwrap.ledger",
    "trackwrap.manifest",
    "trackwrap.policy",
    "trackwrap.relay",
    "trackwrap.session",
    "trackwrap.sync",
]


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_sorted_and_complete(package: str) -> None:
    module = importlib.import_module(package)
    names = module.__all__
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical.
    assert names == sorted(
        names, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n)
    )
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType | __future__._Feature)
    }
    assert public == set(names)


def test_pure_layers_do_not_import_yaml() -> None:
    import sys

    for package in ("trackwrap.policy", "trackwrap.inspectors"):
        module = importlib.import_module(package)
        for name in list(sys.modules):
            if name.startswith(package + "."):
                source = sys.modules[name].__file__ or ""
                with open(source, encoding="utf-8") as handle:
                    text = handle.read()
                for banned in (
                    "import yaml",
                    "import os",
                    "open(",
                    "datetime.now",
                    "os.environ",
                    "getenv",
                ):
                    assert banned not in text, f"{name} uses {banned}"
        assert module.__all__
