"""Small MCP servers of trackwrap's own, for the demo and the tests (stdlib only)."""
