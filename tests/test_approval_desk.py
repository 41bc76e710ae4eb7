"""The approval desk over a real ledger: asking once, deciding once, redeeming once, expiry, and
every way a decision can fail to count."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._ledger import Clock
from trackwrap.approvals import (
    ApprovalDesk,
    ApproverKey,
    CallForApproval,
    LedgerApprovals,
    Standing,
    Status,
    sign_decision,
    verify_decision,
)
from trackwrap.crypto import SigningKey
from trackwrap.errors import ConfigError, SignatureError
from trackwrap.ledger import Ledger

SESSION = "sess-approvals"


def call(**changes: object) -> CallForApproval:
    fields: dict[str, object] = {
        "session": SESSION, "action_hash": "sha256:" + "a" * 64, "server": "outbox",
        "tool": "send_email", "kind": "email.send", "target": "bob@example.org",
        "summary": '{"to":"bob@example.org"}', "rule": "EMAIL-EXTERNAL-APPROVAL",
        "reason": "external e-mail", "approvers": (), "separate_approver": False,
        "notify": (), "requester": "dev@acme.com", "workspace": "/w", "trace": "tr-1",
        "ttl_s": 60,
    }
    fields.update(changes)
    return CallForApproval(**fields)  # type: ignore[arg-type]


class Desk:
    def __init__(self, db: Path, device: SigningKey, clock: Clock,
                 approvers: dict[str, ApproverKey] | None = None) -> None:
        self.ledger = Ledger.open(db, signer=lambda: device, clock_ms=clock)
        self.ledger.ensure_session(SESSION, genesis={"user": "dev@acme.com"})
        keys = {device.key_id: ApproverKey(name="this device", key=device.public_raw,
                                           device=True), **(approvers or {})}
        self.desk = ApprovalDesk(LedgerApprovals(self.ledger), keys=lambda: keys,
                                 clock_ms=clock)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ops() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def desk(db: Path, key: SigningKey, clock: Clock, ops: SigningKey) -> Iterator[Desk]:
    made = Desk(db, key, clock, {ops.key_id: ApproverKey(name="ops@acme.com",
                                                        key=ops.public_raw, groups=("ops",))})
    yield made
    made.ledger.close()


def standing(desk: Desk, approval_id: str) -> Standing:
    record = desk.desk.store.get(approval_id)
    assert record is not None
    return desk.desk.standing(record, requester="dev@acme.com")


def test_asking_twice_joins_the_open_approval(desk: Desk) -> None:
    first, created = desk.desk.ask(call())
    again, created_again = desk.desk.ask(call(trace="tr-2"))
    other, other_created = desk.desk.ask(call(action_hash="sha256:" + "b" * 64))
    assert (created, created_again, other_created) == (True, False, True)
    assert again.id == first.id and other.id != first.id
    kinds = [e.body["kind"] for e in desk.ledger.events(SESSION)]
    assert kinds.count("approval.requested") == 2


def test_decide_then_redeem_exactly_once(desk: Desk, key: SigningKey) -> None:
    record, _ = desk.desk.ask(call())
    desk.desk.decide(record.id, key=key, verdict="approve", approver="dev@acme.com",
                     reason="fine")
    with pytest.raises(ConfigError, match="approved, not pending"):
        desk.desk.decide(record.id, key=key, verdict="deny", approver="dev@acme.com",
                         reason="changed my mind")
    current = standing(desk, record.id)
    assert current.status is Status.APPROVED
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(
        desk.desk.redeem(current, trace="tr-x"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert standing(desk, record.id).status is Status.USED
    assert desk.desk.store.open_for(SESSION, record.action_hash) is None
    kinds = [e.body["kind"] for e in desk.ledger.events(SESSION)]
    assert kinds.count("approval.redeemed") == 1


def test_expiry_is_recorded_and_reported_once(desk: Desk, clock: Clock, key: SigningKey) -> None:
    record, _ = desk.desk.ask(call(ttl_s=5))
    clock.now += 5_000
    assert standing(desk, record.id).status is Status.EXPIRED
    with pytest.raises(ConfigError, match="expired, not pending"):
        desk.desk.decide(record.id, key=key, verdict="approve", approver="x", reason="")
    again, created = desk.desk.ask(call())
    assert (again.id, created) == (record.id, False)  # not yet told: the call hears it first
    desk.desk.report(again)
    fresh, created = desk.desk.ask(call())
    assert created and fresh.id != record.id
    kinds = [e.body["kind"] for e in desk.ledger.events(SESSION)]
    assert kinds.count("approval.expired") == 1


def test_groups_and_separate_approver(desk: Desk, key: SigningKey, ops: SigningKey) -> None:
    record, _ = desk.desk.ask(call(approvers=("ops",), separate_approver=True))
    keys = {key.key_id: ApproverKey(name="this device", key=key.public_raw, device=True),
            ops.key_id: ApproverKey(name="ops@acme.com", key=ops.public_raw, groups=("ops",))}
    own = sign_decision(key, record, verdict="approve", approver="dev@acme.com", reason="",
                        decided_ms=record.requested_ms)
    with pytest.raises(SignatureError, match="cannot approve their own request"):
        verify_decision(own.envelope, record, keys=keys, requester="dev@acme.com")
    # Denying one's own request is always allowed.
    own_deny = sign_decision(key, record, verdict="deny", approver="dev@acme.com",
                             reason="no", decided_ms=record.requested_ms)
    assert not verify_decision(own_deny.envelope, record, keys=keys,
                               requester="dev@acme.com").approved
    good = sign_decision(ops, record, verdict="approve", approver="ops@acme.com", reason="",
                         decided_ms=record.requested_ms)
    assert verify_decision(good.envelope, record, keys=keys, requester="dev@acme.com").approved
    liar = sign_decision(ops, record, verdict="approve", approver="ceo@acme.com", reason="",
                         decided_ms=record.requested_ms)
    with pytest.raises(SignatureError, match="claims to be by"):
        verify_decision(liar.envelope, record, keys=keys, requester="dev@acme.com")


def test_a_decision_never_moves_to_another_call(desk: Desk, ops: SigningKey) -> None:
    first, _ = desk.desk.ask(call())
    second, _ = desk.desk.ask(call(action_hash="sha256:" + "c" * 64))
    keys = {ops.key_id: ApproverKey(name="ops@acme.com", key=ops.public_raw)}
    decided = sign_decision(ops, first, verdict="approve", approver="ops@acme.com",
                            reason="", decided_ms=first.requested_ms)
    with pytest.raises(SignatureError, match="another approval"):
        verify_decision(decided.envelope, second, keys=keys, requester="dev@acme.com")


@pytest.mark.parametrize("tamper", ["payload", "signature", "keyid", "late"])
def test_tampered_decisions_are_refused(desk: Desk, ops: SigningKey, tamper: str) -> None:
    record, _ = desk.desk.ask(call())
    keys = {ops.key_id: ApproverKey(name="ops@acme.com", key=ops.public_raw)}
    decided_ms = record.expires_ms if tamper == "late" else record.requested_ms
    envelope = json.loads(sign_decision(ops, record, verdict="deny", approver="ops@acme.com",
                                        reason="no", decided_ms=decided_ms).envelope)
    if tamper == "payload":
        claims = json.loads(base64.b64decode(envelope["payload"]))
        claims["verdict"] = "approve"
        body = json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
        envelope["payload"] = base64.b64encode(body).decode()
    elif tamper == "signature":
        envelope["signatures"][0]["sig"] = envelope["signatures"][0]["sig"][::-1]
    elif tamper == "keyid":
        envelope["signatures"][0]["keyid"] = "ed25519:" + "0" * 16
    with pytest.raises(SignatureError):
        verify_decision(json.dumps(envelope), record, keys=keys, requester="dev@acme.com")


def test_a_forged_state_is_rejected_and_closed(desk: Desk) -> None:
    record, _ = desk.desk.ask(call())
    desk.ledger.transition_approval(record.id, expect="pending", state="approved", event=None,
                                    columns={"decision": "{}"})
    found = standing(desk, record.id)
    assert found.status is Status.REJECTED
    desk.desk.reject(found)
    assert desk.desk.store.get(record.id).state == "denied"  # type: ignore[union-attr]
    assert desk.desk.store.open_for(SESSION, record.action_hash) is None


def test_no_decision_on_an_approval_whose_session_is_closed(desk: Desk, key: SigningKey) -> None:
    record, _ = desk.desk.ask(call())
    desk.ledger.close_session(SESSION, reason="done")
    with pytest.raises(ConfigError, match="is closed"):
        desk.desk.decide(record.id, key=key, verdict="approve", approver="dev@acme.com",
                         reason="")
    assert desk.desk.store.get(record.id).state == "pending"  # type: ignore[union-attr]
