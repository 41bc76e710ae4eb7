"""``trackwrap install`` / ``uninstall`` / ``secret`` on real config files in a throwaway HOME.

The CLI runs as a real subprocess with ``HOME`` and ``TRACKWRAP_HOME`` pointing at temp dirs.
No test touches the machine's OS keyring: subprocesses run with ``TRACKWRAP_KEY_BACKEND=file``
(from the conftest) or with keyring's ``fail`` backend, so tokens are left in place there; moving
tokens is tested in-process with a :class:`SecretStore` on its ``file`` backend injected where the
OS keyring would be (``keyrings.alt`` is not installed, and no other keyring backend works across
processes here).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests._wrapper import ECHO_POLICY, ROOT, Wrapped, call
from trackwrap.cli._install import (
    CLIENTS,
    _JsonParser,
    find_configs,
    install,
    list_secrets,
    looks_secret,
    secret_name,
    uninstall,
)
from trackwrap.crypto import SecretStore

VENV_BIN = Path(sys.executable).parent
GH_VALUE = "ghp_0123456789abcdefABCDEF0123456789abcd"
CODEX_VALUE = "sk-codex-9f8e7d6c5b4a39281706"
VSCODE_VALUE = "vsk-live-5566778899aabbcc"

CLAUDE_JSON = """{
  "numStartups": 41,
  "theme": "dark",
  "mcpServers": {
    "filesystem": {
      "type": "stdio",
      "command": "npx",
      "args": [
        "-y",
        "@modelcontextprotocol/server-filesystem",
        "/home/me/code"
      ],
      "env": {}
    },
    "github": {
      "command": "npx",
      "args": [
        "-y",
        "@modelcontextprotocol/server-github"
      ],
      "env": {
        "GITHUB_PERSONAL_ACCESS_TOKEN": "%TOKEN%",
        "GITHUB_TOOLSETS": "repos,issues"
      }
    },
    "linear": {
      "type": "http",
      "url": "https://mcp.linear.app/mcp"
    }
  },
  "projects": {
    "/home/me/code/payments": {
      "allowedTools": [],
      "mcpServers": {
        "git": {
          "command": "uvx",
          "args": ["mcp-server-git", "--repository", "/home/me/code/payments"]
        },
        "shell": {
          "command": "trackwrap",
          "args": ["--server", "shell", "--", "uvx", "mcp-shell-server"]
        }
      },
      "hasTrustDialogAccepted": true
    }
  },
  "userID": "abc"
}
""".replace("%TOKEN%", GH_VALUE)

CLAUDE_SETTINGS = """{
  "permissions": {"allow": ["Bash(ls:*)"]},
  "mcpServers": {
    "memory": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"]}
  }
}
"""

# Claude Desktop's file as written on Windows-edited machines: CRLF line endings.
DESKTOP = (
    '{\r\n  "mcpServers": {\r\n    "sqlite": {\r\n      "command": "uvx",\r\n'
    '      "args": ["mcp-server-sqlite", "--db-path", "/home/me/test.db"]\r\n    }\r\n  },\r\n'
    '  "globalShortcut": "Ctrl+Space"\r\n}\r\n'
)

CODEX_TOML = """# Codex settings
model = "o3"  # the default model
approval_policy = "on-request"

[mcp_servers.github]
command = "npx" # the runner
args = [
  "-y", # yes
  "@modelcontextprotocol/server-github",
]
env = { GITHUB_PERSONAL_ACCESS_TOKEN = "%TOKEN%", LOG_LEVEL = "info" }
startup_timeout_sec = 20

[mcp_servers.search]
command = 'uvx'
[mcp_servers.search.env]
SEARCH_API_KEY = "%CODEX%"   # rotated monthly
REGION = "eu"

[mcp_servers.docs]
url = "https://docs.example.com/mcp"

[profiles.fast]
model = "o4-mini"
""".replace("%TOKEN%", GH_VALUE).replace("%CODEX%", CODEX_VALUE)

CURSOR_HOME = """{
\t"mcpServers": {
\t\t"postgres": {
\t\t\t"command": "npx",
\t\t\t"args": ["-y", "@modelcontextprotocol/server-postgres", "postgresql://localhost/db"]
\t\t}
\t}
}"""

CURSOR_PROJECT = """{
  "mcpServers": {
    "puppeteer": { "command": "npx", "args": ["-y", "@modelcontextprotocol/server-puppeteer"] }
  }
}
"""

VSCODE = """// Workspace MCP servers (JSONC: comments and trailing commas)
{
  "inputs": [
    { "type": "promptString", "id": "gh", "description": "GitHub token", "password": true },
  ],
  "servers": {
    /* files of this workspace */
    "files": {
      "type": "stdio",
      "command": "npx", // the runner
      "env": {
        "GITHUB_TOKEN": "${input:gh}",
        "VENDOR_API_KEY": "%KEY%",
      },
    },
    "fetch": {
      "command": "uvx",
      "args": ["mcp-server-fetch"],
    },
  },
}
""".replace("%KEY%", VSCODE_VALUE)

WINDSURF = """{
  "mcpServers": {
    "time": {"command": "uvx", "args": ["mcp-server-time", "--local-timezone=Europe/Berlin"]},
    "remote-docs": {"serverUrl": "https://example.com/sse"}
  }
}
"""


def _layout(home: Path, project: Path) -> dict[str, Path]:
    return {
        "claude": home / ".claude.json",
        "claude-settings": home / ".claude" / "settings.json",
        "desktop": home / ".config" / "Claude" / "claude_desktop_config.json",
        "codex": home / ".codex" / "config.toml",
        "cursor": home / ".cursor" / "mcp.json",
        "cursor-project": project / ".cursor" / "mcp.json",
        "vscode": project / ".vscode" / "mcp.json",
        "windsurf": home / ".codeium" / "windsurf" / "mcp_config.json",
    }


CONTENTS = {
    "claude": CLAUDE_JSON, "claude-settings": CLAUDE_SETTINGS, "desktop": DESKTOP,
    "codex": CODEX_TOML, "cursor": CURSOR_HOME, "cursor-project": CURSOR_PROJECT,
    "vscode": VSCODE, "windsurf": WINDSURF,
}


@pytest.fixture
def machine(tmp_path: Path) -> tuple[Path, Path, dict[str, Path]]:
    """A HOME and a project with one realistic config per client; (home, project, files)."""
    home, project = tmp_path / "home", tmp_path / "project"
    files = _layout(home, project)
    for name, path in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(CONTENTS[name].encode())
    files["claude"].chmod(0o600)
    return home, project, files


def snapshot(files: dict[str, Path]) -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in files.items()}


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("XDG_CONFIG_HOME", "CODEX_HOME", "PYTHON_KEYRING_BACKEND")}
    env["HOME"] = str(home)
    env.update(extra)
    return env


def trackwrap(*argv: str, home: Path, cwd: Path, stdin: str | None = None,
              **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trackwrap", *argv], capture_output=True,
                          text=True, cwd=cwd, env=cli_env(home, **extra), input=stdin,
                          timeout=60)


def jsonc(text: str) -> Any:
    return _JsonParser(text).parse().python()


def data_of(name: str, path: Path) -> Any:
    text = path.read_text()
    return tomllib.loads(text) if name == "codex" else jsonc(text)


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".trackwrap-backup-*"))


def all_text_under(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*")
                     if p.is_file() and "trackwrap-home" not in p.parts)


# ---------------------------------------------------------------------------- the CLI


def test_dry_run_shows_a_masked_diff_and_changes_nothing(machine, trackwrap_home):
    home, project, files = machine
    before = snapshot(files)
    result = trackwrap("install", home=home, cwd=project)
    assert result.returncode == 0, result.stderr
    assert snapshot(files) == before
    assert not any(backups(p) for p in files.values())
    assert not (trackwrap_home / "installs.json").exists()
    out = result.stdout
    assert "Dry run: nothing was changed" in out
    assert '+      "command": "trackwrap",' in out
    assert "~/.claude.json  (Claude Code)" in out
    assert "mcpServers.linear: not wrapped: remote (HTTP) servers are not supported yet" in out
    assert "mcpServers.remote-docs: not wrapped: remote (HTTP) servers" in out
    assert "mcp_servers.docs: not wrapped: remote (HTTP) servers" in out
    assert "projects[/home/me/code/payments].mcpServers.shell: already wrapped" in out
    assert "TRACKWRAP_KEY_BACKEND=file (no OS keyring): leaving GITHUB_PERSONAL_ACCESS_TOKEN" \
        in out
    assert "must be on the PATH" in out
    for secret in (GH_VALUE, CODEX_VALUE, VSCODE_VALUE):
        assert secret not in out + result.stderr
    assert '"GITHUB_PERSONAL_ACCESS_TOKEN": "…"' in out  # context lines are masked too


def test_write_changes_exactly_the_owned_keys(machine, trackwrap_home):
    home, project, files = machine
    before = {name: data_of(name, path) for name, path in files.items()}
    raw_before = snapshot(files)
    result = trackwrap("install", "--write", home=home, cwd=project)
    assert result.returncode == 0, result.stderr
    assert "Wrapped 12 server(s) in 8 file(s)" in result.stdout

    wrapped = {  # file -> (key path of the server, original command + args)
        "claude": [(("mcpServers", "filesystem"), ["npx", "-y",
                    "@modelcontextprotocol/server-filesystem", "/home/me/code"]),
                   (("mcpServers", "github"), ["npx", "-y",
                                               "@modelcontextprotocol/server-github"]),
                   (("projects", "/home/me/code/payments", "mcpServers", "git"),
                    ["uvx", "mcp-server-git", "--repository", "/home/me/code/payments"])],
        "claude-settings": [(("mcpServers", "memory"),
                             ["npx", "-y", "@modelcontextprotocol/server-memory"])],
        "desktop": [(("mcpServers", "sqlite"),
                     ["uvx", "mcp-server-sqlite", "--db-path", "/home/me/test.db"])],
        "codex": [(("mcp_servers", "github"), ["npx", "-y",
                                               "@modelcontextprotocol/server-github"]),
                  (("mcp_servers", "search"), ["uvx"])],
        "cursor": [(("mcpServers", "postgres"), ["npx", "-y",
                    "@modelcontextprotocol/server-postgres", "postgresql://localhost/db"])],
        "cursor-project": [(("mcpServers", "puppeteer"),
                            ["npx", "-y", "@modelcontextprotocol/server-puppeteer"])],
        "vscode": [(("servers", "files"), ["npx"]), (("servers", "fetch"),
                                                     ["uvx", "mcp-server-fetch"])],
        "windsurf": [(("mcpServers", "time"),
                      ["uvx", "mcp-server-time", "--local-timezone=Europe/Berlin"])],
    }
    for name, path in files.items():
        expected = before[name]
        for key_path, argv in wrapped[name]:
            entry = expected
            for key in key_path:
                entry = entry[key]
            entry["command"] = "trackwrap"
            entry["args"] = ["--server", key_path[-1], "--", *argv]
        assert data_of(name, path) == expected, name
        # a backup of exactly the old bytes, with the same mode
        [backup] = backups(path)
        assert backup.read_bytes() == raw_before[name]
        assert stat.S_IMODE(backup.stat().st_mode) == stat.S_IMODE(path.stat().st_mode)
    assert stat.S_IMODE(files["claude"].stat().st_mode) == 0o600
    # comments, trailing commas, CRLF and tabs survive
    vscode = files["vscode"].read_text()
    assert "// Workspace MCP servers" in vscode
    assert "/* files of this workspace */" in vscode
    assert '"command": "trackwrap", // the runner\n' \
           '      "args": ["--server", "files", "--", "npx"],\n' in vscode
    assert '"${input:gh}"' in vscode
    codex = files["codex"].read_text()
    assert 'command = "trackwrap" # the runner\n' in codex
    assert "model = \"o3\"  # the default model" in codex
    assert "SEARCH_API_KEY = " in codex and "# rotated monthly" in codex
    assert files["desktop"].read_bytes().count(b"\r\n") == DESKTOP.count("\r\n")
    assert "\t\t\t\"command\": \"trackwrap\",\n" in files["cursor"].read_text()
    # no OS keyring (the file backend): the tokens stay where they were
    assert GH_VALUE in files["claude"].read_text()
    assert CODEX_VALUE in codex
    records = json.loads((trackwrap_home / "installs.json").read_text())["servers"]
    assert len(records) == 12
    assert GH_VALUE not in (trackwrap_home / "installs.json").read_text()


def test_second_install_changes_nothing(machine):
    home, project, files = machine
    assert trackwrap("install", "--write", home=home, cwd=project).returncode == 0
    after_first = snapshot(files)
    first_backups = {name: backups(path) for name, path in files.items()}
    again = trackwrap("install", "--write", home=home, cwd=project)
    assert again.returncode == 0, again.stderr
    assert snapshot(files) == after_first
    assert {name: backups(path) for name, path in files.items()} == first_backups
    assert "mcpServers.github: already wrapped" in again.stdout
    assert "Nothing to change." in again.stdout
    assert "+++" not in again.stdout


def test_uninstall_restores_every_file_byte_for_byte(machine, trackwrap_home):
    home, project, files = machine
    original = snapshot(files)
    assert trackwrap("install", "--write", home=home, cwd=project).returncode == 0
    wrapped = snapshot(files)
    dry = trackwrap("uninstall", home=home, cwd=project)
    assert dry.returncode == 0, dry.stderr
    assert snapshot(files) == wrapped
    assert "Dry run" in dry.stdout
    assert '-      "command": "trackwrap",' in dry.stdout
    done = trackwrap("uninstall", "--write", home=home, cwd=project)
    assert done.returncode == 0, done.stderr
    assert "Unwrapped 12 server(s)" in done.stdout
    assert ("projects[/home/me/code/payments].mcpServers.shell: wrapped, but not by "
            "`trackwrap install`") in done.stdout
    assert snapshot(files) == original
    assert json.loads((trackwrap_home / "installs.json").read_text())["servers"] == []
    again = trackwrap("uninstall", "--write", home=home, cwd=project)
    assert "Nothing to put back." in again.stdout


def test_uninstall_from_another_directory_finds_the_project_files(machine):
    home, project, files = machine
    original = snapshot(files)
    assert trackwrap("install", "--write", home=home, cwd=project).returncode == 0
    elsewhere = home / "elsewhere"
    elsewhere.mkdir()
    assert trackwrap("uninstall", "--write", home=home, cwd=elsewhere).returncode == 0
    assert snapshot(files) == original


def test_uninstall_leaves_a_server_changed_since_install(machine):
    home, project, files = machine
    path = files["cursor-project"]
    assert trackwrap("install", "--write", "--client", "cursor", "--project", str(project),
                     home=home, cwd=home).returncode == 0
    edited = path.read_text().replace('"@modelcontextprotocol/server-puppeteer"]',
                                      '"@modelcontextprotocol/server-puppeteer", "--headless"]')
    path.write_text(edited)
    result = trackwrap("uninstall", "--write", "--client", "cursor", home=home, cwd=home)
    assert result.returncode == 0, result.stderr
    assert "mcpServers.puppeteer: left as it is: it was changed since install" in result.stdout
    assert path.read_text() == edited
    assert files["cursor"].read_text() == CURSOR_HOME  # the other Cursor file went back


def test_uninstall_after_the_client_reformatted_its_file(machine):
    """Claude Code rewrites ~/.claude.json with its own formatting; the values still match."""
    home, project, files = machine
    path = files["claude"]
    before = jsonc(CLAUDE_JSON)
    assert trackwrap("install", "--write", "--client", "claude-code", home=home,
                     cwd=project).returncode == 0
    path.write_text(json.dumps(json.loads(path.read_text()), indent=2) + "\n")
    result = trackwrap("uninstall", "--write", "--client", "claude-code", home=home,
                       cwd=project)
    assert result.returncode == 0, result.stderr
    assert json.loads(path.read_text()) == before


def test_a_broken_file_is_reported_and_the_others_still_done(machine):
    home, project, files = machine
    files["windsurf"].write_text('{"mcpServers": {"time": {"command": "uvx",,}}}')
    result = trackwrap("install", "--write", home=home, cwd=project)
    assert result.returncode == 1
    assert ("error: cannot parse mcp_config.json (line 1, column 43: expected a key in double "
            "quotes); left as it is") in result.stdout
    assert "Traceback" not in result.stderr
    assert json.loads(files["cursor-project"].read_text())["mcpServers"]["puppeteer"][
        "command"] == "trackwrap"


def test_symlinked_config_is_edited_through_the_link(machine):
    home, project, files = machine
    real = home / "dotfiles" / "mcp.json"
    real.parent.mkdir()
    real.write_text(CURSOR_PROJECT)
    files["cursor-project"].unlink()
    files["cursor-project"].symlink_to(real)
    assert trackwrap("install", "--write", "--client", "cursor", home=home,
                     cwd=project).returncode == 0
    assert files["cursor-project"].is_symlink()
    assert '"command": "trackwrap"' in real.read_text()


def test_settings_json_without_servers_is_not_mentioned(tmp_path):
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text('{"permissions": {}}\n')
    result = trackwrap("install", "--client", "claude-code", home=home, cwd=home)
    assert result.returncode == 0, result.stderr
    assert "settings.json" not in result.stdout
    assert "Nothing to change." in result.stdout


def test_nothing_found_and_bad_client(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    result = trackwrap("install", home=home, cwd=home)
    assert result.returncode == 0
    assert "No MCP client config found" in result.stdout
    assert str(home / ".codex" / "config.toml") in result.stdout
    bad = trackwrap("install", "--client", "emacs", home=home, cwd=home)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "unknown client 'emacs'" in bad.stderr


def test_no_keyring_backend_leaves_the_token_in_place(machine):
    home, project, files = machine
    result = trackwrap("install", "--write", "--client", "claude-code", home=home, cwd=project,
                       TRACKWRAP_KEY_BACKEND="auto",
                       PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    assert result.returncode == 0, result.stderr
    assert ("no OS keyring backend: leaving GITHUB_PERSONAL_ACCESS_TOKEN in ~/.claude.json"
            in result.stdout)
    github = json.loads(files["claude"].read_text())["mcpServers"]["github"]
    assert github["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"] == GH_VALUE
    assert "--secret" not in github["args"]
    assert GH_VALUE not in result.stdout + result.stderr


def test_trackwrap_path_and_subcommand_like_names(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    config = home / ".cursor" / "mcp.json"
    config.parent.mkdir()
    config.write_text('{"mcpServers": {"sync": {"command": "uvx", "args": ["x"]}}}')
    result = trackwrap("install", "--write", "--client", "cursor", "--trackwrap-path",
                       "/opt/tw/bin/trackwrap", home=home, cwd=home)
    assert result.returncode == 0, result.stderr
    entry = json.loads(config.read_text())["mcpServers"]["sync"]
    assert entry == {"command": "/opt/tw/bin/trackwrap",
                     "args": ["--server=sync", "--", "uvx", "x"]}
    assert "already wrapped" in trackwrap("install", "--client", "cursor", "--trackwrap-path",
                                          "/opt/tw/bin/trackwrap", home=home, cwd=home).stdout


def test_help_lists_the_commands(tmp_path):
    result = trackwrap("--help", home=tmp_path, cwd=tmp_path)
    for name in ("install", "uninstall", "secret"):
        assert f"\n  {name} " in result.stdout


# ---------------------------------------------------------------------------- moving tokens


def test_tokens_move_to_the_keyring_and_come_back(machine, trackwrap_home):
    """In-process, with the secret store's file backend standing in for the OS keyring."""
    home, project, files = machine
    original = snapshot(files)
    keeper = SecretStore(trackwrap_home, backend="file", warn=lambda _m: None)
    configs = find_configs(CLIENTS, home=home, project=project, platform="linux", environ={})
    assert len(configs) == 8

    dry = install(configs, home=trackwrap_home, user_home=home, keeper=keeper, write=False)
    assert snapshot(files) == original
    assert keeper.get(secret_name("github", "GITHUB_PERSONAL_ACCESS_TOKEN")) is None
    shown = "\n".join(line for report in dry for line in report.diff)
    for secret in (GH_VALUE, CODEX_VALUE, VSCODE_VALUE):
        assert secret not in shown

    reports = install(configs, home=trackwrap_home, user_home=home, keeper=keeper, write=True)
    assert not [r.error for r in reports if r.error]
    # the token is in the store, under the server's name, and nowhere in any config or backup
    assert keeper.get("server.github.github_personal_access_token") == GH_VALUE
    assert keeper.get("server.search.search_api_key") == CODEX_VALUE
    assert keeper.get("server.files.vendor_api_key") == VSCODE_VALUE
    on_disk = all_text_under(home) + all_text_under(project)
    for secret in (GH_VALUE, CODEX_VALUE, VSCODE_VALUE):
        assert secret not in on_disk
    assert "moved-to-the-os-keyring:server.github.github_personal_access_token" in \
        backups(files["claude"])[0].read_text()
    assert GH_VALUE not in (trackwrap_home / "installs.json").read_text()
    assert ("github", "GITHUB_PERSONAL_ACCESS_TOKEN",
            "server.github.github_personal_access_token") in list_secrets(trackwrap_home)

    github = jsonc(files["claude"].read_text())["mcpServers"]["github"]
    assert github["args"] == ["--server", "github", "--secret", "GITHUB_PERSONAL_ACCESS_TOKEN",
                              "--", "npx", "-y", "@modelcontextprotocol/server-github"]
    assert github["env"] == {"GITHUB_TOOLSETS": "repos,issues"}
    codex = tomllib.loads(files["codex"].read_text())["mcp_servers"]
    assert codex["github"]["env"] == {"LOG_LEVEL": "info"}
    assert codex["search"]["env"] == {"REGION": "eu"}
    assert codex["search"]["args"] == ["--server", "search", "--secret", "SEARCH_API_KEY",
                                       "--", "uvx"]
    vscode = jsonc(files["vscode"].read_text())["servers"]["files"]
    assert vscode["env"] == {"GITHUB_TOKEN": "${input:gh}"}  # a reference is not a secret
    # the same GITHUB_PERSONAL_ACCESS_TOKEN of a server named github, in Codex: one secret
    assert "GITHUB_PERSONAL_ACCESS_TOKEN moved to the OS keyring" in [
        n for r in reports if r.config.client == "codex" for o in r.outcomes for n in o.notes]

    undone = uninstall(configs, clients=CLIENTS, home=trackwrap_home, user_home=home,
                       keeper=keeper, write=True)
    assert not [r.error for r in undone if r.error]
    assert snapshot(files) == original
    assert keeper.get("server.github.github_personal_access_token") is None
    assert list_secrets(trackwrap_home) == []


def test_a_different_token_under_the_same_name_is_not_overwritten(tmp_path, trackwrap_home):
    home = tmp_path / "home"
    (home / ".cursor").mkdir(parents=True)
    config = home / ".cursor" / "mcp.json"
    text = '{"mcpServers": {"gh": {"command": "npx", "env": {"GH_TOKEN": "new-token-value"}}}}'
    config.write_text(text)
    keeper = SecretStore(trackwrap_home, backend="file", warn=lambda _m: None)
    keeper.set("server.gh.gh_token", "old-token-value")
    configs = find_configs(["cursor"], home=home, project=home, platform="linux", environ={})
    [report] = install(configs, home=trackwrap_home, user_home=home, keeper=keeper, write=True)
    [outcome] = report.outcomes
    assert outcome.status == "wrap"
    assert any("leaving GH_TOKEN in ~/.cursor/mcp.json: another server named gh keeps a "
               "different GH_TOKEN" in note for note in outcome.notes)
    assert json.loads(config.read_text())["mcpServers"]["gh"]["env"] == {
        "GH_TOKEN": "new-token-value"}
    assert keeper.get("server.gh.gh_token") == "old-token-value"


def test_uninstall_without_the_token_leaves_the_server_wrapped(tmp_path, trackwrap_home):
    home = tmp_path / "home"
    (home / ".cursor").mkdir(parents=True)
    config = home / ".cursor" / "mcp.json"
    config.write_text('{"mcpServers": {"gh": {"command": "npx", "env": {"GH_TOKEN": "t0k3n"}}}}')
    keeper = SecretStore(trackwrap_home, backend="file", warn=lambda _m: None)
    configs = find_configs(["cursor"], home=home, project=home, platform="linux", environ={})
    install(configs, home=trackwrap_home, user_home=home, keeper=keeper, write=True)
    wrapped = config.read_text()
    keeper.delete("server.gh.gh_token")
    [report] = uninstall(configs, clients=["cursor"], home=trackwrap_home, user_home=home,
                         keeper=keeper, write=True)
    [outcome] = report.outcomes
    assert outcome.status == "keep"
    assert "GH_TOKEN is not in the OS keyring any more" in outcome.detail
    assert config.read_text() == wrapped


def test_secret_looking_names():
    for name in ("GITHUB_PERSONAL_ACCESS_TOKEN", "API_KEY", "apikey", "DB_PASSWORD",
                 "GITLAB_PAT", "client_secret", "AWS_CREDENTIALS"):
        assert looks_secret(name), name
    for name in ("PATH", "NODE_PATH", "PYTHONPATH", "LOG_LEVEL", "REGION"):
        assert not looks_secret(name), name
    assert secret_name("My Server", "GITHUB_TOKEN") == "server.my-server.github_token"


# ---------------------------------------------------------------------------- the wrapper


def _wrapped_argv(config: Path, server: str, *options: str) -> list[str]:
    entry = json.loads(config.read_text())["mcpServers"][server]
    args = entry["args"]
    split = args.index("--")
    return [entry["command"], *args[:split], *options, *args[split:]]


@pytest.mark.anyio
async def test_a_wrapped_config_starts_its_server_through_trackwrap(tmp_path):
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    config = project / ".mcp.json"
    config.write_text(json.dumps({"mcpServers": {"echo": {
        "command": sys.executable, "args": ["-m", "tests.servers.echo"]}}}, indent=2))
    result = trackwrap("install", "--write", "--client", "claude-code", "--project",
                       str(project), home=home, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    argv = _wrapped_argv(config, "echo", "--policy", str(ECHO_POLICY))
    assert argv[0] == "trackwrap"
    env = cli_env(home, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                  PYTHONPATH=str(ROOT))
    wrapped = await Wrapped.start(argv, env=env, cwd=ROOT)
    try:
        init = await wrapped.initialize()
        assert init["result"]["serverInfo"]["name"] == "echo"
        reply = await wrapped.request(call(1, "echo", {"message": "through the config"}))
        assert reply["result"]["content"][0]["text"] == "through the config"
        code, _err = await wrapped.finish()
        assert code == 0
    finally:
        wrapped.kill()


PROBE_POLICY = """version: 1
rules:
  - id: PROBE-ALLOW
    description: the env probe's one tool
    outcome: allow
    when:
      kind: [probe.getenv]
"""


@pytest.mark.anyio
async def test_secret_is_injected_into_the_servers_environment(tmp_path, trackwrap_home):
    home = tmp_path / "home"
    home.mkdir()
    policy = tmp_path / "probe-policy.yaml"
    policy.write_text(PROBE_POLICY)
    stored = trackwrap("secret", "set", "probe", "PROBE_TOKEN", "-", home=home, cwd=ROOT,
                       stdin="s3cr3t-probe-value\n")
    assert stored.returncode == 0, stored.stderr
    assert "s3cr3t-probe-value" not in stored.stdout + stored.stderr
    listed = trackwrap("secret", "list", home=home, cwd=ROOT)
    assert listed.stdout.split() == ["probe", "PROBE_TOKEN"]

    argv = [sys.executable, "-m", "trackwrap", "--server", "probe", "--secret", "PROBE_TOKEN",
            "--policy", str(policy), "--", sys.executable, "-m", "tests.servers.env_probe"]
    env = cli_env(home, PYTHONPATH=str(ROOT), **{"PROBE_TOKEN": "from-the-ide"})
    wrapped = await Wrapped.start(argv, env=env, cwd=ROOT)
    try:
        await wrapped.initialize()
        reply = await wrapped.request(call(1, "getenv", {"name": "PROBE_TOKEN"}))
        assert reply["result"]["content"][0]["text"] == "s3cr3t-probe-value"
        code, err = await wrapped.finish()
        assert code == 0
        assert "s3cr3t-probe-value" not in err
    finally:
        wrapped.kill()

    deleted = trackwrap("secret", "delete", "probe", "PROBE_TOKEN", home=home, cwd=ROOT)
    assert "PROBE_TOKEN for probe deleted" in deleted.stdout
    assert trackwrap("secret", "list", home=home, cwd=ROOT).stdout.strip() == \
        "No server secrets stored."


def test_a_missing_secret_is_a_clear_error(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    argv = ["--server", "probe", "--secret", "NOT_STORED", "--", sys.executable, "-m",
            "tests.servers.env_probe"]
    result = trackwrap(*argv, home=home, cwd=ROOT, stdin="")
    assert result.returncode == 2
    assert "no token NOT_STORED is stored for server probe" in result.stderr
    assert "trackwrap secret set probe NOT_STORED" in result.stderr
    assert "Traceback" not in result.stderr
    nameless = trackwrap("--secret", "X_TOKEN", "--", sys.executable, "-c", "pass", home=home,
                         cwd=ROOT, stdin="")
    assert nameless.returncode == 2
    assert "--secret needs --server NAME" in nameless.stderr


# ---------------------------------------------------------------------------- agent hooks

SETTINGS_WITH_HOOKS = """{
  "permissions": {"allow": ["Bash(ls:*)"]},
  "hooks": {
    "PreToolUse": [
      {"matcher": "Write", "hooks": [{"type": "command", "command": "./check-write.sh"}]}
    ]
  }
}
"""


def test_hooks_are_spliced_in_once_and_taken_out_exactly(tmp_path, trackwrap_home):
    home = tmp_path / "home"
    settings = home / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(SETTINGS_WITH_HOOKS)
    (home / ".codex").mkdir()
    codex_hooks = home / ".codex" / "hooks.json"

    result = trackwrap("install", "--hooks", "--write", "--client", "claude-code", "--client",
                       "codex", home=home, cwd=home)
    assert result.returncode == 0, result.stderr
    assert "Added 2 hook(s) in 2 file(s)" in result.stdout
    groups = json.loads(settings.read_text())["hooks"]["PreToolUse"]
    assert groups[0]["hooks"][0]["command"] == "./check-write.sh"
    assert groups[1]["hooks"] == [{"type": "command", "command": "trackwrap hook claude-code"}]
    kept = SETTINGS_WITH_HOOKS[:SETTINGS_WITH_HOOKS.index("]}\n") + 2]
    assert settings.read_text().startswith(kept + ",\n      {\n")  # spliced in after it
    assert json.loads(codex_hooks.read_text())["hooks"]["PreToolUse"][0]["hooks"][0][
        "command"] == "trackwrap hook codex"

    again = trackwrap("install", "--hooks", "--write", "--client", "claude-code", "--client",
                      "codex", home=home, cwd=home)
    assert "trackwrap's hook is already there" in again.stdout
    assert len(json.loads(settings.read_text())["hooks"]["PreToolUse"]) == 2

    undone = trackwrap("uninstall", "--write", home=home, cwd=home)
    assert undone.returncode == 0, undone.stderr
    assert "Removed 2 hook(s)" in undone.stdout
    assert settings.read_text() == SETTINGS_WITH_HOOKS
    assert not codex_hooks.exists()  # trackwrap made it, unchanged since: gone again


def test_no_hook_for_a_client_not_set_up_here(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    result = trackwrap("install", "--hooks", "--write", "--client", "codex", home=home, cwd=home)
    assert result.returncode == 0, result.stderr
    assert "no hook added: Codex is not set up here" in result.stdout
    assert not (home / ".codex").exists()


# ---------------------------------------------------------------------------- odd layouts

ODD_JSON = {
    "one line": '{"mcpServers":{"a":{"command":"npx","env":{"A_TOKEN":"v1","B_KEY":"v2"}},'
                '"b":{"command":"uvx","args":[]}}}',
    "comment after the last member": '{\n  "mcpServers": {\n    "a": {\n'
                                     '      "command": "npx" // last\n    }\n  }\n}\n',
    "byte order mark, comments in env": '\ufeff{\n  "mcpServers": {\n    "a": {"command": "npx", '
                                        '"args": ["x"], "env": {\n      // tok\n      '
                                        '"A_TOKEN": "v1", /* mid */\n      "Z": "z",\n      '
                                        '"B_TOKEN": "v2"\n    }}\n  }\n}\n',
    "escaped token stays": '{"mcpServers": {"a": {"command": "np\\u0078", '
                           '"env": {"A_TOKEN": "v\\u00e9"}}}}',
}

ODD_TOML = {
    "dotted keys and inline tables": '[mcp_servers]\ngh.command = "npx"\ngh.env.GH_TOKEN = "t1"\n'
                                     'gh.env.X = "y"\nfs = { command = "uvx", env = { API_KEY = '
                                     '"k", B = "c" } }\nlone = { command = "uvx" }\n',
    "no newline at the end": '[mcp_servers.a]\ncommand = "uvx"',
    "CRLF": '[mcp_servers.a]\r\ncommand = "uvx"\r\nenv = { A_TOKEN = "zz" }\r\n\r\n'
            '[mcp_servers.b]\r\ncommand = "npx"\r\nargs = ["-y", "x"]\r\n',
    "dotted from the root": 'mcp_servers.a.command = "uvx"\nmcp_servers.a.args = ["q"]\n'
                            'model = "x"\n',
    "env table after another server": '[mcp_servers.a]\ncommand = "uvx"\n[mcp_servers.b]\n'
                                      'command = "npx"\n[mcp_servers.a.env]\nA_KEY = "sa"\n',
}


@pytest.mark.parametrize(("client", "text"), [
    *[pytest.param("cursor", t, id=f"json: {k}") for k, t in ODD_JSON.items()],
    *[pytest.param("codex", t, id=f"toml: {k}") for k, t in ODD_TOML.items()],
])
def test_odd_layouts_round_trip(tmp_path, trackwrap_home, client, text):
    home = tmp_path / "home"
    path = home / (".cursor/mcp.json" if client == "cursor" else ".codex/config.toml")
    path.parent.mkdir(parents=True)
    path.write_bytes(text.encode())
    keeper = SecretStore(trackwrap_home, backend="file", warn=lambda _m: None)
    configs = find_configs([client], home=home, project=home, platform="linux", environ={})
    [report] = install(configs, home=trackwrap_home, user_home=home, keeper=keeper, write=True)
    assert report.error is None
    assert {o.status for o in report.outcomes} == {"wrap"}
    new = path.read_text()
    data = jsonc(new) if client == "cursor" else tomllib.loads(new)
    servers = data["mcpServers" if client == "cursor" else "mcp_servers"]
    for name, server in servers.items():
        assert server["command"] == "trackwrap"
        assert server["args"][:2] == ["--server", name]
        assert not [k for k in server.get("env", {}) if looks_secret(k)] \
            or "written with escapes" in report.outcomes[0].notes[0]
    [undone] = uninstall(configs, clients=[client], home=trackwrap_home, user_home=home,
                         keeper=keeper, write=True)
    assert undone.error is None
    assert path.read_bytes() == text.encode()


def test_one_secret_name_for_two_servers_is_refused(tmp_path, trackwrap_home):
    home = tmp_path / "home"
    (home / ".cursor").mkdir(parents=True)
    config = home / ".cursor" / "mcp.json"
    config.write_text('{"mcpServers": {'
                      '"my server": {"command": "a", "env": {"GH_TOKEN": "one"}}, '
                      '"my-server": {"command": "b", "env": {"GH_TOKEN": "one"}}}}')
    keeper = SecretStore(trackwrap_home, backend="file", warn=lambda _m: None)
    configs = find_configs(["cursor"], home=home, project=home, platform="linux", environ={})
    [report] = install(configs, home=trackwrap_home, user_home=home, keeper=keeper, write=True)
    assert report.error is None
    first, second = report.outcomes
    assert first.notes == ("GH_TOKEN moved to the OS keyring",)
    assert "secret name server.my-server.gh_token is already used by GH_TOKEN of server " \
           "my server" in second.notes[0]
    assert json.loads(config.read_text())["mcpServers"]["my-server"]["env"] == {
        "GH_TOKEN": "one"}
