"""Policy core: action hash, normalize, rules, decisions, and the fail-closed pipeline."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from trackwrap.config import RealFileSystem
from trackwrap.errors import InspectorError, NormalizeError, ProfileError
from trackwrap.inspectors import default_inspectors
from trackwrap.policy import (
    Action,
    Context,
    Decision,
    Finding,
    Mode,
    Outcome,
    PathArg,
    Pipeline,
    Policy,
    ServerProfile,
    action_hash,
    normalize,
)

PROFILE = ServerProfile.from_mapping(
    {
        "version": 1,
        "name": "demo",
        "match": ["demo-server"],
        "tools": {
            "read": {"kind": "filesystem.read", "read": ["path"]},
            "many": {"kind": "filesystem.read", "read": ["paths[]"]},
            "move": {"kind": "filesystem.write", "write": ["source", "destination"]},
            "add": {"kind": "git.add", "read": ["repo_path", "files[]"], "base": "repo_path"},
            "run": {"kind": "shell.exec", "command": ["command"], "read": ["directory"]},
            "push": {"kind": "git.push", "branch": ["branch"]},
            "fetch": {
                "kind": "filesystem.read",
                "read": ["path"],
                "if_true": {"isUrl": "net.http"},
            },
        },
    },
    source="demo.yaml",
)


def policy(*rules: dict[str, Any], mode: str = "enforce") -> Policy:
    return Policy.from_mapping({"version": 1, "mode": mode, "rules": list(rules)}, source="p.yaml")


READ_ALLOW = {
    "id": "READ-ALLOW",
    "description": "read inside the workspace",
    "outcome": "allow",
    "when": {"kind": ["filesystem.read"], "paths": "inside_workspace"},
}


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    root = Path(os.path.realpath(tmp_path))
    (root / "ws" / "src").mkdir(parents=True)
    return Context(
        workspace=str(root / "ws"),
        roots=(),
        cwd=str(root / "ws"),
        home=str(root),
        now=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),  # a Monday
        fs=RealFileSystem(),
    )


def pipeline(pol: Policy, **kwargs: Any) -> Pipeline:
    kwargs.setdefault("inspectors", default_inspectors())
    return Pipeline(profiles={"demo": PROFILE}, policy=pol, **kwargs)


# --- action hash -------------------------------------------------------------------------


def test_action_hash_golden_value() -> None:
    canonical = b'{"arguments":{"path":"a.txt"},"server":"filesystem","tool":"read_text_file"}'
    expected = "sha256:" + hashlib.sha256(canonical).hexdigest()
    assert action_hash("filesystem", "read_text_file", {"path": "a.txt"}) == expected
    assert expected == (
        "sha256:" + hashlib.sha256(canonical).hexdigest()
    )  # the canonical bytes above are the contract


def test_action_hash_key_order_independent() -> None:
    a = action_hash("s", "t", {"b": 1, "a": [1.0, {"y": 2, "x": "é"}]})
    b = action_hash("s", "t", {"a": [1, {"x": "é", "y": 2}], "b": 1})
    assert a == b
    assert a != action_hash("s", "t2", {"a": [1, {"x": "é", "y": 2}], "b": 1})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 2**64, "\ud800", b"x"])
def test_action_hash_rejects_non_canonical(bad: object) -> None:
    with pytest.raises(NormalizeError):
        action_hash("s", "t", {"x": bad})


# --- normalize ---------------------------------------------------------------------------


def test_normalize_unprofiled_tool_and_server() -> None:
    act = normalize(server="demo", tool="nope", arguments=None, profile=PROFILE)
    assert (act.kind, act.paths, act.arguments) == ("demo.nope", (), {})
    assert normalize(server="x", tool="y", arguments={}, profile=None).kind == "x.y"


@pytest.mark.parametrize("arguments", [[1], "s", 3])
def test_normalize_rejects_non_object_arguments(arguments: object) -> None:
    with pytest.raises(NormalizeError):
        normalize(server="demo", tool="read", arguments=arguments, profile=PROFILE)


def test_normalize_rejects_non_string_path() -> None:
    with pytest.raises(NormalizeError):
        normalize(server="demo", tool="read", arguments={"path": 3}, profile=PROFILE)
    with pytest.raises(NormalizeError):
        normalize(server="demo", tool="many", arguments={"paths": "a"}, profile=PROFILE)


def test_normalize_targets() -> None:
    many = normalize(server="demo", tool="many", arguments={"paths": ["a", "b"]}, profile=PROFILE)
    assert many.paths == (
        PathArg(name="paths[0]", value="a", write=False, base=None),
        PathArg(name="paths[1]", value="b", write=False, base=None),
    )
    add = normalize(
        server="demo", tool="add", arguments={"repo_path": "/r", "files": ["x"]}, profile=PROFILE
    )
    assert add.paths == (
        PathArg(name="repo_path", value="/r", write=False, base=None),
        PathArg(name="files[0]", value="x", write=False, base="/r"),
    )
    move = normalize(
        server="demo", tool="move", arguments={"source": "a", "destination": "b"}, profile=PROFILE
    )
    assert [(p.name, p.write) for p in move.paths] == [("source", True), ("destination", True)]
    push = normalize(server="demo", tool="push", arguments={"branch": "main"}, profile=PROFILE)
    assert (push.branches, push.target()) == (("main",), "main")
    url = normalize(
        server="demo", tool="fetch", arguments={"path": "https://x", "isUrl": True}, profile=PROFILE
    )
    assert url.kind == "net.http"


def test_normalize_commands() -> None:
    argv = normalize(
        server="demo", tool="run", arguments={"command": ["pytest", "-q"]}, profile=PROFILE
    )
    assert (argv.commands, argv.command_text, argv.target()) == (
        (("pytest", "-q"),),
        (),
        "pytest -q",
    )
    text = normalize(
        server="demo", tool="run", arguments={"command": "pytest -k 'a b'"}, profile=PROFILE
    )
    assert (text.commands, text.command_text) == ((("pytest", "-k", "a b"),), ("pytest -k 'a b'",))
    meta = normalize(
        server="demo", tool="run", arguments={"command": "pytest; rm -rf /"}, profile=PROFILE
    )
    assert (meta.commands, meta.command_text) == ((), ("pytest; rm -rf /",))
    with pytest.raises(NormalizeError):
        normalize(server="demo", tool="run", arguments={"command": []}, profile=PROFILE)


# --- rule matching -----------------------------------------------------------------------


def evaluate(pol: Policy, ctx: Context, tool: str, arguments: object, **kw: Any) -> Decision:
    return pipeline(pol, **kw).evaluate(server="demo", tool=tool, arguments=arguments, context=ctx)


SHELL = {
    "id": "SHELL-TESTS",
    "outcome": "allow",
    "when": {"kind": "shell.exec", "command": ["pytest", "python -m pytest", "npm test"]},
}


@pytest.mark.parametrize(
    ("command", "outcome"),
    [
        (["pytest", "-q"], Outcome.ALLOW),
        (["python", "-m", "pytest"], Outcome.ALLOW),
        (["npm", "test"], Outcome.ALLOW),
        (["npm", "install"], Outcome.DENY),
        (["python", "-c", "pytest"], Outcome.DENY),
        (["pytest", ";", "rm", "-rf", "/"], Outcome.DENY),
        (["pytest", "$(curl x)"], Outcome.DENY),
        (["curl", "https://example.com"], Outcome.DENY),
        ("pytest -q tests/", Outcome.ALLOW),
        ("npm test", Outcome.ALLOW),
        ("pytest; rm -rf /", Outcome.DENY),
        ("pytest && curl x", Outcome.DENY),
        ("pytest\nrm -rf /", Outcome.DENY),
        ("pytest `id`", Outcome.DENY),
        ("pytest 'unbalanced", Outcome.DENY),
        ("npm", Outcome.DENY),
    ],
)
def test_command_allowlist(ctx: Context, command: object, outcome: Outcome) -> None:
    decision = evaluate(policy(SHELL), ctx, "run", {"command": command})
    assert decision.outcome is outcome
    if outcome is Outcome.ALLOW:
        assert decision.rule == "SHELL-TESTS"
    else:
        # no allow rule matches; an inspector may name a more specific reason first
        assert decision.rule in ("DEFAULT-DENY", "WORKSPACE-PATH-SCOPE") or (
            decision.rule.startswith("SHELL-")
        )


BRANCH_RULES = (
    {"id": "FEATURE", "outcome": "allow", "when": {"kind": "git.push", "branch": ["feature/*"]}},
    {"id": "PROTECTED", "outcome": "deny", "when": {"branch": ["main", "release/*"]}},
    {
        "id": "OTHER",
        "outcome": "require_approval",
        "ttl": "15m",
        "approvers": ["leads"],
        "when": {"kind": "git.push", "not_branch": ["main", "feature/*", "release/*"]},
    },
)


@pytest.mark.parametrize(
    ("branch", "rule"),
    [
        ("feature/x", "FEATURE"),
        ("feature/a/b", "FEATURE"),
        ("main", "PROTECTED"),
        ("release/1.2", "PROTECTED"),
        ("mainline", "OTHER"),
        ("develop", "OTHER"),
    ],
)
def test_branch_globs(ctx: Context, branch: str, rule: str) -> None:
    pol = policy(*BRANCH_RULES)
    # rules alone (the git inspector would also flag main with its own BRANCH-PROTECTED)
    decision = evaluate(pol, ctx, "push", {"branch": branch}, inspectors=())
    assert decision.rule == rule
    approval = pol.rule("OTHER")
    assert approval is not None
    assert (approval.ttl_seconds, approval.approvers) == (900, ("leads",))


TIME_RULE = {
    "id": "OFFICE-HOURS",
    "outcome": "allow",
    "when": {
        "kind": "filesystem.read",
        "time": {
            "days": ["mon", "tue", "wed", "thu", "fri"],
            "between": "09:00-18:00",
            "tz": "Europe/Berlin",
        },
    },
}


@pytest.mark.parametrize(
    ("now", "allowed"),
    [
        (datetime(2026, 3, 2, 8, 30, tzinfo=UTC), True),  # Mon 09:30 in Berlin (UTC+1)
        (datetime(2026, 3, 2, 7, 59, tzinfo=UTC), False),  # Mon 08:59 Berlin
        (datetime(2026, 3, 2, 17, 0, tzinfo=UTC), False),  # Mon 18:00 Berlin: end exclusive
        (datetime(2026, 7, 6, 15, 59, tzinfo=UTC), True),  # Mon 17:59 Berlin in summer (UTC+2)
        (datetime(2026, 3, 7, 10, 0, tzinfo=UTC), False),  # Saturday
        (datetime(2026, 3, 2, 12, 0, tzinfo=timezone(timedelta(hours=5))), False),  # 08:00
        (datetime(2026, 3, 2, 14, 0, tzinfo=timezone(timedelta(hours=5))), True),  # 10:00
    ],
)
def test_time_window_with_tz(ctx: Context, now: datetime, allowed: bool) -> None:
    at = Context(workspace=ctx.workspace, roots=(), cwd=ctx.cwd, home=ctx.home, now=now, fs=ctx.fs)
    decision = evaluate(policy(TIME_RULE), at, "read", {"path": "src/a"})
    assert (decision.outcome is Outcome.ALLOW) is allowed


def test_time_window_wrapping_midnight(ctx: Context) -> None:
    night = dict(
        TIME_RULE, when={"kind": "filesystem.read", "time": {"between": "22:00-06:00", "tz": "UTC"}}
    )
    for hour, allowed in ((23, True), (3, True), (6, False), (12, False)):
        at = Context(
            workspace=ctx.workspace,
            roots=(),
            cwd=ctx.cwd,
            home=ctx.home,
            now=datetime(2026, 3, 2, hour, tzinfo=UTC),
            fs=ctx.fs,
        )
        assert (evaluate(policy(night), at, "read", {}).outcome is Outcome.ALLOW) is allowed


def test_naive_now_fails_closed(ctx: Context) -> None:
    at = Context(
        workspace=ctx.workspace,
        roots=(),
        cwd=ctx.cwd,
        home=ctx.home,
        now=datetime(2026, 3, 2, 10),  # noqa: DTZ001 - a naive time is the point of the test
        fs=ctx.fs,
    )
    decision = evaluate(policy(TIME_RULE), at, "read", {})
    assert (decision.outcome, decision.rule) == (Outcome.DENY, "PIPELINE-ERROR")


def test_precedence_deny_over_approval_over_redact_over_allow(ctx: Context) -> None:
    rules = [
        {"id": "A", "outcome": "allow", "when": {"kind": "filesystem.read"}},
        {"id": "R", "outcome": "redact", "when": {"kind": "filesystem.read"}},
        {"id": "Q", "outcome": "require_approval", "when": {"kind": "filesystem.read"}},
        {"id": "D", "outcome": "deny", "when": {"kind": "filesystem.read"}},
    ]
    for count, expected in ((1, "A"), (2, "R"), (3, "Q"), (4, "D")):
        assert evaluate(policy(*rules[:count]), ctx, "read", {}).rule == expected
    assert evaluate(policy(*reversed(rules)), ctx, "read", {}).rule == "D"


def test_no_rule_matched_is_default_deny(ctx: Context) -> None:
    decision = evaluate(policy(READ_ALLOW), ctx, "run", {"command": ["curl", "x"]})
    assert decision.to_json() == {
        "outcome": "deny",
        "rule": "DEFAULT-DENY",
        "reason": "no rule allows shell.exec",
        "kind": "shell.exec",
        "action_hash": action_hash("demo", "run", {"command": ["curl", "x"]}),
        "findings": [],
    }
    assert decision.enforced


def test_finding_denies_by_default_with_its_own_rule(ctx: Context) -> None:
    decision = evaluate(policy(READ_ALLOW), ctx, "read", {"path": "/etc/passwd"})
    assert decision.to_json() == {
        "outcome": "deny",
        "rule": "WORKSPACE-PATH-SCOPE",
        "reason": f"outside workspace: /etc/passwd is not under {ctx.workspace}",
        "kind": "filesystem.read",
        "action_hash": action_hash("demo", "read", {"path": "/etc/passwd"}),
        "findings": [
            {
                "inspector": "paths",
                "rule": "WORKSPACE-PATH-SCOPE",
                "confidence": 1.0,
                "attack": "T1083",
                "owasp": "ASI02",
                "detail": f"outside workspace: /etc/passwd is not under {ctx.workspace}",
            }
        ],
    }


def test_allowed_read_golden(ctx: Context) -> None:
    decision = evaluate(policy(READ_ALLOW), ctx, "read", {"path": "src/a.py"})
    assert decision.to_json() == {
        "outcome": "allow",
        "rule": "READ-ALLOW",
        "reason": "read inside the workspace: filesystem.read src/a.py",
        "kind": "filesystem.read",
        "action_hash": action_hash("demo", "read", {"path": "src/a.py"}),
        "findings": [],
    }
    assert decision.enforced
    assert decision.action is not None
    assert decision.action.paths[0].value == "src/a.py"


def test_finding_rule_can_change_outcome_but_never_allows_the_action(ctx: Context) -> None:
    approve = {
        "id": "OUTSIDE-ASK",
        "outcome": "require_approval",
        "when": {"finding": ["WORKSPACE-PATH-*"], "kind": "filesystem.read"},
    }
    any_read = {"id": "ANY-READ", "outcome": "allow", "when": {"kind": "filesystem.read"}}
    decision = evaluate(policy(any_read, approve), ctx, "read", {"path": "/etc/hosts"})
    assert (decision.outcome, decision.rule) == (Outcome.REQUIRE_APPROVAL, "OUTSIDE-ASK")
    # A finding rule modulates; it never admits an action no other rule allows.
    decision = evaluate(policy(READ_ALLOW, approve), ctx, "read", {"path": "/etc/hosts"})
    assert (decision.outcome, decision.rule) == (Outcome.DENY, "DEFAULT-DENY")
    ignore = {"id": "OUTSIDE-OK", "outcome": "allow", "when": {"finding": ["WORKSPACE-PATH-SCOPE"]}}
    other = {"id": "LIST", "outcome": "allow", "when": {"kind": "filesystem.list"}}
    decision = evaluate(policy(other, ignore), ctx, "read", {"path": "/etc/hosts"})
    assert decision.rule == "DEFAULT-DENY"
    assert len(decision.findings) == 1


def test_monitor_mode_records_but_does_not_enforce(ctx: Context) -> None:
    pol = policy(READ_ALLOW, mode="monitor")
    denied = evaluate(pol, ctx, "read", {"path": "/etc/passwd"})
    assert (denied.outcome, denied.enforced) == (Outcome.DENY, False)
    allowed = evaluate(pol, ctx, "read", {"path": "src/x"})
    assert (allowed.outcome, allowed.enforced) == (Outcome.ALLOW, True)
    assert pol.with_mode(Mode.ENFORCE).mode is Mode.ENFORCE
    assert pol.with_mode(Mode.ENFORCE).policy_hash != pol.policy_hash


# --- fail closed -------------------------------------------------------------------------


class ExplodingInspector:
    name = "boom"

    def inspect(self, action: Action, context: Context) -> Sequence[Finding]:
        raise InspectorError("inspector exploded")


class WrongTypeInspector:
    name = "wrong"

    def inspect(self, action: Action, context: Context) -> Sequence[Finding]:
        return ["not a finding"]  # type: ignore[list-item]


class DriftScope:
    def check(self, action: Action, context: Context) -> Sequence[Finding]:
        return (
            Finding(
                inspector="scope",
                rule="HARNESS-DRIFT-001",
                confidence=1.0,
                detail="permission_scope_exceeded: tool not in manifest",
            ),
        )


def test_inspector_that_raises_denies(ctx: Context) -> None:
    decision = evaluate(
        policy(READ_ALLOW), ctx, "read", {"path": "src/a"}, inspectors=[ExplodingInspector()]
    )
    assert (decision.outcome, decision.rule, decision.enforced) == (
        Outcome.DENY,
        "PIPELINE-ERROR",
        True,
    )
    assert decision.reason == "inspect:boom failed: InspectorError: inspector exploded"
    assert decision.action_hash == action_hash("demo", "read", {"path": "src/a"})


def test_inspector_returning_garbage_denies(ctx: Context) -> None:
    decision = evaluate(policy(READ_ALLOW), ctx, "read", {}, inspectors=[WrongTypeInspector()])
    assert decision.rule == "PIPELINE-ERROR"


def test_pipeline_error_is_enforced_in_monitor_mode(ctx: Context) -> None:
    decision = evaluate(
        policy(READ_ALLOW, mode="monitor"), ctx, "read", {}, inspectors=[ExplodingInspector()]
    )
    assert (decision.rule, decision.enforced) == ("PIPELINE-ERROR", True)


@pytest.mark.parametrize("arguments", [[1, 2], {"path": float("nan")}, {"path": 7}])
def test_bad_arguments_deny(ctx: Context, arguments: object) -> None:
    decision = evaluate(policy(READ_ALLOW), ctx, "read", arguments)
    assert (decision.outcome, decision.rule) == (Outcome.DENY, "PIPELINE-ERROR")
    assert decision.reason.startswith("normalize failed: NormalizeError: ")


def test_deeply_nested_arguments_never_raise(ctx: Context) -> None:
    nested: object = {}
    for _ in range(5000):
        nested = {"a": nested}
    decision = evaluate(policy(READ_ALLOW), ctx, "read", nested)
    assert decision.rule == "PIPELINE-ERROR"


def test_nul_path_with_real_filesystem_denies(ctx: Context) -> None:
    decision = evaluate(policy(READ_ALLOW), ctx, "read", {"path": "a\x00b"})
    assert (decision.outcome, decision.rule) == (Outcome.DENY, "WORKSPACE-PATH-SCOPE")


def test_scope_drift_denies(ctx: Context) -> None:
    decision = evaluate(policy(READ_ALLOW), ctx, "read", {"path": "src/a"}, scope=DriftScope())
    assert (decision.outcome, decision.rule) == (Outcome.DENY, "HARNESS-DRIFT-001")


# --- policy validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"id": "X", "outcome": "allow", "when": {"kind": "a"}, "colour": 1}, "unknown key"),
        ({"id": "X", "outcome": "permit", "when": {"kind": "a"}}, "bad outcome"),
        ({"id": "X", "outcome": "allow", "when": {"knd": "a"}}, "unknown key"),
        ({"id": "X", "outcome": "allow", "when": {}}, "at least one"),
        ({"id": "X", "outcome": "allow"}, "missing required key"),
        ({"id": "x-lower", "outcome": "allow", "when": {"kind": "a"}}, "upper-case"),
        ({"id": "DEFAULT-DENY", "outcome": "allow", "when": {"kind": "a"}}, "reserved"),
        ({"id": "X", "outcome": "allow", "when": {"kind": ["git.[a"]}}, "bad glob"),
        ({"id": "X", "outcome": "allow", "when": {"branch": ["fea ture"]}}, "bad glob"),
        (
            {"id": "X", "outcome": "allow", "when": {"time": {"between": "9-5", "tz": "UTC"}}},
            "HH:MM",
        ),
        (
            {
                "id": "X",
                "outcome": "allow",
                "when": {"time": {"days": ["mon"], "tz": "Mars/Olympus"}},
            },
            "unknown time zone",
        ),
        (
            {"id": "X", "outcome": "allow", "when": {"time": {"days": ["funday"], "tz": "UTC"}}},
            "unknown day",
        ),
        ({"id": "X", "outcome": "allow", "when": {"paths": "anywhere"}}, "inside_workspace"),
        ({"id": "X", "outcome": "allow", "ttl": "5m", "when": {"kind": "a"}}, "require_approval"),
        ({"id": "X", "outcome": "require_approval", "ttl": "soon", "when": {"kind": "a"}}, "ttl"),
        ({"id": "X", "outcome": "allow", "when": {"command": ["pytest; rm"]}}, "command prefix"),
    ],
)
def test_bad_rules_are_profile_errors(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ProfileError) as caught:
        policy(rule)
    assert "p.yaml" in str(caught.value)
    assert message in str(caught.value)


def test_duplicate_rule_ids() -> None:
    with pytest.raises(ProfileError, match="duplicate rule id"):
        policy(READ_ALLOW, READ_ALLOW)
    one = policy(READ_ALLOW)
    with pytest.raises(ProfileError, match="duplicate rule id"):
        Policy.merged([one, one])


def test_policy_top_level_validation() -> None:
    for data in (
        {"version": 1, "rules": []},
        {"version": 2, "rules": [READ_ALLOW]},
        {"version": 1, "rules": [READ_ALLOW], "mode": "shadow"},
        {"version": 1, "rules": [READ_ALLOW], "extra": True},
        [READ_ALLOW],
    ):
        with pytest.raises(ProfileError):
            Policy.from_mapping(data, source="p.yaml")
    with pytest.raises(ProfileError):
        Policy.merged([])


def test_merged_policy_keeps_order_and_enforces_when_any_enforces() -> None:
    other = {"id": "LIST", "outcome": "allow", "when": {"kind": "filesystem.list"}}
    merged = Policy.merged([policy(READ_ALLOW, mode="monitor"), policy(other)])
    assert [r.id for r in merged.rules] == ["READ-ALLOW", "LIST"]
    assert merged.mode is Mode.ENFORCE
    both_monitor = Policy.merged(
        [policy(READ_ALLOW, mode="monitor"), policy(other, mode="monitor")]
    )
    assert both_monitor.mode is Mode.MONITOR
    assert policy(READ_ALLOW).policy_hash == policy(READ_ALLOW).policy_hash


@pytest.mark.parametrize(
    "data",
    [
        {"version": 1, "name": "x", "match": ["x"], "tools": {"t": {"kind": "Bad Kind"}}},
        {"version": 1, "name": "x", "match": ["x"], "tools": {"t": {"kind": "a", "path": ["p"]}}},
        {"version": 1, "name": "x", "match": ["x"], "tools": {"t": {"kind": "a", "read": ["p!"]}}},
        {"version": 1, "name": "x", "match": ["x"], "tools": {}},
        {"version": 1, "name": "x", "match": [], "tools": {"t": {"kind": "a"}}},
        {"version": 1, "name": "x", "match": ["x"], "colour": 1, "tools": {"t": {"kind": "a"}}},
        {
            "version": 1,
            "name": "x",
            "match": ["x"],
            "roots": {"positional": "yes"},
            "tools": {"t": {"kind": "a"}},
        },
        {
            "version": 1,
            "name": "x",
            "match": ["x"],
            "tools": {"t": {"kind": "a", "read": ["p"], "write": ["p"]}},
        },
    ],
)
def test_bad_profiles_are_profile_errors(data: dict[str, Any]) -> None:
    with pytest.raises(ProfileError):
        ServerProfile.from_mapping(data, source="s.yaml")


def test_roots_from_argv() -> None:
    fs = ServerProfile.from_mapping(
        {
            "version": 1,
            "name": "fs",
            "match": ["server-fs"],
            "roots": {"positional": True},
            "tools": {"t": {"kind": "a"}},
        },
        source="s.yaml",
    )
    assert fs.roots_from_argv(["npx", "-y", "@x/server-fs", "/a", "~/b"]) == ("/a", "~/b")
    git = ServerProfile.from_mapping(
        {
            "version": 1,
            "name": "git",
            "match": ["mcp-server-git"],
            "roots": {"options": ["--repository"]},
            "tools": {"t": {"kind": "a"}},
        },
        source="s.yaml",
    )
    assert git.roots_from_argv(["uvx", "mcp-server-git", "--repository", "/r"]) == ("/r",)
    assert git.roots_from_argv(["mcp-server-git", "--repository=/r2"]) == ("/r2",)
    assert git.roots_from_argv(["other"]) == ()


@pytest.mark.parametrize(
    ("command", "outcome"),
    [
        (["timeout", "600", "pytest", "-x"], Outcome.ALLOW),
        (["timeout", "-k", "5", "10m", "npm", "test"], Outcome.ALLOW),
        (["time", "pytest"], Outcome.ALLOW),
        (["nice", "-n", "10", "pytest"], Outcome.ALLOW),
        (["timeout", "pytest"], Outcome.DENY),  # no duration: not the wrapper it claims to be
        (["timeout", "--foreground", "5", "pytest"], Outcome.DENY),
        (["env", "pytest"], Outcome.DENY),
        (["time", "curl", "x"], Outcome.DENY),
    ],
)
def test_command_allowlist_looks_through_transparent_wrappers(
    ctx: Context, command: object, outcome: Outcome
) -> None:
    assert evaluate(policy(SHELL), ctx, "run", {"command": command}).outcome is outcome
