#!/usr/bin/env bash
#
# tests/e2e/replication_cli.sh — multi-region secrets through the AWS CLI (v1) against two
# servers, each with its own data directory: the primary's server serves us-east-1 and
# us-west-2 and declares the other, serving eu-west-1 over TLS, as its peer (--peer,
# --peer-ca, the replication principal's key). The three commands of AWS's guides:
# replicate-secret-to-regions with a KMS key per replica region (one replica on the same
# server, one on the peer), remove-regions-from-replication (the peer's replica deleted), and
# stop-replication-to-replica called in the replica's region against the replica's server
# (promotion), with the answers' shapes, the statuses (InProgress, then InSync), the replicas'
# values and keys, and the plaintext marker absent from both data directories afterwards.
#
# Started by scripts/e2e.sh (which exports E2E_BIN and the root key); runs alone too:
#   E2E_BIN=target/debug/strongroom bash tests/e2e/replication_cli.sh
# E2E_KEEP=1 keeps the servers' directory (always kept, and printed, on failure).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${E2E_BIN:-${STRONGROOM_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/strongroom}}"
AWS_BIN="${AWS_CLI:-$ROOT/.venv/bin/aws}"
PY="${PYTHON:-python3}"
[[ -x "$BIN" ]] || { echo "replication: server binary not found: $BIN" >&2; exit 1; }
MARKER="MARKER-7f3a9c-plaintext"
ACCOUNT="000000000000"
PRIMARY_REGION="us-east-1"
LOCAL_REGION="us-west-2"
PEER_REGION="eu-west-1"
TLS="$ROOT/tests/fixtures/tls"
NAME="e2e/replication/db-$$"
NAME2="e2e/replication/api-$$"

export STRONGROOM_ROOT_ACCESS_KEY_ID="${STRONGROOM_ROOT_ACCESS_KEY_ID:-AKIAE2EROOT000000001}"
export STRONGROOM_ROOT_SECRET_ACCESS_KEY="${STRONGROOM_ROOT_SECRET_ACCESS_KEY:-e2e/secret/key/for/tests/only/0000000000}"
export AWS_ACCESS_KEY_ID="$STRONGROOM_ROOT_ACCESS_KEY_ID"
export AWS_SECRET_ACCESS_KEY="$STRONGROOM_ROOT_SECRET_ACCESS_KEY"
export AWS_PAGER="" AWS_EC2_METADATA_DISABLED="true" AWS_RETRY_MODE="standard" AWS_MAX_ATTEMPTS="1"
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_REGION AWS_CA_BUNDLE AWS_ENDPOINT_URL
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"

DIR="$(mktemp -d "${TMPDIR:-/tmp}/strongroom-e2e-replication.XXXXXX")"
PEER_DIR="$DIR/peer" PRIMARY_DIR="$DIR/primary" PEER_POLICIES="$DIR/peer-policies"
mkdir -p "$PEER_DIR" "$PRIMARY_DIR" "$DIR/no-policies"
PEER_PID="" PRIMARY_PID="" OK=0

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
    stop_pid "$PRIMARY_PID"
    stop_pid "$PEER_PID"
    if ((rc != 0 || OK != 1)); then
        for s in primary peer; do
            echo "replication: last lines of the $s's log:" >&2
            tail -n 20 "$DIR/$s.log" >&2 2>/dev/null
        done
        echo "replication: directory kept at $DIR" >&2
    elif [[ "${E2E_KEEP:-0}" == 1 ]]; then
        echo "replication: directory kept at $DIR"
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
wait_port() {
    local port="$1" pid="$2" deadline=$((SECONDS + 30))
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || { echo "replication: server $pid exited before listening" >&2; return 1; }
        ((SECONDS < deadline)) || { echo "replication: nothing on port $port after 30 s" >&2; return 1; }
        sleep 0.1
    done
}

step() { echo "  - $*"; }
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
assert_eq() {
    [[ "$1" == "$2" ]] || fail "$3: expected [$2], got [$1]"
}
# q EXPR: a python expression over d (the JSON on stdin), printed.
q() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# The peer: eu-west-1 over TLS, with the replication principal declared in its policies.
mkdir -p "$PEER_POLICIES/accounts/$ACCOUNT/users"
echo "{\"AccountId\": \"$ACCOUNT\"}" >"$PEER_POLICIES/accounts/$ACCOUNT/account.json"
cat >"$PEER_POLICIES/accounts/$ACCOUNT/users/replicator.json" <<'JSON'
{"UserName": "replicator", "InlinePolicies": {"apply": {"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": "strongroom:ApplyReplicaChange", "Resource": "*"}]}}}
JSON
PEER_PORT="$(free_port)"
"$BIN" serve --listen "127.0.0.1:$PEER_PORT" --data-dir "$PEER_DIR" --policies "$PEER_POLICIES" \
    --regions "$PEER_REGION" --tls-cert "$TLS/cert.pem" --tls-key "$TLS/key.pem" >"$DIR/peer.log" 2>&1 &
PEER_PID=$!
wait_port "$PEER_PORT" "$PEER_PID"
KEY_JSON="$("$BIN" access-key create --data-dir "$PEER_DIR" --policies "$PEER_POLICIES" \
    --account "$ACCOUNT" --user replicator)"
REPLICATOR_AKID="$(q "d['AccessKeyId']" <<<"$KEY_JSON")"
REPLICATOR_SECRET="$(q "d['SecretAccessKey']" <<<"$KEY_JSON")"
unset KEY_JSON

# The primary: us-east-1 and us-west-2, eu-west-1 on the peer (its CA given with --peer-ca).
PRIMARY_PORT="$(free_port)"
STRONGROOM_PEER_SECRET_ACCESS_KEY="$REPLICATOR_SECRET" "$BIN" serve --listen "127.0.0.1:$PRIMARY_PORT" \
    --data-dir "$PRIMARY_DIR" --policies "$DIR/no-policies" --regions "$PRIMARY_REGION,$LOCAL_REGION" \
    --peer "$PEER_REGION=https://localhost:$PEER_PORT" --peer-ca "$TLS/ca.pem" \
    --peer-access-key-id "$REPLICATOR_AKID" >"$DIR/primary.log" 2>&1 &
PRIMARY_PID=$!
unset REPLICATOR_SECRET
wait_port "$PRIMARY_PORT" "$PRIMARY_PID"
echo "replication (AWS CLI): primary 127.0.0.1:$PRIMARY_PORT ($PRIMARY_REGION, $LOCAL_REGION), peer https://localhost:$PEER_PORT ($PEER_REGION)"

# on_primary REGION ARGS / on_peer ARGS: the AWS CLI against either server.
on_primary() {
    local region="$1"
    shift
    "$AWS_BIN" --endpoint-url "http://127.0.0.1:$PRIMARY_PORT" --region "$region" "$@"
}
on_peer() { "$AWS_BIN" --endpoint-url "https://localhost:$PEER_PORT" --ca-bundle "$TLS/ca.pem" --region "$PEER_REGION" "$@"; }
sm() { on_primary "$PRIMARY_REGION" secretsmanager "$@"; }
describe() { sm describe-secret --secret-id "$1" --output json; }
# The primary's ReplicationStatus entry of REGION for secret $1, as "Status KmsKeyId".
replica_status() {
    describe "$1" | q "' '.join(next(([r['Status'], r['KmsKeyId']] for r in d.get('ReplicationStatus', []) if r['Region'] == '$2'), ['absent', '-']))"
}
wait_status() {
    local secret="$1" region="$2" want="$3" deadline=$((SECONDS + 60)) got
    while :; do
        got="$(replica_status "$secret" "$region")"
        [[ "${got%% *}" == "$want" ]] && return 0
        ((SECONDS < deadline)) || fail "$secret in $region: status stayed [$got], wanted $want: $(describe "$secret")"
        sleep 0.2
    done
}
# expect_error CODE ARGS...: the command fails with CODE; its output is kept in $ERR_OUT.
expect_error() {
    local code="$1" rc
    shift
    set +e
    ERR_OUT="$("$@" 2>&1)"
    rc=$?
    set -e
    ((rc != 0)) || fail "expected $code from [$*], it succeeded: $ERR_OUT"
    [[ "$ERR_OUT" == *"($code)"* ]] || fail "expected $code from [$*], got: $ERR_OUT"
}

step "a KMS key in each replica region (us-west-2 on the primary's server, eu-west-1 on the peer)"
LOCAL_KEY="$(on_primary "$LOCAL_REGION" kms create-key --description "e2e replica key" --query KeyMetadata.Arn --output text)"
PEER_KEY="$(on_peer kms create-key --description "e2e replica key" --query KeyMetadata.Arn --output text)"
on_peer kms create-alias --alias-name alias/e2e-replica --target-key-id "$PEER_KEY"
[[ "$LOCAL_KEY" == "arn:aws:kms:$LOCAL_REGION:$ACCOUNT:key/"* ]] || fail "us-west-2 key: $LOCAL_KEY"
[[ "$PEER_KEY" == "arn:aws:kms:$PEER_REGION:$ACCOUNT:key/"* ]] || fail "eu-west-1 key: $PEER_KEY"

step "create-secret in $PRIMARY_REGION"
ARN="$(sm create-secret --name "$NAME" --secret-string "v1-$MARKER" --description "replicated database" \
    --tags Key=team,Value=db --query ARN --output text)"
V1="$(sm describe-secret --secret-id "$NAME" --query 'keys(VersionIdsToStages)[0]' --output text)"

step "replicate-secret-to-regions --add-replica-regions Region=$LOCAL_REGION,KmsKeyId=ARN Region=$PEER_REGION,KmsKeyId=alias/e2e-replica"
out="$(sm replicate-secret-to-regions --secret-id "$NAME" --output json \
    --add-replica-regions "Region=$LOCAL_REGION,KmsKeyId=$LOCAL_KEY" "Region=$PEER_REGION,KmsKeyId=alias/e2e-replica")"
assert_eq "$(q "sorted(d)" <<<"$out")" "['ARN', 'ReplicationStatus']" "replicate-secret-to-regions answer's fields"
assert_eq "$(q "d['ARN']" <<<"$out")" "$ARN" "the answer's ARN is the primary's"
assert_eq "$(q "[(r['Region'], r['Status']) for r in sorted(d['ReplicationStatus'], key=lambda r: r['Region'])]" <<<"$out")" \
    "[('eu-west-1', 'InProgress'), ('us-west-2', 'InSync')]" \
    "the answer's statuses (a peer's replica is InProgress until delivered; the same server's is written at once)"
assert_eq "$(q "{r['Region']: r['KmsKeyId'] for r in d['ReplicationStatus']}['$LOCAL_REGION']" <<<"$out")" "$LOCAL_KEY" \
    "the same-server replica's KmsKeyId"
assert_eq "$(q "{r['Region']: r['KmsKeyId'] for r in d['ReplicationStatus']}['$PEER_REGION']" <<<"$out")" "alias/e2e-replica" \
    "the peer replica's KmsKeyId while in progress (as given)"

step "describe-secret on the primary: InProgress, then InSync"
wait_status "$NAME" "$PEER_REGION" InSync
d="$(describe "$NAME")"
assert_eq "$(q "d['PrimaryRegion']" <<<"$d")" "$PRIMARY_REGION" "the primary's PrimaryRegion"
assert_eq "$(q "sorted(r['Region'] for r in d['ReplicationStatus'])" <<<"$d")" "['eu-west-1', 'us-west-2']" "the regions listed"
assert_eq "$(q "all(r['Status'] == 'InSync' and r['StatusMessage'] == 'Replication succeeded' for r in d['ReplicationStatus'])" <<<"$d")" "True" \
    "every replica InSync, 'Replication succeeded' (as in the AWS CLI's describe-secret example)"
assert_eq "$(replica_status "$NAME" "$PEER_REGION")" "InSync $PEER_KEY" "once applied, the peer replica's KmsKeyId is its key's ARN"

step "the replicas: get-secret-value in $LOCAL_REGION (same server) and $PEER_REGION (on the peer)"
assert_eq "$(on_primary "$LOCAL_REGION" secretsmanager get-secret-value --secret-id "$NAME" --query SecretString --output text)" \
    "v1-$MARKER" "the same-server replica's value"
g="$(on_peer secretsmanager get-secret-value --secret-id "$NAME" --output json)"
assert_eq "$(q "d['SecretString']" <<<"$g")" "v1-$MARKER" "the peer replica's value"
assert_eq "$(q "d['ARN']" <<<"$g")" "${ARN/:$PRIMARY_REGION:/:$PEER_REGION:}" "the peer replica's ARN (the primary's, region swapped)"
assert_eq "$(q "(d['VersionId'], d['VersionStages'])" <<<"$g")" "('$V1', ['AWSCURRENT'])" "the peer replica's version"
r="$(on_peer secretsmanager describe-secret --secret-id "$NAME" --output json)"
assert_eq "$(q "d['PrimaryRegion']" <<<"$r")" "$PRIMARY_REGION" "the peer replica's PrimaryRegion"
assert_eq "$(q "d['KmsKeyId']" <<<"$r")" "$PEER_KEY" "the peer replica is encrypted under the peer region's key"
assert_eq "$(q "(d['Description'], d['Tags'])" <<<"$r")" "('replicated database', [{'Key': 'team', 'Value': 'db'}])" \
    "the peer replica's description and tags"
assert_eq "$(q "'ReplicationStatus' in d" <<<"$r")" "False" "a replica lists no ReplicationStatus"
l="$(on_primary "$LOCAL_REGION" secretsmanager describe-secret --secret-id "$NAME" --output json)"
assert_eq "$(q "(d['PrimaryRegion'], d['KmsKeyId'])" <<<"$l")" "('$PRIMARY_REGION', '$LOCAL_KEY')" \
    "the same-server replica's PrimaryRegion and key"
# Each replica's data key is wrapped under its own region's key: the peer's key, disabled, stops its reads.
on_peer kms disable-key --key-id "$PEER_KEY"
expect_error DecryptionFailure on_peer secretsmanager get-secret-value --secret-id "$NAME"
on_peer kms enable-key --key-id "$PEER_KEY"
assert_eq "$(on_peer secretsmanager get-secret-value --secret-id "$NAME" --query SecretString --output text)" \
    "v1-$MARKER" "the peer replica readable again once its key is enabled"

step "writes on a replica are refused in AWS's words"
expect_error InvalidParameterException on_peer secretsmanager put-secret-value --secret-id "$NAME" --secret-string "x-$MARKER"
[[ "$ERR_OUT" == *"Operation not permitted on a replica secret. Call must be made in primary secret's region."* ]] ||
    fail "the refusal's message: $ERR_OUT"

step "put-secret-value on the primary reaches both replicas"
V2="$(sm put-secret-value --secret-id "$NAME" --secret-string "v2-$MARKER" --query VersionId --output text)"
wait_status "$NAME" "$PEER_REGION" InSync
assert_eq "$(on_peer secretsmanager get-secret-value --secret-id "$NAME" --query '[VersionId,SecretString]' --output text)" \
    "$V2	v2-$MARKER" "the peer replica follows"
assert_eq "$(on_peer secretsmanager get-secret-value --secret-id "$NAME" --version-stage AWSPREVIOUS --query VersionId --output text)" \
    "$V1" "the peer replica's AWSPREVIOUS"
assert_eq "$(on_primary "$LOCAL_REGION" secretsmanager get-secret-value --secret-id "$NAME" --query SecretString --output text)" \
    "v2-$MARKER" "the same-server replica follows"

step "delete-secret of a primary with replicas is refused"
expect_error InvalidParameterException sm delete-secret --secret-id "$NAME" --force-delete-without-recovery
[[ "$ERR_OUT" == *"You can't delete secret $ARN that still has replica regions [eu-west-1, us-west-2]."* ]] ||
    fail "the refusal's message: $ERR_OUT"

step "remove-regions-from-replication --remove-replica-regions $PEER_REGION (the peer's replica deleted)"
out="$(sm remove-regions-from-replication --secret-id "$NAME" --remove-replica-regions "$PEER_REGION" --output json)"
assert_eq "$(q "sorted(d)" <<<"$out")" "['ARN', 'ReplicationStatus']" "remove-regions-from-replication answer's fields"
assert_eq "$(q "d['ARN']" <<<"$out")" "$ARN" "its ARN is the primary's"
assert_eq "$(q "[(r['Region'], r['Status'], r['KmsKeyId']) for r in d['ReplicationStatus']]" <<<"$out")" \
    "[('us-west-2', 'InSync', '$LOCAL_KEY')]" "it lists the replicas left"
assert_eq "$(replica_status "$NAME" "$PEER_REGION")" "absent -" "the primary no longer lists $PEER_REGION"
deadline=$((SECONDS + 60))
while on_peer secretsmanager describe-secret --secret-id "$NAME" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "the peer's replica was not deleted within 60 s"
    sleep 0.2
done
expect_error ResourceNotFoundException on_peer secretsmanager get-secret-value --secret-id "$NAME"

step "stop-replication-to-replica --region $LOCAL_REGION (the same server): promotion"
out="$(on_primary "$LOCAL_REGION" secretsmanager stop-replication-to-replica --secret-id "$NAME" --output json)"
assert_eq "$(q "sorted(d)" <<<"$out")" "['ARN']" "stop-replication-to-replica answer's fields"
assert_eq "$(q "d['ARN']" <<<"$out")" "${ARN/:$PRIMARY_REGION:/:$LOCAL_REGION:}" "its ARN is the promoted secret's"
l="$(on_primary "$LOCAL_REGION" secretsmanager describe-secret --secret-id "$NAME" --output json)"
assert_eq "$(q "'PrimaryRegion' in d or 'ReplicationStatus' in d" <<<"$l")" "False" "the promoted secret is standalone"
on_primary "$LOCAL_REGION" secretsmanager put-secret-value --secret-id "$NAME" --secret-string "own-$MARKER" >/dev/null
d="$(describe "$NAME")"
assert_eq "$(q "('PrimaryRegion' in d, 'ReplicationStatus' in d)" <<<"$d")" "(False, False)" \
    "the primary, with no replica left, is standalone again"
sm put-secret-value --secret-id "$NAME" --secret-string "v3-$MARKER" >/dev/null
assert_eq "$(on_primary "$LOCAL_REGION" secretsmanager get-secret-value --secret-id "$NAME" --query SecretString --output text)" \
    "own-$MARKER" "the promoted secret no longer follows its old primary"

step "stop-replication-to-replica --region $PEER_REGION against the peer: promotion on the peer"
ARN2="$(sm create-secret --name "$NAME2" --secret-string "api-v1-$MARKER" --query ARN --output text \
    --add-replica-regions "Region=$PEER_REGION,KmsKeyId=alias/e2e-replica")"
wait_status "$NAME2" "$PEER_REGION" InSync
out="$(on_peer secretsmanager stop-replication-to-replica --secret-id "$NAME2" --output json)"
assert_eq "$(q "sorted(d)" <<<"$out")" "['ARN']" "stop-replication-to-replica answer's fields (peer)"
assert_eq "$(q "d['ARN']" <<<"$out")" "${ARN2/:$PRIMARY_REGION:/:$PEER_REGION:}" "its ARN is the promoted secret's (peer)"
r="$(on_peer secretsmanager describe-secret --secret-id "$NAME2" --output json)"
assert_eq "$(q "'PrimaryRegion' in d" <<<"$r")" "False" "the secret promoted on the peer is standalone"
assert_eq "$(q "d['KmsKeyId']" <<<"$r")" "$PEER_KEY" "it keeps its region's key"
on_peer secretsmanager put-secret-value --secret-id "$NAME2" --secret-string "api-peer-$MARKER" >/dev/null
assert_eq "$(on_peer secretsmanager get-secret-value --secret-id "$NAME2" --query SecretString --output text)" \
    "api-peer-$MARKER" "the promoted secret accepts writes"
# The primary's server learns of a promotion on a peer from the peer's refusal of its next change
# (the peer does not call the primary back): it then shows the region Failed, and nothing reaches
# the promoted secret.
sm put-secret-value --secret-id "$NAME2" --secret-string "api-v2-$MARKER" >/dev/null
wait_status "$NAME2" "$PEER_REGION" Failed
msg="$(describe "$NAME2" | q "next(r['StatusMessage'] for r in d['ReplicationStatus'] if r['Region'] == '$PEER_REGION')")"
[[ "$msg" == *"promoted"* ]] || fail "the Failed status's message: $msg"
assert_eq "$(on_peer secretsmanager get-secret-value --secret-id "$NAME2" --query SecretString --output text)" \
    "api-peer-$MARKER" "the promoted secret keeps its own value"
out="$(sm remove-regions-from-replication --secret-id "$NAME2" --remove-replica-regions "$PEER_REGION" --output json)"
assert_eq "$(q "d['ReplicationStatus']" <<<"$out")" "[]" "no replica left after removing the promoted region"
sleep 1
assert_eq "$(on_peer secretsmanager get-secret-value --secret-id "$NAME2" --query SecretString --output text)" \
    "api-peer-$MARKER" "removing the region on the old primary leaves the promoted secret"

step "clean up"
sm delete-secret --secret-id "$NAME" --force-delete-without-recovery >/dev/null
sm delete-secret --secret-id "$NAME2" --force-delete-without-recovery >/dev/null
on_primary "$LOCAL_REGION" secretsmanager delete-secret --secret-id "$NAME" --force-delete-without-recovery >/dev/null
on_peer secretsmanager delete-secret --secret-id "$NAME2" --force-delete-without-recovery >/dev/null
stop_pid "$PRIMARY_PID"
PRIMARY_PID=""
stop_pid "$PEER_PID"
PEER_PID=""

step "no plaintext marker in either server's data directory"
"$PY" - "$MARKER" "$PRIMARY_DIR" "$PEER_DIR" <<'PY'
import base64, os, sys
marker = sys.argv[1].encode()
needles = [marker, marker.hex().encode()]
for pad in range(3):
    enc = base64.b64encode(b"\0" * pad + marker)
    needles.append(enc[4 if pad else 0:-4])
files = 0
for top in sys.argv[2:]:
    for dirpath, _dirs, names in os.walk(top):
        for name in names:
            path = os.path.join(dirpath, name)
            if not os.path.isfile(path):
                continue
            files += 1
            with open(path, "rb") as f:
                data = f.read()
            if any(n in data for n in needles):
                sys.exit(f"plaintext found in {path}")
if files == 0:
    sys.exit("nothing scanned")
PY

OK=1
echo "replication (AWS CLI): ok"
