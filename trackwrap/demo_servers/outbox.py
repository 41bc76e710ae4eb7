"""A stand-in mail server and database for the approvals demo and its tests.

``python -m trackwrap.demo_servers.outbox --outbox DIR`` serves two tools over stdio:

- ``send_email(to, subject, body, cc?)`` queues the message as one JSON file in ``DIR``
  (``<n>-<timestamp>.json`` holding ``to``, ``cc``, ``subject`` and ``body``). Nothing leaves
  the machine: there is no mail transport behind it, the file is the whole delivery.
- ``query_db(host, sql)`` answers a ``SELECT`` with the same few canned rows whatever the host,
  and refuses any other statement. No database is contacted: ``host`` is only echoed back.

Both let a policy be tried on the calls a real agent would make (an e-mail to an outside domain
after hours, a query against a read replica) without anything real happening.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trackwrap.demo_servers._stdio import Tool, ToolResult, serve

__all__ = ["ROWS", "main", "query_db_tool", "send_email_tool"]

#: The table ``query_db`` answers every ``SELECT`` with.
ROWS: tuple[dict[str, object], ...] = (
    {"id": 1, "customer": "Alpine Tools GmbH", "region": "eu", "total": 1250.0},
    {"id": 2, "customer": "Harbor Logistics", "region": "us", "total": 830.5},
    {"id": 3, "customer": "Nordlicht AB", "region": "eu", "total": 2400.0},
)

_ADDRESSES = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
    ],
}
_SEND_EMAIL_SCHEMA = {
    "type": "object",
    "properties": {
        "to": {**_ADDRESSES, "description": "Recipient addresses: one string (several "
               "separated by commas or semicolons) or a list of strings."},
        "cc": {**_ADDRESSES, "description": "Carbon-copy addresses, in the same forms as to."},
        "subject": {"type": "string", "description": "Subject line."},
        "body": {"type": "string", "description": "Plain-text message body."},
    },
    "required": ["to", "subject", "body"],
    "additionalProperties": False,
}
_QUERY_DB_SCHEMA = {
    "type": "object",
    "properties": {
        "host": {"type": "string", "minLength": 1,
                 "description": "Database host: a name, host:port, or a URL."},
        "sql": {"type": "string", "minLength": 1, "description": "One SELECT statement."},
    },
    "required": ["host", "sql"],
    "additionalProperties": False,
}
_SEPARATORS = re.compile(r"[,;]")
_QUEUED = re.compile(r"([0-9]+)-.*\.json\Z")
_SELECT = re.compile(r"\s*select\b", re.IGNORECASE)


def send_email_tool(outbox: Path) -> Tool:
    """``send_email``: queue a message as a JSON file in ``outbox``."""

    def run(arguments: Mapping[str, Any]) -> ToolResult:
        try:
            to = _addresses(arguments.get("to"), name="to")
            cc = _addresses(arguments.get("cc", []), name="cc", required=False)
            subject = _text(arguments.get("subject"), name="subject")
            body = _text(arguments.get("body"), name="body")
        except ValueError as exc:
            return ToolResult(str(exc), is_error=True)
        message = {"to": to, "cc": cc, "subject": subject, "body": body}
        try:
            number = _queue(outbox, message)
        except OSError as exc:
            return ToolResult(f"cannot queue the message: {exc.strerror}", is_error=True)
        return ToolResult(f"queued message {number} to {', '.join(to + cc)}")

    return Tool(
        name="send_email",
        description="Queues an e-mail message in the local demo outbox. The message is "
        "stored as a file; no mail is delivered.",
        input_schema=_SEND_EMAIL_SCHEMA,
        run=run,
    )


def query_db_tool() -> Tool:
    """``query_db``: canned rows for a ``SELECT``, an error for anything else."""

    def run(arguments: Mapping[str, Any]) -> ToolResult:
        try:
            host = _text(arguments.get("host"), name="host")
            sql = _text(arguments.get("sql"), name="sql")
        except ValueError as exc:
            return ToolResult(str(exc), is_error=True)
        statement = sql.strip().removesuffix(";")
        if not _SELECT.match(statement) or ";" in statement:
            return ToolResult("only a single SELECT statement is answered", is_error=True)
        rows = "\n".join(json.dumps(row, sort_keys=True) for row in ROWS)
        return ToolResult(f"{len(ROWS)} rows from {host} (demo data)\n{rows}")

    return Tool(
        name="query_db",
        description="Runs one read-only SELECT statement against a demo database and returns "
        "its rows as JSON lines. The data is a small fixed sample table.",
        input_schema=_QUERY_DB_SCHEMA,
        run=run,
    )


def _addresses(value: object, *, name: str, required: bool = True) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError(f"{name} must be a string or a list of strings")
    found = [part.strip() for item in items for part in _SEPARATORS.split(item) if part.strip()]
    if required and not found:
        raise ValueError(f"{name} names no address")
    return found


def _text(value: object, *, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _queue(outbox: Path, message: Mapping[str, object]) -> int:
    """Write ``message`` as the next numbered file; the number is returned."""
    taken = (_QUEUED.match(path.name) for path in outbox.iterdir())
    number = max((int(found.group(1)) for found in taken if found), default=0) + 1
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    data = json.dumps(message, ensure_ascii=False, indent=2) + "\n"
    while True:
        try:
            with (outbox / f"{number}-{stamp}.json").open("x", encoding="utf-8") as handle:
                handle.write(data)
        except FileExistsError:
            number += 1
        else:
            return number


def main() -> None:
    """Serve ``send_email`` and ``query_db`` on stdio until stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m trackwrap.demo_servers.outbox")
    parser.add_argument("--outbox", required=True, type=Path,
                        help="directory the queued messages are written to")
    opts = parser.parse_args()
    outbox: Path = opts.outbox
    outbox.mkdir(parents=True, exist_ok=True)
    serve("outbox", [send_email_tool(outbox), query_db_tool()])


if __name__ == "__main__":
    main()
