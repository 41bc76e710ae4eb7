"""``trackwrap [options] -- <upstream command…>``: the governed relay.

The start path is kept short: the upstream is spawned as soon as its command is resolved, and
the policy, profiles and ledger load while it boots (it gets no message before the relay runs,
so nothing reaches it ungoverned). No typer, rich or MCP SDK here; key material is loaded only
when the first seal is written.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from trackwrap import __version__
from trackwrap.cli._settings import Settings, load_settings, resolve_workspace
from trackwrap.cli._usage import WRAP_USAGE
from trackwrap.errors import ConfigError, Error
from trackwrap.relay._framing import DEFAULT_MAX_LINE
from trackwrap.relay._process import Child, child_environment, resolve_command, spawn_child

if TYPE_CHECKING:
    from trackwrap.approvals import ApprovalDesk
    from trackwrap.crypto import SigningKey
    from trackwrap.ledger import Ledger
    from trackwrap.relay import StderrSink
    from trackwrap.session import Governor

__all__ = ["Gate", "GateOptions", "build_gate_for", "run_wrapper"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{message} (usage: {WRAP_USAGE})")


def add_governance_options(p: argparse.ArgumentParser) -> None:
    """The options that say how calls are governed, shared by the wrapper and the hook."""
    p.add_argument("--workspace", help="directory the agent may work in (default: cwd)")
    p.add_argument("--policy", action="append", default=[], type=Path)
    p.add_argument("--profiles", action="append", default=[], type=Path)
    p.add_argument("--mode", choices=("enforce", "monitor"))
    p.add_argument("--session")
    p.add_argument("--require-session", action="store_true")
    p.add_argument("--default-role")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="trackwrap", usage=WRAP_USAGE, add_help=False)
    p.add_argument("--server", help="name of the upstream server's profile")
    add_governance_options(p)
    p.add_argument("--inject-token", action="store_true")
    p.add_argument("--approval-wait", type=float)
    p.add_argument("--env-allow", action="append", default=[])
    p.add_argument("--env-deny", action="append", default=[])
    p.add_argument("--secret", action="append", default=[])
    p.add_argument("--max-line-bytes", type=int, default=DEFAULT_MAX_LINE)
    p.add_argument("--seal-interval", type=float, default=60.0)
    p.add_argument("--grace", type=float, default=2.0)
    return p


class _StopSignals:
    """SIGTERM/SIGHUP/SIGINT end the wrapper with ``SystemExit(128 + signum)``, except inside
    :meth:`deferred`, where they wait until the block is over."""

    SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)

    def __init__(self) -> None:
        self._defer = False
        self._pending: int | None = None
        for signum in self.SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if self._defer:
            self._pending = signum
            return
        raise SystemExit(128 + signum)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._defer = True
        try:
            yield
        finally:
            self._defer = False

    def raise_pending(self) -> None:
        if self._pending is not None:
            raise SystemExit(128 + self._pending)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def run_wrapper(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> int:
    parent = os.getppid()  # before anything slow: the parent may not outlive our start-up
    env = os.environ if environ is None else environ
    split = list(argv).index("--")
    opts = _parser().parse_args(list(argv[:split]))
    command = list(argv[split + 1 :])
    if opts.max_line_bytes < 1024:
        raise ConfigError("--max-line-bytes must be at least 1024")
    if opts.seal_interval <= 0 or opts.grace < 0:
        raise ConfigError("--seal-interval must be positive and --grace not negative")
    if opts.approval_wait is not None and not 0 < opts.approval_wait <= 600:
        raise ConfigError("--approval-wait must be more than 0 and at most 600 seconds")
    settings = load_settings(env)
    workspace = resolve_workspace(opts.workspace)
    exe_argv = resolve_command(command, path=env.get("PATH"))
    secrets = _stored_secrets(opts.server, opts.secret, settings) if opts.secret else None
    # Until the relay takes signals over, a stop signal still stops the upstream (which runs
    # in its own session and would not get the terminal's signals). During the spawn itself
    # the signal is held back, so the child is never lost half-started.
    stop = _StopSignals()
    with stop.deferred():
        child = spawn_child(
            exe_argv,
            env=child_environment(env, allow=opts.env_allow, deny=opts.env_deny,
                                  extra=secrets),
            cwd=None,
        )
    try:
        stop.raise_pending()
        return _govern(
            child, opts=opts, command=command, settings=settings, workspace=workspace, env=env,
            parent=parent,
        )
    except BaseException:
        child.signal_group(signal.SIGKILL)
        child.proc.wait()
        child.close_pipes()
        raise


def _stored_secrets(server: str | None, keys: Sequence[str], settings: Settings) -> dict[str, str]:
    """``--secret KEY``: each KEY's stored token for the upstream's environment.

    Raises:
        ConfigError: no ``--server``, a bad variable name, or a token that is not stored.
    """
    import sys

    from trackwrap.cli._install import check_env_name, secret_name
    from trackwrap.crypto import SecretStore

    if not server:
        raise ConfigError("--secret needs --server NAME: tokens are stored per server")
    def warn(message: str) -> None:
        sys.stderr.write(f"trackwrap: {message}\n")

    store = SecretStore(settings.home, backend=settings.key_backend, warn=warn)
    found: dict[str, str] = {}
    for key in keys:
        name = secret_name(server, check_env_name(key))
        value = store.get(name)
        if value is None:
            raise ConfigError(f"no token {key} is stored for server {server} (looked in "
                              f"{store.where(name)}): run `trackwrap secret set {server} {key}`")
        found[key] = value
    return found


def _govern(
    child: Child,
    *,
    opts: argparse.Namespace,
    command: list[str],
    settings: Settings,
    workspace: str,
    env: Mapping[str, str],
    parent: int,
) -> int:
    import anyio

    from trackwrap.relay import Relay, RelayOptions, StderrSink, make_pollable

    sink = StderrSink()

    def build_gate() -> Governor:
        """Runs on a worker thread while the upstream boots and the handshake is relayed."""
        return build_gate_for(
            GateOptions.from_args(opts), command=command, settings=settings,
            workspace=workspace, env=env, sink=sink,
        ).governor

    saved = {fd: make_pollable(fd) for fd in (0, 1, 2)}
    relay = Relay(
        child=child,
        gate=build_gate,
        sink=sink,
        options=RelayOptions(
            server=opts.server or Path(command[0]).name,
            max_line=opts.max_line_bytes,
            grace_s=opts.grace,
            term_s=opts.grace,
            parent_pid=parent,
        ),
    )
    try:
        return anyio.run(relay.run)
    finally:
        if relay.gate is not None:
            relay.gate.close()
        for fd, was_blocking in saved.items():
            if was_blocking is not None:
                os.set_blocking(fd, was_blocking)


@dataclass(frozen=True, slots=True)
class GateOptions:
    """How a gate judges and records calls: the wrapper's options (or the hook's subset)."""

    server: str | None = None
    policy: Sequence[Path] = ()
    profiles: Sequence[Path] = ()
    mode: str | None = None
    session: str | None = None
    require_session: bool = False
    default_role: str | None = None
    inject_token: bool = False
    approval_wait: float | None = None
    seal_interval: float = 60.0

    @classmethod
    def from_args(cls, opts: argparse.Namespace) -> GateOptions:
        """The options the wrapper's command line gave."""
        return cls(
            server=opts.server, policy=tuple(opts.policy), profiles=tuple(opts.profiles),
            mode=opts.mode, session=opts.session, require_session=opts.require_session,
            default_role=opts.default_role, inject_token=opts.inject_token,
            approval_wait=opts.approval_wait, seal_interval=opts.seal_interval,
        )


@dataclass(frozen=True, slots=True)
class Gate:
    """A built governor, the ledger it writes, and the policy's mode (enforce or monitor)."""

    governor: Governor
    ledger: Ledger
    mode: str


def build_gate_for(
    options: GateOptions,
    *,
    command: Sequence[str],
    settings: Settings,
    workspace: str,
    env: Mapping[str, str],
    sink: StderrSink,
    relaying: bool = True,
) -> Gate:
    """The governor for one wrapper (``relaying``) or one hook call, and the ledger it writes.

    Both join sessions by the same rule and judge with the same policy, profiles and
    inspectors. Only a relaying wrapper loads the device key up front, mints execution tokens
    and talks to the collector; a hook call, which forwards nothing and lives for one call,
    loads the key only when a seal or an approval decision needs it.
    """
    from trackwrap.cli._approval_wiring import approval_desk, approval_settings, make_notifier
    from trackwrap.cli._build import build_governance, context_factory
    from trackwrap.cli._collector_wiring import RemoteApprovals, background_sync, collector_setup
    from trackwrap.cli._roles import known_roles, role_manifest, trust_store
    from trackwrap.config import infer_server_name
    from trackwrap.crypto import mint_token
    from trackwrap.ledger import Ledger
    from trackwrap.session import (
        ApprovalWait,
        Binder,
        Governor,
        implicit_session_id,
        new_trace_id,
    )

    governance = build_governance(
        policy_paths=options.policy, profile_dirs=options.profiles, mode=options.mode
    )
    server = options.server or infer_server_name(command, governance.profiles)
    approvals = approval_settings(settings, env)
    default_role_name = options.default_role or settings.default_role
    default_role = (
        role_manifest(default_role_name, workspace=workspace) if default_role_name else None
    )
    fixed = options.session or settings.session
    signer = _lazy_signer(settings, sink)
    ledger = Ledger.open(settings.ledger_path, signer=signer, clock_ms=_now_ms)
    try:
        genesis: dict[str, object] = {
            "workspace": workspace,
            "trackwrap": __version__,
            "user": env.get("USER") or env.get("USERNAME") or _os_user(),
            "role": default_role.role if default_role else None,
            "manifest_digest": default_role.digest if default_role else None,
        }
        if fixed:
            ledger.ensure_session(fixed, genesis=genesis)
        binder = Binder(
            ledger=ledger,
            workspace=workspace,
            profiles=governance.profiles,
            policy=governance.policy,
            inspectors=governance.inspectors,
            trust=lambda: trust_store(settings),
            known_roles=lambda: known_roles(settings),
            implicit_session=implicit_session_id(workspace, now=datetime.now(UTC)),
            implicit_genesis=genesis,
            fixed_session=fixed,
            default_role=default_role,
            require_session=options.require_session,
            say=sink.say,
        )
        if relaying:
            key = signer()  # loaded here, off the relay's path, so the first call does not wait
            mint: Callable[[Mapping[str, object]], str] | None = partial(mint_token, key)
            desk = approval_desk(settings, ledger, key)
            try:
                collector = collector_setup(settings, env)
            except Error as exc:  # the collector is optional: say why it is not used, go on
                sink.say(f"not syncing to the collector: {exc}")
                collector = None
            sync = background_sync(settings, ledger, key, collector) if collector else None
            remote = RemoteApprovals(collector) if collector else None
        else:
            mint, desk, sync, remote = None, _lazy_desk(settings, ledger, signer), None, None
    except BaseException:
        ledger.close()
        raise
    governor = Governor(
        binder=binder,
        ledger=ledger,
        server=server,
        context=context_factory(workspace=workspace),
        policy_hash=governance.policy.policy_hash,
        mode=governance.policy.mode.value,
        sink=sink,
        new_trace=new_trace_id,
        mint=mint,
        signed_tools=_signed_tools_reader(settings, sink),
        description_changes=governance.policy.description_changes,
        inject_token=options.inject_token,
        clock_ms=_now_ms,
        seal_interval_s=options.seal_interval,
        approvals=desk,
        approval_wait=ApprovalWait(wait_s=options.approval_wait or approvals.wait_s,
                                   progress_s=approvals.progress_s),
        notify=make_notifier(approvals),
        workspace=workspace,
        sync=sync,
        remote=remote,
    )
    return Gate(governor=governor, ledger=ledger, mode=governance.policy.mode.value)


def _lazy_desk(
    settings: Settings, ledger: Ledger, signer: Callable[[], SigningKey]
) -> ApprovalDesk:
    """The approval desk with the device key loaded only when a decision is checked."""
    from trackwrap.approvals import ApprovalDesk, LedgerApprovals
    from trackwrap.cli._approval_wiring import approver_keys, now_ms

    return ApprovalDesk(LedgerApprovals(ledger), keys=lambda: approver_keys(settings, signer()),
                        clock_ms=now_ms)


def _os_user() -> str:
    """The account name when the environment does not say (``USER`` unset, as in services)."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return ""


def _signed_tools_reader(
    settings: Settings, sink: StderrSink
) -> Callable[[str], dict[str, str] | None]:
    """For a server with a pinned publisher: the tool digests of its imported signed tool list
    ({} when it has none that verifies). None for servers without one."""

    def read(server: str) -> dict[str, str] | None:
        from trackwrap.cli._roles import trust_store
        from trackwrap.cli._settings import signed_tools_path
        from trackwrap.errors import Error
        from trackwrap.manifest import verify_tool_list

        try:
            keys = trust_store(settings).server_keys(server)
        except Error as exc:
            sink.say(f"cannot read the trust store: {exc}")
            return {}
        if not keys:
            return None
        try:
            envelope = signed_tools_path(settings, server).read_bytes()
            return verify_tool_list(envelope, server=server, keys=keys)
        except (OSError, Error) as exc:
            sink.say(f"{server} has a pinned publisher but no valid signed tool list: {exc}")
            return {}

    return read


def _lazy_signer(settings: Settings, sink: StderrSink) -> Callable[[], SigningKey]:
    """The device key, loaded (with ``cryptography`` and ``keyring``) at the first seal."""

    def signer() -> SigningKey:
        from trackwrap.crypto import KeyStore

        return KeyStore(settings.home, backend=settings.key_backend, warn=sink.say).device_key()

    return signer
