"""The collector as it runs: ``python -m trackwrap collector serve`` on uvicorn on loopback, real
HTTP from threads, kill -9 in the middle of ingest, backpressure; and its CLI commands."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests._collector import STORAGES, Server, add_token, make_ledger, public_key_text, wire
from tests._ledger import Clock
from trackwrap.cli import main
from trackwrap.collector import Scope, SqliteStorage, open_storage
from trackwrap.crypto import SigningKey
from trackwrap.ledger import Segment, read_receipt

ROOT = Path(__file__).resolve().parents[1]
@pytest.fixture
def start(collector_server: Callable[..., Server]) -> Callable[..., Server]:
    return collector_server


def ledger_segments(path: Path, key: SigningKey, session: str, *, calls: int,
                    seal_every: int) -> list[Segment]:
    ledger = make_ledger(path, key, session=session, calls=calls, seal_every=seal_every,
                         clock=Clock(step=3))
    try:
        return ledger.segments(session)
    finally:
        ledger.close()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_serve_push_over_http_and_stop_cleanly(
    start, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "collector.db"
    assert main(["collector", "token", "create", "--device", "laptop-1", "--developer",
                 "priya@acme.com", "--db", str(db)]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("twc_") and len(token) == 47
    server = start(db)
    assert server.lines[0].startswith(f"collector {server.key_id} listening on http://127.0.0.1:")
    assert server.lines[0].rstrip().endswith(f"(storage: sqlite {db})")
    key = SigningKey.generate()
    segments = ledger_segments(tmp_path / "laptop.db", key, "sess-1", calls=12, seal_every=5)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        identity = client.get("/v1/collector").json()
        assert identity["collector"] == server.key_id
        keys = {server.key_id: _raw(identity["public_key"])}
        for segment in segments:
            answer = client.post("/v1/segments", json=wire(segment, key), headers=bearer(token))
            assert answer.status_code == 200, answer.text
            assert read_receipt(answer.json()["receipt"], keys=keys).seq == segment.last_seq
        assert main(["collector", "token", "list", "--json", "--db", str(db)]) == 0
        [listed] = json.loads(capsys.readouterr().out)
        assert token not in json.dumps(listed)
        assert main(["collector", "token", "revoke", listed["id"], "--db", str(db)]) == 0
        refused = client.post("/v1/segments", json=wire(segments[0], key), headers=bearer(token))
        assert refused.status_code == 401
    assert server.stop(signal.SIGTERM) == 0
    assert not any("Traceback" in line for line in server.lines)
    assert any("401 REVOKED_TOKEN" in line for line in server.lines)


def _raw(text: str) -> bytes:
    import base64

    return base64.b64decode(text.removeprefix("ed25519:"))


def storage_target(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where the server keeps its data: a SQLite file, or a fresh PostgreSQL database."""
    if kind == "sqlite":
        return str(tmp_path / "collector.db")
    return str(request.getfixturevalue("pg_dsn"))


@pytest.mark.parametrize("kind", STORAGES)
def test_four_devices_push_at_once(start, tmp_path: Path, kind: str,
                                   request: pytest.FixtureRequest) -> None:
    db = storage_target(kind, tmp_path, request)
    storage = open_storage(db)
    devices = []
    for n in range(4):
        key = SigningKey.generate()
        token = add_token(storage, device=f"laptop-{n}", developer=f"dev{n}@acme.com")
        devices.append((f"laptop-{n}", key, token, ledger_segments(
            tmp_path / f"laptop-{n}.db", key, f"sess-{n}", calls=60, seal_every=4)))
    reader = add_token(storage, scopes=(Scope.READ,))
    storage.close()
    server = start(db)
    keys: dict[str, bytes] = {}
    failures: list[str] = []

    def push(device: str, key: SigningKey, token: str, segments: list[Segment]) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for segment in segments:
                answer = client.post("/v1/segments", json=wire(segment, key),
                                     headers=bearer(token))
                body = answer.json()
                if answer.status_code != 200 or body["duplicate"]:
                    failures.append(f"{device} {segment.segment}: {answer.text}")
                    return
                receipt = read_receipt(body["receipt"], keys=keys)
                if (receipt.device, receipt.seq) != (device, segment.last_seq):
                    failures.append(f"{device} {segment.segment}: receipt {receipt}")

    with httpx.Client(base_url=server.url, timeout=10) as client:
        keys[server.key_id] = _raw(client.get("/v1/collector").json()["public_key"])
        threads = [threading.Thread(target=push, args=d) for d in devices]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert failures == []
        sessions = client.get("/v1/sessions", headers=bearer(reader)).json()["sessions"]
    heads = {s["device"]: (s["through_seq"], s["segments"], s["events"]) for s in sessions}
    assert heads == {d: (segs[-1].last_seq, len(segs), segs[-1].last_seq + 1)
                     for d, _k, _t, segs in devices}


@pytest.mark.parametrize("kind", STORAGES)
def test_kill_9_mid_ingest_loses_nothing_acknowledged(start, tmp_path: Path, kind: str,
                                                      request: pytest.FixtureRequest) -> None:
    db = storage_target(kind, tmp_path, request)
    storage = open_storage(db)
    devices = []
    for n in range(2):
        key = SigningKey.generate()
        token = add_token(storage, device=f"laptop-{n}")
        devices.append((key, token, ledger_segments(
            tmp_path / f"laptop-{n}.db", key, f"sess-{n}", calls=80, seal_every=3)))
    reader = add_token(storage, scopes=(Scope.READ,))
    storage.close()
    server = start(db)
    acknowledged: dict[str, str] = {}  # segment hash -> receipt
    enough = threading.Event()

    def push_until_killed() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            try:
                for index in range(max(len(d[2]) for d in devices)):
                    for key, token, segments in devices:
                        if index < len(segments):
                            segment = segments[index]
                            answer = client.post("/v1/segments", json=wire(segment, key),
                                                 headers=bearer(token))
                            assert answer.status_code == 200, answer.text
                            acknowledged[segment.content_hash()] = answer.json()["receipt"]
                            if len(acknowledged) >= 20:
                                enough.set()
            except httpx.TransportError:
                return
            finally:
                enough.set()

    pusher = threading.Thread(target=push_until_killed)
    pusher.start()
    assert enough.wait(timeout=60)
    server.kill()
    pusher.join(timeout=30)
    total = sum(len(d[2]) for d in devices)
    assert 20 <= len(acknowledged) < total

    again = start(db)
    assert again.key_id == server.key_id
    replayed = fresh = 0
    with httpx.Client(base_url=again.url, timeout=10) as client:
        for key, token, segments in devices:
            for segment in segments:
                answer = client.post("/v1/segments", json=wire(segment, key),
                                     headers=bearer(token))
                assert answer.status_code == 200, answer.text
                body = answer.json()
                held = acknowledged.get(segment.content_hash())
                if held is not None:
                    assert body == {**body, "duplicate": True, "receipt": held}
                replayed += body["duplicate"]
                fresh += not body["duplicate"]
        sessions = client.get("/v1/sessions", headers=bearer(reader)).json()["sessions"]
    assert replayed >= len(acknowledged)
    assert replayed + fresh == total
    assert sorted((s["session"], s["through_seq"], s["segments"]) for s in sessions) == [
        (f"sess-{n}", segs[-1].last_seq, len(segs)) for n, (_k, _t, segs) in enumerate(devices)]
    assert again.stop(signal.SIGINT) == 0


def test_beyond_max_inflight_the_answer_is_503_at_once(start, tmp_path: Path) -> None:
    server = start(tmp_path / "collector.db", "--max-inflight", "1")
    host, port = server.url.removeprefix("http://").split(":")
    held = socket.create_connection((host, int(port)), timeout=10)
    try:
        held.sendall(b"POST /v1/segments HTTP/1.1\r\nHost: collector\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"sess")
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while "ingest_requests_in_flight 1" not in client.get("/metrics").text:
                pass
            busy = client.post("/v1/segments", json={"session": "s"})
            health = client.get("/healthz")
    finally:
        held.close()
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["error"] == "BUSY"
    assert health.status_code == 200
    assert server.stop() == 0
    assert not any("Traceback" in line for line in server.lines)


def test_serve_over_tls(start, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    server = start(tmp_path / "collector.db", "--tls-cert", str(cert), "--tls-key", str(key))
    assert server.url.startswith("https://127.0.0.1:")
    trust = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(base_url=server.url, verify=trust, timeout=10) as client:
        assert client.get("/healthz").json()["status"] == "ok"
    assert server.stop() == 0


@pytest.mark.parametrize(("argv", "message"), [
    (["collector", "serve", "--listen", "nowhere"], "is not HOST:PORT"),
    (["collector", "serve", "--max-inflight", "0"], "--max-inflight must be at least 1"),
    (["collector", "serve", "--tls-cert", "x.pem"], "--tls-cert and --tls-key go together"),
    (["collector", "serve", "--db", "mysql://db/x"], "is not supported"),
    (["collector", "token", "create", "--developer", "p"], "bound to one device"),
    (["collector", "token", "create", "--developer", "p", "--scope", "root"], "unknown scope"),
    (["collector", "token", "revoke", "tok_nope"], "no token tok_nope"),
    (["collector", "device", "add", "laptop-1", "--key", "ed25519:%%%"], "--key"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_device_add_registers_a_key_before_first_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "collector.db"
    key = SigningKey.generate()
    assert main(["collector", "device", "add", "laptop-1", "--key", public_key_text(key),
                 "--db", str(db)]) == 0
    assert key.key_id in capsys.readouterr().out
    storage = SqliteStorage.open(db)
    try:
        [stored] = storage.device_keys("laptop-1")
    finally:
        storage.close()
    assert (stored.key_id, stored.public_raw, stored.how) == (key.key_id, key.public_raw, "admin")


def test_listen_on_a_taken_port_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        assert main(["collector", "serve", "--listen", f"127.0.0.1:{port}"]) == 2
    finally:
        taken.close()
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert len(err.strip().splitlines()) == 1


def test_the_receipt_key_comes_from_a_file_or_the_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trackwrap.collector import collector_key
    from trackwrap.errors import ConfigError

    assert main(["keys", "generate", "--out", str(tmp_path / "receipts.key")]) == 0
    printed = capsys.readouterr().out
    storage = SqliteStorage.open(tmp_path / "collector.db")
    try:
        from_file = collector_key(storage, tmp_path / "receipts.key")
        assert from_file.key_id in printed
        made = collector_key(storage, None)
        assert made.key_id != from_file.key_id
        assert collector_key(storage, None).key_id == made.key_id
        assert (tmp_path / "collector.key").stat().st_mode & 0o777 == 0o600
        (tmp_path / "bad.key").write_text("not base64!")
        with pytest.raises(ConfigError):
            collector_key(storage, tmp_path / "bad.key")
    finally:
        storage.close()
