"""Signed tool lists: a publisher pinned for an MCP server vouches for the exact tools it offers.

The payload is the canonical JSON of ``{"v": 1, "server": NAME, "tools": {tool: digest}}``
(digests as trackwrap pins them: SHA-256 of the canonical tool object), in a DSSE envelope
signed with ed25519. With a publisher pinned for a server, only tools whose digest such a
verified list names reach the agent; an unsigned or badly signed update is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

from trackwrap._canonical import CanonicalError, canonical_json, loads_strict
from trackwrap.crypto import SigningKey, pae, verify_ed25519
from trackwrap.errors import SignatureError

__all__ = ["TOOLS_PAYLOAD_TYPE", "sign_tool_list", "verify_tool_list"]

TOOLS_PAYLOAD_TYPE = "application/vnd.trackwrap.tool-manifest.v1+json"


def sign_tool_list(server: str, digests: Mapping[str, str], *, key: SigningKey) -> bytes:
    """The DSSE envelope (JSON bytes) of ``server``'s tool list, signed with ``key``."""
    try:
        payload = canonical_json({"v": 1, "server": server, "tools": dict(digests)})
    except CanonicalError as exc:
        raise SignatureError(f"tool list of {server} cannot be signed: {exc}") from exc
    sig = key.sign(pae(TOOLS_PAYLOAD_TYPE, payload))
    envelope = {
        "payloadType": TOOLS_PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": key.key_id, "sig": base64.b64encode(sig).decode()}],
    }
    return json.dumps(envelope, indent=2).encode() + b"\n"


def verify_tool_list(envelope: bytes, *, server: str, keys: Mapping[str, bytes]) -> dict[str, str]:
    """The tool digests a trusted key signed for ``server``; SignatureError otherwise."""
    try:
        doc = loads_strict(envelope)
        if doc.get("payloadType") != TOOLS_PAYLOAD_TYPE:
            raise SignatureError(f"not a signed tool list (payloadType {doc.get('payloadType')!r})")
        payload = base64.b64decode(doc["payload"], validate=True)
        signatures = [(s["keyid"], base64.b64decode(s["sig"], validate=True))
                      for s in doc["signatures"]]
    except SignatureError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, RecursionError) as exc:
        raise SignatureError(f"malformed signed tool list: {exc}") from exc
    for key_id, sig in signatures:
        public = keys.get(key_id)
        if public is None:
            continue
        verify_ed25519(public, sig, pae(TOOLS_PAYLOAD_TYPE, payload))
        body = loads_strict(payload)
        if not isinstance(body, dict) or body.get("server") != server:
            raise SignatureError(f"the signed tool list is for {body.get('server')!r}, "
                                 f"not {server!r}")
        tools = body.get("tools")
        if not isinstance(tools, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in tools.items()
        ):
            raise SignatureError("malformed signed tool list: tools must map names to digests")
        return dict(tools)
    raise SignatureError(f"the tool list is not signed by a publisher pinned for {server}")
