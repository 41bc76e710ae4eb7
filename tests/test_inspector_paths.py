"""Path scope inspector: real directories, real symlinks, the real filesystem view."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from trackwrap.config import RealFileSystem
from trackwrap.inspectors import PathScopeInspector, default_inspectors
from trackwrap.policy import PATH_SCOPE_RULE, Action, Context, Finding, PathArg


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    root = Path(os.path.realpath(tmp_path))
    home = root / "home" / "u"
    workspace = home / "code" / "payments"
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "app.py").write_text("x = 1\n")
    (workspace / ".git" / "hooks").mkdir(parents=True)
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text("[default]\n")
    (root / "outside").mkdir()
    (root / "outside" / "secret.txt").write_text("s\n")
    evil = home / "code" / "payments-evil"
    evil.mkdir()
    return {"root": root, "home": home, "workspace": workspace, "outside": root / "outside"}


def context(layout: dict[str, Path], *, cwd: Path | None = None) -> Context:
    return Context(
        workspace=str(layout["workspace"]),
        roots=(str(layout["workspace"]),),
        cwd=str(cwd or layout["workspace"]),
        home=str(layout["home"]),
        now=datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        fs=RealFileSystem(),
    )


def action(*paths: PathArg) -> Action:
    return Action(
        server="filesystem",
        tool="t",
        kind="filesystem.read",
        arguments={},
        paths=paths,
        commands=(),
        command_text=(),
        branches=(),
        urls=(),
        destinations=(),
        action_hash="sha256:0",
    )


def read(value: str, *, name: str = "path", base: str | None = None) -> PathArg:
    return PathArg(name=name, value=value, write=False, base=base)


def write(value: str, *, name: str = "path") -> PathArg:
    return PathArg(name=name, value=value, write=True, base=None)


def inspect(layout: dict[str, Path], *paths: PathArg) -> tuple[Finding, ...]:
    return tuple(PathScopeInspector().inspect(action(*paths), context(layout)))


def test_inside_workspace_absolute_and_relative(layout: dict[str, Path]) -> None:
    assert inspect(layout, read(str(layout["workspace"] / "src" / "app.py"))) == ()
    assert inspect(layout, read("src/app.py"), read("./src/../src/new.py"), read(".")) == ()


def test_dotdot_escape(layout: dict[str, Path]) -> None:
    (finding,) = inspect(layout, read("../../../../outside/secret.txt"))
    assert finding == Finding(
        inspector="paths",
        rule=PATH_SCOPE_RULE,
        confidence=1.0,
        detail=f"outside workspace: {layout['outside'] / 'secret.txt'} is not under "
        f"{layout['workspace']}",
        attack="T1083",
        owasp="ASI02",
    )


def test_home_credentials_get_their_own_detail(layout: dict[str, Path]) -> None:
    (finding,) = inspect(layout, read("~/.aws/credentials"))
    assert finding.attack == "T1552.001"
    assert finding.detail == (
        f"credential store: {layout['home'] / '.aws' / 'credentials'} is inside ~/.aws (path)"
    )


@pytest.mark.parametrize(
    "relative",
    [
        ".ssh/id_rsa",
        ".ssh",
        ".config/gcloud/credentials.db",
        ".docker/config.json",
        ".npmrc",
        ".netrc",
        ".kube/config",
    ],
)
def test_each_credential_store(layout: dict[str, Path], relative: str) -> None:
    (finding,) = inspect(layout, read(f"~/{relative}"))
    assert finding.attack == "T1552.001"


def test_symlink_inside_workspace_pointing_out(layout: dict[str, Path]) -> None:
    link = layout["workspace"] / "innocent"
    link.symlink_to(layout["outside"] / "secret.txt")
    (finding,) = inspect(layout, read("innocent"))
    assert "resolves to" in finding.detail
    assert finding.detail.startswith("outside workspace: ")


def test_new_file_under_symlinked_dir_pointing_out(layout: dict[str, Path]) -> None:
    (layout["workspace"] / "out").symlink_to(layout["outside"])
    (finding,) = inspect(layout, write("out/not-yet/created.txt"))
    assert str(layout["outside"] / "not-yet" / "created.txt") in finding.detail


def test_symlink_within_workspace_is_fine(layout: dict[str, Path]) -> None:
    (layout["workspace"] / "alias").symlink_to(layout["workspace"] / "src")
    assert inspect(layout, read("alias/app.py")) == ()


def test_workspace_reached_through_symlink(layout: dict[str, Path]) -> None:
    link = layout["root"] / "ws-link"
    link.symlink_to(layout["workspace"])
    ctx = context(layout)
    ctx = Context(
        workspace=str(link), roots=(), cwd=str(link), home=ctx.home, now=ctx.now, fs=ctx.fs
    )
    found = PathScopeInspector().inspect(
        action(read(str(layout["workspace"] / "src" / "app.py")), read("src/app.py")), ctx
    )
    assert tuple(found) == ()


def test_prefix_collision_is_outside(layout: dict[str, Path]) -> None:
    (finding,) = inspect(layout, read(str(layout["workspace"]) + "-evil/x"))
    assert finding.detail.startswith("outside workspace: ")


@pytest.mark.parametrize("value", ["src/app.py\x00.txt", "src/\napp.py", "src/\u200bapp.py"])
def test_nul_and_control_characters(layout: dict[str, Path], value: str) -> None:
    (finding,) = inspect(layout, read(value))
    assert finding.rule == PATH_SCOPE_RULE
    assert finding.attack == "T1036"


def test_fullwidth_dots(layout: dict[str, Path]) -> None:
    (finding,) = inspect(layout, read("\uff0e\uff0e\uff0foutside"))
    assert "look-alike" in finding.detail


@pytest.mark.parametrize(
    "value",
    [
        "/proc/self/root/etc/passwd",
        "/proc/1/cwd",
        "/proc/self",
        "/dev/fd/3",
        "/proc/thread-self/environ",
        "/proc/42/environ",
    ],
)
def test_process_indirection(layout: dict[str, Path], value: str) -> None:
    (finding,) = inspect(layout, read(value))
    assert finding.detail.startswith("process indirection: ")


def test_relative_path_into_proc_from_cwd(layout: dict[str, Path]) -> None:
    found = PathScopeInspector().inspect(
        action(read("self/root/etc/passwd")), context(layout, cwd=Path("/proc"))
    )
    assert [f.detail.split(":")[0] for f in found] == ["process indirection"]


@pytest.mark.parametrize(
    ("value", "attack"),
    [
        ("\\\\server\\share\\x", "T1187"),
        ("C:\\x", "T1083"),
        ("C:foo", "T1083"),
        ("//?/C:/x", "T1187"),
    ],
)
def test_windows_forms_on_posix(layout: dict[str, Path], value: str, attack: str) -> None:
    (finding,) = inspect(layout, read(value))
    assert finding.attack == attack


@pytest.mark.parametrize(
    "relative",
    [
        ".git/hooks/pre-commit",
        ".git/config",
        ".trackwrap/policy.yaml",
        ".vscode/settings.json",
        ".claude/settings.json",
        ".cursor/mcp.json",
        ".mcp.json",
    ],
)
def test_write_to_protected_paths(layout: dict[str, Path], relative: str) -> None:
    (finding,) = inspect(layout, write(relative))
    assert finding.detail.startswith(f"protected path: write to {relative} ")
    assert finding.owasp == "ASI05"


def test_read_of_protected_paths_is_fine(layout: dict[str, Path]) -> None:
    assert inspect(layout, read(".git/hooks/pre-commit"), read(".git/HEAD")) == ()
    assert inspect(layout, write(".github/workflows/ci.yml"), write(".gitignore")) == ()


def test_one_bad_element_of_a_list(layout: dict[str, Path]) -> None:
    found = inspect(
        layout, read("src/app.py", name="paths[0]"), read("/etc/passwd", name="paths[1]")
    )
    assert len(found) == 1
    assert "/etc/passwd" in found[0].detail


def test_relative_to_base_argument(layout: dict[str, Path]) -> None:
    base = str(layout["workspace"])
    assert inspect(layout, read("src/app.py", name="files[0]", base=base)) == ()
    (finding,) = inspect(layout, read("../payments-evil/x", name="files[0]", base=base))
    assert finding.detail.startswith("outside workspace: ")


def test_home_tilde_variants(layout: dict[str, Path]) -> None:
    # `~user` is a literal relative name for the servers, so it stays in the workspace.
    assert inspect(layout, read("~other/x")) == ()
    (finding,) = inspect(layout, read("~"))
    assert finding.detail.startswith("outside workspace: ")


def test_default_inspectors() -> None:
    paths, secrets, shell, git = default_inspectors()
    assert isinstance(paths, PathScopeInspector)
    assert [i.name for i in (paths, secrets, shell, git)] == ["paths", "secrets", "shell", "git"]
