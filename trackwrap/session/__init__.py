"""Sessions: which session a wrapper joins, and the gate that governs its calls."""

from trackwrap.session._binding import BUILTIN_PUBLISHER, Binder, Binding, manifest_from_genesis
from trackwrap.session._governor import (
    ApprovalWait,
    CallJudgement,
    Governor,
    Hold,
    decision_text,
    event_body,
)
from trackwrap.session._resolve import implicit_session_id, new_session_id, new_trace_id

__all__ = [
    "BUILTIN_PUBLISHER",
    "ApprovalWait",
    "Binder",
    "Binding",
    "CallJudgement",
    "Governor",
    "Hold",
    "decision_text",
    "event_body",
    "implicit_session_id",
    "manifest_from_genesis",
    "new_session_id",
    "new_trace_id",
]
