#!/usr/bin/env bash
#
# tests/e2e/walkthrough_cli.sh — AWS CLI (v1) walkthrough of the Secrets
# Manager + KMS API against a running strongroom server.
#
# Normally started by scripts/e2e.sh, which sets AWS_ENDPOINT_URL and the
# credentials. Every secret value stored here contains the marker
# MARKER-7f3a9c-plaintext, which scripts/e2e.sh later looks for at rest.
# Nothing but secret values may contain it (names, descriptions and tags are
# not secret and are stored in plaintext legitimately).
#
# Assertions use --query/--output text, bash comparisons and small python
# snippets (no jq).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${AWS_ENDPOINT_URL:?AWS_ENDPOINT_URL must point at the strongroom server}"
AWS_BIN="${AWS_CLI:-$ROOT/.venv/bin/aws}"
PY="${PYTHON:-python3}"
REGION="${AWS_DEFAULT_REGION:-us-east-1}"
MARKER="MARKER-7f3a9c-plaintext"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/strongroom-cli-e2e.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# ------------------------------------------------------------------ helpers

# CLI v1 may not read AWS_ENDPOINT_URL: pass endpoint and region explicitly.
aws() { "$AWS_BIN" --endpoint-url "$AWS_ENDPOINT_URL" --region "$REGION" "$@"; }
sm() { aws secretsmanager "$@"; }
kms() { aws kms "$@"; }

step() { echo "  - $*"; }
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# assert_eq ACTUAL EXPECTED WHAT
assert_eq() {
    [[ "$1" == "$2" ]] || fail "$3: expected [$2], got [$1]"
}
# assert_contains HAYSTACK NEEDLE WHAT
assert_contains() {
    [[ "$1" == *"$2"* ]] || fail "$3: [$2] not in [$1]"
}
# assert_not_contains HAYSTACK NEEDLE WHAT
assert_not_contains() {
    [[ "$1" != *"$2"* ]] || fail "$3: [$2] unexpectedly in [$1]"
}

# assert_py JSON EXPR WHAT — EXPR is a python expression over d (the parsed
# JSON) that must be true.
assert_py() {
    "$PY" -c '
import json, sys
d = json.loads(sys.argv[1])
ok = eval(sys.argv[2], {"d": d})
if not ok:
    sys.exit("expression false: " + sys.argv[2] + "\njson: " + json.dumps(d, indent=1, default=str))
' "$1" "$2" || fail "$3"
}

# expect_error CODE_REGEX CMD... — CMD must exit non-zero and its stderr must
# match CODE_REGEX (extended regex, case-insensitive). Sets ERR to stderr.
expect_error() {
    local pattern="$1" rc=0
    shift
    "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
    ERR="$(cat "$WORK/err")"
    if ((rc == 0)); then
        fail "expected failure matching /$pattern/ but command succeeded: $* -> $(cat "$WORK/out")"
    fi
    grep -Eqi -- "$pattern" "$WORK/err" || fail "expected /$pattern/ in stderr of: $*; got: $ERR"
}

NAME="e2e/cli/db-password"
V1="{\"username\":\"app\",\"password\":\"$MARKER-v1\"}"
V2="{\"username\":\"app\",\"password\":\"$MARKER-v2\"}"
V3="{\"username\":\"app\",\"password\":\"$MARKER-v3-pending\"}"

# --------------------------------------------------------- create / get / put
step "create-secret $NAME (with description and tag)"
out="$(sm create-secret --name "$NAME" --secret-string "$V1" \
    --description "e2e CLI secret" --tags Key=team,Value=payments --output json)"
assert_py "$out" 'd["Name"] == "e2e/cli/db-password" and d["VersionId"] and d["ARN"]' "create-secret response"
ARN="$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["ARN"])' "$out")"
ID1="$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["VersionId"])' "$out")"
[[ "$ARN" =~ ^arn:aws:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:e2e/cli/db-password-[A-Za-z0-9]{6}$ ]] ||
    fail "ARN shape: [$ARN] should be arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX"

step "get-secret-value round-trips; AWSCURRENT; ARN ends with -XXXXXX"
out="$(sm get-secret-value --secret-id "$NAME" --output json)"
assert_py "$out" "d['SecretString'] == '''$V1'''" "get-secret-value SecretString"
assert_py "$out" '"AWSCURRENT" in d["VersionStages"]' "VersionStages has AWSCURRENT"
assert_py "$out" "d['VersionId'] == '$ID1' and d['Name'] == '$NAME'" "VersionId / Name"
val_arn="$(sm get-secret-value --secret-id "$NAME" --query ARN --output text)"
assert_eq "$val_arn" "$ARN" "get-secret-value ARN"
[[ "$val_arn" =~ -[A-Za-z0-9]{6}$ ]] || fail "ARN should end with - and 6 characters: $val_arn"

step "put-secret-value: new value becomes AWSCURRENT, old one AWSPREVIOUS"
ID2="$(sm put-secret-value --secret-id "$NAME" --secret-string "$V2" --query VersionId --output text)"
[[ -n "$ID2" && "$ID2" != "$ID1" ]] || fail "put-secret-value returned VersionId [$ID2]"
got="$(sm get-secret-value --secret-id "$NAME" --query SecretString --output text)"
assert_eq "$got" "$V2" "current value after put"
got="$(sm get-secret-value --secret-id "$NAME" --version-stage AWSPREVIOUS --query SecretString --output text)"
assert_eq "$got" "$V1" "AWSPREVIOUS value"
got="$(sm get-secret-value --secret-id "$NAME" --version-id "$ID1" --query SecretString --output text)"
assert_eq "$got" "$V1" "value by --version-id"

step "put-secret-value --version-stages AWSPENDING does not move AWSCURRENT"
ID3="$(sm put-secret-value --secret-id "$NAME" --secret-string "$V3" \
    --version-stages AWSPENDING --query VersionId --output text)"
got="$(sm get-secret-value --secret-id "$NAME" --query SecretString --output text)"
assert_eq "$got" "$V2" "AWSCURRENT value after AWSPENDING put"
got="$(sm get-secret-value --secret-id "$NAME" --version-stage AWSPENDING --query SecretString --output text)"
assert_eq "$got" "$V3" "AWSPENDING value"

step "update-secret --description"
sm update-secret --secret-id "$NAME" --description "e2e CLI secret (updated)" >/dev/null

step "describe-secret: description, tags, VersionIdsToStages"
out="$(sm describe-secret --secret-id "$NAME" --output json)"
assert_py "$out" 'd["Description"] == "e2e CLI secret (updated)"' "Description updated"
assert_py "$out" '{"Key": "team", "Value": "payments"} in d.get("Tags", [])' "Tags has team=payments"
assert_py "$out" "'AWSCURRENT' in d['VersionIdsToStages']['$ID2']" "AWSCURRENT on version 2"
assert_py "$out" "'AWSPREVIOUS' in d['VersionIdsToStages']['$ID1']" "AWSPREVIOUS on version 1"
assert_py "$out" "'AWSPENDING' in d['VersionIdsToStages']['$ID3']" "AWSPENDING on version 3"
assert_py "$out" "d['ARN'] == '$ARN'" "describe ARN"
assert_not_contains "$out" "$MARKER" "describe-secret must not return the secret value"

step "list-secrets with name filters (prefix and negated prefix)"
names="$(sm list-secrets --filters Key=name,Values=e2e/cli --query 'SecretList[].Name' --output text)"
assert_contains "$names" "$NAME" "list-secrets name filter"
names="$(sm list-secrets --filters 'Key=name,Values=!e2e/cli' --query 'SecretList[].Name' --output text)"
assert_not_contains "$names" "$NAME" "list-secrets negated name filter"
out="$(sm list-secrets --output json)"
assert_not_contains "$out" "$MARKER" "list-secrets must not return secret values"

step "list-secret-version-ids"
out="$(sm list-secret-version-ids --secret-id "$NAME" --output json)"
assert_py "$out" "{'$ID1', '$ID2', '$ID3'} <= {v['VersionId'] for v in d['Versions']}" "all three versions listed"
assert_py "$out" "d['ARN'] == '$ARN' and d['Name'] == '$NAME'" "list-secret-version-ids ARN/Name"

step "update-secret-version-stage: AWSCURRENT to the pending version"
sm update-secret-version-stage --secret-id "$NAME" --version-stage AWSCURRENT \
    --move-to-version-id "$ID3" --remove-from-version-id "$ID2" >/dev/null
out="$(sm describe-secret --secret-id "$NAME" --output json)"
assert_py "$out" "'AWSCURRENT' in d['VersionIdsToStages']['$ID3']" "AWSCURRENT moved to version 3"
assert_py "$out" "'AWSPREVIOUS' in d['VersionIdsToStages']['$ID2']" "AWSPREVIOUS on the old current (version 2)"
assert_py "$out" "'AWSCURRENT' not in d['VersionIdsToStages'].get('$ID2', [])" "AWSCURRENT left version 2"
got="$(sm get-secret-value --secret-id "$NAME" --query SecretString --output text)"
assert_eq "$got" "$V3" "current value after stage move"

step "tag-resource / untag-resource"
sm tag-resource --secret-id "$NAME" --tags Key=env,Value=e2e Key=owner,Value=cli >/dev/null
out="$(sm describe-secret --secret-id "$NAME" --output json)"
assert_py "$out" '{"Key": "env", "Value": "e2e"} in d["Tags"] and {"Key": "team", "Value": "payments"} in d["Tags"]' "tags after tag-resource"
sm untag-resource --secret-id "$NAME" --tag-keys team owner >/dev/null
out="$(sm describe-secret --secret-id "$NAME" --output json)"
assert_py "$out" '[(t["Key"], t["Value"]) for t in d["Tags"]] == [("env", "e2e")]' "tags after untag-resource"

# ------------------------------------------------------------------- binary
step "create-secret --secret-binary fileb:// round-trips (CLI v1 prints base64)"
BIN_FILE="$WORK/secret.bin"
{
    head -c 97 /dev/urandom
    printf '%s' "$MARKER-binary"
    head -c 50 /dev/urandom
    printf '\0\377\n'
} >"$BIN_FILE"
sm create-secret --name e2e/cli/binary --secret-binary "fileb://$BIN_FILE" >/dev/null
sm get-secret-value --secret-id e2e/cli/binary --query SecretBinary --output text >"$WORK/secret.b64"
base64 -d <"$WORK/secret.b64" >"$WORK/secret.out" || fail "SecretBinary is not base64: $(cat "$WORK/secret.b64")"
cmp -s "$BIN_FILE" "$WORK/secret.out" || fail "SecretBinary bytes differ after round-trip"
got="$(sm get-secret-value --secret-id e2e/cli/binary --query SecretString --output text)"
assert_eq "$got" "None" "binary secret has no SecretString"

# ------------------------------------------------------------------ password
step "get-random-password --password-length 40 --exclude-punctuation"
pw="$(sm get-random-password --password-length 40 --exclude-punctuation --query RandomPassword --output text)"
assert_eq "${#pw}" "40" "password length"
[[ "$pw" =~ ^[A-Za-z0-9]{40}$ ]] || fail "password has punctuation or spaces: [$pw]"

# ----------------------------------------------------------------------- KMS
step "kms create-key / create-alias"
KEY_ID="$(kms create-key --description e2e --query KeyMetadata.KeyId --output text)"
[[ -n "$KEY_ID" && "$KEY_ID" != "None" ]] || fail "create-key returned no KeyId"
kms create-alias --alias-name alias/e2e-key --target-key-id "$KEY_ID" >/dev/null

step "create-secret --kms-key-id alias/e2e-key; get works; describe shows KmsKeyId"
KNAME="e2e/cli/kms-secret"
KVAL="{\"api_key\":\"$MARKER-kms\"}"
sm create-secret --name "$KNAME" --kms-key-id alias/e2e-key --secret-string "$KVAL" >/dev/null
got="$(sm get-secret-value --secret-id "$KNAME" --query SecretString --output text)"
assert_eq "$got" "$KVAL" "value under customer key"
kms_ref="$(sm describe-secret --secret-id "$KNAME" --query KmsKeyId --output text)"
[[ "$kms_ref" == *"$KEY_ID"* || "$kms_ref" == *"alias/e2e-key"* ]] ||
    fail "describe-secret KmsKeyId should name the key or alias, got [$kms_ref]"

step "kms disable-key: get-secret-value fails; enable-key: works again"
kms disable-key --key-id "$KEY_ID" >/dev/null
expect_error 'DecryptionFailure|disabled' sm get-secret-value --secret-id "$KNAME"
kms enable-key --key-id "$KEY_ID" >/dev/null
got="$(sm get-secret-value --secret-id "$KNAME" --query SecretString --output text)"
assert_eq "$got" "$KVAL" "value after enable-key"

step "kms list-keys / list-aliases"
out="$(kms list-keys --output json)"
assert_py "$out" "'$KEY_ID' in [k['KeyId'] for k in d['Keys']]" "list-keys has the key"
out="$(kms list-aliases --output json)"
assert_py "$out" "any(a['AliasName'] == 'alias/e2e-key' and a.get('TargetKeyId') == '$KEY_ID' for a in d['Aliases'])" "list-aliases has alias/e2e-key -> key"

# ---------------------------------------------------------- delete / restore
step "delete-secret --recovery-window-in-days 7 (DeletionDate present)"
out="$(sm delete-secret --secret-id "$NAME" --recovery-window-in-days 7 --output json)"
assert_py "$out" 'd.get("DeletionDate") and d["ARN"]' "delete-secret DeletionDate"
expect_error 'InvalidRequestException' sm get-secret-value --secret-id "$NAME"
out="$(sm describe-secret --secret-id "$NAME" --output json)"
assert_py "$out" 'd.get("DeletedDate")' "describe-secret DeletedDate while scheduled for deletion"

step "restore-secret; get works again"
sm restore-secret --secret-id "$NAME" >/dev/null
got="$(sm get-secret-value --secret-id "$NAME" --query SecretString --output text)"
assert_eq "$got" "$V3" "value after restore"

step "delete-secret --force-delete-without-recovery; name reusable at once"
sm delete-secret --secret-id "$NAME" --force-delete-without-recovery >/dev/null
expect_error 'ResourceNotFoundException' sm describe-secret --secret-id "$NAME"
NEW_ARN="$(sm create-secret --name "$NAME" --secret-string "$V1" --query ARN --output text)"
[[ "$NEW_ARN" != "$ARN" ]] || fail "re-created secret got the old ARN $ARN"
got="$(sm get-secret-value --secret-id "$NAME" --query SecretString --output text)"
assert_eq "$got" "$V1" "value of the re-created secret"

# -------------------------------------------------------------------- errors
step "errors: missing secret -> ResourceNotFoundException; duplicate -> ResourceExistsException"
expect_error 'ResourceNotFoundException' sm get-secret-value --secret-id e2e/cli/does-not-exist
expect_error 'ResourceExistsException' sm create-secret --name "$NAME" --secret-string "$V2"

# -------------------------------------------------------------------- sts and the policy simulator
step "sts get-caller-identity answers for the root key"
who="$(aws sts get-caller-identity --query Arn --output text)"
assert_contains "$who" ":root" "caller identity"

step "iam simulate-custom-policy: explicit deny wins"
POLICY='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"},{"Effect":"Deny","Action":"secretsmanager:DeleteSecret","Resource":"*"}]}'
got="$(aws iam simulate-custom-policy --policy-input-list "$POLICY" \
    --action-names secretsmanager:DeleteSecret secretsmanager:GetSecretValue \
    --query 'EvaluationResults[].EvalDecision' --output text)"
assert_eq "$got" "explicitDeny	allowed" "simulated decisions"

echo "cli walkthrough: OK"
