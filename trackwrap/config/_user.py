"""The user's settings file, ``TRACKWRAP_HOME/config.yaml``, edited by ``trackwrap config``::

    version: 1
    collector:
      url: https://collector.acme.internal:8750   # where sealed segments are synced
      device: priya-laptop                         # this device's name at the collector
      key: "ed25519:<base64>"                      # the collector's receipt key, pinned

Secrets (the collector token) are not kept here but in the OS keyring.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from trackwrap.config._yaml import load_yaml_bytes
from trackwrap.errors import ConfigError, ProfileError

__all__ = ["USER_KEYS", "UserConfig"]

USER_KEYS = ("collector.url", "collector.device", "collector.key")
_TOP = ("version", "collector")
_COLLECTOR = ("url", "device", "key")


@dataclass(frozen=True, slots=True)
class UserConfig:
    """What ``config.yaml`` says; every field may be unset (None)."""

    collector_url: str | None = None
    collector_device: str | None = None
    collector_key: str | None = None

    @classmethod
    def load(cls, path: Path) -> UserConfig:
        """Read ``path``; a missing file is an empty config.

        Raises:
            ProfileError: unreadable or invalid (with ``file:line``).
        """
        try:
            payload = path.read_bytes()
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise ProfileError(f"{path}: cannot read: {exc}") from exc
        data = load_yaml_bytes(payload, source=str(path)).data
        if data is None:
            return cls()
        if not isinstance(data, dict) or set(data) - set(_TOP) or data.get("version") != 1:
            raise ProfileError(f"{path}: expected version: 1 and an optional collector: "
                               "section, nothing else")
        section = data.get("collector") or {}
        if not isinstance(section, dict) or set(section) - set(_COLLECTOR):
            raise ProfileError(f"{path}: collector: takes only {', '.join(_COLLECTOR)}")
        config = cls()
        for name in _COLLECTOR:
            value = section.get(name)
            if value is not None:
                if not isinstance(value, str):
                    raise ProfileError(f"{path}: collector.{name} must be a string")
                config = config.with_value(f"collector.{name}", value)
        return config

    def value(self, key: str) -> str | None:
        """The value of a dotted key (see :data:`USER_KEYS`)."""
        return getattr(self, _attr(key))  # type: ignore[no-any-return]

    def with_value(self, key: str, value: str | None) -> UserConfig:
        """A config with ``key`` set (None: unset), validated.

        Raises:
            ConfigError: unknown key or bad value.
        """
        attr = _attr(key)
        if value is not None:
            value = value.strip()
            if key == "collector.url":
                parts = urlsplit(value)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise ConfigError(f"collector.url must be http(s)://host[:port], not "
                                      f"{value!r}")
                value = value.rstrip("/")
            elif not value or any(ord(c) < 0x20 for c in value):
                raise ConfigError(f"{key} must be one line of text")
        return replace(self, **{attr: value})

    def save(self, path: Path) -> None:
        """Write atomically (0600 temp file in the same directory, then rename).

        Raises:
            ConfigError: the file cannot be written.
        """
        lines = ["# trackwrap settings; edit with `trackwrap config set KEY VALUE`.",
                 "version: 1"]
        values = {name: self.value(f"collector.{name}") for name in _COLLECTOR}
        if any(v is not None for v in values.values()):
            lines.append("collector:")
            lines += [f"  {name}: {json.dumps(v)}" for name, v in values.items() if v is not None]
        payload = ("\n".join(lines) + "\n").encode("utf-8")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(payload)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write: {exc}") from exc


def _attr(key: str) -> str:
    if key not in USER_KEYS:
        raise ConfigError(f"unknown setting {key!r} (known: {', '.join(USER_KEYS)}, "
                          "collector.token)")
    return key.replace(".", "_")
