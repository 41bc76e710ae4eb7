"""What one ``trackwrap hook claude-code`` call costs, interpreter start included.

Prints figures; asserts nothing. Each sample is a fresh process, as Claude Code starts one per
tool call, with the hook input on stdin and a real ledger in a throwaway TRACKWRAP_HOME:
  python -c pass    the bare interpreter (baseline, same run)
  Read              a read inside the workspace (allowed; no shell parsing)
  Bash              `pytest -q` (allowed; the shell inspector parses it with tree-sitter)

Usage: .venv/bin/python scripts/bench_hook.py [--calls 40]
       .venv/bin/python scripts/bench_hook.py --importtime   # what dominates one Bash call
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


def _input(tool: str, arguments: dict[str, object], workspace: Path) -> bytes:
    return json.dumps({
        "session_id": "bench", "transcript_path": "", "cwd": str(workspace),
        "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": tool,
        "tool_input": arguments, "tool_use_id": "toolu_bench",
    }).encode()


def _time(argv: list[str], stdin: bytes, env: dict[str, str], cwd: Path, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        done = subprocess.run(argv, input=stdin, capture_output=True, env=env, cwd=cwd,
                              check=False)
        samples.append((time.perf_counter() - start) * 1000)
        if done.returncode != 0:
            raise SystemExit(f"{argv} failed: {done.stderr.decode(errors='replace')}")
    return samples


def _row(name: str, samples: list[float], base: float | None = None) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    extra = f"   (+{p50 - base:6.1f} ms over the bare interpreter)" if base is not None else ""
    return f"  {name:<16} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms{extra}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--importtime", action="store_true",
                        help="print the slowest imports of one Bash call instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trackwrap-bench-hook-") as tmp:
        base = Path(tmp)
        workspace = base / "ws"
        workspace.mkdir()
        (workspace / "app.py").write_text("print('hi')\n")
        env = {**os.environ, "HOME": str(base), "TRACKWRAP_HOME": str(base / "home"),
               "TRACKWRAP_KEY_BACKEND": "file", "PYTHONPATH": str(ROOT)}
        for name in [n for n in env if n.startswith(("TRACKWRAP_SESSION", "CLAUDE_"))]:
            del env[name]
        # As installed: byte code compiled once and reused (kept out of the source tree).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
        hook = [sys.executable, "-m", "trackwrap", "hook", "claude-code"]
        read = _input("Read", {"file_path": str(workspace / "app.py")}, workspace)
        bash = _input("Bash", {"command": "pytest -q"}, workspace)
        if args.importtime:
            _time(hook, bash, env, workspace, 2)
            done = subprocess.run([sys.executable, "-X", "importtime", *hook[1:]], input=bash,
                                  capture_output=True, env=env, cwd=workspace, check=False)
            rows = [line.split("|") for line in done.stderr.decode().splitlines()
                    if line.startswith("import time:") and "|" in line]
            timed = [(int(r[1]), r[2].rstrip()) for r in rows if r[1].strip().isdigit()]
            print("slowest imports of one Bash hook call (cumulative µs):")
            for cumulative, name in sorted(timed, reverse=True)[:25]:
                print(f"  {cumulative:>8}  {name}")
            return
        # Warm-up: byte code written, the ledger and the day's session exist.
        _time(hook, read, env, workspace, 2)
        _time(hook, bash, env, workspace, 2)
        bare = _time([sys.executable, "-c", "pass"], b"", env, workspace, args.calls)
        reads = _time(hook, read, env, workspace, args.calls)
        bashes = _time(hook, bash, env, workspace, args.calls)
        baseline = statistics.median(bare)
        print(f"trackwrap hook claude-code, {args.calls} calls each, one process per call "
              f"(target: p95 ≤ 100 ms):")
        print(_row("python -c pass", bare))
        print(_row("Read", reads, baseline))
        print(_row("Bash pytest -q", bashes, baseline))


if __name__ == "__main__":
    main()
