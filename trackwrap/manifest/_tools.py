"""Tool entries of ``allowed_tools`` / ``forbidden_tools`` (grammar: the package docstring)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import assert_never

from trackwrap.errors import ProfileError
from trackwrap.manifest._targets import command_heads, outside_paths, prefix_at, words_of_raw
from trackwrap.policy import Action, Context
from trackwrap.policy._conditions import CommandCondition
from trackwrap.policy._glob import GlobSet

__all__ = ["ArgMode", "ToolEntry", "parse_tool_entries"]

_ENTRY = re.compile(r"(?P<kind>[a-z0-9_.*?!\[\]-]+)(?:\((?P<args>[^()]*)\))?\Z")
_SEPARATOR = re.compile(r"\s*[\u00b7,]\s*")


class ArgMode(StrEnum):
    """What the parenthesized arguments of an entry mean."""

    ANY = "any"  # bare ``kind`` or ``kind(*)``
    OUTSIDE = "outside_workspace"  # ``kind(~)``
    COMMANDS = "commands"  # ``shell.*(prefix|prefix …)``
    BRANCHES = "branches"  # ``git.*(glob|glob …)`` / ``github.*(…)``


@dataclass(frozen=True, slots=True)
class ToolEntry:
    """One compiled entry such as ``shell.exec(pytest|npm test)``."""

    text: str
    kind: GlobSet
    mode: ArgMode
    commands: CommandCondition | None = None
    branches: GlobSet | None = None

    def allows(self, action: Action, context: Context) -> bool:
        """As an ``allowed_tools`` entry: the kind matches and *every* target is covered
        (every command a plain, allowed prefix; every branch a matching one)."""
        if not self.kind.match(action.kind):
            return False
        match self.mode:
            case ArgMode.ANY:
                return True
            case ArgMode.OUTSIDE:
                return bool(outside_paths(action, context))
            case ArgMode.COMMANDS:
                assert self.commands is not None  # noqa: S101 - set by the parser
                return self.commands.matches(action, (), context)
            case ArgMode.BRANCHES:
                assert self.branches is not None  # noqa: S101 - set by the parser
                globs = self.branches
                return bool(action.branches) and all(globs.match(b) for b in action.branches)
            case _:  # pragma: no cover
                assert_never(self.mode)

    def forbids(self, action: Action, context: Context) -> bool:
        """As a ``forbidden_tools`` entry: the kind matches and *any* target is caught (any
        command head or raw-shell word starts with a prefix; any branch matches)."""
        if not self.kind.match(action.kind):
            return False
        match self.mode:
            case ArgMode.ANY:
                return True
            case ArgMode.OUTSIDE:
                return bool(outside_paths(action, context))
            case ArgMode.COMMANDS:
                assert self.commands is not None  # noqa: S101 - set by the parser
                return _any_command(action, self.commands.prefixes)
            case ArgMode.BRANCHES:
                assert self.branches is not None  # noqa: S101 - set by the parser
                return any(self.branches.match(b) for b in action.branches)
            case _:  # pragma: no cover
                assert_never(self.mode)


def _any_command(action: Action, prefixes: tuple[tuple[str, ...], ...]) -> bool:
    for head in command_heads(action):
        if any(prefix_at(head, 0, prefix) for prefix in prefixes):
            return True
    for words in words_of_raw(action):
        for index in range(len(words)):
            if any(prefix_at(words, index, prefix) for prefix in prefixes):
                return True
    return False


def _split(text: str) -> list[str]:
    """Split at ``·`` and ``,`` outside parentheses."""
    parts: list[str] = []
    depth = 0
    start = 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char in "\u00b7," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part.strip() for part in parts]


def parse_tool_entries(text: str, *, fail: Callable[[str], ProfileError]) -> list[ToolEntry]:
    """Compile one YAML string of entries (``git.read · git.commit``); ``fail(message)`` builds
    the error (with file and line) for a bad one."""
    entries: list[ToolEntry] = []
    for part in _split(text):
        if not part:
            raise fail(f"empty tool entry in {text!r}")
        found = _ENTRY.match(part)
        if found is None:
            raise fail(
                f"bad tool entry {part!r}: expected kind or kind(arg|arg…), e.g. "
                "shell.exec(pytest|npm test)"
            )
        kind_text = found.group("kind")
        try:
            kind = GlobSet.compile([kind_text], where="kind")
        except ProfileError as exc:
            raise fail(f"bad kind in tool entry {part!r}: {exc}") from exc
        args = found.group("args")
        entries.append(_entry(part, kind_text, kind, args, fail=fail))
    return entries


def _entry(
    text: str,
    kind_text: str,
    kind: GlobSet,
    args: str | None,
    *,
    fail: Callable[[str], ProfileError],
) -> ToolEntry:
    if args is None or args.strip() == "*":
        return ToolEntry(text=text, kind=kind, mode=ArgMode.ANY)
    if args.strip() == "~":
        return ToolEntry(text=text, kind=kind, mode=ArgMode.OUTSIDE)
    alternatives = [alternative.strip() for alternative in args.split("|")]
    if any(not alternative for alternative in alternatives):
        raise fail(f"empty argument in tool entry {text!r}")
    if any(alternative in ("*", "~") for alternative in alternatives):
        raise fail(f"(*) and (~) stand alone in tool entry {text!r}")
    if kind_text.startswith("shell."):
        try:
            commands = CommandCondition.parse(alternatives, where="command")
        except ProfileError as exc:
            raise fail(f"bad command prefix in tool entry {text!r}: {exc}") from exc
        return ToolEntry(text=text, kind=kind, mode=ArgMode.COMMANDS, commands=commands)
    if kind_text.startswith(("git.", "github.")):
        try:
            branches = GlobSet.compile(alternatives, where="branch")
        except ProfileError as exc:
            raise fail(f"bad branch glob in tool entry {text!r}: {exc}") from exc
        return ToolEntry(text=text, kind=kind, mode=ArgMode.BRANCHES, branches=branches)
    raise fail(
        f"unknown argument syntax in tool entry {text!r}: use (*), (~), command prefixes for "
        "shell.* kinds or branch globs for git.* / github.* kinds"
    )
