"""The pipeline: normalize → scope → inspect → decide, failing closed at every stage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from trackwrap.errors import NormalizeError, PolicyError
from trackwrap.policy._action import Action, action_hash
from trackwrap.policy._context import Context
from trackwrap.policy._decision import Decision
from trackwrap.policy._finding import Finding
from trackwrap.policy._interfaces import Inspector, NoScope, ScopeCheck
from trackwrap.policy._normalize import normalize
from trackwrap.policy._outcome import Mode, Outcome
from trackwrap.policy._profile import ServerProfile
from trackwrap.policy._rules import PIPELINE_ERROR, Policy

__all__ = ["Pipeline"]

_NOT_ENFORCED_IN_MONITOR = frozenset({Outcome.DENY, Outcome.REQUIRE_APPROVAL})


class Pipeline:
    """Evaluates one tool call at a time; never raises."""

    def __init__(
        self,
        *,
        profiles: Mapping[str, ServerProfile],
        policy: Policy,
        inspectors: Sequence[Inspector],
        scope: ScopeCheck | None = None,
    ) -> None:
        self._profiles = dict(profiles)
        self._policy = policy
        self._inspectors = tuple(inspectors)
        self._scope: ScopeCheck = scope if scope is not None else NoScope()

    @property
    def policy(self) -> Policy:
        """The policy in force."""
        return self._policy

    def evaluate(self, *, server: str, tool: str, arguments: object, context: Context) -> Decision:
        """Decide one call. Any failure inside is a ``PIPELINE-ERROR`` deny, enforced."""
        stage = "normalize"
        action: Action | None = None
        try:
            action = normalize(
                server=server, tool=tool, arguments=arguments, profile=self._profiles.get(server)
            )
            stage = "scope"
            findings: list[Finding] = _checked(self._scope.check(action, context), stage)
            for inspector in self._inspectors:
                stage = f"inspect:{inspector.name}"
                findings.extend(_checked(inspector.inspect(action, context), stage))
            stage = "decide"
            verdict = self._policy.decide(action, findings, context)
            enforced = not (
                self._policy.mode is Mode.MONITOR and verdict.outcome in _NOT_ENFORCED_IN_MONITOR
            )
            return Decision(
                outcome=verdict.outcome,
                rule=verdict.rule,
                reason=verdict.reason,
                kind=action.kind,
                action_hash=action.action_hash,
                findings=tuple(findings),
                enforced=enforced,
                action=action,
            )
        except Exception as exc:  # noqa: BLE001 - the pipeline boundary: every failure denies
            return _error_decision(
                stage, exc, server=server, tool=tool, arguments=arguments, action=action
            )


def _checked(found: Sequence[Finding], stage: str) -> list[Finding]:
    result = list(found)
    for item in result:
        if not isinstance(item, Finding):
            raise PolicyError(f"{stage} returned {type(item).__name__}, not a Finding")
    return result


def _error_decision(
    stage: str,
    exc: Exception,
    *,
    server: object,
    tool: object,
    arguments: object,
    action: Action | None,
) -> Decision:
    digest: str | None
    if action is not None:
        kind, digest = action.kind, action.action_hash
    else:
        kind = f"{server}.{tool}" if isinstance(server, str) and isinstance(tool, str) else ""
        digest = _try_hash(server, tool, arguments)
    return Decision(
        outcome=Outcome.DENY,
        rule=PIPELINE_ERROR,
        reason=f"{stage} failed: {type(exc).__name__}: {exc}",
        kind=kind,
        action_hash=digest,
        findings=(),
        enforced=True,
        action=action,
    )


def _try_hash(server: object, tool: object, arguments: object) -> str | None:
    if not isinstance(server, str) or not isinstance(tool, str):
        return None
    try:
        return action_hash(server, tool, {} if arguments is None else arguments)
    except NormalizeError:  # the call is denied either way; it just has no hash to show
        return None
