"""trackwrap.sync: sealed segments to the collector (at least once, idempotent), receipts back.

httpx is imported only when a request is made.
"""

from trackwrap.sync._client import CollectorClient, Pushed, SyncError
from trackwrap.sync._sync import SessionSync, SyncReport, sync_ledger, sync_status

__all__ = [
    "CollectorClient",
    "Pushed",
    "SessionSync",
    "SyncError",
    "SyncReport",
    "sync_ledger",
    "sync_status",
]
