# shellcheck shell=bash
#
# scripts/mariadb.sh — a throwaway MariaDB server for the rotation tests.
#
# Source this file, then:
#
#   mariadb_ensure_installed   # apt-get install mariadb-server / openssl if missing
#   mariadb_start DIR          # fresh datadir in DIR, start on 127.0.0.1:<free port>, TLS
#   mariadb_stop               # stop the server and delete its directory
#
# After mariadb_start these are exported: MARIADB_PORT, MARIADB_DIR (run
# directory: data/, tls/, mariadb.log), STRONGROOM_TEST_MARIADB_URL
# (mysql://root:PASSWORD@127.0.0.1:PORT/) and STRONGROOM_TEST_MARIADB_CA (the
# self-signed certificate, CN and SAN 127.0.0.1, generated at each start).
#
# The server refuses to run as root, so as root it runs as the unprivileged
# system user "strongroom-my" (created if missing) via runuser. It listens on
# loopback only, has its socket inside DIR, and root has a password (random,
# per start). Accounts the tests create choose REQUIRE SSL or not themselves.

MARIADB_SYSTEM_USER="${MARIADB_SYSTEM_USER:-strongroom-my}"

mariadb_ensure_installed() {
    local -a pkgs=()
    command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]] || pkgs+=(mariadb-server)
    command -v mariadb >/dev/null 2>&1 || pkgs+=(mariadb-client)
    command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
    if ((${#pkgs[@]} == 0)); then
        echo "mariadb-server, mariadb-client and openssl already present"
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
    "${sudo[@]}" apt-get update -qq || return 1
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
}

# A free TCP port on 127.0.0.1.
_mariadb_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Run "$@" as the server's owner.
_mariadb_as_owner() {
    if ((EUID == 0)); then
        runuser -u "$MARIADB_SYSTEM_USER" -- "$@"
    else
        "$@"
    fi
}

mariadb_start() {
    local dir="$1"
    if [[ -n "${MARIADB_DIR:-}" && "$MARIADB_DIR" == "$dir" && -f "$dir/mariadbd.pid" ]] &&
        kill -0 "$(cat "$dir/mariadbd.pid")" 2>/dev/null; then
        return 0
    fi
    mariadb_ensure_installed || return 1
    local mariadbd
    mariadbd="$(command -v mariadbd || echo /usr/sbin/mariadbd)"
    rm -rf "$dir"
    mkdir -p "$dir/data" "$dir/tls"
    if ((EUID == 0)); then
        id -u "$MARIADB_SYSTEM_USER" >/dev/null 2>&1 ||
            useradd --system --no-create-home --shell /usr/sbin/nologin "$MARIADB_SYSTEM_USER"
    fi
    # A throwaway CA and a server certificate it signs (rustls, as webpki, refuses a CA
    # certificate presented as the server's own).
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=strongroom test MariaDB CA" \
        -keyout "$dir/tls/ca.key" -out "$dir/tls/ca.crt" >/dev/null 2>&1 || return 1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$dir/tls/server.key" -out "$dir/tls/server.csr" >/dev/null 2>&1 || return 1
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$dir/tls/ext.cnf"
    openssl x509 -req -in "$dir/tls/server.csr" -CA "$dir/tls/ca.crt" -CAkey "$dir/tls/ca.key" \
        -CAcreateserial -days 2 -extfile "$dir/tls/ext.cnf" \
        -out "$dir/tls/server.crt" >/dev/null 2>&1 || return 1
    rm -f "$dir/tls/ca.key"
    if ((EUID == 0)); then
        chown -R "$MARIADB_SYSTEM_USER" "$dir"
        # The owner must reach DIR through its parents.
        local p="$dir"
        while [[ "$p" != / ]]; do
            p="$(dirname "$p")"
            chmod o+x "$p" 2>/dev/null || true
        done
    fi
    chmod 600 "$dir/tls/server.key"
    _mariadb_as_owner mariadb-install-db --no-defaults --datadir="$dir/data" \
        --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 || {
        cat "$dir/install.log" >&2
        return 1
    }
    local port password
    port="$(_mariadb_free_port)"
    password="root-$(openssl rand -hex 12)"
    _mariadb_as_owner "$mariadbd" --no-defaults --datadir="$dir/data" \
        --bind-address=127.0.0.1 --port="$port" --socket="$dir/mariadbd.sock" \
        --pid-file="$dir/mariadbd.pid" --log-error="$dir/mariadb.log" \
        --ssl-cert="$dir/tls/server.crt" --ssl-key="$dir/tls/server.key" \
        --skip-name-resolve --innodb-buffer-pool-size=16M --performance-schema=OFF \
        </dev/null >/dev/null 2>&1 &
    local i
    for ((i = 0; i < 60; i++)); do
        if mariadb --no-defaults -uroot --socket="$dir/mariadbd.sock" -e 'SELECT 1' >/dev/null 2>&1; then
            break
        fi
        sleep 0.5
    done
    # The root account: a password, from 127.0.0.1 too (the tests connect over TCP).
    mariadb --no-defaults -uroot --socket="$dir/mariadbd.sock" -e "
        CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
        ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '$password';
        GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
        CREATE DATABASE IF NOT EXISTS strongroom_rot;
        ALTER USER 'root'@'localhost' IDENTIFIED BY '$password';" || {
        cat "$dir/mariadb.log" >&2
        return 1
    }
    export MARIADB_DIR="$dir" MARIADB_PORT="$port"
    export STRONGROOM_TEST_MARIADB_URL="mysql://root:$password@127.0.0.1:$port/strongroom_rot"
    export STRONGROOM_TEST_MARIADB_CA="$dir/tls/ca.crt"
    echo "MariaDB on 127.0.0.1:$port (TLS), data in $dir"
}

mariadb_stop() {
    local dir="${MARIADB_DIR:-}"
    [[ -n "$dir" ]] || return 0
    if [[ -f "$dir/mariadbd.pid" ]]; then
        local pid i
        pid="$(cat "$dir/mariadbd.pid")"
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 60; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
    fi
    rm -rf "$dir"
    unset MARIADB_DIR MARIADB_PORT STRONGROOM_TEST_MARIADB_URL STRONGROOM_TEST_MARIADB_CA
}
