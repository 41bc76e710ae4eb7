"""``keys``, ``trust``, ``manifest``, ``session``, ``token`` and ``diagnose`` commands."""

from __future__ import annotations

import base64
import binascii
import getpass
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from trackwrap import __version__
from trackwrap.cli._render import event_line
from trackwrap.cli._roles import known_roles, role_payload, trust_store
from trackwrap.cli._settings import (
    Settings,
    load_settings,
    resolve_workspace,
    signed_tools_path,
)
from trackwrap.errors import ConfigError, KeyStoreError, LedgerError, SignatureError

if TYPE_CHECKING:
    from rich.panel import Panel

__all__ = [
    "Started",
    "register",
    "render_diagnosis",
    "start_session",
]

out = Console(highlight=False, soft_wrap=True)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _keystore(settings: Settings) -> Any:
    from trackwrap.crypto import KeyStore

    return KeyStore(settings.home, backend=settings.key_backend,
                    warn=lambda m: Console(stderr=True, soft_wrap=True).print(
                        m, style="yellow", markup=False))


def _ledger(settings: Settings) -> Any:
    from trackwrap.ledger import Ledger

    return Ledger.open(settings.ledger_path, signer=_keystore(settings).device_key,
                       clock_ms=_now_ms)


# ----------------------------------------------------------------------------------------- keys

keys_app = typer.Typer(help="The device key that seals the ledger and signs tokens.",
                       no_args_is_help=True)


@keys_app.command("init")
def keys_init() -> None:
    """Create the device key (OS keyring, else a 0600 file) if there is none yet."""
    key = _keystore(load_settings()).device_key()
    out.print(f"device key {key.key_id}")


@keys_app.command("list")
def keys_list() -> None:
    """Show the device key's id and public key."""
    key = _keystore(load_settings()).device_key()
    out.print(f"device  {key.key_id}  ed25519:{base64.b64encode(key.public_raw).decode()}")


@keys_app.command("export-public")
def keys_export_public() -> None:
    """Print the device's public key as ``ed25519:<base64>`` (for `trust add` elsewhere)."""
    key = _keystore(load_settings()).device_key()
    sys.stdout.write(f"ed25519:{base64.b64encode(key.public_raw).decode()}\n")


@keys_app.command("generate")
def keys_generate(
    out_file: Annotated[Path, typer.Option("--out", help="private key file to write (0600)")],
) -> None:
    """Make a new signing key pair for a publisher (a platform team signing manifests)."""
    from trackwrap.crypto import SigningKey

    key = SigningKey.generate()
    try:
        fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"{out_file} exists; choose another --out") from exc
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(key.private_raw()).decode() + "\n")
    out.print(f"wrote {out_file} (keep it secret)")
    out.print(f"key id     {key.key_id}")
    out.print(f"public key ed25519:{base64.b64encode(key.public_raw).decode()}")


def _table(*columns: str) -> Any:
    """A table whose cells wrap instead of being cut short."""
    from rich.table import Table

    table = Table(*columns)
    for column in table.columns:
        column.overflow = "fold"
    return table


def load_private_key(path: Path) -> Any:
    from trackwrap.crypto import SigningKey

    try:
        raw = base64.b64decode(path.read_text().strip(), validate=True)
        return SigningKey.from_private_raw(raw)
    except (OSError, binascii.Error, ValueError, KeyStoreError) as exc:
        raise ConfigError(f"cannot read a private key from {path}: {exc}") from exc


# ---------------------------------------------------------------------------------------- trust

trust_app = typer.Typer(help="Publisher keys trusted to sign session manifests.",
                        no_args_is_help=True)


@trust_app.command("add")
def trust_add(
    publisher: Annotated[str, typer.Option(help="e.g. anthropic.com:claude-code:v2.4.1")],
    key: Annotated[str, typer.Option(help="public key: ed25519:<base64> or base64")],
    role: Annotated[list[str] | None, typer.Option(help="roles it may sign (default any)")] = None,
    server: Annotated[
        list[str] | None,
        typer.Option(help="MCP server whose tool lists this key must sign (repeatable)"),
    ] = None,
) -> None:
    """Pin a publisher's key (for session manifests, and for servers' tool lists)."""
    settings = load_settings()
    store = trust_store(settings).add(publisher, key, roles=tuple(role or ()),
                                      servers=tuple(server or ()), now=datetime.now(UTC))
    store.save(settings.trust_path)
    added = store.by_name(publisher)
    out.print(f"trusted {publisher} ({added.key_id if added else '?'}) in {settings.trust_path}")


@trust_app.command("add-approver")
def trust_add_approver(
    name: Annotated[str, typer.Argument(help="the approver, e.g. ops@acme.com")],
    key: Annotated[str, typer.Option(help="public key: ed25519:<base64> or base64")],
    group: Annotated[
        list[str] | None, typer.Option(help="approver group a policy rule can ask for")
    ] = None,
) -> None:
    """Trust a person's key to sign approval decisions (`trackwrap approve --key …`)."""
    settings = load_settings()
    store = trust_store(settings).add_approver(name, key, groups=tuple(group or ()),
                                               now=datetime.now(UTC))
    store.save(settings.trust_path)
    added = next(a for a in store.approvers if a.name == name)
    out.print(f"trusted approver {name} ({added.key_id}, groups: "
              f"{', '.join(added.groups) or 'none'}) in {settings.trust_path}")


@trust_app.command("list")
def trust_list() -> None:
    """List pinned publishers and approvers."""
    settings = load_settings()
    store = trust_store(settings)
    table = _table("publisher", "key id", "roles", "added")
    for p in store.publishers():
        table.add_row(p.name, p.key_id, ", ".join(p.roles) or "any", str(p.added))
    out.print(table)
    if store.approvers:
        approvers = _table("approver", "key id", "groups", "added")
        for a in sorted(store.approvers, key=lambda a: a.name):
            approvers.add_row(a.name, a.key_id, ", ".join(a.groups) or "none", str(a.added))
        out.print(approvers)
    out.print(f"[dim]{settings.trust_path}[/dim]")


@trust_app.command("remove")
def trust_remove(which: Annotated[str, typer.Argument(help="publisher name or key id")]) -> None:
    """Remove a pinned publisher or approver."""
    settings = load_settings()
    trust_store(settings).remove(which).save(settings.trust_path)
    out.print(f"removed {which}")


# ------------------------------------------------------------------------------------- manifest

manifest_app = typer.Typer(help="Write, sign and verify session manifests.",
                           no_args_is_help=True)


@manifest_app.command("new")
def manifest_new(
    role: Annotated[str, typer.Option(help="a shipped role, e.g. code-reviewer")],
    workspace: Annotated[str, typer.Option(help="workspace path or repo slug")] = ".",
    developer: Annotated[str | None, typer.Option()] = None,
    agent: Annotated[str, typer.Option()] = "claude-code",
    publisher: Annotated[str | None, typer.Option()] = None,
    out_file: Annotated[Path | None, typer.Option("--out")] = None,
) -> None:
    """Fill in a role's manifest, ready to sign."""
    payload = role_payload(role, workspace=workspace, developer=developer, agent=agent,
                           publisher=publisher)
    if out_file is None:
        sys.stdout.write(payload.decode("utf-8"))
    else:
        out_file.write_bytes(payload)
        out.print(f"wrote {out_file}; sign it with: trackwrap manifest sign --key KEY {out_file}")


@manifest_app.command("sign")
def manifest_sign(
    file: Annotated[Path, typer.Argument(help="the manifest YAML")],
    key: Annotated[Path, typer.Option(help="the publisher's private key file")],
    out_file: Annotated[Path | None, typer.Option("--out")] = None,
) -> None:
    """Sign the exact bytes of a manifest (DSSE envelope, ed25519)."""
    from trackwrap.manifest import parse_manifest, sign_manifest

    payload = _read(file)
    parse_manifest(payload, source=str(file))
    envelope = sign_manifest(payload, key=load_private_key(key))
    target = out_file or file.with_name(file.name + ".dsse.json")
    target.write_bytes(envelope)
    out.print(f"signed {file} -> {target}")


@manifest_app.command("verify")
def manifest_verify(file: Annotated[Path, typer.Argument(help="a signed manifest")]) -> None:
    """Verify a signed manifest against the trust store, then parse it strictly."""
    from trackwrap.manifest import verify_manifest

    settings = load_settings()
    verified = verify_manifest(_read(file), trust=trust_store(settings),
                               now=datetime.now(UTC), source=str(file))
    m = verified.manifest
    out.print(f"[green]verified[/green] {file}: role {m.role}, workspace {m.workspace}, "
              f"publisher {verified.publisher} ({verified.key_id}), digest {m.digest}")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


# -------------------------------------------------------------------------------------- session

session_app = typer.Typer(help="Start, inspect and close governed sessions.",
                          no_args_is_help=True)


def _git(workspace: str, *args: str) -> str | None:
    try:
        done = subprocess.run(  # noqa: S603
            ["git", "-C", workspace, *args],  # noqa: S607
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = done.stdout.strip()
    return value if done.returncode == 0 and value else None


def resolve_developer(workspace: str, override: str | None, declared: str | None) -> str:
    return (override or declared or _git(workspace, "config", "user.email")
            or getpass.getuser())


def check_binding(binding: str, *, workspace: str, remote: str | None) -> None:
    """A manifest names its workspace as a path or a repository slug (``acme/payments``)."""
    if binding in ("", "."):
        return
    looks_like_slug = (not binding.startswith(("/", ".", "~")) and binding.count("/") == 1)
    if looks_like_slug:
        slug = binding.removesuffix(".git")
        if remote and (remote.removesuffix(".git").removesuffix("/").endswith("/" + slug)
                       or remote.removesuffix(".git").endswith(":" + slug)):
            return
        raise ConfigError(
            f"the manifest is bound to {binding}, but this workspace's git remote is "
            f"{remote or 'not set'}; start the session in a checkout of {binding}"
        )
    if os.path.realpath(os.path.expanduser(binding)) != workspace:
        raise ConfigError(f"the manifest is bound to {binding}, not to {workspace}")


@dataclass(frozen=True, slots=True)
class Started:
    session: str
    genesis: dict[str, object]

    def panel(self) -> Panel:
        from rich.panel import Panel

        g = self.genesis
        budget = g.get("budget") if isinstance(g.get("budget"), dict) else {}
        remote = f" ({g['git_remote']})" if g.get("git_remote") else ""
        signer = f" ({g['signed_by']})" if g.get("signed_by") else ""
        return Panel.fit(
            f"session    {self.session}\nrole       {g.get('role')}\n"
            f"workspace  {g.get('workspace')}{remote}\ndeveloper  {g.get('developer')}\n"
            f"publisher  {g.get('publisher')}{signer}\nbudget     {_budget_text(budget)}\n"
            f"on drift   {g.get('on_drift')}",
            title="session started", border_style="green",
        )


def start_session(
    settings: Settings,
    *,
    workspace: str,
    envelope: bytes | None = None,
    role: str | None = None,
    developer: str | None = None,
    agent: str | None = None,
    on_drift: str = "deny",
    source: str = "manifest",
) -> Started:
    """Verify the manifest (or fill in a shipped role), check its role and workspace binding,
    and record the session's genesis in the ledger."""
    from trackwrap.manifest import parse_manifest, verify_manifest
    from trackwrap.session import BUILTIN_PUBLISHER, new_session_id

    if (envelope is None) == (role is None):
        raise ConfigError("give exactly one of --manifest FILE or --role ROLE")
    if on_drift not in ("deny", "terminate"):
        raise ConfigError("--on-drift must be deny or terminate")
    now = datetime.now(UTC)
    extra: dict[str, object] = {}
    if envelope is not None:
        verified = verify_manifest(envelope, trust=trust_store(settings), now=now, source=source)
        m, publisher, key_id = verified.manifest, verified.publisher, verified.key_id
        extra["manifest_envelope"] = base64.b64encode(envelope).decode()
    else:
        role = str(role)
        payload = role_payload(role, workspace=".", developer=developer,
                               agent=agent or "unknown")
        m = parse_manifest(payload, source=f"role {role}")
        publisher, key_id = BUILTIN_PUBLISHER, None
        extra["manifest_payload"] = base64.b64encode(payload).decode()
    roles = known_roles(settings)
    if m.role not in roles:
        raise SignatureError(
            f"unknown_role: {m.role!r} is neither a shipped role nor one the trust store lists "
            f"({', '.join(sorted(roles))})"
        )
    remote = _git(workspace, "remote", "get-url", "origin")
    check_binding(m.workspace, workspace=workspace, remote=remote)
    session = m.session_id or new_session_id(now=now)
    budget = m.budget
    genesis: dict[str, object] = {
        "agent": agent or m.agent,
        "developer": resolve_developer(workspace, developer, m.developer),
        "workspace_binding": m.workspace,
        "git_remote": remote,
        "publisher": publisher,
        "signed_by": key_id,
        "allowed_tools": list(m.allowed_text),
        "forbidden_tools": list(m.forbidden_text),
        "budget": {"tool_calls": budget.tool_calls, "bytes_out": budget.bytes_out,
                   "duration_s": budget.duration_s},
        "on_drift": on_drift,
        "trackwrap": __version__,
        **extra,
    }
    ledger = _ledger(settings)
    try:
        ledger.start_session(session, genesis=genesis, workspace=workspace, kind="explicit",
                             role=m.role, manifest_digest=m.digest)
        recorded = ledger.session_state(session).genesis
    finally:
        ledger.close()
    return Started(session=session, genesis=dict(recorded))


@session_app.command("start")
def session_start(
    manifest: Annotated[Path | None, typer.Option(help="signed manifest (.dsse.json)")] = None,
    role: Annotated[str | None, typer.Option(help="a shipped role instead of a manifest")] = None,
    workspace: Annotated[str | None, typer.Option(help="default: current directory")] = None,
    developer: Annotated[str | None, typer.Option()] = None,
    agent: Annotated[str | None, typer.Option()] = None,
    on_drift: Annotated[str, typer.Option(help="deny (the call) or terminate (the session)")]
    = "deny",
) -> None:
    """Verify a manifest and bind a new session to the workspace."""
    settings = load_settings()
    started = start_session(
        settings, workspace=resolve_workspace(workspace),
        envelope=_read(manifest) if manifest is not None else None, role=role,
        developer=developer, agent=agent, on_drift=on_drift, source=str(manifest or role),
    )
    out.print(started.panel())


def _budget_text(budget: Any) -> str:
    parts = []
    if budget.get("tool_calls") is not None:
        parts.append(f"{budget['tool_calls']} tool calls")
    if budget.get("bytes_out") is not None:
        parts.append(f"{budget['bytes_out'] / 1048576:.1f} MiB out")
    if budget.get("duration_s") is not None:
        parts.append(f"{budget['duration_s'] // 60} min")
    return ", ".join(parts) or "none"


def _pick_session(ledger: Any, session: str | None, workspace: str | None) -> str:
    if session:
        return session
    ws = resolve_workspace(workspace)
    active = ledger.active_session(ws)
    if active is None:
        raise ConfigError(f"no active session for {ws}; give --session ID")
    return str(active)


@session_app.command("status")
def session_status(
    session: Annotated[str | None, typer.Option()] = None,
    workspace: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Budget used and left, counts, last decisions."""
    settings = load_settings()
    ledger = _ledger(settings)
    try:
        sid = _pick_session(ledger, session, workspace)
        state = ledger.session_state(sid)
        events = ledger.events(sid)
    finally:
        ledger.close()
    budget = state.genesis.get("budget") if isinstance(state.genesis.get("budget"), dict) else {}
    decisions = [e.body for e in events if e.body.get("kind") == "tool_call.decision"]
    denied = sum(1 for d in decisions if not d.get("forwarded"))
    calls = budget.get("tool_calls") if budget else None
    out_b = budget.get("bytes_out") if budget else None
    out.print(f"[bold]{sid}[/bold] ({state.kind}, role {state.role or '-'}) "
              f"{'closed: ' + str(state.close_reason) if state.closed else 'open'}")
    out.print(f"tool calls {state.tool_calls}{f'/{calls}' if calls else ''} forwarded, "
              f"{denied} denied; bytes out {state.bytes_out}{f'/{out_b}' if out_b else ''}")
    for body in decisions[-5:]:
        out.print(event_line(body, workspace=state.workspace))


@session_app.command("list")
def session_list(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per session")] = False,
) -> None:
    """Sessions, newest first."""
    settings = load_settings()
    ledger = _ledger(settings)
    try:
        states = ledger.list_sessions()
    finally:
        ledger.close()
    if as_json:
        for st in states:
            sys.stdout.write(json.dumps({
                "session": st.session, "kind": str(st.kind), "role": st.role,
                "workspace": st.workspace, "tool_calls": st.tool_calls,
                "bytes_out": st.bytes_out, "closed": st.closed,
                "close_reason": st.close_reason, "started_ms": st.started_ms,
            }) + "\n")
        return
    table = _table("session", "kind", "role", "workspace", "calls", "state")
    for s in states:
        table.add_row(s.session, s.kind, s.role or "-", s.workspace or "-", str(s.tool_calls),
                      f"closed ({s.close_reason})" if s.closed else "open")
    out.print(table)


@session_app.command("close")
def session_close(
    session: Annotated[str | None, typer.Option()] = None,
    workspace: Annotated[str | None, typer.Option()] = None,
    reason: Annotated[str, typer.Option()] = "closed by the developer",
) -> None:
    """Close a session with a final seal."""
    settings = load_settings()
    ledger = _ledger(settings)
    try:
        sid = _pick_session(ledger, session, workspace)
        seq = ledger.close_session(sid, reason=reason)
    finally:
        ledger.close()
    out.print(f"closed {sid} (final seal at seq {seq})")


# ----------------------------------------------------------------------------------------- pins

pins_app = typer.Typer(help="Pinned MCP tool sets: review and approve tool changes.",
                       no_args_is_help=True)


@pins_app.command("list")
def pins_list(server: Annotated[str | None, typer.Argument()] = None) -> None:
    """Pinned tools, and new or changed ones waiting for approval."""
    ledger = _ledger(load_settings())
    try:
        pins = ledger.pins(server)
    finally:
        ledger.close()
    table = _table("server", "tool", "state", "digest")
    for pin in pins:
        digest = pin.pending_digest or pin.digest or ""
        table.add_row(pin.server, pin.tool, pin.state, digest[:23])
    out.print(table)


@pins_app.command("approve")
def pins_approve(
    server: Annotated[str, typer.Argument()],
    tool: Annotated[str | None, typer.Argument()] = None,
) -> None:
    """Accept the new or changed version of a server's tool (or of all its held tools)."""
    ledger = _ledger(load_settings())
    try:
        names = ledger.approve_pins(server, tool)
    finally:
        ledger.close()
    if not names:
        raise ConfigError(f"nothing waits for approval on {server}{f' / {tool}' if tool else ''}")
    out.print(f"approved {', '.join(names)} on {server}; a wrapper lets them through at once")


@pins_app.command("sign")
def pins_sign(
    server: Annotated[str, typer.Argument()],
    key: Annotated[Path, typer.Option(help="the server publisher's private key file")],
    out_file: Annotated[Path | None, typer.Option("--out")] = None,
) -> None:
    """Sign the tool list a server offers now (as last seen by trackwrap), for `pins import`."""
    from trackwrap.manifest import sign_tool_list

    ledger = _ledger(load_settings())
    try:
        pins = ledger.pins(server)
    finally:
        ledger.close()
    digests = {p.tool: p.pending_digest or p.digest for p in pins if p.pending_digest or p.digest}
    if not digests:
        raise ConfigError(f"trackwrap has not seen {server}'s tools yet; list them first")
    target = out_file or Path(f"{server}.tools.dsse.json")
    target.write_bytes(sign_tool_list(server, {k: str(v) for k, v in digests.items()},
                                      key=load_private_key(key)))
    out.print(f"signed {len(digests)} tools of {server} -> {target}")


@pins_app.command("import")
def pins_import(
    server: Annotated[str, typer.Argument()],
    file: Annotated[Path, typer.Argument(help="a signed tool list (pins sign)")],
) -> None:
    """Accept a server's signed tool list (verified against the publishers pinned for it)."""
    from trackwrap.manifest import verify_tool_list

    settings = load_settings()
    keys = trust_store(settings).server_keys(server)
    if not keys:
        raise ConfigError(f"no publisher is pinned for {server}: trackwrap trust add "
                          f"--publisher NAME --key KEY --server {server}")
    envelope = _read(file)
    tools = verify_tool_list(envelope, server=server, keys=keys)
    target = signed_tools_path(settings, server)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(envelope)
    out.print(f"imported {len(tools)} signed tools of {server}")


@pins_app.command("revoke")
def pins_revoke(
    server: Annotated[str, typer.Argument()],
    tool: Annotated[str | None, typer.Argument()] = None,
) -> None:
    """Forget pins (the server's next listing is pinned afresh)."""
    ledger = _ledger(load_settings())
    try:
        count = ledger.revoke_pins(server, tool)
    finally:
        ledger.close()
    out.print(f"revoked {count} pin(s) of {server}")


# ---------------------------------------------------------------------------------------- token

token_app = typer.Typer(help="Execution tokens, for upstreams that check them.",
                        no_args_is_help=True)


@token_app.command("verify")
def token_verify(
    token: Annotated[str, typer.Argument()],
    server: Annotated[str, typer.Option()],
    tool: Annotated[str, typer.Option()],
    args: Annotated[str, typer.Option("--args", help="the call's arguments as JSON")] = "{}",
) -> None:
    """Check a token against an action: signature, expiry, and that it was issued for it."""
    from trackwrap.crypto import verify_token
    from trackwrap.policy import action_hash

    try:
        arguments = json.loads(args)
    except ValueError as exc:
        raise ConfigError(f"--args is not valid JSON: {exc}") from exc
    key = _keystore(load_settings()).device_key()
    claims = verify_token(token, keys={key.key_id: key.public_raw}, now_ms=_now_ms(),
                          action_hash=action_hash(server, tool, arguments))
    out.print(f"[green]valid[/green] token {claims.get('jti')} for session "
              f"{claims.get('session')} seq {claims.get('seq')}")


# ------------------------------------------------------------------------------------- diagnose

def diagnose(
    session: Annotated[str, typer.Argument(help="session id")],
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON")] = False,
) -> None:
    """What happened in a session, in causal order."""
    from trackwrap.diagnose import build_diagnosis
    from trackwrap.ledger import verify_ledger

    settings = load_settings()
    ledger = _ledger(settings)
    try:
        events = [e.body for e in ledger.events(session)]
    finally:
        ledger.close()
    if not events:
        raise LedgerError(f"no session {session} in {settings.ledger_path}")
    report = verify_ledger(settings.ledger_path, session=session)
    result = build_diagnosis(
        events, verdict=asdict(report.sessions[0]) if report.sessions else None
    )
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
        return
    render_diagnosis(result, out)


def render_diagnosis(d: dict[str, Any], console: Console) -> None:
    from rich.panel import Panel

    m = d["manifest"]
    console.print(Panel.fit(
        f"session    {d['session_id']}\nagent      {d['agent'] or '-'}\n"
        f"developer  {d['developer'] or '-'}\nrole       {m['role'] or '-'} / {m['workspace']}\n"
        f"publisher  {m['publisher'] or '-'} {m['signed_by'] or ''}\nduration   {d['duration']}\n"
        f"tool calls {d['tool_calls']['attempted']} attempted, "
        f"{d['tool_calls']['allowed']} allowed, {d['tool_calls']['denied']} denied"
        + (f", {held} held for approval" if (held := d['tool_calls'].get('held_for_approval'))
           else ""),
        title="diagnose",
    ))
    for e in d["events"]:
        line = Text(f"{e['t']}  ", style="dim")
        kind = e["kind"]
        style = {"drift_event": "bold yellow", "session_close": "bold blue",
                 "session_start": "bold blue"}.get(kind, "")
        if kind in ("tool_call", "decision"):
            style = {"allow": "green", "require_approval": "bold yellow"}.get(
                e.get("decision", ""), "bold red")
            line.append(f"{e.get('decision', '').upper():<6}", style=style)
            line.append(f" {e.get('tool', '')} {e.get('target', '')}  rule: {e.get('rule', '')}")
        else:
            line.append(kind, style=style)
            rest = {k: v for k, v in e.items() if k not in ("t", "kind")}
            line.append("  " + "  ".join(f"{k}: {v}" for k, v in rest.items()), style="dim")
        console.print(line)
    console.print(Text("\nWhat this means", style="bold"))
    for sentence in d["causal_chain"]:
        console.print(f" • {sentence}")
    anchor = d["audit_anchor"]
    console.print(f"\naudit anchor: chain tip {anchor.get('chain_tip')}, "
                  f"verified through seq {anchor.get('verified_through_seq')} "
                  f"({anchor.get('status')})", style="dim")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.add_typer(trust_app, name="trust")
    app.add_typer(manifest_app, name="manifest")
    app.add_typer(session_app, name="session")
    app.add_typer(token_app, name="token")
    app.add_typer(pins_app, name="pins")
    app.command("diagnose")(diagnose)
