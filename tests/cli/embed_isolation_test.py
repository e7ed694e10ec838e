#!/usr/bin/env python3
"""One input that drives the model to a non-finite state fails alone.

A tiny checkpoint is generated, then one embedding row (the token of
" zebra") is overwritten with +inf (bf16 0x7F80) in model.safetensors. A
packed batch holding that input and its neighbours fails in the backend;
`embedq embed` must re-run the batch one sequence at a time, print an error
line for the poisoned input only, give the neighbours the vectors they get
without it, and exit 1.

"The vectors they get without it" means: the same tokens, the same
dimensions, and cosine >= 0.999999 (float rounding only). Bit-identical is
not required: the re-run embeds each neighbour alone, the clean run embeds
them together, and BLAS does not promise identical bits across batch
compositions (1.4e-7 apart, cosine 1 - 9e-14, was seen on a CI machine). A
neighbour that the poison reached, or that lost its row, is far below that
bound (a different text scores about 0.9 on the tiny model).

usage: embed_isolation_test.py EMBEDQ_BIN WORKDIR
"""
import json
import os
import shutil
import struct
import subprocess
import sys

binary, work = sys.argv[1:3]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
model = os.path.join(work, "tiny")
subprocess.run([binary, "gen-model", "--preset", "tiny", "--out", model, "--seed", "3"], check=True)

ids = json.loads(subprocess.run([binary, "tokenize", "--model", model], input='{"text": " zebra"}\n',
                                capture_output=True, text=True, check=True).stdout)["ids"]
poison = ids[0]

path = os.path.join(model, "model.safetensors")
with open(path, "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    t = header["embed_tokens.weight"]
    assert t["dtype"] == "BF16"
    hidden = t["shape"][1]
    f.seek(8 + n + t["data_offsets"][0] + poison * hidden * 2)
    f.write(b"\x80\x7f" * hidden)  # +inf, little-endian bf16

lines = [{"id": "a", "text": "first neighbour"},
         {"id": "p", "text": "a zebra walks"},
         {"id": "b", "text": "second neighbour", "dimensions": 32}]


def embed(rows):
    p = subprocess.run([binary, "embed", "--model", model],
                       input="".join(json.dumps(r) + "\n" for r in rows),
                       capture_output=True, text=True)
    return p.returncode, [json.loads(l) for l in p.stdout.splitlines()]


rc, out = embed(lines)
rc_clean, clean = embed([lines[0], lines[2]])
ok = True
if rc != 1 or rc_clean != 0:
    print(f"exit status {rc} (want 1), without the poisoned line {rc_clean} (want 0)")
    ok = False
if len(out) != 3 or out[1].get("line") != 2 or "finite" not in out[1].get("error", ""):
    print("poisoned line:", out[1:2])
    ok = False
def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    na = sum(x * x for x in a) ** 0.5
    nb = sum(y * y for y in b) ** 0.5
    return dot / (na * nb) if na and nb else 0.0


for got, want in ((out[0], clean[0]), (out[2], clean[1])):
    g, w = got.get("embedding"), want.get("embedding")
    if g is None or w is None or len(g) != len(w) or got.get("tokens") != want.get("tokens") \
            or got.get("id") != want.get("id"):
        print("neighbour differs:", got.get("id"), str(got)[:200], "want", str(want)[:200])
        ok = False
        continue
    c = cosine(g, w)
    print(f"neighbour {got['id']}: {len(g)} dims, {got.get('tokens')} tokens, cosine {c:.12f}")
    if not c >= 0.999999:
        print("neighbour differs beyond rounding:", got["id"], c)
        ok = False
print("embed isolation:", "ok" if ok else "FAILED", "| poisoned line:", out[1] if len(out) > 1 else None)
sys.exit(0 if ok else 1)
