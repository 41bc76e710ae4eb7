"""The collector's HTTP API: one Starlette app, made by :func:`create_app`.

Every answer is JSON; every refusal is ``{"error": CODE, "detail": "…"}`` with a status that says
whether retrying can help (``503`` and ``Retry-After``) or not (``4xx``). Storage calls block, so
each request does its storage work (token lookup included) in one worker thread; the event loop
only parses headers, waits and answers. Every 401 and 403 is logged (logger
``trackwrap.collector``), and so is every fork (a different segment where the collector already
holds one: evidence of a cloned or rewritten ledger).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from trackwrap.approvals import read_decision
from trackwrap.collector._chains import accept_segment, format_public_key, parse_public_key
from trackwrap.collector._config import CollectorConfig
from trackwrap.collector._interface import (
    APPROVAL_STATES,
    OUTCOMES,
    Accepted,
    ApprovalRow,
    ChainRow,
    DeviceKey,
    Ingested,
    Scope,
    SessionQuery,
    TokenRecord,
)
from trackwrap.collector._metrics import Metrics
from trackwrap.collector._openapi import openapi_document
from trackwrap.collector._tokens import token_digest
from trackwrap.diagnose import build_diagnosis
from trackwrap.errors import CollectorError, Error, SignatureError
from trackwrap.ledger import Segment, SegmentError

__all__ = ["ApiProblem", "create_app"]

logger = logging.getLogger("trackwrap.collector")

_T = TypeVar("_T")
_INGEST_PATHS = frozenset({"/v1/segments", "/v1/approvals"})
_CONFLICTS = frozenset({"GAP", "FORK", "CLOSED"})
_MAX_ID = 200
_MAX_SESSIONS = 5000
_BUILD_LOCKS = 32


class ApiProblem(Error):
    """A refusal the API answers with ``status`` and ``{"error": code, "detail": …}``."""

    def __init__(self, status: int, code: str, detail: str, *,
                 extra: Mapping[str, object] | None = None, token_id: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = dict(extra or {})
        self.token_id = token_id

    def body(self) -> dict[str, object]:
        """The JSON body of the answer."""
        return {"error": self.code, "detail": self.detail, **self.extra}


def _json(status: int, body: Mapping[str, object],
          headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(dict(body), status_code=status, headers=dict(headers or {}))


def _parse_json(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiProblem(400, "BAD_JSON", f"the body is not JSON: {exc}") from None


def _segment_problem(exc: SegmentError) -> ApiProblem:
    if exc.code in _CONFLICTS:
        return ApiProblem(409, exc.code, exc.detail, extra={"expected_seq": exc.expected_seq})
    return ApiProblem(422, exc.code, exc.detail)


def _text_field(body: Mapping[str, object], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > _MAX_ID:
        raise ApiProblem(422, "MALFORMED", f"{name} must be a non-empty string of at most "
                         f"{_MAX_ID} characters")
    return value


def _int_field(body: Mapping[str, object], name: str) -> int:
    value = body.get(name)
    if type(value) is not int or value < 0:
        raise ApiProblem(422, "MALFORMED", f"{name} must be a non-negative integer (ms)")
    return value


def _query_int(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise ApiProblem(400, "BAD_QUERY", f"{name} must be an integer, not {text!r}") from None


@dataclass(slots=True)
class _Watch:
    """The event that the next decision on one approval sets, and how many wait for it."""

    event: anyio.Event = field(default_factory=anyio.Event)
    waiting: int = 0


class _Waiters:
    """In-process wake-ups for long-polls: a decision taken through this process wakes every
    request waiting on that approval at once, without polling."""

    def __init__(self) -> None:
        self._watches: dict[str, _Watch] = {}

    @contextlib.contextmanager
    def watching(self, approval_id: str) -> Iterator[_Watch]:
        """Register a waiter for the duration of the block; wait on ``watch.event`` as it is
        at each turn (taken before re-reading the approval, so no decision slips between)."""
        watch = self._watches.setdefault(approval_id, _Watch())
        watch.waiting += 1
        try:
            yield watch
        finally:
            watch.waiting -= 1
            if watch.waiting == 0 and self._watches.get(approval_id) is watch:
                del self._watches[approval_id]

    def waiting(self, approval_id: str) -> int:
        """How many requests wait on ``approval_id`` now."""
        watch = self._watches.get(approval_id)
        return 0 if watch is None else watch.waiting

    def wake(self, approval_id: str) -> None:
        """Wake every request waiting on ``approval_id`` (they re-read it)."""
        watch = self._watches.get(approval_id)
        if watch is not None:
            watch.event.set()
            watch.event = anyio.Event()


class _Service:
    """The handlers, over one :class:`CollectorConfig`."""

    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self.storage = config.storage
        self.key = config.key
        self.clock = config.clock_ms
        self.metrics = Metrics()
        self.waiters = _Waiters()
        self._device_keys: dict[str, dict[str, bytes]] = {}
        self._device_lock = threading.Lock()
        self._build_locks = tuple(threading.Lock() for _ in range(_BUILD_LOCKS))
        self._openapi = openapi_document(max_body=config.max_body)

    async def _run(self, call: Callable[[], _T]) -> _T:
        """Run blocking storage work in a worker thread."""
        return await anyio.to_thread.run_sync(call)

    async def _body(self, request: Request) -> bytes:
        """The request body, refused with 413 as soon as it passes the cap."""
        cap = self.config.max_body
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise ApiProblem(413, "TOO_LARGE", f"the body is larger than {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    # -- who is asking (blocking) ------------------------------------------------------------

    def _principal(self, header: str | None) -> TokenRecord:
        """The token record behind ``Authorization: Bearer …`` (401 if none, unknown or
        revoked)."""
        scheme, _, token = (header or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiProblem(401, "UNAUTHENTICATED", "send Authorization: Bearer <token>")
        record = self.storage.token_by_digest(token_digest(token))
        if record is None:
            raise ApiProblem(401, "UNKNOWN_TOKEN", "the collector does not know this token")
        if record.revoked_ms is not None:
            raise ApiProblem(401, "REVOKED_TOKEN", "this token was revoked", token_id=record.id)
        return record

    def _require(self, header: str | None, *scopes: Scope) -> TokenRecord:
        """The token record, if it carries one of ``scopes`` (403 otherwise)."""
        record = self._principal(header)
        if not any(record.has(scope) for scope in scopes):
            wanted = " or ".join(str(s) for s in scopes)
            raise ApiProblem(403, "FORBIDDEN", f"this needs a token with scope {wanted}",
                             token_id=record.id)
        return record

    def _device_of(self, token: TokenRecord) -> str:
        """The device an ingest token is bound to."""
        if token.device is None:
            raise ApiProblem(403, "FORBIDDEN", "this ingest token is bound to no device",
                             token_id=token.id)
        return token.device

    def _keys_for(self, token: TokenRecord, device: str, key_id: str,
                  public: bytes) -> dict[str, bytes]:
        """The keys allowed to seal ``device``'s chains, if ``key_id`` is one of them; a device
        without keys gets this one (trust on first use)."""
        with self._device_lock:
            known = self._device_keys.get(device)
        if known is not None and key_id in known:
            return known
        keys = self.storage.device_keys(device)
        if not keys:
            keys = self.storage.add_device_key(
                device, DeviceKey(key_id=key_id, public_raw=public, registered_ms=self.clock(),
                                  how="first-use"), only_if_none=True)
            if any(k.key_id == key_id for k in keys):
                logger.info("device %s: registered key %s on first use", device, key_id)
        table = {k.key_id: k.public_raw for k in keys}
        if table.get(key_id) != public:
            raise ApiProblem(
                403, "KEY_MISMATCH",
                f"device {device} is registered with key {', '.join(sorted(table))}, not "
                f"{key_id}; a new key is registered by the collector's admin "
                "(trackwrap collector device add)", token_id=token.id)
        with self._device_lock:
            self._device_keys[device] = table
        return table

    # -- ingest ------------------------------------------------------------------------------

    def _ingest(self, header: str | None, raw: bytes) -> tuple[str, str, Ingested]:
        """Authenticate, check the device's key, parse and store one segment; the device,
        the session and the answer."""
        token = self._require(header, Scope.INGEST)
        device = self._device_of(token)
        body = _parse_json(raw)
        if not isinstance(body, dict):
            raise ApiProblem(422, "MALFORMED", "a segment is a JSON object")
        try:
            key_id, public = parse_public_key(body.get("public_key"))
        except SignatureError as exc:
            raise ApiProblem(422, "MALFORMED", f"public_key: {exc}") from None
        keys = self._keys_for(token, device, key_id, public)
        try:
            segment = Segment.from_json(body)
        except SegmentError as exc:
            raise _segment_problem(exc) from None

        def accept(chain: ChainRow | None) -> Accepted:
            return accept_segment(segment, chain=chain, device=device,
                                  developer=token.developer, keys=keys, signer=self.key,
                                  now_ms=self.clock())

        try:
            done = self.storage.ingest(device, segment.session, segment.content_hash(), accept)
        except SegmentError as exc:
            if exc.code == "FORK":
                logger.warning("FORK: device %s session %s segment %d (seq %d..%d): %s",
                               device, segment.session, segment.segment, segment.first_seq,
                               segment.last_seq, exc.detail)
            raise _segment_problem(exc) from None
        return device, segment.session, done

    async def post_segment(self, request: Request) -> Response:
        """Push one sealed segment; answered with a signed receipt."""
        raw = await self._body(request)
        header = request.headers.get("authorization")
        device, session, done = await self._run(functools.partial(self._ingest, header, raw))
        if done.duplicate:
            self.metrics.duplicates += 1
        else:
            self.metrics.segments += 1
            self.metrics.events += done.events
        answer = _json(200, {"receipt": done.receipt, "head": done.head.to_json(),
                             "duplicate": done.duplicate})
        if done.head.final and not done.duplicate:
            # A closed session's diagnosis no longer changes: build it now, after the answer,
            # so that the first person to ask does not wait for it.
            answer.background = BackgroundTask(self._prepare_diagnosis, device, session)
        return answer

    async def _prepare_diagnosis(self, device: str, session: str) -> None:
        """Build and store a chain's diagnosis (after the answer to its final segment)."""

        def work() -> None:
            for chain in self.storage.chains_of_session(session):
                if chain.device == device:
                    self._diagnosis_text(chain)

        try:
            await self._run(work)
        except Error as exc:
            logger.warning("could not prepare the diagnosis of %s/%s: %s", device, session,
                           exc.diagnostics())

    # -- reading -----------------------------------------------------------------------------

    def _diagnose(self, header: str | None, session: str, device: str | None) -> bytes:
        """The diagnose answer's bytes: the stored or freshly built diagnosis plus the
        witness."""
        self._require(header, Scope.READ)
        chains = self.storage.chains_of_session(session)
        if device is not None:
            chains = [c for c in chains if c.device == device]
        if not chains:
            raise ApiProblem(404, "NOT_FOUND", f"no session {session}"
                             + (f" from device {device}" if device is not None else ""))
        if len(chains) > 1:
            devices = [c.device for c in chains]
            raise ApiProblem(409, "AMBIGUOUS", f"session {session} comes from "
                             f"{len(devices)} devices; name one with device=",
                             extra={"devices": devices})
        chain = chains[0]
        text = self._diagnosis_text(chain)
        witnessed = json.dumps({"through_seq": chain.head.seq, "segments": chain.segments,
                                "collector": self.key.key_id}, separators=(",", ":"))
        # The stored diagnosis is one JSON object: append the witness as its last member.
        return (text[:-1] + ',"witnessed":' + witnessed + "}").encode("utf-8")

    def _diagnosis_text(self, chain: ChainRow) -> str:
        """The diagnosis of ``chain`` through its head, as JSON text: the stored one if it is
        that recent, else built from the stored records and stored (unless a later one was
        stored meanwhile). One build per chain at a time: whoever comes second waits for the
        first and reads what it stored."""
        head = chain.head
        lock = self._build_locks[hash((chain.device, chain.session)) % len(self._build_locks)]
        with lock:
            cached = self.storage.cached_diagnosis(chain.device, chain.session)
            if cached is not None and cached[0] == head.seq:
                return cached[1]
            events = [json.loads(body) for body in self.storage.record_bodies(
                chain.device, chain.session, through_seq=head.seq)]
            verdict = {"status": "pass", "chain_tip": head.hash,
                       "verified_through_seq": head.seq, "sealed_through_seq": head.seq}
            text = json.dumps(build_diagnosis(events, verdict=verdict), ensure_ascii=False,
                              separators=(",", ":"))
            self.storage.store_diagnosis(chain.device, chain.session, head.seq, text)
            return text

    async def diagnose(self, request: Request) -> Response:
        """The diagnosis of one session, as ``trackwrap diagnose --json`` builds it, plus what
        the collector witnessed."""
        session = request.query_params.get("id")
        if not session:
            raise ApiProblem(400, "BAD_QUERY", "give the session: ?id=SESSION")
        body = await self._run(functools.partial(
            self._diagnose, request.headers.get("authorization"), session,
            request.query_params.get("device") or None))
        return Response(body, media_type="application/json")

    async def sessions(self, request: Request) -> Response:
        """Session summaries, newest first, filtered."""
        params = request.query_params
        outcome = params.get("outcome") or None
        if outcome is not None and outcome not in OUTCOMES:
            raise ApiProblem(400, "BAD_QUERY", f"outcome is one of {', '.join(OUTCOMES)}")
        limit = _query_int(request, "limit") or 500
        if not 1 <= limit <= _MAX_SESSIONS:
            raise ApiProblem(400, "BAD_QUERY", f"limit is between 1 and {_MAX_SESSIONS}")
        query = SessionQuery(developer=params.get("developer") or None,
                             agent=params.get("agent") or None,
                             since_ms=_query_int(request, "since"),
                             until_ms=_query_int(request, "until"), outcome=outcome, limit=limit)
        header = request.headers.get("authorization")

        def work() -> list[ChainRow]:
            self._require(header, Scope.READ)
            return self.storage.sessions(query)

        rows = await self._run(work)
        return _json(200, {"sessions": [row.summary_json() for row in rows]})

    # -- approvals ---------------------------------------------------------------------------

    def _publish(self, header: str | None, raw: bytes) -> tuple[ApprovalRow, bool]:
        """Validate and store a published approval; the stored row and whether it is new."""
        token = self._require(header, Scope.INGEST)
        device = self._device_of(token)
        body = _parse_json(raw)
        if not isinstance(body, dict):
            raise ApiProblem(422, "MALFORMED", "an approval is a JSON object")
        request = body.get("request")
        if not isinstance(request, dict):
            raise ApiProblem(422, "MALFORMED", "request must be a JSON object")
        requested, expires = _int_field(body, "requested_ms"), _int_field(body, "expires_ms")
        if expires <= requested:
            raise ApiProblem(422, "MALFORMED", "expires_ms must come after requested_ms")
        row = ApprovalRow(id=_text_field(body, "id"), device=device,
                          session=_text_field(body, "session"),
                          action_hash=_text_field(body, "action_hash"), request=request,
                          requested_ms=requested, expires_ms=expires,
                          published_ms=self.clock())
        stored, created = self.storage.publish_approval(row)
        if not created and stored.device != device:
            raise ApiProblem(403, "FORBIDDEN", f"approval {row.id} belongs to another device",
                             token_id=token.id)
        if not created and not stored.same_request(row):
            raise ApiProblem(409, "CONFLICT", f"approval {row.id} is held with another request")
        return stored, created

    async def publish_approval(self, request: Request) -> Response:
        """A wrapper publishes a call that waits for a person's approval."""
        raw = await self._body(request)
        row, created = await self._run(functools.partial(
            self._publish, request.headers.get("authorization"), raw))
        return _json(201 if created else 200,
                     {**row.to_json(self.clock()), "duplicate": not created})

    async def list_approvals(self, request: Request) -> Response:
        """Approvals, newest first, optionally in one state."""
        state = request.query_params.get("state") or None
        if state is not None and state not in APPROVAL_STATES:
            raise ApiProblem(400, "BAD_QUERY", f"state is one of {', '.join(APPROVAL_STATES)}")
        header = request.headers.get("authorization")
        now = self.clock()

        def work() -> list[ApprovalRow]:
            self._require(header, Scope.READ, Scope.APPROVE)
            return self.storage.approvals(state, now_ms=now, limit=_MAX_SESSIONS)

        rows = await self._run(work)
        return _json(200, {"approvals": [row.to_json(now) for row in rows]})

    def _readable_approval(self, header: str | None, approval_id: str) -> ApprovalRow:
        """The approval, for a read or approve token or the owning device's ingest token."""
        token = self._principal(header)
        reader = token.has(Scope.READ) or token.has(Scope.APPROVE)
        if not reader and not token.has(Scope.INGEST):
            raise ApiProblem(403, "FORBIDDEN", "this needs a token with scope read, approve or "
                             "ingest", token_id=token.id)
        row = self.storage.approval(approval_id)
        if row is None:
            raise ApiProblem(404, "NOT_FOUND", f"no approval {approval_id}")
        if not reader and token.device != row.device:
            raise ApiProblem(403, "FORBIDDEN", f"approval {approval_id} belongs to another "
                             "device", token_id=token.id)
        return row

    def _settle(self, row: ApprovalRow) -> ApprovalRow:
        """Store the expiry of a pending approval past its time (once)."""
        now = self.clock()
        if row.state != "pending" or row.state_at(now) != "expired":
            return row
        done = self.storage.decide_approval(row.id, state="expired", decision=None,
                                            approver=None, decided_ms=now)
        return done if done is not None else (self.storage.approval(row.id) or row)

    async def get_approval(self, request: Request) -> Response:
        """One approval; with ``wait`` answer once it is decided or expires (or time is up)."""
        approval_id = request.path_params["id"]
        text = request.query_params.get("wait") or "0"
        try:
            wait = float(text)
        except ValueError:
            raise ApiProblem(400, "BAD_QUERY", f"wait is a number of seconds, not {text!r}"
                             ) from None
        if not math.isfinite(wait) or wait < 0:
            raise ApiProblem(400, "BAD_QUERY", "wait is a number of seconds, at least 0")
        wait = min(wait, self.config.max_wait_s)
        header = request.headers.get("authorization")
        end = anyio.current_time() + wait
        with self.waiters.watching(approval_id) as watch:
            row = await self._run(functools.partial(self._readable_approval, header,
                                                    approval_id))
            while True:
                woken = watch.event
                now = self.clock()
                left = end - anyio.current_time()
                if row.state_at(now) != "pending" or left <= 0:
                    break
                timeout = min(left, max(0.0, (row.expires_ms - now) / 1000) + 0.001)
                if self.storage.poll_interval_s is not None:
                    timeout = min(timeout, self.storage.poll_interval_s)
                with anyio.move_on_after(timeout):
                    await woken.wait()
                fresh = await self._run(functools.partial(self.storage.approval, approval_id))
                row = fresh if fresh is not None else row
        row = await self._run(functools.partial(self._settle, row))
        return _json(200, row.to_json(self.clock()))

    def _decide(self, header: str | None, approval_id: str, raw: bytes) -> ApprovalRow:
        """Record a signed decision by compare-and-set. It must name this approval's id,
        session and action hash (422), be made in the name of the approve token's developer
        (403), not by the requester where the request says ``separate_approver`` (403), and
        come while the approval is pending and unexpired (409). Its signature is checked by the
        waiting wrapper, against its own trust store."""
        token = self._require(header, Scope.APPROVE)
        body = _parse_json(raw)
        envelope = body.get("envelope") if isinstance(body, dict) else None
        if not isinstance(envelope, str):
            raise ApiProblem(422, "MALFORMED", 'the body is {"envelope": "<signed decision>"}')
        try:
            decision = read_decision(envelope)
        except SignatureError as exc:
            raise ApiProblem(422, "MALFORMED", str(exc)) from None
        row = self.storage.approval(approval_id)
        if row is None:
            raise ApiProblem(404, "NOT_FOUND", f"no approval {approval_id}")
        if (decision.approval_id, decision.session, decision.action_hash) != (
                row.id, row.session, row.action_hash):
            raise ApiProblem(422, "DECISION_MISMATCH", "the decision names another approval, "
                             "session or action")
        if decision.verdict not in ("approve", "deny"):
            raise ApiProblem(422, "MALFORMED", f"unknown verdict {decision.verdict!r}")
        if decision.approver != token.developer:
            raise ApiProblem(403, "NOT_YOUR_NAME", f"the decision is in the name of "
                             f"{decision.approver!r}; this token decides for "
                             f"{token.developer!r} only", token_id=token.id)
        if (decision.approved and row.request.get("separate_approver") is True
                and token.developer == row.request.get("requester")):
            # As on the laptop: the requester may always deny their own request, never
            # approve it.
            raise ApiProblem(403, "SEPARATE_APPROVER", "this approval needs someone other than "
                             "the requester", token_id=token.id)
        now = self.clock()
        if row.state_at(now) == "expired" or decision.decided_ms >= row.expires_ms:
            self._settle(row)
            raise ApiProblem(409, "EXPIRED", f"approval {approval_id} expired")
        if row.state != "pending":
            raise ApiProblem(409, "ALREADY_DECIDED", f"approval {approval_id} is {row.state}")
        done = self.storage.decide_approval(
            approval_id, state="approved" if decision.approved else "denied",
            decision=envelope, approver=decision.approver, decided_ms=now)
        if done is None:
            raise ApiProblem(409, "ALREADY_DECIDED", f"approval {approval_id} was decided "
                             "meanwhile")
        return done

    async def decide(self, request: Request) -> Response:
        """Decide an approval with a person's signed decision."""
        approval_id = request.path_params["id"]
        raw = await self._body(request)
        try:
            row = await self._run(functools.partial(
                self._decide, request.headers.get("authorization"), approval_id, raw))
        finally:
            self.waiters.wake(approval_id)
        return _json(200, row.to_json(self.clock()))

    # -- unauthenticated ---------------------------------------------------------------------

    async def health(self, _request: Request) -> Response:
        """Liveness, and whether the storage answers."""
        try:
            await self._run(self.storage.ping)
        except CollectorError as exc:
            logger.error("health check: %s", exc.diagnostics())
            return _json(503, {"status": "unavailable", "storage": self.storage.kind,
                               "reachable": False})
        return _json(200, {"status": "ok", "storage": self.storage.kind, "reachable": True})

    async def metrics_text(self, _request: Request) -> Response:
        """Prometheus counters."""
        return PlainTextResponse(self.metrics.render(),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi(self, _request: Request) -> Response:
        """The OpenAPI description."""
        return _json(200, self._openapi)

    async def identity(self, _request: Request) -> Response:
        """The key that signs receipts."""
        return _json(200, {"collector": self.key.key_id,
                           "public_key": format_public_key(self.key.public_raw)})

    # -- errors ------------------------------------------------------------------------------

    async def on_problem(self, request: Request, exc: Exception) -> Response:
        """An :class:`ApiProblem` as its answer; 401 and 403 are logged."""
        problem = exc if isinstance(exc, ApiProblem) else ApiProblem(
            500, "INTERNAL", "the collector failed to answer; see its log")
        self.metrics.rejections[problem.code] += 1
        if problem.status in (401, 403):
            client = request.client.host if request.client else "-"
            logger.warning("%d %s %s %s from %s (token %s): %s", problem.status, problem.code,
                           request.method, request.url.path, client, problem.token_id or "-",
                           problem.detail)
        return _json(problem.status, problem.body())

    async def on_storage(self, request: Request, exc: Exception) -> Response:
        """A storage failure: 503 with ``Retry-After``, and one log line."""
        detail = exc.diagnostics() if isinstance(exc, Error) else str(exc)
        logger.error("%s %s: %s", request.method, request.url.path, detail)
        self.metrics.rejections["UNAVAILABLE"] += 1
        return _json(503, {"error": "UNAVAILABLE", "detail": "the collector's storage is "
                           "unavailable; retry later"}, headers={"Retry-After": "1"})

    async def on_http(self, _request: Request, exc: Exception) -> Response:
        """Starlette's own 404 and 405, as JSON."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(status, f"HTTP_{status}")
        self.metrics.rejections[code] += 1
        detail = exc.detail if isinstance(exc, HTTPException) else "error"
        return _json(status, {"error": code, "detail": str(detail)})

    async def on_error(self, request: Request, exc: Exception) -> Response:
        """Any other trackwrap error: 500 and one log line, never a traceback."""
        detail = exc.diagnostics() if isinstance(exc, Error) else type(exc).__name__
        logger.error("%s %s failed: %s", request.method, request.url.path, detail)
        self.metrics.rejections["INTERNAL"] += 1
        return _json(500, {"error": "INTERNAL", "detail": "the collector failed to answer; "
                           "see its log"})


class _Guard:
    """The outermost layer: the ingest concurrency limit (503 at once, never a queue), the body
    cap by ``Content-Length`` (413 without reading), the in-flight gauge, and the last catch:
    no exception and no traceback ever reaches a client."""

    def __init__(self, app: ASGIApp, service: _Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.service.metrics
        config = self.service.config
        ingest = scope["method"] == "POST" and scope["path"] in _INGEST_PATHS
        if ingest and metrics.ingest_in_flight >= config.max_inflight:
            metrics.rejections["BUSY"] += 1
            await _send(send, 503, {"error": "BUSY", "detail": "too many ingest requests at "
                                    "once; retry after a second"}, retry_after=True)
            return
        length = _content_length(scope)
        if length is None or length > config.max_body:
            code, status = ("BAD_LENGTH", 400) if length is None else ("TOO_LARGE", 413)
            metrics.rejections[code] += 1
            await _send(send, status, {"error": code, "detail": (
                "Content-Length is not a number" if length is None else
                f"the body is larger than {config.max_body} bytes")})
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        metrics.in_flight += 1
        metrics.ingest_in_flight += ingest
        try:
            await self.app(scope, receive, tracked)
        except ClientDisconnect:
            metrics.rejections["CLIENT_GONE"] += 1
        except Exception as exc:  # noqa: BLE001 - the service boundary: answer 500, log a line
            detail = exc.diagnostics() if isinstance(exc, Error) else repr(exc)
            logger.error("%s %s failed: %s", scope["method"], scope["path"], detail)
            metrics.rejections["INTERNAL"] += 1
            if not started:
                await _send(send, 500, {"error": "INTERNAL", "detail": "the collector failed "
                                        "to answer; see its log"})
        finally:
            metrics.in_flight -= 1
            metrics.ingest_in_flight -= ingest


def _content_length(scope: AsgiScope) -> int | None:
    """The declared body length (0 when none is declared); None if it is not a number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return 0


async def _send(send: Send, status: int, body: Mapping[str, object], *,
                retry_after: bool = False) -> None:
    data = json.dumps(body, separators=(",", ":")).encode("utf-8")
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(data)).encode("ascii"))]
    if retry_after:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def create_app(config: CollectorConfig) -> Starlette:
    """The collector's ASGI app over ``config`` (whose storage stays the caller's to close)."""
    service = _Service(config)
    routes = [
        Route("/healthz", service.health, methods=["GET"]),
        Route("/metrics", service.metrics_text, methods=["GET"]),
        Route("/openapi.json", service.openapi, methods=["GET"]),
        Route("/v1/collector", service.identity, methods=["GET"]),
        Route("/v1/segments", service.post_segment, methods=["POST"]),
        Route("/v1/diagnose/session", service.diagnose, methods=["GET"]),
        Route("/v1/sessions", service.sessions, methods=["GET"]),
        Route("/v1/approvals", service.publish_approval, methods=["POST"]),
        Route("/v1/approvals", service.list_approvals, methods=["GET"]),
        Route("/v1/approvals/{id}", service.get_approval, methods=["GET"]),
        Route("/v1/approvals/{id}/decision", service.decide, methods=["POST"]),
    ]
    handlers: dict[Any, Any] = {
        ApiProblem: service.on_problem,
        CollectorError: service.on_storage,
        HTTPException: service.on_http,
        Error: service.on_error,
    }
    app = Starlette(routes=routes, middleware=[Middleware(_Guard, service=service)],
                    exception_handlers=handlers)
    app.state.metrics = service.metrics
    app.state.waiters = service.waiters
    return app
