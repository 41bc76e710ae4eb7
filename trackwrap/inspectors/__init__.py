"""trackwrap.inspectors: pure checks that look at an action and report findings."""

from trackwrap.inspectors._defaults import default_inspectors
from trackwrap.inspectors._paths import PathScopeInspector

__all__ = ["PathScopeInspector", "default_inspectors"]
