"""Secrets: credentials in what a tool call writes, sends, runs or commits.

Scanned: every string leaf of ``action.arguments`` (file contents, edits, commit messages,
command lines, HTTP bodies, …), each argument key, and a ``key="value"`` view of leaves whose key
names a secret (``{"aws_secret_access_key": "…"}`` is caught although the value alone has no
prefix). For the kinds in ``staged_kinds`` (``git.add``, ``git.commit``) also the content of the
files being staged, which the caller's ``read_staged`` collaborator supplies: this module does no
I/O. With no reader those kinds are scanned by their arguments only.

Every hit is a ``SEC-COMMIT-SECRETS`` finding; the token rule, location, line and a fingerprint
(``ghp_…a1b2c3d4``: public prefix and ``sha256[:8]``) are in the detail, and :meth:`hits` returns
them structured. A secret's value never appears in a finding. A lone AWS access key id is 0.9;
with an AWS secret access key in the same call, 0.99.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field

from trackwrap.inspectors._secret_rules import (
    DEFAULT_RULES,
    SecretRule,
    SecretScanner,
    secret_digest,
    shannon_entropy,
)
from trackwrap.policy import Action, Context, Finding

__all__ = [
    "POSSIBLE_SECRET_RULE",
    "SECRETS_RULE",
    "ReadStaged",
    "SecretHit",
    "SecretsInspector",
]

#: Rule id of every secret finding.
SECRETS_RULE = "SEC-COMMIT-SECRETS"
POSSIBLE_SECRET_RULE = "SEC-POSSIBLE-SECRET"  # noqa: S105 - a rule id
"""Low-confidence hits (a generic ``password = …`` assignment): recorded, and by default policy
a warning rather than a deny."""
WARN_BELOW = 0.7

#: ``(action, context) -> (path, text)`` pairs of the files a git.add / git.commit stages.
ReadStaged = Callable[[Action, Context], Iterable[tuple[str, str]]]

_OWASP = "ASI03"
_AWS_ID = "aws-access-key-id"
_AWS_PAIR = "aws-secret-access-key"
_PAIRED = 0.99
_SAFE_NAME = re.compile(r"[A-Za-z0-9_@.-]{1,64}\Z")
_SAFE_PATH = re.compile(r"[A-Za-z0-9_@.,+=~/ -]{1,512}\Z")
_SECRET_KEY = re.compile(
    r"secret|token|passw|pwd|api[_-]?key|access[_-]?key|private[_-]?key|credential", re.IGNORECASE
)
_KEYED_MAX = 512
_PARTS = re.compile(r"[/. ]")
_RANDOM_MIN = 16


def _random_looking(part: str) -> bool:
    """Long, mixed-case, with digits and high entropy: shown as a digest, never verbatim."""
    return (
        len(part) >= _RANDOM_MIN
        and not part.isalpha()
        and not part.islower()
        and not part.isupper()
        and shannon_entropy(part) >= 3.5
    )


@dataclass(frozen=True, slots=True)
class SecretHit:
    """One secret in one place: rule, location (``arguments.files[0].content``,
    ``staged:src/settings.py``), 1-based line, fingerprint and confidence."""

    rule: str
    location: str
    line: int
    fingerprint: str
    confidence: float
    attack: str
    encoded: bool

    def detail(self) -> str:
        """``github-token at arguments.content line 3 (fingerprint ghp_…a1b2c3d4)``."""
        how = ", base64-encoded" if self.encoded else ""
        return (
            f"{self.rule} at {self.location} line {self.line} (fingerprint {self.fingerprint}{how})"
        )


@dataclass(frozen=True, slots=True)
class _Text:
    location: str
    text: str
    key: str | None = None


@dataclass(frozen=True, slots=True)
class SecretsInspector:
    """Reports every secret an action carries (``SEC-COMMIT-SECRETS``).

    ``read_staged`` supplies staged file contents for ``staged_kinds``; ``min_confidence`` drops
    weaker hits (the generic ``key = value`` rule is 0.6); at most ``max_findings`` findings are
    listed, the rest summed up in one more.
    """

    read_staged: ReadStaged | None = None
    _: KW_ONLY
    name: str = "secrets"
    rules: tuple[SecretRule, ...] = DEFAULT_RULES
    staged_kinds: frozenset[str] = frozenset({"git.add", "git.commit"})
    min_confidence: float = 0.0
    max_findings: int = 50
    _scanner: SecretScanner = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_findings < 1:
            raise ValueError("max_findings must be at least 1")
        object.__setattr__(self, "_scanner", SecretScanner(self.rules))

    def inspect(self, action: Action, context: Context) -> Sequence[Finding]:
        """One finding per secret (see the module docstring)."""
        hits = self.hits(action, context)
        listed = hits[: self.max_findings]
        findings = [self._finding(hit.detail(), hit.confidence, hit.attack) for hit in listed]
        rest = hits[self.max_findings :]
        if rest:
            rules = ", ".join(sorted({hit.rule for hit in rest}))
            findings.append(
                self._finding(
                    f"{len(rest)} more secrets not listed ({rules})",
                    max(hit.confidence for hit in rest),
                    rest[0].attack,
                )
            )
        return tuple(findings)

    def hits(self, action: Action, context: Context) -> tuple[SecretHit, ...]:
        """Every secret in the arguments and, for staging kinds, in the staged files."""
        hits: list[SecretHit] = []
        seen: set[tuple[str, str, int, str]] = set()
        for item in self._texts(action, context):
            for hit in self._scan(item):
                key = (hit.rule, hit.location, hit.line, hit.fingerprint)
                if key not in seen and hit.confidence >= self.min_confidence:
                    seen.add(key)
                    hits.append(hit)
        if any(hit.rule == _AWS_PAIR for hit in hits):
            hits = [
                dataclasses.replace(hit, confidence=_PAIRED) if hit.rule == _AWS_ID else hit
                for hit in hits
            ]
        return tuple(hits)

    def _texts(self, action: Action, context: Context) -> Iterator[_Text]:
        yield from self._leaves(action.arguments, "arguments")
        if self.read_staged is None or action.kind not in self.staged_kinds:
            return
        for path, text in self.read_staged(action, context):
            shown = path if self._showable(path, _SAFE_PATH) else f"<path {secret_digest(path)}>"
            yield _Text(location=f"staged:{shown}", text=text)

    def _leaves(self, value: object, location: str) -> Iterator[_Text]:
        if isinstance(value, str):
            yield _Text(location=location, text=value)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                name = str(key)
                if self._showable(name, _SAFE_NAME):
                    where = f"{location}.{name}"
                else:
                    where = f"{location}.<key {secret_digest(name)}>"
                    yield _Text(location=f"{where} (key)", text=name)
                if isinstance(item, str) and _SECRET_KEY.search(name):
                    yield _Text(location=where, text=item, key=name)
                else:
                    yield from self._leaves(item, where)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                yield from self._leaves(item, f"{location}[{index}]")

    def _showable(self, name: str, charset: re.Pattern[str]) -> bool:
        """Whether a key or path may appear in a finding: plain characters, no secret, and no
        random-looking part (a bare 40-character AWS secret has no prefix to detect)."""
        if not charset.match(name) or self._scanner.scan(name):
            return False
        return not any(_random_looking(part) for part in _PARTS.split(name))

    def _scan(self, item: _Text) -> Iterator[SecretHit]:
        text, shift = item.text, 0
        if item.key is not None and len(text) <= _KEYED_MAX and "\n" not in text:
            # A secret-named key: scan `key="value"` so assignment rules see the name.
            shift = len(item.key) + 2
            text = f'{item.key}="{item.text}"'
        for match in self._scanner.scan(text):
            start = match.start - shift
            if start < 0:
                continue
            yield SecretHit(
                rule=match.rule,
                location=item.location,
                line=item.text.count("\n", 0, start) + 1,
                fingerprint=match.fingerprint,
                confidence=match.confidence,
                attack=match.attack,
                encoded=match.encoded,
            )

    def _finding(self, detail: str, confidence: float, attack: str) -> Finding:
        return Finding(
            inspector=self.name,
            rule=SECRETS_RULE if confidence >= WARN_BELOW else POSSIBLE_SECRET_RULE,
            confidence=confidence,
            detail=detail,
            attack=attack,
            owasp=_OWASP,
        )
