"""Sessions as first-class rows: start, active session of a workspace, state, close, list, and
the migration that adds them to an existing ledger."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._ledger import Clock
from trackwrap.crypto import SigningKey
from trackwrap.errors import LedgerError, LedgerIntegrityError
from trackwrap.ledger import Ledger, SessionKind, SessionState, verify_ledger

DIGEST = "sha256:" + "ab" * 32
REPO = Path(__file__).resolve().parent.parent





@pytest.fixture
def ledger(db: Path, key: SigningKey) -> Iterator[Ledger]:
    with Ledger.open(db, signer=lambda: key, clock_ms=Clock()) as opened:
        yield opened


def start(
    ledger: Ledger,
    session: str,
    *,
    workspace: str | None = "/work/app",
    kind: str = "explicit",
    role: str | None = "dev",
    manifest_digest: str | None = DIGEST,
    genesis: dict[str, object] | None = None,
) -> int:
    return ledger.start_session(
        session,
        genesis={"agent": "test"} if genesis is None else genesis,
        workspace=workspace,
        kind=kind,
        role=role,
        manifest_digest=manifest_digest,
    )


def test_start_active_close_round_trip(ledger: Ledger, db: Path) -> None:
    assert ledger.active_session("/work/app") is None
    assert start(ledger, "s1", genesis={"agent": "test", "on_drift": "deny"}) == 0
    assert ledger.active_session("/work/app") == "s1"
    assert ledger.active_session("/work/app/") is None  # exact path, the caller normalizes
    assert ledger.active_session("/work") is None
    state = ledger.session_state("s1")
    genesis = ledger.events("s1")[0].body
    assert state == SessionState(
        session="s1",
        workspace="/work/app",
        kind=SessionKind.EXPLICIT,
        role="dev",
        manifest_digest=DIGEST,
        started_ms=state.started_ms,
        closed=False,
        close_reason=None,
        tool_calls=0,
        bytes_out=0,
        events=1,
        genesis=genesis,
    )
    assert state.started_ms == genesis["ts_ms"]
    assert genesis == {
        "agent": "test",
        "on_drift": "deny",
        "kind": "session.start",
        "workspace": "/work/app",
        "session_kind": "explicit",
        "role": "dev",
        "manifest_digest": DIGEST,
        "v": 1,
        "session": "s1",
        "seq": 0,
        "prev": None,
        "ts_ms": genesis["ts_ms"],
    }
    ledger.append("s1", {"kind": "tool_call.decision"})
    seal_seq = ledger.close_session("s1", reason="user", extra={"by": "cli"})
    assert seal_seq == 3
    assert ledger.active_session("/work/app") is None
    closed = ledger.session_state("s1")
    assert (closed.closed, closed.close_reason, closed.events) == (True, "user", 4)
    end, seal = (event.body for event in ledger.events("s1")[2:])
    assert {k: end[k] for k in ("kind", "reason", "by")} == {
        "kind": "session.end",
        "reason": "user",
        "by": "cli",
    }
    assert (seal["kind"], seal["final"]) == ("segment.seal", True)
    assert verify_ledger(db).exit_code == 0


def test_a_closed_session_cannot_close_again_or_take_records(ledger: Ledger) -> None:
    start(ledger, "s1")
    ledger.close_session("s1", reason="done")
    with pytest.raises(LedgerError):
        ledger.close_session("s1", reason="again")
    with pytest.raises(LedgerError):
        ledger.append("s1", {"kind": "tool_call.decision"})
    with pytest.raises(LedgerError):
        ledger.close_session("unknown", reason="done")
    assert ledger.session_state("s1").events == 3


def test_final_seal_also_ends_activity(ledger: Ledger) -> None:
    start(ledger, "s1")
    ledger.seal("s1", final=True)
    assert ledger.active_session("/work/app") is None
    state = ledger.session_state("s1")
    assert (state.closed, state.close_reason) == (True, None)


def test_newest_open_explicit_session_is_active(ledger: Ledger) -> None:
    start(ledger, "older")
    start(ledger, "newer")
    start(ledger, "elsewhere", workspace="/work/other")
    assert ledger.active_session("/work/app") == "newer"
    assert ledger.active_session("/work/other") == "elsewhere"
    ledger.close_session("newer", reason="done")
    assert ledger.active_session("/work/app") == "older"
    ledger.close_session("older", reason="done")
    assert ledger.active_session("/work/app") is None


def test_implicit_sessions_are_never_active(ledger: Ledger) -> None:
    assert ledger.ensure_session("implicit-1", genesis={"workspace": "/work/app", "role": "dev"})
    start(ledger, "implicit-2", kind="implicit")
    assert ledger.active_session("/work/app") is None
    state = ledger.session_state("implicit-1")
    assert (state.kind, state.workspace, state.role, state.manifest_digest) == (
        "implicit",
        "/work/app",
        "dev",
        None,
    )
    assert ledger.session_state("implicit-2").kind is SessionKind.IMPLICIT
    start(ledger, "explicit")
    assert ledger.active_session("/work/app") == "explicit"


def test_ensure_session_keeps_the_genesis_as_given(ledger: Ledger) -> None:
    ledger.ensure_session("s", genesis={"workspace": 7})
    state = ledger.session_state("s")
    assert state.workspace is None
    assert "session_kind" not in state.genesis
    assert state.genesis["workspace"] == 7


def test_start_session_refuses_an_existing_session(ledger: Ledger) -> None:
    start(ledger, "s1")
    ledger.ensure_session("s2", genesis={})
    with pytest.raises(LedgerError):
        start(ledger, "s1")
    with pytest.raises(LedgerError):
        start(ledger, "s2")
    assert ledger.session_state("s2").kind is SessionKind.IMPLICIT
    assert ledger.ensure_session("s1", genesis={}) is False


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param({"kind": "sideways"}, id="unknown-kind"),
        pytest.param({"workspace": ""}, id="empty-workspace"),
        pytest.param({"genesis": {"workspace": "/elsewhere"}}, id="contradicting-genesis"),
        pytest.param({"genesis": {"session_kind": "implicit"}}, id="contradicting-kind"),
        pytest.param({"genesis": {"seq": 3}}, id="reserved"),
        pytest.param({"genesis": {"cost": 0.5}}, id="float"),
    ],
)
def test_bad_starts_write_nothing(ledger: Ledger, arguments: dict[str, object]) -> None:
    with pytest.raises(LedgerError):
        start(ledger, "s1", **arguments)  # type: ignore[arg-type]
    assert ledger.list_sessions() == []
    assert ledger.events() == []


def test_genesis_may_repeat_the_binding(ledger: Ledger) -> None:
    start(ledger, "s1", genesis={"workspace": "/work/app", "role": "dev"})
    assert ledger.session_state("s1").role == "dev"


@pytest.mark.parametrize("extra", [{"reason": "x"}, {"kind": "x"}, {"usage": {}}])
def test_close_extra_may_not_override_the_record(ledger: Ledger, extra: dict[str, object]) -> None:
    start(ledger, "s1")
    with pytest.raises(LedgerError):
        ledger.close_session("s1", reason="done", extra=extra)
    assert not ledger.session_state("s1").closed


def test_close_needs_a_reason(ledger: Ledger) -> None:
    start(ledger, "s1")
    with pytest.raises(LedgerError):
        ledger.close_session("s1", reason="")


def test_close_fails_whole_when_the_key_cannot_be_loaded(db: Path) -> None:
    def no_key() -> SigningKey:
        raise LedgerError("no key here")

    with Ledger.open(db, signer=no_key, clock_ms=Clock()) as ledger:
        start(ledger, "s1")
        with pytest.raises(LedgerError):
            ledger.close_session("s1", reason="done")
        state = ledger.session_state("s1")
        assert (state.closed, state.events, state.close_reason) == (False, 1, None)


def test_unknown_session_state(ledger: Ledger) -> None:
    with pytest.raises(LedgerError):
        ledger.session_state("missing")


def test_list_sessions_newest_first(ledger: Ledger) -> None:
    ledger.ensure_session("first", genesis={})
    start(ledger, "second")
    start(ledger, "third", workspace=None, role=None, manifest_digest=None)
    ledger.close_session("second", reason="done")
    listed = ledger.list_sessions()
    assert [state.session for state in listed] == ["third", "second", "first"]
    assert [state.closed for state in listed] == [False, True, False]
    assert listed[0].workspace is None
    assert listed == [ledger.session_state(state.session) for state in listed]


def test_active_session_is_one_indexed_lookup(ledger: Ledger, db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT session FROM sessions "
            "WHERE workspace = ? AND kind = 'explicit' AND closed = 0 "
            "ORDER BY ord DESC LIMIT 1",
            ("/work/app",),
        ).fetchall()
    finally:
        conn.close()
    details = [str(row[-1]) for row in plan]
    assert any("USING INDEX sessions_active" in detail for detail in details), details
    assert not any("TEMP B-TREE" in detail for detail in details), details


def test_damaged_state_rows_are_errors_not_guesses(ledger: Ledger, db: Path) -> None:
    start(ledger, "s1")
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("PRAGMA ignore_check_constraints = ON")
        conn.execute("UPDATE sessions SET kind = 'sideways'")
    conn.close()
    with pytest.raises(LedgerIntegrityError):
        ledger.session_state("s1")
    with pytest.raises(LedgerIntegrityError):
        ledger.list_sessions()


def test_missing_genesis_is_an_integrity_error(ledger: Ledger, db: Path) -> None:
    start(ledger, "s1")
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM events WHERE session = 's1' AND seq = 0")
    conn.close()
    with pytest.raises(LedgerIntegrityError) as caught:
        ledger.session_state("s1")
    assert caught.value.seq == 0


def test_migration_fills_in_sessions_of_an_older_ledger(db: Path, key: SigningKey) -> None:
    """A ledger written at schema 1 (before session rows) gains them, from its genesis records."""
    clock = Clock()
    # Write the records with today's code, then take the database back to schema 1.
    with Ledger.open(db, signer=lambda: key, clock_ms=clock) as ledger:
        ledger.ensure_session("old-a", genesis={"workspace": "/work/app"})
        ledger.ensure_session("old-b", genesis={"workspace": 5})
        ledger.append("old-a", {"kind": "tool_call.decision", "forwarded": True})
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript(
        """
        DROP INDEX sessions_active;
        ALTER TABLE sessions DROP COLUMN workspace;
        ALTER TABLE sessions DROP COLUMN kind;
        ALTER TABLE sessions DROP COLUMN role;
        ALTER TABLE sessions DROP COLUMN manifest_digest;
        ALTER TABLE sessions DROP COLUMN started_ms;
        ALTER TABLE sessions DROP COLUMN close_reason;
        ALTER TABLE sessions DROP COLUMN tool_calls;
        ALTER TABLE sessions DROP COLUMN bytes_out;
        DROP TABLE pins;
        DROP TABLE approvals;
        DROP TABLE receipts;
        DELETE FROM migrations WHERE name IN ('0002_session_rows', '0003_tool_pins',
                                              '0004_pin_approved_json', '0005_approvals',
                                              '0006_receipts');
        PRAGMA user_version = 1;
        """
    )
    conn.close()
    assert verify_ledger(db).sessions[0].issues[0].code == "UNSEALED_TAIL"  # schema 1 verifies

    with Ledger.open(db, signer=lambda: key, clock_ms=clock) as ledger:
        a, b = ledger.session_state("old-a"), ledger.session_state("old-b")
        assert (a.kind, a.workspace, a.tool_calls, a.events) == ("implicit", "/work/app", 0, 2)
        assert a.started_ms == a.genesis["ts_ms"]
        assert (b.kind, b.workspace) == ("implicit", None)
        assert ledger.active_session("/work/app") is None
        ledger.seal("old-a", final=True)
        ledger.seal("old-b", final=True)
    report = verify_ledger(db)
    assert report.exit_code == 0, json.dumps(report.to_json())
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (6,)
    finally:
        conn.close()


def test_the_session_api_keeps_cryptography_off_the_start_path(tmp_path: Path) -> None:
    """Opening a ledger and binding a session (what every wrapper does first) loads no crypto."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from trackwrap.ledger import Ledger, Usage\n"
        f"ledger = Ledger.open(Path({str(tmp_path / 'l.db')!r}), signer=None, clock_ms=lambda: 1)\n"
        "ledger.ensure_session('s', genesis={'workspace': '/w'})\n"
        "ledger.active_session('/w')\n"
        "ledger.append_decision('s', lambda st, seq: ({'kind': 'x'}, Usage(tool_calls=1)))\n"
        "ledger.close()\n"
        "sys.exit(1 if 'cryptography' in sys.modules or 'trackwrap.crypto' in sys.modules else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
