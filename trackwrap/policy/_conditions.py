"""The ``when:`` conditions of a policy rule, compiled at load time."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from trackwrap.errors import PolicyError, ProfileError
from trackwrap.policy._action import Action
from trackwrap.policy._context import Context
from trackwrap.policy._finding import Finding
from trackwrap.policy._glob import GlobSet
from trackwrap.policy._normalize import split_plain_command
from trackwrap.policy._schema import as_mapping, as_str, as_str_list, check_keys

_DURATION = re.compile(r"[0-9]+(\.[0-9]+)?[smhd]?")

__all__ = [
    "PATH_SCOPE_RULE",
    "BranchCondition",
    "CommandCondition",
    "Condition",
    "DestinationCondition",
    "DestinationOutsideCondition",
    "GlobCondition",
    "NotBranchCondition",
    "NotTimeCondition",
    "PathNameCondition",
    "PathsInsideCondition",
    "TimeCondition",
]

#: The rule id of the path-scope inspector's findings (``paths: inside_workspace`` reads it).
PATH_SCOPE_RULE = "WORKSPACE-PATH-SCOPE"

_TOKEN_META = re.compile(r"[|;&$`<>(){}\n\r\x00]")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_BETWEEN = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]|24):([0-5][0-9])\Z")


class Condition(Protocol):
    """One ``when:`` entry; a rule matches when all of its conditions do."""

    def matches(self, action: Action, findings: Sequence[Finding], context: Context) -> bool:
        """Whether this condition holds for the call."""
        ...


@dataclass(frozen=True, slots=True)
class GlobCondition:
    """``kind``, ``server`` or ``tool``: the action's field matches one of the globs."""

    field: str
    globs: GlobSet

    def matches(self, action: Action, findings: Sequence[Finding], context: Context) -> bool:
        """Match the named field of the action."""
        del findings, context
        value = (
            action.kind
            if self.field == "kind"
            else (action.server if self.field == "server" else action.tool)
        )
        return self.globs.match(value)


@dataclass(frozen=True, slots=True)
class CommandCondition:
    """``command``: every command starts, token by token, with one of the allowed prefixes.

    Holds only when there is at least one command, no raw shell string carries a shell
    metacharacter (``| ; & $ ` < > ( ) { }``, newline) or fails to split, and no argv token
    carries one either.
    """

    prefixes: tuple[tuple[str, ...], ...]

    @classmethod
    def parse(cls, value: object, *, where: str) -> CommandCondition:
        """Validate a list of prefixes such as ``python -m pytest``."""
        prefixes = []
        for text in as_str_list(value, where=where):
            tokens = tuple(text.split())
            if not tokens or any(_TOKEN_META.search(token) for token in tokens):
                raise ProfileError(f"{where}: bad command prefix {text!r}")
            prefixes.append(tokens)
        return cls(prefixes=tuple(prefixes))

    def matches(self, action: Action, findings: Sequence[Finding], context: Context) -> bool:
        """Every command is an allowed, plain command."""
        del findings, context
        if not action.commands:
            return False
        if any(split_plain_command(text) is None for text in action.command_text):
            return False
        return all(self._allowed(argv) for argv in action.commands)

    def _allowed(self, argv: tuple[str, ...]) -> bool:
        if any(_TOKEN_META.search(token) for token in argv):
            return False
        argv = _unwrap(argv)
        return any(argv[: len(prefix)] == prefix for prefix in self.prefixes)


def _unwrap(argv: tuple[str, ...]) -> tuple[str, ...]:
    """Look through the transparent wrappers the shell inspector also allows: ``time CMD``,
    ``timeout [-s SIG] [-k D] DURATION CMD`` and ``nice [-n N] CMD``. Anything unusual about a
    wrapper (another option, a missing duration) leaves the argv as it is, so it does not match."""
    while argv:
        head, rest = argv[0], argv[1:]
        if head == "time":
            argv = rest
        elif head == "nice":
            has_level = rest[:1] == ("-n",) and len(rest) > 1 and rest[1].lstrip("-").isdigit()
            argv = rest[2:] if has_level else rest
        elif head == "timeout":
            while rest[:1] in (("-s",), ("-k",)) and len(rest) > 2:
                rest = rest[2:]
            if not rest or not _DURATION.fullmatch(rest[0]):
                return argv
            argv = rest[1:]
        else:
            return argv
    return argv


@dataclass(frozen=True, slots=True)
class BranchCondition:
    """``branch``: the action names at least one branch and every branch matches a glob."""

    globs: GlobSet

    def matches(self, action: Action, findings: Sequence[Finding], context: Context) -> bool:
        """All branches match."""
        del findings, context
        return bool(action.branches) and all(self.globs.match(b) for b in action.branches)


@dataclass(frozen=True, slots=True)
class NotBranchCondition:
    """``not_branch``: no branch the action names matches any of the globs."""

    globs: GlobSet

    def matches(self, action: Action, findings: Sequence[Finding], context: Context) -> bool:
        """No branch matches."""
        del findings, context
        return not any(self.globs.match(b) for b in action.branches)


@dataclass(frozen=True, slots=True)
class DestinationCondition:
    """``destination``: the call sends somewhere, and every destination matches a glob."""

    globs: GlobSet

    @classmethod
    def parse(cls, value: object, *, where: str) -> DestinationCondition:
        """Validate a glob or a list of globs (compiled lower-cased)."""
        return cls(globs=_lower_globs(value, where=where))

    def matches(self, action: Action, findings: Sequence[Finding], context: Context) -> bool:
        """All destinations match."""
        del findings, context
        return bool(action.destinations) and all(
            self.globs.match(d) for d in action.destinations
        )


@dataclass(frozen=True, slots=True)
class DestinationOutsideCondition:
    """``destination_outside``: at least one destination matches none of the globs.

    A call without destinations does not match: it goes nowhere, so not outside either.
    """

    globs: GlobSet

    @classmethod
    def parse(cls, value: object, *, where: str) -> DestinationOutsideCondition:
        """Validate a glob or a list of globs (compiled lower-cased)."""
        return cls(globs=_lower_globs(value, where=where))

    def matches(self, action: Action, findings: Sequence[Finding], context: Context) -> bool:
        """Some destination is outside the globs."""
        del findings, context
        return any(not self.globs.match(d) for d in action.destinations)


def _lower_globs(value: object, *, where: str) -> GlobSet:
    patterns = as_str_list(value, where=where, scalar_ok=True)
    return GlobSet.compile([pattern.lower() for pattern in patterns], where=where)


@dataclass(frozen=True, slots=True)
class PathNameCondition:
    """``path``: the call names at least one path, and every path's file name matches a glob
    (``.env``, ``*.pem``)."""

    globs: GlobSet

    def matches(self, action: Action, findings: Sequence[Finding], context: Context) -> bool:
        """Match the last component of every path argument."""
        del findings, context
        names = [p.value.rstrip("/").rsplit("/", 1)[-1] for p in action.paths]
        return bool(names) and all(self.globs.match(name) for name in names)


@dataclass(frozen=True, slots=True)
class PathsInsideCondition:
    """``paths: inside_workspace``: the path-scope inspector reported nothing for this call."""

    def matches(self, action: Action, findings: Sequence[Finding], context: Context) -> bool:
        """No ``WORKSPACE-PATH-SCOPE`` finding."""
        del action, context
        return not any(finding.rule == PATH_SCOPE_RULE for finding in findings)


@dataclass(frozen=True, slots=True)
class TimeCondition:
    """``time``: local time in ``tz`` falls on one of ``days`` and inside ``between``.

    ``between: "HH:MM-HH:MM"`` is start-inclusive, end-exclusive; a window whose end is before
    its start wraps midnight (``22:00-06:00``), and ``days`` then applies to the local day of the
    moment being checked.
    """

    days: frozenset[int]
    start: int | None
    end: int | None
    tz: tzinfo

    @classmethod
    def parse(cls, value: object, *, where: str) -> TimeCondition:
        """Validate ``{days, between, tz}``; ``tz`` is required, one of the others too."""
        spec = as_mapping(value, where=where)
        check_keys(spec, where=where, allowed=("days", "between", "tz"), required=("tz",))
        if "days" not in spec and "between" not in spec:
            raise ProfileError(f"{where}: give days, between or both")
        days = frozenset(range(7))
        if "days" in spec:
            names = as_str_list(spec["days"], where=f"{where}.days")
            bad = [name for name in names if name.lower() not in _DAYS]
            if bad:
                raise ProfileError(f"{where}.days: unknown day {bad[0]!r} (use mon … sun)")
            days = frozenset(_DAYS.index(name.lower()) for name in names)
        start = end = None
        if "between" in spec:
            text = as_str(spec["between"], where=f"{where}.between")
            found = _BETWEEN.match(text)
            if found is None:
                raise ProfileError(f"{where}.between: expected 'HH:MM-HH:MM', got {text!r}")
            start = int(found.group(1)) * 60 + int(found.group(2))
            end = int(found.group(3)) * 60 + int(found.group(4))
            if end > 24 * 60 or start == end:
                raise ProfileError(f"{where}.between: empty or invalid window {text!r}")
        tz_name = as_str(spec["tz"], where=f"{where}.tz")
        try:
            tz = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ProfileError(f"{where}.tz: unknown time zone {tz_name!r}") from exc
        return cls(days=days, start=start, end=end, tz=tz)

    def matches(self, action: Action, findings: Sequence[Finding], context: Context) -> bool:
        """Whether ``context.now`` is inside the window."""
        del action, findings
        if context.now.tzinfo is None or context.now.utcoffset() is None:
            raise PolicyError("context.now must be timezone-aware")
        local = context.now.astimezone(self.tz)
        if local.weekday() not in self.days:
            return False
        if self.start is None or self.end is None:
            return True
        minute = local.hour * 60 + local.minute
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end


@dataclass(frozen=True, slots=True)
class NotTimeCondition:
    """``not_time``: the negation of ``time`` (same grammar), e.g. outside business hours."""

    window: TimeCondition

    @classmethod
    def parse(cls, value: object, *, where: str) -> NotTimeCondition:
        """Validate ``{days, between, tz}`` as for ``time``."""
        return cls(window=TimeCondition.parse(value, where=where))

    def matches(self, action: Action, findings: Sequence[Finding], context: Context) -> bool:
        """Whether ``context.now`` is outside the window."""
        return not self.window.matches(action, findings, context)
