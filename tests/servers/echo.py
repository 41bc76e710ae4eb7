"""A minimal raw MCP server for relay tests and benchmarks (no SDK, so it is fast and exact).

Speaks both eras: ``initialize`` (handshake) and ``server/discover`` (2026-07-28). Tools:
``echo(message)``, ``big(size)`` (a result of ``size`` bytes), ``crash()`` (exits mid-call),
``write_file(path, content)`` (writes a real file: proves whether a call reached the server),
``ask_client()`` (sends a server->client ``roots/list`` request, then answers with its reply).

Flags: ``--record FILE`` appends every line received; ``--noise`` prints non-JSON banners on
stdout; ``--stderr-bytes N`` writes N bytes to stderr at start; ``--ignore-stdin-close`` keeps
running after stdin closes (until killed); ``--grandchild FILE`` starts a sleeping grandchild
and writes its pid to FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

TOOLS = [
    {"name": "echo", "description": "Echo a message",
     "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}}},
    {"name": "big", "description": "A large result",
     "inputSchema": {"type": "object", "properties": {"size": {"type": "integer"}}}},
    {"name": "crash", "description": "Exit mid-call", "inputSchema": {"type": "object"}},
    {"name": "write_file", "description": "Write a file",
     "inputSchema": {"type": "object", "properties": {"path": {"type": "string"},
                                                      "content": {"type": "string"}}}},
    {"name": "ask_client", "description": "Ask the client for its roots",
     "inputSchema": {"type": "object"}},
]

out = sys.stdout.buffer


def send(msg: Any) -> None:
    out.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
    out.flush()


def text_result(text: str, modern: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": False}
    if modern:
        result["resultType"] = "complete"
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--record")
    ap.add_argument("--noise", action="store_true")
    ap.add_argument("--stderr-bytes", type=int, default=0)
    ap.add_argument("--ignore-stdin-close", action="store_true")
    ap.add_argument("--grandchild")
    opts = ap.parse_args()
    record = open(opts.record, "ab", buffering=0) if opts.record else None
    if opts.grandchild:
        gc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(opts.grandchild, "w") as f:
            f.write(str(gc.pid))
    if opts.stderr_bytes:
        chunk = b"e" * 1023 + b"\n"
        for _ in range(opts.stderr_bytes // 1024):
            sys.stderr.buffer.write(chunk)
        sys.stderr.buffer.flush()
    if opts.noise:
        out.write(b"echo server starting up (not JSON)\n")
        out.flush()
    modern = False
    pending_ask: Any = None
    for line in sys.stdin.buffer:
        if record is not None:
            record.write(line)
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if not isinstance(msg, dict):
            continue
        method = msg.get("method")
        msg_id = msg.get("id")
        if method is None:
            if pending_ask is not None and msg_id == "s2c-1":
                roots = msg.get("result", {}).get("roots", [])
                send({"jsonrpc": "2.0", "id": pending_ask,
                      "result": text_result(f"roots: {len(roots)}", modern)})
                pending_ask = None
            continue
        if "id" not in msg:
            continue
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": msg_id, "result": {
                "protocolVersion": msg.get("params", {}).get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "echo", "version": "1.0"}}})
        elif method == "server/discover":
            modern = True
            send({"jsonrpc": "2.0", "id": msg_id, "result": {
                "resultType": "complete",
                "supportedVersions": ["2026-07-28"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "echo", "version": "1.0"}}})
        elif method == "tools/list":
            result: dict[str, Any] = {"tools": TOOLS}
            if modern:
                result["resultType"] = "complete"
            send({"jsonrpc": "2.0", "id": msg_id, "result": result})
        elif method == "tools/call":
            params = msg.get("params", {})
            name = params.get("name")
            args = params.get("arguments", {}) or {}
            if name == "echo":
                send({"jsonrpc": "2.0", "id": msg_id,
                      "result": text_result(str(args.get("message", "")), modern)})
            elif name == "big":
                send({"jsonrpc": "2.0", "id": msg_id,
                      "result": text_result("x" * int(args.get("size", 0)), modern)})
            elif name == "crash":
                sys.stderr.write("echo server: crashing as asked\n")
                sys.stderr.flush()
                os._exit(3)
            elif name == "write_file":
                with open(args["path"], "w") as f:
                    f.write(args.get("content", ""))
                send({"jsonrpc": "2.0", "id": msg_id, "result": text_result("written", modern)})
            elif name == "ask_client":
                pending_ask = msg_id
                send({"jsonrpc": "2.0", "id": "s2c-1", "method": "roots/list"})
            else:
                send({"jsonrpc": "2.0", "id": msg_id,
                      "error": {"code": -32602, "message": f"unknown tool {name}"}})
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": msg_id, "result": {}})
        else:
            send({"jsonrpc": "2.0", "id": msg_id,
                  "error": {"code": -32601, "message": f"method not found: {method}"}})
    if opts.ignore_stdin_close:
        while True:
            time.sleep(1)


if __name__ == "__main__":
    main()
