"""Reading server profiles and policy files from disk."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import trackwrap
from trackwrap.config._yaml import load_yaml
from trackwrap.errors import ConfigError, ProfileError
from trackwrap.policy import Policy, ServerProfile

__all__ = [
    "default_profiles_dir",
    "infer_server_name",
    "load_policy",
    "load_server_profiles",
]

#: Launchers whose own name says nothing about the server they start.
_LAUNCHERS = frozenset(
    {
        "npx",
        "npm",
        "pnpm",
        "pnpx",
        "yarn",
        "bunx",
        "bun",
        "deno",
        "node",
        "uvx",
        "uv",
        "pipx",
        "python",
        "python3",
        "exec",
        "run",
        "tool",
        "dlx",
    }
)
_VERSION_SUFFIX = re.compile(r"(?<=.)@[^/@]*\Z")
_SCRIPT_SUFFIX = re.compile(r"\.(?:js|mjs|cjs|ts|py|exe|cmd|bat)\Z")


def default_profiles_dir() -> Path:
    """The shipped profiles: inside the installed package, else the repository's ``profiles/``."""
    packaged = Path(trackwrap.__file__).parent / "_profiles"
    if packaged.is_dir():
        return packaged
    return Path(trackwrap.__file__).parent.parent / "profiles"


def load_server_profiles(dirs: Sequence[Path]) -> dict[str, ServerProfile]:
    """Every ``*.yaml`` profile in ``dirs``; a later directory overrides a same-named profile.

    Each directory may be the profiles root (its ``servers/`` subdirectory is used) or the
    servers directory itself. Two profiles with one name in the same directory are an error.
    """
    profiles: dict[str, ServerProfile] = {}
    for directory in dirs:
        servers = directory / "servers" if (directory / "servers").is_dir() else directory
        if not servers.is_dir():
            raise ProfileError(f"{servers}: not a directory of server profiles")
        seen: dict[str, Path] = {}
        for path in _yaml_files(servers):
            profile = ServerProfile.from_mapping(load_yaml(path), source=str(path))
            if profile.name in seen:
                raise ProfileError(
                    f"{path}: server {profile.name} is also defined in {seen[profile.name]}"
                )
            seen[profile.name] = path
            profiles[profile.name] = profile
    return profiles


def load_policy(paths: Sequence[Path]) -> Policy:
    """One policy from files and directories of ``*.yaml`` (in sorted order), merged.

    Nothing to load is a :class:`ProfileError`: an empty policy must not silently decide.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(_yaml_files(path))
        elif path.is_file():
            files.append(path)
        else:
            raise ProfileError(f"{path}: no such policy file or directory")
    if not files:
        shown = ", ".join(str(path) for path in paths) or "(none given)"
        raise ProfileError(f"no policy rules found in {shown}")
    return Policy.merged([Policy.from_mapping(load_yaml(f), source=str(f)) for f in files])


def infer_server_name(argv: Sequence[str], profiles: Mapping[str, ServerProfile]) -> str:
    """The profile name for an upstream command line, else a name from its package/executable.

    A profile matches when one of its ``match`` substrings occurs in an argv element; when
    several do, the longest matching substring wins (``server-github`` over ``server-git``),
    then the first profile. Otherwise: the basename of the first argument that is not a
    launcher (``npx``, ``uvx``, ``python -m`` …) or an option, without a version suffix.
    """
    if not argv:
        raise ConfigError("no upstream command given")
    best: tuple[int, str] | None = None
    for name, profile in profiles.items():
        for needle in profile.match:
            if any(needle in arg for arg in argv) and (best is None or len(needle) > best[0]):
                best = (len(needle), name)
    if best is not None:
        return best[1]
    return _basename_of_command(argv)


def _basename_of_command(argv: Sequence[str]) -> str:
    candidates = [arg for arg in argv if arg and not arg.startswith("-")]
    for arg in candidates:
        base = posixpath.basename(arg.replace("\\", "/").rstrip("/"))
        if base.lower() in _LAUNCHERS or re.fullmatch(r"python3(?:\.\d+)?", base):
            continue
        name = _SCRIPT_SUFFIX.sub("", _VERSION_SUFFIX.sub("", arg)).rstrip("/")
        name = posixpath.basename(name.replace("\\", "/"))
        if name:
            return name
    return posixpath.basename(argv[0].replace("\\", "/")) or "server"


def _yaml_files(directory: Path) -> list[Path]:
    return sorted(
        path for path in directory.iterdir() if path.suffix in (".yaml", ".yml") and path.is_file()
    )
