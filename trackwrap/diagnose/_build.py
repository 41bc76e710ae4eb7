"""What happened in a session, in causal order: the one builder behind ``trackwrap diagnose
--json`` (and, later, the collector's ``/v1/diagnose/session``).

It reads ledger event bodies (plain dicts) and the session's verify verdict; it does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["build_diagnosis", "format_offset"]

_WRITES = ("filesystem.write", "filesystem.edit", "filesystem.move")
_DELETES = ("filesystem.delete",)


def format_offset(ms: int) -> str:
    """``+MM:SS.s`` from the session start."""
    ms = max(ms, 0)
    minutes, rest = divmod(ms, 60_000)
    return f"+{minutes:02d}:{rest / 1000:04.1f}"


def _duration(ms: int) -> str:
    seconds = max(ms, 0) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {seconds}s"
    return f"{minutes}m {seconds}s"


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def build_diagnosis(
    events: Sequence[Mapping[str, Any]], *, verdict: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The diagnosis of one session from its ledger events, oldest first."""
    if not events or events[0].get("kind") != "session.start":
        raise ValueError("a session's events start with its session.start record")
    genesis = events[0]
    start_ms = _int(genesis.get("ts_ms"))
    last_ms = max((_int(e.get("ts_ms"), start_ms) for e in events), default=start_ms)
    counts = {"attempted": 0, "allowed": 0, "denied": 0, "held_for_approval": 0}
    held: set[str] = set()
    state = {"writes": 0, "deletes": 0, "commits": 0, "pushes": 0}
    timeline: list[dict[str, Any]] = []
    chain: list[str] = []
    drifts: list[str] = []
    other_denies: list[str] = []
    closed: Mapping[str, Any] | None = None
    role = _str(genesis.get("role"))
    root = _str(genesis.get("workspace"))
    binding = _str(genesis.get("workspace_binding"))
    workspace = binding if binding not in ("", ".") else root
    timeline.append({
        "t": format_offset(0),
        "kind": "session_start",
        "manifest": f"{role or 'no role'} / {workspace}",
    })
    for event in events[1:]:
        kind = event.get("kind")
        t = format_offset(_int(event.get("ts_ms"), start_ms) - start_ms)
        if kind == "tool_call.decision":
            _count(event, counts, state, held)
            drift = event.get("drift")
            entry = {
                "t": t, "kind": "tool_call" if not isinstance(drift, Mapping) else "decision",
                "tool": _str(event.get("action_kind")),
                "target": _relative(_str(event.get("target")), root),
                "decision": _str(event.get("decision")), "rule": _str(event.get("rule")),
                "trace": _str(event.get("trace")),
            }
            if isinstance(drift, Mapping):
                timeline.append({
                    "t": t, "kind": "drift_event", "drift": _str(drift.get("type")),
                    "pattern": _str(drift.get("pattern")), "detail": _str(drift.get("detail")),
                })
                drifts.extend(_drift_sentences(t, event, drift))
            elif event.get("decision") == "require_approval":
                pass  # told by the approval's own events
            elif not event.get("forwarded"):
                other_denies.append(
                    f"At t={t}, {entry['tool']} {entry['target']} was denied by rule "
                    f"{entry['rule']}: {_str(event.get('reason'))}.".replace("  ", " ")
                )
            timeline.append(entry)
        elif isinstance(kind, str) and kind.startswith("approval."):
            step, sentence = _approval_step(t, event, root)
            if step is not None:
                timeline.append(step)
            if sentence:
                other_denies.append(sentence)
        elif kind == "session.end":
            closed = event
            timeline.append({"t": t, "kind": "session_close",
                             "reason": _str(event.get("reason"))})
    chain.append(_opening(genesis))
    span = _duration(last_ms - start_ms)
    chain.append(
        f"{counts['allowed']} in-scope tool call{'s' if counts['allowed'] != 1 else ''} "
        f"executed cleanly across {span}."
    )
    chain.extend(drifts)
    chain.extend(other_denies)
    chain.append(_ending(state, closed))
    return {
        "session_id": _str(genesis.get("session")),
        "agent": _str(genesis.get("agent")),
        "developer": _str(genesis.get("developer")),
        "manifest": {
            "role": role or None,
            "workspace": workspace,
            "publisher": genesis.get("publisher"),
            "signed_by": genesis.get("signed_by"),
            "digest": genesis.get("manifest_digest"),
        },
        "duration": span,
        "tool_calls": counts,
        "workspace_state": state,
        "events": timeline,
        "causal_chain": chain,
        "audit_anchor": _anchor(verdict),
    }


def _relative(target: str, root: str) -> str:
    """Paths inside the workspace are shown relative to it."""
    if root and target.startswith(root.rstrip("/") + "/"):
        return target[len(root.rstrip("/")) + 1 :]
    return target


def _count(
    event: Mapping[str, Any], counts: dict[str, int], state: dict[str, int], held: set[str]
) -> None:
    """Count one decision. A call held for approval is one attempt: its later decision (same
    trace) moves it from held to allowed or denied."""
    trace = _str(event.get("trace"))
    if trace and trace in held:
        held.discard(trace)
        counts["held_for_approval"] -= 1
    else:
        counts["attempted"] += 1
    if event.get("decision") == "require_approval" and not event.get("forwarded"):
        counts["held_for_approval"] += 1
        if trace:
            held.add(trace)
        return
    if not event.get("forwarded"):
        counts["denied"] += 1
        return
    counts["allowed"] += 1
    kind = _str(event.get("action_kind"))
    if kind in _WRITES:
        state["writes"] += 1
    elif kind in _DELETES or kind.endswith(".delete"):
        state["deletes"] += 1
    elif kind == "git.commit":
        state["commits"] += 1
    elif kind == "git.push":
        state["pushes"] += 1


def _approval_step(
    t: str, event: Mapping[str, Any], root: str
) -> tuple[dict[str, Any] | None, str]:
    """An approval event as a timeline entry and a sentence of the causal chain."""
    kind = _str(event.get("kind")).removeprefix("approval.")
    approval = _str(event.get("approval_id"))
    step: dict[str, Any] = {"t": t, "kind": "approval", "step": kind, "approval_id": approval}
    if kind == "requested":
        what = f"{_str(event.get('action_kind'))} {_relative(_str(event.get('target')), root)}"
        groups = event.get("approvers")
        who = (f"approval by {' or '.join(str(g) for g in groups)}"
               if isinstance(groups, list) and groups else "a person's approval")
        step.update(tool=_str(event.get("action_kind")), rule=_str(event.get("rule")))
        return step, (f"At t={t}, {what.strip()} needed {who} (rule "
                      f"{_str(event.get('rule'))}); approval {approval} was requested.")
    if kind == "decided":
        verdict = "approved" if event.get("verdict") == "approve" else "denied"
        reason = _str(event.get("reason"))
        step.update(verdict=verdict, approver=_str(event.get("approver")))
        return step, (f"At t={t}, {_str(event.get('approver'))} {verdict} {approval} "
                      f"(signed decision){': ' + reason if reason else ''}.")
    if kind == "notified":
        step.update(channel=_str(event.get("channel")), ok=bool(event.get("ok")))
        return step, ""
    sentences = {
        "redeemed": f"At t={t}, the approved call went through, once ({approval}).",
        "expired": f"At t={t}, approval {approval} expired without a decision.",
        "rejected": (f"At t={t}, a decision on {approval} was refused: "
                     f"{_str(event.get('problem'))}."),
    }
    if kind in sentences:
        return step, sentences[kind]
    return None, ""


def _opening(genesis: Mapping[str, Any]) -> str:
    role = _str(genesis.get("role"))
    if genesis.get("session_kind") == "explicit" and role:
        who = _str(genesis.get("publisher")) or "a trusted publisher"
        return f"Agent claimed role={role}; the manifest was signed by {who}."
    if role:
        return f"No signed session: implicit session under the default role {role}."
    return "No signed session: implicit session, held against organisation policy only."


def _drift_sentences(t: str, decision: Mapping[str, Any], drift: Mapping[str, Any]) -> list[str]:
    target = _str(decision.get("target"))
    what = _str(decision.get("action_kind")) + (f"({target})" if target else "")
    # (absolute targets stay absolute here: they are outside the workspace or were given so)
    return [
        f"At t={t}, agent attempted {what}.",
        f"Scope check raised {_str(drift.get('type'))}; "
        f"failure_pattern={_str(drift.get('pattern'))}: {_str(drift.get('detail'))}.",
        f"Policy rule {_str(decision.get('rule'))} returned deny; the call never reached the "
        "server.",
    ]


def _ending(state: Mapping[str, int], closed: Mapping[str, Any] | None) -> str:
    parts = (f"{state['writes']} write{'s' if state['writes'] != 1 else ''}, "
             f"{state['deletes']} delete{'s' if state['deletes'] != 1 else ''}, "
             f"{state['commits']} commit{'s' if state['commits'] != 1 else ''}, "
             f"{state['pushes']} push{'es' if state['pushes'] != 1 else ''}")
    if closed is None:
        return f"Workspace so far: {parts}; the session is still open."
    return f"Workspace ended with {parts}; session closed ({_str(closed.get('reason'))})."


def _anchor(verdict: Mapping[str, Any] | None) -> dict[str, Any]:
    if verdict is None:
        return {"chain_tip": None, "verifiable": False, "verified_through_seq": None,
                "sealed_through_seq": None, "status": "not verified"}
    return {
        "chain_tip": verdict.get("chain_tip"),
        "verifiable": verdict.get("status") in ("pass", "warn"),
        "verified_through_seq": verdict.get("verified_through_seq"),
        "sealed_through_seq": verdict.get("sealed_through_seq"),
        "status": verdict.get("status"),
    }
