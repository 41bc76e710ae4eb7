"""Redact secrets from a tool result before it reaches the agent.

:func:`redact_result` walks an MCP ``CallToolResult``-shaped JSON value (``content[].text``,
``content[].resource.text``, every string in ``structuredContent``, and any other string leaf)
and replaces each secret with ``[REDACTED:<rule>:<sha256[:8]>]``. Base64 binary payloads
(``data`` of image/audio content, ``resource.blob``) are left alone: a marker would corrupt them.
A secret found inside a base64 run of text replaces the whole run. The input is never modified.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trackwrap.inspectors._secret_rules import SecretRule, SecretScanner

__all__ = ["RedactionHit", "mask_arguments", "redact_result", "redact_text"]

_DEFAULT_SCANNER = SecretScanner()
_BINARY_TYPES = frozenset({"image", "audio"})
_SECRET_KEY = re.compile(
    r"secret|token|passw|pwd|api[_-]?key|access[_-]?key|private[_-]?key|credential", re.IGNORECASE
)
#: What a string value under a secret-named key (``"password": "…"``) becomes.
MASKED = "[REDACTED]"


@dataclass(frozen=True, slots=True)
class RedactionHit:
    """One redacted secret: its rule, fingerprint and where it was (``content[0].text``)."""

    rule: str
    fingerprint: str
    location: str


def redact_text(
    text: str, *, location: str = "", rules: Sequence[SecretRule] | None = None
) -> tuple[str, list[RedactionHit]]:
    """``text`` with every secret replaced by its marker, and the hits."""
    scanner = _DEFAULT_SCANNER if rules is None else SecretScanner(tuple(rules))
    hits: list[RedactionHit] = []
    return _redact_string(text, location, scanner, hits), hits


def redact_result(
    result: Any, *, rules: Sequence[SecretRule] | None = None
) -> tuple[Any, list[RedactionHit]]:
    """A redacted copy of ``result`` and what was redacted (``rules`` default to the table the
    secrets inspector uses)."""
    scanner = _DEFAULT_SCANNER if rules is None else SecretScanner(tuple(rules))
    hits: list[RedactionHit] = []
    return _walk(result, "", scanner, hits), hits


def mask_arguments(arguments: Any) -> Any:
    """A copy of a call's arguments fit to store or show: every secret the scanner knows
    replaced by its marker, and every string under a secret-named key (``password``,
    ``api_key``, ``token`` …) replaced by ``[REDACTED]``."""
    masked, _hits = redact_result(arguments)
    return _mask_keyed(masked)


def _mask_keyed(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            key: MASKED if isinstance(item, str) and isinstance(key, str)
            and _SECRET_KEY.search(key) else _mask_keyed(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask_keyed(item) for item in value]
    return value


def _walk(value: Any, location: str, scanner: SecretScanner, hits: list[RedactionHit]) -> Any:
    if isinstance(value, str):
        return _redact_string(value, location, scanner, hits)
    if isinstance(value, Mapping):
        binary = value.get("type") in _BINARY_TYPES
        copy: dict[Any, Any] = {}
        for key, item in value.items():
            where = f"{location}.{key}" if location else str(key)
            if (key == "data" and binary) or key == "blob":
                copy[key] = item
            else:
                copy[key] = _walk(item, where, scanner, hits)
        return copy
    if isinstance(value, list | tuple):
        return [_walk(item, f"{location}[{i}]", scanner, hits) for i, item in enumerate(value)]
    return value


def _redact_string(
    text: str, location: str, scanner: SecretScanner, hits: list[RedactionHit]
) -> str:
    matches = scanner.scan(text)
    if not matches:
        return text
    pieces: list[str] = []
    cursor = 0
    for match in matches:
        pieces.append(text[cursor : match.start])
        pieces.append(f"[REDACTED:{match.rule}:{match.digest}]")
        cursor = match.end
        hits.append(RedactionHit(rule=match.rule, fingerprint=match.fingerprint, location=location))
    pieces.append(text[cursor:])
    return "".join(pieces)
