/* lt_kafka.h - librdkafka helpers of the load-test tool: client creation
 * with checked settings, reachability, partitions, a group's lag.
 *
 * Every function runs on the main thread. librdkafka's error callback keeps
 * the last error text in the ltk_client so that "unreachable" messages can
 * say why (connection refused, name resolution, ...).
 */
#ifndef LT_KAFKA_H
#define LT_KAFKA_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "lt.h"

typedef struct {
    rd_kafka_t *rk;
    const char *brokers;
    char last_error[256]; /* librdkafka's last error event, "" if none */
    void *user;           /* the caller's: e.g. replay's state, for delivery reports */
} ltk_client;

/* A producer's delivery report callback; rd_kafka_opaque(rk) is the
 * ltk_client. */
typedef void (*ltk_dr_cb)(rd_kafka_t *rk, const rd_kafka_message_t *m, void *client);

/* Creates a producer or a consumer on brokers. group: group.id (NULL for a
 * consumer that only assigns partitions; a generated name is used). extra:
 * KEY=VALUE librdkafka settings applied last (a bad one fails, named).
 * Defaults: log_level=2 (librdkafka's own connection logs are quiet; pass
 * log_level=6 to see them), producers (with delivery reports to dr when not
 * NULL) enable.idempotence=true and
 * linger.ms=5, consumers enable.auto.commit=false and
 * enable.partition.eof=false. 0, or -1 + err. */
int ltk_open(ltk_client *c, rd_kafka_type_t type, const char *brokers, const char *group,
             const lt_list *extra, ltk_dr_cb dr, void *user, char *err, size_t errlen);
/* Destroys the client (consumers are closed first). Safe on a zeroed one. */
void ltk_close(ltk_client *c);

/* Checks that the cluster answers within timeout_ms. 0, or -1 + err:
 * "cannot reach Kafka at BROKERS within N s: <why>". */
int ltk_ping(ltk_client *c, int timeout_ms, char *err, size_t errlen);

/* Number of partitions of topic (> 0), or -1 + err (unreachable, or the
 * topic does not exist: "topic T does not exist on BROKERS"). Retries for
 * up to timeout_ms while the topic's leaders are being elected. */
int ltk_partitions(ltk_client *c, const char *topic, int timeout_ms, char *err, size_t errlen);

/* The group's lag on topic (partitions 0..n-1) as the broker sees it: the
 * sum over partitions of high watermark - committed offset (the low
 * watermark where the group has committed nothing). c must be a consumer
 * whose group.id is the group. 0, or -1 + err. */
int ltk_group_lag(ltk_client *c, const char *topic, int n, int timeout_ms, int64_t *lag, char *err,
                  size_t errlen);

/* Sets "KEY=VALUE" on conf. 0, or -1 + err naming the setting. */
int ltk_conf_kv(rd_kafka_conf_t *conf, const char *kv, char *err, size_t errlen);

#endif
