#!/usr/bin/env python3
"""worker/redis.c against a real redis-server, driven by redis_driver (a
stand-in pipeline whose "output" for entry E with payload P is "E|P"; see
redis_driver.c).

usage: redis_smoke_test.py DRIVER WORKDIR --scenario NAME|all

Scenarios (one function each):
  basic            XREADGROUP -> publish -> MULTI/EXEC for data and plain-field
                   entries; poison -> dead letters with the original fields,
                   `error`, `source_id`; nothing pending; lag 0
  pending_restart  own pending entries re-read (id 0) at start; a driver
                   killed with -9 mid-stream and restarted under the same
                   consumer name: every entry out, nothing pending
  claim            entries left pending by a dead consumer are XAUTOCLAIMed
                   (cursor loop over small COUNT batches); the dead consumer
                   is never deleted
  max_deliveries   claimed entries delivered more than --max-deliveries
                   times go to the dead-letter stream unprocessed
  redis_restart    redis-server (appendonly, fsync always) killed -9 and
                   restarted on the same port mid-stream: reconnect, nothing
                   lost, nothing pending
  frozen           redis-server stopped (SIGSTOP) longer than --io-timeout-ms:
                   the watchdog drops and remakes the connections; after
                   SIGCONT nothing is lost or left pending
  close_reconnect  redis-server down when the drain times out: redis_close
                   reconnects once it is back and publishes what it holds
  maxlen           --out-maxlen trims the output stream only
  sigterm_load     SIGTERM with a backlog in flight: exit 0, nothing pending;
                   a second run finishes the rest; an idle driver blocked in
                   XREADGROUP BLOCK 30000 exits at once (CLIENT UNBLOCK)
  connect_retry    start before redis-server is up (retries); rediss:// and
                   bad URLs refused; AUTH user:password + /db
  group_missing    --no-create-group with no group: not ready until the group
                   is created; the stream deleted under a running driver:
                   reported, not recreated
"""
import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Proc, RedisServer, pending_count, wait_for, xrange_all  # noqa: E402

DRIVER = None
WORK = None

IN, GROUP, OUT, DLQ = "in", "g", "out", "dlq"


def driver(srv_url, consumer, name, *extra):
    args = [DRIVER, "--url", srv_url, "--in", IN, "--group", GROUP, "--consumer", consumer,
            "--out", OUT, "--dlq", DLQ, "--block-ms", "200"] + [str(x) for x in extra]
    return Proc(args, os.path.join(WORK, name + ".log"))


def stop(d, timeout=20):
    d.signal(signal.SIGTERM)
    rc = d.wait(timeout)
    stats = None
    for l in d.lines:
        if l.startswith("{"):
            stats = json.loads(l)
    assert rc == 0, f"driver exit {rc}; stderr:\n{d.stderr_tail()}"
    assert stats is not None, "no stats line"
    return stats


def outputs(r):
    """{source_id: [payload, ...]} from the output stream."""
    res = {}
    for _, f in xrange_all(r, OUT):
        sid, _, payload = f[b"data"].partition(b"|")
        res.setdefault(sid.decode(), []).append(payload)
    return res


def add_data(r, payloads):
    p = r.pipeline(transaction=False)
    for x in payloads:
        p.xadd(IN, {"data": x})
    return [i.decode() for i in p.execute()]


def wait_out(r, n, timeout=30):
    wait_for(lambda: r.xlen(OUT) >= n, timeout, f"{n} output entries (have {r.xlen(OUT)})")


def check_complete(r, ids_payloads, allow_dups=False):
    """Every input id has its output with the right payload."""
    out = outputs(r)
    missing = [i for i in ids_payloads if i not in out]
    assert not missing, f"{len(missing)} inputs without output, e.g. {missing[:5]}"
    dups = sum(len(v) - 1 for v in out.values())
    for i, p in ids_payloads.items():
        for got in out[i]:
            assert got == p, f"{i}: output payload {got!r}, want {p!r}"
    if not allow_dups:
        assert dups == 0, f"{dups} duplicate outputs"
    return dups


# ---- scenarios ------------------------------------------------------------------------


def sc_basic():
    srv = RedisServer(os.path.join(WORK, "basic")).start()
    r = srv.client()
    try:
        want = {}
        payloads = [f"payload-{i}".encode() for i in range(1500)]
        for i, p in zip(add_data(r, payloads), payloads):
            want[i] = p
        # plain fields
        pipe = r.pipeline(transaction=False)
        for k in range(500):
            pipe.xadd(IN, {"id": f"doc-{k}", "text": f"hello {k}", "dimensions": "64"})
        for i, k in zip(pipe.execute(), range(500)):
            want[i.decode()] = f"id=doc-{k};text=hello {k}".encode()
        # poison: data with extra fields (one named `error`, dropped), plain
        dead = {}
        for k in range(5):
            i = r.xadd(IN, {"data": f"poison-{k}", "meta": "keep", "error": "stale"}).decode()
            dead[i] = {b"data": f"poison-{k}".encode(), b"meta": b"keep"}
            i = r.xadd(IN, {"id": f"p{k}", "text": "poison"}).decode()
            dead[i] = {b"id": f"p{k}".encode(), b"text": b"poison"}
        d = driver(srv.url, "c1", "basic", "--count", "64")
        wait_out(r, 2000)
        wait_for(lambda: r.xlen(DLQ) >= 10, 10, "10 dead letters")
        wait_for(lambda: pending_count(r, IN, GROUP) == 0, 10, "no pending entries")
        st = stop(d)
        check_complete(r, want)
        assert r.xlen(OUT) == 2000, r.xlen(OUT)
        assert r.xlen(IN) == 2010, "the input stream was trimmed"
        dl = xrange_all(r, DLQ)
        assert len(dl) == 10, len(dl)
        for _, f in dl:
            sid = f[b"source_id"].decode()
            assert sid in dead, sid
            assert f[b"error"] == b"malformed_json: poison input", f
            for k, v in dead[sid].items():
                assert f.get(k) == v, (sid, k, f)
            assert set(f) == set(dead[sid]) | {b"error", b"source_id"}, f
        assert st["produced"] == 2000 and st["dead"] == 10 and st["acked"] == 2010, st
        assert st["exec_failed"] == 0 and st["left_pending"] == 0, st
        g = [x for x in r.xinfo_groups(IN) if x["name"] == GROUP.encode()][0]
        assert g["lag"] == 0 and g["pending"] == 0, g
    finally:
        srv.stop()


def sc_pending_restart():
    srv = RedisServer(os.path.join(WORK, "pending")).start()
    r = srv.client()
    try:
        r.xgroup_create(IN, GROUP, "0", mkstream=True)
        payloads = [f"p-{i}".encode() for i in range(300)]
        want = dict(zip(add_data(r, payloads), payloads))
        # consumer w1 took them and died before processing
        got = r.xreadgroup(GROUP, "w1", {IN: ">"}, count=300)
        assert len(got[0][1]) == 300
        assert pending_count(r, IN, GROUP) == 300
        d = driver(srv.url, "w1", "pending1", "--count", "50")
        wait_out(r, 300)
        wait_for(lambda: pending_count(r, IN, GROUP) == 0, 10, "no pending")
        st = stop(d)
        check_complete(r, want)
        assert st["read"] == 300 and st["claimed"] == 0, st

        # a slow driver killed -9 with entries in flight, restarted as w1
        payloads = [f"q-{i}".encode() for i in range(2000)]
        want.update(zip(add_data(r, payloads), payloads))
        d = driver(srv.url, "w1", "pending2", "--count", "100", "--delay-ms", "20",
                   "--batch", "10", "--max-in-flight", "300")
        wait_for(lambda: r.xlen(OUT) >= 500, 30, "some outputs")
        d.kill9()
        p = pending_count(r, IN, GROUP)
        assert p > 0, "expected entries pending after kill -9"
        d = driver(srv.url, "w1", "pending3", "--count", "100")
        wait_for(lambda: pending_count(r, IN, GROUP) == 0 and
                 len(outputs(r)) == len(want), 30, "everything out")
        st = stop(d)
        dups = check_complete(r, want, allow_dups=True)
        print(f"pending_restart: {p} pending after kill -9, {dups} duplicate outputs")
        assert st["read"] >= p, st
    finally:
        srv.stop()


def sc_claim():
    srv = RedisServer(os.path.join(WORK, "claim")).start()
    r = srv.client()
    try:
        r.xgroup_create(IN, GROUP, "0", mkstream=True)
        payloads = [f"c-{i}".encode() for i in range(1000)]
        want = dict(zip(add_data(r, payloads), payloads))
        r.xreadgroup(GROUP, "dead", {IN: ">"}, count=500)
        assert pending_count(r, IN, GROUP) == 500
        time.sleep(0.4)
        d = driver(srv.url, "alive", "claim", "--count", "32", "--claim-idle-ms", "300",
                   "--claim-interval-ms", "200")
        wait_for(lambda: pending_count(r, IN, GROUP) == 0 and r.xlen(OUT) >= 1000, 30,
                 "everything out")
        st = stop(d)
        check_complete(r, want)
        assert st["claimed"] == 500 and st["read"] == 500, st
        cons = {c["name"]: c for c in r.xinfo_consumers(IN, GROUP)}
        assert b"dead" in cons and cons[b"dead"]["pending"] == 0, cons  # never DELCONSUMER
    finally:
        srv.stop()


def sc_max_deliveries():
    srv = RedisServer(os.path.join(WORK, "maxdel")).start()
    r = srv.client()
    try:
        r.xgroup_create(IN, GROUP, "0", mkstream=True)
        poison_ids = [r.xadd(IN, {"data": f"loop-{i}", "extra": "x"}).decode() for i in range(20)]
        ok = {}
        for i in range(20):
            ok[r.xadd(IN, {"data": f"fine-{i}"}).decode()] = f"fine-{i}".encode()
        r.xreadgroup(GROUP, "dead", {IN: ">"}, count=40)
        # as if they had been delivered 9 times already
        r.xclaim(IN, GROUP, "dead", 0, poison_ids, retrycount=9)
        time.sleep(0.3)
        d = driver(srv.url, "alive", "maxdel", "--claim-idle-ms", "200", "--claim-interval-ms",
                   "100", "--max-deliveries", "5")
        wait_for(lambda: pending_count(r, IN, GROUP) == 0, 20, "no pending")
        st = stop(d)
        check_complete(r, ok)
        assert r.xlen(OUT) == 20
        dl = xrange_all(r, DLQ)
        assert sorted(f[b"source_id"].decode() for _, f in dl) == sorted(poison_ids)
        for _, f in dl:
            e = f[b"error"].decode()
            assert e.startswith("too_many_deliveries: delivered ") and e.endswith(" times"), e
            assert int(e.split()[2]) > 5, e
            assert f[b"data"].startswith(b"loop-") and f[b"extra"] == b"x", f
        assert st["too_many_deliveries"] == 20 and st["claimed"] == 40, st
        assert st["consumed"] == 20, st  # the 20 were never given to the pipeline
    finally:
        srv.stop()


def sc_redis_restart():
    wd = os.path.join(WORK, "restart")
    shutil.rmtree(wd, ignore_errors=True)
    srv = RedisServer(wd, persistent=True).start()
    r = srv.client()
    n = 6000
    try:
        r.xgroup_create(IN, GROUP, "0", mkstream=True)
        d = driver(srv.url, "w1", "restart", "--count", "64", "--delay-ms", "5", "--batch", "10",
                   "--max-in-flight", "200")
        wait_for(lambda: d.has_line(lambda l: l == "READY"), 10, "driver ready")
        fed = {}
        stop_feed = threading.Event()

        def feed():
            import redis
            c = srv.client(socket_timeout=2)
            i = 0
            while i < n and not stop_feed.is_set():
                # chunks of 100, faster than the driver: a backlog is in flight
                try:
                    p = c.pipeline(transaction=False)
                    for k in range(i, min(i + 100, n)):
                        p.xadd(IN, {"data": f"r-{k}"})
                    for k, x in zip(range(i, n), p.execute()):
                        fed[k] = x
                    i = min(i + 100, n)
                    time.sleep(0.02)
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                        redis.exceptions.BusyLoadingError):
                    time.sleep(0.05)  # retried: applied-but-unanswered XADDs duplicate input

        t = threading.Thread(target=feed)
        t.start()
        wait_for(lambda: r.xlen(OUT) >= 1000, 30, "1000 outputs before the restart")
        # Frozen first, so MULTI/EXECs are outstanding when it dies: they are
        # lost with the connection and must be sent again after the restart.
        srv.proc.send_signal(signal.SIGSTOP)
        time.sleep(0.3)
        srv.kill(signal.SIGKILL)
        time.sleep(1.0)
        wait_for(lambda: d.has_line(lambda l: l.startswith("NOT READY")), 10, "not ready")
        srv.start()
        r = srv.client()
        t.join(60)
        stop_feed.set()
        assert len(fed) == n
        wait_for(lambda: d.lines and d.lines[-1] == "READY", 20, "ready again")

        def done():
            payloads = set()
            for v in outputs(r).values():
                payloads.update(v)
            return len(payloads) >= n and pending_count(r, IN, GROUP) == 0
        wait_for(done, 60, "every payload out, nothing pending", step=0.5)
        st = stop(d)
        out = outputs(r)
        seen = set()
        for v in out.values():
            seen.update(v)
        lost = [i for i in range(n) if f"r-{i}".encode() not in seen]
        assert not lost, f"lost {len(lost)}: {lost[:10]}"
        dups = sum(len(v) - 1 for v in out.values())
        print(f"redis_restart: {st['reconnects']} reconnects, {st['exec_retries']} EXEC retries, "
              f"{dups} duplicate outputs, {r.xlen(IN)} inputs for {n} payloads")
        assert st["reconnects"] >= 2, st
        assert st["exec_retries"] > 0, st
    finally:
        srv.stop()


def sc_frozen():
    srv = RedisServer(os.path.join(WORK, "frozen")).start()
    r = srv.client()
    try:
        payloads = [f"f-{i}".encode() for i in range(3000)]
        want = dict(zip(add_data(r, payloads), payloads))
        d = driver(srv.url, "w1", "frozen", "--count", "50", "--delay-ms", "5", "--batch", "10",
                   "--max-in-flight", "100", "--io-timeout-ms", "1000")
        wait_for(lambda: r.xlen(OUT) >= 300, 20, "300 outputs")
        srv.proc.send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: d.has_line(lambda l: l.startswith("NOT READY") and "no reply" in l),
                     10, "the watchdog to give up on the frozen server")
            time.sleep(1.5)  # reconnects now hang in the handshake: reset again
        finally:
            srv.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: pending_count(r, IN, GROUP) == 0 and len(outputs(r)) == 3000, 40,
                 "everything out after SIGCONT", step=0.2)
        st = stop(d)
        dups = check_complete(r, want, allow_dups=True)
        print(f"frozen: {st['reconnects']} reconnects, {st['exec_retries']} EXEC retries, "
              f"{dups} duplicate outputs")
        assert st["reconnects"] >= 1 and st["exec_retries"] > 0, st
    finally:
        srv.stop()


def sc_close_reconnect():
    wd = os.path.join(WORK, "closerc")
    shutil.rmtree(wd, ignore_errors=True)
    srv = RedisServer(wd, persistent=True).start()
    r = srv.client()
    try:
        payloads = [f"cr-{i}".encode() for i in range(500)]
        want = dict(zip(add_data(r, payloads), payloads))
        # the stand-in holds what it reads for 2 s, then publishes it all
        d = driver(srv.url, "w1", "closerc", "--delay-ms", "2000", "--drain-timeout-ms", "300")
        wait_for(lambda: pending_count(r, IN, GROUP) == 500, 10, "500 read")
        srv.kill(signal.SIGKILL)
        time.sleep(2.5)  # published meanwhile: all 500 wait for the connection
        d.signal(signal.SIGTERM)
        time.sleep(1.0)  # the drain times out; redis_close retries the connection
        srv.start()
        rc = d.wait(20)
        assert rc == 0, f"exit {rc}:\n{d.stderr_tail()}"
        st = json.loads([l for l in d.lines if l.startswith("{")][-1])
        r = srv.client()
        check_complete(r, want)
        assert pending_count(r, IN, GROUP) == 0
        assert st["produced"] == 500 and st["not_accepted"] == 0, st
    finally:
        srv.stop()


def sc_maxlen():
    srv = RedisServer(os.path.join(WORK, "maxlen")).start()
    r = srv.client()
    try:
        payloads = [f"m-{i}".encode() for i in range(3000)]
        add_data(r, payloads)
        d = driver(srv.url, "c1", "maxlen", "--out-maxlen", "100")
        # the output stream does not exist until the first publish, and
        # nothing is pending before the first read: wait for all 3000 added
        wait_for(lambda: r.exists(OUT) and
                 r.xinfo_stream(OUT)["entries-added"] == 3000 and
                 pending_count(r, IN, GROUP) == 0, 30, "done")
        wait_for(lambda: r.xinfo_groups(IN)[0]["lag"] == 0, 30, "lag 0")
        st = stop(d)
        assert st["produced"] == 3000, st
        assert r.xlen(IN) == 3000, "input trimmed"
        n_out = r.xlen(OUT)
        assert 100 <= n_out < 1000, f"output stream has {n_out} entries (MAXLEN ~ 100)"
        assert r.xinfo_stream(OUT)["entries-added"] == 3000
    finally:
        srv.stop()


def sc_sigterm_load():
    srv = RedisServer(os.path.join(WORK, "sigterm")).start()
    r = srv.client()
    try:
        payloads = [f"s-{i}".encode() for i in range(5000)]
        want = dict(zip(add_data(r, payloads), payloads))
        d = driver(srv.url, "c1", "sigterm1", "--count", "100", "--delay-ms", "20", "--batch",
                   "50", "--max-in-flight", "500", "--block-ms", "5000")
        wait_for(lambda: r.xlen(OUT) >= 300, 20, "300 outputs")
        t0 = time.time()
        st = stop(d, timeout=30)
        took = time.time() - t0
        assert pending_count(r, IN, GROUP) == 0, "entries left pending after SIGTERM"
        assert st["left_pending"] == 0 and st["not_accepted"] == 0, st
        assert r.xlen(OUT) == st["produced"], (r.xlen(OUT), st)
        assert st["produced"] < 5000, "drained everything: the test did not catch a backlog"
        print(f"sigterm_load: drained {st['consumed']} in flight/read in {took:.2f} s")
        d = driver(srv.url, "c1", "sigterm2")
        wait_for(lambda: r.xlen(OUT) >= 5000, 30, "the rest")
        stop(d)
        check_complete(r, want)
        # idle, blocked in XREADGROUP for up to 30 s: SIGTERM still exits at once
        d = driver(srv.url, "c1", "sigterm3", "--block-ms", "30000")
        wait_for(lambda: d.has_line(lambda l: l == "READY"), 10, "ready")
        time.sleep(0.5)
        t0 = time.time()
        stop(d)
        assert time.time() - t0 < 3, f"idle SIGTERM took {time.time() - t0:.1f} s"
    finally:
        srv.stop()


def sc_connect_retry():
    # refused URLs
    for url, needle in [("rediss://127.0.0.1:1", "TLS"), ("redis://127.0.0.1:99999", "port"),
                        ("http://x", "redis://"), ("redis://:pw@/3", "host")]:
        d = driver(url, "c1", "badurl")
        rc = d.wait(10)
        err = d.stderr_tail()
        assert rc == 2 and needle in err, (url, rc, err)
    # start before the server: retried until it is up
    port = harness.free_port()
    srv = RedisServer(os.path.join(WORK, "retry"), port=port)
    d = driver(srv.url, "c1", "retry")
    try:
        wait_for(lambda: d.has_line(lambda l: l.startswith("NOT READY") and "refused" in l), 10,
                 "not ready: connection refused")
        time.sleep(0.5)
        srv.start()
        r = srv.client()
        wait_for(lambda: d.has_line(lambda l: l == "READY"), 15, "ready once the server is up")
        ids = add_data(r, [b"after"])
        wait_out(r, 1)
        st = stop(d)
        check_complete(r, {ids[0]: b"after"})
        assert st["acked"] == 1, st
    finally:
        srv.stop()
    # AUTH user:password (ACL) and a database number
    srv = RedisServer(os.path.join(WORK, "auth"), extra=["--requirepass", "topsecret"]).start()
    try:
        admin = srv.client()
        admin.execute_command("ACL", "SETUSER", "emb", "on", ">p@ss:w/rd", "~*", "+@all")
        url = f"redis://emb:p%40ss%3Aw%2Frd@127.0.0.1:{srv.port}/3"
        d = driver(url, "c1", "auth")
        r3 = srv.client(db=3)
        ids = add_data(r3, [b"db3"])
        wait_out(r3, 1)
        stop(d)
        check_complete(r3, {ids[0]: b"db3"})
        assert admin.xlen(OUT) == 0, "wrote to db 0"
        # Credentials apart from the URL are taken verbatim (no %-decoding)
        # and win over the URL's: any byte may be in them.
        nasty = "p;a%41s/s@w:rd\\;"
        admin.execute_command("ACL", "SETUSER", "emb2", "on", ">" + nasty, "~*", "+@all")
        d = driver(f"redis://nobody:wrong@127.0.0.1:{srv.port}/3", "c1", "authsep",
                   "--username", "emb2", "--password", nasty)
        ids2 = add_data(r3, [b"sep"])
        wait_out(r3, 2)
        stop(d)
        check_complete(r3, {ids[0]: b"db3", ids2[0]: b"sep"})
        d = driver(f"redis://127.0.0.1:{srv.port}/3", "c1", "authuser", "--username", "emb2")
        rc = d.wait(10)
        assert rc == 2 and "without a password" in d.stderr_tail(), (rc, d.stderr_tail())
        d = driver(f"redis://emb:wrong@127.0.0.1:{srv.port}/3", "c1", "authbad")
        wait_for(lambda: d.has_line(lambda l: l.startswith("NOT READY") and
                                    ("WRONGPASS" in l or "invalid" in l)), 10, "auth error shown")
        st = stop(d, timeout=10)
        assert st["auth_errors"] > 0 and st["acked"] == 0, st
        # a server with a password, a client without: NOAUTH, also counted
        d = driver(f"redis://127.0.0.1:{srv.port}/3", "c1", "authnone")
        wait_for(lambda: d.has_line(lambda l: l.startswith("NOT READY") and "NOAUTH" in l), 10,
                 "NOAUTH shown")
        st = stop(d, timeout=10)
        assert st["auth_errors"] > 0, st
    finally:
        srv.stop()


def sc_group_missing():
    srv = RedisServer(os.path.join(WORK, "group")).start()
    r = srv.client()
    try:
        r.xadd(IN, {"data": "x"})
        d = driver(srv.url, "c1", "group1", "--no-create-group")
        wait_for(lambda: d.has_line(lambda l: l.startswith("NOT READY") and
                                    "does not exist" in l), 10, "group missing reported")
        r.xgroup_create(IN, GROUP, "0")
        wait_for(lambda: d.has_line(lambda l: l == "READY"), 10, "ready once created")
        wait_out(r, 1)
        # the stream (and its group) deleted under a running driver
        r.delete(IN)
        wait_for(lambda: d.lines[-1].startswith("NOT READY") and "does not exist" in d.lines[-1],
                 15, "vanished group reported")
        time.sleep(1.5)
        assert not r.exists(IN), "the stream/group was recreated"
        r.xgroup_create(IN, GROUP, "0", mkstream=True)
        ids = add_data(r, [b"again"])
        wait_for(lambda: d.lines[-1] == "READY", 10, "ready again")
        wait_out(r, 2)
        stop(d)
        assert outputs(r)[ids[0]] == [b"again"]
    finally:
        srv.stop()


SCENARIOS = {
    "basic": sc_basic,
    "pending_restart": sc_pending_restart,
    "claim": sc_claim,
    "max_deliveries": sc_max_deliveries,
    "redis_restart": sc_redis_restart,
    "frozen": sc_frozen,
    "close_reconnect": sc_close_reconnect,
    "maxlen": sc_maxlen,
    "sigterm_load": sc_sigterm_load,
    "connect_retry": sc_connect_retry,
    "group_missing": sc_group_missing,
}


def main():
    global DRIVER, WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("driver")
    ap.add_argument("workdir")
    ap.add_argument("--scenario", default="all", choices=["all"] + list(SCENARIOS))
    a = ap.parse_args()
    harness.skip_unless_ready()
    DRIVER = os.path.abspath(a.driver)
    WORK = os.path.abspath(os.path.join(a.workdir, a.scenario))
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    names = list(SCENARIOS) if a.scenario == "all" else [a.scenario]
    for n in names:
        t = time.time()
        SCENARIOS[n]()
        print(f"{n}: ok ({time.time() - t:.1f} s)")


if __name__ == "__main__":
    main()
