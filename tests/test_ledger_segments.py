"""Segments cut from a real ledger, checked the way the collector checks them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._ledger import Clock
from trackwrap.crypto import SigningKey
from trackwrap.ledger import ChainHead, Ledger, Segment, SegmentError, check_segment


@pytest.fixture
def ledger(db: Path, key: SigningKey) -> Iterator[Ledger]:
    opened = Ledger.open(db, signer=lambda: key, clock_ms=Clock(), seal_every=4)
    opened.ensure_session("s", genesis={"workspace": "/w"})
    for i in range(10):
        opened.append("s", {"kind": "note", "i": i})
    opened.seal("s")
    yield opened
    opened.close()


def test_segments_chain_on_from_head_to_head(ledger: Ledger, key: SigningKey) -> None:
    segments = ledger.segments("s")
    assert [s.segment for s in segments] == list(range(len(segments)))
    keys = {key.key_id: key.public_raw}
    head = None
    for segment in segments:
        wire = Segment.from_json(json.loads(json.dumps(segment.to_json())))
        assert wire == segment
        head = check_segment(wire, head=head, keys=keys)
        assert head.seq == segment.last_seq and head.hash == segment.tip()
    assert head is not None and head.seq == ledger.session_state("s").events - 1
    assert ledger.segments("s", after_seq=segments[0].last_seq) == segments[1:]


def test_gap_fork_tamper_and_unknown_key(ledger: Ledger, key: SigningKey) -> None:
    first, second, *_ = ledger.segments("s")
    keys = {key.key_id: key.public_raw}
    with pytest.raises(SegmentError) as gap:
        check_segment(second, head=None, keys=keys)
    assert (gap.value.code, gap.value.expected_seq) == ("GAP", 0)
    head = check_segment(first, head=None, keys=keys)
    with pytest.raises(SegmentError, match="FORK"):
        check_segment(first, head=head, keys=keys)
    tampered = second.records[0].replace(b'"i":', b'"j":')
    forged = Segment(session="s", segment=second.segment, first_seq=second.first_seq,
                     records=(tampered, *second.records[1:]))
    with pytest.raises(SegmentError) as invalid:
        check_segment(forged, head=head, keys=keys)
    assert invalid.value.code == "INVALID"
    with pytest.raises(SegmentError, match="INVALID"):
        check_segment(second, head=head, keys={})
    body = second.to_json()
    body["hash"] = "sha256:" + "0" * 64
    with pytest.raises(SegmentError, match="HASH_MISMATCH"):
        Segment.from_json(body)
    unsealed = Segment(session="s", segment=second.segment, first_seq=second.first_seq,
                       records=second.records[:-1])
    with pytest.raises(SegmentError, match="NOT_SEALED"):
        check_segment(unsealed, head=head, keys=keys)
    assert ChainHead.from_json(head.to_json()) == head
