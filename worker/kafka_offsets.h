/* kafka_offsets.h - which offset of a Kafka partition may be stored.
 *
 * At-least-once: an input offset may be committed only after the output (or
 * dead letter) of that record AND of every earlier record of the partition
 * was accepted by the broker. Records finish out of order (batches regroup,
 * deliveries complete per output partition), so each assigned partition has
 * a tracker: a ring of the offsets in flight, in consumption order, each
 * marked finished or not. The finished prefix is popped from the front; the
 * offset to store is the last popped offset + 1.
 *
 * A record whose output can never be delivered (a permanent produce error)
 * makes the partition "stuck": nothing at or after it is ever stored again
 * by this tracker. The partition's committed offset stays below the failed
 * record, so whoever owns the partition next (this worker after a restart,
 * or another one after a rebalance) reprocesses it. The tracker is reset
 * when the partition is assigned again.
 *
 * Consumption order is normally increasing offsets; after a seek or an
 * offset reset it may go back. The tracker still works by consumption order
 * (lookups fall back to a linear scan), so a rewind stores a lower offset,
 * which only causes reprocessing, never loss.
 *
 * Threads: a tracker is used from one thread (the libuv loop thread).
 * Allocation: the ring grows by doubling (amortized; it reaches the
 * worker's in-flight bound once and stays there).
 */
#ifndef EQ_KAFKA_OFFSETS_H
#define EQ_KAFKA_OFFSETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t *off;       /* (cap) offsets, ring, in consumption order       */
    uint8_t *st;        /* (cap) per entry: 0 in flight, 1 finished, 2 failed */
    size_t cap;         /* power of two, or 0 before the first kof_add     */
    size_t head;        /* index of the oldest entry                       */
    size_t n;           /* entries in the ring                             */
    bool monotonic;     /* offsets added so far strictly increase     */
    int64_t last_added; /* -1 before the first kof_add                */
    int64_t stored;     /* the last value kof_finish returned, or -1  */
    bool stuck;         /* a failed entry reached the front           */
    int64_t stuck_at;   /* its offset (valid when stuck)              */
    int64_t n_failed;   /* entries marked failed, ever                */
} kof_partition;

/* An empty tracker (no memory held yet). */
void kof_init(kof_partition *t);
/* Frees the ring; t is empty again (kof_init state). */
void kof_reset(kof_partition *t);

/* Records that `offset` was consumed and is now in flight. Returns 0, or -1
 * when out of memory (t unchanged). */
int kof_add(kof_partition *t, int64_t offset);

/* The record at `offset` is finished (its output was accepted). Returns the
 * offset to store (last record of the finished prefix + 1) when the prefix
 * advanced, else -1: the prefix did not move, the partition is stuck, or
 * `offset` is not in flight (e.g. it belongs to an earlier assignment). */
int64_t kof_finish(kof_partition *t, int64_t offset);

/* The record at `offset` will never be delivered. Records before it can
 * still be stored (kof_finish); from the moment it reaches the front of the
 * ring the partition is stuck and nothing from `offset` on is ever stored.
 * Unknown offsets are ignored. */
void kof_fail(kof_partition *t, int64_t offset);

/* Records in flight (consumed, neither finished nor failed-and-popped). */
static inline size_t kof_in_flight(const kof_partition *t)
{
    return t->n;
}

/* True when nothing is in flight and nothing failed: every consumed record
 * is stored (the partition's position may then be stored as a whole). */
static inline bool kof_idle(const kof_partition *t)
{
    return t->n == 0 && !t->stuck && t->n_failed == 0;
}

/* The first in-flight offset, or -1 when none. */
int64_t kof_first(const kof_partition *t);

#endif
