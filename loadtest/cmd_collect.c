/* cmd_collect.c - `embedq-loadtest collect`: reads the worker's output and
 * dead-letter topics/streams, matches them against a replay manifest, samples
 * the group's lag from the broker, and writes a JSON report plus an SVG plot
 * (lt_report.c).
 *
 *   manifest (tailed while replay writes it) -> expected entries, by id and
 *       by position
 *   outputs      -> input id (msgpack / json / qdrant / pgvector) -> entry
 *   dead letters -> source position (Kafka headers / Redis source_id) -> entry
 *   every --sample-ms: the group's lag (Kafka committed vs high watermarks,
 *       Redis XINFO GROUPS lag + pending)
 *
 * Ids are matched on their text (a string id, or an integer in decimal: the
 * same rule as output record keys). An output whose id the manifest does not
 * have yet is kept and matched again as the manifest grows; what is still
 * unmatched at the end is "unexpected" (e.g. outputs of an earlier run).
 *
 * Stops when the manifest is complete, every entry has an output or dead
 * letter and (with --group) a lag sample taken after that reads 0; or at
 * --timeout; or on SIGINT/SIGTERM. Exit: 0 nothing missing, 1 ids missing,
 * 2 bad flags, 3 broker or file error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <msgpack.h>

#include "lt.h"
#include "lt_collect.h"
#include "lt_kafka.h"
#include "lt_manifest.h"
#include "lt_redis.h"

typedef struct {
    const char *brokers, *redis_url, *out_topic, *dlq_topic, *in_topic, *group, *manifest;
    const char *report, *plot, *title, *start, *marks;
    double timeout_s, sample_s;
    lt_list kafka_config;
} collect_cfg;

/* An output or dead letter whose id/position is not (yet) in the manifest. */
typedef struct {
    char *key; /* id text or position */
    size_t key_len;
    int64_t done_us, stamp_us;
    bool dead;
} pending_rec;

typedef struct {
    collect_cfg *cfg;
    lt_collect c;
    lt_map by_id, by_pos; /* id text / position -> first entry index */
    lt_manifest_reader man;
    bool man_open;
    pending_rec *pend;
    size_t n_pend, pend_cap;
    long pend_seen_entries; /* manifest entries when the pending list was last retried */
    /* brokers */
    ltk_client kout, klag;
    int in_parts;
    redisContext *redis;
    char last_out[64], last_dlq[64];
    lt_buf id; /* scratch */
    bool oom;
} collector;

/* ---- expected entries (manifest callbacks) ---------------------------------------- */

static void on_entry(void *arg, int64_t sent_us, const char *pos, char kind, const char *id,
                     size_t id_len)
{
    collector *K = arg;
    lt_collect *c = &K->c;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4096;
        lt_entry *p = realloc(c->e, cap * sizeof *p);
        if (!p) {
            K->oom = true;
            return;
        }
        c->e = p;
        c->cap = cap;
    }
    int64_t idx = (int64_t)c->n;
    c->e[idx] = (lt_entry){.sent_us = sent_us, .next_same = -1, .kind = kind};
    lt_buf ref = {0};
    if (lt_buf_add(&ref, id, id_len) || lt_buf_addf(&ref, " @ %s", pos)) {
        lt_buf_free(&ref);
        K->oom = true;
        return;
    }
    c->e[idx].ref = (char *)ref.data;
    c->n++;
    bool added;
    if (!lt_map_put(&K->by_pos, pos, strlen(pos), idx, NULL)) K->oom = true;
    if (kind == '-') return; /* no id: only its dead letter can match it */
    int64_t *first = lt_map_put(&K->by_id, id, id_len, idx, &added);
    if (!first) {
        K->oom = true;
        return;
    }
    if (!added) { /* the same id sent again: chain it */
        int64_t j = *first;
        while (c->e[j].next_same >= 0)
            j = c->e[j].next_same;
        c->e[j].next_same = (int32_t)idx;
    }
}

static void on_mark(void *arg, const char *name, int64_t us)
{
    lt_collect *c = &((collector *)arg)->c;
    if (c->n_marks >= LT_MAX_MARKS) return;
    snprintf(c->marks[c->n_marks].name, sizeof c->marks[0].name, "%.31s", name);
    c->marks[c->n_marks++].us = us;
}

/* ---- matching ---------------------------------------------------------------------- */

static int add_event(collector *K, int64_t done_us, int64_t lat_us, uint8_t what)
{
    lt_collect *c = &K->c;
    if (c->n_ev == c->ev_cap) {
        size_t cap = c->ev_cap ? c->ev_cap * 2 : 8192;
        lt_event *p = realloc(c->ev, cap * sizeof *p);
        if (!p) return K->oom = true, -1;
        c->ev = p;
        c->ev_cap = cap;
    }
    c->ev[c->n_ev++] = (lt_event){done_us, lat_us, what};
    return 0;
}

/* Records an arrival for entry idx (an output, or a dead letter). */
static void arrive(collector *K, int64_t idx, int64_t done_us, int64_t stamp_us, bool dead)
{
    lt_collect *c = &K->c;
    lt_entry *e = &c->e[idx];
    bool first = e->outs + e->dlqs == 0;
    if (dead)
        e->dlqs++;
    else
        e->outs++;
    if (!first) {
        c->duplicates++;
        add_event(K, done_us, -1, LT_EV_DUPLICATE);
        return;
    }
    e->done_us = done_us;
    c->seen++;
    if (!dead && stamp_us > 0) c->stamped++;
    int64_t sent = !dead && stamp_us > 0 ? stamp_us : e->sent_us;
    int64_t lat = done_us - sent;
    add_event(K, done_us, lat < 0 ? 0 : lat, dead ? LT_EV_DEAD : LT_EV_OUTPUT);
    if (c->seen == (long)c->n && c->manifest_complete) c->all_seen_us = lt_now_us();
}

/* Matches by id (outputs) or position (dead letters). false: not in the
 * manifest (yet). */
static bool match(collector *K, const char *key, size_t len, int64_t done_us, int64_t stamp_us,
                  bool dead)
{
    int64_t *first = dead ? lt_map_get(&K->by_pos, key, len) : lt_map_get(&K->by_id, key, len);
    if (!first) return false;
    int64_t idx = *first;
    for (int64_t j = idx; j >= 0; j = K->c.e[j].next_same) /* the first not yet answered */
        if (K->c.e[j].outs + K->c.e[j].dlqs == 0) {
            idx = j;
            break;
        }
    arrive(K, idx, done_us, stamp_us, dead);
    return true;
}

static void hold(collector *K, const char *key, size_t len, int64_t done_us, int64_t stamp_us,
                 bool dead)
{
    if (K->n_pend == K->pend_cap) {
        size_t cap = K->pend_cap ? K->pend_cap * 2 : 256;
        pending_rec *p = realloc(K->pend, cap * sizeof *p);
        if (!p) {
            K->oom = true;
            return;
        }
        K->pend = p;
        K->pend_cap = cap;
    }
    char *k = malloc(len + 1);
    if (!k) {
        K->oom = true;
        return;
    }
    memcpy(k, key, len);
    k[len] = 0;
    K->pend[K->n_pend++] = (pending_rec){k, len, done_us, stamp_us, dead};
}

/* An output (or dead letter) read from the broker. */
static void got(collector *K, const char *key, size_t len, int64_t done_us, int64_t stamp_us,
                bool dead)
{
    if (dead)
        K->c.dead_letters++;
    else
        K->c.outputs++;
    if (!match(K, key, len, done_us, stamp_us, dead)) hold(K, key, len, done_us, stamp_us, dead);
}

/* Retries the held records after the manifest grew; at the end (final)
 * what is left is unexpected. */
static void retry_held(collector *K, bool final)
{
    if (!final && K->c.n == (size_t)K->pend_seen_entries) return;
    K->pend_seen_entries = (long)K->c.n;
    size_t o = 0;
    for (size_t i = 0; i < K->n_pend; i++) {
        pending_rec *p = &K->pend[i];
        if (match(K, p->key, p->key_len, p->done_us, p->stamp_us, p->dead)) {
            free(p->key);
        } else if (final) {
            K->c.unexpected++;
            add_event(K, p->done_us, -1, LT_EV_UNEXPECTED);
            free(p->key);
        } else {
            K->pend[o++] = *p;
        }
    }
    K->n_pend = o;
}

static void count_reason(collector *K, const char *reason, size_t len)
{
    const char *colon = memchr(reason, ':', len);
    size_t n = colon ? (size_t)(colon - reason) : len;
    if (n > 64) n = 64;
    int64_t *v = lt_map_put(&K->c.reasons, n ? reason : "(none)", n ? n : 6, 0, NULL);
    if (v)
        ++*v;
    else
        K->oom = true;
}

/* ---- output messages -------------------------------------------------------------- */

/* The input id in an output message: msgpack {"id": ..} or JSON (formats
 * json: "id"; qdrant and pgvector: "payload"."id"). Text form into K->id.
 * 0, or -1 when there is none. */
static int msgpack_id(const uint8_t *v, size_t n, lt_buf *out)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rc = -1;
    if (msgpack_unpack_next(&u, (const char *)v, n, &off) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            const msgpack_object *k = &u.data.via.map.ptr[i].key, *val = &u.data.via.map.ptr[i].val;
            if (k->type != MSGPACK_OBJECT_STR || k->via.str.size != 2 ||
                memcmp(k->via.str.ptr, "id", 2))
                continue;
            if (val->type == MSGPACK_OBJECT_STR)
                rc = lt_buf_add(out, val->via.str.ptr, val->via.str.size);
            else if (val->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                rc = lt_buf_addf(out, "%" PRIu64, val->via.u64);
            else if (val->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                rc = lt_buf_addf(out, "%" PRId64, val->via.i64);
            break;
        }
    }
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* JSON: cJSON holds numbers as doubles, so integer ids beyond 2^53 in JSON
 * outputs are not matched exactly (replay's own ids are strings). */
static int json_id(const uint8_t *v, size_t n, lt_buf *out)
{
    cJSON *root = cJSON_ParseWithLength((const char *)v, n);
    if (!root) return -1;
    const cJSON *payload = cJSON_GetObjectItemCaseSensitive(root, "payload");
    const cJSON *id =
        cJSON_GetObjectItemCaseSensitive(cJSON_IsObject(payload) ? payload : root, "id");
    int rc = -1;
    if (cJSON_IsString(id))
        rc = lt_buf_add(out, id->valuestring, strlen(id->valuestring));
    else if (cJSON_IsNumber(id))
        rc = lt_buf_addf(out, "%.0f", id->valuedouble);
    cJSON_Delete(root);
    return rc;
}

static int output_id(const uint8_t *v, size_t n, lt_buf *out)
{
    out->len = 0;
    if (!v || !n) return -1;
    size_t i = 0;
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == '\n' || v[i] == '\r'))
        i++;
    return i < n && v[i] == '{' ? json_id(v, n, out) : msgpack_id(v, n, out);
}

static void got_output(collector *K, const uint8_t *v, size_t n, int64_t done_us, int64_t stamp_us)
{
    if (output_id(v, n, &K->id)) {
        K->c.unparsed++;
        return;
    }
    got(K, (const char *)K->id.data, K->id.len, done_us, stamp_us, false);
}

/* ---- Kafka ----------------------------------------------------------------------- */

static int kafka_assign(collector *K, char *err, size_t errlen)
{
    const collect_cfg *cfg = K->cfg;
    int timeout_ms = 10000;
    const char *topics[2] = {cfg->out_topic, cfg->dlq_topic};
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(8);
    int rc = 0;
    for (int t = 0; t < 2 && !rc; t++) {
        if (!topics[t]) continue;
        int n = ltk_partitions(&K->kout, topics[t], timeout_ms, err, errlen);
        if (n < 0) rc = -1;
        for (int p = 0; p < n; p++)
            rd_kafka_topic_partition_list_add(tpl, topics[t], p)->offset =
                !strcmp(cfg->start, "now") ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
    }
    if (!rc) {
        rd_kafka_resp_err_t e = rd_kafka_assign(K->kout.rk, tpl);
        if (e) rc = eq_err(err, errlen, "assigning the output topics: %s", rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(tpl);
    if (!rc && cfg->group) {
        K->in_parts = ltk_partitions(&K->klag, cfg->in_topic, timeout_ms, err, errlen);
        if (K->in_parts < 0) rc = -1;
    }
    return rc;
}

static const char *header(rd_kafka_headers_t *h, const char *name, size_t *len)
{
    const void *v = NULL;
    if (!h || rd_kafka_header_get_last(h, name, &v, len) || !v) return NULL;
    return v;
}

static void kafka_record(collector *K, rd_kafka_message_t *m)
{
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    int64_t done = tt != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && ts > 0 ? ts * 1000 : lt_now_us();
    rd_kafka_headers_t *h = NULL;
    rd_kafka_message_headers(m, &h);
    size_t n;
    int64_t stamp = 0;
    const char *s = header(h, LT_SENT_HEADER, &n);
    if (s && lt_parse_i64(s, n, &stamp)) stamp = 0;
    const char *topic = rd_kafka_topic_name(m->rkt);
    if (!K->cfg->dlq_topic || strcmp(topic, K->cfg->dlq_topic)) {
        got_output(K, m->payload, m->len, done, stamp);
        return;
    }
    size_t rl = 0, pl = 0, ol = 0;
    const char *reason = header(h, "embedq.error", &rl);
    const char *part = header(h, "embedq.source.partition", &pl);
    const char *off = header(h, "embedq.source.offset", &ol);
    count_reason(K, reason ? reason : "", reason ? rl : 0);
    char pos[64];
    int len = snprintf(pos, sizeof pos, "%.*s:%.*s", (int)(pl < 20 ? pl : 20), part ? part : "",
                       (int)(ol < 24 ? ol : 24), off ? off : "");
    got(K, pos, (size_t)len, done, stamp, true);
}

static int kafka_poll(collector *K, int budget_ms, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    int64_t until = lt_now_us() + budget_ms * 1000;
    for (int i = 0; i < 5000 && !K->oom; i++) {
        int left = (int)((until - lt_now_us()) / 1000);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(K->kout.rk, left > 0 ? left : 0);
        if (!m) break;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                lt_warn("collect", "consumer: %s", rd_kafka_message_errstr(m));
        } else {
            kafka_record(K, m);
        }
        rd_kafka_message_destroy(m);
    }
    return 0;
}

/* ---- Redis ----------------------------------------------------------------------- */

static void redis_entries(collector *K, const redisReply *entries, bool dead, char *last,
                          size_t last_cap)
{
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) continue;
        const redisReply *id = e->element[0], *f = e->element[1];
        snprintf(last, last_cap, "%.*s", (int)id->len, id->str);
        int64_t done = ltr_id_ms(id->str, id->len) * 1000;
        if (!dead) {
            const redisReply *data = ltr_field(f, "data");
            if (data && data->type == REDIS_REPLY_STRING)
                got_output(K, (const uint8_t *)data->str, data->len, done, 0);
            else
                K->c.unparsed++;
            continue;
        }
        const redisReply *reason = ltr_field(f, "error"), *src = ltr_field(f, "source_id");
        count_reason(K, reason ? reason->str : "", reason ? reason->len : 0);
        if (src && src->type == REDIS_REPLY_STRING)
            got(K, src->str, src->len, done, 0, true);
        else
            K->c.unparsed++;
    }
}

static int redis_poll(collector *K, int budget_ms, char *err, size_t errlen)
{
    const collect_cfg *cfg = K->cfg;
    char block[16];
    snprintf(block, sizeof block, "%d", budget_ms);
    const char *a[10] = {"XREAD", "COUNT", "1000", "BLOCK", block, "STREAMS", cfg->out_topic};
    int argc = 7;
    if (cfg->dlq_topic) a[argc++] = cfg->dlq_topic;
    a[argc++] = K->last_out;
    if (cfg->dlq_topic) a[argc++] = K->last_dlq;
    redisReply *r = ltr_cmd(K->redis, argc, a, NULL, err, errlen);
    if (!r) return -1;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *s = r->element[i];
        if (s->type != REDIS_REPLY_ARRAY || s->elements != 2) continue;
        bool dead = cfg->dlq_topic && s->element[0]->len == strlen(cfg->dlq_topic) &&
                    !memcmp(s->element[0]->str, cfg->dlq_topic, s->element[0]->len);
        redis_entries(K, s->element[1], dead, dead ? K->last_dlq : K->last_out, sizeof K->last_out);
    }
    freeReplyObject(r);
    return 0;
}

/* "now": start after the streams' current last entries. */
static int redis_start(collector *K, char *err, size_t errlen)
{
    snprintf(K->last_out, sizeof K->last_out, "0-0");
    snprintf(K->last_dlq, sizeof K->last_dlq, "0-0");
    if (strcmp(K->cfg->start, "now")) return 0;
    const char *streams[2] = {K->cfg->out_topic, K->cfg->dlq_topic};
    char *last[2] = {K->last_out, K->last_dlq};
    for (int i = 0; i < 2; i++) {
        if (!streams[i]) continue;
        const char *a[6] = {"XREVRANGE", streams[i], "+", "-", "COUNT", "1"};
        redisReply *r = ltr_cmd(K->redis, 6, a, NULL, err, errlen);
        if (!r) return -1;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->elements == 2)
            snprintf(last[i], sizeof K->last_out, "%.*s", (int)r->element[0]->element[0]->len,
                     r->element[0]->element[0]->str);
        freeReplyObject(r);
    }
    return 0;
}

/* ---- lag ---------------------------------------------------------------------------- */

static int sample_lag(collector *K, char *err, size_t errlen)
{
    lt_collect *c = &K->c;
    int64_t lag = -1, pending = -1, t = lt_now_us();
    if (K->redis) {
        int64_t l, p;
        int rc = ltr_group_lag(K->redis, K->cfg->in_topic, K->cfg->group, &l, &p, err, errlen);
        if (rc < 0) return -1;
        if (rc == 0) {
            pending = p;
            lag = l >= 0 ? l + p : -1;
        }
    } else if (ltk_group_lag(&K->klag, K->cfg->in_topic, K->in_parts, 5000, &lag, err, errlen)) {
        lt_warn("collect", "lag sample skipped: %s", err);
        lag = -1;
    }
    if (c->n_lag == c->lag_cap) {
        size_t cap = c->lag_cap ? c->lag_cap * 2 : 256;
        lt_lag_sample *p = realloc(c->lag, cap * sizeof *p);
        if (!p) return eq_err(err, errlen, "out of memory");
        c->lag = p;
        c->lag_cap = cap;
    }
    c->lag[c->n_lag++] = (lt_lag_sample){t, lag, pending};
    return 0;
}

/* ---- the loop ------------------------------------------------------------------------ */

/* Reads what the manifest has now (opening it once it exists). */
static int poll_manifest(collector *K, char *err, size_t errlen)
{
    if (!K->man_open) {
        if (lt_manifest_open(&K->man, K->cfg->manifest, err, errlen))
            return errno == ENOENT ? 0 : -1;
        K->man_open = true;
    }
    if (lt_manifest_poll(&K->man, &(lt_manifest_cb){on_entry, on_mark}, K, err, errlen) < 0)
        return -1;
    if (K->oom) return eq_err(err, errlen, "out of memory");
    K->c.manifest_started_us = K->man.started_us;
    if (K->man.ended && !K->c.manifest_complete) {
        if ((long)K->c.n != K->man.end_count)
            return eq_err(err, errlen, "%s: \"# end %ld\" but %zu entries", K->cfg->manifest,
                          K->man.end_count, K->c.n);
        K->c.manifest_complete = true;
        if (K->c.seen == (long)K->c.n) K->c.all_seen_us = lt_now_us();
    }
    return 0;
}

static bool complete(const collector *K)
{
    const lt_collect *c = &K->c;
    if (!c->manifest_complete || c->seen < (long)c->n) return false;
    if (!K->cfg->group) return true;
    if (!c->n_lag) return false;
    const lt_lag_sample *s = &c->lag[c->n_lag - 1];
    return s->t_us >= c->all_seen_us && s->lag == 0;
}

static int loop(collector *K, char *err, size_t errlen)
{
    const collect_cfg *cfg = K->cfg;
    lt_collect *c = &K->c;
    int64_t deadline = c->start_us + (int64_t)(cfg->timeout_s * 1e6);
    int64_t next_sample = c->start_us, step = (int64_t)(cfg->sample_s * 1e6);
    for (;;) {
        if (poll_manifest(K, err, errlen)) return -1;
        retry_held(K, false);
        int rc = K->redis ? redis_poll(K, 100, err, errlen) : kafka_poll(K, 100, err, errlen);
        if (rc) return -1;
        if (K->oom) return eq_err(err, errlen, "out of memory");
        int64_t now = lt_now_us();
        if (cfg->group && now >= next_sample) {
            if (sample_lag(K, err, errlen)) return -1;
            next_sample += step;
            if (next_sample < now) next_sample = now + step;
        }
        if (complete(K)) {
            c->stopped = "complete";
            return 0;
        }
        if (lt_stop) {
            c->stopped = "signal";
            return 0;
        }
        if (now >= deadline) {
            c->stopped = "timeout";
            return 0;
        }
    }
}

static int open_brokers(collector *K, char *err, size_t errlen)
{
    const collect_cfg *cfg = K->cfg;
    if (cfg->redis_url) {
        K->redis = ltr_connect(cfg->redis_url, err, errlen);
        return K->redis ? redis_start(K, err, errlen) : -1;
    }
    if (ltk_open(&K->kout, RD_KAFKA_CONSUMER, cfg->brokers, NULL, &cfg->kafka_config, NULL, NULL,
                 err, errlen) ||
        ltk_ping(&K->kout, 10000, err, errlen))
        return -1;
    if (cfg->group && ltk_open(&K->klag, RD_KAFKA_CONSUMER, cfg->brokers, cfg->group,
                               &cfg->kafka_config, NULL, NULL, err, errlen))
        return -1;
    return kafka_assign(K, err, errlen);
}

/* Adds the marks of --marks (lines "NAME UNIX_US"; '#' comments). A
 * missing file is no error: the events it would list did not happen. */
static int read_marks(collector *K, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0
                               : eq_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
    char line[256], name[64];
    long long us;
    int rc = 0, no = 0;
    while (fgets(line, sizeof line, f)) {
        no++;
        if (line[0] == '#' || line[0] == '\n') continue;
        if (sscanf(line, "%63s %lld", name, &us) != 2) {
            rc = eq_err(err, errlen, "%s:%d: expected NAME UNIX_US", path, no);
            break;
        }
        on_mark(K, name, us);
    }
    fclose(f);
    return rc;
}

static int cmp_mark(const void *a, const void *b)
{
    int64_t x = ((const lt_mark *)a)->us, y = ((const lt_mark *)b)->us;
    return (x > y) - (x < y);
}

static void free_collector(collector *K)
{
    ltk_close(&K->kout);
    ltk_close(&K->klag);
    if (K->redis) redisFree(K->redis);
    if (K->man_open) lt_manifest_close_reader(&K->man);
    for (size_t i = 0; i < K->n_pend; i++)
        free(K->pend[i].key);
    free(K->pend);
    lt_map_free(&K->by_id);
    lt_map_free(&K->by_pos);
    lt_map_free(&K->c.reasons);
    for (size_t i = 0; i < K->c.n; i++)
        free(K->c.e[i].ref);
    free(K->c.e);
    free(K->c.ev);
    free(K->c.lag);
    lt_buf_free(&K->id);
}

static int check_cfg(const lt_command *cmd, collect_cfg *cfg)
{
    if (!cfg->brokers == !cfg->redis_url)
        return lt_usage_error(cmd, "give exactly one of --brokers (Kafka) or --redis-url (Redis)");
    if (!cfg->out_topic) return lt_usage_error(cmd, "--out-topic is required");
    if (!cfg->manifest) return lt_usage_error(cmd, "--manifest is required (replay writes it)");
    if (!cfg->report) return lt_usage_error(cmd, "--report is required");
    if (!cfg->group != !cfg->in_topic)
        return lt_usage_error(cmd, "--group and --in-topic go together (the lag of the group "
                                   "on the input)");
    if (strcmp(cfg->start, "beginning") && strcmp(cfg->start, "now"))
        return lt_usage_error(cmd, "--start: expected beginning or now, got '%s'", cfg->start);
    return 0;
}

int cmd_collect(int argc, char **argv)
{
    collect_cfg cfg = {.timeout_s = 300, .sample_s = 1, .start = "beginning"};
    lt_flag flags[] = {
        {"brokers", LT_STR, &cfg.brokers, 0, 0, "Kafka bootstrap servers HOST:PORT,..."},
        {"redis-url", LT_STR, &cfg.redis_url, 0, 0, "Redis: redis://[user:pass@]HOST:PORT[/DB]"},
        {"out-topic", LT_STR, &cfg.out_topic, 0, 0, "the worker's output topic / stream"},
        {"out-stream", LT_STR, &cfg.out_topic, 0, 0, "same as --out-topic"},
        {"dlq-topic", LT_STR, &cfg.dlq_topic, 0, 0, "the worker's dead-letter topic / stream"},
        {"dlq-stream", LT_STR, &cfg.dlq_topic, 0, 0, "same as --dlq-topic"},
        {"in-topic", LT_STR, &cfg.in_topic, 0, 0, "the input topic / stream (for the lag)"},
        {"in-stream", LT_STR, &cfg.in_topic, 0, 0, "same as --in-topic"},
        {"group", LT_STR, &cfg.group, 0, 0, "the workers' consumer group (for the lag)"},
        {"manifest", LT_STR, &cfg.manifest, 0, 0,
         "replay's manifest: the expected ids (may still be growing)"},
        {"start", LT_STR, &cfg.start, 0, 0,
         "read outputs from the beginning | now (ignore older records)"},
        {"report", LT_STR, &cfg.report, 0, 0, "the JSON report to write"},
        {"plot", LT_STR, &cfg.plot, 0, 0, "the SVG figure to write (gnuplot)"},
        {"title", LT_STR, &cfg.title, 0, 0, "a title for the report and the figure"},
        {"marks", LT_STR, &cfg.marks, 0, 0,
         "a file of extra marks, lines NAME UNIX_US (e.g. a worker killed), read at the end"},
        {"timeout", LT_DBL, &cfg.timeout_s, 0.1, 1e6, "stop after this many seconds"},
        {"sample-s", LT_DBL, &cfg.sample_s, 0.1, 3600, "seconds between lag samples"},
        {"kafka-config", LT_LIST, &cfg.kafka_config, 0, 0, "KEY=VALUE librdkafka setting"},
    };
    const lt_command cmd = {
        "collect",
        "(--brokers B | --redis-url U) --out-topic O [--dlq-topic D] [--group G --in-topic I] "
        "--manifest FILE --report FILE.json [--plot FILE.svg]",
        "Consumes the worker's outputs and dead letters, matches them with the ids of a replay "
        "manifest, samples the group's lag on the input from the broker, and writes a JSON "
        "report (throughput over time, end-to-end latency p50/p95/p99/max, missing and "
        "duplicate ids, dead letters by reason, lag over time) and an SVG plot. Stops when "
        "every expected id was seen and the lag is 0, or at --timeout. Exit 0: nothing "
        "missing; 1: ids missing; 3: broker or file error."};
    int prc = lt_parse_flags(&cmd, flags, (int)(sizeof flags / sizeof *flags), argc, argv);
    if (prc) return prc == 1 ? 0 : prc;
    if ((prc = check_cfg(&cmd, &cfg))) return prc;

    lt_install_signals();
    collector K;
    memset(&K, 0, sizeof K);
    K.cfg = &cfg;
    K.man.fd = -1;
    lt_collect *c = &K.c;
    c->broker = cfg.brokers ? "kafka" : "redis";
    c->output = cfg.out_topic;
    c->dead_letter = cfg.dlq_topic;
    c->input = cfg.in_topic;
    c->group = cfg.group;
    c->manifest_path = cfg.manifest;
    c->title = cfg.title;
    c->start_us = lt_now_us();
    c->stopped = "error";
    char err[LT_ERRLEN];
    int rc = open_brokers(&K, err, sizeof err);
    if (!rc) rc = loop(&K, err, sizeof err);
    retry_held(&K, true);
    c->end_us = lt_now_us();
    if (!rc && !K.man_open) {
        eq_err(err, sizeof err, "the manifest %s was never created (is replay running?)",
               cfg.manifest);
        lt_warn("collect", "%s", err);
    }
    if (!rc && cfg.marks) rc = read_marks(&K, cfg.marks, err, sizeof err);
    qsort(c->marks, (size_t)c->n_marks, sizeof *c->marks, cmp_mark);
    if (rc) {
        snprintf(c->error, sizeof c->error, "%s", err);
        lt_warn("collect", "%s", err);
    }
    char rerr[LT_ERRLEN];
    int wrc = lt_report_write(c, cfg.report, rerr, sizeof rerr);
    if (wrc) lt_warn("collect", "%s", rerr);
    if (!wrc && cfg.plot && lt_report_plot(c, cfg.plot, rerr, sizeof rerr) < 0)
        lt_warn("collect", "plot: %s", rerr);
    long missing = (long)c->n - c->seen;
    fprintf(stderr,
            "%s collect: %s: %zu expected, %ld seen (%ld outputs, %ld dead letters), %ld missing, "
            "%ld duplicates, %ld unexpected\n",
            LT_PROG, c->stopped, c->n, c->seen, c->outputs, c->dead_letters, missing, c->duplicates,
            c->unexpected);
    free_collector(&K);
    if (rc || wrc) return 3;
    return missing > 0 || !c->manifest_complete ? 1 : 0;
}
