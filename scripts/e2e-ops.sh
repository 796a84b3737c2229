#!/usr/bin/env bash
#
# scripts/e2e-ops.sh — operating Strongroom end to end: metrics, health, quotas.
#
# Starts target/debug/strongroom (override with STRONGROOM_BIN) on embedded SQLite with
# --metrics-listen and a low quota for GetRandomPassword (2/s), runs tests/e2e/ops_boto3.py
# (throttling as AWS answers it, boto3's standard retry recovering, the metrics and health
# probes), then starts Prometheus (Debian's `prometheus` package; as an unprivileged user
# when run as root) scraping the metrics listener every second and asks its HTTP API for the
# server's request count, which must be above zero.
#
# Needs .venv/ with boto3 (scripts/test.sh creates it) and `prometheus` on PATH (scripts/test.sh
# installs it). Without Prometheus the scrape check is skipped with a message, unless
# E2E_REQUIRE_PROMETHEUS=1 (set by scripts/test.sh), which makes it fail instead.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BIN="${STRONGROOM_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/strongroom}"
PYTHON="$ROOT/.venv/bin/python"
PROM_SYSTEM_USER="strongroom-prom"
[[ -x "$BIN" ]] || { echo "e2e-ops: server binary not found: $BIN (run cargo build --bins)" >&2; exit 1; }
[[ -x "$PYTHON" ]] || { echo "e2e-ops: $PYTHON not found (run scripts/test.sh to create .venv)" >&2; exit 1; }

DIR="$(mktemp -d "${TMPDIR:-/tmp}/strongroom-e2e-ops.XXXXXX")"
LOG="$DIR/server.log"
PROM_DIR="$DIR/prometheus"
SERVER_PID=""
PROM_PID=""
OK=0

stop_pid() {
    local pid="$1" i
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

on_exit() {
    local rc=$?
    set +e
    stop_pid "$PROM_PID"
    stop_pid "$SERVER_PID"
    if ((rc != 0 || OK != 1)); then
        echo "e2e-ops: FAILED; last lines of the server log ($LOG):" >&2
        tail -n 30 "$LOG" >&2 2>/dev/null
        [[ -f "$PROM_DIR/prometheus.log" ]] && { echo "--- prometheus log:" >&2; tail -n 20 "$PROM_DIR/prometheus.log" >&2; }
        echo "e2e-ops: directory kept at $DIR" >&2
    else
        rm -rf "$DIR"
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Wait (at most $2 seconds) until 127.0.0.1:$1 accepts connections while pid $3 lives.
wait_port() {
    local port="$1" deadline=$((SECONDS + $2)) pid="$3"
    until port_open "$port"; do
        kill -0 "$pid" 2>/dev/null || { echo "e2e-ops: process $pid exited before listening on $port" >&2; return 1; }
        ((SECONDS < deadline)) || { echo "e2e-ops: nothing listening on $port after $2s" >&2; return 1; }
        sleep 0.1
    done
}

# ------------------------------------------------------------------- server
PORT="$(free_port)"
MPORT="$(free_port)"
export STRONGROOM_ROOT_ACCESS_KEY_ID="AKIAE2EOPSROOT000001"
export STRONGROOM_ROOT_SECRET_ACCESS_KEY="e2e/ops/secret/key/for/tests/only/000000"
cat >"$DIR/strongroom.toml" <<'TOML'
# Two GetRandomPassword calls per second per account and region; nothing else limited.
[quota_groups]
random_password = 2
TOML
"$BIN" serve --config "$DIR/strongroom.toml" --listen "127.0.0.1:$PORT" \
    --metrics-listen "127.0.0.1:$MPORT" --data-dir "$DIR/data" --policies "$DIR/no-policies" \
    >"$LOG" 2>&1 &
SERVER_PID=$!
wait_port "$PORT" 30 "$SERVER_PID"
wait_port "$MPORT" 10 "$SERVER_PID"
echo "e2e-ops: server on 127.0.0.1:$PORT, metrics on 127.0.0.1:$MPORT"

export AWS_ACCESS_KEY_ID="$STRONGROOM_ROOT_ACCESS_KEY_ID"
export AWS_SECRET_ACCESS_KEY="$STRONGROOM_ROOT_SECRET_ACCESS_KEY"
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT"
export E2E_METRICS_URL="http://127.0.0.1:$MPORT"
export AWS_EC2_METADATA_DISABLED="true"
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_REGION AWS_CA_BUNDLE AWS_MAX_ATTEMPTS AWS_RETRY_MODE
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

"$PYTHON" "$ROOT/tests/e2e/ops_boto3.py"

# --------------------------------------------------------------- prometheus
if ! command -v prometheus >/dev/null 2>&1; then
    if [[ "${E2E_REQUIRE_PROMETHEUS:-0}" == 1 ]]; then
        echo "e2e-ops: prometheus not found (scripts/test.sh installs Debian's package)" >&2
        exit 1
    fi
    echo "e2e-ops: SKIPPED the Prometheus scrape check: prometheus not on PATH"
    OK=1
    exit 0
fi
PPORT="$(free_port)"
mkdir -p "$PROM_DIR/data"
cat >"$PROM_DIR/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: strongroom
    static_configs:
      - targets: ["127.0.0.1:$MPORT"]
YAML
prom_args=(--config.file="$PROM_DIR/prometheus.yml" --storage.tsdb.path="$PROM_DIR/data"
    --web.listen-address="127.0.0.1:$PPORT")
if ((EUID == 0)); then
    # Never run a network daemon as root: a system user of its own, as scripts/pg.sh does.
    if ! id -u "$PROM_SYSTEM_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PROM_SYSTEM_USER"
    fi
    chmod 0755 "$DIR"
    chown -R "$PROM_SYSTEM_USER" "$PROM_DIR"
    (cd "$PROM_DIR" && exec runuser -u "$PROM_SYSTEM_USER" -- prometheus "${prom_args[@]}") \
        >"$PROM_DIR/prometheus.log" 2>&1 &
else
    (cd "$PROM_DIR" && exec prometheus "${prom_args[@]}") >"$PROM_DIR/prometheus.log" 2>&1 &
fi
PROM_PID=$!
wait_port "$PPORT" 30 "$PROM_PID"
echo "e2e-ops: $(prometheus --version 2>&1 | head -n 1) on 127.0.0.1:$PPORT (pid $PROM_PID)"

# Ask Prometheus (bounded wait) for the request count it scraped.
python3 - "http://127.0.0.1:$PPORT" <<'PY'
import json, sys, time, urllib.parse, urllib.request

base = sys.argv[1]
query = 'sum(strongroom_request_duration_seconds_count{job="strongroom"})'
deadline = time.time() + 30
last = None
while time.time() < deadline:
    try:
        url = f"{base}/api/v1/query?query={urllib.parse.quote(query)}"
        with urllib.request.urlopen(url, timeout=5) as r:
            last = json.load(r)
        result = last["data"]["result"]
        if last["status"] == "success" and result and float(result[0]["value"][1]) > 0:
            print(f"e2e-ops: Prometheus answers {query} = {result[0]['value'][1]}")
            sys.exit(0)
    except (OSError, ValueError, KeyError) as e:
        last = repr(e)
    time.sleep(0.5)
print(f"e2e-ops: Prometheus never reported a non-zero request count; last answer: {last}", file=sys.stderr)
sys.exit(1)
PY
OK=1
echo "e2e-ops: ok"
