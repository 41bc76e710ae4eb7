"""Score the labelled inspector corpus (``tests/corpus/*.jsonl``) through the real pipeline.

Every case is evaluated in process exactly as ``trackwrap check`` does it
(``build_governance()`` then ``pipeline.evaluate(...)`` with ``context_factory``), inside a
throw-away sandbox this script builds:

    <root>/project/            the workspace (cwd of the simulated server, ``$WS``)
        README.md src/ tests/ docs/ build/ node_modules/ secrets.md .env .git/{config,hooks/}
        leaky/settings.py      a planted (generated) Stripe key, for ``git add`` staging cases
        link-out -> <root>/outside        symlink escaping the workspace
        ssh-link -> <root>/home/.ssh      symlink into a credential store
        rc-link -> <root>/home/.bashrc    symlink onto a shell start-up file
        inner-link -> src                 symlink that stays inside
    <root>/project-evil/       prefix-collision sibling (CVE-2025-53110)
    <root>/outside/            anything else outside
    <root>/home/               ``$HOME`` for the evaluation (.ssh, .aws, .bashrc, .npmrc, …)

The sandbox is created outside ``/tmp`` and ``/var/tmp`` when it can be (``/dev/shm`` by
default, or ``$TRACKWRAP_CORPUS_DIR``): the shell inspector treats anything under ``/tmp`` as a
scratch area where recursive deletes are fine, which would hide every ``rm -rf ..`` case.

Placeholders in argument strings: ``$WS``, ``$HOME``, ``$ROOT`` (literal shell variables are
written ``${HOME}``), ``<<SECRET:kind>>`` (a fresh, seeded fake credential of that format — the
repository stores no live-looking token), ``<<SECRET_B64:kind>>`` (base64 of ``kind: secret``),
``<<SECRET_B64X2:kind>>`` (base64 twice), ``<<SECRET_HEX:kind>>``, ``<<SECRET_REV:kind>>``,
``<<SECRET_SPLIT:kind>>`` (``first" + "second``), ``<<SECRET_URLENC:kind>>``,
``<<SECRET_ZW:kind>>`` (a zero-width space in the middle) and ``<<REPEAT:n:text>>``.

Scoring is per inspector: a case is *flagged* when any finding of its ``inspector`` is present.
An attack passes when it is flagged (with ``expect_rule`` among that inspector's rules, if given)
and the final outcome is ``deny``; a benign case passes when its inspector reports nothing (the
final outcome may still be a deny: the default policy allows only an allowlist of commands).

Usage: ``python scripts/eval_corpus.py [CORPUS_FILE_OR_DIR ...] [--all]``. Always exits 0.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import json
import os
import random
import re
import shutil
import string
import sys
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trackwrap.cli._build import build_governance, context_factory

__all__ = [
    "DEFAULT_CORPUS",
    "INSPECTORS",
    "CaseResult",
    "Sandbox",
    "evaluate_corpus",
    "load_corpus",
    "main",
    "score",
]

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus"
INSPECTORS = ("paths", "secrets", "shell", "git")
LABELS = ("attack", "benign")

# ---------------------------------------------------------------------------------------------
# generated credentials (seeded, so every run sees the same values; nothing live-looking is
# stored in the repository)

_ALNUM = string.ascii_letters + string.digits
_B32 = string.ascii_uppercase + "234567"
_B64 = _ALNUM + "+/"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _rand(seed: str, n: int, alphabet: str = _ALNUM) -> str:
    rng = random.Random(f"trackwrap-corpus:{seed}")
    return "".join(rng.choice(alphabet) for _ in range(n))


def _crc_suffix(payload: str) -> str:
    number = zlib.crc32(payload.encode("ascii"))
    digits = ""
    while number:
        number, digit = divmod(number, 62)
        digits = _BASE62[digit] + digits
    return (digits or "0").rjust(6, "0")


def _checksummed(prefix: str, seed: str) -> str:
    payload = _rand(seed, 30)
    return prefix + payload + _crc_suffix(payload)


def _pem(seed: str, kind: str = "RSA ") -> str:
    lines = "\n".join(_rand(f"{seed}:{i}", 64, _B64) for i in range(6))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{lines}\n-----END {kind}PRIVATE KEY-----\n"


def _gcp_json(seed: str) -> str:
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "payments-prod",
            "private_key_id": _rand(seed, 40, "0123456789abcdef"),
            "private_key": _pem(seed, kind=""),
            "client_email": "ci@payments-prod.iam.gserviceaccount.com",
        },
        indent=2,
    )


_SECRETS = {
    "github-token": lambda s: _checksummed("ghp_", s),
    "github-oauth": lambda s: _checksummed("gho_", s),
    "github-pat": lambda s: "github_pat_" + _rand(s, 22) + "_" + _rand(s + "b", 59),
    "gitlab-pat": lambda s: "glpat-" + _rand(s, 20),
    "aws-id": lambda s: "AKIA" + _rand(s, 16, _B32),
    "aws-secret": lambda s: _rand(s, 40, _B64),
    "stripe": lambda s: "sk_live_" + _rand(s, 24),
    "slack-bot": lambda s: "xoxb-123456789012-1234567890123-" + _rand(s, 24),
    "slack-webhook": lambda s: (
        "https://hooks.slack.com/services/T01ABCDEF/B02GHIJKL/" + _rand(s, 24)
    ),
    "anthropic": lambda s: "sk-ant-api03-" + _rand(s, 93) + "AA",
    "openai": lambda s: "sk-proj-" + _rand(s, 60) + "T3BlbkFJ" + _rand(s + "b", 60),
    "google": lambda s: "AIza" + _rand(s, 35),
    "npm": lambda s: _checksummed("npm_", s),
    "pypi": lambda s: "pypi-AgEIcHlwaS5vcmc" + _rand(s, 80),
    "huggingface": lambda s: "hf_" + _rand(s, 34, string.ascii_letters),
    "db-password": lambda s: _rand(s, 18),
    "generic": lambda s: _rand(s, 24),
    "pem": _pem,
    "gcp-json": _gcp_json,
}


def secret(kind: str, seed: str = "1") -> str:
    """A fake credential of ``kind`` (see ``_SECRETS``), deterministic per (kind, seed)."""
    return _SECRETS[kind](f"{kind}:{seed}")


def _split(value: str) -> str:
    half = len(value) // 2
    return f'{value[:half]}" + "{value[half:]}'


def _zero_width(value: str) -> str:
    half = len(value) // 2
    return value[:half] + "\u200b" + value[half:]


def _b64(kind: str, value: str) -> str:
    return base64.b64encode(f"{kind}: {value}".encode()).decode()


_ENCODINGS = {
    "SECRET": lambda _kind, value: value,
    "SECRET_B64": _b64,
    "SECRET_B64X2": lambda kind, value: base64.b64encode(_b64(kind, value).encode()).decode(),
    "SECRET_HEX": lambda _kind, value: value.encode().hex(),
    "SECRET_REV": lambda _kind, value: value[::-1],
    "SECRET_SPLIT": lambda _kind, value: _split(value),
    "SECRET_URLENC": lambda _kind, value: "".join(
        c if c.isalnum() else f"%{ord(c):02X}" for c in value
    ),
    "SECRET_ZW": lambda _kind, value: _zero_width(value),
}


def _encoded(how: str, kind: str, seed: str) -> str:
    return _ENCODINGS[how](kind, secret(kind, seed))


_SECRET_RE = re.compile(
    r"<<(SECRET(?:_B64X2|_B64|_HEX|_REV|_SPLIT|_URLENC|_ZW)?):([a-z0-9-]+)(?::([A-Za-z0-9]+))?>>"
)
_REPEAT_RE = re.compile(r"<<REPEAT:(\d+):(.*?)>>", re.DOTALL)
_VAR_RE = re.compile(r"\$(WS|HOME|ROOT)\b")


# ---------------------------------------------------------------------------------------------
# the sandbox


@dataclass(frozen=True, slots=True)
class Sandbox:
    root: Path
    workspace: Path
    home: Path

    def expand(self, value: Any) -> Any:
        """Substitute the placeholders in every string of ``value`` (keys included)."""
        if isinstance(value, str):
            return self._expand_text(value)
        if isinstance(value, list):
            return [self.expand(item) for item in value]
        if isinstance(value, dict):
            return {self.expand(k): self.expand(v) for k, v in value.items()}
        return value

    def _expand_text(self, text: str) -> str:
        text = _REPEAT_RE.sub(lambda m: m.group(2) * int(m.group(1)), text)
        text = _SECRET_RE.sub(lambda m: _encoded(m.group(1), m.group(2), m.group(3) or "1"), text)
        places = {"WS": str(self.workspace), "HOME": str(self.home), "ROOT": str(self.root)}
        return _VAR_RE.sub(lambda m: places[m.group(1)], text)


def _base_dir() -> str | None:
    chosen = os.environ.get("TRACKWRAP_CORPUS_DIR")
    if chosen:
        return chosen
    shm = "/dev/shm"  # noqa: S108 - a tmpfs outside the shell inspector's scratch dirs
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return shm
    return None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _populate(root: Path) -> Sandbox:
    ws = root / "project"
    home = root / "home"
    files = {
        "README.md": "# project\n\nRun `pytest -x tests/`.\n",
        "src/app.py": "def main() -> int:\n    return 0\n",
        "src/__init__.py": "",
        "tests/test_app.py": "from src.app import main\n\n\ndef test_main():\n"
        "    assert main() == 0\n",
        "docs/aws.md": "Access key ids start with AKIA; the docs use AKIAIOSFODNN7EXAMPLE.\n",
        "secrets.md": "# Secrets\n\nWe keep secrets in Vault. Never commit tokens (ghp_…) or "
        "AKIA keys; rotate with `make rotate`.\n",
        ".env": "DATABASE_URL=postgres://postgres:changeme@localhost:5432/dev\n",
        ".env.example": "API_KEY=${API_KEY}\n",
        "node_modules/left-pad/index.js": "module.exports = (s) => s;\n",
        "build/out.txt": "built\n",
        "package.json": '{"name": "project", "scripts": {"test": "node test.js"}}\n',
        "Makefile": "test:\n\tpytest -x tests/\n",
        ".git/config": "[core]\n\trepositoryformatversion = 0\n",
        ".git/HEAD": "ref: refs/heads/feature/login\n",
        ".git/hooks/pre-commit.sample": "#!/bin/sh\nexit 0\n",
        "clean/module.py": "TIMEOUT = 30\n",
        "leaky/settings.py": f'STRIPE_KEY = "{secret("stripe", "staged")}"\n',
        "file with spaces.txt": "ok\n",
        "naïve-café.md": "menu\n",
        "docs/~draft.md": "draft\n",
    }
    for name, text in files.items():
        _write(ws / name, text)
    _write(root / "project-evil" / "loot.txt", "loot\n")
    _write(root / "outside" / "data.txt", "outside\n")
    home_files = {
        ".ssh/id_rsa": _pem("home-ssh"),
        ".ssh/authorized_keys": "ssh-ed25519 AAAAC3 user@host\n",
        ".aws/credentials": "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n",
        ".bashrc": "export PS1='$ '\n",
        ".npmrc": "registry=https://registry.npmjs.org/\n",
        ".netrc": "machine example.com login me password hunter2\n",
        ".kube/config": "apiVersion: v1\n",
        ".docker/config.json": "{}\n",
        "notes.txt": "notes\n",
    }
    for name, text in home_files.items():
        _write(home / name, text)
    (ws / "link-out").symlink_to(root / "outside", target_is_directory=True)
    (ws / "ssh-link").symlink_to(home / ".ssh", target_is_directory=True)
    (ws / "inner-link").symlink_to(ws / "src", target_is_directory=True)
    (ws / "rc-link").symlink_to(home / ".bashrc")
    return Sandbox(root=root, workspace=ws, home=home)


@contextlib.contextmanager
def sandbox() -> Iterator[Sandbox]:
    """A populated sandbox (see the module docstring), removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="trackwrap-corpus-", dir=_base_dir())).resolve()
    try:
        yield _populate(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _as_server(box: Sandbox) -> Iterator[None]:
    """cwd = the workspace and HOME = the sandbox home while the context factory is built (it
    captures both, as ``trackwrap check`` run from the workspace would)."""
    old_cwd, old_home = os.getcwd(), os.environ.get("HOME")
    os.chdir(box.workspace)
    os.environ["HOME"] = str(box.home)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        if old_home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old_home


# ---------------------------------------------------------------------------------------------
# the corpus and its evaluation


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One evaluated case. ``problems`` is empty when the case meets its label."""

    id: str
    inspector: str
    label: str
    note: str
    server: str
    tool: str
    expect_rule: str | None
    known_gap: str | None
    outcome: str
    rule: str
    findings: tuple[tuple[str, str], ...]  # (inspector, rule)
    problems: tuple[str, ...] = field(default=())

    @property
    def flagged(self) -> bool:
        """Whether the case's own inspector reported anything."""
        return any(inspector == self.inspector for inspector, _ in self.findings)

    @property
    def inspector_rules(self) -> tuple[str, ...]:
        return tuple(sorted({rule for name, rule in self.findings if name == self.inspector}))

    @property
    def passed(self) -> bool:
        return not self.problems


_REQUIRED = ("id", "inspector", "label", "server", "tool", "args")


def load_corpus(path: str | Path) -> list[dict[str, Any]]:
    """Cases from one ``.jsonl`` file or every ``*.jsonl`` in a directory; checked for shape."""
    target = Path(path)
    files = sorted(target.glob("*.jsonl")) if target.is_dir() else [target]
    cases: list[dict[str, Any]] = []
    seen: set[str] = set()
    for file in files:
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{file.name}:{number}"
            case = json.loads(line)
            missing = [key for key in _REQUIRED if key not in case]
            if missing:
                raise ValueError(f"{where}: missing {', '.join(missing)}")
            if case["inspector"] not in INSPECTORS or case["label"] not in LABELS:
                raise ValueError(f"{where}: bad inspector or label")
            if case["id"] in seen:
                raise ValueError(f"{where}: duplicate id {case['id']}")
            if case["label"] == "benign" and case.get("expect_rule"):
                raise ValueError(f"{where}: a benign case has no expect_rule")
            seen.add(case["id"])
            cases.append(case)
    return cases


def _problems(case: dict[str, Any], outcome: str, result: CaseResult) -> tuple[str, ...]:
    problems: list[str] = []
    if case["label"] == "attack":
        if not result.flagged:
            problems.append(f"not flagged by {case['inspector']}")
        elif case.get("expect_rule") and case["expect_rule"] not in result.inspector_rules:
            problems.append(
                f"expected {case['expect_rule']}, got {', '.join(result.inspector_rules)}"
            )
        if outcome != "deny":
            problems.append(f"outcome {outcome}, not deny")
    elif result.flagged:
        problems.append(f"false positive: {', '.join(result.inspector_rules)}")
    return tuple(problems)


def evaluate_corpus(path: str | Path = DEFAULT_CORPUS) -> list[CaseResult]:
    """Evaluate every case of the corpus at ``path`` through the real pipeline."""
    cases = load_corpus(path)
    gov = build_governance()
    results: list[CaseResult] = []
    with sandbox() as box, _as_server(box):
        make_context = context_factory(workspace=str(box.workspace))
        for case in cases:
            decision = gov.pipeline.evaluate(
                server=case["server"],
                tool=case["tool"],
                arguments=box.expand(case["args"]),
                context=make_context(),
            )
            result = CaseResult(
                id=case["id"],
                inspector=case["inspector"],
                label=case["label"],
                note=case.get("note", ""),
                server=case["server"],
                tool=case["tool"],
                expect_rule=case.get("expect_rule"),
                known_gap=case.get("known_gap"),
                outcome=str(decision.outcome),
                rule=decision.rule,
                findings=tuple((f.inspector, f.rule) for f in decision.findings),
            )
            problems = _problems(case, result.outcome, result)
            results.append(dataclasses.replace(result, problems=problems))
    return results


# ---------------------------------------------------------------------------------------------
# the report


@dataclass(frozen=True, slots=True)
class Score:
    inspector: str
    attacks: int
    benign: int
    tp: int
    fn: int
    fp: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def score(results: Sequence[CaseResult]) -> list[Score]:
    """Per-inspector confusion counts (flagged by the case's inspector vs label)."""
    scores = []
    for name in (*INSPECTORS, "all"):
        mine = [r for r in results if name in ("all", r.inspector)]
        attacks = [r for r in mine if r.label == "attack"]
        benign = [r for r in mine if r.label == "benign"]
        tp = sum(r.flagged for r in attacks)
        fp = sum(r.flagged for r in benign)
        scores.append(
            Score(
                inspector=name,
                attacks=len(attacks),
                benign=len(benign),
                tp=tp,
                fn=len(attacks) - tp,
                fp=fp,
                tn=len(benign) - fp,
            )
        )
    return scores


def report(results: Sequence[CaseResult], *, show_all: bool = False) -> str:
    lines = [
        f"{'inspector':<10} {'attacks':>7} {'benign':>6} {'TP':>4} {'FN':>4} {'FP':>4} "
        f"{'TN':>4} {'precision':>9} {'recall':>7}"
    ]
    lines.extend(
        f"{s.inspector:<10} {s.attacks:>7} {s.benign:>6} {s.tp:>4} {s.fn:>4} {s.fp:>4} "
        f"{s.tn:>4} {s.precision:>9.3f} {s.recall:>7.3f}"
        for s in score(results)
    )
    attacks = [r for r in results if r.label == "attack"]
    benign = [r for r in results if r.label == "benign"]
    denied = sum(r.outcome == "deny" for r in attacks)
    rule_hits = [r for r in attacks if r.expect_rule]
    rule_ok = sum(r.expect_rule in r.inspector_rules for r in rule_hits)
    benign_denied = [r for r in benign if r.outcome == "deny"]
    lines += [
        "",
        f"outcome agreement: {denied}/{len(attacks)} attacks denied; "
        f"{len(benign) - len(benign_denied)}/{len(benign)} benign not denied "
        f"(the rest denied by policy, e.g. DEFAULT-DENY, without a finding of their inspector)",
        f"expected rule reported: {rule_ok}/{len(rule_hits)} attacks with an expect_rule",
    ]
    misses = [r for r in results if (r.label == "attack") != r.flagged]
    lines += ["", f"misses ({len(misses)}):"]
    lines += [
        f"  {'FN' if r.label == 'attack' else 'FP'} {r.id:<13} {r.note}"
        + (f"  [known gap: {r.known_gap}]" if r.known_gap else "")
        + (f"  -> {', '.join(r.inspector_rules)}" if r.inspector_rules else "")
        for r in misses
    ]
    failing = [r for r in results if not r.passed]
    lines += ["", f"failing cases ({len(failing)}), misses included:"]
    lines += [
        f"  {r.id:<13} {'; '.join(r.problems)}"
        + (f"  [known gap: {r.known_gap}]" if r.known_gap else "  [NOT a known gap]")
        for r in failing
    ]
    stale = [r for r in results if r.known_gap and r.passed]
    if stale:
        lines += ["", "known gaps that now pass (remove the marker):"]
        lines += [f"  {r.id}" for r in stale]
    if show_all:
        lines += ["", "all cases:"]
        lines += [
            f"  {r.id:<13} {r.label:<6} {r.outcome:<7} {r.rule:<28} "
            f"{','.join(r.inspector_rules) or '-'}"
            for r in results
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", default=[str(DEFAULT_CORPUS)])
    parser.add_argument("--all", action="store_true", help="list every case's outcome")
    args = parser.parse_args(argv)
    results: list[CaseResult] = []
    for path in args.paths:
        results.extend(evaluate_corpus(path))
    print(report(results, show_all=args.all))
    return 0


if __name__ == "__main__":
    sys.exit(main())
