"""What the collector tests share: real ledgers that make real segments, tokens, storages."""

from __future__ import annotations

import base64
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests._ledger import Clock
from trackwrap.collector import (
    PostgresStorage,
    Scope,
    SqliteStorage,
    Storage,
    issue_token,
)
from trackwrap.crypto import SigningKey
from trackwrap.ledger import Ledger, Segment, Usage

STORAGES = ["sqlite", "postgresql"]


def public_key_text(key: SigningKey) -> str:
    return "ed25519:" + base64.b64encode(key.public_raw).decode("ascii")


def open_test_storage(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Storage:
    """A fresh storage of ``kind``: SQLite in ``tmp_path``, PostgreSQL from ``pg_dsn`` (which
    skips the test when no PostgreSQL server is there)."""
    if kind == "sqlite":
        return SqliteStorage.open(tmp_path / "collector.db")
    return PostgresStorage.open(request.getfixturevalue("pg_dsn"))


def add_token(storage: Storage, *, developer: str = "dev@acme.com", device: str | None = None,
              scopes: Sequence[Scope] = (Scope.INGEST,)) -> str:
    token, record = issue_token(developer=developer, scopes=tuple(scopes), device=device,
                                now_ms=1_700_000_000_000)
    storage.add_token(record)
    return token


def decision(ledger: Ledger, session: str, n: int, outcome: str, *, kind: str = "filesystem.write",
             drift: dict[str, object] | None = None, trace: str | None = None,
             forwarded: bool | None = None) -> None:
    """Record one tool call the way the governor records it (the fields diagnose reads)."""
    forward = outcome == "allow" if forwarded is None else forwarded
    body: dict[str, object] = {
        "kind": "tool_call.decision", "server": "filesystem", "tool": "write_file",
        "action_kind": kind, "action_hash": f"sha256:{n:064x}", "decision": outcome,
        "enforced": True, "forwarded": forward, "rule": f"RULE-{outcome.upper()}",
        "reason": f"because {n}", "findings": [], "drift": drift,
        "trace": trace or f"tr-{n:06d}", "target": f"/work/repo/src/file{n}.py", "args": "{}",
    }
    ledger.append_decision(session, lambda _state, _seq: (
        body, Usage(tool_calls=1) if forward else Usage()))


def make_ledger(path: Path, key: SigningKey, *, session: str = "sess-1", calls: int = 30,
                seal_every: int = 20, agent: str = "claude-code", close: bool = True,
                clock: Clock | None = None, mixed: bool = True) -> Ledger:
    """A ledger holding one session of ``calls`` tool calls, sealed every ``seal_every``
    records: varied ones (allow, deny, drift, held for approval and then approved) if
    ``mixed``, else allowed ones only."""
    ledger = Ledger.open(path, signer=lambda: key, clock_ms=clock or Clock(step=1500),
                         seal_every=seal_every)
    ledger.ensure_session(session, genesis={
        "workspace": "/work/repo", "agent": agent, "developer": "priya@acme.com",
        "role": "code-reviewer"})
    for n in range(1, calls + 1):
        if not mixed:
            decision(ledger, session, n, "allow")
        elif n % 10 == 3:
            decision(ledger, session, n, "deny")
        elif n % 10 == 5:
            decision(ledger, session, n, "deny", kind="shell.exec", drift={
                "type": "permission_scope_exceeded", "pattern": "scope_violation",
                "rule": "HARNESS-DRIFT-001", "detail": "shell.exec is not in the manifest"})
        elif n % 10 == 7:
            decision(ledger, session, n, "require_approval", trace=f"held-{n}")
            decision(ledger, session, n, "allow", trace=f"held-{n}")
        else:
            decision(ledger, session, n, "allow")
    if close:
        ledger.close_session(session, reason="done")
    return ledger


def wire(segment: Segment, key: SigningKey) -> dict[str, object]:
    """What a device posts for one segment."""
    return {**segment.to_json(), "public_key": public_key_text(key)}


ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30  # a cold interpreter importing starlette and uvicorn on a slow machine


@dataclass
class Server:
    """One ``trackwrap collector serve`` process and the lines it wrote to stderr."""

    proc: subprocess.Popen[str]
    url: str = ""
    key_id: str = ""
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _reader: threading.Thread | None = None

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_listening(self) -> None:
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        while True:
            line = self._queue.get(timeout=START_TIMEOUT_S)
            if line is None:
                raise AssertionError("the collector exited: " + "".join(self.lines))
            if " listening on " in line:
                words = line.split()
                self.key_id, self.url = words[1], words[4]
                return

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=20)

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL
        self.proc.wait(timeout=20)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        if self._reader is not None:
            self._reader.join(timeout=20)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


def serve_collectors(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts ``trackwrap collector serve --db DB`` on a free loopback port (as many as a test
    wants); every one is killed when the test ends."""
    servers: list[Server] = []

    def run(db: Path | str, *extra: str) -> Server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trackwrap", "collector", "serve", "--db", str(db),
             "--listen", "127.0.0.1:0", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "TRACKWRAP_HOME": str(tmp_path / "server-home")})
        server = Server(proc)
        servers.append(server)
        server.wait_listening()
        return server

    yield run
    for server in servers:
        server.close()
