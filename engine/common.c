/* common.c - see common.h. */
#include "common.h"

#include <errno.h>
#include <time.h>

int eq_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int log_threshold(void)
{
    static int level = -1;
    if (level < 0) {
        const char *s = getenv("EMBEDQ_LOG_LEVEL");
        level = EQ_LOG_INFO;
        if (s) {
            if (!strcmp(s, "debug"))
                level = EQ_LOG_DEBUG;
            else if (!strcmp(s, "warn"))
                level = EQ_LOG_WARN;
            else if (!strcmp(s, "error"))
                level = EQ_LOG_ERROR;
        }
    }
    return level;
}

void eq_log_at(int level, const char *file, int line, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (level < log_threshold()) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (level == EQ_LOG_DEBUG)
        fprintf(stderr, "embedq %s %s:%d: %s\n", names[level], file, line, msg);
    else
        fprintf(stderr, "embedq %s: %s\n", names[level], msg);
}

const char *eq_dtype_name(eq_dtype t)
{
    switch (t) {
    case EQ_F32:
        return "F32";
    case EQ_F16:
        return "F16";
    case EQ_BF16:
        return "BF16";
    }
    return "?";
}

float eq_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalize */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void eq_to_f32(float *dst, const void *src, eq_dtype t, size_t n)
{
    const uint16_t *h = src;
    switch (t) {
    case EQ_F32:
        memcpy(dst, src, n * 4);
        break;
    case EQ_BF16:
        for (size_t i = 0; i < n; i++)
            dst[i] = eq_bf16_to_f32(h[i]);
        break;
    case EQ_F16:
        for (size_t i = 0; i < n; i++)
            dst[i] = eq_f16_to_f32(h[i]);
        break;
    }
}

char *eq_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        eq_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) != 0) goto io_err;
    long sz = ftell(f);
    if (sz < 0 || fseek(f, 0, SEEK_SET) != 0) goto io_err;
    buf = malloc((size_t)sz + 1);
    if (!buf) {
        eq_err(err, errlen, "%s: out of memory reading %ld bytes", path, sz);
        fclose(f);
        return NULL;
    }
    if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) goto io_err;
    buf[sz] = 0;
    fclose(f);
    if (len) *len = (size_t)sz;
    return buf;
io_err:
    eq_err(err, errlen, "%s: read error: %s", path, strerror(errno));
    free(buf);
    fclose(f);
    return NULL;
}
