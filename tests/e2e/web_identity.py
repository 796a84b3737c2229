"""boto3's own web-identity credential provider against strongroom: a JWT in a token file,
AWS_ROLE_ARN, and the STS endpoint override; then calls as the role session, and a refused
token. Needs AWS_ENDPOINT_URL and E2E_JWT_SECRET_FILE (the provider's HMAC secret)."""

import base64
import hashlib
import hmac
import json
import os
import sys
import tempfile
import time

import boto3
import botocore.exceptions


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict, key: bytes) -> str:
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


# The token files (credentials) live in a directory of their own, removed when this exits.
TOKENS = tempfile.TemporaryDirectory(prefix="strongroom-e2e-jwt-")


def session_with(token: str) -> boto3.session.Session:
    with tempfile.NamedTemporaryFile("w", delete=False, suffix=".jwt", dir=TOKENS.name) as f:
        f.write(token)
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ.pop(k, None)
    os.environ["AWS_ROLE_ARN"] = "arn:aws:iam::111122223333:role/e2e-web"
    os.environ["AWS_WEB_IDENTITY_TOKEN_FILE"] = f.name
    os.environ["AWS_ROLE_SESSION_NAME"] = "payments-api"
    os.environ["AWS_ENDPOINT_URL_STS"] = os.environ["AWS_ENDPOINT_URL"]
    return boto3.session.Session(region_name="us-east-1")


def main() -> int:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    key = open(os.environ["E2E_JWT_SECRET_FILE"], "rb").read().strip()
    now = int(time.time())
    claims = {"iss": "https://e2e.strongroom.test", "aud": "strongroom",
              "sub": "system:serviceaccount:payments:api", "iat": now, "exp": now + 600}

    s = session_with(make_jwt(claims, key))
    who = s.client("sts", endpoint_url=endpoint).get_caller_identity()
    assert who["Arn"] == "arn:aws:sts::111122223333:assumed-role/e2e-web/payments-api", who
    sm = s.client("secretsmanager", endpoint_url=endpoint)
    sm.list_secrets()  # allowed by the read-only policy
    try:
        sm.create_secret(Name="e2e/web/not-allowed", SecretString="x")
        raise AssertionError("create_secret should be denied for the read-only role")
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "AccessDeniedException", e.response

    # a token for another service account is refused by the trust policy
    bad = dict(claims, sub="system:serviceaccount:other:api")
    s = session_with(make_jwt(bad, key))
    try:
        s.client("sts", endpoint_url=endpoint).get_caller_identity()
        raise AssertionError("a token the trust policy refuses must not yield credentials")
    except (botocore.exceptions.ClientError, botocore.exceptions.CredentialRetrievalError) as e:
        assert "AccessDenied" in str(e) or "Not authorized" in str(e), e

    # an expired token
    old = dict(claims, exp=now - 3600, iat=now - 7200)
    s = session_with(make_jwt(old, key))
    try:
        s.client("sts", endpoint_url=endpoint).get_caller_identity()
        raise AssertionError("an expired token must not yield credentials")
    except (botocore.exceptions.ClientError, botocore.exceptions.CredentialRetrievalError) as e:
        assert "InvalidIdentityToken" in str(e) or "expired" in str(e), e

    print("web identity: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
