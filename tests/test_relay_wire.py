"""The relay on the wire: a real ``trackwrap`` subprocess in front of a raw test server."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import anyio
import pytest

from tests._wrapper import (
    ECHO_POLICY,
    TIMEOUT,
    Wrapped,
    call,
    child_pids,
    echo_server,
    group_alive,
    pid_running,
    wait_group_gone,
    wrapper_argv,
)

pytestmark = pytest.mark.anyio


def received(record: Path) -> list[dict]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_bytes().splitlines() if line.strip()]


def tools_called(record: Path) -> list[str]:
    return [m["params"]["name"] for m in received(record) if m.get("method") == "tools/call"]


async def test_allowed_call_returns_the_servers_exact_bytes(tmp_path):
    # The same request, directly and through trackwrap: identical response bytes.
    req = call(1, "echo", {"message": "héllo \u2028 wörld"})
    direct = await Wrapped.start(echo_server())
    await direct.send(req)
    expected = await direct.recv_raw()
    await direct.finish()

    w = await Wrapped.start(wrapper_argv(echo_server()))
    await w.send(req)
    assert await w.recv_raw() == expected
    code, _ = await w.finish()
    assert code == 0


async def test_denied_call_never_reaches_the_server(tmp_path):
    record = tmp_path / "record.jsonl"
    target = tmp_path / "pwned.txt"
    w = await Wrapped.start(wrapper_argv(echo_server("--record", str(record))))
    await w.initialize()
    resp = await w.request(call(5, "write_file", {"path": str(target), "content": "x"}))
    assert resp["id"] == 5
    result = resp["result"]
    assert result["isError"] is True
    assert result["resultType"] == "complete"
    text = result["content"][0]["text"]
    assert text.startswith("DENY echo.write_file")
    assert "rule DEFAULT-DENY" in text
    assert "trace tr-" in text
    # The relay goes on: the next allowed call works.
    assert (await w.request(call(6, "echo", {"message": "ok"})))["result"]["content"][0][
        "text"] == "ok"
    await w.finish()
    assert not target.exists()
    assert tools_called(record) == ["echo"]


async def test_id_types_are_kept_and_invalid_ids_never_forwarded(tmp_path):
    record = tmp_path / "record.jsonl"
    w = await Wrapped.start(wrapper_argv(echo_server("--record", str(record))))
    # A string id is a normal id: forwarded, answered with the same type.
    assert (await w.request(call("abc", "echo", {"message": "s"})))["id"] == "abc"
    assert (await w.request(call(7, "echo", {"message": "i"})))["id"] == 7
    # Float and bool ids: servers would run the call without answering. Denied, answered.
    for bad in (3.5, True):
        resp = await w.request(call(bad, "echo", {"message": "x"}))
        assert resp["id"] == bad and type(resp["id"]) is type(bad)
        assert resp["error"]["code"] == -32600
    # No id at all: a tools/call notification is recorded and dropped, never forwarded.
    await w.send(call(..., "echo", {"message": "notification"}))
    assert (await w.request({"jsonrpc": "2.0", "id": 9, "method": "ping"}))["id"] == 9
    await w.finish()
    assert [m.get("id") for m in received(record) if m.get("method") == "tools/call"] == [
        "abc", 7]


async def test_batch_with_a_denied_call_is_answered_per_element(tmp_path):
    record = tmp_path / "record.jsonl"
    w = await Wrapped.start(wrapper_argv(echo_server("--record", str(record))))
    batch = [
        call(1, "echo", {"message": "a"}),
        call(2, "write_file", {"path": str(tmp_path / "x"), "content": "x"}),
        {"jsonrpc": "2.0", "id": 3, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]
    answers = {a["id"]: a for a in await w.request(batch)}
    assert set(answers) == {1, 2, 3}
    assert "rule BATCH-DENIED" in answers[1]["result"]["content"][0]["text"]
    assert "rule DEFAULT-DENY" in answers[2]["result"]["content"][0]["text"]
    assert answers[3]["error"]["code"] == -32600
    await w.finish()
    assert received(record) == []


async def test_batch_of_allowed_calls_is_forwarded_as_original_bytes(tmp_path):
    record = tmp_path / "record.jsonl"
    w = await Wrapped.start(wrapper_argv(echo_server("--record", str(record))))
    raw = b'[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}} ,\n'
    raw = raw.replace(b"\n", b"") + b'{"jsonrpc":"2.0","id":2,"method":"ping"}]\n'
    await w.send_raw(raw)
    # The raw echo server ignores batches (as the Python and TS SDKs do); a ping proves order.
    assert (await w.request({"jsonrpc": "2.0", "id": 4, "method": "ping"}))["id"] == 4
    await w.finish()
    assert record.read_bytes().splitlines()[0] + b"\n" == raw


async def test_extra_fields_and_duplicate_keys_are_still_governed(tmp_path):
    record = tmp_path / "record.jsonl"
    w = await Wrapped.start(wrapper_argv(echo_server("--record", str(record))))
    target = str(tmp_path / "y")
    extra = call(1, "write_file", {"path": target}, extra_field=True)
    assert (await w.request(extra))["result"]["isError"] is True
    dup = (b'{"jsonrpc":"2.0","id":2,"method":"ping","method":"tools/call",'
           b'"params":{"name":"write_file","arguments":{"path":"' + target.encode() + b'"}}}\n')
    await w.send_raw(dup)
    assert (await w.recv())["result"]["isError"] is True
    # An allowed call with an extra top-level field is forwarded byte for byte.
    ok = (b'{"jsonrpc":"2.0","id":3,"method":"tools/call","x-extra":{"a":1},'
          b'"params":{"name":"echo"}}')
    await w.send_raw(ok + b"\n")
    assert (await w.recv())["id"] == 3
    await w.finish()
    assert tools_called(record) == ["echo"]
    assert record.read_bytes().splitlines()[0] == ok


@pytest.mark.parametrize("mib", [11, 64])
async def test_large_lines_pass_both_ways(mib):
    w = await Wrapped.start(wrapper_argv(echo_server()))
    message = "m" * (mib * 1024 * 1024)
    resp = await w.request(call(1, "echo", {"message": message}))
    assert resp["result"]["content"][0]["text"] == message
    resp = await w.request(call(2, "big", {"size": mib * 1024 * 1024}))
    assert len(resp["result"]["content"][0]["text"]) == mib * 1024 * 1024
    await w.finish()


async def test_crlf_lines_are_accepted():
    w = await Wrapped.start(wrapper_argv(echo_server()))
    await w.send_raw(json.dumps(call(1, "echo", {"message": "crlf"})).encode() + b"\r\n")
    assert (await w.recv())["result"]["content"][0]["text"] == "crlf"
    await w.finish()


async def test_oversize_and_garbage_from_the_client_get_errors_and_the_relay_goes_on():
    w = await Wrapped.start(wrapper_argv(echo_server(), "--max-line-bytes", "4096"))
    await w.send_raw(b"x" * 10000 + b"\n")
    resp = await w.recv()
    assert resp["id"] is None and resp["error"]["code"] == -32600
    await w.send_raw(b"this is not json\n")
    resp = await w.recv()
    assert resp["id"] is None and resp["error"]["code"] == -32700
    await w.send_raw(b"\xff\xfe{not utf8}\n")
    assert (await w.recv())["error"]["code"] == -32700
    await w.send_raw(b"42\n")
    assert (await w.recv())["error"]["code"] == -32600
    assert (await w.request(call(1, "echo", {"message": "still here"})))["id"] == 1
    await w.finish()


async def test_noise_on_the_childs_stdout_is_dropped_and_stdout_stays_pure():
    w = await Wrapped.start(wrapper_argv(echo_server("--noise")))
    await w.initialize()
    await w.request(call(1, "echo", {"message": "a"}))
    code, err = await w.finish()
    assert code == 0
    assert "dropped a non-JSON line" in err
    for line in w.raw_lines:
        assert json.loads(line)["jsonrpc"] == "2.0"


async def test_calls_before_initialize_are_governed(tmp_path):
    record = tmp_path / "record.jsonl"
    w = await Wrapped.start(wrapper_argv(echo_server("--record", str(record))))
    resp = await w.request(call(1, "write_file", {"path": str(tmp_path / "z")}))
    assert resp["result"]["isError"] is True
    await w.finish()
    assert received(record) == []


async def test_both_protocol_eras(tmp_path):
    record = tmp_path / "record.jsonl"
    w = await Wrapped.start(wrapper_argv(echo_server("--record", str(record))))
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}
    discover = await w.request({"jsonrpc": "2.0", "id": 1, "method": "server/discover",
                                "params": {"_meta": meta}})
    assert discover["result"]["supportedVersions"] == ["2026-07-28"]
    ok = await w.request(call(2, "echo", {"message": "m"}, ))
    assert ok["result"]["resultType"] == "complete"
    denied = await w.request({**call(3, "write_file", {"path": "/tmp/x"}),
                              "params": {"name": "write_file", "arguments": {"path": "/x"},
                                         "_meta": meta}})
    assert denied["result"]["resultType"] == "complete" and denied["result"]["isError"]
    await w.finish()
    # trackwrap sent nothing of its own: the first line the server saw is the client's.
    assert received(record)[0]["method"] == "server/discover"


async def test_server_to_client_requests_pass_both_ways():
    w = await Wrapped.start(wrapper_argv(echo_server()))
    await w.send(call(1, "ask_client"))
    ask = await w.recv()
    assert ask == {"jsonrpc": "2.0", "id": "s2c-1", "method": "roots/list"}
    await w.send({"jsonrpc": "2.0", "id": "s2c-1", "result": {"roots": [{"uri": "file:///a"}]}})
    assert (await w.recv())["result"]["content"][0]["text"] == "roots: 1"
    await w.finish()


async def test_child_crash_mid_call_answers_pending_and_exits_with_its_code():
    w = await Wrapped.start(wrapper_argv(echo_server()))
    resp = await w.request(call(1, "crash"))
    assert resp["id"] == 1 and resp["error"]["code"] == -32003
    code, err = await w.finish()
    assert code == 3
    assert "exited with code 3" in err
    assert "crashing as asked" in err


async def test_client_closing_stdin_mid_call_stops_everything(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    w = await Wrapped.start(wrapper_argv(echo_server("--grandchild", str(pidfile))))
    await w.initialize()
    children = child_pids(w.proc.pid)
    assert len(children) == 1
    await w.send(call(1, "echo", {"message": "in flight"}))
    await w.close_stdin()
    await w.wait()
    assert not group_alive(children[0])
    assert not pid_running(int(pidfile.read_text()))


async def test_child_that_ignores_stdin_close_is_terminated(tmp_path):
    w = await Wrapped.start(wrapper_argv(echo_server("--ignore-stdin-close"), "--grace", "0.5"))
    await w.initialize()
    child = child_pids(w.proc.pid)[0]
    started = time.monotonic()
    await w.close_stdin()
    await w.wait()
    assert not group_alive(child)
    assert time.monotonic() - started < TIMEOUT


async def test_a_mebibyte_of_child_stderr_stalls_nothing():
    w = await Wrapped.start(wrapper_argv(echo_server("--stderr-bytes", str(1024 * 1024))))
    # Nobody reads the wrapper's stderr until the end: the call must still complete.
    assert (await w.request(call(1, "echo", {"message": "fine"})))["id"] == 1
    code, err = await w.finish()
    assert code == 0
    assert err.count("[echo] ") >= 1


async def test_missing_upstream_command_is_one_line_and_exit_127():
    w = await Wrapped.start(wrapper_argv(["no-such-mcp-server-xyz", "--flag"]))
    code, err = await w.finish()
    assert code == 127
    assert err.strip().count("\n") == 0
    assert "no-such-mcp-server-xyz" in err and "PATH=" in err


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        ("version: 1\nrules: [\n", "policy"),
        ("version: 1\nrules:\n  - id: X-1\n    outcome: allow\n    when: {kind: [a]}\n"
         "    colour: red\n", "colour"),
        ("version: 1\nrules:\n  - id: X-1\n    outcome: maybe\n    when: {kind: [a]}\n", "maybe"),
    ],
)
async def test_bad_policy_files_stop_the_wrapper_with_a_clear_error(tmp_path, content, expect):
    policy = tmp_path / "policy.yaml"
    policy.write_text(content)
    w = await Wrapped.start(wrapper_argv(echo_server(), policy=policy))
    code, err = await w.finish()
    assert code == 2
    assert "Traceback" not in err
    assert expect in err
    assert w.raw_lines == []


async def test_unwritable_home_fails_closed_before_the_server_starts(tmp_path):
    # A home below a regular file cannot be created, even by root.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**os.environ, "TRACKWRAP_HOME": str(blocker / "home")}
    w = await Wrapped.start(wrapper_argv(echo_server()), env=env)
    code, err = await w.finish()
    assert code != 0
    assert "Traceback" not in err
    assert "trackwrap: error:" in err


async def test_monitor_mode_records_but_forwards(tmp_path):
    record = tmp_path / "record.jsonl"
    target = tmp_path / "written.txt"
    w = await Wrapped.start(
        wrapper_argv(echo_server("--record", str(record)), "--mode", "monitor"))
    resp = await w.request(call(1, "write_file", {"path": str(target), "content": "m"}))
    assert resp["result"]["content"][0]["text"] == "written"
    await w.finish()
    assert target.read_text() == "m"
    assert ECHO_POLICY.exists()


async def test_sigterm_to_the_wrapper_stops_the_server():
    w = await Wrapped.start(wrapper_argv(echo_server("--ignore-stdin-close"), "--grace", "0.5"))
    await w.initialize()
    child = child_pids(w.proc.pid)[0]
    w.proc.terminate()
    code, err = await w.finish()
    assert "received signal" in err, (code, err)
    await wait_group_gone(child)


async def test_sigterm_during_start_up_stops_the_server_too():
    # The upstream is spawned before trackwrap has finished loading: a stop signal in that
    # window must not orphan it.
    w = await Wrapped.start(wrapper_argv(echo_server("--ignore-stdin-close"), "--grace", "0.5"))
    with anyio.fail_after(TIMEOUT):
        while not (children := child_pids(w.proc.pid)):  # noqa: ASYNC110 - another process
            await anyio.sleep(0.001)
    w.proc.terminate()
    code, _ = await w.finish()
    assert code != 0
    await wait_group_gone(children[0])


async def test_kill_9_of_a_wrapper_mid_stream_leaves_a_chain_that_verifies(tmp_path):
    import sys

    w = await Wrapped.start(wrapper_argv(echo_server(), "--session", "sess-kill"))
    await w.request(call(0, "echo", {"message": "warm"}))
    # A burst of calls, and SIGKILL while they are being recorded and relayed.
    await w.send_raw(b"".join(
        json.dumps(call(i, "echo" if i % 2 else "write_file",
                        {"message": "m", "path": "/x"})).encode() + b"\n"
        for i in range(1, 400)))
    for _ in range(50):
        await w.recv_raw()
    w.kill()
    await w.wait()
    result = await anyio.run_process(
        [sys.executable, "-m", "trackwrap", "audit", "verify", "--json", "--session", "sess-kill"],
        check=False)
    assert result.returncode in (0, 2), result.stdout + result.stderr
    [verdict] = json.loads(result.stdout)["sessions"]
    assert verdict["status"] in ("pass", "warn")
    assert {i["code"] for i in verdict["issues"]} <= {"UNSEALED_TAIL"}
    assert verdict["events"] >= 51


async def test_wrapper_exits_when_its_parent_dies_even_with_stdin_open():
    # A middle process starts the wrapper on its own stdin/stdout (our pipes), reports the
    # wrapper's pid on stderr and sleeps. Once the wrapper answers, the middle is killed: our
    # pipes stay open, so only the parent's death can make the wrapper stop.
    import sys

    argv = wrapper_argv(echo_server("--ignore-stdin-close"), "--grace", "0.5")
    script = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen({argv!r})\n"
        "print(p.pid, file=sys.stderr, flush=True)\n"
        "time.sleep(600)\n"
    )
    middle = await Wrapped.start([sys.executable, "-c", script])
    assert middle.proc.stderr is not None
    with anyio.fail_after(TIMEOUT):
        wrapper = int((await middle.proc.stderr.receive()).split()[0])
    await middle.initialize()
    [child] = child_pids(wrapper)
    middle.kill()
    await middle.wait()
    await wait_group_gone(child)
    with anyio.fail_after(TIMEOUT):
        while pid_running(wrapper):  # noqa: ASYNC110 - another process
            await anyio.sleep(0.05)
    await middle.close_stdin()
