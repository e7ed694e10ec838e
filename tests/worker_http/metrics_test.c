/* metrics_test.c - worker/metrics.{h,c}: the exposition text line by line,
 * escaping, float formatting, validation, exact totals under concurrent
 * updates, and the rendered text read back by an independent parser that
 * enforces the text format 0.0.4 rules (below).
 *
 *   metrics_test          run the tests (exit 0 = pass)
 *   metrics_test --dump   print the sample registry's exposition, for
 *                         prometheus_client_test.py (and promtool)
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* ---- an independent reader of the text format ----
 *
 * Stricter than Prometheus needs to be: every line ends in '\n'; comments
 * are "# HELP name text" or "# TYPE name type", at most once per name and
 * before the name's samples; every sample belongs to the family of the last
 * TYPE line (histograms: _bucket, _sum, _count); label values use only the
 * escapes \\ \" \n; values are a float strtod reads whole, or +Inf, -Inf,
 * NaN; no series twice; per histogram series, le ascending, counts
 * non-decreasing, last le="+Inf" equal to _count. */

#define P_MAX_SAMPLES 512
#define P_MAX_LABELS  4

typedef struct {
    char name[128];
    int n_labels;
    char lname[P_MAX_LABELS][64];
    char lvalue[P_MAX_LABELS][256]; /* unescaped */
    double value;
    char family[128], type[16];
} p_sample;

typedef struct {
    int n;
    p_sample s[P_MAX_SAMPLES];
    char err[256];
} parsed;

static bool p_name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* Copies a name from *p into out (cap bytes); returns its length (0: none). */
static size_t p_name(const char **p, char *out, size_t cap, bool metric)
{
    size_t n = 0;
    while (p_name_char((*p)[n], n == 0) && (metric || (*p)[n] != ':') && n + 1 < cap) {
        out[n] = (*p)[n];
        n++;
    }
    out[n] = '\0';
    *p += n;
    return n;
}

static bool p_value(const char *s, size_t n, double *v)
{
    char tmp[64];
    if (n == 0 || n >= sizeof tmp) return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (strcmp(tmp, "+Inf") == 0) return (*v = INFINITY), true;
    if (strcmp(tmp, "-Inf") == 0) return (*v = -INFINITY), true;
    if (strcmp(tmp, "NaN") == 0) return (*v = NAN), true;
    if (!(tmp[0] == '-' || (tmp[0] >= '0' && tmp[0] <= '9'))) return false;
    char *end;
    *v = strtod(tmp, &end);
    return *end == '\0';
}

static const char *p_label(const p_sample *s, const char *name)
{
    for (int i = 0; i < s->n_labels; i++)
        if (strcmp(s->lname[i], name) == 0) return s->lvalue[i];
    return NULL;
}

/* The series identity without `le`, for grouping histogram lines. */
static void p_series_key(const p_sample *s, bool with_le, char *out, size_t cap)
{
    size_t used = (size_t)snprintf(out, cap, "%s", with_le ? s->name : s->family);
    for (int i = 0; i < s->n_labels && used < cap; i++) {
        if (!with_le && strcmp(s->lname[i], "le") == 0) continue;
        used += (size_t)snprintf(out + used, cap - used, "|%s=%s", s->lname[i], s->lvalue[i]);
    }
}

static int p_fail(parsed *out, int line, const char *what)
{
    snprintf(out->err, sizeof out->err, "line %d: %s", line, what);
    return -1;
}

static int parse_exposition(const char *text, parsed *out)
{
    memset(out, 0, sizeof *out);
    char family[128] = "", type[16] = "";
    char seen_help[64][128], seen_type[64][128];
    int n_help = 0, n_type = 0;
    int lineno = 0;
    const char *p = text;
    if (*p && text[strlen(text) - 1] != '\n') return p_fail(out, 0, "no final newline");
    while (*p) {
        lineno++;
        const char *eol = strchr(p, '\n');
        if (eol == p) return p_fail(out, lineno, "empty line");
        if (*p == '#') {
            bool help = strncmp(p, "# HELP ", 7) == 0, typ = strncmp(p, "# TYPE ", 7) == 0;
            if (!help && !typ) return p_fail(out, lineno, "unknown comment");
            const char *q = p + 7;
            char name[128];
            if (!p_name(&q, name, sizeof name, true)) return p_fail(out, lineno, "comment name");
            char(*seen)[128] = help ? seen_help : seen_type;
            int *n_seen = help ? &n_help : &n_type;
            for (int i = 0; i < *n_seen; i++)
                if (strcmp(seen[i], name) == 0) return p_fail(out, lineno, "repeated HELP/TYPE");
            if (*n_seen < 64) strcpy(seen[(*n_seen)++], name);
            for (int i = 0; i < out->n; i++)
                if (strcmp(out->s[i].family, name) == 0)
                    return p_fail(out, lineno, "HELP/TYPE after samples");
            if (typ) {
                if (*q != ' ') return p_fail(out, lineno, "TYPE syntax");
                q++;
                size_t tn = (size_t)(eol - q);
                if (!((tn == 7 && !strncmp(q, "counter", 7)) ||
                      (tn == 5 && !strncmp(q, "gauge", 5)) ||
                      (tn == 9 && !strncmp(q, "histogram", 9)) ||
                      (tn == 7 && !strncmp(q, "untyped", 7)) ||
                      (tn == 7 && !strncmp(q, "summary", 7))))
                    return p_fail(out, lineno, "TYPE value");
                strcpy(family, name);
                memcpy(type, q, tn);
                type[tn] = '\0';
            } else {
                /* HELP text: only \\ and \n escapes. */
                if (*q == ' ') q++;
                for (; q < eol; q++)
                    if (*q == '\\' && (q[1] != '\\' && q[1] != 'n'))
                        return p_fail(out, lineno, "HELP escape");
                    else if (*q == '\\')
                        q++;
            }
            p = eol + 1;
            continue;
        }
        if (out->n == P_MAX_SAMPLES) return p_fail(out, lineno, "too many samples");
        p_sample *s = &out->s[out->n];
        memset(s, 0, sizeof *s);
        const char *q = p;
        if (!p_name(&q, s->name, sizeof s->name, true)) return p_fail(out, lineno, "sample name");
        if (*q == '{') {
            q++;
            while (*q != '}') {
                if (s->n_labels == P_MAX_LABELS) return p_fail(out, lineno, "too many labels");
                int li = s->n_labels++;
                if (!p_name(&q, s->lname[li], sizeof s->lname[li], false))
                    return p_fail(out, lineno, "label name");
                if (q[0] != '=' || q[1] != '"') return p_fail(out, lineno, "label syntax");
                q += 2;
                size_t n = 0;
                for (; *q != '"'; q++) {
                    if (*q == '\n' || *q == '\0') return p_fail(out, lineno, "unterminated value");
                    char c = *q;
                    if (c == '\\') {
                        q++;
                        c = *q == 'n' ? '\n' : *q == '\\' ? '\\' : *q == '"' ? '"' : 0;
                        if (!c) return p_fail(out, lineno, "bad escape");
                    }
                    if (n + 1 < sizeof s->lvalue[li]) s->lvalue[li][n++] = c;
                }
                s->lvalue[li][n] = '\0';
                q++;
                for (int j = 0; j < li; j++)
                    if (strcmp(s->lname[j], s->lname[li]) == 0)
                        return p_fail(out, lineno, "repeated label");
                if (*q == ',')
                    q++;
                else if (*q != '}')
                    return p_fail(out, lineno, "label separator");
            }
            q++;
        }
        if (*q != ' ') return p_fail(out, lineno, "no space before value");
        q++;
        if (!p_value(q, (size_t)(eol - q), &s->value)) return p_fail(out, lineno, "value");

        /* Family membership. */
        if (!family[0]) return p_fail(out, lineno, "sample before TYPE");
        bool ok = false;
        if (strcmp(type, "histogram") == 0) {
            size_t fl = strlen(family);
            const char *suf = strncmp(s->name, family, fl) == 0 ? s->name + fl : "";
            ok = !strcmp(suf, "_bucket") || !strcmp(suf, "_sum") || !strcmp(suf, "_count");
            if (ok && (strcmp(suf, "_bucket") == 0) != (p_label(s, "le") != NULL))
                return p_fail(out, lineno, "le on a non-bucket or bucket without le");
        } else {
            ok = strcmp(s->name, family) == 0;
        }
        if (!ok) return p_fail(out, lineno, "sample outside its family");
        strcpy(s->family, family);
        strcpy(s->type, type);
        char key[1024], other[1024];
        p_series_key(s, true, key, sizeof key);
        for (int i = 0; i < out->n; i++) {
            p_series_key(&out->s[i], true, other, sizeof other);
            if (strcmp(key, other) == 0) return p_fail(out, lineno, "repeated series");
        }
        out->n++;
        p = eol + 1;
    }

    /* Histogram series: cumulative buckets ending in +Inf == _count. */
    for (int i = 0; i < out->n; i++) {
        p_sample *b = &out->s[i];
        if (strcmp(b->type, "histogram") != 0 || !p_label(b, "le")) continue;
        char key[1024], other[1024];
        p_series_key(b, false, key, sizeof key);
        /* Only start at the first bucket of each series. */
        bool first = true;
        for (int j = 0; j < i; j++) {
            p_series_key(&out->s[j], false, other, sizeof other);
            if (p_label(&out->s[j], "le") && strcmp(key, other) == 0) first = false;
        }
        if (!first) continue;
        double prev_le = -INFINITY, prev_count = 0, last_count = -1;
        const char *last_le = NULL;
        for (int j = i; j < out->n; j++) {
            p_series_key(&out->s[j], false, other, sizeof other);
            const char *le = p_label(&out->s[j], "le");
            if (!le || strcmp(key, other) != 0) continue;
            double lev;
            if (!p_value(le, strlen(le), &lev) || !(lev > prev_le))
                return p_fail(out, 0, "le not ascending");
            if (out->s[j].value < prev_count) return p_fail(out, 0, "buckets not cumulative");
            prev_le = lev;
            prev_count = last_count = out->s[j].value;
            last_le = le;
        }
        if (!last_le || strcmp(last_le, "+Inf") != 0) return p_fail(out, 0, "no +Inf bucket");
        bool count_ok = false;
        for (int j = 0; j < out->n; j++) {
            p_series_key(&out->s[j], false, other, sizeof other);
            size_t fl = strlen(out->s[j].family);
            if (strcmp(key, other) == 0 && strcmp(out->s[j].name + fl, "_count") == 0)
                count_ok = out->s[j].value == last_count;
        }
        if (!count_ok) return p_fail(out, 0, "_count differs from the +Inf bucket");
    }
    return 0;
}

/* The value of sample `name` whose labels include l1=v1 (and l2=v2); NAN
 * when absent. */
static double p_get(const parsed *ps, const char *name, const char *l1, const char *v1,
                    const char *l2, const char *v2)
{
    for (int i = 0; i < ps->n; i++) {
        const p_sample *s = &ps->s[i];
        if (strcmp(s->name, name) != 0) continue;
        const char *a = l1 ? p_label(s, l1) : NULL;
        const char *b = l2 ? p_label(s, l2) : NULL;
        if (l1 && (!a || strcmp(a, v1) != 0)) continue;
        if (l2 && (!b || strcmp(b, v2) != 0)) continue;
        return s->value;
    }
    return NAN;
}

/* ---- the sample registry (also what --dump prints) ---- */

static const char *const WEIRD_PARTITION = "weird \"p\"\\\nx";

static int sample_collector(metrics_buf *out, void *arg)
{
    int *calls = arg;
    (*calls)++;
    int rc =
        metrics_write_family(out, "embedq_test_partition_lag",
                             "Messages behind the head, per partition (broker).", METRICS_GAUGE);
    if (rc == 0)
        rc = metrics_write_sample(out, "embedq_test_partition_lag",
                                  (metrics_label[]){{"partition", "0"}}, 1, 12);
    if (rc == 0)
        rc = metrics_write_sample(out, "embedq_test_partition_lag",
                                  (metrics_label[]){{"partition", WEIRD_PARTITION}}, 1, 1e21);
    if (rc == 0)
        rc = metrics_write_family(out, "embedq_test_big_total", "A counter beyond 2^53.",
                                  METRICS_COUNTER);
    if (rc == 0)
        rc = metrics_write_sample_u64(out, "embedq_test_big_total", NULL, 0,
                                      18446744073709551615ull);
    if (rc == 0)
        rc = metrics_write_family(out, "embedq_test_ratio", "Not a number yet.", METRICS_GAUGE);
    if (rc == 0) rc = metrics_write_sample(out, "embedq_test_ratio", NULL, 0, NAN);
    return rc;
}

static metrics_registry *sample_registry(int *collector_calls)
{
    metrics_registry *reg = metrics_registry_new();
    metrics_counter *c =
        metrics_counter_new(reg, "embedq_test_messages_total", "Messages consumed.");
    metrics_counter_add(c, 2);
    metrics_counter_inc(c);

    metrics_gauge *g =
        metrics_gauge_new(reg, "embedq_test_in_flight", "Line one\nback\\slash \"quoted\"");
    metrics_gauge_set(g, 1.0);
    metrics_gauge_add(g, 2.0);
    metrics_gauge_dec(g);
    metrics_gauge_add(g, 0.5);

    const double bounds[] = {0.25, 1, 2.5, 10};
    metrics_histogram *h =
        metrics_histogram_new(reg, "embedq_test_batch_seconds", "Batch time.", bounds, 4);
    const double obs[] = {0.125, 0.25, 0.5, 3, 100};
    for (size_t i = 0; i < 5; i++)
        metrics_histogram_observe(h, obs[i]);

    metrics_family *dead = metrics_counter_family_new(reg, "embedq_test_dead_letters_total",
                                                      "Dead letters by reason.", "reason", NULL, 2);
    metrics_counter_inc(metrics_family_counter(dead, "bad_json", NULL));
    metrics_counter_inc(metrics_family_counter(dead, "too_long", NULL));
    metrics_counter_inc(metrics_family_counter(dead, "bad_json", NULL));
    metrics_counter_add(metrics_family_counter(dead, "third", NULL), 5); /* full: overflow */

    metrics_family *depth = metrics_gauge_family_new(reg, "embedq_test_queue_depth", "Queued.",
                                                     "topic", "partition", 8);
    metrics_gauge_set(metrics_family_gauge(depth, "in", "0"), 7);
    metrics_gauge_set(metrics_family_gauge(depth, "in", "1"), -3);

    const double tb[] = {1, 8, 64};
    metrics_family *tok =
        metrics_histogram_family_new(reg, "embedq_test_tokens", "Tokens.", "kind", NULL, 4, tb, 3);
    metrics_histogram_observe(metrics_family_histogram(tok, "query", NULL), 4);
    metrics_histogram_observe(metrics_family_histogram(tok, "query", NULL), 100);
    metrics_histogram_observe(metrics_family_histogram(tok, "doc", NULL), 1);

    metrics_counter_family_new(reg, "embedq_test_empty_total", "No series yet.", "reason", NULL, 4);
    metrics_registry_add_collector(reg, sample_collector, collector_calls);
    return reg;
}

static const char *const SAMPLE_EXPECTED[] = {
    "# HELP embedq_test_messages_total Messages consumed.",
    "# TYPE embedq_test_messages_total counter",
    "embedq_test_messages_total 3",
    "# HELP embedq_test_in_flight Line one\\nback\\\\slash \"quoted\"",
    "# TYPE embedq_test_in_flight gauge",
    "embedq_test_in_flight 2.5",
    "# HELP embedq_test_batch_seconds Batch time.",
    "# TYPE embedq_test_batch_seconds histogram",
    "embedq_test_batch_seconds_bucket{le=\"0.25\"} 2",
    "embedq_test_batch_seconds_bucket{le=\"1\"} 3",
    "embedq_test_batch_seconds_bucket{le=\"2.5\"} 3",
    "embedq_test_batch_seconds_bucket{le=\"10\"} 4",
    "embedq_test_batch_seconds_bucket{le=\"+Inf\"} 5",
    "embedq_test_batch_seconds_sum 103.875",
    "embedq_test_batch_seconds_count 5",
    "# HELP embedq_test_dead_letters_total Dead letters by reason.",
    "# TYPE embedq_test_dead_letters_total counter",
    "embedq_test_dead_letters_total{reason=\"bad_json\"} 2",
    "embedq_test_dead_letters_total{reason=\"too_long\"} 1",
    "embedq_test_dead_letters_total{reason=\"_other\"} 5",
    "# HELP embedq_test_queue_depth Queued.",
    "# TYPE embedq_test_queue_depth gauge",
    "embedq_test_queue_depth{topic=\"in\",partition=\"0\"} 7",
    "embedq_test_queue_depth{topic=\"in\",partition=\"1\"} -3",
    "# HELP embedq_test_tokens Tokens.",
    "# TYPE embedq_test_tokens histogram",
    "embedq_test_tokens_bucket{kind=\"query\",le=\"1\"} 0",
    "embedq_test_tokens_bucket{kind=\"query\",le=\"8\"} 1",
    "embedq_test_tokens_bucket{kind=\"query\",le=\"64\"} 1",
    "embedq_test_tokens_bucket{kind=\"query\",le=\"+Inf\"} 2",
    "embedq_test_tokens_sum{kind=\"query\"} 104",
    "embedq_test_tokens_count{kind=\"query\"} 2",
    "embedq_test_tokens_bucket{kind=\"doc\",le=\"1\"} 1",
    "embedq_test_tokens_bucket{kind=\"doc\",le=\"8\"} 1",
    "embedq_test_tokens_bucket{kind=\"doc\",le=\"64\"} 1",
    "embedq_test_tokens_bucket{kind=\"doc\",le=\"+Inf\"} 1",
    "embedq_test_tokens_sum{kind=\"doc\"} 1",
    "embedq_test_tokens_count{kind=\"doc\"} 1",
    "# HELP embedq_test_empty_total No series yet.",
    "# TYPE embedq_test_empty_total counter",
    "# HELP embedq_test_partition_lag Messages behind the head, per partition (broker).",
    "# TYPE embedq_test_partition_lag gauge",
    "embedq_test_partition_lag{partition=\"0\"} 12",
    "embedq_test_partition_lag{partition=\"weird \\\"p\\\"\\\\\\nx\"} 1e+21",
    "# HELP embedq_test_big_total A counter beyond 2^53.",
    "# TYPE embedq_test_big_total counter",
    "embedq_test_big_total 18446744073709551615",
    "# HELP embedq_test_ratio Not a number yet.",
    "# TYPE embedq_test_ratio gauge",
    "embedq_test_ratio NaN",
};

static void test_render_lines(void)
{
    int calls = 0;
    metrics_registry *reg = sample_registry(&calls);
    CHECK(metrics_registry_error(reg) == NULL);
    metrics_buf b = {0};
    CHECK(metrics_render(reg, &b) == 0);
    CHECK(calls == 1);
    size_t n_expected = sizeof SAMPLE_EXPECTED / sizeof *SAMPLE_EXPECTED;
    const char *p = b.data;
    for (size_t i = 0; i < n_expected; i++) {
        const char *eol = p ? strchr(p, '\n') : NULL;
        if (!eol) {
            fprintf(stderr, "render: missing line %zu: %s\n", i + 1, SAMPLE_EXPECTED[i]);
            failures++;
            break;
        }
        size_t n = (size_t)(eol - p);
        if (n != strlen(SAMPLE_EXPECTED[i]) || memcmp(p, SAMPLE_EXPECTED[i], n) != 0) {
            fprintf(stderr, "render line %zu:\n  got:  %.*s\n  want: %s\n", i + 1, (int)n, p,
                    SAMPLE_EXPECTED[i]);
            failures++;
        }
        p = eol + 1;
    }
    CHECK(p && *p == '\0'); /* nothing after the expected lines */

    /* The independent reader accepts it and reads the values back. */
    static parsed ps;
    int rc = parse_exposition(b.data, &ps);
    if (rc) fprintf(stderr, "parse: %s\n", ps.err);
    CHECK(rc == 0);
    CHECK(p_get(&ps, "embedq_test_partition_lag", "partition", WEIRD_PARTITION, NULL, NULL) ==
          1e21);
    CHECK(p_get(&ps, "embedq_test_queue_depth", "topic", "in", "partition", "1") == -3);
    CHECK(p_get(&ps, "embedq_test_batch_seconds_sum", NULL, NULL, NULL, NULL) == 103.875);
    CHECK(isnan(p_get(&ps, "embedq_test_ratio", NULL, NULL, NULL, NULL)));

    /* Rendering appends: a second render doubles the text. */
    size_t len1 = b.len;
    CHECK(metrics_render(reg, &b) == 0);
    CHECK(b.len == 2 * len1 && memcmp(b.data, b.data + len1, len1) == 0);
    metrics_buf_free(&b);
    metrics_registry_free(reg);
}

static void test_escaping(void)
{
    metrics_buf b = {0};
    const char *v = "a\\b\"c\nd";
    CHECK(metrics_write_sample(&b, "x", (metrics_label[]){{"l", v}, {"m", ""}}, 2, 1) == 0);
    CHECK(strcmp(b.data, "x{l=\"a\\\\b\\\"c\\nd\",m=\"\"} 1\n") == 0);
    b.len = 0;
    CHECK(metrics_write_family(&b, "x", "q\"\\\n", METRICS_UNTYPED) == 0);
    CHECK(strcmp(b.data, "# HELP x q\"\\\\\\n\n# TYPE x untyped\n") == 0);
    b.len = 0;
    CHECK(metrics_write_family(&b, "x", NULL, METRICS_GAUGE) == 0); /* no HELP line */
    CHECK(strcmp(b.data, "# TYPE x gauge\n") == 0);
    /* Invalid names are refused, and nothing is written. */
    b.len = 0;
    b.data[0] = '\0';
    CHECK(metrics_write_sample(&b, "1x", NULL, 0, 1) < 0);
    CHECK(metrics_write_sample(&b, "x", (metrics_label[]){{"a:b", "v"}}, 1, 1) < 0);
    CHECK(metrics_write_sample(&b, "x", (metrics_label[]){{"", "v"}}, 1, 1) < 0);
    CHECK(metrics_write_family(&b, "a-b", "h", METRICS_GAUGE) < 0);
    CHECK(b.len == 0);
    /* UTF-8 and other bytes pass through unescaped. */
    CHECK(metrics_write_sample(&b, "x", (metrics_label[]){{"l", "é\t}"}}, 1, 0) == 0);
    CHECK(strcmp(b.data, "x{l=\"é\t}\"} 0\n") == 0);
    metrics_buf_free(&b);
}

static void test_format_double(void)
{
    struct {
        double v;
        const char *s;
    } cases[] = {
        {0.1, "0.1"},
        {1e-5, "1e-05"},
        {1, "1"},
        {-2.5, "-2.5"},
        {1e21, "1e+21"},
        {123456789012.0, "123456789012"},
        {0.30000000000000004, "0.30000000000000004"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
        {-0.0, "-0"},
        {9007199254740993.0, "9007199254740992"},
        {5e-324, "4.94065645841247e-324"},
    };
    char buf[32];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        metrics_format_double(buf, cases[i].v);
        if (strcmp(buf, cases[i].s) != 0) {
            fprintf(stderr, "format %.17g: got %s want %s\n", cases[i].v, buf, cases[i].s);
            failures++;
        }
    }
    /* Every finite double reads back exactly. */
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double d;
        memcpy(&d, &x, sizeof d);
        if (!isfinite(d)) continue;
        metrics_format_double(buf, d);
        if (strtod(buf, NULL) != d) {
            fprintf(stderr, "round trip failed: %s\n", buf);
            failures++;
            break;
        }
    }
}

static void test_validation(void)
{
    metrics_registry *reg = metrics_registry_new();
    CHECK(metrics_registry_error(reg) == NULL);
    CHECK(metrics_counter_new(reg, "9bad", "h") == NULL);
    const char *e = metrics_registry_error(reg);
    CHECK(e && strstr(e, "9bad"));
    CHECK(metrics_counter_new(reg, "ok_total", "h") != NULL);
    CHECK(metrics_gauge_new(reg, "ok_total", "h") == NULL); /* duplicate */
    CHECK(strstr(metrics_registry_error(reg), "9bad"));     /* the first error is kept */
    const double inc[] = {1, 2}, dec[] = {2, 1}, nan_b[] = {1, NAN}, inf_b[] = {1, INFINITY};
    CHECK(metrics_histogram_new(reg, "h1", "h", dec, 2) == NULL);
    CHECK(metrics_histogram_new(reg, "h2", "h", nan_b, 2) == NULL);
    CHECK(metrics_histogram_new(reg, "h3", "h", inf_b, 2) == NULL);
    CHECK(metrics_histogram_new(reg, "h4", "h", inc, 0) == NULL);
    CHECK(metrics_histogram_new(reg, "h5", "h", inc, 2) != NULL);
    CHECK(metrics_histogram_family_new(reg, "h6", "h", "le", NULL, 4, inc, 2) == NULL);
    CHECK(metrics_counter_family_new(reg, "f1", "h", "__x", NULL, 4) == NULL);
    CHECK(metrics_counter_family_new(reg, "f2", "h", "a", "a", 4) == NULL);
    CHECK(metrics_counter_family_new(reg, "f3", "h", NULL, NULL, 4) == NULL);
    CHECK(metrics_counter_family_new(reg, "f4", "h", "a", NULL, 0) == NULL);
    CHECK(metrics_counter_family_new(reg, "f5", "h", "a:b", NULL, 4) == NULL);
    metrics_family *f = metrics_gauge_family_new(reg, "f6", "h", "a", NULL, 4);
    CHECK(f != NULL);
    /* Wrong-typed access and NULLs are harmless. */
    CHECK(metrics_family_counter(f, "x", NULL) == NULL);
    CHECK(metrics_family_histogram(f, "x", NULL) == NULL);
    CHECK(metrics_family_counter(NULL, "x", NULL) == NULL);
    metrics_counter_inc(NULL);
    metrics_counter_add(NULL, 3);
    metrics_gauge_set(NULL, 1);
    metrics_gauge_inc(NULL);
    metrics_histogram_observe(NULL, 1);
    CHECK(metrics_counter_get(NULL) == 0 && metrics_gauge_get(NULL) == 0);
    /* NULL label values read as "", and the same series comes back. */
    CHECK(metrics_family_gauge(f, NULL, NULL) == metrics_family_gauge(f, "", "ignored"));
    /* Asking for the overflow value gives the overflow series. */
    metrics_gauge *o = metrics_family_gauge(f, METRICS_OVERFLOW, NULL);
    for (int i = 0; i < 3; i++) {
        char v[8];
        snprintf(v, sizeof v, "v%d", i);
        CHECK(metrics_family_gauge(f, v, NULL) != o);
    }
    CHECK(metrics_family_gauge(f, "v9", NULL) == o); /* 4 series exist: full */
    CHECK(metrics_family_gauge(f, "v1", NULL) != o); /* existing ones still found */
    metrics_registry_free(reg);

    double b[5];
    CHECK(metrics_buckets_exponential(b, 5, 0.001, 10) == 5);
    CHECK(b[0] == 0.001 && fabs(b[4] - 10) < 1e-12);
    CHECK(metrics_buckets_linear(b, 3, 0, 2.5) == 3 && b[2] == 5);
    CHECK(metrics_buckets_exponential(b, 5, 0, 10) < 0);
    CHECK(metrics_buckets_exponential(b, 5, 1, 1) < 0);
    CHECK(metrics_buckets_linear(b, 3, 0, 0) < 0);
    CHECK(metrics_buckets_exponential(b, 0, 1, 2) < 0);
}

/* ---- concurrency ---- */

#define N_THREADS 4
#define N_OBS     200000

typedef struct {
    int id;
    metrics_histogram *h;
    metrics_counter *c;
    metrics_gauge *g;
    metrics_family *fam;
} worker_arg;

static void *observer_main(void *p)
{
    worker_arg *a = p;
    char mine[16];
    snprintf(mine, sizeof mine, "t%d", a->id);
    for (int i = 0; i < N_OBS; i++) {
        /* Integer-valued observations: every partial sum is exact. */
        metrics_histogram_observe(a->h, (double)(i % 10));
        metrics_counter_inc(a->c);
        metrics_gauge_inc(a->g);
        metrics_gauge_dec(a->g);
        metrics_gauge_add(a->g, 0.5);
        /* Label sets created concurrently: one per thread and one shared. */
        metrics_counter_inc(metrics_family_counter(a->fam, (i & 1) ? mine : "shared", "x"));
    }
    return NULL;
}

typedef struct {
    metrics_registry *reg;
    atomic_int *stop;
    int renders, bad;
    char err[256];
} render_arg;

static void *render_main(void *p)
{
    render_arg *a = p;
    static parsed ps;
    metrics_buf b = {0};
    while (!atomic_load(a->stop)) {
        b.len = 0;
        if (metrics_render(a->reg, &b) != 0) {
            a->bad++;
            continue;
        }
        if (parse_exposition(b.data, &ps) != 0) {
            if (!a->bad) snprintf(a->err, sizeof a->err, "%s", ps.err);
            a->bad++;
        }
        a->renders++;
    }
    metrics_buf_free(&b);
    return NULL;
}

static void test_concurrency(void)
{
    metrics_registry *reg = metrics_registry_new();
    double bounds[9];
    CHECK(metrics_buckets_linear(bounds, 9, 0, 1) == 9); /* 0..8; 9 lands in +Inf */
    metrics_histogram *h = metrics_histogram_new(reg, "conc_seconds", "h", bounds, 9);
    metrics_counter *c = metrics_counter_new(reg, "conc_total", "c");
    metrics_gauge *g = metrics_gauge_new(reg, "conc_gauge", "g");
    metrics_family *fam = metrics_counter_family_new(reg, "conc_fam_total", "f", "who", "what", 16);
    CHECK(metrics_registry_error(reg) == NULL);

    atomic_int stop = 0;
    render_arg ra = {reg, &stop, 0, 0, ""};
    pthread_t rt, th[N_THREADS];
    worker_arg wa[N_THREADS];
    pthread_create(&rt, NULL, render_main, &ra);
    for (int i = 0; i < N_THREADS; i++) {
        wa[i] = (worker_arg){i, h, c, g, fam};
        pthread_create(&th[i], NULL, observer_main, &wa[i]);
    }
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    atomic_store(&stop, 1);
    pthread_join(rt, NULL);
    if (ra.bad) fprintf(stderr, "concurrent render: %d bad (%s)\n", ra.bad, ra.err);
    CHECK(ra.bad == 0);
    CHECK(ra.renders > 0);

    const uint64_t total = (uint64_t)N_THREADS * N_OBS;
    uint64_t count;
    double sum;
    metrics_histogram_get(h, &count, &sum);
    CHECK(count == total);
    CHECK(sum == (double)N_THREADS * (N_OBS / 10) * 45.0);
    CHECK(metrics_counter_get(c) == total);
    CHECK(metrics_gauge_get(g) == 0.5 * (double)total);

    metrics_buf b = {0};
    CHECK(metrics_render(reg, &b) == 0);
    static parsed ps;
    CHECK(parse_exposition(b.data, &ps) == 0);
    /* Each bucket le=k holds the values 0..k: (k+1)/10 of all. */
    for (int k = 0; k < 9; k++) {
        char le[8];
        snprintf(le, sizeof le, "%d", k);
        CHECK(p_get(&ps, "conc_seconds_bucket", "le", le, NULL, NULL) ==
              (double)(total / 10 * (uint64_t)(k + 1)));
    }
    CHECK(p_get(&ps, "conc_seconds_bucket", "le", "+Inf", NULL, NULL) == (double)total);
    CHECK(p_get(&ps, "conc_seconds_count", NULL, NULL, NULL, NULL) == (double)total);
    CHECK(p_get(&ps, "conc_fam_total", "who", "shared", "what", "x") ==
          (double)(N_THREADS * N_OBS / 2));
    for (int i = 0; i < N_THREADS; i++) {
        char who[8];
        snprintf(who, sizeof who, "t%d", i);
        CHECK(p_get(&ps, "conc_fam_total", "who", who, "what", "x") == (double)(N_OBS / 2));
    }
    /* Exactly 5 series: no duplicates from racing creations, no overflow. */
    int n_fam = 0;
    for (int i = 0; i < ps.n; i++)
        n_fam += strcmp(ps.s[i].name, "conc_fam_total") == 0;
    CHECK(n_fam == N_THREADS + 1);
    metrics_buf_free(&b);
    metrics_registry_free(reg);
}

/* The parser itself must reject what it claims to reject. */
static void test_parser_rejects(void)
{
    static parsed ps;
    const char *bad[] = {
        "x 1\n",                             /* no TYPE */
        "# TYPE x gauge\nx{a=\"b\\t\"} 1\n", /* bad escape */
        "# TYPE x gauge\nx 1",               /* no final newline */
        "# TYPE x gauge\nx 1x\n",            /* value */
        "# TYPE x gauge\nx 1\nx 2\n",        /* repeated series */
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n", /* no +Inf */
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 1\n",
        "# TYPE x gauge\ny 1\n",                 /* outside family */
        "# TYPE x gauge\nx 1\n# TYPE x gauge\n", /* repeated TYPE */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (parse_exposition(bad[i], &ps) == 0) {
            fprintf(stderr, "parser accepted bad input %zu\n", i);
            failures++;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--dump") == 0) {
        int calls = 0;
        metrics_registry *reg = sample_registry(&calls);
        metrics_buf b = {0};
        int rc = metrics_render(reg, &b);
        if (rc == 0) fwrite(b.data, 1, b.len, stdout);
        metrics_buf_free(&b);
        metrics_registry_free(reg);
        return rc == 0 ? 0 : 1;
    }
    test_parser_rejects();
    test_render_lines();
    test_escaping();
    test_format_double();
    test_validation();
    test_concurrency();
    if (failures) {
        fprintf(stderr, "metrics_test: %d failure(s)\n", failures);
        return 1;
    }
    printf("metrics_test: ok\n");
    return 0;
}
