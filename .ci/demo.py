#!/usr/bin/env python3
"""The README's first command, after setup: the real worker on its embedded default.

Starts `embedq mock-kafka` (librdkafka's mock cluster: a Kafka-protocol broker on
loopback), one `embedq worker` on the tiny random-weight model with the CPU engine,
produces chunks of the project's own docs plus two malformed messages, reads the
output and dead-letter topics until every input is accounted for, stops the worker
with SIGTERM (it drains and commits) and prints a readable summary.
"""
import glob, json, os, re, signal, subprocess, sys, time

from confluent_kafka import Consumer, Producer, TopicPartition

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# EMBEDQ_BIN / EMBEDQ_DEMO_MODEL: another build (the `cli_demo` test uses them).
bin_ = os.environ.get("EMBEDQ_BIN", os.path.join(root, "build", "embedq"))
model = os.environ.get("EMBEDQ_DEMO_MODEL", os.path.join(root, "build", "demo-model"))

def chunks():
    """Paragraphs of docs/*.md and README.md, as a RAG chunker would send them."""
    out = []
    for path in sorted(glob.glob(os.path.join(root, "docs", "*.md"))) + [os.path.join(root, "README.md")]:
        text = open(path, encoding="utf-8").read()
        for i, para in enumerate(p.strip() for p in re.split(r"\n\s*\n", text)):
            if len(para) >= 80:
                out.append((f"{os.path.basename(path)}#{i}", para))
    return out[:300]

mock = subprocess.Popen([bin_, "mock-kafka", "--partitions", "4", "--topics", "docs,vectors,dead"],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
brokers = mock.stdout.readline().strip()
if not brokers:
    sys.exit("demo: `embedq mock-kafka` did not start (is build/embedq built with librdkafka? run .ci/setup)")
worker = None
try:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", EMBEDQ_LOG_LEVEL="warn")
    worker = subprocess.Popen([bin_, "worker", "--source", "kafka", "--brokers", brokers, "--group", "demo",
                               "--in-topic", "docs", "--out-topic", "vectors", "--dlq-topic", "dead",
                               "--model", model, "--device", "cpu", "--output-format", "json",
                               "--metrics-port", "0", "--max-wait-ms", "50"], env=env)
    docs = chunks()
    p = Producer({"bootstrap.servers": brokers, "log_level": 3})
    t0 = time.time()
    for key, text in docs:
        p.produce("docs", key=key, value=json.dumps({"id": key, "text": text, "meta": {"source": key.split("#")[0]}}))
    p.produce("docs", key="broken-1", value=b'{"id": "broken-1", "text": ')          # malformed JSON
    p.produce("docs", key="broken-2", value=json.dumps({"id": "broken-2", "text": ""}))  # empty text
    p.flush(30)
    del p  # closed now, not at exit after the broker is gone (it would log reconnect errors)
    want = len(docs) + 2

    c = Consumer({"bootstrap.servers": brokers, "group.id": "demo-reader", "auto.offset.reset": "earliest",
                  "log_level": 3})
    c.subscribe(["vectors", "dead"])
    outputs, dead = {}, {}
    deadline = time.time() + 120
    while len(outputs) + len(dead) < want and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        if m.topic() == "vectors":
            outputs[m.key().decode()] = json.loads(m.value())
        else:
            hdr = {k: v.decode() for k, v in (m.headers() or [])}
            dead[m.key().decode()] = hdr.get("embedq.error", "?")
    elapsed = time.time() - t0
    c.close()

    worker.send_signal(signal.SIGTERM)
    rc = worker.wait(60)
    print(f"embedq worker (tiny random-weight model, CPU engine) on a local Kafka-protocol broker ({brokers}):")
    print(f"  produced {want} messages to 'docs' (4 partitions): {len(docs)} doc chunks + 2 malformed")
    print(f"  'vectors': {len(outputs)} outputs; 'dead': {len(dead)} dead letters; {elapsed:.1f} s end to end")
    for k in list(outputs)[:3]:
        o = outputs[k]
        v = o["embedding"]
        print(f"    {k:28} tokens={o['tokens']:4} dims={o['dimensions']} |v|={sum(x*x for x in v)**0.5:.4f} "
              f"first={v[0]:+.4f},{v[1]:+.4f} meta={o.get('meta')}")
    for k, why in dead.items():
        print(f"    dead letter {k}: {why}")
    print(f"  worker exit status after SIGTERM: {rc} (0 = drained, offsets committed, group left)")
    missing = want - len(outputs) - len(dead)
    if missing or rc != 0 or len(dead) != 2:
        print(f"demo: FAILED ({missing} messages unaccounted for)")
        sys.exit(1)
finally:
    if worker and worker.poll() is None:
        worker.kill()
    mock.send_signal(signal.SIGTERM)
    try:
        mock.wait(10)
    except subprocess.TimeoutExpired:
        mock.kill()
