"""What the collector keeps, and the one :class:`Storage` protocol both backends implement.

The records here are plain frozen data; the backends (:class:`~trackwrap.collector.SqliteStorage`,
:class:`~trackwrap.collector.PostgresStorage`) store and return them and hold no rules of their
own beyond transactions: what a segment must be to be accepted is decided by the ``accept``
callable the service hands to :meth:`Storage.ingest`, inside the backend's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from trackwrap.ledger import ChainHead

__all__ = [
    "APPROVAL_STATES",
    "OUTCOMES",
    "Accept",
    "Accepted",
    "ApprovalRow",
    "ChainRow",
    "DeviceKey",
    "Ingested",
    "Scope",
    "SessionQuery",
    "Storage",
    "TokenRecord",
]

#: What a central approval can be: pending → approved | denied | expired.
APPROVAL_STATES = ("pending", "approved", "denied", "expired")
#: ``GET /v1/sessions?outcome=``: sessions that had a deny, a drift finding or a held call.
OUTCOMES = ("denied", "drift", "approval")


class Scope(StrEnum):
    """What a bearer token may do."""

    INGEST = "ingest"
    """Push one device's segments and publish its approvals (bound to that device)."""
    READ = "read"
    """List sessions, diagnose them, list and read approvals."""
    APPROVE = "approve"
    """Decide approvals, in the name of the token's developer only."""


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A bearer token as stored: never the token itself, only its SHA-256 (``digest``)."""

    id: str
    digest: str
    developer: str
    scopes: tuple[Scope, ...]
    created_ms: int
    device: str | None = None
    revoked_ms: int | None = None

    def has(self, scope: Scope) -> bool:
        """True if this token carries ``scope`` (a revoked token carries none)."""
        return self.revoked_ms is None and scope in self.scopes

    def to_json(self) -> dict[str, object]:
        """The listing form (``collector token list --json``): no secret in it."""
        return {"id": self.id, "device": self.device, "developer": self.developer,
                "scopes": [str(s) for s in self.scopes], "created_ms": self.created_ms,
                "revoked_ms": self.revoked_ms}


@dataclass(frozen=True, slots=True)
class DeviceKey:
    """A public key a device seals its ledger with; ``how``: ``first-use`` or ``admin``."""

    key_id: str
    public_raw: bytes
    registered_ms: int
    how: str


@dataclass(frozen=True, slots=True)
class ChainRow:
    """One device's chain of one session: where it stands and the summary kept at ingest.

    ``held_for_approval`` counts calls held now (a later decision with the same trace moves
    them, as ``trackwrap diagnose`` counts); ``approval_requests`` counts every hold ever, for
    ``outcome=approval``; ``held_traces`` are the traces of the calls held now.
    """

    device: str
    session: str
    head: ChainHead
    developer: str | None = None
    agent: str | None = None
    role: str | None = None
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None
    events: int = 0
    segments: int = 0
    allowed: int = 0
    denied: int = 0
    held_for_approval: int = 0
    approval_requests: int = 0
    drift: int = 0
    held_traces: tuple[str, ...] = ()

    @property
    def closed(self) -> bool:
        return self.head.final

    def summary_json(self) -> dict[str, object]:
        """One entry of ``GET /v1/sessions``."""
        return {
            "device": self.device, "developer": self.developer, "session": self.session,
            "agent": self.agent, "role": self.role, "first_ts_ms": self.first_ts_ms,
            "last_ts_ms": self.last_ts_ms, "events": self.events, "segments": self.segments,
            "allowed": self.allowed, "denied": self.denied,
            "held_for_approval": self.held_for_approval,
            "approval_requests": self.approval_requests, "drift": self.drift,
            "closed": self.closed, "through_seq": self.head.seq,
        }


@dataclass(frozen=True, slots=True)
class Accepted:
    """What ``accept`` returns for a segment that continues its chain: the chain after it,
    the signed receipt envelope, and the segment's records as ``(seq, canonical bytes)``."""

    chain: ChainRow
    receipt: str
    records: tuple[tuple[int, bytes], ...]
    segment: int
    first_seq: int
    last_seq: int
    segment_hash: str
    received_ms: int


#: Given the chain as stored (None: nothing yet), check a segment and return what to store;
#: raises :class:`trackwrap.ledger.SegmentError` to refuse it (nothing is stored).
Accept = Callable[[ChainRow | None], Accepted]


@dataclass(frozen=True, slots=True)
class Ingested:
    """The answer to one pushed segment: its receipt (the stored one for a replay) and the
    chain's head now."""

    receipt: str
    head: ChainHead
    duplicate: bool
    events: int = 0


@dataclass(frozen=True, slots=True)
class SessionQuery:
    """Filters of ``GET /v1/sessions`` (all optional; times in ms since the epoch)."""

    developer: str | None = None
    agent: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    outcome: str | None = None
    limit: int = 500


@dataclass(frozen=True, slots=True)
class ApprovalRow:
    """One approval published by a device's wrapper, and its decision once there is one."""

    id: str
    device: str
    session: str
    action_hash: str
    request: Mapping[str, object]
    requested_ms: int
    expires_ms: int
    published_ms: int
    state: str = "pending"
    decision: str | None = None
    approver: str | None = None
    decided_ms: int | None = None

    def state_at(self, now_ms: int) -> str:
        """The state as of ``now_ms``: a pending approval past its expiry is ``expired``."""
        if self.state == "pending" and now_ms >= self.expires_ms:
            return "expired"
        return self.state

    def same_request(self, other: ApprovalRow) -> bool:
        """True if ``other`` publishes the same thing (an idempotent replay)."""
        return (self.device, self.session, self.action_hash, self.requested_ms,
                self.expires_ms, _text(self.request)) == (
            other.device, other.session, other.action_hash, other.requested_ms,
            other.expires_ms, _text(other.request))

    def to_json(self, now_ms: int) -> dict[str, object]:
        """The API form of an approval."""
        return {
            "id": self.id, "state": self.state_at(now_ms), "device": self.device,
            "session": self.session, "action_hash": self.action_hash,
            "request": dict(self.request), "requested_ms": self.requested_ms,
            "expires_ms": self.expires_ms, "decision": self.decision,
            "approver": self.approver, "decided_ms": self.decided_ms,
        }


def _text(value: Mapping[str, object]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class Storage(Protocol):
    """Where the collector keeps tokens, device keys, chains, events and approvals.

    Every method is blocking (the service calls them from worker threads) and safe to call from
    several threads at once. Failures of the database raise
    :class:`~trackwrap.errors.CollectorError`.
    """

    #: ``sqlite`` or ``postgresql``.
    kind: str
    #: How often a long-poll re-reads an approval (None: only in-process wake-ups are needed,
    #: because every decision passes through this process).
    poll_interval_s: float | None

    def describe(self) -> str:
        """``sqlite FILE`` or ``postgresql HOST/DB`` (no password)."""
        ...

    def ping(self) -> None:
        """Return if the database answers; raise CollectorError otherwise."""
        ...

    def close(self) -> None:
        """Release connections; idempotent."""
        ...

    def load_or_create_key(self, new_private: Callable[[], bytes]) -> bytes:
        """The collector's stored private signing key, created with ``new_private`` on first
        use (exactly once, even when several processes start together)."""
        ...

    def add_token(self, token: TokenRecord) -> None:
        """Store a new token record."""
        ...

    def token_by_digest(self, digest: str) -> TokenRecord | None:
        """The token whose SHA-256 is ``digest`` (revoked ones included)."""
        ...

    def tokens(self) -> list[TokenRecord]:
        """Every token, oldest first."""
        ...

    def revoke_token(self, token_id: str, *, now_ms: int) -> bool:
        """Revoke a token; False if there is no such token (revoking twice is fine)."""
        ...

    def device_keys(self, device: str) -> list[DeviceKey]:
        """The keys registered for ``device``, oldest first."""
        ...

    def add_device_key(self, device: str, key: DeviceKey, *, only_if_none: bool) -> list[DeviceKey]:
        """Register ``key`` for ``device`` (``only_if_none``: only if it has no key yet, as
        trust on first use does) and return the device's keys afterwards."""
        ...

    def ingest(self, device: str, session: str, segment_hash: str, accept: Accept) -> Ingested:
        """In one transaction that serializes with every other push to the same chain: answer a
        segment already held (same device, same content hash) with its stored receipt; else
        call ``accept`` with the stored chain and store what it returns (segment, records, new
        chain row). Exceptions from ``accept`` propagate and nothing is stored."""
        ...

    def chains_of_session(self, session: str) -> list[ChainRow]:
        """Every device's chain of ``session`` (usually one), by device."""
        ...

    def record_bodies(self, device: str, session: str, *, through_seq: int) -> list[bytes]:
        """The stored records of a chain up to ``through_seq``, oldest first."""
        ...

    def cached_diagnosis(self, device: str, session: str) -> tuple[int, str] | None:
        """``(through_seq, diagnosis JSON)`` as last stored for a chain, if any."""
        ...

    def store_diagnosis(self, device: str, session: str, through_seq: int, body: str) -> None:
        """Keep a chain's diagnosis through ``through_seq`` (replacing an older one)."""
        ...

    def sessions(self, query: SessionQuery) -> list[ChainRow]:
        """Chains matching ``query``, newest first."""
        ...

    def publish_approval(self, row: ApprovalRow) -> tuple[ApprovalRow, bool]:
        """Store a new approval; for an id already held return the stored row and False."""
        ...

    def approval(self, approval_id: str) -> ApprovalRow | None:
        """One approval by id."""
        ...

    def approvals(self, state: str | None, *, now_ms: int, limit: int) -> list[ApprovalRow]:
        """Approvals newest first, in ``state`` as of ``now_ms`` (None: all)."""
        ...

    def decide_approval(
        self,
        approval_id: str,
        *,
        state: str,
        decision: str | None,
        approver: str | None,
        decided_ms: int,
    ) -> ApprovalRow | None:
        """Compare-and-set: move a ``pending`` approval to ``state`` with the decision; the
        updated row, or None if it was not pending (someone else decided first)."""
        ...
