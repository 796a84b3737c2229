#!/usr/bin/env python3
"""Crash-safety test: concurrent writers, SIGKILL at random moments, restart, check.

One run = N cycles against one data directory (embedded SQLite, or PostgreSQL with
--database-url). Each cycle:

  1. start `strongroom serve` on the same data (and database);
  2. resolve the writes whose outcome is unknown (a request in flight when the server died):
     the secret must be exactly in the state before or exactly in the state after that write;
  3. check every secret against the model built from acknowledged writes (below);
  4. check that the audit log holds a record for every request that got a response so far;
  5. start W writer threads (boto3, root key), each owning its secrets and doing
     CreateSecret / PutSecretValue (default, custom and AWSCURRENT stages) /
     UpdateSecretVersionStage (move AWSCURRENT, move or remove custom labels) and logging
     what the server acknowledged;
  6. after a random delay, SIGKILL the server; the writers stop at their first error;
  7. with the server down, `strongroom audit verify` must succeed on the crashed data.

After the last cycle the server is restarted once more and everything is checked, every value
of every version included.

The check of a secret (via the API only):
  - ListSecretVersionIds(IncludeDeprecated) lists exactly the acknowledged versions, and
    each staging label is on exactly the version the model says (so never on two versions);
  - DescribeSecret's VersionIdsToStages agrees with it;
  - GetSecretValue(VersionId) of each checked version answers the exact acknowledged value
    (no version without its data). Per cycle: versions written in the last cycle, labelled
    versions, and a random sample of older ones; at the end: all of them.

Every response carries x-amzn-RequestId; the audit check reads the audit_events table
(sqlite3 module on the chain file `strongroom.db-audit` for SQLite, psql for PostgreSQL),
always after the store was opened again (a restart, or `audit verify`), and requires the request id of every answered
request (successes and 4xx errors; a 5xx may be the audit write itself failing closed).
At the end it also compares, per secret, the versions in the store with the successful
CreateSecret/PutSecretValue audit records: a write's record commits in the write's own
transaction, so even a write that was in flight at a kill (never answered) cannot be durable
without its record (on SQLite: with the change in the main file and the record in the chain
file, the write transaction also keeps a copy of the record in the main file, which the next
open appends to the chain if the chain file's commit did not happen); one that is fails the run (--lenient-audit only reports it as a NOTE).

Test of the test: --inject-fault (SQLite) damages the stored data after the second kill (drops
an acknowledged version, its ciphertext, moves AWSCURRENT, or deletes an audit record); each
must make the run fail.

Exit status 0 when every check passed; the last line is a one-line summary.
"""

import argparse
import copy
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.exceptions
from botocore.config import Config

ROOT_AKID = "AKIACRASHROOT0000001"
ROOT_SECRET = "crash/secret/key/for/tests/only/00000000"
REGION = "us-east-1"
CUSTOM = ["L1", "L2", "L3"]


def log(msg):
    print(f"[crash {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Failure(Exception):
    pass


# ------------------------------------------------------------------------------------ model


class Secret:
    """What the acknowledged writes say a secret holds."""

    def __init__(self, name):
        self.name = name
        self.exists = False
        self.versions = {}  # version id -> ("s", str) | ("b", bytes)
        self.labels = {}  # label -> version id
        self.new_versions = set()  # written since the last full check

    def clone(self):
        return copy.deepcopy(self)

    def attach(self, label, vid):
        prev = self.labels.get(label)
        self.labels[label] = vid
        if label == "AWSCURRENT" and prev is not None and prev != vid:
            self.labels["AWSPREVIOUS"] = prev

    def add_version(self, vid, value, stages):
        first = "AWSCURRENT" not in self.labels
        self.versions[vid] = value
        self.new_versions.add(vid)
        for s in stages:
            if s != "AWSCURRENT":
                self.attach(s, vid)
        if first or "AWSCURRENT" in stages:
            # A new version taking AWSCURRENT from one that also held AWSPENDING leaves that
            # one AWSPREVIOUS only (AWS's PutSecretValue; not UpdateSecretVersionStage).
            old = self.labels.get("AWSCURRENT")
            if old is not None and old != vid and self.labels.get("AWSPENDING") == old:
                del self.labels["AWSPENDING"]
            self.attach("AWSCURRENT", vid)

    def stages_of(self, vid):
        return sorted(label for label, v in self.labels.items() if v == vid)


# ---------------------------------------------------------------------------------- clients


class Acks:
    """Request ids of every answered request (thread-safe). 5xx answers are left out: an
    `InternalServiceError` may be the audit write itself failing (the server fails closed)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ids = []
        self.server_errors = 0

    def hook(self, http_response=None, parsed=None, **_):
        rid = None
        status = getattr(http_response, "status_code", 0) or 0
        if http_response is not None:
            rid = http_response.headers.get("x-amzn-RequestId") or http_response.headers.get(
                "x-amzn-requestid"
            )
        if not rid and isinstance(parsed, dict):
            rid = parsed.get("ResponseMetadata", {}).get("RequestId")
        with self.lock:
            if status >= 500:
                self.server_errors += 1
            elif rid:
                self.ids.append(rid)

    def snapshot(self):
        with self.lock:
            return list(self.ids)


_SESSION = None


def make_client(port, acks, pool=4, attempts=1):
    """A client on the fixed port. Made once per role and reused across restarts (urllib3
    drops pooled connections the dead server closed); one session, created in the main thread.
    Writers never retry (`attempts=1`): a retried write would blur what was acknowledged."""
    global _SESSION
    if _SESSION is None:
        _SESSION = boto3.session.Session()
    cfg = Config(
        retries={"max_attempts": attempts, "mode": "standard"},
        connect_timeout=3,
        read_timeout=30,
        max_pool_connections=pool,
    )
    c = _SESSION.client(
        "secretsmanager",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name=REGION,
        aws_access_key_id=ROOT_AKID,
        aws_secret_access_key=ROOT_SECRET,
        config=cfg,
    )
    c.meta.events.register("after-call.secretsmanager", acks.hook)
    return c


def error_code(e):
    if isinstance(e, botocore.exceptions.ClientError):
        return e.response.get("Error", {}).get("Code", "?")
    return type(e).__name__


# ----------------------------------------------------------------------------------- server


class Server:
    def __init__(self, args, port):
        self.args = args
        self.port = port
        self.proc = None
        self.log_path = os.path.join(args.data_dir, "server.log")

    def start(self):
        env = dict(os.environ)
        env["STRONGROOM_ROOT_ACCESS_KEY_ID"] = ROOT_AKID
        env["STRONGROOM_ROOT_SECRET_ACCESS_KEY"] = ROOT_SECRET
        env.setdefault("STRONGROOM_LOG", "warn")
        cmd = [self.args.bin, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.args.data_dir]
        if self.args.database_url:
            cmd += ["--database-url", self.args.database_url]
        logf = open(self.log_path, "ab")
        logf.write(f"\n===== start {time.time():.3f}\n".encode())
        logf.flush()
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, env=env)
        logf.close()
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise Failure(f"server exited with {self.proc.returncode} on start; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise Failure("server did not accept connections within 60 s")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait()
        self.proc = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# ---------------------------------------------------------------------------------- writers


class Writer(threading.Thread):
    def __init__(self, wid, secrets, client, rng, stop, stats):
        super().__init__(daemon=True)
        self.wid = wid
        self.secrets = secrets  # list of Secret owned by this writer
        self.client = client
        self.rng = rng
        self.stop_ev = stop
        self.stats = stats
        self.pending = None  # (secret index, pre, post, description)
        self.errors = []  # API errors while the server was up

    def value(self, sec, vid):
        n = self.rng.randint(32, 600)
        if self.rng.random() < 0.25:
            return ("b", os.urandom(n))
        body = "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 {}:\",") for _ in range(n))
        return ("s", f"{sec.name}|{vid}|{body}")

    def send_value(self, kw, value):
        if value[0] == "s":
            kw["SecretString"] = value[1]
        else:
            kw["SecretBinary"] = value[1]

    def plan(self):
        """Choose the next write: (secret index, post state, callable, description)."""
        rng = self.rng
        live = [i for i, s in enumerate(self.secrets) if s.exists]
        todo = [i for i, s in enumerate(self.secrets) if not s.exists]
        if todo and (not live or rng.random() < 0.25):
            i = todo[0]
            sec = self.secrets[i]
            vid = f"{rng.getrandbits(128):032x}-create"
            val = self.value(sec, vid)
            post = sec.clone()
            post.exists = True
            post.add_version(vid, val, ["AWSCURRENT"])
            kw = {"Name": sec.name, "ClientRequestToken": vid}
            self.send_value(kw, val)
            return i, post, ("create_secret", kw), f"CreateSecret {sec.name} {vid}"
        i = rng.choice(live)
        sec = self.secrets[i]
        post = sec.clone()
        r = rng.random()
        if r < 0.6:
            vid = f"{rng.getrandbits(128):032x}-put"
            val = self.value(sec, vid)
            kw = {"SecretId": sec.name, "ClientRequestToken": vid}
            self.send_value(kw, val)
            stages = ["AWSCURRENT"]
            if rng.random() < 0.35:
                stages = rng.choice([["AWSPENDING"], [rng.choice(CUSTOM)], ["AWSCURRENT", rng.choice(CUSTOM)]])
                kw["VersionStages"] = stages
            post.add_version(vid, val, stages)
            return i, post, ("put_secret_value", kw), f"PutSecretValue {sec.name} {vid} {stages}"
        vids = sorted(sec.versions)
        if r < 0.8:
            label = "AWSCURRENT"
        else:
            label = rng.choice(CUSTOM + ["AWSPENDING"])
        holder = sec.labels.get(label)
        if label != "AWSCURRENT" and holder is not None and rng.random() < 0.4:
            kw = {"SecretId": sec.name, "VersionStage": label, "RemoveFromVersionId": holder}
            del post.labels[label]
            return i, post, ("update_secret_version_stage", kw), f"remove {label} from {holder}"
        to = rng.choice(vids)
        kw = {"SecretId": sec.name, "VersionStage": label, "MoveToVersionId": to}
        if holder is not None:
            kw["RemoveFromVersionId"] = holder
        post.attach(label, to)
        return i, post, ("update_secret_version_stage", kw), f"move {label} {holder} -> {to}"

    def run(self):
        client = self.client
        while not self.stop_ev.is_set():
            i, post, (op, kw), desc = self.plan()
            pre = self.secrets[i]
            try:
                resp = getattr(client, op)(**kw)
            except Exception as e:  # noqa: BLE001 - any failure: outcome unknown
                self.pending = (i, pre, post, desc, error_code(e))
                return
            # Cross-check the model against what the server says about the new version.
            if op in ("create_secret", "put_secret_value") and "VersionStages" in resp:
                want = post.stages_of(resp["VersionId"])
                if sorted(resp["VersionStages"]) != want:
                    self.errors.append(f"{desc}: server says stages {resp['VersionStages']}, model {want}")
            self.secrets[i] = post
            with self.stats["lock"]:
                self.stats["acked"][op] = self.stats["acked"].get(op, 0) + 1


# ---------------------------------------------------------------------------------- checker


def paged_versions(client, name):
    out = []
    kw = {"SecretId": name, "IncludeDeprecated": True, "MaxResults": 100}
    while True:
        r = client.list_secret_version_ids(**kw)
        out.extend(r.get("Versions", []))
        if not r.get("NextToken"):
            return out
        kw["NextToken"] = r["NextToken"]


def secret_exists(client, name):
    try:
        client.describe_secret(SecretId=name)
        return True
    except botocore.exceptions.ClientError as e:
        if error_code(e) == "ResourceNotFoundException":
            return False
        raise


def check_secret(client, model, value_ids):
    """Problems (list of strings) between the server and the model `model`."""
    name = model.name
    problems = []
    if not model.exists:
        if secret_exists(client, name):
            problems.append(f"{name}: exists but no create was acknowledged")
        return problems
    try:
        desc = client.describe_secret(SecretId=name)
    except botocore.exceptions.ClientError as e:
        return [f"{name}: DescribeSecret failed: {error_code(e)}"]
    versions = paged_versions(client, name)
    listed = {v["VersionId"]: sorted(v.get("VersionStages", [])) for v in versions}
    if len(listed) != len(versions):
        problems.append(f"{name}: a version id is listed twice")
    # Labels: each on exactly one version, as the model says.
    seen = {}
    for vid, stages in listed.items():
        for s in stages:
            if s in seen:
                problems.append(f"{name}: label {s} on two versions ({seen[s]}, {vid})")
            seen[s] = vid
    if seen != model.labels:
        problems.append(f"{name}: labels {seen} != acknowledged {model.labels}")
    d_map = {k: sorted(v) for k, v in desc.get("VersionIdsToStages", {}).items()}
    l_map = {k: v for k, v in listed.items() if v}
    if d_map != l_map:
        problems.append(f"{name}: DescribeSecret stages {d_map} != ListSecretVersionIds {l_map}")
    missing = set(model.versions) - set(listed)
    extra = set(listed) - set(model.versions)
    if missing:
        problems.append(f"{name}: acknowledged versions lost: {sorted(missing)}")
    if extra:
        problems.append(f"{name}: versions never acknowledged: {sorted(extra)}")
    # Values (every listed version must have its data).
    for vid in sorted(set(value_ids) | extra):
        if vid not in listed:
            continue
        try:
            r = client.get_secret_value(SecretId=name, VersionId=vid)
        except botocore.exceptions.ClientError as e:
            problems.append(f"{name}: version {vid} has no readable data: {error_code(e)}")
            continue
        if sorted(r.get("VersionStages", [])) != listed[vid]:
            problems.append(f"{name}: {vid} GetSecretValue stages {r.get('VersionStages')} != {listed[vid]}")
        want = model.versions.get(vid)
        if want is None:
            continue
        if want[0] == "s":
            got = ("s", r.get("SecretString"))
        else:
            got = ("b", r.get("SecretBinary"))
        if got != want:
            problems.append(f"{name}: version {vid} value differs from the acknowledged one")
    return problems


def values_to_check(model, rng, sample, everything):
    if everything:
        return set(model.versions)
    ids = set(model.new_versions) | set(model.labels.values())
    old = sorted(set(model.versions) - ids)
    ids |= set(rng.sample(old, min(sample, len(old))))
    return ids


# ------------------------------------------------------------------------------------ audit


def chain_file(args):
    """SQLite: the audit chain's own database file."""
    return os.path.join(args.data_dir, "strongroom.db-audit")


def audit_request_ids(args):
    """Every requestID recorded in the audit log."""
    if not args.database_url:
        con = sqlite3.connect(chain_file(args), timeout=30)
        try:
            cols = [r[1] for r in con.execute("PRAGMA table_info(audit_events)")]
            if "request_id" in cols:
                q = "SELECT request_id FROM audit_events"
            else:
                q = "SELECT json_extract(record, '$.requestID') FROM audit_events"
            return {r[0] for r in con.execute(q)}
        finally:
            con.close()
    psql = args.psql

    def run(sql):
        out = subprocess.run(
            [psql, "--no-psqlrc", "-At", "-v", "ON_ERROR_STOP=1", "-d", args.database_url, "-c", sql],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.splitlines()

    cols = run("SELECT column_name FROM information_schema.columns WHERE table_name = 'audit_events'")
    if "request_id" in cols:
        return set(run("SELECT request_id FROM audit_events"))
    return set(run("SELECT (record::json)->>'requestID' FROM audit_events"))


def audit_write_counts(args):
    """Successful CreateSecret / PutSecretValue audit records per secret name."""
    if not args.database_url:
        con = sqlite3.connect(chain_file(args), timeout=30)
        try:
            rows = con.execute(
                "SELECT COALESCE(json_extract(record, '$.requestParameters.secretId'), "
                "json_extract(record, '$.requestParameters.name')), count(*) FROM audit_events "
                "WHERE event_name IN ('CreateSecret', 'PutSecretValue') AND error_code IS NULL GROUP BY 1"
            ).fetchall()
        finally:
            con.close()
        return {name: n for name, n in rows}
    out = subprocess.run(
        [args.psql, "--no-psqlrc", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", args.database_url, "-c",
         "SELECT COALESCE((record::json)->'requestParameters'->>'secretId', "
         "(record::json)->'requestParameters'->>'name'), count(*) FROM audit_events "
         "WHERE event_name IN ('CreateSecret', 'PutSecretValue') AND error_code IS NULL GROUP BY 1"],
        check=True, capture_output=True, text=True,
    ).stdout
    counts = {}
    for line in out.splitlines():
        name, _, n = line.rpartition("\t")
        counts[name] = int(n)
    return counts


def audit_verify(args):
    cmd = [args.bin, "audit", "verify", "--data-dir", args.data_dir]
    if args.database_url:
        cmd += ["--database-url", args.database_url]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise Failure(f"audit verify failed ({r.returncode}): {r.stdout.strip()} {r.stderr.strip()[-2000:]}")
    lines = r.stdout.strip().splitlines()
    return lines[-1] if lines else "audit verify: ok"


def inject_fault(args, owned, acks):
    """Damage the stored data the way a non-durable server could (SQLite only)."""
    if args.database_url:
        raise SystemExit("--inject-fault works on SQLite only")
    con = sqlite3.connect(os.path.join(args.data_dir, "strongroom.db"), isolation_level=None)
    con.execute("PRAGMA foreign_keys = OFF")
    secs = [s for ws in owned for s in ws if len(s.versions) >= 2]
    sec = secs[0]
    sid = con.execute("SELECT secret_id FROM secrets WHERE name = ?", (sec.name,)).fetchone()[0]
    vid = sorted(sec.versions)[0]
    kind = args.inject_fault
    if kind == "lost-version":
        con.execute("DELETE FROM secret_stages WHERE secret_id = ? AND version_id = ?", (sid, vid))
        con.execute("DELETE FROM secret_versions WHERE secret_id = ? AND version_id = ?", (sid, vid))
    elif kind == "lost-data":
        con.execute("UPDATE secret_versions SET ciphertext = NULL, wrapped_dek = NULL WHERE secret_id = ? AND version_id = ?", (sid, vid))
    elif kind == "moved-label":
        cur = sec.labels["AWSCURRENT"]
        other = next(v for v in sorted(sec.versions) if v != cur)
        con.execute("UPDATE secret_stages SET version_id = ? WHERE secret_id = ? AND stage = 'AWSCURRENT'", (other, sid))
    elif kind == "audit-gap":
        acked = acks.snapshot()[len(acks.snapshot()) // 2]
        con.execute("ATTACH DATABASE ? AS auditchain", (chain_file(args),))
        con.execute("DELETE FROM auditchain.audit_events WHERE json_extract(record, '$.requestID') = ?", (acked,))
    con.close()
    log(f"injected fault {kind} into {sec.name}")


# ------------------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--psql", default="psql")
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--secrets-per-writer", type=int, default=4)
    ap.add_argument("--min-run", type=float, default=0.2, help="least seconds of writing before SIGKILL")
    ap.add_argument("--max-run", type=float, default=1.5, help="most seconds of writing before SIGKILL")
    ap.add_argument("--sample", type=int, default=3, help="older versions re-read per secret per cycle")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--label", default="")
    ap.add_argument(
        "--strict-audit",
        action="store_true",
        help="(the default) fail when a write that was not answered became durable without its audit record",
    )
    ap.add_argument(
        "--lenient-audit",
        action="store_true",
        help="only report (NOTE) writes that became durable without their audit record",
    )
    ap.add_argument(
        "--inject-fault",
        choices=["lost-version", "lost-data", "moved-label", "audit-gap"],
        help="test of the test (SQLite only): damage the data after the 2nd kill; the run must FAIL",
    )
    args = ap.parse_args()

    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    backend = "postgresql" if args.database_url else "sqlite"
    label = args.label or backend
    log(f"{label}: seed {seed}, {args.cycles} cycles, {args.writers} writers, data {args.data_dir}")
    os.makedirs(args.data_dir, exist_ok=True)

    acks = Acks()
    prefix = f"crash-{seed:x}"
    owned = [
        [Secret(f"{prefix}/w{w}/s{j}") for j in range(args.secrets_per_writer)] for w in range(args.writers)
    ]
    pending = []  # (writer id, secret index, pre, post, desc, error)
    stats = {"lock": threading.Lock(), "acked": {}}
    resolved = {"before": 0, "after": 0}
    anomalies = []
    port = free_port()
    server = Server(args, port)
    audited_ok = 0
    t_start = time.time()
    # Checks only read: they may retry a transient error (e.g. a slow audit commit under load).
    clients = [make_client(port, acks, attempts=4) for _ in range(4)]
    writer_clients = [make_client(port, acks, pool=2) for _ in range(args.writers)]

    def check_all(client, everything):
        nonlocal audited_ok
        # 1. resolve unknown outcomes
        for wid, i, pre, post, desc, err in pending:
            p_post = check_secret(client, post, values_to_check(post, rng, 0, False))
            if not p_post:
                owned[wid][i] = post
                resolved["after"] += 1
                continue
            p_pre = check_secret(client, pre, values_to_check(pre, rng, 0, False))
            if not p_pre:
                owned[wid][i] = pre
                resolved["before"] += 1
                continue
            raise Failure(
                f"in-flight write ({desc}, client saw {err}) left {pre.name} in neither the state "
                f"before nor after it:\n  vs after: {p_post}\n  vs before: {p_pre}"
            )
        pending.clear()
        # 2. every secret against the acknowledged writes
        models = [(w, i, s) for w, secs in enumerate(owned) for i, s in enumerate(secs)]
        jobs = [(s, values_to_check(s, rng, args.sample, everything)) for _, _, s in models]
        with ThreadPoolExecutor(4) as ex:
            results = list(ex.map(lambda a: check_secret(clients[a[0] % 4], *a[1]), enumerate(jobs)))
        problems = [p for r in results for p in r]
        if problems:
            raise Failure("state after restart differs from the acknowledged writes:\n  " + "\n  ".join(problems[:40]))
        for _, _, s in models:
            s.new_versions.clear()
        # 3. the audit log holds every request that got a response
        wanted = acks.snapshot()
        have = audit_request_ids(args)
        lost = [r for r in wanted if r not in have]
        if lost:
            raise Failure(f"{len(lost)} of {len(wanted)} answered requests have no audit record, e.g. {lost[:5]}")
        audited_ok = len(wanted)

    try:
        for cycle in range(1, args.cycles + 1):
            t0 = time.time()
            server.start()
            t1 = time.time()
            check_all(clients[0], everything=False)
            t2 = time.time()
            # writers
            stop = threading.Event()
            writers = [
                Writer(w, owned[w], writer_clients[w], random.Random(rng.getrandbits(64)), stop, stats)
                for w in range(args.writers)
            ]
            for w in writers:
                w.start()
            delay = rng.uniform(args.min_run, args.max_run)
            time.sleep(delay)
            server.kill()
            stop.set()
            for w in writers:
                w.join(timeout=60)
                if w.is_alive():
                    raise Failure(f"writer {w.wid} still running 60 s after the kill")
                owned[w.wid] = w.secrets
                if w.pending:
                    pending.append((w.wid,) + w.pending)
                anomalies.extend(f"cycle {cycle} writer {w.wid}: {e}" for e in w.errors)
            t3 = time.time()
            if args.inject_fault and cycle == 2:
                inject_fault(args, owned, acks)
            verified = audit_verify(args)
            acked = sum(stats["acked"].values())
            log(
                f"{label} cycle {cycle}/{args.cycles}: start {t1 - t0:.1f}s, check {t2 - t1:.1f}s, "
                f"SIGKILL after {delay:.2f}s of writing, {len(pending)} in flight, "
                f"{acked} writes acknowledged so far; {verified} ({time.time() - t3:.1f}s)"
            )
        # final: restart and check everything
        server.start()
        check_all(clients[0], everything=True)
        server.stop()
        verified = audit_verify(args)
        # Every version in the store was made by one successful CreateSecret/PutSecretValue
        # (tokens are unique): fewer such audit records than versions means a change became
        # durable without its audit record (they commit in one transaction: must not happen).
        counts = audit_write_counts(args)
        unaudited = {
            s.name: len(s.versions) - counts.get(s.name, 0)
            for secs in owned
            for s in secs
            if len(s.versions) > counts.get(s.name, 0)
        }
        if unaudited and not args.lenient_audit:
            raise Failure(f"durable writes without an audit record: {unaudited}")
    except Failure as e:
        server.kill()
        log(f"{label}: FAILED: {e}")
        log(f"{label}: data kept in {args.data_dir} (server log: {server.log_path}); seed {seed}")
        print(f"crash {label}: FAILED")
        return 1
    finally:
        server.kill()

    if anomalies:
        log(f"{label}: {len(anomalies)} model disagreements while the server was up:")
        for a in anomalies[:20]:
            log("  " + a)
        print(f"crash {label}: FAILED")
        return 1
    versions = sum(len(s.versions) for secs in owned for s in secs)
    if unaudited:
        log(
            f"{label}: NOTE {sum(unaudited.values())} versions written by requests that never got an "
            f"answer (in flight at a kill, {resolved['after']} such writes were applied) have no "
            f"CreateSecret/PutSecretValue audit record (--lenient-audit: not a failure)"
        )
    else:
        log(
            f"{label}: every version in the store has its CreateSecret/PutSecretValue audit record "
            f"(including the {resolved['after']} in-flight writes that were applied)"
        )
    log(
        f"{label}: acknowledged writes {json.dumps(stats['acked'], sort_keys=True)}; "
        f"in-flight writes resolved as not applied {resolved['before']}, applied {resolved['after']}; "
        f"{versions} versions all readable; {audited_ok} answered requests all audited "
        f"({acks.server_errors} 5xx answers not counted); {verified}"
    )
    print(f"crash {label}: OK ({args.cycles} SIGKILL cycles in {time.time() - t_start:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
