"""Named secrets (a collector token, an upstream server's API token) in the OS keyring, or in
0600 files under ``<home>/keys/secrets/`` — the same backends as the device key.

Keyring entries are service ``trackwrap``, username ``<name>:<resolved home>``, so two homes on
one machine never share a secret. ``auto`` uses the keyring when a usable backend exists and
otherwise the file, saying so once per process.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from trackwrap.crypto._keystore import BACKENDS, KEYRING_SERVICE, _NoKeyringBackendError
from trackwrap.crypto._keystore import _usable_keyring as usable_keyring
from trackwrap.errors import KeyStoreError

__all__ = ["SecretStore"]

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}\Z")
_MAX_SECRET = 16 * 1024
_warned: set[str] = set()


class SecretStore:
    """Reads and writes named secrets; never logs or echoes a value."""

    def __init__(self, home: Path, *, backend: str = "auto", warn: Callable[[str], None]) -> None:
        if backend not in BACKENDS:
            raise KeyStoreError(f"unknown key backend {backend!r}; use one of: "
                                f"{', '.join(BACKENDS)}")
        self._home = home
        self._backend = backend
        self._warn = warn
        self._dir = home / "keys" / "secrets"

    def where(self, name: str) -> str:
        """Where ``name`` is kept, in words (for messages)."""
        if self._keyring() is not None:
            return f"the OS keyring ({KEYRING_SERVICE}/{self._username(name)})"
        return str(self._dir / name)

    def get(self, name: str) -> str | None:
        """The secret, or None if it is not set.

        Raises:
            KeyStoreError: a bad name, an unreadable or exposed file, a locked keyring.
        """
        _check(name)
        keyring = self._keyring()
        if keyring is not None:
            from keyring import errors as keyring_errors

            try:
                value = keyring.get_password(KEYRING_SERVICE, self._username(name))
            except keyring_errors.KeyringError as exc:
                raise KeyStoreError(f"cannot read secret {name} from the keyring: {exc}") from exc
            return None if value is None else str(value)
        path = self._dir / name
        try:
            mode = path.stat().st_mode
            if mode & 0o077:
                raise KeyStoreError(f"{path} is readable by others; chmod 600 it")
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyStoreError(f"cannot read {path}: {exc}") from exc

    def set(self, name: str, value: str) -> None:
        """Store (or replace) a secret.

        Raises:
            KeyStoreError: a bad name or value, or the backend cannot store it.
        """
        _check(name)
        if not value or len(value) > _MAX_SECRET or "\n" in value:
            raise KeyStoreError("a secret is one non-empty line of at most 16 KiB")
        keyring = self._keyring()
        if keyring is not None:
            from keyring import errors as keyring_errors

            try:
                keyring.set_password(KEYRING_SERVICE, self._username(name), value)
            except keyring_errors.KeyringError as exc:
                raise KeyStoreError(f"cannot store secret {name} in the keyring: {exc}") from exc
            return
        try:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            temp = self._dir / f".{name}.{os.getpid()}"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(value)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self._dir / name)
        except OSError as exc:
            raise KeyStoreError(f"cannot store secret {name} in {self._dir}: {exc}") from exc

    def delete(self, name: str) -> bool:
        """Forget a secret; whether there was one."""
        _check(name)
        keyring = self._keyring()
        if keyring is not None:
            from keyring import errors as keyring_errors

            try:
                keyring.delete_password(KEYRING_SERVICE, self._username(name))
            except keyring_errors.PasswordDeleteError:
                return False
            except keyring_errors.KeyringError as exc:
                raise KeyStoreError(f"cannot delete secret {name}: {exc}") from exc
            return True
        try:
            (self._dir / name).unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise KeyStoreError(f"cannot delete {self._dir / name}: {exc}") from exc
        return True

    def _username(self, name: str) -> str:
        return f"{name}:{self._home.resolve()}"

    def _keyring(self) -> ModuleType | None:
        if self._backend == "file":
            return None
        try:
            return usable_keyring()
        except _NoKeyringBackendError as exc:
            if self._backend == "keyring":
                raise KeyStoreError(f"no OS keyring backend is available ({exc}); set "
                                    "TRACKWRAP_KEY_BACKEND=file to keep secrets in files") from exc
        if str(self._dir) not in _warned:
            _warned.add(str(self._dir))
            self._warn(f"no OS keyring backend; keeping secrets in {self._dir} (mode 0600)")
        return None


def _check(name: str) -> None:
    if not _NAME.match(name):
        raise KeyStoreError(f"{name!r} is not a secret name ([a-z0-9._-], up to 128)")
