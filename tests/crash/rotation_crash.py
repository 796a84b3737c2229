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
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
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
STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]
TIMEOUT_S = 5  # the function's timeout; the lease is that plus 10 s


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


def write_policies(policies, control):
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


class Server:
    def __init__(self, args, port, policies):
        self.args, self.port, self.policies = args, port, policies
        self.proc = None
        self.log_path = os.path.join(args.data_dir, "server.log")

    def start(self):
        env = dict(os.environ)
        env["STRONGROOM_ROOT_ACCESS_KEY_ID"] = ROOT_AKID
        env["STRONGROOM_ROOT_SECRET_ACCESS_KEY"] = ROOT_SECRET
        env.setdefault("STRONGROOM_LOG", "warn")
        cmd = [self.args.bin, "serve", "--listen", f"127.0.0.1:{self.port}",
               "--data-dir", os.path.join(self.args.data_dir, "data"), "--policies", self.policies]
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--database-url", default="")
    args = ap.parse_args()
    control = os.path.join(args.data_dir, "control")
    policies = os.path.join(args.data_dir, "policies")
    os.makedirs(control, exist_ok=True)
    write_policies(policies, control)
    server = Server(args, free_port(), policies)
    server.start()
    try:
        for step in STEPS:
            one_step(args, server, control, step)
    finally:
        server.stop()
        kill_functions(control)
    r = subprocess.run([args.bin, "audit", "verify", "--data-dir", os.path.join(args.data_dir, "data")]
                       + (["--database-url", args.database_url] if args.database_url else []),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise Failure(f"audit verify failed ({r.returncode}): {r.stdout.strip()} {r.stderr.strip()[-2000:]}")
    log("audit verify: ok; rotation survived SIGKILL in each of its four steps")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"rotation-crash: FAIL: {e}", file=sys.stderr)
        sys.exit(1)
