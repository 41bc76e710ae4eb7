"""MCP tool pins: what a person (or the first listing) approved for each upstream server.

The pins live in the ledger's database so all wrappers of a user share them, but they are
state, not evidence: drift and approvals are recorded as ledger events by the governor.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Pin", "PinReview"]


@dataclass(frozen=True, slots=True)
class Pin:
    """One tool of one server: its approved digest (None until first approved) and a pending
    digest when a new or changed version waits for approval."""

    server: str
    tool: str
    digest: str | None
    pending_digest: str | None
    tool_json: str
    first_seen_ms: int
    updated_ms: int
    approved_json: str | None = None
    """The canonical JSON of the approved version (None until one is approved)."""

    @property
    def state(self) -> str:
        if self.pending_digest is None:
            return "approved"
        return "changed" if self.digest is not None else "new"


@dataclass(frozen=True, slots=True)
class PinReview:
    """How one ``tools/list`` page compares with the pins."""

    approved: frozenset[str]
    """Tools offered exactly as approved (the agent sees these)."""
    new: tuple[str, ...]
    """Tools never approved for this server."""
    changed: tuple[str, ...]
    """Tools whose definition differs from the approved one."""
    first_use: bool
    """This was the server's first listing: everything offered was pinned as it is."""
