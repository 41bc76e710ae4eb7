"""The labelled inspector corpus (tests/corpus/*.jsonl) through the real pipeline.

Every attack must be denied and flagged by its inspector (with its ``expect_rule``, if any);
every benign case must raise no finding of its inspector. Cases marked ``known_gap`` are
skipped, and the set of known gaps must be exactly the set of failing cases: fixing a gap
(or opening a new one) fails here until the corpus says so. Scoring and the sandbox live in
scripts/eval_corpus.py (``python scripts/eval_corpus.py`` prints the precision/recall table).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
SCRIPT = ROOT / "scripts" / "eval_corpus.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eval_corpus", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("eval_corpus", module)
    spec.loader.exec_module(module)
    return module


eval_corpus = _load_script()
CASES = eval_corpus.load_corpus(CORPUS)
IDS = [case["id"] for case in CASES]


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    return {r.id: r for r in eval_corpus.evaluate_corpus(CORPUS)}


def test_corpus_shape() -> None:
    per = {name: [c for c in CASES if c["inspector"] == name] for name in eval_corpus.INSPECTORS}
    for name, cases in per.items():
        labels = {c["label"] for c in cases}
        assert labels == {"attack", "benign"}, f"{name} needs attacks and benign look-alikes"
        assert len(cases) >= 40, f"{name}: only {len(cases)} cases"
    for file in CORPUS.glob("*.jsonl"):
        for line in file.read_text(encoding="utf-8").splitlines():
            case = json.loads(line)
            assert case["id"].startswith(case["inspector"] + "-"), case["id"]
            assert case["note"], case["id"]


@pytest.mark.parametrize("case_id", IDS)
def test_case(results: dict[str, Any], case_id: str) -> None:
    result = results[case_id]
    if result.known_gap:
        assert not result.passed, f"{case_id} is marked known_gap but passes: remove the marker"
        pytest.skip(f"known gap: {result.known_gap}")
    assert result.passed, f"{case_id} ({result.note}): {'; '.join(result.problems)}"


def test_known_gaps_are_exactly_the_failing_cases(results: dict[str, Any]) -> None:
    failing = {i for i, r in results.items() if not r.passed}
    known = {i for i, r in results.items() if r.known_gap}
    assert failing == known, {
        "failing but not marked known_gap": sorted(failing - known),
        "marked known_gap but passing": sorted(known - failing),
    }


def test_report_renders(results: dict[str, Any]) -> None:
    text = eval_corpus.report(list(results.values()))
    for name in eval_corpus.INSPECTORS:
        assert f"\n{name} " in text
    assert "outcome agreement" in text


def test_placeholders_expand(tmp_path: Path) -> None:
    box = eval_corpus.Sandbox(root=tmp_path, workspace=tmp_path / "ws", home=tmp_path / "h")
    out = box.expand({"a": ["$WS/x", "${HOME}", "$HOME/y", "<<REPEAT:3:ab>>"]})
    assert out == {"a": [f"{tmp_path}/ws/x", "${HOME}", f"{tmp_path}/h/y", "ababab"]}
    token = box.expand("<<SECRET:github-token>>")
    assert token.startswith("ghp_") and len(token) == 40
    assert token == eval_corpus.secret("github-token")
