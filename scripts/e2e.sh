#!/usr/bin/env bash
#
# scripts/e2e.sh — end-to-end walkthroughs against a real `strongroom serve`.
#
# Usage: scripts/e2e.sh [--database-url URL]
#
# Starts target/debug/strongroom (override with STRONGROOM_BIN) on
# 127.0.0.1:<free port> with a fresh temporary data directory (embedded
# SQLite, or PostgreSQL with --database-url), runs the AWS CLI walkthrough
# (tests/e2e/walkthrough_cli.sh) and the boto3 walkthrough
# (tests/e2e/walkthrough_boto3.py) against it, stops it, and then checks that
# the marker the walkthroughs put into every secret value never appears in
# plaintext at rest: not in the data directory (SQLite files, server.log),
# and not in a pg_dump of the PostgreSQL database. On SQLite it also runs
# tests/e2e/replication_cli.sh (replication through the AWS CLI between two
# servers it starts, each with its own data directory) and then
# scripts/e2e-ops.sh (metrics, health, quotas with boto3 and Prometheus).
#
# The rotation walkthroughs run too: tests/e2e/rotation_cli.sh (a boto3 command function) and
# tests/e2e/rotation_builtin_cli.sh (the built-in PostgreSQL and MySQL rotators against real
# database users: the PostgreSQL and MariaDB of scripts/test.sh when their variables are
# inherited, else throwaway ones started here with scripts/pg.sh and scripts/mariadb.sh).
#
# Needs .venv/ with awscli and boto3 (scripts/test.sh creates it). The AWS CLI's commands run
# through tests/e2e/aws_forkserver.py (see "client settings" below); E2E_AWS_CLI_FORKED=0 runs
# .venv/bin/aws for each instead.
# E2E_KEEP=1 keeps the data directory afterwards (it is always kept, and its
# path printed, when something fails).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# The plaintext marker contained in every secret value the walkthroughs store.
MARKER="MARKER-7f3a9c-plaintext"

DATABASE_URL=""
while (($# > 0)); do
    case "$1" in
        --database-url)
            DATABASE_URL="${2:?--database-url needs a value}"
            shift 2
            ;;
        --database-url=*)
            DATABASE_URL="${1#*=}"
            shift
            ;;
        -h | --help)
            sed -n '3,28p' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        *)
            echo "e2e.sh: unknown argument: $1" >&2
            exit 2
            ;;
    esac
done

BIN="${STRONGROOM_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/strongroom}"
PYTHON="$ROOT/.venv/bin/python"
[[ -x "$BIN" ]] || { echo "e2e: server binary not found: $BIN (run cargo build --bins)" >&2; exit 1; }
[[ -x "$PYTHON" ]] || { echo "e2e: $PYTHON not found (run scripts/test.sh to create .venv)" >&2; exit 1; }

if [[ -n "$DATABASE_URL" ]]; then
    BACKEND="postgresql"
else
    BACKEND="sqlite"
fi

DATA_DIR="$(mktemp -d "${TMPDIR:-/tmp}/strongroom-e2e-$BACKEND.XXXXXX")"
LOG="$DATA_DIR/server.log"
SERVER_PID=""
FORKSERVER_PID=""
OK=0
STARTED_PG=0
STARTED_MARIADB=0

# Stop the server (graceful first, so SQLite checkpoints and the log is flushed).
stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        local i
        for ((i = 0; i < 100; i++)); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "e2e: server did not stop on SIGTERM within 10s; killing it" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

on_exit() {
    local rc=$?
    set +e
    stop_server
    if [[ -n "$FORKSERVER_PID" ]]; then
        kill -TERM "$FORKSERVER_PID" 2>/dev/null
        wait "$FORKSERVER_PID" 2>/dev/null
    fi
    [[ -n "${ROTATION_DB_DIR:-}" ]] && rm -rf "$ROTATION_DB_DIR"
    ((STARTED_PG)) && pg_stop
    ((STARTED_MARIADB)) && mariadb_stop
    if ((rc != 0 || OK != 1)); then
        echo "e2e ($BACKEND): FAILED; last lines of the server log ($LOG):" >&2
        tail -n 40 "$LOG" >&2 2>/dev/null
        echo "e2e ($BACKEND): data directory kept at $DATA_DIR" >&2
    elif [[ "${E2E_KEEP:-0}" == 1 ]]; then
        echo "e2e ($BACKEND): data directory kept at $DATA_DIR"
    else
        rm -rf "$DATA_DIR"
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# True once something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# ---------------------------------------------------------------- start server
PORT="$(free_port)"
export STRONGROOM_ROOT_ACCESS_KEY_ID="AKIAE2EROOT000000001"
export STRONGROOM_ROOT_SECRET_ACCESS_KEY="e2e/secret/key/for/tests/only/0000000000"

# A policies directory for this run: the repository's example plus a JWT issuer whose HMAC
# secret is generated here (never committed) and a role that trusts it.
POLICIES="$DATA_DIR/policies"
cp -r "$ROOT/policies" "$POLICIES"
mkdir -p "$POLICIES/accounts/111122223333/identity-providers"
python3 -c 'import secrets; print(secrets.token_hex(32))' > "$POLICIES/accounts/111122223333/identity-providers/e2e.hmac"
cat > "$POLICIES/accounts/111122223333/identity-providers/e2e.json" <<'JSON'
{"Issuer": "https://e2e.strongroom.test", "Audiences": ["strongroom"], "HmacSecretFile": "e2e.hmac",
 "Algorithms": ["HS256"]}
JSON
cat > "$POLICIES/accounts/111122223333/roles/e2e-web.json" <<'JSON'
{"RoleName": "e2e-web", "AttachedPolicies": ["arn:aws:iam::aws:policy/SecretsManagerReadOnly"],
 "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
   "Principal": {"Federated": "https://e2e.strongroom.test"}, "Action": "sts:AssumeRoleWithWebIdentity",
   "Condition": {"StringEquals": {"e2e.strongroom.test:aud": "strongroom", "e2e.strongroom.test:sub": "system:serviceaccount:payments:api"}}}]}}
JSON
export E2E_JWT_SECRET_FILE="$POLICIES/accounts/111122223333/identity-providers/e2e.hmac"
# The attacker walkthrough's principals: mallory, a limited user of the example account
# (tests/e2e/attacker.py extends her policy at run time), and a user of another account.
cat > "$POLICIES/accounts/111122223333/users/mallory.json" <<'JSON'
{"UserName": "mallory", "InlinePolicies": {"p": {"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["sts:AssumeRole", "secretsmanager:BatchGetSecretValue"], "Resource": "*"},
  {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
   "Condition": {"StringEquals": {"aws:ResourceTag/team": "a"}}},
  {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
   "Resource": "arn:aws:secretsmanager:*:111122223333:secret:office/*",
   "Condition": {"IpAddress": {"aws:SourceIp": "198.51.100.0/24"}}},
  {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
   "Resource": "arn:aws:secretsmanager:*:111122223333:secret:tls/*",
   "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]}}}
JSON
mkdir -p "$POLICIES/accounts/444455556666/users"
echo '{"AccountId": "444455556666"}' > "$POLICIES/accounts/444455556666/account.json"
cat > "$POLICIES/accounts/444455556666/users/outsider.json" <<'JSON'
{"UserName": "outsider", "InlinePolicies": {"p": {"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["secretsmanager:*", "kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"}]}}}
JSON
# The rotation walkthrough's functions (AWS's rotation template's shape, tests/fixtures/rotation/
# boto3, under its three-line wrapper) and their execution role, in the default account, where
# the root key creates its secrets. The function's "database" is a file outside the data
# directory (the at-rest scan below looks at the data directory only).
ROTATION_DB_DIR="$(mktemp -d "${TMPDIR:-/tmp}/strongroom-e2e-rotation.XXXXXX")"
export E2E_ROTATION_DB_DIR="$ROTATION_DB_DIR" E2E_ROTATION_ACCOUNT="000000000000"
mkdir -p "$POLICIES/accounts/000000000000/roles" "$POLICIES/accounts/000000000000/functions"
[[ -f "$POLICIES/accounts/000000000000/account.json" ]] ||
    echo '{"AccountId": "000000000000"}' >"$POLICIES/accounts/000000000000/account.json"
cat >"$POLICIES/accounts/000000000000/roles/e2e-rotator.json" <<'JSON'
{"RoleName": "e2e-rotator",
 "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
   "Principal": {"AWS": "arn:aws:iam::000000000000:root"}, "Action": "sts:AssumeRole"}]},
 "InlinePolicies": {"rotation": {"Version": "2012-10-17", "Statement": [
   {"Effect": "Allow", "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
     "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"],
    "Resource": "arn:aws:secretsmanager:*:000000000000:secret:e2e/rotation/*"},
   {"Effect": "Allow", "Action": "secretsmanager:GetRandomPassword", "Resource": "*"}]}}}
JSON
for fn in e2e-rotation e2e-rotation-v2; do
    cat >"$POLICIES/accounts/000000000000/functions/$fn.json" <<JSON
{"FunctionName": "$fn", "Role": "arn:aws:iam::000000000000:role/e2e-rotator", "Kind": "command",
 "Command": ["$PYTHON", "$ROOT/tests/fixtures/rotation/boto3/handler.py"], "TimeoutSeconds": 60,
 "MaxAttempts": 1, "Environment": {"CONTROL_DIR": "$ROTATION_DB_DIR"}}
JSON
done
# The built-in rotators' walkthrough (tests/e2e/rotation_builtin_cli.sh) rotates real database
# users: a PostgreSQL (the one scripts/test.sh started, when its variables are inherited, else
# a throwaway one of this run: scripts/pg.sh, TLS, an unprivileged system user as root) with a
# database of this run, and MariaDB likewise (scripts/mariadb.sh) when it is installed.
# shellcheck source=scripts/pg.sh
source "$ROOT/scripts/pg.sh"
# shellcheck source=scripts/mariadb.sh
source "$ROOT/scripts/mariadb.sh"
if [[ -n "${PG_PORT:-}" && -n "${STRONGROOM_TEST_PG_CA:-}" ]] && _pg_running_in "${PG_DIR:-/nonexistent}/data"; then
    echo "e2e ($BACKEND): rotated databases on the running PostgreSQL $PG_HOST:$PG_PORT"
else
    pg_ensure_installed
    pg_cleanup_stale "$ROOT/.pgtest"
    pg_start "$ROOT/.pgtest/run-$$"
    STARTED_PG=1
    [[ -n "${STRONGROOM_TEST_PG_CA:-}" ]] || { echo "e2e: PostgreSQL has no TLS (openssl missing)" >&2; exit 1; }
fi
E2E_PG_DB="strongroom_e2e_rotated_$BACKEND"
pg_createdb "$E2E_PG_DB"
export E2E_PG_DB
if [[ -z "${STRONGROOM_TEST_MARIADB_URL:-}" ]] && command -v mariadb >/dev/null 2>&1 &&
    { command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]]; }; then
    mariadb_start "$ROOT/.mariadbtest/e2e-$$"
    STARTED_MARIADB=1
fi
# The built-ins' functions: AWS's template names, declared with the test servers' CA (the
# certificate and host name verified), run as e2e-db-rotator; the PostgreSQL MultiUser one is
# left undeclared, so its bare template name resolves to the built-in run as the role of that
# name.
for role in e2e-db-rotator SecretsManagerRDSPostgreSQLRotationMultiUser; do
    cat >"$POLICIES/accounts/000000000000/roles/$role.json" <<JSON
{"RoleName": "$role",
 "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
   "Principal": {"AWS": "arn:aws:iam::000000000000:root"}, "Action": "sts:AssumeRole"}]},
 "InlinePolicies": {"rotation": {"Version": "2012-10-17", "Statement": [
   {"Effect": "Allow", "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
     "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"],
    "Resource": "arn:aws:secretsmanager:*:000000000000:secret:e2e/rotation/*"}]}}}
JSON
done
cat >"$POLICIES/accounts/000000000000/functions/SecretsManagerRDSPostgreSQLRotationSingleUser.json" <<JSON
{"FunctionName": "SecretsManagerRDSPostgreSQLRotationSingleUser", "Kind": "builtin",
 "Builtin": "SecretsManagerRDSPostgreSQLRotationSingleUser",
 "Role": "arn:aws:iam::000000000000:role/e2e-db-rotator", "TlsCaFile": "$STRONGROOM_TEST_PG_CA",
 "TimeoutSeconds": 30, "MaxAttempts": 1}
JSON
if [[ -n "${STRONGROOM_TEST_MARIADB_CA:-}" ]]; then
    cat >"$POLICIES/accounts/000000000000/functions/SecretsManagerRDSMySQLRotationSingleUser.json" <<JSON
{"FunctionName": "SecretsManagerRDSMySQLRotationSingleUser", "Kind": "builtin",
 "Builtin": "SecretsManagerRDSMySQLRotationSingleUser",
 "Role": "arn:aws:iam::000000000000:role/e2e-db-rotator", "TlsCaFile": "$STRONGROOM_TEST_MARIADB_CA",
 "TimeoutSeconds": 30, "MaxAttempts": 1}
JSON
fi
export E2E_BIN="$BIN" E2E_DATA_DIR="$DATA_DIR" E2E_POLICIES="$POLICIES" E2E_DATABASE_URL="$DATABASE_URL"

server_args=(serve --listen "127.0.0.1:$PORT" --data-dir "$DATA_DIR" --policies "$POLICIES")
if [[ -n "$DATABASE_URL" ]]; then
    server_args+=(--database-url "$DATABASE_URL")
fi
echo "e2e ($BACKEND): starting $BIN ${server_args[*]}"
"$BIN" "${server_args[@]}" >"$LOG" 2>&1 &
SERVER_PID=$!

deadline=$((SECONDS + 30))
until port_open "$PORT"; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "e2e ($BACKEND): server exited before accepting connections; log:" >&2
        cat "$LOG" >&2
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        echo "e2e ($BACKEND): server not accepting connections on port $PORT after 30s; log:" >&2
        cat "$LOG" >&2
        exit 1
    fi
    sleep 0.1
done
echo "e2e ($BACKEND): server up on 127.0.0.1:$PORT (pid $SERVER_PID)"

# ------------------------------------------------------------- client settings
export AWS_ACCESS_KEY_ID="$STRONGROOM_ROOT_ACCESS_KEY_ID"
export AWS_SECRET_ACCESS_KEY="$STRONGROOM_ROOT_SECRET_ACCESS_KEY"
export AWS_DEFAULT_REGION="us-east-1"
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT"
export AWS_PAGER=""
export AWS_EC2_METADATA_DISABLED="true"
# Isolate from any developer AWS configuration / credentials.
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_REGION AWS_CA_BUNDLE
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
# No retries: a server error must surface, not be papered over by a retry.
export AWS_RETRY_MODE="standard" AWS_MAX_ATTEMPTS="1"
# Never send loopback traffic through a proxy.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"
# The AWS CLI. Each `aws` command of the walkthroughs runs the CLI's own code
# (awscli.clidriver.main) in a process of its own, with its arguments, environment, working
# directory and standard streams; tests/e2e/aws_forkserver.py forks that process from one that
# imported the CLI once, which saves about 0.4 CPU-second of imports per command on a few
# hundred commands. E2E_AWS_CLI_FORKED=0 runs .venv/bin/aws itself instead.
if [[ "${E2E_AWS_CLI_FORKED:-1}" == 1 ]]; then
    export AWS_FORKSERVER_PYTHON="$PYTHON" AWS_FORKSERVER_SOCKET="$DATA_DIR/aws-cli.sock"
    "$PYTHON" "$ROOT/tests/e2e/aws_forkserver.py" serve "$AWS_FORKSERVER_SOCKET" </dev/null &
    FORKSERVER_PID=$!
    deadline=$((SECONDS + 60))
    until [[ -S "$AWS_FORKSERVER_SOCKET" ]]; do
        kill -0 "$FORKSERVER_PID" 2>/dev/null || { echo "e2e ($BACKEND): aws_forkserver.py exited" >&2; exit 1; }
        ((SECONDS < deadline)) || { echo "e2e ($BACKEND): aws_forkserver.py not listening after 60s" >&2; exit 1; }
        sleep 0.1
    done
    export AWS_CLI="$ROOT/tests/e2e/aws-forked"
else
    export AWS_CLI="$ROOT/.venv/bin/aws"
fi
"$AWS_CLI" --version

# ----------------------------------------------------------------- walkthroughs
echo "e2e ($BACKEND): AWS CLI walkthrough"
bash "$ROOT/tests/e2e/walkthrough_cli.sh"
echo "e2e ($BACKEND): boto3 walkthrough"
"$PYTHON" "$ROOT/tests/e2e/walkthrough_boto3.py"
echo "e2e ($BACKEND): attacker (boto3: each authorization hole tried and refused, and recorded)"
"$PYTHON" "$ROOT/tests/e2e/attacker.py"
echo "e2e ($BACKEND): rotation (AWS CLI: rotate-secret, --no-rotate-immediately, cancel-rotate-secret)"
bash "$ROOT/tests/e2e/rotation_cli.sh"
echo "e2e ($BACKEND): rotation with the built-ins (AWS CLI: PostgreSQL single and alternating users, MariaDB single user)"
bash "$ROOT/tests/e2e/rotation_builtin_cli.sh"
echo "e2e ($BACKEND): web identity (boto3 with AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE)"
"$PYTHON" "$ROOT/tests/e2e/web_identity.py"
# Replication across two servers of their own (a primary and its TLS peer, each with its own
# embedded SQLite data directory): run once, with the SQLite backend.
if [[ -z "$DATABASE_URL" ]]; then
    echo "e2e ($BACKEND): replication (AWS CLI: replicate-secret-to-regions, remove-regions-from-replication, stop-replication-to-replica; two servers)"
    PYTHON="$PYTHON" bash "$ROOT/tests/e2e/replication_cli.sh"
fi

stop_server

# ------------------------------------------------------- no plaintext at rest
# Dump the PostgreSQL database too (plain SQL; bytea appears as hex there,
# which the scanner below also looks for).
scan_paths=("$DATA_DIR")
if [[ -n "$DATABASE_URL" ]]; then
    pg_dump_bin=""
    # shellcheck source=scripts/pg.sh
    source "$ROOT/scripts/pg.sh"
    if pg_bin="$(pg_find_bin)" && [[ -x "$pg_bin/pg_dump" ]]; then
        pg_dump_bin="$pg_bin/pg_dump"
    elif command -v pg_dump >/dev/null 2>&1; then
        pg_dump_bin="$(command -v pg_dump)"
    else
        echo "e2e: pg_dump not found" >&2
        exit 1
    fi
    DUMP="$(mktemp "${TMPDIR:-/tmp}/strongroom-e2e-pgdump.XXXXXX")"
    "$pg_dump_bin" --no-owner --no-privileges --dbname="$DATABASE_URL" --file="$DUMP"
    # Sanity: the dump is not empty (it should hold the schema at least).
    [[ -s "$DUMP" ]] || { echo "e2e: pg_dump produced an empty file" >&2; exit 1; }
    # Keep it with the data directory (for inspection on failure).
    mv "$DUMP" "$DATA_DIR/pg_dump.sql"
    echo "e2e ($BACKEND): dumped the database to pg_dump.sql ($(wc -c <"$DATA_DIR/pg_dump.sql") bytes)"
fi

echo "e2e ($BACKEND): scanning ${scan_paths[*]} for plaintext marker"
# Looks for the marker as raw bytes, as hex (PostgreSQL bytea in pg_dump;
# any hex-encoded column) and as base64 at any of the three alignments.
python3 - "$MARKER" "${scan_paths[@]}" <<'PY'
import base64, os, sys

marker = sys.argv[1].encode()
needles = {"raw": [marker], "hex": [marker.hex().encode(), marker.hex().upper().encode()], "base64": []}
for pad in range(3):
    enc = base64.b64encode(b"\0" * pad + marker)
    # Drop the leading group touched by the padding and the trailing group
    # that depends on what follows: the middle depends on the marker only.
    start = 4 if pad else 0
    needles["base64"].append(enc[start:-4])

found = []
files = 0
scanned = []
for top in sys.argv[2:]:
    for dirpath, _dirs, names in os.walk(top):
        for name in names:
            path = os.path.join(dirpath, name)
            if not os.path.isfile(path):
                continue
            files += 1
            scanned.append(os.path.relpath(path, top))
            with open(path, "rb") as f:
                data = f.read()
            for kind, forms in needles.items():
                if any(n in data for n in forms):
                    found.append((path, kind))
for path, kind in found:
    print(f"plaintext found in {path} (as {kind})", file=sys.stderr)
if found:
    sys.exit(1)
if files == 0:
    print("e2e: nothing to scan (no files in the data directory?)", file=sys.stderr)
    sys.exit(1)
print(f"no plaintext marker in {files} file(s): {', '.join(scanned)}")
PY

# Metrics, health and quotas (a server of their own; embedded SQLite only).
if [[ -z "$DATABASE_URL" ]]; then
    echo "e2e ($BACKEND): operating (metrics, health, quotas; boto3 and Prometheus)"
    STRONGROOM_BIN="$BIN" bash "$ROOT/scripts/e2e-ops.sh"
fi

OK=1
echo "e2e ($BACKEND): OK"
