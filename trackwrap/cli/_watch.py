"""``trackwrap watch``: a live terminal view of one session's decisions.

Every wrapper of a session appends to the same ledger, so watching the ledger shows the calls of
all of them: one line per decision or approval step (``event_line``), newest at the bottom, above
a footer with the approvals still waiting and the budget used so far.

The view only reads: it polls ``Ledger.events(session, after_seq=…)``, ``session_state`` and
``approvals`` every :data:`POLL_S` seconds in short autocommit reads (WAL: readers never block
the wrappers' appends) and holds no transaction open between polls. Its signer is never called.

Which session: ``--session ID``, else ``TRACKWRAP_SESSION``, else the open session started for
the workspace, else the workspace's implicit session of today — looked up again at every poll
unless it was named, so the view follows the wrappers when a session is started or closed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from trackwrap.cli._render import event_line, short_target
from trackwrap.cli._settings import Settings, load_settings, resolve_workspace
from trackwrap.errors import ConfigError, Error

if TYPE_CHECKING:
    from trackwrap.ledger import ApprovalRecord, Ledger, SessionState, StoredEvent
    from trackwrap.manifest import Budget

__all__ = [
    "POLL_S", "Snapshot", "Watcher", "budget_text", "print_once", "register", "render", "watch",
]

POLL_S = 0.25
"""How often the view reads the ledger."""
KEEP_LINES = 2000
"""Event lines kept in memory (the live view shows the last ones that fit the terminal)."""
MANIFEST_RECHECK_S = 30.0
"""How often a session's manifest is verified again (it may expire, or lose its trust)."""
_MIB = 1024 * 1024


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _visible(text: object) -> str:
    """Control characters (ANSI escapes included) shown, not interpreted."""
    return "".join(ch if ch.isprintable() or ch == " " else f"\\x{ord(ch):02x}"
                   for ch in str(text))


# ------------------------------------------------------------------------------------ reading


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the view shows at one moment."""

    workspace: str
    session: str | None
    lines: tuple[Text, ...]
    state: SessionState | None = None
    budget: Budget | None = None
    pending: tuple[ApprovalRecord, ...] = ()
    problem: str | None = None
    """Why the session's budget is not the manifest's (the manifest no longer verifies)."""
    waiting: str | None = None
    """Why there is nothing to show yet (no ledger, or no call in the session yet)."""
    now_ms: int = 0
    last_ms: int | None = None
    """When the session's newest record was written."""


@dataclass(slots=True)
class _Held:
    """A session's budget as last worked out, and when."""

    checked: float
    budget: Budget | None
    problem: str | None


class Watcher:
    """Reads what is new in the ledger at each :meth:`poll`; keeps the rendered lines."""

    def __init__(
        self, settings: Settings, *, workspace: str, session: str | None, live: bool
    ) -> None:
        self._settings = settings
        self._workspace = workspace
        self._pinned = session
        self._live = live
        self._ledger: Ledger | None = None
        self._lines: deque[Text] = deque(maxlen=KEEP_LINES)
        self._after: dict[str, int] = {}
        self._last_ms: dict[str, int] = {}
        self._workspaces: dict[str, str] = {}
        self._held: dict[str, _Held] = {}

    def close(self) -> None:
        """Close the ledger handle, if one was opened."""
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    def _open(self) -> Ledger | None:
        if self._ledger is None:
            if not self._settings.ledger_path.exists():
                return None
            from trackwrap.cli._audit import open_ledger_readonly

            self._ledger = open_ledger_readonly(self._settings)
        return self._ledger

    def _session(self, ledger: Ledger) -> str:
        if self._pinned:
            return self._pinned
        active = ledger.active_session(self._workspace)
        if active is not None:
            return active
        from trackwrap.session import implicit_session_id

        return implicit_session_id(self._workspace, now=datetime.now(UTC))

    def poll(self) -> Snapshot:
        """Read the events after the last one shown, the session's state and its approvals.

        Raises:
            ConfigError: there is no ledger yet and the view is not live (``--once``).
            LedgerError: the ledger cannot be read.
        """
        now = _now_ms()
        ledger = self._open()
        if ledger is None:
            path = self._settings.ledger_path
            if not self._live:
                raise ConfigError(
                    f"no audit ledger at {path} yet: no wrapper has recorded a call "
                    "(is TRACKWRAP_HOME right?)"
                )
            return Snapshot(workspace=self._workspace, session=self._pinned, lines=(),
                            waiting=f"waiting for the first call in {self._workspace} (no "
                                    f"audit ledger at {path} yet)", now_ms=now)
        session = self._session(ledger)
        self._read_events(ledger, session)
        if session not in self._after:
            where = self._workspace if not self._pinned else f"session {session}"
            word = "waiting for the first call" if self._live else "no calls recorded yet"
            return Snapshot(workspace=self._workspace, session=session,
                            lines=tuple(self._lines), waiting=f"{word} in {where}", now_ms=now)
        state = ledger.session_state(session)
        pending = tuple(r for r in ledger.approvals(states=("pending",), session=session)
                        if r.expires_ms > now)
        held = self._budget(session, state)
        return Snapshot(
            workspace=state.workspace or self._workspace, session=session,
            lines=tuple(self._lines), state=state, budget=held.budget, pending=pending,
            problem=held.problem, now_ms=now, last_ms=self._last_ms.get(session),
        )

    def _read_events(self, ledger: Ledger, session: str) -> None:
        for event in ledger.events(session, after_seq=self._after.get(session, -1)):
            self._after[session] = event.seq
            stamp = event.body.get("ts_ms")
            if isinstance(stamp, int):
                self._last_ms[session] = stamp
            if event.seq == 0:  # paths are shown relative to the session's workspace
                found = event.body.get("workspace")
                self._workspaces[session] = found if isinstance(found, str) else ""
            line = _line(event, workspace=self._workspaces.get(session) or self._workspace)
            if line is not None:
                self._lines.append(line)

    def _budget(self, session: str, state: SessionState) -> _Held:
        held = self._held.get(session)
        if held is not None and time.monotonic() - held.checked < MANIFEST_RECHECK_S:
            return held
        held = _Held(checked=time.monotonic(), budget=None, problem=None)
        try:
            held.budget = _manifest_budget(self._settings, state)
        except (Error, ValueError) as exc:  # ValueError: a genesis that is not base64
            held.budget = _recorded_budget(state.genesis)
            held.problem = (f"the session's manifest does not verify now ({exc}): the "
                            "wrappers deny its calls")
        self._held[session] = held
        return held


def _manifest_budget(settings: Settings, state: SessionState) -> Budget | None:
    """The budget the wrappers hold the session to: its manifest's, verified again; for an
    implicit session under a default role, that shipped role's."""
    from trackwrap.cli._roles import role_manifest, trust_store
    from trackwrap.session import manifest_from_genesis

    manifest = manifest_from_genesis(state.genesis, trust=trust_store(settings),
                                     now=datetime.now(UTC))
    if manifest is not None:
        return manifest.budget
    if state.kind == "implicit" and state.role and state.manifest_digest:
        try:
            return role_manifest(state.role, workspace=state.workspace or ".").budget
        except ConfigError:
            return None
    return None


def _recorded_budget(genesis: Mapping[str, object]) -> Budget | None:
    """The budget recorded in the session's genesis when it started."""
    from trackwrap.manifest import Budget

    recorded = genesis.get("budget")
    if not isinstance(recorded, Mapping):
        return None

    def limit(name: str) -> int | None:
        value = recorded.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return Budget(tool_calls=limit("tool_calls"), bytes_out=limit("bytes_out"),
                  duration_s=limit("duration_s"))


def _line(event: StoredEvent, *, workspace: str) -> Text | None:
    """One event as the view shows it; None for records that say nothing about calls."""
    body = event.body
    kind = body.get("kind")
    if kind == "segment.seal":
        return None
    if kind == "session.end":
        line = Text("END   ", style="bold blue")
        line.append(f" session {_visible(event.session)} closed: {_visible(body.get('reason'))}")
        return line
    if kind == "tool_call.redacted":
        line = Text("REDACT", style="bold cyan")
        line.append(f" {_visible(body.get('server'))}: {_visible(body.get('count'))} "
                    "secret(s) masked in a result")
        line.append("  trace: ", style="dim")
        line.append(_visible(body.get("trace")))
        return line
    if kind == "mcp_manifest_drift":
        line = Text("PINS  ", style="bold yellow")
        line.append(f" {_visible(body.get('detail'))}")
        return line
    if kind == "approval.requested":
        body = {**body, "target": short_target(str(body.get("target", "")), workspace)}
    return event_line(body, workspace=workspace)


# ---------------------------------------------------------------------------------- rendering


def _duration(seconds: int) -> str:
    """``45s``, ``12m``, ``1h05m``."""
    seconds = max(0, seconds)
    if seconds < 60:
        return f"{seconds}s"
    hours, minutes = divmod(seconds // 60, 60)
    if not hours:
        return f"{minutes}m"
    return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"


def _time_left(record: ApprovalRecord, now_ms: int) -> str:
    seconds = max(0, (record.expires_ms - now_ms) // 1000)
    return f"{seconds // 60}m{seconds % 60:02d}s left"


def budget_text(state: SessionState, budget: Budget | None, *, now_ms: int,
                last_ms: int | None = None) -> Text:
    """``7/200 tool calls, 0.4/5.0 MiB egress, 12m/45m``; a part without a limit shows only the
    amount used (``7 tool calls, 0.4 MiB egress, 12m``). A spent part is red."""
    end_ms = last_ms if state.closed and last_ms is not None else now_ms
    elapsed = max(0, (end_ms - state.started_ms) // 1000)
    calls = budget.tool_calls if budget is not None else None
    out = budget.bytes_out if budget is not None else None
    duration = budget.duration_s if budget is not None else None
    text = Text()
    _part(text, str(state.tool_calls), None if calls is None else str(calls),
          " tool call" if state.tool_calls == 1 and calls is None else " tool calls",
          spent=calls is not None and state.tool_calls >= calls)
    text.append(", ")
    _part(text, f"{state.bytes_out / _MIB:.1f}", None if out is None else f"{out / _MIB:.1f}",
          " MiB egress", spent=out is not None and state.bytes_out >= out)
    text.append(", ")
    _part(text, _duration(elapsed), None if duration is None else _duration(duration), "",
          spent=duration is not None and elapsed >= duration)
    return text


def _part(text: Text, used: str, limit: str | None, unit: str, *, spent: bool) -> None:
    shown = used if limit is None else f"{used}/{limit}"
    text.append(f"{shown}{unit}", style="bold red" if spent else "")


def _footer_rows(snap: Snapshot, *, live: bool) -> list[Text]:
    """The footer's lines: pending approvals, the budget used, what is wrong or awaited. Live,
    each is cut to one row (the view must fit the terminal); otherwise they wrap."""
    rows: list[Text] = []
    if snap.waiting is not None:
        rows.append(Text(_visible(snap.waiting), style="dim"))
    for record in snap.pending:
        request = record.request
        row = Text("PENDING", style="bold yellow")
        row.append(f" {_visible(record.id)}  ")
        row.append(_time_left(record, snap.now_ms), style="yellow")
        call = short_target(str(request.get("target", "")), snap.workspace)
        row.append(f"  {_visible(request.get('action_kind', ''))} {_visible(call)}".rstrip(),
                   style="bold")
        row.append(f"  rule: {_visible(request.get('rule', ''))}", style="dim")
        rows.append(row)
    if snap.pending:
        rows.append(Text("decide: trackwrap approve ID | trackwrap deny ID --reason …",
                         style="dim"))
    elif snap.state is not None:
        rows.append(Text("no approvals pending", style="dim"))
    if snap.state is not None:
        rows.append(budget_text(snap.state, snap.budget, now_ms=snap.now_ms,
                                last_ms=snap.last_ms))
        if snap.state.closed:
            rows.append(Text(f"session closed: {_visible(snap.state.close_reason)}",
                             style="yellow"))
    if snap.problem is not None:
        rows.append(Text(_visible(snap.problem), style="red"))
    for row in rows:
        row.no_wrap = live
        row.overflow = "ellipsis" if live else "fold"
    return rows


def _footer(snap: Snapshot, rows: list[Text], *, live: bool) -> Panel:
    title = None
    if snap.session is not None:
        what = ""
        if snap.state is not None:
            what = f" ({snap.state.kind}, role {snap.state.role or '-'})"
        title = Text(f"{_visible(snap.session)}{_visible(what)}", style="bold")
    return Panel(Group(*rows), title=title, title_align="left",
                 subtitle=Text("Ctrl-C to quit", style="dim") if live else None,
                 subtitle_align="right", border_style="blue")


def print_once(snap: Snapshot, console: Console) -> None:
    """``--once``: every event line in full (one per call, as scripts grep them), then the
    footer."""
    for line in snap.lines:
        console.print(line, soft_wrap=True)
    console.print(_footer(snap, _footer_rows(snap, live=False), live=False))


def render(snap: Snapshot, *, height: int) -> RenderableType:
    """The live view: the newest event lines that fit ``height`` rows above the footer, each
    line cut to the terminal's width."""
    footer_rows = _footer_rows(snap, live=True)
    footer = _footer(snap, footer_rows, live=True)
    room = height - len(footer_rows) - 3  # the panel's two borders, and the cursor's row
    shown: list[Text] = []
    for line in reversed(snap.lines):
        rows = line.plain.count("\n") + 1
        if rows > room:
            break
        room -= rows
        cut = line.copy()
        cut.no_wrap = True
        cut.overflow = "ellipsis"
        shown.append(cut)
    shown.reverse()
    return Group(*shown, footer)


# ----------------------------------------------------------------------------------- command


def watch(
    session: Annotated[str | None, typer.Option(
        help="watch this session (default: TRACKWRAP_SESSION, else the workspace's started "
             "session, else its implicit one)")] = None,
    workspace: Annotated[str | None, typer.Option(help="workspace directory (default: cwd)")]
    = None,
    once: Annotated[bool, typer.Option("--once", help="print what is there now and exit")]
    = False,
) -> None:
    """A live view of a session's decisions across all its wrappers, with pending approvals
    and the budget used.

    Exit code: 0 (also on Ctrl-C); 2 with --once when there is no ledger yet.
    """
    settings = load_settings()
    watcher = Watcher(settings, workspace=resolve_workspace(workspace),
                      session=session or settings.session, live=not once)
    console = Console(highlight=False)
    try:
        if once:
            print_once(watcher.poll(), console)
            return
        _run_live(watcher, console)
    except KeyboardInterrupt:
        return
    finally:
        watcher.close()


def _run_live(watcher: Watcher, console: Console) -> None:
    from rich.live import Live

    with Live(render(watcher.poll(), height=console.size.height), console=console,
              screen=False, refresh_per_second=4, auto_refresh=True) as live:
        while True:
            time.sleep(POLL_S)
            live.update(render(watcher.poll(), height=console.size.height))


def register(app: typer.Typer) -> None:
    """Add ``watch`` to the typer application."""
    app.command("watch")(watch)
