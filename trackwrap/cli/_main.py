"""``main()``: ``trackwrap … -- <server>`` relays, ``trackwrap hook …`` answers an agent's hook;
everything else goes to the typer app."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from trackwrap.cli._usage import COMMANDS, fast_help
from trackwrap.errors import Error

__all__ = ["SUBCOMMANDS", "first_error", "main"]

SUBCOMMANDS = frozenset(name for name, _summary in COMMANDS)


def _is_wrapper(argv: Sequence[str]) -> bool:
    """``--`` and no subcommand first means: wrap the command after it (an option's value
    may be a word that names a subcommand, as in ``--server sync``)."""
    return "--" in argv and argv[0] not in SUBCOMMANDS


def first_error(group: BaseExceptionGroup[BaseException]) -> Error | None:
    """The first trackwrap error inside a task group's exception group, if any."""
    for exc in group.exceptions:
        if isinstance(exc, Error):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = first_error(exc)
            if found is not None:
                return found
    return None


def _fail(err: Error) -> int:
    sys.stderr.write(f"trackwrap: error: {err.diagnostics()}\n")
    return err.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["hook"]:
        # An agent runs this before each built-in tool call and waits: no typer or rich.
        from trackwrap.cli._hook import run_hook

        return run_hook(args[1:])
    if _is_wrapper(args):
        from trackwrap.cli._wrap import run_wrapper

        try:
            return run_wrapper(args)
        except Error as err:
            return _fail(err)
        except BaseExceptionGroup as group:
            found = first_error(group)
            if found is None:
                raise
            return _fail(found)
    if args in ([], ["--help"], ["-h"]):
        sys.stdout.write(fast_help())
        return 0
    from trackwrap.cli._app import run_app

    return run_app(args)
