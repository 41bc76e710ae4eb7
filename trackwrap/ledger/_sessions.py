"""What the ledger knows about a session: its kind, binding, counters and genesis."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["SessionKind", "SessionState", "Usage"]


class SessionKind(StrEnum):
    """How a session came to be.

    ``implicit``: opened by a wrapper on its own (:meth:`Ledger.ensure_session`); never the
    active session of a workspace. ``explicit``: started on purpose
    (:meth:`Ledger.start_session`, ``trackwrap session start``); wrappers of its workspace join it.
    """

    IMPLICIT = "implicit"
    EXPLICIT = "explicit"


@dataclass(frozen=True, slots=True)
class Usage:
    """What one recorded call spends from its session's budget (``Usage()``: nothing)."""

    tool_calls: int = 0
    bytes_out: int = 0


@dataclass(frozen=True, slots=True)
class SessionState:
    """One session as the ledger's derived state sees it, with its parsed genesis record.

    ``events`` counts its records (seals included); ``tool_calls`` and ``bytes_out`` are the sums
    of the ``usage`` its records carry. ``genesis`` is the whole ``session.start`` record as
    stored (``v``, ``session``, ``seq``, ``prev``, ``ts_ms`` included). Not verified: use
    ``verify_ledger`` for the truth.
    """

    session: str
    workspace: str | None
    kind: SessionKind
    role: str | None
    manifest_digest: str | None
    started_ms: int
    closed: bool
    close_reason: str | None
    tool_calls: int
    bytes_out: int
    events: int
    genesis: dict[str, object]
