"""Real servers (npm and PyPI, pinned) behind a real trackwrap, driven by the MCP SDK client."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp import types as mt
from mcp.client.stdio import stdio_client

from tests._peers import EVERYTHING, FILESYSTEM, GIT, ROOT, SHELL, requires_peers

pytestmark = [pytest.mark.anyio, pytest.mark.peers, requires_peers]

EVERYTHING_POLICY = ROOT / "tests" / "data" / "everything-policy.yaml"
TIMEOUT = 60  # real servers under npx/node start in a second or two; CI machines are slower


def wrapped(argv: list[str], *, server: str, workspace: Path | None = None,
            policy: Path | None = None, extra_env: dict[str, str] | None = None
            ) -> StdioServerParameters:
    args = ["-m", "trackwrap", "--server", server]
    if workspace is not None:
        args += ["--workspace", str(workspace)]
    if policy is not None:
        args += ["--policy", str(policy)]
    return StdioServerParameters(
        command=sys.executable, args=[*args, "--", *argv],
        env={**os.environ, **(extra_env or {})}, cwd=str(workspace or ROOT))


def direct(argv: list[str], *, extra_env: dict[str, str] | None = None,
           cwd: Path | None = None) -> StdioServerParameters:
    return StdioServerParameters(command=argv[0], args=argv[1:],
                                 env={**os.environ, **(extra_env or {})},
                                 cwd=str(cwd or ROOT))


@asynccontextmanager
async def client(params: StdioServerParameters, errlog: Path, **kw: Any) -> AsyncIterator[Client]:
    with errlog.open("a") as log, anyio.fail_after(TIMEOUT):
        async with Client(stdio_client(params, errlog=log), **kw) as c:
            yield c


def dump(result: Any) -> Any:
    return result.model_dump(mode="json", exclude_none=True)


async def sampling(context: Any, params: mt.CreateMessageRequestParams) -> mt.CreateMessageResult:
    return mt.CreateMessageResult(
        role="assistant", content=mt.TextContent(type="text", text="sampled by the test"),
        model="test-model", stop_reason="endTurn")


async def test_everything_passes_unchanged(tmp_path):
    argv = [str(EVERYTHING), "stdio"]
    seen: dict[str, Any] = {}
    for label, params in (("direct", direct(argv)),
                          ("wrapped", wrapped(argv, server="everything",
                                              policy=EVERYTHING_POLICY))):
        async with client(params, tmp_path / "err.log", sampling_callback=sampling) as c:
            tools = await c.list_tools()
            resources = await c.list_resources()
            contents = await c.read_resource(resources.resources[0].uri)
            prompts = await c.list_prompts()
            prompt = await c.get_prompt("simple-prompt")
            echo = await c.call_tool("echo", {"message": "héllo"})
            total = await c.call_tool("get-sum", {"a": 2, "b": 3})
            structured = await c.call_tool("get-structured-content", {"location": "New York"})
            sampled = await c.call_tool("trigger-sampling-request",
                                        {"prompt": "hi", "maxTokens": 10})
            seen[label] = [dump(x) for x in (tools, resources, contents, prompts, prompt, echo,
                                             total, structured)]
            seen[label + "-sampled"] = dump(sampled)
    assert seen["wrapped"] == seen["direct"]
    assert "sampled by the test" in str(seen["wrapped-sampled"])
    assert seen["wrapped-sampled"] == seen["direct-sampled"]


async def test_everything_tool_outside_policy_is_denied(tmp_path):
    params = wrapped([str(EVERYTHING), "stdio"], server="everything", policy=EVERYTHING_POLICY)
    async with client(params, tmp_path / "err.log") as c:
        result = await c.call_tool("get-env", {})
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith("DENY everything.get-env")
    assert "rule DEFAULT-DENY" in text


async def test_filesystem_denied_calls_never_reach_the_server(tmp_path):
    root = tmp_path / "root"
    ws = root / "ws"
    outside = root / "outside"
    ws.mkdir(parents=True)
    outside.mkdir()
    (ws / "notes.txt").write_text("inside the workspace\n")
    (outside / "secret.txt").write_text("top secret\n")
    # The server may touch all of root; trackwrap scopes the agent to ws.
    params = wrapped([str(FILESYSTEM), str(root)], server="filesystem", workspace=ws)
    async with client(params, tmp_path / "err.log") as c:
        ok = await c.call_tool("read_text_file", {"path": str(ws / "notes.txt")})
        read = await c.call_tool("read_text_file", {"path": str(outside / "secret.txt")})
        write = await c.call_tool("write_file", {"path": str(outside / "new.txt"),
                                                 "content": "x"})
        escape = await c.call_tool("write_file", {"path": str(ws / ".." / "outside" / "e.txt"),
                                                  "content": "x"})
        many = await c.call_tool("read_multiple_files", {
            "paths": [str(ws / "notes.txt"), str(outside / "secret.txt")]})
    assert not ok.is_error
    assert ok.content[0].text == "inside the workspace\n"  # type: ignore[union-attr]
    for denied in (read, write, escape, many):
        assert denied.is_error
        assert denied.content[0].text.startswith("DENY ")  # type: ignore[union-attr]
        assert "rule WORKSPACE-PATH-SCOPE" in denied.content[0].text  # type: ignore[union-attr]
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def _git_repo(path: Path) -> Path:
    path.mkdir()
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(path.parent)}
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "t@example.com"],
                 ["config", "user.name", "T"]):
        subprocess.run(["git", *args], cwd=path, check=True, env=env)
    (path / "a.txt").write_text("a\n")
    subprocess.run(["git", "add", "a.txt"], cwd=path, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", "init"], cwd=path, check=True, env=env)
    return path


async def test_git_server_on_the_2026_wire(tmp_path):
    repo = _git_repo(tmp_path / "repo")
    (repo / "a.txt").write_text("changed\n")
    argv = [str(GIT), "--repository", str(repo)]
    results = {}
    for label, params in (("direct", direct(argv, cwd=repo)),
                          ("wrapped", wrapped(argv, server="git", workspace=repo))):
        async with client(params, tmp_path / "err.log") as c:
            results[label] = (c.protocol_version,
                              dump(await c.call_tool("git_status", {"repo_path": str(repo)})),
                              dump(await c.call_tool("git_diff_unstaged",
                                                     {"repo_path": str(repo)})))
    assert results["wrapped"] == results["direct"]
    assert results["wrapped"][0] == "2026-07-28"
    async with client(wrapped(argv, server="git", workspace=repo), tmp_path / "err.log") as c:
        reset = await c.call_tool("git_reset", {"repo_path": str(repo)})
        other = await c.call_tool("git_status", {"repo_path": str(tmp_path)})
    assert reset.is_error and "DENY git.reset" in reset.content[0].text  # type: ignore[union-attr]
    assert other.is_error and "WORKSPACE-PATH-SCOPE" in other.content[0].text  # type: ignore[union-attr]
    assert (repo / "a.txt").read_text() == "changed\n"


async def test_shell_server_runs_tests_and_nothing_else(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "test_x.py").write_text("def test_ok():\n    assert True\n")
    (ws / "keep.txt").write_text("keep\n")
    env = {"ALLOW_COMMANDS": "pytest,rm,curl",
           "MCP_SHELL_SAFE_PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                                   "/usr/local/bin:/usr/bin:/bin"])}
    params = wrapped([str(SHELL)], server="shell", workspace=ws, extra_env=env)
    async with client(params, tmp_path / "err.log") as c:
        tests = await c.call_tool("shell_execute", {"command": ["pytest", "-q", "test_x.py"],
                                                    "directory": str(ws)})
        rm = await c.call_tool("shell_execute", {"command": ["rm", "-rf", str(ws / "keep.txt")],
                                                 "directory": str(ws)})
        curl = await c.call_tool("shell_execute", {"command": ["curl", "http://127.0.0.1:9"],
                                                   "directory": str(ws)})
    assert not tests.is_error, tests
    assert "1 passed" in str(dump(tests))
    for denied in (rm, curl):
        assert denied.is_error
        assert denied.content[0].text.startswith("DENY shell.exec")  # type: ignore[union-attr]
    assert (ws / "keep.txt").exists()


async def test_npx_launched_server_leaves_no_orphans(tmp_path):
    from tests._wrapper import Wrapped, child_pids, wait_group_gone, wrapper_argv

    argv = ["npx", "--no-install", "mcp-server-everything", "stdio"]
    w = await Wrapped.start(wrapper_argv(argv, server="everything", policy=EVERYTHING_POLICY))
    await w.initialize()
    children = child_pids(w.proc.pid)
    assert len(children) == 1
    # npx runs the real server as a grandchild in the same process group.
    code, _ = await w.finish()
    assert code == 0
    await wait_group_gone(children[0])
