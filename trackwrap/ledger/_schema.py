"""The ledger's on-disk schema and its migrations.

Migrations are named, applied in order on open, each in the same ``BEGIN IMMEDIATE`` transaction
as its ``migrations`` row and the ``user_version`` bump. ``user_version`` counts applied
migrations; a database newer than this code is refused rather than guessed at.

Only ``events`` (and the public keys in ``keys``) are evidence; ``sessions`` is derived state that
appends read for speed and that ``verify`` never trusts.
"""

from __future__ import annotations

import sqlite3

from trackwrap.errors import LedgerError

__all__ = ["MIGRATIONS", "migrate"]

MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "0001_initial",
        (
            """
            CREATE TABLE migrations (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                applied_ms INTEGER NOT NULL
            )
            """,
            """
            CREATE TABLE events (
                session TEXT NOT NULL,
                seq INTEGER NOT NULL,
                body BLOB NOT NULL,
                PRIMARY KEY (session, seq)
            ) WITHOUT ROWID
            """,
            """
            CREATE TABLE sessions (
                ord INTEGER PRIMARY KEY,
                session TEXT NOT NULL UNIQUE,
                first_ts_ms INTEGER NOT NULL,
                last_ts_ms INTEGER NOT NULL,
                tip_seq INTEGER NOT NULL,
                tip_hash TEXT NOT NULL,
                unsealed_from INTEGER NOT NULL,
                unsealed_since_ms INTEGER,
                next_segment INTEGER NOT NULL,
                last_seal_seq INTEGER,
                last_seal_hash TEXT,
                closed INTEGER NOT NULL
            )
            """,
            """
            CREATE TABLE keys (
                key_id TEXT PRIMARY KEY,
                public_raw BLOB NOT NULL,
                first_seen_ms INTEGER NOT NULL
            )
            """,
        ),
    ),
    (
        "0002_session_rows",
        (
            # Who the session is for (from its genesis) and what it has spent (from the
            # ``usage`` of its records). Derived state, like the tip columns.
            "ALTER TABLE sessions ADD COLUMN workspace TEXT",
            """
            ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'implicit'
                CHECK (kind IN ('implicit', 'explicit'))
            """,
            "ALTER TABLE sessions ADD COLUMN role TEXT",
            "ALTER TABLE sessions ADD COLUMN manifest_digest TEXT",
            "ALTER TABLE sessions ADD COLUMN started_ms INTEGER",
            "ALTER TABLE sessions ADD COLUMN close_reason TEXT",
            "ALTER TABLE sessions ADD COLUMN tool_calls INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE sessions ADD COLUMN bytes_out INTEGER NOT NULL DEFAULT 0",
            # Sessions made before this migration were all implicit (ensure_session).
            """
            UPDATE sessions SET
                started_ms = first_ts_ms,
                workspace = (
                    SELECT CASE
                        WHEN json_valid(CAST(e.body AS TEXT))
                            AND json_type(CAST(e.body AS TEXT), '$.workspace') = 'text'
                        THEN json_extract(CAST(e.body AS TEXT), '$.workspace')
                    END
                    FROM events AS e WHERE e.session = sessions.session AND e.seq = 0
                )
            """,
            # active_session(): one lookup per tools/call.
            """
            CREATE INDEX sessions_active ON sessions (workspace, ord)
                WHERE kind = 'explicit' AND closed = 0
            """,
        ),
    ),
    (
        "0003_tool_pins",
        (
            # MCP tool pinning: the approved digest of every tool an upstream server offered,
            # and the digest of a new or changed version waiting for a person's approval.
            """
            CREATE TABLE pins (
                server TEXT NOT NULL,
                tool TEXT NOT NULL,
                digest TEXT,
                pending_digest TEXT,
                tool_json TEXT NOT NULL,
                first_seen_ms INTEGER NOT NULL,
                updated_ms INTEGER NOT NULL,
                PRIMARY KEY (server, tool)
            ) WITHOUT ROWID
            """,
        ),
    ),
    (
        "0004_pin_approved_json",
        (
            # The approved version of each pinned tool, to tell a wording-only change from a
            # schema change when policy lets the former through.
            "ALTER TABLE pins ADD COLUMN approved_json TEXT",
            "UPDATE pins SET approved_json = tool_json WHERE pending_digest IS NULL",
        ),
    ),
    (
        "0005_approvals",
        (
            # Approval requests and their state (pending, approved, denied, expired, redeemed);
            # every change is also a ledger event in the approval's session.
            """
            CREATE TABLE approvals (
                id TEXT PRIMARY KEY,
                session TEXT NOT NULL,
                action_hash TEXT NOT NULL,
                state TEXT NOT NULL,
                requested_ms INTEGER NOT NULL,
                expires_ms INTEGER NOT NULL,
                request TEXT NOT NULL,
                decision TEXT,
                approver TEXT,
                decided_ms INTEGER,
                redeemed_ms INTEGER,
                redeemed_by TEXT,
                reported INTEGER NOT NULL DEFAULT 0
            )
            """,
            # The lookup every call that needs approval makes.
            "CREATE INDEX approvals_call ON approvals (session, action_hash, requested_ms)",
            "CREATE INDEX approvals_state ON approvals (state, expires_ms)",
        ),
    ),
    (
        "0006_receipts",
        (
            # Collector receipts: a collector's signed statement that it holds a session's chain
            # through ``seq`` (whose record hash is ``chain_tip``). ``verify`` holds the local
            # chain to them; a segment without a receipt is still to be sent.
            """
            CREATE TABLE receipts (
                session TEXT NOT NULL,
                segment INTEGER NOT NULL,
                seq INTEGER NOT NULL,
                chain_tip TEXT NOT NULL,
                segment_hash TEXT NOT NULL,
                collector TEXT NOT NULL,
                envelope TEXT NOT NULL,
                received_ms INTEGER NOT NULL,
                PRIMARY KEY (session, segment)
            ) WITHOUT ROWID
            """,
        ),
    ),
)


def migrate(conn: sqlite3.Connection, *, now_ms: int) -> None:
    """Bring the schema up to date; the caller holds a ``BEGIN IMMEDIATE`` transaction.

    Raises:
        LedgerError: the database was written by a newer trackwrap.
        sqlite3.Error: left to the caller's seam to translate.
    """
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise LedgerError(
            f"the audit ledger has schema version {version}, newer than this trackwrap "
            f"understands ({len(MIGRATIONS)}); upgrade trackwrap"
        )
    for name, statements in MIGRATIONS[version:]:
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO migrations (name, applied_ms) VALUES (?, ?)", (name, now_ms))
    if version < len(MIGRATIONS):
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS):d}")
