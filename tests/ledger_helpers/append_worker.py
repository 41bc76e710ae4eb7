"""Append ``count`` records (0: until killed) to one session of a ledger, as a separate process.

Usage: ``python -m tests.ledger_helpers.append_worker DB HOME SESSION WORKER COUNT SEAL_EVERY``.
The device key comes from a file-backed KeyStore under HOME, loaded at the first seal.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from trackwrap.crypto import KeyStore
from trackwrap.ledger import Ledger


def _clock_ms() -> int:
    return time.time_ns() // 1_000_000


def main(argv: list[str]) -> int:
    db, home, session, worker, count, seal_every = argv
    store = KeyStore(Path(home), backend="file", warn=lambda _message: None)
    ledger = Ledger.open(
        Path(db), signer=store.device_key, clock_ms=_clock_ms, seal_every=int(seal_every)
    )
    try:
        ledger.ensure_session(session, genesis={"agent": {"harness": "test", "pid": 0}})
        n = 0
        while int(count) == 0 or n < int(count):
            ledger.append(
                session,
                {"kind": "tool_call.decision", "worker": int(worker), "n": n, "decision": "allow"},
            )
            n += 1
    finally:
        ledger.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
