#!/usr/bin/env python3
"""check_examples.py - validates the v1 examples against the JSON Schemas.

    check_examples.py SCHEMAS_V1_DIR [--tool MSG_TOOL]

- every schema is a valid Draft 2020-12 schema;
- examples/input-*.json and msgpack/input-*.msgpack (decoded) match
  input.schema.json; output-qdrant-*.json match output-qdrant.schema.json,
  other output-*.json and output-*.msgpack match output.schema.json;
  dead-letter-kafka-headers.json, dead-letter-kafka-cut-headers.json and
  dead-letter-redis-fields.json match their
  part of dead-letter.schema.json;
- examples/invalid/*: those the schema can express must FAIL input.schema.json
  (the rest are listed in NOT_EXPRESSIBLE with the reason);
- with --tool (tests/worker/msg_tool): the worker's own output for every
  input example, in every format, matches the output schemas, and every
  invalid example is rejected with the code its file name starts with.

Exit 77 (skipped, for CTest) when the jsonschema module is missing
(Debian: python3-jsonschema).
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import json2msgpack  # noqa: E402

try:
    import jsonschema
except ImportError:
    print("jsonschema not installed (apt-get install python3-jsonschema): skipped")
    sys.exit(77)

# Invalid examples that JSON Schema cannot reject, and why.
NOT_EXPRESSIBLE = {
    "duplicate_key": "Python's json keeps the last duplicate; the schema sees one key",
    "invalid_utf8": "not valid JSON text at all, or a lone surrogate that Python accepts",
    "malformed_json": "not JSON",
    "empty_message": "not JSON",
    "too_deep": "a worker limit, not a schema rule",
    "dimensions_wrong_type.float": "JSON Schema counts 256.0 as an integer",
    "id_wrong_type.exponent": "JSON Schema counts 1e3 as an integer",
    "dimensions_out_of_range.large": "the upper bound is the model's hidden size",
}

failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL:", msg)


def load_json(path):
    with open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def validator(schema):
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def expect_valid(v, obj, what):
    errs = sorted(v.iter_errors(obj), key=str)
    if errs:
        fail("%s: %s" % (what, errs[0].message))


def check_pgvector_payload(pl, js, path):
    """The pgvector payload says what the json output says: the vector literal
    parses to the same floats, meta's JSON text to the same value, the id is
    its text form."""
    what = "msg_tool pgvector %s" % os.path.basename(path)
    vec = [float(x) for x in pl["embedding"][1:-1].split(",")]
    if vec != js["embedding"]:
        fail("%s: embedding literal differs from the json output's vector" % what)
    meta = json.loads(pl["meta"]) if pl["meta"] is not None else None
    if ("meta" in js) != (pl["meta"] is not None) or meta != js.get("meta"):
        fail("%s: meta %r differs from the json output's %r" % (what, pl["meta"], js.get("meta")))
    if pl["id"] != str(js["id"]) or pl["dimensions"] != js["dimensions"] or \
            pl["tokens"] != js["tokens"] or pl["truncated"] != js["truncated"]:
        fail("%s: id/dimensions/tokens/truncated differ from the json output" % what)
    return 1


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    d = argv[0]
    tool = argv[argv.index("--tool") + 1] if "--tool" in argv else None
    ex = os.path.join(d, "examples")
    schemas = {n: load_json(os.path.join(d, n + ".schema.json"))
               for n in ("input", "output", "output-qdrant", "output-pgvector", "dead-letter")}
    v_in = validator(schemas["input"])
    v_out = validator(schemas["output"])
    v_qd = validator(schemas["output-qdrant"])
    v_pg = validator(schemas["output-pgvector"])
    dl = schemas["dead-letter"]
    validator(dl)
    v_dl = {k: validator({"$ref": "#/$defs/" + k, "$defs": dl["$defs"]})
            for k in ("kafka_headers", "redis_fields")}
    n = 0

    inputs = sorted(f for f in os.listdir(ex) if f.startswith("input-") and f.endswith(".json"))
    for f in inputs:
        expect_valid(v_in, load_json(os.path.join(ex, f)), f)
        mp = os.path.join(ex, "msgpack", f[:-5] + ".msgpack")
        with open(mp, "rb") as fh:
            expect_valid(v_in, json2msgpack.unpackb(fh.read()), mp)
        n += 2
    for f in sorted(os.listdir(ex)):
        if not f.startswith("output-"):
            continue
        v = (v_qd if f.startswith("output-qdrant-") else
             v_pg if f.startswith("output-pgvector-") else v_out)
        if f.endswith(".msgpack"):
            with open(os.path.join(ex, f), "rb") as fh:
                obj = json2msgpack.unpackb(fh.read())
            if not all(isinstance(x, json2msgpack.Float32) for x in obj["embedding"]):
                fail("%s: embedding is not all float32" % f)
        else:
            obj = load_json(os.path.join(ex, f))
        expect_valid(v, obj, f)
        n += 1
    expect_valid(v_dl["kafka_headers"], load_json(os.path.join(ex, "dead-letter-kafka-headers.json")),
                 "dead-letter-kafka-headers.json")
    expect_valid(v_dl["kafka_headers"],
                 load_json(os.path.join(ex, "dead-letter-kafka-cut-headers.json")),
                 "dead-letter-kafka-cut-headers.json")
    expect_valid(v_dl["redis_fields"], load_json(os.path.join(ex, "dead-letter-redis-fields.json")),
                 "dead-letter-redis-fields.json")
    n += 3

    inv = os.path.join(ex, "invalid")
    for f in sorted(os.listdir(inv)):
        stem = f[:-5] if f.endswith(".json") else f
        code = stem.split(".")[0]
        skip = NOT_EXPRESSIBLE.get(stem) or NOT_EXPRESSIBLE.get(code)
        if not skip:
            try:
                obj = load_json(os.path.join(inv, f))
            except ValueError as e:
                fail("invalid/%s: not JSON (%s); list it in NOT_EXPRESSIBLE" % (f, e))
                continue
            if v_in.is_valid(obj):
                fail("invalid/%s: input.schema.json accepts it" % f)
            n += 1
        if tool:
            r = subprocess.run([tool, "json", os.path.join(inv, f)], capture_output=True)
            got = r.stdout.decode("ascii", "replace").strip()
            if r.returncode != 2 or not got.startswith(code + ":") and got != code:
                fail("invalid/%s: msg_tool said %r (rc %d), want code %s" % (f, got, r.returncode, code))
            n += 1

    if tool:
        files = [os.path.join(ex, f) for f in inputs] + \
                [os.path.join(ex, "msgpack", f[:-5] + ".msgpack") for f in inputs]
        for path in files:
            as_json = None
            for fmt, v in (("msgpack", v_out), ("json", v_out), ("qdrant", v_qd),
                           ("pgvector", v_pg)):
                r = subprocess.run([tool, fmt, path], capture_output=True)
                if r.returncode != 0:
                    fail("msg_tool %s %s: rc %d: %s" % (fmt, path, r.returncode, r.stdout[:200]))
                    continue
                try:
                    if fmt == "msgpack":
                        obj = json2msgpack.unpackb(r.stdout)
                        if not all(isinstance(x, json2msgpack.Float32) for x in obj["embedding"]):
                            fail("msg_tool msgpack %s: embedding not float32" % path)
                    else:
                        obj = json.loads(r.stdout.decode("utf-8"))
                except ValueError as e:
                    fail("msg_tool %s %s: unparsable output: %s" % (fmt, path, e))
                    continue
                expect_valid(v, obj, "msg_tool %s %s" % (fmt, os.path.basename(path)))
                n += 1
                if fmt == "json":
                    as_json = obj
                elif fmt == "pgvector" and as_json is not None:
                    n += check_pgvector_payload(obj["payload"], as_json, path)

    print("%d passed, %d failed" % (n - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
