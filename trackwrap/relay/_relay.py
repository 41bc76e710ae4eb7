"""The stdio relay: IDE on our stdin/stdout, the upstream server as our child.

Everything that is not a ``tools/call`` is forwarded as the original bytes. Every ``tools/call``
(alone or inside a batch, before or after ``initialize``, whatever its id looks like) is handed to
the :class:`Gate`, which decides and records it; only a call the gate lets through reaches the
upstream. The relay never writes a message of its own to the child, so the upstream's protocol era
is fixed by the IDE's first message, as if trackwrap were not there.
"""

from __future__ import annotations

import json
import os
import signal
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import anyio.to_thread

from trackwrap.relay._framing import DEFAULT_MAX_LINE, LineSplitter, Oversize
from trackwrap.relay._io import FdReader, FdWriter, StderrSink
from trackwrap.relay._process import Child
from trackwrap.relay._wire import (
    INVALID_REQUEST,
    PARSE_ERROR,
    UPSTREAM_GONE,
    dumps,
    error_response,
    id_key,
    is_valid_id,
    result_response,
    tool_error_result,
)

__all__ = ["Gate", "Held", "Judgement", "Relay", "RelayOptions"]

_MISSING = object()


class Judgement(Protocol):
    """The gate's verdict on one call, before it is recorded."""

    @property
    def allowed(self) -> bool: ...


class Held(Protocol):
    """A call the gate keeps pending (until a person approves it, or a bounded wait ends)."""

    @property
    def approval_id(self) -> str: ...


#: ``progress(message)``: tell the client a held call is still being worked on.
Progress = Callable[[str], Coroutine[Any, Any, None]]


class Gate(Protocol):
    """What the relay needs from governance. Implementations must not raise."""

    @property
    def server(self) -> str:
        """The upstream's name (its profile), used to label its stderr lines."""
        ...

    def evaluate(self, request: dict[str, Any]) -> Judgement:
        """Run the pipeline on a ``tools/call`` request; nothing is recorded yet."""
        ...

    def commit(
        self,
        judgement: Judgement,
        *,
        override: tuple[str, str] | None = None,
        can_wait: bool = False,
    ) -> dict[str, Any] | Held | None:
        """Record the decision. ``None`` means forward; a dict is the ``CallToolResult`` to
        answer with instead; with ``can_wait``, a :class:`Held` means the call waits (see
        :meth:`wait`). ``override`` = (rule, reason) turns the call into a deny."""
        ...

    async def wait(self, hold: Held, progress: Progress) -> dict[str, Any] | None:
        """Wait (bounded) for a held call to be decided: ``None`` means forward it now, a dict
        is the answer. Cancellation (the client cancelled the call) is recorded and
        re-raised."""
        ...

    def bind(self, judgements: Sequence[Judgement], raw: bytes) -> bytes | None:
        """Just before forwarding committed calls: the bytes to send (the same ``raw``, or with
        trackwrap's annotations), or None if ``raw`` is not what was judged."""
        ...

    def review(self, method: str, message: dict[str, Any]) -> dict[str, Any] | None:
        """A response from the upstream to a request of ``method``: the message to send the
        client instead, or None to forward the original bytes."""
        ...

    def settle(self) -> None:
        """Called after trackwrap has answered calls itself (e.g. to make records durable)."""
        ...

    def background(self) -> Sequence[Callable[[], Coroutine[Any, Any, None]]]:
        """Tasks to run for as long as the relay runs (e.g. periodic sealing)."""
        ...

    def close(self) -> None:
        """Called once when the relay has finished."""
        ...


@dataclass(frozen=True, slots=True)
class RelayOptions:
    server: str
    max_line: int = DEFAULT_MAX_LINE
    grace_s: float = 2.0
    term_s: float = 2.0
    parent_poll_s: float = 1.0
    parent_pid: int | None = None
    """The parent to watch, as seen when the wrapper started (default: the current parent)."""


class Relay:
    def __init__(
        self,
        *,
        child: Child,
        gate: Callable[[], Gate],
        sink: StderrSink,
        options: RelayOptions,
        stdin_fd: int = 0,
        stdout_fd: int = 1,
    ) -> None:
        self._child = child
        self._gate_factory = gate
        self._gate: Gate | None = None
        self._gate_ready = anyio.Event()
        self._sink = sink
        self._opts = options
        self._stdin_fd = stdin_fd
        self._out = FdWriter(stdout_fd)
        self._to_child = FdWriter(child.stdin_fd)
        self._pending_c2s: dict[tuple[str, Any], str] = {}
        self._pending_s2c: dict[tuple[str, Any], str] = {}
        self._answered: OrderedDict[tuple[str, Any], None] = OrderedDict()
        self._held: dict[tuple[str, Any], anyio.CancelScope] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._child_exited = anyio.Event()
        self._child_eof = anyio.Event()
        self._stderr_eof = anyio.Event()
        self._shutting_down = False
        self._ide_gone = False
        self._prefix = f"[{options.server}] ".encode()

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> int:
        """Relay until the child exits; returns the exit code for the wrapper."""
        # Signals are taken over before any message moves, so none can slip in between.
        stop_signals = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
        with anyio.open_signal_receiver(*stop_signals) as signals:
            return await self._run(signals)

    async def _run(self, signals: AsyncIterator[int]) -> int:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._watch_signals, tg, signals)
            tg.start_soon(self._pump_ide, tg)
            tg.start_soon(self._pump_child)
            tg.start_soon(self._drain_stderr)
            tg.start_soon(self._watch_parent, tg)
            tg.start_soon(self._load_gate, tg)
            code = await anyio.to_thread.run_sync(self._child.proc.wait, abandon_on_cancel=True)
            self._child_exited.set()
            with anyio.move_on_after(1.0):
                await self._child_eof.wait()
            with anyio.move_on_after(0.5):
                await self._stderr_eof.wait()
            if not self._shutting_down:
                await self._child_died(code)
            # npx and friends leave the real server as a grandchild in the same group.
            self._child.signal_group(signal.SIGTERM)
            tg.cancel_scope.cancel()
        self._child.close_pipes()
        return 128 - code if code < 0 else code

    @property
    def gate(self) -> Gate | None:
        """The gate, once it has loaded (for the caller to close)."""
        return self._gate

    async def _load_gate(self, tg: anyio.abc.TaskGroup) -> None:
        """Build the gate on a worker thread while the upstream boots and the handshake is
        relayed; no ``tools/call`` is handled before it is ready. A failure propagates and
        stops the relay."""
        gate = await anyio.to_thread.run_sync(self._gate_factory)
        self._gate = gate
        self._prefix = f"[{gate.server}] ".encode()
        for task in gate.background():
            tg.start_soon(task)
        self._gate_ready.set()

    async def _ready_gate(self) -> Gate:
        if self._gate is None:
            await self._gate_ready.wait()
        if self._gate is None:  # pragma: no cover - _gate_ready is set only after _gate
            raise RuntimeError("gate not loaded")
        return self._gate

    async def _child_died(self, code: int) -> None:
        self._sink.say(f"upstream {self._opts.server} exited with code {code}")
        tail = self._sink.tail_text().splitlines()[-20:]
        if tail:
            self._sink.say("last lines of its stderr:")
            self._sink.write(("\n".join(tail) + "\n").encode("utf-8", "replace"))
        for key in list(self._pending_c2s):
            method = self._pending_c2s.pop(key)
            await self._answer(
                error_response(
                    key[1], UPSTREAM_GONE, f"upstream server exited (code {code}) during {method}"
                )
            )

    async def _shutdown_child(self) -> None:
        """IDE gone: close the child's stdin, then SIGTERM and SIGKILL its group if it lingers."""
        if self._shutting_down:
            return
        self._shutting_down = True
        self._child.close_stdin()
        with anyio.move_on_after(self._opts.grace_s):
            await self._child_exited.wait()
        if self._child_exited.is_set():
            return
        self._child.signal_group(signal.SIGTERM)
        with anyio.move_on_after(self._opts.term_s):
            await self._child_exited.wait()
        if not self._child_exited.is_set():
            self._child.signal_group(signal.SIGKILL)

    async def _watch_parent(self, tg: anyio.abc.TaskGroup) -> None:
        parent = self._opts.parent_pid or os.getppid()
        while True:
            if os.getppid() != parent:
                self._sink.say("parent process exited; stopping the upstream server")
                self._ide_gone = True
                tg.start_soon(self._shutdown_child)
                return
            await anyio.sleep(self._opts.parent_poll_s)

    async def _watch_signals(self, tg: anyio.abc.TaskGroup, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            self._sink.say(f"received signal {signum}; stopping the upstream server")
            self._ide_gone = True
            tg.start_soon(self._shutdown_child)

    # ------------------------------------------------------------------ IDE -> child

    async def _pump(
        self, fd: int, handle: Callable[[bytes | Oversize], Coroutine[Any, Any, None]]
    ) -> None:
        """Feed every line read from ``fd`` to ``handle``, the unterminated last one too."""
        reader = FdReader(fd)
        splitter = LineSplitter(self._opts.max_line)
        while True:
            data = await reader.read()
            if not data:
                break
            for item in splitter.feed(data):
                await handle(item)
        for item in splitter.finish():
            await handle(item)

    async def _pump_ide(self, tg: anyio.abc.TaskGroup) -> None:
        await self._pump(self._stdin_fd, self._from_ide)
        self._ide_gone = True
        tg.start_soon(self._shutdown_child)

    async def _from_ide(self, item: bytes | Oversize) -> None:
        if self._ide_gone:
            return  # stopping (signal, parent gone, or our stdout closed): nothing more moves
        if isinstance(item, Oversize):
            cap = self._opts.max_line
            self._sink.say(f"rejected a {item.seen}+ byte message from the client (cap {cap})")
            await self._answer(
                error_response(None, INVALID_REQUEST, f"message exceeds trackwrap's {cap} byte cap")
            )
            return
        try:
            msg = json.loads(item)
        except (ValueError, RecursionError):
            if not item.strip():
                return
            await self._answer(error_response(None, PARSE_ERROR, "parse error: not a JSON message"))
            return
        if isinstance(msg, dict):
            method = msg.get("method")
            if method == "tools/call":
                await self._govern(await self._ready_gate(), msg, item)
                return
            if method == "notifications/cancelled" and self._cancels_own_call(msg):
                return
            self._track(self._pending_c2s, self._pending_s2c, msg)
            await self._send_child(item)
        elif isinstance(msg, list):
            await self._govern_batch(await self._ready_gate(), msg, item)
        else:
            await self._answer(
                error_response(None, INVALID_REQUEST, "invalid request: not a JSON-RPC object")
            )

    async def _govern(self, gate: Gate, msg: dict[str, Any], raw: bytes) -> None:
        msg_id = msg.get("id", _MISSING)
        override = None if is_valid_id(msg_id) else _INVALID_ID
        judgement = self._evaluate(gate, msg)
        held = self._commit(gate, judgement, override, can_wait=True)
        if held is not None and not isinstance(held, dict):
            if judgement is not None and self._tg is not None:
                self._tg.start_soon(self._hold, gate, msg, raw, judgement, held)
                return
            held = tool_error_result(_BIND_REFUSED)  # pragma: no cover - a gate holds only these
        result = held
        if result is None and judgement is not None:
            out = self._bind(gate, [judgement], raw)
            if out is not None:
                self._pending_c2s[id_key(msg_id)] = "tools/call"
                await self._send_child(out)
                return
            result = tool_error_result(_BIND_REFUSED)
        await self._answer_call(gate, msg_id, result or tool_error_result(_BIND_REFUSED))

    async def _hold(
        self, gate: Gate, msg: dict[str, Any], raw: bytes, judgement: Judgement, held: Held
    ) -> None:
        """Keep a call pending while the gate waits for its decision, without holding up any
        other message; forward it or answer it when the gate says, or drop it if the client
        cancels (the upstream never saw it)."""
        msg_id = msg.get("id")
        key = id_key(msg_id)
        token = _progress_token(msg)
        sent = 0

        async def progress(message: str) -> None:
            nonlocal sent
            if token is None:
                return
            sent += 1
            await self._answer({"jsonrpc": "2.0", "method": "notifications/progress",
                                "params": {"progressToken": token, "progress": sent,
                                           "message": message}})

        result: dict[str, Any] | None
        with anyio.CancelScope() as scope:
            self._held[key] = scope
            try:
                result = await gate.wait(held, progress)
            except Exception:  # noqa: BLE001 - pipeline boundary: a failed wait denies
                self._sink.say("internal error while waiting for an approval; denied")
                result = tool_error_result(
                    "DENY — trackwrap failed while waiting for approval (fail closed)")
            finally:
                if self._held.get(key) is scope:
                    del self._held[key]
        if scope.cancelled_caught:
            self._remember_answered(msg_id)  # a late cancel for it is dropped too
            self._settle(gate)
            return
        if result is None:
            out = self._bind(gate, [judgement], raw)
            if out is not None:
                self._pending_c2s[key] = "tools/call"
                await self._send_child(out)
                return
            result = tool_error_result(_BIND_REFUSED)
        await self._answer_call(gate, msg_id, result)

    async def _govern_batch(self, gate: Gate, batch: list[Any], raw: bytes) -> None:
        if not batch:
            await self._answer(error_response(None, INVALID_REQUEST, "invalid request: empty"))
            return
        answers, allowed = self._judge_batch(gate, batch)
        if not answers:
            out = self._bind(gate, allowed, raw)
            if out is not None:
                for element in batch:
                    if isinstance(element, dict):
                        self._track(self._pending_c2s, self._pending_s2c, element)
                await self._send_child(out)
                return
            answers = {
                index: tool_error_result(_BIND_REFUSED)
                for index, element in enumerate(batch)
                if isinstance(element, dict) and element.get("method") == "tools/call"
            }
        replies = [
            answer
            for index, element in enumerate(batch)
            if (answer := self._batch_answer(element, index, answers)) is not None
        ]
        if replies:
            await self._write_ide(dumps(replies) + b"\n")
        self._settle(gate)

    def _judge_batch(
        self, gate: Gate, batch: list[Any]
    ) -> tuple[dict[int, dict[str, Any]], list[Judgement]]:
        """Decide and record every ``tools/call`` in a batch. If any one is not allowed, all of
        them are answered by trackwrap (no answers means: forward the batch, after binding the
        allowed judgements returned alongside)."""
        calls = [
            (index, el, self._evaluate(gate, el))
            for index, el in enumerate(batch)
            if isinstance(el, dict) and el.get("method") == "tools/call"
        ]
        blocked = next(
            (
                index
                for index, el, j in calls
                if j is None or not j.allowed or not is_valid_id(el.get("id", _MISSING))
            ),
            None,
        )
        answers: dict[int, dict[str, Any]] = {}
        for index, el, judgement in calls:
            override = None
            if not is_valid_id(el.get("id", _MISSING)):
                override = _INVALID_ID
            elif blocked is not None and judgement is not None and judgement.allowed:
                override = (
                    "BATCH-DENIED",
                    f"the batch also holds a call that is not allowed (element {blocked})",
                )
            result = self._commit(gate, judgement, override)
            if result is not None and not isinstance(result, dict):  # pragma: no cover
                result = tool_error_result("DENY — a batched call cannot wait (fail closed)")
            if result is not None:
                answers[index] = result
                if blocked is None:
                    blocked = index
        if answers:
            # A late failure (e.g. the ledger) after earlier calls were recorded as allowed:
            # none of the batch is forwarded, so every call gets an answer.
            for index, _el, _j in calls:
                answers.setdefault(
                    index, tool_error_result("DENY — batch not forwarded (rule BATCH-DENIED)")
                )
        return answers, [j for _i, _el, j in calls if j is not None]

    def _batch_answer(
        self, element: object, index: int, answers: dict[int, dict[str, Any]]
    ) -> dict[str, Any] | None:
        if not isinstance(element, dict):
            return None
        el_id = element.get("id", _MISSING)
        if index in answers:
            if is_valid_id(el_id):
                self._remember_answered(el_id)
                return result_response(el_id, answers[index])
            if el_id is not _MISSING:
                return error_response(el_id, INVALID_REQUEST, _INVALID_ID[1])
            return None
        if "method" in element and el_id is not _MISSING:
            return error_response(
                el_id, INVALID_REQUEST, "batch rejected: it holds a denied tools/call"
            )
        return None

    def _evaluate(self, gate: Gate, msg: dict[str, Any]) -> Judgement | None:
        try:
            return gate.evaluate(msg)
        except Exception:  # noqa: BLE001 - pipeline boundary: any failure is a deny
            self._sink.say("internal error while evaluating a tools/call; denied")
            return None

    def _commit(
        self,
        gate: Gate,
        judgement: Judgement | None,
        override: tuple[str, str] | None,
        *,
        can_wait: bool = False,
    ) -> dict[str, Any] | Held | None:
        if judgement is None:
            return tool_error_result("DENY — trackwrap could not evaluate this call (fail closed)")
        try:
            return gate.commit(judgement, override=override, can_wait=can_wait)
        except Exception:  # noqa: BLE001 - pipeline boundary: any failure is a deny
            self._sink.say("internal error while recording a tools/call; denied")
            return tool_error_result("DENY — trackwrap could not record this call (fail closed)")

    async def _answer_call(self, gate: Gate, msg_id: object, result: dict[str, Any]) -> None:
        if is_valid_id(msg_id):
            self._remember_answered(msg_id)
            await self._answer(result_response(msg_id, result))
        elif msg_id is not _MISSING:
            await self._answer(error_response(msg_id, INVALID_REQUEST, _INVALID_ID[1]))
        else:
            self._sink.say("denied a tools/call sent as a notification (no id)")
        self._settle(gate)

    def _bind(self, gate: Gate, judgements: Sequence[Judgement], raw: bytes) -> bytes | None:
        try:
            out = gate.bind(judgements, raw)
        except Exception:  # noqa: BLE001 - pipeline boundary: nothing unbound goes out
            self._sink.say("internal error while binding a tools/call; denied")
            return None
        if out is None:
            self._sink.say("a tools/call did not match what was judged; not forwarded")
        return out

    def _settle(self, gate: Gate) -> None:
        try:
            gate.settle()
        except Exception:  # noqa: BLE001 - pipeline boundary: report, the answer stands
            self._sink.say("internal error while settling the audit record")

    def _remember_answered(self, msg_id: object) -> None:
        self._answered[id_key(msg_id)] = None
        while len(self._answered) > 1024:
            self._answered.popitem(last=False)

    def _cancels_own_call(self, msg: dict[str, Any]) -> bool:
        """A cancel for a call trackwrap answered itself, or holds: the upstream never saw that
        call, so the cancel is not forwarded (and a held call stops waiting)."""
        params = msg.get("params")
        if not isinstance(params, dict) or "requestId" not in params:
            return False
        key = id_key(params["requestId"])
        held = self._held.pop(key, None)
        if held is not None:
            held.cancel()
            return True
        return key in self._answered

    async def _send_child(self, raw: bytes) -> None:
        try:
            await self._to_child.write(raw + b"\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self._sink.say("upstream server's stdin is closed; message not delivered")

    # ------------------------------------------------------------------ child -> IDE

    async def _pump_child(self) -> None:
        await self._pump(self._child.stdout_fd, self._from_child)
        self._child_eof.set()

    async def _from_child(self, item: bytes | Oversize) -> None:
        if isinstance(item, Oversize):
            cap = self._opts.max_line
            self._sink.say(f"dropped a {item.seen}+ byte line from the upstream (cap {cap})")
            return
        try:
            msg = json.loads(item)
        except (ValueError, RecursionError):
            if item.strip():
                self._sink.say(f"dropped a non-JSON line ({len(item)} bytes) from the upstream")
            return
        if isinstance(msg, dict | list):
            replaced = await self._reviewed(msg)
            if replaced is not None:
                await self._write_ide(dumps(replaced) + b"\n")
                return
        else:
            self._sink.say("dropped a JSON line from the upstream that is not a JSON-RPC message")
            return
        await self._write_ide(item + b"\n")

    async def _drain_stderr(self) -> None:
        reader = FdReader(self._child.stderr_fd)
        at_line_start = True
        while True:
            data = await reader.read()
            if not data:
                break
            self._sink.keep(data)
            out = bytearray()
            for piece in data.splitlines(keepends=True):
                if at_line_start:
                    out += self._prefix
                out += piece
                at_line_start = piece.endswith(b"\n")
            self._sink.write(bytes(out))
        self._stderr_eof.set()

    # ------------------------------------------------------------------ helpers

    async def _reviewed(self, msg: dict[str, Any] | list[Any]) -> object | None:
        """Track the responses in ``msg`` (one, or a batch) and let the gate govern those it
        reviews; returns what to send instead, or None for the original bytes."""
        elements = msg if isinstance(msg, list) else [msg]
        out: list[Any] = []
        changed = False
        for element in elements:
            replaced = None
            if isinstance(element, dict):
                answered = self._track(self._pending_s2c, self._pending_c2s, element)
                if answered in REVIEWED:
                    replaced = self._review(await self._ready_gate(), answered, element)
            changed = changed or replaced is not None
            out.append(element if replaced is None else replaced)
        if not changed:
            return None
        return out if isinstance(msg, list) else out[0]

    def _review(
        self, gate: Gate, method: str, msg: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Let the gate govern a response; a failure withholds it (fail closed)."""
        try:
            return gate.review(method, msg)
        except Exception:  # noqa: BLE001 - pipeline boundary: nothing unreviewed goes out
            self._sink.say(f"internal error while reviewing a {method} response; withheld")
            return error_response(
                msg.get("id"), UPSTREAM_GONE, f"trackwrap could not review this {method} result"
            )

    @staticmethod
    def _track(
        mine: dict[tuple[str, Any], str], theirs: dict[tuple[str, Any], str], msg: dict[str, Any]
    ) -> str | None:
        """Requests go into ``mine`` (pending, keyed by id with its JSON type); responses clear
        the matching request that went the other way and return its method."""
        method = msg.get("method")
        msg_id = msg.get("id", _MISSING)
        if msg_id is _MISSING:
            return None
        if isinstance(method, str):
            if is_valid_id(msg_id):
                mine[id_key(msg_id)] = method
            return None
        return theirs.pop(id_key(msg_id), None)

    async def _answer(self, response: dict[str, Any]) -> None:
        await self._write_ide(dumps(response) + b"\n")

    async def _write_ide(self, data: bytes) -> None:
        if self._ide_gone:
            return
        try:
            await self._out.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self._ide_gone = True
            self._sink.say("client closed its end of the pipe")


def _progress_token(msg: dict[str, Any]) -> str | int | None:
    """The client's ``params._meta.progressToken`` (a string or an integer), if it gave one."""
    params = msg.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    if isinstance(token, str) or (isinstance(token, int) and not isinstance(token, bool)):
        return token
    return None


REVIEWED = frozenset({"tools/list", "tools/call"})
"""Responses the gate sees before the client does."""

_BIND_REFUSED = "DENY — the call to forward did not match the call judged (rule BIND-MISMATCH)"

_INVALID_ID = (
    "WIRE-INVALID-ID",
    "tools/call whose id is not a string or an integer; servers would run it unanswered",
)
