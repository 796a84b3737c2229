#!/usr/bin/env python3
"""Replication benchmark (run by scripts/bench-replication.sh; not a test).

Modes (--modes, default all):
  same    PutSecretValue on secrets with 0, 1 and 2 replica regions served by the same server
          (written in the primary's transaction): wrk, pre-signed requests (each its own
          ClientRequestToken, each sent once), interleaved runs; requests/s, p50/p99, server CPU
          per request, and the time per write relative to no replica (at saturation: the
          server's CPU per write); then each group paced at --paced-rate writes/s (the time a
          client waits for each write's answer below saturation).
  lag     Peer replication lag: a primary (us-east-1) and its TLS peer (eu-west-1) on loopback;
          --rate PutSecretValue/s (default 500) paced for --lag-duration s over --lag-secrets
          replicated secrets; every --probe-every'th write is followed on the peer
          (GetSecretValue of its VersionId, polled every 10 ms) from the primary's answer until
          the peer serves it. Prints the lag's p50/p99/max, the rate reached and the
          primary's strongroom_replication_lag_seconds gauge's max.
  burst   Delivery throughput: --burst-secrets writes (one per replicated secret) sent as fast
          as possible; deliveries/s = writes / (time until the primary's outbox is empty).
  dead    PutSecretValue on the primary with no peer, with a healthy TLS peer, with a dead peer
          (connection refused) and with a slow peer (accepts, never answers), the secrets
          replicated to it: wrk, interleaved runs (throughput and CPU per write at
          saturation); then the same primaries paced at --paced-rate writes/s (the latency of
          each write below saturation: whether a write waits on the peer). The healthy peer is
          the baseline for what a peer's failure costs; no peer, for what replication costs.

Every request is signed as the bootstrap root (no policy evaluation beyond root's); the servers
run on embedded SQLite, each in a data directory of its own. The machine is shared and noisy:
the load average is printed at the start and end.
"""

import argparse
import json
import os
import queue
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "load"))
import bench as lb  # noqa: E402  (benches/load/bench.py: wrk driver, CPU accounting)

import botocore.auth  # noqa: E402
import botocore.session  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

AKID = lb.AKID
SECRET = lb.SECRET
ACCOUNT = lb.ACCOUNT
PRIMARY = "us-east-1"
LOCAL1, LOCAL2 = "us-west-2", "eu-central-1"
PEER = "eu-west-1"
TLS = os.path.join(ROOT, "tests", "fixtures", "tls")
CA = os.path.join(TLS, "ca.pem")

log = lb.log


def value(i, v):
    return lb.value_of(i, v)


def presign(host, target, body, region, service="secretsmanager"):
    """A complete HTTP/1.1 request (bytes) signed as root for `region`."""
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target, "Host": host}
    req = AWSRequest(method="POST", url=f"http://{host}/", data=data, headers=headers)
    botocore.auth.SigV4Auth(Credentials(AKID, SECRET), service, region).add_auth(req)
    lines = ["POST / HTTP/1.1", f"Host: {host}"]
    for k, v in req.headers.items():
        if k.lower() != "host":
            lines.append(f"{k}: {v.decode() if isinstance(v, bytes) else v}")
    lines.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


class Http:
    """One kept-alive connection (plain or TLS) sending raw requests."""

    def __init__(self, port, tls=False):
        self.port, self.tls, self.sock = port, tls, None

    def _connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            ctx = ssl.create_default_context(cafile=CA)
            s = ctx.wrap_socket(s, server_hostname="localhost")
        self.sock, self.buf = s, b""

    def send(self, raw):
        for attempt in range(2):
            try:
                if self.sock is None:
                    self._connect()
                self.sock.sendall(raw)
                return self._read()
            except OSError:
                self.close()
                if attempt:
                    raise
        return None

    def _read(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("closed")
            self.buf += chunk
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        m = re.search(rb"content-length: *(\d+)", head, re.I)
        n = int(m.group(1)) if m else 0
        while len(rest) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("closed")
            rest += chunk
        self.buf = rest[n:]
        return int(head.split(b" ")[1]), rest[:n]

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None


def boto(port, region=PRIMARY, tls=False, pool=16):
    s = botocore.session.get_session()
    return s.create_client(
        "secretsmanager",
        endpoint_url=f"{'https://localhost' if tls else 'http://127.0.0.1'}:{port}",
        region_name=region, aws_access_key_id=AKID, aws_secret_access_key=SECRET,
        verify=CA if tls else None,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=pool),
    )


class Servers:
    """The servers started by this run (stopped at exit)."""

    def __init__(self, args):
        self.args, self.procs = args, []
        self.policies = os.path.join(args.tmp, "no-policies")
        os.makedirs(self.policies, exist_ok=True)

    def start(self, name, regions, peer=None, tls=False, metrics=False, key=None, policies=None):
        data = os.path.join(self.args.tmp, name)
        os.makedirs(data, exist_ok=True)
        port = lb.free_port()
        cmd = [self.args.bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
               "--policies", policies or self.policies, "--regions", ",".join(regions)]
        env = dict(os.environ)
        env.update({"STRONGROOM_ROOT_ACCESS_KEY_ID": AKID, "STRONGROOM_ROOT_SECRET_ACCESS_KEY": SECRET,
                    "STRONGROOM_LOG": "warn", "RUST_LOG": "warn"})
        if tls:
            cmd += ["--tls-cert", os.path.join(TLS, "cert.pem"), "--tls-key", os.path.join(TLS, "key.pem")]
        mport = None
        if metrics:
            mport = lb.free_port()
            cmd += ["--metrics-listen", f"127.0.0.1:{mport}"]
        if peer:
            cmd += ["--peer", f"{PEER}={peer}", "--peer-ca", CA, "--peer-access-key-id", key[0]]
            env["STRONGROOM_PEER_SECRET_ACCESS_KEY"] = key[1]
        logf = open(os.path.join(data, "server.log"), "ab")
        proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, env=env)
        self.procs.append(proc)
        lb.wait_port(port, proc)
        return proc, port, mport, data

    def peer(self, name):
        """A TLS peer serving eu-west-1 with the replication principal declared; its key."""
        pol = os.path.join(self.args.tmp, f"{name}-policies")
        users = os.path.join(pol, "accounts", ACCOUNT, "users")
        os.makedirs(users, exist_ok=True)
        with open(os.path.join(pol, "accounts", ACCOUNT, "account.json"), "w") as f:
            json.dump({"AccountId": ACCOUNT}, f)
        with open(os.path.join(users, "replicator.json"), "w") as f:
            json.dump({"UserName": "replicator", "InlinePolicies": {"apply": {
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": "strongroom:ApplyReplicaChange", "Resource": "*"}]}}}, f)
        proc, port, _, data = self.start(name, [PEER], tls=True, policies=pol)
        out = subprocess.run([self.args.bin, "access-key", "create", "--data-dir", data,
                              "--policies", pol, "--account", ACCOUNT, "--user", "replicator"],
                             capture_output=True, text=True, check=True).stdout
        k = json.loads(out)
        return proc, port, (k["AccessKeyId"], k["SecretAccessKey"])

    def stop_all(self):
        for p in self.procs:
            lb.stop(p)


def metric(mport, name):
    try:
        with socket.create_connection(("127.0.0.1", mport), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                c = s.recv(65536)
                if not c:
                    break
                data += c
    except OSError:
        return None
    m = re.search(rf'^{name}{{peer="{PEER}"}} (\S+)$'.encode(), data, re.M)
    return float(m.group(1)) if m else None


def wait_drained(mport, timeout=600, poll=0.05):
    """Seconds until the primary's outbox for the peer is empty."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if metric(mport, "strongroom_replication_outbox_depth") == 0.0:
            return time.time() - t0
        time.sleep(poll)
    raise SystemExit("the outbox did not drain")


def create_many(port, names, regions, threads=8):
    c = boto(port, pool=threads)

    def one(i_name):
        i, name = i_name
        kw = {"AddReplicaRegions": [{"Region": r} for r in regions]} if regions else {}
        c.create_secret(Name=name, SecretString=value(i, 1), **kw)

    with ThreadPoolExecutor(threads) as ex:
        for f in [ex.submit(one, x) for x in enumerate(names)]:
            f.result()


def puts(port, names, n, seed_tag):
    """`n` pre-signed PutSecretValue requests round-robin over `names` (tokens returned too)."""
    host = f"127.0.0.1:{port}"
    reqs, tokens = [], []
    for k in range(n):
        i = k % len(names)
        tok = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed_tag}/{k}"))
        tokens.append((names[i], tok))
        reqs.append(presign(host, "secretsmanager.PutSecretValue",
                            {"SecretId": names[i], "SecretString": value(i, 1000 + k),
                             "ClientRequestToken": tok}, PRIMARY))
    return reqs, tokens


def paced(port, reqs, rate, workers=8, on_ack=None):
    """Send `reqs` at `rate` per second (request k due at start + k / rate) over `workers`
    kept-alive connections. Returns (latencies in s, lateness of each answer in s, errors, wall
    s); `on_ack(k, acked_at)` is called for each 200."""
    lat, late, errors = [], [], []
    period = 1.0 / rate
    start = time.time() + 0.5

    def writer(w):
        c = Http(port)
        for k in range(w, len(reqs), workers):
            due = start + k * period
            d = due - time.time()
            if d > 0:
                time.sleep(d)
            sent = time.time()
            st, body = c.send(reqs[k])
            acked = time.time()
            if st != 200:
                errors.append((st, body[:200]))
                continue
            lat.append(acked - sent)
            late.append(acked - due)
            if on_ack:
                on_ack(k, acked)
        c.close()

    with ThreadPoolExecutor(workers) as ex:
        for f in [ex.submit(writer, w) for w in range(workers)]:
            f.result()
    return lat, late, errors, time.time() - start


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


def wrk_run(args, port, pid, reqs, name):
    lua = os.path.join(args.tmp, f"{name}.lua")
    lb.write_lua(lua, reqs, ordered=True)
    status, body = lb.check_one(port, reqs[-1])
    if status != 200:
        raise SystemExit(f"{name}: {status} {body[:300]!r}")
    ns = argparse.Namespace(threads=2, connections=args.connections)
    r = lb.wrk(port, lua, ns, args.duration, rss_pid=pid)
    os.unlink(lua)
    if r["requests"] > len(reqs):
        log(f"{name}: WARNING {r['requests']} requests replayed {len(reqs)} distinct ones")
    cpu_us = 1e6 * r["cpu"] * args.duration / r["requests"] if r["requests"] and r["cpu"] else float("nan")
    threads = ", ".join(f"{g} {us:.0f}" for g, us in sorted(r["threads"].items(), key=lambda x: -x[1]))
    log(f"{name}: {r['rps']:.0f} req/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, "
        f"non-2xx {r['non2xx']}, server CPU {cpu_us:.0f} µs/request ({threads})")
    return {"rps": r["rps"], "p50": r["p50"], "p99": r["p99"], "non2xx": r["non2xx"], "cpu_us": cpu_us,
            "threads_us": r["threads"]}


def interleaved(args, targets, settle=None):
    """targets: [(label, port, pid, names)]; runs each in turn, --pairs times; medians.
    `settle[label]`, if given, runs after each of that label's runs (before the next target's:
    a healthy peer's deliveries must not run into the next row's measurement)."""
    runs = {t[0]: [] for t in targets}
    n = args.put_distinct
    for p in range(args.pairs):
        for label, port, pid, names in targets:
            reqs, _ = puts(port, names, n, f"{label}/{p}/{time.time()}")
            runs[label].append(wrk_run(args, port, pid, reqs, f"{label} #{p + 1}"))
            if settle and label in settle:
                settle[label]()
    out = {}
    for label, rs in runs.items():
        med = sorted(rs, key=lambda r: r["rps"])[len(rs) // 2]
        out[label] = dict(med, runs=[round(r["rps"]) for r in rs],
                          cpu_us_median=statistics.median(r["cpu_us"] for r in rs))
    return out


# ------------------------------------------------------------------------------ modes


def mode_same(args, servers):
    log("same-server replicas: starting a server for us-east-1, us-west-2, eu-central-1")
    proc, port, _, _ = servers.start("same", [PRIMARY, LOCAL1, LOCAL2])
    groups = {0: [], 1: [LOCAL1], 2: [LOCAL1, LOCAL2]}
    targets = []
    for k, regions in groups.items():
        names = [f"same/r{k}/s-{i:05d}" for i in range(args.secrets)]
        create_many(port, names, regions)
        targets.append((f"PutSecretValue, {k} replica region(s)", port, proc.pid, names))
    log(f"same-server replicas: {args.secrets} secrets per group created")
    res = interleaved(args, targets)
    res["paced"] = paced_runs(args, [(label, port, names) for label, port, _, names in targets])
    lb.stop(proc)
    return res


def paced_runs(args, targets, settle=None):
    """Each (label, port, names) target paced at --paced-rate PutSecretValue/s for --duration
    seconds, interleaved, --pairs rounds: the time each write waited for its answer, below
    the rate at which the server saturates (where wrk's runs measure CPU per write)."""
    settle = settle or {}
    runs = {label: [] for label, _, _ in targets}
    n = int(args.paced_rate * args.duration)
    for p in range(args.pairs):
        for label, port, names in targets:
            reqs, _ = puts(port, names, n, f"paced/{label}/{p}/{time.time()}")
            lat, late, errors, wall = paced(port, reqs, args.paced_rate)
            if errors:
                raise SystemExit(f"{label}, paced: {errors[:3]}")
            r = {"p50": 1000 * pct(lat, 0.5), "p99": 1000 * pct(lat, 0.99), "max": 1000 * max(lat),
                 "late_p99": 1000 * pct(late, 0.99), "rate": n / wall}
            log(f"{label}, paced {args.paced_rate:.0f}/s #{p + 1}: {r['rate']:.0f}/s, latency p50 "
                f"{r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, max {r['max']:.1f} ms")
            runs[label].append(r)
            if label in settle:
                settle[label]()
    return {label: {k: statistics.median(r[k] for r in rs) for k in rs[0]} | {
        "p99_runs": [round(r["p99"], 2) for r in rs]} for label, rs in runs.items()}


def mode_dead(args, servers):
    log("dead/slow peer: four primaries (no peer; healthy peer; dead peer; slow peer)")
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(1024)  # accepted by the kernel, never answered
    dead_port = lb.free_port()
    fake_key = ("AKIAFAKEPEER00000001", "fake/secret/for/a/peer/that/never/answers")
    none_p, none_port, _, _ = servers.start("nopeer", [PRIMARY])
    peer_p, _, ok_p, ok_port, ok_m = peer_pair(args, servers, "okpeer")
    dead_p, dead_port_s, dead_m, _ = servers.start(
        "deadpeer", [PRIMARY], peer=f"https://localhost:{dead_port}", metrics=True, key=fake_key)
    slow_p, slow_port_s, slow_m, _ = servers.start(
        "slowpeer", [PRIMARY], peer=f"https://localhost:{blackhole.getsockname()[1]}", metrics=True,
        key=fake_key)
    names = [f"dead/s-{i:05d}" for i in range(args.secrets)]
    create_many(none_port, names, [])
    create_many(ok_port, names, [PEER])
    wait_drained(ok_m)
    settle = {"PutSecretValue, replicated to a healthy peer": lambda: log(
        f"healthy peer: outbox drained {wait_drained(ok_m):.1f} s after the run")}
    create_many(dead_port_s, names, [PEER])
    create_many(slow_port_s, names, [PEER])
    res = interleaved(args, [
        ("PutSecretValue, no peer", none_port, none_p.pid, names),
        ("PutSecretValue, replicated to a healthy peer", ok_port, ok_p.pid, names),
        ("PutSecretValue, replicated to a dead peer", dead_port_s, dead_p.pid, names),
        ("PutSecretValue, replicated to a slow peer", slow_port_s, slow_p.pid, names),
    ], settle=settle)
    # The same primaries at a paced rate below what they can take: a write that waited on the
    # peer would show here as latency, where the wrk runs above show CPU per write.
    res["paced"] = paced_runs(args, [
        ("PutSecretValue, no peer", none_port, names),
        ("PutSecretValue, replicated to a healthy peer", ok_port, names),
        ("PutSecretValue, replicated to a dead peer", dead_port_s, names),
        ("PutSecretValue, replicated to a slow peer", slow_port_s, names),
    ], settle)
    res["outbox_depth_after"] = {
        "healthy": metric(ok_m, "strongroom_replication_outbox_depth"),
        "dead": metric(dead_m, "strongroom_replication_outbox_depth"),
        "slow": metric(slow_m, "strongroom_replication_outbox_depth"),
    }
    for p in (none_p, ok_p, peer_p, dead_p, slow_p):
        lb.stop(p)
    blackhole.close()
    return res


def peer_pair(args, servers, tag):
    peer_p, peer_port, key = servers.peer(f"{tag}-peer")
    prim_p, prim_port, mport, _ = servers.start(
        f"{tag}-primary", [PRIMARY], peer=f"https://localhost:{peer_port}", metrics=True, key=key)
    return peer_p, peer_port, prim_p, prim_port, mport


def mode_burst(args, servers):
    log(f"burst: primary and TLS peer; {args.burst_secrets} replicated secrets")
    peer_p, peer_port, prim_p, prim_port, mport = peer_pair(args, servers, "burst")
    names = [f"burst/s-{i:05d}" for i in range(args.burst_secrets)]
    t0 = time.time()
    create_many(prim_port, names, [PEER])
    created = time.time() - t0
    drained = wait_drained(mport) + created
    log(f"burst: {len(names)} creates in {created:.1f} s; all replicas created on the peer "
        f"{drained:.1f} s after the first create ({len(names) / drained:.0f} deliveries/s)")
    reqs, _ = puts(prim_port, names, len(names), f"burst/{time.time()}")
    conns = [Http(prim_port) for _ in range(8)]
    t0 = time.time()

    def send(k):
        for j in range(k, len(reqs), 8):
            st, body = conns[k].send(reqs[j])
            if st != 200:
                raise SystemExit(f"burst put: {st} {body[:200]!r}")

    with ThreadPoolExecutor(8) as ex:
        for f in [ex.submit(send, k) for k in range(8)]:
            f.result()
    written = time.time() - t0
    drained_p = wait_drained(mport) + written
    log(f"burst: {len(reqs)} puts in {written:.1f} s; delivered {drained_p:.1f} s after the first "
        f"({len(reqs) / drained_p:.0f} deliveries/s)")
    for p in (prim_p, peer_p):
        lb.stop(p)
    return {"creates": len(names), "create_s": created, "create_delivered_s": drained,
            "create_deliveries_per_s": len(names) / drained,
            "puts": len(reqs), "put_s": written, "put_delivered_s": drained_p,
            "put_deliveries_per_s": len(reqs) / drained_p}


def mode_lag(args, servers):
    log(f"lag: primary and TLS peer; {args.lag_secrets} replicated secrets; "
        f"{args.rate} PutSecretValue/s for {args.lag_duration} s")
    peer_p, peer_port, prim_p, prim_port, mport = peer_pair(args, servers, "lag")
    names = [f"lag/s-{i:05d}" for i in range(args.lag_secrets)]
    create_many(prim_port, names, [PEER])
    wait_drained(mport)
    n = int(args.rate * args.lag_duration)
    reqs, tokens = puts(prim_port, names, n, f"lag/{time.time()}")
    peer_host = f"localhost:{peer_port}"
    probes = {}
    for k in range(0, n, args.probe_every):
        name, tok = tokens[k]
        probes[k] = presign(peer_host, "secretsmanager.GetSecretValue",
                            {"SecretId": name, "VersionId": tok}, PEER)
    pending = queue.Queue()
    lags, errors = [], []
    stop_probing = threading.Event()

    def on_ack(k, acked):
        if k in probes:
            pending.put((acked, acked, k))

    def prober():
        c = Http(peer_port, tls=True)
        while not (stop_probing.is_set() and pending.empty()):
            try:
                acked, next_at, k = pending.get(timeout=0.1)
            except queue.Empty:
                continue
            d = next_at - time.time()
            if d > 0:
                time.sleep(d)
            st, _ = c.send(probes[k])
            now = time.time()
            if st == 200:
                lags.append(now - acked)
            elif now - acked > 60:
                errors.append(("probe timed out", k))
            else:
                pending.put((acked, now + 0.01, k))
        c.close()

    gauge = []

    def sampler():
        while not stop_probing.is_set():
            v = metric(mport, "strongroom_replication_lag_seconds")
            d = metric(mport, "strongroom_replication_outbox_depth")
            gauge.append((v, d))
            time.sleep(0.25)

    probers = [threading.Thread(target=prober) for _ in range(3)]
    samp = threading.Thread(target=sampler)
    for t in probers + [samp]:
        t.start()
    cpu0 = {p.pid: lb.cpu_seconds(p.pid) for p in (prim_p, peer_p)}
    _, late, put_errors, wall = paced(prim_port, reqs, args.rate, on_ack=on_ack)
    errors += put_errors
    cpu = {p.pid: (lb.cpu_seconds(p.pid) - cpu0[p.pid]) / wall for p in (prim_p, peer_p)}
    stop_probing.set()
    for t in probers + [samp]:
        t.join()
    drained = wait_drained(mport)
    lags.sort()
    q = lambda p: pct(lags, p)  # noqa: E731
    res = {
        "writes": n, "seconds": wall, "rate": n / wall, "errors": len(errors),
        "probes": len(lags), "lag_p50_ms": 1000 * q(0.50), "lag_p99_ms": 1000 * q(0.99),
        "lag_max_ms": 1000 * (lags[-1] if lags else float("nan")),
        "gauge_max_s": max((g[0] for g in gauge if g[0] is not None), default=None),
        "depth_max": max((g[1] for g in gauge if g[1] is not None), default=None),
        "writes_late_p99_ms": 1000 * pct(late, 0.99) if late else None,
        "primary_cpu": cpu[prim_p.pid], "peer_cpu": cpu[peer_p.pid], "drained_after_s": drained,
    }
    log(f"lag: {n} writes in {wall:.1f} s ({res['rate']:.0f}/s), {len(errors)} errors; "
        f"lag over {len(lags)} probes p50 {res['lag_p50_ms']:.0f} ms, p99 {res['lag_p99_ms']:.0f} ms, "
        f"max {res['lag_max_ms']:.0f} ms; gauge max {res['gauge_max_s']} s, outbox depth max "
        f"{res['depth_max']}; CPU primary {100 * res['primary_cpu']:.0f}%, peer {100 * res['peer_cpu']:.0f}%")
    if errors:
        log(f"lag: first errors: {errors[:3]}")
    for p in (prim_p, peer_p):
        lb.stop(p)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--json")
    ap.add_argument("--modes", default="same,lag,burst,dead")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--pairs", type=int, default=3, help="interleaved rounds of wrk runs")
    ap.add_argument("--secrets", type=int, default=200, help="secrets per group (same, dead)")
    ap.add_argument("--put-distinct", type=int, default=30000, help="pre-signed puts per wrk run")
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--paced-rate", type=float, default=200, help="same, dead: paced PutSecretValue/s")
    ap.add_argument("--lag-duration", type=float, default=20)
    ap.add_argument("--lag-secrets", type=int, default=500)
    ap.add_argument("--probe-every", type=int, default=25)
    ap.add_argument("--burst-secrets", type=int, default=1000)
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    load0 = os.getloadavg()
    servers = Servers(args)
    results = {"load_start": load0, "cpus": os.cpu_count()}
    try:
        for m in modes:
            results[m] = {"same": mode_same, "lag": mode_lag, "burst": mode_burst, "dead": mode_dead}[m](args, servers)
    finally:
        servers.stop_all()
    results["load_end"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    report(args, results)
    return 0


def report(args, r):
    print(f"Replication benchmark; {r['cpus']} CPUs; load average at start "
          f"{r['load_start'][0]:.1f}, at end {r['load_end'][0]:.1f}; SQLite; root caller\n")
    for mode, title, base in (("same", "Same-server replicas (wrk -c%d, %d s runs, median of %d)", 0),
                              ("dead", "Primary with a dead or slow peer (wrk -c%d, %d s runs, median of %d)", 0)):
        if mode not in r:
            continue
        rows = {k: v for k, v in r[mode].items() if isinstance(v, dict) and "rps" in v}
        print("### " + title % (args.connections, args.duration, args.pairs) + "\n")
        healthy = rows.get("PutSecretValue, replicated to a healthy peer")
        extra = " vs healthy peer |" if healthy else ""
        print("| run | requests/s | runs | p50 ms | p99 ms | CPU µs/request | time per write vs first row |"
              + extra)
        print("|---|---:|---|---:|---:|---:|---:|" + ("---:|" if healthy else ""))
        first = None
        for label, v in rows.items():
            first = first or v
            vs = f" {healthy['rps'] / v['rps']:.2f}x |" if healthy else ""
            print(f"| {label} | {v['rps']:.0f} | {', '.join(map(str, v['runs']))} | {v['p50']:.2f} | "
                  f"{v['p99']:.2f} | {v['cpu_us_median']:.0f} | {first['rps'] / v['rps']:.2f}x |" + vs)
        if mode == "dead":
            print(f"\noutbox depth after the runs: {r[mode].get('outbox_depth_after')}")
        paced_rows = r[mode].get("paced", {})
        if paced_rows:
            print(f"\nPaced at {args.paced_rate:.0f} PutSecretValue/s ({args.duration} s runs, 8 "
                  f"connections, median of {args.pairs}): the time each write waited for its answer\n")
            print("| run | writes/s | latency p50 ms | p50 vs first row | p99 ms | p99 of each run | max ms |")
            print("|---|---:|---:|---:|---:|---|---:|")
            first = None
            for label, v in paced_rows.items():
                first = first or v
                print(f"| {label} | {v['rate']:.0f} | {v['p50']:.2f} | {v['p50'] / first['p50']:.2f}x | "
                      f"{v['p99']:.2f} | {', '.join(map(str, v['p99_runs']))} | {v['max']:.1f} |")
        print()
    if "lag" in r:
        v = r["lag"]
        print(f"### Peer replication lag at {args.rate:.0f} PutSecretValue/s over TLS loopback\n")
        print(f"{v['writes']} writes in {v['seconds']:.1f} s ({v['rate']:.0f}/s, {v['errors']} errors); "
              f"lag (primary's answer to the peer serving the version) over {v['probes']} probes: "
              f"p50 {v['lag_p50_ms']:.0f} ms, p99 {v['lag_p99_ms']:.0f} ms, max {v['lag_max_ms']:.0f} ms; "
              f"strongroom_replication_lag_seconds max {v['gauge_max_s']}, outbox depth max {v['depth_max']}; "
              f"CPU: primary {100 * v['primary_cpu']:.0f}%, peer {100 * v['peer_cpu']:.0f}%\n")
    if "burst" in r:
        v = r["burst"]
        print("### Delivery throughput (burst)\n")
        print(f"{v['creates']} replicated creates: {v['create_deliveries_per_s']:.0f} deliveries/s; "
              f"{v['puts']} puts (one per secret) in {v['put_s']:.1f} s, delivered after "
              f"{v['put_delivered_s']:.1f} s: {v['put_deliveries_per_s']:.0f} deliveries/s\n")


if __name__ == "__main__":
    sys.exit(main())
