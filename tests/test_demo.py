"""`trackwrap demo` end to end: real servers and client; only the ledger stays behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests._peers import ROOT, requires_peers

pytestmark = [pytest.mark.peers, requires_peers]


def test_demo_governs_a_coding_session_and_verifies(tmp_path, trackwrap_home):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "trackwrap", "demo"], capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "sk_live_51Hx" not in out  # the demo's planted secret is never printed
    for expected in (
        "ALLOW  filesystem.read api/handlers.py  rule: WORKSPACE-READ-ALLOW",
        "ALLOW  shell.exec pytest tests/test_handlers.py -x -q  rule: SHELL-TEST-ALLOWLIST",
        "1 failed, 1 passed",
        "ALLOW  filesystem.write api/handlers.py  rule: WORKSPACE-WRITE-ALLOW",
        "2 passed",
        "ALLOW  git.commit \"Fix: handle null tenant in dispatch\"  rule: COMMIT-ALLOW",
        "session started",
        "role       code-reviewer",
        "DENY   filesystem.read",
        "rule: MANIFEST-FORBID (permission_scope_exceeded)",
        "DENY   shell.exec sh -c rm -rf node_modules && npm install --force  rule: "
        "HARNESS-DRIFT-001 (permission_scope_exceeded)",
        "DENY   git.add .env  rule: SEC-COMMIT-SECRETS",
        "also: BRANCH-PROTECTED, GIT-FORCE-PUSH",
        "also: MANIFEST-FORBID, SHELL-NO-PIPED-CURL",
        "rule: MCP-MANIFEST-PINNED",
        "after the server changed its tools, the agent sees: ['echo', 'arm']",
        "node_modules is intact",
        "What this means",
        "Agent claimed role=code-reviewer",
        "failure_pattern=scope_violation",
        "audit verify: PASS",
        "Chapter 06 · a call that needs a person",
        "REQUIRE APPROVAL email.send ops@customer.example  rule: EMAIL-SEND-APPROVAL",
        "$ trackwrap approve apr-",
        "approved by lead@example.com",
        "ALLOW  email.send ops@customer.example  rule: EMAIL-SEND-APPROVAL",
        "the agent saw: queued message 1 to ops@customer.example",
        "the outbox holds 1 message",
        "1 held for approval",
        "Chapter 07 · what happened, in causal order, as the collector serves it",
        "each came back with a signed receipt",
        "GET /v1/diagnose/session?id=sess-",
        "witnessed by collector ed25519:",
    ):
        assert expected in out, f"{expected!r} missing from:\n{out}"
    # Only the ledger stays behind: the throwaway workspace is gone.
    assert list(scratch.iterdir()) == []
    # The session is closed with a final seal and verifies on its own.
    verify = subprocess.run([sys.executable, "-m", "trackwrap", "audit", "verify", "--json"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert verify.returncode == 0
    sessions = json.loads(verify.stdout)["sessions"]
    assert len(sessions) == 2  # the coding session, and the approval chapter's own
    assert all(session["status"] == "pass" for session in sessions)
    # Both demo sessions were synced: the collector's receipts witness all of them.
    assert all(s["witnessed_through_seq"] == s["verified_through_seq"] for s in sessions)
    shown = subprocess.run([sys.executable, "-m", "trackwrap", "audit", "show", "--json"],
                           capture_output=True, text=True, cwd=ROOT, timeout=60)
    events = [json.loads(line) for line in shown.stdout.splitlines()]
    assert events[-1]["kind"] == "segment.seal"
    assert events[-1]["final"] is True
    assert events[-2]["kind"] == "session.end"
    # The demo's publisher was trusted for the demo only.
    listing = subprocess.run([sys.executable, "-m", "trackwrap", "trust", "list"],
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "trackwrap-demo" not in listing.stdout
