#!/usr/bin/env python3
"""Instructions per request, counted by valgrind's callgrind: a measure of the request path's
cost that the machine's load does not move (throughput on a shared VM moves by a quarter from
one minute to the next; the same binary, inputs and environment give the same count).

    .venv/bin/python benches/load/instructions.py --bin target/release/strongroom

Seeds SECRETS secrets (native speed), restarts the same data under
`valgrind --tool=callgrind --instr-atstart=no`, warms up (every secret read once, then WARMUP
random requests), switches instrumentation on, sends REQUESTS GetSecretValue requests over
one keep-alive connection (signed as bench-reader, the load benchmark's 10-statement identity
policy and 2-statement resource policy), switches it off and prints the instructions per
request: for the whole process, and split by thread (request threads vs the audit writer and
indexer). `--annotate N` prints the N functions with the highest inclusive cost per request.
`--op batch|put|describe` measures another operation.
"""

import argparse
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def send_all(port, reqs):
    """Send each pre-signed request on one keep-alive connection; expect 200 for each."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
        buf = b""
        for raw in reqs:
            s.sendall(raw)
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    raise SystemExit("connection closed")
                buf += chunk
            head, _, rest = buf.partition(b"\r\n\r\n")
            status = int(head.split(b" ")[1])
            m = re.search(rb"content-length: (\d+)", head, re.I)
            n = int(m.group(1)) if m else 0
            while len(rest) < n:
                rest += s.recv(65536)
            if status != 200:
                raise SystemExit(f"status {status}: {rest[:n][:300]!r}")
            buf = rest[n:]


def callgrind_control(*args):
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


def totals(outfile):
    """Sum of Ir over every thread file of one dump, and Ir per thread name."""
    per = {}
    total = 0
    for f in glob.glob(outfile + "*"):
        ir = 0
        with open(f, errors="replace") as fh:
            for line in fh:
                if line.startswith("summary:") or line.startswith("totals:"):
                    ir = int(line.split()[1])
        total += ir
        per[f] = ir
    return total, per


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--secrets", type=int, default=1000)
    ap.add_argument("--versions", type=int, default=2)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--op", default="get", choices=["get", "batch", "put", "describe"])
    ap.add_argument("--annotate", type=int, default=0)
    ap.add_argument("--keep", default="", help="keep the callgrind output in this directory")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="sr-instr-")
    args.policies = bench.write_policies(os.path.join(tmp, "policies"))
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    port = bench.free_port()
    proc = bench.start_strongroom(args, data, port)
    try:
        bench.log(f"seeding {args.secrets} secrets x {args.versions} versions")
        bench.seed(port, args.secrets, args.versions)
        key = bench.mint_user_key(args, data)
    finally:
        bench.stop(proc)
    bench.CALLER.update(key)

    port = bench.free_port()
    out = os.path.join(tmp, "callgrind.out")
    env = dict(os.environ)
    env.update({"STRONGROOM_ROOT_ACCESS_KEY_ID": bench.AKID,
                "STRONGROOM_ROOT_SECRET_ACCESS_KEY": bench.SECRET, "STRONGROOM_LOG": "warn"})
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
           f"--callgrind-out-file={out}", args.bin, "serve", "--listen", f"127.0.0.1:{port}",
           "--data-dir", data, "--policies", args.policies]
    logf = open(os.path.join(tmp, "valgrind.log"), "wb")
    proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, env=env)
    try:
        bench.wait_port(port, proc, timeout=600)
        import random
        rng = random.Random(11)

        def make(n):
            reqs = []
            for _ in range(n):
                i = rng.randrange(args.secrets)
                if args.op == "get":
                    reqs.append(bench.signed_raw(port, "secretsmanager.GetSecretValue", {"SecretId": bench.name_of(i)}))
                elif args.op == "describe":
                    reqs.append(bench.signed_raw(port, "secretsmanager.DescribeSecret", {"SecretId": bench.name_of(i)}))
                elif args.op == "batch":
                    ids = [bench.name_of(rng.randrange(args.secrets)) for _ in range(20)]
                    reqs.append(bench.signed_raw(port, "secretsmanager.BatchGetSecretValue", {"SecretIdList": ids}))
                else:
                    reqs.append(bench.signed_raw(port, "secretsmanager.PutSecretValue",
                                                 {"SecretId": bench.name_of(i), "SecretString": bench.value_of(i, 7),
                                                  "ClientRequestToken": str(uuid.UUID(int=rng.getrandbits(128), version=4))}))
            return reqs

        def each():
            # Every secret read once before the random warm-up: the day's first read of a
            # version records its LastAccessedDate, a write that empties the read cache, and
            # one left for the measured requests would count a cache refill in them.
            ids = [bench.name_of(i) for i in range(args.secrets)]
            if args.op == "get":
                return [bench.signed_raw(port, "secretsmanager.GetSecretValue", {"SecretId": n}) for n in ids]
            if args.op == "batch":
                return [bench.signed_raw(port, "secretsmanager.BatchGetSecretValue", {"SecretIdList": ids[k:k + 20]})
                        for k in range(0, len(ids), 20)]
            return []

        warm = each() + make(args.warmup)
        measured = make(args.requests)
        send_all(port, warm)
        time.sleep(1.0)
        callgrind_control("--zero", str(proc.pid))
        callgrind_control("--instr=on", str(proc.pid))
        send_all(port, measured)
        time.sleep(1.0)  # the audit writer's and indexer's share of these requests
        callgrind_control("--instr=off", str(proc.pid))
        callgrind_control("--dump=measured", str(proc.pid))
        time.sleep(0.5)
    finally:
        bench.stop(proc)
    dumps = [f for f in glob.glob(out + "*") if os.path.getsize(f) > 0]
    total = 0
    rows = []
    for f in sorted(dumps):
        ir, name = 0, "?"
        with open(f, errors="replace") as fh:
            for line in fh:
                if line.startswith("totals:") or line.startswith("summary:"):
                    ir = max(ir, int(line.split()[1]))
                elif line.startswith("part:") and "measured" not in line:
                    pass
        m = re.search(r"-(\d+)$", f)
        tid = m.group(1) if m else f
        rows.append((ir, tid, f))
        total += ir
    # thread names, from the measured dumps' "cmd:"/"desc:" lines are not per-thread; use /proc
    print(f"{args.op}: {total / args.requests:,.0f} instructions per request "
          f"({args.requests} requests, {args.secrets} secrets x {args.versions} versions)")
    for ir, tid, f in sorted(rows, reverse=True):
        if ir:
            print(f"  thread file {os.path.basename(f)}: {ir / args.requests:,.0f} per request")
    if args.annotate:
        for ir, tid, f in sorted(rows, reverse=True)[:3]:
            if not ir:
                continue
            r = subprocess.run(["callgrind_annotate", "--inclusive=yes", f"--threshold=100", f],
                               capture_output=True, text=True)
            lines = [l for l in r.stdout.splitlines() if re.match(r"^\s*[\d,]+ \(", l)]
            print(f"\n-- {os.path.basename(f)}: top {args.annotate} inclusive")
            for l in lines[:args.annotate]:
                n = int(l.split()[0].replace(",", ""))
                fn = l.split(")", 1)[1].strip()[:150]
                print(f"{n / args.requests:>12,.0f}  {fn}")
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        for f in dumps:
            shutil.copy(f, args.keep)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
