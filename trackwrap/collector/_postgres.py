# ruff: noqa: S608 - statements are joined from constant column lists and fixed conditions;
# every value goes in as a bound parameter.
"""The PostgreSQL storage (psycopg 3), for more than one machine's worth of devices.

A push is one transaction: the chain's row is created if missing and locked with
``SELECT … FOR UPDATE``, the duplicate check and the continuity check run, then the segment, its
records and the new head are written. Pushes to different chains run in parallel; pushes to the
same chain wait for each other. Approvals change by compare-and-set. Several collectors may share
one database; a long-poll re-reads its approval every :attr:`poll_interval_s` seconds to notice a
decision taken through another one. The schema is created on start (idempotent, under an
advisory lock). psycopg is imported when a storage is opened, never before.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

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
from trackwrap.ledger import ChainHead

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStorage"]

SCHEMA_VERSION = "1"
_SCHEMA_LOCK = 0x7477_636F_6C6C  # pg_advisory_xact_lock key: "twcoll"
POOL_SIZE = 16
CONNECT_TIMEOUT_S = 10

_DDL = (
    """CREATE TABLE IF NOT EXISTS collector_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS collector_key (
        id INTEGER PRIMARY KEY CHECK (id = 1), private_key TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS tokens (
        id TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE, device TEXT, developer TEXT NOT NULL,
        scopes TEXT NOT NULL, created_ms BIGINT NOT NULL, revoked_ms BIGINT)""",
    """CREATE TABLE IF NOT EXISTS devices (
        device TEXT PRIMARY KEY, keys TEXT NOT NULL, registered_ms BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS chains (
        device TEXT NOT NULL, session TEXT NOT NULL, head TEXT NOT NULL, developer TEXT,
        agent TEXT, role TEXT, first_ts_ms BIGINT, last_ts_ms BIGINT, events BIGINT NOT NULL,
        segments BIGINT NOT NULL, allowed BIGINT NOT NULL, denied BIGINT NOT NULL,
        held_for_approval BIGINT NOT NULL, approval_requests BIGINT NOT NULL,
        drift BIGINT NOT NULL, closed INTEGER NOT NULL, held_traces TEXT NOT NULL,
        updated_ms BIGINT NOT NULL, PRIMARY KEY (device, session))""",
    "CREATE INDEX IF NOT EXISTS chains_session ON chains (session)",
    "CREATE INDEX IF NOT EXISTS chains_first_ts ON chains (first_ts_ms)",
    """CREATE TABLE IF NOT EXISTS segments (
        device TEXT NOT NULL, session TEXT NOT NULL, segment BIGINT NOT NULL,
        first_seq BIGINT NOT NULL, last_seq BIGINT NOT NULL, hash TEXT NOT NULL,
        receipt TEXT NOT NULL, received_ms BIGINT NOT NULL,
        PRIMARY KEY (device, session, segment), UNIQUE (device, hash))""",
    """CREATE TABLE IF NOT EXISTS events (
        device TEXT NOT NULL, session TEXT NOT NULL, seq BIGINT NOT NULL, body BYTEA NOT NULL,
        PRIMARY KEY (device, session, seq))""",
    """CREATE TABLE IF NOT EXISTS diagnoses (
        device TEXT NOT NULL, session TEXT NOT NULL, through_seq BIGINT NOT NULL,
        body TEXT NOT NULL, PRIMARY KEY (device, session))""",
    """CREATE TABLE IF NOT EXISTS approvals (
        id TEXT PRIMARY KEY, device TEXT NOT NULL, session TEXT NOT NULL,
        action_hash TEXT NOT NULL, request TEXT NOT NULL, state TEXT NOT NULL, decision TEXT,
        approver TEXT, requested_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL,
        decided_ms BIGINT, published_ms BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS approvals_state ON approvals (state, requested_ms)",
)


def _q(statement: str) -> str:
    """A shared ``?`` statement in psycopg's ``%s`` style."""
    return statement.replace("?", "%s")


# The chain's row, locked, and the receipt of the segment if it is held already.
_LOCK_CHAIN = _q(
    f"SELECT {sql.CHAIN_COLUMNS}, (SELECT receipt FROM segments WHERE device = ? AND hash = ?) "
    "FROM chains WHERE device = ? AND session = ? FOR UPDATE"
)
# Segment, records and the chain's new head in one statement.
_STORE_SEGMENT = _q(
    f"WITH stored_segment AS ({sql.INSERT_SEGMENT}), "
    "stored_events AS (INSERT INTO events (device, session, seq, body) "
    "SELECT ?, ?, seq, body FROM unnest(?::bigint[], ?::bytea[]) AS r (seq, body)) "
    f"{sql.UPSERT_CHAIN}"
)


class PostgresStorage:
    """:class:`~trackwrap.collector.Storage` in PostgreSQL (see the module docstring)."""

    kind = "postgresql"
    poll_interval_s: float | None = 0.5

    def __init__(self, dsn: str, *, where: str, pool_size: int) -> None:
        self._dsn = dsn
        self._where = where
        self._size = pool_size
        self._idle: queue.LifoQueue[psycopg.Connection[tuple[Any, ...]]] = queue.LifoQueue()
        self._count = 0
        self._lock = threading.Lock()
        self._open: list[psycopg.Connection[tuple[Any, ...]]] = []
        self._closed = False

    @classmethod
    def open(cls, dsn: str, *, pool_size: int = POOL_SIZE) -> PostgresStorage:
        """Connect to ``dsn`` (``postgresql://…``) and create the schema if needed.

        Raises:
            CollectorError: the server cannot be reached, refuses, or holds a newer schema.
        """
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        try:
            info = conninfo_to_dict(dsn)
        except psycopg.Error as exc:
            raise CollectorError(f"not a PostgreSQL connection URL: {exc}") from exc
        host = info.get("host") or "localhost"
        port = info.get("port")
        where = f"{host}{':' + str(port) if port else ''}/{info.get('dbname') or 'postgres'}"
        storage = cls(dsn, where=where, pool_size=pool_size)
        try:
            storage._migrate()
        except BaseException:
            storage.close()
            raise
        return storage

    def _migrate(self) -> None:
        with self._tx("create its schema") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _DDL:
                conn.execute(statement)
            conn.execute("INSERT INTO collector_meta (name, value) VALUES ('schema', %s) "
                         "ON CONFLICT (name) DO NOTHING", (SCHEMA_VERSION,))
            row = conn.execute("SELECT value FROM collector_meta WHERE name = 'schema'"
                               ).fetchone()
            if row is None or row[0] != SCHEMA_VERSION:
                raise CollectorError(
                    f"the collector database at {self._where} has schema version "
                    f"{None if row is None else row[0]}; this trackwrap knows version "
                    f"{SCHEMA_VERSION}: upgrade trackwrap")

    # -- connections ------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        import psycopg

        try:
            return psycopg.connect(self._dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            raise CollectorError(f"cannot connect to PostgreSQL at {self._where}: "
                                 f"{_reason(exc)}") from exc

    def _acquire(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._closed:
            raise CollectorError(f"the collector's PostgreSQL storage ({self._where}) is closed")
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            grow = self._count < self._size
            if grow:
                self._count += 1
        if not grow:
            try:
                return self._idle.get(timeout=CONNECT_TIMEOUT_S)
            except queue.Empty:
                raise CollectorError(f"no free PostgreSQL connection to {self._where} within "
                                     f"{CONNECT_TIMEOUT_S} s") from None
        try:
            conn = self._connect()
        except BaseException:
            with self._lock:
                self._count -= 1
            raise
        with self._lock:
            self._open.append(conn)
        return conn

    def _release(self, conn: psycopg.Connection[tuple[Any, ...]], *, broken: bool) -> None:
        if broken or conn.closed or self._closed:
            with contextlib.suppress(Exception):
                conn.close()
            with self._lock:
                self._count -= 1
                if conn in self._open:
                    self._open.remove(conn)
            return
        self._idle.put(conn)

    @contextlib.contextmanager
    def _connection(self, doing: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        import psycopg

        conn = self._acquire()
        broken = False
        try:
            yield conn
        except psycopg.Error as exc:
            broken = isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
            raise CollectorError(f"PostgreSQL at {self._where}: cannot {doing}: "
                                 f"{_reason(exc)}") from exc
        except BaseException:
            broken = conn.info.transaction_status != _idle_status()
            raise
        finally:
            self._release(conn, broken=broken)

    @contextlib.contextmanager
    def _tx(self, doing: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        with self._connection(doing) as conn, conn.transaction():
            yield conn

    def _one(self, doing: str, statement: str, params: Sequence[object]) -> tuple[Any, ...] | None:
        with self._connection(doing) as conn:
            return conn.execute(_q(statement), params).fetchone()

    def _rows(self, doing: str, statement: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        with self._connection(doing) as conn:
            return conn.execute(_q(statement), params).fetchall()

    # -- Storage ----------------------------------------------------------------------------

    def describe(self) -> str:
        return f"postgresql {self._where}"

    def ping(self) -> None:
        self._one("reach it", "SELECT 1", ())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._open = self._open, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()

    def load_or_create_key(self, new_private: Callable[[], bytes]) -> bytes:
        """The key lives in the ``collector_key`` table (one row)."""
        import base64
        import binascii

        with self._tx("store the collector's key") as conn:
            conn.execute("INSERT INTO collector_key (id, private_key) VALUES (1, %s) "
                         "ON CONFLICT (id) DO NOTHING",
                         (base64.b64encode(new_private()).decode("ascii"),))
            row = conn.execute("SELECT private_key FROM collector_key WHERE id = 1").fetchone()
        try:
            return base64.b64decode(str(row[0] if row else ""), validate=True)
        except (ValueError, binascii.Error) as exc:
            raise CollectorError(f"the collector's key in {self._where} is malformed") from exc

    def add_token(self, token: TokenRecord) -> None:
        with self._tx("store a token") as conn:
            conn.execute(_q(sql.INSERT_TOKEN), sql.token_params(token))

    def token_by_digest(self, digest: str) -> TokenRecord | None:
        row = self._one("read a token", sql.SELECT_TOKEN, (digest,))
        return None if row is None else sql.token_from_row(row)

    def tokens(self) -> list[TokenRecord]:
        return [sql.token_from_row(r) for r in self._rows("list tokens", sql.SELECT_TOKENS, ())]

    def revoke_token(self, token_id: str, *, now_ms: int) -> bool:
        with self._tx("revoke a token") as conn:
            return conn.execute(_q(sql.REVOKE_TOKEN), (now_ms, token_id)).rowcount > 0

    def device_keys(self, device: str) -> list[DeviceKey]:
        row = self._one("read a device", sql.SELECT_DEVICE, (device,))
        return [] if row is None else sql.device_keys_from_text(row[0])

    def add_device_key(self, device: str, key: DeviceKey, *, only_if_none: bool) -> list[DeviceKey]:
        with self._tx("register a device key") as conn:
            conn.execute(_q(sql.INSERT_DEVICE), (device, "[]", key.registered_ms))
            row = conn.execute(_q(sql.SELECT_DEVICE) + " FOR UPDATE", (device,)).fetchone()
            keys = [] if row is None else sql.device_keys_from_text(row[0])
            if (only_if_none and keys) or any(k.key_id == key.key_id for k in keys):
                return keys
            keys.append(key)
            conn.execute(_q(sql.UPDATE_DEVICE), (sql.device_keys_text(keys), device))
            return keys

    def ingest(self, device: str, session: str, segment_hash: str, accept: Accept) -> Ingested:
        """Two statements on the usual path: lock the chain's row (looking for the segment
        too); then write segment, records and head at once."""
        with self._tx("store a segment") as conn:
            lookup = (device, segment_hash, device, session)
            row = conn.execute(_LOCK_CHAIN, lookup).fetchone()
            if row is None:  # a new chain: make a row to lock (gone again on rollback)
                empty = ChainRow(device=device, session=session, head=ChainHead())
                conn.execute(_q(sql.INSERT_CHAIN_IF_NONE), sql.chain_params(empty, now_ms=0))
                row = conn.execute(_LOCK_CHAIN, lookup).fetchone()
            if row is None:
                raise CollectorError(f"chain {device}/{session} vanished while it was locked")
            stored = sql.chain_from_row(row[:-1])
            chain = stored if stored.segments > 0 else None
            if row[-1] is not None and chain is not None:
                return Ingested(receipt=str(row[-1]), head=chain.head, duplicate=True)
            done = accept(chain)
            conn.execute(_STORE_SEGMENT, (
                device, session, done.segment, done.first_seq, done.last_seq,
                done.segment_hash, done.receipt, done.received_ms,
                device, session, [seq for seq, _raw in done.records],
                [raw for _seq, raw in done.records],
                *sql.chain_params(done.chain, now_ms=done.received_ms)))
            return Ingested(receipt=done.receipt, head=done.chain.head, duplicate=False,
                            events=len(done.records))

    def chains_of_session(self, session: str) -> list[ChainRow]:
        return [sql.chain_from_row(r) for r in self._rows(
            "read a session", sql.SELECT_CHAINS_OF_SESSION, (session,))]

    def record_bodies(self, device: str, session: str, *, through_seq: int) -> list[bytes]:
        rows = self._rows("read a session's records", sql.SELECT_BODIES,
                          (device, session, through_seq))
        return [bytes(body) for (body,) in rows]

    def cached_diagnosis(self, device: str, session: str) -> tuple[int, str] | None:
        row = self._one("read a diagnosis", sql.SELECT_DIAGNOSIS, (device, session))
        return None if row is None else (int(row[0]), str(row[1]))

    def store_diagnosis(self, device: str, session: str, through_seq: int, body: str) -> None:
        with self._tx("store a diagnosis") as conn:
            conn.execute(_q(sql.UPSERT_DIAGNOSIS), (device, session, through_seq, body))

    def sessions(self, query: SessionQuery) -> list[ChainRow]:
        statement, params = sql.sessions_query(query)
        return [sql.chain_from_row(r) for r in self._rows("list sessions", statement, params)]

    def publish_approval(self, row: ApprovalRow) -> tuple[ApprovalRow, bool]:
        with self._tx("store an approval") as conn:
            created = conn.execute(_q(sql.INSERT_APPROVAL), sql.approval_params(row)
                                   ).rowcount > 0
            if created:
                return row, True
            stored = conn.execute(_q(sql.SELECT_APPROVAL), (row.id,)).fetchone()
        if stored is None:  # inserted by nobody and not there: cannot happen inside one tx
            raise CollectorError(f"approval {row.id} vanished while it was published")
        return sql.approval_from_row(stored), False

    def approval(self, approval_id: str) -> ApprovalRow | None:
        row = self._one("read an approval", sql.SELECT_APPROVAL, (approval_id,))
        return None if row is None else sql.approval_from_row(row)

    def approvals(self, state: str | None, *, now_ms: int, limit: int) -> list[ApprovalRow]:
        statement, params = sql.approvals_query(state, now_ms=now_ms, limit=limit)
        return [sql.approval_from_row(r) for r in self._rows("list approvals", statement, params)]

    def decide_approval(
        self,
        approval_id: str,
        *,
        state: str,
        decision: str | None,
        approver: str | None,
        decided_ms: int,
    ) -> ApprovalRow | None:
        with self._tx("decide an approval") as conn:
            row = conn.execute(_q(sql.DECIDE_APPROVAL), (
                state, decision, approver, decided_ms, approval_id)).fetchone()
        return None if row is None else sql.approval_from_row(row)


def _idle_status() -> object:
    from psycopg.pq import TransactionStatus

    return TransactionStatus.IDLE


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
