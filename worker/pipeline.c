/* pipeline.c - decode + tokenize pool, batcher, engine thread, hand-back to
 * the loop thread (see pipeline.h).
 *
 * Queues (one mutex, p->mu, guards all four):
 *   dec   loop thread -> pool          submitted, not yet decoded
 *   ready pool -> engine thread         tokenized, waiting for a batch
 *   enc   engine thread -> pool         embedded, output not yet encoded
 *   done  pool/engine -> loop thread    output encoded or dead letter;
 *                                       the loop is woken by done_async
 * While the engine runs batch k the pool encodes the outputs of batch k-1
 * and tokenizes batch k+1, and the loop thread publishes batch k-2: the
 * engine thread only copies each vector out (encoding a 1024-float JSON
 * output costs tens of microseconds, a whole batch milliseconds of GPU
 * idle time if done there). The pool serves `enc` before `dec`.
 *
 * The HTTP lane (pipeline.h, pipe_query) has queues of its own, served
 * first: qdec (queries to tokenize), hi (their inputs, tokenized), qenc
 * (queries whose inputs are all embedded: the reply to encode), qdone (to
 * the loop thread). Its inputs are items of their query's array, never
 * freed one by one (free_list skips them).
 *
 * Batching: the engine thread takes messages from `ready` in arrival order
 * while they fit the token budget (and at most PIPE_MAX_BATCH_SEQS of
 * them). It starts a batch when the budget is full, when the oldest ready
 * message has waited max_wait_ms, or at once while draining. A message's
 * vector does not depend on its batch (the engine's packed batches equal
 * single sequences), so batching is free to regroup.
 */
#include "pipeline.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

#define PIPE_MAX_BATCH_SEQS 1024

struct pipeline {
    uv_loop_t *loop;
    pipe_options o;
    pipe_broker br;
    int hidden;

    pthread_mutex_t mu;
    pthread_cond_t cv_dec, cv_ready;
    pipe_msg *dec_head, *dec_tail;
    pipe_msg *ready_head, *ready_tail;
    long ready_tokens;
    pipe_msg *enc_head, *enc_tail;
    pipe_msg *done_head, *done_tail;
    pipe_msg *hi_head, *hi_tail; /* HTTP inputs, tokenized */
    pipe_query *qdec_head, *qdec_tail, *qenc_head, *qenc_tail, *qdone_head, *qdone_tail;
    bool stop, draining;
    char fatal[512]; /* guarded by mu until fatal_set, then read-only */
    atomic_bool fatal_set;
    bool fatal_reported; /* loop thread */

    uv_async_t done_async;
    pthread_t *pool;
    int n_pool;
    pthread_t engine_thread;
    bool engine_started;

    /* loop thread */
    pipe_query *live; /* queries submitted, done() not yet called */
    int q_inputs;     /* their inputs */
    atomic_int q_inputs_pub;
    int in_flight;
    uint64_t in_flight_bytes; /* sum of the charges of those messages */
    bool paused;

    /* engine thread scratch, sized at start */
    int32_t *ids, *cu;
    int *dims;
    float *vecs; /* PIPE_MAX_BATCH_SEQS x hidden */
    pipe_msg **batch;

    atomic_uint_least64_t consumed, produced, dead, not_accepted, tokens, batches;
    atomic_uint_least64_t engine_errors; /* failed eq_embed calls (fatal included) */
    atomic_int in_flight_pub;
    atomic_uint_least64_t in_flight_bytes_pub;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- messages ---------------------------------------------------------- */

static void set_dead(pipe_msg *m, const char *code, const char *detail)
{
    m->dead = true;
    m->reason_code = code;
    snprintf(m->reason, sizeof m->reason, "%s: %.200s", code, detail);
}

/* ---- queues (p->mu held) ----------------------------------------------- */

static void push(pipe_msg **head, pipe_msg **tail, pipe_msg *m)
{
    m->next = NULL;
    if (*tail)
        (*tail)->next = m;
    else
        *head = m;
    *tail = m;
}

static pipe_msg *pop(pipe_msg **head, pipe_msg **tail)
{
    pipe_msg *m = *head;
    if (!m) return NULL;
    *head = m->next;
    if (!*head) *tail = NULL;
    m->next = NULL;
    return m;
}

/* Any thread: hands m to the loop thread. */
static void to_done(pipeline *p, pipe_msg *m)
{
    pthread_mutex_lock(&p->mu);
    push(&p->done_head, &p->done_tail, m);
    pthread_mutex_unlock(&p->mu);
    uv_async_send(&p->done_async);
}

static void qpush(pipe_query **head, pipe_query **tail, pipe_query *q)
{
    q->next = NULL;
    if (*tail)
        (*tail)->next = q;
    else
        *head = q;
    *tail = q;
}

static pipe_query *qpop(pipe_query **head, pipe_query **tail)
{
    pipe_query *q = *head;
    if (!q) return NULL;
    *head = q->next;
    if (!*head) *tail = NULL;
    q->next = NULL;
    return q;
}

/* p->mu held: one of q's inputs is finished (embedded or dead); the last
 * one sends q to the pool for its reply. */
static void query_item_done_locked(pipeline *p, pipe_msg *m)
{
    pipe_query *q = m->query;
    q->tokens += m->dead ? 0 : m->n_ids;
    if (--q->remaining == 0) {
        qpush(&p->qenc_head, &p->qenc_tail, q);
        pthread_cond_broadcast(&p->cv_dec);
    }
}

/* ---- pool: decode + validate + tokenize --------------------------------- */

static void prepare(pipeline *p, pipe_msg *m)
{
    if (m->dead) return; /* the broker already decided (e.g. too many deliveries) */
    msg_error me;
    memset(&me, 0, sizeof me);
    int rc;
    if (m->n_fields > 0)
        rc = msg_decode_fields((const char *const *)m->field_names, m->field_name_lens,
                               (const char *const *)m->field_values, m->field_value_lens,
                               m->n_fields, &p->o.limits, &m->in, &me);
    else
        rc = msg_decode(m->data, m->len, &p->o.limits, &m->in, &me);
    if (rc != 0) {
        set_dead(m, msg_error_code_static(&me), me.detail);
        return;
    }
    char err[EQ_ERRLEN];
    eq_encode_info info;
    int n = eq_encode_ex(p->o.engine, m->in.text, m->in.text_len, m->in.instruction,
                         m->in.instruction_len, &m->ids, &info, err, sizeof err);
    if (n == EQ_ENCODE_INSTRUCTION_TOO_LONG) {
        set_dead(m, "instruction_too_long", err);
        return;
    }
    if (n < 0) {
        set_dead(m, "invalid_text", err);
        return;
    }
    m->n_ids = n;
    m->truncated = info.truncated;
    if (info.truncated && p->o.long_policy == PIPE_LONG_REJECT) {
        char d[200];
        const int limit = eq_max_seq_len(p->o.engine);
        if (info.instruction_tokens > 0)
            snprintf(d, sizeof d,
                     "text longer than the %d tokens that the %d-token limit leaves after the "
                     "instruction's %d (policy: reject)",
                     limit - 1 - info.instruction_tokens, limit, info.instruction_tokens);
        else
            snprintf(d, sizeof d, "text longer than the %d-token limit (policy: reject)", limit);
        set_dead(m, "text_too_long", d);
    }
}

static void finish_output(pipeline *p, pipe_msg *m, const float *v);

/* Pool thread: tokenizes (or checks the token ids of) every input of q.
 * Returns true when all are ready for the engine. */
static bool prepare_query(pipeline *p, pipe_query *q)
{
    const int limit = eq_max_seq_len(p->o.engine);
    const int vocab = eq_config(p->o.engine)->vocab_rows;
    const int32_t eos = eq_eos_id(p->o.engine);
    bool ok = true;
    for (int i = 0; i < q->n && ok; i++) {
        pipe_msg *m = &q->items[i];
        if (m->ids) { /* token ids from the client */
            for (int k = 0; k < m->n_ids; k++)
                if (m->ids[k] < 0 || m->ids[k] >= vocab) {
                    char d[120];
                    snprintf(d, sizeof d, "token id %ld at position %d is outside 0..%d",
                             (long)m->ids[k], k, vocab - 1);
                    set_dead(m, "invalid_token_id", d);
                    break;
                }
            if (m->dead) {
                ok = false;
                break;
            }
            const bool has_eos = m->n_ids > 0 && m->ids[m->n_ids - 1] == eos;
            const int content = m->n_ids - (has_eos ? 1 : 0);
            if (content > limit - 1) {
                m->truncated = true;
                m->n_ids = limit - 1;
            } else {
                m->n_ids = content;
            }
            m->ids[m->n_ids++] = eos; /* room: n_ids <= the array's length */
        } else {
            char err[EQ_ERRLEN];
            eq_encode_info info;
            int n = eq_encode_ex(p->o.engine, (const char *)m->data, m->len, q->instruction,
                                 q->instruction_len, &m->ids, &info, err, sizeof err);
            if (n == EQ_ENCODE_INSTRUCTION_TOO_LONG) {
                set_dead(m, "instruction_too_long", err);
                ok = false;
                break;
            }
            if (n < 0) {
                set_dead(m, "invalid_text", err);
                ok = false;
                break;
            }
            m->n_ids = n;
            m->truncated = info.truncated;
        }
        if (m->truncated && q->reject_long) {
            char d[200];
            snprintf(d, sizeof d, "input longer than the %d-token limit (truncate: false)", limit);
            set_dead(m, "text_too_long", d);
            ok = false;
        }
    }
    return ok;
}

/* Pool thread: one query taken from qdec. */
static void pool_query(pipeline *p, pipe_query *q)
{
    const bool ok = prepare_query(p, q);
    pthread_mutex_lock(&p->mu);
    if (!ok) { /* answered at once: nothing goes to the engine */
        q->remaining = 0;
        qpush(&p->qenc_head, &p->qenc_tail, q);
        pthread_cond_broadcast(&p->cv_dec);
    } else {
        q->remaining = q->n;
        const uint64_t t = now_ns();
        for (int i = 0; i < q->n; i++) {
            q->items[i].t_ready_ns = t;
            push(&p->hi_head, &p->hi_tail, &q->items[i]);
        }
        pthread_cond_signal(&p->cv_ready);
    }
    pthread_mutex_unlock(&p->mu);
}

static void *pool_main(void *arg)
{
    pipeline *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->dec_head && !p->enc_head && !p->qdec_head && !p->qenc_head && !p->stop)
            pthread_cond_wait(&p->cv_dec, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        /* The HTTP lane first: replies, then queries to tokenize. */
        pipe_query *q = qpop(&p->qenc_head, &p->qenc_tail);
        if (q) {
            pthread_mutex_unlock(&p->mu);
            q->encode(q);
            pthread_mutex_lock(&p->mu);
            qpush(&p->qdone_head, &p->qdone_tail, q);
            pthread_mutex_unlock(&p->mu);
            uv_async_send(&p->done_async);
            continue;
        }
        q = qpop(&p->qdec_head, &p->qdec_tail);
        if (q) {
            pthread_mutex_unlock(&p->mu);
            pool_query(p, q);
            continue;
        }
        pipe_msg *m =
            p->enc_head ? pop(&p->enc_head, &p->enc_tail) : pop(&p->dec_head, &p->dec_tail);
        pthread_mutex_unlock(&p->mu);

        if (m->vec) {
            finish_output(p, m, m->vec);
            free(m->vec);
            m->vec = NULL;
            to_done(p, m);
            continue;
        }
        prepare(p, m);
        if (m->dead) {
            to_done(p, m);
            continue;
        }
        pthread_mutex_lock(&p->mu);
        m->t_ready_ns = now_ns();
        push(&p->ready_head, &p->ready_tail, m);
        p->ready_tokens += m->n_ids;
        pthread_cond_signal(&p->cv_ready);
        pthread_mutex_unlock(&p->mu);
    }
}

/* ---- engine thread -------------------------------------------------------- */

/* Encodes m's output from vector v (hidden floats, the first d set). */
static void finish_output(pipeline *p, pipe_msg *m, const float *v)
{
    const int d = m->in.dimensions ? m->in.dimensions : p->hidden;
    msg_buf out = {0}, key = {0};
    msg_error me;
    memset(&me, 0, sizeof me);
    int rc;
    switch (p->o.out_format) {
    case PIPE_OUT_JSON:
        rc = msg_encode_json(&m->in, p->o.model_name, v, d, m->n_ids, m->truncated, &out, &me);
        break;
    case PIPE_OUT_QDRANT:
        rc = msg_encode_qdrant(&m->in, p->o.qdrant_collection, p->o.model_name, v, d, m->n_ids,
                               m->truncated, &out, &me);
        break;
    case PIPE_OUT_PGVECTOR:
        rc = msg_encode_pgvector(&m->in, p->o.model_name, v, d, m->n_ids, m->truncated, &out, &me);
        break;
    default:
        rc = msg_encode_msgpack(&m->in, p->o.model_name, v, d, m->n_ids, m->truncated, &out, &me);
        break;
    }
    if (rc == 0) rc = msg_output_key(&m->in, m->key, m->key_len, &key, &me);
    if (rc != 0) {
        msg_buf_free(&out);
        msg_buf_free(&key);
        set_dead(m, msg_error_code_static(&me), me.detail);
        return;
    }
    m->out = out.data;
    m->out_len = out.len;
    m->out_key = key.data;
    m->out_key_len = key.len;
}

/* Runs msgs[0..n) as one packed batch. Returns 0, or -1 if the engine is
 * dead (p->fatal set; the messages are left to pipe_free). */
static int run_batch(pipeline *p, pipe_msg **msgs, int n)
{
    int total = 0;
    p->cu[0] = 0;
    for (int i = 0; i < n; i++) {
        memcpy(p->ids + total, msgs[i]->ids, sizeof(int32_t) * (size_t)msgs[i]->n_ids);
        total += msgs[i]->n_ids;
        p->cu[i + 1] = total;
        p->dims[i] = msgs[i]->in.dimensions;
    }
    char err[EQ_ERRLEN];
    uint64_t t0 = now_ns();
    int rc = eq_embed(p->o.engine, p->ids, p->cu, n, p->dims, p->vecs, err, sizeof err);
    if (rc == 0) {
        if (p->o.on_batch) p->o.on_batch(p->o.ctx, n, total, (double)(now_ns() - t0) * 1e-9);
        atomic_fetch_add(&p->tokens, (uint64_t)total);
        atomic_fetch_add(&p->batches, 1);
        /* Hand the vectors to the pool for encoding (see the top). */
        int queued = 0;
        for (int i = 0; i < n; i++) {
            const float *v = p->vecs + (size_t)i * (size_t)p->hidden;
            const int d = msgs[i]->in.dimensions ? msgs[i]->in.dimensions : p->hidden;
            msgs[i]->vec = malloc(sizeof(float) * (size_t)d);
            if (msgs[i]->query) { /* HTTP: its query's encoder reads vec */
                if (msgs[i]->vec)
                    memcpy(msgs[i]->vec, v, sizeof(float) * (size_t)d);
                else
                    set_dead(msgs[i], "internal", "out of memory");
                queued++;
                continue;
            }
            if (!msgs[i]->vec) { /* out of memory: encode here */
                finish_output(p, msgs[i], v);
                to_done(p, msgs[i]);
                msgs[i] = NULL;
                continue;
            }
            memcpy(msgs[i]->vec, v, sizeof(float) * (size_t)d);
            queued++;
        }
        if (queued) {
            pthread_mutex_lock(&p->mu);
            for (int i = 0; i < n; i++) {
                if (!msgs[i]) continue;
                if (msgs[i]->query)
                    query_item_done_locked(p, msgs[i]);
                else
                    push(&p->enc_head, &p->enc_tail, msgs[i]);
            }
            pthread_cond_broadcast(&p->cv_dec);
            pthread_mutex_unlock(&p->mu);
        }
        return 0;
    }
    atomic_fetch_add(&p->engine_errors, 1);
    const char *fatal = eq_fatal_error(p->o.engine);
    if (fatal) goto dead_engine;
    if (n == 1) {
        set_dead(msgs[0], "embedding_failed", err);
        if (msgs[0]->query) {
            pthread_mutex_lock(&p->mu);
            query_item_done_locked(p, msgs[0]);
            pthread_mutex_unlock(&p->mu);
        } else {
            to_done(p, msgs[0]);
        }
        return 0;
    }
    /* One input spoiled the batch (e.g. an overflow): run each alone, so
     * only the culprit becomes a dead letter. */
    for (int i = 0; i < n; i++)
        if (run_batch(p, &msgs[i], 1) != 0) return -1;
    return 0;
dead_engine:
    pthread_mutex_lock(&p->mu);
    if (!atomic_load(&p->fatal_set)) {
        snprintf(p->fatal, sizeof p->fatal, "%s", fatal);
        atomic_store(&p->fatal_set, true);
    }
    /* Nothing of this batch is published: back to nobody (freed by
     * pipe_free, unacknowledged). */
    for (int i = 0; i < n; i++)
        if (!msgs[i]->query) push(&p->ready_head, &p->ready_tail, msgs[i]);
    /* HTTP inputs: their queries are answered by pipe_free (aborted). */
    pthread_mutex_unlock(&p->mu);
    uv_async_send(&p->done_async);
    return -1;
}

static void *engine_main(void *arg)
{
    pipeline *p = arg;
    const uint64_t wait_ns = (uint64_t)p->o.max_wait_ms * 1000000ull;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        for (;;) {
            if (p->stop) {
                pthread_mutex_unlock(&p->mu);
                return NULL;
            }
            if (p->hi_head) break; /* a query waits: no waiting to fill */
            if (p->ready_head) {
                if (p->draining || p->ready_tokens >= p->o.batch_tokens) break;
                uint64_t deadline = p->ready_head->t_ready_ns + wait_ns, t = now_ns();
                if (t >= deadline) break;
                /* pthread_cond_timedwait takes CLOCK_REALTIME */
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                uint64_t left = deadline - t;
                ts.tv_sec += (time_t)(left / 1000000000ull);
                ts.tv_nsec += (long)(left % 1000000000ull);
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&p->cv_ready, &p->mu, &ts);
            } else {
                pthread_cond_wait(&p->cv_ready, &p->mu);
            }
        }
        int n = 0;
        long tokens = 0;
        /* HTTP inputs first, then queue messages, in one token budget. */
        while (p->hi_head && n < PIPE_MAX_BATCH_SEQS &&
               (n == 0 || tokens + p->hi_head->n_ids <= p->o.batch_tokens)) {
            pipe_msg *m = pop(&p->hi_head, &p->hi_tail);
            tokens += m->n_ids;
            p->batch[n++] = m;
        }
        while (!p->hi_head && p->ready_head && n < PIPE_MAX_BATCH_SEQS &&
               (n == 0 || tokens + p->ready_head->n_ids <= p->o.batch_tokens)) {
            pipe_msg *m = pop(&p->ready_head, &p->ready_tail);
            tokens += m->n_ids;
            p->ready_tokens -= m->n_ids;
            p->batch[n++] = m;
        }
        pthread_mutex_unlock(&p->mu);
        if (run_batch(p, p->batch, n) != 0) {
            /* The engine is dead: idle until pipe_free. */
            pthread_mutex_lock(&p->mu);
            while (!p->stop)
                pthread_cond_wait(&p->cv_ready, &p->mu);
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
    }
}

/* Frees a list's messages; HTTP inputs belong to their query (skipped). */
static void free_list(pipe_msg *m)
{
    while (m) {
        pipe_msg *n = m->next;
        if (!m->query) pipe_msg_free(m);
        m = n;
    }
}

static void live_remove(pipeline *p, pipe_query *q)
{
    if (q->live_prev)
        q->live_prev->live_next = q->live_next;
    else
        p->live = q->live_next;
    if (q->live_next) q->live_next->live_prev = q->live_prev;
    q->live_prev = q->live_next = NULL;
    p->q_inputs -= q->n;
    atomic_store(&p->q_inputs_pub, p->q_inputs);
}

/* ---- loop thread ---------------------------------------------------------- */

static void done_cb(uv_async_t *h)
{
    pipeline *p = h->data;
    pthread_mutex_lock(&p->mu);
    pipe_msg *list = p->done_head;
    p->done_head = p->done_tail = NULL;
    pipe_query *qlist = NULL;
    if (!atomic_load(&p->fatal_set)) { /* else pipe_free answers them */
        qlist = p->qdone_head;
        p->qdone_head = p->qdone_tail = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    while (qlist) { /* queries first: a client waits */
        pipe_query *q = qlist;
        qlist = q->next;
        q->next = NULL;
        live_remove(p, q);
        q->done(q);
    }
    if (atomic_load(&p->fatal_set)) {
        /* The engine is dead: publish nothing more (what is left is never
         * acknowledged, so the broker redelivers it to a healthy worker).
         * on_fatal may shut everything down, this pipeline included. */
        free_list(list);
        if (!p->fatal_reported) {
            p->fatal_reported = true;
            eq_log(EQ_LOG_ERROR, "engine failed: %s; no more output is published", p->fatal);
            if (p->o.on_fatal) p->o.on_fatal(p->o.ctx, p->fatal);
        }
        return;
    }
    while (list) {
        pipe_msg *m = list;
        list = m->next;
        m->next = NULL;
        p->br.publish(p->br.self, m);
    }
}

uint64_t pipe_charge(const pipeline *p, size_t input_bytes)
{
    const uint64_t in = input_bytes, max_seq = (uint64_t)eq_max_seq_len(p->o.engine);
    const uint64_t tokens = in + 64 < max_seq ? in + 64 : max_seq;
    return 3 * in + 4 * tokens + 28 * (uint64_t)p->hidden + 1024;
}

/* What m holds as read: its value, key, plain fields and broker copies. */
static size_t input_bytes(const pipe_msg *m)
{
    size_t n = m->len + m->key_len + m->broker_bytes;
    for (int i = 0; i < m->n_fields; i++)
        n += m->field_name_lens[i] + m->field_value_lens[i];
    return n;
}

static bool over_bounds(const pipeline *p)
{
    return p->in_flight >= p->o.max_in_flight ||
           (p->o.max_in_flight_bytes && p->in_flight_bytes >= p->o.max_in_flight_bytes);
}

static bool under_half(const pipeline *p)
{
    return p->in_flight <= p->o.max_in_flight / 2 &&
           (!p->o.max_in_flight_bytes || p->in_flight_bytes <= p->o.max_in_flight_bytes / 2);
}

void pipe_room(const pipeline *p, int *msgs, uint64_t *bytes)
{
    *msgs = p->in_flight < p->o.max_in_flight ? p->o.max_in_flight - p->in_flight : 0;
    if (!p->o.max_in_flight_bytes)
        *bytes = UINT64_MAX;
    else
        *bytes = p->in_flight_bytes < p->o.max_in_flight_bytes
                     ? p->o.max_in_flight_bytes - p->in_flight_bytes
                     : 0;
}

void pipe_submit(pipeline *p, pipe_msg *m)
{
    m->charge = pipe_charge(p, input_bytes(m));
    p->in_flight++;
    p->in_flight_bytes += m->charge;
    atomic_store(&p->in_flight_pub, p->in_flight);
    atomic_store(&p->in_flight_bytes_pub, p->in_flight_bytes);
    atomic_fetch_add(&p->consumed, 1);
    m->t_submit_ns = now_ns();
    pthread_mutex_lock(&p->mu);
    push(&p->dec_head, &p->dec_tail, m);
    pthread_cond_signal(&p->cv_dec);
    pthread_mutex_unlock(&p->mu);
    if (!p->paused && over_bounds(p)) {
        p->paused = true;
        p->br.pause(p->br.self);
    }
}

void pipe_finish(pipeline *p, pipe_msg *m, bool accepted)
{
    if (p->o.on_finish) p->o.on_finish(p->o.ctx, m, accepted);
    if (!accepted)
        atomic_fetch_add(&p->not_accepted, 1);
    else if (m->dead)
        atomic_fetch_add(&p->dead, 1);
    else
        atomic_fetch_add(&p->produced, 1);
    EQ_ASSERT(p->in_flight_bytes >= m->charge);
    p->in_flight_bytes -= m->charge;
    pipe_msg_free(m);
    p->in_flight--;
    atomic_store(&p->in_flight_pub, p->in_flight);
    atomic_store(&p->in_flight_bytes_pub, p->in_flight_bytes);
    if (p->paused && under_half(p)) {
        p->paused = false;
        p->br.resume(p->br.self);
    }
}

pipe_query *pipe_query_new(int n)
{
    pipe_query *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->items = calloc(n > 0 ? (size_t)n : 1, sizeof *q->items);
    if (!q->items) {
        free(q);
        return NULL;
    }
    q->n = n;
    for (int i = 0; i < n; i++) {
        q->items[i].partition = -1;
        q->items[i].query = q;
    }
    return q;
}

void pipe_query_free(pipe_query *q)
{
    if (!q) return;
    for (int i = 0; i < q->n; i++) {
        pipe_msg *m = &q->items[i];
        free(m->data);
        free(m->ids);
        free(m->vec);
        msg_input_free(&m->in);
    }
    free(q->items);
    free(q->instruction);
    free(q);
}

int pipe_query_submit(pipeline *p, pipe_query *q)
{
    if (p->draining || atomic_load(&p->fatal_set)) return PIPE_STOPPED;
    if (p->q_inputs > 0 && p->q_inputs + q->n > p->o.max_query_inputs) return PIPE_BUSY;
    if (p->o.max_query_inputs < 1) return PIPE_BUSY;
    q->live_prev = NULL;
    q->live_next = p->live;
    if (p->live) p->live->live_prev = q;
    p->live = q;
    p->q_inputs += q->n;
    atomic_store(&p->q_inputs_pub, p->q_inputs);
    pthread_mutex_lock(&p->mu);
    qpush(&p->qdec_head, &p->qdec_tail, q);
    pthread_cond_signal(&p->cv_dec);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int pipe_query_inputs(const pipeline *p)
{
    return atomic_load(&((pipeline *)p)->q_inputs_pub);
}

int pipe_hidden(const pipeline *p)
{
    return p->hidden;
}

void pipe_drain(pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    p->draining = true;
    pthread_cond_broadcast(&p->cv_ready);
    pthread_mutex_unlock(&p->mu);
}

int pipe_in_flight(const pipeline *p)
{
    return p->in_flight;
}

const char *pipe_fatal(const pipeline *p)
{
    return atomic_load(&((pipeline *)p)->fatal_set) ? p->fatal : NULL;
}

void pipe_stats(const pipeline *p, pipe_counters *c)
{
    pipeline *q = (pipeline *)p;
    c->consumed = atomic_load(&q->consumed);
    c->produced = atomic_load(&q->produced);
    c->dead_lettered = atomic_load(&q->dead);
    c->not_accepted = atomic_load(&q->not_accepted);
    c->tokens = atomic_load(&q->tokens);
    c->batches = atomic_load(&q->batches);
    c->engine_errors = atomic_load(&q->engine_errors);
    c->in_flight = atomic_load(&q->in_flight_pub);
    c->in_flight_bytes = atomic_load(&q->in_flight_bytes_pub);
}

/* ---- start / stop ----------------------------------------------------------- */

pipeline *pipe_new(uv_loop_t *loop, const pipe_options *opt, const pipe_broker *broker, char *err,
                   size_t errlen)
{
    if (opt->batch_tokens < 1 || opt->max_in_flight < 1 || opt->tokenize_threads < 1 ||
        opt->max_wait_ms < 0) {
        eq_err(err, errlen,
               "pipeline: batch_tokens, max_in_flight and tokenize_threads must "
               "be >= 1 and max_wait_ms >= 0");
        return NULL;
    }
    if (opt->batch_tokens > eq_max_batch_tokens(opt->engine)) {
        eq_err(err, errlen, "pipeline: batch of %d tokens exceeds the engine's budget of %d",
               opt->batch_tokens, eq_max_batch_tokens(opt->engine));
        return NULL;
    }
    pipeline *p = calloc(1, sizeof *p);
    if (!p) {
        eq_err(err, errlen, "out of memory");
        return NULL;
    }
    p->loop = loop;
    p->o = *opt;
    p->br = *broker;
    p->hidden = eq_config(opt->engine)->hidden;
    /* A single sequence may be longer than batch_tokens (up to the engine's
     * max_seq_len): size the scratch for the engine's budget. */
    const size_t cap = (size_t)eq_max_batch_tokens(opt->engine);
    p->ids = malloc(sizeof(int32_t) * cap);
    p->cu = malloc(sizeof(int32_t) * (PIPE_MAX_BATCH_SEQS + 1));
    p->dims = malloc(sizeof(int) * PIPE_MAX_BATCH_SEQS);
    p->vecs = malloc(sizeof(float) * PIPE_MAX_BATCH_SEQS * (size_t)p->hidden);
    p->batch = malloc(sizeof(pipe_msg *) * PIPE_MAX_BATCH_SEQS);
    p->pool = calloc((size_t)opt->tokenize_threads, sizeof(pthread_t));
    if (!p->ids || !p->cu || !p->dims || !p->vecs || !p->batch || !p->pool) {
        eq_err(err, errlen, "out of memory");
        goto fail_mem;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_dec, NULL);
    pthread_cond_init(&p->cv_ready, NULL);
    if (uv_async_init(loop, &p->done_async, done_cb) != 0) {
        eq_err(err, errlen, "pipeline: uv_async_init failed");
        goto fail_sync;
    }
    p->done_async.data = p;
    for (int i = 0; i < opt->tokenize_threads; i++) {
        if (pthread_create(&p->pool[i], NULL, pool_main, p) != 0) {
            eq_err(err, errlen, "pipeline: cannot start tokenizer thread %d", i);
            pipe_free(p);
            return NULL;
        }
        p->n_pool++;
    }
    if (pthread_create(&p->engine_thread, NULL, engine_main, p) != 0) {
        eq_err(err, errlen, "pipeline: cannot start the engine thread");
        pipe_free(p);
        return NULL;
    }
    p->engine_started = true;
    return p;
fail_sync:
    pthread_cond_destroy(&p->cv_ready);
    pthread_cond_destroy(&p->cv_dec);
    pthread_mutex_destroy(&p->mu);
fail_mem:
    free(p->ids);
    free(p->cu);
    free(p->dims);
    free(p->vecs);
    free(p->batch);
    free(p->pool);
    free(p);
    return NULL;
}

static void async_closed_cb(uv_handle_t *h)
{
    pipeline *p = h->data;
    pthread_cond_destroy(&p->cv_ready);
    pthread_cond_destroy(&p->cv_dec);
    pthread_mutex_destroy(&p->mu);
    free(p->ids);
    free(p->cu);
    free(p->dims);
    free(p->vecs);
    free(p->batch);
    free(p->pool);
    free(p);
}

void pipe_free(pipeline *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv_dec);
    pthread_cond_broadcast(&p->cv_ready);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_pool; i++)
        pthread_join(p->pool[i], NULL);
    if (p->engine_started) pthread_join(p->engine_thread, NULL);
    free_list(p->dec_head);
    free_list(p->ready_head);
    free_list(p->enc_head);
    free_list(p->done_head);
    p->dec_head = p->ready_head = p->enc_head = p->done_head = NULL;
    p->hi_head = p->hi_tail = NULL;
    p->qdec_head = p->qdec_tail = p->qenc_head = p->qenc_tail = NULL;
    p->qdone_head = p->qdone_tail = NULL;
    /* Queries not answered yet: aborted (their items were skipped above). */
    while (p->live) {
        pipe_query *q = p->live;
        live_remove(p, q);
        q->aborted = true;
        q->done(q);
    }
    /* The async handle is freed with p once libuv has closed it: the loop
     * must run once more (uv_run) after this call. */
    uv_close((uv_handle_t *)&p->done_async, async_closed_cb);
}
