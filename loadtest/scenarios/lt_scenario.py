"""Shared machinery of the load-test scenarios (steady.py, burst.py, kill_worker.py).

One scenario run:
  1. a broker: `embedq mock-kafka` (Kafka) or a private `redis-server` on a free
     port (Redis), unless --brokers / --redis-url name an existing one;
  2. a model: `embedq gen-model --preset tiny` unless --model is given;
  3. one `embedq worker` (CPU engine), waited for until it is ready (Kafka: its
     partitions are assigned; Redis: /readyz 200);
  4. `embedq-loadtest collect` started first (it samples the lag while the load
     runs), then `embedq-loadtest replay` with the scenario's rate profile;
  5. scenario events while the load runs (kill -9 a worker, start another);
  6. SIGTERM to the workers, the broker stopped; the report gets a "scenario"
     key (parameters, commands, events, the replay summary, worker exit codes).

Writes OUT/NAME-BROKER.json (collect's report + "scenario"), .svg, .gp, .dat.
Exit status: collect's (0 = no id missing), or 1 when the setup failed.
Standard library only; runs with Debian's /usr/bin/python3.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SKIP = 77
# The mock coordinator holds a rebalance until every member rejoined or the
# session timed out: keep the session short. Commit every second so that the
# broker's lag follows the work closely (the default is 5 s).
KAFKA_GROUP_CONF = ["consumer.session.timeout.ms=4000", "consumer.heartbeat.interval.ms=500",
                    "consumer.auto.commit.interval.ms=1000"]
# librdkafka 2.0.2's mock broker answers a Fetch that finds no new data only
# after the request's full MaxWaitTime (it does not wake the fetch when data
# is produced, as a real broker does with fetch.min.bytes=1): with the default
# fetch.wait.max.ms=500 every message would wait ~0.5 s for the mock, not for
# the worker. Only for the mock.
MOCK_FETCH_CONF = ["consumer.fetch.wait.max.ms=20"]


class SetupError(Exception):
    """The scenario could not run (a tool or broker missing or failing)."""


def log(*a):
    print("[%s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def arg_parser(name, doc, rate, duration):
    """The flags every scenario takes; scripts add their own."""
    ap = argparse.ArgumentParser(prog=name, description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", choices=("kafka", "redis"), required=True)
    ap.add_argument("--out", required=True, help="directory for NAME-BROKER.{json,svg,gp,dat}")
    ap.add_argument("--embedq", default=os.path.join(REPO, "build", "embedq"))
    ap.add_argument("--loadtest", default=os.path.join(REPO, "build", "embedq-loadtest"))
    ap.add_argument("--brokers", help="use this Kafka cluster instead of `embedq mock-kafka`")
    ap.add_argument("--redis-url", help="use this Redis instead of a private redis-server")
    ap.add_argument("--model", help="model directory (default: a generated tiny model)")
    ap.add_argument("--corpus", default=os.path.join(REPO, "docs"),
                    help="documents to cut into messages (default: the repository's docs/)")
    ap.add_argument("--chunk-bytes", type=int, default=1000)
    ap.add_argument("--poison-every", type=int, default=100,
                    help="every Nth message is invalid, to exercise dead letters (0: none)")
    ap.add_argument("--rate", type=float, default=rate, help="messages/s (default %(default)s)")
    ap.add_argument("--duration", type=float, default=duration,
                    help="seconds of load (default %(default)s)")
    ap.add_argument("--threads", type=int, default=1, help="worker engine threads")
    ap.add_argument("--worker-flag", action="append", default=[],
                    help="an extra flag for every worker, e.g. --worker-flag=--max-wait-ms=5 "
                         "(repeatable)")
    ap.add_argument("--work", help="work directory (logs, manifest, model); default: a temp "
                                   "dir, removed after a successful run")
    ap.add_argument("--title", help="report and figure title")
    return ap


class Scenario:
    """One run: broker, model, workers, collect + replay, events."""

    def __init__(self, name, args):
        self.name, self.a = name, args
        self.env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
        self.procs = []  # everything started here, stopped at the end
        self.workers = {}  # name -> Popen
        self.worker_extra = ()  # flags for every worker
        self.events = []  # (unix_us, name)
        self.exit_codes = {}
        self.commands = []
        self.tag = "%s-%d-%d" % (name, int(time.time()), os.getpid())
        self.base = os.path.join(args.out, "%s-%s" % (name, args.broker))
        self.own_work = not args.work
        self.work = args.work or tempfile.mkdtemp(prefix="embedq-lt-")
        os.makedirs(self.work, exist_ok=True)
        os.makedirs(args.out, exist_ok=True)
        self.manifest = os.path.join(self.work, "manifest.tsv")
        self.marks = os.path.join(self.work, "marks.txt")
        for p in (self.manifest, self.marks):
            if os.path.exists(p):
                os.unlink(p)

    # ---- processes ----------------------------------------------------------------

    def start(self, argv, log_name, stdin=None, stdout=None):
        self.commands.append(" ".join(argv))
        logf = open(os.path.join(self.work, log_name + ".log"), "ab")
        p = subprocess.Popen(argv, stdin=stdin, stdout=stdout if stdout else logf, stderr=logf,
                             env=self.env)
        p.logf = logf
        self.procs.append(p)
        return p

    def stop_all(self):
        for name, p in self.workers.items():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in self.workers.items():
            try:
                self.exit_codes.setdefault(name, p.wait(60))
            except subprocess.TimeoutExpired:
                p.kill()
                self.exit_codes[name] = "killed: no exit 60 s after SIGTERM"
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            p.logf.close()

    # ---- broker --------------------------------------------------------------------

    def start_broker(self):
        a = self.a
        if a.broker == "kafka":
            self.topics = {k: "lt.%s.%s" % (self.tag, k) for k in ("in", "out", "dlq")}
            if a.brokers:
                self.bootstrap = a.brokers
                return
            p = self.start([a.embedq, "mock-kafka", "--partitions", "4", "--topics",
                            ",".join(self.topics.values())], "mock-kafka",
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            line = p.stdout.readline().decode().strip()
            if not line:
                raise SetupError("embedq mock-kafka printed no bootstrap address (see %s)" %
                                 self.work)
            self.bootstrap = line
            log("mock-kafka at", line)
        else:
            self.topics = {k: "lt:%s:%s" % (self.tag, k) for k in ("in", "out", "dlq")}
            if a.redis_url:
                self.redis_url = a.redis_url
                return
            if not shutil.which("redis-server"):
                raise SetupError("redis-server is not installed (Debian package redis-server)")
            port = free_port()
            self.start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--dir", self.work], "redis-server")
            self.redis_url = "redis://127.0.0.1:%d" % port
            deadline = time.time() + 10
            while time.time() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                        s.sendall(b"PING\r\n")
                        if s.recv(16).startswith(b"+PONG"):
                            break
                except OSError:
                    time.sleep(0.1)
            else:
                raise SetupError("redis-server did not answer on port %d" % port)
            log("redis-server at", self.redis_url)

    def broker_flags(self):
        if self.a.broker == "kafka":
            return ["--brokers", self.bootstrap]
        return ["--redis-url", self.redis_url]

    # ---- model and workers ------------------------------------------------------

    def prepare_model(self):
        if self.a.model:
            self.model = self.a.model
            return
        self.model = os.path.join(self.work, "tiny")
        r = subprocess.run([self.a.embedq, "gen-model", "--preset", "tiny", "--out", self.model,
                            "--seed", "7"], capture_output=True, text=True)
        if r.returncode != 0:
            raise SetupError("embedq gen-model: " + r.stderr.strip()[-400:])

    def start_worker(self, name, consumer=None, extra=(), wait=True):
        a, t = self.a, self.topics
        port = free_port()
        argv = [a.embedq, "worker", "--source", a.broker, "--model", self.model,
                "--device", "cpu", "--threads", str(a.threads), "--tokenize-threads", "1",
                "--group", "lt-" + self.tag, "--metrics-addr", "127.0.0.1",
                "--metrics-port", str(port), "--drain-timeout", "30"]
        if a.broker == "kafka":
            argv += ["--brokers", self.bootstrap, "--in-topic", t["in"], "--out-topic", t["out"],
                     "--dlq-topic", t["dlq"], "--client-id", name]
            for kv in KAFKA_GROUP_CONF + ([] if a.brokers else MOCK_FETCH_CONF):
                argv += ["--kafka-config", kv]
        else:
            argv += ["--redis-url", self.redis_url, "--in-stream", t["in"],
                     "--out-stream", t["out"], "--dlq-stream", t["dlq"],
                     "--consumer", consumer or name]
        argv += list(self.worker_extra) + list(a.worker_flag) + list(extra)
        p = self.start(argv, name)
        p.port = p_port = port
        p.log_path = os.path.join(self.work, name + ".log")
        self.workers[name] = p
        log("started", name, "pid", p.pid)
        if wait:
            self.wait_worker_ready(name, p, p_port)
        return p

    def wait_worker_ready(self, name, p, port, timeout=90):
        """Ready = /readyz 200 and, for Kafka, partitions assigned (the first
        join of the mock takes ~3 s; load sent before that only measures it)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if p.poll() is not None:
                raise SetupError("%s exited %s at start; log: %s" % (name, p.returncode,
                                                                     p.log_path))
            ready = http_status(port, "/readyz") == 200
            if ready and self.a.broker == "kafka":
                with open(p.log_path, "rb") as f:
                    ready = b"kafka: assigned" in f.read()
            if ready:
                log(name, "ready")
                return
            time.sleep(0.2)
        raise SetupError("%s not ready after %d s; log: %s" % (name, timeout, p.log_path))

    def kill9(self, name):
        p = self.workers[name]
        p.kill()
        self.exit_codes[name] = "killed -9 (%s)" % p.wait()
        self.event("kill9_" + name)
        log("killed -9", name)

    def event(self, name):
        us = int(time.time() * 1e6)
        self.events.append((us, name))
        with open(self.marks, "a") as f:
            f.write("%s %d\n" % (name, us))

    # ---- load ----------------------------------------------------------------------

    def collect_cmd(self, timeout):
        a, t = self.a, self.topics
        return [a.loadtest, "collect", *self.broker_flags(), "--out-topic", t["out"],
                "--dlq-topic", t["dlq"], "--in-topic", t["in"], "--group", "lt-" + self.tag,
                "--manifest", self.manifest, "--marks", self.marks,
                "--report", self.base + ".json", "--plot", self.base + ".svg",
                "--title", self.a.title or "%s (%s)" % (self.name, a.broker),
                "--timeout", str(timeout)]

    def replay_cmd(self, profile_flags):
        a = self.a
        return [a.loadtest, "replay", *self.broker_flags(), "--topic", self.topics["in"],
                "--corpus", a.corpus, "--chunk-bytes", str(a.chunk_bytes),
                "--poison-every", str(a.poison_every), "--duration", str(a.duration),
                "--id-prefix", self.tag + "-", "--manifest", self.manifest, *profile_flags]

    def run_load(self, profile_flags, during=None, drain_timeout=120):
        """collect, then replay; `during(scenario, t0)` runs in a thread while
        replay sends (t0: time.time() when replay started)."""
        collect = self.start(self.collect_cmd(self.a.duration + drain_timeout), "collect")
        time.sleep(0.5)  # collect assigns its partitions before the first output
        replay = self.start(self.replay_cmd(profile_flags), "replay", stdout=subprocess.PIPE)
        t0 = time.time()
        th = None
        if during:
            th = threading.Thread(target=during, args=(self, t0), daemon=True)
            th.start()
        out, _ = replay.communicate()
        self.replay_rc = replay.returncode
        try:
            self.replay_summary = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            self.replay_summary = None
        if th:
            th.join()
        log("replay done:", self.replay_summary)
        self.collect_rc = collect.wait()
        log("collect exit", self.collect_rc)

    # ---- the run -------------------------------------------------------------------

    def finish_report(self, params):
        path = self.base + ".json"
        try:
            with open(path) as f:
                rep = json.load(f)
        except (OSError, ValueError) as e:
            raise SetupError("collect wrote no report %s: %s (logs: %s)" % (path, e, self.work))
        t0 = rep.get("t0_us", 0)
        rep["scenario"] = {
            "name": self.name, "broker": self.a.broker, "params": params,
            "events": [{"name": n, "t_s": round((us - t0) / 1e6, 3)} for us, n in self.events],
            "replay": self.replay_summary, "replay_exit": self.replay_rc,
            "collect_exit": self.collect_rc, "worker_exits": self.exit_codes,
            "commands": self.commands,
        }
        with open(path, "w") as f:
            json.dump(rep, f, indent=1)
            f.write("\n")
        return rep


def summarize(rep):
    lat = rep.get("latency_ms", {})
    marks = ", ".join("%s drain %ss" % (m["name"], m["drain_s"]) for m in rep.get("marks", []))
    return ("%s: %s expected, %s missing, %s duplicates, dead letters %s; latency ms p50 %s "
            "p95 %s p99 %s max %s; throughput %s/s (peak %s); lag max %s; %s" %
            (rep.get("stopped"), rep.get("expected"), rep.get("missing"), rep.get("duplicates"),
             rep.get("dead_letters_by_reason"), lat.get("p50"), lat.get("p95"), lat.get("p99"),
             lat.get("max"), rep.get("throughput", {}).get("mean_per_s"),
             rep.get("throughput", {}).get("peak_per_s"), rep.get("lag", {}).get("max"), marks))


def main(name, args, profile_flags, params, during=None, workers=1, worker_extra=()):
    """Runs a scenario; returns the exit status. worker_extra: flags for every
    worker."""
    for tool in (args.embedq, args.loadtest):
        if not os.access(tool, os.X_OK):
            print("SKIP: %s is not built" % tool, file=sys.stderr)
            return SKIP
    r = subprocess.run([args.embedq, "worker", "--help"], capture_output=True)
    if r.returncode != 0:
        print("SKIP: this embedq has no `worker` (built without the broker libraries)",
              file=sys.stderr)
        return SKIP
    sc = Scenario(name, args)
    sc.worker_extra = worker_extra
    ok = False
    try:
        sc.start_broker()
        sc.prepare_model()
        for i in range(workers):
            sc.start_worker("worker%d" % (i + 1))
        sc.run_load(profile_flags, during)
        sc.stop_all()
        rep = sc.finish_report(params)
        log(summarize(rep))
        ok = sc.collect_rc == 0
        return sc.collect_rc if sc.collect_rc in (0, 1) else 1
    except SetupError as e:
        print("%s: %s" % (name, e), file=sys.stderr)
        return SKIP if "not installed" in str(e) else 1
    finally:
        sc.stop_all()
        if ok and sc.own_work:
            shutil.rmtree(sc.work, ignore_errors=True)
        elif not ok:
            log("work directory kept:", sc.work)
