#!/usr/bin/python3
"""A short load test end to end (ctest label `loadtest`): one `embedq worker`
(tiny generated model, CPU engine) on `embedq mock-kafka` or a private
redis-server, `embedq-loadtest replay` at a constant rate from the repository's
docs/ as a corpus (with poison messages), `embedq-loadtest collect` reading
outputs, dead letters and the group's lag. Checks the report:

  - collect exit 0, stopped "complete", ok true; expected = what replay says
    the broker accepted; nothing missing, nothing unexpected;
  - latency p50 <= p95 <= p99 <= max, all present and > 0, one per input;
  - dead letters: one per poison message, by reason;
  - the timeline adds up; the lag was sampled and ends at 0;
  - Kafka: every output carried replay's send-time header through the worker;
  - the SVG was drawn (when gnuplot is installed);
then that collect notices what is missing: the same run's manifest plus one
id that was never sent gives exit 1, missing 1, and names the id.

Exit 77 (skipped) when embedq-loadtest is not built, the worker is not in this
embedq, or the broker (redis-server) is not installed.

usage: loadtest_e2e_test.py --broker kafka|redis --embedq BIN --loadtest=BIN --work DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "loadtest", "scenarios"))
import lt_scenario  # noqa: E402

DURATION, RATE, POISON_EVERY = 12, 100, 50


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)
    print("ok:", what, flush=True)


def check_report(rep, sc, broker):
    n = sc.replay_summary["delivered"] if sc.replay_summary else -1
    check(sc.replay_rc == 0 and n == DURATION * RATE,
          "replay sent %d messages, all accepted (summary %s)" % (DURATION * RATE,
                                                                  sc.replay_summary))
    check(sc.collect_rc == 0, "collect exit 0 (got %s)" % sc.collect_rc)
    check(rep["stopped"] == "complete" and rep["ok"] is True,
          "report: stopped %s, ok %s" % (rep["stopped"], rep["ok"]))
    check(rep["expected"] == n and rep["seen"] == n and rep["missing"] == 0 and
          rep["missing_ids"] == [], "every one of %d ids seen, none missing" % n)
    check(rep["unexpected"] == 0 and rep["unparsed"] == 0, "no unexpected or unparsed records")
    lat = rep["latency_ms"]
    keys = ("p50", "p95", "p99", "max")
    check(lat.get("count") == n and all(isinstance(lat.get(k), (int, float)) for k in keys),
          "latency figures present for every input: %s" % lat)
    check(0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"] < 60000,
          "latency p50 <= p95 <= p99 <= max, all in (0, 60 s)")
    poison = DURATION * RATE // POISON_EVERY
    want = {"malformed_json": poison // 3, "empty_text": poison // 3, "missing_text": poison // 3}
    check(rep["dead_letters_by_reason"] == want and rep["dead_lettered_inputs"] == poison,
          "dead letters by reason %s" % rep["dead_letters_by_reason"])
    tl = rep["timeline"]
    check(sum(tl["sent"]) == n and sum(tl["done"]) + sum(tl["dead"]) == n and
          len(tl["t_s"]) == len(tl["p99_ms"]), "timeline adds up (%d seconds)" % len(tl["t_s"]))
    lag = rep["lag"]
    check(len(lag["samples"]) >= DURATION // 2 and lag["final"] == 0,
          "lag sampled from the broker %d times, final 0 (max %s)" % (len(lag["samples"]),
                                                                     lag["max"]))
    ends = [m for m in rep["marks"] if m["name"] == "end"]
    check(ends and ends[0]["drain_s"] is not None, "time to drain after the last send: %s s" %
          (ends[0]["drain_s"] if ends else None))
    if broker == "kafka":
        check(rep["latency_start"]["kafka_header"] == n - poison,
              "every Kafka output carried the send-time header through the worker")
    if shutil.which("gnuplot"):
        with open(sc.base + ".svg") as f:
            svg = f.read()
        check("<svg" in svg and "end-to-end latency" in svg, "the SVG plot was drawn")


def check_missing_detected(sc):
    """collect on the same outputs with a manifest that expects one more id."""
    ghost = os.path.join(sc.work, "ghost.tsv")
    with open(sc.manifest) as f:
        lines = f.read().splitlines()
    end = [i for i, l in enumerate(lines) if l.startswith("# end ")]
    check(len(end) == 1, "the manifest is complete")
    count = int(lines[end[0]].split()[2])
    sent = next(l for l in lines if not l.startswith("#")).split("\t")[0]
    lines[end[0]:] = ["%s\t9:999999\ts\tghost-id" % sent, "# end %d" % (count + 1)]
    with open(ghost, "w") as f:
        f.write("\n".join(lines) + "\n")
    cmd = sc.collect_cmd(4)
    cmd[cmd.index("--manifest") + 1] = ghost
    cmd[cmd.index("--report") + 1] = os.path.join(sc.work, "ghost.json")
    i = cmd.index("--plot")
    del cmd[i:i + 2]
    rc = subprocess.run(cmd, capture_output=True, text=True).returncode
    with open(os.path.join(sc.work, "ghost.json")) as f:
        rep = json.load(f)
    check(rc == 1 and rep["missing"] == 1 and rep["ok"] is False and
          rep["missing_ids"] == ["ghost-id @ 9:999999"] and rep["stopped"] == "timeout",
          "collect exits 1 and names the one id that never came back (rc %d, missing %s)" %
          (rc, rep["missing_ids"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", choices=("kafka", "redis"), required=True)
    ap.add_argument("--embedq", required=True)
    ap.add_argument("--loadtest", default="")
    ap.add_argument("--work", required=True)
    t = ap.parse_args()
    if not t.loadtest or not os.access(t.loadtest, os.X_OK):
        print("SKIP: embedq-loadtest is not built (needs librdkafka, hiredis, msgpack-c)")
        return 77
    if subprocess.run([t.embedq, "worker", "--help"], capture_output=True).returncode != 0:
        print("SKIP: this embedq has no `worker`")
        return 77
    if t.broker == "redis" and not shutil.which("redis-server"):
        print("SKIP: redis-server is not installed (Debian package redis-server)")
        return 77
    shutil.rmtree(t.work, ignore_errors=True)
    args = lt_scenario.arg_parser("loadtest_e2e_test", "", RATE, DURATION).parse_args(
        ["--broker", t.broker, "--out", t.work, "--work", os.path.join(t.work, "work"),
         "--embedq", t.embedq, "--loadtest", t.loadtest, "--poison-every", str(POISON_EVERY)])
    sc = lt_scenario.Scenario("e2e", args)
    try:
        sc.start_broker()
        sc.prepare_model()
        sc.start_worker("worker1")
        sc.run_load(["--profile", "constant", "--rate", str(RATE)], drain_timeout=60)
        rep = sc.finish_report({"rate": RATE, "duration_s": DURATION})
        print(lt_scenario.summarize(rep), flush=True)
        check_report(rep, sc, t.broker)
        check_missing_detected(sc)
        sc.stop_all()
        check(all(v == 0 for v in sc.exit_codes.values()),
              "worker exit codes after SIGTERM %s" % sc.exit_codes)
    except (Failure, lt_scenario.SetupError) as e:
        print("FAIL:", e, "(logs in %s)" % sc.work, flush=True)
        return 1
    finally:
        sc.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
