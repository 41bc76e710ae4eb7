"""The secret rules table and the scanner shared by the secrets inspector and result redaction.

Our own table, written after the ideas gitleaks describes (keywords gate each regex, an entropy
floor where a format is not self-evident, global and per-rule allowlists); no rule text is
copied from another project.

How :meth:`SecretScanner.scan` works on one string:

1. **Keyword prefilter.** Every rule names literal keywords (lower-case; fixed-case formats such
   as ``AKIA`` or ``ghp_`` are matched exactly on the original text, which is cheaper and equally
   correct because their regexes are case-sensitive). Rules with the same keywords share one
   search. A rule whose keywords do not occur costs one C-level ``find`` pass and nothing else.
2. **Anchored regex.** Each keyword occurrence anchors one ``pattern.match``, never a free
   search; context before the match (``aws`` before ``secret``, ``"private_key": "`` before a
   PEM block) is checked only once the match succeeded.
3. **Filters.** Shannon entropy floor, the global allowlist (``EXAMPLE``, repeated fillers,
   ``${VAR}``, ``{{ tmpl }}``, ``<placeholder>``, ``changeme``…) and per-rule ones.
4. **Base64 re-scan.** Runs of >= 20 standard base64 characters (``A-Za-z0-9+/``; hex digests
   and runs that cannot start encoded text are skipped) that decode to mostly printable UTF-8
   are scanned once more (one level only); a hit there spans the whole encoded run.
5. Overlaps are resolved by confidence, then table order: one match per span.

A :class:`SecretMatch` never holds the secret: only its span, a fingerprint and a digest.
"""

from __future__ import annotations

import binascii
import dataclasses
import hashlib
import math
import re
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_RULES",
    "SecretMatch",
    "SecretRule",
    "SecretScanner",
    "fingerprint",
    "secret_digest",
    "shannon_entropy",
]

T_FILES = "T1552.001"
T_KEYS = "T1552.004"


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretRule:
    """One secret format.

    ``pattern`` must define a ``secret`` group (the span that is fingerprinted and redacted) and
    may define a ``body`` group (what the entropy floor and filler check look at). It is matched
    at ``keyword position - offset``; ``before`` (ending in ``\\Z``) must then match the 64
    characters before the match. ``validate`` (e.g. a checksum) lifts the confidence from
    ``unvalidated`` to ``confidence``; ``requires`` must also occur somewhere in the text;
    ``allow`` is a per-rule allowlist on the match. ``public_prefix`` says whether the first four
    characters are a public format prefix that a fingerprint may show.
    """

    id: str
    keywords: tuple[str, ...]
    pattern: re.Pattern[str]
    confidence: float
    attack: str = T_FILES
    case_sensitive: bool = False
    offset: int = 0
    before: re.Pattern[str] | None = None
    min_entropy: float = 0.0
    validate: Callable[[str], bool] | None = None
    unvalidated: float | None = None
    requires: re.Pattern[str] | None = None
    allow: Callable[[re.Match[str]], bool] | None = None
    public_prefix: bool = True

    def __post_init__(self) -> None:
        if "secret" not in self.pattern.groupindex:
            raise ValueError(f"secret rule {self.id}: pattern has no 'secret' group")
        if not self.keywords or any(not k for k in self.keywords):
            raise ValueError(f"secret rule {self.id}: needs non-empty keywords")
        if not self.case_sensitive and any(k != k.lower() for k in self.keywords):
            raise ValueError(f"secret rule {self.id}: keywords must be lower-case")


@dataclass(frozen=True, slots=True)
class SecretMatch:
    """One secret found in a text: where it is and how to name it, never its value.

    ``start``/``end`` span the secret in the scanned text (for a base64-wrapped secret, the whole
    encoded run); ``digest`` is ``sha256(secret)[:8]``; ``encoded`` marks a base64 finding.
    """

    rule: str
    start: int
    end: int
    confidence: float
    attack: str
    fingerprint: str
    digest: str
    encoded: bool = False


def secret_digest(value: str) -> str:
    """First 8 hex digits of ``sha256(value)``."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def fingerprint(value: str, *, public_prefix: bool = True) -> str:
    """``<first 4 chars>…<sha256[:8]>``; without the 4 characters when they are not a public
    format prefix (a password's first characters are part of the secret)."""
    return (value[:4] if public_prefix else "") + "…" + secret_digest(value)


def shannon_entropy(value: str) -> float:
    """Shannon entropy of ``value`` in bits per character."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


# --- validators and allowlists -------------------------------------------------------------

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(number: int) -> str:
    digits = ""
    while number:
        number, digit = divmod(number, 62)
        digits = _BASE62[digit] + digits
    return digits or "0"


def checksum_token(payload: str) -> str:
    """The 6-character base62 CRC32 GitHub (and npm) append to a 30-character token payload."""
    return _base62(zlib.crc32(payload.encode("ascii"))).rjust(6, "0")


def _crc_ok(token: str) -> bool:
    """GitHub ``gh?_`` / npm ``npm_`` tokens: the last 6 characters are the base62 CRC32 of the
    30 characters between the 4-character prefix and them."""
    body = token[4:]
    return len(body) == 36 and checksum_token(body[:30]) == body[30:]


_PLACEHOLDER_WORDS = frozenset(
    {
        "true",
        "false",
        "null",
        "none",
        "nil",
        "undefined",
        "changeme",
        "change_me",
        "password",
        "passwd",
        "secret",
        "redacted",
        "example",
        "placeholder",
        "your_token",
        "your_api_key",
    }
)
_VAR_REF = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*\Z|%[sd]\Z|%\([A-Za-z_]+\)s\Z")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z_.]*\Z")


def _placeholder(value: str) -> bool:
    """The global allowlist: documentation keys, template references and fillers."""
    low = value.lower()
    if "EXAMPLE" in value or low.endswith("example") or low in _PLACEHOLDER_WORDS:
        return True
    if value.startswith(("${", "{{", "<", "%(", "$(", "[REDACTED")) or value.endswith(("}}", ">")):
        return True
    if _VAR_REF.match(value):
        return True
    if "***" in value or "xxxx" in low or "…" in value or "..." in value:
        return True
    tail = value[-16:]
    return len(tail) >= 8 and len(set(tail)) <= 3


_LOCAL_HOSTS = frozenset(
    {"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0", "host.docker.internal"}  # noqa: S104
)
_DOC_HOSTS = re.compile(r"(?:^|\.)(?:example\.(?:com|org|net)|example|test|invalid)\Z")
_WEAK_PASSWORDS = frozenset(
    {
        "password",
        "changeme",
        "pass",
        "secret",
        "postgres",
        "root",
        "admin",
        "test",
        "mysql",
        "guest",
    }
)


def _connection_allowed(match: re.Match[str]) -> bool:
    """``password``/``changeme`` on localhost, and documentation hosts, are placeholders."""
    host = match.group("host").lower()
    password = match.group("secret").lower()
    if _DOC_HOSTS.search(host):
        return True
    return host in _LOCAL_HOSTS and password in _WEAK_PASSWORDS


def _generic_allowed(match: re.Match[str]) -> bool:
    """Code references (``config.db.password``), paths and constants are not values."""
    value = match.group("secret")
    return bool(_IDENTIFIER.match(value)) or value.startswith(("/", "./", "~/", "-"))


def _openai_marker(value: str) -> bool:
    return "T3BlbkFJ" in value


# --- the table ------------------------------------------------------------------------------

_W = "A-Za-z0-9"
_NOT_BEFORE = rf"(?<![{_W}_])"
_NOT_AFTER = rf"(?![{_W}_])"
_NOT_BEFORE_DASH = rf"(?<![{_W}_-])"
_NOT_AFTER_DASH = rf"(?![{_W}_-])"


def _p(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


#: The default rules, most specific first (table order breaks confidence ties on overlaps).
DEFAULT_RULES: tuple[SecretRule, ...] = (
    SecretRule(
        id="private-key-gcp-service-account",
        keywords=("-----BEGIN",),
        case_sensitive=True,
        before=_p(r'"private_key"\s*:\s*"\Z'),
        pattern=_p(
            r"(?P<secret>-----BEGIN[A-Z ]{0,30}PRIVATE KEY-----(?P<body>[^\"]{64,16000}?)"
            r"-----END[A-Z ]{0,30}PRIVATE KEY-----(?:\\n)?)\""
        ),
        requires=_p(r'"type"\s*:\s*"service_account"'),
        min_entropy=4.0,
        confidence=0.99,
        attack=T_KEYS,
    ),
    SecretRule(
        id="private-key",
        keywords=("-----BEGIN",),
        case_sensitive=True,
        pattern=_p(
            r"(?P<secret>-----BEGIN[A-Z ]{0,30}PRIVATE KEY(?: BLOCK)?-----"
            r"(?P<body>[\s\S]{64,16000}?)-----END[A-Z ]{0,30}PRIVATE KEY(?: BLOCK)?-----)"
        ),
        min_entropy=4.0,
        confidence=0.99,
        attack=T_KEYS,
    ),
    SecretRule(
        id="aws-access-key-id",
        keywords=("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
        case_sensitive=True,
        pattern=_p(
            rf"(?<![{_W}])(?P<secret>(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{{16}})(?![{_W}])"
        ),
        min_entropy=3.0,
        confidence=0.9,
    ),
    SecretRule(
        id="aws-secret-access-key",
        keywords=("secret",),
        before=_p(r"(?i:aws)[A-Za-z0-9_.-]{0,30}\Z"),
        pattern=_p(
            r"(?i:secret)[A-Za-z0-9_.-]{0,30}"
            r"[\"']?[ \t]*(?::|=>|=)[ \t]*[\"']?"
            r"(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        min_entropy=4.0,
        confidence=0.95,
        public_prefix=False,
    ),
    SecretRule(
        id="github-token",
        keywords=("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        case_sensitive=True,
        pattern=_p(rf"{_NOT_BEFORE}(?P<secret>gh[pousr]_[{_W}]{{36}}){_NOT_AFTER}"),
        min_entropy=3.0,
        validate=_crc_ok,
        confidence=0.99,
        unvalidated=0.95,
    ),
    SecretRule(
        id="github-fine-grained-pat",
        keywords=("github_pat_",),
        case_sensitive=True,
        pattern=_p(rf"{_NOT_BEFORE}(?P<secret>github_pat_[{_W}_]{{82}}){_NOT_AFTER}"),
        min_entropy=3.0,
        confidence=0.95,
    ),
    SecretRule(
        id="gitlab-pat",
        keywords=("glpat-",),
        case_sensitive=True,
        pattern=_p(rf"{_NOT_BEFORE_DASH}(?P<secret>glpat-[{_W}_-]{{20,100}}){_NOT_AFTER_DASH}"),
        min_entropy=3.0,
        confidence=0.95,
    ),
    SecretRule(
        id="stripe-secret-key",
        keywords=("k_live_", "k_prod_"),
        case_sensitive=True,
        offset=1,
        pattern=_p(
            rf"{_NOT_BEFORE}(?P<secret>[sr]k_(?:live|prod)_(?P<body>[{_W}]{{10,99}})){_NOT_AFTER}"
        ),
        min_entropy=2.0,
        confidence=0.95,
    ),
    SecretRule(
        id="slack-token",
        keywords=("xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-", "xapp-"),
        case_sensitive=True,
        pattern=_p(
            rf"{_NOT_BEFORE_DASH}(?P<secret>(?:xox[baprs]-[0-9]{{6,14}}|xapp-[0-9]{{1,2}}-[A-Z0-9]"
            rf"{{6,20}})-[{_W}-]{{8,200}}){_NOT_AFTER_DASH}"
        ),
        min_entropy=3.0,
        confidence=0.95,
    ),
    SecretRule(
        id="slack-webhook",
        keywords=("hooks.slack.com/services/",),
        pattern=_p(
            r"hooks\.slack\.com/services/(?P<secret>T[A-Z0-9]{6,12}/B[A-Z0-9]{6,12}/"
            rf"[{_W}]{{20,32}}){_NOT_AFTER}"
        ),
        min_entropy=3.0,
        confidence=0.95,
    ),
    SecretRule(
        id="anthropic-api-key",
        keywords=("sk-",),
        case_sensitive=True,
        pattern=_p(
            rf"{_NOT_BEFORE_DASH}(?P<secret>sk-ant-(?:api03|admin01)-[{_W}_-]{{93}}AA)"
            rf"{_NOT_AFTER_DASH}"
        ),
        min_entropy=3.0,
        confidence=0.95,
    ),
    SecretRule(
        id="openai-api-key",
        keywords=("sk-",),
        case_sensitive=True,
        pattern=_p(
            rf"{_NOT_BEFORE_DASH}(?P<secret>sk-(?:proj|svcacct|admin)-[{_W}_-]{{20,200}}T3BlbkFJ"
            rf"[{_W}_-]{{20,200}}){_NOT_AFTER_DASH}"
        ),
        min_entropy=3.0,
        confidence=0.95,
    ),
    SecretRule(
        id="openai-legacy-key",
        keywords=("sk-",),
        case_sensitive=True,
        pattern=_p(rf"{_NOT_BEFORE_DASH}(?P<secret>sk-[{_W}]{{48}}){_NOT_AFTER_DASH}"),
        min_entropy=3.5,
        validate=_openai_marker,
        confidence=0.95,
        unvalidated=0.8,
    ),
    SecretRule(
        id="google-api-key",
        keywords=("AIza",),
        case_sensitive=True,
        pattern=_p(rf"{_NOT_BEFORE_DASH}(?P<secret>AIza[{_W}_-]{{35}}){_NOT_AFTER_DASH}"),
        min_entropy=3.0,
        confidence=0.95,
    ),
    SecretRule(
        id="npm-token",
        keywords=("npm_",),
        case_sensitive=True,
        pattern=_p(rf"{_NOT_BEFORE}(?P<secret>npm_[{_W}]{{36}}){_NOT_AFTER}"),
        min_entropy=3.0,
        validate=_crc_ok,
        confidence=0.99,
        unvalidated=0.95,
    ),
    SecretRule(
        id="pypi-token",
        keywords=("pypi-AgEIcHlwaS5vcmc",),
        case_sensitive=True,
        pattern=_p(
            rf"{_NOT_BEFORE_DASH}(?P<secret>pypi-AgEIcHlwaS5vcmc[{_W}_-]{{50,1000}})"
            rf"{_NOT_AFTER_DASH}"
        ),
        confidence=0.95,
    ),
    SecretRule(
        id="huggingface-token",
        keywords=("hf_",),
        case_sensitive=True,
        pattern=_p(rf"{_NOT_BEFORE}(?P<secret>hf_[A-Za-z]{{34}}){_NOT_AFTER}"),
        min_entropy=3.0,
        confidence=0.95,
    ),
    SecretRule(
        id="connection-string",
        keywords=("://",),
        pattern=_p(
            r"(?<=[A-Za-z0-9+.-])://[^\s:/?#@\"'`<>]{0,128}:"
            r"(?P<secret>[^\s:/?#@\"'`]{1,256})@"
            r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%-]{1,253})"
        ),
        allow=_connection_allowed,
        confidence=0.8,
        public_prefix=False,
    ),
    SecretRule(
        id="generic-secret-assignment",
        keywords=("secret", "token", "passw", "api", "access_key"),
        pattern=_p(
            r"(?i:secret|token|passw(?:or)?d|passw|api[_-]?key|access_key)[A-Za-z0-9_.-]{0,30}"
            r"[\"'\]]{0,2}[ \t]*(?::=|=>|=|:)(?!=)[ \t]*[\"'`]?"
            r"(?P<secret>[A-Za-z0-9_+/=.~!@#$%^&*-]{10,200})(?=[\"'`\s;,)}\]]|\Z)"
        ),
        allow=_generic_allowed,
        min_entropy=3.5,
        confidence=0.6,
        public_prefix=False,
    ),
)


# --- the scanner ----------------------------------------------------------------------------

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_B64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_MASK = bytes.maketrans(
    bytes(range(256)), bytes(ord("a") if c in _B64_CHARS else ord(" ") for c in range(256))
)
_B64_MIN = 20
_B64_SEED = b"a" * _B64_MIN
#: Base64 of text starts with one of these: printable ASCII (``I``-``f``), tab or newline
#: (``C``, ``D``) or a UTF-8 lead byte (``w``-``9``). Paths (``/home/…``) and most words don't.
_B64_TEXT_START = frozenset("CDIJKLMNOPQRSTUVWXYZabcdefwxyz0123456789")
_PADDING = re.compile(r"={0,2}")
_HEX = re.compile(r"[0-9a-f]+\Z|[0-9A-F]+\Z")
_NON_PRINTABLE = re.compile(r"[^\t\n\r\x20-\x7e\u00a0-\ud7ff\ue000-\ufffd]")


@dataclass(frozen=True, slots=True)
class _Unit:
    """One keyword search (a literal, or an alternation of literals sharing a stem), shared by
    every rule that lists it; its positions are computed once per scanned text."""

    key: tuple[tuple[str, ...], bool]
    alternation: re.Pattern[str] | None

    def positions(self, text: str, lowered: str) -> list[int]:
        (keywords, case_sensitive) = self.key
        haystack = text if case_sensitive else lowered
        if self.alternation is not None:
            return [m.start() for m in self.alternation.finditer(haystack)]
        found: list[int] = []
        keyword = keywords[0]
        i = haystack.find(keyword)
        while i >= 0:
            found.append(i)
            i = haystack.find(keyword, i + 1)
        return found


@dataclass(frozen=True, slots=True)
class _Candidate:
    start: int
    end: int
    rank: int
    match: SecretMatch


def _units(rule: SecretRule) -> tuple[_Unit, ...]:
    keywords = tuple(sorted(set(rule.keywords)))
    if len(keywords) > 1 and _common_prefix(keywords):
        # Keywords sharing a stem: one C-level pass (sre factors the stem out).
        pattern = re.compile("|".join(re.escape(k) for k in keywords))
        return (_Unit(key=(keywords, rule.case_sensitive), alternation=pattern),)
    return tuple(_Unit(key=((k,), rule.case_sensitive), alternation=None) for k in keywords)


def _common_prefix(words: Sequence[str]) -> str:
    first, last = min(words), max(words)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


@dataclass(frozen=True, slots=True)
class SecretScanner:
    """Finds secrets in text with a rules table (:data:`DEFAULT_RULES` unless given)."""

    rules: tuple[SecretRule, ...] = DEFAULT_RULES
    _units: tuple[tuple[_Unit, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.rules:
            raise ValueError("a secret scanner needs at least one rule")
        object.__setattr__(self, "_units", tuple(_units(rule) for rule in self.rules))

    def scan(self, text: str) -> tuple[SecretMatch, ...]:
        """Non-overlapping secrets in ``text``, ordered by position (base64 runs included)."""
        if len(text) < 8:
            return ()
        candidates = self._plain(text)
        candidates.extend(self._encoded(text))
        return _resolve(candidates)

    def _plain(self, text: str) -> list[_Candidate]:
        lowered = text.lower()
        if len(lowered) != len(text):
            lowered = text.translate(_ASCII_LOWER)
        cache: dict[tuple[tuple[str, ...], bool], list[int]] = {}
        found: list[_Candidate] = []
        required: dict[int, bool] = {}
        for rank, (rule, units) in enumerate(zip(self.rules, self._units, strict=True)):
            positions: list[int] = []
            for unit in units:
                hits = cache.get(unit.key)
                if hits is None:
                    hits = cache[unit.key] = unit.positions(text, lowered)
                positions.extend(hits)
            if not positions:
                continue
            if len(units) > 1:
                positions.sort()
            match_at = rule.pattern.match
            offset = rule.offset
            covered = -1
            for position in positions:
                start = position - offset
                if start < covered or start < 0:
                    continue
                match = match_at(text, start)
                if match is None:
                    continue
                candidate = _candidate(rule, rank, match, text, required)
                if candidate is not None:
                    found.append(candidate)
                    covered = match.end()
        return found

    def _encoded(self, text: str) -> list[_Candidate]:
        data = text.encode("ascii") if text.isascii() else text.encode("ascii", "replace")
        mask = data.translate(_B64_MASK)
        found: list[_Candidate] = []
        i = mask.find(_B64_SEED)
        while i >= 0:
            j = mask.find(b" ", i)
            if j < 0:
                j = len(mask)
            decoded = None
            if text[i] in _B64_TEXT_START and not _HEX.match(text, i, j):
                decoded = _decode(text[i:j])
                padding = _PADDING.match(text, j)
                if decoded is not None and padding is not None:
                    j = padding.end()
            if decoded is not None:
                found.extend(
                    _Candidate(
                        start=i,
                        end=j,
                        rank=c.rank,
                        match=dataclasses.replace(c.match, start=i, end=j, encoded=True),
                    )
                    for c in _resolve_candidates(self._plain(decoded))
                )
            i = mask.find(_B64_SEED, j)
        return found


def _decode(run: str) -> str | None:
    """The printable UTF-8 text a base64 run encodes, else ``None``."""
    rest = len(run) % 4
    if rest == 1:
        run = run[:-1]
    elif rest:
        run += "=" * (4 - rest)
    try:
        text = binascii.a2b_base64(run).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if len(text) < 8 or len(_NON_PRINTABLE.findall(text)) * 10 > len(text):
        return None
    return text


def _candidate(
    rule: SecretRule, rank: int, match: re.Match[str], text: str, required: dict[int, bool]
) -> _Candidate | None:
    if not _accept(rule, rank, match, text, required):
        return None
    value = match.group("secret")
    confidence = rule.confidence
    if rule.validate is not None and not rule.validate(value):
        confidence = rule.unvalidated if rule.unvalidated is not None else rule.confidence
    begin, end = match.span("secret")
    return _Candidate(
        start=begin,
        end=end,
        rank=rank,
        match=SecretMatch(
            rule=rule.id,
            start=begin,
            end=end,
            confidence=confidence,
            attack=rule.attack,
            fingerprint=fingerprint(value, public_prefix=rule.public_prefix),
            digest=secret_digest(value),
        ),
    )


def _accept(
    rule: SecretRule, rank: int, match: re.Match[str], text: str, required: dict[int, bool]
) -> bool:
    """The allowlists, the entropy floor and the rule's extra requirement."""
    value = match.group("secret")
    body = match.group("body") if "body" in rule.pattern.groupindex else None
    if _placeholder(value) or (body is not None and _placeholder(body)):
        return False
    if rule.allow is not None and rule.allow(match):
        return False
    if rule.min_entropy and shannon_entropy(body or value) < rule.min_entropy:
        return False
    if rule.before is not None:
        start = match.start()
        if rule.before.search(text, max(0, start - 64), start) is None:
            return False
    if rule.requires is None:
        return True
    if rank not in required:
        required[rank] = rule.requires.search(text) is not None
    return required[rank]


def _resolve_candidates(candidates: list[_Candidate]) -> list[_Candidate]:
    """Highest confidence first, then table order, then position; drop overlaps."""
    kept: list[_Candidate] = []
    for candidate in sorted(candidates, key=lambda c: (-c.match.confidence, c.rank, c.start)):
        if all(candidate.end <= k.start or candidate.start >= k.end for k in kept):
            kept.append(candidate)
    kept.sort(key=lambda c: c.start)
    return kept


def _resolve(candidates: list[_Candidate]) -> tuple[SecretMatch, ...]:
    if not candidates:
        return ()
    return tuple(c.match for c in _resolve_candidates(candidates))
