"""The ledger's record format: canonical bytes, record hashes, strict parsing, seal constants.

A record is the RFC 8785 (JCS) canonical JSON of a dict holding only strings, booleans, null,
integers within +/-(2**53 - 1), lists and dicts with string keys. No floats: then the canonical form
is unambiguous and ``verify`` can demand byte equality.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, cast

from trackwrap._canonical import CanonicalError, canonical_json, is_plain_json, loads_strict
from trackwrap.errors import LedgerError

__all__ = [
    "EVENT_HASH_DOMAIN",
    "KIND_END",
    "KIND_SEAL",
    "KIND_START",
    "RECORD_VERSION",
    "RESERVED_FIELDS",
    "SEAL_PAYLOAD_TYPE",
    "SEAL_TYPE",
    "USAGE_FIELD",
    "canonical",
    "check_values",
    "jcs",
    "parse_strict",
    "record_hash",
]

RECORD_VERSION = 1
EVENT_HASH_DOMAIN = b"trackwrap.event.v1\x00"
KIND_START = "session.start"
KIND_SEAL = "segment.seal"
KIND_END = "session.end"
# What a record spent from its session's budget, ``{"tool_calls": n, "bytes_out": m}``; written
# by ``Ledger.append_decision`` only, so the session counters are the sum over the records.
USAGE_FIELD = "usage"
SEAL_TYPE = "trackwrap/seal/v1"
SEAL_PAYLOAD_TYPE = "application/vnd.trackwrap.seal.v1+json"
RESERVED_FIELDS = frozenset({"v", "session", "seq", "prev", "ts_ms"})
MAX_SAFE_INT = 2**53 - 1


def _check(value: object, where: str) -> None:
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INT:
            raise LedgerError(f"{where}: integer {value} is outside +/-(2**53 - 1)")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise LedgerError(f"{where}: key {key!r} is not a string")
            _check(item, f"{where}.{key}")
        return
    raise LedgerError(
        f"{where}: a {type(value).__name__} cannot go into a ledger record "
        "(only str, int, bool, None, list and dict)"
    )


def check_values(record: Mapping[str, object]) -> None:
    """Raise :class:`LedgerError` unless every value is one a record may hold (cheap pre-check)."""
    as_dict = dict(record)
    if not is_plain_json(as_dict):
        _check(as_dict, "record")


def jcs(value: object) -> bytes:
    """RFC 8785 bytes of an already checked value (raises :class:`CanonicalError`)."""
    return canonical_json(cast(Any, value))


def canonical(record: Mapping[str, object]) -> bytes:
    """The RFC 8785 bytes of ``record``.

    Raises:
        LedgerError: a value that is not str/int/bool/None/list/dict, an int beyond 2**53, a
            non-string key or a string JCS cannot encode (lone surrogate).
    """
    as_dict = dict(record)
    plain = is_plain_json(as_dict)
    if not plain:
        _check(as_dict, "record")  # names the offending value; astral keys pass to JCS
    try:
        return canonical_json(as_dict, plain=plain)
    except CanonicalError as exc:
        raise LedgerError(f"record cannot be canonicalized: {exc}") from exc


def record_hash(raw: bytes) -> str:
    """``"sha256:" + hex(sha256(b"trackwrap.event.v1\\x00" + raw))``: the next record's ``prev``."""
    return "sha256:" + hashlib.sha256(EVENT_HASH_DOMAIN + raw).hexdigest()


class RecordParseError(ValueError):
    """A stored record that is not strict JSON (duplicate keys, floats, NaN, bad UTF-8)."""


def parse_strict(raw: bytes) -> dict[str, object]:
    """Parse a stored record; raise :class:`RecordParseError` unless it is a strict JSON object."""
    try:
        value = loads_strict(raw)
    except (ValueError, RecursionError) as exc:  # StrictJsonError, JSONDecodeError, bad UTF-8
        raise RecordParseError(str(exc)) from exc
    if not isinstance(value, dict):
        raise RecordParseError(f"record is a JSON {type(value).__name__}, not an object")
    return value
