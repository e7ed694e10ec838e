#!/usr/bin/env python3
"""`embedq serve` and `embedq worker --api-port` (docs/api.md) end to end, on
a generated tiny model on the CPU engine, with clients nobody here wrote
(curl, the official openai npm SDK) and raw sockets for what no client
sends. One scenario per ctest:

  curl         every field through curl: float, base64 (= float, byte for
               byte), dimensions, instruction ("" = none), truncate, token
               ids (= the same text), /v1/models, probes, the error answers
               (400 naming field and index, 404 model_not_found, 404, 405,
               413, invalid JSON, invalid UTF-8, a repeated key), \\u0000 kept
               (not cut off as cJSON would)
  same_vector  one set of texts (+ instructions, dimensions) through the
               API, `embedq embed` and the Redis worker: cosine >= 0.99999
  sdk          tests/api/openai_sdk_test.mjs (the openai package pinned by
               tests/api/package-lock.json; exit 77 when it is not installed)
  concurrency  64 clients x 50 requests of 1..64 inputs, each answer matched
               against its own inputs' reference vectors
  busy         a small --max-pending-inputs: 429 with Retry-After while the
               engine is busy, 200 again afterwards
  hostile      a huge body, a Content-Length longer and shorter than the
               body, a body cut off, invalid UTF-8, many idle connections
               (as many as RLIMIT_NOFILE allows, up to 10,000), a slowloris
               client: the server keeps answering a well-behaved client;
               request bodies held at once over --max-bodies-bytes: 503
  loading      while the model loads: 503 model_loading + Retry-After
  drain        SIGTERM with requests in flight: they are answered 200, new
               requests are refused or get 503, exit 0
  worker_redis the worker with --api-port under a Redis backlog: queries are
               answered while the queue loses nothing (every entry has its
               output, vectors checked), and ahead of it (their median
               latency is under a quarter of the backlog's time)
  worker_kafka the same on Kafka (`embedq mock-kafka`)

Needs python3-numpy, curl; the worker_redis and same_vector scenarios also
redis-server, python3-redis and python3-msgpack, worker_kafka
python3-confluent-kafka (exit 77 without them).
"""
import argparse
import base64
import http.client
import json
import os
import random
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "worker_redis"))
import harness  # noqa: E402

SKIP = 77
EMBEDQ = WORK = MODEL = None
HIDDEN = 96  # the tiny preset (checked in setup)
COS_MIN = 0.99999
# 64 clients x 50 requests; 10 under the sanitizers (ASan makes the engine
# ~5x slower: the full run would take ~10 min there)
PER_CLIENT = 10 if os.environ.get("EMBEDQ_SANITIZED") else 50


def fail(msg):
    raise AssertionError(msg)


def check(cond, msg):
    if not cond:
        fail(msg)


# ---- processes ----------------------------------------------------------------


def serve(name, *extra, env=None):
    port = harness.free_port()
    args = [EMBEDQ, "serve", "--model", MODEL, "--device", "cpu", "--threads", "1",
            "--host", "127.0.0.1", "--port", str(port)] + [str(x) for x in extra]
    p = harness.Proc(args, os.path.join(WORK, name + ".log"),
                     env={**os.environ, **env} if env else None)
    p.port = port
    harness.wait_for(lambda: ready(p), 60, f"{name} /readyz")
    return p


def ready(p):
    if p.proc.poll() is not None:
        fail(f"server exited {p.proc.returncode}:\n{p.stderr_tail()}")
    try:
        st, _, _ = request(p.port, "GET", "/readyz", timeout=2)
        return st == 200
    except OSError:
        return False


def stop(p, want=0, timeout=60):
    p.signal(signal.SIGTERM)
    rc = p.wait(timeout)
    check(rc == want, f"exit {rc}, expected {want}:\n{p.stderr_tail()}")


def request(port, method, path, body=None, timeout=60, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
    finally:
        c.close()


def embed_api(port, inputs, **kw):
    body = {"model": "tiny", "input": inputs}
    body.update(kw)
    st, hdr, data = request(port, "POST", "/v1/embeddings", body)
    return st, hdr, json.loads(data) if data else None


def vectors(reply):
    import numpy as np
    out = []
    for i, d in enumerate(reply["data"]):
        check(d["index"] == i and d["object"] == "embedding", f"data[{i}]: {d.keys()}")
        e = d["embedding"]
        if isinstance(e, str):
            raw = base64.b64decode(e)
            out.append(np.array(struct.unpack("<%df" % (len(raw) // 4), raw), dtype=np.float64))
        else:
            out.append(np.array(e, dtype=np.float64))
    return out


def reference(items):
    """`embedq embed` vectors for [{"text", "instruction"?, "dimensions"?}]."""
    import numpy as np
    lines = "".join(json.dumps(it) + "\n" for it in items)
    p = subprocess.run([EMBEDQ, "embed", "--model", MODEL, "--device", "cpu", "--threads", "1"],
                       input=lines.encode(), capture_output=True, timeout=600)
    check(p.returncode == 0, f"embedq embed: {p.stderr.decode()[-500:]}")
    rows = [json.loads(l) for l in p.stdout.decode().splitlines()]
    check(len(rows) == len(items), "embed: one line per input")
    return [np.array(r["embedding"], dtype=np.float64) for r in rows]


def cos(a, b):
    import numpy as np
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def same(a, b, what):
    check(len(a) == len(b), f"{what}: {len(a)} values vs {len(b)}")
    c = cos(a, b)
    check(c >= COS_MIN, f"{what}: cosine {c:.7f} < {COS_MIN}")


def texts(n, seed, lo=1, hi=60):
    rnd = random.Random(seed)
    words = ("alpha beta gamma delta vector query queue kafka redis engine token "
             "zebra 日本語 café naïve emoji😀 under over").split()
    return [" ".join(rnd.choice(words) for _ in range(rnd.randint(lo, hi))) + f" #{seed}-{i}"
            for i in range(n)]


def curl(*args):
    p = subprocess.run(["curl", "-s", "-S", "--max-time", "60", *args], capture_output=True)
    return p.returncode, p.stdout


# ---- scenarios ---------------------------------------------------------------------


def err_of(data):
    e = json.loads(data)["error"]
    check(set(e) == {"message", "type", "param", "code"}, f"error shape: {e}")
    return e


def sc_curl():
    p = serve("curl")
    base = f"http://127.0.0.1:{p.port}"
    inputs = texts(5, 1)
    ref = reference([{"text": t} for t in inputs])
    # float
    rc, out = curl(base + "/v1/embeddings", "-H", "Content-Type: application/json",
                   "-d", json.dumps({"model": "tiny", "input": inputs, "encoding_format": "float"}))
    check(rc == 0, "curl float")
    r = json.loads(out)
    check(r["object"] == "list" and r["model"] == "tiny", f"reply: {list(r)}")
    check(set(r["usage"]) == {"prompt_tokens", "total_tokens"} and
          r["usage"]["prompt_tokens"] > len(inputs), f"usage {r['usage']}")
    vf = vectors(r)
    for i, v in enumerate(vf):
        check(len(v) == HIDDEN, "hidden-size vector")
        same(v, ref[i], f"float input[{i}]")
        check(r["data"][i]["truncated"] is False, "not truncated")
    # base64 = the same float32 values
    rc, out = curl(base + "/v1/embeddings", "-d",
                   json.dumps({"model": "tiny", "input": inputs, "encoding_format": "base64"}))
    vb = vectors(json.loads(out))
    for i in range(len(inputs)):
        check((vb[i].astype("float32") == vf[i].astype("float32")).all(),
              f"base64 input[{i}] differs from float")
    # default (no encoding_format) is float, a single string is one input
    st, _, r = embed_api(p.port, inputs[0])
    check(st == 200 and isinstance(r["data"][0]["embedding"], list) and len(r["data"]) == 1,
          "single string, float by default")
    # dimensions
    st, _, r = embed_api(p.port, inputs, dimensions=32, user="someone")
    check(st == 200, f"dimensions: {st}")
    ref32 = reference([{"text": t, "dimensions": 32} for t in inputs])
    for i, v in enumerate(vectors(r)):
        same(v, ref32[i], f"dimensions=32 input[{i}]")
    # instruction; "" is no instruction
    ins = "Given a web search query, retrieve relevant passages"
    st, _, r = embed_api(p.port, inputs[:2], instruction=ins)
    refi = reference([{"text": t, "instruction": ins} for t in inputs[:2]])
    for i, v in enumerate(vectors(r)):
        same(v, refi[i], f"instruction input[{i}]")
        check(cos(v, ref[i]) < 0.999, "the instruction changes the vector")
    st, _, r = embed_api(p.port, inputs[:2], instruction="")
    for i, v in enumerate(vectors(r)):
        same(v, ref[i], f'instruction "" input[{i}]')
    # token ids = the same text (ids from `embedq tokenize`, with and without
    # the final <|endoftext|>)
    tk = subprocess.run([EMBEDQ, "tokenize", "--model", MODEL], capture_output=True,
                        input="".join(json.dumps({"text": t}) + "\n" for t in inputs[:3]).encode())
    ids = [json.loads(l)["ids"] for l in tk.stdout.decode().splitlines()]
    st, _, r = embed_api(p.port, [ids[0], ids[1][:-1], ids[2]])
    check(st == 200, f"token lists: {st} {r}")
    for i, v in enumerate(vectors(r)):
        same(v, ref[i], f"token ids input[{i}]")
    st, _, r = embed_api(p.port, ids[0])
    check(st == 200 and len(r["data"]) == 1, "one token list")
    same(vectors(r)[0], ref[0], "one token list")
    # truncate: true (default) says which inputs were cut; false is a 400
    p.signal(signal.SIGTERM)
    check(p.wait(30) == 0, "exit 0")
    p = serve("curl-short", "--max-tokens", "16")
    long_t = "word " * 200
    st, _, r = embed_api(p.port, ["short", long_t])
    check(st == 200 and [d["truncated"] for d in r["data"]] == [False, True], f"truncated: {r}")
    st, _, data = request(p.port, "POST", "/v1/embeddings",
                          {"model": "tiny", "input": ["short", long_t], "truncate": False})
    e = err_of(data)
    check(st == 400 and e["param"] == "input[1]" and e["code"] == "text_too_long", f"{st} {e}")
    # errors: field and index named
    cases = [
        ({"input": "x"}, 400, "model", "missing_required_parameter"),
        ({"model": "nope", "input": "x"}, 404, "model", "model_not_found"),
        ({"model": "tiny"}, 400, "input", "missing_required_parameter"),
        ({"model": "tiny", "input": []}, 400, "input", "invalid_value"),
        ({"model": "tiny", "input": ["a", ""]}, 400, "input[1]", "empty_text"),
        ({"model": "tiny", "input": ["a", 3]}, 400, "input[1]", "invalid_type"),
        ({"model": "tiny", "input": [[1, 2], [3, -4]]}, 400, "input[1]", "invalid_token_id"),
        ({"model": "tiny", "input": [[1, 2], [3, 10 ** 9]]}, 400, "input[1]", "invalid_token_id"),
        ({"model": "tiny", "input": [[1, 2.5]]}, 400, "input[0]", "invalid_token_id"),
        ({"model": "tiny", "input": 5}, 400, "input", "invalid_type"),
        ({"model": "tiny", "input": "a", "dimensions": 31}, 400, "dimensions", "invalid_value"),
        ({"model": "tiny", "input": "a", "dimensions": HIDDEN + 1}, 400, "dimensions",
         "invalid_value"),
        ({"model": "tiny", "input": "a", "encoding_format": "int8"}, 400, "encoding_format",
         "invalid_value"),
        ({"model": "tiny", "input": "a", "truncate": "yes"}, 400, "truncate", "invalid_type"),
        ({"model": "tiny", "input": "a", "instruction": 7}, 400, "instruction", "invalid_type"),
        ({"model": "tiny", "input": [1, 2], "instruction": "x"}, 400, "instruction",
         "invalid_value"),
        ({"model": "tiny", "input": "a", "user": 1}, 400, "user", "invalid_type"),
        ({"model": "tiny", "input": ["a"] * 2049}, 400, "input", "too_many_inputs"),
    ]
    for body, want, param, code in cases:
        st, _, data = request(p.port, "POST", "/v1/embeddings", body)
        e = err_of(data)
        check(st == want and e["param"] == param and e["code"] == code,
              f"{json.dumps(body)[:80]}: {st} {e}")
    for raw, code, param in [(b'{"model": "tiny", "input": ', "invalid_json", None),
                             (b'[1, 2]', "invalid_json", None),
                             (b'{"model": "tiny", "input": "a"} x', "invalid_json", None),
                             (b'{"model": "tiny", "input": ["ok", "bad \xc3\x28"]}', "invalid_utf8",
                              "input[1]"),
                             (b'{"model": "tiny", "input": ["ok", "\\u0000\xff"]}', "invalid_utf8",
                              "input[1]"),
                             (b'{"model": "tiny", "input": "a", "input": "b"}', "duplicate_key",
                              "input"),
                             (b'{"model": "tiny", "input": "a", "instruction": "\xc3"}',
                              "invalid_utf8", "instruction")]:
        st, hdr, data = request(p.port, "POST", "/v1/embeddings", raw)
        e = err_of(data)
        check(st == 400 and e["code"] == code and e["param"] == param and
              hdr["content-type"] == "application/json", f"{raw[:40]}: {st} {e}")
    # \u0000 is kept, as the queue keeps it: "a\0b" is not "a", and the
    # model name is compared whole
    st, _, r0 = embed_api(p.port, ["a\u0000b", "a", "a\u0000b"])
    check(st == 200, f"\\u0000 in an input: {st} {r0}")
    v0 = vectors(r0)
    check(cos(v0[0], v0[1]) < 0.999999 and cos(v0[0], v0[2]) > 0.999999,
          "\\u0000: the input was cut at the NUL")
    check(r0["usage"]["prompt_tokens"] > 0, "usage")
    st, _, data = request(p.port, "POST", "/v1/embeddings", {"model": "tiny\u0000x", "input": "a"})
    check(st == 404 and err_of(data)["code"] == "model_not_found", f"model with a NUL: {st}")
    # the server's own answers are in the same shape
    st, _, data = request(p.port, "GET", "/v1/embeddings")
    check(st == 405 and err_of(data)["type"] == "invalid_request_error", "405")
    st, _, data = request(p.port, "GET", "/v1/nothing")
    check(st == 404 and err_of(data), "404")
    st, _, data = request(p.port, "GET", "/v1/models")
    m = json.loads(data)
    check(st == 200 and m["data"][0]["id"] == "tiny" and m["data"][0]["object"] == "model", m)
    # probes and metrics on the same port
    st, _, data = request(p.port, "GET", "/metrics")
    text = data.decode()
    for name in ("embedq_api_requests_total{status=\"200\"}", "embedq_api_requests_total{status=\"400\"}",
                 "embedq_api_requests_total{status=\"404\"}", "embedq_api_request_seconds_count",
                 "embedq_api_requests_total{status=\"405\"}",  # the HTTP server's own answer
                 "embedq_api_requests_in_flight", "embedq_api_queue_inputs", "embedq_ready 1"):
        check(name in text, f"/metrics lacks {name}")
    stop(p)
    # 413: a body over --max-body-bytes
    p = serve("curl-413", "--max-body-bytes", "1000")
    st, _, data = request(p.port, "POST", "/v1/embeddings",
                          {"model": "tiny", "input": "x" * 2000})
    check(st == 413 and err_of(data), f"413: {st}")
    st, _, r = embed_api(p.port, "still fine")
    check(st == 200, "answers after a 413")
    st, _, data = request(p.port, "GET", "/metrics")
    check('embedq_api_requests_total{status="413"} 1' in data.decode(), "413 counted")
    # --served-model-name
    stop(p)
    p = serve("curl-name", "--served-model-name", "Qwen/Qwen3-Embedding-0.6B")
    st, _, data = request(p.port, "POST", "/v1/embeddings",
                          {"model": "Qwen/Qwen3-Embedding-0.6B", "input": "x"})
    check(st == 200 and json.loads(data)["model"] == "Qwen/Qwen3-Embedding-0.6B", "served name")
    st, _, data = request(p.port, "POST", "/v1/embeddings", {"model": "tiny", "input": "x"})
    check(st == 404, "the directory name is not served when another name is set")
    stop(p)
    # every flag also as its EMBEDQ_* variable
    p = serve("curl-env", env={"EMBEDQ_SERVED_MODEL_NAME": "from-env", "EMBEDQ_MAX_INPUTS": "3"})
    st, _, data = request(p.port, "POST", "/v1/embeddings", {"model": "from-env", "input": "x"})
    check(st == 200, f"EMBEDQ_SERVED_MODEL_NAME: {st}")
    st, _, data = request(p.port, "POST", "/v1/embeddings",
                          {"model": "from-env", "input": ["a", "b", "c", "d"]})
    check(st == 400 and err_of(data)["code"] == "too_many_inputs", f"EMBEDQ_MAX_INPUTS: {st}")
    stop(p)
    # a bad flag names itself
    q = subprocess.run([EMBEDQ, "serve", "--model", MODEL, "--port", "70000"], capture_output=True)
    check(q.returncode == 2 and b"--port" in q.stderr, f"--port 70000: {q.returncode} {q.stderr}")
    q = subprocess.run([EMBEDQ, "serve", "--port", "1"], capture_output=True)
    check(q.returncode == 2 and b"--model" in q.stderr, f"no --model: {q.returncode} {q.stderr}")


def sc_same_vector():
    harness.skip_unless_ready()
    try:
        import msgpack
    except ImportError:
        harness.skip("python3-msgpack not installed")
    ins = "Given a question, retrieve passages that answer it"
    items = []
    for i, t in enumerate(texts(12, 2)):
        it = {"text": t}
        if i % 3 == 1:
            it["instruction"] = ins
        if i % 3 == 2:
            it["instruction"] = ""
        if i % 4 == 3:
            it["dimensions"] = 48
        items.append(it)
    # NUL bytes (\u0000 in JSON) in a text and an instruction: kept every way in
    items.append({"text": "before\u0000after " + texts(1, 5)[0]})
    items.append({"text": "nul in the instruction", "instruction": "Find\u0000it"})
    ref = reference(items)
    srv = harness.RedisServer(os.path.join(WORK, "redis-same")).start()
    r = srv.client()
    for i, it in enumerate(items):
        r.xadd("in", {"data": json.dumps({"id": str(i), **it})})
    mport = harness.free_port()
    aport = harness.free_port()
    w = harness.Proc([EMBEDQ, "worker", "--source", "redis", "--redis-url", srv.url,
                      "--in-stream", "in", "--group", "g", "--out-stream", "out",
                      "--dlq-stream", "dlq", "--model", MODEL, "--device", "cpu", "--threads",
                      "1", "--metrics-addr", "127.0.0.1", "--metrics-port", str(mport),
                      "--api-addr", "127.0.0.1", "--api-port", str(aport)],
                     os.path.join(WORK, "same-worker.log"))
    harness.wait_for(lambda: r.xlen("out") >= len(items) or w.proc.poll() is not None, 60,
                     "the worker's outputs")
    check(r.xlen("dlq") == 0, "no dead letters")
    queue = {}
    for _, f in r.xrange("out"):
        o = msgpack.unpackb(f[b"data"])
        queue[int(o["id"])] = o["embedding"]
    for i, it in enumerate(items):
        extra = {k: it[k] for k in ("instruction", "dimensions") if k in it}
        st, _, rep = embed_api(aport, [it["text"]], **extra)
        check(st == 200, f"api {st} {rep}")
        a = vectors(rep)[0]
        same(a, ref[i], f"input {i}: API vs embedq embed")
        same(queue[i], ref[i], f"input {i}: queue vs embedq embed")
    # "" = none, every way in
    for i, it in enumerate(items):
        if it.get("instruction") == "":
            j = reference([{k: v for k, v in it.items() if k != "instruction"}])[0]
            same(ref[i], j, f'input {i}: embed with instruction "" = without')
    stop(w)
    srv.stop()


def sc_sdk():
    nm = os.path.join(HERE, "node_modules", "openai", "package.json")
    if not os.path.exists(nm) or not shutil.which("node"):
        harness.skip("tests/api/node_modules/openai missing (tests/api/setup.sh) or no node")
    inputs = texts(4, 3)
    ins = "Represent this query for retrieval"
    refs = {"plain": [list(v) for v in reference([{"text": t} for t in inputs])],
            "d32": [list(v) for v in reference([{"text": t, "dimensions": 32} for t in inputs])],
            "ins": [list(v) for v in reference([{"text": t, "instruction": ins} for t in inputs])]}
    path = os.path.join(WORK, "sdk_ref.json")
    json.dump({"inputs": inputs, "instruction": ins, "hidden": HIDDEN, **refs}, open(path, "w"))
    p = serve("sdk", "--max-pending-inputs", "64")
    env = {**os.environ, "OPENAI_API_KEY": "unused"}
    q = subprocess.run(["node", os.path.join(HERE, "openai_sdk_test.mjs"),
                        f"http://127.0.0.1:{p.port}/v1", path], capture_output=True, env=env,
                       timeout=300)
    sys.stdout.write(q.stdout.decode())
    sys.stderr.write(q.stderr.decode())
    check(q.returncode == 0, f"openai_sdk_test.mjs exited {q.returncode}")
    stop(p)


def sc_concurrency():
    pool = texts(200, 4, 1, 120)
    ref = reference([{"text": t} for t in pool])
    p = serve("concurrency", "--tokenize-threads", "2")
    errors = []
    done = [0]
    lock = threading.Lock()

    def client(k):
        rnd = random.Random(1000 + k)
        conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=300)
        try:
            for j in range(PER_CLIENT):
                n = rnd.choice((1, 1, 2, 4, 8, 16, 64))
                idx = [rnd.randrange(len(pool)) for _ in range(n)]
                fmt = rnd.choice(("float", "base64"))
                body = json.dumps({"model": "tiny", "input": [pool[i] for i in idx],
                                   "encoding_format": fmt})
                conn.request("POST", "/v1/embeddings", body=body,
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                if r.status != 200:
                    errors.append(f"client {k} request {j}: {r.status} {data[:200]}")
                    return
                vs = vectors(json.loads(data))
                if len(vs) != n:
                    errors.append(f"client {k} request {j}: {len(vs)} vectors for {n} inputs")
                    return
                for v, i in zip(vs, idx):
                    if cos(v, ref[i]) < COS_MIN:
                        errors.append(f"client {k} request {j}: a vector is not its input's")
                        return
                with lock:
                    done[0] += 1
        except Exception as e:  # noqa: BLE001
            errors.append(f"client {k}: {e!r}")
        finally:
            conn.close()

    t0 = time.time()
    ts = [threading.Thread(target=client, args=(k,)) for k in range(64)]
    per = PER_CLIENT
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    check(not errors, "; ".join(errors[:5]))
    check(done[0] == 64 * per, f"{done[0]} requests answered")
    print(f"64 clients x {per} requests: {done[0]} answered and checked in {time.time() - t0:.1f} s")
    stop(p)


def sc_busy():
    p = serve("busy", "--max-pending-inputs", "256", "--tokenize-threads", "1")
    big = {"model": "tiny", "input": ["many words in a long input " * 40] * 256}
    res = {}

    def big_req():
        res["big"] = request(p.port, "POST", "/v1/embeddings", big, timeout=300)

    t = threading.Thread(target=big_req)
    t.start()
    seen = None
    end = time.time() + 60
    while time.time() < end and t.is_alive():
        # once the big request's 256 inputs are pending (/metrics is answered
        # on the loop at once), a small one must be refused
        m = request(p.port, "GET", "/metrics")[2].decode()
        if "embedq_api_queue_inputs 256" not in m:
            time.sleep(0.01)
            continue
        st, hdr, data = request(p.port, "POST", "/v1/embeddings",
                                {"model": "tiny", "input": ["x"] * 8})
        if st == 429:
            seen = (hdr, err_of(data))
            break
    t.join()
    check(seen is not None, "no 429 while 256 inputs were pending")
    hdr, e = seen
    check(hdr.get("retry-after") == "1" and e["type"] == "rate_limit_error" and
          e["code"] == "rate_limit_exceeded", f"429: {hdr} {e}")
    check(res["big"][0] == 200, f"the big request: {res['big'][0]}")
    st, _, _ = embed_api(p.port, ["x"] * 8)
    check(st == 200, "200 once the lane is empty")
    # one request larger than the bound passes alone
    st, _, _ = embed_api(p.port, ["y"] * 300)
    check(st == 200, f"a request over the bound on an empty lane: {st}")
    stop(p)


def raw(port, data, read=True, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if not read:
            return s
        out = b""
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            out += b
        return out
    finally:
        if read:
            s.close()


def sc_hostile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    n_idle = max(0, min(10000, soft - 200))
    p = serve("hostile", "--max-body-bytes", str(1 << 20), "--max-connections",
              str(n_idle + 100))

    def healthy(what):
        t0 = time.time()
        st, _, r = embed_api(p.port, ["are you still there"])
        check(st == 200, f"after {what}: {st}")
        return time.time() - t0

    body = json.dumps({"model": "tiny", "input": "x"}).encode()
    # a huge body: 413 before it is sent
    hdr = (b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % (1 << 30))
    out = raw(p.port, hdr + b"{" * 4096)
    check(out.startswith(b"HTTP/1.1 413"), f"huge body: {out[:60]}")
    healthy("a huge body")
    # Content-Length shorter than the body: the rest is a bad next request
    out = raw(p.port, b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n" +
              body)
    check(out.startswith(b"HTTP/1.1 400"), f"short Content-Length: {out[:60]}")
    healthy("a short Content-Length")
    # Content-Length longer than the body, then silence: no answer hangs the
    # server (closed by the body timeout), others are served meanwhile
    s = raw(p.port, b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" %
            (len(body) + 50) + body, read=False)
    healthy("a long Content-Length")
    s.close()
    # a body cut off (the client goes away half way)
    s = raw(p.port, b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" +
            b'{"model": "tiny", "inp', read=False)
    s.close()
    healthy("a truncated body")
    # invalid UTF-8 (400 naming the input), a lone surrogate escape
    out = raw(p.port, b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              b"Content-Length: 40\r\n\r\n" + b'{"model":"tiny","input":["\xff\xfe\xfd"]}'.ljust(40))
    check(out.startswith(b"HTTP/1.1 400") and b"invalid_utf8" in out, f"bad UTF-8: {out[:200]}")
    st, _, data = request(p.port, "POST", "/v1/embeddings", b'{"model":"tiny","input":"\\ud800"}')
    check(st == 400, f"lone surrogate: {st}")
    healthy("invalid UTF-8")
    # many idle connections
    idle = []
    t0 = time.time()
    try:
        for _ in range(n_idle):
            idle.append(socket.create_connection(("127.0.0.1", p.port), timeout=10))
    except OSError as e:
        print(f"opened {len(idle)} idle connections before {e}")
    dt = healthy(f"{len(idle)} idle connections")
    print(f"{len(idle)} idle connections (RLIMIT_NOFILE soft {soft}, hard {hard}) opened in "
          f"{time.time() - t0:.1f} s; a request meanwhile took {dt * 1000:.0f} ms")
    check(len(idle) >= min(n_idle, 1000), f"only {len(idle)} idle connections opened")
    for s in idle:
        s.close()
    # slowloris: headers one byte at a time, slower than the head timeout
    stop_slow = threading.Event()
    slow_result = {}

    def slowloris():
        s = socket.create_connection(("127.0.0.1", p.port), timeout=30)
        msg = b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        sent = 0
        t0 = time.time()
        try:
            for ch in msg:
                if stop_slow.is_set():
                    break
                s.sendall(bytes([ch]))
                sent += 1
                time.sleep(0.05)
            slow_result["closed"] = False
        except OSError:
            slow_result["closed"] = True
        slow_result["sent"] = sent
        slow_result["seconds"] = time.time() - t0
        s.close()

    ts = [threading.Thread(target=slowloris) for _ in range(20)]
    for t in ts:
        t.start()
    for _ in range(10):
        healthy("slowloris clients")
        time.sleep(0.2)
    for t in ts:
        t.join(60)
    check(slow_result.get("closed") is True,
          f"a slowloris client was not cut off: {slow_result}")
    print(f"slowloris: cut off after {slow_result['sent']} bytes, "
          f"{slow_result['seconds']:.1f} s")
    stop(p)
    # bodies held at once (--max-bodies-bytes): two half-sent bodies hold
    # their Content-Length + 1 each of 2500; a third gets 503 + Retry-After before
    # its body is read, the small ones still pass, and once the two are
    # answered the third passes too
    p = serve("hostile-bodies", "--max-body-bytes", "1000", "--max-bodies-bytes", "2500")
    full = json.dumps({"model": "tiny", "input": "y" * 900}).encode()
    head = (b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(full))
    check(len(full) < 1000, "the body fits --max-body-bytes")
    held = [raw(p.port, head + full[:10], read=False) for _ in range(2)]
    time.sleep(0.3)
    out = raw(p.port, head + full)
    check(out.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in out.lower() and
          b"too many request bodies" in out, f"a third body: {out[:300]}")
    st, _, r = embed_api(p.port, "small")  # its Content-Length + 1 is what it takes
    check(st == 200, f"a small body while {2 * (len(full) + 1)} of 2500 bytes are held: {st}")
    for h in held:
        h.sendall(full[10:])
    for h in held:
        got = b""
        while True:
            chunk = h.recv(65536)
            if not chunk:
                break
            got += chunk
        h.close()
        check(got.startswith(b"HTTP/1.1 200"), f"a held body, completed: {got[:100]}")
    out = raw(p.port, head + full)
    check(out.startswith(b"HTTP/1.1 200"), f"the third body, retried: {out[:100]}")
    m = request(p.port, "GET", "/metrics")[2].decode()
    check('embedq_api_requests_total{status="503"} 1' in m, "the 503 counted")
    stop(p)


def sc_loading():
    """While the model loads (its weights file is a FIFO nobody writes, so
    the load blocks): POST 503 model_loading with Retry-After, /readyz 503,
    /v1/models and /healthz 200; SIGTERM then exits 0 at once."""
    fifo_model = os.path.join(WORK, "fifo_model")
    shutil.copytree(MODEL, fifo_model)
    os.unlink(os.path.join(fifo_model, "model.safetensors"))
    os.mkfifo(os.path.join(fifo_model, "model.safetensors"))
    port = harness.free_port()
    p = harness.Proc([EMBEDQ, "serve", "--model", fifo_model, "--device", "cpu", "--host",
                      "127.0.0.1", "--port", str(port)], os.path.join(WORK, "loading.log"))

    def up():
        try:
            return request(port, "GET", "/healthz", timeout=2)[0] == 200
        except OSError:
            return False

    harness.wait_for(up, 30, "/healthz")
    time.sleep(0.3)
    st, hdr, data = request(port, "POST", "/v1/embeddings",
                            {"model": "fifo_model", "input": "x"})
    e = err_of(data)
    check(st == 503 and e["code"] == "model_loading" and e["type"] == "server_error" and
          hdr.get("retry-after") == "5", f"while loading: {st} {hdr} {e}")
    check(request(port, "GET", "/readyz")[0] == 503, "/readyz 503 while loading")
    check(request(port, "GET", "/v1/models")[0] == 200, "/v1/models while loading")
    t0 = time.time()
    p.signal(signal.SIGTERM)
    rc = p.wait(10)
    check(rc == 0 and time.time() - t0 < 5, f"SIGTERM while loading: exit {rc}")


def sc_drain():
    p = serve("drain", "--tokenize-threads", "1", "--drain-timeout", "600")
    big = {"model": "tiny", "input": ["a long input with many words " * 40] * 512}
    res = []

    def go():
        res.append(request(p.port, "POST", "/v1/embeddings", big, timeout=300))

    ts = [threading.Thread(target=go) for _ in range(3)]
    for t in ts:
        t.start()
    harness.wait_for(lambda: b"embedq_api_requests_in_flight 3" in
                     request(p.port, "GET", "/metrics")[2], 30, "3 requests in flight")
    p.signal(signal.SIGTERM)
    time.sleep(0.2)
    try:
        st, _, data = request(p.port, "POST", "/v1/embeddings", {"model": "tiny", "input": "x"},
                              timeout=10)
        check(st == 503, f"a new request while draining: {st}")
    except OSError as e:
        print(f"a new request while draining: refused ({e})")
    for t in ts:
        t.join(300)
    check([r[0] for r in res] == [200, 200, 200], f"in flight: {[r[0] for r in res]}")
    for r in res:
        check(len(json.loads(r[2])["data"]) == 512, "complete replies")
    rc = p.wait(60)
    check(rc == 0, f"exit {rc}:\n{p.stderr_tail()}")


def sc_worker_redis():
    harness.skip_unless_ready()
    try:
        import msgpack
    except ImportError:
        harness.skip("python3-msgpack not installed")
    srv = harness.RedisServer(os.path.join(WORK, "redis-wr")).start()
    r = srv.client()
    n = 1500
    docs = texts(n, 5, 100, 300)
    pipe = r.pipeline()
    for i, t in enumerate(docs):
        pipe.xadd("in", {"data": json.dumps({"id": str(i), "text": t})})
    pipe.execute()
    mport, aport = harness.free_port(), harness.free_port()
    w = harness.Proc([EMBEDQ, "worker", "--source", "redis", "--redis-url", srv.url,
                      "--in-stream", "in", "--group", "g", "--out-stream", "out",
                      "--dlq-stream", "dlq", "--model", MODEL, "--device", "cpu", "--threads",
                      "1", "--metrics-addr", "127.0.0.1", "--metrics-port", str(mport),
                      "--api-addr", "127.0.0.1", "--api-port", str(aport), "--max-wait-ms", "50"],
                     os.path.join(WORK, "wr-worker.log"))
    qs = texts(20, 6)
    ref = reference([{"text": t} for t in qs])
    harness.wait_for(lambda: ready_port(aport), 60, "the API")
    t_start = time.time()
    lat = []
    backlog_seen = 0
    for i, q in enumerate(qs):
        t0 = time.time()
        st, _, rep = embed_api(aport, [q])
        lat.append(time.time() - t0)
        check(st == 200, f"query {i}: {st} {rep}")
        same(vectors(rep)[0], ref[i], f"query {i}")
        if r.xlen("out") < n:
            backlog_seen += 1
    print(f"queries under a backlog: {backlog_seen}/{len(qs)} answered while the queue was not "
          f"done; latency max {max(lat) * 1000:.0f} ms, median "
          f"{sorted(lat)[len(lat) // 2] * 1000:.0f} ms")
    check(backlog_seen >= len(qs) // 2, "the queue finished before the queries: no load")
    harness.wait_for(lambda: r.xlen("out") >= n, 600, "all outputs")
    backlog_s = time.time() - t_start
    med = sorted(lat)[len(lat) // 2]
    print(f"the backlog of {n} took {backlog_s:.1f} s; median query {med * 1000:.0f} ms")
    # Queries go first: without the HTTP lane's priority a query waits for
    # every queue message ahead of it (the whole backlog is in flight).
    check(med < 0.25 * backlog_s, "queries are not served ahead of the queue")
    ids = set()
    for _, f in r.xrange("out"):
        ids.add(msgpack.unpackb(f[b"data"])["id"])
    check(ids == {str(i) for i in range(n)}, f"outputs: {len(ids)} ids of {n}")
    check(r.xlen("dlq") == 0, "no dead letters")
    stop(w)
    srv.stop()


def sc_worker_kafka():
    """The worker with --api-port on Kafka (`embedq mock-kafka`): queries
    answered during the backlog, every record's output published, vectors
    equal to `embedq embed`'s."""
    try:
        from confluent_kafka import Consumer, Producer, TopicPartition
    except ImportError:
        harness.skip("python3-confluent-kafka not installed")
    sys.path.insert(0, os.path.join(HERE, "..", "worker_kafka"))
    from mock_kafka_test import Mock
    mock = Mock(EMBEDQ, "--partitions", "2", "--topics", "in,out,dlq")
    try:
        n = 600
        docs = texts(n, 7, 100, 300)
        pr = Producer({"bootstrap.servers": mock.bootstrap, "log_level": 2})
        for i, t in enumerate(docs):
            pr.produce("in", key=str(i).encode(), value=json.dumps({"id": str(i), "text": t}))
        check(pr.flush(30) == 0, "produced")
        aport = harness.free_port()
        w = harness.Proc([EMBEDQ, "worker", "--source", "kafka", "--brokers", mock.bootstrap,
                          "--group", "g", "--in-topic", "in", "--out-topic", "out",
                          "--dlq-topic", "dlq", "--model", MODEL, "--device", "cpu",
                          "--threads", "1", "--output-format", "json", "--metrics-addr",
                          "127.0.0.1", "--metrics-port", "0", "--api-addr", "127.0.0.1",
                          "--api-port", str(aport)], os.path.join(WORK, "wk-worker.log"))
        qs = texts(10, 8)
        ref = reference([{"text": t} for t in qs])
        refd = reference([{"text": t} for t in docs[:50]])
        harness.wait_for(lambda: ready_port(aport), 60, "the API")
        for i, q in enumerate(qs):
            st, _, rep = embed_api(aport, [q])
            check(st == 200, f"query {i}: {st}")
            same(vectors(rep)[0], ref[i], f"query {i}")
        c = Consumer({"bootstrap.servers": mock.bootstrap, "group.id": "reader",
                      "enable.auto.commit": False, "log_level": 2})
        c.assign([TopicPartition("out", p, -2) for p in range(2)])
        got = {}
        end = time.time() + 300
        while len(got) < n and time.time() < end:
            for m in c.consume(500, 0.5):
                if m.error():
                    continue
                o = json.loads(m.value())
                got[o["id"]] = o["embedding"]
        c.close()
        check(set(got) == {str(i) for i in range(n)}, f"outputs: {len(got)} of {n}")
        for i in range(50):
            same(got[str(i)], refd[i], f"record {i}")
        stop(w)
    finally:
        mock.stop()


def ready_port(port):
    try:
        st, _, _ = request(port, "GET", "/v1/models", timeout=2)
        return st == 200 and embed_api(port, ["x"])[0] == 200
    except OSError:
        return False


SCENARIOS = {"curl": sc_curl, "same_vector": sc_same_vector, "sdk": sc_sdk,
             "concurrency": sc_concurrency, "busy": sc_busy, "hostile": sc_hostile,
             "drain": sc_drain, "worker_redis": sc_worker_redis,
             "worker_kafka": sc_worker_kafka, "loading": sc_loading}


def main():
    global EMBEDQ, WORK, MODEL
    ap = argparse.ArgumentParser()
    ap.add_argument("--embedq", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    a = ap.parse_args()
    try:
        import numpy  # noqa: F401
    except ImportError:
        harness.skip("python3-numpy not installed")
    if not shutil.which("curl"):
        harness.skip("curl not installed")
    EMBEDQ, WORK = a.embedq, a.work
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    MODEL = os.path.join(WORK, "tiny")
    subprocess.run([EMBEDQ, "gen-model", "--preset", "tiny", "--out", MODEL, "--seed", "7"],
                   check=True, capture_output=True)
    check(json.load(open(os.path.join(MODEL, "config.json")))["hidden_size"] == HIDDEN,
          "tiny preset hidden size")
    SCENARIOS[a.scenario]()
    print(f"ok: {a.scenario}")


if __name__ == "__main__":
    main()
