"""The laptop side against a real collector: wrappers sync in the background, a dead collector
changes nothing for the IDE, `trackwrap sync` catches up, receipts witness the chain, and an
approval decided at the collector reaches the waiting wrapper."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tests._collector import Server
from tests._wrapper import ROOT, TIMEOUT, Wrapped, call, echo_server, wrapper_argv
from trackwrap.crypto import SigningKey

pytestmark = pytest.mark.anyio

POLICY = ROOT / "tests" / "data" / "approval-policy.yaml"


def tw(*args: str, env: dict[str, str] | None = None,
       stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "trackwrap", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, check=False, input=stdin,
                          env={**os.environ, **(env or {})})


def token(db: Path, *scopes: str, device: str = "laptop", developer: str = "dev@acme.com",
          home: Path) -> str:
    args = ["collector", "token", "create", "--db", str(db), "--device", device,
            "--developer", developer]
    for scope in scopes:
        args += ["--scope", scope]
    made = tw(*args, env={"TRACKWRAP_HOME": str(home)})
    assert made.returncode == 0, made.stderr
    found = re.search(r"\b(twc_[A-Za-z0-9_-]+)", made.stdout + made.stderr)
    assert found is not None, made.stdout
    return found.group(1)


def configure(url: str, ingest: str) -> None:
    assert tw("config", "set", "collector.url", url).returncode == 0
    assert tw("config", "set", "collector.device", "laptop").returncode == 0
    stored = tw("config", "set", "collector.token", "-", stdin=ingest + "\n")
    assert stored.returncode == 0, stored.stderr


def status() -> list[dict[str, object]]:
    shown = tw("sync", "status", "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


async def echo_calls(ws: Path, n: int, *options: str,
                     until: Callable[[], bool] | None = None) -> None:
    """``n`` calls through a wrapper that seals every 0.2 s; it keeps running until
    ``until()`` holds (checked while it runs, bounded), else for a second."""
    wrapped = await Wrapped.start(wrapper_argv(echo_server(), "--seal-interval", "0.2",
                                               *options, workspace=ws))
    try:
        await wrapped.initialize()
        for i in range(n):
            resp = await wrapped.request(call(i + 1, "echo", {"message": f"m{i}"}))
            assert "result" in resp
        await anyio.sleep(1.0)  # a seal, then a background sync
        with anyio.fail_after(TIMEOUT):
            while until is not None and not until():  # noqa: ASYNC110 - another process
                await anyio.sleep(0.2)
    finally:
        await wrapped.finish()


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


async def test_wrappers_sync_in_the_background_and_receipts_witness(
    collector_server: Callable[..., Server], tmp_path: Path, ws: Path, trackwrap_home: Path
) -> None:
    db = tmp_path / "collector.db"
    server = collector_server(db)
    configure(server.url, token(db, "ingest", home=tmp_path / "server-home"))
    # The wrapper's background sync sends what is sealed while it runs (its final seal at exit
    # goes with the next sync).
    await echo_calls(ws, 5, until=lambda: any(
        int(str(s["witnessed_through_seq"])) >= 0 for s in status()))
    synced = tw("sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    [session] = status()
    assert session["pending_segments"] == 0
    assert session["witnessed_through_seq"] == session["sealed_through_seq"]
    verified = tw("audit", "verify")
    assert f"witnessed through seq {session['witnessed_through_seq']}" in verified.stdout
    assert "collector.key" in tw("config", "show").stdout  # pinned at first contact
    assert "ed25519:" in tw("config", "show").stdout


async def test_a_dead_collector_changes_nothing_then_sync_catches_up(
    collector_server: Callable[..., Server], tmp_path: Path, ws: Path, trackwrap_home: Path
) -> None:
    db = tmp_path / "collector.db"
    ingest = token(db, "ingest", home=tmp_path / "server-home")
    configure("http://127.0.0.1:9", ingest)  # nothing listens there
    await echo_calls(ws, 5)
    [before] = status()
    assert before["witnessed_through_seq"] == -1 and before["pending_segments"] >= 1
    failed = tw("sync")
    assert failed.returncode == 1 and "Connect" in failed.stdout + failed.stderr
    server = collector_server(db)
    configure(server.url, ingest)
    assert tw("sync").returncode == 0
    [after] = status()
    assert after["pending_segments"] == 0
    assert after["witnessed_through_seq"] == after["sealed_through_seq"]
    again = tw("sync", "--json")  # nothing left: a no-op
    assert json.loads(again.stdout)["sessions"][0]["sent"] == 0


async def test_an_approval_decided_at_the_collector_releases_the_held_call(
    collector_server: Callable[..., Server], tmp_path: Path, ws: Path, trackwrap_home: Path
) -> None:
    db = tmp_path / "collector.db"
    server_home = tmp_path / "server-home"
    server = collector_server(db)
    configure(server.url, token(db, "ingest", home=server_home))
    approver = token(db, "approve", "read", device="ops", developer="ops@acme.com",
                     home=server_home)
    ops = SigningKey.generate()
    key_file = tmp_path / "ops.key"
    import base64

    key_file.write_text(base64.b64encode(ops.private_raw()).decode())
    key_file.chmod(0o600)
    public = "ed25519:" + base64.b64encode(ops.public_raw).decode()
    assert tw("trust", "add-approver", "ops@acme.com", "--key", public, "--group",
              "ops").returncode == 0
    outbox = tmp_path / "outbox"
    wrapped = await Wrapped.start(wrapper_argv(
        [sys.executable, "-m", "trackwrap.demo_servers.outbox", "--outbox", str(outbox)],
        "--approval-wait", "30", server="outbox", policy=POLICY, workspace=ws))
    try:
        await wrapped.initialize()
        await wrapped.send(call(1, "send_email", {"to": "pager@ops.example", "subject": "s",
                                                  "body": "b"}))
        as_ops = {"TRACKWRAP_COLLECTOR_TOKEN": approver}
        with anyio.fail_after(TIMEOUT):
            while True:  # the request reaches the collector in the background
                listed = tw("approvals", "list", "--remote", "--pending", "--json", env=as_ops)
                if listed.stdout.strip():
                    break
                await anyio.sleep(0.2)
        approval = json.loads(listed.stdout.splitlines()[0])["id"]
        started = time.monotonic()
        decided = tw("approve", approval, "--remote", "--key", str(key_file), "--reason",
                     "paging is fine", env=as_ops)
        assert decided.returncode == 0, decided.stderr
        resp = await wrapped.recv()
        waited = time.monotonic() - started
    finally:
        await wrapped.finish()
    assert not resp["result"].get("isError"), resp
    assert "queued message 1" in resp["result"]["content"][0]["text"]
    assert waited < TIMEOUT
    decided_events = [json.loads(line) for line in tw("audit", "show", "--json").stdout
                      .splitlines() if '"approval.decided"' in line]
    assert decided_events and decided_events[0]["source"] == "collector"
    assert decided_events[0]["approver"] == "ops@acme.com"
