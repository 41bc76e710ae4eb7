"""The inspectors a relay runs unless told otherwise."""

from __future__ import annotations

from trackwrap.inspectors._paths import PathScopeInspector
from trackwrap.policy import Inspector

__all__ = ["default_inspectors"]


def default_inspectors() -> tuple[Inspector, ...]:
    """A fresh tuple of the default inspectors, in the order they run."""
    return (PathScopeInspector(),)
