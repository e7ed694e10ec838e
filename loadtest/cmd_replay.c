/* cmd_replay.c - `embedq-loadtest replay`: sends messages to a Kafka topic
 * or a Redis stream at a rate profile, from a dump (lt_dump.h) or from a
 * corpus of documents (lt_corpus.h) cut into input messages
 * (schemas/README.md) with unique ids.
 *
 *   source (dump record | corpus chunk) -> out_msg -> id (msg_decode, as the
 *   worker will read it) -> wait for the profile's due time -> send
 *   -> accepted (Kafka delivery report / XADD reply) -> manifest line
 *
 * Send time: every Kafka record carries the header LT_SENT_HEADER (us since
 * the epoch) which the worker copies to its output and dead letter; Redis
 * outputs carry nothing of the input, so collect takes the send time from
 * the manifest (matched by id). Either way the manifest has it.
 *
 * Prints one JSON line on stdout: {"sent":N,"delivered":D,"failed":F,
 * "skipped":S,"seconds":T,"rate":R,...}; exit 0 when every message sent was
 * accepted, 1 otherwise (or on an error, with a message).
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "lt.h"
#include "lt_corpus.h"
#include "lt_dump.h"
#include "lt_kafka.h"
#include "lt_manifest.h"
#include "lt_profile.h"
#include "lt_redis.h"
#include "msg.h"

typedef struct {
    const char *brokers, *redis_url, *topic, *dump, *corpus_ext, *format, *redis_shape;
    const char *manifest, *id_prefix, *profile, *key;
    lt_list corpus;
    double rate, rate_end, ramp_s, burst_at_s, burst_s, burst_factor, time_scale;
    double duration_s, timeout_s;
    long count, chunk_bytes, poison_every;
    bool keep_partitions;
    lt_list kafka_config;
} replay_cfg;

/* One message to send, whatever its source. Pointers stay valid until the
 * next call of next_msg. */
typedef struct {
    const uint8_t *value; /* Kafka value / Redis `data` field (NULL: Kafka null value) */
    size_t value_len;
    const uint8_t *key; /* Kafka key; NULL: none */
    size_t key_len;
    const lt_field *headers; /* Kafka headers to copy */
    int n_headers;
    const lt_field *fields; /* Redis: the entry's fields as they are (value unused) */
    int n_fields;
    int32_t partition; /* Kafka: -1 = the partitioner's choice */
    int64_t ts_ms;     /* original timestamp (-1: none) */
} out_msg;

typedef struct {
    replay_cfg *cfg;
    lt_profile prof;
    lt_broker_kind target;
    /* sources */
    lt_dump_reader *dump;
    lt_dump_header dump_hdr;
    lt_corpus corpus;
    lt_buf value, key, scratch; /* corpus message, key; dump conversions */
    lt_field field_buf[4];
    char id_prefix[64];
    /* brokers */
    ltk_client kafka;
    redisContext *redis;
    lt_manifest_writer man;
    bool have_manifest;
    /* counts */
    long sent, delivered, failed, skipped;
    char first_failure[256];
    int64_t first_us, last_us;
} replay;

/* Per-record opaque of a Kafka send, freed by the delivery report. */
typedef struct {
    int64_t sent_us;
    char kind;
    size_t id_len;
    char id[];
} dr_ctx;

/* ---- ids ------------------------------------------------------------------------- */

/* The id the worker will read from m: *kind 's', 'i', or '-' with the
 * decoder's error code as the text (the message will be dead-lettered). */
static void message_id(const replay *R, const out_msg *m, char *kind, lt_buf *id)
{
    msg_input in;
    msg_error e;
    int rc;
    id->len = 0;
    if (R->target == LT_BROKER_REDIS && m->fields) {
        const char *names[64], *values[64];
        size_t nl[64], vl[64];
        int n = m->n_fields < 64 ? m->n_fields : 64;
        for (int i = 0; i < n; i++) {
            names[i] = m->fields[i].name, nl[i] = m->fields[i].name_len;
            values[i] = (const char *)m->fields[i].value, vl[i] = m->fields[i].value_len;
            if (!values[i]) values[i] = "";
        }
        rc = msg_decode_fields(names, nl, values, vl, n, NULL, &in, &e);
    } else {
        rc = msg_decode(m->value ? (const void *)m->value : "", m->value_len, NULL, &in, &e);
    }
    if (rc) {
        const char *code = msg_code_name(e.code);
        *kind = '-';
        lt_buf_add(id, code, strlen(code));
        return;
    }
    *kind = in.id_kind == MSG_ID_STR ? 's' : 'i';
    lt_buf_add(id, in.id, in.id_len);
    msg_input_free(&in);
}

/* ---- corpus messages -------------------------------------------------------------- */

static int pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

/* Message i of the corpus: {"id": PREFIX+i, "text": chunk} in JSON or
 * msgpack, or the plain Redis fields; every poison_every-th message is a
 * poison (malformed / empty_text / missing_text in turn). */
static int corpus_msg(replay *R, long i, out_msg *m, char *err, size_t errlen)
{
    const replay_cfg *cfg = R->cfg;
    const lt_chunk *ch = &R->corpus.chunks[(size_t)i % R->corpus.n];
    char id[96];
    int idn = snprintf(id, sizeof id, "%s%ld", R->id_prefix, i);
    long pe = cfg->poison_every;
    int poison =
        pe && i % pe == pe - 1 ? (int)(i / pe % 3) + 1 : 0; /* 1 malformed, 2 empty, 3 missing */
    const char *text = poison == 2 ? "" : ch->text;
    size_t text_len = poison == 2 ? 0 : ch->len;
    R->value.len = R->key.len = 0;
    memset(m, 0, sizeof *m);
    m->partition = -1;
    m->ts_ms = -1;
    if (R->target == LT_BROKER_REDIS && !strcmp(cfg->redis_shape, "fields")) {
        int n = 0;
        if (poison == 1) {
            R->field_buf[n++] = (lt_field){"data", 4, (const uint8_t *)"{not json", 9};
        } else {
            if (lt_buf_add(&R->key, id, (size_t)idn)) return eq_err(err, errlen, "out of memory");
            R->field_buf[n++] = (lt_field){"id", 2, R->key.data, (size_t)idn};
            if (poison != 3)
                R->field_buf[n++] = (lt_field){"text", 4, (const uint8_t *)text, text_len};
        }
        m->fields = R->field_buf;
        m->n_fields = n;
        return 0;
    }
    int rc = 0;
    if (!strcmp(cfg->format, "json")) {
        rc = lt_buf_addf(&R->value, "{\"id\":") || lt_buf_json_string(&R->value, id, (size_t)idn);
        if (poison == 1)
            rc = rc || lt_buf_addf(&R->value, ",\"text\":\"");
        else if (poison != 3)
            rc = rc || lt_buf_addf(&R->value, ",\"text\":") ||
                 lt_buf_json_string(&R->value, text, text_len) || lt_buf_add(&R->value, "}", 1);
        else
            rc = rc || lt_buf_add(&R->value, "}", 1);
    } else {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        rc = msgpack_pack_map(&pk, poison == 3 ? 1 : 2) || pack_str(&pk, "id", 2) ||
             pack_str(&pk, id, (size_t)idn);
        if (poison != 1 && poison != 3)
            rc = rc || pack_str(&pk, "text", 4) || pack_str(&pk, text, text_len);
        /* poison 1: the map promises 2 entries and has 1: malformed_msgpack */
        rc = rc || lt_buf_add(&R->value, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
    }
    if (rc) return eq_err(err, errlen, "out of memory");
    m->value = R->value.data;
    m->value_len = R->value.len;
    if (R->target == LT_BROKER_REDIS) {
        R->field_buf[0] = (lt_field){"data", 4, m->value, m->value_len};
        m->fields = R->field_buf;
        m->n_fields = 1;
    } else if (strcmp(cfg->key, "none")) {
        if (lt_buf_add(&R->key, id, (size_t)idn)) return eq_err(err, errlen, "out of memory");
        m->key = R->key.data;
        m->key_len = (size_t)idn;
    }
    return 0;
}

/* ---- dump messages ---------------------------------------------------------------- */

/* A Redis entry's plain fields (id, text, instruction, dimensions) as a
 * JSON input message, for a Kafka target. */
static int fields_to_json(lt_buf *b, const lt_record *r)
{
    static const char *const keys[] = {"id", "text", "instruction", "dimensions"};
    int rc = lt_buf_add(b, "{", 1), first = 1;
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < r->n_fields; i++) {
            const lt_field *f = &r->fields[i];
            if (f->name_len != strlen(keys[k]) || memcmp(f->name, keys[k], f->name_len)) continue;
            rc = rc || (!first && lt_buf_add(b, ",", 1)) || lt_buf_addf(b, "\"%s\":", keys[k]);
            int64_t v;
            if (k == 3 && !lt_parse_i64((const char *)f->value, f->value_len, &v))
                rc = rc || lt_buf_addf(b, "%" PRId64, v);
            else
                rc = rc || lt_buf_json_string(b, f->value, f->value_len);
            first = 0;
            break;
        }
    return rc || lt_buf_add(b, "}", 1);
}

/* The next dump record as a message for the target. 1, 0 at the end, -1. */
static int dump_msg(replay *R, out_msg *m, char *err, size_t errlen)
{
    lt_record r;
    for (;;) {
        int rc = lt_dump_next(R->dump, &r, err, errlen);
        if (rc <= 0) return rc;
        memset(m, 0, sizeof *m);
        m->partition = -1;
        m->ts_ms = r.timestamp_ms;
        if (R->dump_hdr.broker == LT_BROKER_KAFKA && R->target == LT_BROKER_KAFKA) {
            m->value = r.value, m->value_len = r.value_len;
            m->key = r.key, m->key_len = r.key_len;
            m->headers = r.fields, m->n_headers = r.n_fields;
            if (R->cfg->keep_partitions) m->partition = r.partition;
        } else if (R->dump_hdr.broker == LT_BROKER_KAFKA) { /* Kafka -> Redis: data = value */
            if (!r.value) {
                R->skipped++; /* a null value has no Redis form */
                continue;
            }
            m->value = r.value, m->value_len = r.value_len;
            R->field_buf[0] = (lt_field){"data", 4, r.value, r.value_len};
            m->fields = R->field_buf, m->n_fields = 1;
        } else if (R->target == LT_BROKER_REDIS) { /* Redis -> Redis: the fields as they are */
            m->fields = r.fields, m->n_fields = r.n_fields;
        } else { /* Redis -> Kafka: `data`, else the plain fields as JSON */
            const lt_field *data = NULL;
            for (int i = 0; i < r.n_fields && !data; i++)
                if (r.fields[i].name_len == 4 && !memcmp(r.fields[i].name, "data", 4))
                    data = &r.fields[i];
            R->scratch.len = 0;
            if (data) {
                m->value = data->value, m->value_len = data->value_len;
            } else {
                if (fields_to_json(&R->scratch, &r)) return eq_err(err, errlen, "out of memory");
                m->value = R->scratch.data, m->value_len = R->scratch.len;
            }
        }
        return 1;
    }
}

/* ---- sending ---------------------------------------------------------------------- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    ltk_client *c = opaque;
    replay *R = c->user;
    dr_ctx *d = m->_private;
    if (m->err) {
        R->failed++;
        if (!R->first_failure[0])
            snprintf(R->first_failure, sizeof R->first_failure, "%s", rd_kafka_err2str(m->err));
    } else {
        char pos[48];
        snprintf(pos, sizeof pos, "%d:%" PRId64, (int)m->partition, m->offset);
        R->delivered++;
        if (R->have_manifest) lt_manifest_add(&R->man, d->sent_us, pos, d->kind, d->id, d->id_len);
    }
    free(d);
}

static int kafka_send(replay *R, const out_msg *m, int64_t sent_us, char kind, const lt_buf *id,
                      char *err, size_t errlen)
{
    dr_ctx *d = malloc(sizeof *d + id->len + 1);
    rd_kafka_headers_t *h = rd_kafka_headers_new((size_t)m->n_headers + 1);
    if (!d || !h) {
        free(d);
        if (h) rd_kafka_headers_destroy(h);
        return eq_err(err, errlen, "out of memory");
    }
    d->sent_us = sent_us;
    d->kind = kind;
    d->id_len = id->len;
    if (id->len) memcpy(d->id, id->data, id->len);
    for (int i = 0; i < m->n_headers; i++) {
        const lt_field *f = &m->headers[i];
        if (f->name_len == strlen(LT_SENT_HEADER) && !memcmp(f->name, LT_SENT_HEADER, f->name_len))
            continue; /* a stamp from an earlier replay */
        rd_kafka_header_add(h, f->name, (ssize_t)f->name_len, f->value, (ssize_t)f->value_len);
    }
    char stamp[24];
    snprintf(stamp, sizeof stamp, "%" PRId64, sent_us);
    rd_kafka_header_add(h, LT_SENT_HEADER, -1, stamp, -1);
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            R->kafka.rk, RD_KAFKA_V_TOPIC(R->cfg->topic),
            RD_KAFKA_V_PARTITION(m->partition >= 0 ? m->partition : RD_KAFKA_PARTITION_UA),
            RD_KAFKA_V_VALUE((void *)m->value, m->value_len), RD_KAFKA_V_KEY(m->key, m->key_len),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(d),
            RD_KAFKA_V_END);
        if (!e) return 0; /* h and d now belong to the message */
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && !lt_stop) {
            rd_kafka_poll(R->kafka.rk, 10);
            continue;
        }
        rd_kafka_headers_destroy(h);
        free(d);
        return eq_err(err, errlen, "producing to %s: %s", R->cfg->topic, rd_kafka_err2str(e));
    }
}

static int redis_send(replay *R, const out_msg *m, int64_t sent_us, char kind, const lt_buf *id,
                      char *err, size_t errlen)
{
    enum { MAXF = 64 };
    const char *argv[3 + 2 * MAXF];
    size_t lens[3 + 2 * MAXF];
    int argc = 0;
    argv[argc] = "XADD", lens[argc++] = 4;
    argv[argc] = R->cfg->topic, lens[argc++] = strlen(R->cfg->topic);
    argv[argc] = "*", lens[argc++] = 1;
    if (m->n_fields > MAXF || m->n_fields < 1) {
        R->skipped++;
        return 0;
    }
    for (int i = 0; i < m->n_fields; i++) {
        argv[argc] = m->fields[i].name, lens[argc++] = m->fields[i].name_len;
        argv[argc] = m->fields[i].value ? (const char *)m->fields[i].value : "";
        lens[argc++] = m->fields[i].value_len;
    }
    redisReply *r = ltr_cmd(R->redis, argc, argv, lens, err, errlen);
    if (!r) return -1;
    if (r->type == REDIS_REPLY_STRING) {
        R->delivered++;
        if (R->have_manifest) lt_manifest_add(&R->man, sent_us, r->str, kind, id->data, id->len);
    } else {
        R->failed++;
    }
    freeReplyObject(r);
    return 0;
}

/* Waits until the wall clock reaches target_us, serving delivery reports. */
static void wait_until(replay *R, int64_t target_us)
{
    for (;;) {
        int64_t left = target_us - lt_now_us();
        if (left <= 0 || lt_stop) return;
        if (R->kafka.rk && left > 2000)
            rd_kafka_poll(R->kafka.rk, (int)((left - 1000) / 1000));
        else
            lt_sleep_us(left);
    }
}

/* ---- the run ---------------------------------------------------------------------- */

static int open_source(replay *R, char *err, size_t errlen)
{
    const replay_cfg *cfg = R->cfg;
    if (cfg->dump) {
        R->dump = lt_dump_open(cfg->dump, &R->dump_hdr, err, errlen);
        return R->dump ? 0 : -1;
    }
    for (int i = 0; i < cfg->corpus.n; i++)
        if (lt_corpus_add(&R->corpus, cfg->corpus.items[i], cfg->corpus_ext,
                          (size_t)cfg->chunk_bytes, err, errlen))
            return -1;
    if (!R->corpus.n)
        return eq_err(err, errlen, "the corpus has no text (extensions: %s)",
                      cfg->corpus_ext[0] ? cfg->corpus_ext : "any");
    if (R->corpus.skipped_invalid)
        lt_warn("replay", "%zu corpus chunks are not valid UTF-8 and were skipped",
                R->corpus.skipped_invalid);
    return 0;
}

static int open_target(replay *R, char *err, size_t errlen)
{
    const replay_cfg *cfg = R->cfg;
    if (R->target == LT_BROKER_REDIS) {
        R->redis = ltr_connect(cfg->redis_url, err, errlen);
        return R->redis ? 0 : -1;
    }
    if (ltk_open(&R->kafka, RD_KAFKA_PRODUCER, cfg->brokers, NULL, &cfg->kafka_config, on_delivery,
                 R, err, errlen))
        return -1;
    return ltk_ping(&R->kafka, (int)(cfg->timeout_s * 1000), err, errlen);
}

/* Seconds after the first send at which message i (from m) is due. */
static double due_s(replay *R, long i, const out_msg *m, int64_t *ts0, double *prev)
{
    double t;
    if (R->prof.kind == LT_PROF_ORIGINAL) {
        if (*ts0 < 0 && m->ts_ms >= 0) *ts0 = m->ts_ms;
        t = m->ts_ms >= 0 && *ts0 >= 0 ? (double)(m->ts_ms - *ts0) / 1000 * R->prof.time_scale
                                       : *prev;
    } else {
        t = lt_profile_time_of(&R->prof, (double)i);
    }
    if (t < *prev) t = *prev; /* partitions interleave: timestamps go back a little */
    *prev = t;
    return t;
}

static int run(replay *R, char *err, size_t errlen)
{
    const replay_cfg *cfg = R->cfg;
    lt_buf id = {0};
    int64_t t0 = 0, ts0 = -1;
    double prev = 0;
    int rc = 0;
    for (long i = 0; !lt_stop && (!cfg->count || i < cfg->count); i++) {
        out_msg m;
        if (R->dump) {
            rc = dump_msg(R, &m, err, errlen);
            if (rc <= 0) break;
            rc = 0;
        } else if ((rc = corpus_msg(R, i, &m, err, errlen))) {
            break;
        }
        double at = due_s(R, i, &m, &ts0, &prev);
        if ((cfg->duration_s > 0 && at >= cfg->duration_s) || !isfinite(at)) break;
        char kind;
        message_id(R, &m, &kind, &id);
        if (i == 0) {
            t0 = lt_now_us();
            R->first_us = t0;
            if (R->have_manifest) {
                const char *names[2];
                double marks[2];
                lt_manifest_started(&R->man, t0);
                int nm = lt_profile_marks(&R->prof, names, marks);
                for (int k = 0; k < nm; k++)
                    lt_manifest_mark(&R->man, names[k], t0 + (int64_t)(marks[k] * 1e6));
            }
        }
        wait_until(R, t0 + (int64_t)(at * 1e6));
        if (lt_stop) break;
        int64_t now = lt_now_us();
        rc = R->target == LT_BROKER_KAFKA ? kafka_send(R, &m, now, kind, &id, err, errlen)
                                          : redis_send(R, &m, now, kind, &id, err, errlen);
        if (rc) break;
        R->sent++;
        R->last_us = now;
        if (R->kafka.rk) rd_kafka_poll(R->kafka.rk, 0);
        if (R->have_manifest && (i & 63) == 0) lt_manifest_flush(&R->man);
    }
    lt_buf_free(&id);
    return rc;
}

/* Waits for Kafka's outstanding deliveries (bounded). */
static void finish_kafka(replay *R)
{
    int64_t deadline = lt_now_us() + 60 * 1000000LL;
    while (rd_kafka_outq_len(R->kafka.rk) > 0 && lt_now_us() < deadline)
        rd_kafka_flush(R->kafka.rk, 200);
    int left = rd_kafka_outq_len(R->kafka.rk);
    if (left > 0) {
        lt_warn("replay", "%d records still undelivered after 60 s: counted as failed", left);
        rd_kafka_purge(R->kafka.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(R->kafka.rk, 1000); /* serves the purged reports */
    }
}

static int check_cfg(const lt_command *cmd, replay_cfg *cfg, lt_profile *p)
{
    char err[LT_ERRLEN];
    if (!cfg->brokers == !cfg->redis_url)
        return lt_usage_error(cmd, "give exactly one of --brokers (Kafka) or --redis-url (Redis)");
    if (!cfg->topic) return lt_usage_error(cmd, "--topic is required");
    if (!cfg->dump == !cfg->corpus.n)
        return lt_usage_error(cmd, "give exactly one source: --dump FILE or --corpus PATH");
    if (strcmp(cfg->format, "json") && strcmp(cfg->format, "msgpack"))
        return lt_usage_error(cmd, "--format: expected json or msgpack, got '%s'", cfg->format);
    if (strcmp(cfg->redis_shape, "data") && strcmp(cfg->redis_shape, "fields"))
        return lt_usage_error(cmd, "--redis-shape: expected data or fields, got '%s'",
                              cfg->redis_shape);
    if (strcmp(cfg->key, "id") && strcmp(cfg->key, "none"))
        return lt_usage_error(cmd, "--key: expected id or none, got '%s'", cfg->key);
    if (lt_profile_kind_parse(cfg->profile, &p->kind))
        return lt_usage_error(
            cmd, "--profile: expected constant, ramp, burst or original, got '%s'", cfg->profile);
    if (p->kind == LT_PROF_ORIGINAL && !cfg->dump)
        return lt_usage_error(cmd, "--profile original needs --dump (the timing is the dump's)");
    if (cfg->corpus.n && !cfg->count && cfg->duration_s <= 0)
        return lt_usage_error(cmd, "a corpus needs --count or --duration (it is cycled)");
    if (cfg->id_prefix && strlen(cfg->id_prefix) > 40)
        return lt_usage_error(cmd, "--id-prefix: at most 40 bytes");
    p->rate = cfg->rate;
    p->rate_end = cfg->rate_end;
    p->ramp_s = cfg->ramp_s;
    p->burst_at_s = cfg->burst_at_s;
    p->burst_s = cfg->burst_s;
    p->burst_factor = cfg->burst_factor;
    p->time_scale = cfg->time_scale;
    if (lt_profile_check(p, err, sizeof err)) return lt_usage_error(cmd, "%s", err);
    return 0;
}

static void print_summary(const replay *R)
{
    double secs = R->sent > 1 ? lt_us_to_s(R->last_us - R->first_us) : 0;
    printf("{\"broker\":\"%s\",\"topic\":", lt_broker_name(R->target));
    lt_json_string(stdout, R->cfg->topic, strlen(R->cfg->topic));
    printf(",\"profile\":\"%s\",\"sent\":%ld,\"delivered\":%ld,\"failed\":%ld,\"skipped\":%ld,"
           "\"seconds\":%.3f,\"rate\":%.1f,\"first_sent_us\":%" PRId64 ",\"last_sent_us\":%" PRId64,
           lt_profile_kind_name(R->prof.kind), R->sent, R->delivered, R->failed, R->skipped, secs,
           secs > 0 ? (double)(R->sent - 1) / secs : 0.0, R->first_us, R->last_us);
    if (R->first_failure[0]) {
        printf(",\"first_failure\":");
        lt_json_string(stdout, R->first_failure, strlen(R->first_failure));
    }
    printf("}\n");
    fflush(stdout);
    fprintf(stderr,
            "%s replay: sent %ld (%ld accepted, %ld failed, %ld skipped) in %.1f s: %.1f "
            "msg/s\n",
            LT_PROG, R->sent, R->delivered, R->failed, R->skipped, secs,
            secs > 0 ? (double)(R->sent - 1) / secs : 0.0);
}

int cmd_replay(int argc, char **argv)
{
    replay_cfg cfg = {.format = "json",
                      .redis_shape = "data",
                      .profile = "constant",
                      .corpus_ext = "md,txt",
                      .key = "id",
                      .rate = 100,
                      .rate_end = 0,
                      .burst_factor = 10,
                      .time_scale = 1,
                      .timeout_s = 10,
                      .chunk_bytes = 1000};
    lt_flag flags[] = {
        {"brokers", LT_STR, &cfg.brokers, 0, 0, "Kafka bootstrap servers HOST:PORT,..."},
        {"redis-url", LT_STR, &cfg.redis_url, 0, 0, "Redis: redis://[user:pass@]HOST:PORT[/DB]"},
        {"topic", LT_STR, &cfg.topic, 0, 0, "the Kafka topic or Redis stream to send to"},
        {"stream", LT_STR, &cfg.topic, 0, 0, "same as --topic"},
        {"dump", LT_STR, &cfg.dump, 0, 0, "source: a dump written by `record`"},
        {"corpus", LT_LIST, &cfg.corpus, 0, 0, "source: a text file or a directory of them"},
        {"corpus-ext", LT_STR, &cfg.corpus_ext, 0, 0,
         "file extensions taken from corpus directories (comma list; \"\": all)"},
        {"chunk-bytes", LT_INT, &cfg.chunk_bytes, 16, 1 << 20, "corpus: the longest text chunk"},
        {"format", LT_STR, &cfg.format, 0, 0, "corpus: json | msgpack input messages"},
        {"redis-shape", LT_STR, &cfg.redis_shape, 0, 0,
         "corpus to Redis: data (the message in field `data`) | fields (plain id/text fields)"},
        {"key", LT_STR, &cfg.key, 0, 0, "corpus to Kafka: record key = id | none"},
        {"id-prefix", LT_STR, &cfg.id_prefix, 0, 0,
         "corpus: ids are PREFIX + message number (default: lt<unix time>-)"},
        {"poison-every", LT_INT, &cfg.poison_every, 0, 1e9,
         "corpus: every Nth message is invalid (malformed, empty_text, missing_text in turn)"},
        {"count", LT_INT, &cfg.count, 0, 1e12, "send at most this many (0: no limit)"},
        {"duration", LT_DBL, &cfg.duration_s, 0, 1e7,
         "stop sending after this many seconds (0: no limit)"},
        {"profile", LT_STR, &cfg.profile, 0, 0, "constant | ramp | burst | original"},
        {"rate", LT_DBL, &cfg.rate, 0, 1e6, "messages/s (constant; ramp start; burst base)"},
        {"rate-end", LT_DBL, &cfg.rate_end, 0, 1e6, "ramp: the final rate"},
        {"ramp-s", LT_DBL, &cfg.ramp_s, 0, 1e7, "ramp: seconds from --rate to --rate-end"},
        {"burst-at", LT_DBL, &cfg.burst_at_s, 0, 1e7, "burst: seconds after the start"},
        {"burst-s", LT_DBL, &cfg.burst_s, 0, 1e7, "burst: its length in seconds"},
        {"burst-factor", LT_DBL, &cfg.burst_factor, 1, 1e4, "burst: the rate multiplier"},
        {"time-scale", LT_DBL, &cfg.time_scale, 0, 1e4,
         "original: gaps between the dump's timestamps are multiplied by this"},
        {"keep-partitions", LT_BOOL, &cfg.keep_partitions, 0, 0,
         "Kafka dump to Kafka: send each record to its recorded partition"},
        {"manifest", LT_STR, &cfg.manifest, 0, 0, "write the manifest of accepted messages here"},
        {"kafka-config", LT_LIST, &cfg.kafka_config, 0, 0, "KEY=VALUE librdkafka setting"},
        {"timeout", LT_DBL, &cfg.timeout_s, 0.1, 3600, "seconds to wait for the broker at start"},
    };
    const lt_command cmd = {
        "replay",
        "(--brokers B | --redis-url U) --topic T (--dump FILE | --corpus PATH) [--profile P "
        "...] [--manifest FILE]",
        "Sends messages to a Kafka topic or Redis stream at a rate profile (constant, ramp, "
        "burst, or the dump's original timing scaled), from a dump or from a corpus of documents "
        "cut into input messages with unique ids. Kafka records get the header " LT_SENT_HEADER
        " (send time, us since the epoch). Writes the manifest of accepted messages (send time, "
        "position, id) for `collect`, and prints a JSON summary (sent, rate achieved)."};
    int prc = lt_parse_flags(&cmd, flags, (int)(sizeof flags / sizeof *flags), argc, argv);
    if (prc) return prc == 1 ? 0 : prc;
    replay R;
    memset(&R, 0, sizeof R);
    R.cfg = &cfg;
    if ((prc = check_cfg(&cmd, &cfg, &R.prof))) return prc;
    R.target = cfg.brokers ? LT_BROKER_KAFKA : LT_BROKER_REDIS;
    snprintf(R.id_prefix, sizeof R.id_prefix, "%s", cfg.id_prefix ? cfg.id_prefix : "");
    if (!cfg.id_prefix)
        snprintf(R.id_prefix, sizeof R.id_prefix, "lt%" PRId64 "-", lt_now_us() / 1000000);

    lt_install_signals();
    char err[LT_ERRLEN], cerr[LT_ERRLEN];
    int rc = open_source(&R, err, sizeof err);
    if (!rc) rc = open_target(&R, err, sizeof err);
    if (!rc && cfg.manifest) {
        rc = lt_manifest_create(&R.man, cfg.manifest, lt_broker_name(R.target), cfg.topic, err,
                                sizeof err);
        R.have_manifest = !rc;
    }
    if (!rc) rc = run(&R, err, sizeof err);
    if (R.kafka.rk) finish_kafka(&R);
    if (R.have_manifest) {
        lt_manifest_mark(&R.man, "end", R.last_us ? R.last_us : lt_now_us());
        if (lt_manifest_close(&R.man, cerr, sizeof cerr) && !rc) {
            snprintf(err, sizeof err, "%s", cerr);
            rc = -1;
        }
    }
    if (!rc || R.sent) print_summary(&R);
    if (rc) lt_warn("replay", "%s", err);
    ltk_close(&R.kafka);
    if (R.redis) redisFree(R.redis);
    lt_dump_close(R.dump);
    lt_corpus_free(&R.corpus);
    lt_buf_free(&R.value);
    lt_buf_free(&R.key);
    lt_buf_free(&R.scratch);
    if (rc) return 1;
    return R.failed || R.delivered < R.sent ? 1 : 0;
}
