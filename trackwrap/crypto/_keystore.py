"""Where the device key lives: the OS keyring, or a 0600 file under ``<home>/keys/``.

``keyring`` costs about 60 ms to import, so it is imported only when a key is first needed.
Creation is serialized across processes by an ``fcntl.flock`` on ``<home>/keys/device-key.lock``,
so several wrappers starting at once end up with one key.

Backends:

``file``
    ``<home>/keys/device-ed25519.key``: base64 of the 32 raw private bytes, mode 0600, created
    under a temporary name with ``O_EXCL`` and hard-linked into place (never overwritten).
``keyring``
    The OS keyring, service ``trackwrap``, username ``device-key:<resolved home>``; no usable
    backend is an error.
``auto``
    The keyring when a usable backend exists, else the file (with one warning per process). A key
    file made earlier, while no keyring was available, keeps being used rather than minting a
    second device key.

Corrupt or group/other-readable key material is an error; it is never silently replaced.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

from trackwrap.crypto._keys import SigningKey
from trackwrap.errors import KeyStoreError

__all__ = ["KeyStore"]

KEYRING_SERVICE = "trackwrap"
KEY_FILE_NAME = "device-ed25519.key"
LOCK_FILE_NAME = "device-key.lock"
BACKENDS = ("auto", "keyring", "file")
_MAX_KEY_FILE_BYTES = 4096

# Key files whose fallback warning this process has already given.
_warned_fallback: set[str] = set()


class _NoKeyringBackendError(Exception):
    """Internal: no usable OS keyring backend (``auto`` falls back to the file)."""


class KeyStore:
    """Loads, or creates once, this device's Ed25519 signing key."""

    def __init__(self, home: Path, *, backend: str = "auto", warn: Callable[[str], None]) -> None:
        if backend not in BACKENDS:
            raise KeyStoreError(
                f"unknown key backend {backend!r}; use one of: {', '.join(BACKENDS)}"
            )
        self._home = home
        self._backend = backend
        self._warn = warn
        self._keys_dir = home / "keys"
        self._key_file = self._keys_dir / KEY_FILE_NAME
        self._cached: SigningKey | None = None

    @property
    def key_file(self) -> Path:
        """Where the ``file`` backend (and the ``auto`` fallback) keeps the key."""
        return self._key_file

    def device_key(self) -> SigningKey:
        """The device key, created on first use (once, even with several processes racing).

        Raises:
            KeyStoreError: the key cannot be read, is corrupt or exposed, or cannot be stored.
        """
        if self._cached is None:
            try:
                self._keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise KeyStoreError(f"cannot create key directory {self._keys_dir}: {exc}") from exc
            with self._creation_lock():
                self._cached = self._load_or_create()
        return self._cached

    # -- backends -------------------------------------------------------------------------------

    def _load_or_create(self) -> SigningKey:
        if self._backend == "file":
            return self._file_key()
        try:
            keyring = _usable_keyring()
            return self._keyring_key(keyring)
        except _NoKeyringBackendError as exc:
            if self._backend == "keyring":
                raise KeyStoreError(
                    f"no OS keyring backend is available ({exc}); install/unlock one "
                    "(e.g. Secret Service or KWallet on Linux), or set TRACKWRAP_KEY_BACKEND=file "
                    f"to keep the device key in {self._key_file}"
                ) from exc
        self._warn_fallback()
        return self._file_key()

    def _keyring_key(self, keyring: ModuleType) -> SigningKey:
        from keyring import errors as keyring_errors

        username = f"device-key:{self._home.resolve()}"
        where = f"OS keyring entry {KEYRING_SERVICE}/{username}"
        try:
            stored = keyring.get_password(KEYRING_SERVICE, username)
        except keyring_errors.NoKeyringError as exc:
            raise _NoKeyringBackendError(str(exc)) from exc
        except keyring_errors.KeyringError as exc:
            raise KeyStoreError(f"cannot read the {where}: {exc}; unlock the keyring") from exc
        if stored is not None:
            return _decode(str(stored).encode("ascii", "replace"), where=where)
        if self._backend == "auto" and self._key_file.exists():
            self._warn_fallback()
            return self._file_key()
        key = SigningKey.generate()
        encoded = _encode(key).decode("ascii")
        try:
            keyring.set_password(KEYRING_SERVICE, username, encoded)
            readback = keyring.get_password(KEYRING_SERVICE, username)
        except keyring_errors.KeyringError as exc:
            raise KeyStoreError(f"cannot store the device key in the {where}: {exc}") from exc
        if readback != encoded:
            raise KeyStoreError(
                f"the keyring backend did not keep the device key ({where}); "
                "use TRACKWRAP_KEY_BACKEND=file"
            )
        return key

    def _file_key(self) -> SigningKey:
        try:
            return self._read_key_file()
        except FileNotFoundError:
            pass
        return self._create_key_file()

    def _read_key_file(self) -> SigningKey:
        path = self._key_file
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise KeyStoreError(f"cannot open device key file {path}: {exc}") from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise KeyStoreError(f"device key file {path} is not a regular file")
            if info.st_mode & 0o077:
                raise KeyStoreError(
                    f"device key file {path} is accessible by group/others "
                    f"(mode {stat.S_IMODE(info.st_mode):04o}); the key may be exposed. "
                    "If you trust it, run `chmod 600` on it; otherwise remove it and re-enrol"
                )
            if info.st_uid != os.geteuid():
                raise KeyStoreError(f"device key file {path} belongs to another user")
            data = os.read(fd, _MAX_KEY_FILE_BYTES + 1)
        except OSError as exc:
            raise KeyStoreError(f"cannot read device key file {path}: {exc}") from exc
        finally:
            os.close(fd)
        return _decode(data, where=f"device key file {path}")

    def _create_key_file(self) -> SigningKey:
        path = self._key_file
        key = SigningKey.generate()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()  # left by a crashed creator with our pid; we hold the lock
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, _encode(key) + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)  # atomic, and never replaces an existing key
            except FileExistsError:
                return self._read_key_file()
            finally:
                tmp.unlink()
            _fsync_dir(path.parent)
        except OSError as exc:
            raise KeyStoreError(f"cannot create device key file {path}: {exc}") from exc
        return key

    def _warn_fallback(self) -> None:
        marker = str(self._key_file)
        if marker not in _warned_fallback:
            _warned_fallback.add(marker)
            self._warn(f"no OS keyring backend; device key kept in {self._key_file} (mode 0600)")

    @contextlib.contextmanager
    def _creation_lock(self) -> Iterator[None]:
        lock_path = self._keys_dir / LOCK_FILE_NAME
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise KeyStoreError(f"cannot open key lock file {lock_path}: {exc}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                raise KeyStoreError(f"cannot lock {lock_path}: {exc}") from exc
            yield
        finally:
            os.close(fd)  # releases the lock


def _usable_keyring() -> ModuleType:
    """The ``keyring`` module if it has a backend that really stores secrets."""
    import keyring
    from keyring import errors as keyring_errors
    from keyring.backends import chainer, fail, null

    try:
        backend = keyring.get_keyring()
    except keyring_errors.KeyringError as exc:
        raise _NoKeyringBackendError(str(exc)) from exc
    if isinstance(backend, fail.Keyring | null.Keyring):
        raise _NoKeyringBackendError(f"keyring backend is {type(backend).__name__}")
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        raise _NoKeyringBackendError("keyring chainer has no backends")
    return keyring


def _encode(key: SigningKey) -> bytes:
    return base64.b64encode(key.private_raw())


def _decode(data: bytes, *, where: str) -> SigningKey:
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise KeyStoreError(f"{where} is too large to be a device key; it is corrupt")
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyStoreError(f"{where} is corrupt (not base64); restore it from a backup") from exc
    try:
        return SigningKey.from_private_raw(raw)
    except KeyStoreError as exc:
        raise KeyStoreError(f"{where} is corrupt ({exc}); restore it from a backup") from exc


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
