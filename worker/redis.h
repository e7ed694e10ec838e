/* redis.h - Redis Streams source and sink of the worker (hiredis async on
 * the worker's libuv loop).
 *
 *   XREADGROUP (own connection, blocking) --pipe_submit--> pipeline
 *   pipeline --publish--> MULTI; XADD out|dlq ...; XACK in group id; EXEC
 *   (command connection) --EXEC reply: both succeeded--> pipe_finish(true)
 *
 * At-least-once: an entry is acknowledged (XACK) only in the same
 * MULTI/EXEC as its output (or dead letter). A crash anywhere leaves it in
 * the group's pending list, where this consumer re-reads it on restart
 * (XREADGROUP id 0) and other consumers claim it once it has been idle for
 * claim_idle_ms (XAUTOCLAIM). Outputs can therefore be duplicated, never
 * lost; consumers key on the input id inside the output. See docs/redis.md.
 *
 * Redis Cluster: the MULTI/EXEC touches the input and the output (or
 * dead-letter) stream, so all three names need one hash tag, e.g.
 * {embed}:in, {embed}:out, {embed}:dlq.
 *
 * Threads: every function here runs on the loop thread (the one running
 * `loop`), including the pipe_broker callbacks; none is thread-safe.
 */
#ifndef EQ_REDIS_H
#define EQ_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "pipeline.h"
#include "publish_health.h"

typedef struct redis_broker redis_broker;

/* Options. Zero / NULL fields take the defaults shown. The strings are
 * copied by redis_new. */
typedef struct {
    const char *url;                 /* redis://[user:password@]HOST[:PORT][/DB] (port 6379,
                                        db 0; user and password percent-decoded); also
                                        unix:///path/to/socket[?db=N]. rediss:// is
                                        refused: this hiredis build has no TLS.           */
    const char *username, *password; /* when set, they replace the URL's user
                                        info (taken verbatim: no decoding);
                                        "" username = none (AUTH password) */
    const char *in_stream, *group, *out_stream, *dlq_stream; /* required */
    const char *consumer;       /* consumer name; default "HOST-PID"        */
    int read_count;             /* XREADGROUP / XAUTOCLAIM COUNT, 256        */
    int block_ms;               /* XREADGROUP BLOCK, 1000                    */
    int claim_idle_ms;          /* XAUTOCLAIM min-idle-time, 60000           */
    int claim_interval_ms;      /* how often XAUTOCLAIM runs, 10000          */
    int max_deliveries;         /* an entry delivered more often than this is
                                   dead-lettered unprocessed (reason code
                                   `too_many_deliveries`), 5                 */
    long out_maxlen;            /* XADD MAXLEN ~ n on the OUTPUT stream only;
                                   0 = no trimming. Inputs are never trimmed. */
    bool create_group;          /* at start: XGROUP CREATE in group
                                   group_start_id MKSTREAM unless it exists.
                                   Never done again after a reconnect (a
                                   vanished group is reported, not recreated). */
    const char *group_start_id; /* "0" (existing entries included) or "$" */
    int io_timeout_ms;          /* a connection with a command unanswered this
                                   long (beyond BLOCK for the read connection),
                                   or still connecting, is dropped and
                                   reconnected (hiredis 0.14 async has no
                                   timeouts of its own), 15000               */
    pub_health *health;         /* optional: every EXEC outcome of a publish
                                   is reported here (publish_health.h); must
                                   outlive the broker                        */
} redis_options;

/* Counters since redis_new (loop thread). */
typedef struct {
    uint64_t read;                /* entries read with XREADGROUP (> and 0)  */
    uint64_t claimed;             /* entries taken over with XAUTOCLAIM      */
    uint64_t skipped_in_flight;   /* re-read/claimed entries already in flight
                                     here (not submitted twice)              */
    uint64_t too_many_deliveries; /* dead-lettered by this module unprocessed */
    uint64_t deleted;             /* pending ids whose entry was deleted
                                     (XAUTOCLAIM drops them; XREADGROUP 0
                                     ones are XACKed)                        */
    uint64_t acked;               /* MULTI/EXECs that succeeded              */
    uint64_t exec_retries;        /* MULTI/EXECs sent again (connection lost
                                     or a transient error such as LOADING)   */
    uint64_t exec_failed;         /* MULTI/EXECs given up (pipe_finish false;
                                     the entry stays pending, is redelivered) */
    uint64_t reconnects;          /* connections re-established              */
    uint64_t auth_errors;         /* connection set-ups refused by AUTH
                                     (WRONGPASS, NOAUTH, NOPERM, ...)         */
    uint64_t left_pending;        /* entries read but never submitted because
                                     the broker was closing (still pending)  */
    uint64_t kept_alive;          /* held entries whose idle time was reset
                                     (XCLAIM ... JUSTID), so that no other
                                     consumer claims them                    */
} redis_counters;

/* Validates o and parses the URL; connects nothing. Returns NULL with a
 * message in err on failure. */
redis_broker *redis_new(uv_loop_t *loop, const redis_options *o, char *err, size_t errlen);

/* The callbacks the pipeline calls (publish, pause, resume). */
pipe_broker redis_pipe_broker(redis_broker *r);

/* Starts connecting (two connections: one for the blocking XREADGROUP, one
 * for everything else), then creates/checks the group, re-reads this
 * consumer's own pending entries (id 0), and reads new ones (>).
 * Connection failures are not errors here: they are retried with backoff
 * (100 ms doubling to 5 s) and shown by redis_ready. Returns -1 with a
 * message only for misuse (already started, no pipeline). */
int redis_start(redis_broker *r, pipeline *p, char *err, size_t errlen);

/* Stops reading and claiming. A read already sent completes and its entries
 * are still submitted (they are pending for this consumer); a blocked
 * XREADGROUP is cut short (CLIENT UNBLOCK). Publishing goes on. */
void redis_stop_intake(redis_broker *r);

/* True after redis_stop_intake once no read or claim is outstanding: no
 * pipe_submit will happen any more. A drain is complete when this is true
 * AND pipe_in_flight() == 0. */
bool redis_intake_idle(const redis_broker *r);

/* Call once pipe_in_flight() is 0 (or the drain timed out), before
 * pipe_free. Stops intake, waits at most timeout_ms (blocking the loop
 * thread) for outstanding MULTI/EXEC replies, finishes what is left
 * unaccepted (pipe_finish false: redelivered later), disconnects, and frees
 * r: r is invalid afterwards (do not call redis_free). The loop must run
 * again for the last memory to be released (handle close callbacks).
 * Returns 0, or -1 with a message when some message was left
 * unacknowledged. */
int redis_close(redis_broker *r, int timeout_ms, char *err, size_t errlen);

/* Both connections up and the group present; otherwise false with why. */
bool redis_ready(redis_broker *r, char *why, size_t whylen);

/* Calls fn(ctx, in_stream, lag) with the group's `lag` (XINFO GROUPS,
 * Redis >= 7), refreshed in the background every 5 s. fn is not called
 * while the lag is unknown (not read yet, or NULL because entries were
 * deleted or trimmed from the input stream). */
void redis_lag(redis_broker *r, void (*fn)(void *ctx, const char *stream, int64_t lag), void *ctx);

void redis_stats(const redis_broker *r, redis_counters *c);

/* Frees a broker that was not closed with redis_close (for example when
 * start-up failed), without waiting for anything. NULL is fine. The loop
 * must run again for the last memory to be released. */
void redis_free(redis_broker *r);

#endif
