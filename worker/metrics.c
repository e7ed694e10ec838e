/* metrics.c - Prometheus metrics and their text exposition (format 0.0.4).
 *
 * Every metric is a family: an unlabeled metric is a family with no label
 * names and exactly one series, created with it. A labeled family owns a
 * fixed array of max_series series pointers; a series is published by
 * storing its pointer and then bumping n_items with release order, so a
 * reader that loads n_items with acquire order sees fully built series
 * without taking the lock. Series are never removed before the registry is
 * freed, which keeps every pointer handed out stable.
 *
 * Doubles (gauge values, histogram sums) live in _Atomic uint64_t as their
 * bit patterns and are updated with compare-exchange loops; counters and
 * bucket counts are plain relaxed fetch_adds. A histogram's buckets are kept
 * non-cumulative (one increment per observation) and summed at render time,
 * so `_count` and the `+Inf` bucket are the same number by construction.
 */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_ASSERT(cond)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct metrics_counter {
    _Atomic uint64_t v;
};

struct metrics_gauge {
    _Atomic uint64_t bits; /* a double's bit pattern */
};

struct metrics_histogram {
    const double *bounds;      /* (n) the family's bounds, shared       */
    size_t n;                  /* finite bounds; buckets has n + 1      */
    _Atomic uint64_t sum_bits; /* a double's bit pattern                */
    _Atomic uint64_t *buckets; /* (n + 1) non-cumulative; [n] is +Inf   */
};

typedef struct series {
    char *values[2]; /* label values (n_labels of them), malloc'd */
    union {
        metrics_counter counter;
        metrics_gauge gauge;
        metrics_histogram hist;
    } m;
} series;

struct metrics_family {
    metrics_family *next; /* registry order */
    metrics_type type;
    char *name, *help;
    int n_labels; /* 0, 1 or 2 */
    char *label_names[2];
    double *bounds; /* (n_bounds) histogram families only */
    size_t n_bounds;
    size_t max_series;
    series **items;            /* (max_series) published series          */
    _Atomic size_t n_items;    /* release-stored after items[n] is set    */
    series *overflow;          /* labeled families only                  */
    atomic_bool overflow_used; /* render the overflow series             */
    pthread_mutex_t lock;      /* creation of series only                */
};

typedef struct collector {
    metrics_collect_cb cb;
    void *arg;
} collector;

struct metrics_registry {
    pthread_mutex_t lock; /* creation, rendering, collectors */
    metrics_family *head, *tail;
    collector *collectors;
    size_t n_collectors, cap_collectors;
    char err[256]; /* first creation failure, "" if none */
};

/* ---- small helpers ---- */

static uint64_t dbl_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bits_dbl(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void atomic_add_double(_Atomic uint64_t *bits, double d)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(bits, &old, dbl_bits(bits_dbl(old) + d),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static bool valid_metric_name(const char *s)
{
    if (!s || !*s) return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(p > s && c >= '0' && c <= '9')) return false;
    }
    return true;
}

static bool valid_label_name(const char *s)
{
    if (!s || !*s) return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(p > s && c >= '0' && c <= '9')) return false;
    }
    return true;
}

static const char *type_name(metrics_type t)
{
    switch (t) {
    case METRICS_COUNTER:
        return "counter";
    case METRICS_GAUGE:
        return "gauge";
    case METRICS_HISTOGRAM:
        return "histogram";
    default:
        return "untyped";
    }
}

/* ---- metrics_buf ---- */

void metrics_buf_init(metrics_buf *b)
{
    memset(b, 0, sizeof *b);
}

void metrics_buf_free(metrics_buf *b)
{
    if (!b) return;
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* Makes room for n more bytes plus the NUL. 0 or -ENOMEM. */
static int buf_reserve(metrics_buf *b, size_t n)
{
    if (b->failed) return -ENOMEM;
    if (b->len + n + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) {
        if (cap > SIZE_MAX / 2) goto oom;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) goto oom;
    b->data = p;
    b->cap = cap;
    return 0;
oom:
    b->failed = 1;
    return -ENOMEM;
}

int metrics_buf_append(metrics_buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n) < 0) return -ENOMEM;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int buf_puts(metrics_buf *b, const char *s)
{
    return metrics_buf_append(b, s, strlen(s));
}

int metrics_buf_printf(metrics_buf *b, const char *fmt, ...)
{
    if (b->failed) return -ENOMEM;
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return -EINVAL;
    if ((size_t)n < sizeof small) return metrics_buf_append(b, small, (size_t)n);
    if (buf_reserve(b, (size_t)n) < 0) return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* Appends s with the given characters escaped: label values escape \ " and
 * newline; HELP text escapes \ and newline only. */
static int buf_escaped(metrics_buf *b, const char *s, bool quote)
{
    const char *run = s;
    for (const char *p = s;; p++) {
        const char *esc = NULL;
        if (*p == '\\')
            esc = "\\\\";
        else if (*p == '\n')
            esc = "\\n";
        else if (*p == '"' && quote)
            esc = "\\\"";
        else if (*p != '\0')
            continue;
        if (metrics_buf_append(b, run, (size_t)(p - run)) < 0) return -ENOMEM;
        if (!esc) return 0;
        if (buf_puts(b, esc) < 0) return -ENOMEM;
        run = p + 1;
    }
}

char *metrics_format_double(char buf[32], double v)
{
    if (isnan(v)) {
        strcpy(buf, "NaN");
    } else if (isinf(v)) {
        strcpy(buf, v > 0 ? "+Inf" : "-Inf");
    } else {
        /* The shortest of 15..17 significant digits that reads back as v. */
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, 32, "%.*g", prec, v);
            if (strtod(buf, NULL) == v) break;
        }
    }
    return buf;
}

/* name{n0="v0",n1="v1",le="le"} : labels from parallel arrays, plus an
 * optional le label (histogram buckets). */
static int write_series_name(metrics_buf *b, const char *name, const char *suffix,
                             char *const *names, char *const *values, int n, const char *le)
{
    if (buf_puts(b, name) < 0 || buf_puts(b, suffix) < 0) return -ENOMEM;
    if (n == 0 && !le) return 0;
    if (buf_puts(b, "{") < 0) return -ENOMEM;
    for (int i = 0; i < n; i++) {
        if (i > 0 && buf_puts(b, ",") < 0) return -ENOMEM;
        if (buf_puts(b, names[i]) < 0 || buf_puts(b, "=\"") < 0) return -ENOMEM;
        if (buf_escaped(b, values[i] ? values[i] : "", true) < 0) return -ENOMEM;
        if (buf_puts(b, "\"") < 0) return -ENOMEM;
    }
    if (le) {
        if (n > 0 && buf_puts(b, ",") < 0) return -ENOMEM;
        if (buf_puts(b, "le=\"") < 0 || buf_puts(b, le) < 0 || buf_puts(b, "\"") < 0)
            return -ENOMEM;
    }
    return buf_puts(b, "}");
}

int metrics_write_family(metrics_buf *out, const char *name, const char *help, metrics_type type)
{
    if (!valid_metric_name(name)) return -EINVAL;
    if (help) {
        if (metrics_buf_printf(out, "# HELP %s ", name) < 0 || buf_escaped(out, help, false) < 0 ||
            buf_puts(out, "\n") < 0)
            return -ENOMEM;
    }
    return metrics_buf_printf(out, "# TYPE %s %s\n", name, type_name(type));
}

/* Shared by the two public sample writers: value already formatted. */
static int write_sample_text(metrics_buf *out, const char *name, const metrics_label *labels,
                             size_t n_labels, const char *value)
{
    if (!valid_metric_name(name)) return -EINVAL;
    if (n_labels > 0 && !labels) return -EINVAL;
    for (size_t i = 0; i < n_labels; i++)
        if (!valid_label_name(labels[i].name)) return -EINVAL;
    if (buf_puts(out, name) < 0) return -ENOMEM;
    if (n_labels > 0) {
        if (buf_puts(out, "{") < 0) return -ENOMEM;
        for (size_t i = 0; i < n_labels; i++) {
            if (i > 0 && buf_puts(out, ",") < 0) return -ENOMEM;
            if (metrics_buf_printf(out, "%s=\"", labels[i].name) < 0) return -ENOMEM;
            if (buf_escaped(out, labels[i].value ? labels[i].value : "", true) < 0) return -ENOMEM;
            if (buf_puts(out, "\"") < 0) return -ENOMEM;
        }
        if (buf_puts(out, "}") < 0) return -ENOMEM;
    }
    return metrics_buf_printf(out, " %s\n", value);
}

int metrics_write_sample(metrics_buf *out, const char *name, const metrics_label *labels,
                         size_t n_labels, double value)
{
    char v[32];
    return write_sample_text(out, name, labels, n_labels, metrics_format_double(v, value));
}

int metrics_write_sample_u64(metrics_buf *out, const char *name, const metrics_label *labels,
                             size_t n_labels, uint64_t value)
{
    char v[32];
    snprintf(v, sizeof v, "%llu", (unsigned long long)value);
    return write_sample_text(out, name, labels, n_labels, v);
}

/* ---- bucket helpers ---- */

int metrics_buckets_exponential(double *out, size_t n, double start, double factor)
{
    if (n == 0 || !(start > 0) || !(factor > 1) || !isfinite(start) || !isfinite(factor))
        return -EINVAL;
    double v = start;
    for (size_t i = 0; i < n; i++, v *= factor) {
        if (!isfinite(v)) return -EINVAL;
        out[i] = v;
    }
    return (int)n;
}

int metrics_buckets_linear(double *out, size_t n, double start, double width)
{
    if (n == 0 || !(width > 0) || !isfinite(start) || !isfinite(width)) return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        out[i] = start + (double)i * width;
        if (!isfinite(out[i])) return -EINVAL;
    }
    return (int)n;
}

/* ---- series and families ---- */

static void series_free(const metrics_family *f, series *s)
{
    if (!s) return;
    free(s->values[0]);
    free(s->values[1]);
    if (f->type == METRICS_HISTOGRAM) free(s->m.hist.buckets);
    free(s);
}

/* A new zeroed series with copies of the label values; NULL when out of
 * memory. */
static series *series_new(const metrics_family *f, const char *v1, const char *v2)
{
    series *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    const char *vals[2] = {v1, v2};
    for (int i = 0; i < f->n_labels; i++)
        if (!(s->values[i] = dup_str(vals[i]))) goto oom;
    switch (f->type) {
    case METRICS_COUNTER:
        atomic_init(&s->m.counter.v, 0);
        break;
    case METRICS_GAUGE:
        atomic_init(&s->m.gauge.bits, dbl_bits(0.0));
        break;
    case METRICS_HISTOGRAM:
        s->m.hist.bounds = f->bounds;
        s->m.hist.n = f->n_bounds;
        atomic_init(&s->m.hist.sum_bits, dbl_bits(0.0));
        s->m.hist.buckets = malloc((f->n_bounds + 1) * sizeof *s->m.hist.buckets);
        if (!s->m.hist.buckets) goto oom;
        for (size_t i = 0; i <= f->n_bounds; i++)
            atomic_init(&s->m.hist.buckets[i], 0);
        break;
    default:
        METRICS_ASSERT(0);
    }
    return s;
oom:
    series_free(f, s);
    return NULL;
}

static void family_free(metrics_family *f)
{
    if (!f) return;
    size_t n = atomic_load_explicit(&f->n_items, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        series_free(f, f->items[i]);
    series_free(f, f->overflow);
    free(f->items);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f->label_names[0]);
    free(f->label_names[1]);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* Records the first creation failure; returns NULL for `return fail(...)`. */
static void *reg_fail(metrics_registry *reg, const char *fmt, const char *what)
{
    pthread_mutex_lock(&reg->lock);
    if (!reg->err[0]) snprintf(reg->err, sizeof reg->err, fmt, what ? what : "(null)");
    pthread_mutex_unlock(&reg->lock);
    return NULL;
}

/* Creates, validates and registers a family. Unlabeled families get their
 * single series here. */
static metrics_family *family_new(metrics_registry *reg, metrics_type type, const char *name,
                                  const char *help, const char *label1, const char *label2,
                                  size_t max_series, const double *bounds, size_t n_bounds)
{
    if (!reg) return NULL;
    if (!valid_metric_name(name)) return reg_fail(reg, "metrics: invalid metric name '%s'", name);
    const char *labels[2] = {label1, label2};
    int n_labels = label1 ? (label2 ? 2 : 1) : 0;
    for (int i = 0; i < n_labels; i++) {
        if (!valid_label_name(labels[i]) || strncmp(labels[i], "__", 2) == 0 ||
            (type == METRICS_HISTOGRAM && strcmp(labels[i], "le") == 0))
            return reg_fail(reg, "metrics: invalid label name '%s'", labels[i]);
    }
    if (n_labels == 2 && strcmp(label1, label2) == 0)
        return reg_fail(reg, "metrics: repeated label name '%s'", label1);
    if (n_labels == 0) max_series = 1;
    if (max_series == 0) return reg_fail(reg, "metrics: %s: max_series must be >= 1", name);
    if (type == METRICS_HISTOGRAM) {
        if (!bounds || n_bounds == 0 || n_bounds > METRICS_MAX_BUCKETS)
            return reg_fail(reg, "metrics: %s: a histogram needs 1..64 bucket bounds", name);
        for (size_t i = 0; i < n_bounds; i++) {
            if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
                return reg_fail(reg, "metrics: %s: bucket bounds must be finite and increasing",
                                name);
        }
    }

    metrics_family *f = calloc(1, sizeof *f);
    if (!f) return reg_fail(reg, "metrics: %s: out of memory", name);
    pthread_mutex_init(&f->lock, NULL);
    f->type = type;
    f->n_labels = n_labels;
    f->max_series = max_series;
    atomic_init(&f->n_items, 0);
    atomic_init(&f->overflow_used, false);
    f->name = dup_str(name);
    f->help = dup_str(help ? help : "");
    f->items = calloc(max_series, sizeof *f->items);
    if (!f->name || !f->help || !f->items) goto oom;
    for (int i = 0; i < n_labels; i++)
        if (!(f->label_names[i] = dup_str(labels[i]))) goto oom;
    if (type == METRICS_HISTOGRAM) {
        if (!(f->bounds = malloc(n_bounds * sizeof *f->bounds))) goto oom;
        memcpy(f->bounds, bounds, n_bounds * sizeof *f->bounds);
        f->n_bounds = n_bounds;
    }
    if (n_labels == 0) {
        if (!(f->items[0] = series_new(f, NULL, NULL))) goto oom;
        atomic_store_explicit(&f->n_items, 1, memory_order_release);
    } else {
        const char *o = METRICS_OVERFLOW;
        if (!(f->overflow = series_new(f, o, o))) goto oom;
    }

    pthread_mutex_lock(&reg->lock);
    for (metrics_family *g = reg->head; g; g = g->next) {
        if (strcmp(g->name, name) == 0) {
            pthread_mutex_unlock(&reg->lock);
            family_free(f);
            return reg_fail(reg, "metrics: duplicate metric name '%s'", name);
        }
    }
    if (reg->tail)
        reg->tail->next = f;
    else
        reg->head = f;
    reg->tail = f;
    pthread_mutex_unlock(&reg->lock);
    return f;
oom:
    family_free(f);
    return reg_fail(reg, "metrics: %s: out of memory", name);
}

static bool series_matches(const metrics_family *f, const series *s, const char *v1, const char *v2)
{
    return strcmp(s->values[0], v1) == 0 && (f->n_labels < 2 || strcmp(s->values[1], v2) == 0);
}

/* The series for (v1, v2), created on first use; the overflow series when
 * the family is full or memory runs out. */
static series *family_series(metrics_family *f, const char *v1, const char *v2)
{
    if (f->n_labels == 0) return f->items[0];
    v1 = v1 ? v1 : "";
    v2 = f->n_labels == 2 ? (v2 ? v2 : "") : NULL;
    size_t n = atomic_load_explicit(&f->n_items, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (series_matches(f, f->items[i], v1, v2)) return f->items[i];
    if (strcmp(v1, METRICS_OVERFLOW) == 0 && (!v2 || strcmp(v2, METRICS_OVERFLOW) == 0))
        goto overflow;

    pthread_mutex_lock(&f->lock);
    size_t m = atomic_load_explicit(&f->n_items, memory_order_acquire);
    for (size_t i = n; i < m; i++) {
        if (series_matches(f, f->items[i], v1, v2)) {
            pthread_mutex_unlock(&f->lock);
            return f->items[i];
        }
    }
    series *s = m < f->max_series ? series_new(f, v1, v2) : NULL;
    if (s) {
        f->items[m] = s;
        atomic_store_explicit(&f->n_items, m + 1, memory_order_release);
    }
    pthread_mutex_unlock(&f->lock);
    if (s) return s;
overflow:
    atomic_store_explicit(&f->overflow_used, true, memory_order_relaxed);
    return f->overflow;
}

/* ---- public creation ---- */

metrics_counter *metrics_counter_new(metrics_registry *reg, const char *name, const char *help)
{
    metrics_family *f = family_new(reg, METRICS_COUNTER, name, help, NULL, NULL, 1, NULL, 0);
    return f ? &f->items[0]->m.counter : NULL;
}

metrics_gauge *metrics_gauge_new(metrics_registry *reg, const char *name, const char *help)
{
    metrics_family *f = family_new(reg, METRICS_GAUGE, name, help, NULL, NULL, 1, NULL, 0);
    return f ? &f->items[0]->m.gauge : NULL;
}

metrics_histogram *metrics_histogram_new(metrics_registry *reg, const char *name, const char *help,
                                         const double *bounds, size_t n_bounds)
{
    metrics_family *f =
        family_new(reg, METRICS_HISTOGRAM, name, help, NULL, NULL, 1, bounds, n_bounds);
    return f ? &f->items[0]->m.hist : NULL;
}

/* A labeled family needs label1; without it family_new would build an
 * unlabeled one. */
static metrics_family *labeled_family_new(metrics_registry *reg, metrics_type type,
                                          const char *name, const char *help, const char *label1,
                                          const char *label2, size_t max_series,
                                          const double *bounds, size_t n_bounds)
{
    if (!reg) return NULL;
    if (!label1) return reg_fail(reg, "metrics: %s: a family needs a label name", name);
    return family_new(reg, type, name, help, label1, label2, max_series, bounds, n_bounds);
}

metrics_family *metrics_counter_family_new(metrics_registry *reg, const char *name,
                                           const char *help, const char *label1, const char *label2,
                                           size_t max_series)
{
    return labeled_family_new(reg, METRICS_COUNTER, name, help, label1, label2, max_series, NULL,
                              0);
}

metrics_family *metrics_gauge_family_new(metrics_registry *reg, const char *name, const char *help,
                                         const char *label1, const char *label2, size_t max_series)
{
    return labeled_family_new(reg, METRICS_GAUGE, name, help, label1, label2, max_series, NULL, 0);
}

metrics_family *metrics_histogram_family_new(metrics_registry *reg, const char *name,
                                             const char *help, const char *label1,
                                             const char *label2, size_t max_series,
                                             const double *bounds, size_t n_bounds)
{
    return labeled_family_new(reg, METRICS_HISTOGRAM, name, help, label1, label2, max_series,
                              bounds, n_bounds);
}

metrics_counter *metrics_family_counter(metrics_family *f, const char *value1, const char *value2)
{
    if (!f || f->type != METRICS_COUNTER) return NULL;
    return &family_series(f, value1, value2)->m.counter;
}

metrics_gauge *metrics_family_gauge(metrics_family *f, const char *value1, const char *value2)
{
    if (!f || f->type != METRICS_GAUGE) return NULL;
    return &family_series(f, value1, value2)->m.gauge;
}

metrics_histogram *metrics_family_histogram(metrics_family *f, const char *value1,
                                            const char *value2)
{
    if (!f || f->type != METRICS_HISTOGRAM) return NULL;
    return &family_series(f, value1, value2)->m.hist;
}

/* ---- updates ---- */

void metrics_counter_inc(metrics_counter *c)
{
    if (c) atomic_fetch_add_explicit(&c->v, 1, memory_order_relaxed);
}

void metrics_counter_add(metrics_counter *c, uint64_t n)
{
    if (c) atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

uint64_t metrics_counter_get(const metrics_counter *c)
{
    return c ? atomic_load_explicit(&((metrics_counter *)c)->v, memory_order_relaxed) : 0;
}

void metrics_gauge_set(metrics_gauge *g, double v)
{
    if (g) atomic_store_explicit(&g->bits, dbl_bits(v), memory_order_relaxed);
}

void metrics_gauge_add(metrics_gauge *g, double d)
{
    if (g) atomic_add_double(&g->bits, d);
}

double metrics_gauge_get(const metrics_gauge *g)
{
    return g ? bits_dbl(atomic_load_explicit(&((metrics_gauge *)g)->bits, memory_order_relaxed))
             : 0.0;
}

void metrics_histogram_observe(metrics_histogram *h, double v)
{
    if (!h) return;
    /* First bound >= v; NaN compares false everywhere and lands in +Inf. */
    size_t lo = 0, hi = h->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= h->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&h->buckets[lo], 1, memory_order_relaxed);
    atomic_add_double(&h->sum_bits, v);
}

void metrics_histogram_get(const metrics_histogram *h, uint64_t *count, double *sum)
{
    uint64_t c = 0;
    double s = 0.0;
    if (h) {
        metrics_histogram *m = (metrics_histogram *)h;
        for (size_t i = 0; i <= h->n; i++)
            c += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
        s = bits_dbl(atomic_load_explicit(&m->sum_bits, memory_order_relaxed));
    }
    if (count) *count = c;
    if (sum) *sum = s;
}

/* ---- registry ---- */

metrics_registry *metrics_registry_new(void)
{
    metrics_registry *reg = calloc(1, sizeof *reg);
    if (!reg) return NULL;
    pthread_mutex_init(&reg->lock, NULL);
    return reg;
}

void metrics_registry_free(metrics_registry *reg)
{
    if (!reg) return;
    for (metrics_family *f = reg->head, *next; f; f = next) {
        next = f->next;
        family_free(f);
    }
    free(reg->collectors);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

const char *metrics_registry_error(const metrics_registry *reg)
{
    if (!reg) return "metrics: no registry";
    metrics_registry *r = (metrics_registry *)reg;
    pthread_mutex_lock(&r->lock);
    const char *e = r->err[0] ? r->err : NULL;
    pthread_mutex_unlock(&r->lock);
    return e;
}

int metrics_registry_add_collector(metrics_registry *reg, metrics_collect_cb cb, void *arg)
{
    if (!reg || !cb) return -EINVAL;
    pthread_mutex_lock(&reg->lock);
    int rc = 0;
    if (reg->n_collectors == reg->cap_collectors) {
        size_t cap = reg->cap_collectors ? 2 * reg->cap_collectors : 4;
        collector *c = realloc(reg->collectors, cap * sizeof *c);
        if (!c) {
            rc = -ENOMEM;
            goto out;
        }
        reg->collectors = c;
        reg->cap_collectors = cap;
    }
    reg->collectors[reg->n_collectors++] = (collector){cb, arg};
out:
    pthread_mutex_unlock(&reg->lock);
    return rc;
}

static int render_series(metrics_buf *b, const metrics_family *f, series *s)
{
    char v[32];
    char *const *names = f->label_names;
    switch (f->type) {
    case METRICS_COUNTER:
        if (write_series_name(b, f->name, "", names, s->values, f->n_labels, NULL) < 0)
            return -ENOMEM;
        return metrics_buf_printf(b, " %llu\n",
                                  (unsigned long long)metrics_counter_get(&s->m.counter));
    case METRICS_GAUGE:
        if (write_series_name(b, f->name, "", names, s->values, f->n_labels, NULL) < 0)
            return -ENOMEM;
        return metrics_buf_printf(b, " %s\n",
                                  metrics_format_double(v, metrics_gauge_get(&s->m.gauge)));
    case METRICS_HISTOGRAM: {
        metrics_histogram *h = &s->m.hist;
        uint64_t cum = 0;
        for (size_t i = 0; i <= h->n; i++) {
            cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
            const char *le = i < h->n ? metrics_format_double(v, h->bounds[i]) : "+Inf";
            if (write_series_name(b, f->name, "_bucket", names, s->values, f->n_labels, le) < 0 ||
                metrics_buf_printf(b, " %llu\n", (unsigned long long)cum) < 0)
                return -ENOMEM;
        }
        double sum = bits_dbl(atomic_load_explicit(&h->sum_bits, memory_order_relaxed));
        if (write_series_name(b, f->name, "_sum", names, s->values, f->n_labels, NULL) < 0 ||
            metrics_buf_printf(b, " %s\n", metrics_format_double(v, sum)) < 0)
            return -ENOMEM;
        if (write_series_name(b, f->name, "_count", names, s->values, f->n_labels, NULL) < 0 ||
            metrics_buf_printf(b, " %llu\n", (unsigned long long)cum) < 0)
            return -ENOMEM;
        return 0;
    }
    default:
        METRICS_ASSERT(0);
        return -EINVAL;
    }
}

int metrics_render(metrics_registry *reg, metrics_buf *out)
{
    if (!reg || !out) return -EINVAL;
    int rc = 0;
    pthread_mutex_lock(&reg->lock);
    for (metrics_family *f = reg->head; f && rc == 0; f = f->next) {
        rc = metrics_write_family(out, f->name, f->help, f->type);
        size_t n = atomic_load_explicit(&f->n_items, memory_order_acquire);
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = render_series(out, f, f->items[i]);
        if (rc == 0 && f->overflow && atomic_load_explicit(&f->overflow_used, memory_order_relaxed))
            rc = render_series(out, f, f->overflow);
    }
    /* Collectors run under the lock too: they must not create metrics. */
    for (size_t i = 0; i < reg->n_collectors; i++) {
        int r = reg->collectors[i].cb(out, reg->collectors[i].arg);
        if (r < 0 && rc == 0) rc = r;
    }
    pthread_mutex_unlock(&reg->lock);
    if (out->failed) return -ENOMEM;
    return rc;
}
