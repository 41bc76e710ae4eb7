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


# ----------------------------------------------------------------------------------- commands

approvals_app = typer.Typer(help="Calls waiting for a person's approval, and the decisions.",
                            no_args_is_help=True)


def _ledger_and_key(settings: Settings) -> tuple[Ledger, SigningKey]:
    from trackwrap.crypto import KeyStore
    from trackwrap.ledger import Ledger

    keys = KeyStore(settings.home, backend=settings.key_backend,
                    warn=lambda m: print(m, file=sys.stderr))  # noqa: T201 - stderr
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


@approvals_app.command("list")
def approvals_list(
    pending: Annotated[bool, typer.Option("--pending", help="only those waiting")] = False,
    session: Annotated[str | None, typer.Option(help="only this session's")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
) -> None:
    """Approval requests, newest first (an open one past its time shows as expired)."""
    settings = load_settings()
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


def _decide(approval_id: str, *, verdict: str, reason: str, key_file: Path | None,
            name: str | None) -> None:
    from trackwrap.approvals import verify_decision

    settings = load_settings()
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
) -> None:
    """Approve a pending call: the same call then goes through, once."""
    _decide(approval_id, verdict="approve", reason=reason, key_file=key, name=name)


def deny(
    approval_id: Annotated[str, typer.Argument(help="the approval id (apr-…)")],
    reason: Annotated[str, typer.Option(help="why (the agent is told)")],
    key: Annotated[Path | None, typer.Option(help="approver's private key file")] = None,
    name: Annotated[str | None, typer.Option("--as", help="your name (device key only)")] = None,
) -> None:
    """Deny a pending call: the agent is told why."""
    if not reason.strip():
        raise ConfigError("deny needs a --reason the agent can read")
    _decide(approval_id, verdict="deny", reason=reason, key_file=key, name=name)


def register(app: typer.Typer) -> None:
    app.add_typer(approvals_app, name="approvals")
    app.command("approve")(approve)
    app.command("deny")(deny)
