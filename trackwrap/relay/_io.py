"""Non-blocking reads and writes on raw file descriptors, driven by anyio readiness.

Readiness on raw descriptors (rather than threads or buffered streams) keeps the relay's added
latency low. Regular files cannot be polled, so they are read on a worker thread instead.
"""

from __future__ import annotations

import os
import stat
from collections import deque

import anyio
import anyio.to_thread

__all__ = ["FdReader", "FdWriter", "StderrSink", "make_pollable"]

CHUNK = 1024 * 1024


def _pollable(fd: int) -> bool:
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


def make_pollable(fd: int) -> bool | None:
    """Make a pipe or socket descriptor non-blocking; returns its previous blocking flag to
    restore at exit, or None if the descriptor was left alone."""
    mode = os.fstat(fd).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        was = os.get_blocking(fd)
        os.set_blocking(fd, False)
        return was
    return None


class FdReader:
    __slots__ = ("_blocking", "_fd", "_poll")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._poll = _pollable(fd)
        self._blocking = os.get_blocking(fd)

    async def read(self) -> bytes:
        """The next chunk, or ``b""`` at end of file (a reset pipe counts as end of file)."""
        if not self._poll:
            return await anyio.to_thread.run_sync(self._read_blocking, abandon_on_cancel=True)
        while True:
            if self._blocking:
                await anyio.wait_readable(self._fd)
            try:
                return os.read(self._fd, CHUNK)
            except BlockingIOError:
                await anyio.wait_readable(self._fd)
            except (ConnectionResetError, BrokenPipeError):
                return b""

    def _read_blocking(self) -> bytes:
        try:
            return os.read(self._fd, CHUNK)
        except (ConnectionResetError, BrokenPipeError):
            return b""


class FdWriter:
    """Writes whole messages; a lock keeps concurrent writers from interleaving bytes."""

    __slots__ = ("_fd", "_lock")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = anyio.Lock()

    async def write(self, data: bytes) -> None:
        """Write all of ``data``; raises ``BrokenPipeError`` if the reader is gone."""
        if not self._lock.locked():
            # Fast path: the pipe takes the whole message at once and nothing can interleave.
            try:
                n = os.write(self._fd, data)
            except BlockingIOError:
                n = 0
            if n == len(data):
                return
            # A partial write: hold the lock (free: nothing awaited since the check) until the
            # rest is out, so another writer's message cannot land in the middle.
            self._lock.acquire_nowait()
            try:
                await self._write_rest(data[n:])
            finally:
                self._lock.release()
            return
        async with self._lock:
            await self._write_rest(data)

    async def _write_rest(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                await anyio.wait_writable(self._fd)
                continue
            view = view[n:]


class StderrSink:
    """Our diagnostics channel: best-effort, never blocks, keeps a bounded tail per source.

    When the reader of our stderr does not keep up, bytes are dropped (and counted) rather than
    stalling the relay.
    """

    __slots__ = ("_fd", "_tail_bytes", "_tail_max", "dropped", "tail")

    def __init__(self, fd: int = 2, *, tail_max: int = 64 * 1024) -> None:
        self._fd = fd
        self.dropped = 0
        self.tail: deque[bytes] = deque()
        self._tail_bytes = 0
        self._tail_max = tail_max

    def write(self, data: bytes) -> None:
        try:
            n = os.write(self._fd, data)
        except (BlockingIOError, BrokenPipeError, OSError):
            n = 0
        self.dropped += len(data) - n

    def say(self, text: str) -> None:
        """One line of trackwrap's own diagnostics."""
        self.write(f"trackwrap: {text}\n".encode("utf-8", "backslashreplace"))

    def keep(self, data: bytes) -> None:
        """Remember ``data`` in the bounded tail (used for the upstream's stderr)."""
        self.tail.append(data)
        self._tail_bytes += len(data)
        while self._tail_bytes > self._tail_max and len(self.tail) > 1:
            self._tail_bytes -= len(self.tail.popleft())

    def tail_text(self) -> str:
        return b"".join(self.tail).decode("utf-8", "replace")
