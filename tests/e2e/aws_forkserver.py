"""The AWS CLI (v1), each command in a fresh process forked from one that imported it once.

The end-to-end walkthroughs run the AWS CLI a few hundred times. Each run of `aws` spends
about 0.6 CPU-second importing botocore and awscli before it parses its arguments; on the
2-core test machine that import, not the server, is most of the end-to-end phase. This
module keeps the command what it is (the `aws` entry point's code, `awscli.clidriver.main()`,
in a process of its own with the caller's arguments, environment, working directory and
standard streams) and takes the import out of it:

    python aws_forkserver.py serve SOCKET   import awscli once, then fork a child per command
    python -IS aws_forkserver.py run SOCKET ARGS...
                                            run `aws ARGS...` in such a child; exit with its code

`run` sends its argv, environment and working directory over the Unix socket, and its file
descriptors 0, 1 and 2 with SCM_RIGHTS, so the child reads and writes the caller's own
pipes and files. The child replaces its environment with the caller's before the CLI makes
its session, so every setting the CLI reads (credentials, region, endpoint, retries, CA
bundle) is the caller's. The server is single-threaded (a fork from a threaded process
could inherit a held lock) and learns of a child's exit through its pidfd. `run` uses only
the standard library, so it starts without the virtualenv's site packages (`-IS`).
"""

import json
import os
import selectors
import signal
import socket
import struct
import sys

HEADER = struct.Struct("!I")
# What importing the CLI did to the environment (awscli adds its data directory to
# AWS_DATA_PATH): {name: (value before the import, value after)}.
IMPORT_ENV = {}


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed the connection")
        buf += chunk
    return buf


def run(path, args):
    msg = json.dumps({"argv": args, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    socket.send_fds(sock, [HEADER.pack(len(msg)) + msg], [0, 1, 2])
    try:
        (code,) = HEADER.unpack(recv_exact(sock, HEADER.size))
    except ConnectionError:
        print("aws_forkserver: the server closed the connection without an exit code",
              file=sys.stderr)
        return 255
    return code


def child(conn_fds, fds, req):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for fd in conn_fds:
        os.close(fd)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.environ.clear()
    os.environ.update(req["env"])
    for name, (before, after) in IMPORT_ENV.items():
        if os.environ.get(name) != before:
            print(f"aws_forkserver: {name} differs from the server's ({before!r}); "
                  "run the AWS CLI itself", file=sys.stderr)
            os._exit(255)
        if after is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = after
    if os.environ.get("LC_CTYPE", "") == "UTF-8":
        os.environ["LC_CTYPE"] = "en_US.UTF-8"
    os.chdir(req["cwd"])
    sys.argv = ["aws", *req["argv"]]
    import awscli.clidriver

    rc = 255
    try:
        rc = awscli.clidriver.main()
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException as e:  # the CLI's own uncaught error: reported, exit 255 as `aws` would
        import traceback

        traceback.print_exception(e)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    os._exit(rc if isinstance(rc, int) and 0 <= rc < 256 else 255)


def warm_up():
    """Import what a command imports, without a session of the server's environment."""
    import awscli.clidriver  # noqa: F401
    import awscli.handlers  # noqa: F401
    import awscli.formatter  # noqa: F401
    import awscli.botocore.httpsession  # noqa: F401
    import awscli.botocore.parsers  # noqa: F401
    import awscli.botocore.serialize  # noqa: F401
    import awscli.botocore.signers  # noqa: F401
    import awscli.botocore.retries.standard  # noqa: F401


def serve(path):
    server_pid = os.getpid()
    before = dict(os.environ)
    warm_up()
    for name in set(before) | set(os.environ):
        if before.get(name) != os.environ.get(name):
            IMPORT_ENV[name] = (before.get(name), os.environ.get(name))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Bound under another name and renamed once listening: the socket's path exists only
    # while a server accepts on it (`e2e.sh` waits for it).
    staging = f"{path}.{os.getpid()}"
    listener.bind(staging)
    listener.listen(64)
    os.rename(staging, path)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, ("accept", None))
    children = {}  # pidfd -> (pid, conn)
    try:
        loop(listener, sel, children)
    finally:
        if os.getpid() == server_pid:
            os.unlink(path)


def loop(listener, sel, children):
    while True:
        for key, _ in sel.select():
            kind, data = key.data
            if kind == "accept":
                conn, _ = listener.accept()
                try:
                    raw, fds, _flags, _addr = socket.recv_fds(conn, 65536, 3)
                    if len(raw) < HEADER.size or len(fds) != 3:
                        raise ConnectionError("bad request")
                    (n,) = HEADER.unpack(raw[: HEADER.size])
                    body = raw[HEADER.size:]
                    if len(body) < n:
                        body += recv_exact(conn, n - len(body))
                    req = json.loads(body)
                except (ConnectionError, ValueError, OSError) as e:
                    print(f"aws_forkserver: {e}", file=sys.stderr)
                    conn.close()
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    open_fds = [listener.fileno(), conn.fileno()]
                    open_fds += [c.fileno() for _, c in children.values()]
                    open_fds += list(children)
                    child(open_fds, fds, req)
                for fd in fds:
                    os.close(fd)
                pidfd = os.pidfd_open(pid)
                children[pidfd] = (pid, conn)
                sel.register(pidfd, selectors.EVENT_READ, ("exit", pidfd))
            else:
                pid, conn = children.pop(data)
                sel.unregister(data)
                os.close(data)
                _, status = os.waitpid(pid, 0)
                if os.WIFSIGNALED(status):
                    code = 128 + os.WTERMSIG(status)
                else:
                    code = os.WEXITSTATUS(status)
                try:
                    conn.sendall(HEADER.pack(code))
                except OSError:
                    pass
                conn.close()


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "run":
        sys.exit(run(sys.argv[2], sys.argv[3:]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
