"""MCP tool pinning through a real wrapper: a server that changes its tools after the first
listing (the seeds' unsigned ``delete_repo`` rug pull) never gets the new tool to the agent."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest

from tests._wrapper import ROOT, Wrapped, call, wrapper_argv

pytestmark = pytest.mark.anyio

POLICY = ROOT / "tests" / "data" / "rugpull-policy.yaml"


def rugpull(*flags: str) -> list[str]:
    return [sys.executable, "-m", "trackwrap.demo_servers.rugpull", *flags]


async def tw(*args: str) -> str:
    done = await anyio.run_process([sys.executable, "-m", "trackwrap", *args], check=True,
                                   cwd=ROOT)
    return done.stdout.decode()


async def list_all(w: Wrapped, base: int) -> list[dict]:
    tools: list[dict] = []
    cursor = None
    for n in range(10):
        params = {"cursor": cursor} if cursor else {}
        page = await w.request({"jsonrpc": "2.0", "id": base + n, "method": "tools/list",
                                "params": params})
        tools += page["result"]["tools"]
        cursor = page["result"].get("nextCursor")
        if not cursor:
            return tools
    raise AssertionError("endless pagination")


def names(tools: list[dict]) -> list[str]:
    return [t["name"] for t in tools]


async def test_a_rug_pull_never_reaches_the_agent(tmp_path: Path):
    record = tmp_path / "record.jsonl"
    argv = wrapper_argv(rugpull("--record", str(record), "--change-echo"), server="rugpull",
                        policy=POLICY)
    w = await Wrapped.start(argv)
    await w.initialize()
    assert names(await list_all(w, 10)) == ["echo", "arm"]  # first use: pinned as offered
    armed = await w.request(call(20, "arm"))
    assert armed["result"]["content"][0]["text"] == "armed"
    assert (await w.recv())["method"] == "notifications/tools/list_changed"
    # Every page is checked: the changed echo and the new delete_repo are held back.
    assert names(await list_all(w, 30)) == ["arm"]
    for tool in ("delete_repo", "echo", "never_listed"):
        resp = await w.request(call(40, tool, {"repo": "acme/payments"}))
        text = resp["result"]["content"][0]["text"]
        assert resp["result"]["isError"] is True
        assert "rule MCP-MANIFEST-PINNED" in text, text
    pending = await tw("pins", "list", "rugpull")
    assert "delete_repo" in pending and "new" in pending
    assert "changed" in pending
    # A person approves the new tool: the same wrapper lets it through, without a restart.
    await tw("pins", "approve", "rugpull", "delete_repo")
    approved = await w.request(call(50, "delete_repo", {"repo": "acme/payments"}))
    assert approved["result"]["content"][0]["text"] == "ran delete_repo"
    assert names(await list_all(w, 60)) == ["arm", "delete_repo"]
    await w.finish()
    ran = [json.loads(line)["params"]["name"] for line in record.read_text().splitlines()
           if '"tools/call"' in line]
    assert ran == ["arm", "delete_repo"]
    events = [json.loads(line) for line in (await tw("audit", "show", "--json")).splitlines()]
    drift = [e for e in events if e["kind"] == "mcp_manifest_drift"]
    assert drift
    assert drift[0]["rule"] == "MCP-MANIFEST-PINNED"


async def test_pins_hold_across_wrappers_and_restarts(tmp_path: Path):
    argv = wrapper_argv(rugpull(), server="rugpull", policy=POLICY)
    first = await Wrapped.start(argv)
    assert names(await list_all(first, 1)) == ["echo", "arm"]
    await first.request(call(5, "arm"))
    await first.recv()
    assert names(await list_all(first, 10)) == ["echo", "arm"]
    await first.finish()
    # A new wrapper (the IDE restarted) meets a server that already offers delete_repo.
    second = await Wrapped.start(wrapper_argv(rugpull(), server="rugpull", policy=POLICY))
    await second.request(call(1, "arm"))
    await second.recv()
    assert names(await list_all(second, 10)) == ["echo", "arm"]
    await second.finish()
    await tw("pins", "revoke", "rugpull")
    assert "delete_repo" not in await tw("pins", "list")


async def test_poisoned_tools_are_held_even_on_first_use():
    w = await Wrapped.start(wrapper_argv(rugpull("--poisoned"), server="rugpull",
                                         policy=POLICY))
    assert names(await list_all(w, 1)) == ["echo", "arm"]
    resp = await w.request(call(5, "add", {"a": 1}))
    assert "MCP-MANIFEST-PINNED" in resp["result"]["content"][0]["text"]
    await w.finish()
    events = [json.loads(line) for line in (await tw("audit", "show", "--json")).splitlines()]
    [drift] = [e for e in events if e["kind"] == "mcp_manifest_drift"]
    assert "hidden instruction" in json.dumps(drift["concerns"])


async def test_a_pinned_publisher_decides_which_tools_pass(tmp_path: Path):
    """With a publisher pinned for a server, only a tool list it signed is accepted: the
    unsigned rug pull (delete_repo) is refused, and a person's approval cannot override it."""
    key = tmp_path / "publisher.key"
    made = await tw("keys", "generate", "--out", str(key))
    public = made.split("public key ")[1].split()[0]
    argv = wrapper_argv(rugpull(), server="rugpull", policy=POLICY)
    first = await Wrapped.start(argv)
    assert names(await list_all(first, 1)) == ["echo", "arm"]
    await first.finish()
    # The publisher signs today's tools; the user pins the publisher for this server.
    signed = tmp_path / "rugpull.tools.dsse.json"
    await tw("pins", "sign", "rugpull", "--key", str(key), "--out", str(signed))
    await tw("trust", "add", "--publisher", "rugpull-publisher", "--key", public,
             "--server", "rugpull")
    await tw("pins", "import", "rugpull", str(signed))
    w = await Wrapped.start(argv)
    await w.request(call(1, "arm"))
    await w.recv()
    assert names(await list_all(w, 10)) == ["echo", "arm"]
    denied = await w.request(call(20, "delete_repo", {"repo": "x"}))
    assert "MCP-MANIFEST-PINNED" in denied["result"]["content"][0]["text"]
    await tw("pins", "approve", "rugpull", "delete_repo")
    still = await w.request(call(21, "delete_repo", {"repo": "x"}))
    assert "MCP-MANIFEST-PINNED" in still["result"]["content"][0]["text"]
    assert (await w.request(call(22, "echo", {"message": "ok"})))["result"]["content"][0][
        "text"] == "ran echo"
    await w.finish()
    # A tool list signed by another key is refused at import.
    other = tmp_path / "other.key"
    await tw("keys", "generate", "--out", str(other))
    forged = tmp_path / "forged.json"
    await tw("pins", "sign", "rugpull", "--key", str(other), "--out", str(forged))
    refused = await anyio.run_process(
        [sys.executable, "-m", "trackwrap", "pins", "import", "rugpull", str(forged)],
        check=False, cwd=ROOT)
    assert refused.returncode != 0
    assert b"not signed by a publisher pinned for rugpull" in refused.stderr


@pytest.mark.parametrize(("flag", "echo_passes"), [("--reword-echo", True),
                                                    ("--change-echo", False)])
async def test_policy_may_let_wording_only_changes_through(flag: str, echo_passes: bool):
    policy = ROOT / "tests" / "data" / "rugpull-wording-policy.yaml"
    w = await Wrapped.start(wrapper_argv(rugpull(flag), server="rugpull", policy=policy))
    assert names(await list_all(w, 1)) == ["echo", "arm"]
    await w.request(call(5, "arm"))
    await w.recv()
    after = names(await list_all(w, 10))
    assert after == (["echo", "arm"] if echo_passes else ["arm"])  # delete_repo: always held
    resp = await w.request(call(20, "echo", {"message": "x"}))
    assert ("MCP-MANIFEST-PINNED" in resp["result"]["content"][0]["text"]) is not echo_passes
    await w.finish()
