"""Bearer tokens: 256 random bits shown once (``twc_`` + base64url), kept only as SHA-256."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable

from trackwrap.collector._interface import Scope, TokenRecord
from trackwrap.errors import ConfigError

__all__ = ["TOKEN_PREFIX", "issue_token", "parse_scopes", "token_digest"]

TOKEN_PREFIX = "twc_"  # noqa: S105 - a prefix, not a secret
_TOKEN_BYTES = 32
_ID_HEX = 12
_MAX_NAME = 200


def token_digest(token: str) -> str:
    """The hex SHA-256 of a token: what the collector stores and looks up."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def parse_scopes(names: Iterable[str]) -> tuple[Scope, ...]:
    """Scope names as :class:`Scope` values, deduplicated, in a stable order.

    Raises:
        ConfigError: an unknown scope name.
    """
    chosen: set[Scope] = set()
    for name in names:
        try:
            chosen.add(Scope(name))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise ConfigError(f"unknown scope {name!r}; use one of: {known}") from None
    return tuple(s for s in Scope if s in chosen)


def issue_token(
    *, developer: str, scopes: tuple[Scope, ...], device: str | None, now_ms: int
) -> tuple[str, TokenRecord]:
    """A new token and the record to store for it.

    Raises:
        ConfigError: no scope, no developer, or an ``ingest`` token without a device.
    """
    if not scopes:
        raise ConfigError("a token needs at least one scope (ingest, read or approve)")
    if not developer.strip() or len(developer) > _MAX_NAME:
        raise ConfigError("a token names the developer it belongs to (--developer)")
    if Scope.INGEST in scopes and not (device and device.strip()):
        raise ConfigError("an ingest token is bound to one device: give --device NAME")
    if device is not None and (not device.strip() or len(device) > _MAX_NAME):
        raise ConfigError("a device name is a non-empty string of at most 200 characters")
    token = TOKEN_PREFIX + base64.urlsafe_b64encode(
        secrets.token_bytes(_TOKEN_BYTES)).rstrip(b"=").decode("ascii")
    digest = token_digest(token)
    record = TokenRecord(id="tok_" + digest[:_ID_HEX], digest=digest, developer=developer,
                         scopes=scopes, created_ms=now_ms, device=device)
    return token, record

