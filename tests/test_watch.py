"""``trackwrap watch``: real wrapper processes record calls into a real ledger while the view
reads it — printed once for scripts, and live in a real terminal (tmux)."""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests._wrapper import ROOT, TIMEOUT, Wrapped, call, echo_server, wrapper_argv

pytestmark = pytest.mark.anyio

APPROVAL_POLICY = ROOT / "tests" / "data" / "approval-policy.yaml"
APPROVAL_ID = re.compile(r"apr-[0-9a-f]{12}")


def tw(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    # wide enough that the footer's rows (long temporary paths) are not wrapped
    env = {**os.environ, "COLUMNS": "240"}
    return subprocess.run([sys.executable, "-m", "trackwrap", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=60, check=False, env=env)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


def signed_manifest(tmp_path: Path, ws: Path, *, session_id: str | None = None) -> Path:
    """A manifest for ``ws`` with a budget, signed by a publisher the trust store pins."""
    key = tmp_path / "publisher.key"
    made = tw("keys", "generate", "--out", str(key))
    assert made.returncode == 0, made.stderr
    public = re.search(r"public key (ed25519:\S+)", made.stdout)
    assert public is not None
    trusted = tw("trust", "add", "--publisher", "acme", "--key", public.group(1))
    assert trusted.returncode == 0, trusted.stderr
    path = tmp_path / "session.yaml"
    path.write_text(
        "agent: test-agent\n"
        + (f"session_id: {session_id}\n" if session_id else "")
        + "manifest:\n"
        "  role: developer\n"
        f'  workspace: "{ws}"\n'
        "  allowed_tools:\n"
        "    - echo.echo · echo.big · email.send\n"
        "  budget:\n"
        "    tool_calls: 200\n"
        "    bytes_out: 5 MiB\n"
        "    duration: 45m\n"
    )
    signed = tw("manifest", "sign", "--key", str(key), str(path))
    assert signed.returncode == 0, signed.stderr
    return path.with_name(path.name + ".dsse.json")


def start_session(envelope: Path, ws: Path) -> str:
    started = tw("session", "start", "--manifest", str(envelope), "--workspace", str(ws))
    assert started.returncode == 0, started.stderr
    found = re.search(r"session\s+(sess-\S+)", started.stdout)
    assert found is not None, started.stdout
    return found.group(1)


def text_of(resp: dict[str, Any]) -> str:
    return str(resp["result"]["content"][0]["text"])


async def make_calls(ws: Path) -> str:
    """An allowed call and a denied one through one wrapper, and a call left waiting for
    approval through another (it gives up waiting after 0.3 s); returns the approval id."""
    echo = await Wrapped.start(wrapper_argv(echo_server(), workspace=ws))
    allowed = await echo.request(call(1, "echo", {"message": "hello"}))
    assert text_of(allowed) == "hello"
    denied = await echo.request(call(2, "write_file", {"path": "notes.txt", "content": "x"}))
    assert denied["result"]["isError"] is True
    code, _ = await echo.finish()
    assert code == 0

    outbox = await Wrapped.start(wrapper_argv(
        [sys.executable, "-m", "trackwrap.demo_servers.outbox", "--outbox",
         str(ws.parent / "outbox")],
        "--approval-wait", "0.3", server="outbox", policy=APPROVAL_POLICY, workspace=ws))
    await outbox.initialize()
    await outbox.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    held = await outbox.request(call(3, "send_email", {"to": "someone@example.org",
                                                       "subject": "hi", "body": "hello"}))
    assert held["result"]["isError"] is True
    found = APPROVAL_ID.search(text_of(held))
    assert found is not None, text_of(held)
    code, _ = await outbox.finish()
    assert code == 0
    return found.group(0)


# ------------------------------------------------------------------------------------- --once


async def test_once_shows_every_wrappers_decisions_pending_approvals_and_the_budget(
    tmp_path: Path, ws: Path
) -> None:
    session = await anyio.to_thread.run_sync(
        start_session, await anyio.to_thread.run_sync(signed_manifest, tmp_path, ws), ws)
    approval = await make_calls(ws)

    shown = await anyio.to_thread.run_sync(
        lambda: tw("watch", "--once", "--workspace", str(ws)))
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "Traceback" not in out + shown.stderr
    assert f"START session {session}" in out
    assert re.search(r"^ALLOW  echo\.echo  rule: \S+  trace: tr-[0-9a-f]+$", out, re.M), out
    assert re.search(r"^DENY   echo\.write_file .*rule: \S+", out, re.M), out
    assert "REQUIRE APPROVAL email.send someone@example.org" in out
    assert f"ASK    {approval}  email.send someone@example.org" in out
    # the footer: the session, the pending approval with its time left, the budget used
    assert f"{session} (explicit, role developer)" in out
    assert re.search(rf"PENDING {approval}  \d+m\d\ds left  email\.send someone@example\.org",
                     out), out
    assert re.search(r"1/200 tool calls, 0\.0/5\.0 MiB egress, \d+[smh]\S*/45m", out), out

    # the publisher is no longer trusted: the wrappers deny the session's calls, and it says so
    assert (await anyio.to_thread.run_sync(lambda: tw("trust", "remove", "acme"))).returncode == 0
    again = await anyio.to_thread.run_sync(
        lambda: tw("watch", "--once", "--workspace", str(ws)))
    assert again.returncode == 0, again.stderr
    assert "the session's manifest does not verify now" in again.stdout
    assert "1/200 tool calls" in again.stdout  # the budget recorded when it started


async def test_once_in_an_implicit_session_shows_the_amounts_used_without_limits(
    ws: Path
) -> None:
    wrapped = await Wrapped.start(wrapper_argv(echo_server(), workspace=ws))
    assert text_of(await wrapped.request(call(1, "echo", {"message": "x"}))) == "x"
    await wrapped.finish()

    # no --workspace: the current directory is the workspace
    shown = await anyio.to_thread.run_sync(lambda: tw("watch", "--once", cwd=ws))
    assert shown.returncode == 0, shown.stderr
    assert "ALLOW  echo.echo" in shown.stdout
    assert "(implicit, role -)" in shown.stdout
    assert "no approvals pending" in shown.stdout
    assert re.search(r"1 tool call, 0\.0 MiB egress, \d+[smh]", shown.stdout), shown.stdout
    assert "/" not in shown.stdout.split("no approvals pending")[1]


async def test_untrusted_text_is_shown_not_interpreted(ws: Path) -> None:
    wrapped = await Wrapped.start(wrapper_argv(echo_server(), workspace=ws))
    await wrapped.request(call(1, "\x1b[2Jwipe\x07", {}))
    await wrapped.finish()
    shown = await anyio.to_thread.run_sync(
        lambda: tw("watch", "--once", "--workspace", str(ws)))
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout
    assert "\x07" not in shown.stdout
    assert r"echo.\x1b[2Jwipe\x07" in shown.stdout


def test_once_without_a_ledger_says_so_and_exits_2(ws: Path, trackwrap_home: Path) -> None:
    shown = tw("watch", "--once", "--workspace", str(ws))
    assert shown.returncode == 2
    assert "no audit ledger" in shown.stderr
    assert str(trackwrap_home / "ledger.db") in shown.stderr
    assert "Traceback" not in shown.stderr
    assert not (trackwrap_home / "ledger.db").exists()  # looking creates nothing


async def test_once_for_a_session_without_calls_says_there_are_none(ws: Path) -> None:
    other = ws.parent / "other"
    other.mkdir()
    wrapped = await Wrapped.start(wrapper_argv(echo_server(), workspace=other))
    await wrapped.request(call(1, "echo", {"message": "x"}))
    await wrapped.finish()
    shown = await anyio.to_thread.run_sync(
        lambda: tw("watch", "--once", "--workspace", str(ws)))
    assert shown.returncode == 0, shown.stderr
    assert f"no calls recorded yet in {ws}" in shown.stdout
    assert "echo.echo" not in shown.stdout  # another workspace's session is not this one's


def test_a_bad_workspace_is_a_message(tmp_path: Path) -> None:
    shown = tw("watch", "--once", "--workspace", str(tmp_path / "nope"))
    assert shown.returncode == 2
    assert "is not a directory" in shown.stderr
    assert "Traceback" not in shown.stderr


# ---------------------------------------------------------------------------- live, in tmux


class Tmux:
    """One detached tmux server of its own (``-L``), running one command in a 160x40 pane."""

    def __init__(self) -> None:
        self.socket = f"trackwrap-watch-{secrets.token_hex(4)}"
        self.socket_path = ""

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        # os.environ as Python sees it: the process's C environment may carry COLUMNS/LINES
        # set under pytest, which would pin the pane's programs to 80x24
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, timeout=30, check=False, env=dict(os.environ))

    def start(self, command: str, *, env: dict[str, str], cwd: Path) -> None:
        options = [arg for name, value in env.items() for arg in ("-e", f"{name}={value}")]
        started = self.run("-f", "/dev/null", "new-session", "-d", "-x", "160", "-y", "40",
                           "-c", str(cwd), *options, command)
        assert started.returncode == 0, started.stderr
        self.socket_path = self.run("display-message", "-p", "#{socket_path}").stdout.strip()

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-J").stdout

    async def wait_for(self, *patterns: str) -> str:
        """The screen once every regex in ``patterns`` is on it (bounded wait)."""
        screen = ""
        try:
            with anyio.fail_after(TIMEOUT):
                while True:
                    screen = await anyio.to_thread.run_sync(self.screen)
                    if all(re.search(p, screen, re.M) for p in patterns):
                        return screen
                    await anyio.sleep(0.1)
        except TimeoutError:
            pytest.fail(f"the screen never showed {patterns}:\n{screen}", pytrace=False)

    def kill(self) -> None:
        """Stop the server and remove its socket file (tmux leaves it behind)."""
        self.run("kill-server")
        if self.socket_path:
            Path(self.socket_path).unlink(missing_ok=True)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed: the live view needs a real terminal to render in")
    terminal = Tmux()
    try:
        yield terminal
    finally:
        terminal.kill()


async def test_live_view_in_a_terminal_follows_the_session_as_calls_arrive(
    tmp_path: Path, ws: Path, trackwrap_home: Path, tmux: Tmux
) -> None:
    session = f"sess-watch-{secrets.token_hex(3)}"
    envelope = await anyio.to_thread.run_sync(
        lambda: signed_manifest(tmp_path, ws, session_id=session))
    command = (f"{shlex.quote(sys.executable)} -m trackwrap watch --session {session} "
               f"--workspace {shlex.quote(str(ws))}; echo watch exited $?; sleep 600")
    tmux.start(command, env={"TRACKWRAP_HOME": str(trackwrap_home),
                             "TRACKWRAP_KEY_BACKEND": "file"}, cwd=ROOT)
    # no ledger yet, then a ledger without the session: it waits
    await tmux.wait_for(r"waiting for the first call", r"Ctrl-C to quit")

    assert await anyio.to_thread.run_sync(start_session, envelope, ws) == session
    await tmux.wait_for(rf"START session {session}", r"0/200 tool calls")

    approval = await make_calls(ws)
    screen = await tmux.wait_for(
        r"^ALLOW  echo\.echo ",
        r"^DENY   echo\.write_file ",
        rf"^ASK    {approval}",
        rf"PENDING {approval}  \d+m\d\ds left  email\.send someone@example\.org",
        r"1/200 tool calls, 0\.0/5\.0 MiB egress, \S+/45m",
        rf"{session} \(explicit, role developer\)",
    )
    assert "Traceback" not in screen
    lines = screen.splitlines()
    footer = next(i for i, line in enumerate(lines) if session in line and "╭" in line)
    deny = next(i for i, line in enumerate(lines) if line.startswith("DENY"))
    assert deny < footer  # the decisions are above the footer

    closed = await anyio.to_thread.run_sync(
        lambda: tw("session", "close", "--session", session, "--reason", "done"))
    assert closed.returncode == 0, closed.stderr
    await tmux.wait_for(rf"^END    session {session} closed: done", r"session closed: done")

    tmux.run("send-keys", "C-c")
    screen = await tmux.wait_for(r"^watch exited \d+")
    assert "watch exited 0" in screen
    assert "Traceback" not in screen
    assert "aborted" not in screen.lower()


async def test_live_view_fits_the_terminal_and_keeps_the_newest_lines(
    ws: Path, trackwrap_home: Path, tmux: Tmux
) -> None:
    wrapped = await Wrapped.start(wrapper_argv(echo_server(), workspace=ws))
    for n in range(60):
        await wrapped.request(call(n, "echo", {"message": f"m{n}"}))
    await wrapped.finish()
    command = (f"{shlex.quote(sys.executable)} -m trackwrap watch; echo watch exited $?; "
               "sleep 600")
    tmux.start(command, env={"TRACKWRAP_HOME": str(trackwrap_home),
                             "TRACKWRAP_KEY_BACKEND": "file"}, cwd=ws)
    screen = await tmux.wait_for(r"60 tool calls", r"Ctrl-C to quit")
    rows = screen.splitlines()
    assert len(rows) <= 40
    assert sum(row.startswith("ALLOW  echo.echo") for row in rows) < 60
    assert any(row.startswith("╭") for row in rows)  # the footer's top is on the screen
    assert "START session" not in screen  # the oldest lines gave way


def test_watch_is_listed_in_help() -> None:
    shown = tw("--help")
    assert "\n  watch " in shown.stdout
    helped = tw("watch", "--help")
    assert helped.returncode == 0
    assert "--once" in helped.stdout
