"""Real MCP servers from npm and PyPI, pinned and installed by scripts/setup.sh."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "node_modules" / ".bin"
EVERYTHING = BIN / "mcp-server-everything"
FILESYSTEM = BIN / "mcp-server-filesystem"
SHELL = ROOT / ".peers" / "shell" / "bin" / "mcp-shell-server"
GIT = shutil.which("mcp-server-git", path=str(Path(sys.executable).parent))

requires_peers = pytest.mark.skipif(
    not (EVERYTHING.exists() and FILESYSTEM.exists() and SHELL.exists() and GIT),
    reason="real MCP peers not installed: run scripts/setup.sh",
)
