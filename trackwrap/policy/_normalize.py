"""Stage 1: turn a ``tools/call`` into an :class:`Action` using the server's profile."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from types import MappingProxyType

from trackwrap.errors import NormalizeError
from trackwrap.policy._action import Action, PathArg, action_hash
from trackwrap.policy._destinations import email_domain, host_of, split_addresses
from trackwrap.policy._profile import ArgRef, ServerProfile

__all__ = ["normalize", "split_plain_command"]

#: Characters that make a raw shell string more than one plain command.
_SHELL_META = re.compile(r"[|;&$`<>(){}\n\r\x00]")


def split_plain_command(text: str) -> tuple[str, ...] | None:
    """``text`` as argv when it is one plain command (no shell metacharacters), else ``None``."""
    if _SHELL_META.search(text):
        return None
    try:
        argv = shlex.split(text)
    except ValueError:
        return None
    return tuple(argv) or None


def normalize(
    *, server: str, tool: str, arguments: object, profile: ServerProfile | None
) -> Action:
    """Build the canonical action for one call; :class:`NormalizeError` when it has none.

    ``arguments`` must be a JSON object (``None`` means absent and becomes ``{}``). A tool the
    profile does not know (or no profile) gets the kind ``<server>.<tool>`` and no targets.
    """
    if not _is_name(server) or not _is_name(tool):
        raise NormalizeError(
            f"server and tool must be non-empty strings, got {server!r} and {tool!r}"
        )
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, Mapping):
        raise NormalizeError(
            f"arguments of {server}.{tool} must be a JSON object, got {type(arguments).__name__}"
        )
    args: Mapping[str, object] = MappingProxyType(dict(arguments))
    digest = action_hash(server, tool, arguments if isinstance(arguments, dict) else dict(args))
    spec = profile.tools.get(tool) if profile is not None else None
    if spec is None:
        return Action(
            server=server,
            tool=tool,
            kind=f"{server}.{tool}",
            arguments=args,
            paths=(),
            commands=(),
            command_text=(),
            branches=(),
            urls=(),
            destinations=(),
            action_hash=digest,
        )
    where = f"{server}.{tool}"
    kind = spec.kind
    for flag, flag_kind in spec.if_true.items():
        if args.get(flag) is True:
            kind = flag_kind
    base: str | None = None
    if spec.base is not None:
        base_values = _strings(args, ArgRef(name=spec.base, many=False), where=where)
        base = base_values[0][1] if base_values else None
    paths: list[PathArg] = []
    for refs, write in ((spec.read, False), (spec.write, True)):
        for ref in refs:
            ref_base = None if ref.name == spec.base else base
            paths.extend(
                PathArg(name=name, value=value, write=write, base=ref_base)
                for name, value in _strings(args, ref, where=where)
            )
    commands, command_text = _commands(args, spec.command, where=where)
    branches = tuple(value for ref in spec.branch for _, value in _strings(args, ref, where=where))
    urls = tuple(value for ref in spec.url for _, value in _strings(args, ref, where=where))
    destinations = _destinations(args, spec.email, spec.host, urls, where=where)
    return Action(
        server=server,
        tool=tool,
        kind=kind,
        arguments=args,
        paths=tuple(paths),
        commands=commands,
        command_text=command_text,
        branches=branches,
        urls=urls,
        destinations=destinations,
        action_hash=digest,
    )


def _destinations(
    args: Mapping[str, object],
    email: tuple[ArgRef, ...],
    host: tuple[ArgRef, ...],
    urls: tuple[str, ...],
    *,
    where: str,
) -> tuple[str, ...]:
    """E-mail domains, then hosts, then URL hosts; each once, in order of appearance."""
    found: list[str] = [
        email_domain(address)
        for _, text in _string_or_list(args, email, where=where)
        for address in split_addresses(text)
    ]
    texts = [text for _, text in _string_or_list(args, host, where=where)]
    found.extend(name for name in map(host_of, [*texts, *urls]) if name is not None)
    return tuple(dict.fromkeys(found))


def _string_or_list(
    args: Mapping[str, object], refs: tuple[ArgRef, ...], *, where: str
) -> list[tuple[str, str]]:
    """Like :func:`_strings` for each argument, where a name listed as both ``name`` and
    ``name[]`` may be either a string or a list of strings."""
    forms: dict[str, set[bool]] = {}
    for ref in refs:
        forms.setdefault(ref.name, set()).add(ref.many)
    found: list[tuple[str, str]] = []
    for name, kinds in forms.items():
        value = args.get(name)
        if value is None:
            continue
        many = isinstance(value, list) if len(kinds) == 2 else next(iter(kinds))
        found.extend(_strings(args, ArgRef(name=name, many=many), where=where))
    return found


def _commands(
    args: Mapping[str, object], refs: tuple[ArgRef, ...], *, where: str
) -> tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]:
    """argv-form commands (string arrays, and plain raw strings split) and raw shell strings."""
    commands: list[tuple[str, ...]] = []
    command_text: list[str] = []
    for ref in refs:
        value = args.get(ref.name)
        if value is None:
            continue
        if isinstance(value, list) and not ref.many:
            argv = tuple(
                _string(item, name=f"{ref.name}[{i}]", where=where) for i, item in enumerate(value)
            )
            if not argv:
                raise NormalizeError(f"{where}: {ref.name} is an empty command")
            commands.append(argv)
            continue
        for _, text in _strings(args, ref, where=where):
            command_text.append(text)
            plain = split_plain_command(text)
            if plain is not None:
                commands.append(plain)
    return tuple(commands), tuple(command_text)


def _is_name(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _strings(args: Mapping[str, object], ref: ArgRef, *, where: str) -> list[tuple[str, str]]:
    """``(name, value)`` for a string argument or each element of a string-list argument."""
    value = args.get(ref.name)
    if value is None:
        return []
    if not ref.many:
        return [(ref.name, _string(value, name=ref.name, where=where))]
    if not isinstance(value, list):
        raise NormalizeError(f"{where}: {ref.name} must be a list of strings")
    return [
        (f"{ref.name}[{i}]", _string(item, name=f"{ref.name}[{i}]", where=where))
        for i, item in enumerate(value)
    ]


def _string(value: object, *, name: str, where: str) -> str:
    if not isinstance(value, str):
        raise NormalizeError(f"{where}: {name} must be a string, got {type(value).__name__}")
    return value
