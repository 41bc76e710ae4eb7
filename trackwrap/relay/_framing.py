"""Newline framing for MCP's stdio transport.

Messages are split on the byte ``\\n`` only (never ``str.splitlines``: U+2028 and friends are legal
inside JSON strings); one trailing ``\\r`` is tolerated when a line is parsed. A line longer than
the cap is reported once as :class:`Oversize` and its bytes are discarded up to the next newline,
so an oversized message never grows the buffer without bound.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_LINE", "LineSplitter", "Oversize"]

DEFAULT_MAX_LINE = 128 * 1024 * 1024
"""Default cap on one message: well above the TypeScript SDK's 10 MiB."""


@dataclass(frozen=True, slots=True)
class Oversize:
    """A line that exceeded the cap; ``seen`` is how many bytes had arrived when it was cut."""

    seen: int


class LineSplitter:
    """Feeds raw chunks, yields complete lines (without the ``\\n``) or :class:`Oversize`."""

    __slots__ = ("_buf", "_discarding", "_max", "_scan")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_line < 1:
            raise ValueError("max_line must be positive")
        self._max = max_line
        self._buf = bytearray()
        self._scan = 0
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes | Oversize]:
        out: list[bytes | Oversize] = []
        if self._discarding:
            nl = data.find(b"\n")
            if nl < 0:
                return out
            self._discarding = False
            data = data[nl + 1 :]
        if not self._buf:
            # Fast path: most chunks hold whole lines.
            start = 0
            while True:
                nl = data.find(b"\n", start)
                if nl < 0:
                    break
                if nl - start > self._max:
                    out.append(Oversize(nl - start))
                else:
                    out.append(data[start:nl])
                start = nl + 1
            rest = data[start:]
            if rest:
                self._buf += rest
                self._scan = 0
                self._check_cap(out)
            return out
        self._buf += data
        while True:
            nl = self._buf.find(b"\n", self._scan)
            if nl < 0:
                self._scan = len(self._buf)
                self._check_cap(out)
                return out
            if nl > self._max:
                out.append(Oversize(nl))
            else:
                out.append(bytes(self._buf[:nl]))
            del self._buf[: nl + 1]
            self._scan = 0

    def finish(self) -> list[bytes | Oversize]:
        """At EOF: flush a final unterminated line."""
        if self._discarding or not self._buf:
            self._buf.clear()
            return []
        line = bytes(self._buf)
        self._buf.clear()
        self._scan = 0
        return [line]

    def _check_cap(self, out: list[bytes | Oversize]) -> None:
        if len(self._buf) > self._max:
            out.append(Oversize(len(self._buf)))
            self._buf.clear()
            self._scan = 0
            self._discarding = True
