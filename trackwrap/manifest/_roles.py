"""Role templates (``profiles/roles/<role>.yaml``) and filling one into a manifest to sign."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from trackwrap.config import default_profiles_dir
from trackwrap.errors import ConfigError, ProfileError
from trackwrap.manifest._model import ROLE_NAME, parse_manifest, parse_template

__all__ = ["default_roles_dir", "load_role_template", "new_manifest", "role_names"]

_WORKSPACE_LINE = re.compile(
    r"^(?P<lead>[ \t]+workspace:[ \t]*)(?P<value>[^#\n]*?)(?P<tail>[ \t]+#[^\n]*)?$",
    re.MULTILINE,
)
_EXPIRES_LINE = re.compile(r"^expires_at:", re.MULTILINE)


def default_roles_dir() -> Path:
    """The shipped role templates (``profiles/roles``)."""
    return default_profiles_dir() / "roles"


def role_names(directory: Path) -> list[str]:
    """The role names of ``directory`` (its ``*.yaml`` stems), sorted.

    Raises:
        ProfileError: not a directory, or a file name is not a role name.
    """
    if not directory.is_dir():
        raise ProfileError(f"{directory}: not a directory of role templates")
    names = []
    for path in sorted(directory.glob("*.yaml")):
        if ROLE_NAME.fullmatch(path.stem) is None:
            raise ProfileError(f"{path}: {path.stem!r} is not a role name ([a-z0-9-]+)")
        names.append(path.stem)
    return names


def load_role_template(path: Path) -> bytes:
    """The bytes of a role template, validated (its ``role`` must equal the file's stem).

    Raises:
        ProfileError: unreadable or invalid, with ``file:line``.
    """
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the role template: {exc}") from exc
    template = parse_template(payload, source=str(path))
    if template.role != path.stem:
        raise ProfileError(f"{path}: declares role {template.role!r}; name the file after it")
    return payload


def new_manifest(
    template: bytes,
    *,
    workspace: str,
    developer: str | None,
    agent: str,
    session_id: str | None,
    declared_at: datetime,
    publisher: str | None,
    key_id: str | None,
    expires_at: datetime | None = None,
) -> bytes:
    """Fill a role template into a manifest ready to sign: the header fields are prepended,
    ``workspace`` replaced in place, ``attestation`` appended; comments are kept.

    Raises:
        ProfileError: the template or the resulting manifest does not validate.
        ConfigError: ``declared_at``/``expires_at`` are not timezone-aware.
    """
    parse_template(template, source="<role template>")
    try:
        text = template.decode("utf-8")
    except UnicodeDecodeError as exc:  # pragma: no cover - parse_template decoded it
        raise ProfileError(f"<role template>: not UTF-8: {exc}") from exc
    matches = list(_WORKSPACE_LINE.finditer(text))
    if len(matches) != 1:
        raise ProfileError("<role template>: expected one 'workspace:' line under manifest")
    found = matches[0]
    # the template's comment on this line describes the placeholder, so it goes too
    text = text[: found.start("value")] + _q(workspace) + text[found.end() :]
    header = []
    if session_id is not None:
        header.append(f"session_id: {_q(session_id)}")
    header.append(f"agent: {_q(agent)}")
    if developer is not None:
        header.append(f"developer: {_q(developer)}")
    header.append(f"declared_at: {_q(_timestamp(declared_at))}")
    if expires_at is not None:
        if _EXPIRES_LINE.search(text):
            raise ProfileError("<role template>: sets expires_at itself; pass none")
        header.append(f"expires_at: {_q(_timestamp(expires_at))}")
    lines = text.rstrip("\n").split("\n")
    # keep the template's leading comment block on top, then the header fields
    split = 0
    while split < len(lines) and lines[split].startswith("#"):
        split += 1
    body = [*lines[:split], *header, "", *lines[split:]]
    if publisher is not None or key_id is not None:
        body.append("")
        body.append("attestation:")
        if publisher is not None:
            body.append(f"  publisher: {_q(publisher)}")
        if key_id is not None:
            body.append(f"  signed_by: {_q(key_id)}")
    payload = ("\n".join(body) + "\n").encode("utf-8")
    parse_manifest(payload, source="<new manifest>")
    return payload


def _q(text: str) -> str:
    return json.dumps(text)


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigError("manifest times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
