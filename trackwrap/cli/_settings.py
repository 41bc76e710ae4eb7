"""The one place that reads trackwrap's environment variables and decides where data lives.

- ``TRACKWRAP_HOME``: where the ledger and key file live (default: the platform's state
  directory, e.g. ``~/.local/state/trackwrap`` on Linux).
- ``TRACKWRAP_KEY_BACKEND``: ``auto`` (OS keyring, else a 0600 file), ``keyring`` or ``file``.
- ``TRACKWRAP_SESSION``: the session a wrapper joins instead of its workspace's implicit one.
- ``TRACKWRAP_DEFAULT_ROLE``: the role whose manifest applies to implicit sessions (unset: the
  organisation policy alone applies).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from trackwrap.errors import ConfigError

__all__ = ["Settings", "load_settings", "resolve_workspace", "signed_tools_path"]

KEY_BACKENDS = ("auto", "keyring", "file")


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    key_backend: str
    session: str | None
    default_role: str | None = None

    @property
    def ledger_path(self) -> Path:
        return self.home / "ledger.db"

    @property
    def trust_path(self) -> Path:
        return self.home / "trust.yaml"

    @property
    def config_path(self) -> Path:
        return self.home / "config.yaml"


def _default_home(environ: Mapping[str, str]) -> Path:
    user_home = Path(environ.get("HOME") or Path.home())
    if sys.platform == "darwin":
        return user_home / "Library" / "Application Support" / "trackwrap"
    if sys.platform == "win32":
        base = environ.get("LOCALAPPDATA")
        return Path(base) / "trackwrap" if base else user_home / "AppData" / "Local" / "trackwrap"
    state = environ.get("XDG_STATE_HOME")
    return (Path(state) if state else user_home / ".local" / "state") / "trackwrap"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    home = Path(env["TRACKWRAP_HOME"]) if env.get("TRACKWRAP_HOME") else _default_home(env)
    backend = env.get("TRACKWRAP_KEY_BACKEND", "auto") or "auto"
    if backend not in KEY_BACKENDS:
        raise ConfigError(
            f"TRACKWRAP_KEY_BACKEND={backend!r} is not one of {', '.join(KEY_BACKENDS)}"
        )
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(
            f"cannot create trackwrap's home {home}: {exc.strerror}; set TRACKWRAP_HOME"
        ) from exc
    return Settings(
        home=home,
        key_backend=backend,
        session=env.get("TRACKWRAP_SESSION") or None,
        default_role=env.get("TRACKWRAP_DEFAULT_ROLE") or None,
    )


def resolve_workspace(workspace: str | None) -> str:
    """The workspace as a real path (default: the current directory)."""
    path = os.path.realpath(os.path.expanduser(workspace or os.getcwd()))
    if not os.path.isdir(path):
        raise ConfigError(f"workspace {workspace!r} is not a directory")
    return path


def signed_tools_path(settings: Settings, server: str) -> Path:
    """Where the imported signed tool list of ``server`` is kept."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in server)
    return settings.home / "server-manifests" / f"{safe}.dsse.json"
