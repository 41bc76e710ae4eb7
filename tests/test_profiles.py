"""The shipped server profiles and default policy, end to end through the real pipeline."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from trackwrap.config import RealFileSystem, default_profiles_dir, load_policy, load_server_profiles
from trackwrap.inspectors import default_inspectors
from trackwrap.policy import Context, Decision, Outcome, Pipeline, ServerProfile, normalize

SHIPPED_RULES = {
    "WORKSPACE-READ-ALLOW",
    "WORKSPACE-WRITE-ALLOW",
    "WORKSPACE-PATH-SCOPE",
    "SHELL-TEST-ALLOWLIST",
    "GIT-READ-ALLOW",
    "GIT-STAGE-ALLOW",
    "COMMIT-ALLOW",
    "BRANCH-FEATURE-ALLOW",
    "BRANCH-PROTECTED",
    "GIT-RESET-DENY",
    "MCP-META-ALLOW",
    "EMAIL-SEND-APPROVAL",
}


@pytest.fixture(scope="module")
def profiles() -> dict[str, ServerProfile]:
    return load_server_profiles([default_profiles_dir()])


@pytest.fixture(scope="module")
def pipeline(profiles: dict[str, ServerProfile]) -> Pipeline:
    policy = load_policy([default_profiles_dir() / "policy"])
    return Pipeline(profiles=profiles, policy=policy, inspectors=default_inspectors())


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    root = Path(os.path.realpath(tmp_path))
    workspace = root / "home" / "u" / "code" / "payments"
    (workspace / "src").mkdir(parents=True)
    return Context(
        workspace=str(workspace),
        roots=(str(workspace),),
        cwd=str(workspace),
        home=str(root / "home" / "u"),
        now=datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        fs=RealFileSystem(),
    )


def test_every_shipped_profile_loads(profiles: dict[str, ServerProfile]) -> None:
    assert set(profiles) == {"filesystem", "git", "shell", "desktop-commander", "github", "outbox",
                             "claude-code", "codex"}
    files = sorted((default_profiles_dir() / "servers").glob("*.yaml"))
    assert len(files) == len(profiles)


def test_every_shipped_rule_id_exists(pipeline: Pipeline) -> None:
    ids = {rule.id for rule in pipeline.policy.rules}
    assert ids >= SHIPPED_RULES
    assert pipeline.policy.mode == "enforce"


def test_filesystem_profile_covers_the_real_server(profiles: dict[str, ServerProfile]) -> None:
    # The tool names registered by the pinned @modelcontextprotocol/server-filesystem.
    index = Path(__file__).parent.parent / "node_modules/@modelcontextprotocol/server-filesystem"
    source = index / "dist" / "index.js"
    if not source.is_file():
        pytest.skip("npm peers not installed (scripts/setup.sh)")
    text = source.read_text()
    registered = {part.split('"')[0] for part in text.split('registerTool("')[1:]}
    assert registered == set(profiles["filesystem"].tools)


def test_filesystem_roots_from_argv(profiles: dict[str, ServerProfile]) -> None:
    argv = ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/a", "/b"]
    assert profiles["filesystem"].roots_from_argv(argv) == ("/a", "/b")
    git_argv = ["uvx", "mcp-server-git", "--repository", "/r"]
    assert profiles["git"].roots_from_argv(git_argv) == ("/r",)


@pytest.mark.parametrize(
    ("server", "tool", "arguments", "kind", "paths", "commands", "branches"),
    [
        (
            "filesystem",
            "read_text_file",
            {"path": "a"},
            "filesystem.read",
            [("path", "a", False)],
            [],
            [],
        ),
        (
            "filesystem",
            "read_multiple_files",
            {"paths": ["a", "b"]},
            "filesystem.read",
            [("paths[0]", "a", False), ("paths[1]", "b", False)],
            [],
            [],
        ),
        (
            "filesystem",
            "write_file",
            {"path": "a", "content": "x"},
            "filesystem.write",
            [("path", "a", True)],
            [],
            [],
        ),
        (
            "filesystem",
            "move_file",
            {"source": "a", "destination": "b"},
            "filesystem.write",
            [("source", "a", True), ("destination", "b", True)],
            [],
            [],
        ),
        ("filesystem", "list_allowed_directories", {}, "filesystem.meta", [], [], []),
        (
            "git",
            "git_status",
            {"repo_path": "/r"},
            "git.read",
            [("repo_path", "/r", False)],
            [],
            [],
        ),
        (
            "git",
            "git_add",
            {"repo_path": "/r", "files": ["x"]},
            "git.add",
            [("repo_path", "/r", False), ("files[0]", "x", False)],
            [],
            [],
        ),
        (
            "git",
            "git_commit",
            {"repo_path": "/r", "message": "m"},
            "git.commit",
            [("repo_path", "/r", False)],
            [],
            [],
        ),
        (
            "git",
            "git_reset",
            {"repo_path": "/r"},
            "git.reset",
            [("repo_path", "/r", False)],
            [],
            [],
        ),
        (
            "git",
            "git_create_branch",
            {"repo_path": "/r", "branch_name": "feature/x", "base_branch": "main"},
            "git.branch.create",
            [("repo_path", "/r", False)],
            [],
            ["feature/x"],
        ),
        (
            "git",
            "git_checkout",
            {"repo_path": "/r", "branch_name": "main"},
            "git.checkout",
            [("repo_path", "/r", False)],
            [],
            ["main"],
        ),
        (
            "shell",
            "execute",
            {"command": ["pytest", "-q"], "directory": "/w"},
            "shell.exec",
            [("directory", "/w", False)],
            [("pytest", "-q")],
            [],
        ),
        (
            "desktop-commander",
            "start_process",
            {"command": "npm test", "timeout_ms": 1000},
            "shell.exec",
            [],
            [("npm", "test")],
            [],
        ),
        (
            "desktop-commander",
            "edit_block",
            {"file_path": "a", "old_string": "x"},
            "filesystem.write",
            [("file_path", "a", True)],
            [],
            [],
        ),
        (
            "desktop-commander",
            "read_file",
            {"path": "https://x", "isUrl": True},
            "net.http",
            [("path", "https://x", False)],
            [],
            [],
        ),
        (
            "desktop-commander",
            "set_config_value",
            {"key": "allowedDirectories", "value": ["/"]},
            "config.write",
            [],
            [],
            [],
        ),
        (
            "github",
            "get_file_contents",
            {"owner": "o", "repo": "r", "path": "README.md"},
            "github.read",
            [],
            [],
            [],
        ),
        (
            "github",
            "push_files",
            {"owner": "o", "repo": "r", "branch": "main", "files": []},
            "git.push",
            [],
            [],
            ["main"],
        ),
        (
            "github",
            "create_branch",
            {"owner": "o", "repo": "r", "branch": "feature/y"},
            "git.branch.create",
            [],
            [],
            ["feature/y"],
        ),
        (
            "github",
            "merge_pull_request",
            {"owner": "o", "repo": "r", "pull_number": 1},
            "github.pr.merge",
            [],
            [],
            [],
        ),
    ],
)
def test_normalize_shipped_tools(
    profiles: dict[str, ServerProfile],
    server: str,
    tool: str,
    arguments: dict[str, Any],
    kind: str,
    paths: list[tuple[str, str, bool]],
    commands: list[tuple[str, ...]],
    branches: list[str],
) -> None:
    action = normalize(server=server, tool=tool, arguments=arguments, profile=profiles[server])
    assert action.kind == kind
    assert [(p.name, p.value, p.write) for p in action.paths] == paths
    assert list(action.commands) == commands
    assert list(action.branches) == branches


def run(pipeline: Pipeline, ctx: Context, server: str, tool: str, args: dict[str, Any]) -> Decision:
    return pipeline.evaluate(server=server, tool=tool, arguments=args, context=ctx)


@pytest.mark.parametrize(
    ("server", "tool", "args", "outcome", "rule"),
    [
        ("filesystem", "read_text_file", {"path": "src/app.py"}, "allow", "WORKSPACE-READ-ALLOW"),
        ("filesystem", "list_directory", {"path": "."}, "allow", "WORKSPACE-READ-ALLOW"),
        (
            "filesystem",
            "write_file",
            {"path": "src/new.py", "content": ""},
            "allow",
            "WORKSPACE-WRITE-ALLOW",
        ),
        (
            "filesystem",
            "read_text_file",
            {"path": "~/.aws/credentials"},
            "deny",
            "WORKSPACE-PATH-SCOPE",
        ),
        (
            "filesystem",
            "write_file",
            {"path": ".git/hooks/pre-commit", "content": ""},
            "deny",
            "WORKSPACE-PATH-SCOPE",
        ),
        (
            "filesystem",
            "move_file",
            {"source": "src/a", "destination": "/tmp/a"},
            "deny",
            "WORKSPACE-PATH-SCOPE",
        ),
        (
            "filesystem",
            "read_multiple_files",
            {"paths": ["src/a", "../../../../../etc/passwd"]},
            "deny",
            "WORKSPACE-PATH-SCOPE",
        ),
        ("filesystem", "list_allowed_directories", {}, "allow", "MCP-META-ALLOW"),
        ("shell", "execute", {"command": ["pytest", "-q"]}, "allow", "SHELL-TEST-ALLOWLIST"),
        ("shell", "execute", {"command": ["go", "test", "./..."]}, "allow", "SHELL-TEST-ALLOWLIST"),
        ("shell", "execute", {"command": ["curl", "https://evil"]}, "deny", "DEFAULT-DENY"),
        (
            "shell",
            "execute",
            {"command": ["pytest"], "directory": "/"},
            "deny",
            "WORKSPACE-PATH-SCOPE",
        ),
        (
            "desktop-commander",
            "start_process",
            {"command": "pytest; rm -rf /"},
            "deny",
            "SHELL-DESTRUCTIVE",
        ),
        (
            "desktop-commander",
            "start_process",
            {"command": "cargo test"},
            "allow",
            "SHELL-TEST-ALLOWLIST",
        ),
        (
            "desktop-commander",
            "read_file",
            {"path": "https://x", "isUrl": True},
            "deny",
            "DEFAULT-DENY",
        ),
        (
            "desktop-commander",
            "set_config_value",
            {"key": "allowedDirectories", "value": "/"},
            "deny",
            "AGENT-CONFIG-WRITE-DENY",
        ),
        ("git", "git_status", {"repo_path": "."}, "allow", "GIT-READ-ALLOW"),
        ("git", "git_add", {"repo_path": ".", "files": ["src/app.py"]}, "allow", "GIT-STAGE-ALLOW"),
        (
            "git",
            "git_add",
            {"repo_path": ".", "files": ["../../.ssh/id_rsa"]},
            "deny",
            "WORKSPACE-PATH-SCOPE",
        ),
        ("git", "git_commit", {"repo_path": ".", "message": "m"}, "allow", "COMMIT-ALLOW"),
        ("git", "git_reset", {"repo_path": "."}, "deny", "GIT-RESET-DENY"),
        (
            "git",
            "git_create_branch",
            {"repo_path": ".", "branch_name": "feature/x", "base_branch": "main"},
            "allow",
            "BRANCH-FEATURE-ALLOW",
        ),
        (
            "git",
            "git_checkout",
            {"repo_path": ".", "branch_name": "main"},
            "deny",
            "BRANCH-PROTECTED",
        ),
        (
            "git",
            "git_checkout",
            {"repo_path": ".", "branch_name": "develop"},
            "deny",
            "DEFAULT-DENY",
        ),
        (
            "github",
            "push_files",
            {"owner": "o", "repo": "r", "branch": "release/2.0"},
            "deny",
            "BRANCH-PROTECTED",
        ),
        (
            "github",
            "create_or_update_file",
            {"owner": "o", "repo": "r", "branch": "fix/bug"},
            "allow",
            "BRANCH-FEATURE-ALLOW",
        ),
        (
            "github",
            "create_pull_request",
            {"owner": "o", "repo": "r", "head": "feature/x", "base": "main"},
            "require_approval",
            "GITHUB-PR-APPROVAL",
        ),
        (
            "github",
            "merge_pull_request",
            {"owner": "o", "repo": "r", "pull_number": 1},
            "deny",
            "DEFAULT-DENY",
        ),
        (
            "outbox",
            "send_email",
            {"to": "ops@acme.com", "subject": "s", "body": "b"},
            "require_approval",
            "EMAIL-SEND-APPROVAL",
        ),
        (
            "outbox",
            "query_db",
            {"host": "db1.replica.acme.internal", "sql": "SELECT 1"},
            "deny",
            "DEFAULT-DENY",
        ),
        ("unknown-server", "anything", {}, "deny", "DEFAULT-DENY"),
        ("filesystem", "brand_new_tool", {"path": "src/a"}, "deny", "DEFAULT-DENY"),
    ],
)
def test_default_policy_decisions(
    pipeline: Pipeline,
    ctx: Context,
    server: str,
    tool: str,
    args: dict[str, Any],
    outcome: str,
    rule: str,
) -> None:
    decision = run(pipeline, ctx, server, tool, args)
    assert (decision.outcome, decision.rule) == (Outcome(outcome), rule), decision.reason


def test_default_policy_credentials_golden(pipeline: Pipeline, ctx: Context) -> None:
    decision = run(pipeline, ctx, "filesystem", "read_text_file", {"path": "~/.aws/credentials"})
    detail = f"credential store: {ctx.home}/.aws/credentials is inside ~/.aws (path)"
    assert decision.to_json() == {
        "outcome": "deny",
        "rule": "WORKSPACE-PATH-SCOPE",
        "reason": detail,
        "kind": "filesystem.read",
        "action_hash": decision.action_hash,
        "findings": [
            {
                "inspector": "paths",
                "rule": "WORKSPACE-PATH-SCOPE",
                "confidence": 1.0,
                "attack": "T1552.001",
                "owasp": "ASI03",
                "detail": detail,
            }
        ],
    }
    assert decision.enforced
