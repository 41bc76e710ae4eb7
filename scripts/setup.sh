#!/usr/bin/env bash
# Creates everything trackwrap's demo and tests need, idempotently:
#   .venv/            trackwrap (editable) with the dev and demo extras
#   .peers/shell/     mcp-shell-server in its own venv (it pins mcp<2)
#   node_modules/     the pinned npm peers, from package-lock.json via `npm ci`
#   PostgreSQL        Debian's `postgresql` package, when no server binaries are found
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

# PostgreSQL server binaries for the collector's PostgreSQL tests (scripts/pg.sh starts a
# throwaway cluster from them; tests/conftest.py's pg_server fixture does that per test session).
# Debian's `postgresql` package, installed when missing without starting its system service.
have_pg_server() {
    command -v pg_ctl >/dev/null 2>&1 && return 0
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/pg_ctl" ] && return 0
    done
    return 1
}
install_pg_server() {
    local sudo=() why='' apt_log rc=0 policy=/usr/sbin/policy-rc.d added_policy=''
    if ! command -v apt-get >/dev/null 2>&1; then
        why="pg_ctl not found and there is no apt-get to install Debian's postgresql package"
    elif [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            why="pg_ctl not found and installing postgresql needs root (sudo -n is not available)"
        fi
    fi
    if [ -n "$why" ]; then
        echo "setup: PostgreSQL tests will be skipped: $why" >&2
        return 0
    fi
    echo "setup: installing PostgreSQL (Debian package postgresql) for the PostgreSQL tests" >&2
    # policy-rc.d exit 101 keeps the package from starting its system service; tests start
    # their own cluster.
    if [ ! -e "$policy" ] &&
        "${sudo[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"; then
        added_policy=1
    fi
    apt_log=$(mktemp)
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y
               -o Dpkg::Use-Pty=0)
    if ! "${apt[@]}" install postgresql </dev/null >"$apt_log" 2>&1; then
        "${apt[@]}" update </dev/null >>"$apt_log" 2>&1 &&
            "${apt[@]}" install postgresql </dev/null >>"$apt_log" 2>&1 || rc=$?
    fi
    if [ -n "$added_policy" ]; then
        "${sudo[@]}" rm -f "$policy" || true
    fi
    if [ "$rc" -ne 0 ]; then
        tail -n 15 "$apt_log" >&2
        echo "setup: PostgreSQL tests will be skipped: apt-get install postgresql failed" \
            "(exit $rc, output above)" >&2
    elif ! have_pg_server; then
        echo "setup: PostgreSQL tests will be skipped: apt-get installed postgresql but no" \
            "pg_ctl is on PATH or in /usr/lib/postgresql/*/bin" >&2
    fi
    rm -f "$apt_log"
}
if ! have_pg_server; then
    install_pg_server
fi
