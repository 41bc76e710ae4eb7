"""The one exception root of trackwrap.

Every error a user can meet is an :class:`Error`; the CLI's ``main()`` is the single place that
turns one into a red line and an exit code. The tree::

    Error
    ├── ConfigError            bad settings, options or environment
    │   └── ProfileError       a server profile, policy or manifest file that does not validate
    ├── TransportError         the upstream child or the IDE side of the relay
    │   └── SpawnError         the upstream command cannot be started (exit 127)
    ├── PolicyError            the pipeline cannot evaluate an action (always becomes a deny)
    │   └── NormalizeError     a call that cannot be turned into a canonical action
    ├── InspectorError         an inspector failed (always becomes a deny)
    ├── SignatureError         a signature or key does not verify
    ├── KeyStoreError          key material cannot be loaded or stored
    ├── LedgerError            the audit store cannot be opened or written
    │   └── LedgerIntegrityError(seq)   the stored chain does not verify
    └── CollectorError         the central collector's storage cannot be opened or used
"""

from __future__ import annotations

__all__ = [
    "CollectorError",
    "ConfigError",
    "Error",
    "InspectorError",
    "KeyStoreError",
    "LedgerError",
    "LedgerIntegrityError",
    "NormalizeError",
    "PolicyError",
    "ProfileError",
    "SignatureError",
    "SpawnError",
    "TransportError",
]


class Error(Exception):
    """Root of every trackwrap error; carries a user-facing message and an exit code."""

    exit_code: int = 1

    def diagnostics(self) -> str:
        """One line (or a few) that tells the user what went wrong and what to do."""
        return str(self)


class ConfigError(Error):
    """Settings, options or environment that trackwrap cannot work with."""

    exit_code = 2


class ProfileError(ConfigError):
    """A server profile, policy or manifest file that does not validate."""


class TransportError(Error):
    """The relay lost or could not use one of its two peers."""


class SpawnError(TransportError):
    """The upstream server command cannot be started."""

    exit_code = 127


class PolicyError(Error):
    """The pipeline could not evaluate an action; the action is denied."""


class NormalizeError(PolicyError):
    """A tool call that cannot be turned into a canonical action."""


class InspectorError(Error):
    """An inspector failed; the action is denied."""


class SignatureError(Error):
    """A signature, key or signed object that does not verify."""


class KeyStoreError(Error):
    """Key material that cannot be loaded, created or stored."""


class LedgerError(Error):
    """The audit store cannot be opened or written."""


class LedgerIntegrityError(LedgerError):
    """The stored chain does not verify at ``seq``."""

    def __init__(self, message: str, *, seq: int | None) -> None:
        super().__init__(message)
        self.seq = seq


class CollectorError(Error):
    """The central collector's storage cannot be opened, read or written."""
