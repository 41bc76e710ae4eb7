"""Small, strict globs for kinds, servers, tools, branches and rule ids.

``*`` matches any run of characters (separators included: ``git.*`` matches
``git.branch.create``, ``release/*`` matches ``release/1.2/hotfix``), ``?`` one character,
``[abc]`` / ``[!abc]`` / ``[a-z]`` a class. Everything else is literal. A pattern that is empty,
holds whitespace or control characters, or has an unclosed ``[`` is rejected at load time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from trackwrap.errors import ProfileError

__all__ = ["GlobSet"]

_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class GlobSet:
    """Several globs compiled into one anchored regular expression."""

    patterns: tuple[str, ...]
    regex: re.Pattern[str]

    @classmethod
    def compile(cls, patterns: Sequence[str], *, where: str) -> GlobSet:
        """Compile ``patterns`` or raise :class:`ProfileError` naming the bad one."""
        parts = [_translate(pattern, where=where) for pattern in patterns]
        try:
            regex = re.compile("(?:" + "|".join(parts) + r")\Z")
        except re.error as exc:
            raise ProfileError(f"{where}: bad glob in {list(patterns)!r}: {exc}") from exc
        return cls(patterns=tuple(patterns), regex=regex)

    def match(self, value: str) -> bool:
        """Whether ``value`` matches any of the globs."""
        return self.regex.match(value) is not None


def _translate(pattern: str, *, where: str) -> str:
    if not pattern or _FORBIDDEN.search(pattern):
        raise ProfileError(f"{where}: bad glob {pattern!r} (empty, whitespace or control char)")
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            end = pattern.find("]", index + 2)
            if end < 0:
                raise ProfileError(f"{where}: bad glob {pattern!r} (unclosed '[')")
            body = pattern[index + 1 : end]
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            escaped = "".join(re.escape(c) if c != "-" else "-" for c in body)
            out.append(("[^" if negate else "[") + escaped + "]")
            index = end
        elif char == "]":
            raise ProfileError(f"{where}: bad glob {pattern!r} (stray ']')")
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)
