"""Approval notifications over real HTTP on loopback.

The receiver is a stdlib HTTP server that checks every webhook with the independent
``standardwebhooks`` implementation and answers a scripted list of statuses.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

import trackwrap
from trackwrap.approvals import (
    ApprovalNotice,
    Channel,
    Delivery,
    decode_webhook_secret,
    deliver,
    notify_all,
    sign_webhook,
    slack_message,
    webhook_request,
)
from trackwrap.errors import ConfigError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - a test secret
OTHER_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
SLACK_PATH = "/services/T000/B000/XXXXsecrettoken"
HOOK_PATH = "/hooks/trackwrap?token=hunter2"


def make_notice(**changes: Any) -> ApprovalNotice:
    values: dict[str, Any] = {
        "approval_id": "apr-7f3a",
        "session": "sess-2026-05-05-abc123",
        "requester": "alice",
        "server": "outbox",
        "tool": "send_email",
        "kind": "email.send",
        "target": "bob@example.org",
        "summary": '{"to": "bob@example.org", "subject": "hi", "api_key": "****"}',
        "action_hash": "sha256:" + "ab" * 32,
        "rule": "APPROVE-EXTERNAL-EMAIL",
        "reason": "email to an external domain",
        "approvers": ("ops", "security"),
        "workspace": "/home/alice/project",
        "requested_ms": 1_778_000_000_000,
        "expires_ms": 1_778_000_900_000,
    }
    values.update(changes)
    return ApprovalNotice(**values)


@dataclass
class Seen:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Receiver:
    """A loopback HTTP server that records requests and answers from a script."""

    base: str
    secret: str
    script: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    require_signature: bool = False
    stall: threading.Event | None = None

    def url(self, path: str) -> str:
        return self.base + path

    def answer(
        self, *responses: int | tuple[int, dict[str, str]] | tuple[int, dict[str, str], bytes]
    ) -> None:
        for response in responses:
            if isinstance(response, int):
                self.script.append((response, {}, b""))
            elif len(response) == 2:
                self.script.append((response[0], response[1], b""))
            else:
                self.script.append(response)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up (the timeout test) is expected; stay quiet."""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(base="", secret=SECRET)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                Webhook(state.secret).verify(body, headers)
            except WebhookVerificationError:
                verified = False
            else:
                verified = True
            with lock:
                state.seen.append(Seen(self.path, headers, body, verified))
                scripted = state.script.pop(0) if state.script else (200, {}, b"ok")
            if state.stall is not None:
                state.stall.wait(5)
                return
            status, extra, payload = scripted
            if state.require_signature and not verified:
                status, extra, payload = 401, {}, b"bad signature"
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            """Keep test output clean."""

    server = _Server(("127.0.0.1", 0), Handler)
    host, port = server.server_address[:2]
    state.base = f"http://{host}:{port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        if state.stall is not None:
            state.stall.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


class Sleeps(list[float]):
    """Records requested waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def webhook(receiver: Receiver, secret: str = SECRET) -> Channel:
    return Channel(name="ops", type="webhook", url=receiver.url(HOOK_PATH), secret=secret)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- signing ----------------------------------------------------------------------------------


def test_signature_matches_the_independent_implementation() -> None:
    body = b'{"type":"approval.requested","data":{}}'
    ours = sign_webhook(SECRET, "msg_1", 1_778_000_000, body)
    theirs = Webhook(SECRET).sign(
        "msg_1", datetime.fromtimestamp(1_778_000_000, tz=UTC), body.decode()
    )
    assert ours == theirs
    assert ours.startswith("v1,")


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with 'whsec_'"),
        ("whsec_", "empty"),
        ("whsec_not*base64!!", "not valid base64"),
    ],
)
def test_bad_secrets_are_config_errors_that_do_not_echo_them(secret: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        sign_webhook(secret, "msg_1", 1, b"{}")
    if secret.removeprefix("whsec_"):
        assert secret not in str(caught.value)
        assert secret.removeprefix("whsec_") not in str(caught.value)


def test_unpadded_secret_decodes_like_the_reference_library() -> None:
    padded = "whsec_" + "YWJjZA=="
    assert decode_webhook_secret(padded) == decode_webhook_secret("whsec_YWJjZA") == b"abcd"


def test_webhook_request_is_compact_json_with_standard_headers() -> None:
    channel = Channel(name="ops", type="webhook", url="https://hooks.example.com/x", secret=SECRET)
    headers, body = webhook_request(
        channel, "approval.requested", {"a": 1}, msg_id="msg_x", timestamp_s=1_778_000_000
    )
    assert body == (
        b'{"type":"approval.requested","timestamp":"2026-05-05T16:53:20Z","data":{"a":1}}'
    )
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == f"trackwrap/{trackwrap.__version__}"
    assert headers["webhook-id"] == "msg_x"
    assert headers["webhook-timestamp"] == "1778000000"
    assert headers["webhook-signature"] == sign_webhook(SECRET, "msg_x", 1_778_000_000, body)


def test_tampered_body_fails_independent_verification() -> None:
    channel = Channel(name="ops", type="webhook", url="https://hooks.example.com/x", secret=SECRET)
    now = int(datetime.now(tz=UTC).timestamp())
    headers, body = webhook_request(
        channel, "approval.requested", make_notice().to_json(), msg_id="msg_1", timestamp_s=now
    )
    assert Webhook(SECRET).verify(body, headers)["data"]["approval_id"] == "apr-7f3a"
    tampered = body.replace(b"bob@example.org", b"eve@example.org")
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(tampered, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER_SECRET).verify(body, headers)


# --- data -------------------------------------------------------------------------------------


def test_notice_json_is_plain_and_has_utc_times() -> None:
    data = make_notice().to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["approvers"] == ["ops", "security"]
    assert data["requested_at"] == "2026-05-05T16:53:20Z"
    assert data["expires_at"] == "2026-05-05T17:08:20Z"
    assert list(data)[:3] == ["approval_id", "session", "requester"]


def test_delivery_json_and_channel_repr_hide_credentials() -> None:
    assert Delivery("ops", ok=False, attempts=2, status=503, error="x").to_json() == {
        "channel": "ops",
        "ok": False,
        "attempts": 2,
        "status": 503,
        "error": "x",
    }
    channel = Channel(
        name="ops-slack", type="slack", url="https://hooks.slack.com" + SLACK_PATH, secret=None
    )
    assert "XXXX" not in repr(channel)
    assert "hooks.slack.com:443" in repr(channel)
    assert SECRET not in repr(Channel("ops", "webhook", "https://h/x", SECRET))


# --- slack ------------------------------------------------------------------------------------


def test_slack_message_is_readable_block_kit() -> None:
    message = slack_message(make_notice())
    text = message["text"]
    assert isinstance(text, str)
    assert "\n" not in text
    assert "email.send" in text
    assert "bob@example.org" in text
    assert "trackwrap approve apr-7f3a" in text
    blocks = message["blocks"]
    assert isinstance(blocks, list)
    assert blocks[0] == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": "Approval needed: email.send bob@example.org",
            "emoji": False,
        },
    }
    rendered = json.dumps(blocks)
    for expected in (
        "alice",
        "outbox",
        "send_email",
        "APPROVE-EXTERNAL-EMAIL",
        "email to an external domain",
        "/home/alice/project",
        "sess-2026-05-05-abc123",
        "`ops`, `security`",
        "2026-05-05 17:08:20 UTC",
        '```{\\"to\\": \\"bob@example.org\\"',
        "trackwrap approve apr-7f3a",
        'trackwrap deny apr-7f3a --reason \\"',
    ):
        assert expected in rendered, expected
    for block in blocks:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
    assert len(blocks[0]["text"]["text"]) <= 150


def test_slack_message_escapes_untrusted_text() -> None:
    hostile = make_notice(
        requester="mallory <!channel>",
        target="<script>alert(1)</script>",
        summary="<https://evil.example|click me> & ```` break out",
        reason="because <@U123> & friends",
        rule="R<1>",
        approval_id="apr-<x>",
    )
    message = slack_message(hostile)
    rendered = json.dumps(message)
    for raw in ("<script>", "<!channel>", "<https://", "<@U123>", "R<1>", "apr-<x>"):
        assert raw not in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    assert "&lt;!channel&gt;" in rendered
    assert " &amp; friends" in rendered
    # the summary cannot close its code block early
    args = next(
        block["text"]["text"]
        for block in message["blocks"]  # type: ignore[attr-defined]
        if block.get("text", {}).get("text", "").startswith("*Arguments*")
    )
    assert args.count("```") == 2


def test_slack_message_caps_long_text() -> None:
    message = slack_message(make_notice(target="x" * 500, summary="&" * 10_000))
    blocks = message["blocks"]
    assert isinstance(blocks, list)
    assert len(blocks[0]["text"]["text"]) <= 150
    assert blocks[0]["text"]["text"].endswith("…")
    for block in blocks:
        if "text" in block:
            assert len(block["text"]["text"]) <= 3000
        for item in block.get("fields", []):
            assert len(item["text"]) <= 2000
    assert len(str(message["text"])) <= 300


def test_importing_approvals_does_not_import_httpx() -> None:
    code = "import sys, trackwrap.approvals; print('httpx' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# --- delivery over real HTTP ------------------------------------------------------------------


def test_webhook_delivery_verifies_with_the_independent_library(receiver: Receiver) -> None:
    receiver.require_signature = True
    sleeps = Sleeps()
    result = deliver(webhook(receiver), make_notice(), sleep=sleeps)
    assert result == Delivery("ops", ok=True, attempts=1, status=200, error=None)
    assert sleeps == []
    (seen,) = receiver.seen
    assert seen.verified
    assert seen.path == HOOK_PATH
    assert seen.headers["user-agent"] == f"trackwrap/{trackwrap.__version__}"
    payload = json.loads(seen.body)
    assert payload["type"] == "approval.requested"
    assert payload["data"] == make_notice().to_json()
    assert seen.headers["webhook-id"] == "msg_apr-7f3a_approval.requested"


def test_wrong_secret_is_rejected_by_the_receiver_and_not_retried(receiver: Receiver) -> None:
    receiver.require_signature = True
    sleeps = Sleeps()
    result = deliver(webhook(receiver, OTHER_SECRET), make_notice(), sleep=sleeps)
    assert not result.ok
    assert result.status == 401
    assert result.attempts == 1
    assert sleeps == []
    assert not receiver.seen[0].verified


def test_retries_keep_the_webhook_id_and_body(receiver: Receiver) -> None:
    receiver.require_signature = True
    receiver.answer(503, 502, 200)
    sleeps = Sleeps()
    result = deliver(webhook(receiver), make_notice(), sleep=sleeps, event_type="approval.reminder")
    assert result.ok
    assert result.attempts == 3
    assert result.status == 200
    assert sleeps == [0.5, 1.0]
    assert len(receiver.seen) == 3
    assert all(seen.verified for seen in receiver.seen)
    assert {seen.headers["webhook-id"] for seen in receiver.seen} == {
        "msg_apr-7f3a_approval.reminder"
    }
    assert len({seen.body for seen in receiver.seen}) == 1


def test_explicit_msg_id_is_used(receiver: Receiver) -> None:
    deliver(webhook(receiver), make_notice(), msg_id="msg_custom", sleep=Sleeps())
    assert receiver.seen[0].headers["webhook-id"] == "msg_custom"


def test_429_then_success_honours_retry_after(receiver: Receiver) -> None:
    receiver.answer((429, {"Retry-After": "3"}), (503, {"Retry-After": "0"}), 204)
    sleeps = Sleeps()
    result = deliver(webhook(receiver), make_notice(), sleep=sleeps)
    assert result == Delivery("ops", ok=True, attempts=3, status=204, error=None)
    assert sleeps == [3.0, 0.0]


def test_retry_after_is_capped_and_http_dates_fall_back_to_backoff(receiver: Receiver) -> None:
    receiver.answer(
        (503, {"Retry-After": "3600"}),
        (503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        200,
    )
    sleeps = Sleeps()
    result = deliver(webhook(receiver), make_notice(), sleep=sleeps, backoff_s=(0.25,))
    assert result.ok
    assert sleeps == [30.0, 0.25]


def test_gives_up_after_the_last_attempt_on_5xx(receiver: Receiver) -> None:
    receiver.answer(500, 503, 504, 503, 200)
    sleeps = Sleeps()
    result = deliver(webhook(receiver), make_notice(), attempts=4, sleep=sleeps)
    assert not result.ok
    assert result.attempts == 4
    assert result.status == 503
    assert result.error is not None
    assert "HTTP 503" in result.error
    assert sleeps == [0.5, 1.0, 2.0]
    assert len(receiver.seen) == 4


def test_no_retry_on_400_and_the_error_has_no_url_path(receiver: Receiver) -> None:
    receiver.answer((400, {}, b"bad payload"))
    sleeps = Sleeps()
    result = deliver(webhook(receiver), make_notice(), sleep=sleeps)
    assert not result.ok
    assert result.attempts == 1
    assert result.status == 400
    assert sleeps == []
    assert result.error is not None
    assert "HTTP 400" in result.error
    assert "bad payload" in result.error
    assert "hunter2" not in result.error
    assert "/hooks" not in result.error
    assert receiver.base in result.error


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.answer((302, {"Location": receiver.url("/elsewhere")}))
    result = deliver(webhook(receiver), make_notice(), sleep=Sleeps())
    assert not result.ok
    assert result.status == 302
    assert result.attempts == 1
    assert [seen.path for seen in receiver.seen] == [HOOK_PATH]


def test_connection_refused_retries_then_fails_without_the_path() -> None:
    port = closed_port()
    channel = Channel(
        name="down",
        type="webhook",
        url=f"http://127.0.0.1:{port}/secret/path?token=hunter2",
        secret=SECRET,
    )
    sleeps = Sleeps()
    result = deliver(channel, make_notice(), attempts=3, sleep=sleeps)
    assert not result.ok
    assert result.attempts == 3
    assert result.status is None
    assert sleeps == [0.5, 1.0]
    assert result.error is not None
    assert f"127.0.0.1:{port}" in result.error
    assert "secret/path" not in result.error
    assert "hunter2" not in result.error
    assert "\n" not in result.error


def test_timeout_is_retried_and_reported(receiver: Receiver) -> None:
    receiver.stall = threading.Event()
    sleeps = Sleeps()
    result = deliver(webhook(receiver), make_notice(), attempts=2, timeout_s=0.2, sleep=sleeps)
    assert not result.ok
    assert result.attempts == 2
    assert result.status is None
    assert result.error is not None
    assert "did not answer within 0.2s" in result.error
    assert sleeps == [0.5]


def test_bad_secret_fails_without_a_request(receiver: Receiver) -> None:
    channel = webhook(receiver, "whsec_***")
    result = deliver(channel, make_notice(), sleep=Sleeps())
    assert not result.ok
    assert result.attempts == 0
    assert result.error is not None
    assert "base64" in result.error
    assert "***" not in result.error
    assert receiver.seen == []


def test_missing_secret_and_unknown_type_fail_without_raising(receiver: Receiver) -> None:
    missing = deliver(Channel("ops", "webhook", receiver.url("/x")), make_notice())
    assert not missing.ok
    assert missing.error is not None
    assert "no signing secret" in missing.error
    unknown = deliver(Channel("odd", "email", receiver.url("/x")), make_notice())
    assert not unknown.ok
    assert unknown.error is not None
    assert "unknown type" in unknown.error
    assert receiver.seen == []


def test_slack_delivery_posts_block_kit_json(receiver: Receiver) -> None:
    channel = Channel(name="ops-slack", type="slack", url=receiver.url(SLACK_PATH))
    result = deliver(channel, make_notice(), sleep=Sleeps())
    assert result == Delivery("ops-slack", ok=True, attempts=1, status=200, error=None)
    (seen,) = receiver.seen
    assert seen.path == SLACK_PATH
    assert "webhook-signature" not in seen.headers
    assert seen.headers["content-type"] == "application/json"
    assert json.loads(seen.body) == slack_message(make_notice())


def test_slack_error_explains_without_the_token(receiver: Receiver) -> None:
    receiver.answer((403, {}, b"invalid_token"), (201, {}, b""))
    channel = Channel(name="ops-slack", type="slack", url=receiver.url(SLACK_PATH))
    first = deliver(channel, make_notice(), sleep=Sleeps())
    assert not first.ok
    assert first.error is not None
    assert "invalid_token" in first.error
    assert "XXXX" not in first.error
    assert "services" not in first.error
    second = deliver(channel, make_notice(), sleep=Sleeps())
    assert not second.ok
    assert second.status == 201
    assert second.attempts == 1


def test_notify_all_delivers_to_each_channel(receiver: Receiver) -> None:
    channels = [
        webhook(receiver),
        Channel(name="ops-slack", type="slack", url=receiver.url(SLACK_PATH)),
        Channel(name="down", type="slack", url=f"http://127.0.0.1:{closed_port()}/x"),
    ]
    results = notify_all(channels, make_notice(), attempts=2, sleep=Sleeps())
    assert [(r.channel, r.ok, r.attempts) for r in results] == [
        ("ops", True, 1),
        ("ops-slack", True, 1),
        ("down", False, 2),
    ]
    assert [seen.path for seen in receiver.seen] == [HOOK_PATH, SLACK_PATH]
