#!/usr/bin/env python3
"""Worker plumbing throughput beside a plain copy by a standard client (a benchmark, not a test).

  /usr/bin/python3 tests/bench/worker_throughput.py [--embedq build/embedq] [-n 20000] [--text x]

Kafka: `embedq mock-kafka` (16 partitions: the mock keeps about 5 MB per partition and
  deletes older records, so an output topic of 20,000 JSON vectors needs them all to be
  read back whole); N messages produced to `in`; then
  plain copy: `kcat -C -e` of `in` piped into `kcat -P` to `copy`;
  worker:     one `embedq worker` (tiny model, CPU engine, JSON output) from `in` to `out`;
  both rates = records in the output topic / the span of their CreateTime stamps (set by
  each producer as it sends), read back with `kcat -f %T`.
Redis: a private redis-server; N entries XADDed to `in`; then
  plain copy: redis-py pipelines of XREADGROUP COUNT 1000 -> XADD copy + XACK (no MULTI);
  worker:     one `embedq worker --source redis`, rate = N / (time of the last output
              - time of the first output), read from `out` with XREAD.
The default text is one short word, so the engine's share is small and the
figure measures the plumbing (decode, tokenize, batch, encode, produce, ack).
Prints messages/s and the worker/plain ratio for each broker.
"""
import argparse, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request

import redis
from confluent_kafka import Consumer, Producer, TopicPartition

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

def worker(args, http_port=0):
    return subprocess.Popen([B, "worker", "--model", model, "--device", "cpu", "--output-format", "json",
                             "--metrics-port", str(http_port), "--metrics-addr", "127.0.0.1",
                             "--group", "bench", "--max-wait-ms", "5"] + args, env=env)

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    return port

def ts_rate(bs, topic):
    """(messages/s over the span of the topic's CreateTime stamps, count)."""
    out = subprocess.run(["kcat", "-C", "-b", bs, "-t", topic, "-o", "beginning", "-e", "-q",
                          "-f", "%T\\n"], capture_output=True, text=True, timeout=120).stdout
    ts = [int(x) for x in out.split()]
    if len(ts) < 2 or max(ts) <= min(ts):
        return 0.0, len(ts)
    return (len(ts) - 1) / ((max(ts) - min(ts)) / 1000.0), len(ts)

def produced(port):
    """embedq_messages_produced_total from the worker's /metrics (None: not up yet)."""
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    m = re.search(r"^embedq_messages_produced_total (\d+)", body, re.M)
    return int(m.group(1)) if m else None

# ---- Kafka ----
mock = subprocess.Popen([B, "mock-kafka", "--partitions", "16", "--topics", "in,out,dlq,copy"],
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
    del p  # closed before the broker stops (else it logs reconnect errors at exit)
    t0 = time.time()
    c1 = subprocess.Popen(["kcat", "-C", "-b", bs, "-t", "in", "-o", "beginning", "-e", "-q", "-K", "\t"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    c2 = subprocess.Popen(["kcat", "-P", "-b", bs, "-t", "copy", "-K", "\t"], stdin=c1.stdout,
                          stderr=subprocess.DEVNULL)
    c1.stdout.close(); c1.wait(); c2.wait()
    wall = N / (time.time() - t0)
    hp = free_port()
    w = worker(["--source", "kafka", "--brokers", bs, "--in-topic", "in", "--out-topic", "out",
                "--dlq-topic", "dlq"], hp)
    deadline = time.time() + 300
    while time.time() < deadline and w.poll() is None and (produced(hp) or 0) < N:
        time.sleep(0.05)
    w.send_signal(signal.SIGTERM); w.wait(60)
    # Both rates the same way: records in the output topic over the span of
    # their CreateTime stamps (set by each producer when it sends), read back
    # with kcat. (A Python reader racing the worker measured itself: it
    # lagged, fell behind the mock's retention and skipped to the end.)
    plain, n_copy = ts_rate(bs, "copy")
    rate, got = ts_rate(bs, "out")
    if n_copy != N or got != N:
        print(f"kafka: WARNING: read back {n_copy} copies and {got} outputs of {N} (the mock's "
              "retention?): rates over what was read", file=sys.stderr)
    print(f"kafka: kcat copy wall time incl. start-up {wall:.0f} msg/s", file=sys.stderr)
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
