"""How the wrapper and the CLI reach the collector: its settings, the token, the pinned key.

Kept free of typer and rich (the wrapper imports it); httpx comes with the first request.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trackwrap.cli._settings import Settings
from trackwrap.errors import ConfigError, SignatureError

if TYPE_CHECKING:
    from trackwrap.crypto import SigningKey
    from trackwrap.ledger import ApprovalRecord, Ledger
    from trackwrap.sync import CollectorClient, SyncReport

__all__ = [
    "TOKEN_SECRET",
    "CollectorSetup",
    "RemoteApprovals",
    "background_sync",
    "collector_setup",
    "run_sync",
]

TOKEN_SECRET = "collector-token"  # noqa: S105 - the secret's name, not a secret
TOKEN_ENV = "TRACKWRAP_COLLECTOR_TOKEN"  # noqa: S105 - a variable's name


@dataclass(frozen=True, slots=True)
class CollectorSetup:
    """A configured collector: where, as which device, with which token and pinned key."""

    url: str
    device: str
    token: str
    key: str | None
    """``ed25519:<base64>`` of the collector's receipt key, once pinned."""

    def client(self, *, timeout_s: float = 10.0) -> CollectorClient:
        from trackwrap.sync import CollectorClient

        return CollectorClient(self.url, self.token, timeout_s=timeout_s)


def secret_store(settings: Settings, warn: Any = None) -> Any:
    from trackwrap.crypto import SecretStore

    return SecretStore(settings.home, backend=settings.key_backend,
                       warn=warn or (lambda _message: None))


def collector_setup(settings: Settings, environ: Mapping[str, str]) -> CollectorSetup | None:
    """The collector settings, or None when no collector URL is configured.

    Raises:
        ConfigError: a URL is configured but no token is (``trackwrap config set
            collector.token``).
    """
    from trackwrap.config import UserConfig

    config = UserConfig.load(settings.config_path)
    if config.collector_url is None:
        return None
    token = environ.get(TOKEN_ENV) or secret_store(settings).get(TOKEN_SECRET)
    if not token:
        raise ConfigError("a collector URL is set but no token: run `trackwrap config set "
                          "collector.token TOKEN`")
    return CollectorSetup(url=config.collector_url,
                          device=config.collector_device or socket.gethostname(),
                          token=token, key=config.collector_key)


def pinned_keys(settings: Settings, setup: CollectorSetup,
                client: CollectorClient) -> dict[str, bytes]:
    """The collector's receipt key: the pinned one, or (first contact) the one it announces,
    pinned from now on."""
    from trackwrap.config import UserConfig
    from trackwrap.crypto import key_id_for

    text = setup.key
    if text is None:
        _key_id, text = client.collector_key()
        config = UserConfig.load(settings.config_path).with_value("collector.key", text)
        config.save(settings.config_path)
    try:
        raw = base64.b64decode(text.removeprefix("ed25519:"), validate=True)
        return {key_id_for(raw): raw}
    except (ValueError, SignatureError) as exc:
        raise ConfigError(f"collector.key {text!r} is not an Ed25519 public key: {exc}") from exc


def run_sync(settings: Settings, ledger: Ledger, device: SigningKey, setup: CollectorSetup,
             *, attempts: int = 5, sessions: Sequence[str] | None = None) -> SyncReport:
    """Push every pending sealed segment (of ``sessions``, default all) now."""
    from trackwrap.sync import sync_ledger

    with setup.client() as client:
        keys = pinned_keys(settings, setup, client)
        return sync_ledger(ledger, client, public_key=device.public_raw, collector_keys=keys,
                           attempts=attempts, sessions=sessions)


def background_sync(
    settings: Settings, ledger: Ledger, device: SigningKey, setup: CollectorSetup
) -> Callable[[Sequence[str]], object]:
    """What a wrapper runs off its relay path: one attempt per segment (the next round
    retries), raising when the run did not get everything through."""
    from trackwrap.sync import SyncError

    def sync(sessions: Sequence[str]) -> object:
        report = run_sync(settings, ledger, device, setup, attempts=1, sessions=sessions)
        if not report.ok:
            failed = report.stopped or next(s.error for s in report.sessions if s.error)
            raise SyncError(str(failed))
        return report

    return sync


class RemoteApprovals:
    """Approval requests published to the collector, and decisions made there fetched back."""

    def __init__(self, setup: CollectorSetup) -> None:
        self._setup = setup

    def publish(self, record: ApprovalRecord) -> None:
        with self._setup.client() as client:
            client.publish_approval({
                "id": record.id, "session": record.session, "action_hash": record.action_hash,
                "request": dict(record.request), "requested_ms": record.requested_ms,
                "expires_ms": record.expires_ms,
            })

    def decision(self, approval_id: str, *, wait_s: float) -> tuple[str, str | None]:
        """``(state, decision envelope or None)`` after waiting up to ``wait_s``."""
        with self._setup.client(timeout_s=5.0) as client:
            found = client.approval(approval_id, wait_s=wait_s)
        state, envelope = found.get("state"), found.get("decision")
        return (str(state) if isinstance(state, str) else "pending",
                envelope if isinstance(envelope, str) else None)
