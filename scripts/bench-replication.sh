#!/usr/bin/env bash
#
# scripts/bench-replication.sh — the replication benchmark (a separate command; not part of
# scripts/test.sh).
#
# Usage: scripts/bench-replication.sh [MODE,...]   (default: same,lag,burst,dead)
#
# Builds strongroom (release), makes sure wrk (apt-get) and the repo venv (.venv: boto3) exist,
# then runs benches/replication.py, which starts its own servers (embedded SQLite, each in a
# directory of its own; the peer on TLS loopback with tests/fixtures/tls), prints the load
# average at the start and the end, and one section per mode (markdown) on stdout; progress
# goes to stderr:
#
#   same   PutSecretValue with 0, 1 and 2 replica regions served by the same server, at
#          saturation (wrk) and paced below it (each write's latency)
#          (target: at most +20 % time per write per replica region);
#   lag    peer replication lag p50/p99 under a steady PutSecretValue load (target: p99 < 1 s
#          at 500 writes/s);
#   burst  deliveries per second to a peer (a write to each of 1,000 replicated secrets);
#   dead   PutSecretValue on a primary with no peer, a dead peer and a slow peer (target: the
#          same throughput: the outbox absorbs the peer); then the same primaries paced below
#          saturation, for each write's latency.
#
# Knobs (environment): BENCH_DURATION (5 s per wrk run), BENCH_CONNECTIONS (16), BENCH_PAIRS
# (3 interleaved rounds), BENCH_SECRETS (200 per group), BENCH_RATE (500 writes/s),
# BENCH_PACED_RATE (same and dead modes' paced runs: 200 writes/s), BENCH_LAG_DURATION (20 s),
# BENCH_LAG_SECRETS (500), BENCH_BURST_SECRETS (1000), BENCH_KEEP=1 (keep the work directory),
# STRONGROOM_BIN (skip the release build and use this binary).
#
# The machine is shared and noisy: compare numbers only within one run.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
exec </dev/null
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
MODES="${1:-same,lag,burst,dead}"

say() { echo "[bench-replication.sh] $*" >&2; }

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

if [[ -n "${STRONGROOM_BIN:-}" ]]; then
    BIN="$STRONGROOM_BIN"
else
    say "cargo build --release --bins"
    cargo build --release --bins >&2
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/strongroom"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/strongroom-bench-replication.XXXXXX")"
on_exit() {
    local rc=$?
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

export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
"$ROOT/.venv/bin/python" "$ROOT/benches/replication.py" \
    --bin "$BIN" --tmp "$WORK" --json "$WORK/results.json" --modes "$MODES" \
    --duration "${BENCH_DURATION:-5}" --connections "${BENCH_CONNECTIONS:-16}" \
    --pairs "${BENCH_PAIRS:-3}" --secrets "${BENCH_SECRETS:-200}" --rate "${BENCH_RATE:-500}" \
    --paced-rate "${BENCH_PACED_RATE:-200}" \
    --lag-duration "${BENCH_LAG_DURATION:-20}" --lag-secrets "${BENCH_LAG_SECRETS:-500}" \
    --burst-secrets "${BENCH_BURST_SECRETS:-1000}"
