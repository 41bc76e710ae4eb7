"""``trackwrap doctor``: one line per check, the fix for each problem, exit 1 on any ✗.

Real processes with HOME and TRACKWRAP_HOME in a temporary directory, real MCP config files in
the formats the clients write (JSONC with comments, TOML), a real ledger.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trackwrap.cli._doctor import parse_jsonc

TIMEOUT = 60
BIN = str(Path(sys.executable).parent)  # where the venv's `trackwrap` script is

CURSOR_WRAPPED = """{
  // Cursor's MCP servers, behind trackwrap
  "mcpServers": {
    "filesystem": {
      "command": "trackwrap",
      "args": ["--", "npx", "-y", "@modelcontextprotocol/server-filesystem", "/src"], /* ok */
    },
  },
}
"""
CODEX_UNWRAPPED = """# Codex
[mcp_servers.github]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-github"]
"""
CODEX_WRAPPED = """# Codex
[mcp_servers.github]
command = "/usr/local/bin/trackwrap"
args = ["--", "npx", "-y", "@modelcontextprotocol/server-github"]
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


@pytest.fixture
def env(home: Path, trackwrap_home: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("TRACKWRAP_", "CLAUDE_"))}
    return {**base, "HOME": str(home), "TRACKWRAP_HOME": str(trackwrap_home),
            "TRACKWRAP_KEY_BACKEND": "file", "PATH": f"{BIN}{os.pathsep}/usr/bin:/bin"}


def tw(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "trackwrap", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=TIMEOUT, check=False)
    assert "Traceback" not in done.stdout + done.stderr
    return done


def doctor_json(env: dict[str, str], cwd: Path) -> tuple[int, dict[str, Any]]:
    done = tw(env, cwd, "doctor", "--json")
    return done.returncode, json.loads(done.stdout)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in report["checks"]}


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_an_unwrapped_server_fails_with_the_fix_then_passes_once_wrapped(env, home, project):
    write(home / ".cursor" / "mcp.json", CURSOR_WRAPPED)
    write(home / ".codex" / "config.toml", CODEX_UNWRAPPED)
    done = tw(env, project, "doctor")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "✓ mcp config ~/.cursor/mcp.json: Cursor: all 1 server(s) behind trackwrap" in lines
    bad = lines.index("✗ mcp config ~/.codex/config.toml: Codex: 1 of 1 server(s) not behind "
                      "trackwrap: github")
    assert lines[bad + 1] == "    fix: trackwrap install --write"

    write(home / ".codex" / "config.toml", CODEX_WRAPPED)
    done = tw(env, project, "doctor")
    assert done.returncode == 0, done.stdout
    assert "✗" not in done.stdout
    assert "✓ mcp config ~/.codex/config.toml: Codex: all 1 server(s) behind trackwrap" in (
        done.stdout.splitlines())


def test_json_shape_and_the_self_test(env, home, project):
    write(project / ".mcp.json", '{"mcpServers": {"git": {"command": "trackwrap", '
          '"args": ["--", "uvx", "mcp-server-git"]}}}')
    code, report = doctor_json(env, project)
    assert code == 0
    assert report["ok"] is True
    for check in report["checks"]:
        assert set(check) >= {"name", "status", "detail", "fix"}
        assert check["status"] in ("ok", "warn", "fail")
    checks = by_name(report)
    assert checks["on PATH"]["status"] == "ok"
    assert checks["key backend"]["status"] == "ok"
    assert checks["trust store"]["data"] == {"publishers": 0, "approvers": 0}
    assert checks["collector"]["status"] == "ok"
    config = checks[f"mcp config {project / '.mcp.json'}"]
    assert config["data"]["servers"] == {"git": "wrapped"}
    self_test = checks["self-test"]
    assert self_test["status"] == "ok"
    assert "SHELL-NO-PIPED-CURL" in self_test["detail"]
    assert "WORKSPACE-PATH-SCOPE" in self_test["detail"]
    assert len(self_test["data"]["denied"]) == 2


def test_claude_code_projects_and_remote_servers(env, home, project):
    write(home / ".claude.json", json.dumps({
        "mcpServers": {"docs": {"type": "http", "url": "https://mcp.example/"}},
        "projects": {"/src/app": {"mcpServers": {"fs": {"command": "npx", "args": ["x"]}}}},
    }))
    code, report = doctor_json(env, project)
    assert code == 1
    checks = by_name(report)
    remote = checks["mcp config ~/.claude.json"]
    assert remote["status"] == "warn" and "docs" in remote["detail"]
    project_entry = checks["mcp config ~/.claude.json (projects./src/app)"]
    assert project_entry["status"] == "fail"
    assert project_entry["fix"] == "trackwrap install --write"
    hook = checks["claude code hook"]
    assert hook["status"] == "warn" and hook["fix"] == "trackwrap install --hooks"

    write(home / ".claude" / "settings.json", json.dumps({"hooks": {"PreToolUse": [{
        "matcher": "Bash", "hooks": [{"type": "command",
                                      "command": "trackwrap hook claude-code"}]}]}}))
    _code, report = doctor_json(env, project)
    assert by_name(report)["claude code hook"]["status"] == "ok"


def test_a_broken_config_is_a_warning_not_a_crash(env, home, project):
    write(home / ".cursor" / "mcp.json", '{"mcpServers": {')
    code, report = doctor_json(env, project)
    assert code == 0
    check = by_name(report)["mcp config ~/.cursor/mcp.json"]
    assert check["status"] == "warn" and "cannot read it" in check["detail"]


def test_trackwrap_missing_from_path_fails(env, project):
    code, report = doctor_json({**env, "PATH": "/usr/bin:/bin"}, project)
    assert code == 1
    check = by_name(report)["on PATH"]
    assert check["status"] == "fail" and check["fix"]


def test_an_unreachable_collector_fails_with_the_fix(env, project):
    assert tw(env, project, "config", "set", "collector.url", "http://127.0.0.1:9").returncode == 0
    assert tw(env, project, "config", "set", "collector.token", "t0ken").returncode == 0
    done = tw(env, project, "doctor")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    bad = next(i for i, line in enumerate(lines) if line.startswith("✗ collector:"))
    assert lines[bad + 1] == "    fix: trackwrap config set collector.url URL"


def test_the_session_rule_names_the_session_a_wrapper_would_join(env, project):
    _code, report = doctor_json(env, project)
    implicit = by_name(report)["session"]
    assert implicit["data"]["rule"] == "implicit"
    assert implicit["data"]["session"].startswith("sess-")
    started = tw(env, project, "session", "start", "--role", "code-reviewer", "--workspace",
                 str(project))
    assert started.returncode == 0, started.stderr
    _code, report = doctor_json(env, project)
    explicit = by_name(report)["session"]
    assert explicit["data"]["rule"] == "explicit"
    assert explicit["data"]["session"] != implicit["data"]["session"]
    assert by_name(report)["ledger"]["status"] == "ok"
    _code, report = doctor_json({**env, "TRACKWRAP_SESSION": "sess-fixed"}, project)
    assert by_name(report)["session"]["data"] == {"session": "sess-fixed", "rule": "fixed"}


def test_a_bad_key_backend_setting_fails_without_a_traceback(env, project):
    code, report = doctor_json({**env, "TRACKWRAP_KEY_BACKEND": "vault"}, project)
    assert code == 1
    assert by_name(report)["settings"]["status"] == "fail"


@pytest.mark.parametrize(("text", "expected"), [
    ('{"a": 1, // one\n "b": [1, 2,], /* x */}', {"a": 1, "b": [1, 2]}),
    ('{"url": "http://x/y", "c": "/* not a comment */"}',
     {"url": "http://x/y", "c": "/* not a comment */"}),
    ('{"q": "say \\"hi\\", // no", "t": ",]"}', {"q": 'say "hi", // no', "t": ",]"}),
])
def test_parse_jsonc(text, expected):
    assert parse_jsonc(text) == expected
