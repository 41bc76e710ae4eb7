"""Approvals end to end: real wrapper processes in front of the outbox server, the CLI deciding
from "a second terminal", the ledger as the record, webhooks to a real HTTP receiver."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest
from standardwebhooks.webhooks import Webhook

from tests._wrapper import ROOT, TIMEOUT, Wrapped, call, wrapper_argv
from trackwrap.approvals import sign_decision
from trackwrap.crypto import SigningKey
from trackwrap.ledger import ApprovalRecord, Ledger

pytestmark = pytest.mark.anyio

POLICY = ROOT / "tests" / "data" / "approval-policy.yaml"
SECRET = "whsec_" + base64.b64encode(b"approval-webhook-test-secret-32b").decode()


def tw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trackwrap", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, check=False)


async def atw(*args: str) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process([sys.executable, "-m", "trackwrap", *args], check=False,
                                   cwd=ROOT)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


def sent(outbox: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(outbox.glob("*.json"))]


async def start(ws: Path, outbox: Path, *options: str, policy: Path | None = POLICY) -> Wrapped:
    argv = wrapper_argv(
        [sys.executable, "-m", "trackwrap.demo_servers.outbox", "--outbox", str(outbox)],
        *options, server="outbox", policy=policy, workspace=ws,
    )
    wrapped = await Wrapped.start(argv)
    await wrapped.initialize()
    await wrapped.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    return wrapped


def email(msg_id: Any, to: str, *, progress: Any = None, subject: str = "hi") -> dict[str, Any]:
    msg = call(msg_id, "send_email", {"to": to, "subject": subject, "body": "hello"})
    if progress is not None:
        msg["params"]["_meta"] = {"progressToken": progress}
    return msg


def text_of(resp: dict[str, Any]) -> str:
    return str(resp["result"]["content"][0]["text"])


def ledger(home: Path) -> Ledger:
    key = SigningKey.generate()
    return Ledger.open(home / "ledger.db", signer=lambda: key,
                       clock_ms=lambda: time.time_ns() // 1_000_000)


def approvals(home: Path, **filters: Any) -> list[ApprovalRecord]:
    with ledger(home) as opened:
        return opened.approvals(**filters)


def events(home: Path, kind_prefix: str = "") -> list[dict[str, Any]]:
    with ledger(home) as opened:
        return [e.body for e in opened.events() if str(e.body["kind"]).startswith(kind_prefix)]


async def pending_approval(home: Path) -> ApprovalRecord:
    """The one pending approval, once the wrapper has asked for it."""
    with anyio.fail_after(TIMEOUT):
        while True:
            found = approvals(home, states=("pending",))
            if found:
                assert len(found) == 1
                return found[0]
            await anyio.sleep(0.05)


async def response_to(wrapped: Wrapped, msg_id: Any) -> tuple[dict[str, Any], list[dict]]:
    """The response to ``msg_id`` and the progress notifications seen before it."""
    progress = []
    while True:
        msg = await wrapped.recv()
        if msg.get("method") == "notifications/progress":
            progress.append(msg)
            continue
        if msg.get("id") == msg_id:
            return msg, progress


def approver(tmp_path: Path, name: str = "ops@acme.com", group: str = "ops") -> Path:
    """A trusted approver's key file (made and registered with the CLI)."""
    key_file = tmp_path / f"{name}.key"
    made = tw("keys", "generate", "--out", str(key_file))
    assert made.returncode == 0, made.stderr
    public = next(line.split()[-1] for line in made.stdout.splitlines()
                  if line.startswith("public key"))
    added = tw("trust", "add-approver", name, "--key", public, "--group", group)
    assert added.returncode == 0, added.stderr
    return key_file


# ------------------------------------------------------------------------------ the main flow


async def test_approved_in_time_forwards_the_call_once(
    ws: Path, outbox: Path, trackwrap_home: Path
) -> None:
    (trackwrap_home / "approvals.yaml").write_text("version: 1\nprogress_every: 0.3s\n")
    wrapped = await start(ws, outbox, "--approval-wait", "30")
    try:
        await wrapped.send(email(1, "bob@example.org", progress="tok-1"))
        record = await pending_approval(trackwrap_home)
        assert record.request["target"] == "bob@example.org"
        assert record.request["rule"] == "EMAIL-EXTERNAL-APPROVAL"
        await anyio.sleep(0.7)  # long enough for progress to flow
        decided = await atw("approve", record.id, "--reason", "expected customer mail")
        assert decided.returncode == 0, decided.stderr
        resp, progress = await response_to(wrapped, 1)
        assert not resp["result"].get("isError"), resp
        assert "queued message" in text_of(resp)
        assert progress, "a held call keeps the client informed"
        values = [p["params"]["progress"] for p in progress]
        assert values == sorted(set(values)) and all(p["params"]["progressToken"] == "tok-1"
                                                     for p in progress)
        assert record.id in progress[0]["params"]["message"]
        assert [m["to"] for m in sent(outbox)] == [["bob@example.org"]]

        # The approval is spent: the same call again needs a new one.
        await wrapped.send(email(2, "bob@example.org"))
        again = await pending_approval(trackwrap_home)
        await wrapped.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                            "params": {"requestId": 2}})
    finally:
        await wrapped.finish()
    assert again.id != record.id
    assert len(sent(outbox)) == 1
    kinds = [e["kind"] for e in events(trackwrap_home, "approval.")]
    assert kinds[:4] == ["approval.requested", "approval.decided", "approval.redeemed",
                         "approval.requested"]
    decisions = events(trackwrap_home, "tool_call.")
    held, allowed = decisions[0], decisions[1]
    assert (held["decision"], held["forwarded"], held["approval_id"]) == (
        "require_approval", False, record.id)
    assert (allowed["decision"], allowed["forwarded"], allowed["approval_id"]) == (
        "allow", True, record.id)
    assert allowed["trace"] == held["trace"]
    assert "expected customer mail" in allowed["reason"]
    assert tw("audit", "verify").returncode == 0


async def test_denied_call_is_answered_with_the_reason(
    ws: Path, outbox: Path, trackwrap_home: Path
) -> None:
    wrapped = await start(ws, outbox, "--approval-wait", "30")
    try:
        await wrapped.send(email(1, "bob@example.org"))
        record = await pending_approval(trackwrap_home)
        decided = await atw("deny", record.id, "--reason", "not to customers on Fridays")
        assert decided.returncode == 0, decided.stderr
        resp, _ = await response_to(wrapped, 1)
    finally:
        await wrapped.finish()
    assert resp["result"]["isError"] is True
    assert "APPROVAL-DENIED" in text_of(resp)
    assert "not to customers on Fridays" in text_of(resp)
    assert sent(outbox) == []


async def test_timeout_then_retry_redeems_once_and_other_calls_need_their_own(
    ws: Path, outbox: Path, trackwrap_home: Path
) -> None:
    wrapped = await start(ws, outbox, "--approval-wait", "0.5")
    try:
        resp = await wrapped.request(email(1, "bob@example.org"))
        assert resp["result"]["isError"] is True
        meta = resp["result"]["_meta"]["dev.trackwrap/approval"]
        assert meta["state"] == "pending"
        assert meta["id"] in text_of(resp) and "call again with the same" in text_of(resp)
        assert (await atw("approve", meta["id"])).returncode == 0

        other = await wrapped.request(email(2, "carol@example.org"))
        assert other["result"]["isError"] is True  # approving one call lets no other through
        assert other["result"]["_meta"]["dev.trackwrap/approval"]["id"] != meta["id"]

        retry = await wrapped.request(email(3, "bob@example.org"))
        assert not retry["result"].get("isError"), retry
        third = await wrapped.request(email(4, "bob@example.org"))
        assert third["result"]["isError"] is True
    finally:
        await wrapped.finish()
    assert [m["to"] for m in sent(outbox)] == [["bob@example.org"]]
    waits = events(trackwrap_home, "approval.wait_ended")
    assert waits and waits[0]["how"] == "timed_out"


async def test_expired_approval_is_reported_once_then_asked_anew(
    ws: Path, outbox: Path, trackwrap_home: Path
) -> None:
    wrapped = await start(ws, outbox, "--approval-wait", "0.3")
    try:
        first = await wrapped.request(email(1, "dan@short.example"))
        first_id = first["result"]["_meta"]["dev.trackwrap/approval"]["id"]
        await anyio.sleep(2.2)  # the rule's ttl is 2 s
        late = await atw("approve", first_id)
        assert late.returncode != 0  # nobody can approve it any more
        expired = await wrapped.request(email(2, "dan@short.example"))
        assert "APPROVAL-EXPIRED" in text_of(expired)
        anew = await wrapped.request(email(3, "dan@short.example"))
    finally:
        await wrapped.finish()
    assert "REQUIRE_APPROVAL" in text_of(anew)
    assert anew["result"]["_meta"]["dev.trackwrap/approval"]["id"] != first_id
    assert "approval.expired" in [e["kind"] for e in events(trackwrap_home, "approval.")]
    assert sent(outbox) == []


async def test_cancel_while_pending_drops_the_call(
    ws: Path, outbox: Path, trackwrap_home: Path
) -> None:
    wrapped = await start(ws, outbox, "--approval-wait", "30")
    try:
        await wrapped.send(email(7, "bob@example.org"))
        record = await pending_approval(trackwrap_home)
        await wrapped.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                            "params": {"requestId": 7, "reason": "user pressed stop"}})
        pong = await wrapped.request({"jsonrpc": "2.0", "id": 8, "method": "ping"})
        assert pong == {"jsonrpc": "2.0", "id": 8, "result": {}}
        # Approving now changes nothing for the cancelled call: it is gone.
        assert (await atw("approve", record.id)).returncode == 0
        await anyio.sleep(0.5)
        code, _err = await wrapped.finish()
    finally:
        wrapped.kill()
    assert code == 0
    assert not any(json.loads(line).get("id") == 7 for line in wrapped.raw_lines if line)
    assert sent(outbox) == []
    ended = events(trackwrap_home, "approval.wait_ended")
    assert [e["how"] for e in ended] == ["cancelled"]


async def test_client_gives_up_first_and_its_retry_joins_the_same_approval(
    ws: Path, outbox: Path, trackwrap_home: Path
) -> None:
    """A client whose tool timeout is shorter than the wait cancels and calls again with a new
    id: the retry waits on the same approval and goes through when it is granted."""
    wrapped = await start(ws, outbox, "--approval-wait", "30")
    try:
        await wrapped.send(email(1, "bob@example.org"))
        record = await pending_approval(trackwrap_home)
        await wrapped.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                            "params": {"requestId": 1, "reason": "timed out"}})
        await wrapped.send(email(2, "bob@example.org"))
        await anyio.sleep(0.3)
        assert [r.id for r in approvals(trackwrap_home)] == [record.id]
        assert (await atw("approve", record.id)).returncode == 0
        resp, _ = await response_to(wrapped, 2)
    finally:
        await wrapped.finish()
    assert "queued message" in text_of(resp)
    assert len(sent(outbox)) == 1


async def test_concurrent_wrappers_redeem_one_approval_once(
    ws: Path, outbox: Path, trackwrap_home: Path
) -> None:
    first = await start(ws, outbox, "--approval-wait", "0.3")
    second = await start(ws, outbox, "--approval-wait", "0.3")
    try:
        a = await first.request(email(1, "bob@example.org"))
        b = await second.request(email(1, "bob@example.org"))
        approval_id = a["result"]["_meta"]["dev.trackwrap/approval"]["id"]
        assert b["result"]["_meta"]["dev.trackwrap/approval"]["id"] == approval_id  # joined
        assert (await atw("approve", approval_id)).returncode == 0
        await first.send(email(2, "bob@example.org"))
        await second.send(email(2, "bob@example.org"))
        answers = [await first.recv(), await second.recv()]
    finally:
        await first.finish()
        await second.finish()
    forwarded = [r for r in answers if not r["result"].get("isError")]
    refused = [r for r in answers if r["result"].get("isError")]
    assert len(forwarded) == 1 and len(refused) == 1, answers
    assert "APPROVAL-USED" in text_of(refused[0])
    assert len(sent(outbox)) == 1
    assert len(events(trackwrap_home, "approval.redeemed")) == 1


# ------------------------------------------------------------------------------ who may decide


async def test_forged_and_unauthorized_decisions_never_count(
    ws: Path, outbox: Path, trackwrap_home: Path, tmp_path: Path
) -> None:
    wrapped = await start(ws, outbox, "--approval-wait", "30")
    try:
        await wrapped.send(email(1, "bob@example.org"))
        record = await pending_approval(trackwrap_home)
        # Someone with write access to the ledger records an approval signed by a key nobody
        # trusts: the waiting wrapper checks the signature and refuses it.
        mallory = SigningKey.generate()
        forged = sign_decision(mallory, record, verdict="approve", approver="ops@acme.com",
                               reason="trust me", decided_ms=record.requested_ms + 1)
        with ledger(trackwrap_home) as opened:
            assert opened.transition_approval(
                record.id, expect="pending", state="approved", event=None,
                columns={"decision": forged.envelope, "approver": "ops@acme.com",
                         "decided_ms": record.requested_ms + 1},
            ) is not None
        resp, _ = await response_to(wrapped, 1)
    finally:
        await wrapped.finish()
    assert resp["result"]["isError"] is True
    assert "APPROVAL-REJECTED" in text_of(resp) and "not a trusted approver" in text_of(resp)
    assert sent(outbox) == []
    rejected = events(trackwrap_home, "approval.rejected")
    assert len(rejected) == 1 and rejected[0]["approval_id"] == record.id


async def test_separate_approver_and_approver_groups(
    ws: Path, outbox: Path, trackwrap_home: Path, tmp_path: Path
) -> None:
    ops_key = approver(tmp_path, "ops@acme.com", "ops")
    dev_key = approver(tmp_path, "eve@acme.com", "dev")
    wrapped = await start(ws, outbox, "--approval-wait", "30")
    try:
        await wrapped.send(email(1, "pager@ops.example"))
        record = await pending_approval(trackwrap_home)
        assert record.request["separate_approver"] is True
        own = await atw("approve", record.id)  # this device's key: the requester's own
        assert own.returncode != 0
        assert b"cannot approve their own request" in own.stderr
        wrong_group = await atw("approve", record.id, "--key", str(dev_key))
        assert wrong_group.returncode != 0
        assert b"not in an approver group" in wrong_group.stderr
        assert approvals(trackwrap_home)[0].state == "pending"
        ok = await atw("approve", record.id, "--key", str(ops_key), "--reason", "paging ops")
        assert ok.returncode == 0, ok.stderr
        resp, _ = await response_to(wrapped, 1)
    finally:
        await wrapped.finish()
    assert "queued message" in text_of(resp)
    decided = events(trackwrap_home, "approval.decided")
    assert [(e["verdict"], e["approver"]) for e in decided] == [("approve", "ops@acme.com")]
    assert decided[0]["envelope"]["payloadType"].endswith("approval-decision+json")


async def test_a_call_in_a_batch_asks_but_is_not_forwarded(
    ws: Path, outbox: Path, trackwrap_home: Path
) -> None:
    wrapped = await start(ws, outbox, "--approval-wait", "30")
    try:
        replies = await wrapped.request([email(1, "bob@example.org"),
                                         email(2, "alice@acme.com")])
    finally:
        await wrapped.finish()
    by_id = {r["id"]: r for r in replies}
    assert "REQUIRE_APPROVAL" in text_of(by_id[1])
    assert "BATCH-DENIED" in text_of(by_id[2])
    assert sent(outbox) == []
    assert [r.state for r in approvals(trackwrap_home)] == ["pending"]


# ------------------------------------------------------------------------------ notifications


class Receiver:
    """A real HTTP endpoint on 127.0.0.1 that checks Standard Webhooks signatures."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any], bool]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                verified = True
                if self.path == "/hook":
                    try:
                        Webhook(SECRET).verify(body, dict(self.headers))
                    except Exception:  # noqa: BLE001 - any failure is "not verified"
                        verified = False
                receiver.received.append((self.path, json.loads(body), verified))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


async def test_webhook_and_slack_notified_and_recorded_failures_change_nothing(
    ws: Path, outbox: Path, trackwrap_home: Path, receiver: Receiver
) -> None:
    (trackwrap_home / "approvals.yaml").write_text(
        "version: 1\n"
        "notify: [ops, ops-slack, dead]\n"
        "channels:\n"
        f"  ops: {{type: webhook, url: '{receiver.url}/hook', secret: '{SECRET}'}}\n"
        f"  ops-slack: {{type: slack, url: '{receiver.url}/slack/T0/B0/xyz'}}\n"
        "  dead: {type: webhook, url: 'http://127.0.0.1:9/hook', secret: "
        f"'{SECRET}'}}\n"
    )
    wrapped = await start(ws, outbox, "--approval-wait", "0.5")
    try:
        resp = await wrapped.request(email(1, "bob@example.org"))
        approval_id = resp["result"]["_meta"]["dev.trackwrap/approval"]["id"]
        with anyio.fail_after(TIMEOUT):
            while len(events(trackwrap_home, "approval.notified")) < 3:  # noqa: ASYNC110
                await anyio.sleep(0.1)
    finally:
        await wrapped.finish()
    assert resp["result"]["isError"] is True  # a failed delivery never lets a call through
    hooks = [(body, ok) for path, body, ok in receiver.received if path == "/hook"]
    assert len(hooks) == 1 and hooks[0][1], "signature verified by standardwebhooks"
    assert hooks[0][0]["type"] == "approval.requested"
    assert hooks[0][0]["data"]["approval_id"] == approval_id
    assert hooks[0][0]["data"]["target"] == "bob@example.org"
    slack = [body for path, body, _ in receiver.received if path.startswith("/slack")]
    assert len(slack) == 1
    assert f"trackwrap approve {approval_id}" in json.dumps(slack[0])
    notified = {e["channel"]: e for e in events(trackwrap_home, "approval.notified")}
    assert notified["ops"]["ok"] is True and notified["ops-slack"]["ok"] is True
    assert notified["dead"]["ok"] is False and notified["dead"]["attempts"] > 1
    assert sent(outbox) == []


# ------------------------------------------------------------------------------ a real client


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_sdk_client_times_out_then_its_retry_goes_through_after_approval(
    ws: Path, outbox: Path, trackwrap_home: Path, tmp_path: Path, mode: str
) -> None:
    """The MCP SDK's client in both protocol eras: progress while held, its own tool timeout
    firing first, and the identical retry going through once the approval is granted."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.shared.exceptions import MCPError

    (trackwrap_home / "approvals.yaml").write_text("version: 1\nprogress_every: 0.2s\n")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "trackwrap", "--server", "outbox", "--workspace", str(ws),
              "--policy", str(POLICY), "--approval-wait", "20", "--",
              sys.executable, "-m", "trackwrap.demo_servers.outbox", "--outbox", str(outbox)],
        env=dict(os.environ),  # the SDK passes only a few variables by default: keep our home
        cwd=str(ROOT),
    )
    arguments = {"to": "bob@example.org", "subject": "hi", "body": "hello"}
    seen: list[float] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(value)

    with (tmp_path / "server.log").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode=mode) as client:
            with pytest.raises(MCPError):
                await client.call_tool("send_email", arguments, read_timeout_seconds=1.0,
                                       progress_callback=progress)
            record = await pending_approval(trackwrap_home)
            assert (await atw("approve", record.id)).returncode == 0
            result = await client.call_tool("send_email", arguments)
    assert not result.is_error
    assert "queued message 1" in result.content[0].text
    assert seen and seen == sorted(seen)
    assert len(sent(outbox)) == 1
