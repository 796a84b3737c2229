"""Operating strongroom, with boto3: a low configured quota (GetRandomPassword, the
`random_password` group, 2 requests per second) answers ThrottlingException "Rate exceeded"
with HTTP 400 to a client that does not retry, and boto3's standard retry mode recovers from it;
the throttled calls are counted on the metrics listener, whose health probes answer.
Needs AWS_ENDPOINT_URL (the server, started by scripts/e2e-ops.sh) and E2E_METRICS_URL."""

import json
import os
import sys
import urllib.request

import boto3
import botocore.config
import botocore.exceptions


def client(max_attempts: int):
    cfg = botocore.config.Config(retries={"mode": "standard", "max_attempts": max_attempts})
    return boto3.client("secretsmanager", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                        region_name="us-east-1", config=cfg)


def get(path: str):
    with urllib.request.urlopen(os.environ["E2E_METRICS_URL"] + path, timeout=10) as r:
        return r.status, r.read().decode()


def sample(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series):
            return float(line[len(series):].strip())
    return 0.0


def main() -> int:
    # Without retries the throttle surfaces: AWS's code, message and status.
    once = client(1)
    throttled = None
    for _ in range(20):
        try:
            once.get_random_password(PasswordLength=16)
        except botocore.exceptions.ClientError as e:
            throttled = e.response
            break
    assert throttled is not None, "20 calls at once never went over a 2/s quota"
    assert throttled["Error"]["Code"] == "ThrottlingException", throttled
    assert throttled["Error"]["Message"] == "Rate exceeded", throttled
    assert throttled["ResponseMetadata"]["HTTPStatusCode"] == 400, throttled

    # The standard retry mode backs off and recovers: every call succeeds, some after retries.
    retrying = client(10)
    retries = 0
    for _ in range(8):
        r = retrying.get_random_password(PasswordLength=16)
        assert len(r["RandomPassword"]) == 16
        retries += r["ResponseMetadata"]["RetryAttempts"]
    assert retries > 0, "8 calls at 2/s should have needed at least one retry"
    print(f"ops: throttled as AWS does; standard retry recovered ({retries} retries over 8 calls)")

    status, text = get("/metrics")
    assert status == 200
    n = sample(text, 'strongroom_throttled_requests_total{operation="GetRandomPassword"}')
    assert n >= 1 + retries, (n, retries)
    ok = sample(text, 'strongroom_request_duration_seconds_count{operation="GetRandomPassword",'
                      'outcome="success",service="secretsmanager"}')
    assert ok >= 8, ok
    status, body = get("/healthz")
    assert status == 200, body
    status, body = get("/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready", body
    print(f"ops: metrics count {n:.0f} throttled calls; /healthz and /readyz answer 200")
    return 0


if __name__ == "__main__":
    sys.exit(main())
