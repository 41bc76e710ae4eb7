"""Line-aware strict checks for YAML documents (manifests, the trust store, approvals.yaml):
every error names ``file:line`` and the key path."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from trackwrap.config._yaml import YamlDocument
from trackwrap.errors import ProfileError

__all__ = ["Reader", "dotted", "type_name"]

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})\Z")


def dotted(path: tuple[object, ...]) -> str:
    """``("manifest", "allowed_tools", 2)`` as ``manifest.allowed_tools[2]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


@dataclass(frozen=True, slots=True)
class Reader:
    """Validates values of one parsed document and raises :class:`ProfileError` with lines
    (``doc`` None: data that came without a document, errors name the source only)."""

    source: str
    doc: YamlDocument | None

    def error(self, path: tuple[object, ...], message: str) -> ProfileError:
        """``ProfileError("<source>:<line>: <path>: <message>")``, to raise or hand on."""
        where = self.source if self.doc is None else f"{self.source}:{self.doc.line(path)}"
        return ProfileError(f"{where}: {dotted(path)}: {message}")

    def fail(self, path: tuple[object, ...], message: str) -> NoReturn:
        """Raise :meth:`error`."""
        raise self.error(path, message)

    def mapping(
        self,
        value: object,
        path: tuple[object, ...],
        *,
        allowed: Collection[str],
        required: Collection[str] = (),
    ) -> Mapping[str, object]:
        """A mapping with only ``allowed`` string keys and every ``required`` one."""
        if not isinstance(value, Mapping):
            self.fail(path, f"expected a mapping, got {type_name(value)}")
        for key in value:
            if not isinstance(key, str):
                self.fail((*path, key), f"keys must be strings, got {key!r}")
            if key not in allowed:
                self.fail(
                    (*path, key),
                    f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})",
                )
        for key in sorted(required):
            if key not in value:
                self.fail(path, f"missing required key {key!r}")
        return value

    def string(self, value: object, path: tuple[object, ...]) -> str:
        """A non-empty string without control characters."""
        if not isinstance(value, str) or not value:
            self.fail(path, f"expected a non-empty string, got {type_name(value)}")
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
            self.fail(path, "control characters are not allowed")
        return value

    def matching(
        self, value: object, path: tuple[object, ...], pattern: re.Pattern[str], *, what: str
    ) -> str:
        """A string that fully matches ``pattern``."""
        text = self.string(value, path)
        if pattern.fullmatch(text) is None:
            self.fail(path, f"{text!r} is not {what}")
        return text

    def string_list(
        self, value: object, path: tuple[object, ...], *, empty_ok: bool = False
    ) -> tuple[str, ...]:
        """A list of non-empty strings (non-empty unless ``empty_ok``)."""
        if not isinstance(value, list) or (not value and not empty_ok):
            wanted = "a list" if empty_ok else "a non-empty list"
            self.fail(path, f"expected {wanted}, got {type_name(value)}")
        return tuple(self.string(item, (*path, index)) for index, item in enumerate(value))

    def positive_int(self, value: object, path: tuple[object, ...]) -> int:
        """An integer ≥ 1 (booleans are not integers here)."""
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.fail(path, f"expected a positive integer, got {type_name(value)}")
        return value

    def timestamp(self, value: object, path: tuple[object, ...]) -> datetime:
        """An ISO 8601 UTC-offset timestamp such as ``2026-05-05T14:21:08Z``."""
        text = self.string(value, path)
        if _ISO.match(text) is None:
            self.fail(path, f"expected an ISO 8601 time like 2026-05-05T14:21:08Z, got {text!r}")
        try:
            return datetime.fromisoformat(text)
        except ValueError as exc:
            self.fail(path, f"invalid time {text!r}: {exc}")


def type_name(value: object) -> str:
    """How a bad value is shown in an error."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return repr(value) if value != "" else "an empty string"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, Mapping):
        return "a mapping"
    return "nothing" if value is None else type(value).__name__
