"""Collector receipts as witnesses: what verify says once a chain is witnessed, and the
settings and secrets the sync client uses."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._ledger import Clock
from trackwrap.config import UserConfig
from trackwrap.crypto import SecretStore, SigningKey
from trackwrap.errors import ConfigError, KeyStoreError, LedgerError
from trackwrap.ledger import Ledger, sign_receipt, verify_ledger


@pytest.fixture
def ledger(db: Path, key: SigningKey) -> Iterator[Ledger]:
    opened = Ledger.open(db, signer=lambda: key, clock_ms=Clock(), seal_every=5)
    opened.ensure_session("s", genesis={"workspace": "/w"})
    for i in range(12):
        opened.append("s", {"kind": "note", "i": i})
    yield opened
    opened.close()


@pytest.fixture
def collector() -> SigningKey:
    return SigningKey.generate()


def witness_all(ledger: Ledger, collector: SigningKey) -> int:
    """Receipts for every sealed segment, as a collector would sign them; the last seq."""
    last = -1
    for segment in ledger.segments("s"):
        ledger.store_receipt(sign_receipt(collector, {
            "device": "laptop", "session": "s", "segment": segment.segment,
            "seq": segment.last_seq, "chain_tip": segment.tip(),
            "segment_hash": segment.content_hash(), "received_at_ms": 1}))
        last = segment.last_seq
    return last


def test_witnessed_through_is_reported(ledger: Ledger, collector: SigningKey, db: Path) -> None:
    last = witness_all(ledger, collector)
    report = verify_ledger(db, collector_keys={collector.key_id: collector.public_raw})
    [verdict] = report.sessions
    assert verdict.witnessed_through_seq == last
    assert verdict.status == "warn"  # an unsealed tail, nothing worse


def test_truncating_a_witnessed_chain_is_a_failure(
    ledger: Ledger, collector: SigningKey, db: Path
) -> None:
    last = witness_all(ledger, collector)
    ledger.close()
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM events WHERE session = 's' AND seq >= ?", (last - 1,))
    conn.commit()
    conn.close()
    [verdict] = verify_ledger(db).sessions
    assert verdict.status == "fail"
    assert "WITNESSED_TRUNCATED" in [i.code for i in verdict.issues]


def test_rewriting_a_witnessed_record_is_a_failure(
    ledger: Ledger, collector: SigningKey, db: Path, key: SigningKey
) -> None:
    witness_all(ledger, collector)
    seal = ledger.segments("s")[0].last_seq  # a witnessed record: the first segment's seal
    ledger.close()
    conn = sqlite3.connect(db)
    body = bytes(conn.execute("SELECT body FROM events WHERE session = 's' AND seq = ?",
                              (seal,)).fetchone()[0])
    changed = body.replace(b'"final":false', b'"final":true')
    assert changed != body
    conn.execute("UPDATE events SET body = ? WHERE session = 's' AND seq = ?", (changed, seal))
    conn.commit()
    conn.close()
    codes = [i.code for i in verify_ledger(db).sessions[0].issues]
    assert "WITNESSED_REWRITTEN" in codes


def test_a_forged_receipt_is_refused(ledger: Ledger, collector: SigningKey, db: Path) -> None:
    mallory = SigningKey.generate()
    witness_all(ledger, mallory)
    # Claiming to come from the pinned collector, signed by another key.
    pinned = {mallory.key_id: collector.public_raw}
    [verdict] = verify_ledger(db, collector_keys=pinned).sessions
    assert verdict.status == "fail"
    assert "RECEIPT_INVALID" in [i.code for i in verdict.issues]


def test_a_receipt_for_another_chain_is_not_stored(ledger: Ledger, collector: SigningKey) -> None:
    segment = ledger.segments("s")[0]
    wrong = sign_receipt(collector, {
        "device": "laptop", "session": "s", "segment": 0, "seq": segment.last_seq,
        "chain_tip": "sha256:" + "0" * 64, "segment_hash": segment.content_hash(),
        "received_at_ms": 1})
    with pytest.raises(LedgerError, match="does not have there"):
        ledger.store_receipt(wrong)


def test_user_config_round_trip_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    config = UserConfig.load(path).with_value("collector.url", "http://127.0.0.1:8750/")
    config.with_value("collector.device", "laptop-7").save(path)
    loaded = UserConfig.load(path)
    assert (loaded.collector_url, loaded.collector_device) == ("http://127.0.0.1:8750",
                                                               "laptop-7")
    with pytest.raises(ConfigError, match="http"):
        loaded.with_value("collector.url", "ftp://x")
    with pytest.raises(ConfigError, match="unknown setting"):
        loaded.with_value("collector.colour", "x")


def test_secrets_stay_in_private_files(tmp_path: Path) -> None:
    store = SecretStore(tmp_path, backend="file", warn=lambda _m: None)
    assert store.get("collector-token") is None
    store.set("collector-token", "twc_secret")
    path = tmp_path / "keys" / "secrets" / "collector-token"
    assert path.stat().st_mode & 0o777 == 0o600
    assert store.get("collector-token") == "twc_secret"
    path.chmod(0o644)
    with pytest.raises(KeyStoreError, match="readable by others"):
        store.get("collector-token")
    path.chmod(0o600)
    assert store.delete("collector-token") and store.get("collector-token") is None
    with pytest.raises(KeyStoreError, match="not a secret name"):
        store.set("../escape", "x")
