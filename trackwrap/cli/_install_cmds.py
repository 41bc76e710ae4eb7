"""``install`` and ``uninstall`` (trackwrap in front of the servers in MCP client configs) and
``secret set|list|delete`` (the tokens of wrapped servers, kept in the OS keyring)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text

from trackwrap.cli._install import (
    CLIENTS,
    HOOK_CLIENTS,
    FileReport,
    check_env_name,
    find_configs,
    forget_secret,
    install,
    install_hooks,
    list_secrets,
    looked_in,
    remember_secret,
    secret_name,
    uninstall,
    uninstall_hooks,
)
from trackwrap.cli._settings import Settings, load_settings
from trackwrap.errors import ConfigError, KeyStoreError

if TYPE_CHECKING:
    from trackwrap.crypto import SecretStore

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

_STATUS_STYLE = {"wrap": "green", "restore": "green", "already": "dim", "skip": "yellow",
                 "keep": "yellow"}
_DIFF_STYLE = {"+": "green", "-": "red", "@": "cyan"}

ClientOption = Annotated[
    list[str] | None,
    typer.Option("--client", metavar="CLIENT",
                 help=f"only this client (repeatable): {', '.join(CLIENTS)}"),
]
ProjectOption = Annotated[
    Path | None,
    typer.Option("--project", metavar="DIR",
                 help="the project whose .mcp.json, .cursor/ and .vscode/ configs to edit "
                 "(default: the current directory)"),
]
WriteOption = Annotated[
    bool, typer.Option("--write", help="change the files (default: only show the diff)")
]


def _clients(chosen: list[str] | None) -> list[str]:
    clients = list(dict.fromkeys(chosen or CLIENTS))
    unknown = [c for c in clients if c not in CLIENTS]
    if unknown:
        raise ConfigError(f"unknown client {unknown[0]!r}; use one of: {', '.join(CLIENTS)}")
    return clients


def _user_home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def _os_keyring(settings: Settings) -> tuple[SecretStore | None, str]:
    """The OS keyring as a secret store, or None and why it is not used."""
    if settings.key_backend == "file":
        return None, "TRACKWRAP_KEY_BACKEND=file (no OS keyring)"
    from trackwrap.crypto import SecretStore

    store = SecretStore(settings.home, backend="keyring", warn=lambda _m: None)
    try:
        store.where("probe")
    except KeyStoreError:
        return None, "no OS keyring backend"
    return store, ""


def _show(reports: list[FileReport], *, mention_empty: bool) -> bool:
    """Print each file's outcomes and diff; whether any file failed. Files with nothing to
    say are left out (``mention_empty``: except those without servers that should have some)."""
    failed = False
    for report in reports:
        quiet = report.config.quiet_if_empty or not mention_empty
        if not report.error and not report.outcomes and (quiet or not report.empty):
            continue
        out.print(Text(f"{report.shown}  ({CLIENTS.get(report.config.client, '')})",
                       style="bold"))
        if report.error:
            failed = True
            out.print(Text(f"  error: {report.error}", style="red"))
            continue
        if report.empty and not report.outcomes:
            out.print(Text("  no MCP servers in it", style="dim"))
        for outcome in report.outcomes:
            line = f"  {outcome.scope}.{outcome.server}: {outcome.detail}"
            out.print(Text(line, style=_STATUS_STYLE.get(outcome.status, "")))
            for note in outcome.notes:
                style = "yellow" if note.startswith(("leaving", "no OS", "TRACKWRAP_")) else ""
                out.print(Text(f"      {note}", style=style))
        for line in report.diff:
            style = "bold" if line.startswith(("---", "+++")) else _DIFF_STYLE.get(line[:1], "")
            out.print(Text(f"  {line}", style=style))
        if report.written:
            backup = f" (backup: {report.backup})" if report.backup else ""
            out.print(Text(f"  written{backup}", style="green"))
    return failed


def install_cmd(
    client: ClientOption = None,
    project: ProjectOption = None,
    write: WriteOption = False,
    hooks: Annotated[
        bool,
        typer.Option("--hooks", help="also add trackwrap's PreToolUse hook to Claude Code's "
                     "~/.claude/settings.json and Codex's ~/.codex/hooks.json, so their "
                     "built-in tools are governed too"),
    ] = False,
    trackwrap_path: Annotated[
        str | None,
        typer.Option("--trackwrap-path", metavar="PATH",
                     help="the command the clients start instead of `trackwrap` (an absolute "
                     "path when trackwrap is not on their PATH)"),
    ] = None,
) -> None:
    """Put trackwrap in front of every stdio MCP server in your clients' configs.

    Looks at Claude Code (~/.claude.json with its project scopes, .mcp.json,
    ~/.claude/settings.json), Claude Desktop, Codex (~/.codex/config.toml), Cursor
    (~/.cursor/mcp.json, .cursor/mcp.json), VS Code (.vscode/mcp.json) and Windsurf. Only
    `command` and `args` change (and tokens in `env` move to the OS keyring); the rest of each
    file stays byte for byte. Shows a diff; --write applies it, after a backup.
    """
    settings = load_settings()
    clients = _clients(client)
    home, where = _user_home(), (project or Path.cwd()).absolute()
    configs = find_configs(clients, home=home, project=where, platform=sys.platform,
                           environ=os.environ)
    command = trackwrap_path or "trackwrap"
    hook_reports = install_hooks([c for c in clients if c in HOOK_CLIENTS], home=settings.home,
                                 user_home=home, environ=os.environ, write=write,
                                 trackwrap=command) if hooks else []
    if not configs and not hook_reports:
        _nothing_found(clients, home, where)
        return
    keeper, why = _os_keyring(settings)
    reports = install(configs, home=settings.home, user_home=home, keeper=keeper, write=write,
                      trackwrap=command, no_keyring=why or "no OS keyring backend")
    failed = _show([*reports, *hook_reports], mention_empty=True)
    wrapped = sum(o.status == "wrap" for r in reports for o in r.outcomes)
    hooked = sum(o.status == "wrap" for r in hook_reports for o in r.outcomes)
    changed = [r for r in [*reports, *hook_reports] if r.changed]
    if wrapped or hooked:
        note = (f"The clients will start `{command}`: it must be on the PATH they start servers "
                "with (Claude Desktop's is short), or give --trackwrap-path /absolute/path.")
        if trackwrap_path is None and shutil.which("trackwrap") is None:
            note += " It is not on this shell's PATH" + _this_executable() + "."
        out.print(note)
    if changed and not write:
        out.print("Dry run: nothing was changed. Run `trackwrap install --write"
                  + (" --hooks" if hooks else "") + "` to apply this (each file is backed up "
                  "first).")
    elif changed:
        done = [f"wrapped {wrapped} server(s)"] if wrapped else []
        done += [f"added {hooked} hook(s)"] if hooked else []
        out.print(f"{' and '.join(done).capitalize()} in {len(changed)} file(s). Restart your "
                  "MCP clients; quit Claude Desktop before --write, as it rewrites its config "
                  "while it runs. `trackwrap uninstall --write` puts everything back.")
    elif not failed:
        out.print("Nothing to change.")
    raise typer.Exit(1 if failed else 0)


def uninstall_cmd(
    client: ClientOption = None,
    project: ProjectOption = None,
    write: WriteOption = False,
) -> None:
    """Take trackwrap out of the configs `trackwrap install --write` changed.

    Every server it wrapped gets its original command, args and env back, byte for byte as
    they were (moved tokens come back from the OS keyring), unless it was changed since; the
    hooks `--hooks` added are taken out. Shows a diff; --write applies it, after a backup.
    """
    settings = load_settings()
    clients = _clients(client)
    home, where = _user_home(), (project or Path.cwd()).absolute()
    configs = find_configs(clients, home=home, project=where, platform=sys.platform,
                           environ=os.environ)
    keeper, _why = _os_keyring(settings)
    reports = uninstall(configs, clients=clients, home=settings.home, user_home=home,
                        keeper=keeper, write=write)
    reports += uninstall_hooks(clients, home=settings.home, user_home=home, write=write)
    failed = _show(reports, mention_empty=False)
    restored = sum(o.status == "restore" for r in reports for o in r.outcomes
                   if o.scope != "hooks")
    unhooked = sum(o.status == "restore" for r in reports for o in r.outcomes
                   if o.scope == "hooks")
    if not configs and not reports:
        _nothing_found(clients, home, where)
    elif (restored or unhooked) and not write:
        out.print("Dry run: nothing was changed. Run `trackwrap uninstall --write` to apply "
                  "this (each file is backed up first).")
    elif restored or unhooked:
        done = [f"unwrapped {restored} server(s)"] if restored else []
        done += [f"removed {unhooked} hook(s)"] if unhooked else []
        out.print(f"{' and '.join(done).capitalize()}. Restart your MCP clients.")
    elif not failed:
        out.print("Nothing to put back.")
    raise typer.Exit(1 if failed else 0)


def _this_executable() -> str:
    """``: this one is PATH`` when this process was started as a ``trackwrap`` script."""
    path = Path(sys.argv[0]).absolute() if sys.argv and sys.argv[0] else None
    if path is not None and path.name in ("trackwrap", "trackwrap.exe") and path.is_file():
        return f"; this one is --trackwrap-path {path}"
    return ""


def _nothing_found(clients: list[str], home: Path, project: Path) -> None:
    paths = looked_in(clients, home=home, project=project, platform=sys.platform,
                      environ=os.environ)
    out.print("No MCP client config found. Looked in:")
    for path in paths:
        out.print(f"  {path}")


# ----------------------------------------------------------------------------------- secrets

secret_app = typer.Typer(help="Tokens of wrapped servers, kept in the OS keyring instead of "
                         "config files.", no_args_is_help=True)


def _store(settings: Settings) -> SecretStore:
    from trackwrap.crypto import SecretStore

    return SecretStore(settings.home, backend=settings.key_backend,
                       warn=lambda m: err.print(Text(m, style="yellow")))


def _read_value(value: str | None, key: str, server: str) -> str:
    if value == "-" or (value is None and not sys.stdin.isatty()):
        return sys.stdin.readline().rstrip("\r\n")
    if value is None:
        return str(typer.prompt(f"{key} for {server}", hide_input=True))
    return value


@secret_app.command("set")
def secret_set(
    server: Annotated[str, typer.Argument(help="the server's name (its --server)")],
    key: Annotated[str, typer.Argument(help="the environment variable, e.g. GITHUB_TOKEN")],
    value: Annotated[
        str | None,
        typer.Argument(help="the value; '-' reads one line from stdin; none: a hidden prompt"),
    ] = None,
) -> None:
    """Store a token that the wrapper puts into a server's environment (`--secret KEY`)."""
    settings = load_settings()
    name = secret_name(server, check_env_name(key))
    secret = _read_value(value, key, server)
    store = _store(settings)
    remember_secret(settings.home, server, key)
    try:
        store.set(name, secret)
    except KeyStoreError:
        forget_secret(settings.home, name)
        raise
    out.print(f"{key} for {server} stored in {store.where(name)}; a wrapper started with "
              f"--server {server} --secret {key} passes it to the server")


@secret_app.command("list")
def secret_list() -> None:
    """The stored server tokens, by server and variable (never their values)."""
    settings = load_settings()
    rows = list_secrets(settings.home)
    if not rows:
        out.print("No server secrets stored.")
        return
    width = max(len(server) for server, _key, _name in rows)
    for server, key, _name in rows:
        out.print(f"{server:<{width}}  {key}")


@secret_app.command("delete")
def secret_delete(
    server: Annotated[str, typer.Argument(help="the server's name")],
    key: Annotated[str, typer.Argument(help="the environment variable")],
) -> None:
    """Forget a stored server token."""
    settings = load_settings()
    name = secret_name(server, check_env_name(key))
    removed = _store(settings).delete(name)
    forget_secret(settings.home, name)
    out.print(f"{key} for {server} deleted" if removed else f"{key} for {server} was not stored")


def register(app: typer.Typer) -> None:
    """Add ``install``, ``uninstall`` and ``secret`` to the app."""
    app.command("install")(install_cmd)
    app.command("uninstall")(uninstall_cmd)
    app.add_typer(secret_app, name="secret")
