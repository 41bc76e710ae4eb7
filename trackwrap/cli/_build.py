"""Builds the pipeline and its context the same way for the relay and for ``trackwrap check``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from trackwrap.config import (
    RealFileSystem,
    StagedReader,
    default_profiles_dir,
    load_policy,
    load_server_profiles,
)
from trackwrap.errors import ConfigError
from trackwrap.inspectors import default_inspectors
from trackwrap.policy import Context, Inspector, Mode, Pipeline, Policy, ServerProfile

__all__ = ["Governance", "build_governance", "context_factory"]

MODES = ("enforce", "monitor")


@dataclass(frozen=True, slots=True)
class Governance:
    pipeline: Pipeline
    policy: Policy
    profiles: Mapping[str, ServerProfile]
    inspectors: tuple[Inspector, ...]


def build_governance(
    *,
    policy_paths: Sequence[Path] = (),
    profile_dirs: Sequence[Path] = (),
    mode: str | None = None,
) -> Governance:
    """Load server profiles and policy (shipped defaults unless paths are given); any problem
    is a ``ProfileError`` here, before anything runs."""
    base = default_profiles_dir()
    profiles = load_server_profiles([base / "servers", *profile_dirs])
    policy = load_policy(list(policy_paths) or [base / "policy"])
    if mode is not None:
        if mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
        policy = policy.with_mode(Mode(mode))
    inspectors = default_inspectors(read_staged=StagedReader())
    pipeline = Pipeline(profiles=profiles, policy=policy, inspectors=inspectors)
    return Governance(pipeline=pipeline, policy=policy, profiles=profiles, inspectors=inspectors)


def context_factory(
    *, workspace: str, roots: Sequence[str] = (), clock: Callable[[], datetime] | None = None
) -> Callable[[], Context]:
    fs = RealFileSystem()
    cwd = os.getcwd()
    home = os.path.expanduser("~")
    now = clock or (lambda: datetime.now(UTC))

    def make() -> Context:
        return Context(
            workspace=workspace, roots=tuple(roots), cwd=cwd, home=home, now=now(), fs=fs
        )

    return make
