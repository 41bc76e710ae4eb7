"""Imports point down only (DESIGN.md): pure layers stay pure, the relay knows no policy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "trackwrap"

# package -> trackwrap packages it must never import
FORBIDDEN = {
    "policy": {"relay", "ledger", "session", "cli", "config", "crypto", "inspectors"},
    "inspectors": {"relay", "ledger", "session", "cli", "config", "crypto"},
    "relay": {"policy", "inspectors", "ledger", "session", "cli", "config", "crypto"},
    "ledger": {"relay", "policy", "inspectors", "session", "cli", "config"},
    "crypto": {"relay", "policy", "inspectors", "ledger", "session", "cli", "config"},
    "config": {"relay", "ledger", "session", "cli", "crypto"},
    "session": {"cli"},
    "manifest": {"relay", "ledger", "session", "cli"},
    "approvals": {"relay", "session", "cli", "policy", "inspectors"},
    "sync": {"relay", "session", "cli", "policy", "inspectors", "approvals"},
    "collector": {"relay", "session", "cli", "sync"},
}
# third-party libraries and their one home
HOMES = {"typer": {"cli"}, "rich": {"cli"}, "cryptography": {"crypto"}, "keyring": {"crypto"},
         "sqlite3": {"ledger", "collector"}, "yaml": {"config"}, "mcp": {"cli"},
         "httpx": {"approvals", "sync"}, "starlette": {"collector"}, "uvicorn": {"collector"},
         "psycopg": {"collector"}}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def modules() -> list[tuple[str, Path]]:
    return [(p.relative_to(PACKAGE).parts[0], p) for p in sorted(PACKAGE.glob("*/*.py"))]


@pytest.mark.parametrize(("package", "path"), modules(), ids=str)
def test_imports_point_down_and_libraries_stay_home(package, path):
    for name in imports(path):
        parts = name.split(".")
        if parts[0] == "trackwrap" and len(parts) > 1:
            assert parts[1] not in FORBIDDEN.get(package, set()), f"{path} imports {name}"
        home = HOMES.get(parts[0])
        if home is not None:
            assert package in home, f"{path} imports {name} outside {sorted(home)}"


def test_the_wrapper_path_imports_no_cli_toolkit_or_sdk():
    """The wrapper (and what it imports to build its gate) stays clear of typer, rich and mcp:
    an IDE starts many wrappers, each must answer its first message fast."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import trackwrap.cli._wrap, trackwrap.cli._build, trackwrap.cli._approval_wiring\n"
        "import trackwrap.cli._collector_wiring\n"
        "import trackwrap.session, trackwrap.approvals, trackwrap.relay, trackwrap.sync\n"
        "heavy = sorted({'typer', 'rich', 'mcp', 'httpx'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
