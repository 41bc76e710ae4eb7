"""Collaborators the pipeline receives: inspectors and the scope check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from trackwrap.policy._action import Action
from trackwrap.policy._context import Context
from trackwrap.policy._finding import Finding

__all__ = ["Inspector", "NoScope", "ScopeCheck"]


class Inspector(Protocol):
    """Looks at an action and reports findings; never decides."""

    @property
    def name(self) -> str:
        """Short stable name, e.g. ``paths``."""
        ...

    def inspect(self, action: Action, context: Context) -> Sequence[Finding]:
        """Findings for ``action``; an exception here denies the call."""
        ...


class ScopeCheck(Protocol):
    """Holds an action against the session manifest; findings are drift."""

    def check(self, action: Action, context: Context) -> Sequence[Finding]:
        """Drift findings for ``action`` (empty when in scope)."""
        ...


class NoScope:
    """The scope check used when no session manifest is in force: reports nothing."""

    def check(self, action: Action, context: Context) -> Sequence[Finding]:  # noqa: ARG002
        """Nothing is out of scope without a manifest."""
        return ()
