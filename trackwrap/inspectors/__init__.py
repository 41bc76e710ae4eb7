"""trackwrap.inspectors: pure checks that look at an action and report findings."""

from trackwrap.inspectors._defaults import default_inspectors
from trackwrap.inspectors._git import DEFAULT_PROTECTED_BRANCHES, GitInspector
from trackwrap.inspectors._paths import PathScopeInspector
from trackwrap.inspectors._redact import (
    RedactionHit,
    mask_arguments,
    redact_result,
    redact_text,
)
from trackwrap.inspectors._secrets import (
    POSSIBLE_SECRET_RULE,
    SECRETS_RULE,
    ReadStaged,
    SecretHit,
    SecretsInspector,
)
from trackwrap.inspectors._shell import ShellInspector, parse_simple_commands
from trackwrap.inspectors._toolscan import clean_tool, tool_concerns

__all__ = [
    "DEFAULT_PROTECTED_BRANCHES",
    "POSSIBLE_SECRET_RULE",
    "SECRETS_RULE",
    "GitInspector",
    "PathScopeInspector",
    "ReadStaged",
    "RedactionHit",
    "SecretHit",
    "SecretsInspector",
    "ShellInspector",
    "clean_tool",
    "default_inspectors",
    "mask_arguments",
    "parse_simple_commands",
    "redact_result",
    "redact_text",
    "tool_concerns",
]
