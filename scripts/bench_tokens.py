"""Execution token mint and verify latency (Ed25519 over the DSSE PAE of JCS claims).

Usage: ``.venv/bin/python scripts/bench_tokens.py [N]`` from the repository root. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trackwrap.crypto import SigningKey, mint_token, verify_token


def _summary(name: str, samples: list[float]) -> str:
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return (
        f"{name:<7} median {statistics.median(samples):6.1f} us   p99 {p99:6.1f} us   "
        f"({len(samples)} runs)"
    )


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    key = SigningKey.generate()
    keys = {key.key_id: key.public_raw}
    now = time.time_ns() // 1_000_000
    claims: dict[str, object] = {
        "v": 1,
        "session": "01J0SESSION0000000000000000",
        "seq": 1234,
        "action_hash": "sha256:" + "ab" * 32,
        "policy": "sha256:" + "cd" * 32,
        "manifest": "sha256:" + "ef" * 32,
        "iat_ms": now,
        "exp_ms": now + 30_000,
        "jti": "0123456789abcdef",
    }
    mint, verify = [], []
    token = mint_token(key, claims)
    for _ in range(count):
        start = time.perf_counter_ns()
        token = mint_token(key, claims)
        mint.append((time.perf_counter_ns() - start) / 1000)
        start = time.perf_counter_ns()
        verify_token(token, keys=keys, now_ms=now, action_hash=str(claims["action_hash"]))
        verify.append((time.perf_counter_ns() - start) / 1000)
    print(_summary("mint", mint))
    print(_summary("verify", verify))
    print(f"token   {len(token)} chars")


if __name__ == "__main__":
    main()
