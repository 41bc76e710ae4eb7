"""The gate between relay and pipeline: evaluate, record write-ahead, answer; and the relay's
own fail-closed boundary, in process over real pipes with a real upstream child."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from trackwrap.cli._build import build_governance, context_factory
from trackwrap.crypto import KeyStore
from trackwrap.errors import ProfileError
from trackwrap.inspectors import default_inspectors
from trackwrap.ledger import Ledger
from trackwrap.manifest import TrustStore
from trackwrap.relay import Relay, RelayOptions, StderrSink, spawn_child
from trackwrap.session import Binder, Governor

ROOT = Path(__file__).resolve().parents[1]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("a")
    return ws


@pytest.fixture
def ledger(trackwrap_home: Path):
    keys = KeyStore(trackwrap_home, backend="file", warn=lambda _m: None)
    led = Ledger.open(trackwrap_home / "ledger.db", signer=keys.device_key, clock_ms=_now_ms)
    led.ensure_session("sess-test", genesis={"workspace": "w"})
    yield led
    led.close()


def make_governor(ledger: Ledger, workspace: Path, *, mode: str | None = None,
                  home: Path | None = None) -> Governor:
    gov = build_governance(mode=mode)
    traces = iter(f"tr-{i:012x}" for i in range(1000))
    binder = Binder(
        ledger=ledger, workspace=str(workspace), profiles=gov.profiles, policy=gov.policy,
        inspectors=default_inspectors(), trust=lambda: TrustStore.load(Path("/nonexistent")),
        known_roles=frozenset, implicit_session="sess-implicit",
        implicit_genesis={"workspace": str(workspace)}, fixed_session="sess-test",
        default_role=None, require_session=False, say=lambda _m: None,
    )
    return Governor(
        binder=binder, ledger=ledger, server="filesystem",
        context=context_factory(workspace=str(workspace)), policy_hash=gov.policy.policy_hash,
        mode=gov.policy.mode.value, sink=StderrSink(fd=2), new_trace=lambda: next(traces),
    )


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}}


def decisions(ledger: Ledger) -> list[dict[str, Any]]:
    return [e.body for e in ledger.events("sess-test")
            if e.body.get("kind") == "tool_call.decision"]


def test_allowed_call_is_recorded_before_it_is_let_through(ledger, workspace):
    g = make_governor(ledger, workspace)
    j = g.evaluate(call("read_text_file", path=str(workspace / "a.txt")))
    assert j.allowed
    assert decisions(ledger) == []
    assert g.commit(j) is None
    [body] = decisions(ledger)
    assert body["decision"] == "allow"
    assert body["rule"] == "WORKSPACE-READ-ALLOW"
    assert body["forwarded"] is True
    assert body["action_kind"] == "filesystem.read"
    assert body["target"] == str(workspace / "a.txt")
    assert body["trace"] == "tr-000000000000"
    assert body["action_hash"].startswith("sha256:")


def test_denied_call_is_answered_with_a_readable_tool_error(ledger, workspace):
    g = make_governor(ledger, workspace)
    secret = str(Path.home() / ".aws" / "credentials")
    result = g.commit(g.evaluate(call("read_text_file", path=secret)))
    assert result is not None
    assert result["isError"] is True
    assert result["resultType"] == "complete"
    text = result["content"][0]["text"]
    assert text.startswith(f"DENY filesystem.read {secret} — credential store")
    assert text.endswith("(rule WORKSPACE-PATH-SCOPE, trace tr-000000000000)")
    [body] = decisions(ledger)
    assert body["forwarded"] is False
    assert body["findings"][0]["rule"] == "WORKSPACE-PATH-SCOPE"
    assert body["findings"][0]["confidence_milli"] == 1000


def test_override_turns_an_allowed_call_into_a_recorded_deny(ledger, workspace):
    g = make_governor(ledger, workspace)
    j = g.evaluate(call("read_text_file", path=str(workspace / "a.txt")))
    result = g.commit(j, override=("BATCH-DENIED", "the batch holds a denied call"))
    assert result is not None
    assert "rule BATCH-DENIED" in result["content"][0]["text"]
    assert decisions(ledger)[0]["rule"] == "BATCH-DENIED"


def test_a_call_without_a_tool_name_is_denied(ledger, workspace):
    g = make_governor(ledger, workspace)
    j = g.evaluate({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {}})
    assert not j.allowed
    assert j.decision.rule == "WIRE-INVALID-PARAMS"


def test_ledger_that_cannot_be_written_denies_even_allowed_calls(ledger, workspace):
    g = make_governor(ledger, workspace)
    j = g.evaluate(call("read_text_file", path=str(workspace / "a.txt")))
    # Disk full, as SQLite sees it: no page may be added to the database any more.
    conn = ledger._conn
    assert conn is not None
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    for _ in range(50):  # fill any last free page, then the next append fails
        result = g.commit(j)
        if result is not None:
            break
    assert result is not None
    assert "rule LEDGER-UNAVAILABLE" in result["content"][0]["text"]


def test_monitor_mode_records_the_deny_but_forwards(ledger, workspace):
    g = make_governor(ledger, workspace, mode="monitor")
    j = g.evaluate(call("write_file", path="/etc/passwd", content="x"))
    assert j.allowed
    assert g.commit(j) is None
    [body] = decisions(ledger)
    assert body["decision"] == "deny"
    assert body["enforced"] is False
    assert body["forwarded"] is True


class RaisingGate:
    """A gate whose every method fails: the relay must deny, never forward."""

    server = "echo"

    def evaluate(self, request: dict[str, Any]) -> Any:
        raise RuntimeError("policy exploded")

    def commit(self, judgement: Any, *, override: Any = None) -> Any:
        raise RuntimeError("ledger exploded")

    def bind(self, judgements: Any, raw: bytes) -> bytes:
        raise RuntimeError("bind exploded")

    def settle(self) -> None:
        raise RuntimeError("settle exploded")

    def background(self) -> tuple[()]:
        return ()

    def close(self) -> None:
        return None


async def _relay_once(gate_factory: Any, record: Path, lines: list[bytes]) -> list[dict]:
    """Run the relay in process: real pipes for stdin/stdout, the echo server as child."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    child = spawn_child([sys.executable, "-m", "tests.servers.echo", "--record", str(record)],
                        env=dict(os.environ), cwd=str(ROOT))
    relay = Relay(child=child, gate=gate_factory, sink=StderrSink(fd=2),
                  options=RelayOptions(server="echo", grace_s=0.5, term_s=0.5),
                  stdin_fd=in_r, stdout_fd=out_w)
    os.write(in_w, b"".join(line + b"\n" for line in lines))
    os.close(in_w)
    try:
        with anyio.fail_after(30):
            await relay.run()
    finally:
        child.signal_group(signal.SIGKILL)
        child.proc.wait()
        child.close_pipes()
        os.close(in_r)
        os.close(out_w)
    with os.fdopen(out_r, "rb") as f:
        return [json.loads(line) for line in f.read().splitlines()]


@pytest.mark.anyio
async def test_relay_denies_when_the_gate_raises(tmp_path):
    record = tmp_path / "record.jsonl"
    req = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": "echo", "arguments": {"message": "x"}}}
    batch = [dict(req, id=2), {"jsonrpc": "2.0", "id": 3, "method": "ping"}]
    answers = await _relay_once(RaisingGate, record,
                                [json.dumps(req).encode(), json.dumps(batch).encode()])
    assert answers[0]["id"] == 1
    assert answers[0]["result"]["isError"] is True
    assert "fail closed" in answers[0]["result"]["content"][0]["text"]
    assert {a["id"] for a in answers[1]} == {2, 3}
    assert not record.exists() or b"tools/call" not in record.read_bytes()


@pytest.mark.anyio
async def test_relay_stops_when_the_gate_cannot_be_built(tmp_path):
    def broken() -> Any:
        raise ProfileError("policy.yaml: rules must be a non-empty list")

    with pytest.raises(BaseExceptionGroup) as info:
        await _relay_once(broken, tmp_path / "record.jsonl", [])
    assert info.group_contains(ProfileError)


def test_bind_refuses_bytes_that_are_not_the_judged_call(ledger, workspace):
    g = make_governor(ledger, workspace)
    request = call("read_text_file", path=str(workspace / "a.txt"))
    j = g.evaluate(request)
    assert g.commit(j) is None
    other = call("read_text_file", path=str(workspace / "b.txt"))
    assert g.bind([j], json.dumps(other).encode()) is None
    # the same call binds, byte for byte
    j2 = g.evaluate(request)
    assert g.commit(j2) is None
    raw = json.dumps(request).encode()
    assert g.bind([j2], raw) == raw


def _session_governor(ledger: Ledger, workspace: Path, budget: str, clock: list[int]) -> Governor:
    from trackwrap.manifest import parse_manifest

    role = parse_manifest(
        (f'agent: t\nmanifest:\n  role: developer\n  workspace: "{workspace}"\n'
         f"  allowed_tools: [filesystem.*]\n  budget:\n{budget}").encode(), source="test")
    gov = build_governance()
    binder = Binder(
        ledger=ledger, workspace=str(workspace), profiles=gov.profiles, policy=gov.policy,
        inspectors=default_inspectors(), trust=lambda: TrustStore.load(Path("/nonexistent")),
        known_roles=lambda: frozenset({"developer"}), implicit_session="sess-budget",
        implicit_genesis={"workspace": str(workspace)}, fixed_session=None,
        default_role=role, require_session=False, say=lambda _m: None,
    )
    return Governor(
        binder=binder, ledger=ledger, server="filesystem",
        context=context_factory(workspace=str(workspace)), policy_hash="p", mode="enforce",
        sink=StderrSink(fd=2), new_trace=lambda: "tr-000000000001",
        clock_ms=lambda: clock[0],
    )


def test_bytes_out_budget_counts_argument_bytes(ledger, workspace):
    clock = [_now_ms()]
    g = _session_governor(ledger, workspace, "    bytes_out: 200 B\n", clock)
    small = call("write_file", path=str(workspace / "a.txt"), content="x" * 50)
    big = call("write_file", path=str(workspace / "a.txt"), content="x" * 150)
    assert g.commit(g.evaluate(small)) is None
    result = g.commit(g.evaluate(big))
    assert result is not None
    assert "budget_overrun: bytes_out budget of 200 bytes" in result["content"][0]["text"]


def test_duration_budget_ends_the_session_window(ledger, workspace):
    clock = [_now_ms()]
    g = _session_governor(ledger, workspace, "    duration: 1m\n", clock)
    read = call("read_text_file", path=str(workspace / "a.txt"))
    assert g.commit(g.evaluate(read)) is None
    clock[0] += 61_000
    result = g.commit(g.evaluate(read))
    assert result is not None
    assert "budget_overrun: duration budget of 60s is over" in result["content"][0]["text"]
