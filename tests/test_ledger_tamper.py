"""verify_ledger against ledgers tampered with directly in the SQLite file (as an attacker would).

Each test builds a real ledger, edits the database with ``sqlite3``, and asserts the issue codes and
seqs (never message text). The standard ledger of session ``s``: genesis (0), decisions 1..9, seal
(10, segment 0), decisions 11..14, and, when ``final``, a final seal (15).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from pathlib import Path

import rfc8785

from tests._ledger import Clock
from trackwrap.crypto import SigningKey, pae
from trackwrap.ledger import Ledger, VerifyReport, verify_ledger

DOMAIN = b"trackwrap.event.v1\x00"
SEAL_PAYLOAD_TYPE = "application/vnd.trackwrap.seal.v1+json"


def sha(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(DOMAIN + raw).hexdigest()




def build(db: Path, key: SigningKey, *, final: bool = True) -> None:
    with Ledger.open(db, signer=lambda: key, clock_ms=Clock()) as ledger:
        ledger.ensure_session("s", genesis={"agent": {"harness": "test"}})
        for n in range(1, 10):
            ledger.append("s", {"kind": "tool_call.decision", "n": n})
        assert ledger.seal("s") == 10
        for n in range(11, 15):
            ledger.append("s", {"kind": "tool_call.decision", "n": n})
        if final:
            assert ledger.seal("s", final=True) == 15


def body(db: Path, seq: int, session: str = "s") -> dict[str, object]:
    conn = sqlite3.connect(db)
    try:
        (raw,) = conn.execute(
            "SELECT body FROM events WHERE session = ? AND seq = ?", (session, seq)
        ).fetchone()
    finally:
        conn.close()
    result: dict[str, object] = json.loads(raw)
    return result


def raw_of(db: Path, seq: int) -> bytes:
    conn = sqlite3.connect(db)
    try:
        (raw,) = conn.execute("SELECT body FROM events WHERE seq = ?", (seq,)).fetchone()
    finally:
        conn.close()
    return bytes(raw)


def sql(db: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    conn = sqlite3.connect(db)
    try:
        with conn:
            for statement, params in statements:
                conn.execute(statement, params)
    finally:
        conn.close()


def put(db: Path, seq: int, record: dict[str, object]) -> None:
    sql(db, ("UPDATE events SET body = ? WHERE seq = ?", (rfc8785.dumps(record), seq)))


def resign(record: dict[str, object], key: SigningKey) -> dict[str, object]:
    unsigned = {k: v for k, v in record.items() if k != "sig"}
    signature = key.sign(pae(SEAL_PAYLOAD_TYPE, rfc8785.dumps(unsigned)))
    return {**unsigned, "sig": base64.b64encode(signature).decode()}


def fails(report: VerifyReport) -> list[tuple[str, int | None]]:
    return [(i.code, i.seq) for v in report.sessions for i in v.issues if i.severity == "fail"]


def warns(report: VerifyReport) -> list[tuple[str, int | None]]:
    return [(i.code, i.seq) for v in report.sessions for i in v.issues if i.severity == "warn"]


def test_clean_closed_ledger_passes(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    report = verify_ledger(db)
    assert report.exit_code == 0
    (verdict,) = report.sessions
    assert (verdict.status, verdict.events, verdict.issues) == ("pass", 16, [])
    assert (verdict.verified_through_seq, verdict.sealed_through_seq) == (15, 15)
    assert verdict.chain_tip == sha(raw_of(db, 15))
    assert report.keys_source == "ledger"
    assert report.to_json()["exit_code"] == 0


def test_unsealed_tail_warns(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key, final=False)
    report = verify_ledger(db)
    assert report.exit_code == 2
    assert warns(report) == [("UNSEALED_TAIL", 11)]
    assert fails(report) == []
    (verdict,) = report.sessions
    assert (verdict.status, verdict.verified_through_seq, verdict.sealed_through_seq) == (
        "warn",
        14,
        10,
    )


def test_truncated_unsealed_tail_is_not_detectable(tmp_path: Path, key: SigningKey) -> None:
    """A chain alone cannot show that the last unsealed records were deleted (documented)."""
    db = tmp_path / "l.db"
    build(db, key, final=False)
    sql(db, ("DELETE FROM events WHERE seq >= 12", ()))
    report = verify_ledger(db)
    assert report.exit_code == 2
    assert warns(report) == [("UNSEALED_TAIL", 11)]


def test_edited_body_breaks_the_link(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    put(db, 5, {**body(db, 5), "n": 999})  # still canonical: only the link to seq 6 breaks
    report = verify_ledger(db)
    assert report.exit_code == 1
    assert fails(report) == [("CHAIN_BREAK", 6)]
    (verdict,) = report.sessions
    assert verdict.verified_through_seq == 4  # either end of the broken link may be the edit
    assert verdict.sealed_through_seq == -1


def test_edit_after_a_seal_keeps_the_sealed_prefix(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    put(db, 12, {**body(db, 12), "n": 0})
    report = verify_ledger(db)
    assert fails(report) == [("CHAIN_BREAK", 13)]
    (verdict,) = report.sessions
    assert (verdict.verified_through_seq, verdict.sealed_through_seq) == (11, 10)


def test_non_canonical_bytes_fail(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    record = body(db, 5)
    sql(db, ("UPDATE events SET body = ? WHERE seq = 5", (json.dumps(record).encode(),)))
    assert fails(verify_ledger(db)) == [("NON_CANONICAL", 5), ("CHAIN_BREAK", 6)]


def test_duplicate_keys_fail_to_parse(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    raw = raw_of(db, 5)
    sql(db, ("UPDATE events SET body = ? WHERE seq = 5", (raw[:-1] + b',"v":1}',)))
    assert fails(verify_ledger(db)) == [("PARSE", 5), ("CHAIN_BREAK", 6)]


def test_deleted_middle_row_fails(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    sql(db, ("DELETE FROM events WHERE seq = 5", ()))
    found = fails(verify_ledger(db))
    assert found[:2] == [("SEQ_GAP_OR_REORDER", 6), ("CHAIN_BREAK", 6)]
    assert ("SEAL_MISMATCH", 10) in found  # the seal covered 10 records; 9 remain


def test_deleted_genesis_fails(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    sql(db, ("DELETE FROM events WHERE seq = 0", ()))
    found = fails(verify_ledger(db))
    assert ("NO_GENESIS", 1) in found
    assert found[0] == ("SEQ_GAP_OR_REORDER", 1)


def test_inserted_row_fails(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    forged = {**body(db, 5), "n": 42, "decision": "allow"}  # a well-linked record for seq 5
    sql(
        db,
        ("UPDATE events SET seq = seq + 1000 WHERE seq >= 5", ()),
        ("UPDATE events SET seq = seq - 999 WHERE seq >= 1000", ()),
        ("INSERT INTO events (session, seq, body) VALUES ('s', 5, ?)", (rfc8785.dumps(forged),)),
    )
    found = fails(verify_ledger(db))
    assert found[:2] == [("SEQ_GAP_OR_REORDER", 6), ("CHAIN_BREAK", 6)]


def test_reordered_rows_fail(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    sql(
        db,
        ("UPDATE events SET seq = -1 WHERE seq = 3", ()),
        ("UPDATE events SET seq = 3 WHERE seq = 4", ()),
        ("UPDATE events SET seq = 4 WHERE seq = -1", ()),
    )
    found = fails(verify_ledger(db))
    assert found[:2] == [("SEQ_GAP_OR_REORDER", 3), ("CHAIN_BREAK", 3)]
    assert ("SEQ_GAP_OR_REORDER", 4) in found


def test_broken_prev_link_fails(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    put(db, 7, {**body(db, 7), "prev": "sha256:" + "0" * 64})
    report = verify_ledger(db)
    assert fails(report)[0] == ("CHAIN_BREAK", 7)
    assert report.sessions[0].verified_through_seq == 5


def test_foreign_session_record_fails(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    put(db, 5, {**body(db, 5), "session": "t"})
    assert fails(verify_ledger(db))[0] == ("FOREIGN_SESSION", 5)


def test_flipped_seal_signature_fails(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    seal = body(db, 10)
    signature = bytearray(base64.b64decode(str(seal["sig"])))
    signature[0] ^= 0x01
    put(db, 10, {**seal, "sig": base64.b64encode(bytes(signature)).decode()})
    found = fails(verify_ledger(db))
    assert found[0] == ("SEAL_BAD_SIGNATURE", 10)
    assert ("CHAIN_BREAK", 11) in found


def test_resigned_seal_with_wrong_tree_size_is_a_mismatch(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    put(db, 15, resign({**body(db, 15), "tree_size": 14}, key))  # the last record: no link after
    assert fails(verify_ledger(db)) == [("SEAL_MISMATCH", 15)]


def test_resigned_seal_with_wrong_tip_is_a_mismatch(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    put(db, 15, resign({**body(db, 15), "chain_tip": "sha256:" + "1" * 64}, key))
    assert fails(verify_ledger(db)) == [("SEAL_MISMATCH", 15)]


def test_resigned_seal_with_wrong_prev_seal_breaks_the_seal_chain(
    tmp_path: Path, key: SigningKey
) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    put(db, 15, resign({**body(db, 15), "prev_seal": None}, key))
    assert fails(verify_ledger(db)) == [("SEAL_CHAIN_BREAK", 15)]


def test_unknown_key_with_trusted_keys_fails(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    other = SigningKey.generate()
    report = verify_ledger(db, trusted_keys={other.key_id: other.public_raw})
    assert report.keys_source == "trusted"
    assert fails(report) == [("SEAL_KEY_INVALID", 10), ("SEAL_KEY_INVALID", 15)]
    trusted = verify_ledger(db, trusted_keys={key.key_id: key.public_raw})
    assert (trusted.exit_code, trusted.keys_source) == (0, "trusted")


def test_seal_by_a_key_the_attacker_registered_fails_with_trusted_keys(
    tmp_path: Path, key: SigningKey
) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    attacker = SigningKey.generate()
    put(db, 15, resign({**body(db, 15), "key_id": attacker.key_id}, attacker))
    sql(
        db,
        (
            "INSERT INTO keys (key_id, public_raw, first_seen_ms) VALUES (?, ?, 0)",
            (attacker.key_id, attacker.public_raw),
        ),
    )
    assert verify_ledger(db).exit_code == 0  # the ledger's own keys prove consistency only
    report = verify_ledger(db, trusted_keys={key.key_id: key.public_raw})
    assert fails(report) == [("SEAL_KEY_INVALID", 15)]


def test_tampered_key_table_fails(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    sql(db, ("UPDATE keys SET public_raw = ?", (SigningKey.generate().public_raw,)))
    assert fails(verify_ledger(db)) == [("SEAL_KEY_INVALID", 10), ("SEAL_KEY_INVALID", 15)]


def test_record_after_final_seal_fails(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    forged = {**body(db, 14), "seq": 16, "prev": sha(raw_of(db, 15)), "ts_ms": 1_800_000_000_000}
    sql(
        db,
        ("INSERT INTO events (session, seq, body) VALUES ('s', 16, ?)", (rfc8785.dumps(forged),)),
    )
    assert fails(verify_ledger(db)) == [("RECORD_AFTER_FINAL_SEAL", 16)]


def test_clock_going_backwards_warns(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    clock = Clock()
    with Ledger.open(db, signer=lambda: key, clock_ms=clock) as ledger:
        ledger.ensure_session("s", genesis={})
        ledger.append("s", {"kind": "tool_call.decision"})
        clock.now -= 10_000
        ledger.append("s", {"kind": "tool_call.decision"})
        ledger.seal("s", final=True)
    report = verify_ledger(db)
    assert report.exit_code == 2
    assert warns(report) == [("CLOCK_ANOMALY", 2)]


def test_derived_state_is_not_trusted(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    sql(db, ("DELETE FROM sessions", ()))
    assert verify_ledger(db).exit_code == 0
    sql(db, ("DROP TABLE sessions", ()))
    assert [v.session for v in verify_ledger(db).sessions] == ["s"]


def test_every_session_is_reported(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "l.db"
    build(db, key)
    with Ledger.open(db, signer=lambda: key, clock_ms=Clock()) as ledger:
        ledger.ensure_session("t", genesis={})
    report = verify_ledger(db)
    assert [(v.session, v.status) for v in report.sessions] == [("s", "pass"), ("t", "warn")]
    assert report.exit_code == 2
    put(db, 3, {**body(db, 3), "n": 0})
    assert verify_ledger(db).exit_code == 1
    assert verify_ledger(db, session="t").exit_code == 2
