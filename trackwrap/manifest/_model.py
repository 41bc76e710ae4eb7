"""The session manifest: model and strict parser over exact bytes."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from trackwrap.config import Reader, load_yaml_bytes
from trackwrap.errors import ProfileError
from trackwrap.manifest._tools import ToolEntry, parse_tool_entries
from trackwrap.manifest._units import parse_duration, parse_size
from trackwrap.policy._glob import GlobSet

__all__ = [
    "BRANCH_FORBIDS",
    "Attestation",
    "BranchConstraints",
    "Budget",
    "Manifest",
    "parse_manifest",
    "parse_template",
]

#: The values ``branch_constraints.forbid`` knows.
BRANCH_FORBIDS = frozenset({"force_push", "reset_hard", "delete_branch", "rebase_published"})

ROLE_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+-]*")
_KEY_ID = re.compile(r"ed25519:[0-9a-f]{16}")
_TOP_KEYS = (
    "session_id",
    "agent",
    "developer",
    "declared_at",
    "expires_at",
    "manifest",
    "attestation",
)
_TEMPLATE_KEYS = ("expires_at", "manifest")
_BODY_KEYS = (
    "role",
    "workspace",
    "branch_constraints",
    "allowed_tools",
    "forbidden_tools",
    "budget",
)


@dataclass(frozen=True, slots=True)
class Budget:
    """Session limits; ``None`` means no limit of that kind. Enforced by the ledger."""

    tool_calls: int | None
    bytes_out: int | None
    duration_s: int | None


@dataclass(frozen=True, slots=True)
class BranchConstraints:
    """Where pushes and branch writes may go, and which git operations are off limits."""

    push_to: GlobSet | None
    forbid: frozenset[str]


@dataclass(frozen=True, slots=True)
class Attestation:
    """Who the payload says signed it; checked against the trusted key at verify."""

    publisher: str | None
    signed_by: str | None


@dataclass(frozen=True, slots=True)
class Manifest:
    """One parsed session manifest; ``digest`` is ``sha256:`` over the exact payload bytes."""

    source: str
    digest: str
    session_id: str | None
    agent: str
    developer: str | None
    declared_at: datetime | None
    expires_at: datetime | None
    role: str
    workspace: str
    branch_constraints: BranchConstraints
    allowed_tools: tuple[ToolEntry, ...]
    forbidden_tools: tuple[ToolEntry, ...]
    budget: Budget
    attestation: Attestation | None

    @property
    def allowed_text(self) -> tuple[str, ...]:
        """``allowed_tools`` as written, one entry each (``git.read · git.commit`` is two)."""
        return tuple(entry.text for entry in self.allowed_tools)

    @property
    def forbidden_text(self) -> tuple[str, ...]:
        """``forbidden_tools`` as written, one entry each."""
        return tuple(entry.text for entry in self.forbidden_tools)


def parse_manifest(payload: bytes, *, source: str) -> Manifest:
    """Parse and validate a session manifest from its exact bytes.

    Raises:
        ProfileError: bad YAML, unknown keys, wrong types, bad tool entries, units or names;
            the message starts with ``<source>:<line>``.
    """
    return _parse(payload, source=source, template=False)


def parse_template(payload: bytes, *, source: str) -> Manifest:
    """Parse a role template: the manifest shape with only ``manifest`` (and optionally
    ``expires_at``) at the top; ``agent`` is filled in as ``""``."""
    return _parse(payload, source=source, template=True)


def _parse(payload: bytes, *, source: str, template: bool) -> Manifest:
    doc = load_yaml_bytes(payload, source=source)
    reader = Reader(source=source, doc=doc)
    top = reader.mapping(
        doc.data,
        (),
        allowed=_TEMPLATE_KEYS if template else _TOP_KEYS,
        required=("manifest",) if template else ("agent", "manifest"),
    )

    def optional(key: str) -> str | None:
        return None if key not in top else reader.matching(top[key], (key,), _NAME, what="a name")

    body = reader.mapping(
        top["manifest"],
        ("manifest",),
        allowed=_BODY_KEYS,
        required=("role", "workspace", "allowed_tools"),
    )
    role = reader.matching(
        body["role"], ("manifest", "role"), ROLE_NAME, what="a role name ([a-z0-9-]+)"
    )
    workspace = _workspace(reader, body["workspace"])
    declared_at = None
    if "declared_at" in top:
        declared_at = reader.timestamp(top["declared_at"], ("declared_at",))
    expires_at = None
    if "expires_at" in top:
        expires_at = reader.timestamp(top["expires_at"], ("expires_at",))
        if declared_at is not None and expires_at <= declared_at:
            reader.fail(("expires_at",), "must be after declared_at")
    return Manifest(
        source=source,
        digest="sha256:" + hashlib.sha256(payload).hexdigest(),
        session_id=optional("session_id"),
        agent="" if template else reader.matching(top["agent"], ("agent",), _NAME, what="a name"),
        developer=optional("developer"),
        declared_at=declared_at,
        expires_at=expires_at,
        role=role,
        workspace=workspace,
        branch_constraints=_branches(reader, body.get("branch_constraints")),
        allowed_tools=_tools(reader, body["allowed_tools"], "allowed_tools", empty_ok=False),
        forbidden_tools=_tools(
            reader, body.get("forbidden_tools", []), "forbidden_tools", empty_ok=True
        ),
        budget=_budget(reader, body.get("budget")),
        attestation=_attestation(reader, top.get("attestation")) if "attestation" in top else None,
    )


def _workspace(reader: Reader, value: object) -> str:
    path = ("manifest", "workspace")
    text = reader.string(value, path)
    if text != text.strip() or "\\" in text or "\x00" in text:
        reader.fail(path, f"{text!r} is not a repository slug (owner/name) or a path")
    return text


def _tools(reader: Reader, value: object, key: str, *, empty_ok: bool) -> tuple[ToolEntry, ...]:
    path: tuple[object, ...] = ("manifest", key)
    texts = reader.string_list(value, path, empty_ok=empty_ok)
    entries: list[ToolEntry] = []
    for index, text in enumerate(texts):
        item = (*path, index)

        def fail(message: str, item: tuple[object, ...] = item) -> ProfileError:
            return reader.error(item, message)

        entries.extend(parse_tool_entries(text, fail=fail))
    return tuple(entries)


def _branches(reader: Reader, value: object) -> BranchConstraints:
    if value is None:
        return BranchConstraints(push_to=None, forbid=frozenset())
    path = ("manifest", "branch_constraints")
    spec = reader.mapping(value, path, allowed=("push_to", "forbid"))
    push_to = None
    if "push_to" in spec:
        globs = reader.string_list(spec["push_to"], (*path, "push_to"))
        try:
            push_to = GlobSet.compile(globs, where="push_to")
        except ProfileError as exc:
            reader.fail((*path, "push_to"), str(exc))
    forbid: set[str] = set()
    if "forbid" in spec:
        for index, name in enumerate(reader.string_list(spec["forbid"], (*path, "forbid"))):
            if name not in BRANCH_FORBIDS:
                reader.fail(
                    (*path, "forbid", index),
                    f"unknown value {name!r} (known: {', '.join(sorted(BRANCH_FORBIDS))})",
                )
            forbid.add(name)
    return BranchConstraints(push_to=push_to, forbid=frozenset(forbid))


def _budget(reader: Reader, value: object) -> Budget:
    if value is None:
        return Budget(tool_calls=None, bytes_out=None, duration_s=None)
    path = ("manifest", "budget")
    spec = reader.mapping(value, path, allowed=("tool_calls", "bytes_out", "duration"))
    tool_calls = bytes_out = duration_s = None
    if "tool_calls" in spec:
        tool_calls = reader.positive_int(spec["tool_calls"], (*path, "tool_calls"))
    if "bytes_out" in spec:
        bytes_out = parse_size(spec["bytes_out"])
        if bytes_out is None:
            reader.fail(
                (*path, "bytes_out"),
                f"expected a positive size like 5 MiB (B, KB, MB, GB, KiB, MiB, GiB), got "
                f"{spec['bytes_out']!r}",
            )
    if "duration" in spec:
        duration_s = parse_duration(spec["duration"])
        if duration_s is None:
            reader.fail(
                (*path, "duration"),
                f"expected a duration like 45m or 1h30m (h, m, s), got {spec['duration']!r}",
            )
    return Budget(tool_calls=tool_calls, bytes_out=bytes_out, duration_s=duration_s)


def _attestation(reader: Reader, value: object) -> Attestation:
    path = ("attestation",)
    spec = reader.mapping(value, path, allowed=("publisher", "signed_by"))
    publisher = signed_by = None
    if "publisher" in spec:
        publisher = reader.matching(spec["publisher"], (*path, "publisher"), _NAME, what="a name")
    if "signed_by" in spec:
        signed_by = reader.matching(
            spec["signed_by"], (*path, "signed_by"), _KEY_ID, what="a key id (ed25519:<16 hex>)"
        )
    return Attestation(publisher=publisher, signed_by=signed_by)
