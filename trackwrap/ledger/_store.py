"""The local audit ledger: one SQLite file per user, one hash chain per session.

Every append is one ``BEGIN IMMEDIATE`` transaction, so any number of wrapper *processes* can
append to the same session and the chain stays linear; the call returns only after ``COMMIT``
(WAL, ``synchronous=FULL``). Every ``sqlite3`` error becomes a :class:`LedgerError` here, which
the relay turns into a deny (fail closed).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trackwrap.errors import Error, LedgerError, LedgerIntegrityError
from trackwrap.ledger._approvals import COLUMNS as _APPROVAL_COLUMNS
from trackwrap.ledger._approvals import SETTABLE as _APPROVAL_SETTABLE
from trackwrap.ledger._approvals import ApprovalRecord
from trackwrap.ledger._pins import Pin, PinReview
from trackwrap.ledger._records import (
    KIND_END,
    KIND_SEAL,
    KIND_START,
    RECORD_VERSION,
    RESERVED_FIELDS,
    SEAL_PAYLOAD_TYPE,
    SEAL_TYPE,
    USAGE_FIELD,
    canonical,
    check_values,
    record_hash,
)
from trackwrap.ledger._schema import migrate
from trackwrap.ledger._sessions import SessionKind, SessionState, Usage

if TYPE_CHECKING:
    from trackwrap.crypto import SigningKey
    from trackwrap.ledger._receipts import Receipt
    from trackwrap.ledger._segments import Segment

__all__ = ["Appended", "Ledger", "SessionSummary", "StoredEvent"]

BUSY_TIMEOUT_S = 10.0
_NO_LIMIT = -1


@dataclass(frozen=True, slots=True)
class Appended:
    """A committed record: its ``seq`` and its hash (what the next record's ``prev`` holds)."""

    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One stored record, parsed (``body``) and as stored (``raw``)."""

    session: str
    seq: int
    body: dict[str, object]
    raw: bytes


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One session as the ledger's derived state sees it (not verified)."""

    session: str
    first_ts_ms: int
    last_ts_ms: int
    events: int
    closed: bool
    tip_seq: int


@dataclass(slots=True)
class _Tip:
    """A session's row in ``sessions``: the derived state appends work from."""

    ord: int | None
    first_ts_ms: int
    last_ts_ms: int
    seq: int
    hash: str
    unsealed_from: int
    unsealed_since_ms: int | None
    next_segment: int
    last_seal_seq: int | None
    last_seal_hash: str | None
    closed: bool

    @property
    def unsealed(self) -> int:
        return self.seq - self.unsealed_from + 1


_TIP_COLUMNS = (
    "ord, first_ts_ms, last_ts_ms, tip_seq, tip_hash, unsealed_from, unsealed_since_ms, "
    "next_segment, last_seal_seq, last_seal_hash, closed"
)


_STATE_QUERY = """
    SELECT s.session, s.workspace, s.kind, s.role, s.manifest_digest,
        coalesce(s.started_ms, s.first_ts_ms), s.closed, s.close_reason, s.tool_calls,
        s.bytes_out, s.tip_seq, e.body
    FROM sessions AS s LEFT JOIN events AS e ON e.session = s.session AND e.seq = 0
"""
# Genesis fields start_session() records the session's binding under.
_BINDING_FIELDS = ("workspace", "session_kind", "role", "manifest_digest")


@dataclass(frozen=True, slots=True)
class _Binding:
    """What a session is for: the metadata columns of its ``sessions`` row."""

    workspace: str | None
    kind: SessionKind
    role: str | None
    manifest_digest: str | None


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _state_from_row(row: tuple[object, ...]) -> SessionState:
    (session, workspace, kind, role, digest, started, closed, reason, calls, out, tip, raw) = row
    name = str(session)
    if raw is None:
        raise LedgerIntegrityError(
            f"session {name} has a state row but no genesis record; run `trackwrap audit verify`",
            seq=0,
        )
    try:
        data = raw if isinstance(raw, bytes) else str(raw).encode("utf-8")
        genesis = json.loads(data)
    except (UnicodeError, json.JSONDecodeError) as exc:
        raise LedgerIntegrityError(
            f"session {name} seq 0: stored genesis is not JSON", seq=0
        ) from exc
    if not isinstance(genesis, dict):
        raise LedgerIntegrityError(
            f"session {name} seq 0: stored genesis is not a JSON object", seq=0
        )
    try:
        session_kind = SessionKind(str(kind))
    except ValueError as exc:
        raise LedgerIntegrityError(
            f"session {name}: unknown session kind {kind!r} in the ledger", seq=None
        ) from exc
    return SessionState(
        session=name,
        workspace=_optional_str(workspace),
        kind=session_kind,
        role=_optional_str(role),
        manifest_digest=_optional_str(digest),
        started_ms=_stored_int(started, session=name),
        closed=bool(closed),
        close_reason=_optional_str(reason),
        tool_calls=_stored_int(calls, session=name),
        bytes_out=_stored_int(out, session=name),
        events=_stored_int(tip, session=name) + 1,
        genesis=genesis,
    )


def _stored_int(value: object, *, session: str) -> int:
    if type(value) is not int:
        raise LedgerIntegrityError(
            f"session {session}: state row holds {value!r} where an integer belongs", seq=None
        )
    return value


def _check_usage(usage: Usage) -> dict[str, object]:
    for name, value in (("tool_calls", usage.tool_calls), ("bytes_out", usage.bytes_out)):
        if type(value) is not int or value < 0:
            raise LedgerError(f"usage {name} must be a non-negative int, not {value!r}")
    return {"tool_calls": usage.tool_calls, "bytes_out": usage.bytes_out}


def _check_optional_str(value: object, *, what: str) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise LedgerError(f"{what} must be a non-empty string or None, not {value!r}")


_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("SQLITE_BUSY", "SQLITE_LOCKED"),
        f"it stayed locked by another process for more than {BUSY_TIMEOUT_S:g} s",
    ),
    (("SQLITE_READONLY",), "it is read-only; check the permissions of the file and its directory"),
    (("SQLITE_FULL",), "the disk is full"),
    (
        ("SQLITE_CORRUPT", "SQLITE_NOTADB"),
        "it is corrupt or not a trackwrap ledger; move it aside and run `trackwrap audit verify`",
    ),
    (("SQLITE_CANTOPEN",), "it cannot be opened; check that its directory exists and is writable"),
    (("SQLITE_IOERR",), "an I/O error occurred"),
)


def _reason(exc: sqlite3.Error) -> str:
    name = str(getattr(exc, "sqlite_errorname", ""))
    for prefixes, reason in _REASONS:
        if name.startswith(prefixes):
            return reason
    return "SQLite failed"


def translate_sqlite_error(exc: sqlite3.Error, *, path: Path, doing: str) -> LedgerError:
    """The :class:`LedgerError` for a ``sqlite3`` error at this seam."""
    return LedgerError(f"audit ledger {path}: cannot {doing}: {_reason(exc)} ({exc})")


def _check_writable(path: Path) -> None:
    directory = path.parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise LedgerError(f"audit ledger {path}: cannot create its directory: {exc}") from exc
    if not directory.is_dir():
        raise LedgerError(f"audit ledger {path}: {directory} is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise LedgerError(
            f"audit ledger {path}: directory {directory} is not writable; "
            "fix its permissions or point TRACKWRAP_HOME elsewhere"
        )
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise LedgerError(
                f"audit ledger {path}: the file is not readable and writable; fix its permissions"
            )
        return
    try:  # create it private (0600); SQLite gives -wal and -shm the same mode
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise LedgerError(f"audit ledger {path}: cannot create the file: {exc}") from exc
    os.close(fd)


def _validate_body(body: Mapping[str, object], *, what: str) -> dict[str, object]:
    fields = dict(body)
    reserved = sorted(RESERVED_FIELDS.intersection(fields))
    if reserved:
        raise LedgerError(f"{what} must not set {', '.join(reserved)}: the ledger sets them")
    kind = fields.get("kind")
    if not isinstance(kind, str) or not kind:
        raise LedgerError(f"{what} needs a non-empty string 'kind'")
    check_values(fields)  # floats etc. fail before any transaction; the rest rolls back
    return fields


def _validate_session(session: object) -> None:
    if not isinstance(session, str) or not session:
        raise LedgerError("a session id must be a non-empty string")


class Ledger:
    """A handle on the audit ledger file; safe to share between threads of one process.

    Records per session are chained (``prev``) and contiguous (``seq`` from 0); every
    ``seal_every`` unsealed records, or when asked, a signed ``segment.seal`` record closes a
    segment. A final seal closes the session.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        path: Path,
        signer: Callable[[], SigningKey],
        clock_ms: Callable[[], int],
        seal_every: int,
    ) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._signer = signer
        self._clock_ms = clock_ms
        self._seal_every = seal_every
        self._key: SigningKey | None = None
        self._mutex = threading.RLock()
        self._unflushed = False

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        signer: Callable[[], SigningKey],
        clock_ms: Callable[[], int],
        seal_every: int = 1000,
    ) -> Ledger:
        """Open (creating and migrating if needed) the ledger at ``path``.

        Raises:
            LedgerError: the directory or file is not writable, the file is corrupt or newer, or
                SQLite fails.
        """
        if seal_every < 1:
            raise LedgerError(f"seal_every must be a positive integer, not {seal_every!r}")
        _check_writable(path)
        try:
            conn = sqlite3.connect(
                path,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, path=path, doing="open") from exc
        ledger = cls(conn, path=path, signer=signer, clock_ms=clock_ms, seal_every=seal_every)
        try:
            ledger._configure(conn)
            with ledger._write("migrate its schema") as txn:
                migrate(txn, now_ms=ledger._now())
        except BaseException:
            ledger.close()
            raise
        return ledger

    def _configure(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000):d}")
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            conn.execute("PRAGMA synchronous = FULL")
            if sys.platform == "darwin":  # macOS fsync does not flush the drive cache
                conn.execute("PRAGMA fullfsync = ON")
                conn.execute("PRAGMA checkpoint_fullfsync = ON")
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, path=self._path, doing="open") from exc
        if str(mode).lower() != "wal":
            raise LedgerError(
                f"audit ledger {self._path}: cannot switch to WAL mode (got {mode!r}); "
                "keep TRACKWRAP_HOME on a local file system"
            )

    # -- public API -----------------------------------------------------------------------------

    def ensure_session(self, session: str, *, genesis: Mapping[str, object]) -> bool:
        """Append the ``session.start`` genesis if ``session`` has no records; True if it did.

        ``genesis["kind"]`` is forced to ``session.start``. The session is ``implicit``; its
        ``workspace``, ``role`` and ``manifest_digest`` are taken from the genesis fields of those
        names when they are strings. Race-safe across processes: exactly one caller creates the
        session.
        """
        _validate_session(session)
        fields = _validate_body({**genesis, "kind": KIND_START}, what="a genesis record")
        binding = _Binding(
            workspace=_optional_str(fields.get("workspace")),
            kind=SessionKind.IMPLICIT,
            role=_optional_str(fields.get("role")),
            manifest_digest=_optional_str(fields.get("manifest_digest")),
        )
        with self._write("start a session") as txn:
            if self._tip(txn, session) is not None:
                return False
            self._start_locked(txn, session, fields, binding)
            return True

    def start_session(
        self,
        session: str,
        *,
        genesis: Mapping[str, object],
        workspace: str | None,
        kind: str,
        role: str | None,
        manifest_digest: str | None,
    ) -> int:
        """Start ``session`` with a ``session.start`` genesis; return its seq (0).

        The genesis holds the fields of ``genesis`` (``kind`` forced to ``session.start``) plus
        ``workspace``, ``session_kind``, ``role`` and ``manifest_digest``, which ``genesis`` may
        repeat but not contradict. ``workspace`` is compared verbatim by :meth:`active_session`:
        pass the same normalized (resolved) path everywhere.

        Raises:
            LedgerError: the session already exists, an unknown ``kind``, bad fields, or SQLite
                failure (nothing is written).
        """
        _validate_session(session)
        try:
            session_kind = SessionKind(kind)
        except ValueError as exc:
            known = ", ".join(member.value for member in SessionKind)
            raise LedgerError(f"unknown session kind {kind!r}; use one of: {known}") from exc
        _check_optional_str(workspace, what="workspace")
        _check_optional_str(role, what="role")
        _check_optional_str(manifest_digest, what="manifest_digest")
        recorded: dict[str, object] = {
            "workspace": workspace,
            "session_kind": session_kind.value,
            "role": role,
            "manifest_digest": manifest_digest,
        }
        for name in _BINDING_FIELDS:
            if name in genesis and genesis[name] != recorded[name]:
                raise LedgerError(
                    f"genesis field {name!r} is {genesis[name]!r} but the session's {name} is "
                    f"{recorded[name]!r}"
                )
        fields = _validate_body(
            {**genesis, **recorded, "kind": KIND_START}, what="a genesis record"
        )
        binding = _Binding(
            workspace=workspace, kind=session_kind, role=role, manifest_digest=manifest_digest
        )
        with self._write("start a session") as txn:
            if self._tip(txn, session) is not None:
                raise LedgerError(f"audit ledger {self._path}: session {session} already exists")
            return self._start_locked(txn, session, fields, binding).seq

    def active_session(self, workspace: str) -> str | None:
        """The newest explicit, open session bound to exactly ``workspace``, else None.

        One indexed lookup (``sessions_active``); wrappers call it before every ``tools/call``.
        """
        with self._read("find the active session") as conn:
            row = conn.execute(
                "SELECT session FROM sessions "
                "WHERE workspace = ? AND kind = 'explicit' AND closed = 0 "
                "ORDER BY ord DESC LIMIT 1",
                (workspace,),
            ).fetchone()
        return None if row is None else str(row[0])

    def session_state(self, session: str) -> SessionState:
        """The derived state of ``session`` with its parsed genesis.

        Raises:
            LedgerError: no such session.
            LedgerIntegrityError: its state row or genesis is damaged.
        """
        _validate_session(session)
        with self._read("read session state") as conn:
            state = self._state(conn, session)
        if state is None:
            raise LedgerError(f"audit ledger {self._path}: no session {session}")
        return state

    def review_tools(
        self,
        server: str,
        tools: Mapping[str, tuple[str, str]],
        *,
        first_use: bool,
        suspicious: frozenset[str] = frozenset(),
    ) -> PinReview:
        """Hold one ``tools/list`` page (name -> (digest, canonical JSON)) against the pins.

        With ``first_use`` (the server's first listing; the caller keeps the window open across
        the pages of that listing) every tool is pinned as offered, except the ``suspicious``
        ones. Afterwards, a tool offered exactly as pinned is approved; a new tool, or one whose
        digest changed, is stored as pending and left out.
        """
        now = self._now()
        with self._write("review tools") as txn:
            known = {
                row[0]: (row[1], row[2])
                for row in txn.execute(
                    "SELECT tool, digest, pending_digest FROM pins WHERE server = ?", (server,)
                )
            }
            approved: set[str] = set()
            new: list[str] = []
            changed: list[str] = []
            for tool, (digest, body) in sorted(tools.items()):
                pinned = known.get(tool)
                if first_use and pinned is None and tool not in suspicious:
                    txn.execute(
                        "INSERT INTO pins VALUES (?, ?, ?, NULL, ?, ?, ?, ?)",
                        (server, tool, digest, body, now, now, body),
                    )
                    approved.add(tool)
                elif pinned is not None and pinned[0] == digest:
                    approved.add(tool)
                elif pinned is None:
                    txn.execute(
                        "INSERT INTO pins VALUES (?, ?, NULL, ?, ?, ?, ?, NULL)",
                        (server, tool, digest, body, now, now),
                    )
                    new.append(tool)
                else:
                    if pinned[1] != digest:
                        txn.execute(
                            "UPDATE pins SET pending_digest = ?, tool_json = ?, updated_ms = ? "
                            "WHERE server = ? AND tool = ?",
                            (digest, body, now, server, tool),
                        )
                    (new if pinned[0] is None else changed).append(tool)
        return PinReview(
            approved=frozenset(approved), new=tuple(new), changed=tuple(changed),
            first_use=first_use,
        )

    def pins(self, server: str | None = None) -> list[Pin]:
        """The pins of ``server`` (all servers when None), by server and tool."""
        with self._read("read pins") as conn:
            if server:
                rows = conn.execute(
                    "SELECT * FROM pins WHERE server = ? ORDER BY tool", (server,)
                )
            else:
                rows = conn.execute("SELECT * FROM pins ORDER BY server, tool")
            return [Pin(*row) for row in rows.fetchall()]

    def approve_pins(self, server: str, tool: str | None = None) -> list[str]:
        """Accept the pending versions of ``server``'s tools (one tool, or all); returns them."""
        where = "server = ? AND pending_digest IS NOT NULL" + (" AND tool = ?" if tool else "")
        args: tuple[str, ...] = (server, tool) if tool else (server,)
        with self._write("approve pins") as txn:
            names = [row[0] for row in txn.execute(f"SELECT tool FROM pins WHERE {where}", args)]  # noqa: S608
            txn.execute(
                f"UPDATE pins SET digest = pending_digest, pending_digest = NULL, "  # noqa: S608
                f"approved_json = tool_json, updated_ms = ? WHERE {where}",
                (self._now(), *args),
            )
        return names

    def revoke_pins(self, server: str, tool: str | None = None) -> int:
        """Forget pins (one tool, or the whole server: its next listing is pinned afresh)."""
        where = "server = ?" + (" AND tool = ?" if tool else "")
        with self._write("revoke pins") as txn:
            cursor = txn.execute(f"DELETE FROM pins WHERE {where}",  # noqa: S608
                                 (server, tool) if tool else (server,))
            return cursor.rowcount

    # -- approvals ------------------------------------------------------------------------------

    def request_approval(
        self, record: ApprovalRecord, event: Mapping[str, object], *, sync: bool = True
    ) -> tuple[ApprovalRecord, bool]:
        """Store ``record`` (a new pending approval) and append ``event`` (its
        ``approval.requested`` record) to its session, in one transaction.

        If an open approval for the same session and action hash exists by then (another
        wrapper asked first), nothing is written and that one is returned with ``False``.

        Raises:
            LedgerError: unknown or closed session, bad event, SQLite failure.
        """
        _validate_session(record.session)
        fields = _validate_body(event, what="an approval record")
        with self._write("request an approval", sync=sync) as txn:
            existing = self._open_approval(txn, record.session, record.action_hash)
            if existing is not None:
                return existing, False
            tip = self._open_tip(txn, record.session)
            txn.execute(
                f"INSERT INTO approvals ({_APPROVAL_COLUMNS}) "  # noqa: S608 constant columns
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                record.row(),
            )
            self._append_locked(txn, record.session, tip, fields)
            return record, True

    def open_approval(self, session: str, action_hash: str) -> ApprovalRecord | None:
        """The newest approval of this exact call in ``session`` that still has something to
        say (see :meth:`ApprovalRecord.is_open`), if any."""
        with self._read("read approvals") as conn:
            return self._open_approval(conn, session, action_hash)

    def approval(self, approval_id: str) -> ApprovalRecord | None:
        """One approval by id."""
        with self._read("read approvals") as conn:
            row = conn.execute(
                f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE id = ?",  # noqa: S608
                (approval_id,),
            ).fetchone()
        return None if row is None else ApprovalRecord.from_row(row)

    def approvals(
        self, *, states: tuple[str, ...] | None = None, session: str | None = None
    ) -> list[ApprovalRecord]:
        """Approvals, newest first, optionally only in ``states`` or of one ``session``."""
        where: list[str] = ["1 = 1"]
        args: list[object] = []
        if states is not None:
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            args.extend(states)
        if session is not None:
            where.append("session = ?")
            args.append(session)
        with self._read("read approvals") as conn:
            rows = conn.execute(
                f"SELECT {_APPROVAL_COLUMNS} FROM approvals "  # noqa: S608 constant columns
                f"WHERE {' AND '.join(where)} ORDER BY requested_ms DESC, rowid DESC",
                args,
            ).fetchall()
        return [ApprovalRecord.from_row(row) for row in rows]

    def transition_approval(
        self,
        approval_id: str,
        *,
        expect: str,
        state: str,
        event: Mapping[str, object] | None,
        unexpired: bool = False,
        open_session: bool = False,
        sync: bool = True,
        columns: Mapping[str, object] | None = None,
    ) -> ApprovalRecord | None:
        """Compare-and-set: move an approval from ``expect`` to ``state`` (setting ``columns``)
        and append ``event`` to its session, in one transaction. Returns the updated record, or
        None if it was not in ``expect`` any more (someone else won) — or, with ``unexpired``,
        if its time is up. ``event`` is skipped when the session has been closed meanwhile
        (an approval can still expire after its session ended) — unless ``open_session``: then
        a closed session is an error and nothing changes.

        Raises:
            LedgerError: unknown columns, bad event, SQLite failure, or (``open_session``) the
                approval's session is closed.
        """
        columns = {} if columns is None else dict(columns)
        unknown = sorted(set(columns) - _APPROVAL_SETTABLE)
        if unknown:
            raise LedgerError(f"approvals have no settable column {', '.join(unknown)}")
        fields = None if event is None else _validate_body(event, what="an approval record")
        sets = ", ".join(["state = ?", *(f"{name} = ?" for name in columns)])
        guard = " AND expires_ms > ?" if unexpired else ""
        with self._write("update an approval", sync=sync) as txn:
            now = self._now()
            cursor = txn.execute(
                f"UPDATE approvals SET {sets} WHERE id = ? AND state = ?{guard}",  # noqa: S608
                (state, *columns.values(), approval_id, expect, *((now,) if unexpired else ())),
            )
            if cursor.rowcount != 1:
                return None
            row = txn.execute(
                f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE id = ?",  # noqa: S608
                (approval_id,),
            ).fetchone()
            record = ApprovalRecord.from_row(row)
            tip = self._tip(txn, record.session)
            if open_session and (tip is None or tip.closed):
                raise LedgerError(f"session {record.session} is closed; no call can use "
                                  f"approval {approval_id} any more")
            if fields is not None and tip is not None and not tip.closed:
                self._append_locked(txn, record.session, tip, fields)
            return record

    @staticmethod
    def _open_approval(
        conn: sqlite3.Connection, session: str, action_hash: str
    ) -> ApprovalRecord | None:
        row = conn.execute(
            f"SELECT {_APPROVAL_COLUMNS} FROM approvals "  # noqa: S608 constant columns
            "WHERE session = ? AND action_hash = ? AND (state IN ('pending', 'approved') "
            "OR (state IN ('denied', 'expired') AND reported = 0)) "
            "ORDER BY requested_ms DESC, rowid DESC LIMIT 1",
            (session, action_hash),
        ).fetchone()
        return None if row is None else ApprovalRecord.from_row(row)

    def list_sessions(self) -> list[SessionState]:
        """Every session, newest first (from derived state; ``verify`` checks the truth).

        Raises:
            LedgerIntegrityError: a state row or genesis is damaged.
        """
        with self._read("list sessions") as conn:
            rows = conn.execute(_STATE_QUERY + " ORDER BY s.ord DESC").fetchall()
        return [_state_from_row(row) for row in rows]

    def append_decision(
        self,
        session: str,
        build: Callable[[SessionState, int], tuple[Mapping[str, object], Usage]],
        *,
        sync: bool = True,
    ) -> Appended:
        """Decide and record one call in a single ``BEGIN IMMEDIATE`` transaction.

        ``build(state, seq)`` gets the session's current state (counters included) and the seq
        the record will get, and returns the record body and the :class:`Usage` it spends
        (``Usage()`` for a call that is not forwarded). The ledger stores the usage in the
        record as ``usage`` and adds it to the session's counters, then commits. Writers in other
        processes wait for the transaction, so a budget check made in ``build`` is exact: of
        several processes racing for the last unit, exactly one sees room left. Keep ``build``
        quick and free of I/O: every writer of the ledger waits for it.

        Raises:
            LedgerError: unknown or closed session, a bad body or usage, SQLite or key failure;
                nothing is written.
            Exception: whatever ``build`` raises, unchanged; nothing is written.
        """
        _validate_session(session)
        with self._write("append a decision", sync=sync) as txn:
            tip = self._open_tip(txn, session)
            state = self._state(txn, session)
            if state is None:  # the row was there a statement ago, in this transaction
                raise LedgerError(f"audit ledger {self._path}: no session {session}")
            body, usage = build(state, tip.seq + 1)
            if USAGE_FIELD in body:
                raise LedgerError(f"a decision must not set {USAGE_FIELD!r}: the ledger does")
            fields = _validate_body(body, what="a decision record")
            if fields["kind"] in {KIND_START, KIND_SEAL, KIND_END}:
                raise LedgerError(f"kind {fields['kind']!r} is written by the ledger itself")
            fields[USAGE_FIELD] = _check_usage(usage)
            appended = self._append_locked(txn, session, tip, fields)
            if usage.tool_calls or usage.bytes_out:
                txn.execute(
                    "UPDATE sessions SET tool_calls = tool_calls + ?, bytes_out = bytes_out + ? "
                    "WHERE session = ?",
                    (usage.tool_calls, usage.bytes_out, session),
                )
            return appended

    def close_session(
        self, session: str, *, reason: str, extra: Mapping[str, object] | None = None
    ) -> int:
        """End ``session``: a ``session.end`` record ``{reason, **extra}`` and a final seal, in
        one transaction; return the seal's seq.

        Raises:
            LedgerError: unknown or already closed session, bad fields, SQLite or key failure.
        """
        _validate_session(session)
        if not reason:
            raise LedgerError("a session's close reason must be a non-empty string")
        extra = {} if extra is None else dict(extra)
        clashing = sorted({"kind", "reason", USAGE_FIELD}.intersection(extra))
        if clashing:
            raise LedgerError(f"extra fields of session.end must not set {', '.join(clashing)}")
        fields = _validate_body(
            {**extra, "kind": KIND_END, "reason": reason}, what="a session.end record"
        )
        with self._write("close a session") as txn:
            tip = self._tip(txn, session)
            if tip is None:
                raise LedgerError(f"audit ledger {self._path}: no session {session}")
            if tip.closed:
                raise LedgerError(f"session {session} is already closed")
            self._append_locked(txn, session, tip, fields)  # advances ``tip`` in place
            seal = self._seal_locked(txn, session, tip, final=True)
            txn.execute("UPDATE sessions SET close_reason = ? WHERE session = ?", (reason, session))
            return seal.seq

    def append(self, session: str, body: Mapping[str, object], *, sync: bool = True) -> Appended:
        """Append one record to ``session``; return after it is committed.

        ``body`` supplies ``kind`` and the event's fields (str/int/bool/None/list/dict only); the
        ledger adds ``v``, ``session``, ``seq``, ``prev`` and ``ts_ms``. ``session.start`` and
        ``segment.seal`` are written by :meth:`ensure_session` and the seal methods only,
        ``usage`` by :meth:`append_decision` only; end a session with :meth:`close_session`. When
        ``seal_every`` records are unsealed, a seal is appended in the same transaction.

        ``sync=False`` commits without waiting for the disk (see :meth:`flush`).

        Raises:
            LedgerError: bad body (nothing is written), unknown or closed session, SQLite failure,
                or the signing key cannot be loaded for a due seal.
        """
        _validate_session(session)
        fields = _validate_body(body, what="a ledger record")
        if fields["kind"] in {KIND_START, KIND_SEAL}:
            raise LedgerError(f"kind {fields['kind']!r} is written by the ledger itself")
        if USAGE_FIELD in fields:
            raise LedgerError(f"{USAGE_FIELD!r} is written by append_decision only")
        with self._write("append a record", sync=sync) as txn:
            tip = self._open_tip(txn, session)
            return self._append_locked(txn, session, tip, fields)

    def flush(self) -> None:
        """Make records appended with ``sync=False`` durable against power loss (fsync the WAL).

        Used after a deny has been answered: the deny's record was committed (safe against a
        crash of the process) before the answer, and reaches the disk right after it."""
        with self._mutex:
            if not self._unflushed:
                return
            self._unflushed = False
        # Outside the mutex: appends go on while the disk catches up (safe from any thread).
        wal = self._path.with_name(self._path.name + "-wal")
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:
            return  # checkpointed and removed: already on disk
        except OSError as exc:
            raise LedgerError(f"audit ledger {wal}: cannot flush: {exc.strerror}") from exc
        try:
            os.fsync(fd)
        except OSError as exc:
            raise LedgerError(f"audit ledger {wal}: cannot flush: {exc.strerror}") from exc
        finally:
            os.close(fd)

    def seal(self, session: str, *, final: bool = False) -> int | None:
        """Seal the unsealed tail; return the seal's seq, or None if there was nothing to seal.

        ``final=True`` always writes a seal (with ``final: true``) and closes the session.

        Raises:
            LedgerError: unknown session, a final seal on a closed session, SQLite or key failure.
        """
        _validate_session(session)
        with self._write("seal a segment") as txn:
            tip = self._tip(txn, session)
            if tip is None:
                raise LedgerError(f"audit ledger {self._path}: no session {session}")
            if tip.closed:
                if final:
                    raise LedgerError(f"session {session} is already closed by a final seal")
                return None
            if tip.unsealed == 0 and not final:
                return None
            return self._seal_locked(txn, session, tip, final=final).seq

    def seal_if_older(self, session: str, *, max_age_ms: int) -> int | None:
        """Seal if there are unsealed records and the oldest is at least ``max_age_ms`` old."""
        _validate_session(session)
        with self._read("read session state") as conn:
            tip = self._tip(conn, session)
        if tip is None:
            raise LedgerError(f"audit ledger {self._path}: no session {session}")
        if not self._seal_due(tip, max_age_ms=max_age_ms):
            return None
        with self._write("seal a segment") as txn:
            tip = self._tip(txn, session)
            if tip is None or not self._seal_due(tip, max_age_ms=max_age_ms):
                return None
            return self._seal_locked(txn, session, tip, final=False).seq

    def session_ids(self) -> list[SessionSummary]:
        """Every session in first-seen order (from derived state; ``verify`` checks the truth)."""
        with self._read("list sessions") as conn:
            rows = conn.execute(
                "SELECT session, first_ts_ms, last_ts_ms, tip_seq, closed "
                "FROM sessions ORDER BY ord"
            ).fetchall()
        return [
            SessionSummary(
                session=session,
                first_ts_ms=first,
                last_ts_ms=last,
                events=tip_seq + 1,
                closed=bool(closed),
                tip_seq=tip_seq,
            )
            for session, first, last, tip_seq, closed in rows
        ]

    def events(
        self, session: str | None = None, *, after_seq: int = -1, limit: int | None = None
    ) -> list[StoredEvent]:
        """Records with ``seq > after_seq`` (per session), ordered by session first-seen, then seq.

        Raises:
            LedgerIntegrityError: a stored body is not a JSON object.
        """
        with self._read("read records") as conn:
            rows = conn.execute(
                """
                SELECT e.session, e.seq, e.body
                FROM events AS e LEFT JOIN sessions AS s ON s.session = e.session
                WHERE (?1 IS NULL OR e.session = ?1) AND e.seq > ?2
                ORDER BY coalesce(s.ord, 9223372036854775807), e.session, e.seq
                LIMIT ?3
                """,
                (session, after_seq, _NO_LIMIT if limit is None else limit),
            ).fetchall()
        result = []
        for name, seq, stored in rows:
            raw = bytes(stored) if isinstance(stored, bytes) else str(stored).encode("utf-8")
            try:
                body = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise LedgerIntegrityError(
                    f"session {name} seq {seq}: stored record is not JSON", seq=seq
                ) from exc
            if not isinstance(body, dict):
                raise LedgerIntegrityError(
                    f"session {name} seq {seq}: stored record is not a JSON object", seq=seq
                )
            result.append(StoredEvent(session=name, seq=seq, body=body, raw=raw))
        return result

    def segments(self, session: str, *, after_seq: int = -1) -> list[Segment]:
        """The sealed segments of ``session`` whose records come after ``after_seq``."""
        from trackwrap.ledger._segments import split_segments  # it builds on the verifier

        with self._read("read segments") as conn:
            rows = conn.execute(
                "SELECT seq, body FROM events WHERE session = ? AND seq > ? ORDER BY seq",
                (session, after_seq),
            ).fetchall()
        return split_segments(session, [
            (seq, bytes(body) if isinstance(body, bytes) else str(body).encode("utf-8"))
            for seq, body in rows
        ], after_seq=after_seq)

    def store_receipt(self, receipt: Receipt) -> None:
        """Keep a collector's receipt for one segment (a later identical one is a no-op).

        Raises:
            LedgerError: the receipt does not match this ledger's record at its seq (the
                collector holds something else), or SQLite fails.
        """
        with self._write("store a receipt") as txn:
            row = txn.execute("SELECT body FROM events WHERE session = ? AND seq = ?",
                              (receipt.session, receipt.seq)).fetchone()
            body = None if row is None else row[0]
            raw = bytes(body) if isinstance(body, bytes) else str(body).encode("utf-8")
            if body is None or record_hash(raw) != receipt.chain_tip:
                raise LedgerError(
                    f"receipt for {receipt.session} seq {receipt.seq} names a chain tip this "
                    "ledger does not have there"
                )
            txn.execute(
                "INSERT OR IGNORE INTO receipts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (receipt.session, receipt.segment, receipt.seq, receipt.chain_tip,
                 receipt.segment_hash, receipt.collector, receipt.envelope,
                 receipt.received_at_ms),
            )

    def witnessed_through(self, session: str) -> int:
        """The last seq of ``session`` a stored receipt vouches for (-1: none)."""
        with self._read("read receipts") as conn:
            (seq,) = conn.execute("SELECT max(seq) FROM receipts WHERE session = ?",
                                  (session,)).fetchone()
        return -1 if seq is None else int(seq)

    def receipts(self, session: str | None = None) -> list[Receipt]:
        """Stored receipts (of one session, or all), by session and seq."""
        from trackwrap.ledger._receipts import read_receipt

        with self._read("read receipts") as conn:
            rows = conn.execute(
                "SELECT envelope FROM receipts WHERE ?1 IS NULL OR session = ?1 "
                "ORDER BY session, seq", (session,),
            ).fetchall()
        return [read_receipt(str(envelope), keys=None) for (envelope,) in rows]

    def close(self) -> None:
        """Close the database handle (after a :meth:`flush`); idempotent."""
        with contextlib.suppress(LedgerError):
            self.flush()
        with self._mutex:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transactions ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _read(self, doing: str) -> Iterator[sqlite3.Connection]:
        with self._mutex:
            conn = self._live()
            try:
                yield conn
            except sqlite3.Error as exc:
                raise translate_sqlite_error(exc, path=self._path, doing=doing) from exc

    @contextlib.contextmanager
    def _write(self, doing: str, *, sync: bool = True) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction; rolled back on any exception (cancellation too).

        ``sync=False`` commits with ``synchronous=NORMAL``: the record survives a crash of the
        process at once, and power loss after the next :meth:`flush` (or any synced commit)."""
        with self._mutex:
            conn = self._live()
            try:
                if not sync:
                    conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise translate_sqlite_error(exc, path=self._path, doing=doing) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise translate_sqlite_error(exc, path=self._path, doing=doing) from exc
                raise
            finally:
                if not sync:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("PRAGMA synchronous = FULL")
                        self._unflushed = True

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerError(f"audit ledger {self._path} is closed")
        return self._conn

    # -- inside a transaction -------------------------------------------------------------------

    def _now(self) -> int:
        now = self._clock_ms()
        if type(now) is not int:
            raise LedgerError(f"clock_ms() must return an int, not {type(now).__name__}")
        return now

    @staticmethod
    def _tip(conn: sqlite3.Connection, session: str) -> _Tip | None:
        row = conn.execute(
            f"SELECT {_TIP_COLUMNS} FROM sessions WHERE session = ?",  # noqa: S608 constant columns
            (session,),
        ).fetchone()
        if row is None:
            return None
        return _Tip(
            ord=row[0],
            first_ts_ms=row[1],
            last_ts_ms=row[2],
            seq=row[3],
            hash=row[4],
            unsealed_from=row[5],
            unsealed_since_ms=row[6],
            next_segment=row[7],
            last_seal_seq=row[8],
            last_seal_hash=row[9],
            closed=bool(row[10]),
        )

    @staticmethod
    def _state(conn: sqlite3.Connection, session: str) -> SessionState | None:
        row = conn.execute(_STATE_QUERY + " WHERE s.session = ?", (session,)).fetchone()
        return None if row is None else _state_from_row(row)

    def _start_locked(
        self,
        conn: sqlite3.Connection,
        session: str,
        fields: dict[str, object],
        binding: _Binding,
    ) -> Appended:
        if conn.execute("SELECT 1 FROM events WHERE session = ? LIMIT 1", (session,)).fetchone():
            raise LedgerIntegrityError(
                f"audit ledger {self._path}: session {session} has records but no state row; "
                "run `trackwrap audit verify`",
                seq=None,
            )
        appended = self._append_locked(conn, session, None, fields)
        conn.execute(
            "UPDATE sessions SET workspace = ?, kind = ?, role = ?, manifest_digest = ? "
            "WHERE session = ?",
            (
                binding.workspace,
                binding.kind.value,
                binding.role,
                binding.manifest_digest,
                session,
            ),
        )
        return appended

    def _open_tip(self, conn: sqlite3.Connection, session: str) -> _Tip:
        tip = self._tip(conn, session)
        if tip is None:
            raise LedgerError(
                f"audit ledger {self._path}: no session {session}; start it with ensure_session"
            )
        if tip.closed:
            raise LedgerError(
                f"session {session} is closed by a final seal; no record can follow it"
            )
        return tip

    def _seal_due(self, tip: _Tip, *, max_age_ms: int) -> bool:
        if tip.closed or tip.unsealed == 0 or tip.unsealed_since_ms is None:
            return False
        return self._now() - tip.unsealed_since_ms >= max_age_ms

    def _append_locked(
        self,
        conn: sqlite3.Connection,
        session: str,
        tip: _Tip | None,
        fields: dict[str, object],
    ) -> Appended:
        appended, tip = self._write_record(conn, session, tip, fields, ts_ms=self._now())
        if tip.unsealed >= self._seal_every:
            self._seal_locked(conn, session, tip, final=False)
        return appended

    def _write_record(
        self,
        conn: sqlite3.Connection,
        session: str,
        tip: _Tip | None,
        fields: Mapping[str, object],
        *,
        ts_ms: int,
    ) -> tuple[Appended, _Tip]:
        seq = 0 if tip is None else tip.seq + 1
        record = {
            **fields,
            "v": RECORD_VERSION,
            "session": session,
            "seq": seq,
            "prev": None if tip is None else tip.hash,
            "ts_ms": ts_ms,
        }
        raw = canonical(record)
        digest = record_hash(raw)
        conn.execute(
            "INSERT INTO events (session, seq, body) VALUES (?, ?, ?)", (session, seq, raw)
        )
        if tip is None:
            tip = _Tip(
                ord=None,
                first_ts_ms=ts_ms,
                last_ts_ms=ts_ms,
                seq=seq,
                hash=digest,
                unsealed_from=0,
                unsealed_since_ms=ts_ms,
                next_segment=0,
                last_seal_seq=None,
                last_seal_hash=None,
                closed=False,
            )
            conn.execute(
                f"INSERT INTO sessions (session, {_TIP_COLUMNS.removeprefix('ord, ')}, "  # noqa: S608
                "started_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (session, ts_ms, ts_ms, seq, digest, 0, ts_ms, 0, None, None, 0, ts_ms),
            )
            return Appended(seq=seq, hash=digest), tip
        if tip.unsealed == 0:
            tip.unsealed_since_ms = ts_ms
        tip.seq = seq
        tip.hash = digest
        tip.last_ts_ms = ts_ms
        self._save_tip(conn, session, tip)
        return Appended(seq=seq, hash=digest), tip

    @staticmethod
    def _save_tip(conn: sqlite3.Connection, session: str, tip: _Tip) -> None:
        conn.execute(
            """
            UPDATE sessions SET last_ts_ms = ?, tip_seq = ?, tip_hash = ?, unsealed_from = ?,
                unsealed_since_ms = ?, next_segment = ?, last_seal_seq = ?, last_seal_hash = ?,
                closed = ?
            WHERE session = ?
            """,
            (
                tip.last_ts_ms,
                tip.seq,
                tip.hash,
                tip.unsealed_from,
                tip.unsealed_since_ms,
                tip.next_segment,
                tip.last_seal_seq,
                tip.last_seal_hash,
                int(tip.closed),
                session,
            ),
        )

    def _signing_key(self) -> SigningKey:
        if self._key is None:
            try:
                self._key = self._signer()
            except LedgerError:
                raise
            except Error as exc:
                raise LedgerError(f"cannot seal the audit ledger: {exc.diagnostics()}") from exc
        return self._key

    def _seal_locked(
        self, conn: sqlite3.Connection, session: str, tip: _Tip, *, final: bool
    ) -> Appended:
        from trackwrap.crypto import pae

        key = self._signing_key()
        ts_ms = self._now()
        seal: dict[str, object] = {
            "kind": KIND_SEAL,
            "segment": tip.next_segment,
            "seal_type": SEAL_TYPE,
            "sealed_at_ms": ts_ms,
            "chain_tip": tip.hash,
            "tree_size": tip.seq + 1,
            "prev_seal": tip.last_seal_hash,
            "final": final,
            "key_id": key.key_id,
        }
        unsigned = {
            **seal,
            "v": RECORD_VERSION,
            "session": session,
            "seq": tip.seq + 1,
            "prev": tip.hash,
            "ts_ms": ts_ms,
        }
        signature = key.sign(pae(SEAL_PAYLOAD_TYPE, canonical(unsigned)))
        seal["sig"] = base64.b64encode(signature).decode("ascii")
        self._register_key(conn, key, now_ms=ts_ms)
        appended, tip = self._write_record(conn, session, tip, seal, ts_ms=ts_ms)
        tip.unsealed_from = appended.seq + 1
        tip.unsealed_since_ms = None
        tip.next_segment += 1
        tip.last_seal_seq = appended.seq
        tip.last_seal_hash = appended.hash
        tip.closed = final
        self._save_tip(conn, session, tip)
        return appended

    def _register_key(self, conn: sqlite3.Connection, key: SigningKey, *, now_ms: int) -> None:
        row = conn.execute("SELECT public_raw FROM keys WHERE key_id = ?", (key.key_id,)).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO keys (key_id, public_raw, first_seen_ms) VALUES (?, ?, ?)",
                (key.key_id, key.public_raw, now_ms),
            )
        elif bytes(row[0]) != key.public_raw:
            raise LedgerIntegrityError(
                f"audit ledger {self._path}: key {key.key_id} is registered with a different "
                "public key; run `trackwrap audit verify`",
                seq=None,
            )
