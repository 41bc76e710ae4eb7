#!/usr/bin/env bash
# Creates everything trackwrap's demo and tests need, idempotently:
#   .venv/            trackwrap (editable) with the dev and demo extras
#   .peers/shell/     mcp-shell-server in its own venv (it pins mcp<2)
#   node_modules/     the pinned npm peers, from package-lock.json via `npm ci`
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1

stamp() { sha256sum "$@" | sha256sum | cut -c1-16; }

if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
want=$(stamp pyproject.toml)
if [ "$(cat .venv/.trackwrap-stamp 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[dev]"
    echo "$want" > .venv/.trackwrap-stamp
fi

if [ ! -x .peers/shell/bin/python ]; then
    "$PY" -m venv .peers/shell
fi
want=$(stamp peers/requirements-shell.txt)
if [ "$(cat .peers/shell/.trackwrap-stamp 2>/dev/null)" != "$want" ]; then
    .peers/shell/bin/python -m pip install -q -r peers/requirements-shell.txt
    echo "$want" > .peers/shell/.trackwrap-stamp
fi

want=$(stamp package-lock.json)
if [ "$(cat node_modules/.trackwrap-stamp 2>/dev/null)" != "$want" ]; then
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" > node_modules/.trackwrap-stamp
fi
