"""``trackwrap collector serve | token create|list|revoke | device add``.

The collector package (Starlette, and uvicorn or psycopg when used) is imported inside each
command, never when the CLI starts.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from trackwrap.cli._settings import load_settings
from trackwrap.errors import ConfigError, SignatureError

if TYPE_CHECKING:
    from trackwrap.collector import Storage

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

collector_app = typer.Typer(
    help="The central collector: serve it, and manage its tokens and device keys.",
    no_args_is_help=True, pretty_exceptions_show_locals=False)
token_app = typer.Typer(help="The collector's bearer tokens (shown once, kept as SHA-256).",
                        no_args_is_help=True, pretty_exceptions_show_locals=False)
device_app = typer.Typer(help="Devices' sealing keys, registered ahead of their first push.",
                         no_args_is_help=True, pretty_exceptions_show_locals=False)
collector_app.add_typer(token_app, name="token")
collector_app.add_typer(device_app, name="device")

DbOption = Annotated[str | None, typer.Option(
    "--db", help="SQLite file or postgresql://… URL (default: TRACKWRAP_HOME/collector.db)")]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _open(db: str | None) -> Storage:
    from trackwrap.collector import open_storage

    return open_storage(db or str(load_settings().home / "collector.db"))


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


@collector_app.command("serve")
def serve_command(  # noqa: PLR0917 - typer takes one parameter per option
    db: DbOption = None,
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on")] = "127.0.0.1:8750",
    tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM)")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM)")] = None,
    key: Annotated[Path | None, typer.Option(
        help="receipt-signing private key (base64, as `trackwrap keys generate` writes it); "
             "default: the storage's own, made on first start")] = None,
    max_body: Annotated[int | None, typer.Option(
        help="largest request body in bytes (default 1 MiB)")] = None,
    max_inflight: Annotated[int | None, typer.Option(
        help="concurrent ingest requests before answering 503 (default 32)")] = None,
) -> None:
    """Serve the collector until SIGTERM or SIGINT."""
    from trackwrap.collector import CollectorConfig, collector_key, parse_listen, serve

    host, port = parse_listen(listen)
    storage = _open(db)
    try:
        limits: dict[str, int] = {}
        if max_body is not None:
            limits["max_body"] = max_body
        if max_inflight is not None:
            limits["max_inflight"] = max_inflight
        config = CollectorConfig(storage=storage, key=collector_key(storage, key),
                                 clock_ms=_now_ms, **limits)

        def announce(line: str) -> None:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

        serve(config, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key,
              announce=announce)
    finally:
        storage.close()


@token_app.command("create")
def token_create(
    developer: Annotated[str, typer.Option(help="the person the token belongs to")],
    device: Annotated[str | None, typer.Option(
        help="the device an ingest token pushes for")] = None,
    scope: Annotated[list[str] | None, typer.Option(
        help="ingest, read or approve (repeatable; default ingest)")] = None,
    db: DbOption = None,
) -> None:
    """Make a token and print it once, alone on stdout."""
    from trackwrap.collector import issue_token, parse_scopes

    scopes = parse_scopes(scope or ["ingest"])
    token, record = issue_token(developer=developer, scopes=scopes, device=device,
                                now_ms=_now_ms())
    storage = _open(db)
    try:
        storage.add_token(record)
    finally:
        storage.close()
    sys.stdout.write(token + "\n")
    bound = f", device {device}" if device else ""
    err.print(f"token {record.id} for {developer} ({', '.join(scopes)}{bound}); it is shown "
              "only now", markup=False)


@token_app.command("list")
def token_list(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The collector's tokens (never their secrets)."""
    storage = _open(db)
    try:
        tokens = storage.tokens()
    finally:
        storage.close()
    if as_json:
        sys.stdout.write(json.dumps([t.to_json() for t in tokens], ensure_ascii=False) + "\n")
        return
    table = Table("id", "developer", "device", "scopes", "created", "revoked")
    for t in tokens:
        table.add_row(t.id, t.developer, t.device or "", ", ".join(t.scopes),
                      _when(t.created_ms), _when(t.revoked_ms))
    out.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="the token's id (tok_…)")],
    db: DbOption = None,
) -> None:
    """Revoke a token: it is refused (401) from its next request on."""
    storage = _open(db)
    try:
        found = storage.revoke_token(token_id, now_ms=_now_ms())
    finally:
        storage.close()
    if not found:
        raise ConfigError(f"no token {token_id}; see `trackwrap collector token list`")
    out.print(f"revoked {token_id}", markup=False)


@device_app.command("add")
def device_add(
    device: Annotated[str, typer.Argument(help="the device name its ingest token carries")],
    key: Annotated[str, typer.Option(help="its sealing key, ed25519:<base64>")],
    db: DbOption = None,
) -> None:
    """Register a device's sealing key before its first push (else the first push's key is
    trusted on first use)."""
    from trackwrap.collector import DeviceKey, parse_public_key

    try:
        key_id, raw = parse_public_key(key)
    except SignatureError as exc:
        raise ConfigError(f"--key: {exc}") from exc
    if not device.strip():
        raise ConfigError("a device name is a non-empty string")
    storage = _open(db)
    try:
        keys = storage.add_device_key(
            device, DeviceKey(key_id=key_id, public_raw=raw, registered_ms=_now_ms(),
                              how="admin"), only_if_none=False)
    finally:
        storage.close()
    out.print(f"device {device}: keys {', '.join(k.key_id for k in keys)}", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``collector`` to the top-level app."""
    app.add_typer(collector_app, name="collector")
