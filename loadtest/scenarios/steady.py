#!/usr/bin/python3
"""Steady state: one worker, a constant rate for --duration seconds.

  /usr/bin/python3 loadtest/scenarios/steady.py --broker kafka|redis --out DIR [--rate 150]
      [--duration 40] [--brokers B | --redis-url U] [--model DIR] ...

Reports (DIR/steady-BROKER.json + .svg) the end-to-end latency at a load the
worker keeps up with, the throughput (= the send rate), and a lag that stays
near 0. Exit 0 when no id is missing.
"""
import sys

import lt_scenario

if __name__ == "__main__":
    args = lt_scenario.arg_parser("steady.py", __doc__, rate=150, duration=40).parse_args()
    sys.exit(lt_scenario.main("steady", args, ["--profile", "constant", "--rate", str(args.rate)],
                              {"profile": "constant", "rate": args.rate,
                               "duration_s": args.duration, "workers": 1,
                               "worker_threads": args.threads, "chunk_bytes": args.chunk_bytes,
                               "poison_every": args.poison_every}))
