"""The stdio JSON-RPC relay and the upstream child process. Knows MCP framing, not policy."""

from trackwrap.relay._framing import DEFAULT_MAX_LINE, LineSplitter, Oversize
from trackwrap.relay._io import StderrSink, make_pollable
from trackwrap.relay._process import (
    BASE_ENV,
    Child,
    child_environment,
    resolve_command,
    spawn_child,
)
from trackwrap.relay._relay import Gate, Judgement, Relay, RelayOptions
from trackwrap.relay._wire import dumps, tool_error_result

__all__ = [
    "BASE_ENV",
    "DEFAULT_MAX_LINE",
    "Child",
    "Gate",
    "Judgement",
    "LineSplitter",
    "Oversize",
    "Relay",
    "RelayOptions",
    "StderrSink",
    "child_environment",
    "dumps",
    "make_pollable",
    "resolve_command",
    "spawn_child",
    "tool_error_result",
]
