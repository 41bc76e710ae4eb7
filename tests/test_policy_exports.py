"""Every public package lists its names, sorted and complete."""

from __future__ import annotations

import importlib
import types

import pytest


@pytest.mark.parametrize(
    "package", ["trackwrap.policy", "trackwrap.inspectors", "trackwrap.config"]
)
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
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
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
