/* kafka_echo_driver.c - worker/kafka.c on a real broker, with a stand-in
 * pipeline that needs no model.
 *
 * It links kafka.c (and the real pipe_msg_new/pipe_msg_free) and provides
 * the other pipeline.h functions kafka.c calls (pipe_submit, pipe_finish)
 * with an "echo" pipeline: every submitted record is published after a random delay (so
 * records finish out of order, across and within partitions), as the output
 * value "out:" + input value with the input key (or "p-OFFSET" when it has
 * none); an input whose value starts with "poison" becomes a dead letter
 * ("malformed_json: poison pill"). Backpressure is the real contract: pause
 * at max_in_flight, resume at half.
 *
 * The broker is a real Kafka-protocol server (tests use `embedq mock-kafka`).
 * SIGTERM/SIGINT drain like the worker: stop intake, wait until nothing is
 * in flight (or --drain-timeout-ms), kafka_close; exit 0 if kafka_close
 * succeeded, 3 otherwise. On exit it prints one JSON line of counters.
 *
 *   kafka_echo_driver --brokers B --group G --in-topic I --out-topic O
 *       --dlq-topic D [--max-in-flight N] [--delay-ms N]
 *       [--drain-timeout-ms N] [--kafka-config K=V]...
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "common.h"
#include "kafka.h"

/* ---- the stand-in pipeline ------------------------------------------------- */

typedef struct pending {
    pipe_msg *m;
    uint64_t due_ms;
} pending;

struct pipeline {
    uv_loop_t *loop;
    pipe_broker br;
    int max_in_flight, delay_ms;
    int in_flight;
    bool paused;
    pending *q; /* messages waiting for their delay, unordered */
    int nq, capq;
    uv_timer_t tick;
    uint64_t submitted, accepted, not_accepted;
};

void pipe_submit(pipeline *p, pipe_msg *m)
{
    if (p->nq == p->capq) {
        p->capq = p->capq ? p->capq * 2 : 1024;
        p->q = realloc(p->q, sizeof *p->q * (size_t)p->capq);
        EQ_ASSERT(p->q != NULL);
    }
    uint64_t d = p->delay_ms > 0 ? (uint64_t)(rand() % (p->delay_ms + 1)) : 0;
    p->q[p->nq].m = m;
    p->q[p->nq].due_ms = uv_now(p->loop) + d;
    p->nq++;
    p->in_flight++;
    p->submitted++;
    if (!p->paused && p->in_flight >= p->max_in_flight) {
        p->paused = true;
        p->br.pause(p->br.self);
    }
}

void pipe_finish(pipeline *p, pipe_msg *m, bool accepted)
{
    if (accepted)
        p->accepted++;
    else
        p->not_accepted++;
    pipe_msg_free(m);
    p->in_flight--;
    if (p->paused && p->in_flight <= p->max_in_flight / 2) {
        p->paused = false;
        p->br.resume(p->br.self);
    }
}

/* "Runs" the messages whose delay passed, in random order, and publishes. */
static void tick_cb(uv_timer_t *t)
{
    pipeline *p = t->data;
    uint64_t now = uv_now(p->loop);
    for (int i = 0; i < p->nq;) {
        if (p->q[i].due_ms > now) {
            i++;
            continue;
        }
        /* Swap in a random later entry first: shuffles the publish order. */
        int j = i + rand() % (p->nq - i);
        pending tmp = p->q[i];
        p->q[i] = p->q[j];
        p->q[j] = tmp;
        if (p->q[i].due_ms > now) continue;
        pipe_msg *m = p->q[i].m;
        p->q[i] = p->q[--p->nq];
        if (m->len >= 6 && !memcmp(m->data, "poison", 6)) {
            m->dead = true;
            m->reason_code = "malformed_json";
            snprintf(m->reason, sizeof m->reason, "malformed_json: poison pill");
        } else {
            m->out_len = m->len + 4;
            m->out = malloc(m->out_len);
            memcpy(m->out, "out:", 4);
            memcpy(m->out + 4, m->data, m->len);
            if (m->key) {
                m->out_key = malloc(m->key_len ? m->key_len : 1);
                memcpy(m->out_key, m->key, m->key_len);
                m->out_key_len = m->key_len;
            } else {
                char k[32];
                m->out_key_len = (size_t)snprintf(k, sizeof k, "p-%lld", (long long)m->offset);
                m->out_key = (uint8_t *)strdup(k);
            }
        }
        p->br.publish(p->br.self, m);
    }
}

/* ---- the driver ------------------------------------------------------------ */

typedef struct {
    uv_loop_t *loop;
    kafka_broker *k;
    pipeline pipe;
    uv_signal_t sterm, sint;
    uv_timer_t drain;
    uint64_t drain_start, drain_timeout_ms;
    bool draining, done;
    int exit_code;
} driver;

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void shutdown_now(driver *d, bool timed_out)
{
    if (d->done) return;
    d->done = true;
    char err[EQ_ERRLEN] = "";
    kafka_counters c;
    kafka_stats(d->k, &c);
    int rc = kafka_close(d->k, 10000, err, sizeof err);
    if (rc) fprintf(stderr, "kafka_echo_driver: %s\n", err);
    d->exit_code = rc || timed_out ? 3 : 0;
    /* Anything still "running" is dropped unacknowledged (redelivered). */
    for (int i = 0; i < d->pipe.nq; i++)
        pipe_msg_free(d->pipe.q[i].m);
    d->pipe.nq = 0;
    printf("{\"consumed\": %llu, \"delivered\": %llu, \"dead_lettered\": %llu, "
           "\"delivery_failed\": %llu, \"consumer_errors\": %llu, \"dropped\": %llu, "
           "\"rebalances\": %llu, \"accepted\": %llu, \"not_accepted\": %llu, "
           "\"exit\": %d}\n",
           (unsigned long long)c.consumed, (unsigned long long)c.delivered,
           (unsigned long long)c.dead_lettered, (unsigned long long)c.delivery_failed,
           (unsigned long long)c.consumer_errors, (unsigned long long)c.dropped,
           (unsigned long long)c.rebalances, (unsigned long long)d->pipe.accepted,
           (unsigned long long)d->pipe.not_accepted, d->exit_code);
    fflush(stdout);
    uv_walk(d->loop, close_walk_cb, NULL);
}

static void drain_cb(uv_timer_t *t)
{
    driver *d = t->data;
    if (d->pipe.in_flight == 0) {
        shutdown_now(d, false);
        return;
    }
    if (uv_now(d->loop) - d->drain_start >= d->drain_timeout_ms) {
        fprintf(stderr, "kafka_echo_driver: drain timeout with %d in flight\n", d->pipe.in_flight);
        shutdown_now(d, true);
    }
}

static void start_drain(driver *d)
{
    if (d->draining) return;
    d->draining = true;
    d->drain_start = uv_now(d->loop);
    kafka_stop_intake(d->k);
    uv_timer_start(&d->drain, drain_cb, 0, 10);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    (void)signum;
    start_drain(s->data);
}

/* kafka_options.on_fatal: drain and exit (3: kafka_close fails). */
static void on_fatal(void *ctx, const char *message)
{
    fprintf(stderr, "kafka_echo_driver: fatal: %s; draining\n", message);
    start_drain(ctx);
}

static void lag_cb(void *ctx, int32_t partition, int64_t lag)
{
    (void)ctx;
    fprintf(stderr, "kafka_echo_driver: lag partition %d: %lld\n", (int)partition, (long long)lag);
}

/* Prints readiness transitions (kafka_ready) to stderr, and the lag once
 * ready. */
static void ready_cb(uv_timer_t *t)
{
    static int last = -1;
    static bool lag_printed;
    driver *d = t->data;
    char why[256] = "";
    if (d->done) return;
    int r = kafka_ready(d->k, why, sizeof why) ? 1 : 0;
    if (r != last) {
        if (r)
            fprintf(stderr, "kafka_echo_driver: ready\n");
        else
            fprintf(stderr, "kafka_echo_driver: not ready: %s\n", why);
        last = r;
    }
    if (r && !lag_printed) {
        kafka_lag(d->k, lag_cb, NULL);
        lag_printed = true;
    }
}

int main(int argc, char **argv)
{
    static driver D;
    driver *d = &D;
    kafka_options o = {0};
    const char *config[64];
    int n_config = 0;
    int max_in_flight = 256, delay_ms = 5, drain_timeout_ms = 20000;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *f = argv[i], *v = argv[i + 1];
        if (!strcmp(f, "--brokers"))
            o.brokers = v;
        else if (!strcmp(f, "--group"))
            o.group = v;
        else if (!strcmp(f, "--in-topic"))
            o.in_topic = v;
        else if (!strcmp(f, "--out-topic"))
            o.out_topic = v;
        else if (!strcmp(f, "--dlq-topic"))
            o.dlq_topic = v;
        else if (!strcmp(f, "--max-in-flight"))
            max_in_flight = atoi(v);
        else if (!strcmp(f, "--delay-ms"))
            delay_ms = atoi(v);
        else if (!strcmp(f, "--drain-timeout-ms"))
            drain_timeout_ms = atoi(v);
        else if (!strcmp(f, "--kafka-config") && n_config < 64)
            config[n_config++] = v;
        else {
            fprintf(stderr, "kafka_echo_driver: unknown flag %s\n", f);
            return 2;
        }
    }
    o.config = config;
    o.n_config = n_config;
    o.client_id = "embedq-echo";
    o.on_fatal = on_fatal;
    o.ctx = d;
    srand((unsigned)uv_hrtime());

    d->loop = uv_default_loop();
    char err[EQ_ERRLEN];
    d->k = kafka_new(d->loop, &o, err, sizeof err);
    if (!d->k) {
        fprintf(stderr, "kafka_echo_driver: %s\n", err);
        return 2;
    }
    pipeline *p = &d->pipe;
    p->loop = d->loop;
    p->br = kafka_pipe_broker(d->k);
    p->max_in_flight = max_in_flight > 1 ? max_in_flight : 2;
    p->delay_ms = delay_ms;
    uv_timer_init(d->loop, &p->tick);
    p->tick.data = p;
    uv_timer_start(&p->tick, tick_cb, 1, 1);
    d->drain_timeout_ms = (uint64_t)drain_timeout_ms;
    uv_timer_init(d->loop, &d->drain);
    d->drain.data = d;
    uv_signal_init(d->loop, &d->sterm);
    uv_signal_init(d->loop, &d->sint);
    d->sterm.data = d->sint.data = d;
    uv_signal_start(&d->sterm, signal_cb, SIGTERM);
    uv_signal_start(&d->sint, signal_cb, SIGINT);
    static uv_timer_t ready;
    uv_timer_init(d->loop, &ready);
    ready.data = d;
    uv_timer_start(&ready, ready_cb, 100, 100);
    if (kafka_start(d->k, p, err, sizeof err) != 0) {
        fprintf(stderr, "kafka_echo_driver: %s\n", err);
        kafka_free(d->k);
        uv_walk(d->loop, close_walk_cb, NULL);
        uv_run(d->loop, UV_RUN_DEFAULT);
        return 2;
    }
    uv_run(d->loop, UV_RUN_DEFAULT);
    uv_loop_close(d->loop);
    free(p->q);
    return d->exit_code;
}
