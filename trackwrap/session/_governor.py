"""The gate the relay calls for every ``tools/call``: evaluate with the pipeline, record the
decision in the ledger, and only then let the call through (write-ahead)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import anyio
import anyio.to_thread

from trackwrap._canonical import CanonicalError, canonical_json
from trackwrap.errors import LedgerError, NormalizeError
from trackwrap.inspectors import clean_tool, redact_result, tool_concerns
from trackwrap.ledger import Ledger, PinReview, SessionState, Usage
from trackwrap.manifest import DriftFinding
from trackwrap.policy import Context, Decision, Finding, Outcome, action_hash
from trackwrap.relay import StderrSink, dumps, tool_error_result
from trackwrap.session._binding import Binder, Binding

__all__ = ["CallJudgement", "Governor", "decision_text", "event_body"]

DRIFT_RULE = "HARNESS-DRIFT-001"
PIN_RULE = "MCP-MANIFEST-PINNED"
TOKEN_META_KEY = "dev.trackwrap/token"  # noqa: S105 - a _meta key name, not a secret
TOKEN_TTL_MS = 60_000

TARGET_CAP = 200
ARGS_CAP = 2048


@dataclass(frozen=True, slots=True)
class CallJudgement:
    allowed: bool
    decision: Decision
    server: str
    tool: str
    arguments: object
    request_id: object
    eval_us: int
    binding: Binding
    bytes_out: int = 0


def decision_text(decision: Decision, *, tool: str, target: str, trace: str) -> str:
    """The line a model (and a human) reads, e.g.
    ``DENY filesystem.read ~/.aws/credentials — outside workspace (rule …, trace tr-…)``."""
    what = decision.kind or tool
    shown = f"{what} {target}".rstrip()
    verb = decision.outcome.value.upper()
    return f"{verb} {shown} — {decision.reason} (rule {decision.rule}, trace {trace})"


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _args_preview(arguments: object) -> str:
    """Arguments as stored in the ledger: size-capped JSON text. (Secret masking before storage
    plugs in here.)"""
    try:
        text = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"), default=repr)
    except (ValueError, TypeError):
        text = repr(arguments)
    return _cap(text.encode("utf-8", "replace").decode("utf-8"), ARGS_CAP)


def _drift(findings: Sequence[Finding]) -> dict[str, object] | None:
    for f in findings:
        if isinstance(f, DriftFinding):
            return {"type": f.drift, "pattern": f.pattern, "rule": f.rule,
                    "detail": _cap(f.detail, 500)}
    return None


def event_body(
    judgement: CallJudgement,
    *,
    forwarded: bool,
    trace: str,
    policy_hash: str,
    mode: str,
) -> dict[str, object]:
    decision = judgement.decision
    action = decision.action
    return {
        "kind": "tool_call.decision",
        "server": judgement.server,
        "tool": judgement.tool,
        "action_kind": decision.kind,
        "action_hash": decision.action_hash,
        "decision": decision.outcome.value,
        "enforced": decision.enforced,
        "forwarded": forwarded,
        "rule": decision.rule,
        "reason": _cap(decision.reason, 1000),
        "findings": [
            {
                "inspector": f.inspector,
                "rule": f.rule,
                "confidence_milli": round(f.confidence * 1000),
                "attack": f.attack,
                "owasp": f.owasp,
                "detail": _cap(f.detail, 500),
            }
            for f in decision.findings
        ],
        "drift": _drift(decision.findings),
        "trace": trace,
        "target": _cap(action.target() if action is not None else "", TARGET_CAP),
        "args": _args_preview(judgement.arguments),
        "bytes_out": judgement.bytes_out if forwarded else 0,
        "request_id": json.dumps(judgement.request_id),
        "policy_hash": policy_hash,
        "manifest": judgement.binding.manifest_digest,
        "mode": mode,
        "eval_us": judgement.eval_us,
        "pid": os.getpid(),
    }


def _denied(judgement: CallJudgement, rule: str, reason: str,
            drift: DriftFinding | None = None) -> CallJudgement:
    findings = judgement.decision.findings + ((drift,) if drift is not None else ())
    return replace(
        judgement,
        allowed=False,
        decision=replace(judgement.decision, outcome=Outcome.DENY, rule=rule, reason=reason,
                         enforced=True, findings=findings),
    )


@dataclass(slots=True)
class _Issued:
    """What commit handed out for one allowed call, for the bind step before forwarding."""

    action_hash: str | None
    token: str | None


class Governor:
    """Implements the relay's gate for one wrapper process."""

    def __init__(
        self,
        *,
        binder: Binder,
        ledger: Ledger,
        server: str,
        context: Callable[[], Context],
        policy_hash: str,
        mode: str,
        sink: StderrSink,
        new_trace: Callable[[], str],
        mint: Callable[[Mapping[str, object]], str] | None = None,
        inject_token: bool = False,
        signed_tools: Callable[[str], dict[str, str] | None] | None = None,
        description_changes: str = "hold",
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        seal_interval_s: float = 60.0,
    ) -> None:
        self._binder = binder
        self._ledger = ledger
        self._server = server
        self._context = context
        self._policy_hash = policy_hash
        self._mode = mode
        self._sink = sink
        self._new_trace = new_trace
        self._mint = mint
        self._inject = inject_token
        self._signed_tools = signed_tools
        self._description_changes = description_changes
        self._clock_ms = clock_ms
        self._seal_interval_s = seal_interval_s
        self._flush_due = anyio.Event()
        self._issued: dict[int, _Issued] = {}
        self._touched: set[str] = set()
        self._offered: dict[str, str] = {}
        self._redacting: dict[str, str] = {}
        """Calls allowed with ``redact``, by JSON-encoded request id -> trace."""
        self._listed: set[str] | None = None
        """Tools this wrapper's agent was shown (approved pins); None before any tools/list."""
        self._first_use: bool | None = None

    @property
    def server(self) -> str:
        return self._server

    @property
    def session(self) -> str:
        return self._binder.session

    def evaluate(self, request: dict[str, Any]) -> CallJudgement:
        params = request.get("params")
        params = params if isinstance(params, dict) else {}
        name = params.get("name")
        tool = name if isinstance(name, str) else ""
        arguments = params.get("arguments", {})
        start = time.perf_counter_ns()
        try:
            binding = self._binder.current()
        except LedgerError as exc:
            self._sink.say(f"cannot look up the workspace's session: {exc}")
            binding = self._binder.closed(self._binder.session)
        decision = binding.pipeline.evaluate(
            server=self._server, tool=tool, arguments=arguments, context=self._context()
        )
        if not tool:
            decision = replace(decision, outcome=Outcome.DENY, rule="WIRE-INVALID-PARAMS",
                               reason="tools/call without a tool name", enforced=True)
        elif binding.deny_all is not None:
            rule, reason = binding.deny_all
            decision = replace(decision, outcome=Outcome.DENY, rule=rule, reason=reason,
                               enforced=True)
        elif self._listed is not None and tool not in self._listed and not self._approved_since(
            tool
        ):
            decision = replace(
                decision, outcome=Outcome.DENY, rule=PIN_RULE, enforced=True,
                reason=f"tool {tool!r} is not in the approved tool list of {self._server} "
                "(never listed, or new or changed since it was pinned: `trackwrap pins list`)",
            )
        eval_us = (time.perf_counter_ns() - start) // 1000
        allowed = decision.outcome in (Outcome.ALLOW, Outcome.REDACT) or not decision.enforced
        return CallJudgement(
            allowed=allowed, decision=decision, server=self._server, tool=tool,
            arguments=arguments, request_id=request.get("id"), eval_us=eval_us,
            binding=binding, bytes_out=_arg_bytes(arguments),
        )

    def commit(
        self, judgement: Any, *, override: tuple[str, str] | None = None
    ) -> dict[str, Any] | None:
        if not isinstance(judgement, CallJudgement):
            raise TypeError("Governor.commit takes the CallJudgement its evaluate returned")
        if override is not None:
            judgement = _denied(judgement, *override)
        trace = self._new_trace()
        outcome: list[CallJudgement] = [judgement]
        issued = _Issued(action_hash=judgement.decision.action_hash, token=None)

        def build(state: SessionState, seq: int) -> tuple[Mapping[str, object], Usage]:
            final = self._within_budget(judgement, state)
            body = event_body(final, forwarded=final.allowed, trace=trace,
                              policy_hash=self._policy_hash, mode=self._mode)
            usage = Usage()
            if final.allowed:
                usage = Usage(tool_calls=1, bytes_out=final.bytes_out)
                if self._mint is not None:
                    now = self._clock_ms()
                    jti = self._new_trace()[3:]
                    issued.token = self._mint({
                        "v": 1, "session": state.session, "seq": seq,
                        "action_hash": final.decision.action_hash,
                        "policy": self._policy_hash,
                        "manifest": final.binding.manifest_digest,
                        "iat_ms": now, "exp_ms": now + TOKEN_TTL_MS, "jti": jti,
                    })
                    body["token_id"] = jti
            outcome[0] = final
            return body, usage

        session = judgement.binding.session
        self._touched.add(session)
        try:
            self._ledger.append_decision(session, build, sync=judgement.allowed)
        except LedgerError as exc:
            if _closed(self._ledger, session) and self._binder.session == session:
                return self._after_close(judgement, session, override)
            self._sink.say(f"audit ledger cannot be written, call denied: {exc}")
            failed = _denied(judgement, "LEDGER-UNAVAILABLE",
                             "the audit ledger cannot be written, so nothing is forwarded")
            return tool_error_result(self._text(failed, trace))
        final = outcome[0]
        if final.allowed:
            self._issued[id(judgement)] = issued
            if final.decision.outcome is Outcome.REDACT:
                self._redacting[json.dumps(final.request_id)] = trace
            return None
        self._react_to_drift(final)
        return tool_error_result(self._text(final, trace))

    def bind(self, judgements: Sequence[Any], raw: bytes) -> bytes | None:
        """Just before forwarding: recompute each call's action hash from the exact bytes that
        will go out and refuse on any mismatch; with ``--inject-token``, put each call's token
        in its ``params._meta``. Returns the bytes to forward, or None to refuse."""
        issued = [self._issued.pop(id(j), None) for j in judgements]
        self._issued.clear()  # anything left belongs to calls that will never be forwarded
        try:
            message = json.loads(raw)
        except ValueError:
            return None
        calls = [m for m in (message if isinstance(message, list) else [message])
                 if isinstance(m, dict) and m.get("method") == "tools/call"]
        if len(calls) != len(issued) or any(i is None for i in issued):
            return None
        for call, info in zip(calls, issued, strict=True):
            if info is None:
                return None
            params = call.get("params")
            params = params if isinstance(params, dict) else {}
            name = params.get("name")
            try:
                digest = action_hash(self._server, name if isinstance(name, str) else "",
                                     params.get("arguments", {}))
            except NormalizeError:
                return None
            if digest != info.action_hash:
                return None
            if self._inject and info.token is not None and isinstance(call.get("params"), dict):
                meta = call["params"].setdefault("_meta", {})
                if isinstance(meta, dict):
                    meta[TOKEN_META_KEY] = info.token
        return dumps(message) if self._inject else raw

    def _within_budget(self, judgement: CallJudgement, state: SessionState) -> CallJudgement:
        budget = judgement.binding.budget
        if not judgement.allowed or budget is None or state.session != judgement.binding.session:
            return judgement
        over = None
        if budget.tool_calls is not None and state.tool_calls + 1 > budget.tool_calls:
            over = f"tool_calls budget of {budget.tool_calls} is spent"
        elif (budget.bytes_out is not None
              and state.bytes_out + judgement.bytes_out > budget.bytes_out):
            over = (f"bytes_out budget of {budget.bytes_out} bytes would be exceeded "
                    f"({state.bytes_out} used, this call sends {judgement.bytes_out})")
        elif budget.duration_s is not None and (
            self._clock_ms() - state.started_ms > budget.duration_s * 1000
        ):
            over = f"duration budget of {budget.duration_s}s is over"
        if over is None:
            return judgement
        drift = DriftFinding(
            inspector="budget", rule=DRIFT_RULE, confidence=1.0, detail=over, attack=None,
            owasp="ASI10", drift="budget_overrun", pattern="budget_overrun",
        )
        return _denied(judgement, DRIFT_RULE, f"budget_overrun: {over}", drift)

    def _react_to_drift(self, judgement: CallJudgement) -> None:
        drift = _drift(judgement.decision.findings)
        binding = judgement.binding
        if drift is None or binding.on_drift != "terminate" or not binding.explicit:
            return
        try:
            self._ledger.close_session(binding.session, reason="policy_terminated",
                                       extra={"drift": drift})
        except LedgerError as exc:
            self._sink.say(f"could not terminate session {binding.session}: {exc}")
            return
        self._sink.say(f"session {binding.session} terminated after drift ({drift['type']})")
        self._binder.closed(binding.session)

    def _after_close(self, judgement: CallJudgement, session: str,
                     override: tuple[str, str] | None) -> dict[str, Any] | None:
        """The bound session was closed meanwhile: judge the call again under what applies now
        (recorded in that session instead)."""
        self._binder.closed(session)
        request = {"id": judgement.request_id,
                   "params": {"name": judgement.tool, "arguments": judgement.arguments}}
        return self.commit(self.evaluate(request), override=override)

    def _text(self, judgement: CallJudgement, trace: str) -> str:
        action = judgement.decision.action
        target = _cap(action.target() if action is not None else "", TARGET_CAP)
        return decision_text(judgement.decision, tool=judgement.tool, target=target, trace=trace)

    def review(self, method: str, message: dict[str, Any]) -> dict[str, Any] | None:
        """Responses are governed too: every ``tools/list`` page is held against the pinned
        tool set. Returns the message to send instead (filtered), or None to forward as is."""
        if method == "tools/call":
            return self._redact(message)
        result = message.get("result")
        tools = result.get("tools") if isinstance(result, dict) else None
        if method != "tools/list" or not isinstance(result, dict) or not isinstance(tools, list):
            return None
        offered, by_name, suspicious = self._offered_tools(tools)
        review = self._review_pins(offered, suspicious)
        if not result.get("nextCursor"):
            self._first_use = False  # the first full listing is over
        listed = self._listed if self._listed is not None else set()
        listed.update(review.approved)
        listed.difference_update(set(review.new) | set(review.changed))
        self._listed = listed
        held = [*review.new, *review.changed]
        if held:
            self._record_pin_drift(review, suspicious)
        shown = [clean_tool(by_name[n]) for n in offered if n in review.approved]
        if not held and shown == [by_name[n] for n in offered]:
            return None
        return {**message, "result": {**result, "tools": shown}}

    def _offered_tools(
        self, tools: list[Any]
    ) -> tuple[dict[str, tuple[str, str]], dict[str, dict[str, Any]], dict[str, list[str]]]:
        """Each offered tool's digest and canonical JSON, the tools by name, and what looks
        poisoned or is not vouched for by the server's pinned publisher."""
        offered: dict[str, tuple[str, str]] = {}
        by_name: dict[str, dict[str, Any]] = {}
        suspicious: dict[str, list[str]] = {}
        for tool in tools:
            name = tool.get("name") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or not isinstance(name, str):
                continue
            try:
                body = canonical_json(tool)
            except CanonicalError:
                suspicious[name] = ["its definition has no canonical JSON form"]
                body = json.dumps(tool, sort_keys=True, default=repr).encode()
            offered[name] = ("sha256:" + hashlib.sha256(body).hexdigest(), body.decode())
            self._offered[name] = offered[name][0]
            by_name[name] = tool
            concerns = tool_concerns(tool)
            if concerns:
                suspicious[name] = concerns
        signed = self._signed_tools(self._server) if self._signed_tools is not None else None
        if signed is not None:
            for name, (digest, _) in offered.items():
                if signed.get(name) != digest:
                    suspicious.setdefault(name, []).append(
                        f"not in the tool list signed by {self._server}'s pinned publisher")
        return offered, by_name, suspicious

    def _review_pins(
        self, offered: dict[str, tuple[str, str]], suspicious: dict[str, list[str]]
    ) -> PinReview:
        try:
            if self._first_use is None:
                self._first_use = not self._ledger.pins(self._server)
            review = self._ledger.review_tools(
                self._server, offered, first_use=self._first_use,
                suspicious=frozenset(suspicious),
            )
        except LedgerError as exc:
            self._sink.say(f"cannot check {self._server}'s tools against their pins: {exc}")
            return PinReview(approved=frozenset(), new=tuple(offered), changed=(),
                             first_use=False)
        if self._signed_tools is None or self._signed_tools(self._server) is None:
            return self._pass_wording_changes(review, offered, suspicious)
        # A pinned publisher decides: what it signed is approved, nothing else is.
        return PinReview(
            approved=frozenset(offered) - frozenset(suspicious),
            new=tuple(n for n in offered if n in suspicious and n not in review.changed),
            changed=tuple(n for n in review.changed if n in suspicious),
            first_use=review.first_use,
        )

    def _pass_wording_changes(
        self, review: PinReview, offered: dict[str, tuple[str, str]],
        suspicious: dict[str, list[str]],
    ) -> PinReview:
        """With ``tool_pins.description_changes: allow``, a changed tool whose new version
        differs from the approved one only in its top-level title or description is approved
        (and re-pinned); any other change, and anything suspicious, stays held."""
        if self._description_changes != "allow" or not review.changed:
            return review
        try:
            pins = {p.tool: p for p in self._ledger.pins(self._server)}
            passed = [
                name for name in review.changed
                if name not in suspicious and pins.get(name) is not None
                and _wording_only(pins[name].approved_json, offered[name][1])
            ]
            for name in passed:
                self._ledger.approve_pins(self._server, name)
        except LedgerError as exc:
            self._sink.say(f"cannot re-pin wording-only changes of {self._server}: {exc}")
            return review
        if passed:
            self._sink.say(f"{self._server}: wording-only changes approved by policy: "
                           f"{', '.join(passed)}")
        return PinReview(
            approved=review.approved | frozenset(passed), new=review.new,
            changed=tuple(n for n in review.changed if n not in passed),
            first_use=review.first_use,
        )

    def _redact(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """A ``redact`` call's result: secrets masked before the agent sees it, and an event
        saying which rules fired where (never the values)."""
        if not self._redacting:
            return None  # the common case: no call of this wrapper waits for redaction
        trace = self._redacting.pop(json.dumps(message.get("id")), None)
        result = message.get("result")
        if trace is None or not isinstance(result, dict):
            return None
        masked, hits = redact_result(result)
        body: dict[str, object] = {
            "kind": "tool_call.redacted",
            "server": self._server,
            "trace": trace,
            "count": len(hits),
            "hits": [{"rule": h.rule, "fingerprint": h.fingerprint, "location": h.location}
                     for h in hits[:50]],
        }
        try:
            session = self._binder.current().session
            self._touched.add(session)
            self._ledger.append(session, body, sync=False)
        except LedgerError as exc:
            self._sink.say(f"could not record a redaction: {exc}")
        self.settle()
        return {**message, "result": masked} if hits else None

    def _approved_since(self, tool: str) -> bool:
        """A held-back tool that a person approved (``trackwrap pins approve``) since it was
        listed, in exactly the version this server offered: let it through from now on."""
        offered = self._offered.get(tool)
        if offered is None:
            return False
        if self._signed_tools is not None:
            signed = self._signed_tools(self._server)
            if signed is not None and signed.get(tool) != offered:
                return False  # a person cannot approve what the server's publisher did not sign
        try:
            pins = [p for p in self._ledger.pins(self._server) if p.tool == tool]
        except LedgerError:
            return False
        if pins and pins[0].pending_digest is None and pins[0].digest == offered:
            if self._listed is not None:
                self._listed.add(tool)
            return True
        return False

    def _record_pin_drift(self, review: PinReview, suspicious: dict[str, list[str]]) -> None:
        body: dict[str, object] = {
            "kind": "mcp_manifest_drift",
            "server": self._server,
            "rule": PIN_RULE,
            "new": list(review.new),
            "changed": list(review.changed),
            "concerns": {name: reasons[:3] for name, reasons in suspicious.items()},
            "detail": (
                f"{len(review.new)} new and {len(review.changed)} changed tool(s) of "
                f"{self._server} held back until approved: trackwrap pins approve "
                f"{self._server}"
            ),
        }
        try:
            session = self._binder.current().session
            self._touched.add(session)
            self._ledger.append(session, body, sync=False)
        except LedgerError as exc:
            self._sink.say(f"could not record held-back tools: {exc}")
        self._sink.say(str(body["detail"]))
        self.settle()

    def settle(self) -> None:
        """After trackwrap answered calls itself: have their records fsynced, off the path of
        the next message (a worker thread does it; :meth:`close` does it at the latest)."""
        self._flush_due.set()

    def background(self) -> Sequence[Callable[[], Coroutine[Any, Any, None]]]:
        return (self._seal_periodically, self._flush_when_due)

    async def _flush_when_due(self) -> None:
        while True:
            await self._flush_due.wait()
            self._flush_due = anyio.Event()
            try:
                await anyio.to_thread.run_sync(self._ledger.flush)
            except LedgerError as exc:
                self._sink.say(f"audit ledger could not be flushed to disk: {exc}")

    async def _seal_periodically(self) -> None:
        interval_ms = int(self._seal_interval_s * 1000)
        while True:
            await anyio.sleep(self._seal_interval_s)
            for session in sorted(self._touched):
                try:
                    self._ledger.seal_if_older(session, max_age_ms=interval_ms)
                except LedgerError as exc:
                    self._sink.say(f"could not seal session {session}: {exc}")

    def close(self) -> None:
        """Seal what this wrapper left unsealed (in every session it wrote to) and close."""
        try:
            for session in sorted(self._touched):
                try:
                    self._ledger.seal(session)
                except LedgerError as exc:
                    self._sink.say(f"could not seal session {session} at exit: {exc}")
        finally:
            self._ledger.close()


def _wording_only(approved_json: str | None, offered_json: str) -> bool:
    """Whether two versions of a tool differ only in their top-level title or description."""
    if approved_json is None:
        return False
    try:
        before, after = json.loads(approved_json), json.loads(offered_json)
    except ValueError:
        return False
    if not isinstance(before, dict) or not isinstance(after, dict):
        return False
    wording = ("title", "description")
    return {k: v for k, v in before.items() if k not in wording} == {
        k: v for k, v in after.items() if k not in wording
    }


def _arg_bytes(arguments: object) -> int:
    """Bytes this call sends upstream, for the ``bytes_out`` budget (its arguments as JSON)."""
    try:
        return len(json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
                   .encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError):
        return 0


def _closed(ledger: Ledger, session: str) -> bool:
    try:
        return ledger.session_state(session).closed
    except LedgerError:
        return False
