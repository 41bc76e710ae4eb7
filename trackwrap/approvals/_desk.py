"""The approval desk: asking for approval, reading decisions, redeeming them once.

Where approvals are kept is behind :class:`ApprovalStore`. :class:`LedgerApprovals` keeps them
in the local ledger database (every change a ledger event in the approval's session); a store
that also talks to the central collector wraps it, so a decision made anywhere reaches the
waiting wrapper the same way: as a signed decision recorded through :meth:`ApprovalStore.decide`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from trackwrap.approvals._decision import (
    ApproverKey,
    SignedDecision,
    read_decision,
    sign_decision,
    verify_decision,
)
from trackwrap.crypto import SigningKey
from trackwrap.errors import ConfigError, LedgerError, SignatureError
from trackwrap.ledger import ApprovalRecord, Ledger

__all__ = [
    "DEFAULT_TTL_S",
    "ApprovalDesk",
    "ApprovalStore",
    "CallForApproval",
    "LedgerApprovals",
    "RemoteApprovals",
    "Standing",
    "Status",
    "new_approval_id",
]

DEFAULT_TTL_S = 15 * 60
"""How long an approval stays open when its rule gives no ``ttl``."""


def new_approval_id() -> str:
    """``apr-`` and 12 random hex digits."""
    return "apr-" + secrets.token_hex(6)


class ApprovalStore(Protocol):
    """Where approvals live. Every change is a compare-and-set that also records ``event``."""

    def open_for(self, session: str, action_hash: str) -> ApprovalRecord | None:
        """The newest approval of this call that still has something to say."""
        ...

    def request(
        self, record: ApprovalRecord, event: Mapping[str, object]
    ) -> tuple[ApprovalRecord, bool]:
        """Store a new pending approval, unless an open one exists (returned with False)."""
        ...

    def get(self, approval_id: str) -> ApprovalRecord | None: ...

    def list(
        self, *, states: tuple[str, ...] | None = None, session: str | None = None
    ) -> list[ApprovalRecord]: ...

    def transition(
        self,
        approval_id: str,
        *,
        expect: str,
        state: str,
        event: Mapping[str, object] | None,
        unexpired: bool = False,
        open_session: bool = False,
        columns: Mapping[str, object] | None = None,
    ) -> ApprovalRecord | None:
        """Move ``expect`` → ``state``; None if it was not in ``expect`` (or had expired).
        With ``open_session``, refuse (an :class:`~trackwrap.errors.Error`) when the
        approval's session is closed."""
        ...


class RemoteApprovals(Protocol):
    """Where approvals are also decided (the collector): requests go out, decisions come in."""

    def publish(self, record: ApprovalRecord) -> None:
        """Make a new request visible there (idempotent by id)."""
        ...

    def decision(self, approval_id: str, *, wait_s: float) -> tuple[str, str | None]:
        """``(state, signed decision envelope or None)``, waiting up to ``wait_s``."""
        ...


class LedgerApprovals:
    """Approvals in the local ledger database."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def open_for(self, session: str, action_hash: str) -> ApprovalRecord | None:
        return self._ledger.open_approval(session, action_hash)

    def request(
        self, record: ApprovalRecord, event: Mapping[str, object]
    ) -> tuple[ApprovalRecord, bool]:
        return self._ledger.request_approval(record, event)

    def get(self, approval_id: str) -> ApprovalRecord | None:
        return self._ledger.approval(approval_id)

    def list(
        self, *, states: tuple[str, ...] | None = None, session: str | None = None
    ) -> list[ApprovalRecord]:
        return self._ledger.approvals(states=states, session=session)

    def transition(
        self,
        approval_id: str,
        *,
        expect: str,
        state: str,
        event: Mapping[str, object] | None,
        unexpired: bool = False,
        open_session: bool = False,
        columns: Mapping[str, object] | None = None,
    ) -> ApprovalRecord | None:
        return self._ledger.transition_approval(
            approval_id, expect=expect, state=state, event=event, unexpired=unexpired,
            open_session=open_session, columns=columns,
        )


@dataclass(frozen=True, slots=True)
class CallForApproval:
    """A call that policy says needs a person's approval, with what to show them."""

    session: str
    action_hash: str
    server: str
    tool: str
    kind: str
    target: str
    summary: str
    """The arguments, secrets masked, capped."""
    rule: str
    reason: str
    approvers: tuple[str, ...]
    separate_approver: bool
    notify: tuple[str, ...]
    requester: str
    workspace: str
    trace: str
    ttl_s: int


class Status(StrEnum):
    """Where an approval stands for a call that wants to use it."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    REJECTED = "rejected"
    """A decision is recorded but does not verify (forged, wrong approver, self-approval)."""
    USED = "used"
    """Another call redeemed it first."""


@dataclass(frozen=True, slots=True)
class Standing:
    """An approval, what it means for the call, the verified decision if any, and why."""

    record: ApprovalRecord
    status: Status
    decision: SignedDecision | None = None
    problem: str | None = None


class ApprovalDesk:
    """The approval logic shared by the wrapper (asking, waiting, redeeming) and the CLI
    (listing, deciding)."""

    def __init__(
        self,
        store: ApprovalStore,
        *,
        keys: Callable[[], Mapping[str, ApproverKey]],
        clock_ms: Callable[[], int],
    ) -> None:
        self._store = store
        self._keys = keys
        self._clock_ms = clock_ms

    @property
    def store(self) -> ApprovalStore:
        return self._store

    # -- the wrapper's side ---------------------------------------------------------------------

    def ask(self, call: CallForApproval) -> tuple[ApprovalRecord, bool]:
        """The approval that answers this call: an open one for the same session and action
        hash (expired first if its time is up), else a new pending one, recorded with an
        ``approval.requested`` event. Returns it and whether it is new."""
        existing = self._store.open_for(call.session, call.action_hash)
        if existing is not None:
            existing = self.refresh(existing)
            if existing.is_open():
                return existing, False
        now = self._clock_ms()
        request: dict[str, object] = {
            "server": call.server, "tool": call.tool, "action_kind": call.kind,
            "target": call.target, "args": call.summary, "rule": call.rule,
            "reason": call.reason, "approvers": list(call.approvers),
            "separate_approver": call.separate_approver, "notify": list(call.notify),
            "requester": call.requester, "workspace": call.workspace, "trace": call.trace,
        }
        record = ApprovalRecord(
            id=new_approval_id(), session=call.session, action_hash=call.action_hash,
            state="pending", requested_ms=now, expires_ms=now + call.ttl_s * 1000,
            request=request,
        )
        event = {"kind": "approval.requested", "approval_id": record.id,
                 "action_hash": call.action_hash, **request, "expires_ms": record.expires_ms}
        return self._store.request(record, event)

    def refresh(self, record: ApprovalRecord) -> ApprovalRecord:
        """``record`` as stored now; a pending one whose time is up becomes ``expired`` (with
        an ``approval.expired`` event)."""
        current = self._store.get(record.id) or record
        if current.state == "pending" and current.expires_ms <= self._clock_ms():
            expired = self._store.transition(
                current.id, expect="pending", state="expired",
                event={"kind": "approval.expired", "approval_id": current.id,
                       "action_hash": current.action_hash, "expires_ms": current.expires_ms},
            )
            current = expired or self._store.get(record.id) or current
        return current

    def standing(self, record: ApprovalRecord, *, requester: str) -> Standing:
        """What ``record`` (refreshed) means for a call: decisions are verified here, so a
        decision that does not verify never counts."""
        record = self.refresh(record)
        if record.state == "pending":
            return Standing(record, Status.PENDING)
        if record.state == "expired":
            return Standing(record, Status.EXPIRED)
        if record.state == "redeemed":
            return Standing(record, Status.USED)
        try:
            if record.decision is None:
                raise SignatureError("no signed decision is recorded")
            decision = verify_decision(record.decision, record, keys=self._keys(),
                                       requester=requester)
        except SignatureError as exc:
            return Standing(record, Status.REJECTED, problem=str(exc))
        if decision.approved != (record.state == "approved"):
            return Standing(record, Status.REJECTED,
                            problem=f"the signed verdict ({decision.verdict}) does not match "
                            f"the recorded state ({record.state})")
        return Standing(record, Status.APPROVED if decision.approved else Status.DENIED,
                        decision=decision)

    def redeem(self, standing: Standing, *, trace: str) -> bool:
        """Use an approved approval for one call; exactly one caller ever gets True."""
        decision = standing.decision
        if standing.status is not Status.APPROVED or decision is None:
            return False
        done = self._store.transition(
            standing.record.id, expect="approved", state="redeemed",
            event={"kind": "approval.redeemed", "approval_id": standing.record.id,
                   "action_hash": standing.record.action_hash, "trace": trace,
                   "approver": decision.approver},
            columns={"redeemed_ms": self._clock_ms(), "redeemed_by": trace},
        )
        return done is not None

    def report(self, record: ApprovalRecord) -> None:
        """A call has been told this approval was denied, expired or rejected: the next
        identical call asks afresh."""
        self._store.transition(record.id, expect=record.state, state=record.state, event=None,
                               columns={"reported": 1})

    def reject(self, standing: Standing) -> None:
        """Record that a decision was refused (it does not verify) and close the approval."""
        self._store.transition(
            standing.record.id, expect=standing.record.state, state="denied",
            event={"kind": "approval.rejected", "approval_id": standing.record.id,
                   "action_hash": standing.record.action_hash,
                   "problem": (standing.problem or "")[:500]},
            columns={"reported": 1},
        )

    def record_remote(self, approval_id: str, state: str, envelope: str | None) -> bool:
        """Record a decision made elsewhere (the collector) exactly as it was signed, with an
        ``approval.decided`` event; whether it counts is checked when a call uses it, as for
        any decision. Returns whether it was recorded (the approval was still pending here)."""
        if state not in ("approved", "denied") or envelope is None:
            return False
        try:
            signed = read_decision(envelope)
        except SignatureError:
            return False
        record = self._store.get(approval_id)
        if record is None:
            return False
        done = self._store.transition(
            approval_id, expect="pending", state=state,
            event={"kind": "approval.decided", "approval_id": approval_id,
                   "action_hash": record.action_hash, "verdict": signed.verdict,
                   "approver": signed.approver, "key_id": signed.key_id,
                   "reason": signed.reason, "source": "collector",
                   "envelope": signed.envelope_json()},
            columns={"decision": envelope, "approver": signed.approver,
                     "decided_ms": signed.decided_ms},
        )
        return done is not None

    # -- the approver's side --------------------------------------------------------------------

    def decide(
        self,
        approval_id: str,
        *,
        key: SigningKey,
        verdict: str,
        approver: str,
        reason: str,
    ) -> ApprovalRecord:
        """Sign and record a decision on a pending approval.

        Raises:
            ConfigError: no such approval, or it is no longer pending (decided, expired).
        """
        record = self._store.get(approval_id)
        if record is None:
            raise ConfigError(f"no approval {approval_id} (see `trackwrap approvals list`)")
        record = self.refresh(record)
        if record.state != "pending":
            raise ConfigError(f"approval {approval_id} is {record.state}, not pending")
        now = self._clock_ms()
        signed = sign_decision(key, record, verdict=verdict, approver=approver, reason=reason,
                               decided_ms=now)
        state = "approved" if signed.approved else "denied"
        try:
            done = self._store.transition(
                approval_id, expect="pending", state=state, unexpired=True, open_session=True,
                event={"kind": "approval.decided", "approval_id": approval_id,
                       "action_hash": record.action_hash, "verdict": signed.verdict,
                       "approver": approver, "key_id": signed.key_id, "reason": signed.reason,
                       "envelope": signed.envelope_json()},
                columns={"decision": signed.envelope, "approver": approver, "decided_ms": now},
            )
        except LedgerError as exc:
            raise ConfigError(str(exc)) from exc
        if done is None:
            current = self.refresh(record)
            raise ConfigError(f"approval {approval_id} is {current.state}, not pending")
        return done


def decision_of(record: ApprovalRecord) -> SignedDecision | None:
    """The recorded decision as written (not verified), for display."""
    if record.decision is None:
        return None
    try:
        return read_decision(record.decision)
    except SignatureError:
        return None
