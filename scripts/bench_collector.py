"""What the collector sustains: segments ingested per second, and diagnose latency.

Prints figures; asserts nothing. Everything is real: segments of 20 records (19 events and their
seal) cut from real ledgers, pushed over HTTP on loopback to ``trackwrap collector serve``
(uvicorn, one worker) by 1, 2 and 4 client processes at once (one device each, segments in
order, each answered with a signed receipt), on SQLite and on PostgreSQL (a throwaway cluster
started with scripts/pg.sh; skipped with a message when that cannot run). Then a session of
10,000 events is pushed and diagnosed over HTTP: once while it is still open (the diagnosis is
built on request), once right after its final segment (the collector builds a closed session's
diagnosis in the background), then repeatedly (stored; p50 and p95).

Usage: .venv/bin/python scripts/bench_collector.py [--segments 250] [--diagnose-requests 40]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trackwrap.collector import Scope, issue_token, open_storage  # noqa: E402
from trackwrap.crypto import SigningKey  # noqa: E402
from trackwrap.ledger import Ledger, Segment, Usage  # noqa: E402

CLIENTS = (1, 2, 4)
RECORDS_PER_SEGMENT = 20
DIAGNOSE_EVENTS = 10_000
TARGET_SQLITE = 1000
TARGET_DIAGNOSE_MS = 100


def _clock() -> Callable[[], int]:
    state = {"now": 1_780_000_000_000}

    def tick() -> int:
        state["now"] += 37
        return state["now"]

    return tick


def _decision(n: int) -> dict[str, object]:
    outcome = "deny" if n % 9 == 4 else "allow"
    return {"kind": "tool_call.decision", "server": "filesystem", "tool": "write_file",
            "action_kind": "filesystem.write", "action_hash": f"sha256:{n:064x}",
            "decision": outcome, "enforced": True, "forwarded": outcome == "allow",
            "rule": "WORKSPACE-WRITE-ALLOW" if outcome == "allow" else "SECRETS-IN-ARGS",
            "reason": "inside the workspace", "findings": [], "drift": None,
            "trace": f"tr-{n:06d}", "target": f"/home/dev/repo/src/module_{n % 97}.py",
            "args": json.dumps({"path": f"/home/dev/repo/src/module_{n % 97}.py"}),
            "bytes_out": 1200, "policy_hash": "sha256:" + "c" * 64, "mode": "enforce"}


def _builder(body: dict[str, object]) -> Callable[[object, int], tuple[dict[str, object], Usage]]:
    usage = Usage(tool_calls=1) if body["forwarded"] else Usage()
    return lambda _state, _seq: (body, usage)


def make_segments(path: Path, key: SigningKey, session: str, *, events: int,
                  seal_every: int, close: bool = False) -> list[Segment]:
    """A real ledger with one session of ``events`` tool calls; its sealed segments."""
    ledger = Ledger.open(path, signer=lambda: key, clock_ms=_clock(), seal_every=seal_every)
    try:
        ledger.ensure_session(session, genesis={"workspace": "/home/dev/repo",
                                                "agent": "claude-code", "role": "code-reviewer"})
        for n in range(1, events):
            ledger.append_decision(session, _builder(_decision(n)), sync=False)
        if close:
            ledger.close_session(session, reason="done")
        return ledger.segments(session)
    finally:
        ledger.close()


def public_key_text(key: SigningKey) -> str:
    import base64

    return "ed25519:" + base64.b64encode(key.public_raw).decode("ascii")


def write_bodies(path: Path, segments: list[Segment], key: SigningKey) -> None:
    with path.open("w") as handle:
        for segment in segments:
            handle.write(json.dumps({**segment.to_json(), "public_key": public_key_text(key)},
                                    separators=(",", ":")) + "\n")


class Collector:
    """``trackwrap collector serve`` in a subprocess, its stderr in ``log``."""

    def __init__(self, db: str, log: Path) -> None:
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trackwrap", "collector", "serve", "--db", db,
             "--listen", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=self.log, text=True, cwd=ROOT)
        deadline = time.monotonic() + 60
        while " listening on " not in (text := log.read_text()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the collector did not start: {text}")
            time.sleep(0.05)
        self.url = text.split(" listening on ", 1)[1].split()[0]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def push_all(url: str, token: str, bodies: str, start_at: float) -> tuple[int, float, int]:
    """One client process: push every body in order; (pushed, end time, failures)."""
    import httpx

    lines = Path(bodies).read_bytes().splitlines()
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    failures = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        client.get("/healthz")
        time.sleep(max(0.0, start_at - time.time()))
        for body in lines:
            answer = client.post("/v1/segments", content=body, headers=headers)
            if answer.status_code != 200 or answer.json().get("duplicate"):
                failures += 1
    return len(lines), time.time(), failures


def tokens_for(db: str, devices: int) -> list[str]:
    storage = open_storage(db)
    try:
        tokens = []
        for n in range(devices):
            token, record = issue_token(developer=f"dev{n}@acme.com", scopes=(Scope.INGEST,),
                                        device=f"laptop-{n}", now_ms=int(time.time() * 1000))
            storage.add_token(record)
            tokens.append(token)
        return tokens
    finally:
        storage.close()


def ingest_rate(db: str, work: Path, bodies: list[Path], clients: int) -> tuple[float, int]:
    tokens = tokens_for(db, clients)
    server = Collector(db, work / "collector.log")
    try:
        start_at = time.time() + 1.5
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=clients, mp_context=context) as pool:
            futures = [pool.submit(push_all, server.url, tokens[i], str(bodies[i]), start_at)
                       for i in range(clients)]
            results = [f.result() for f in futures]
    finally:
        server.stop()
    pushed = sum(r[0] for r in results)
    elapsed = max(r[1] for r in results) - start_at
    return pushed / elapsed, sum(r[2] for r in results)


def diagnose_latency(db: str, segments: list[Segment], key: SigningKey,
                     requests: int, work: Path) -> dict[str, float]:
    """Milliseconds for: a diagnosis built on request (the session still open, after its
    latest segment); the first request right after the final segment (the collector builds
    a closed session's diagnosis in the background then); then p50 and p95 of later ones."""
    import httpx

    [token] = tokens_for(db, 1)
    storage = open_storage(db)
    reader, record = issue_token(developer="ops@acme.com", scopes=(Scope.READ,), device=None,
                                 now_ms=int(time.time() * 1000))
    storage.add_token(record)
    storage.close()
    server = Collector(db, work / "collector-diagnose.log")
    push = {"authorization": f"Bearer {token}"}
    auth = {"authorization": f"Bearer {reader}"}
    params = {"id": segments[0].session}
    figures: dict[str, float] = {}
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:

            def timed_get() -> float:
                started = time.perf_counter()
                client.get("/v1/diagnose/session", params=params, headers=auth
                           ).raise_for_status()
                return (time.perf_counter() - started) * 1000

            for segment in segments:
                if segment is segments[-1]:
                    figures["open"] = timed_get()
                client.post("/v1/segments", headers=push, json={
                    **segment.to_json(), "public_key": public_key_text(key)}
                ).raise_for_status()
            figures["closed_first"] = timed_get()
            times = sorted(timed_get() for _ in range(requests))
            figures["bytes"] = len(client.get("/v1/diagnose/session", params=params,
                                              headers=auth).content)
    finally:
        server.stop()
    figures["p50"] = statistics.median(times)
    figures["p95"] = times[min(len(times) - 1, int(len(times) * 0.95))]
    return figures


def start_postgres(work: Path) -> str | None:
    script = ROOT / "scripts" / "pg.sh"
    if not script.exists():
        print("PostgreSQL: skipped (scripts/pg.sh is not there)")
        return None
    pg_dir = Path(tempfile.mkdtemp(prefix="twc-bench-pg-", dir="/tmp"))
    done = subprocess.run(["bash", str(script), "start", str(pg_dir)], capture_output=True,
                          text=True, timeout=120, check=False)
    if done.returncode != 0:
        print(f"PostgreSQL: skipped ({done.stderr.strip() or 'pg.sh failed'})")
        return None
    (work / "pg-dir").write_text(str(pg_dir))
    return done.stdout.strip().splitlines()[-1]


def stop_postgres(work: Path) -> None:
    marker = work / "pg-dir"
    if marker.exists():
        pg_dir = marker.read_text()
        done = subprocess.run(["bash", str(ROOT / "scripts" / "pg.sh"), "stop", pg_dir],
                              capture_output=True, timeout=120, check=False)
        if done.returncode == 0:
            shutil.rmtree(pg_dir, ignore_errors=True)


def fresh_database(dsn: str, name: str) -> str:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    base, _, _db = dsn.rpartition("/")
    return f"{base}/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=250, help="segments per client")
    parser.add_argument("--diagnose-requests", type=int, default=40)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="twc-bench-"))
    print(f"collector benchmark ({os.cpu_count()} CPUs)")
    started = time.perf_counter()
    keys = [SigningKey.generate() for _ in range(max(CLIENTS))]
    bodies = []
    for n, key in enumerate(keys):
        segments = make_segments(work / f"laptop-{n}.db", key, f"sess-{n}",
                                 events=args.segments * RECORDS_PER_SEGMENT,
                                 seal_every=RECORDS_PER_SEGMENT - 1)
        sizes = {len(s.records) for s in segments[1:]}
        path = work / f"bodies-{n}.jsonl"
        write_bodies(path, segments[: args.segments], key)
        bodies.append(path)
    print(f"  {len(keys)} ledgers, {args.segments} segments each of {sorted(sizes)} records, "
          f"made in {time.perf_counter() - started:.1f} s")

    dsn = start_postgres(work)
    try:
        targets = [("sqlite", lambda run: str(work / f"collector-{run}.db"))]
        if dsn is not None:
            targets.append(("postgresql", lambda run: fresh_database(dsn, f"bench_{run}")))
        print(f"\ningest: segments/s over HTTP, {RECORDS_PER_SEGMENT} records each "
              f"(target: >= {TARGET_SQLITE}/s on SQLite; PostgreSQL scales with clients)")
        for kind, database in targets:
            for clients in CLIENTS:
                rate, failures = ingest_rate(database(f"{kind}_{clients}"), work, bodies, clients)
                note = f"  ({failures} failed)" if failures else ""
                print(f"  {kind:<10} {clients} client{'s' if clients > 1 else ' '}  "
                      f"{rate:8.0f} segments/s  {rate * RECORDS_PER_SEGMENT:9.0f} events/s{note}")

        key = SigningKey.generate()
        big = make_segments(work / "big.db", key, "sess-big", events=DIAGNOSE_EVENTS,
                            seal_every=1000, close=True)
        events = big[-1].last_seq + 1
        print(f"\ndiagnose: one session of {events} events, over HTTP "
              f"(target: <= {TARGET_DIAGNOSE_MS} ms)")
        for kind, database in targets:
            f = diagnose_latency(database(f"{kind}_diagnose"), big, key,
                                 args.diagnose_requests, work)
            print(f"  {kind:<10} p50 {f['p50']:5.1f} ms  p95 {f['p95']:5.1f} ms "
                  f"({f['bytes'] / 1e6:.1f} MB answers)")
            print(f"  {'':<10} built on request while open: {f['open']:.0f} ms; first request "
                  f"right after the final segment: {f['closed_first']:.0f} ms")
    finally:
        stop_postgres(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
