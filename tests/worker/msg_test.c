/* msg_test.c - tests of worker/msg.c against independent oracles.
 *
 *   msg_test SCHEMAS_V1_DIR [NAME_PREFIX]
 *
 * Oracles: msgpack-c (parses every msgpack output, builds msgpack inputs),
 * cJSON (parses every JSON output and the JSON examples), the msgpack
 * examples written by schemas/tools/json2msgpack.py (pure Python), and
 * UUIDv5 known answers from Python's uuid module.
 *
 * Groups (NAME_PREFIX selects): bad_* one per error code, hostile_* huge
 * declared sizes and deep nesting (time and allocations bounded),
 * roundtrip_* / golden_* / meta_* / qdrant_* / fields_* / misc_*.
 *
 * msg.c is compiled into this test with -DMSG_ALLOC_HOOK so that every
 * allocation it makes is counted (see msg_test_malloc).
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msg.h"
#include "msg_golden.h"

/* ---- harness ---------------------------------------------------------------- */

static int g_fail, g_checks, g_test_failed;
static const char *g_test;
static const char *g_dir;

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        g_checks++;                                                                                \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: [%s] check failed: %s\n", __FILE__, __LINE__, g_test, #c);     \
            g_fail++;                                                                              \
            g_test_failed = 1;                                                                     \
        }                                                                                          \
    } while (0)

#define CHECKF(c, ...)                                                                             \
    do {                                                                                           \
        g_checks++;                                                                                \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: [%s] check failed: %s: ", __FILE__, __LINE__, g_test, #c);     \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            g_fail++;                                                                              \
            g_test_failed = 1;                                                                     \
        }                                                                                          \
    } while (0)

/* Allocation counters fed by msg.c (MSG_ALLOC_HOOK). */
static size_t g_allocs, g_alloc_bytes;
void *msg_test_malloc(size_t n);
void *msg_test_realloc(void *p, size_t n);
void *msg_test_malloc(size_t n)
{
    g_allocs++;
    g_alloc_bytes += n;
    return malloc(n);
}
void *msg_test_realloc(void *p, size_t n)
{
    g_allocs++;
    g_alloc_bytes += n;
    return realloc(p, n);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static const msg_limits LIM = {1 << 20, 64, 1024, 0, MSG_FMT_MSGPACK};

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = 0;
    fclose(f);
    return b;
}

static char *example_path(char *out, size_t cap, const char *rel)
{
    snprintf(out, cap, "%s/examples/%s", g_dir, rel);
    return out;
}

/* Decodes and expects failure with `code` (and `detail` in the detail when
 * given), no allocation, and a zeroed output. */
static void expect_lim(const void *b, size_t n, const msg_limits *lim, msg_code code,
                       const char *detail, int line)
{
    msg_input in;
    msg_error e;
    memset(&in, 0x5a, sizeof in);
    size_t a0 = g_allocs;
    int rc = msg_decode(b, n, lim, &in, &e);
    char reason[MSG_REASON_LEN];
    if (rc == 0) {
        CHECKF(0, "line %d: decoded, want %s", line, msg_code_name(code));
        msg_input_free(&in);
        return;
    }
    msg_error_format(&e, reason, sizeof reason);
    CHECKF(e.code == code, "line %d: got \"%s\", want %s", line, reason, msg_code_name(code));
    CHECKF(!detail || strstr(e.detail, detail), "line %d: \"%s\" lacks \"%s\"", line, reason,
           detail);
    CHECKF(g_allocs == a0, "line %d: %zu allocations on a rejected message", line, g_allocs - a0);
    CHECK(in.block_ == NULL && in.text == NULL && in.meta == NULL);
}

#define EXPECT(b, n, code, detail)      expect_lim(b, n, &LIM, code, detail, __LINE__)
#define EXPECT_S(s, code, detail)       expect_lim(s, strlen(s), &LIM, code, detail, __LINE__)
#define EXPECT_L(b, n, l, code, detail) expect_lim(b, n, l, code, detail, __LINE__)

static int decode_ok(const void *b, size_t n, const msg_limits *lim, msg_input *in, int line)
{
    msg_error e;
    int rc = msg_decode(b, n, lim ? lim : &LIM, in, &e);
    if (rc != 0) {
        char reason[MSG_REASON_LEN];
        msg_error_format(&e, reason, sizeof reason);
        CHECKF(0, "line %d: decode failed: %s", line, reason);
    }
    return rc;
}
#define DECODE_OK(b, n, in) decode_ok(b, n, NULL, in, __LINE__)
#define DECODE_OK_S(s, in)  decode_ok(s, strlen(s), NULL, in, __LINE__)

/* msgpack builder over msgpack-c. */
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} mpb;

static void mpb_init(mpb *b)
{
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
}
static void mpb_str(mpb *b, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(&b->pk, n);
    msgpack_pack_str_body(&b->pk, s, n);
}
static void mpb_strn(mpb *b, const char *s, size_t n)
{
    msgpack_pack_str(&b->pk, n);
    msgpack_pack_str_body(&b->pk, s, n);
}
static void mpb_raw(mpb *b, const void *p, size_t n)
{
    msgpack_sbuffer_write(&b->sb, p, n);
}
static void mpb_free(mpb *b)
{
    msgpack_sbuffer_destroy(&b->sb);
}

/* {"id": "x", "text": "hello", <one more pair packed by the caller>}: map
 * of 3 with the first two pairs written. */
static void mpb_base3(mpb *b)
{
    mpb_init(b);
    msgpack_pack_map(&b->pk, 3);
    mpb_str(b, "id");
    mpb_str(b, "x");
    mpb_str(b, "text");
    mpb_str(b, "hello");
}

static bool has_str(const msgpack_object *o, const char *s)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

static const msgpack_object *mp_get(const msgpack_object *m, const char *key)
{
    if (m->type != MSGPACK_OBJECT_MAP) return NULL;
    for (uint32_t i = 0; i < m->via.map.size; i++)
        if (has_str(&m->via.map.ptr[i].key, key)) return &m->via.map.ptr[i].val;
    return NULL;
}

/* ---- bad input: one test per error code ---------------------------------------- */

static void bad_too_large(void)
{
    const char *m = "{\"id\":\"a\",\"text\":\"hello\"}";
    msg_limits l = LIM;
    l.max_bytes = strlen(m) - 1;
    EXPECT_L(m, strlen(m), &l, MSG_E_TOO_LARGE, "message is 25 bytes, limit 24");
    l.max_bytes = strlen(m);
    msg_input in;
    CHECK(decode_ok(m, strlen(m), &l, &in, __LINE__) == 0);
    msg_input_free(&in);
    /* Checked before anything is read: a huge garbage buffer is rejected. */
    size_t n = (1 << 20) + 1;
    char *big = calloc(1, n);
    EXPECT(big, n, MSG_E_TOO_LARGE, "limit 1048576");
    free(big);
}

static void bad_empty_message(void)
{
    EXPECT("", 0, MSG_E_EMPTY_MESSAGE, "0 bytes");
}

static void bad_malformed_msgpack(void)
{
    /* truncated map: 2 pairs declared, 1 given */
    const uint8_t t1[] = {0x82, 0xa2, 'i', 'd', 0x01};
    EXPECT(t1, sizeof t1, MSG_E_MALFORMED_MSGPACK, "at byte");
    /* reserved byte */
    const uint8_t t2[] = {0x81, 0xa2, 'i', 'd', 0xc1};
    EXPECT(t2, sizeof t2, MSG_E_MALFORMED_MSGPACK, "reserved byte 0xc1 at byte 4");
    /* trailing bytes after a valid map */
    const uint8_t t3[] = {0x82, 0xa2, 'i', 'd', 0x01, 0xa4, 't', 'e', 'x', 't', 0xa1, 'x', 0x00};
    EXPECT(t3, sizeof t3, MSG_E_MALFORMED_MSGPACK, "1 trailing bytes after the map (at byte 12)");
    /* str8 whose length runs past the end */
    const uint8_t t4[] = {0x81, 0xa2, 'i', 'd', 0xd9, 0x10, 'a'};
    EXPECT(t4, sizeof t4, MSG_E_MALFORMED_MSGPACK, "str8 at byte 4 declares 16 bytes, 1 remain");
    /* truncated header: uint32 with 2 bytes */
    const uint8_t t5[] = {0x81, 0xa2, 'i', 'd', 0xce, 0x00, 0x01};
    EXPECT(t5, sizeof t5, MSG_E_MALFORMED_MSGPACK, "truncated uint32 header at byte 4");
    /* a non-map top level that is itself malformed */
    const uint8_t t6[] = {0x92, 0x01};
    EXPECT(t6, sizeof t6, MSG_E_MALFORMED_MSGPACK, NULL);
    /* malformed bytes inside an unknown key's value are still malformed */
    const uint8_t t7[] = {0x83, 0xa2, 'i',  'd', 0x01, 0xa4, 't', 'e',
                          'x',  't',  0xa1, 'x', 0xa1, 'z',  0xc1};
    EXPECT(t7, sizeof t7, MSG_E_MALFORMED_MSGPACK, "reserved byte 0xc1 at byte 14");
}

static void bad_malformed_json(void)
{
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",}", MSG_E_MALFORMED_JSON,
             "unexpected byte 0x7d at byte 21");
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\"} x", MSG_E_MALFORMED_JSON, "trailing bytes at byte 22");
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\"", MSG_E_MALFORMED_JSON, "unexpected end at byte 20");
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\nc\"}", MSG_E_MALFORMED_JSON, "control byte 0x0a");
    EXPECT_S("{\"id\":01,\"text\":\"b\"}", MSG_E_MALFORMED_JSON, "leading zero at byte 6");
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\\x\"}", MSG_E_MALFORMED_JSON, "invalid escape");
    EXPECT_S("{\"id\":\"a\",\"text\":\"\\u12g4\"}", MSG_E_MALFORMED_JSON, "invalid \\u escape");
    EXPECT_S("{\"id\":tru,\"text\":\"b\"}", MSG_E_MALFORMED_JSON, "invalid literal at byte 6");
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",\"meta\":NaN}", MSG_E_MALFORMED_JSON, NULL);
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",\"meta\":[1 2]}", MSG_E_MALFORMED_JSON, NULL);
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",\"meta\":1.}", MSG_E_MALFORMED_JSON, "invalid number");
    EXPECT_S("   ", MSG_E_MALFORMED_JSON, "only whitespace");
    EXPECT_S("{\"id\":\"a\" \"text\":\"b\"}", MSG_E_MALFORMED_JSON, NULL);
    EXPECT_S("{/*c*/\"id\":\"a\",\"text\":\"b\"}", MSG_E_MALFORMED_JSON, NULL);
    /* Invalid UTF-8 outside id/text/instruction (a key, meta) breaks the
     * JSON text itself. */
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",\"meta\":\"\xff\"}", MSG_E_MALFORMED_JSON,
             "invalid UTF-8 at byte 29");
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",\"k\xc3\":1}", MSG_E_MALFORMED_JSON, "invalid UTF-8");
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",\"meta\":\"\\udc00\"}", MSG_E_MALFORMED_JSON,
             "unpaired surrogate");
    /* A UTF-8 byte order mark is not JSON (and not msgpack either). */
    EXPECT_S("\xef\xbb\xbf{\"id\":\"a\",\"text\":\"b\"}", MSG_E_MALFORMED_JSON, "byte order mark");
    /* NUL bytes are not whitespace. */
    const char nul[] = "{\"id\":\"a\",\"text\":\"b\"}\0";
    EXPECT(nul, sizeof nul - 1, MSG_E_MALFORMED_JSON, "trailing bytes");
}

static void bad_too_deep(void)
{
    /* 64 levels pass, 65 fail, in both encodings. */
    char j[400];
    for (int depth = 64; depth <= 65; depth++) {
        int k = snprintf(j, sizeof j, "{\"id\":\"a\",\"text\":\"b\",\"meta\":");
        for (int i = 0; i < depth - 1; i++)
            j[k++] = '[';
        for (int i = 0; i < depth - 1; i++)
            j[k++] = ']';
        j[k++] = '}';
        if (depth == 64) {
            msg_input in;
            CHECK(decode_ok(j, (size_t)k, NULL, &in, __LINE__) == 0);
            msg_input_free(&in);
        } else {
            EXPECT(j, (size_t)k, MSG_E_TOO_DEEP, "nesting deeper than 64 levels at byte 91");
        }
    }
    for (int depth = 64; depth <= 65; depth++) {
        mpb b;
        mpb_base3(&b);
        mpb_str(&b, "meta");
        for (int i = 0; i < depth - 1; i++)
            msgpack_pack_array(&b.pk, 1);
        msgpack_pack_nil(&b.pk);
        if (depth == 64) {
            msg_input in;
            CHECK(decode_ok(b.sb.data, b.sb.size, NULL, &in, __LINE__) == 0);
            msg_input_free(&in);
        } else {
            EXPECT(b.sb.data, b.sb.size, MSG_E_TOO_DEEP, "nesting deeper than 64 levels");
        }
        mpb_free(&b);
    }
    /* A smaller configured limit. */
    msg_limits l = LIM;
    l.max_depth = 2;
    EXPECT_L("{\"id\":\"a\",\"text\":\"b\",\"meta\":[[1]]}", 32, &l, MSG_E_TOO_DEEP,
             "deeper than 2 levels at byte 29");
}

static void bad_not_a_map(void)
{
    EXPECT_S("[{\"id\":\"a\",\"text\":\"b\"}]", MSG_E_NOT_A_MAP, "JSON array, expected an object");
    EXPECT_S(" \"a\" ", MSG_E_NOT_A_MAP, "JSON string");
    EXPECT_S("42", MSG_E_NOT_A_MAP, "JSON number");
    EXPECT_S("null", MSG_E_NOT_A_MAP, "JSON null");
    const uint8_t a[] = {0x92, 0x01, 0x02};
    EXPECT(a, sizeof a, MSG_E_NOT_A_MAP, "msgpack array, expected a map");
    const uint8_t s[] = {0xa1, 'x'};
    EXPECT(s, sizeof s, MSG_E_NOT_A_MAP, "msgpack str");
    const uint8_t f[] = {0xcb, 0, 0, 0, 0, 0, 0, 0, 0};
    EXPECT(f, sizeof f, MSG_E_NOT_A_MAP, "msgpack float64");
}

static void bad_duplicate_key(void)
{
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",\"id\":\"c\"}", MSG_E_DUPLICATE_KEY,
             "key \"id\" appears more than once");
    /* Escaped spelling of the same key. */
    EXPECT_S("{\"text\":\"a\",\"id\":1,\"t\\u0065xt\":\"b\"}", MSG_E_DUPLICATE_KEY, "\"text\"");
    mpb b;
    mpb_base3(&b);
    mpb_str(&b, "text");
    mpb_str(&b, "again");
    EXPECT(b.sb.data, b.sb.size, MSG_E_DUPLICATE_KEY, "\"text\"");
    mpb_free(&b);
    /* Repeated unknown keys are fine. */
    msg_input in;
    CHECK(DECODE_OK_S("{\"x\":1,\"x\":2,\"id\":\"a\",\"text\":\"b\"}", &in) == 0);
    msg_input_free(&in);
    /* Malformed beats duplicate: the whole message is checked first. */
    EXPECT_S("{\"id\":\"a\",\"id\":\"b\",\"text\":\"c\",}", MSG_E_MALFORMED_JSON, NULL);
}

static void bad_missing_id(void)
{
    EXPECT_S("{\"text\":\"hello\"}", MSG_E_MISSING_ID, "no \"id\" key");
    EXPECT_S("{}", MSG_E_MISSING_ID, NULL);
    mpb b;
    mpb_init(&b);
    msgpack_pack_map(&b.pk, 2);
    mpb_str(&b, "text");
    mpb_str(&b, "hello");
    msgpack_pack_int(&b.pk, 1); /* an integer key 1: unknown, ignored */
    mpb_str(&b, "x");
    EXPECT(b.sb.data, b.sb.size, MSG_E_MISSING_ID, NULL);
    mpb_free(&b);
    /* A bin key "id" is not the str key "id". */
    const uint8_t bk[] = {0x82, 0xc4, 2, 'i', 'd', 0x01, 0xa4, 't', 'e', 'x', 't', 0xa1, 'x'};
    EXPECT(bk, sizeof bk, MSG_E_MISSING_ID, NULL);
    /* missing id is reported before missing text (field order) */
    EXPECT_S("{\"meta\":1}", MSG_E_MISSING_ID, NULL);
}

static void bad_id_wrong_type(void)
{
    static const char *const js[][2] = {
        {"1.5", "got float"},        {"1e3", "got float"}, {"1.0", "got float"},
        {"true", "got boolean"},     {"null", "got null"}, {"[1]", "got array"},
        {"{\"a\":1}", "got object"},
    };
    for (size_t i = 0; i < sizeof js / sizeof js[0]; i++) {
        char m[128];
        snprintf(m, sizeof m, "{\"id\":%s,\"text\":\"hello\"}", js[i][0]);
        EXPECT_S(m, MSG_E_ID_WRONG_TYPE, js[i][1]);
    }
    for (int k = 0; k < 7; k++) {
        mpb b;
        mpb_init(&b);
        msgpack_pack_map(&b.pk, 2);
        mpb_str(&b, "id");
        const char *want = NULL;
        switch (k) {
        case 0:
            msgpack_pack_float(&b.pk, 1.0f), want = "got float";
            break;
        case 1:
            msgpack_pack_double(&b.pk, 2.0), want = "got float";
            break;
        case 2:
            msgpack_pack_true(&b.pk), want = "got bool";
            break;
        case 3:
            msgpack_pack_nil(&b.pk), want = "got nil";
            break;
        case 4:
            msgpack_pack_array(&b.pk, 0), want = "got array";
            break;
        case 5:
            msgpack_pack_bin(&b.pk, 1), msgpack_pack_bin_body(&b.pk, "a", 1), want = "got bin";
            break;
        default:
            msgpack_pack_ext(&b.pk, 1, 3), msgpack_pack_ext_body(&b.pk, "a", 1), want = "got ext";
            break;
        }
        mpb_str(&b, "text");
        mpb_str(&b, "hello");
        EXPECT(b.sb.data, b.sb.size, MSG_E_ID_WRONG_TYPE, want);
        mpb_free(&b);
    }
}

static void bad_id_out_of_range(void)
{
    EXPECT_S("{\"id\":18446744073709551616,\"text\":\"b\"}", MSG_E_ID_OUT_OF_RANGE,
             "id 18446744073709551616 does not fit in 64 bits");
    EXPECT_S("{\"id\":-9223372036854775809,\"text\":\"b\"}", MSG_E_ID_OUT_OF_RANGE, NULL);
}

static void bad_empty_id(void)
{
    EXPECT_S("{\"id\":\"\",\"text\":\"b\"}", MSG_E_EMPTY_ID, "id is an empty string");
    mpb b;
    mpb_init(&b);
    msgpack_pack_map(&b.pk, 2);
    mpb_str(&b, "id");
    mpb_str(&b, "");
    mpb_str(&b, "text");
    mpb_str(&b, "hello");
    EXPECT(b.sb.data, b.sb.size, MSG_E_EMPTY_ID, NULL);
    mpb_free(&b);
    /* empty id beats missing text (id is checked first) */
    EXPECT_S("{\"id\":\"\"}", MSG_E_EMPTY_ID, NULL);
}

static void bad_missing_text(void)
{
    EXPECT_S("{\"id\":\"a\"}", MSG_E_MISSING_TEXT, "no \"text\" key");
    EXPECT_S("{\"id\":\"a\",\"Text\":\"case matters\"}", MSG_E_MISSING_TEXT, NULL);
}

static void bad_text_wrong_type(void)
{
    EXPECT_S("{\"id\":\"a\",\"text\":5}", MSG_E_TEXT_WRONG_TYPE,
             "text must be a string, got integer");
    EXPECT_S("{\"id\":\"a\",\"text\":null}", MSG_E_TEXT_WRONG_TYPE, "got null");
    EXPECT_S("{\"id\":\"a\",\"text\":[\"x\"]}", MSG_E_TEXT_WRONG_TYPE, "got array");
    mpb b;
    mpb_init(&b);
    msgpack_pack_map(&b.pk, 2);
    mpb_str(&b, "id");
    mpb_str(&b, "a");
    mpb_str(&b, "text");
    msgpack_pack_bin(&b.pk, 5);
    msgpack_pack_bin_body(&b.pk, "hello", 5);
    EXPECT(b.sb.data, b.sb.size, MSG_E_TEXT_WRONG_TYPE, "got bin");
    mpb_free(&b);
}

static void bad_empty_text(void)
{
    EXPECT_S("{\"id\":\"a\",\"text\":\"\"}", MSG_E_EMPTY_TEXT, "text is an empty string");
    mpb b;
    mpb_init(&b);
    msgpack_pack_map(&b.pk, 2);
    mpb_str(&b, "id");
    mpb_str(&b, "a");
    mpb_str(&b, "text");
    mpb_str(&b, "");
    EXPECT(b.sb.data, b.sb.size, MSG_E_EMPTY_TEXT, NULL);
    mpb_free(&b);
}

static void bad_invalid_utf8(void)
{
    /* Offsets count bytes of the decoded string. */
    EXPECT_S("{\"id\":\"a\",\"text\":\"hello \xff world\"}", MSG_E_INVALID_UTF8,
             "text: invalid UTF-8 at byte 6");
    EXPECT_S("{\"id\":\"a\",\"text\":\"\\n\\u00e9\\t\xc3(\"}", MSG_E_INVALID_UTF8,
             "text: invalid UTF-8 at byte 4");
    EXPECT_S("{\"id\":\"a\",\"text\":\"abc\\ud800def\"}", MSG_E_INVALID_UTF8,
             "text: invalid UTF-8 at byte 3");
    EXPECT_S("{\"id\":\"a\",\"text\":\"x\\udc00\"}", MSG_E_INVALID_UTF8, "at byte 1");
    EXPECT_S("{\"id\":\"a\\xc0\\xaf\",\"text\":\"b\"}", MSG_E_MALFORMED_JSON, NULL);
    EXPECT_S("{\"id\":\"a\xc0\xaf\",\"text\":\"b\"}", MSG_E_INVALID_UTF8,
             "id: invalid UTF-8 at byte 1");
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",\"instruction\":\"ok \xed\xa0\x80\"}",
             MSG_E_INVALID_UTF8, "instruction: invalid UTF-8 at byte 3");
    /* Valid: 4-byte sequences, escaped pairs, U+0000. */
    msg_input in;
    const char *ok = "{\"id\":\"a\",\"text\":\"\xf0\x9f\x98\x80 \\ud83d\\ude00 \\u0000.\"}";
    if (DECODE_OK_S(ok, &in) == 0) {
        CHECK(in.text_len == 12 &&
              memcmp(in.text, "\xf0\x9f\x98\x80 \xf0\x9f\x98\x80 \0.", 12) == 0);
        msg_input_free(&in);
    }
    /* msgpack: overlong, surrogate, beyond U+10FFFF, truncated sequence. */
    static const char *const bad[] = {"ab\xc0\x80", "ab\xed\xa0\x80", "ab\xf4\x90\x80\x80",
                                      "ab\xe2\x82"};
    for (int i = 0; i < 4; i++) {
        mpb b;
        mpb_init(&b);
        msgpack_pack_map(&b.pk, 2);
        mpb_str(&b, "id");
        mpb_str(&b, "a");
        mpb_str(&b, "text");
        mpb_str(&b, bad[i]);
        EXPECT(b.sb.data, b.sb.size, MSG_E_INVALID_UTF8, "text: invalid UTF-8 at byte 2");
        mpb_free(&b);
    }
}

static void bad_instruction_wrong_type(void)
{
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",\"instruction\":5}", MSG_E_INSTRUCTION_WRONG_TYPE,
             "instruction must be a string, got integer");
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",\"instruction\":false}", MSG_E_INSTRUCTION_WRONG_TYPE,
             "got boolean");
    mpb b;
    mpb_base3(&b);
    mpb_str(&b, "instruction");
    msgpack_pack_array(&b.pk, 0);
    EXPECT(b.sb.data, b.sb.size, MSG_E_INSTRUCTION_WRONG_TYPE, "got array");
    mpb_free(&b);
}

static void bad_dimensions_wrong_type(void)
{
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",\"dimensions\":\"256\"}", MSG_E_DIMENSIONS_WRONG_TYPE,
             "dimensions must be an integer, got string");
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",\"dimensions\":256.0}", MSG_E_DIMENSIONS_WRONG_TYPE,
             "got float");
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",\"dimensions\":true}", MSG_E_DIMENSIONS_WRONG_TYPE,
             "got boolean");
    mpb b;
    mpb_base3(&b);
    mpb_str(&b, "dimensions");
    msgpack_pack_float(&b.pk, 256.0f);
    EXPECT(b.sb.data, b.sb.size, MSG_E_DIMENSIONS_WRONG_TYPE, "got float");
    mpb_free(&b);
}

static void bad_dimensions_out_of_range(void)
{
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",\"dimensions\":4096}", MSG_E_DIMENSIONS_OUT_OF_RANGE,
             "dimensions 4096 outside 32..1024");
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",\"dimensions\":31}", MSG_E_DIMENSIONS_OUT_OF_RANGE,
             "dimensions 31 outside 32..1024");
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",\"dimensions\":0}", MSG_E_DIMENSIONS_OUT_OF_RANGE, NULL);
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",\"dimensions\":-64}", MSG_E_DIMENSIONS_OUT_OF_RANGE,
             "dimensions -64 outside");
    EXPECT_S("{\"id\":\"a\",\"text\":\"b\",\"dimensions\":99999999999999999999999}",
             MSG_E_DIMENSIONS_OUT_OF_RANGE, "dimensions 99999999999999999999999 outside");
    mpb b;
    mpb_base3(&b);
    mpb_str(&b, "dimensions");
    msgpack_pack_uint64(&b.pk, UINT64_MAX);
    EXPECT(b.sb.data, b.sb.size, MSG_E_DIMENSIONS_OUT_OF_RANGE,
           "dimensions 18446744073709551615 outside 32..1024");
    mpb_free(&b);
    mpb_base3(&b);
    mpb_str(&b, "dimensions");
    msgpack_pack_int8(&b.pk, -1);
    EXPECT(b.sb.data, b.sb.size, MSG_E_DIMENSIONS_OUT_OF_RANGE, "dimensions -1 outside");
    mpb_free(&b);
    /* Boundaries; hidden_size from the limits. */
    msg_input in;
    CHECK(DECODE_OK_S("{\"id\":\"a\",\"text\":\"b\",\"dimensions\":32}", &in) == 0);
    CHECK(in.dimensions == 32);
    msg_input_free(&in);
    CHECK(DECODE_OK_S("{\"id\":\"a\",\"text\":\"b\",\"dimensions\":1024}", &in) == 0);
    CHECK(in.dimensions == 1024);
    msg_input_free(&in);
    msg_limits l = LIM;
    l.hidden_size = 4096;
    CHECK(decode_ok("{\"id\":\"a\",\"text\":\"b\",\"dimensions\":4096}", 39, &l, &in, __LINE__) ==
          0);
    msg_input_free(&in);
    l.hidden_size = 0; /* unknown: up to MSG_MAX_DIMENSIONS */
    EXPECT_L("{\"id\":\"a\",\"text\":\"b\",\"dimensions\":65537}", 40, &l,
             MSG_E_DIMENSIONS_OUT_OF_RANGE, "outside 32..65536");
}

static void bad_meta_too_large(void)
{
    msg_limits l = LIM;
    l.max_meta_bytes = 10;
    /* meta "0123456789" is 12 bytes of JSON */
    EXPECT_L("{\"id\":\"a\",\"text\":\"b\",\"meta\":\"0123456789\"}", 41, &l, MSG_E_META_TOO_LARGE,
             "meta is 12 bytes, limit 10");
    msg_input in;
    CHECK(decode_ok("{\"id\":\"a\",\"text\":\"b\",\"meta\":\"01234567\"}", 39, &l, &in, __LINE__) ==
          0);
    msg_input_free(&in);
    /* default: 64 KiB */
    size_t n = 70000;
    char *m = malloc(n + 64);
    int k = sprintf(m, "{\"id\":\"a\",\"text\":\"b\",\"meta\":\"");
    memset(m + k, 'x', n);
    k += (int)n;
    k += sprintf(m + k, "\"}");
    EXPECT(m, (size_t)k, MSG_E_META_TOO_LARGE, "limit 65536");
    free(m);
}

static void bad_meta_unconvertible(void)
{
    /* msgpack meta that JSON cannot carry: rejected at decode when the
     * output format is JSON or qdrant; fine for msgpack output. */
    msg_limits lj = LIM;
    lj.out_format = MSG_FMT_JSON;
    msg_limits lq = LIM;
    lq.out_format = MSG_FMT_QDRANT;
    for (int k = 0; k < 5; k++) {
        mpb b;
        mpb_base3(&b);
        mpb_str(&b, "meta");
        msgpack_pack_map(&b.pk, 1);
        const char *want = NULL;
        switch (k) {
        case 0:
            mpb_str(&b, "e");
            msgpack_pack_ext(&b.pk, 1, 5);
            msgpack_pack_ext_body(&b.pk, "z", 1);
            want = "meta: ext type 5 at byte 25 has no JSON form";
            break;
        case 1:
            mpb_str(&b, "n");
            msgpack_pack_double(&b.pk, NAN);
            want = "float64 NaN at byte 25";
            break;
        case 2:
            mpb_str(&b, "i");
            msgpack_pack_float(&b.pk, INFINITY);
            want = "float32 infinity";
            break;
        case 3:
            msgpack_pack_int(&b.pk, 7);
            mpb_str(&b, "int key");
            want = "map key at byte 23 is int; JSON keys are strings";
            break;
        default:
            mpb_str(&b, "s");
            mpb_str(&b, "ok\xff");
            want = "str at byte 25: invalid UTF-8 at byte 2 of it";
            break;
        }
        EXPECT_L(b.sb.data, b.sb.size, &lj, MSG_E_META_UNCONVERTIBLE, want);
        EXPECT_L(b.sb.data, b.sb.size, &lq, MSG_E_META_UNCONVERTIBLE, want);
        msg_input in;
        if (decode_ok(b.sb.data, b.sb.size, &LIM, &in, __LINE__) == 0) {
            /* Decoded for msgpack output; the JSON encoders refuse it and
             * leave the buffer as it was. */
            msg_buf out = {0};
            msg_error e;
            float v[32];
            golden_vector(v, 32);
            static const uint8_t pre[] = "prefix";
            msg_buf_reserve(&out, 6);
            memcpy(out.data, pre, 6);
            out.len = 6;
            CHECK(msg_encode_json(&in, "m", v, 32, 1, false, &out, &e) == -1);
            CHECK(e.code == MSG_E_META_UNCONVERTIBLE && out.len == 6);
            CHECK(msg_encode_qdrant(&in, "c", "m", v, 32, 1, false, &out, &e) == -1);
            CHECK(e.code == MSG_E_META_UNCONVERTIBLE && out.len == 6);
            CHECK(msg_encode_msgpack(&in, "m", v, 32, 1, false, &out, &e) == 0);
            CHECK(out.len > 6 && memcmp(out.data, pre, 6) == 0);
            msg_buf_free(&out);
            msg_input_free(&in);
        }
        mpb_free(&b);
    }
    /* JSON meta that msgpack cannot carry: a number beyond float64. */
    const char *m = "{\"id\":\"a\",\"text\":\"b\",\"meta\":{\"x\":[1e999]}}";
    EXPECT(m, strlen(m), MSG_E_META_UNCONVERTIBLE, "meta: number at byte 34 overflows float64");
    msg_input in;
    CHECK(decode_ok(m, strlen(m), &lj, &in, __LINE__) == 0); /* JSON -> JSON: raw */
    msg_input_free(&in);
}

/* The pipeline's codes exist and format like the others. */
static void bad_pipeline_codes(void)
{
    msg_error e;
    char r[MSG_REASON_LEN];
    CHECK(msg_error_set(&e, MSG_E_TEXT_TOO_LONG, "text has %d tokens, limit %d", 40000, 32768) ==
          -1);
    msg_error_format(&e, r, sizeof r);
    CHECK(strcmp(r, "text_too_long: text has 40000 tokens, limit 32768") == 0);
    CHECK(strcmp(msg_code_name(MSG_E_INVALID_TEXT), "invalid_text") == 0);
    CHECK(strcmp(msg_code_name(MSG_E_INTERNAL), "internal") == 0);
}

/* ---- hostile sizes ----------------------------------------------------------------- */

/* Each: rejected with the code, in well under a second, allocating nothing. */
static void hostile(const void *b, size_t n, msg_code code, const char *detail, int line)
{
    double t0 = now_s();
    expect_lim(b, n, &LIM, code, detail, line);
    double dt = now_s() - t0;
    CHECKF(dt < 0.5, "line %d: took %.3f s", line, dt);
}
#define HOSTILE(b, n, code, detail) hostile(b, n, code, detail, __LINE__)

static void hostile_declared_lengths(void)
{
    /* array32 claiming 2^31 elements in a 10-byte message */
    const uint8_t a[] = {0xdd, 0x80, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05};
    HOSTILE(a, sizeof a, MSG_E_MALFORMED_MSGPACK,
            "array32 at byte 0 declares 2147483648 elements, only 5 bytes remain");
    /* the same as the meta value */
    const uint8_t am[] = {0x83, 0xa2, 'i', 'd', 0x01, 0xa4, 't',  'e',  'x', 't', 0xa1,
                          'x',  0xa4, 'm', 'e', 't',  'a',  0xdd, 0x80, 0,   0,   0};
    HOSTILE(am, sizeof am, MSG_E_MALFORMED_MSGPACK, "array32 at byte 17 declares 2147483648");
    /* str32 of 2^32-1 bytes */
    const uint8_t s[] = {0x82, 0xa2, 'i', 'd', 0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 'b'};
    HOSTILE(s, sizeof s, MSG_E_MALFORMED_MSGPACK,
            "str32 at byte 4 declares 4294967295 bytes, 2 remain");
    /* map32 of 2^32-1 pairs at the top */
    const uint8_t m[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa2, 'i', 'd'};
    HOSTILE(m, sizeof m, MSG_E_MALFORMED_MSGPACK, "map32 at byte 0 declares 4294967295 pairs");
    /* bin32, ext32, array16, map16 */
    const uint8_t bi[] = {0x81, 0xa1, 'k', 0xc6, 0x7f, 0xff, 0xff, 0xff, 0};
    HOSTILE(bi, sizeof bi, MSG_E_MALFORMED_MSGPACK, "bin32 at byte 3 declares 2147483647 bytes");
    const uint8_t ex[] = {0x81, 0xa1, 'k', 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0};
    HOSTILE(ex, sizeof ex, MSG_E_MALFORMED_MSGPACK, "ext32 at byte 3 declares 4294967295 bytes");
    const uint8_t a16[] = {0x81, 0xa1, 'k', 0xdc, 0xff, 0xff, 0x01};
    HOSTILE(a16, sizeof a16, MSG_E_MALFORMED_MSGPACK, "array16 at byte 3 declares 65535 elements");
    const uint8_t m16[] = {0x81, 0xa1, 'k', 0xde, 0x00, 0x02, 0x01, 0x02, 0x03};
    HOSTILE(m16, sizeof m16, MSG_E_MALFORMED_MSGPACK, "map16 at byte 3 declares 2 pairs, only 3");
    /* A count that fits the bytes but whose elements do not: still linear. */
    size_t n = 1 << 20;
    uint8_t *big = malloc(n);
    /* array32 of 1048571 elements (one per remaining byte, so the count
     * passes), then 2-byte uint8 elements: the last one is cut. */
    big[0] = 0xdd, big[1] = 0x00, big[2] = 0x0f, big[3] = 0xff, big[4] = 0xfb;
    for (size_t i = 5; i + 1 < n; i += 2)
        big[i] = 0xcc, big[i + 1] = 0x01;
    big[n - 1] = 0xcc;
    HOSTILE(big, n, MSG_E_MALFORMED_MSGPACK,
            "truncated uint8 header at byte 1048575: 2 bytes needed, 1 remain");
    free(big);
}

static void hostile_deep_msgpack(void)
{
    size_t n = 10000;
    uint8_t *b = malloc(n + 32);
    memset(b, 0x91, n);
    b[n] = 0xc0;
    HOSTILE(b, n + 1, MSG_E_TOO_DEEP, "nesting deeper than 64 levels at byte 64");
    /* inside meta */
    const uint8_t head[] = {0x83, 0xa2, 'i', 'd',  0x01, 0xa4, 't', 'e', 'x',
                            't',  0xa1, 'x', 0xa4, 'm',  'e',  't', 'a'};
    memcpy(b, head, sizeof head);
    memset(b + sizeof head, 0x81, n); /* fixmap(1) with ... */
    for (size_t i = sizeof head + 1; i < sizeof head + n; i += 2)
        b[i] = 0x01; /* key 1, value: the next map */
    HOSTILE(b, sizeof head + n, MSG_E_TOO_DEEP, "nesting deeper than 64 levels");
    free(b);
}

static void hostile_deep_json(void)
{
    /* 10,000 nested arrays, closed */
    size_t n = 10000;
    char *b = malloc(6 * n + 64);
    memset(b, '[', n);
    memset(b + n, ']', n);
    HOSTILE(b, 2 * n, MSG_E_TOO_DEEP, "nesting deeper than 64 levels at byte 64");
    /* as meta, with objects */
    size_t k = (size_t)sprintf(b, "{\"id\":1,\"text\":\"x\",\"meta\":");
    for (size_t i = 0; i < n; i++)
        k += (size_t)sprintf(b + k, "{\"a\":");
    HOSTILE(b, k, MSG_E_TOO_DEEP, "nesting deeper than 64 levels");
    free(b);
    /* 10^6 unclosed '[' (inside the 1 MiB limit) */
    size_t m = 1000000;
    char *c = malloc(m);
    memset(c, '[', m);
    HOSTILE(c, m, MSG_E_TOO_DEEP, "nesting deeper than 64 levels at byte 64");
    /* and inside an object */
    memcpy(c, "{\"id\":1,\"text\":\"x\",\"z\":", 23);
    HOSTILE(c, m, MSG_E_TOO_DEEP, "nesting deeper than 64 levels at byte 86");
    free(c);
}

/* Wide but legal: linear time, one allocation. */
static void hostile_wide(void)
{
    size_t n = 300000;
    char *b = malloc(2 * n + 64);
    size_t k = (size_t)sprintf(b, "{\"id\":1,\"text\":\"x\",\"junk\":[");
    for (size_t i = 0; i < n; i++)
        b[k++] = '0', b[k++] = ',';
    k--;
    k += (size_t)sprintf(b + k, "]}");
    msg_input in;
    size_t a0 = g_allocs;
    double t0 = now_s();
    CHECK(decode_ok(b, k, NULL, &in, __LINE__) == 0);
    CHECK(now_s() - t0 < 0.5);
    CHECK(g_allocs - a0 == 1);
    msg_input_free(&in);
    free(b);
    /* msgpack map16 of 65535 unknown pairs */
    mpb mb;
    mpb_init(&mb);
    msgpack_pack_map(&mb.pk, 65535);
    mpb_str(&mb, "id");
    msgpack_pack_int(&mb.pk, 1);
    mpb_str(&mb, "text");
    mpb_str(&mb, "x");
    for (int i = 0; i < 65533; i++) {
        msgpack_pack_int(&mb.pk, i);
        msgpack_pack_nil(&mb.pk);
    }
    a0 = g_allocs;
    t0 = now_s();
    CHECK(decode_ok(mb.sb.data, mb.sb.size, NULL, &in, __LINE__) == 0);
    CHECK(now_s() - t0 < 0.5);
    CHECK(g_allocs - a0 == 1);
    msg_input_free(&in);
    mpb_free(&mb);
}

/* ---- round trips -------------------------------------------------------------------- */

static void check_floats_json(const char *json, size_t len, const char *key, const float *v, int d)
{
    /* Find the array after "key":[ and check each number token. */
    char pat[32];
    snprintf(pat, sizeof pat, "\"%s\":[", key);
    const char *p = strstr(json, pat);
    CHECK(p != NULL);
    if (!p) return;
    p += strlen(pat);
    for (int i = 0; i < d; i++) {
        const char *e = p;
        while (e < json + len && *e != ',' && *e != ']')
            e++;
        CHECKF(memchr(p, '.', (size_t)(e - p)) || memchr(p, 'e', (size_t)(e - p)),
               "float %d \"%.*s\" has neither '.' nor 'e'", i, (int)(e - p), p);
        char tok[64];
        snprintf(tok, sizeof tok, "%.*s", (int)(e - p), p);
        float f = strtof(tok, NULL);
        uint32_t a, b;
        memcpy(&a, &f, 4);
        memcpy(&b, &v[i], 4);
        CHECKF(a == b, "float %d: \"%s\" reads back as %08x, want %08x", i, tok, a, b);
        p = e + 1;
    }
}

static bool json_eq_mp(const cJSON *j, const msgpack_object *m);

/* The JSON id against the input. */
static void check_json_id(const cJSON *id, const msg_input *in, const char *raw)
{
    if (in->id_kind == MSG_ID_STR) {
        /* cJSON strings end at U+0000: compare up to it */
        size_t n = strnlen(in->id, in->id_len);
        CHECK(cJSON_IsString(id) && strlen(id->valuestring) == n &&
              memcmp(id->valuestring, in->id, n) == 0);
    } else {
        CHECK(cJSON_IsNumber(id));
        char pat[48];
        snprintf(pat, sizeof pat, "\"id\":%s,", in->id);
        CHECKF(strstr(raw, pat) != NULL, "%s not in output", pat);
    }
}

/* Compares an encoded msgpack meta (msgpack-c) with the input's. */
static void check_meta_mp(const msgpack_object *om, const msg_input *in, const uint8_t *out,
                          size_t out_len)
{
    if (in->meta_encoding == MSG_ENC_MSGPACK) {
        /* byte-exact: meta is the last value */
        CHECK(out_len >= in->meta_len &&
              memcmp(out + out_len - in->meta_len, in->meta, in->meta_len) == 0);
    } else {
        cJSON *j = cJSON_ParseWithLength((const char *)in->meta, in->meta_len);
        CHECK(j != NULL && json_eq_mp(j, om));
        cJSON_Delete(j);
    }
}

static void check_meta_json(const cJSON *jm, const msg_input *in, const char *out, size_t len,
                            const char *closing)
{
    if (in->meta_encoding == MSG_ENC_JSON) {
        /* byte-exact: ,"meta":<raw>} at the end */
        size_t cl = strlen(closing);
        CHECK(len >= in->meta_len + cl &&
              memcmp(out + len - cl - in->meta_len, in->meta, in->meta_len) == 0 &&
              memcmp(out + len - cl - in->meta_len - 8, ",\"meta\":", 8) == 0);
    } else {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        CHECK(msgpack_unpack_next(&u, (const char *)in->meta, in->meta_len, &off) ==
              MSGPACK_UNPACK_SUCCESS);
        CHECK(json_eq_mp(jm, &u.data));
        msgpack_unpacked_destroy(&u);
    }
}

static const char b64tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* JSON value == msgpack value, under the conversion rules of README.md. */
static bool json_eq_mp(const cJSON *j, const msgpack_object *m)
{
    switch (m->type) {
    case MSGPACK_OBJECT_NIL:
        return cJSON_IsNull(j);
    case MSGPACK_OBJECT_BOOLEAN:
        return m->via.boolean ? cJSON_IsTrue(j) : cJSON_IsFalse(j);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return cJSON_IsNumber(j) && j->valuedouble == (double)m->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return cJSON_IsNumber(j) && j->valuedouble == (double)m->via.i64;
    case MSGPACK_OBJECT_FLOAT32:
        return cJSON_IsNumber(j) && (float)j->valuedouble == (float)m->via.f64;
    case MSGPACK_OBJECT_FLOAT64:
        return cJSON_IsNumber(j) && j->valuedouble == m->via.f64;
    case MSGPACK_OBJECT_STR: {
        /* cJSON strings end at U+0000: compare up to it */
        size_t n = strnlen(m->via.str.ptr, m->via.str.size);
        return cJSON_IsString(j) && strlen(j->valuestring) == n &&
               memcmp(j->valuestring, m->via.str.ptr, n) == 0;
    }
    case MSGPACK_OBJECT_BIN: {
        if (!cJSON_IsString(j)) return false;
        char enc[256];
        size_t k = 0, n = m->via.bin.size;
        const uint8_t *s = (const uint8_t *)m->via.bin.ptr;
        if (n > 180) return false;
        for (size_t i = 0; i < n; i += 3) {
            uint32_t v =
                (uint32_t)s[i] << 16 | (i + 1 < n ? s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
            enc[k++] = b64tab[v >> 18];
            enc[k++] = b64tab[(v >> 12) & 63];
            enc[k++] = i + 1 < n ? b64tab[(v >> 6) & 63] : '=';
            enc[k++] = i + 2 < n ? b64tab[v & 63] : '=';
        }
        enc[k] = 0;
        return strcmp(enc, j->valuestring) == 0;
    }
    case MSGPACK_OBJECT_ARRAY: {
        if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != (int)m->via.array.size) return false;
        const cJSON *c = j->child;
        for (uint32_t i = 0; i < m->via.array.size; i++, c = c->next)
            if (!json_eq_mp(c, &m->via.array.ptr[i])) return false;
        return true;
    }
    case MSGPACK_OBJECT_MAP: {
        if (!cJSON_IsObject(j) || cJSON_GetArraySize(j) != (int)m->via.map.size) return false;
        const cJSON *c = j->child;
        for (uint32_t i = 0; i < m->via.map.size; i++, c = c->next) {
            const msgpack_object *k = &m->via.map.ptr[i].key;
            size_t kn =
                k->type == MSGPACK_OBJECT_STR ? strnlen(k->via.str.ptr, k->via.str.size) : 0;
            if (k->type != MSGPACK_OBJECT_STR || strlen(c->string) != kn ||
                memcmp(c->string, k->via.str.ptr, kn) != 0)
                return false;
            if (!json_eq_mp(c, &m->via.map.ptr[i].val)) return false;
        }
        return true;
    }
    default:
        return false;
    }
}

/* Encodes `in` in all three formats with vector v and checks every field
 * after parsing back with msgpack-c and cJSON. */
static void roundtrip_one(const msg_input *in, const float *v, int d, const char *what)
{
    msg_error e;
    msg_buf b = {0};
    /* msgpack */
    int rc = msg_encode_msgpack(in, "Qwen3-Embedding-0.6B", v, d, 17, true, &b, &e);
    CHECKF(rc == 0, "%s: msgpack encode", what);
    if (rc == 0) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        CHECK(msgpack_unpack_next(&u, (const char *)b.data, b.len, &off) == MSGPACK_UNPACK_SUCCESS);
        CHECK(off == b.len);
        const msgpack_object *o = &u.data;
        CHECK(o->type == MSGPACK_OBJECT_MAP && o->via.map.size == (in->meta ? 7u : 6u));
        static const char *const keys[] = {"id",     "model",     "dimensions", "embedding",
                                           "tokens", "truncated", "meta"};
        for (uint32_t i = 0; i < o->via.map.size && i < 7; i++)
            CHECKF(has_str(&o->via.map.ptr[i].key, keys[i]), "%s: key %u", what, i);
        const msgpack_object *id = mp_get(o, "id");
        if (in->id_kind == MSG_ID_STR)
            CHECK(id && id->type == MSGPACK_OBJECT_STR && id->via.str.size == in->id_len &&
                  memcmp(id->via.str.ptr, in->id, in->id_len) == 0);
        else if (in->id_kind == MSG_ID_UINT)
            CHECK(id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER && id->via.u64 == in->id_uint);
        else
            CHECK(id && id->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && id->via.i64 == in->id_int);
        CHECK(has_str(mp_get(o, "model"), "Qwen3-Embedding-0.6B"));
        const msgpack_object *dm = mp_get(o, "dimensions"), *em = mp_get(o, "embedding");
        CHECK(dm && dm->type == MSGPACK_OBJECT_POSITIVE_INTEGER && dm->via.u64 == (uint64_t)d);
        CHECK(em && em->type == MSGPACK_OBJECT_ARRAY && em->via.array.size == (uint32_t)d);
        for (int i = 0; em && i < d && i < (int)em->via.array.size; i++) {
            const msgpack_object *x = &em->via.array.ptr[i];
            float f = (float)x->via.f64;
            CHECKF(x->type == MSGPACK_OBJECT_FLOAT32 && memcmp(&f, &v[i], 4) == 0,
                   "%s: embedding[%d]", what, i);
        }
        const msgpack_object *tk = mp_get(o, "tokens"), *tr = mp_get(o, "truncated");
        CHECK(tk && tk->type == MSGPACK_OBJECT_POSITIVE_INTEGER && tk->via.u64 == 17);
        CHECK(tr && tr->type == MSGPACK_OBJECT_BOOLEAN && tr->via.boolean);
        const msgpack_object *mt = mp_get(o, "meta");
        CHECK(!mt == !in->meta);
        if (mt) check_meta_mp(mt, in, b.data, b.len);
        msgpack_unpacked_destroy(&u);
    }
    /* json */
    msg_buf_free(&b);
    rc = msg_encode_json(in, "Qwen3-Embedding-0.6B", v, d, 17, false, &b, &e);
    CHECKF(rc == 0, "%s: json encode: %s", what, e.detail);
    if (rc == 0) {
        cJSON *j = cJSON_ParseWithLength((const char *)b.data, b.len);
        CHECKF(j != NULL, "%s: json output does not parse", what);
        msg_buf_reserve(&b, 1);
        b.data[b.len] = 0;
        if (j) {
            check_json_id(cJSON_GetObjectItemCaseSensitive(j, "id"), in, (const char *)b.data);
            const cJSON *md = cJSON_GetObjectItemCaseSensitive(j, "model");
            CHECK(cJSON_IsString(md) && strcmp(md->valuestring, "Qwen3-Embedding-0.6B") == 0);
            CHECK(cJSON_GetObjectItemCaseSensitive(j, "dimensions")->valuedouble == d);
            const cJSON *em = cJSON_GetObjectItemCaseSensitive(j, "embedding");
            CHECK(cJSON_IsArray(em) && cJSON_GetArraySize(em) == d);
            int i = 0;
            for (const cJSON *x = em ? em->child : NULL; x; x = x->next, i++)
                CHECKF((float)x->valuedouble == v[i], "%s: embedding[%d]", what, i);
            CHECK(cJSON_GetObjectItemCaseSensitive(j, "tokens")->valuedouble == 17);
            CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "truncated")));
            const cJSON *jm = cJSON_GetObjectItemCaseSensitive(j, "meta");
            CHECK(!jm == !in->meta);
            if (jm) check_meta_json(jm, in, (const char *)b.data, b.len, "}");
            CHECK(cJSON_GetArraySize(j) == (in->meta ? 7 : 6));
            cJSON_Delete(j);
        }
        check_floats_json((const char *)b.data, b.len, "embedding", v, d);
    }
    /* qdrant */
    msg_buf_free(&b);
    rc = msg_encode_qdrant(in, "my-coll", "Qwen3-Embedding-0.6B", v, d, 17, false, &b, &e);
    CHECKF(rc == 0, "%s: qdrant encode", what);
    if (rc == 0) {
        cJSON *j = cJSON_ParseWithLength((const char *)b.data, b.len);
        CHECK(j != NULL);
        msg_buf_reserve(&b, 1);
        b.data[b.len] = 0;
        if (j) {
            CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(j, "collection_name")->valuestring,
                         "my-coll") == 0);
            const cJSON *pid = cJSON_GetObjectItemCaseSensitive(j, "id");
            uint64_t num;
            char uuid[37];
            if (msg_qdrant_point_id(in, &num, uuid))
                CHECK(cJSON_IsNumber(pid) && pid->valuedouble == (double)num);
            else
                CHECK(cJSON_IsString(pid) && strcmp(pid->valuestring, uuid) == 0);
            const cJSON *vec = cJSON_GetObjectItemCaseSensitive(j, "vector");
            CHECK(cJSON_IsArray(vec) && cJSON_GetArraySize(vec) == d);
            const cJSON *pl = cJSON_GetObjectItemCaseSensitive(j, "payload");
            CHECK(cJSON_IsObject(pl));
            const cJSON *pi = cJSON_GetObjectItemCaseSensitive(pl, "id");
            if (in->id_kind == MSG_ID_STR)
                CHECK(cJSON_IsString(pi) && strcmp(pi->valuestring, in->id) == 0);
            else if (cJSON_IsString(pi))
                CHECK(strcmp(pi->valuestring, in->id) == 0 &&
                      fabs(strtod(in->id, NULL)) > 9007199254740992.0);
            else
                CHECK(cJSON_IsNumber(pi) && pi->valuedouble == strtod(in->id, NULL));
            CHECK(cJSON_GetObjectItemCaseSensitive(pl, "tokens")->valuedouble == 17);
            const cJSON *jm = cJSON_GetObjectItemCaseSensitive(pl, "meta");
            CHECK(!jm == !in->meta);
            if (jm) check_meta_json(jm, in, (const char *)b.data, b.len, "}}");
            cJSON_Delete(j);
        }
        check_floats_json((const char *)b.data, b.len, "vector", v, d);
    }
    msg_buf_free(&b);
}

/* Every input example, JSON and its msgpack twin: decode, compare with the
 * cJSON view of the file, round-trip all formats; the twin decodes to the
 * same fields, and its msgpack output equals the JSON one byte for byte
 * (the C JSON->msgpack meta conversion against the Python encoder). */
static void roundtrip_examples(void)
{
    char dir[1024], path[1400];
    DIR *dp = opendir(example_path(dir, sizeof dir, ""));
    CHECK(dp != NULL);
    if (!dp) return;
    struct dirent *de;
    int n = 0;
    while ((de = readdir(dp))) {
        size_t nl = strlen(de->d_name);
        if (strncmp(de->d_name, "input-", 6) != 0 || nl < 6 || strcmp(de->d_name + nl - 5, ".json"))
            continue;
        n++;
        size_t jl = 0, ml = 0;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        char *js = slurp(path, &jl);
        snprintf(path, sizeof path, "%s/msgpack/%.*s.msgpack", dir, (int)nl - 5, de->d_name);
        char *mp = slurp(path, &ml);
        CHECKF(js && mp, "%s: files", de->d_name);
        if (!js || !mp) continue;
        msg_input a, b;
        size_t a0 = g_allocs, ab0 = g_alloc_bytes;
        int ra = decode_ok(js, jl, NULL, &a, __LINE__);
        CHECKF(ra != 0 || (g_allocs - a0 == 1 && g_alloc_bytes - ab0 <= jl + 32),
               "%s: %zu allocations, %zu bytes", de->d_name, g_allocs - a0, g_alloc_bytes - ab0);
        int rb = decode_ok(mp, ml, NULL, &b, __LINE__);
        if (ra == 0 && rb == 0) {
            /* the cJSON view */
            cJSON *j = cJSON_ParseWithLength(js, jl);
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
            const cJSON *ins = cJSON_GetObjectItemCaseSensitive(j, "instruction");
            const cJSON *dim = cJSON_GetObjectItemCaseSensitive(j, "dimensions");
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
            CHECK(a.encoding == MSG_ENC_JSON && b.encoding == MSG_ENC_MSGPACK);
            CHECK(strlen(t->valuestring) == a.text_len &&
                  memcmp(t->valuestring, a.text, a.text_len) == 0);
            if (cJSON_IsString(ins) && ins->valuestring[0])
                CHECK(a.instruction && strcmp(ins->valuestring, a.instruction) == 0);
            else
                CHECK(a.instruction == NULL && a.instruction_len == 0);
            CHECK(a.dimensions == (cJSON_IsNumber(dim) ? dim->valueint : 0));
            if (cJSON_IsString(id))
                CHECK(a.id_kind == MSG_ID_STR && strcmp(id->valuestring, a.id) == 0);
            else
                CHECK(a.id_kind != MSG_ID_STR && strtod(a.id, NULL) == id->valuedouble);
            CHECK(!cJSON_GetObjectItemCaseSensitive(j, "meta") == !a.meta);
            cJSON_Delete(j);
            /* the twin */
            CHECK(a.id_kind == b.id_kind && a.id_len == b.id_len && !memcmp(a.id, b.id, a.id_len));
            CHECK(a.id_int == b.id_int && a.id_uint == b.id_uint);
            CHECK(a.text_len == b.text_len && !memcmp(a.text, b.text, a.text_len));
            CHECK(a.instruction_len == b.instruction_len &&
                  (!a.instruction || !memcmp(a.instruction, b.instruction, a.instruction_len)));
            CHECK(a.dimensions == b.dimensions && !a.meta == !b.meta);
            int d = a.dimensions ? a.dimensions : 48;
            float *v = malloc(sizeof(float) * (size_t)d);
            for (int i = 0; i < d; i++)
                v[i] = sinf((float)i * 0.37f) / (float)(i + 1);
            roundtrip_one(&a, v, d, de->d_name);
            roundtrip_one(&b, v, d, de->d_name);
            msg_buf ma = {0}, mb = {0};
            msg_error e;
            CHECK(msg_encode_msgpack(&a, "m", v, d, 1, false, &ma, &e) == 0);
            CHECK(msg_encode_msgpack(&b, "m", v, d, 1, false, &mb, &e) == 0);
            CHECKF(ma.len == mb.len && memcmp(ma.data, mb.data, ma.len) == 0,
                   "%s: msgpack output from JSON and from msgpack differ", de->d_name);
            /* Deterministic: the same again. */
            msg_buf mc = {0};
            CHECK(msg_encode_msgpack(&a, "m", v, d, 1, false, &mc, &e) == 0);
            CHECK(mc.len == ma.len && memcmp(mc.data, ma.data, ma.len) == 0);
            msg_buf_free(&ma);
            msg_buf_free(&mb);
            msg_buf_free(&mc);
            free(v);
        }
        if (ra == 0) msg_input_free(&a);
        if (rb == 0) msg_input_free(&b);
        free(js);
        free(mp);
    }
    closedir(dp);
    CHECKF(n >= 10, "only %d input examples", n);
}

/* Every invalid example is rejected with the code its name starts with. */
static void roundtrip_invalid_examples(void)
{
    char dir[1024], path[1400];
    DIR *dp = opendir(example_path(dir, sizeof dir, "invalid"));
    CHECK(dp != NULL);
    if (!dp) return;
    struct dirent *de;
    int n = 0;
    while ((de = readdir(dp))) {
        if (de->d_name[0] == '.') continue;
        char code[300];
        snprintf(code, sizeof code, "%s", de->d_name);
        *strchr(code, '.') = 0;
        msg_code want = MSG_E__COUNT;
        for (int c = 0; c < MSG_E__COUNT; c++)
            if (!strcmp(msg_code_name((msg_code)c), code)) want = (msg_code)c;
        CHECKF(want != MSG_E__COUNT, "%s: no such code", de->d_name);
        size_t len = 0;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        char *b = slurp(path, &len);
        expect_lim(b, len, &LIM, want, NULL, __LINE__);
        free(b);
        n++;
    }
    closedir(dp);
    CHECK(n >= 20);
}

static void roundtrip_id_kinds(void)
{
    struct {
        const char *json;
        msg_id_kind kind;
        const char *text;
    } t[] = {
        {"{\"id\":\"doc-1\",\"text\":\"x\"}", MSG_ID_STR, "doc-1"},
        {"{\"id\":-42,\"text\":\"x\"}", MSG_ID_INT, "-42"},
        {"{\"id\":-0,\"text\":\"x\"}", MSG_ID_UINT, "0"},
        {"{\"id\":0,\"text\":\"x\"}", MSG_ID_UINT, "0"},
        {"{\"id\":18446744073709551615,\"text\":\"x\"}", MSG_ID_UINT, "18446744073709551615"},
        {"{\"id\":-9223372036854775808,\"text\":\"x\"}", MSG_ID_INT, "-9223372036854775808"},
        {"{\"id\":\"a\\u0000b\",\"text\":\"x\"}", MSG_ID_STR, NULL},
    };
    float v[32];
    golden_vector(v, 32);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        msg_input in;
        if (DECODE_OK_S(t[i].json, &in) != 0) continue;
        CHECK(in.id_kind == t[i].kind);
        if (t[i].text)
            CHECK(strcmp(in.id, t[i].text) == 0 && in.id_len == strlen(t[i].text));
        else
            CHECK(in.id_len == 3 && memcmp(in.id, "a\0b", 3) == 0);
        roundtrip_one(&in, v, 32, t[i].json);
        if (!t[i].text) {
            msg_buf o = {0};
            msg_error e;
            CHECK(msg_encode_json(&in, "m", v, 32, 1, false, &o, &e) == 0);
            CHECK(o.len > 17 && memcmp(o.data, "{\"id\":\"a\\u0000b\",", 17) == 0);
            msg_buf_free(&o);
        }
        msg_input_free(&in);
    }
    /* msgpack integer encodings all normalize. */
    mpb b;
    for (int k = 0; k < 4; k++) {
        mpb_init(&b);
        msgpack_pack_map(&b.pk, 2);
        mpb_str(&b, "id");
        if (k == 0) msgpack_pack_int64(&b.pk, 5); /* int64 holding 5 */
        if (k == 1) msgpack_pack_uint64(&b.pk, UINT64_MAX);
        if (k == 2) msgpack_pack_int64(&b.pk, INT64_MIN);
        if (k == 3) mpb_raw(&b, "\xd0\xff", 2); /* int8 -1 */
        mpb_str(&b, "text");
        mpb_str(&b, "x");
        msg_input in;
        if (DECODE_OK(b.sb.data, b.sb.size, &in) == 0) {
            if (k == 0) CHECK(in.id_kind == MSG_ID_UINT && in.id_uint == 5 && !strcmp(in.id, "5"));
            if (k == 1) CHECK(in.id_kind == MSG_ID_UINT && in.id_uint == UINT64_MAX);
            if (k == 2) CHECK(in.id_kind == MSG_ID_INT && in.id_int == INT64_MIN);
            if (k == 3) CHECK(in.id_kind == MSG_ID_INT && in.id_int == -1 && !strcmp(in.id, "-1"));
            roundtrip_one(&in, v, 32, "msgpack int id");
            msg_input_free(&in);
        }
        mpb_free(&b);
    }
}

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 11;
}

/* Float formatting: special values and 20,000 random finite bit patterns. */
static void roundtrip_floats(void)
{
    msg_input in;
    if (DECODE_OK_S("{\"id\":1,\"text\":\"x\"}", &in) != 0) return;
    static const float special[] = {0.0f,
                                    -0.0f,
                                    1.0f,
                                    -1.0f,
                                    100.0f,
                                    1e10f,
                                    0.1f,
                                    1e-7f,
                                    1.40129846e-45f,
                                    -1.40129846e-45f,
                                    FLT_MIN,
                                    FLT_MAX,
                                    -FLT_MAX,
                                    16777216.0f,
                                    16777217.0f,
                                    123456789.0f,
                                    3.4028235e38f,
                                    0.333333343f,
                                    2.0f,
                                    1e-38f,
                                    9.99999944e-39f};
    int ns = (int)(sizeof special / sizeof special[0]);
    int d = 20000 + ns;
    float *v = malloc(sizeof(float) * (size_t)d);
    memcpy(v, special, sizeof special);
    uint64_t s = 42;
    for (int i = ns; i < d;) {
        uint32_t u = (uint32_t)lcg(&s);
        float f;
        memcpy(&f, &u, 4);
        if (isfinite(f)) v[i++] = f;
    }
    roundtrip_one(&in, v, d, "floats");
    msg_buf b = {0};
    msg_error e;
    CHECK(msg_encode_json(&in, "m", v, ns, 0, false, &b, &e) == 0);
    msg_buf_reserve(&b, 1);
    b.data[b.len] = 0;
    CHECKF(strstr((char *)b.data, "[0.0,-0.0,1.0,-1.0,100.0,1e+10,0.100000001,1.00000001e-07,"
                                  "1.40129846e-45,-1.40129846e-45,1.17549435e-38,"
                                  "3.40282347e+38,-3.40282347e+38,16777216.0,16777216.0,"
                                  "123456792.0,3.40282347e+38,0.333333343,2.0,"
                                  "9.99999935e-39,9.99999935e-39]"),
           "%s", (char *)b.data);
    msg_buf_free(&b);
    free(v);
    /* Byte-identical to "%.9g" (+ ".0"): every float32 power of ten and its
     * neighbours, and 10^6 random finite bit patterns (several million
     * values in the long run of the fuzz target too). */
    int n = 1000000 + 3 * 90;
    v = malloc(sizeof(float) * (size_t)n);
    int k = 0;
    for (int e = -45; e <= 38; e++) {
        char t[16];
        snprintf(t, sizeof t, "1e%d", e);
        float p = strtof(t, NULL);
        if (p == 0 || !isfinite(p)) continue;
        v[k++] = p;
        v[k++] = nextafterf(p, 0);
        v[k++] = nextafterf(p, INFINITY);
    }
    while (k < n) {
        uint32_t u = (uint32_t)lcg(&s);
        float f;
        memcpy(&f, &u, 4);
        if (isfinite(f)) v[k++] = f;
    }
    CHECK(msg_encode_json(&in, "m", v, n, 0, false, &b, &e) == 0);
    const char *p = strstr((const char *)b.data, "\"embedding\":[") + 13;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        char want[40];
        int wl = snprintf(want, sizeof want, "%.9g", (double)v[i]);
        if (!strchr(want, '.') && !strchr(want, 'e')) wl = (int)(stpcpy(want + wl, ".0") - want);
        const char *end = p + strcspn(p, ",]");
        if ((int)(end - p) != wl || memcmp(p, want, (size_t)wl) != 0) {
            if (bad++ < 5)
                fprintf(stderr, "float %a: got %.*s, want %s\n", (double)v[i], (int)(end - p), p,
                        want);
        }
        p = end + 1;
    }
    CHECKF(bad == 0, "%d of %d floats differ from %%.9g", bad, n);
    msg_buf_free(&b);
    free(v);
    msg_input_free(&in);
}

/* ---- meta --------------------------------------------------------------------------- */

static void meta_passthrough(void)
{
    float v[32];
    golden_vector(v, 32);
    /* msgpack meta with every type (bin, ext, float32, nested) -> msgpack:
     * byte-exact, including non-canonical encodings. */
    mpb b;
    mpb_base3(&b);
    mpb_str(&b, "meta");
    msgpack_pack_map(&b.pk, 6);
    mpb_str(&b, "bin");
    msgpack_pack_bin(&b.pk, 3);
    msgpack_pack_bin_body(&b.pk, "\x00\x01\xff", 3);
    mpb_str(&b, "ext");
    msgpack_pack_ext(&b.pk, 2, -1);
    msgpack_pack_ext_body(&b.pk, "\x01\x02", 2);
    mpb_str(&b, "f32");
    msgpack_pack_float(&b.pk, 1.5f);
    mpb_str(&b, "u8");
    mpb_raw(&b, "\xcc\x05", 2); /* 5 as uint8: not canonical, kept */
    msgpack_pack_int(&b.pk, 9); /* integer key */
    msgpack_pack_array(&b.pk, 2);
    msgpack_pack_nil(&b.pk);
    msgpack_pack_true(&b.pk);
    mpb_str(&b, "bad utf8");
    mpb_str(&b, "\xff\xfe");
    msg_input in;
    if (DECODE_OK(b.sb.data, b.sb.size, &in) == 0) {
        CHECK(in.meta_encoding == MSG_ENC_MSGPACK && in.meta_len == b.sb.size - 22);
        CHECK(memcmp(in.meta, b.sb.data + 22, in.meta_len) == 0);
        msg_buf out = {0};
        msg_error e;
        CHECK(msg_encode_msgpack(&in, "m", v, 32, 1, false, &out, &e) == 0);
        CHECK(out.len > in.meta_len &&
              memcmp(out.data + out.len - in.meta_len, in.meta, in.meta_len) == 0);
        msg_buf_free(&out);
        msg_input_free(&in);
    }
    mpb_free(&b);
    /* JSON meta with whitespace, escapes, big numbers -> JSON: byte-exact. */
    const char *raw = "{ \"a\" : [1, 2.50, 1e400, -0, 123456789012345678901234567890],\n"
                      "  \"s\": \"\\u00e9\\n\\/\" , \"t\":true }";
    char m[512];
    snprintf(m, sizeof m, "{\"id\":\"a\",\"text\":\"b\",\"meta\":%s}", raw);
    msg_limits lj = LIM;
    lj.out_format = MSG_FMT_JSON;
    if (decode_ok(m, strlen(m), &lj, &in, __LINE__) == 0) {
        CHECK(in.meta_len == strlen(raw) && memcmp(in.meta, raw, in.meta_len) == 0);
        msg_buf out = {0};
        msg_error e;
        CHECK(msg_encode_json(&in, "m", v, 32, 1, false, &out, &e) == 0);
        CHECK(out.len > strlen(raw) + 1 &&
              memcmp(out.data + out.len - strlen(raw) - 1, raw, strlen(raw)) == 0);
        msg_buf_free(&out);
        CHECK(msg_encode_qdrant(&in, "c", "m", v, 32, 1, false, &out, &e) == 0);
        CHECK(memcmp(out.data + out.len - strlen(raw) - 2, raw, strlen(raw)) == 0);
        msg_buf_free(&out);
        msg_input_free(&in);
    }
}

/* Conversions between encodings, checked value by value. */
static void meta_convert(void)
{
    float v[32];
    golden_vector(v, 32);
    msg_error e;
    /* msgpack -> JSON */
    mpb b;
    mpb_base3(&b);
    mpb_str(&b, "meta");
    msgpack_pack_map(&b.pk, 8);
    mpb_str(&b, "bin");
    msgpack_pack_bin(&b.pk, 5);
    msgpack_pack_bin_body(&b.pk, "\x00\xfb\xff\x10\x20", 5);
    mpb_str(&b, "f32");
    msgpack_pack_float(&b.pk, 0.1f);
    mpb_str(&b, "f64");
    msgpack_pack_double(&b.pk, 0.1);
    mpb_str(&b, "whole");
    msgpack_pack_double(&b.pk, 3.0);
    mpb_str(&b, "u64");
    msgpack_pack_uint64(&b.pk, UINT64_MAX);
    mpb_str(&b, "i64");
    msgpack_pack_int64(&b.pk, INT64_MIN);
    mpb_str(&b, "esc\"\n\x01");
    mpb_strn(&b, "a\0b", 3);
    mpb_str(&b, "arr");
    msgpack_pack_array(&b.pk, 0);
    msg_input in;
    msg_limits lj = LIM;
    lj.out_format = MSG_FMT_JSON;
    if (decode_ok(b.sb.data, b.sb.size, &lj, &in, __LINE__) == 0) {
        msg_buf out = {0};
        CHECK(msg_encode_json(&in, "m", v, 32, 1, false, &out, &e) == 0);
        msg_buf_reserve(&out, 1);
        out.data[out.len] = 0;
        const char *want = ",\"meta\":{\"bin\":\"APv/ECA=\",\"f32\":0.100000001,"
                           "\"f64\":0.10000000000000001,\"whole\":3.0,"
                           "\"u64\":18446744073709551615,\"i64\":-9223372036854775808,"
                           "\"esc\\\"\\n\\u0001\":\"a\\u0000b\",\"arr\":[]}}";
        CHECKF(strstr((char *)out.data, want) != NULL, "%s", (char *)out.data);
        roundtrip_one(&in, v, 32, "msgpack meta -> json");
        msg_buf_free(&out);
        msg_input_free(&in);
    }
    mpb_free(&b);
    /* JSON -> msgpack, against values packed by msgpack-c */
    const char *m = "{\"id\":\"a\",\"text\":\"b\",\"meta\":{\"u\":18446744073709551615,"
                    "\"i\":-9223372036854775808,\"big\":18446744073709551616,\"f\":0.5,"
                    "\"z\":-0,\"s\":\"\\u00e9\\ud83d\\ude00\\u0000\",\"n\":null,"
                    "\"a\":[true,false,{}],\"e\":1E2}}";
    if (DECODE_OK_S(m, &in) == 0) {
        msg_buf out = {0};
        CHECK(msg_encode_msgpack(&in, "m", v, 32, 1, false, &out, &e) == 0);
        mpb_init(&b);
        msgpack_pack_map(&b.pk, 9);
        mpb_str(&b, "u");
        msgpack_pack_uint64(&b.pk, UINT64_MAX);
        mpb_str(&b, "i");
        msgpack_pack_int64(&b.pk, INT64_MIN);
        mpb_str(&b, "big");
        msgpack_pack_double(&b.pk, 18446744073709551616.0);
        mpb_str(&b, "f");
        msgpack_pack_double(&b.pk, 0.5);
        mpb_str(&b, "z");
        msgpack_pack_int(&b.pk, 0);
        mpb_str(&b, "s");
        mpb_strn(&b, "\xc3\xa9\xf0\x9f\x98\x80\0", 7);
        mpb_str(&b, "n");
        msgpack_pack_nil(&b.pk);
        mpb_str(&b, "a");
        msgpack_pack_array(&b.pk, 3);
        msgpack_pack_true(&b.pk);
        msgpack_pack_false(&b.pk);
        msgpack_pack_map(&b.pk, 0);
        mpb_str(&b, "e");
        msgpack_pack_double(&b.pk, 100.0);
        CHECK(out.len > b.sb.size &&
              memcmp(out.data + out.len - b.sb.size, b.sb.data, b.sb.size) == 0);
        mpb_free(&b);
        msg_buf_free(&out);
        msg_input_free(&in);
    }
}

/* ---- qdrant ids --------------------------------------------------------------------- */

static void qdrant_one(const char *json, int want_num, uint64_t num, const char *uuid)
{
    msg_input in;
    if (DECODE_OK_S(json, &in) != 0) return;
    uint64_t n = 0;
    char u[37] = "";
    int r = msg_qdrant_point_id(&in, &n, u);
    CHECKF(r == want_num, "%s: numeric %d", json, r);
    if (want_num)
        CHECKF(n == num, "%s: %llu", json, (unsigned long long)n);
    else
        CHECKF(strcmp(u, uuid) == 0, "%s: %s, want %s", json, u, uuid);
    msg_input_free(&in);
}

static void qdrant_ids(void)
{
    /* Known answers from Python (independent of msg.c's SHA-1):
     *   python3 -c "import uuid; print(uuid.uuid5(uuid.NAMESPACE_URL, 'embedq:qdrant-point-id'))"
     *     -> 183a4d25-16f9-5144-9bf3-15d42236d65d  (MSG_UUID_NAMESPACE)
     *   python3 -c "import uuid; ns = uuid.UUID('183a4d25-16f9-5144-9bf3-15d42236d65d');
     *               print(uuid.uuid5(ns, NAME))"
     *   for each NAME below. */
    uint8_t url_ns[16] = {0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
                          0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};
    char u[37];
    msg_uuid5(url_ns, "embedq:qdrant-point-id", 22, u);
    CHECK(strcmp(u, MSG_UUID_NAMESPACE) == 0);

    qdrant_one("{\"id\":42,\"text\":\"x\"}", 1, 42, NULL);
    qdrant_one("{\"id\":0,\"text\":\"x\"}", 1, 0, NULL);
    qdrant_one("{\"id\":9007199254740992,\"text\":\"x\"}", 1, UINT64_C(9007199254740992), NULL);
    qdrant_one("{\"id\":9007199254740993,\"text\":\"x\"}", 0, 0,
               "d39876a2-babd-58b0-ba2e-755e38078376");
    qdrant_one("{\"id\":18446744073709551615,\"text\":\"x\"}", 0, 0,
               "0f1623c3-876f-59e8-993c-0f6a968bf70f");
    qdrant_one("{\"id\":-42,\"text\":\"x\"}", 0, 0, "1e2427a2-ae25-5184-803a-76bea46ecea7");
    qdrant_one("{\"id\":\"doc-1#chunk-0\",\"text\":\"x\"}", 0, 0,
               "e67ee751-16d5-53b2-8bfb-b3bb7ff1527d");
    qdrant_one("{\"id\":\"h\\u00e9llo\",\"text\":\"x\"}", 0, 0,
               "c571f983-c27b-586e-bdf5-6ab2c106fa09");
    qdrant_one("{\"id\":\"-42\",\"text\":\"x\"}", 0, 0, "1e2427a2-ae25-5184-803a-76bea46ecea7");
    /* UUID strings: normalized to lowercase; other spellings are names. */
    qdrant_one("{\"id\":\"550E8400-E29B-41D4-A716-446655440000\",\"text\":\"x\"}", 0, 0,
               "550e8400-e29b-41d4-a716-446655440000");
    qdrant_one("{\"id\":\"550e8400-e29b-41d4-a716-446655440000\",\"text\":\"x\"}", 0, 0,
               "550e8400-e29b-41d4-a716-446655440000");
    qdrant_one("{\"id\":\"{550e8400-e29b-41d4-a716-446655440000}\",\"text\":\"x\"}", 0, 0,
               "7cb3bb66-9a05-5d6c-acb4-4090f6bf2b31");
    qdrant_one("{\"id\":\"550e8400e29b41d4a716446655440000\",\"text\":\"x\"}", 0, 0,
               "f29ca4cb-2e59-591e-984c-46654dfe3922");
    /* SHA-1 padding boundaries (16-byte namespace + name = 55, 56, 64, 119, 120 bytes). */
    static const struct {
        int n;
        const char *u;
    } pad[] = {{39, "4792e360-2fb3-510f-88f0-efebbf5a458c"},
               {40, "a65bad8e-042d-5626-bd02-e372cd277636"},
               {48, "7cff41ff-947f-5643-ad9c-355eb3ba9269"},
               {103, "5e04db94-6278-550d-a523-eedecf64b551"},
               {104, "29d37137-3e4a-5868-9ea5-d6e4c206a37c"},
               {1000, "7f0e52cf-0da8-5a7a-b20d-d7e502ba7a6e"}};
    uint8_t ns[16] = {0x18, 0x3a, 0x4d, 0x25, 0x16, 0xf9, 0x51, 0x44,
                      0x9b, 0xf3, 0x15, 0xd4, 0x22, 0x36, 0xd6, 0x5d};
    char name[1000];
    memset(name, 'a', sizeof name);
    for (size_t i = 0; i < sizeof pad / sizeof pad[0]; i++) {
        if (pad[i].n == 1000) memset(name, 'x', sizeof name);
        msg_uuid5(ns, name, (size_t)pad[i].n, u);
        CHECKF(strcmp(u, pad[i].u) == 0, "uuid5('a'*%d) = %s", pad[i].n, u);
    }
    /* payload.id of a big integer is its decimal string */
    msg_input in;
    if (DECODE_OK_S("{\"id\":-9007199254740993,\"text\":\"x\"}", &in) == 0) {
        msg_buf out = {0};
        msg_error e;
        float v[32];
        golden_vector(v, 32);
        CHECK(msg_encode_qdrant(&in, "c", "m", v, 32, 1, false, &out, &e) == 0);
        msg_buf_reserve(&out, 1);
        out.data[out.len] = 0;
        CHECK(strstr((char *)out.data, "\"id\":\"31ee1098-648b-50ef-aae0-7d6f51959a50\""));
        CHECK(strstr((char *)out.data, "\"payload\":{\"id\":\"-9007199254740993\""));
        msg_buf_free(&out);
        msg_input_free(&in);
    }
}

/* ---- goldens ------------------------------------------------------------------------ */

/* output-[qdrant-|pgvector-]NAME.{json,msgpack} == encoding of input-NAME.json with
 * the golden vector (msg_golden.h), byte for byte. */
static void golden_outputs(void)
{
    char dir[1024], path[1400];
    DIR *dp = opendir(example_path(dir, sizeof dir, ""));
    if (!dp) return;
    struct dirent *de;
    int n = 0;
    while ((de = readdir(dp))) {
        const char *f = de->d_name;
        if (strncmp(f, "output-", 7) != 0) continue;
        bool qd = strncmp(f, "output-qdrant-", 14) == 0;
        bool pg = strncmp(f, "output-pgvector-", 16) == 0;
        const char *name = f + (qd ? 14 : pg ? 16 : 7), *dot = strrchr(f, '.');
        bool mp = !strcmp(dot, ".msgpack");
        snprintf(path, sizeof path, "%s/input-%.*s.json", dir, (int)(dot - name), name);
        size_t il = 0, gl = 0;
        char *ib = slurp(path, &il);
        snprintf(path, sizeof path, "%s/%s", dir, f);
        char *gb = slurp(path, &gl);
        CHECKF(ib && gb, "%s: no input for it", f);
        msg_input in;
        if (ib && gb && DECODE_OK(ib, il, &in) == 0) {
            int d = in.dimensions ? in.dimensions : GOLDEN_DIMS;
            float v[4096];
            golden_vector(v, d);
            msg_buf out = {0};
            msg_error e;
            if (qd)
                msg_encode_qdrant(&in, GOLDEN_COLLECTION, GOLDEN_MODEL, v, d, GOLDEN_TOKENS, false,
                                  &out, &e);
            else if (pg)
                msg_encode_pgvector(&in, GOLDEN_MODEL, v, d, GOLDEN_TOKENS, false, &out, &e);
            else if (mp)
                msg_encode_msgpack(&in, GOLDEN_MODEL, v, d, GOLDEN_TOKENS, false, &out, &e);
            else
                msg_encode_json(&in, GOLDEN_MODEL, v, d, GOLDEN_TOKENS, false, &out, &e);
            CHECKF(out.len == gl && memcmp(out.data, gb, gl) == 0,
                   "%s differs from the encoder's output (%zu vs %zu bytes)", f, gl, out.len);
            msg_buf_free(&out);
            msg_input_free(&in);
            n++;
        }
        free(ib);
        free(gb);
    }
    closedir(dp);
    CHECK(n >= 5);
}

/* ---- Redis fields --------------------------------------------------------------------- */

static int fields(msg_input *in, msg_error *e, int n, ...)
{
    const char *names[16], *values[16];
    size_t nl[16], vl[16];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        names[i] = va_arg(ap, const char *);
        values[i] = va_arg(ap, const char *);
        nl[i] = strlen(names[i]);
        vl[i] = strlen(values[i]);
    }
    va_end(ap);
    return msg_decode_fields(names, nl, values, vl, n, &LIM, in, e);
}

static void fields_decode(void)
{
    msg_input in;
    msg_error e;
    /* plain fields */
    CHECK(fields(&in, &e, 4, "id", "42", "text", "hello", "dimensions", "0256", "x", "y") == 0);
    CHECK(in.encoding == MSG_ENC_FIELDS && in.id_kind == MSG_ID_STR && !strcmp(in.id, "42"));
    CHECK(in.text_len == 5 && !strcmp(in.text, "hello") && in.dimensions == 256);
    CHECK(in.instruction == NULL && in.meta == NULL);
    msg_input_free(&in);
    CHECK(fields(&in, &e, 3, "text", "t", "instruction", "find", "id", "i") == 0);
    CHECK(in.instruction_len == 4 && !strcmp(in.instruction, "find"));
    msg_input_free(&in);
    CHECK(fields(&in, &e, 3, "text", "t", "instruction", "", "id", "i") == 0);
    CHECK(in.instruction == NULL);
    msg_input_free(&in);
    /* data takes precedence over plain fields (which may then even repeat) */
    CHECK(fields(&in, &e, 4, "id", "plain", "data", "{\"id\":7,\"text\":\"from data\"}", "text",
                 "plain", "id", "again") == 0);
    CHECK(in.encoding == MSG_ENC_JSON && in.id_kind == MSG_ID_UINT &&
          !strcmp(in.text, "from data"));
    msg_input_free(&in);
    /* binary data (msgpack with NULs) through the length-based API */
    const char mp[] = "\x82\xa2id\x00\xa4text\xa1x";
    const char *nm[] = {"data"}, *vv[] = {mp};
    size_t nl[] = {4}, vl[] = {sizeof mp - 1};
    CHECK(msg_decode_fields(nm, nl, vv, vl, 1, &LIM, &in, &e) == 0);
    CHECK(in.id_kind == MSG_ID_UINT && in.id_uint == 0);
    msg_input_free(&in);
    /* errors */
    struct {
        int rc;
        msg_code code;
        const char *detail;
    } r[16];
    int k = 0;
#define FE(code_, detail_, ...)                                                                    \
    do {                                                                                           \
        r[k].rc = fields(&in, &e, __VA_ARGS__);                                                    \
        CHECKF(r[k].rc == -1 && e.code == code_ && strstr(e.detail, detail_), "%s: %s",            \
               msg_code_name(e.code), e.detail);                                                   \
        k++;                                                                                       \
    } while (0)
    FE(MSG_E_MISSING_ID, "no \"id\" field", 1, "text", "t");
    FE(MSG_E_MISSING_TEXT, "no \"text\" field", 1, "id", "a");
    FE(MSG_E_EMPTY_ID, "id is an empty string", 2, "id", "", "text", "t");
    FE(MSG_E_EMPTY_TEXT, "text is an empty string", 2, "id", "a", "text", "");
    FE(MSG_E_INVALID_UTF8, "text: invalid UTF-8 at byte 2", 2, "id", "a", "text", "ab\xff");
    FE(MSG_E_DIMENSIONS_WRONG_TYPE, "dimensions \"25x\" is not a decimal integer", 3, "id", "a",
       "text", "t", "dimensions", "25x");
    FE(MSG_E_DIMENSIONS_WRONG_TYPE, "dimensions \"\" is not", 3, "id", "a", "text", "t",
       "dimensions", "");
    FE(MSG_E_DIMENSIONS_WRONG_TYPE, "is not a decimal", 3, "id", "a", "text", "t", "dimensions",
       " 256");
    FE(MSG_E_DIMENSIONS_OUT_OF_RANGE, "dimensions 4096 outside 32..1024", 3, "id", "a", "text", "t",
       "dimensions", "4096");
    FE(MSG_E_DIMENSIONS_OUT_OF_RANGE, "dimensions 99999999999999999999 outside", 3, "id", "a",
       "text", "t", "dimensions", "99999999999999999999");
    FE(MSG_E_DUPLICATE_KEY, "field \"id\" appears more than once", 3, "id", "a", "text", "t", "id",
       "b");
    FE(MSG_E_MALFORMED_JSON, "", 1, "data", "{nope");
    FE(MSG_E_DUPLICATE_KEY, "field \"data\" appears more than once", 3, "data", "{}", "id", "a",
       "data", "{}");
#undef FE
    CHECK(msg_decode_fields(NULL, NULL, NULL, NULL, 0, &LIM, &in, &e) == -1 &&
          e.code == MSG_E_EMPTY_MESSAGE);
    msg_limits l = LIM;
    l.max_bytes = 4;
    const char *n2[] = {"id", "text"}, *v2[] = {"abc", "de"};
    size_t l2[] = {2, 4}, w2[] = {3, 2};
    CHECK(msg_decode_fields(n2, l2, v2, w2, 2, &l, &in, &e) == -1 && e.code == MSG_E_TOO_LARGE);
}

/* ---- misc ------------------------------------------------------------------------------- */

static void misc_output_key(void)
{
    msg_input in;
    msg_buf k = {0};
    msg_error e;
    if (DECODE_OK_S("{\"id\":-7,\"text\":\"x\"}", &in) == 0) {
        CHECK(msg_output_key(&in, "rec-key", 7, &k, &e) == 0 && k.len == 7 &&
              !memcmp(k.data, "rec-key", 7));
        msg_buf_free(&k);
        CHECK(msg_output_key(&in, "", 0, &k, &e) == 0 && k.len == 2 && !memcmp(k.data, "-7", 2));
        msg_buf_free(&k);
        CHECK(msg_output_key(&in, NULL, 0, &k, &e) == 0 && k.len == 2);
        msg_buf_free(&k);
        msg_input_free(&in);
    }
    if (DECODE_OK_S("{\"id\":\"doc\\u0000x\",\"text\":\"x\"}", &in) == 0) {
        CHECK(msg_output_key(&in, NULL, 0, &k, &e) == 0 && k.len == 5 &&
              !memcmp(k.data, "doc\0x", 5));
        msg_buf_free(&k);
        msg_input_free(&in);
    }
}

static void misc_error_format(void)
{
    msg_error e = {MSG_E_INVALID_UTF8, "text: invalid UTF-8 at byte 17"};
    char r[MSG_REASON_LEN];
    CHECK(msg_error_format(&e, r, sizeof r) ==
          strlen("invalid_utf8: text: invalid UTF-8 at byte 17"));
    CHECK(!strcmp(r, "invalid_utf8: text: invalid UTF-8 at byte 17"));
    char small[8];
    CHECK(msg_error_format(&e, small, sizeof small) > 7 && !strcmp(small, "invalid"));
    msg_error z = {MSG_E_INTERNAL, ""};
    msg_error_format(&z, r, sizeof r);
    CHECK(!strcmp(r, "internal"));
    /* details are printable ASCII even with hostile input */
    msg_error_set(&e, MSG_E_DIMENSIONS_WRONG_TYPE, "x\n\xff\x01y");
    CHECK(!strcmp(e.detail, "x???y"));
    CHECK(!strcmp(msg_code_name((msg_code)999), "unknown"));
    CHECK(!strcmp(msg_error_code_static(&e), "dimensions_wrong_type"));
    /* Every code is documented in schemas/README.md as `code`. */
    char path[1400];
    snprintf(path, sizeof path, "%s/../README.md", g_dir);
    size_t len = 0;
    char *readme = slurp(path, &len);
    CHECK(readme != NULL);
    for (int c = 1; readme && c < MSG_E__COUNT; c++) {
        char pat[64];
        snprintf(pat, sizeof pat, "| `%s` |", msg_code_name((msg_code)c));
        CHECKF(strstr(readme, pat) != NULL, "README.md lacks a row %s", pat);
    }
    free(readme);
}

static void misc_lengths_and_nul(void)
{
    /* text with NUL bytes keeps its length; strings are NUL-terminated too */
    mpb b;
    mpb_init(&b);
    msgpack_pack_map(&b.pk, 3);
    mpb_str(&b, "id");
    mpb_strn(&b, "i\0d", 3);
    mpb_str(&b, "text");
    mpb_strn(&b, "a\0b\0", 4);
    mpb_str(&b, "instruction");
    mpb_str(&b, "q");
    msg_input in;
    if (DECODE_OK(b.sb.data, b.sb.size, &in) == 0) {
        CHECK(in.id_len == 3 && in.text_len == 4 && !memcmp(in.text, "a\0b\0", 5));
        CHECK(in.instruction_len == 1 && in.instruction[1] == 0);
        msg_input_free(&in);
        msg_input_free(&in); /* twice is fine */
    }
    mpb_free(&b);
    /* a buffer without terminator, exactly sized: ASan checks we stay inside */
    const char *s = "{\"id\":\"a\",\"text\":\"b\",\"meta\":12345}";
    size_t n = strlen(s);
    char *exact = malloc(n);
    memcpy(exact, s, n);
    msg_limits lm = LIM;
    if (decode_ok(exact, n, &lm, &in, __LINE__) == 0) {
        msg_buf out = {0};
        msg_error e;
        float v[32];
        golden_vector(v, 32);
        CHECK(msg_encode_msgpack(&in, "m", v, 32, 1, false, &out, &e) == 0);
        CHECK(out.data[out.len - 3] == 0xcd && out.data[out.len - 1] == 0x39); /* uint16 12345 */
        msg_buf_free(&out);
        msg_input_free(&in);
    }
    free(exact);
    /* Whitespace around the object; unknown keys of every type. */
    CHECK(DECODE_OK_S(" \r\n\t{ \"z\" : [ {\"q\":[]} , -1.5e-3 , \"\\\"\" ] , \"id\" : 1 , "
                      "\"text\" : \"x\" }\n ",
                      &in) == 0);
    msg_input_free(&in);
    /* NULL err is allowed */
    CHECK(msg_decode("{}", 2, NULL, &in, NULL) == -1);
}

/* msg_json_string_list (the API's `input`): strings decoded as the queue
 * decodes text, U+0000 kept, invalid UTF-8 reported per element. */
static void misc_json_string_list(void)
{
    msg_json_str *v;
    msg_error e;
    const char *one = "{\"model\":\"m\",\"input\":\"a\\u0000b\"}";
    CHECK(msg_json_string_list(one, strlen(one), "input", 0, &v, &e) == 1);
    if (v) {
        CHECK(v[0].len == 3 && !memcmp(v[0].s, "a\0b", 4) && v[0].bad == SIZE_MAX);
        free(v);
    }
    const char *arr = "{\"input\":[\"x\", \"\\u00e9\\n\",\"\", \"ok\xc3\x28\"],\"n\":[1,{\"a\":[]}]}";
    CHECK(msg_json_string_list(arr, strlen(arr), "input", 0, &v, &e) == 4);
    if (v) {
        CHECK(v[0].len == 1 && !strcmp(v[0].s, "x"));
        CHECK(v[1].len == 3 && !strcmp(v[1].s, "\xc3\xa9\n") && v[1].bad == SIZE_MAX);
        CHECK(v[2].len == 0 && v[2].s[0] == 0);
        CHECK(v[3].len == 4 && v[3].bad == 2); /* the decoded offset */
        free(v);
    }
    /* not a list of strings, absent, null, empty: 0 and nothing allocated */
    static const char *const zero[] = {"{\"input\":[\"a\",1]}", "{\"input\":[[1,2]]}",
                                       "{\"input\":5}",         "{\"other\":\"a\"}",
                                       "{\"input\":null}",      "{\"input\":[]}"};
    for (size_t i = 0; i < sizeof zero / sizeof zero[0]; i++) {
        v = (msg_json_str *)1;
        CHECKF(msg_json_string_list(zero[i], strlen(zero[i]), "input", 0, &v, &e) == 0 && !v,
               "%s", zero[i]);
    }
    /* malformed, repeated, too deep: -1 with the reason */
    const char *dup = "{\"input\":\"a\",\"input\":[\"b\"]}";
    CHECK(msg_json_string_list(dup, strlen(dup), "input", 0, &v, &e) == -1 &&
          e.code == MSG_E_DUPLICATE_KEY);
    const char *bad = "{\"input\":[\"a\",]}";
    CHECK(msg_json_string_list(bad, strlen(bad), "input", 0, &v, &e) == -1 &&
          e.code == MSG_E_MALFORMED_JSON);
    const char *deep = "{\"input\":[\"a\"],\"x\":[[[[1]]]]}";
    CHECK(msg_json_string_list(deep, strlen(deep), "input", 4, &v, &e) == -1 &&
          e.code == MSG_E_TOO_DEEP);
    CHECK(msg_json_string_list(deep, strlen(deep), "input", 5, &v, &e) == 1);
    free(v);
    /* elements of a lenient array are still one level down */
    const char *deep2 = "{\"input\":[\"a\",[[1]]]}";
    CHECK(msg_json_string_list(deep2, strlen(deep2), "input", 3, &v, &e) == -1 &&
          e.code == MSG_E_TOO_DEEP);
    CHECK(msg_json_string_list(deep2, strlen(deep2), "input", 4, &v, &e) == 0);
    /* an exactly sized buffer (ASan: no read past its end) */
    size_t n = strlen(arr);
    char *exact = malloc(n);
    memcpy(exact, arr, n);
    CHECK(msg_json_string_list(exact, n, "input", 0, &v, &e) == 4);
    free(v);
    free(exact);
}

/* ---- main --------------------------------------------------------------------------------- */

#define T(fn)                                                                                      \
    {                                                                                              \
#fn, fn                                                                                    \
    }
static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    T(bad_too_large),
    T(bad_empty_message),
    T(bad_malformed_msgpack),
    T(bad_malformed_json),
    T(bad_too_deep),
    T(bad_not_a_map),
    T(bad_duplicate_key),
    T(bad_missing_id),
    T(bad_id_wrong_type),
    T(bad_id_out_of_range),
    T(bad_empty_id),
    T(bad_missing_text),
    T(bad_text_wrong_type),
    T(bad_empty_text),
    T(bad_invalid_utf8),
    T(bad_instruction_wrong_type),
    T(bad_dimensions_wrong_type),
    T(bad_dimensions_out_of_range),
    T(bad_meta_too_large),
    T(bad_meta_unconvertible),
    T(bad_pipeline_codes),
    T(hostile_declared_lengths),
    T(hostile_deep_msgpack),
    T(hostile_deep_json),
    T(hostile_wide),
    T(roundtrip_examples),
    T(roundtrip_invalid_examples),
    T(roundtrip_id_kinds),
    T(roundtrip_floats),
    T(meta_passthrough),
    T(meta_convert),
    T(qdrant_ids),
    T(golden_outputs),
    T(fields_decode),
    T(misc_output_key),
    T(misc_error_format),
    T(misc_lengths_and_nul),
    T(misc_json_string_list),
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: msg_test SCHEMAS_V1_DIR [NAME_PREFIX]\n");
        return 2;
    }
    g_dir = argv[1];
    const char *prefix = argc > 2 ? argv[2] : "";
    int ran = 0, failed = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (strncmp(tests[i].name, prefix, strlen(prefix)) != 0) continue;
        g_test = tests[i].name;
        g_test_failed = 0;
        double t0 = now_s();
        tests[i].fn();
        printf("%-32s %s (%.3f s)\n", g_test, g_test_failed ? "FAIL" : "ok", now_s() - t0);
        ran++;
        failed += g_test_failed;
    }
    printf("%d checks, %d failed; %d tests\n", g_checks, g_fail, ran);
    printf("%d passed, %d failed\n", ran - failed, failed);
    return failed || ran == 0 ? 1 : 0;
}
