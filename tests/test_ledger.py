"""trackwrap.ledger: appends, sessions, seals and the errors a real SQLite file can raise."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import trackwrap.ledger
from tests._ledger import Clock
from trackwrap.crypto import SigningKey, pae, verify_ed25519
from trackwrap.errors import KeyStoreError, LedgerError
from trackwrap.ledger import Appended, Ledger, SessionSummary, verify_ledger

REPO = Path(__file__).resolve().parent.parent
DOMAIN = b"trackwrap.event.v1\x00"
SEAL_PAYLOAD_TYPE = "application/vnd.trackwrap.seal.v1+json"



def sha(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(DOMAIN + raw).hexdigest()


def rows(db: Path, session: str = "s") -> list[tuple[int, bytes]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT seq, body FROM events WHERE session = ? ORDER BY seq", (session,)
        ).fetchall()
    finally:
        conn.close()




@pytest.fixture
def open_ledger(db: Path, key: SigningKey) -> Iterator[Callable[..., Ledger]]:
    opened: list[Ledger] = []

    def factory(*, seal_every: int = 1000, clock: Clock | None = None, signer=None) -> Ledger:
        ledger = Ledger.open(
            db,
            signer=signer or (lambda: key),
            clock_ms=clock or Clock(),
            seal_every=seal_every,
        )
        opened.append(ledger)
        return ledger

    yield factory
    for ledger in opened:
        ledger.close()


def test_public_names_are_sorted_and_complete() -> None:
    assert trackwrap.ledger.__all__ == sorted(trackwrap.ledger.__all__)
    for name in trackwrap.ledger.__all__:
        assert hasattr(trackwrap.ledger, name)


def test_append_chains_records(open_ledger, db: Path) -> None:
    ledger = open_ledger()
    assert ledger.ensure_session("s", genesis={"agent": {"harness": "test"}}) is True
    assert ledger.ensure_session("s", genesis={"agent": {"harness": "other"}}) is False
    first = ledger.append("s", {"kind": "tool_call.decision", "decision": "allow"})
    second = ledger.append("s", {"kind": "tool_call.decision", "decision": "deny"})
    stored = rows(db)
    assert [seq for seq, _ in stored] == [0, 1, 2]
    assert first == Appended(seq=1, hash=sha(stored[1][1]))
    assert second == Appended(seq=2, hash=sha(stored[2][1]))
    bodies = [json.loads(raw) for _, raw in stored]
    assert bodies[0]["kind"] == "session.start"
    assert bodies[0]["prev"] is None
    assert bodies[1]["prev"] == sha(stored[0][1])
    assert bodies[2]["prev"] == first.hash
    assert {b["session"] for b in bodies} == {"s"}
    events = ledger.events("s")
    assert [e.seq for e in events] == [0, 1, 2]
    assert events[1].body == bodies[1]
    assert events[1].raw == stored[1][1]


def test_record_bytes_are_canonical_golden(open_ledger, db: Path) -> None:
    ledger = open_ledger(clock=Clock(start=1_700_000_000_000, step=0))
    ledger.ensure_session(
        "01J0SESSION",
        genesis={"kind": "ignored", "agent": {"pid": 7, "harness": "t\u00e9st"}, "z": [True, None]},
    )
    ledger.append("01J0SESSION", {"kind": "tool_call.decision", "budget": -3, "a": "\u20ac"})
    (_, genesis), (_, decision) = rows(db, "01J0SESSION")
    assert genesis == (
        b'{"agent":{"harness":"t\xc3\xa9st","pid":7},"kind":"session.start","prev":null,'
        b'"seq":0,"session":"01J0SESSION","ts_ms":1700000000000,"v":1,"z":[true,null]}'
    )
    assert decision == (
        b'{"a":"\xe2\x82\xac","budget":-3,"kind":"tool_call.decision","prev":"'
        + sha(genesis).encode()
        + b'","seq":1,"session":"01J0SESSION","ts_ms":1700000000000,"v":1}'
    )


def test_seal_every_appends_a_signed_seal_in_the_same_transaction(
    open_ledger, db: Path, key: SigningKey
) -> None:
    ledger = open_ledger(seal_every=3)
    ledger.ensure_session("s", genesis={})
    for n in range(5):
        ledger.append("s", {"kind": "tool_call.decision", "n": n})
    stored = rows(db)
    bodies = [json.loads(raw) for _, raw in stored]
    assert [b["kind"] for b in bodies] == [
        "session.start",
        "tool_call.decision",
        "tool_call.decision",
        "segment.seal",
        "tool_call.decision",
        "tool_call.decision",
        "tool_call.decision",
        "segment.seal",
    ]
    first, second = bodies[3], bodies[7]
    assert first["segment"] == 0
    assert first["tree_size"] == 3
    assert first["chain_tip"] == first["prev"] == sha(stored[2][1])
    assert first["prev_seal"] is None
    assert first["final"] is False
    assert first["seal_type"] == "trackwrap/seal/v1"
    assert first["key_id"] == key.key_id
    assert first["sealed_at_ms"] == first["ts_ms"]
    assert second["segment"] == 1
    assert second["tree_size"] == 7
    assert second["prev_seal"] == sha(stored[3][1])
    unsigned = {k: v for k, v in first.items() if k != "sig"}
    import rfc8785

    verify_ed25519(
        key.public_raw,
        base64.b64decode(first["sig"]),
        pae(SEAL_PAYLOAD_TYPE, rfc8785.dumps(unsigned)),
    )
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT key_id, public_raw FROM keys").fetchall() == [
        (key.key_id, key.public_raw)
    ]
    conn.close()
    assert verify_ledger(db).exit_code == 0  # the last append filled and sealed segment 1


def test_seal_and_final_seal_close_the_session(open_ledger, db: Path) -> None:
    ledger = open_ledger()
    ledger.ensure_session("s", genesis={})
    ledger.append("s", {"kind": "tool_call.decision"})
    assert ledger.seal("s") == 2
    assert ledger.seal("s") is None  # nothing unsealed
    assert verify_ledger(db).exit_code == 0  # open, but fully sealed: no warning
    assert ledger.seal("s", final=True) == 3  # a final seal is always written
    with pytest.raises(LedgerError):
        ledger.append("s", {"kind": "session.end"})
    with pytest.raises(LedgerError):
        ledger.seal("s", final=True)
    assert ledger.seal("s") is None
    assert ledger.ensure_session("s", genesis={}) is False
    assert [seq for seq, _ in rows(db)] == [0, 1, 2, 3]
    assert ledger.session_ids()[0].closed is True
    report = verify_ledger(db)
    assert report.exit_code == 0
    assert report.sessions[0].sealed_through_seq == 3


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "tool_call.decision", "score": 0.5},
        {"kind": "tool_call.decision", "nested": {"list": [1, 2.0]}},
        {"kind": "tool_call.decision", "big": 2**53},
        {"kind": "tool_call.decision", "tuple": (1, 2)},
        {"kind": "tool_call.decision", "bytes": b"x"},
        {"kind": "tool_call.decision", "surrogate": "\ud800"},
        {"kind": "tool_call.decision", "seq": 5},
        {"kind": "tool_call.decision", "prev": None},
        {"kind": "segment.seal"},
        {"kind": "session.start"},
        {"decision": "allow"},
        {"kind": ""},
    ],
)
def test_bad_body_is_rejected_with_no_row_written(open_ledger, db: Path, body) -> None:
    ledger = open_ledger()
    ledger.ensure_session("s", genesis={})
    with pytest.raises(LedgerError):
        ledger.append("s", body)
    assert [seq for seq, _ in rows(db)] == [0]
    assert ledger.append("s", {"kind": "tool_call.decision"}).seq == 1


def test_float_in_genesis_is_rejected(open_ledger, db: Path) -> None:
    ledger = open_ledger()
    with pytest.raises(LedgerError):
        ledger.ensure_session("s", genesis={"version": 1.5})
    assert rows(db) == []
    assert ledger.session_ids() == []


def test_float_clock_rolls_back(open_ledger, db: Path) -> None:
    readings = iter([1, 1.5])
    ledger = open_ledger(clock=lambda: next(readings))
    with pytest.raises(LedgerError):
        ledger.ensure_session("s", genesis={})
    assert rows(db) == []


def test_append_needs_a_started_session(open_ledger) -> None:
    ledger = open_ledger()
    with pytest.raises(LedgerError):
        ledger.append("nope", {"kind": "tool_call.decision"})
    with pytest.raises(LedgerError):
        ledger.seal("nope")
    with pytest.raises(LedgerError):
        ledger.append("", {"kind": "tool_call.decision"})


def test_signer_is_called_lazily_and_once(open_ledger, key: SigningKey) -> None:
    calls: list[int] = []

    def signer() -> SigningKey:
        calls.append(1)
        return key

    ledger = open_ledger(seal_every=3, signer=signer)
    ledger.ensure_session("s", genesis={})
    ledger.append("s", {"kind": "tool_call.decision"})
    assert calls == []
    for _ in range(5):
        ledger.append("s", {"kind": "tool_call.decision"})
    ledger.seal("s")
    assert calls == [1]


def test_failing_signer_fails_the_append_and_writes_nothing(open_ledger, db: Path) -> None:
    def signer() -> SigningKey:
        raise KeyStoreError("keyring locked")

    ledger = open_ledger(seal_every=2, signer=signer)
    ledger.ensure_session("s", genesis={})
    with pytest.raises(LedgerError) as info:
        ledger.append("s", {"kind": "tool_call.decision"})
    assert isinstance(info.value.__cause__, KeyStoreError)
    assert [seq for seq, _ in rows(db)] == [0]


def test_seal_if_older_uses_the_oldest_unsealed_record(open_ledger) -> None:
    clock = Clock(step=0)
    ledger = open_ledger(clock=clock)
    ledger.ensure_session("s", genesis={})  # oldest unsealed record at t0
    t0 = clock.now
    clock.now = t0 + 500
    ledger.append("s", {"kind": "tool_call.decision"})
    clock.now = t0 + 59_999
    assert ledger.seal_if_older("s", max_age_ms=60_000) is None
    clock.now = t0 + 60_000
    assert ledger.seal_if_older("s", max_age_ms=60_000) == 2
    clock.now = t0 + 200_000
    assert ledger.seal_if_older("s", max_age_ms=60_000) is None  # nothing unsealed
    ledger.append("s", {"kind": "tool_call.decision"})
    clock.now += 59_999
    assert ledger.seal_if_older("s", max_age_ms=60_000) is None
    clock.now += 1
    assert ledger.seal_if_older("s", max_age_ms=60_000) == 4


def test_sessions_and_events_listing(open_ledger) -> None:
    clock = Clock(start=1000, step=1)
    ledger = open_ledger(clock=clock)
    ledger.ensure_session("b-first", genesis={})
    ledger.ensure_session("a-second", genesis={})
    for n in range(3):
        ledger.append("a-second", {"kind": "tool_call.decision", "n": n})
        ledger.append("b-first", {"kind": "tool_call.decision", "n": n})
    ledger.seal("a-second", final=True)
    summaries = ledger.session_ids()
    assert [s.session for s in summaries] == ["b-first", "a-second"]
    assert summaries[1] == SessionSummary(
        session="a-second",
        first_ts_ms=summaries[1].first_ts_ms,
        last_ts_ms=summaries[1].last_ts_ms,
        events=5,
        closed=True,
        tip_seq=4,
    )
    assert summaries[0].events == 4
    assert summaries[0].closed is False
    assert summaries[0].first_ts_ms < summaries[1].first_ts_ms <= summaries[1].last_ts_ms
    every = ledger.events()
    assert [(e.session, e.seq) for e in every] == [
        *(("b-first", n) for n in range(4)),
        *(("a-second", n) for n in range(5)),
    ]
    assert [e.seq for e in ledger.events("b-first", after_seq=1)] == [2, 3]
    assert [e.seq for e in ledger.events("a-second", after_seq=0, limit=2)] == [1, 2]
    assert ledger.events("missing") == []


def test_ledger_file_is_private_and_wal(open_ledger, db: Path) -> None:
    open_ledger().ensure_session("s", genesis={})
    assert db.stat().st_mode & 0o077 == 0
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA user_version").fetchone() == (6,)
    assert conn.execute("SELECT name FROM migrations").fetchall() == [
        ("0001_initial",),
        ("0002_session_rows",),
        ("0003_tool_pins",),
        ("0004_pin_approved_json",),
        ("0005_approvals",),
        ("0006_receipts",),
    ]
    conn.close()


def test_reopen_continues_the_chain(open_ledger, db: Path) -> None:
    clock = Clock()
    first = open_ledger(clock=clock)
    first.ensure_session("s", genesis={})
    first.append("s", {"kind": "tool_call.decision"})
    first.close()
    second = open_ledger(clock=clock)
    assert second.append("s", {"kind": "tool_call.decision"}).seq == 2
    second.seal("s", final=True)
    assert verify_ledger(db).exit_code == 0


def test_closed_ledger_refuses_use(open_ledger) -> None:
    ledger = open_ledger()
    ledger.close()
    ledger.close()
    with pytest.raises(LedgerError):
        ledger.ensure_session("s", genesis={})


def test_bad_seal_every_is_refused(db: Path, key: SigningKey) -> None:
    with pytest.raises(LedgerError):
        Ledger.open(db, signer=lambda: key, clock_ms=Clock(), seal_every=0)


# -- I/O failures become LedgerError ------------------------------------------------------------


def _run_open_worker(db: Path) -> str:
    """Open a ledger in a child process; as root, without the capability to bypass permissions."""
    command = [sys.executable, "-m", "tests.ledger_helpers.open_worker", str(db)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: file permissions cannot be enforced")
        command = [
            setpriv,
            "--bounding-set=-dac_override,-dac_read_search,-fowner",
            "--",
            *command,
        ]
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stderr == ""
    return result.stdout.strip()


def test_unwritable_directory_is_a_ledger_error(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o555)
    try:
        assert _run_open_worker(directory / "ledger.db") == "LedgerError"
    finally:
        directory.chmod(0o755)
    assert _run_open_worker(directory / "ledger.db") == "ok"


def test_read_only_database_is_a_ledger_error(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    assert _run_open_worker(db) == "ok"
    db.chmod(0o444)
    assert _run_open_worker(db) == "LedgerError"


def test_path_under_a_file_is_a_ledger_error(tmp_path: Path, key: SigningKey) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LedgerError):
        Ledger.open(blocker / "ledger.db", signer=lambda: key, clock_ms=Clock())


def test_corrupt_database_is_a_ledger_error(db: Path, key: SigningKey) -> None:
    db.write_bytes(b"this is not a sqlite database" * 200)
    with pytest.raises(LedgerError):
        Ledger.open(db, signer=lambda: key, clock_ms=Clock())
    with pytest.raises(LedgerError):
        verify_ledger(db)


def test_newer_schema_is_refused(open_ledger, db: Path, key: SigningKey) -> None:
    open_ledger().close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(LedgerError):
        Ledger.open(db, signer=lambda: key, clock_ms=Clock())


def test_disk_full_is_a_ledger_error_and_rolls_back(open_ledger, db: Path) -> None:
    ledger = open_ledger()
    ledger.ensure_session("s", genesis={})
    # Simulate ENOSPC: cap this connection's database at its current size (white-box).
    conn = ledger._conn
    assert conn is not None
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(LedgerError) as info:
        ledger.append("s", {"kind": "tool_call.decision", "pad": "x" * 100_000})
    assert "disk is full" in info.value.diagnostics()
    assert [seq for seq, _ in rows(db)] == [0]
    conn.execute("PRAGMA max_page_count = 1073741823")
    assert ledger.append("s", {"kind": "tool_call.decision"}).seq == 1


def test_verify_missing_file_or_session_is_a_ledger_error(open_ledger, db: Path) -> None:
    with pytest.raises(LedgerError):
        verify_ledger(db)
    open_ledger().ensure_session("s", genesis={})
    with pytest.raises(LedgerError):
        verify_ledger(db, session="other")
    assert [v.session for v in verify_ledger(db, session="s").sessions] == ["s"]
