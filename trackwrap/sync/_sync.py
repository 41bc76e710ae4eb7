"""Pushing sealed segments to the collector: at least once, in order, idempotent.

A segment stays "pending" until the collector's receipt for it is stored in the local ledger;
nothing is deleted locally. Per session, segments go in seq order starting after the last
receipt. The collector answers a replay with the same receipt, so re-sending after a crash or a
lost answer is harmless. A ``409`` gap means the collector holds less than we thought: sending
resumes at the seq it expects. Retries happen only where they can help (connection errors,
429, 502–504), with backoff and the server's ``Retry-After``; any other refusal stops the run
and is reported.
"""

from __future__ import annotations

import base64
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from trackwrap.errors import Error, SignatureError
from trackwrap.ledger import Ledger, Segment, read_receipt
from trackwrap.sync._client import CollectorClient, SyncError

__all__ = ["SessionSync", "SyncReport", "sync_ledger", "sync_status"]

BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)
_T = TypeVar("_T")


@dataclass(slots=True)
class SessionSync:
    """Where one session stands against the collector."""

    session: str
    events: int
    sealed_through_seq: int
    witnessed_through_seq: int
    pending_segments: int
    sent: int = 0
    duplicates: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"session": self.session, "events": self.events,
                "sealed_through_seq": self.sealed_through_seq,
                "witnessed_through_seq": self.witnessed_through_seq,
                "pending_segments": self.pending_segments, "sent": self.sent,
                "duplicates": self.duplicates, "error": self.error}


@dataclass(slots=True)
class SyncReport:
    """One sync run: per session, and the first refusal that stopped it (if any)."""

    sessions: list[SessionSync] = field(default_factory=list)
    stopped: str | None = None

    @property
    def ok(self) -> bool:
        return self.stopped is None and not any(s.error for s in self.sessions)


def sync_status(ledger: Ledger, sessions: Sequence[str] | None = None) -> list[SessionSync]:
    """Per session: events, sealed through, witnessed through, segments still to send."""
    found = []
    names = sessions if sessions is not None else [s.session for s in ledger.session_ids()]
    for name in names:
        witnessed = ledger.witnessed_through(name)
        pending = ledger.segments(name, after_seq=witnessed)
        state = ledger.session_state(name)
        # Everything up to the last receipt was sealed; the pending segments run on from there.
        sealed = pending[-1].last_seq if pending else witnessed
        found.append(SessionSync(session=name, events=state.events, sealed_through_seq=sealed,
                                 witnessed_through_seq=witnessed,
                                 pending_segments=len(pending)))
    return found


def sync_ledger(
    ledger: Ledger,
    client: CollectorClient,
    *,
    public_key: bytes,
    collector_keys: dict[str, bytes],
    attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
    sessions: Sequence[str] | None = None,
) -> SyncReport:
    """Push every pending segment; store each receipt after checking it is signed by one of
    ``collector_keys`` and vouches for exactly what was sent."""
    report = SyncReport()
    key_text = "ed25519:" + base64.b64encode(public_key).decode("ascii")
    for status in sync_status(ledger, sessions):
        report.sessions.append(status)
        if status.pending_segments == 0:
            continue
        try:
            _push_session(ledger, client, status, key_text=key_text, keys=collector_keys,
                          attempts=attempts, sleep=sleep)
        except SyncError as exc:
            status.error = str(exc)
            if not exc.retryable and exc.status not in (409,):
                report.stopped = str(exc)
                break
        except (SignatureError, Error) as exc:
            status.error = str(exc)
            report.stopped = str(exc)
            break
    return report


def _push_session(
    ledger: Ledger,
    client: CollectorClient,
    status: SessionSync,
    *,
    key_text: str,
    keys: dict[str, bytes],
    attempts: int,
    sleep: Callable[[float], None],
) -> None:
    after = status.witnessed_through_seq
    resumed = 0
    queue = ledger.segments(status.session, after_seq=after)
    while queue:
        segment = queue.pop(0)
        push = functools.partial(client.push, segment.to_json(), public_key=key_text)
        try:
            pushed = _with_retries(push, attempts=attempts, sleep=sleep)
        except SyncError as exc:
            if exc.code == "GAP" and exc.expected_seq is not None and resumed < 3:
                resumed += 1  # the collector holds less than our receipts say: resume there
                queue = ledger.segments(status.session, after_seq=exc.expected_seq - 1)
                continue
            raise
        _keep_receipt(ledger, segment, pushed.receipt, keys)
        status.sent += 1
        status.duplicates += int(pushed.duplicate)
        status.witnessed_through_seq = segment.last_seq
        status.pending_segments = len(queue)


def _keep_receipt(ledger: Ledger, segment: Segment, envelope: str,
                  keys: dict[str, bytes]) -> None:
    receipt = read_receipt(envelope, keys=keys)
    if (receipt.session, receipt.seq, receipt.chain_tip, receipt.segment_hash) != (
        segment.session, segment.last_seq, segment.tip(), segment.content_hash()
    ):
        raise SignatureError(f"the collector's receipt for {segment.session} segment "
                             f"{segment.segment} does not vouch for what was sent")
    ledger.store_receipt(receipt)


def _with_retries(call: Callable[[], _T], *, attempts: int,
                     sleep: Callable[[float], None]) -> _T:
    for attempt in range(max(1, attempts)):
        try:
            return call()
        except SyncError as exc:
            if not exc.retryable or attempt == attempts - 1:
                raise
            delay = exc.retry_after if exc.retry_after is not None else (
                BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
            sleep(delay)
    raise SyncError("no attempt was made")  # pragma: no cover - attempts >= 1


