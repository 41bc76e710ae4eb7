"""Signed sessions end to end: the CLI starts them, real wrapper processes join them and are
held to them (scope, budgets across processes, drift reactions, tokens), diagnose tells it."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from tests._wrapper import ROOT, Wrapped, call, echo_server, wrapper_argv

pytestmark = pytest.mark.anyio


def tw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trackwrap", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


async def atw(*args: str) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process([sys.executable, "-m", "trackwrap", *args], check=False,
                                   cwd=ROOT)


def publisher(tmp_path: Path, name: str = "acme-platform") -> tuple[Path, str]:
    """A publisher key pair made with the CLI; returns (private key file, public key)."""
    key = tmp_path / f"{name}.key"
    made = tw("keys", "generate", "--out", str(key))
    assert made.returncode == 0, made.stderr
    public = re.search(r"public key (ed25519:\S+)", made.stdout)
    assert public is not None
    return key, public.group(1)


def manifest(tmp_path: Path, key: Path, workspace: Path, *, role: str = "developer",
             allowed: str = "echo.echo · echo.big", forbidden: str = "echo.crash",
             budget: str = "", name: str = "m") -> Path:
    text = (
        "agent: test-agent\n"
        "manifest:\n"
        f"  role: {role}\n"
        f'  workspace: "{workspace}"\n'
        "  allowed_tools:\n"
        f"    - {allowed}\n"
        "  forbidden_tools:\n"
        f"    - {forbidden}\n"
        + (f"  budget:\n    tool_calls: {budget}\n" if budget else "")
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    signed = tw("manifest", "sign", "--key", str(key), str(path))
    assert signed.returncode == 0, signed.stderr
    return path.with_name(path.name + ".dsse.json")


def start(envelope: Path, workspace: Path, *extra: str) -> str:
    started = tw("session", "start", "--manifest", str(envelope), "--workspace", str(workspace),
                 *extra)
    assert started.returncode == 0, started.stderr
    found = re.search(r"session\s+(sess-\S+)", started.stdout)
    assert found is not None, started.stdout
    return found.group(1)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


def text_of(resp: dict) -> str:
    return resp["result"]["content"][0]["text"]


def test_session_start_refuses_what_it_cannot_trust(tmp_path, ws):
    key, public = publisher(tmp_path)
    envelope = manifest(tmp_path, key, ws)
    unknown = tw("session", "start", "--manifest", str(envelope), "--workspace", str(ws))
    assert unknown.returncode != 0
    assert "unknown publisher" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    assert tw("trust", "add", "--publisher", "acme-platform", "--key", public).returncode == 0
    doc = json.loads(envelope.read_text())
    payload = bytearray(base64.b64decode(doc["payload"]))
    payload[payload.index(b"echo.big")] ^= 0x01  # one byte
    doc["payload"] = base64.b64encode(bytes(payload)).decode()
    tampered = tmp_path / "tampered.dsse.json"
    tampered.write_text(json.dumps(doc))
    bad = tw("session", "start", "--manifest", str(tampered), "--workspace", str(ws))
    assert bad.returncode != 0
    assert "signature" in bad.stderr

    stranger, _ = publisher(tmp_path, "stranger")
    forged = manifest(tmp_path, stranger, ws, name="forged")
    assert tw("session", "start", "--manifest", str(forged), "--workspace",
              str(ws)).returncode != 0

    astronaut = manifest(tmp_path, key, ws, role="astronaut", name="astro")
    refused = tw("session", "start", "--manifest", str(astronaut), "--workspace", str(ws))
    assert refused.returncode != 0
    assert "unknown_role" in refused.stderr

    elsewhere = manifest(tmp_path, key, tmp_path, name="elsewhere")
    moved = tw("session", "start", "--manifest", str(elsewhere), "--workspace", str(ws))
    assert moved.returncode != 0
    assert "bound to" in moved.stderr

    assert "acme-platform" in tw("trust", "list").stdout
    assert json.loads(tw("audit", "show", "--json").stdout or "null") is None


async def test_a_wrapper_joins_a_session_started_later_and_is_held_to_it(tmp_path, ws):
    key, public = publisher(tmp_path)
    assert (await atw("trust", "add", "--publisher", "acme", "--key", public)).returncode == 0
    envelope = manifest(tmp_path, key, ws, allowed="echo.big")
    w = await Wrapped.start(wrapper_argv(echo_server(), workspace=ws))
    before = await w.request(call(1, "echo", {"message": "before"}))
    assert text_of(before) == "before"  # implicit session: organisation policy only
    session = await anyio.to_thread.run_sync(start, envelope, ws)
    during = await w.request(call(2, "echo", {"message": "during"}))
    assert during["result"]["isError"] is True
    assert "rule HARNESS-DRIFT-001" in text_of(during)
    assert "not in manifest.allowed_tools" in text_of(during)
    assert (await w.request(call(3, "big", {"size": 3})))["result"]["isError"] is False
    closed = await atw("session", "close", "--session", session, "--reason", "done")
    assert closed.returncode == 0
    after = await w.request(call(4, "echo", {"message": "after"}))
    assert text_of(after) == "after"
    code, _ = await w.finish()
    assert code == 0

    diagnosis = json.loads((await atw("diagnose", session, "--json")).stdout)
    assert diagnosis["session_id"] == session
    assert diagnosis["manifest"]["role"] == "developer"
    assert diagnosis["manifest"]["publisher"] == "acme"
    assert diagnosis["tool_calls"] == {"attempted": 2, "allowed": 1, "denied": 1,
                                      "held_for_approval": 0}
    kinds = [e["kind"] for e in diagnosis["events"]]
    assert kinds == ["session_start", "drift_event", "decision", "tool_call", "session_close"]
    assert diagnosis["events"][1]["pattern"] == "scope_violation"
    assert diagnosis["audit_anchor"]["verifiable"] is True
    assert diagnosis["causal_chain"][-1].endswith("session closed (done).")


async def test_budget_is_exact_across_concurrent_wrappers(tmp_path, ws):
    key, public = publisher(tmp_path)
    assert (await atw("trust", "add", "--publisher", "acme", "--key", public)).returncode == 0
    session = await anyio.to_thread.run_sync(
        start, manifest(tmp_path, key, ws, budget="7"), ws)
    wrappers = [await Wrapped.start(wrapper_argv(echo_server(), workspace=ws))
                for _ in range(3)]
    results: list[dict] = []

    async def spend(w: Wrapped, base: int) -> None:
        results.extend([await w.request(call(base + i, "echo", {"message": "x"}))
                        for i in range(5)])

    async with anyio.create_task_group() as tg:
        for n, w in enumerate(wrappers):
            tg.start_soon(spend, w, n * 100)
    for w in wrappers:
        await w.finish()
    allowed = [r for r in results if not r["result"]["isError"]]
    denied = [r for r in results if r["result"]["isError"]]
    assert len(allowed) == 7
    assert len(denied) == 8
    assert all("budget_overrun" in text_of(r) for r in denied)
    status = await atw("session", "status", "--session", session)
    assert b"tool calls 7/7 forwarded, 8 denied" in status.stdout


async def test_require_session_denies_until_one_starts(tmp_path, ws):
    key, public = publisher(tmp_path)
    assert (await atw("trust", "add", "--publisher", "acme", "--key", public)).returncode == 0
    w = await Wrapped.start(wrapper_argv(echo_server(), "--require-session", workspace=ws))
    first = await w.request(call(1, "echo", {"message": "x"}))
    assert "rule SESSION-REQUIRED" in text_of(first)
    await anyio.to_thread.run_sync(start, manifest(tmp_path, key, ws), ws)
    assert text_of(await w.request(call(2, "echo", {"message": "now"}))) == "now"
    await w.finish()


async def test_drift_can_terminate_the_session(tmp_path, ws):
    key, public = publisher(tmp_path)
    assert (await atw("trust", "add", "--publisher", "acme", "--key", public)).returncode == 0
    session = await anyio.to_thread.run_sync(
        start, manifest(tmp_path, key, ws), ws, "--on-drift", "terminate")
    record = tmp_path / "record.jsonl"
    w = await Wrapped.start(wrapper_argv(echo_server("--record", str(record)), workspace=ws))
    assert text_of(await w.request(call(1, "echo", {"message": "ok"}))) == "ok"
    drift = await w.request(call(2, "crash"))
    assert "rule HARNESS-DRIFT-001" in text_of(drift)
    later = await w.request(call(3, "echo", {"message": "again"}))
    assert "rule SESSION-TERMINATED" in text_of(later)
    await w.finish()
    calls = [json.loads(line)["params"]["name"] for line in record.read_text().splitlines()
             if '"tools/call"' in line]
    assert calls == ["echo"]
    diagnosis = json.loads((await atw("diagnose", session, "--json")).stdout)
    assert diagnosis["events"][-1] == {**diagnosis["events"][-1], "kind": "session_close",
                                       "reason": "policy_terminated"}


async def test_tokens_bind_the_exact_action(tmp_path, ws):
    record = tmp_path / "record.jsonl"
    w = await Wrapped.start(wrapper_argv(echo_server("--record", str(record)), "--inject-token",
                                         workspace=ws))
    assert text_of(await w.request(call(1, "echo", {"message": "hi"}))) == "hi"
    await w.finish()
    [forwarded] = [json.loads(line) for line in record.read_text().splitlines()
                   if '"tools/call"' in line]
    token = forwarded["params"]["_meta"]["dev.trackwrap/token"]
    assert forwarded["params"]["arguments"] == {"message": "hi"}
    good = await atw("token", "verify", token, "--server", "echo", "--tool", "echo",
                     "--args", '{"message":"hi"}')
    assert good.returncode == 0, good.stderr
    replay = await atw("token", "verify", token, "--server", "echo", "--tool", "echo",
                       "--args", '{"message":"rm -rf /"}')
    assert replay.returncode != 0
    assert b"different action" in replay.stderr
    events = [json.loads(line) for line in (await atw("audit", "show", "--json")).stdout
              .splitlines()]
    [decision] = [e for e in events if e["kind"] == "tool_call.decision"]
    assert decision["token_id"] in base64.urlsafe_b64decode(
        token.split(".")[0] + "==").decode()


async def test_token_is_not_injected_by_default(tmp_path, ws):
    record = tmp_path / "record.jsonl"
    w = await Wrapped.start(wrapper_argv(echo_server("--record", str(record)), workspace=ws))
    raw = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}'
    await w.send_raw(raw + b"\n")
    await w.recv()
    await w.finish()
    assert record.read_bytes().splitlines()[0] == raw


async def test_default_role_holds_implicit_sessions_to_its_manifest(ws):
    w = await Wrapped.start(wrapper_argv(echo_server(), "--default-role", "code-reviewer",
                                         workspace=ws))
    denied = await w.request(call(1, "echo", {"message": "x"}))
    assert "rule HARNESS-DRIFT-001" in text_of(denied)
    await w.finish()
    events = [json.loads(line) for line in (await atw("audit", "show", "--json")).stdout
              .splitlines()]
    assert events[0]["kind"] == "session.start"
    assert events[0].get("session_kind", "implicit") == "implicit"
    assert events[0]["role"] == "code-reviewer"


async def test_session_start_from_a_shipped_role(ws):
    started = await atw("session", "start", "--role", "analytics-readonly", "--workspace",
                        str(ws), "--developer", "ana@example.com")
    assert started.returncode == 0, started.stderr
    w = await Wrapped.start(wrapper_argv(echo_server(), workspace=ws))
    assert "rule HARNESS-DRIFT-001" in text_of(await w.request(call(1, "echo")))
    await w.finish()
    listing = [json.loads(line) for line in
               (await atw("session", "list", "--json")).stdout.splitlines()]
    [explicit] = [s for s in listing if s["kind"] == "explicit"]
    assert explicit["role"] == "analytics-readonly"
    assert explicit["closed"] is False
    assert (await atw("session", "list")).returncode == 0
