"""The outbox demo server on its own, driven by the MCP SDK's client in both protocol eras."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests._wrapper import ROOT
from trackwrap.inspectors import tool_concerns

pytestmark = pytest.mark.anyio

TIMEOUT = 30


@pytest.mark.parametrize(("mode", "era"), [("auto", "2026-07-28"), ("legacy", "2025-06-18")])
async def test_outbox_lists_tools_queues_mail_and_answers_queries(
    tmp_path: Path, mode: str, era: str
) -> None:
    outbox = tmp_path / "outbox"
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "trackwrap.demo_servers.outbox", "--outbox", str(outbox)],
        env=dict(os.environ), cwd=str(ROOT),
    )
    with (tmp_path / "err.log").open("w") as errlog, anyio.fail_after(TIMEOUT):
        async with Client(stdio_client(params, errlog=errlog), mode=mode) as client:
            assert client.protocol_version == era
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            sent = await client.call_tool("send_email", {
                "to": "ann@acme.com; bob@example.org", "cc": ["carl@acme.com"],
                "subject": "Quarterly numbers", "body": "Attached."})
            listed = await client.call_tool("send_email", {
                "to": ["dora@example.org"], "subject": "Hi", "body": "Hello."})
            bad = await client.call_tool("send_email", {"to": 5, "subject": "s", "body": "b"})
            rows = await client.call_tool("query_db", {
                "host": "db1.replica.acme.internal:5432", "sql": "SELECT * FROM orders"})
            write = await client.call_tool("query_db", {
                "host": "db1.replica.acme.internal", "sql": "DELETE FROM orders"})
            chained = await client.call_tool("query_db", {
                "host": "db1", "sql": "SELECT 1; DROP TABLE orders"})

    assert set(tools) == {"send_email", "query_db"}
    for tool in tools.values():
        definition = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
        assert tool_concerns(definition) == []
        schema = definition["inputSchema"]
        assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert tools["send_email"].input_schema["required"] == ["to", "subject", "body"]
    assert tools["query_db"].input_schema["required"] == ["host", "sql"]

    assert not sent.is_error
    assert sent.content[0].text == (  # type: ignore[union-attr]
        "queued message 1 to ann@acme.com, bob@example.org, carl@acme.com")
    assert not listed.is_error
    assert listed.content[0].text == "queued message 2 to dora@example.org"  # type: ignore[union-attr]
    assert bad.is_error
    files = sorted(outbox.iterdir(), key=lambda path: int(path.name.split("-")[0]))
    assert [path.name.split("-")[0] for path in files] == ["1", "2"]
    assert all(path.suffix == ".json" for path in files)
    assert json.loads(files[0].read_text()) == {
        "to": ["ann@acme.com", "bob@example.org"], "cc": ["carl@acme.com"],
        "subject": "Quarterly numbers", "body": "Attached."}
    assert json.loads(files[1].read_text())["cc"] == []

    assert not rows.is_error
    text = rows.content[0].text  # type: ignore[union-attr]
    header, *lines = text.splitlines()
    assert header == "3 rows from db1.replica.acme.internal:5432 (demo data)"
    assert [json.loads(line)["id"] for line in lines] == [1, 2, 3]
    assert write.is_error and chained.is_error
    assert "SELECT" in write.content[0].text  # type: ignore[union-attr]


def test_outbox_requires_its_directory() -> None:
    import subprocess

    result = subprocess.run([sys.executable, "-m", "trackwrap.demo_servers.outbox"],
                            capture_output=True, text=True, timeout=30, cwd=ROOT, check=False)
    assert result.returncode == 2
    assert "--outbox" in result.stderr
