"""Execution tokens: a short-lived, signed permit for exactly one allowed action.

A token is three dot-separated fields::

    <base64url(payload)>.<base64url(signature)>.<key_id>

``payload`` is the RFC 8785 (JCS) canonical JSON of the claims; ``signature`` is Ed25519 over
``pae(TOKEN_PAYLOAD_TYPE, payload)`` (DSSE v1 PAE, so a token can never pass for a seal or a
manifest, which sign other payload types); ``key_id`` (``ed25519:<16 hex>``, no dots) only
selects the verification key. base64url is unpadded and must be the canonical encoding of its
bytes, and the payload must be byte-for-byte canonical, so each claim set has one token form per
signature.

Claims (exactly these; anything else is refused)::

    v           1
    session     str, non-empty      the session the decision was recorded in
    seq         int >= 0            the decision record's seq
    action_hash str, non-empty      hash of the canonical action the decision allowed
    policy      str | None          policy hash the decision was made under
    manifest    str | None          session manifest digest, if any
    iat_ms      int                 issued at (ms since the epoch)
    exp_ms      int >= iat_ms       expires after this instant
    jti         str, non-empty      unique token id (single use is the forwarder's job)

:func:`verify_token` checks the signature *before* parsing the payload. It does not remember
``jti`` values: single use needs state, which the caller (the forwarder, the ledger) keeps.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import TypeGuard

from trackwrap._canonical import CanonicalError, canonical_json, loads_strict
from trackwrap.crypto._dsse import pae
from trackwrap.crypto._keys import SigningKey, verify_ed25519
from trackwrap.errors import SignatureError

__all__ = ["TOKEN_CLAIMS", "TOKEN_PAYLOAD_TYPE", "mint_token", "verify_token"]

TOKEN_PAYLOAD_TYPE = "application/vnd.trackwrap.exec-token.v1+json"  # noqa: S105 not a secret
TOKEN_VERSION = 1
TOKEN_CLAIMS = frozenset(
    {"v", "session", "seq", "action_hash", "policy", "manifest", "iat_ms", "exp_ms", "jti"}
)
MAX_TOKEN_CHARS = 8192
_MAX_SAFE = 2**53 - 1
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_SIGNATURE_LEN = 64


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str, *, what: str) -> bytes:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise SignatureError(f"malformed execution token: {what} is not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"malformed execution token: {what} is not base64url") from exc
    if _b64url(data) != text:  # stray bits in the last character: not the canonical form
        raise SignatureError(f"malformed execution token: {what} is not canonical base64url")
    return data


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= _MAX_SAFE


def _check_claims(claims: Mapping[str, object]) -> int:
    """Return ``exp_ms`` if ``claims`` is exactly a valid v1 claim set; raise
    :class:`SignatureError` otherwise."""
    keys = set(claims)
    if keys != TOKEN_CLAIMS:
        missing = sorted(TOKEN_CLAIMS - keys)
        unknown = sorted(str(key) for key in keys - TOKEN_CLAIMS)
        raise SignatureError(
            f"execution token claims are wrong: missing {missing or 'none'}, "
            f"unknown {unknown or 'none'}"
        )
    if claims["v"] != TOKEN_VERSION or not _is_int(claims["v"]):
        raise SignatureError(f"unsupported execution token version {claims['v']!r}")
    for name in ("session", "action_hash", "jti"):
        value = claims[name]
        if not isinstance(value, str) or not value:
            raise SignatureError(f"execution token claim {name!r} must be a non-empty string")
    for name in ("policy", "manifest"):
        if not isinstance(claims[name], str | None):
            raise SignatureError(f"execution token claim {name!r} must be a string or null")
    seq, iat_ms, exp_ms = claims["seq"], claims["iat_ms"], claims["exp_ms"]
    if not (_is_int(seq) and _is_int(iat_ms) and _is_int(exp_ms)):
        raise SignatureError("execution token claims seq, iat_ms and exp_ms must be integers")
    if seq < 0:
        raise SignatureError("execution token claim 'seq' must not be negative")
    if exp_ms < iat_ms:
        raise SignatureError("execution token expires before it was issued")
    return exp_ms


def mint_token(key: SigningKey, claims: Mapping[str, object]) -> str:
    """Sign ``claims`` (exactly :data:`TOKEN_CLAIMS`, see the module doc) into a token string.

    Raises:
        SignatureError: the claims are not a valid v1 claim set.
    """
    _check_claims(claims)
    try:
        payload = canonical_json(dict(claims))
    except CanonicalError as exc:
        raise SignatureError(f"execution token claims cannot be canonicalized: {exc}") from exc
    signature = key.sign(pae(TOKEN_PAYLOAD_TYPE, payload))
    return f"{_b64url(payload)}.{_b64url(signature)}.{key.key_id}"


def _parse_payload(payload: bytes) -> dict[str, object]:
    try:
        value = loads_strict(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError too
        raise SignatureError(f"malformed execution token payload: {exc}") from exc
    if not isinstance(value, dict):
        raise SignatureError("malformed execution token payload: not a JSON object")
    try:
        canonical = canonical_json(value)
    except CanonicalError as exc:
        raise SignatureError(f"malformed execution token payload: {exc}") from exc
    if canonical != payload:
        raise SignatureError("malformed execution token payload: not canonical JSON")
    return value


def verify_token(
    token: str,
    *,
    keys: Mapping[str, bytes],
    now_ms: int,
    action_hash: str | None = None,
) -> dict[str, object]:
    """Return the claims of ``token`` if it is genuine, unexpired and (when ``action_hash`` is
    given) issued for exactly that action.

    ``keys`` maps key id to 32 raw Ed25519 public bytes; the caller vouches for the mapping.

    Raises:
        SignatureError: malformed token, unknown key id, bad signature, malformed claims,
            expired (``now_ms > exp_ms``), or issued for a different action.
    """
    if len(token) > MAX_TOKEN_CHARS:
        raise SignatureError("malformed execution token: too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise SignatureError("malformed execution token: expected payload.signature.key_id")
    payload_text, signature_text, key_id = parts
    payload = _unb64url(payload_text, what="payload")
    signature = _unb64url(signature_text, what="signature")
    if len(signature) != _SIGNATURE_LEN:
        raise SignatureError("malformed execution token: an Ed25519 signature is 64 bytes")
    public_raw = keys.get(key_id)
    if public_raw is None:
        raise SignatureError(f"execution token signed by unknown key {key_id!r}")
    try:
        verify_ed25519(public_raw, signature, pae(TOKEN_PAYLOAD_TYPE, payload))
    except SignatureError as exc:
        raise SignatureError(f"execution token signature by {key_id} does not verify") from exc
    claims = _parse_payload(payload)
    exp_ms = _check_claims(claims)
    if now_ms > exp_ms:
        raise SignatureError(f"execution token expired {now_ms - exp_ms} ms ago")
    if action_hash is not None and claims["action_hash"] != action_hash:
        raise SignatureError("execution token was issued for a different action")
    return claims
