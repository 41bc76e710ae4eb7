"""Strict checks shared by the profile and policy constructors: unknown keys are errors."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from trackwrap.errors import ProfileError

__all__ = ["as_bool", "as_mapping", "as_str", "as_str_list", "check_keys"]


def as_mapping(value: object, *, where: str) -> Mapping[str, object]:
    """``value`` as a mapping with string keys, or :class:`ProfileError`."""
    if not isinstance(value, Mapping):
        raise ProfileError(f"{where}: expected a mapping, got {_type_name(value)}")
    for key in value:
        if not isinstance(key, str):
            raise ProfileError(f"{where}: keys must be strings, got {key!r}")
    return value


def check_keys(
    data: Mapping[str, object],
    *,
    where: str,
    allowed: Collection[str],
    required: Collection[str] = (),
) -> None:
    """Reject unknown keys and missing required ones."""
    unknown = sorted(key for key in data if key not in allowed)
    if unknown:
        raise ProfileError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )
    missing = sorted(key for key in required if key not in data)
    if missing:
        raise ProfileError(f"{where}: missing required key {missing[0]!r}")


def as_str(value: object, *, where: str) -> str:
    """A non-empty string, or :class:`ProfileError`."""
    if not isinstance(value, str) or not value:
        raise ProfileError(f"{where}: expected a non-empty string, got {_type_name(value)}")
    return value


def as_bool(value: object, *, where: str) -> bool:
    """A boolean, or :class:`ProfileError`."""
    if not isinstance(value, bool):
        raise ProfileError(f"{where}: expected true or false, got {_type_name(value)}")
    return value


def as_str_list(value: object, *, where: str, scalar_ok: bool = False) -> tuple[str, ...]:
    """A non-empty list of non-empty strings (a lone string too when ``scalar_ok``)."""
    if scalar_ok and isinstance(value, str):
        return (as_str(value, where=where),)
    if not isinstance(value, list) or not value:
        raise ProfileError(f"{where}: expected a non-empty list, got {_type_name(value)}")
    return tuple(as_str(item, where=f"{where}[{index}]") for index, item in enumerate(value))


def _type_name(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"{value!r}" if value else "an empty string"
    return type(value).__name__
