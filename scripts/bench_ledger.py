"""Append latency of the audit ledger (WAL, synchronous=FULL, one transaction per append).

Usage: ``.venv/bin/python scripts/bench_ledger.py [N]`` from the repository root. Prints figures;
asserts nothing. Seals every 1,000 records, as the relay does by default.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trackwrap.crypto import SigningKey
from trackwrap.ledger import Ledger, verify_ledger


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    key = SigningKey.generate()
    body = {
        "kind": "tool_call.decision",
        "server": "filesystem",
        "tool": "read_file",
        "action_hash": "sha256:" + "ab" * 32,
        "decision": "allow",
        "rule": "FS-READ-001",
        "policy_hash": "sha256:" + "cd" * 32,
        "budget": {"calls": 17, "cost_milli": 1200},
    }
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ledger.db"
        with Ledger.open(
            db, signer=lambda: key, clock_ms=lambda: time.time_ns() // 1_000_000
        ) as ledger:
            ledger.ensure_session("bench", genesis={"agent": {"harness": "bench"}})
            samples = []
            for _ in range(count):
                start = time.perf_counter_ns()
                ledger.append("bench", body)
                samples.append((time.perf_counter_ns() - start) / 1000)
            ledger.seal("bench", final=True)
        start = time.perf_counter()
        report = verify_ledger(db)
        verify_s = time.perf_counter() - start
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"appends: {count} (WAL, synchronous=FULL, seal every 1000)")
    print(
        f"append latency: median {statistics.median(samples):.0f} us, "
        f"p99 {p99:.0f} us, max {samples[-1]:.0f} us"
    )
    print(f"throughput: {count / (sum(samples) / 1e6):.0f} appends/s")
    print(
        f"verify: {verify_s * 1000:.0f} ms for {report.sessions[0].events} records, "
        f"exit {report.exit_code}"
    )


if __name__ == "__main__":
    main()
