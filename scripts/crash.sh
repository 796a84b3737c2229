#!/usr/bin/env bash
#
# scripts/crash.sh — crash-safety test: concurrent writers, SIGKILL, restart, check.
#
# Usage: scripts/crash.sh [sqlite|postgres|both]      (default: both)
#
# For each backend, runs tests/crash/crash_test.py: CRASH_CYCLES (default 20) cycles of
# start server → check everything acknowledged so far → concurrent boto3 writers →
# SIGKILL at a random moment → `strongroom audit verify` on the crashed data; then a final
# restart and a full check (see the docstring of tests/crash/crash_test.py). Then
# tests/crash/rotation_crash.py: a rotation killed (SIGKILL, server and function) in each of
# its four steps ends, after a restart, completed or cleanly failed, AWSCURRENT always readable
# (on PostgreSQL in a database of its own: CRASH_ROTATION_DATABASE_URL, or one it creates);
# the same for the built-in PostgreSQL rotator, rotating roles of the test PostgreSQL (the
# running scripts/pg.sh server, or one started here), AWSCURRENT's password always logging in.
#
# Uses target/debug/strongroom (override with STRONGROOM_BIN) and .venv/ (boto3), both made
# by scripts/test.sh. The PostgreSQL run starts a throwaway server with scripts/pg.sh, or uses
# the database named by CRASH_DATABASE_URL when set (it must be empty or a previous crash run's).
#
# Knobs: CRASH_CYCLES (20), CRASH_WRITERS (4), CRASH_MIN_RUN / CRASH_MAX_RUN (seconds of
# writing before the kill: 0.2 / 1.5), CRASH_SEED (random), CRASH_STRICT_AUDIT=0 (only
# report, as a NOTE, a write that never got an answer but became durable without its audit
# record; by default that fails the run: the record commits with the change),
# CRASH_KEEP=1 keeps the data directories (always kept, and printed, on failure).
#
# Test of the test: tests/crash/crash_test.py --inject-fault lost-version|lost-data|
# moved-label|audit-gap (SQLite) damages the data after the 2nd kill; the run must fail.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MODE="${1:-both}"
case "$MODE" in
    sqlite | postgres | both) ;;
    -h | --help)
        sed -n '3,28p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *)
        echo "crash.sh: unknown backend '$MODE' (sqlite|postgres|both)" >&2
        exit 2
        ;;
esac

BIN="${STRONGROOM_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/strongroom}"
PYTHON="$ROOT/.venv/bin/python"
[[ -x "$BIN" ]] || { echo "crash: server binary not found: $BIN (run cargo build --bins)" >&2; exit 1; }
[[ -x "$PYTHON" ]] || { echo "crash: $PYTHON not found (run scripts/test.sh to create .venv)" >&2; exit 1; }

# Loopback only; never through a proxy; no developer AWS configuration.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_ENDPOINT_URL AWS_CA_BUNDLE
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true

args=(--bin "$BIN" --cycles "${CRASH_CYCLES:-20}" --writers "${CRASH_WRITERS:-4}"
    --min-run "${CRASH_MIN_RUN:-0.2}" --max-run "${CRASH_MAX_RUN:-1.5}")
[[ -n "${CRASH_SEED:-}" ]] && args+=(--seed "$CRASH_SEED")
[[ "${CRASH_STRICT_AUDIT:-1}" == 0 ]] && args+=(--lenient-audit)

DIRS=()
STARTED_PG=0
on_exit() {
    local rc=$?
    set +e
    if ((STARTED_PG)); then pg_stop; fi
    for d in "${DIRS[@]}"; do
        if ((rc == 0)) && [[ "${CRASH_KEEP:-0}" != 1 ]]; then
            rm -rf "$d"
        else
            echo "crash: data directory kept at $d"
        fi
    done
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The test PostgreSQL the built-in rotator's crash test rotates roles in (both backends): the
# running throwaway server (e.g. scripts/test.sh's, whose variables are inherited) or one
# started here; sets ROTATED_ARGS for a database of the given name (one per backend, so that
# the two backends' runs can go at once against one server).
ROTATED_ARGS=()
rotated_pg() {
    local db="${1:?usage: rotated_pg DATABASE}"
    # shellcheck source=scripts/pg.sh
    source "$ROOT/scripts/pg.sh"
    if ! { [[ -n "${PG_PORT:-}" ]] && _pg_running_in "${PG_DIR:-/nonexistent}/data"; }; then
        pg_ensure_installed
        pg_cleanup_stale "$ROOT/.pgtest"
        pg_start "$ROOT/.pgtest/run-$$"
        STARTED_PG=1
    fi
    [[ -n "${STRONGROOM_TEST_PG_CA:-}" ]] || { echo "crash: the test PostgreSQL has no TLS" >&2; exit 1; }
    pg_createdb "$db"
    ROTATED_ARGS=(--rotated-pg "host=$PG_HOST port=$PG_PORT user=$PG_USER dbname=$db"
        --pg-ca "$STRONGROOM_TEST_PG_CA" --psql "$PG_BIN/psql")
}

run_sqlite() {
    local dir
    dir="$(mktemp -d "${TMPDIR:-/tmp}/strongroom-crash-sqlite.XXXXXX")"
    DIRS+=("$dir")
    "$PYTHON" "$ROOT/tests/crash/crash_test.py" "${args[@]}" --data-dir "$dir"
    dir="$(mktemp -d "${TMPDIR:-/tmp}/strongroom-crash-rotation-sqlite.XXXXXX")"
    DIRS+=("$dir")
    rotated_pg strongroom_crash_rotated_sqlite
    "$PYTHON" "$ROOT/tests/crash/rotation_crash.py" --bin "$BIN" --data-dir "$dir" "${ROTATED_ARGS[@]}"
}

run_postgres() {
    local dir url psql
    dir="$(mktemp -d "${TMPDIR:-/tmp}/strongroom-crash-pg.XXXXXX")"
    DIRS+=("$dir")
    # shellcheck source=scripts/pg.sh
    source "$ROOT/scripts/pg.sh"
    if [[ -n "${CRASH_DATABASE_URL:-}" ]]; then
        url="$CRASH_DATABASE_URL"
    elif [[ -n "${PG_PORT:-}" ]] && _pg_running_in "${PG_DIR:-/nonexistent}/data"; then
        # Called with a running throwaway server (e.g. from scripts/test.sh).
        pg_createdb strongroom_crash
        url="$(pg_url strongroom_crash)"
    else
        pg_ensure_installed
        pg_cleanup_stale "$ROOT/.pgtest"
        pg_start "$ROOT/.pgtest/run-$$"
        STARTED_PG=1
        pg_createdb strongroom_crash
        url="$(pg_url strongroom_crash)"
    fi
    if pg_bin="$(pg_find_bin)" && [[ -x "$pg_bin/psql" ]]; then
        psql="$pg_bin/psql"
    else
        psql="$(command -v psql)"
    fi
    "$PYTHON" "$ROOT/tests/crash/crash_test.py" "${args[@]}" --data-dir "$dir" \
        --database-url "$url" --psql "$psql"
    # Rotation under SIGKILL, on a database of its own (its data directory holds another
    # master key than the run above).
    if [[ -n "${CRASH_ROTATION_DATABASE_URL:-}" ]]; then
        url="$CRASH_ROTATION_DATABASE_URL"
    else
        pg_createdb strongroom_crash_rotation
        url="$(pg_url strongroom_crash_rotation)"
    fi
    dir="$(mktemp -d "${TMPDIR:-/tmp}/strongroom-crash-rotation-pg.XXXXXX")"
    DIRS+=("$dir")
    rotated_pg strongroom_crash_rotated_pg
    "$PYTHON" "$ROOT/tests/crash/rotation_crash.py" --bin "$BIN" --data-dir "$dir" --database-url "$url" \
        "${ROTATED_ARGS[@]}"
}

case "$MODE" in
    sqlite) run_sqlite ;;
    postgres) run_postgres ;;
    both)
        run_sqlite
        run_postgres
        ;;
esac
echo "crash ($MODE): OK"
