#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and local development.
#
#   bash scripts/pg.sh start DIR   create (if missing) and start a cluster in DIR; prints its DSN,
#                                  postgresql://postgres@127.0.0.1:PORT/postgres, on stdout
#   bash scripts/pg.sh stop DIR    stop it (fast mode); nothing to do is not an error
#
# The cluster lives in DIR/data and logs to DIR/postgresql.log. It listens on 127.0.0.1 on a port
# the kernel reports free (retried if another process takes it first) and, when DIR's path is
# short enough, on a unix socket inside DIR, never in /var/run/postgresql. Authentication is
# `trust` (superuser `postgres`, no password), fsync is off, the time zone is UTC: test data only.
# Starting a running cluster prints its DSN again.
#
# PostgreSQL refuses to run as root: as root, DIR is made owned by the `postgres` user and
# initdb/pg_ctl run as that user (runuser, else setpriv). DIR's parent directories must let that
# user through (a 0700 directory such as /root or /tmp/pytest-of-root does not; /tmp does).
#
# Server binaries: $PG_BINDIR, else pg_ctl on PATH, else the newest /usr/lib/postgresql/*/bin
# (Debian's `postgresql` package, which scripts/setup.sh installs when they are missing).
# Exit codes: 0 done, 1 failed, 2 usage, 3 no PostgreSQL server binaries found.
set -euo pipefail

me=pg.sh
die() { echo "$me: $*" >&2; exit 1; }
usage() { echo "usage: bash scripts/pg.sh start|stop DIR" >&2; exit 2; }

[ $# -eq 2 ] || usage
cmd=$1
case $cmd in start | stop) ;; *) usage ;; esac
[ -n "$2" ] || usage

find_bindir() {
    local d cand
    if [ -n "${PG_BINDIR:-}" ]; then
        [ -x "$PG_BINDIR/pg_ctl" ] || die "PG_BINDIR=$PG_BINDIR has no pg_ctl"
        echo "$PG_BINDIR"
        return
    fi
    if cand=$(command -v pg_ctl 2>/dev/null); then
        d=$(dirname "$(readlink -f "$cand")")
        if [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then
            echo "$d"
            return
        fi
    fi
    d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    if [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then
        echo "$d"
        return
    fi
    echo "$me: no PostgreSQL server binaries (pg_ctl, initdb, postgres) on PATH or in" \
        "/usr/lib/postgresql/*/bin; install Debian's 'postgresql' package (scripts/setup.sh" \
        "does) or set PG_BINDIR" >&2
    exit 3
}

# Runs a command as the user the server runs as: `postgres` when we are root, else ourselves.
as_pg() {
    if [ "$(id -u)" -ne 0 ]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u postgres -- "$@"
    elif command -v setpriv >/dev/null 2>&1; then
        setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
    else
        die "running as root, but neither runuser nor setpriv is there to become 'postgres'"
    fi
}

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    else
        echo $((20000 + RANDOM % 30000))
    fi
}

dsn() { echo "postgresql://postgres@127.0.0.1:$1/postgres"; }

# The port of the postmaster running in $data, if one is (line 4 of postmaster.pid).
running_port() {
    local pid port
    [ -f "$data/postmaster.pid" ] || return 1
    pid=$(sed -n 1p "$data/postmaster.pid")
    port=$(sed -n 4p "$data/postmaster.pid")
    [ -n "$pid" ] && [ -n "$port" ] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$port"
}

if [ "$cmd" = stop ]; then
    [ -d "$2" ] || exit 0
    dir=$(cd "$2" && pwd)
    data=$dir/data
    [ -f "$data/postmaster.pid" ] || exit 0
    bin=$(find_bindir)
    cd "$dir"
    if ! as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>"$dir/.pg_ctl.err"; then
        # pg_ctl removes a stale pid file itself; only a live server it could not stop is an error.
        if running_port >/dev/null; then
            die "could not stop the cluster in $dir: $(cat "$dir/.pg_ctl.err")"
        fi
    fi
    rm -f "$dir/.pg_ctl.err"
    exit 0
fi

# start
bin=$(find_bindir)
if [ "$(id -u)" -eq 0 ] && ! id -u postgres >/dev/null 2>&1; then
    die "running as root, but there is no 'postgres' user to run the server as"
fi
mkdir -p "$2"
dir=$(cd "$2" && pwd)
data=$dir/data
log=$dir/postgresql.log
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
    as_pg test -w "$dir" -a -x "$dir" ||
        die "the postgres user cannot reach $dir (is a parent directory 0700, such as /root or" \
            "/tmp/pytest-of-root?); use a directory under /tmp"
fi
cd "$dir"

# One start at a time per DIR. The lock goes with this script's process: every command below
# that could leave a process behind (the postmaster) gets `9>&-` so it does not inherit it.
exec 9>>"$dir/.pg.lock"
flock 9

if port=$(running_port); then
    dsn "$port"
    exit 0
fi

if [ ! -f "$data/PG_VERSION" ]; then
    [ ! -e "$data" ] || [ -z "$(ls -A "$data")" ] ||
        die "$data exists and is not a PostgreSQL cluster; remove it or choose another DIR"
    as_pg "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
        >"$dir/initdb.log" 2>&1 9>&- || die "initdb failed: $(tail -n 20 "$dir/initdb.log")"
    # The socket path must fit in sun_path (107 bytes): $dir/.s.PGSQL.NNNNN.lock.
    if [ ${#dir} -le 80 ]; then socket_dir=$dir; else socket_dir=; fi
    cat >>"$data/postgresql.conf" <<EOF

# scripts/pg.sh: a throwaway cluster for tests
listen_addresses = '127.0.0.1'
unix_socket_directories = '$socket_dir'
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
EOF
fi

for _ in 1 2 3 4 5; do
    port=$(free_port)
    if as_pg "$bin/pg_ctl" -D "$data" -l "$log" -o "-p $port" -w -t 60 start \
        >"$log.start" 2>&1 9>&-; then
        rm -f "$log.start"
        dsn "$port"
        exit 0
    fi
    # Someone took the port between our probe and the server's bind: try another.
    if tail -n 20 "$log" 2>/dev/null | grep -q -e 'Address already in use' -e 'could not bind'; then
        continue
    fi
    break
done
die "could not start PostgreSQL in $dir: $(cat "$log.start"; tail -n 20 "$log" 2>/dev/null)"
