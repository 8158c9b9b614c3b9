# Throwaway PostgreSQL for the escrow server tests (tests/escrow/escrowd.rs run every scenario against
# SQLite and against PostgreSQL). Sourced by scripts/test.sh: installs the Debian package if
# needed, starts a private cluster on 127.0.0.1:55432 (trust auth, data under /tmp) unless one is
# already running there, and exports TCVAULT_TEST_POSTGRES_URL. Safe to run again.
# shellcheck shell=bash

# shellcheck source=../lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"

# Stops the cluster tcvault_pg_setup started (scripts/test.sh calls it at the end).
tcvault_pg_stop() {
    local dir=/tmp/tcvault-escrowd-pg bindir
    bindir=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d | sort -V | tail -n 1)
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    else
        sudo -u postgres "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
}

tcvault_pg_setup() {
    local port=55432 dir=/tmp/tcvault-escrowd-pg bindir
    local -a root=() as_pg=(runuser -u postgres --)
    if [ "$(id -u)" != 0 ]; then
        root=(sudo)
        as_pg=(sudo -u postgres)
    fi
    if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
        apt_install postgresql || return 1
    fi
    bindir=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d | sort -V | tail -n 1)
    if ! "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; then
        "${root[@]}" mkdir -p "$dir"
        "${root[@]}" chown postgres:postgres "$dir"
        if [ ! -s "$dir/data/PG_VERSION" ]; then
            "${as_pg[@]}" "$bindir/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
        fi
        # A stale pid file from a killed run would stop pg_ctl; the cluster is not running here.
        "${as_pg[@]}" rm -f "$dir/data/postmaster.pid"
        "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=300" \
            start >/dev/null
        tcvault_pg_started=1
        setup_note "started a PostgreSQL test cluster on 127.0.0.1:$port (data in $dir)"
    fi
    export TCVAULT_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
}
tcvault_pg_setup
