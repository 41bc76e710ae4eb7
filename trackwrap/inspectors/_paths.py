"""Path scope: every path argument must stay inside the workspace, resolved like the server would.

Algorithm, per :class:`~trackwrap.policy.PathArg`:

1. Reject NUL and control / format characters (zero-width, bidi), Windows forms on POSIX (UNC
   ``\\\\server\\share``, ``\\\\?\\``, drive paths ``C:\\x`` and ``C:foo``) and characters that
   NFKC-fold to ``. / \\ ~ :`` (fullwidth full stops and solidus).
2. Expand ``~`` and ``~/`` with the context's home (``~user`` stays literal, as the servers do),
   resolve a relative value against its ``base`` (itself resolved the same way) or the server's
   cwd, and normalize ``..`` lexically.
3. Deny process indirection: ``/proc/self``, ``/proc/thread-self``, ``/proc/<pid>/{root,cwd,fd,
   environ,…}`` and ``/dev/fd``, ``/dev/std*`` — resolving those here would answer for trackwrap,
   not for the server.
4. ``realpath`` through the caller's :class:`~trackwrap.policy.FileSystemView` (symlinks; a
   missing tail keeps its deepest existing parent). Both the real and the lexical path must be
   inside the real workspace (the lexical one may also be inside the workspace as spelled), by
   whole path components, never by string prefix (``/ws-evil`` is not inside ``/ws``).
5. Writes into protected paths inside the workspace (git hooks and config, agent and IDE config,
   trackwrap's own directory) and any access to a known credential store get their own finding.

``context.roots`` (the server's allowed dirs) are not a second scope: the workspace is the scope.
Hard links, bind mounts and races between check and use need an OS sandbox and are out of reach.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from trackwrap.policy import PATH_SCOPE_RULE, Action, Context, Finding, PathArg

__all__ = ["PathScopeInspector"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DRIVE = re.compile(r"[A-Za-z]:")
_PROC = re.compile(
    r"/proc/(?:self|thread-self)(?:/|\Z)"
    r"|/proc/[^/]+/(?:root|cwd|fd|fdinfo|environ|exe|mem|map_files|task)(?:/|\Z)"
    r"|/dev/(?:fd|stdin|stdout|stderr)(?:/|\Z)"
)
_CONFUSABLE_TARGETS = frozenset("./\\~:")

#: Paths under the workspace that a tool call may not write (ids for the detail text).
_PROTECTED: tuple[tuple[tuple[str, ...], bool, str], ...] = (
    ((".git", "hooks"), True, "git hooks run code"),
    ((".git", "config"), False, "git config can run code"),
    ((".trackwrap",), True, "trackwrap's own configuration"),
    ((".vscode", "settings.json"), False, "IDE settings"),
    ((".claude",), True, "agent configuration"),
    ((".cursor",), True, "agent configuration"),
    ((".mcp.json",), False, "MCP server configuration"),
)

#: Credential stores relative to home: (parts, whole subtree, label).
_CREDENTIALS: tuple[tuple[tuple[str, ...], bool], ...] = (
    ((".ssh",), True),
    ((".aws",), True),
    ((".config", "gcloud"), True),
    ((".docker", "config.json"), False),
    ((".npmrc",), False),
    ((".netrc",), False),
    ((".kube", "config"), False),
    ((".git-credentials",), False),
    ((".pypirc",), False),
    ((".gnupg",), True),
)


def _path_like(word: str) -> bool:
    """A command word that names a file: absolute, home-relative, or explicitly relative
    (``./x``, ``../x``). Bare words, globs, variables and URLs are left to the shell inspector."""
    if not word or "://" in word or word.startswith("$"):
        return False
    return word.startswith(("/", "~/", "./", "../")) or word in ("~", "..")


def _command_paths(action: Action) -> tuple[PathArg, ...]:
    """Path-like arguments of argv-form commands, as read paths relative to the command's
    working directory (the call's ``directory``-style path argument, else the server's cwd)."""
    if not action.commands:
        return ()
    base = next((p.value for p in action.paths if p.base is None), None)
    found: list[PathArg] = []
    for index, argv in enumerate(action.commands):
        for position, word in enumerate(argv[1:], start=1):
            value = word.split("=", 1)[1] if word.startswith("-") and "=" in word else word
            if _path_like(value):
                found.append(PathArg(name=f"commands[{index}][{position}]", value=value,
                                     write=False, base=base))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class _Scope:
    workspace: str
    workspace_parts: tuple[str, ...]
    workspace_real_parts: tuple[str, ...]
    homes: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class PathScopeInspector:
    """Reports every path argument that leaves the workspace or touches something protected."""

    name: str = "paths"

    def inspect(self, action: Action, context: Context) -> Sequence[Finding]:
        """One finding per offending path argument (``WORKSPACE-PATH-SCOPE``), including the
        path-like words of the call's commands (``pytest /elsewhere/test_x.py``,
        ``cat ~/.aws/credentials``, ``--config=../x.ini``)."""
        paths = (*action.paths, *_command_paths(action))
        if not paths:
            return ()
        workspace = _resolve(context.workspace, base=context.cwd, home=context.home)
        home = _resolve(context.home, base="/", home=context.home)
        scope = _Scope(
            workspace=workspace,
            workspace_parts=_parts(workspace),
            workspace_real_parts=_parts(
                _resolve(context.fs.realpath(workspace), base="/", home="/")
            ),
            homes=(_parts(home), _parts(_resolve(context.fs.realpath(home), base="/", home="/"))),
        )
        findings: list[Finding] = []
        for arg in paths:
            finding = self._check(arg, context, scope)
            if finding is not None:
                findings.append(finding)
        return tuple(findings)

    def _check(self, arg: PathArg, context: Context, scope: _Scope) -> Finding | None:
        bad = _malformed(arg.value)
        if bad is None and arg.base is not None:
            bad = _malformed(arg.base)
        if bad is not None:
            detail, attack = bad
            return self._finding(f"{detail} in {arg.name}: {arg.value!r}", attack=attack)
        base = context.cwd
        if arg.base is not None:
            base = _resolve(arg.base, base=context.cwd, home=context.home)
        lexical = _resolve(arg.value, base=base, home=context.home)
        if _PROC.match(lexical):
            return self._finding(
                f"process indirection: {arg.name} {lexical} resolves through /proc or /dev/fd",
                attack="T1083",
            )
        real = _resolve(context.fs.realpath(lexical), base="/", home="/")
        if _PROC.match(real):
            return self._finding(
                f"process indirection: {arg.name} {lexical} resolves to {real}", attack="T1083"
            )
        lexical_parts, real_parts = _parts(lexical), _parts(real)
        shown = lexical if real == lexical else f"{lexical} (resolves to {real})"
        store = _credential_store(lexical_parts, scope) or _credential_store(real_parts, scope)
        if store is not None:
            return self._finding(
                f"credential store: {shown} is {store} ({arg.name})",
                attack="T1552.001",
                owasp="ASI03",
            )
        inside = _inside(real_parts, scope.workspace_real_parts) and (
            _inside(lexical_parts, scope.workspace_real_parts)
            or _inside(lexical_parts, scope.workspace_parts)
        )
        if not inside:
            return self._finding(
                f"outside workspace: {shown} is not under {scope.workspace}", attack="T1083"
            )
        return self._protected_write(arg, lexical_parts, real_parts, scope)

    def _protected_write(
        self, arg: PathArg, lexical: tuple[str, ...], real: tuple[str, ...], scope: _Scope
    ) -> Finding | None:
        if not arg.write:
            return None
        relative = real[len(scope.workspace_real_parts) :]
        why = _protected(relative)
        if why is None and _inside(lexical, scope.workspace_parts):
            why = _protected(lexical[len(scope.workspace_parts) :])
        if why is None:
            return None
        return self._finding(
            f"protected path: write to {'/'.join(relative)} in the workspace ({why})",
            attack="T1546",
            owasp="ASI05",
        )

    def _finding(self, detail: str, *, attack: str, owasp: str = "ASI02") -> Finding:
        return Finding(
            inspector=self.name,
            rule=PATH_SCOPE_RULE,
            confidence=1.0,
            detail=detail,
            attack=attack,
            owasp=owasp,
        )


def _malformed(value: str) -> tuple[str, str] | None:
    """(detail, attack) when ``value`` is not a plain POSIX path string."""
    if _CONTROL.search(value):
        return "NUL or control character", "T1036"
    if value.startswith(("\\\\", "//?/", "//./")):
        return "UNC or device path", "T1187"
    if _DRIVE.match(value):
        return "Windows drive path", "T1083"
    if not value.isascii():
        for char in value:
            if char.isascii():
                continue
            if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
                return "invisible or format character", "T1036"
            folded = unicodedata.normalize("NFKC", char)
            if any(c in _CONFUSABLE_TARGETS for c in folded):
                return "look-alike path character", "T1036"
    return None


def _resolve(value: str, *, base: str, home: str) -> str:
    """Absolute, lexically normalized path of ``value`` as the upstream server reads it."""
    if value == "~" or value.startswith("~/"):
        value = home + value[1:]
    if not value.startswith("/"):
        value = posixpath.join(base, value) if base.startswith("/") else "/" + value
    normalized = posixpath.normpath(value)
    if normalized.startswith("//"):
        normalized = "/" + normalized.lstrip("/")
    return normalized


def _parts(path: str) -> tuple[str, ...]:
    """Components of a normalized absolute path (``/`` is ``()``)."""
    return tuple(part for part in path.split("/") if part)


def _inside(parts: tuple[str, ...], root: tuple[str, ...]) -> bool:
    """Containment by whole components (``PurePosixPath.is_relative_to`` on normalized paths,
    without its parsing cost): ``/ws-evil`` is not inside ``/ws``."""
    return parts[: len(root)] == root


def _credential_store(parts: tuple[str, ...], scope: _Scope) -> str | None:
    for home in scope.homes:
        if not _inside(parts, home):
            continue
        relative = parts[len(home) :]
        for store, subtree in _CREDENTIALS:
            if relative[: len(store)] == store and (subtree or len(relative) == len(store)):
                return ("inside ~/" if subtree else "~/") + "/".join(store)
    return None


def _protected(parts: tuple[str, ...]) -> str | None:
    for prefix, subtree, why in _PROTECTED:
        if parts[: len(prefix)] == prefix and (subtree or len(parts) == len(prefix)):
            return why
    return None
