"""RFC 8785 (JCS) canonical JSON, fast.

For values made of dicts with string keys, lists, strings, booleans, None and integers within
+/-(2**53 - 1), JCS equals ``json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)``: both escape exactly ``"``, ``\\``, and the control characters below
U+0020 (short forms for ``\\b \\t \\n \\f \\r``, lowercase ``\\u00xx`` otherwise). The one
difference, key order by UTF-16 code units rather than code points, only shows when a key holds
a character above U+FFFF; such values, floats, and anything unusual go through the ``rfc8785``
reference implementation, which also raises for what JCS cannot encode (NaN, lone
surrogates, integers beyond 2**53).
"""

from __future__ import annotations

import json
import re
from typing import Any

import rfc8785

__all__ = [
    "CanonicalError",
    "StrictJsonError",
    "canonical_json",
    "is_canonical",
    "is_plain_json",
    "loads_strict",
]

_MAX_SAFE = 2**53 - 1
_encode = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


class CanonicalError(ValueError):
    """A value that has no RFC 8785 form."""


def is_plain_json(value: object, depth: int = 0) -> bool:
    """True when ``value`` holds only dicts with BMP string keys, lists, strings, booleans, None
    and integers within +/-(2**53 - 1): the values the fast encoder renders exactly."""
    if value is None or isinstance(value, str | bool):
        return True
    if isinstance(value, int):
        return -_MAX_SAFE <= value <= _MAX_SAFE
    if depth > 64:
        return False
    if isinstance(value, dict):
        return all(
            isinstance(key, str)
            and not (key and max(key) > "\uffff")
            and is_plain_json(item, depth + 1)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return all(is_plain_json(item, depth + 1) for item in value)
    return False


def canonical_json(value: Any, *, plain: bool | None = None) -> bytes:
    """The RFC 8785 bytes of ``value``; :class:`CanonicalError` if it has none.

    ``plain`` is what :func:`is_plain_json` said of ``value``, when the caller already asked."""
    if plain if plain is not None else is_plain_json(value):
        try:
            return _encode(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: the reference implementation names the problem
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, ValueError, TypeError, RecursionError) as exc:
        raise CanonicalError(str(exc) or type(exc).__name__) from exc


# A number token of 16+ digits (beyond the safe-integer range) or a 4-byte UTF-8 character.
_SLOW_PATH = re.compile(rb'(?:":|[,\[])-?[0-9]{16}|[\xf0-\xff]')


def is_canonical(raw: bytes, value: Any) -> bool:
    """Whether ``raw`` is exactly the RFC 8785 form of ``value`` (which ``loads_strict`` made
    from it). Fast when the text cannot hold what the plain encoder renders differently from
    JCS: an astral character (JCS orders keys by UTF-16 units) or a number of 16 digits or more
    (beyond the safe-integer range); otherwise the full canonicalization decides."""
    if not _SLOW_PATH.search(raw):
        try:
            return _encode(value).encode("utf-8") == raw
        except (UnicodeEncodeError, ValueError, TypeError, RecursionError):
            pass
    try:
        return canonical_json(value) == raw
    except CanonicalError:
        return False


class StrictJsonError(ValueError):
    """Text that is not strict JSON: a duplicate key, NaN/Infinity, or (when refused) a float."""


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJsonError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_float(text: str) -> object:
    raise StrictJsonError(f"non-integer number {text}")


def _no_constant(text: str) -> object:
    raise StrictJsonError(f"{text} is not JSON")


def loads_strict(text: str | bytes, *, floats: bool = False) -> Any:
    """``json.loads`` that rejects duplicate keys and NaN/Infinity, and floats unless asked.

    Raises :class:`StrictJsonError` for those, ``ValueError`` (``JSONDecodeError``,
    ``UnicodeDecodeError``) for text that is not JSON at all, ``RecursionError`` when too deep.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if floats:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    return json.loads(
        text, object_pairs_hook=_no_duplicates, parse_float=_no_float, parse_constant=_no_constant
    )
