"""The gate the relay calls for every ``tools/call``: evaluate with the pipeline, record the
decision in the ledger, and only then let the call through (write-ahead)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread

from trackwrap._canonical import CanonicalError, canonical_json
from trackwrap.approvals import (
    DEFAULT_TTL_S,
    ApprovalDesk,
    CallForApproval,
    Delivery,
    RemoteApprovals,
    Standing,
    Status,
)
from trackwrap.errors import Error, LedgerError, NormalizeError
from trackwrap.inspectors import clean_tool, mask_arguments, redact_result, tool_concerns
from trackwrap.ledger import ApprovalRecord, Ledger, PinReview, SessionState, Usage
from trackwrap.manifest import DriftFinding
from trackwrap.policy import Context, Decision, Finding, Outcome, action_hash
from trackwrap.relay import StderrSink, dumps, tool_error_result
from trackwrap.session._binding import Binder, Binding

__all__ = ["ApprovalWait", "CallJudgement", "Governor", "Hold", "decision_text", "event_body"]

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


_SECRET_RULES = frozenset({"SEC-COMMIT-SECRETS", "SEC-POSSIBLE-SECRET"})


def _args_preview(arguments: object, findings: Sequence[Finding] = (), *,
                  mask: bool = False) -> str:
    """Arguments as stored in the ledger or shown to an approver: size-capped JSON text, with
    secrets masked when the secrets inspector found any (or ``mask``)."""
    if mask or any(f.rule in _SECRET_RULES for f in findings):
        arguments = mask_arguments(arguments)
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
        "args": _args_preview(judgement.arguments, decision.findings),
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


@dataclass(frozen=True, slots=True)
class ApprovalWait:
    """How a call that needs approval is held: at most ``wait_s`` (shorter than MCP clients'
    tool-call timeouts), sending progress every ``progress_s``, looking for a decision every
    ``poll_s``."""

    wait_s: float = 45.0
    progress_s: float = 5.0
    poll_s: float = 0.05


@dataclass(frozen=True, slots=True)
class Hold:
    """A call kept pending while its approval is decided (the relay's ``Hold``)."""

    judgement: CallJudgement
    approval_id: str
    trace: str
    call: CallForApproval


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
        approvals: ApprovalDesk | None = None,
        approval_wait: ApprovalWait | None = None,
        notify: Callable[[CallForApproval, ApprovalRecord], Sequence[Delivery]] | None = None,
        workspace: str = "",
        sync: Callable[[Sequence[str]], object] | None = None,
        sync_interval_s: float = 15.0,
        remote: RemoteApprovals | None = None,
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
        self._flush_due = _Due()
        self._issued: dict[int, _Issued] = {}
        self._touched: set[str] = set()
        self._offered: dict[str, str] = {}
        self._redacting: dict[str, str] = {}
        """Calls allowed with ``redact``, by JSON-encoded request id -> trace."""
        self._listed: set[str] | None = None
        """Tools this wrapper's agent was shown (approved pins); None before any tools/list."""
        self._first_use: bool | None = None
        self._approvals = approvals
        self._wait = approval_wait or ApprovalWait()
        self._notify = notify
        self._workspace = workspace
        self._notices: list[tuple[CallForApproval, ApprovalRecord]] = []
        self._notice_due = _Due()
        self._requesters: dict[str, str] = {}
        self._sync = sync
        self._sync_interval_s = sync_interval_s
        self._sync_due = _Due()
        self._sync_failure: str | None = None
        self._remote = remote

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
        self, judgement: Any, *, override: tuple[str, str] | None = None, can_wait: bool = False
    ) -> dict[str, Any] | Hold | None:
        """Record the decision. ``None``: forward the call; a dict: answer with it instead; a
        :class:`Hold`: the call needs a person's approval and may wait for it (``can_wait``;
        else it is answered at once saying so)."""
        if not isinstance(judgement, CallJudgement):
            raise TypeError("Governor.commit takes the CallJudgement its evaluate returned")
        if override is not None:
            judgement = _denied(judgement, *override)
        trace = self._new_trace()
        decision = judgement.decision
        if (self._approvals is not None and decision.outcome is Outcome.REQUIRE_APPROVAL
                and decision.enforced):
            return self._needs_approval(judgement, trace, can_wait=can_wait)
        return self._record(judgement, trace, override=override).answer

    def _record(
        self,
        judgement: CallJudgement,
        trace: str,
        *,
        extra: Mapping[str, object] | None = None,
        issue_for: CallJudgement | None = None,
        override: tuple[str, str] | None = None,
    ) -> _Recorded:
        """Append the decision (with ``extra`` event fields) and say how to answer. An allowed
        call's token is kept for :meth:`bind` under ``issue_for`` (default: ``judgement``)."""
        outcome: list[CallJudgement] = [judgement]
        issued = _Issued(action_hash=judgement.decision.action_hash, token=None)

        def build(state: SessionState, seq: int) -> tuple[Mapping[str, object], Usage]:
            final = self._within_budget(judgement, state)
            body = event_body(final, forwarded=final.allowed, trace=trace,
                              policy_hash=self._policy_hash, mode=self._mode)
            if extra:
                body.update(extra)
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
                return _Recorded(None, self._after_close(judgement, session, override))
            self._sink.say(f"audit ledger cannot be written, call denied: {exc}")
            failed = _denied(judgement, "LEDGER-UNAVAILABLE",
                             "the audit ledger cannot be written, so nothing is forwarded")
            return _Recorded(None, tool_error_result(self._text(failed, trace)))
        final = outcome[0]
        if final.allowed:
            self._issued[id(issue_for or judgement)] = issued
            if final.decision.outcome is Outcome.REDACT:
                self._redacting[json.dumps(final.request_id)] = trace
            return _Recorded(final, None)
        self._react_to_drift(final)
        return _Recorded(final, tool_error_result(self._text(final, trace)))

    # -- approvals ------------------------------------------------------------------------------

    def _needs_approval(
        self, judgement: CallJudgement, trace: str, *, can_wait: bool
    ) -> dict[str, Any] | Hold | None:
        """A call policy says needs approval: use a decided approval of this exact call if
        there is one, else ask (once per identical call) and hold the call or say it waits."""
        desk = self._approvals
        if desk is None:  # pragma: no cover - commit checks
            raise RuntimeError("no approval desk")
        try:
            call = self._call_for_approval(judgement, trace)
            record, created = desk.ask(call)
            standing = desk.standing(record, requester=call.requester)
        except Error as exc:
            self._sink.say(f"cannot ask for approval, call denied: {exc}")
            return self._record(_denied(judgement, "APPROVAL-UNAVAILABLE",
                                        f"approvals cannot be recorded: {exc}"), trace).answer
        if created:
            self._queue_notice(call, record)
        hold = Hold(judgement=judgement, approval_id=record.id, trace=trace, call=call)
        if standing.status is Status.PENDING:
            pending = self._record(judgement, trace, extra=_approval_fields(record))
            if pending.final is None:
                return pending.answer
            self.settle()
            if can_wait:
                return hold
            return self._pending_answer(hold, record)
        return self._settle_approval(hold, standing, redeem=can_wait)

    def _settle_approval(
        self, hold: Hold, standing: Standing, *, redeem: bool
    ) -> dict[str, Any] | None:
        """Answer a call whose approval has been decided (or expired, or was used or refused):
        forward it if it is approved and this call wins the redemption, else say why not."""
        desk = self._approvals
        if desk is None:  # pragma: no cover - only reached with a desk
            raise RuntimeError("no approval desk")
        record, judgement, trace = standing.record, hold.judgement, hold.trace
        fields = _approval_fields(record)
        decision = standing.decision
        try:
            if standing.status is Status.APPROVED and decision is not None:
                if not redeem:
                    return self._record(_denied(
                        judgement, "APPROVAL-IN-BATCH",
                        f"approval {record.id} is granted; send this call on its own (not in a "
                        "batch) to use it"), trace, extra=fields).answer
                if desk.redeem(standing, trace=trace):
                    approved = replace(judgement, allowed=True, decision=replace(
                        judgement.decision, outcome=Outcome.ALLOW,
                        reason=_cap(f"approved by {decision.approver} ({record.id})"
                                    + (f": {decision.reason}" if decision.reason else ""), 1000)))
                    fields["approver"] = decision.approver
                    return self._record(approved, trace, extra=fields,
                                        issue_for=judgement).answer
                standing = Standing(record, Status.USED)
            if standing.status is Status.REJECTED:
                desk.reject(standing)
                self._sink.say(f"refused the decision on approval {record.id}: "
                               f"{standing.problem}")
            elif standing.status in (Status.DENIED, Status.EXPIRED):
                desk.report(record)
        except Error as exc:
            self._sink.say(f"cannot settle approval {record.id}, call denied: {exc}")
            return self._record(_denied(judgement, "APPROVAL-UNAVAILABLE",
                                        f"approvals cannot be recorded: {exc}"), trace,
                                extra=fields).answer
        rule, reason = _not_approved(standing)
        return self._record(_denied(judgement, rule, reason), trace, extra=fields).answer

    def _pending_answer(self, hold: Hold, record: ApprovalRecord) -> dict[str, Any]:
        """The answer for a call whose approval is still open: what is pending, until when,
        and that the same call goes through once it is approved."""
        judgement = hold.judgement
        text = self._text(judgement, hold.trace)
        until = _utc(record.expires_ms)
        result = tool_error_result(
            f"{text}. Approval {record.id} is pending until {until}; nothing was sent. Once it "
            f"is approved (`trackwrap approve {record.id}`), call again with the same "
            "arguments and the call goes through, once."
        )
        result["_meta"] = {APPROVAL_META_KEY: {"id": record.id, "state": record.state,
                                               "expires_at": until}}
        return result

    async def wait(
        self, hold: Any, progress: Callable[[str], Coroutine[Any, Any, None]]
    ) -> dict[str, Any] | None:
        """Keep a held call pending until its approval is decided, it expires, or the wait
        bound is reached; ``progress(message)`` keeps the client's request alive. Returns
        None to forward the call (approved and redeemed), or the answer to send."""
        if not isinstance(hold, Hold) or self._approvals is None:
            raise TypeError("Governor.wait takes the Hold its commit returned")
        start = time.monotonic()
        deadline = start + self._wait.wait_s
        async with anyio.create_task_group() as companions:
            if self._remote is not None:
                companions.start_soon(self._fetch_remote_decision, hold.approval_id, deadline)
            try:
                answer = await self._wait_loop(hold, progress, deadline,
                                               start + self._wait.progress_s)
            finally:
                companions.cancel_scope.cancel()
        return answer

    async def _wait_loop(
        self, hold: Hold, progress: Callable[[str], Coroutine[Any, Any, None]],
        deadline: float, next_progress: float,
    ) -> dict[str, Any] | None:
        desk = self._approvals
        if desk is None:  # pragma: no cover - wait checks
            raise RuntimeError("no approval desk")
        how = "timed_out"
        try:
            while True:
                now = time.monotonic()
                await anyio.sleep(max(0.0, min(self._wait.poll_s, deadline - now,
                                               next_progress - now)))
                record = desk.store.get(hold.approval_id)
                if record is None:
                    raise LedgerError(f"approval {hold.approval_id} disappeared")
                if record.state != "pending" or record.expires_ms <= self._clock_ms():
                    how = "decided"
                    standing = desk.standing(record, requester=hold.call.requester)
                    return self._settle_approval(hold, standing, redeem=True)
                now = time.monotonic()
                if now >= deadline:
                    return self._pending_answer(hold, record)
                if now >= next_progress:
                    next_progress = now + self._wait.progress_s
                    left = max(0, round(min(deadline - now,
                                            (record.expires_ms - self._clock_ms()) / 1000)))
                    await progress(f"waiting for approval {record.id} ({left} s left)")
        except anyio.get_cancelled_exc_class():
            how = "cancelled"
            raise
        except Error as exc:
            how = "failed"
            self._sink.say(f"lost track of approval {hold.approval_id}, call denied: {exc}")
            return self._record(_denied(hold.judgement, "APPROVAL-UNAVAILABLE",
                                        f"approvals cannot be read: {exc}"), hold.trace).answer
        finally:
            if how != "decided":
                self._wait_ended(hold, how)

    async def _fetch_remote_decision(self, approval_id: str, deadline: float) -> None:
        """While a call waits: long-poll the collector for a decision made there and record it
        locally, where the wait loop (and any other wrapper) sees it."""
        remote, desk = self._remote, self._approvals
        if remote is None or desk is None:  # pragma: no cover - started only with both
            return
        while (left := deadline - time.monotonic()) > 0:
            try:
                state, envelope = await anyio.to_thread.run_sync(
                    lambda: remote.decision(approval_id, wait_s=min(20.0, left)),
                    abandon_on_cancel=True)
            except Exception:  # noqa: BLE001 - the collector is optional; local decisions count
                await anyio.sleep(min(2.0, max(left, 0)))
                continue
            if state != "pending":
                if not desk.record_remote(approval_id, state, envelope):
                    self._sink.say(f"approval {approval_id} is {state} at the collector")
                return

    def _wait_ended(self, hold: Hold, how: str) -> None:
        """Record that a held call was answered or dropped while its approval stays open."""
        body = {"kind": "approval.wait_ended", "approval_id": hold.approval_id,
                "trace": hold.trace, "how": how}
        try:
            self._ledger.append(hold.judgement.binding.session, body, sync=False)
        except LedgerError as exc:
            self._sink.say(f"could not record the end of a wait for approval: {exc}")
        self.settle()

    def _call_for_approval(self, judgement: CallJudgement, trace: str) -> CallForApproval:
        decision = judgement.decision
        rule = judgement.binding.pipeline.policy.rule(decision.rule)
        action = decision.action
        return CallForApproval(
            session=judgement.binding.session,
            action_hash=decision.action_hash or "",
            server=judgement.server,
            tool=judgement.tool,
            kind=decision.kind,
            target=_cap(action.target() if action is not None else "", TARGET_CAP),
            summary=_args_preview(judgement.arguments, mask=True),
            rule=decision.rule,
            reason=_cap(decision.reason, 1000),
            approvers=rule.approvers if rule is not None else (),
            separate_approver=rule.separate_approver if rule is not None else False,
            notify=rule.notify if rule is not None else (),
            requester=self._requester(judgement.binding.session),
            workspace=self._workspace,
            trace=trace,
            ttl_s=(rule.ttl_seconds if rule is not None and rule.ttl_seconds else DEFAULT_TTL_S),
        )

    def _requester(self, session: str) -> str:
        """Who is asking: the session's developer (explicit sessions) or its OS user."""
        known = self._requesters.get(session)
        if known is None:
            genesis = self._ledger.session_state(session).genesis
            name = genesis.get("developer") or genesis.get("user")
            known = name if isinstance(name, str) and name else "unknown"
            self._requesters[session] = known
        return known

    def _queue_notice(self, call: CallForApproval, record: ApprovalRecord) -> None:
        if self._notify is None and self._remote is None:
            return
        self._notices.append((call, record))
        self._notice_due.set()

    async def _send_notices(self) -> None:
        """Deliver approval notifications off the relay's path and record each delivery."""
        async with anyio.create_task_group() as tg:
            while True:
                await self._notice_due.wait()
                notices, self._notices = self._notices, []
                for call, record in notices:
                    tg.start_soon(self._deliver, call, record)

    async def _deliver(self, call: CallForApproval, record: ApprovalRecord) -> None:
        if self._remote is not None:
            try:
                await anyio.to_thread.run_sync(self._remote.publish, record,
                                               abandon_on_cancel=True)
            except Exception as exc:  # noqa: BLE001 - the local approval stands regardless
                self._sink.say(f"could not publish approval {record.id} to the collector: "
                               f"{exc}")
        notify = self._notify
        if notify is None:
            return
        try:
            deliveries = await anyio.to_thread.run_sync(notify, call, record)
        except Exception as exc:  # noqa: BLE001 - a failed notification never changes a decision
            self._sink.say(f"could not notify approvers of {record.id}: {exc}")
            deliveries = [Delivery(channel="*", ok=False, attempts=0, status=None,
                                   error=_cap(str(exc), 300))]
        for delivery in deliveries:
            if not delivery.ok:
                self._sink.say(f"approval {record.id}: notifying {delivery.channel} failed "
                               f"after {delivery.attempts} attempt(s): {delivery.error}")
            try:
                self._ledger.append(record.session, {
                    "kind": "approval.notified", "approval_id": record.id,
                    **delivery.to_json()}, sync=False)
            except LedgerError as exc:
                self._sink.say(f"could not record a notification of {record.id}: {exc}")
        self.settle()

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
        (recorded in that session instead; a call that needs approval is not held then)."""
        self._binder.closed(session)
        request = {"id": judgement.request_id,
                   "params": {"name": judgement.tool, "arguments": judgement.arguments}}
        answer = self.commit(self.evaluate(request), override=override)
        if isinstance(answer, Hold):  # pragma: no cover - commit holds only with can_wait
            return tool_error_result(self._text(answer.judgement, answer.trace))
        return answer

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
        tasks = [self._seal_periodically, self._flush_when_due, self._send_notices]
        if self._sync is not None:
            tasks.append(self._sync_in_background)
        return tuple(tasks)

    async def _sync_in_background(self) -> None:
        """Push sealed segments of this wrapper's sessions to the collector, on a worker
        thread, after seals and every ``sync_interval_s``; the relay never waits for it, and a
        dead collector changes nothing for the IDE (segments stay until a receipt comes)."""
        sync = self._sync
        if sync is None:  # pragma: no cover - only scheduled with a sync function
            return
        while True:
            with anyio.move_on_after(self._sync_interval_s):
                await self._sync_due.wait()
            sessions = sorted(self._touched)
            if not sessions:
                continue
            try:
                await anyio.to_thread.run_sync(sync, sessions, abandon_on_cancel=True)
                problem = None
            except Exception as exc:  # noqa: BLE001 - syncing must never disturb the relay
                problem = f"{type(exc).__name__}: {exc}"
            if problem != self._sync_failure:
                self._sink.say(f"collector sync failed, will retry: {problem}" if problem
                               else "collector sync works again")
                self._sync_failure = problem

    async def _flush_when_due(self) -> None:
        while True:
            await self._flush_due.wait()
            self._flush_due = _Due()
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
                    if self._ledger.seal_if_older(session, max_age_ms=interval_ms) is not None:
                        self._sync_due.set()
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


class _Due:
    """A wake-up flag: set from the relay's own code, awaited by a background task. Unlike an
    ``anyio.Event`` it can be made before any event loop runs (the hook never starts one), so
    building a governor does not import asyncio."""

    def __init__(self) -> None:
        self._pending = False
        self._event: anyio.Event | None = None

    def set(self) -> None:
        self._pending = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        """Until set (at once if it was set meanwhile); clears it."""
        if not self._pending:
            self._event = anyio.Event()
            await self._event.wait()
        self._pending = False
        self._event = None


@dataclass(frozen=True, slots=True)
class _Recorded:
    """A recorded decision (None when it could not be recorded as judged) and the answer."""

    final: CallJudgement | None
    answer: dict[str, Any] | None


APPROVAL_META_KEY = "dev.trackwrap/approval"


def _approval_fields(record: ApprovalRecord) -> dict[str, object]:
    return {"approval_id": record.id, "approval_expires_ms": record.expires_ms}


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _not_approved(standing: Standing) -> tuple[str, str]:
    """The rule and reason a call is denied with when its approval does not let it through."""
    record, decision = standing.record, standing.decision
    if standing.status is Status.DENIED and decision is not None:
        why = f": {decision.reason}" if decision.reason else ""
        return "APPROVAL-DENIED", f"{decision.approver} denied approval {record.id}{why}"
    if standing.status is Status.EXPIRED:
        return ("APPROVAL-EXPIRED", f"approval {record.id} expired at {_utc(record.expires_ms)} "
                "without a decision; call again to ask anew")
    if standing.status is Status.REJECTED:
        return ("APPROVAL-REJECTED", f"the decision recorded on approval {record.id} does not "
                f"count: {standing.problem}")
    return ("APPROVAL-USED", f"approval {record.id} was already used by another call; call "
            "again to ask anew")


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
