"""Runs ``python -m trackwrap … -- <server>`` as a real subprocess and talks raw lines to it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process

ROOT = Path(__file__).resolve().parents[1]
ECHO_POLICY = ROOT / "tests" / "data" / "echo-policy.yaml"
# Subprocess tests start interpreters and real servers: allow more than the usual 5 s.
TIMEOUT = 30


def echo_server(*flags: str) -> list[str]:
    return [sys.executable, "-m", "tests.servers.echo", *flags]


def wrapper_argv(server_argv: Sequence[str], *options: str, server: str = "echo",
                 policy: Path | None = ECHO_POLICY, workspace: Path | None = None) -> list[str]:
    argv = [sys.executable, "-m", "trackwrap", "--server", server]
    if policy is not None:
        argv += ["--policy", str(policy)]
    if workspace is not None:
        argv += ["--workspace", str(workspace)]
    return [*argv, *options, "--", *server_argv]


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def pid_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is still running (zombies waiting for a reaper
    that never comes, as under a container's PID 1, do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


async def wait_group_gone(pgid: int) -> None:
    """Wait (bounded) until no process of group ``pgid`` runs: there is no event to wait on
    for another process group, so this polls /proc."""
    with anyio.fail_after(TIMEOUT):
        while group_alive(pgid):  # noqa: ASYNC110 - polling another process's state
            await anyio.sleep(0.05)


class Wrapped:
    """One running wrapper; ``lines`` buffers stdout split on ``\\n``."""

    def __init__(self, proc: Process) -> None:
        self.proc = proc
        self._buf = bytearray()
        self.raw_lines: list[bytes] = []

    @classmethod
    async def start(cls, argv: Sequence[str], *, env: dict[str, str] | None = None,
                    cwd: Path | None = None) -> Wrapped:
        proc = await anyio.open_process(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd=cwd or ROOT,
        )
        return cls(proc)

    async def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.send(data)

    async def send(self, msg: Any) -> None:
        await self.send_raw(json.dumps(msg).encode() + b"\n")

    async def recv_raw(self) -> bytes:
        assert self.proc.stdout is not None
        with anyio.fail_after(TIMEOUT):
            while True:
                nl = self._buf.find(b"\n")
                if nl >= 0:
                    line = bytes(self._buf[:nl])
                    del self._buf[: nl + 1]
                    self.raw_lines.append(line)
                    return line
                self._buf += await self.proc.stdout.receive(1 << 20)

    async def recv(self) -> Any:
        return json.loads(await self.recv_raw())

    async def request(self, msg: Any) -> Any:
        await self.send(msg)
        return await self.recv()

    async def initialize(self) -> Any:
        return await self.request({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "test", "version": "1"}}})

    async def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.aclose()

    async def wait(self) -> int:
        with anyio.fail_after(TIMEOUT):
            return await self.proc.wait()

    async def stderr_text(self) -> str:
        assert self.proc.stderr is not None
        with anyio.fail_after(TIMEOUT):
            chunks = [chunk async for chunk in self.proc.stderr]
        return b"".join(chunks).decode(errors="replace")

    async def finish(self) -> tuple[int, str]:
        """Close stdin, drain stdout/stderr, return (exit code, stderr)."""
        await self.close_stdin()
        assert self.proc.stdout is not None
        async with anyio.create_task_group() as tg:
            async def drain_out() -> None:
                assert self.proc.stdout is not None
                async for chunk in self.proc.stdout:
                    self._buf += chunk
            tg.start_soon(drain_out)
            err = await self.stderr_text()
        code = await self.wait()
        return code, err

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)


def call(msg_id: Any, tool: str, arguments: dict[str, Any] | None = None,
         **extra: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": "tools/call",
                           "params": {"name": tool, "arguments": arguments or {}}}
    if msg_id is not ...:
        msg["id"] = msg_id
    msg.update(extra)
    return msg
