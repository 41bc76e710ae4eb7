"""JSON-RPC wire helpers: id keys, synthesized answers, and the one serializer trackwrap uses."""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "INVALID_REQUEST",
    "PARSE_ERROR",
    "UPSTREAM_GONE",
    "dumps",
    "error_response",
    "id_key",
    "is_valid_id",
    "result_response",
    "tool_error_result",
]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
UPSTREAM_GONE = -32003
"""The upstream server exited while a request was pending (an unused code in -32002..-32019)."""

IdKey = tuple[str, Any]


def id_key(msg_id: object) -> IdKey:
    """A dict key that keeps the JSON type of an id: ``1``, ``1.0``, ``true`` and ``"1"`` differ."""
    return (type(msg_id).__name__, msg_id)


def is_valid_id(msg_id: object) -> bool:
    """MCP ids are strings or integers (never bool, float or null)."""
    return isinstance(msg_id, str) or (isinstance(msg_id, int) and not isinstance(msg_id, bool))


def dumps(obj: object) -> bytes:
    """Compact UTF-8 JSON, one line; lone surrogates fall back to ``\\u`` escapes."""
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def error_response(msg_id: object, code: int, message: str, data: object = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": msg_id, "error": error}


def result_response(msg_id: object, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "result": result}


def tool_error_result(text: str) -> dict[str, Any]:
    """A ``CallToolResult`` the model can read: shown to it, unlike a JSON-RPC error."""
    return {
        "content": [{"type": "text", "text": text}],
        "isError": True,
        "resultType": "complete",
    }
