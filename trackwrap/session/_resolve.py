"""Which session a wrapper joins.

Until a session is started explicitly, every wrapper of one workspace joins the same *implicit*
session: ``sess-<UTC date>-<hash of the workspace path>``. The id is derived, not stored, so
concurrent wrappers agree on it without talking to each other; ``TRACKWRAP_SESSION`` (or
``--session``) names a session explicitly instead.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

__all__ = ["implicit_session_id", "new_session_id", "new_trace_id"]


def implicit_session_id(workspace: str, *, now: datetime) -> str:
    digest = hashlib.sha256(workspace.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"sess-{now.strftime('%Y-%m-%d')}-{digest}"


def new_trace_id() -> str:
    return f"tr-{secrets.token_hex(6)}"


def new_session_id(*, now: datetime) -> str:
    """An explicit session's id, e.g. ``sess-2026-05-05-7c4a91``."""
    return f"sess-{now.strftime('%Y-%m-%d')}-{secrets.token_hex(3)}"
