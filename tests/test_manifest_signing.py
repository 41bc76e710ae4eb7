"""Signed manifests: DSSE over the exact bytes, verified against the trust store before parsing."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from trackwrap.crypto import SigningKey, pae
from trackwrap.errors import ProfileError, SignatureError
from trackwrap.manifest import (
    PAYLOAD_TYPE,
    TrustStore,
    default_roles_dir,
    load_role_template,
    new_manifest,
    sign_manifest,
    verify_manifest,
)

DECLARED = datetime(2026, 5, 5, 14, 21, 8, tzinfo=UTC)
NOW = DECLARED + timedelta(minutes=5)
PUBLISHER = "anthropic.com:claude-code:v2.4.1"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def manifest_bytes(
    key: SigningKey | None,
    *,
    role: str = "code-reviewer",
    publisher: str | None = PUBLISHER,
    expires_at: datetime | None = None,
) -> bytes:
    return new_manifest(
        load_role_template(default_roles_dir() / f"{role}.yaml"),
        workspace="acme/payments",
        developer="priya@acme.com",
        agent="claude-code",
        session_id="sess-2026-05-05-7c4a91",
        declared_at=DECLARED,
        publisher=publisher,
        key_id=key.key_id if key is not None else None,
        expires_at=expires_at,
    )


def trusting(key: SigningKey, *, name: str = PUBLISHER, roles: tuple[str, ...] = ()) -> TrustStore:
    return TrustStore().add(name, b64(key.public_raw), roles=roles, now=DECLARED)


def test_sign_and_verify_round_trip(tmp_path: Path) -> None:
    key = SigningKey.generate()
    payload = manifest_bytes(key)
    envelope = sign_manifest(payload, key=key)
    path = tmp_path / "harness_manifest.dsse.json"
    path.write_bytes(envelope)
    verified = verify_manifest(path.read_bytes(), trust=trusting(key), now=NOW, source=str(path))
    assert verified.payload == payload
    assert verified.publisher == PUBLISHER
    assert verified.key_id == key.key_id
    assert verified.envelope_digest == "sha256:" + hashlib.sha256(envelope).hexdigest()
    assert verified.manifest.digest == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert verified.manifest.role == "code-reviewer"
    assert verified.manifest.source == str(path)


def test_envelope_shape_and_signature_over_pae() -> None:
    key = SigningKey.generate()
    payload = manifest_bytes(key)
    envelope = json.loads(sign_manifest(payload, key=key))
    assert set(envelope) == {"payloadType", "payload", "signatures"}
    assert envelope["payloadType"] == PAYLOAD_TYPE
    assert base64.b64decode(envelope["payload"]) == payload
    [signature] = envelope["signatures"]
    assert signature["keyid"] == key.key_id
    # Ed25519 is deterministic: the signature is exactly over PAE(type, payload)
    assert base64.b64decode(signature["sig"]) == key.sign(pae(PAYLOAD_TYPE, payload))


def test_sign_refuses_invalid_manifest_and_wrong_signed_by() -> None:
    key = SigningKey.generate()
    with pytest.raises(ProfileError):
        sign_manifest(b"agent: x\n", key=key)
    other = SigningKey.generate()
    with pytest.raises(SignatureError):
        sign_manifest(manifest_bytes(other), key=key)


def _tamper(envelope: bytes, change: object) -> bytes:
    data = json.loads(envelope)
    assert callable(change)
    change(data)
    return json.dumps(data).encode()


def test_one_flipped_payload_byte_is_refused() -> None:
    key = SigningKey.generate()
    payload = manifest_bytes(key)
    envelope = sign_manifest(payload, key=key)
    index = payload.index(b"tool_calls: 200") + len(b"tool_calls: 2")
    flipped = payload[:index] + bytes([payload[index] ^ 0x01]) + payload[index + 1 :]

    def swap(data: dict[str, object]) -> None:
        data["payload"] = b64(flipped)

    with pytest.raises(SignatureError, match="does not verify"):
        verify_manifest(_tamper(envelope, swap), trust=trusting(key), now=NOW, source="m")


def test_flipped_signature_byte_is_refused() -> None:
    key = SigningKey.generate()
    envelope = sign_manifest(manifest_bytes(key), key=key)

    def flip(data: dict[str, list[dict[str, str]]]) -> None:
        sig = bytearray(base64.b64decode(data["signatures"][0]["sig"]))
        sig[10] ^= 0x80
        data["signatures"][0]["sig"] = b64(bytes(sig))

    with pytest.raises(SignatureError, match="does not verify"):
        verify_manifest(_tamper(envelope, flip), trust=trusting(key), now=NOW, source="m")


def test_wrong_key_under_a_trusted_key_id_is_refused() -> None:
    trusted, attacker = SigningKey.generate(), SigningKey.generate()
    envelope = sign_manifest(manifest_bytes(None), key=attacker)

    def claim(data: dict[str, list[dict[str, str]]]) -> None:
        data["signatures"][0]["keyid"] = trusted.key_id

    with pytest.raises(SignatureError, match="does not verify"):
        verify_manifest(_tamper(envelope, claim), trust=trusting(trusted), now=NOW, source="m")


def test_unknown_publisher_is_refused_with_a_hint() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    envelope = sign_manifest(manifest_bytes(key), key=key)
    with pytest.raises(SignatureError, match="trackwrap trust add") as caught:
        verify_manifest(envelope, trust=trusting(other), now=NOW, source="m")
    assert key.key_id in str(caught.value)
    with pytest.raises(SignatureError, match="unknown publisher key"):
        verify_manifest(envelope, trust=TrustStore(), now=NOW, source="m")


def test_keyid_is_only_a_hint() -> None:
    key = SigningKey.generate()
    envelope = sign_manifest(manifest_bytes(key), key=key)

    def drop(data: dict[str, list[dict[str, str]]]) -> None:
        del data["signatures"][0]["keyid"]

    verified = verify_manifest(_tamper(envelope, drop), trust=trusting(key), now=NOW, source="m")
    assert verified.key_id == key.key_id


def test_expired_manifest_is_refused() -> None:
    key = SigningKey.generate()
    expires = DECLARED + timedelta(hours=1)
    envelope = sign_manifest(manifest_bytes(key, expires_at=expires), key=key)
    verify_manifest(envelope, trust=trusting(key), now=NOW, source="m")
    with pytest.raises(SignatureError, match="expired"):
        verify_manifest(envelope, trust=trusting(key), now=expires, source="m")
    with pytest.raises(SignatureError, match="timezone-aware"):
        verify_manifest(
            envelope,
            trust=trusting(key),
            now=datetime(2026, 5, 5),  # noqa: DTZ001
            source="m",
        )


def test_attestation_publisher_mismatch_is_refused() -> None:
    key = SigningKey.generate()
    envelope = sign_manifest(manifest_bytes(key, publisher="someone-else"), key=key)
    with pytest.raises(SignatureError, match=r"attestation\.publisher"):
        verify_manifest(envelope, trust=trusting(key), now=NOW, source="m")


def test_attestation_signed_by_mismatch_is_refused() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    payload = manifest_bytes(key).replace(key.key_id.encode(), other.key_id.encode())
    envelope = json.dumps(
        {
            "payloadType": PAYLOAD_TYPE,
            "payload": b64(payload),
            "signatures": [{"keyid": key.key_id, "sig": b64(key.sign(pae(PAYLOAD_TYPE, payload)))}],
        }
    ).encode()
    with pytest.raises(SignatureError, match=r"attestation\.signed_by"):
        verify_manifest(envelope, trust=trusting(key), now=NOW, source="m")


def test_attestation_is_optional() -> None:
    key = SigningKey.generate()
    envelope = sign_manifest(manifest_bytes(None, publisher=None), key=key)
    verified = verify_manifest(envelope, trust=trusting(key), now=NOW, source="m")
    assert verified.manifest.attestation is None
    assert verified.publisher == PUBLISHER


def test_publisher_restricted_to_roles() -> None:
    key = SigningKey.generate()
    trust = trusting(key, roles=("analytics-readonly",))
    reviewer = sign_manifest(manifest_bytes(key), key=key)
    with pytest.raises(SignatureError, match="may sign roles analytics-readonly"):
        verify_manifest(reviewer, trust=trust, now=NOW, source="m")
    readonly = sign_manifest(manifest_bytes(key, role="analytics-readonly"), key=key)
    assert verify_manifest(readonly, trust=trust, now=NOW, source="m").manifest.role == (
        "analytics-readonly"
    )


def test_other_payload_type_is_refused() -> None:
    key = SigningKey.generate()
    payload = manifest_bytes(key)
    other_type = "application/vnd.trackwrap.execution-token.v1+json"
    envelope = json.dumps(
        {
            "payloadType": other_type,
            "payload": b64(payload),
            "signatures": [{"keyid": key.key_id, "sig": b64(key.sign(pae(other_type, payload)))}],
        }
    ).encode()
    with pytest.raises(SignatureError, match="payloadType"):
        verify_manifest(envelope, trust=trusting(key), now=NOW, source="m")


@pytest.mark.parametrize(
    "envelope",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"payloadType": "x"}',
        b'{"payloadType": 1, "payload": "", "signatures": [{"sig": ""}]}',
        b'{"payloadType": "a", "payload": "!!!", "signatures": [{"sig": ""}]}',
        b'{"payloadType": "a", "payload": "", "signatures": []}',
        b'{"payloadType": "a", "payload": "", "signatures": [{"sig": "%%%"}]}',
        b'{"payloadType": "a", "payload": "", "signatures": [{"sig": "", "extra": 1}]}',
        b'{"payloadType": "a", "payload": "", "signatures": [{"keyid": 3, "sig": ""}]}',
        b'{"payloadType": "a", "payload": "", "payload": "", "signatures": [{"sig": ""}]}',
        b'{"payloadType": "a", "payload": "", "signatures": [{"sig": ""}], "x": NaN}',
        b'{"payloadType": "a", "payload": "", "signatures": [{"sig": ""}], "extra": 1}',
    ],
)
def test_malformed_envelopes_are_signature_errors(envelope: bytes) -> None:
    key = SigningKey.generate()
    with pytest.raises(SignatureError):
        verify_manifest(envelope, trust=trusting(key), now=NOW, source="m")


def test_signed_but_invalid_payload_is_a_profile_error_after_verification() -> None:
    key = SigningKey.generate()
    payload = b"agent: claude-code\nmanifest:\n  role: x\n  workspace: .\n  allowed_tools: [a(b)]\n"
    envelope = json.dumps(
        {
            "payloadType": PAYLOAD_TYPE,
            "payload": b64(payload),
            "signatures": [{"keyid": key.key_id, "sig": b64(key.sign(pae(PAYLOAD_TYPE, payload)))}],
        }
    ).encode()
    with pytest.raises(ProfileError, match=r"^m:5: manifest\.allowed_tools\[0\]"):
        verify_manifest(envelope, trust=trusting(key), now=NOW, source="m")
    # an unsigned one never reaches the parser
    with pytest.raises(SignatureError):
        verify_manifest(envelope, trust=TrustStore(), now=NOW, source="m")
