"""The demo's last step: a real collector on a free local port receives the sealed segments and
serves the diagnosis over HTTP. It never touches the user's own settings: the collector, its
database and its tokens live in the demo's scratch directory and go with it."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from trackwrap.cli._collector_wiring import CollectorSetup, run_sync
from trackwrap.cli._settings import Settings
from trackwrap.crypto import SigningKey
from trackwrap.errors import ConfigError
from trackwrap.ledger import Ledger

__all__ = ["DemoCollector", "demo_collector", "show_synced_diagnosis"]

_TOKEN = re.compile(r"\b(twc_[A-Za-z0-9_-]+)")


@dataclass(frozen=True, slots=True)
class DemoCollector:
    url: str
    ingest: str
    read: str
    key: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _trackwrap(*args: str, env: Mapping[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "trackwrap", *args], capture_output=True,  # noqa: S603
                          text=True, env=dict(env), timeout=60, check=False)
    if done.returncode != 0:
        raise ConfigError(f"trackwrap {' '.join(args[:3])} failed: {done.stderr.strip()}")
    return done.stdout


def _token(db: Path, scope: str, env: Mapping[str, str]) -> str:
    shown = _trackwrap("collector", "token", "create", "--db", str(db), "--device",
                       "demo-laptop", "--developer", "dev@example.com", "--scope", scope,
                       env=env)
    found = _TOKEN.search(shown)
    if found is None:
        raise ConfigError("the collector did not print a token")
    return found.group(1)


@contextmanager
def demo_collector(base: Path, env: Mapping[str, str]) -> Iterator[DemoCollector]:
    """A collector (SQLite in ``base``) running as a real server until the block ends."""
    from trackwrap.sync import CollectorClient, SyncError

    db = base / "collector.db"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    ingest, read = _token(db, "ingest", env), _token(db, "read", env)
    with (base / "collector.log").open("w") as log:
        server = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "trackwrap", "collector", "serve", "--db", str(db),
             "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=log, env=dict(env))
        try:
            deadline = time.monotonic() + 30
            public_key = ""
            with CollectorClient(url, read, timeout_s=1.0) as probe:
                while not public_key:
                    try:
                        _key_id, public_key = probe.collector_key()
                    except SyncError:
                        if server.poll() is not None or time.monotonic() > deadline:
                            raise ConfigError("the demo's collector did not start; see "
                                              f"{base / 'collector.log'}") from None
                        time.sleep(0.1)
            yield DemoCollector(url=url, ingest=ingest, read=read, key=public_key)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def show_synced_diagnosis(
    settings: Settings, ledger: Ledger, device: SigningKey, collector: DemoCollector, *,
    session: str, synced: list[str], console: Console,
) -> dict[str, Any]:
    """Sync the sealed segments of the ``synced`` sessions (the demo's own, never the user's
    other sessions) to the collector, then print its diagnosis of ``session`` as the API
    serves it."""
    from trackwrap.cli._session_cmds import render_diagnosis
    from trackwrap.sync import CollectorClient

    setup = CollectorSetup(url=collector.url, device="demo-laptop", token=collector.ingest,
                           key=collector.key)
    report = run_sync(settings, ledger, device, setup, sessions=synced)
    if not report.ok:
        raise ConfigError(f"the demo could not sync to its collector: {report.stopped}")
    sent = sum(s.sent for s in report.sessions)
    console.print(Text(f"› synced {sent} sealed segments to the collector at {collector.url}; "
                       "each came back with a signed receipt", style="bold"))
    with CollectorClient(collector.url, collector.read) as reader:
        reader.collector_key()  # the connection is open: time the diagnosis alone
        started = time.perf_counter()
        diagnosis = reader.diagnose(session)
        took = (time.perf_counter() - started) * 1000
    console.print(Text(f"› GET /v1/diagnose/session?id={session} answered in {took:.0f} ms",
                       style="bold"))
    render_diagnosis(diagnosis, console)
    witnessed = diagnosis.get("witnessed") or {}
    console.print(f"[dim]witnessed by collector {witnessed.get('collector')} through seq "
                  f"{witnessed.get('through_seq')}[/dim]")
    return diagnosis
