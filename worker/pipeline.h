/* pipeline.h - the worker's message pipeline, between a broker and the engine.
 *
 *   broker (loop thread) --pipe_submit--> decode + tokenize (pool threads)
 *       --> batcher + eq_embed + encode (engine thread)
 *       --uv_async--> broker->publish (loop thread) --broker accepted-->
 *       pipe_finish (loop thread): acknowledged, freed.
 *
 * A message is owned by the pipeline from pipe_submit until pipe_finish.
 * Bad input (undecodable, invalid, rejected by policy, or an input the
 * engine cannot embed) becomes a dead letter: msg->dead is set with a reason
 * and the broker publishes the original bytes to the dead-letter output
 * instead. Every submitted message reaches broker->publish exactly once,
 * unless the engine hits a device error: then the pipeline turns fatal
 * (pipe_fatal() != NULL), publishes nothing more, and the worker exits
 * without acknowledging what is left (the broker redelivers it).
 *
 * Backpressure: two bounds on what is between pipe_submit and pipe_finish,
 * messages (max_in_flight) and bytes (max_in_flight_bytes, each message
 * charged pipe_charge: an upper bound of what it holds at its peak). When
 * either is reached the pipeline calls broker->pause, and broker->resume
 * once both have fallen to half. A message is submitted whatever its size,
 * so one larger than the byte bound still passes (alone): never a deadlock.
 * pipe_room tells a broker how much more it may take before the pause.
 *
 * Threads: every pipe_* function below is called on the loop thread only,
 * except pipe_stats (any thread). broker callbacks are invoked on the loop
 * thread.
 */
#ifndef EQ_PIPELINE_H
#define EQ_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "engine.h"
#include "msg.h"

/* Output encodings (msg.h's encoders). */
typedef enum {
    PIPE_OUT_MSGPACK = 0,
    PIPE_OUT_JSON = 1,
    PIPE_OUT_QDRANT = 2,
    PIPE_OUT_PGVECTOR = 3
} pipe_out_format;

/* Over-long input policy: truncate (mark `truncated`) or dead-letter. */
typedef enum { PIPE_LONG_TRUNCATE = 0, PIPE_LONG_REJECT = 1 } pipe_long_policy;

/* One input record. The broker fills the "source" fields (owned copies:
 * the pipeline frees them with the message); the pipeline fills the rest. */
typedef struct pipe_msg {
    /* --- source: set by the broker before pipe_submit --- */
    uint8_t *data; /* the record's value bytes (malloc'd), sent unchanged
                      to the dead-letter output                          */
    size_t len;
    uint8_t *key; /* Kafka record key (malloc'd) or NULL                */
    size_t key_len;
    /* Redis entries given as plain fields (no `data` field): the decoder
     * reads these instead of data (all malloc'd; NULL when unused). */
    char **field_names, **field_values;
    size_t *field_name_lens, *field_value_lens;
    int n_fields;
    int64_t timestamp_ms; /* record time (ms since the epoch); 0 = unknown */
    /* Broker bookkeeping, opaque to the pipeline. */
    int32_t partition;   /* Kafka partition, -1 for Redis                   */
    int64_t offset;      /* Kafka offset                                    */
    char source_id[48];  /* Redis entry id "ms-seq"                         */
    int64_t deliveries;  /* Redis delivery count (XPENDING), 0 if unknown    */
    void *broker_data;   /* anything else the broker needs                  */
    size_t broker_bytes; /* bytes the broker itself holds for this message
                            (e.g. Redis fields kept for the dead letter):
                            counted in its charge                          */

    /* --- results: set by the pipeline before broker->publish --- */
    bool dead;               /* publish to the dead-letter output        */
    char reason[256];        /* dead: "code: detail" (msg.h codes)       */
    const char *reason_code; /* dead: the code alone (static string)     */
    uint8_t *out;            /* !dead: the encoded output message        */
    size_t out_len;
    uint8_t *out_key; /* !dead: the output record key             */
    size_t out_key_len;

    /* --- internal --- */
    msg_input in;
    int32_t *ids;
    int n_ids;
    bool truncated;
    float *vec;               /* the embedding, between the engine and the encoder  */
    uint64_t t_submit_ns;     /* monotonic, at pipe_submit                */
    uint64_t t_ready_ns;      /* monotonic, when tokenized (batch max wait) */
    uint64_t charge;          /* bytes counted against max_in_flight_bytes    */
    struct pipe_query *query; /* the HTTP lane: the request this input belongs
                                 to (an item of query->items), else NULL */
    struct pipe_msg *next;
} pipe_msg;

typedef struct pipeline pipeline;

/* What the pipeline needs from a broker (kafka.c, redis.c). */
typedef struct {
    void *self;
    /* Publish msg's output (or, if msg->dead, its dead letter). When the
     * broker has durably accepted it, call pipe_finish(p, msg, true) - or
     * pipe_finish(p, msg, false) if it will never be accepted (e.g. the
     * partition was revoked; the message will be redelivered elsewhere). */
    void (*publish)(void *self, pipe_msg *msg);
    void (*pause)(void *self);  /* stop taking new records             */
    void (*resume)(void *self); /* take records again                  */
} pipe_broker;

typedef struct {
    eq_engine *engine;
    const char *model_name;       /* the output's `model` field           */
    int batch_tokens;             /* token budget of one batch            */
    int max_wait_ms;              /* a batch waits at most this long to fill */
    int max_in_flight;            /* backpressure bound: messages         */
    uint64_t max_in_flight_bytes; /* backpressure bound: bytes (pipe_charge);
                                     0 = none                            */
    int tokenize_threads;         /* decode + tokenize pool size (>= 1)   */
    pipe_out_format out_format;
    const char *qdrant_collection; /* PIPE_OUT_QDRANT                  */
    pipe_long_policy long_policy;
    msg_limits limits;    /* decoder limits (max bytes, depth, hidden) */
    int max_query_inputs; /* HTTP lane: inputs submitted by pipe_query_submit
                             and not yet done, before it answers busy; 0 =
                             the lane is unused (every submit is busy)  */
    /* Observers, called on the thread named (may be NULL): */
    void *ctx;
    /* engine thread, after each eq_embed call that succeeded */
    void (*on_batch)(void *ctx, int n_seqs, int n_tokens, double seconds);
    /* loop thread, in pipe_finish before the message is freed */
    void (*on_finish)(void *ctx, const pipe_msg *msg, bool accepted);
    /* loop thread, once, when the engine reports a device error */
    void (*on_fatal)(void *ctx, const char *message);
} pipe_options;

/* Starts the pool and engine threads on loop. Returns NULL with a message. */
pipeline *pipe_new(uv_loop_t *loop, const pipe_options *opt, const pipe_broker *broker, char *err,
                   size_t errlen);

/* Takes ownership of msg (allocate with pipe_msg_new). A message the broker
 * already marked dead (msg->dead, reason, reason_code set) skips decoding
 * and the engine and comes straight back to publish as a dead letter. */
void pipe_submit(pipeline *p, pipe_msg *msg);

/* The broker is done with msg (see pipe_broker.publish); frees it.
 * accepted: the output/dead letter was durably accepted. */
void pipe_finish(pipeline *p, pipe_msg *msg, bool accepted);

/* A zeroed message (partition -1), or NULL when out of memory. */
pipe_msg *pipe_msg_new(void);
/* Frees a message the pipeline never saw (e.g. the broker's own errors). */
void pipe_msg_free(pipe_msg *msg);

/* Bytes a message with input_bytes of input (value, key, fields, broker
 * copies) is charged: an upper bound of what it holds at its peak, i.e.
 *   3 x input_bytes                 the bytes as read, the decoded input
 *                                   (text, instruction, id, meta), and the
 *                                   output's copy of id and meta
 * + 4 x min(input_bytes + 64, max_seq_len)   token ids (int32)
 * + 28 x hidden + 1024              the vector (fp32), its encoding (at most
 *                                   24 bytes a float, JSON), bookkeeping.
 * Any thread. */
uint64_t pipe_charge(const pipeline *p, size_t input_bytes);

/* What may still be submitted before the pipeline pauses the broker:
 * *msgs messages, *bytes bytes of charge (UINT64_MAX without a byte bound);
 * 0 when that bound is reached. Loop thread. */
void pipe_room(const pipeline *p, int *msgs, uint64_t *bytes);

/* Starts draining: batches stop waiting to fill. Intake is the broker's to
 * stop. pipe_in_flight() tells when everything submitted is finished. */
void pipe_drain(pipeline *p);
int pipe_in_flight(const pipeline *p);

/* Non-NULL once the engine hit a device error: the message. */
const char *pipe_fatal(const pipeline *p);

/* Stops and joins the threads; messages still inside are freed unfinished
 * (not acknowledged: the broker redelivers them). Call after the loop no
 * longer delivers to it. */
void pipe_free(pipeline *p);

/* Counters for /metrics (monotonic since start), safe from any thread. */
typedef struct {
    uint64_t consumed;      /* submitted                              */
    uint64_t produced;      /* outputs accepted by the broker         */
    uint64_t dead_lettered; /* dead letters accepted by the broker    */
    uint64_t not_accepted;  /* finished without being accepted        */
    uint64_t tokens;        /* tokens embedded                        */
    uint64_t batches;
    uint64_t engine_errors; /* failed engine calls: a batch re-run singly,
                               an input dead-lettered embedding_failed, or
                               the fatal device error                   */
    int in_flight;
    uint64_t in_flight_bytes; /* their charge (pipe_charge)            */
} pipe_counters;
void pipe_stats(const pipeline *p, pipe_counters *c);

/* ---- the HTTP lane: queries answered while a client waits -------------------
 *
 * A query is one API request: n inputs, each a text (items[i].data/len,
 * malloc'd, with the query's instruction) or token ids given by the client
 * (items[i].ids/n_ids, malloc'd with room for n_ids + 1: the final
 * <|endoftext|> is appended here when missing). It goes through the same pool and engine thread as the
 * broker's messages, ahead of them at every step: the pool tokenizes a query
 * (all its inputs, on one thread) before any message, the engine thread
 * runs a batch at once when an HTTP input waits (no --max-wait-ms), and
 * each batch takes the waiting HTTP inputs first, then queue messages,
 * within the same token budget. So a query waits at most for the batch in
 * progress plus its own.
 *
 * The lane has its own bound, in inputs (max_query_inputs); the broker's
 * backpressure (max_in_flight, max_in_flight_bytes) counts only messages,
 * so neither starves the other.
 *
 * When every input is embedded (or one failed: items[i].dead, reason_code
 * and reason set), encode(q) runs on a pool thread to build the reply, then
 * done(q) on the loop thread; done owns q from then on (pipe_query_free).
 * If the pipeline stops first (pipe_free, a fatal engine error), done(q)
 * runs from pipe_free with q->aborted set. */
typedef struct pipe_query pipe_query;
struct pipe_query {
    /* --- set by the caller --- */
    int n;             /* inputs                                               */
    pipe_msg *items;   /* (n) zeroed by pipe_query_new; see above; per input,
                          in.dimensions (0 = hidden)                         */
    char *instruction; /* malloc'd, NUL-terminated; NULL = none          */
    size_t instruction_len;
    bool reject_long;              /* an over-long input is an error, not cut */
    void (*encode)(pipe_query *q); /* pool thread                          */
    void (*done)(pipe_query *q);   /* loop thread                          */
    void *arg;                     /* the caller's                          */
    /* --- results --- */
    bool aborted; /* the pipeline stopped before the query was finished */
    int tokens;   /* tokens embedded, over all inputs                   */
    /* --- internal --- */
    int remaining;                            /* inputs not yet embedded (p->mu) */
    struct pipe_query *next;                  /* queue link (p->mu)              */
    struct pipe_query *live_prev, *live_next; /* loop thread               */
};

/* A query of n inputs (items zeroed), or NULL when out of memory. */
pipe_query *pipe_query_new(int n);
/* Frees q, its items and what they own. */
void pipe_query_free(pipe_query *q);

/* Takes q (loop thread). Returns 0, or PIPE_BUSY when the lane holds
 * inputs already and q would take it over max_query_inputs (the caller
 * keeps q: answer 429), or PIPE_STOPPED when the pipeline is draining or
 * its engine failed (answer 503). */
#define PIPE_BUSY    (-1)
#define PIPE_STOPPED (-2)
int pipe_query_submit(pipeline *p, pipe_query *q);
/* Inputs of the queries submitted and not yet done (any thread). */
int pipe_query_inputs(const pipeline *p);
/* The engine's hidden size and max tokens per input (any thread). */
int pipe_hidden(const pipeline *p);

#endif
