"""The real filesystem view handed to the pure layers."""

from __future__ import annotations

import os

from trackwrap.errors import InspectorError

__all__ = ["RealFileSystem"]


class RealFileSystem:
    """:class:`~trackwrap.policy.FileSystemView` over the OS: ``os.path.realpath``."""

    def realpath(self, path: str) -> str:
        """Resolve symlinks, keeping a missing tail; :class:`InspectorError` if unresolvable."""
        try:
            return os.path.realpath(path, strict=False)
        except (ValueError, OSError) as exc:
            raise InspectorError(f"cannot resolve path {path!r}: {exc}") from exc
