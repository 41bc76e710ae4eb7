"""The upstream child: resolving its command, its environment, spawning and stopping it."""

from __future__ import annotations

import fnmatch
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from trackwrap.errors import SpawnError

__all__ = [
    "BASE_ENV",
    "Child",
    "child_environment",
    "resolve_command",
    "spawn_child",
]

OWN_PREFIX = "TRACKWRAP_"
"""Every ``TRACKWRAP_*`` variable is trackwrap's own (home, key backend, session, collector
token, ...) and never reaches the upstream server."""

BASE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "TMPDIR", "SYSTEMROOT")
"""Kept even when ``--env-allow`` narrows the environment, so the command can still start."""


def child_environment(
    environ: Mapping[str, str],
    *,
    allow: Sequence[str] = (),
    deny: Sequence[str] = (),
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The wrapper's full environment minus trackwrap's own variables.

    ``allow`` (glob patterns) narrows it to the matching names plus :data:`BASE_ENV`; ``deny``
    (glob patterns) removes names afterwards; ``extra`` is added last.
    """
    env = {k: v for k, v in environ.items() if not k.startswith(OWN_PREFIX)}
    if allow:
        env = {
            k: v
            for k, v in env.items()
            if k.upper() in BASE_ENV or any(fnmatch.fnmatchcase(k, p) for p in allow)
        }
    if deny:
        env = {k: v for k, v in env.items() if not any(fnmatch.fnmatchcase(k, p) for p in deny)}
    if extra:
        env.update(extra)
    return env


def resolve_command(argv: Sequence[str], *, path: str | None) -> list[str]:
    """Resolve ``argv[0]`` with ``shutil.which``; the argv is otherwise taken verbatim."""
    if not argv:
        raise SpawnError("no upstream command given after '--'")
    exe = shutil.which(argv[0], path=path)
    if exe is None:
        raise SpawnError(f"upstream command not found: {argv[0]!r} (searched PATH={path or ''})")
    return [exe, *argv[1:]]


@dataclass(slots=True)
class Child:
    """A running upstream server in its own session (process group)."""

    proc: subprocess.Popen[bytes]
    stdin_fd: int
    stdout_fd: int
    stderr_fd: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()

    def signal_group(self, sig: signal.Signals) -> None:
        """Signal the child's whole process group (grandchildren started by npx included)."""
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return

    def close_pipes(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()


def spawn_child(argv: Sequence[str], *, env: Mapping[str, str], cwd: str | None) -> Child:
    """Start the upstream with pipes on all three streams, in a new session."""
    try:
        proc = subprocess.Popen(  # noqa: S603 - the argv is the user's own upstream command
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            bufsize=0,
        )
    except OSError as exc:
        raise SpawnError(f"cannot start upstream {argv[0]!r}: {exc.strerror or exc}") from exc
    if proc.stdin is None or proc.stdout is None or proc.stderr is None:  # pragma: no cover
        raise SpawnError("upstream started without pipes")
    child = Child(
        proc=proc,
        stdin_fd=proc.stdin.fileno(),
        stdout_fd=proc.stdout.fileno(),
        stderr_fd=proc.stderr.fileno(),
    )
    for fd in (child.stdin_fd, child.stdout_fd, child.stderr_fd):
        os.set_blocking(fd, False)
    return child
