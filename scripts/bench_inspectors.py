"""Throughput of the secrets scanner and inspector (figures only; tests never time anything).

Prints MB/s over ~10 MB of synthetic mixed text (Python code, prose, JSON, log lines, a base64
image blob, a few planted secrets) scanned as one string and as 64 KB files, and the median µs
of SecretsInspector.inspect for a 2 KB write_file argument, each beside a same-run baseline:
one plain regex pass (``AKIA[0-9A-Z]{16}``) over the same text. Targets: >= 40 MB/s, <= 0.2 ms.

    .venv/bin/python scripts/bench_inspectors.py [MEGABYTES] [ROUNDS]
"""

from __future__ import annotations

import base64
import json
import random
import re
import statistics
import string
import sys
import time
from datetime import UTC, datetime

from trackwrap.inspectors._secret_rules import SecretScanner, checksum_token
from trackwrap.inspectors._secrets import SecretsInspector
from trackwrap.policy import Action, Context

_ALNUM = string.ascii_letters + string.digits
_PROSE = (
    "the agent reads a file and writes the result back to the workspace while the relay records "
    "each call with its decision token budget policy secret rotation key password review merge "
    "branch deploy release build cache index query latency request response server client user "
    "session manifest approval webhook github slack stripe amazon google access credentials"
)
_WORDS = _PROSE.split(" ")
_CODE = (
    "def {n}(self, value: int, *, token_budget: int = 4096) -> dict[str, object]:\n"
    '    """Return the {n} of value."""\n'
    "    password_hash = hashlib.sha256(value.to_bytes(8, 'big')).hexdigest()\n"
    "    api_key = os.environ.get('API_KEY')\n"
    "    secret = config.db.password\n"
    "    if value > 42 and self.cache.get(value) is None:\n"
    "        return {{'result': value * 2, 'url': 'https://example.com/{n}'}}\n"
    "    return {{}}\n\n"
)
_LOG = (
    "2026-03-02T10:{m:02d}:{s:02d}.{ms:03d}Z INFO relay call id={i} tool=read_text_file "
    "server=filesystem decision=allow latency_ms={ms} path=/home/u/code/payments/src/app.py "
    "request_id={uuid} commit={sha}\n"
)


def _random(rng: random.Random, n: int, alphabet: str = _ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _secrets(rng: random.Random) -> list[str]:
    payload = _random(rng, 30)
    upper = string.ascii_uppercase + "234567"
    return [
        "AKIA" + _random(rng, 16, upper),
        "ghp_" + payload + checksum_token(payload),
        "github_pat_" + _random(rng, 22) + "_" + _random(rng, 59),
        "glpat-" + _random(rng, 20),
        "sk_live_" + _random(rng, 24),
        "xoxb-123456789012-1234567890123-" + _random(rng, 24),
        "https://hooks.slack.com/services/T01ABCDEF/B02GHIJKL/" + _random(rng, 24),
        "sk-proj-" + _random(rng, 40) + "T3BlbkFJ" + _random(rng, 40),
        "sk-ant-api03-" + _random(rng, 93) + "AA",
        "AIza" + _random(rng, 35),
        "npm_" + _random(rng, 36),
        "hf_" + _random(rng, 34, string.ascii_letters),
        "postgres://app:" + _random(rng, 18) + "@db.internal:5432/payments",
    ]


def _corpus(megabytes: float, rng: random.Random) -> tuple[str, int]:
    target = int(megabytes * 1_000_000)
    parts: list[str] = []
    size = planted = 0
    blob = base64.b64encode(rng.randbytes(200_000)).decode()
    parts.append(f'{{"image": "{blob}"}}\n')
    size += len(parts[-1])
    i = 0
    while size < target:
        i += 1
        kind = i % 4
        if kind == 0:
            chunk = _CODE.format(n=f"compute_{i}")
        elif kind == 1:
            chunk = " ".join(rng.choice(_WORDS) for _ in range(80)) + ".\n"
        elif kind == 2:
            record = {"id": i, "name": _random(rng, 12), "tags": ["a", "b"], "ok": True}
            chunk = json.dumps(record) + "\n"
        else:
            chunk = _LOG.format(
                m=i % 60,
                s=i % 59,
                ms=i % 1000,
                i=i,
                uuid="123e4567-e89b-12d3-a456-426614174000",
                sha="9fceb02d0ae598e95dc970b74767f19372d61af8",
            )
        if i % 2_000 == 0:
            secrets = _secrets(rng)
            chunk += "config = " + json.dumps(secrets) + "\n"
            planted += len(secrets)
        parts.append(chunk)
        size += len(chunk)
    return "".join(parts), planted


def _best(fn: object, rounds: int = 3) -> float:
    assert callable(fn)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


class _NoFileSystem:
    def realpath(self, path: str) -> str:
        return path


def main() -> int:
    megabytes = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5_000
    rng = random.Random(20260302)
    text, planted = _corpus(megabytes, rng)
    mb = len(text.encode()) / 1e6
    scanner = SecretScanner()
    baseline = re.compile(r"AKIA[0-9A-Z]{16}")

    found = len(scanner.scan(text))
    whole = _best(lambda: scanner.scan(text))
    files = [text[i : i + 65_536] for i in range(0, len(text), 65_536)]
    chunked = _best(lambda: [scanner.scan(f) for f in files])
    base = _best(lambda: baseline.findall(text))
    print(f"corpus: {mb:.1f} MB, {planted} planted secrets, {found} found")
    print(f"secrets scan, one string : {mb / whole:7.1f} MB/s ({whole * 1000:.0f} ms)")
    print(f"secrets scan, 64 KB files: {mb / chunked:7.1f} MB/s ({chunked * 1000:.0f} ms)")
    print(f"baseline single regex    : {mb / base:7.1f} MB/s ({base * 1000:.0f} ms)")

    start_at = rng.randrange(0, len(text) - 2048)
    content = text[start_at : start_at + 2048]
    action = Action(
        server="filesystem",
        tool="write_file",
        kind="filesystem.write",
        arguments={"path": "/home/u/code/payments/src/app.py", "content": content},
        paths=(),
        commands=(),
        command_text=(),
        branches=(),
        urls=(),
        destinations=(),
        action_hash="sha256:0",
    )
    context = Context(
        workspace="/home/u/code/payments",
        roots=(),
        cwd="/home/u/code/payments",
        home="/home/u",
        now=datetime.now(UTC),
        fs=_NoFileSystem(),
    )
    inspector = SecretsInspector()
    samples: list[int] = []
    base_samples: list[int] = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        inspector.inspect(action, context)
        t1 = time.perf_counter_ns()
        baseline.findall(content)
        t2 = time.perf_counter_ns()
        samples.append(t1 - t0)
        base_samples.append(t2 - t1)
    print(
        f"SecretsInspector.inspect, 2 KB argument: median {statistics.median(samples) / 1000:.1f}"
        f" µs, p99 {statistics.quantiles(samples, n=100)[98] / 1000:.1f} µs over {rounds} calls"
    )
    print(f"baseline single regex, 2 KB: median {statistics.median(base_samples) / 1000:.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
