"""Line-aware strict checks for manifest and trust-store YAML: every error names ``file:line``."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from trackwrap.config import YamlDocument
from trackwrap.errors import ProfileError

__all__ = ["Reader", "dotted"]

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})\Z")


def dotted(path: tuple[object, ...]) -> str:
    """``("manifest", "allowed_tools", 2)`` as ``manifest.allowed_tools[2]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


@dataclass(frozen=True, slots=True)
class Reader:
    """Validates values of one parsed document and raises :class:`ProfileError` with lines."""

    source: str
    doc: YamlDocument

    def fail(self, path: tuple[object, ...], message: str) -> NoReturn:
        """Raise ``ProfileError("<source>:<line>: <path>: <message>")``."""
        raise ProfileError(f"{self.source}:{self.doc.line(path)}: {dotted(path)}: {message}")

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
            self.fail(path, f"expected a non-empty list, got {type_name(value)}")
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
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"{value!r}" if value else "an empty string"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__
