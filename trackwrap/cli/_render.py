"""How ledger events look on a terminal. Untrusted text is escaped before it is rendered."""

from __future__ import annotations

import os
from collections.abc import Mapping

from rich.text import Text

__all__ = ["OUTCOME_STYLE", "event_line", "short_target"]

OUTCOME_STYLE = {
    "allow": "bold green",
    "redact": "bold cyan",
    "require_approval": "bold yellow",
    "deny": "bold red",
}


def _clean(text: str) -> str:
    """Make control characters (ANSI escapes included) visible instead of interpreting them."""
    return "".join(ch if ch.isprintable() or ch == " " else f"\\x{ord(ch):02x}" for ch in text)


def short_target(target: str, workspace: str | None) -> str:
    if workspace and os.path.isabs(target):
        try:
            rel = os.path.relpath(target, workspace)
        except ValueError:
            return target
        if not rel.startswith(".."):
            return rel
    return target


def event_line(body: Mapping[str, object], *, workspace: str | None = None) -> Text:
    """``ALLOW filesystem.read api/handlers.py  rule: WORKSPACE-READ-ALLOW  trace: tr-…``"""
    kind = str(body.get("kind", ""))
    line = Text()
    if kind == "tool_call.decision":
        outcome = str(body.get("decision", ""))
        label = outcome.upper().replace("_", " ")
        if not body.get("enforced", True):
            label = f"{label} (monitor)"
        line.append(f"{label:<6}", style=OUTCOME_STYLE.get(outcome, "bold"))
        line.append(f" {_clean(str(body.get('action_kind', '')))}", style="bold")
        target = short_target(str(body.get("target", "")), workspace)
        if target:
            line.append(f" {_clean(target)}")
        line.append("  rule: ", style="dim")
        line.append(_clean(str(body.get("rule", ""))))
        drift = body.get("drift")
        if isinstance(drift, Mapping):
            line.append(f" ({_clean(str(drift.get('type', '')))})", style="yellow")
        findings = body.get("findings")
        others = sorted({
            str(f.get("rule")) for f in findings if isinstance(f, Mapping)
        } - {str(body.get("rule"))}) if isinstance(findings, list) else []
        if others and outcome != "allow":
            line.append(f"  also: {', '.join(_clean(r) for r in others)}", style="yellow")
        line.append("  trace: ", style="dim")
        line.append(_clean(str(body.get("trace", ""))))
        if body.get("approval_id"):
            line.append(f"  approval: {_clean(str(body.get('approval_id')))}", style="yellow")
        if outcome != "allow" or body.get("approval_id"):
            line.append(f"\n       {_clean(str(body.get('reason', '')))}", style="dim")
        return line
    if kind.startswith("approval."):
        return _approval_line(kind, body)
    if kind == "segment.seal":
        final = " (final)" if body.get("final") else ""
        line.append("SEAL  ", style="bold blue")
        line.append(
            f"segment {body.get('segment')} through seq {body.get('tree_size', 0)}{final}"
            f"  key: {_clean(str(body.get('key_id', '')))}",
            style="dim",
        )
        return line
    if kind == "session.start":
        line.append("START ", style="bold blue")
        line.append(f"session {_clean(str(body.get('session', '')))}")
        line.append(f"  workspace: {_clean(str(body.get('workspace', '')))}", style="dim")
        return line
    line.append(f"{_clean(kind.upper())[:6]:<6}", style="bold blue")
    line.append(f" seq {body.get('seq')}", style="dim")
    return line


_APPROVAL_WORDS = {
    "approval.requested": ("ASK", "bold yellow"),
    "approval.notified": ("NOTIFY", "dim"),
    "approval.decided": ("DECIDE", "bold"),
    "approval.redeemed": ("REDEEM", "bold green"),
    "approval.expired": ("EXPIRE", "bold red"),
    "approval.rejected": ("REJECT", "bold red"),
    "approval.wait_ended": ("WAIT", "dim"),
}


def _approval_line(kind: str, body: Mapping[str, object]) -> Text:
    """One step of an approval: asked, notified, decided, redeemed, expired, refused."""
    word, style = _APPROVAL_WORDS.get(kind, (kind.removeprefix("approval.").upper(), "bold"))
    line = Text()
    line.append(f"{word:<6}", style=style)
    line.append(f" {_clean(str(body.get('approval_id', '')))}")
    if kind == "approval.requested":
        line.append(f"  {_clean(str(body.get('action_kind', '')))} "
                    f"{_clean(str(body.get('target', '')))}", style="bold")
        line.append(f"  rule: {_clean(str(body.get('rule', '')))}"
                    f"  requester: {_clean(str(body.get('requester', '')))}", style="dim")
    elif kind == "approval.decided":
        verdict = "approved" if body.get("verdict") == "approve" else "denied"
        line.append(f"  {verdict} by {_clean(str(body.get('approver', '')))}",
                    style="green" if verdict == "approved" else "red")
        if body.get("reason"):
            line.append(f": {_clean(str(body.get('reason')))}", style="dim")
    elif kind == "approval.notified":
        result = "delivered" if body.get("ok") else f"failed ({_clean(str(body.get('error')))})"
        line.append(f"  {_clean(str(body.get('channel', '')))}: {result}", style="dim")
    elif kind == "approval.redeemed":
        line.append(f"  used by trace {_clean(str(body.get('trace', '')))}", style="dim")
    elif kind == "approval.rejected":
        line.append(f"  {_clean(str(body.get('problem', '')))}", style="dim")
    elif kind == "approval.wait_ended":
        line.append(f"  {_clean(str(body.get('how', '')))}", style="dim")
    return line
