#!/usr/bin/env python3
"""Benchmark of the embeddings API (docs/api.md; figures in docs/benchmarks.md).

  api_bench.py --embedq build/embedq --model DIR [--device cpu] [--threads N]
               [--concurrency 1,8,64] [--inputs 1,16,128] [--seconds 10]
               [--words 40] [--backlog N --redis-server PATH]

1. Starts `embedq serve` on a free port and, for each concurrency x inputs
   per request, runs that many keep-alive clients for --seconds (after one
   warm-up request each), printing requests/s, inputs/s and the latency
   p50/p99 of the requests.
2. With --backlog N: starts a redis-server and `embedq worker --api-port`,
   measures single-query latency (1 input, --queries of them, one at a time)
   on the idle worker, then the queue's throughput on a backlog of N
   documents of --doc-words words each alone, then the same backlog again
   with queries sent one after another (their latency while at least a fifth
   of the backlog is left), and prints the three.

Inputs are random words (`--words` per input); the client is Python
http.client with one connection per client thread. Every reply is checked
for its vector count; a failed request or a level with none exits 1.
Python standard library only (and python3-redis for --backlog). ctest runs a
short smoke of it (bench_api_smoke).
"""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

WORDS = ("alpha beta gamma delta vector query queue kafka redis engine token zebra "
         "model search index shard replica latency budget batch window").split()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def text(rnd, n):
    return " ".join(rnd.choice(WORDS) for _ in range(n))


def post(conn, body):
    conn.request("POST", "/v1/embeddings", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {data[:200]!r}")
    return json.loads(data)


def wait_ready(port, proc, path="/readyz", timeout=300):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"the server exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            if r.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("the server did not become ready")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


def run_level(port, model, conc, n_inputs, seconds, words):
    lat, errors = [], []
    lock = threading.Lock()
    stop_at = [0.0]
    go = threading.Barrier(conc + 1)

    def client(k):
        rnd = random.Random(k * 7919 + n_inputs)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        bodies = [json.dumps({"model": model, "input": [text(rnd, words) for _ in range(n_inputs)],
                              "encoding_format": "base64"}) for _ in range(4)]
        try:
            post(conn, bodies[0])  # warm-up
            go.wait()
            # The wait for the others' warm-ups can outlast the server's
            # keep-alive idle timeout (5 s; on 0.6b it does): a fresh
            # connection (http.client reconnects on the next request).
            conn.close()
            i = 0
            while time.time() < stop_at[0]:
                t0 = time.time()
                r = post(conn, bodies[i % 4])
                dt = time.time() - t0
                if len(r["data"]) != n_inputs:
                    raise RuntimeError("wrong number of vectors")
                with lock:
                    lat.append(dt)
                i += 1
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
        finally:
            conn.close()

    ts = [threading.Thread(target=client, args=(k,)) for k in range(conc)]
    for t in ts:
        t.start()
    stop_at[0] = time.time() + 1e9
    go.wait()
    t0 = time.time()
    stop_at[0] = t0 + seconds
    for t in ts:
        t.join()
    wall = time.time() - t0
    if errors or not lat:
        sys.exit(f"clients failed at {conc} x {n_inputs}: {errors[:3]}")
    n = len(lat)
    return n / wall, n * n_inputs / wall, pct(lat, 50) * 1000, pct(lat, 99) * 1000, n


def query_latency(port, model, n, rnd, words):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    out = []
    for _ in range(n):
        body = json.dumps({"model": model, "input": [text(rnd, words)]})
        t0 = time.time()
        post(conn, body)
        out.append(time.time() - t0)
    conn.close()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--embedq", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--concurrency", default="1,8,64")
    ap.add_argument("--inputs", default="1,16,128")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--words", type=int, default=40, help="words per input")
    ap.add_argument("--backlog", type=int, default=0, help="queue documents (0: skip part 2)")
    ap.add_argument("--doc-words", type=int, default=380, help="words per queue document")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--redis-server", default=shutil.which("redis-server") or "redis-server")
    a = ap.parse_args()
    model = os.path.basename(os.path.normpath(a.model))
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    port = free_port()
    srv = subprocess.Popen([a.embedq, "serve", "--model", a.model, "--device", a.device,
                            "--threads", str(a.threads), "--host", "127.0.0.1", "--port", str(port),
                            "--max-pending-inputs", "100000"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, srv)
        print(f"embedq serve, model {model}, device {a.device}, {a.words} words per input, "
              f"{a.seconds:g} s per level")
        print("| clients | inputs/request | requests/s | inputs/s | p50 ms | p99 ms | requests |")
        print("|---|---|---|---|---|---|---|")
        for conc in [int(x) for x in a.concurrency.split(",")]:
            for n in [int(x) for x in a.inputs.split(",")]:
                rps, ips, p50, p99, cnt = run_level(port, model, conc, n, a.seconds, a.words)
                print(f"| {conc} | {n} | {rps:.1f} | {ips:.0f} | {p50:.1f} | {p99:.1f} | {cnt} |",
                      flush=True)
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(60)
    if a.backlog:
        backlog(a, model, env)


def backlog(a, model, env):
    import redis
    work = tempfile.mkdtemp(prefix="api_bench_")
    rport, mport, aport = free_port(), free_port(), free_port()
    rs = subprocess.Popen([a.redis_server, "--port", str(rport), "--bind", "127.0.0.1", "--save",
                           "", "--appendonly", "no", "--dir", work],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    w = None
    try:
        r = redis.Redis(port=rport)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.1)
        w = subprocess.Popen([a.embedq, "worker", "--source", "redis", "--redis-url",
                              f"redis://127.0.0.1:{rport}", "--in-stream", "in", "--group", "g",
                              "--out-stream", "out", "--dlq-stream", "dlq", "--model", a.model,
                              "--device", a.device, "--threads", str(a.threads),
                              "--metrics-addr", "127.0.0.1", "--metrics-port", str(mport),
                              "--api-addr", "127.0.0.1", "--api-port", str(aport)],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(mport, w)
        rnd = random.Random(1)
        query_latency(aport, model, 3, rnd, a.words)  # warm-up
        idle = query_latency(aport, model, a.queries, rnd, a.words)
        docs = [json.dumps({"id": str(i), "text": text(rnd, a.doc_words)})
                for i in range(a.backlog)]

        def load():
            r.delete("out")
            pipe = r.pipeline()
            for d in docs:
                pipe.xadd("in", {"data": d})
            pipe.execute()
            return time.time()

        # the queue alone
        t0 = load()
        while r.xlen("out") < a.backlog:
            time.sleep(0.05)
        wall_alone = time.time() - t0
        # the queue with one query at a time in flight
        t0 = load()
        busy = []
        while r.xlen("out") < a.backlog * 0.8 and len(busy) < 100000:
            busy += query_latency(aport, model, 1, rnd, a.words)
        n_during = len(busy)
        while r.xlen("out") < a.backlog:
            time.sleep(0.05)
        wall = time.time() - t0
        print(f"\nembedq worker --api-port, model {model}, device {a.device}; queries of "
              f"{a.words} words, one at a time")
        print("| state | queries | p50 ms | p99 ms |")
        print("|---|---|---|---|")
        print(f"| idle | {len(idle)} | {pct(idle, 50) * 1000:.1f} | {pct(idle, 99) * 1000:.1f} |")
        print(f"| queue backlog of {a.backlog} x {a.doc_words} words | {n_during} | "
              f"{pct(busy, 50) * 1000:.1f} | {pct(busy, 99) * 1000:.1f} |")
        print(f"queue alone: {a.backlog} documents in {wall_alone:.1f} s = "
              f"{a.backlog / wall_alone:.1f} docs/s; with one query at a time in flight: "
              f"{wall:.1f} s = {a.backlog / wall:.1f} docs/s")
    finally:
        if w:
            w.send_signal(signal.SIGTERM)
            w.wait(120)
        rs.kill()
        rs.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
