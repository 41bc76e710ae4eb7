"""Shell commands: parse with tree-sitter-bash, walk a strict node allowlist, then look for abuse.

Parsing (raw strings; tree-sitter is imported on first use, never on the relay's start path):

- Allowed nodes: ``program``, ``list``, ``pipeline``, ``redirected_statement``, ``command``,
  ``command_name``, ``word``, ``raw_string``, ``string`` holding only ``string_content``,
  ``concatenation``, ``number``, literal ``variable_assignment``, ``file_redirect`` with one
  literal target, ``comment`` and the operators ``&& || ; & | |&``.
- Anything else — ``$(…)``, backticks, ``<(…)``, ``$x``/``${…}``, ``$'…'``, arithmetic,
  subshells and ``{ …; }`` blocks, ``if``/``for``/functions, ``export``/``declare``, heredocs and
  here-strings, ``!``, ``[[ ]]`` — a parse error, an unquoted ``* ? [``, a brace expansion
  ``{a,b}``, ``~user``, a line continuation, a control character, more than 10,000 characters,
  more than 50 simple commands, more than 5,000 nodes or ``sh -c`` nested more than 3 deep is
  ``SHELL-TOO-COMPLEX`` (confidence 1.0). There is no fall-back to "allow" on any limit.
- Quotes are removed here (node text keeps them): ``c''url`` and ``\\curl`` are ``curl``.
- The walk still goes on through a too-complex command, leniently (unknown parts opaque,
  ``$HOME`` read as ``~``, ``$X`` as a literal ``X=…`` set earlier in the same text, ``$'…'``
  decoded), so that ``bash -c "$(curl …)"`` also reports what it is, not only that it is complex.

argv-form commands (``["ls", "|", "grep", "x"]``) are split at the operator tokens the shell
servers honour (``| || && ; &``) and at ``> >> < 2> &>`` redirections; an element carrying
``$(``, a backtick, ``${``, ``<(`` or ``>(`` is too complex (the server may hand it to a shell).
``sh|bash|zsh|… -c TEXT``, ``su -c``, ``flock -c``, ``env -S``, ``watch`` and ``eval`` with a
literal text have that text parsed and checked too.

Wrappers. ``timeout``, ``time`` and ``nice`` are transparent: the command they run is checked as
if it stood alone and they add no finding. Every other command runner (``env`` with a command,
``sudo``, ``doas``, ``su``, ``pkexec``, ``runuser``, ``xargs``, ``nohup``, ``stdbuf``, ``setsid``,
``ionice``, ``chroot``, ``flock``, ``watch``, ``strace``, ``ltrace``, ``unbuffer``, ``busybox``,
``command``, ``builtin``, ``exec``) is ``SHELL-EXEC-WRAPPER`` — the policy's command allowlist
would only see the wrapper — and the wrapped command is checked as well.

Rules (each finding carries its rule id, an ATT&CK technique and an OWASP Agentic id):

================================  ===================  =====  ===================================
rule                              ATT&CK               OWASP  what
================================  ===================  =====  ===================================
SHELL-TOO-COMPLEX                 T1027.010            ASI05  see above
SHELL-NO-PIPED-CURL               T1105 / T1059.004    ASI05  download piped into a shell or
                                                              interpreter, ``sh <(curl …)``,
                                                              ``bash -c "$(curl …)"``
SHELL-DECODE-EXEC                 T1140 / T1027        ASI05  base64/xxd/printf-escape/… decode
                                                              fed to a shell
SHELL-EVAL                        T1059.004            ASI05  ``eval``, ``exec CMD``, ``trap``,
                                                              ``source``/``.`` of stdin or of a
                                                              substitution, any other output
                                                              piped into a shell
SHELL-INTERPRETER-ONELINER        T1059.006/.007/.004  ASI05  ``python -c``, ``perl -e``,
                                                              ``node -e``, ``ruby -e``, awk
                                                              ``system(``/pipes, …
SHELL-EXEC-WRAPPER                T1202 / T1548.003    ASI05  wrappers above, ``find -exec``,
                                                              ``git -c core.*|alias.*``, ``ssh
                                                              -o ProxyCommand``, ``tar
                                                              --checkpoint-action``, ``rsync -e``
SHELL-TOOL-ABUSE                  T1202                ASI05  ``go … -exec/-toolexec``, ``make
                                                              SHELL=/--eval``, ``npm
                                                              --script-shell``, ``pytest -p X``,
                                                              ``pytest -o addopts=``, ``cargo
                                                              --config``
SHELL-ENV-INJECTION               T1574.006            ASI05  ``LD_*``, ``PATH``, ``BASH_ENV``,
                                                              ``NODE_OPTIONS``, ``PYTHONPATH``,
                                                              ``GIT_SSH_COMMAND``, …
SHELL-DOTFILE-WRITE               T1546.004 / T1098.004 ASI05 redirect, ``tee``, ``dd of=``,
                                  / T1053.003                 ``cp``/``mv``/``install``/``ln``
                                                              into shell rc files, ``~/.ssh``,
                                                              ``/etc``, cron
SHELL-NET-EXFIL                   T1048                ASI02  ``/dev/tcp``, ``nc -e``, ``socat
                                                              exec:``, ``curl -T/-d @file/-F
                                                              x=@file``
SHELL-DESTRUCTIVE                 T1485 / T1222.002 /  ASI02  recursive ``rm``/``find -delete``
                                  T1529                       of anything not strictly inside
                                                              the workspace or /tmp, ``mkfs``,
                                                              block devices, ``chmod -R`` outside
                                                              the workspace, ``shutdown``
SHELL-CONFUSABLE                  T1036                ASI05  fullwidth, homoglyph, zero-width,
                                                              bidi, NBSP, control characters
================================  ===================  =====  ===================================

``pytest -p NAME`` is a finding (``-p no:NAME`` is not): it imports an arbitrary module at start,
a code path the test allowlist does not intend. Edited ``conftest.py``/``Makefile``/
``package.json`` are file writes, out of a command inspector's reach.
"""

from __future__ import annotations

import codecs
import functools
import posixpath
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trackwrap.errors import InspectorError
from trackwrap.inspectors._paths import _inside, _parts, _resolve
from trackwrap.policy import Action, Context, Finding, split_plain_command

if TYPE_CHECKING:
    from tree_sitter import Node, Parser

__all__ = ["ShellInspector", "command_argvs", "git_config_runs_code", "parse_simple_commands"]

MAX_CHARS = 10_000
MAX_COMMANDS = 50
MAX_NODES = 5_000
MAX_NESTING = 3
_OPAQUE = "\x00"

# ---------------------------------------------------------------------------------------------
# rule ids


@dataclass(frozen=True, slots=True)
class _Rule:
    id: str
    attack: str
    owasp: str


TOO_COMPLEX = _Rule("SHELL-TOO-COMPLEX", "T1027.010", "ASI05")
PIPED_CURL = _Rule("SHELL-NO-PIPED-CURL", "T1105", "ASI05")
DECODE_EXEC = _Rule("SHELL-DECODE-EXEC", "T1140", "ASI05")
EVAL = _Rule("SHELL-EVAL", "T1059.004", "ASI05")
ONELINER = _Rule("SHELL-INTERPRETER-ONELINER", "T1059.006", "ASI05")
EXEC_WRAPPER = _Rule("SHELL-EXEC-WRAPPER", "T1202", "ASI05")
TOOL_ABUSE = _Rule("SHELL-TOOL-ABUSE", "T1202", "ASI05")
ENV_INJECTION = _Rule("SHELL-ENV-INJECTION", "T1574.006", "ASI05")
DOTFILE_WRITE = _Rule("SHELL-DOTFILE-WRITE", "T1546.004", "ASI05")
NET_EXFIL = _Rule("SHELL-NET-EXFIL", "T1048", "ASI02")
DESTRUCTIVE = _Rule("SHELL-DESTRUCTIVE", "T1485", "ASI02")
CONFUSABLE = _Rule("SHELL-CONFUSABLE", "T1036", "ASI05")

# ---------------------------------------------------------------------------------------------
# vocabularies

_SHELLS = frozenset(
    {"sh", "bash", "zsh", "dash", "ksh", "ash", "mksh", "fish", "csh", "tcsh", "yash", "rbash"}
)
_PYTHON = re.compile(r"(?:python|pypy)(?:\d+(?:\.\d+)*)?\Z")
_DOWNLOADERS = frozenset(
    {
        "curl",
        "wget",
        "wget2",
        "fetch",
        "aria2c",
        "http",
        "https",
        "xh",
        "xhs",
        "httpie",
        "lwp-request",
        "lwp-download",
        "GET",
        "POST",
        "lynx",
        "links",
        "w3m",
        "ftp",
        "tftp",
        "nc",
        "ncat",
        "netcat",
        "socat",
        "telnet",
    }
)
_DECOMPRESSORS = frozenset(
    {"zcat", "bzcat", "xzcat", "zstdcat", "lz4cat", "gunzip", "bunzip2", "unxz", "unzstd", "rev"}
)
_NETCATS = frozenset({"nc", "ncat", "netcat", "nc.traditional", "nc.openbsd"})
_STDIN_PATHS = frozenset({"-", "/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"})
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\+?=(.*)\Z", re.DOTALL)
_OPERATORS = frozenset({"&&", "||", ";", "&", "|", "|&", "\n"})
_ARGV_OPERATORS = frozenset({"&&", "||", ";", "&", "|", "|&"})
_ARGV_REDIRECTS = frozenset({">", ">>", "<", "1>", "2>", "1>>", "2>>", "&>", "&>>", ">|"})
_ARGV_SYNTAX = re.compile(r"\$\(|`|\$\{|<\(|>\(")
_WRITE_OPS = frozenset({">", ">>", ">|", "&>", "&>>", "<>", ">&"})
_ESCAPES = re.compile(r"\\(?:x[0-9A-Fa-f]|[0-7]{1,3}|u[0-9A-Fa-f]|U[0-9A-Fa-f])")
_AWK_EXEC = re.compile(r"\bsystem\s*\(|\|\s*&|\|\s*getline|\bprintf?\b[^;{}]*\|")
_SOCAT_EXEC = re.compile(r"(?:^|[!,])\s*(?:exec|system)\s*:", re.IGNORECASE)
_DURATION = re.compile(r"[0-9.]+[smhd]?\Z")
_BLOCK_DEVICE = re.compile(r"/dev/(?:sd|hd|vd|xvd|nvme|mmcblk|disk|md|dm-|mapper/|loop|sr)")
_HARMLESS_DEVICES = frozenset(
    {"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/zero", "/dev/fd/1", "/dev/fd/2"}
)

#: Variables that make the next program load or run something else.
_ENV_EXACT = frozenset(
    {
        "PATH",
        "BASH_ENV",
        "ENV",
        "NODE_OPTIONS",
        "NODE_PATH",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "PYTHONBREAKPOINT",
        "PYTHONWARNINGS",
        "PYTHONUSERBASE",
        "PERL5OPT",
        "PERL5LIB",
        "PERLLIB",
        "RUBYOPT",
        "RUBYLIB",
        "GIT_SSH_COMMAND",
        "GIT_SSH",
        "GIT_EXEC_PATH",
        "GIT_PAGER",
        "GIT_EDITOR",
        "GIT_ASKPASS",
        "GIT_PROXY_COMMAND",
        "GIT_EXTERNAL_DIFF",
        "GIT_TEMPLATE_DIR",
        "SSH_ASKPASS",
        "PAGER",
        "EDITOR",
        "VISUAL",
        "PROMPT_COMMAND",
        "IFS",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "CDPATH",
        "RUSTC_WRAPPER",
        "RUSTC",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTC_WRAPPER",
        "GOFLAGS",
        "CC",
        "CXX",
        "LESSOPEN",
        "LESSCLOSE",
        "MANPAGER",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "MAKEFLAGS",
        "MAKEFILES",
        "PYTEST_ADDOPTS",
        "PYTEST_PLUGINS",
        "TAR_OPTIONS",
        "BROWSER",
        "SHELL",
        "HOME",
        "ZDOTDIR",
        "XDG_CONFIG_HOME",
    }
)
_ENV_PREFIX = ("LD_", "DYLD_", "GIT_CONFIG", "NPM_CONFIG_", "BASH_FUNC_")

#: Shell rc and login files (names relative to home) and other persistence targets.
_RC_NAMES = frozenset(
    {
        ".bashrc",
        ".bash_profile",
        ".bash_login",
        ".bash_logout",
        ".bash_aliases",
        ".profile",
        ".zshrc",
        ".zshenv",
        ".zprofile",
        ".zlogin",
        ".zlogout",
        ".kshrc",
        ".mkshrc",
        ".cshrc",
        ".tcshrc",
        ".login",
        ".logout",
        ".inputrc",
        ".xprofile",
        ".xinitrc",
        ".xsession",
        ".pam_environment",
        ".gitconfig",
        ".npmrc",
        ".curlrc",
        ".wgetrc",
        ".vimrc",
    }
)
_HOME_SUBTREES: tuple[tuple[tuple[str, ...], str], ...] = (
    ((".ssh",), "T1098.004"),
    ((".config", "fish"), "T1546.004"),
    ((".config", "git"), "T1546.004"),
    ((".config", "autostart"), "T1546.004"),
    ((".config", "systemd"), "T1546.004"),
    ((".config", "environment.d"), "T1546.004"),
    (("Library", "LaunchAgents"), "T1546.004"),
)
_SYSTEM_SUBTREES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("var", "spool", "cron"), "T1053.003"),
    (("etc", "cron.d"), "T1053.003"),
    (("etc", "crontab"), "T1053.003"),
    (("etc",), "T1546.004"),
    (("root",), "T1546.004"),
    (("usr", "lib", "systemd"), "T1546.004"),
    (("lib", "systemd"), "T1546.004"),
)
_SCRATCH: tuple[tuple[str, ...], ...] = (("tmp",), ("var", "tmp"))

_COMPLEX_NODES = {
    "command_substitution": "command substitution $(…) or `…`",
    "process_substitution": "process substitution <(…) or >(…)",
    "simple_expansion": "variable expansion $x",
    "expansion": "parameter expansion ${…}",
    "arithmetic_expansion": "arithmetic expansion $((…))",
    "ansi_c_string": "ANSI-C quoting $'…'",
    "translated_string": 'locale quoting $"…"',
    "subshell": "subshell ( … )",
    "compound_statement": "{ …; } block",
    "heredoc_redirect": "heredoc <<",
    "herestring_redirect": "here-string <<<",
    "function_definition": "function definition",
    "declaration_command": "declaration (export/declare/local/readonly)",
    "unset_command": "unset",
    "negated_command": "negation !",
    "test_command": "test [ … ] / [[ … ]]",
    "subscript": "array subscript",
    "array": "array value",
    "brace_expression": "brace expansion",
}


# ---------------------------------------------------------------------------------------------
# parsed form


@dataclass(frozen=True, slots=True)
class _Redirect:
    op: str
    target: str


@dataclass(frozen=True, slots=True)
class _Cmd:
    """One simple command. Opaque (non-literal) parts of words are ``\\x00``."""

    argv: tuple[str, ...]
    assignments: tuple[tuple[str, str], ...]
    redirects: tuple[_Redirect, ...]
    fed: tuple[_Cmd, ...]  # commands inside substitutions of its name, arguments, redirects
    stdin_text: str | None  # a literal here-string / heredoc body


@dataclass(frozen=True, slots=True)
class _Parse:
    commands: tuple[_Cmd, ...]  # every simple command, substitutions included, in order
    top: tuple[_Cmd, ...]  # commands outside substitutions
    pipelines: tuple[tuple[tuple[_Cmd, ...], ...], ...]
    complex: str | None


@functools.cache
def _parser() -> Parser:
    try:
        import tree_sitter
        import tree_sitter_bash
    except ImportError as exc:  # pragma: no cover - a broken install
        raise InspectorError(
            f"the shell inspector needs tree-sitter and tree-sitter-bash: {exc}"
        ) from exc
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bash.language()))


def _short(text: str, limit: int = 60) -> str:
    text = text.replace(_OPAQUE, "…")
    text = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _show(argv: Sequence[str], limit: int = 60) -> str:
    return _short(" ".join(argv), limit)


class _Walker:
    """Builds :class:`_Cmd` values from a tree, recording the first reason it is too complex."""

    __slots__ = ("commands", "complex", "nodes", "pipelines", "source", "top", "variables")

    def __init__(self, source: bytes) -> None:
        self.source = source
        self.complex: str | None = None
        self.nodes = 0
        self.commands: list[_Cmd] = []
        self.top: list[_Cmd] = []
        self.pipelines: list[tuple[tuple[_Cmd, ...], ...]] = []
        self.variables: dict[str, str] = {}

    def fail(self, reason: str, node: Node | None = None) -> None:
        if self.complex is None:
            where = f": {_short(_text(node), 40)!r}" if node is not None else ""
            self.complex = reason + where

    def over_budget(self) -> bool:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.fail(f"more than {MAX_NODES} syntax nodes")
            return True
        return False

    def statement(self, node: Node, *, top: bool, redirects: tuple[Node, ...] = ()) -> list[_Cmd]:  # noqa: PLR0911, PLR0912
        """The commands of one statement-level node (all of them, nested ones included)."""
        if self.over_budget():
            return []
        kind = node.type
        if kind in ("program", "list"):
            # tree-sitter-bash parses ``a && b > f`` as a redirected list; bash binds the
            # redirect to the last command, so that is where it goes.
            found: list[_Cmd] = []
            named = [c for c in node.children if c.is_named and c.type != "comment"]
            for child in node.children:
                if not child.is_named:
                    if child.type not in _OPERATORS:
                        self.fail(f"operator {child.type}", child)
                elif child.type != "comment":
                    extra = redirects if child == named[-1] else ()
                    found.extend(self.statement(child, top=top, redirects=extra))
            if redirects and not named:
                self.fail("redirect without a command", node)
            return found
        if kind == "pipeline":
            stages: list[tuple[_Cmd, ...]] = []
            named = [c for c in node.children if c.is_named]
            for child in node.children:
                if not child.is_named and child.type not in ("|", "|&"):
                    self.fail(f"operator {child.type}", child)
            for index, child in enumerate(named):
                extra = redirects if index == len(named) - 1 else ()
                stages.append(tuple(self.statement(child, top=top, redirects=extra)))
            self.pipelines.append(tuple(stages))
            return [cmd for stage in stages for cmd in stage]
        if kind == "redirected_statement":
            body = node.child_by_field_name("body")
            extra = tuple(c for c in node.children if c.is_named and c != body)
            if body is None:
                self.fail("redirect without a command", node)
                return [self.command_like(node, top=top, redirects=extra)]
            return self.statement(body, top=top, redirects=extra + redirects)
        if kind == "command":
            return [self.command(node, top=top, redirects=redirects)]
        if kind == "variable_assignment":
            return [self.command_like(node, top=top, redirects=redirects)]
        if kind == "comment":
            return []
        self.fail(_COMPLEX_NODES.get(kind, f"unsupported syntax {kind}"), node)
        if kind == "declaration_command":
            return [self.command_like(node, top=top, redirects=redirects)]
        found = []
        for child in node.children:
            if child.is_named:
                found.extend(self.statement(child, top=top))
        for redirect in redirects:
            found.extend(self.statement(redirect, top=top))
        return found

    def command_like(self, node: Node, *, top: bool, redirects: tuple[Node, ...]) -> _Cmd:
        """A bare assignment or a declaration (``export X=1``): an argv-less command."""
        fed: list[_Cmd] = []
        assignments: list[tuple[str, str]] = []
        argv: list[str] = []
        nodes = [node] if node.type == "variable_assignment" else list(node.children)
        for child in nodes:
            if child.type == "variable_assignment":
                assignments.append(self.assignment(child, fed, standalone=True))
            elif not child.is_named and child.type in ("export", "declare", "local", "readonly"):
                argv.append(child.type)
            elif child.is_named:
                argv.append(self.word(child, fed))
        out = self.redirect_list(redirects, fed)
        return self.add(
            _Cmd(
                argv=tuple(argv),
                assignments=tuple(assignments),
                redirects=out[0],
                fed=tuple(fed),
                stdin_text=out[1],
            ),
            top=top,
        )

    def command(self, node: Node, *, top: bool, redirects: tuple[Node, ...]) -> _Cmd:
        fed: list[_Cmd] = []
        argv: list[str] = []
        assignments: list[tuple[str, str]] = []
        inner_redirects: list[Node] = []
        for child in node.children:
            if self.over_budget():
                break
            kind = child.type
            if kind == "variable_assignment":
                assignments.append(self.assignment(child, fed, standalone=False))
            elif kind == "command_name":
                name = child.named_children
                if len(name) != 1:
                    self.fail("command name", child)
                argv.append(self.word(name[0], fed) if name else _OPAQUE)
            elif kind in ("file_redirect", "heredoc_redirect", "herestring_redirect"):
                inner_redirects.append(child)
            elif not child.is_named:
                self.fail(f"token {kind}", child)
            elif kind != "comment":
                argv.append(self.word(child, fed))
        out = self.redirect_list((*inner_redirects, *redirects), fed)
        return self.add(
            _Cmd(
                argv=tuple(argv),
                assignments=tuple(assignments),
                redirects=out[0],
                fed=tuple(fed),
                stdin_text=out[1],
            ),
            top=top,
        )

    def add(self, cmd: _Cmd, *, top: bool) -> _Cmd:
        self.commands.append(cmd)
        if top:
            self.top.append(cmd)
        if len(self.commands) > MAX_COMMANDS:
            self.fail(f"more than {MAX_COMMANDS} commands")
        return cmd

    def redirect_list(
        self, nodes: Sequence[Node], fed: list[_Cmd]
    ) -> tuple[tuple[_Redirect, ...], str | None]:
        redirects: list[_Redirect] = []
        stdin_text: str | None = None
        for node in nodes:
            if node.type == "file_redirect":
                redirect = self.file_redirect(node, fed)
                if redirect is not None:
                    redirects.append(redirect)
                continue
            self.fail(_COMPLEX_NODES.get(node.type, f"unsupported redirect {node.type}"), node)
            if node.type == "herestring_redirect":
                values = [self.word(c, fed) for c in node.named_children]
                stdin_text = " ".join(values)
            elif node.type == "heredoc_redirect":
                body = [c for c in node.named_children if c.type == "heredoc_body"]
                for child in node.named_children:
                    if child.type != "heredoc_body":
                        continue
                    for sub in child.named_children:
                        fed.extend(self.statement(sub, top=False))
                if body and not body[0].named_children:
                    stdin_text = _text(body[0])
            else:
                for child in node.named_children:
                    fed.extend(self.statement(child, top=False))
        return tuple(redirects), stdin_text

    def file_redirect(self, node: Node, fed: list[_Cmd]) -> _Redirect | None:
        op = ""
        fd = ""
        targets: list[Node] = []
        for child in node.children:
            if child.type == "file_descriptor":
                fd = _text(child)
                continue
            if not child.is_named:
                op = child.type
            else:
                targets.append(child)
        if len(targets) != 1:
            self.fail("redirect with more than one word", node)
        values = [self.word(t, fed) for t in targets]
        target = values[0] if values else _OPAQUE
        if op in (">&", "<&") and (target.isdigit() or target == "-"):
            return None  # fd duplication or close
        if op in ("<&-", ">&-"):
            return None
        return _Redirect(op=fd + op, target=target)

    def assignment(self, node: Node, fed: list[_Cmd], *, standalone: bool) -> tuple[str, str]:
        name_node = node.child_by_field_name("name")
        value_node = node.child_by_field_name("value")
        if name_node is None or name_node.type != "variable_name":
            self.fail(_COMPLEX_NODES["subscript"], node)
            if name_node is not None:
                for child in name_node.named_children:
                    fed.extend(self.statement(child, top=False))
            name = _OPAQUE
        else:
            name = _text(name_node)
        value = "" if value_node is None else self.word(value_node, fed, assignment=True)
        if standalone and name != _OPAQUE and _OPAQUE not in value:
            self.variables[name] = value
        return name, value

    def word(self, node: Node, fed: list[_Cmd], *, assignment: bool = False) -> str:
        """The literal value of an argument node; opaque parts become ``\\x00``."""
        chars = self.pieces(node, fed)
        text = "".join(c for c, _ in chars)
        unquoted = [(i, c) for i, (c, quoted) in enumerate(chars) if not quoted]
        for index, char in unquoted:
            if char in "*?[":
                self.fail("glob pattern", node)
            elif char == "{" and text != "{}":
                self.fail(_COMPLEX_NODES["brace_expression"], node)
            elif char == "~" and (
                assignment or (index == 0 and not (text == "~" or text.startswith("~/")))
            ):
                self.fail("tilde expansion ~user", node)
        return text

    def pieces(self, node: Node, fed: list[_Cmd]) -> list[tuple[str, bool]]:  # noqa: PLR0911, PLR0912
        """(character, quoted) pairs for one argument node."""
        if self.over_budget():
            return [(_OPAQUE, True)]
        kind = node.type
        if kind == "word":
            return _unescape_word(_text(node))
        if kind == "number":
            return [(c, False) for c in _text(node)]
        if kind == "raw_string":
            return [(c, True) for c in _text(node)[1:-1]]
        if kind == "string":
            out: list[tuple[str, bool]] = []
            for child in node.children:
                if not child.is_named and child.type == '"':
                    continue
                if child.type == "string_content":
                    out.extend((c, True) for c in _unescape_double(_text(child)))
                else:
                    out.extend((c, True) for c, _ in self.pieces(child, fed))
            return out
        if kind == "concatenation":
            return [p for child in node.children for p in self.pieces(child, fed)]
        self.fail(_COMPLEX_NODES.get(kind, f"unsupported syntax {kind}"), node)
        if kind == "ansi_c_string":
            return [(c, True) for c in _ansi_c(_text(node))]
        if kind in ("simple_expansion", "expansion"):
            names = [c for c in node.named_children if c.type == "variable_name"]
            name = _text(names[0]) if len(names) == 1 and node.named_child_count == 1 else ""
            if name == "HOME":
                return [("~", False)]
            if name in self.variables:
                return [(c, True) for c in self.variables[name]]
            return [(_OPAQUE, True)]
        for child in node.named_children:
            fed.extend(self.statement(child, top=False))
        return [(_OPAQUE, True)]


def _text(node: Node | None) -> str:
    if node is None or node.text is None:
        return ""
    return node.text.decode("utf-8", errors="replace")


def _unescape_word(raw: str) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    index = 0
    while index < len(raw):
        char = raw[index]
        if char == "\\" and index + 1 < len(raw):
            out.append((raw[index + 1], True))
            index += 2
            continue
        out.append((char, False))
        index += 1
    return out


def _unescape_double(raw: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(raw):
        char = raw[index]
        if char == "\\" and index + 1 < len(raw) and raw[index + 1] in '$`"\\':
            out.append(raw[index + 1])
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _ansi_c(raw: str) -> str:
    body = raw[2:-1] if raw.startswith("$'") and raw.endswith("'") else raw
    try:
        return codecs.decode(body, "unicode_escape")
    except UnicodeDecodeError:
        return _OPAQUE


def _control_reason(text: str) -> str | None:
    if "\\\n" in text or "\\\r\n" in text:
        return "line continuation"
    for char in text:
        if char in "\t\n":
            continue
        if unicodedata.category(char) == "Cc":
            return f"control character U+{ord(char):04X}"
    return None


@functools.lru_cache(maxsize=512)
def _parse_text(text: str) -> _Parse:
    """Parse one raw shell string (cached: the shell and git inspectors read the same text)."""
    if len(text) > MAX_CHARS:
        return _Parse(commands=(), top=(), pipelines=(), complex=f"longer than {MAX_CHARS} chars")
    source = text.encode("utf-8", errors="surrogatepass")
    tree = _parser().parse(source)
    walker = _Walker(source)
    pre = _control_reason(text)
    if pre is not None:
        walker.fail(pre)
    if tree.root_node.has_error:
        walker.fail("does not parse as shell")
    walker.statement(tree.root_node, top=True)
    return _Parse(
        commands=tuple(walker.commands),
        top=tuple(walker.top),
        pipelines=tuple(walker.pipelines),
        complex=walker.complex,
    )


def _parse_argv(argv: tuple[str, ...]) -> _Parse:
    """Split an argv-form command at the operator and redirection tokens shell servers honour."""
    complex_reason: str | None = None
    if sum(len(word) for word in argv) > MAX_CHARS:
        complex_reason = f"longer than {MAX_CHARS} chars"
    commands: list[_Cmd] = []
    pipelines: list[tuple[tuple[_Cmd, ...], ...]] = []
    stages: list[tuple[_Cmd, ...]] = []
    words: list[str] = []
    redirects: list[_Redirect] = []
    index = 0

    def close() -> None:
        nonlocal words, redirects
        if words or redirects:
            commands.append(
                _Cmd(
                    argv=tuple(words),
                    assignments=(),
                    redirects=tuple(redirects),
                    fed=(),
                    stdin_text=None,
                )
            )
            stages.append((commands[-1],))
        words, redirects = [], []

    while index < len(argv):
        word = argv[index]
        if complex_reason is None and _ARGV_SYNTAX.search(word):
            complex_reason = f"shell syntax in an argv element: {_short(word, 40)!r}"
        if word in _ARGV_OPERATORS:
            close()
            if word not in ("|", "|&"):
                if len(stages) > 1:
                    pipelines.append(tuple(stages))
                stages = []
        elif word in _ARGV_REDIRECTS and index + 1 < len(argv):
            redirects.append(_Redirect(op=word, target=argv[index + 1]))
            index += 1
        else:
            words.append(word)
        index += 1
    close()
    if len(stages) > 1:
        pipelines.append(tuple(stages))
    if complex_reason is None:
        pre = _control_reason("".join(argv))
        if pre is not None:
            complex_reason = pre
    if complex_reason is None and len(commands) > MAX_COMMANDS:
        complex_reason = f"more than {MAX_COMMANDS} commands"
    return _Parse(
        commands=tuple(commands),
        top=tuple(commands),
        pipelines=tuple(pipelines),
        complex=complex_reason,
    )


def parse_simple_commands(text: str) -> tuple[tuple[str, ...], ...] | None:
    """The simple commands of a raw shell string as argv tuples, or ``None`` when it is too
    complex to check (anything outside the node allowlist, a parse error, a budget overrun).

    Quotes and backslashes are removed. Each tuple keeps leading ``NAME=value`` assignments as
    words and ends with its redirections as ``op target`` words (``("pytest", ">", "out")``), so
    a token-prefix allowlist never mistakes ``LD_PRELOAD=x pytest`` for ``pytest``. Wrappers are
    kept (``timeout 5 pytest`` starts with ``timeout``) and ``sh -c`` text is not expanded.
    """
    parsed = _parse_text(text)
    if parsed.complex is not None:
        return None
    return tuple(
        (
            *(f"{name}={value}" for name, value in cmd.assignments),
            *cmd.argv,
            *(word for r in cmd.redirects for word in (r.op, r.target)),
        )
        for cmd in parsed.top
    )


# ---------------------------------------------------------------------------------------------
# wrappers and views


@dataclass(frozen=True, slots=True)
class _WrapperSpec:
    values: frozenset[str] = frozenset()
    transparent: bool = False
    assignments: bool = False
    positional: int = 0  # positionals to skip before the command (chroot root, flock file)
    text_options: frozenset[str] = frozenset()  # options whose value is shell text


_WRAPPERS: dict[str, _WrapperSpec] = {
    "timeout": _WrapperSpec(
        values=frozenset({"-s", "--signal", "-k", "--kill-after"}), transparent=True
    ),
    "time": _WrapperSpec(values=frozenset({"-f", "--format", "-o", "--output"}), transparent=True),
    "nice": _WrapperSpec(values=frozenset({"-n", "--adjustment"}), transparent=True),
    "env": _WrapperSpec(
        values=frozenset({"-u", "--unset", "-C", "--chdir"}),
        assignments=True,
        text_options=frozenset({"-S", "--split-string"}),
    ),
    "sudo": _WrapperSpec(
        values=frozenset(
            {
                "-u",
                "-g",
                "-C",
                "-D",
                "-h",
                "-p",
                "-r",
                "-t",
                "-T",
                "-U",
                "--user",
                "--group",
                "--chdir",
                "--host",
                "--prompt",
                "--role",
                "--type",
                "--other-user",
                "--close-from",
                "--command-timeout",
            }
        ),
        assignments=True,
    ),
    "doas": _WrapperSpec(values=frozenset({"-u", "-C"})),
    "pkexec": _WrapperSpec(values=frozenset({"--user"})),
    "runuser": _WrapperSpec(
        values=frozenset({"-u", "-g", "-G", "--user", "--group", "--supp-group", "-s"}),
        text_options=frozenset({"-c", "--command"}),
    ),
    "su": _WrapperSpec(
        values=frozenset({"-s", "--shell", "-g", "--group", "-G", "--supp-group", "-w"}),
        text_options=frozenset({"-c", "--command"}),
        positional=1,
    ),
    "xargs": _WrapperSpec(
        values=frozenset(
            {
                "-a",
                "-d",
                "-E",
                "-I",
                "-L",
                "-n",
                "-P",
                "-s",
                "--arg-file",
                "--delimiter",
                "--eof",
                "--max-lines",
                "--max-args",
                "--max-procs",
                "--max-chars",
                "--process-slot-var",
            }
        )
    ),
    "nohup": _WrapperSpec(),
    "stdbuf": _WrapperSpec(values=frozenset({"-i", "-o", "-e", "--input", "--output", "--error"})),
    "setsid": _WrapperSpec(),
    "ionice": _WrapperSpec(values=frozenset({"-c", "-n", "-p", "-P", "-u", "--class"})),
    "chroot": _WrapperSpec(positional=1),
    "flock": _WrapperSpec(
        values=frozenset({"-w", "-E", "--timeout", "--conflict-exit-code"}),
        text_options=frozenset({"-c", "--command"}),
        positional=1,
    ),
    "strace": _WrapperSpec(
        values=frozenset({"-o", "-e", "-p", "-s", "-u", "-E", "-a", "-b", "-I", "-O", "-P", "-X"})
    ),
    "ltrace": _WrapperSpec(values=frozenset({"-o", "-e", "-p", "-s", "-u", "-a", "-n"})),
    "unbuffer": _WrapperSpec(),
    "busybox": _WrapperSpec(),
    "command": _WrapperSpec(),
    "builtin": _WrapperSpec(),
    "exec": _WrapperSpec(values=frozenset({"-a"})),
    "watch": _WrapperSpec(
        values=frozenset({"-n", "--interval", "-q", "--equexit", "-d"}),
    ),
}


@dataclass(frozen=True, slots=True)
class _View:
    """One command as it will really run: the innermost argv after its wrappers."""

    cmd: _Cmd
    argv: tuple[str, ...]
    wrappers: tuple[tuple[str, ...], ...]  # argv of each non-transparent wrapper layer
    env: tuple[tuple[str, str], ...]
    texts: tuple[tuple[str, str], ...]  # (label, shell text) run by a wrapper


def _base(word: str) -> str:
    return posixpath.basename(word) or word


def _unwrap(cmd: _Cmd, argv: tuple[str, ...]) -> _View:  # noqa: PLR0912
    wrappers: list[tuple[str, ...]] = []
    env: list[tuple[str, str]] = list(cmd.assignments)
    texts: list[tuple[str, str]] = []
    current = argv
    for _ in range(16):
        if not current:
            break
        name = _base(current[0])
        spec = _WRAPPERS.get(name)
        if spec is None:
            break
        if name == "command" and any(w in ("-v", "-V") for w in current[1:2]):
            break
        rest = current[1:]
        index = 0
        watch_exec = False
        while index < len(rest):
            word = rest[index]
            if word == "--":
                index += 1
                break
            if word in spec.text_options and index + 1 < len(rest):
                texts.append((f"{name} {word}", rest[index + 1]))
                index += 2
                continue
            if word.startswith("-") and len(word) > 1:
                if name == "watch" and word in ("-x", "--exec"):
                    watch_exec = True
                index += 2 if word in spec.values else 1
                continue
            if spec.assignments:
                found = _ASSIGNMENT.match(word)
                if found is not None:
                    env.append((found.group(1), found.group(2)))
                    index += 1
                    continue
            break
        index += spec.positional
        if name == "timeout" and index < len(rest) and _DURATION.match(rest[index]):
            index += 1
        inner = rest[index:]
        if not spec.transparent and (inner or texts):
            wrappers.append(current)
        if name == "watch" and not watch_exec and inner:
            texts.append(("watch", " ".join(inner)))
            inner = ()
        current = inner
    return _View(
        cmd=cmd, argv=current, wrappers=tuple(wrappers), env=tuple(env), texts=tuple(texts)
    )


def _views_of(cmd: _Cmd) -> list[_View]:
    """The command itself and any command it runs as argv (``find -exec``)."""
    view = _unwrap(cmd, cmd.argv)
    views = [view]
    if view.argv and _base(view.argv[0]) == "find":
        for start, end in _find_exec_spans(view.argv):
            inner = _unwrap(cmd, view.argv[start:end])
            views.append(
                _View(
                    cmd=cmd,
                    argv=inner.argv,
                    wrappers=(*view.wrappers, view.argv, *inner.wrappers),
                    env=inner.env,
                    texts=inner.texts,
                )
            )
    return views


def _find_exec_spans(argv: tuple[str, ...]) -> Iterator[tuple[int, int]]:
    index = 1
    while index < len(argv):
        if argv[index] in ("-exec", "-execdir", "-ok", "-okdir"):
            start = index + 1
            end = start
            while end < len(argv) and argv[end] not in (";", "+"):
                end += 1
            yield start, end
            index = end
        index += 1


# ---------------------------------------------------------------------------------------------
# what commands are


def _shell_mode(argv: tuple[str, ...]) -> tuple[str, str | None]:
    """For a shell: ``("c", text)``, ``("stdin", None)`` or ``("script", path)``."""
    has_c = False
    stdin = False
    index = 1
    while index < len(argv):
        word = argv[index]
        if word == "--":
            index += 1
            break
        if word in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
            index += 2
            continue
        if word.startswith("--"):
            index += 1
            continue
        if word[:1] in ("-", "+") and len(word) > 1:
            has_c = has_c or "c" in word[1:]
            stdin = stdin or "s" in word[1:]
            index += 1
            continue
        break
    operand = argv[index] if index < len(argv) else None
    if has_c:
        return "c", operand
    if stdin or operand is None or operand in _STDIN_PATHS:
        return "stdin", None
    return "script", operand


_INTERPRETER_CODE: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # name: (options whose value is program text, options that take another value)
    "perl": (frozenset({"-e", "-E"}), frozenset()),
    "ruby": (frozenset({"-e"}), frozenset({"-r", "-I", "-C"})),
    "node": (frozenset({"-e", "--eval", "-p", "--print"}), frozenset({"-r", "--require"})),
    "nodejs": (frozenset({"-e", "--eval", "-p", "--print"}), frozenset({"-r", "--require"})),
    "bun": (frozenset({"-e", "--eval", "-p", "--print"}), frozenset()),
    "php": (frozenset({"-r", "-R", "-B", "-E"}), frozenset({"-f", "-c", "-d", "-z"})),
    "lua": (frozenset({"-e"}), frozenset({"-l"})),
    "luajit": (frozenset({"-e"}), frozenset({"-l"})),
    "Rscript": (frozenset({"-e"}), frozenset()),
    "R": (frozenset({"-e"}), frozenset()),
    "julia": (frozenset({"-e", "-E", "--eval", "--print"}), frozenset()),
    "osascript": (frozenset({"-e"}), frozenset()),
    "groovy": (frozenset({"-e"}), frozenset()),
    "pwsh": (frozenset({"-c", "-command", "-encodedcommand", "-ec", "-e"}), frozenset()),
    "powershell": (frozenset({"-c", "-command", "-encodedcommand", "-ec", "-e"}), frozenset()),
}
_AWKS = frozenset({"awk", "gawk", "mawk", "nawk"})


def _interpreter_mode(argv: tuple[str, ...]) -> tuple[str, str | None] | None:  # noqa: PLR0911, PLR0912
    """For an interpreter: ``("code", text)``, ``("stdin", None)``, ``("script"|"module", x)``;
    ``None`` when ``argv`` is not an interpreter."""
    name = _base(argv[0])
    if _PYTHON.match(name):
        index = 1
        while index < len(argv):
            word = argv[index]
            if word in ("-W", "-X", "--check-hash-based-pycs"):
                index += 2
                continue
            if word.startswith("-") and not word.startswith("--") and len(word) > 1:
                letters = word[1:]
                if "c" in letters:
                    rest = letters.split("c", 1)[1]
                    return "code", rest or (argv[index + 1] if index + 1 < len(argv) else "")
                if "m" in letters:
                    rest = letters.split("m", 1)[1]
                    return "module", rest or (argv[index + 1] if index + 1 < len(argv) else "")
                index += 1
                continue
            if word.startswith("--") and word != "--":
                index += 1
                continue
            if word == "--":
                index += 1
            break
        operand = argv[index] if index < len(argv) else None
        if operand is None or operand in _STDIN_PATHS:
            return "stdin", None
        return "script", operand
    if name == "deno":
        if len(argv) > 2 and argv[1] == "eval":
            return "code", argv[2]
        return "script", None
    if name == "perl":
        return _perl_mode(argv)
    spec = _INTERPRETER_CODE.get(name)
    if spec is None:
        return None
    code, values = spec
    index = 1
    while index < len(argv):
        word = argv[index]
        key = word.split("=", 1)[0]
        lowered = key.lower() if name in ("pwsh", "powershell") else key
        if lowered in code:
            if "=" in word:
                return "code", word.split("=", 1)[1]
            return "code", argv[index + 1] if index + 1 < len(argv) else ""
        if word == "--":
            index += 1
            break
        if word.startswith("-") and len(word) > 1:
            index += 2 if word in values else 1
            continue
        break
    operand = argv[index] if index < len(argv) else None
    if operand is None or operand in _STDIN_PATHS:
        return "stdin", None
    return "script", operand


def _perl_mode(argv: tuple[str, ...]) -> tuple[str, str | None]:
    index = 1
    while index < len(argv):
        word = argv[index]
        if word == "--":
            index += 1
            break
        if word.startswith("-") and len(word) > 1 and not word.startswith("--"):
            for position, letter in enumerate(word[1:]):
                if letter in "eE":
                    rest = word[position + 2 :]
                    return "code", rest or (argv[index + 1] if index + 1 < len(argv) else "")
                if letter in "MmIixdDClo0":
                    break
            index += 1
            continue
        break
    operand = argv[index] if index < len(argv) else None
    if operand is None or operand in _STDIN_PATHS:
        return "stdin", None
    return "script", operand


def _awk_program(argv: tuple[str, ...]) -> list[str]:
    programs: list[str] = []
    has_file = False
    index = 1
    while index < len(argv):
        word = argv[index]
        if word in ("-f", "--file"):
            has_file = True
            index += 2
            continue
        if word in ("-e", "--source") and index + 1 < len(argv):
            programs.append(argv[index + 1])
            index += 2
            continue
        if word in ("-F", "-v", "--assign", "--field-separator", "-i", "--include", "-l"):
            index += 2
            continue
        if word == "--":
            index += 1
            break
        if word.startswith("-") and len(word) > 1:
            index += 1
            continue
        break
    if not has_file and not programs and index < len(argv):
        programs.append(argv[index])
    return programs


def _reads_code_from_stdin(argv: tuple[str, ...]) -> bool:
    if not argv:
        return False
    name = _base(argv[0])
    if name in _SHELLS:
        return _shell_mode(argv)[0] == "stdin"
    if name in ("source", "."):
        return len(argv) > 1 and argv[1] in _STDIN_PATHS
    mode = _interpreter_mode(argv)
    return mode is not None and mode[0] == "stdin"


def _is_code_sink(argv: tuple[str, ...]) -> bool:
    """Whether substituted output in this command's words becomes code."""
    if not argv or _OPAQUE in argv[0]:
        return True
    name = _base(argv[0])
    return (
        name in _SHELLS
        or name in ("eval", "source", ".", "exec", "trap")
        or _interpreter_mode(argv) is not None
        or name in _AWKS
    )


def _is_download(argv: tuple[str, ...]) -> bool:
    return bool(argv) and _base(argv[0]) in _DOWNLOADERS


def _is_decoder(argv: tuple[str, ...]) -> bool:  # noqa: PLR0911
    if not argv:
        return False
    name = _base(argv[0])
    args = argv[1:]
    if name in ("base64", "base32", "basenc", "gbase64"):
        return any(a in ("-d", "--decode", "-D") or (a[:1] == "-" and "d" in a[1:2]) for a in args)
    if name == "openssl":
        return "-d" in args or "-base64" in args or (args[:1] == ("base64",))
    if name == "xxd":
        return any(a.startswith("-r") for a in args)
    if name in ("uudecode", "tr") or name in _DECOMPRESSORS:
        return True
    if name in ("gzip", "bzip2", "xz", "zstd", "lz4"):
        return any(a in ("-d", "--decompress", "-dc", "-cd") for a in args)
    if name == "printf":
        return any(_ESCAPES.search(a) for a in args)
    if name == "echo":
        return any(a.startswith("-") and "e" in a for a in args[:2])
    return False


# ---------------------------------------------------------------------------------------------
# the inspector


@dataclass(slots=True)
class _Report:
    name: str
    context: Context
    findings: list[Finding] = field(default_factory=list)

    def add(self, rule: _Rule, detail: str, *, attack: str | None = None) -> None:
        finding = Finding(
            inspector=self.name,
            rule=rule.id,
            confidence=1.0,
            detail=detail,
            attack=attack or rule.attack,
            owasp=rule.owasp,
        )
        if finding not in self.findings:
            self.findings.append(finding)


@dataclass(frozen=True, slots=True)
class ShellInspector:
    """Reports shell commands that are too complex to check or that match a known abuse."""

    name: str = "shell"

    def inspect(self, action: Action, context: Context) -> Sequence[Finding]:
        """Findings for every command of ``action`` (see the module docstring)."""
        if not action.commands and not action.command_text:
            return ()
        report = _Report(name=self.name, context=context)
        plain = {split_plain_command(text) for text in action.command_text}
        for text in action.command_text:
            _confusables(report, text, where="")
            _check(report, _parse_text(text), depth=0, where="")
        for argv in action.commands:
            if argv in plain:
                continue
            for word in argv:
                _confusables(report, word, where="")
            _check(report, _parse_argv(argv), depth=0, where="")
        return tuple(report.findings)


def _check(report: _Report, parsed: _Parse, *, depth: int, where: str) -> None:
    if parsed.complex is not None:
        report.add(
            TOO_COMPLEX,
            f"{where}too complex to check: {parsed.complex}; "
            "write it as plain commands without substitutions, expansions or globs",
        )
    views: dict[int, list[_View]] = {}
    for cmd in parsed.commands:
        views[id(cmd)] = _views_of(cmd)
        for view in views[id(cmd)]:
            _check_view(report, view, depth=depth, where=where)
        _check_fed(report, cmd, where=where)
    for pipeline in parsed.pipelines:
        _check_pipeline(report, pipeline, where=where)


def _nested(report: _Report, label: str, text: str, *, depth: int, where: str) -> None:
    inner = f"{where}in `{label}`: "
    if _OPAQUE in text:
        return  # already too complex; the substitution itself was checked
    if depth + 1 > MAX_NESTING:
        report.add(TOO_COMPLEX, f"{inner}too complex to check: nested more than {MAX_NESTING} deep")
        return
    _confusables(report, text, where=inner)
    _check(report, _parse_text(text), depth=depth + 1, where=inner)


def _check_view(report: _Report, view: _View, *, depth: int, where: str) -> None:
    for label, text in view.texts:
        _nested(report, label, text, depth=depth, where=where)
    _check_wrappers(report, view, where=where)
    _check_env(report, view, where=where)
    _check_writes(report, view, where=where)
    argv = view.argv
    if not argv:
        return
    name = _base(argv[0])
    shown = _show(argv)
    if name in _SHELLS:
        mode, code = _shell_mode(argv)
        if mode == "c" and code is not None:
            _nested(report, f"{name} -c", code, depth=depth, where=where)
    elif name == "eval":
        report.add(EVAL, f"{where}eval runs its arguments as shell code: {shown}")
        if len(argv) > 1:
            _nested(report, "eval", " ".join(argv[1:]), depth=depth, where=where)
    elif name == "exec" and len(argv) > 1:
        report.add(EVAL, f"{where}exec replaces the shell with another program: {shown}")
    elif name == "trap" and len(argv) > 2:
        report.add(EVAL, f"{where}trap runs its text as shell code later: {shown}")
    elif (
        name in ("source", ".")
        and len(argv) > 1
        and (argv[1] in _STDIN_PATHS or _OPAQUE in argv[1])
    ):
        report.add(EVAL, f"{where}{name} of stdin or of a substitution runs it as code: {shown}")
    _check_oneliner(report, argv, where=where)
    _check_tool_abuse(report, argv, where=where)
    _check_exfil(report, view, where=where)
    _check_destructive(report, view, where=where)


def _check_wrappers(report: _Report, view: _View, *, where: str) -> None:  # noqa: PLR0912
    for wrapper in view.wrappers:
        name = _base(wrapper[0])
        if name == "exec":
            report.add(
                EVAL, f"{where}exec replaces the shell with another program: {_show(wrapper)}"
            )
            continue
        attack = "T1548.003" if name in ("sudo", "doas", "su", "pkexec", "runuser") else None
        what = {
            "env": "env runs another command with a changed environment",
            "xargs": "xargs runs a command with arguments read from stdin",
            "find": "find -exec runs a command per file",
        }.get(name, f"{name} runs another command")
        report.add(
            EXEC_WRAPPER,
            f"{where}{what}; the allowlist would only see {name}: {_show(wrapper)}",
            attack=attack,
        )
    argv = view.argv
    if not argv:
        return
    name = _base(argv[0])
    args = argv[1:]
    if name == "git":
        for key in _git_config_keys(argv):
            if git_config_runs_code(key):
                report.add(
                    EXEC_WRAPPER, f"{where}git -c {key}=… makes git run a command: {_show(argv)}"
                )
    elif name in ("ssh", "scp", "sftp"):
        for index, word in enumerate(args):
            option = None
            if word == "-o" and index + 1 < len(args):
                option = args[index + 1]
            elif word.startswith("-o") and len(word) > 2:
                option = word[2:]
            if option is not None and re.match(
                r"\s*(proxycommand|localcommand|permitlocalcommand|knownhostscommand|match)\b",
                option,
                re.IGNORECASE,
            ):
                report.add(
                    EXEC_WRAPPER,
                    f"{where}{name} -o {_short(option, 30)} runs a local command: {_show(argv)}",
                )
    elif name in ("tar", "bsdtar", "gtar"):
        for word in args:
            key = word.split("=", 1)[0]
            if key in (
                "--checkpoint-action",
                "--to-command",
                "--use-compress-program",
                "--info-script",
                "--new-volume-script",
                "--rsh-command",
                "-I",
                "-F",
            ):
                report.add(EXEC_WRAPPER, f"{where}tar {key} runs a command: {_show(argv)}")
    elif name == "rsync":
        for word in args:
            if word.split("=", 1)[0] in ("-e", "--rsh", "--rsync-path"):
                report.add(EXEC_WRAPPER, f"{where}rsync {word} runs a command: {_show(argv)}")
    elif name == "zip" and any(w in ("-TT", "--unzip-command") for w in args):
        report.add(EXEC_WRAPPER, f"{where}zip -TT runs a command: {_show(argv)}")


def _git_config_keys(argv: tuple[str, ...]) -> list[str]:
    keys: list[str] = []
    index = 1
    while index < len(argv):
        word = argv[index]
        if word == "-c" and index + 1 < len(argv):
            keys.append(argv[index + 1].split("=", 1)[0])
            index += 2
            continue
        if word.startswith("--config-env="):
            keys.append(word.split("=", 2)[1])
        elif word == "--config-env" and index + 1 < len(argv):
            keys.append(argv[index + 1].split("=", 1)[0])
            index += 2
            continue
        elif word.startswith("--exec-path="):
            keys.append("core.execpath")
        elif word in ("-C", "--git-dir", "--work-tree", "--namespace"):
            index += 2
            continue
        elif not word.startswith("-"):
            break
        index += 1
    return keys


_GIT_EXEC_KEYS = re.compile(
    r"(?:core\..*|alias\..*|filter\..*|diff\..*\.(?:textconv|command)|diff\.external"
    r"|difftool\..*|mergetool\..*|merge\..*\.driver|credential\..*helper|pager\..*"
    r"|sequence\.editor|gpg\..*program|include\.path|includeif\..*"
    r"|uploadpack\.packobjectshook|remote\..*\.(?:uploadpack|receivepack|proxy)"
    r"|protocol\..*allow|url\..*\.insteadof|http\..*proxy|ssh\.variant|sendemail\..*cmd"
    r"|submodule\..*\.update|receive\.procreceiverefs|fsmonitor\..*)\Z"
)


def git_config_runs_code(key: str) -> bool:
    """Whether setting git config ``key`` can make git run a command (``core.*``, ``alias.*``,
    filters, textconv, credential helpers, pagers, includes, …). Case-insensitive."""
    return _GIT_EXEC_KEYS.match(key.lower()) is not None


def _check_env(report: _Report, view: _View, *, where: str) -> None:
    target = _show(view.argv) if view.argv else "the following commands"
    for name, value in view.env:
        upper = name.upper()
        if upper in _ENV_EXACT or upper.startswith(_ENV_PREFIX):
            report.add(
                ENV_INJECTION,
                f"{where}{name}={_short(value, 30)} set for {target}: changes what the program "
                "loads or runs",
            )


def _write_targets(view: _View) -> list[tuple[str, str]]:
    """(how, target) for every file this command writes that we can name."""
    targets = [
        (f"redirect {r.op}", r.target)
        for r in view.cmd.redirects
        if r.op.lstrip("0123456789") in _WRITE_OPS
    ]
    argv = view.argv
    if not argv:
        return targets
    name = _base(argv[0])
    args = argv[1:]
    if name == "tee":
        targets.extend(("tee", a) for a in args if not a.startswith("-"))
    elif name == "dd":
        targets.extend(("dd of=", a[3:]) for a in args if a.startswith("of="))
    elif name in ("cp", "mv", "install", "ln", "rsync"):
        positionals = [a for a in args if not a.startswith("-")]
        for index, word in enumerate(args):
            if word in ("-t", "--target-directory") and index + 1 < len(args):
                positionals.append(args[index + 1])
            elif word.startswith("--target-directory="):
                positionals.append(word.split("=", 1)[1])
        if len(positionals) >= 2:
            targets.append((name, positionals[-1]))
    return targets


def _check_writes(report: _Report, view: _View, *, where: str) -> None:
    context = report.context
    for how, target in _write_targets(view):
        if _OPAQUE in target or not target:
            continue
        lexical = _resolve(target, base=context.cwd, home=context.home)
        real = _resolve(context.fs.realpath(lexical), base="/", home="/")
        if lexical in _HARMLESS_DEVICES:
            continue
        if _BLOCK_DEVICE.match(lexical) or _BLOCK_DEVICE.match(real):
            report.add(
                DESTRUCTIVE, f"{where}{how} {target} overwrites a block device", attack="T1485"
            )
            continue
        attack = _persistence(lexical, context) or _persistence(real, context)
        if attack is not None:
            shown = lexical if real == lexical else f"{lexical} (resolves to {real})"
            report.add(
                DOTFILE_WRITE,
                f"{where}{how} writes {shown}: a shell start-up, ssh or system file runs or "
                "grants access later",
                attack=attack,
            )


def _persistence(path: str, context: Context) -> str | None:
    parts = _parts(path)
    workspace = _parts(_resolve(context.workspace, base=context.cwd, home=context.home))
    home = _parts(_resolve(context.home, base="/", home=context.home))
    if _inside(parts, home):
        relative = parts[len(home) :]
        if len(relative) == 1 and relative[0] in _RC_NAMES:
            return "T1546.004"
        for prefix, attack in _HOME_SUBTREES:
            if relative[: len(prefix)] == prefix:
                return attack
    for prefix, attack in _SYSTEM_SUBTREES:
        if parts[: len(prefix)] == prefix:
            return attack
    if parts and parts[-1] in _RC_NAMES and not _inside(parts, workspace):
        return "T1546.004"
    if parts[-2:] == (".ssh", "authorized_keys"):
        return "T1098.004"
    return None


def _check_oneliner(report: _Report, argv: tuple[str, ...], *, where: str) -> None:
    name = _base(argv[0])
    if name in _AWKS:
        for program in _awk_program(argv):
            if _AWK_EXEC.search(program):
                report.add(
                    ONELINER,
                    f"{where}{name} program runs shell commands (system/pipe): {_show(argv)}",
                    attack="T1059.004",
                )
        return
    mode = _interpreter_mode(argv)
    if mode is None or mode[0] != "code":
        return
    attack = "T1059.007" if name in ("node", "nodejs", "bun", "deno", "osascript") else "T1059.006"
    if name in ("pwsh", "powershell"):
        attack = "T1059.001"
    report.add(
        ONELINER,
        f"{where}{name} runs inline code given on the command line: {_show(argv)}",
        attack=attack,
    )


def _check_tool_abuse(report: _Report, argv: tuple[str, ...], *, where: str) -> None:  # noqa: PLR0912
    name = _base(argv[0])
    args = argv[1:]
    shown = _show(argv)
    if _PYTHON.match(name):
        mode = _interpreter_mode(argv)
        if mode is not None and mode[0] == "module" and mode[1] == "pytest":
            start = argv.index("pytest") + 1 if "pytest" in argv else len(argv)
            _check_pytest(report, argv[start:], shown=shown, where=where)
        return
    if name in ("pytest", "py.test"):
        _check_pytest(report, args, shown=shown, where=where)
    elif name == "go":
        for word in args:
            key = word.lstrip("-").split("=", 1)[0]
            if word.startswith("-") and key in ("exec", "toolexec"):
                report.add(
                    TOOL_ABUSE,
                    f"{where}go -{key} runs an arbitrary program as the test/tool binary: {shown}",
                )
    elif name in ("make", "gmake"):
        for index, word in enumerate(args):
            key = word.split("=", 1)[0]
            if "=" in word and key.strip() in ("SHELL", ".SHELLFLAGS", "MAKESHELL"):
                report.add(TOOL_ABUSE, f"{where}make {key}=… swaps the recipe shell: {shown}")
            elif key in ("--eval", "-E"):
                report.add(
                    TOOL_ABUSE, f"{where}make {key} evaluates injected makefile text: {shown}"
                )
            elif key in ("-f", "--file", "--makefile") and (
                (word.split("=", 1)[1:] or args[index + 1 : index + 2] or [""])[0] in _STDIN_PATHS
            ):
                report.add(TOOL_ABUSE, f"{where}make reads its makefile from stdin: {shown}")
    elif name in ("npm", "pnpm", "yarn", "npx"):
        for word in args:
            key = word.split("=", 1)[0]
            if key in ("--script-shell", "--node-options", "--userconfig", "--globalconfig"):
                report.add(
                    TOOL_ABUSE, f"{where}{name} {key} changes what runs the scripts: {shown}"
                )
    elif name == "cargo":
        for word in args:
            if word.split("=", 1)[0] == "--config":
                report.add(
                    TOOL_ABUSE,
                    f"{where}cargo --config can set a runner, linker or rustc wrapper: {shown}",
                )


def _check_pytest(report: _Report, args: tuple[str, ...], *, shown: str, where: str) -> None:
    for index, word in enumerate(args):
        value: str | None = None
        if word == "-p" and index + 1 < len(args):
            value = args[index + 1]
        elif word.startswith("-p") and len(word) > 2 and not word.startswith("--"):
            value = word[2:]
        if value is not None and not value.startswith("no:"):
            report.add(
                TOOL_ABUSE,
                f"{where}pytest -p {_short(value, 30)} imports a module as a plugin: {shown}",
            )
        option: str | None = None
        if word in ("-o", "--override-ini") and index + 1 < len(args):
            option = args[index + 1]
        elif word.startswith("--override-ini="):
            option = word.split("=", 1)[1]
        elif word.startswith("-o") and len(word) > 2:
            option = word[2:]
        if option is not None and option.split("=", 1)[0].strip() in (
            "addopts",
            "pythonpath",
            "required_plugins",
        ):
            report.add(
                TOOL_ABUSE, f"{where}pytest -o {_short(option, 30)} injects options: {shown}"
            )


def _check_exfil(report: _Report, view: _View, *, where: str) -> None:  # noqa: PLR0912
    argv = view.argv
    name = _base(argv[0])
    shown = _show(argv)
    words = [*argv, *(r.target for r in view.cmd.redirects)]
    if any("/dev/tcp/" in w or "/dev/udp/" in w for w in words):
        report.add(NET_EXFIL, f"{where}/dev/tcp or /dev/udp opens a raw network socket: {shown}")
    args = argv[1:]
    if name in _NETCATS:
        for word in args:
            if word in ("--exec", "--sh-exec", "--lua-exec") or (
                word.startswith("-") and not word.startswith("--") and set(word[1:]) & {"e", "c"}
            ):
                report.add(NET_EXFIL, f"{where}{name} {word} wires a shell to the network: {shown}")
                break
    elif name == "socat":
        if any(_SOCAT_EXEC.search(word) for word in args):
            report.add(
                NET_EXFIL, f"{where}socat exec:/system: wires a program to the network: {shown}"
            )
    elif name == "curl":
        for index, word in enumerate(args):
            following = args[index + 1] if index + 1 < len(args) else ""
            if word.startswith("--"):
                key, sep, attached = word.partition("=")
                value = attached if sep else following
            else:
                key, value = word[:2], word[2:] or following
            if key in ("-T", "--upload-file"):
                report.add(NET_EXFIL, f"{where}curl uploads local file {value}: {shown}")
            elif key in ("-d", "--data", "--data-binary", "--json") and value.startswith("@"):
                report.add(NET_EXFIL, f"{where}curl sends the contents of {value[1:]}: {shown}")
            elif key == "--data-urlencode" and re.match(r"[^=]*@", value):
                report.add(NET_EXFIL, f"{where}curl sends a local file's contents: {shown}")
            elif key in ("-F", "--form") and re.search(r"=[@<]", value):
                report.add(NET_EXFIL, f"{where}curl uploads a local file as a form field: {shown}")
    elif name in ("wget", "wget2") and any(
        w.split("=", 1)[0] in ("--post-file", "--body-file") for w in args
    ):
        report.add(NET_EXFIL, f"{where}wget posts a local file: {shown}")


def _outside_safe_area(path: str, context: Context) -> bool:
    """Whether a delete/chmod target is not strictly inside the workspace or a scratch dir."""
    lexical = _resolve(path, base=context.cwd, home=context.home)
    real = _resolve(context.fs.realpath(lexical), base="/", home="/")
    workspace = _resolve(context.workspace, base=context.cwd, home=context.home)
    roots = [
        _parts(workspace),
        _parts(_resolve(context.fs.realpath(workspace), base="/", home="/")),
        *_SCRATCH,
    ]
    for candidate in (_parts(lexical), _parts(real)):
        if not any(_inside(candidate, root) and len(candidate) > len(root) for root in roots):
            return True
    return False


_POWER = frozenset({"shutdown", "reboot", "halt", "poweroff", "kexec"})
_DISK_TOOLS = frozenset({"mkswap", "wipefs", "sfdisk", "fdisk", "parted", "blkdiscard", "mke2fs"})


def _check_destructive(report: _Report, view: _View, *, where: str) -> None:  # noqa: PLR0912
    argv = view.argv
    name = _base(argv[0])
    args = argv[1:]
    shown = _show(argv)
    context = report.context
    if name == "rm":
        flags = "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))
        recursive = "r" in flags or "R" in flags or "--recursive" in args
        if "--no-preserve-root" in args:
            report.add(DESTRUCTIVE, f"{where}rm --no-preserve-root deletes /: {shown}")
        if recursive:
            for target in _operands(args):
                if _OPAQUE not in target and _outside_safe_area(target, context):
                    report.add(
                        DESTRUCTIVE,
                        f"{where}recursive delete of {target} (not inside the workspace): {shown}",
                    )
    elif name == "find" and "-delete" in args:
        starts = []
        for word in args:
            if word.startswith(("-", "(", "!")):
                break
            starts.append(word)
        for target in starts or ["."]:
            if _OPAQUE not in target and _outside_safe_area(target, context):
                report.add(
                    DESTRUCTIVE,
                    f"{where}find -delete under {target} (not inside the workspace): {shown}",
                )
    elif name.startswith("mkfs") or name in _DISK_TOOLS:
        report.add(DESTRUCTIVE, f"{where}{name} destroys a filesystem or partition: {shown}")
    elif name == "shred":
        for target in _operands(args):
            if _OPAQUE not in target and _outside_safe_area(target, context):
                report.add(DESTRUCTIVE, f"{where}shred of {target} outside the workspace: {shown}")
    elif name in ("chmod", "chown", "chgrp"):
        flags = "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))
        if "R" in flags or "--recursive" in args:
            operands = _operands(args)[1:]
            for target in operands:
                if _OPAQUE not in target and _outside_safe_area(target, context):
                    report.add(
                        DESTRUCTIVE,
                        f"{where}recursive {name} of {target} (not inside the workspace): {shown}",
                        attack="T1222.002",
                    )
    elif (
        name in _POWER
        or (name == "init" and args[:1] in (("0",), ("6",)))
        or (name == "systemctl" and any(a in ("poweroff", "reboot", "halt", "kexec") for a in args))
    ):
        report.add(DESTRUCTIVE, f"{where}{name} shuts the machine down: {shown}", attack="T1529")
    elif name == "kill" and "-1" in args[-1:]:
        report.add(DESTRUCTIVE, f"{where}kill -1 signals every process: {shown}", attack="T1529")


def _operands(args: tuple[str, ...]) -> list[str]:
    operands: list[str] = []
    options_done = False
    for word in args:
        if not options_done and word == "--":
            options_done = True
            continue
        if not options_done and word.startswith("-") and len(word) > 1:
            continue
        operands.append(word)
    return operands


def _source_rule(sources: Sequence[tuple[str, ...]]) -> tuple[_Rule, tuple[str, ...]] | None:
    for argv in sources:
        if _is_download(argv):
            return PIPED_CURL, argv
    for argv in sources:
        if _is_decoder(argv):
            return DECODE_EXEC, argv
    return (EVAL, sources[0]) if sources else None


def _inner_argvs(cmds: Sequence[_Cmd]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for cmd in cmds:
        out.extend(view.argv for view in _views_of(cmd) if view.argv)
        out.extend(_inner_argvs(cmd.fed))
    return out


def _check_fed(report: _Report, cmd: _Cmd, *, where: str) -> None:
    """Substituted output that becomes code: ``bash -c "$(curl …)"``, ``sh <(curl …)``."""
    if not cmd.fed:
        return
    view = _unwrap(cmd, cmd.argv)
    if not _is_code_sink(view.argv):
        return
    found = _source_rule(_inner_argvs(cmd.fed))
    if found is None:
        return
    rule, source = found
    sink = _show(view.argv, 40) if view.argv else "a substituted command name"
    what = {
        PIPED_CURL.id: "a download runs as code",
        DECODE_EXEC.id: "decoded text runs as code",
    }.get(rule.id, "its output runs as code")
    report.add(rule, f"{where}output of `{_show(source, 40)}` is substituted into `{sink}`: {what}")


def _check_pipeline(report: _Report, pipeline: tuple[tuple[_Cmd, ...], ...], *, where: str) -> None:
    for position, stage in enumerate(pipeline):
        if position == 0:
            continue
        sinks = [
            view.argv
            for cmd in stage
            for view in _views_of(cmd)
            if _reads_code_from_stdin(view.argv)
        ]
        if not sinks:
            continue
        sources = _inner_argvs([cmd for earlier in pipeline[:position] for cmd in earlier])
        found = _source_rule(sources)
        if found is None:
            continue
        rule, source = found
        what = {
            PIPED_CURL.id: "a download runs as code",
            DECODE_EXEC.id: "decoded text runs as code",
        }.get(rule.id, "its output runs as code")
        report.add(
            rule,
            f"{where}{_show(source, 40)} piped into {_show(sinks[0], 30)}: {what}",
            attack=None,
        )


_SHELL_CHARS = frozenset("|;&$<>()`'\"\\/.~-=*?[]{}!# ")
_HOMOGLYPH_SCRIPTS = ("CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC", "LISU")


def _confusables(report: _Report, text: str, *, where: str) -> None:
    if text.isascii():
        control = next(
            (c for c in text if unicodedata.category(c) == "Cc" and c not in "\t\n"), None
        )
        if control is not None:
            report.add(
                CONFUSABLE,
                f"{where}control character U+{ord(control):04X} in the command can hide text",
            )
        return
    for char in text:
        if char.isascii():
            if unicodedata.category(char) == "Cc" and char not in "\t\n":
                report.add(
                    CONFUSABLE,
                    f"{where}control character U+{ord(char):04X} in the command can hide text",
                )
                return
            continue
        category = unicodedata.category(char)
        label = f"U+{ord(char):04X} {unicodedata.name(char, '?')}"
        if category in ("Cf", "Cc", "Zs", "Zl", "Zp", "Co", "Cn"):
            report.add(CONFUSABLE, f"{where}invisible or spacing character {label} in the command")
            return
        folded = unicodedata.normalize("NFKC", char)
        if folded.isascii() and (folded.isalnum() or set(folded) & _SHELL_CHARS):
            report.add(CONFUSABLE, f"{where}look-alike character {label} reads as {folded!r}")
            return
    words = text.split()
    if words and not words[0].isascii():
        report.add(CONFUSABLE, f"{where}non-ASCII command name {_short(words[0], 30)!r}")
        return
    for word in words:
        if not any(c.isascii() and c.isalpha() for c in word):
            continue
        for char in word:
            if not char.isascii() and unicodedata.name(char, "").startswith(_HOMOGLYPH_SCRIPTS):
                report.add(
                    CONFUSABLE,
                    f"{where}mixed-script word {_short(word, 30)!r}: "
                    f"U+{ord(char):04X} {unicodedata.name(char)} looks like a Latin letter",
                )
                return


def command_argvs(action: Action) -> Iterator[tuple[str, ...]]:
    """Every command ``action`` runs, as the innermost argv after wrappers, in order, with the
    commands of ``sh -c``/``eval``/``find -exec`` text in place (the git inspector reads these).
    Lenient: opaque parts of a too-complex command are ``\\x00``."""
    plain = {split_plain_command(text) for text in action.command_text}
    for text in action.command_text:
        yield from _argvs_of(_parse_text(text), depth=0)
    for argv in action.commands:
        if argv not in plain:
            yield from _argvs_of(_parse_argv(argv), depth=0)


def _argvs_of(parsed: _Parse, *, depth: int) -> Iterator[tuple[str, ...]]:
    for cmd in parsed.commands:
        for view in _views_of(cmd):
            texts = list(view.texts)
            if view.argv:
                yield view.argv
                name = _base(view.argv[0])
                if name in _SHELLS:
                    mode, code = _shell_mode(view.argv)
                    if mode == "c" and code is not None:
                        texts.append((name, code))
                elif name == "eval":
                    texts.append((name, " ".join(view.argv[1:])))
            for _, text in texts:
                if depth < MAX_NESTING and _OPAQUE not in text:
                    yield from _argvs_of(_parse_text(text), depth=depth + 1)
