"""What an approval costs, against a plain deny measured in the same run.

Prints figures; asserts nothing. Through a real wrapper in front of the outbox demo server:
  deny              a call policy denies outright (the baseline: answered by trackwrap)
  ask               a call that needs approval: approval.requested and the decision recorded,
                    answered as pending after a 10 ms wait (--approval-wait 0.01)
  decision → sent   after a person approves (signed, recorded), how long until the held call
                    reaches the server and its answer reaches the client

Usage: .venv/bin/python scripts/bench_approvals.py [--calls 30] [--approvals 10]
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
sys.path.insert(0, str(ROOT))

from trackwrap.approvals import ApprovalDesk, ApproverKey, LedgerApprovals  # noqa: E402
from trackwrap.crypto import KeyStore  # noqa: E402
from trackwrap.ledger import Ledger  # noqa: E402

POLICY = ROOT / "tests" / "data" / "approval-policy.yaml"


class Wrapper:
    def __init__(self, home: Path, workspace: Path, wait: str) -> None:
        env = {**os.environ, "TRACKWRAP_HOME": str(home), "TRACKWRAP_KEY_BACKEND": "file"}
        argv = [sys.executable, "-m", "trackwrap", "--server", "outbox", "--policy", str(POLICY),
                "--workspace", str(workspace), "--approval-wait", wait, "--",
                sys.executable, "-m", "trackwrap.demo_servers.outbox", "--outbox",
                str(workspace / "outbox")]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, bufsize=0, cwd=ROOT, env=env)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.out = self.proc.stdout
        self.send({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                   "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                              "clientInfo": {"name": "bench", "version": "1"}}})
        self.recv()

    def send(self, msg: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")

    def recv(self) -> dict[str, object]:
        while True:
            msg = json.loads(self.out.readline())
            if msg.get("method") != "notifications/progress":
                return msg

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def email(msg_id: int, to: str) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": msg_id, "method": "tools/call",
            "params": {"name": "send_email",
                       "arguments": {"to": to, "subject": f"s{msg_id}", "body": "b"}}}


def query(msg_id: int) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": msg_id, "method": "tools/call",
            "params": {"name": "query_db", "arguments": {"host": "db", "sql": "SELECT 1"}}}


def timed(wrapper: Wrapper, msg: dict[str, object]) -> float:
    start = time.perf_counter()
    wrapper.send(msg)
    wrapper.recv()
    return (time.perf_counter() - start) * 1e6


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--approvals", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home, workspace = Path(tmp) / "home", Path(tmp) / "ws"
        home.mkdir()
        workspace.mkdir()
        quick = Wrapper(home, workspace, "0.01")
        timed(quick, query(1))  # warm-up: the gate is built on the first call
        deny = [timed(quick, query(i)) for i in range(2, 2 + args.calls)]
        ask = [timed(quick, email(i, f"user{i}@example.org")) for i in range(args.calls)]
        quick.close()

        device = KeyStore(home, backend="file", warn=lambda _m: None).device_key()
        ledger = Ledger.open(home / "ledger.db", signer=lambda: device,
                             clock_ms=lambda: time.time_ns() // 1_000_000)
        desk = ApprovalDesk(
            LedgerApprovals(ledger), clock_ms=lambda: time.time_ns() // 1_000_000,
            keys=lambda: {device.key_id: ApproverKey("bench", device.public_raw, device=True)},
        )
        held = Wrapper(home, workspace, "30")
        latency: list[float] = []
        for i in range(args.approvals):
            target = f"held{i}@example.org"
            held.send(email(1000 + i, target))
            while not (pending := [a for a in ledger.approvals(states=("pending",))
                                   if a.request.get("target") == target]):
                time.sleep(0.01)
            desk.decide(pending[0].id, key=device, verdict="approve", approver="bench",
                        reason="")
            start = time.perf_counter()
            answer = held.recv()
            latency.append((time.perf_counter() - start) * 1e6)
            result = answer.get("result")
            if not isinstance(result, dict) or result.get("isError"):
                raise SystemExit(f"the approved call was not forwarded: {answer}")
        held.close()
        ledger.close()
    print(f"{'path':<34}{'p50 µs':>10}{'max µs':>10}")
    for name, samples in (("deny (baseline)", deny), ("ask, answered after a 10 ms wait", ask),
                          ("decision recorded -> call answered", latency)):
        print(f"{name:<34}{p50(samples):>10.0f}{max(samples):>10.0f}")
    print(f"asking costs {(p50(ask) - 10_000) / 1000:.1f} ms beyond the 10 ms wait "
          f"({p50(deny) / 1000:.1f} ms for a plain deny); a held call is released "
          f"{p50(latency) / 1000:.0f} ms (p50) after the decision is recorded "
          "(the wrapper looks every 50 ms)")


if __name__ == "__main__":
    main()
