/* common.h - small shared helpers for the engine: error strings, assertions,
 * logging, and the bf16/f16 <-> f32 conversions every module needs.
 *
 * Error tiers (see ../shared/STYLE.md):
 *   - invariants: EQ_ASSERT (logs file:line, aborts);
 *   - expected failures: functions return a negative value and write one
 *     human-readable line into a caller-supplied `char *err, size_t errlen`
 *     buffer (never exit() from library code).
 */
#ifndef EQ_COMMON_H
#define EQ_COMMON_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EQ_ERRLEN 512 /* a good size for err buffers */

/* Writes a formatted message into err (if err != NULL). Always returns -1 so
 * that `return eq_err(err, errlen, "...")` reads naturally. */
int eq_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define EQ_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Logging: one level-filtered macro. Level from EMBEDQ_LOG_LEVEL
 * (debug|info|warn|error), default info. Writes to stderr. */
enum { EQ_LOG_DEBUG = 0, EQ_LOG_INFO = 1, EQ_LOG_WARN = 2, EQ_LOG_ERROR = 3 };
void eq_log_at(int level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define eq_log(level, ...) eq_log_at(level, __FILE__, __LINE__, __VA_ARGS__)

/* Element types of tensors on disk and in memory. */
typedef enum { EQ_F32 = 0, EQ_F16 = 1, EQ_BF16 = 2 } eq_dtype;

static inline size_t eq_dtype_size(eq_dtype t)
{
    return t == EQ_F32 ? 4 : 2;
}
const char *eq_dtype_name(eq_dtype t);

static inline float eq_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round-to-nearest-even, NaN stays NaN. */
static inline uint16_t eq_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float eq_f16_to_f32(uint16_t h);

/* Converts n elements of type t at src into f32 at dst. */
void eq_to_f32(float *dst, const void *src, eq_dtype t, size_t n);

/* Reads a whole file into a malloc'd, NUL-terminated buffer. Returns NULL and
 * writes err on failure. *len (optional) gets the size without the NUL. */
char *eq_read_file(const char *path, size_t *len, char *err, size_t errlen);

#endif
