"""DSSE envelopes for session manifests: sign the exact bytes, verify before parsing."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from trackwrap._canonical import loads_strict
from trackwrap.crypto import SigningKey, pae, verify_ed25519
from trackwrap.errors import SignatureError
from trackwrap.manifest._model import Manifest, parse_manifest
from trackwrap.manifest._trust import Publisher, TrustStore

__all__ = ["PAYLOAD_TYPE", "VerifiedManifest", "sign_manifest", "verify_manifest"]

#: The DSSE payload type of a session manifest; no other signed object uses it.
PAYLOAD_TYPE = "application/vnd.trackwrap.session-manifest.v1+yaml"
_MAX_SIGNATURES = 8


@dataclass(frozen=True, slots=True)
class VerifiedManifest:
    """A manifest whose envelope a trusted publisher signed, with what binds it."""

    manifest: Manifest
    publisher: str
    key_id: str
    payload: bytes
    envelope_digest: str


def sign_manifest(payload: bytes, *, key: SigningKey) -> bytes:
    """The DSSE envelope (JSON bytes) over ``payload``, signed by ``key``.

    The payload is parsed first, so only a valid manifest is ever signed; if it names
    ``attestation.signed_by`` that must be this key's id.

    Raises:
        ProfileError: the payload is not a valid manifest.
        SignatureError: ``attestation.signed_by`` names a different key.
    """
    manifest = parse_manifest(payload, source="<manifest to sign>")
    signed_by = manifest.attestation.signed_by if manifest.attestation else None
    if signed_by is not None and signed_by != key.key_id:
        raise SignatureError(
            f"the manifest says signed_by {signed_by} but the signing key is {key.key_id}"
        )
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": key.key_id, "sig": base64.b64encode(signature).decode("ascii")}],
    }
    return json.dumps(envelope, separators=(",", ":")).encode("ascii") + b"\n"


def verify_manifest(
    envelope: bytes, *, trust: TrustStore, now: datetime, source: str
) -> VerifiedManifest:
    """Verify a signed manifest and parse the exact bytes that were signed.

    Order: strict envelope parse; a signature by a trusted publisher key that verifies over
    ``PAE(payloadType, payload)``; only then the payload is parsed; ``attestation`` must name
    that publisher and key; the publisher may sign this role; ``expires_at`` is not past.

    Raises:
        SignatureError: anything about the envelope, key, signature, attestation, role
            permission or expiry.
        ProfileError: the signed payload is not a valid manifest.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise SignatureError("now must be timezone-aware")
    payload_type, payload, signatures = _parse_envelope(envelope, source=source)
    if payload_type != PAYLOAD_TYPE:
        raise SignatureError(
            f"{source}: payloadType {payload_type!r} is not a session manifest ({PAYLOAD_TYPE})"
        )
    publisher = _signer(payload, signatures, trust=trust, source=source)
    manifest = parse_manifest(payload, source=source)
    attestation = manifest.attestation
    if attestation is not None:
        if attestation.publisher is not None and attestation.publisher != publisher.name:
            raise SignatureError(
                f"{source}: attestation.publisher {attestation.publisher!r} is not the "
                f"trusted publisher of key {publisher.key_id} ({publisher.name!r})"
            )
        if attestation.signed_by is not None and attestation.signed_by != publisher.key_id:
            raise SignatureError(
                f"{source}: attestation.signed_by {attestation.signed_by} is not the key that "
                f"signed ({publisher.key_id})"
            )
    if not publisher.may_sign(manifest.role):
        raise SignatureError(
            f"{source}: publisher {publisher.name!r} may sign roles "
            f"{', '.join(publisher.roles)}, not {manifest.role!r}"
        )
    if manifest.expires_at is not None and manifest.expires_at <= now:
        raise SignatureError(
            f"{source}: the manifest expired at {manifest.expires_at.isoformat()}; "
            "declare and sign a new one"
        )
    return VerifiedManifest(
        manifest=manifest,
        publisher=publisher.name,
        key_id=publisher.key_id,
        payload=payload,
        envelope_digest="sha256:" + hashlib.sha256(envelope).hexdigest(),
    )


def _parse_envelope(
    envelope: bytes, *, source: str
) -> tuple[str, bytes, list[tuple[str | None, bytes]]]:
    try:
        data = loads_strict(envelope, floats=True)
    except (ValueError, RecursionError) as exc:
        raise SignatureError(f"{source}: not a DSSE envelope (bad JSON: {exc})") from exc
    if not isinstance(data, dict) or set(data) != {"payloadType", "payload", "signatures"}:
        raise SignatureError(
            f"{source}: not a DSSE envelope (expected exactly payloadType, payload, signatures)"
        )
    payload_type, payload_text, raw_signatures = (
        data["payloadType"],
        data["payload"],
        data["signatures"],
    )
    if not isinstance(payload_type, str) or not isinstance(payload_text, str):
        raise SignatureError(f"{source}: payloadType and payload must be strings")
    payload = _b64(payload_text, what="payload", source=source)
    if (
        not isinstance(raw_signatures, list)
        or not raw_signatures
        or len(raw_signatures) > _MAX_SIGNATURES
    ):
        raise SignatureError(f"{source}: signatures must be a list of 1 to {_MAX_SIGNATURES}")
    signatures: list[tuple[str | None, bytes]] = []
    for item in raw_signatures:
        if not isinstance(item, dict) or not set(item) <= {"keyid", "sig"} or "sig" not in item:
            raise SignatureError(f"{source}: a signature must be {{keyid, sig}}")
        keyid, sig = item.get("keyid"), item["sig"]
        if (keyid is not None and not isinstance(keyid, str)) or not isinstance(sig, str):
            raise SignatureError(f"{source}: keyid and sig must be strings")
        signatures.append((keyid or None, _b64(sig, what="sig", source=source)))
    return payload_type, payload, signatures


def _signer(
    payload: bytes,
    signatures: list[tuple[str | None, bytes]],
    *,
    trust: TrustStore,
    source: str,
) -> Publisher:
    """The trusted publisher whose signature verifies; ``keyid`` is only a hint."""
    message = pae(PAYLOAD_TYPE, payload)
    failure: SignatureError | None = None
    for keyid, sig in signatures:
        candidates: tuple[Publisher, ...]
        if keyid is not None:
            known = trust.by_key_id(keyid)
            candidates = (known,) if known is not None else ()
        else:
            candidates = trust.publishers()
        for publisher in candidates:
            try:
                verify_ed25519(publisher.key, sig, message)
            except SignatureError as exc:
                failure = exc
                continue
            return publisher
    if failure is not None:
        raise SignatureError(
            f"{source}: the signature does not verify with the trusted key; the manifest was "
            "changed after signing or signed by another key"
        ) from failure
    hints = ", ".join(k for k, _ in signatures if k is not None) or "no key id given"
    raise SignatureError(
        f"{source}: unknown publisher key ({hints}); if you trust it, run "
        "`trackwrap trust add <publisher> <public key>`"
    )


def _b64(text: str, *, what: str, source: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"{source}: {what} is not base64: {exc}") from exc

