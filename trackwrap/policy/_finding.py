"""What an inspector reports."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Finding"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing an inspector found, tagged with a rule id and MITRE ATT&CK / OWASP ids."""

    inspector: str
    rule: str
    confidence: float
    detail: str
    attack: str | None = None
    owasp: str | None = None

    def to_json(self) -> dict[str, object]:
        """The stable JSON form used by ``trackwrap check --json`` and the ledger."""
        return {
            "inspector": self.inspector,
            "rule": self.rule,
            "confidence": self.confidence,
            "attack": self.attack,
            "owasp": self.owasp,
            "detail": self.detail,
        }
