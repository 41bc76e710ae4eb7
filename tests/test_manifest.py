"""The session manifest: strict parsing, the tool-entry grammar and the scope check (drift)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from trackwrap.config import RealFileSystem, default_profiles_dir, load_server_profiles
from trackwrap.errors import ProfileError
from trackwrap.manifest import (
    BRANCH_FORBIDS,
    HARNESS_DRIFT_RULE,
    MANIFEST_FORBID_RULE,
    ArgMode,
    DriftFinding,
    Manifest,
    ManifestScope,
    default_roles_dir,
    load_role_template,
    new_manifest,
    parse_duration,
    parse_manifest,
    parse_size,
    parse_template,
    role_names,
)
from trackwrap.manifest._scope import _FORBID_CHECKS
from trackwrap.policy import Action, Context, Pipeline, Policy, normalize

PROFILES = load_server_profiles([default_profiles_dir() / "servers"])
SHIPPED = frozenset(role_names(default_roles_dir()))
DECLARED = datetime(2026, 5, 5, 14, 21, 8, tzinfo=UTC)

SEED = """\
session_id:    sess-2026-05-05-7c4a91
agent:         claude-code
developer:     priya@acme.com           # resolved via SSO at session start
declared_at:   2026-05-05T14:21:08Z

manifest:
  role:        code-reviewer
  workspace:   acme/payments           # bound to one repo
  branch_constraints:
    push_to:   ["feature/*", "fix/*"]   # never main, never release/*
    forbid:    ["force_push", "reset_hard"]
  allowed_tools:
    - filesystem.read            # scoped to acme/payments
    - filesystem.write           # same scope
    - shell.exec(pytest|npm test|make|go test)
    - git.read · git.commit · git.push
  forbidden_tools:
    - shell.exec(curl|wget|sh|ssh|rm)
    - filesystem.read(~)           # no reads outside the workspace
    - net.http(*)                  # no outbound HTTP
  budget:
    tool_calls:  200
    bytes_out:   5 MiB
    duration:    45m

attestation:
  publisher:   anthropic.com:claude-code:v2.4.1
  signed_by:   ed25519:7c91a4f30b2d9e18
"""


def act(server: str, tool: str, **arguments: object) -> Action:
    return normalize(server=server, tool=tool, arguments=arguments, profile=PROFILES[server])


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    root = Path(os.path.realpath(tmp_path))
    (root / "ws" / "src").mkdir(parents=True)
    (root / "elsewhere").mkdir()
    (root / "ws" / "escape").symlink_to(root / "elsewhere")
    return Context(
        workspace=str(root / "ws"),
        roots=(),
        cwd=str(root / "ws"),
        home=str(root),
        now=DECLARED,
        fs=RealFileSystem(),
    )


def role_manifest(role: str) -> Manifest:
    template = load_role_template(default_roles_dir() / f"{role}.yaml")
    payload = new_manifest(
        template,
        workspace="acme/payments",
        developer="priya@acme.com",
        agent="claude-code",
        session_id="sess-1",
        declared_at=DECLARED,
        publisher=None,
        key_id=None,
    )
    return parse_manifest(payload, source=f"{role}.yaml")


def manifest_with(body: str, *, extra: str = "") -> Manifest:
    text = f"agent: claude-code\n{extra}manifest:\n  role: code-reviewer\n  workspace: .\n{body}"
    return parse_manifest(text.encode(), source="m.yaml")


def scope(manifest: Manifest, known: frozenset[str] = SHIPPED) -> ManifestScope:
    return ManifestScope(manifest, known_roles=known)


def rules(findings: object) -> list[tuple[str, str, str]]:
    assert isinstance(findings, tuple)
    out = []
    for finding in findings:
        assert isinstance(finding, DriftFinding)
        assert finding.confidence == 1.0
        assert finding.owasp == "ASI10"
        out.append((finding.rule, finding.drift, finding.pattern))
    return out


DRIFT = (HARNESS_DRIFT_RULE, "permission_scope_exceeded", "scope_violation")
FORBID = (MANIFEST_FORBID_RULE, "permission_scope_exceeded", "forbidden_tool")
OUTSIDE = (MANIFEST_FORBID_RULE, "permission_scope_exceeded", "out_of_workspace")
BRANCH_DRIFT = (HARNESS_DRIFT_RULE, "permission_scope_exceeded", "branch_constraint")
BRANCH_FORBID = (MANIFEST_FORBID_RULE, "permission_scope_exceeded", "branch_constraint")


# --- parsing -----------------------------------------------------------------------------


def test_seed_manifest_parses_in_full() -> None:
    payload = SEED.encode()
    manifest = parse_manifest(payload, source="harness_manifest.yaml")
    assert manifest.session_id == "sess-2026-05-05-7c4a91"
    assert manifest.agent == "claude-code"
    assert manifest.developer == "priya@acme.com"
    assert manifest.declared_at == DECLARED
    assert manifest.expires_at is None
    assert manifest.role == "code-reviewer"
    assert manifest.workspace == "acme/payments"
    assert manifest.branch_constraints.push_to is not None
    assert manifest.branch_constraints.push_to.patterns == ("feature/*", "fix/*")
    assert manifest.branch_constraints.forbid == {"force_push", "reset_hard"}
    assert [e.text for e in manifest.allowed_tools] == [
        "filesystem.read",
        "filesystem.write",
        "shell.exec(pytest|npm test|make|go test)",
        "git.read",
        "git.commit",
        "git.push",
    ]
    assert manifest.allowed_text == tuple(e.text for e in manifest.allowed_tools)
    assert manifest.forbidden_text == (
        "shell.exec(curl|wget|sh|ssh|rm)",
        "filesystem.read(~)",
        "net.http(*)",
    )
    assert [e.mode for e in manifest.forbidden_tools] == [
        ArgMode.COMMANDS,
        ArgMode.OUTSIDE,
        ArgMode.ANY,
    ]
    assert (manifest.budget.tool_calls, manifest.budget.bytes_out, manifest.budget.duration_s) == (
        200,
        5 * 1024 * 1024,
        45 * 60,
    )
    assert manifest.attestation is not None
    assert manifest.attestation.publisher == "anthropic.com:claude-code:v2.4.1"
    assert manifest.attestation.signed_by == "ed25519:7c91a4f30b2d9e18"
    import hashlib

    assert manifest.digest == "sha256:" + hashlib.sha256(payload).hexdigest()


def test_minimal_manifest_has_no_limits() -> None:
    manifest = manifest_with("  allowed_tools: [filesystem.read]\n")
    assert manifest.budget.tool_calls is None
    assert manifest.budget.bytes_out is None
    assert manifest.budget.duration_s is None
    assert manifest.branch_constraints.push_to is None
    assert manifest.forbidden_tools == ()
    assert manifest.attestation is None


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("  budget:\n", "  budgets: 1\n  budget:\n", "budgets: 1"),  # unknown key
        ("agent:         claude-code", "agent:         [x]", "agent:"),  # wrong type
        ("duration:    45m", "duration:    45", "duration:"),  # no unit
        ("duration:    45m", "duration:    45 minutes", "duration:"),
        ("bytes_out:   5 MiB", "bytes_out:   5 MiBs", "bytes_out:"),
        ("bytes_out:   5 MiB", "bytes_out:   -5", "bytes_out:"),
        ("tool_calls:  200", "tool_calls:  0", "tool_calls:"),
        ("tool_calls:  200", "tool_calls:  true", "tool_calls:"),
        ("role:        code-reviewer", "role:        Code_Reviewer", "role:"),
        ('forbid:    ["force_push", "reset_hard"]', "forbid:    [force]", "forbid:"),
        ("    - net.http(*)", "    - net.http(example.com)", "net.http("),  # unknown args
        ("    - net.http(*)", "    - net.http()", "net.http("),
        ("    - net.http(*)", "    - Net.HTTP", "Net.HTTP"),
        ("    - net.http(*)", "    - shell.exec(curl && x)", "curl &&"),
        ("    - net.http(*)", "    - shell.exec(curl|)", "curl|)"),
        ("    - net.http(*)", "    - filesystem.read(~|*)", "(~|*)"),
        ("    - net.http(*)", "    - git.push · · git.read", "git.push ·"),
        ("    - net.http(*)", "    - [nested]", "[nested]"),
        ("declared_at:   2026-05-05T14:21:08Z", "declared_at:   2026-05-05", "declared_at:"),
        (
            "declared_at:   2026-05-05T14:21:08Z",
            "declared_at:   2026-05-05T14:21:08",
            "declared_at",
        ),
        ("signed_by:   ed25519:7c91a4f30b2d9e18", "signed_by:   7c91", "signed_by:"),
        ("  publisher:", "  bogus: 1\n  publisher:", "bogus: 1"),
        ("session_id:    sess", "session_id:    !!str sess", "session_id:"),  # a tag
        ("  budget:\n", "  role: developer\n  budget:\n", "role: developer"),  # duplicate key
    ],
)
def test_strict_parse_errors_carry_file_and_line(old: str, new: str, needle: str) -> None:
    assert old in SEED
    text = SEED.replace(old, new, 1)
    with pytest.raises(ProfileError) as caught:
        parse_manifest(text.encode(), source="harness_manifest.yaml")
    message = str(caught.value)
    assert message.startswith(f"harness_manifest.yaml:{_line_of(text, needle)}:"), message


@pytest.mark.parametrize(
    "text",
    [
        "manifest: {role: r, workspace: ., allowed_tools: [x]}\n",  # no agent
        "agent: a\nmanifest: {role: r, workspace: .}\n",  # no allowed_tools
        "agent: a\nmanifest: {role: r, workspace: ., allowed_tools: []}\n",
        "agent: a\n",
        "- a\n",
        "",
        "agent: a\nmanifest: {role: r, workspace: ., allowed_tools: [x]}\n---\nagent: b\n",
        "agent: a\nmanifest: &m {role: r, workspace: ., allowed_tools: [x]}\nx: *m\n",
    ],
)
def test_structurally_bad_manifests_are_refused(text: str) -> None:
    with pytest.raises(ProfileError) as caught:
        parse_manifest(text.encode(), source="m.yaml")
    assert str(caught.value).startswith("m.yaml")


def test_non_utf8_payload_is_refused() -> None:
    with pytest.raises(ProfileError, match=r"m\.yaml"):
        parse_manifest(b"agent: \xff\n", source="m.yaml")


def test_expires_before_declared_is_refused() -> None:
    text = SEED.replace("declared_at:", "expires_at: 2026-05-05T14:00:00Z\ndeclared_at:")
    with pytest.raises(ProfileError, match=r"m.yaml:4: expires_at: must be after"):
        parse_manifest(text.encode(), source="m.yaml")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("45m", 2700), ("1h30m", 5400), ("90s", 90), ("2h", 7200), ("1h0m5s", 3605)],
)
def test_durations(value: str, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "45", "0m", "m", "30m1h", "1.5h", 45, None, "1d"])
def test_bad_durations(value: object) -> None:
    assert parse_duration(value) is None


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (1024, 1024),
        ("5 MiB", 5 * 2**20),
        ("5MiB", 5 * 2**20),
        ("2 KB", 2000),
        ("1 GiB", 2**30),
        ("7 B", 7),
        ("3 GB", 3 * 10**9),
    ],
)
def test_sizes(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", [0, -1, True, "5", "5 mib", "5 TiB", "x MiB", 1.5, None])
def test_bad_sizes(value: object) -> None:
    assert parse_size(value) is None


# --- roles -------------------------------------------------------------------------------


def test_shipped_roles() -> None:
    assert role_names(default_roles_dir()) == ["analytics-readonly", "code-reviewer", "developer"]


@pytest.mark.parametrize("role", sorted(SHIPPED))
def test_shipped_roles_parse_and_fill(role: str) -> None:
    path = default_roles_dir() / f"{role}.yaml"
    template = load_role_template(path)
    assert parse_template(template, source=str(path)).role == role
    with pytest.raises(ProfileError):  # a template is not a manifest: it has no agent
        parse_manifest(template, source=str(path))
    payload = new_manifest(
        template,
        workspace="acme/payments",
        developer=None,
        agent="claude-code",
        session_id=None,
        declared_at=DECLARED,
        publisher="platform@acme",
        key_id="ed25519:0123456789abcdef",
        expires_at=datetime(2026, 5, 6, 14, 21, 8, tzinfo=UTC),
    )
    manifest = parse_manifest(payload, source="filled.yaml")
    assert manifest.role == role
    assert manifest.workspace == "acme/payments"
    assert manifest.developer is None
    assert manifest.session_id is None
    assert manifest.declared_at == DECLARED
    assert manifest.expires_at == datetime(2026, 5, 6, 14, 21, 8, tzinfo=UTC)
    assert manifest.attestation is not None
    assert manifest.attestation.signed_by == "ed25519:0123456789abcdef"
    text = payload.decode()
    assert text.startswith("# Role template")  # comments kept
    assert "# never" in text or role != "code-reviewer"


def test_role_template_must_be_named_after_its_role(tmp_path: Path) -> None:
    path = tmp_path / "reviewer.yaml"
    path.write_bytes((default_roles_dir() / "code-reviewer.yaml").read_bytes())
    with pytest.raises(ProfileError, match=r"reviewer\.yaml"):
        load_role_template(path)


def test_role_template_may_not_carry_session_fields(tmp_path: Path) -> None:
    path = tmp_path / "code-reviewer.yaml"
    path.write_text("agent: x\n" + (default_roles_dir() / "code-reviewer.yaml").read_text())
    with pytest.raises(ProfileError, match=r"code-reviewer.yaml:1: agent: unknown key"):
        load_role_template(path)


def test_role_names_rejects_bad_file_names(tmp_path: Path) -> None:
    (tmp_path / "Bad_Name.yaml").write_text("manifest: {}\n")
    with pytest.raises(ProfileError, match="Bad_Name"):
        role_names(tmp_path)


def test_new_manifest_quotes_hostile_values() -> None:
    template = load_role_template(default_roles_dir() / "code-reviewer.yaml")
    payload = new_manifest(
        template,
        workspace="/home/priya/code/pay ments # not a comment",
        developer=None,
        agent="claude-code",
        session_id=None,
        declared_at=DECLARED,
        publisher=None,
        key_id=None,
    )
    assert parse_manifest(payload, source="x").workspace == (
        "/home/priya/code/pay ments # not a comment"
    )
    with pytest.raises(ProfileError):
        new_manifest(
            template,
            workspace=".",
            developer=None,
            agent="claude code\nmanifest: {}",
            session_id=None,
            declared_at=DECLARED,
            publisher=None,
            key_id=None,
        )


# --- tool entries on real normalized actions ---------------------------------------------


def test_bare_kind_and_separators(ctx: Context) -> None:
    manifest = manifest_with("  allowed_tools: ['git.read, git.commit · git.push']\n")
    check = scope(manifest)
    assert check.check(act("git", "git_status", repo_path="."), ctx) == ()
    assert check.check(act("git", "git_commit", repo_path=".", message="m"), ctx) == ()
    assert rules(check.check(act("git", "git_add", repo_path=".", files=["a"]), ctx)) == [DRIFT]


def test_kind_glob(ctx: Context) -> None:
    check = scope(manifest_with("  allowed_tools: ['git.*']\n"))
    assert check.check(act("git", "git_create_branch", repo_path=".", branch_name="x"), ctx) == ()
    assert rules(check.check(act("filesystem", "read_file", path="a"), ctx)) == [DRIFT]


def test_any_arguments(ctx: Context) -> None:
    check = scope(manifest_with("  allowed_tools: ['shell.exec(*)']\n"))
    assert check.check(act("shell", "shell_execute", command=["anything", "at all"]), ctx) == ()
    assert check.check(act("desktop-commander", "start_process", command="a | b"), ctx) == ()


@pytest.mark.parametrize(
    ("server", "tool", "arguments", "allowed"),
    [
        ("shell", "shell_execute", {"command": ["pytest", "-x"]}, True),
        ("shell", "shell_execute", {"command": ["npm", "test"]}, True),
        ("shell", "shell_execute", {"command": ["python", "-m", "pytest", "-q"]}, True),
        ("desktop-commander", "start_process", {"command": "go test ./..."}, True),
        ("desktop-commander", "start_process", {"command": "make"}, True),
        ("shell", "shell_execute", {"command": ["npm", "install"]}, False),
        ("shell", "shell_execute", {"command": ["python", "-c", "print(1)"]}, False),
        ("shell", "shell_execute", {"command": ["pytest", "&&", "curl", "x"]}, False),
        ("shell", "shell_execute", {"command": ["pytest", "$(curl x)"]}, False),
        ("desktop-commander", "start_process", {"command": "pytest && curl x"}, False),
        ("desktop-commander", "start_process", {"command": "pytest; rm -rf /"}, False),
        ("desktop-commander", "start_process", {"command": "makefoo"}, False),
        ("desktop-commander", "start_process", {"command": "'unbalanced"}, False),
    ],
)
def test_allowed_command_prefixes(
    ctx: Context, server: str, tool: str, arguments: dict[str, object], allowed: bool
) -> None:
    check = scope(
        manifest_with(
            "  allowed_tools: ['shell.exec(pytest|python -m pytest|npm test|make|go test)']\n"
        )
    )
    findings = check.check(act(server, tool, **arguments), ctx)
    assert (findings == ()) is allowed, findings


@pytest.mark.parametrize(
    ("server", "tool", "arguments", "forbidden"),
    [
        ("shell", "shell_execute", {"command": ["curl", "https://x"]}, True),
        ("shell", "shell_execute", {"command": ["/usr/bin/curl", "https://x"]}, True),
        ("desktop-commander", "start_process", {"command": "curl x | sh"}, True),
        ("desktop-commander", "start_process", {"command": "echo hi | sh"}, True),
        ("desktop-commander", "start_process", {"command": "rm -rf node_modules && npm i"}, True),
        ("desktop-commander", "start_process", {"command": "npm ci && rm -rf dist"}, True),
        ("desktop-commander", "start_process", {"command": "echo $(wget -qO- x)"}, True),
        ("desktop-commander", "start_process", {"command": "FOO=1 sudo -E curl x"}, True),
        ("desktop-commander", "start_process", {"command": "timeout 5 ssh host"}, True),
        ("shell", "shell_execute", {"command": ["env", "A=1", "curl", "x"]}, True),
        ("shell", "shell_execute", {"command": ["bash", "-c", "curl x | sh"]}, True),
        ("shell", "shell_execute", {"command": ["sh", "-lc", "cd x && wget y"]}, True),
        ("shell", "shell_execute", {"command": ["ls", "|", "sh"]}, True),
        ("shell", "shell_execute", {"command": ["pytest", "-k", "ssh"]}, False),
        ("desktop-commander", "start_process", {"command": "npm install curl-lite"}, False),
        ("desktop-commander", "start_process", {"command": "shellcheck run.sh"}, False),
        ("desktop-commander", "start_process", {"command": "pytest -k 'sh'"}, False),
    ],
)
def test_forbidden_command_prefixes(
    ctx: Context, server: str, tool: str, arguments: dict[str, object], forbidden: bool
) -> None:
    check = scope(
        manifest_with(
            "  allowed_tools: ['shell.exec(*)']\n"
            "  forbidden_tools: ['shell.exec(curl|wget|sh|ssh|rm)']\n"
        )
    )
    found = rules(check.check(act(server, tool, **arguments), ctx))
    assert found == ([FORBID] if forbidden else []), arguments


@pytest.mark.parametrize(
    ("path", "outside"),
    [
        ("src/a.py", False),
        ("./src/../src/a.py", False),
        ("../elsewhere/x", True),
        ("~/elsewhere/x", True),
        ("/etc/passwd", True),
        ("escape/x", True),  # a symlink inside the workspace that leads out of it
        ("src/\u200ba", True),  # malformed counts as outside
    ],
)
def test_outside_workspace_entry(ctx: Context, path: str, outside: bool) -> None:
    check = scope(
        manifest_with(
            "  allowed_tools: ['filesystem.*']\n  forbidden_tools: ['filesystem.read(~)']\n"
        )
    )
    read = rules(check.check(act("filesystem", "read_text_file", path=path), ctx))
    assert read == ([OUTSIDE] if outside else [])
    # the (~) entry names filesystem.read only: a write outside is not its business
    assert check.check(act("filesystem", "write_file", path=path, content="x"), ctx) == ()


def test_outside_workspace_through_base_and_lists(ctx: Context) -> None:
    check = scope(
        manifest_with("  allowed_tools: ['git.*', 'filesystem.*']\n  forbidden_tools: ['*(~)']\n")
    )
    assert check.check(act("git", "git_add", repo_path=".", files=["src/a"]), ctx) == ()
    assert rules(check.check(act("git", "git_add", repo_path="..", files=["x"]), ctx)) == [OUTSIDE]
    many = act("desktop-commander", "read_multiple_files", paths=["src/a", "/etc/hosts"])
    assert rules(check.check(many, ctx)) == [OUTSIDE]


def test_branch_glob_entries(ctx: Context) -> None:
    check = scope(
        manifest_with(
            "  allowed_tools: ['git.branch.create(feature/*|fix/*)', 'git.read']\n"
            "  forbidden_tools: ['git.*(release/*)']\n"
        )
    )
    ok = act("git", "git_create_branch", repo_path=".", branch_name="feature/x")
    assert check.check(ok, ctx) == ()
    other = act("git", "git_create_branch", repo_path=".", branch_name="spike/x")
    assert rules(check.check(other, ctx)) == [DRIFT]
    release = act("git", "git_create_branch", repo_path=".", branch_name="release/1.0")
    assert rules(check.check(release, ctx)) == [DRIFT, FORBID]


def test_unknown_tool_kind_is_drift(ctx: Context) -> None:
    check = scope(manifest_with("  allowed_tools: ['filesystem.read']\n"))
    unknown = normalize(server="mystery", tool="do_it", arguments={}, profile=None)
    found = check.check(unknown, ctx)
    assert rules(found) == [DRIFT]
    assert isinstance(found[0], DriftFinding)
    assert found[0].detail == "mystery.do_it attempted; not in manifest.allowed_tools"


# --- drift categories under the shipped roles ---------------------------------------------


def test_unknown_role_is_drift_on_every_call(ctx: Context) -> None:
    manifest = role_manifest("code-reviewer")
    check = scope(manifest, known=frozenset({"developer"}))
    found = check.check(act("filesystem", "read_text_file", path="src/a.py"), ctx)
    assert rules(found) == [(HARNESS_DRIFT_RULE, "unknown_role", "unknown_role")]
    assert scope(manifest).check(act("filesystem", "read_text_file", path="src/a.py"), ctx) == ()


def test_chapter_05_desktop_commander_string(ctx: Context) -> None:
    """Seeds ch. 05: the code-reviewer wipes deps and reinstalls through a shell string."""
    check = scope(role_manifest("code-reviewer"))
    action = act(
        "desktop-commander", "start_process", command="rm -rf node_modules && npm install --force"
    )
    found = check.check(action, ctx)
    assert rules(found) == [DRIFT, FORBID]
    assert found[0].detail == (
        "shell.exec (rm -rf node_modules && npm install --force) attempted; "
        "not in manifest.allowed_tools"
    )
    assert "shell.exec(curl|wget|sh|bash|ssh|rm)" in found[1].detail


def test_chapter_05_mcp_shell_server_argv(ctx: Context) -> None:
    check = scope(role_manifest("code-reviewer"))
    argv = ["rm", "-rf", "node_modules", "&&", "npm", "install", "--force"]
    assert rules(check.check(act("shell", "shell_execute", command=argv), ctx)) == [DRIFT, FORBID]
    # the same command is in keeping with a developer's manifest
    developer = scope(role_manifest("developer"))
    assert developer.check(act("shell", "shell_execute", command=argv), ctx) == ()


def test_chapter_05_through_the_pipeline(ctx: Context) -> None:
    policy = Policy.from_mapping(
        {"version": 1, "rules": [{"id": "ALL", "outcome": "allow", "when": {"kind": ["*"]}}]},
        source="p",
    )
    pipeline = Pipeline(
        profiles=PROFILES, policy=policy, inspectors=(), scope=scope(role_manifest("code-reviewer"))
    )
    decision = pipeline.evaluate(
        server="desktop-commander",
        tool="start_process",
        arguments={"command": "rm -rf node_modules && npm install --force"},
        context=ctx,
    )
    assert decision.outcome.value == "deny"
    assert decision.rule == HARNESS_DRIFT_RULE
    body = decision.findings[0].to_json()
    assert body["drift"] == "permission_scope_exceeded"
    assert body["pattern"] == "scope_violation"
    assert decision.findings[1].rule == MANIFEST_FORBID_RULE
    allowed = pipeline.evaluate(
        server="shell", tool="shell_execute", arguments={"command": ["pytest"]}, context=ctx
    )
    assert allowed.outcome.value == "allow"


def test_code_reviewer_day(ctx: Context) -> None:
    check = scope(role_manifest("code-reviewer"))
    fine = [
        act("filesystem", "read_text_file", path="src/a.py"),
        act("filesystem", "write_file", path="src/a.py", content="x"),
        act("filesystem", "list_directory", path="."),
        act("shell", "shell_execute", command=["python", "-m", "pytest"]),
        act("git", "git_status", repo_path="."),
        act("git", "git_add", repo_path=".", files=["src/a.py"]),
        act("git", "git_commit", repo_path=".", message="fix"),
        act("git", "git_create_branch", repo_path=".", branch_name="fix/flaky"),
        act("git", "git_checkout", repo_path=".", branch_name="main"),
        act("github", "push_files", branch="feature/x", files=[], message="m"),
    ]
    for action in fine:
        assert check.check(action, ctx) == (), action
    assert rules(check.check(act("filesystem", "read_text_file", path="/etc/passwd"), ctx)) == [
        OUTSIDE
    ]
    assert rules(
        check.check(act("desktop-commander", "read_file", path="http://x", isUrl=True), ctx)
    ) == [
        DRIFT,
        FORBID,
    ]


def test_push_outside_push_to(ctx: Context) -> None:
    check = scope(role_manifest("code-reviewer"))
    found = check.check(act("github", "push_files", branch="main", files=[], message="m"), ctx)
    assert rules(found) == [BRANCH_DRIFT]
    assert found[0].attack == "T1565.001"
    create = act("git", "git_create_branch", repo_path=".", branch_name="release/2")
    assert rules(check.check(create, ctx)) == [BRANCH_DRIFT]
    # a push whose target branch is not named cannot be held against push_to
    assert rules(check.check(act("github", "push_files", files=[], message="m"), ctx)) == [
        BRANCH_DRIFT
    ]


def test_shell_git_push_targets(ctx: Context) -> None:
    check = scope(role_manifest("developer"))
    ok = act("shell", "shell_execute", command=["git", "push", "origin", "feature/x"])
    assert check.check(ok, ctx) == ()
    refspec = act(
        "shell", "shell_execute", command=["git", "push", "origin", "HEAD:refs/heads/main"]
    )
    assert rules(check.check(refspec, ctx)) == [BRANCH_DRIFT]
    bare = act("desktop-commander", "start_process", command="git push")
    assert rules(check.check(bare, ctx)) == [BRANCH_DRIFT]


def test_force_push(ctx: Context) -> None:
    check = scope(role_manifest("developer"))
    forced = act("shell", "shell_execute", command=["git", "push", "-f", "origin", "feature/x"])
    assert rules(check.check(forced, ctx)) == [FORBID, BRANCH_FORBID]
    plus = act("shell", "shell_execute", command=["git", "push", "origin", "+feature/x"])
    assert rules(check.check(plus, ctx)) == [BRANCH_FORBID]
    lease = act(
        "desktop-commander", "start_process", command="git push --force-with-lease origin fix/a"
    )
    assert rules(check.check(lease, ctx)) == [BRANCH_FORBID]
    reviewer = scope(role_manifest("code-reviewer"))
    api = act("github", "push_files", branch="feature/x", files=[], message="m", force=True)
    assert rules(reviewer.check(api, ctx)) == [BRANCH_FORBID]
    assert (
        reviewer.check(
            act("github", "push_files", branch="feature/x", files=[], message="m", force=False), ctx
        )
        == ()
    )


def test_reset_hard(ctx: Context) -> None:
    manifest = manifest_with(
        "  allowed_tools: ['git.*', 'shell.exec(*)']\n"
        "  branch_constraints: {forbid: [reset_hard]}\n"
    )
    check = scope(manifest)
    # mcp-server-git's git_reset says nothing about its mode: cannot tell, so it is refused
    assert rules(check.check(act("git", "git_reset", repo_path="."), ctx)) == [BRANCH_FORBID]
    git_reset = normalize(
        server="git",
        tool="git_reset",
        arguments={"repo_path": ".", "mode": "soft"},
        profile=PROFILES["git"],
    )
    assert check.check(git_reset, ctx) == ()
    hard = act("shell", "shell_execute", command=["git", "-C", "sub", "reset", "--hard", "HEAD~1"])
    assert rules(check.check(hard, ctx)) == [BRANCH_FORBID]
    assert check.check(act("shell", "shell_execute", command=["git", "reset", "a.py"]), ctx) == ()


def test_delete_branch_and_rebase(ctx: Context) -> None:
    check = scope(role_manifest("developer"))
    delete = act("shell", "shell_execute", command=["git", "branch", "-D", "feature/x"])
    assert rules(check.check(delete, ctx)) == [BRANCH_FORBID]
    remote = act("desktop-commander", "start_process", command="git push origin :feature/x")
    found = rules(check.check(remote, ctx))
    assert BRANCH_FORBID in found
    rebase = act("desktop-commander", "start_process", command="git rebase main")
    assert rules(check.check(rebase, ctx)) == [BRANCH_FORBID]
    pull = act("shell", "shell_execute", command=["git", "pull", "--rebase"])
    assert rules(check.check(pull, ctx)) == [BRANCH_FORBID]


def test_every_branch_forbid_value_has_a_check() -> None:
    assert set(_FORBID_CHECKS) == BRANCH_FORBIDS


def test_analytics_readonly(ctx: Context) -> None:
    check = scope(role_manifest("analytics-readonly"))
    assert check.check(act("github", "list_commits", owner="a", repo="b"), ctx) == ()
    assert check.check(act("filesystem", "read_text_file", path="src/a.py"), ctx) == ()
    write = rules(check.check(act("filesystem", "write_file", path="a", content=""), ctx))
    assert write == [DRIFT, FORBID]
    shell = rules(check.check(act("shell", "shell_execute", command=["ls"]), ctx))
    assert shell == [DRIFT, FORBID]


def test_drift_finding_json() -> None:
    finding = DriftFinding(
        inspector="manifest",
        rule=HARNESS_DRIFT_RULE,
        confidence=1.0,
        detail="d",
        owasp="ASI10",
        drift="unknown_role",
        pattern="unknown_role",
    )
    assert finding.to_json() == {
        "inspector": "manifest",
        "rule": HARNESS_DRIFT_RULE,
        "confidence": 1.0,
        "attack": None,
        "owasp": "ASI10",
        "detail": "d",
        "drift": "unknown_role",
        "pattern": "unknown_role",
    }
