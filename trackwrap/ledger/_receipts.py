"""Receipts: a collector's signed statement that it holds a chain through a given record.

A receipt is a DSSE envelope (JSON text) over the canonical JSON of::

    {"v": 1, "collector": "ed25519:…", "device": "laptop-7", "session": "sess-…",
     "segment": 3, "seq": 141, "chain_tip": "sha256:…", "segment_hash": "sha256:…",
     "received_at_ms": 1770000000000}

``chain_tip`` is the hash of record ``seq`` (the segment's seal). Once a receipt is held, the
chain through ``seq`` is witnessed outside the laptop: truncating or rewriting it is caught by
``verify`` even by someone holding the device key.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from trackwrap._canonical import CanonicalError, canonical_json, loads_strict
from trackwrap.errors import SignatureError

__all__ = ["RECEIPT_PAYLOAD_TYPE", "Receipt", "read_receipt", "sign_receipt"]

RECEIPT_PAYLOAD_TYPE = "application/vnd.trackwrap.receipt.v1+json"
_FIELDS = ("collector", "device", "session", "segment", "seq", "chain_tip", "segment_hash",
           "received_at_ms")


@dataclass(frozen=True, slots=True)
class Receipt:
    """A receipt's claims and its envelope."""

    collector: str
    device: str
    session: str
    segment: int
    seq: int
    chain_tip: str
    segment_hash: str
    received_at_ms: int
    envelope: str

    def claims(self) -> dict[str, object]:
        return {"v": 1, **{name: getattr(self, name) for name in _FIELDS}}


def sign_receipt(key: object, claims: Mapping[str, object]) -> Receipt:
    """Sign ``claims`` (the fields above, ``collector`` = the key's id) with ``key``
    (a :class:`trackwrap.crypto.SigningKey`).

    Raises:
        SignatureError: missing or malformed claims.
    """
    from trackwrap.crypto import SigningKey, pae

    if not isinstance(key, SigningKey):
        raise SignatureError("a receipt is signed with a SigningKey")
    body = {"v": 1, **{name: claims.get(name) for name in _FIELDS}}
    body["collector"] = key.key_id
    _check(body)
    try:
        payload = canonical_json(body)
    except CanonicalError as exc:
        raise SignatureError(f"receipt claims cannot be canonicalized: {exc}") from exc
    signature = key.sign(pae(RECEIPT_PAYLOAD_TYPE, payload))
    envelope = json.dumps({
        "payloadType": RECEIPT_PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": key.key_id, "sig": base64.b64encode(signature).decode()}],
    }, separators=(",", ":"))
    return _receipt(body, envelope)


def read_receipt(envelope: str, *, keys: Mapping[str, bytes] | None) -> Receipt:
    """Parse a receipt; with ``keys`` (key id -> raw public key) also check its signature.

    Raises:
        SignatureError: malformed, signed by an unknown key, or a bad signature.
    """
    try:
        outer = loads_strict(envelope.encode("utf-8"))
        signatures = outer["signatures"]
        key_id, sig = signatures[0]["keyid"], signatures[0]["sig"]
        payload = base64.b64decode(outer["payload"], validate=True)
        signature = base64.b64decode(sig, validate=True)
        body = loads_strict(payload)
    except (UnicodeError, ValueError, RecursionError, KeyError, TypeError, IndexError,
            binascii.Error) as exc:
        raise SignatureError(f"malformed receipt: {exc}") from exc
    if outer.get("payloadType") != RECEIPT_PAYLOAD_TYPE or not isinstance(body, dict):
        raise SignatureError("not a trackwrap receipt")
    _check(body)
    if body["collector"] != key_id:
        raise SignatureError("the receipt's collector is not its signer")
    if keys is not None:
        from trackwrap.crypto import pae, verify_ed25519

        public = keys.get(str(key_id))
        if public is None:
            raise SignatureError(f"receipt signed by unknown collector key {key_id}")
        try:
            canonical = canonical_json(body)
        except CanonicalError as exc:
            raise SignatureError(f"malformed receipt payload: {exc}") from exc
        if canonical != payload:
            raise SignatureError("malformed receipt payload: not canonical JSON")
        verify_ed25519(public, signature, pae(RECEIPT_PAYLOAD_TYPE, payload))
    return _receipt(body, envelope)


def _check(body: Mapping[str, object]) -> None:
    for name in _FIELDS:
        value = body.get(name)
        wanted_int = name in ("segment", "seq", "received_at_ms")
        if (type(value) is not int) if wanted_int else not isinstance(value, str):
            raise SignatureError(f"malformed receipt: {name} is missing or of the wrong type")
    if body.get("v") != 1:
        raise SignatureError("unsupported receipt version")


def _receipt(body: Mapping[str, object], envelope: str) -> Receipt:
    return Receipt(
        collector=str(body["collector"]), device=str(body["device"]),
        session=str(body["session"]), segment=int(str(body["segment"])),
        seq=int(str(body["seq"])), chain_tip=str(body["chain_tip"]),
        segment_hash=str(body["segment_hash"]),
        received_at_ms=int(str(body["received_at_ms"])), envelope=envelope,
    )
