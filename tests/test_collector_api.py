"""The collector's HTTP API in process (httpx.ASGITransport), on SQLite and on PostgreSQL.

Segments come from real ledgers; receipts are verified with the collector's public key; the
diagnosis is compared with what ``trackwrap diagnose --json`` prints for the same ledger.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.lowlevel
import httpx
import pytest
from starlette.applications import Starlette

from tests._collector import (
    STORAGES,
    add_token,
    make_ledger,
    open_test_storage,
    public_key_text,
    wire,
)
from tests._ledger import Clock
from trackwrap.approvals import sign_decision
from trackwrap.cli import main
from trackwrap.collector import CollectorConfig, Scope, Storage, create_app
from trackwrap.crypto import SigningKey
from trackwrap.ledger import ApprovalRecord, Segment, read_receipt

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000_000


@dataclass
class Harness:
    """A collector app over one storage, with its key and an injected clock."""

    storage: Storage
    key: SigningKey
    clock: Clock
    app: Starlette

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                 base_url="http://collector")

    def token(self, *, device: str | None = None, developer: str = "dev@acme.com",
              scopes: tuple[Scope, ...] = (Scope.INGEST,)) -> dict[str, str]:
        token = add_token(self.storage, developer=developer, device=device, scopes=scopes)
        return {"authorization": f"Bearer {token}"}

    @property
    def receipt_keys(self) -> dict[str, bytes]:
        return {self.key.key_id: self.key.public_raw}


@pytest.fixture(params=STORAGES)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    opened = open_test_storage(request.param, tmp_path, request)
    yield opened
    opened.close()


def harness_for(storage: Storage, **limits: int) -> Harness:
    key = SigningKey.generate()
    clock = Clock(start=NOW, step=0)
    app = create_app(CollectorConfig(storage=storage, key=key, clock_ms=clock, **limits))
    return Harness(storage=storage, key=key, clock=clock, app=app)


@pytest.fixture
def harness(storage: Storage) -> Harness:
    return harness_for(storage)


@pytest.fixture
def device_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def segments(tmp_path: Path, device_key: SigningKey) -> list[Segment]:
    ledger = make_ledger(tmp_path / "laptop.db", device_key, seal_every=10)
    try:
        return ledger.segments("sess-1")
    finally:
        ledger.close()


# ------------------------------------------------------------------------------------- ingest

async def test_segments_in_order_get_receipts_that_verify(
    harness: Harness, segments: list[Segment], device_key: SigningKey
) -> None:
    auth = harness.token(device="laptop-1")
    assert len(segments) >= 3
    async with harness.client() as client:
        identity = (await client.get("/v1/collector")).json()
        assert identity == {"collector": harness.key.key_id,
                            "public_key": public_key_text(harness.key)}
        for segment in segments:
            answer = await client.post("/v1/segments", json=wire(segment, device_key),
                                       headers=auth)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["duplicate"] is False
            assert body["head"]["seq"] == segment.last_seq
            assert body["head"]["hash"] == segment.tip()
            receipt = read_receipt(body["receipt"], keys=harness.receipt_keys)
            assert receipt.claims() == {
                "v": 1, "collector": harness.key.key_id, "device": "laptop-1",
                "session": "sess-1", "segment": segment.segment, "seq": segment.last_seq,
                "chain_tip": segment.tip(), "segment_hash": segment.content_hash(),
                "received_at_ms": NOW}
        assert body["head"]["final"] is True
        metrics = (await client.get("/metrics")).text
    assert f"trackwrap_collector_segments_ingested_total {len(segments)}" in metrics
    events = sum(len(s.records) for s in segments)
    assert f"trackwrap_collector_events_ingested_total {events}" in metrics


async def test_a_replay_gets_the_same_receipt_marked_duplicate(
    harness: Harness, segments: list[Segment], device_key: SigningKey
) -> None:
    auth = harness.token(device="laptop-1")
    async with harness.client() as client:
        first = (await client.post("/v1/segments", json=wire(segments[0], device_key),
                                   headers=auth)).json()
        await client.post("/v1/segments", json=wire(segments[1], device_key), headers=auth)
        harness.clock.now += 60_000
        again = await client.post("/v1/segments", json=wire(segments[0], device_key),
                                  headers=auth)
    assert again.status_code == 200
    assert again.json()["receipt"] == first["receipt"]
    assert again.json()["duplicate"] is True
    assert again.json()["head"]["seq"] == segments[1].last_seq


async def test_a_gap_is_refused_with_the_seq_to_resume_from(
    harness: Harness, segments: list[Segment], device_key: SigningKey
) -> None:
    auth = harness.token(device="laptop-1")
    async with harness.client() as client:
        await client.post("/v1/segments", json=wire(segments[0], device_key), headers=auth)
        answer = await client.post("/v1/segments", json=wire(segments[2], device_key),
                                   headers=auth)
    assert answer.status_code == 409
    assert answer.json()["error"] == "GAP"
    assert answer.json()["expected_seq"] == segments[0].last_seq + 1


async def test_a_different_history_of_the_same_session_is_a_fork(
    harness: Harness, segments: list[Segment], device_key: SigningKey, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clone = make_ledger(tmp_path / "clone.db", device_key, calls=12, seal_every=10,
                        close=False, clock=Clock(step=7))
    other = clone.segments("sess-1")
    clone.close()
    auth = harness.token(device="laptop-1")
    async with harness.client() as client:
        await client.post("/v1/segments", json=wire(segments[0], device_key), headers=auth)
        with caplog.at_level(logging.WARNING, logger="trackwrap.collector"):
            answer = await client.post("/v1/segments", json=wire(other[0], device_key),
                                       headers=auth)
    assert answer.status_code == 409
    assert answer.json()["error"] == "FORK"
    assert answer.json()["expected_seq"] == segments[0].last_seq + 1
    assert any("FORK" in r.getMessage() for r in caplog.records)


async def test_a_tampered_record_and_a_wrong_hash_are_refused(
    harness: Harness, segments: list[Segment], device_key: SigningKey
) -> None:
    auth = harness.token(device="laptop-1")
    first = segments[0]
    edited = first.records[1].replace(b"/work/repo/src/file1.py", b"/work/repo/src/fileX.py")
    assert edited != first.records[1]
    forged = Segment(session=first.session, segment=first.segment, first_seq=first.first_seq,
                     records=(first.records[0], edited, *first.records[2:]))
    mismatched = {**wire(first, device_key), "hash": "sha256:" + "0" * 64}
    async with harness.client() as client:
        tampered = await client.post("/v1/segments", json=wire(forged, device_key),
                                     headers=auth)
        wrong_hash = await client.post("/v1/segments", json=mismatched, headers=auth)
        not_json = await client.post("/v1/segments", content=b"{nope", headers=auth)
        not_segment = await client.post("/v1/segments", json={
            "public_key": public_key_text(device_key), "session": "s"}, headers=auth)
    assert (tampered.status_code, tampered.json()["error"]) == (422, "INVALID")
    assert (wrong_hash.status_code, wrong_hash.json()["error"]) == (422, "HASH_MISMATCH")
    assert (not_json.status_code, not_json.json()["error"]) == (400, "BAD_JSON")
    assert (not_segment.status_code, not_segment.json()["error"]) == (422, "MALFORMED")


async def test_pushes_of_one_chain_at_once_have_exactly_one_winner(
    harness: Harness, segments: list[Segment], device_key: SigningKey, tmp_path: Path
) -> None:
    clone = make_ledger(tmp_path / "clone.db", device_key, calls=12, seal_every=10,
                        close=False, clock=Clock(step=7))
    fork = clone.segments("sess-1")[0]
    clone.close()
    auth = harness.token(device="laptop-1")
    answers: list[httpx.Response] = []
    async with harness.client() as client:

        async def push(segment: Segment) -> None:
            answers.append(await client.post("/v1/segments", json=wire(segment, device_key),
                                             headers=auth))

        async with anyio.create_task_group() as group:
            for _ in range(6):
                group.start_soon(push, segments[0])
            group.start_soon(push, fork)
    accepted = [a for a in answers if a.status_code == 200 and not a.json()["duplicate"]]
    assert len(accepted) == 1
    winner = accepted[0].json()["receipt"]
    for answer in answers:
        if answer.status_code == 200:
            assert answer.json()["receipt"] == winner
        else:
            assert (answer.status_code, answer.json()["error"]) == (409, "FORK")


# --------------------------------------------------------------------------------------- auth

async def test_tokens_and_scopes(
    harness: Harness, segments: list[Segment], device_key: SigningKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = harness.token(scopes=(Scope.READ,))
    body = wire(segments[0], device_key)
    with caplog.at_level(logging.WARNING, logger="trackwrap.collector"):
        async with harness.client() as client:
            missing = await client.post("/v1/segments", json=body)
            unknown = await client.post("/v1/segments", json=body,
                                        headers={"authorization": "Bearer twc_nope"})
            read_only = await client.post("/v1/segments", json=body, headers=reader)
            ingest = harness.token(device="laptop-1")
            cannot_read = await client.get("/v1/sessions", headers=ingest)
    assert (missing.status_code, missing.json()["error"]) == (401, "UNAUTHENTICATED")
    assert (unknown.status_code, unknown.json()["error"]) == (401, "UNKNOWN_TOKEN")
    assert (read_only.status_code, read_only.json()["error"]) == (403, "FORBIDDEN")
    assert (cannot_read.status_code, cannot_read.json()["error"]) == (403, "FORBIDDEN")
    logged = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith(("401", "403")) for m in logged) == 4


async def test_a_revoked_token_is_refused(harness: Harness) -> None:
    auth = harness.token(scopes=(Scope.READ,))
    async with harness.client() as client:
        assert (await client.get("/v1/sessions", headers=auth)).status_code == 200
        [record] = harness.storage.tokens()
        assert harness.storage.revoke_token(record.id, now_ms=NOW)
        answer = await client.get("/v1/sessions", headers=auth)
    assert (answer.status_code, answer.json()["error"]) == (401, "REVOKED_TOKEN")


async def test_a_device_keeps_the_key_it_first_used(
    harness: Harness, segments: list[Segment], device_key: SigningKey
) -> None:
    auth = harness.token(device="laptop-1")
    stranger = SigningKey.generate()
    async with harness.client() as client:
        first = await client.post("/v1/segments", json=wire(segments[0], device_key),
                                  headers=auth)
        other_key = await client.post("/v1/segments", json=wire(segments[1], stranger),
                                      headers=auth)
    assert first.status_code == 200
    assert (other_key.status_code, other_key.json()["error"]) == (403, "KEY_MISMATCH")
    assert [k.key_id for k in harness.storage.device_keys("laptop-1")] == [device_key.key_id]


async def test_a_key_registered_by_the_admin_beats_first_use(
    harness: Harness, segments: list[Segment], device_key: SigningKey
) -> None:
    from trackwrap.collector import DeviceKey

    admin_key = SigningKey.generate()
    harness.storage.add_device_key("laptop-1", DeviceKey(
        key_id=admin_key.key_id, public_raw=admin_key.public_raw, registered_ms=NOW,
        how="admin"), only_if_none=False)
    auth = harness.token(device="laptop-1")
    async with harness.client() as client:
        answer = await client.post("/v1/segments", json=wire(segments[0], device_key),
                                   headers=auth)
    assert (answer.status_code, answer.json()["error"]) == (403, "KEY_MISMATCH")


async def test_a_body_over_the_cap_is_refused(storage: Storage, device_key: SigningKey) -> None:
    harness = harness_for(storage, max_body=4096)
    auth = harness.token(device="laptop-1")
    big = {"public_key": public_key_text(device_key), "padding": "x" * 5000}
    async with harness.client() as client:
        declared = await client.post("/v1/segments", json=big, headers=auth)

        async def chunks():  # no Content-Length: the cap applies while reading
            for _ in range(10):
                yield b"x" * 1000

        streamed = await client.post("/v1/segments", content=chunks(), headers=auth)
    assert (declared.status_code, declared.json()["error"]) == (413, "TOO_LARGE")
    assert (streamed.status_code, streamed.json()["error"]) == (413, "TOO_LARGE")


# ----------------------------------------------------------------------------------- diagnose

async def test_diagnose_is_the_local_diagnosis_plus_the_witness(
    harness: Harness, device_key: SigningKey, trackwrap_home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ledger = make_ledger(trackwrap_home / "ledger.db", device_key, calls=45)
    segments = ledger.segments("sess-1")
    ledger.close()
    assert main(["diagnose", "sess-1", "--json"]) == 0
    local = json.loads(capsys.readouterr().out)
    auth = harness.token(device="laptop-1")
    reader = harness.token(scopes=(Scope.READ,))
    async with harness.client() as client:
        for segment in segments:
            pushed = await client.post("/v1/segments", json=wire(segment, device_key),
                                       headers=auth)
            assert pushed.status_code == 200
        answer = await client.get("/v1/diagnose/session", params={"id": "sess-1"},
                                  headers=reader)
        cached = await client.get("/v1/diagnose/session",
                                  params={"id": "sess-1", "device": "laptop-1"}, headers=reader)
    assert answer.status_code == 200
    remote = answer.json()
    witnessed = remote.pop("witnessed")
    assert remote == local
    assert local["tool_calls"]["denied"] > 0 and local["audit_anchor"]["status"] == "pass"
    assert witnessed == {"through_seq": segments[-1].last_seq, "segments": len(segments),
                         "collector": harness.key.key_id}
    assert cached.json() == answer.json()


async def test_diagnose_follows_new_segments_and_names_ambiguity(
    harness: Harness, segments: list[Segment], device_key: SigningKey
) -> None:
    first, second = harness.token(device="laptop-1"), harness.token(device="laptop-2")
    reader = harness.token(scopes=(Scope.READ,))
    async with harness.client() as client:
        await client.post("/v1/segments", json=wire(segments[0], device_key), headers=first)
        early = (await client.get("/v1/diagnose/session", params={"id": "sess-1"},
                                  headers=reader)).json()
        await client.post("/v1/segments", json=wire(segments[1], device_key), headers=first)
        later = (await client.get("/v1/diagnose/session", params={"id": "sess-1"},
                                  headers=reader)).json()
        await client.post("/v1/segments", json=wire(segments[0], device_key), headers=second)
        ambiguous = await client.get("/v1/diagnose/session", params={"id": "sess-1"},
                                     headers=reader)
        chosen = await client.get("/v1/diagnose/session",
                                  params={"id": "sess-1", "device": "laptop-2"}, headers=reader)
        unknown = await client.get("/v1/diagnose/session", params={"id": "nope"},
                                   headers=reader)
    assert early["witnessed"]["through_seq"] == segments[0].last_seq
    assert later["witnessed"]["through_seq"] == segments[1].last_seq
    assert len(later["events"]) > len(early["events"])
    assert ambiguous.status_code == 409
    assert ambiguous.json()["devices"] == ["laptop-1", "laptop-2"]
    assert chosen.json()["witnessed"]["through_seq"] == segments[0].last_seq
    assert (unknown.status_code, unknown.json()["error"]) == (404, "NOT_FOUND")


# ----------------------------------------------------------------------------------- sessions

async def test_sessions_are_summarized_and_filtered(
    harness: Harness, tmp_path: Path
) -> None:
    alice_key, bob_key = SigningKey.generate(), SigningKey.generate()
    runs = [  # (device, developer, key, session, agent, start ms, mixed)
        ("laptop-a", "alice@acme.com", alice_key, "sess-a1", "claude-code", 1_000_000, True),
        ("laptop-b", "bob@acme.com", bob_key, "sess-b1", "codex", 2_000_000, False),
        ("laptop-a", "alice@acme.com", alice_key, "sess-a2", "claude-code", 3_000_000, False),
    ]
    reader = harness.token(scopes=(Scope.READ,))
    async with harness.client() as client:
        for device, developer, key, session, agent, start, mixed in runs:
            ledger = make_ledger(tmp_path / f"{session}.db", key, session=session, calls=25,
                                 agent=agent, mixed=mixed, clock=Clock(start=start, step=10))
            auth = harness.token(device=device, developer=developer)
            for segment in ledger.segments(session):
                pushed = await client.post("/v1/segments", json=wire(segment, key),
                                           headers=auth)
                assert pushed.status_code == 200
            ledger.close()

        async def listed(**params: str) -> list[str]:
            answer = await client.get("/v1/sessions", params=params, headers=reader)
            assert answer.status_code == 200, answer.text
            return [s["session"] for s in answer.json()["sessions"]]

        everything = (await client.get("/v1/sessions", headers=reader)).json()["sessions"]
        assert [s["session"] for s in everything] == ["sess-a2", "sess-b1", "sess-a1"]
        assert await listed(developer="alice@acme.com") == ["sess-a2", "sess-a1"]
        assert await listed(agent="codex") == ["sess-b1"]
        assert await listed(outcome="denied") == ["sess-a1"]
        assert await listed(outcome="drift") == ["sess-a1"]
        assert await listed(outcome="approval") == ["sess-a1"]
        assert await listed(since="1900000", until="2500000") == ["sess-b1"]
        bad = await client.get("/v1/sessions", params={"outcome": "nope"}, headers=reader)
        assert (bad.status_code, bad.json()["error"]) == (400, "BAD_QUERY")
    mixed_one = everything[2]
    assert 1_000_000 < mixed_one["first_ts_ms"] < mixed_one["last_ts_ms"] < 2_000_000
    assert mixed_one["events"] == mixed_one["through_seq"] + 1
    assert {k: v for k, v in mixed_one.items()
            if k not in ("first_ts_ms", "last_ts_ms", "events", "through_seq", "segments")} == {
        "device": "laptop-a", "developer": "alice@acme.com", "session": "sess-a1",
        "agent": "claude-code", "role": "code-reviewer", "allowed": 19, "denied": 6,
        "held_for_approval": 0, "approval_requests": 2, "drift": 3, "closed": True}


# ---------------------------------------------------------------------------------- approvals

def approval_body(approval_id: str = "apr-1", *, expires_ms: int = NOW + 60_000,
                  **request: object) -> dict[str, object]:
    return {"id": approval_id, "session": "sess-1", "action_hash": "sha256:" + "ab" * 32,
            "request": {"requester": "priya@acme.com", "server": "git", "tool": "git_push",
                        "rule": "PUSH-NEEDS-APPROVAL", **request},
            "requested_ms": NOW, "expires_ms": expires_ms}


def signed(body: dict[str, object], *, verdict: str = "approve", approver: str = "ops@acme.com",
           approval_id: str | None = None, decided_ms: int = NOW + 1000) -> dict[str, str]:
    record = ApprovalRecord(
        id=approval_id or str(body["id"]), session=str(body["session"]),
        action_hash=str(body["action_hash"]), state="pending", requested_ms=NOW,
        expires_ms=int(str(body["expires_ms"])), request={})
    decision = sign_decision(SigningKey.generate(), record, verdict=verdict, approver=approver,
                             reason="looks fine", decided_ms=decided_ms)
    return {"envelope": decision.envelope}


async def test_approvals_are_published_once_per_id(harness: Harness) -> None:
    device = harness.token(device="laptop-1")
    other = harness.token(device="laptop-2")
    reader = harness.token(scopes=(Scope.READ,))
    async with harness.client() as client:
        created = await client.post("/v1/approvals", json=approval_body(), headers=device)
        again = await client.post("/v1/approvals", json=approval_body(), headers=device)
        changed = await client.post("/v1/approvals", json=approval_body(tool="other"),
                                    headers=device)
        stolen = await client.post("/v1/approvals", json=approval_body(), headers=other)
        listed = await client.get("/v1/approvals", params={"state": "pending"}, headers=reader)
        by_device = await client.get("/v1/approvals", headers=device)
        own = await client.get("/v1/approvals/apr-1", headers=device)
        foreign = await client.get("/v1/approvals/apr-1", headers=other)
        missing = await client.get("/v1/approvals/apr-404", headers=reader)
        malformed = await client.post("/v1/approvals", json={"id": "x"}, headers=device)
    assert created.status_code == 201 and created.json()["duplicate"] is False
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert (changed.status_code, changed.json()["error"]) == (409, "CONFLICT")
    assert (stolen.status_code, stolen.json()["error"]) == (403, "FORBIDDEN")
    [pending] = listed.json()["approvals"]
    assert pending == {
        "id": "apr-1", "state": "pending", "device": "laptop-1", "session": "sess-1",
        "action_hash": "sha256:" + "ab" * 32, "request": approval_body()["request"],
        "requested_ms": NOW, "expires_ms": NOW + 60_000, "decision": None, "approver": None,
        "decided_ms": None}
    assert by_device.status_code == 403
    assert own.json() == pending
    assert foreign.status_code == 403
    assert missing.status_code == 404
    assert (malformed.status_code, malformed.json()["error"]) == (422, "MALFORMED")


async def test_a_long_poll_wakes_on_the_decision(harness: Harness) -> None:
    device = harness.token(device="laptop-1")
    approver = harness.token(developer="ops@acme.com", scopes=(Scope.APPROVE,))
    body = approval_body()
    answers: dict[str, httpx.Response] = {}
    async with harness.client() as client:
        assert (await client.post("/v1/approvals", json=body, headers=device)).status_code == 201
        at_once = await client.get("/v1/approvals/apr-1", params={"wait": "0"}, headers=device)
        assert at_once.json()["state"] == "pending"

        async def wait_for_it() -> None:
            answers["poll"] = await client.get("/v1/approvals/apr-1", params={"wait": "30"},
                                               headers=device)

        with anyio.fail_after(10):  # SQLite has no polling: only the wake-up ends it early
            async with anyio.create_task_group() as group:
                group.start_soon(wait_for_it)
                while harness.app.state.waiters.waiting("apr-1") == 0:
                    await anyio.lowlevel.checkpoint()
                answers["decision"] = await client.post(
                    "/v1/approvals/apr-1/decision", json=signed(body), headers=approver)
    assert answers["decision"].status_code == 200, answers["decision"].text
    poll = answers["poll"].json()
    assert poll["state"] == "approved"
    assert poll["approver"] == "ops@acme.com"
    assert poll["decision"] == signed_envelope_of(answers["decision"])


def signed_envelope_of(answer: httpx.Response) -> str:
    envelope = answer.json()["decision"]
    assert isinstance(envelope, str) and "payloadType" in envelope
    return envelope


async def test_decision_rules(harness: Harness) -> None:
    device = harness.token(device="laptop-1")
    ops = harness.token(developer="ops@acme.com", scopes=(Scope.APPROVE,))
    priya = harness.token(developer="priya@acme.com", scopes=(Scope.APPROVE,))
    plain = approval_body("apr-plain")
    separate = approval_body("apr-separate", separate_approver=True)
    async with harness.client() as client:
        for body in (plain, separate):
            await client.post("/v1/approvals", json=body, headers=device)

        async def decide(approval_id: str, payload: dict[str, str],
                         auth: dict[str, str]) -> httpx.Response:
            return await client.post(f"/v1/approvals/{approval_id}/decision", json=payload,
                                     headers=auth)

        by_device = await decide("apr-plain", signed(plain), device)
        in_another_name = await decide("apr-plain", signed(plain, approver="boss@acme.com"), ops)
        wrong_call = await decide("apr-plain", signed(plain, approval_id="apr-separate"), ops)
        own_request = await decide("apr-separate",
                                   signed(separate, approver="priya@acme.com"), priya)
        not_json = await client.post("/v1/approvals/apr-plain/decision", content=b"[",
                                     headers=ops)
        unknown = await decide("apr-404", signed(plain, approval_id="apr-404"), ops)
        denied = await decide("apr-plain", signed(plain, verdict="deny"), ops)
        second = await decide("apr-plain", signed(plain), ops)
        by_someone_else = await decide("apr-separate", signed(separate), ops)
    assert (by_device.status_code, by_device.json()["error"]) == (403, "FORBIDDEN")
    assert (in_another_name.status_code, in_another_name.json()["error"]) == (
        403, "NOT_YOUR_NAME")
    assert (wrong_call.status_code, wrong_call.json()["error"]) == (422, "DECISION_MISMATCH")
    assert (own_request.status_code, own_request.json()["error"]) == (403, "SEPARATE_APPROVER")
    assert not_json.status_code == 400
    assert unknown.status_code == 404
    assert denied.status_code == 200 and denied.json()["state"] == "denied"
    assert (second.status_code, second.json()["error"]) == (409, "ALREADY_DECIDED")
    assert by_someone_else.status_code == 200
    assert by_someone_else.json()["state"] == "approved"


async def test_an_expired_approval_takes_no_decision(harness: Harness) -> None:
    device = harness.token(device="laptop-1")
    ops = harness.token(developer="ops@acme.com", scopes=(Scope.APPROVE,))
    reader = harness.token(scopes=(Scope.READ,))
    body = approval_body(expires_ms=NOW + 5_000)
    async with harness.client() as client:
        await client.post("/v1/approvals", json=body, headers=device)
        harness.clock.now = NOW + 5_000
        late = await client.post("/v1/approvals/apr-1/decision",
                                 json=signed(body, decided_ms=NOW + 4_000), headers=ops)
        state = await client.get("/v1/approvals/apr-1", params={"wait": "5"}, headers=reader)
        expired = await client.get("/v1/approvals", params={"state": "expired"}, headers=reader)
        pending = await client.get("/v1/approvals", params={"state": "pending"}, headers=reader)
    assert (late.status_code, late.json()["error"]) == (409, "EXPIRED")
    assert state.json()["state"] == "expired"
    assert [a["id"] for a in expired.json()["approvals"]] == ["apr-1"]
    assert pending.json()["approvals"] == []


# ------------------------------------------------------------------------------ unauthenticated

async def test_health_metrics_openapi_and_json_errors(harness: Harness) -> None:
    async with harness.client() as client:
        health = await client.get("/healthz")
        metrics = await client.get("/metrics")
        spec = await client.get("/openapi.json")
        nowhere = await client.get("/v2/nothing")
        wrong_method = await client.delete("/v1/segments")
    assert health.json() == {"status": "ok", "storage": harness.storage.kind,
                             "reachable": True}
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE trackwrap_collector_rejections_total counter" in metrics.text
    paths = spec.json()["paths"]
    assert {"/v1/segments", "/v1/diagnose/session", "/v1/sessions", "/v1/approvals",
            "/v1/approvals/{id}", "/v1/approvals/{id}/decision", "/healthz", "/metrics",
            "/v1/collector"} <= set(paths)
    assert (nowhere.status_code, nowhere.json()["error"]) == (404, "NOT_FOUND")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405,
                                                                         "METHOD_NOT_ALLOWED")


async def test_a_closed_storage_answers_503_not_a_traceback(harness: Harness) -> None:
    auth = harness.token(scopes=(Scope.READ,))
    harness.storage.close()
    async with harness.client() as client:
        health = await client.get("/healthz")
        sessions = await client.get("/v1/sessions", headers=auth)
    assert health.status_code == 503
    assert (sessions.status_code, sessions.json()["error"]) == (503, "UNAVAILABLE")


def test_the_stored_receipt_key_is_made_once(storage: Storage) -> None:
    from trackwrap.collector import collector_key

    first = collector_key(storage, None)
    assert collector_key(storage, None).key_id == first.key_id
