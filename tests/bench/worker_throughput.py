#!/usr/bin/env python3
"""Worker plumbing throughput beside a plain copy by a standard client (a benchmark, not a test).

  /usr/bin/python3 tests/bench/worker_throughput.py [--embedq build/embedq] [-n 20000] [--text x]

Kafka: `embedq mock-kafka` (4 partitions); N messages produced to `in`; then
  plain copy: `kcat -C -e` of `in` piped into `kcat -P` to `copy` (wall time of the pair);
  worker:     one `embedq worker` (tiny model, CPU engine, JSON output) from `in` to `out`,
              rate = N / (time of the last output - time of the first output).
Redis: a private redis-server; N entries XADDed to `in`; then
  plain copy: redis-py pipelines of XREADGROUP COUNT 1000 -> XADD copy + XACK (no MULTI);
  worker:     one `embedq worker --source redis`, same rate definition.
The default text is one short word, so the engine's share is small and the
figure measures the plumbing (decode, tokenize, batch, encode, produce, ack).
Prints messages/s and the worker/plain ratio for each broker.
"""
import argparse, json, os, shutil, signal, socket, subprocess, sys, tempfile, time

import redis
from confluent_kafka import Consumer, Producer

ap = argparse.ArgumentParser()
ap.add_argument("--embedq", default=os.path.join(os.path.dirname(__file__), "..", "..", "build", "embedq"))
ap.add_argument("-n", type=int, default=20000)
ap.add_argument("--text", default="x")
ap.add_argument("--model", default=None)
a = ap.parse_args()
B = os.path.abspath(a.embedq)
tmp = tempfile.mkdtemp(prefix="eq_tput_")
model = a.model or os.path.join(tmp, "tiny")
if not a.model:
    subprocess.run([B, "gen-model", "--preset", "tiny", "--out", model, "--seed", "1"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", EMBEDQ_LOG_LEVEL="warn")
N = a.n
msg = lambda i: json.dumps({"id": i, "text": a.text}).encode()
results = {}

def worker(args):
    return subprocess.Popen([B, "worker", "--model", model, "--device", "cpu", "--output-format", "json",
                             "--metrics-port", "0", "--group", "bench", "--max-wait-ms", "5"] + args, env=env)

# ---- Kafka ----
mock = subprocess.Popen([B, "mock-kafka", "--partitions", "4", "--topics", "in,out,dlq,copy"],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
bs = mock.stdout.readline().strip()
try:
    p = Producer({"bootstrap.servers": bs, "linger.ms": 5, "log_level": 3})
    for i in range(N):
        while True:
            try:
                p.produce("in", key=str(i), value=msg(i)); break
            except BufferError:
                p.poll(0.05)
    p.flush(60)
    t0 = time.time()
    c1 = subprocess.Popen(["kcat", "-C", "-b", bs, "-t", "in", "-o", "beginning", "-e", "-q", "-K", "\t"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    c2 = subprocess.Popen(["kcat", "-P", "-b", bs, "-t", "copy", "-K", "\t"], stdin=c1.stdout,
                          stderr=subprocess.DEVNULL)
    c1.stdout.close(); c1.wait(); c2.wait()
    plain = N / (time.time() - t0)
    w = worker(["--source", "kafka", "--brokers", bs, "--in-topic", "in", "--out-topic", "out", "--dlq-topic", "dlq"])
    c = Consumer({"bootstrap.servers": bs, "group.id": "reader", "auto.offset.reset": "earliest", "log_level": 3})
    c.subscribe(["out"])
    got, first, last, deadline = 0, None, None, time.time() + 300
    while got < N and time.time() < deadline:
        for m in c.consume(1000, 0.5):
            if m.error(): continue
            got += 1
            now = time.time()
            first = first or now
            last = now
    c.close()
    w.send_signal(signal.SIGTERM); w.wait(60)
    rate = (got - 1) / (last - first) if got > 1 and last > first else 0
    results["kafka"] = (plain, rate, got)
finally:
    mock.send_signal(signal.SIGTERM); mock.wait(10)

# ---- Redis ----
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
rs = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", tmp],
                      stdout=subprocess.DEVNULL)
try:
    r = redis.Redis(port=port)
    for _ in range(100):
        try: r.ping(); break
        except redis.ConnectionError: time.sleep(0.05)
    pipe = r.pipeline(transaction=False)
    for i in range(N):
        pipe.xadd("in", {"data": msg(i)})
        if i % 1000 == 999: pipe.execute()
    pipe.execute()
    r.xgroup_create("in", "copygroup", id="0")
    t0 = time.time(); done = 0
    while done < N:
        res = r.xreadgroup("copygroup", "c", {"in": ">"}, count=1000)
        if not res: break
        entries = res[0][1]
        pipe = r.pipeline(transaction=False)
        for eid, fields in entries:
            pipe.xadd("copy", {"data": fields[b"data"]})
            pipe.xack("in", "copygroup", eid)
        pipe.execute(); done += len(entries)
    plain = done / (time.time() - t0)
    w = worker(["--source", "redis", "--redis-url", f"redis://127.0.0.1:{port}", "--in-stream", "in",
                "--out-stream", "out", "--dlq-stream", "dlq"])
    got, first, last, last_id, deadline = 0, None, None, "0", time.time() + 300
    while got < N and time.time() < deadline:
        res = r.xread({"out": last_id}, count=5000, block=500)
        if not res: continue
        now = time.time()
        first = first or now
        got += len(res[0][1]); last_id = res[0][1][-1][0]; last = now
    w.send_signal(signal.SIGTERM); w.wait(60)
    rate = (got - 1) / (last - first) if got > 1 and last > first else 0
    results["redis"] = (plain, rate, got)
finally:
    rs.terminate(); rs.wait(10)
    shutil.rmtree(tmp, ignore_errors=True)

print(f"messages: {N}, text {a.text!r}, tiny model, CPU engine, {os.cpu_count()} cores")
print(f"{'broker':8} {'plain copy msg/s':>18} {'worker msg/s':>14} {'outputs':>8} {'ratio':>7}")
for k, (plain, rate, got) in results.items():
    print(f"{k:8} {plain:18.0f} {rate:14.0f} {got:8d} {rate / plain:7.2f}")
