"""Round-trip cost of trackwrap's relay, against baselines measured in the same run.

Prints a table; asserts nothing. Paths measured, each over N calls after a warm-up:
  direct          client -> echo server
  byte relay      client -> plain byte relay -> echo server (the baseline a relay costs)
  trackwrap allow client -> trackwrap (pipeline + fsynced ledger row) -> echo server
  trackwrap deny  client -> trackwrap (pipeline + fsynced ledger row), answered by trackwrap
Also: `trackwrap --help` wall time and the extra time to the first `initialize` response.

Usage: .venv/bin/python scripts/bench_relay.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ECHO = [sys.executable, "-m", "tests.servers.echo"]
SDK_ECHO = [sys.executable, "-m", "tests.servers.sdk_echo"]
SERVERS = {
    "SDK echo server (mcp MCPServer)": SDK_ECHO,
    "raw echo server (no SDK)": ECHO,
}
POLICY = ROOT / "tests" / "data" / "echo-policy.yaml"


def trackwrap(*server: str) -> list[str]:
    return [sys.executable, "-m", "trackwrap", "--server", "echo", "--policy", str(POLICY),
            "--", *server]


def byte_relay(*server: str) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "_byte_relay.py"), "--", *server]


class Peer:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, bufsize=0, cwd=ROOT, env=env)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        self.buf = b""

    def roundtrip(self, line: bytes) -> bytes:
        os.write(self.wfd, line)
        while b"\n" not in self.buf:
            chunk = os.read(self.rfd, 1 << 16)
            if not chunk:
                raise RuntimeError("peer closed")
            self.buf += chunk
        out, _, self.buf = self.buf.partition(b"\n")
        return out

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def measure(argv: list[str], env: dict[str, str], request: dict, calls: int,
            warmup: int) -> list[float]:
    peer = Peer(argv, env)
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "bench", "version": "1"}}}
    peer.roundtrip(json.dumps(init).encode() + b"\n")
    samples = []
    for i in range(warmup + calls):
        req = dict(request, id=i + 1)
        line = json.dumps(req).encode() + b"\n"
        t0 = time.perf_counter_ns()
        resp = peer.roundtrip(line)
        t1 = time.perf_counter_ns()
        if i == 0 and b'"result"' not in resp:
            raise RuntimeError(f"unexpected response: {resp[:200]!r}")
        if i >= warmup:
            samples.append((t1 - t0) / 1000)
    peer.close()
    return samples


def first_response_ms(argv: list[str], env: dict[str, str], runs: int) -> float:
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "bench", "version": "1"}}}
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        peer = Peer(argv, env)
        peer.roundtrip(json.dumps(init).encode() + b"\n")
        times.append((time.perf_counter() - t0) * 1000)
        peer.close()
    return statistics.median(times)


def wall_ms(argv: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def signed_session(home: str, env: dict[str, str]) -> None:
    """Start a signed session for ROOT (where the benchmark's wrappers run): a publisher key,
    trusted, signing a manifest that allows the echo server's tools with a large budget."""
    def tw(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "trackwrap", *args], env=env, cwd=ROOT,
                              capture_output=True, text=True, check=True)
        return done.stdout

    key = os.path.join(home, "publisher.key")
    public = tw("keys", "generate", "--out", key).split("public key ")[1].split()[0]
    tw("trust", "add", "--publisher", "bench", "--key", public)
    manifest = os.path.join(home, "bench.yaml")
    with open(manifest, "w") as f:
        f.write(f'agent: bench\nmanifest:\n  role: developer\n  workspace: "{ROOT}"\n'
                "  allowed_tools: [echo.*]\n  budget:\n    tool_calls: 100000000\n")
    tw("manifest", "sign", "--key", key, manifest)
    tw("session", "start", "--manifest", manifest + ".dsse.json", "--workspace", str(ROOT))


def fsynced_commit_us(directory: str, n: int = 1000) -> float:
    """The floor the allow path stands on: one SQLite WAL commit with synchronous=FULL."""
    import sqlite3

    conn = sqlite3.connect(os.path.join(directory, "floor.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (s TEXT, n INTEGER, b BLOB, PRIMARY KEY (s, n)) WITHOUT ROWID")
    samples = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?, ?)", ("s", i, b"x" * 600))
        conn.execute("COMMIT")
        samples.append((time.perf_counter_ns() - t0) / 1000)
    conn.close()
    return statistics.median(samples)


def p(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1] if q < 100 else max(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--runs", type=int, default=10)
    opts = ap.parse_args()
    home = tempfile.mkdtemp(prefix="trackwrap-bench-")
    env = {**os.environ, "TRACKWRAP_HOME": home, "TRACKWRAP_KEY_BACKEND": "file"}
    echo = {"jsonrpc": "2.0", "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": "hi"}}}
    deny = {"jsonrpc": "2.0", "method": "tools/call",
            "params": {"name": "write_file", "arguments": {"path": "/etc/x", "content": "x"}}}
    for label, server in SERVERS.items():
        rows = [
            ("direct", server, echo),
            ("byte relay (baseline)", byte_relay(*server), echo),
            ("trackwrap allow", trackwrap(*server), echo),
            ("trackwrap deny", trackwrap(*server), deny),
            ("allow, signed session", trackwrap(*server), echo),
        ]
        results = {}
        print(f"\n{label}: one tools/call round trip, {opts.calls} calls after "
              f"{opts.warmup} warm-up")
        print(f"{'path':<24}{'p50 µs':>10}{'p99 µs':>10}{'Δp50 vs direct':>16}")
        for name, argv, req in rows:
            if name == "allow, signed session":
                # manifest scope, exact budget and an execution token on every call
                session_env = {**env, "TRACKWRAP_HOME": tempfile.mkdtemp(prefix="tw-bench-")}
                signed_session(session_env["TRACKWRAP_HOME"], session_env)
                s = measure(argv, session_env, req, opts.calls, opts.warmup)
            else:
                s = measure(argv, env, req, opts.calls, opts.warmup)
            results[name] = statistics.median(s)
            delta = results[name] - results["direct"]
            print(f"{name:<24}{statistics.median(s):>10.0f}{p(s, 99):>10.0f}{delta:>+16.0f}")
        over = results["trackwrap allow"] - results["direct"]
        relay = results["byte relay (baseline)"] - results["direct"]
        print(f"trackwrap allow adds {over:.0f} µs p50 over direct (target ≤ 400 µs; "
              f"the byte relay alone adds {relay:.0f})")
        signed = results["allow, signed session"] - results["direct"]
        print(f"with a signed session and a token per call: {signed:.0f} µs over direct "
              "(target ≤ 400 µs)")
        print(f"deny path / direct = {results['trackwrap deny'] / results['direct']:.2f} "
              "(target < 1.00: a deny is answered without the server)")
    print(f"\nfloor on this disk: one fsynced SQLite commit = {fsynced_commit_us(home):.0f} µs "
          "(the allow path records its decision this way before forwarding)")
    print()
    bare = wall_ms([sys.executable, "-c", "pass"], env, opts.runs)
    helpt = wall_ms([sys.executable, "-m", "trackwrap", "--help"], env, opts.runs)
    print(f"`trackwrap --help`: {helpt:.0f} ms median (bare interpreter {bare:.0f} ms; "
          "target ≤ 150 ms)")
    d = first_response_ms(ECHO, env, opts.runs)
    t = first_response_ms(trackwrap(*ECHO), env, opts.runs)
    print(f"time to first initialize response: direct {d:.0f} ms, trackwrap {t:.0f} ms, "
          f"extra {t - d:.0f} ms (target ≤ 150 ms)")


if __name__ == "__main__":
    main()
