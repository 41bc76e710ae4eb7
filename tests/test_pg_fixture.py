"""The pg_dsn fixture: a real PostgreSQL server (scripts/pg.sh), one fresh database per test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

_seen: dict[str, str] = {}


def _marker(dsn: str) -> str | None:
    """The marker a test left in its database, if it has the table at all."""
    with psycopg.connect(dsn) as conn:
        found = conn.execute("SELECT to_regclass('public.marker')").fetchone()
        if found is None or found[0] is None:
            return None
        row = conn.execute("SELECT name FROM marker").fetchone()
        return None if row is None else str(row[0])


def test_dsn_is_a_fresh_database_on_local_postgresql(pg_dsn: str) -> None:
    url = urlsplit(pg_dsn)
    assert url.scheme == "postgresql"
    assert url.hostname == "127.0.0.1"
    assert url.path.startswith("/test_")
    with psycopg.connect(pg_dsn) as conn:
        version = conn.execute("SELECT version()").fetchone()
        assert version is not None
        assert str(version[0]).startswith("PostgreSQL ")
        assert conn.execute("SELECT current_database()").fetchone() == (url.path[1:],)
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
        assert tables == (0,)
        assert conn.execute("SHOW TimeZone").fetchone() == ("UTC",)


def test_server_version_matches_installed_binaries(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        server_major = conn.info.server_version // 10000
    pg_ctl = shutil.which("pg_ctl") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))), None
    )
    if pg_ctl is not None:
        out = subprocess.run([pg_ctl, "--version"], capture_output=True, text=True, check=True)
        # "pg_ctl (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        assert out.stdout.split()[2].split(".")[0] == str(server_major)


def test_create_insert_read_back(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE events (id bigserial PRIMARY KEY, body jsonb NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO events (body) VALUES (%s::jsonb)",
                [('{"n": 1}',), ('{"n": 2}',), ('{"n": 3}',)],
            )
    # Committed: a new connection sees the rows.
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT id, body FROM events ORDER BY id").fetchall()
    assert rows == [(1, {"n": 1}), (2, {"n": 2}), (3, {"n": 3})]


def _leave_marker(dsn: str, name: str) -> None:
    assert _marker(dsn) is None, "a test's database must start empty"
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE marker (name text NOT NULL)")
        conn.execute("INSERT INTO marker VALUES (%s)", (name,))
    _seen[name] = dsn


def test_isolation_first(pg_dsn: str) -> None:
    _leave_marker(pg_dsn, "first")


def test_isolation_second(pg_dsn: str) -> None:
    _leave_marker(pg_dsn, "second")
    assert _marker(pg_dsn) == "second"
    if "first" in _seen:  # ran after test_isolation_first (not alone, not reordered)
        assert _seen["first"] != pg_dsn
        # The first test's database was dropped when that test ended.
        with pytest.raises(psycopg.OperationalError, match="does not exist"):
            _marker(_seen["first"])


def test_databases_are_dropped_after_each_test(pg_dsn: str) -> None:
    server = urlsplit(pg_dsn)._replace(path="/postgres").geturl()
    with psycopg.connect(server) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%' ORDER BY datname"
        ).fetchall()
    assert rows == [(urlsplit(pg_dsn).path[1:],)]
