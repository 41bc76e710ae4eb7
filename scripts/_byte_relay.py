"""The benchmark's baseline: a plain byte relay with no framing and no policy.

Usage: python scripts/_byte_relay.py -- <server command…>
"""

from __future__ import annotations

import os
import subprocess
import sys

import anyio


async def pump(src: int, dst: int) -> None:
    while True:
        await anyio.wait_readable(src)
        data = os.read(src, 1 << 20)
        if not data:
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(dst, view)
            except BlockingIOError:
                await anyio.wait_writable(dst)
                continue
            view = view[n:]


async def main(argv: list[str]) -> int:
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    assert proc.stdin is not None and proc.stdout is not None
    for fd in (proc.stdin.fileno(), proc.stdout.fileno(), 0, 1):
        os.set_blocking(fd, False)
    async with anyio.create_task_group() as tg:
        tg.start_soon(pump, proc.stdout.fileno(), 1)
        await pump(0, proc.stdin.fileno())
        proc.stdin.close()
        tg.cancel_scope.cancel()
    return proc.wait()


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[sys.argv.index("--") + 1 :]))
