"""Server profiles: how an upstream server's tools map to canonical kinds and targets.

A profile is a YAML mapping (``profiles/servers/<name>.yaml``)::

    version: 1                      # required, must be 1
    name: git                       # required: the server name used in kinds and rules
    description: mcp-server-git     # optional, free text
    match: [mcp-server-git]         # required: argv substrings that identify this server
    roots:                          # optional: where the server's allowed dirs come from
      positional: false             #   argv elements after the matched one (not starting "-")
      options: [--repository, -r]   #   values of these options (``--opt V`` or ``--opt=V``)
    tools:                          # required: tool name -> tool spec
      git_add:
        kind: git.add               # required: canonical kind, lower-case dotted
        read: [repo_path, "files[]"]  # path arguments that are read
        write: []                   # path arguments that are written (move sources go here)
        base: repo_path             # relative path arguments resolve against this argument
        command: []                 # command arguments: a string array is argv, a string is
                                    #   raw shell text
        branch: []                  # branch-name arguments
        url: []                     # URL arguments
        email: [to, "to[]", cc, "cc[]"]  # e-mail address arguments: a string holds one or
                                    #   more addresses separated by ``,`` or ``;``
        host: [host]                # host arguments: ``host``, ``host:port``, ``[v6]:port``
                                    #   or a URL
        if_true: {}                 # boolean argument -> kind used when it is true
                                    #   (desktop-commander ``read_file(isUrl=true)`` fetches)

An argument name ending in ``[]`` is a list of strings (``paths[]`` gives ``paths[0]``, …).
Under ``email`` and ``host`` a name may be listed in both forms (``to`` and ``to[]``): the
argument may then be a string or a list of strings. Elsewhere, and when only one form is listed,
a value of the other form makes the call fail to normalize (and so be denied).

The domains of the ``email`` addresses, the hosts of the ``host`` arguments and the hosts of the
``url`` arguments are the call's destinations (``Action.destinations``), which the rules'
``destination`` and ``destination_outside`` conditions read.

Unknown keys anywhere are a :class:`ProfileError`. A tool the profile does not list gets the kind
``<server>.<tool>`` and no targets, so only a rule naming that kind can allow it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from trackwrap.errors import ProfileError
from trackwrap.policy._schema import as_bool, as_mapping, as_str, as_str_list, check_keys

__all__ = ["ArgRef", "RootsSpec", "ServerProfile", "ToolSpec", "is_valid_kind"]

_KIND = re.compile(r"[a-z][a-z0-9_-]*(?:\.[a-z0-9_-]+)*\Z")
_ARG = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\[\])?\Z")
_TOOL_KEYS = (
    "kind",
    "read",
    "write",
    "base",
    "command",
    "branch",
    "url",
    "email",
    "host",
    "if_true",
)
_PROFILE_KEYS = ("version", "name", "description", "match", "roots", "tools")


def is_valid_kind(kind: str) -> bool:
    """Whether ``kind`` is lower-case dotted (``filesystem.read``, ``git.branch.create``)."""
    return _KIND.match(kind) is not None


@dataclass(frozen=True, slots=True)
class ArgRef:
    """One argument named by a tool spec; ``many`` when it is a list of strings."""

    name: str
    many: bool

    @classmethod
    def parse(cls, text: str, *, where: str) -> ArgRef:
        """Parse ``name`` or ``name[]``."""
        found = _ARG.match(text)
        if found is None:
            raise ProfileError(f"{where}: bad argument name {text!r} (use name or name[])")
        return cls(name=found.group(1), many=found.group(2) is not None)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """How one tool's arguments become an action."""

    kind: str
    read: tuple[ArgRef, ...] = ()
    write: tuple[ArgRef, ...] = ()
    base: str | None = None
    command: tuple[ArgRef, ...] = ()
    branch: tuple[ArgRef, ...] = ()
    url: tuple[ArgRef, ...] = ()
    email: tuple[ArgRef, ...] = ()
    host: tuple[ArgRef, ...] = ()
    if_true: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_mapping(cls, data: object, *, where: str) -> ToolSpec:
        """Validate one tool entry of a profile."""
        spec = as_mapping(data, where=where)
        check_keys(spec, where=where, allowed=_TOOL_KEYS, required=("kind",))
        kind = _kind(spec["kind"], where=f"{where}.kind")

        def refs(key: str) -> tuple[ArgRef, ...]:
            if key not in spec or spec[key] == []:
                return ()
            names = as_str_list(spec[key], where=f"{where}.{key}")
            return tuple(ArgRef.parse(name, where=f"{where}.{key}") for name in names)

        base = None
        if "base" in spec:
            base = as_str(spec["base"], where=f"{where}.base")
            ArgRef.parse(base, where=f"{where}.base")
        if_true: dict[str, str] = {}
        if "if_true" in spec:
            raw = as_mapping(spec["if_true"], where=f"{where}.if_true")
            for flag, flag_kind in raw.items():
                ArgRef.parse(flag, where=f"{where}.if_true")
                if_true[flag] = _kind(flag_kind, where=f"{where}.if_true.{flag}")
        read, write = refs("read"), refs("write")
        read_names = {ref.name for ref in read}
        both = sorted(ref.name for ref in write if ref.name in read_names)
        if both:
            raise ProfileError(
                f"{where}: {both[0]!r} is listed as read and write; list it under write only "
                "(a written path is checked as a read too)"
            )
        return cls(
            kind=kind,
            read=read,
            write=write,
            base=base,
            command=refs("command"),
            branch=refs("branch"),
            url=refs("url"),
            email=refs("email"),
            host=refs("host"),
            if_true=MappingProxyType(if_true),
        )


@dataclass(frozen=True, slots=True)
class RootsSpec:
    """Where an upstream server's own allowed directories come from on its command line."""

    positional: bool = False
    options: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, data: object, *, where: str) -> RootsSpec:
        """Validate the ``roots`` entry of a profile."""
        spec = as_mapping(data, where=where)
        check_keys(spec, where=where, allowed=("positional", "options"))
        positional = as_bool(spec.get("positional", False), where=f"{where}.positional")
        options: tuple[str, ...] = ()
        if "options" in spec:
            options = as_str_list(spec["options"], where=f"{where}.options")
            for option in options:
                if not option.startswith("-"):
                    raise ProfileError(f"{where}.options: {option!r} is not an option")
        return cls(positional=positional, options=options)


@dataclass(frozen=True, slots=True)
class ServerProfile:
    """One upstream server: its name, how to recognize it, and its tools."""

    name: str
    match: tuple[str, ...]
    roots: RootsSpec
    tools: Mapping[str, ToolSpec]
    description: str = ""

    @classmethod
    def from_mapping(cls, data: object, *, source: str) -> ServerProfile:
        """Validate a profile mapping read from ``source`` (a file name, for messages)."""
        profile = as_mapping(data, where=source)
        check_keys(
            profile, where=source, allowed=_PROFILE_KEYS, required=("version", "name", "match")
        )
        if profile["version"] != 1 or isinstance(profile["version"], bool):
            raise ProfileError(f"{source}: version must be 1, got {profile['version']!r}")
        name = as_str(profile["name"], where=f"{source}: name")
        if not _KIND.match(name) or "." in name:
            raise ProfileError(f"{source}: name {name!r} must be lower-case without dots")
        where = f"{source}: server {name}"
        match = as_str_list(profile["match"], where=f"{where}: match")
        roots = RootsSpec()
        if "roots" in profile:
            roots = RootsSpec.from_mapping(profile["roots"], where=f"{where}: roots")
        description = ""
        if "description" in profile:
            description = as_str(profile["description"], where=f"{where}: description")
        tools_raw = as_mapping(profile.get("tools"), where=f"{where}: tools")
        if not tools_raw:
            raise ProfileError(f"{where}: tools must not be empty")
        tools = {
            tool: ToolSpec.from_mapping(spec, where=f"{where}: tool {tool}")
            for tool, spec in tools_raw.items()
        }
        return cls(
            name=name,
            match=match,
            roots=roots,
            tools=MappingProxyType(tools),
            description=description,
        )

    def roots_from_argv(self, argv: Sequence[str]) -> tuple[str, ...]:
        """The allowed directories this server takes from its command line ``argv``."""
        start = next((i for i, arg in enumerate(argv) if any(m in arg for m in self.match)), None)
        if start is None:
            return ()
        found: list[str] = []
        rest = list(argv[start + 1 :])
        index = 0
        while index < len(rest):
            arg = rest[index]
            option, eq, value = arg.partition("=")
            if option in self.roots.options:
                if eq:
                    found.append(value)
                elif index + 1 < len(rest):
                    found.append(rest[index + 1])
                    index += 1
            elif self.roots.positional and not arg.startswith("-"):
                found.append(arg)
            index += 1
        return tuple(found)


def _kind(value: object, *, where: str) -> str:
    kind = as_str(value, where=where)
    if not is_valid_kind(kind):
        raise ProfileError(f"{where}: bad kind {kind!r} (lower-case, dot-separated)")
    return kind
