"""The collector's HTTP API as the laptop uses it (httpx, imported when first used).

Every failure is a :class:`SyncError` saying whether retrying can help: only connection errors,
timeouts, 429 and 502/503/504 are retryable (with the server's ``Retry-After`` when it gives
one); 400/401/403/409/413/422 are answers, not accidents.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from trackwrap.errors import Error

if TYPE_CHECKING:
    import httpx

__all__ = ["CollectorClient", "Pushed", "SyncError"]

RETRYABLE = frozenset({429, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0


class SyncError(Error):
    """A request to the collector failed; ``status`` is None when no answer came."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        expected_seq: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after
        self.expected_seq = expected_seq


@dataclass(frozen=True, slots=True)
class Pushed:
    """The collector's answer to one segment: its receipt envelope and whether it had it."""

    receipt: str
    duplicate: bool


class CollectorClient:
    """One collector, one bearer token."""

    def __init__(self, url: str, token: str, *, timeout_s: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SyncError(f"collector URL {url!r} is not http(s)://host[:port]")
        self._base = url.rstrip("/")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._token = token
        self._timeout = timeout_s
        self._transport = transport
        self._http: httpx.Client | None = None

    @property
    def origin(self) -> str:
        return self._origin

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> CollectorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- endpoints ------------------------------------------------------------------------------

    def collector_key(self) -> tuple[str, str]:
        """``(key id, "ed25519:<base64>")`` of the collector's receipt-signing key."""
        body = self._request("GET", "/v1/collector", auth=False)
        key_id, public = body.get("collector"), body.get("public_key")
        if not isinstance(key_id, str) or not isinstance(public, str):
            raise SyncError(f"{self._origin} did not say which key signs its receipts")
        return key_id, public

    def push(self, segment: Mapping[str, object], *, public_key: str) -> Pushed:
        """Send one segment (its wire form) with the device's public sealing key."""
        body = self._request("POST", "/v1/segments", json_body={**segment,
                                                                "public_key": public_key})
        receipt = body.get("receipt")
        if not isinstance(receipt, str):
            raise SyncError(f"{self._origin} answered a segment without a receipt")
        return Pushed(receipt=receipt, duplicate=body.get("duplicate") is True)

    def publish_approval(self, approval: Mapping[str, object]) -> None:
        """Make an approval request visible centrally (idempotent by its id)."""
        self._request("POST", "/v1/approvals", json_body=dict(approval))

    def approval(self, approval_id: str, *, wait_s: float = 0) -> dict[str, Any]:
        """An approval as the collector holds it, after waiting up to ``wait_s`` for a
        decision (long poll)."""
        suffix = f"?wait={int(wait_s)}" if wait_s > 0 else ""
        return self._request("GET", f"/v1/approvals/{approval_id}{suffix}",
                             timeout_s=self._timeout + max(wait_s, 0))

    def diagnose(self, session: str) -> dict[str, Any]:
        """The collector's diagnosis of one session (a ``read`` token)."""
        from urllib.parse import quote

        return self._request("GET", f"/v1/diagnose/session?id={quote(session, safe='')}")

    def approvals(self, *, state: str | None = None) -> list[dict[str, Any]]:
        """Approvals the collector holds (``state``: only those, e.g. ``pending``)."""
        body = self._request("GET", "/v1/approvals" + (f"?state={state}" if state else ""))
        found = body.get("approvals")
        return [a for a in found if isinstance(a, dict)] if isinstance(found, list) else []

    def decide(self, approval_id: str, envelope: str) -> dict[str, Any]:
        """Record a signed decision on the collector (an ``approve`` token)."""
        return self._request("POST", f"/v1/approvals/{approval_id}/decision",
                             json_body={"envelope": envelope})

    # -- plumbing -------------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        if self._http is None:
            import httpx

            self._http = httpx.Client(timeout=self._timeout, transport=self._transport,
                                      follow_redirects=False)
        return self._http

    def _request(self, method: str, path: str, *, json_body: Any = None, auth: bool = True,
                 timeout_s: float | None = None) -> dict[str, Any]:
        import httpx

        headers = {"authorization": f"Bearer {self._token}"} if auth else {}
        if json_body is not None:
            headers["content-type"] = "application/json"
        try:
            response = self._client().request(
                method, self._base + path, headers=headers,
                content=None if json_body is None else json.dumps(json_body).encode(),
                timeout=timeout_s or self._timeout,
            )
        except httpx.HTTPError as exc:
            raise SyncError(f"{self._origin}: {type(exc).__name__}", retryable=True) from exc
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if response.status_code // 100 == 2:
            return body
        code = body.get("error") if isinstance(body.get("error"), str) else None
        detail = body.get("detail") if isinstance(body.get("detail"), str) else ""
        expected = body.get("expected_seq")
        raise SyncError(
            f"{self._origin} answered {response.status_code}"
            + (f" {code}" if code else "") + (f": {detail}" if detail else ""),
            status=response.status_code, code=code,
            retryable=response.status_code in RETRYABLE,
            retry_after=_retry_after(response.headers.get("retry-after")),
            expected_seq=expected if type(expected) is int else None,
        )


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
