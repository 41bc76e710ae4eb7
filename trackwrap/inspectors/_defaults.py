"""The inspectors a relay runs unless told otherwise."""

from __future__ import annotations

from trackwrap.inspectors._git import GitInspector
from trackwrap.inspectors._paths import PathScopeInspector
from trackwrap.inspectors._secrets import ReadStaged, SecretsInspector
from trackwrap.inspectors._shell import ShellInspector
from trackwrap.policy import Inspector

__all__ = ["default_inspectors"]


def default_inspectors(*, read_staged: ReadStaged | None = None) -> tuple[Inspector, ...]:
    """A fresh tuple of the default inspectors, in the order they run. ``read_staged`` gives
    the secrets inspector the contents a ``git.add``/``git.commit`` would stage (I/O the caller
    owns)."""
    return (PathScopeInspector(), SecretsInspector(read_staged), ShellInspector(), GitInspector())
