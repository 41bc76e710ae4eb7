"""``config`` (settings, the collector token in the keyring) and ``sync`` / ``sync status``."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from trackwrap.cli._collector_wiring import TOKEN_SECRET, collector_setup, run_sync, secret_store
from trackwrap.cli._settings import Settings, load_settings
from trackwrap.errors import ConfigError

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

config_app = typer.Typer(help="trackwrap's settings (the collector's URL; its token goes to "
                         "the OS keyring).", no_args_is_help=True)
sync_app = typer.Typer(help="Send sealed audit segments to the collector; see what is "
                       "witnessed.", invoke_without_command=True)


@config_app.command("set")
def config_set(
    key: Annotated[str, typer.Argument(help="collector.url | collector.device | "
                                            "collector.token | collector.key")],
    value: Annotated[str, typer.Argument(help="the value ('-' reads it from stdin)")],
) -> None:
    """Set one setting. ``collector.token`` is stored in the OS keyring, never in a file
    a config reader could leak (without a keyring: a 0600 file under the home's keys/)."""
    from trackwrap.config import UserConfig

    settings = load_settings()
    if value == "-":
        value = sys.stdin.readline().strip()
    if key == "collector.token":
        store = secret_store(settings, warn=lambda m: err.print(m, style="yellow"))
        store.set(TOKEN_SECRET, value.strip())
        out.print(f"collector.token stored in {store.where(TOKEN_SECRET)}")
        return
    config = UserConfig.load(settings.config_path).with_value(key, value)
    config.save(settings.config_path)
    out.print(f"{key} = {config.value(key)}  ({settings.config_path})")


@config_app.command("unset")
def config_unset(key: Annotated[str, typer.Argument()]) -> None:
    """Remove one setting (``collector.token`` from the keyring)."""
    from trackwrap.config import UserConfig

    settings = load_settings()
    if key == "collector.token":
        removed = secret_store(settings).delete(TOKEN_SECRET)
        out.print("collector.token removed" if removed else "collector.token was not set")
        return
    UserConfig.load(settings.config_path).with_value(key, None).save(settings.config_path)
    out.print(f"{key} unset")


@config_app.command("show")
def config_show() -> None:
    """Every setting (the token only as set / not set)."""
    from trackwrap.config import USER_KEYS, UserConfig

    settings = load_settings()
    config = UserConfig.load(settings.config_path)
    for key in USER_KEYS:
        out.print(f"{key:<18} {config.value(key) or '-'}")
    has_token = bool(os.environ.get("TRACKWRAP_COLLECTOR_TOKEN")
                     or secret_store(settings).get(TOKEN_SECRET))
    out.print(f"{'collector.token':<18} {'set' if has_token else '-'}")


def _open(settings: Settings) -> tuple[Any, Any]:
    """The ledger and this device's key."""
    from trackwrap.cli._session_cmds import _keystore, _ledger

    return _ledger(settings), _keystore(settings).device_key()


@sync_app.callback()
def sync(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Push every sealed segment the collector has not yet receipted, now."""
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings()
    setup = collector_setup(settings, os.environ)
    if setup is None:
        raise ConfigError("no collector configured: trackwrap config set collector.url URL")
    ledger, device = _open(settings)
    with ledger:
        report = run_sync(settings, ledger, device, setup)
    if as_json:
        sys.stdout.write(json.dumps({"ok": report.ok, "stopped": report.stopped,
                                     "sessions": [s.to_json() for s in report.sessions]}) + "\n")
    else:
        for s in report.sessions:
            line = (f"{s.session}: sent {s.sent} segment(s)"
                    + (f" ({s.duplicates} already held)" if s.duplicates else "")
                    + f", witnessed through seq {s.witnessed_through_seq}"
                    + (f", {s.pending_segments} pending" if s.pending_segments else ""))
            out.print(line + (f"  [red]{s.error}[/red]" if s.error else ""))
        if report.stopped:
            err.print(f"[red]sync stopped: {report.stopped}[/red]")
    raise typer.Exit(0 if report.ok else 1)


@sync_app.command("status")
def sync_status_command(
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """What the collector has witnessed and what is still to send, per session."""
    from trackwrap.sync import sync_status

    settings = load_settings()
    ledger, _device = _open(settings)
    with ledger:
        found = sync_status(ledger)
    if as_json:
        sys.stdout.write(json.dumps([s.to_json() for s in found]) + "\n")
        return
    for s in found:
        out.print(f"{s.session}: {s.events} events, sealed through seq {s.sealed_through_seq}, "
                  f"witnessed through seq {s.witnessed_through_seq}, "
                  f"{s.pending_segments} segment(s) pending")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
    app.add_typer(sync_app, name="sync")
