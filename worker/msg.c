/* msg.c - the worker's message formats. Contract in msg.h, formats in
 * schemas/README.md.
 *
 * Design: two small validating readers, one per encoding (mrd: msgpack,
 * jrd: JSON), walk the whole message once with a depth limit, checking
 * every declared length and count against the bytes that remain. The
 * top-level loop records where the five known fields' values lie (fval);
 * build_input() then checks the fields in a fixed order (id, text,
 * instruction, dimensions, meta) and, only when all pass, copies what it
 * keeps into one block. The same readers convert `meta` between encodings
 * when the output encoding differs (check-only at decode, writing at
 * encode). All recursion is bounded by max_depth (<= MSG_MAX_DEPTH_CAP).
 */
#include "msg.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Tests count allocations by compiling this file with -DMSG_ALLOC_HOOK. */
#ifdef MSG_ALLOC_HOOK
void *msg_test_malloc(size_t n);
void *msg_test_realloc(void *p, size_t n);
#define MSG_MALLOC  msg_test_malloc
#define MSG_REALLOC msg_test_realloc
#else
#define MSG_MALLOC  malloc
#define MSG_REALLOC realloc
#endif

/* ---- errors ------------------------------------------------------------------ */

static const char *const code_names[MSG_E__COUNT] = {
    [MSG_OK] = "ok",
    [MSG_E_TOO_LARGE] = "too_large",
    [MSG_E_EMPTY_MESSAGE] = "empty_message",
    [MSG_E_MALFORMED_MSGPACK] = "malformed_msgpack",
    [MSG_E_MALFORMED_JSON] = "malformed_json",
    [MSG_E_TOO_DEEP] = "too_deep",
    [MSG_E_NOT_A_MAP] = "not_a_map",
    [MSG_E_DUPLICATE_KEY] = "duplicate_key",
    [MSG_E_MISSING_ID] = "missing_id",
    [MSG_E_ID_WRONG_TYPE] = "id_wrong_type",
    [MSG_E_ID_OUT_OF_RANGE] = "id_out_of_range",
    [MSG_E_EMPTY_ID] = "empty_id",
    [MSG_E_MISSING_TEXT] = "missing_text",
    [MSG_E_TEXT_WRONG_TYPE] = "text_wrong_type",
    [MSG_E_EMPTY_TEXT] = "empty_text",
    [MSG_E_INVALID_UTF8] = "invalid_utf8",
    [MSG_E_INSTRUCTION_WRONG_TYPE] = "instruction_wrong_type",
    [MSG_E_DIMENSIONS_WRONG_TYPE] = "dimensions_wrong_type",
    [MSG_E_DIMENSIONS_OUT_OF_RANGE] = "dimensions_out_of_range",
    [MSG_E_META_TOO_LARGE] = "meta_too_large",
    [MSG_E_META_UNCONVERTIBLE] = "meta_unconvertible",
    [MSG_E_TEXT_TOO_LONG] = "text_too_long",
    [MSG_E_INVALID_TEXT] = "invalid_text",
    [MSG_E_INTERNAL] = "internal",
    [MSG_E_OUTPUT_TOO_LARGE] = "output_too_large",
    [MSG_E_TOO_MANY_DELIVERIES] = "too_many_deliveries",
    [MSG_E_INSTRUCTION_TOO_LONG] = "instruction_too_long",
};

const char *msg_code_name(msg_code c)
{
    if ((int)c < 0 || c >= MSG_E__COUNT) return "unknown";
    return code_names[c];
}

const char *msg_error_code_static(const msg_error *e)
{
    return msg_code_name(e->code);
}

int msg_error_set(msg_error *e, msg_code c, const char *fmt, ...)
{
    if (!e) return -1;
    e->code = c;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof e->detail, fmt, ap);
    va_end(ap);
    for (char *p = e->detail; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) *p = '?';
    return -1;
}

size_t msg_error_format(const msg_error *e, char *out, size_t cap)
{
    const char *code = msg_code_name(e->code);
    int n = e->detail[0] ? snprintf(out, cap, "%s: %s", code, e->detail)
                         : snprintf(out, cap, "%s", code);
    return n < 0 ? 0 : (size_t)n;
}

static int oom(msg_error *e)
{
    return msg_error_set(e, MSG_E_INTERNAL, "out of memory");
}

/* ---- UTF-8 ------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s[0..n) (Unicode table 3-7:
 * no overlongs, no surrogates, <= U+10FFFF), or 0 if there is none. */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t c = s[0], lo = 0x80, hi = 0xbf;
    size_t k;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        k = 1;
    else if (c == 0xe0)
        k = 2, lo = 0xa0;
    else if (c == 0xed)
        k = 2, hi = 0x9f;
    else if (c >= 0xe1 && c <= 0xef)
        k = 2;
    else if (c == 0xf0)
        k = 3, lo = 0x90;
    else if (c >= 0xf1 && c <= 0xf3)
        k = 3;
    else if (c == 0xf4)
        k = 3, hi = 0x8f;
    else
        return 0;
    if (n <= k || s[1] < lo || s[1] > hi) return 0;
    for (size_t j = 2; j <= k; j++)
        if ((s[j] & 0xc0) != 0x80) return 0;
    return k + 1;
}

/* Offset of the first byte not starting a well-formed sequence, or n. */
static size_t utf8_check(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq(s + i, n - i);
        if (!k) return i;
        i += k;
    }
    return n;
}

/* ---- SHA-1 (FIPS 180-4) and UUIDv5 (RFC 9562) -------------------------------- */

typedef struct {
    uint32_t h[5];
    uint64_t n;
    uint8_t blk[64];
} sha1_ctx;

static uint32_t rol32(uint32_t x, int k)
{
    return (x << k) | (x >> (32 - k));
}

static void sha1_block(sha1_ctx *c, const uint8_t *p)
{
    uint32_t w[80], a = c->h[0], b = c->h[1], d3 = c->h[2], d = c->h[3], e = c->h[4];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)
            f = (b & d3) | (~b & d), k = 0x5a827999;
        else if (i < 40)
            f = b ^ d3 ^ d, k = 0x6ed9eba1;
        else if (i < 60)
            f = (b & d3) | (b & d) | (d3 & d), k = 0x8f1bbcdc;
        else
            f = b ^ d3 ^ d, k = 0xca62c1d6;
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d, d = d3, d3 = rol32(b, 30), b = a, a = t;
    }
    c->h[0] += a, c->h[1] += b, c->h[2] += d3, c->h[3] += d, c->h[4] += e;
}

static void sha1_init(sha1_ctx *c)
{
    static const uint32_t h0[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    memcpy(c->h, h0, sizeof h0);
    c->n = 0;
}

static void sha1_update(sha1_ctx *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        size_t used = (size_t)(c->n % 64), take = 64 - used < len ? 64 - used : len;
        memcpy(c->blk + used, p, take);
        c->n += take, p += take, len -= take;
        if (c->n % 64 == 0) sha1_block(c, c->blk);
    }
}

static void sha1_final(sha1_ctx *c, uint8_t out[20])
{
    uint64_t bits = c->n * 8;
    uint8_t pad[72] = {0x80};
    size_t used = (size_t)(c->n % 64), npad = used < 56 ? 56 - used : 120 - used;
    sha1_update(c, pad, npad);
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_update(c, lenb, 8);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (uint8_t)(c->h[i] >> (24 - 8 * j));
}

static void uuid_text(const uint8_t u[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
        *o++ = hex[u[i] >> 4];
        *o++ = hex[u[i] & 15];
    }
    *o = 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Parses the 8-4-4-4-12 hex form (any case). Returns 0 or -1. */
static int uuid_parse(const char *s, size_t n, uint8_t u[16])
{
    if (n != 36) return -1;
    int k = 0;
    for (size_t i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return -1;
            i++;
            continue;
        }
        int hi = hexval((unsigned char)s[i]), lo = hexval((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0) return -1;
        u[k++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return 0;
}

void msg_uuid5(const uint8_t ns[16], const void *name, size_t len, char out[37])
{
    sha1_ctx c;
    uint8_t h[20];
    sha1_init(&c);
    sha1_update(&c, ns, 16);
    sha1_update(&c, name, len);
    sha1_final(&c, h);
    h[6] = (uint8_t)((h[6] & 0x0f) | 0x50); /* version 5 */
    h[8] = (uint8_t)((h[8] & 0x3f) | 0x80); /* variant 10 */
    uuid_text(h, out);
}

/* ---- byte buffer -------------------------------------------------------------- */

void msg_buf_free(msg_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int msg_buf_reserve(msg_buf *b, size_t n)
{
    if (b->cap - b->len >= n) return 0;
    if (n > SIZE_MAX / 2 - b->len) return -1;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < n)
        cap *= 2;
    uint8_t *p = MSG_REALLOC(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

/* A writer over a msg_buf with a sticky failure flag; b == NULL checks
 * convertibility only (writes nothing). */
typedef struct {
    msg_buf *b;
    int oom;
} wr;

static void w_put(wr *w, const void *p, size_t n)
{
    if (!w->b || w->oom) return;
    if (msg_buf_reserve(w->b, n) != 0) {
        w->oom = 1;
        return;
    }
    memcpy(w->b->data + w->b->len, p, n);
    w->b->len += n;
}

static void w_byte(wr *w, uint8_t c)
{
    w_put(w, &c, 1);
}

static void w_cstr(wr *w, const char *s)
{
    w_put(w, s, strlen(s));
}

/* msgpack writers: the smallest encoding of each value. */
static void wm_be(wr *w, uint8_t tag, uint64_t v, int bytes)
{
    uint8_t t[9];
    t[0] = tag;
    for (int i = 0; i < bytes; i++)
        t[1 + i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    w_put(w, t, (size_t)bytes + 1);
}

static void wm_uint(wr *w, uint64_t u)
{
    if (u < 128)
        w_byte(w, (uint8_t)u);
    else if (u <= 0xff)
        wm_be(w, 0xcc, u, 1);
    else if (u <= 0xffff)
        wm_be(w, 0xcd, u, 2);
    else if (u <= 0xffffffffu)
        wm_be(w, 0xce, u, 4);
    else
        wm_be(w, 0xcf, u, 8);
}

static void wm_int(wr *w, int64_t i)
{
    if (i >= 0)
        wm_uint(w, (uint64_t)i);
    else if (i >= -32)
        w_byte(w, (uint8_t)(0xe0 | (i + 32)));
    else if (i >= INT8_MIN)
        wm_be(w, 0xd0, (uint64_t)i & 0xff, 1);
    else if (i >= INT16_MIN)
        wm_be(w, 0xd1, (uint64_t)i & 0xffff, 2);
    else if (i >= INT32_MIN)
        wm_be(w, 0xd2, (uint64_t)i & 0xffffffffu, 4);
    else
        wm_be(w, 0xd3, (uint64_t)i, 8);
}

static void wm_hdr(wr *w, uint8_t fix, uint8_t fixmax, uint8_t t8, uint8_t t16, size_t n)
{
    if (n <= fixmax)
        w_byte(w, (uint8_t)(fix | n));
    else if (t8 && n <= 0xff)
        wm_be(w, t8, n, 1);
    else if (n <= 0xffff)
        wm_be(w, t16, n, 2);
    else
        wm_be(w, (uint8_t)(t16 + 1), n, 4);
}

static void wm_str(wr *w, const void *s, size_t n)
{
    wm_hdr(w, 0xa0, 31, 0xd9, 0xda, n);
    w_put(w, s, n);
}

static void wm_array(wr *w, size_t n)
{
    wm_hdr(w, 0x90, 15, 0, 0xdc, n);
}

static void wm_map(wr *w, size_t n)
{
    wm_hdr(w, 0x80, 15, 0, 0xde, n);
}

static void wm_f32(wr *w, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    wm_be(w, 0xca, u, 4);
}

static void wm_f64(wr *w, double f)
{
    uint64_t u;
    memcpy(&u, &f, 8);
    wm_be(w, 0xcb, u, 8);
}

/* JSON writers. */
static void wj_str(wr *w, const void *sv, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *s = sv;
    w_byte(w, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        w_put(w, s + run, i - run);
        run = i + 1;
        char e[7] = {'\\', 0};
        switch (c) {
        case '"':
            e[1] = '"';
            break;
        case '\\':
            e[1] = '\\';
            break;
        case '\n':
            e[1] = 'n';
            break;
        case '\r':
            e[1] = 'r';
            break;
        case '\t':
            e[1] = 't';
            break;
        case '\b':
            e[1] = 'b';
            break;
        case '\f':
            e[1] = 'f';
            break;
        default:
            memcpy(e + 1, "u00", 3);
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
        }
        w_cstr(w, e);
    }
    w_put(w, s + run, n - run);
    w_byte(w, '"');
}

static void wj_u64(wr *w, uint64_t u)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%llu", (unsigned long long)u);
    w_put(w, t, (size_t)n);
}

static void wj_i64(wr *w, int64_t i)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%lld", (long long)i);
    w_put(w, t, (size_t)n);
}

/* A finite float as JSON, always with '.' or 'e' so that no reader takes
 * it for an integer. sig = 9 round-trips float32, 17 float64. */
static void wj_float(wr *w, double f, int sig)
{
    MSG_ASSERT(isfinite(f));
    char t[40];
    int n = snprintf(t, sizeof t - 2, "%.*g", sig, f);
    if (!memchr(t, '.', (size_t)n) && !memchr(t, 'e', (size_t)n)) {
        memcpy(t + n, ".0", 2);
        n += 2;
    }
    w_put(w, t, (size_t)n);
}

static void wj_b64(wr *w, const uint8_t *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    w_byte(w, '"');
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n) v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n) v |= s[i + 2];
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        w_put(w, q, 4);
    }
    w_byte(w, '"');
}

/* ---- msgpack reader ------------------------------------------------------------ */

typedef enum {
    T_NIL,
    T_BOOL,
    T_UINT,
    T_INT,
    T_F32,
    T_F64,
    T_STR,
    T_BIN,
    T_ARRAY,
    T_MAP,
    T_EXT
} mtype;

typedef struct {
    mtype t;
    size_t at;    /* offset of the header byte */
    uint64_t u;   /* T_UINT (also non-negative signed encodings) */
    int64_t i;    /* T_INT: negative */
    double f;     /* T_F32, T_F64 */
    int b;        /* T_BOOL */
    uint32_t n;   /* T_ARRAY, T_MAP: count; T_STR, T_BIN, T_EXT: byte length */
    size_t data;  /* T_STR, T_BIN, T_EXT: offset of the bytes */
    int ext_type; /* T_EXT */
} mobj;

typedef struct {
    const uint8_t *p;
    size_t len, pos; /* reads p[pos..len) */
    int max_depth;
    msg_error *err;
} mrd;

static const char *mtype_name(mtype t)
{
    static const char *const n[] = {"nil", "bool", "int",   "int", "float32", "float64",
                                    "str", "bin",  "array", "map", "ext"};
    return n[t];
}

static uint64_t be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

static int m_bad(mrd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int m_bad(mrd *r, const char *fmt, ...)
{
    char d[MSG_DETAIL_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d, sizeof d, fmt, ap);
    va_end(ap);
    return msg_error_set(r->err, MSG_E_MALFORMED_MSGPACK, "%s", d);
}

/* The tags 0xc0..0xdf: type, header length (tag, length field, ext type
 * byte, scalar payload), bytes of the length field, fixext data length. */
typedef struct {
    uint8_t t, hl, lb, fixext;
    const char *name; /* NULL: 0xc1, never used */
} mtag;

static const mtag mtags[32] = {
    {T_NIL, 1, 0, 0, "nil"},       {T_NIL, 1, 0, 0, NULL},        {T_BOOL, 1, 0, 0, "false"},
    {T_BOOL, 1, 0, 0, "true"},     {T_BIN, 2, 1, 0, "bin8"},      {T_BIN, 3, 2, 0, "bin16"},
    {T_BIN, 5, 4, 0, "bin32"},     {T_EXT, 3, 1, 0, "ext8"},      {T_EXT, 4, 2, 0, "ext16"},
    {T_EXT, 6, 4, 0, "ext32"},     {T_F32, 5, 0, 0, "float32"},   {T_F64, 9, 0, 0, "float64"},
    {T_UINT, 2, 0, 0, "uint8"},    {T_UINT, 3, 0, 0, "uint16"},   {T_UINT, 5, 0, 0, "uint32"},
    {T_UINT, 9, 0, 0, "uint64"},   {T_INT, 2, 0, 0, "int8"},      {T_INT, 3, 0, 0, "int16"},
    {T_INT, 5, 0, 0, "int32"},     {T_INT, 9, 0, 0, "int64"},     {T_EXT, 2, 0, 1, "fixext1"},
    {T_EXT, 2, 0, 2, "fixext2"},   {T_EXT, 2, 0, 4, "fixext4"},   {T_EXT, 2, 0, 8, "fixext8"},
    {T_EXT, 2, 0, 16, "fixext16"}, {T_STR, 2, 1, 0, "str8"},      {T_STR, 3, 2, 0, "str16"},
    {T_STR, 5, 4, 0, "str32"},     {T_ARRAY, 3, 2, 0, "array16"}, {T_ARRAY, 5, 4, 0, "array32"},
    {T_MAP, 3, 2, 0, "map16"},     {T_MAP, 5, 4, 0, "map32"},
};

/* Reads the header at r->pos into o and moves past it and, for str, bin and
 * ext, past their bytes. Checks every declared length against what
 * remains: a container's count against the bytes left (each element takes
 * at least one byte, a map pair two). */
static int m_head(mrd *r, mobj *o)
{
    const uint8_t *p = r->p;
    size_t at = r->pos, rem = r->len - at;
    memset(o, 0, sizeof *o);
    o->at = at;
    if (rem == 0) return m_bad(r, "truncated: value expected at byte %zu", at);
    uint8_t c = p[at];
    size_t hl = 1;         /* header length */
    uint64_t len = 0;      /* str/bin/ext bytes, or container count */
    const char *name = ""; /* for messages */
    if (c <= 0x7f) {
        o->t = T_UINT, o->u = c;
    } else if (c <= 0x8f) {
        o->t = T_MAP, len = c & 15, name = "fixmap";
    } else if (c <= 0x9f) {
        o->t = T_ARRAY, len = c & 15, name = "fixarray";
    } else if (c <= 0xbf) {
        o->t = T_STR, len = c & 31, name = "fixstr";
    } else if (c >= 0xe0) {
        o->t = T_INT, o->i = (int8_t)c;
    } else {
        const mtag *tg = &mtags[c - 0xc0];
        if (!tg->name) return m_bad(r, "reserved byte 0xc1 at byte %zu", at);
        o->t = tg->t, hl = tg->hl, name = tg->name;
        if (rem < hl)
            return m_bad(r, "truncated %s header at byte %zu: %zu bytes needed, %zu remain", name,
                         at, hl, rem);
        const uint8_t *h = p + at + 1; /* after the tag */
        if (tg->lb) len = be(h, tg->lb);
        if (o->t == T_EXT) {
            o->ext_type = (int8_t)h[tg->lb];
            if (!tg->lb) len = tg->fixext;
        } else if (o->t == T_BOOL) {
            o->b = c == 0xc3;
        } else if (o->t == T_F32) {
            uint32_t u = (uint32_t)be(h, 4);
            float f;
            memcpy(&f, &u, 4);
            o->f = f;
        } else if (o->t == T_F64) {
            uint64_t u = be(h, 8);
            memcpy(&o->f, &u, 8);
        } else if (o->t == T_UINT) {
            o->u = be(h, (int)hl - 1);
        } else if (o->t == T_INT) {
            int bits = 8 * ((int)hl - 1);
            uint64_t u = be(h, (int)hl - 1);
            if (bits < 64 && (u >> (bits - 1)) & 1) u |= ~UINT64_C(0) << bits; /* sign-extend */
            o->i = (int64_t)u;
            if (o->i >= 0) o->t = T_UINT, o->u = (uint64_t)o->i;
        }
    }
    rem -= hl;
    if (o->t == T_STR || o->t == T_BIN || o->t == T_EXT) {
        if (len > rem)
            return m_bad(r, "%s at byte %zu declares %llu bytes, %zu remain", name, at,
                         (unsigned long long)len, rem);
        o->data = at + hl;
        hl += (size_t)len;
    } else if (o->t == T_ARRAY && len > rem) {
        return m_bad(r, "%s at byte %zu declares %llu elements, only %zu bytes remain", name, at,
                     (unsigned long long)len, rem);
    } else if (o->t == T_MAP && 2 * len > rem) {
        return m_bad(r, "%s at byte %zu declares %llu pairs, only %zu bytes remain", name, at,
                     (unsigned long long)len, rem);
    }
    o->n = (uint32_t)len;
    r->pos = at + hl;
    return 0;
}

/* Reads a whole value (header and, recursively, elements) nested inside
 * `depth` containers. */
static int m_value(mrd *r, int depth, mobj *o)
{
    if (m_head(r, o) != 0) return -1;
    if (o->t != T_ARRAY && o->t != T_MAP) return 0;
    if (depth + 1 > r->max_depth)
        return msg_error_set(r->err, MSG_E_TOO_DEEP, "nesting deeper than %d levels at byte %zu",
                             r->max_depth, o->at);
    uint64_t k = o->t == T_MAP ? 2 * (uint64_t)o->n : o->n;
    for (uint64_t i = 0; i < k; i++) {
        mobj c;
        if (m_value(r, depth + 1, &c) != 0) return -1;
    }
    return 0;
}

/* ---- JSON reader (RFC 8259, strict: UTF-8, no trailing commas) ---------------- */

typedef struct {
    const uint8_t *p;
    size_t len, pos;
    int max_depth;
    msg_error *err;
    bool lax_utf8; /* no string is checked for UTF-8 (msg_json_string_list) */
} jrd;

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARRAY, J_OBJECT } jtype;

typedef struct {
    jtype t;
    size_t start, end; /* the value's bytes */
    /* J_NUM */
    bool is_int, neg, big; /* big: an integer beyond 64 bits */
    uint64_t mag;          /* |value| when is_int && !big */
    /* J_STR: the body between the quotes */
    bool escaped;
} jval;

static int j_bad(jrd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int j_bad(jrd *r, const char *fmt, ...)
{
    char d[MSG_DETAIL_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d, sizeof d, fmt, ap);
    va_end(ap);
    return msg_error_set(r->err, MSG_E_MALFORMED_JSON, "%s", d);
}

static int j_unexpected(jrd *r)
{
    if (r->pos >= r->len) return j_bad(r, "unexpected end at byte %zu", r->pos);
    return j_bad(r, "unexpected byte 0x%02x at byte %zu", r->p[r->pos], r->pos);
}

static void j_ws(jrd *r)
{
    while (r->pos < r->len) {
        uint8_t c = r->p[r->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        r->pos++;
    }
}

static int hex4(const uint8_t *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = v << 4 | h;
    }
    return v;
}

/* Reads a string at r->pos (which holds '"'). check_utf8: also reject
 * invalid UTF-8 and unpaired surrogate escapes (skipped for the id, text
 * and instruction values, which report them as invalid_utf8 instead). */
static int j_string(jrd *r, bool check_utf8, jval *v)
{
    const uint8_t *p = r->p;
    size_t st = r->pos, i = st + 1, n = r->len;
    v->t = J_STR;
    v->start = st;
    v->escaped = false;
    if (r->lax_utf8) check_utf8 = false;
    while (i < n) {
        uint8_t c = p[i];
        if (c == '"') {
            r->pos = v->end = i + 1;
            return 0;
        }
        if (c < 0x20)
            return r->pos = i, j_bad(r, "control byte 0x%02x in a string at byte %zu", c, i);
        if (c == '\\') {
            v->escaped = true;
            if (i + 1 >= n) break;
            uint8_t e = p[i + 1];
            if (e != 'u') {
                if (!e || !strchr("\"\\/bfnrt", e))
                    return j_bad(r, "invalid escape at byte %zu", i);
                i += 2;
                continue;
            }
            int u = n - i >= 6 ? hex4(p + i + 2) : -1;
            if (u < 0) return j_bad(r, "invalid \\u escape at byte %zu", i);
            if (check_utf8 && u >= 0xdc00 && u <= 0xdfff)
                return j_bad(r, "unpaired surrogate escape at byte %zu", i);
            if (check_utf8 && u >= 0xd800 && u <= 0xdbff) {
                int lo = n - i >= 12 && p[i + 6] == '\\' && p[i + 7] == 'u' ? hex4(p + i + 8) : -1;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return j_bad(r, "unpaired surrogate escape at byte %zu", i);
                i += 12;
                continue;
            }
            i += 6;
            continue;
        }
        if (c >= 0x80 && check_utf8) {
            size_t k = utf8_seq(p + i, n - i);
            if (!k) return j_bad(r, "invalid UTF-8 at byte %zu", i);
            i += k;
            continue;
        }
        i++;
    }
    return j_bad(r, "unterminated string starting at byte %zu", st);
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static int j_number(jrd *r, jval *v)
{
    const uint8_t *p = r->p;
    size_t i = r->pos, n = r->len;
    memset(v, 0, sizeof *v);
    v->t = J_NUM;
    v->start = i;
    v->is_int = true;
    if (p[i] == '-') v->neg = true, i++;
    if (i >= n || !is_digit(p[i])) return j_bad(r, "invalid number at byte %zu", v->start);
    if (p[i] == '0') {
        i++;
        if (i < n && is_digit(p[i])) return j_bad(r, "leading zero at byte %zu", v->start);
    } else {
        for (; i < n && is_digit(p[i]); i++) {
            unsigned d = p[i] - '0';
            if (v->mag > (UINT64_MAX - d) / 10) v->big = true;
            v->mag = v->mag * 10 + d;
        }
    }
    if (i < n && p[i] == '.') {
        v->is_int = false;
        if (++i >= n || !is_digit(p[i])) return j_bad(r, "invalid number at byte %zu", v->start);
        while (i < n && is_digit(p[i]))
            i++;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        v->is_int = false;
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-')) i++;
        if (i >= n || !is_digit(p[i])) return j_bad(r, "invalid number at byte %zu", v->start);
        while (i < n && is_digit(p[i]))
            i++;
    }
    if (v->is_int && v->neg && v->mag > (UINT64_C(1) << 63)) v->big = true;
    r->pos = v->end = i;
    return 0;
}

static int j_value(jrd *r, int depth, jval *v);

/* A container at r->pos ('[' or '{'), nested inside `depth` containers. */
static int j_container(jrd *r, int depth, jval *v)
{
    const bool obj = r->p[r->pos] == '{';
    v->t = obj ? J_OBJECT : J_ARRAY;
    v->start = r->pos;
    if (depth + 1 > r->max_depth)
        return msg_error_set(r->err, MSG_E_TOO_DEEP, "nesting deeper than %d levels at byte %zu",
                             r->max_depth, r->pos);
    r->pos++;
    j_ws(r);
    const uint8_t close = obj ? '}' : ']';
    if (r->pos < r->len && r->p[r->pos] == close) {
        r->pos++;
        v->end = r->pos;
        return 0;
    }
    for (;;) {
        jval e;
        if (obj) {
            if (r->pos >= r->len || r->p[r->pos] != '"') return j_unexpected(r);
            if (j_string(r, true, &e) != 0) return -1;
            j_ws(r);
            if (r->pos >= r->len || r->p[r->pos] != ':') return j_unexpected(r);
            r->pos++;
            j_ws(r);
        }
        if (j_value(r, depth + 1, &e) != 0) return -1;
        j_ws(r);
        if (r->pos >= r->len) return j_unexpected(r);
        if (r->p[r->pos] == close) {
            r->pos++;
            v->end = r->pos;
            return 0;
        }
        if (r->p[r->pos] != ',') return j_unexpected(r);
        r->pos++;
        j_ws(r);
    }
}

/* Reads one value at r->pos (whitespace already skipped). */
static int j_value(jrd *r, int depth, jval *v)
{
    if (r->pos >= r->len) return j_unexpected(r);
    uint8_t c = r->p[r->pos];
    if (c == '{' || c == '[') return j_container(r, depth, v);
    if (c == '"') return j_string(r, true, v);
    if (c == '-' || is_digit(c)) return j_number(r, v);
    static const char *const lit[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(lit[k]);
        if (c == (uint8_t)lit[k][0]) {
            if (r->len - r->pos < l || memcmp(r->p + r->pos, lit[k], l) != 0)
                return j_bad(r, "invalid literal at byte %zu", r->pos);
            v->t = k == 2 ? J_NULL : J_BOOL;
            v->start = r->pos;
            r->pos += l;
            v->end = r->pos;
            return 0;
        }
    }
    return j_unexpected(r);
}

static void put_utf8(uint8_t *o, size_t *k, uint32_t cp)
{
    if (cp < 0x80) {
        o[(*k)++] = (uint8_t)cp;
    } else if (cp < 0x800) {
        o[(*k)++] = (uint8_t)(0xc0 | cp >> 6);
        o[(*k)++] = (uint8_t)(0x80 | (cp & 63));
    } else if (cp < 0x10000) {
        o[(*k)++] = (uint8_t)(0xe0 | cp >> 12);
        o[(*k)++] = (uint8_t)(0x80 | ((cp >> 6) & 63));
        o[(*k)++] = (uint8_t)(0x80 | (cp & 63));
    } else {
        o[(*k)++] = (uint8_t)(0xf0 | cp >> 18);
        o[(*k)++] = (uint8_t)(0x80 | ((cp >> 12) & 63));
        o[(*k)++] = (uint8_t)(0x80 | ((cp >> 6) & 63));
        o[(*k)++] = (uint8_t)(0x80 | (cp & 63));
    }
}

/* Decodes a string body raw[0..n) whose syntax j_string accepted into out
 * (room for n bytes; NULL: only measure). Returns the decoded length.
 * *bad gets the decoded offset of the first invalid UTF-8 (a raw byte, or
 * an unpaired surrogate escape, which decodes to 3 bytes that are not
 * UTF-8), or SIZE_MAX. The decoded length never exceeds n. */
static size_t j_unescape(const uint8_t *raw, size_t n, uint8_t *out, size_t *bad)
{
    size_t k = 0;
    uint8_t tmp[4];
    *bad = SIZE_MAX;
    for (size_t i = 0; i < n;) {
        uint8_t c = raw[i];
        if (c != '\\') {
            size_t l = c < 0x80 ? 1 : utf8_seq(raw + i, n - i);
            if (!l) {
                if (*bad == SIZE_MAX) *bad = k;
                l = 1;
            }
            if (out) memcpy(out + k, raw + i, l);
            k += l, i += l;
            continue;
        }
        uint8_t e = raw[i + 1];
        if (e != 'u') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            uint8_t d = (uint8_t)to[strchr(from, e) - from];
            if (out) out[k] = d;
            k++, i += 2;
            continue;
        }
        uint32_t cp = (uint32_t)hex4(raw + i + 2);
        i += 6;
        if (cp >= 0xd800 && cp <= 0xdbff && n - i >= 6 && raw[i] == '\\' && raw[i + 1] == 'u') {
            int lo = hex4(raw + i + 2);
            if (lo >= 0xdc00 && lo <= 0xdfff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
                i += 6;
            }
        }
        if (cp >= 0xd800 && cp <= 0xdfff && *bad == SIZE_MAX) *bad = k;
        size_t l = 0;
        put_utf8(out ? out + k : tmp, &l, cp);
        k += l;
    }
    return k;
}

/* ---- meta conversion ------------------------------------------------------------
 * msgpack -> JSON: nil, bool, int, float, str, array as themselves; bin as
 * a base64 string; map keys must be str; ext, NaN/Inf and invalid UTF-8 are
 * meta_unconvertible. JSON -> msgpack: integers that fit int64/uint64 as
 * integers, other numbers as float64 (exact integers above 2^53 written
 * with a fraction or exponent are rounded), overflow to Inf is
 * meta_unconvertible. w->b == NULL checks without writing. Offsets in
 * messages count from the reader's buffer start. */

static int meta_bad(msg_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int meta_bad(msg_error *e, const char *fmt, ...)
{
    char d[MSG_DETAIL_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d, sizeof d, fmt, ap);
    va_end(ap);
    return msg_error_set(e, MSG_E_META_UNCONVERTIBLE, "meta: %s", d);
}

static int mp_to_json(mrd *r, wr *w, int depth)
{
    mobj o;
    if (depth > MSG_MAX_DEPTH_CAP) return meta_bad(r->err, "nested too deep");
    if (m_head(r, &o) != 0) return -1;
    switch (o.t) {
    case T_NIL:
        w_cstr(w, "null");
        return 0;
    case T_BOOL:
        w_cstr(w, o.b ? "true" : "false");
        return 0;
    case T_UINT:
        wj_u64(w, o.u);
        return 0;
    case T_INT:
        wj_i64(w, o.i);
        return 0;
    case T_F32:
    case T_F64:
        if (!isfinite(o.f))
            return meta_bad(r->err, "%s %s at byte %zu has no JSON form", mtype_name(o.t),
                            isnan(o.f) ? "NaN" : "infinity", o.at);
        wj_float(w, o.f, o.t == T_F32 ? 9 : 17);
        return 0;
    case T_STR: {
        size_t bad = utf8_check(r->p + o.data, o.n);
        if (bad != o.n)
            return meta_bad(r->err, "str at byte %zu: invalid UTF-8 at byte %zu of it", o.at, bad);
        wj_str(w, r->p + o.data, o.n);
        return 0;
    }
    case T_BIN:
        wj_b64(w, r->p + o.data, o.n);
        return 0;
    case T_EXT:
        return meta_bad(r->err, "ext type %d at byte %zu has no JSON form", o.ext_type, o.at);
    case T_ARRAY:
        w_byte(w, '[');
        for (uint32_t i = 0; i < o.n; i++) {
            if (i) w_byte(w, ',');
            if (mp_to_json(r, w, depth + 1) != 0) return -1;
        }
        w_byte(w, ']');
        return 0;
    case T_MAP:
        w_byte(w, '{');
        for (uint32_t i = 0; i < o.n; i++) {
            if (i) w_byte(w, ',');
            if (r->pos < r->len) {
                mobj k;
                mrd peek = *r;
                if (m_head(&peek, &k) != 0) return -1;
                if (k.t != T_STR)
                    return meta_bad(r->err, "map key at byte %zu is %s; JSON keys are strings",
                                    k.at, mtype_name(k.t));
            }
            if (mp_to_json(r, w, depth + 1) != 0) return -1;
            w_byte(w, ':');
            if (mp_to_json(r, w, depth + 1) != 0) return -1;
        }
        w_byte(w, '}');
        return 0;
    }
    return meta_bad(r->err, "unknown type");
}

static int j_to_mp(jrd *r, wr *w, int depth)
{
    jval v;
    if (depth > MSG_MAX_DEPTH_CAP) return meta_bad(r->err, "nested too deep");
    j_ws(r);
    size_t at = r->pos;
    if (at < r->len && (r->p[at] == '[' || r->p[at] == '{')) {
        const bool obj = r->p[at] == '{';
        /* Count the elements first (msgpack headers carry counts). */
        jrd c = *r;
        c.max_depth = MSG_MAX_DEPTH_CAP + 1;
        uint64_t n = 0;
        c.pos++;
        j_ws(&c);
        while (c.pos < c.len && c.p[c.pos] != (obj ? '}' : ']')) {
            jval e;
            if (obj) {
                if (j_string(&c, true, &e) != 0) return -1;
                j_ws(&c);
                c.pos++; /* ':' */
                j_ws(&c);
            }
            if (j_value(&c, 1, &e) != 0) return -1;
            n++;
            j_ws(&c);
            if (c.pos < c.len && c.p[c.pos] == ',') c.pos++;
            j_ws(&c);
        }
        if (obj)
            wm_map(w, (size_t)n);
        else
            wm_array(w, (size_t)n);
        r->pos++;
        for (uint64_t i = 0; i < n; i++) {
            j_ws(r);
            if (obj) {
                if (j_to_mp(r, w, depth + 1) != 0) return -1; /* the key: a string */
                j_ws(r);
                r->pos++; /* ':' */
            }
            if (j_to_mp(r, w, depth + 1) != 0) return -1;
            j_ws(r);
            r->pos++; /* ',' or the closing bracket */
        }
        if (n == 0) {
            j_ws(r);
            r->pos++;
        }
        return 0;
    }
    if (j_value(r, 0, &v) != 0) return -1;
    switch (v.t) {
    case J_NULL:
        w_byte(w, 0xc0);
        return 0;
    case J_BOOL:
        w_byte(w, r->p[v.start] == 't' ? 0xc3 : 0xc2);
        return 0;
    case J_STR: {
        size_t bad, n = j_unescape(r->p + v.start + 1, v.end - v.start - 2, NULL, &bad);
        wm_hdr(w, 0xa0, 31, 0xd9, 0xda, n);
        if (w->b && !w->oom) {
            if (msg_buf_reserve(w->b, n) != 0) {
                w->oom = 1;
                return 0;
            }
            j_unescape(r->p + v.start + 1, v.end - v.start - 2, w->b->data + w->b->len, &bad);
            w->b->len += n;
        }
        return 0;
    }
    case J_NUM:
        if (v.is_int && !v.big) {
            if (v.neg && v.mag)
                wm_int(w, v.mag == (UINT64_C(1) << 63) ? INT64_MIN : -(int64_t)v.mag);
            else
                wm_uint(w, v.mag);
            return 0;
        } else {
            /* A validated JSON number is always followed by a delimiter or
             * the NUL that ends msg_input's meta, so strtod stops there. */
            double d = strtod((const char *)r->p + v.start, NULL);
            if (!isfinite(d))
                return meta_bad(r->err, "number at byte %zu overflows float64", v.start);
            wm_f64(w, d);
            return 0;
        }
    default:
        break;
    }
    return meta_bad(r->err, "unexpected value at byte %zu", at);
}

/* ---- decoding ------------------------------------------------------------------ */

enum { F_ID, F_TEXT, F_INSTRUCTION, F_DIMENSIONS, F_META, F__N };
static const char *const field_names[F__N] = {"id", "text", "instruction", "dimensions", "meta"};

typedef enum {
    V_NIL,
    V_BOOL,
    V_UINT,
    V_INT,
    V_BIGINT,
    V_FLOAT,
    V_STR,
    V_BIN,
    V_ARRAY,
    V_MAP,
    V_EXT
} vtype;

/* Where a known field's value lies, and its scalar payload. */
typedef struct {
    bool present;
    vtype t;
    size_t start, end; /* the value's bytes in the message */
    uint64_t u;        /* V_UINT */
    int64_t i;         /* V_INT (negative) */
    size_t s, slen;    /* V_STR: the bytes (msgpack) or the body between the quotes (JSON) */
    bool escaped;      /* JSON string with escapes */
} fval;

typedef struct {
    size_t max_bytes, max_meta;
    int max_depth, dim_hi;
    msg_format out_format;
} lims;

static lims get_lims(const msg_limits *l)
{
    lims r = {MSG_DEFAULT_MAX_BYTES, MSG_DEFAULT_MAX_META, MSG_DEFAULT_MAX_DEPTH,
              MSG_MAX_DIMENSIONS, MSG_FMT_MSGPACK};
    if (!l) return r;
    if (l->max_bytes) r.max_bytes = l->max_bytes;
    if (l->max_meta_bytes) r.max_meta = l->max_meta_bytes;
    if (l->max_depth > 0)
        r.max_depth = l->max_depth < MSG_MAX_DEPTH_CAP ? l->max_depth : MSG_MAX_DEPTH_CAP;
    if (l->hidden_size > 0) r.dim_hi = l->hidden_size;
    r.out_format = l->out_format;
    return r;
}

static const char *vname(vtype t, msg_encoding enc)
{
    static const char *const mp[] = {"nil", "bool", "int",   "int", "int", "float",
                                     "str", "bin",  "array", "map", "ext"};
    static const char *const js[] = {"null",   "boolean", "integer", "integer", "integer", "float",
                                     "string", "binary",  "array",   "object",  "ext"};
    return enc == MSG_ENC_JSON ? js[t] : mp[t];
}

static int match_field(const uint8_t *s, size_t n)
{
    for (int f = 0; f < F__N; f++)
        if (strlen(field_names[f]) == n && memcmp(field_names[f], s, n) == 0) return f;
    return -1;
}

/* Up to 40 bytes of s as printable ASCII, for error details. */
static void show(char out[48], const uint8_t *s, size_t n)
{
    size_t k = n > 40 ? 40 : n;
    for (size_t i = 0; i < k; i++)
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
    strcpy(out + k, n > 40 ? "..." : "");
}

/* A string field's content: decoded length and first invalid UTF-8 offset. */
static size_t str_measure(const uint8_t *buf, const fval *v, size_t *bad)
{
    if (!v->escaped) {
        size_t b = utf8_check(buf + v->s, v->slen);
        *bad = b == v->slen ? SIZE_MAX : b;
        return v->slen;
    }
    return j_unescape(buf + v->s, v->slen, NULL, bad);
}

static size_t str_copy(const uint8_t *buf, const fval *v, char *out)
{
    size_t bad, n = v->slen;
    if (v->escaped)
        n = j_unescape(buf + v->s, v->slen, (uint8_t *)out, &bad);
    else
        memcpy(out, buf + v->s, n);
    out[n] = 0;
    return n;
}

/* Checks a string field (id, text, instruction). Returns its decoded length
 * or -1. */
static long long check_str(const uint8_t *buf, const fval *v, const char *name, msg_code empty,
                           msg_error *err)
{
    size_t bad, n = str_measure(buf, v, &bad);
    if (n == 0 && empty != MSG_OK) return msg_error_set(err, empty, "%s is an empty string", name);
    if (bad != SIZE_MAX)
        return msg_error_set(err, MSG_E_INVALID_UTF8, "%s: invalid UTF-8 at byte %zu", name, bad);
    return (long long)n;
}

static int check_dims(const lims *L, bool neg, bool big, uint64_t mag, const char *lit,
                      msg_error *err)
{
    if (!neg && !big && mag >= MSG_MIN_DIMENSIONS && mag <= (uint64_t)L->dim_hi) return 0;
    return msg_error_set(err, MSG_E_DIMENSIONS_OUT_OF_RANGE, "dimensions %s outside %d..%d", lit,
                         MSG_MIN_DIMENSIONS, L->dim_hi);
}

/* Checks the fields in order and builds *out: one allocation. */
static int build_input(const uint8_t *buf, size_t len, msg_encoding enc, const fval *f,
                       const lims *L, msg_input *out, msg_error *err)
{
    (void)len;
    char lit[48];
    /* id */
    const fval *id = &f[F_ID];
    if (!id->present) return msg_error_set(err, MSG_E_MISSING_ID, "no \"id\" key");
    if (id->t == V_BIGINT) {
        show(lit, buf + id->start, id->end - id->start);
        return msg_error_set(err, MSG_E_ID_OUT_OF_RANGE, "id %s does not fit in 64 bits", lit);
    }
    if (id->t != V_STR && id->t != V_UINT && id->t != V_INT)
        return msg_error_set(err, MSG_E_ID_WRONG_TYPE, "id must be a string or an integer, got %s",
                             vname(id->t, enc));
    long long id_n = 24;
    if (id->t == V_STR && (id_n = check_str(buf, id, "id", MSG_E_EMPTY_ID, err)) < 0) return -1;
    /* text */
    const fval *tx = &f[F_TEXT];
    if (!tx->present) return msg_error_set(err, MSG_E_MISSING_TEXT, "no \"text\" key");
    if (tx->t != V_STR)
        return msg_error_set(err, MSG_E_TEXT_WRONG_TYPE, "text must be a string, got %s",
                             vname(tx->t, enc));
    long long text_n = check_str(buf, tx, "text", MSG_E_EMPTY_TEXT, err);
    if (text_n < 0) return -1;
    /* instruction: null and "" mean none */
    const fval *in = &f[F_INSTRUCTION];
    long long ins_n = 0;
    if (in->present && in->t != V_NIL) {
        if (in->t != V_STR)
            return msg_error_set(err, MSG_E_INSTRUCTION_WRONG_TYPE,
                                 "instruction must be a string, got %s", vname(in->t, enc));
        if ((ins_n = check_str(buf, in, "instruction", MSG_OK, err)) < 0) return -1;
    }
    /* dimensions: null means the default */
    const fval *dm = &f[F_DIMENSIONS];
    int dims = 0;
    if (dm->present && dm->t != V_NIL) {
        if (dm->t != V_UINT && dm->t != V_INT && dm->t != V_BIGINT)
            return msg_error_set(err, MSG_E_DIMENSIONS_WRONG_TYPE,
                                 "dimensions must be an integer, got %s", vname(dm->t, enc));
        if (enc == MSG_ENC_JSON)
            show(lit, buf + dm->start, dm->end - dm->start);
        else if (dm->t == V_UINT)
            snprintf(lit, sizeof lit, "%llu", (unsigned long long)dm->u);
        else
            snprintf(lit, sizeof lit, "%lld", (long long)dm->i);
        if (check_dims(L, dm->t != V_UINT, dm->t == V_BIGINT, dm->u, lit, err) != 0) return -1;
        dims = (int)dm->u;
    }
    /* meta: size, and convertibility to the output encoding */
    const fval *mt = &f[F_META];
    size_t meta_n = mt->present ? mt->end - mt->start : 0;
    if (mt->present) {
        if (meta_n > L->max_meta)
            return msg_error_set(err, MSG_E_META_TOO_LARGE, "meta is %zu bytes, limit %zu", meta_n,
                                 L->max_meta);
        wr check = {NULL, 0};
        if (enc == MSG_ENC_MSGPACK && L->out_format != MSG_FMT_MSGPACK) {
            mrd r = {buf, mt->end, mt->start, MSG_MAX_DEPTH_CAP, err};
            if (mp_to_json(&r, &check, 0) != 0) return -1;
        } else if (enc == MSG_ENC_JSON && L->out_format == MSG_FMT_MSGPACK) {
            jrd r = {buf, mt->end, mt->start, MSG_MAX_DEPTH_CAP, err, false};
            if (j_to_mp(&r, &check, 0) != 0) return -1;
        }
    }

    /* One block: id, text, instruction, meta, each NUL-terminated. */
    size_t total = (size_t)id_n + 1 + (size_t)text_n + 1 + (size_t)ins_n + 1 + meta_n + 1;
    char *blk = MSG_MALLOC(total), *p = blk;
    if (!blk) return oom(err);
    memset(out, 0, sizeof *out);
    out->block_ = blk;
    out->encoding = enc;
    out->id = p;
    if (id->t == V_STR) {
        out->id_kind = MSG_ID_STR;
        out->id_len = str_copy(buf, id, p);
    } else if (id->t == V_UINT) {
        out->id_kind = MSG_ID_UINT;
        out->id_uint = id->u;
        out->id_len = (size_t)snprintf(p, 24, "%llu", (unsigned long long)id->u);
    } else {
        out->id_kind = MSG_ID_INT;
        out->id_int = id->i;
        out->id_len = (size_t)snprintf(p, 24, "%lld", (long long)id->i);
    }
    p += out->id_len + 1;
    out->text = p;
    out->text_len = str_copy(buf, tx, p);
    p += out->text_len + 1;
    if (ins_n > 0) {
        out->instruction = p;
        out->instruction_len = str_copy(buf, in, p);
        p += out->instruction_len + 1;
    }
    out->dimensions = dims;
    if (mt->present) {
        memcpy(p, buf + mt->start, meta_n);
        p[meta_n] = 0;
        out->meta = (const uint8_t *)p;
        out->meta_len = meta_n;
        out->meta_encoding = enc;
        p += meta_n + 1;
    }
    MSG_ASSERT((size_t)(p - blk) <= total);
    return 0;
}

static int dup_key(int f, msg_error *err)
{
    return msg_error_set(err, MSG_E_DUPLICATE_KEY, "key \"%s\" appears more than once",
                         field_names[f]);
}

static int decode_msgpack(const uint8_t *buf, size_t len, const lims *L, msg_input *out,
                          msg_error *err)
{
    fval f[F__N];
    memset(f, 0, sizeof f);
    mrd r = {buf, len, 0, L->max_depth, err};
    mobj top;
    if (m_head(&r, &top) != 0) return -1;
    if (top.t != T_MAP) {
        r.pos = 0;
        if (m_value(&r, 0, &top) != 0) return -1;
        if (r.pos != len)
            return m_bad(&r, "%zu trailing bytes after the value (at byte %zu)", len - r.pos,
                         r.pos);
        return msg_error_set(err, MSG_E_NOT_A_MAP, "msgpack %s, expected a map", mtype_name(top.t));
    }
    int dup = -1;
    for (uint32_t i = 0; i < top.n; i++) {
        mobj k, v;
        if (m_value(&r, 1, &k) != 0) return -1;
        int fi = k.t == T_STR ? match_field(buf + k.data, k.n) : -1;
        size_t vs = r.pos;
        if (m_value(&r, 1, &v) != 0) return -1;
        if (fi < 0) continue;
        if (f[fi].present) {
            if (dup < 0) dup = fi;
            continue;
        }
        fval *x = &f[fi];
        x->present = true;
        x->start = vs;
        x->end = r.pos;
        static const vtype map[] = {V_NIL, V_BOOL, V_UINT,  V_INT, V_FLOAT, V_FLOAT,
                                    V_STR, V_BIN,  V_ARRAY, V_MAP, V_EXT};
        x->t = map[v.t];
        x->u = v.u;
        x->i = v.i;
        x->s = v.data;
        x->slen = v.n;
    }
    if (r.pos != len)
        return m_bad(&r, "%zu trailing bytes after the map (at byte %zu)", len - r.pos, r.pos);
    if (dup >= 0) return dup_key(dup, err);
    return build_input(buf, len, MSG_ENC_MSGPACK, f, L, out, err);
}

static const char *jtype_name(jtype t)
{
    static const char *const n[] = {"null", "boolean", "number", "string", "array", "object"};
    return n[t];
}

static void fill_json(fval *x, const jval *v)
{
    x->present = true;
    x->start = v->start;
    x->end = v->end;
    switch (v->t) {
    case J_NULL:
        x->t = V_NIL;
        break;
    case J_BOOL:
        x->t = V_BOOL;
        break;
    case J_ARRAY:
        x->t = V_ARRAY;
        break;
    case J_OBJECT:
        x->t = V_MAP;
        break;
    case J_STR:
        x->t = V_STR;
        x->s = v->start + 1;
        x->slen = v->end - v->start - 2;
        x->escaped = v->escaped;
        break;
    case J_NUM:
        if (!v->is_int)
            x->t = V_FLOAT;
        else if (v->big)
            x->t = V_BIGINT;
        else if (v->neg && v->mag) {
            x->t = V_INT;
            x->i = v->mag == (UINT64_C(1) << 63) ? INT64_MIN : -(int64_t)v->mag;
        } else {
            x->t = V_UINT;
            x->u = v->mag;
        }
        break;
    }
}

static int decode_json(const uint8_t *buf, size_t len, const lims *L, msg_input *out,
                       msg_error *err)
{
    fval f[F__N];
    memset(f, 0, sizeof f);
    jrd r = {buf, len, 0, L->max_depth, err, false};
    j_ws(&r);
    if (r.pos >= len) return j_bad(&r, "no JSON value (only whitespace)");
    if (buf[r.pos] != '{') {
        jval v;
        if (j_value(&r, 0, &v) != 0) return -1;
        j_ws(&r);
        if (r.pos != len) return j_bad(&r, "trailing bytes at byte %zu", r.pos);
        return msg_error_set(err, MSG_E_NOT_A_MAP, "JSON %s, expected an object", jtype_name(v.t));
    }
    if (L->max_depth < 1)
        return msg_error_set(err, MSG_E_TOO_DEEP, "nesting deeper than %d levels at byte %zu",
                             L->max_depth, r.pos);
    r.pos++;
    j_ws(&r);
    int dup = -1;
    if (r.pos < len && buf[r.pos] == '}') {
        r.pos++;
    } else {
        for (;;) {
            jval k, v;
            if (r.pos >= len || buf[r.pos] != '"') return j_unexpected(&r);
            if (j_string(&r, true, &k) != 0) return -1;
            int fi = -1;
            size_t bad, kn = j_unescape(buf + k.start + 1, k.end - k.start - 2, NULL, &bad);
            if (kn <= 16) {
                uint8_t key[16];
                j_unescape(buf + k.start + 1, k.end - k.start - 2, key, &bad);
                fi = match_field(key, kn);
            }
            j_ws(&r);
            if (r.pos >= len || buf[r.pos] != ':') return j_unexpected(&r);
            r.pos++;
            j_ws(&r);
            /* id, text, instruction: UTF-8 problems are reported as
             * invalid_utf8 by build_input, with the offset in the string. */
            if (fi >= 0 && fi <= F_INSTRUCTION && r.pos < len && buf[r.pos] == '"') {
                if (j_string(&r, false, &v) != 0) return -1;
            } else if (j_value(&r, 1, &v) != 0) {
                return -1;
            }
            if (fi >= 0) {
                if (f[fi].present) {
                    if (dup < 0) dup = fi;
                } else {
                    fill_json(&f[fi], &v);
                }
            }
            j_ws(&r);
            if (r.pos >= len) return j_unexpected(&r);
            if (buf[r.pos] == '}') {
                r.pos++;
                break;
            }
            if (buf[r.pos] != ',') return j_unexpected(&r);
            r.pos++;
            j_ws(&r);
        }
    }
    j_ws(&r);
    if (r.pos != len) return j_bad(&r, "trailing bytes at byte %zu", r.pos);
    if (dup >= 0) return dup_key(dup, err);
    return build_input(buf, len, MSG_ENC_JSON, f, L, out, err);
}

int msg_decode(const void *bufv, size_t len, const msg_limits *lim, msg_input *out, msg_error *err)
{
    const uint8_t *buf = bufv;
    lims L = get_lims(lim);
    memset(out, 0, sizeof *out);
    if (err) err->code = MSG_OK, err->detail[0] = 0;
    if (len > L.max_bytes)
        return msg_error_set(err, MSG_E_TOO_LARGE, "message is %zu bytes, limit %zu", len,
                             L.max_bytes);
    if (len == 0) return msg_error_set(err, MSG_E_EMPTY_MESSAGE, "message is 0 bytes");
    /* First byte below 0x80: JSON text (a msgpack message starting there
     * would be a positive fixint, never a map). */
    if (buf[0] < 0x80) return decode_json(buf, len, &L, out, err);
    if (len >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3)) /* would read as msgpack -17 */
        return msg_error_set(err, MSG_E_MALFORMED_JSON, "byte order mark at byte 0 (not allowed)");
    return decode_msgpack(buf, len, &L, out, err);
}

/* Checks that buf[0..len) is one JSON object and finds its top-level key
 * `key`: *have and *found (a string value read without the UTF-8 check;
 * with lax_utf8 no string is checked). Returns 0, or -1 with *err
 * (malformed, too deep, the key repeated). */
static int j_find_field(const uint8_t *buf, size_t len, const char *key, int max_depth,
                        bool lax_utf8, jval *found, bool *have, msg_error *err)
{
    size_t key_len = strlen(key);
    jrd r = {buf, len, 0, max_depth > 0 ? max_depth : 64, err, lax_utf8};
    *have = false;
    memset(found, 0, sizeof *found);
    j_ws(&r);
    if (r.pos >= len || buf[r.pos] != '{') return j_bad(&r, "expected a JSON object");
    r.pos++;
    j_ws(&r);
    if (r.pos < len && buf[r.pos] == '}') return 0;
    for (;;) {
        jval k, v;
        if (r.pos >= len || buf[r.pos] != '"') return j_unexpected(&r);
        if (j_string(&r, true, &k) != 0) return -1;
        size_t bad, kn = j_unescape(buf + k.start + 1, k.end - k.start - 2, NULL, &bad);
        bool match = false;
        if (kn == key_len && key_len <= 64) {
            uint8_t kb[64];
            j_unescape(buf + k.start + 1, k.end - k.start - 2, kb, &bad);
            match = memcmp(kb, key, key_len) == 0;
        }
        j_ws(&r);
        if (r.pos >= len || buf[r.pos] != ':') return j_unexpected(&r);
        r.pos++;
        j_ws(&r);
        /* The string body is checked for UTF-8 after unescaping, as
         * build_input does for `text`, so the error names the offset. */
        if (match && r.pos < len && buf[r.pos] == '"') {
            if (j_string(&r, false, &v) != 0) return -1;
        } else if (j_value(&r, 1, &v) != 0) {
            return -1;
        }
        if (match) {
            if (*have)
                return msg_error_set(err, MSG_E_DUPLICATE_KEY,
                                     "field \"%s\" appears more than once", key);
            *found = v;
            *have = true;
        }
        j_ws(&r);
        if (r.pos < len && buf[r.pos] == ',') {
            r.pos++;
            j_ws(&r);
            continue;
        }
        if (r.pos < len && buf[r.pos] == '}') break;
        return j_unexpected(&r);
    }
    r.pos++;
    j_ws(&r);
    if (r.pos != len) return j_bad(&r, "trailing bytes at byte %zu", r.pos);
    return 0;
}

int msg_json_string_field(const void *bufv, size_t len, const char *key, int max_depth, char **out,
                          size_t *out_len, msg_error *err)
{
    const uint8_t *buf = bufv;
    *out = NULL;
    *out_len = 0;
    jval found;
    bool have;
    if (j_find_field(buf, len, key, max_depth, false, &found, &have, err) != 0) return -1;
    if (!have || found.t == J_NULL) return 0;
    if (found.t != J_STR)
        return msg_error_set(err, MSG_E_TEXT_WRONG_TYPE, "%s must be a string, got %s", key,
                             jtype_name(found.t));
    size_t bad, raw_n = found.end - found.start - 2;
    size_t n = j_unescape(buf + found.start + 1, raw_n, NULL, &bad);
    if (bad != SIZE_MAX)
        return msg_error_set(err, MSG_E_INVALID_UTF8, "%s: invalid UTF-8 at byte %zu", key, bad);
    char *s = malloc(n + 1);
    if (!s) return msg_error_set(err, MSG_E_INTERNAL, "out of memory for a %zu-byte %s", n, key);
    j_unescape(buf + found.start + 1, raw_n, (uint8_t *)s, &bad);
    s[n] = 0;
    *out = s;
    *out_len = n;
    return 1;
}

int msg_json_string_list(const void *bufv, size_t len, const char *key, int max_depth,
                         msg_json_str **out, msg_error *err)
{
    const uint8_t *buf = bufv;
    *out = NULL;
    jval found;
    bool have;
    if (j_find_field(buf, len, key, max_depth, true, &found, &have, err) != 0) return -1;
    if (!have || (found.t != J_STR && found.t != J_ARRAY)) return 0;
    /* the elements' spans: a second walk over syntax already checked */
    size_t n = 0, bytes = 0;
    for (int pass = 0; pass < 2; pass++) {
        msg_json_str *v = pass ? *out : NULL;
        char *dst = pass ? (char *)(v + n) : NULL;
        size_t i = 0;
        jrd r = {buf, found.end, found.start, 2, err, true};
        const bool arr = found.t == J_ARRAY;
        if (arr) r.pos++, j_ws(&r);
        while (r.pos < found.end && buf[r.pos] != ']') {
            jval e;
            if (buf[r.pos] != '"') return 0; /* not a string: the caller names it */
            if (j_string(&r, false, &e) != 0) return -1;
            size_t bad, raw_n = e.end - e.start - 2;
            if (!pass) {
                bytes += j_unescape(buf + e.start + 1, raw_n, NULL, &bad) + 1;
            } else {
                v[i].s = dst;
                v[i].len = j_unescape(buf + e.start + 1, raw_n, (uint8_t *)dst, &bad);
                v[i].bad = bad;
                dst[v[i].len] = 0;
                dst += v[i].len + 1;
            }
            i++;
            if (!arr) break;
            j_ws(&r);
            if (r.pos < found.end && buf[r.pos] == ',') r.pos++, j_ws(&r);
        }
        if (i == 0) return 0;
        n = i;
        if (!pass) {
            if (n > (SIZE_MAX - bytes) / sizeof **out ||
                !(*out = malloc(n * sizeof **out + bytes)))
                return msg_error_set(err, MSG_E_INTERNAL, "out of memory for %zu strings", n);
        }
    }
    return (int)(n > INT_MAX ? INT_MAX : n);
}

int msg_decode_fields(const char *const *names, const size_t *name_lens, const char *const *values,
                      const size_t *value_lens, int n, const msg_limits *lim, msg_input *out,
                      msg_error *err)
{
    lims L = get_lims(lim);
    memset(out, 0, sizeof *out);
    if (err) err->code = MSG_OK, err->detail[0] = 0;
    static const char *const plain[] = {"data", "id", "text", "instruction", "dimensions"};
    enum { P_DATA, P_ID, P_TEXT, P_INSTRUCTION, P_DIMENSIONS, P__N };
    int at[P__N] = {-1, -1, -1, -1, -1}, dup = -1;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        total = value_lens[i] > SIZE_MAX - total ? SIZE_MAX : total + value_lens[i];
        for (int k = 0; k < P__N; k++) {
            if (name_lens[i] != strlen(plain[k]) || memcmp(names[i], plain[k], name_lens[i]))
                continue;
            if (at[k] >= 0 && (dup < 0 || k == P_DATA)) dup = k;
            if (at[k] < 0) at[k] = i;
        }
    }
    /* A `data` field holds the whole message; the others are then ignored. */
    if (at[P_DATA] >= 0 && dup != P_DATA)
        return msg_decode(values[at[P_DATA]], value_lens[at[P_DATA]], lim, out, err);
    if (dup >= 0)
        return msg_error_set(err, MSG_E_DUPLICATE_KEY, "field \"%s\" appears more than once",
                             plain[dup]);
    if (total > L.max_bytes)
        return msg_error_set(err, MSG_E_TOO_LARGE, "entry is %zu bytes, limit %zu", total,
                             L.max_bytes);
    if (n == 0) return msg_error_set(err, MSG_E_EMPTY_MESSAGE, "entry has no fields");

    /* id, text, instruction: checked in that order, like build_input. */
    const char *sv[3] = {NULL, NULL, NULL};
    size_t sl[3] = {0, 0, 0};
    static const msg_code empty[3] = {MSG_E_EMPTY_ID, MSG_E_EMPTY_TEXT, MSG_OK};
    static const msg_code missing[3] = {MSG_E_MISSING_ID, MSG_E_MISSING_TEXT, MSG_OK};
    for (int k = 0; k < 3; k++) {
        int i = at[P_ID + k];
        const char *name = field_names[k];
        if (i < 0) {
            if (missing[k] != MSG_OK)
                return msg_error_set(err, missing[k], "no \"%s\" field (and no \"data\" field)",
                                     name);
            continue;
        }
        sv[k] = values[i];
        sl[k] = value_lens[i];
        if (sl[k] == 0 && empty[k] != MSG_OK)
            return msg_error_set(err, empty[k], "%s is an empty string", name);
        size_t bad = utf8_check((const uint8_t *)sv[k], sl[k]);
        if (bad != sl[k])
            return msg_error_set(err, MSG_E_INVALID_UTF8, "%s: invalid UTF-8 at byte %zu", name,
                                 bad);
    }
    int dims = 0;
    if (at[P_DIMENSIONS] >= 0) {
        const uint8_t *s = (const uint8_t *)values[at[P_DIMENSIONS]];
        size_t m = value_lens[at[P_DIMENSIONS]], i = 0;
        char lit[48];
        show(lit, s, m);
        bool neg = m > 0 && s[0] == '-', big = false;
        uint64_t mag = 0;
        i = neg;
        if (i == m)
            return msg_error_set(err, MSG_E_DIMENSIONS_WRONG_TYPE,
                                 "dimensions \"%s\" is not a decimal integer", lit);
        for (; i < m; i++) {
            if (!is_digit(s[i]))
                return msg_error_set(err, MSG_E_DIMENSIONS_WRONG_TYPE,
                                     "dimensions \"%s\" is not a decimal integer", lit);
            if (mag > (UINT64_MAX - (s[i] - '0')) / 10) big = true;
            mag = mag * 10 + (s[i] - '0');
        }
        if (check_dims(&L, neg && mag, big, mag, lit, err) != 0) return -1;
        dims = (int)mag;
    }
    size_t blen = sl[0] + 1 + sl[1] + 1 + sl[2] + 1;
    char *blk = MSG_MALLOC(blen), *p = blk;
    if (!blk) return oom(err);
    out->block_ = blk;
    out->encoding = MSG_ENC_FIELDS;
    out->id_kind = MSG_ID_STR;
    const char **dst[3] = {&out->id, &out->text, &out->instruction};
    size_t *dlen[3] = {&out->id_len, &out->text_len, &out->instruction_len};
    for (int k = 0; k < 3; k++) {
        if (sl[k] == 0) continue; /* instruction "" = none */
        memcpy(p, sv[k], sl[k]);
        p[sl[k]] = 0;
        *dst[k] = p;
        *dlen[k] = sl[k];
        p += sl[k] + 1;
    }
    out->dimensions = dims;
    return 0;
}

void msg_input_free(msg_input *in)
{
    free(in->block_);
    memset(in, 0, sizeof *in);
}

/* ---- encoding ------------------------------------------------------------------ */

static int finish(wr *w, size_t start, int rc, msg_error *err)
{
    if (rc == 0 && !w->oom) return 0;
    w->b->len = start;
    return rc != 0 ? -1 : oom(err);
}

static void check_vec(const float *v, int d)
{
    MSG_ASSERT(v && d >= 1);
    for (int i = 0; i < d; i++)
        MSG_ASSERT(isfinite(v[i]));
}

/* The meta value, converted when its encoding differs from the output's. */
static int put_meta(wr *w, const msg_input *in, bool json, msg_error *err)
{
    const bool same =
        json ? in->meta_encoding == MSG_ENC_JSON : in->meta_encoding == MSG_ENC_MSGPACK;
    if (same) {
        w_put(w, in->meta, in->meta_len);
        return 0;
    }
    if (json) {
        mrd r = {in->meta, in->meta_len, 0, MSG_MAX_DEPTH_CAP, err};
        return mp_to_json(&r, w, 0);
    }
    jrd r = {in->meta, in->meta_len, 0, MSG_MAX_DEPTH_CAP, err, false};
    return j_to_mp(&r, w, 0);
}

static void wj_id(wr *w, const msg_input *in)
{
    if (in->id_kind == MSG_ID_STR)
        wj_str(w, in->id, in->id_len);
    else
        w_put(w, in->id, in->id_len);
}

/* 10^(i - 31), i = 0..87: the scales fmt_f32 needs for float32's range. */
static const double pow10_tab[88] = {
    1e-31, 1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25, 1e-24, 1e-23, 1e-22, 1e-21, 1e-20, 1e-19,
    1e-18, 1e-17, 1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9,  1e-8,  1e-7,  1e-6,
    1e-5,  1e-4,  1e-3,  1e-2,  1e-1,  1e0,   1e1,   1e2,   1e3,   1e4,   1e5,   1e6,   1e7,
    1e8,   1e9,   1e10,  1e11,  1e12,  1e13,  1e14,  1e15,  1e16,  1e17,  1e18,  1e19,  1e20,
    1e21,  1e22,  1e23,  1e24,  1e25,  1e26,  1e27,  1e28,  1e29,  1e30,  1e31,  1e32,  1e33,
    1e34,  1e35,  1e36,  1e37,  1e38,  1e39,  1e40,  1e41,  1e42,  1e43,  1e44,  1e45,  1e46,
    1e47,  1e48,  1e49,  1e50,  1e51,  1e52,  1e53,  1e54,  1e55,  1e56};

/* A finite float32 as JSON, exactly what "%.9g" prints (plus ".0" when that
 * has neither '.' nor 'e'), several times faster: the value is scaled into
 * [1e8, 1e9) in double precision (at most ~2.3e-7 off the exact product)
 * and rounded to 9 digits; only when that lands within 1e-6 of a rounding
 * or decade boundary does it ask snprintf, which is exact. Writes at most 16 bytes
 * plus NUL; returns the length. */
static int fmt_f32(char *out, float f)
{
    MSG_ASSERT(isfinite(f));
    char *o = out;
    if (f == 0.0f) return (int)(stpcpy(out, signbit(f) ? "-0.0" : "0.0") - out);
    if (f < 0) *o++ = '-';
    double x = fabs((double)f), s;
    int e2, k;
    frexp(x, &e2);
    k = (int)floor((e2 - 1) * 0.30102999566398120); /* floor(log10(x)), or one less */
    for (;;) {                                      /* s in [1e8, 1e9) */
        MSG_ASSERT(8 - k + 31 >= 0 && 8 - k + 31 < 88);
        s = x * pow10_tab[8 - k + 31];
        if (s < 1e8)
            k--;
        else if (s >= 1e9)
            k++;
        else
            break;
    }
    double fl = floor(s), fr = s - fl;
    if (fabs(fr - 0.5) < 1e-6 || s < 1e8 + 1e-6 || s > 1e9 - 1e-6) {
        int n = snprintf(out, 24, "%.9g", (double)f);
        if (!memchr(out, '.', (size_t)n) && !memchr(out, 'e', (size_t)n))
            n = (int)(stpcpy(out + n, ".0") - out);
        return n;
    }
    uint32_t dg = (uint32_t)fl + (fr > 0.5);
    if (dg == 1000000000u) dg = 100000000u, k++; /* 9.99999999|5 -> 1.00000000e(k+1) */
    char ds[10];
    int nd = 9;
    for (int i = 8; i >= 0; i--, dg /= 10)
        ds[i] = (char)('0' + dg % 10);
    while (nd > 1 && ds[nd - 1] == '0')
        nd--;
    if (k < -4 || k >= 9) { /* d.ddde+XX */
        *o++ = ds[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, ds + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        *o++ = 'e';
        *o++ = k < 0 ? '-' : '+';
        int ak = k < 0 ? -k : k;
        if (ak >= 10)
            *o++ = (char)('0' + ak / 10);
        else
            *o++ = '0';
        *o++ = (char)('0' + ak % 10);
    } else if (k >= 0) { /* ddd.ddd */
        for (int i = 0; i <= k; i++)
            *o++ = i < nd ? ds[i] : '0';
        *o++ = '.';
        if (nd > k + 1) {
            memcpy(o, ds + k + 1, (size_t)(nd - k - 1));
            o += nd - k - 1;
        } else {
            *o++ = '0';
        }
    } else { /* 0.000ddd */
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -k - 1; i++)
            *o++ = '0';
        memcpy(o, ds, (size_t)nd);
        o += nd;
    }
    *o = 0;
    return (int)(o - out);
}

static void wj_floats(wr *w, const float *v, int d)
{
    char t[32];
    w_byte(w, '[');
    for (int i = 0; i < d; i++) {
        if (i) w_byte(w, ',');
        w_put(w, t, (size_t)fmt_f32(t, v[i]));
    }
    w_byte(w, ']');
}

int msg_encode_msgpack(const msg_input *in, const char *model, const float *v, int d, int tokens,
                       bool truncated, msg_buf *out, msg_error *err)
{
    check_vec(v, d);
    MSG_ASSERT(in->id && model && tokens >= 0);
    wr w = {out, 0};
    size_t start = out->len;
    if (msg_buf_reserve(out, 5 * (size_t)d + in->id_len + in->meta_len + 128) != 0) return oom(err);
    wm_map(&w, in->meta ? 7 : 6);
    wm_str(&w, "id", 2);
    if (in->id_kind == MSG_ID_STR)
        wm_str(&w, in->id, in->id_len);
    else if (in->id_kind == MSG_ID_UINT)
        wm_uint(&w, in->id_uint);
    else
        wm_int(&w, in->id_int);
    wm_str(&w, "model", 5);
    wm_str(&w, model, strlen(model));
    wm_str(&w, "dimensions", 10);
    wm_uint(&w, (uint64_t)d);
    wm_str(&w, "embedding", 9);
    wm_array(&w, (size_t)d);
    for (int i = 0; i < d; i++)
        wm_f32(&w, v[i]);
    wm_str(&w, "tokens", 6);
    wm_uint(&w, (uint64_t)tokens);
    wm_str(&w, "truncated", 9);
    w_byte(&w, truncated ? 0xc3 : 0xc2);
    int rc = 0;
    if (in->meta) {
        wm_str(&w, "meta", 4);
        rc = put_meta(&w, in, false, err);
    }
    return finish(&w, start, rc, err);
}

int msg_encode_json(const msg_input *in, const char *model, const float *v, int d, int tokens,
                    bool truncated, msg_buf *out, msg_error *err)
{
    check_vec(v, d);
    MSG_ASSERT(in->id && model && tokens >= 0);
    wr w = {out, 0};
    size_t start = out->len;
    if (msg_buf_reserve(out, 16 * (size_t)d + 2 * in->id_len + in->meta_len + 128) != 0)
        return oom(err);
    w_cstr(&w, "{\"id\":");
    wj_id(&w, in);
    w_cstr(&w, ",\"model\":");
    wj_str(&w, model, strlen(model));
    w_cstr(&w, ",\"dimensions\":");
    wj_u64(&w, (uint64_t)d);
    w_cstr(&w, ",\"embedding\":");
    wj_floats(&w, v, d);
    w_cstr(&w, ",\"tokens\":");
    wj_u64(&w, (uint64_t)tokens);
    w_cstr(&w, truncated ? ",\"truncated\":true" : ",\"truncated\":false");
    int rc = 0;
    if (in->meta) {
        w_cstr(&w, ",\"meta\":");
        rc = put_meta(&w, in, true, err);
    }
    w_byte(&w, '}');
    return finish(&w, start, rc, err);
}

int msg_qdrant_point_id(const msg_input *in, uint64_t *num, char uuid[37])
{
    if (in->id_kind == MSG_ID_UINT && in->id_uint <= MSG_QDRANT_MAX_INT_ID) {
        *num = in->id_uint;
        return 1;
    }
    uint8_t u[16];
    if (in->id_kind == MSG_ID_STR && uuid_parse(in->id, in->id_len, u) == 0) {
        uuid_text(u, uuid);
        return 0;
    }
    uint8_t ns[16];
    MSG_ASSERT(uuid_parse(MSG_UUID_NAMESPACE, 36, ns) == 0);
    msg_uuid5(ns, in->id, in->id_len, uuid);
    return 0;
}

int msg_encode_qdrant(const msg_input *in, const char *collection, const char *model,
                      const float *v, int d, int tokens, bool truncated, msg_buf *out,
                      msg_error *err)
{
    check_vec(v, d);
    MSG_ASSERT(in->id && model && collection && tokens >= 0);
    wr w = {out, 0};
    size_t start = out->len;
    if (msg_buf_reserve(out, 16 * (size_t)d + 2 * in->id_len + in->meta_len + 160) != 0)
        return oom(err);
    w_cstr(&w, "{\"collection_name\":");
    wj_str(&w, collection, strlen(collection));
    w_cstr(&w, ",\"id\":");
    uint64_t num;
    char uuid[37];
    if (msg_qdrant_point_id(in, &num, uuid))
        wj_u64(&w, num);
    else
        wj_str(&w, uuid, 36);
    w_cstr(&w, ",\"vector\":");
    wj_floats(&w, v, d);
    /* payload.id: the input id; integers beyond 2^53 as decimal strings,
     * since the connector reads numbers through a double. */
    w_cstr(&w, ",\"payload\":{\"id\":");
    bool big = (in->id_kind == MSG_ID_UINT && in->id_uint > MSG_QDRANT_MAX_INT_ID) ||
               (in->id_kind == MSG_ID_INT && in->id_int < -(int64_t)MSG_QDRANT_MAX_INT_ID);
    if (big)
        wj_str(&w, in->id, in->id_len);
    else
        wj_id(&w, in);
    w_cstr(&w, ",\"model\":");
    wj_str(&w, model, strlen(model));
    w_cstr(&w, ",\"tokens\":");
    wj_u64(&w, (uint64_t)tokens);
    w_cstr(&w, truncated ? ",\"truncated\":true" : ",\"truncated\":false");
    int rc = 0;
    if (in->meta) {
        w_cstr(&w, ",\"meta\":");
        rc = put_meta(&w, in, true, err);
    }
    w_cstr(&w, "}}");
    return finish(&w, start, rc, err);
}

/* The Kafka Connect schema of pgvector-format outputs (one constant:
 * JsonConverter caches schemas by content). */
static const char PGVECTOR_SCHEMA[] =
    "{\"type\":\"struct\",\"name\":\"embedq.Embedding\",\"optional\":false,\"fields\":["
    "{\"field\":\"id\",\"type\":\"string\",\"optional\":false},"
    "{\"field\":\"model\",\"type\":\"string\",\"optional\":false},"
    "{\"field\":\"dimensions\",\"type\":\"int32\",\"optional\":false},"
    "{\"field\":\"embedding\",\"type\":\"string\",\"optional\":false},"
    "{\"field\":\"tokens\",\"type\":\"int32\",\"optional\":false},"
    "{\"field\":\"truncated\",\"type\":\"boolean\",\"optional\":false},"
    "{\"field\":\"meta\",\"type\":\"string\",\"optional\":true}]}";

int msg_encode_pgvector(const msg_input *in, const char *model, const float *v, int d, int tokens,
                        bool truncated, msg_buf *out, msg_error *err)
{
    check_vec(v, d);
    MSG_ASSERT(in->id && model && tokens >= 0);
    wr w = {out, 0};
    size_t start = out->len;
    if (msg_buf_reserve(out, 16 * (size_t)d + 2 * in->id_len + 2 * in->meta_len +
                                 sizeof PGVECTOR_SCHEMA + 160) != 0)
        return oom(err);
    w_cstr(&w, "{\"schema\":");
    w_cstr(&w, PGVECTOR_SCHEMA);
    w_cstr(&w, ",\"payload\":{\"id\":");
    wj_str(&w, in->id, in->id_len); /* the text form, whatever its kind */
    w_cstr(&w, ",\"model\":");
    wj_str(&w, model, strlen(model));
    w_cstr(&w, ",\"dimensions\":");
    wj_u64(&w, (uint64_t)d);
    /* The vector literal holds no character JSON escapes: write it as is. */
    w_cstr(&w, ",\"embedding\":\"");
    wj_floats(&w, v, d);
    w_cstr(&w, "\",\"tokens\":");
    wj_u64(&w, (uint64_t)tokens);
    w_cstr(&w, truncated ? ",\"truncated\":true" : ",\"truncated\":false");
    int rc = 0;
    w_cstr(&w, ",\"meta\":");
    if (in->meta) {
        msg_buf mj = {0};
        wr m = {&mj, 0};
        rc = put_meta(&m, in, true, err);
        if (rc == 0 && m.oom) rc = oom(err);
        if (rc == 0) wj_str(&w, mj.data, mj.len);
        msg_buf_free(&mj);
    } else {
        w_cstr(&w, "null");
    }
    w_cstr(&w, "}}");
    return finish(&w, start, rc, err);
}

int msg_output_key(const msg_input *in, const void *key, size_t key_len, msg_buf *out,
                   msg_error *err)
{
    wr w = {out, 0};
    size_t start = out->len;
    if (key && key_len > 0)
        w_put(&w, key, key_len);
    else
        w_put(&w, in->id, in->id_len);
    return finish(&w, start, 0, err);
}
