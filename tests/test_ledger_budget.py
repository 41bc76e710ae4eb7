"""``Ledger.append_decision``: decisions and their usage in one transaction; exact budgets, also
across real processes; the usage counters are checked by ``verify_ledger``."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
import rfc8785

from tests._ledger import Clock
from trackwrap.crypto import KeyStore, SigningKey
from trackwrap.errors import LedgerError
from trackwrap.ledger import Appended, Ledger, SessionState, Usage, verify_ledger

REPO = Path(__file__).resolve().parent.parent
# Subprocess budget: interpreter start-up plus a few dozen fsync'd appends per worker on slow CI.
PROCESS_TIMEOUT_S = 120

Build = Callable[[SessionState, int], tuple[Mapping[str, object], Usage]]



class Boom(RuntimeError):
    """What a build raises in these tests."""




@pytest.fixture
def ledger(db: Path, key: SigningKey) -> Iterator[Ledger]:
    with Ledger.open(db, signer=lambda: key, clock_ms=Clock()) as opened:
        opened.start_session(
            "s",
            genesis={"agent": "test"},
            workspace="/w",
            kind="explicit",
            role="dev",
            manifest_digest="sha256:" + "ab" * 32,
        )
        yield opened


def decision(*, forward: bool, bytes_out: int = 0, **extra: object) -> Build:
    def build(state: SessionState, seq: int) -> tuple[Mapping[str, object], Usage]:
        body = {"kind": "tool_call.decision", "forwarded": forward, **extra}
        return body, Usage(tool_calls=1, bytes_out=bytes_out) if forward else Usage()

    return build


def stored_rows(db: Path) -> list[tuple[str, int, bytes]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT session, seq, body FROM events ORDER BY seq").fetchall()
    finally:
        conn.close()


def test_append_decision_counts_usage_and_records_it(ledger: Ledger, db: Path) -> None:
    first = ledger.append_decision("s", decision(forward=True, bytes_out=120))
    ledger.append_decision("s", decision(forward=False))
    ledger.append_decision("s", decision(forward=True, bytes_out=5))
    state = ledger.session_state("s")
    assert (state.tool_calls, state.bytes_out, state.events) == (2, 125, 4)
    assert isinstance(first, Appended)
    bodies = [event.body for event in ledger.events("s")]
    assert [body.get("usage") for body in bodies] == [
        None,
        {"tool_calls": 1, "bytes_out": 120},
        {"tool_calls": 0, "bytes_out": 0},
        {"tool_calls": 1, "bytes_out": 5},
    ]
    assert first.seq == 1


def test_build_sees_the_state_and_the_seq_it_will_get(ledger: Ledger) -> None:
    seen: list[tuple[int, int, int]] = []

    def build(state: SessionState, seq: int) -> tuple[Mapping[str, object], Usage]:
        seen.append((state.tool_calls, state.bytes_out, seq))
        return {"kind": "tool_call.decision"}, Usage(tool_calls=1, bytes_out=3)

    appended = [ledger.append_decision("s", build).seq for _ in range(3)]
    assert seen == [(0, 0, 1), (1, 3, 2), (2, 6, 3)]
    assert appended == [1, 2, 3]


def test_budget_is_exact_in_one_process(ledger: Ledger) -> None:
    budget = 3

    def build(state: SessionState, seq: int) -> tuple[Mapping[str, object], Usage]:
        allowed = state.tool_calls < budget
        usage = Usage(tool_calls=1) if allowed else Usage()
        return {"kind": "tool_call.decision", "forwarded": allowed}, usage

    for _ in range(5):
        ledger.append_decision("s", build)
    forwarded = [event.body.get("forwarded") for event in ledger.events("s")[1:]]
    assert forwarded == [True, True, True, False, False]
    assert ledger.session_state("s").tool_calls == budget


def test_a_build_that_raises_writes_nothing(ledger: Ledger, db: Path) -> None:
    ledger.append_decision("s", decision(forward=True, bytes_out=1))
    before = stored_rows(db)

    def build(state: SessionState, seq: int) -> tuple[Mapping[str, object], Usage]:
        raise Boom(seq)

    with pytest.raises(Boom) as caught:
        ledger.append_decision("s", build)
    assert caught.value.args == (2,)
    assert stored_rows(db) == before
    state = ledger.session_state("s")
    assert (state.tool_calls, state.bytes_out, state.events) == (1, 1, 2)
    assert ledger.append_decision("s", decision(forward=False)).seq == 2  # still usable


@pytest.mark.parametrize(
    ("body", "usage"),
    [
        pytest.param({"kind": "tool_call.decision", "x": 1.5}, Usage(), id="float"),
        pytest.param({"decision": "allow"}, Usage(), id="no-kind"),
        pytest.param({"kind": "session.start"}, Usage(), id="genesis-kind"),
        pytest.param({"kind": "segment.seal"}, Usage(), id="seal-kind"),
        pytest.param({"kind": "session.end"}, Usage(), id="end-kind"),
        pytest.param({"kind": "tool_call.decision", "seq": 9}, Usage(), id="reserved"),
        pytest.param({"kind": "tool_call.decision", "usage": {}}, Usage(), id="own-usage"),
        pytest.param({"kind": "tool_call.decision"}, Usage(tool_calls=-1), id="refund"),
        pytest.param({"kind": "tool_call.decision"}, Usage(bytes_out=True), id="bool-usage"),
    ],
)
def test_bad_decisions_write_nothing(
    ledger: Ledger, db: Path, body: dict[str, object], usage: Usage
) -> None:
    before = stored_rows(db)
    with pytest.raises(LedgerError):
        ledger.append_decision("s", lambda _state, _seq: (body, usage))
    assert stored_rows(db) == before
    state = ledger.session_state("s")
    assert (state.tool_calls, state.bytes_out) == (0, 0)


def test_closed_or_unknown_session_refuses_without_calling_build(ledger: Ledger, db: Path) -> None:
    calls: list[int] = []

    def build(state: SessionState, seq: int) -> tuple[Mapping[str, object], Usage]:
        calls.append(seq)
        return {"kind": "tool_call.decision"}, Usage(tool_calls=1)

    ledger.close_session("s", reason="done")
    before = stored_rows(db)
    with pytest.raises(LedgerError):
        ledger.append_decision("s", build)
    with pytest.raises(LedgerError):
        ledger.append_decision("nope", build)
    assert calls == []
    assert stored_rows(db) == before


def test_plain_append_may_not_claim_usage(ledger: Ledger) -> None:
    with pytest.raises(LedgerError):
        ledger.append("s", {"kind": "tool_call.decision", "usage": {"tool_calls": 1}})


def test_append_decision_without_sync_is_flushed(ledger: Ledger) -> None:
    ledger.append_decision("s", decision(forward=False), sync=False)
    ledger.flush()
    assert ledger.session_state("s").events == 2


def test_automatic_seal_inside_append_decision(db: Path, key: SigningKey) -> None:
    with Ledger.open(db, signer=lambda: key, clock_ms=Clock(), seal_every=3) as ledger:
        ledger.ensure_session("s", genesis={})
        for _ in range(4):
            ledger.append_decision("s", decision(forward=True, bytes_out=2))
        kinds = [event.body["kind"] for event in ledger.events("s")]
        assert kinds == [
            "session.start",
            "tool_call.decision",
            "tool_call.decision",
            "segment.seal",
            "tool_call.decision",
            "tool_call.decision",
        ]
        assert ledger.session_state("s").tool_calls == 4
        ledger.close_session("s", reason="done")
    assert verify_ledger(db).exit_code == 0


def test_verify_passes_and_catches_edited_counters(ledger: Ledger, db: Path) -> None:
    for forward in (True, False, True):
        ledger.append_decision("s", decision(forward=forward, bytes_out=7))
    ledger.close_session("s", reason="done")
    report = verify_ledger(db)
    assert report.exit_code == 0, json.dumps(report.to_json())
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE sessions SET tool_calls = 0 WHERE session = 's'")  # more budget
    conn.close()
    report = verify_ledger(db)
    assert report.exit_code == 2
    (verdict,) = report.sessions
    assert [(i.code, i.severity, i.seq) for i in verdict.issues] == [
        ("COUNTER_MISMATCH", "warn", None)
    ]


def test_verify_flags_malformed_usage_in_a_record(db: Path, key: SigningKey) -> None:
    # The unsealed last record can be rewritten without breaking the chain; its usage cannot.
    with Ledger.open(db, signer=lambda: key, clock_ms=Clock()) as ledger:
        ledger.ensure_session("s", genesis={})
        ledger.append_decision("s", decision(forward=True, bytes_out=4))
        (_, tail) = ledger.events("s")
    edited = {**tail.body, "usage": {"tool_calls": "0", "bytes_out": 0}}
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "UPDATE events SET body = ? WHERE session = 's' AND seq = 1", (rfc8785.dumps(edited),)
        )
    conn.close()
    (verdict,) = verify_ledger(db).sessions
    assert [(i.code, i.severity, i.seq) for i in verdict.issues] == [
        ("COUNTER_MISMATCH", "warn", 1),
        ("UNSEALED_TAIL", "warn", 0),
        ("COUNTER_MISMATCH", "warn", None),
    ]


def test_ledger_written_without_counters_verifies(db: Path, key: SigningKey) -> None:
    """Records appended with plain ``append`` carry no usage: counters 0, nothing to warn."""
    with Ledger.open(db, signer=lambda: key, clock_ms=Clock()) as ledger:
        ledger.ensure_session("s", genesis={})
        ledger.append("s", {"kind": "tool_call.decision", "forwarded": True})
        ledger.seal("s", final=True)
    assert verify_ledger(db).exit_code == 0


# -- across processes -----------------------------------------------------------------------------


def _budget_worker(
    db: Path, home: Path, worker: int, attempts: int, budget: int
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.ledger_helpers.budget_worker",
            str(db),
            str(home),
            "s",
            str(worker),
            str(attempts),
            str(budget),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _answer(proc: subprocess.Popen[str]) -> int:
    """The worker's answer for one round: 1 forwarded, 0 denied (a dead worker: ValueError)."""
    assert proc.stdout is not None
    return int(proc.stdout.readline())


def _clock_ms() -> int:
    return time.time_ns() // 1_000_000


def test_four_processes_spend_exactly_the_budget(tmp_path: Path) -> None:
    db, home = tmp_path / "ledger.db", tmp_path / "home"
    budget, workers, attempts = 50, 4, 20
    store = KeyStore(home, backend="file", warn=lambda _message: None)
    with Ledger.open(db, signer=store.device_key, clock_ms=_clock_ms) as ledger:
        ledger.start_session(
            "s",
            genesis={},
            workspace=str(tmp_path),
            kind="explicit",
            role=None,
            manifest_digest=None,
        )
    procs = [_budget_worker(db, home, worker, attempts, budget) for worker in range(workers)]
    try:
        # Blocking reads: a worker that fails exits (its busy timeout is 10 s) and closes its pipe.
        for proc in procs:  # each has the ledger open
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
        per_round = []
        for _ in range(attempts):  # all workers race for the ledger in every round
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            per_round.append(sum(_answer(proc) for proc in procs))
        for proc in procs:
            _, stderr = proc.communicate(timeout=PROCESS_TIMEOUT_S)
            assert proc.returncode == 0, stderr
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    # 48 units in the first 12 rounds; in round 13 four workers race for the last 2.
    full, rest = divmod(budget, workers)
    assert per_round == [workers] * full + [rest] + [0] * (attempts - full - 1)

    with Ledger.open(db, signer=store.device_key, clock_ms=_clock_ms) as ledger:
        state = ledger.session_state("s")
        assert (state.tool_calls, state.bytes_out) == (budget, budget * 10)
        ledger.close_session("s", reason="done")
        events = ledger.events("s")
    assert [event.seq for event in events] == list(range(len(events)))
    decisions = [e.body for e in events if e.body["kind"] == "tool_call.decision"]
    assert len(decisions) == workers * attempts
    assert all(body["expected_seq"] == body["seq"] for body in decisions)
    forwarded = [body for body in decisions if body["forwarded"] is True]
    denied = [body for body in decisions if body["forwarded"] is False]
    assert len(forwarded) == budget
    assert len(denied) == workers * attempts - budget
    # Each forwarded call saw a different count of spent calls: 0..49, in chain order.
    assert [body["seen"] for body in forwarded] == list(range(budget))
    assert all(body["seen"] == budget for body in denied)
    assert all(body["usage"] == {"tool_calls": 1, "bytes_out": 10} for body in forwarded)
    assert all(body["usage"] == {"tool_calls": 0, "bytes_out": 0} for body in denied)
    assert {body["worker"] for body in forwarded} == set(range(workers))
    report = verify_ledger(db)
    assert report.exit_code == 0, json.dumps(report.to_json())
