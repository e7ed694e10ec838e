#!/usr/bin/env python3
"""The HTTP layer's share of the time at 512-token inputs (docs/benchmarks.md,
"The embeddings API").

  api_http_share.py EMBEDQ MODEL_DIR N [ids|text]

Starts `embedq serve --device cpu` on MODEL_DIR, sends N sequential requests
of one 512-token input (token ids, or a text that tokenizes to exactly 512
tokens with <|endoftext|>) after one warm-up, and compares the engine's time
(the rise of embedq_batch_seconds_sum) with the API's request time
(embedq_api_request_seconds_sum: body parsed to answer queued) and with what
the client observed. The difference is everything outside the engine:
request parsing and checks, tokenization (text), queueing, reply encoding,
HTTP. Python standard library only.
"""
import http.client, json, re, subprocess, sys, time, socket, os
embedq, model, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
p = subprocess.Popen([embedq, "serve", "--model", model, "--device", "cpu", "--host", "127.0.0.1", "--port", str(port)],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
def get(path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600); c.request("GET", path); r = c.getresponse(); return r.status, r.read().decode()
while True:
    try:
        if get("/readyz")[0] == 200: break
    except OSError: pass
    time.sleep(0.5)
name = os.path.basename(model.rstrip("/"))
words = "alpha beta gamma delta vector query queue kafka redis engine token zebra".split()
tok = subprocess.run([embedq, "tokenize", "--model", model], input=json.dumps({"text": " ".join(words[i % 12] for i in range(600))}) + "\n", capture_output=True, text=True)
ids = json.loads(tok.stdout)["ids"][:511]
mode = sys.argv[4] if len(sys.argv) > 4 else "ids"
# a text of exactly 511 tokens + <|endoftext|>: the words whose ids are those
ws = [words[i % 12] for i in range(600)]
while True:
    t = json.loads(subprocess.run([embedq, "tokenize", "--model", model], input=json.dumps({"text": " ".join(ws)}) + "\n", capture_output=True, text=True).stdout)["ids"]
    if len(t) <= 512: break
    ws = ws[:-1]
text = " ".join(ws)
text_in = None
def metric(m, name):
    return float(re.search(r"^%s (\S+)$" % re.escape(name), m, re.M).group(1))
c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
def post(body):
    c.request("POST", "/v1/embeddings", body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse(); d = r.read(); assert r.status == 200, d[:200]; return json.loads(d)
post({"model": name, "input": [ids]})  # warm-up
m0 = get("/metrics")[1]
lat = []
for i in range(n):
    body = {"model": name, "input": [ids], "encoding_format": "float"} if mode == "ids" else {"model": name, "input": [text], "encoding_format": "float"}
    t0 = time.time(); r = post(body); lat.append(time.time() - t0)
    assert r["usage"]["prompt_tokens"] == 512, r["usage"]
m1 = get("/metrics")[1]
eng = metric(m1, "embedq_batch_seconds_sum") - metric(m0, "embedq_batch_seconds_sum")
api = metric(m1, "embedq_api_request_seconds_sum") - metric(m0, "embedq_api_request_seconds_sum")
cl = sum(lat)
print(f"{n} requests of one 512-token input ({mode}), model {name}, CPU:")
print(f"  engine (embedq_batch_seconds) {eng:.3f} s; API request time {api:.3f} s; client-observed {cl:.3f} s")
print(f"  outside the engine: server {100*(api-eng)/eng:.2f}% of engine time; client-observed {100*(cl-eng)/eng:.2f}%")
p.terminate(); p.wait()
