"""Git actions: structured git tools and ``git …`` command lines, held against protected branches.

Sources:

- structured tools by kind: ``git.push`` (also GitHub ``push_files``/``create_or_update_file``
  with ``branch``), ``git.branch.*``, ``git.commit``, ``git.reset`` (``mode: hard`` or
  ``hard: true``); ``git.checkout`` only switches and reports nothing;
- every ``git`` command the action runs, found by the shell inspector's parser (raw strings,
  argv, ``sh -c`` text, wrappers), in order. ``git checkout X``/``switch X``/``checkout -b X``
  set the current branch for later commands of the same action, so ``git checkout main &&
  git commit …`` is a commit to ``main``.

Branch names are normalized (``+``, ``src:dst``, ``refs/heads/``; ``HEAD`` is the current branch)
and matched against the protected globs exactly (``release/*``), never by substring
(``main-x`` and ``feature/main`` are not ``main``). An unknown destination (``git push`` with no
refspec and no known current branch) is not protected, except for a lease force push.

==================== ================= ======= ============================================
rule                 ATT&CK            OWASP   what
==================== ================= ======= ============================================
GIT-FORCE-PUSH       T1565.001         ASI02   ``--force``, ``-f``, ``+refspec``, ``--mirror``
                                               always; ``--force-with-lease`` /
                                               ``--force-if-includes`` only to a protected or
                                               unknown branch
BRANCH-PROTECTED     T1565.001         ASI02   push, commit, create, reset, rename, delete or
                                               ``update-ref`` of a protected branch
GIT-RESET-HARD       T1485             ASI02   ``reset --hard``
GIT-CLEAN-FORCE      T1485             ASI02   ``clean -f`` in any form (``-fdx``, ``-ff``),
                                               not a dry run
GIT-NO-VERIFY        T1562.001         ASI02   ``--no-verify`` anywhere, ``commit -n``
GIT-BRANCH-DELETE    T1485             ASI02   ``branch -d/-D``, ``push --delete``,
                                               ``push origin :x``, ``update-ref -d``
GIT-HISTORY-REWRITE  T1565.001 / T1490 ASI02   ``filter-branch``, ``filter-repo``, rebase of a
                                               protected branch, ``commit --amend`` or
                                               ``rebase`` with a force push in the same action;
                                               ``reflog expire/delete``, ``gc --prune=now``
                                               (T1490)
GIT-CONFIG-EXEC      T1059.004         ASI05   ``-c``/``--config-env``/``git config`` of
                                               ``core.*``, ``alias.*``, ``core.hooksPath``,
                                               filters, pagers, helpers…; ``--exec-path``,
                                               ``--upload-pack``/``--receive-pack``,
                                               ``rebase --exec``, ``bisect run``,
                                               ``submodule foreach``, ``difftool --extcmd``,
                                               ``ext::`` URLs
==================== ================= ======= ============================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from trackwrap.inspectors._shell import command_argvs, git_config_runs_code
from trackwrap.policy import Action, Context, Finding
from trackwrap.policy._glob import GlobSet

__all__ = ["DEFAULT_PROTECTED_BRANCHES", "GitInspector"]

#: Branches no agent may write to unless a policy says otherwise.
DEFAULT_PROTECTED_BRANCHES: tuple[str, ...] = ("main", "master", "release/*")

_FORCE_PUSH = ("GIT-FORCE-PUSH", "T1565.001", "ASI02")
_PROTECTED = ("BRANCH-PROTECTED", "T1565.001", "ASI02")
_RESET_HARD = ("GIT-RESET-HARD", "T1485", "ASI02")
_CLEAN_FORCE = ("GIT-CLEAN-FORCE", "T1485", "ASI02")
_NO_VERIFY = ("GIT-NO-VERIFY", "T1562.001", "ASI02")
_BRANCH_DELETE = ("GIT-BRANCH-DELETE", "T1485", "ASI02")
_REWRITE = ("GIT-HISTORY-REWRITE", "T1565.001", "ASI02")
_CONFIG_EXEC = ("GIT-CONFIG-EXEC", "T1059.004", "ASI05")

_GLOBAL_VALUES = frozenset(
    {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--config-env", "--super-prefix"}
)
#: Per subcommand: short options that take a value, long options that take a separate value.
_SUB_VALUES: dict[str, tuple[str, frozenset[str]]] = {
    "push": ("o", frozenset({"--repo", "--push-option", "--receive-pack", "--exec"})),
    "commit": (
        "mFCct",
        frozenset(
            {
                "--message",
                "--file",
                "--reuse-message",
                "--reedit-message",
                "--author",
                "--date",
                "--template",
                "--fixup",
                "--squash",
                "--cleanup",
                "--trailer",
                "--pathspec-from-file",
            }
        ),
    ),
    "branch": (
        "u",
        frozenset(
            {
                "--set-upstream-to",
                "--contains",
                "--no-contains",
                "--merged",
                "--no-merged",
                "--points-at",
                "--sort",
                "--format",
            }
        ),
    ),
    "checkout": ("bBc", frozenset({"--orphan", "--conflict"})),
    "switch": ("cC", frozenset({"--create", "--force-create", "--orphan"})),
    "rebase": ("xsX", frozenset({"--onto", "--exec", "--strategy", "--strategy-option"})),
    "reset": ("", frozenset({"--pathspec-from-file"})),
    "clean": ("e", frozenset({"--exclude"})),
    "config": ("f", frozenset({"--file", "--blob", "--type", "--default", "--comment"})),
    "update-ref": ("m", frozenset()),
    "difftool": ("xty", frozenset({"--extcmd", "--tool"})),
    "clone": ("cobu", frozenset({"--config", "--origin", "--branch", "--upload-pack"})),
}


@dataclass(frozen=True, slots=True)
class _Options:
    """A subcommand's options (name → values, a flag's value is ``""``) and positionals."""

    seen: Mapping[str, tuple[str, ...]]
    positionals: tuple[str, ...]
    dashdash: bool

    def has(self, *names: str) -> bool:
        return any(name in self.seen for name in names)

    def values(self, *names: str) -> tuple[str, ...]:
        return tuple(v for name in names for v in self.seen.get(name, ()))

    def count(self, name: str) -> int:
        return len(self.seen.get(name, ()))


def _options(sub: str, args: Sequence[str]) -> _Options:
    shorts, longs = _SUB_VALUES.get(sub, ("", frozenset()))
    seen: dict[str, list[str]] = {}
    positionals: list[str] = []
    dashdash = False
    index = 0
    while index < len(args):
        word = args[index]
        index += 1
        if word == "--":
            positionals.extend(args[index:])
            dashdash = True
            break
        if word.startswith("--"):
            name, sep, value = word.partition("=")
            if not sep and name in longs and index < len(args):
                value = args[index]
                index += 1
            seen.setdefault(name, []).append(value)
        elif word.startswith("-") and len(word) > 1:
            for position, letter in enumerate(word[1:], start=1):
                if letter in shorts:
                    value = word[position + 1 :]
                    if not value and index < len(args):
                        value = args[index]
                        index += 1
                    seen.setdefault("-" + letter, []).append(value)
                    break
                seen.setdefault("-" + letter, []).append("")
        else:
            positionals.append(word)
    return _Options(
        seen={k: tuple(v) for k, v in seen.items()},
        positionals=tuple(positionals),
        dashdash=dashdash,
    )


def _branch_name(ref: str) -> str | None:
    """The branch a ref names (``refs/heads/x`` → ``x``), ``None`` for tags and other refs."""
    if ref.startswith("refs/heads/"):
        return ref[len("refs/heads/") :]
    if ref.startswith("refs/"):
        return None
    return ref


@dataclass(slots=True)
class _State:
    inspector: GitInspector
    findings: list[Finding] = field(default_factory=list)
    current: str | None = None
    force_pushed: bool = False
    rewrote: str | None = None

    def add(self, rule: tuple[str, str, str], detail: str) -> None:
        finding = Finding(
            inspector=self.inspector.name,
            rule=rule[0],
            confidence=1.0,
            detail=detail,
            attack=rule[1],
            owasp=rule[2],
        )
        if finding not in self.findings:
            self.findings.append(finding)

    def protected(self, branch: str | None) -> bool:
        return branch is not None and self.inspector.is_protected(branch)


@dataclass(frozen=True, slots=True, kw_only=True)
class GitInspector:
    """Reports git writes to protected branches and destructive or hook-bypassing git use.

    ``protected`` are branch globs (``*`` matches across ``/``); a bad glob is a
    :class:`~trackwrap.errors.ProfileError` at construction.
    """

    name: str = "git"
    protected: tuple[str, ...] = DEFAULT_PROTECTED_BRANCHES
    _globs: GlobSet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_globs", GlobSet.compile(self.protected, where="git protected branches")
        )

    def is_protected(self, branch: str) -> bool:
        """Whether ``branch`` (already normalized) matches a protected glob exactly."""
        return self._globs.match(branch)

    def inspect(self, action: Action, context: Context) -> Sequence[Finding]:
        """Findings for the structured call and for every ``git`` command it runs."""
        del context
        state = _State(inspector=self)
        _structured(state, action)
        if action.commands or action.command_text:
            for argv in command_argvs(action):
                if argv and argv[0].rsplit("/", 1)[-1] == "git":
                    _git_command(state, argv)
        if state.force_pushed and state.rewrote is not None:
            state.add(
                _REWRITE,
                f"{state.rewrote} and a force push in the same call rewrite published history",
            )
        return tuple(state.findings)


def _structured(state: _State, action: Action) -> None:
    kind = action.kind
    args = action.arguments
    branches = list(action.branches)
    if not branches and action.tool in ("push_files", "create_or_update_file", "delete_file"):
        branch = args.get("branch")
        if isinstance(branch, str):
            branches.append(branch)
            kind = "git.push"
    if kind == "git.push" or kind.startswith("git.branch.") or kind == "git.commit":
        verb = {"git.push": "push to", "git.commit": "commit on"}.get(kind, "branch write to")
        for branch in branches:
            name = _branch_name(branch.removeprefix("+"))
            if state.protected(name):
                state.add(_PROTECTED, f"{action.tool}: {verb} protected branch {name}")
    if kind == "git.push" and args.get("force") is True:
        state.add(_FORCE_PUSH, f"{action.tool}: force push to {', '.join(branches) or '?'}")
    if kind.startswith("git.branch.delete"):
        state.add(_BRANCH_DELETE, f"{action.tool}: deletes branch {', '.join(branches)}")
    if kind == "git.reset" and (args.get("mode") == "hard" or args.get("hard") is True):
        state.add(_RESET_HARD, f"{action.tool}: hard reset discards uncommitted work")
    if args.get("no_verify") is True or args.get("noVerify") is True:
        state.add(_NO_VERIFY, f"{action.tool}: skips the repository's hooks")


def _git_command(state: _State, argv: tuple[str, ...]) -> None:
    index = 1
    while index < len(argv):
        word = argv[index]
        if word == "-c" and index + 1 < len(argv):
            _config_key(state, argv[index + 1].split("=", 1)[0], f"git -c {argv[index + 1]}")
        elif word == "--config-env" and index + 1 < len(argv):
            _config_key(state, argv[index + 1].split("=", 1)[0], f"git --config-env {word}")
        elif word.startswith("--config-env="):
            _config_key(state, word.split("=", 2)[1], f"git {word}")
        elif word.startswith("--exec-path="):
            state.add(_CONFIG_EXEC, f"git {word} runs git subcommands from another directory")
        if word in _GLOBAL_VALUES:
            index += 2
            continue
        if not word.startswith("-"):
            break
        index += 1
    if index >= len(argv):
        return
    sub = argv[index]
    args = argv[index + 1 :]
    shown = " ".join(argv)[:80]
    opts = _options(sub, args)
    if any(a.startswith("ext::") for a in opts.positionals):
        state.add(_CONFIG_EXEC, f"an ext:: URL runs a command: {shown}")
    if opts.has("--no-verify"):
        state.add(_NO_VERIFY, f"--no-verify skips the repository's hooks: {shown}")
    handler = _HANDLERS.get(sub)
    if handler is not None:
        handler(state, opts, shown)


def _config_key(state: _State, key: str, shown: str) -> None:
    if git_config_runs_code(key):
        state.add(_CONFIG_EXEC, f"{shown}: setting {key} can make git run a command")


def _push(state: _State, opts: _Options, shown: str) -> None:
    refspecs = opts.positionals[1:]
    force = opts.has("--force", "-f")
    lease = opts.has("--force-with-lease", "--force-if-includes")
    delete = opts.has("--delete", "-d")
    destinations: list[str | None] = []
    if opts.has("--all", "--branches", "--mirror"):
        destinations.append("(all branches)")
    for spec in refspecs:
        plus = spec.startswith("+")
        body = spec.removeprefix("+")
        src, colon, dst = body.partition(":")
        target = dst if colon else src
        if colon and not src:
            delete_target = _branch_name(dst)
            state.add(_BRANCH_DELETE, f"push of :{dst} deletes the remote branch: {shown}")
            destinations.append(delete_target)
            continue
        name = state.current if target == "HEAD" else _branch_name(target)
        destinations.append(name)
        if plus:
            state.add(_FORCE_PUSH, f"+{body} force-pushes {name or 'the current branch'}: {shown}")
            state.force_pushed = True
    if not refspecs and not opts.has("--all", "--branches", "--mirror"):
        destinations.append(state.current)
    if delete:
        state.add(_BRANCH_DELETE, f"push --delete removes remote branches: {shown}")
    if opts.has("--mirror"):
        state.add(_FORCE_PUSH, f"push --mirror force-updates and deletes remote refs: {shown}")
        state.force_pushed = True
    if force:
        state.add(_FORCE_PUSH, f"force push overwrites remote history: {shown}")
        state.force_pushed = True
    names = ["all branches" if d == "(all branches)" else d for d in destinations]
    risky = [d for d in destinations if d is None or d == "(all branches)" or state.protected(d)]
    if lease and not force and risky:
        where = ", ".join(n or "an unknown branch" for n in names if n in risky or n is None)
        state.add(_FORCE_PUSH, f"lease force push to {where or 'a protected branch'}: {shown}")
        state.force_pushed = True
    for dest in destinations:
        if dest == "(all branches)" or state.protected(dest):
            state.add(_PROTECTED, f"push to protected branch {dest}: {shown}")
    if opts.has("--receive-pack", "--exec"):
        state.add(_CONFIG_EXEC, f"push --receive-pack runs a command: {shown}")


def _commit(state: _State, opts: _Options, shown: str) -> None:
    if opts.has("-n"):
        state.add(_NO_VERIFY, f"commit -n skips the pre-commit and commit-msg hooks: {shown}")
    if opts.has("--amend"):
        state.rewrote = "commit --amend"
    if state.protected(state.current):
        state.add(_PROTECTED, f"commit on protected branch {state.current}: {shown}")


def _reset(state: _State, opts: _Options, shown: str) -> None:
    if opts.has("--hard"):
        state.add(_RESET_HARD, f"reset --hard discards uncommitted work: {shown}")
        if state.protected(state.current):
            state.add(_PROTECTED, f"reset of protected branch {state.current}: {shown}")


def _clean(state: _State, opts: _Options, shown: str) -> None:
    if opts.has("-n", "--dry-run"):
        return
    if opts.has("-f", "--force"):
        state.add(_CLEAN_FORCE, f"clean -f deletes untracked files for good: {shown}")


def _branch(state: _State, opts: _Options, shown: str) -> None:
    names = opts.positionals
    if opts.has("-d", "-D", "--delete"):
        for name in names:
            state.add(_BRANCH_DELETE, f"branch delete of {name}: {shown}")
            if state.protected(name):
                state.add(_PROTECTED, f"delete of protected branch {name}: {shown}")
        return
    if opts.has("-m", "-M", "--move", "-c", "-C", "--copy"):
        moved: list[str | None] = list(names) if len(names) > 1 else [state.current, *names]
        for moved_name in moved:
            if state.protected(moved_name):
                state.add(_PROTECTED, f"rename or copy of protected branch {moved_name}: {shown}")
        return
    listing = opts.has(
        "--list",
        "-l",
        "-a",
        "--all",
        "-r",
        "--remotes",
        "-v",
        "--verbose",
        "--show-current",
        "--contains",
        "--merged",
        "--no-merged",
        "--points-at",
        "-u",
        "--set-upstream-to",
        "--unset-upstream",
        "--edit-description",
    )
    if names and not listing and state.protected(names[0]):
        verb = "force reset" if opts.has("-f", "--force") else "create"
        state.add(_PROTECTED, f"{verb} of protected branch {names[0]}: {shown}")


def _checkout(state: _State, opts: _Options, shown: str) -> None:
    created = opts.values("-b", "-B", "-c", "-C", "--create", "--force-create", "--orphan")
    for name in created:
        if state.protected(name):
            state.add(_PROTECTED, f"create or reset of protected branch {name}: {shown}")
    if created:
        state.current = created[-1]
        return
    if opts.has("--detach") or opts.dashdash:
        state.current = None
        return
    if len(opts.positionals) == 1:
        target = opts.positionals[0]
        state.current = None if target == "-" else _branch_name(target)


def _rebase(state: _State, opts: _Options, shown: str) -> None:
    if opts.has("-x", "--exec"):
        state.add(_CONFIG_EXEC, f"rebase --exec runs a shell command per commit: {shown}")
    if opts.has("--continue", "--abort", "--skip", "--quit"):
        return
    if len(opts.positionals) > 1:
        state.current = _branch_name(opts.positionals[1])
    state.rewrote = "rebase"
    if state.protected(state.current):
        state.add(_REWRITE, f"rebase rewrites protected branch {state.current}: {shown}")


def _filter(state: _State, opts: _Options, shown: str) -> None:
    del opts
    state.add(_REWRITE, f"rewrites the whole history: {shown}")


def _reflog(state: _State, opts: _Options, shown: str) -> None:
    if opts.positionals[:1] in (("expire",), ("delete",)):
        state.add(
            ("GIT-HISTORY-REWRITE", "T1490", "ASI02"),
            f"reflog {opts.positionals[0]} removes the way back to lost commits: {shown}",
        )


def _gc(state: _State, opts: _Options, shown: str) -> None:
    if any(v in ("now", "all") for v in opts.values("--prune")):
        state.add(
            ("GIT-HISTORY-REWRITE", "T1490", "ASI02"),
            f"gc --prune=now deletes unreachable commits for good: {shown}",
        )


def _update_ref(state: _State, opts: _Options, shown: str) -> None:
    if not opts.positionals:
        return
    name = _branch_name(opts.positionals[0])
    if opts.has("-d"):
        state.add(_BRANCH_DELETE, f"update-ref -d deletes {opts.positionals[0]}: {shown}")
    if state.protected(name):
        state.add(_PROTECTED, f"update-ref writes protected branch {name}: {shown}")


def _config(state: _State, opts: _Options, shown: str) -> None:
    words = list(opts.positionals)
    reading = opts.has(
        "--get",
        "--get-all",
        "--get-regexp",
        "-l",
        "--list",
        "--unset",
        "--unset-all",
        "-e",
        "--edit",
        "--get-urlmatch",
        "--remove-section",
        "--rename-section",
    )
    if words[:1] in (["set"], ["get"], ["unset"], ["list"], ["edit"]):
        reading = reading or words[0] != "set"
        words = words[1:]
    if not reading and len(words) >= 2:
        _config_key(state, words[0], shown)


def _clone(state: _State, opts: _Options, shown: str) -> None:
    for item in opts.values("-c", "--config"):
        _config_key(state, item.split("=", 1)[0], shown)
    if opts.has("-u", "--upload-pack"):
        state.add(_CONFIG_EXEC, f"--upload-pack runs a command: {shown}")


def _upload_pack(state: _State, opts: _Options, shown: str) -> None:
    if opts.has("--upload-pack", "--exec"):
        state.add(_CONFIG_EXEC, f"--upload-pack/--exec runs a command: {shown}")


def _runs(state: _State, opts: _Options, shown: str) -> None:
    if opts.positionals[:1] in (("run",), ("foreach",)):
        state.add(_CONFIG_EXEC, f"{opts.positionals[0]} runs a shell command: {shown}")


def _difftool(state: _State, opts: _Options, shown: str) -> None:
    if opts.has("-x", "--extcmd"):
        state.add(_CONFIG_EXEC, f"difftool --extcmd runs a command: {shown}")


_HANDLERS = {
    "push": _push,
    "commit": _commit,
    "reset": _reset,
    "clean": _clean,
    "branch": _branch,
    "checkout": _checkout,
    "switch": _checkout,
    "rebase": _rebase,
    "filter-branch": _filter,
    "filter-repo": _filter,
    "reflog": _reflog,
    "gc": _gc,
    "update-ref": _update_ref,
    "config": _config,
    "clone": _clone,
    "fetch": _upload_pack,
    "pull": _upload_pack,
    "ls-remote": _upload_pack,
    "archive": _upload_pack,
    "bisect": _runs,
    "submodule": _runs,
    "difftool": _difftool,
}
