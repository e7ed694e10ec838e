/* check.h - what the C unit tests share: CHECK (counts a failure, prints
 * file:line and a message, and goes on), a seeded splitmix64 generator, and
 * the cosine of two float vectors in double. Header-only and static: each
 * test is its own executable.
 *
 * Before including it, define TEST_RNG_SEED (a uint64_t constant): each test
 * keeps its own sequence. `failures` counts the failed CHECKs; main returns
 * non-zero when it is. */
#ifndef EQ_TEST_CHECK_H
#define EQ_TEST_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);                                  \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#ifdef TEST_RNG_SEED
static uint64_t rng_state = TEST_RNG_SEED;

/* splitmix64, the high 32 bits */
static inline uint32_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}
#endif

static inline double dot(const float *a, const float *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

static inline double cosine(const float *a, const float *b, int n)
{
    return dot(a, b, n) / sqrt(dot(a, a, n) * dot(b, b, n));
}

#endif
