"""What the pipeline is told about the world: workspace, home, time, and a filesystem view."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = ["Context", "FileSystemView"]


class FileSystemView(Protocol):
    """The one filesystem question the pure layers may ask, answered by the caller."""

    def realpath(self, path: str) -> str:
        """Resolve symlinks like ``os.path.realpath(path, strict=False)``."""
        ...


@dataclass(frozen=True, slots=True)
class Context:
    """Per-call facts handed in by the relay.

    ``workspace`` is the scope every path must stay inside; ``roots`` are the upstream server's
    own allowed directories (informational: they change how the server resolves, not the scope);
    ``cwd`` is the upstream server's working directory; ``now`` must be timezone-aware.
    """

    workspace: str
    roots: tuple[str, ...]
    cwd: str
    home: str
    now: datetime
    fs: FileSystemView
