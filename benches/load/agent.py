#!/usr/bin/env python3
"""The caching agent against direct GetSecretValue, with wrk (a few seconds each).

    python3 benches/load/agent.py --bin target/release/strongroom [--duration 5]

Starts `strongroom serve` (SQLite, a temporary data directory) and `strongroom agent` in front
of it, creates one 1 KB secret, then runs wrk against:
  direct  GetSecretValue signed as root (pre-signed with botocore, replayed), on the server
  agent   GET /secretsmanager/get?secretId=... on the agent: every request a cache hit
each with 1 connection (the p50 of an unloaded call) and with 16 connections (throughput).
Prints one markdown table on stdout.
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import boto3
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AKID = "AKIABENCHAGENT000001"
SECRET = "bench/agent/secret/0000000000000000000000"
REGION = "us-east-1"
TOKEN = "bench-agent-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def lua_str(b):
    return '"' + "".join(
        "\\" + chr(c) if c in (0x5C, 0x22) else chr(c) if 0x20 <= c < 0x7F else f"\\{c:03d}"
        for c in b) + '"'


def signed_get(port, secret_id):
    host = f"127.0.0.1:{port}"
    data = json.dumps({"SecretId": secret_id}).encode()
    req = AWSRequest(method="POST", url=f"http://{host}/", data=data, headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "secretsmanager.GetSecretValue", "Host": host})
    botocore.auth.SigV4Auth(Credentials(AKID, SECRET), "secretsmanager", REGION).add_auth(req)
    lines = ["POST / HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in req.headers.items() if k.lower() != "host"]
    lines.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def wrk(url, lua, conns, duration):
    out = subprocess.run(
        ["wrk", f"-t{min(conns, 2)}", f"-c{conns}", f"-d{duration}s", "--latency", "-s", lua, url],
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{non2xx.group(1)} failed responses:\n{out}")
    return rps, float(p50.group(1)) * scale


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/strongroom")
    ap.add_argument("--duration", type=int, default=5)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sr-agent-bench-")
    procs = []
    try:
        port = free_port()
        env = dict(os.environ, STRONGROOM_ROOT_ACCESS_KEY_ID=AKID,
                   STRONGROOM_ROOT_SECRET_ACCESS_KEY=SECRET, STRONGROOM_LOG="warn")
        log = open(os.path.join(tmp, "server.log"), "wb")
        procs.append(subprocess.Popen(
            [args.bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
             os.path.join(tmp, "data"), "--policies", os.path.join(tmp, "policies")],
            stdout=log, stderr=log, env=env))
        wait_port(port)
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint,
                     aws_access_key_id=AKID, aws_secret_access_key=SECRET).create_secret(
            Name="bench/agent", SecretString="x" * 1024)

        agent_port = free_port()
        cfg = os.path.join(tmp, "agent.toml")
        with open(cfg, "w") as f:
            f.write("ttl_seconds = 3600\nlog_level = \"warn\"\nmax_conn = 1000\n")
        agent_env = {"PATH": os.environ.get("PATH", ""), "AWS_ACCESS_KEY_ID": AKID,
                     "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": REGION,
                     "AWS_ENDPOINT_URL": endpoint, "AWS_CONFIG_FILE": "/dev/null",
                     "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_TOKEN": TOKEN}
        procs.append(subprocess.Popen(
            [args.bin, "agent", "--config", cfg, "--listen", f"127.0.0.1:{agent_port}"],
            stdout=subprocess.DEVNULL, stderr=log, env=agent_env))
        wait_port(agent_port)

        direct = os.path.join(tmp, "direct.lua")
        with open(direct, "w") as f:
            f.write(f"local r = {lua_str(signed_get(port, 'bench/agent'))}\n"
                    "function request() return r end\n")
        agent = os.path.join(tmp, "agent.lua")
        with open(agent, "w") as f:
            f.write('wrk.headers["X-Aws-Parameters-Secrets-Token"] = "' + TOKEN + '"\n'
                    'wrk.path = "/secretsmanager/get?secretId=bench%2Fagent"\n')
        rows = []
        for name, url, lua in [("direct GetSecretValue", endpoint, direct),
                               ("agent, cache hit", f"http://127.0.0.1:{agent_port}", agent)]:
            wrk(url, lua, 4, 1)  # warm-up (the agent's first request fills its cache)
            one = wrk(url, lua, 1, args.duration)
            many = wrk(url, lua, 16, args.duration)
            rows.append((name, one[1], one[0], many[1], many[0]))
        print("| path | p50, 1 conn (ms) | req/s, 1 conn | p50, 16 conns (ms) | req/s, 16 conns |")
        print("|---|---:|---:|---:|---:|")
        for name, p1, r1, p16, r16 in rows:
            print(f"| {name} | {p1:.3f} | {r1:,.0f} | {p16:.3f} | {r16:,.0f} |")
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
