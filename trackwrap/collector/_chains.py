"""Accepting a segment: the continuity check, the session summary kept at ingest, the receipt.

Backend-neutral: :func:`accept_segment` runs inside a storage backend's transaction (it is the
``accept`` of :meth:`Storage.ingest`), after the chain row has been locked.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace

from trackwrap.collector._interface import Accepted, ChainRow
from trackwrap.crypto import SigningKey, key_id_for
from trackwrap.errors import SignatureError
from trackwrap.ledger import ChainHead, Segment, check_segment, sign_receipt

__all__ = ["accept_segment", "format_public_key", "parse_public_key", "summarize"]

_KEY_PREFIX = "ed25519:"


def parse_public_key(text: object) -> tuple[str, bytes]:
    """``ed25519:<base64 of the 32 raw bytes>`` as ``(key id, raw bytes)``.

    Raises:
        SignatureError: not such a key.
    """
    if not isinstance(text, str) or not text.startswith(_KEY_PREFIX):
        raise SignatureError("a public key is written ed25519:<base64 of its 32 raw bytes>")
    try:
        raw = base64.b64decode(text[len(_KEY_PREFIX):], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"the public key is not base64: {exc}") from exc
    return key_id_for(raw), raw


def format_public_key(raw: bytes) -> str:
    """The ``ed25519:<base64>`` form of a raw public key."""
    return _KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def accept_segment(
    segment: Segment,
    *,
    chain: ChainRow | None,
    device: str,
    developer: str,
    keys: Mapping[str, bytes],
    signer: SigningKey,
    now_ms: int,
) -> Accepted:
    """Check ``segment`` against the stored chain, fold it into the summary, sign a receipt.

    Raises:
        SegmentError: GAP, FORK, CLOSED, INVALID or NOT_SEALED (see ``check_segment``).
    """
    head = check_segment(segment, head=None if chain is None else chain.head, keys=keys)
    bodies = [_body(raw) for raw in segment.records]
    base = chain if chain is not None else ChainRow(device=device, session=segment.session,
                                                    head=ChainHead())
    after = summarize(base, bodies, head=head, developer=developer)
    segment_hash = segment.content_hash()
    receipt = sign_receipt(signer, {
        "device": device, "session": segment.session, "segment": segment.segment,
        "seq": segment.last_seq, "chain_tip": segment.tip(), "segment_hash": segment_hash,
        "received_at_ms": now_ms,
    })
    return Accepted(
        chain=after, receipt=receipt.envelope,
        records=tuple((segment.first_seq + i, raw) for i, raw in enumerate(segment.records)),
        segment=segment.segment, first_seq=segment.first_seq, last_seq=segment.last_seq,
        segment_hash=segment_hash, received_ms=now_ms,
    )


def _body(raw: bytes) -> Mapping[str, object]:
    value = json.loads(raw)  # verified canonical JSON objects by check_segment
    return value if isinstance(value, dict) else {}


def summarize(
    chain: ChainRow, bodies: Sequence[Mapping[str, object]], *, head: ChainHead, developer: str
) -> ChainRow:
    """``chain`` after ``bodies`` (the records of the next segment), counted the way
    ``trackwrap diagnose`` counts tool calls."""
    agent, role, first = chain.agent, chain.role, chain.first_ts_ms
    last = chain.last_ts_ms
    allowed, denied, held = chain.allowed, chain.denied, chain.held_for_approval
    requests, drift = chain.approval_requests, chain.drift
    traces = set(chain.held_traces)
    for body in bodies:
        kind = body.get("kind")
        ts = body.get("ts_ms")
        if type(ts) is int:
            first = ts if first is None else first
            last = ts if last is None else max(last, ts)
        if kind == "session.start":
            agent = _text(body.get("agent")) or agent
            role = _text(body.get("role")) or role
            continue
        if kind != "tool_call.decision":
            continue
        trace = _text(body.get("trace"))
        if trace and trace in traces:
            traces.discard(trace)
            held -= 1
        if isinstance(body.get("drift"), Mapping):
            drift += 1
        forwarded = bool(body.get("forwarded"))
        if body.get("decision") == "require_approval" and not forwarded:
            held += 1
            requests += 1
            if trace:
                traces.add(trace)
        elif forwarded:
            allowed += 1
        else:
            denied += 1
    return replace(
        chain, head=head, developer=developer, agent=agent, role=role, first_ts_ms=first,
        last_ts_ms=last, events=head.seq + 1, segments=chain.segments + 1, allowed=allowed,
        denied=denied, held_for_approval=held, approval_requests=requests, drift=drift,
        held_traces=tuple(sorted(traces)),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
