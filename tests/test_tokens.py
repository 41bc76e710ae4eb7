"""Execution tokens: mint and verify, and every way a token must be refused.

Each refusal test changes exactly one thing from a token that verifies, so ``SignatureError``
can only come from that change (no message text is asserted).
"""

from __future__ import annotations

import base64
import json

import pytest

from trackwrap._canonical import canonical_json
from trackwrap.crypto import (
    TOKEN_CLAIMS,
    TOKEN_PAYLOAD_TYPE,
    SigningKey,
    mint_token,
    pae,
    verify_ed25519,
    verify_token,
)
from trackwrap.errors import SignatureError

NOW = 1_700_000_000_000
ACTION = "sha256:" + "a1" * 32
OTHER_ACTION = "sha256:" + "b2" * 32


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))



@pytest.fixture
def keys(key: SigningKey) -> dict[str, bytes]:
    return {key.key_id: key.public_raw}


def claims(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "v": 1,
        "session": "01J0SESSION",
        "seq": 7,
        "action_hash": ACTION,
        "policy": "sha256:" + "cc" * 32,
        "manifest": None,
        "iat_ms": NOW,
        "exp_ms": NOW + 30_000,
        "jti": "tok-1",
    }
    return {**base, **overrides}


def test_round_trip(key: SigningKey, keys: dict[str, bytes]) -> None:
    token = mint_token(key, claims())
    assert verify_token(token, keys=keys, now_ms=NOW, action_hash=ACTION) == claims()
    assert verify_token(token, keys=keys, now_ms=NOW + 30_000) == claims()  # exp is inclusive


def test_format_is_payload_signature_key_id(key: SigningKey) -> None:
    token = mint_token(key, claims())
    payload, signature, key_id = token.split(".")
    assert unb64url(payload) == canonical_json(claims())
    assert key_id == key.key_id
    # The signature is over the DSSE PAE with the token payload type (not the bare payload).
    verify_ed25519(key.public_raw, unb64url(signature), pae(TOKEN_PAYLOAD_TYPE, unb64url(payload)))
    assert set(json.loads(unb64url(payload))) == TOKEN_CLAIMS
    assert "=" not in token


def test_tampered_payload_byte_is_refused(key: SigningKey, keys: dict[str, bytes]) -> None:
    payload, signature, key_id = mint_token(key, claims()).split(".")
    raw = bytearray(unb64url(payload))
    at = raw.index(b'"seq":7') + len('"seq":')
    raw[at] = ord("8")  # still canonical JSON, one byte different
    forged = f"{b64url(bytes(raw))}.{signature}.{key_id}"
    with pytest.raises(SignatureError):
        verify_token(forged, keys=keys, now_ms=NOW)


def test_every_single_payload_byte_matters(key: SigningKey, keys: dict[str, bytes]) -> None:
    payload, signature, key_id = mint_token(key, claims()).split(".")
    raw = unb64url(payload)
    for index in range(len(raw)):
        flipped = bytearray(raw)
        flipped[index] ^= 0x01
        with pytest.raises(SignatureError):
            verify_token(f"{b64url(bytes(flipped))}.{signature}.{key_id}", keys=keys, now_ms=NOW)


def test_unknown_key_id_is_refused(key: SigningKey) -> None:
    token = mint_token(key, claims())
    other = SigningKey.generate()
    with pytest.raises(SignatureError):
        verify_token(token, keys={other.key_id: other.public_raw}, now_ms=NOW)
    with pytest.raises(SignatureError):
        verify_token(token, keys={}, now_ms=NOW)


def test_wrong_public_key_under_the_right_id_is_refused(key: SigningKey) -> None:
    token = mint_token(key, claims())
    other = SigningKey.generate()
    with pytest.raises(SignatureError):
        verify_token(token, keys={key.key_id: other.public_raw}, now_ms=NOW)


def test_token_forged_with_another_key_is_refused(key: SigningKey, keys: dict[str, bytes]) -> None:
    attacker = SigningKey.generate()
    payload, signature, _ = mint_token(attacker, claims()).split(".")
    forged = f"{payload}.{signature}.{key.key_id}"  # claims to be signed by the trusted key
    with pytest.raises(SignatureError):
        verify_token(forged, keys=keys, now_ms=NOW)


def test_expired_token_is_refused(key: SigningKey, keys: dict[str, bytes]) -> None:
    token = mint_token(key, claims())
    assert verify_token(token, keys=keys, now_ms=NOW + 30_000)
    with pytest.raises(SignatureError):
        verify_token(token, keys=keys, now_ms=NOW + 30_001)


def test_token_replayed_against_another_action_is_refused(
    key: SigningKey, keys: dict[str, bytes]
) -> None:
    token = mint_token(key, claims(action_hash=ACTION))
    assert verify_token(token, keys=keys, now_ms=NOW, action_hash=ACTION)["jti"] == "tok-1"
    with pytest.raises(SignatureError):
        verify_token(token, keys=keys, now_ms=NOW, action_hash=OTHER_ACTION)


def test_signature_over_another_payload_type_is_refused(
    key: SigningKey, keys: dict[str, bytes]
) -> None:
    """A seal or manifest signature over the same bytes does not make a token."""
    payload = canonical_json(claims())
    signature = key.sign(pae("application/vnd.trackwrap.seal.v1+json", payload))
    with pytest.raises(SignatureError):
        verify_token(f"{b64url(payload)}.{b64url(signature)}.{key.key_id}", keys=keys, now_ms=NOW)
    bare = key.sign(payload)
    with pytest.raises(SignatureError):
        verify_token(f"{b64url(payload)}.{b64url(bare)}.{key.key_id}", keys=keys, now_ms=NOW)


def sign_payload(key: SigningKey, payload: bytes) -> str:
    signature = key.sign(pae(TOKEN_PAYLOAD_TYPE, payload))
    return f"{b64url(payload)}.{b64url(signature)}.{key.key_id}"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(json.dumps(claims()).encode(), id="not-canonical"),
        pytest.param(b"[1]", id="not-an-object"),
        pytest.param(b"\xff", id="not-utf8"),
        pytest.param(canonical_json(claims())[:-1], id="truncated"),
        pytest.param(
            canonical_json(claims()).replace(b'"v":1', b'"v":1,"v":1'), id="duplicate-key"
        ),
        pytest.param(canonical_json(claims(seq=7.5)), id="float"),
        pytest.param(canonical_json(claims(v=2)), id="version"),
        pytest.param(canonical_json({**claims(), "admin": True}), id="extra-claim"),
        pytest.param(
            canonical_json({k: v for k, v in claims().items() if k != "exp_ms"}), id="no-exp"
        ),
        pytest.param(canonical_json(claims(exp_ms="never")), id="exp-not-int"),
        pytest.param(canonical_json(claims(exp_ms=True)), id="exp-bool"),
        pytest.param(canonical_json(claims(iat_ms=NOW + 60_000)), id="exp-before-iat"),
        pytest.param(canonical_json(claims(action_hash="")), id="empty-action"),
        pytest.param(canonical_json(claims(jti=None)), id="no-jti"),
    ],
)
def test_genuinely_signed_malformed_payloads_are_refused(
    key: SigningKey, keys: dict[str, bytes], payload: bytes
) -> None:
    with pytest.raises(SignatureError):
        verify_token(sign_payload(key, payload), keys=keys, now_ms=NOW)


def test_canonical_payload_signed_directly_verifies(
    key: SigningKey, keys: dict[str, bytes]
) -> None:
    """The control for the malformed-payload cases: the same path with good bytes passes."""
    token = sign_payload(key, canonical_json(claims()))
    assert verify_token(token, keys=keys, now_ms=NOW) == claims()


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t + ".x", id="four-parts"),
        pytest.param(lambda t: t.rsplit(".", 1)[0], id="two-parts"),
        pytest.param(lambda _t: "", id="empty"),
        pytest.param(lambda t: "!" + t, id="bad-alphabet"),
        pytest.param(lambda t: t.replace(".", "=.", 1), id="padding"),
        pytest.param(lambda t: t.split(".")[0] + ".AAAA." + t.split(".")[2], id="short-sig"),
        pytest.param(lambda _t: "x" * 9000, id="too-long"),
    ],
)
def test_malformed_tokens_are_refused(key: SigningKey, keys: dict[str, bytes], mangle) -> None:
    with pytest.raises(SignatureError):
        verify_token(mangle(mint_token(key, claims())), keys=keys, now_ms=NOW)


def test_non_canonical_base64_is_refused(key: SigningKey, keys: dict[str, bytes]) -> None:
    payload, signature, key_id = mint_token(key, claims()).split(".")
    # 64 signature bytes end in a 4-bit remainder; setting a spare bit decodes to the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    assert last & 0b1111 == 0
    mangled = signature[:-1] + alphabet[last | 0b0001]
    assert unb64url(mangled) == unb64url(signature)
    with pytest.raises(SignatureError):
        verify_token(f"{payload}.{mangled}.{key_id}", keys=keys, now_ms=NOW)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"seq": -1}, id="negative-seq"),
        pytest.param({"session": ""}, id="empty-session"),
        pytest.param({"policy": 5}, id="policy-int"),
        pytest.param({"exp_ms": NOW - 1}, id="exp-before-iat"),
        pytest.param({"iat_ms": 2**60}, id="unsafe-int"),
        pytest.param({"extra": 1}, id="unknown-claim"),
    ],
)
def test_mint_refuses_bad_claims(key: SigningKey, bad: dict[str, object]) -> None:
    with pytest.raises(SignatureError):
        mint_token(key, claims(**bad))


def test_mint_refuses_missing_claims(key: SigningKey) -> None:
    partial = claims()
    del partial["jti"]
    with pytest.raises(SignatureError):
        mint_token(key, partial)
