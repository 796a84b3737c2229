# shellcheck shell=bash
#
# scripts/pg.sh — helpers for a throwaway PostgreSQL server used by the tests.
#
# Source this file, then:
#
#   pg_ensure_installed        # apt-get install postgresql / libpq-dev / openssl if missing
#   pg_start DIR               # fresh initdb in DIR, start on 127.0.0.1:<free port>
#   pg_createdb NAME           # (re)create database NAME (dropped first if present)
#   pg_url NAME                # print postgres://USER@127.0.0.1:PORT/NAME
#   pg_stop                    # stop the server and delete its directory
#   pg_cleanup_stale BASE      # remove BASE/run-* left behind by dead runs
#
# After pg_start these are exported: PG_BIN (server binaries), PG_USER,
# PG_HOST (always 127.0.0.1), PG_PORT, PG_DIR (run directory, holding
# data/ and postgres.log) and PG_LOG; and, when openssl is present,
# STRONGROOM_TEST_PG_CA: the self-signed certificate (CN and SAN 127.0.0.1)
# of the server's TLS, generated at each start.
#
# PostgreSQL refuses to run as root, so as root the server runs as the
# unprivileged system user "strongroom-pg" (created if missing) via runuser;
# as any other user it simply runs as that user. Authentication is "trust"
# for PG_USER (the tests' own user), which is fine because the server listens
# on loopback only and has no Unix socket at all. Other roles (those the
# rotation tests create) log in with a password over TLS only, except members
# of the role "strongroom_plaintext_ok", who may also log in without TLS (the
# rotation tests' explicit plaintext opt-out).
#
# Everything here is idempotent: pg_start on an already running server (same
# DIR) is a no-op, pg_stop without a running server is a no-op.

# The system user owning the server when we are root.
PG_SYSTEM_USER="${PG_SYSTEM_USER:-strongroom-pg}"

# Print the newest /usr/lib/postgresql/*/bin directory that has initdb, or
# nothing (exit status 1) if no server is installed.
pg_find_bin() {
    local initdb
    # Newest version wins (sort -V orders 9.6 < 13 < 15 < 16).
    initdb="$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)"
    if [[ -x "$initdb" ]]; then
        dirname "$initdb"
        return 0
    fi
    # Not a Debian layout (e.g. a developer's laptop): fall back to PATH.
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

# Install the PostgreSQL server and libpq headers from Debian when missing.
pg_ensure_installed() {
    local -a pkgs=()
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        pkgs+=(postgresql)
    fi
    if [[ ! -f /usr/include/postgresql/libpq-fe.h ]]; then
        pkgs+=(libpq-dev)
    fi
    if ! command -v openssl >/dev/null 2>&1; then
        pkgs+=(openssl) # the test server's TLS certificate (pg_start)
    fi
    if ((${#pkgs[@]} == 0)); then
        echo "postgresql server binaries, libpq-dev and openssl already present ($(pg_find_bin))"
        return 0
    fi

    local -a sudo=()
    if ((EUID != 0)); then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "error: need to install ${pkgs[*]} but not root and no sudo" >&2
            return 1
        fi
    fi

    echo "installing ${pkgs[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    local -a apt_opts=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    "${sudo[@]}" apt-get update -q </dev/null >/dev/null
    if [[ " ${pkgs[*]} " == *" postgresql "* ]]; then
        # Debian's postgresql package creates and starts a "main" cluster on
        # port 5432 by default. We never use it, so tell postgresql-common not
        # to create one (this is the documented knob in createcluster.conf).
        "${sudo[@]}" apt-get install "${apt_opts[@]}" postgresql-common </dev/null >/dev/null
        if [[ -f /etc/postgresql-common/createcluster.conf ]]; then
            "${sudo[@]}" sed -i -E 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
                /etc/postgresql-common/createcluster.conf
        fi
    fi
    "${sudo[@]}" apt-get install "${apt_opts[@]}" "${pkgs[@]}" </dev/null >/dev/null

    if ! pg_find_bin >/dev/null; then
        echo "error: PostgreSQL server binaries still missing after install" >&2
        return 1
    fi
    echo "installed; server binaries in $(pg_find_bin)"
}

# Print a free TCP port on 127.0.0.1 (asks the kernel for an ephemeral one).
pg_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Run a command as the PostgreSQL user, from inside the run directory (so
# that the unprivileged user is never left in a directory it cannot read).
_pg_as_user() {
    if ((EUID == 0)); then
        (cd "$PG_DIR" && runuser -u "$PG_USER" -- "$@")
    else
        (cd "$PG_DIR" && "$@")
    fi
}

# Create the system user when running as root.
_pg_ensure_user() {
    if ((EUID != 0)); then
        PG_USER="$(id -un)"
        return 0
    fi
    PG_USER="$PG_SYSTEM_USER"
    if ! id -u "$PG_USER" >/dev/null 2>&1; then
        echo "creating system user $PG_USER"
        useradd --system --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$PG_USER"
    fi
    if ! command -v runuser >/dev/null 2>&1; then
        echo "error: runuser (util-linux) not found" >&2
        return 1
    fi
}

# True when a postmaster is running in data directory $1.
_pg_running_in() {
    local pidfile="$1/postmaster.pid" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(head -n 1 "$pidfile" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# Stop whatever postmaster runs in data dir $1 (used for leftovers) and wait.
_pg_kill_in() {
    local pidfile="$1/postmaster.pid" pid i
    pid="$(head -n 1 "$pidfile" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    # SIGQUIT = immediate shutdown; fine for a throwaway cluster.
    kill -QUIT "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

# Remove BASE/run-* directories whose owning shell (the $$ in the name) is
# gone, stopping any server orphaned in them first.
pg_cleanup_stale() {
    local base="$1" dir owner
    [[ -d "$base" ]] || return 0
    for dir in "$base"/run-*; do
        [[ -d "$dir" ]] || continue
        owner="${dir##*/run-}"
        if [[ "$owner" =~ ^[0-9]+$ ]] && [[ "$owner" != "$$" ]] && kill -0 "$owner" 2>/dev/null; then
            continue # another live run owns it
        fi
        if _pg_running_in "$dir/data"; then
            echo "stopping orphaned PostgreSQL in $dir"
            _pg_kill_in "$dir/data"
        fi
        rm -rf "$dir"
    done
}

# pg_start DIR: initdb a brand-new cluster in DIR/data and start it.
pg_start() {
    local dir="${1:?usage: pg_start DIR}"
    mkdir -p "$(dirname "$dir")"
    dir="$(cd "$(dirname "$dir")" && pwd)/$(basename "$dir")"

    # Idempotence: already running here?
    if [[ "${PG_DIR:-}" == "$dir" ]] && _pg_running_in "$dir/data"; then
        echo "PostgreSQL already running on ${PG_HOST}:${PG_PORT}"
        return 0
    fi

    PG_BIN="$(pg_find_bin)" || {
        echo "error: PostgreSQL server binaries not found (run pg_ensure_installed)" >&2
        return 1
    }
    _pg_ensure_user

    # Never reuse anything: stop a leftover server and wipe the directory.
    if _pg_running_in "$dir/data"; then
        _pg_kill_in "$dir/data"
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    if ((EUID == 0)); then
        chown "$PG_USER" "$dir"
        chmod 700 "$dir"
        # The unprivileged user must be able to reach DIR: a clone under a
        # private home directory (e.g. /root) is not reachable. Fall back to
        # a private temporary directory in that case.
        if ! runuser -u "$PG_USER" -- test -w "$dir" 2>/dev/null; then
            echo "note: $PG_USER cannot reach $dir; using a temporary directory instead"
            rm -rf "$dir"
            dir="$(mktemp -d "${TMPDIR:-/tmp}/strongroom-pgtest.XXXXXX")"
            chown "$PG_USER" "$dir"
            chmod 700 "$dir"
        fi
    fi
    PG_DIR="$dir"
    PG_LOG="$dir/postgres.log"
    PG_HOST="127.0.0.1"

    _pg_as_user "$PG_BIN/initdb" --pgdata="$dir/data" --username="$PG_USER" \
        --auth=trust --encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 || {
        echo "error: initdb failed:" >&2
        cat "$dir/initdb.log" >&2
        return 1
    }

    # The port is probed then bound by postgres a moment later; another
    # process could grab it in between, so retry with a new port a few times.
    # pg_hba.conf: trust for PG_USER; passwords (over TLS only) for the other roles.
    {
        echo "host    all $PG_USER 127.0.0.1/32 trust"
        echo "host    all +strongroom_plaintext_ok 127.0.0.1/32 scram-sha-256"
        echo "hostssl all all 127.0.0.1/32 scram-sha-256"
    } >"$dir/data/pg_hba.conf"
    unset STRONGROOM_TEST_PG_CA
    if command -v openssl >/dev/null 2>&1 &&
        openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=127.0.0.1" \
            -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
            -keyout "$dir/data/server.key" -out "$dir/data/server.crt" >"$dir/openssl.log" 2>&1; then
        chmod 600 "$dir/data/server.key"
        if ((EUID == 0)); then
            chown "$PG_USER" "$dir/data/server.key" "$dir/data/server.crt"
        fi
        printf '\nssl = on\n' >>"$dir/data/postgresql.conf"
        STRONGROOM_TEST_PG_CA="$dir/data/server.crt"
        export STRONGROOM_TEST_PG_CA
    else
        echo "warning: openssl missing or failed: PostgreSQL runs without TLS" >&2
    fi

    local attempt
    for attempt in 1 2 3; do
        PG_PORT="$(pg_free_port)"
        # Appended settings override the defaults earlier in the file.
        cat >>"$dir/data/postgresql.conf" <<EOF

# --- strongroom test settings (attempt $attempt) ---
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
        if _pg_as_user "$PG_BIN/pg_ctl" --pgdata="$dir/data" --log="$PG_LOG" \
            --wait --timeout=60 start >/dev/null 2>&1; then
            export PG_BIN PG_USER PG_HOST PG_PORT PG_DIR PG_LOG
            echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') running as $PG_USER on $PG_HOST:$PG_PORT (dir $dir)"
            return 0
        fi
        echo "warning: PostgreSQL failed to start on port $PG_PORT (attempt $attempt)" >&2
    done
    echo "error: could not start PostgreSQL; log follows:" >&2
    cat "$PG_LOG" >&2 || true
    return 1
}

# pg_stop: stop the server started by pg_start and delete its directory
# (set PG_KEEP=1 to keep it for inspection).
pg_stop() {
    [[ -n "${PG_DIR:-}" ]] || return 0
    if _pg_running_in "$PG_DIR/data"; then
        _pg_as_user "$PG_BIN/pg_ctl" --pgdata="$PG_DIR/data" --mode=fast \
            --wait --timeout=30 stop >/dev/null 2>&1 || _pg_kill_in "$PG_DIR/data"
    fi
    if [[ "${PG_KEEP:-0}" != 1 ]]; then
        rm -rf "$PG_DIR"
    else
        echo "keeping PostgreSQL directory $PG_DIR"
    fi
    PG_DIR=""
}

# Print the connection URL for database NAME.
pg_url() {
    local name="${1:?usage: pg_url NAME}"
    echo "postgres://${PG_USER}@${PG_HOST}:${PG_PORT}/${name}"
}

# Run psql against the maintenance database (as the current OS user, over TCP).
pg_psql() {
    PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" --no-psqlrc --quiet -v ON_ERROR_STOP=1 \
        --host="$PG_HOST" --port="$PG_PORT" --username="$PG_USER" --dbname=postgres "$@"
}

# pg_createdb NAME: drop NAME if it exists, then create it empty.
pg_createdb() {
    local name="${1:?usage: pg_createdb NAME}"
    [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || {
        echo "error: bad database name: $name" >&2
        return 1
    }
    pg_psql -c "DROP DATABASE IF EXISTS \"$name\"" -c "CREATE DATABASE \"$name\"" >/dev/null
}
