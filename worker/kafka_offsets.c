/* kafka_offsets.c - per-partition in-order tracker of in-flight offsets
 * (see kafka_offsets.h). */
#include "kafka_offsets.h"

#include <stdlib.h>
#include <string.h>

enum { ST_IN_FLIGHT = 0, ST_FINISHED = 1, ST_FAILED = 2 };

void kof_init(kof_partition *t)
{
    memset(t, 0, sizeof *t);
    t->monotonic = true;
    t->last_added = -1;
    t->stored = -1;
    t->stuck_at = -1;
}

void kof_reset(kof_partition *t)
{
    free(t->off);
    free(t->st);
    kof_init(t);
}

static size_t slot(const kof_partition *t, size_t i)
{
    return (t->head + i) & (t->cap - 1);
}

static int grow(kof_partition *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    int64_t *off = malloc(cap * sizeof *off);
    uint8_t *st = malloc(cap);
    if (!off || !st) {
        free(off);
        free(st);
        return -1;
    }
    for (size_t i = 0; i < t->n; i++) {
        off[i] = t->off[slot(t, i)];
        st[i] = t->st[slot(t, i)];
    }
    free(t->off);
    free(t->st);
    t->off = off;
    t->st = st;
    t->cap = cap;
    t->head = 0;
    return 0;
}

int kof_add(kof_partition *t, int64_t offset)
{
    if (t->n == t->cap && grow(t) != 0) return -1;
    size_t s = slot(t, t->n);
    t->off[s] = offset;
    t->st[s] = ST_IN_FLIGHT;
    t->n++;
    if (t->last_added >= 0 && offset <= t->last_added) t->monotonic = false;
    t->last_added = offset;
    return 0;
}

/* Index (0 = front) of the first in-flight entry holding `offset`, or -1. */
static long find(const kof_partition *t, int64_t offset)
{
    if (t->n == 0) return -1;
    if (t->monotonic) {
        size_t lo = 0, hi = t->n; /* binary search over [lo, hi) */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (t->off[slot(t, mid)] < offset)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < t->n && t->off[slot(t, lo)] == offset && t->st[slot(t, lo)] == ST_IN_FLIGHT)
            return (long)lo;
        return -1;
    }
    for (size_t i = 0; i < t->n; i++)
        if (t->off[slot(t, i)] == offset && t->st[slot(t, i)] == ST_IN_FLIGHT) return (long)i;
    return -1;
}

/* Pops the front while it is finished or failed. Returns the new offset to
 * store, or -1 if none. */
static int64_t pop_prefix(kof_partition *t)
{
    int64_t last = -1;
    while (t->n > 0) {
        size_t s = t->head;
        if (t->st[s] == ST_IN_FLIGHT) break;
        if (t->st[s] == ST_FAILED && !t->stuck) {
            t->stuck = true;
            t->stuck_at = t->off[s];
        }
        if (!t->stuck) last = t->off[s];
        t->head = (t->head + 1) & (t->cap - 1);
        t->n--;
    }
    if (t->n == 0) {
        t->head = 0;
        /* A fresh run of offsets starts from here. */
        t->monotonic = true;
        t->last_added = -1;
    }
    if (last < 0) return -1;
    t->stored = last + 1;
    return last + 1;
}

int64_t kof_finish(kof_partition *t, int64_t offset)
{
    long i = find(t, offset);
    if (i < 0) return -1;
    t->st[slot(t, (size_t)i)] = ST_FINISHED;
    return i == 0 ? pop_prefix(t) : -1;
}

void kof_fail(kof_partition *t, int64_t offset)
{
    long i = find(t, offset);
    if (i < 0) return;
    t->st[slot(t, (size_t)i)] = ST_FAILED;
    t->n_failed++;
    if (i == 0) pop_prefix(t);
}

int64_t kof_first(const kof_partition *t)
{
    return t->n ? t->off[t->head] : -1;
}
