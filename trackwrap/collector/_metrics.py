"""The collector's counters, in Prometheus' text exposition format (``GET /metrics``).

Counted in the event loop's thread only, so plain integers suffice. They are this process's
counts since it started (as Prometheus expects of a counter).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Metrics"]

_PREFIX = "trackwrap_collector"


@dataclass(slots=True)
class Metrics:
    """Counters of one collector process."""

    segments: int = 0
    events: int = 0
    duplicates: int = 0
    in_flight: int = 0
    ingest_in_flight: int = 0
    rejections: Counter[str] = field(default_factory=Counter)

    def render(self) -> str:
        """The Prometheus text form."""
        lines = [
            *_metric("segments_ingested_total", "counter", "Segments accepted and stored.",
                     [("", self.segments)]),
            *_metric("events_ingested_total", "counter", "Records stored with those segments.",
                     [("", self.events)]),
            *_metric("duplicates_total", "counter",
                     "Segments pushed again and answered with their stored receipt.",
                     [("", self.duplicates)]),
            *_metric("rejections_total", "counter", "Requests refused, by error code.",
                     [(f'{{code="{code}"}}', n) for code, n in sorted(self.rejections.items())]),
            *_metric("requests_in_flight", "gauge", "Requests being answered now.",
                     [("", self.in_flight)]),
            *_metric("ingest_requests_in_flight", "gauge",
                     "Ingest requests (segments, approvals published) being answered now.",
                     [("", self.ingest_in_flight)]),
        ]
        return "\n".join(lines) + "\n"


def _metric(name: str, kind: str, help_text: str, samples: list[tuple[str, int]]) -> list[str]:
    full = f"{_PREFIX}_{name}"
    return [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}",
            *(f"{full}{labels} {value}" for labels, value in samples)]
