/* lt_kafka.c - librdkafka helpers (lt_kafka.h). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lt_kafka.h"

static void on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    (void)rk;
    ltk_client *c = opaque;
    if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && c->last_error[0]) return; /* keep why */
    snprintf(c->last_error, sizeof c->last_error, "%s", reason);
}

static int set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err, size_t errlen)
{
    char e[256];
    if (rd_kafka_conf_set(conf, k, v, e, sizeof e) != RD_KAFKA_CONF_OK)
        return eq_err(err, errlen, "kafka setting %s=%s: %s", k, v, e);
    return 0;
}

int ltk_conf_kv(rd_kafka_conf_t *conf, const char *kv, char *err, size_t errlen)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) return eq_err(err, errlen, "--kafka-config '%s': expected KEY=VALUE", kv);
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
    return set(conf, key, eq + 1, err, errlen);
}

int ltk_open(ltk_client *c, rd_kafka_type_t type, const char *brokers, const char *group,
             const lt_list *extra, ltk_dr_cb dr, void *user, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->brokers = brokers;
    c->user = user;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char gen[64];
    if (type == RD_KAFKA_CONSUMER && !group) {
        snprintf(gen, sizeof gen, "embedq-loadtest-%d", (int)getpid());
        group = gen;
    }
    int rc = set(conf, "bootstrap.servers", brokers, err, errlen) ||
             set(conf, "log_level", "2", err, errlen) ||
             set(conf, "client.id", "embedq-loadtest", err, errlen);
    if (!rc && type == RD_KAFKA_PRODUCER)
        rc = set(conf, "enable.idempotence", "true", err, errlen) ||
             set(conf, "linger.ms", "5", err, errlen);
    if (!rc && type == RD_KAFKA_CONSUMER)
        rc = set(conf, "group.id", group, err, errlen) ||
             set(conf, "enable.auto.commit", "false", err, errlen) ||
             set(conf, "enable.partition.eof", "false", err, errlen);
    for (int i = 0; !rc && extra && i < extra->n; i++)
        rc = ltk_conf_kv(conf, extra->items[i], err, errlen);
    if (rc) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_conf_set_error_cb(conf, on_error);
    if (dr) rd_kafka_conf_set_dr_msg_cb(conf, dr);
    rd_kafka_conf_set_opaque(conf, c);
    char e[512];
    c->rk = rd_kafka_new(type, conf, e, sizeof e);
    if (!c->rk) {
        rd_kafka_conf_destroy(conf); /* not taken on failure */
        return eq_err(err, errlen, "creating the Kafka client: %s", e);
    }
    if (type == RD_KAFKA_CONSUMER) rd_kafka_poll_set_consumer(c->rk);
    return 0;
}

void ltk_close(ltk_client *c)
{
    if (!c->rk) return;
    if (rd_kafka_type(c->rk) == RD_KAFKA_CONSUMER) rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
    c->rk = NULL;
}

/* Serves pending callbacks (the error callback fills last_error). */
static void serve(ltk_client *c)
{
    if (rd_kafka_type(c->rk) == RD_KAFKA_CONSUMER) {
        rd_kafka_message_t *m;
        while ((m = rd_kafka_consumer_poll(c->rk, 0)))
            rd_kafka_message_destroy(m);
    } else {
        rd_kafka_poll(c->rk, 0);
    }
}

static int unreachable(ltk_client *c, int timeout_ms, rd_kafka_resp_err_t e, char *err,
                       size_t errlen)
{
    serve(c);
    return eq_err(err, errlen, "cannot reach Kafka at %s within %d s: %s", c->brokers,
                  (timeout_ms + 999) / 1000,
                  c->last_error[0] ? c->last_error : rd_kafka_err2str(e));
}

int ltk_ping(ltk_client *c, int timeout_ms, char *err, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(c->rk, 0, NULL, &md, timeout_ms);
    if (e) return unreachable(c, timeout_ms, e, err, errlen);
    int brokers = md->broker_cnt;
    rd_kafka_metadata_destroy(md);
    if (brokers < 1) return unreachable(c, timeout_ms, RD_KAFKA_RESP_ERR__TRANSPORT, err, errlen);
    return 0;
}

int ltk_partitions(ltk_client *c, const char *topic, int timeout_ms, char *err, size_t errlen)
{
    int64_t deadline = lt_now_us() + (int64_t)timeout_ms * 1000;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(c->rk, topic, NULL);
    if (!rkt)
        return eq_err(err, errlen, "topic %s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
    int rc = -1;
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        int left = (int)((deadline - lt_now_us()) / 1000);
        rd_kafka_resp_err_t e = rd_kafka_metadata(c->rk, 0, rkt, &md, left > 100 ? left : 100);
        if (e) {
            unreachable(c, timeout_ms, e, err, errlen);
            break;
        }
        rd_kafka_resp_err_t te =
            md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        int n = md->topic_cnt == 1 ? md->topics[0].partition_cnt : 0;
        rd_kafka_metadata_destroy(md);
        if (!te && n > 0) {
            rc = n;
            break;
        }
        if (lt_now_us() >= deadline || lt_stop) {
            if (te == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                te == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
                eq_err(err, errlen, "topic %s does not exist on %s", topic, c->brokers);
            else
                eq_err(err, errlen, "topic %s on %s: %s", topic, c->brokers,
                       te ? rd_kafka_err2str(te) : "no partitions");
            break;
        }
        lt_sleep_us(200000);
    }
    rd_kafka_topic_destroy(rkt);
    return rc;
}

int ltk_group_lag(ltk_client *c, const char *topic, int n, int timeout_ms, int64_t *lag, char *err,
                  size_t errlen)
{
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(tpl, topic, p);
    rd_kafka_resp_err_t e = rd_kafka_committed(c->rk, tpl, timeout_ms);
    int rc = 0;
    int64_t sum = 0;
    if (e) {
        rc = eq_err(err, errlen, "committed offsets of %s: %s", topic, rd_kafka_err2str(e));
        goto out;
    }
    for (int i = 0; i < tpl->cnt; i++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_topic_partition_t *tp = &tpl->elems[i];
        e = rd_kafka_query_watermark_offsets(c->rk, topic, tp->partition, &lo, &hi, timeout_ms);
        if (e) {
            rc = eq_err(err, errlen, "watermarks of %s [%d]: %s", topic, (int)tp->partition,
                        rd_kafka_err2str(e));
            goto out;
        }
        int64_t done = tp->err || tp->offset < 0 ? lo : tp->offset;
        if (hi > done) sum += hi - done;
    }
    *lag = sum;
out:
    rd_kafka_topic_partition_list_destroy(tpl);
    return rc;
}
