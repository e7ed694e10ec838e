#!/usr/bin/env python3
"""The exposition of worker/metrics.c read by reference parsers.

Runs `metrics_test --dump` (the sample registry of metrics_test.c) and
  1. parses it with prometheus_client.parser.text_string_to_metric_families
     (Debian: python3-prometheus-client) and checks every family, type,
     help text, label value and number against what metrics_test.c put in;
  2. when promtool is installed (Debian: prometheus), runs
     `promtool check metrics`: Prometheus's own Go parser plus its lint
     rules (naming, help, suffixes).
Exit 77 (skipped) when prometheus_client is missing.

usage: prometheus_client_test.py METRICS_TEST_BINARY
"""
import math
import shutil
import subprocess
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("SKIP: python3 prometheus_client not installed (Debian: python3-prometheus-client)")
    sys.exit(77)


def main():
    text = subprocess.run([sys.argv[1], "--dump"], check=True, capture_output=True,
                          text=True).stdout
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    def samples(fam, name=None):
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for s in fams[fam].samples if name is None or s.name == name}

    # The parser turns samples it cannot place into "untyped" singleton
    # families: there must be none, and no family may be missing.
    expected = {
        "embedq_test_messages": "counter",  # the parser drops _total
        "embedq_test_in_flight": "gauge",
        "embedq_test_batch_seconds": "histogram",
        "embedq_test_dead_letters": "counter",
        "embedq_test_queue_depth": "gauge",
        "embedq_test_tokens": "histogram",
        "embedq_test_empty": "counter",
        "embedq_test_partition_lag": "gauge",
        "embedq_test_big": "counter",
        "embedq_test_ratio": "gauge",
    }
    check({n: f.type for n, f in fams.items()} == expected,
          f"families: {sorted((n, f.type) for n, f in fams.items())}")
    if failures:
        print("\n".join(failures))
        return 1

    check(samples("embedq_test_messages") == {("embedq_test_messages_total", ()): 3.0},
          "counter")
    check(fams["embedq_test_in_flight"].documentation == 'Line one\nback\\slash "quoted"',
          f"help escaping: {fams['embedq_test_in_flight'].documentation!r}")
    check(samples("embedq_test_in_flight") == {("embedq_test_in_flight", ()): 2.5}, "gauge")

    h = samples("embedq_test_batch_seconds")
    b = "embedq_test_batch_seconds_bucket"
    check(h == {(b, (("le", "0.25"),)): 2.0, (b, (("le", "1"),)): 3.0,
                (b, (("le", "2.5"),)): 3.0, (b, (("le", "10"),)): 4.0,
                (b, (("le", "+Inf"),)): 5.0,
                ("embedq_test_batch_seconds_sum", ()): 103.875,
                ("embedq_test_batch_seconds_count", ()): 5.0}, f"histogram: {h}")

    d = samples("embedq_test_dead_letters")
    n = "embedq_test_dead_letters_total"
    check(d == {(n, (("reason", "bad_json"),)): 2.0, (n, (("reason", "too_long"),)): 1.0,
                (n, (("reason", "_other"),)): 5.0}, f"counter family: {d}")

    q = samples("embedq_test_queue_depth")
    n = "embedq_test_queue_depth"
    check(q == {(n, (("partition", "0"), ("topic", "in"))): 7.0,
                (n, (("partition", "1"), ("topic", "in"))): -3.0}, f"gauge family: {q}")

    t = samples("embedq_test_tokens", "embedq_test_tokens_count")
    check(t == {("embedq_test_tokens_count", (("kind", "query"),)): 2.0,
                ("embedq_test_tokens_count", (("kind", "doc"),)): 1.0}, f"hist family: {t}")
    t = samples("embedq_test_tokens", "embedq_test_tokens_sum")
    check(t[("embedq_test_tokens_sum", (("kind", "query"),))] == 104.0, "hist family sum")

    check(fams["embedq_test_empty"].samples == [], "family without series")

    lag = samples("embedq_test_partition_lag")
    n = "embedq_test_partition_lag"
    check(lag == {(n, (("partition", "0"),)): 12.0,
                  (n, (("partition", 'weird "p"\\\nx'),)): 1e21},
          f"collector + label escaping: {lag}")
    check(samples("embedq_test_big") == {("embedq_test_big_total", ()): 18446744073709551615.0},
          "u64 counter")
    ratio = fams["embedq_test_ratio"].samples
    check(len(ratio) == 1 and math.isnan(ratio[0].value), "NaN gauge")

    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True)
        check(r.returncode == 0, f"promtool check metrics: rc={r.returncode}\n"
                                 f"{r.stdout}{r.stderr}")
        print("promtool check metrics: ok")
    else:
        print("promtool not installed (Debian: prometheus): Go parser check skipped")

    if failures:
        print("\n".join(failures))
        return 1
    print(f"prometheus_client parsed {len(fams)} families: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
