#!/usr/bin/env bash
# Sets up what the demo needs, then runs `trackwrap demo` against real MCP servers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/trackwrap demo "$@"
