#!/usr/bin/env bash
# The whole test suite with its quality gates: ruff, mypy --strict, pytest (anyio plugin).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check trackwrap tests scripts
.venv/bin/mypy --strict trackwrap
.venv/bin/python -m pytest "$@"
