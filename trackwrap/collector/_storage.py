"""Which storage a ``--db`` value names, and opening it."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import assert_never

from trackwrap.collector._interface import Storage
from trackwrap.errors import ConfigError

__all__ = ["StorageChoice", "open_storage"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_SQLITE_SCHEME = "sqlite:///"


class StorageChoice(StrEnum):
    """The storage backends: SQLite (a file path) and PostgreSQL (a ``postgresql://`` URL)."""

    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"

    @classmethod
    def of(cls, target: str) -> StorageChoice:
        """The backend ``target`` names: a ``postgresql://`` (or ``postgres://``) URL, else a
        file path (optionally written ``sqlite:///PATH``).

        Raises:
            ConfigError: an empty target or another URL scheme.
        """
        if not target:
            raise ConfigError("--db names a SQLite file or a postgresql:// URL")
        if target.startswith(_POSTGRES_SCHEMES):
            return cls.POSTGRESQL
        if "://" in target and not target.startswith(_SQLITE_SCHEME):
            raise ConfigError(f"--db {target.split('://', 1)[0]}://… is not supported; give a "
                              "SQLite file path or a postgresql:// URL")
        return cls.SQLITE


def open_storage(target: str | Path) -> Storage:
    """Open the storage ``target`` names (see :meth:`StorageChoice.of`).

    Raises:
        ConfigError: an unsupported target.
        CollectorError: the database cannot be opened.
    """
    text = str(target)
    choice = StorageChoice.of(text)
    if choice is StorageChoice.SQLITE:
        from trackwrap.collector._sqlite import SqliteStorage

        return SqliteStorage.open(Path(text.removeprefix(_SQLITE_SCHEME)))
    if choice is StorageChoice.POSTGRESQL:
        from trackwrap.collector._postgres import PostgresStorage

        return PostgresStorage.open(text)
    assert_never(choice)
