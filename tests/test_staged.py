"""The staged-content reader on a real git repository."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from trackwrap.config import (
    RealFileSystem,
    StagedReader,
    default_profiles_dir,
    load_server_profiles,
)
from trackwrap.policy import Context, normalize


def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path)}
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=r, check=True, env=env)
    (r / ".env").write_text("STRIPE=sk_live_abc\n")
    (r / "image.bin").write_bytes(b"\x00\x01binary")
    (r / "src").mkdir()
    (r / "src" / "a.py").write_text("print('a')\n")
    return r


def context(r: Path) -> Context:
    from datetime import UTC, datetime

    return Context(workspace=str(r), roots=(), cwd=str(r), home=str(r.parent),
                   now=datetime.now(UTC), fs=RealFileSystem())


def action(kind_tool: str, r: Path, **args: object):
    profiles = load_server_profiles([default_profiles_dir() / "servers"])
    return normalize(server="git", tool=kind_tool, arguments={"repo_path": str(r), **args},
                     profile=profiles["git"])


def test_git_add_reads_the_files_to_be_staged(tmp_path):
    r = repo(tmp_path)
    got = dict(StagedReader()(action("git_add", r, files=[".env", "image.bin", "src"]),
                              context(r)))
    assert got == {".env": "STRIPE=sk_live_abc\n", "src/a.py": "print('a')\n"}


def test_git_commit_reads_the_index(tmp_path):
    r = repo(tmp_path)
    subprocess.run(["git", "add", ".env"], cwd=r, check=True)
    (r / ".env").write_text("changed after staging\n")
    got = dict(StagedReader()(action("git_commit", r, message="x"), context(r)))
    assert got == {".env": "STRIPE=sk_live_abc\n"}
