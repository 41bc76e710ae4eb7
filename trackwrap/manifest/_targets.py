"""What a manifest entry looks at in an action: command heads, git subcommands, outside paths.

Command heads (for forbidden ``shell.*`` entries, which must match generously):

- every argv-form command of the action, split into segments at operator tokens
  (``|``, ``||``, ``&&``, ``;``, ``&``, ``(``, ``)``);
- every raw shell string, tokenized like a shell (quotes honoured, operators split off) and cut
  into the same segments; a string that will not tokenize is cut at every metacharacter;
- in each segment, leading ``NAME=value`` assignments are skipped, and each wrapper command
  (``env``, ``sudo``, ``nohup``, ``time``, ``nice``, ``timeout``, ``xargs``, ``command``,
  ``exec``, …) yields a head for itself *and* for what it runs;
- ``sh|bash|zsh|dash|ksh -c '<text>'`` contributes the heads of ``<text>`` as well;
- the first word of a head is compared by basename (``/usr/bin/curl`` is ``curl``).

Raw shell strings that carry metacharacters also expose every word (``words_of_raw``): a
forbidden prefix may match at any word of such a string.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass

from trackwrap.inspectors._paths import _inside, _malformed, _parts, _resolve
from trackwrap.policy import Action, Context, split_plain_command

__all__ = ["GitCall", "command_heads", "git_calls", "outside_paths", "prefix_at", "words_of_raw"]

_OPERATOR = re.compile(r"[|&;()!{}\n]+\Z")
_META_SPLIT = re.compile(r"[|;&$`<>(){}\n\r]+")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_WRAPPERS = frozenset(
    {
        "env", "sudo", "doas", "nohup", "time", "nice", "ionice", "command", "exec", "xargs",
        "timeout", "stdbuf", "setsid", "chroot", "unbuffer", "strace", "watch", "caffeinate",
    }
)  # fmt: skip
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "ash", "fish", "mksh"})
_MAX_DEPTH = 4
_GIT_OPTIONS_WITH_VALUE = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace"})


def _base(word: str) -> str:
    return posixpath.basename(word) or word


def prefix_at(words: tuple[str, ...], index: int, prefix: tuple[str, ...]) -> bool:
    """Whether ``prefix`` starts at ``words[index]`` (the first word compared by basename)."""
    if index + len(prefix) > len(words):
        return False
    first = words[index]
    if first != prefix[0] and _base(first) != prefix[0]:
        return False
    return words[index + 1 : index + len(prefix)] == prefix[1:]


def _tokenize(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:
        return [word for part in _META_SPLIT.split(text) for word in part.split() if word]


def _segments(words: list[str] | tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    segment: list[str] = []
    for word in words:
        if _OPERATOR.match(word):
            if segment:
                yield tuple(segment)
            segment = []
        else:
            segment.append(word)
    if segment:
        yield tuple(segment)


def _heads_of_segment(segment: tuple[str, ...], depth: int) -> Iterator[tuple[str, ...]]:
    index = 0
    while index < len(segment) and _ASSIGNMENT.match(segment[index]):
        index += 1
    while index < len(segment):
        head = segment[index:]
        yield head
        name = _base(head[0])
        if name in _SHELLS:
            yield from _shell_c(head, depth)
        if name not in _WRAPPERS:
            return
        index += 1
        # skip the wrapper's options, assignments (env) and a duration (timeout)
        while index < len(segment) and (
            segment[index].startswith("-")
            or _ASSIGNMENT.match(segment[index])
            or (name == "timeout" and segment[index][:1].isdigit())
        ):
            index += 1


def _shell_c(argv: tuple[str, ...], depth: int) -> Iterator[tuple[str, ...]]:
    for index, word in enumerate(argv[1:-1], start=1):
        if word.startswith("-") and not word.startswith("--") and "c" in word[1:]:
            yield from _heads_of_text(argv[index + 1], depth + 1)
            return


def _heads_of_text(text: str, depth: int) -> Iterator[tuple[str, ...]]:
    if depth > _MAX_DEPTH:
        return
    for segment in _segments(_tokenize(text)):
        yield from _heads_of_segment(segment, depth)


def command_heads(action: Action) -> tuple[tuple[str, ...], ...]:
    """Every command head of the action (see the module docstring)."""
    heads: list[tuple[str, ...]] = []
    for argv in action.commands:
        for segment in _segments(argv):
            heads.extend(_heads_of_segment(segment, 0))
    for text in action.command_text:
        if split_plain_command(text) is None:
            heads.extend(_heads_of_text(text, 0))
    return tuple(heads)


def words_of_raw(action: Action) -> tuple[tuple[str, ...], ...]:
    """The words of each raw shell string that is not one plain command."""
    return tuple(
        tuple(_tokenize(text)) for text in action.command_text if split_plain_command(text) is None
    )


@dataclass(frozen=True, slots=True)
class GitCall:
    """One ``git <subcommand> …`` found among the command heads."""

    subcommand: str
    args: tuple[str, ...]


def git_calls(action: Action) -> tuple[GitCall, ...]:
    """``git`` invocations among the command heads, global options skipped."""
    calls: list[GitCall] = []
    for head in command_heads(action):
        if _base(head[0]) != "git":
            continue
        index = 1
        while index < len(head) and head[index].startswith("-"):
            index += 2 if head[index] in _GIT_OPTIONS_WITH_VALUE else 1
        if index < len(head):
            calls.append(GitCall(subcommand=head[index], args=head[index + 1 :]))
    return tuple(calls)


def outside_paths(action: Action, context: Context) -> tuple[str, ...]:
    """Path arguments that do not stay inside ``context.workspace``, resolved like the path
    inspector does (home, base, ``..``, symlinks through ``context.fs``; malformed paths —
    control characters, UNC, drive letters, look-alikes — count as outside)."""
    if not action.paths:
        return ()
    workspace = _resolve(context.workspace, base=context.cwd, home=context.home)
    workspace_parts = _parts(workspace)
    workspace_real = _parts(_resolve(context.fs.realpath(workspace), base="/", home="/"))
    outside: list[str] = []
    for arg in action.paths:
        if _malformed(arg.value) is not None or (
            arg.base is not None and _malformed(arg.base) is not None
        ):
            outside.append(arg.value)
            continue
        base = context.cwd
        if arg.base is not None:
            base = _resolve(arg.base, base=context.cwd, home=context.home)
        lexical = _resolve(arg.value, base=base, home=context.home)
        real = _resolve(context.fs.realpath(lexical), base="/", home="/")
        lexical_parts = _parts(lexical)
        inside = _inside(_parts(real), workspace_real) and (
            _inside(lexical_parts, workspace_real) or _inside(lexical_parts, workspace_parts)
        )
        if not inside:
            outside.append(lexical)
    return tuple(outside)
