/* cmd_worker.c - `embedq worker`: the fleet member.
 *
 * One libuv loop thread owns the broker (Kafka or Redis Streams), the HTTP
 * server and the signals; the pipeline (pipeline.h) owns the tokenizer pool
 * and the engine thread. Start-up:
 *
 *   flags/env validated -> HTTP up (/healthz 200, /readyz 503 "loading")
 *   -> engine opened on a worker thread (model load may take minutes)
 *   -> pipeline + broker started -> /readyz 200 once the broker is reachable
 *
 * `embedq serve` is the same process with no broker: the pipeline's HTTP
 * lane only, the API (api.h) on the one HTTP server with the probes. The
 * worker serves the API too with --api-port (a second HTTP server; the
 * probes stay on --metrics-port), on the same engine and batcher: queries
 * go first (pipeline.h).
 *
 * Shutdown (SIGTERM/SIGINT): intake stops, batches stop waiting to fill,
 * everything in flight is finished and published, the broker's deliveries
 * are awaited, offsets committed (Kafka) and the group left; exit 0. If
 * that takes longer than --drain-timeout, what was delivered is committed
 * and the worker exits 3 (the rest is redelivered to another worker). An
 * engine device error exits 1 without acknowledging unfinished input.
 */
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "api.h"
#include "cli.h"
#include "common.h"
#include "engine.h"
#include "http.h"
#include "kafka.h"
#include "metrics.h"
#include "msg.h"
#include "pipeline.h"
#include "redis.h"

/* ---- configuration ------------------------------------------------------ */

typedef struct {
    const char *source;
    /* kafka */
    const char *brokers, *group, *in_topic, *out_topic, *dlq_topic, *client_id;
    cli_list kafka_config;
    const char *kafka_sasl_username, *kafka_sasl_password;
    /* redis */
    const char *redis_url, *redis_username, *redis_password, *in_stream, *out_stream, *dlq_stream,
        *consumer;
    int redis_count, redis_block_ms, claim_idle_ms, claim_interval_ms, max_deliveries;
    uint64_t out_maxlen;
    uint64_t max_in_flight_bytes;
    /* engine + pipeline */
    const char *model, *model_name, *device, *output_format, *qdrant_collection, *long_input;
    int threads, max_tokens, batch_tokens, max_wait_ms, max_in_flight, tokenize_threads;
    int max_message_bytes, max_depth;
    /* operations */
    const char *metrics_addr;
    int metrics_port, drain_timeout_s, publish_fail_timeout_s;
    /* the API (serve; worker with --api-port) */
    bool serve;
    const char *api_addr, *served_model_name;
    int api_port; /* worker: 0 = off */
    int max_inputs, max_query_inputs, max_connections;
    uint64_t max_body_bytes;
    uint64_t max_bodies_bytes;
} worker_cfg;

/* ---- state ---------------------------------------------------------------- */

typedef struct {
    worker_cfg c;
    uv_loop_t *loop;
    eq_engine *engine;
    char engine_err[EQ_ERRLEN];
    pipeline *pipe;
    kafka_broker *kafka;
    redis_broker *redis;
    http_server *http;
    http_server *api_http; /* worker --api-port; NULL (serve: http serves it) */
    api *api;
    metrics_registry *reg;
    pub_health health; /* publish outcomes, reported by the broker module */
    metrics_histogram *h_batch_tokens, *h_batch_seconds, *h_e2e_seconds;
    metrics_family *dead_by_reason;
    uv_work_t load_req;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t drain_timer;
    uint64_t drain_started_ms;
    uv_timer_t ready_timer; /* logs readiness changes (ready_tick_cb)    */
    int ready_state;        /* -1 not logged yet, 0 not ready, 1 ready   */
    uint64_t not_ready_since_ms;
    bool not_ready_warned;
    atomic_bool loaded;
    bool draining, closing, fatal;
    int exit_code;
} worker;

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

/* ---- broker dispatch -------------------------------------------------------- */

/* The broker's own readiness, then whether anything gets published
 * (--publish-fail-timeout). */
static bool broker_ready(worker *w, char *why, size_t len)
{
    bool ok;
    if (w->c.serve) return true; /* no broker: the model is all it needs */
    if (w->kafka)
        ok = kafka_ready(w->kafka, why, len);
    else if (w->redis)
        ok = redis_ready(w->redis, why, len);
    else {
        snprintf(why, len, "broker not started");
        return false;
    }
    if (!ok) return false;
    char ph[384];
    if (ph_healthy(&w->health, uv_hrtime() / 1000000u, ph, sizeof ph)) return true;
    snprintf(why, len, "%s: %s", w->kafka ? "kafka" : "redis", ph);
    return false;
}

static void broker_stop_intake(worker *w)
{
    if (w->kafka) kafka_stop_intake(w->kafka);
    if (w->redis) redis_stop_intake(w->redis);
}

static int broker_close(worker *w, int timeout_ms)
{
    char err[EQ_ERRLEN] = "";
    int rc = 0;
    if (w->kafka) {
        rc = kafka_close(w->kafka, timeout_ms, err, sizeof err);
        w->kafka = NULL;
    }
    if (w->redis) {
        rc = redis_close(w->redis, timeout_ms, err, sizeof err);
        w->redis = NULL;
    }
    if (rc) eq_log(EQ_LOG_ERROR, "closing the broker: %s", err);
    return rc;
}

/* ---- metrics ------------------------------------------------------------- */

static void on_batch(void *ctx, int n_seqs, int n_tokens, double seconds)
{
    worker *w = ctx;
    (void)n_seqs;
    metrics_histogram_observe(w->h_batch_tokens, (double)n_tokens);
    metrics_histogram_observe(w->h_batch_seconds, seconds);
}

static void on_finish(void *ctx, const pipe_msg *m, bool accepted)
{
    worker *w = ctx;
    if (!accepted) return;
    if (m->dead)
        metrics_counter_inc(metrics_family_counter(w->dead_by_reason, m->reason_code, NULL));
    if (m->timestamp_ms > 0) {
        double e2e = ((double)wall_ms() - (double)m->timestamp_ms) / 1000.0;
        if (e2e >= 0) metrics_histogram_observe(w->h_e2e_seconds, e2e);
    }
}

static void sample(metrics_buf *out, const char *name, const char *label, const char *value,
                   double v)
{
    metrics_label l = {label, value};
    metrics_write_sample(out, name, label ? &l : NULL, label ? 1 : 0, v);
}

static void lag_kafka_cb(void *ctx, int32_t partition, int64_t lag)
{
    char part[16];
    snprintf(part, sizeof part, "%d", (int)partition);
    sample(ctx, "embedq_partition_lag", "partition", part, (double)lag);
}

static void lag_redis_cb(void *ctx, const char *stream, int64_t lag)
{
    sample(ctx, "embedq_partition_lag", "stream", stream, (double)lag);
}

static void counter_kind(metrics_buf *out, const char *name, const char *kind, uint64_t v)
{
    metrics_label l = {"kind", kind};
    metrics_write_sample_u64(out, name, &l, 1, v);
}

/* The broker module's counters: errors, and what it did (docs/metrics.md). */
static void collect_broker(worker *w, metrics_buf *out)
{
    static const char *errs = "embedq_broker_errors_total", *evs = "embedq_broker_events_total";
    if (w->kafka) {
        kafka_counters k;
        kafka_stats(w->kafka, &k);
        metrics_write_family(out, errs, "broker errors by kind", METRICS_COUNTER);
        counter_kind(out, errs, "delivery_failed", k.delivery_failed);
        counter_kind(out, errs, "consumer_error", k.consumer_errors);
        counter_kind(out, errs, "authentication", k.auth_errors);
        counter_kind(out, errs, "client_error", k.client_errors);
        metrics_write_family(out, evs, "broker module events by kind", METRICS_COUNTER);
        counter_kind(out, evs, "rebalance", k.rebalances);
        counter_kind(out, evs, "queue_full", k.queue_full);
        counter_kind(out, evs, "dropped_at_drain", k.dropped);
        counter_kind(out, evs, "offsets_stored", k.offsets_stored);
        metrics_write_family(out, "embedq_partitions_stuck",
                             "assigned partitions that cannot make progress (a record's output or "
                             "dead letter was not delivered; nothing after it is committed)",
                             METRICS_GAUGE);
        sample(out, "embedq_partitions_stuck", NULL, NULL,
               (double)kafka_stuck_partitions(w->kafka));
    } else if (w->redis) {
        redis_counters r;
        redis_stats(w->redis, &r);
        metrics_write_family(out, errs, "broker errors by kind", METRICS_COUNTER);
        counter_kind(out, errs, "exec_failed", r.exec_failed);
        counter_kind(out, errs, "exec_retry", r.exec_retries);
        counter_kind(out, errs, "reconnect", r.reconnects);
        counter_kind(out, errs, "authentication", r.auth_errors);
        metrics_write_family(out, evs, "broker module events by kind", METRICS_COUNTER);
        counter_kind(out, evs, "read", r.read);
        counter_kind(out, evs, "claimed", r.claimed);
        counter_kind(out, evs, "skipped_in_flight", r.skipped_in_flight);
        counter_kind(out, evs, "too_many_deliveries", r.too_many_deliveries);
        counter_kind(out, evs, "deleted_pending", r.deleted);
        counter_kind(out, evs, "acked", r.acked);
        counter_kind(out, evs, "kept_alive", r.kept_alive);
    }
}

/* Scrape-time values: pipeline counters, broker lag, engine memory. Runs
 * on the loop thread (the HTTP handler renders the registry). */
static int collect(metrics_buf *out, void *ctx)
{
    worker *w = ctx;
    char why[160];
    const bool ready =
        atomic_load(&w->loaded) && !w->draining && !w->fatal && broker_ready(w, why, sizeof why);
    metrics_write_family(out, "embedq_ready",
                         "1 when the model is loaded, the broker reachable and not draining",
                         METRICS_GAUGE);
    sample(out, "embedq_ready", NULL, NULL, ready ? 1 : 0);
    metrics_write_family(out, "embedq_draining", "1 while draining for shutdown", METRICS_GAUGE);
    sample(out, "embedq_draining", NULL, NULL, w->draining ? 1 : 0);
    if (w->pipe) {
        pipe_counters pc;
        pipe_stats(w->pipe, &pc);
        metrics_write_family(out, "embedq_messages_consumed_total",
                             "input messages taken from the broker", METRICS_COUNTER);
        metrics_write_sample_u64(out, "embedq_messages_consumed_total", NULL, 0, pc.consumed);
        metrics_write_family(out, "embedq_messages_produced_total",
                             "output messages accepted by the broker", METRICS_COUNTER);
        metrics_write_sample_u64(out, "embedq_messages_produced_total", NULL, 0, pc.produced);
        metrics_write_family(out, "embedq_tokens_total", "tokens embedded (rate = tokens/s)",
                             METRICS_COUNTER);
        metrics_write_sample_u64(out, "embedq_tokens_total", NULL, 0, pc.tokens);
        metrics_write_family(out, "embedq_batches_total", "engine batches run", METRICS_COUNTER);
        metrics_write_sample_u64(out, "embedq_batches_total", NULL, 0, pc.batches);
        metrics_write_family(out, "embedq_in_flight_messages",
                             "messages taken and not yet acknowledged", METRICS_GAUGE);
        sample(out, "embedq_in_flight_messages", NULL, NULL, (double)pc.in_flight);
        metrics_write_family(out, "embedq_in_flight_bytes",
                             "what those messages are counted as holding (--max-in-flight-bytes)",
                             METRICS_GAUGE);
        sample(out, "embedq_in_flight_bytes", NULL, NULL, (double)pc.in_flight_bytes);
        metrics_write_family(out, "embedq_engine_errors_total",
                             "failed engine batches (re-run singly, embedding_failed, or the "
                             "fatal device error)",
                             METRICS_COUNTER);
        metrics_write_sample_u64(out, "embedq_engine_errors_total", NULL, 0, pc.engine_errors);
    }
    collect_broker(w, out);
    if (w->kafka || w->redis) {
        metrics_write_family(out, "embedq_partition_lag",
                             "input records not yet processed per partition (Kafka) or stream "
                             "(Redis), as this worker sees it",
                             METRICS_GAUGE);
        if (w->kafka) kafka_lag(w->kafka, lag_kafka_cb, out);
        if (w->redis) redis_lag(w->redis, lag_redis_cb, out);
    }
    if (atomic_load(&w->loaded)) {
        eq_info info;
        eq_get_info(w->engine, &info);
        metrics_write_family(out, "embedq_engine_memory_bytes",
                             "engine memory by kind (device_used: the whole GPU)", METRICS_GAUGE);
        sample(out, "embedq_engine_memory_bytes", "kind", "weights", (double)info.weight_bytes);
        sample(out, "embedq_engine_memory_bytes", "kind", "activations",
               (double)info.activation_bytes);
        sample(out, "embedq_engine_memory_bytes", "kind", "workspace",
               (double)info.workspace_bytes);
        if (info.device_total) {
            sample(out, "embedq_engine_memory_bytes", "kind", "device_used",
                   (double)info.device_used);
            sample(out, "embedq_engine_memory_bytes", "kind", "device_total",
                   (double)info.device_total);
        }
    }
    return 0;
}

/* ---- HTTP handlers ------------------------------------------------------- */

static void respond(http_response *r, int status, const char *type, const char *body)
{
    http_response_status(r, status);
    http_response_content_type(r, type);
    http_response_append(r, body, strlen(body));
}

static void h_healthz(const http_request *req, http_response *r, void *arg)
{
    worker *w = arg;
    (void)req;
    if (w->fatal)
        respond(r, 503, "text/plain", "engine failed\n");
    else
        respond(r, 200, "text/plain", "ok\n");
}

static void h_readyz(const http_request *req, http_response *r, void *arg)
{
    worker *w = arg;
    (void)req;
    char why[512] = "";
    if (!atomic_load(&w->loaded))
        snprintf(why, sizeof why, "loading the model\n");
    else if (w->fatal)
        snprintf(why, sizeof why, "engine failed\n");
    else if (w->draining)
        snprintf(why, sizeof why, "draining\n");
    else if (!broker_ready(w, why, sizeof why - 1))
        strcat(why, "\n");
    if (why[0])
        respond(r, 503, "text/plain", why);
    else
        respond(r, 200, "text/plain", "ready\n");
}

static void h_metrics(const http_request *req, http_response *r, void *arg)
{
    worker *w = arg;
    (void)req;
    metrics_buf b;
    metrics_buf_init(&b);
    if (metrics_render(w->reg, &b) != 0) {
        metrics_buf_free(&b);
        respond(r, 500, "text/plain", "metrics unavailable\n");
        return;
    }
    http_response_status(r, 200);
    http_response_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    http_response_adopt(r, b.data, b.len); /* the response frees it */
}

/* ---- shutdown -------------------------------------------------------------- */

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Everything in flight is finished (or the drain timed out, or the engine
 * died): commit, leave, stop the loop. */
static void finish_shutdown(worker *w, int code)
{
    if (w->closing) return;
    w->closing = true;
    w->exit_code = code;
    /* What is left of the drain budget bounds the final flush + commit. */
    const uint64_t budget = (uint64_t)w->c.drain_timeout_s * 1000u;
    const uint64_t used = w->drain_started_ms ? wall_ms() - w->drain_started_ms : 0;
    int remaining = used < budget ? (int)(budget - used) : 0;
    if (remaining < 2000) remaining = 2000;
    if (broker_close(w, remaining) != 0 && w->exit_code == 0) w->exit_code = 3;
    if (w->api) {
        api_set_draining(w->api); /* a request from here on: 503 draining */
        api_set_pipeline(w->api, NULL);
    }
    if (w->pipe) {
        pipe_free(w->pipe); /* answers the queries left (503) */
        w->pipe = NULL;
    }
    if (w->api_http) {
        http_close(w->api_http, NULL, NULL);
        w->api_http = NULL;
    }
    if (w->http) {
        http_close(w->http, NULL, NULL);
        w->http = NULL;
    }
    uv_walk(w->loop, close_walk_cb, NULL);
}

static void drain_tick_cb(uv_timer_t *t)
{
    worker *w = t->data;
    if (w->closing) return;
    /* Redis: a read answered just after intake stopped still submits its
     * entries; wait for it too. */
    const bool intake_idle = !w->redis || redis_intake_idle(w->redis);
    const bool api_idle = !w->api || api_in_flight(w->api) == 0;
    if (!w->pipe || (pipe_in_flight(w->pipe) == 0 && intake_idle && api_idle)) {
        eq_log(EQ_LOG_INFO, "drained: everything in flight was %s",
               w->c.serve ? "answered" : "published");
        finish_shutdown(w, 0);
        return;
    }
    if (wall_ms() - w->drain_started_ms >= (uint64_t)w->c.drain_timeout_s * 1000u) {
        if (w->c.serve)
            eq_log(EQ_LOG_ERROR,
                   "drain timeout (%d s) with %u API requests in flight: they get 503",
                   w->c.drain_timeout_s, api_in_flight(w->api));
        else
            eq_log(EQ_LOG_ERROR,
                   "drain timeout (%d s) with %d messages in flight: committing what was "
                   "delivered; the rest will be redelivered",
                   w->c.drain_timeout_s, pipe_in_flight(w->pipe));
        finish_shutdown(w, 3);
    }
}

static void start_drain(worker *w, const char *why)
{
    if (w->draining) return;
    w->draining = true;
    w->drain_started_ms = wall_ms();
    if (w->c.serve)
        eq_log(EQ_LOG_INFO, "%s: draining %u API requests in flight (timeout %d s)", why,
               api_in_flight(w->api), w->c.drain_timeout_s);
    else
        eq_log(EQ_LOG_INFO, "%s: draining %d messages in flight (timeout %d s)", why,
               w->pipe ? pipe_in_flight(w->pipe) : 0, w->c.drain_timeout_s);
    broker_stop_intake(w);
    if (w->api) {
        /* New API requests get 503 (from the HTTP server once it stops
         * accepting: a new connection is refused, a request on an open one
         * answered 503 and the connection closed); those in flight finish. */
        api_set_draining(w->api);
        http_stop_accepting(w->api_http ? w->api_http : w->http);
    }
    if (w->pipe) pipe_drain(w->pipe);
    uv_timer_start(&w->drain_timer, drain_tick_cb, 0, 20);
}

/* SIGTERM, SIGINT and SIGHUP all drain (SIGHUP: the terminal of a worker
 * run by hand went away; the worker has no configuration to reload, and
 * draining loses nothing). While the model is still loading nothing has
 * been consumed (the broker subscribes only once the pipeline exists), so
 * the load is abandoned and the process exits 0 at once instead of waiting
 * minutes for a large model to finish uploading. A second signal during a
 * drain exits 3 at once. */
static void signal_cb(uv_signal_t *s, int signum)
{
    worker *w = s->data;
    const char *name = signum == SIGTERM ? "SIGTERM" : signum == SIGINT ? "SIGINT" : "SIGHUP";
    if (!atomic_load(&w->loaded) && !w->closing) {
        eq_log(EQ_LOG_INFO,
               "%s while the model loads: stopping the load; nothing was consumed; exit 0", name);
        fflush(stdout);
        fflush(stderr);
        /* The load runs on a libuv pool thread inside eq_open, which has no
         * cancellation point; _exit ends it with the process (no broker
         * membership or offsets exist yet to hand back). */
        _exit(0);
    }
    if (w->draining) {
        eq_log(EQ_LOG_WARN, "second signal (%s): exiting now without draining", name);
        finish_shutdown(w, 3);
        return;
    }
    start_drain(w, name);
}

static void on_fatal(void *ctx, const char *message)
{
    worker *w = ctx;
    w->fatal = true;
    eq_log(EQ_LOG_ERROR, "engine: %s; stopping (unfinished input is not acknowledged)", message);
    broker_stop_intake(w);
    finish_shutdown(w, 1);
}

static void on_broker_fatal(void *ctx, const char *message)
{
    worker *w = ctx;
    eq_log(EQ_LOG_ERROR, "kafka: fatal error: %s; stopping", message);
    broker_stop_intake(w);
    finish_shutdown(w, 1);
}

/* ---- start-up ---------------------------------------------------------------- */

static void load_work_cb(uv_work_t *req)
{
    worker *w = req->data;
    eq_options o = {0};
    o.device = w->c.device;
    o.max_batch_tokens = w->c.batch_tokens;
    o.max_seq_len = w->c.max_tokens;
    o.threads = w->c.threads;
    if (eq_open(w->c.model, &o, &w->engine, w->engine_err, sizeof w->engine_err) != 0)
        w->engine = NULL;
}

/* The broker, configured before the model loads so that a bad setting is
 * reported at once; it starts consuming once the pipeline exists. */
static int create_broker(worker *w, char *err, size_t errlen)
{
    if (!strcmp(w->c.source, "kafka")) {
        kafka_options ko = {0};
        ko.brokers = w->c.brokers;
        ko.group = w->c.group;
        ko.in_topic = w->c.in_topic;
        ko.out_topic = w->c.out_topic;
        ko.dlq_topic = w->c.dlq_topic;
        ko.config = w->c.kafka_config.items;
        ko.n_config = w->c.kafka_config.n;
        ko.sasl_username = w->c.kafka_sasl_username;
        ko.sasl_password = w->c.kafka_sasl_password;
        ko.client_id = w->c.client_id;
        ko.poll_interval_ms = 100;
        ko.on_fatal = on_broker_fatal;
        ko.ctx = w;
        ko.health = &w->health;
        w->kafka = kafka_new(w->loop, &ko, err, errlen);
        if (!w->kafka) return -1;
    } else {
        redis_options ro = {0};
        ro.url = w->c.redis_url;
        ro.username = w->c.redis_username;
        ro.password = w->c.redis_password;
        ro.in_stream = w->c.in_stream;
        ro.group = w->c.group;
        static char consumer[128];
        if (!w->c.consumer) { /* the default: unique per process */
            char host[64] = "worker";
            gethostname(host, sizeof host - 1);
            snprintf(consumer, sizeof consumer, "%s-%d", host, (int)getpid());
        }
        ro.consumer = w->c.consumer ? w->c.consumer : consumer;
        ro.out_stream = w->c.out_stream;
        ro.dlq_stream = w->c.dlq_stream;
        ro.read_count = w->c.redis_count;
        ro.block_ms = w->c.redis_block_ms;
        ro.claim_idle_ms = w->c.claim_idle_ms;
        ro.claim_interval_ms = w->c.claim_interval_ms;
        ro.max_deliveries = w->c.max_deliveries;
        ro.out_maxlen = (long)w->c.out_maxlen;
        ro.create_group = true;
        ro.health = &w->health;
        w->redis = redis_new(w->loop, &ro, err, errlen);
        if (!w->redis) return -1;
    }
    return 0;
}

/* `embedq serve` has no broker: nothing is ever submitted to publish. */
static void no_publish(void *self, pipe_msg *m)
{
    (void)self;
    EQ_ASSERT(!m);
}
static void no_pause(void *self)
{
    (void)self;
}

static int start_pipeline(worker *w, char *err, size_t errlen)
{
    const qw_config *cfg = eq_config(w->engine);
    pipe_options po = {0};
    po.engine = w->engine;
    po.model_name = w->c.model_name;
    po.batch_tokens = w->c.batch_tokens;
    po.max_wait_ms = w->c.max_wait_ms;
    po.max_in_flight = w->c.max_in_flight;
    po.max_in_flight_bytes = w->c.max_in_flight_bytes;
    po.tokenize_threads = w->c.tokenize_threads;
    po.out_format = !strcmp(w->c.output_format, "json")       ? PIPE_OUT_JSON
                    : !strcmp(w->c.output_format, "qdrant")   ? PIPE_OUT_QDRANT
                    : !strcmp(w->c.output_format, "pgvector") ? PIPE_OUT_PGVECTOR
                                                              : PIPE_OUT_MSGPACK;
    po.qdrant_collection = w->c.qdrant_collection;
    po.long_policy = !strcmp(w->c.long_input, "reject") ? PIPE_LONG_REJECT : PIPE_LONG_TRUNCATE;
    po.limits.max_bytes = (size_t)w->c.max_message_bytes;
    po.limits.max_depth = w->c.max_depth;
    po.limits.hidden_size = cfg->hidden;
    po.limits.out_format = po.out_format == PIPE_OUT_JSON       ? MSG_FMT_JSON
                           : po.out_format == PIPE_OUT_QDRANT   ? MSG_FMT_QDRANT
                           : po.out_format == PIPE_OUT_PGVECTOR ? MSG_FMT_PGVECTOR
                                                                : MSG_FMT_MSGPACK;
    po.ctx = w;
    po.on_batch = on_batch;
    po.on_finish = on_finish;
    po.on_fatal = on_fatal;

    po.max_query_inputs = w->c.max_query_inputs;

    pipe_broker pb = {w, no_publish, no_pause, no_pause};
    if (w->kafka) pb = kafka_pipe_broker(w->kafka);
    if (w->redis) pb = redis_pipe_broker(w->redis);
    w->pipe = pipe_new(w->loop, &po, &pb, err, errlen);
    if (!w->pipe) return -1;
    if (w->api) api_set_pipeline(w->api, w->pipe);
    if (w->c.serve) return 0;
    if (w->kafka) return kafka_start(w->kafka, w->pipe, err, errlen);
    return redis_start(w->redis, w->pipe, err, errlen);
}

/* Every second once the model is loaded: a readiness change is logged
 * (info), and a not-ready state that lasts 30 s once more as a warning, with
 * the reason /readyz gives. */
enum { NOT_READY_WARN_MS = 30000 };

static void ready_tick_cb(uv_timer_t *t)
{
    worker *w = t->data;
    if (w->closing || w->draining || w->fatal) return;
    char why[512] = "";
    const bool ready = broker_ready(w, why, sizeof why);
    const uint64_t now = wall_ms();
    if ((int)ready != w->ready_state) {
        if (ready)
            eq_log(EQ_LOG_INFO, "ready");
        else
            eq_log(EQ_LOG_INFO, "not ready: %s", why);
        w->ready_state = ready;
        w->not_ready_since_ms = now;
        w->not_ready_warned = false;
    } else if (!ready && !w->not_ready_warned && now - w->not_ready_since_ms >= NOT_READY_WARN_MS) {
        eq_log(EQ_LOG_WARN, "not ready for %d s: %s", NOT_READY_WARN_MS / 1000, why);
        w->not_ready_warned = true;
    }
}

static void load_done_cb(uv_work_t *req, int status)
{
    worker *w = req->data;
    if (status != 0 || !w->engine) {
        eq_log(EQ_LOG_ERROR, "opening the model %s: %s", w->c.model,
               status ? "cancelled" : w->engine_err);
        w->fatal = true;
        finish_shutdown(w, 1);
        return;
    }
    eq_info info;
    eq_get_info(w->engine, &info);
    const qw_config *cfg = eq_config(w->engine);
    eq_log(EQ_LOG_INFO,
           "model %s (%s): hidden %d, %d layers; backend %s on %s; max %d tokens per input, "
           "batches of %d tokens; output %s",
           w->c.model_name, w->c.model, cfg->hidden, cfg->n_layers, info.backend, info.device_name,
           eq_max_seq_len(w->engine), w->c.batch_tokens, w->c.output_format);
    if (w->draining) { /* a signal came while loading */
        finish_shutdown(w, 0);
        return;
    }
    char err[EQ_ERRLEN];
    if (start_pipeline(w, err, sizeof err) != 0) {
        eq_log(EQ_LOG_ERROR, "starting the %s: %s", w->c.serve ? "pipeline" : w->c.source, err);
        finish_shutdown(w, 1);
        return;
    }
    atomic_store(&w->loaded, true);
    uv_timer_start(&w->ready_timer, ready_tick_cb, 1000, 1000);
}

/* ---- flags -------------------------------------------------------------------- */

static const char *basename_of(const char *path)
{
    const char *s = strrchr(path, '/');
    while (s && s[1] == 0 && s > path) { /* trailing slash: the component before it */
        const char *e = s;
        s = e - 1;
        while (s > path && *s != '/')
            s--;
        if (*s == '/') {
            static char tmp[PATH_MAX];
            snprintf(tmp, sizeof tmp, "%.*s", (int)(e - s - 1), s + 1);
            return tmp;
        }
        return path;
    }
    return s ? s + 1 : path;
}

static int run(worker *w);

/* --max-bodies-bytes must hold one largest body (0: no cap). */
static int check_bodies(const char *cmd, const worker_cfg *c)
{
    if (c->max_bodies_bytes && c->max_bodies_bytes <= c->max_body_bytes) {
        fprintf(stderr,
                "embedq %s: flag --max-bodies-bytes: must be 0 (no cap) or more than "
                "--max-body-bytes (%llu), got %llu\n",
                cmd, (unsigned long long)c->max_body_bytes,
                (unsigned long long)c->max_bodies_bytes);
        return 2;
    }
    return 0;
}


/* The API's flags, shared by `worker` (with --api-port) and `serve`. */
#define API_FLAGS(c)                                                                               \
    {"max-inputs", CLI_INT, &(c)->max_inputs, 1, 1 << 20, "API: inputs per request (more: 400)"},  \
        {"max-pending-inputs",                                                                     \
         CLI_INT,                                                                                  \
         &(c)->max_query_inputs,                                                                   \
         1,                                                                                        \
         1 << 24,                                                                                  \
         "API: inputs of requests waiting for the engine, beyond which a request gets 429 "        \
         "(Retry-After)"},                                                                         \
        {"max-body-bytes",                                                                         \
         CLI_U64,                                                                                  \
         &(c)->max_body_bytes,                                                                     \
         0,                                                                                        \
         0,                                                                                        \
         "API: largest request body (more: 413)"},                                                 \
        {"max-bodies-bytes",                                                                       \
         CLI_U64,                                                                                  \
         &(c)->max_bodies_bytes,                                                                   \
         0,                                                                                        \
         0,                                                                                        \
         "API: request bodies held in memory at once, all connections together (more: 503 + "     \
         "Retry-After); more than --max-body-bytes, or 0 for no cap"},                             \
        {"max-connections",                                                                        \
         CLI_INT,                                                                                  \
         &(c)->max_connections,                                                                    \
         1,                                                                                        \
         1 << 20,                                                                                  \
         "API: open connections; at the cap a new one evicts the oldest idle one"},                \
    {                                                                                              \
        "served-model-name", CLI_STR, &(c)->served_model_name, 0, 0,                               \
            "API: the `model` requests must name (default: the worker's --model-name, else the "   \
            "model "                                                                               \
            "directory's name)"                                                                    \
    }

static void defaults(worker_cfg *c)
{
    c->device = "auto";
    c->output_format = "msgpack";
    c->long_input = "truncate";
    c->qdrant_collection = "embeddings";
    c->client_id = "embedq";
    c->redis_count = 256;
    c->redis_block_ms = 1000;
    c->claim_idle_ms = 60000;
    c->claim_interval_ms = 10000;
    c->max_deliveries = 5;
    c->max_tokens = 8192;
    c->batch_tokens = 16384;
    c->max_wait_ms = 20;
    c->max_in_flight = 4096;
    c->max_in_flight_bytes = 256ull << 20; /* fits every chart profile (docs/worker.md) */
    c->tokenize_threads = 2;
    c->max_message_bytes = 1 << 20;
    c->max_depth = 32; /* msgpack-c readers stop at 32 levels (schemas/README.md) */
    c->metrics_addr = "0.0.0.0";
    c->metrics_port = 9090;
    c->drain_timeout_s = 30;
    c->publish_fail_timeout_s = 60;
    c->api_addr = "0.0.0.0";
    c->max_inputs = 2048;
    c->max_query_inputs = 8192;
    c->max_connections = 1024;
    c->max_body_bytes = 64ull << 20;
    c->max_bodies_bytes = 256ull << 20;
}

int cmd_worker(int argc, char **argv)
{
    static worker W;
    worker *w = &W;
    worker_cfg *c = &w->c;
    memset(w, 0, sizeof *w);
    defaults(c);
    cli_flag flags[] = {
        {"source", CLI_STR, &c->source, 0, 0, "kafka | redis (required)"},
        {"model", CLI_STR, &c->model, 0, 0, "model directory (Hugging Face layout; required)"},
        {"model-name", CLI_STR, &c->model_name, 0, 0,
         "the `model` field of outputs (default: the model directory's name)"},
        {"device", CLI_STR, &c->device, 0, 0, CLI_DEVICE_HELP},
        {"threads", CLI_INT, &c->threads, 0, 1024, "CPU engine threads (0 = all cores)"},
        {"max-tokens", CLI_INT, &c->max_tokens, 2, 1 << 20,
         "tokens per input incl. the final <|endoftext|>; longer inputs follow --long-input"},
        {"long-input", CLI_STR, &c->long_input, 0, 0,
         "truncate (mark `truncated`) | reject (dead letter text_too_long); an instruction "
         "taking over half of --max-tokens is instruction_too_long either way"},
        {"batch-tokens", CLI_INT, &c->batch_tokens, 1, 1 << 24, "token budget of one batch"},
        {"max-wait-ms", CLI_INT, &c->max_wait_ms, 0, 60000,
         "the longest a batch waits to fill before it runs"},
        {"max-in-flight", CLI_INT, &c->max_in_flight, 1, 1 << 20,
         "messages taken and not yet acknowledged before intake pauses"},
        {"max-in-flight-bytes", CLI_U64, &c->max_in_flight_bytes, 0, 0,
         "bytes those messages may hold (each counted as 3 x its size + its token ids + its "
         "vector) before intake pauses; one larger message still passes alone"},
        {"tokenize-threads", CLI_INT, &c->tokenize_threads, 1, 256, "decode + tokenize threads"},
        {"output-format", CLI_STR, &c->output_format, 0, 0,
         "msgpack | json | qdrant | pgvector (schemas/README.md)"},
        {"qdrant-collection", CLI_STR, &c->qdrant_collection, 0, 0,
         "collection_name of qdrant-format outputs"},
        {"max-message-bytes", CLI_INT, &c->max_message_bytes, 64, 1 << 30,
         "larger input messages are dead-lettered (too_large)"},
        {"max-depth", CLI_INT, &c->max_depth, 2, 1000, "deepest nesting accepted in a message"},
        {"brokers", CLI_STR, &c->brokers, 0, 0, "kafka: bootstrap servers host:port,..."},
        {"group", CLI_STR, &c->group, 0, 0, "consumer group (kafka and redis; required)"},
        {"in-topic", CLI_STR, &c->in_topic, 0, 0, "kafka: input topic"},
        {"out-topic", CLI_STR, &c->out_topic, 0, 0, "kafka: output topic"},
        {"dlq-topic", CLI_STR, &c->dlq_topic, 0, 0, "kafka: dead-letter topic"},
        {"kafka-config", CLI_LIST, &c->kafka_config, 0, 0,
         "kafka: KEY=VALUE librdkafka setting (repeatable; consumer.KEY / producer.KEY for one "
         "side; env: ';'-separated, \\; for a ';' in a value)"},
        {"kafka-sasl-username", CLI_STR, &c->kafka_sasl_username, 0, 0,
         "kafka: sasl.username, taken verbatim (wins over --kafka-config)"},
        {"kafka-sasl-password", CLI_STR, &c->kafka_sasl_password, 0, 0,
         "kafka: sasl.password, taken verbatim: any character (wins over --kafka-config)"},
        {"client-id", CLI_STR, &c->client_id, 0, 0, "kafka: client.id"},
        {"redis-url", CLI_STR, &c->redis_url, 0, 0,
         "redis: redis://[user:pass@]HOST:PORT[/db] (user, pass %-encoded)"},
        {"redis-username", CLI_STR, &c->redis_username, 0, 0,
         "redis: ACL user, taken verbatim (wins over the URL's)"},
        {"redis-password", CLI_STR, &c->redis_password, 0, 0,
         "redis: password, taken verbatim: any character (wins over the URL's)"},
        {"in-stream", CLI_STR, &c->in_stream, 0, 0, "redis: input stream"},
        {"out-stream", CLI_STR, &c->out_stream, 0, 0, "redis: output stream"},
        {"dlq-stream", CLI_STR, &c->dlq_stream, 0, 0, "redis: dead-letter stream"},
        {"consumer", CLI_STR, &c->consumer, 0, 0,
         "redis: consumer name (default: HOSTNAME-PID; the Helm chart sets the pod name)"},
        {"redis-count", CLI_INT, &c->redis_count, 1, 100000, "redis: XREADGROUP COUNT"},
        {"redis-block-ms", CLI_INT, &c->redis_block_ms, 1, 600000, "redis: XREADGROUP BLOCK"},
        {"claim-idle-ms", CLI_INT, &c->claim_idle_ms, 1, 1 << 30,
         "redis: XAUTOCLAIM entries idle this long (their consumer died)"},
        {"claim-interval-ms", CLI_INT, &c->claim_interval_ms, 100, 1 << 30,
         "redis: how often to look for such entries"},
        {"max-deliveries", CLI_INT, &c->max_deliveries, 1, 1000,
         "redis: deliveries after which an entry is dead-lettered"},
        {"out-maxlen", CLI_U64, &c->out_maxlen, 0, 0,
         "redis: approximate MAXLEN of the output stream (0 = no trimming)"},
        {"metrics-addr", CLI_STR, &c->metrics_addr, 0, 0, "HTTP listen address"},
        {"metrics-port", CLI_INT, &c->metrics_port, 0, 65535,
         "HTTP port for /healthz /readyz /metrics (0 = any free port, logged)"},
        {"drain-timeout", CLI_INT, &c->drain_timeout_s, 1, 3600,
         "seconds to finish in-flight work after SIGTERM"},
        {"publish-fail-timeout", CLI_INT, &c->publish_fail_timeout_s, 0, 86400,
         "seconds of every publish failing (or waiting, none accepted) before /readyz says so "
         "(0 = never)"},
        {"api-port", CLI_INT, &c->api_port, 0, 65535,
         "serve the OpenAI-compatible API (docs/api.md) on this port, on the same engine "
         "(queries first); 0 = off"},
        {"api-addr", CLI_STR, &c->api_addr, 0, 0, "API: listen address"},
        API_FLAGS(c),
    };
    const cli_command cmd = {
        "worker",
        "--source kafka|redis --model DIR --group G (kafka: --brokers --in-topic --out-topic "
        "--dlq-topic | redis: --redis-url --in-stream --out-stream --dlq-stream) [flags]",
        "Consumes text messages in a consumer group, embeds them in token-budgeted batches and "
        "publishes one vector message per input (schemas/README.md); bad input goes to the "
        "dead-letter topic/stream with its reason. At-least-once: an input is acknowledged "
        "only after its output is accepted by the broker. Every flag can also be set by its "
        "EMBEDQ_* environment variable (shown in brackets); a flag wins over the variable.",
        "EMBEDQ_"};
    int rc = cli_parse(&cmd, flags, (int)(sizeof flags / sizeof *flags), argc, argv);
    if (rc) return rc == 1 ? 0 : rc;

    /* Validation: every error names the flag. */
    if (!c->source) return cli_missing(&cmd, "source");
    if (strcmp(c->source, "kafka") && strcmp(c->source, "redis")) {
        fprintf(stderr, "embedq worker: flag --source: expected kafka or redis, got '%s'\n",
                c->source);
        return 2;
    }
    if (!c->model) return cli_missing(&cmd, "model");
    if (!c->group) return cli_missing(&cmd, "group");
    if (!strcmp(c->source, "kafka")) {
        if (!c->brokers) return cli_missing(&cmd, "brokers");
        if (!c->in_topic) return cli_missing(&cmd, "in-topic");
        if (!c->out_topic) return cli_missing(&cmd, "out-topic");
        if (!c->dlq_topic) return cli_missing(&cmd, "dlq-topic");
    } else {
        if (!c->redis_url) return cli_missing(&cmd, "redis-url");
        if (!c->in_stream) return cli_missing(&cmd, "in-stream");
        if (!c->out_stream) return cli_missing(&cmd, "out-stream");
        if (!c->dlq_stream) return cli_missing(&cmd, "dlq-stream");
    }
    if (strcmp(c->output_format, "msgpack") && strcmp(c->output_format, "json") &&
        strcmp(c->output_format, "qdrant") && strcmp(c->output_format, "pgvector")) {
        fprintf(stderr,
                "embedq worker: flag --output-format: expected msgpack, json, qdrant or pgvector, "
                "got '%s'\n",
                c->output_format);
        return 2;
    }
    if (strcmp(c->long_input, "truncate") && strcmp(c->long_input, "reject")) {
        fprintf(stderr, "embedq worker: flag --long-input: expected truncate or reject, got '%s'\n",
                c->long_input);
        return 2;
    }
    if (c->max_in_flight_bytes < 1) {
        fprintf(stderr, "embedq worker: flag --max-in-flight-bytes: must be at least 1, got 0\n");
        return 2;
    }
    if (check_bodies("worker", c)) return 2;
    const char *dev = NULL;
    if (cli_device(&cmd, c->device, &dev)) return 2;
    c->device = dev;
    if (!c->model_name) c->model_name = basename_of(c->model);
    if (!c->served_model_name) c->served_model_name = c->model_name;
    return run(w);
}

int cmd_serve(int argc, char **argv)
{
    static worker W;
    worker *w = &W;
    worker_cfg *c = &w->c;
    memset(w, 0, sizeof *w);
    defaults(c);
    c->serve = true;
    c->metrics_port = 8080;
    cli_flag flags[] = {
        {"model", CLI_STR, &c->model, 0, 0, "model directory (Hugging Face layout; required)"},
        {"host", CLI_STR, &c->metrics_addr, 0, 0,
         "listen address (numeric IPv4 or IPv6) of the API, /healthz, /readyz and /metrics"},
        {"port", CLI_INT, &c->metrics_port, 0, 65535, "listen port (0 = any free port, logged)"},
        {"device", CLI_STR, &c->device, 0, 0, CLI_DEVICE_HELP},
        {"threads", CLI_INT, &c->threads, 0, 1024, "CPU engine threads (0 = all cores)"},
        {"max-tokens", CLI_INT, &c->max_tokens, 2, 1 << 20,
         "tokens per input incl. the final <|endoftext|>; longer inputs are cut (`truncate`, "
         "the default) or refused (\"truncate\": false)"},
        {"batch-tokens", CLI_INT, &c->batch_tokens, 1, 1 << 24, "token budget of one batch"},
        {"tokenize-threads", CLI_INT, &c->tokenize_threads, 1, 256,
         "tokenize + reply-encoding threads"},
        {"drain-timeout", CLI_INT, &c->drain_timeout_s, 1, 3600,
         "seconds to answer the requests in flight after SIGTERM"},
        API_FLAGS(c),
    };
    const cli_command cmd = {
        "serve", "--model DIR [--host H] [--port P] [flags]",
        "Serves the OpenAI-compatible embeddings API (POST /v1/embeddings, GET /v1/models; "
        "docs/api.md) with /healthz, /readyz and /metrics on the same port. Every flag can also "
        "be set by its EMBEDQ_* environment variable (shown in brackets); a flag wins over the "
        "variable.",
        "EMBEDQ_"};
    int rc = cli_parse(&cmd, flags, (int)(sizeof flags / sizeof *flags), argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    if (!c->model) return cli_missing(&cmd, "model");
    if (check_bodies("serve", c)) return 2;
    const char *dev = NULL;
    if (cli_device(&cmd, c->device, &dev)) return 2;
    c->device = dev;
    c->model_name = basename_of(c->model);
    if (!c->served_model_name) c->served_model_name = c->model_name;
    return run(w);
}

/* Everything after the flags, for both commands. */
static int run(worker *w)
{
    worker_cfg *c = &w->c;
    /* Idle clients cost a descriptor each: take all the hard limit allows. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ph_init(&w->health, (uint64_t)c->publish_fail_timeout_s * 1000u);
    w->loop = uv_default_loop();
    signal(SIGPIPE, SIG_IGN);
    /* First thing after the flags: from here on a signal is logged and
     * handled, the model load included (signal_cb). Before main() runs, the
     * default action still applies: ~0.1 s, nothing consumed yet. */
    uv_signal_init(w->loop, &w->sig_term);
    uv_signal_init(w->loop, &w->sig_int);
    uv_signal_init(w->loop, &w->sig_hup);
    w->sig_term.data = w->sig_int.data = w->sig_hup.data = w;
    uv_signal_start(&w->sig_term, signal_cb, SIGTERM);
    uv_signal_start(&w->sig_int, signal_cb, SIGINT);
    uv_signal_start(&w->sig_hup, signal_cb, SIGHUP);
    uv_timer_init(w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    uv_timer_init(w->loop, &w->ready_timer);
    w->ready_timer.data = w;
    w->ready_state = -1;

    /* Metrics and HTTP first, so probes answer while the model loads. */
    w->reg = metrics_registry_new();
    static const double tok_buckets[] = {64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536};
    static const double lat_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5,   1,    2.5,   5,    10,  30};
    static const double e2e_buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                         2.5,  5,     10,   30,  60,   300};
    w->h_batch_tokens =
        metrics_histogram_new(w->reg, "embedq_batch_tokens", "tokens per engine batch", tok_buckets,
                              sizeof tok_buckets / sizeof *tok_buckets);
    w->h_batch_seconds =
        metrics_histogram_new(w->reg, "embedq_batch_seconds", "engine time per batch", lat_buckets,
                              sizeof lat_buckets / sizeof *lat_buckets);
    w->h_e2e_seconds = metrics_histogram_new(
        w->reg, "embedq_end_to_end_seconds",
        "from the input record's timestamp to its output accepted by the broker", e2e_buckets,
        sizeof e2e_buckets / sizeof *e2e_buckets);
    w->dead_by_reason = metrics_counter_family_new(w->reg, "embedq_dead_letters_total",
                                                   "dead letters accepted by the broker, by reason",
                                                   "reason", NULL, 64);
    metrics_registry_add_collector(w->reg, collect, w);
    if (metrics_registry_error(w->reg)) {
        fprintf(stderr, "embedq worker: metrics: %s\n", metrics_registry_error(w->reg));
        return 1;
    }

    char err[EQ_ERRLEN];
    if (c->serve || c->api_port) {
        api_options ao = {0};
        ao.served_model_name = c->served_model_name;
        ao.max_inputs = c->max_inputs;
        ao.reg = w->reg;
        w->api = api_new(&ao, err, sizeof err);
        if (!w->api) {
            fprintf(stderr, "embedq %s: %s\n", c->serve ? "serve" : "worker", err);
            return 1;
        }
    }
    http_config hc = {0};
    hc.host = c->metrics_addr;
    hc.port = c->metrics_port;
    if (c->serve) {
        hc.json_errors = true;
        hc.max_body_bytes = c->max_body_bytes;
        hc.max_bodies_bytes = c->max_bodies_bytes;
        hc.max_connections = (unsigned)c->max_connections;
        hc.on_own_answer = api_count_own_answer;
        hc.own_answer_arg = w->api;
    }
    int hrc = http_open(w->loop, &hc, &w->http);
    if (hrc != 0) {
        if (c->serve)
            fprintf(stderr, "embedq serve: flag --host/--port %s:%d: %s\n", c->metrics_addr,
                    c->metrics_port, uv_strerror(hrc));
        else
            fprintf(stderr, "embedq worker: flag --metrics-addr/--metrics-port %s:%d: %s\n",
                    c->metrics_addr, c->metrics_port, uv_strerror(hrc));
        api_free(w->api);
        return 2;
    }
    http_route(w->http, "GET", "/healthz", h_healthz, w);
    http_route(w->http, "GET", "/readyz", h_readyz, w);
    http_route(w->http, "GET", "/metrics", h_metrics, w);
    if (c->serve) api_route(w->api, w->http);
    eq_log(EQ_LOG_INFO, "http: %s/healthz /readyz /metrics on %s:%d",
           c->serve ? "/v1/embeddings /v1/models " : "", c->metrics_addr, http_port(w->http));
    if (!c->serve && c->api_port) {
        http_config ac = {0};
        ac.host = c->api_addr;
        ac.port = c->api_port;
        ac.json_errors = true;
        ac.max_body_bytes = c->max_body_bytes;
        ac.max_bodies_bytes = c->max_bodies_bytes;
        ac.max_connections = (unsigned)c->max_connections;
        ac.on_own_answer = api_count_own_answer;
        ac.own_answer_arg = w->api;
        hrc = http_open(w->loop, &ac, &w->api_http);
        if (hrc != 0) {
            fprintf(stderr, "embedq worker: flag --api-addr/--api-port %s:%d: %s\n", c->api_addr,
                    c->api_port, uv_strerror(hrc));
            http_close(w->http, NULL, NULL);
            w->http = NULL;
            uv_walk(w->loop, close_walk_cb, NULL);
            uv_run(w->loop, UV_RUN_DEFAULT);
            uv_loop_close(w->loop);
            api_free(w->api);
            metrics_registry_free(w->reg);
            return 2;
        }
        api_route(w->api, w->api_http);
        eq_log(EQ_LOG_INFO, "api: /v1/embeddings /v1/models on %s:%d (model \"%s\")", c->api_addr,
               http_port(w->api_http), c->served_model_name);
    }

    if (!c->serve && create_broker(w, err, sizeof err) != 0) {
        fprintf(stderr, "embedq worker: %s source: %s\n", c->source, err);
        http_close(w->http, NULL, NULL);
        w->http = NULL;
        uv_walk(w->loop, close_walk_cb, NULL);
        uv_run(w->loop, UV_RUN_DEFAULT);
        uv_loop_close(w->loop);
        metrics_registry_free(w->reg);
        api_free(w->api);
        return 2;
    }

    w->load_req.data = w;
    uv_queue_work(w->loop, &w->load_req, load_work_cb, load_done_cb);
    uv_run(w->loop, UV_RUN_DEFAULT);
    /* Close callbacks (pipeline, http) have run; nothing is left on the loop. */
    uv_loop_close(w->loop);
    eq_close(w->engine);
    metrics_registry_free(w->reg);
    api_free(w->api);
    eq_log(EQ_LOG_INFO, "exit %d", w->exit_code);
    return w->exit_code;
}
