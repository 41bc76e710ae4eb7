"""``verify_ledger``: re-check every stored record from the raw rows, trusting nothing derived.

What a chain can show (per session): edits, insertions, deletions and reordering anywhere before
the last record, and (through the signed seals) that the sealed prefix is what the device key
holder sealed. What it cannot show: **deletion of the last records of a session after its last
seal** (tail truncation) leaves a shorter chain that is still consistent, and a whole session
removed from both tables leaves no trace; a rewrite by someone holding the device key, forks, and
wall-clock truth need state held elsewhere (collector receipts, timestamps). Hence the report's
``sealed_through_seq`` next to ``verified_through_seq``.

Codes (severity): ``PARSE``, ``NON_CANONICAL``, ``FOREIGN_SESSION``, ``SEQ_GAP_OR_REORDER``,
``CHAIN_BREAK``, ``NO_GENESIS``, ``SEAL_MISMATCH``, ``SEAL_CHAIN_BREAK``, ``SEAL_BAD_SIGNATURE``,
``SEAL_KEY_INVALID``, ``RECORD_AFTER_FINAL_SEAL``, ``WITNESSED_TRUNCATED``,
``WITNESSED_REWRITTEN``, ``RECEIPT_INVALID`` (fail); ``UNSEALED_TAIL``, ``CLOCK_ANOMALY``,
``COUNTER_MISMATCH`` (warn).

``COUNTER_MISMATCH``: the session's derived ``tool_calls`` / ``bytes_out`` counters (which budget
checks read) differ from the sum of the ``usage`` its records carry, or a record's ``usage`` is
malformed. The records are the truth; the counters were edited or are stale.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import sqlite3
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from trackwrap._canonical import is_canonical
from trackwrap.errors import LedgerError, SignatureError
from trackwrap.ledger._records import (
    KIND_SEAL,
    KIND_START,
    RECORD_VERSION,
    SEAL_PAYLOAD_TYPE,
    SEAL_TYPE,
    USAGE_FIELD,
    RecordParseError,
    jcs,
    parse_strict,
    record_hash,
)
from trackwrap.ledger._store import translate_sqlite_error

__all__ = ["SessionVerdict", "VerifyIssue", "VerifyReport", "verify_ledger"]

Severity = Literal["fail", "warn"]
Status = Literal["pass", "fail", "warn"]
KeysSource = Literal["trusted", "ledger"]

MAX_ISSUES_PER_SESSION = 100

_SEAL_FIELDS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("segment", int),
    ("seal_type", str),
    ("sealed_at_ms", int),
    ("chain_tip", str),
    ("tree_size", int),
    ("prev_seal", (str, type(None))),
    ("final", bool),
    ("key_id", str),
    ("sig", str),
)


@dataclass(frozen=True, slots=True)
class VerifyIssue:
    """One finding: a stable ``code``, its severity, where (``seq``, None if nowhere), and why."""

    code: str
    severity: Severity
    seq: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class SessionVerdict:
    """The result for one session.

    ``verified_through_seq`` is the last seq before the first failure (before the broken link's
    source for ``CHAIN_BREAK``, since either end of a broken link may be the edited one), or the
    last seq; -1 if none. ``sealed_through_seq`` is the last seal that verified before any
    failure; -1 if none.
    """

    session: str
    status: Status
    events: int
    verified_through_seq: int
    sealed_through_seq: int
    issues: list[VerifyIssue]
    chain_tip: str | None = None
    issues_omitted: int = 0
    witnessed_through_seq: int | None = None
    """The last seq a collector receipt vouches for that the ledger still holds unchanged (None:
    no receipts for this session)."""


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Every verified session, and where the seal keys came from."""

    sessions: list[SessionVerdict]
    keys_source: KeysSource = "ledger"

    @property
    def exit_code(self) -> int:
        """0 all pass, 1 any failure, 2 pass with warnings."""
        statuses = {verdict.status for verdict in self.sessions}
        if "fail" in statuses:
            return 1
        if "warn" in statuses:
            return 2
        return 0

    def to_json(self) -> dict[str, object]:
        """The report as JSON-ready data (``json.dumps`` it to print)."""
        return {
            "exit_code": self.exit_code,
            "keys_source": self.keys_source,
            "sessions": [asdict(verdict) for verdict in self.sessions],
        }


def verify_ledger(
    path: Path,
    *,
    session: str | None = None,
    trusted_keys: Mapping[str, bytes] | None = None,
    collector_keys: Mapping[str, bytes] | None = None,
) -> VerifyReport:
    """Verify the ledger at ``path`` from its raw rows (opened read-only).

    Seal keys come from ``trusted_keys`` (key id -> 32 raw public bytes) when given, else from the
    ledger's own ``keys`` table, which only proves consistency, not who sealed.

    Collector receipts stored with the ledger are witnesses: a witnessed record that is gone
    (``WITNESSED_TRUNCATED``) or differs (``WITNESSED_REWRITTEN``) is a failure. The signature
    of each receipt that names one of ``collector_keys`` is checked too (``RECEIPT_INVALID``);
    a receipt cannot make a chain pass, only hold it to more.

    Raises:
        LedgerError: the file is missing or unreadable, or ``session`` is not in it.
    """
    if not path.is_file():
        raise LedgerError(f"audit ledger {path} does not exist")
    uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise translate_sqlite_error(exc, path=path, doing="open for verification") from exc
    try:
        return _verify(conn, session=session, trusted_keys=trusted_keys, path=path,
                       collector_keys=collector_keys)
    except sqlite3.Error as exc:
        raise translate_sqlite_error(exc, path=path, doing="read for verification") from exc
    finally:
        conn.close()


def _verify(
    conn: sqlite3.Connection,
    *,
    session: str | None,
    trusted_keys: Mapping[str, bytes] | None,
    path: Path,
    collector_keys: Mapping[str, bytes] | None = None,
) -> VerifyReport:
    conn.execute("PRAGMA query_only = ON")
    conn.execute("BEGIN")  # one consistent snapshot of every table
    names = _session_names(conn)
    if session is not None:
        if session not in names:
            raise LedgerError(f"audit ledger {path} has no session {session}")
        names = [session]
    source: KeysSource = "ledger" if trusted_keys is None else "trusted"
    keys = _ledger_keys(conn) if trusted_keys is None else dict(trusted_keys)
    counters = _stored_counters(conn)
    witnesses = _stored_receipts(conn)
    verdicts = []
    for name in names:
        rows = conn.execute("SELECT seq, body FROM events WHERE session = ? ORDER BY seq", (name,))
        checker = _SessionChecker(name, keys, counters=counters.get(name))
        checker.witness(witnesses.get(name, []), collector_keys)
        verdicts.append(checker.run(rows))
    return VerifyReport(sessions=verdicts, keys_source=source)


def _stored_receipts(conn: sqlite3.Connection) -> dict[str, list[tuple[int, str, str]]]:
    """Each session's receipts as (seq, chain tip, envelope); none from an older ledger."""
    try:
        rows = conn.execute(
            "SELECT session, seq, chain_tip, envelope FROM receipts ORDER BY session, seq"
        ).fetchall()
    except sqlite3.OperationalError:
        return {}
    found: dict[str, list[tuple[int, str, str]]] = {}
    for name, seq, tip, envelope in rows:
        found.setdefault(str(name), []).append((int(seq), str(tip), str(envelope)))
    return found


def _session_names(conn: sqlite3.Connection) -> list[str]:
    names: list[str] = []
    with contextlib.suppress(sqlite3.OperationalError):  # derived table gone: events still count
        names = [row[0] for row in conn.execute("SELECT session FROM sessions ORDER BY ord")]
    seen = set(names)
    for (name,) in conn.execute("SELECT DISTINCT session FROM events ORDER BY session"):
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _stored_counters(conn: sqlite3.Connection) -> dict[str, tuple[object, object]]:
    """Each session's derived usage counters; none from a ledger older than the counters."""
    try:
        rows = conn.execute("SELECT session, tool_calls, bytes_out FROM sessions").fetchall()
    except sqlite3.OperationalError:
        return {}
    return {str(name): (tool_calls, bytes_out) for name, tool_calls, bytes_out in rows}


def _usage_of(value: object) -> tuple[int, int] | None:
    """``(tool_calls, bytes_out)`` of a well-formed ``usage`` field, else None."""
    if not isinstance(value, dict) or set(value) != {"tool_calls", "bytes_out"}:
        return None
    tool_calls, bytes_out = value["tool_calls"], value["bytes_out"]
    if type(tool_calls) is not int or type(bytes_out) is not int:
        return None
    if tool_calls < 0 or bytes_out < 0:
        return None
    return tool_calls, bytes_out


def _ledger_keys(conn: sqlite3.Connection) -> dict[str, bytes]:
    try:
        rows = conn.execute("SELECT key_id, public_raw FROM keys").fetchall()
    except sqlite3.OperationalError:
        return {}
    return {
        str(key_id): bytes(public_raw)
        for key_id, public_raw in rows
        if isinstance(public_raw, bytes)
    }


def _as_bytes(stored: object) -> bytes | None:
    if isinstance(stored, bytes):
        return stored
    if isinstance(stored, str):  # a tamperer's UPDATE with a text literal
        return stored.encode("utf-8", "surrogatepass")
    return None


@dataclass(slots=True)
class _SessionChecker:
    session: str
    keys: Mapping[str, bytes]
    counters: tuple[object, object] | None = None
    issues: list[VerifyIssue] = field(default_factory=list)
    omitted: int = 0
    first_fail_bound: int | None = None
    count: int = 0
    # the chain so far
    prev_hash: str | None = None
    prev_seq: int = -1
    prev_prev_seq: int = -1
    prev_ts: int | None = None
    expected_seq: int = 0
    # seals so far
    next_segment: int = 0
    last_seal_hash: str | None = None
    last_seal_seq: int = -1
    sealed_through: int = -1
    final_seq: int | None = None
    after_final_reported: bool = False
    # usage summed over the records
    tool_calls: int = 0
    bytes_out: int = 0
    # collector receipts: seq -> the chain tip it vouches for
    witnessed: dict[int, str] = field(default_factory=dict)
    witnessed_ok: int | None = None

    def witness(
        self, receipts: Iterable[tuple[int, str, str]], keys: Mapping[str, bytes] | None
    ) -> None:
        """Hold the chain to these receipts (seq, chain tip, envelope) as well."""
        from trackwrap.ledger._receipts import read_receipt

        for seq, tip, envelope in receipts:
            try:
                receipt = read_receipt(envelope, keys=None)
                if keys is not None and receipt.collector in keys:
                    read_receipt(envelope, keys=keys)  # the pinned collector's: check it
            except SignatureError as exc:
                self._fail("RECEIPT_INVALID", seq, f"receipt for seq {seq}: {exc}", bound=-1)
                continue
            if (receipt.session, receipt.seq, receipt.chain_tip) != (self.session, seq, tip):
                self._fail("RECEIPT_INVALID", seq, "receipt row and envelope disagree",
                           bound=-1)
                continue
            self.witnessed[seq] = tip

    def run(self, rows: Iterable[tuple[object, object]]) -> SessionVerdict:
        for row_seq, stored in rows:
            self._row(row_seq, stored)
        self._check_witnessed_tail()
        if self.count == 0:
            self._fail("NO_GENESIS", None, "session has no records", bound=-1)
        elif self.final_seq is None and self.prev_seq > self.last_seal_seq:
            self._warn(
                "UNSEALED_TAIL",
                self.last_seal_seq + 1,
                f"seq {self.last_seal_seq + 1}..{self.prev_seq} are not covered by a seal",
            )
        if self.counters is not None and self.counters != (self.tool_calls, self.bytes_out):
            self._warn(
                "COUNTER_MISMATCH",
                None,
                f"records spend tool_calls={self.tool_calls} bytes_out={self.bytes_out}; the "
                f"stored counters say tool_calls={self.counters[0]!r} "
                f"bytes_out={self.counters[1]!r}",
            )
        severities = {issue.severity for issue in self.issues}
        if self.first_fail_bound is not None:
            severities.add("fail")
        status: Status = (
            "fail" if "fail" in severities else "warn" if "warn" in severities else "pass"
        )
        return SessionVerdict(
            session=self.session,
            status=status,
            events=self.count,
            verified_through_seq=(
                self.prev_seq if self.first_fail_bound is None else self.first_fail_bound
            ),
            sealed_through_seq=self.sealed_through,
            issues=self.issues,
            chain_tip=self.prev_hash,
            issues_omitted=self.omitted,
            witnessed_through_seq=self.witnessed_ok,
        )

    def _check_witness(self, seq: int, digest: str) -> None:
        tip = self.witnessed.get(seq)
        if tip is None:
            return
        if tip != digest:
            self._fail("WITNESSED_REWRITTEN", seq, f"seq {seq} differs from what the collector "
                       "witnessed (its receipt names another hash)",
                       bound=-1 if self.witnessed_ok is None else self.witnessed_ok)
        elif self.first_fail_bound is None:
            self.witnessed_ok = seq

    def _check_witnessed_tail(self) -> None:
        beyond = [seq for seq in self.witnessed if seq > self.prev_seq]
        if beyond:
            self._fail("WITNESSED_TRUNCATED", max(beyond), f"the collector witnessed the chain "
                       f"through seq {max(beyond)}, but the ledger ends at seq {self.prev_seq}")

    # -- findings -------------------------------------------------------------------------------

    def _add(self, issue: VerifyIssue) -> None:
        if len(self.issues) < MAX_ISSUES_PER_SESSION:
            self.issues.append(issue)
        else:
            self.omitted += 1

    def _fail(self, code: str, seq: int | None, detail: str, *, bound: int | None = None) -> None:
        if self.first_fail_bound is None:
            self.first_fail_bound = self.prev_seq if bound is None else bound
        self._add(VerifyIssue(code=code, severity="fail", seq=seq, detail=detail))

    def _warn(self, code: str, seq: int | None, detail: str) -> None:
        self._add(VerifyIssue(code=code, severity="warn", seq=seq, detail=detail))

    # -- one row --------------------------------------------------------------------------------

    def _row(self, row_seq: object, stored: object) -> None:
        self.count += 1
        if isinstance(row_seq, bool) or not isinstance(row_seq, int):
            self._fail("SEQ_GAP_OR_REORDER", None, f"row seq {row_seq!r} is not an integer")
            return
        raw = _as_bytes(stored)
        if raw is None:
            self._fail("PARSE", row_seq, f"stored body is {type(stored).__name__}, not bytes")
            self._advance(row_seq, None, None)
            return
        digest = record_hash(raw)
        if self.witnessed:
            self._check_witness(row_seq, digest)
        if self.final_seq is not None and not self.after_final_reported:
            self.after_final_reported = True
            self._fail(
                "RECORD_AFTER_FINAL_SEAL",
                row_seq,
                f"record follows the final seal at seq {self.final_seq}",
            )
        if row_seq != self.expected_seq:
            self._fail(
                "SEQ_GAP_OR_REORDER",
                row_seq,
                f"expected seq {self.expected_seq}, found row seq {row_seq}",
            )
        try:
            record = parse_strict(raw)
        except RecordParseError as exc:
            self._fail("PARSE", row_seq, f"record is not strict JSON: {exc}")
            self._advance(row_seq, digest, None)
            return
        self._check_record(row_seq, raw, digest, record)
        ts = record.get("ts_ms")
        self._advance(row_seq, digest, ts if isinstance(ts, int) else None)

    def _advance(self, row_seq: int, digest: str | None, ts_ms: int | None) -> None:
        self.prev_prev_seq, self.prev_seq = self.prev_seq, row_seq
        self.prev_hash = digest
        self.expected_seq = row_seq + 1
        if ts_ms is not None:
            self.prev_ts = ts_ms

    def _check_record(self, seq: int, raw: bytes, digest: str, record: dict[str, object]) -> None:
        if not is_canonical(raw, record):
            self._fail("NON_CANONICAL", seq, "stored bytes differ from the RFC 8785 form")
        if record.get("v") != RECORD_VERSION:
            self._fail("PARSE", seq, f"unsupported record version {record.get('v')!r}")
        if record.get("session") != self.session:
            self._fail(
                "FOREIGN_SESSION", seq, f"record belongs to session {record.get('session')!r}"
            )
        if record.get("seq") != seq:
            self._fail(
                "SEQ_GAP_OR_REORDER",
                seq,
                f"row seq {seq} holds the record of seq {record.get('seq')!r}",
            )
        self._check_link(seq, record)
        ts = record.get("ts_ms")
        if isinstance(ts, bool) or not isinstance(ts, int):
            self._fail("PARSE", seq, "ts_ms is missing or not an integer")
        elif self.prev_ts is not None and ts < self.prev_ts:
            self._warn("CLOCK_ANOMALY", seq, f"ts_ms {ts} is before the previous {self.prev_ts}")
        kind = record.get("kind")
        if not isinstance(kind, str):
            self._fail("PARSE", seq, "kind is missing or not a string")
        if USAGE_FIELD in record:
            self._count_usage(seq, record[USAGE_FIELD])
        if kind == KIND_SEAL:
            self._check_seal(seq, digest, record)

    def _count_usage(self, seq: int, value: object) -> None:
        usage = _usage_of(value)
        if usage is None:
            self._warn("COUNTER_MISMATCH", seq, f"malformed {USAGE_FIELD}: {repr(value)[:200]}")
            return
        self.tool_calls += usage[0]
        self.bytes_out += usage[1]

    def _check_link(self, seq: int, record: dict[str, object]) -> None:
        kind = record.get("kind")
        prev = record.get("prev")
        if self.count == 1:
            if seq != 0 or kind != KIND_START:
                self._fail("NO_GENESIS", seq, f"first record is {kind!r} at seq {seq}")
            if prev is not None:
                self._fail("CHAIN_BREAK", seq, "genesis record has a non-null prev", bound=-1)
        elif prev != self.prev_hash:
            self._fail(
                "CHAIN_BREAK",
                seq,
                f"{self.prev_seq}\N{RIGHTWARDS ARROW}{seq}: prev does not match the hash of "
                f"seq {self.prev_seq}",
                bound=max(self.prev_prev_seq, self.sealed_through),
            )

    def _check_seal(self, seq: int, digest: str, seal: dict[str, object]) -> None:
        fails_before = self.first_fail_bound is not None or any(
            issue.severity == "fail" for issue in self.issues
        )
        ok = True
        for name, expected_type in _SEAL_FIELDS:
            value = seal.get(name)
            if (
                name not in seal
                or (isinstance(value, bool) and expected_type is int)
                or (not isinstance(value, expected_type))
            ):
                self._fail("SEAL_MISMATCH", seq, f"malformed seal: field {name!r}")
                ok = False
        if not ok:
            self._record_seal(seq, digest, seal, good=False)
            return
        if seal["seal_type"] != SEAL_TYPE:
            ok = self._seal_fail("SEAL_MISMATCH", seq, f"unknown seal_type {seal['seal_type']!r}")
        if seal["chain_tip"] != self.prev_hash:
            ok = self._seal_fail(
                "SEAL_MISMATCH", seq, f"chain_tip is not the hash of seq {self.prev_seq}"
            )
        if seal["tree_size"] != seq or seal["tree_size"] != self.count - 1:
            ok = self._seal_fail(
                "SEAL_MISMATCH",
                seq,
                f"tree_size {seal['tree_size']} but {self.count - 1} records precede the seal",
            )
        if seal["segment"] != self.next_segment:
            ok = self._seal_fail(
                "SEAL_CHAIN_BREAK", seq, f"segment {seal['segment']}, expected {self.next_segment}"
            )
        if seal["prev_seal"] != self.last_seal_hash:
            ok = self._seal_fail(
                "SEAL_CHAIN_BREAK", seq, "prev_seal is not the hash of the previous seal"
            )
        ok = self._check_seal_signature(seq, seal) and ok
        self._record_seal(seq, digest, seal, good=ok and not fails_before)

    def _check_seal_signature(self, seq: int, seal: dict[str, object]) -> bool:
        from trackwrap.crypto import key_id_for, pae, verify_ed25519

        key_id = str(seal["key_id"])
        public_raw = self.keys.get(key_id)
        if public_raw is None:
            return self._seal_fail("SEAL_KEY_INVALID", seq, f"unknown key {key_id}")
        try:
            valid_id = key_id_for(public_raw) == key_id
        except SignatureError:
            valid_id = False
        if not valid_id:
            return self._seal_fail(
                "SEAL_KEY_INVALID", seq, f"key {key_id} does not match its public key"
            )
        unsigned = {name: value for name, value in seal.items() if name != "sig"}
        try:
            signature = base64.b64decode(str(seal["sig"]), validate=True)
            verify_ed25519(public_raw, signature, pae(SEAL_PAYLOAD_TYPE, jcs(unsigned)))
        except (binascii.Error, ValueError, SignatureError):
            return self._seal_fail(
                "SEAL_BAD_SIGNATURE", seq, f"signature by {key_id} does not verify"
            )
        return True

    def _seal_fail(self, code: str, seq: int, detail: str) -> bool:
        self._fail(code, seq, detail)
        return False

    def _record_seal(self, seq: int, digest: str, seal: dict[str, object], *, good: bool) -> None:
        if good:
            self.sealed_through = seq
        segment = seal.get("segment")
        self.next_segment = (
            segment + 1
            if isinstance(segment, int) and not isinstance(segment, bool)
            else self.next_segment + 1
        )
        self.last_seal_hash = digest
        self.last_seal_seq = seq
        if seal.get("final") is True:
            self.final_seq = seq
