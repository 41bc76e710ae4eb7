"""What a ``git.add`` or ``git.commit`` would put into the repository, read from the workspace.

The secrets inspector is pure; arguments alone hold only file names, so this reader (the I/O
side) hands it the contents: for ``git.add`` the files about to be staged, for ``git.commit``
the blobs already in the index. Binary files (a NUL byte), files over the size cap and files
that cannot be read (git could not stage those either) are left out.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

from trackwrap.policy import Action, Context

__all__ = ["StagedReader"]


class StagedReader:
    def __init__(self, *, max_bytes: int = 1 << 20, max_files: int = 500) -> None:
        self._max = max_bytes
        self._max_files = max_files

    def __call__(self, action: Action, context: Context) -> Iterator[tuple[str, str]]:
        if action.kind == "git.add":
            yield from self._files_to_add(action, context)
        elif action.kind == "git.commit":
            yield from self._index(action, context)

    def _files_to_add(self, action: Action, context: Context) -> Iterator[tuple[str, str]]:
        for arg in action.paths[: self._max_files]:
            if arg.base is None:
                continue  # the repository itself, not a file being added
            base = os.path.expanduser(arg.base) if arg.base else context.cwd
            path = os.path.join(base if os.path.isabs(base) else os.path.join(context.cwd, base),
                                os.path.expanduser(arg.value))
            for file in _walk(path, limit=self._max_files):
                text = _read_text(file, self._max)
                if text is not None:
                    yield os.path.relpath(file, context.workspace), text

    def _index(self, action: Action, context: Context) -> Iterator[tuple[str, str]]:
        repo = next((p.value for p in action.paths if p.base is None), context.workspace)
        names = _git(repo, "diff", "--cached", "--name-only", "-z")
        if names is None:
            return
        for name in names.decode("utf-8", "replace").split("\0")[: self._max_files]:
            if not name:
                continue
            blob = _git(repo, "show", f":{name}")
            if blob is not None and len(blob) <= self._max and b"\0" not in blob:
                yield name, blob.decode("utf-8", "replace")


def _walk(path: str, *, limit: int) -> Iterator[str]:
    if os.path.isfile(path):
        yield path
        return
    count = 0
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            count += 1
            if count > limit:
                return
            yield os.path.join(root, name)


def _read_text(path: str, limit: int) -> str | None:
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError:
        return None
    if len(data) > limit or b"\0" in data:
        return None
    return data.decode("utf-8", "replace")


def _git(repo: str, *args: str) -> bytes | None:
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["git", "-C", repo, *args],  # noqa: S607 - git from PATH, as the git server uses
            capture_output=True, timeout=10, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None
