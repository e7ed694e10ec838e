#!/usr/bin/env python3
"""The image's entrypoint, run here as the container would run it.

Reads ENTRYPOINT and ENV of the Dockerfile's runtime stage and starts exactly
that command line (`tini -- embedq worker`, configured only by the EMBEDQ_*
variables, as the Helm chart does) with two substitutions for a machine
without the image: build/embedq for /usr/local/bin/embedq and a generated
tiny model for /model (and port 0 for the metrics port). Against
`embedq mock-kafka` it checks that the worker becomes ready, embeds what is
produced, and that SIGTERM sent to tini (PID 1 in the container) reaches the
worker, which drains, commits and exits 0 (tini passes the status on).

usage: entrypoint_test.py REPO_ROOT EMBEDQ_BIN WORKDIR
"""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

try:
    from confluent_kafka import Consumer, Producer, TopicPartition
except ImportError:
    print("SKIP: python3-confluent-kafka is not installed")
    sys.exit(77)

N = 200


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def runtime_stage(text):
    env, ep, stage = {}, None, None
    joined = re.sub(r"\\\n\s*", " ", text)
    for line in joined.splitlines():
        s = line.strip()
        m = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", s, re.I)
        if m:
            stage = m.group(1)
        elif stage == "runtime-base" and s.startswith("ENV "):
            for tok in shlex.split(s[4:]):
                k, _, v = tok.partition("=")
                env[k] = v
        elif stage == "runtime-base" and s.startswith("ENTRYPOINT "):
            ep = json.loads(s[len("ENTRYPOINT "):])
    return env, ep


def main():
    root, embedq, work = sys.argv[1:4]
    tini = shutil.which("tini")
    if not tini:
        print("SKIP: tini is not installed (Debian package tini)")
        return 77
    if subprocess.run([embedq, "worker", "--help"], capture_output=True).returncode:
        print("SKIP: this embedq has no worker")
        return 77
    env_img, ep = runtime_stage(open(os.path.join(root, "Dockerfile")).read())
    if not ep or ep[0] != "/usr/bin/tini" or ep[2] != "/usr/local/bin/embedq":
        fail("unexpected ENTRYPOINT %s" % ep)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    model = os.path.join(work, "model")
    r = subprocess.run([embedq, "gen-model", "--preset", "tiny", "--out", model],
                       capture_output=True, text=True)
    if r.returncode:
        fail("gen-model: " + r.stderr)

    mock = subprocess.Popen([embedq, "mock-kafka", "--partitions", "2", "--topics", "in,out,dlq"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    brokers = mock.stdout.readline().strip()
    if not brokers:
        fail("mock-kafka did not start")
    worker = None
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDQ_")}
        env.update(env_img)
        env.update({"EMBEDQ_MODEL": model, "EMBEDQ_METRICS_PORT": "0",
                    "EMBEDQ_SOURCE": "kafka", "EMBEDQ_BROKERS": brokers,
                    "EMBEDQ_GROUP": "img", "EMBEDQ_IN_TOPIC": "in", "EMBEDQ_OUT_TOPIC": "out",
                    "EMBEDQ_DLQ_TOPIC": "dlq", "EMBEDQ_DEVICE": "cpu",
                    "EMBEDQ_DRAIN_TIMEOUT": "20",
                    "EMBEDQ_KAFKA_CONFIG": "consumer.session.timeout.ms=6000;"
                                           "consumer.auto.commit.interval.ms=500"})
        cmd = [tini, "--", embedq] + ep[3:]
        print("running:", " ".join(cmd), "(image ENV + EMBEDQ_* above)")
        log = open(os.path.join(work, "worker.log"), "w")
        worker = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        port = None
        deadline = time.time() + 60
        while time.time() < deadline and port is None:
            m = re.search(r"on [0-9.]+:(\d+)", open(log.name).read())
            port = int(m.group(1)) if m else None
            time.sleep(0.2)
        if port is None:
            fail("the worker did not report its HTTP port:\n" + open(log.name).read()[-2000:])

        def readyz():
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port, timeout=2) as r:
                    return r.status
            except Exception:
                return None
        while time.time() < deadline and readyz() != 200:
            time.sleep(0.2)
        if readyz() != 200:
            fail("/readyz never answered 200")
        print("ok: the worker started by tini is ready")

        p = Producer({"bootstrap.servers": brokers, "log_level": 2})
        for i in range(N):
            p.produce("in", key=str(i), value=json.dumps({"id": i, "text": "document %d" % i}))
        p.flush(30)
        c = Consumer({"bootstrap.servers": brokers, "group.id": "reader",
                      "auto.offset.reset": "earliest", "log_level": 2})
        c.subscribe(["out"])
        seen = set()
        deadline = time.time() + 90
        while len(seen) < N and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                seen.add(json.loads(m.value())["id"] if m.value()[:1] == b"{" else m.key())
        c.close()
        if len(seen) < N:
            # msgpack output (the default): count by key
            fail("only %d of %d outputs" % (len(seen), N))
        print("ok: %d outputs" % N)

        worker.send_signal(signal.SIGTERM)  # to tini, as the kubelet does
        try:
            rc = worker.wait(40)
        except subprocess.TimeoutExpired:
            fail("no exit within 40 s of SIGTERM to tini")
        text = open(log.name).read()
        if rc != 0:
            fail("exit status %d after SIGTERM:\n%s" % (rc, text[-2000:]))
        print("ok: SIGTERM to tini reached the worker; exit status 0")
        if "drain" not in text.lower():
            fail("the worker log does not show a drain:\n" + text[-2000:])
        print("ok: the worker drained")
        c = Consumer({"bootstrap.servers": brokers, "group.id": "img", "log_level": 2})
        tps = [TopicPartition("in", i) for i in range(2)]
        committed = [t.offset for t in c.committed(tps, timeout=15)]
        ends = [c.get_watermark_offsets(t, timeout=15)[1] for t in tps]
        c.close()
        if committed != ends:
            fail("committed %s != log end %s" % (committed, ends))
        print("ok: committed offsets %s = log end" % committed)
    finally:
        if worker and worker.poll() is None:
            worker.kill()
        mock.terminate()
        mock.wait(10)
    print("4 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
