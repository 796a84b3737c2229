#!/usr/bin/env python3
"""Write the hand-made seeds of the text-format fuzz targets into fuzz/corpus/.

protocol_decode: `X-Amz-Target\nbody` pairs taken from real SDK requests.
policy_parse:    the policy documents in policies/ and in the IAM test vectors (tests/corpus/).
wildcard_match:  `pattern\ncandidate` pairs in the shapes policies use.
sigv4_header:    `METHOD PATH?QUERY\nNOW\nheaders\n\nbody`, signed by botocore's SigV4Auth with
                 the key the target verifies with, so the fuzzer starts from accepted requests.

Run with the repo's venv (needs botocore): .venv/bin/python fuzz/make_seeds.py
The binary-format targets (envelope_roundtrip, filters, password) get their seeds from
short fuzzing runs, minimised with `cargo fuzz cmin`.
"""
import datetime
import json
import os
from unittest import mock

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HERE = os.path.dirname(os.path.abspath(__file__))
AKID = "AKIAFUZZ000000000001"
SECRET = "fuzz/secret/KEY/0123456789abcdefghijklmnop"
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z, the target's default clock


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


PROTOCOL = {
    "get": ("secretsmanager.GetSecretValue", {"SecretId": "prod/db", "VersionStage": "AWSCURRENT"}),
    "create": ("secretsmanager.CreateSecret", {
        "Name": "prod/db", "SecretString": "{\"user\":\"u\"}", "ClientRequestToken": "a" * 36,
        "Description": "d", "Tags": [{"Key": "k", "Value": "v"}]}),
    "put": ("secretsmanager.PutSecretValue", {
        "SecretId": "prod/db", "SecretBinary": "AAECAw==", "VersionStages": ["AWSPENDING"]}),
    "stage": ("secretsmanager.UpdateSecretVersionStage", {
        "SecretId": "s", "VersionStage": "AWSCURRENT", "MoveToVersionId": "b" * 32,
        "RemoveFromVersionId": "c" * 32}),
    "list": ("secretsmanager.ListSecrets", {
        "MaxResults": 10, "Filters": [{"Key": "name", "Values": ["prod", "!test"]}],
        "SortOrder": "asc", "IncludePlannedDeletion": True}),
    "batch": ("secretsmanager.BatchGetSecretValue", {"SecretIdList": ["a", "b"], "MaxResults": 20}),
    "password": ("secretsmanager.GetRandomPassword", {
        "PasswordLength": 20, "ExcludeCharacters": "abc", "IncludeSpace": True}),
    "delete": ("secretsmanager.DeleteSecret", {"SecretId": "s", "RecoveryWindowInDays": 7}),
    "kms_create": ("TrentService.CreateKey", {"Description": "k", "KeyUsage": "ENCRYPT_DECRYPT"}),
    "kms_alias": ("TrentService.CreateAlias", {"AliasName": "alias/a", "TargetKeyId": "k"}),
    "cloudtrail": ("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents", {}),
}


def protocol_seeds():
    for name, (target, body) in PROTOCOL.items():
        write("protocol_decode", name, f"{target}\n{json.dumps(body)}".encode())
    write("protocol_decode", "empty", b"secretsmanager.ListSecrets\n")
    write("protocol_decode", "wrong_types", b'secretsmanager.CreateSecret\n{"Name":5,"Tags":"x","SecretString":[1e999]}')
    write("protocol_decode", "deep", b"secretsmanager.GetSecretValue\n" + b"[" * 40 + b"]" * 40)
    # The nesting limit is 32: the deepest accepted body and the shallowest rejected one.
    write("protocol_decode", "deep32", b"secretsmanager.ListSecrets\n" + b'{"a":' * 31 + b"[]" + b"}" * 31)
    write("protocol_decode", "deep33", b"secretsmanager.ListSecrets\n" + b'{"a":' * 32 + b"[]" + b"}" * 32)


def signed(method, path, query, headers, body, when):
    url = f"https://secretsmanager.us-east-1.amazonaws.com{path}" + (f"?{query}" if query else "")
    req = AWSRequest(method=method, url=url, data=body, headers=headers)
    fixed = datetime.datetime.fromtimestamp(when, datetime.timezone.utc).replace(tzinfo=None)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=fixed):
        botocore.auth.SigV4Auth(Credentials(AKID, SECRET), "secretsmanager", "us-east-1").add_auth(req)
    prepared = req.prepare()
    lines = [f"{method} {path}" + (f"?{query}" if query else ""), str(when)]
    lines.append("host: secretsmanager.us-east-1.amazonaws.com")
    for k, v in prepared.headers.items():
        if isinstance(v, bytes):
            v = v.decode()
        lines.append(f"{k.lower()}: {v}")
    return ("\n".join(lines) + "\n\n").encode() + body


def sigv4_seeds():
    json_headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.GetSecretValue"}
    body = b'{"SecretId":"prod/db"}'
    write("sigv4_header", "boto_get", signed("POST", "/", "", json_headers, body, T0))
    write("sigv4_header", "boto_query", signed("GET", "/a/b", "x=1&y=two", {"X-Custom": "a  b"}, b"", T0 + 60))
    write("sigv4_header", "missing_parts",
          b"POST /\n1767225600\nhost: h\nx-amz-date: 20260101T000000Z\n"
          b"authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/secretsmanager/aws4_request\n\n{}")
    write("sigv4_header", "http_date",
          b"POST /\n1767225600\nhost: h\ndate: Thu, 01 Jan 2026 00:00:00 GMT\n"
          b"authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/kms/aws4_request, "
          b"SignedHeaders=host;date, Signature=" + b"0" * 64 + b"\n\n")


ROOT = os.path.dirname(HERE)


def policy_documents():
    """Policy documents from the repo: example principals/policies and the IAM test vectors."""
    docs = []
    for top in ("policies",):
        for dirpath, _dirs, names in sorted(os.walk(os.path.join(ROOT, top))):
            for n in sorted(names):
                if n.endswith(".json"):
                    with open(os.path.join(dirpath, n)) as f:
                        docs.append(json.load(f))
    for case_file in ("tests/corpus/iam-cases.json", "tests/corpus/strongroom-cases.json"):
        path = os.path.join(ROOT, case_file)
        if not os.path.exists(path):
            continue
        with open(path) as f:
            cases = json.load(f)
        for case in cases if isinstance(cases, list) else cases.get("cases", []):
            for v in (case.get("policies") or {}).values():
                for d in (v if isinstance(v, list) else [v]):
                    if isinstance(d, dict) and "Statement" in d:
                        docs.append(d)

    def walk(x):
        # principal files embed policies: pick out anything that looks like a document
        if isinstance(x, dict):
            if "Statement" in x:
                yield x
            else:
                for v in x.values():
                    yield from walk(v)
        elif isinstance(x, list):
            for v in x:
                yield from walk(v)

    out, seen = [], set()
    for d in docs:
        for doc in walk(d):
            text = json.dumps(doc, indent=1)
            if text not in seen:
                seen.add(text)
                out.append(text)
    return out


def policy_seeds():
    docs = policy_documents()
    for i, text in enumerate(docs[:60]):
        write("policy_parse", f"repo_{i:02d}", text.encode())
    write("policy_parse", "dup_key", b'{"Version":"2012-10-17","Version":"2012-10-17","Statement":[]}')
    write("policy_parse", "numbers", b'{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"a:b",'
          b'"Resource":"*","Condition":{"NumericLessThan":{"a:n":[1, -0, 2.5, 1e30, 12345678901234567890]}}}}')
    write("policy_parse", "unicode", '{"Version":"2012-10-17","Statement":{"Sid":"\u00e9","Effect":"Allow",'
          '"Action":"a:b","Resource":"arn:aws:s3:::é/ĀЖ"}}'.encode())
    pairs = [
        ("arn:aws:secretsmanager:*:111122223333:secret:prod/*", "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf"),
        ("arn:aws:secretsmanager:us-east-1:*:secret:a?c-*", "arn:aws:secretsmanager:us-east-1:1:secret:abc-x:y:z"),
        ("secretsmanager:Get*", "secretsmanager:GetSecretValue"),
        ("*Secret*Value", "secretsmanager:PutSecretValue"),
        ("arn:aws:*", "arn:aws:iam::111122223333:user/alice"),
        ("a*b*c?d", "aXXbYYcZd"),
        ("*", ""),
    ]
    for i, (p, c) in enumerate(pairs):
        write("wildcard_match", f"pair_{i}", f"{p}\n{c}".encode())


if __name__ == "__main__":
    protocol_seeds()
    sigv4_seeds()
    policy_seeds()
    print("seeds written")
