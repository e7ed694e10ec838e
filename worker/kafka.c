/* kafka.c - the Kafka source and sink (see kafka.h).
 *
 * Design:
 *   - Two librdkafka handles: a consumer in the group (cooperative-sticky,
 *     rebalance_cb with incremental assign/unassign) and an idempotent
 *     producer shared by outputs and dead letters. The consumer's main queue
 *     is forwarded to its consumer queue (rd_kafka_poll_set_consumer), so
 *     rebalances, errors and statistics all arrive through
 *     rd_kafka_consumer_poll.
 *   - Wake-ups: rd_kafka_queue_io_event_enable() writes one byte to a pipe
 *     when a queue goes from empty to non-empty; uv_poll watches the read
 *     ends. A wake-up drains the pipe, then polls the queue until it is
 *     empty or a budget is spent; with work left an idle handle brings us
 *     back on the next loop iteration (librdkafka writes again only after
 *     the queue was emptied, so stopping early must not wait for a byte).
 *     A timer every poll_interval_ms is the safety net and keeps the
 *     consumer polled while paused (max.poll.interval.ms).
 *   - Backpressure in two steps. pause() first only stops taking records:
 *     the consumer queue is still polled for events, and the first record
 *     that comes out is held back (the "stash") until resume(), which costs
 *     nothing to undo. Fetched records wait in librdkafka's queue, bounded
 *     by queued.max.messages.kbytes; librdkafka stops fetching when it is
 *     full. After HARD_PAUSE_MS still paused (or at once when draining) the
 *     assignment is paused in librdkafka (rd_kafka_pause_partitions), which
 *     drops the prefetched records and lets the queue be polled freely again
 *     (rebalance events behind the stash wait at most that long). A hard
 *     resume restarts fetching from the consumer's position; with librdkafka
 *     2.0.2 the first fetch after resume_partitions can take up to a second,
 *     which is why a short pause is only a soft one.
 *   - Records are copied out of rd_kafka_message_t (value, key, timestamp;
 *     the headers are detached, not copied) into a pipe_msg whose
 *     broker_data is a krec; the rd_kafka_message_t is destroyed at once.
 *   - Every partition in the assignment has a kpart with an offset tracker
 *     (kafka_offsets.h) and an epoch, renewed on every assignment. A
 *     delivery report stores an offset only when the record's epoch is the
 *     partition's current one: a report for a revoked (or revoked and
 *     re-assigned) partition stores nothing, and the record still finishes
 *     as accepted (its output was; the next owner reprocesses the input and
 *     the output key makes that idempotent).
 *   - Stores are batched: delivery reports mark partitions dirty, and one
 *     rd_kafka_offsets_store call per poll stores them all.
 *   - Produce payloads are not copied: the pipe_msg that owns them lives
 *     until its delivery report (pipe_finish is called from there), and at
 *     close undelivered records are purged, which reports them too.
 */
#include "kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#ifdef EMBEDQ_HAVE_KAFKA

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>
#include <openssl/evp.h>

#include "kafka_offsets.h"

#define INTAKE_BUDGET 1024 /* records taken per wake-up before yielding   */
#define SERVE_BUDGET  64   /* producer rd_kafka_poll calls per wake-up    */
#define SWEEP_MS      1000 /* how often idle partitions store positions  */
#define HARD_PAUSE_MS 1000 /* soft pause this long -> pause in librdkafka */
#define SETTLE_MS     5000 /* no pause/resume this soon after an assignment */

/* Dead letters that always fit. librdkafka refuses a record whose
 * worst-case wire size (rd_kafka_msg_max_wire_size: a 36-byte v2 record
 * overhead + key + value + serialized headers) exceeds the producer's
 * message.max.bytes, and a broker compares whole batches (61-byte v2 batch
 * header) with its own limit. A dead letter whose original value does not fit
 * is sent with the value cut (level 1), or with value, key and input headers
 * left out (level 2: the broker refused level 0 or 1 as too large), always
 * with headers saying so. DLQ_FRAMING covers record + batch framing; a
 * header costs at most 5 + name + 5 + value bytes (two varints). */
#define DLQ_FRAMING    (36 + 61)
#define HDR_COST(n, v) (10 + (size_t)(n) + (size_t)(v))
#define CUT_REASON_LEN 200 /* embedq.cut.reason, at most                   */

/* One assigned (or once assigned) partition of in_topic. */
typedef struct {
    kof_partition t; /* offsets in flight, this epoch                     */
    uint32_t epoch;  /* renewed on every assignment                       */
    bool assigned;
    bool seen;            /* a record was consumed in this epoch               */
    bool dropped;         /* a record was dropped (intake stopped) this epoch  */
    bool dirty;           /* `pending` waits for rd_kafka_offsets_store        */
    bool app_paused;      /* paused in librdkafka by us (as last told)         */
    uint64_t assigned_ms; /* loop time of the assignment                  */
    int64_t pending;      /* offset to store                                   */
    int64_t stored;       /* last offset stored this epoch, -1 none            */
    int64_t first;        /* first offset consumed this epoch, -1 none: where
                             the consumer started (the committed offset)       */
    char fail_why[200];   /* the first record not delivered and why (t.n_failed
                             > 0), for /readyz and kafka_close                */
} kpart;

/* A record between pipe_submit and pipe_finish (pipe_msg.broker_data). */
typedef struct krec {
    struct krec *prev, *next; /* k->live, so close can free what is left   */
    struct krec *retry_next;  /* k->retry_*: waiting for producer queue room */
    pipe_msg *msg;
    rd_kafka_headers_t *hdrs; /* the input's headers (owned) or NULL       */
    uint32_t epoch;
    bool null_value; /* the input's value was null (tombstone)            */
    int dlq_level;   /* dead letter: 0 whole, 1 value cut, 2 value, key and
                        input headers left out (see DLQ_FRAMING)          */
} krec;

struct kafka_broker {
    uv_loop_t *loop;
    pipeline *pipe;
    rd_kafka_t *cons, *prod;
    rd_kafka_queue_t *cq, *pq; /* consumer queue, producer main queue   */
    rd_kafka_topic_t *rkt_out, *rkt_dlq;
    int cfd[2], pfd[2]; /* wake-up pipes [read, write], or -1    */
    uv_poll_t cpoll, ppoll;
    uv_timer_t timer;
    uv_idle_t idle;
    int open_handles; /* k is freed when the last one closed   */
    bool idle_on, started, intake_stopped, closed;
    bool paused;      /* the pipeline asked for no more records          */
    bool hard_paused; /* ... and the assignment is paused in librdkafka  */
    uint64_t paused_at_ms;
    rd_kafka_message_t *stash; /* a record polled while soft-paused      */
    uint32_t stash_epoch;
    char *in_topic, *out_topic, *dlq_topic;
    kpart *parts; /* (n_parts) indexed by partition number                */
    int n_parts;
    int n_dirty;
    uint32_t epoch_seq;
    uint64_t assigns; /* assign callbacks served (kafka_close waits on it) */
    krec live;        /* sentinel of the list of live records                    */
    krec *retry_head, *retry_tail;
    int n_retry;
    int poll_interval_ms;
    uint64_t last_sweep_ms;
    size_t max_msg;     /* the producer's effective message.max.bytes     */
    pub_health *health; /* publish outcomes (optional)                    */
    /* readiness */
    bool broker_up;
    char last_error[320]; /* the last client error (error_cb), for /readyz */
    uint64_t last_error_ms;
    char cgrp_state[32];
    char fatal[512];
    bool fatal_pending; /* on_fatal not called yet (see report_fatal)    */
    void (*on_fatal)(void *ctx, const char *message);
    void *ctx;
    kafka_counters c;
};

static uint64_t mono_ms(void)
{
    return uv_hrtime() / 1000000u;
}

/* ---- partitions ------------------------------------------------------------ */

static kpart *part_get(kafka_broker *k, int32_t p)
{
    if (p < 0) return NULL;
    if (p >= k->n_parts) {
        int n = k->n_parts ? k->n_parts : 16;
        while (n <= p)
            n *= 2;
        kpart *np = realloc(k->parts, sizeof *np * (size_t)n);
        EQ_ASSERT(np != NULL); /* out of memory: crash = redelivery, never loss */
        for (int i = k->n_parts; i < n; i++) {
            memset(&np[i], 0, sizeof np[i]);
            kof_init(&np[i].t);
            np[i].stored = -1;
            np[i].first = -1;
        }
        k->parts = np;
        k->n_parts = n;
    }
    return &k->parts[p];
}

static kpart *part_find(kafka_broker *k, int32_t p)
{
    return p >= 0 && p < k->n_parts ? &k->parts[p] : NULL;
}

static void mark_dirty(kafka_broker *k, kpart *pt, int64_t offset)
{
    pt->pending = offset;
    if (!pt->dirty) {
        pt->dirty = true;
        k->n_dirty++;
    }
}

/* Stores every dirty partition's pending offset in one call. A partition
 * that is no longer assigned fails with __STATE: ignored (its next owner
 * reprocesses from the last commit). */
static void flush_stores(kafka_broker *k)
{
    if (k->n_dirty == 0) return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(k->n_dirty);
    for (int i = 0; i < k->n_parts; i++) {
        kpart *pt = &k->parts[i];
        if (!pt->dirty) continue;
        pt->dirty = false;
        rd_kafka_topic_partition_list_add(l, k->in_topic, i)->offset = pt->pending;
    }
    k->n_dirty = 0;
    rd_kafka_offsets_store(k->cons, l);
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_topic_partition_t *e = &l->elems[i];
        kpart *pt = part_find(k, e->partition);
        if (!e->err) {
            if (pt) pt->stored = e->offset;
            k->c.offsets_stored++;
        } else if (e->err == RD_KAFKA_RESP_ERR__STATE) {
            eq_log(EQ_LOG_DEBUG, "kafka: %s [%d] offset %" PRId64 " not stored: not assigned",
                   k->in_topic, (int)e->partition, e->offset);
        } else {
            eq_log(EQ_LOG_WARN, "kafka: storing offset %" PRId64 " of %s [%d]: %s", e->offset,
                   k->in_topic, (int)e->partition, rd_kafka_err2str(e->err));
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Partitions whose consumed records are all finished (none dropped, failed
 * or stashed) store the consumer's position, which steps over transaction
 * markers and other records the consumer never returned: without this the
 * committed offset could stay one short of the log end forever. */
static void store_positions(kafka_broker *k)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    for (int i = 0; i < k->n_parts; i++) {
        kpart *pt = &k->parts[i];
        if (!pt->assigned || !pt->seen || pt->dropped || pt->dirty || !kof_idle(&pt->t)) continue;
        /* A stashed record is consumed (the position is past it) but not
         * in the tracker yet. */
        if (k->stash && k->stash->partition == i) continue;
        if (!l) l = rd_kafka_topic_partition_list_new(8);
        rd_kafka_topic_partition_list_add(l, k->in_topic, i);
    }
    if (!l) return;
    rd_kafka_position(k->cons, l);
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_topic_partition_t *e = &l->elems[i];
        kpart *pt = part_find(k, e->partition);
        if (!e->err && pt && e->offset >= 0 && e->offset > pt->stored) mark_dirty(k, pt, e->offset);
    }
    rd_kafka_topic_partition_list_destroy(l);
    flush_stores(k);
}

/* ---- records ------------------------------------------------------------------ */

static void rec_unlink(krec *r)
{
    r->prev->next = r->next;
    r->next->prev = r->prev;
    r->prev = r->next = r;
}

static void rec_free(krec *r)
{
    rec_unlink(r);
    if (r->hdrs) rd_kafka_headers_destroy(r->hdrs);
    free(r);
}

/* The broker is done with m: hand it back to the pipeline. */
static void finish(kafka_broker *k, pipe_msg *m, bool accepted)
{
    krec *r = m->broker_data;
    m->broker_data = NULL;
    if (r) rec_free(r);
    pipe_finish(k->pipe, m, accepted);
}

/* m's output (or dead letter) was delivered. */
static void record_delivered(kafka_broker *k, pipe_msg *m)
{
    krec *r = m->broker_data;
    kpart *pt = part_find(k, m->partition);
    if (!pt || !pt->assigned || pt->epoch != r->epoch) return; /* revoked since */
    int64_t s = kof_finish(&pt->t, m->offset);
    if (s >= 0) mark_dirty(k, pt, s);
}

/* m's output will never be delivered: its partition stops storing. */
static void record_failed(kafka_broker *k, pipe_msg *m, const char *why)
{
    krec *r = m->broker_data;
    kpart *pt = part_find(k, m->partition);
    const bool ours = pt && pt->assigned && pt->epoch == r->epoch;
    const bool first = ours && pt->t.n_failed == 0;
    k->c.delivery_failed++;
    if (k->health) ph_fail(k->health, mono_ms(), why);
    if (first) {
        snprintf(pt->fail_why, sizeof pt->fail_why,
                 "the %s of offset %" PRId64 " was not delivered: %s",
                 m->dead ? "dead letter" : "output", m->offset, why);
    }
    if (ours) kof_fail(&pt->t, m->offset);
    if (first)
        eq_log(EQ_LOG_ERROR,
               "kafka: the %s of %s [%d] offset %" PRId64
               " was not delivered: %s; partition %d commits nothing from there on until it "
               "is assigned again (then it is reprocessed)",
               m->dead ? "dead letter" : "output", k->in_topic, (int)m->partition, m->offset, why,
               (int)m->partition);
    else
        eq_log(EQ_LOG_DEBUG, "kafka: the %s of %s [%d] offset %" PRId64 " was not delivered: %s",
               m->dead ? "dead letter" : "output", k->in_topic, (int)m->partition, m->offset, why);
}

/* Hands a record to the pipeline. epoch: the partition's epoch when the
 * record was polled (a stashed record), or 0 for "now". */
static void take_record(kafka_broker *k, rd_kafka_message_t *rkm, uint32_t epoch)
{
    kpart *pt = part_get(k, rkm->partition);
    if (!pt || !pt->assigned || (epoch && pt->epoch != epoch)) {
        /* Not ours (any more), or from before a re-assignment (fetched
         * again since): its owner processes it. */
        rd_kafka_message_destroy(rkm);
        return;
    }
    if (k->intake_stopped || !k->pipe) {
        /* Draining: the record is left to the next owner, so this
         * partition's position must not be stored over it. */
        pt->dropped = true;
        k->c.dropped++;
        rd_kafka_message_destroy(rkm);
        return;
    }
    pipe_msg *m = pipe_msg_new();
    krec *r = calloc(1, sizeof *r);
    /* Out of memory: crash (redelivery) rather than lose the record. */
    EQ_ASSERT(m != NULL && r != NULL);
    m->len = rkm->len;
    m->data = malloc(rkm->len ? rkm->len : 1);
    EQ_ASSERT(m->data != NULL);
    if (rkm->len) memcpy(m->data, rkm->payload, rkm->len);
    r->null_value = rkm->payload == NULL;
    if (rkm->key) {
        m->key = malloc(rkm->key_len ? rkm->key_len : 1);
        EQ_ASSERT(m->key != NULL);
        if (rkm->key_len) memcpy(m->key, rkm->key, rkm->key_len);
        m->key_len = rkm->key_len;
    }
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(rkm, &tstype);
    m->timestamp_ms = ts > 0 ? ts : 0;
    m->partition = rkm->partition;
    m->offset = rkm->offset;
    if (rd_kafka_message_detach_headers(rkm, &r->hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        r->hdrs = NULL;
    r->msg = m;
    r->epoch = pt->epoch;
    r->next = k->live.next;
    r->prev = &k->live;
    k->live.next->prev = r;
    k->live.next = r;
    m->broker_data = r;
    EQ_ASSERT(kof_add(&pt->t, m->offset) == 0);
    if (!pt->seen) pt->first = m->offset;
    pt->seen = true;
    k->broker_up = true;
    k->c.consumed++;
    rd_kafka_message_destroy(rkm);
    pipe_submit(k->pipe, m);
}

/* ---- producing ------------------------------------------------------------------ */

static void add_header(rd_kafka_headers_t *h, const char *name, const char *val)
{
    rd_kafka_header_add(h, name, -1, val, -1);
}

/* Serialized size of a header list, at most (HDR_COST each). */
static size_t headers_cost(const rd_kafka_headers_t *h)
{
    size_t n = 0, vlen;
    const char *name;
    const void *val;
    for (size_t i = 0; h && !rd_kafka_header_get_all(h, i, &name, &val, &vlen); i++)
        n += HDR_COST(strlen(name), vlen);
    return n;
}

/* The embedq.* headers of a dead letter, at most: reason, source topic,
 * partition (11 digits), offset (20), and when cut embedq.cut,
 * embedq.cut.reason, embedq.original.size (20), embedq.original.sha256 (64). */
static size_t dlq_headers_cost(const char *in_topic, size_t reason_len, bool cut)
{
    size_t n = HDR_COST(strlen(MSG_DLQ_KAFKA_ERROR), reason_len) +
               HDR_COST(strlen(MSG_DLQ_KAFKA_TOPIC), strlen(in_topic)) +
               HDR_COST(strlen(MSG_DLQ_KAFKA_PARTITION), 11) +
               HDR_COST(strlen(MSG_DLQ_KAFKA_OFFSET), 20);
    if (cut)
        n += HDR_COST(strlen(MSG_DLQ_KAFKA_CUT), strlen("value,key,headers")) +
             HDR_COST(strlen(MSG_DLQ_KAFKA_CUT_REASON), CUT_REASON_LEN) +
             HDR_COST(strlen(MSG_DLQ_KAFKA_ORIG_SIZE), 20) +
             HDR_COST(strlen(MSG_DLQ_KAFKA_ORIG_SHA256), 64);
    return n;
}

/* Lower-case hex SHA-256 of (p, n) into out[65]. OpenSSL's libcrypto (already
 * loaded by librdkafka) rather than a hand-written one. */
static void sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    out[0] = 0;
    if (!EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) || len != 32) {
        snprintf(out, 65, "unavailable");
        return;
    }
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The dead letter of m at r->dlq_level, into vu[*n...] (value, key) and *hp
 * (headers, new). Level 0 that does not fit k->max_msg becomes level 1; level
 * 1 whose key and input headers leave no room becomes level 2. */
static void dead_letter(kafka_broker *k, pipe_msg *m, rd_kafka_vu_t *vu, size_t *n,
                        rd_kafka_headers_t **hp)
{
    krec *r = m->broker_data;
    const size_t reason_len = strlen(m->reason);
    const size_t vlen = r->null_value ? 0 : m->len;
    const size_t in_hdrs = headers_cost(r->hdrs);
    const size_t base = DLQ_FRAMING + m->key_len + in_hdrs;
    size_t keep = vlen;                     /* value bytes sent */
    const bool refused = r->dlq_level == 2; /* set by reroute_to_dlq */
    if (r->dlq_level == 0 &&
        base + vlen + dlq_headers_cost(k->in_topic, reason_len, false) > k->max_msg)
        r->dlq_level = 1;
    if (r->dlq_level == 1) {
        const size_t fixed = base + dlq_headers_cost(k->in_topic, reason_len, true);
        if (fixed >= k->max_msg)
            r->dlq_level = 2;
        else
            keep = k->max_msg - fixed < vlen ? k->max_msg - fixed : vlen;
    }
    if (r->dlq_level == 2) keep = 0;
    const bool whole = r->dlq_level == 0;
    rd_kafka_headers_t *h =
        r->hdrs && r->dlq_level < 2 ? rd_kafka_headers_copy(r->hdrs) : rd_kafka_headers_new(8);
    char num[32];
    add_header(h, MSG_DLQ_KAFKA_ERROR, m->reason);
    add_header(h, MSG_DLQ_KAFKA_TOPIC, k->in_topic);
    snprintf(num, sizeof num, "%d", (int)m->partition);
    add_header(h, MSG_DLQ_KAFKA_PARTITION, num);
    snprintf(num, sizeof num, "%" PRId64, m->offset);
    add_header(h, MSG_DLQ_KAFKA_OFFSET, num);
    if (!whole) {
        char why[CUT_REASON_LEN + 1], sha[65];
        if (r->dlq_level == 1)
            snprintf(why, sizeof why,
                     "the value was cut to its first %zu of %zu bytes: the whole dead letter "
                     "would exceed the producer's message.max.bytes=%zu",
                     keep, vlen, k->max_msg);
        else
            snprintf(why, sizeof why,
                     "value (%zu bytes), key (%zu bytes) and input headers left out: %s", vlen,
                     m->key_len,
                     refused ? "the broker refused the dead letter as too large"
                             : "the key and input headers alone exceed the producer's "
                               "message.max.bytes");
        add_header(h, MSG_DLQ_KAFKA_CUT, r->dlq_level == 1 ? "value" : "value,key,headers");
        add_header(h, MSG_DLQ_KAFKA_CUT_REASON, why);
        snprintf(num, sizeof num, "%zu", vlen);
        add_header(h, MSG_DLQ_KAFKA_ORIG_SIZE, num);
        sha256_hex(r->null_value ? "" : (const char *)m->data, vlen, sha);
        add_header(h, MSG_DLQ_KAFKA_ORIG_SHA256, sha);
    }
    vu[*n].vtype = RD_KAFKA_VTYPE_VALUE;
    vu[*n].u.mem.ptr = r->null_value ? NULL : m->data;
    vu[(*n)++].u.mem.size = keep;
    if (m->key && r->dlq_level < 2) {
        vu[*n].vtype = RD_KAFKA_VTYPE_KEY;
        vu[*n].u.mem.ptr = m->key;
        vu[(*n)++].u.mem.size = m->key_len;
    }
    *hp = h;
}

/* One produce attempt. Returns librdkafka's error code (0: enqueued). */
static rd_kafka_resp_err_t produce(kafka_broker *k, pipe_msg *m)
{
    krec *r = m->broker_data;
    rd_kafka_vu_t vu[6];
    size_t n = 0;
    rd_kafka_headers_t *h = NULL;
    vu[n].vtype = RD_KAFKA_VTYPE_RKT;
    vu[n++].u.rkt = m->dead ? k->rkt_dlq : k->rkt_out;
    if (m->dead) {
        dead_letter(k, m, vu, &n, &h);
    } else {
        vu[n].vtype = RD_KAFKA_VTYPE_VALUE;
        vu[n].u.mem.ptr = m->out;
        vu[n++].u.mem.size = m->out_len;
        if (m->out_key) {
            vu[n].vtype = RD_KAFKA_VTYPE_KEY;
            vu[n].u.mem.ptr = m->out_key;
            vu[n++].u.mem.size = m->out_key_len;
        }
        /* A copy: the input's headers stay here for a dead letter that may
         * still replace this output (output_too_large). */
        if (r->hdrs) h = rd_kafka_headers_copy(r->hdrs);
    }
    if (h) {
        vu[n].vtype = RD_KAFKA_VTYPE_HEADERS;
        vu[n++].u.headers = h;
    }
    vu[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vu[n++].u.ptr = m;
    rd_kafka_error_t *e = rd_kafka_produceva(k->prod, vu, n);
    if (!e) return RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_resp_err_t code = rd_kafka_error_code(e);
    rd_kafka_error_destroy(e);
    if (h) rd_kafka_headers_destroy(h); /* not taken on failure */
    return code;
}

static bool too_large(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
           e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
}

/* An output the broker will not take because of its size becomes a dead
 * letter (the input is sent instead); a dead letter refused for its size is
 * sent again with value, key and input headers left out (level 2). Returns
 * true if m is to be produced again. */
static bool reroute_to_dlq(pipe_msg *m, rd_kafka_resp_err_t e)
{
    if (!too_large(e)) return false;
    if (m->dead) {
        krec *r = m->broker_data;
        if (r->dlq_level >= 2) return false;
        r->dlq_level = 2;
        return true;
    }
    m->dead = true;
    m->reason_code = "output_too_large";
    snprintf(m->reason, sizeof m->reason,
             "output_too_large: the output (%zu bytes) was refused: %s", m->out_len,
             rd_kafka_err2str(e));
    return true;
}

static void retry_push(kafka_broker *k, pipe_msg *m)
{
    krec *r = m->broker_data;
    r->retry_next = NULL;
    if (k->retry_tail)
        k->retry_tail->retry_next = r;
    else
        k->retry_head = r;
    k->retry_tail = r;
    k->n_retry++;
}

/* One publication of m: enqueued, or finished as not accepted after a
 * permanent error. Returns 1 (and keeps m) when the producer queue is full. */
static int try_publish(kafka_broker *k, pipe_msg *m)
{
    for (;;) {
        rd_kafka_resp_err_t e = produce(k, m);
        if (!e) return 0;
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            k->c.queue_full++;
            return 1;
        }
        if (reroute_to_dlq(m, e)) continue;
        record_failed(k, m, rd_kafka_err2str(e));
        finish(k, m, false);
        return 0;
    }
}

/* Publishes what waited for producer queue room, in order, until the queue
 * is full again. */
static void retry_pending(kafka_broker *k)
{
    while (k->retry_head) {
        krec *r = k->retry_head;
        k->retry_head = r->retry_next;
        if (!k->retry_head) k->retry_tail = NULL;
        k->n_retry--;
        if (try_publish(k, r->msg) == 1) { /* still full: back to the front */
            r->retry_next = k->retry_head;
            k->retry_head = r;
            if (!k->retry_tail) k->retry_tail = r;
            k->n_retry++;
            return;
        }
    }
}

static void k_publish(void *self, pipe_msg *m)
{
    kafka_broker *k = self;
    if (k->closed) {
        finish(k, m, false);
        return;
    }
    if (k->retry_head || try_publish(k, m) == 1) retry_push(k, m); /* keeps the order */
}

/* Delivery report (loop thread, from rd_kafka_poll on the producer). */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    (void)rk;
    kafka_broker *k = opaque;
    pipe_msg *m = rkm->_private;
    if (!rkm->err) {
        k->broker_up = true;
        if (k->health) ph_ok(k->health, mono_ms());
        k->c.delivered++;
        if (m->dead) k->c.dead_lettered++;
        record_delivered(k, m);
        finish(k, m, true);
        return;
    }
    if (rkm->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
        rkm->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
        finish(k, m, false); /* closing: not delivered, not acknowledged */
        return;
    }
    if (reroute_to_dlq(m, rkm->err)) {
        k_publish(k, m);
        return;
    }
    if (rkm->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT && !k->closed && !k->fatal[0]) {
        /* message.timeout.ms passed (brokers down for that long): try again
         * rather than give the partition up; backpressure holds intake. */
        eq_log(EQ_LOG_WARN,
               "kafka: output of %s [%d] offset %" PRId64 " timed out; producing it again",
               k->in_topic, (int)m->partition, m->offset);
        if (k->health) ph_fail(k->health, mono_ms(), rd_kafka_err2str(rkm->err));
        k_publish(k, m);
        return;
    }
    record_failed(k, m, rd_kafka_err2str(rkm->err));
    finish(k, m, false);
}

/* ---- callbacks (loop thread, from the polls) ------------------------------------ */

static void set_fatal(kafka_broker *k, rd_kafka_t *rk, const char *reason)
{
    if (k->fatal[0]) return;
    char buf[400];
    rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof buf);
    snprintf(k->fatal, sizeof k->fatal, "%s %s: %s", rk == k->prod ? "producer" : "consumer",
             orig ? rd_kafka_err2name(orig) : "fatal", orig ? buf : reason);
    eq_log(EQ_LOG_ERROR, "kafka: fatal error: %s", k->fatal);
    k->fatal_pending = true; /* reported outside librdkafka's poll */
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kafka_broker *k = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        set_fatal(k, rk, reason);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        k->broker_up = false;
    } else {
        /* Why the brokers are down, for /readyz: refused, unresolvable,
         * authentication or TLS failing. */
        snprintf(k->last_error, sizeof k->last_error, "%s: %s",
                 rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
        k->last_error_ms = mono_ms();
    }
    if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__SSL ||
        err == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED ||
        err == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED ||
        err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
        err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED)
        k->c.auth_errors++;
    else if (err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        k->c.client_errors++;
    /* Connection failures are logged by librdkafka itself (log_cb): only
     * their summary here. */
    const bool transport = err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__RESOLVE;
    eq_log(transport ? EQ_LOG_DEBUG : EQ_LOG_WARN, "kafka %s: %s: %s",
           rk == k->prod ? "producer" : "consumer", rd_kafka_err2name((rd_kafka_resp_err_t)err),
           reason);
}

/* librdkafka's own log lines (syslog levels), from its threads. A broker
 * connection failing is LOG_ERR there; to the worker it is a warning (it
 * retries; readiness reports the outage). */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    int l = level <= 2   ? EQ_LOG_ERROR
            : level <= 4 ? EQ_LOG_WARN
            : level <= 6 ? EQ_LOG_INFO
                         : EQ_LOG_DEBUG;
    eq_log(l, "librdkafka %s: %s", fac, buf);
}

/* Statistics (consumer, every statistics.interval.ms): broker states for
 * kafka_ready, and the consumer group's state. */
static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    kafka_broker *k = opaque;
    cJSON *j = cJSON_ParseWithLength(json, len);
    if (!j) return 0;
    bool up = false;
    const cJSON *brokers = cJSON_GetObjectItemCaseSensitive(j, "brokers"), *b;
    cJSON_ArrayForEach(b, brokers)
    {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(b, "state");
        if (cJSON_IsString(st) && !strcmp(st->valuestring, "UP")) up = true;
    }
    k->broker_up = up;
    const cJSON *cg = cJSON_GetObjectItemCaseSensitive(j, "cgrp");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(cg, "state");
    if (cJSON_IsString(st)) snprintf(k->cgrp_state, sizeof k->cgrp_state, "%s", st->valuestring);
    cJSON_Delete(j);
    return 0; /* librdkafka frees json */
}

static void list_partitions(const rd_kafka_topic_partition_list_t *l, char *out, size_t len)
{
    size_t n = 0;
    out[0] = 0;
    for (int i = 0; i < l->cnt && n + 16 < len; i++)
        n += (size_t)snprintf(out + n, len - n, "%s%d", i ? "," : "", (int)l->elems[i].partition);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    kafka_broker *k = opaque;
    const bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    char names[256];
    list_partitions(parts, names, sizeof names);
    k->c.rebalances++;
    flush_stores(k); /* what was delivered is stored before anything moves */
    rd_kafka_error_t *e = NULL;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        k->assigns++;
        const uint64_t now = uv_now(k->loop);
        /* Backpressure and draining outlive rebalances: while hard-paused,
         * new partitions are paused BEFORE they are assigned, so the pause
         * is queued ahead of the fetcher's start (see reconcile_pause).
         * Partitions never come in paused otherwise: revocation resumes
         * what we paused (librdkafka keeps an application pause across
         * unassign/assign). */
        rd_kafka_topic_partition_list_t *pre = NULL; /* a copy: keeps parts' err fields */
        if (parts->cnt && k->hard_paused) {
            pre = rd_kafka_topic_partition_list_copy(parts);
            rd_kafka_pause_partitions(rk, pre);
        }
        for (int i = 0; i < parts->cnt; i++) {
            kpart *pt = part_get(k, parts->elems[i].partition);
            if (!pt) continue;
            kof_reset(&pt->t);
            pt->epoch = ++k->epoch_seq;
            pt->assigned = true;
            pt->seen = pt->dropped = false;
            pt->stored = -1;
            pt->first = -1;
            pt->assigned_ms = now;
            /* A failed pause (no such partition object yet) is redone by
             * reconcile_pause once the assignment has settled. */
            pt->app_paused = pre && !pre->elems[i].err;
        }
        if (pre) rd_kafka_topic_partition_list_destroy(pre);
        if (coop)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
        eq_log(EQ_LOG_INFO, "kafka: assigned %s [%s]%s", k->in_topic, names,
               k->intake_stopped ? " (draining: paused)"
               : k->hard_paused  ? " (paused)"
                                 : "");
    } else {
        const bool lost = rd_kafka_assignment_lost(rk);
        int in_flight = 0;
        /* Clear our pause on the partitions leaving (their fetchers are
         * running or stopping, none is starting), so they come back
         * unpaused whenever they are assigned again. */
        rd_kafka_topic_partition_list_t *unpause = NULL;
        for (int i = 0; i < parts->cnt; i++) {
            kpart *pt = part_find(k, parts->elems[i].partition);
            if (!pt || !pt->app_paused) continue;
            if (!unpause) unpause = rd_kafka_topic_partition_list_new(parts->cnt);
            rd_kafka_topic_partition_list_add(unpause, k->in_topic, parts->elems[i].partition);
            pt->app_paused = false;
        }
        if (unpause) {
            rd_kafka_resume_partitions(rk, unpause);
            rd_kafka_topic_partition_list_destroy(unpause);
        }
        for (int i = 0; i < parts->cnt; i++) {
            kpart *pt = part_find(k, parts->elems[i].partition);
            if (!pt) continue;
            in_flight += (int)kof_in_flight(&pt->t);
            pt->assigned = false;
            if (pt->dirty) {
                pt->dirty = false;
                k->n_dirty--;
            }
            kof_reset(&pt->t); /* their records finish without storing */
        }
        if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
            eq_log(EQ_LOG_ERROR, "kafka: rebalance error: %s", rd_kafka_err2str(err));
        if (coop)
            e = rd_kafka_incremental_unassign(rk, parts);
        else
            rd_kafka_assign(rk, NULL);
        eq_log(EQ_LOG_INFO,
               "kafka: %s %s [%s]; %d of their records in flight (left to the next owner)",
               lost ? "lost" : "revoked", k->in_topic, names, in_flight);
    }
    if (e) {
        eq_log(EQ_LOG_ERROR, "kafka: incremental %s: %s",
               err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "assign" : "unassign",
               rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

/* ---- serving the queues ------------------------------------------------------ */

static void drain_fd(int fd)
{
    char buf[64];
    while (fd >= 0 && read(fd, buf, sizeof buf) > 0) {
    }
}

/* Returns true when the consumer queue was emptied (or intake is held). */
static bool serve_consumer(kafka_broker *k)
{
    const bool soft = k->paused && !k->hard_paused && !k->intake_stopped;
    if (k->stash) {
        if (soft) return true; /* hold everything until resume */
        rd_kafka_message_t *rkm = k->stash;
        k->stash = NULL;
        take_record(k, rkm, k->stash_epoch);
    }
    for (int i = 0; i < INTAKE_BUDGET; i++) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(k->cons, 0);
        if (!rkm) return true;
        if (rkm->err) {
            if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                k->c.consumer_errors++;
                char where[256] = "";
                if (rkm->rkt)
                    snprintf(where, sizeof where, " %s [%d]", rd_kafka_topic_name(rkm->rkt),
                             (int)rkm->partition);
                eq_log(EQ_LOG_WARN, "kafka consumer%s: %s: %s", where, rd_kafka_err2name(rkm->err),
                       rd_kafka_message_errstr(rkm));
            }
            rd_kafka_message_destroy(rkm);
            continue;
        }
        /* The pipeline may have paused us inside the previous take_record,
         * and a rebalance callback may have run inside this poll. */
        if (k->paused && !k->hard_paused && !k->intake_stopped) {
            kpart *pt = part_find(k, rkm->partition);
            k->stash = rkm;
            k->stash_epoch = pt ? pt->epoch : 0;
            return true;
        }
        take_record(k, rkm, 0);
    }
    return false;
}

/* Returns true when the producer queue was emptied. */
static bool serve_producer(kafka_broker *k)
{
    bool empty = false;
    for (int i = 0; i < SERVE_BUDGET && !empty; i++)
        empty = rd_kafka_poll(k->prod, 0) == 0;
    retry_pending(k);
    flush_stores(k);
    return empty;
}

static void idle_cb(uv_idle_t *h);

/* Calls on_fatal, once, as the last thing a libuv callback of ours does:
 * never from inside a librdkafka poll, since the callee may well close k. */
static void report_fatal(kafka_broker *k)
{
    if (!k->fatal_pending || k->closed) return;
    k->fatal_pending = false;
    if (k->on_fatal) k->on_fatal(k->ctx, k->fatal);
}

static void serve(kafka_broker *k, bool consumer, bool producer)
{
    if (k->closed) return;
    bool done = true;
    if (producer) done &= serve_producer(k);
    if (consumer) done &= serve_consumer(k);
    if (!done && !k->idle_on) {
        uv_idle_start(&k->idle, idle_cb);
        k->idle_on = true;
    }
}

static void idle_cb(uv_idle_t *h)
{
    kafka_broker *k = h->data;
    bool done = serve_producer(k);
    done &= serve_consumer(k);
    if (done) {
        uv_idle_stop(&k->idle);
        k->idle_on = false;
    }
    report_fatal(k);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    kafka_broker *k = h->data;
    const bool consumer = h == &k->cpoll;
    drain_fd(consumer ? k->cfd[0] : k->pfd[0]);
    serve(k, consumer, !consumer);
    report_fatal(k);
}

static void hard_pause(kafka_broker *k);
static void reconcile_pause(kafka_broker *k);

static void timer_cb(uv_timer_t *h)
{
    kafka_broker *k = h->data;
    uint64_t now = uv_now(k->loop);
    if (k->paused && !k->hard_paused && now - k->paused_at_ms >= HARD_PAUSE_MS) hard_pause(k);
    if (!k->closed) reconcile_pause(k);
    serve(k, true, true);
    if (k->health && !k->closed)
        ph_waiting(k->health, mono_ms(), k->n_retry > 0 || rd_kafka_outq_len(k->prod) > 0);
    if (now - k->last_sweep_ms >= SWEEP_MS && !k->closed) {
        k->last_sweep_ms = now;
        store_positions(k);
    }
    report_fatal(k);
}

/* ---- backpressure --------------------------------------------------------------- */

/* Brings librdkafka's pause state of the assigned partitions to what we
 * want (k->hard_paused), leaving alone partitions assigned less than
 * SETTLE_MS ago: the timer comes back for them.
 *
 * Why the wait: in librdkafka (2.0.2 and later) every pause/resume and the
 * fetcher's start after an assignment each take a version barrier and are
 * queued to the partition separately; when a pause/resume is issued while
 * the fetcher is being started, one of the two can be discarded as
 * outdated, leaving the partition paused, or never started, for good (the
 * worker then sits on its assignment and consumes nothing; see
 * docs/kafka.md "Pausing partitions"). The fetcher starts as soon as the
 * group coordinator has answered the committed-offset query, normally
 * within milliseconds of the assignment. */
static void reconcile_pause(kafka_broker *k)
{
    const bool want = k->hard_paused;
    const uint64_t now = uv_now(k->loop);
    rd_kafka_topic_partition_list_t *l = NULL;
    for (int i = 0; i < k->n_parts; i++) {
        kpart *pt = &k->parts[i];
        if (!pt->assigned || pt->app_paused == want || now - pt->assigned_ms < SETTLE_MS) continue;
        if (!l) l = rd_kafka_topic_partition_list_new(8);
        rd_kafka_topic_partition_list_add(l, k->in_topic, i);
    }
    if (!l) return;
    if (want)
        rd_kafka_pause_partitions(k->cons, l);
    else
        rd_kafka_resume_partitions(k->cons, l);
    for (int i = 0; i < l->cnt; i++) {
        kpart *pt = part_find(k, l->elems[i].partition);
        if (pt && !l->elems[i].err) pt->app_paused = want;
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static void hard_pause(kafka_broker *k)
{
    if (k->hard_paused) return;
    k->hard_paused = true;
    reconcile_pause(k);
}

/* pipe_broker.pause: a soft pause (see the top of this file). */
static void k_pause(void *self)
{
    kafka_broker *k = self;
    if (k->paused || k->closed) return;
    k->paused = true;
    k->paused_at_ms = uv_now(k->loop);
}

static void k_resume(void *self)
{
    kafka_broker *k = self;
    if (!k->paused || k->closed) return;
    k->paused = false;
    if (k->intake_stopped) return;
    if (k->hard_paused) {
        k->hard_paused = false;
        reconcile_pause(k);
    }
    /* Take the stash and what waits behind it on the next loop iteration
     * (resume runs inside a delivery report: not from here). */
    if (!k->idle_on && k->started) {
        uv_idle_start(&k->idle, idle_cb);
        k->idle_on = true;
    }
}

pipe_broker kafka_pipe_broker(kafka_broker *k)
{
    pipe_broker b = {k, k_publish, k_pause, k_resume};
    return b;
}

void kafka_stop_intake(kafka_broker *k)
{
    if (!k || k->intake_stopped || k->closed) return;
    k->intake_stopped = true;
    if (k->stash) {
        kpart *pt = part_find(k, k->stash->partition);
        if (pt) pt->dropped = true;
        k->c.dropped++;
        rd_kafka_message_destroy(k->stash);
        k->stash = NULL;
    }
    if (!k->hard_paused) {
        k->hard_paused = true;
        reconcile_pause(k);
    }
}

/* ---- start-up --------------------------------------------------------------------- */

/* Settings whose values are secrets: error messages show them as "***".
 * Loose on purpose ("pass" also matches a misspelt "pasword"). */
static bool secret_key(const char *key)
{
    static const char *const marks[] = {"pass", "secret", "pem", "jaas", "oauthbearer.config",
                                        "token"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (strstr(key, marks[i])) return true;
    return false;
}

/* err = "kafka setting 'KEY=VALUE'WHAT: librdkafka's message". The value
 * (and a message that repeats it) is hidden for a secret key, and for an
 * unknown key (a misspelt secret's value is still a secret). */
static int conf_err(rd_kafka_conf_res_t res, const char *key, const char *val, const char *what,
                    const char *e, char *err, size_t errlen)
{
    if (res != RD_KAFKA_CONF_UNKNOWN && !secret_key(key))
        return eq_err(err, errlen, "kafka setting '%s=%s'%s: %s", key, val, what, e);
    return eq_err(err, errlen, "kafka setting '%s=***'%s: %s", key, what,
                  *val && strstr(e, val) ? "invalid value (not shown: it may be a secret)" : e);
}

static int conf_set(rd_kafka_conf_t *c, const char *key, const char *val, const char *what,
                    char *err, size_t errlen)
{
    char e[512];
    const rd_kafka_conf_res_t res = rd_kafka_conf_set(c, key, val, e, sizeof e);
    if (res == RD_KAFKA_CONF_OK) return 0;
    return conf_err(res, key, val, what, e, err, errlen);
}

static int make_pipe(int fd[2])
{
    if (pipe(fd) != 0) return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(fd[i], F_SETFL, fcntl(fd[i], F_GETFL) | O_NONBLOCK);
        fcntl(fd[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

static void handle_closed_cb(uv_handle_t *h)
{
    kafka_broker *k = h->data;
    if (--k->open_handles > 0) return;
    for (int i = 0; i < 2; i++) {
        if (k->cfd[i] >= 0) close(k->cfd[i]);
        if (k->pfd[i] >= 0) close(k->pfd[i]);
    }
    for (int i = 0; i < k->n_parts; i++)
        kof_reset(&k->parts[i].t);
    free(k->parts);
    free(k->in_topic);
    free(k->out_topic);
    free(k->dlq_topic);
    free(k);
}

/* Frees the records still in the pipeline's hands (their messages are the
 * pipeline's to free) and closes the handles; k goes with the last one. */
static void release(kafka_broker *k)
{
    k->closed = true;
    while (k->live.next != &k->live) {
        krec *r = k->live.next;
        if (r->msg) r->msg->broker_data = NULL;
        rec_free(r);
    }
    k->retry_head = k->retry_tail = NULL;
    k->n_retry = 0;
    k->open_handles = 4;
    uv_close((uv_handle_t *)&k->cpoll, handle_closed_cb);
    uv_close((uv_handle_t *)&k->ppoll, handle_closed_cb);
    uv_close((uv_handle_t *)&k->timer, handle_closed_cb);
    uv_close((uv_handle_t *)&k->idle, handle_closed_cb);
}

/* Which client a librdkafka property applies to: 'C' consumer, 'P'
 * producer, '*' both, 0 unknown (then both get it, and librdkafka names
 * the error). Read from librdkafka's own property table, so that an
 * unprefixed consumer setting (auto.offset.reset=latest) does not make the
 * producer warn that it ignores it. */
static char prop_scope(const char *name)
{
    char *table = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&table, &len);
    if (!f) return 0;
    rd_kafka_conf_properties_show(f);
    fclose(f);
    char scope = 0;
    const size_t n = strlen(name);
    for (char *line = table; line && *line && !scope;) {
        char *nl = strchr(line, '\n');
        /* "name<spaces>|  C  | ..." */
        if (!strncmp(line, name, n) && (line[n] == ' ' || line[n] == '|')) {
            char *bar = strchr(line, '|');
            if (bar && (!nl || bar < nl))
                for (char *c = bar + 1; *c == ' ' || *c == 'C' || *c == 'P' || *c == '*'; c++)
                    if (*c != ' ') {
                        scope = *c == '*' ? '*' : *c;
                        break;
                    }
        }
        line = nl ? nl + 1 : NULL;
    }
    free(table);
    return scope;
}

static bool is_prefixed(const char *s, const char *prefix, const char **rest)
{
    size_t n = strlen(prefix);
    if (strncmp(s, prefix, n) != 0) return false;
    *rest = s + n;
    return true;
}

kafka_broker *kafka_new(uv_loop_t *loop, const kafka_options *o, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        size_t off;
    } required[] = {
        {"brokers", offsetof(kafka_options, brokers)},
        {"group", offsetof(kafka_options, group)},
        {"in_topic", offsetof(kafka_options, in_topic)},
        {"out_topic", offsetof(kafka_options, out_topic)},
        {"dlq_topic", offsetof(kafka_options, dlq_topic)},
    };
    for (size_t i = 0; i < sizeof required / sizeof *required; i++) {
        const char *v = *(const char *const *)((const char *)o + required[i].off);
        if (!v || !*v) {
            eq_err(err, errlen, "kafka: %s is required", required[i].name);
            return NULL;
        }
    }
    kafka_broker *k = calloc(1, sizeof *k);
    if (!k) {
        eq_err(err, errlen, "out of memory");
        return NULL;
    }
    k->loop = loop;
    k->cfd[0] = k->cfd[1] = k->pfd[0] = k->pfd[1] = -1;
    k->live.next = k->live.prev = &k->live;
    k->poll_interval_ms = o->poll_interval_ms > 0 ? o->poll_interval_ms : 100;
    k->on_fatal = o->on_fatal;
    k->ctx = o->ctx;
    k->health = o->health;
    k->in_topic = strdup(o->in_topic);
    k->out_topic = strdup(o->out_topic);
    k->dlq_topic = strdup(o->dlq_topic);
    rd_kafka_conf_t *cc = rd_kafka_conf_new(), *pc = rd_kafka_conf_new();
    char e[512];
    const char *client_id = o->client_id && *o->client_id ? o->client_id : "embedq";
    bool user_offset_store = false;

    if (!k->in_topic || !k->out_topic || !k->dlq_topic) {
        eq_err(err, errlen, "out of memory");
        goto fail;
    }
    /* Defaults, then the caller's settings (which override them). */
    if (conf_set(cc, "bootstrap.servers", o->brokers, " (--brokers)", err, errlen) ||
        conf_set(pc, "bootstrap.servers", o->brokers, " (--brokers)", err, errlen) ||
        conf_set(cc, "client.id", client_id, " (--client-id)", err, errlen) ||
        conf_set(pc, "client.id", client_id, " (--client-id)", err, errlen) ||
        conf_set(cc, "group.id", o->group, " (--group)", err, errlen) ||
        conf_set(cc, "partition.assignment.strategy", "cooperative-sticky", "", err, errlen) ||
        conf_set(cc, "enable.auto.commit", "true", "", err, errlen) ||
        conf_set(cc, "auto.offset.reset", "earliest", "", err, errlen) ||
        conf_set(cc, "enable.partition.eof", "false", "", err, errlen) ||
        conf_set(cc, "statistics.interval.ms", "1000", "", err, errlen) ||
        conf_set(pc, "enable.idempotence", "true", "", err, errlen) ||
        conf_set(pc, "acks", "all", "", err, errlen) ||
        conf_set(pc, "linger.ms", "5", "", err, errlen))
        goto fail;
    for (int i = 0; i < o->n_config; i++) {
        const char *s = o->config[i], *eq = strchr(s, '=');
        if (!eq || eq == s) {
            /* Not shown: it may be the tail of a secret value cut at a ';'. */
            eq_err(err, errlen,
                   "kafka setting %d of %d (%zu bytes, not shown): expected KEY=VALUE (in "
                   "EMBEDQ_KAFKA_CONFIG, items are ';'-separated and a ';' inside a value is "
                   "written \\;)",
                   i + 1, o->n_config, strlen(s));
            goto fail;
        }
        char key[256];
        if ((size_t)(eq - s) >= sizeof key) {
            eq_err(err, errlen, "kafka setting '%.40s...': key too long", s);
            goto fail;
        }
        memcpy(key, s, (size_t)(eq - s));
        key[eq - s] = 0;
        const char *val = eq + 1, *name = key;
        bool to_c = true, to_p = true;
        if (is_prefixed(key, "consumer.", &name))
            to_p = false;
        else if (is_prefixed(key, "producer.", &name))
            to_c = false;
        if (!*name) {
            eq_err(err, errlen, "kafka setting '%s': empty key", s);
            goto fail;
        }
        if (to_c && to_p) {
            const char scope = prop_scope(name);
            if (scope == 'C') to_p = false;
            if (scope == 'P') to_c = false;
        }
        if (to_c && !strcmp(name, "enable.auto.offset.store")) {
            user_offset_store = true;
            if (strcmp(val, "false")) {
                eq_err(err, errlen,
                       "kafka setting '%s': must stay false: offsets are stored only after "
                       "the output is delivered (at-least-once)",
                       s);
                goto fail;
            }
        }
        char e2[512];
        rd_kafka_conf_res_t res = RD_KAFKA_CONF_OK;
        if (to_c) res = rd_kafka_conf_set(cc, name, val, e2, sizeof e2);
        if (res == RD_KAFKA_CONF_OK && to_p) res = rd_kafka_conf_set(pc, name, val, e2, sizeof e2);
        if (res != RD_KAFKA_CONF_OK) {
            conf_err(res, key, val, "", e2, err, errlen);
            goto fail;
        }
    }
    /* SASL credentials given apart from the list (no ';' splitting, no
     * quoting): they win over any sasl.username/password in it. */
    if ((o->sasl_username && (conf_set(cc, "sasl.username", o->sasl_username,
                                       " (--kafka-sasl-username)", err, errlen) ||
                              conf_set(pc, "sasl.username", o->sasl_username,
                                       " (--kafka-sasl-username)", err, errlen))) ||
        (o->sasl_password && (conf_set(cc, "sasl.password", o->sasl_password,
                                       " (--kafka-sasl-password)", err, errlen) ||
                              conf_set(pc, "sasl.password", o->sasl_password,
                                       " (--kafka-sasl-password)", err, errlen))))
        goto fail;
    (void)user_offset_store;
    if (conf_set(cc, "enable.auto.offset.store", "false", "", err, errlen)) goto fail;
    rd_kafka_conf_set_opaque(cc, k);
    rd_kafka_conf_set_opaque(pc, k);
    rd_kafka_conf_set_rebalance_cb(cc, rebalance_cb);
    rd_kafka_conf_set_error_cb(cc, error_cb);
    rd_kafka_conf_set_stats_cb(cc, stats_cb);
    rd_kafka_conf_set_log_cb(cc, log_cb);
    rd_kafka_conf_set_dr_msg_cb(pc, dr_cb);
    rd_kafka_conf_set_error_cb(pc, error_cb);
    rd_kafka_conf_set_log_cb(pc, log_cb);

    /* The producer's effective record limit: dead letters are cut to fit it
     * (DLQ_FRAMING), so any input the worker accepts can be dead-lettered;
     * a limit too small for even the embedq.* headers is refused. */
    {
        char v[32];
        size_t vs = sizeof v;
        if (rd_kafka_conf_get(pc, "message.max.bytes", v, &vs) != RD_KAFKA_CONF_OK) {
            eq_err(err, errlen, "kafka: cannot read the producer's message.max.bytes");
            goto fail;
        }
        k->max_msg = (size_t)strtoull(v, NULL, 10);
        const size_t need =
            DLQ_FRAMING + dlq_headers_cost(k->in_topic, sizeof(((pipe_msg *)0)->reason), true);
        if (k->max_msg < need) {
            eq_err(err, errlen,
                   "kafka setting producer message.max.bytes=%zu is too small: a dead letter "
                   "of input topic '%s' needs at least %zu bytes for its embedq.* headers and "
                   "framing (with the value left out); raise it (--kafka-config "
                   "producer.message.max.bytes=N)",
                   k->max_msg, k->in_topic, need);
            goto fail;
        }
    }
    k->cons = rd_kafka_new(RD_KAFKA_CONSUMER, cc, e, sizeof e);
    if (!k->cons) {
        eq_err(err, errlen, "kafka consumer: %s", e);
        goto fail;
    }
    cc = NULL; /* owned by the consumer now */
    k->prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, e, sizeof e);
    if (!k->prod) {
        eq_err(err, errlen, "kafka producer: %s", e);
        goto fail;
    }
    pc = NULL;
    rd_kafka_poll_set_consumer(k->cons);
    k->cq = rd_kafka_queue_get_consumer(k->cons);
    k->pq = rd_kafka_queue_get_main(k->prod);
    k->rkt_out = rd_kafka_topic_new(k->prod, k->out_topic, NULL);
    k->rkt_dlq = rd_kafka_topic_new(k->prod, k->dlq_topic, NULL);
    if (!k->cq || !k->pq || !k->rkt_out || !k->rkt_dlq) {
        eq_err(err, errlen, "kafka: cannot get the queues or topic handles: %s",
               rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }
    if (make_pipe(k->cfd) != 0 || make_pipe(k->pfd) != 0) {
        eq_err(err, errlen, "kafka: pipe: %s", strerror(errno));
        goto fail;
    }
    rd_kafka_queue_io_event_enable(k->cq, k->cfd[1], "c", 1);
    rd_kafka_queue_io_event_enable(k->pq, k->pfd[1], "p", 1);
    int rc = uv_poll_init(loop, &k->cpoll, k->cfd[0]);
    if (rc == 0) rc = uv_poll_init(loop, &k->ppoll, k->pfd[0]);
    if (rc != 0) {
        /* uv_poll_init only fails on a bad fd: nothing to close on the loop. */
        eq_err(err, errlen, "kafka: uv_poll_init: %s", uv_strerror(rc));
        goto fail;
    }
    uv_timer_init(loop, &k->timer);
    uv_idle_init(loop, &k->idle);
    k->cpoll.data = k->ppoll.data = k->timer.data = k->idle.data = k;
    return k;

fail:
    if (cc) rd_kafka_conf_destroy(cc);
    if (pc) rd_kafka_conf_destroy(pc);
    if (k->cq) {
        rd_kafka_queue_io_event_enable(k->cq, -1, NULL, 0);
        rd_kafka_queue_destroy(k->cq);
    }
    if (k->pq) {
        rd_kafka_queue_io_event_enable(k->pq, -1, NULL, 0);
        rd_kafka_queue_destroy(k->pq);
    }
    if (k->rkt_out) rd_kafka_topic_destroy(k->rkt_out);
    if (k->rkt_dlq) rd_kafka_topic_destroy(k->rkt_dlq);
    if (k->cons) rd_kafka_destroy_flags(k->cons, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    if (k->prod) rd_kafka_destroy(k->prod);
    for (int i = 0; i < 2; i++) {
        if (k->cfd[i] >= 0) close(k->cfd[i]);
        if (k->pfd[i] >= 0) close(k->pfd[i]);
    }
    free(k->in_topic);
    free(k->out_topic);
    free(k->dlq_topic);
    free(k);
    return NULL;
}

int kafka_start(kafka_broker *k, pipeline *p, char *err, size_t errlen)
{
    if (k->started) return eq_err(err, errlen, "kafka: already started");
    k->pipe = p;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, k->in_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(k->cons, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return eq_err(err, errlen, "kafka: subscribing to %s: %s", k->in_topic,
                      rd_kafka_err2str(e));
    uv_poll_start(&k->cpoll, UV_READABLE, poll_cb);
    uv_poll_start(&k->ppoll, UV_READABLE, poll_cb);
    uv_timer_start(&k->timer, timer_cb, (uint64_t)k->poll_interval_ms,
                   (uint64_t)k->poll_interval_ms);
    k->last_sweep_ms = uv_now(k->loop);
    k->started = true;
    /* Events queued before the pipes were watched wrote their byte already;
     * serve them now. */
    serve(k, true, true);
    eq_log(EQ_LOG_INFO,
           "kafka: consuming %s in group as %s -> %s (dead letters: %s, cut to fit the producer's "
           "message.max.bytes=%zu)",
           k->in_topic, rd_kafka_name(k->cons), k->out_topic, k->dlq_topic, k->max_msg);
    return 0;
}

/* ---- status ------------------------------------------------------------------------ */

/* The offset committed for pt as far as this worker knows: the last one it
 * stored, else where the consumer started this assignment (the group's
 * committed offset, or the reset position when there was none), else -1. */
static int64_t committed_of(const kpart *pt)
{
    return pt->stored >= 0 ? pt->stored : pt->first;
}

bool kafka_ready(kafka_broker *k, char *why, size_t whylen)
{
    if (!k || k->closed) {
        snprintf(why, whylen, "kafka: closed");
        return false;
    }
    if (k->fatal[0]) {
        snprintf(why, whylen, "kafka: fatal error: %s", k->fatal);
        return false;
    }
    if (!k->started) {
        snprintf(why, whylen, "kafka: not started");
        return false;
    }
    if (!k->broker_up) {
        if (k->last_error[0])
            snprintf(why, whylen, "kafka: no broker reachable (last error %.0f s ago: %s)",
                     (double)(mono_ms() - k->last_error_ms) / 1000.0, k->last_error);
        else
            snprintf(why, whylen, "kafka: no broker reachable");
        return false;
    }
    if (k->cgrp_state[0] && strcmp(k->cgrp_state, "up") != 0) {
        snprintf(why, whylen, "kafka: consumer group coordinator not available (state %s)",
                 k->cgrp_state);
        return false;
    }
    for (int i = 0; i < k->n_parts; i++) {
        const kpart *pt = &k->parts[i];
        if (!pt->assigned || pt->t.n_failed == 0) continue;
        snprintf(why, whylen,
                 "kafka: partition %d of %s cannot make progress: %s; its committed offset stays "
                 "at %" PRId64 " until the partition is assigned again (restart or rebalance), "
                 "which reprocesses it",
                 i, k->in_topic, pt->fail_why, committed_of(pt));
        return false;
    }
    return true;
}

int kafka_stuck_partitions(const kafka_broker *k)
{
    int n = 0;
    for (int i = 0; k && !k->closed && i < k->n_parts; i++)
        if (k->parts[i].assigned && k->parts[i].t.n_failed > 0) n++;
    return n;
}

void kafka_lag(kafka_broker *k, void (*fn)(void *ctx, int32_t partition, int64_t lag), void *ctx)
{
    if (!k || k->closed) return;
    rd_kafka_topic_partition_list_t *l = NULL;
    for (int i = 0; i < k->n_parts; i++) {
        if (!k->parts[i].assigned) continue;
        if (!l) l = rd_kafka_topic_partition_list_new(8);
        rd_kafka_topic_partition_list_add(l, k->in_topic, i);
    }
    if (!l) return;
    rd_kafka_position(k->cons, l);
    for (int i = 0; i < l->cnt; i++) {
        const int32_t p = l->elems[i].partition;
        const kpart *pt = &k->parts[p];
        int64_t lo = -1, hi = -1;
        if (rd_kafka_get_watermark_offsets(k->cons, k->in_topic, p, &lo, &hi) || hi < 0) continue;
        /* A stuck partition commits nothing past its failed record: its lag
         * counts from what stays committed. */
        int64_t base = pt->t.n_failed > 0 ? committed_of(pt) : pt->stored;
        if (base < 0) base = kof_first(&pt->t);
        if (base < 0 && !l->elems[i].err) base = l->elems[i].offset;
        if (base < 0) continue;
        fn(ctx, p, hi > base ? hi - base : 0);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

void kafka_stats(const kafka_broker *k, kafka_counters *c)
{
    *c = k->c;
}

/* ---- shutdown ---------------------------------------------------------------------- */

static int ms_left(uint64_t deadline, int floor_ms)
{
    uint64_t now = mono_ms();
    int left = now < deadline ? (int)(deadline - now) : 0;
    return left < floor_ms ? floor_ms : left;
}

/* The offsets this worker stored for the partitions it holds, to commit
 * at close; NULL when there are none. */
static rd_kafka_topic_partition_list_t *final_offsets(kafka_broker *k)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    for (int i = 0; i < k->n_parts; i++) {
        const kpart *pt = &k->parts[i];
        if (!pt->assigned || pt->stored < 0) continue;
        if (!l) l = rd_kafka_topic_partition_list_new(8);
        rd_kafka_topic_partition_list_add(l, k->in_topic, i)->offset = pt->stored;
    }
    return l;
}

/* Commits offs and waits for the answer until deadline (at least 2 s):
 * the first error, the request's or a partition's. The consumer is served
 * meanwhile: while the group rebalances, librdkafka holds the commit until
 * this member has rejoined, and the rejoin needs the application to serve
 * the rebalance (records that come are dropped: never taken, they are
 * left to the next owner). */
static rd_kafka_resp_err_t commit_sync(kafka_broker *k, const rd_kafka_topic_partition_list_t *offs,
                                       rd_kafka_queue_t *q, uint64_t deadline)
{
    rd_kafka_resp_err_t ce = rd_kafka_commit_queue(k->cons, offs, q, NULL, NULL);
    if (ce) return ce;
    const uint64_t until = mono_ms() + (uint64_t)ms_left(deadline, 2000);
    rd_kafka_event_t *ev = NULL;
    while (!(ev = rd_kafka_queue_poll(q, 20)) && mono_ms() < until) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(k->cons, 20);
        if (rkm) rd_kafka_message_destroy(rkm);
    }
    if (!ev) return RD_KAFKA_RESP_ERR__TIMED_OUT;
    ce = rd_kafka_event_error(ev);
    if (!ce) {
        const rd_kafka_topic_partition_list_t *l = rd_kafka_event_topic_partition_list(ev);
        for (int i = 0; l && i < l->cnt; i++)
            if (l->elems[i].err) {
                ce = l->elems[i].err;
                break;
            }
    }
    rd_kafka_event_destroy(ev);
    return ce;
}

/* A commit refused because the group is between generations. */
static bool group_refused(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
           e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS || e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID;
}

/* Purges what the producer still holds and serves the purge reports (each
 * finishes its record as not accepted), then whatever waited for room. */
static void purge_producer(kafka_broker *k)
{
    rd_kafka_purge(k->prod, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 100 && rd_kafka_outq_len(k->prod) > 0; i++)
        rd_kafka_poll(k->prod, 10);
    rd_kafka_poll(k->prod, 0);
    while (k->retry_head) {
        krec *r = k->retry_head;
        k->retry_head = r->retry_next;
        finish(k, r->msg, false);
    }
    k->retry_tail = NULL;
    k->n_retry = 0;
}

static void destroy_handles(kafka_broker *k, bool consumer_closed)
{
    if (k->stash) {
        rd_kafka_message_destroy(k->stash);
        k->stash = NULL;
    }
    rd_kafka_queue_io_event_enable(k->cq, -1, NULL, 0);
    rd_kafka_queue_io_event_enable(k->pq, -1, NULL, 0);
    rd_kafka_queue_destroy(k->cq);
    rd_kafka_queue_destroy(k->pq);
    rd_kafka_topic_destroy(k->rkt_out);
    rd_kafka_topic_destroy(k->rkt_dlq);
    k->cq = k->pq = NULL;
    if (consumer_closed)
        rd_kafka_destroy(k->cons);
    else
        rd_kafka_destroy_flags(k->cons, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    rd_kafka_destroy(k->prod);
    k->cons = k->prod = NULL;
}

int kafka_close(kafka_broker *k, int timeout_ms, char *err, size_t errlen)
{
    const uint64_t deadline = mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    char problems[512] = "";
    size_t np = 0;
#define PROBLEM(...)                                                                               \
    do {                                                                                           \
        if (np < sizeof problems)                                                                  \
            np += (size_t)snprintf(problems + np, sizeof problems - np, "%s", np ? "; " : "");     \
        if (np < sizeof problems)                                                                  \
            np += (size_t)snprintf(problems + np, sizeof problems - np, __VA_ARGS__);              \
    } while (0)

    uv_poll_stop(&k->cpoll);
    uv_poll_stop(&k->ppoll);
    uv_timer_stop(&k->timer);
    uv_idle_stop(&k->idle);
    k->idle_on = false;
    if (!k->intake_stopped) kafka_stop_intake(k);

    /* 1. Publish what waited for room and wait for every delivery report. */
    while (k->retry_head && mono_ms() < deadline) {
        retry_pending(k);
        rd_kafka_poll(k->prod, 50);
    }
    if (!k->retry_head) {
        int left = ms_left(deadline, 0);
        rd_kafka_flush(k->prod, left); /* serves the delivery reports */
    }
    flush_stores(k);
    int undelivered = rd_kafka_outq_len(k->prod) + k->n_retry;
    if (undelivered > 0) {
        PROBLEM("%d records not delivered within the timeout (purged; their inputs are not "
                "committed)",
                undelivered);
        purge_producer(k);
    }
    for (int i = 0; i < k->n_parts; i++)
        if (k->parts[i].assigned && k->parts[i].t.n_failed > 0)
            PROBLEM("partition %d: %s; committed only up to offset %" PRId64, i,
                    k->parts[i].fail_why, committed_of(&k->parts[i]));

    /* 2. Partitions with everything finished: store their positions. */
    store_positions(k);

    /* 3. Commit synchronously, bounded. A group that is rebalancing
     * refuses the commit (ILLEGAL_GENERATION,
     * REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID): typically several workers
     * stopped at once, as in a scale-down, and the others' leaving bumped
     * the generation. librdkafka then rejoins by itself; we serve the
     * consumer (its rebalance events; records still queued are dropped,
     * they were never taken) and commit again under the new generation,
     * until the deadline, naming the offsets this worker stored (a lost
     * assignment clears librdkafka's stored offsets). Without the retry
     * the partitions' last deliveries went to their next owner again. */
    rd_kafka_queue_t *q = rd_kafka_queue_new(k->cons);
    rd_kafka_topic_partition_list_t *offs = final_offsets(k);
    /* First what librdkafka holds as stored: it sends nothing when all of
     * it is committed already (_NO_OFFSET). */
    rd_kafka_resp_err_t ce = commit_sync(k, NULL, q, deadline);
    for (int attempt = 1; offs && group_refused(ce) && ms_left(deadline, 0) > 0; attempt++) {
        /* A refusal makes librdkafka rejoin; a commit sent before the
         * rejoin is done is refused again and restarts the rejoin, so the
         * next one waits for this member's next assignment (or, after
         * REBALANCE_IN_PROGRESS, which keeps the assignment, 1 s). */
        eq_log(EQ_LOG_WARN,
               "kafka: final commit refused by the group (%s, attempt %d): it is rebalancing; "
               "committing again once this worker has rejoined",
               rd_kafka_err2name(ce), attempt);
        const uint64_t a0 = k->assigns;
        const int left = ms_left(deadline, 0);
        const uint64_t until =
            mono_ms() +
            (uint64_t)(ce == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS && left > 1000 ? 1000 : left);
        while (k->assigns == a0 && mono_ms() < until) {
            rd_kafka_message_t *rkm = rd_kafka_consumer_poll(k->cons, 50);
            if (rkm) rd_kafka_message_destroy(rkm);
        }
        if (k->assigns == a0 && ce != RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS) {
            PROBLEM("commit: refused (%s) and the group did not take this worker back before "
                    "the drain timeout",
                    rd_kafka_err2name(ce));
            ce = RD_KAFKA_RESP_ERR__NO_OFFSET; /* said */
            break;
        }
        ce = commit_sync(k, offs, q, deadline);
    }
    if (offs) rd_kafka_topic_partition_list_destroy(offs);
    if (ce && ce != RD_KAFKA_RESP_ERR__NO_OFFSET) PROBLEM("commit: %s", rd_kafka_err2str(ce));

    /* 4. Leave the group (serving the final revoke), bounded. */
    rd_kafka_error_t *xe = rd_kafka_consumer_close_queue(k->cons, q);
    bool closed = false;
    if (xe) {
        PROBLEM("leaving the group: %s", rd_kafka_error_string(xe));
        rd_kafka_error_destroy(xe);
    } else {
        const uint64_t close_deadline = mono_ms() + (uint64_t)ms_left(deadline, 3000);
        /* The event API: records and errors still queued come back as events
         * (dropped here; rd_kafka_queue_poll_callback would assert on them);
         * the final revoke is handled like any other. */
        while (!(closed = rd_kafka_consumer_closed(k->cons)) && mono_ms() < close_deadline) {
            rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
            if (!ev) continue;
            if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
                rebalance_cb(k->cons, rd_kafka_event_error(ev),
                             rd_kafka_event_topic_partition_list(ev), k);
            rd_kafka_event_destroy(ev);
        }
        if (!closed) PROBLEM("leaving the group timed out");
    }
    rd_kafka_queue_destroy(q);

    /* 5. Destroy. */
    destroy_handles(k, closed);
    eq_log(EQ_LOG_INFO,
           "kafka: closed: %" PRIu64 " records consumed, %" PRIu64 " delivered (%" PRIu64
           " dead letters), %" PRIu64 " failed, %" PRIu64 " consumer errors%s%s",
           k->c.consumed, k->c.delivered, k->c.dead_lettered, k->c.delivery_failed,
           k->c.consumer_errors, np ? "; " : "", problems);
    release(k);
    if (np) return eq_err(err, errlen, "kafka: %s", problems);
    return 0;
#undef PROBLEM
}

void kafka_free(kafka_broker *k)
{
    if (!k || k->closed) return;
    uv_poll_stop(&k->cpoll);
    uv_poll_stop(&k->ppoll);
    uv_timer_stop(&k->timer);
    uv_idle_stop(&k->idle);
    if (k->pipe) purge_producer(k);
    destroy_handles(k, false);
    release(k);
}

#else /* !EMBEDQ_HAVE_KAFKA: built without librdkafka */

struct kafka_broker {
    int unused;
};

kafka_broker *kafka_new(uv_loop_t *loop, const kafka_options *o, char *err, size_t errlen)
{
    (void)loop;
    (void)o;
    eq_err(err, errlen,
           "this embedq was built without librdkafka: --source kafka is not available "
           "(install librdkafka-dev and rebuild)");
    return NULL;
}

pipe_broker kafka_pipe_broker(kafka_broker *k)
{
    pipe_broker b = {k, NULL, NULL, NULL};
    return b;
}

int kafka_start(kafka_broker *k, pipeline *p, char *err, size_t errlen)
{
    (void)k;
    (void)p;
    return eq_err(err, errlen, "built without librdkafka");
}

void kafka_stop_intake(kafka_broker *k)
{
    (void)k;
}

int kafka_close(kafka_broker *k, int timeout_ms, char *err, size_t errlen)
{
    (void)k;
    (void)timeout_ms;
    (void)err;
    (void)errlen;
    return 0;
}

bool kafka_ready(kafka_broker *k, char *why, size_t whylen)
{
    (void)k;
    snprintf(why, whylen, "built without librdkafka");
    return false;
}

void kafka_lag(kafka_broker *k, void (*fn)(void *ctx, int32_t partition, int64_t lag), void *ctx)
{
    (void)k;
    (void)fn;
    (void)ctx;
}

void kafka_stats(const kafka_broker *k, kafka_counters *c)
{
    (void)k;
    memset(c, 0, sizeof *c);
}

int kafka_stuck_partitions(const kafka_broker *k)
{
    (void)k;
    return 0;
}

void kafka_free(kafka_broker *k)
{
    (void)k;
}

#endif
