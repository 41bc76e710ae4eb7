"""Median time of Pipeline.evaluate for a read_text_file inside the workspace (a figure only)."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from trackwrap.config import RealFileSystem, default_profiles_dir, load_policy, load_server_profiles
from trackwrap.inspectors import default_inspectors
from trackwrap.policy import Context, Outcome, Pipeline


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    pipeline = Pipeline(
        profiles=load_server_profiles([default_profiles_dir()]),
        policy=load_policy([default_profiles_dir() / "policy"]),
        inspectors=default_inspectors(),
    )
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp).resolve() / "code" / "payments"
        (workspace / "src").mkdir(parents=True)
        (workspace / "src" / "app.py").write_text("x = 1\n")
        context = Context(
            workspace=str(workspace),
            roots=(str(workspace),),
            cwd=str(workspace),
            home=str(Path(tmp).resolve()),
            now=datetime.now(UTC),
            fs=RealFileSystem(),
        )
        arguments = {"path": str(workspace / "src" / "app.py")}
        samples = []
        for _ in range(rounds):
            start = time.perf_counter_ns()
            decision = pipeline.evaluate(
                server="filesystem", tool="read_text_file", arguments=arguments, context=context
            )
            samples.append(time.perf_counter_ns() - start)
        assert decision.outcome is Outcome.ALLOW, decision.reason
    print(
        f"Pipeline.evaluate read_text_file inside workspace: median "
        f"{statistics.median(samples) / 1000:.1f} µs, p99 "
        f"{statistics.quantiles(samples, n=100)[98] / 1000:.1f} µs over {rounds} calls"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
