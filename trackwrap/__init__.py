"""trackwrap: governs every MCP tool call an AI coding agent makes, before it runs."""

__all__ = ["__version__"]

__version__ = "0.1.0"
