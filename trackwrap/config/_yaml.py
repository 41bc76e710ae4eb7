"""The one place pyyaml is used: a strict safe loader.

Stricter than ``yaml.SafeLoader``: duplicate keys, explicit tags (``!!python/…``, ``!!binary``,
``!foo``…) and aliases are rejected; merge keys (``<<``) and timestamps (``2024-01-01``) stay
plain strings, so every document is plain JSON-like data. Errors name the file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node

from trackwrap.errors import ProfileError

__all__ = ["load_yaml"]

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
