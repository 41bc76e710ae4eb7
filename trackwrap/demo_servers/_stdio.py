"""MCP's stdio transport for the demo servers: newline-delimited JSON-RPC 2.0 (stdlib only).

Both protocol eras are served the same way: a handshake-era client sends ``initialize`` first;
a 2026-07-28 client sends ``server/discover`` and then stateless requests, each carrying the
protocol version in ``params._meta``. A request is answered in the era it was sent in, so a
result to a 2026-07-28 request carries ``"resultType": "complete"``, and the cacheable ones
(``server/discover``, ``tools/list``) say they may not be reused (``"ttlMs": 0``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

__all__ = [
    "HANDSHAKE_VERSION",
    "MODERN_VERSION",
    "Tool",
    "ToolResult",
    "is_modern",
    "requests",
    "send",
    "serve",
]

#: The handshake-era protocol version the demo servers answer ``initialize`` with.
HANDSHAKE_VERSION = "2025-06-18"
#: The stateless protocol version the demo servers answer ``server/discover`` with.
MODERN_VERSION = "2026-07-28"
_VERSION_META = "io.modelcontextprotocol/protocolVersion"
_METHOD_NOT_FOUND = -32601
_INVALID_PARAMS = -32602
#: The caching hints a 2026-07-28 cacheable result must carry: the same for everyone, and
#: stale at once.
_UNCACHED = {"cacheScope": "public", "ttlMs": 0}


def send(msg: Any) -> None:
    """Write one JSON-RPC message as a line on stdout."""
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def requests(lines: Iterable[str], *, record: IO[str] | None = None) -> Iterator[dict[str, Any]]:
    """The requests (messages with an ``id`` and a ``method``) among ``lines``.

    Every line is appended to ``record`` first, when given; lines that are not a JSON object,
    notifications and responses are skipped.
    """
    for line in lines:
        if record is not None:
            record.write(line)
            record.flush()
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict) and "id" in msg and "method" in msg:
            yield msg


def is_modern(msg: Mapping[str, Any]) -> bool:
    """Whether a request was sent in the 2026-07-28 era (its ``_meta`` names the version)."""
    params = msg.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and _VERSION_META in meta


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool answers: one text block, and whether it is an error."""

    text: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool a server offers: its definition and the function that runs it."""

    name: str
    description: str
    input_schema: Mapping[str, Any]
    run: Callable[[Mapping[str, Any]], ToolResult]

    def definition(self) -> dict[str, Any]:
        """The tool as ``tools/list`` shows it."""
        return {
            "name": self.name,
            "description": self.description,
            "inputSchema": dict(self.input_schema),
        }


def serve(name: str, tools: Iterable[Tool], *, lines: Iterable[str] | None = None) -> None:
    """Answer ``initialize``, ``server/discover``, ``tools/list``, ``tools/call`` and ``ping``
    until ``lines`` (stdin by default) end; any other method is ``-32601``."""
    by_name = {tool.name: tool for tool in tools}
    info = {"name": name, "version": "1"}
    for msg in requests(sys.stdin if lines is None else lines):
        method, msg_id = msg["method"], msg["id"]
        modern = method == "server/discover" or is_modern(msg)
        result: dict[str, Any]
        if method == "initialize":
            result = {"protocolVersion": HANDSHAKE_VERSION,
                      "capabilities": {"tools": {}}, "serverInfo": info}
        elif method == "server/discover":
            result = {"supportedVersions": [MODERN_VERSION],
                      "capabilities": {"tools": {}}, "serverInfo": info, **_UNCACHED}
        elif method == "tools/list":
            result = {"tools": [tool.definition() for tool in by_name.values()]}
            if modern:
                result.update(_UNCACHED)
        elif method == "ping":
            result = {}
        elif method == "tools/call":
            try:
                answer = _call(by_name, msg.get("params"))
            except _BadCall as exc:
                send(_error(msg_id, _INVALID_PARAMS, str(exc)))
                continue
            result = {"content": [{"type": "text", "text": answer.text}],
                      "isError": answer.is_error}
        else:
            send(_error(msg_id, _METHOD_NOT_FOUND, f"method not found: {method}"))
            continue
        if modern:
            result["resultType"] = "complete"
        send({"jsonrpc": "2.0", "id": msg_id, "result": result})


class _BadCall(Exception):
    """A ``tools/call`` naming no known tool or carrying arguments that are not an object."""


def _call(tools: Mapping[str, Tool], params: object) -> ToolResult:
    params = params if isinstance(params, dict) else {}
    name = params.get("name")
    tool = tools.get(name) if isinstance(name, str) else None
    if tool is None:
        raise _BadCall(f"unknown tool {name!r}")
    arguments = params.get("arguments")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise _BadCall("arguments must be an object")
    return tool.run(arguments)


def _error(msg_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}
