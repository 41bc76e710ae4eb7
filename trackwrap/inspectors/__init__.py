"""trackwrap.inspectors: pure checks that look at an action and report findings."""

from trackwrap.inspectors._defaults import default_inspectors
from trackwrap.inspectors._paths import PathScopeInspector
from trackwrap.inspectors._toolscan import clean_tool, tool_concerns

__all__ = ["PathScopeInspector", "clean_tool", "default_inspectors", "tool_concerns"]
