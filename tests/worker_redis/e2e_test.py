#!/usr/bin/env python3
"""`embedq worker --source redis` end to end: a real redis-server, a generated
tiny model on the CPU engine, vectors checked against `embedq embed`.

usage: e2e_test.py --embedq BIN --scenario NAME|all --work DIR

Scenarios (one function each):
  two_workers         10,000 messages (JSON, msgpack and plain-field entries,
                      some with instruction / dimensions) into two workers of
                      one group: every id out, each vector equal to `embedq
                      embed` for the same input (cosine >= 0.99999),
                      duplicates counted (none expected), nothing pending
  kill9_claim         a worker killed with -9 holding pending entries; the
                      other worker claims them (XAUTOCLAIM) and processes them;
                      the dead consumer is not deleted
  redis_restart       redis-server (appendonly, fsync always) frozen then
                      killed -9 and restarted on the same port under load:
                      /readyz 503 then 200 again, nothing lost, nothing
                      pending (JSON output format)
  sigterm_under_load  SIGTERM with a backlog: exit 0, XPENDING empty, every
                      output acknowledged; a second worker finishes the rest
  backlog_1mb         600 texts of 1 MB: a worker with default flags, one held
                      only by --max-in-flight-bytes: peak RSS under 1 GB, the
                      byte bound kept; 40 more held by one worker for minutes:
                      another, idle, with a claim time-out of 30 s claims none
  byte_bound_one      --max-in-flight-bytes 1: each message passes alone, all
                      out; 0 is refused naming the flag
  poison              bad inputs -> exactly one dead letter each, with the
                      right `error` code and the original fields; an entry
                      delivered too often -> too_many_deliveries
  signals             SIGTERM and SIGHUP while the model loads (a model whose
                      weights file is a FIFO nobody writes: the load blocks
                      for as long as the test wants): a log line and exit 0
                      within 5 s; SIGHUP under load drains like SIGTERM
                      (exit 0, nothing pending, the drain log line)
  long_instruction    --max-tokens 64: an instruction whose query template
                      takes more than half the limit is instruction_too_long
                      (it used to truncate the text away: different texts,
                      identical vectors); a long text after a short
                      instruction is truncated (truncate policy) or
                      text_too_long naming the tokens left to the text
                      (reject policy), never the instruction
  publish_oom         redis-server over maxmemory (noeviction) from the moment
                      the inputs arrive, until the test frees memory: every
                      XADD of an output fails with OOM; /readyz 503 naming it
                      after --publish-fail-timeout (EMBEDQ_PUBLISH_FAIL_TIMEOUT
                      =2) and as long as it lasts; 200 again once memory is
                      freed, every output then published and acknowledged

Every scenario exits 77 (skipped) when `embedq worker --help` fails (the
worker is not wired in yet), or when redis-server, python3-redis or
python3-msgpack is missing.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Proc, RedisServer, pending_count, wait_for, xrange_all  # noqa: E402

EMBEDQ = None
WORK = None
CURRENT = ""
MODEL = None
IN, GROUP, OUT, DLQ = "{embed}:in", "workers", "{embed}:out", "{embed}:dlq"
COS_MIN = 0.99999

WORDS = ("alpha beta gamma delta stream vector kafka redis model token batch queue worker "
         "embedding matryoshka cosine shard replica lag scale drain signal entry group "
         "consumer claim pending output input document chunk sentence paragraph").split()


# ---- set-up -------------------------------------------------------------------------------


def setup(workdir):
    global WORK, MODEL
    harness.skip_unless_ready()
    try:
        import msgpack  # noqa: F401
    except ImportError:
        harness.skip("python3-msgpack not installed (Debian package python3-msgpack)")
    try:
        import numpy  # noqa: F401
    except ImportError:
        harness.skip("python3-numpy not installed")
    p = subprocess.run([EMBEDQ, "worker", "--help"], capture_output=True)
    if p.returncode != 0:
        harness.skip("`embedq worker --help` fails: the worker is not wired in yet")
    WORK = workdir
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    MODEL = os.path.join(WORK, "tiny")
    subprocess.run([EMBEDQ, "gen-model", "--preset", "tiny", "--out", MODEL, "--seed", "7"],
                   check=True, capture_output=True)


def redis_dir():
    """A fresh data directory per scenario (persistent ones leave AOF files)."""
    d = os.path.join(WORK, "redis-" + CURRENT)
    shutil.rmtree(d, ignore_errors=True)
    return d


def hidden_size():
    with open(os.path.join(MODEL, "config.json")) as f:
        return json.load(f)["hidden_size"]


def worker(srv, consumer, name, *extra, group=GROUP, stream=IN, env=None):
    port = harness.free_port()
    args = [EMBEDQ, "worker", "--source", "redis", "--redis-url", srv.url,
            "--in-stream", stream, "--group", group, "--out-stream", OUT, "--dlq-stream", DLQ,
            "--consumer", consumer, "--model", MODEL, "--device", "cpu", "--threads", "1",
            "--tokenize-threads", "1", "--metrics-addr", "127.0.0.1",
            "--metrics-port", str(port)] + [str(x) for x in extra]
    p = Proc(args, os.path.join(WORK, name + ".log"),
             env={**os.environ, **env} if env else None)
    p.http = f"http://127.0.0.1:{port}"
    return p


def http_get(p, path):
    try:
        with urllib.request.urlopen(p.http + path, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, OSError):
        return None, ""


def wait_ready(p, timeout=60):
    def ok():
        if p.proc.poll() is not None:
            raise AssertionError(f"worker exited {p.proc.returncode}:\n{p.stderr_tail()}")
        return http_get(p, "/readyz")[0] == 200
    wait_for(ok, timeout, "/readyz 200")


def stop(p, timeout=60, want_rc=0):
    p.signal(signal.SIGTERM)
    rc = p.wait(timeout)
    assert rc == want_rc, f"worker exit {rc} (want {want_rc}):\n{p.stderr_tail()}"


# ---- inputs, outputs, reference vectors ---------------------------------------------------


def make_inputs(n, seed, prefix="m"):
    """[(fields for XADD, reference JSON object)]: 70% JSON `data`, 10% with an
    instruction, 10% with dimensions, 5% msgpack `data` (integer ids), 5%
    plain fields."""
    import msgpack
    rng = random.Random(seed)
    hid = hidden_size()
    out = []
    for i in range(n):
        text = f"{prefix} {i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40)))
        k = rng.random()
        ref = {"id": f"{prefix}-{i}", "text": text}
        if k < 0.70:
            fields = {"data": json.dumps(ref)}
        elif k < 0.80:
            ref["instruction"] = "Given a query, retrieve relevant passages"
            fields = {"data": json.dumps(ref)}
        elif k < 0.90:
            ref["dimensions"] = rng.choice([32, 64, hid])
            fields = {"data": json.dumps(ref)}
        elif k < 0.95:
            ref["id"] = 10_000_000 * (1 + (seed % 100)) + i
            fields = {"data": msgpack.packb(ref)}
        else:
            ref["dimensions"] = 64
            fields = {"id": ref["id"], "text": text, "dimensions": "64"}
        out.append((fields, ref))
    return out


def feed(r, inputs, chunk=500):
    p = r.pipeline(transaction=False)
    for k, (fields, _) in enumerate(inputs):
        p.xadd(IN, fields)
        if k % chunk == chunk - 1:
            p.execute()
    p.execute()


def reference(inputs):
    """{str(id): numpy vector} from `embedq embed --device cpu`."""
    import numpy as np
    src = "".join(json.dumps(ref) + "\n" for _, ref in inputs)
    p = subprocess.run([EMBEDQ, "embed", "--model", MODEL, "--device", "cpu"], input=src,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    res = {}
    for line in p.stdout.splitlines():
        o = json.loads(line)
        res[str(o["id"])] = np.asarray(o["embedding"], dtype=np.float64)
    assert len(res) == len(inputs)
    return res


def decode_out(data, fmt):
    if fmt == "json":
        return json.loads(data)
    import msgpack
    return msgpack.unpackb(data, raw=False)


def outputs(r, fmt="msgpack"):
    """{str(id): [output object, ...]}"""
    res = {}
    for _, f in xrange_all(r, OUT):
        o = decode_out(f[b"data"], fmt)
        res.setdefault(str(o["id"]), []).append(o)
    return res


def n_unique_out(r, fmt="msgpack"):
    return len(outputs(r, fmt))


def check_vectors(r, inputs, ref, fmt="msgpack", allow_dups=True):
    import numpy as np
    out = outputs(r, fmt)
    want = {str(x["id"]): x for _, x in inputs}
    missing = [i for i in want if i not in out]
    assert not missing, f"{len(missing)} ids without output, e.g. {missing[:5]}"
    extra = [i for i in out if i not in want]
    assert not extra, f"outputs for unknown ids {extra[:5]}"
    worst = 1.0
    for i, objs in out.items():
        v_ref = ref[i]
        for o in objs:
            v = np.asarray(o["embedding"], dtype=np.float64)
            assert len(v) == len(v_ref), f"{i}: {len(v)} dimensions, want {len(v_ref)}"
            assert o["dimensions"] == len(v_ref), o["dimensions"]
            cos = float(v @ v_ref / (np.linalg.norm(v) * np.linalg.norm(v_ref)))
            worst = min(worst, cos)
            assert cos >= COS_MIN, f"{i}: cosine {cos} vs embedq embed"
    dups = sum(len(v) - 1 for v in out.values())
    if not allow_dups:
        assert dups == 0, f"{dups} duplicate outputs"
    return dups, worst


def metric(p, name):
    code, body = http_get(p, "/metrics")
    if code != 200:
        return None
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return None


# ---- scenarios -----------------------------------------------------------------------------


def sc_two_workers():
    srv = RedisServer(redis_dir()).start()
    r = srv.client()
    try:
        inputs = make_inputs(10_000, seed=1)
        ref = reference(inputs)
        a = worker(srv, "w1", "w1")
        b = worker(srv, "w2", "w2")
        wait_ready(a)
        wait_ready(b)
        feed(r, inputs)
        wait_for(lambda: n_unique_out(r) == len(inputs) and pending_count(r, IN, GROUP) == 0,
                 240, "every id out, nothing pending", step=1)
        pa = metric(a, "embedq_messages_produced_total")
        pb = metric(b, "embedq_messages_produced_total")
        stop(a)
        stop(b)
        dups, worst = check_vectors(r, inputs, ref)
        print(f"two_workers: w1 produced {pa}, w2 {pb}; {dups} duplicates; "
              f"worst cosine {worst:.7f}")
        assert dups == 0, f"{dups} duplicate outputs without any failure"
        assert (pa or 0) > 0 and (pb or 0) > 0, f"one worker idle: {pa}, {pb}"
        assert r.xlen(DLQ) == 0
        assert r.xlen(IN) == len(inputs), "the input stream was trimmed"
    finally:
        srv.stop()


def sc_kill9_claim():
    srv = RedisServer(redis_dir()).start()
    r = srv.client()
    try:
        first = make_inputs(1000, seed=2, prefix="k")
        later = make_inputs(500, seed=3, prefix="l")
        ref = reference(first + later)
        # A batches for up to 60 s and has room for everything: it reads all
        # 1000 entries and sits on them, pending, until it is killed.
        a = worker(srv, "a", "a", "--max-wait-ms", "60000", "--batch-tokens", "65536")
        wait_ready(a)
        feed(r, first)
        wait_for(lambda: r.xpending(IN, GROUP)["consumers"] and
                 {c["name"]: c["pending"] for c in r.xpending(IN, GROUP)["consumers"]}
                 .get(b"a", 0) == len(first), 30, "a holding every entry")
        assert r.xlen(OUT) == 0
        a.kill9()
        b = worker(srv, "b", "b", "--claim-idle-ms", "1000", "--claim-interval-ms", "300")
        wait_ready(b)
        feed(r, later)
        wait_for(lambda: n_unique_out(r) == 1500 and pending_count(r, IN, GROUP) == 0, 120,
                 "everything out, nothing pending", step=0.5)
        stop(b)
        dups, worst = check_vectors(r, first + later, ref)
        print(f"kill9_claim: {dups} duplicates, worst cosine {worst:.7f}")
        cons = {c["name"]: c for c in r.xinfo_consumers(IN, GROUP)}
        assert b"a" in cons and cons[b"a"]["pending"] == 0, cons
        assert r.xlen(DLQ) == 0
    finally:
        srv.stop()


def sc_redis_restart():
    srv = RedisServer(redis_dir(), persistent=True).start()
    r = srv.client()
    try:
        inputs = make_inputs(4000, seed=4, prefix="r")
        ref = reference(inputs)
        w = worker(srv, "w1", "w1", "--output-format", "json", "--max-in-flight", "256")
        wait_ready(w)
        done_feeding = threading.Event()
        dup_inputs = [0]

        def feeder():
            import redis
            c = srv.client(socket_timeout=2)
            k = 0
            while k < len(inputs):
                try:
                    c.xadd(IN, inputs[k][0])
                    k += 1
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                        redis.exceptions.BusyLoadingError):
                    dup_inputs[0] += 1  # may have been applied: a duplicate input at worst
                    time.sleep(0.05)
            done_feeding.set()

        t = threading.Thread(target=feeder, daemon=True)
        t.start()
        wait_for(lambda: r.xlen(OUT) >= 500, 120, "500 outputs before the restart", step=0.2)
        srv.proc.send_signal(signal.SIGSTOP)
        time.sleep(0.5)
        srv.kill(signal.SIGKILL)
        wait_for(lambda: http_get(w, "/readyz")[0] == 503, 20, "/readyz 503 while redis is down")
        time.sleep(1)
        srv.start()
        r = srv.client()
        wait_for(lambda: http_get(w, "/readyz")[0] == 200, 30, "/readyz 200 after the restart")
        assert done_feeding.wait(120)
        wait_for(lambda: n_unique_out(r, "json") == len(inputs) and
                 pending_count(r, IN, GROUP) == 0, 180, "every id out, nothing pending", step=1)
        stop(w)
        dups, worst = check_vectors(r, inputs, ref, fmt="json")
        print(f"redis_restart: {dups} duplicates, worst cosine {worst:.7f}, "
              f"{r.xlen(IN) - len(inputs)} duplicate inputs")
    finally:
        srv.stop()


def sc_sigterm_under_load():
    srv = RedisServer(redis_dir()).start()
    r = srv.client()
    try:
        inputs = make_inputs(10_000, seed=5, prefix="s")
        ref = reference(inputs)
        feed(r, inputs)
        w = worker(srv, "w1", "w1", "--max-in-flight", "1024", "--drain-timeout", "60")
        wait_ready(w)
        wait_for(lambda: r.xlen(OUT) >= 500, 120, "500 outputs", step=0.01)
        t0 = time.time()
        stop(w, timeout=90)
        took = time.time() - t0
        n_out = r.xlen(OUT)
        p = pending_count(r, IN, GROUP)
        assert p == 0, f"{p} entries pending after SIGTERM"
        assert n_unique_out(r) == n_out, "duplicates in a single clean run"
        print(f"sigterm_under_load: drained in {took:.1f} s with {n_out} of {len(inputs)} out")
        assert n_out < len(inputs), "no backlog left: the test did not test a drain"
        w = worker(srv, "w2", "w2")
        wait_ready(w)
        wait_for(lambda: n_unique_out(r) == len(inputs) and pending_count(r, IN, GROUP) == 0,
                 240, "the rest", step=1)
        stop(w)
        dups, _ = check_vectors(r, inputs, ref, allow_dups=False)
    finally:
        srv.stop()


def sc_poison():
    import msgpack
    srv = RedisServer(redis_dir()).start()
    r = srv.client()
    try:
        big = json.dumps({"id": "big", "text": "x" * 5000})
        cases = [  # (fields, expected error code)
            ({"data": b'{"id": "j1", "text": '}, "malformed_json"),
            ({"data": b"\xc1"}, "malformed_msgpack"),
            ({"data": b"[1, 2]"}, "not_a_map"),
            ({"data": msgpack.packb([1, 2])}, "not_a_map"),
            ({"data": b'{"text": "no id"}'}, "missing_id"),
            ({"data": b'{"id": "j5"}'}, "missing_text"),
            ({"data": b'{"id": "j6", "text": ""}'}, "empty_text"),
            ({"data": b'{"id": "j7", "text": 5}'}, "text_wrong_type"),
            ({"data": b'{"id": "j8", "text": "a", "dimensions": 7}'}, "dimensions_out_of_range"),
            ({"data": b'{"id": "j9", "text": "a", "dimensions": "64"}'},
             "dimensions_wrong_type"),
            ({"data": b'{"id": "j10", "text": "\xff\xfe"}'}, "invalid_utf8"),
            ({"data": b'{"id": "j11", "id": "y", "text": "a"}'}, "duplicate_key"),
            ({"data": b'{"id": true, "text": "a"}'}, "id_wrong_type"),
            ({"data": b'{"id": "j13", "text": "a", "instruction": 3}'},
             "instruction_wrong_type"),
            ({"data": big}, "too_large"),
            ({"data": b""}, "empty_message"),
            ({"data": b'{"id": "j16", "text": "ok"}', "note": "extra fields are kept",
              "error": "stale"}, None),  # valid: not a dead letter
            ({"id": "p1", "text": ""}, "empty_text"),
            ({"id": "p2", "text": "ok", "dimensions": "abc"}, "dimensions_"),
            ({"text": "no id"}, "missing_id"),
            # a repeated `data` (a list: XADD with the field twice): one dead
            # letter holding both, in order, not an output from the first
            ([("data", b'{"id": "d1", "text": "first"}'), ("note", "n"),
              ("data", b'{"id": "d2", "text": "second"}')], "duplicate_key"),
        ]
        good = make_inputs(300, seed=6, prefix="g")
        ref = reference(good)
        # an entry redelivered too often: read by a consumer that "died" 10 times
        r.xgroup_create(IN, GROUP, "0", mkstream=True)
        loop_id = r.xadd(IN, {"data": b'{"id": "loop", "text": "crashes the worker"}'}).decode()
        r.xreadgroup(GROUP, "ghost", {IN: ">"}, count=1)
        r.xclaim(IN, GROUP, "ghost", 0, [loop_id], retrycount=10)
        expect = {loop_id: ("too_many_deliveries", {b"data": b'{"id": "loop", "text": '
                                                            b'"crashes the worker"}'})}
        # the good inputs with a bad one after every 15th
        seq = []
        for k, (fields, _) in enumerate(good):
            seq.append((fields, "good"))
            if k % 14 == 0 and k // 14 < len(cases):
                seq.append(cases[k // 14])
        assert sum(1 for _, c in seq if c != "good") == len(cases)
        p = r.pipeline(transaction=False)
        for fields, _ in seq:
            if isinstance(fields, list):  # repeated field names
                p.execute_command("XADD", IN, "*", *[x for kv in fields for x in kv])
            else:
                p.xadd(IN, fields)
        valid_extra = None
        repeated = {}  # entry id -> [name, value, ...] its dead letter must start with
        for sid, (fields, code) in zip((x.decode() for x in p.execute()), seq):
            if code == "good":
                continue
            if code is None:
                valid_extra = sid
                continue
            if isinstance(fields, list):
                repeated[sid] = [x.encode() if isinstance(x, str) else x
                                 for kv in fields for x in kv]
                fields = {}
            expect[sid] = (code, {(f.encode() if isinstance(f, str) else f):
                                  (v.encode() if isinstance(v, str) else v)
                                  for f, v in fields.items()})
        w = worker(srv, "w1", "w1", "--max-message-bytes", "4096", "--max-deliveries", "3",
                   "--claim-idle-ms", "500", "--claim-interval-ms", "200")
        wait_ready(w)
        n_dead = len(expect)
        wait_for(lambda: r.xlen(DLQ) >= n_dead and n_unique_out(r) >= len(good) + 1 and
                 pending_count(r, IN, GROUP) == 0, 120, "dead letters and outputs", step=0.5)
        time.sleep(1)
        stop(w)
        dl = xrange_all(r, DLQ)
        seen = {}
        for _, f in dl:
            sid = f[b"source_id"].decode()
            seen[sid] = seen.get(sid, 0) + 1
            assert sid in expect, f"unexpected dead letter {sid}: {f}"
            code, orig = expect[sid]
            err = f[b"error"].decode()
            assert err.startswith(code), f"{sid}: error {err!r}, want code {code}"
            for k, v in orig.items():
                if k in (b"error", b"source_id"):
                    continue
                assert f.get(k) == v, f"{sid}: field {k!r} = {f.get(k)!r}, want {v!r}"
        assert all(n == 1 for n in seen.values()), f"repeated dead letters: {seen}"
        assert set(seen) == set(expect), f"missing dead letters: {set(expect) - set(seen)}"
        # the raw dead letters (redis-py's xrange keeps one value per name)
        for _, flat in xrange_raw(r, DLQ):
            sid = dict(zip(flat[0::2], flat[1::2]))[b"source_id"].decode()
            if sid in repeated:
                want = repeated.pop(sid)
                assert flat[:len(want)] == want, f"{sid}: dead letter {flat}, want {want} first"
        assert not repeated, f"no dead letter for {list(repeated)}"
        out = outputs(r)
        assert "j16" in out and len(out) == len(good) + 1, len(out)
        assert "d1" not in out and "d2" not in out, "an entry with two `data` was embedded"
        dups, worst = check_vectors_subset(out, good, ref)
        print(f"poison: {len(seen)} dead letters ok, worst cosine {worst:.7f}")
        assert valid_extra
    finally:
        srv.stop()


def sc_signals():
    global MODEL
    srv = RedisServer(redis_dir()).start()
    r = srv.client()
    try:
        # 1. While the model loads: the weights file is a FIFO, so eq_open
        # blocks in its thread until the test gives up. /readyz says
        # "loading" (503) meanwhile; the signal must end the process at once.
        fifo_model = os.path.join(WORK, "fifo_model")
        shutil.rmtree(fifo_model, ignore_errors=True)
        shutil.copytree(MODEL, fifo_model)
        os.unlink(os.path.join(fifo_model, "model.safetensors"))
        os.mkfifo(os.path.join(fifo_model, "model.safetensors"))
        real_model, MODEL = MODEL, fifo_model
        try:
            for sig in (signal.SIGTERM, signal.SIGHUP):
                w = worker(srv, "wl", "loading_" + sig.name)
                wait_for(lambda: http_get(w, "/readyz")[0] == 503, 30, "/readyz 503 (loading)")
                time.sleep(0.5)
                assert http_get(w, "/readyz")[0] == 503, "the model loaded from a FIFO?"
                t0 = time.time()
                w.signal(sig)
                rc = w.wait(10)
                took = time.time() - t0
                log = open(w.log_path, "rb").read().decode()
                assert rc == 0, f"{sig.name} while loading: exit {rc}\n{log}"
                assert f"{sig.name} while the model loads" in log, log
                assert took < 5, f"{sig.name} while loading: {took:.1f} s to exit"
                print(f"signals: {sig.name} while loading: exit 0 in {took:.2f} s")
        finally:
            MODEL = real_model
        # 2. SIGHUP under load drains like SIGTERM.
        inputs = make_inputs(3000, seed=9, prefix="h")
        feed(r, inputs)
        w = worker(srv, "w1", "hup", "--max-in-flight", "512", "--drain-timeout", "60")
        wait_ready(w)
        wait_for(lambda: r.xlen(OUT) >= 200, 120, "200 outputs", step=0.01)
        w.signal(signal.SIGHUP)
        rc = w.wait(90)
        log = open(w.log_path, "rb").read().decode()
        assert rc == 0, f"SIGHUP under load: exit {rc}\n{log[-3000:]}"
        assert "SIGHUP: draining" in log and "drained:" in log, log[-3000:]
        p = pending_count(r, IN, GROUP)
        n_out = r.xlen(OUT)
        assert p == 0, f"{p} entries pending after SIGHUP"
        assert n_unique_out(r) == n_out, "duplicates in a single clean run"
        print(f"signals: SIGHUP drained with {n_out} of {len(inputs)} out, 0 pending")
        assert n_out < len(inputs), "no backlog left: the test did not test a drain"
    finally:
        srv.stop()


def sc_long_instruction():
    srv = RedisServer(redis_dir()).start()
    r = srv.client()
    try:
        long_instr = " ".join(random.Random(7).choice(WORDS) for _ in range(400))
        short_instr = "Given a web search query, retrieve relevant passages"
        long_text = " ".join(random.Random(8).choice(WORDS) for _ in range(300))
        entries = [  # (fields, code per policy: (truncate, reject); None = an output)
            ({"id": "li1", "text": "six words about a zebra here", "instruction": long_instr},
             ("instruction_too_long", "instruction_too_long")),
            ({"id": "li2", "text": "a different text entirely", "instruction": long_instr},
             ("instruction_too_long", "instruction_too_long")),
            ({"id": "lt1", "text": long_text, "instruction": short_instr}, (None, "text_too_long")),
            ({"id": "lt2", "text": long_text}, (None, "text_too_long")),
            ({"id": "ok1", "text": "short text", "instruction": short_instr}, (None, None)),
        ]
        for policy_i, policy in enumerate(("truncate", "reject")):
            for k in (IN, OUT, DLQ):
                r.delete(k)
            r.xgroup_create(IN, GROUP, "0", mkstream=True)
            ids = {}
            for fields, codes in entries:
                ids[r.xadd(IN, fields).decode()] = (fields, codes[policy_i])
            w = worker(srv, "w-" + policy, "long_" + policy, "--max-tokens", "64",
                       "--long-input", policy, "--output-format", "json")
            wait_ready(w)
            n_dead = sum(1 for _, c in ids.values() if c)
            n_out = len(ids) - n_dead
            wait_for(lambda: r.xlen(DLQ) >= n_dead and r.xlen(OUT) >= n_out and
                     pending_count(r, IN, GROUP) == 0, 60, "outputs and dead letters", step=0.2)
            stop(w)
            got = {}
            for _, f in xrange_all(r, DLQ):
                got[f[b"source_id"].decode()] = f[b"error"].decode()
            out = outputs(r, "json")
            for sid, (fields, code) in ids.items():
                if code is None:
                    o = out.get(fields["id"])
                    assert o and len(o) == 1, f"{policy}: {fields['id']}: outputs {o}"
                    assert sid not in got, f"{policy}: {fields['id']} dead-lettered: {got[sid]}"
                    want_trunc = fields["text"] == long_text
                    assert o[0]["truncated"] is want_trunc and o[0]["tokens"] <= 64, \
                        f"{policy}: {fields['id']}: {o[0]['truncated']} {o[0]['tokens']}"
                    continue
                err = got.get(sid, "")
                assert err.startswith(code + ":"), f"{policy}: {fields['id']}: {err!r}, want {code}"
                if code == "instruction_too_long":
                    assert "more than half of the 64-token limit (32)" in err, err
                if code == "text_too_long" and "instruction" in fields:
                    assert "after the instruction's" in err and "text longer" in err, err
            assert len(got) == n_dead, f"{policy}: dead letters {got}"
            print(f"long_instruction {policy}: {n_out} outputs, {n_dead} dead letters ok")
    finally:
        srv.stop()


def vm_hwm_mb(p):
    """Peak resident set (VmHWM) of a live process, in MB."""
    with open(f"/proc/{p.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def sc_backlog_1mb():
    """Issue 15 item 2: a backlog of 600 texts of 1 MB (each takes seconds on
    the tiny model on 2 cores: the backlog is never finished here). Three
    runs on it, each its own consumer group:
      defaults     one worker, default flags: peak RSS under 1 GB;
      byte bound   one worker that may hold work for an hour (--claim-idle-ms
                   3600000): what it holds is bounded by --max-in-flight-bytes
                   (default 256 MiB; one message of slack), peak RSS < 1 GB;
      hold         another stream of 40 such texts: worker A takes them all
                   (they fit its bounds) and needs minutes for them; worker
                   B, idle with room to spare, looks every second for entries
                   idle 30 s (--claim-idle-ms 30000; A must finish a message
                   within that, or it stops refreshing: ~15 s under ASan),
                   for 60 s: it claims none (A keeps them refreshed) and
                   nothing is embedded twice."""
    srv = RedisServer(redis_dir()).start()
    r = srv.client()
    try:
        rng = random.Random(8)
        body = " ".join(rng.choice(WORDS) for _ in range(200_000))[:1_000_000]
        p = r.pipeline(transaction=False)
        for i in range(600):
            p.xadd(IN, {"data": json.dumps({"id": f"big-{i}", "text": f"{i} " + body})})
            if i % 20 == 19:
                p.execute()
        p.execute()
        bound = 256 << 20
        one = 3 * 1_000_030 + 4 * 8192 + 28 * hidden_size() + 1024 + 4096  # a message's charge

        def run(group, names, seconds, *extra, stream=IN, first=None):
            ws = []
            for n in names:
                ws.append(worker(srv, n, f"{group}-{n}", *extra, group=group, stream=stream))
                wait_ready(ws[-1])
                if first and len(ws) == 1:
                    first()
            t0, peak, held, held_b = time.time(), [0.0] * len(ws), [0] * len(ws), [0] * len(ws)
            while time.time() - t0 < seconds:
                for k, w in enumerate(ws):
                    assert w.proc.poll() is None, f"worker exited:\n{w.stderr_tail()}"
                    peak[k] = max(peak[k], vm_hwm_mb(w))
                    held[k] = max(held[k], int(metric(w, "embedq_in_flight_messages") or 0))
                    held_b[k] = max(held_b[k], int(metric(w, "embedq_in_flight_bytes") or 0))
                time.sleep(0.5)
            claimed, kept = [], []
            for w in ws:
                text = http_get(w, "/metrics")[1]
                for kind, into in (("claimed", claimed), ("kept_alive", kept)):
                    v = [float(x.split()[-1]) for x in text.splitlines()
                         if x.startswith("embedq_broker_events_total") and f'kind="{kind}"' in x]
                    into.append(v[0] if v else 0.0)
            for w in ws:
                w.kill9()
            print(f"backlog_1mb: {group}: peak RSS {[round(x) for x in peak]} MB, most in flight "
                  f"{held} messages / {[round(b / 2**20) for b in held_b]} MiB, claimed {claimed}, "
                  f"kept alive {kept}")
            return peak, held, held_b, claimed, kept

        # RSS means nothing under ASan (shadow memory, quarantine): not checked there
        rss_max = float("inf") if os.environ.get("EMBEDQ_SANITIZED") == "1" else 1024
        # every run first, then the checks (so a failure still shows every figure)
        peak_d = run("defaults", ["d1"], 25)[0]
        peak_b, held, held_b, _, _ = run("bytes", ["b1"], 30, "--claim-idle-ms", "3600000")
        in2 = "{embed}:in2"
        for i in range(40):
            p.xadd(in2, {"data": json.dumps({"id": f"hold-{i}", "text": f"{i} " + body})})
        p.execute()
        before = r.xlen(OUT)

        def a_holds_all():
            wait_for(lambda: {c["name"]: c["pending"] for c in
                              r.xpending(in2, "hold")["consumers"]}.get(b"a", 0) == 40, 60,
                     "a holding all 40 entries")
        peak, _, _, claimed, kept = run("hold", ["a", "b"], 60, "--claim-idle-ms", "30000",
                                        "--claim-interval-ms", "1000", stream=in2,
                                        first=a_holds_all)
        out = {}
        for _, f in xrange_all(r, OUT)[before:]:
            o = decode_out(f[b"data"], "msgpack")
            out[o["id"]] = out.get(o["id"], 0) + 1
        twice = sum(n - 1 for n in out.values())
        print(f"backlog_1mb: hold: {len(out)} embedded, {twice} twice")

        assert max(peak_d) < rss_max, f"defaults: peak RSS {peak_d} MB (limit 1024)"
        assert max(peak_b) < rss_max, f"byte bound: peak RSS {peak_b} MB (limit 1024)"
        assert held_b[0] <= bound + one, f"held {held_b[0]} bytes, bound {bound} + {one}"
        assert held_b[0] >= bound // 2, f"held at most {held_b[0]} bytes: the bound was not reached"
        assert max(peak) < rss_max, f"hold: peak RSS {peak} MB (limit 1024)"
        assert sum(claimed) == 0, f"entries claimed while their worker held them: {claimed}"
        assert kept[0] > 0, f"a's entries were not refreshed: {kept}"
        assert twice == 0, f"{twice} entries embedded twice"
        assert len(out) > 0, "nothing embedded in 60 s"
    finally:
        srv.stop()


def sc_publish_oom():
    srv = RedisServer(redis_dir(), extra=("--maxmemory-policy", "noeviction")).start()
    r = srv.client()
    try:
        inputs = make_inputs(50, seed=9, prefix="o")
        ref = reference(inputs)
        w = worker(srv, "w1", "w1", env={"EMBEDQ_PUBLISH_FAIL_TIMEOUT": "2"})
        wait_ready(w)
        # The inputs and a filler that takes memory past maxmemory, in one
        # script (atomic: the worker never sees the inputs while there is
        # room; the filler is made server-side, as a large argument or a
        # MULTI queue would count as used memory and be refused itself).
        used = r.info("memory")["used_memory"]
        r.config_set("maxmemory", used + (4 << 20))
        args = []
        for fields, _ in inputs:
            args.append(len(fields))
            for k, v in fields.items():
                args += [k, v]
        r.eval("""
            local i = 1
            while i < #ARGV do
              local n, t = tonumber(ARGV[i]), {}
              for j = 1, 2 * n do t[j] = ARGV[i + j] end
              redis.call('XADD', KEYS[1], '*', unpack(t))
              i = i + 1 + 2 * n
            end
            redis.call('SET', KEYS[2], string.rep('x', tonumber(ARGV[#ARGV])))
            """, 2, IN, "filler", *args, 8 << 20)
        assert r.info("memory")["used_memory"] > used + (4 << 20)
        seen = []

        def oom_not_ready():
            st, body = http_get(w, "/readyz")
            if st == 503 and "publishing failing" in body:
                seen.append(body.strip())
                return True
            return False
        wait_for(oom_not_ready, 30, "/readyz 503: publishing failing", step=0.1)
        print("publish_oom: /readyz:", seen[-1])
        assert seen[-1].startswith("redis: publishing failing for ") and "OOM" in seen[-1], seen
        assert metric(w, "embedq_ready") == 0
        # It never clears by itself: still 503 three seconds later, nothing out.
        time.sleep(3)
        st, body = http_get(w, "/readyz")
        assert st == 503 and "OOM" in body, (st, body)
        assert r.xlen(OUT) == 0, r.xlen(OUT)
        assert pending_count(r, IN, GROUP) == len(inputs)
        r.delete("filler")
        wait_for(lambda: http_get(w, "/readyz")[0] == 200, 30, "/readyz 200 once memory is freed")
        wait_for(lambda: n_unique_out(r) == len(inputs) and pending_count(r, IN, GROUP) == 0,
                 30, "every id out, nothing pending", step=0.2)
        assert "not ready: redis: publishing failing for" in open(w.log_path).read()
        stop(w)
        dups, worst = check_vectors(r, inputs, ref)
        print(f"publish_oom: {dups} duplicates, worst cosine {worst:.7f}")
    finally:
        srv.stop()


def sc_byte_bound_one():
    """--max-in-flight-bytes 1: every message is larger than the bound, so
    each passes alone (never a deadlock): all 40 out, none twice, nothing
    pending. --max-in-flight-bytes 0 is refused, naming the flag."""
    p = subprocess.run([EMBEDQ, "worker", "--source", "redis", "--model", MODEL, "--group", "g",
                        "--redis-url", "redis://127.0.0.1:1", "--in-stream", "i",
                        "--out-stream", "o", "--dlq-stream", "d", "--max-in-flight-bytes", "0"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "--max-in-flight-bytes" in p.stderr, (p.returncode, p.stderr)
    srv = RedisServer(redis_dir()).start()
    r = srv.client()
    try:
        inputs = make_inputs(40, seed=9, prefix="one")
        ref = reference(inputs)
        feed(r, inputs)
        w = worker(srv, "w1", "w1", "--max-in-flight-bytes", "1")
        wait_ready(w)
        held = 0
        t0 = time.time()
        while not (n_unique_out(r) == len(inputs) and pending_count(r, IN, GROUP) == 0):
            assert time.time() - t0 < 120, f"{n_unique_out(r)} of {len(inputs)} out in 120 s"
            held = max(held, int(metric(w, "embedq_in_flight_messages") or 0))
            time.sleep(0.05)
        stop(w)
        dups, worst = check_vectors(r, inputs, ref, allow_dups=False)
        print(f"byte_bound_one: {len(inputs)} out, most in flight {held}, "
              f"worst cosine {worst:.7f}")
        assert held <= 1, f"{held} messages in flight with a 1-byte bound"
    finally:
        srv.stop()


def xrange_raw(r, stream):
    """[(id, [name, value, ...])] of every entry, repeated names kept."""
    conn = r.connection_pool.get_connection("XRANGE")
    try:
        conn.send_command("XRANGE", stream, "-", "+")
        return [(e[0], e[1]) for e in conn.read_response()]
    finally:
        r.connection_pool.release(conn)


def check_vectors_subset(out, inputs, ref):
    import numpy as np
    worst, dups = 1.0, 0
    for _, x in inputs:
        i = str(x["id"])
        assert i in out, f"{i} missing"
        dups += len(out[i]) - 1
        for o in out[i]:
            v = np.asarray(o["embedding"], dtype=np.float64)
            cos = float(v @ ref[i] / (np.linalg.norm(v) * np.linalg.norm(ref[i])))
            worst = min(worst, cos)
            assert cos >= COS_MIN, f"{i}: cosine {cos}"
    return dups, worst


SCENARIOS = {
    "two_workers": sc_two_workers,
    "kill9_claim": sc_kill9_claim,
    "redis_restart": sc_redis_restart,
    "sigterm_under_load": sc_sigterm_under_load,
    "poison": sc_poison,
    "long_instruction": sc_long_instruction,
    "signals": sc_signals,
    "publish_oom": sc_publish_oom,
    "backlog_1mb": sc_backlog_1mb,
    "byte_bound_one": sc_byte_bound_one,
}


def main():
    global EMBEDQ
    ap = argparse.ArgumentParser()
    ap.add_argument("--embedq", required=True)
    ap.add_argument("--scenario", default="all", choices=["all"] + list(SCENARIOS))
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    EMBEDQ = os.path.abspath(a.embedq)
    setup(os.path.abspath(a.work))
    names = list(SCENARIOS) if a.scenario == "all" else [a.scenario]
    global CURRENT
    for n in names:
        t = time.time()
        CURRENT = n
        SCENARIOS[n]()
        print(f"{n}: ok ({time.time() - t:.1f} s)")


if __name__ == "__main__":
    main()
