"""What an upstream's tool definitions say to the model: hidden instructions and invisible text.

A tool's name, description and schema strings reach the model verbatim, so they are an
injection channel (tool poisoning). This module finds the usual markers and removes characters
a human reviewer cannot see; it is pure and runs on plain JSON data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

__all__ = ["clean_tool", "tool_concerns"]

_INVISIBLE = re.compile(
    "[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"  # controls (ANSI escapes included)
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"  # zero-width, bidi
    "|[\U000e0000-\U000e007f]"  # tag characters
)
_HIDDEN = re.compile(
    r"<\s*/?\s*(important|system|instructions?|secret)\s*>|\[/?INST\]|<!--"
    r"|ignore (all |any )?(previous|prior|above) instructions"
    r"|do not (tell|mention|inform|show)( this to)? the user"
    r"|without (telling|informing) the user"
    r"|(read|send|include|pass)\b.{0,40}(id_rsa|\.ssh|\.aws|credentials|\.env|mcp\.json)",
    re.IGNORECASE,
)


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def tool_concerns(tool: dict[str, Any]) -> list[str]:
    """Why a tool definition looks poisoned (empty when it does not)."""
    concerns: list[str] = []
    for path, text in _strings(tool):
        if _INVISIBLE.search(text):
            concerns.append(f"{path} holds invisible or control characters")
        match = _HIDDEN.search(text)
        if match:
            concerns.append(f"{path} holds a hidden instruction ({match.group(0)[:40]!r})")
    return concerns


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _INVISIBLE.sub("", value)
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


def clean_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """The tool as the agent sees it: invisible and control characters removed."""
    cleaned: dict[str, Any] = _clean(tool)
    return cleaned
