#!/usr/bin/env bash
#
# scripts/bench.sh — the load benchmark (a separate command; not part of scripts/test.sh).
#
# Usage: scripts/bench.sh            the load benchmark (below)
#        scripts/bench.sh rotation   the rotation benchmark (benches/rotation.py): the
#                                    scheduler's idle CPU with 100,000 secrets none of which is
#                                    due, and 1,000 secrets due at once rotated by the built-in
#                                    PostgreSQL rotator (one role each, on a throwaway
#                                    PostgreSQL: scripts/pg.sh, TLS, durable settings) while
#                                    GetSecretValue on other secrets is timed. Knobs:
#                                    BENCH_ROT_SECRETS (100000; BENCH_ROT_API_SECRETS, 10000, of
#                                    them through the API), BENCH_ROT_IDLE (60 s),
#                                    BENCH_ROT_DUE (1000), BENCH_ROT_RATE (100 GetSecretValue/s),
#                                    BENCH_ROT_CONCURRENCY_FLAG and BENCH_ROT_CONCURRENCY (the
#                                    server's flag for the engine's concurrency, when it has
#                                    one), STRONGROOM_BIN, BENCH_KEEP=1.
#
# Builds strongroom (release) and the hello-world ceiling server (benches/load/hello), makes
# sure wrk (apt-get), the repo venv (.venv: boto3) and moto's venv (benches/load/.venv-moto:
# moto[server]) exist, starts a throwaway PostgreSQL (scripts/pg.sh, switched to durable
# settings: fsync, synchronous_commit, full_page_writes on), then runs benches/load/bench.py,
# which seeds, drives wrk and prints one table (markdown) on stdout; progress goes to stderr.
#
# Strongroom requests are signed as a policy-bound user (bench-reader: 10 identity statements;
# each secret carries a 2-statement resource policy), never as root. To report what durable
# audit costs, GetSecretValue also runs on a second binary, built with the cargo feature
# `bench-audit-off` into a target directory of its own (<target>/bench-audit-off, so the
# release binary is never replaced by it) and started on the same data with
# STRONGROOM_BENCHMARK_ONLY_DISABLE_AUDIT=1 (it then records nothing). That binary serves only
# the audit-off runs; the default build has no off switch. The table shows GetSecretValue with
# durable audit / with audit off, the median of BENCH_PAIRS (5) interleaved pairs of runs.
#
# Knobs (environment): BENCH_DURATION (10 s per run), BENCH_WARMUP (2 s), BENCH_CONNECTIONS
# (32), BENCH_THREADS (wrk threads, 2), BENCH_SECRETS (10000), BENCH_VERSIONS (5),
# BENCH_PG_SECRETS (10000), BENCH_PG_VERSIONS (1), BENCH_MOTO_SECRETS (1000),
# BENCH_DISTINCT (pre-signed requests per run, 400), BENCH_PROFILE (1: perf profile of an
# extra GetSecretValue run), BENCH_PAIRS (5), BENCH_METRICS_PAIRS (3: GetSecretValue with the
# metrics listener off and on, interleaved), BENCH_AGENT (1: the caching agent's rows), BENCH_SKIP_PG=1, BENCH_SKIP_MOTO=1, BENCH_KEEP=1 (keep the work
# directory), STRONGROOM_BIN (skip the release build and use this binary),
# STRONGROOM_BIN_AUDIT_OFF (skip the bench-audit-off build and use this binary),
# BENCH_PG_GET_RUNS (3: PostgreSQL GetSecretValue runs on one server, the median shown),
# BENCH_PG_CHANGE_CHECK_MS (5; 0 skips it: PostgreSQL GetSecretValue again, on a server started
# with --pg-change-check-ms N), BENCH_PG_TWO_PAIRS (3; 0 skips them: PostgreSQL GetSecretValue with one server and with two
# servers on the same database, interleaved pairs; each server pinned to a CPU of its own with
# taskset, server A to the first CPU, server B to the second, wrk and PostgreSQL not pinned;
# the table shows two / one, goal >= 1.6), BENCH_ONLY_PG=1 (only the PostgreSQL rows: no
# hello-world, SQLite, moto or agent runs, and neither the hello-world server nor the
# bench-audit-off binary is built).
#
# The numbers are only meaningful on an otherwise idle machine: the table's header shows the
# load average at the start and at the end of the run.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
exec </dev/null
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

say() { echo "[bench.sh] $*" >&2; }

# ---------------------------------------------------------------- rotation mode
if [[ "${1:-}" == rotation ]]; then
    if [[ -n "${STRONGROOM_BIN:-}" ]]; then
        BIN="$STRONGROOM_BIN"
    else
        say "cargo build --release --bins"
        cargo build --release --bins >&2
        BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/strongroom"
    fi
    [[ -x "$ROOT/.venv/bin/python" ]] || { say "no .venv (run scripts/test.sh once)"; exit 1; }
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/strongroom-bench-rotation.XXXXXX")"
    # shellcheck source=scripts/pg.sh
    source "$ROOT/scripts/pg.sh"
    on_exit_rotation() {
        local rc=$?
        set +e
        pg_stop
        if [[ "${BENCH_KEEP:-0}" == 1 ]] || ((rc != 0)); then say "work directory kept at $WORK"; else rm -rf "$WORK"; fi
        exit "$rc"
    }
    trap on_exit_rotation EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    pg_ensure_installed >&2
    pg_cleanup_stale "$ROOT/.pgtest"
    pg_start "$ROOT/.pgtest/run-$$" >&2
    pg_psql -c "ALTER SYSTEM SET fsync = on" -c "ALTER SYSTEM SET synchronous_commit = on" \
        -c "ALTER SYSTEM SET full_page_writes = on" -c "SELECT pg_reload_conf()" >/dev/null
    pg_createdb strongroom_bench_rotated
    export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"
    export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
    "$ROOT/.venv/bin/python" "$ROOT/benches/rotation.py" --bin "$BIN" --tmp "$WORK" --json "$WORK/results.json" \
        --pg-admin "host=$PG_HOST port=$PG_PORT user=$PG_USER dbname=strongroom_bench_rotated" \
        --pg-ca "$STRONGROOM_TEST_PG_CA" --psql "$PG_BIN/psql" \
        --secrets "${BENCH_ROT_SECRETS:-100000}" --api-secrets "${BENCH_ROT_API_SECRETS:-10000}" --idle "${BENCH_ROT_IDLE:-60}" --due "${BENCH_ROT_DUE:-1000}" \
        --load-rate "${BENCH_ROT_RATE:-100}" --concurrency-flag "${BENCH_ROT_CONCURRENCY_FLAG:-}" \
        --concurrency "${BENCH_ROT_CONCURRENCY:-4}"
    exit 0
fi

# ---------------------------------------------------------------- tools
if ! command -v wrk >/dev/null 2>&1; then
    say "installing wrk"
    if ((EUID == 0)); then sudo=(); else sudo=(sudo); fi
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q wrk >/dev/null
fi

if [[ ! -x "$ROOT/.venv/bin/python" ]] || ! "$ROOT/.venv/bin/python" -c 'import boto3' 2>/dev/null; then
    say "creating .venv with boto3"
    python3 -m venv "$ROOT/.venv"
    "$ROOT/.venv/bin/python" -m pip install -q --disable-pip-version-check boto3
fi

ONLY_PG="${BENCH_ONLY_PG:-0}"
if [[ "$ONLY_PG" == 1 ]]; then
    [[ "${BENCH_SKIP_PG:-0}" == 1 ]] && { say "BENCH_ONLY_PG=1 with BENCH_SKIP_PG=1 leaves nothing to run"; exit 2; }
    BENCH_SKIP_MOTO=1
fi
MOTO_VENV="$ROOT/benches/load/.venv-moto"
if [[ "${BENCH_SKIP_MOTO:-0}" != 1 ]] && [[ ! -x "$MOTO_VENV/bin/moto_server" ]]; then
    say "installing moto[server] into $MOTO_VENV"
    python3 -m venv "$MOTO_VENV"
    "$MOTO_VENV/bin/python" -m pip install -q --disable-pip-version-check 'moto[server]'
fi

# ---------------------------------------------------------------- builds
if [[ -n "${STRONGROOM_BIN:-}" ]]; then
    BIN="$STRONGROOM_BIN"
else
    say "cargo build --release --bins"
    cargo build --release --bins >&2
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/strongroom"
fi
only_args=()
if [[ "$ONLY_PG" == 1 ]]; then
    only_args=(--only-pg)
elif [[ -n "${STRONGROOM_BIN_AUDIT_OFF:-}" ]]; then
    BIN_AUDIT_OFF="$STRONGROOM_BIN_AUDIT_OFF"
else
    # Its own target directory: the audit-off binary never takes the release binary's place.
    OFF_TARGET="${CARGO_TARGET_DIR:-$ROOT/target}/bench-audit-off"
    say "cargo build --release --bins --features bench-audit-off (into $OFF_TARGET)"
    cargo build --release --bins --features bench-audit-off --target-dir "$OFF_TARGET" >&2
    BIN_AUDIT_OFF="$OFF_TARGET/release/strongroom"
fi
if [[ "$ONLY_PG" == 1 ]]; then
    BIN_AUDIT_OFF=""
    HELLO=""
else
    say "building the hello-world server (benches/load/hello)"
    cargo build --release --manifest-path "$ROOT/benches/load/hello/Cargo.toml" >&2
    # The hello crate is a workspace of its own: its target is CARGO_TARGET_DIR when set.
    HELLO="${CARGO_TARGET_DIR:-$ROOT/benches/load/hello/target}/release/strongroom-bench-hello"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/strongroom-bench.XXXXXX")"
STARTED_PG=0
on_exit() {
    local rc=$?
    set +e
    if ((STARTED_PG)); then pg_stop; fi
    if [[ "${BENCH_KEEP:-0}" == 1 ]] || ((rc != 0)); then
        say "work directory kept at $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- PostgreSQL
pg_args=()
if [[ "${BENCH_SKIP_PG:-0}" != 1 ]]; then
    # shellcheck source=scripts/pg.sh
    source "$ROOT/scripts/pg.sh"
    pg_ensure_installed >&2
    pg_cleanup_stale "$ROOT/.pgtest"
    pg_start "$ROOT/.pgtest/run-$$" >&2
    STARTED_PG=1
    # pg.sh tunes for tests (fsync off); a benchmark of durable writes needs them on.
    pg_psql -c "ALTER SYSTEM SET fsync = on" -c "ALTER SYSTEM SET synchronous_commit = on" \
        -c "ALTER SYSTEM SET full_page_writes = on" -c "SELECT pg_reload_conf()" >/dev/null
    pg_createdb strongroom_bench
    pg_args=(--pg-url "$(pg_url strongroom_bench)" --psql "$PG_BIN/psql")
    [[ -x "$PG_BIN/pgbench" ]] && pg_args+=(--pgbench "$PG_BIN/pgbench")
fi
moto_args=()
[[ "${BENCH_SKIP_MOTO:-0}" != 1 ]] && moto_args=(--moto-server "$MOTO_VENV/bin/moto_server")

export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
"$ROOT/.venv/bin/python" "$ROOT/benches/load/bench.py" \
    --bin "$BIN" --bin-audit-off "$BIN_AUDIT_OFF" --hello "$HELLO" --tmp "$WORK" --json "$WORK/results.json" \
    --duration "${BENCH_DURATION:-10}" --warmup "${BENCH_WARMUP:-2}" \
    --connections "${BENCH_CONNECTIONS:-32}" --threads "${BENCH_THREADS:-2}" \
    --secrets "${BENCH_SECRETS:-10000}" --versions "${BENCH_VERSIONS:-5}" \
    --pg-secrets "${BENCH_PG_SECRETS:-10000}" --pg-versions "${BENCH_PG_VERSIONS:-1}" \
    --moto-secrets "${BENCH_MOTO_SECRETS:-1000}" --distinct "${BENCH_DISTINCT:-400}" \
    --profile "${BENCH_PROFILE:-1}" --pairs "${BENCH_PAIRS:-5}" \
    --metrics-pairs "${BENCH_METRICS_PAIRS:-3}" --agent "${BENCH_AGENT:-1}" \
    --pg-get-runs "${BENCH_PG_GET_RUNS:-3}" \
    --pg-two-pairs "${BENCH_PG_TWO_PAIRS:-3}" --pg-change-check-ms "${BENCH_PG_CHANGE_CHECK_MS:-5}" \
    "${pg_args[@]}" "${moto_args[@]}" "${only_args[@]}"
