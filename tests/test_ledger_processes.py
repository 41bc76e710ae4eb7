"""The ledger across real processes: concurrent writers, and writers killed with SIGKILL."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from trackwrap.crypto import KeyStore
from trackwrap.ledger import Ledger, verify_ledger

REPO = Path(__file__).resolve().parent.parent
# Subprocess budget: interpreter start-up plus 200 fsync'd appends per worker on a slow CI disk.
PROCESS_TIMEOUT_S = 120
POLL_INTERVAL_S = 0.01


def _worker(
    db: Path, home: Path, worker: int, count: int, seal_every: int
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.ledger_helpers.append_worker",
            str(db),
            str(home),
            "s",
            str(worker),
            str(count),
            str(seal_every),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _row_count(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        (count,) = conn.execute("SELECT count(*) FROM events").fetchone()
    except sqlite3.OperationalError:  # schema not created yet
        return 0
    finally:
        conn.close()
    return int(count)


def _wait_for_rows(db: Path, at_least: int, proc: subprocess.Popen[str]) -> None:
    """Poll the database (bounded) until the writer has committed ``at_least`` rows."""
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while _row_count(db) < at_least:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"writer did not reach {at_least} rows"
        time.sleep(POLL_INTERVAL_S)


def test_four_processes_append_one_linear_chain(tmp_path: Path) -> None:
    db, home = tmp_path / "ledger.db", tmp_path / "home"
    procs = [_worker(db, home, worker, 200, 50) for worker in range(4)]
    for proc in procs:
        _, stderr = proc.communicate(timeout=PROCESS_TIMEOUT_S)
        assert proc.returncode == 0, stderr
    store = KeyStore(home, backend="file", warn=lambda _message: None)
    with Ledger.open(db, signer=store.device_key, clock_ms=_clock_ms) as ledger:
        ledger.seal("s", final=True)
        events = ledger.events("s")
    kinds = [event.body["kind"] for event in events]
    assert [event.seq for event in events] == list(range(len(events)))
    assert kinds[0] == "session.start"
    assert kinds.count("session.start") == 1
    assert kinds.count("tool_call.decision") == 800
    # 801 records before the final seal -> 16 automatic seals (every 50) and the final one.
    assert kinds.count("segment.seal") == 801 // 50 + 1
    per_worker: dict[int, list[int]] = defaultdict(list)
    for event in events:
        if event.body["kind"] == "tool_call.decision":
            per_worker[int(str(event.body["worker"]))].append(int(str(event.body["n"])))
    assert per_worker == {worker: list(range(200)) for worker in range(4)}
    seals = [e.body for e in events if e.body["kind"] == "segment.seal"]
    assert [seal["segment"] for seal in seals] == list(range(len(seals)))
    assert len({seal["key_id"] for seal in seals}) == 1  # the racing workers made one device key
    report = verify_ledger(db)
    assert report.exit_code == 0, json.dumps(report.to_json())


def test_sigkilled_writer_leaves_a_verifiable_ledger(tmp_path: Path) -> None:
    db, home = tmp_path / "ledger.db", tmp_path / "home"
    target = 0
    for _ in range(3):
        proc = _worker(db, home, 0, 0, 7)  # appends until killed, sealing every 7 records
        target = _row_count(db) + 40
        _wait_for_rows(db, target, proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=PROCESS_TIMEOUT_S)
        assert proc.returncode == -signal.SIGKILL
        report = verify_ledger(db)
        assert report.exit_code in (0, 2), json.dumps(report.to_json())
        issues = {(issue.code, issue.severity) for issue in report.sessions[0].issues}
        assert issues <= {("UNSEALED_TAIL", "warn")}, json.dumps(report.to_json())
    assert _row_count(db) >= target
    store = KeyStore(home, backend="file", warn=lambda _message: None)
    with Ledger.open(db, signer=store.device_key, clock_ms=_clock_ms) as ledger:
        before = ledger.session_ids()[0].tip_seq
        appended = ledger.append("s", {"kind": "session.recovered"})
        assert appended.seq == before + 1
        ledger.seal("s", final=True)
    report = verify_ledger(db)
    assert report.exit_code == 0, json.dumps(report.to_json())
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
