#!/usr/bin/env python3
"""Rotation under SIGKILL: for each of the four steps (createSecret, setSecret, testSecret,
finishSecret), a rotation is started, the server is killed with SIGKILL while the function is
in that step (the function too, as a machine crash would: it runs in a process group of its
own, which the dead server can no longer stop), and the server is started again on the same
data. The rotation must end, within the lease's expiry plus its retries, either completed
(AWSCURRENT on the rotation's version, whose value the function wrote, AWSPREVIOUS on the old
one, no AWSPENDING) or cleanly failed (AWSCURRENT untouched); AWSCURRENT must be readable at
every moment after the restart; and `strongroom audit verify` must pass on the crashed data.

    python3 tests/crash/rotation_crash.py --bin target/debug/strongroom --data-dir DIR
        [--database-url URL]

The rotation function is tests/fixtures/rotation/rotate.py (standard library only), declared in
a policies directory written under DIR with its execution role; its control file `sleep`
holds the step in which it waits (60 s), so the kill lands inside that step.

With --rotated-pg (an admin conninfo of a database of the test PostgreSQL, scripts/pg.sh: TLS)
the same is done to the built-in PostgreSQL single-user rotator, rotating a real role: the
server is killed with SIGKILL
  - in setSecret while its `ALTER USER ... PASSWORD` waits on a lock this test holds (an open
    transaction that altered the role); the test then rolls back, so the statement commits
    after the server died: the database has the new password and the job does not know it;
  - in testSecret while its login waits in a TCP proxy between it and PostgreSQL (the secret's
    `port` is the proxy's), which holds that connection;
  - in createSecret and finishSecret, which make no database call that could be held, while
    the step waits inside (debug builds only: STRONGROOM_DEBUG_BUILTIN_PAUSE=STEP).
After the restart the rotation must complete or fail cleanly, AWSCURRENT must be readable at
every moment, and AWSCURRENT's password must log in to the database (the old one no longer,
when it completed).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import boto3
import botocore.exceptions
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOT_AKID = "AKIACRASHROT00000001"
ROOT_SECRET = "crash/rotation/root/secret/0000000000000"
REGION = "us-east-1"
ACCOUNT = "000000000000"
FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:crash-rotation"
BUILTIN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:crash-builtin-pg"
BUILTIN_TIMEOUT_S = 10  # the built-in's timeout; the lease is that plus LEASE_GRACE_MS
STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]
TIMEOUT_S = 5  # the function's timeout; the lease is that plus LEASE_GRACE_MS
# The lease's grace beyond the timeout (`--rotation-lease-grace-ms`, default 10 s), short here
# so that each kill's restart takes the job up again soon.
LEASE_GRACE_MS = 2000


class Failure(Exception):
    pass


def log(msg):
    print(f"[rotation-crash {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_policies(policies, control, pg_ca=None):
    os.makedirs(os.path.join(policies, "accounts", ACCOUNT, "roles"), exist_ok=True)
    os.makedirs(os.path.join(policies, "accounts", ACCOUNT, "functions"), exist_ok=True)
    with open(os.path.join(policies, "accounts", ACCOUNT, "account.json"), "w") as f:
        json.dump({"AccountId": ACCOUNT}, f)
    with open(os.path.join(policies, "accounts", ACCOUNT, "roles", "crash-rotator.json"), "w") as f:
        json.dump({
            "RoleName": "crash-rotator",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                 "Action": "sts:AssumeRole"}]},
            "InlinePolicies": {"rotation": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": [
                    "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
                    "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"],
                 "Resource": f"arn:aws:secretsmanager:*:{ACCOUNT}:secret:crash/*"}]}},
        }, f)
    with open(os.path.join(policies, "accounts", ACCOUNT, "functions", "crash-rotation.json"), "w") as f:
        json.dump({
            "FunctionName": "crash-rotation",
            "Role": f"arn:aws:iam::{ACCOUNT}:role/crash-rotator",
            "Kind": "command",
            "Command": [sys.executable, os.path.join(ROOT, "tests", "fixtures", "rotation", "rotate.py")],
            "TimeoutSeconds": TIMEOUT_S,
            "MaxAttempts": 5,
            "RetryDelaySeconds": 1,
            "Environment": {"CONTROL_DIR": control},
        }, f)
    if pg_ca:
        with open(os.path.join(policies, "accounts", ACCOUNT, "functions", "crash-builtin-pg.json"), "w") as f:
            json.dump({
                "FunctionName": "crash-builtin-pg",
                "Role": f"arn:aws:iam::{ACCOUNT}:role/crash-rotator",
                "Kind": "builtin",
                "Builtin": "SecretsManagerRDSPostgreSQLRotationSingleUser",
                "TlsCaFile": pg_ca,
                "TimeoutSeconds": BUILTIN_TIMEOUT_S,
                "MaxAttempts": 5,
                "RetryDelaySeconds": 1,
            }, f)


class Server:
    def __init__(self, args, port, policies):
        self.args, self.port, self.policies = args, port, policies
        self.proc = None
        self.log_path = os.path.join(args.data_dir, "server.log")

    def start(self, extra_env=None):
        env = dict(os.environ)
        env.pop("STRONGROOM_DEBUG_BUILTIN_PAUSE", None)
        env.update(extra_env or {})
        env["STRONGROOM_ROOT_ACCESS_KEY_ID"] = ROOT_AKID
        env["STRONGROOM_ROOT_SECRET_ACCESS_KEY"] = ROOT_SECRET
        env.setdefault("STRONGROOM_LOG", "warn")
        cmd = [self.args.bin, "serve", "--listen", f"127.0.0.1:{self.port}",
               "--data-dir", os.path.join(self.args.data_dir, "data"), "--policies", self.policies,
               "--rotation-lease-grace-ms", str(LEASE_GRACE_MS)]
        if self.args.database_url:
            cmd += ["--database-url", self.args.database_url]
        with open(self.log_path, "ab") as logf:
            logf.write(f"\n===== start {time.time():.3f}\n".encode())
            logf.flush()
            self.proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, env=env)
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


def kill_functions(control):
    """SIGKILL every process whose environment names this run's CONTROL_DIR (the functions
    the killed server started), as a machine crash would end them."""
    marker = f"CONTROL_DIR={control}".encode()
    killed = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    os.kill(int(pid), signal.SIGKILL)
                    killed += 1
        except (OSError, ProcessLookupError):
            pass
    return killed


def client(port):
    return boto3.session.Session().client(
        "secretsmanager", endpoint_url=f"http://127.0.0.1:{port}", region_name=REGION,
        aws_access_key_id=ROOT_AKID, aws_secret_access_key=ROOT_SECRET,
        config=Config(retries={"max_attempts": 1}, connect_timeout=3, read_timeout=30))


def stages(sm, name):
    return sm.describe_secret(SecretId=name).get("VersionIdsToStages", {})


def with_stage(st, label):
    return [v for v, labels in st.items() if label in labels]


def read_log(control):
    try:
        with open(os.path.join(control, "log")) as f:
            return [line.split() for line in f if line.strip()]
    except FileNotFoundError:
        return []


def one_step(args, server, control, step):
    name = f"crash/rotation-{step}-{uuid.uuid4().hex[:6]}"
    sm = client(server.port)
    original = {"username": "app", "password": "original-" + uuid.uuid4().hex}
    first = sm.create_secret(Name=name, SecretString=json.dumps(original))["VersionId"]
    with open(os.path.join(control, "sleep"), "w") as f:
        f.write(step)
    token = str(uuid.uuid4())
    sm.rotate_secret(SecretId=name, ClientRequestToken=token, RotationLambdaARN=FUNCTION,
                     RotationRules={"AutomaticallyAfterDays": 30})
    deadline = time.time() + 60
    while [step, token] not in read_log(control):
        if time.time() > deadline:
            raise Failure(f"{step}: the function never reached the step (log: {read_log(control)})")
        time.sleep(0.05)
    time.sleep(0.2)  # inside the step: the function sleeps there
    server.kill()
    n = kill_functions(control)
    os.remove(os.path.join(control, "sleep"))
    log(f"{step}: SIGKILL of the server (and {n} function process) during {step}; restarting")
    server.start()
    sm = client(server.port)

    # AWSCURRENT is readable at every moment; the rotation ends completed or cleanly failed.
    deadline = time.time() + 120
    while True:
        value = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
        d = sm.describe_secret(SecretId=name)
        st = d.get("VersionIdsToStages", {})
        failed = d.get("StrongroomRotation", {}).get("Status") == "Failed"
        done = "LastRotatedDate" in d and "StrongroomRotation" not in d and not with_stage(st, "AWSPENDING")
        if done or failed:
            break
        if time.time() > deadline:
            raise Failure(f"{step}: the rotation neither completed nor failed within 120 s: "
                          f"{json.dumps(d, default=str)}")
        time.sleep(0.25)
    # The value read in the loop came before the describe that saw the rotation end: the
    # rotation may have finished between the two, so the value is read again.
    value = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    if done:
        if with_stage(st, "AWSCURRENT") != [token]:
            raise Failure(f"{step}: completed but AWSCURRENT is {with_stage(st, 'AWSCURRENT')}, not {token}")
        if with_stage(st, "AWSPREVIOUS") != [first]:
            raise Failure(f"{step}: AWSPREVIOUS is {with_stage(st, 'AWSPREVIOUS')}, not {first}")
        if value["password"] == original["password"] or value["username"] != "app":
            raise Failure(f"{step}: AWSCURRENT's value is not the rotated one")
        with open(os.path.join(control, "db")) as f:
            if f.read() != value["password"]:
                raise Failure(f"{step}: the database does not hold the new AWSCURRENT's password")
        outcome = "completed"
    else:
        if with_stage(st, "AWSCURRENT") != [first] or value != original:
            raise Failure(f"{step}: a failed rotation changed AWSCURRENT")
        outcome = f"failed cleanly ({d['StrongroomRotation'].get('LastError', '')[:120]})"
    log(f"{step}: after the restart the rotation {outcome}; AWSCURRENT readable throughout")
    sm.cancel_rotate_secret(SecretId=name)


# ------------------------------------------------------------ the built-in PostgreSQL rotator


class Proxy:
    """A TCP proxy to PostgreSQL that, once armed with `hold_from=N`, holds the N-th and later
    connections (accepted, never forwarded) until released."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.count = 0
        self.hold_from = None
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, hold_from):
        with self.lock:
            self.count, self.hold_from = 0, hold_from

    def release(self):
        with self.lock:
            self.hold_from = None
            held, self.held = self.held, []
        for c in held:
            c.close()

    def holding(self):
        with self.lock:
            return len(self.held)

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.count += 1
                if self.hold_from is not None and self.count >= self.hold_from:
                    self.held.append(c)
                    continue
            threading.Thread(target=self._forward, args=(c,), daemon=True).start()

    def _forward(self, c):
        try:
            u = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            u.settimeout(None)
        except OSError:
            c.close()
            return

        def pipe(a, b):
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for x in (a, b):
                    try:
                        x.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pipe, args=(u, c), daemon=True).start()
        pipe(c, u)
        c.close()
        u.close()


class RotatedPg:
    """The test PostgreSQL the built-in rotates roles in: admin statements, logins as a role."""

    def __init__(self, args):
        self.psql = args.psql
        self.admin = args.rotated_pg
        self.ca = args.pg_ca
        kv = dict(p.split("=", 1) for p in self.admin.split())
        self.host, self.port, self.db = kv["host"], int(kv["port"]), kv["dbname"]

    def sql(self, sql):
        r = subprocess.run([self.psql, "--no-psqlrc", "-qtA", "-v", "ON_ERROR_STOP=1", self.admin, "-c", sql],
                           capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))
        if r.returncode != 0:
            raise Failure(f"psql: {sql[:80]}: {r.stderr.strip()}")
        return r.stdout.strip()

    def logs_in(self, user, password):
        conninfo = (f"host={self.host} port={self.port} dbname={self.db} user={user} "
                    f"sslmode=verify-full sslrootcert={self.ca} connect_timeout=5")
        r = subprocess.run([self.psql, "--no-psqlrc", "-qtA", conninfo, "-c", "SELECT 1"],
                           capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, PGPASSWORD=password, PGPASSFILE="/nonexistent/pgpass"))
        return r.returncode == 0

    def hold_role(self, role):
        """An open transaction that altered `role`: another ALTER of it waits until released."""
        p = subprocess.Popen([self.psql, "--no-psqlrc", "-qtA", "-v", "ON_ERROR_STOP=1", self.admin],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        p.stdin.write(f"BEGIN;\nALTER ROLE {role} CONNECTION LIMIT 50;\n")
        p.stdin.flush()
        return p

    @staticmethod
    def release_role(p):
        try:
            p.stdin.write("ROLLBACK;\n")
            p.stdin.close()
        except OSError:
            pass
        p.wait(timeout=30)

    def waiting_on_lock(self, role):
        return self.sql("SELECT count(*) FROM pg_stat_activity WHERE usename = '" + role
                        + "' AND wait_event_type = 'Lock'") != "0"


def one_builtin_step(args, server, pg, proxy, step):
    """A built-in PostgreSQL single-user rotation killed inside `step` (see the docstring)."""
    role = f"crash_{step.lower()}_{uuid.uuid4().hex[:6]}"
    p0 = "original-" + uuid.uuid4().hex
    pg.sql(f"CREATE ROLE {role} LOGIN PASSWORD '{p0}'")
    name = f"crash/builtin-{step}-{uuid.uuid4().hex[:6]}"
    server.stop()
    server.start({"STRONGROOM_DEBUG_BUILTIN_PAUSE": step} if step in ("createSecret", "finishSecret") else None)
    sm = client(server.port)
    original = {"engine": "postgres", "host": "127.0.0.1", "port": proxy.port, "username": role,
                "password": p0, "dbname": pg.db}
    first = sm.create_secret(Name=name, SecretString=json.dumps(original))["VersionId"]
    holder = None
    if step == "setSecret":
        holder = pg.hold_role(role)
    elif step == "testSecret":
        # setSecret logs in twice (the pending password, refused; then the current one):
        # testSecret's login is the third connection.
        proxy.arm(3)
    token = str(uuid.uuid4())
    mark = os.path.getsize(server.log_path)
    sm.rotate_secret(SecretId=name, ClientRequestToken=token, RotationLambdaARN=BUILTIN,
                     RotationRules={"AutomaticallyAfterDays": 30})

    def inside():
        if step == "setSecret":
            return pg.waiting_on_lock(role)
        if step == "testSecret":
            return proxy.holding() > 0
        with open(server.log_path, "rb") as f:
            f.seek(mark)
            return f"pausing 60 s in {step}".encode() in f.read()

    deadline = time.time() + 60
    while not inside():
        if time.time() > deadline:
            d = sm.describe_secret(SecretId=name)
            hint = (" (the pause inside it, STRONGROOM_DEBUG_BUILTIN_PAUSE, exists in debug builds only)"
                    if step in ("createSecret", "finishSecret") else "")
            raise Failure(f"builtin {step}: the rotation never waited inside the step{hint}: "
                          f"{json.dumps(d, default=str)}")
        time.sleep(0.05)
    time.sleep(0.2)
    server.kill()
    if holder:
        # The ALTER USER of the dead server commits now: the database has the new password.
        RotatedPg.release_role(holder)
        deadline = time.time() + 10
        while pg.logs_in(role, p0):
            if time.time() > deadline:
                raise Failure("builtin setSecret: the held ALTER USER did not commit after the kill")
            time.sleep(0.2)
        log("builtin setSecret: the held ALTER USER committed after the kill: "
            "the old password no longer logs in, AWSCURRENT still holds it")
    proxy.release()
    log(f"builtin {step}: SIGKILL of the server inside {step}; restarting")
    server.start()
    sm = client(server.port)

    deadline = time.time() + 120
    while True:
        value = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
        d = sm.describe_secret(SecretId=name)
        st = d.get("VersionIdsToStages", {})
        failed = d.get("StrongroomRotation", {}).get("Status") == "Failed"
        done = "LastRotatedDate" in d and "StrongroomRotation" not in d and not with_stage(st, "AWSPENDING")
        if done or failed:
            break
        if time.time() > deadline:
            raise Failure(f"builtin {step}: the rotation neither completed nor failed within 120 s: "
                          f"{json.dumps(d, default=str)}")
        time.sleep(0.25)
    # The value read in the loop came before the describe that saw the rotation end: the
    # rotation may have finished between the two, so the value is read again.
    value = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    if done:
        if with_stage(st, "AWSCURRENT") != [token] or with_stage(st, "AWSPREVIOUS") != [first]:
            raise Failure(f"builtin {step}: completed but the stages are {st}")
        if value["password"] == p0 or value["username"] != role:
            raise Failure(f"builtin {step}: AWSCURRENT's value is not the rotated one")
        if pg.logs_in(role, p0):
            raise Failure(f"builtin {step}: the old password still logs in after the rotation")
        outcome = "completed"
    else:
        if with_stage(st, "AWSCURRENT") != [first] or value != original:
            raise Failure(f"builtin {step}: a failed rotation changed AWSCURRENT")
        outcome = f"failed cleanly ({d['StrongroomRotation'].get('LastError', '')[:120]})"
    if not pg.logs_in(role, value["password"]):
        raise Failure(f"builtin {step}: AWSCURRENT's password does not log in to the database ({outcome})")
    log(f"builtin {step}: after the restart the rotation {outcome}; AWSCURRENT readable throughout "
        "and its password logs in")
    sm.cancel_rotate_secret(SecretId=name)
    pg.sql(f"DROP ROLE {role}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--rotated-pg", default="",
                    help="admin conninfo (host= port= user= dbname=) of the database the built-in rotates roles in")
    ap.add_argument("--pg-ca", default="", help="the CA of that PostgreSQL's TLS certificate")
    ap.add_argument("--psql", default="psql")
    args = ap.parse_args()
    control = os.path.join(args.data_dir, "control")
    policies = os.path.join(args.data_dir, "policies")
    os.makedirs(control, exist_ok=True)
    if args.rotated_pg and not args.pg_ca:
        raise Failure("--rotated-pg needs --pg-ca (the built-in requires TLS)")
    write_policies(policies, control, args.pg_ca if args.rotated_pg else None)
    server = Server(args, free_port(), policies)
    server.start()
    try:
        for step in STEPS:
            one_step(args, server, control, step)
        if args.rotated_pg:
            pg = RotatedPg(args)
            proxy = Proxy(pg.port)
            for step in STEPS:
                one_builtin_step(args, server, pg, proxy, step)
        else:
            log("no --rotated-pg: the built-in PostgreSQL rotator is not crashed")
    finally:
        server.stop()
        kill_functions(control)
    r = subprocess.run([args.bin, "audit", "verify", "--data-dir", os.path.join(args.data_dir, "data")]
                       + (["--database-url", args.database_url] if args.database_url else []),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise Failure(f"audit verify failed ({r.returncode}): {r.stdout.strip()} {r.stderr.strip()[-2000:]}")
    log("audit verify: ok; rotation survived SIGKILL in each of its four steps"
        + (" (command function and built-in PostgreSQL rotator)" if args.rotated_pg else ""))


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"rotation-crash: FAIL: {e}", file=sys.stderr)
        sys.exit(1)
