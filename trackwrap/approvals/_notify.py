"""Approval notifications: signed webhooks (Standard Webhooks v1) and Slack incoming webhooks.

A pending approval is announced to every configured channel:

- ``webhook`` channels get ``{"type", "timestamp", "data"}`` JSON signed per Standard Webhooks
  (``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256>``). The
  ``webhook-id`` is derived from the approval and event type and stays the same on every retry,
  so a receiver can drop duplicates.
- ``slack`` channels get a Block Kit message that says who asked for what, where and why, when
  the request expires and the exact commands that decide it.

:func:`deliver` is synchronous and never raises: the caller runs it on a worker thread and
records the :class:`Delivery` it returns. httpx is imported only when something is sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from trackwrap import __version__
from trackwrap.errors import ConfigError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ApprovalNotice",
    "Channel",
    "Delivery",
    "decode_webhook_secret",
    "deliver",
    "notify_all",
    "sign_webhook",
    "slack_message",
    "webhook_request",
]

_SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
_USER_AGENT = f"trackwrap/{__version__}"
_RETRY_AFTER_CAP_S = 30.0
_ERROR_CAP = 200
_SNIPPET_CAP = 80
_SAFE_MSG_ID = re.compile(r"[A-Za-z0-9._-]{1,200}")
_RETRY_AFTER = re.compile(r"\d+(?:\.\d+)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_KEEP_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_MRKDWN_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Slack's limits: header text 150 characters, section text 3000, a section field 2000.
_HEADER_CAP = 150
_FIELD_CAP = 300
_SUMMARY_CAP = 1500
_TEXT_CAP = 3000
_FALLBACK_CAP = 300


@dataclass(frozen=True, slots=True)
class ApprovalNotice:
    """What a notification says about one approval request.

    Every string is already safe to show: the caller masks secrets in the arguments summary.
    Times are milliseconds since the Unix epoch.
    """

    approval_id: str
    """The approval's id (``apr-…``)."""
    session: str
    """The session the call belongs to."""
    requester: str
    """Who asked: the developer the session belongs to."""
    server: str
    """The upstream server's name, e.g. ``outbox``."""
    tool: str
    """The tool called, e.g. ``send_email``."""
    kind: str
    """The canonical action kind, e.g. ``email.send``."""
    target: str
    """A short target, e.g. ``bob@example.org``."""
    summary: str
    """A preview of the arguments, secrets masked, capped by the caller."""
    action_hash: str
    """The canonical action's hash (``sha256:…``)."""
    rule: str
    """The id of the rule that asked for approval."""
    reason: str
    """Why approval is needed."""
    approvers: tuple[str, ...]
    """Approver groups that may decide; empty: any approver."""
    workspace: str
    """The workspace the call runs in."""
    requested_ms: int
    """When the approval was requested."""
    expires_ms: int
    """When the request expires undecided."""

    def to_json(self) -> dict[str, object]:
        """Plain JSON data with stable keys; ``requested_at``/``expires_at`` are ISO-8601 UTC."""
        return {
            "approval_id": self.approval_id,
            "session": self.session,
            "requester": self.requester,
            "server": self.server,
            "tool": self.tool,
            "kind": self.kind,
            "target": self.target,
            "summary": self.summary,
            "action_hash": self.action_hash,
            "rule": self.rule,
            "reason": self.reason,
            "approvers": list(self.approvers),
            "workspace": self.workspace,
            "requested_ms": self.requested_ms,
            "expires_ms": self.expires_ms,
            "requested_at": _iso(self.requested_ms / 1000),
            "expires_at": _iso(self.expires_ms / 1000),
        }


@dataclass(frozen=True, slots=True, repr=False)
class Channel:
    """Where notifications go. ``type`` is ``webhook`` or ``slack``; ``secret`` (webhook only)
    is a Standard Webhooks secret ``whsec_<base64>``.

    The URL and secret are credentials (a Slack URL embeds a token): ``repr`` shows only the
    URL's ``scheme://host:port``.
    """

    name: str
    type: str
    url: str
    secret: str | None = None

    def __repr__(self) -> str:
        secret = ", secret=<set>" if self.secret is not None else ""
        return f"Channel(name={self.name!r}, type={self.type!r}, url={_origin(self.url)!r}{secret})"


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of delivering one notification to one channel."""

    channel: str
    """The channel's name."""
    ok: bool
    """Whether the receiver accepted the notification."""
    attempts: int
    """How many requests were made (0: none could be built)."""
    status: int | None
    """The last HTTP status; ``None`` if no response came."""
    error: str | None
    """The last error, short and human-readable, without URL paths or secrets."""

    def to_json(self) -> dict[str, object]:
        """Plain JSON data with stable keys."""
        return {
            "channel": self.channel,
            "ok": self.ok,
            "attempts": self.attempts,
            "status": self.status,
            "error": self.error,
        }


def decode_webhook_secret(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64 after the ``whsec_`` prefix (missing
    ``=`` padding is tolerated).

    Raises:
        ConfigError: the secret lacks the prefix, is empty or is not base64 (the message never
            contains the secret).
    """
    if not secret.startswith(_SECRET_PREFIX):
        raise ConfigError(
            f"a webhook secret must start with {_SECRET_PREFIX!r} followed by base64 "
            "(Standard Webhooks format)"
        )
    text = secret[len(_SECRET_PREFIX) :]
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"the webhook secret is not valid base64 after {_SECRET_PREFIX!r}"
        ) from None
    if not key:
        raise ConfigError(f"the webhook secret is empty after {_SECRET_PREFIX!r}")
    return key


def sign_webhook(secret: str, msg_id: str, timestamp_s: int, body: bytes) -> str:
    """The Standard Webhooks v1 signature ``v1,<base64 HMAC-SHA256>`` over
    ``"<msg_id>.<timestamp_s>.<body>"``.

    Raises:
        ConfigError: ``secret`` is not a valid ``whsec_`` secret.
    """
    key = decode_webhook_secret(secret)
    digest = hmac.new(key, f"{msg_id}.{timestamp_s}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def webhook_request(
    channel: Channel,
    event_type: str,
    data: Mapping[str, object],
    *,
    msg_id: str,
    timestamp_s: int,
) -> tuple[dict[str, str], bytes]:
    """Headers and body of one signed webhook request.

    The body is compact JSON ``{"type": event_type, "timestamp": <ISO-8601 UTC>, "data": data}``.

    Raises:
        ConfigError: the channel has no secret or an invalid one.
    """
    body = _webhook_body(event_type, data, timestamp_s)
    return _webhook_headers(channel, msg_id, timestamp_s, body), body


def slack_message(notice: ApprovalNotice) -> dict[str, object]:
    """A Slack incoming-webhook body: a one-line ``text`` fallback and Block Kit ``blocks``.

    Every string from the notice is escaped for Slack (``&``, ``<``, ``>``), so it can neither
    mention anyone nor form a link.
    """
    expires = _readable_time(notice.expires_ms)
    approval_id = _code(notice.approval_id)
    groups = ", ".join(f"`{_code(group)}`" for group in notice.approvers)
    # a zero-width space after each backtick keeps the summary from closing its code block
    summary = (
        _fit(_CONTROL_KEEP_NEWLINE.sub(" ", notice.summary).replace("`", "`\u200b"), _SUMMARY_CAP)
        or "(no arguments)"
    )
    header = _fit(_one_line(f"Approval needed: {notice.kind} {notice.target}"), _HEADER_CAP)
    fallback = _fit(
        _one_line(
            f"Approval needed: {notice.kind} {notice.target} ({notice.server}/{notice.tool}) "
            f"requested by {notice.requester}, expires {expires}. "
            f"Run: trackwrap approve {notice.approval_id}"
        ),
        _FALLBACK_CAP,
    )
    commands = f'```trackwrap approve {approval_id}\ntrackwrap deny {approval_id} --reason "…"```'
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": False}},
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*Requested by*\n{_field(notice.requester)}"),
                _mrkdwn(f"*Tool*\n`{_code(notice.server)}` / `{_code(notice.tool)}`"),
                _mrkdwn(f"*Action*\n`{_code(notice.kind)}`"),
                _mrkdwn(f"*Target*\n{_field(notice.target)}"),
                _mrkdwn(f"*Workspace*\n`{_code(notice.workspace)}`"),
                _mrkdwn(f"*Session*\n`{_code(notice.session)}`"),
            ],
        },
        {"type": "section", "text": _mrkdwn(f"*Arguments*\n```{summary}```")},
        {
            "type": "section",
            "text": _mrkdwn(
                f"*Why*\nRule `{_code(notice.rule)}`: "
                f"{_fit(_one_line(notice.reason), _TEXT_CAP - 200)}"
            ),
        },
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*Approvers*\n{groups or 'any approver'}"),
                _mrkdwn(f"*Expires*\n{expires}"),
            ],
        },
        {"type": "section", "text": _mrkdwn(f"*Decide*\n{commands}")},
        {
            "type": "context",
            "elements": [
                _mrkdwn(f"approval `{approval_id}` · action `{_code(notice.action_hash)}`")
            ],
        },
    ]
    return {"text": fallback, "blocks": blocks}


def deliver(
    channel: Channel,
    notice: ApprovalNotice,
    *,
    event_type: str = "approval.requested",
    attempts: int = 4,
    backoff_s: Sequence[float] = (0.5, 1.0, 2.0),
    timeout_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    clock_s: Callable[[], float] = time.time,
    msg_id: str | None = None,
) -> Delivery:
    """POST ``notice`` to ``channel``, retrying transient failures; never raises.

    Success is any 2xx for a webhook and 200 for Slack. Connection errors, timeouts, 429 and
    5xx are retried up to ``attempts`` requests in all, waiting ``backoff_s[n]`` between them
    (the last value repeats) or the response's ``Retry-After`` seconds (at most 30 s). Other
    statuses end the delivery at once; redirects are not followed.

    A webhook keeps the same ``webhook-id`` (``msg_id``, by default derived from the approval
    id and ``event_type``) and the same body on every retry; each request is signed with its
    own ``webhook-timestamp``.
    """
    origin = _origin(channel.url)
    scrub = _Scrubber(channel)
    try:
        prepare = _preparer(channel, notice, event_type, msg_id, clock_s)
    except ConfigError as exc:
        return Delivery(channel.name, ok=False, attempts=0, status=None, error=scrub(str(exc)))
    try:
        return _send(
            channel,
            prepare,
            attempts=max(1, attempts),
            backoff_s=backoff_s,
            timeout_s=timeout_s,
            sleep=sleep,
            origin=origin,
            scrub=scrub,
        )
    except Exception as exc:  # noqa: BLE001 - a notification failure must never reach the relay
        detail = scrub(str(exc))
        error = f"{origin}: {type(exc).__name__}" + (f": {detail}" if detail else "")
        return Delivery(channel.name, ok=False, attempts=0, status=None, error=error)


def notify_all(
    channels: Sequence[Channel],
    notice: ApprovalNotice,
    *,
    event_type: str = "approval.requested",
    attempts: int = 4,
    backoff_s: Sequence[float] = (0.5, 1.0, 2.0),
    timeout_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    clock_s: Callable[[], float] = time.time,
    msg_id: str | None = None,
) -> list[Delivery]:
    """:func:`deliver` ``notice`` to each channel in turn; one :class:`Delivery` per channel."""
    return [
        deliver(
            channel,
            notice,
            event_type=event_type,
            attempts=attempts,
            backoff_s=backoff_s,
            timeout_s=timeout_s,
            sleep=sleep,
            clock_s=clock_s,
            msg_id=msg_id,
        )
        for channel in channels
    ]


# --- building requests ------------------------------------------------------------------------

_Prepare = Callable[[], tuple[dict[str, str], bytes]]


def _preparer(
    channel: Channel,
    notice: ApprovalNotice,
    event_type: str,
    msg_id: str | None,
    clock_s: Callable[[], float],
) -> _Prepare:
    """A function that builds the headers and body of the next attempt.

    Raises:
        ConfigError: the channel's type is unknown or its secret is missing or invalid.
    """
    if channel.type == "webhook":
        webhook_id = msg_id if msg_id is not None else _default_msg_id(notice, event_type)
        if channel.secret is None:
            raise ConfigError(f"webhook channel {channel.name!r} has no signing secret")
        decode_webhook_secret(channel.secret)
        body = _webhook_body(event_type, notice.to_json(), int(clock_s()))

        def webhook() -> tuple[dict[str, str], bytes]:
            return _webhook_headers(channel, webhook_id, int(clock_s()), body), body

        return webhook
    if channel.type == "slack":
        slack_body = _compact(slack_message(notice))
        headers = {"content-type": "application/json", "user-agent": _USER_AGENT}

        def slack() -> tuple[dict[str, str], bytes]:
            return dict(headers), slack_body

        return slack
    raise ConfigError(f"channel {channel.name!r}: unknown type {channel.type!r}")


def _webhook_body(event_type: str, data: Mapping[str, object], timestamp_s: int) -> bytes:
    return _compact({"type": event_type, "timestamp": _iso(timestamp_s), "data": dict(data)})


def _webhook_headers(
    channel: Channel, msg_id: str, timestamp_s: int, body: bytes
) -> dict[str, str]:
    if channel.secret is None:
        raise ConfigError(f"webhook channel {channel.name!r} has no signing secret")
    return {
        "content-type": "application/json",
        "user-agent": _USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": sign_webhook(channel.secret, msg_id, timestamp_s, body),
    }


def _default_msg_id(notice: ApprovalNotice, event_type: str) -> str:
    """``msg_<approval id>_<event type>``, or a digest of both if either is not header-safe."""
    raw = f"{notice.approval_id}_{event_type}"
    if _SAFE_MSG_ID.fullmatch(raw) is not None:
        return f"msg_{raw}"
    return "msg_" + hashlib.sha256(raw.encode()).hexdigest()[:32]


def _compact(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --- sending ----------------------------------------------------------------------------------


def _send(
    channel: Channel,
    prepare: _Prepare,
    *,
    attempts: int,
    backoff_s: Sequence[float],
    timeout_s: float,
    sleep: Callable[[float], None],
    origin: str,
    scrub: _Scrubber,
) -> Delivery:
    """POST the prepared request up to ``attempts`` times; see :func:`deliver`."""
    import httpx

    status: int | None = None
    error: str | None = None
    made = 0
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        for attempt in range(1, attempts + 1):
            headers, body = prepare()
            made = attempt
            status = None
            retry_after: float | None = None
            try:
                with client.stream("POST", channel.url, content=body, headers=headers) as reply:
                    status = reply.status_code
                    if _accepted(channel, status):
                        return Delivery(
                            channel.name, ok=True, attempts=made, status=status, error=None
                        )
                    error = _status_error(channel, status, _snippet(reply), origin, scrub)
                    retryable = status == 429 or 500 <= status <= 599
                    retry_after = _retry_after(reply.headers.get("retry-after"))
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                error = _transport_error(exc, origin, timeout_s, scrub)
                retryable = True
            except httpx.HTTPError as exc:
                error = _transport_error(exc, origin, timeout_s, scrub)
                retryable = False
            if not retryable or attempt == attempts:
                break
            sleep(retry_after if retry_after is not None else _backoff(backoff_s, attempt))
    return Delivery(channel.name, ok=False, attempts=made, status=status, error=error)


def _accepted(channel: Channel, status: int) -> bool:
    return status == 200 if channel.type == "slack" else 200 <= status <= 299


def _backoff(backoff_s: Sequence[float], attempt: int) -> float:
    """The wait after attempt ``attempt`` (1-based); the last value repeats."""
    if not backoff_s:
        return 0.0
    return max(0.0, float(backoff_s[min(attempt, len(backoff_s)) - 1]))


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds, capped at 30; ``None`` if absent or an HTTP date."""
    if value is None or _RETRY_AFTER.fullmatch(value.strip()) is None:
        return None
    return min(float(value.strip()), _RETRY_AFTER_CAP_S)


def _snippet(reply: httpx.Response) -> str:
    """The start of a response body as one short line (Slack explains errors there)."""
    data = b""
    for chunk in reply.iter_bytes():
        data += chunk
        if len(data) >= _SNIPPET_CAP:
            break
    text = _one_line(data[:_SNIPPET_CAP].decode("utf-8", errors="replace")).strip()
    return text


def _status_error(
    channel: Channel, status: int, snippet: str, origin: str, scrub: _Scrubber
) -> str:
    message = f"{origin} answered HTTP {status}"
    if 300 <= status <= 399:
        message += " (redirects are not followed)"
    elif channel.type == "slack" and 200 <= status <= 299:
        message += " (Slack answers 200)"
    if snippet:
        message += f": {snippet}"
    return scrub(message)


def _transport_error(exc: httpx.HTTPError, origin: str, timeout_s: float, scrub: _Scrubber) -> str:
    import httpx

    detail = str(exc)
    if isinstance(exc, httpx.TimeoutException):
        message = f"{origin} did not answer within {timeout_s:g}s"
    elif isinstance(exc, httpx.ConnectError):
        message = f"cannot connect to {origin}" + (f": {detail}" if detail else "")
    else:
        message = f"{origin}: {type(exc).__name__}" + (f": {detail}" if detail else "")
    return scrub(message)


# --- text helpers -----------------------------------------------------------------------------


class _Scrubber:
    """Removes a channel's URL (path, query, credentials) and secret from error text and caps
    it to one short line."""

    __slots__ = ("_needles",)

    def __init__(self, channel: Channel) -> None:
        needles = [channel.url]
        if channel.secret:
            needles.append(channel.secret)
        try:
            parts = urlsplit(channel.url)
        except ValueError:
            parts = None
        if parts is not None:
            tail = parts.path + (f"?{parts.query}" if parts.query else "")
            if len(tail) > 1:
                needles.extend((tail, parts.path))
            if parts.query:
                needles.append(parts.query)
            if "@" in parts.netloc:
                needles.append(parts.netloc.rsplit("@", 1)[0])
        self._needles = tuple(
            sorted({needle for needle in needles if len(needle) > 1}, key=len, reverse=True)
        )

    def __call__(self, text: str) -> str:
        for needle in self._needles:
            text = text.replace(needle, "…")
        text = _one_line(text).strip()
        if len(text) > _ERROR_CAP:
            text = text[: _ERROR_CAP - 1] + "…"
        return text


def _origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, nothing of its credentials, path or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "the channel URL"
    if not parts.scheme or not host:
        return "the channel URL"
    if ":" in host:
        host = f"[{host}]"
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _readable_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _one_line(text: str) -> str:
    return _CONTROL.sub(" ", text)


def _fit(text: str, limit: int) -> str:
    """``text`` escaped for Slack and cut (with ``…``) so the escaped form fits ``limit``."""
    escaped = [_MRKDWN_ESCAPES.get(char, char) for char in text]
    if sum(len(piece) for piece in escaped) <= limit:
        return "".join(escaped)
    out: list[str] = []
    size = 0
    for piece in escaped:
        if size + len(piece) > limit - 1:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out) + "…"


def _field(text: str) -> str:
    return _fit(_one_line(text), _FIELD_CAP)


def _code(text: str) -> str:
    """An untrusted string for an inline code span: one line, no backticks, escaped."""
    return _fit(_one_line(text).replace("`", "'"), _FIELD_CAP)


def _mrkdwn(text: str) -> dict[str, object]:
    return {"type": "mrkdwn", "text": text}
