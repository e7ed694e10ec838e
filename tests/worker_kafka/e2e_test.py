#!/usr/bin/python3
"""End-to-end Kafka scenarios: workers in a consumer group on a real
Kafka-protocol broker (`embedq mock-kafka`, its own process).

Two modes run the same scenarios:
  --mode worker   `embedq worker --source kafka` with a generated tiny model on
                  the CPU engine (JSON output); every output vector is compared
                  with `embedq embed` for the same input (cosine >= 0.99999).
                  Exits 77 (skipped) while `embedq worker --help` fails.
  --mode echo     tests/worker_kafka/kafka_echo_driver: worker/kafka.c with a
                  stand-in pipeline (output = "out:" + input), no model.

Scenarios (--scenario NAME):
  two_workers         10,000 records (some poison) over 4 partitions into two
                      workers of one group.
  kill_restart        kill -9 one worker mid-stream, start it again.
  broker_down         `down 1` for 5 s mid-stream (longer than the session
                      timeout: the group loses the member), then `up 1`.
  join_midstream      a second worker joins while the first is busy.
  close_rebalance     the group refuses the final commit at SIGTERM (injected:
                      ILLEGAL_GENERATION twice, then REBALANCE_IN_PROGRESS, as
                      when several workers stop at once and the group's
                      generation moves on): the worker commits again once it
                      has rejoined; exit 0, offsets at the log end.
  stop_together       two workers, offsets not yet committed (auto-commit off),
                      SIGTERM'd at once: each exits 0, offsets at the log end.
  sigterm_under_load  SIGTERM with records in flight: exit 0, and the commit is
                      exactly the end of what was delivered (nothing lost,
                      nothing duplicated when another worker takes over).
  poison              poison records go to the dead-letter topic with the
                      original value, key and headers plus embedq.error and
                      embedq.source.{topic,partition,offset}.
  big_dead_letter     10 records + poison ones larger than the producer's
                      default message.max.bytes (1,009,994 bytes; worker mode
                      also a 2,000,000-byte input, too_large): dead letters
                      with the value cut and embedq.cut/.cut.reason/
                      .original.size/.original.sha256; exit 0, offsets at the
                      log end.
  big_dead_letter_low_limit  the same with producer.message.max.bytes=3000 and
                      a 5,000-byte poison record.
  dead_letter_refused the broker refuses dead letters as too large: sent again
                      with value, key and input headers left out.
  delivery_failure    permanent produce errors: the partition is stuck;
                      /readyz names it, embedq_partitions_stuck counts it, its
                      lag stays true, the close line gives the real committed
                      offset, also for a worker that fails again right after a
                      restart (nothing stored by it).
  publish_stalled     (worker) every Produce request refused (retried inside
                      librdkafka) until the errors are cleared: /readyz 503
                      after --publish-fail-timeout, saying why; 200 again
                      after, nothing lost.

Every scenario ends with SIGTERM to every worker and checks: exit status 0;
no input without an output (missing ids: 0; duplicates are allowed and
reported); outputs and dead letters correct; committed offsets (the group's,
read back from the broker) equal the input topic's log end. After any worker
exit (kill -9 included) it also checks that no committed offset covers an
input without an output (at-least-once).

usage: e2e_test.py --embedq BIN --driver BIN --mode worker|echo
                   --scenario NAME --work DIR [--n N]
"""
import argparse
import hashlib
import json
import math
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

try:
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
except ImportError:
    print("SKIP: python3-confluent-kafka is not installed")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mock_kafka_test import Mock  # noqa: E402

PARTITIONS = 4
IN, OUT, DLQ = "in", "out", "dlq"
QUIET = {"log_level": 2}  # the harness's clients: no connection errors
# The mock holds every rebalance up to session.timeout.ms - 1 s waiting for
# members: keep the session short so scenarios stay quick.
# Commits every 500 ms, so that kill -9 finds offsets committed.
GROUP_CONF = ["consumer.session.timeout.ms=4000", "consumer.heartbeat.interval.ms=500",
              "consumer.auto.commit.interval.ms=500"]
WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron "
         "pi rho sigma tau upsilon phi chi psi omega vector kafka worker embed token batch "
         "stream offset commit partition").split()


def log(*a):
    print("[%7.2f]" % (time.time() - T0), *a, flush=True)


T0 = time.time()


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)
    log("ok:", what)


def wait_until(pred, timeout, what, step=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(step)
    raise Failure("timed out after %.0f s waiting for %s" % (timeout, what))


# ---- inputs -------------------------------------------------------------------


class Inputs:
    """The records a scenario produces, and where they landed.
    big: {index: (value size, expected reason)}: those records are poison of
    that many bytes."""

    def __init__(self, n, poison_every, seed, big=None):
        rnd = random.Random(seed)
        self.recs = []  # dicts: id, key, value, headers, poison, text
        for i in range(n):
            if big and i in big:
                rid = "p%05d" % i
                size, reason = big[i]
                head = b"poison-%d {not json " % i
                self.recs.append({"id": rid, "key": rid.encode(),
                                  "value": head + bytes(rnd.choice(b"abcdefgh")
                                                        for _ in range(size - len(head))),
                                  "headers": [("trace", b"t-%d" % i)], "poison": True,
                                  "reason": reason})
                continue
            if poison_every and i % poison_every == poison_every - 1:
                rid = "p%05d" % i
                self.recs.append({"id": rid, "key": rid.encode(),
                                  "value": b"poison-%d {not json" % i,
                                  "headers": [("trace", b"t-%d" % i), ("dup", b"1"), ("dup", b"2")],
                                  "poison": True})
                continue
            rid = "m%05d" % i
            text = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(3, 12)))
            hdrs = [("trace", b"t-%d" % i)] if i % 7 == 0 else None
            self.recs.append({"id": rid, "key": rid.encode(), "text": text,
                              "value": json.dumps({"id": rid, "text": text}).encode(),
                              "headers": hdrs, "poison": False})
        self.where = {}  # id -> (partition, offset)
        self.by_id = {r["id"]: r for r in self.recs}
        self.lock = threading.Lock()
        self.errors = []

    def normal_ids(self):
        return {r["id"] for r in self.recs if not r["poison"]}

    def poison_ids(self):
        return {r["id"] for r in self.recs if r["poison"]}


class Feeder(threading.Thread):
    """Produces inputs[start:end] to IN over `seconds` (0: as fast as possible)."""

    def __init__(self, bootstrap, inputs, start, end, seconds):
        super().__init__(daemon=True)
        self.b, self.inp, self.start_i, self.end_i, self.seconds = (bootstrap, inputs, start,
                                                                    end, seconds)
        self.done = threading.Event()

    def run(self):
        # message.max.bytes: room for the big records of big_dead_letter.
        p = Producer({"bootstrap.servers": self.b, "enable.idempotence": True,
                      "linger.ms": 5, "message.max.bytes": 4000000, **QUIET})
        inp = self.inp

        def dr(err, msg, rid):
            with inp.lock:
                if err:
                    inp.errors.append((rid, str(err)))
                else:
                    inp.where[rid] = (msg.partition(), msg.offset())

        n = self.end_i - self.start_i
        t0 = time.time()
        for j, r in enumerate(inp.recs[self.start_i:self.end_i]):
            while True:
                try:
                    p.produce(IN, key=r["key"], value=r["value"], headers=r["headers"],
                              on_delivery=lambda e, m, rid=r["id"]: dr(e, m, rid))
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
            if self.seconds > 0:
                ahead = t0 + self.seconds * (j + 1) / n - time.time()
                if ahead > 0:
                    time.sleep(ahead)
        while p.flush(1) > 0:
            pass
        self.done.set()


def feed(bootstrap, inputs, start, end, seconds=0, wait=True):
    f = Feeder(bootstrap, inputs, start, end, seconds)
    f.start()
    if wait:
        f.join()
        check(not inputs.errors, "inputs %d..%d produced" % (start, end))
    return f


# ---- reading the broker -----------------------------------------------------


class Reader:
    """Reads a topic from the beginning, incrementally (one assigned consumer)."""

    def __init__(self, bootstrap, topic):
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader-" + topic,
                           "enable.auto.commit": False, "enable.partition.eof": False,
                           **QUIET})
        self.topic = topic
        self.c.assign([TopicPartition(topic, p, -2) for p in range(PARTITIONS)])  # beginning
        self.msgs = []

    def poll(self, seconds=0.5):
        deadline = time.time() + seconds
        while time.time() < deadline:
            ms = self.c.consume(1000, 0.1)
            for m in ms:
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        log("reader error:", m.error())
                    continue
                self.msgs.append(m)
            if not ms:
                break
        return self.msgs

    def sync(self, timeout=20):
        """Reads everything up to the topic's current log end."""
        self.poll(0.1)
        ends = {p: self.c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
                for p in range(PARTITIONS)}
        deadline = time.time() + timeout
        while True:
            pos = {tp.partition: tp.offset for tp in self.c.position(
                [TopicPartition(self.topic, p) for p in range(PARTITIONS)])}
            if all(ends[p] <= 0 or pos.get(p, -1) >= ends[p] for p in ends):
                return self.msgs
            if time.time() > deadline:
                raise Failure("could not read %s up to its log end %s (at %s)" %
                              (self.topic, ends, pos))
            self.poll(0.2)

    def close(self):
        self.c.close()


def group_offsets(bootstrap, group):
    """(committed, log end) per partition of IN, from the broker."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False, **QUIET})
    try:
        tps = [TopicPartition(IN, p) for p in range(PARTITIONS)]
        committed = [tp.offset for tp in c.committed(tps, timeout=15)]
        ends = [c.get_watermark_offsets(tp, timeout=15)[1] for tp in tps]
    finally:
        c.close()
    return [max(x, 0) for x in committed], ends


# ---- workers ------------------------------------------------------------------


class Worker:
    def __init__(self, ctx, name, echo_delay_ms=5, extra_config=(), max_in_flight=None,
                 env=None, extra_args=(), in_topic=IN):
        self.ctx, self.name = ctx, name
        a = ctx.args
        cfg = []
        env = dict(env or {})
        if "EMBEDQ_KAFKA_CONFIG" in env:  # the list given in the variable only
            env["EMBEDQ_KAFKA_CONFIG"] = ";".join(
                [kv.replace(";", "\\;") for kv in GROUP_CONF + list(extra_config)] +
                [env["EMBEDQ_KAFKA_CONFIG"]])
        else:
            for kv in GROUP_CONF + list(extra_config):
                cfg += ["--kafka-config", kv]
        if a.mode == "echo":
            cmd = [a.driver, "--brokers", ctx.mock.bootstrap, "--group", ctx.group,
                   "--in-topic", in_topic, "--out-topic", OUT, "--dlq-topic", DLQ,
                   "--max-in-flight", str(max_in_flight or 256), "--delay-ms", str(echo_delay_ms),
                   *cfg]
        else:
            cmd = [a.embedq, "worker", "--source", "kafka", "--brokers", ctx.mock.bootstrap,
                   "--group", ctx.group, "--in-topic", in_topic, "--out-topic", OUT,
                   "--dlq-topic", DLQ, "--model", ctx.model, "--device", "cpu",
                   "--threads", "1", "--tokenize-threads", "1", "--output-format", "json",
                   "--max-in-flight", str(max_in_flight or 512), "--batch-tokens", "4096",
                   "--max-wait-ms", "5",
                   "--metrics-addr", "127.0.0.1", "--metrics-port", "0",
                   "--drain-timeout", "30", "--client-id", name, *cfg, *extra_args]
        self.log_path = os.path.join(a.work, name + ".log")
        self.out_path = os.path.join(a.work, name + ".out")
        self.logf = open(self.log_path, "ab")
        self.outf = open(self.out_path, "ab")
        self.p = subprocess.Popen(cmd, stdout=self.outf, stderr=self.logf,
                                  env={**os.environ, **env})
        log("started", name, "pid", self.p.pid)

    def alive(self):
        return self.p.poll() is None

    def sigterm(self):
        self.p.send_signal(signal.SIGTERM)

    def kill9(self):
        self.p.kill()
        self.p.wait()
        log("killed -9", self.name)

    def wait(self, timeout=60):
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise Failure("%s did not exit within %d s after SIGTERM" % (self.name, timeout))
        finally:
            self.logf.close()
            self.outf.close()
        return rc

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stats(self):
        """echo: the driver's exit JSON line."""
        with open(self.out_path) as f:
            lines = [l for l in f if l.startswith("{")]
        return json.loads(lines[-1]) if lines else {}

    def metric(self, name):
        """worker: the value of an unlabelled metric, or None."""
        code, text = self.get("/metrics")
        m = re.search(r"^%s (\S+)$" % re.escape(name), text or "", re.M)
        return float(m.group(1)) if code == 200 and m else None

    def lag(self):
        """worker: embedq_partition_lag per partition from /metrics."""
        code, text = self.get("/metrics")
        if code != 200:
            return None
        return {int(m.group(1)): float(m.group(2)) for m in
                re.finditer(r'^embedq_partition_lag\{partition="(\d+)"\} (\S+)$', text, re.M)}

    def http_port(self):
        m = re.search(r"on [0-9.]+:(\d+)", self.log_text())
        return int(m.group(1)) if m else None

    def get(self, path):
        port = self.http_port()
        if not port:
            return None, ""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return None, ""


# ---- the scenario context ---------------------------------------------------


class Ctx:
    def __init__(self, args):
        self.args = args
        self.mock = Mock(args.embedq, "--partitions", str(PARTITIONS), "--topics",
                         ",".join([IN, OUT, DLQ]))
        log("mock-kafka at", self.mock.bootstrap)
        self.group = "g-" + args.scenario
        self.workers = []
        self.model = os.path.join(args.work, "model")
        if args.mode == "worker":
            r = subprocess.run([args.embedq, "gen-model", "--preset", "tiny", "--out",
                                self.model], capture_output=True, text=True)
            if r.returncode != 0:
                raise Failure("gen-model: " + r.stderr)
        self.outputs = Reader(self.mock.bootstrap, OUT)
        self.dlq = Reader(self.mock.bootstrap, DLQ)

    def worker(self, name, **kw):
        w = Worker(self, name, **kw)
        self.workers.append(w)
        return w

    # -- outputs --

    def output_ids(self):
        ids = []
        for m in self.outputs.poll():
            ids.append(self.parse_output(m)[0])
        return ids

    def parse_output(self, m):
        v = m.value()
        if self.args.mode == "echo":
            if not v.startswith(b"out:"):
                raise Failure("echo output without the out: prefix: %r" % v[:60])
            return json.loads(v[4:])["id"], None
        o = json.loads(v)
        return o["id"], o

    def progress(self):
        return len(set(self.output_ids()))

    def wait_outputs(self, count, timeout, what):
        wait_until(lambda: self.progress() >= count, timeout, what)

    def wait_all(self, inputs, timeout=90):
        normal, poison = inputs.normal_ids(), inputs.poison_ids()

        def done():
            got = set(self.output_ids())
            dl = {self.dlq_id(m) for m in self.dlq.poll()}
            return normal <= got | dl and poison <= dl

        wait_until(done, timeout, "every input's output or dead letter")
        log("all %d outputs and %d dead letters arrived" % (len(normal), len(poison)))

    def dlq_id(self, m):
        k = m.key()
        return k.decode() if k else None

    # -- checks --

    def check_at_least_once(self, inputs, when):
        """No committed offset covers an input whose output or dead letter is missing."""
        committed, ends = group_offsets(self.mock.bootstrap, self.group)
        self.outputs.sync()
        self.dlq.sync()
        got = set(self.output_ids()) | {self.dlq_id(m) for m in self.dlq.poll()}
        with inputs.lock:
            where = dict(inputs.where)
        lost = [rid for rid, (p, o) in where.items() if o < committed[p] and rid not in got]
        check(not lost, "%s: committed %s (log end %s) covers only delivered inputs%s" %
              (when, committed, ends, "" if not lost else " (lost: %s)" % lost[:10]))
        return committed, ends

    def finish(self, inputs, expect_no_duplicates=False, rerouted_ok=False, limit=None):
        """SIGTERM every live worker; final checks. limit: the producer's
        message.max.bytes when dead letters may be cut to fit it."""
        for w in self.workers:
            if w.alive():
                w.sigterm()
        for w in self.workers:
            if w.p.returncode is None or w.alive():
                rc = w.wait(60)
                check(rc == 0, "%s exited 0 after SIGTERM (got %s)" % (w.name, rc))
                if self.args.mode == "echo":
                    log(w.name, "stats", w.stats())
        self.check_outputs(inputs, expect_no_duplicates, rerouted_ok, limit)
        committed, ends = group_offsets(self.mock.bootstrap, self.group)
        check(committed == ends, "committed offsets %s = log end %s" % (committed, ends))

    def check_outputs(self, inputs, expect_no_duplicates, rerouted_ok=False, limit=None):
        """rerouted_ok: a valid input may be dead-lettered as output_too_large."""
        outs = self.outputs.sync()
        dls = self.dlq.sync()
        normal, poison = inputs.normal_ids(), inputs.poison_ids()
        dseen = {}
        for m in dls:
            dseen.setdefault(self.dlq_id(m), m)
        rerouted = {rid for rid in dseen if rid in normal} if rerouted_ok else set()
        if rerouted_ok:
            check(rerouted, "some outputs were refused and dead-lettered instead (%d)" %
                  len(rerouted))
        seen, dups = {}, 0
        for m in outs:
            rid, o = self.parse_output(m)
            if rid in seen:
                dups += 1
            seen[rid] = (m, o)
        missing = normal - set(seen) - rerouted
        extra = set(seen) - normal
        log("outputs: %d records, %d unique, %d duplicates (allowed), %d missing" %
            (len(outs), len(seen), dups, len(missing)))
        check(not missing, "no missing outputs (%d missing: %s)" % (len(missing),
                                                                   sorted(missing)[:10]))
        check(not extra, "no unexpected outputs (%s)" % sorted(extra)[:10])
        if expect_no_duplicates:
            check(dups == 0, "no duplicates after a clean hand-over")
        # Keys and headers: the input id and the input's headers.
        for rid, (m, o) in seen.items():
            r = inputs.by_id[rid]
            if m.key() != r["key"]:
                raise Failure("output %s has key %r" % (rid, m.key()))
            if (m.headers() or None) != (r["headers"] or None):
                raise Failure("output %s headers %r != input %r" % (rid, m.headers(),
                                                                     r["headers"]))
            if self.args.mode == "echo" and m.value() != b"out:" + r["value"]:
                raise Failure("echo output %s differs from its input" % rid)
        check(True, "output keys = input ids, input headers passed through")
        if self.args.mode == "worker":
            self.check_vectors(inputs, seen)
        # Dead letters.
        missing_dl = poison - set(dseen)
        check(not missing_dl, "every poison record dead-lettered (%d; missing %s)" %
              (len(poison), sorted(missing_dl)[:10]))
        check(not (set(dseen) - poison - rerouted), "only poison records dead-lettered")
        n_cut = 0
        for rid, m in dseen.items():
            r = inputs.by_id[rid]
            p, o = inputs.where[rid]
            h = m.headers() or []
            hd = {}
            for k, v in h:
                hd.setdefault(k, v)
            want_orig = r["headers"] or []
            orig = [(k, v) for k, v in h if not k.startswith("embedq.")]
            value = m.value() or b""
            if limit is not None and len(r["value"]) > limit:
                # Cut to fit: a prefix of the original, with headers that say
                # so; the whole record within the producer's limit.
                n_cut += 1
                size = len(value) + len(m.key() or b"") + sum(
                    len(k) + len(v or b"") for k, v in h)
                if (hd.get("embedq.cut") != b"value" or
                        not r["value"].startswith(value) or not value or
                        hd.get("embedq.original.size") != str(len(r["value"])).encode() or
                        hd.get("embedq.original.sha256") !=
                        hashlib.sha256(r["value"]).hexdigest().encode() or
                        b"message.max.bytes=%d" % limit not in hd.get("embedq.cut.reason", b"")
                        or size > limit or m.key() != r["key"] or orig != want_orig):
                    raise Failure("cut dead letter %s: %d value bytes (original %d), key %r, "
                                  "record %d bytes (limit %d), headers %r" %
                                  (rid, len(value), len(r["value"]), m.key(), size, limit,
                                   [(k, (v or b"")[:80]) for k, v in h]))
                log("dead letter %s: value cut to %d of %d bytes, record %d bytes <= %d; "
                    "embedq.cut.reason %r" % (rid, len(value), len(r["value"]), size, limit,
                                              hd.get("embedq.cut.reason")))
            elif m.value() != r["value"] or m.key() != r["key"] or orig != want_orig:
                raise Failure("dead letter %s is not the original record: %r %r %r" %
                              (rid, m.value()[:40], m.key(), h))
            elif "embedq.cut" in hd:
                raise Failure("dead letter %s: embedq.cut on a whole record" % rid)
            want = (b"output_too_large" if rid in rerouted else
                    r.get("reason", b"malformed_json"))
            if not hd.get("embedq.error", b"").startswith(want):
                raise Failure("dead letter %s: embedq.error = %r" % (rid, hd.get("embedq.error")))
            if (hd.get("embedq.source.topic") != IN.encode() or
                    hd.get("embedq.source.partition") != str(p).encode() or
                    hd.get("embedq.source.offset") != str(o).encode()):
                raise Failure("dead letter %s: source headers %r, expected %s/%d/%d" %
                              (rid, h, IN, p, o))
        check(True, "dead letters: original value, key and headers + embedq.error "
              "(%s) + embedq.source.topic/partition/offset" %
              ("malformed_json, output_too_large" if rerouted else "malformed_json"))
        if limit is not None:
            check(n_cut == sum(1 for r in inputs.recs if r["poison"] and
                               len(r["value"]) > limit),
                  "%d dead letters cut to fit message.max.bytes=%d, with embedq.cut, "
                  "embedq.cut.reason, embedq.original.size and embedq.original.sha256" %
                  (n_cut, limit))

    def check_vectors(self, inputs, seen):
        """Each output vector = `embedq embed` of the same input (same CPU engine)."""
        ids = sorted(seen)
        lines = "".join(json.dumps({"id": rid, "text": inputs.by_id[rid]["text"]}) + "\n"
                        for rid in ids)
        r = subprocess.run([self.args.embedq, "embed", "--model", self.model, "--device", "cpu"],
                           input=lines, capture_output=True, text=True)
        if r.returncode != 0:
            raise Failure("embedq embed: " + r.stderr[-500:])
        ref = {}
        for line in r.stdout.splitlines():
            o = json.loads(line)
            ref[o["id"]] = o["embedding"]
        worst = 1.0
        for rid in ids:
            o = seen[rid][1]
            a, b = o["embedding"], ref[rid]
            if len(a) != len(b) or o.get("dimensions", len(a)) != len(a):
                raise Failure("output %s: %d values, embed gives %d" % (rid, len(a), len(b)))
            dot = sum(x * y for x, y in zip(a, b))
            na = math.sqrt(sum(x * x for x in a))
            nb = math.sqrt(sum(y * y for y in b))
            cos = dot / (na * nb) if na and nb else 0.0
            worst = min(worst, cos)
            if cos < 0.99999:
                raise Failure("output %s: cosine %.7f with `embedq embed`" % (rid, cos))
            for f in ("id", "model", "dimensions", "embedding", "tokens", "truncated"):
                if f not in o:
                    raise Failure("output %s lacks field %s" % (rid, f))
        check(True, "%d vectors match `embedq embed` (worst cosine %.8f)" % (len(ids), worst))

    def close(self):
        for w in self.workers:
            if w.alive():
                w.p.kill()
                w.p.wait()
        self.outputs.close()
        self.dlq.close()
        rc = self.mock.stop()
        if rc != 0:
            log("mock-kafka exit status", rc)


# ---- scenarios ------------------------------------------------------------------


def scenario_two_workers(ctx, n):
    inputs = Inputs(n, 500, 1)
    feed(ctx.mock.bootstrap, inputs, 0, n)
    a, b = ctx.worker("a"), ctx.worker("b")
    ctx.wait_all(inputs)
    if ctx.args.mode == "worker":
        # /metrics: each worker reports lag for its own partitions; all
        # four are covered between them and reach 0 once everything is stored.
        def lags_zero():
            la, lb = a.lag() or {}, b.lag() or {}
            lags = {**la, **lb}
            return set(la) | set(lb) == set(range(PARTITIONS)) and not set(la) & set(lb) \
                and all(v == 0 for v in lags.values())
        wait_until(lags_zero, 15, "embedq_partition_lag 0 for partitions 0-3")
        log("lag a", a.lag(), "lag b", b.lag())
    ctx.finish(inputs)
    if ctx.args.mode == "echo":
        sa, sb = a.stats(), b.stats()
        check(sa.get("consumed", 0) > 0 and sb.get("consumed", 0) > 0,
              "both workers consumed records (%s, %s)" % (sa.get("consumed"), sb.get("consumed")))


def scenario_kill_restart(ctx, n):
    inputs = Inputs(n, 1000, 2)
    feeder = feed(ctx.mock.bootstrap, inputs, 0, n, seconds=8, wait=False)
    a = ctx.worker("a")
    ctx.wait_outputs(n * 2 // 5, 60, "40% of the outputs")
    a.kill9()
    committed, _ = ctx.check_at_least_once(inputs, "after kill -9")
    check(sum(committed) > 0, "offsets were committed before the kill")
    ctx.worker("a2")
    feeder.join()
    check(not inputs.errors, "inputs produced")
    ctx.wait_all(inputs)
    ctx.finish(inputs)


def scenario_broker_down(ctx, n):
    inputs = Inputs(n, 1000, 3)
    feeder = feed(ctx.mock.bootstrap, inputs, 0, n, seconds=10, wait=False)
    # A small in-flight bound: while the broker is down no delivery report
    # comes, so the worker fills up and pauses (hard, after 1 s) before the
    # group drops it; its partitions come back after the outage.
    a = ctx.worker("a", max_in_flight=64)
    ctx.wait_outputs(n // 5, 60, "a fifth of the outputs")
    if ctx.args.mode == "worker":
        wait_until(lambda: a.get("/readyz")[0] == 200, 10, "/readyz 200")
    check(ctx.mock.cmd("down 1") == "ok down 1", "broker 1 down")
    t_down = time.time()
    if ctx.args.mode == "worker":
        wait_until(lambda: a.get("/readyz")[0] == 503, 10, "/readyz 503 while the broker is down")
        log("readyz while down:", a.get("/readyz")[1].strip())
    else:
        wait_until(lambda: "not ready: kafka: no broker" in a.log_text(), 10,
                   "kafka_ready() false while the broker is down")
    time.sleep(max(0.0, 5 - (time.time() - t_down)))
    check(ctx.mock.cmd("up 1") == "ok up 1", "broker 1 up after 5 s")
    if ctx.args.mode == "worker":
        wait_until(lambda: a.get("/readyz")[0] == 200, 20, "/readyz 200 again")
    else:
        wait_until(lambda: a.log_text().rstrip().endswith("ready") or
                   "ready\n" in a.log_text().split("not ready: kafka: no broker")[-1], 20,
                   "kafka_ready() true again")
    if ctx.args.mode == "worker":
        wait_until(lambda: re.search(r"info: not ready: kafka: no broker reachable \(last error"
                                     r"[^\n]*\n(?:.*\n)*?embedq info: ready\n", a.log_text()),
                   5, "the worker to log both readiness changes")
    feeder.join()
    check(not inputs.errors, "inputs produced")
    check(a.alive(), "the worker survived the outage")
    ctx.wait_all(inputs)
    ctx.finish(inputs)


def scenario_join_midstream(ctx, n):
    inputs = Inputs(n, 1000, 4)
    feeder = feed(ctx.mock.bootstrap, inputs, 0, n, seconds=12, wait=False)
    a = ctx.worker("a")
    ctx.wait_outputs(n // 5, 60, "a fifth of the outputs")
    b = ctx.worker("b")
    wait_until(lambda: "kafka: assigned" in b.log_text(), 30, "b to get partitions")
    feeder.join()
    check(not inputs.errors, "inputs produced")
    ctx.wait_all(inputs)
    ctx.finish(inputs)
    if ctx.args.mode == "echo":
        sa, sb = a.stats(), b.stats()
        check(sb.get("consumed", 0) > 0,
              "the joining worker consumed records (a %s, b %s)" % (sa.get("consumed"),
                                                                  sb.get("consumed")))
    else:
        check("kafka: assigned" in b.log_text(), "the joining worker was assigned partitions")



def scenario_close_rebalance(ctx, n):
    n = min(n, 2000)
    inputs = Inputs(n, 1000, 13)
    feed(ctx.mock.bootstrap, inputs, 0, n)
    # No auto-commit before the close: the final commit carries every offset.
    a = ctx.worker("a", extra_config=["consumer.auto.commit.interval.ms=600000"])
    ctx.wait_all(inputs)
    # OffsetCommit (API key 8): 22 = ILLEGAL_GENERATION, 27 = REBALANCE_IN_PROGRESS;
    # the next OffsetCommit requests are the close's.
    for cmd in ("error 8 2 22", "error 8 1 27"):
        check(ctx.mock.cmd(cmd).startswith("ok"), "mock: %s" % cmd)
    ctx.finish(inputs)
    log_text = a.log_text()
    refused = re.findall(r"final commit refused by the group \((\w+), attempt (\d)\)", log_text)
    # librdkafka's own commit on the lost assignment may take one of the
    # injected errors: the worker sees two or three of them.
    check(len(refused) >= 2 and refused[0][0] == "ILLEGAL_GENERATION",
          "the final commit was refused, logged and made again: %s" % refused)


def scenario_stop_together(ctx, n):
    """Two workers stopped at the same moment (a scale-down), each with
    offsets the group has not committed yet: the first to leave moves the
    group's generation on under the other's final commit."""
    n = min(n, 2000)
    inputs = Inputs(n, 1000, 14)
    feed(ctx.mock.bootstrap, inputs, 0, n)
    cfg = ["consumer.auto.commit.interval.ms=600000"]
    a = ctx.worker("a", extra_config=cfg)
    b = ctx.worker("b", extra_config=cfg)
    wait_until(lambda: "kafka: assigned" in b.log_text(), 30, "b to get partitions")
    ctx.wait_all(inputs)
    ctx.finish(inputs)  # SIGTERM to both, then: exit 0 each, committed = log end
    log("refusals", len(re.findall(r"final commit refused", a.log_text() + b.log_text())))

def scenario_sigterm_under_load(ctx, n):
    # Half the inputs are a backlog (load: the in-flight bound is reached);
    # the other half arrive over 10 s, so the worker, stopped after a tenth of
    # the outputs, cannot have taken them all however fast this machine is.
    inputs = Inputs(n, 1000, 5)
    feed(ctx.mock.bootstrap, inputs, 0, n // 2)
    feeder = feed(ctx.mock.bootstrap, inputs, n // 2, n, seconds=10, wait=False)
    a = ctx.worker("a", echo_delay_ms=100)  # echo: ~2,500 records/s, so some are in flight
    if ctx.args.mode == "worker":
        # SIGTERM while the worker holds a good part of its in-flight bound
        # (512): the backlog is being worked on, whatever this machine's speed.
        def busy():
            st, body = a.get("/metrics")
            m = re.search(r"^embedq_in_flight_messages (\d+)", body or "", re.M)
            return st == 200 and m and int(m.group(1)) >= 100
        wait_until(busy, 60, "the worker to hold 100+ messages in flight", step=0.005)
    else:
        ctx.wait_outputs(n // 10, 60, "a tenth of the outputs")
    a.sigterm()
    rc = a.wait(60)
    check(rc == 0, "SIGTERM under load: exit 0")
    check(feeder.is_alive(), "the worker exited while inputs were still arriving")
    if ctx.args.mode == "worker":
        m = re.search(r"SIGTERM: draining (\d+) messages in flight", a.log_text())
        check(m and int(m.group(1)) > 0, "SIGTERM came with %s messages in flight" %
              (m.group(1) if m else "?"))
    feeder.join()
    check(not inputs.errors, "inputs produced")
    committed, ends = ctx.check_at_least_once(inputs, "after SIGTERM")
    # Drained: every record it took was delivered and committed, so the
    # commit is exactly one past the last delivered input of each partition.
    got = set(ctx.output_ids()) | {ctx.dlq_id(m) for m in ctx.dlq.poll()}
    last = [0] * PARTITIONS
    for rid, (p, o) in inputs.where.items():
        if rid in got:
            last[p] = max(last[p], o + 1)
    check(committed == last, "commit after drain %s = end of what was delivered %s" %
          (committed, last))
    check(sum(committed) < sum(ends), "records were left for the next worker")
    ctx.worker("b")
    ctx.wait_all(inputs)
    ctx.finish(inputs, expect_no_duplicates=True)


def scenario_poison(ctx, n):
    inputs = Inputs(n, 20, 6)
    feed(ctx.mock.bootstrap, inputs, 0, n)
    ctx.worker("a")
    ctx.wait_all(inputs)
    ctx.finish(inputs)


def scenario_output_too_large(ctx, n):
    """The broker refuses outputs (MESSAGE_TOO_LARGE on a Produce request):
    those inputs go to the dead-letter topic instead, with reason
    output_too_large; nothing is lost, offsets reach the log end."""
    n = min(n, 3000)
    inputs = Inputs(n, 0, 7)
    feed(ctx.mock.bootstrap, inputs, 0, n)
    check(ctx.mock.cmd("error 0 1 10").startswith("ok"), "next Produce request: error 10")
    ctx.worker("a")
    ctx.wait_all(inputs)
    ctx.finish(inputs, rerouted_ok=True)


def scenario_delivery_failure(ctx, n):
    """Two Produce requests fail permanently (POLICY_VIOLATION): those records
    are not delivered, their partitions stop committing ("stuck"), the
    worker exits 3 on SIGTERM; the next worker reprocesses them."""
    n = min(n, 3000)
    inputs = Inputs(n, 0, 8)
    feed(ctx.mock.bootstrap, inputs, 0, n)
    check(ctx.mock.cmd("error 0 2 44").startswith("ok"), "next 2 Produce requests: error 44")
    a = ctx.worker("a")
    wait_until(lambda: "was not delivered" in a.log_text(), 60, "a delivery failure")
    # Until the outputs stop coming (everything but the failed records).
    last = [-1, time.time()]

    def settled():
        n_out = ctx.progress()
        if n_out != last[0]:
            last[0], last[1] = n_out, time.time()
        return time.time() - last[1] > 2.0
    wait_until(settled, 60, "the outputs to settle")
    check(last[0] < n, "%d of %d outputs delivered" % (last[0], n))
    check_stuck(ctx, inputs, a, "a")
    # Stuck again at once after the restart: the new worker stores nothing
    # on those partitions; their lag and the close line must still give the
    # committed offset (they read 0 and -1).
    check(ctx.mock.cmd("error 0 2 44").startswith("ok"), "next 2 Produce requests: error 44")
    b = ctx.worker("b")
    wait_until(lambda: "was not delivered" in b.log_text(), 60, "a delivery failure of b")
    wait_until(settled, 60, "the outputs to settle")
    check_stuck(ctx, inputs, b, "b")
    ctx.worker("c")
    ctx.wait_all(inputs)
    ctx.finish(inputs)


def check_stuck(ctx, inputs, w, name):
    """w has stuck partitions: /readyz names one, embedq_partitions_stuck
    counts them, their lag is log end - committed; SIGTERM: exit 3 and the
    close line gives each stuck partition's committed offset."""
    committed, ends = ctx.check_at_least_once(inputs, "%s with stuck partitions" % name)
    stuck = [p for p in range(PARTITIONS) if committed[p] < ends[p]]
    check(stuck, "%s: stuck partitions %s did not commit past the failed records" %
          (name, stuck))
    if ctx.args.mode == "worker":
        st, body = w.get("/readyz")
        check(st == 503 and re.search(r"partition (\d+) of in cannot make progress: the output "
                                      r"of offset \d+ was not delivered", body),
              "%s: /readyz %s: %s" % (name, st, body.strip()))
        p = int(re.search(r"partition (\d+)", body).group(1))
        m = re.search(r"committed offset stays at (-?\d+)", body)
        check(p in stuck and m and int(m.group(1)) == committed[p],
              "%s: /readyz gives partition %d's committed offset %s (broker: %d)" %
              (name, p, m.group(1) if m else None, committed[p]))
        n_stuck = w.metric("embedq_partitions_stuck")
        check(n_stuck == len(stuck), "%s: embedq_partitions_stuck %s = %d" %
              (name, n_stuck, len(stuck)))
        check(w.metric("embedq_ready") == 0, "%s: embedq_ready 0" % name)
        # (A partition with nothing fetched yet has no high watermark: no
        # sample.)
        lag = w.lag()
        want = {p: float(ends[p] - committed[p]) for p in range(PARTITIONS)}
        check(all(p in lag for p in stuck) and all(lag[p] == want[p] for p in lag),
              "%s: embedq_partition_lag %s = log end - committed %s" % (name, lag, want))
    w.sigterm()
    rc = w.wait(60)
    check(rc == 3, "%s: SIGTERM with undelivered records: exit 3 (got %s)" % (name, rc))
    said = {int(p): int(o) for p, o in re.findall(
        r"partition (\d+): the output of offset \d+ was not delivered: [^;]*; committed only "
        r"up to offset (-?\d+)", w.log_text())}
    check(said and all(committed[p] == o for p, o in said.items()),
          "%s: the close line's committed offsets %s = the broker's %s" %
          (name, said, {p: committed[p] for p in said}))
    ctx.check_at_least_once(inputs, "after %s's exit 3" % name)


def scenario_big_dead_letter(ctx, n, limit=None):
    """Dead letters larger than the producer's message.max.bytes (1,000,000
    by default) go out cut to fit, with headers saying so; every input is
    accounted for, offsets reach the log end, exit 0."""
    if limit is None:  # the defaults: 1 MB+ records
        big = {5: (1009994, b"malformed_json"),
               8: (2000000, b"too_large" if ctx.args.mode == "worker" else b"malformed_json")}
        extra, eff = [], 1000000
    else:
        big = {5: (5000, b"malformed_json")}
        extra, eff = ["producer.message.max.bytes=%d" % limit], limit
    inputs = Inputs(10 + len(big), 0, 11, big=big)
    feed(ctx.mock.bootstrap, inputs, 0, len(inputs.recs))
    a = ctx.worker("a", extra_config=extra)
    ctx.wait_all(inputs)
    if ctx.args.mode == "worker":
        wait_until(lambda: a.metric("embedq_in_flight_messages") == 0, 10, "nothing in flight")
        st, body = a.get("/readyz")
        check(st == 200, "/readyz %s: %s" % (st, body.strip()))
        check(a.metric("embedq_partitions_stuck") == 0, "embedq_partitions_stuck 0")
    check("was not delivered" not in a.log_text(), "no delivery failed")
    ctx.finish(inputs, limit=eff)


def scenario_big_dead_letter_low_limit(ctx, n):
    scenario_big_dead_letter(ctx, n, limit=3000)


def scenario_dead_letter_refused(ctx, n):
    """The broker refuses dead letters as too large (MESSAGE_TOO_LARGE on a
    Produce request, as a broker or topic limit below the producer's would):
    they are sent again with value, key and input headers left out, and
    embedq.cut=value,key,headers, the reason, size and SHA-256; every input
    accounted for, offsets at the log end, exit 0."""
    inputs = Inputs(40, 1, 13)  # every record poison
    feed(ctx.mock.bootstrap, inputs, 0, len(inputs.recs))
    check(ctx.mock.cmd("error 0 1 10").startswith("ok"), "next Produce request: error 10")
    a = ctx.worker("a")
    by_pos = {pos: rid for rid, pos in inputs.where.items()}

    def dead():
        got = {}
        for m in ctx.dlq.poll():
            hd = dict(m.headers() or [])
            pos = (int(hd["embedq.source.partition"]),
                   int(hd["embedq.source.offset"]))
            got[by_pos[pos]] = m
        return got
    wait_until(lambda: len(dead()) == len(inputs.recs), 60, "every dead letter")
    n_left_out = 0
    for rid, m in dead().items():
        r = inputs.by_id[rid]
        hd = dict(m.headers() or [])
        if "embedq.cut" not in hd:
            if m.value() != r["value"] or m.key() != r["key"]:
                raise Failure("dead letter %s is not the original record" % rid)
            continue
        n_left_out += 1
        if (hd["embedq.cut"] != b"value,key,headers" or m.value() or m.key() is not None or
                any(not k.startswith("embedq.") for k, _ in m.headers()) or
                hd.get("embedq.original.size") != str(len(r["value"])).encode() or
                hd.get("embedq.original.sha256") != hashlib.sha256(r["value"]).hexdigest().encode()
                or b"the broker refused the dead letter as too large" not in hd["embedq.cut.reason"]
                or not hd.get("embedq.error", b"").startswith(b"malformed_json")):
            raise Failure("dead letter %s: value %r, key %r, headers %r" %
                          (rid, m.value()[:40] if m.value() else m.value(), m.key(),
                           m.headers()))
    check(n_left_out > 0, "%d of %d dead letters refused by the broker went out again with value, "
          "key and input headers left out (embedq.cut=value,key,headers, original size and "
          "SHA-256, the reason)" % (n_left_out, len(inputs.recs)))
    check("was not delivered" not in a.log_text(), "no delivery failed")
    a.sigterm()
    rc = a.wait(60)
    check(rc == 0, "exit 0 (got %s)" % rc)
    committed, ends = group_offsets(ctx.mock.bootstrap, ctx.group)
    check(committed == ends, "committed offsets %s = log end %s" % (committed, ends))


def scenario_publish_stalled(ctx, n):
    """(worker) Every Produce request refused (NOT_ENOUGH_REPLICAS, retried by
    librdkafka) until `clear 0`: /readyz 503 after --publish-fail-timeout
    (EMBEDQ_PUBLISH_FAIL_TIMEOUT=2) saying why, 200 again once outputs are
    accepted; nothing lost."""
    if ctx.args.mode != "worker":
        print("SKIP: readiness from publish outcomes is the worker's (cmd_worker.c)")
        sys.exit(77)
    inputs = Inputs(300, 0, 12)
    feed(ctx.mock.bootstrap, inputs, 0, len(inputs.recs))
    check(ctx.mock.cmd("error 0 100000 19").startswith("ok"),
          "every Produce request (next 100,000): error 19")
    a = ctx.worker("a", env={"EMBEDQ_PUBLISH_FAIL_TIMEOUT": "2"})
    seen = []

    def not_ready():
        st, body = a.get("/readyz")
        if st == 503 and "nothing published for" in body:
            seen.append((body.strip(), a.metric("embedq_ready")))
            return True
        return False
    wait_until(not_ready, 60, "/readyz 503: nothing published", step=0.1)
    body, ready = seen[-1]
    check(re.match(r"kafka: nothing published for [2-9] s while outputs wait for the broker",
                   body), "/readyz says why: %s" % body)
    check(ready == 0, "embedq_ready %s while nothing is published" % ready)
    wait_until(lambda: re.search(r"info: not ready: kafka: nothing published for",
                                 a.log_text()), 5, "the readiness change to be logged")
    check(a.get("/readyz")[0] == 503, "/readyz still 503 while every Produce fails")
    check(ctx.progress() == 0, "no output arrived meanwhile")
    check(ctx.mock.cmd("clear 0") == "ok clear 0", "Produce errors cleared")
    wait_until(lambda: a.get("/readyz")[0] == 200, 60, "/readyz 200 once outputs are accepted")
    ctx.wait_all(inputs)
    ctx.finish(inputs)


def scenario_fatal_producer(ctx, n):
    """The idempotent producer hits a fatal error (OUT_OF_ORDER_SEQUENCE_NUMBER):
    nothing more is committed, readiness says so, the worker exits non-zero
    (by itself through on_fatal, or on SIGTERM); the next one reprocesses."""
    n = min(n, 3000)
    inputs = Inputs(n, 0, 9)
    feed(ctx.mock.bootstrap, inputs, 0, n)
    check(ctx.mock.cmd("error 0 1 45").startswith("ok"), "next Produce request: error 45")
    a = ctx.worker("a")
    wait_until(lambda: "fatal error" in a.log_text(), 60, "the fatal error")
    if ctx.args.mode == "worker":
        wait_until(lambda: not a.alive() or a.get("/readyz")[0] == 503, 10,
                   "/readyz 503 (or an exit) after the fatal error")
    else:
        wait_until(lambda: not a.alive(), 30, "the driver to stop by itself (on_fatal)")
    if a.alive():
        a.sigterm()
    rc = a.wait(60)
    check(rc not in (0, None), "a fatal producer error: exit %s (non-zero)" % rc)
    ctx.check_at_least_once(inputs, "after the fatal error")
    ctx.worker("b")
    ctx.wait_all(inputs)
    ctx.finish(inputs)


def scenario_bad_config(ctx, n):
    """A bad librdkafka setting stops the start with a message naming it."""
    cases = [("no.such.property=1", "no.such.property", None),
             ("enable.auto.offset.store=true", "enable.auto.offset.store", None),
             ("consumer.session.timeout.ms=abc", "session.timeout.ms", None),
             ("producer.acks=1", "acks", None),
             # an item without '=' may be the tail of a password cut at a ';'
             ("novalue", "expected KEY=VALUE", "novalue"),
             # a secret's value is never shown, even under a misspelt key
             ("sasl.pasword=hunter2", "sasl.pasword", "hunter2")]
    for i, (kv, name, hidden) in enumerate(cases):
        w = ctx.worker("bad%d" % i, extra_config=[kv])
        rc = w.wait(60)
        text = w.log_text()
        check(rc != 0 and name in text and (not hidden or hidden not in text),
              "--kafka-config %s: exit %d, message names %s%s: %s" %
              (kv, rc, name, " and hides %s" % hidden if hidden else "",
               [l for l in text.splitlines() if name in l][:1]))
    # A producer limit too small for even a dead letter's embedq.* headers
    # (here with a 120-character input topic) is refused, naming the setting.
    w = ctx.worker("bad-limit", extra_config=["producer.message.max.bytes=1000"],
                   in_topic="t" * 120)
    rc = w.wait(60)
    check(rc != 0 and re.search(r"kafka setting producer message.max.bytes=1000 is too small: "
                                r"a dead letter of input topic 't+' needs at least \d+ bytes",
                                w.log_text()),
          "producer.message.max.bytes=1000 refused: exit %d: %s" %
          (rc, w.log_text().strip()[-300:]))
    if ctx.args.mode != "worker":
        return
    # EMBEDQ_KAFKA_CONFIG: ';'-separated, "\;" is a ';' inside an item.
    w = ctx.worker("bad-env", env={"EMBEDQ_KAFKA_CONFIG": r"linger.ms=5;no.such\;prop=1"})
    rc = w.wait(60)
    check(rc == 2 and "'no.such;prop=***'" in w.log_text(),
          "EMBEDQ_KAFKA_CONFIG with \\;: exit %d: %s" % (rc, w.log_text().strip()[-200:]))
    # SASL credentials apart from the list are taken verbatim (';' and '='
    # included): accepted, the worker starts (this broker ignores them: no
    # SASL listener), and they appear nowhere in its log.
    w = ctx.worker("sasl-flags", extra_args=["--kafka-sasl-password", "hunter2;x=y",
                                             "--kafka-sasl-username", "u;v"],
                   env={"EMBEDQ_KAFKA_SASL_PASSWORD": "ignored;by=the flag"})
    wait_until(lambda: w.get("/readyz")[0] == 200 or not w.alive(), 60, "sasl-flags ready")
    check(w.alive(), "--kafka-sasl-username/--kafka-sasl-password accepted verbatim")
    w.sigterm()
    rc = w.wait(60)
    text = w.log_text()
    check(rc == 0 and "hunter2" not in text and "ignored" not in text,
          "exit %d, the password is not in the log" % rc)
    # SASL against a broker without it: not ready, and /readyz and /metrics
    # say why (the authentication error), not just "no broker reachable".
    w = ctx.worker("sasl-refused", extra_config=["security.protocol=SASL_PLAINTEXT",
                                                 "sasl.mechanism=SCRAM-SHA-256"],
                   extra_args=["--kafka-sasl-username", "u", "--kafka-sasl-password", "p"])
    wait_until(lambda: "_AUTHENTICATION" in (w.get("/readyz")[1] or ""), 30,
               "/readyz to name the authentication error")
    st, body = w.get("/readyz")
    log("readyz:", body.strip()[:160])
    m = re.search(r'^embedq_broker_errors_total\{kind="authentication"\} (\d+)',
                  w.get("/metrics")[1], re.M)
    check(st == 503 and m and int(m.group(1)) > 0,
          "SASL refused: /readyz 503 naming _AUTHENTICATION, authentication errors counted (%s)"
          % (m.group(1) if m else None))
    w.sigterm()
    rc = w.wait(60)
    check(rc == 0, "SIGTERM while not ready: exit %d" % rc)


SCENARIOS = {
    "two_workers": scenario_two_workers,
    "kill_restart": scenario_kill_restart,
    "broker_down": scenario_broker_down,
    "join_midstream": scenario_join_midstream,
    "close_rebalance": scenario_close_rebalance,
    "stop_together": scenario_stop_together,
    "sigterm_under_load": scenario_sigterm_under_load,
    "poison": scenario_poison,
    "bad_config": scenario_bad_config,
    "output_too_large": scenario_output_too_large,
    "delivery_failure": scenario_delivery_failure,
    "fatal_producer": scenario_fatal_producer,
    "big_dead_letter": scenario_big_dead_letter,
    "big_dead_letter_low_limit": scenario_big_dead_letter_low_limit,
    "dead_letter_refused": scenario_dead_letter_refused,
    "publish_stalled": scenario_publish_stalled,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedq", required=True)
    ap.add_argument("--driver")
    ap.add_argument("--mode", choices=["worker", "echo"], default="worker")
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--n", type=int, default=10000)
    args = ap.parse_args()

    if subprocess.run([args.embedq, "mock-kafka", "--help"], capture_output=True).returncode:
        print("SKIP: this embedq has no mock-kafka (built without librdkafka)")
        return 77
    if args.mode == "worker":
        if subprocess.run([args.embedq, "worker", "--help"], capture_output=True).returncode:
            print("SKIP: `embedq worker` is not available yet")
            return 77
    elif not args.driver or not os.access(args.driver, os.X_OK):
        print("SKIP: no kafka_echo_driver")
        return 77
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    ctx = None
    try:
        ctx = Ctx(args)
        SCENARIOS[args.scenario](ctx, args.n)
    except Failure as e:
        log("FAIL:", e)
        if ctx:
            for w in ctx.workers:
                log("---- %s log (tail) ----" % w.name)
                print(w.log_text()[-3000:])
                if args.mode == "worker" and w.alive():
                    code, text = w.get("/metrics")
                    log("---- %s /metrics (%s), without histograms ----" % (w.name, code))
                    print("\n".join(l for l in text.splitlines()
                                    if l.startswith("embedq_") and "_bucket" not in l))
        return 1
    finally:
        if ctx:
            ctx.close()
    log("%s (%s): all ok" % (args.scenario, args.mode))
    return 0


if __name__ == "__main__":
    sys.exit(main())
