/* tok_unit_test.c - tokenizer edge cases that the golden corpus cannot hold.
 *
 *   tok_unit_test TOKENIZER_JSON WORKDIR
 *
 * - invalid UTF-8 of every kind, in text and in instruction: -1 with a
 *   message naming the byte offset, never a crash, *out stays NULL;
 * - empty text -> [151643]; empty text with an instruction;
 * - truncation edges (max_len 1, exactly full, one short, prefix of added
 *   token), tok_set_vocab_rows on/off;
 * - huge inputs (10 MB of one letter, of spaces, of marks, of mixed text;
 *   2 MB each under sanitizers, EMBEDQ_SANITIZED=1): they encode, and the
 *   token bytes concatenate back to the (NFC) input;
 * - a synthetic byte-level tokenizer: merges given as "a b" strings and as
 *   [a, b] pairs give the same ids; lowest rank first, leftmost on ties;
 *   non-monotone merges (a merge using a token made by a later merge) are
 *   still applied in rank order on long pieces (the loader must notice and
 *   keep the heap path);
 * - load errors: missing file, not JSON, unsupported post-processor.
 */
#include <cjson/cJSON.h>
#include <time.h>

#include "common.h"
#include "tok_testutil.h"
#include "tokenizer.h"

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: FAILED: %s: ", __FILE__, __LINE__, #cond);                     \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Encodes and returns the count (or -1); ids in *ids (caller frees). */
static int enc(const tok_tokenizer *t, const char *s, size_t n, const char *ins, int max_len,
               int32_t **ids, bool *trunc, char *err)
{
    return tok_encode(t, s, n, ins, ins ? strlen(ins) : 0, max_len, ids, trunc, err, EQ_ERRLEN);
}

static void test_invalid_utf8(const tok_tokenizer *t)
{
    static const struct {
        const char *bytes;
        size_t len;
        size_t offset;
        const char *kind;
    } cases[] = {
        {"ab\xc0\x80", 4, 2, "overlong"},       /* overlong NUL */
        {"\xc1\xbf", 2, 0, "overlong"},         /* overlong 2-byte */
        {"x\xe0\x80\xaf", 4, 1, "overlong"},    /* overlong '/' in 3 bytes */
        {"\xf0\x80\x80\xaf", 4, 0, "overlong"}, /* overlong '/' in 4 bytes */
        {"abc\x80", 4, 3, "continuation"},      /* lone continuation */
        {"\xbf\xbf", 2, 0, "continuation"},
        {"caf\xc3", 4, 3, "truncated"}, /* truncated at end */
        {"caf\xc3"
         "e",
         5, 3, "truncated"}, /* missing continuation */
        {"\xe2\x82", 2, 0, "truncated"},
        {"\xe2\x82z", 3, 0, "truncated"},
        {"\xf0\x9f\x98", 3, 0, "truncated"},             /* truncated emoji */
        {"ok \xed\xa0\x80", 6, 3, "surrogate"},          /* U+D800 */
        {"\xed\xbf\xbf", 3, 0, "surrogate"},             /* U+DFFF */
        {"\xed\xa0\xbd\xed\xb8\x80", 6, 0, "surrogate"}, /* CESU-8 pair */
        {"\xf4\x90\x80\x80", 4, 0, "U+10FFFF"},          /* U+110000 */
        {"\xf5\x80\x80\x80", 4, 0, "U+10FFFF"},
        {"\xf7\xbf\xbf\xbf", 4, 0, "U+10FFFF"},
        {"a\xff", 2, 1, "never valid"},
        {"\xfe\xfe", 2, 0, "never valid"},
        {"\xf8\x88\x80\x80\x80", 5, 0, "never valid"}, /* 5-byte form */
        {"12345678\x80", 9, 8, "continuation"},        /* after the 8-byte fast path */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        for (int where = 0; where < 2; where++) {
            char err[EQ_ERRLEN] = "";
            int32_t *ids = (int32_t *)&err; /* must be reset to NULL */
            bool trunc;
            int n = where == 0 ? enc(t, cases[k].bytes, cases[k].len, NULL, 0, &ids, &trunc, err)
                               : tok_encode(t, "ok", 2, cases[k].bytes, cases[k].len, 0, &ids,
                                            &trunc, err, sizeof err);
            char want[64];
            snprintf(want, sizeof want, "byte offset %zu", cases[k].offset);
            CHECK(n == -1, "case %zu (%s) in %s: returned %d", k, cases[k].kind,
                  where ? "instruction" : "text", n);
            CHECK(ids == NULL, "case %zu: *out not NULL on error", k);
            CHECK(strstr(err, want) && strstr(err, cases[k].kind) &&
                      strstr(err, where ? "instruction" : "text"),
                  "case %zu: message \"%s\" should name \"%s\", \"%s\"", k, err, want,
                  cases[k].kind);
        }
    }
    /* Valid edge code points are accepted. */
    static const char ok[] = "\x7f \xc2\x80 \xdf\xbf \xe0\xa0\x80 \xed\x9f\xbf \xee\x80\x80 "
                             "\xef\xbf\xbf \xf0\x90\x80\x80 \xf4\x8f\xbf\xbf";
    int32_t *ids;
    bool trunc;
    char err[EQ_ERRLEN];
    int n = enc(t, ok, sizeof ok - 1, NULL, 0, &ids, &trunc, err);
    CHECK(n > 1, "valid boundary code points rejected: %s", err);
    if (n > 0) free(ids);
}

static void test_basics(tok_tokenizer *t)
{
    char err[EQ_ERRLEN];
    int32_t *ids;
    bool trunc = true;
    int eos = tok_eos_id(t);
    CHECK(eos == 151643, "eos %d", eos);

    int n = enc(t, "", 0, NULL, 0, &ids, &trunc, err);
    CHECK(n == 1 && ids[0] == eos && !trunc, "empty text: n=%d", n);
    if (n > 0) free(ids);
    n = tok_encode(t, NULL, 0, NULL, 0, 0, &ids, NULL, err, sizeof err);
    CHECK(n == 1 && ids[0] == eos, "NULL text, len 0: n=%d", n);
    if (n > 0) free(ids);

    /* Empty text with an instruction: "Instruct: X\nQuery:" + EOS. */
    n = enc(t, "", 0, "X", 0, &ids, &trunc, err);
    int32_t *ids2;
    int n2 = enc(t, "Instruct: X\nQuery:", 18, NULL, 0, &ids2, &trunc, err);
    CHECK(n > 1 && tu_ids_eq(ids, n, ids2, n2), "instruction template");
    if (n > 0) free(ids);
    if (n2 > 0) free(ids2);

    /* NUL is a character like any other. */
    n = enc(t, "a\0b", 3, NULL, 0, &ids, &trunc, err);
    CHECK(n == 4 && ids[1] == 188 /* byte 0x00 -> U+0100 */, "NUL: n=%d", n);
    if (n > 0) free(ids);

    /* Truncation edges on "hello world" = [14990, 1879] + EOS. */
    static const int32_t hw[] = {14990, 1879};
    struct {
        int max_len, n;
        bool trunc;
    } tc[] = {{0, 3, false}, {-5, 3, false}, {1, 1, true},
              {2, 2, true},  {3, 3, false},  {4, 3, false}};
    for (size_t k = 0; k < sizeof tc / sizeof tc[0]; k++) {
        n = enc(t, "hello world", 11, NULL, tc[k].max_len, &ids, &trunc, err);
        CHECK(n == tc[k].n && trunc == tc[k].trunc && ids[n - 1] == eos &&
                  tu_ids_eq(ids, n - 1, hw, n - 1),
              "hello world max_len %d: n=%d trunc=%d", tc[k].max_len, n, trunc);
        if (n > 0) free(ids);
    }
    /* max_len 1 on empty text: nothing to drop, not truncated. */
    n = enc(t, "", 0, NULL, 1, &ids, &trunc, err);
    CHECK(n == 1 && !trunc, "empty, max_len 1");
    if (n > 0) free(ids);
    /* Cut right after an added token. */
    n = enc(t, "a<|im_end|>b", 12, NULL, 3, &ids, &trunc, err);
    CHECK(n == 3 && ids[1] == 151645 && ids[2] == eos && trunc, "cut after added token");
    if (n > 0) free(ids);

    /* 4B/8B rule. */
    n = enc(t, "<think>", 7, NULL, 0, &ids, &trunc, err);
    CHECK(n == 2 && ids[0] == 151667, "<think> is an added token");
    if (n > 0) free(ids);
    tok_set_vocab_rows(t, 151665);
    n = enc(t, "<think><|im_start|>", 19, NULL, 0, &ids, &trunc, err);
    CHECK(n > 3 && ids[0] != 151667 && ids[n - 2] == 151644, "<think> as text with 151665 rows");
    for (int k = 0; k < n; k++)
        CHECK(ids[k] < 151665 || ids[k] == eos, "id %d >= rows", ids[k]);
    if (n > 0) free(ids);
    tok_set_vocab_rows(t, 0);

    size_t bl;
    const char *b = tok_token_bytes(t, 151667, &bl);
    CHECK(b && bl == 7 && !memcmp(b, "<think>", 7), "tok_token_bytes(added)");
    b = tok_token_bytes(t, 220, &bl);
    CHECK(b && bl == 1 && b[0] == ' ', "tok_token_bytes(220) is a space");
    CHECK(tok_token_bytes(t, -1, &bl) == NULL && tok_token_bytes(t, 1 << 30, &bl) == NULL,
          "unknown ids");
}

/* Concatenated token bytes of ids[0..n-1) (EOS excluded) == s? */
static bool roundtrip(const tok_tokenizer *t, const int32_t *ids, int n, const char *s, size_t len)
{
    size_t pos = 0;
    for (int k = 0; k < n - 1; k++) {
        size_t bl;
        const char *b = tok_token_bytes(t, ids[k], &bl);
        if (!b || pos + bl > len || memcmp(s + pos, b, bl)) return false;
        pos += bl;
    }
    return pos == len;
}

static void test_huge(const tok_tokenizer *t, bool sanitized)
{
    size_t size = sanitized ? (2u << 20) : (10u << 20);
    char *s = malloc(size + 8);
    char err[EQ_ERRLEN];
    int32_t *ids;
    bool trunc;
    struct {
        const char *name, *unit;
        bool nfc_stable;
    } kinds[] = {{"letter a", "a", true},
                 {"spaces", " ", true},
                 {"digits", "7", true},
                 {"emoji", "\xf0\x9f\x98\x80", true},
                 {"mixed text", "Hello, w\xc3\xb6rld! \xe4\xb8\xad\xe6\x96\x87 12\n", true},
                 {"combining acute", "\xcc\x81", false},
                 {"e + combining acute", "e\xcc\x81", false}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        size_t ul = strlen(kinds[k].unit), n = 0;
        while (n + ul <= size)
            memcpy(s + n, kinds[k].unit, ul), n += ul;
        double t0 = now_s();
        int r = enc(t, s, n, NULL, 0, &ids, &trunc, err);
        double el = now_s() - t0;
        CHECK(r > 1 && ids[r - 1] == tok_eos_id(t) && !trunc, "%s x %zu bytes: %s", kinds[k].name,
              n, r < 0 ? err : "");
        if (r > 0 && kinds[k].nfc_stable)
            CHECK(roundtrip(t, ids, r, s, n), "%s: token bytes do not reproduce the input",
                  kinds[k].name);
        printf("  huge input: %-20s %5.1f MB -> %9d ids in %.2f s\n", kinds[k].name,
               (double)n / 1e6, r, el);
        if (r > 0) free(ids);
        /* Early stop with a small max_len. */
        t0 = now_s();
        r = enc(t, s, n, NULL, 512, &ids, &trunc, err);
        CHECK(r == 512 && trunc, "%s with max_len 512: %d", kinds[k].name, r);
        if (r > 0) free(ids);
    }
    free(s);
}

/* GPT-2 bytes_to_unicode, as UTF-8, for building a synthetic vocabulary. */
static void byte_char(int b, char out[3])
{
    int cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) {
        int extra = 0;
        for (int k = 0; k < b; k++)
            if (!((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || k >= 174)) extra++;
        cp = 256 + extra;
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

/* Writes a tokenizer.json with the 256 byte tokens (ids 0..255), the given
 * extra tokens (ids 256..) and merges, and <|endoftext|> as id 1000. */
static int write_synthetic(const char *path, const char *const *extra, int nextra,
                           const char *const (*merges)[2], int nmerges, bool string_merges)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON *eos = cJSON_CreateObject();
    cJSON_AddNumberToObject(eos, "id", 1000);
    cJSON_AddStringToObject(eos, "content", "<|endoftext|>");
    cJSON_AddBoolToObject(eos, "special", true);
    cJSON_AddBoolToObject(eos, "normalized", false);
    cJSON_AddItemToArray(added, eos);
    cJSON *nz = cJSON_AddObjectToObject(root, "normalizer");
    cJSON_AddStringToObject(nz, "type", "NFC");
    cJSON *pt = cJSON_Parse(
        "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
        "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| "
        "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
        "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
        "\"add_prefix_space\":false,\"trim_offsets\":false,\"use_regex\":false}]}");
    cJSON_AddItemToObject(root, "pre_tokenizer", pt);
    cJSON_AddNullToObject(root, "post_processor");
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int b = 0; b < 256; b++) {
        char c[3];
        byte_char(b, c);
        cJSON_AddNumberToObject(vocab, c, b);
    }
    for (int k = 0; k < nextra; k++)
        cJSON_AddNumberToObject(vocab, extra[k], 256 + k);
    cJSON *ms = cJSON_AddArrayToObject(model, "merges");
    for (int k = 0; k < nmerges; k++) {
        if (string_merges) {
            char buf[64];
            snprintf(buf, sizeof buf, "%s %s", merges[k][0], merges[k][1]);
            cJSON_AddItemToArray(ms, cJSON_CreateString(buf));
        } else {
            cJSON_AddItemToArray(ms, cJSON_CreateStringArray(merges[k], 2));
        }
    }
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    FILE *f = fopen(path, "wb");
    if (!f || !txt) {
        free(txt);
        if (f) fclose(f);
        return -1;
    }
    fputs(txt, f);
    free(txt);
    return fclose(f);
}

static void expect_ids(const tok_tokenizer *t, const char *text, const int32_t *want, int nwant,
                       const char *what)
{
    char err[EQ_ERRLEN];
    int32_t *ids;
    bool trunc;
    int n = enc(t, text, strlen(text), NULL, 0, &ids, &trunc, err);
    CHECK(n >= 0 && tu_ids_eq(ids, n, want, nwant), "%s: \"%s\" gives %d ids (%s)", what, text, n,
          n < 0 ? err : "ids differ");
    if (n > 0) {
        if (!tu_ids_eq(ids, n, want, nwant)) {
            fprintf(stderr, "    got:");
            for (int k = 0; k < n; k++)
                fprintf(stderr, " %d", ids[k]);
            fprintf(stderr, "\n    want:");
            for (int k = 0; k < nwant; k++)
                fprintf(stderr, " %d", want[k]);
            fputc('\n', stderr);
        }
        free(ids);
    }
}

static void test_synthetic(const char *workdir)
{
    char path[4096], err[EQ_ERRLEN];
    /* ids: 'a' 97, 'b' 98, 'c' 99; extra: aa 256, aaa 257, ab 258, bc 259, abc 260 */
    static const char *const extra[] = {"aa", "aaa", "ab", "bc", "abc"};
    static const char *const mono[][2] = {
        {"a", "a"}, {"aa", "a"}, {"b", "c"}, {"a", "b"}, {"ab", "c"}};
    for (int form = 0; form < 2; form++) {
        snprintf(path, sizeof path, "%s/synthetic_%d.json", workdir, form);
        CHECK(write_synthetic(path, extra, 5, mono, 5, form == 0) == 0, "write %s", path);
        tok_tokenizer *t = tok_load(path, err, sizeof err);
        CHECK(t != NULL, "synthetic tokenizer (%s merges): %s", form ? "[a, b]" : "\"a b\"", err);
        if (!t) continue;
        CHECK(tok_eos_id(t) == 1000, "synthetic eos");
        /* aaa: (a,a)@0 and (a,a)@1 tie at rank 0 -> leftmost -> aa a -> aaa */
        expect_ids(t, "aaa", (const int32_t[]){257, 1000}, 2, "leftmost on ties");
        expect_ids(t, "aaaa", (const int32_t[]){256, 256, 1000}, 3, "aaaa");
        /* aaaaa: every rank-0 (a,a) merge comes before any rank-1 (aa,a):
         * aa aa a, then (aa,a) -> aa aaa (not aaa aa). */
        expect_ids(t, "aaaaa", (const int32_t[]){256, 257, 1000}, 3, "aaaaa");
        /* abc: (b,c) rank 2 before (a,b) rank 3 -> a bc, and no (a, bc) merge */
        expect_ids(t, "abc", (const int32_t[]){97, 259, 1000}, 3, "lowest rank first");
        expect_ids(t, "abab", (const int32_t[]){258, 258, 1000}, 3, "abab");
        /* The same on long pieces (heap and bucket paths). */
        for (size_t small = 1; small <= 48; small += 47) {
            tok_set_bpe_paths(t, small, 2);
            expect_ids(t, "aaaaa", (const int32_t[]){256, 257, 1000}, 3, "aaaaa, bucket");
            tok_set_bpe_paths(t, small, SIZE_MAX);
            expect_ids(t, "aaaaa", (const int32_t[]){256, 257, 1000}, 3, "aaaaa, heap");
        }
        tok_free(t);
    }
    /* Non-monotone: "ab c" (rank 0) uses ab, which "a b" (rank 1) makes. */
    static const char *const nonmono[][2] = {{"ab", "c"}, {"a", "b"}, {"b", "c"}};
    snprintf(path, sizeof path, "%s/synthetic_nonmono.json", workdir);
    CHECK(write_synthetic(path, extra, 5, nonmono, 3, true) == 0, "write %s", path);
    tok_tokenizer *t = tok_load(path, err, sizeof err);
    CHECK(t != NULL, "non-monotone synthetic tokenizer: %s", err);
    if (t) {
        /* a b c: (a,b) r1 first, then (ab,c) r0 -> abc, on every path. */
        size_t n = 3000;
        char *s = malloc(n + 1);
        int32_t *want = malloc((n / 3 + 1) * sizeof *want);
        for (size_t k = 0; k < n; k++)
            s[k] = "abc"[k % 3];
        s[n] = 0;
        for (size_t k = 0; k < n / 3; k++)
            want[k] = 260;
        want[n / 3] = 1000;
        expect_ids(t, "abc", (const int32_t[]){260, 1000}, 2, "non-monotone, short");
        expect_ids(t, s, want, (int)(n / 3 + 1), "non-monotone, 3000 bytes (default paths)");
        tok_set_bpe_paths(t, 1, 2); /* asks for buckets: must be ignored (not monotone) */
        expect_ids(t, s, want, (int)(n / 3 + 1), "non-monotone, 3000 bytes, buckets asked");
        free(s);
        free(want);
        tok_free(t);
    }
}

static void test_load_errors(const char *json_path, const char *workdir)
{
    char err[EQ_ERRLEN] = "";
    tok_tokenizer *t = tok_load("/nonexistent/tokenizer.json", err, sizeof err);
    CHECK(!t && strstr(err, "nonexistent"), "missing file: %s", err);
    char path[4096];
    snprintf(path, sizeof path, "%s/not_json.json", workdir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs("{\"model\": [1, 2", f);
        fclose(f);
    }
    t = tok_load(path, err, sizeof err);
    CHECK(!t && strstr(err, "JSON"), "not JSON: %s", err);
    /* An unsupported post-processor is refused, not ignored. */
    snprintf(path, sizeof path, "%s/bad_pp.json", workdir);
    if (tu_write_with_post_processor(json_path, path, "{\"type\":\"RobertaProcessing\"}") == 0) {
        t = tok_load(path, err, sizeof err);
        CHECK(!t && strstr(err, "RobertaProcessing"), "bad post-processor: %s", err);
        tok_free(t);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s TOKENIZER_JSON WORKDIR\n", argv[0]);
        return 2;
    }
    const char *san = getenv("EMBEDQ_SANITIZED");
    bool sanitized = san && *san && strcmp(san, "0") != 0;
    char err[EQ_ERRLEN];
    double t0 = now_s();
    tok_tokenizer *t = tok_load(argv[1], err, sizeof err);
    if (!t) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("tokenizer_unit: loaded %s in %.2f s\n", argv[1], now_s() - t0);
    test_invalid_utf8(t);
    test_basics(t);
    test_huge(t, sanitized);
    test_synthetic(argv[2]);
    test_load_errors(argv[1], argv[2]);
    tok_free(t);
    printf("tokenizer_unit: %s (%d failures) in %.2f s\n", failures ? "FAIL" : "PASS", failures,
           now_s() - t0);
    return failures ? 1 : 0;
}
