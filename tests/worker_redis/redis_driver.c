/* redis_driver.c - drives worker/redis.c against a real redis-server, for
 * redis_smoke_test.py.
 *
 * The pipeline here is a stand-in, for this module-level test only: it
 * implements pipeline.h's functions without an engine (pipe_msg_new and
 * pipe_msg_free are the real ones, from embedq_pipe_msg). A message's "output"
 * is the text "<source_id>|<payload>" (payload: the `data` bytes, or
 * "id=<id>;text=<text>" for plain-field entries); payloads starting with
 * "poison" (or a plain `text` field "poison...") become dead letters with
 * reason "malformed_json: poison input". Messages are "processed" --batch
 * at a time every --delay-ms, so tests can keep many in flight. Backpressure
 * is the real pipeline's rule: pause at --max-in-flight, resume at half.
 *
 * On SIGTERM/SIGINT: stop intake, wait until intake is idle and nothing is
 * in flight (at most --drain-timeout-ms, like `embedq worker`), redis_close
 * (5 s), print one JSON line of counters, exit 0 (3 if the close left
 * messages unacknowledged). Prints "READY" / "NOT READY: why"
 * lines when redis_ready changes.
 *
 * usage: redis_driver --url U --in S --group G --consumer C --out O --dlq D
 *        [--count N] [--block-ms N] [--claim-idle-ms N] [--claim-interval-ms N]
 *        [--max-deliveries N] [--out-maxlen N] [--max-in-flight N]
 *        [--delay-ms N] [--batch N] [--start-id ID] [--no-create-group]
 *        [--io-timeout-ms N] [--drain-timeout-ms N] [--username U] [--password P]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "pipeline.h"
#include "redis.h"

/* ---- the stand-in pipeline ---------------------------------------------------- */

struct pipeline {
    pipe_broker br;
    int max_in_flight, in_flight, batch;
    bool paused;
    pipe_msg *head, *tail; /* submitted, not yet "processed" */
    uv_timer_t tick;
    uint64_t consumed, produced, dead, not_accepted;
};

void pipe_submit(pipeline *p, pipe_msg *m)
{
    p->in_flight++;
    p->consumed++;
    m->next = NULL;
    if (p->tail)
        p->tail->next = m;
    else
        p->head = m;
    p->tail = m;
    if (!p->paused && p->in_flight >= p->max_in_flight) {
        p->paused = true;
        p->br.pause(p->br.self);
    }
}

void pipe_finish(pipeline *p, pipe_msg *m, bool accepted)
{
    if (!accepted)
        p->not_accepted++;
    else if (m->dead)
        p->dead++;
    else
        p->produced++;
    pipe_msg_free(m);
    p->in_flight--;
    if (p->paused && p->in_flight <= p->max_in_flight / 2) {
        p->paused = false;
        p->br.resume(p->br.self);
    }
}

/* No byte bound here: the message bound alone. */
void pipe_room(const pipeline *p, int *msgs, uint64_t *bytes)
{
    *msgs = p->in_flight < p->max_in_flight ? p->max_in_flight - p->in_flight : 0;
    *bytes = UINT64_MAX;
}

uint64_t pipe_charge(const pipeline *p, size_t input_bytes)
{
    (void)p;
    return input_bytes;
}

int pipe_in_flight(const pipeline *p)
{
    return p->in_flight;
}

static const char *field(const pipe_msg *m, const char *name, size_t *len)
{
    for (int i = 0; i < m->n_fields; i++)
        if (!strcmp(m->field_names[i], name)) {
            *len = m->field_value_lens[i];
            return m->field_values[i];
        }
    *len = 0;
    return "";
}

static void process(pipe_msg *m)
{
    const char *payload;
    size_t plen;
    char *tmp = NULL;
    if (m->data) {
        payload = (const char *)m->data;
        plen = m->len;
    } else {
        size_t il, tl;
        const char *id = field(m, "id", &il), *text = field(m, "text", &tl);
        tmp = malloc(il + tl + 16);
        plen = (size_t)sprintf(tmp, "id=%.*s;text=%.*s", (int)il, id, (int)tl, text);
        payload = tmp;
        if (tl >= 6 && !memcmp(text, "poison", 6)) plen = 0; /* poison */
    }
    if (plen == 0 || (plen >= 6 && !memcmp(payload, "poison", 6))) {
        m->dead = true;
        m->reason_code = "malformed_json";
        snprintf(m->reason, sizeof m->reason, "malformed_json: poison input");
    } else {
        size_t idl = strlen(m->source_id);
        m->out = malloc(idl + 1 + plen);
        memcpy(m->out, m->source_id, idl);
        m->out[idl] = '|';
        memcpy(m->out + idl + 1, payload, plen);
        m->out_len = idl + 1 + plen;
    }
    free(tmp);
}

static void tick_cb(uv_timer_t *t)
{
    pipeline *p = t->data;
    for (int i = 0; i < p->batch && p->head; i++) {
        pipe_msg *m = p->head;
        p->head = m->next;
        if (!p->head) p->tail = NULL;
        m->next = NULL;
        process(m);
        p->br.publish(p->br.self, m);
    }
}

/* ---- the driver ----------------------------------------------------------------- */

static pipeline P;
static redis_broker *R;
static uv_signal_t sig_term, sig_int;
static uv_timer_t drain_timer, ready_timer;
static bool draining;
static uint64_t drain_deadline;
static int drain_timeout_ms = 30000;
static int exit_code;
static int last_ready = -1;
static char last_why[512];

static void close_all(void)
{
    uv_close((uv_handle_t *)&P.tick, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&drain_timer, NULL);
    uv_close((uv_handle_t *)&ready_timer, NULL);
}

static void drain_cb(uv_timer_t *t)
{
    if ((!redis_intake_idle(R) || P.in_flight > 0) && uv_now(t->loop) < drain_deadline) return;
    uv_timer_stop(&drain_timer);
    redis_counters c;
    redis_stats(R, &c);
    char err[512] = "";
    if (redis_close(R, 5000, err, sizeof err) != 0) {
        fprintf(stderr, "redis_close: %s\n", err);
        exit_code = 3;
    }
    R = NULL;
    printf("{\"consumed\": %llu, \"produced\": %llu, \"dead\": %llu, \"not_accepted\": %llu, "
           "\"read\": %llu, \"claimed\": %llu, \"skipped_in_flight\": %llu, "
           "\"too_many_deliveries\": %llu, \"deleted\": %llu, \"acked\": %llu, "
           "\"exec_retries\": %llu, \"exec_failed\": %llu, \"reconnects\": %llu, "
           "\"auth_errors\": %llu, \"left_pending\": %llu}\n",
           (unsigned long long)P.consumed, (unsigned long long)P.produced,
           (unsigned long long)P.dead, (unsigned long long)P.not_accepted,
           (unsigned long long)c.read, (unsigned long long)c.claimed,
           (unsigned long long)c.skipped_in_flight, (unsigned long long)c.too_many_deliveries,
           (unsigned long long)c.deleted, (unsigned long long)c.acked,
           (unsigned long long)c.exec_retries, (unsigned long long)c.exec_failed,
           (unsigned long long)c.reconnects, (unsigned long long)c.auth_errors,
           (unsigned long long)c.left_pending);
    fflush(stdout);
    close_all();
}

static void signal_cb(uv_signal_t *s, int signum)
{
    (void)signum;
    if (draining) return;
    draining = true;
    drain_deadline = uv_now(s->loop) + (uint64_t)drain_timeout_ms;
    redis_stop_intake(R);
    uv_timer_start(&drain_timer, drain_cb, 0, 10);
}

static void ready_cb(uv_timer_t *t)
{
    (void)t;
    if (!R) return;
    char why[512] = "";
    int ok = redis_ready(R, why, sizeof why) ? 1 : 0;
    if (ok != last_ready || (!ok && strcmp(why, last_why))) {
        if (ok)
            printf("READY\n");
        else
            printf("NOT READY: %s\n", why);
        fflush(stdout);
        last_ready = ok;
        snprintf(last_why, sizeof last_why, "%s", why);
    }
}

int main(int argc, char **argv)
{
    redis_options o = {0};
    o.create_group = true;
    int max_in_flight = 1000, delay_ms = 1, batch = 100000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--no-create-group")) {
            o.create_group = false;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "flag %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--url"))
            o.url = v;
        else if (!strcmp(a, "--username"))
            o.username = v;
        else if (!strcmp(a, "--password"))
            o.password = v;
        else if (!strcmp(a, "--in"))
            o.in_stream = v;
        else if (!strcmp(a, "--group"))
            o.group = v;
        else if (!strcmp(a, "--consumer"))
            o.consumer = v;
        else if (!strcmp(a, "--out"))
            o.out_stream = v;
        else if (!strcmp(a, "--dlq"))
            o.dlq_stream = v;
        else if (!strcmp(a, "--start-id"))
            o.group_start_id = v;
        else if (!strcmp(a, "--count"))
            o.read_count = atoi(v);
        else if (!strcmp(a, "--block-ms"))
            o.block_ms = atoi(v);
        else if (!strcmp(a, "--claim-idle-ms"))
            o.claim_idle_ms = atoi(v);
        else if (!strcmp(a, "--claim-interval-ms"))
            o.claim_interval_ms = atoi(v);
        else if (!strcmp(a, "--max-deliveries"))
            o.max_deliveries = atoi(v);
        else if (!strcmp(a, "--out-maxlen"))
            o.out_maxlen = atol(v);
        else if (!strcmp(a, "--max-in-flight"))
            max_in_flight = atoi(v);
        else if (!strcmp(a, "--delay-ms"))
            delay_ms = atoi(v);
        else if (!strcmp(a, "--batch"))
            batch = atoi(v);
        else if (!strcmp(a, "--io-timeout-ms"))
            o.io_timeout_ms = atoi(v);
        else if (!strcmp(a, "--drain-timeout-ms"))
            drain_timeout_ms = atoi(v);
        else {
            fprintf(stderr, "unknown flag %s\n", a);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    char err[512];
    R = redis_new(loop, &o, err, sizeof err);
    if (!R) {
        fprintf(stderr, "redis_new: %s\n", err);
        return 2;
    }
    P.br = redis_pipe_broker(R);
    P.max_in_flight = max_in_flight;
    P.batch = batch;
    uv_timer_init(loop, &P.tick);
    P.tick.data = &P;
    uv_timer_start(&P.tick, tick_cb, (uint64_t)delay_ms, (uint64_t)(delay_ms > 0 ? delay_ms : 1));
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_term, signal_cb, SIGTERM);
    uv_signal_start(&sig_int, signal_cb, SIGINT);
    uv_timer_init(loop, &drain_timer);
    uv_timer_init(loop, &ready_timer);
    uv_timer_start(&ready_timer, ready_cb, 20, 20);
    if (redis_start(R, &P, err, sizeof err) != 0) {
        fprintf(stderr, "redis_start: %s\n", err);
        redis_free(R);
        close_all();
        uv_run(loop, UV_RUN_DEFAULT);
        return 2;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    /* redis_close freed its messages' bookkeeping; what is still queued
     * here was never published (only after a close timeout). */
    while (P.head) {
        pipe_msg *m = P.head;
        P.head = m->next;
        pipe_msg_free(m);
    }
    int rc = uv_loop_close(loop);
    if (rc != 0) {
        fprintf(stderr, "uv_loop_close: %s (handles left open)\n", uv_strerror(rc));
        return 4;
    }
    return exit_code;
}
