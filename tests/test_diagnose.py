"""The diagnose builder on a recorded session: full-object comparison."""

from __future__ import annotations

from trackwrap.diagnose import build_diagnosis, format_offset

GENESIS = {
    "kind": "session.start", "session": "sess-2026-05-05-7c4a91", "seq": 0, "ts_ms": 1_000_000,
    "agent": "claude-code", "developer": "priya@acme.com", "workspace": "/home/p/payments",
    "workspace_binding": "acme/payments", "role": "code-reviewer",
    "publisher": "anthropic.com:claude-code:v2.4.1", "signed_by": "ed25519:7c91a4f3",
    "manifest_digest": "sha256:abc",
}


def decision(seq, t_ms, kind, target, outcome, rule, *, forwarded, drift=None, reason=""):
    return {"kind": "tool_call.decision", "seq": seq, "ts_ms": 1_000_000 + t_ms,
            "action_kind": kind, "target": target, "decision": outcome, "rule": rule,
            "forwarded": forwarded, "trace": f"tr-{seq:06d}", "reason": reason, "drift": drift}


def test_a_session_with_drift_reads_in_causal_order():
    events = [
        {**GENESIS, "session_kind": "explicit"},
        decision(1, 134_700, "filesystem.write", "api/handlers.py", "allow",
                 "WORKSPACE-WRITE-ALLOW", forwarded=True),
        decision(2, 262_100, "git.commit", '"Fix: handle null tenant"', "allow", "COMMIT-ALLOW",
                 forwarded=True),
        decision(3, 531_300, "shell.exec", "rm -rf node_modules", "deny", "HARNESS-DRIFT-001",
                 forwarded=False,
                 drift={"type": "permission_scope_exceeded", "pattern": "scope_violation",
                        "rule": "HARNESS-DRIFT-001",
                        "detail": "shell.exec attempted; not in manifest.allowed_tools"}),
        {"kind": "session.end", "seq": 4, "ts_ms": 1_000_000 + 761_000,
         "reason": "policy_terminated"},
    ]
    verdict = {"status": "pass", "chain_tip": "sha256:7b3f", "verified_through_seq": 5,
               "sealed_through_seq": 5}
    assert build_diagnosis(events, verdict=verdict) == {
        "session_id": "sess-2026-05-05-7c4a91",
        "agent": "claude-code",
        "developer": "priya@acme.com",
        "manifest": {"role": "code-reviewer", "workspace": "acme/payments",
                     "publisher": "anthropic.com:claude-code:v2.4.1",
                     "signed_by": "ed25519:7c91a4f3", "digest": "sha256:abc"},
        "duration": "12m 41s",
        "tool_calls": {"attempted": 3, "allowed": 2, "denied": 1, "held_for_approval": 0},
        "workspace_state": {"writes": 1, "deletes": 0, "commits": 1, "pushes": 0},
        "events": [
            {"t": "+00:00.0", "kind": "session_start", "manifest": "code-reviewer / acme/payments"},
            {"t": "+02:14.7", "kind": "tool_call", "tool": "filesystem.write",
             "target": "api/handlers.py", "decision": "allow", "rule": "WORKSPACE-WRITE-ALLOW",
             "trace": "tr-000001"},
            {"t": "+04:22.1", "kind": "tool_call", "tool": "git.commit",
             "target": '"Fix: handle null tenant"', "decision": "allow", "rule": "COMMIT-ALLOW",
             "trace": "tr-000002"},
            {"t": "+08:51.3", "kind": "drift_event", "drift": "permission_scope_exceeded",
             "pattern": "scope_violation",
             "detail": "shell.exec attempted; not in manifest.allowed_tools"},
            {"t": "+08:51.3", "kind": "decision", "tool": "shell.exec",
             "target": "rm -rf node_modules", "decision": "deny", "rule": "HARNESS-DRIFT-001",
             "trace": "tr-000003"},
            {"t": "+12:41.0", "kind": "session_close", "reason": "policy_terminated"},
        ],
        "causal_chain": [
            "Agent claimed role=code-reviewer; the manifest was signed by "
            "anthropic.com:claude-code:v2.4.1.",
            "2 in-scope tool calls executed cleanly across 12m 41s.",
            "At t=+08:51.3, agent attempted shell.exec(rm -rf node_modules).",
            "Scope check raised permission_scope_exceeded; failure_pattern=scope_violation: "
            "shell.exec attempted; not in manifest.allowed_tools.",
            "Policy rule HARNESS-DRIFT-001 returned deny; the call never reached the server.",
            "Workspace ended with 1 write, 0 deletes, 1 commit, 0 pushes; session closed "
            "(policy_terminated).",
        ],
        "audit_anchor": {"chain_tip": "sha256:7b3f", "verifiable": True,
                         "verified_through_seq": 5, "sealed_through_seq": 5, "status": "pass"},
    }


def test_offsets():
    assert format_offset(0) == "+00:00.0"
    assert format_offset(531_300) == "+08:51.3"
    assert format_offset(-5) == "+00:00.0"


def test_a_call_held_for_approval_is_one_attempt_told_step_by_step():
    start = {"kind": "session.start", "session": "s", "seq": 0, "ts_ms": 0, "workspace": "/w"}
    held = decision(2, 100, "email.send", "bob@example.org", "require_approval",
                    "EMAIL-EXTERNAL-APPROVAL", forwarded=False)
    allowed = decision(5, 9_000, "email.send", "bob@example.org", "allow",
                       "EMAIL-EXTERNAL-APPROVAL", forwarded=True)
    held["trace"] = allowed["trace"] = "tr-1"
    events = [
        start,
        {"kind": "approval.requested", "seq": 1, "ts_ms": 100, "approval_id": "apr-1",
         "action_kind": "email.send", "target": "bob@example.org",
         "rule": "EMAIL-EXTERNAL-APPROVAL", "approvers": ["ops"]},
        held,
        {"kind": "approval.decided", "seq": 3, "ts_ms": 8_000, "approval_id": "apr-1",
         "verdict": "approve", "approver": "ops@acme.com", "reason": "expected"},
        {"kind": "approval.redeemed", "seq": 4, "ts_ms": 9_000, "approval_id": "apr-1"},
        allowed,
    ]
    d = build_diagnosis(events, verdict=None)
    assert d["tool_calls"] == {"attempted": 1, "allowed": 1, "denied": 0,
                               "held_for_approval": 0}
    steps = [e.get("step") for e in d["events"] if e["kind"] == "approval"]
    assert steps == ["requested", "decided", "redeemed"]
    chain = " ".join(d["causal_chain"])
    assert "needed approval by ops (rule EMAIL-EXTERNAL-APPROVAL)" in chain
    assert "ops@acme.com approved apr-1 (signed decision): expected" in chain
    assert "went through, once (apr-1)" in chain
    assert "was denied by rule EMAIL-EXTERNAL-APPROVAL" not in chain
