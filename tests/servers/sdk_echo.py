"""A minimal MCP echo server written with the ``mcp`` SDK (the benchmark's realistic upstream)."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("sdk-echo")


@server.tool()
def echo(message: str = "") -> str:
    """Echo a message."""
    return message


@server.tool()
def write_file(path: str, content: str = "") -> str:
    """Write a file (benchmarks only ever call it denied)."""
    with open(path, "w") as f:
        f.write(content)
    return "written"


if __name__ == "__main__":
    server.run()
