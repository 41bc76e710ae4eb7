"""Try to open a ledger and append one record; print ``ok`` or the exception's class name.

Usage: ``python -m tests.ledger_helpers.open_worker DB``. The tests run it without
CAP_DAC_OVERRIDE when they run as root, so file permissions apply.
"""

from __future__ import annotations

import sys
from pathlib import Path

from trackwrap.crypto import SigningKey
from trackwrap.errors import Error
from trackwrap.ledger import Ledger


def main(argv: list[str]) -> int:
    (db,) = argv
    key = SigningKey.generate()
    try:
        with Ledger.open(Path(db), signer=lambda: key, clock_ms=lambda: 1) as ledger:
            ledger.ensure_session("s", genesis={})
            ledger.append("s", {"kind": "tool_call.decision"})
    except Error as exc:
        sys.stdout.write(type(exc).__name__ + "\n")
        return 1
    sys.stdout.write("ok\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
