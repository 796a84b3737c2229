#!/usr/bin/env python3
"""The load benchmark's driver (run it through scripts/bench.sh, which builds and installs).

Runs, with wrk at the same connection count and duration for every HTTP row:
  hello        hello-world endpoint on the same actix-web configuration (machine ceiling)
  get          SigV4-signed GetSecretValue on the embedded store (SQLite), random secrets
  batch        BatchGetSecretValue with 20 SecretIds per call
  put          PutSecretValue (durable: new version, label moves and audit), each request
               with its own ClientRequestToken (the API requires one), sent in order, so
               every request writes a new version (--put-distinct of them)
  raw-commit   raw SQLite per-commit insert rate (Python sqlite3, WAL + synchronous=FULL,
               1 KB row, one insert per commit, one writer)
  moto         moto_server serving GetSecretValue (the peer people run today)
  pg get/put   the same get and put runs with the store on PostgreSQL
  pg raw       pgbench, one INSERT per transaction, as many clients as wrk has connections
               (when pgbench is available)
  pg two       GetSecretValue on PostgreSQL with one server and with two servers on the same
               database, each server pinned to a CPU of its own (taskset: server A the first
               CPU, server B the second; wrk and PostgreSQL not pinned), interleaved
               --pg-two-pairs times; the two-server run drives each server with its own wrk
               (half the connections each) and sums requests/s (see pg_two_servers)
  metrics      GetSecretValue with the Prometheus listener on (--metrics-listen, scraped every
               second during the run) and off, interleaved --metrics-pairs times, same data
  agent        `strongroom agent` in front of the server (bench-reader's key through the SDK's
               environment credentials): GET /secretsmanager/get?secretId=... for the get
               run's secrets, every request a cache hit, at 1 connection and at --connections;
               direct GetSecretValue at 1 connection beside it (the unloaded p50 of each)
--only-pg runs the PostgreSQL rows alone (with --pg-two-pairs), for a quicker run of them.
RSS: the server's VmRSS (from /proc) sampled during the get run, after seeding SECRETS
secrets with VERSIONS versions of 1 KB each.

Principals: the server gets a generated policies directory (--policies) declaring one user,
bench-reader, with an inline identity policy of 10 statements (allows, denies, conditions on
tags, source IP and KMS's via-service), and every secret gets a 2-statement resource policy
(PutResourcePolicy at seeding). Root seeds; every measured strongroom request is signed with
bench-reader's access key (minted with `strongroom access-key create`), so each one runs
the full evaluation: identity statements, resource policy, tags as condition keys.

Audit: "get" runs with durable audit (every request's record committed before its response);
"get, audit off" serves the same data with the benchmark-only build (--bin-audit-off: cargo
feature `bench-audit-off`) and its environment variable STRONGROOM_BENCHMARK_ONLY_DISABLE_AUDIT=1
(it records nothing) to measure what durable audit costs; the default build (--bin) has no
off switch. The two alternate, --pairs times (on, off, on, off, ...), each
on a fresh server over the same data, and the ratio reported is the median of the pairs'
ratios; the table's get rows are the median runs. (On a shared 2-core VM one run can move by
a quarter from one minute to the next; the pairs are printed too.)

Requests are signed ahead of time with botocore's SigV4Auth (a signature stays valid for 15
minutes), put into a generated wrk Lua script that picks one at random for every request
(PutSecretValue's, each with its own ClientRequestToken, are sent in order instead).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import sqlite3
import subprocess
import uuid
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import botocore.auth
import botocore.session
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

AKID = "AKIABENCHROOT0000001"
SECRET = "bench/secret/key/for/benchmarks/0000000"
REGION = "us-east-1"
ACCOUNT = "000000000000"
USER = "bench-reader"
USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/{USER}"
NO_AUDIT_ENV = "STRONGROOM_BENCHMARK_ONLY_DISABLE_AUDIT"
HERE = os.path.dirname(os.path.abspath(__file__))
# The measured requests' credentials (bench-reader's key once minted; root until then).
CALLER = {"akid": AKID, "secret": SECRET}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listening on {port} after {timeout}s")


def stop(proc):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def name_of(i):
    return f"bench/app{i % 100:02d}/secret-{i:05d}"


def value_of(i, v):
    head = f'{{"id":{i},"version":{v},"password":"'
    return head + ("x" * (1024 - len(head) - 2)) + '"}'


# ---------------------------------------------------------------------------- principals

SM = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:"

# bench-reader's inline identity policy: 10 statements, as a real application's might read.
IDENTITY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "ReadAppSecrets", "Effect": "Allow",
         "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
         "Resource": f"{SM}bench/*"},
        {"Sid": "BatchRead", "Effect": "Allow", "Action": "secretsmanager:BatchGetSecretValue",
         "Resource": "*"},
        {"Sid": "List", "Effect": "Allow", "Action": "secretsmanager:ListSecrets", "Resource": "*"},
        {"Sid": "RotateOwnTeam", "Effect": "Allow", "Action": "secretsmanager:PutSecretValue",
         "Resource": f"{SM}bench/*",
         "Condition": {"StringLike": {"aws:ResourceTag/team": "app*"}}},
        {"Sid": "SharedProd", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": f"{SM}shared/*",
         "Condition": {"StringEquals": {"aws:ResourceTag/env": "prod"}}},
        {"Sid": "DescribeByTag", "Effect": "Allow",
         "Action": ["secretsmanager:DescribeSecret", "secretsmanager:ListSecretVersionIds"],
         "Resource": "*", "Condition": {"StringLike": {"aws:ResourceTag/team": "app*"}}},
        {"Sid": "DecryptViaSecretsManager", "Effect": "Allow", "Action": "kms:Decrypt",
         "Resource": "*",
         "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}}},
        {"Sid": "NoDestruction", "Effect": "Deny",
         "Action": ["secretsmanager:DeleteSecret", "secretsmanager:PutResourcePolicy",
                    "secretsmanager:DeleteResourcePolicy"],
         "Resource": "*"},
        {"Sid": "WritesFromInside", "Effect": "Deny",
         "Action": ["secretsmanager:PutSecretValue", "secretsmanager:UpdateSecret"],
         "Resource": "*",
         "Condition": {"NotIpAddress": {"aws:SourceIp": ["127.0.0.0/8", "10.0.0.0/8"]}}},
        {"Sid": "NoRestricted", "Effect": "Deny", "Action": "secretsmanager:*",
         "Resource": f"{SM}bench/restricted/*"},
    ],
}


def resource_policy():
    """Each secret's resource policy: 2 statements."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AppReads", "Effect": "Allow", "Principal": {"AWS": USER_ARN},
             "Action": ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
             "Resource": "*"},
            {"Sid": "OnlyThisAccount", "Effect": "Deny", "Principal": "*",
             "Action": "secretsmanager:*", "Resource": "*",
             "Condition": {"StringNotEquals": {"aws:PrincipalAccount": ACCOUNT}}},
        ],
    })


def write_policies(root):
    """The server's principals-as-code directory: one account, one user."""
    acct = os.path.join(root, "accounts", ACCOUNT)
    os.makedirs(os.path.join(acct, "users"), exist_ok=True)
    with open(os.path.join(acct, "account.json"), "w") as f:
        json.dump({"AccountId": ACCOUNT, "Alias": "bench"}, f)
    with open(os.path.join(acct, "users", f"{USER}.json"), "w") as f:
        json.dump({"UserName": USER, "Tags": {"team": "app01"},
                   "InlinePolicies": {"bench-app": IDENTITY_POLICY}}, f, indent=1)
    return root


def mint_user_key(args, data_dir, database_url=None):
    """bench-reader's access key, from the CLI (the same data dir / database as the server)."""
    cmd = [args.bin, "access-key", "create", "--data-dir", data_dir, "--policies", args.policies,
           "--account", ACCOUNT, "--user", USER]
    if database_url:
        cmd += ["--database-url", database_url]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    k = json.loads(out)
    return {"akid": k["AccessKeyId"], "secret": k["SecretAccessKey"]}


# ----------------------------------------------------------------------------- signing


def lua_str(b):
    out = []
    for ch in b:
        if ch in (0x5C, 0x22):
            out.append("\\" + chr(ch))
        elif 0x20 <= ch < 0x7F:
            out.append(chr(ch))
        else:
            out.append(f"\\{ch:03d}")
    return '"' + "".join(out) + '"'


def signed_raw(port, target, body, service="secretsmanager", akid=None, secret=None):
    """A complete HTTP/1.1 request (bytes), signed now (as CALLER unless told)."""
    akid = akid or CALLER["akid"]
    secret = secret or CALLER["secret"]
    host = f"127.0.0.1:{port}"
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target, "Host": host}
    req = AWSRequest(method="POST", url=f"http://{host}/", data=data, headers=headers)
    botocore.auth.SigV4Auth(Credentials(akid, secret), service, REGION).add_auth(req)
    lines = ["POST / HTTP/1.1", f"Host: {host}"]
    for k, v in req.headers.items():
        if k.lower() == "host":
            continue
        lines.append(f"{k}: {v.decode() if isinstance(v, bytes) else v}")
    lines.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def write_lua(path, requests, ordered=False):
    """A wrk script replaying `requests`: one picked at random for every request, or (with
    `ordered`) each thread walking its own share in order, wrapping around at the end."""
    with open(path, "w") as f:
        f.write("-- generated by benches/load/bench.py: pre-signed requests\n")
        f.write("local reqs = {\n")
        for r in requests:
            f.write("  " + lua_str(r) + ",\n")
        f.write("}\n")
        f.write(
            "local n = #reqs\n"
            "local threads = 0\n"
            "function setup(thread) threads = threads + 1; thread:set('tid', threads) end\n"
            "function init(args) math.randomseed(7919 * (tid or 1)) end\n"
        )
        if ordered:
            f.write(
                "local i = nil\n"
                "function request()\n"
                "  if i == nil then i = ((tid or 1) - 1) * math.floor(n / 16) end\n"
                "  i = i % n + 1\n"
                "  return reqs[i]\n"
                "end\n"
            )
        else:
            f.write("function request() return reqs[math.random(n)] end\n")


# --------------------------------------------------------------------------------- wrk


def parse_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    if not m:
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v


def cpu_seconds(pid):
    """utime + stime of a process (all threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def thread_group(comm):
    """The group a server thread's CPU is reported under (its name without a worker number)."""
    if comm.startswith("actix"):
        return "request threads"
    if comm == "store-checkpoin":  # thread names are cut to 15 bytes
        return "store-checkpointer"
    return comm.rstrip("0123456789-") or comm


def thread_cpu(pid):
    """CPU seconds (utime + stime) of each thread group of a process, for the threads alive now."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        g = thread_group(comm)
        out[g] = out.get(g, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def settle(pid, limit=60.0, window=0.5, busy=0.02):
    """Wait until the process `pid` uses less than `busy` of a CPU over `window` seconds (at most
    `limit` seconds); the seconds waited. The server's background threads (the audit lookup
    indexer above all) may still be working off what a run left them when wrk stops."""
    t0 = time.time()
    while time.time() - t0 < limit:
        c0 = cpu_seconds(pid)
        time.sleep(window)
        if cpu_seconds(pid) - c0 < busy * window:
            break
    return time.time() - t0


def machine_ticks():
    """(idle + iowait, all) clock ticks of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return ticks[3] + ticks[4], sum(ticks)


SYSCALLS = ["fdatasync", "fsync"]


def perf_counter(pid, duration):
    """Start `perf stat` counting the sync syscalls of `pid` (None when perf is missing)."""
    perf = shutil.which("perf")
    if not perf or not pid:
        return None
    events = ",".join(f"syscalls:sys_enter_{c}" for c in SYSCALLS)
    return subprocess.Popen(
        [perf, "stat", "-x", ",", "-e", events, "-p", str(pid), "--", "sleep", str(duration)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def perf_result(proc):
    if proc is None:
        return None
    _, err = proc.communicate()
    total = 0
    found = False
    for line in err.splitlines():
        parts = line.split(",")
        if len(parts) > 2 and parts[2].startswith("syscalls:") and parts[0].strip().isdigit():
            total += int(parts[0])
            found = True
    return total if found else None


def wrk(port, lua, args, duration, rss_pid=None, connections=None, threads=None, drain=False):
    """One wrk run. With `drain`, the per-thread CPU (`threads`) also counts what the server's
    threads did after wrk stopped, until the server settled (`drain_s`): a background thread
    that fell behind during the run is charged to the run that gave it the work, not to the
    next one."""
    conns = connections or args.connections
    cmd = [
        "wrk", f"-t{min(threads or args.threads, conns)}", f"-c{conns}", f"-d{duration}s", "--latency",
        "--timeout", "10s", "-s", lua, f"http://127.0.0.1:{port}/",
    ]
    rss = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                with open(f"/proc/{rss_pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            rss.append(int(line.split()[1]) / 1024)
            except OSError:
                pass
            done.wait(0.25)

    t = None
    cpu0 = cpu_seconds(rss_pid) if rss_pid else None
    threads0 = thread_cpu(rss_pid) if rss_pid else {}
    perf = perf_counter(rss_pid, duration) if rss_pid else None
    if rss_pid:
        t = threading.Thread(target=sample, daemon=True)
        t.start()
    idle0, all0 = machine_ticks()
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    wall = time.time() - t0
    idle1, all1 = machine_ticks()
    idle = (idle1 - idle0) / (all1 - all0) if all1 > all0 else None
    done.set()
    if t:
        t.join()
    cpu = (cpu_seconds(rss_pid) - cpu0) / wall if rss_pid else None
    drain_s = settle(rss_pid) if rss_pid and drain else None
    threads1 = thread_cpu(rss_pid) if rss_pid else {}
    syncs = perf_result(perf)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: (.*)", out)
    # CPU µs per request served, by thread group (threads that ended during the run are not
    # counted; the server's threads live as long as it does).
    per_thread = {
        g: 1e6 * (threads1[g] - threads0.get(g, 0.0)) / total
        for g in threads1
        if total and threads1[g] - threads0.get(g, 0.0) > 0
    }
    return {
        "rps": rps,
        "p50": parse_ms(lat.get("50", "")),
        "p99": parse_ms(lat.get("99", "")),
        "requests": total,
        "non2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errs.group(1).strip() if errs else "",
        "rss_max": max(rss) if rss else None,
        "cpu": cpu,
        "syncs_per_s": syncs / duration if syncs is not None else None,
        "idle": idle,
        "threads": per_thread,
        "drain_s": drain_s,
        "raw": out,
    }


# ------------------------------------------------------------------------------ seeding


def client(port, pool=16):
    s = botocore.session.get_session()
    return s.create_client(
        "secretsmanager",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name=REGION,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=pool),
    )


def seed(port, count, versions, threads=12, policies=True):
    """Create `count` secrets with `versions` versions each (1 KB values) and (with
    `policies`) a 2-statement resource policy each, in parallel, as root."""
    c = client(port, pool=threads)
    done = [0]
    lock = threading.Lock()
    rp = resource_policy()

    def one(i):
        c.create_secret(Name=name_of(i), SecretString=value_of(i, 1), Description=f"bench secret {i}",
                        Tags=[{"Key": "team", "Value": f"app{i % 100:02d}"}])
        if policies:
            c.put_resource_policy(SecretId=name_of(i), ResourcePolicy=rp)
        for v in range(2, versions + 1):
            c.put_secret_value(SecretId=name_of(i), SecretString=value_of(i, v))
        with lock:
            done[0] += 1
            if done[0] % 2000 == 0:
                log(f"  seeded {done[0]}/{count}")

    t0 = time.time()
    with ThreadPoolExecutor(threads) as ex:
        for f in [ex.submit(one, i) for i in range(count)]:
            f.result()
    return time.time() - t0


# ------------------------------------------------------------------------------- runs


def request_sets(port, args, count, rng_seed=7):
    import random

    rng = random.Random(rng_seed)
    picks = [rng.randrange(count) for _ in range(args.distinct)]
    get = [signed_raw(port, "secretsmanager.GetSecretValue", {"SecretId": name_of(i)}) for i in picks]
    batch = [
        signed_raw(port, "secretsmanager.BatchGetSecretValue",
                   {"SecretIdList": [name_of(rng.randrange(count)) for _ in range(20)]})
        for _ in range(args.distinct)
    ]
    # A token per request: a replayed token with the same value is an idempotent no-op, not a
    # write, so the put run sends each of its requests once, in order (write_lua's `ordered`).
    put = [
        signed_raw(port, "secretsmanager.PutSecretValue",
                   {"SecretId": name_of(i), "SecretString": value_of(i, 100 + k),
                    "ClientRequestToken": str(uuid.UUID(int=rng.getrandbits(128), version=4))})
        for k, i in enumerate(rng.randrange(count) for _ in range(args.put_distinct))
    ]
    return get, batch, put


def get_requests(port, args, count, rng_seed=7):
    """request_sets' GetSecretValue requests alone (the same secrets), without signing the
    batch and put sets."""
    import random

    rng = random.Random(rng_seed)
    picks = [rng.randrange(count) for _ in range(args.distinct)]
    return [signed_raw(port, "secretsmanager.GetSecretValue", {"SecretId": name_of(i)}) for i in picks]


def check_one(port, raw):
    """Send one pre-signed request; return (status, body) so a broken setup fails loudly."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        m = re.search(rb"content-length: (\d+)", head, re.I)
        n = int(m.group(1)) if m else 0
        while len(rest) < n:
            rest += s.recv(65536)
        return status, rest[:n]


def run_set(name, port, reqs, args, tmp, rss_pid=None, warmup=True, ordered=False, connections=None):
    lua = os.path.join(tmp, f"{name}.lua")
    write_lua(lua, reqs, ordered=ordered)
    # (An ordered set's check uses its last request, which the run reaches last, if at all.)
    status, body = check_one(port, reqs[-1] if ordered else reqs[0])
    if status != 200:
        raise SystemExit(f"{name}: a pre-signed request answers {status}: {body[:300]!r}")
    if warmup and args.warmup > 0:
        if not ordered:
            # Every request of a read set once, before the random warm-up: the day's first read
            # of a version records its access day, a write that empties the read cache, and
            # wrk's random picks leave some requests unsent for the warm-up. Steady state is
            # what is measured; what those writes cost is said in docs/performance.md.
            for raw in reqs[1:]:
                check_one(port, raw)
        wrk(port, lua, args, args.warmup, connections=connections)
    if rss_pid:
        # What the warm-up (or an earlier run) left the background threads is not this run's.
        settle(rss_pid)
    r = wrk(port, lua, args, args.duration, rss_pid=rss_pid, connections=connections, drain=True)
    extra = ""
    if r["rss_max"]:
        extra += f", RSS max {r['rss_max']:.0f} MB"
    if r["cpu"] is not None:
        extra += f", server CPU {100 * r['cpu']:.0f}%"
    if r["syncs_per_s"] is not None:
        extra += f", {r['syncs_per_s']:.0f} fsync+fdatasync/s"
    if r["drain_s"] is not None and r["drain_s"] > 1.0:
        extra += f", settled {r['drain_s']:.1f} s after the run"
    log(f"{name}: {r['rps']:.0f} req/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, "
        f"non-2xx {r['non2xx']} {r['socket_errors']}{extra}")
    if r["non2xx"] > 0:
        log(f"{name}: WARNING {r['non2xx']} of {r['requests']} responses were not 2xx")
    if ordered and r["requests"] > len(reqs):
        log(f"{name}: WARNING {r['requests']} requests replayed {len(reqs)} distinct ones: "
            f"replays are idempotent no-ops; raise --put-distinct")
    return r


def profile(pid, port, reqs, args, tmp):
    """An extra GetSecretValue run under `perf record`; returns the top symbols (text)."""
    perf = shutil.which("perf")
    if not perf:
        return None
    lua = os.path.join(tmp, "profile.lua")
    write_lua(lua, reqs)
    data = os.path.join(tmp, "perf.data")
    secs = max(3, min(args.duration, 8))
    rec = subprocess.Popen([perf, "record", "-F", "499", "-g", "-o", data, "-p", str(pid), "--", "sleep", str(secs)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wrk(port, lua, args, secs)
    rec.wait()
    rep = subprocess.run([perf, "report", "-i", data, "--no-children", "--sort", "dso,symbol", "--stdio",
                          "--percent-limit", "1.5", "-g", "none"],
                         capture_output=True, text=True)
    lines = [" ".join(ln.split()[:4]) for ln in rep.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
    top = "\n".join(lines[:25])
    log("profile of the server during GetSecretValue (perf, self time):\n" + top)
    with open(os.path.join(tmp, "profile.txt"), "w") as f:
        f.write(rep.stdout)
    return top


def median_run(runs):
    """The run with the median requests/s (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    return ordered[(len(ordered) - 1) // 2]


def start_strongroom(args, data_dir, port, database_url=None, audit=True, metrics_port=None, cpus=None,
                     extra=()):
    """Start `strongroom serve` (pinned with taskset to the CPU list `cpus`, when given), with
    the `extra` arguments."""
    env = dict(os.environ)
    env.update({
        "STRONGROOM_ROOT_ACCESS_KEY_ID": AKID,
        "STRONGROOM_ROOT_SECRET_ACCESS_KEY": SECRET,
        "STRONGROOM_LOG": "warn",
    })
    env.pop(NO_AUDIT_ENV, None)
    binary = args.bin
    if not audit:
        # The bench-audit-off build, for these runs only: with the variable it records nothing.
        binary = args.bin_audit_off
        env[NO_AUDIT_ENV] = "1"
    cmd = [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir,
           "--policies", args.policies]
    if database_url:
        cmd += ["--database-url", database_url]
    if metrics_port:
        cmd += ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
    cmd += list(extra)
    if cpus is not None:
        # taskset execs the server: the process id stays the server's. actix-web starts one
        # request thread per CPU the process may run on, so a server pinned to one CPU runs
        # one request thread, as on a one-CPU machine.
        cmd = ["taskset", "-c", str(cpus)] + cmd
    logf = open(os.path.join(data_dir, "server.log"), "ab")
    proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, env=env)
    wait_port(port, proc)
    return proc


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_us(r):
    """The server's CPU µs per request served in run `r`, or None."""
    return None if r.get("cpu") is None or not r["rps"] else 1e6 * r["cpu"] / r["rps"]


def metrics_get_count(port):
    """GetSecretValue's request count on the metrics listener (all outcomes), or None."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    total = None
    for line in text.splitlines():
        if line.startswith("strongroom_request_duration_seconds_count{") and 'operation="GetSecretValue"' in line:
            total = (total or 0) + float(line.rsplit(" ", 1)[1])
    return total


AGENT_TOKEN = "bench-agent-ssrf-token"


def agent_get(port, secret_id):
    from urllib.parse import quote

    return (f"GET /secretsmanager/get?secretId={quote(secret_id, safe='')} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nX-Aws-Parameters-Secrets-Token: {AGENT_TOKEN}\r\n\r\n").encode()


def agent_runs(args, data, tmp):
    """Direct GetSecretValue at 1 connection, then the caching agent in front of the same
    server at 1 connection and at --connections, every agent request a cache hit."""
    import random

    rows = {}
    port = free_port()
    sr = start_strongroom(args, data, port)
    agent = None
    try:
        get, _, _ = request_sets(port, args, args.secrets)
        rows["direct_1"] = run_set("get, 1 connection", port, get, args, tmp, rss_pid=sr.pid, connections=1)
        aport = free_port()
        env = dict(os.environ)
        for k in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
            env.pop(k, None)
        env.update({
            "AWS_ACCESS_KEY_ID": CALLER["akid"],
            "AWS_SECRET_ACCESS_KEY": CALLER["secret"],
            "AWS_TOKEN": AGENT_TOKEN,
            "STRONGROOM_LOG": "warn",
            "RUST_LOG": "warn",
        })
        logf = open(os.path.join(data, "agent.log"), "ab")
        agent = subprocess.Popen(
            [args.bin, "agent", "--listen", f"127.0.0.1:{aport}",
             "--endpoint-url", f"http://127.0.0.1:{port}", "--region", REGION],
            stdout=logf, stderr=logf, env=env)
        wait_port(aport, agent)
        rng = random.Random(7)
        names = sorted({name_of(rng.randrange(args.secrets)) for _ in range(args.distinct)})
        reqs = [agent_get(aport, n) for n in names]
        for r in reqs:  # fill the cache: every measured request is then a hit
            status, body = check_one(aport, r)
            if status != 200:
                raise SystemExit(f"agent: {status}: {body[:300]!r}")
        rows["agent_1"] = run_set("agent, 1 connection", aport, reqs, args, tmp, rss_pid=agent.pid, connections=1)
        rows["agent"] = run_set("agent", aport, reqs, args, tmp, rss_pid=agent.pid)
    finally:
        stop(agent)
        stop(sr)
    return rows


def raw_sqlite(tmp, seconds):
    path = os.path.join(tmp, "raw-commit.db")
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = FULL")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
    blob = os.urandom(1024)
    n, t0 = 0, time.time()
    while time.time() - t0 < seconds:
        con.execute("BEGIN")
        con.execute("INSERT INTO t (v) VALUES (?)", (blob,))
        con.execute("COMMIT")
        n += 1
    rate = n / (time.time() - t0)
    con.close()
    return rate


def raw_pg(args, seconds):
    pgbench = args.pgbench
    if not pgbench or not os.path.exists(pgbench):
        return None
    url = args.pg_url
    subprocess.run([args.psql, "--no-psqlrc", "-q", "-d", url, "-c",
                    "DROP TABLE IF EXISTS raw_commit; CREATE TABLE raw_commit (id bigserial PRIMARY KEY, v bytea NOT NULL)"],
                   check=True, capture_output=True)
    script = os.path.join(args.tmp, "raw_commit.sql")
    with open(script, "w") as f:
        f.write("INSERT INTO raw_commit (v) VALUES (decode(repeat('ab', 1024), 'hex'));\n")
    clients = str(args.connections)
    out = subprocess.run([pgbench, "-n", "-c", clients, "-j", str(args.threads),
                          "-T", str(int(seconds)), "-f", script, url],
                         check=True, capture_output=True, text=True).stdout
    m = re.search(r"tps = ([\d.]+)", out)
    return float(m.group(1)) if m else None


def moto_run(args, tmp):
    moto = args.moto_server
    port = free_port()
    logf = open(os.path.join(tmp, "moto.log"), "ab")
    proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=logf, stderr=logf)
    try:
        wait_port(port, proc)
        t = seed(port, args.moto_secrets, 1, threads=8, policies=False)
        log(f"moto: seeded {args.moto_secrets} secrets in {t:.0f}s")
        import random

        rng = random.Random(3)
        reqs = [signed_raw(port, "secretsmanager.GetSecretValue", {"SecretId": name_of(rng.randrange(args.moto_secrets))},
                           akid=AKID, secret=SECRET)
                for _ in range(args.distinct)]
        return run_set("moto get", port, reqs, args, tmp, rss_pid=proc.pid)
    finally:
        stop(proc)


# ------------------------------------------------------------------------------- table


def fmt(v, spec="{:.0f}"):
    return "-" if v is None else spec.format(v)


def wrk_together(targets, args, duration):
    """wrk against several servers at once: `targets` is a list of (port, lua, server pid),
    each driven by a wrk of its own with args.connections / len(targets) connections and
    args.threads / len(targets) threads (at least 1), all started together. Answers the runs
    summed: requests/s, requests, non-2xx, server CPU and fsyncs added up; p50 and p99 the
    worse of the wrks'; RSS the largest; CPU µs per request by thread group over all
    requests; machine idle the mean of the wrks' (they measure the same interval)."""
    conns = max(1, args.connections // len(targets))
    threads = max(1, args.threads // len(targets))
    out = [None] * len(targets)
    errors = []

    def one(k, port, lua, pid):
        try:
            out[k] = wrk(port, lua, args, duration, rss_pid=pid, connections=conns, threads=threads)
        except Exception as e:  # noqa: BLE001 (re-raised below, in the caller's thread)
            errors.append(e)

    ts = [threading.Thread(target=one, args=(k, *t)) for k, t in enumerate(targets)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    total = sum(r["requests"] for r in out)
    groups = {g for r in out for g in r["threads"]}
    cpus = [r["cpu"] for r in out if r["cpu"] is not None]
    syncs = [r["syncs_per_s"] for r in out if r["syncs_per_s"] is not None]
    idles = [r["idle"] for r in out if r["idle"] is not None]
    return {
        "rps": sum(r["rps"] for r in out),
        "p50": max(r["p50"] for r in out),
        "p99": max(r["p99"] for r in out),
        "requests": total,
        "non2xx": sum(r["non2xx"] for r in out),
        "socket_errors": "; ".join(r["socket_errors"] for r in out if r["socket_errors"]),
        "rss_max": max((r["rss_max"] for r in out if r["rss_max"]), default=None),
        "cpu": sum(cpus) if cpus else None,
        "syncs_per_s": sum(syncs) if syncs else None,
        "idle": sum(idles) / len(idles) if idles else None,
        "threads": {g: sum(r["threads"].get(g, 0.0) * r["requests"] for r in out) / total
                    for g in groups} if total else {},
        "each": [{"rps": r["rps"], "p50": r["p50"], "p99": r["p99"], "cpu": r["cpu"]} for r in out],
    }


def pg_two_servers(args, data_a, tmp):
    """GetSecretValue on PostgreSQL with one server and with two servers on the same database,
    in --pg-two-pairs interleaved pairs (one, two, one, two, ...), each run on fresh servers.

    How the two cores are split: the one-server run pins its server to the first CPU of this
    process's affinity set (taskset), the two-server run pins server A to that CPU and
    server B to the second; wrk and PostgreSQL are not pinned in either run. So each server
    has one CPU of its own and the ratio says what a second server (a second CPU's worth of
    request handling) adds on a database both share, with wrk and PostgreSQL competing with
    the servers for the same two CPUs in both runs.

    Server B runs on a data directory of its own (its own server id, so its own audit chain
    and audit signing key) holding a copy of server A's master key (the KMS keys and access
    keys in the database are sealed under it), the same --policies directory and the same
    root credentials; bench-reader's access key is in the database, so both accept it. The
    two-server run drives each server with a wrk of its own (half the connections and half
    the wrk threads each, started together) and sums their requests/s."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or not shutil.which("taskset"):
        log("postgres, two servers: skipped (needs two CPUs and taskset)")
        return {}
    cpu_a, cpu_b = cpus[0], cpus[1]
    data_b = os.path.join(tmp, "pg-b")
    os.makedirs(data_b, exist_ok=True)
    shutil.copy2(os.path.join(data_a, "master.key"), os.path.join(data_b, "master.key"))
    os.chmod(os.path.join(data_b, "master.key"), 0o600)

    def one_run():
        port = free_port()
        sr = start_strongroom(args, data_a, port, args.pg_url, cpus=cpu_a)
        try:
            get = get_requests(port, args, args.pg_secrets)
            return run_set("pg get, one server on CPU %d" % cpu_a, port, get, args, tmp, rss_pid=sr.pid)
        finally:
            stop(sr)

    def two_run():
        pa, pb = free_port(), free_port()
        a = start_strongroom(args, data_a, pa, args.pg_url, cpus=cpu_a)
        b = None
        try:
            b = start_strongroom(args, data_b, pb, args.pg_url, cpus=cpu_b)
            targets = []
            for port, proc, tag in ((pa, a, "a"), (pb, b, "b")):
                get = get_requests(port, args, args.pg_secrets)
                status, body = check_one(port, get[0])
                if status != 200:
                    raise SystemExit(f"pg two servers: server {tag} answers {status}: {body[:300]!r}")
                lua = os.path.join(tmp, f"pg-two-{tag}.lua")
                write_lua(lua, get)
                targets.append((port, lua, proc.pid))
            if args.warmup > 0:
                wrk_together([(p, lua, None) for p, lua, _ in targets], args, args.warmup)
            r = wrk_together(targets, args, args.duration)
            log(f"pg get, two servers on CPUs {cpu_a} and {cpu_b}: {r['rps']:.0f} req/s ("
                + " + ".join(f"{x['rps']:.0f}" for x in r["each"])
                + f"), p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, non-2xx {r['non2xx']} {r['socket_errors']}, "
                f"servers' CPU {100 * (r['cpu'] or 0):.0f}%")
            if r["non2xx"] > 0:
                log(f"pg two servers: WARNING {r['non2xx']} of {r['requests']} responses were not 2xx")
            return r
        finally:
            stop(b)
            stop(a)

    ones, twos = [], []
    for _ in range(args.pg_two_pairs):
        ones.append(one_run())
        twos.append(two_run())
    pairs = [{"one": o["rps"], "two": t["rps"], "ratio": t["rps"] / o["rps"]} for o, t in zip(ones, twos)]
    return {
        "pg_one_pinned": median_run(ones),
        "pg_two": median_run(twos),
        "pg_two_pairs": pairs,
        "pg_two_ratio": statistics.median(x["ratio"] for x in pairs),
        "pg_two_cpus": [cpu_a, cpu_b],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--bin-audit-off", default="",
                    help="the bench-audit-off build (cargo feature), used for the audit-off runs only "
                         "(required unless --only-pg)")
    ap.add_argument("--hello", default="", help="the hello-world server (required unless --only-pg)")
    ap.add_argument("--moto-server", default="")
    ap.add_argument("--pg-url", default="")
    ap.add_argument("--psql", default="psql")
    ap.add_argument("--pgbench", default="")
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--secrets", type=int, default=10000)
    ap.add_argument("--versions", type=int, default=5)
    ap.add_argument("--pg-secrets", type=int, default=10000)
    ap.add_argument("--pg-versions", type=int, default=1)
    ap.add_argument("--moto-secrets", type=int, default=1000)
    ap.add_argument("--distinct", type=int, default=400, help="pre-signed requests per run")
    ap.add_argument("--put-distinct", type=int, default=80000,
                    help="pre-signed PutSecretValue requests (each sent once; more than a run sends)")
    ap.add_argument("--json", default="")
    ap.add_argument("--profile", type=int, default=1, help="perf profile of an extra get run (1/0)")
    ap.add_argument("--metrics-pairs", type=int, default=3,
                    help="GetSecretValue runs with the metrics listener off and on, interleaved")
    ap.add_argument("--agent", type=int, default=1, help="caching agent runs (1/0)")
    ap.add_argument("--pairs", type=int, default=5,
                    help="GetSecretValue runs with durable audit and with audit off, interleaved")
    ap.add_argument("--pg-change-check-ms", type=int, default=5,
                    help="also run PostgreSQL GetSecretValue with --pg-change-check-ms N (0: skip)")
    ap.add_argument("--pg-get-runs", type=int, default=3,
                    help="PostgreSQL GetSecretValue runs on one server; the table shows the median")
    ap.add_argument("--pg-two-pairs", type=int, default=3,
                    help="PostgreSQL GetSecretValue with one server and with two servers on the "
                         "same database, interleaved (0: not run)")
    ap.add_argument("--only-pg", action="store_true",
                    help="only the PostgreSQL rows (no hello world, SQLite, moto or agent runs)")
    args = ap.parse_args()
    if args.only_pg and not args.pg_url:
        ap.error("--only-pg needs --pg-url")
    if not args.only_pg and not (args.bin_audit_off and args.hello):
        ap.error("--bin-audit-off and --hello are required unless --only-pg")
    tmp = args.tmp
    args.policies = write_policies(os.path.join(tmp, "policies"))
    rows = {}
    load0 = os.getloadavg()

    if not args.only_pg:
        # 1. hello world
        port = free_port()
        hello = subprocess.Popen([args.hello, f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port, hello)
            reqs = [signed_raw(port, "secretsmanager.GetSecretValue", {"SecretId": name_of(i)}) for i in range(args.distinct)]
            rows["hello"] = run_set("hello", port, reqs, args, tmp, rss_pid=hello.pid)
        finally:
            stop(hello)

        # 2. strongroom on SQLite: seed as root, then every measured request as bench-reader
        data = os.path.join(tmp, "sqlite")
        os.makedirs(data)
        port = free_port()
        sr = start_strongroom(args, data, port)
        try:
            t = seed(port, args.secrets, args.versions)
            idle = rss_mb(sr.pid)
            log(f"sqlite: seeded {args.secrets} secrets x {args.versions} versions (+ a resource policy each) "
                f"in {t:.0f}s ({args.secrets * (args.versions + 1) / t:.0f} writes/s via boto3); RSS idle {idle:.0f} MB")
            rows["seed"] = {"seconds": t, "rss_idle": idle}
            CALLER.update(mint_user_key(args, data))
            log(f"measured requests are signed as {USER_ARN} ({CALLER['akid']})")
            get, batch, put = request_sets(port, args, args.secrets)
            gets = [run_set("get", port, get, args, tmp, rss_pid=sr.pid)]
        finally:
            stop(sr)
        # The same data, served with audit writing off (the bench-audit-off build), in pairs with
        # audited runs: on, off, on, off, ... A run on this kind of machine can move by a quarter
        # from one minute to the next, so the ratio is the median of the pairs' ratios.
        def get_run(audit):
            port = free_port()
            sr = start_strongroom(args, data, port, audit=audit)
            try:
                get, _, _ = request_sets(port, args, args.secrets)
                return run_set("get" if audit else "get, audit off", port, get, args, tmp, rss_pid=sr.pid)
            finally:
                stop(sr)

        offs = []
        for i in range(args.pairs):
            if i > 0:
                gets.append(get_run(True))
            offs.append(get_run(False))
        rows["pairs"] = [{"on": a["rps"], "off": b["rps"], "ratio": a["rps"] / b["rps"]} for a, b in zip(gets, offs)]
        rows["get"] = median_run(gets)
        rows["get_noaudit"] = median_run(offs)
        rows["audit_ratio"] = statistics.median(x["ratio"] for x in rows["pairs"])

        # Metrics off and on, in pairs over the same data (off, on, off, on, ...); during an "on"
        # run a scraper reads /metrics every second, as a Prometheus with a 1 s interval would.
        def metrics_run(on):
            port = free_port()
            mport = free_port() if on else None
            sr = start_strongroom(args, data, port, metrics_port=mport)
            stop_scrape = threading.Event()
            scraper = None
            try:
                if on:
                    def scrape():
                        while not stop_scrape.wait(1.0):
                            metrics_get_count(mport)
                    scraper = threading.Thread(target=scrape, daemon=True)
                    scraper.start()
                get, _, _ = request_sets(port, args, args.secrets)
                r = run_set("get, metrics on" if on else "get, metrics off", port, get, args, tmp, rss_pid=sr.pid)
                if on:
                    n = metrics_get_count(mport)
                    if not n or n < r["requests"]:
                        raise SystemExit(f"metrics: GetSecretValue count {n} below the {r['requests']} requests served")
                return r
            finally:
                stop_scrape.set()
                if scraper:
                    scraper.join()
                stop(sr)

        mpairs = []
        for _ in range(args.metrics_pairs):
            off = metrics_run(False)
            on = metrics_run(True)
            # CPU per request is the steadier measure on a shared machine: other processes slow
            # a run's throughput but add little to the server's own CPU time per request.
            mpairs.append({"on": on["rps"], "off": off["rps"], "ratio": on["rps"] / off["rps"],
                           "cpu_on": cpu_us(on), "cpu_off": cpu_us(off), "on_run": on, "off_run": off})
        if mpairs:
            rows["metrics_pairs"] = [{k: v for k, v in x.items() if not k.endswith("_run")} for x in mpairs]
            rows["metrics_on"] = median_run([x["on_run"] for x in mpairs])
            rows["metrics_off"] = median_run([x["off_run"] for x in mpairs])
            rows["metrics_ratio"] = statistics.median(x["ratio"] for x in mpairs)
        if args.agent:
            rows.update(agent_runs(args, data, tmp))
        port = free_port()
        sr = start_strongroom(args, data, port)
        try:
            get, batch, put = request_sets(port, args, args.secrets)
            rows["batch"] = run_set("batch", port, batch, args, tmp, rss_pid=sr.pid)
            if args.profile:
                rows["profile"] = profile(sr.pid, port, get, args, tmp)
            rows["put"] = run_set("put", port, put, args, tmp, rss_pid=sr.pid, warmup=False,
                                  ordered=True)
            rows["rss_end"] = rss_mb(sr.pid)
        finally:
            stop(sr)
        rows["raw_sqlite"] = raw_sqlite(tmp, args.duration)
        log(f"raw SQLite commits: {rows['raw_sqlite']:.0f}/s")

        # 3. moto
        if args.moto_server:
            rows["moto"] = moto_run(args, tmp)

    # 4. PostgreSQL
    if args.pg_url:
        data = os.path.join(tmp, "pg")
        os.makedirs(data)
        port = free_port()
        sr = start_strongroom(args, data, port, args.pg_url)
        try:
            t = seed(port, args.pg_secrets, args.pg_versions)
            log(f"postgres: seeded {args.pg_secrets} secrets x {args.pg_versions} versions in {t:.0f}s")
            CALLER.update(mint_user_key(args, data, args.pg_url))
            get, _, put = request_sets(port, args, args.pg_secrets)
            # Several runs, the median one kept: a single 10 s run on this kind of machine moves
            # by a tenth from one minute to the next, as much as the goal's margin.
            pg_gets = [run_set("pg get", port, get, args, tmp, rss_pid=sr.pid)
                       for _ in range(max(1, args.pg_get_runs))]
            rows["pg_get"] = median_run(pg_gets)
            rows["pg_get_runs"] = [round(r["rps"]) for r in pg_gets]
            rows["pg_put"] = run_set("pg put", port, put, args, tmp, rss_pid=sr.pid, warmup=False,
                                     ordered=True)
        finally:
            stop(sr)
        if args.pg_change_check_ms > 0:
            # The same data, a server checking for other servers' writes on a timer.
            port = free_port()
            sr = start_strongroom(args, data, port, args.pg_url,
                                  extra=["--pg-change-check-ms", str(args.pg_change_check_ms)])
            try:
                get, _, _ = request_sets(port, args, args.pg_secrets)
                rows["pg_get_timer"] = run_set(f"pg get, change check every {args.pg_change_check_ms} ms",
                                               port, get, args, tmp, rss_pid=sr.pid)
            finally:
                stop(sr)
        if args.pg_two_pairs > 0:
            rows.update(pg_two_servers(args, data, tmp))
        rows["raw_pg"] = raw_pg(args, args.duration)
        if rows["raw_pg"]:
            log(f"raw PostgreSQL commits (pgbench): {rows['raw_pg']:.0f}/s")

    # table
    h, g, b, p = rows.get("hello"), rows.get("get"), rows.get("batch"), rows.get("put")
    moto = rows.get("moto")
    lines = []
    load1 = os.getloadavg()
    data_desc = (f"{args.pg_secrets} secrets x {args.pg_versions} versions of 1 KB on PostgreSQL only"
                 if args.only_pg else f"{args.secrets} secrets x {args.versions} versions of 1 KB on SQLite")
    lines.append(f"Load benchmark: wrk -t{args.threads} -c{args.connections} -d{args.duration}s; "
                 f"{data_desc}; {os.cpu_count()} CPUs; "
                 f"load average at start {load0[0]:.1f} / {load0[1]:.1f} / {load0[2]:.1f}, "
                 f"at end {load1[0]:.1f} / {load1[1]:.1f} / {load1[2]:.1f}")
    lines.append("")
    lines.append("| run | requests/s | p50 ms | p99 ms | non-2xx | server CPU | CPU µs/request | fsyncs/s | machine idle |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")

    def row(label, r):
        if r is None:
            return
        cpu = "-" if r.get("cpu") is None else f"{100 * r['cpu']:.0f}%"
        per = "-" if r.get("cpu") is None or not r["rps"] else f"{1e6 * r['cpu'] / r['rps']:.0f}"
        sy = "-" if r.get("syncs_per_s") is None else f"{r['syncs_per_s']:.0f}"
        idle = "-" if r.get("idle") is None else f"{100 * r['idle']:.0f}%"
        lines.append(f"| {label} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['non2xx']} | {cpu} | {per} | {sy} | {idle} |")

    row("hello world (actix, same config)", h)
    row("GetSecretValue, SQLite (median of the audited runs)", g)
    row("GetSecretValue, SQLite, audit off (benchmark only; median)", rows.get("get_noaudit"))
    row("GetSecretValue, SQLite, metrics off (median of the pairs)", rows.get("metrics_off"))
    row("GetSecretValue, SQLite, metrics on, scraped every 1 s (median of the pairs)", rows.get("metrics_on"))
    row("GetSecretValue, SQLite, 1 connection", rows.get("direct_1"))
    row("agent cache hit, 1 connection", rows.get("agent_1"))
    row(f"agent cache hit, {args.connections} connections", rows.get("agent"))
    row("BatchGetSecretValue x20, SQLite", b)
    row("PutSecretValue, SQLite", p)
    row("GetSecretValue, moto_server", moto)
    pg_runs = rows.get("pg_get_runs") or []
    row("GetSecretValue, PostgreSQL" + (f" (median of {len(pg_runs)} runs)" if len(pg_runs) > 1 else ""),
        rows.get("pg_get"))
    row(f"GetSecretValue, PostgreSQL, --pg-change-check-ms {args.pg_change_check_ms}", rows.get("pg_get_timer"))
    cpus2 = rows.get("pg_two_cpus") or [0, 1]
    row(f"GetSecretValue, PostgreSQL, one server pinned to CPU {cpus2[0]} (median of the pairs)",
        rows.get("pg_one_pinned"))
    row(f"GetSecretValue, PostgreSQL, two servers, pinned to CPUs {cpus2[0]} and {cpus2[1]} (median of the pairs)",
        rows.get("pg_two"))
    row("PutSecretValue, PostgreSQL", rows.get("pg_put"))
    if rows.get("raw_sqlite"):
        lines.append(f"| raw SQLite insert+commit (WAL, synchronous=FULL, 1 writer) | {rows['raw_sqlite']:.0f} | | | | | | | |")
    if rows.get("raw_pg"):
        lines.append(f"| raw PostgreSQL insert+commit (pgbench, {args.connections} clients) | {rows['raw_pg']:.0f} | | | | | | | |")
    lines.append("")
    lines.append(f"Strongroom requests are signed as {USER_ARN}: 10 identity statements, a 2-statement "
                 "resource policy on every secret, the secret's tags as condition keys.")
    lines.append("server CPU: CPU time of the serving process / wall time (200% = both cores); CPU µs/request: "
                 "that CPU time per request served. fsyncs/s: "
                 "fsync + fdatasync calls of that process (perf tracepoints); PostgreSQL's own are not counted. "
                 "machine idle: the whole machine's idle + iowait time during the run (what neither the server "
                 "nor wrk used: with durable audit, mostly one CPU waiting while the other runs a "
                 "group commit's serial part).")
    split = []
    for label, key in [("GetSecretValue (durable audit)", "get"), ("GetSecretValue (audit off)", "get_noaudit"),
                       ("BatchGetSecretValue x20", "batch"), ("PutSecretValue", "put"),
                       ("GetSecretValue, PostgreSQL", "pg_get"),
                       (f"GetSecretValue, PostgreSQL, --pg-change-check-ms {args.pg_change_check_ms}",
                        "pg_get_timer"),
                       ("GetSecretValue, PostgreSQL, one pinned server", "pg_one_pinned"),
                       ("GetSecretValue, PostgreSQL, two pinned servers", "pg_two"),
                       ("PutSecretValue, PostgreSQL", "pg_put")]:
        r = rows.get(key)
        if r and r.get("threads"):
            parts = sorted(r["threads"].items(), key=lambda kv: -kv[1])
            drained = f" (settled {r['drain_s']:.1f} s after the run)" if (r.get("drain_s") or 0) > 1.0 else ""
            split.append(f"{label}{drained}: " + ", ".join(f"{g} {v:.0f}" for g, v in parts if v >= 0.5))
    if split:
        lines.append("CPU µs per request by server thread (utime + stime of each thread group from the run's start "
                     "until the server settled after it, / requests served): "
                     + "; ".join(split) + ".")
    pairs = rows.get("pairs") or []
    if len(pairs) > 1:
        lines.append("GetSecretValue with durable audit / audit off, in the order run: " + "; ".join(
            f"{x['on']:.0f} / {x['off']:.0f} = {x['ratio']:.2f}" for x in pairs)
            + f" (median ratio {rows['audit_ratio']:.2f}).")
    mp = rows.get("metrics_pairs") or []
    if mp:
        lines.append("GetSecretValue with metrics on / off, in the order run: " + "; ".join(
            f"{x['on']:.0f} / {x['off']:.0f} = {x['ratio']:.2f}" for x in mp)
            + f" (median ratio {rows['metrics_ratio']:.2f}); server CPU µs per request on / off: " + "; ".join(
            f"{fmt(x['cpu_on'])} / {fmt(x['cpu_off'])}" for x in mp) + ".")
    pg_runs = rows.get("pg_get_runs") or []
    if len(pg_runs) > 1:
        lines.append("GetSecretValue, PostgreSQL, one server, in the order run: "
                     + " / ".join(str(x) for x in pg_runs) + " req/s.")
    tp = rows.get("pg_two_pairs") or []
    if tp:
        c0, c1 = rows["pg_two_cpus"]
        lines.append(f"PostgreSQL, two servers: both on the same database (server B: a data directory of its own "
                     f"with a copy of A's master key, the same policies and credentials); the one-server run pins "
                     f"its server to CPU {c0}, the two-server run pins A to CPU {c0} and B to CPU {c1} (taskset); "
                     f"wrk and PostgreSQL are not pinned. Two servers: one wrk per server, "
                     f"{max(1, args.connections // 2)} connections and {max(1, args.threads // 2)} thread(s) each, "
                     f"requests/s summed, p50/p99 the worse server's, server CPU both servers'. "
                     f"Two / one, in the order run: " + "; ".join(
                         f"{x['two']:.0f} / {x['one']:.0f} = {x['ratio']:.2f}" for x in tp)
                     + f" (median ratio {rows['pg_two_ratio']:.2f}).")
    if rows.get("agent"):
        lines.append("agent rows: `strongroom agent` (AWS SDK for Rust client, signed as the same user) in front of "
                     "the SQLite server, every request a cache hit; server CPU and RSS columns are the agent "
                     "process's. The agent and wrk share the two cores.")
    lines.append("")
    lines.append("| target | measured | goal | result |")
    lines.append("|---|---:|---:|---|")

    def target(label, value, goal, ok, vfmt="{:.2f}"):
        verdict = "-" if ok is None else "met" if ok else "MISSED"
        lines.append(f"| {label} | {fmt(value, vfmt)} | {goal} | {verdict} |")

    if not args.only_pg:
        rg = g["rps"] / h["rps"]
        target("GetSecretValue / hello world", rg, ">= 0.20 (stretch 0.30)", rg >= 0.20, "{:.3f}")
        if moto:
            rm = g["rps"] / moto["rps"]
            target("GetSecretValue / moto_server", rm, ">= 50", rm >= 50, "{:.1f}")
        gn = rows.get("get_noaudit")
        if gn:
            ra = rows["audit_ratio"]
            target("GetSecretValue durable audit / audit off (median of the pairs)", ra, ">= 0.7", ra >= 0.7, "{:.2f}")
        target("GetSecretValue p99 at 32 connections (ms)", g["p99"], "<= 5", g["p99"] <= 5)
        target("GetSecretValue requests/s", g["rps"], ">= 10000", g["rps"] >= 10000, "{:.0f}")
        rp = p["rps"] / rows["raw_sqlite"]
        target("PutSecretValue / raw SQLite commit rate", rp, ">= 0.8", rp >= 0.8, "{:.3f}")
        rss = max(x for x in [*(r.get("rss_max") for r in gets + offs), b.get("rss_max"),
                              p.get("rss_max"), rows.get("rss_end")] if x)
        target("RSS under load (MB)", rss, "<= 150", rss <= 150, "{:.0f}")
        if rows.get("metrics_ratio"):
            target("GetSecretValue metrics on / off (median of the pairs)", rows["metrics_ratio"],
                   "not measurable (within noise)", None)
        if rows.get("agent_1") and rows.get("direct_1"):
            target("agent cache hit p50 / direct p50, 1 connection", rows["agent_1"]["p50"] / rows["direct_1"]["p50"],
                   "(report)", None, "{:.3f}")
            target(f"agent cache hit / direct GetSecretValue requests/s, {args.connections} connections",
                   rows["agent"]["rps"] / g["rps"], "(report)", None, "{:.1f}")
        rb = (b["rps"] * 20) / g["rps"]
        target("BatchGet secrets/s / GetSecretValue secrets/s", rb, ">= 3", rb >= 3, "{:.2f}")
    if rows.get("pg_get") and g:
        rpg = rows["pg_get"]["rps"] / g["rps"]
        target("PostgreSQL GetSecretValue / SQLite", rpg, ">= 0.6", rpg >= 0.6)
    if rows.get("pg_get_timer") and g:
        rpt = rows["pg_get_timer"]["rps"] / g["rps"]
        target(f"PostgreSQL GetSecretValue with --pg-change-check-ms {args.pg_change_check_ms} "
               "(opt-in: other servers' writes seen up to that much later) / SQLite", rpt, "(report)", None)
    if rows.get("pg_two"):
        r2 = rows["pg_two_ratio"]
        target("PostgreSQL GetSecretValue, two servers / one server, each pinned to one CPU "
               "(median of the pairs)", r2, ">= 1.6", r2 >= 1.6)
        target("PostgreSQL GetSecretValue, two pinned servers / one unpinned server",
               rows["pg_two"]["rps"] / rows["pg_get"]["rps"], "(report)", None)
    if rows.get("pg_put") and rows.get("raw_pg"):
        rpp = rows["pg_put"]["rps"] / rows["raw_pg"]
        target(f"PostgreSQL PutSecretValue / raw PostgreSQL commit rate ({args.connections} clients)",
               rpp, ">= 0.5", rpp >= 0.5, "{:.3f}")
    table = "\n".join(lines)
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: ({kk: vv for kk, vv in v.items() if kk != "raw"} if isinstance(v, dict) else v)
                       for k, v in rows.items()}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
