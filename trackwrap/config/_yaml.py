"""The one place pyyaml is used: a strict safe loader.

Stricter than ``yaml.SafeLoader``: duplicate keys, explicit tags (``!!python/…``, ``!!binary``,
``!foo``…) and aliases are rejected; merge keys (``<<``) and timestamps (``2024-01-01``) stay
plain strings, so every document is plain JSON-like data. Errors name the file and line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode

from trackwrap.errors import ProfileError

__all__ = ["YamlDocument", "load_yaml", "load_yaml_bytes"]

_PLAIN_TAGS = frozenset(
    {
        "tag:yaml.org,2002:str",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:seq",
        "tag:yaml.org,2002:map",
    }
)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without tags, merge keys, timestamps or duplicate keys."""

    yaml_implicit_resolvers = {  # noqa: RUF012 - PyYAML's own class attribute
        first: [(tag, regexp) for tag, regexp in resolvers if tag in _PLAIN_TAGS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, AliasEvent):
            raise ConstructorError(
                None,
                None,
                "aliases are not allowed",
                event.start_mark,  # type: ignore[arg-type]
            )
        tag = getattr(event, "tag", None)
        if tag is not None and tag != "!":
            raise ConstructorError(
                None, None, f"tags are not allowed (found {tag!r})", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, MappingNode):
            raise ConstructorError(
                None, None, f"expected a mapping, found {node.id}", node.start_mark
            )
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag not in _PLAIN_TAGS:
                raise ConstructorError(
                    None, None, f"unsupported key {key_node.value!r}", key_node.start_mark
                )
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | bool | None):
                raise ConstructorError(
                    None, None, "mapping keys must be plain scalars", key_node.start_mark
                )
            if key in mapping:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def load_yaml(path: Path) -> object:
    """Parse one YAML document from ``path``; :class:`ProfileError` with ``file:line`` if bad."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read: {exc}") from exc
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ProfileError(f"{path}{line}: {problem}") from exc
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: invalid YAML: {exc}") from exc
    finally:
        loader.dispose()


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """Plain data parsed from YAML plus the 1-based line of every key and list item.

    ``lines`` maps a path of mapping keys and list indices (``("manifest", "budget",
    "duration")``, ``("manifest", "allowed_tools", 2)``) to the line the key or item starts on;
    ``()`` is the document itself.
    """

    data: object
    lines: Mapping[tuple[object, ...], int]

    def line(self, path: tuple[object, ...]) -> int:
        """The line of ``path``, else of its nearest ancestor that has one."""
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)


def load_yaml_bytes(payload: bytes, *, source: str) -> YamlDocument:
    """Parse one YAML document from exact bytes (UTF-8) with the strict loader of
    :func:`load_yaml`; :class:`ProfileError` with ``source:line`` if bad.

    For signed files: the bytes that were verified are the bytes that are parsed.
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{source}: not UTF-8 text: {exc}") from exc
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(data=None, lines={(): 1})
        lines: dict[tuple[object, ...], int] = {}
        data = loader.construct_document(node)
        _collect_lines(node, data, (), lines)
        return YamlDocument(data=data, lines=lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ProfileError(f"{source}{line}: {problem}") from exc
    except yaml.YAMLError as exc:
        raise ProfileError(f"{source}: invalid YAML: {exc}") from exc
    finally:
        loader.dispose()


def _collect_lines(
    node: Node, data: object, path: tuple[object, ...], lines: dict[tuple[object, ...], int]
) -> None:
    """Record the start line of ``node`` at ``path`` and of everything below it."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, MappingNode) and isinstance(data, dict):
        # the strict loader inserts keys in document order and rejects duplicates, so the
        # mapping's keys line up one to one with the node's key nodes
        for (key_node, value_node), key in zip(node.value, list(data), strict=True):
            child = (*path, key)
            lines[child] = key_node.start_mark.line + 1
            _collect_lines(value_node, data[key], child, lines)
    elif isinstance(node, SequenceNode) and isinstance(data, list):
        for index, (item_node, item) in enumerate(zip(node.value, data, strict=True)):
            child = (*path, index)
            lines[child] = item_node.start_mark.line + 1
            _collect_lines(item_node, item, child, lines)
