"""The trust store: publisher keys allowed to sign session manifests (``home/trust.yaml``).

The file is plain YAML a user can read and review::

    version: 1
    publishers:
      - name: anthropic.com:claude-code:v2.4.1
        key: "<base64 of the raw 32-byte Ed25519 public key>"
        key_id: "ed25519:7c91a4f3…"     # must equal the key's id; checked on load
        added: "2026-05-05T14:21:08Z"
        roles: [code-reviewer]          # optional: roles it may sign (empty: any)
        comment: "platform team"        # optional
    roles: [data-steward]               # optional: role names beyond the shipped ones
    approvers:                          # optional: people whose signed approval decisions count
      - name: ops@acme.com
        key: "<base64 of the raw 32-byte Ed25519 public key>"
        key_id: "ed25519:…"
        added: "2026-05-05T14:21:08Z"
        groups: [ops]                   # approver groups a policy rule can ask for
        comment: "on-call"              # optional

A missing file is an empty store (nothing is trusted); a corrupt one is a :class:`ProfileError`
with ``file:line`` — never reset silently.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from trackwrap.config import Reader, load_yaml_bytes
from trackwrap.crypto import key_id_for
from trackwrap.errors import ConfigError, ProfileError, SignatureError
from trackwrap.manifest._model import ROLE_NAME

__all__ = ["Approver", "Publisher", "TrustStore", "parse_public_key"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+-]*")
_PUBLISHER_KEYS = ("name", "key", "key_id", "added", "roles", "servers", "comment")
_APPROVER_KEYS = ("name", "key", "key_id", "added", "groups", "comment")
_GROUP = re.compile(r"[a-z0-9][a-z0-9_-]*")
_RAW_KEY_LEN = 32
#: DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID
#: 1.3.101.112 }, BIT STRING (33 bytes, 0 unused bits) }; the raw key follows.
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PEM = re.compile(r"-----BEGIN PUBLIC KEY-----(.*?)-----END PUBLIC KEY-----", re.DOTALL)
_FILE_MODE = 0o644


def parse_public_key(text: str) -> bytes:
    """The raw 32-byte Ed25519 public key from base64, ``ed25519:<base64>`` or a PEM
    ``PUBLIC KEY`` (SubjectPublicKeyInfo) block.

    Raises:
        SignatureError: none of those forms, or not a valid Ed25519 key.
    """
    text = text.strip()
    pem = _PEM.search(text)
    if pem is not None:
        der = _b64("".join(pem.group(1).split()))
        if (
            not der.startswith(_ED25519_SPKI_PREFIX)
            or len(der) != len(_ED25519_SPKI_PREFIX) + _RAW_KEY_LEN
        ):
            raise SignatureError("the PEM block is not an Ed25519 public key")
        raw = der[len(_ED25519_SPKI_PREFIX) :]
    else:
        raw = _b64(text.removeprefix("ed25519:"))
    if len(raw) != _RAW_KEY_LEN:
        hint = " (that looks like a key id, not a key)" if len(raw) < _RAW_KEY_LEN else ""
        raise SignatureError(f"an Ed25519 public key is {_RAW_KEY_LEN} bytes, got {len(raw)}{hint}")
    key_id_for(raw)  # rejects bytes that are not a point on the curve
    return raw


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"not base64: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Publisher:
    """One trusted publisher key."""

    name: str
    key: bytes
    key_id: str
    added: datetime
    roles: tuple[str, ...] = ()
    comment: str | None = None
    servers: tuple[str, ...] = ()
    """MCP servers whose tool lists this key signs: only a list it signed is accepted."""

    def may_sign(self, role: str) -> bool:
        """Whether this publisher may sign manifests for ``role`` (no roles listed: any)."""
        return not self.roles or role in self.roles


@dataclass(frozen=True, slots=True)
class Approver:
    """One person whose key may sign approval decisions, and the approver groups they are in."""

    name: str
    key: bytes
    key_id: str
    added: datetime
    groups: tuple[str, ...] = ()
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class TrustStore:
    """Pinned publisher keys, approver keys and extra role names. Immutable: ``add``/``remove``
    return a new store; ``save`` writes it."""

    entries: tuple[Publisher, ...] = ()
    roles: tuple[str, ...] = ()
    approvers: tuple[Approver, ...] = ()

    @classmethod
    def load(cls, path: Path) -> TrustStore:
        """Read ``path``; a missing file is an empty store.

        Raises:
            ProfileError: the file cannot be read or does not validate (with ``file:line``).
        """
        try:
            payload = path.read_bytes()
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise ProfileError(f"{path}: cannot read the trust store: {exc}") from exc
        return cls.parse(payload, source=str(path))

    @classmethod
    def parse(cls, payload: bytes, *, source: str) -> TrustStore:
        """Validate a trust store document (see the module docstring)."""
        doc = load_yaml_bytes(payload, source=source)
        reader = Reader(source=source, doc=doc)
        top = reader.mapping(
            doc.data, (), allowed=("version", "publishers", "roles", "approvers"),
            required=("version",),
        )
        if top["version"] != 1 or isinstance(top["version"], bool):
            reader.fail(("version",), f"unsupported version {top['version']!r} (expected 1)")
        raw_publishers = top.get("publishers", [])
        if not isinstance(raw_publishers, list):
            reader.fail(("publishers",), "expected a list of publishers")
        publishers: list[Publisher] = []
        for index, item in enumerate(raw_publishers):
            publisher = _publisher(reader, item, ("publishers", index))
            for other in publishers:
                if other.name == publisher.name or other.key_id == publisher.key_id:
                    reader.fail(
                        ("publishers", index),
                        f"publisher {publisher.name!r} ({publisher.key_id}) is listed twice",
                    )
            publishers.append(publisher)
        roles = reader.string_list(top.get("roles", []), ("roles",), empty_ok=True)
        for index, role in enumerate(roles):
            if ROLE_NAME.fullmatch(role) is None:
                reader.fail(("roles", index), f"{role!r} is not a role name ([a-z0-9-]+)")
        raw_approvers = top.get("approvers", [])
        if not isinstance(raw_approvers, list):
            reader.fail(("approvers",), "expected a list of approvers")
        approvers: list[Approver] = []
        for index, item in enumerate(raw_approvers):
            approver = _approver(reader, item, ("approvers", index))
            if any(a.name == approver.name or a.key_id == approver.key_id for a in approvers):
                reader.fail(
                    ("approvers", index),
                    f"approver {approver.name!r} ({approver.key_id}) is listed twice",
                )
            approvers.append(approver)
        return cls(entries=tuple(publishers), roles=tuple(sorted(set(roles))),
                   approvers=tuple(approvers))

    def publishers(self) -> tuple[Publisher, ...]:
        """Every trusted publisher, sorted by name."""
        return tuple(sorted(self.entries, key=lambda p: p.name))

    def by_key_id(self, key_id: str) -> Publisher | None:
        """The publisher with this key id, if trusted."""
        return next((p for p in self.entries if p.key_id == key_id), None)

    def by_name(self, name: str) -> Publisher | None:
        """The publisher with this name, if trusted."""
        return next((p for p in self.entries if p.name == name), None)

    def add(
        self,
        publisher: str,
        key: str,
        *,
        now: datetime,
        roles: Iterable[str] = (),
        comment: str | None = None,
        servers: Iterable[str] = (),
    ) -> TrustStore:
        """A store that also trusts ``key`` (see :func:`parse_public_key`) as ``publisher``
        (of session manifests, and of the tool lists of ``servers``).

        Raises:
            ConfigError: bad name or role, or the name or key is already trusted.
            SignatureError: the key is not an Ed25519 public key.
        """
        role_list = tuple(sorted(set(roles)))
        for role in role_list:
            if ROLE_NAME.fullmatch(role) is None:
                raise ConfigError(f"{role!r} is not a role name ([a-z0-9-]+)")
        raw, key_id, added = _new_entry(
            "publisher", publisher, key, now=now, comment=comment,
            taken=[(p.name, p.key_id) for p in self.entries],
        )
        entry = Publisher(
            name=publisher,
            key=raw,
            key_id=key_id,
            added=added,
            roles=role_list,
            comment=comment,
            servers=tuple(sorted(set(servers))),
        )
        return replace(self, entries=(*self.entries, entry))

    def approver(self, key_id: str) -> Approver | None:
        """The approver with this key id, if trusted."""
        return next((a for a in self.approvers if a.key_id == key_id), None)

    def add_approver(
        self,
        name: str,
        key: str,
        *,
        now: datetime,
        groups: Iterable[str] = (),
        comment: str | None = None,
    ) -> TrustStore:
        """A store that also trusts ``key`` to sign approval decisions as ``name``.

        Raises:
            ConfigError: bad name or group, or the name or key is already an approver.
            SignatureError: the key is not an Ed25519 public key.
        """
        group_list = tuple(sorted(set(groups)))
        for group in group_list:
            if _GROUP.fullmatch(group) is None:
                raise ConfigError(f"{group!r} is not a group name ([a-z0-9_-]+)")
        raw, key_id, added = _new_entry(
            "approver", name, key, now=now, comment=comment,
            taken=[(a.name, a.key_id) for a in self.approvers],
        )
        entry = Approver(name=name, key=raw, key_id=key_id, added=added, groups=group_list,
                         comment=comment)
        return replace(self, approvers=(*self.approvers, entry))

    def server_keys(self, server: str) -> dict[str, bytes]:
        """Key id -> public key of the publishers that sign ``server``'s tool lists."""
        return {p.key_id: p.key for p in self.entries if server in p.servers}

    def remove(self, name_or_key_id: str) -> TrustStore:
        """A store without the publisher of that name or key id.

        Raises:
            ConfigError: no such publisher.
        """
        kept = tuple(p for p in self.entries if name_or_key_id not in (p.name, p.key_id))
        approvers = tuple(a for a in self.approvers if name_or_key_id not in (a.name, a.key_id))
        if len(kept) == len(self.entries) and len(approvers) == len(self.approvers):
            raise ConfigError(
                f"no trusted publisher or approver named or with key id {name_or_key_id!r}"
            )
        return replace(self, entries=kept, approvers=approvers)

    def with_role(self, role: str) -> TrustStore:
        """A store that also knows the role name ``role``."""
        if ROLE_NAME.fullmatch(role) is None:
            raise ConfigError(f"{role!r} is not a role name ([a-z0-9-]+)")
        return replace(self, roles=tuple(sorted({*self.roles, role})))

    def known_roles(self, shipped: Iterable[str]) -> frozenset[str]:
        """The shipped role names plus the store's extra ones."""
        return frozenset(shipped) | frozenset(self.roles)

    def dumps(self) -> bytes:
        """The store as YAML text, publishers sorted by name (stable output)."""
        lines = [
            "# trackwrap trust store: publisher keys allowed to sign session manifests.",
            "# Edit with `trackwrap trust add|remove`; every key here can bind a session.",
            "version: 1",
        ]
        publishers = self.publishers()
        lines.append("publishers:" if publishers else "publishers: []")
        for p in publishers:
            lines.append(f"  - name: {_q(p.name)}")
            lines.append(f"    key: {_q(base64.b64encode(p.key).decode('ascii'))}")
            lines.append(f"    key_id: {_q(p.key_id)}")
            lines.append(f"    added: {_q(_timestamp(p.added))}")
            lines.append(f"    roles: [{', '.join(_q(r) for r in p.roles)}]")
            if p.servers:
                lines.append(f"    servers: [{', '.join(_q(r) for r in p.servers)}]")
            if p.comment is not None:
                lines.append(f"    comment: {_q(p.comment)}")
        lines.append(f"roles: [{', '.join(_q(r) for r in self.roles)}]")
        approvers = sorted(self.approvers, key=lambda a: a.name)
        if approvers:
            lines.append("# Approvers: keys whose signed approval decisions count "
                         "(`trackwrap trust add-approver`).")
            lines.append("approvers:")
        for a in approvers:
            lines.append(f"  - name: {_q(a.name)}")
            lines.append(f"    key: {_q(base64.b64encode(a.key).decode('ascii'))}")
            lines.append(f"    key_id: {_q(a.key_id)}")
            lines.append(f"    added: {_q(_timestamp(a.added))}")
            lines.append(f"    groups: [{', '.join(_q(g) for g in a.groups)}]")
            if a.comment is not None:
                lines.append(f"    comment: {_q(a.comment)}")
        return ("\n".join(lines) + "\n").encode("utf-8")

    def save(self, path: Path) -> None:
        """Write atomically (temp file in the same directory, fsync, rename), mode 0644.

        Raises:
            ConfigError: the file cannot be written.
        """
        payload = self.dumps()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(payload)
                    handle.flush()
                    os.fchmod(handle.fileno(), _FILE_MODE)
                    os.fsync(handle.fileno())
                os.replace(temp, path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write the trust store: {exc}") from exc


def _new_entry(
    what: str,
    name: str,
    key: str,
    *,
    now: datetime,
    comment: str | None,
    taken: Iterable[tuple[str, str]],
) -> tuple[bytes, str, datetime]:
    """Check a new ``what`` (publisher or approver) entry against the ones already ``taken``
    (name, key id); returns its raw key, key id and the time it is added."""
    if _NAME.fullmatch(name) is None:
        raise ConfigError(f"{name!r} is not a valid {what} name (letters, digits, ._:@/+-)")
    if comment is not None and any(ord(c) < 0x20 for c in comment):
        raise ConfigError("a comment is one line of text")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ConfigError("now must be timezone-aware")
    raw = parse_public_key(key)
    key_id = key_id_for(raw)
    for other_name, other_id in taken:
        if other_name == name:
            raise ConfigError(f"{what} {name!r} is already trusted ({other_id}); "
                              "remove it first to replace its key")
        if other_id == key_id:
            raise ConfigError(f"key {key_id} is already trusted as {what} {other_name!r}")
    return raw, key_id, now.astimezone(UTC).replace(microsecond=0)


def _pinned_key(reader: Reader, spec: Mapping[str, object], path: tuple[object, ...]) -> bytes:
    """The entry's public key, checked against its recorded key id."""
    key_text = reader.string(spec["key"], (*path, "key"))
    try:
        raw = parse_public_key(key_text)
    except SignatureError as exc:
        reader.fail((*path, "key"), str(exc))
    key_id = reader.string(spec["key_id"], (*path, "key_id"))
    if key_id != key_id_for(raw):
        reader.fail((*path, "key_id"), f"{key_id} is not the id of this key ({key_id_for(raw)})")
    return raw


def _approver(reader: Reader, value: object, path: tuple[object, ...]) -> Approver:
    spec = reader.mapping(
        value, path, allowed=_APPROVER_KEYS, required=("name", "key", "key_id", "added")
    )
    name = reader.matching(spec["name"], (*path, "name"), _NAME, what="an approver name")
    raw = _pinned_key(reader, spec, path)
    groups = reader.string_list(spec.get("groups", []), (*path, "groups"), empty_ok=True)
    for index, group in enumerate(groups):
        if _GROUP.fullmatch(group) is None:
            reader.fail((*path, "groups", index), f"{group!r} is not a group name ([a-z0-9_-]+)")
    comment = reader.string(spec["comment"], (*path, "comment")) if "comment" in spec else None
    return Approver(name=name, key=raw, key_id=key_id_for(raw),
                    added=reader.timestamp(spec["added"], (*path, "added")),
                    groups=tuple(groups), comment=comment)


def _publisher(reader: Reader, value: object, path: tuple[object, ...]) -> Publisher:
    spec = reader.mapping(
        value, path, allowed=_PUBLISHER_KEYS, required=("name", "key", "key_id", "added")
    )
    name = reader.matching(spec["name"], (*path, "name"), _NAME, what="a publisher name")
    raw = _pinned_key(reader, spec, path)
    key_id = key_id_for(raw)
    roles = reader.string_list(spec.get("roles", []), (*path, "roles"), empty_ok=True)
    for index, role in enumerate(roles):
        if ROLE_NAME.fullmatch(role) is None:
            reader.fail((*path, "roles", index), f"{role!r} is not a role name ([a-z0-9-]+)")
    comment = None
    if "comment" in spec:
        comment = reader.string(spec["comment"], (*path, "comment"))
    servers = reader.string_list(spec.get("servers", []), (*path, "servers"), empty_ok=True)
    return Publisher(
        name=name,
        key=raw,
        key_id=key_id,
        added=reader.timestamp(spec["added"], (*path, "added")),
        roles=tuple(roles),
        comment=comment,
        servers=tuple(servers),
    )


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON string syntax is a subset of it)."""
    return json.dumps(text)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
