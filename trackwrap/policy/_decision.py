"""The result of evaluating one tool call."""

from __future__ import annotations

from dataclasses import dataclass

from trackwrap.policy._action import Action
from trackwrap.policy._finding import Finding
from trackwrap.policy._outcome import Outcome

__all__ = ["Decision"]


@dataclass(frozen=True, slots=True)
class Decision:
    """Exactly one outcome, the rule that made it and why.

    ``enforced`` is ``False`` only in monitor mode for a deny or require_approval: the relay
    records the would-be outcome and forwards the call anyway.
    """

    outcome: Outcome
    rule: str
    reason: str
    kind: str
    action_hash: str | None
    findings: tuple[Finding, ...]
    enforced: bool
    action: Action | None

    def to_json(self) -> dict[str, object]:
        """The stable JSON form used by ``trackwrap check --json``."""
        return {
            "outcome": str(self.outcome),
            "rule": self.rule,
            "reason": self.reason,
            "kind": self.kind,
            "action_hash": self.action_hash,
            "findings": [finding.to_json() for finding in self.findings],
        }
