"""Approval requests as the ledger stores them: derived state next to the chain.

Every change of an approval's state is a compare-and-set on its row *and* a ledger event in the
approval's session, in one transaction, so the record and the state never disagree and two
processes racing for the same change (two approvers, two wrappers redeeming) have exactly one
winner. The row is state, not evidence: the events are what ``verify`` checks and what syncs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from trackwrap.errors import LedgerIntegrityError

__all__ = ["APPROVAL_STATES", "OPEN_STATES", "ApprovalRecord"]

#: pending → approved | denied | expired; approved → redeemed (once).
APPROVAL_STATES = ("pending", "approved", "denied", "expired", "redeemed")
#: States in which an approval still answers a call for its action.
OPEN_STATES = ("pending", "approved")

COLUMNS = (
    "id, session, action_hash, state, requested_ms, expires_ms, request, decision, approver, "
    "decided_ms, redeemed_ms, redeemed_by, reported"
)
#: Columns :meth:`Ledger.transition_approval` may set besides ``state``.
SETTABLE = frozenset({"decision", "approver", "decided_ms", "redeemed_ms", "redeemed_by",
                      "reported"})


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """One approval request and where it stands.

    ``request`` is what was asked (server, tool, kind, target, masked arguments, rule, reason,
    approver groups, requester, …) as the requesting wrapper wrote it; ``decision`` is the
    approver's signed decision envelope (JSON text) once someone decided; ``reported`` is set
    once a call has been told that the approval was denied or expired, so the next identical
    call asks afresh.
    """

    id: str
    session: str
    action_hash: str
    state: str
    requested_ms: int
    expires_ms: int
    request: Mapping[str, object]
    decision: str | None = None
    approver: str | None = None
    decided_ms: int | None = None
    redeemed_ms: int | None = None
    redeemed_by: str | None = None
    reported: bool = False

    def is_open(self) -> bool:
        """Pending or approved (and not yet used), or denied/expired and not yet told."""
        return self.state in OPEN_STATES or (
            self.state in ("denied", "expired") and not self.reported
        )

    def row(self) -> tuple[object, ...]:
        """The row to insert (``COLUMNS`` order)."""
        return (
            self.id, self.session, self.action_hash, self.state, self.requested_ms,
            self.expires_ms, json.dumps(dict(self.request), sort_keys=True, ensure_ascii=False),
            self.decision, self.approver, self.decided_ms, self.redeemed_ms, self.redeemed_by,
            int(self.reported),
        )

    @classmethod
    def from_row(cls, row: tuple[object, ...]) -> ApprovalRecord:
        """Parse a stored row (``COLUMNS`` order)."""
        (approval_id, session, action_hash, state, requested_ms, expires_ms, request, decision,
         approver, decided_ms, redeemed_ms, redeemed_by, reported) = row
        try:
            parsed = json.loads(str(request))
        except ValueError as exc:
            raise LedgerIntegrityError(
                f"approval {approval_id}: stored request is not JSON", seq=None
            ) from exc
        if not isinstance(parsed, dict) or state not in APPROVAL_STATES:
            raise LedgerIntegrityError(f"approval {approval_id}: damaged row", seq=None)
        return cls(
            id=str(approval_id), session=str(session), action_hash=str(action_hash),
            state=str(state), requested_ms=_int(requested_ms), expires_ms=_int(expires_ms),
            request=MappingProxyType(parsed),
            decision=None if decision is None else str(decision),
            approver=None if approver is None else str(approver),
            decided_ms=None if decided_ms is None else _int(decided_ms),
            redeemed_ms=None if redeemed_ms is None else _int(redeemed_ms),
            redeemed_by=None if redeemed_by is None else str(redeemed_by),
            reported=bool(reported),
        )


def _int(value: object) -> int:
    if type(value) is not int:
        raise LedgerIntegrityError(f"approval row holds {value!r} where a number belongs",
                                   seq=None)
    return value
