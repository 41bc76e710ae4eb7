"""Approval decisions, signed by the person who made them and checked by the waiting wrapper.

A decision is a DSSE envelope over the canonical JSON of::

    {"v": 1, "approval_id": "apr-…", "session": "…", "action_hash": "sha256:…",
     "verdict": "approve" | "deny", "approver": "ops@acme.com", "reason": "…",
     "decided_ms": 1770000000000}

It names the exact approval, session and action hash, so a decision can never be moved to
another call. It counts only if the wrapper that waits for it can verify it:

- the signing key is a trusted approver (``trust.yaml`` ``approvers:``, named there) or the
  requester's own device key;
- an ``approve`` comes from an approver in one of the rule's approver groups (when the rule
  names any), and not from the requester where the rule says ``separate_approver: true``;
- it was made before the approval expired.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from trackwrap._canonical import CanonicalError, canonical_json, loads_strict
from trackwrap.crypto import SigningKey, pae, verify_ed25519
from trackwrap.errors import SignatureError
from trackwrap.ledger import ApprovalRecord

__all__ = [
    "DECISION_PAYLOAD_TYPE",
    "ApproverKey",
    "SignedDecision",
    "read_decision",
    "sign_decision",
    "verify_decision",
]

DECISION_PAYLOAD_TYPE = "application/vnd.trackwrap.approval-decision+json"
VERDICTS = ("approve", "deny")
_FIELDS = frozenset({"v", "approval_id", "session", "action_hash", "verdict", "approver",
                     "reason", "decided_ms"})
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class ApproverKey:
    """A key whose decisions count: a trusted approver's, or the requester's own device key
    (``device``; its decisions are the requester's own)."""

    name: str
    key: bytes
    groups: tuple[str, ...] = ()
    device: bool = False


@dataclass(frozen=True, slots=True)
class SignedDecision:
    """A decision as read from its envelope (verified or not, see the function that made it)."""

    approval_id: str
    session: str
    action_hash: str
    verdict: str
    approver: str
    reason: str
    decided_ms: int
    key_id: str
    envelope: str

    @property
    def approved(self) -> bool:
        return self.verdict == "approve"

    def envelope_json(self) -> dict[str, object]:
        """The envelope as a JSON object (for the ledger event that records the decision)."""
        value = json.loads(self.envelope)
        return value if isinstance(value, dict) else {}


def sign_decision(
    key: SigningKey,
    approval: ApprovalRecord,
    *,
    verdict: str,
    approver: str,
    reason: str,
    decided_ms: int,
) -> SignedDecision:
    """Sign a decision on ``approval`` with ``key``.

    Raises:
        SignatureError: a bad verdict, or values JSON cannot carry.
    """
    if verdict not in VERDICTS:
        raise SignatureError(f"a verdict is approve or deny, not {verdict!r}")
    claims: dict[str, object] = {
        "v": 1,
        "approval_id": approval.id,
        "session": approval.session,
        "action_hash": approval.action_hash,
        "verdict": verdict,
        "approver": approver,
        "reason": reason[:MAX_REASON],
        "decided_ms": decided_ms,
    }
    try:
        payload = canonical_json(claims)
    except CanonicalError as exc:
        raise SignatureError(f"decision cannot be canonicalized: {exc}") from exc
    signature = key.sign(pae(DECISION_PAYLOAD_TYPE, payload))
    envelope = json.dumps(
        {
            "payloadType": DECISION_PAYLOAD_TYPE,
            "payload": base64.b64encode(payload).decode("ascii"),
            "signatures": [
                {"keyid": key.key_id, "sig": base64.b64encode(signature).decode("ascii")}
            ],
        },
        separators=(",", ":"),
    )
    return read_decision(envelope)


def read_decision(envelope: str) -> SignedDecision:
    """Parse an envelope **without** checking its signature (for display).

    Raises:
        SignatureError: not a well-formed decision envelope.
    """
    try:
        outer = loads_strict(envelope.encode("utf-8"))
    except (UnicodeError, ValueError, RecursionError) as exc:
        raise SignatureError(f"malformed decision envelope: {exc}") from exc
    if not isinstance(outer, dict) or outer.get("payloadType") != DECISION_PAYLOAD_TYPE:
        raise SignatureError("not an approval decision envelope")
    signatures = outer.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1 or not isinstance(
        signatures[0], dict
    ):
        raise SignatureError("a decision carries exactly one signature")
    key_id = signatures[0].get("keyid")
    payload_b64 = outer.get("payload")
    if not isinstance(key_id, str) or not isinstance(payload_b64, str):
        raise SignatureError("malformed decision envelope: keyid and payload are strings")
    claims = _claims(_b64(payload_b64))
    return SignedDecision(
        approval_id=_text(claims, "approval_id"),
        session=_text(claims, "session"),
        action_hash=_text(claims, "action_hash"),
        verdict=_text(claims, "verdict"),
        approver=_text(claims, "approver"),
        reason=_text(claims, "reason"),
        decided_ms=_number(claims, "decided_ms"),
        key_id=key_id,
        envelope=envelope,
    )


def verify_decision(
    envelope: str,
    approval: ApprovalRecord,
    *,
    keys: Mapping[str, ApproverKey],
    requester: str,
) -> SignedDecision:
    """The decision in ``envelope`` if it is genuine and counts for ``approval`` (see the
    module docstring); ``keys`` maps key id to the keys whose decisions may count.

    Raises:
        SignatureError: saying why the decision does not count.
    """
    decision = read_decision(envelope)
    known = keys.get(decision.key_id)
    if known is None:
        raise SignatureError(f"decision signed by {decision.key_id}, which is not a trusted "
                             "approver (`trackwrap trust add-approver`)")
    outer = json.loads(envelope)
    signature = _b64(str(outer["signatures"][0].get("sig", "")))
    payload = _b64(str(outer["payload"]))
    try:
        verify_ed25519(known.key, signature, pae(DECISION_PAYLOAD_TYPE, payload))
    except SignatureError as exc:
        raise SignatureError(f"the decision's signature by {decision.key_id} does not verify"
                             ) from exc
    if (decision.approval_id, decision.session, decision.action_hash) != (
        approval.id, approval.session, approval.action_hash
    ):
        raise SignatureError("the decision was made for another approval, session or action")
    if decision.verdict not in VERDICTS:
        raise SignatureError(f"unknown verdict {decision.verdict!r}")
    if not known.device and decision.approver != known.name:
        raise SignatureError(f"the decision claims to be by {decision.approver!r} but is signed "
                             f"by approver {known.name!r}")
    if decision.decided_ms >= approval.expires_ms:
        raise SignatureError("the decision was made after the approval expired")
    if decision.approved:
        _may_approve(known, approval, requester=requester)
    return decision


def _may_approve(known: ApproverKey, approval: ApprovalRecord, *, requester: str) -> None:
    if approval.request.get("separate_approver") is True and (
        known.device or known.name == requester
    ):
        raise SignatureError(f"{requester} cannot approve their own request "
                             "(the rule says separate_approver)")
    groups = approval.request.get("approvers")
    wanted = [g for g in groups if isinstance(g, str)] if isinstance(groups, list) else []
    if wanted and not set(wanted) & set(known.groups):
        who = "the requester's own device key" if known.device else f"approver {known.name!r}"
        raise SignatureError(f"{who} is not in an approver group of this rule "
                             f"({', '.join(wanted)})")


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"malformed decision envelope: not base64: {exc}") from exc


def _claims(payload: bytes) -> dict[str, object]:
    try:
        value = loads_strict(payload)
        canonical = canonical_json(value)
    except (UnicodeError, ValueError, RecursionError, CanonicalError) as exc:
        raise SignatureError(f"malformed decision payload: {exc}") from exc
    if not isinstance(value, dict) or canonical != payload:
        raise SignatureError("malformed decision payload: not a canonical JSON object")
    if set(value) != _FIELDS or value.get("v") != 1:
        raise SignatureError("malformed decision payload: unexpected fields or version")
    return value


def _text(claims: Mapping[str, object], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str):
        raise SignatureError(f"malformed decision payload: {name} is not a string")
    return value


def _number(claims: Mapping[str, object], name: str) -> int:
    value = claims.get(name)
    if type(value) is not int:
        raise SignatureError(f"malformed decision payload: {name} is not an integer")
    return value
