"""The typer application: ``check``, ``audit show|verify``, ``demo``, ``version``."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.exceptions import TyperException

from trackwrap import __version__
from trackwrap.cli._approval_cmds import register as register_approvals
from trackwrap.cli._collector_cmds import register as register_collector
from trackwrap.cli._doctor import register as register_doctor
from trackwrap.cli._hook import register as register_hook
from trackwrap.cli._install_cmds import register as register_install
from trackwrap.cli._render import event_line
from trackwrap.cli._session_cmds import register
from trackwrap.cli._settings import load_settings, resolve_workspace
from trackwrap.cli._sync_cmds import register as register_sync
from trackwrap.cli._usage import HELP
from trackwrap.cli._watch import register as register_watch
from trackwrap.errors import ConfigError, Error

__all__ = ["app", "run_app"]


app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,
)
audit_app = typer.Typer(help="Show and verify the audit ledger.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
register(app)
register_approvals(app)
register_collector(app)
register_sync(app)
register_doctor(app)
register_hook(app)
register_install(app)
register_watch(app)

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)


@app.command()
def version() -> None:
    """Print trackwrap's version."""
    out_console.print(f"trackwrap {__version__}")


@app.command()
def check(
    server: Annotated[str, typer.Option(help="server profile name, e.g. filesystem")],
    tool: Annotated[str, typer.Option(help="tool name as the upstream calls it")],
    args: Annotated[str, typer.Option("--args", help="tool arguments as a JSON object")] = "{}",
    workspace: Annotated[str | None, typer.Option(help="workspace directory")] = None,
    policy: Annotated[list[Path] | None, typer.Option(help="policy file(s) or dir")] = None,
    mode: Annotated[str | None, typer.Option(help="enforce or monitor")] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="hold the call to this signed manifest as well")
    ] = None,
    role: Annotated[str | None, typer.Option(help="… or to this shipped role")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for machines")] = False,
    at: Annotated[
        str | None,
        typer.Option(help="evaluate as at this ISO-8601 time with offset, e.g. "
                     "2026-05-05T21:30:00+02:00"),
    ] = None,
) -> None:
    """Evaluate one call through the pipeline, without any upstream and without recording.

    Exit code: 0 when the call would be forwarded, 1 when it would not, 2 on bad input.
    """
    from trackwrap.cli._build import build_governance, context_factory

    try:
        arguments = json.loads(args)
    except ValueError as exc:
        raise ConfigError(f"--args is not valid JSON: {exc}") from exc
    moment = _moment(at) if at is not None else None
    governance = build_governance(policy_paths=policy or [], mode=mode)
    ws = resolve_workspace(workspace)
    pipeline = governance.pipeline
    if manifest is not None or role is not None:
        pipeline = _scoped_pipeline(governance, manifest=manifest, role=role, workspace=ws)
    clock = (lambda: moment) if moment is not None else None
    context = context_factory(workspace=ws, clock=clock)()
    decision = pipeline.evaluate(server=server, tool=tool, arguments=arguments, context=context)
    if as_json:
        sys.stdout.write(json.dumps(decision.to_json(), ensure_ascii=False) + "\n")
    else:
        body = {
            "kind": "tool_call.decision",
            "decision": decision.outcome.value,
            "enforced": decision.enforced,
            "action_kind": decision.kind,
            "target": decision.action.target() if decision.action else "",
            "rule": decision.rule,
            "reason": decision.reason,
            "trace": "(dry run)",
        }
        out_console.print(event_line(body, workspace=ws), soft_wrap=True)
        for f in decision.findings:
            tags = ", ".join(t for t in (f.attack, f.owasp) if t)
            out_console.print(f"  finding {f.rule} ({f.inspector}, {f.confidence:.2f}) {tags}")
    forwarded = decision.outcome.value in ("allow", "redact") or not decision.enforced
    raise typer.Exit(0 if forwarded else 1)


def _moment(text: str) -> datetime:
    """``--at``: an ISO-8601 timestamp that names its UTC offset."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--at must be an ISO-8601 time such as 2026-05-05T21:30:00+02:00, not {text!r}"
        ) from None
    if moment.utcoffset() is None:
        raise ConfigError(
            f"--at {text!r} has no UTC offset: add one, e.g. {text}+02:00 or {text}Z"
        )
    return moment


def _scoped_pipeline(
    governance: Any, *, manifest: Path | None, role: str | None, workspace: str
) -> Any:
    """The pipeline with a manifest's scope as stage 2, as a session started with it has."""
    from datetime import UTC

    from trackwrap.cli._roles import known_roles, role_manifest, trust_store
    from trackwrap.manifest import ManifestScope, verify_manifest
    from trackwrap.policy import Pipeline

    if (manifest is None) == (role is None):
        raise ConfigError("give at most one of --manifest FILE or --role ROLE")
    settings = load_settings()
    if manifest is not None:
        try:
            envelope = manifest.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {manifest}: {exc.strerror}") from exc
        held = verify_manifest(envelope, trust=trust_store(settings), now=datetime.now(UTC),
                               source=str(manifest)).manifest
    else:
        held = role_manifest(str(role), workspace=workspace)
    return Pipeline(
        profiles=governance.profiles, policy=governance.policy,
        inspectors=governance.inspectors,
        scope=ManifestScope(held, known_roles=known_roles(settings)),
    )


@audit_app.command("show")
def audit_show(
    session: Annotated[str | None, typer.Option(help="only this session")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing new events")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON event per line")] = False,
) -> None:
    """Print recorded decisions, oldest first."""
    from trackwrap.cli._audit import show_events

    show_events(load_settings(), session=session, follow=follow, as_json=as_json,
                console=out_console)


@audit_app.command("verify")
def audit_verify(
    session: Annotated[str | None, typer.Option(help="only this session")] = None,
    public_key: Annotated[
        list[str] | None,
        typer.Option(help="trusted seal key as KEY_ID=BASE64 (default: keys the ledger lists)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Verify the hash chain and seals. Exit 0 pass, 1 integrity failure, 2 pass with warnings."""
    from trackwrap.cli._audit import verify_command

    code = verify_command(load_settings(), session=session, public_keys=public_key or [],
                          as_json=as_json, console=out_console)
    raise typer.Exit(code)


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(help="keep the throwaway workspace")] = False,
) -> None:
    """A scripted agent session against real MCP servers, governed by trackwrap."""
    from trackwrap.cli._demo import run_demo

    raise typer.Exit(run_demo(load_settings(), console=out_console, keep=keep))


def run_app(argv: list[str]) -> int:
    try:
        code = app(args=argv, prog_name="trackwrap", standalone_mode=False)
    except Error as err:
        err_console.print(f"[red]trackwrap: error:[/red] {escape(err.diagnostics())}",
                          markup=True)
        return err.exit_code
    except typer.Exit as done:
        return int(done.exit_code)
    except typer.Abort:
        err_console.print("[red]aborted[/red]")
        return 130
    except TyperException as exc:
        # Usage errors (a missing option, an unknown command): click's own message and code.
        show = getattr(exc, "show", None)
        code = getattr(exc, "exit_code", 2)
        if callable(show):
            show()
        return code if isinstance(code, int) else 2
    return code if isinstance(code, int) else 0
