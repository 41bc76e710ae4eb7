"""The trust store: pinned publisher keys in a readable YAML file."""

from __future__ import annotations

import base64
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from trackwrap.crypto import SigningKey
from trackwrap.errors import ConfigError, ProfileError, SignatureError
from trackwrap.manifest import Publisher, TrustStore, parse_public_key

NOW = datetime(2026, 5, 5, 14, 21, 8, tzinfo=UTC)
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def pem(raw: bytes) -> str:
    body = b64(SPKI_PREFIX + raw)
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


def test_missing_file_is_an_empty_store(tmp_path: Path) -> None:
    store = TrustStore.load(tmp_path / "trust.yaml")
    assert store.publishers() == ()
    assert store.known_roles(["code-reviewer"]) == {"code-reviewer"}


def test_round_trip(tmp_path: Path) -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    store = (
        TrustStore()
        .add("zeta.example:agent", b64(a.public_raw), now=NOW, comment='platform "team" # 1')
        .add("alpha.example", "ed25519:" + b64(b.public_raw), roles=["developer"], now=NOW)
        .with_role("data-steward")
    )
    path = tmp_path / "home" / "trust.yaml"
    store.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    text = path.read_text()
    assert text.index("alpha.example") < text.index("zeta.example")  # stable order
    loaded = TrustStore.load(path)
    assert loaded.publishers() == store.publishers()
    assert loaded.publishers() == (
        Publisher(
            name="alpha.example",
            key=b.public_raw,
            key_id=b.key_id,
            added=NOW,
            roles=("developer",),
            comment=None,
        ),
        Publisher(
            name="zeta.example:agent",
            key=a.public_raw,
            key_id=a.key_id,
            added=NOW,
            roles=(),
            comment='platform "team" # 1',
        ),
    )
    assert loaded.known_roles(["code-reviewer"]) == {"code-reviewer", "data-steward"}
    loaded.save(path)
    assert path.read_text() == text  # saving is deterministic
    assert [p.name for p in tmp_path.joinpath("home").iterdir()] == ["trust.yaml"]


def test_lookup_and_remove() -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    store = TrustStore().add("a", b64(a.public_raw), now=NOW).add("b", b64(b.public_raw), now=NOW)
    found = store.by_key_id(b.key_id)
    assert found is not None
    assert found.name == "b"
    assert store.by_key_id("ed25519:0000000000000000") is None
    assert [p.name for p in store.remove("a").publishers()] == ["b"]
    assert [p.name for p in store.remove(b.key_id).publishers()] == ["a"]
    with pytest.raises(ConfigError):
        store.remove("c")


def test_key_forms() -> None:
    key = SigningKey.generate()
    raw = key.public_raw
    assert parse_public_key(b64(raw)) == raw
    assert parse_public_key("ed25519:" + b64(raw)) == raw
    assert parse_public_key(pem(raw)) == raw
    with pytest.raises(SignatureError, match="key id"):
        parse_public_key(key.key_id)
    with pytest.raises(SignatureError):
        parse_public_key("not base64!")
    with pytest.raises(SignatureError):
        parse_public_key(b64(raw[:31]))
    rsa_like = "-----BEGIN PUBLIC KEY-----\n" + b64(b"\x30" * 44) + "\n-----END PUBLIC KEY-----"
    with pytest.raises(SignatureError, match="PEM"):
        parse_public_key(rsa_like)


def test_add_refuses_duplicates_and_bad_input() -> None:
    key = SigningKey.generate()
    store = TrustStore().add("a", b64(key.public_raw), now=NOW)
    with pytest.raises(ConfigError, match="already trusted"):
        store.add("a", b64(SigningKey.generate().public_raw), now=NOW)
    with pytest.raises(ConfigError, match="already trusted"):
        store.add("b", b64(key.public_raw), now=NOW)
    with pytest.raises(ConfigError):
        store.add("has space", b64(SigningKey.generate().public_raw), now=NOW)
    with pytest.raises(ConfigError):
        store.add("c", b64(SigningKey.generate().public_raw), roles=["Bad"], now=NOW)
    with pytest.raises(ConfigError):
        store.add("c", b64(SigningKey.generate().public_raw), now=datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(SignatureError):
        store.add("c", "AAAA", now=NOW)


def _valid(tmp_path: Path) -> tuple[Path, str]:
    key = SigningKey.generate()
    path = tmp_path / "trust.yaml"
    TrustStore().add("a", b64(key.public_raw), now=NOW).save(path)
    return path, path.read_text()


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("version: 1", "version: 2", "version: 2"),
        ("    key_id:", "    colour: blue\n    key_id:", "colour"),
        ('    key_id: "ed25519:', '    key_id: "ed25519:0', "key_id"),  # not this key's id
        ('    key: "', '    key: "AAAA', "key:"),  # corrupt key
        ('    added: "', '    added: "yesterday', "added"),
        ("roles: []", "roles: [Bad_Role]", "roles: [Bad"),
        ("    roles: []", "    roles: []\n    roles: []", "roles: []"),  # duplicate key
        ("version: 1", "version: !!int 1", "version"),  # tag
    ],
)
def test_corrupt_store_names_file_and_line(tmp_path: Path, old: str, new: str, needle: str) -> None:
    path, text = _valid(tmp_path)
    assert old in text
    bad = text.replace(old, new, 1)
    path.write_text(bad)
    line = _line_of(bad, needle) if needle != "roles: []" else _line_of(bad, "roles: []") + 1
    with pytest.raises(ProfileError) as caught:
        TrustStore.load(path)
    assert str(caught.value).startswith(f"{path}:{line}:"), str(caught.value)


def test_same_publisher_twice_is_corrupt(tmp_path: Path) -> None:
    path, text = _valid(tmp_path)
    block = text[text.index("  - name:") : text.rindex("\nroles:")] + "\n"
    path.write_text(text.replace(block, block + block))
    with pytest.raises(ProfileError, match="listed twice"):
        TrustStore.load(path)


def test_unreadable_store_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "trust.yaml").mkdir()
    with pytest.raises(ProfileError):
        TrustStore.load(tmp_path / "trust.yaml")


def test_approvers_round_trip_and_stay_apart_from_publishers(tmp_path: Path) -> None:
    ops, publisher, other = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()

    def pub(key: SigningKey) -> str:
        return "ed25519:" + b64(key.public_raw)

    store = (TrustStore()
             .add("acme-platform", pub(publisher), now=NOW)
             .add_approver("ops@acme.com", pub(ops), groups=("ops", "sre"), now=NOW,
                           comment="on-call"))
    path = tmp_path / "trust.yaml"
    store.save(path)
    loaded = TrustStore.load(path)
    [approver] = loaded.approvers
    assert (approver.name, approver.key, approver.groups, approver.comment) == (
        "ops@acme.com", ops.public_raw, ("ops", "sre"), "on-call")
    assert loaded.approver(ops.key_id) == approver
    # An approver's key signs decisions, never manifests.
    assert loaded.by_key_id(ops.key_id) is None
    assert loaded.approver(publisher.key_id) is None
    assert loaded.remove("ops@acme.com").approvers == ()
    with pytest.raises(ConfigError, match="already trusted"):
        loaded.add_approver("ops@acme.com", pub(other), now=NOW)
    with pytest.raises(ConfigError, match="already trusted as approver"):
        loaded.add_approver("other@acme.com", pub(ops), now=NOW)
    with pytest.raises(ConfigError, match="not a group name"):
        loaded.add_approver("x@acme.com", pub(other), groups=("Ops!",),
                            now=NOW)
