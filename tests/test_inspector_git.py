"""Git inspector: structured git tools and git command lines against protected branches."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from trackwrap.errors import ProfileError
from trackwrap.inspectors._git import DEFAULT_PROTECTED_BRANCHES, GitInspector
from trackwrap.policy import Action, Context


class IdentityFS:
    def realpath(self, path: str) -> str:
        return path


CONTEXT = Context(
    workspace="/ws",
    roots=("/ws",),
    cwd="/ws",
    home="/home/u",
    now=datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
    fs=IdentityFS(),
)


def shell(text: str) -> Action:
    return Action(
        server="shell",
        tool="run",
        kind="shell.exec",
        arguments={},
        paths=(),
        commands=(),
        command_text=(text,),
        branches=(),
        urls=(),
        destinations=(),
        action_hash="sha256:0",
    )


def tool(
    kind: str,
    *,
    tool_name: str = "t",
    branches: tuple[str, ...] = (),
    arguments: Mapping[str, object] | None = None,
) -> Action:
    return Action(
        server="git",
        tool=tool_name,
        kind=kind,
        arguments=arguments or {},
        paths=(),
        commands=(),
        command_text=(),
        branches=branches,
        urls=(),
        destinations=(),
        action_hash="sha256:0",
    )


def rules(action: Action, inspector: GitInspector | None = None) -> set[str]:
    return {f.rule for f in (inspector or GitInspector()).inspect(action, CONTEXT)}


ATTACKS = [
    ("git push --force origin feature/x", "GIT-FORCE-PUSH"),
    ("git push -f", "GIT-FORCE-PUSH"),
    ("git push -fu origin x", "GIT-FORCE-PUSH"),
    ("git push origin +feature/x", "GIT-FORCE-PUSH"),
    ("git push --mirror origin", "GIT-FORCE-PUSH"),
    ("git push --force-with-lease origin main", "GIT-FORCE-PUSH"),
    ("git push --force-with-lease=main:abc origin main", "GIT-FORCE-PUSH"),
    ("git push --force-with-lease origin release/2.0", "GIT-FORCE-PUSH"),
    ("git push --force-with-lease", "GIT-FORCE-PUSH"),
    ("git push origin main", "BRANCH-PROTECTED"),
    ("git push origin HEAD:refs/heads/main", "BRANCH-PROTECTED"),
    ("git push origin refs/heads/master", "BRANCH-PROTECTED"),
    ("git push origin release/1.2", "BRANCH-PROTECTED"),
    ("git push --all origin", "BRANCH-PROTECTED"),
    ("git checkout main && git commit -m x", "BRANCH-PROTECTED"),
    ("git switch master; git push", "BRANCH-PROTECTED"),
    ("git checkout main && git push origin HEAD", "BRANCH-PROTECTED"),
    ("git branch -f main HEAD~3", "BRANCH-PROTECTED"),
    ("git checkout -B main", "BRANCH-PROTECTED"),
    ("git branch -m main old-main", "BRANCH-PROTECTED"),
    ("git update-ref refs/heads/main abc123", "BRANCH-PROTECTED"),
    ("git reset --hard HEAD~1", "GIT-RESET-HARD"),
    ("git reset --hard origin/main", "GIT-RESET-HARD"),
    ("git clean -fdx", "GIT-CLEAN-FORCE"),
    ("git clean -ff", "GIT-CLEAN-FORCE"),
    ("git clean --force -d", "GIT-CLEAN-FORCE"),
    ("git commit --no-verify -m x", "GIT-NO-VERIFY"),
    ("git commit -n -m x", "GIT-NO-VERIFY"),
    ("git commit -anm x", "GIT-NO-VERIFY"),
    ("git push --no-verify origin feature/x", "GIT-NO-VERIFY"),
    ("git branch -D feature/old", "GIT-BRANCH-DELETE"),
    ("git branch -d x", "GIT-BRANCH-DELETE"),
    ("git push origin --delete feature/x", "GIT-BRANCH-DELETE"),
    ("git push origin :feature/x", "GIT-BRANCH-DELETE"),
    ("git update-ref -d refs/heads/x", "GIT-BRANCH-DELETE"),
    ("git filter-branch --tree-filter 'rm -f x' HEAD", "GIT-HISTORY-REWRITE"),
    ("git filter-repo --path secrets --invert-paths", "GIT-HISTORY-REWRITE"),
    ("git commit --amend --no-edit && git push -f", "GIT-HISTORY-REWRITE"),
    ("git rebase -i HEAD~3 && git push --force-with-lease", "GIT-HISTORY-REWRITE"),
    ("git checkout main && git rebase feature", "GIT-HISTORY-REWRITE"),
    ("git rebase origin/x main", "GIT-HISTORY-REWRITE"),
    ("git reflog expire --expire=now --all", "GIT-HISTORY-REWRITE"),
    ("git gc --prune=now", "GIT-HISTORY-REWRITE"),
    ("git -c core.hooksPath=/dev/null commit -m x", "GIT-CONFIG-EXEC"),
    ("git -c core.pager='sh -c id' log", "GIT-CONFIG-EXEC"),
    ("git -c alias.st='!sh -c id' st", "GIT-CONFIG-EXEC"),
    ("git -c CORE.SSHCOMMAND=x fetch", "GIT-CONFIG-EXEC"),
    ("git config core.hooksPath .evil-hooks", "GIT-CONFIG-EXEC"),
    ("git config --global alias.x '!sh'", "GIT-CONFIG-EXEC"),
    ("git config set core.fsmonitor ./x", "GIT-CONFIG-EXEC"),
    ("git --config-env=core.pager=EVIL log", "GIT-CONFIG-EXEC"),
    ("git rebase --exec 'make' main", "GIT-CONFIG-EXEC"),
    ("git bisect run ./x.sh", "GIT-CONFIG-EXEC"),
    ("git submodule foreach 'rm -rf .'", "GIT-CONFIG-EXEC"),
    ("git clone -c core.hooksPath=/tmp/h https://x/r.git", "GIT-CONFIG-EXEC"),
    ("git fetch --upload-pack='sh -c id' origin", "GIT-CONFIG-EXEC"),
    ("git clone ext::'sh -c id'", "GIT-CONFIG-EXEC"),
    # through shells and wrappers
    ("sh -c 'git push -f origin main'", "GIT-FORCE-PUSH"),
    ("timeout 30 git push origin main", "BRANCH-PROTECTED"),
    ("/usr/bin/git reset --hard", "GIT-RESET-HARD"),
    ("cd x && git clean -fdx", "GIT-CLEAN-FORCE"),
]

BENIGN = [
    "git push --force-with-lease origin feature/x",
    "git push --force-with-lease origin fix/y",
    "git push origin feature/x",
    "git push origin main-feature",
    "git push origin feature/main",
    "git push origin mainline",
    "git push -u origin feature/x",
    "git push origin v1.0",
    "git push origin refs/tags/main",
    "git commit -m 'docs: explain --force and --no-verify'",
    "git commit -m '-n is not a flag here' -a",
    "git commit -F msg.txt",
    "git commit --amend --no-edit",
    "git rebase main",
    "git rebase -i HEAD~3",
    "git checkout main",
    "git checkout main && git pull",
    "git checkout -b feature/y && git commit -m x && git push origin HEAD",
    "git switch -c fix/z",
    "git branch feature/new",
    "git branch -a",
    "git branch --list 'main'",
    "git branch -u origin/main",
    "git reset --soft HEAD~1",
    "git reset HEAD file.txt",
    "git clean -n",
    "git clean -nfd",
    "git config user.name Bot",
    "git config --get core.hooksPath",
    "git -c user.name=x commit -m y",
    "git log --oneline -n 5",
    "git status",
    "git diff HEAD~1",
    "git stash",
    "echo git push --force origin main",
]


@pytest.mark.parametrize(("text", "rule"), ATTACKS, ids=[a[0][:50] for a in ATTACKS])
def test_attack_is_reported(text: str, rule: str) -> None:
    assert rule in rules(shell(text))


@pytest.mark.parametrize("text", BENIGN)
def test_benign_look_alike_is_clean(text: str) -> None:
    assert rules(shell(text)) == set()


def test_ids_and_details() -> None:
    findings = GitInspector().inspect(shell("git push --force origin main"), CONTEXT)
    by_rule = {f.rule: f for f in findings}
    assert set(by_rule) == {"GIT-FORCE-PUSH", "BRANCH-PROTECTED"}
    assert by_rule["GIT-FORCE-PUSH"].attack == "T1565.001"
    assert by_rule["GIT-FORCE-PUSH"].owasp == "ASI02"
    assert by_rule["BRANCH-PROTECTED"].detail.startswith("push to protected branch main")
    assert all(f.inspector == "git" and f.confidence == 1.0 for f in findings)
    (reset,) = GitInspector().inspect(shell("git reset --hard"), CONTEXT)
    assert (reset.attack, reset.owasp) == ("T1485", "ASI02")
    (config,) = GitInspector().inspect(shell("git -c core.pager=x log"), CONTEXT)
    assert (config.attack, config.owasp) == ("T1059.004", "ASI05")
    (reflog,) = GitInspector().inspect(shell("git reflog expire --all"), CONTEXT)
    assert reflog.attack == "T1490"


def test_argv_form() -> None:
    action = Action(
        server="shell",
        tool="run",
        kind="shell.exec",
        arguments={},
        paths=(),
        commands=(("git", "push", "--force", "origin", "feature/x"),),
        command_text=(),
        branches=(),
        urls=(),
        destinations=(),
        action_hash="sha256:0",
    )
    assert rules(action) == {"GIT-FORCE-PUSH"}


# structured tools


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (tool("git.push", tool_name="push_files", branches=("main",)), {"BRANCH-PROTECTED"}),
        (
            tool("git.push", tool_name="create_or_update_file", branches=("refs/heads/master",)),
            {"BRANCH-PROTECTED"},
        ),
        (tool("git.push", tool_name="push_files", branches=("feature/x",)), set()),
        (
            tool("git.push", branches=("feature/x",), arguments={"force": True}),
            {"GIT-FORCE-PUSH"},
        ),
        (tool("git.branch.create", branches=("release/3.0",)), {"BRANCH-PROTECTED"}),
        (tool("git.branch.create", branches=("release",)), set()),
        (tool("git.branch.create", branches=("feature/main",)), set()),
        (tool("git.checkout", branches=("main",)), set()),
        (tool("git.commit", branches=("main",)), {"BRANCH-PROTECTED"}),
        (tool("git.commit", arguments={"no_verify": True}), {"GIT-NO-VERIFY"}),
        (tool("git.reset"), set()),
        (tool("git.reset", arguments={"mode": "hard"}), {"GIT-RESET-HARD"}),
        (
            tool("github.push_files", tool_name="push_files", arguments={"branch": "main"}),
            {"BRANCH-PROTECTED"},
        ),
        (tool("git.read"), set()),
    ],
)
def test_structured(action: Action, expected: set[str]) -> None:
    assert rules(action) == expected


def test_protected_list_is_a_parameter() -> None:
    custom = GitInspector(protected=("trunk", "prod/*"))
    assert rules(shell("git push origin trunk"), custom) == {"BRANCH-PROTECTED"}
    assert rules(shell("git push origin prod/eu/1"), custom) == {"BRANCH-PROTECTED"}
    assert rules(shell("git push origin main"), custom) == set()
    assert rules(shell("git push --force-with-lease origin trunk"), custom) == {
        "GIT-FORCE-PUSH",
        "BRANCH-PROTECTED",
    }
    assert GitInspector().protected == DEFAULT_PROTECTED_BRANCHES


def test_protected_matches_exactly_never_by_substring() -> None:
    inspector = GitInspector()
    assert inspector.is_protected("main")
    assert inspector.is_protected("release/1.0")
    for name in ("main2", "xmain", "feature/main", "release", "releases/1", "Main"):
        assert not inspector.is_protected(name)


def test_bad_glob_is_rejected() -> None:
    with pytest.raises(ProfileError):
        GitInspector(protected=("release/[",))
