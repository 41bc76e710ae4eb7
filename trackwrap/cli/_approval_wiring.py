"""How the wrapper and the CLI find the approval desk, its settings and its notifier.

Kept free of typer and rich: the wrapper imports it while it starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from trackwrap.cli._roles import trust_store
from trackwrap.cli._settings import Settings

if TYPE_CHECKING:
    from trackwrap.approvals import (
        ApprovalDesk,
        ApprovalSettings,
        ApproverKey,
        CallForApproval,
        Delivery,
    )
    from trackwrap.crypto import SigningKey
    from trackwrap.ledger import ApprovalRecord, Ledger

__all__ = ["approval_desk", "approval_settings", "approver_keys", "make_notifier", "now_ms"]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def approvals_path(settings: Settings) -> Path:
    return settings.home / "approvals.yaml"


def approval_settings(settings: Settings, environ: Mapping[str, str]) -> ApprovalSettings:
    """``TRACKWRAP_HOME/approvals.yaml`` (defaults when it does not exist)."""
    from trackwrap.approvals import load_approval_settings

    return load_approval_settings(approvals_path(settings), environ=environ)


def approver_keys(settings: Settings, device: SigningKey) -> dict[str, ApproverKey]:
    """Keys whose decisions may count: the trusted approvers, and this device's own key."""
    from trackwrap.approvals import ApproverKey

    keys = {
        a.key_id: ApproverKey(name=a.name, key=a.key, groups=a.groups)
        for a in trust_store(settings).approvers
    }
    # This device's key speaks for the requester, even if it is also listed as an approver.
    listed = keys.get(device.key_id)
    keys[device.key_id] = ApproverKey(
        name=listed.name if listed else "this device", key=device.public_raw,
        groups=listed.groups if listed else (), device=True,
    )
    return keys


def approval_desk(settings: Settings, ledger: Ledger, device: SigningKey) -> ApprovalDesk:
    """The desk over the local ledger, trusting the approvers of the trust store as it is when
    a decision is checked."""
    from trackwrap.approvals import ApprovalDesk, LedgerApprovals

    return ApprovalDesk(LedgerApprovals(ledger), keys=lambda: approver_keys(settings, device),
                        clock_ms=now_ms)


def make_notifier(
    config: ApprovalSettings,
) -> Callable[[CallForApproval, ApprovalRecord], Sequence[Delivery]] | None:
    """Delivers a new approval request to the rule's channels (else the configured default
    ones); None when no channel is configured at all."""
    if not config.channels:
        return None

    def notify(call: CallForApproval, record: ApprovalRecord) -> Sequence[Delivery]:
        from trackwrap.approvals import ApprovalNotice, Delivery, notify_all

        unknown = config.unknown(call.notify)
        deliveries = [Delivery(channel=name, ok=False, attempts=0, status=None,
                               error="no such channel in approvals.yaml") for name in unknown]
        notice = ApprovalNotice(
            approval_id=record.id, session=call.session, requester=call.requester,
            server=call.server, tool=call.tool, kind=call.kind, target=call.target,
            summary=call.summary, action_hash=call.action_hash, rule=call.rule,
            reason=call.reason, approvers=call.approvers, workspace=call.workspace,
            requested_ms=record.requested_ms, expires_ms=record.expires_ms,
        )
        return deliveries + notify_all(config.channels_for(call.notify), notice)

    return notify
