"""Outcomes a decision can have, and the policy modes."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["PRECEDENCE", "Mode", "Outcome"]


class Outcome(StrEnum):
    """What happens to a tool call."""

    ALLOW = "allow"
    DENY = "deny"
    REQUIRE_APPROVAL = "require_approval"
    REDACT = "redact"


class Mode(StrEnum):
    """Whether a policy's denies are enforced or only recorded."""

    ENFORCE = "enforce"
    MONITOR = "monitor"


#: Higher wins when several rules or findings apply: deny > require_approval > redact > allow.
PRECEDENCE: dict[Outcome, int] = {
    Outcome.ALLOW: 0,
    Outcome.REDACT: 1,
    Outcome.REQUIRE_APPROVAL: 2,
    Outcome.DENY: 3,
}
