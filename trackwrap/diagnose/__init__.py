"""Session diagnosis: the causal story of one session, built from its ledger events."""

from trackwrap.diagnose._build import build_diagnosis, format_offset

__all__ = ["build_diagnosis", "format_offset"]
