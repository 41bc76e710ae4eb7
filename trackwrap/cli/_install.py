"""``trackwrap install`` / ``uninstall``: put trackwrap in front of the stdio MCP servers that the
usual clients' configs start, and take it away again.

Configs are edited by **text splicing**, never by re-serialising a parsed document: the file is
parsed only to find the exact spans of the values trackwrap owns (a server's ``command`` and
``args``, and the ``env`` entries whose tokens it moves to the OS keyring), new text is put in
those spans, and every other character — comments, unknown keys, key order, indentation,
trailing commas, line endings — stays as it was. JSON and JSONC (comments, trailing commas) are
read by the small tokenizer below, which records the span of every value; TOML (Codex) is read
with ``tomlkit``, and a value's span is found by swapping the value for a unique marker and
comparing the two renderings (the text before and after the span must be unchanged, or the
edit is refused).

Each wrapped server leaves a record in ``<TRACKWRAP_HOME>/installs.json``: where its edited
region starts relative to its ``command`` value, the region's length and SHA-256 as written, and
every splice's original text (a moved token only as a reference to its secret name). ``uninstall``
finds the server again by its key path, checks the region is still byte for byte what install
wrote, and splices the original text back, so an unchanged file ends up identical to what it was.
A JSON file its client has since re-formatted is restored by value instead; anything else that
changed is left alone, with the reason.

``install_hooks`` / ``uninstall_hooks`` splice trackwrap's ``PreToolUse`` hook entry into Claude
Code's ``settings.json`` and Codex's ``hooks.json`` (and take exactly that text out again) the
same way.

Functions here do no printing; the typer commands in ``_install_cmds`` render what they return.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import itertools
import json
import os
import posixpath
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from trackwrap.errors import ConfigError, Error

__all__ = [
    "CLIENTS",
    "HOOK_CLIENTS",
    "INSTALLS_FILE",
    "SECRETS_INDEX_FILE",
    "ConfigFile",
    "FileReport",
    "Outcome",
    "SecretKeeper",
    "check_env_name",
    "find_configs",
    "forget_secret",
    "install",
    "install_hooks",
    "list_secrets",
    "looked_in",
    "looks_secret",
    "remember_secret",
    "secret_name",
    "uninstall",
    "uninstall_hooks",
]

CLIENTS: Mapping[str, str] = {
    "claude-code": "Claude Code",
    "claude-desktop": "Claude Desktop",
    "codex": "Codex",
    "cursor": "Cursor",
    "vscode": "VS Code",
    "windsurf": "Windsurf",
}
"""The clients whose configs ``install`` knows, by option value and display name."""

INSTALLS_FILE = "installs.json"
SECRETS_INDEX_FILE = "secrets.json"

_REMOTE_TYPES = frozenset({"http", "sse", "streamable-http", "streamable_http", "streamablehttp"})
_SECRET_WORDS = ("TOKEN", "SECRET", "KEY", "PASSWORD", "PASSWD", "CREDENTIAL")
_SECRET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_SECRET = 16 * 1024
_WRAPPER_NAMES = frozenset({"trackwrap", "trackwrap.exe", "trackwrap.cmd"})
_BACKUP_MARK = ".trackwrap-backup-"

Piece = str | dict[str, str]
"""Original text of a splice: literal text, or ``{"secret": NAME}`` where a moved token was."""


class SecretKeeper(Protocol):
    """Where moved tokens go: :class:`trackwrap.crypto.SecretStore` (injected, so tests can use
    its file backend)."""

    def get(self, name: str) -> str | None: ...
    def set(self, name: str, value: str) -> None: ...
    def delete(self, name: str) -> bool: ...
    def where(self, name: str) -> str: ...


# ------------------------------------------------------------------------------ secret names


def looks_secret(key: str) -> bool:
    """Whether an environment variable's name says it holds a secret (``GITHUB_TOKEN``,
    ``API_KEY``, ``GITHUB_PAT`` …; ``PATH`` is not ``PAT``)."""
    upper = key.upper()
    if any(word in upper for word in _SECRET_WORDS):
        return True
    return "PAT" in re.split(r"[^A-Z0-9]+", upper)


def secret_name(server: str, key: str) -> str:
    """The name a server's environment secret is stored under: ``server.<server>.<key>``,
    lower-cased, other characters as ``-``.

    Raises:
        ConfigError: the name would be longer than a secret name may be.
    """
    raw = f"server.{server}.{key}".lower()
    name = re.sub(r"[^a-z0-9._-]", "-", raw)
    if not _SECRET_NAME.match(name):
        raise ConfigError(f"server {server!r} and variable {key!r} make no valid secret name "
                          "(at most 128 characters of a-z, 0-9, '.', '_', '-')")
    return name


def check_env_name(key: str) -> str:
    """``key`` if it is an environment variable name.

    Raises:
        ConfigError: it is not.
    """
    if not _ENV_NAME.match(key):
        raise ConfigError(f"{key!r} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
    return key


def _index_path(home: Path) -> Path:
    return home / SECRETS_INDEX_FILE


def list_secrets(home: Path) -> list[tuple[str, str, str]]:
    """``(server, key, secret name)`` of every server secret trackwrap stored, sorted."""
    entries = _read_json(_index_path(home), {"version": 1, "secrets": {}}).get("secrets", {})
    out = [(str(v.get("server", "")), str(v.get("key", "")), str(name))
           for name, v in entries.items() if isinstance(v, dict)]
    return sorted(out)


def remember_secret(home: Path, server: str, key: str) -> str:
    """Add ``(server, key)`` to the index of stored secrets (keyrings cannot list); its name.

    Raises:
        ConfigError: the name is taken by another server's variable.
    """
    name = secret_name(server, key)
    path = _index_path(home)
    index = _read_json(path, {"version": 1, "secrets": {}})
    secrets = index.setdefault("secrets", {})
    held = secrets.get(name)
    if isinstance(held, dict) and (held.get("server"), held.get("key")) != (server, key):
        raise ConfigError(f"the secret name {name} is already used by {held.get('key')} of "
                          f"server {held.get('server')}; rename one of the servers")
    secrets[name] = {"server": server, "key": key}
    _write_json(path, index)
    return name


def forget_secret(home: Path, name: str) -> None:
    """Drop ``name`` from the index of stored secrets."""
    path = _index_path(home)
    index = _read_json(path, {"version": 1, "secrets": {}})
    if index.get("secrets", {}).pop(name, None) is not None:
        _write_json(path, index)


# ------------------------------------------------------------------------------ config files


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """One MCP client config file and where its servers are inside it."""

    client: str
    path: Path
    format: Literal["json", "toml"]
    scopes: tuple[tuple[str, ...], ...]
    """Key paths of the objects that map server names to servers; ``*`` is every key."""
    quiet_if_empty: bool = False
    """A file that only sometimes holds servers (``~/.claude/settings.json``): no word if not."""


def find_configs(
    clients: Iterable[str],
    *,
    home: Path,
    project: Path,
    platform: str,
    environ: Mapping[str, str],
) -> list[ConfigFile]:
    """The config files of ``clients`` that exist, each once (by real path).

    Raises:
        ConfigError: an unknown client name.
    """
    found: list[ConfigFile] = []
    seen: set[str] = set()
    for client in clients:
        if client not in CLIENTS:
            raise ConfigError(f"unknown client {client!r}; use one of: {', '.join(CLIENTS)}")
        for config in _candidates(client, home=home, project=project, platform=platform,
                                  environ=environ):
            real = os.path.realpath(config.path)
            if real not in seen and config.path.is_file():
                seen.add(real)
                found.append(config)
    return found


def looked_in(
    clients: Iterable[str], *, home: Path, project: Path, platform: str,
    environ: Mapping[str, str],
) -> list[Path]:
    """Every path :func:`find_configs` looks at for ``clients`` (for "nothing found")."""
    return [c.path for client in clients if client in CLIENTS
            for c in _candidates(client, home=home, project=project, platform=platform,
                                 environ=environ)]


def _candidates(
    client: str, *, home: Path, project: Path, platform: str, environ: Mapping[str, str]
) -> list[ConfigFile]:
    servers = (("mcpServers",),)
    if client == "claude-code":
        return [
            ConfigFile(client, home / ".claude.json", "json",
                       (("mcpServers",), ("projects", "*", "mcpServers"))),
            ConfigFile(client, project / ".mcp.json", "json", servers),
            ConfigFile(client, home / ".claude" / "settings.json", "json", servers,
                       quiet_if_empty=True),
        ]
    if client == "claude-desktop":
        if platform == "darwin":
            base = home / "Library" / "Application Support"
        elif platform == "win32":
            base = Path(environ.get("APPDATA") or home / "AppData" / "Roaming")
        else:
            base = home / ".config"
        return [ConfigFile(client, base / "Claude" / "claude_desktop_config.json", "json",
                           servers)]
    if client == "codex":
        codex_home = Path(environ["CODEX_HOME"]) if environ.get("CODEX_HOME") else home / ".codex"
        return [ConfigFile(client, codex_home / "config.toml", "toml", (("mcp_servers",),))]
    if client == "cursor":
        return [ConfigFile(client, home / ".cursor" / "mcp.json", "json", servers),
                ConfigFile(client, project / ".cursor" / "mcp.json", "json", servers)]
    if client == "vscode":
        return [ConfigFile(client, project / ".vscode" / "mcp.json", "json", (("servers",),))]
    return [ConfigFile(client, home / ".codeium" / "windsurf" / "mcp_config.json", "json",
                       servers)]


# ------------------------------------------------------------------------------ JSON / JSONC


class _ParseError(Exception):
    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.pos = pos


@dataclass(slots=True)
class _JMember:
    key: str
    key_start: int
    value: _JNode


@dataclass(slots=True)
class _JNode:
    kind: Literal["object", "array", "scalar"]
    start: int
    end: int
    members: list[_JMember] = field(default_factory=list)
    items: list[_JNode] = field(default_factory=list)
    scalar: object = None

    def member(self, key: str) -> _JMember | None:
        """The member ``key`` (the last one, as JSON readers take it)."""
        found = [m for m in self.members if m.key == key]
        return found[-1] if found else None

    def python(self) -> Any:
        if self.kind == "object":
            return {m.key: m.value.python() for m in self.members}
        if self.kind == "array":
            return [item.python() for item in self.items]
        return self.scalar


_WS = re.compile(r"(?:[ \t\r\n\ufeff]+|//[^\n]*|/\*.*?\*/)*", re.DOTALL)
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\.)*"', re.DOTALL)
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LITERALS = {"true": True, "false": False, "null": None}
_MAX_DEPTH = 200


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


class _JsonParser:
    """JSON with comments and trailing commas (JSONC), keeping every value's span.

    With ``scopes``, only the objects on the way to them and everything inside them get spans;
    any other value is read in one go by the standard decoder when it can (a config such as
    ``~/.claude.json`` runs to megabytes of history nobody edits), and becomes one leaf.
    """

    def __init__(self, text: str, scopes: Sequence[tuple[str, ...]] | None = None) -> None:
        self.text = text
        self.scopes = scopes

    def parse(self) -> _JNode:
        node, end = self._value(self._skip(0), 0, ())
        end = self._skip(end)
        if end != len(self.text):
            raise _ParseError("unexpected text after the document", end)
        return node

    def _skip(self, pos: int) -> int:
        match = _WS.match(self.text, pos)
        return match.end() if match else pos

    def _wanted(self, path: tuple[str, ...]) -> bool:
        if self.scopes is None:
            return True
        return any(all(s in ("*", p) for s, p in zip(scope, path, strict=False))
                   for scope in self.scopes)

    def _value(self, pos: int, depth: int, path: tuple[str, ...]) -> tuple[_JNode, int]:
        if depth > _MAX_DEPTH:
            raise _ParseError("nested too deeply", pos)
        char = self.text[pos:pos + 1]
        if char in ("{", "[") and not self._wanted(path):
            try:
                value, end = _DECODER.raw_decode(self.text, pos)
            except (ValueError, RecursionError):
                pass  # comments, trailing commas …: read it the slow way
            else:
                return _JNode("scalar", pos, end, scalar=value), end
        if char == "{":
            return self._object(pos, depth, path)
        if char == "[":
            return self._array(pos, depth, path)
        if char == '"':
            return self._string(pos)
        number = _NUMBER.match(self.text, pos)
        if number:
            return _JNode("scalar", pos, number.end(), scalar=json.loads(number.group())), \
                number.end()
        for word, value in _LITERALS.items():
            if self.text.startswith(word, pos):
                return _JNode("scalar", pos, pos + len(word), scalar=value), pos + len(word)
        raise _ParseError("expected a value" if char else "unexpected end of file", pos)

    def _string(self, pos: int) -> tuple[_JNode, int]:
        match = _STRING.match(self.text, pos)
        if not match:
            raise _ParseError("unterminated or invalid string", pos)
        try:
            value = json.loads(match.group())
        except ValueError as exc:
            raise _ParseError(f"invalid string ({exc})", pos) from None
        return _JNode("scalar", pos, match.end(), scalar=value), match.end()

    def _object(self, pos: int, depth: int, path: tuple[str, ...]) -> tuple[_JNode, int]:
        node = _JNode("object", pos, pos)
        pos = self._skip(pos + 1)
        while self.text[pos:pos + 1] != "}":
            if self.text[pos:pos + 1] != '"':
                raise _ParseError("expected a key in double quotes", pos)
            key, pos = self._string(pos)
            pos = self._skip(pos)
            if self.text[pos:pos + 1] != ":":
                raise _ParseError("expected ':'", pos)
            name = str(key.scalar)
            value, pos = self._value(self._skip(pos + 1), depth + 1, (*path, name))
            node.members.append(_JMember(name, key.start, value))
            pos = self._skip(pos)
            if self.text[pos:pos + 1] == ",":
                pos = self._skip(pos + 1)
            elif self.text[pos:pos + 1] != "}":
                raise _ParseError("expected ',' or '}'", pos)
        node.end = pos + 1
        return node, pos + 1

    def _array(self, pos: int, depth: int, path: tuple[str, ...]) -> tuple[_JNode, int]:
        node = _JNode("array", pos, pos)
        pos = self._skip(pos + 1)
        while self.text[pos:pos + 1] != "]":
            item, pos = self._value(pos, depth + 1, (*path, "[]"))
            node.items.append(item)
            pos = self._skip(pos)
            if self.text[pos:pos + 1] == ",":
                pos = self._skip(pos + 1)
            elif self.text[pos:pos + 1] != "]":
                raise _ParseError("expected ',' or ']'", pos)
        node.end = pos + 1
        return node, pos + 1


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {col}"


# ------------------------------------------------------------------------------ documents


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    end: int


@dataclass(slots=True)
class _Entry:
    scope: tuple[str, ...]
    name: str
    data: Any


class _Doc:
    """A parsed config: its servers, and the spans of the values trackwrap edits."""

    fmt: Literal["json", "toml"]

    def __init__(self, text: str) -> None:
        self.text = text

    def data(self) -> Any:
        raise NotImplementedError

    def entries(self, scopes: Sequence[tuple[str, ...]]) -> list[_Entry]:
        """The servers under ``scopes``, in file order."""
        data = self.data()
        out: list[_Entry] = []
        for scope in scopes:
            for concrete in _expand(data, scope, ()):
                table = _get(data, concrete)
                if isinstance(table, dict):
                    out += [_Entry(concrete, str(k), v) for k, v in table.items()]
        return out

    def span(self, path: tuple[str, ...]) -> _Span:
        """Where the value at ``path`` is written."""
        raise NotImplementedError

    def render_string(self, value: str) -> str:
        raise NotImplementedError

    def render_list(self, value: list[str]) -> str:
        raise NotImplementedError

    def insert_args(self, entry: _Entry, rendered: str) -> tuple[int, str]:
        """Where and what to insert to give ``entry`` an ``args`` key after its ``command``."""
        raise NotImplementedError

    def remove_env(self, entry: _Entry, keys: Sequence[str]) -> list[tuple[int, int]]:
        """The ranges to cut to drop ``keys`` from ``entry``'s ``env``."""
        raise NotImplementedError


def _expand(data: Any, scope: tuple[str, ...], done: tuple[str, ...]) -> list[tuple[str, ...]]:
    if not scope:
        return [done]
    if not isinstance(data, dict):
        return []
    head, rest = scope[0], scope[1:]
    if head == "*":
        return [p for k, v in data.items() for p in _expand(v, rest, (*done, str(k)))]
    if head not in data:
        return []
    return _expand(data[head], rest, (*done, head))


def _get(data: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


class _JsonDoc(_Doc):
    fmt: Literal["json", "toml"] = "json"

    def __init__(self, text: str, scopes: Sequence[tuple[str, ...]] | None = None) -> None:
        super().__init__(text)
        self.root = _JsonParser(text, scopes).parse()
        # Written without spaces after ':' (as by JSON.stringify without indent): keep it so.
        self.compact = re.search(r'"[ \t]*:[ \t\r\n]', text) is None
        self._data = self.root.python()

    def data(self) -> Any:
        return self._data

    def node(self, path: Sequence[str]) -> _JNode:
        node = self.root
        for key in path:
            member = node.member(key) if node.kind == "object" else None
            if member is None:
                raise KeyError(key)
            node = member.value
        return node

    def span(self, path: tuple[str, ...]) -> _Span:
        node = self.node(path)
        return _Span(node.start, node.end)

    def render_string(self, value: str) -> str:
        return json.dumps(value, ensure_ascii=False)

    def render_list(self, value: list[str]) -> str:
        separators = (",", ":") if self.compact else (", ", ": ")
        return json.dumps(value, ensure_ascii=False, separators=separators)

    def insert_args(self, entry: _Entry, rendered: str) -> tuple[int, str]:
        server = self.node((*entry.scope, entry.name))
        member = server.member("command")
        assert member is not None  # checked by the caller  # noqa: S101
        text = self.text
        line_start = text.rfind("\n", 0, member.key_start) + 1
        indent = text[line_start:member.key_start]
        if indent.strip():
            if self.compact:
                return member.value.end, f',"args":{rendered}'
            return member.value.end, f', "args": {rendered}'
        newline = "\r\n" if text[max(0, line_start - 2):line_start] == "\r\n" else "\n"
        after = _AFTER_MEMBER.match(text, member.value.end)
        if after:  # a comma, maybe a comment, then the line ends: add a line below it
            return after.end(), f'{indent}"args": {rendered},{newline}'
        return member.value.end, f',{newline}{indent}"args": {rendered}'

    def remove_env(self, entry: _Entry, keys: Sequence[str]) -> list[tuple[int, int]]:
        env = self.node((*entry.scope, entry.name, "env"))
        members = [(m.key_start, m.value.end, m.key in keys) for m in env.members]
        return _cut_members(env.start, env.end, members)


def _cut_members(
    open_pos: int, close_end: int, members: Sequence[tuple[int, int, bool]]
) -> list[tuple[int, int]]:
    """Ranges that remove the flagged members of an object written ``{ … }`` (JSON or a TOML
    inline table), keeping the separators of the members that stay valid.

    ``members`` is ``(key start, value end, remove?)`` in order.
    """
    if all(remove for _s, _e, remove in members):
        inner_start, inner_end = open_pos + 1, close_end - 1
        return [(inner_start, inner_end)] if inner_end > inner_start else []
    cuts: list[tuple[int, int]] = []
    i = 0
    while i < len(members):
        if not members[i][2]:
            i += 1
            continue
        j = i
        while j + 1 < len(members) and members[j + 1][2]:
            j += 1
        if j + 1 < len(members):  # a kept member follows: cut up to its key
            cuts.append((members[i][0], members[j + 1][0]))
        else:  # the run ends the object: cut from the end of the last kept value
            cuts.append((members[i - 1][1], members[j][1]))
        i = j + 1
    return cuts


_AFTER_MEMBER = re.compile(r"[ \t]*,[ \t]*(?://[^\n]*|/\*[^\n]*?\*/[ \t]*)?\r?\n")
"""After a member's value: its comma and maybe a comment, to the end of its line."""

_MARKER = "\ue000trackwrap-span\ue000"


class _TomlDoc(_Doc):
    fmt: Literal["json", "toml"] = "toml"

    def __init__(self, text: str) -> None:
        import tomlkit
        from tomlkit.exceptions import ParseError

        super().__init__(text)
        try:
            document = tomlkit.parse(text)
        except ParseError as exc:
            raise _ParseError(str(exc), _offset(text, exc.line, exc.col)) from None
        if document.as_string() != text:  # pragma: no cover - tomlkit round-trips by design
            raise _ParseError("tomlkit cannot reproduce this file exactly", 0)
        self._data = document.unwrap()

    def data(self) -> Any:
        return self._data

    def _item(self, document: Any, path: Sequence[str]) -> Any:
        item = document
        for key in path:
            item = item[key]
        return item

    def span(self, path: tuple[str, ...]) -> _Span:
        import tomlkit

        document = tomlkit.parse(self.text)
        parent = self._item(document, path[:-1])
        raw = parent[path[-1]].as_string()
        parent[path[-1]] = _MARKER
        marked = document.as_string()
        marker = tomlkit.string(_MARKER).as_string()
        pos = marked.find(marker)
        tail = marked[pos + len(marker):]
        if (pos < 0 or marked[:pos] != self.text[:pos] or self.text[pos:pos + len(raw)] != raw
                or self.text[pos + len(raw):] != tail):
            raise _ParseError(f"cannot locate {'.'.join(path)} exactly", 0)
        return _Span(pos, pos + len(raw))

    def render_string(self, value: str) -> str:
        import tomlkit

        return str(tomlkit.string(value).as_string())

    def render_list(self, value: list[str]) -> str:
        import tomlkit

        return str(tomlkit.item(value).as_string())

    def _is_inline(self, path: Sequence[str]) -> bool:
        import tomlkit
        from tomlkit.items import InlineTable

        return isinstance(self._item(tomlkit.parse(self.text), path), InlineTable)

    def insert_args(self, entry: _Entry, rendered: str) -> tuple[int, str]:
        span = self.span((*entry.scope, entry.name, "command"))
        if self._is_inline((*entry.scope, entry.name)):
            return span.end, f", args = {rendered}"
        text = self.text
        line_start = text.rfind("\n", 0, span.start) + 1
        prefix = text[line_start:span.start]
        at = prefix.rfind("command")
        args_prefix = prefix[:at] + "args" + prefix[at + len("command"):]
        line_end = text.find("\n", span.end)
        if line_end < 0:
            return len(text), f"\n{args_prefix}{rendered}"
        newline = "\r\n" if text[line_end - 1:line_end] == "\r" else "\n"
        return line_end + 1, f"{args_prefix}{rendered}{newline}"

    def remove_env(self, entry: _Entry, keys: Sequence[str]) -> list[tuple[int, int]]:
        base = (*entry.scope, entry.name)
        env_path = (*base, "env")
        if self._is_inline(env_path):
            env = self.span(env_path)
            members: list[tuple[int, int, bool]] = []
            cursor = env.start + 1
            for key in entry.data["env"]:
                value = self.span((*env_path, key))
                key_start = cursor
                while self.text[key_start] in " \t":
                    key_start += 1
                members.append((key_start, value.end, key in keys))
                comma = self.text.find(",", value.end, env.end)
                cursor = comma + 1 if comma >= 0 else value.end
            return _cut_members(env.start, env.end, members)
        if self._is_inline(base):
            raise _ParseError("env is written as dotted keys inside an inline table", 0)
        cuts = []
        for key in keys:
            value = self.span((*env_path, key))
            start = self.text.rfind("\n", 0, value.start) + 1
            end = self.text.find("\n", value.end)
            cuts.append((start, len(self.text) if end < 0 else end + 1))
        return cuts


def _offset(text: str, line: int, col: int) -> int:
    lines = text.split("\n")
    return sum(len(x) + 1 for x in lines[:max(0, line - 1)]) + max(0, col - 1)


def _parse(fmt: str, text: str, scopes: Sequence[tuple[str, ...]]) -> _Doc:
    return _JsonDoc(text, scopes) if fmt == "json" else _TomlDoc(text)


# ------------------------------------------------------------------------------ outcomes


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened (or would happen) to one server."""

    scope: str
    server: str
    status: Literal["wrap", "already", "skip", "restore", "keep"]
    detail: str = ""
    notes: tuple[str, ...] = ()


@dataclass(slots=True)
class FileReport:
    """One config file: what was found, the (masked) diff, and whether it was written."""

    config: ConfigFile
    shown: str
    outcomes: list[Outcome] = field(default_factory=list)
    diff: list[str] = field(default_factory=list)
    changed: bool = False
    written: bool = False
    backup: Path | None = None
    error: str | None = None
    empty: bool = False


def _scope_label(fmt: str, scope: tuple[str, ...]) -> str:
    if fmt == "json" and len(scope) == 3 and scope[0] == "projects":
        return f"projects[{scope[1]}].{scope[2]}"
    return ".".join(scope)


def _shown(path: Path, user_home: Path) -> str:
    text = str(path)
    home = str(user_home)
    if home not in ("", "/") and (text == home or text.startswith(home + os.sep)):
        return "~" + text[len(home):]
    return text


def _is_wrapped(command: str, args: Sequence[object], trackwrap: str) -> bool:
    def base(value: str) -> str:
        return posixpath.basename(value.replace("\\", "/")).lower()

    if command == trackwrap or base(command) in _WRAPPER_NAMES:
        return True
    for i, arg in enumerate(args):
        if isinstance(arg, str) and base(arg) in {"trackwrap", "trackwrap.exe"} \
                and "--" in args[i + 1:]:
            return True
    return False


@functools.cache
def _profile_names() -> tuple[str, ...]:
    from trackwrap.config import default_profiles_dir, load_server_profiles

    return tuple(load_server_profiles([default_profiles_dir()]))


def _profile_name(name: str, argv: list[str]) -> str:
    """The ``--server`` to write: the config's name when it is a server profile's, else the
    profile the command is recognised as (so ``fs`` running server-filesystem is governed as
    ``filesystem``), else the config's name."""
    if name in _profile_names():
        return name
    from trackwrap.config import default_profiles_dir, infer_server_name, load_server_profiles

    profiles = load_server_profiles([default_profiles_dir()])
    inferred = infer_server_name(argv, profiles)
    return inferred if inferred in profiles else name


def _option(flag: str, value: str) -> list[str]:
    """``[flag, value]``, or ``[flag=value]`` when the value could be taken for a subcommand
    or an option."""
    from trackwrap.cli._usage import COMMANDS

    if value.startswith("-") or value in {name for name, _help in COMMANDS}:
        return [f"{flag}={value}"]
    return [flag, value]


def _remote_reason(data: Mapping[str, Any]) -> str | None:
    kind = data.get("type")
    if "url" in data or "serverUrl" in data or (isinstance(kind, str)
                                                 and kind.lower() in _REMOTE_TYPES):
        return "not wrapped: remote (HTTP) servers are not supported yet"
    if kind is not None and kind != "stdio":
        return f"not wrapped: server type {kind!r} is not supported"
    return None


# ------------------------------------------------------------------------------ install: plan


@dataclass(slots=True)
class _Splice:
    start: int
    end: int
    text: str
    part: str
    holes: list[tuple[int, int, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Run:
    """What one ``install`` run wraps with, and where the tokens go."""

    trackwrap: str
    keeper: SecretKeeper | None
    no_keyring: str = "no OS keyring backend"
    taken: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    """Secret name -> (server, variable, token) moved in this run."""
    claimed: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Secret name -> (server, variable) of the secrets stored before (the index)."""


@dataclass(slots=True)
class _Moves:
    """The env tokens of one server that go to the keyring, and those that stay."""

    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (name, value)
    notes: list[str] = field(default_factory=list)
    redact: dict[str, str] = field(default_factory=dict)  # token as written -> placeholder


def _plan_moves(doc: _Doc, entry: _Entry, *, shown: str, run: _Run) -> _Moves:
    moves = _Moves()
    env = entry.data.get("env")
    if not isinstance(env, dict):
        return moves
    for key, value in env.items():
        if not looks_secret(str(key)) or not isinstance(value, str) or not value:
            continue
        if "${" in value:
            continue  # a reference the client expands, not the secret itself
        if run.keeper is None:
            moves.notes.append(f"{run.no_keyring}: leaving {key} in {shown}")
            continue
        reason = _cannot_move(doc, entry, key=key, value=value, keeper=run.keeper, run=run)
        if reason:
            moves.notes.append(f"leaving {key} in {shown}: {reason}")
            continue
        name = secret_name(entry.name, key)
        run.taken[name] = (entry.name, key, value)
        moves.secrets[key] = (name, value)
    return moves


def _cannot_move(
    doc: _Doc, entry: _Entry, *, key: str, value: str, keeper: SecretKeeper, run: _Run
) -> str | None:
    """Why ``key``'s token cannot be moved to the keyring, or None."""
    try:
        name = secret_name(entry.name, check_env_name(key))
    except ConfigError as exc:
        return str(exc)
    span = doc.span((*entry.scope, entry.name, "env", key))
    if len(value) > _MAX_SECRET or "\n" in value or "\r" in value:
        reason: str | None = "the value is not one line of at most 16 KiB"
    elif _value_hole(doc.text[span.start:span.end], value) is None:
        reason = "its value is written with escapes that could not be put back exactly"
    else:
        reason = _held_elsewhere(entry, key=key, name=name, value=value, keeper=keeper,
                                 run=run)
    return reason


def _held_elsewhere(
    entry: _Entry, *, key: str, name: str, value: str, keeper: SecretKeeper, run: _Run
) -> str | None:
    """Why the keyring cannot take ``value`` as ``name`` (another variable's name, or another
    value under it), or None."""
    moved = run.taken.get(name)
    owner = moved[:2] if moved is not None else run.claimed.get(name)
    if owner is not None and owner != (entry.name, key):
        return (f"its secret name {name} is already used by {owner[1]} of server {owner[0]}; "
                "rename one of the servers")
    held = moved[2] if moved is not None else None
    if held is None:
        try:
            held = keeper.get(name)
        except Error as exc:
            return f"cannot read the keyring ({exc})"
    if held is not None and held != value:
        return (f"another server named {entry.name} keeps a different {key} in the keyring "
                f"(`trackwrap secret delete {entry.name} {key}` frees the name)")
    return None


def _value_hole(raw: str, value: str) -> tuple[int, int] | None:
    """Where ``value`` sits inside its quoted token ``raw``, if it is written verbatim."""
    for quote in ('"""', "'''", '"', "'"):
        if (len(raw) >= 2 * len(quote) and raw.startswith(quote) and raw.endswith(quote)
                and raw[len(quote):len(raw) - len(quote)] == value):
            return len(quote), len(raw) - len(quote)
    return None


def _wrappable(data: object, trackwrap: str) -> str | None:
    """Why a server entry is not wrapped (``already wrapped`` included), or None."""
    if not isinstance(data, dict):
        return "not wrapped: not a table of settings"
    remote = _remote_reason(data)
    command = data.get("command")
    args = data.get("args", [])
    if remote:
        reason: str | None = remote
    elif not isinstance(command, str) or not command:
        reason = "not wrapped: it has no command"
    elif not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        reason = "not wrapped: its args are not a list of strings"
    elif _is_wrapped(command, args, trackwrap):
        reason = "already wrapped"
    elif any(c.isspace() for c in command) and not Path(command).exists():
        reason = "not wrapped: its command contains spaces (move the arguments into args first)"
    else:
        reason = None
    return reason


def _plan_entry(
    doc: _Doc, entry: _Entry, *, shown: str, run: _Run
) -> tuple[Outcome, list[_Splice], _Moves, list[str]]:
    label = _scope_label(doc.fmt, entry.scope)
    trackwrap = run.trackwrap
    verdict = _wrappable(entry.data, trackwrap)
    if verdict is not None:
        status: Literal["already", "skip"] = "already" if verdict == "already wrapped" else "skip"
        return Outcome(label, entry.name, status, verdict), [], _Moves(), []
    data: dict[str, Any] = entry.data
    command: str = data["command"]
    args: list[str] = data.get("args", [])
    moves = _plan_moves(doc, entry, shown=shown, run=run)
    new_args = [*_option("--server", _profile_name(entry.name, [command, *args]))]
    for key in moves.secrets:
        new_args += _option("--secret", key)
    new_args += ["--", command, *args]
    base = (*entry.scope, entry.name)
    splices: list[_Splice] = []
    command_span = doc.span((*base, "command"))
    splices.append(_Splice(command_span.start, command_span.end, doc.render_string(trackwrap),
                           "command"))
    rendered = doc.render_list(new_args)
    if "args" in data:
        span = doc.span((*base, "args"))
        splices.append(_Splice(span.start, span.end, rendered, "args"))
    else:
        at, text = doc.insert_args(entry, rendered)
        splices.append(_Splice(at, at, text, "args"))
    if moves.secrets:
        holes = []
        for key, (name, value) in moves.secrets.items():
            span = doc.span((*base, "env", key))
            hole = _value_hole(doc.text[span.start:span.end], value)
            assert hole is not None  # checked in _cannot_move  # noqa: S101
            holes.append((span.start + hole[0], span.start + hole[1], name))
            raw = doc.text[span.start:span.end]
            moves.redact[raw] = f"{raw[:hole[0]]}moved-to-the-os-keyring:{name}{raw[hole[1]:]}"
        for start, end in doc.remove_env(entry, list(moves.secrets)):
            inside = [h for h in holes if start <= h[0] and h[1] <= end]
            splices.append(_Splice(start, end, "", "env", inside))
        if sum(len(s.holes) for s in splices) != len(holes):
            raise _ParseError(f"cannot cut the env entries of {entry.name} cleanly", 0)
    notes = [*moves.notes]
    notes += [f"{key} moved to the OS keyring" for key in moves.secrets]
    outcome = Outcome(label, entry.name, "wrap", "wrapped", tuple(notes))
    return outcome, splices, moves, new_args


def _apply(text: str, splices: Sequence[_Splice]) -> tuple[str, dict[str, Any]]:
    """The text with ``splices`` applied, and the record of the edited region."""
    ordered = sorted(splices, key=lambda s: (s.start, s.end))
    for before, after in itertools.pairwise(ordered):
        if after.start < before.end:
            raise _ParseError("overlapping edits", after.start)
    hull_start = min(s.start for s in ordered)
    hull_end = max(s.end for s in ordered)
    region_start = _line_start(text, hull_start)
    region_end = _line_end(text, hull_end)
    out: list[str] = []
    pieces: list[dict[str, Any]] = []
    cursor = region_start
    written_pos = 0
    for s in ordered:
        out.append(text[cursor:s.start])
        written_pos += s.start - cursor
        pieces.append({"field": s.part, "at": written_pos, "written": s.text,
                       "original": _pieces(text, s)})
        out.append(s.text)
        written_pos += len(s.text)
        cursor = s.end
    out.append(text[cursor:region_end])
    region = "".join(out)
    new_text = text[:region_start] + region + text[region_end:]
    command_at = next(p["at"] for p in pieces if p["field"] == "command")
    record = {
        "offset": region_start,
        "anchor": command_at,
        "length": len(region),
        "sha256": hashlib.sha256(region.encode("utf-8")).hexdigest(),
        "splices": pieces,
    }
    return new_text, record


def _pieces(text: str, splice: _Splice) -> list[Piece]:
    pieces: list[Piece] = []
    cursor = splice.start
    for start, end, name in sorted(splice.holes):
        if start > cursor:
            pieces.append(text[cursor:start])
        pieces.append({"secret": name})
        cursor = end
    if splice.end > cursor:
        pieces.append(text[cursor:splice.end])
    return pieces


def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _line_end(text: str, pos: int) -> int:
    if pos == 0 or text[pos - 1] == "\n":
        return pos
    nl = text.find("\n", pos)
    return len(text) if nl < 0 else nl + 1


# ------------------------------------------------------------------------------ install: run


@dataclass(slots=True)
class _FilePlan:
    text: str
    new_text: str
    records: list[dict[str, Any]] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # name -> value
    mask: set[str] = field(default_factory=set)
    redact: dict[str, str] = field(default_factory=dict)


def _plan_install_text(
    config: ConfigFile, text: str, *, run: _Run, report: FileReport, now: str
) -> _FilePlan:
    """Wrap every stdio server of one config's text (pure apart from keyring reads).

    Raises:
        ConfigError: the file cannot be parsed, or an edit would not be exact.
    """
    plan = _FilePlan(text, text)
    doc = _checked_parse(config, text)
    plan.mask |= _secret_values(doc, config.scopes)
    entries = doc.entries(config.scopes)
    report.empty = not entries
    for index in range(len(entries)):
        entry = doc.entries(config.scopes)[index]
        try:
            outcome, splices, moves, new_args = _plan_entry(
                doc, entry, shown=report.shown, run=run)
        except (_ParseError, KeyError) as exc:
            report.outcomes.append(Outcome(_scope_label(doc.fmt, entry.scope), entry.name, "skip",
                                           f"not wrapped: {_reason(exc)}; wrap it by hand"))
            continue
        report.outcomes.append(outcome)
        if not splices:
            continue
        new_text, region = _apply(doc.text, splices)

        def wrapped(server: dict[str, Any], args: list[str] = new_args,
                    moved: Iterable[str] = tuple(moves.secrets)) -> None:
            server["command"] = run.trackwrap
            server["args"] = args
            for key in moved:
                del server["env"][key]

        expected = _with_entry(doc.data(), (*entry.scope, entry.name), wrapped)
        new_doc = _checked_parse(config, new_text)
        if new_doc.data() != expected:
            raise ConfigError(f"{report.shown}: editing {entry.name} would change more than its "
                              "command, args and env; left as it is")
        doc = new_doc
        plan.secrets.update(dict(moves.secrets.values()))
        plan.redact.update(moves.redact)
        plan.records.append({
            "file": os.path.realpath(config.path),
            "client": config.client,
            "format": config.format,
            "scope": list(entry.scope),
            "server": entry.name,
            "at": now,
            "command": entry.data["command"],
            "args": entry.data.get("args"),
            "wrote_command": run.trackwrap,
            "wrote_args": new_args,
            "secrets": [{"key": k, "name": n} for k, (n, _v) in moves.secrets.items()],
            "region": region,
        })
    plan.new_text = doc.text
    plan.mask |= set(plan.secrets.values())
    return plan


def _with_entry(
    data: Any, path: tuple[str, ...], change: Callable[[dict[str, Any]], None]
) -> Any:
    """``data`` with the server at ``path`` replaced by a changed copy (its ``env`` copied too;
    only the mappings on the way are copied, the rest is shared). None if there is none."""
    root = dict(data) if isinstance(data, dict) else None
    here = root
    for key in path[:-1]:
        child = here.get(key) if here is not None else None
        if not isinstance(child, dict) or here is None:
            return None
        here[key] = dict(child)
        here = here[key]
    entry = here.get(path[-1]) if here is not None else None
    if here is None or not isinstance(entry, dict):
        return None
    entry = dict(entry)
    if isinstance(entry.get("env"), dict):
        entry["env"] = dict(entry["env"])
    here[path[-1]] = entry
    change(entry)
    return root


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"cannot find {exc.args[0]!r} where it was parsed"
    return str(exc)


def _checked_parse(config: ConfigFile, text: str) -> _Doc:
    try:
        return _parse(config.format, text, config.scopes)
    except _ParseError as exc:
        raise ConfigError(f"cannot parse {config.path.name} ({_where(text, exc.pos)}: {exc}); "
                          "left as it is") from None


def _secret_values(doc: _Doc, scopes: Sequence[tuple[str, ...]]) -> set[str]:
    """Values of secret-looking env variables anywhere in the servers (masked in diffs)."""
    found: set[str] = set()
    for entry in doc.entries(scopes):
        env = entry.data.get("env") if isinstance(entry.data, dict) else None
        if isinstance(env, dict):
            found |= {v for k, v in env.items()
                      if isinstance(v, str) and v and looks_secret(str(k))}
    return found


def install(
    configs: Sequence[ConfigFile],
    *,
    home: Path,
    user_home: Path,
    keeper: SecretKeeper | None,
    write: bool,
    trackwrap: str = "trackwrap",
    no_keyring: str = "no OS keyring backend",
    clock: Callable[[], datetime] | None = None,
) -> list[FileReport]:
    """Wrap the stdio servers of ``configs``; with ``write``, store moved tokens in ``keeper``,
    back each changed file up and rewrite it atomically, and record what was done in
    ``home/installs.json``.

    ``keeper`` None means there is no OS keyring: tokens stay where they are, and each one left
    is reported with ``no_keyring`` as the reason.
    """
    now = (clock or _utc_now)()
    reports = []
    run = _Run(trackwrap=trackwrap, keeper=keeper, no_keyring=no_keyring,
               claimed={name: (server, key) for server, key, name in list_secrets(home)})
    for config in configs:
        report = FileReport(config, _shown(config.path, user_home))
        reports.append(report)
        try:
            raw = _read_config(config.path)
            text = _decode(config.path, raw)
            plan = _plan_install_text(config, text, run=run, report=report,
                                      now=now.strftime("%Y-%m-%dT%H:%M:%SZ"))
            report.changed = plan.new_text != text
            report.diff = _diff(text, plan.new_text, report.shown, plan.mask)
            if write and report.changed:
                _store_secrets(keeper, plan.secrets, plan.records, home)
                backup_text = _redacted(text, plan.redact)
                _save_records(home, add=plan.records)
                report.backup = _commit(config.path, raw, backup_text, plan.new_text, now)
                report.written = True
        except Error as exc:
            report.error = exc.diagnostics()
    return reports


def _store_secrets(
    keeper: SecretKeeper | None, secrets: Mapping[str, str], records: Sequence[dict[str, Any]],
    home: Path,
) -> None:
    if not secrets:
        return
    if keeper is None:  # pragma: no cover - nothing is moved without a keeper
        raise ConfigError("no OS keyring to store tokens in")
    for name, value in secrets.items():
        keeper.set(name, value)
        if keeper.get(name) != value:
            raise ConfigError(f"the keyring did not keep {name}; the config was left as it is")
    for record in records:
        for moved in record["secrets"]:
            remember_secret(home, record["server"], moved["key"])


def _redacted(text: str, redact: Mapping[str, str]) -> str:
    """The original text for the backup, each moved token replaced by where it went."""
    for raw, placeholder in redact.items():
        text = text.replace(raw, placeholder)
    return text


# ------------------------------------------------------------------------------ files on disk


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _read_config(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}); left as it is") from None


def _commit(path: Path, read: bytes, backup_text: str, new_text: str, now: datetime) -> Path:
    """Back ``path`` up, then replace it atomically with ``new_text`` (same mode); the path of
    the backup.

    Raises:
        ConfigError: the file changed since it was read, or cannot be written.
    """
    real = Path(os.path.realpath(path))
    try:
        if real.read_bytes() != read:
            raise ConfigError(f"{path} changed while trackwrap was reading it; run again")
        info = real.stat()
        backup = _backup(real, backup_text.encode("utf-8"), info.st_mode & 0o777, now)
        _atomic_write(real, new_text.encode("utf-8"), info.st_mode & 0o7777,
                      owner=(info.st_uid, info.st_gid))
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return backup


def _backup(path: Path, data: bytes, mode: int, now: datetime) -> Path:
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    for n in range(100):
        candidate = path.with_name(f"{path.name}{_BACKUP_MARK}{stamp}" + (f"-{n}" if n else ""))
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(candidate, mode)
        return candidate
    raise ConfigError(f"too many backups of {path} this second; try again")


def _atomic_write(path: Path, data: bytes, mode: int, *, owner: tuple[int, int] | None) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".trackwrap-tmp",
                                dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        if owner is not None and hasattr(os, "chown"):
            with contextlib.suppress(OSError):
                os.chown(temp, *owner)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _read_json(path: Path, default: dict[str, Any]) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; move it aside") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} is not a JSON object; move it aside")
    return loaded


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _atomic_write(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode(),
                      0o600, owner=None)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _records(home: Path, kind: str = "servers") -> list[dict[str, Any]]:
    """The install records of ``kind`` (``servers`` or ``hooks``)."""
    found = _read_json(home / INSTALLS_FILE, {}).get(kind, [])
    return [r for r in found if isinstance(r, dict)] if isinstance(found, list) else []


def _key(record: Mapping[str, Any]) -> tuple[str, tuple[str, ...], str]:
    return (str(record.get("file")), tuple(record.get("scope", ())), str(record.get("server")))


def _save_records(
    home: Path, *, add: Sequence[dict[str, Any]] = (), drop: Sequence[dict[str, Any]] = (),
    kind: str = "servers",
) -> None:
    """Replace or add the records ``add`` and remove ``drop`` (same file, scope and server)."""
    data = _read_json(home / INSTALLS_FILE, {})
    keys = {_key(r) for r in (*add, *drop)}
    kept = [r for r in _records(home, kind) if _key(r) not in keys]
    data.update({"version": 1, kind: [*kept, *add]})
    _write_json(home / INSTALLS_FILE, data)


# ------------------------------------------------------------------------------ diffs


_HUNK = re.compile(r"@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@")
_CONTEXT = 2


def _diff(old: str, new: str, shown: str, mask: Iterable[str]) -> list[str]:
    """A unified diff (one line per element, no newlines) with every secret shown as ``…``.

    Lines the two texts share at the start and the end are left out of the comparison (a
    config can be megabytes, the change a few lines); hunk headers count from the real start.
    """
    import difflib

    if old == new:
        return []
    hide = sorted({m for m in mask if m}, key=len, reverse=True)
    forms = [form for value in hide for form in dict.fromkeys((value, json.dumps(value)[1:-1]))]

    def masked(line: str) -> str:
        for form in forms:
            line = line.replace(form, "…")
        return line

    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    skip = max(0, head - _CONTEXT)
    keep = max(0, tail - _CONTEXT)

    def shifted(match: re.Match[str]) -> str:
        return (f"@@ -{int(match[1]) + skip}{match[2] or ''} "
                f"+{int(match[3]) + skip}{match[4] or ''} @@")

    lines = []
    for raw in difflib.unified_diff(a[skip:len(a) - keep], b[skip:len(b) - keep],
                                    fromfile=shown, tofile=shown, n=_CONTEXT):
        line = _HUNK.sub(shifted, raw, count=1) if raw.startswith("@@") else raw
        if line.endswith("\n"):
            lines.append(masked(line.rstrip("\r\n")))
        else:
            lines += [masked(line), "\\ No newline at end of file"]
    return lines


# ------------------------------------------------------------------------------ uninstall


def uninstall(
    configs: Sequence[ConfigFile],
    *,
    clients: Iterable[str],
    home: Path,
    user_home: Path,
    keeper: SecretKeeper | None,
    write: bool,
    clock: Callable[[], datetime] | None = None,
) -> list[FileReport]:
    """Put back what ``install`` changed in the files it recorded for ``clients`` (wherever
    they are) and in ``configs``; with ``write``, back each file up, rewrite it atomically,
    drop the records and forget the tokens that went back into the file.
    """
    now = (clock or _utc_now)()
    wanted = set(clients)
    records = [r for r in _records(home) if r.get("client") in wanted]
    files: dict[str, ConfigFile] = {}
    for config in configs:
        files.setdefault(os.path.realpath(config.path), config)
    for record in records:
        real = str(record.get("file"))
        if real not in files:
            scopes = tuple(tuple(r.get("scope", ())) for r in records if r.get("file") == real)
            files[real] = ConfigFile(str(record.get("client")), Path(real),
                                     "toml" if record.get("format") == "toml" else "json",
                                     tuple(dict.fromkeys(scopes)))
    reports = []
    for real, config in files.items():
        report = FileReport(config, _shown(config.path, user_home))
        reports.append(report)
        mine = [r for r in records if r.get("file") == real]
        try:
            _uninstall_file(config, mine, report=report, home=home, keeper=keeper, write=write,
                            now=now)
        except Error as exc:
            report.error = exc.diagnostics()
    return reports


def _uninstall_file(
    config: ConfigFile,
    records: Sequence[dict[str, Any]],
    *,
    report: FileReport,
    home: Path,
    keeper: SecretKeeper | None,
    write: bool,
    now: datetime,
) -> None:
    if not config.path.is_file():
        raise ConfigError(f"{report.shown} is gone; its install record is kept")
    raw = _read_config(config.path)
    text = _decode(config.path, raw)
    doc = _checked_parse(config, text)
    recorded = {(tuple(r.get("scope", ())), r.get("server")) for r in records}
    entries = doc.entries(config.scopes)
    report.empty = not entries and not records
    for entry in entries:
        data = entry.data if isinstance(entry.data, dict) else {}
        command, args = data.get("command"), data.get("args", [])
        if ((entry.scope, entry.name) not in recorded and isinstance(command, str)
                and isinstance(args, list) and _is_wrapped(command, args, "trackwrap")):
            report.outcomes.append(Outcome(
                _scope_label(doc.fmt, entry.scope), entry.name, "keep",
                "wrapped, but not by `trackwrap install` (no record of the original): "
                "left as it is"))
    mask = _secret_values(doc, config.scopes)
    restored: list[dict[str, Any]] = []
    for record in reversed(records):
        outcome, new_doc, values = _restore(doc, config, record, keeper)
        report.outcomes.append(outcome)
        if new_doc is None:
            continue
        mask |= set(values.values())
        doc = new_doc
        restored.append(record)
    report.changed = doc.text != text
    report.diff = _diff(text, doc.text, report.shown, mask | _secret_values(doc, config.scopes))
    if not write or not restored:
        return
    if report.changed:
        report.backup = _commit(config.path, raw, text, doc.text, now)
        report.written = True
    _save_records(home, drop=restored)
    still = {s.get("name") for r in _records(home) for s in r.get("secrets", [])}
    for record in restored:
        for moved in record.get("secrets", []):
            name = str(moved.get("name"))
            if name in still or keeper is None:
                continue
            with contextlib.suppress(Error):
                keeper.delete(name)
            forget_secret(home, name)


def _restore(
    doc: _Doc, config: ConfigFile, record: Mapping[str, Any], keeper: SecretKeeper | None
) -> tuple[Outcome, _Doc | None, dict[str, str]]:
    """Put one server back: the outcome, the new document (None: left as it is), the tokens."""
    scope = tuple(str(s) for s in record.get("scope", ()))
    server = str(record.get("server"))
    label = _scope_label(doc.fmt, scope)

    def keep(detail: str) -> tuple[Outcome, _Doc | None, dict[str, str]]:
        return Outcome(label, server, "keep", detail), None, {}

    values, missing = _tokens_back(record, keeper)
    if missing:
        return keep(missing)
    try:
        command = doc.span((*scope, server, "command"))
    except (KeyError, _ParseError):
        return keep("left as it is: it was changed since install (no command any more)")
    region = record.get("region", {})
    start = command.start - int(region.get("anchor", 0))
    length = int(region.get("length", -1))
    current = doc.text[start:start + length] if start >= 0 else ""
    new_text: str | None = None
    if hashlib.sha256(current.encode("utf-8")).hexdigest() == region.get("sha256"):
        new_text = (doc.text[:start] + _unsplice(current, region, values)
                    + doc.text[start + length:])
    elif isinstance(doc, _JsonDoc):
        new_text = _restore_by_value(doc, scope, server, record, values)
    if new_text is None:
        return keep("left as it is: it was changed since install")
    new_doc = _restored_doc(config, doc, new_text, path=(*scope, server), record=record,
                            values=values)
    if new_doc is None:
        return keep("left as it is: putting it back would change more than it should")
    notes = tuple(f"{m.get('key')} back from the OS keyring" for m in record.get("secrets", []))
    return Outcome(label, server, "restore", "unwrapped", notes), new_doc, values


def _tokens_back(
    record: Mapping[str, Any], keeper: SecretKeeper | None
) -> tuple[dict[str, str], str | None]:
    """The moved tokens of a record by secret name, or why they cannot all be read back."""
    values: dict[str, str] = {}
    for moved in record.get("secrets", []):
        name, key = str(moved.get("name")), str(moved.get("key"))
        if keeper is None:
            return values, f"left wrapped: no OS keyring backend to read {key} back from"
        try:
            value = keeper.get(name)
        except Error as exc:
            return values, f"left wrapped: cannot read {key} from the keyring ({exc})"
        if value is None:
            return values, (f"left wrapped: {key} is not in the OS keyring any more, so it "
                            "cannot be put back")
        values[name] = value
    return values, None


def _unsplice(current: str, region: Mapping[str, Any], values: Mapping[str, str]) -> str:
    """The recorded region with every splice's original text back, tokens included."""
    out = current
    for splice in sorted(region.get("splices", []), key=lambda s: int(s["at"]), reverse=True):
        at, written = int(splice["at"]), str(splice["written"])
        if out[at:at + len(written)] != written:  # pragma: no cover - the hash matched
            raise ConfigError("an install record does not match its own hash")
        out = out[:at] + _joined(splice["original"], values) + out[at + len(written):]
    return out


def _joined(pieces: Sequence[Piece], values: Mapping[str, str]) -> str:
    return "".join(p if isinstance(p, str) else values[p["secret"]] for p in pieces)


def _restore_by_value(
    doc: _JsonDoc, scope: tuple[str, ...], server: str, record: Mapping[str, Any],
    values: Mapping[str, str],
) -> str | None:
    """Unwrap a JSON server whose file its client has re-formatted: its values are still what
    install wrote, so put the originals back by value."""
    base = (*scope, server)
    data = _get(doc.data(), base)
    if not isinstance(data, dict) or data.get("command") != record.get("wrote_command") \
            or data.get("args") != record.get("wrote_args"):
        return None
    moved = [(str(m.get("key")), values[str(m.get("name"))]) for m in record.get("secrets", [])]
    env = data.get("env")
    if moved and (not isinstance(env, dict) or any(key in env for key, _v in moved)):
        return None
    originals = {s["field"]: _joined(s["original"], values)
                 for s in record.get("region", {}).get("splices", []) if s["field"] != "env"}
    node = doc.node(base)
    edits: list[tuple[int, int, str]] = []
    command = doc.node((*base, "command"))
    edits.append((command.start, command.end, originals.get("command")
                  or json.dumps(record.get("command"), ensure_ascii=False)))
    args = doc.node((*base, "args"))
    if record.get("args") is None:
        members = [(m.key_start, m.value.end, m.key == "args") for m in node.members]
        edits += [(a, b, "") for a, b in _cut_members(node.start, node.end, members)]
    else:
        edits.append((args.start, args.end, originals.get("args")
                      or json.dumps(record.get("args"), ensure_ascii=False)))
    if moved:
        env_node = doc.node((*base, "env"))
        added = ", ".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
                          for k, v in moved)
        if env_node.members:
            edits.append((env_node.members[-1].value.end, env_node.members[-1].value.end,
                          f", {added}"))
        else:
            edits.append((env_node.start, env_node.end, "{" + added + "}"))
    text = doc.text
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _restored_doc(
    config: ConfigFile, doc: _Doc, new_text: str, *, path: tuple[str, ...],
    record: Mapping[str, Any], values: Mapping[str, str],
) -> _Doc | None:
    """``new_text`` parsed, if it is ``doc`` with exactly this server's original values back
    (mappings compare without order: a restore by value may add env keys at the end)."""
    try:
        new_doc = _parse(config.format, new_text, config.scopes)
    except _ParseError:
        return None
    moved = {str(m.get("key")): values[str(m.get("name"))] for m in record.get("secrets", [])}

    def unwrapped(entry: dict[str, Any]) -> None:
        entry["command"] = record.get("command")
        if record.get("args") is None:
            entry.pop("args", None)
        else:
            entry["args"] = record.get("args")
        if moved:
            entry["env"] = {**entry.get("env", {}), **moved}

    expected = _with_entry(doc.data(), path, unwrapped)
    return new_doc if expected is not None and new_doc.data() == expected else None


# ------------------------------------------------------------------------------ agent hooks


HOOK_CLIENTS = ("claude-code", "codex")
"""The clients whose built-in tools ``trackwrap hook`` governs through a ``PreToolUse`` hook."""

_OUR_HOOK = re.compile(r"(?:^|[/\\\\'\"])trackwrap(?:\.exe)?['\"]? hook ")


def _hook_target(
    client: str, *, home: Path, environ: Mapping[str, str], trackwrap: str
) -> tuple[ConfigFile, Path, dict[str, Any]] | None:
    """``(config, directory that shows the client is used here, entry to merge)``."""
    import shlex

    from trackwrap.cli._hook import codex_hooks_entry, hook_settings_entry

    if client == "claude-code":
        entry, base = hook_settings_entry(), home / ".claude"
        path = base / "settings.json"
    elif client == "codex":
        entry = codex_hooks_entry()
        base = Path(environ["CODEX_HOME"]) if environ.get("CODEX_HOME") else home / ".codex"
        path = base / "hooks.json"
    else:
        return None
    if trackwrap != "trackwrap":
        for group in entry["hooks"]["PreToolUse"]:
            for hook in group["hooks"]:
                hook["command"] = shlex.quote(trackwrap) + hook["command"][len("trackwrap"):]
    return ConfigFile(client, path, "json", ()), base, entry


def _our_hooks(data: Any) -> list[str]:
    """The commands of trackwrap's own ``PreToolUse`` hooks in a settings document."""
    groups = _get(data, ("hooks", "PreToolUse"))
    found = []
    for group in groups if isinstance(groups, list) else []:
        hooks = group.get("hooks") if isinstance(group, dict) else None
        for hook in hooks if isinstance(hooks, list) else []:
            command = hook.get("command") if isinstance(hook, dict) else None
            if isinstance(command, str) and _OUR_HOOK.search(command):
                found.append(command)
    return found


def _render_at(value: Any, indent: str, compact: bool) -> str:
    """``value`` as JSON, continuation lines indented by ``indent`` (one line if compact)."""
    if compact:
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, indent=2).replace("\n", "\n" + indent)


def _insert_into(text: str, node: _JNode, key: str | None, value: Any) -> tuple[int, str]:
    """Where and what to insert to add ``key: value`` to an object (``key`` None: append
    ``value`` to an array), in the style of its other members."""
    children = [(m.key_start, m.value.end) for m in node.members] if key is not None \
        else [(i.start, i.end) for i in node.items]
    head = f"{json.dumps(key)}: " if key is not None else ""
    if not children:
        return node.start + 1, head + _render_at(value, "", True)
    start, end = children[-1]
    line_start = text.rfind("\n", 0, start) + 1
    indent = text[line_start:start]
    if indent.strip():  # members on one line: stay on it
        return end, ", " + head + _render_at(value, "", True)
    newline = "\r\n" if text[max(0, line_start - 2):line_start] == "\r\n" else "\n"
    return end, f",{newline}{indent}{head}{_render_at(value, indent, False)}"


def install_hooks(
    clients: Iterable[str],
    *,
    home: Path,
    user_home: Path,
    environ: Mapping[str, str],
    write: bool,
    trackwrap: str = "trackwrap",
    clock: Callable[[], datetime] | None = None,
) -> list[FileReport]:
    """Add trackwrap's ``PreToolUse`` hook to Claude Code's ``~/.claude/settings.json`` and
    Codex's ``~/.codex/hooks.json`` (those of ``clients`` used on this machine), by splicing
    one entry in; with ``write``, back up, write atomically and record it."""
    now = (clock or _utc_now)()
    reports = []
    for client in clients:
        target = _hook_target(client, home=user_home, environ=environ, trackwrap=trackwrap)
        if target is None:
            continue
        config, base, entry = target
        report = FileReport(config, _shown(config.path, user_home))
        reports.append(report)
        try:
            _install_hook(config, base, entry, report=report, home=home, write=write, now=now)
        except Error as exc:
            report.error = exc.diagnostics()
    return reports


def _install_hook(
    config: ConfigFile, base: Path, entry: dict[str, Any], *, report: FileReport, home: Path,
    write: bool, now: datetime,
) -> None:
    command = entry["hooks"]["PreToolUse"][0]["hooks"][0]["command"]

    def outcome(status: Literal["wrap", "already", "skip"], detail: str) -> None:
        report.outcomes.append(Outcome("hooks", "PreToolUse", status, detail))

    if not base.is_dir() and not (config.client == "claude-code"
                                  and (base.parent / ".claude.json").is_file()):
        outcome("skip", f"no hook added: {CLIENTS[config.client]} is not set up here "
                        f"({_shown(base, base.parent)} does not exist)")
        return
    raw = _read_config(config.path) if config.path.exists() else None
    text = _decode(config.path, raw) if raw is not None else ""
    inserted: list[str] = []
    written = ""
    if raw is None:
        new_text = json.dumps(entry, indent=2) + "\n"
    else:
        doc = _JsonDoc(text)
        if doc.root.kind != "object":
            raise ConfigError(f"{config.path.name} is not a JSON object; left as it is")
        if _our_hooks(doc.data()):
            outcome("already", "trackwrap's hook is already there")
            return
        inserted, (at, written) = _hook_insertion(doc, entry)
        new_text = text[:at] + written + text[at:]
        expected = copy.deepcopy(doc.data())
        _merge_hook(expected, entry)
        if _JsonDoc(new_text).data() != expected:  # pragma: no cover - a bug, never a write
            raise ConfigError(f"adding the hook to {config.path.name} would change more than "
                              "the hook; left as it is")
    outcome("wrap", f"added `{command}`: {CLIENTS[config.client]} asks trackwrap before each "
                    "built-in tool call")
    report.changed = True
    report.diff = _diff(text, new_text, report.shown, ())
    if not write:
        return
    record = {"file": os.path.realpath(config.path), "client": config.client,
              "scope": ["hooks", "PreToolUse"], "server": command, "at": now.isoformat(),
              "created": raw is None, "inserted": inserted, "written": written or new_text,
              "value": _hook_value(entry, inserted)}
    _save_records(home, add=[record], kind="hooks")
    if raw is None:
        config.path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(Path(os.path.realpath(config.path)), new_text.encode(), 0o644, owner=None)
    else:
        report.backup = _commit(config.path, raw, text, new_text, now)
    report.written = True


def _hook_insertion(doc: _JsonDoc, entry: dict[str, Any]) -> tuple[list[str], tuple[int, str]]:
    """What to splice in: the key path of the new node and ``(position, text)``."""
    hooks = doc.root.member("hooks")
    if hooks is None:
        return ["hooks"], _insert_into(doc.text, doc.root, "hooks", entry["hooks"])
    if hooks.value.kind != "object":
        raise ConfigError("its \"hooks\" is not an object; add the hook by hand")
    pre = hooks.value.member("PreToolUse")
    if pre is None:
        return (["hooks", "PreToolUse"],
                _insert_into(doc.text, hooks.value, "PreToolUse", entry["hooks"]["PreToolUse"]))
    if pre.value.kind != "array":
        raise ConfigError("its \"hooks.PreToolUse\" is not a list; add the hook by hand")
    return (["hooks", "PreToolUse", "+"],
            _insert_into(doc.text, pre.value, None, entry["hooks"]["PreToolUse"][0]))


def _hook_value(entry: dict[str, Any], inserted: Sequence[str]) -> Any:
    """The value install put at ``inserted`` (``+``: the item appended to the list)."""
    if not inserted:
        return entry
    if inserted[-1] == "+":
        return entry["hooks"]["PreToolUse"][0]
    return _get(entry, inserted)


def _merge_hook(data: dict[str, Any], entry: dict[str, Any]) -> None:
    hooks = data.setdefault("hooks", {})
    hooks.setdefault("PreToolUse", [])
    hooks["PreToolUse"] = [*hooks["PreToolUse"], *entry["hooks"]["PreToolUse"]]


def uninstall_hooks(
    clients: Iterable[str],
    *,
    home: Path,
    user_home: Path,
    write: bool,
    clock: Callable[[], datetime] | None = None,
) -> list[FileReport]:
    """Take out the hooks ``install_hooks`` added for ``clients``: the exact text it spliced in
    when that is still there, else the entry it added, found by value."""
    now = (clock or _utc_now)()
    wanted = set(clients)
    reports = []
    for record in [r for r in _records(home, "hooks") if r.get("client") in wanted]:
        path = Path(str(record.get("file")))
        config = ConfigFile(str(record.get("client")), path, "json", ())
        report = FileReport(config, _shown(path, user_home))
        reports.append(report)
        try:
            _uninstall_hook(config, record, report=report, home=home, write=write, now=now)
        except Error as exc:
            report.error = exc.diagnostics()
    return reports


def _uninstall_hook(
    config: ConfigFile, record: Mapping[str, Any], *, report: FileReport, home: Path,
    write: bool, now: datetime,
) -> None:
    def outcome(status: Literal["restore", "keep"], detail: str) -> None:
        report.outcomes.append(Outcome("hooks", "PreToolUse", status, detail))

    if not config.path.is_file():
        outcome("restore", "the file is gone; nothing to take out")
        if write:
            _save_records(home, drop=[dict(record)], kind="hooks")
        return
    raw = _read_config(config.path)
    text = _decode(config.path, raw)
    written = str(record.get("written"))
    new_text: str | None
    if record.get("created"):
        new_text = None if text == written else _cut_hook(_JsonDoc(text), record)
    else:
        new_text = _cut_hook(_JsonDoc(text), record)
    if new_text is not None and new_text == text:
        outcome("keep", "trackwrap's hook was changed or removed since install: left as it is")
        return
    outcome("restore", f"removed `{record.get('server')}`")
    report.changed = True
    report.diff = _diff(text, new_text or "", report.shown, ())
    if not write:
        return
    if new_text is None:  # the file was trackwrap's own and is unchanged: remove it
        report.backup = _backup(Path(os.path.realpath(config.path)), raw, 0o644, now)
        config.path.unlink()
    else:
        report.backup = _commit(config.path, raw, text, new_text, now)
    report.written = True
    _save_records(home, drop=[dict(record)], kind="hooks")


def _cut_hook(doc: _JsonDoc, record: Mapping[str, Any]) -> str:
    """``doc`` without the node install added (unchanged text if it is not there as added)."""
    inserted = [str(k) for k in record.get("inserted", [])]
    value, written = record.get("value"), str(record.get("written"))
    text = doc.text
    parent_path, last = inserted[:-1], (inserted[-1] if inserted else "")
    try:
        parent = doc.node(parent_path)
    except KeyError:
        return text
    if last == "+":
        children = [(i.start, i.end, i.python() == value) for i in parent.items]
        ends = [i.end for i in parent.items]
    else:
        children = [(m.key_start, m.value.end, m.key == last and m.value.python() == value)
                    for m in parent.members]
        ends = [m.value.end for m in parent.members]
    hits = [i for i, child in enumerate(children) if child[2]]
    if not hits:
        return text
    index = hits[-1]
    start = ends[index - 1] if index else parent.start + 1
    if text[start:children[index][1]] == written:  # exactly as spliced in
        return text[:start] + text[children[index][1]:]
    only = [(s, e, i == index) for i, (s, e, _hit) in enumerate(children)]
    for cut_start, cut_end in sorted(_cut_members(parent.start, parent.end, only), reverse=True):
        text = text[:cut_start] + text[cut_end:]
    return text
