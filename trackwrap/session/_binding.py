"""Which session a wrapper records into, and what that session allows.

The rule, in order:

1. ``--session ID`` / ``TRACKWRAP_SESSION``: that session, always.
2. Otherwise the newest open explicit session of the workspace (``trackwrap session start``),
   looked up again before every ``tools/call``, so a session started after the wrapper is joined
   at its next call; when that session is closed the wrapper falls back to rule 3.
3. Otherwise the workspace's implicit session of the day, held against organisation policy
   only — or against the default role's manifest when one is configured. With
   ``--require-session`` every call is denied (``SESSION-REQUIRED``) until an explicit session
   exists. After a session was terminated for drift, calls are denied
   (``SESSION-TERMINATED``) until a new session starts.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from trackwrap.errors import Error, LedgerError
from trackwrap.ledger import Ledger, SessionState
from trackwrap.manifest import Budget, Manifest, ManifestScope, TrustStore, parse_manifest
from trackwrap.manifest import verify_manifest as verify_envelope
from trackwrap.policy import Inspector, Pipeline, Policy, ServerProfile

__all__ = ["BUILTIN_PUBLISHER", "Binder", "Binding", "manifest_from_genesis"]

BUILTIN_PUBLISHER = "trackwrap:builtin-role"
"""Publisher recorded for sessions started from a shipped role (``session start --role``)."""


@dataclass(frozen=True, slots=True)
class Binding:
    session: str
    explicit: bool
    pipeline: Pipeline
    manifest_digest: str | None = None
    budget: Budget | None = None
    on_drift: str = "deny"
    deny_all: tuple[str, str] | None = None
    """(rule, reason) when every call must be denied (no session yet, or terminated)."""
    implicit_default: bool = False
    """The workspace's implicit session, created when its first call is recorded."""


def manifest_from_genesis(
    genesis: Mapping[str, object], *, trust: TrustStore, now: datetime
) -> Manifest | None:
    """The manifest a session was started with, verified again from its stored bytes."""
    envelope = genesis.get("manifest_envelope")
    payload = genesis.get("manifest_payload")
    if isinstance(envelope, str) and envelope:
        verified = verify_envelope(
            base64.b64decode(envelope), trust=trust, now=now, source="session manifest"
        )
        return verified.manifest
    if isinstance(payload, str) and payload and genesis.get("publisher") == BUILTIN_PUBLISHER:
        return parse_manifest(base64.b64decode(payload), source="session manifest")
    return None


class Binder:
    """Chooses the binding for each call; builds one pipeline per session it meets."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        workspace: str,
        profiles: Mapping[str, ServerProfile],
        policy: Policy,
        inspectors: Sequence[Inspector],
        trust: Callable[[], TrustStore],
        known_roles: Callable[[], frozenset[str]],
        implicit_session: str,
        implicit_genesis: Mapping[str, object],
        fixed_session: str | None,
        default_role: Manifest | None,
        require_session: bool,
        say: Callable[[str], None],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._ledger = ledger
        self._workspace = workspace
        self._profiles = profiles
        self._policy = policy
        self._inspectors = inspectors
        self._trust = trust
        self._known_roles = known_roles
        self._implicit_base = implicit_session
        self._implicit_genesis = dict(implicit_genesis)
        self._implicit_session = implicit_session
        self._fixed = fixed_session
        self._default_role = default_role
        self._require = require_session
        self._say = say
        self._now = now
        self._terminated: set[str] = set()
        self._opened: set[str] = set()
        self._plain = Pipeline(profiles=profiles, policy=policy, inspectors=inspectors)
        self._implicit = self._implicit_binding()
        self._binding = self._implicit
        if fixed_session is not None:
            self._binding = self._bind(fixed_session)

    @property
    def session(self) -> str:
        return self._binding.session

    def current(self) -> Binding:
        """The binding for the next call (joins a session started since the last call)."""
        if self._fixed is None:
            active = self._ledger.active_session(self._workspace)
            if active is None:
                if self._binding.explicit:
                    self._leave(self._binding.session)
            elif active != self._binding.session:
                self._binding = self._bind(active)
                self._say(f"joined session {active}")
        return self._ensure(self._binding)

    def closed(self, session: str) -> Binding:
        """The bound session turned out to be closed: fall back, and say what applies now."""
        self._leave(session)
        return self._ensure(self._binding)

    def _leave(self, session: str) -> None:
        try:
            state = self._ledger.session_state(session)
        except LedgerError:
            state = None
        if state is not None and state.close_reason == "policy_terminated":
            self._terminated.add(session)
        self._binding = self._implicit_binding()
        if self._fixed is not None:
            self._binding = Binding(
                session=self._implicit_session, explicit=False, pipeline=self._plain,
                deny_all=("SESSION-CLOSED", f"session {session} is closed"),
                implicit_default=True,
            )

    def _open_implicit(self) -> str:
        """The workspace's implicit session, created if needed; if someone closed today's, the
        next one (``…-2``, ``…-3``)."""
        session, n = self._implicit_base, 1
        while True:
            self._ledger.ensure_session(session, genesis=self._implicit_genesis)
            if not self._ledger.session_state(session).closed:
                return session
            n += 1
            session = f"{self._implicit_base}-{n}"

    def _ensure(self, binding: Binding) -> Binding:
        """An implicit session is created when the first call is recorded in it, not before."""
        if not binding.implicit_default or binding.session in self._opened:
            return binding
        session = self._open_implicit()
        self._opened.add(session)
        self._implicit_session = session
        if session != binding.session:
            binding = replace(binding, session=session)
            self._binding = binding
        return binding

    def _implicit_binding(self) -> Binding:
        deny_all = None
        if self._terminated:
            deny_all = ("SESSION-TERMINATED",
                        "the session was terminated for drift; start a new session")
        elif self._require:
            deny_all = ("SESSION-REQUIRED",
                        "no session is active for this workspace; run `trackwrap session start`")
        if self._default_role is not None:
            return Binding(
                session=self._implicit_session, explicit=False,
                pipeline=self._scoped(self._default_role),
                manifest_digest=self._default_role.digest, budget=self._default_role.budget,
                deny_all=deny_all, implicit_default=True,
            )
        return Binding(session=self._implicit_session, explicit=False, pipeline=self._plain,
                       deny_all=deny_all, implicit_default=True)

    def _bind(self, session: str) -> Binding:
        try:
            state = self._ledger.session_state(session)
            manifest = manifest_from_genesis(state.genesis, trust=self._trust(), now=self._now())
        except Error as exc:  # a manifest that no longer verifies: deny, and say why
            self._say(f"cannot use session {session}: {exc}")
            exists = _exists(self._ledger, session)
            return Binding(
                session=session if exists else self._implicit_session,
                explicit=False, pipeline=self._plain, implicit_default=not exists,
                deny_all=("SESSION-INVALID", f"session {session} cannot be used: {exc}"),
            )
        if state.closed:
            return Binding(session=self._implicit_session, explicit=False, pipeline=self._plain,
                           deny_all=("SESSION-CLOSED", f"session {session} is closed"),
                           implicit_default=True)
        if manifest is None:
            return Binding(session=session, explicit=state.kind == "explicit",
                           pipeline=self._plain)
        on_drift = state.genesis.get("on_drift")
        return Binding(
            session=session,
            explicit=state.kind == "explicit",
            pipeline=self._scoped(manifest),
            manifest_digest=manifest.digest,
            budget=manifest.budget,
            on_drift=on_drift if on_drift in ("deny", "terminate") else "deny",
        )

    def _scoped(self, manifest: Manifest) -> Pipeline:
        return Pipeline(
            profiles=self._profiles, policy=self._policy, inspectors=self._inspectors,
            scope=ManifestScope(manifest, known_roles=self._known_roles()),
        )


def _exists(ledger: Ledger, session: str) -> bool:
    try:
        ledger.session_state(session)
    except LedgerError:
        return False
    return True


def state_summary(state: SessionState) -> str:
    return f"{state.session} ({state.kind}, role {state.role or '-'})"
