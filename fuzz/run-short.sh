#!/usr/bin/env bash
#
# fuzz/run-short.sh — build every fuzz target and run each briefly on its seed corpus.
#
# Usage: fuzz/run-short.sh [TARGET...]        (default: every target in fuzz/Cargo.toml)
#
# Works on the stable toolchain: cargo-fuzz's instrumentation flags (-Cpasses=sancov-module,
# -Cllvm-args=-sanitizer-coverage-*) are stable codegen options; RUSTC_BOOTSTRAP=1 is set
# only so that cargo-fuzz's few nightly-gated bits never stop a stable build. Sanitizer:
# none (the crate forbids unsafe code; libFuzzer still catches panics, aborts, timeouts and
# OOMs). Installs cargo-fuzz (`cargo install cargo-fuzz --locked`, about a minute) when it is
# missing.
#
# Each target runs FUZZ_SECONDS (default 5) on a scratch copy of fuzz/corpus/TARGET, so the
# committed seeds stay as they are. Any crash fails the run; the crashing input is saved under
# fuzz/artifacts/TARGET/ and the command to reproduce it is printed.
#
# The build is cargo's dev profile (`cargo fuzz build --dev`): on a fresh machine the whole
# dependency tree is compiled with the instrumentation, which takes half the time of the
# release profile (288 s against 583 s on 2 cores), and the checks run with debug assertions
# (integer overflow panics). Its binaries try fewer inputs per second than release ones
# (policy_parse: 5,514 in 5 s against 91,280): a short run is a smoke test on the corpus plus
# a few thousand mutations; a longer run (fuzz/README.md) uses FUZZ_PROFILE=release.
#
# Knobs: FUZZ_SECONDS (5), FUZZ_PROFILE (dev | release), FUZZ_CODEGEN_UNITS (16: faster
# builds, slightly slower runs), FUZZ_JOBS (1; libFuzzer -fork=N workers per target),
# FUZZ_BUILD_ONLY (1: build the targets and stop; scripts/test.sh builds them early this way).

set -euo pipefail

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$FUZZ_DIR"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
SECS="${FUZZ_SECONDS:-5}"
CGU="${FUZZ_CODEGEN_UNITS:-16}"
PROFILE="${FUZZ_PROFILE:-dev}"
case "$PROFILE" in
    dev) profile_flag=(--dev); profile_dir=debug ;;
    release) profile_flag=(); profile_dir=release ;;
    *) echo "fuzz: FUZZ_PROFILE must be dev or release, not '$PROFILE'" >&2; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked
fi
echo "fuzz: $(cargo fuzz --version), $(rustc --version)"

if (($# > 0)); then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
echo "fuzz: targets: ${targets[*]}"

build=(--sanitizer none --codegen-units "$CGU" "${profile_flag[@]}")
start=$SECONDS
cargo fuzz build "${build[@]}"
echo "fuzz: built ($PROFILE profile) in $((SECONDS - start))s"
if [[ "${FUZZ_BUILD_ONLY:-0}" == 1 ]]; then
    exit 0
fi

SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/strongroom-fuzz.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT

# Run the binaries just built (not `cargo fuzz run`, which would rebuild first).
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
BINDIR="${CARGO_TARGET_DIR:-$FUZZ_DIR/target}/$TRIPLE/$profile_dir"

failed=()
for t in "${targets[@]}"; do
    mkdir -p "$SCRATCH/$t" "corpus/$t" "artifacts/$t"
    log="$SCRATCH/$t.log"
    echo "fuzz: $t for ${SECS}s on corpus/$t ($(find "corpus/$t" -type f | wc -l) seeds)"
    if "$BINDIR/$t" -artifact_prefix="$FUZZ_DIR/artifacts/$t/" -max_total_time="$SECS" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 ${FUZZ_JOBS:+-fork="$FUZZ_JOBS"} \
        "$SCRATCH/$t" "corpus/$t" >"$log" 2>&1; then
        # One summary line: executions, coverage, corpus size.
        runs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || true)"
        cov="$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)' "$log" | tail -n 1 | grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+' || true)"
        echo "fuzz: $t ok: ${runs:-?} runs, $cov"
    else
        failed+=("$t")
        echo "fuzz: $t FAILED:"
        # The panic message, the failing input and libFuzzer's summary.
        sed -n '/panicked at/,/^$/p' "$log" | head -n 30
        grep -E '^==[0-9]+== ERROR|^SUMMARY|Test unit written to|^Base64' "$log" | head -n 8 || true
        echo "fuzz: reproduce with: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none ${profile_flag[*]} $t artifacts/$t/<file>)"
    fi
done

if ((${#failed[@]} > 0)); then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets ok (${SECS}s each, $((SECONDS - start))s with the build)"
