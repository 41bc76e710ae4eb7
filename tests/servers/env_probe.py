"""A minimal raw MCP server with one tool, ``getenv(name)``: the value of an environment
variable in the server's own process ("<unset>" when it has none). Used to see what the wrapper
put into the upstream's environment."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

TOOLS = [{"name": "getenv", "description": "Read one environment variable",
          "inputSchema": {"type": "object", "properties": {"name": {"type": "string"}}}}]


def send(msg: Any) -> None:
    sys.stdout.write(json.dumps(msg, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def main() -> None:
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if not isinstance(msg, dict) or "id" not in msg or "method" not in msg:
            continue
        method, msg_id = msg["method"], msg["id"]
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": msg_id, "result": {
                "protocolVersion": msg.get("params", {}).get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {}}, "serverInfo": {"name": "env-probe",
                                                              "version": "1.0"}}})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": msg_id, "result": {"tools": TOOLS}})
        elif method == "tools/call":
            name = str(msg.get("params", {}).get("arguments", {}).get("name", ""))
            text = os.environ.get(name, "<unset>")
            send({"jsonrpc": "2.0", "id": msg_id, "result": {
                "content": [{"type": "text", "text": text}], "isError": False}})
        else:
            send({"jsonrpc": "2.0", "id": msg_id,
                  "error": {"code": -32601, "message": f"method not found: {method}"}})


if __name__ == "__main__":
    main()
