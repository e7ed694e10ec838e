/* lt_report.c - the JSON report and the gnuplot figure of `collect`
 * (lt_collect.h). Figures:
 *
 *   latency      done - sent of each input's first output or dead letter
 *                (nearest-rank percentiles, milliseconds)
 *   throughput   first outputs + dead letters per second of broker time
 *   drain_s      last completion - last send
 *   marks        per manifest mark M (burst_end, end, ...): drain_s = the
 *                last completion among inputs sent before M, minus M (how
 *                long the backlog built up to M took to clear); lag_back_s
 *                = the first lag sample at or after M that is back to
 *                steady (at most max(2 x baseline, 10), the baseline being
 *                the median lag in the 10 s before the first mark: what
 *                steady traffic keeps in flight), minus M; lag_zero_s the
 *                same for a lag of 0
 *   timeline     one row per second since t0 (the earlier of collect's start
 *                and the first send)
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lt_collect.h"

int64_t lt_percentile(const int64_t *v, size_t n, double p)
{
    if (!n) return 0;
    double r = ceil(p / 100.0 * (double)n);
    size_t i = r < 1 ? 0 : (size_t)r - 1;
    return v[i < n ? i : n - 1];
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* ---- the timeline ----------------------------------------------------------------- */

typedef struct {
    long sent, done, dead, dup;
    double p50_ms, p99_ms; /* NAN: nothing completed in this second */
    int64_t lag, pending;  /* the last sample in this second; -1: none */
} bin;

typedef struct {
    int64_t t0;
    bin *b; /* (n) */
    size_t n;
} timeline;

typedef struct {
    size_t bin;
    int64_t lat;
} bin_lat;

static int cmp_bin_lat(const void *a, const void *b)
{
    const bin_lat *x = a, *y = b;
    if (x->bin != y->bin) return x->bin < y->bin ? -1 : 1;
    return (x->lat > y->lat) - (x->lat < y->lat);
}

static int64_t t0_of(const lt_collect *c)
{
    int64_t t0 = c->start_us;
    if (c->manifest_started_us && c->manifest_started_us < t0) t0 = c->manifest_started_us;
    for (size_t i = 0; i < c->n; i++)
        if (c->e[i].sent_us < t0) t0 = c->e[i].sent_us;
    return t0;
}

static size_t bin_of(const timeline *tl, int64_t us)
{
    if (us <= tl->t0) return 0;
    size_t i = (size_t)((us - tl->t0) / 1000000);
    return i < tl->n ? i : tl->n - 1;
}

static void bin_percentiles(timeline *tl, const lt_collect *c)
{
    bin_lat *bl = malloc((c->n_ev ? c->n_ev : 1) * sizeof *bl);
    size_t m = 0;
    if (!bl) return; /* the percentile columns stay NaN */
    for (size_t i = 0; i < c->n_ev; i++)
        if (c->ev[i].lat_us >= 0)
            bl[m++] = (bin_lat){bin_of(tl, c->ev[i].done_us), c->ev[i].lat_us};
    qsort(bl, m, sizeof *bl, cmp_bin_lat);
    int64_t *v = malloc((m ? m : 1) * sizeof *v);
    if (!v) {
        free(bl);
        return;
    }
    for (size_t i = 0; i < m;) {
        size_t j = i, k = 0;
        while (j < m && bl[j].bin == bl[i].bin)
            v[k++] = bl[j++].lat;
        tl->b[bl[i].bin].p50_ms = (double)lt_percentile(v, k, 50) / 1000;
        tl->b[bl[i].bin].p99_ms = (double)lt_percentile(v, k, 99) / 1000;
        i = j;
    }
    free(v);
    free(bl);
}

static int build_timeline(const lt_collect *c, timeline *tl)
{
    tl->t0 = t0_of(c);
    int64_t end = c->end_us;
    for (size_t i = 0; i < c->n_ev; i++)
        if (c->ev[i].done_us > end) end = c->ev[i].done_us;
    size_t n = (size_t)((end - tl->t0) / 1000000) + 1;
    if (n > 1000000) n = 1000000;
    tl->b = calloc(n, sizeof *tl->b);
    if (!tl->b) return -1;
    tl->n = n;
    for (size_t i = 0; i < n; i++)
        tl->b[i] = (bin){.p50_ms = NAN, .p99_ms = NAN, .lag = -1, .pending = -1};
    for (size_t i = 0; i < c->n; i++)
        tl->b[bin_of(tl, c->e[i].sent_us)].sent++;
    for (size_t i = 0; i < c->n_ev; i++) {
        bin *b = &tl->b[bin_of(tl, c->ev[i].done_us)];
        switch (c->ev[i].what) {
        case LT_EV_OUTPUT:
            b->done++;
            break;
        case LT_EV_DEAD:
            b->dead++;
            break;
        case LT_EV_DUPLICATE:
            b->dup++;
            break;
        default:
            break;
        }
    }
    for (size_t i = 0; i < c->n_lag; i++) {
        bin *b = &tl->b[bin_of(tl, c->lag[i].t_us)];
        b->lag = c->lag[i].lag;
        b->pending = c->lag[i].pending;
    }
    bin_percentiles(tl, c);
    return 0;
}

/* ---- JSON ------------------------------------------------------------------------- */

static void put_str(FILE *f, const char *key, const char *v)
{
    fprintf(f, "\"%s\":", key);
    if (v)
        lt_json_string(f, v, strlen(v));
    else
        fputs("null", f);
    fputc(',', f);
}

static void put_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.3f", v);
    else
        fputs("null", f);
}

static void put_reason(const char *key, size_t len, int64_t v, void *arg)
{
    FILE *f = ((void **)arg)[0];
    int *first = ((void **)arg)[1];
    if (!*first) fputc(',', f);
    *first = 0;
    lt_json_string(f, key, len);
    fprintf(f, ":%" PRId64, v);
}

static void put_latency(FILE *f, const lt_collect *c)
{
    int64_t *v = malloc((c->n_ev ? c->n_ev : 1) * sizeof *v);
    size_t m = 0;
    double sum = 0;
    for (size_t i = 0; v && i < c->n_ev; i++)
        if (c->ev[i].lat_us >= 0) v[m++] = c->ev[i].lat_us, sum += (double)c->ev[i].lat_us;
    if (v) qsort(v, m, sizeof *v, cmp_i64);
    fprintf(f, "\"latency_ms\":{\"count\":%zu", m);
    if (m) {
        fprintf(f,
                ",\"mean\":%.3f,\"min\":%.3f,\"p50\":%.3f,\"p90\":%.3f,\"p95\":%.3f,"
                "\"p99\":%.3f,\"max\":%.3f",
                sum / (double)m / 1000, (double)v[0] / 1000, (double)lt_percentile(v, m, 50) / 1000,
                (double)lt_percentile(v, m, 90) / 1000, (double)lt_percentile(v, m, 95) / 1000,
                (double)lt_percentile(v, m, 99) / 1000, (double)v[m - 1] / 1000);
    }
    fputs("},", f);
    free(v);
}

/* Last completion among the inputs sent at or before us (0: one of them is
 * not done; -1: none sent). */
static int64_t done_by(const lt_collect *c, int64_t us)
{
    int64_t last = -1;
    for (size_t i = 0; i < c->n; i++) {
        if (c->e[i].sent_us > us) continue;
        if (!c->e[i].done_us) return 0;
        if (c->e[i].done_us > last) last = c->e[i].done_us;
    }
    return last;
}

/* The lag of the steady traffic before the first mark: the median of the
 * samples in the 10 s before it (0 without marks or samples there). */
static int64_t lag_baseline(const lt_collect *c)
{
    if (!c->n_marks || !c->n_lag) return 0;
    int64_t *v = malloc(c->n_lag * sizeof *v), until = c->marks[0].us, from = until - 10000000;
    size_t n = 0;
    for (size_t i = 0; v && i < c->n_lag; i++)
        if (c->lag[i].t_us >= from && c->lag[i].t_us < until && c->lag[i].lag >= 0)
            v[n++] = c->lag[i].lag;
    if (n) qsort(v, n, sizeof *v, cmp_i64);
    int64_t base = n ? lt_percentile(v, n, 50) : 0;
    free(v);
    return base;
}

/* "Back to steady": at most twice the baseline, and at least 10 messages
 * (Kafka's lag moves in steps of the commit interval). */
static int64_t lag_steady_limit(int64_t base)
{
    return 2 * base > 10 ? 2 * base : 10;
}

/* Seconds from us to the first lag sample at or after it that is <= limit
 * (NAN: none). */
static double lag_back(const lt_collect *c, int64_t us, int64_t limit)
{
    for (size_t i = 0; i < c->n_lag; i++)
        if (c->lag[i].t_us >= us && c->lag[i].lag >= 0 && c->lag[i].lag <= limit)
            return lt_us_to_s(c->lag[i].t_us - us);
    return NAN;
}

static void put_marks(FILE *f, const lt_collect *c, int64_t t0)
{
    int64_t base = lag_baseline(c), limit = lag_steady_limit(base);
    fprintf(f, "\"lag_baseline\":%" PRId64 ",\"lag_steady_limit\":%" PRId64 ",\"marks\":[", base,
            limit);
    for (int k = 0; k < c->n_marks; k++) {
        const lt_mark *m = &c->marks[k];
        int64_t d = done_by(c, m->us);
        fprintf(f, "%s{\"name\":", k ? "," : "");
        lt_json_string(f, m->name, strlen(m->name));
        fprintf(f, ",\"t_s\":%.3f,\"drain_s\":", lt_us_to_s(m->us - t0));
        put_num(f, d > 0 ? lt_us_to_s(d > m->us ? d - m->us : 0) : NAN);
        fputs(",\"lag_back_s\":", f);
        put_num(f, lag_back(c, m->us, limit));
        fputs(",\"lag_zero_s\":", f);
        put_num(f, lag_back(c, m->us, 0));
        fputc('}', f);
    }
    fputs("],", f);
}

static void put_send_and_throughput(FILE *f, const lt_collect *c, const timeline *tl)
{
    int64_t s0 = INT64_MAX, s1 = 0, d0 = INT64_MAX, d1 = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->e[i].sent_us < s0) s0 = c->e[i].sent_us;
        if (c->e[i].sent_us > s1) s1 = c->e[i].sent_us;
        if (c->e[i].done_us && c->e[i].done_us < d0) d0 = c->e[i].done_us;
        if (c->e[i].done_us > d1) d1 = c->e[i].done_us;
    }
    double ss = c->n > 1 ? lt_us_to_s(s1 - s0) : 0, ds = c->seen > 1 ? lt_us_to_s(d1 - d0) : 0;
    long peak = 0;
    for (size_t i = 0; i < tl->n; i++)
        if (tl->b[i].done + tl->b[i].dead > peak) peak = tl->b[i].done + tl->b[i].dead;
    fprintf(f, "\"send\":{\"seconds\":%.3f,\"rate\":", ss);
    put_num(f, ss > 0 ? (double)(c->n - 1) / ss : NAN);
    fprintf(f, "},\"throughput\":{\"seconds\":%.3f,\"mean_per_s\":", ds);
    put_num(f, ds > 0 ? (double)(c->seen - 1) / ds : NAN);
    fprintf(f, ",\"peak_per_s\":%ld},\"drain_s\":", peak);
    put_num(f, c->seen == (long)c->n && c->n ? lt_us_to_s(d1 > s1 ? d1 - s1 : 0) : NAN);
    fputc(',', f);
}

static void put_lag(FILE *f, const lt_collect *c, int64_t t0)
{
    int64_t max = -1, max_t = 0;
    for (size_t i = 0; i < c->n_lag; i++)
        if (c->lag[i].lag > max) max = c->lag[i].lag, max_t = c->lag[i].t_us;
    fprintf(f, "\"lag\":{\"source\":\"%s\",\"max\":%" PRId64 ",\"max_t_s\":",
            !strcmp(c->broker, "kafka") ? "committed offsets vs high watermarks"
                                        : "XINFO GROUPS lag + pending",
            max);
    put_num(f, max >= 0 ? lt_us_to_s(max_t - t0) : NAN);
    fprintf(f, ",\"final\":%" PRId64 ",\"samples\":[", c->n_lag ? c->lag[c->n_lag - 1].lag : -1);
    for (size_t i = 0; i < c->n_lag; i++)
        fprintf(f, "%s[%.3f,%" PRId64 ",%" PRId64 "]", i ? "," : "",
                lt_us_to_s(c->lag[i].t_us - t0), c->lag[i].lag, c->lag[i].pending);
    fputs("]},", f);
}

static void put_timeline(FILE *f, const timeline *tl)
{
    static const char *const cols[] = {"t_s",        "sent",   "done",   "dead",
                                       "duplicates", "p50_ms", "p99_ms", "lag"};
    fputs("\"timeline\":{", f);
    for (int c = 0; c < 8; c++) {
        fprintf(f, "%s\"%s\":[", c ? "," : "", cols[c]);
        for (size_t i = 0; i < tl->n; i++) {
            const bin *b = &tl->b[i];
            if (i) fputc(',', f);
            switch (c) {
            case 0:
                fprintf(f, "%zu", i);
                break;
            case 1:
                fprintf(f, "%ld", b->sent);
                break;
            case 2:
                fprintf(f, "%ld", b->done);
                break;
            case 3:
                fprintf(f, "%ld", b->dead);
                break;
            case 4:
                fprintf(f, "%ld", b->dup);
                break;
            case 5:
                put_num(f, b->p50_ms);
                break;
            case 6:
                put_num(f, b->p99_ms);
                break;
            default:
                if (b->lag >= 0)
                    fprintf(f, "%" PRId64, b->lag);
                else
                    fputs("null", f);
            }
        }
        fputc(']', f);
    }
    fputs("}", f);
}

static void put_missing(FILE *f, const lt_collect *c)
{
    fputs("\"missing_ids\":[", f);
    int shown = 0;
    for (size_t i = 0; i < c->n && shown < 20; i++)
        if (!c->e[i].done_us) {
            if (shown++) fputc(',', f);
            lt_json_string(f, c->e[i].ref, strlen(c->e[i].ref));
        }
    fputs("],", f);
}

int lt_report_write(const lt_collect *c, const char *path, char *err, size_t errlen)
{
    timeline tl = {0};
    if (build_timeline(c, &tl)) return eq_err(err, errlen, "out of memory");
    FILE *f = fopen(path, "w");
    if (!f) {
        free(tl.b);
        return eq_err(err, errlen, "cannot create %s: %s", path, strerror(errno));
    }
    long missing = (long)c->n - c->seen;
    fputs("{\"tool\":\"embedq-loadtest collect\",\"report_version\":1,", f);
    put_str(f, "title", c->title);
    put_str(f, "broker", c->broker);
    put_str(f, "output", c->output);
    put_str(f, "dead_letter", c->dead_letter);
    put_str(f, "input", c->input);
    put_str(f, "group", c->group);
    put_str(f, "manifest", c->manifest_path);
    put_str(f, "stopped", c->stopped);
    put_str(f, "error", c->error[0] ? c->error : NULL);
    fprintf(f, "\"ok\":%s,\"t0_us\":%" PRId64 ",\"elapsed_s\":%.3f,\"manifest_complete\":%s,",
            missing == 0 && c->manifest_complete && !c->error[0] ? "true" : "false", tl.t0,
            lt_us_to_s(c->end_us - c->start_us), c->manifest_complete ? "true" : "false");
    fprintf(f, "\"expected\":%zu,\"seen\":%ld,\"missing\":%ld,", c->n, c->seen, missing);
    put_missing(f, c);
    fprintf(f,
            "\"output_records\":%ld,\"dead_letter_records\":%ld,\"duplicates\":%ld,"
            "\"unexpected\":%ld,\"unparsed\":%ld,",
            c->outputs, c->dead_letters, c->duplicates, c->unexpected, c->unparsed);
    long dead_first = 0;
    for (size_t i = 0; i < c->n_ev; i++)
        dead_first += c->ev[i].what == LT_EV_DEAD;
    fprintf(f,
            "\"dead_lettered_inputs\":%ld,\"latency_start\":{\"kafka_header\":%ld,"
            "\"manifest\":%ld},",
            dead_first, c->stamped, c->seen - c->stamped);
    put_latency(f, c);
    put_send_and_throughput(f, c, &tl);
    fputs("\"dead_letters_by_reason\":{", f);
    int first = 1;
    void *arg[2] = {f, &first};
    lt_map_each(&c->reasons, put_reason, arg);
    fputs("},", f);
    put_marks(f, c, tl.t0);
    put_lag(f, c, tl.t0);
    put_timeline(f, &tl);
    fputs("}\n", f);
    free(tl.b);
    int rc = 0;
    if (ferror(f)) rc = eq_err(err, errlen, "writing %s: %s", path, strerror(errno));
    if (fclose(f) && !rc) rc = eq_err(err, errlen, "closing %s: %s", path, strerror(errno));
    return rc;
}

/* ---- the figure -------------------------------------------------------------------- */

/* True if an executable named name is on PATH. */
static bool on_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    char buf[4096];
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, n ? p : ".", name);
        if (access(buf, X_OK) == 0) return true;
        p += n;
        if (*p == ':') p++;
    }
    return false;
}

/* The file name after the last '/'. */
static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* A gnuplot single-quoted string: ' doubled. */
static void gp_str(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', f);
        if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
    fputc('\'', f);
}

static int write_dat(const timeline *tl, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f) return eq_err(err, errlen, "cannot create %s: %s", path, strerror(errno));
    fputs("# t_s sent done dead duplicates p50_ms p99_ms lag pending\n", f);
    for (size_t i = 0; i < tl->n; i++) {
        const bin *b = &tl->b[i];
        fprintf(f, "%zu %ld %ld %ld %ld ", i, b->sent, b->done, b->dead, b->dup);
        if (isfinite(b->p50_ms))
            fprintf(f, "%.3f %.3f ", b->p50_ms, b->p99_ms);
        else
            fputs("NaN NaN ", f);
        if (b->lag >= 0)
            fprintf(f, "%" PRId64 " ", b->lag);
        else
            fputs("NaN ", f);
        if (b->pending >= 0)
            fprintf(f, "%" PRId64 "\n", b->pending);
        else
            fputs("NaN\n", f);
    }
    int rc = ferror(f) ? eq_err(err, errlen, "writing %s", path) : 0;
    if (fclose(f) && !rc) rc = eq_err(err, errlen, "closing %s", path);
    return rc;
}

/* A panel with nothing to draw: gnuplot refuses a plot whose points are
 * all undefined, so draw an out-of-range constant under a note. */
static void empty_panel(FILE *f, const char *note)
{
    fputs("unset logscale y\nset yrange [0:1]\nset label 99 ", f);
    gp_str(f, note);
    fputs(" at graph 0.5, graph 0.5 center\nplot -1 notitle\nunset label 99\n", f);
}

static int write_gp(const lt_collect *c, const timeline *tl, const char *gp, const char *dat,
                    const char *svg, char *err, size_t errlen)
{
    FILE *f = fopen(gp, "w");
    if (!f) return eq_err(err, errlen, "cannot create %s: %s", gp, strerror(errno));
    fputs("# written by embedq-loadtest collect; run: gnuplot THIS_FILE\n"
          "set terminal svg size 960,900 dynamic noenhanced font 'sans,11' background rgb "
          "'white'\nset output ",
          f);
    gp_str(f, base_name(svg));
    fputs("\ndat = ", f);
    gp_str(f, base_name(dat));
    fputs("\nset datafile missing 'NaN'\nset grid\nset key outside top center horizontal\nset "
          "lmargin 11\n",
          f);
    fprintf(f, "set xrange [0:%zu]\n", tl->n > 1 ? tl->n - 1 : 1);
    char title[512];
    if (c->title)
        snprintf(title, sizeof title, "%s", c->title);
    else
        snprintf(title, sizeof title, "%s: %s -> %s", c->broker, c->input ? c->input : "?",
                 c->output);
    fputs("set multiplot layout 3,1 title ", f);
    gp_str(f, title);
    fputc('\n', f);
    for (int k = 0; k < c->n_marks; k++) {
        double t = lt_us_to_s(c->marks[k].us - tl->t0);
        fprintf(f, "set arrow from %.3f, graph 0 to %.3f, graph 1 nohead dt 2 lc rgb 'gray40'\n", t,
                t);
        fprintf(f, "set label %d ", k + 1);
        gp_str(f, c->marks[k].name);
        fprintf(f, " at %.3f, graph %.2f left offset 0.3,0 font ',9' tc rgb 'gray40'\n", t,
                0.05 + 0.07 * (k % 3)); /* staggered: marks may be close */
    }
    fputs("set ylabel 'messages/s'\nset yrange [0:*]\n"
          "plot dat using 1:2 with steps lw 2 title 'sent', dat using 1:3 with steps lw 2 "
          "title 'outputs', dat using 1:4 with steps title 'dead letters', dat using 1:5 with "
          "steps title 'duplicates'\n",
          f);
    bool any_lat = false, any_lag = false;
    for (size_t i = 0; i < tl->n; i++) {
        any_lat |= isfinite(tl->b[i].p50_ms);
        any_lag |= tl->b[i].lag >= 0;
    }
    fputs("set ylabel 'end-to-end latency (ms)'\n", f);
    if (any_lat)
        fputs("set autoscale y\nset logscale y\n"
              "plot dat using 1:6 with linespoints pt 7 ps 0.4 title 'p50 (per second)', "
              "dat using 1:7 with linespoints pt 7 ps 0.4 title 'p99 (per second)'\n"
              "unset logscale y\n",
              f);
    else
        empty_panel(f, "no outputs");
    fputs("set yrange [0:*]\nset xlabel 'seconds'\nset ylabel 'lag (messages)'\n", f);
    if (!any_lag)
        empty_panel(f, "no lag samples (collect --group)");
    else if (!strcmp(c->broker, "redis"))
        fputs("plot dat using 1:8 with steps lw 2 title 'not acknowledged (lag + pending)', "
              "dat using 1:9 with steps title 'pending'\n",
              f);
    else
        fputs("plot dat using 1:8 with steps lw 2 title 'high watermark - committed'\n", f);
    fputs("unset multiplot\n", f);
    int rc = ferror(f) ? eq_err(err, errlen, "writing %s", gp) : 0;
    if (fclose(f) && !rc) rc = eq_err(err, errlen, "closing %s", gp);
    return rc;
}

/* Runs gnuplot on gp in gp's directory (the script names its files without
 * a directory, so the three files can be moved together). */
static int run_gnuplot(const char *gp, char *err, size_t errlen)
{
    pid_t pid = fork();
    if (pid < 0) return eq_err(err, errlen, "fork: %s", strerror(errno));
    if (pid == 0) {
        const char *b = base_name(gp);
        if (b != gp) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%.*s", (int)(b - gp), gp);
            if (chdir(dir)) _exit(126);
        }
        execlp("gnuplot", "gnuplot", b, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return eq_err(err, errlen, "waitpid: %s", strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st))
        return eq_err(err, errlen, "gnuplot %s failed (status %d)", gp,
                      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}

int lt_report_plot(const lt_collect *c, const char *svg, char *err, size_t errlen)
{
    if (!on_path("gnuplot")) {
        fprintf(stderr,
                "%s collect: warning: gnuplot is not installed (Debian package "
                "gnuplot-nox): no plot\n",
                LT_PROG);
        return 1;
    }
    size_t n = strlen(svg);
    size_t base = n > 4 && !strcmp(svg + n - 4, ".svg") ? n - 4 : n;
    char *dat = malloc(base + 5), *gp = malloc(base + 4);
    timeline tl = {0};
    int rc = !dat || !gp || build_timeline(c, &tl) ? eq_err(err, errlen, "out of memory") : 0;
    if (!rc) {
        snprintf(dat, base + 5, "%.*s.dat", (int)base, svg);
        snprintf(gp, base + 4, "%.*s.gp", (int)base, svg);
        rc = write_dat(&tl, dat, err, errlen);
        if (!rc) rc = write_gp(c, &tl, gp, dat, svg, err, errlen);
        if (!rc) rc = run_gnuplot(gp, err, errlen);
    }
    free(tl.b);
    free(dat);
    free(gp);
    return rc;
}
