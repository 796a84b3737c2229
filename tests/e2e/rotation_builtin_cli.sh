#!/usr/bin/env bash
#
# tests/e2e/rotation_builtin_cli.sh — the rotation scenario of AWS's guides through the AWS CLI
# (v1) with the built-in rotators against a real PostgreSQL (and a real MariaDB when one is
# given): configure rotation with rules and rotate now, test-only rotation with
# --no-rotate-immediately, rotate now again, change the function (single user -> alternating
# users, with masterarn) and the rules (a cron ScheduleExpression with a Duration), stop
# rotation with cancel-rotate-secret. After every rotation psql (mariadb) proves that the new
# password logs in and, single user, that the old one no longer does; alternating users, that
# the previous user's password keeps working until the rotation after the next one.
#
# Started by scripts/e2e.sh, which gives it a PostgreSQL (scripts/pg.sh: PG_BIN, PG_HOST,
# PG_PORT, PG_USER, STRONGROOM_TEST_PG_CA in the environment; E2E_PG_DB a database of its
# own) and, when MariaDB is available, STRONGROOM_TEST_MARIADB_URL and STRONGROOM_TEST_MARIADB_CA;
# and declares, in the default account:
#   - functions/SecretsManagerRDSPostgreSQLRotationSingleUser.json and
#     functions/SecretsManagerRDSMySQLRotationSingleUser.json: kind builtin, TlsCaFile the test
#     servers' CA (the certificate and host name are verified), role e2e-db-rotator;
#   - roles/SecretsManagerRDSPostgreSQLRotationMultiUser.json: no function file, so the bare
#     template name resolves to the built-in, run as the role of that name (TLS required).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${AWS_ENDPOINT_URL:?AWS_ENDPOINT_URL must point at the strongroom server}"
: "${E2E_PG_DB:?E2E_PG_DB must name the database for the rotated roles}"
: "${STRONGROOM_TEST_PG_CA:?STRONGROOM_TEST_PG_CA must name the test PostgreSQL CA}"
: "${PG_BIN:?PG_BIN (scripts/pg.sh) must be set}"
AWS_BIN="${AWS_CLI:-$ROOT/.venv/bin/aws}"
PY="${PYTHON:-python3}"
REGION="${AWS_DEFAULT_REGION:-us-east-1}"
ACCOUNT="${E2E_ROTATION_ACCOUNT:-000000000000}"
LAMBDA="arn:aws:lambda:$REGION:$ACCOUNT:function"
PG_SINGLE="$LAMBDA:SecretsManagerRDSPostgreSQLRotationSingleUser"
PG_MULTI="$LAMBDA:SecretsManagerRDSPostgreSQLRotationMultiUser"
MY_SINGLE="$LAMBDA:SecretsManagerRDSMySQLRotationSingleUser"

aws() { "$AWS_BIN" --endpoint-url "$AWS_ENDPOINT_URL" --region "$REGION" "$@"; }
sm() { aws secretsmanager "$@"; }
step() { echo "  - $*"; }
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
assert_eq() {
    [[ "$1" == "$2" ]] || fail "$3: expected [$2], got [$1]"
}

# A python expression over the JSON on stdin (d), printed.
q() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
describe() { sm describe-secret --secret-id "$1" --output json; }
# A key of the secret's JSON value at a stage (default AWSCURRENT). Never printed by the
# script: passwords stay in variables.
key_of() {
    sm get-secret-value --secret-id "$1" --version-stage "${3:-AWSCURRENT}" --query SecretString \
        --output text | q "d['$2']"
}
with_stage() { describe "$1" | q "' '.join(sorted(v for v, s in d.get('VersionIdsToStages', {}).items() if '$2' in s))"; }

# Wait (at most 90 s) until the rotation whose version is $2 is AWSCURRENT and no AWSPENDING
# remains; fail with the description (no value in it) when it fails.
wait_rotated() {
    local name="$1" version="$2" what="$3" deadline=$((SECONDS + 90)) d
    while :; do
        d="$(describe "$name")"
        if [[ "$(q "'AWSCURRENT' in d['VersionIdsToStages'].get('$version', []) and not any('AWSPENDING' in s for s in d['VersionIdsToStages'].values()) and 'StrongroomRotation' not in d" <<<"$d")" == True ]]; then
            return 0
        fi
        if [[ "$(q "d.get('StrongroomRotation', {}).get('Status', '')" <<<"$d")" == Failed ]]; then
            fail "$what: the rotation failed: $(q "d['StrongroomRotation']" <<<"$d")"
        fi
        ((SECONDS < deadline)) || fail "$what: not within 90 s: $d"
        sleep 0.5
    done
}

# The number of audit events $1 whose record names secret $2.
events_for() {
    aws cloudtrail lookup-events --lookup-attributes "AttributeKey=EventName,AttributeValue=$1" \
        --query "length(Events[?contains(CloudTrailEvent, '$2')])" --output text
}

# Wait until a test-only rotation ($2: TestRotationSucceeded events before it) ends.
wait_tested() {
    local name="$1" before="$2" deadline=$((SECONDS + 90))
    until [[ "$(events_for TestRotationSucceeded "$name")" -gt "$before" ]]; do
        [[ "$(events_for TestRotationFailed "$name")" -eq 0 ]] ||
            fail "$name: the test rotation failed: $(describe "$name")"
        ((SECONDS < deadline)) || fail "$name: no TestRotationSucceeded within 90 s"
        sleep 0.5
    done
    deadline=$((SECONDS + 30))
    until [[ "$(describe "$name" | q "not any('AWSPENDING' in s for s in d['VersionIdsToStages'].values())")" == True ]]; do
        ((SECONDS < deadline)) || fail "$name: the test rotation's AWSPENDING was not removed"
        sleep 0.5
    done
}

# ------------------------------------------------------------------ PostgreSQL
PGPASSFILE=/nonexistent/strongroom-e2e-pgpass
export PGPASSFILE
pg_admin() {
    PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" --no-psqlrc --quiet -v ON_ERROR_STOP=1 \
        "host=$PG_HOST port=$PG_PORT user=$PG_USER dbname=$E2E_PG_DB" "$@" >/dev/null
}
# Whether user $1 logs in with password $2 over TLS, the server's certificate verified; $3: SQL.
pg_login() {
    PGPASSWORD="$2" PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" --no-psqlrc -qtA -v ON_ERROR_STOP=1 \
        "host=$PG_HOST port=$PG_PORT dbname=$E2E_PG_DB user=$1 sslmode=verify-full sslrootcert=$STRONGROOM_TEST_PG_CA" \
        -c "${3:-SELECT 1}" >/dev/null 2>&1
}
pg_logs_in() { pg_login "$1" "$2" || fail "$3: $1 cannot log in with the password it should have"; }
pg_refused() { ! pg_login "$1" "$2" || fail "$3: $1 still logs in with a password it should no longer have"; }

APP="e2e_app_$$"
CLONE="${APP}_clone"
MASTER="e2e_master_$$"
P0="app-initial-$$-$RANDOM$RANDOM"
MP="master-initial-$$-$RANDOM$RANDOM"
NAME="e2e/rotation/pg-app-$$"
MASTER_NAME="e2e/rotation/pg-master-$$"
pg_cleanup() {
    pg_admin -c "DROP TABLE IF EXISTS e2e_orders_$$" -c "DROP ROLE IF EXISTS $CLONE" \
        -c "DROP ROLE IF EXISTS $APP" -c "DROP ROLE IF EXISTS $MASTER" || true
}
trap pg_cleanup EXIT

echo "rotation with the built-ins (AWS CLI): PostgreSQL $PG_HOST:$PG_PORT/$E2E_PG_DB, $NAME"
pg_cleanup
pg_admin -c "CREATE ROLE $APP LOGIN PASSWORD '$P0'" \
    -c "CREATE ROLE $MASTER LOGIN CREATEROLE PASSWORD '$MP'" \
    -c "GRANT $APP TO $MASTER WITH ADMIN OPTION" \
    -c "CREATE TABLE e2e_orders_$$ (id int)" -c "INSERT INTO e2e_orders_$$ VALUES (1)" \
    -c "GRANT SELECT ON e2e_orders_$$ TO $APP"
pg_logs_in "$APP" "$P0" "before rotation"

step "create-secret with the JSON of AWS's templates (engine, host, port, username, password, dbname)"
secret_json() {
    "$PY" -c 'import json,sys; print(json.dumps(dict(engine="postgres", host=sys.argv[1], port=int(sys.argv[2]),
        username=sys.argv[3], password=sys.argv[4], dbname=sys.argv[5])))' "$PG_HOST" "$PG_PORT" "$@" "$E2E_PG_DB"
}
first="$(sm create-secret --name "$NAME" --secret-string "$(secret_json "$APP" "$P0")" --query VersionId --output text)"

step "rotate-secret --rotation-lambda-arn ...:SecretsManagerRDSPostgreSQLRotationSingleUser --rotation-rules (rotates now)"
v="$(sm rotate-secret --secret-id "$NAME" --rotation-lambda-arn "$PG_SINGLE" \
    --rotation-rules '{"AutomaticallyAfterDays": 30}' --query VersionId --output text)"
wait_rotated "$NAME" "$v" "the first single-user rotation"
d="$(describe "$NAME")"
assert_eq "$(q "d['RotationEnabled']" <<<"$d")" True "RotationEnabled"
assert_eq "$(q "d['RotationLambdaARN']" <<<"$d")" "$PG_SINGLE" "RotationLambdaARN"
assert_eq "$(q "d['RotationRules'].get('AutomaticallyAfterDays')" <<<"$d")" 30 "RotationRules"
assert_eq "$(q "'LastRotatedDate' in d and 'NextRotationDate' in d" <<<"$d")" True "LastRotatedDate and NextRotationDate"
assert_eq "$(with_stage "$NAME" AWSPREVIOUS)" "$first" "the first version is AWSPREVIOUS"
assert_eq "$(key_of "$NAME" username)" "$APP" "single user: the same user"
P1="$(key_of "$NAME" password)"
[[ ${#P1} -eq 32 && "$P1" != "$P0" ]] || fail "the new password is not a new 32-character one"
pg_logs_in "$APP" "$P1" "after the first rotation"
pg_refused "$APP" "$P0" "after the first rotation"

step "rotate-secret --no-rotate-immediately --rotation-rules rate(4 hours): testSecret only"
before="$(events_for TestRotationSucceeded "$NAME")"
sm rotate-secret --secret-id "$NAME" --rotation-lambda-arn "$PG_SINGLE" \
    --rotation-rules '{"ScheduleExpression": "rate(4 hours)"}' --no-rotate-immediately >/dev/null
wait_tested "$NAME" "$before"
assert_eq "$(with_stage "$NAME" AWSCURRENT)" "$v" "a test rotation leaves AWSCURRENT"
assert_eq "$(key_of "$NAME" password)" "$P1" "a test rotation leaves the password"
assert_eq "$(describe "$NAME" | q "d['RotationRules'].get('ScheduleExpression')")" "rate(4 hours)" "the rules changed"
pg_logs_in "$APP" "$P1" "after the test rotation"

step "rotate-secret --rotate-immediately (the configured function)"
v="$(sm rotate-secret --secret-id "$NAME" --rotate-immediately --query VersionId --output text)"
wait_rotated "$NAME" "$v" "the second single-user rotation"
P2="$(key_of "$NAME" password)"
[[ "$P2" != "$P1" ]] || fail "the second rotation kept the password"
pg_logs_in "$APP" "$P2" "after the second rotation"
pg_refused "$APP" "$P1" "after the second rotation"

step "change the function to ...MultiUser (masterarn in the JSON) and the rules to cron(...) with a Duration"
master_arn="$(sm create-secret --name "$MASTER_NAME" --secret-string "$(secret_json "$MASTER" "$MP")" --query ARN --output text)"
with_master="$(sm get-secret-value --secret-id "$NAME" --query SecretString --output text |
    "$PY" -c 'import json,sys; d=json.load(sys.stdin); d["masterarn"]=sys.argv[1]; print(json.dumps(d))' "$master_arn")"
sm put-secret-value --secret-id "$NAME" --secret-string "$with_master" >/dev/null
v="$(sm rotate-secret --secret-id "$NAME" --rotation-lambda-arn "$PG_MULTI" \
    --rotation-rules '{"ScheduleExpression": "cron(0 4 ? * SUN *)", "Duration": "3h"}' \
    --rotate-immediately --query VersionId --output text)"
wait_rotated "$NAME" "$v" "the first alternating-users rotation"
d="$(describe "$NAME")"
assert_eq "$(q "d['RotationLambdaARN']" <<<"$d")" "$PG_MULTI" "RotationLambdaARN changed"
assert_eq "$(q "(d['RotationRules'].get('ScheduleExpression'), d['RotationRules'].get('Duration'))" <<<"$d")" \
    "('cron(0 4 ? * SUN *)', '3h')" "RotationRules changed"
assert_eq "$(key_of "$NAME" username)" "$CLONE" "alternating users: the clone"
assert_eq "$(key_of "$NAME" masterarn)" "$master_arn" "masterarn kept"
P3="$(key_of "$NAME" password)"
pg_logs_in "$CLONE" "$P3" "the clone, after the first alternating rotation"
pg_login "$CLONE" "$P3" "SELECT * FROM e2e_orders_$$" || fail "the clone lacks the user's grants"
pg_logs_in "$APP" "$P2" "the previous user keeps working"

step "rotate-secret (rotate now, the stored configuration): back to the first user"
v="$(sm rotate-secret --secret-id "$NAME" --query VersionId --output text)"
wait_rotated "$NAME" "$v" "the second alternating-users rotation"
assert_eq "$(key_of "$NAME" username)" "$APP" "alternating users: the first user again"
P4="$(key_of "$NAME" password)"
pg_logs_in "$APP" "$P4" "the user's new password"
pg_refused "$APP" "$P2" "the user's password of two rotations ago"
pg_logs_in "$CLONE" "$P3" "the previous (clone) password keeps working until the next rotation"

step "rotate-secret once more: the clone's password changes, the user's stays"
v="$(sm rotate-secret --secret-id "$NAME" --query VersionId --output text)"
wait_rotated "$NAME" "$v" "the third alternating-users rotation"
P5="$(key_of "$NAME" password)"
assert_eq "$(key_of "$NAME" username)" "$CLONE" "alternating users: the clone again"
pg_logs_in "$CLONE" "$P5" "the clone's new password"
pg_refused "$CLONE" "$P3" "the clone's password of two rotations ago"
pg_logs_in "$APP" "$P4" "the previous user keeps working"

step "cancel-rotate-secret: rotation stops, the credentials stay"
sm cancel-rotate-secret --secret-id "$NAME" >/dev/null
d="$(describe "$NAME")"
assert_eq "$(q "d['RotationEnabled']" <<<"$d")" False "RotationEnabled after cancel-rotate-secret"
pg_logs_in "$CLONE" "$P5" "after cancel-rotate-secret"

step "the service events in the audit trail, no password in them"
n="$(events_for RotationSucceeded "$NAME")"
[[ "$n" -ge 5 ]] || fail "RotationSucceeded: expected 5 events for $NAME, found $n"
trail="$(for e in RotationStarted RotationSucceeded TestRotationSucceeded PutSecretValue UpdateSecretVersionStage; do
    aws cloudtrail lookup-events --lookup-attributes "AttributeKey=EventName,AttributeValue=$e" --output json
done)"
for p in "$P0" "$P1" "$P2" "$P3" "$P4" "$P5" "$MP"; do
    [[ "$trail" != *"$p"* ]] || fail "a password reached the audit trail"
done
sm delete-secret --secret-id "$NAME" --force-delete-without-recovery >/dev/null
sm delete-secret --secret-id "$MASTER_NAME" --force-delete-without-recovery >/dev/null
pg_cleanup
trap - EXIT

# ------------------------------------------------------------------ MariaDB
if [[ -z "${STRONGROOM_TEST_MARIADB_URL:-}" ]]; then
    echo "rotation with the built-ins (AWS CLI): no MariaDB given; MySQL single user not run"
    echo "rotation with the built-ins (AWS CLI): ok"
    exit 0
fi
: "${STRONGROOM_TEST_MARIADB_CA:?STRONGROOM_TEST_MARIADB_CA must name the test MariaDB CA}"
read -r MY_HOST MY_PORT MY_ROOT_PW < <("$PY" -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1]); print(p.hostname, p.port, u.unquote(p.password))' "$STRONGROOM_TEST_MARIADB_URL")
my_as() { # user password SQL
    MYSQL_PWD="$2" mariadb --no-defaults --protocol=TCP -h "$MY_HOST" -P "$MY_PORT" -u "$1" \
        --ssl --ssl-ca="$STRONGROOM_TEST_MARIADB_CA" --ssl-verify-server-cert --connect-timeout=5 \
        -e "${3:-SELECT 1}" >/dev/null 2>&1
}
my_admin() { my_as root "$MY_ROOT_PW" "$1" || fail "MariaDB admin statement failed: $1"; }
MY_USER="e2e_my_$$"
MY_NAME="e2e/rotation/mysql-app-$$"
M0="my-initial-$$-$RANDOM$RANDOM"
my_cleanup() { my_as root "$MY_ROOT_PW" "DROP USER IF EXISTS '$MY_USER'@'%'" || true; }
trap my_cleanup EXIT
echo "rotation with the built-ins (AWS CLI): MariaDB $MY_HOST:$MY_PORT, $MY_NAME"
my_admin "CREATE USER '$MY_USER'@'%' IDENTIFIED BY '$M0' REQUIRE SSL"
my_as "$MY_USER" "$M0" || fail "the MariaDB user cannot log in before rotation"

step "create-secret (engine mysql) and rotate-secret ...:SecretsManagerRDSMySQLRotationSingleUser"
my_json="$("$PY" -c 'import json,sys; print(json.dumps(dict(engine="mysql", host=sys.argv[1], port=int(sys.argv[2]),
    username=sys.argv[3], password=sys.argv[4])))' "$MY_HOST" "$MY_PORT" "$MY_USER" "$M0")"
sm create-secret --name "$MY_NAME" --secret-string "$my_json" >/dev/null
v="$(sm rotate-secret --secret-id "$MY_NAME" --rotation-lambda-arn "$MY_SINGLE" \
    --rotation-rules '{"AutomaticallyAfterDays": 7}' --query VersionId --output text)"
wait_rotated "$MY_NAME" "$v" "the MySQL single-user rotation"
M1="$(key_of "$MY_NAME" password)"
my_as "$MY_USER" "$M1" || fail "MariaDB: the new password does not log in"
! my_as "$MY_USER" "$M0" || fail "MariaDB: the old password still logs in"

step "rotate-secret --no-rotate-immediately, then --rotate-immediately"
before="$(events_for TestRotationSucceeded "$MY_NAME")"
sm rotate-secret --secret-id "$MY_NAME" --no-rotate-immediately >/dev/null
wait_tested "$MY_NAME" "$before"
assert_eq "$(key_of "$MY_NAME" password)" "$M1" "a test rotation leaves the MariaDB password"
v="$(sm rotate-secret --secret-id "$MY_NAME" --rotate-immediately --query VersionId --output text)"
wait_rotated "$MY_NAME" "$v" "the second MySQL single-user rotation"
M2="$(key_of "$MY_NAME" password)"
my_as "$MY_USER" "$M2" || fail "MariaDB: the newest password does not log in"
! my_as "$MY_USER" "$M1" || fail "MariaDB: the previous password still logs in"

step "cancel-rotate-secret"
sm cancel-rotate-secret --secret-id "$MY_NAME" >/dev/null
assert_eq "$(describe "$MY_NAME" | q "d['RotationEnabled']")" False "RotationEnabled after cancel-rotate-secret"
sm delete-secret --secret-id "$MY_NAME" --force-delete-without-recovery >/dev/null
my_admin "DROP USER '$MY_USER'@'%'"
trap - EXIT
echo "rotation with the built-ins (AWS CLI): ok"
