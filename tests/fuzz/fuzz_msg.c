/* fuzz_msg.c - libFuzzer target for the worker's message formats
 * (worker/msg.c, schemas/README.md).
 *
 * Every input is also read with msg_json_string_list (string_list below).
 * Every input is decoded three ways: msg_decode for msgpack output, for
 * JSON output, and as a Redis entry (the bytes split at NULs into
 * name/value pairs, msg_decode_fields). Each decoded message is re-encoded
 * in all three formats and checked:
 *   - msg.h's promises: a failure leaves a zeroed input and a known code
 *     with a printable detail; a success has a non-empty id and text,
 *     NUL-terminated, dimensions 0 or in range, and decodes the same twice;
 *   - an encoder succeeds whenever the decode was told that format;
 *   - oracles: msgpack-c parses the msgpack output completely (when it
 *     nests at most 32 levels, msgpack-c's own limit), cJSON the JSON and
 *     qdrant outputs, and the float32 values read back exactly;
 *   - msg_decode reads every output back as well-formed (it stops at the
 *     missing text: missing_text or, for qdrant's deeper meta, too_deep).
 * A violation aborts (a finding).
 *
 * Built as a fuzzer with -DEMBEDQ_FUZZ=ON and clang (target fuzz_msg, ctest
 * fuzz.msg.run), and in every build as a replay driver over corpus_msg/
 * (fuzz_replay.c, ctest fuzz.msg.replay).
 */
#include <cjson/cJSON.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

#define FZ_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const msg_limits base = {1 << 20, 64, 1024, 4096, MSG_FMT_MSGPACK};

static void check_error(int rc, const msg_input *in, const msg_error *e)
{
    FZ_ASSERT(rc == -1);
    FZ_ASSERT(e->code > MSG_OK && e->code < MSG_E__COUNT);
    FZ_ASSERT(e->code < MSG_E_TEXT_TOO_LONG); /* the decoder's own codes */
    const char *z = memchr(e->detail, 0, sizeof e->detail);
    FZ_ASSERT(z != NULL);
    for (const char *p = e->detail; p < z; p++)
        FZ_ASSERT(*p >= 0x20 && *p < 0x7f);
    FZ_ASSERT(in->block_ == NULL && in->id == NULL && in->text == NULL && in->meta == NULL);
    char r[MSG_REASON_LEN];
    FZ_ASSERT(msg_error_format(e, r, sizeof r) < sizeof r);
}

static void check_input(const msg_input *in)
{
    FZ_ASSERT(in->id && in->id_len > 0 && in->id[in->id_len] == 0);
    FZ_ASSERT(in->text && in->text_len > 0 && in->text[in->text_len] == 0);
    FZ_ASSERT(!in->instruction ||
              (in->instruction_len > 0 && in->instruction[in->instruction_len] == 0));
    FZ_ASSERT(in->instruction || in->instruction_len == 0);
    FZ_ASSERT(in->dimensions == 0 || (in->dimensions >= 32 && in->dimensions <= 1024));
    FZ_ASSERT(!in->meta || in->meta_len <= 4096);
    FZ_ASSERT(in->id_kind == MSG_ID_STR || in->id_kind == MSG_ID_INT || in->id_kind == MSG_ID_UINT);
    if (in->id_kind == MSG_ID_INT) FZ_ASSERT(in->id_int < 0);
}

static bool same_input(const msg_input *a, const msg_input *b)
{
    return a->id_kind == b->id_kind && a->id_len == b->id_len && !memcmp(a->id, b->id, a->id_len) &&
           a->text_len == b->text_len && !memcmp(a->text, b->text, a->text_len) &&
           a->instruction_len == b->instruction_len &&
           (!a->instruction || !memcmp(a->instruction, b->instruction, a->instruction_len)) &&
           a->dimensions == b->dimensions && a->meta_len == b->meta_len &&
           (!a->meta || !memcmp(a->meta, b->meta, a->meta_len));
}

/* The output reads back as well-formed; only the missing text stops it. */
static void reread(const msg_buf *b)
{
    msg_limits l = base;
    l.max_depth = 70;
    l.max_meta_bytes = 1 << 20;
    msg_input in;
    msg_error e;
    int rc = msg_decode(b->data, b->len, &l, &in, &e);
    FZ_ASSERT(rc == -1);
    FZ_ASSERT(e.code == MSG_E_MISSING_TEXT || e.code == MSG_E_TOO_DEEP);
}

static void check_json_floats(const cJSON *arr, const float *v, int d)
{
    FZ_ASSERT(cJSON_IsArray(arr) && cJSON_GetArraySize(arr) == d);
    int i = 0;
    for (const cJSON *x = arr->child; x; x = x->next, i++) {
        float f = (float)x->valuedouble;
        FZ_ASSERT(memcmp(&f, &v[i], 4) == 0);
    }
}

/* Format pgvector: valid JSON; the payload's vector literal parses back to
 * v; meta is JSON text that parses (or null without meta); id is its text. */
static void check_pgvector(const msg_input *in, msg_format told, const float *v, int d)
{
    msg_buf b = {0};
    msg_error e;
    int rc = msg_encode_pgvector(in, "model", v, d, 3, false, &b, &e);
    if (told != MSG_FMT_MSGPACK) FZ_ASSERT(rc == 0);
    if (rc != 0) {
        FZ_ASSERT(e.code == MSG_E_META_UNCONVERTIBLE && b.len == 0);
        msg_buf_free(&b);
        return;
    }
    cJSON *j = cJSON_ParseWithLength((const char *)b.data, b.len);
    FZ_ASSERT(j != NULL);
    const cJSON *pl = cJSON_GetObjectItemCaseSensitive(j, "payload");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(pl, "id");
    FZ_ASSERT(cJSON_IsString(id));
    if (!memchr(in->id, 0, in->id_len)) /* cJSON's strings end at a NUL */
        FZ_ASSERT(strlen(id->valuestring) == in->id_len &&
                  !memcmp(id->valuestring, in->id, in->id_len));
    const cJSON *lit = cJSON_GetObjectItemCaseSensitive(pl, "embedding");
    FZ_ASSERT(cJSON_IsString(lit) && lit->valuestring[0] == '[');
    const char *s = lit->valuestring + 1;
    for (int i = 0; i < d; i++) {
        char *end;
        float f = strtof(s, &end);
        FZ_ASSERT(end != s && !memcmp(&f, &v[i], 4));
        FZ_ASSERT(*end == (i + 1 < d ? ',' : ']'));
        s = end + 1;
    }
    FZ_ASSERT(*s == 0);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(pl, "meta");
    if (in->meta) {
        FZ_ASSERT(cJSON_IsString(m));
        cJSON *mj = cJSON_Parse(m->valuestring);
        FZ_ASSERT(mj != NULL);
        cJSON_Delete(mj);
    } else {
        FZ_ASSERT(cJSON_IsNull(m));
    }
    cJSON_Delete(j);
    msg_buf_free(&b);
}

/* told: the out_format the decode checked meta against. shallow: the
 * message nests at most 32 levels, the most msgpack-c's unpacker takes
 * (MSGPACK_EMBED_STACK_SIZE); the output nests exactly as deep. */
static void encode_all(const msg_input *in, msg_format told, bool shallow)
{
    static const float tricky[8] = {0.0f,           -0.0f, 1.0f,   1.40129846e-45f,
                                    3.40282347e38f, 0.1f,  -1e-7f, 16777217.0f};
    int d = in->dimensions ? (in->dimensions < 64 ? in->dimensions : 64) : 32;
    float v[64];
    for (int i = 0; i < d; i++)
        v[i] = tricky[i % 8] / (float)(i / 8 + 1);
    msg_buf b = {0};
    msg_error e;

    int rc = msg_encode_msgpack(in, "model", v, d, 3, true, &b, &e);
    if (told == MSG_FMT_MSGPACK) FZ_ASSERT(rc == 0);
    if (rc == 0) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        if (msgpack_unpack_next(&u, (const char *)b.data, b.len, &off) != MSGPACK_UNPACK_SUCCESS) {
            FZ_ASSERT(!shallow);
            msgpack_unpacked_destroy(&u);
            msg_buf_free(&b);
            goto json;
        }
        FZ_ASSERT(off == b.len && u.data.type == MSGPACK_OBJECT_MAP);
        FZ_ASSERT(u.data.via.map.size == (in->meta ? 7u : 6u));
        const msgpack_object *em = &u.data.via.map.ptr[3].val;
        FZ_ASSERT(em->type == MSGPACK_OBJECT_ARRAY && em->via.array.size == (uint32_t)d);
        for (int i = 0; i < d; i++) {
            float f = (float)em->via.array.ptr[i].via.f64;
            FZ_ASSERT(em->via.array.ptr[i].type == MSGPACK_OBJECT_FLOAT32 && !memcmp(&f, &v[i], 4));
        }
        msgpack_unpacked_destroy(&u);
        reread(&b);
    } else {
        FZ_ASSERT(e.code == MSG_E_META_UNCONVERTIBLE && b.len == 0);
    }
    msg_buf_free(&b);

json:
    for (int q = 0; q < 2; q++) {
        rc = q ? msg_encode_qdrant(in, "coll", "model", v, d, 3, false, &b, &e)
               : msg_encode_json(in, "model", v, d, 3, false, &b, &e);
        if (told != MSG_FMT_MSGPACK) FZ_ASSERT(rc == 0);
        if (rc != 0) {
            FZ_ASSERT(e.code == MSG_E_META_UNCONVERTIBLE && b.len == 0);
            continue;
        }
        cJSON *j = cJSON_ParseWithLength((const char *)b.data, b.len);
        FZ_ASSERT(j != NULL);
        check_json_floats(cJSON_GetObjectItemCaseSensitive(j, q ? "vector" : "embedding"), v, d);
        const cJSON *m = q ? cJSON_GetObjectItemCaseSensitive(
                                 cJSON_GetObjectItemCaseSensitive(j, "payload"), "meta")
                           : cJSON_GetObjectItemCaseSensitive(j, "meta");
        FZ_ASSERT(!m == !in->meta);
        cJSON_Delete(j);
        reread(&b);
        msg_buf_free(&b);
    }
    check_pgvector(in, told, v, d);
    rc = msg_output_key(in, NULL, 0, &b, &e);
    FZ_ASSERT(rc == 0 && b.len == in->id_len && !memcmp(b.data, in->id, in->id_len));
    msg_buf_free(&b);
}

static void decode_as(const uint8_t *data, size_t size, msg_format fmt)
{
    msg_limits l = base;
    l.out_format = fmt;
    msg_input in, again;
    msg_error e;
    memset(&in, 0xa5, sizeof in);
    int rc = msg_decode(data, size, &l, &in, &e);
    if (rc != 0) {
        check_error(rc, &in, &e);
        return;
    }
    FZ_ASSERT(rc == 0);
    check_input(&in);
    FZ_ASSERT(msg_decode(data, size, &l, &again, &e) == 0 && same_input(&in, &again));
    msg_input_free(&again);
    msg_limits l32 = l;
    l32.max_depth = 32;
    msg_input shallow;
    bool sh = msg_decode(data, size, &l32, &shallow, &e) == 0;
    if (sh) msg_input_free(&shallow);
    encode_all(&in, fmt, sh);
    msg_input_free(&in);
}

static void decode_fields(const uint8_t *data, size_t size)
{
    const char *p[32];
    size_t n[32];
    int k = 0;
    size_t s = 0;
    for (size_t i = 0; i <= size && k < 32; i++) {
        if (i == size || data[i] == 0) {
            p[k] = (const char *)data + s;
            n[k] = i - s;
            k++;
            s = i + 1;
        }
    }
    int pairs = k / 2;
    const char *names[16], *values[16];
    size_t nl[16], vl[16];
    for (int i = 0; i < pairs; i++) {
        names[i] = p[2 * i], nl[i] = n[2 * i];
        values[i] = p[2 * i + 1], vl[i] = n[2 * i + 1];
    }
    msg_input in;
    msg_error e;
    int rc = msg_decode_fields(names, nl, values, vl, pairs, &base, &in, &e);
    if (rc != 0) {
        check_error(rc, &in, &e);
        return;
    }
    check_input(&in);
    encode_all(&in, MSG_FMT_MSGPACK, in.meta == NULL);
    msg_input_free(&in);
}

/* msg_json_string_list (the API's `input`) over key "text": the strings
 * are NUL-terminated, their count and bytes agree with cJSON's (the
 * oracle) where cJSON reads them whole (no NUL, valid UTF-8), and a single
 * string agrees with msg_json_string_field. */
static void string_list(const uint8_t *data, size_t size)
{
    msg_json_str *v = NULL;
    msg_error e;
    int n = msg_json_string_list(data, size, "text", 0, &v, &e);
    FZ_ASSERT(n >= -1 && (n > 0) == (v != NULL));
    if (n <= 0) return;
    for (int i = 0; i < n; i++)
        FZ_ASSERT(v[i].s[v[i].len] == 0 && (v[i].bad == SIZE_MAX || v[i].bad < v[i].len));
    cJSON *j = cJSON_ParseWithLength((const char *)data, size);
    if (j) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
        FZ_ASSERT(t && (cJSON_IsString(t) ? n == 1 : cJSON_GetArraySize(t) == n));
        const cJSON *el = cJSON_IsArray(t) ? t->child : t;
        for (int i = 0; i < n; i++, el = el->next) {
            FZ_ASSERT(cJSON_IsString(el));
            if (v[i].bad == SIZE_MAX && strlen(v[i].s) == v[i].len)
                FZ_ASSERT(strcmp(el->valuestring, v[i].s) == 0);
        }
        cJSON_Delete(j);
    }
    char *one;
    size_t one_len;
    if (n == 1 && msg_json_string_field(data, size, "text", 0, &one, &one_len, &e) == 1) {
        FZ_ASSERT(one_len == v[0].len && memcmp(one, v[0].s, one_len + 1) == 0);
        free(one);
    }
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    string_list(data, size);
    decode_as(data, size, MSG_FMT_MSGPACK);
    decode_as(data, size, MSG_FMT_JSON);
    decode_fields(data, size);
    return 0;
}
