"""Stage 2: hold an action against the session manifest; what falls outside is drift."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from trackwrap.manifest._model import Manifest
from trackwrap.manifest._targets import GitCall, git_calls
from trackwrap.manifest._tools import ArgMode
from trackwrap.policy import Action, Context, Finding

__all__ = ["HARNESS_DRIFT_RULE", "MANIFEST_FORBID_RULE", "DriftFinding", "ManifestScope"]

#: Rule id of drift: an unknown role, a kind the manifest does not allow, a branch outside
#: ``push_to``.
HARNESS_DRIFT_RULE = "HARNESS-DRIFT-001"
#: Rule id of a call that matches ``forbidden_tools`` or ``branch_constraints.forbid``.
MANIFEST_FORBID_RULE = "MANIFEST-FORBID"

_INSPECTOR = "manifest"
_OWASP = "ASI10"
_GIT_ATTACK = "T1565.001"
_TARGET_CHARS = 120
_BRANCH_WRITE_KINDS = ("git.push", "git.branch.", "git.merge", "git.rebase", "github.pr.merge")
_FORCE_KEYS = ("force", "force_push", "forcePush", "force_with_lease", "forceWithLease")
_DELETE_KEYS = ("delete", "delete_branch", "deleteBranch")


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftFinding(Finding):
    """A finding of the manifest scope check, with its drift signal and failure pattern.

    ``drift``: ``permission_scope_exceeded`` | ``unknown_role`` | ``budget_overrun``;
    ``pattern``: ``scope_violation`` | ``forbidden_tool`` | ``out_of_workspace`` |
    ``branch_constraint`` | ``unknown_role``.
    """

    drift: str
    pattern: str

    def to_json(self) -> dict[str, object]:
        """The finding's JSON form plus ``drift`` and ``pattern``."""
        body = Finding.to_json(self)
        body["drift"] = self.drift
        body["pattern"] = self.pattern
        return body


class ManifestScope:
    """:class:`~trackwrap.policy.ScopeCheck` for one verified manifest. Pure: paths resolve
    through ``context.fs``; budgets are the ledger's business."""

    def __init__(self, manifest: Manifest, *, known_roles: frozenset[str]) -> None:
        self._manifest = manifest
        self._known_roles = known_roles

    @property
    def manifest(self) -> Manifest:
        """The manifest in force."""
        return self._manifest

    def check(self, action: Action, context: Context) -> Sequence[Finding]:
        """Drift findings for ``action``; empty when it is within the manifest."""
        manifest = self._manifest
        findings: list[Finding] = []
        if manifest.role not in self._known_roles:
            findings.append(
                _drift(
                    HARNESS_DRIFT_RULE,
                    f"role {manifest.role!r} is not a known role; the manifest cannot be "
                    "trusted to describe this session",
                    drift="unknown_role",
                    pattern="unknown_role",
                )
            )
        shown = _shown(action)
        # Out of the declared scope first: that is the drift the decision is named after
        # (HARNESS-DRIFT-001); a forbid list that also fired is listed after it.
        if not any(entry.allows(action, context) for entry in manifest.allowed_tools):
            findings.append(
                _drift(
                    HARNESS_DRIFT_RULE,
                    f"{shown} attempted; not in manifest.allowed_tools",
                    pattern="scope_violation",
                )
            )
        for entry in manifest.forbidden_tools:
            if entry.forbids(action, context):
                outside = entry.mode is ArgMode.OUTSIDE
                findings.append(
                    _drift(
                        MANIFEST_FORBID_RULE,
                        f"{shown} matches manifest.forbidden_tools {entry.text}"
                        + (" (outside the workspace)" if outside else ""),
                        pattern="out_of_workspace" if outside else "forbidden_tool",
                    )
                )
        findings.extend(self._branch_findings(action, shown))
        return tuple(findings)

    def _branch_findings(self, action: Action, shown: str) -> list[Finding]:
        constraints = self._manifest.branch_constraints
        findings: list[Finding] = []
        calls = git_calls(action)
        if constraints.push_to is not None:
            targets, unknown = _push_targets(action, calls)
            bad = [b for b in targets if not constraints.push_to.match(b)]
            if bad or unknown:
                allowed = ", ".join(constraints.push_to.patterns)
                what = f"branch {bad[0]!r} is outside" if bad else "the target branch is unknown to"
                findings.append(
                    _drift(
                        HARNESS_DRIFT_RULE,
                        f"{shown}: {what} manifest.branch_constraints.push_to [{allowed}]",
                        pattern="branch_constraint",
                        attack=_GIT_ATTACK,
                    )
                )
        for name in sorted(constraints.forbid):
            why = _FORBID_CHECKS[name](action, calls)
            if why is not None:
                findings.append(
                    _drift(
                        MANIFEST_FORBID_RULE,
                        f"{shown}: {why}, forbidden by manifest.branch_constraints.forbid {name}",
                        pattern="branch_constraint",
                        attack=_GIT_ATTACK,
                    )
                )
        return findings


def _drift(
    rule: str,
    detail: str,
    *,
    pattern: str,
    drift: str = "permission_scope_exceeded",
    attack: str | None = None,
) -> DriftFinding:
    return DriftFinding(
        inspector=_INSPECTOR,
        rule=rule,
        confidence=1.0,
        detail=detail,
        attack=attack,
        owasp=_OWASP,
        drift=drift,
        pattern=pattern,
    )


def _shown(action: Action) -> str:
    target = action.target()
    if len(target) > _TARGET_CHARS:
        target = target[: _TARGET_CHARS - 1] + "…"
    return f"{action.kind} ({target})" if target else action.kind


def _push_targets(action: Action, calls: Sequence[GitCall]) -> tuple[list[str], bool]:
    """(branches written, whether some write's target branch cannot be told).

    Pushes and branch operations must name their branch; other ``*.write`` kinds count when
    they carry branches (``filesystem.*`` never does)."""
    targets: list[str] = []
    unknown = False
    kind = action.kind
    if kind.startswith(_BRANCH_WRITE_KINDS) or kind.endswith(".push"):
        if action.branches:
            targets.extend(_branch_name(b) for b in action.branches)
        else:
            unknown = True
    elif kind.endswith(".write") and action.branches:
        targets.extend(_branch_name(b) for b in action.branches)
    for call in calls:
        if call.subcommand != "push":
            continue
        positional = [a for a in call.args if not a.startswith("-")]
        refspecs = positional[1:]
        if not refspecs or any(a in ("--all", "--mirror", "--tags") for a in call.args):
            unknown = True
            continue
        for refspec in refspecs:
            target = _branch_name(refspec.rsplit(":", 1)[-1])
            if target in ("", "HEAD"):
                unknown = True
            else:
                targets.append(target)
    return targets, unknown


def _branch_name(ref: str) -> str:
    ref = ref.removeprefix("+")
    return ref.removeprefix("refs/heads/")


def _truthy(arguments: Mapping[str, object], keys: Sequence[str]) -> bool:
    return any(arguments.get(key) not in (None, False, "", 0, "false") for key in keys)


def _force_push(action: Action, calls: Sequence[GitCall]) -> str | None:
    if action.kind.endswith(".push") and (
        _truthy(action.arguments, _FORCE_KEYS) or any(b.startswith("+") for b in action.branches)
    ):
        return "a forced push"
    for call in calls:
        if call.subcommand == "push" and any(
            arg in ("-f", "--force")
            or arg.startswith(("--force-with-lease", "--force-if-includes"))
            or (arg.startswith("-") and not arg.startswith("--") and "f" in arg[1:])
            or (arg.startswith("+") and len(arg) > 1)
            for arg in call.args
        ):
            return "git push --force"
    return None


def _reset_hard(action: Action, calls: Sequence[GitCall]) -> str | None:
    if action.kind == "git.reset" or action.kind.startswith("git.reset."):
        mode = action.arguments.get("mode")
        if isinstance(mode, str) and mode.lower() in ("soft", "mixed"):
            return None
        if action.arguments.get("hard") is False and mode is None:
            return None
        return "git reset (hard, or its mode cannot be told)"
    for call in calls:
        if call.subcommand == "reset" and "--hard" in call.args:
            return "git reset --hard"
    return None


def _delete_branch(action: Action, calls: Sequence[GitCall]) -> str | None:
    if action.kind.startswith("git.branch.delete") or (
        action.kind.endswith(".push") and _truthy(action.arguments, _DELETE_KEYS)
    ):
        return "a branch deletion"
    for call in calls:
        if call.subcommand == "branch" and any(
            arg in ("-d", "-D", "--delete") for arg in call.args
        ):
            return "git branch --delete"
        if call.subcommand == "push" and any(
            arg in ("-d", "--delete") or (arg.startswith(":") and len(arg) > 1) for arg in call.args
        ):
            return "git push --delete"
    return None


def _rebase_published(action: Action, calls: Sequence[GitCall]) -> str | None:
    if action.kind.startswith("git.rebase"):
        return "a rebase (whether its commits are published cannot be told)"
    for call in calls:
        if call.subcommand == "rebase" or (
            call.subcommand == "pull" and any(a.startswith("--rebase") for a in call.args)
        ):
            return f"git {call.subcommand} (whether its commits are published cannot be told)"
    return None


_FORBID_CHECKS = {
    "force_push": _force_push,
    "reset_hard": _reset_hard,
    "delete_branch": _delete_branch,
    "rebase_published": _rebase_published,
}
