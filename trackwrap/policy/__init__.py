"""trackwrap.policy: the pure decision core.

Actions, server profiles, rules and the pipeline that turns one ``tools/call`` into exactly one
:class:`Decision`. No file or network I/O, no clock or environment reads: time and the
filesystem come in through :class:`Context`.
"""

from trackwrap.policy._action import Action, PathArg, action_hash
from trackwrap.policy._conditions import PATH_SCOPE_RULE
from trackwrap.policy._context import Context, FileSystemView
from trackwrap.policy._decision import Decision
from trackwrap.policy._finding import Finding
from trackwrap.policy._interfaces import Inspector, NoScope, ScopeCheck
from trackwrap.policy._normalize import normalize, split_plain_command
from trackwrap.policy._outcome import Mode, Outcome
from trackwrap.policy._pipeline import Pipeline
from trackwrap.policy._profile import ArgRef, RootsSpec, ServerProfile, ToolSpec
from trackwrap.policy._rules import DEFAULT_DENY, PIPELINE_ERROR, Policy, Rule, Verdict

__all__ = [
    "DEFAULT_DENY",
    "PATH_SCOPE_RULE",
    "PIPELINE_ERROR",
    "Action",
    "ArgRef",
    "Context",
    "Decision",
    "FileSystemView",
    "Finding",
    "Inspector",
    "Mode",
    "NoScope",
    "Outcome",
    "PathArg",
    "Pipeline",
    "Policy",
    "RootsSpec",
    "Rule",
    "ScopeCheck",
    "ServerProfile",
    "ToolSpec",
    "Verdict",
    "action_hash",
    "normalize",
    "split_plain_command",
]
