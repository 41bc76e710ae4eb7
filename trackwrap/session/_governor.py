"""The gate the relay calls for every ``tools/call``: evaluate with the pipeline, record the
decision in the ledger, and only then let the call through (write-ahead)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import anyio
import anyio.to_thread

from trackwrap.errors import LedgerError
from trackwrap.ledger import Ledger
from trackwrap.policy import Context, Decision, Outcome, Pipeline
from trackwrap.relay import StderrSink, tool_error_result

__all__ = ["CallJudgement", "Governor", "decision_text", "event_body"]

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
        "trace": trace,
        "target": _cap(action.target() if action is not None else "", TARGET_CAP),
        "args": _args_preview(judgement.arguments),
        "request_id": json.dumps(judgement.request_id),
        "policy_hash": policy_hash,
        "mode": mode,
        "eval_us": judgement.eval_us,
        "pid": os.getpid(),
    }


class Governor:
    """Implements the relay's gate for one wrapper process."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        ledger: Ledger,
        session: str,
        server: str,
        context: Callable[[], Context],
        policy_hash: str,
        mode: str,
        sink: StderrSink,
        new_trace: Callable[[], str],
        seal_interval_s: float = 60.0,
        on_record: Callable[[Mapping[str, object]], None] | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._ledger = ledger
        self._session = session
        self._server = server
        self._context = context
        self._policy_hash = policy_hash
        self._mode = mode
        self._sink = sink
        self._new_trace = new_trace
        self._seal_interval_s = seal_interval_s
        self._on_record = on_record
        self._flush_due = anyio.Event()

    @property
    def server(self) -> str:
        return self._server

    def evaluate(self, request: dict[str, Any]) -> CallJudgement:
        params = request.get("params")
        params = params if isinstance(params, dict) else {}
        name = params.get("name")
        tool = name if isinstance(name, str) else ""
        arguments = params.get("arguments", {})
        start = time.perf_counter_ns()
        decision = self._pipeline.evaluate(
            server=self._server, tool=tool, arguments=arguments, context=self._context()
        )
        if not tool:
            decision = replace(
                decision,
                outcome=Outcome.DENY,
                rule="WIRE-INVALID-PARAMS",
                reason="tools/call without a tool name",
                enforced=True,
            )
        eval_us = (time.perf_counter_ns() - start) // 1000
        allowed = decision.outcome in (Outcome.ALLOW, Outcome.REDACT) or not decision.enforced
        return CallJudgement(
            allowed=allowed,
            decision=decision,
            server=self._server,
            tool=tool,
            arguments=arguments,
            request_id=request.get("id"),
            eval_us=eval_us,
        )

    def commit(
        self, judgement: Any, *, override: tuple[str, str] | None = None
    ) -> dict[str, Any] | None:
        if not isinstance(judgement, CallJudgement):
            raise TypeError("Governor.commit takes the CallJudgement its evaluate returned")
        if override is not None:
            rule, reason = override
            judgement = replace(
                judgement,
                allowed=False,
                decision=replace(
                    judgement.decision, outcome=Outcome.DENY, rule=rule, reason=reason,
                    enforced=True,
                ),
            )
        trace = self._new_trace()
        body = event_body(
            judgement,
            forwarded=judgement.allowed,
            trace=trace,
            policy_hash=self._policy_hash,
            mode=self._mode,
        )
        decision = judgement.decision
        target = str(body["target"])
        try:
            # A call that will be forwarded is recorded durably first (write-ahead). A call
            # trackwrap answers itself is committed crash-safe now and fsynced in settle(),
            # right after the answer is written.
            self._ledger.append(self._session, body, sync=judgement.allowed)
        except LedgerError as exc:
            self._sink.say(f"audit ledger cannot be written, call denied: {exc}")
            failed = replace(
                decision,
                outcome=Outcome.DENY,
                rule="LEDGER-UNAVAILABLE",
                reason="the audit ledger cannot be written, so nothing is forwarded",
            )
            return tool_error_result(
                decision_text(failed, tool=judgement.tool, target=target, trace=trace)
            )
        if self._on_record is not None:
            self._on_record(body)
        if judgement.allowed:
            return None
        return tool_error_result(
            decision_text(decision, tool=judgement.tool, target=target, trace=trace)
        )

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
            try:
                self._ledger.seal_if_older(self._session, max_age_ms=interval_ms)
            except LedgerError as exc:
                self._sink.say(f"could not seal the audit ledger: {exc}")

    def close(self) -> None:
        """Seal what this wrapper left unsealed and close the store."""
        try:
            self._ledger.seal(self._session)
        except LedgerError as exc:
            self._sink.say(f"could not seal the audit ledger at exit: {exc}")
        finally:
            self._ledger.close()
