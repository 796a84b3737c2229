"""The attacker's afternoon, through boto3 against a real `strongroom serve`: a limited user
(`mallory`, set up by scripts/e2e.sh) tries each authorization hole a security review found,
and is refused; a positive control next to each shows the legitimate path still works; the
audit trail (LookupEvents) records every refusal.

Needs AWS_ENDPOINT_URL, E2E_BIN, E2E_DATA_DIR,
E2E_POLICIES, E2E_JWT_SECRET_FILE and, on PostgreSQL, E2E_DATABASE_URL."""

import json
import os
import subprocess
import sys
import time

import boto3
import botocore.config
import botocore.exceptions

from web_identity import make_jwt

HOME = "111122223333"
OTHER = "444455556666"
ENDPOINT = os.environ["AWS_ENDPOINT_URL"]
DEFAULT_KEY_MSG = ("You can't access a secret from a different AWS account if you encrypt the "
                   "secret with the default KMS service key.")


def mint(account: str, user: str = None) -> dict:
    """An access key for `user` of `account`, or (no user) for the account's root."""
    who = ["--user", user] if user else ["--root"]
    args = [os.environ["E2E_BIN"], "access-key", "create", "--data-dir", os.environ["E2E_DATA_DIR"],
            "--policies", os.environ["E2E_POLICIES"], "--account", account] + who
    if os.environ.get("E2E_DATABASE_URL"):
        args += ["--database-url", os.environ["E2E_DATABASE_URL"]]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def session(key: dict, token: str = None) -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id=key["AccessKeyId"],
                                 aws_secret_access_key=key["SecretAccessKey"],
                                 aws_session_token=token, region_name="us-east-1")


def refused(call, code: str, *, contains: str = None) -> dict:
    """Run `call`; it must fail with `code` (and a message containing `contains`)."""
    try:
        out = call()
    except botocore.exceptions.ClientError as e:
        err = e.response["Error"]
        assert err["Code"] == code, (code, e.response)
        if contains is not None:
            assert contains in err.get("Message", ""), (contains, e.response)
        return err
    raise AssertionError(f"expected {code}, the call succeeded: {out}")


def with_headers(client, headers: dict):
    """Add `headers` to every request `client` sends (signed with it, as a proxy would not)."""
    def add(request, **_):
        for k, v in headers.items():
            request.headers[k] = v
    client.meta.events.register_first("before-sign.*.*", add)
    return client


def eventually(check, what: str):
    """Poll `check` (a policies reload reaching the server) for at most 30 s."""
    deadline = time.time() + 30
    while True:
        try:
            return check()
        except (AssertionError, botocore.exceptions.ClientError):
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def main() -> int:
    # The example principals' account (not the server's bootstrap account): its root.
    root = session(mint(HOME))
    sm = root.client("secretsmanager", endpoint_url=ENDPOINT)
    kms = root.client("kms", endpoint_url=ENDPOINT)
    sm.create_secret(Name="atk/team-a", SecretString="a-value", Tags=[{"Key": "team", "Value": "a"}])
    sm.create_secret(Name="atk/team-b", SecretString="b-value", Tags=[{"Key": "team", "Value": "b"}])
    sm.create_secret(Name="office/db", SecretString="office-value")
    sm.create_secret(Name="tls/db", SecretString="tls-value")
    shared = sm.create_secret(Name="atk/shared", SecretString="home-value")["ARN"]
    sm.put_resource_policy(SecretId="atk/shared", ResourcePolicy=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"}, "Action": "secretsmanager:*",
            "Resource": "*"}]}))

    mallory_key = mint(HOME, "mallory")
    mallory = session(mallory_key)
    m_sts = mallory.client("sts", endpoint_url=ENDPOINT)
    m_sm = mallory.client("secretsmanager", endpoint_url=ENDPOINT)

    # Positive control: mallory reads what her policy allows.
    assert m_sm.get_secret_value(SecretId="atk/team-a")["SecretString"] == "a-value"

    # 1. A role that does not trust her, though her policy allows sts:AssumeRole on *.
    refused(lambda: m_sts.assume_role(
        RoleArn=f"arn:aws:iam::{HOME}:role/service/payments-app", RoleSessionName="try"),
        "AccessDenied")
    # Positive control: ci-bot, whom the trust policy names.
    ci = session(mint(HOME, "ci-bot")).client("sts", endpoint_url=ENDPOINT)
    ci.assume_role(RoleArn=f"arn:aws:iam::{HOME}:role/service/payments-app", RoleSessionName="ok")

    # 2. A forged X-Forwarded-For (the server trusts no proxy): her office-only grant fails.
    spoof = with_headers(mallory.client("secretsmanager", endpoint_url=ENDPOINT),
                         {"X-Forwarded-For": "198.51.100.7"})
    refused(lambda: spoof.get_secret_value(SecretId="office/db"), "AccessDeniedException")

    # 3. A forged X-Forwarded-Proto over plain HTTP: her TLS-only grant fails.
    tls = with_headers(mallory.client("secretsmanager", endpoint_url=ENDPOINT),
                       {"X-Forwarded-Proto": "https"})
    refused(lambda: tls.get_secret_value(SecretId="tls/db"), "AccessDeniedException")

    # 4. A web identity token with an extra `SUB` claim naming the trusted subject.
    key = open(os.environ["E2E_JWT_SECRET_FILE"], "rb").read().strip()
    now = int(time.time())
    claims = {"iss": "https://e2e.strongroom.test", "aud": "strongroom",
              "sub": "system:serviceaccount:mallory:tool", "SUB": "system:serviceaccount:payments:api",
              "iat": now, "exp": now + 600}
    anon = boto3.session.Session(region_name="us-east-1").client(
        "sts", endpoint_url=ENDPOINT, config=botocore.config.Config(signature_version=botocore.UNSIGNED))
    err = None
    try:
        anon.assume_role_with_web_identity(RoleArn=f"arn:aws:iam::{HOME}:role/e2e-web",
                                           RoleSessionName="mallory", WebIdentityToken=make_jwt(claims, key))
    except botocore.exceptions.ClientError as e:
        err = e.response["Error"]["Code"]
    assert err in ("AccessDenied", "InvalidIdentityToken"), err

    # 5. An old version sealed under a key she may not use, after the secret moved keys.
    k1 = kms.create_key(Description="old")["KeyMetadata"]
    k2 = kms.create_key(Description="new")["KeyMetadata"]
    first = sm.create_secret(Name="atk/moved", SecretString="old-key-value", KmsKeyId=k1["KeyId"],
                             Tags=[{"Key": "team", "Value": "a"}])["VersionId"]
    for v in ("second", "third"):
        sm.put_secret_value(SecretId="atk/moved", SecretString=v)
    sm.update_secret(SecretId="atk/moved", KmsKeyId=k2["KeyId"])
    with open(os.path.join(os.environ["E2E_POLICIES"], f"accounts/{HOME}/users/mallory.json")) as f:
        doc = json.load(f)
    doc["InlinePolicies"]["p"]["Statement"].append(
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": k2["Arn"]})
    with open(os.path.join(os.environ["E2E_POLICIES"], f"accounts/{HOME}/users/mallory.json"), "w") as f:
        json.dump(doc, f)
    got = eventually(lambda: m_sm.get_secret_value(SecretId="atk/moved"), "reload")
    assert got["SecretString"] == "third", got  # positive control: the current key
    refused(lambda: m_sm.get_secret_value(SecretId="atk/moved", VersionId=first),
            "AccessDeniedException", contains="kms:Decrypt")

    # 6. BatchGetSecretValue with filters without secretsmanager:ListSecrets.
    refused(lambda: m_sm.batch_get_secret_value(Filters=[{"Key": "name", "Values": ["atk/"]}]),
            "AccessDeniedException", contains="secretsmanager:ListSecrets")

    # 7. Existence oracles: an existing secret she may not read and a missing one answer alike.
    hidden = refused(lambda: m_sm.get_secret_value(SecretId="atk/team-b"), "AccessDeniedException")
    missing = refused(lambda: m_sm.get_secret_value(SecretId="atk/none"), "AccessDeniedException")
    assert hidden["Message"].replace("atk/team-b", "X") == missing["Message"].replace("atk/none", "X"), \
        (hidden, missing)
    batch = m_sm.batch_get_secret_value(SecretIdList=["atk/team-b", "atk/none", "atk/team-a"])
    assert [v["Name"] for v in batch["SecretValues"]] == ["atk/team-a"], batch
    assert sorted(e["ErrorCode"] for e in batch["Errors"]) == ["AccessDeniedException"] * 2, batch

    # Another account cannot write (nor read) under this account's default key.
    outsider = session(mint(OTHER, "outsider")).client("secretsmanager", endpoint_url=ENDPOINT)
    refused(lambda: outsider.put_secret_value(SecretId=shared, SecretString="planted"),
            "InvalidRequestException", contains=DEFAULT_KEY_MSG)
    refused(lambda: outsider.get_secret_value(SecretId=shared), "InvalidRequestException",
            contains=DEFAULT_KEY_MSG)
    assert outsider.describe_secret(SecretId=shared)["Name"] == "atk/shared"  # positive control
    assert sm.get_secret_value(SecretId="atk/shared")["SecretString"] == "home-value"

    # The audit trail records each of mallory's refusals, with the decision.
    ct = root.client("cloudtrail", endpoint_url=ENDPOINT)
    events = ct.lookup_events(LookupAttributes=[
        {"AttributeKey": "AccessKeyId", "AttributeValue": mallory_key["AccessKeyId"]}],
        MaxResults=50)["Events"]
    records = [json.loads(e["CloudTrailEvent"]) for e in events]
    denied = {(r["eventName"], r.get("errorCode")) for r in records if r.get("errorCode")}
    for want in [("AssumeRole", "AccessDenied"), ("GetSecretValue", "AccessDeniedException"),
                 ("BatchGetSecretValue", "AccessDeniedException")]:
        assert want in denied, (want, sorted(denied))
    for r in records:
        if r.get("errorCode") in ("AccessDenied", "AccessDeniedException"):
            assert r["authorization"]["decision"] in ("ImplicitDeny", "ExplicitDeny"), r
    spoofed = [r for r in records if r["eventName"] == "GetSecretValue"
               and r.get("requestParameters", {}).get("secretId") == "office/db"]
    assert spoofed and all(r["sourceIPAddress"] == "127.0.0.1" for r in spoofed), spoofed
    print(f"attacker: refused and recorded ({len(records)} of mallory's events)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
