#!/usr/bin/python3
"""A worker killed with SIGKILL under load, then restarted (or replaced).

  /usr/bin/python3 loadtest/scenarios/kill_worker.py --broker kafka|redis --out DIR
      [--rate 100] [--duration 40] [--kill-at 15] [--restart-after 1] [--replace] ...

At --kill-at seconds the worker gets kill -9 with messages in flight; after
--restart-after seconds a new worker process starts in the same group:
  Kafka: it rejoins the group; the partitions come back after the session
         timeout (4 s here) and everything after the last commit is redone;
  Redis: restarted under the same consumer name it re-reads its own pending
         entries at once; with --replace it has a new name and claims the dead
         consumer's entries with XAUTOCLAIM after --claim-idle-ms (5 s here).
At-least-once: nothing may be missing; duplicates are expected and counted.
The mark kill9_worker1 in the report has drain_s: how long after the kill the
last message sent before it was done (the recovery time).
"""
import sys
import time

import lt_scenario

if __name__ == "__main__":
    ap = lt_scenario.arg_parser("kill_worker.py", __doc__, rate=100, duration=40)
    ap.add_argument("--kill-at", type=float, default=15, help="seconds after the load starts")
    ap.add_argument("--restart-after", type=float, default=1, help="seconds after the kill")
    ap.add_argument("--replace", action="store_true",
                    help="Redis: the new worker has a new consumer name (claims by XAUTOCLAIM)")
    args = ap.parse_args()
    redis_claim = ["--claim-idle-ms", "5000", "--claim-interval-ms", "1000"]

    def during(sc, t0):
        time.sleep(max(0.0, t0 + args.kill_at - time.time()))
        sc.kill9("worker1")
        time.sleep(args.restart_after)
        consumer = "worker1" if not args.replace else "worker2"
        sc.start_worker("worker2", consumer=consumer, wait=False)
        sc.event("restart")

    sys.exit(lt_scenario.main("kill_worker", args,
                              ["--profile", "constant", "--rate", str(args.rate)],
                              {"profile": "constant", "rate": args.rate,
                               "duration_s": args.duration, "kill_at_s": args.kill_at,
                               "restart_after_s": args.restart_after,
                               "replace": args.replace, "workers": 1,
                               "worker_threads": args.threads, "chunk_bytes": args.chunk_bytes,
                               "poison_every": args.poison_every}, during=during,
                              worker_extra=redis_claim if args.broker == "redis" else ()))
