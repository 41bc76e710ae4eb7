"""The approvals scenario through ``trackwrap check --at``: e-mail and database calls to the
outbox demo server, judged by ``profiles/examples/policy-approvals.yaml``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests._wrapper import ROOT
from trackwrap.cli import main
from trackwrap.config import default_profiles_dir, load_policy

EXAMPLE = ROOT / "profiles" / "examples" / "policy-approvals.yaml"
# 2026-05-05 is a Tuesday.
EVENING = "2026-05-05T21:30:00+02:00"
MORNING = "2026-05-05T11:00:00+02:00"
NIGHT = "2026-05-05T23:00:00+02:00"


def check(capsys: pytest.CaptureFixture[str], tool: str, arguments: dict[str, object],
          at: str, *extra: str) -> tuple[int, dict[str, object]]:
    code = main(["check", "--policy", str(EXAMPLE), "--server", "outbox", "--tool", tool,
                 "--args", json.dumps(arguments), "--at", at, "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


EXTERNAL = {"to": "buyer@example.org", "subject": "Offer", "body": "Our offer."}
INTERNAL = {"to": ["ann@acme.com", "bob@eu.acme.com"], "subject": "Notes", "body": "See above."}
MIXED = {"to": "ann@acme.com", "cc": "buyer@example.org", "subject": "Offer", "body": "Ours."}


@pytest.mark.parametrize(
    ("tool", "arguments", "at", "code", "outcome", "rule"),
    [
        ("send_email", EXTERNAL, EVENING, 1, "require_approval",
         "EMAIL-EXTERNAL-AFTER-HOURS-APPROVAL"),
        ("send_email", MIXED, EVENING, 1, "require_approval",
         "EMAIL-EXTERNAL-AFTER-HOURS-APPROVAL"),
        ("send_email", EXTERNAL, "2026-05-09T11:00:00+02:00", 1, "require_approval",
         "EMAIL-EXTERNAL-AFTER-HOURS-APPROVAL"),  # a Saturday
        ("send_email", INTERNAL, EVENING, 0, "allow", "EMAIL-INTERNAL-ALLOW"),
        ("send_email", INTERNAL, MORNING, 0, "allow", "EMAIL-INTERNAL-ALLOW"),
        ("send_email", EXTERNAL, MORNING, 0, "allow", "EMAIL-EXTERNAL-BUSINESS-HOURS-ALLOW"),
        ("send_email", EXTERNAL, "2026-05-05T09:00:00Z", 0, "allow",
         "EMAIL-EXTERNAL-BUSINESS-HOURS-ALLOW"),  # 11:00 in Berlin
        ("send_email", {"to": "", "subject": "s", "body": "b"}, MORNING, 1, "deny",
         "DEFAULT-DENY"),
        ("query_db", {"host": "db1.replica.acme.internal", "sql": "SELECT 1"}, MORNING, 0,
         "allow", "DB-REPLICA-READ-ALLOW"),
        ("query_db", {"host": "db1.replica.acme.internal:5432", "sql": "SELECT 1"}, MORNING, 0,
         "allow", "DB-REPLICA-READ-ALLOW"),
        ("query_db", {"host": "db1.replica.acme.internal", "sql": "SELECT 1"}, NIGHT, 1,
         "deny", "DEFAULT-DENY"),
        ("query_db", {"host": "primary.acme.internal", "sql": "SELECT 1"}, MORNING, 1, "deny",
         "DEFAULT-DENY"),
        ("query_db", {"host": "db1.replica.acme.internal.evil.example", "sql": "SELECT 1"},
         MORNING, 1, "deny", "DEFAULT-DENY"),
    ],
)
def test_approvals_scenario(
    capsys: pytest.CaptureFixture[str],
    tool: str,
    arguments: dict[str, object],
    at: str,
    code: int,
    outcome: str,
    rule: str,
) -> None:
    got, out = check(capsys, tool, arguments, at)
    assert (got, out["outcome"], out["rule"]) == (code, outcome, rule), out["reason"]


def test_the_approval_rule_carries_its_approval_settings() -> None:
    rule = load_policy([EXAMPLE]).rule("EMAIL-EXTERNAL-AFTER-HOURS-APPROVAL")
    assert rule is not None
    assert (rule.ttl_seconds, rule.approvers, rule.separate_approver, rule.notify) == (
        900, ("ops",), True, ("ops",))


def test_human_output_names_the_recipient(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--policy", str(EXAMPLE), "--server", "outbox", "--tool",
                 "send_email", "--args", json.dumps(EXTERNAL), "--at", EVENING])
    out = capsys.readouterr().out
    assert code == 1
    assert "REQUIRE APPROVAL" in out
    assert "email.send buyer@example.org" in out
    assert "EMAIL-EXTERNAL-AFTER-HOURS-APPROVAL" in out


def test_the_example_ships_but_is_not_loaded_by_default() -> None:
    shipped = default_profiles_dir()
    assert (shipped / "examples" / "policy-approvals.yaml").is_file()
    default = load_policy([shipped / "policy"])
    assert default.rule("EMAIL-INTERNAL-ALLOW") is None
    approval = default.rule("EMAIL-SEND-APPROVAL")
    assert approval is not None
    assert (approval.outcome.value, approval.ttl_seconds) == ("require_approval", 900)


def test_default_policy_holds_every_email_and_denies_queries(
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["check", "--server", "outbox", "--at", MORNING, "--json"]
    assert main([*base, "--tool", "send_email", "--args", json.dumps(INTERNAL)]) == 1
    assert json.loads(capsys.readouterr().out)["rule"] == "EMAIL-SEND-APPROVAL"
    query = {"host": "db1.replica.acme.internal", "sql": "SELECT 1"}
    assert main([*base, "--tool", "query_db", "--args", json.dumps(query)]) == 1
    assert json.loads(capsys.readouterr().out)["rule"] == "DEFAULT-DENY"


@pytest.mark.parametrize(
    ("at", "message"),
    [
        ("2026-05-05T21:30:00", "has no UTC offset"),
        ("yesterday", "must be an ISO-8601 time"),
        ("2026-13-05T21:30:00+02:00", "must be an ISO-8601 time"),
    ],
)
def test_at_must_be_an_aware_iso_timestamp(at: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trackwrap", "check", "--policy", str(EXAMPLE), "--server",
         "outbox", "--tool", "send_email", "--args", json.dumps(EXTERNAL), "--at", at],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
