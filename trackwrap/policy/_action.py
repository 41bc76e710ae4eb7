"""The canonical form of one tool call: :class:`Action`, its path arguments and its hash."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trackwrap._canonical import CanonicalError, canonical_json
from trackwrap.errors import NormalizeError
from trackwrap.policy._destinations import split_addresses

__all__ = ["Action", "PathArg", "action_hash"]


@dataclass(frozen=True, slots=True)
class PathArg:
    """One path-typed argument of a call, as the agent gave it.

    ``name`` locates it in the arguments (``path``, ``paths[1]``, ``files[0]``); ``base`` is the
    directory a relative ``value`` is resolved against (e.g. git's ``repo_path``), or ``None``
    for the upstream server's working directory.
    """

    name: str
    value: str
    write: bool
    base: str | None


@dataclass(frozen=True, slots=True)
class Action:
    """A normalized tool call: what it is (``kind``) and the targets that matter.

    ``destinations`` are where the call sends to, lower-cased and each once: the domains of its
    e-mail addresses, then the hosts of its host arguments, then those of its URLs.
    """

    server: str
    tool: str
    kind: str
    arguments: Mapping[str, object]
    paths: tuple[PathArg, ...]
    commands: tuple[tuple[str, ...], ...]
    command_text: tuple[str, ...]
    branches: tuple[str, ...]
    urls: tuple[str, ...]
    destinations: tuple[str, ...]
    action_hash: str

    def target(self) -> str:
        """A short summary for a log line: the command, else the branch, else a commit's
        message, else the first path (files relative to a base before the base itself), else
        an e-mail's first recipient, else the URL, else the first destination."""
        message = self.arguments.get("message")
        relative = [p.value for p in self.paths if p.base is not None]
        candidates = (
            [" ".join(c) for c in self.commands[:1]],
            list(self.command_text[:1]),
            list(self.branches[:1]),
            [f'"{message}"'] if self.kind.endswith(".commit") and isinstance(message, str) else [],
            [", ".join(relative)] if relative else [p.value for p in self.paths[:1]],
            _first_recipient(self.arguments.get("to")) if self.kind.startswith("email.") else [],
            list(self.urls[:1]),
            list(self.destinations[:1]),
        )
        return next((c[0] for c in candidates if c), "")


def _first_recipient(value: object) -> list[str]:
    """The first address of a ``to`` argument (a string of ``,``/``;``-separated addresses or a
    list of such strings), as a one-element list, or an empty list."""
    texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    for text in texts:
        if isinstance(text, str):
            for address in split_addresses(text):
                return [address]
    return []


def action_hash(server: str, tool: str, arguments: object) -> str:
    """``sha256:<hex>`` over the RFC 8785 canonical JSON of ``{server, tool, arguments}``.

    Raises :class:`NormalizeError` for values JSON cannot carry canonically (NaN, infinities,
    integers beyond 2**53, lone surrogates, non-string keys, non-JSON types).
    """
    try:
        body: Any = {"server": server, "tool": tool, "arguments": arguments}
        canonical = canonical_json(body)
    except CanonicalError as exc:
        raise NormalizeError(
            f"arguments of {server}.{tool} have no canonical JSON form: {exc}"
        ) from exc
    return "sha256:" + hashlib.sha256(canonical).hexdigest()
