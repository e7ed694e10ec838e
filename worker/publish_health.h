/* publish_health.h - is anything being published? For /readyz.
 *
 * A broker can be reachable while nothing it is sent is accepted: Redis
 * answering every XADD with OOM (maxmemory, noeviction), a Kafka partition
 * leader refusing every Produce. The broker modules report each publish
 * outcome here; the worker's readiness turns false, with the reason, once
 * every publish has failed for window_ms (or publishes have waited that long
 * with none accepted), and true again at the next accepted publish.
 *
 *   ph_ok     an output or dead letter was accepted by the broker
 *   ph_fail   a publish attempt failed (retried or not), with why
 *   ph_waiting  (polled, e.g. every 100 ms) whether publishes wait for the
 *             broker: Kafka retries inside librdkafka and reports a failure
 *             only after message.timeout.ms, so waiting without any success
 *             counts as failing too
 *
 * Times are CLOCK_MONOTONIC milliseconds, the same clock for every caller
 * (kafka.c and cmd_worker.c read it through uv_hrtime(), which is
 * CLOCK_MONOTONIC on Linux; redis.c with clock_gettime); never 0 in practice:
 * the module treats 0 as "not set". Threads: one (the libuv loop thread).
 */
#ifndef EQ_PUBLISH_HEALTH_H
#define EQ_PUBLISH_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t window_ms;        /* 0: readiness never depends on publishing  */
    uint64_t last_ok_ms;       /* the last accepted publish, 0 none          */
    uint64_t failing_since_ms; /* the first failure after the last success   */
    uint64_t waiting_since_ms; /* publishes have waited since, 0 none waits  */
    uint64_t n_failed;         /* failures since failing_since_ms            */
    char last_error[256];      /* the last failure's reason                  */
} pub_health;

/* An empty state (nothing published yet, nothing failing). */
void ph_init(pub_health *h, uint64_t window_ms);
void ph_ok(pub_health *h, uint64_t now_ms);
/* why: short text (cut to fit); NULL keeps the previous one. */
void ph_fail(pub_health *h, uint64_t now_ms, const char *why);
void ph_waiting(pub_health *h, uint64_t now_ms, bool waiting);

/* True unless every publish failed for window_ms or more, or publishes
 * waited that long with none accepted; then false with the reason in why
 * ("publishing failing for N s: ..."). A NULL h is healthy. */
bool ph_healthy(const pub_health *h, uint64_t now_ms, char *why, size_t whylen);

#endif
