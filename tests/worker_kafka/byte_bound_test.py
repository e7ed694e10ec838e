#!/usr/bin/python3
"""--max-in-flight-bytes with the Kafka source: `embedq worker` (tiny model,
CPU) on `embedq mock-kafka` (its own process) with 120 records of 100 KB and
a bound of 4 MiB. /metrics is sampled every 20 ms until every record has its
output: embedq_in_flight_bytes never exceeds the bound by more than one
message's charge and does reach half of it (the bound is what held intake
back, through the pipeline's pause/resume of the partitions); every record
is embedded once; SIGTERM exits 0.

usage: byte_bound_test.py EMBEDQ WORKDIR
Exits 77 (skipped) without python3-confluent-kafka, mock-kafka or the worker.
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

try:
    from confluent_kafka import Consumer, KafkaError
except ImportError:
    print("SKIP: python3-confluent-kafka is not installed")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mock_kafka_test import Mock, produce  # noqa: E402

BOUND = 4 << 20
# 120 x 100 KB over 4 partitions: 3 MB each, inside the mock's retention of
# 5 MiB per partition (older records are deleted: docs/kafka.md)
N, TEXT_BYTES, MAX_TOKENS = 120, 100_000, 64
WORDS = "alpha beta gamma delta vector kafka worker embed token batch stream offset".split()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(port, name):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            body = r.read().decode()
    except OSError:
        return None
    m = re.search(r"^%s (\S+)$" % re.escape(name), body, re.M)
    return float(m.group(1)) if m else None


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    embedq, work = sys.argv[1], sys.argv[2]
    for sub in ("mock-kafka", "worker"):
        if subprocess.run([embedq, sub, "--help"], capture_output=True).returncode:
            print(f"SKIP: `embedq {sub}` is not available")
            return 77
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    model = os.path.join(work, "tiny")
    subprocess.run([embedq, "gen-model", "--preset", "tiny", "--out", model, "--seed", "3"],
                   check=True, capture_output=True)
    with open(os.path.join(model, "config.json")) as f:
        hidden = json.load(f)["hidden_size"]
    # one record's charge (pipe_charge): 3 x its bytes + 4 x tokens + 28 x hidden + 1 KiB
    one = 3 * (TEXT_BYTES + 40) + 4 * MAX_TOKENS + 28 * hidden + 1024

    mock = Mock(embedq, "--partitions", "4", "--topics", "in,out,dlq")
    w = None
    try:
        rng = random.Random(5)
        body = " ".join(rng.choice(WORDS) for _ in range(TEXT_BYTES // 4))[:TEXT_BYTES]
        recs = [(b"k%d" % i, json.dumps({"id": f"r{i}", "text": f"{i} " + body}).encode())
                for i in range(N)]
        left, errs = produce(mock.bootstrap, "in", recs, timeout=60)
        assert left == 0 and not errs, (left, errs)

        port = free_port()
        w = subprocess.Popen(
            [embedq, "worker", "--source", "kafka", "--brokers", mock.bootstrap, "--group", "g",
             "--in-topic", "in", "--out-topic", "out", "--dlq-topic", "dlq", "--model", model,
             "--device", "cpu", "--threads", "1", "--tokenize-threads", "1",
             "--max-tokens", str(MAX_TOKENS), *os.environ.get("BB_FLAGS", "--max-in-flight-bytes " + str(BOUND)).split(),
             "--output-format", "json", "--metrics-addr", "127.0.0.1", "--metrics-port",
             str(port), "--kafka-config", "consumer.session.timeout.ms=4000",
             "--kafka-config", "consumer.heartbeat.interval.ms=500"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "worker.log"), "wb"))
        held_b, held_n, t0 = 0, 0, time.time()
        while True:
            assert w.poll() is None, f"worker exited {w.returncode}"
            assert time.time() - t0 < 150, f"not every record out in 150 s ({held_b} bytes)"
            b = metric(port, "embedq_in_flight_bytes")
            n = metric(port, "embedq_in_flight_messages")
            done = metric(port, "embedq_messages_produced_total")
            held_b, held_n = max(held_b, int(b or 0)), max(held_n, int(n or 0))
            if int((time.time() - t0) / 5) != int((time.time() - t0 - 0.03) / 5):
                print(f"[{time.time() - t0:5.1f} s] out {done}, in flight {n} / {b} bytes")
            if done is not None and done >= N:
                break
            time.sleep(0.02)
        took = time.time() - t0
        w.send_signal(signal.SIGTERM)
        rc = w.wait(60)
        assert rc == 0, f"worker exit {rc}"

        c = Consumer({"bootstrap.servers": mock.bootstrap, "group.id": "check",
                      "auto.offset.reset": "earliest", "enable.partition.eof": True,
                      "log_level": 2})
        c.subscribe(["out"])
        ids, eofs, deadline = [], set(), time.time() + 30
        while len(eofs) < 4 and time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eofs.add(m.partition())
                continue
            ids.append(json.loads(m.value())["id"])
        c.close()
        print(f"byte_bound: {len(set(ids))} of {N} out in {took:.1f} s; most held "
              f"{held_n} messages, {held_b} bytes (bound {BOUND}, one message {one})")
        assert sorted(set(ids)) == sorted(f"r{i}" for i in range(N)), "missing outputs"
        assert len(ids) == N, f"{len(ids) - N} duplicate outputs"
        assert held_b <= BOUND + one, f"held {held_b} bytes, bound {BOUND} + one {one}"
        assert held_b >= BOUND // 2, f"held at most {held_b} bytes: the bound was not reached"
        print("byte_bound: ok")
        return 0
    finally:
        if w and w.poll() is None:
            w.kill()
            w.wait()
        mock.stop()


if __name__ == "__main__":
    sys.exit(main())
