#!/usr/bin/env python3
"""The rotation benchmark (run it through `scripts/bench.sh rotation`, which builds the release
binary and starts a throwaway PostgreSQL with TLS).

(a) Scheduler cost: SECRETS secrets (default 100,000; API_SECRETS of them, default 10,000,
    created through the API, the others copies of one of their rows in the secrets table,
    without versions, to keep the seeding short: the scheduler reads that table only), given a
    rotation configuration none of which is due in the next day (AutomaticallyAfterDays 30,
    next rotations spread over the next 30 days). The configuration is written into the store
    with the server stopped (SQL on the SQLite file: the columns RotateSecret sets), because
    RotateSecret would run a rotation (or a test rotation) of every secret first. The server
    is then started and its CPU (utime + stime from /proc) measured over IDLE seconds after a
    settling pause; the same with the same secrets and no rotation configured, for comparison.

(b) A rotation storm: DUE secrets (default 1,000), each the credentials of a PostgreSQL role
    of its own (single-user strategy, the built-in SecretsManagerRDSPostgreSQLRotationSingleUser
    over TLS with the certificate verified: one application role per secret, as a fleet of
    services with their own database users), all made due at the same moment (next rotation
    written into the store, as in (a), 45 s after the server starts). Meanwhile a paced client
    (LOAD_RATE GetSecretValue/s over 4 connections) reads 200 other secrets; its latencies
    before the storm (idle) and during it are compared. Reported: the time from the first
    rotation's start to the last one's end, rotations per second, the engine's concurrency and
    the most connections the rotations held to PostgreSQL at once (pg_stat_activity, sampled),
    and a sample of rotated roles logging in with their new AWSCURRENT password.

Prints a markdown table on stdout (progress on stderr) with the load average.
"""

import argparse
import http.client
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import botocore.auth
import botocore.session
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "load"))
from bench import cpu_seconds, free_port, rss_mb, stop, wait_port  # noqa: E402

AKID = "AKIABENCHROTATION001"
SECRET = "bench/rotation/root/secret/0000000000000"
REGION = "us-east-1"
ACCOUNT = "000000000000"
FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:bench-pg"
DAY_MS = 86_400_000
# The engine's concurrency (src/rotation/engine.rs CONCURRENCY) when the server has no flag for it.
BUILT_IN_CONCURRENCY = 4


def log(msg):
    print(f"[rotation-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def write_policies(root, pg_ca):
    acct = os.path.join(root, "accounts", ACCOUNT)
    for d in ("roles", "functions"):
        os.makedirs(os.path.join(acct, d), exist_ok=True)
    with open(os.path.join(acct, "account.json"), "w") as f:
        json.dump({"AccountId": ACCOUNT}, f)
    with open(os.path.join(acct, "roles", "bench-rotator.json"), "w") as f:
        json.dump({
            "RoleName": "bench-rotator",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                 "Action": "sts:AssumeRole"}]},
            "InlinePolicies": {"rotation": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": [
                    "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
                    "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"],
                 "Resource": f"arn:aws:secretsmanager:*:{ACCOUNT}:secret:bench/*"}]}},
        }, f)
    with open(os.path.join(acct, "functions", "bench-pg.json"), "w") as f:
        json.dump({
            "FunctionName": "bench-pg", "Role": f"arn:aws:iam::{ACCOUNT}:role/bench-rotator",
            "Kind": "builtin", "Builtin": "SecretsManagerRDSPostgreSQLRotationSingleUser",
            "TlsCaFile": pg_ca, "TimeoutSeconds": 60, "MaxAttempts": 3, "RetryDelaySeconds": 5,
        }, f)


def start(args, data_dir, port, policies, extra=()):
    env = dict(os.environ, STRONGROOM_ROOT_ACCESS_KEY_ID=AKID, STRONGROOM_ROOT_SECRET_ACCESS_KEY=SECRET,
               STRONGROOM_LOG="warn")
    cmd = [args.bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir,
           "--policies", policies, *extra]
    logf = open(os.path.join(data_dir, "server.log"), "ab")
    proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, env=env)
    wait_port(port, proc)
    return proc


def client(port, pool=16):
    return botocore.session.get_session().create_client(
        "secretsmanager", endpoint_url=f"http://127.0.0.1:{port}", region_name=REGION,
        aws_access_key_id=AKID, aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=pool))


def create_many(port, items, threads=12):
    """items: [(name, value)]; created in parallel as root."""
    c = client(port, pool=threads)
    done = [0]
    lock = threading.Lock()

    def one(item):
        c.create_secret(Name=item[0], SecretString=item[1])
        with lock:
            done[0] += 1
            if done[0] % 10000 == 0:
                log(f"  created {done[0]}/{len(items)}")

    t0 = time.time()
    with ThreadPoolExecutor(threads) as ex:
        for f in [ex.submit(one, it) for it in items]:
            f.result()
    return time.time() - t0


def configure_rotation(data_dir, where, next_at_sql, now_ms):
    """Give the secrets matching `where` a rotation configuration (server stopped)."""
    db = sqlite3.connect(os.path.join(data_dir, "strongroom.db"), timeout=60)
    n = db.execute(
        f"UPDATE secrets SET rotation_enabled = 1, rotation_lambda_arn = ?, "
        f"rotation_rules = '{{\"AutomaticallyAfterDays\":30}}', next_rotation_at = {next_at_sql} "
        f"WHERE {where}", (FUNCTION,)).rowcount
    db.commit()
    db.close()
    return n


def clone_secrets(data_dir, k):
    """k more rows in `secrets`, copies of bench/idle/000000's under other ids and names (no
    versions: the scheduler reads the secrets table only)."""
    db = sqlite3.connect(os.path.join(data_dir, "strongroom.db"), timeout=60)
    cols = [r[1] for r in db.execute("PRAGMA table_info(secrets)")]
    override = {
        "secret_id": "'bench-clone-' || i",
        "name": "'bench/idle/c' || printf('%06d', i)",
        "arn": "substr(arn, 1, instr(arn, ':secret:') + 7) || 'bench/idle/c' || printf('%06d', i) || '-AbCdEf'",
        "last_accessed_at": "NULL",
    }
    select = ", ".join(override.get(c, c) for c in cols)
    db.execute(
        f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {k - 1}) "
        f"INSERT INTO secrets ({', '.join(cols)}) SELECT {select} FROM n, "
        f"(SELECT * FROM secrets WHERE name = 'bench/idle/000000')")
    db.commit()
    db.close()


def idle_cpu(pid, settle, seconds):
    time.sleep(settle)
    c0, t0 = cpu_seconds(pid), time.time()
    time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - c0) / (time.time() - t0)


# ----------------------------------------------------------------------------------- (a)


def scheduler_idle(args):
    data = os.path.join(args.tmp, "idle")
    os.makedirs(data)
    policies = os.path.join(args.tmp, "policies")
    port = free_port()
    proc = start(args, data, port, policies)
    api_n = min(args.secrets, args.api_secrets)
    try:
        value = json.dumps({"engine": "postgres", "host": "db.internal", "port": 5432,
                            "username": "app", "password": "x" * 32})
        t = create_many(port, [(f"bench/idle/{i:06d}", value) for i in range(api_n)])
        log(f"(a) created {api_n} secrets through the API in {t:.0f}s ({api_n / t:.0f}/s)")
    finally:
        stop(proc)
    if args.secrets > api_n:
        clone_secrets(data, args.secrets - api_n)
        log(f"(a) added {args.secrets - api_n} copies of a secret's row (SQL, no versions)")
    proc = start(args, data, port, policies)
    try:
        base = idle_cpu(proc.pid, args.settle, args.idle)
        log(f"(a) idle, no rotation configured: {base:.2f} % of one core (load {loadavg()})")
    finally:
        stop(proc)
    now = int(time.time() * 1000)
    n = configure_rotation(data, "name LIKE 'bench/idle/%'",
                           f"{now} + {DAY_MS} + (rowid % 30) * {DAY_MS}", now)
    proc = start(args, data, port, policies)
    try:
        load0 = loadavg()
        cpu = idle_cpu(proc.pid, args.settle, args.idle)
        rss = rss_mb(proc.pid)
        d = client(port).describe_secret(SecretId="bench/idle/000007")
        assert d.get("RotationEnabled") and "NextRotationDate" in d, d
        log(f"(a) idle, {n} secrets with rotation, none due: {cpu:.2f} % of one core (load {load0} -> {loadavg()})")
    finally:
        stop(proc)
    return {"secrets": n, "seed_s": t, "cpu_pct": cpu, "cpu_pct_no_rotation": base, "rss_mb": rss,
            "load": f"{load0} -> {loadavg()}"}


# ----------------------------------------------------------------------------------- (b)


def psql(args, sql):
    r = subprocess.run([args.psql, "--no-psqlrc", "-qtA", "-v", "ON_ERROR_STOP=1", args.pg_admin, "-c", sql],
                       capture_output=True, text=True, env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))
    if r.returncode != 0:
        raise SystemExit(f"psql failed: {r.stderr.strip()}")
    return r.stdout.strip()


def logs_in(args, host, port, db, user, password):
    conninfo = (f"host={host} port={port} dbname={db} user={user} sslmode=verify-full "
                f"sslrootcert={args.pg_ca} connect_timeout=5")
    r = subprocess.run([args.psql, "--no-psqlrc", "-qtA", conninfo, "-c", "SELECT 1"], capture_output=True,
                       env=dict(os.environ, PGPASSWORD=password, PGPASSFILE="/nonexistent/pgpass"))
    return r.returncode == 0


class Reader:
    """Paced GetSecretValue calls (pre-signed, over kept-alive connections); latencies kept
    with their start time."""

    def __init__(self, port, names, rate, threads=4):
        self.port, self.names, self.rate, self.threads = port, names, rate, threads
        self.samples = []
        self.errors = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def _signed(self, name):
        body = json.dumps({"SecretId": name}).encode()
        req = AWSRequest(method="POST", url=f"http://127.0.0.1:{self.port}/", data=body, headers={
            "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.GetSecretValue"})
        botocore.auth.SigV4Auth(Credentials(AKID, SECRET), "secretsmanager", REGION).add_auth(req)
        return body, {k: v for k, v in req.headers.items()}

    def _run(self, seed):
        rng = random.Random(seed)
        period = self.threads / self.rate
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        nxt = time.perf_counter()
        while not self.stop.is_set():
            body, headers = self._signed(rng.choice(self.names))
            nxt += period
            delay = nxt - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t0 = time.perf_counter()
            wall = time.time()
            try:
                conn.request("POST", "/", body, headers)
                r = conn.getresponse()
                r.read()
                ok = r.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            ms = 1000 * (time.perf_counter() - t0)
            with self.lock:
                if ok:
                    self.samples.append((wall, ms))
                else:
                    self.errors += 1

    def start(self):
        self.ts = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.threads)]
        for t in self.ts:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.ts:
            t.join()

    def window(self, t0, t1):
        with self.lock:
            xs = sorted(ms for w, ms in self.samples if t0 <= w <= t1)
        if not xs:
            return {"n": 0, "p50": float("nan"), "p99": float("nan")}
        return {"n": len(xs), "p50": statistics.median(xs), "p99": xs[min(len(xs) - 1, int(0.99 * len(xs)))]}


def storm(args):
    kv = dict(p.split("=", 1) for p in args.pg_admin.split())
    host, pgport, db = kv["host"], int(kv["port"]), kv["dbname"]
    n = args.due
    log(f"(b) creating {n} PostgreSQL roles")
    psql(args, "DO $$ BEGIN FOR i IN 0.." + str(n - 1) + " LOOP "
         "EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', 'bench_rot_' || lpad(i::text, 5, '0'), "
         "'initial-' || i); END LOOP; END $$")
    data = os.path.join(args.tmp, "storm")
    os.makedirs(data)
    policies = os.path.join(args.tmp, "policies")
    port = free_port()
    proc = start(args, data, port, policies)
    try:
        items = [(f"bench/rot/{i:05d}", json.dumps({
            "engine": "postgres", "host": host, "port": pgport, "username": f"bench_rot_{i:05d}",
            "password": f"initial-{i}", "dbname": db})) for i in range(n)]
        items += [(f"bench/other/{i:03d}", json.dumps({"password": "o" * 32, "i": i})) for i in range(200)]
        t = create_many(port, items)
        log(f"(b) created {len(items)} secrets in {t:.0f}s")
    finally:
        stop(proc)
    extra = []
    concurrency = BUILT_IN_CONCURRENCY
    if args.concurrency_flag:
        extra = [args.concurrency_flag, str(args.concurrency)]
        concurrency = args.concurrency
    boot_ms = int(time.time() * 1000)
    due_at = boot_ms + 45_000
    configure_rotation(data, "name LIKE 'bench/rot/%'", str(due_at), boot_ms)
    proc = start(args, data, port, policies, extra)
    db_path = os.path.join(data, "strongroom.db")
    ro = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    reader = Reader(port, [f"bench/other/{i:03d}" for i in range(200)], args.load_rate)
    load0 = loadavg()
    try:
        reader.start()
        peak = 0
        first_start = None
        done = failed = 0
        deadline = time.time() + 45 + args.storm_timeout
        cpu0 = None
        while time.time() < deadline:
            now = time.time()
            jobs = ro.execute("SELECT count(*) FROM rotation_jobs").fetchone()[0]
            done = ro.execute("SELECT count(*) FROM secrets WHERE name LIKE 'bench/rot/%' "
                              "AND last_rotated_at IS NOT NULL").fetchone()[0]
            failed = ro.execute("SELECT count(*) FROM rotation_jobs WHERE state = 'failed'").fetchone()[0]
            if first_start is None and (jobs or done):
                first_start = now
                cpu0 = cpu_seconds(proc.pid)
                log(f"(b) storm started ({jobs} jobs)")
            if first_start is not None:
                conns = int(psql(args, "SELECT count(*) FROM pg_stat_activity "
                                       "WHERE application_name = 'strongroom-rotation'"))
                peak = max(peak, conns)
            if done + failed >= n:
                break
            time.sleep(0.25)
        end = time.time()
        cpu = (cpu_seconds(proc.pid) - cpu0) / (end - first_start) * 100 if cpu0 is not None else float("nan")
        reader.finish()
        idle = reader.window(boot_ms / 1000 + 10, due_at / 1000 - 1)
        during = reader.window(first_start or end, end)
        c = client(port)
        sample = random.Random(3).sample(range(n), min(20, n))
        ok = 0
        for i in sample:
            v = json.loads(c.get_secret_value(SecretId=f"bench/rot/{i:05d}")["SecretString"])
            if v["password"] != f"initial-{i}" and logs_in(args, host, pgport, db, v["username"], v["password"]) \
                    and not logs_in(args, host, pgport, db, v["username"], f"initial-{i}"):
                ok += 1
    finally:
        reader.stop.set()
        stop(proc)
    dur = end - first_start if first_start else float("nan")
    log(f"(b) {done} rotated, {failed} failed in {dur:.1f}s; peak {peak} rotation connections; "
        f"GetSecretValue p99 idle {idle['p99']:.1f} ms, storm {during['p99']:.1f} ms; sample {ok}/{len(sample)} log in")
    return {"due": n, "rotated": done, "failed": failed, "seconds": dur, "per_s": done / dur if dur else 0,
            "concurrency": concurrency, "peak_conns": peak, "idle": idle, "storm": during,
            "errors": reader.errors, "sample_ok": ok, "sample": len(sample), "cpu_pct": cpu,
            "load": f"{load0} -> {loadavg()}"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--secrets", type=int, default=100_000)
    ap.add_argument("--api-secrets", type=int, default=10_000,
                    help="of --secrets, how many are created through the API (the rest: SQL copies)")
    ap.add_argument("--idle", type=float, default=60)
    ap.add_argument("--settle", type=float, default=10)
    ap.add_argument("--due", type=int, default=1000)
    ap.add_argument("--load-rate", type=float, default=100)
    ap.add_argument("--storm-timeout", type=float, default=1800)
    ap.add_argument("--pg-admin", required=True, help="admin conninfo of the database the roles are made in")
    ap.add_argument("--pg-ca", required=True)
    ap.add_argument("--psql", default="psql")
    ap.add_argument("--concurrency-flag", default="",
                    help="the server's flag for the engine's concurrency, when it has one")
    ap.add_argument("--concurrency", type=int, default=BUILT_IN_CONCURRENCY)
    ap.add_argument("--skip-idle", action="store_true")
    ap.add_argument("--skip-storm", action="store_true")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    write_policies(os.path.join(args.tmp, "policies"), args.pg_ca)
    out = {"load_start": loadavg(), "cpus": os.cpu_count()}
    if not args.skip_idle:
        out["idle"] = scheduler_idle(args)
    if not args.skip_storm:
        out["storm"] = storm(args)
    out["load_end"] = loadavg()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    print(f"Rotation benchmark ({out['cpus']} CPUs, load average {out['load_start']} at the start, "
          f"{out['load_end']} at the end)\n")
    print("| measure | value | goal |\n|---|---|---|")
    if "idle" in out:
        a = out["idle"]
        print(f"| scheduler, {a['secrets']} secrets with rotation, none due: server CPU over {args.idle:.0f} s idle "
              f"| {a['cpu_pct']:.2f} % of one core (no rotation configured: {a['cpu_pct_no_rotation']:.2f} %) | < 1 % |")
    if "storm" in out:
        b = out["storm"]
        print(f"| {b['due']} secrets due at once (built-in PostgreSQL single user, one role each): all rotated "
              f"| {b['rotated']} rotated, {b['failed']} failed in {b['seconds']:.1f} s | all |")
        print(f"| rotations per second at concurrency {b['concurrency']} | {b['per_s']:.1f} "
              f"(peak {b['peak_conns']} connections to PostgreSQL; server CPU {b['cpu_pct']:.0f} % of one core) "
              f"| bounded by the concurrency |")
        print(f"| GetSecretValue on other secrets ({args.load_rate:.0f}/s), p50 / p99 idle | "
              f"{b['idle']['p50']:.1f} / {b['idle']['p99']:.1f} ms ({b['idle']['n']} calls) | |")
        ratio = b["storm"]["p99"] / b["idle"]["p99"] if b["idle"]["p99"] else float("nan")
        print(f"| GetSecretValue p50 / p99 during the storm | {b['storm']['p50']:.1f} / {b['storm']['p99']:.1f} ms "
              f"({b['storm']['n']} calls, {b['errors']} errors); p99 {ratio:.2f}x idle | at most 2x |")
        print(f"| rotated roles sampled that log in with the new password (and not the old) | "
              f"{b['sample_ok']}/{b['sample']} | all |")


if __name__ == "__main__":
    main()
