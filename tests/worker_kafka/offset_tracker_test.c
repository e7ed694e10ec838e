/* offset_tracker_test.c - the Kafka offset tracker (worker/kafka_offsets.h)
 * on its own: in-order and out-of-order finishes, gaps in the offsets
 * (compacted topics, transaction markers), rewinds, failures (stuck
 * partitions), reset on reassignment, ring growth, and a randomized check
 * against a simple model. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "kafka_offsets.h"

static int failures;

#define CHECK_EQ(got, want)                                                                        \
    do {                                                                                           \
        long long g_ = (long long)(got), w_ = (long long)(want);                                   \
        if (g_ != w_) {                                                                            \
            fprintf(stderr, "%s:%d: %s = %lld, want %lld\n", __FILE__, __LINE__, #got, g_, w_);    \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static void test_in_order(void)
{
    kof_partition t;
    kof_init(&t);
    CHECK_EQ(kof_idle(&t), 1);
    for (int64_t o = 10; o < 15; o++)
        CHECK_EQ(kof_add(&t, o), 0);
    CHECK_EQ(kof_in_flight(&t), 5);
    CHECK_EQ(kof_first(&t), 10);
    for (int64_t o = 10; o < 15; o++)
        CHECK_EQ(kof_finish(&t, o), o + 1);
    CHECK_EQ(kof_in_flight(&t), 0);
    CHECK_EQ(kof_idle(&t), 1);
    CHECK_EQ(t.stored, 15);
    CHECK_EQ(kof_first(&t), -1);
    kof_reset(&t);
}

static void test_out_of_order(void)
{
    kof_partition t;
    kof_init(&t);
    for (int64_t o = 0; o < 6; o++)
        kof_add(&t, o);
    CHECK_EQ(kof_finish(&t, 3), -1); /* 0..2 still in flight */
    CHECK_EQ(kof_finish(&t, 1), -1);
    CHECK_EQ(kof_finish(&t, 5), -1);
    CHECK_EQ(kof_finish(&t, 0), 2); /* 0, 1 finished: store 2 */
    CHECK_EQ(kof_in_flight(&t), 4);
    CHECK_EQ(kof_finish(&t, 2), 4); /* 2, 3 */
    CHECK_EQ(kof_finish(&t, 4), 6); /* 4, 5 */
    CHECK_EQ(kof_idle(&t), 1);
    /* A finish twice, or of an offset never added: ignored. */
    CHECK_EQ(kof_finish(&t, 4), -1);
    CHECK_EQ(kof_finish(&t, 99), -1);
    kof_reset(&t);
}

static void test_gaps(void)
{
    /* Offsets with holes (compaction, transaction markers): the stored
     * offset is the last finished record + 1, never a guess past it. */
    kof_partition t;
    kof_init(&t);
    kof_add(&t, 100);
    kof_add(&t, 105);
    kof_add(&t, 107);
    CHECK_EQ(kof_finish(&t, 105), -1);
    CHECK_EQ(kof_finish(&t, 100), 106);
    CHECK_EQ(kof_finish(&t, 106), -1); /* not in flight */
    CHECK_EQ(kof_finish(&t, 107), 108);
    kof_reset(&t);
}

static void test_stuck(void)
{
    kof_partition t;
    kof_init(&t);
    for (int64_t o = 0; o < 6; o++)
        kof_add(&t, o);
    kof_fail(&t, 3);
    CHECK_EQ(kof_idle(&t), 0);
    CHECK_EQ(kof_finish(&t, 4), -1);
    CHECK_EQ(kof_finish(&t, 0), 1); /* before the failure: still stored */
    CHECK_EQ(kof_finish(&t, 2), -1);
    CHECK_EQ(kof_finish(&t, 1), 3); /* 1, 2 finished; 3 failed: stop at 3 */
    CHECK_EQ(t.stuck, 1);
    CHECK_EQ(t.stuck_at, 3);
    CHECK_EQ(kof_in_flight(&t), 1);  /* only 5 left */
    CHECK_EQ(kof_finish(&t, 5), -1); /* stuck: never past 3 */
    CHECK_EQ(kof_in_flight(&t), 0);
    CHECK_EQ(kof_idle(&t), 0); /* a failure: never idle */
    kof_add(&t, 6);
    CHECK_EQ(kof_finish(&t, 6), -1);
    CHECK_EQ(t.stored, 3);
    /* Reassignment: a fresh tracker. */
    kof_reset(&t);
    CHECK_EQ(kof_idle(&t), 1);
    kof_add(&t, 3);
    CHECK_EQ(kof_finish(&t, 3), 4);
    kof_reset(&t);
}

static void test_fail_at_front(void)
{
    kof_partition t;
    kof_init(&t);
    kof_add(&t, 7);
    kof_add(&t, 8);
    kof_fail(&t, 7);
    CHECK_EQ(t.stuck, 1);
    CHECK_EQ(kof_finish(&t, 8), -1);
    CHECK_EQ(t.stored, -1);
    kof_fail(&t, 123); /* unknown: ignored */
    kof_reset(&t);
}

static void test_rewind(void)
{
    /* A seek back: consumption order goes 10, 11, 5, 6. Lookups still
     * work (linear), and storing follows consumption order. */
    kof_partition t;
    kof_init(&t);
    kof_add(&t, 10);
    kof_add(&t, 11);
    kof_add(&t, 5);
    kof_add(&t, 6);
    CHECK_EQ(t.monotonic, 0);
    CHECK_EQ(kof_finish(&t, 5), -1);
    CHECK_EQ(kof_finish(&t, 10), 11);
    CHECK_EQ(kof_finish(&t, 11), 6); /* 11 then 5 popped */
    CHECK_EQ(kof_finish(&t, 6), 7);
    CHECK_EQ(t.monotonic, 1); /* empty again: a fresh run */
    /* The same offset twice (consumed again after a rewind). */
    kof_add(&t, 20);
    kof_add(&t, 20);
    CHECK_EQ(kof_finish(&t, 20), 21);
    CHECK_EQ(kof_in_flight(&t), 1);
    CHECK_EQ(kof_finish(&t, 20), 21);
    CHECK_EQ(kof_in_flight(&t), 0);
    kof_reset(&t);
}

static void test_growth_and_wrap(void)
{
    /* Keep a window of in-flight offsets sliding through the ring so that
     * it wraps, and grows while wrapped. */
    kof_partition t;
    kof_init(&t);
    int64_t next = 0, done = 0;
    for (int round = 0; round < 50; round++) {
        int add = 37 + round * 3;
        for (int i = 0; i < add; i++)
            CHECK_EQ(kof_add(&t, next++), 0);
        int fin = add - 5 + (round % 7);
        for (int i = 0; i < fin && done < next; i++) {
            int64_t want = done + 1;
            CHECK_EQ(kof_finish(&t, done), want);
            done++;
        }
    }
    CHECK_EQ(kof_in_flight(&t), (size_t)(next - done));
    /* The rest in reverse: only the oldest completes the prefix. */
    for (int64_t x = next - 1; x > done; x--)
        CHECK_EQ(kof_finish(&t, x), -1);
    CHECK_EQ(kof_finish(&t, done), next);
    CHECK_EQ(kof_idle(&t), 1);
    kof_reset(&t);
}

/* Randomized: offsets with random gaps, finished in random order; after
 * every finish the stored offset must equal the model's (the smallest
 * unfinished offset, or last + 1 when everything is finished). */
static void test_random(void)
{
    srand(12345);
    for (int trial = 0; trial < 200; trial++) {
        kof_partition t;
        kof_init(&t);
        int n = 1 + rand() % 300;
        int64_t *offs = malloc(sizeof *offs * (size_t)n);
        int *order = malloc(sizeof *order * (size_t)n);
        char *fin = calloc((size_t)n, 1);
        int64_t o = rand() % 1000;
        for (int i = 0; i < n; i++) {
            offs[i] = o;
            o += 1 + (rand() % 4 == 0 ? rand() % 5 : 0);
            kof_add(&t, offs[i]);
            order[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = rand() % (i + 1), tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        int64_t stored = -1;
        for (int k = 0; k < n; k++) {
            int i = order[k];
            fin[i] = 1;
            int64_t r = kof_finish(&t, offs[i]);
            int first = 0;
            while (first < n && fin[first])
                first++;
            int64_t want = first == 0 ? -1 : offs[first - 1] + 1;
            if (want != stored) {
                CHECK_EQ(r, want);
                stored = want;
            } else {
                CHECK_EQ(r, -1);
            }
            CHECK_EQ(kof_in_flight(&t), (size_t)(n - first));
        }
        CHECK_EQ(kof_idle(&t), 1);
        free(offs);
        free(order);
        free(fin);
        kof_reset(&t);
    }
}

int main(void)
{
    test_in_order();
    test_out_of_order();
    test_gaps();
    test_stuck();
    test_fail_at_front();
    test_rewind();
    test_growth_and_wrap();
    test_random();
    if (failures) {
        fprintf(stderr, "offset_tracker_test: %d check(s) failed\n", failures);
        return 1;
    }
    printf("offset_tracker_test: ok\n");
    return 0;
}
