"""The approvals configuration: ``TRACKWRAP_HOME/approvals.yaml``.

The file is strict YAML (unknown keys are errors that name the file, line and key)::

    version: 1
    wait: 45s            # how long a call is held waiting for a decision; seconds or "30s",
                         # "2m", "1m30s"; at most 10m (keep it below the MCP client's timeout)
    progress_every: 5s   # how often a waiting call sends notifications/progress
    notify: [ops]        # channels used when a policy rule names none
    channels:
      ops:
        type: webhook    # Standard Webhooks, signed with the secret
        url: https://hooks.example.com/trackwrap
        secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
        # or: secret_env: TRACKWRAP_OPS_WEBHOOK_SECRET
      ops-slack:
        type: slack      # a Slack incoming webhook; its URL is the credential
        url: https://hooks.slack.com/services/T000/B000/XXXX

A missing file means the defaults: wait 45 s, progress every 5 s, no channels.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from trackwrap.approvals._notify import Channel, decode_webhook_secret
from trackwrap.config import Reader, load_yaml_bytes, type_name
from trackwrap.errors import ConfigError, ProfileError

__all__ = ["ApprovalSettings", "load_approval_settings", "parse_approval_settings"]

_CHANNEL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION = re.compile(r"(?:([0-9]+)m)?(?:([0-9]+(?:\.[0-9]+)?)s)?")
_MAX_WAIT_S = 600.0
_TOP_KEYS = ("version", "wait", "progress_every", "notify", "channels")
_CHANNEL_KEYS = ("type", "url", "secret", "secret_env")
_CHANNEL_TYPES = ("webhook", "slack")


def _no_channels() -> Mapping[str, Channel]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ApprovalSettings:
    """How long approvals wait and where their notifications go."""

    wait_s: float = 45.0
    """How long a call is held waiting for a decision."""
    progress_s: float = 5.0
    """How often a waiting call reports progress to the client."""
    notify: tuple[str, ...] = ()
    """Channels used when a policy rule names none."""
    channels: Mapping[str, Channel] = field(default_factory=_no_channels)
    """Every defined channel by name."""

    def channels_for(self, names: Sequence[str]) -> list[Channel]:
        """The defined channels among ``names`` (a rule's list), or among :attr:`notify` when
        ``names`` is empty; in order, each once. Names not defined are skipped: see
        :meth:`unknown`."""
        chosen = names or self.notify
        seen: set[str] = set()
        out: list[Channel] = []
        for name in chosen:
            channel = self.channels.get(name)
            if channel is not None and name not in seen:
                seen.add(name)
                out.append(channel)
        return out

    def unknown(self, names: Sequence[str]) -> tuple[str, ...]:
        """The names in ``names`` that are not defined channels, in order, each once."""
        return tuple(dict.fromkeys(name for name in names if name not in self.channels))


def load_approval_settings(path: Path, *, environ: Mapping[str, str]) -> ApprovalSettings:
    """Read ``path`` (``approvals.yaml``); a missing file gives the defaults.

    ``environ`` resolves ``secret_env`` references.

    Raises:
        ProfileError: the file cannot be read or does not validate (with ``file:line``).
    """
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        return ApprovalSettings()
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the approvals settings: {exc}") from exc
    doc = load_yaml_bytes(payload, source=str(path))
    return _parse(Reader(str(path), doc), doc.data, environ)


def parse_approval_settings(
    data: object, *, source: str, environ: Mapping[str, str]
) -> ApprovalSettings:
    """Validate plain data parsed from an approvals document (see the module docstring);
    ``None`` (an empty document) gives the defaults.

    Raises:
        ProfileError: the data does not validate; the message names ``source`` and the key.
    """
    return _parse(Reader(source, None), data, environ)


def _parse(check: Reader, data: object, environ: Mapping[str, str]) -> ApprovalSettings:
    if data is None:
        return ApprovalSettings()
    top = check.mapping(data, (), allowed=_TOP_KEYS, required=("version",))
    version = top["version"]
    if isinstance(version, bool) or version != 1:
        check.fail(("version",), f"unsupported version {version!r} (expected 1)")
    wait_s, progress_s = _timing(check, top)
    channels: dict[str, Channel] = {}
    raw_channels = top.get("channels")
    if raw_channels is not None:
        if not isinstance(raw_channels, Mapping):
            check.fail(("channels",), "expected a mapping of channel names to channels")
        for name, spec in raw_channels.items():
            path = ("channels", name)
            if not isinstance(name, str) or _CHANNEL_NAME.fullmatch(name) is None:
                check.fail(path, f"{name!r} is not a channel name ([a-z0-9][a-z0-9_-]*)")
            channels[name] = _channel(check, name, spec, path, environ)
    notify = _notify_names(check, top.get("notify"), channels)
    return ApprovalSettings(
        wait_s=wait_s,
        progress_s=progress_s,
        notify=notify,
        channels=MappingProxyType(channels),
    )


def _timing(check: Reader, top: Mapping[str, object]) -> tuple[float, float]:
    """``wait`` and ``progress_every`` in seconds, defaults where absent."""
    defaults = ApprovalSettings()
    wait_s = defaults.wait_s
    if "wait" in top:
        wait_s = _duration(check, top["wait"], ("wait",))
        if wait_s > _MAX_WAIT_S:
            check.fail(("wait",), f"at most 10m (600 seconds), got {wait_s:g} seconds")
    progress_s = defaults.progress_s
    if "progress_every" in top:
        progress_s = _duration(check, top["progress_every"], ("progress_every",))
    return wait_s, progress_s


def _notify_names(
    check: Reader, value: object, channels: Mapping[str, Channel]
) -> tuple[str, ...]:
    """The default channel names: each defined, each once."""
    if value is None:
        return ()
    names = check.string_list(value, ("notify",), empty_ok=True)
    for index, name in enumerate(names):
        if name not in channels:
            defined = ", ".join(sorted(channels)) or "none"
            check.fail(("notify", index), f"no channel named {name!r} (defined: {defined})")
        if name in names[:index]:
            check.fail(("notify", index), f"channel {name!r} is listed twice")
    return names


def _channel(
    check: Reader,
    name: str,
    spec: object,
    path: tuple[object, ...],
    environ: Mapping[str, str],
) -> Channel:
    fields = check.mapping(spec, path, allowed=_CHANNEL_KEYS, required=("type", "url"))
    kind = check.string(fields["type"], (*path, "type"))
    if kind not in _CHANNEL_TYPES:
        check.fail((*path, "type"), f"unknown type {kind!r} (expected webhook or slack)")
    url = _url(check, fields["url"], (*path, "url"))
    if kind == "slack":
        for key in ("secret", "secret_env"):
            if key in fields:
                check.fail((*path, key), "a slack channel takes no secret (its URL is the token)")
        return Channel(name=name, type=kind, url=url)
    if "secret" in fields and "secret_env" in fields:
        check.fail((*path, "secret_env"), "give either secret or secret_env, not both")
    if "secret" in fields:
        secret_path: tuple[object, ...] = (*path, "secret")
        secret = check.string(fields["secret"], secret_path)
        origin = "the secret"
    elif "secret_env" in fields:
        secret_path = (*path, "secret_env")
        variable = check.string(fields["secret_env"], secret_path)
        if _ENV_NAME.fullmatch(variable) is None:
            check.fail(secret_path, f"{variable!r} is not an environment variable name")
        value = environ.get(variable, "").strip()
        if not value:
            check.fail(secret_path, f"the environment variable {variable} is not set")
        secret = value
        origin = f"the environment variable {variable}"
    else:
        check.fail(path, "a webhook channel needs secret or secret_env (a whsec_… secret)")
    try:
        decode_webhook_secret(secret)
    except ConfigError as exc:
        check.fail(secret_path, f"{origin}: {exc}")
    return Channel(name=name, type=kind, url=url, secret=secret)


def _url(check: Reader, value: object, path: tuple[object, ...]) -> str:
    url = check.string(value, path)
    if any(char.isspace() for char in url):
        check.fail(path, "a URL cannot contain spaces")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        check.fail(path, f"not a valid URL: {exc}")
    if parts.scheme not in ("http", "https") or not host:
        check.fail(path, "expected an http:// or https:// URL with a host")
    return url


def _duration(check: Reader, value: object, path: tuple[object, ...]) -> float:
    """Positive seconds from a number or ``"<n>m<n>s"`` (``"30s"``, ``"2m"``, ``"1m30s"``)."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        found = _DURATION.fullmatch(value.strip())
        if found is not None and any(found.groups()):
            minutes, secs = found.groups()
            seconds = int(minutes or 0) * 60 + float(secs or 0)
    if seconds is None:
        check.fail(path, f'expected seconds or a duration like "30s" or "2m", got '
                   f"{type_name(value)}")
    if not math.isfinite(seconds):
        check.fail(path, f"expected a finite number of seconds, got {type_name(value)}")
    if seconds <= 0:
        check.fail(path, f"must be more than zero seconds, got {type_name(value)}")
    return seconds
