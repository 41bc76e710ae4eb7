"""Segments: a session's records from just after one seal through the next, as they travel to
the collector, and the check a receiver makes before accepting one.

On the wire a segment is JSON::

    {"session": "sess-…", "segment": 3, "first_seq": 120,
     "records": ["<canonical record>", …],          # RFC 8785 text of each record, in order
     "hash": "sha256:<hex>"}                        # :meth:`Segment.content_hash`

Its last record is the ``segment.seal`` that signs the chain tip. :func:`check_segment` continues
a chain from a :class:`ChainHead` (what the receiver already holds) with the same rules
``verify_ledger`` applies to a whole session: canonical bytes, contiguous seqs, ``prev`` links,
seal fields, seal chain and signature.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from trackwrap.ledger._records import KIND_SEAL, RecordParseError, parse_strict, record_hash
from trackwrap.ledger._verify import _SessionChecker

__all__ = [
    "SEGMENT_HASH_DOMAIN",
    "ChainHead",
    "Segment",
    "SegmentError",
    "check_segment",
    "split_segments",
]

SEGMENT_HASH_DOMAIN = b"trackwrap.segment.v1\x00"
MAX_RECORDS = 100_000


class SegmentError(ValueError):
    """A segment that cannot be accepted.

    ``code``: ``MALFORMED`` (not a segment), ``HASH_MISMATCH`` (body and hash differ),
    ``GAP`` (it starts after the expected seq), ``FORK`` (it starts before: it overlaps records
    already held and is not the same segment), ``INVALID`` (a record or seal does not verify),
    ``NOT_SEALED`` (it does not end with a seal), ``CLOSED`` (the chain ended with a final seal).
    ``expected_seq`` is the seq the receiver expects next.
    """

    def __init__(self, code: str, detail: str, *, expected_seq: int) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.expected_seq = expected_seq


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a chain stands after its last accepted segment (``seq`` -1: nothing yet)."""

    seq: int = -1
    hash: str | None = None
    next_segment: int = 0
    last_seal_hash: str | None = None
    ts_ms: int | None = None
    final: bool = False

    def to_json(self) -> dict[str, object]:
        return {"seq": self.seq, "hash": self.hash, "next_segment": self.next_segment,
                "last_seal_hash": self.last_seal_hash, "ts_ms": self.ts_ms,
                "final": self.final}

    @classmethod
    def from_json(cls, value: Mapping[str, object]) -> ChainHead:
        seq, segment, ts = value.get("seq"), value.get("next_segment"), value.get("ts_ms")
        digest, seal = value.get("hash"), value.get("last_seal_hash")
        if type(seq) is not int or type(segment) is not int:
            raise ValueError("a chain head needs integer seq and next_segment")
        return cls(seq=seq, hash=digest if isinstance(digest, str) else None,
                   next_segment=segment, last_seal_hash=seal if isinstance(seal, str) else None,
                   ts_ms=ts if type(ts) is int else None, final=value.get("final") is True)


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of consecutive records of one session, ending with a seal."""

    session: str
    segment: int
    first_seq: int
    records: tuple[bytes, ...]

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.records) - 1

    def content_hash(self) -> str:
        """``sha256:`` over a domain tag and the newline-joined canonical records."""
        digest = hashlib.sha256(SEGMENT_HASH_DOMAIN)
        digest.update(b"\n".join(self.records))
        return "sha256:" + digest.hexdigest()

    def tip(self) -> str:
        """The hash of the segment's last record (its seal): the chain tip it witnesses."""
        return record_hash(self.records[-1])

    def to_json(self) -> dict[str, object]:
        return {
            "session": self.session,
            "segment": self.segment,
            "first_seq": self.first_seq,
            "records": [record.decode("utf-8") for record in self.records],
            "hash": self.content_hash(),
        }

    @classmethod
    def from_json(cls, value: object) -> Segment:
        """Parse the wire form and check its hash.

        Raises:
            SegmentError: ``MALFORMED`` or ``HASH_MISMATCH``.
        """
        if not isinstance(value, Mapping):
            raise SegmentError("MALFORMED", "a segment is a JSON object", expected_seq=-1)
        session, number = value.get("session"), value.get("segment")
        first, records, claimed = value.get("first_seq"), value.get("records"), value.get("hash")
        if (not isinstance(session, str) or not session or type(number) is not int
                or type(first) is not int or number < 0 or first < 0
                or not isinstance(records, list) or not records
                or len(records) > MAX_RECORDS or not isinstance(claimed, str)
                or not all(isinstance(r, str) for r in records)):
            raise SegmentError(
                "MALFORMED", "need session, segment, first_seq, a non-empty records list of "
                "strings and hash", expected_seq=-1)
        segment = cls(session=session, segment=number, first_seq=first,
                      records=tuple(r.encode("utf-8", "surrogatepass") for r in records))
        if segment.content_hash() != claimed:
            raise SegmentError("HASH_MISMATCH", "the records do not match the segment's hash",
                               expected_seq=-1)
        return segment


def check_segment(
    segment: Segment, *, head: ChainHead | None, keys: Mapping[str, bytes]
) -> ChainHead:
    """Check that ``segment`` continues the chain at ``head`` (None: a new chain, which must
    start with its ``session.start``) and return the new head.

    ``keys`` maps key id to the 32 raw public bytes allowed to seal this chain.

    Raises:
        SegmentError: why it cannot be accepted (see its codes).
    """
    head = head or ChainHead()
    expected = head.seq + 1
    if head.final:
        raise SegmentError("CLOSED", "the chain ended with a final seal", expected_seq=expected)
    if segment.first_seq > expected:
        raise SegmentError("GAP", f"starts at seq {segment.first_seq}, expected {expected}",
                           expected_seq=expected)
    if segment.first_seq < expected:
        raise SegmentError("FORK", f"starts at seq {segment.first_seq}, but seqs up to "
                           f"{head.seq} are already held", expected_seq=expected)
    checker = _SessionChecker(segment.session, keys)
    checker.count = expected
    checker.prev_hash = head.hash
    checker.prev_seq = head.seq
    checker.expected_seq = expected
    checker.prev_ts = head.ts_ms
    checker.next_segment = head.next_segment
    checker.last_seal_hash = head.last_seal_hash
    checker.last_seal_seq = head.seq
    checker.sealed_through = head.seq
    for offset, raw in enumerate(segment.records):
        checker._row(expected + offset, raw)
    fails = [issue for issue in checker.issues if issue.severity == "fail"]
    if fails or checker.first_fail_bound is not None:
        first = fails[0] if fails else None
        detail = f"{first.code} at seq {first.seq}: {first.detail}" if first else "does not verify"
        raise SegmentError("INVALID", detail, expected_seq=expected)
    last = _last_record(segment.records[-1], expected)
    if last.get("kind") != KIND_SEAL or checker.sealed_through != segment.last_seq:
        raise SegmentError("NOT_SEALED", "a segment ends with a seal that verifies",
                           expected_seq=expected)
    if last.get("segment") != segment.segment:
        raise SegmentError("INVALID", f"the seal closes segment {last.get('segment')}, not "
                           f"{segment.segment}", expected_seq=expected)
    return ChainHead(
        seq=segment.last_seq, hash=checker.prev_hash, next_segment=checker.next_segment,
        last_seal_hash=checker.last_seal_hash, ts_ms=checker.prev_ts,
        final=checker.final_seq is not None,
    )


def _last_record(raw: bytes, expected: int) -> dict[str, object]:
    try:
        return parse_strict(raw)
    except RecordParseError as exc:  # already reported by the checker; kept for the type
        raise SegmentError("INVALID", str(exc), expected_seq=expected) from exc


def split_segments(
    session: str, rows: Sequence[tuple[int, bytes]], *, after_seq: int = -1
) -> list[Segment]:
    """The sealed segments among a session's ``(seq, body)`` rows after ``after_seq``, in
    order; records after the last seal (not sealed yet) are left out."""
    segments: list[Segment] = []
    run: list[tuple[int, bytes]] = []
    for seq, body in rows:
        if seq <= after_seq:
            continue
        run.append((seq, body))
        try:
            record = parse_strict(body)
        except RecordParseError:
            continue
        if record.get("kind") == KIND_SEAL:
            number = record.get("segment")
            segments.append(Segment(
                session=session, segment=number if type(number) is int else -1,
                first_seq=run[0][0], records=tuple(b for _s, b in run)))
            run = []
    return segments
