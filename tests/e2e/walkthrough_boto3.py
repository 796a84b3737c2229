#!/usr/bin/env python3
"""boto3 walkthrough of the Secrets Manager + KMS API against strongroom.

Normally started by scripts/e2e.sh (which sets AWS_ENDPOINT_URL and the
credentials) with the project's .venv python. Every secret value stored here
contains MARKER-7f3a9c-plaintext, which scripts/e2e.sh afterwards looks for at
rest; names, descriptions and tags never contain it.

Each check is a function of plain asserts; main() runs them in order and
stops at the first failure with a traceback.
"""

import datetime
import os
import re
import string
import sys
import traceback
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

MARKER = "MARKER-7f3a9c-plaintext"
PREFIX = "e2e/boto3"
ENDPOINT = os.environ["AWS_ENDPOINT_URL"]
REGION = "us-east-1"

# No retries: every server error must surface.
_CONFIG = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=60)
sm = boto3.client("secretsmanager", endpoint_url=ENDPOINT, region_name=REGION, config=_CONFIG)
kms = boto3.client("kms", endpoint_url=ENDPOINT, region_name=REGION, config=_CONFIG)

ARN_RE = re.compile(r"^arn:aws:secretsmanager:[a-z0-9-]+:\d{12}:secret:(?P<name>.+)-[A-Za-z0-9]{6}$")


def secret_value(tag):
    """A JSON secret string carrying the plaintext marker."""
    return '{"user": "svc", "password": "%s-%s"}' % (MARKER, tag)


def expect_error(code, fn, **kwargs):
    """Call fn(**kwargs); it must raise ClientError with Error.Code == code."""
    try:
        result = fn(**kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"{fn.__name__}: expected {code}, got {got}: {e}"
        return e
    raise AssertionError(f"{fn.__name__}({kwargs}) succeeded, expected {code}: {result}")


def stages_of(secret_id):
    return sm.describe_secret(SecretId=secret_id)["VersionIdsToStages"]


# --------------------------------------------------------------------- checks
def check_create_get_put_stages():
    name = f"{PREFIX}/db-password"
    v1, v2, v3 = secret_value("v1"), secret_value("v2"), secret_value("v3-pending")

    created = sm.create_secret(
        Name=name,
        SecretString=v1,
        Description="e2e boto3 secret",
        Tags=[{"Key": "team", "Value": "payments"}],
    )
    assert created["Name"] == name
    m = ARN_RE.match(created["ARN"])
    assert m and m.group("name") == name, created["ARN"]
    id1 = created["VersionId"]

    got = sm.get_secret_value(SecretId=name)
    assert got["SecretString"] == v1
    assert "AWSCURRENT" in got["VersionStages"]
    assert got["VersionId"] == id1
    assert got["ARN"] == created["ARN"]
    assert isinstance(got["CreatedDate"], datetime.datetime), got["CreatedDate"]
    assert "SecretBinary" not in got

    id2 = sm.put_secret_value(SecretId=name, SecretString=v2)["VersionId"]
    assert id2 != id1
    assert sm.get_secret_value(SecretId=name)["SecretString"] == v2
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == v1
    assert sm.get_secret_value(SecretId=name, VersionId=id1)["SecretString"] == v1

    id3 = sm.put_secret_value(SecretId=name, SecretString=v3, VersionStages=["AWSPENDING"])["VersionId"]
    assert sm.get_secret_value(SecretId=name)["SecretString"] == v2, "AWSPENDING put moved AWSCURRENT"
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPENDING")["SecretString"] == v3

    sm.update_secret(SecretId=name, Description="e2e boto3 secret (updated)")
    desc = sm.describe_secret(SecretId=name)
    assert desc["Description"] == "e2e boto3 secret (updated)"
    assert {"Key": "team", "Value": "payments"} in desc["Tags"]
    assert isinstance(desc["CreatedDate"], datetime.datetime)
    stages = desc["VersionIdsToStages"]
    assert "AWSCURRENT" in stages[id2], stages
    assert "AWSPREVIOUS" in stages[id1], stages
    assert "AWSPENDING" in stages[id3], stages
    assert MARKER not in repr(desc), "describe_secret leaked the value"

    versions = sm.list_secret_version_ids(SecretId=name)["Versions"]
    assert {id1, id2, id3} <= {v["VersionId"] for v in versions}, versions

    sm.update_secret_version_stage(
        SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=id3, RemoveFromVersionId=id2
    )
    stages = stages_of(name)
    assert "AWSCURRENT" in stages[id3], stages
    assert "AWSPREVIOUS" in stages[id2], stages
    assert sm.get_secret_value(SecretId=name)["SecretString"] == v3

    sm.tag_resource(SecretId=name, Tags=[{"Key": "env", "Value": "e2e"}])
    tags = sm.describe_secret(SecretId=name)["Tags"]
    assert {"Key": "env", "Value": "e2e"} in tags and {"Key": "team", "Value": "payments"} in tags, tags
    sm.untag_resource(SecretId=name, TagKeys=["team"])
    tags = sm.describe_secret(SecretId=name)["Tags"]
    assert tags == [{"Key": "env", "Value": "e2e"}], tags


def check_name_filters():
    name = f"{PREFIX}/db-password"
    listed = sm.list_secrets(Filters=[{"Key": "name", "Values": [f"{PREFIX}/"]}])["SecretList"]
    assert name in [s["Name"] for s in listed], listed
    listed = sm.list_secrets(Filters=[{"Key": "name", "Values": [f"!{PREFIX}/"]}])["SecretList"]
    assert name not in [s["Name"] for s in listed], listed


def check_binary_roundtrip():
    name = f"{PREFIX}/binary"
    # Every byte value, plus the marker, plus random bytes.
    payload = bytes(range(256)) + MARKER.encode() + b"-binary" + os.urandom(200)
    sm.create_secret(Name=name, SecretBinary=payload)
    got = sm.get_secret_value(SecretId=name)
    assert got["SecretBinary"] == payload, "SecretBinary bytes differ after round-trip"
    assert "SecretString" not in got
    # A binary put creates a new version with exactly those bytes too.
    payload2 = os.urandom(64) + MARKER.encode() + b"-binary2"
    sm.put_secret_value(SecretId=name, SecretBinary=payload2)
    assert sm.get_secret_value(SecretId=name)["SecretBinary"] == payload2
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretBinary"] == payload


def check_client_request_token_idempotency():
    name = f"{PREFIX}/idempotent"
    sm.create_secret(Name=name, SecretString=secret_value("idem-0"))
    token = str(uuid.uuid4())
    value = secret_value("idem-1")
    first = sm.put_secret_value(SecretId=name, ClientRequestToken=token, SecretString=value)
    second = sm.put_secret_value(SecretId=name, ClientRequestToken=token, SecretString=value)
    assert first["VersionId"] == second["VersionId"] == token, (first, second)
    e = expect_error(
        "ResourceExistsException",
        sm.put_secret_value,
        SecretId=name,
        ClientRequestToken=token,
        SecretString=secret_value("idem-different"),
    )
    assert MARKER not in str(e), "error message leaked a secret value"
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value


def check_arn_forms():
    name = f"{PREFIX}/arn-forms"
    value = secret_value("arn")
    arn = sm.create_secret(Name=name, SecretString=value)["ARN"]
    assert ARN_RE.match(arn), arn
    partial = arn[: -len("-XXXXXX")]
    assert not partial.endswith("-") and partial.endswith(name), partial
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == value
    assert sm.get_secret_value(SecretId=partial)["SecretString"] == value
    assert sm.describe_secret(SecretId=partial)["ARN"] == arn
    assert sm.describe_secret(SecretId=arn)["Name"] == name


def check_list_paginator():
    names = [f"{PREFIX}/list/{c}" for c in "abc"]
    for n in names:
        sm.create_secret(Name=n, SecretString=secret_value("list-" + n[-1]))
    paginator = sm.get_paginator("list_secrets")
    seen, pages = [], 0
    for page in paginator.paginate(
        Filters=[{"Key": "name", "Values": [f"{PREFIX}/list/"]}], PaginationConfig={"PageSize": 1}
    ):
        pages += 1
        assert len(page["SecretList"]) <= 1, page["SecretList"]
        seen += [s["Name"] for s in page["SecretList"]]
        assert pages < 50, "paginator does not terminate"
    assert sorted(seen) == names, seen
    assert pages >= 3, pages
    for s in sm.list_secrets(Filters=[{"Key": "name", "Values": [f"{PREFIX}/list/"]}])["SecretList"]:
        assert isinstance(s["CreatedDate"], datetime.datetime), s


def check_batch_get():
    a, b = f"{PREFIX}/list/a", f"{PREFIX}/list/b"
    missing = f"{PREFIX}/list/does-not-exist"
    out = sm.batch_get_secret_value(SecretIdList=[a, b, missing])
    values = {v["Name"]: v["SecretString"] for v in out["SecretValues"]}
    assert values == {a: secret_value("list-a"), b: secret_value("list-b")}, values
    assert len(out["Errors"]) == 1, out["Errors"]
    err = out["Errors"][0]
    assert err["SecretId"] == missing, err
    assert err["ErrorCode"] == "ResourceNotFoundException", err


def check_random_password():
    pw = sm.get_random_password(PasswordLength=40, RequireEachIncludedType=True)["RandomPassword"]
    assert len(pw) == 40, pw
    assert any(c in string.ascii_lowercase for c in pw), pw
    assert any(c in string.ascii_uppercase for c in pw), pw
    assert any(c in string.digits for c in pw), pw
    assert any(c in string.punctuation for c in pw), pw
    assert " " not in pw, pw
    pw = sm.get_random_password(PasswordLength=40, ExcludePunctuation=True)["RandomPassword"]
    assert re.fullmatch(r"[A-Za-z0-9]{40}", pw), pw
    pw = sm.get_random_password(PasswordLength=64, ExcludeCharacters="abcXYZ123")["RandomPassword"]
    assert len(pw) == 64 and not set(pw) & set("abcXYZ123"), pw


def check_kms_key_and_alias():
    key = kms.create_key(Description="e2e boto3")["KeyMetadata"]
    key_id, key_arn = key["KeyId"], key["Arn"]
    alias = "alias/e2e-boto3-key"
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)

    name = f"{PREFIX}/kms-secret"
    value = secret_value("kms")
    sm.create_secret(Name=name, SecretString=value, KmsKeyId=key_arn)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value
    ref = sm.describe_secret(SecretId=name).get("KmsKeyId", "")
    assert key_id in ref or alias in ref, ref

    name2 = f"{PREFIX}/kms-secret-alias"
    sm.create_secret(Name=name2, SecretString=value, KmsKeyId=alias)
    assert sm.get_secret_value(SecretId=name2)["SecretString"] == value

    kms.disable_key(KeyId=key_id)
    try:
        sm.get_secret_value(SecretId=name)
    except ClientError as e:
        code, msg = e.response["Error"]["Code"], e.response["Error"].get("Message", "")
        assert code == "DecryptionFailure" or "disabled" in (code + msg).lower(), e.response["Error"]
    else:
        raise AssertionError("get_secret_value succeeded with the KMS key disabled")
    kms.enable_key(KeyId=key_id)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value

    assert key_id in [k["KeyId"] for k in kms.list_keys()["Keys"]]
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
    assert aliases.get(alias) == key_id, aliases


def check_delete_restore():
    name = f"{PREFIX}/to-delete"
    value = secret_value("delete")
    arn = sm.create_secret(Name=name, SecretString=value)["ARN"]

    expect_error(
        "InvalidParameterException",
        sm.delete_secret,
        SecretId=name,
        RecoveryWindowInDays=7,
        ForceDeleteWithoutRecovery=True,
    )

    out = sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    assert isinstance(out["DeletionDate"], datetime.datetime), out
    now = datetime.datetime.now(datetime.timezone.utc)
    days = (out["DeletionDate"] - now).total_seconds() / 86400
    assert 6.9 < days < 7.1, out["DeletionDate"]
    expect_error("InvalidRequestException", sm.get_secret_value, SecretId=name)
    assert isinstance(sm.describe_secret(SecretId=name)["DeletedDate"], datetime.datetime)

    sm.restore_secret(SecretId=name)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value

    sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=name)
    new_arn = sm.create_secret(Name=name, SecretString=value)["ARN"]
    assert new_arn != arn, "re-created secret reused the old ARN"


def check_error_codes():
    missing = f"{PREFIX}/does-not-exist"
    expect_error("ResourceNotFoundException", sm.get_secret_value, SecretId=missing)
    expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=missing)
    expect_error("ResourceNotFoundException", sm.put_secret_value, SecretId=missing, SecretString=secret_value("x"))
    expect_error(
        "ResourceExistsException", sm.create_secret, Name=f"{PREFIX}/db-password", SecretString=secret_value("dup")
    )
    # Not a valid recovery window (7..30 days).
    expect_error(
        "InvalidParameterException", sm.delete_secret, SecretId=f"{PREFIX}/db-password", RecoveryWindowInDays=3
    )


CHECKS = [
    check_create_get_put_stages,
    check_name_filters,
    check_binary_roundtrip,
    check_client_request_token_idempotency,
    check_arn_forms,
    check_list_paginator,
    check_batch_get,
    check_random_password,
    check_kms_key_and_alias,
    check_delete_restore,
    check_error_codes,
]


def main():
    if not __debug__:
        sys.exit("walkthrough_boto3.py relies on assert: run it without -O / PYTHONOPTIMIZE")
    for check in CHECKS:
        print(f"  - {check.__name__}", flush=True)
        try:
            check()
        except Exception:
            traceback.print_exc()
            print(f"FAIL: {check.__name__}", file=sys.stderr)
            return 1
    print("boto3 walkthrough: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
