"""``approvals list``, ``approve`` and ``deny``.

A decision is signed here with the approver's key (``--key FILE``, a trusted approver's private
key from ``keys generate``; by default this device's key, whose decisions are the requester's
own) and checked with the same rules the waiting wrapper applies before it is recorded; the
wrapper checks it again before it counts.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from trackwrap.cli._approval_wiring import approval_desk, approver_keys, now_ms
from trackwrap.cli._settings import Settings, load_settings
from trackwrap.errors import ConfigError, SignatureError

if TYPE_CHECKING:
    from trackwrap.crypto import SigningKey
    from trackwrap.ledger import ApprovalRecord, Ledger

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


# ----------------------------------------------------------------------------------- commands

approvals_app = typer.Typer(help="Calls waiting for a person's approval, and the decisions.",
                            no_args_is_help=True)


def _ledger_and_key(settings: Settings) -> tuple[Ledger, SigningKey]:
    from trackwrap.crypto import KeyStore
    from trackwrap.ledger import Ledger

    keys = KeyStore(settings.home, backend=settings.key_backend,
                    warn=lambda m: err.print(m, style="yellow", markup=False))
    device = keys.device_key()
    return Ledger.open(settings.ledger_path, signer=lambda: device, clock_ms=now_ms), device


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _left(record: ApprovalRecord, now_ms: int) -> str:
    if record.state != "pending":
        return ""
    seconds = max(0, (record.expires_ms - now_ms) // 1000)
    return f"{seconds // 60}m{seconds % 60:02d}s left"


def approval_json(record: ApprovalRecord) -> dict[str, Any]:
    """The stable JSON form of one approval (``approvals list --json``)."""
    from trackwrap.approvals import decision_of

    decision = decision_of(record)
    return {
        "id": record.id,
        "state": record.state,
        "session": record.session,
        "action_hash": record.action_hash,
        "requested_at": _when(record.requested_ms),
        "expires_at": _when(record.expires_ms),
        **{key: record.request.get(key) for key in (
            "requester", "server", "tool", "action_kind", "target", "args", "rule", "reason",
            "approvers", "separate_approver")},
        "decision": None if decision is None else {
            "verdict": decision.verdict, "approver": decision.approver,
            "reason": decision.reason, "key_id": decision.key_id,
            "decided_at": _when(decision.decided_ms),
        },
        "redeemed_by": record.redeemed_by,
    }


def _remote_client(settings: Settings) -> Any:
    import os

    from trackwrap.cli._collector_wiring import collector_setup

    setup = collector_setup(settings, os.environ)
    if setup is None:
        raise ConfigError("no collector configured: trackwrap config set collector.url URL")
    return setup.client()


def _remote_record(found: dict[str, Any]) -> ApprovalRecord:
    """An approval as the collector serves it, in the shape decisions are signed over."""
    from trackwrap.ledger import ApprovalRecord

    try:
        return ApprovalRecord(
            id=str(found["id"]), session=str(found["session"]),
            action_hash=str(found["action_hash"]), state=str(found["state"]),
            requested_ms=int(found["requested_ms"]), expires_ms=int(found["expires_ms"]),
            request=dict(found.get("request") or {}),
            decision=found.get("decision") if isinstance(found.get("decision"), str) else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"the collector sent a malformed approval: {exc}") from exc


@approvals_app.command("list")
def approvals_list(
    pending: Annotated[bool, typer.Option("--pending", help="only those waiting")] = False,
    session: Annotated[str | None, typer.Option(help="only this session's")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
    remote: Annotated[bool, typer.Option("--remote", help="those the collector holds")] = False,
) -> None:
    """Approval requests, newest first (an open one past its time shows as expired)."""
    settings = load_settings()
    if remote:
        with _remote_client(settings) as client:
            found = client.approvals(state="pending" if pending else None)
        records = [_remote_record(a) for a in found]
        if session is not None:
            records = [r for r in records if r.session == session]
    else:
        ledger, device = _ledger_and_key(settings)
        with ledger:
            desk = approval_desk(settings, ledger, device)
            records = [desk.refresh(r) for r in desk.store.list(
                states=("pending",) if pending else None, session=session)]
    if pending:
        records = [r for r in records if r.state == "pending"]
    if as_json:
        for record in records:
            sys.stdout.write(json.dumps(approval_json(record), ensure_ascii=False) + "\n")
        return
    if not records:
        out.print("no approvals" + (" pending" if pending else ""))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table("id", "state", "requester", "call", "rule", "when")
    now = now_ms()
    for record in records:
        info = approval_json(record)
        decided = info["decision"]
        when = _left(record, now) or (
            f"by {decided['approver']}" if decided else _when(record.expires_ms))
        call = f"{info['action_kind']} {info['target']}".strip()
        table.add_row(record.id, record.state, escape(str(info["requester"])), escape(call),
                      str(info["rule"]), escape(when))
    out.print(table)


def _decide_remote(settings: Settings, approval_id: str, *, verdict: str, reason: str,
                   key_file: Path | None, name: str | None) -> None:
    """Sign a decision here and record it at the collector, whose waiting wrapper verifies it."""
    from trackwrap.approvals import sign_decision
    from trackwrap.cli._roles import trust_store
    from trackwrap.cli._session_cmds import load_private_key

    if key_file is None:
        raise ConfigError("deciding at the collector needs your approver key: --key FILE")
    key = load_private_key(key_file)
    listed = next((a for a in trust_store(settings).approvers if a.key_id == key.key_id), None)
    approver = name or (listed.name if listed else None)
    if approver is None:
        raise ConfigError("say who you are: --as NAME (the name your approve token was "
                          "created for)")
    with _remote_client(settings) as client:
        record = _remote_record(client.approval(approval_id))
        if record.state != "pending":
            raise ConfigError(f"approval {approval_id} is {record.state}, not pending")
        signed = sign_decision(key, record, verdict=verdict, approver=approver, reason=reason,
                               decided_ms=now_ms())
        client.decide(approval_id, signed.envelope)
    word = "approved" if verdict == "approve" else "denied"
    out.print(f"{word} {approval_id} at the collector ({record.request.get('action_kind')} "
              f"{record.request.get('target')}) as {approver}")


def _decide(approval_id: str, *, verdict: str, reason: str, key_file: Path | None,
            name: str | None, remote: bool = False) -> None:
    from trackwrap.approvals import verify_decision

    settings = load_settings()
    if remote:
        _decide_remote(settings, approval_id, verdict=verdict, reason=reason,
                       key_file=key_file, name=name)
        return
    ledger, device = _ledger_and_key(settings)
    with ledger:
        key = device
        if key_file is not None:
            from trackwrap.cli._session_cmds import load_private_key

            key = load_private_key(key_file)
        keys = approver_keys(settings, device)
        signer = keys.get(key.key_id)
        if signer is None:
            raise ConfigError(f"key {key.key_id} is not a trusted approver; add it with "
                              "`trackwrap trust add-approver NAME --key ed25519:…`")
        if signer.device:
            from trackwrap.cli._session_cmds import resolve_developer

            approver = resolve_developer(str(Path.cwd()), name, None)
        else:
            approver = signer.name
            if name is not None and name != signer.name:
                raise ConfigError(f"this key belongs to approver {signer.name!r}, not {name!r}")
        desk = approval_desk(settings, ledger, device)
        record = desk.store.get(approval_id)
        if record is None:
            raise ConfigError(f"no approval {approval_id} (see `trackwrap approvals list`)")
        requester = str(record.request.get("requester") or "")
        from trackwrap.approvals import sign_decision

        trial = sign_decision(key, record, verdict=verdict, approver=approver, reason=reason,
                              decided_ms=now_ms())
        try:
            verify_decision(trial.envelope, record, keys=keys, requester=requester)
        except SignatureError as exc:
            raise ConfigError(f"this decision would not count: {exc}") from exc
        done = desk.decide(approval_id, key=key, verdict=verdict, approver=approver,
                           reason=reason)
    word = "approved" if verdict == "approve" else "denied"
    out.print(f"{word} {done.id} ({done.request.get('action_kind')} "
              f"{done.request.get('target')}) as {approver}")


def approve(
    approval_id: Annotated[str, typer.Argument(help="the approval id (apr-…)")],
    reason: Annotated[str, typer.Option(help="why (recorded and signed)")] = "",
    key: Annotated[Path | None, typer.Option(help="approver's private key file")] = None,
    name: Annotated[str | None, typer.Option("--as", help="your name (device key only)")] = None,
    remote: Annotated[bool, typer.Option("--remote", help="decide at the collector")] = False,
) -> None:
    """Approve a pending call: the same call then goes through, once."""
    _decide(approval_id, verdict="approve", reason=reason, key_file=key, name=name,
            remote=remote)


def deny(
    approval_id: Annotated[str, typer.Argument(help="the approval id (apr-…)")],
    reason: Annotated[str, typer.Option(help="why (the agent is told)")],
    key: Annotated[Path | None, typer.Option(help="approver's private key file")] = None,
    name: Annotated[str | None, typer.Option("--as", help="your name (device key only)")] = None,
    remote: Annotated[bool, typer.Option("--remote", help="decide at the collector")] = False,
) -> None:
    """Deny a pending call: the agent is told why."""
    if not reason.strip():
        raise ConfigError("deny needs a --reason the agent can read")
    _decide(approval_id, verdict="deny", reason=reason, key_file=key, name=name, remote=remote)


def register(app: typer.Typer) -> None:
    app.add_typer(approvals_app, name="approvals")
    app.command("approve")(approve)
    app.command("deny")(deny)
