"""Spend from one session's tool-call budget with ``append_decision``, as a separate process.

Usage: ``python -m tests.ledger_helpers.budget_worker DB HOME SESSION WORKER ATTEMPTS BUDGET``.
Each attempt forwards (spending one tool call and 10 bytes) only while the session has spent
fewer than BUDGET tool calls, and records what it saw (``seen``). Attempts go in lockstep with
the test: once the ledger is open the worker prints ``ready``, then makes one attempt per line it
reads on stdin and answers ``1`` (forwarded) or ``0`` (denied) for each, so that in every round
all workers race for the ledger at once (SQLite's busy handler is not fair: free-running workers
would take turns instead).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path

from trackwrap.crypto import KeyStore
from trackwrap.ledger import Ledger, SessionState, Usage

BYTES_PER_CALL = 10


def _clock_ms() -> int:
    return time.time_ns() // 1_000_000


def main(argv: list[str]) -> int:
    db, home, session, worker, attempts, budget = argv
    store = KeyStore(Path(home), backend="file", warn=lambda _message: None)
    with Ledger.open(Path(db), signer=store.device_key, clock_ms=_clock_ms, seal_every=25) as led:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        for n in range(int(attempts)):
            if not sys.stdin.readline():  # the test gave up
                break
            outcome: list[bool] = []

            def build(
                state: SessionState, seq: int, n: int = n, outcome: list[bool] = outcome
            ) -> tuple[Mapping[str, object], Usage]:
                allowed = state.tool_calls < int(budget)
                outcome.append(allowed)
                body = {
                    "kind": "tool_call.decision",
                    "worker": int(worker),
                    "n": n,
                    "seen": state.tool_calls,
                    "expected_seq": seq,
                    "decision": "allow" if allowed else "deny",
                    "forwarded": allowed,
                }
                usage = Usage(tool_calls=1, bytes_out=BYTES_PER_CALL) if allowed else Usage()
                return body, usage

            led.append_decision(session, build)
            sys.stdout.write(f"{int(outcome[-1])}\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
