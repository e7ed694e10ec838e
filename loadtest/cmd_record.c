/* cmd_record.c - `embedq-loadtest record`: a Kafka topic (every partition)
 * or a Redis stream into a dump file (lt_dump.h).
 *
 *   --from beginning (default) | now
 *   until the end offsets / last entry id seen at start (default), or for
 *   --duration seconds (records that arrive meanwhile included)
 *
 * Kafka: one consumer that assigns every partition (no group, nothing
 * committed), keeps key, value, headers, timestamp, partition and offset.
 * Redis: XRANGE pages up to the last id seen at start, or XREAD BLOCK for a
 * duration; keeps the entry id and every field in order.
 * Prints {"records":N,"bytes":B,"seconds":S} on stdout.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lt.h"
#include "lt_dump.h"
#include "lt_kafka.h"
#include "lt_redis.h"

typedef struct {
    const char *brokers, *redis_url, *topic, *out, *from;
    double duration_s, timeout_s;
    long max_records;
    lt_list kafka_config;
} record_cfg;

typedef struct {
    long records;
    uint64_t bytes;
} record_stats;

/* ---- Kafka ------------------------------------------------------------------------ */

typedef struct {
    int64_t start, end; /* offsets: record [start, end) when until-end */
    bool done;
} part_range;

static int kafka_write(lt_dump_writer *w, const rd_kafka_message_t *m, record_stats *st, char *err,
                       size_t errlen)
{
    lt_field fields[64];
    lt_record r = {0};
    rd_kafka_timestamp_type_t tt;
    r.timestamp_ms = rd_kafka_message_timestamp(m, &tt);
    r.ts_type = tt == RD_KAFKA_TIMESTAMP_CREATE_TIME       ? "create"
                : tt == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? "log_append"
                                                           : "none";
    r.partition = m->partition;
    r.offset = m->offset;
    r.key = m->key;
    r.key_len = m->key_len;
    r.value = m->payload;
    r.value_len = m->len;
    rd_kafka_headers_t *h = NULL;
    if (!rd_kafka_message_headers(m, &h)) {
        const char *name;
        const void *val;
        size_t size;
        for (size_t i = 0; r.n_fields < 64 && !rd_kafka_header_get_all(h, i, &name, &val, &size);
             i++)
            fields[r.n_fields++] = (lt_field){name, strlen(name), val, size};
        if (rd_kafka_header_cnt(h) > 64)
            lt_warn("record", "record %d:%" PRId64 " has more than 64 headers: the rest is dropped",
                    (int)m->partition, m->offset);
    }
    r.fields = fields;
    st->records++;
    st->bytes += m->len + m->key_len;
    return lt_dump_write(w, &r, err, errlen);
}

static int record_kafka(const record_cfg *cfg, lt_dump_writer *w, record_stats *st, char *err,
                        size_t errlen)
{
    ltk_client c;
    int timeout_ms = (int)(cfg->timeout_s * 1000);
    if (ltk_open(&c, RD_KAFKA_CONSUMER, cfg->brokers, NULL, &cfg->kafka_config, NULL, NULL, err,
                 errlen))
        return -1;
    int rc = -1, n = ltk_partitions(&c, cfg->topic, timeout_ms, err, errlen);
    part_range *pr = n > 0 ? calloc((size_t)n, sizeof *pr) : NULL;
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
    if (n > 0 && !pr) eq_err(err, errlen, "out of memory");
    if (!pr) goto out;
    bool from_now = !strcmp(cfg->from, "now"), until_end = cfg->duration_s <= 0;
    int pending = 0;
    for (int p = 0; p < n; p++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(c.rk, cfg->topic, p, &lo, &hi, timeout_ms);
        if (e) {
            eq_err(err, errlen, "watermarks of %s [%d]: %s", cfg->topic, p, rd_kafka_err2str(e));
            goto out;
        }
        pr[p].start = from_now ? hi : lo;
        pr[p].end = hi;
        pr[p].done = until_end && pr[p].start >= pr[p].end;
        pending += !pr[p].done;
        rd_kafka_topic_partition_list_add(tpl, cfg->topic, p)->offset = pr[p].start;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(c.rk, tpl);
    if (e) {
        eq_err(err, errlen, "assigning %s: %s", cfg->topic, rd_kafka_err2str(e));
        goto out;
    }
    int64_t deadline = lt_now_us() + (int64_t)(cfg->duration_s * 1e6);
    int64_t next_pos_check = 0;
    rc = 0;
    while (!lt_stop && (until_end ? pending > 0 : lt_now_us() < deadline) &&
           (!cfg->max_records || st->records < cfg->max_records)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c.rk, 100);
        if (m) {
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    lt_warn("record", "consumer: %s", rd_kafka_message_errstr(m));
            } else if (m->partition >= 0 && m->partition < n &&
                       (!until_end || m->offset < pr[m->partition].end)) {
                rc = kafka_write(w, m, st, err, errlen);
            }
            rd_kafka_message_destroy(m);
            if (rc) break;
        }
        /* Done per partition once its position reaches the end seen at start
         * (the position steps over transaction markers, offsets may not). */
        if (until_end && lt_now_us() >= next_pos_check) {
            next_pos_check = lt_now_us() + 200000;
            if (rd_kafka_position(c.rk, tpl) == RD_KAFKA_RESP_ERR_NO_ERROR)
                for (int i = 0; i < tpl->cnt; i++) {
                    part_range *r = &pr[tpl->elems[i].partition];
                    if (!r->done && tpl->elems[i].offset >= r->end) {
                        r->done = true;
                        pending--;
                    }
                }
        }
    }
out:
    free(pr);
    rd_kafka_topic_partition_list_destroy(tpl);
    ltk_close(&c);
    return rc;
}

/* ---- Redis ------------------------------------------------------------------------ */

/* Writes the entries of an XRANGE-shaped reply; sets last (the last id). */
static int redis_write_entries(lt_dump_writer *w, const redisReply *entries, char *last,
                               size_t last_cap, const record_cfg *cfg, record_stats *st, char *err,
                               size_t errlen)
{
    lt_field *fields = NULL;
    size_t cap = 0;
    int rc = 0;
    for (size_t i = 0; !rc && i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING) {
            rc = eq_err(err, errlen, "unexpected stream entry shape in the reply");
            break;
        }
        const redisReply *id = e->element[0], *f = e->element[1];
        snprintf(last, last_cap, "%.*s", (int)id->len, id->str);
        if (f->type != REDIS_REPLY_ARRAY) continue; /* a deleted entry (nil fields) */
        size_t nf = f->elements / 2;
        if (nf > cap) {
            lt_field *p = realloc(fields, nf * sizeof *p);
            if (!p) {
                rc = eq_err(err, errlen, "out of memory");
                break;
            }
            fields = p;
            cap = nf;
        }
        lt_record r = {0};
        r.partition = -1;
        r.offset = -1;
        r.entry_id = id->str;
        r.entry_id_len = id->len;
        r.timestamp_ms = ltr_id_ms(id->str, id->len);
        for (size_t k = 0; k < nf; k++) {
            const redisReply *fn = f->element[2 * k], *fv = f->element[2 * k + 1];
            fields[k] = (lt_field){fn->str, fn->len, (const uint8_t *)fv->str, fv->len};
            st->bytes += fv->len;
        }
        r.fields = fields;
        r.n_fields = (int)nf;
        st->records++;
        rc = lt_dump_write(w, &r, err, errlen);
        if (cfg->max_records && st->records >= cfg->max_records) break;
    }
    free(fields);
    return rc;
}

/* The stream's last entry id now ("0-0" when empty or missing). */
static int redis_last_id(redisContext *c, const char *stream, char *out, size_t cap, char *err,
                         size_t errlen)
{
    const char *a[6] = {"XREVRANGE", stream, "+", "-", "COUNT", "1"};
    redisReply *r = ltr_cmd(c, 6, a, NULL, err, errlen);
    if (!r) return -1;
    snprintf(out, cap, "0-0");
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2) {
        const redisReply *id = r->element[0]->element[0];
        snprintf(out, cap, "%.*s", (int)id->len, id->str);
    }
    freeReplyObject(r);
    return 0;
}

static int record_redis(const record_cfg *cfg, lt_dump_writer *w, record_stats *st, char *err,
                        size_t errlen)
{
    redisContext *c = ltr_connect(cfg->redis_url, err, errlen);
    if (!c) return -1;
    char last[64] = "0-0", end[64], start[80];
    bool until_end = cfg->duration_s <= 0;
    int rc = redis_last_id(c, cfg->topic, end, sizeof end, err, errlen);
    if (!rc && !strcmp(cfg->from, "now")) snprintf(last, sizeof last, "%s", end);
    int64_t deadline = lt_now_us() + (int64_t)(cfg->duration_s * 1e6);
    while (!rc && !lt_stop && (!cfg->max_records || st->records < cfg->max_records)) {
        redisReply *r;
        if (until_end) {
            if (!strcmp(end, "0-0")) break; /* empty stream */
            snprintf(start, sizeof start, "(%s", last);
            const char *a[6] = {"XRANGE", cfg->topic, strcmp(last, "0-0") ? start : "-",
                                end,      "COUNT",    "1000"};
            r = ltr_cmd(c, 6, a, NULL, err, errlen);
            if (!r)
                rc = -1;
            else if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
                freeReplyObject(r);
                break;
            } else {
                rc = redis_write_entries(w, r, last, sizeof last, cfg, st, err, errlen);
                freeReplyObject(r);
            }
        } else {
            if (lt_now_us() >= deadline) break;
            const char *a[7] = {"XREAD", "COUNT", "1000", "BLOCK", "200", "STREAMS", cfg->topic};
            const char *argv[8];
            memcpy(argv, a, sizeof a);
            argv[7] = last;
            r = ltr_cmd(c, 8, argv, NULL, err, errlen);
            if (!r)
                rc = -1;
            else {
                /* [[stream, [entries...]]] or nil on timeout */
                if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
                    r->element[0]->elements == 2)
                    rc = redis_write_entries(w, r->element[0]->element[1], last, sizeof last, cfg,
                                             st, err, errlen);
                freeReplyObject(r);
            }
        }
    }
    redisFree(c);
    return rc;
}

int cmd_record(int argc, char **argv)
{
    record_cfg cfg = {.from = "beginning", .timeout_s = 10};
    lt_flag flags[] = {
        {"brokers", LT_STR, &cfg.brokers, 0, 0, "Kafka bootstrap servers HOST:PORT,..."},
        {"redis-url", LT_STR, &cfg.redis_url, 0, 0, "Redis: redis://[user:pass@]HOST:PORT[/DB]"},
        {"topic", LT_STR, &cfg.topic, 0, 0, "the Kafka topic or Redis stream to record"},
        {"stream", LT_STR, &cfg.topic, 0, 0, "same as --topic"},
        {"out", LT_STR, &cfg.out, 0, 0, "the dump file to write (required)"},
        {"from", LT_STR, &cfg.from, 0, 0, "beginning | now"},
        {"duration", LT_DBL, &cfg.duration_s, 0, 1e7,
         "record for this many seconds, new records included (0: up to the end seen at start)"},
        {"max-records", LT_INT, &cfg.max_records, 0, 1e12, "stop after this many (0: no limit)"},
        {"kafka-config", LT_LIST, &cfg.kafka_config, 0, 0, "KEY=VALUE librdkafka setting"},
        {"timeout", LT_DBL, &cfg.timeout_s, 0.1, 3600, "seconds to wait for the broker"},
    };
    const lt_command cmd = {
        "record", "(--brokers B | --redis-url U) --topic T --out FILE [flags]",
        "Dumps a Kafka topic (every partition: key, value, headers, timestamp, partition, "
        "offset) or a Redis stream (entry ids and fields) into a file of msgpack records "
        "(docs/loadtest.md), from the beginning or from now, up to the end seen at start or "
        "for --duration seconds. Prints {\"records\":N,\"bytes\":B,\"seconds\":S}."};
    int prc = lt_parse_flags(&cmd, flags, (int)(sizeof flags / sizeof *flags), argc, argv);
    if (prc) return prc == 1 ? 0 : prc;
    if (!cfg.brokers == !cfg.redis_url)
        return lt_usage_error(&cmd, "give exactly one of --brokers (Kafka) or --redis-url (Redis)");
    if (!cfg.topic) return lt_usage_error(&cmd, "--topic is required");
    if (!cfg.out) return lt_usage_error(&cmd, "--out is required");
    if (strcmp(cfg.from, "beginning") && strcmp(cfg.from, "now"))
        return lt_usage_error(&cmd, "--from: expected beginning or now, got '%s'", cfg.from);
    if (!strcmp(cfg.from, "now") && cfg.duration_s <= 0)
        return lt_usage_error(&cmd, "--from now needs --duration (else nothing is recorded)");

    lt_install_signals();
    char err[LT_ERRLEN];
    lt_dump_header h = {.broker = cfg.brokers ? LT_BROKER_KAFKA : LT_BROKER_REDIS,
                        .recorded_at_us = lt_now_us()};
    snprintf(h.source, sizeof h.source, "%s", cfg.topic);
    lt_dump_writer *w = lt_dump_create(cfg.out, &h, err, sizeof err);
    if (!w) {
        lt_warn("record", "%s", err);
        return 1;
    }
    record_stats st = {0};
    int64_t t0 = lt_now_us();
    int rc = cfg.brokers ? record_kafka(&cfg, w, &st, err, sizeof err)
                         : record_redis(&cfg, w, &st, err, sizeof err);
    char cerr[LT_ERRLEN];
    if (lt_dump_close_writer(w, cerr, sizeof cerr) && !rc) {
        rc = -1;
        snprintf(err, sizeof err, "%s", cerr);
    }
    if (rc) {
        lt_warn("record", "%s", err);
        return 1;
    }
    printf("{\"records\":%ld,\"bytes\":%" PRIu64 ",\"seconds\":%.3f}\n", st.records, st.bytes,
           lt_us_to_s(lt_now_us() - t0));
    return 0;
}
