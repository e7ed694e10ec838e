/* lt_unit_test.c - the broker-free parts of embedq-loadtest: rate profiles,
 * escaping, the string map, manifests (written, then tailed across partial
 * lines), dump files (round trip, truncation, wrong files), corpus chunking,
 * percentiles and flag parsing.
 *
 * usage: lt_unit_test WORK_DIR   (files are written there)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lt.h"
#include "lt_collect.h"
#include "lt_corpus.h"
#include "lt_dump.h"
#include "lt_manifest.h"
#include "lt_profile.h"

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static bool near(double a, double b, double tol)
{
    return fabs(a - b) <= tol * (fabs(b) > 1 ? fabs(b) : 1);
}

static void test_profiles(void)
{
    lt_profile c = {.kind = LT_PROF_CONSTANT, .rate = 100};
    CHECK(near(lt_profile_due(&c, 2.5), 250, 1e-12));
    CHECK(lt_profile_time_of(&c, 0) == 0);
    CHECK(near(lt_profile_time_of(&c, 150), 1.5, 1e-12));

    /* ramp 50 -> 250 over 4 s: N(4) = 600, then 250/s */
    lt_profile r = {.kind = LT_PROF_RAMP, .rate = 50, .rate_end = 250, .ramp_s = 4};
    CHECK(near(lt_profile_due(&r, 4), 600, 1e-12));
    CHECK(near(lt_profile_due(&r, 6), 1100, 1e-12));
    CHECK(near(lt_profile_rate(&r, 2), 150, 1e-12));
    CHECK(near(lt_profile_time_of(&r, 600), 4, 1e-6));
    CHECK(near(lt_profile_time_of(&r, 1100), 6, 1e-6));
    for (double n = 1; n < 1100; n += 37) { /* time_of inverts due (to 1e-7 s) */
        double d = lt_profile_due(&r, lt_profile_time_of(&r, n));
        CHECK(d >= n && d <= n + 1e-4);
    }

    /* a ramp down to 0 never reaches what it did not send */
    lt_profile down = {.kind = LT_PROF_RAMP, .rate = 100, .rate_end = 0, .ramp_s = 2};
    CHECK(near(lt_profile_due(&down, 10), 100, 1e-12));
    CHECK(isinf(lt_profile_time_of(&down, 101)));

    /* burst: 100/s, x10 during [10, 13) */
    lt_profile b = {
        .kind = LT_PROF_BURST, .rate = 100, .burst_at_s = 10, .burst_s = 3, .burst_factor = 10};
    CHECK(near(lt_profile_due(&b, 10), 1000, 1e-12));
    CHECK(near(lt_profile_due(&b, 13), 4000, 1e-12));
    CHECK(near(lt_profile_due(&b, 20), 4700, 1e-12));
    CHECK(lt_profile_rate(&b, 12.9) == 1000 && lt_profile_rate(&b, 13) == 100);
    const char *names[2];
    double at[2];
    CHECK(lt_profile_marks(&b, names, at) == 2 && !strcmp(names[1], "burst_end") && at[1] == 13);

    char err[LT_ERRLEN];
    lt_profile bad = {.kind = LT_PROF_BURST, .rate = 10, .burst_factor = 0.5, .burst_s = 1};
    CHECK(lt_profile_check(&bad, err, sizeof err) < 0 && strstr(err, "--burst-factor"));
    lt_profile_kind k;
    CHECK(lt_profile_kind_parse("ramp", &k) == 0 && k == LT_PROF_RAMP);
    CHECK(lt_profile_kind_parse("sine", &k) < 0);
}

static void test_escape_and_map(void)
{
    const char raw[] = "a\tb\nc\\d\r\x01\x7f"
                       "e";
    lt_buf b = {0};
    CHECK(lt_escape(&b, raw, sizeof raw - 1) == 0);
    CHECK(!memchr(b.data, '\t', b.len) && !memchr(b.data, '\n', b.len));
    char *s = strndup((char *)b.data, b.len);
    long n = lt_unescape(s, strlen(s));
    CHECK(n == (long)sizeof raw - 1 && !memcmp(s, raw, sizeof raw - 1));
    free(s);
    char bad[] = "x\\q";
    CHECK(lt_unescape(bad, 3) < 0);
    char cut[] = "x\\x4";
    CHECK(lt_unescape(cut, 4) < 0);
    lt_buf_free(&b);

    CHECK(lt_buf_json_string(&b, "q\"\xff\n", 4) == 0);
    CHECK(b.len == strlen("\"q\\\"\\ufffd\\n\"") && !memcmp(b.data, "\"q\\\"\\ufffd\\n\"", b.len));
    lt_buf_free(&b);

    lt_map m = {0};
    char key[32];
    for (int i = 0; i < 5000; i++) {
        int len = snprintf(key, sizeof key, "id-%d", i);
        bool added;
        CHECK(lt_map_put(&m, key, (size_t)len, i, &added) && added);
    }
    bool added = true;
    CHECK(*lt_map_put(&m, "id-7", 4, 99, &added) == 7 && !added);
    CHECK(*lt_map_get(&m, "id-4999", 7) == 4999);
    CHECK(!lt_map_get(&m, "id-5000", 7));
    CHECK(lt_map_get(&m, "", 0) == NULL);
    CHECK(lt_map_put(&m, "", 0, -1, NULL) && *lt_map_get(&m, "", 0) == -1);
    CHECK(m.n == 5001);
    lt_map_free(&m);
}

typedef struct {
    int entries, marks;
    int64_t last_sent;
    char last_pos[64], last_id[64];
    char last_kind;
    size_t last_id_len;
} man_seen;

static void on_entry(void *arg, int64_t sent, const char *pos, char kind, const char *id,
                     size_t len)
{
    man_seen *m = arg;
    m->entries++;
    m->last_sent = sent;
    snprintf(m->last_pos, sizeof m->last_pos, "%s", pos);
    m->last_kind = kind;
    m->last_id_len = len;
    memcpy(m->last_id, id, len < 63 ? len : 63);
}

static void on_mark(void *arg, const char *name, int64_t us)
{
    (void)name, (void)us;
    ((man_seen *)arg)->marks++;
}

static void test_manifest(const char *dir)
{
    char path[512], err[LT_ERRLEN];
    snprintf(path, sizeof path, "%s/m.tsv", dir);
    lt_manifest_writer w;
    CHECK(lt_manifest_create(&w, path, "kafka", "in\ttopic", err, sizeof err) == 0);
    lt_manifest_reader r;
    CHECK(lt_manifest_open(&r, path, err, sizeof err) == 0);
    man_seen seen = {0};
    lt_manifest_cb cb = {on_entry, on_mark};
    CHECK(lt_manifest_poll(&r, &cb, &seen, err, sizeof err) == 3);
    CHECK(!strcmp(r.broker, "kafka") && !strcmp(r.target, "in\ttopic"));
    lt_manifest_started(&w, 1000);
    lt_manifest_mark(&w, "burst_end", 5000);
    lt_manifest_add(&w, 1001, "3:17", 's', "id\t1\n", 5);
    lt_manifest_flush(&w);
    /* A half-written line is left for the next poll. */
    fputs("1002\t0:1\ti\t4", w.f);
    fflush(w.f);
    CHECK(lt_manifest_poll(&r, &cb, &seen, err, sizeof err) == 3);
    CHECK(seen.entries == 1 && seen.marks == 1 && r.started_us == 1000);
    CHECK(seen.last_id_len == 5 && !memcmp(seen.last_id, "id\t1\n", 5) && seen.last_kind == 's');
    fputs("2\n", w.f);
    w.count++;
    CHECK(lt_manifest_close(&w, err, sizeof err) == 0);
    CHECK(lt_manifest_poll(&r, &cb, &seen, err, sizeof err) == 2);
    CHECK(seen.entries == 2 && seen.last_sent == 1002 && !strcmp(seen.last_pos, "0:1"));
    CHECK(seen.last_id_len == 2 && !memcmp(seen.last_id, "42", 2));
    CHECK(r.ended && r.end_count == 2);
    lt_manifest_close_reader(&r);

    /* Not a manifest / a malformed line: errors that say where. */
    FILE *f = fopen(path, "w");
    fputs(LT_MANIFEST_MAGIC "\n12\tno-kind\n", f);
    fclose(f);
    CHECK(lt_manifest_open(&r, path, err, sizeof err) == 0);
    CHECK(lt_manifest_poll(&r, &cb, &seen, err, sizeof err) < 0 && strstr(err, ":2:"));
    lt_manifest_close_reader(&r);
    snprintf(path, sizeof path, "%s/missing.tsv", dir);
    CHECK(lt_manifest_open(&r, path, err, sizeof err) < 0);
}

static void test_dump(const char *dir)
{
    char path[512], err[LT_ERRLEN];
    snprintf(path, sizeof path, "%s/d.dump", dir);
    lt_dump_header h = {.broker = LT_BROKER_KAFKA, .recorded_at_us = 42};
    snprintf(h.source, sizeof h.source, "in");
    lt_dump_writer *w = lt_dump_create(path, &h, err, sizeof err);
    CHECK(w != NULL);
    lt_field hdrs[2] = {{"a", 1, (const uint8_t *)"", 0}, {"b", 1, NULL, 0}};
    lt_record k = {.timestamp_ms = 1700000000123,
                   .ts_type = "create",
                   .partition = 3,
                   .offset = 99,
                   .key = NULL,
                   .value = (const uint8_t *)"v\0x",
                   .value_len = 3,
                   .fields = hdrs,
                   .n_fields = 2};
    CHECK(lt_dump_write(w, &k, err, sizeof err) == 0);
    k.value = NULL; /* a null value (tombstone) */
    k.value_len = 0;
    k.key = (const uint8_t *)"";
    k.n_fields = 0;
    CHECK(lt_dump_write(w, &k, err, sizeof err) == 0);
    CHECK(lt_dump_close_writer(w, err, sizeof err) == 0);

    lt_dump_header rh;
    lt_dump_reader *r = lt_dump_open(path, &rh, err, sizeof err);
    CHECK(r && rh.broker == LT_BROKER_KAFKA && !strcmp(rh.source, "in") && rh.recorded_at_us == 42);
    lt_record rec;
    CHECK(r && lt_dump_next(r, &rec, err, sizeof err) == 1);
    CHECK(rec.partition == 3 && rec.offset == 99 && rec.timestamp_ms == 1700000000123 &&
          !strcmp(rec.ts_type, "create"));
    CHECK(rec.key == NULL && rec.value_len == 3 && !memcmp(rec.value, "v\0x", 3));
    CHECK(rec.n_fields == 2 && rec.fields[0].value_len == 0 && rec.fields[0].value != NULL &&
          rec.fields[1].value == NULL);
    CHECK(r && lt_dump_next(r, &rec, err, sizeof err) == 1);
    CHECK(rec.value == NULL && rec.key != NULL && rec.key_len == 0 && rec.n_fields == 0);
    CHECK(r && lt_dump_next(r, &rec, err, sizeof err) == 0);
    lt_dump_close(r);

    /* Truncated: the last record is cut in half. */
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK(truncate(path, st.st_size - 2) == 0);
    r = lt_dump_open(path, &rh, err, sizeof err);
    CHECK(r && lt_dump_next(r, &rec, err, sizeof err) == 1);
    CHECK(r && lt_dump_next(r, &rec, err, sizeof err) < 0 && strstr(err, "truncated"));
    lt_dump_close(r);

    /* Redis entries. */
    h.broker = LT_BROKER_REDIS;
    w = lt_dump_create(path, &h, err, sizeof err);
    lt_field f[2] = {{"id", 2, (const uint8_t *)"x", 1}, {"text", 4, (const uint8_t *)"hi", 2}};
    lt_record e = {.timestamp_ms = 5,
                   .partition = -1,
                   .offset = -1,
                   .entry_id = "5-0",
                   .entry_id_len = 3,
                   .fields = f,
                   .n_fields = 2};
    CHECK(w && lt_dump_write(w, &e, err, sizeof err) == 0);
    CHECK(lt_dump_close_writer(w, err, sizeof err) == 0);
    r = lt_dump_open(path, &rh, err, sizeof err);
    CHECK(r && rh.broker == LT_BROKER_REDIS && lt_dump_next(r, &rec, err, sizeof err) == 1);
    CHECK(rec.entry_id_len == 3 && !memcmp(rec.entry_id, "5-0", 3) && rec.n_fields == 2 &&
          rec.fields[1].value_len == 2 && !memcmp(rec.fields[1].name, "text", 4));
    lt_dump_close(r);

    /* Not a dump. */
    FILE *x = fopen(path, "w");
    fputs("{\"format\": \"json\"}\n", x);
    fclose(x);
    CHECK(lt_dump_open(path, &rh, err, sizeof err) == NULL && strstr(err, "not an embedq"));
}

typedef struct {
    size_t n, max;
    bool ok;
    char joined[4096];
} chunks_seen;

static void on_chunk(const char *s, size_t n, void *arg)
{
    chunks_seen *c = arg;
    c->n++;
    if (n > c->max || !lt_utf8_valid(s, n) || s[0] == ' ' || s[n - 1] == ' ') c->ok = false;
    strncat(c->joined, s, n);
}

static void test_chunking(void)
{
    /* 300 words; chunks at spaces, never over the limit, nothing lost. */
    char text[4096] = "";
    for (int i = 0; i < 300; i++)
        strcat(text, i ? " w" : "w");
    chunks_seen c = {.max = 100, .ok = true};
    CHECK(lt_chunk_text(text, strlen(text), 100, on_chunk, &c) == c.n);
    CHECK(c.ok && c.n >= 6 && c.n <= 7);
    size_t words = 0;
    for (char *p = c.joined; *p; p++)
        words += *p == 'w';
    CHECK(words == 300);

    /* No spaces, multibyte characters: cut at character boundaries. */
    char wide[600] = "";
    for (int i = 0; i < 150; i++)
        strcat(wide, "\xc3\xa9"); /* e-acute, 2 bytes */
    chunks_seen d = {.max = 33, .ok = true};
    lt_chunk_text(wide, strlen(wide), 33, on_chunk, &d);
    CHECK(d.ok && strlen(d.joined) == 300);

    chunks_seen e = {.max = 100, .ok = true};
    CHECK(lt_chunk_text("   \n\t  ", 7, 100, on_chunk, &e) == 0);
}

static void test_percentiles(void)
{
    int64_t v[100];
    for (int i = 0; i < 100; i++)
        v[i] = i + 1;
    CHECK(lt_percentile(v, 100, 50) == 50);
    CHECK(lt_percentile(v, 100, 99) == 99);
    CHECK(lt_percentile(v, 100, 100) == 100);
    CHECK(lt_percentile(v, 1, 99) == 1);
    CHECK(lt_percentile(v, 0, 50) == 0);
    int64_t w[3] = {10, 20, 30};
    CHECK(lt_percentile(w, 3, 50) == 20 && lt_percentile(w, 3, 95) == 30);
}

static void test_flags(void)
{
    long n = 5;
    double r = 1;
    const char *s = NULL;
    bool b = false;
    lt_list l = {0};
    lt_flag f[] = {{"count", LT_INT, &n, 0, 10, ""},
                   {"rate", LT_DBL, &r, 0.5, 100, ""},
                   {"name", LT_STR, &s, 0, 0, ""},
                   {"on", LT_BOOL, &b, 0, 0, ""},
                   {"kv", LT_LIST, &l, 0, 0, ""}};
    lt_command cmd = {"test", "", ""};
    char *ok[] = {"test", "--count", "7",    "--rate=2.5", "--name",
                  "x",    "--on",    "--kv", "a=1",        "--kv=b=2"};
    CHECK(lt_parse_flags(&cmd, f, 5, 10, ok) == 0);
    CHECK(n == 7 && r == 2.5 && !strcmp(s, "x") && b && l.n == 2 && !strcmp(l.items[1], "b=2"));
    fprintf(stderr, "(four error messages expected:)\n");
    char *bad1[] = {"test", "--count", "11"};
    CHECK(lt_parse_flags(&cmd, f, 5, 3, bad1) == 2);
    char *bad2[] = {"test", "--rate", "fast"};
    CHECK(lt_parse_flags(&cmd, f, 5, 3, bad2) == 2);
    char *bad3[] = {"test", "--nope"};
    CHECK(lt_parse_flags(&cmd, f, 5, 2, bad3) == 2);
    char *bad4[] = {"test", "--name"};
    CHECK(lt_parse_flags(&cmd, f, 5, 2, bad4) == 2);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    mkdir(dir, 0755);
    test_profiles();
    test_escape_and_map();
    test_manifest(dir);
    test_dump(dir);
    test_chunking();
    test_percentiles();
    test_flags();
    if (failures) {
        fprintf(stderr, "lt_unit_test: %d checks failed\n", failures);
        return 1;
    }
    printf("lt_unit_test: all checks passed\n");
    return 0;
}
