#!/usr/bin/env python3
"""How Strongroom's costs grow with the number of secrets, versions per secret, the caller's
identity-policy statements and audit records in the store (a separate command from
scripts/bench.sh; see docs/performance.md, "How cost grows with scale").

Four modes (--modes, all by default, run in the order given; each prints a table of its own
with the load average at its start and end):

secrets     For each size N (--sizes, default 10000,100000,1000000), on a fresh SQLite data
            directory (below).
versions    For each K (--version-counts, default 5,50,100; AWS keeps about 100 versions per
            secret), a fresh store of --version-secrets (1000) secrets with K versions each
            (`bench-seed --versions K`: the newest AWSCURRENT, the one before AWSPREVIOUS):
            start-up, the first GetSecretValue of --cold-samples secrets nothing has read yet
            (AWSCURRENT, and VersionStage AWSPREVIOUS on others: the read cache's misses),
            ListSecretVersionIds (MaxResults 100, without and with IncludeDeprecated,
            sequential), GetSecretValue by AWSCURRENT and by AWSPREVIOUS with wrk.
statements  One store of --statement-secrets (10000) secrets; for each S (--statement-counts,
            default 10,100,1000) the server starts with a policies directory in which
            bench-reader holds S identity statements: bench.py's 10-statement inline policy
            and S - 10 filler statements (filler_statement: allows and denies for other
            secrets, allows under conditions that do not hold, allows of other actions) in
            customer-managed policies of at most 6,144 characters attached to the user (IAM's
            limits, which the server enforces): start-up, first reads, GetSecretValue with wrk
            and the server's CPU µs per request.
audit       For each N (--audit-counts, default 10000,100000,1000000), a fresh store of
            --audit-secrets (10000) secrets and N audit records (`bench-seed --audit-records
            N`: a chain of their own, 90 days of GetSecretValue/DescribeSecret by 1,000 users,
            1 in 7 denied, the lookup index brought up to date): start-up, LookupEvents
            (as root, sequential: newest 50; EventName, Username and ResourceName of
            decreasing frequency), `strongroom audit query --principal` wall time (one of the
            1,000 users, the 1,000 newest, the CLI opening the database while the server runs),
            GetSecretValue with wrk.

Knobs to shrink a run: the counts above, --duration, --warmup, --list-samples,
--cold-samples, --cli-samples. Seeding a million secrets takes minutes (bench-seed writes
2,000 per transaction); a million audit records less.

secrets mode, for each size N, on a fresh SQLite data directory:
  seed     `strongroom bench-seed` creates N secrets straight in the store (no requests, no
           audit records): the rows CreateSecret with Tags and a SecretString, then
           PutResourcePolicy, would write (bench.py's names, a `team` tag, one 1 KB version
           sealed under the account's aws/secretsmanager key, the 2-statement resource policy)
  start    the server is started; start-up = from exec to the port accepting connections
  RSS      VmRSS after start, and after the GetSecretValue run
  list     ListSecrets, first page (MaxResults 100), sequential requests on a fresh
           connection each, --list-samples of them after 3 unmeasured ones: p50 and p99 of the
           client-side latency, for: no filter; a name prefix matching 10 secrets at any N
           (`bench/app07/secret-01`); a name prefix matching N/100 (`bench/app07/`); a name
           prefix matching every secret (`bench/`); a description filter (`bench secret 7`,
           word matching, not narrowed by an index)
  get      GetSecretValue with wrk (bench.py's run: --distinct pre-signed requests for random
           secrets among the N, --connections, --duration after --warmup)
Every measured request is signed as bench.py's policy-bound user bench-reader (10 identity
statements, the secret's resource policy). Each data directory is deleted after its size.

Usage (from the repository root, after `cargo build --release`):
  .venv/bin/python benches/load/scale.py --bin target/release/strongroom --tmp /tmp/scale
  .venv/bin/python benches/load/scale.py --bin target/release/strongroom --tmp /tmp/scale \
      --modes versions,statements,audit
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the load benchmark's helpers: signing, wrk, seeding, policies)

LIST_CASES = [
    ("no filter", None),
    ("name prefix, 10 matches", [{"Key": "name", "Values": ["bench/app07/secret-01"]}]),
    ("name prefix, N/100 matches", [{"Key": "name", "Values": ["bench/app07/"]}]),
    ("name prefix, every secret", [{"Key": "name", "Values": ["bench/"]}]),
    ("description words", [{"Key": "description", "Values": ["bench secret 7"]}]),
]


def start_timed(args, data, port, policies=None):
    """Start the server (with the policies directory `policies`, args.policies unless given);
    answer (process, seconds from exec to a listening port)."""
    env = dict(os.environ)
    env.update({
        "STRONGROOM_ROOT_ACCESS_KEY_ID": bench.AKID,
        "STRONGROOM_ROOT_SECRET_ACCESS_KEY": bench.SECRET,
        "STRONGROOM_LOG": "warn",
    })
    cmd = [args.bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
           "--policies", policies or args.policies]
    logf = open(os.path.join(data, "server.log"), "ab")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, env=env)
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, time.monotonic() - t0
        except OSError:
            if time.monotonic() - t0 > 600:
                raise SystemExit("server not listening after 600 s")
            time.sleep(0.005)


def list_latency(port, filters, samples):
    """(p50 ms, p99 ms, secrets on the first page, NextToken present) of ListSecrets."""
    body = {"MaxResults": 100}
    if filters:
        body["Filters"] = filters
    times = []
    count, token = 0, False
    for i in range(samples + 3):
        raw = bench.signed_raw(port, "secretsmanager.ListSecrets", body)
        t0 = time.perf_counter()
        status, resp = bench.check_one(port, raw)
        dt = (time.perf_counter() - t0) * 1000
        if status != 200:
            raise SystemExit(f"ListSecrets answered {status}: {resp[:300]!r}")
        if i >= 3:
            times.append(dt)
        out = json.loads(resp)
        count, token = len(out["SecretList"]), "NextToken" in out
    times.sort()
    p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
    return statistics.median(times), p99, count, token


def one_size(args, n):
    data = os.path.join(args.tmp, f"n{n}")
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    policy = os.path.join(args.tmp, "resource-policy.json")
    with open(policy, "w") as f:
        f.write(bench.resource_policy())
    row = {"n": n}
    t0 = time.monotonic()
    subprocess.run([args.bin, "bench-seed", "--data-dir", data, "--account", bench.ACCOUNT,
                    "--count", str(n), "--resource-policy", policy],
                   check=True, capture_output=True, text=True)
    row["seed_s"] = time.monotonic() - t0
    db = os.path.join(data, "strongroom.db")
    row["db_mb"] = sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data)
                       if f.startswith("strongroom.db")) / 2**20 if os.path.exists(db) else None
    bench.log(f"N={n}: seeded in {row['seed_s']:.0f} s")
    bench.CALLER.update({"akid": bench.AKID, "secret": bench.SECRET})
    port = bench.free_port()
    proc, row["startup_s"] = start_timed(args, data, port)
    try:
        time.sleep(1)
        row["rss_start"] = bench.rss_mb(proc.pid)
        bench.CALLER.update(bench.mint_user_key(args, data))
        row["list"] = {}
        for label, filters in LIST_CASES:
            p50, p99, count, token = list_latency(port, filters, args.list_samples)
            row["list"][label] = {"p50": p50, "p99": p99, "count": count, "token": token}
            bench.log(f"N={n}: ListSecrets {label}: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
                      f"{count} on the page, NextToken {token}")
        get, _, _ = bench.request_sets(port, args, n)
        r = bench.run_set("get", port, get, args, args.tmp, rss_pid=proc.pid)
        row["get"] = {k: r[k] for k in ("rps", "p50", "p99", "non2xx", "rss_max", "cpu")}
        row["rss_after_get"] = bench.rss_mb(proc.pid)
    finally:
        bench.stop(proc)
    proc, row["restart_s"] = start_timed(args, data, bench.free_port())
    bench.stop(proc)
    if not args.keep:
        shutil.rmtree(data, ignore_errors=True)
    return row


def seed_store(args, data, count, versions=1, audit_records=0):
    """`strongroom bench-seed` into a fresh data directory: answers (seconds, database MB: the
    database file with its WAL, audit and audit-index files)."""
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    policy = os.path.join(args.tmp, "resource-policy.json")
    with open(policy, "w") as f:
        f.write(bench.resource_policy())
    t0 = time.monotonic()
    subprocess.run([args.bin, "bench-seed", "--data-dir", data, "--account", bench.ACCOUNT,
                    "--count", str(count), "--versions", str(versions),
                    "--audit-records", str(audit_records), "--audit-secrets", str(max(count, 1)),
                    "--resource-policy", policy],
                   check=True, capture_output=True, text=True)
    secs = time.monotonic() - t0
    mb = sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data)
             if f.startswith("strongroom.db")) / 2**20
    return secs, mb


def sequential(port, target, bodies, samples, service="secretsmanager", akid=None, secret=None):
    """`samples` requests sent one at a time, each on a fresh connection, after 3 unmeasured
    ones (bodies[k % len(bodies)] for the k-th): answers (p50 ms, p99 ms, the last answer)."""
    times = []
    out = None
    for k in range(samples + 3):
        raw = bench.signed_raw(port, target, bodies[k % len(bodies)], service=service, akid=akid, secret=secret)
        t0 = time.perf_counter()
        status, resp = bench.check_one(port, raw)
        dt = (time.perf_counter() - t0) * 1000
        if status != 200:
            raise SystemExit(f"{target} answered {status}: {resp[:300]!r}")
        if k >= 3:
            times.append(dt)
        out = json.loads(resp)
    return pct(times, 50), pct(times, 99), out


def cold(port, bodies):
    """GetSecretValue of secrets nothing has read since the server started (the read cache's
    misses), one request each, sequential: (p50 ms, p99 ms)."""
    times = []
    for b in bodies:
        raw = bench.signed_raw(port, "secretsmanager.GetSecretValue", b)
        t0 = time.perf_counter()
        status, resp = bench.check_one(port, raw)
        times.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            raise SystemExit(f"GetSecretValue answered {status}: {resp[:300]!r}")
    return pct(times, 50), pct(times, 99)


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))]


def wrk_get(args, port, pid, label, bodies):
    """A wrk run (bench.py's run_set) of pre-signed GetSecretValue requests with `bodies`."""
    reqs = [bench.signed_raw(port, "secretsmanager.GetSecretValue", b) for b in bodies]
    r = bench.run_set(label, port, reqs, args, args.tmp, rss_pid=pid)
    return {k: r[k] for k in ("rps", "p50", "p99", "non2xx", "rss_max", "cpu")}


def random_ids(args, count, seed=7):
    import random

    rng = random.Random(seed)
    return [rng.randrange(count) for _ in range(args.distinct)]


# ------------------------------------------------------------------------------ versions


def one_versions(args, k):
    """Versions per secret: args.version_secrets secrets with `k` versions each."""
    n = args.version_secrets
    data = os.path.join(args.tmp, f"v{k}")
    row = {"k": k}
    row["seed_s"], row["db_mb"] = seed_store(args, data, n, versions=k)
    bench.log(f"versions={k}: {n} secrets seeded in {row['seed_s']:.0f} s ({row['db_mb']:.0f} MB)")
    bench.CALLER.update({"akid": bench.AKID, "secret": bench.SECRET})
    port = bench.free_port()
    proc, row["startup_s"] = start_timed(args, data, port)
    try:
        time.sleep(1)
        bench.CALLER.update(bench.mint_user_key(args, data))
        c = min(args.cold_samples, n // 2)
        row["cold_current"] = cold(port, [{"SecretId": bench.name_of(i)} for i in range(c)])
        row["cold_previous"] = cold(port, [{"SecretId": bench.name_of(i), "VersionStage": "AWSPREVIOUS"}
                                           for i in range(c, 2 * c)]) if k > 1 else (float("nan"),) * 2
        ids = random_ids(args, n)
        for key, extra in (("list", {}), ("list_all", {"IncludeDeprecated": True})):
            bodies = [{"SecretId": bench.name_of(i), "MaxResults": 100, **extra} for i in ids]
            p50, p99, out = sequential(port, "secretsmanager.ListSecretVersionIds", bodies, args.list_samples)
            row[key] = {"p50": p50, "p99": p99, "count": len(out["Versions"]), "token": "NextToken" in out}
        row["get_current"] = wrk_get(args, port, proc.pid, f"get AWSCURRENT, {k} versions",
                                     [{"SecretId": bench.name_of(i)} for i in ids])
        row["get_previous"] = wrk_get(args, port, proc.pid, f"get AWSPREVIOUS, {k} versions",
                                      [{"SecretId": bench.name_of(i), "VersionStage": "AWSPREVIOUS"}
                                       for i in ids] if k > 1 else [{"SecretId": bench.name_of(i)} for i in ids])
        row["rss_after"] = bench.rss_mb(proc.pid)
    finally:
        bench.stop(proc)
    proc, row["restart_s"] = start_timed(args, data, bench.free_port())
    bench.stop(proc)
    if not args.keep:
        shutil.rmtree(data, ignore_errors=True)
    return row


def table(title, label, heads, rows):
    """A markdown table's lines (title, blank line, head, rule) and a function that appends
    one row: `line(label, f)` with `f(row)` giving each column's cell."""
    head = (f"| {label} | " if label else "| | ") + " | ".join(heads) + " |"
    lines = [title, "", head, "|---|" + "---:|" * len(rows)]

    def line(row_label, f):
        lines.append(f"| {row_label} | " + " | ".join(f(r) for r in rows) + " |")

    return lines, line


def versions_table(args, rows, load0, load1):
    lines, line = table(
        f"Versions per secret: SQLite, {args.version_secrets:,} secrets x K versions of 1 KB (the newest "
        f"AWSCURRENT, the one before AWSPREVIOUS, the rest unlabelled), {os.cpu_count()} CPUs; GetSecretValue "
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s over {args.distinct} random secrets; "
        f"first reads and ListSecretVersionIds sequential; load average "
        f"{fmt_load(load0)} at start, {fmt_load(load1)} at end",
        "versions per secret", [str(r["k"]) for r in rows], rows)

    line("seeding (bench-seed), s", lambda r: f"{r['seed_s']:.0f}")
    line("database size, MB", lambda r: f"{r['db_mb']:.0f}")
    line("start-up (first start after seeding) / restart, s", lambda r: f"{r['startup_s']:.2f} / {r['restart_s']:.2f}")
    line("GetSecretValue AWSCURRENT requests/s (p50 / p99 ms)",
         lambda r: f"{r['get_current']['rps']:.0f} ({r['get_current']['p50']:.2f} / {r['get_current']['p99']:.2f})")
    line("GetSecretValue VersionStage AWSPREVIOUS requests/s (p50 / p99 ms)",
         lambda r: f"{r['get_previous']['rps']:.0f} ({r['get_previous']['p50']:.2f} / {r['get_previous']['p99']:.2f})")
    line("server CPU µs/request, AWSCURRENT / AWSPREVIOUS",
         lambda r: f"{cpu_per(r['get_current'])} / {cpu_per(r['get_previous'])}")
    line(f"first read of a secret (read-cache miss), AWSCURRENT: p50 / p99 ms ({args.cold_samples} secrets)",
         lambda r: f"{r['cold_current'][0]:.2f} / {r['cold_current'][1]:.2f}")
    line(f"first read of a secret (read-cache miss), AWSPREVIOUS: p50 / p99 ms ({args.cold_samples} secrets)",
         lambda r: f"{r['cold_previous'][0]:.2f} / {r['cold_previous'][1]:.2f}")
    line("ListSecretVersionIds MaxResults 100: p50 / p99 ms (versions on the page)",
         lambda r: f"{r['list']['p50']:.2f} / {r['list']['p99']:.2f} ({r['list']['count']}{', token' if r['list']['token'] else ''})")
    line("ListSecretVersionIds MaxResults 100, IncludeDeprecated: p50 / p99 ms (versions on the page)",
         lambda r: f"{r['list_all']['p50']:.2f} / {r['list_all']['p99']:.2f} "
                   f"({r['list_all']['count']}{', token' if r['list_all']['token'] else ''})")
    line("RSS after the GetSecretValue runs, MB", lambda r: f"{r['rss_after']:.0f}")
    return lines


# ---------------------------------------------------------------------------- statements


def filler_statement(k):
    """Identity-policy statement number k of the filler: none of them decides a GetSecretValue
    of bench/* as bench-reader, but each is one the evaluation has to look at: an Allow for
    other secrets, a Deny for other secrets, an Allow of bench/* under a tag condition that
    does not hold, an Allow of other actions under a source-address condition."""
    sm = bench.SM
    kind = k % 4
    if kind == 0:
        return {"Sid": f"Other{k}", "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": f"{sm}team{k}/*"}
    if kind == 1:
        return {"Sid": f"Deny{k}", "Effect": "Deny", "Action": "secretsmanager:*",
                "Resource": f"{sm}bench/restricted{k}/*"}
    if kind == 2:
        return {"Sid": f"Tagged{k}", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                "Resource": f"{sm}bench/*",
                "Condition": {"StringEquals": {"aws:ResourceTag/team": f"t{k}"}}}
    return {"Sid": f"Writes{k}", "Effect": "Allow",
            "Action": ["secretsmanager:PutSecretValue", "secretsmanager:UpdateSecret"],
            "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": f"192.0.2.{k % 256}/32"}}}


def write_statement_policies(root, total):
    """bench.py's policies directory, with bench-reader holding `total` identity statements:
    bench.py's 10-statement inline policy and total - 10 filler statements in customer-managed
    policies (accounts/ID/policies/, at most 6,144 characters each, as IAM allows) attached
    to the user. Answers (root, number of managed policies)."""
    shutil.rmtree(root, ignore_errors=True)
    bench.write_policies(root)
    acct = os.path.join(root, "accounts", bench.ACCOUNT)
    pol_dir = os.path.join(acct, "policies")
    os.makedirs(pol_dir, exist_ok=True)
    extra = max(0, total - len(bench.IDENTITY_POLICY["Statement"]))
    docs, cur = [], []
    for k in range(extra):
        st = filler_statement(k)
        trial = {"Version": "2012-10-17", "Statement": cur + [st]}
        if cur and len(json.dumps(trial, separators=(",", ":"))) > 6000:
            docs.append(cur)
            cur = [st]
        else:
            cur.append(st)
    if cur:
        docs.append(cur)
    arns = []
    for n, sts in enumerate(docs):
        name = f"bench-filler-{n:03d}"
        with open(os.path.join(pol_dir, f"{name}.json"), "w") as f:
            json.dump({"Version": "2012-10-17", "Statement": sts}, f, separators=(",", ":"))
        arns.append(f"arn:aws:iam::{bench.ACCOUNT}:policy/{name}")
    upath = os.path.join(acct, "users", f"{bench.USER}.json")
    with open(upath) as f:
        user = json.load(f)
    user["AttachedPolicies"] = arns
    with open(upath, "w") as f:
        json.dump(user, f, indent=1)
    return root, len(docs)


def statements_rows(args):
    n = args.statement_secrets
    data = os.path.join(args.tmp, "statements")
    seed_s, _ = seed_store(args, data, n)
    bench.log(f"statements: {n} secrets seeded in {seed_s:.0f} s")
    rows = []
    ids = random_ids(args, n)
    try:
        for total in [int(x) for x in args.statement_counts.split(",")]:
            pol, files = write_statement_policies(os.path.join(args.tmp, f"policies-st{total}"), total)
            row = {"statements": total, "files": files}
            bench.CALLER.update({"akid": bench.AKID, "secret": bench.SECRET})
            port = bench.free_port()
            proc, row["startup_s"] = start_timed(args, data, port, policies=pol)
            try:
                time.sleep(1)
                # The key is minted against this level's directory (the user is the same in all).
                saved = args.policies
                args.policies = pol
                try:
                    bench.CALLER.update(bench.mint_user_key(args, data))
                finally:
                    args.policies = saved
                row["rss_start"] = bench.rss_mb(proc.pid)
                row["cold"] = cold(port, [{"SecretId": bench.name_of(i)}
                                          for i in range(min(args.cold_samples, n))])
                row["get"] = wrk_get(args, port, proc.pid, f"get, {total} statements",
                                     [{"SecretId": bench.name_of(i)} for i in ids])
                row["rss_after"] = bench.rss_mb(proc.pid)
            finally:
                bench.stop(proc)
            rows.append(row)
    finally:
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
    return rows


def statements_table(args, rows, load0, load1):
    lines, line = table(
        f"Identity-policy statements: SQLite, {args.statement_secrets:,} secrets x 1 version of 1 KB; the "
        f"caller (bench-reader) holds S identity statements (bench.py's 10 inline, the rest in customer-managed "
        f"policies attached to the user, none of them deciding the request), each secret its 2-statement "
        f"resource policy; {os.cpu_count()} CPUs; GetSecretValue wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration}s over {args.distinct} random secrets; load average {fmt_load(load0)} at start, "
        f"{fmt_load(load1)} at end",
        "identity statements", [f"{r['statements']:,}" for r in rows], rows)

    line("customer-managed policy files", lambda r: str(r["files"]))
    line("start-up, s", lambda r: f"{r['startup_s']:.2f}")
    line("GetSecretValue requests/s", lambda r: f"{r['get']['rps']:.0f}")
    line(f"GetSecretValue requests/s / {rows[0]['statements']:,}-statement run",
         lambda r: f"{r['get']['rps'] / rows[0]['get']['rps']:.2f}")
    line("GetSecretValue p50 / p99 ms", lambda r: f"{r['get']['p50']:.2f} / {r['get']['p99']:.2f}")
    line("server CPU µs/request", lambda r: cpu_per(r["get"]))
    line(f"first read of a secret (read-cache miss): p50 / p99 ms ({args.cold_samples} secrets)",
         lambda r: f"{r['cold'][0]:.2f} / {r['cold'][1]:.2f}")
    line("RSS after start / after the GetSecretValue run, MB", lambda r: f"{r['rss_start']:.0f} / {r['rss_after']:.0f}")
    return lines


# --------------------------------------------------------------------------------- audit

LOOKUP = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"


def audit_cases():
    """LookupEvents queries (as root): label, body."""
    return [
        ("newest 50", {"MaxResults": 50}),
        ("EventName=DescribeSecret (1 in 5), newest 50",
         {"MaxResults": 50, "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "DescribeSecret"}]}),
        ("Username=bench-user-007 (1 in 1,000), newest 50",
         {"MaxResults": 50, "LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "bench-user-007"}]}),
        ("ResourceName=one secret (1 in 10,000), newest 50",
         {"MaxResults": 50, "LookupAttributes": [{"AttributeKey": "ResourceName",
                                                  "AttributeValue": bench.name_of(7)}]}),
    ]


def one_audit(args, n):
    """Audit records already in the store: `n` seeded records (bench-seed --audit-records)."""
    s = args.audit_secrets
    data = os.path.join(args.tmp, f"a{n}")
    row = {"n": n}
    row["seed_s"], row["db_mb"] = seed_store(args, data, s, audit_records=n)
    bench.log(f"audit={n}: {s} secrets and {n} records seeded in {row['seed_s']:.0f} s ({row['db_mb']:.0f} MB)")
    bench.CALLER.update({"akid": bench.AKID, "secret": bench.SECRET})
    port = bench.free_port()
    proc, row["startup_s"] = start_timed(args, data, port)
    try:
        time.sleep(1)
        row["rss_start"] = bench.rss_mb(proc.pid)
        bench.CALLER.update(bench.mint_user_key(args, data))
        row["lookup"] = {}
        for label, body in audit_cases():
            p50, p99, out = sequential(port, LOOKUP, [body], args.list_samples, service="cloudtrail",
                                       akid=bench.AKID, secret=bench.SECRET)
            row["lookup"][label] = {"p50": p50, "p99": p99, "count": len(out["Events"])}
            bench.log(f"audit={n}: LookupEvents {label}: p50 {p50:.1f} ms, p99 {p99:.1f} ms, {len(out['Events'])} events")
        cli = [args.bin, "audit", "query", "--data-dir", data, "--format", "jsonl", "--limit", "1000",
               "--principal", f"arn:aws:iam::{bench.ACCOUNT}:user/bench-user-007"]
        times, lines_out = [], 0
        for _ in range(args.cli_samples):
            t0 = time.perf_counter()
            out = subprocess.run(cli, check=True, capture_output=True, text=True).stdout
            times.append((time.perf_counter() - t0) * 1000)
            lines_out = len(out.splitlines())
        row["cli"] = {"median": statistics.median(times), "records": lines_out}
        bench.log(f"audit={n}: audit query --principal (1,000 newest): {row['cli']['median']:.0f} ms, {lines_out} records")
        row["get"] = wrk_get(args, port, proc.pid, f"get, {n} audit records",
                             [{"SecretId": bench.name_of(i)} for i in random_ids(args, s)])
        row["rss_after"] = bench.rss_mb(proc.pid)
    finally:
        bench.stop(proc)
    proc, row["restart_s"] = start_timed(args, data, bench.free_port())
    bench.stop(proc)
    if not args.keep:
        shutil.rmtree(data, ignore_errors=True)
    return row


def audit_table(args, rows, load0, load1):
    lines, line = table(
        f"Audit records in the store: SQLite, {args.audit_secrets:,} secrets x 1 version of 1 KB and N seeded "
        f"records (bench-seed: GetSecretValue and DescribeSecret by 1,000 users on those secrets over 90 days, "
        f"1 in 7 denied; lookup index up to date); {os.cpu_count()} CPUs; GetSecretValue "
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s; LookupEvents {args.list_samples} sequential "
        f"requests as root; load average {fmt_load(load0)} at start, {fmt_load(load1)} at end",
        "audit records in the store", [f"{r['n']:,}" for r in rows], rows)

    line("seeding (bench-seed, with the lookup index), s", lambda r: f"{r['seed_s']:.0f}")
    line("database size (with the -audit and -audit-index files), MB", lambda r: f"{r['db_mb']:.0f}")
    line("start-up (first start after seeding) / restart, s", lambda r: f"{r['startup_s']:.2f} / {r['restart_s']:.2f}")
    line("RSS after start / after the GetSecretValue run, MB", lambda r: f"{r['rss_start']:.0f} / {r['rss_after']:.0f}")
    line("GetSecretValue requests/s", lambda r: f"{r['get']['rps']:.0f}")
    line(f"GetSecretValue requests/s / {rows[0]['n']:,}-record run", lambda r: f"{r['get']['rps'] / rows[0]['get']['rps']:.2f}")
    line("GetSecretValue p50 / p99 ms", lambda r: f"{r['get']['p50']:.2f} / {r['get']['p99']:.2f}")
    line("server CPU µs/request", lambda r: cpu_per(r["get"]))
    for label, _ in audit_cases():
        line(f"LookupEvents {label}: p50 / p99 ms (events)",
             lambda r, lb=label: f"{r['lookup'][lb]['p50']:.1f} / {r['lookup'][lb]['p99']:.1f} ({r['lookup'][lb]['count']})")
    line(f"`audit query --principal` (one of 1,000 users, --limit 1000), wall time incl. process start, "
         f"median of {args.cli_samples}, ms (records)",
         lambda r: f"{r['cli']['median']:.0f} ({r['cli']['records']})")
    return lines


# -------------------------------------------------------------------------------- secrets


def secrets_table(args, rows, load0, load1):
    base = rows[0]["get"]["rps"]
    lines, line = table(
        f"Scale: SQLite, 1 version of 1 KB per secret, {os.cpu_count()} CPUs; GetSecretValue "
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s; ListSecrets "
        f"MaxResults 100, {args.list_samples} sequential requests; load average "
        f"{fmt_load(load0)} at start, {fmt_load(load1)} at end",
        "", [f"{r['n']:,}" for r in rows], rows)

    line("seeding (bench-seed), s", lambda r: f"{r['seed_s']:.0f}")
    line("database size, MB", lambda r: "-" if r["db_mb"] is None else f"{r['db_mb']:.0f}")
    line("start-up (first start after seeding), s", lambda r: f"{r['startup_s']:.2f}")
    line("start-up (restart), s", lambda r: f"{r['restart_s']:.2f}")
    line("RSS after start, MB", lambda r: f"{r['rss_start']:.0f}")
    line("RSS after the GetSecretValue run, MB", lambda r: f"{r['rss_after_get']:.0f}")
    line("GetSecretValue requests/s", lambda r: f"{r['get']['rps']:.0f}")
    line(f"GetSecretValue requests/s / {rows[0]['n']:,}-secret run", lambda r: f"{r['get']['rps'] / base:.2f}")
    line("GetSecretValue p50 / p99 ms", lambda r: f"{r['get']['p50']:.2f} / {r['get']['p99']:.2f}")
    for label, _ in LIST_CASES:
        line(f"ListSecrets first page, {label}: p50 / p99 ms (secrets on the page)",
             lambda r, lb=label: f"{r['list'][lb]['p50']:.1f} / {r['list'][lb]['p99']:.1f} "
                                 f"({r['list'][lb]['count']}{', token' if r['list'][lb]['token'] else ''})")
    return lines


def fmt_load(la):
    return f"{la[0]:.1f} / {la[1]:.1f} / {la[2]:.1f}"


def cpu_per(r):
    return "-" if r.get("cpu") is None or not r["rps"] else f"{1e6 * r['cpu'] / r['rps']:.0f}"


MODES = ("secrets", "versions", "statements", "audit")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--modes", default=",".join(MODES),
                    help="comma-separated, run in this order: " + ", ".join(MODES))
    ap.add_argument("--sizes", default="10000,100000,1000000", help="secrets mode: secrets")
    ap.add_argument("--version-counts", default="5,50,100", help="versions mode: versions per secret")
    ap.add_argument("--version-secrets", type=int, default=1000, help="versions mode: secrets")
    ap.add_argument("--statement-counts", default="10,100,1000",
                    help="statements mode: the caller's identity statements (10 or more)")
    ap.add_argument("--statement-secrets", type=int, default=10000, help="statements mode: secrets")
    ap.add_argument("--audit-counts", default="10000,100000,1000000", help="audit mode: seeded records")
    ap.add_argument("--audit-secrets", type=int, default=10000, help="audit mode: secrets")
    ap.add_argument("--cold-samples", type=int, default=100,
                    help="first reads of secrets not read since the server started")
    ap.add_argument("--cli-samples", type=int, default=3, help="audit mode: `audit query` runs")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--distinct", type=int, default=400)
    ap.add_argument("--put-distinct", type=int, default=1)
    ap.add_argument("--list-samples", type=int, default=50)
    ap.add_argument("--keep", action="store_true", help="keep each size's data directory")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            ap.error(f"unknown mode {m!r} (one of {', '.join(MODES)})")
    os.makedirs(args.tmp, exist_ok=True)
    args.policies = bench.write_policies(os.path.join(args.tmp, "policies"))
    results = {}
    for m in modes:
        load0 = os.getloadavg()
        t0 = time.monotonic()
        if m == "secrets":
            rows = [one_size(args, int(x)) for x in args.sizes.split(",")]
        elif m == "versions":
            rows = [one_versions(args, int(x)) for x in args.version_counts.split(",")]
        elif m == "statements":
            rows = statements_rows(args)
        else:
            rows = [one_audit(args, int(x)) for x in args.audit_counts.split(",")]
        load1 = os.getloadavg()
        table = {"secrets": secrets_table, "versions": versions_table,
                 "statements": statements_table, "audit": audit_table}[m](args, rows, load0, load1)
        table.append("")
        table.append(f"({m}: {time.monotonic() - t0:.0f} s, "
                     f"{time.strftime('%H:%M', time.gmtime(time.time() - (time.monotonic() - t0)))}"
                     f"–{time.strftime('%H:%M UTC', time.gmtime())})")
        print("\n".join(table) + "\n", flush=True)
        results[m] = rows
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
