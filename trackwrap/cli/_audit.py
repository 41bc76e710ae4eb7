"""``trackwrap audit show`` and ``trackwrap audit verify``."""

from __future__ import annotations

import base64
import binascii
import json
import sys
import time

from rich.console import Console
from rich.text import Text

from trackwrap.cli._render import event_line
from trackwrap.cli._settings import Settings
from trackwrap.crypto import SigningKey
from trackwrap.errors import ConfigError, KeyStoreError, SignatureError
from trackwrap.ledger import Ledger, StoredEvent, verify_ledger

__all__ = ["open_ledger_readonly", "show_events", "verify_command"]


def _no_signer() -> SigningKey:
    raise KeyStoreError("this command never seals")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def open_ledger_readonly(settings: Settings) -> Ledger:
    if not settings.ledger_path.exists():
        raise ConfigError(
            f"no audit ledger at {settings.ledger_path} yet (is TRACKWRAP_HOME right?)"
        )
    return Ledger.open(settings.ledger_path, signer=_no_signer, clock_ms=_now_ms)


def _print(event: StoredEvent, workspaces: dict[str, str], *, as_json: bool,
           console: Console) -> None:
    body = event.body
    if body.get("kind") == "session.start":
        workspaces[event.session] = str(body.get("workspace", ""))
    if as_json:
        sys.stdout.write(event.raw.decode("utf-8") + "\n")
        sys.stdout.flush()
        return
    line = Text(f"{event.session} #{event.seq:<4} ", style="dim")
    line.append_text(event_line(body, workspace=workspaces.get(event.session)))
    console.print(line, soft_wrap=True)


def show_events(
    settings: Settings, *, session: str | None, follow: bool, as_json: bool, console: Console
) -> None:
    ledger = open_ledger_readonly(settings)
    workspaces: dict[str, str] = {}
    last: dict[str, int] = {}
    try:
        while True:
            sessions = [session] if session else [s.session for s in ledger.session_ids()]
            for sid in sessions:
                for event in ledger.events(sid, after_seq=last.get(sid, -1)):
                    _print(event, workspaces, as_json=as_json, console=console)
                    last[sid] = event.seq
            if not follow:
                return
            time.sleep(0.5)
    except KeyboardInterrupt:
        return
    finally:
        ledger.close()


def _collector_keys(settings: Settings) -> dict[str, bytes] | None:
    """The pinned collector key (``collector.key``), to check receipts' signatures with."""
    from trackwrap.config import UserConfig
    from trackwrap.crypto import key_id_for

    text = UserConfig.load(settings.config_path).collector_key
    if text is None:
        return None
    try:
        raw = base64.b64decode(text.removeprefix("ed25519:"), validate=True)
        return {key_id_for(raw): raw}
    except (ValueError, SignatureError) as exc:
        raise ConfigError(f"collector.key is not an Ed25519 public key: {exc}") from exc


def _parse_keys(specs: list[str]) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for spec in specs:
        key_id, sep, b64 = spec.partition("=")
        try:
            raw = base64.b64decode(b64, validate=True) if sep else b""
        except binascii.Error:
            raw = b""
        if len(raw) != 32:
            raise ConfigError(f"--public-key {spec!r}: expected KEY_ID=BASE64 of 32 raw bytes")
        keys[key_id] = raw
    return keys


def verify_command(
    settings: Settings,
    *,
    session: str | None,
    public_keys: list[str],
    as_json: bool,
    console: Console,
) -> int:
    if not settings.ledger_path.exists():
        raise ConfigError(f"no audit ledger at {settings.ledger_path} to verify")
    trusted = _parse_keys(public_keys) if public_keys else None
    report = verify_ledger(settings.ledger_path, session=session, trusted_keys=trusted,
                           collector_keys=_collector_keys(settings))
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), ensure_ascii=False) + "\n")
        return report.exit_code
    if not report.sessions:
        console.print("no sessions to verify")
    for verdict in report.sessions:
        style = {"pass": "green", "warn": "yellow", "fail": "red"}[verdict.status]
        line = Text()
        line.append(f"{verdict.status.upper():<5}", style=f"bold {style}")
        line.append(f" {verdict.session}: {verdict.events} events, ")
        line.append(f"verified through seq {verdict.verified_through_seq}", style="bold")
        line.append(f", sealed through seq {verdict.sealed_through_seq}", style="dim")
        if verdict.witnessed_through_seq is not None:
            line.append(f", witnessed through seq {verdict.witnessed_through_seq}", style="bold")
        console.print(line)
        for issue in verdict.issues:
            console.print(
                Text(f"      {issue.severity} {issue.code} at seq {issue.seq}: {issue.detail}",
                     style=style)
            )
    return report.exit_code
