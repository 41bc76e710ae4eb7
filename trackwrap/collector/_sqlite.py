"""The embedded storage: one SQLite file (WAL, ``synchronous=NORMAL``).

One writer at a time: a process-wide lock plus ``BEGIN IMMEDIATE`` (which also serializes with
other processes, such as ``trackwrap collector token create`` run beside a serving collector)
around the continuity check and the inserts. Readers use a small pool of their own connections,
which WAL lets run beside the writer. ``synchronous=NORMAL`` in WAL mode survives a killed
process (a receipt is only sent after its commit); it may lose the last commits on power loss.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from trackwrap.collector import _sql as sql
from trackwrap.collector._interface import (
    Accept,
    ApprovalRow,
    ChainRow,
    DeviceKey,
    Ingested,
    SessionQuery,
    TokenRecord,
)
from trackwrap.errors import CollectorError

__all__ = ["SqliteStorage"]

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 10.0

_DDL = (
    """CREATE TABLE tokens (
        id TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE, device TEXT, developer TEXT NOT NULL,
        scopes TEXT NOT NULL, created_ms INTEGER NOT NULL, revoked_ms INTEGER)""",
    """CREATE TABLE devices (
        device TEXT PRIMARY KEY, keys TEXT NOT NULL, registered_ms INTEGER NOT NULL)""",
    """CREATE TABLE chains (
        device TEXT NOT NULL, session TEXT NOT NULL, head TEXT NOT NULL, developer TEXT,
        agent TEXT, role TEXT, first_ts_ms INTEGER, last_ts_ms INTEGER,
        events INTEGER NOT NULL, segments INTEGER NOT NULL, allowed INTEGER NOT NULL,
        denied INTEGER NOT NULL, held_for_approval INTEGER NOT NULL,
        approval_requests INTEGER NOT NULL, drift INTEGER NOT NULL, closed INTEGER NOT NULL,
        held_traces TEXT NOT NULL, updated_ms INTEGER NOT NULL,
        PRIMARY KEY (device, session)) WITHOUT ROWID""",
    "CREATE INDEX chains_session ON chains (session)",
    "CREATE INDEX chains_first_ts ON chains (first_ts_ms)",
    """CREATE TABLE segments (
        device TEXT NOT NULL, session TEXT NOT NULL, segment INTEGER NOT NULL,
        first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, hash TEXT NOT NULL,
        receipt TEXT NOT NULL, received_ms INTEGER NOT NULL,
        PRIMARY KEY (device, session, segment), UNIQUE (device, hash))""",
    """CREATE TABLE events (
        device TEXT NOT NULL, session TEXT NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL,
        PRIMARY KEY (device, session, seq)) WITHOUT ROWID""",
    """CREATE TABLE diagnoses (
        device TEXT NOT NULL, session TEXT NOT NULL, through_seq INTEGER NOT NULL,
        body TEXT NOT NULL, PRIMARY KEY (device, session))""",
    """CREATE TABLE approvals (
        id TEXT PRIMARY KEY, device TEXT NOT NULL, session TEXT NOT NULL,
        action_hash TEXT NOT NULL, request TEXT NOT NULL, state TEXT NOT NULL, decision TEXT,
        approver TEXT, requested_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL,
        decided_ms INTEGER, published_ms INTEGER NOT NULL)""",
    "CREATE INDEX approvals_state ON approvals (state, requested_ms)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


def _error(exc: sqlite3.Error, path: Path, doing: str) -> CollectorError:
    reason = str(exc) or type(exc).__name__
    return CollectorError(f"collector database {path}: cannot {doing}: {reason}")


class SqliteStorage:
    """:class:`~trackwrap.collector.Storage` in one SQLite file (see the module docstring)."""

    kind = "sqlite"
    poll_interval_s: float | None = None

    def __init__(self, path: Path, writer: sqlite3.Connection) -> None:
        self.path = path
        self._writer = writer
        self._write_lock = threading.Lock()
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all = [writer]
        self._all_lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, path: Path) -> SqliteStorage:
        """Open (creating it and its schema if needed) the database at ``path``.

        Raises:
            CollectorError: the directory is not writable, the file is not a collector database
                (or a newer one), or SQLite fails.
        """
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CollectorError(f"cannot create {path.parent}: {exc.strerror}") from exc
        storage = cls(path, cls._connect(path))
        try:
            storage._migrate()
        except BaseException:
            storage.close()
            raise
        return storage

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise _error(exc, path, "open it") from exc
        if str(mode).lower() != "wal":
            conn.close()
            raise CollectorError(f"collector database {path}: cannot switch to WAL mode; keep it "
                                 "on a local file system")
        return conn

    def _migrate(self) -> None:
        with self._write("create its schema") as conn:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version == SCHEMA_VERSION:
                return
            if version != 0:
                raise CollectorError(
                    f"collector database {self.path} has schema version {version}; this "
                    f"trackwrap knows version {SCHEMA_VERSION}: upgrade trackwrap")
            if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise CollectorError(f"{self.path} is not a trackwrap collector database")
            for statement in _DDL:
                conn.execute(statement)

    # -- connections ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self, doing: str) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _error(exc, self.path, doing) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise _error(exc, self.path, doing) from exc
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _read(self, doing: str) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise CollectorError(f"collector database {self.path} is closed")
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            conn = self._connect(self.path)
            with self._all_lock:
                self._all.append(conn)
        try:
            yield conn
        except sqlite3.Error as exc:
            raise _error(exc, self.path, doing) from exc
        finally:
            self._readers.put(conn)

    def _one(self, doing: str, statement: str,
             params: Sequence[object]) -> tuple[object, ...] | None:
        with self._read(doing) as conn:
            row = conn.execute(statement, params).fetchone()
        return None if row is None else tuple(row)

    def _all_rows(self, doing: str, statement: str,
                  params: Sequence[object]) -> list[tuple[object, ...]]:
        with self._read(doing) as conn:
            return [tuple(row) for row in conn.execute(statement, params).fetchall()]

    # -- Storage ----------------------------------------------------------------------------

    def describe(self) -> str:
        return f"sqlite {self.path}"

    def ping(self) -> None:
        self._one("read it", "SELECT 1", ())

    def close(self) -> None:
        with self._all_lock:
            self._closed = True
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def load_or_create_key(self, new_private: Callable[[], bytes]) -> bytes:
        """The key lives next to the database, in ``<name>.key`` (0600, base64)."""
        import base64
        import binascii

        key_path = self.path.with_suffix(".key")
        try:
            return base64.b64decode(key_path.read_text().strip(), validate=True)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, binascii.Error) as exc:
            raise CollectorError(f"cannot read the collector's key {key_path}: {exc}") from exc
        temporary = key_path.with_name(f".{key_path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(base64.b64encode(new_private()).decode("ascii") + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(temporary, key_path)
        except OSError as exc:
            raise CollectorError(f"cannot write the collector's key {key_path}: "
                                 f"{exc.strerror}") from exc
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink()
        return self.load_or_create_key(new_private)

    def add_token(self, token: TokenRecord) -> None:
        with self._write("store a token") as conn:
            conn.execute(sql.INSERT_TOKEN, sql.token_params(token))

    def token_by_digest(self, digest: str) -> TokenRecord | None:
        row = self._one("read a token", sql.SELECT_TOKEN, (digest,))
        return None if row is None else sql.token_from_row(row)

    def tokens(self) -> list[TokenRecord]:
        return [sql.token_from_row(r) for r in self._all_rows("list tokens", sql.SELECT_TOKENS, ())]

    def revoke_token(self, token_id: str, *, now_ms: int) -> bool:
        with self._write("revoke a token") as conn:
            return conn.execute(sql.REVOKE_TOKEN, (now_ms, token_id)).rowcount > 0

    def device_keys(self, device: str) -> list[DeviceKey]:
        row = self._one("read a device", sql.SELECT_DEVICE, (device,))
        return [] if row is None else sql.device_keys_from_text(row[0])

    def add_device_key(self, device: str, key: DeviceKey, *, only_if_none: bool) -> list[DeviceKey]:
        with self._write("register a device key") as conn:
            row = conn.execute(sql.SELECT_DEVICE, (device,)).fetchone()
            keys = [] if row is None else sql.device_keys_from_text(row[0])
            if (only_if_none and keys) or any(k.key_id == key.key_id for k in keys):
                return keys
            keys.append(key)
            text = sql.device_keys_text(keys)
            if row is None:
                conn.execute(sql.INSERT_DEVICE, (device, text, key.registered_ms))
            else:
                conn.execute(sql.UPDATE_DEVICE, (text, device))
            return keys

    def ingest(self, device: str, session: str, segment_hash: str, accept: Accept) -> Ingested:
        with self._write("store a segment") as conn:
            held = conn.execute(sql.SELECT_DUPLICATE, (device, segment_hash)).fetchone()
            row = conn.execute(sql.SELECT_CHAIN, (device, session)).fetchone()
            chain = None if row is None else sql.chain_from_row(tuple(row))
            if held is not None and chain is not None:
                return Ingested(receipt=str(held[0]), head=chain.head, duplicate=True)
            done = accept(chain)
            conn.execute(sql.INSERT_SEGMENT, (
                device, session, done.segment, done.first_seq, done.last_seq,
                done.segment_hash, done.receipt, done.received_ms))
            conn.executemany(sql.INSERT_EVENT, [
                (device, session, seq, raw) for seq, raw in done.records])
            conn.execute(sql.UPSERT_CHAIN, sql.chain_params(done.chain, now_ms=done.received_ms))
            return Ingested(receipt=done.receipt, head=done.chain.head, duplicate=False,
                            events=len(done.records))

    def chains_of_session(self, session: str) -> list[ChainRow]:
        return [sql.chain_from_row(r) for r in self._all_rows(
            "read a session", sql.SELECT_CHAINS_OF_SESSION, (session,))]

    def record_bodies(self, device: str, session: str, *, through_seq: int) -> list[bytes]:
        with self._read("read a session's records") as conn:
            rows = conn.execute(sql.SELECT_BODIES, (device, session, through_seq)).fetchall()
        return [bytes(body) for (body,) in rows]

    def cached_diagnosis(self, device: str, session: str) -> tuple[int, str] | None:
        row = self._one("read a diagnosis", sql.SELECT_DIAGNOSIS, (device, session))
        return None if row is None else (int(str(row[0])), str(row[1]))

    def store_diagnosis(self, device: str, session: str, through_seq: int, body: str) -> None:
        with self._write("store a diagnosis") as conn:
            conn.execute(sql.UPSERT_DIAGNOSIS, (device, session, through_seq, body))

    def sessions(self, query: SessionQuery) -> list[ChainRow]:
        statement, params = sql.sessions_query(query)
        return [sql.chain_from_row(r) for r in self._all_rows("list sessions", statement, params)]

    def publish_approval(self, row: ApprovalRow) -> tuple[ApprovalRow, bool]:
        with self._write("store an approval") as conn:
            created = conn.execute(sql.INSERT_APPROVAL, sql.approval_params(row)).rowcount > 0
            if created:
                return row, True
            stored = conn.execute(sql.SELECT_APPROVAL, (row.id,)).fetchone()
        return sql.approval_from_row(tuple(stored)), False

    def approval(self, approval_id: str) -> ApprovalRow | None:
        row = self._one("read an approval", sql.SELECT_APPROVAL, (approval_id,))
        return None if row is None else sql.approval_from_row(row)

    def approvals(self, state: str | None, *, now_ms: int, limit: int) -> list[ApprovalRow]:
        statement, params = sql.approvals_query(state, now_ms=now_ms, limit=limit)
        return [sql.approval_from_row(r) for r in self._all_rows(
            "list approvals", statement, params)]

    def decide_approval(
        self,
        approval_id: str,
        *,
        state: str,
        decision: str | None,
        approver: str | None,
        decided_ms: int,
    ) -> ApprovalRow | None:
        with self._write("decide an approval") as conn:
            row = conn.execute(sql.DECIDE_APPROVAL, (
                state, decision, approver, decided_ms, approval_id)).fetchone()
        return None if row is None else sql.approval_from_row(tuple(row))
