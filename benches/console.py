#!/usr/bin/env python3
"""Console page times on a store of many secrets.

Starts a release `strongroom serve --console` (STRONGROOM_BIN, default
${CARGO_TARGET_DIR:-target}/release/strongroom) on a fresh data directory, creates SECRETS
secrets (default 10,000) through the API with boto3, signs in to the console as root, and
times each page RUNS times (default 20) over loopback HTTP: the median and the slowest, in
milliseconds. Each request is a fresh connection, so a time includes the TCP setup (tens of
microseconds on loopback); it is the page's server time for practical purposes.

    cargo build --release && python3 benches/console.py [SECRETS] [RUNS]
"""

import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

AKID = "AKIACONSOLEBENCH0001"
SECRET = "console/bench/secret/key/0000000000000"
REGION = "us-east-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def http(port, method, path, cookies, body=None):
    """One request over a fresh connection: (status, headers, body, milliseconds)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    if cookies:
        head += "Cookie: " + "; ".join(f"{k}={v}" for k, v in cookies.items()) + "\r\n"
    data = b""
    if body is not None:
        data = urllib.parse.urlencode(body).encode()
        head += "Content-Type: application/x-www-form-urlencoded\r\n"
        head += f"Content-Length: {len(data)}\r\n"
    req = head.encode() + b"\r\n" + data
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(req)
        chunks = []
        while True:
            c = s.recv(65536)
            if not c:
                break
            chunks.append(c)
    ms = (time.perf_counter() - t0) * 1000
    raw = b"".join(chunks)
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = [tuple(x.split(": ", 1)) for x in lines[1:]]
    for n, v in headers:
        if n.lower() == "set-cookie":
            k, _, val = v.split(";")[0].partition("=")
            if val and "Max-Age=0" not in v:
                cookies[k] = val
            else:
                cookies.pop(k, None)
    return status, headers, rest.decode(errors="replace"), ms


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    binary = os.environ.get("STRONGROOM_BIN", os.path.join(target, "release", "strongroom"))
    data = tempfile.mkdtemp(prefix="console-bench-")
    port = free_port()
    env = dict(os.environ, STRONGROOM_ROOT_ACCESS_KEY_ID=AKID,
               STRONGROOM_ROOT_SECRET_ACCESS_KEY=SECRET, STRONGROOM_LOG="warn")
    log = open(os.path.join(data, "server.log"), "ab")
    proc = subprocess.Popen([binary, "serve", "--console", "--listen", f"127.0.0.1:{port}",
                             "--data-dir", data], stdout=log, stderr=log, env=env)
    try:
        wait_port(port, proc)
        sm = boto3.client("secretsmanager", endpoint_url=f"http://127.0.0.1:{port}",
                          region_name=REGION, aws_access_key_id=AKID,
                          aws_secret_access_key=SECRET,
                          config=Config(retries={"max_attempts": 0}, max_pool_connections=16))
        t0 = time.time()
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda i: sm.create_secret(Name=f"app/{i:05d}/db",
                                                   SecretString=f"value-{i}"), range(n)))
        print(f"seeded {n} secrets in {time.time() - t0:.1f} s", file=sys.stderr)

        cookies = {}
        _, _, body, _ = http(port, "GET", "/console/", cookies)
        token = re.search(r'name="signin_token" value="([^"]+)"', body).group(1)
        status, _, _, _ = http(port, "POST", "/console/signin", cookies,
                               {"signin_token": token, "access_key_id": AKID,
                                "secret_access_key": SECRET})
        assert status == 303, status
        _, _, body, _ = http(port, "GET", "/console/secrets", cookies)
        nxt = re.search(r'href="(/console/secrets\?[^"]*token=[^"]+)"', body)
        arn = sm.describe_secret(SecretId=f"app/{n // 2:05d}/db")["ARN"]
        _, _, body, _ = http(port, "GET", "/console/audit", cookies)
        ev = re.search(r'href="(/console/audit/event\?[^"]+)"', body)
        pages = {
            "secrets (first page)": "/console/secrets",
            "secrets (filtered by name)": "/console/secrets?key=name&q=app%2F05000",
            "secret details": "/console/secret?id=" + urllib.parse.quote(arn, safe=""),
            "audit explorer": "/console/audit",
            "principals": "/console/principals",
            "accounts and SCPs": "/console/organization",
            "identity providers": "/console/providers",
            "reload status": "/console/reload",
            "simulator (form)": "/console/simulate",
        }
        if nxt:
            pages["secrets (next page)"] = nxt.group(1).replace("&amp;", "&")
        if ev:
            pages["audit event"] = ev.group(1).replace("&amp;", "&")
        print(f"{'page':32} {'median ms':>10} {'max ms':>8}  (status, {runs} runs, {n} secrets)")
        for name, path in pages.items():
            times = []
            for _ in range(runs):
                status, _, _, ms = http(port, "GET", path, cookies)
                times.append(ms)
            print(f"{name:32} {statistics.median(times):10.1f} {max(times):8.1f}  ({status})")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
