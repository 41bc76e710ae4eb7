"""Shipped roles and the trust store, as the CLI and the wrapper find them.

The manifest package is imported when a function here runs, not before (``--help`` stays fast).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from trackwrap.cli._settings import Settings
from trackwrap.errors import ConfigError

if TYPE_CHECKING:
    from trackwrap.manifest import Manifest, TrustStore

__all__ = ["known_roles", "role_manifest", "role_payload", "roles_dir", "trust_store"]


def roles_dir() -> Path:
    from trackwrap.config import default_profiles_dir

    return default_profiles_dir() / "roles"


def trust_store(settings: Settings) -> TrustStore:
    from trackwrap.manifest import TrustStore

    return TrustStore.load(settings.trust_path)


def known_roles(settings: Settings) -> frozenset[str]:
    from trackwrap.manifest import role_names

    return trust_store(settings).known_roles(role_names(roles_dir()))


def role_payload(
    role: str,
    *,
    workspace: str,
    developer: str | None = None,
    agent: str = "unknown",
    session_id: str | None = None,
    publisher: str | None = None,
    key_id: str | None = None,
) -> bytes:
    """A manifest (YAML bytes) filled in from the shipped template of ``role``."""
    from trackwrap.manifest import load_role_template, new_manifest, role_names

    path = roles_dir() / f"{role}.yaml"
    if not path.is_file():
        shipped = ", ".join(role_names(roles_dir()))
        raise ConfigError(f"unknown role {role!r} (shipped roles: {shipped})")
    return new_manifest(
        load_role_template(path),
        workspace=workspace,
        developer=developer,
        agent=agent,
        session_id=session_id,
        declared_at=datetime.now(UTC),
        publisher=publisher,
        key_id=key_id,
    )


def role_manifest(role: str, *, workspace: str) -> Manifest:
    from trackwrap.manifest import parse_manifest

    return parse_manifest(role_payload(role, workspace=workspace), source=f"role {role}")
