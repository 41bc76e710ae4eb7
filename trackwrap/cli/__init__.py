"""The command line: ``trackwrap -- <server>`` relays; everything else is a typer app."""

from trackwrap.cli._main import SUBCOMMANDS, first_error, main

__all__ = ["SUBCOMMANDS", "first_error", "main"]
