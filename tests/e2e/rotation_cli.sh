#!/usr/bin/env bash
#
# tests/e2e/rotation_cli.sh — the rotation scenario of AWS's guides through the AWS CLI (v1):
# configure rotation with rules and rotate now, test-only rotation with
# --no-rotate-immediately, change the function and the rules, a function that cannot be invoked,
# stop rotation with cancel-rotate-secret, and the service events in the audit trail.
#
# Started by scripts/e2e.sh, which declares the functions e2e-rotation and e2e-rotation-v2
# (tests/fixtures/rotation/boto3: AWS's rotation template's shape, run unchanged under a
# three-line wrapper, its "database" a file in $E2E_ROTATION_DB_DIR) and their execution role.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${AWS_ENDPOINT_URL:?AWS_ENDPOINT_URL must point at the strongroom server}"
: "${E2E_ROTATION_DB_DIR:?E2E_ROTATION_DB_DIR must name the directory of the rotation function database}"
AWS_BIN="${AWS_CLI:-$ROOT/.venv/bin/aws}"
PY="${PYTHON:-python3}"
REGION="${AWS_DEFAULT_REGION:-us-east-1}"
ACCOUNT="${E2E_ROTATION_ACCOUNT:-000000000000}"
FN="arn:aws:lambda:$REGION:$ACCOUNT:function:e2e-rotation"
FN2="arn:aws:lambda:$REGION:$ACCOUNT:function:e2e-rotation-v2"
MARKER="MARKER-7f3a9c-plaintext"
NAME="e2e/rotation/app-$$"

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

# describe-secret as JSON, then a python expression over it (d) printed.
describe() { sm describe-secret --secret-id "$NAME" --output json; }
q() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# The version ids holding a stage, from describe-secret's VersionIdsToStages.
with_stage() { describe | q "' '.join(sorted(v for v, s in d.get('VersionIdsToStages', {}).items() if '$1' in s))"; }

# Wait (at most 60 s) until the python condition over describe-secret holds; fail with the
# last description (which holds no value) and StrongroomRotation's error otherwise.
wait_until() {
    local cond="$1" what="$2" deadline=$((SECONDS + 60)) d
    while :; do
        d="$(describe)"
        if [[ "$(q "bool($cond)" <<<"$d")" == "True" ]]; then
            return 0
        fi
        if [[ "$(q "d.get('StrongroomRotation', {}).get('Status', '')" <<<"$d")" == "Failed" ]]; then
            fail "$what: the rotation failed: $(q "d['StrongroomRotation']" <<<"$d")"
        fi
        ((SECONDS < deadline)) || fail "$what: not within 60 s: $d"
        sleep 0.5
    done
}

echo "rotation (AWS CLI): $NAME"

step "create-secret (a password the 'database' accepts)"
first="$(sm create-secret --name "$NAME" --secret-string "initial-$MARKER" --query VersionId --output text)"
printf '%s' "initial-$MARKER" >"$E2E_ROTATION_DB_DIR/db"

step "rotate-secret --rotation-lambda-arn --rotation-rules (rotates now)"
sm rotate-secret --secret-id "$NAME" --rotation-lambda-arn "$FN" \
    --rotation-rules '{"ScheduleExpression": "rate(10 days)"}' >/dev/null
wait_until "'LastRotatedDate' in d and not any('AWSPENDING' in s for s in d['VersionIdsToStages'].values())" \
    "the first rotation"
d="$(describe)"
assert_eq "$(q "d['RotationEnabled']" <<<"$d")" "True" "RotationEnabled after rotate-secret"
assert_eq "$(q "d['RotationLambdaARN']" <<<"$d")" "$FN" "RotationLambdaARN"
assert_eq "$(q "d['RotationRules'].get('ScheduleExpression')" <<<"$d")" "rate(10 days)" "RotationRules"
assert_eq "$(q "'NextRotationDate' in d" <<<"$d")" "True" "NextRotationDate present"
assert_eq "$(with_stage AWSPREVIOUS)" "$first" "the first version is AWSPREVIOUS"
current="$(with_stage AWSCURRENT)"
[[ -n "$current" && "$current" != "$first" ]] || fail "AWSCURRENT did not move: $current"
value="$(sm get-secret-value --secret-id "$NAME" --query SecretString --output text)"
[[ "$value" != "initial-$MARKER" ]] || fail "the value did not change"
[[ "$value" == "$(cat "$E2E_ROTATION_DB_DIR/db")" ]] || fail "the new AWSCURRENT is not what the database holds"

step "rotate-secret --no-rotate-immediately (testSecret only, on a copy of the current value)"
sm rotate-secret --secret-id "$NAME" --rotation-lambda-arn "$FN" \
    --rotation-rules '{"AutomaticallyAfterDays": 30}' --no-rotate-immediately >/dev/null
deadline=$((SECONDS + 60))
until [[ "$(aws cloudtrail lookup-events --lookup-attributes AttributeKey=EventName,AttributeValue=TestRotationSucceeded \
    --query "length(Events[?contains(CloudTrailEvent, '$NAME')])" \
    --output text)" -ge 1 ]]; do
    ((SECONDS < deadline)) || fail "no TestRotationSucceeded event for $NAME within 60 s"
    sleep 0.5
done
wait_until "not any('AWSPENDING' in s for s in d['VersionIdsToStages'].values())" "the test rotation's AWSPENDING removed"
assert_eq "$(with_stage AWSCURRENT)" "$current" "a test rotation leaves AWSCURRENT"
assert_eq "$(sm get-secret-value --secret-id "$NAME" --query SecretString --output text)" "$value" \
    "a test rotation leaves the value"
assert_eq "$(describe | q "d['RotationRules'].get('AutomaticallyAfterDays')")" "30" "the rules changed"

step "rotate-secret with another function and --rotate-immediately"
sm rotate-secret --secret-id "$NAME" --rotation-lambda-arn "$FN2" --rotate-immediately >/dev/null
wait_until "d.get('RotationLambdaARN') == '$FN2' and '$current' in d['VersionIdsToStages'] and 'AWSPREVIOUS' in d['VersionIdsToStages']['$current']" \
    "the rotation with the second function"
assert_eq "$(with_stage AWSPENDING)" "" "no AWSPENDING after the second rotation"
second="$(with_stage AWSCURRENT)"
[[ "$second" != "$current" ]] || fail "AWSCURRENT did not move on the second rotation"

step "rotate-secret naming a function no file declares: AccessDeniedException, nothing stored"
set +e
out="$(sm rotate-secret --secret-id "$NAME" --rotation-lambda-arn "arn:aws:lambda:$REGION:$ACCOUNT:function:nobody" 2>&1)"
rc=$?
set -e
((rc != 0)) || fail "an undeclared function was accepted"
[[ "$out" == *AccessDeniedException* ]] || fail "undeclared function: expected AccessDeniedException, got: $out"
assert_eq "$(describe | q "d['RotationLambdaARN']")" "$FN2" "the refused call changed nothing"

step "cancel-rotate-secret"
sm cancel-rotate-secret --secret-id "$NAME" >/dev/null
assert_eq "$(describe | q "d['RotationEnabled']")" "False" "RotationEnabled after cancel-rotate-secret"

step "the service events in the audit trail (lookup-events)"
for event in RotationStarted RotationSucceeded; do
    n="$(aws cloudtrail lookup-events --lookup-attributes "AttributeKey=EventName,AttributeValue=$event" \
        --query "length(Events[?contains(CloudTrailEvent, '$NAME')])" --output text)"
    [[ "$n" -ge 2 ]] || fail "$event: expected at least 2 events for $NAME, found $n"
done
trail="$(aws cloudtrail lookup-events --lookup-attributes AttributeKey=EventName,AttributeValue=RotationSucceeded --output json)"
[[ "$trail" != *"$value"* && "$trail" != *"$MARKER"* ]] || fail "a secret value reached the audit trail"

sm delete-secret --secret-id "$NAME" --force-delete-without-recovery >/dev/null
echo "rotation (AWS CLI): ok"
