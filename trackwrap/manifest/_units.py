"""Budget units: sizes (``5 MiB``) and durations (``1h30m``)."""

from __future__ import annotations

import re

__all__ = ["parse_duration", "parse_size"]

_SIZE = re.compile(r"([0-9]+)\s*(B|KiB|MiB|GiB|KB|MB|GB)\Z")
_FACTORS = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}
_DURATION = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?\Z")


def parse_size(value: object) -> int | None:
    """Bytes for a positive int or ``"<n> B|KiB|MiB|GiB|KB|MB|GB"``; ``None`` if malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if not isinstance(value, str):
        return None
    found = _SIZE.match(value.strip())
    if found is None:
        return None
    size = int(found.group(1)) * _FACTORS[found.group(2)]
    return size if size > 0 else None


def parse_duration(value: object) -> int | None:
    """Seconds for ``"<n>h<n>m<n>s"`` (each part optional, in that order, e.g. ``45m``,
    ``1h30m``, ``90s``); ``None`` if malformed or zero. A bare number has no unit and is
    refused."""
    if not isinstance(value, str) or not value.strip():
        return None
    found = _DURATION.match(value.strip())
    if found is None:
        return None
    hours, minutes, seconds = (int(part) if part else 0 for part in found.groups())
    total = hours * 3600 + minutes * 60 + seconds
    return total if total > 0 else None
