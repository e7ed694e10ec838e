/* metrics.h - Prometheus metrics: counters, gauges, histograms, labeled
 * families, and a registry that renders them in the text exposition format
 * 0.0.4 (what `/metrics` serves). See docs/metrics.md.
 *
 * Hot path: updating a metric is one or a few relaxed atomic operations
 * (C11 <stdatomic.h>); no lock, no allocation, callable from any thread.
 * Update functions accept NULL and do nothing, so a component can run
 * without metrics.
 *
 * Creation: metrics are created from a registry, normally once at start.
 * The registry owns everything it created; pointers stay valid (and stable)
 * until metrics_registry_free. Creation validates names and returns NULL on
 * failure (bad name or buckets, duplicate name, out of memory); the first
 * such failure is also kept in the registry, so a caller may create all its
 * metrics and check once with metrics_registry_error.
 *
 * Labeled families: a family has one or two label names and up to
 * `max_series` label sets, each created on first use (under the family's
 * mutex: the only lock, taken only when a new label set appears). Lookup is
 * lock-free but a linear scan with strcmp: look a series up once and keep
 * the pointer when the label values are known in advance (partitions,
 * reasons). Once `max_series` label sets exist, further new label sets all
 * land in one overflow series whose label values are all METRICS_OVERFLOW;
 * that value is reserved.
 *
 * Rendering (metrics_render) appends the whole registry to a metrics_buf:
 * metrics in creation order, series in creation order, then the output of
 * the collect callbacks (metrics_registry_add_collector) in registration
 * order. Collectors produce "collect-time" samples (broker lag, engine
 * memory) with metrics_write_family / metrics_write_sample, which format
 * and escape exactly as the registry does.
 *
 * Floats are printed with the shortest "%.*g" that reads back to the same
 * double ("0.1", "1e-05", "+Inf", "-Inf", "NaN"). The process must keep
 * LC_NUMERIC as "C" (never call setlocale with a locale that changes it).
 *
 * Threads: metric updates and family lookups from any thread; creation,
 * rendering and collector registration from any thread (serialized by the
 * registry's mutex); metrics_registry_free when no other thread uses the
 * registry.
 */
#ifndef EQ_METRICS_H
#define EQ_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    METRICS_COUNTER = 0,
    METRICS_GAUGE = 1,
    METRICS_HISTOGRAM = 2,
    METRICS_UNTYPED = 3,
} metrics_type;

/* The label value of a family's overflow series (see above). */
#define METRICS_OVERFLOW "_other"
/* The most buckets a histogram may have (finite bounds; +Inf is extra). */
#define METRICS_MAX_BUCKETS 64

typedef struct metrics_registry metrics_registry;
typedef struct metrics_counter metrics_counter;     /* uint64, only goes up  */
typedef struct metrics_gauge metrics_gauge;         /* double, up and down   */
typedef struct metrics_histogram metrics_histogram; /* fixed buckets         */
typedef struct metrics_family metrics_family;       /* labeled series of one */

/* A growable text buffer that rendering appends to. Zero-initialize it (or
 * metrics_buf_init); release with metrics_buf_free (or take `data`, which is
 * malloc'd and NUL-terminated when len > 0, and free() it yourself). After
 * an allocation failure the buffer keeps its text so far, sets `failed`, and
 * every later append returns -ENOMEM. */
typedef struct metrics_buf {
    char *data;
    size_t len, cap;
    int failed;
} metrics_buf;

/* One label of a sample written by a collector. */
typedef struct metrics_label {
    const char *name;
    const char *value;
} metrics_label;

/* A collect callback: appends lines to `out` at scrape time, on the thread
 * calling metrics_render, with the registry's mutex held: it may read and
 * update metrics but must not create metrics or collectors. Returns 0, or a
 * negative value to signal that its output is incomplete (metrics_render
 * then returns that value, after running the other collectors). Names it
 * writes must not repeat the registry's own. */
typedef int (*metrics_collect_cb)(metrics_buf *out, void *arg);

/* ---- registry ---- */

/* A new empty registry, or NULL when out of memory. */
metrics_registry *metrics_registry_new(void);

/* Frees the registry and every metric created from it. NULL is a no-op. */
void metrics_registry_free(metrics_registry *reg);

/* NULL when every creation so far succeeded, else a message describing the
 * first failure (valid until the registry is freed). */
const char *metrics_registry_error(const metrics_registry *reg);

/* Registers cb to run at every metrics_render, after the registry's own
 * metrics. Returns 0, or -ENOMEM. */
int metrics_registry_add_collector(metrics_registry *reg, metrics_collect_cb cb, void *arg);

/* Appends the exposition of everything in reg to out. Returns 0; -ENOMEM
 * when out could not grow (out->failed set); or the first negative value a
 * collector returned. */
int metrics_render(metrics_registry *reg, metrics_buf *out);

/* ---- creation: name must match [a-zA-Z_:][a-zA-Z0-9_:]*, unique in the
 * registry; help is any text (escaped on output). NULL on failure. ---- */

metrics_counter *metrics_counter_new(metrics_registry *reg, const char *name, const char *help);
metrics_gauge *metrics_gauge_new(metrics_registry *reg, const char *name, const char *help);

/* bounds: n_bounds finite upper bounds, strictly increasing, 1..
 * METRICS_MAX_BUCKETS of them (copied); the +Inf bucket is implicit. */
metrics_histogram *metrics_histogram_new(metrics_registry *reg, const char *name, const char *help,
                                         const double *bounds, size_t n_bounds);

/* Labeled families: label1 required, label2 NULL for a one-label family.
 * Label names match [a-zA-Z_][a-zA-Z0-9_]*, do not start with "__", differ,
 * and are not "le" in a histogram family. max_series >= 1 label sets (plus
 * the overflow series). */
metrics_family *metrics_counter_family_new(metrics_registry *reg, const char *name,
                                           const char *help, const char *label1, const char *label2,
                                           size_t max_series);
metrics_family *metrics_gauge_family_new(metrics_registry *reg, const char *name, const char *help,
                                         const char *label1, const char *label2, size_t max_series);
metrics_family *metrics_histogram_family_new(metrics_registry *reg, const char *name,
                                             const char *help, const char *label1,
                                             const char *label2, size_t max_series,
                                             const double *bounds, size_t n_bounds);

/* The series of family f for the given label values (value2 ignored in a
 * one-label family; NULL reads as ""), created on first use (values copied).
 * Returns NULL only when f is NULL or of another type; when the family is
 * full (or memory runs out) returns its overflow series. */
metrics_counter *metrics_family_counter(metrics_family *f, const char *value1, const char *value2);
metrics_gauge *metrics_family_gauge(metrics_family *f, const char *value1, const char *value2);
metrics_histogram *metrics_family_histogram(metrics_family *f, const char *value1,
                                            const char *value2);

/* ---- updates: any thread, lock-free, no allocation; NULL = no-op ---- */

void metrics_counter_inc(metrics_counter *c);
void metrics_counter_add(metrics_counter *c, uint64_t n);
uint64_t metrics_counter_get(const metrics_counter *c); /* 0 for NULL */

void metrics_gauge_set(metrics_gauge *g, double v);
void metrics_gauge_add(metrics_gauge *g, double d); /* negative d subtracts */
static inline void metrics_gauge_inc(metrics_gauge *g)
{
    metrics_gauge_add(g, 1.0);
}
static inline void metrics_gauge_dec(metrics_gauge *g)
{
    metrics_gauge_add(g, -1.0);
}
double metrics_gauge_get(const metrics_gauge *g); /* 0 for NULL */

/* Counts v in the first bucket whose bound >= v (NaN and values above the
 * last bound in +Inf) and adds it to the sum. */
void metrics_histogram_observe(metrics_histogram *h, double v);
/* Snapshot of the totals (count = all buckets; sum of observations). */
void metrics_histogram_get(const metrics_histogram *h, uint64_t *count, double *sum);

/* ---- bucket helpers: fill out[0..n) and return n, or -EINVAL ---- */

/* start, start*factor, start*factor^2, ...; start > 0, factor > 1. */
int metrics_buckets_exponential(double *out, size_t n, double start, double factor);
/* start, start+width, ...; width > 0. */
int metrics_buckets_linear(double *out, size_t n, double start, double width);

/* ---- text output, for collectors (and used by metrics_render) ---- */

void metrics_buf_init(metrics_buf *b);
void metrics_buf_free(metrics_buf *b);
/* Appends bytes / formatted text. 0 or -ENOMEM. */
int metrics_buf_append(metrics_buf *b, const char *s, size_t n);
int metrics_buf_printf(metrics_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "# HELP name help" (help escaped; omitted when help is NULL) and
 * "# TYPE name type". Returns 0, -EINVAL for a bad name, or -ENOMEM. */
int metrics_write_family(metrics_buf *out, const char *name, const char *help, metrics_type type);

/* One sample line: name{l1="v1",...} value. Label values are escaped (\\,
 * \", \n); n_labels may be 0 (labels NULL). Returns 0, -EINVAL for a bad
 * metric or label name, or -ENOMEM. */
int metrics_write_sample(metrics_buf *out, const char *name, const metrics_label *labels,
                         size_t n_labels, double value);
/* The same with an exact integer value (counters beyond 2^53). */
int metrics_write_sample_u64(metrics_buf *out, const char *name, const metrics_label *labels,
                             size_t n_labels, uint64_t value);

/* Formats v as the exposition format wants it into buf (>= 32 bytes);
 * returns buf. */
char *metrics_format_double(char buf[32], double v);

#endif /* EQ_METRICS_H */
