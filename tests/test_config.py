"""Strict YAML loading, profile/policy loading from disk, server-name inference."""

from __future__ import annotations

from pathlib import Path

import pytest

from trackwrap.config import (
    RealFileSystem,
    default_profiles_dir,
    infer_server_name,
    load_policy,
    load_server_profiles,
    load_yaml,
)
from trackwrap.errors import ConfigError, InspectorError, ProfileError

RULE = """\
version: 1
rules:
  - id: READ-ALLOW
    outcome: allow
    when: {kind: [filesystem.read]}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_load_yaml_plain_data(tmp_path: Path) -> None:
    data = load_yaml(write(tmp_path / "a.yaml", "a: [1, 2.5, true, null, 2024-01-01, x]\n"))
    assert data == {"a": [1, 2.5, True, None, "2024-01-01", "x"]}


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a'"),
        ("a: 1\nb: !!python/object:os.system x\n", 2, "tags are not allowed"),
        ("a: !!binary aGVsbG8=\n", 1, "tags are not allowed"),
        ("a: !custom x\n", 1, "tags are not allowed"),
        ("a: &x [1]\nb: *x\n", 2, "aliases are not allowed"),
        ("a: [1\nb: 2\n", 2, ""),
        ("rules:\n  - id: X\n    id: Y\n", 3, "duplicate key 'id'"),
    ],
)
def test_load_yaml_rejects_with_file_and_line(
    tmp_path: Path, text: str, line: int, problem: str
) -> None:
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(ProfileError) as caught:
        load_yaml(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert problem in str(caught.value)


def test_load_yaml_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"a: \xff\n")
    with pytest.raises(ProfileError, match="cannot read"):
        load_yaml(bad)


def test_load_policy_files_and_directories(tmp_path: Path) -> None:
    write(tmp_path / "pol" / "a.yaml", RULE)
    write(tmp_path / "pol" / "b.yaml", RULE.replace("READ-ALLOW", "OTHER-ALLOW"))
    write(tmp_path / "pol" / "notes.txt", "ignored")
    policy = load_policy([tmp_path / "pol"])
    assert [rule.id for rule in policy.rules] == ["READ-ALLOW", "OTHER-ALLOW"]
    assert policy.rules[1].source == str(tmp_path / "pol" / "b.yaml")
    single = load_policy([tmp_path / "pol" / "a.yaml"])
    assert [rule.id for rule in single.rules] == ["READ-ALLOW"]


def test_load_policy_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProfileError, match="no policy rules"):
        load_policy([tmp_path / "empty"])
    with pytest.raises(ProfileError, match="no policy rules"):
        load_policy([])
    with pytest.raises(ProfileError, match="no such"):
        load_policy([tmp_path / "nope.yaml"])
    corrupt = write(tmp_path / "corrupt.yaml", "version: 1\nrules: [\n")
    with pytest.raises(ProfileError, match=r"corrupt\.yaml"):
        load_policy([corrupt])
    unknown = write(tmp_path / "u.yaml", RULE.replace("outcome: allow", "outcome: allow\n    x: 1"))
    with pytest.raises(ProfileError) as caught:
        load_policy([unknown])
    assert "u.yaml" in str(caught.value)
    assert "rule READ-ALLOW" in str(caught.value)
    tz = write(
        tmp_path / "tz.yaml",
        RULE.replace(
            "when: {kind: [filesystem.read]}", "when: {time: {days: [mon], tz: Nowhere/Land}}"
        ),
    )
    with pytest.raises(ProfileError, match="unknown time zone"):
        load_policy([tz])
    dup = write(tmp_path / "d" / "a.yaml", RULE)
    write(tmp_path / "d" / "b.yaml", RULE)
    with pytest.raises(ProfileError, match="duplicate rule id"):
        load_policy([dup.parent])


PROFILE = """\
version: 1
name: demo
match: [demo-server]
tools:
  read: {kind: filesystem.read, read: [path]}
"""


def test_load_server_profiles_override_and_duplicates(tmp_path: Path) -> None:
    write(tmp_path / "one" / "servers" / "demo.yaml", PROFILE)
    write(tmp_path / "two" / "demo.yaml", PROFILE.replace("filesystem.read", "demo.read"))
    profiles = load_server_profiles([tmp_path / "one", tmp_path / "two"])
    assert profiles["demo"].tools["read"].kind == "demo.read"
    write(tmp_path / "three" / "x.yaml", PROFILE)
    write(tmp_path / "three" / "y.yaml", PROFILE)
    with pytest.raises(ProfileError, match="also defined"):
        load_server_profiles([tmp_path / "three"])
    with pytest.raises(ProfileError, match="not a directory"):
        load_server_profiles([tmp_path / "missing"])
    write(tmp_path / "four" / "x.yaml", PROFILE + "  write: {kind: fs.write, writes: [path]}\n")
    with pytest.raises(ProfileError, match="unknown key 'writes'"):
        load_server_profiles([tmp_path / "four"])


def test_default_profiles_dir_is_the_repository_profiles() -> None:
    directory = default_profiles_dir()
    assert (directory / "servers").is_dir()
    assert (directory / "policy" / "default.yaml").is_file()


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["npx", "-y", "@modelcontextprotocol/server-filesystem", "/w"], "filesystem"),
        (["uvx", "mcp-server-git", "--repository", "/r"], "git"),
        (["python", "-m", "mcp_server_git"], "git"),
        (["npx", "-y", "@modelcontextprotocol/server-github"], "github"),
        (["uvx", "mcp-shell-server"], "shell"),
        (["npx", "@wonderwhy-er/desktop-commander@latest"], "desktop-commander"),
        (["npx", "-y", "@scope/server-foo"], "server-foo"),
        (["npx", "-y", "@scope/server-foo@1.2.3", "--flag"], "server-foo"),
        (["/usr/bin/foo", "--x"], "foo"),
        (["node", "dist/index.js"], "index"),
        (["python3", "-m", "my_server"], "my_server"),
        (["/venv/bin/python", "-m", "trackwrap.demo_servers.outbox", "--outbox", "/o"], "outbox"),
    ],
)
def test_infer_server_name(argv: list[str], name: str) -> None:
    profiles = load_server_profiles([default_profiles_dir()])
    assert infer_server_name(argv, profiles) == name


def test_infer_server_name_empty_argv() -> None:
    with pytest.raises(ConfigError):
        infer_server_name([], {})


def test_real_filesystem(tmp_path: Path) -> None:
    fs = RealFileSystem()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    assert fs.realpath(str(tmp_path / "link" / "new")) == str(
        (tmp_path / "target").resolve() / "new"
    )
    with pytest.raises(InspectorError):
        fs.realpath("a\x00b")
