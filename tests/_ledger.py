"""What the ledger tests share: an injected clock."""

from __future__ import annotations


class Clock:
    """An injected clock: each reading advances by ``step`` ms."""

    def __init__(self, start: int = 1_700_000_000_000, step: int = 1) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> int:
        self.now += self.step
        return self.now
