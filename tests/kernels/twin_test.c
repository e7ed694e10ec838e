/* twin_test.c - the CPU twins (kernels/twins.c) against independent float64
 * computations written from the formulas in kernels/kernels.h (never by
 * calling a twin), on fresh random inputs from a printed seed, with
 * poisoned outputs (NaN bit patterns) checked for complete writes.
 *
 * Error measure (.library/device/METHOD.md): ||out - ref|| / ||ref|| over a
 * whole output; bf16 outputs pass at <= 8e-3, fp32 outputs at <= 1e-5; a
 * NaN or an unwritten element always fails.
 *
 * Usage: twin_test [seed]    (default seed: fixed, printed)
 * Exit: 0 all pass, 1 any failure.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "twins.h"

#define BF16_TOL 8e-3
#define F32_TOL  1e-5

static int g_fail, g_checks;

/* ------------------------------------------------------------------ */
/* random numbers: xorshift64*, Box-Muller normals, never exactly zero */
/* ------------------------------------------------------------------ */

static uint64_t g_rng;

static uint64_t rnd_u64(void)
{
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545F4914F6CDD1DULL;
}

static double rnd_unit(void) /* (0, 1) */
{
    return ((double)(rnd_u64() >> 11) + 0.5) / 9007199254740992.0;
}

static int rnd_int(int lo, int hi) /* [lo, hi] */
{
    return lo + (int)(rnd_u64() % (uint64_t)(hi - lo + 1));
}

static double rnd_normal(void)
{
    for (;;) {
        double v = sqrt(-2.0 * log(rnd_unit())) * cos(6.283185307179586 * rnd_unit());
        if (v != 0.0) return v;
    }
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* bf16 values ~ N(0,1) * scale, nonzero after rounding */
static void fill_bf16(eqk_bf16 *v, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++) {
        do
            v[i] = eqt_f32_to_bf16((float)(rnd_normal() * scale));
        while ((v[i] & 0x7fff) == 0);
    }
}

static void fill_f32(float *v, size_t n, double mean, double scale)
{
    for (size_t i = 0; i < n; i++) {
        do
            v[i] = (float)(mean + rnd_normal() * scale);
        while (v[i] == 0.0f);
    }
}

/* bf16 -> double, independently of the twin: the bits are the top half */
static double bf(eqk_bf16 h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void poison_bf16(eqk_bf16 *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = 0xffff; /* a NaN */
}

static void poison_f32(float *v, size_t n)
{
    memset(v, 0xff, n * sizeof *v); /* NaN */
}

/* ------------------------------------------------------------------ */
/* comparisons                                                        */
/* ------------------------------------------------------------------ */

/* Worst elementwise |out - ref| / bound of the last rel_bf16 call (see there). */
static double g_elem;

static void report(const char *op, const char *shape, double rel, double tol, long nan_count)
{
    const int bf16_out = tol == BF16_TOL;
    int ok = nan_count == 0 && rel <= tol && !isnan(rel) && (!bf16_out || g_elem <= 1.0);
    g_checks++;
    if (!ok) g_fail++;
    char elem[32] = "";
    if (bf16_out) snprintf(elem, sizeof elem, " elem %.3f", g_elem);
    printf("%-16s %-44s rel %.3e (tol %.0e)%s%s  %s\n", op, shape, rel, tol, elem,
           nan_count ? "  NaN/unwritten!" : "", ok ? "PASS" : "FAIL");
}

/* ||out - ref|| / ||ref|| of bf16 out; counts NaN (poison left) in out.
 * Also sets g_elem, the worst |out - ref| / (2^-8 |ref| (1 + 1e-3) + 1e-5
 * rms(ref)) over the elements: a twin computes in fp32 and rounds once, so
 * every element is within half a bf16 ulp (<= 2^-8 |v|) of the exact value
 * plus fp32 noise; g_elem > 1 means some element is off by more than
 * rounding can explain, even when the norm-wise error is small. */
static double rel_bf16(const eqk_bf16 *out, const double *ref, size_t n, long *nan_count)
{
    double num = 0, den = 0;
    *nan_count = 0;
    for (size_t i = 0; i < n; i++)
        den += ref[i] * ref[i];
    const double abs_slack = 1e-5 * sqrt(den / (double)(n ? n : 1));
    g_elem = 0;
    for (size_t i = 0; i < n; i++) {
        double o = bf(out[i]);
        if (isnan(o)) {
            (*nan_count)++;
            continue;
        }
        num += (o - ref[i]) * (o - ref[i]);
        double e = fabs(o - ref[i]) / (ldexp(fabs(ref[i]), -8) * 1.001 + abs_slack);
        if (!(e <= g_elem)) g_elem = e;
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static double rel_f32(const float *out, const double *ref, size_t n, long *nan_count)
{
    double num = 0, den = 0;
    *nan_count = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(out[i])) {
            (*nan_count)++;
            continue;
        }
        num += (out[i] - ref[i]) * (out[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void check(int cond, const char *what)
{
    g_checks++;
    if (!cond) {
        g_fail++;
        printf("FAIL: %s\n", what);
    }
}

/* ------------------------------------------------------------------ */
/* bf16 conversions                                                   */
/* ------------------------------------------------------------------ */

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The nearest bf16 by value (double arithmetic), ties to the even
 * pattern; a magnitude at or past max + half an ulp rounds to inf. NaN is
 * handled by the caller. */
static uint16_t ref_to_bf16(float f)
{
    uint32_t u = f2u(f);
    uint32_t lo = u & 0xffff0000u; /* toward zero */
    if (lo == u) return (uint16_t)(u >> 16);
    uint32_t hi = lo + 0x10000u; /* next bf16 away from zero (may be inf) */
    double a = fabs((double)f), vlo = fabs((double)u2f(lo));
    double vhi = (hi & 0x7fffffffu) == 0x7f800000u ? ldexp(1.0, 128) : fabs((double)u2f(hi));
    double dlo = a - vlo, dhi = vhi - a;
    if (dlo < dhi) return (uint16_t)(lo >> 16);
    if (dhi < dlo) return (uint16_t)(hi >> 16);
    return ((lo >> 16) & 1) ? (uint16_t)(hi >> 16) : (uint16_t)(lo >> 16);
}

static int is_bf16_nan(uint16_t h)
{
    return (h & 0x7f80) == 0x7f80 && (h & 0x007f) != 0;
}

static void test_bf16(void)
{
    static const struct {
        uint32_t in;
        uint16_t want;
        const char *what;
    } cases[] = {
        {0x3f800000u, 0x3f80, "1.0 exact"},
        {0x3f808000u, 0x3f80, "tie, even below"},
        {0x3f818000u, 0x3f82, "tie, odd below -> up"},
        {0x3f808001u, 0x3f81, "just above tie"},
        {0x3f807fffu, 0x3f80, "just below tie"},
        {0xbf818000u, 0xbf82, "negative tie -> even"},
        {0x7f800000u, 0x7f80, "+inf"},
        {0xff800000u, 0xff80, "-inf"},
        {0x7f7fffffu, 0x7f80, "max finite f32 -> inf"},
        {0x7f7f0000u, 0x7f7f, "max finite bf16"},
        {0x7f7f8000u, 0x7f80, "max bf16 + half ulp (tie, odd) -> inf"},
        {0x7f7f7fffu, 0x7f7f, "max bf16 + just under half ulp"},
        {0x00000000u, 0x0000, "+0"},
        {0x80000000u, 0x8000, "-0"},
        {0x00008000u, 0x0000, "denormal tie -> 0"},
        {0x00018000u, 0x0002, "denormal tie -> even up"},
        {0x007fffffu, 0x0080, "largest denormal -> min normal"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = eqt_f32_to_bf16(u2f(cases[i].in));
        char msg[160];
        snprintf(msg, sizeof msg, "bf16(0x%08x) %s: got 0x%04x want 0x%04x", cases[i].in,
                 cases[i].what, got, cases[i].want);
        check(got == cases[i].want, msg);
    }
    static const uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u,
                                    0x7fffffffu, 0x7f80ffffu, 0x7f810000u};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        char msg[96];
        uint16_t got = eqt_f32_to_bf16(u2f(nans[i]));
        snprintf(msg, sizeof msg, "bf16(NaN 0x%08x) = 0x%04x must be NaN", nans[i], got);
        check(is_bf16_nan(got), msg);
    }
    /* every bf16 round-trips, and widening is exact */
    long bad_rt = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = eqt_bf16_to_f32((eqk_bf16)h);
        if (f2u(f) != h << 16) bad_rt++;
        uint16_t back = eqt_f32_to_bf16(f);
        if (is_bf16_nan((uint16_t)h) ? !is_bf16_nan(back) : back != h) bad_rt++;
    }
    check(bad_rt == 0, "bf16 -> f32 -> bf16 round trip of all 65536 patterns");
    /* random f32 patterns against the by-value reference */
    long bad_rnd = 0;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = (uint32_t)rnd_u64();
        if (i & 1) u = (u & 0xffff0000u) | 0x8000u; /* many exact ties */
        float f = u2f(u);
        uint16_t got = eqt_f32_to_bf16(f);
        if (isnan(f) ? !is_bf16_nan(got) : got != ref_to_bf16(f)) bad_rnd++;
    }
    check(bad_rnd == 0, "f32 -> bf16 on 2M random patterns (half exact ties) vs by-value rounding");
    printf("%-16s %-44s %s\n", "bf16", "edge cases, 65536 round trips, 2M random",
           bad_rt || bad_rnd ? "FAIL" : "PASS");
}

/* ------------------------------------------------------------------ */
/* RoPE table                                                         */
/* ------------------------------------------------------------------ */

static void test_rope_table(int max_pos, int hd, float theta)
{
    const int half = hd / 2;
    float *cs = xcalloc((size_t)max_pos * half * 2, sizeof *cs);
    poison_f32(cs, (size_t)max_pos * half * 2);
    eqt_rope_table(cs, max_pos, hd, theta);
    /* engine/cpu_backend.c build_rope(), transcribed: inv_freq and the angle
     * in fp32, cos/sin in double of the fp32 angle, rounded to fp32 */
    long mismatch = 0;
    double max_err_small_p = 0; /* vs exact cos(p * theta^(-2i/hd)), p < 64 */
    for (int i = 0; i < half; i++) {
        float inv_freq = (float)(1.0 / pow((double)theta, (double)(2 * i) / hd));
        for (int p = 0; p < max_pos; p++) {
            float angle = (float)p * inv_freq;
            float c = (float)cos((double)angle), s = (float)sin((double)angle);
            const float *e = cs + ((size_t)p * half + i) * 2;
            if (f2u(e[0]) != f2u(c) || f2u(e[1]) != f2u(s)) mismatch++;
            if (p < 64) {
                double a = p * pow((double)theta, -2.0 * i / hd);
                double err = fmax(fabs(e[0] - cos(a)), fabs(e[1] - sin(a)));
                if (err > max_err_small_p) max_err_small_p = err;
            }
        }
    }
    char shape[64];
    snprintf(shape, sizeof shape, "max_pos %d hd %d theta %g", max_pos, hd, theta);
    g_checks++;
    int ok = mismatch == 0 && max_err_small_p < 1e-5;
    if (!ok) g_fail++;
    printf("%-16s %-44s %ld bit mismatches vs build_rope, |err| p<64 %.1e  %s\n", "rope_table",
           shape, mismatch, max_err_small_p, ok ? "PASS" : "FAIL");
    free(cs);
}

/* ------------------------------------------------------------------ */
/* embed_gather                                                       */
/* ------------------------------------------------------------------ */

static void test_embed_gather(int vocab, int hidden, int n)
{
    eqk_bf16 *table = xcalloc((size_t)vocab * hidden, 2);
    int32_t *ids = xcalloc((size_t)n, 4);
    float *x = xcalloc((size_t)n * hidden, 4);
    double *ref = xcalloc((size_t)n * hidden, 8);
    fill_bf16(table, (size_t)vocab * hidden, 1.0);
    for (int t = 0; t < n; t++)
        ids[t] = rnd_int(0, vocab - 1);
    for (int t = 0; t < n; t++)
        for (int j = 0; j < hidden; j++)
            ref[(size_t)t * hidden + j] = bf(table[(size_t)ids[t] * hidden + j]);
    poison_f32(x, (size_t)n * hidden);
    eqt_embed_gather(table, ids, n, hidden, x);
    long nan_count;
    double rel = rel_f32(x, ref, (size_t)n * hidden, &nan_count);
    char shape[64];
    snprintf(shape, sizeof shape, "vocab %d hidden %d n %d", vocab, hidden, n);
    report("embed_gather", shape, rel, 0.0, nan_count);
    free(table), free(ids), free(x), free(ref);
}

/* ------------------------------------------------------------------ */
/* add_rmsnorm                                                        */
/* ------------------------------------------------------------------ */

static void test_add_rmsnorm(int n, int hidden, int with_y, double xscale, float eps)
{
    const size_t sz = (size_t)n * hidden;
    float *x = xcalloc(sz, 4), *w = xcalloc((size_t)hidden, 4);
    eqk_bf16 *y = with_y ? xcalloc(sz, 2) : NULL, *out = xcalloc(sz, 2);
    double *xref = xcalloc(sz, 8), *oref = xcalloc(sz, 8);
    fill_f32(x, sz, 0.0, xscale);
    if (y) fill_bf16(y, sz, xscale);
    fill_f32(w, (size_t)hidden, 1.0, 0.2);
    for (int t = 0; t < n; t++) {
        double ss = 0;
        for (int j = 0; j < hidden; j++) {
            size_t i = (size_t)t * hidden + j;
            xref[i] = (double)x[i] + (y ? bf(y[i]) : 0.0);
            ss += xref[i] * xref[i];
        }
        double r = 1.0 / sqrt(ss / hidden + eps);
        for (int j = 0; j < hidden; j++) {
            size_t i = (size_t)t * hidden + j;
            oref[i] = xref[i] * r * w[j];
        }
    }
    poison_bf16(out, sz);
    eqt_add_rmsnorm(x, y, w, n, hidden, eps, out);
    long nan_x, nan_o;
    double rx = rel_f32(x, xref, sz, &nan_x);
    double ro = rel_bf16(out, oref, sz, &nan_o);
    char shape[96];
    snprintf(shape, sizeof shape, "n %d hidden %d y %s x~%g eps %g: x", n, hidden,
             y ? "bf16" : "NULL", xscale, eps);
    report("add_rmsnorm", shape, rx, F32_TOL, nan_x);
    snprintf(shape, sizeof shape, "n %d hidden %d y %s x~%g eps %g: out", n, hidden,
             y ? "bf16" : "NULL", xscale, eps);
    report("add_rmsnorm", shape, ro, BF16_TOL, nan_o);
    free(x), free(w), free(y), free(out), free(xref), free(oref);
}

/* ------------------------------------------------------------------ */
/* packed batches                                                     */
/* ------------------------------------------------------------------ */

/* cu (n_seqs + 1) offsets and pos (cu[n_seqs]) positions restarting at 0. */
static int32_t *make_pos(const int32_t *cu, int n_seqs)
{
    int32_t *pos = xcalloc((size_t)cu[n_seqs], 4);
    for (int s = 0; s < n_seqs; s++)
        for (int t = cu[s]; t < cu[s + 1]; t++)
            pos[t] = t - cu[s];
    return pos;
}

static void make_cu(int32_t *cu, const int *lens, int n_seqs)
{
    cu[0] = 0;
    for (int s = 0; s < n_seqs; s++)
        cu[s + 1] = cu[s] + lens[s];
}

static void lens_str(char *buf, size_t len, const int *lens, int n_seqs)
{
    size_t o = (size_t)snprintf(buf, len, "{");
    for (int s = 0; s < n_seqs && o < len; s++)
        o += (size_t)snprintf(buf + o, len - o, "%s%d", s ? "," : "", lens[s]);
    if (o < len) snprintf(buf + o, len - o, "}");
}

/* ------------------------------------------------------------------ */
/* qk_norm_rope                                                       */
/* ------------------------------------------------------------------ */

static void test_qk_norm_rope(const int *lens, int n_seqs, int nh, int nkv, int hd, double scale,
                              float eps)
{
    int32_t cu[64];
    make_cu(cu, lens, n_seqs);
    const int n = cu[n_seqs], half = hd / 2, ld = (nh + 2 * nkv) * hd;
    int max_pos = 0;
    for (int s = 0; s < n_seqs; s++)
        max_pos = lens[s] > max_pos ? lens[s] : max_pos;
    int32_t *pos = make_pos(cu, n_seqs);
    float *cs = xcalloc((size_t)max_pos * half * 2, 4);
    eqt_rope_table(cs, max_pos, hd, 1e6f);
    float *qw = xcalloc((size_t)hd, 4), *kw = xcalloc((size_t)hd, 4);
    fill_f32(qw, (size_t)hd, 1.0, 0.3);
    fill_f32(kw, (size_t)hd, 1.0, 0.3);
    eqk_bf16 *qkv = xcalloc((size_t)n * ld, 2), *orig = xcalloc((size_t)n * ld, 2);
    fill_bf16(qkv, (size_t)n * ld, scale);
    memcpy(orig, qkv, (size_t)n * ld * 2);

    /* reference over the q and k columns, (n, (nh + nkv) * hd) */
    const int qk = (nh + nkv) * hd;
    double *ref = xcalloc((size_t)n * qk, 8), *u = xcalloc((size_t)hd, 8);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < nh + nkv; h++) {
            const eqk_bf16 *v = orig + (size_t)t * ld + (size_t)h * hd;
            const float *w = h < nh ? qw : kw;
            double ss = 0;
            for (int i = 0; i < hd; i++)
                ss += bf(v[i]) * bf(v[i]);
            double r = 1.0 / sqrt(ss / hd + eps);
            for (int i = 0; i < hd; i++)
                u[i] = bf(v[i]) * r * w[i];
            double *o = ref + (size_t)t * qk + (size_t)h * hd;
            for (int i = 0; i < half; i++) {
                double c = cs[((size_t)pos[t] * half + i) * 2];
                double s = cs[((size_t)pos[t] * half + i) * 2 + 1];
                o[i] = u[i] * c - u[i + half] * s;
                o[i + half] = u[i + half] * c + u[i] * s;
            }
        }
    eqt_qk_norm_rope(qkv, pos, n, nh, nkv, hd, qw, kw, eps, cs);

    /* gather the twin's q/k columns; v must be bit-identical */
    eqk_bf16 *got = xcalloc((size_t)n * qk, 2);
    long v_changed = 0;
    for (int t = 0; t < n; t++) {
        memcpy(got + (size_t)t * qk, qkv + (size_t)t * ld, (size_t)qk * 2);
        if (memcmp(qkv + (size_t)t * ld + qk, orig + (size_t)t * ld + qk, (size_t)nkv * hd * 2))
            v_changed++;
    }
    long nan_count;
    double rel = rel_bf16(got, ref, (size_t)n * qk, &nan_count);
    char shape[128], ls[64];
    lens_str(ls, sizeof ls, lens, n_seqs);
    snprintf(shape, sizeof shape, "%s h %d/%d hd %d x~%g", ls, nh, nkv, hd, scale);
    report("qk_norm_rope", shape, rel, BF16_TOL, nan_count);
    check(v_changed == 0, "qk_norm_rope: v columns untouched");
    free(pos), free(cs), free(qw), free(kw), free(qkv), free(orig), free(ref), free(u), free(got);
}

/* ------------------------------------------------------------------ */
/* attention                                                          */
/* ------------------------------------------------------------------ */

static void test_attention(const int *lens, int n_seqs, int nh, int nkv, int hd)
{
    int32_t cu[64];
    make_cu(cu, lens, n_seqs);
    const int n = cu[n_seqs], ld = (nh + 2 * nkv) * hd, old = nh * hd;
    int max_len = 0;
    for (int s = 0; s < n_seqs; s++)
        max_len = lens[s] > max_len ? lens[s] : max_len;
    eqk_bf16 *qkv = xcalloc((size_t)n * ld, 2), *out = xcalloc((size_t)n * old, 2);
    fill_bf16(qkv, (size_t)n * ld, 1.0);
    double *ref = xcalloc((size_t)n * old, 8), *p = xcalloc((size_t)max_len, 8);
    const double scale = 1.0 / sqrt((double)hd);
    /* per sequence s, causal mask j <= i inside [cu[s], cu[s+1]) */
    for (int s = 0; s < n_seqs; s++)
        for (int h = 0; h < nh; h++) {
            const int g = h / (nh / nkv);
            for (int i = cu[s]; i < cu[s + 1]; i++) {
                const eqk_bf16 *q = qkv + (size_t)i * ld + (size_t)h * hd;
                double mx = -INFINITY, sum = 0;
                for (int j = cu[s]; j <= i; j++) {
                    const eqk_bf16 *k = qkv + (size_t)j * ld + (size_t)(nh + g) * hd;
                    double d = 0;
                    for (int e = 0; e < hd; e++)
                        d += bf(q[e]) * bf(k[e]);
                    p[j - cu[s]] = d * scale;
                    mx = fmax(mx, d * scale);
                }
                for (int j = cu[s]; j <= i; j++)
                    sum += p[j - cu[s]] = exp(p[j - cu[s]] - mx);
                double *o = ref + (size_t)i * old + (size_t)h * hd;
                for (int e = 0; e < hd; e++) {
                    double acc = 0;
                    for (int j = cu[s]; j <= i; j++)
                        acc += p[j - cu[s]] *
                               bf(qkv[(size_t)j * ld + (size_t)(nh + nkv + g) * hd + e]);
                    o[e] = acc / sum;
                }
            }
        }
    poison_bf16(out, (size_t)n * old);
    eqt_attention(qkv, cu, n_seqs, max_len, nh, nkv, hd, out);
    long nan_count;
    double rel = rel_bf16(out, ref, (size_t)n * old, &nan_count);
    char shape[128], ls[64];
    lens_str(ls, sizeof ls, lens, n_seqs);
    snprintf(shape, sizeof shape, "%s h %d/%d hd %d", ls, nh, nkv, hd);
    report("attention", shape, rel, BF16_TOL, nan_count);
    free(qkv), free(out), free(ref), free(p);
}

/* ------------------------------------------------------------------ */
/* swiglu                                                             */
/* ------------------------------------------------------------------ */

static void test_swiglu(int n, int inter, double gscale)
{
    const size_t sz = (size_t)n * inter;
    eqk_bf16 *gu = xcalloc(2 * sz, 2), *out = xcalloc(sz, 2);
    double *ref = xcalloc(sz, 8);
    fill_bf16(gu, 2 * sz, 1.0);
    for (int t = 0; t < n; t++) /* gate values ~ N(0, gscale) */
        fill_bf16(gu + (size_t)t * 2 * inter, (size_t)inter, gscale);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < inter; i++) {
            double g = bf(gu[(size_t)t * 2 * inter + i]);
            double u = bf(gu[(size_t)t * 2 * inter + inter + i]);
            ref[(size_t)t * inter + i] = g / (1.0 + exp(-g)) * u;
        }
    poison_bf16(out, sz);
    eqt_swiglu(gu, n, inter, out);
    long nan_count;
    double rel = rel_bf16(out, ref, sz, &nan_count);
    char shape[64];
    snprintf(shape, sizeof shape, "n %d inter %d gate~%g", n, inter, gscale);
    report("swiglu", shape, rel, BF16_TOL, nan_count);
    free(gu), free(out), free(ref);
}

/* ------------------------------------------------------------------ */
/* pool_normalize                                                     */
/* ------------------------------------------------------------------ */

enum { ROW_OK = 0, ROW_INF, ROW_HUGE, ROW_ZERO_W };

/* Sequences with the given lengths and dims; kind[s] plants a bad row:
 * ROW_INF (one +inf in x), ROW_HUGE (x ~ 1e30: squares overflow fp32),
 * ROW_ZERO_W is done through w (all of w[0..d) zero for every row: only
 * used alone). */
static void test_pool(const int *lens, const int *dims, const int *kind, int n_seqs, int hidden,
                      int with_y, int zero_w)
{
    int32_t cu[64], dm[64], bad[64], bad_ref[64];
    make_cu(cu, lens, n_seqs);
    const int n = cu[n_seqs];
    const size_t sz = (size_t)n * hidden;
    float *x = xcalloc(sz, 4), *w = xcalloc((size_t)hidden, 4);
    eqk_bf16 *y = with_y ? xcalloc(sz, 2) : NULL;
    float *out = xcalloc((size_t)n_seqs * hidden, 4);
    double *ref = xcalloc((size_t)n_seqs * hidden, 8), *h = xcalloc((size_t)hidden, 8);
    fill_f32(x, sz, 0.0, 3.0);
    if (y) fill_bf16(y, sz, 1.0);
    fill_f32(w, (size_t)hidden, 1.0, 0.2);
    for (int s = 0; s < n_seqs; s++) {
        dm[s] = dims[s];
        float *last = x + (size_t)(cu[s + 1] - 1) * hidden;
        if (kind[s] == ROW_INF) last[rnd_int(0, hidden - 1)] = INFINITY;
        if (kind[s] == ROW_HUGE)
            for (int j = 0; j < hidden; j++)
                last[j] = (float)(1e30 * (1.0 + rnd_unit()));
    }
    if (zero_w) {
        int dmax = 0;
        for (int s = 0; s < n_seqs; s++)
            dmax = dims[s] > dmax ? dims[s] : dmax;
        for (int j = 0; j < dmax; j++)
            w[j] = 0.0f;
    }
    for (int s = 0; s < n_seqs; s++) {
        bad_ref[s] = zero_w || kind[s] != ROW_OK;
        const size_t r = (size_t)cu[s + 1] - 1;
        double ss = 0, ss2 = 0;
        for (int j = 0; j < hidden; j++) {
            h[j] = (double)x[r * hidden + j] + (y ? bf(y[r * hidden + j]) : 0.0);
            ss += h[j] * h[j];
        }
        double rn = 1.0 / sqrt(ss / hidden + 1e-6);
        for (int j = 0; j < hidden; j++) {
            h[j] *= rn * w[j];
            if (j < dims[s]) ss2 += h[j] * h[j];
        }
        for (int j = 0; j < hidden; j++)
            ref[(size_t)s * hidden + j] = j < dims[s] ? h[j] / sqrt(ss2) : 0.0;
    }
    poison_f32(out, (size_t)n_seqs * hidden);
    memset(bad, 0xff, sizeof bad);
    eqt_pool_normalize(x, y, w, cu, dm, n_seqs, hidden, 1e-6f, out, bad);

    long flags_wrong = 0, nan_total = 0;
    double num = 0, den = 0;
    for (int s = 0; s < n_seqs; s++) {
        if (bad[s] != bad_ref[s]) flags_wrong++;
        if (bad_ref[s]) continue; /* out's row is unspecified */
        long nan_count;
        const float *o = out + (size_t)s * hidden;
        const double *rf = ref + (size_t)s * hidden;
        double rel = rel_f32(o, rf, (size_t)hidden, &nan_count);
        nan_total += nan_count;
        for (int j = 0; j < hidden; j++)
            if (j >= dims[s] && o[j] != 0.0f) nan_total++; /* zeros after d */
        num += rel * rel, den += 1;
    }
    double rel = den > 0 ? sqrt(num / den) : 0; /* rms over good rows */
    char shape[256], ls[64], ds[64], ks[64];
    lens_str(ls, sizeof ls, lens, n_seqs);
    lens_str(ds, sizeof ds, dims, n_seqs);
    lens_str(ks, sizeof ks, kind, n_seqs);
    snprintf(shape, sizeof shape, "H %d y %s lens %s dims %s bad %s%s", hidden, y ? "bf16" : "NULL",
             ls, ds, ks, zero_w ? " w=0" : "");
    report("pool_normalize", shape, rel, F32_TOL, nan_total);
    char msg[320];
    snprintf(msg, sizeof msg, "pool_normalize %s: %ld bad flags wrong", shape, flags_wrong);
    check(flags_wrong == 0, msg);
    free(x), free(w), free(y), free(out), free(ref), free(h);
}

/* ------------------------------------------------------------------ */
/* gemm                                                               */
/* ------------------------------------------------------------------ */

static void test_gemm(int m, int n, int k)
{
    eqk_bf16 *a = xcalloc((size_t)m * k, 2), *w = xcalloc((size_t)n * k, 2);
    eqk_bf16 *out = xcalloc((size_t)m * n, 2), *out1 = xcalloc((size_t)m * n, 2);
    double *ref = xcalloc((size_t)m * n, 8);
    fill_bf16(a, (size_t)m * k, 1.0);
    fill_bf16(w, (size_t)n * k, 0.05);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int l = 0; l < k; l++)
                acc += bf(a[(size_t)i * k + l]) * bf(w[(size_t)j * k + l]);
            ref[(size_t)i * n + j] = acc;
        }
    poison_bf16(out, (size_t)m * n);
    eqt_gemm_bf16(a, w, m, n, k, out);
    long nan_count;
    double rel = rel_bf16(out, ref, (size_t)m * n, &nan_count);
    char shape[64];
    snprintf(shape, sizeof shape, "m %d n %d k %d", m, n, k);
    report("gemm_bf16", shape, rel, BF16_TOL, nan_count);
    /* the thread count must not change a bit */
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    poison_bf16(out1, (size_t)m * n);
    eqt_gemm_bf16(a, w, m, n, k, out1);
    omp_set_num_threads(threads);
    check(memcmp(out, out1, (size_t)m * n * 2) == 0, "gemm_bf16: 1 thread == all threads");
    free(a), free(w), free(out), free(out1), free(ref);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 0x5eed2026ULL;
    g_rng = seed ? seed : 1;
    printf("twin_test: seed %llu (rerun with: twin_test %llu)\n", (unsigned long long)seed,
           (unsigned long long)seed);

    test_bf16();
    test_rope_table(4096, 128, 1e6f);
    test_rope_table(300, 32, 1e4f);

    test_embed_gather(50, 96, 7);
    test_embed_gather(20, 1024, 5);

    static const int hs[] = {96, 1024, 2560, 4096};
    for (int i = 0; i < 4; i++)
        for (int y = 0; y < 2; y++)
            test_add_rmsnorm(3, hs[i], y, 1.0, 1e-6f);
    /* mean(x^2) ~ eps: the eps placement matters */
    test_add_rmsnorm(4, 1024, 1, 1e-3, 1e-6f);
    test_add_rmsnorm(4, 96, 0, 1e-3, 1e-6f);

    static const int packed[] = {1, 2, 17, 64, 65, 300};
    static const int one[] = {5};
    test_qk_norm_rope(packed, 6, 4, 2, 128, 1.0, 1e-6f);
    test_qk_norm_rope(packed, 6, 8, 2, 32, 1.0, 1e-6f);
    test_qk_norm_rope(one, 1, 2, 1, 64, 1.0, 1e-6f);
    test_qk_norm_rope(packed, 6, 2, 1, 256, 1.0, 1e-6f);
    test_qk_norm_rope(one, 1, 4, 2, 128, 1e-3, 1e-6f); /* eps matters */

    test_attention(packed, 6, 4, 2, 32);  /* GQA 2 */
    test_attention(packed, 6, 8, 2, 128); /* GQA 4 */
    static const int singles[] = {1};
    test_attention(singles, 1, 2, 1, 32);
    static const int more[] = {3, 1, 40, 2};
    test_attention(more, 4, 4, 4, 64); /* no grouping */

    test_swiglu(3, 160, 1.0);
    test_swiglu(3, 3072, 3.0);
    test_swiglu(2, 160, 60.0); /* exp(-g) overflows for g < -88: no NaN */

    {
        static const int lens[] = {3, 1, 7, 2};
        static const int ok[] = {ROW_OK, ROW_OK, ROW_OK, ROW_OK};
        static const int full96[] = {96, 96, 96, 96}, part96[] = {32, 96, 64, 40};
        static const int full4k[] = {4096, 4096, 4096, 4096}, part4k[] = {1024, 32, 4096, 768};
        test_pool(lens, full96, ok, 4, 96, 0, 0);
        test_pool(lens, full96, ok, 4, 96, 1, 0);
        test_pool(lens, part96, ok, 4, 96, 1, 0);
        test_pool(lens, full4k, ok, 4, 4096, 1, 0);
        test_pool(lens, part4k, ok, 4, 4096, 0, 0);
        static const int full1k[] = {1024, 1024, 1024, 1024}, part1k[] = {256, 1024, 512, 32};
        static const int badk[] = {ROW_OK, ROW_INF, ROW_OK, ROW_HUGE};
        test_pool(lens, full1k, badk, 4, 1024, 1, 0);
        test_pool(lens, part1k, badk, 4, 1024, 0, 0);
        static const int d32[] = {32, 32, 32, 32};
        test_pool(lens, d32, ok, 4, 1024, 1, 1); /* zero norm -> bad */
    }

    test_gemm(37, 96, 160);
    test_gemm(300, 256, 1024);
    test_gemm(5, 3072, 1024); /* a 0.6B shape */

    printf("twin_test: %d checks, %d failed\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}
