#!/usr/bin/env bash
#
# scripts/test.sh — the one test command for strongroom (CI runs it via .ci/run).
#
# Phases, in order; the first failure stops the run with a non-zero exit:
#   1. prerequisites   PostgreSQL server binaries + libpq-dev, Prometheus (apt-get if missing)
#   2. python venv     .venv/ with awscli (v1) and boto3 for the walkthroughs
#   3. postgresql      throwaway server under .pgtest/, database strongroom_test
#   4. mariadb         throwaway server under .mariadbtest/ (TLS), for the rotation tests
#   5. lint            cargo fmt --check, cargo clippy -D warnings
#   6. build + tests   cargo build --bins, cargo test --all-targets (SQLite + PostgreSQL)
#   7. end-to-end      AWS CLI + boto3 walkthroughs against `strongroom serve`,
#                      on embedded SQLite and on PostgreSQL (at once); metrics, health and
#                      quotas (scripts/e2e-ops.sh: boto3, and Prometheus scraping);
#                      rotation through the AWS CLI with a boto3 command function and
#                      with the built-in rotators against this PostgreSQL and MariaDB;
#                      the web console in headless Chromium through WebDriver
#                      (scripts/e2e-console.sh: Debian's chromium + chromium-driver)
#   8. crash safety    scripts/crash.sh, on SQLite and PostgreSQL at once: 20 SIGKILL cycles
#                      each, and a rotation killed in each of its four steps (a command
#                      function, and the built-in PostgreSQL rotator rotating a role of this
#                      PostgreSQL)
#   9. fuzz (short)    fuzz/run-short.sh: every cargo-fuzz target for 5 s on its corpus
#                      (built at the lowest CPU priority while phases 7 and 8 run)
#
# The last line printed is "N passed, 0 failed" (N = phases that passed), or
# "N passed, 1 failed" when a phase failed.
#
# Environment knobs (all optional):
#   PG_KEEP=1          keep the throwaway PostgreSQL directory after the run
#   E2E_KEEP=1         keep the end-to-end data directories (passed to e2e.sh)

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=scripts/pg.sh
source "$ROOT/scripts/pg.sh"
# shellcheck source=scripts/mariadb.sh
source "$ROOT/scripts/mariadb.sh"

# Never wait for a terminal: CI has no stdin.
exec </dev/null
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

PASSED=0
SKIPPED=()
CURRENT_STEP=""
STEP_START=0
RUN_START=$SECONDS

# Start a phase: print its header line.
step() {
    CURRENT_STEP="$1"
    STEP_START=$SECONDS
    echo
    echo "==> [$((PASSED + ${#SKIPPED[@]} + 1))/9] $CURRENT_STEP"
}

# Finish the current phase successfully.
step_ok() {
    PASSED=$((PASSED + 1))
    echo "<== $CURRENT_STEP: ok ($((SECONDS - STEP_START))s)"
    CURRENT_STEP=""
}

# Finish the current phase as skipped (not counted as passed).
step_skip() {
    SKIPPED+=("$CURRENT_STEP ($1)")
    echo "<== $CURRENT_STEP: skipped: $1"
    CURRENT_STEP=""
}

# both_at_once LABEL_A CMD_A... -- LABEL_B CMD_B...: run two commands at once, each with its
# output in a log file; when both have ended, print each log under its label with its exit code.
# Fails if either failed. Each command is its own process (the commands above use `env`, not a
# shell function), so on_exit's `kill` reaches the script itself on an interrupt.
both_at_once() {
    local label_a="$1"
    shift
    local cmd_a=()
    while (($# > 0)) && [[ "$1" != "--" ]]; do
        cmd_a+=("$1")
        shift
    done
    (($# > 1)) || { echo "both_at_once: no second command" >&2; return 2; }
    shift
    local label_b="$1"
    shift
    local logs
    logs="$(mktemp -d "${TMPDIR:-/tmp}/strongroom-logs.XXXXXX")"
    "${cmd_a[@]}" >"$logs/a.log" 2>&1 &
    local pid_a=$!
    "$@" >"$logs/b.log" 2>&1 &
    local pid_b=$!
    local rc_a=0 rc_b=0
    wait "$pid_a" || rc_a=$?
    wait "$pid_b" || rc_b=$?
    echo "--- $label_a (exit code $rc_a):"
    cat "$logs/a.log"
    echo "--- $label_b (exit code $rc_b):"
    cat "$logs/b.log"
    rm -rf "$logs"
    ((rc_a == 0 && rc_b == 0))
}

# On any exit: stop PostgreSQL, then print the summary.
on_exit() {
    local rc=$?
    set +e
    # A fuzz build still running in the background (a phase before the fuzz phase failed).
    if [[ -n "${FUZZ_BUILD_PID:-}" ]]; then
        kill -- -"$FUZZ_BUILD_PID" 2>/dev/null
        wait "$FUZZ_BUILD_PID" 2>/dev/null
    fi
    # The walkthroughs or crash runs of a phase that was interrupted (each cleans up on TERM).
    local job
    for job in $(jobs -p); do
        kill "$job" 2>/dev/null
        wait "$job" 2>/dev/null
    done
    pg_stop
    mariadb_stop
    echo
    if ((${#SKIPPED[@]} > 0)); then
        printf 'skipped: %s\n' "${SKIPPED[@]}"
    fi
    if ((rc == 0)) && [[ -z "$CURRENT_STEP" ]]; then
        echo "all phases done in $((SECONDS - RUN_START))s"
        echo "$PASSED passed, 0 failed"
    else
        echo "FAILED in phase: ${CURRENT_STEP:-unknown} (exit code $rc, after $((SECONDS - RUN_START))s)"
        echo "$PASSED passed, 1 failed"
        ((rc != 0)) || rc=1
    fi
    exit "$rc"
}
trap on_exit EXIT
# Turn Ctrl-C / TERM into a normal failing exit so the EXIT trap cleans up.
trap 'exit 130' INT
trap 'exit 143' TERM

require_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || {
            echo "error: required command not found: $c" >&2
            return 1
        }
    done
}

# --------------------------------------------------------------------------
step "prerequisites (PostgreSQL server, libpq-dev, Prometheus)"
require_cmd cargo python3
pg_ensure_installed
# Prometheus (Debian's package) scrapes the metrics listener in scripts/e2e-ops.sh.
if command -v prometheus >/dev/null 2>&1; then
    echo "prometheus already present ($(command -v prometheus))"
else
    sudo_apt=()
    ((EUID == 0)) || sudo_apt=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_apt[@]}" apt-get update -q >/dev/null
    # Captured first: under pipefail, `grep -q` leaving early would fail apt-cache with SIGPIPE.
    policy=$(apt-cache policy prometheus)
    if ! grep -q 'Candidate: [0-9]' <<<"$policy"; then
        echo "error: no prometheus package in the apt sources" >&2
        exit 1
    fi
    echo "installing prometheus with apt-get"
    "${sudo_apt[@]}" apt-get install -y -q --no-install-recommends prometheus >/dev/null
    command -v prometheus >/dev/null 2>&1 || { echo "error: prometheus not on PATH after install" >&2; exit 1; }
fi
step_ok

# --------------------------------------------------------------------------
step "python venv (.venv: awscli, boto3)"
VENV="$ROOT/.venv"
# Reuse a working venv; recreate a broken one (e.g. python moved).
if [[ -d "$VENV" ]] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "removing broken venv"
    rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "creating $VENV"
    if ! python3 -m venv "$VENV"; then
        # Debian's own python3 needs python3-venv for ensurepip.
        if ((EUID == 0)) && command -v apt-get >/dev/null 2>&1; then
            rm -rf "$VENV"
            apt-get update -q >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
            python3 -m venv "$VENV"
        else
            exit 1
        fi
    fi
fi
if "$VENV/bin/python" -c 'import boto3, awscli' >/dev/null 2>&1 && [[ -x "$VENV/bin/aws" ]]; then
    echo "awscli and boto3 already installed"
else
    echo "pip install awscli boto3"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check awscli boto3
fi
"$VENV/bin/aws" --version
"$VENV/bin/python" -c 'import boto3; print("boto3", boto3.__version__)'
step_ok

# --------------------------------------------------------------------------
step "postgresql (throwaway server, database strongroom_test)"
pg_cleanup_stale "$ROOT/.pgtest"
pg_start "$ROOT/.pgtest/run-$$"
pg_createdb strongroom_test
STRONGROOM_TEST_DATABASE_URL="$(pg_url strongroom_test)"
export STRONGROOM_TEST_DATABASE_URL
echo "STRONGROOM_TEST_DATABASE_URL=$STRONGROOM_TEST_DATABASE_URL"
step_ok

# --------------------------------------------------------------------------
step "mariadb (throwaway server with TLS, for the MySQL/MariaDB rotators)"
mariadb_start "$ROOT/.mariadbtest/run-$$"
export STRONGROOM_TEST_MARIADB_URL STRONGROOM_TEST_MARIADB_CA
# (the URL holds the server's root password: only its host and port are printed)
echo "STRONGROOM_TEST_MARIADB_URL=mysql://...@127.0.0.1:$MARIADB_PORT"
step_ok

# --------------------------------------------------------------------------
step "lint (cargo fmt --check, cargo clippy -D warnings)"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
step_ok

# --------------------------------------------------------------------------
step "build + tests (cargo build --bins, cargo test --all-targets)"
cargo build --bins
# The store suite also runs on PostgreSQL via STRONGROOM_TEST_DATABASE_URL;
# REQUIRE makes those tests fail instead of skipping if it were missing.
# Four test threads on two CPUs: the integration tests spend most of their time waiting on the
# servers they start (fsyncs, restarts, retry back-offs): the integration binary took 267 s
# with two threads and 196 s with four, using 264 of the 392 CPU-seconds those 196 s had.
# RUST_TEST_THREADS overrides it.
RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}" STRONGROOM_REQUIRE_POSTGRES=1 STRONGROOM_REQUIRE_MARIADB=1 \
    cargo test --all-targets
step_ok

# --------------------------------------------------------------------------
# The fuzz targets' build (for phase 9) starts now, at the lowest CPU priority, in a process
# group of its own: the end-to-end and crash phases spend much of their time waiting (on
# servers, fsyncs, rotation leases), and the build takes that time instead of its own.
FUZZ_BUILD_LOG="$(mktemp "${TMPDIR:-/tmp}/strongroom-fuzz-build.XXXXXX")"
FUZZ_BUILD_ONLY=1 setsid -w nice -n 19 bash "$ROOT/fuzz/run-short.sh" >"$FUZZ_BUILD_LOG" 2>&1 &
FUZZ_BUILD_PID=$!

# --------------------------------------------------------------------------
step "end-to-end (AWS CLI + boto3 walkthroughs on SQLite and PostgreSQL at once; console in Chromium)"
# The two backends' walkthroughs run at once (each with its own server, data directory, free
# ports and database users).
echo "--- e2e on embedded SQLite (and metrics, health, quotas: scripts/e2e-ops.sh) and on PostgreSQL, at once"
pg_createdb strongroom_e2e
both_at_once "e2e on embedded SQLite" \
    env E2E_REQUIRE_PROMETHEUS=1 bash "$ROOT/scripts/e2e.sh" \
    -- "e2e on PostgreSQL" \
    bash "$ROOT/scripts/e2e.sh" --database-url "$(pg_url strongroom_e2e)"
echo "--- web console in headless Chromium (scripts/e2e-console.sh)"
bash "$ROOT/scripts/e2e-console.sh"
step_ok

# --------------------------------------------------------------------------
step "crash safety (20 SIGKILL cycles each on SQLite and PostgreSQL, at once)"
# The two backends' runs go at once: each has its own servers, data directories, free ports and
# databases, and both spend most of their time waiting (on restarts, fsyncs, rotation leases).
pg_createdb strongroom_crash
pg_createdb strongroom_crash_rotation
both_at_once "crash safety on embedded SQLite" \
    env CRASH_CYCLES="${CRASH_CYCLES:-20}" bash "$ROOT/scripts/crash.sh" sqlite \
    -- "crash safety on PostgreSQL" \
    env CRASH_CYCLES="${CRASH_CYCLES:-20}" CRASH_DATABASE_URL="$(pg_url strongroom_crash)" \
    CRASH_ROTATION_DATABASE_URL="$(pg_url strongroom_crash_rotation)" \
    bash "$ROOT/scripts/crash.sh" postgres
step_ok

# --------------------------------------------------------------------------
step "fuzz (short run)"
if [[ -f "$ROOT/fuzz/run-short.sh" ]]; then
    rc_build=0
    wait "$FUZZ_BUILD_PID" || rc_build=$?
    FUZZ_BUILD_PID=""
    echo "--- the targets' build, started at low priority before the end-to-end phase (exit code $rc_build):"
    cat "$FUZZ_BUILD_LOG"
    rm -f "$FUZZ_BUILD_LOG"
    ((rc_build == 0)) || exit 1
    bash "$ROOT/fuzz/run-short.sh"
    step_ok
else
    echo "fuzz/run-short.sh not found"
    step_skip "no fuzz/run-short.sh yet"
fi
