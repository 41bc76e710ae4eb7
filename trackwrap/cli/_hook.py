"""``trackwrap hook claude-code|codex``: the wrapper's governance for an agent's built-in tools.

An agent's own tools (Claude Code's ``Bash``, ``Edit``, ``Read`` …, Codex's shell and
``apply_patch``) never pass through an MCP server, so no wrapper sees them. The agent runs this
command before each such call instead; it judges the call with the same pipeline a wrapper uses —
the same session (join rule), manifest scope, policy, inspectors and ledger — through
:func:`trackwrap.cli._wrap.build_gate_for`, with the client's name as the server (its profile in
``profiles/servers/<client>.yaml``) and no upstream.

Protocol followed
-----------------
Claude Code: the hooks reference (code.claude.com/docs/en/hooks, 2026), ``PreToolUse`` command
hooks. stdin is one JSON object (``session_id``, ``transcript_path``, ``cwd``,
``permission_mode``, ``hook_event_name: "PreToolUse"``, ``tool_name``, ``tool_input``,
``tool_use_id``). The answer is exit 0 with ``{"hookSpecificOutput": {"hookEventName":
"PreToolUse", "permissionDecision": "allow" | "deny" | "ask", "permissionDecisionReason": …}}``
on stdout (the form that replaced the deprecated top-level ``decision``/``reason``); exit 0 with
no output means "no opinion". ``allow`` skips Claude Code's own prompt but not its deny/ask rules;
a ``deny`` reason is shown to the model, an ``ask`` reason in the prompt.

Codex CLI: ``codex-rs/hooks`` (Codex ≥ 0.124, hooks on by default), which reads the same JSON.
It acts only on ``deny``: ``allow`` without ``updatedInput`` and ``ask`` are logged as
unsupported and the call proceeds. So for Codex an allowed call gets no output, and a call that
needs approval is denied with the pending approval's id (approve it, and the same call goes
through once when the agent retries).

Every decision is recorded in the ledger with the client as its server. MCP tools
(``mcp__<server>__<tool>``) get no opinion: the wrapper in front of each server governs them
(Claude Code ignores a hook's ``deny``/``ask`` for MCP tools anyway). Any failure — unreadable
input, a bad option, an unusable ledger, an exception — answers ``deny`` (fail closed), with exit
0 so the client reads the answer; nothing but the answer is written to stdout.

Kept free of typer, rich, httpx and the MCP SDK: the agent waits for this process on every call.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from trackwrap.cli._wrap import add_governance_options
from trackwrap.errors import ConfigError, Error

if TYPE_CHECKING:
    from typer import Typer

    from trackwrap.ledger import Ledger
    from trackwrap.relay import StderrSink
    from trackwrap.session import Hold

__all__ = [
    "CLAUDE_CODE_MATCHER",
    "CODEX_MATCHER",
    "HOOK_USAGE",
    "codex_hooks_entry",
    "hook_settings_entry",
    "register",
    "run_hook",
]

HOOK_USAGE = (
    "trackwrap hook {claude-code|codex} [--workspace DIR] [--policy FILE] [--profiles DIR] "
    "[--mode enforce|monitor] [--session ID] [--require-session] [--default-role ROLE]"
)

CLAUDE_CODE_MATCHER = "Bash|Edit|MultiEdit|Write|Read|Glob|Grep|LS|WebFetch|WebSearch|NotebookEdit"
"""Claude Code's built-in tools that ``profiles/servers/claude-code.yaml`` maps."""

CODEX_MATCHER = "Bash|apply_patch"
"""Codex's built-in tools that ``profiles/servers/codex.yaml`` maps."""

MAX_INPUT_BYTES = 64 * 1024 * 1024
"""Hook input larger than this is denied unread (a ``Write`` carries the whole file)."""

_REQUIRED: Mapping[tuple[str, str], str] = {
    ("claude-code", "Bash"): "command",
    ("claude-code", "Edit"): "file_path",
    ("claude-code", "MultiEdit"): "file_path",
    ("claude-code", "Write"): "file_path",
    ("claude-code", "NotebookEdit"): "notebook_path",
    ("claude-code", "Read"): "file_path",
    ("claude-code", "WebFetch"): "url",
    ("codex", "Bash"): "command",
}
"""The argument a call must carry to be judged at all: a write without its path would pass the
policy's workspace check with nothing to check."""
_SEAL_SCAN = 20
"""How many of the newest sessions each hook call looks at for stale unsealed records."""
_MCP_PREFIX = "mcp__"
_PATCH_FILE = re.compile(r"^\*\*\* (?:Add File|Update File|Delete File|Move to): (.+?)\s*$",
                         re.MULTILINE)


def hook_settings_entry() -> dict[str, Any]:
    """What to merge into ``~/.claude/settings.json`` so Claude Code asks trackwrap before each
    built-in tool call (MCP tools are governed by their wrappers)."""
    return {"hooks": {"PreToolUse": [{
        "matcher": CLAUDE_CODE_MATCHER,
        "hooks": [{"type": "command", "command": "trackwrap hook claude-code"}],
    }]}}


def codex_hooks_entry() -> dict[str, Any]:
    """What to merge into ``~/.codex/hooks.json`` (the same shape as Claude Code's settings)."""
    return {"hooks": {"PreToolUse": [{
        "matcher": CODEX_MATCHER,
        "hooks": [{"type": "command", "command": "trackwrap hook codex"}],
    }]}}


@dataclass(frozen=True, slots=True)
class _Client:
    """How one agent speaks the hook protocol."""

    server: str
    """The server name the calls are judged and recorded under (its profile's name)."""
    says_allow: bool
    """Whether an allowed call is answered ``allow`` (else: no output)."""
    can_ask: bool
    """Whether ``ask`` hands the call to the person at the agent's own prompt."""
    project_env: str | None = None
    """The variable naming the project directory the agent was started in, if it sets one."""


_CLIENTS: Mapping[str, _Client] = {
    "claude-code": _Client(server="claude-code", says_allow=True, can_ask=True,
                           project_env="CLAUDE_PROJECT_DIR"),
    "codex": _Client(server="codex", says_allow=False, can_ask=False),
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """The hook's answer: a permission decision and its reason, or no opinion (None)."""

    decision: str | None
    reason: str = ""

    def to_json(self) -> dict[str, Any] | None:
        if self.decision is None:
            return None
        return {"hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": self.decision,
            "permissionDecisionReason": self.reason,
        }}


_NO_OPINION = Verdict(None)


def _deny(reason: str) -> Verdict:
    return Verdict("deny", reason)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{message} (usage: {HOOK_USAGE})")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="trackwrap hook", usage=HOOK_USAGE, add_help=False)
    p.add_argument("client")
    add_governance_options(p)
    return p


_HELP = f"""Usage: {HOOK_USAGE}

  Judge one built-in tool call of Claude Code or Codex before it runs. The agent runs
  this command as a PreToolUse hook: the call arrives as JSON on stdin and the decision
  leaves as JSON on stdout. Calls are judged and recorded exactly as a wrapper would:
  same session, manifest, policy, inspectors and ledger. MCP tools get no opinion (their
  wrappers govern them); any failure answers deny.

  --workspace DIR      the directory the agent may work in (default: the project
                       directory Claude Code names in CLAUDE_PROJECT_DIR, else the
                       hook input's cwd)
  --policy FILE        policy file or directory (repeatable; default: shipped policy)
  --profiles DIR       extra server profiles
  --mode monitor       record what would be denied, but give no opinion
  --session ID         join this session (default: TRACKWRAP_SESSION, else the
                       workspace's started session, else its implicit one)
  --require-session    deny every call until a session is started for the workspace
  --default-role ROLE  hold implicit sessions to this shipped role's manifest
"""


def run_hook(
    argv: Sequence[str],
    *,
    stdin: IO[bytes] | None = None,
    stdout: IO[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Answer one hook call; the exit code is 0 whenever the client can read the answer."""
    out = sys.stdout if stdout is None else stdout
    if any(arg in ("-h", "--help") for arg in argv):
        out.write(_HELP)
        return 0
    if not argv or argv[0].startswith("-"):
        sys.stderr.write(f"trackwrap: error: name the agent (usage: {HOOK_USAGE})\n")
        return 2
    client = _CLIENTS.get(argv[0])
    if client is None:
        # Without a known client there is no protocol to answer in; exit 2 is what Claude Code
        # and Codex both take as "block this call", with stderr as the reason.
        sys.stderr.write(f"trackwrap: error: no hook for {argv[0]!r}; trackwrap hooks into "
                         f"{' and '.join(sorted(_CLIENTS))} (usage: {HOOK_USAGE})\n")
        return 2
    env = os.environ if environ is None else environ
    try:
        verdict = _answer(client, argv, stdin=stdin, env=env)
    except Error as exc:
        verdict = _deny(f"trackwrap could not judge this call, so it is denied: "
                        f"{exc.diagnostics()}")
    except Exception as exc:  # noqa: BLE001 - fail closed: any failure is a deny, never a trace
        verdict = _deny(f"trackwrap could not judge this call, so it is denied: an internal "
                        f"error ({type(exc).__name__}: {exc})")
    answer = verdict.to_json()
    if answer is not None:
        out.write(json.dumps(answer, ensure_ascii=False) + "\n")
    out.flush()
    return 0


def _answer(
    client: _Client, argv: Sequence[str], *, stdin: IO[bytes] | None, env: Mapping[str, str]
) -> Verdict:
    """Parse the options and the hook input, then judge the call (raising on any failure)."""
    opts = _parser().parse_args(list(argv))
    payload = _read_input(sys.stdin.buffer if stdin is None else stdin)
    event = payload.get("hook_event_name", "PreToolUse")
    if event != "PreToolUse":
        raise ConfigError(f"trackwrap hook answers PreToolUse events, not {event!r}")
    tool = payload.get("tool_name")
    if not isinstance(tool, str) or not tool:
        raise ConfigError("the hook input has no tool_name")
    if tool.startswith(_MCP_PREFIX):
        return _NO_OPINION
    arguments = payload.get("tool_input", {})
    if not isinstance(arguments, dict):
        raise ConfigError("the hook input's tool_input is not a JSON object")
    required = _REQUIRED.get((client.server, tool))
    if required is not None and not isinstance(arguments.get(required), str):
        raise ConfigError(f"the {tool} call has no {required}, so it cannot be checked")
    if client.server == "codex" and tool == "apply_patch":
        arguments = _with_patch_files(arguments)
    cwd = payload.get("cwd")
    workspace = opts.workspace or (env.get(client.project_env) if client.project_env else None)
    workspace = workspace or (cwd if isinstance(cwd, str) and cwd else None)
    call_id = payload.get("tool_use_id")
    return _judge(client, opts, tool=tool, arguments=arguments, workspace=workspace,
                  call_id=call_id if isinstance(call_id, str) and call_id else 1, env=env)


def _read_input(stream: IO[bytes]) -> dict[str, Any]:
    data = stream.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise ConfigError(f"the hook input is larger than {MAX_INPUT_BYTES} bytes")
    try:
        payload = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the hook input on stdin is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ConfigError("the hook input on stdin is not a JSON object")
    return payload


def _with_patch_files(arguments: dict[str, Any]) -> dict[str, Any]:
    """Codex's ``apply_patch`` carries one patch text; the files it adds, updates, deletes or
    moves to become the ``files`` its profile checks as writes. A patch that names no file is
    refused: there would be nothing to hold against the workspace."""
    files: list[str] = []
    for value in arguments.values():
        if isinstance(value, str):
            files += [m.group(1) for m in _PATCH_FILE.finditer(value)]
    if not files:
        raise ConfigError("the apply_patch input names no file (no '*** Add/Update/Delete "
                          "File:' line), so its writes cannot be checked")
    return {**arguments, "files": files}


def _judge(
    client: _Client,
    opts: argparse.Namespace,
    *,
    tool: str,
    arguments: dict[str, Any],
    workspace: str | None,
    call_id: object,
    env: Mapping[str, str],
) -> Verdict:
    """One call through the wrapper's governor: evaluate, record, and say what it means for
    the agent."""
    from trackwrap.cli._settings import load_settings, resolve_workspace
    from trackwrap.cli._wrap import GateOptions, build_gate_for
    from trackwrap.policy import Outcome
    from trackwrap.relay import StderrSink
    from trackwrap.session import Hold

    settings = load_settings(env)
    options = GateOptions(
        server=client.server, policy=tuple(opts.policy), profiles=tuple(opts.profiles),
        mode=opts.mode, session=opts.session, require_session=opts.require_session,
        default_role=opts.default_role,
    )
    sink = StderrSink()
    root = resolve_workspace(workspace)
    gate = build_gate_for(options, command=(), settings=settings, workspace=root, env=env,
                          sink=sink, relaying=False)
    governor, ledger = gate.governor, gate.ledger
    try:
        judgement = governor.evaluate(
            {"id": call_id, "params": {"name": tool, "arguments": arguments}})
        answer = governor.commit(judgement, can_wait=True)
        ledger.flush()  # a deny's record reaches the disk before the agent hears of it
        _seal_stale(ledger, root, max_age_ms=int(options.seal_interval * 1000), sink=sink)
    finally:
        ledger.close()
    decision = judgement.decision
    if answer is None:
        if gate.mode == "monitor" or not decision.enforced or not client.says_allow:
            return _NO_OPINION  # monitor mode records what it would decide, and changes nothing
        if decision.outcome is Outcome.REQUIRE_APPROVAL:
            return Verdict("allow", f"trackwrap: allowed once by an approval ({decision.rule})")
        reason = f"trackwrap: allowed by {decision.rule}"
        if decision.outcome is Outcome.REDACT:
            reason += "; trackwrap cannot mask built-in tool output"
        return Verdict("allow", reason)
    if isinstance(answer, Hold):
        return _held(client, answer)
    return _deny(f"trackwrap: {_answer_text(answer)}")


def _seal_stale(ledger: Ledger, workspace: str, *, max_age_ms: int, sink: StderrSink) -> None:
    """Seal what the workspace's open sessions hold unsealed for longer than ``max_age_ms``.

    A wrapper seals on a timer and when it exits; a hook call lives for one call, so each call
    seals what earlier ones left (its own records included, once they are old enough) — the
    tail of yesterday's implicit session too, which no later call would record into.
    """
    from trackwrap.errors import LedgerError

    try:
        recent = ledger.list_sessions()[:_SEAL_SCAN]
        for state in recent:
            if not state.closed and state.workspace == workspace:
                ledger.seal_if_older(state.session, max_age_ms=max_age_ms)
    except LedgerError as exc:  # the decision is recorded; the seal comes with a later call
        sink.say(f"could not seal the workspace's sessions: {exc}")


def _held(client: _Client, hold: Hold) -> Verdict:
    """A call that needs approval: the person at the agent's prompt may give it when the rule
    lets anyone approve and the agent can ask; otherwise it waits for a trackwrap approval."""
    from trackwrap.session import decision_text

    judgement = hold.judgement
    action = judgement.decision.action
    target = action.target()[:200] if action is not None else ""
    text = decision_text(judgement.decision, tool=judgement.tool, target=target,
                         trace=hold.trace)
    call = hold.call
    if client.can_ask and not call.approvers and not call.separate_approver:
        return Verdict("ask", f"trackwrap: {text}. Approving here runs it this once "
                              f"(trackwrap recorded the request as approval {hold.approval_id}).")
    who = f" by {', '.join(call.approvers)}" if call.approvers else ""
    return _deny(f"trackwrap: {text}. Approval {hold.approval_id} is pending; nothing ran. Once "
                 f"it is approved{who} (`trackwrap approve {hold.approval_id}`), retry the same "
                 "call and it goes through, once.")


def _answer_text(answer: Mapping[str, Any]) -> str:
    """The text of the tool result the governor answers a refused call with."""
    content = answer.get("content")
    if isinstance(content, list):
        texts = [c.get("text") for c in content if isinstance(c, dict)]
        joined = " ".join(t for t in texts if isinstance(t, str))
        if joined:
            return joined
    return "DENY — the call was refused"


def register(app: Typer) -> None:
    """``hook`` in the typer app too, for its command list; ``main()`` answers ``trackwrap hook``
    before typer is imported, so agents never wait for it."""
    import typer

    everything = typer.Argument(None, help="claude-code or codex, then the hook's options")

    @app.command("hook", add_help_option=False,
                 context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def hook(args: list[str] | None = everything) -> None:
        """Judge an agent's built-in tool call before it runs (a PreToolUse hook)."""
        raise typer.Exit(run_hook(args or []))
