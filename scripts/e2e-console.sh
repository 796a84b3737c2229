#!/usr/bin/env bash
#
# scripts/e2e-console.sh — the web console in a real browser.
#
# Installs Debian's `chromium` and `chromium-driver` with apt-get when missing (as root, or
# with sudo), starts chromedriver on 127.0.0.1, and runs the integration test
# `console_e2e::the_console_in_a_real_browser` (headless Chromium through WebDriver: sign in,
# find a secret, a reveal whose form carries another CSRF token refused, reveal its value,
# see the GetSecretValue event and the statement that allowed it in the audit explorer,
# simulate a policy, a limited user refused with the API's denial message, a forged cookie
# refused). Screenshots of each main page are written to
# SCREENSHOTS (default: ${CARGO_TARGET_DIR:-target}/console-screenshots).
#
# Environment knobs (all optional):
#   SCREENSHOTS=DIR         where the PNG screenshots go
#   CHROMEDRIVER_PORT=N     chromedriver's port (default 9515)

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
exec </dev/null

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SCREENSHOTS="${SCREENSHOTS:-$TARGET/console-screenshots}"
PORT="${CHROMEDRIVER_PORT:-9515}"
DRIVER_PID=""
DRIVER_LOG="$(mktemp "${TMPDIR:-/tmp}/chromedriver.XXXXXX.log")"

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    sudo_apt=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || { echo "e2e-console: chromium and chromium-driver are missing, and neither root nor sudo is available to install them" >&2; exit 1; }
        sudo_apt=(sudo)
    fi
    echo "e2e-console: installing chromium and chromium-driver with apt-get"
    "${sudo_apt[@]}" apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive "${sudo_apt[@]}" apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null
fi

on_exit() {
    local rc=$?
    set +e
    if [[ -n "$DRIVER_PID" ]]; then
        kill -TERM "$DRIVER_PID" 2>/dev/null
        wait "$DRIVER_PID" 2>/dev/null
    fi
    if ((rc != 0)); then
        echo "e2e-console: FAILED; chromedriver log ($DRIVER_LOG):" >&2
        tail -n 30 "$DRIVER_LOG" >&2
    else
        rm -f "$DRIVER_LOG"
    fi
    exit "$rc"
}
trap on_exit EXIT

chromedriver --port="$PORT" --allowed-ips=127.0.0.1 >"$DRIVER_LOG" 2>&1 &
DRIVER_PID=$!
for ((i = 0; i < 100; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        break
    fi
    kill -0 "$DRIVER_PID" 2>/dev/null || { echo "e2e-console: chromedriver exited" >&2; exit 1; }
    sleep 0.1
done

rm -rf "$SCREENSHOTS"
mkdir -p "$SCREENSHOTS"
STRONGROOM_CONSOLE_E2E=1 \
WEBDRIVER_URL="http://127.0.0.1:$PORT" \
CHROMIUM_BINARY="$(command -v chromium)" \
STRONGROOM_CONSOLE_SCREENSHOTS="$SCREENSHOTS" \
    cargo test --test integration console_e2e:: -- --nocapture

shots=("$SCREENSHOTS"/*.png)
echo "e2e-console: passed; ${#shots[@]} screenshots in $SCREENSHOTS"
