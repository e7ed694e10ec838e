#!/usr/bin/python3
"""A burst: --rate messages/s, times --factor for --burst-s seconds at --burst-at.

  /usr/bin/python3 loadtest/scenarios/burst.py --broker kafka|redis --out DIR [--rate 100]
      [--factor 10] [--burst-at 10] [--burst-s 3] [--duration 40] ...

The burst is sized to exceed what one CPU worker sustains, so a backlog builds
up and drains. The report's marks give the time to drain: burst_end.drain_s is
how long after the burst ended the last message sent before that point was
done; lag_zero_s when the broker's lag first read 0 again.
"""
import sys

import lt_scenario

if __name__ == "__main__":
    ap = lt_scenario.arg_parser("burst.py", __doc__, rate=100, duration=40)
    ap.add_argument("--factor", type=float, default=10, help="burst rate multiplier")
    ap.add_argument("--burst-at", type=float, default=10, help="burst start (s)")
    ap.add_argument("--burst-s", type=float, default=3, help="burst length (s)")
    args = ap.parse_args()
    flags = ["--profile", "burst", "--rate", str(args.rate), "--burst-factor", str(args.factor),
             "--burst-at", str(args.burst_at), "--burst-s", str(args.burst_s)]
    sys.exit(lt_scenario.main("burst", args, flags,
                              {"profile": "burst", "rate": args.rate, "factor": args.factor,
                               "burst_at_s": args.burst_at, "burst_s": args.burst_s,
                               "duration_s": args.duration, "workers": 1,
                               "worker_threads": args.threads, "chunk_bytes": args.chunk_bytes,
                               "poison_every": args.poison_every}))
