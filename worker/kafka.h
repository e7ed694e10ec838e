/* kafka.h - the Kafka source and sink of the worker (librdkafka), on the
 * libuv loop.
 *
 *   consumer group (cooperative-sticky) --records--> pipe_submit
 *   pipe_broker.publish --> idempotent producer (acks=all) --delivery report-->
 *       offset tracker (kafka_offsets.h) --> rd_kafka_offsets_store
 *       --> pipe_finish
 *
 * At-least-once: enable.auto.offset.store=false, enable.auto.commit=true;
 * an input offset is stored only once the output (or dead letter) of that
 * record and of every earlier record of its partition was delivered. A
 * record whose output can never be delivered (a permanent produce error
 * after librdkafka's retries) leaves its partition "stuck": nothing at or
 * after it is stored again until the partition is assigned anew (restart or
 * rebalance), so the next owner reprocesses it. Output keys are the input
 * ids, so reprocessed records overwrite their outputs downstream.
 *
 * Output records: topic out_topic, key msg->out_key, value msg->out, the
 * input's headers. Dead letters: topic dlq_topic, the input's original
 * value, key and headers, plus headers embedq.error (msg->reason),
 * embedq.source.topic, embedq.source.partition and embedq.source.offset
 * (decimal strings). An output the broker rejects as too large is sent to
 * the dead-letter topic instead (reason output_too_large). A dead letter that
 * would exceed the producer's effective message.max.bytes (read at
 * kafka_new, which refuses a limit too small for the embedq.* headers) goes
 * out with its value cut to fit, and one the broker still refuses as too
 * large with value, key and input headers left out; both carry embedq.cut,
 * embedq.cut.reason, embedq.original.size and embedq.original.sha256
 * (msg.h). So every record can be dead-lettered. A partition with a record
 * not delivered is "stuck" (above): kafka_ready() is false naming it, and
 * kafka_stuck_partitions() counts it.
 *
 * No busy polling: librdkafka writes to a pipe watched by uv_poll when its
 * consumer queue or the producer's queue becomes non-empty; a timer
 * (poll_interval_ms) is the safety net and keeps rd_kafka_consumer_poll
 * called while paused (max.poll.interval.ms).
 *
 * Threads: every function is called on the loop thread (librdkafka's
 * callbacks are served there too).
 *
 * Built without librdkafka (EMBEDQ_HAVE_KAFKA undefined), kafka_new fails
 * with a message saying so and the other functions do nothing.
 */
#ifndef EQ_KAFKA_H
#define EQ_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "pipeline.h"
#include "publish_health.h"

typedef struct kafka_broker kafka_broker;

typedef struct {
    const char *brokers;   /* bootstrap.servers (required)                */
    const char *group;     /* group.id (required)                         */
    const char *in_topic;  /* subscribed topic (required)                 */
    const char *out_topic; /* vectors (required)                          */
    const char *dlq_topic; /* dead letters (required)                     */
    /* "key=value" librdkafka settings for the consumer AND the producer
     * (e.g. SASL/TLS); "consumer.key=value" / "producer.key=value" target
     * one side. Applied after the defaults below, so they override them;
     * a bad key or value fails kafka_new with a message naming it.
     * enable.auto.offset.store cannot be turned on (at-least-once). */
    const char *const *config;
    int n_config;
    /* sasl.username / sasl.password for both sides, set after `config`
     * (they win); NULL: not set here. Error messages never show a secret
     * value (passwords, keys, JAAS / OAUTHBEARER configs): "KEY=***". */
    const char *sasl_username, *sasl_password;
    const char *client_id; /* client.id (default "embedq")                */
    int poll_interval_ms;  /* fallback poll timer, default 100            */
    /* Optional: called once (loop thread, from one of k's libuv callbacks,
     * never inside librdkafka: it may call kafka_close) when librdkafka
     * reports a fatal error (e.g. the idempotent producer was fenced):
     * nothing more can be produced or committed; the worker should stop.
     * kafka_ready() is false from then on. */
    void (*on_fatal)(void *ctx, const char *message);
    void *ctx;
    /* Optional: every delivery (ok) and permanent or timed-out produce
     * failure is reported here, and whether records wait for the broker
     * (every poll_interval_ms). Must outlive k. */
    pub_health *health;
} kafka_options;

/* Defaults set before the caller's settings:
 *   consumer: partition.assignment.strategy=cooperative-sticky,
 *             enable.auto.commit=true, auto.offset.reset=earliest,
 *             enable.partition.eof=false, statistics.interval.ms=1000
 *             (broker state for kafka_ready)
 *   producer: enable.idempotence=true, acks=all, linger.ms=5
 *   both:     client.id, bootstrap.servers
 * Forced after them: enable.auto.offset.store=false (consumer). */

/* On the loop thread. Creates the consumer and the idempotent producer and
 * validates every setting (errors name the setting). Does not subscribe
 * yet. Returns NULL with a message in err. */
kafka_broker *kafka_new(uv_loop_t *loop, const kafka_options *o, char *err, size_t errlen);

/* The vtable for pipe_new (self = k). */
pipe_broker kafka_pipe_broker(kafka_broker *k);

/* Subscribes to in_topic; records flow into pipe_submit(p, ...). Returns 0,
 * or -1 with a message. */
int kafka_start(kafka_broker *k, pipeline *p, char *err, size_t errlen);

/* Draining: no more pipe_submit. Every assigned partition is paused (and
 * partitions assigned later start paused); the consumer keeps being polled.
 * A record librdkafka had already fetched is dropped, and its partition's
 * position is then not stored at close (the dropped record is redelivered
 * to the next owner). */
void kafka_stop_intake(kafka_broker *k);

/* After pipe_in_flight()==0 (or on drain timeout): publishes what waits
 * for producer queue space, flushes the producer, stores the final position
 * (rd_kafka_position) of every partition whose records are all finished,
 * commits synchronously, leaves the group (rd_kafka_consumer_close) and
 * destroys both handles, each step bounded by what is left of timeout_ms.
 * Records not delivered by then are purged and finished as not accepted.
 * Blocks (shutdown only). Returns 0 if everything published was delivered
 * and the commit succeeded, else -1 with a message.
 *
 * k's memory is released by the close callbacks of its libuv handles: run
 * the loop once more afterwards. The pipeline must not publish after this
 * call (pipe_free it before the loop runs again). */
int kafka_close(kafka_broker *k, int timeout_ms, char *err, size_t errlen);

/* True when a broker is reachable (librdkafka's last statistics show a
 * broker up, or records/deliveries arrived since the last "all brokers
 * down"), the group is joined or joining, and nothing fatal happened.
 * Otherwise false with the reason in why. */
bool kafka_ready(kafka_broker *k, char *why, size_t whylen);

/* Per-partition lag as this worker sees it, for /metrics: fn(ctx,
 * partition, lag) for each assigned partition whose high watermark is known
 * (cached from fetch responses, rd_kafka_get_watermark_offsets), lag = high
 * watermark - the offset that would be committed now (the stored offset,
 * else the first record still in flight, else the consumer's position). */
void kafka_lag(kafka_broker *k, void (*fn)(void *ctx, int32_t partition, int64_t lag), void *ctx);

/* Counters (monotonic), for logs and tests. */
typedef struct {
    uint64_t consumed;        /* records submitted to the pipeline            */
    uint64_t delivered;       /* outputs + dead letters delivered             */
    uint64_t dead_lettered;   /* of which dead letters                        */
    uint64_t delivery_failed; /* permanent produce failures (partition stuck) */
    uint64_t consumer_errors; /* consumer error events (PARTITION_EOF aside)  */
    uint64_t auth_errors;     /* client errors: authentication, TLS, ACLs     */
    uint64_t client_errors;   /* other client errors (connections refused,
                                 unresolvable hosts, timeouts, ...)           */
    uint64_t queue_full;      /* produce attempts deferred: queue full        */
    uint64_t dropped;         /* records fetched after kafka_stop_intake      */
    uint64_t rebalances;      /* assign + revoke callbacks                    */
    uint64_t offsets_stored;  /* rd_kafka_offsets_store calls that stored     */
} kafka_counters;
void kafka_stats(const kafka_broker *k, kafka_counters *c);

/* Assigned partitions that cannot make progress: a record's output or dead
 * letter was not delivered, so nothing at or after it is committed until the
 * partition is assigned again. kafka_ready() is false while there is one,
 * naming it. For /metrics (embedq_partitions_stuck). */
int kafka_stuck_partitions(const kafka_broker *k);

/* Frees k if kafka_close was not called (error paths): destroys the
 * handles without committing or waiting for deliveries. As kafka_close, k's
 * memory goes with its handles' close callbacks. */
void kafka_free(kafka_broker *k);

#endif
