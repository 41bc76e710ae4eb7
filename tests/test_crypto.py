"""trackwrap.crypto: keys, key ids, PAE, signature checks and the device key store."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.fail
import pytest

import trackwrap.crypto
from trackwrap.crypto import KeyStore, SigningKey, key_id_for, pae, verify_ed25519
from trackwrap.errors import KeyStoreError, SignatureError

REPO = Path(__file__).resolve().parent.parent
# SubjectPublicKeyInfo DER prefix of every Ed25519 public key (RFC 8410).
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


class Warnings:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, message: str) -> None:
        self.messages.append(message)


class MemoryKeyring(keyring.backend.KeyringBackend):
    """Stands in for an OS keyring (Secret Service, Keychain), which this box does not have."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.entries[(service, username)]


@pytest.fixture
def restore_keyring() -> Iterator[None]:
    before = keyring.get_keyring()
    yield
    keyring.set_keyring(before)


def test_public_names_are_sorted_and_complete() -> None:
    names = trackwrap.crypto.__all__
    # ruff's RUF022 order (as tests/test_exports.py): CONSTANTS, Classes, functions.
    assert names == sorted(
        names, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n)
    )
    for name in trackwrap.crypto.__all__:
        assert hasattr(trackwrap.crypto, name)


def test_pae_matches_the_dsse_v1_encoding() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("t/\u00e9", b"") == b"DSSEv1 4 t/\xc3\xa9 0 "


def test_sign_and_verify_round_trip() -> None:
    key = SigningKey.generate()
    signature = key.sign(b"data")
    assert len(signature) == 64
    verify_ed25519(key.public_raw, signature, b"data")
    with pytest.raises(SignatureError):
        verify_ed25519(key.public_raw, signature, b"other data")
    with pytest.raises(SignatureError):
        verify_ed25519(SigningKey.generate().public_raw, signature, b"data")
    with pytest.raises(SignatureError):
        verify_ed25519(key.public_raw[:31], signature, b"data")


def test_key_id_is_sha256_of_the_spki_der() -> None:
    key = SigningKey.generate()
    expected = "ed25519:" + hashlib.sha256(ED25519_SPKI_PREFIX + key.public_raw).hexdigest()[:16]
    assert key.key_id == expected
    assert key_id_for(key.public_raw) == expected
    assert len(key.public_raw) == 32
    with pytest.raises(SignatureError):
        key_id_for(b"short")


def test_private_bytes_round_trip_and_repr_hides_them() -> None:
    key = SigningKey.generate()
    again = SigningKey.from_private_raw(key.private_raw())
    assert again.key_id == key.key_id
    assert key.private_raw().hex() not in repr(key)
    assert key.key_id in repr(key)
    with pytest.raises(KeyStoreError):
        SigningKey.from_private_raw(b"\x00" * 31)


# -- key store: file backend --------------------------------------------------------------------


def test_file_backend_creates_a_0600_key_and_reloads_it(tmp_path: Path) -> None:
    warnings = Warnings()
    key = KeyStore(tmp_path, backend="file", warn=warnings).device_key()
    path = tmp_path / "keys" / "device-ed25519.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert base64.b64decode(path.read_bytes().strip()) == key.private_raw()
    assert KeyStore(tmp_path, backend="file", warn=warnings).device_key().key_id == key.key_id
    assert warnings.messages == []
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == [
        "device-ed25519.key",
        "device-key.lock",
    ]


@pytest.mark.parametrize(
    "content",
    [b"not base64 !!!\n", base64.b64encode(b"\x01" * 31) + b"\n", b"", b"A" * 5000],
    ids=["not-base64", "wrong-length", "empty", "huge"],
)
def test_corrupt_key_file_is_refused_not_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "keys" / "device-ed25519.key"
    path.parent.mkdir()
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyStoreError):
        KeyStore(tmp_path, backend="file", warn=Warnings()).device_key()
    assert path.read_bytes() == content


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    KeyStore(tmp_path, backend="file", warn=Warnings()).device_key()
    path = tmp_path / "keys" / "device-ed25519.key"
    before = path.read_bytes()
    path.chmod(mode)
    with pytest.raises(KeyStoreError):
        KeyStore(tmp_path, backend="file", warn=Warnings()).device_key()
    assert path.read_bytes() == before


def test_key_file_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.key"
    real.write_bytes(base64.b64encode(SigningKey.generate().private_raw()))
    real.chmod(0o600)
    link = tmp_path / "keys" / "device-ed25519.key"
    link.parent.mkdir()
    link.symlink_to(real)
    with pytest.raises(KeyStoreError):
        KeyStore(tmp_path, backend="file", warn=Warnings()).device_key()


def test_processes_racing_to_create_the_key_get_one_key(tmp_path: Path) -> None:
    home = tmp_path / "race-home"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.ledger_helpers.keystore_worker", str(home)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    # Bounded wait: interpreter start-up dominates; 60 s is generous for a loaded CI box.
    outputs = [proc.communicate(timeout=60)[0].strip() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0]
    assert len(set(outputs)) == 1
    stored = KeyStore(home, backend="file", warn=Warnings()).device_key()
    assert outputs[0] == stored.key_id
    assert not [p for p in (home / "keys").iterdir() if p.name.endswith(".tmp")]


def test_unknown_backend_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError):
        KeyStore(tmp_path, backend="vault", warn=Warnings())


# -- key store: keyring and auto ----------------------------------------------------------------


@pytest.mark.usefixtures("restore_keyring")
def test_auto_without_keyring_falls_back_to_file_and_warns_once(tmp_path: Path) -> None:
    keyring.set_keyring(keyring.backends.fail.Keyring())
    warnings = Warnings()
    first = KeyStore(tmp_path, backend="auto", warn=warnings).device_key()
    second = KeyStore(tmp_path, backend="auto", warn=warnings).device_key()
    path = tmp_path / "keys" / "device-ed25519.key"
    assert first.key_id == second.key_id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert warnings.messages == [f"no OS keyring backend; device key kept in {path} (mode 0600)"]


@pytest.mark.usefixtures("restore_keyring")
def test_keyring_backend_without_keyring_is_an_error(tmp_path: Path) -> None:
    keyring.set_keyring(keyring.backends.fail.Keyring())
    with pytest.raises(KeyStoreError) as info:
        KeyStore(tmp_path, backend="keyring", warn=Warnings()).device_key()
    assert "TRACKWRAP_KEY_BACKEND=file" in info.value.diagnostics()
    assert not (tmp_path / "keys" / "device-ed25519.key").exists()


@pytest.mark.usefixtures("restore_keyring")
@pytest.mark.parametrize("backend", ["auto", "keyring"])
def test_keyring_backend_stores_the_key_per_home(tmp_path: Path, backend: str) -> None:
    memory = MemoryKeyring()
    keyring.set_keyring(memory)
    warnings = Warnings()
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    key_a = KeyStore(home_a, backend=backend, warn=warnings).device_key()
    key_b = KeyStore(home_b, backend=backend, warn=warnings).device_key()
    assert key_a.key_id != key_b.key_id
    username = f"device-key:{home_a.resolve()}"
    assert base64.b64decode(memory.entries[("trackwrap", username)]) == key_a.private_raw()
    assert KeyStore(home_a, backend=backend, warn=warnings).device_key().key_id == key_a.key_id
    assert not (home_a / "keys" / "device-ed25519.key").exists()
    assert warnings.messages == []


@pytest.mark.usefixtures("restore_keyring")
def test_corrupt_keyring_entry_is_refused(tmp_path: Path) -> None:
    memory = MemoryKeyring()
    memory.entries[("trackwrap", f"device-key:{tmp_path.resolve()}")] = "garbage!"
    keyring.set_keyring(memory)
    with pytest.raises(KeyStoreError):
        KeyStore(tmp_path, backend="auto", warn=Warnings()).device_key()


@pytest.mark.usefixtures("restore_keyring")
def test_auto_keeps_an_existing_file_key_when_a_keyring_appears(tmp_path: Path) -> None:
    file_key = KeyStore(tmp_path, backend="file", warn=Warnings()).device_key()
    memory = MemoryKeyring()
    keyring.set_keyring(memory)
    warnings = Warnings()
    assert KeyStore(tmp_path, backend="auto", warn=warnings).device_key().key_id == (
        file_key.key_id
    )
    assert memory.entries == {}
    assert len(warnings.messages) == 1


def test_key_store_does_not_import_keyring_until_a_key_is_needed() -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from trackwrap.crypto import KeyStore\n"
        "KeyStore(Path('.'), backend='auto', warn=print)\n"
        "assert 'keyring' not in sys.modules, 'keyring imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_key_files_are_not_world_visible_even_with_a_loose_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        KeyStore(tmp_path, backend="file", warn=Warnings()).device_key()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "keys" / "device-ed25519.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
