"""DSSE v1 pre-authentication encoding (PAE)."""

from __future__ import annotations

__all__ = ["pae"]


def pae(payload_type: str, payload: bytes) -> bytes:
    """``b"DSSEv1 <len(type)> <type> <len(body)> <body>"``, lengths in bytes, ASCII decimal.

    Signing the PAE rather than the body binds the payload type into the signature, so an object
    signed as one type can never be accepted as another.
    """
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)
