#!/usr/bin/env python3
"""How Strongroom's costs grow with the number of secrets (a separate command from
scripts/bench.sh; see docs/performance.md, "How cost grows with scale").

For each size N (--sizes, default 10000,100000,1000000), on a fresh SQLite data directory:
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


def start_timed(args, data, port):
    """Start the server; answer (process, seconds from exec to a listening port)."""
    env = dict(os.environ)
    env.update({
        "STRONGROOM_ROOT_ACCESS_KEY_ID": bench.AKID,
        "STRONGROOM_ROOT_SECRET_ACCESS_KEY": bench.SECRET,
        "STRONGROOM_LOG": "warn",
    })
    cmd = [args.bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
           "--policies", args.policies]
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--sizes", default="10000,100000,1000000")
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
    os.makedirs(args.tmp, exist_ok=True)
    args.policies = bench.write_policies(os.path.join(args.tmp, "policies"))
    load0 = os.getloadavg()
    rows = [one_size(args, int(s)) for s in args.sizes.split(",")]
    load1 = os.getloadavg()

    base = rows[0]["get"]["rps"]
    lines = [f"Scale: SQLite, 1 version of 1 KB per secret, {os.cpu_count()} CPUs; GetSecretValue "
             f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s; ListSecrets "
             f"MaxResults 100, {args.list_samples} sequential requests; load average "
             f"{load0[0]:.1f} / {load0[1]:.1f} / {load0[2]:.1f} at start, "
             f"{load1[0]:.1f} / {load1[1]:.1f} / {load1[2]:.1f} at end", ""]
    head = "| | " + " | ".join(f"{r['n']:,}" for r in rows) + " |"
    lines += [head, "|---|" + "---:|" * len(rows)]

    def line(label, f):
        lines.append(f"| {label} | " + " | ".join(f(r) for r in rows) + " |")

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
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
