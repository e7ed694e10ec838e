"""Shared helpers for the Redis tests: a real redis-server on a free port in a
temp dir, processes whose stdout is collected, stream checks.

Needs redis-server (Debian redis-server) and python3-redis. Callers exit 77
(ctest SKIP_RETURN_CODE) when either is missing: see skip_unless_ready().
"""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

SKIP = 77

_children = []  # every process started here, killed at exit if still running


@atexit.register
def _kill_children():
    for p in _children:
        if p.poll() is None:
            p.kill()
            p.wait()


def skip(why):
    print("SKIP:", why)
    sys.exit(SKIP)


def skip_unless_ready():
    if not shutil.which("redis-server"):
        skip("redis-server not installed (Debian package redis-server)")
    try:
        import redis  # noqa: F401
    except ImportError:
        skip("python3-redis not installed (Debian package python3-redis)")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class RedisServer:
    """redis-server on 127.0.0.1:port, data in workdir. persistent=True:
    appendonly yes + appendfsync always (a SIGKILL loses nothing)."""

    def __init__(self, workdir, persistent=False, port=None, extra=()):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.port = port or free_port()
        self.persistent = persistent
        self.extra = list(extra)
        self.proc = None
        self.url = f"redis://127.0.0.1:{self.port}"

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log")]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        args += self.extra
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _children.append(self.proc)
        wait_for(self._pingable, 10, f"redis-server on port {self.port}")
        return self

    def _pingable(self):
        import redis
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited with {self.proc.returncode}; "
                                 f"see {self.dir}/redis.log")
        try:
            c = redis.Redis(port=self.port, socket_timeout=1, **self._auth())
            return c.ping()
        except redis.exceptions.BusyLoadingError:
            return False
        except redis.exceptions.ConnectionError:
            return False

    def _auth(self):
        for i, a in enumerate(self.extra):
            if a == "--requirepass":
                return {"password": self.extra[i + 1]}
        return {}

    def client(self, **kw):
        import redis
        return redis.Redis(port=self.port, **{"socket_timeout": 10, **self._auth(), **kw})

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)

    def stop(self):
        self.kill(signal.SIGKILL)


class Proc:
    """A child process whose stdout lines are collected by a thread; stderr
    goes to a file (shown on failure)."""

    def __init__(self, args, log_path, env=None):
        self.args = args
        self.log_path = log_path
        self.lines = []
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, env=env)
        _children.append(self.proc)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))

    def has_line(self, pred):
        return any(pred(l) for l in list(self.lines))

    def signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.args[0]} did not exit within {timeout} s; log "
                                 f"{self.log_path}:\n{self.stderr_tail()}")
        self.t.join(5)
        self.log.close()
        return rc

    def kill9(self):
        self.signal(signal.SIGKILL)
        return self.wait(10)

    def stderr_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return ""


def pending_count(r, stream, group):
    """Entries pending in the group; -1 while the group does not exist."""
    import redis
    try:
        return r.xpending(stream, group)["pending"]
    except redis.exceptions.ResponseError:
        return -1


def xrange_all(r, stream, batch=10000):
    out, start = [], "-"
    while True:
        got = r.xrange(stream, start, "+", count=batch)
        if not got:
            return out
        out += got
        last = got[-1][0]
        start = b"(" + (last if isinstance(last, bytes) else last.encode())
