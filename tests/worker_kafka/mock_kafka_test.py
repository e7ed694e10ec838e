#!/usr/bin/python3
"""`embedq mock-kafka` against a real client (python3-confluent-kafka).

Starts `embedq mock-kafka --partitions 4 --topics in,out`, reads the
bootstrap address from its first stdout line, then:
  - produces 200 keyed records to `in` and checks they spread over the 4
    partitions;
  - consumes them in a consumer group, commits, and reads the committed
    offsets back (they equal the high watermarks);
  - a second consumer of the same group resumes from the commit (gets
    nothing old, then a new record);
  - `down 1` on stdin: a produce does not complete; `up 1`: it does;
  - `topic extra 3` creates a topic with 3 partitions; rtt, leader and
    error commands are acknowledged; a bad command is answered with
    "error ...";
  - SIGTERM: exits 0.

usage: mock_kafka_test.py EMBEDQ_BIN
Exit 77 (skipped) without python3-confluent-kafka or when this embedq was
built without librdkafka.
"""
import os
import select
import signal
import subprocess
import sys
import time

try:
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
except ImportError:
    print("SKIP: python3-confluent-kafka is not installed")
    sys.exit(77)

QUIET = {"log_level": 3}


class Mock:
    """An `embedq mock-kafka` process: bootstrap address + stdin commands."""

    def __init__(self, embedq, *args):
        self.p = subprocess.Popen([embedq, "mock-kafka", *args], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  bufsize=1)
        line = self.readline(15)
        if not line:
            err = self.p.stderr.read() if self.p.poll() is not None else ""
            raise RuntimeError("mock-kafka printed no bootstrap address: " + err)
        self.bootstrap = line.strip()

    def readline(self, timeout):
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        return self.p.stdout.readline() if r else ""

    def cmd(self, line, timeout=5):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        ans = self.readline(timeout).strip()
        return ans

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return None


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def produce(bootstrap, topic, records, timeout=15):
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, **QUIET})
    errs = []
    for k, v in records:
        p.produce(topic, key=k, value=v, on_delivery=lambda e, m: e and errs.append(e))
    left = p.flush(timeout)
    return left, errs


def consume(c, n, timeout):
    got, deadline = [], time.time() + timeout
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() != KafkaError._PARTITION_EOF:
                print("consumer error:", m.error())
            continue
        got.append(m)
    return got


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    embedq = sys.argv[1]
    h = subprocess.run([embedq, "mock-kafka", "--help"], capture_output=True, text=True)
    if h.returncode != 0:
        print("SKIP: this embedq has no mock-kafka (built without librdkafka)")
        return 77
    mock = Mock(embedq, "--partitions", "4", "--topics", "in,out")
    try:
        b = mock.bootstrap
        check(":" in b, "bootstrap address printed first: " + b)

        # Produce keyed records; they land on all 4 partitions.
        recs = [(b"k%d" % i, b"v%d" % i) for i in range(200)]
        left, errs = produce(b, "in", recs)
        check(left == 0 and not errs, "200 records produced (idempotent producer)")

        # Consume in a group, commit, read the commit back.
        # The mock holds every rebalance up to session.timeout.ms - 1 s
        # waiting for members (the first join: 3 s): keep it short.
        conf = {"bootstrap.servers": b, "group.id": "g1", "auto.offset.reset": "earliest",
                "enable.auto.commit": False, "session.timeout.ms": 4000,
                "heartbeat.interval.ms": 500, **QUIET}
        c = Consumer(conf)
        c.subscribe(["in"])
        got = consume(c, 200, 30)
        check(len(got) == 200, "the group consumed all 200 records (got %d)" % len(got))
        check(len({m.partition() for m in got}) == 4, "records spread over 4 partitions")
        check(sorted(m.value() for m in got) == sorted(v for _, v in recs), "values intact")
        c.commit(asynchronous=False)
        tps = [TopicPartition("in", p) for p in range(4)]
        committed = c.committed(tps, timeout=10)
        marks = [c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps]
        check([tp.offset for tp in committed] == marks,
              "committed offsets = high watermarks %s" % marks)
        check(sum(marks) == 200, "watermarks sum to 200")
        c.close()

        # A new member of the group resumes from the commit.
        left, errs = produce(b, "in", [(b"new", b"after-commit")])
        check(left == 0 and not errs, "one more record produced")
        c2 = Consumer(conf)
        c2.subscribe(["in"])
        got = consume(c2, 1, 30)
        check(len(got) == 1 and got[0].value() == b"after-commit",
              "the group resumed from its commit (only the new record)")
        extra = consume(c2, 1, 2)
        check(not extra, "nothing old redelivered")
        c2.close()

        # Broker down: a produce cannot complete; up: it does.
        check(mock.cmd("down 1") == "ok down 1", "down 1 acknowledged")
        p = Producer({"bootstrap.servers": b, "message.timeout.ms": 30000, **QUIET})
        done = []
        p.produce("out", value=b"while-down", on_delivery=lambda e, m: done.append(e))
        p.flush(3)
        check(not done, "no delivery while the broker is down")
        check(mock.cmd("up 1") == "ok up 1", "up 1 acknowledged")
        left = p.flush(20)
        check(left == 0 and done == [None], "delivered after up 1")
        del p

        # Other commands.
        check(mock.cmd("topic extra 3") == "ok topic extra 3", "topic command")
        c3 = Consumer(conf)
        md = c3.list_topics("extra", timeout=10)
        check(len(md.topics["extra"].partitions) == 3, "topic extra has 3 partitions")
        c3.close()
        check(mock.cmd("rtt 1 5") == "ok rtt 1 5", "rtt command")
        check(mock.cmd("leader in 0 1") == "ok leader in 0 1", "leader command")
        check(mock.cmd("error 0 1 7").startswith("ok"), "error command")
        check(mock.cmd("bogus").startswith("error"), "unknown command answered with error")
    finally:
        rc = mock.stop()
    check(rc == 0, "SIGTERM: exit 0")
    print("mock_kafka_test: all ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
