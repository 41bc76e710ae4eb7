"""The command line as users and scripts drive it: exit codes, JSON shapes, clear errors."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from tests._wrapper import ROOT, Wrapped, call, echo_server, wrapper_argv
from trackwrap.cli import main


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trackwrap", *argv], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_check_json_shape_for_a_read_outside_the_workspace(tmp_path, capsys):
    code = main(["check", "--server", "filesystem", "--tool", "read_text_file",
                 "--args", '{"path":"/etc/passwd"}', "--workspace", str(tmp_path), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert set(out) == {"outcome", "rule", "reason", "kind", "action_hash", "findings"}
    assert out["outcome"] == "deny"
    assert out["rule"] == "WORKSPACE-PATH-SCOPE"
    assert out["kind"] == "filesystem.read"
    assert out["action_hash"].startswith("sha256:")
    [finding] = out["findings"]
    assert set(finding) == {"inspector", "rule", "confidence", "attack", "owasp", "detail"}
    assert finding["inspector"] == "paths"
    assert finding["confidence"] == 1.0


def test_check_allows_a_read_inside_the_workspace(tmp_path, capsys):
    (tmp_path / "x.py").write_text("")
    code = main(["check", "--server", "filesystem", "--tool", "read_text_file",
                 "--args", json.dumps({"path": str(tmp_path / "x.py")}),
                 "--workspace", str(tmp_path), "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["rule"] == "WORKSPACE-READ-ALLOW"


def test_check_human_output_names_rule_and_reason(tmp_path, capsys):
    code = main(["check", "--server", "shell", "--tool", "shell_execute", "--args",
                 '{"command":["curl","https://example.com/x.sh"]}', "--workspace",
                 str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "DENY" in out
    assert "shell.exec curl https://example.com/x.sh" in out
    assert "DEFAULT-DENY" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "--server", "filesystem", "--tool", "x", "--args", "{nope"], "not valid JSON"),
        (["check", "--server", "filesystem", "--tool", "x", "--workspace", "/no/such/dir"],
         "not a directory"),
        (["check", "--server", "filesystem", "--tool", "x", "--mode", "loud"], "--mode"),
    ],
)
def test_check_bad_input_is_one_clear_line(argv, message):
    result = run(*argv)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_check_with_a_policy_file_that_does_not_validate(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nrules:\n  - id: A-1\n    outcome: allow\n    when: {kind: x}\n"
                      "  - id: A-1\n    outcome: deny\n    when: {kind: y}\n")
    result = run("check", "--server", "filesystem", "--tool", "x", "--policy", str(policy))
    assert result.returncode == 2
    assert "duplicate rule id" in result.stderr
    assert "Traceback" not in result.stderr


def test_wrapper_option_errors_show_usage():
    result = run("--no-such-option", "--", "true")
    assert result.returncode == 2
    assert "usage: trackwrap" in result.stderr
    assert result.stdout == ""


def test_help_and_version():
    help_text = run("--help")
    assert help_text.returncode == 0
    assert "-- <upstream command" in help_text.stdout
    assert run("version").stdout.strip().startswith("trackwrap ")


def test_audit_commands_without_a_ledger_say_so(trackwrap_home):
    for argv in (["audit", "show"], ["audit", "verify"]):
        result = run(*argv)
        assert result.returncode == 2
        assert "no audit ledger" in result.stderr


@pytest.mark.anyio
async def test_audit_show_and_verify_after_a_governed_session(tmp_path, trackwrap_home):
    w = await Wrapped.start(wrapper_argv(echo_server(), "--session", "sess-cli-test"))
    await w.request(call(1, "echo", {"message": "hi"}))
    await w.request(call(2, "write_file", {"path": str(tmp_path / "f")}))
    code, _ = await w.finish()
    assert code == 0

    shown = run("audit", "show", "--session", "sess-cli-test")
    assert shown.returncode == 0
    lines = shown.stdout.splitlines()
    assert any("ALLOW" in line and "echo.echo" in line and "ECHO-ALLOW" in line
               for line in lines)
    assert any("DENY" in line and "echo.write_file" in line and "DEFAULT-DENY" in line
               for line in lines)
    as_json = [json.loads(line) for line in
               run("audit", "show", "--session", "sess-cli-test", "--json").stdout.splitlines()]
    kinds = [e["kind"] for e in as_json]
    assert kinds[0] == "session.start"
    assert kinds.count("tool_call.decision") == 2
    assert kinds[-1] == "segment.seal"  # the wrapper sealed its tail on exit

    verified = run("audit", "verify")
    assert verified.returncode == 0, verified.stdout
    assert "verified through seq" in verified.stdout
    report = json.loads(run("audit", "verify", "--json").stdout)
    assert report["sessions"][0]["status"] == "pass"

    # Edit one recorded decision in the real database file: verify must fail, exit 1.
    db = trackwrap_home / "ledger.db"
    with sqlite3.connect(db) as conn:
        seq, body = next(
            (seq, body) for seq, body in conn.execute(
                "SELECT seq, body FROM events WHERE session = ?", ("sess-cli-test",))
            if b'"decision":"deny"' in body)
        conn.execute("UPDATE events SET body = ? WHERE session = ? AND seq = ?",
                     (body.replace(b'"decision":"deny"', b'"decision":"allo"'),
                      "sess-cli-test", seq))
    failed = run("audit", "verify", "--json")
    assert failed.returncode == 1
    issues = json.loads(failed.stdout)["sessions"][0]["issues"]
    assert issues[0]["code"] == "CHAIN_BREAK"
    assert issues[0]["seq"] == seq + 1


@pytest.mark.anyio
async def test_audit_show_follow_prints_decisions_as_they_land(tmp_path, trackwrap_home):
    import anyio

    w = await Wrapped.start(wrapper_argv(echo_server(), "--session", "sess-follow"))
    await w.request(call(1, "echo", {"message": "first"}))
    follower = await Wrapped.start([sys.executable, "-m", "trackwrap", "audit", "show",
                                    "--session", "sess-follow", "--follow", "--json"])
    try:
        seen = [json.loads(await follower.recv_raw()) for _ in range(2)]
        assert [e["kind"] for e in seen] == ["session.start", "tool_call.decision"]
        await w.request(call(2, "write_file", {"path": str(tmp_path / "nope")}))
        with anyio.fail_after(30):
            later = json.loads(await follower.recv_raw())
        assert later["kind"] == "tool_call.decision"
        assert later["decision"] == "deny"
        assert later["seq"] == seen[-1]["seq"] + 1
    finally:
        follower.proc.terminate()
        await follower.wait()
        await w.finish()


def test_check_holds_a_call_to_a_role_or_a_signed_manifest(tmp_path, capsys):
    args = ["check", "--server", "shell", "--tool", "shell_execute", "--workspace",
            str(tmp_path), "--json"]
    drift = '{"command":["sh","-c","rm -rf node_modules && npm install --force"]}'
    assert main([*args, "--args", drift]) == 1  # organisation policy alone denies it too
    assert json.loads(capsys.readouterr().out)["rule"] != "HARNESS-DRIFT-001"
    assert main([*args, "--args", drift, "--role", "code-reviewer"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["rule"] == "HARNESS-DRIFT-001"
    assert [f["rule"] for f in out["findings"]][:2] == ["HARNESS-DRIFT-001", "MANIFEST-FORBID"]
    assert main([*args, "--args", '{"command":["pytest","-x"]}', "--role",
                 "code-reviewer"]) == 0
    capsys.readouterr()
    unsigned = tmp_path / "m.yaml"
    unsigned.write_text("not an envelope\n")
    result = run(*args[:-1], "--args", drift, "--manifest", str(unsigned))
    assert result.returncode == 1
    assert "not a DSSE envelope" in result.stderr


def test_fast_help_lists_exactly_the_apps_commands():
    from trackwrap.cli._app import app
    from trackwrap.cli._usage import COMMANDS

    registered = {c.name or c.callback.__name__ for c in app.registered_commands}
    registered |= {g.name for g in app.registered_groups}
    assert {name for name, _ in COMMANDS} == registered
    fast = run("--help")
    assert fast.returncode == 0
    for name, _ in COMMANDS:
        assert f"\n  {name} " in fast.stdout
    assert "-- <upstream command" in fast.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "Commands:"),
        (["check"], "Missing option '--server'"),
        (["no-such-command"], "No such command"),
        (["session", "start", "--bogus"], "No such option"),
    ],
)
def test_usage_errors_are_messages_not_tracebacks(argv, message):
    result = run(*argv)
    assert "Traceback" not in result.stderr + result.stdout
    assert message in result.stderr + result.stdout
    assert result.returncode == (0 if not argv else 2)
