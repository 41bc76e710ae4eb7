"""Ed25519 signing keys, key ids and signature verification.

``cryptography`` is imported here and in the key store only; every error it raises is translated
into :class:`~trackwrap.errors.SignatureError` or :class:`~trackwrap.errors.KeyStoreError`.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from trackwrap.errors import KeyStoreError, SignatureError

__all__ = ["SigningKey", "key_id_for", "verify_ed25519"]

_RAW_KEY_LEN = 32
_KEY_ID_HEX_CHARS = 16


def _public_key(public_raw: bytes) -> Ed25519PublicKey:
    if len(public_raw) != _RAW_KEY_LEN:
        raise SignatureError(
            f"an Ed25519 public key is {_RAW_KEY_LEN} bytes, not {len(public_raw)}"
        )
    try:
        return Ed25519PublicKey.from_public_bytes(public_raw)
    except ValueError as exc:
        raise SignatureError(f"not a valid Ed25519 public key: {exc}") from exc


def key_id_for(public_raw: bytes) -> str:
    """``"ed25519:"`` + first 16 hex chars of SHA-256 over the SubjectPublicKeyInfo DER."""
    spki = _public_key(public_raw).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "ed25519:" + hashlib.sha256(spki).hexdigest()[:_KEY_ID_HEX_CHARS]


def verify_ed25519(public_raw: bytes, signature: bytes, data: bytes) -> None:
    """Return if ``signature`` is a valid Ed25519 signature of ``data``; raise otherwise.

    Raises:
        SignatureError: the key is malformed or the signature does not verify.
    """
    key = _public_key(public_raw)
    try:
        key.verify(signature, data)
    except InvalidSignature as exc:
        raise SignatureError("Ed25519 signature does not verify") from exc


class SigningKey:
    """An Ed25519 private key with its public half and key id.

    ``repr`` never shows key material.
    """

    __slots__ = ("_private", "key_id", "public_raw")

    key_id: str
    public_raw: bytes

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id_for(self.public_raw)

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_raw(cls, private_raw: bytes) -> SigningKey:
        """Load a key from its 32 raw private bytes (the key store's storage form).

        Raises:
            KeyStoreError: the bytes are not an Ed25519 private key.
        """
        if len(private_raw) != _RAW_KEY_LEN:
            raise KeyStoreError(
                f"an Ed25519 private key is {_RAW_KEY_LEN} bytes, not {len(private_raw)}"
            )
        try:
            return cls(Ed25519PrivateKey.from_private_bytes(private_raw))
        except ValueError as exc:
            raise KeyStoreError(f"not a valid Ed25519 private key: {exc}") from exc

    def private_raw(self) -> bytes:
        """The 32 raw private bytes; for the key store only, never log or print them."""
        return self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self._private.sign(data)

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"
