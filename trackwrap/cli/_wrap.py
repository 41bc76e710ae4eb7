"""``trackwrap [options] -- <upstream command…>``: the governed relay.

This path is kept light: no typer, no rich, no MCP SDK. Key material is loaded only when the
first seal is written.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import anyio

from trackwrap import __version__
from trackwrap.cli._build import build_governance, context_factory, resolve_workspace
from trackwrap.cli._settings import load_settings
from trackwrap.config import infer_server_name
from trackwrap.crypto import KeyStore
from trackwrap.errors import ConfigError
from trackwrap.ledger import Ledger
from trackwrap.relay import (
    DEFAULT_MAX_LINE,
    Relay,
    RelayOptions,
    StderrSink,
    child_environment,
    make_pollable,
    resolve_command,
    spawn_child,
)
from trackwrap.session import Governor, implicit_session_id, new_trace_id

__all__ = ["WRAP_USAGE", "run_wrapper"]

WRAP_USAGE = "trackwrap [--server NAME] [--workspace DIR] [options] -- <upstream command…>"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{message} (usage: {WRAP_USAGE})")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="trackwrap", usage=WRAP_USAGE, add_help=False)
    p.add_argument("--server", help="name of the upstream server's profile")
    p.add_argument("--workspace", help="directory the agent may work in (default: cwd)")
    p.add_argument("--policy", action="append", default=[], type=Path)
    p.add_argument("--profiles", action="append", default=[], type=Path)
    p.add_argument("--mode", choices=("enforce", "monitor"))
    p.add_argument("--session")
    p.add_argument("--env-allow", action="append", default=[])
    p.add_argument("--env-deny", action="append", default=[])
    p.add_argument("--max-line-bytes", type=int, default=DEFAULT_MAX_LINE)
    p.add_argument("--seal-interval", type=float, default=60.0)
    p.add_argument("--grace", type=float, default=2.0)
    return p


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def run_wrapper(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    split = list(argv).index("--")
    opts = _parser().parse_args(list(argv[:split]))
    command = list(argv[split + 1 :])
    if opts.max_line_bytes < 1024:
        raise ConfigError("--max-line-bytes must be at least 1024")
    settings = load_settings(env)
    governance = build_governance(
        policy_paths=opts.policy, profile_dirs=opts.profiles, mode=opts.mode
    )
    exe_argv = resolve_command(command, path=env.get("PATH"))
    server = opts.server or infer_server_name(command, governance.profiles)
    workspace = resolve_workspace(opts.workspace)
    session = (
        opts.session
        or settings.session
        or implicit_session_id(workspace, now=datetime.now(UTC))
    )
    sink = StderrSink()
    keys = KeyStore(settings.home, backend=settings.key_backend, warn=sink.say)
    ledger = Ledger.open(settings.ledger_path, signer=keys.device_key, clock_ms=_now_ms)
    try:
        ledger.ensure_session(
            session,
            genesis={
                "implicit": not (opts.session or settings.session),
                "workspace": workspace,
                "trackwrap": __version__,
                "user": env.get("USER") or env.get("USERNAME") or "",
            },
        )
    except BaseException:
        ledger.close()
        raise
    governor = Governor(
        pipeline=governance.pipeline,
        ledger=ledger,
        session=session,
        server=server,
        context=context_factory(workspace=workspace),
        policy_hash=governance.policy.policy_hash,
        mode=governance.policy.mode.value,
        sink=sink,
        new_trace=new_trace_id,
        seal_interval_s=opts.seal_interval,
    )
    try:
        child = spawn_child(
            exe_argv,
            env=child_environment(env, allow=opts.env_allow, deny=opts.env_deny),
            cwd=None,
        )
    except BaseException:
        governor.close()
        raise
    saved = {fd: make_pollable(fd) for fd in (0, 1, 2)}
    relay = Relay(
        child=child,
        gate=governor,
        sink=sink,
        options=RelayOptions(
            server=server, max_line=opts.max_line_bytes, grace_s=opts.grace, term_s=opts.grace
        ),
    )
    try:
        return anyio.run(relay.run)
    finally:
        governor.close()
        for fd, was_blocking in saved.items():
            if was_blocking is not None:
                os.set_blocking(fd, was_blocking)
