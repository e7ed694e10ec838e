/* redis.c - Redis Streams source and sink (see redis.h, docs/redis.md).
 *
 * Two hiredis async connections on the worker's libuv loop:
 *
 *   rd   XREADGROUP, one at a time: first this consumer's own pending
 *        entries (id 0, then the last id seen, until an empty reply), then
 *        new ones (>, BLOCK block_ms). Entries re-read from the pending list
 *        get their delivery count with XPENDING (per id, pipelined).
 *   cmd  everything else: the group set-up, MULTI/XADD/XACK/EXEC per
 *        message, XAUTOCLAIM (+ XPENDING per claimed id), XINFO GROUPS
 *        (lag, and the group's health), XACK of deleted pending ids,
 *        CLIENT UNBLOCK at shutdown.
 *
 * Every entry taken from Redis gets an rd_msg (its id, the pipe_msg, extra
 * fields for the dead letter) which lives in the in-flight set until the
 * message is finished. The set keeps an entry from being submitted twice
 * when a pending re-read or an XAUTOCLAIM returns one already in flight
 * here (after a reconnect, or when processing outlasted claim_idle_ms).
 *
 * Publishing: MULTI; XADD out|dlq ...; XACK in group id; EXEC. Only EXEC
 * has a real callback; MULTI/XADD/XACK record the first error they get
 * (the cause behind an EXECABORT). pipe_finish(msg, true) follows an EXEC
 * whose XADD returned an id and whose XACK returned an integer. If the
 * command connection drops before the EXEC reply, the message goes to the
 * retry queue and is published again after the reconnect (the XADD may
 * then be duplicated: at-least-once). Transient error replies (LOADING,
 * BUSY, OOM, ...) are retried with backoff; other errors finish the
 * message unaccepted: the entry stays pending and is redelivered.
 *
 * Reconnects: 100 ms doubling to 5 s, per connection. After any reconnect
 * the read loop starts over with the pending re-read (id 0), so entries
 * delivered into a lost reply, or claimed into a lost reply, are picked up.
 *
 * hiredis 0.14 lifecycle facts this file relies on: commands may be queued
 * before the connection completes; on a lost connection every pending
 * callback runs with reply == NULL, then onDisconnect (only if the
 * connection had completed), then the context is freed; a failed connect
 * calls onConnect(REDIS_ERR), then the pending callbacks with NULL; replies
 * are freed when the callback returns, so everything is copied out.
 *
 * The libuv glue is hiredis's adapters/libuv.h with one fix (see rd_uv_*).
 *
 * Threads: the loop thread only.
 */
#include "redis.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "common.h"

#define RD_BACKOFF_MIN_MS  100
#define RD_BACKOFF_MAX_MS  5000
#define RD_INFO_TICK_MS    1000 /* group check while it is missing         */
#define RD_LAG_EVERY_TICKS 5    /* lag refresh: every 5 ticks = 5 s         */
#define RD_ID_MAX          48   /* "18446744073709551615-18446744073709551615" */

/* ---- types ------------------------------------------------------------------ */

typedef struct rd_batch rd_batch;
typedef struct rconn rconn;

/* One entry taken from Redis, from the read (or claim) until it is finished. */
typedef struct rd_msg {
    char id[RD_ID_MAX];
    uint32_t hash;
    redis_broker *r;
    pipe_msg *msg;        /* owned by the pipeline once submitted          */
    struct rd_msg *hnext; /* in-flight set chain                           */
    struct rd_msg *qnext; /* retry queue, or its batch                     */
    rd_batch *batch;      /* while its delivery count is being looked up   */
    bool has_data;        /* the entry had one `data` field (msg->data)    */
    /* Entry fields other than `data` of a `data` entry: copied into its
     * dead letter. (Plain-field entries keep theirs in msg->field_*.)     */
    char **xf;  /* (2 * n_xf) name, value, name, value ...        */
    size_t *xl; /* (2 * n_xf) lengths                              */
    int n_xf;
    int64_t deliveries; /* 0 = unknown                                    */
    bool submitted;     /* handed to the pipeline                        */
    bool direct;        /* dead-lettered here, never submitted           */
    char err[160];      /* first error reply of MULTI/XADD/XACK           */
} rd_msg;

/* Entries waiting for their delivery counts (XPENDING per id). */
struct rd_batch {
    redis_broker *r;
    bool claim;     /* from XAUTOCLAIM (cmd) or the pending re-read (rd) */
    int waiting;    /* XPENDING replies outstanding                      */
    bool abandoned; /* the connection dropped: free, do not submit       */
    rd_msg *head, *tail;
};

struct rconn {
    redis_broker *r;
    const char *name;      /* "read" | "command" */
    redisAsyncContext *ac; /* NULL while down                        */
    bool up;               /* handshake (AUTH, SELECT, ...) done     */
    bool ever_up;
    bool closed;            /* redis_close dropped it: no reconnects  */
    uint64_t next_try_ms;   /* when the reconnect timer fires          */
    uint64_t connect_ms;    /* when the current context was created    */
    const void *watch_head; /* oldest unanswered command seen ...     */
    uint64_t watch_since;   /* ... since then (the watchdog)          */
    int backoff_ms;
    int hs_waiting; /* handshake replies outstanding             */
    bool hs_failed;
    long long client_id; /* CLIENT ID (read connection)           */
    uv_timer_t timer;    /* reconnect                             */
    char err[256];       /* the last failure, for redis_ready     */
};

struct redis_broker {
    uv_loop_t *loop;
    pipeline *p;
    /* options (owned copies) */
    char *host, *unix_path, *user, *password;
    int port, db;
    char *in, *group, *consumer, *out, *dlq, *start_id, *client_name_base;
    int read_count, block_ms, claim_idle_ms, claim_interval_ms, max_deliveries, io_timeout_ms;
    long out_maxlen;
    bool create_group;
    pub_health *health; /* publish outcomes (optional) */
    char block_s[24], idle_s[24], maxlen_s[24], db_s[16];
    char where[300]; /* "host:port" or "unix:/path", for messages */

    rconn rd, cmd;
    bool started, intake_stopped, closing, paused;

    /* group set-up / health (cmd) */
    bool group_ok, group_seen, setup_running;
    int setup_idx;
    char setup_err[256];
    char group_err[320];
    uv_timer_t info_timer;
    int info_ticks;
    bool info_inflight;
    bool lag_known;
    int64_t lag;

    /* read loop (rd) */
    bool read_inflight, read_blocking, rereading, need_reread;
    char reread_cursor[RD_ID_MAX];
    uv_timer_t read_timer;
    char read_err[256];

    /* claim loop (cmd) */
    uv_timer_t claim_timer;
    bool claim_running, claim_waiting;
    char claim_cursor[RD_ID_MAX];

    /* publishing (cmd) */
    int outstanding; /* EXEC replies awaited */
    rd_msg *retry_head, *retry_tail;
    uv_timer_t retry_timer;
    int retry_backoff_ms;
    uint64_t retry_due_ms; /* when retry_timer fires (redis_close drives it) */

    /* in-flight set: rd_msg by id */
    rd_msg **buckets;
    size_t n_buckets, n_set;

    /* how much to take (take_count) */
    double entry_bytes;     /* estimated bytes of one entry; 0 = unknown  */
    double fin_decayed;     /* messages finished, decayed (x0.9 a second) */
    double busy_decayed_s;  /* seconds with something held, decayed alike */
    uint64_t finished;      /* messages finished (accepted or not)        */
    uint64_t rate_tick_ms;  /* the last rate update                       */
    uint64_t rate_finished; /* `finished` then                            */
    bool rate_busy;         /* something was held then                    */

    /* keep-alive of held entries (keep_timer, cmd) */
    uv_timer_t keep_timer;
    uint64_t progress_ms; /* the last finish, or when the set became non-empty */
    bool stalled_logged;

    int open_handles; /* timers still to be closed before r is freed */
    bool freeing;
    redis_counters st;
};

/* ---- libuv glue ------------------------------------------------------------------
 * hiredis 0.14.1's adapters/libuv.h (redisLibuvAttach), with the fix hiredis
 * 1.0 made: libuv reports POLLERR (a refused connect, a reset connection) as
 * a poll callback with status < 0 and the poll stopped; 0.14.1 returns
 * without telling hiredis, so the context hangs forever (a reconnect to a
 * restarting redis-server never completes). Here an error status lets
 * hiredis read/write as it was waiting to, and it then sees the socket
 * error and tears the context down (onConnect/onDisconnect). */

typedef struct {
    redisAsyncContext *ac; /* NULL once hiredis cleaned up */
    uv_poll_t h;
    int events;
} rd_uv;

static void rd_uv_poll_cb(uv_poll_t *h, int status, int events)
{
    rd_uv *p = h->data;
    const int ev = status < 0 ? p->events : events;
    if (p->ac && (ev & UV_READABLE)) redisAsyncHandleRead(p->ac);
    if (p->ac && (ev & UV_WRITABLE)) redisAsyncHandleWrite(p->ac);
}

static void rd_uv_set(rd_uv *p, int events)
{
    p->events = events;
    if (events)
        uv_poll_start(&p->h, events, rd_uv_poll_cb);
    else
        uv_poll_stop(&p->h);
}

static void rd_uv_add_read(void *d)
{
    rd_uv *p = d;
    rd_uv_set(p, p->events | UV_READABLE);
}

static void rd_uv_del_read(void *d)
{
    rd_uv *p = d;
    rd_uv_set(p, p->events & ~UV_READABLE);
}

static void rd_uv_add_write(void *d)
{
    rd_uv *p = d;
    rd_uv_set(p, p->events | UV_WRITABLE);
}

static void rd_uv_del_write(void *d)
{
    rd_uv *p = d;
    rd_uv_set(p, p->events & ~UV_WRITABLE);
}

static void rd_uv_closed_cb(uv_handle_t *h)
{
    free(h->data);
}

static void rd_uv_cleanup(void *d)
{
    rd_uv *p = d;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->h, rd_uv_closed_cb);
}

static int rd_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data) return REDIS_ERR;
    rd_uv *p = calloc(1, sizeof *p);
    if (!p) return REDIS_ERR;
    if (uv_poll_init(loop, &p->h, ac->c.fd) != 0) {
        free(p);
        return REDIS_ERR;
    }
    p->h.data = p;
    p->ac = ac;
    ac->ev.data = p;
    ac->ev.addRead = rd_uv_add_read;
    ac->ev.delRead = rd_uv_del_read;
    ac->ev.addWrite = rd_uv_add_write;
    ac->ev.delWrite = rd_uv_del_write;
    ac->ev.cleanup = rd_uv_cleanup;
    return REDIS_OK;
}

/* ---- small helpers ------------------------------------------------------------ */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static char *dup_s(const char *s)
{
    return s ? dup_n(s, strlen(s)) : NULL;
}

static bool is_str(const redisReply *x)
{
    return x && (x->type == REDIS_REPLY_STRING || x->type == REDIS_REPLY_STATUS);
}

static bool str_eq(const redisReply *x, const char *s)
{
    return is_str(x) && x->len == strlen(s) && !memcmp(x->str, s, x->len);
}

/* Error replies that go away by themselves: retry rather than give up. */
static bool transient_error(const char *e)
{
    static const char *const pfx[] = {"LOADING",    "BUSY",        "OOM",
                                      "TRYAGAIN",   "MASTERDOWN",  "READONLY",
                                      "NOREPLICAS", "CLUSTERDOWN", "NOAUTH"};
    for (size_t i = 0; i < sizeof pfx / sizeof *pfx; i++)
        if (!strncmp(e, pfx[i], strlen(pfx[i]))) return true;
    return false;
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 16777619u;
    }
    return h;
}

/* ---- the in-flight set ----------------------------------------------------------- */

static rd_msg *set_find(redis_broker *r, const char *id)
{
    if (!r->n_buckets) return NULL;
    uint32_t h = fnv1a(id);
    for (rd_msg *s = r->buckets[h & (r->n_buckets - 1)]; s; s = s->hnext)
        if (s->hash == h && !strcmp(s->id, id)) return s;
    return NULL;
}

static int set_add(redis_broker *r, rd_msg *s)
{
    if (r->n_set + 1 > r->n_buckets) {
        size_t nb = r->n_buckets ? r->n_buckets * 2 : 1024;
        rd_msg **b = calloc(nb, sizeof *b);
        if (!b) return -1;
        for (size_t i = 0; i < r->n_buckets; i++) {
            rd_msg *x = r->buckets[i];
            while (x) {
                rd_msg *n = x->hnext;
                x->hnext = b[x->hash & (nb - 1)];
                b[x->hash & (nb - 1)] = x;
                x = n;
            }
        }
        free(r->buckets);
        r->buckets = b;
        r->n_buckets = nb;
    }
    if (r->n_set == 0) r->progress_ms = mono_ms(); /* the stall clock starts now */
    s->hash = fnv1a(s->id);
    rd_msg **slot = &r->buckets[s->hash & (r->n_buckets - 1)];
    s->hnext = *slot;
    *slot = s;
    r->n_set++;
    return 0;
}

static void set_remove(redis_broker *r, rd_msg *s)
{
    if (!r->n_buckets) return;
    for (rd_msg **pp = &r->buckets[s->hash & (r->n_buckets - 1)]; *pp; pp = &(*pp)->hnext)
        if (*pp == s) {
            *pp = s->hnext;
            r->n_set--;
            return;
        }
}

/* Frees the bookkeeping (not the pipe_msg, see rd_msg_drop). */
static void rd_msg_free(rd_msg *s)
{
    if (!s) return;
    for (int i = 0; i < 2 * s->n_xf; i++)
        free(s->xf[i]);
    free(s->xf);
    free(s->xl);
    free(s);
}

/* An entry that never reached the pipeline: out of the set, both freed. */
static void rd_msg_drop(redis_broker *r, rd_msg *s)
{
    set_remove(r, s);
    pipe_msg_free(s->msg);
    rd_msg_free(s);
}

/* The message is done: out of the set, then the pipeline is told (or, for
 * a message dead-lettered here, freed). */
static void read_next(redis_broker *r);
static void claim_step(redis_broker *r);

static void rd_msg_finish(redis_broker *r, rd_msg *s, bool accepted)
{
    set_remove(r, s);
    if (s->direct)
        pipe_msg_free(s->msg);
    else
        pipe_finish(r->p, s->msg, accepted);
    rd_msg_free(s);
    r->finished++;
    r->progress_ms = mono_ms();
    r->stalled_logged = false;
    /* take_count may have held reads back until something finished */
    read_next(r);
    if (r->claim_waiting && !r->paused) {
        r->claim_waiting = false;
        claim_step(r);
    }
}

/* Builds an rd_msg + pipe_msg from one [id, [field, value, ...]] entry.
 * Returns NULL when out of memory. */
static rd_msg *rd_msg_from_entry(redis_broker *r, const redisReply *id, const redisReply *fields)
{
    rd_msg *s = calloc(1, sizeof *s);
    pipe_msg *m = pipe_msg_new();
    if (!s || !m) goto oom;
    s->r = r;
    s->msg = m;
    snprintf(s->id, sizeof s->id, "%.*s", (int)id->len, id->str);
    memcpy(m->source_id, s->id,
           sizeof m->source_id < sizeof s->id ? sizeof m->source_id : sizeof s->id);
    m->source_id[sizeof m->source_id - 1] = 0;
    m->partition = -1;
    m->broker_data = s;
    m->timestamp_ms = strtoll(s->id, NULL, 10); /* the id's milliseconds */

    /* Redis caps an entry's fields far below INT_MAX; be safe anyway. */
    if (fields->elements / 2 > (size_t)INT_MAX / 2) goto oom;
    const int n = (int)(fields->elements / 2);
    const size_t nz = (size_t)n;
    /* One `data` field: the message is its value. Several: kept as plain
     * fields, so that the decoder reports duplicate_key and the dead letter
     * holds every field, each `data` included. */
    int data_at = -1, n_data = 0;
    for (int i = 0; i < n; i++)
        if (str_eq(fields->element[2 * i], "data") && n_data++ == 0) data_at = i;
    if (n_data == 1) {
        const redisReply *v = fields->element[2 * data_at + 1];
        s->has_data = true;
        m->data = (uint8_t *)dup_n(is_str(v) ? v->str : "", is_str(v) ? v->len : 0);
        m->len = is_str(v) ? v->len : 0;
        if (!m->data) goto oom;
        if (n > 1) {
            s->xf = calloc(2 * (nz - 1), sizeof *s->xf);
            s->xl = calloc(2 * (nz - 1), sizeof *s->xl);
            if (!s->xf || !s->xl) goto oom;
            for (int i = 0; i < n; i++) {
                if (i == data_at) continue;
                for (int k = 0; k < 2; k++) {
                    const redisReply *x = fields->element[2 * i + k];
                    const int at = 2 * s->n_xf + k;
                    s->xl[at] = is_str(x) ? x->len : 0;
                    s->xf[at] = dup_n(is_str(x) ? x->str : "", s->xl[at]);
                    if (!s->xf[at]) {
                        s->n_xf++; /* free what was copied */
                        goto oom;
                    }
                }
                s->n_xf++;
            }
        }
    } else {
        m->field_names = calloc(nz, sizeof *m->field_names);
        m->field_values = calloc(nz, sizeof *m->field_values);
        m->field_name_lens = calloc(nz, sizeof *m->field_name_lens);
        m->field_value_lens = calloc(nz, sizeof *m->field_value_lens);
        if (n &&
            (!m->field_names || !m->field_values || !m->field_name_lens || !m->field_value_lens))
            goto oom;
        for (int i = 0; i < n; i++) {
            const redisReply *k = fields->element[2 * i], *v = fields->element[2 * i + 1];
            m->n_fields = i + 1;
            m->field_name_lens[i] = is_str(k) ? k->len : 0;
            m->field_value_lens[i] = is_str(v) ? v->len : 0;
            m->field_names[i] = dup_n(is_str(k) ? k->str : "", m->field_name_lens[i]);
            m->field_values[i] = dup_n(is_str(v) ? v->str : "", m->field_value_lens[i]);
            if (!m->field_names[i] || !m->field_values[i]) goto oom;
        }
    }
    m->broker_bytes = sizeof *s;
    for (int i = 0; i < 2 * s->n_xf; i++)
        m->broker_bytes += s->xl[i];
    return s;
oom:
    pipe_msg_free(m);
    rd_msg_free(s);
    return NULL;
}

/* ---- forward declarations ------------------------------------------------------ */

static void run_setup(redis_broker *r);
static void conn_connect(rconn *c);
static void conn_watch(rconn *c, uint64_t now);
static void flush_retry(redis_broker *r);
static void publish_msg(redis_broker *r, rd_msg *s);

/* ---- publishing: MULTI / XADD / XACK / EXEC ------------------------------------- */

static void retry_push(redis_broker *r, rd_msg *s)
{
    s->qnext = NULL;
    if (r->retry_tail)
        r->retry_tail->qnext = s;
    else
        r->retry_head = s;
    r->retry_tail = s;
}

static void retry_timer_cb(uv_timer_t *t)
{
    redis_broker *r = t->data;
    flush_retry(r);
}

/* Schedules a flush of the retry queue after the current backoff. */
static void retry_later(redis_broker *r)
{
    if (uv_is_active((uv_handle_t *)&r->retry_timer)) return;
    r->retry_due_ms = mono_ms() + (uint64_t)r->retry_backoff_ms;
    uv_timer_start(&r->retry_timer, retry_timer_cb, (uint64_t)r->retry_backoff_ms, 0);
    r->retry_backoff_ms *= 2;
    if (r->retry_backoff_ms > RD_BACKOFF_MAX_MS) r->retry_backoff_ms = RD_BACKOFF_MAX_MS;
}

static void flush_retry(redis_broker *r)
{
    if (!r->cmd.up) return;
    uv_timer_stop(&r->retry_timer);
    r->retry_due_ms = 0;
    rd_msg *s = r->retry_head;
    r->retry_head = r->retry_tail = NULL;
    while (s) {
        rd_msg *n = s->qnext;
        s->qnext = NULL;
        publish_msg(r, s);
        s = n;
    }
}

/* MULTI, XADD, XACK: keeps the first error (the reason of an EXECABORT). */
static void queued_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    redisReply *x = reply;
    rd_msg *s = priv;
    if (x && x->type == REDIS_REPLY_ERROR && !s->err[0])
        snprintf(s->err, sizeof s->err, "%.*s", (int)x->len, x->str);
}

static void exec_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    redisReply *x = reply;
    rd_msg *s = priv;
    redis_broker *r = s->r;
    r->outstanding--;
    if (!x) { /* connection lost before the reply: sent again once reconnected */
        r->st.exec_retries++;
        retry_push(r, s);
        return;
    }
    if (x->type == REDIS_REPLY_ERROR) {
        const char *e = x->str;
        if (!strncmp(e, "EXECABORT", 9) && s->err[0]) e = s->err;
        if (r->health) ph_fail(r->health, mono_ms(), e);
        if (transient_error(e)) {
            if (!uv_is_active((uv_handle_t *)&r->retry_timer)) /* once per backoff round */
                eq_log(EQ_LOG_WARN, "redis: publishing entry %s: %s; retrying", s->id, e);
            r->st.exec_retries++;
            retry_push(r, s);
            retry_later(r);
        } else {
            eq_log(EQ_LOG_ERROR,
                   "redis: publishing entry %s: %s; not acknowledged (it stays pending and is "
                   "redelivered)",
                   s->id, e);
            r->st.exec_failed++;
            rd_msg_finish(r, s, false);
        }
        return;
    }
    if (x->type == REDIS_REPLY_ARRAY && x->elements == 2) {
        const redisReply *add = x->element[0], *ack = x->element[1];
        if (is_str(add) && ack->type == REDIS_REPLY_INTEGER) {
            if (r->health) ph_ok(r->health, mono_ms());
            r->st.acked++;
            r->retry_backoff_ms = RD_BACKOFF_MIN_MS;
            rd_msg_finish(r, s, true);
            return;
        }
        if (add->type == REDIS_REPLY_ERROR) {
            /* MULTI/EXEC does not roll back: the XACK ran. redis_start
             * checks that out/dlq are streams, so this needs a key changed
             * under a running worker. */
            eq_log(EQ_LOG_ERROR, "redis: XADD for entry %s failed inside EXEC: %s%s", s->id,
                   add->str,
                   ack->type == REDIS_REPLY_INTEGER && ack->integer == 1
                       ? "; the entry WAS acknowledged: its output is lost"
                       : "");
        } else {
            eq_log(EQ_LOG_ERROR,
                   "redis: XACK for entry %s failed inside EXEC: %s; its output was written, "
                   "the entry stays pending (a duplicate output will follow)",
                   s->id, ack->type == REDIS_REPLY_ERROR ? ack->str : "unexpected reply");
        }
        r->st.exec_failed++;
        rd_msg_finish(r, s, false);
        return;
    }
    eq_log(EQ_LOG_ERROR, "redis: unexpected EXEC reply (type %d) for entry %s", x->type, s->id);
    r->st.exec_failed++;
    rd_msg_finish(r, s, false);
}

static bool skip_dlq_field(const char *name, size_t len)
{
    return (len == 5 && !memcmp(name, "error", 5)) || (len == 9 && !memcmp(name, "source_id", 9));
}

/* Sends the MULTI/EXEC of s on the command connection, or queues it for
 * after the reconnect. */
static void publish_msg(redis_broker *r, rd_msg *s)
{
    pipe_msg *m = s->msg;
    redisAsyncContext *ac = r->cmd.ac;
    if (!r->cmd.up || !ac) {
        retry_push(r, s);
        return;
    }

    /* XADD: the output, or the dead letter: every original field
     * unchanged (except ones named `error` or `source_id`), then `error`
     * and `source_id`. */
    const char *fixed[9];
    size_t fixed_len[9];
    const char **av = fixed;
    size_t *al = fixed_len;
    int n = 0;
    if (m->dead) {
        const int nf = s->has_data ? 1 + s->n_xf : m->n_fields;
        const size_t cap = 3 + 2 * (size_t)nf + 4;
        if (cap > 9) {
            av = malloc(sizeof *av * cap);
            al = malloc(sizeof *al * cap);
            if (!av || !al) {
                free(av);
                free(al);
                eq_log(EQ_LOG_ERROR, "redis: out of memory publishing entry %s", s->id);
                r->st.exec_retries++;
                retry_push(r, s);
                retry_later(r);
                return;
            }
        }
    }
    av[n] = "XADD", al[n++] = 4;
    if (!m->dead) {
        av[n] = r->out, al[n++] = strlen(r->out);
        if (r->out_maxlen > 0) {
            av[n] = "MAXLEN", al[n++] = 6;
            av[n] = "~", al[n++] = 1;
            av[n] = r->maxlen_s, al[n++] = strlen(r->maxlen_s);
        }
        av[n] = "*", al[n++] = 1;
        av[n] = "data", al[n++] = 4;
        av[n] = m->out ? (const char *)m->out : "", al[n++] = m->out ? m->out_len : 0;
    } else {
        av[n] = r->dlq, al[n++] = strlen(r->dlq);
        av[n] = "*", al[n++] = 1;
        if (s->has_data) {
            av[n] = "data", al[n++] = 4;
            av[n] = m->data ? (const char *)m->data : "", al[n++] = m->data ? m->len : 0;
            for (int i = 0; i < s->n_xf; i++) {
                if (skip_dlq_field(s->xf[2 * i], s->xl[2 * i])) continue;
                av[n] = s->xf[2 * i], al[n++] = s->xl[2 * i];
                av[n] = s->xf[2 * i + 1], al[n++] = s->xl[2 * i + 1];
            }
        } else {
            for (int i = 0; i < m->n_fields; i++) {
                if (skip_dlq_field(m->field_names[i], m->field_name_lens[i])) continue;
                av[n] = m->field_names[i], al[n++] = m->field_name_lens[i];
                av[n] = m->field_values[i], al[n++] = m->field_value_lens[i];
            }
        }
        const char *reason = m->reason[0] ? m->reason : "unknown";
        av[n] = "error", al[n++] = 5;
        av[n] = reason, al[n++] = strlen(reason);
        av[n] = "source_id", al[n++] = 9;
        av[n] = s->id, al[n++] = strlen(s->id);
    }

    s->err[0] = 0;
    const char *ack[4] = {"XACK", r->in, r->group, s->id};
    const size_t ackl[4] = {4, strlen(r->in), strlen(r->group), strlen(s->id)};
    /* hiredis refuses commands once the context is disconnecting (then all
     * of these fail) or when out of memory (then the MULTI is discarded). */
    int rc = redisAsyncCommand(ac, queued_cb, s, "MULTI");
    const bool multi = rc == REDIS_OK;
    if (rc == REDIS_OK) rc = redisAsyncCommandArgv(ac, queued_cb, s, n, av, al);
    if (rc == REDIS_OK) rc = redisAsyncCommandArgv(ac, queued_cb, s, 4, ack, ackl);
    if (rc == REDIS_OK) rc = redisAsyncCommand(ac, exec_cb, s, "EXEC");
    if (av != fixed) {
        free(av);
        free(al);
    }
    if (rc != REDIS_OK) {
        if (multi) redisAsyncCommand(ac, NULL, NULL, "DISCARD");
        r->st.exec_retries++;
        retry_push(r, s);
        retry_later(r);
        return;
    }
    r->outstanding++;
}

/* pipe_broker.publish */
static void br_publish(void *self, pipe_msg *m)
{
    redis_broker *r = self;
    rd_msg *s = m->broker_data;
    EQ_ASSERT(s && s->msg == m);
    publish_msg(r, s);
}

static void br_pause(void *self)
{
    redis_broker *r = self;
    r->paused = true;
}

static void br_resume(void *self)
{
    redis_broker *r = self;
    r->paused = false;
    read_next(r);
    if (r->claim_waiting) {
        r->claim_waiting = false;
        claim_step(r);
    }
}

pipe_broker redis_pipe_broker(redis_broker *r)
{
    pipe_broker b = {r, br_publish, br_pause, br_resume};
    return b;
}

/* ---- submitting ------------------------------------------------------------------- */

/* Hands s to the pipeline, or dead-letters it here if it was delivered too
 * often. */
static void submit(redis_broker *r, rd_msg *s)
{
    pipe_msg *m = s->msg;
    if (r->closing) { /* redis_close: the pipeline takes nothing more */
        r->st.left_pending++;
        rd_msg_drop(r, s);
        return;
    }
    m->deliveries = s->deliveries;
    if (s->deliveries > r->max_deliveries) {
        m->dead = true;
        m->reason_code = "too_many_deliveries";
        snprintf(m->reason, sizeof m->reason, "too_many_deliveries: delivered %lld times",
                 (long long)s->deliveries);
        s->direct = true;
        r->st.too_many_deliveries++;
        eq_log(EQ_LOG_WARN, "redis: entry %s delivered %lld times (max %d): dead-lettered", s->id,
               (long long)s->deliveries, r->max_deliveries);
        publish_msg(r, s);
        return;
    }
    s->submitted = true;
    pipe_submit(r->p, m);
}

/* ---- delivery counts (XPENDING per id) --------------------------------------------- */

static void batch_done(rd_batch *b)
{
    redis_broker *r = b->r;
    rd_msg *s = b->head;
    while (s) {
        rd_msg *n = s->qnext;
        s->qnext = NULL;
        s->batch = NULL;
        if (b->abandoned)
            rd_msg_drop(r, s);
        else
            submit(r, s);
        s = n;
    }
    const bool claim = b->claim, abandoned = b->abandoned;
    free(b);
    if (claim) {
        if (abandoned || r->closing) {
            r->claim_running = false;
            r->need_reread = true; /* claimed entries are ours now: re-read them */
        } else if (!strcmp(r->claim_cursor, "0-0")) {
            r->claim_running = false;
        } else {
            claim_step(r);
        }
    } else {
        r->read_inflight = false;
        if (!abandoned) read_next(r);
    }
}

static void lookup_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    redisReply *x = reply;
    rd_msg *s = priv;
    rd_batch *b = s->batch;
    if (!x) {
        b->abandoned = true;
    } else if (x->type == REDIS_REPLY_ARRAY && x->elements >= 1 &&
               x->element[0]->type == REDIS_REPLY_ARRAY && x->element[0]->elements >= 4 &&
               x->element[0]->element[3]->type == REDIS_REPLY_INTEGER) {
        s->deliveries = x->element[0]->element[3]->integer;
    } /* else: no longer pending (acked or claimed meanwhile): unknown */
    if (--b->waiting == 0) batch_done(b);
}

/* Looks up the delivery count of every entry of b on c, then submits them
 * (batch_done). Takes ownership of b. */
static void batch_lookup(rconn *c, rd_batch *b)
{
    redis_broker *r = b->r;
    b->waiting = 1; /* held until every XPENDING is sent */
    for (rd_msg *s = b->head; s; s = s->qnext) {
        s->batch = b;
        const char *av[6] = {"XPENDING", r->in, r->group, s->id, s->id, "1"};
        const size_t al[6] = {8, strlen(r->in), strlen(r->group), strlen(s->id), strlen(s->id), 1};
        if (!c->ac || redisAsyncCommandArgv(c->ac, lookup_cb, s, 6, av, al) != REDIS_OK) {
            b->abandoned = true;
            break;
        }
        b->waiting++;
    }
    if (--b->waiting == 0) batch_done(b);
}

/* ---- how much to take --------------------------------------------------------------
 * Every XREADGROUP and XAUTOCLAIM asks for take_count() entries, the least of:
 *   --redis-count;
 *   the pipeline's room: messages left before --max-in-flight, and bytes
 *   left before --max-in-flight-bytes divided by the charge of an entry of
 *   the estimated size (1 while no entry was seen yet), so a read of large
 *   entries does not overshoot the byte bound by a whole COUNT;
 *   what this worker finishes before the claim time-out: rate (messages a
 *   second while something was held, averaged over ~10 s) x claim_idle_ms/2,
 *   less what it already holds; no such cap until 2 s of work were measured
 *   (a worker just started, or idle for a while, takes what the bounds
 *   allow: batches must fill before a rate can be seen).
 * At least 1 while nothing is held, so a message larger than every bound
 * still passes alone; 0 otherwise, and the read waits for a finish. Held
 * entries are also kept from XAUTOCLAIM by keep_timer_cb (below), so an
 * estimate too high costs latency, not a second embedding. */

/* Folds the sizes of a reply's entries (fields and values) into the estimate:
 * it follows a rise at once and a fall slowly. */
static void note_sizes(redis_broker *r, const redisReply *arr)
{
    double total = 0;
    size_t n = 0;
    for (size_t i = 0; i < arr->elements; i++) {
        const redisReply *e = arr->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
            e->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        const redisReply *f = e->element[1];
        for (size_t k = 0; k < f->elements; k++)
            if (is_str(f->element[k])) total += (double)f->element[k]->len;
        n++;
    }
    if (!n) return;
    const double mean = total / (double)n;
    r->entry_bytes = mean > r->entry_bytes ? mean : 0.9 * r->entry_bytes + 0.1 * mean;
}

/* Called every second (info timer): the finish rate. */
static void rate_tick(redis_broker *r, uint64_t now)
{
    if (r->rate_tick_ms && now > r->rate_tick_ms) {
        const double dt = (double)(now - r->rate_tick_ms) * 1e-3;
        r->fin_decayed = 0.9 * r->fin_decayed + (double)(r->finished - r->rate_finished);
        r->busy_decayed_s = 0.9 * r->busy_decayed_s + (r->rate_busy && r->n_set ? dt : 0);
    }
    r->rate_tick_ms = now;
    r->rate_finished = r->finished;
    r->rate_busy = r->n_set > 0;
}

static int take_count(redis_broker *r)
{
    long n = r->read_count;
    if (r->p) {
        int msgs;
        uint64_t bytes;
        pipe_room(r->p, &msgs, &bytes);
        if (msgs < n) n = msgs;
        if (bytes != UINT64_MAX) {
            uint64_t per = pipe_charge(r->p, (size_t)r->entry_bytes);
            uint64_t fit = r->entry_bytes > 0 ? bytes / (per ? per : 1) : 1;
            if (fit < (uint64_t)n) n = (long)fit;
        }
    }
    if (r->busy_decayed_s >= 2.0) { /* measured: else the bounds alone */
        const double cap = r->fin_decayed / r->busy_decayed_s * (double)r->claim_idle_ms * 0.5e-3 -
                           (double)r->n_set;
        if (cap < (double)n) n = cap < 0 ? 0 : (long)cap;
    }
    if (n < 1 && r->n_set == 0) n = 1;
    return n < 0 ? 0 : (int)n;
}

/* Adds the entries of an XREADGROUP / XAUTOCLAIM entry array: new ones
 * (deliveries 1) are submitted at once, others collected into *b.
 * reread: ids with a NULL body (deleted) are XACKed. */
static void take_entries(redis_broker *r, const redisReply *arr, bool fresh, bool reread,
                         rd_batch **b, bool claim)
{
    note_sizes(r, arr);
    for (size_t i = 0; i < arr->elements; i++) {
        const redisReply *e = arr->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || !is_str(e->element[0])) continue;
        const redisReply *id = e->element[0], *fields = e->element[1];
        if (fields->type != REDIS_REPLY_ARRAY) {
            /* Pending, but the entry was deleted (XDEL / trimmed): there is
             * nothing to process. */
            r->st.deleted++;
            eq_log(EQ_LOG_WARN,
                   "redis: pending entry %.*s of stream %s was deleted; acknowledging it",
                   (int)id->len, id->str, r->in);
            if (reread && r->cmd.up && r->cmd.ac) {
                const char *av[4] = {"XACK", r->in, r->group, id->str};
                const size_t al[4] = {4, strlen(r->in), strlen(r->group), id->len};
                redisAsyncCommandArgv(r->cmd.ac, NULL, NULL, 4, av, al);
            }
            continue;
        }
        char idbuf[RD_ID_MAX];
        snprintf(idbuf, sizeof idbuf, "%.*s", (int)id->len, id->str);
        if (set_find(r, idbuf)) {
            r->st.skipped_in_flight++;
            continue;
        }
        rd_msg *s = rd_msg_from_entry(r, id, fields);
        if (!s || set_add(r, s) != 0) {
            /* Left pending: re-read or claimed later. */
            eq_log(EQ_LOG_ERROR, "redis: out of memory taking entry %s", idbuf);
            if (s) {
                pipe_msg_free(s->msg);
                rd_msg_free(s);
            }
            r->need_reread = true;
            continue;
        }
        if (claim)
            r->st.claimed++;
        else
            r->st.read++;
        if (fresh) {
            s->deliveries = 1;
            submit(r, s);
            continue;
        }
        if (!*b) {
            *b = calloc(1, sizeof **b);
            if (!*b) {
                rd_msg_drop(r, s);
                r->need_reread = true;
                continue;
            }
            (*b)->r = r;
            (*b)->claim = claim;
        }
        if ((*b)->tail)
            (*b)->tail->qnext = s;
        else
            (*b)->head = s;
        (*b)->tail = s;
    }
}

/* ---- the read loop (rd) --------------------------------------------------------------- */

static void read_timer_cb(uv_timer_t *t)
{
    read_next(t->data);
}

static void group_fail(redis_broker *r, const char *why);

static void read_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    redisReply *x = reply;
    redis_broker *r = priv;
    if (!x) { /* connection lost: the reconnect re-reads the pending list */
        r->read_inflight = false;
        return;
    }
    if (x->type == REDIS_REPLY_ERROR) {
        r->read_inflight = false;
        if (!strncmp(x->str, "NOGROUP", 7)) {
            char why[320];
            snprintf(why, sizeof why, "XREADGROUP: %s", x->str);
            group_fail(r, why);
            return;
        }
        if (strcmp(r->read_err, x->str))
            eq_log(EQ_LOG_WARN, "redis: XREADGROUP on %s: %s; retrying", r->in, x->str);
        snprintf(r->read_err, sizeof r->read_err, "%s", x->str);
        if (!r->closing)
            uv_timer_start(&r->read_timer, read_timer_cb,
                           transient_error(x->str) ? 200 : RD_BACKOFF_MAX_MS / 5, 0);
        return;
    }
    r->read_err[0] = 0;
    const bool reread = r->rereading;
    const redisReply *entries = NULL;
    if (x->type == REDIS_REPLY_ARRAY && x->elements >= 1 &&
        x->element[0]->type == REDIS_REPLY_ARRAY && x->element[0]->elements >= 2 &&
        x->element[0]->element[1]->type == REDIS_REPLY_ARRAY)
        entries = x->element[0]->element[1];
    /* nil: BLOCK timed out (or CLIENT UNBLOCK) */
    rd_batch *b = NULL;
    if (entries) {
        if (reread) {
            if (entries->elements == 0) {
                r->rereading = false; /* own pending list done: new entries next */
            } else {
                const redisReply *last = entries->element[entries->elements - 1];
                if (last->type == REDIS_REPLY_ARRAY && last->elements >= 1 &&
                    is_str(last->element[0]))
                    snprintf(r->reread_cursor, sizeof r->reread_cursor, "%.*s",
                             (int)last->element[0]->len, last->element[0]->str);
                else
                    r->rereading = false;
            }
        }
        take_entries(r, entries, !reread, reread, &b, false);
    } else if (reread) {
        r->rereading = false;
    }
    if (b && r->rd.ac) {
        batch_lookup(&r->rd, b); /* read_inflight stays set until it is done */
        return;
    }
    if (b) { /* the read connection is gone */
        b->abandoned = true;
        b->waiting = 0;
        batch_done(b);
        return;
    }
    r->read_inflight = false;
    read_next(r);
}

static void read_next(redis_broker *r)
{
    if (!r->started || r->intake_stopped || r->closing || r->paused || !r->rd.up || !r->group_ok ||
        r->read_inflight || !r->rd.ac)
        return;
    const int count = take_count(r);
    if (count < 1) return; /* rd_msg_finish reads again */
    char count_s[24];
    snprintf(count_s, sizeof count_s, "%d", count);
    if (r->need_reread) {
        r->need_reread = false;
        r->rereading = true;
        snprintf(r->reread_cursor, sizeof r->reread_cursor, "0");
    }
    const char *av[11];
    size_t al[11];
    int n = 0;
    av[n] = "XREADGROUP", al[n++] = 10;
    av[n] = "GROUP", al[n++] = 5;
    av[n] = r->group, al[n++] = strlen(r->group);
    av[n] = r->consumer, al[n++] = strlen(r->consumer);
    av[n] = "COUNT", al[n++] = 5;
    av[n] = count_s, al[n++] = strlen(count_s);
    if (!r->rereading) {
        av[n] = "BLOCK", al[n++] = 5;
        av[n] = r->block_s, al[n++] = strlen(r->block_s);
    }
    av[n] = "STREAMS", al[n++] = 7;
    av[n] = r->in, al[n++] = strlen(r->in);
    const char *id = r->rereading ? r->reread_cursor : ">";
    av[n] = id, al[n++] = strlen(id);
    if (redisAsyncCommandArgv(r->rd.ac, read_cb, r, n, av, al) != REDIS_OK) return;
    r->read_inflight = true;
    r->read_blocking = !r->rereading;
}

/* ---- keep-alive of held entries (cmd) ---------------------------------------------------
 * Every claim_idle_ms / 3, the ids of every entry this worker holds (read or
 * claimed, not yet acknowledged) are sent in XCLAIM in group consumer 0
 * ... JUSTID: that resets their idle time to 0 without counting a delivery,
 * so XAUTOCLAIM elsewhere never takes an entry that is still being worked
 * on here. Only while the work progresses: once nothing has finished for
 * claim_idle_ms while entries are held (an engine that hangs, a loop that
 * no longer publishes), the refresh stops and other workers claim them. */

#define RD_KEEP_IDS 512 /* ids per XCLAIM */

static void keep_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    redisReply *x = reply;
    redis_broker *r = priv;
    if (x && x->type == REDIS_REPLY_ARRAY) r->st.kept_alive += x->elements;
}

/* av[0..n) is XCLAIM in g consumer 0 and at least one id, av[n] JUSTID. */
static void keep_send(redis_broker *r, const char **av, size_t *al, int n)
{
    redisAsyncCommandArgv(r->cmd.ac, keep_cb, r, n + 1, av, al);
}

static void keep_timer_cb(uv_timer_t *t)
{
    redis_broker *r = t->data;
    if (r->closing || !r->cmd.up || !r->cmd.ac || !r->group_ok || r->n_set == 0) return;
    const uint64_t now = mono_ms();
    if (now - r->progress_ms > (uint64_t)r->claim_idle_ms) {
        if (!r->stalled_logged)
            eq_log(EQ_LOG_WARN,
                   "redis: nothing finished for %llu ms with %zu entries held; no longer "
                   "refreshing them, so other consumers may claim them",
                   (unsigned long long)(now - r->progress_ms), r->n_set);
        r->stalled_logged = true;
        return;
    }
    const char *av[6 + RD_KEEP_IDS + 1];
    size_t al[6 + RD_KEEP_IDS + 1];
    const char *head[6] = {"XCLAIM", r->in, r->group, r->consumer, "0", NULL};
    int n = 0;
    for (size_t i = 0; i < r->n_buckets; i++)
        for (rd_msg *s = r->buckets[i]; s; s = s->hnext) {
            if (n == 0) {
                for (n = 0; n < 5; n++)
                    av[n] = head[n], al[n] = strlen(head[n]);
            }
            av[n] = s->id, al[n] = strlen(s->id);
            n++;
            if (n == 5 + RD_KEEP_IDS) {
                av[n] = "JUSTID", al[n] = 6;
                keep_send(r, av, al, n);
                n = 0;
            }
        }
    if (n > 5) {
        av[n] = "JUSTID", al[n] = 6;
        keep_send(r, av, al, n);
    }
}

/* ---- the claim loop (cmd) -------------------------------------------------------------- */

static void claim_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    redisReply *x = reply;
    redis_broker *r = priv;
    if (!x) {
        r->claim_running = false;
        r->need_reread = true; /* what the lost reply claimed is ours now */
        return;
    }
    if (x->type == REDIS_REPLY_ERROR) {
        r->claim_running = false;
        if (!strncmp(x->str, "NOGROUP", 7)) {
            char why[320];
            snprintf(why, sizeof why, "XAUTOCLAIM: %s", x->str);
            group_fail(r, why);
        } else {
            eq_log(EQ_LOG_WARN, "redis: XAUTOCLAIM on %s: %s", r->in, x->str);
        }
        return;
    }
    if (x->type != REDIS_REPLY_ARRAY || x->elements < 2 || !is_str(x->element[0]) ||
        x->element[1]->type != REDIS_REPLY_ARRAY) {
        eq_log(EQ_LOG_WARN, "redis: unexpected XAUTOCLAIM reply");
        r->claim_running = false;
        return;
    }
    snprintf(r->claim_cursor, sizeof r->claim_cursor, "%.*s", (int)x->element[0]->len,
             x->element[0]->str);
    /* Redis 7: ids of deleted entries, already removed from the pending list. */
    if (x->elements >= 3 && x->element[2]->type == REDIS_REPLY_ARRAY && x->element[2]->elements) {
        r->st.deleted += x->element[2]->elements;
        eq_log(EQ_LOG_WARN,
               "redis: XAUTOCLAIM dropped %zu pending ids of %s whose entries were deleted",
               x->element[2]->elements, r->in);
    }
    const uint64_t before = r->st.claimed;
    rd_batch *b = NULL;
    take_entries(r, x->element[1], false, false, &b, true);
    if (r->st.claimed > before)
        eq_log(EQ_LOG_INFO, "redis: claimed %llu entries idle for %d ms or more",
               (unsigned long long)(r->st.claimed - before), r->claim_idle_ms);
    if (b) {
        if (r->cmd.ac) {
            batch_lookup(&r->cmd, b);
        } else {
            b->abandoned = true;
            b->waiting = 0;
            batch_done(b);
        }
        return;
    }
    if (!strcmp(r->claim_cursor, "0-0"))
        r->claim_running = false;
    else
        claim_step(r);
}

/* One XAUTOCLAIM from claim_cursor (claim_running is set). */
static void claim_step(redis_broker *r)
{
    if (r->closing || r->intake_stopped || !r->cmd.up || !r->cmd.ac || !r->group_ok) {
        r->claim_running = false;
        return;
    }
    const int count = r->paused ? 0 : take_count(r);
    if (count < 1) {
        r->claim_waiting = true; /* br_resume or rd_msg_finish continues */
        return;
    }
    char count_s[24];
    snprintf(count_s, sizeof count_s, "%d", count);
    const char *av[9] = {"XAUTOCLAIM", r->in,           r->group, r->consumer,
                         r->idle_s,    r->claim_cursor, "COUNT",  count_s};
    size_t al[9];
    for (int i = 0; i < 8; i++)
        al[i] = strlen(av[i]);
    if (redisAsyncCommandArgv(r->cmd.ac, claim_cb, r, 8, av, al) != REDIS_OK)
        r->claim_running = false;
}

static void claim_timer_cb(uv_timer_t *t)
{
    redis_broker *r = t->data;
    if (r->claim_running || r->closing || r->intake_stopped || !r->cmd.up || !r->group_ok) return;
    r->claim_running = true;
    snprintf(r->claim_cursor, sizeof r->claim_cursor, "0-0");
    claim_step(r);
}

/* ---- group set-up and health (cmd) ---------------------------------------------------- */

static void group_good(redis_broker *r)
{
    if (!r->group_ok)
        eq_log(EQ_LOG_INFO, "redis: group %s on %s ready (consumer %s)", r->group, r->in,
               r->consumer);
    r->group_ok = true;
    r->group_seen = true;
    r->group_err[0] = 0;
    if (!r->intake_stopped && !uv_is_active((uv_handle_t *)&r->claim_timer))
        uv_timer_start(&r->claim_timer, claim_timer_cb, (uint64_t)r->claim_interval_ms,
                       (uint64_t)r->claim_interval_ms);
    read_next(r);
}

static void group_fail(redis_broker *r, const char *why)
{
    if (strcmp(r->group_err, why)) eq_log(EQ_LOG_ERROR, "redis: %s", why);
    snprintf(r->group_err, sizeof r->group_err, "%s", why);
    r->group_ok = false;
    /* The info timer (1 s) checks again; reads resume once it is back. */
}

/* Finds the group in an XINFO GROUPS reply; sets the lag. Returns whether
 * the group is there. */
static bool parse_groups(redis_broker *r, const redisReply *x)
{
    for (size_t i = 0; i < x->elements; i++) {
        const redisReply *g = x->element[i];
        if (g->type != REDIS_REPLY_ARRAY) continue;
        bool mine = false;
        const redisReply *lag = NULL;
        for (size_t k = 0; k + 1 < g->elements; k += 2) {
            if (str_eq(g->element[k], "name") && str_eq(g->element[k + 1], r->group)) mine = true;
            if (str_eq(g->element[k], "lag")) lag = g->element[k + 1];
        }
        if (!mine) continue;
        if (lag && lag->type == REDIS_REPLY_INTEGER) {
            r->lag = lag->integer;
            r->lag_known = true;
        } else {
            r->lag_known = false; /* NULL: entries deleted or trimmed (Redis 7) */
        }
        return true;
    }
    return false;
}

static void groups_missing(redis_broker *r, const char *detail)
{
    char why[320];
    snprintf(
        why, sizeof why,
        "consumer group %s on stream %s does not exist (%s); it is not recreated after start-up",
        r->group, r->in, detail);
    group_fail(r, why);
}

static void setup_type_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    redisReply *x = reply;
    redis_broker *r = priv;
    const char *key = r->setup_idx == 0 ? r->in : r->setup_idx == 1 ? r->out : r->dlq;
    r->setup_idx++;
    if (!x || r->setup_err[0]) return;
    if (x->type == REDIS_REPLY_ERROR)
        snprintf(r->setup_err, sizeof r->setup_err, "TYPE %s: %s", key, x->str);
    else if (!str_eq(x, "stream") && !str_eq(x, "none"))
        snprintf(r->setup_err, sizeof r->setup_err, "key %s holds a %.*s, not a stream", key,
                 is_str(x) ? (int)x->len : 1, is_str(x) ? x->str : "?");
}

static void setup_group_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    redisReply *x = reply;
    redis_broker *r = priv;
    r->setup_running = false;
    if (!x) return; /* reconnect runs it again */
    if (r->setup_err[0]) {
        group_fail(r, r->setup_err);
        return;
    }
    if (x->type == REDIS_REPLY_ERROR) {
        if (!strncmp(x->str, "BUSYGROUP", 9)) {
            group_good(r); /* XGROUP CREATE: it exists already */
        } else if (strstr(x->str, "no such key")) {
            groups_missing(r, r->group_seen ? "the stream is gone: deleted, or Redis restarted "
                                              "without persistence"
                                            : "the stream does not exist");
        } else {
            char why[320];
            snprintf(why, sizeof why, "checking group %s on %s: %s", r->group, r->in, x->str);
            group_fail(r, why);
        }
        return;
    }
    if (x->type == REDIS_REPLY_ARRAY) { /* XINFO GROUPS */
        if (parse_groups(r, x))
            group_good(r);
        else
            groups_missing(r, r->group_seen ? "deleted, or Redis restarted without persistence"
                                            : "create it with XGROUP CREATE");
        return;
    }
    group_good(r); /* XGROUP CREATE: +OK */
}

/* Pipelines: TYPE in, TYPE out, TYPE dlq, then XGROUP CREATE (first time,
 * if create_group) or XINFO GROUPS. */
static void run_setup(redis_broker *r)
{
    if (r->setup_running || !r->cmd.up || !r->cmd.ac || r->closing) return;
    r->setup_idx = 0;
    r->setup_err[0] = 0;
    const char *keys[3] = {r->in, r->out, r->dlq};
    for (int i = 0; i < 3; i++) {
        const char *av[2] = {"TYPE", keys[i]};
        const size_t al[2] = {4, strlen(keys[i])};
        if (redisAsyncCommandArgv(r->cmd.ac, setup_type_cb, r, 2, av, al) != REDIS_OK) return;
    }
    int rc;
    if (r->create_group && !r->group_seen) {
        const char *av[6] = {"XGROUP", "CREATE", r->in, r->group, r->start_id, "MKSTREAM"};
        size_t al[6];
        for (int i = 0; i < 6; i++)
            al[i] = strlen(av[i]);
        rc = redisAsyncCommandArgv(r->cmd.ac, setup_group_cb, r, 6, av, al);
    } else {
        const char *av[3] = {"XINFO", "GROUPS", r->in};
        const size_t al[3] = {5, 6, strlen(r->in)};
        rc = redisAsyncCommandArgv(r->cmd.ac, setup_group_cb, r, 3, av, al);
    }
    if (rc == REDIS_OK) r->setup_running = true;
}

static void info_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    redisReply *x = reply;
    redis_broker *r = priv;
    r->info_inflight = false;
    if (!x) return;
    if (x->type == REDIS_REPLY_ARRAY) {
        if (!parse_groups(r, x)) groups_missing(r, "deleted while running");
    } else if (x->type == REDIS_REPLY_ERROR) {
        if (strstr(x->str, "no such key"))
            groups_missing(r,
                           "the stream is gone: deleted, or Redis restarted without persistence");
        r->lag_known = false;
    }
}

/* Every second: set-up again while the group is not OK; the lag every 5 s. */
static void info_timer_cb(uv_timer_t *t)
{
    redis_broker *r = t->data;
    if (r->closing) return;
    const uint64_t now = mono_ms();
    rate_tick(r, now);
    conn_watch(&r->rd, now);
    conn_watch(&r->cmd, now);
    if (!r->cmd.up || !r->cmd.ac) return;
    if (!r->group_ok) {
        run_setup(r);
        return;
    }
    if (++r->info_ticks < RD_LAG_EVERY_TICKS || r->info_inflight) return;
    r->info_ticks = 0;
    const char *av[3] = {"XINFO", "GROUPS", r->in};
    const size_t al[3] = {5, 6, strlen(r->in)};
    if (redisAsyncCommandArgv(r->cmd.ac, info_cb, r, 3, av, al) == REDIS_OK)
        r->info_inflight = true;
}

/* ---- connections ------------------------------------------------------------------------ */

static void conn_up(rconn *c)
{
    redis_broker *r = c->r;
    c->up = true;
    c->backoff_ms = RD_BACKOFF_MIN_MS;
    c->err[0] = 0;
    if (c->ever_up) {
        r->st.reconnects++;
        eq_log(EQ_LOG_INFO, "redis: %s connection re-established", c->name);
    } else {
        eq_log(EQ_LOG_DEBUG, "redis: %s connection up", c->name);
    }
    c->ever_up = true;
    /* Whatever was delivered into a lost reply is in our pending list. */
    r->need_reread = true;
    if (c == &r->cmd) {
        run_setup(r);
        flush_retry(r);
        r->info_ticks = RD_LAG_EVERY_TICKS - 1; /* lag soon */
    }
    read_next(r);
}

static void hs_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *x = reply;
    rconn *c = priv;
    if (!x || c->ac != ac) return; /* the disconnect path handles it */
    c->hs_waiting--;
    if (x->type == REDIS_REPLY_ERROR) {
        if (!c->hs_failed) {
            c->hs_failed = true;
            snprintf(c->err, sizeof c->err, "%s", x->str);
            eq_log(EQ_LOG_ERROR, "redis: %s connection set-up: %s", c->name, x->str);
            /* AUTH's refusals (and a command an ACL forbids) */
            if (!strncmp(x->str, "WRONGPASS", 9) || !strncmp(x->str, "NOAUTH", 6) ||
                !strncmp(x->str, "NOPERM", 6) || strstr(x->str, "invalid password") ||
                strstr(x->str, "without any password configured"))
                c->r->st.auth_errors++;
            redisAsyncDisconnect(ac); /* -> on_disconnect -> reconnect later */
        }
        return;
    }
    if (x->type == REDIS_REPLY_INTEGER) c->client_id = x->integer; /* CLIENT ID */
    if (c->hs_waiting == 0 && !c->hs_failed) conn_up(c);
}

static void reconnect_cb(uv_timer_t *t)
{
    rconn *c = t->data;
    if (c->closed || c->ac) return;
    conn_connect(c);
}

static void conn_retry_later(rconn *c)
{
    if (c->closed) return;
    c->next_try_ms = mono_ms() + (uint64_t)c->backoff_ms;
    uv_timer_start(&c->timer, reconnect_cb, (uint64_t)c->backoff_ms, 0);
    c->backoff_ms *= 2;
    if (c->backoff_ms > RD_BACKOFF_MAX_MS) c->backoff_ms = RD_BACKOFF_MAX_MS;
}

static void conn_failed(rconn *c, const char *why_in)
{
    char why[sizeof c->err];
    snprintf(why, sizeof why, "%s", why_in); /* why_in may be c->err */
    if (strcmp(c->err, why) && !c->closed)
        eq_log(EQ_LOG_WARN, "redis: %s connection to %s: %s; retrying", c->name, c->r->where, why);
    snprintf(c->err, sizeof c->err, "%s", why);
    conn_retry_later(c);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rconn *c = ac->data;
    if (status == REDIS_OK) return; /* the handshake replies decide */
    c->ac = NULL;                   /* hiredis frees it after this returns */
    c->up = false;
    conn_failed(c, ac->errstr[0] ? ac->errstr : "connect failed");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rconn *c = ac->data;
    redis_broker *r = c->r;
    const bool was_up = c->up;
    c->ac = NULL;
    c->up = false;
    if (c->closed) return;
    const char *why = status == REDIS_OK ? (c->err[0] ? c->err : "disconnected")
                                         : (ac->errstr[0] ? ac->errstr : "connection lost");
    (void)r;
    if (was_up) {
        eq_log(EQ_LOG_WARN, "redis: %s connection lost: %s; reconnecting", c->name, why);
        if (why != c->err) snprintf(c->err, sizeof c->err, "%s", why);
        c->backoff_ms = RD_BACKOFF_MIN_MS;
        conn_retry_later(c);
    } else {
        conn_failed(c, why);
    }
}

static void conn_connect(rconn *c)
{
    redis_broker *r = c->r;
    redisAsyncContext *ac =
        r->unix_path ? redisAsyncConnectUnix(r->unix_path) : redisAsyncConnect(r->host, r->port);
    if (!ac) {
        conn_failed(c, "out of memory");
        return;
    }
    if (ac->err) {
        char why[256];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac);
        conn_failed(c, why);
        return;
    }
    if (rd_uv_attach(ac, r->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        conn_failed(c, "cannot attach to the event loop");
        return;
    }
    ac->data = c;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    c->up = false;
    c->connect_ms = mono_ms();
    c->watch_head = NULL;
    c->hs_failed = false;
    c->hs_waiting = 0;
    /* The handshake is queued now and written once connected. */
    if (r->password) {
        const char *av[3] = {"AUTH", r->user ? r->user : r->password, r->password};
        const size_t al[3] = {4, strlen(av[1]), strlen(r->password)};
        if (redisAsyncCommandArgv(ac, hs_cb, c, r->user ? 3 : 2, av, al) == REDIS_OK)
            c->hs_waiting++;
    }
    if (r->db) {
        const char *av[2] = {"SELECT", r->db_s};
        const size_t al[2] = {6, strlen(r->db_s)};
        if (redisAsyncCommandArgv(ac, hs_cb, c, 2, av, al) == REDIS_OK) c->hs_waiting++;
    }
    char name[200];
    snprintf(name, sizeof name, "%s:%s", r->client_name_base, c == &r->rd ? "read" : "cmd");
    const char *av[3] = {"CLIENT", "SETNAME", name};
    const size_t al[3] = {6, 7, strlen(name)};
    if (redisAsyncCommandArgv(ac, hs_cb, c, 3, av, al) == REDIS_OK) c->hs_waiting++;
    if (redisAsyncCommand(ac, hs_cb, c, "CLIENT ID") == REDIS_OK) c->hs_waiting++;
}

/* Frees c's context now (pending callbacks run with NULL); no reconnects
 * after this. */
static void conn_drop(rconn *c)
{
    c->closed = true;
    uv_timer_stop(&c->timer);
    redisAsyncContext *ac = c->ac;
    if (!ac) return;
    c->ac = NULL;
    c->up = false;
    redisAsyncFree(ac);
}

/* Blocks up to ms for c's socket and lets hiredis process it (redis_close
 * only: the loop is not running then). */
static void conn_drive(rconn *c, int ms)
{
    redisAsyncContext *ac = c->ac;
    if (!ac || ac->c.fd < 0) return;
    if (ac->c.flags & REDIS_CONNECTED) {
        redisAsyncHandleWrite(ac); /* flush buffered commands */
        if (c->ac != ac) return;
    }
    struct pollfd pf = {.fd = ac->c.fd, .events = POLLIN};
    if (!(ac->c.flags & REDIS_CONNECTED) || sdslen(ac->c.obuf) > 0) pf.events |= POLLOUT;
    int rc = poll(&pf, 1, ms);
    if (rc <= 0) return;
    if (pf.revents & (POLLOUT | POLLERR | POLLHUP)) redisAsyncHandleWrite(ac);
    if (c->ac == ac && (pf.revents & (POLLIN | POLLERR | POLLHUP))) redisAsyncHandleRead(ac);
}

/* Drops a stuck connection; the usual paths reconnect it. */
static void conn_reset(rconn *c, const char *why)
{
    redisAsyncContext *ac = c->ac;
    eq_log(EQ_LOG_WARN, "redis: %s connection: %s; reconnecting", c->name, why);
    snprintf(c->err, sizeof c->err, "%s", why);
    if (ac->c.flags & REDIS_CONNECTED) {
        c->up = false;      /* on_disconnect: retry, no second log line */
        redisAsyncFree(ac); /* pending callbacks get NULL first */
    } else {
        c->ac = NULL; /* no on_disconnect for a connection never made */
        c->up = false;
        redisAsyncFree(ac);
        conn_failed(c, why);
    }
}

/* The watchdog (every second): a connect that takes longer than
 * io_timeout_ms, or a command unanswered that long (plus BLOCK on the read
 * connection), means a frozen server or a silent network: reconnect. The
 * oldest unanswered command is hiredis's reply-callback list head; it
 * changes whenever a reply arrives. */
static void conn_watch(rconn *c, uint64_t now)
{
    redis_broker *r = c->r;
    redisAsyncContext *ac = c->ac;
    if (!ac) return;
    char why[160];
    if (!(ac->c.flags & REDIS_CONNECTED)) {
        if (now - c->connect_ms > (uint64_t)r->io_timeout_ms) {
            snprintf(why, sizeof why, "connect timed out after %d ms", r->io_timeout_ms);
            conn_reset(c, why);
        }
        return;
    }
    const void *head = ac->replies.head;
    if (!head) {
        c->watch_head = NULL;
        return;
    }
    if (head != c->watch_head) {
        c->watch_head = head;
        c->watch_since = now;
        return;
    }
    const uint64_t limit = (uint64_t)r->io_timeout_ms + (c == &r->rd ? (uint64_t)r->block_ms : 0);
    if (now - c->watch_since > limit) {
        snprintf(why, sizeof why, "no reply for %llu ms",
                 (unsigned long long)(now - c->watch_since));
        conn_reset(c, why);
    }
}

/* ---- URL ------------------------------------------------------------------------------- */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static char *pct_decode(const char *s, size_t n)
{
    char *d = malloc(n + 1), *o = d;
    if (!d) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            *o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = 0;
    return d;
}

static int parse_int(const char *s, size_t n, long lo, long hi, long *out)
{
    if (n == 0 || n > 10) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* url with the password of its user-info part replaced by "***", for
 * messages and logs. */
static void redact_url(const char *url, char *out, size_t n)
{
    const char *scheme = strstr(url, "://");
    const char *p = scheme ? scheme + 3 : url;
    const char *slash = strchr(p, '/'), *at = NULL;
    const char *hp_end = slash ? slash : p + strlen(p);
    for (const char *s = p; s < hp_end; s++)
        if (*s == '@') at = s;
    if (!at) {
        snprintf(out, n, "%s", url);
        return;
    }
    const char *colon = memchr(p, ':', (size_t)(at - p));
    const char *keep_end = colon ? colon + 1 : p; /* scheme://user: or scheme:// */
    snprintf(out, n, "%.*s***%s", (int)(keep_end - url), url, at);
}

static int parse_url(redis_broker *r, const char *url, char *err, size_t errlen)
{
    char shown[512]; /* the URL as error messages show it: no password */
    redact_url(url, shown, sizeof shown);
    if (!strncmp(url, "rediss://", 9))
        return eq_err(err, errlen,
                      "redis URL %s: TLS (rediss://) is not supported: this build uses hiredis "
                      "%d.%d.%d, which has no TLS; use redis:// (e.g. via a TLS sidecar)",
                      shown, HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
    if (!strncmp(url, "unix://", 7)) {
        const char *p = url + 7, *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || p[0] != '/')
            return eq_err(err, errlen, "redis URL %s: expected unix:///path/to/socket[?db=N]",
                          shown);
        r->unix_path = dup_n(p, n);
        if (q) {
            long db;
            if (strncmp(q, "?db=", 4) || parse_int(q + 4, strlen(q + 4), 0, 1000000, &db))
                return eq_err(err, errlen, "redis URL %s: expected ?db=N after the socket path",
                              shown);
            r->db = (int)db;
        }
        return 0;
    }
    if (strncmp(url, "redis://", 8))
        return eq_err(err, errlen,
                      "redis URL %s: expected redis://[user:password@]HOST[:PORT][/DB] or "
                      "unix:///path",
                      shown);
    const char *p = url + 8;
    const char *end = p + strlen(p);
    const char *slash = strchr(p, '/');
    const char *hp_end = slash ? slash : end;
    const char *at = NULL;
    for (const char *s = p; s < hp_end; s++)
        if (*s == '@') at = s; /* the last @: passwords may hold one */
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p) r->user = pct_decode(p, (size_t)(colon - p));
            r->password = pct_decode(colon + 1, (size_t)(at - colon - 1));
        } else {
            r->password = pct_decode(p, (size_t)(at - p)); /* as redis-cli: no colon = password */
        }
        p = at + 1;
    }
    const char *host = p, *host_end, *port_s = NULL;
    if (*p == '[') { /* [IPv6] */
        const char *rb = memchr(p, ']', (size_t)(hp_end - p));
        if (!rb) return eq_err(err, errlen, "redis URL %s: unterminated [IPv6 address]", shown);
        host = p + 1;
        host_end = rb;
        if (rb + 1 < hp_end) {
            if (rb[1] != ':') return eq_err(err, errlen, "redis URL %s: bad port", shown);
            port_s = rb + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(hp_end - p));
        host_end = colon ? colon : hp_end;
        if (colon) port_s = colon + 1;
    }
    if (host_end == host) return eq_err(err, errlen, "redis URL %s: no host", shown);
    r->host = dup_n(host, (size_t)(host_end - host));
    r->port = 6379;
    if (port_s) {
        long port;
        if (parse_int(port_s, (size_t)(hp_end - port_s), 1, 65535, &port))
            return eq_err(err, errlen, "redis URL %s: bad port", shown);
        r->port = (int)port;
    }
    if (slash && slash[1]) {
        long db;
        if (parse_int(slash + 1, strlen(slash + 1), 0, 1000000, &db))
            return eq_err(err, errlen, "redis URL %s: bad database number after '/'", shown);
        r->db = (int)db;
    }
    return 0;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static void free_all(redis_broker *r)
{
    free(r->buckets);
    free(r->host);
    free(r->unix_path);
    free(r->user);
    free(r->password);
    free(r->in);
    free(r->group);
    free(r->consumer);
    free(r->out);
    free(r->dlq);
    free(r->start_id);
    free(r->client_name_base);
    free(r);
}

static void handle_closed_cb(uv_handle_t *h)
{
    redis_broker *r = h->data;
    if (--r->open_handles == 0) free_all(r);
}

redis_broker *redis_new(uv_loop_t *loop, const redis_options *o, char *err, size_t errlen)
{
    if (!o->url || !o->in_stream || !o->group || !o->out_stream || !o->dlq_stream || !o->url[0] ||
        !o->in_stream[0] || !o->group[0] || !o->out_stream[0] || !o->dlq_stream[0]) {
        eq_err(err, errlen, "redis: url, in_stream, group, out_stream and dlq_stream are required");
        return NULL;
    }
    if (!strcmp(o->in_stream, o->out_stream) || !strcmp(o->in_stream, o->dlq_stream)) {
        eq_err(err, errlen,
               "redis: the input stream %s cannot also be the output or dead-letter "
               "stream",
               o->in_stream);
        return NULL;
    }
    if (o->read_count < 0 || o->block_ms < 0 || o->claim_idle_ms < 0 || o->claim_interval_ms < 0 ||
        o->max_deliveries < 0 || o->out_maxlen < 0 || o->io_timeout_ms < 0) {
        eq_err(err, errlen, "redis: negative option value");
        return NULL;
    }
    redis_broker *r = calloc(1, sizeof *r);
    if (!r) {
        eq_err(err, errlen, "out of memory");
        return NULL;
    }
    r->loop = loop;
    if (parse_url(r, o->url, err, errlen) != 0) {
        free_all(r);
        return NULL;
    }
    /* Credentials given apart from the URL win over its user info; they are
     * taken as they are (no percent-decoding), so any byte may appear. */
    if (o->password) {
        free(r->password);
        r->password = dup_s(o->password);
    }
    if (o->username) {
        free(r->user);
        r->user = o->username[0] ? dup_s(o->username) : NULL;
    }
    if (r->user && !r->password) {
        eq_err(err, errlen, "redis: a username (%s) without a password: AUTH needs both",
               o->username ? "--redis-username" : "in the URL");
        free_all(r);
        return NULL;
    }
    char host[64] = "worker", defc[96];
    gethostname(host, sizeof host - 1);
    snprintf(defc, sizeof defc, "%s-%d", host, (int)getpid());
    r->health = o->health;
    r->in = dup_s(o->in_stream);
    r->group = dup_s(o->group);
    r->consumer = dup_s(o->consumer && o->consumer[0] ? o->consumer : defc);
    r->out = dup_s(o->out_stream);
    r->dlq = dup_s(o->dlq_stream);
    r->start_id = dup_s(o->group_start_id && o->group_start_id[0] ? o->group_start_id : "0");
    /* CLIENT SETNAME takes no spaces or newlines */
    r->client_name_base = malloc(strlen(r->consumer ? r->consumer : "") + 8);
    if (!r->in || !r->group || !r->consumer || !r->out || !r->dlq || !r->start_id ||
        !r->client_name_base) {
        eq_err(err, errlen, "out of memory");
        free_all(r);
        return NULL;
    }
    sprintf(r->client_name_base, "embedq:%s", r->consumer);
    for (char *s = r->client_name_base; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 127) *s = '_';
    r->read_count = o->read_count ? o->read_count : 256;
    r->block_ms = o->block_ms ? o->block_ms : 1000;
    r->claim_idle_ms = o->claim_idle_ms ? o->claim_idle_ms : 60000;
    r->claim_interval_ms = o->claim_interval_ms ? o->claim_interval_ms : 10000;
    r->max_deliveries = o->max_deliveries ? o->max_deliveries : 5;
    r->io_timeout_ms = o->io_timeout_ms ? o->io_timeout_ms : 15000;
    r->out_maxlen = o->out_maxlen;
    r->create_group = o->create_group;
    snprintf(r->block_s, sizeof r->block_s, "%d", r->block_ms);
    snprintf(r->idle_s, sizeof r->idle_s, "%d", r->claim_idle_ms);
    snprintf(r->maxlen_s, sizeof r->maxlen_s, "%ld", r->out_maxlen);
    snprintf(r->db_s, sizeof r->db_s, "%d", r->db);
    if (r->unix_path)
        snprintf(r->where, sizeof r->where, "unix:%s", r->unix_path);
    else if (strchr(r->host, ':'))
        snprintf(r->where, sizeof r->where, "[%s]:%d", r->host, r->port);
    else
        snprintf(r->where, sizeof r->where, "%s:%d", r->host, r->port);
    r->retry_backoff_ms = RD_BACKOFF_MIN_MS;

    r->rd.r = r->cmd.r = r;
    r->rd.name = "read";
    r->cmd.name = "command";
    r->rd.backoff_ms = r->cmd.backoff_ms = RD_BACKOFF_MIN_MS;
    uv_timer_t *timers[] = {&r->rd.timer,   &r->cmd.timer,   &r->read_timer, &r->claim_timer,
                            &r->info_timer, &r->retry_timer, &r->keep_timer};
    for (size_t i = 0; i < sizeof timers / sizeof *timers; i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = r;
        r->open_handles++;
    }
    r->rd.timer.data = &r->rd;
    r->cmd.timer.data = &r->cmd;
    return r;
}

int redis_start(redis_broker *r, pipeline *p, char *err, size_t errlen)
{
    if (r->started) return eq_err(err, errlen, "redis: already started");
    if (!p) return eq_err(err, errlen, "redis: no pipeline");
    r->p = p;
    r->started = true;
    r->need_reread = true;
    eq_log(EQ_LOG_INFO, "redis: %s db %d, stream %s, group %s, consumer %s -> %s (dead letters %s)",
           r->where, r->db, r->in, r->group, r->consumer, r->out, r->dlq);
    uv_timer_start(&r->info_timer, info_timer_cb, RD_INFO_TICK_MS, RD_INFO_TICK_MS);
    const uint64_t keep_ms = r->claim_idle_ms / 3 > 50 ? (uint64_t)r->claim_idle_ms / 3 : 50;
    uv_timer_start(&r->keep_timer, keep_timer_cb, keep_ms, keep_ms);
    conn_connect(&r->cmd);
    conn_connect(&r->rd);
    return 0;
}

void redis_stop_intake(redis_broker *r)
{
    if (!r || r->intake_stopped) return;
    r->intake_stopped = true;
    uv_timer_stop(&r->claim_timer);
    uv_timer_stop(&r->read_timer);
    if (r->claim_waiting) {
        r->claim_waiting = false;
        r->claim_running = false;
    }
    /* Cut a blocked XREADGROUP short: it returns nil, as on a timeout. */
    if (r->read_inflight && r->read_blocking && r->rd.client_id > 0 && r->cmd.up && r->cmd.ac) {
        char id[32];
        snprintf(id, sizeof id, "%lld", r->rd.client_id);
        const char *av[3] = {"CLIENT", "UNBLOCK", id};
        const size_t al[3] = {6, 7, strlen(id)};
        redisAsyncCommandArgv(r->cmd.ac, NULL, NULL, 3, av, al);
    }
}

bool redis_intake_idle(const redis_broker *r)
{
    return r->intake_stopped && !r->read_inflight && !r->claim_running;
}

static int shut(redis_broker *r, int timeout_ms, char *err, size_t errlen)
{
    if (!r) return 0;
    EQ_ASSERT(!r->freeing);
    redis_stop_intake(r);
    r->closing = true; /* nothing more is submitted, read or claimed */
    conn_drop(&r->rd); /* a blocked read is cut short */
    /* Drive the command connection by hand (the loop is not running: we
     * are inside one of its callbacks) until every MULTI/EXEC is answered,
     * reconnecting and resending if it drops meanwhile. */
    const uint64_t deadline = mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        const uint64_t now = mono_ms();
        if (now >= deadline) break;
        if (r->outstanding == 0 && !r->retry_head && !r->claim_running) break;
        if (!r->cmd.ac) {
            if (!r->outstanding && !r->retry_head) break;
            if (now >= r->cmd.next_try_ms) {
                uv_timer_stop(&r->cmd.timer);
                conn_connect(&r->cmd);
            }
            if (!r->cmd.ac) {
                uint64_t wait = r->cmd.next_try_ms > now ? r->cmd.next_try_ms - now : 1;
                if (wait > deadline - now) wait = deadline - now;
                poll(NULL, 0, (int)wait);
            }
            continue;
        }
        if (r->retry_head && r->cmd.up && now >= r->retry_due_ms) flush_retry(r);
        const uint64_t left = deadline - now;
        conn_drive(&r->cmd, (int)(left < 20 ? left : 20));
    }
    int left = r->outstanding;
    for (rd_msg *s = r->retry_head; s; s = s->qnext)
        left++;
    conn_drop(&r->cmd); /* exec_cb(NULL) queues the rest for retry ... */
    rd_msg *s = r->retry_head;
    r->retry_head = r->retry_tail = NULL;
    while (s) { /* ... which will not come: finish them unaccepted */
        rd_msg *n = s->qnext;
        rd_msg_finish(r, s, false);
        s = n;
    }
    /* What is left in the set is inside the pipeline (pipe_free frees the
     * messages); only the bookkeeping is ours. */
    for (size_t i = 0; i < r->n_buckets; i++) {
        rd_msg *x = r->buckets[i];
        while (x) {
            rd_msg *n = x->hnext;
            if (x->submitted)
                x->msg->broker_data = NULL;
            else
                pipe_msg_free(x->msg);
            rd_msg_free(x);
            x = n;
        }
        r->buckets[i] = NULL;
    }
    r->n_set = 0;
    r->freeing = true;
    uv_timer_t *timers[] = {&r->rd.timer,   &r->cmd.timer,   &r->read_timer, &r->claim_timer,
                            &r->info_timer, &r->retry_timer, &r->keep_timer};
    for (size_t i = 0; i < sizeof timers / sizeof *timers; i++) {
        timers[i]->data = r;
        uv_close((uv_handle_t *)timers[i], handle_closed_cb);
    }
    if (left > 0) {
        eq_log(EQ_LOG_WARN,
               "redis: %d messages left unacknowledged at close; they stay pending and are "
               "redelivered",
               left);
        return eq_err(err, errlen,
                      "%d messages were not acknowledged before the close timeout (they will be "
                      "redelivered)",
                      left);
    }
    return 0;
}

int redis_close(redis_broker *r, int timeout_ms, char *err, size_t errlen)
{
    return shut(r, timeout_ms < 1 ? 1 : timeout_ms, err, errlen);
}

void redis_free(redis_broker *r)
{
    char err[EQ_ERRLEN];
    shut(r, 0, err, sizeof err);
}

bool redis_ready(redis_broker *r, char *why, size_t whylen)
{
    if (!r->started) {
        snprintf(why, whylen, "redis: not started");
        return false;
    }
    const rconn *cs[2] = {&r->cmd, &r->rd};
    for (int i = 0; i < 2; i++)
        if (!cs[i]->up) {
            snprintf(why, whylen, "redis: %s connection to %s %s%s", cs[i]->name, r->where,
                     cs[i]->err[0] ? "down: " : "connecting", cs[i]->err);
            return false;
        }
    if (!r->group_ok) {
        snprintf(why, whylen, "redis: %s", r->group_err[0] ? r->group_err : "checking the group");
        return false;
    }
    return true;
}

void redis_lag(redis_broker *r, void (*fn)(void *ctx, const char *stream, int64_t lag), void *ctx)
{
    if (r && r->lag_known) fn(ctx, r->in, r->lag);
}

void redis_stats(const redis_broker *r, redis_counters *c)
{
    *c = r->st;
}
