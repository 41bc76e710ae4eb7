"""The wrapper's usage line, shared by ``--help`` and the wrapper's own errors."""

__all__ = ["WRAP_USAGE"]

WRAP_USAGE = "trackwrap [--server NAME] [--workspace DIR] [options] -- <upstream command…>"
