"""What a collector app is made of: its storage, its receipt key, a clock and its limits."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trackwrap.collector._interface import Storage
from trackwrap.crypto import SigningKey
from trackwrap.errors import CollectorError, ConfigError, KeyStoreError

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_INFLIGHT",
    "MAX_WAIT_S",
    "CollectorConfig",
    "collector_key",
]

DEFAULT_MAX_BODY = 1 << 20
DEFAULT_MAX_INFLIGHT = 32
MAX_WAIT_S = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectorConfig:
    """The collector's collaborators and limits.

    ``storage`` stays the caller's: the app neither opens nor closes it. ``key`` signs
    receipts. ``max_body`` caps a request body (413 beyond); ``max_inflight`` caps concurrent
    ingest requests (503 with ``Retry-After: 1`` beyond, at once); ``max_wait_s`` caps a
    long-poll.
    """

    storage: Storage
    key: SigningKey
    clock_ms: Callable[[], int]
    max_body: int = DEFAULT_MAX_BODY
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    max_wait_s: float = MAX_WAIT_S

    def __post_init__(self) -> None:
        if self.max_body < 1024:
            raise ConfigError(f"--max-body must be at least 1024 bytes, not {self.max_body}")
        if self.max_inflight < 1:
            raise ConfigError(f"--max-inflight must be at least 1, not {self.max_inflight}")


def collector_key(storage: Storage, key_file: Path | None) -> SigningKey:
    """The receipt-signing key: from ``key_file`` (base64 of the raw private key, as
    ``trackwrap keys generate`` writes it), else the storage's own, made on first start.

    Raises:
        ConfigError: ``key_file`` cannot be read or holds no Ed25519 private key.
        CollectorError: the stored key is malformed or cannot be stored.
    """
    if key_file is not None:
        try:
            raw = base64.b64decode(key_file.read_text().strip(), validate=True)
            return SigningKey.from_private_raw(raw)
        except (OSError, ValueError, binascii.Error, KeyStoreError) as exc:
            raise ConfigError(f"cannot read a private key from {key_file}: {exc}") from exc
    raw = storage.load_or_create_key(lambda: SigningKey.generate().private_raw())
    try:
        return SigningKey.from_private_raw(raw)
    except KeyStoreError as exc:
        raise CollectorError(f"the collector's stored key is malformed: {exc}") from exc
