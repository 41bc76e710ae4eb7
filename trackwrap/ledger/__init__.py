"""trackwrap.ledger: the local hash-chained, signed audit ledger (SQLite) and its verifier.

The only home of ``sqlite3`` in trackwrap (besides the collector's storage).
"""

from trackwrap.ledger._approvals import APPROVAL_STATES, ApprovalRecord
from trackwrap.ledger._pins import Pin, PinReview
from trackwrap.ledger._receipts import Receipt, read_receipt, sign_receipt
from trackwrap.ledger._segments import (
    ChainHead,
    Segment,
    SegmentError,
    check_segment,
    split_segments,
)
from trackwrap.ledger._sessions import SessionKind, SessionState, Usage
from trackwrap.ledger._store import Appended, Ledger, SessionSummary, StoredEvent
from trackwrap.ledger._verify import SessionVerdict, VerifyIssue, VerifyReport, verify_ledger

__all__ = [
    "APPROVAL_STATES",
    "Appended",
    "ApprovalRecord",
    "ChainHead",
    "Ledger",
    "Pin",
    "PinReview",
    "Receipt",
    "Segment",
    "SegmentError",
    "SessionKind",
    "SessionState",
    "SessionSummary",
    "SessionVerdict",
    "StoredEvent",
    "Usage",
    "VerifyIssue",
    "VerifyReport",
    "check_segment",
    "read_receipt",
    "sign_receipt",
    "split_segments",
    "verify_ledger",
]
