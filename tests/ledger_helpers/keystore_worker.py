"""Load (or create) the device key of HOME with the file backend; print its key id.

Usage: ``python -m tests.ledger_helpers.keystore_worker HOME``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from trackwrap.crypto import KeyStore


def main(argv: list[str]) -> int:
    (home,) = argv
    key = KeyStore(Path(home), backend="file", warn=lambda _message: None).device_key()
    sys.stdout.write(key.key_id + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
