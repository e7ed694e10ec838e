/* emu_test.cpp - every CUDA kernel of kernels/kernels.h, its own source run
 * on the kernel emulator (kernels/emu/), against its CPU twin
 * (kernels/twins.h).
 *
 * For each case: fresh random inputs from a printed seed (never zeros),
 * outputs poisoned with 0xFF bytes (NaN in bf16 and fp32) before the
 * launch; the launcher must return cudaSuccess and the emulator must report
 * nothing (no shared-memory race, out-of-bounds shared access, divergent
 * warp operation, deadlock, bad launch configuration). Then every row of
 * the output is checked on its own: no NaN left (every element written),
 * ||row - twin row|| / ||twin row|| <= 1e-2 for bf16 outputs (1e-4 fp32;
 * the copy exact), and for the kernels other than attention each bf16
 * element within one bf16 ulp of the twin plus 1e-4 of the row's rms
 * ("elem" <= 1). Attention rounds P to bf16 on purpose, so it gets the
 * row-wise norm only.
 *
 * Usage: emu_test [--seed N] [--only OP] [--quick]
 *   --only OP  run one op's cases (embed_gather, add_rmsnorm, qk_norm_rope,
 *              attention, swiglu, pool_normalize, config)
 *   --quick    without the three 1000-token attention cases (the
 *              worker-like batch with a 1000-token document stays)
 * Exit: 0 all pass, 1 any failure, 2 usage.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <string>
#include <vector>

#include "kernels.h"
#include "twins.h"

typedef uint16_t bf16;

static int g_fail, g_pass;
static const char *g_only;
static bool g_quick;

/* ---- random inputs ------------------------------------------------------- */

static uint64_t g_rng;

static uint64_t rnd_u64()
{
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545F4914F6CDD1DULL;
}
static double rnd_unit()
{
    return ((double)(rnd_u64() >> 11) + 0.5) / 9007199254740992.0;
}
static int rnd_int(int lo, int hi)
{
    return lo + (int)(rnd_u64() % (uint64_t)(hi - lo + 1));
}
static double rnd_normal()
{
    for (;;) {
        double v = sqrt(-2.0 * log(rnd_unit())) * cos(6.283185307179586 * rnd_unit());
        if (v != 0.0) return v;
    }
}
static std::vector<bf16> rand_bf16(size_t n, double scale)
{
    std::vector<bf16> v(n);
    for (auto &x : v)
        do
            x = eqt_f32_to_bf16((float)(rnd_normal() * scale));
        while ((x & 0x7fff) == 0);
    return v;
}
static std::vector<float> rand_f32(size_t n, double mean, double scale)
{
    std::vector<float> v(n);
    for (auto &x : v)
        do
            x = (float)(mean + rnd_normal() * scale);
        while (x == 0.0f);
    return v;
}
template <typename T> static void poison(std::vector<T> &v)
{
    memset(v.data(), 0xff, v.size() * sizeof(T));
}

/* ---- reporting ----------------------------------------------------------- */

static std::string fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static std::string fmt(const char *f, ...)
{
    char b[512];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof b, f, ap);
    va_end(ap);
    return b;
}

static void fail_row(const char *op, const std::string &shape, const std::string &why)
{
    g_fail++;
    printf("%-15s %-44s FAIL  %s\n", op, shape.c_str(), why.c_str());
    fflush(stdout);
}

/* The launcher's return code and the emulator's verdict. */
static bool launched(cudaError_t e, const char *op, const std::string &shape)
{
    const char *emu = eqk_emu_error();
    if (e == cudaSuccess && !emu) return true;
    fail_row(op, shape, fmt("launcher returned %d; emulator: %s", (int)e, emu ? emu : "no error"));
    eqk_emu_clear_error();
    return false;
}

static bool run(const char *op)
{
    return !g_only || !strcmp(g_only, op);
}

static float bf2f(bf16 h)
{
    return eqt_bf16_to_f32(h);
}
static float f2f(float f)
{
    return f;
}

/* The kernels other than attention compute the twin's function with the
 * same operations and rounding points; only the order of the fp32 sums
 * differs (tree reductions vs index order), which moves a bf16 result by
 * one ulp when it lands near a rounding boundary. So besides being within
 * one ulp, at most this fraction of their elements may differ from the twin
 * at all: a changed rounding point (e.g. rounding the normed value before
 * the weight multiply) changes far more. */
static const double kMaxDiffer = 0.02;

/* Row-wise comparison of rows x cols elements (row r at r * stride):
 * worst row's relative error and worst element (bf16 ulps, see the header);
 * any NaN fails. */
template <typename T, typename F>
static void check(const char *op, const std::string &shape, const T *got, const T *want,
                  size_t rows, size_t cols, size_t stride, F get, double tol, bool use_elem,
                  const std::string &extra = "")
{
    double worst_rel = 0, worst_elem = 0;
    size_t worst_row = 0, bad_row = (size_t)-1;
    long nan = 0, differ = 0;
    for (size_t r = 0; r < rows; r++) {
        double num = 0, den = 0;
        for (size_t c = 0; c < cols; c++) {
            const double t = get(want[r * stride + c]);
            den += t * t;
        }
        const double slack = 1e-4 * sqrt(den / (double)std::max<size_t>(cols, 1));
        for (size_t c = 0; c < cols; c++) {
            const double g = get(got[r * stride + c]), t = get(want[r * stride + c]);
            if (isnan(g) || isnan(t)) {
                if (!nan) bad_row = r;
                nan++;
                continue;
            }
            const double d = fabs(g - t);
            differ += d != 0;
            num += d * d;
            const double el = d / (ldexp(fabs(t), -7) * 1.01 + slack);
            if (el > worst_elem) worst_elem = el;
        }
        const double rel = den > 0 ? sqrt(num / den) : sqrt(num);
        if (rel > worst_rel || isnan(rel)) worst_rel = rel, worst_row = r;
    }
    const double differ_frac = (double)differ / (double)std::max<size_t>(rows * cols, 1);
    const bool ok = nan == 0 && worst_rel <= tol &&
                    (!use_elem || (worst_elem <= 1.0 && differ_frac <= kMaxDiffer));
    (ok ? g_pass : g_fail)++;
    char el[32] = "      -";
    if (use_elem) snprintf(el, sizeof el, "%7.3f", worst_elem);
    printf("%-15s %-44s %s  rows %5zu  worst row %5zu rel %9.3e  elem %s  differ %6.3f%%%s\n", op,
           shape.c_str(), ok ? "PASS" : "FAIL", rows, worst_row, worst_rel, el, 100.0 * differ_frac,
           (nan ? fmt("  (%ld NaN/unwritten, first in row %zu)", nan, bad_row) : extra).c_str());
    fflush(stdout);
}

static std::string lens_str(const std::vector<int> &lens)
{
    if (lens.size() > 8) {
        int mx = *std::max_element(lens.begin(), lens.end()), tot = 0;
        for (int l : lens)
            tot += l;
        return fmt("%zu seqs, %d tok, max %d", lens.size(), tot, mx);
    }
    std::string s = "{";
    for (size_t i = 0; i < lens.size(); i++)
        s += (i ? "," : "") + std::to_string(lens[i]);
    return s + "}";
}

static std::vector<int32_t> make_cu(const std::vector<int> &lens)
{
    std::vector<int32_t> cu(lens.size() + 1, 0);
    for (size_t s = 0; s < lens.size(); s++)
        cu[s + 1] = cu[s] + lens[s];
    return cu;
}

/* ---- the cases ------------------------------------------------------------ */

static void t_embed_gather(int vocab, int hidden, int n)
{
    auto table = rand_bf16((size_t)vocab * hidden, 1.0);
    std::vector<int32_t> ids(n);
    for (auto &i : ids)
        i = rnd_int(0, vocab - 1);
    ids[0] = vocab - 1;
    std::vector<float> x((size_t)n * hidden), tw((size_t)n * hidden);
    poison(x);
    const std::string shape = fmt("vocab %d hidden %d n %d", vocab, hidden, n);
    if (!launched(eqk_embed_gather(table.data(), ids.data(), n, hidden, x.data(), nullptr),
                  "embed_gather", shape))
        return;
    eqt_embed_gather(table.data(), ids.data(), n, hidden, tw.data());
    check("embed_gather", shape, x.data(), tw.data(), n, hidden, hidden, f2f, 0.0, false);
}

static void t_add_rmsnorm(int n, int hidden, bool with_y, double xscale = 1.0)
{
    const size_t sz = (size_t)n * hidden;
    auto x = rand_f32(sz, 0.0, xscale);
    auto w = rand_f32(hidden, 1.0, 0.2);
    std::vector<bf16> y = with_y ? rand_bf16(sz, xscale) : std::vector<bf16>();
    auto gx = x;
    std::vector<bf16> out(sz), tout(sz);
    poison(out);
    const std::string shape = fmt("n %d hidden %d y %s%s", n, hidden, with_y ? "bf16" : "NULL",
                                  xscale != 1.0 ? " x~1e-3" : "");
    if (!launched(eqk_add_rmsnorm(gx.data(), with_y ? y.data() : nullptr, w.data(), n, hidden,
                                  1e-6f, out.data(), nullptr),
                  "add_rmsnorm", shape))
        return;
    eqt_add_rmsnorm(x.data(), with_y ? y.data() : nullptr, w.data(), n, hidden, 1e-6f, tout.data());
    check("add_rmsnorm", shape + " : x", gx.data(), x.data(), n, hidden, hidden, f2f, 1e-6, false);
    check("add_rmsnorm", shape + " : out", out.data(), tout.data(), n, hidden, hidden, bf2f, 1e-2,
          true);
}

static void t_qk_norm_rope(const std::vector<int> &lens, int nh, int nkv, int hd)
{
    auto cu = make_cu(lens);
    const int n = cu.back(), half = hd / 2, ld = (nh + 2 * nkv) * hd, qk = (nh + nkv) * hd;
    const int max_pos = *std::max_element(lens.begin(), lens.end());
    std::vector<int32_t> pos(n);
    for (size_t s = 0; s < lens.size(); s++)
        for (int t = cu[s]; t < cu[s + 1]; t++)
            pos[t] = t - cu[s];
    std::vector<float> cs((size_t)max_pos * half * 2);
    eqt_rope_table(cs.data(), max_pos, hd, 1e6f);
    auto qw = rand_f32(hd, 1.0, 0.3), kw = rand_f32(hd, 1.0, 0.3);
    auto qkv = rand_bf16((size_t)n * ld, 1.0);
    auto g = qkv, tw = qkv;
    const std::string shape = fmt("%s h %d/%d hd %d", lens_str(lens).c_str(), nh, nkv, hd);
    if (!launched(eqk_qk_norm_rope(g.data(), pos.data(), n, nh, nkv, hd, qw.data(), kw.data(),
                                   1e-6f, cs.data(), nullptr),
                  "qk_norm_rope", shape))
        return;
    eqt_qk_norm_rope(tw.data(), pos.data(), n, nh, nkv, hd, qw.data(), kw.data(), 1e-6f, cs.data());
    /* per row: each (token, head) of q and k is one row */
    check("qk_norm_rope", shape, g.data(), tw.data(), (size_t)n * (nh + nkv), hd, hd, bf2f, 1e-2,
          true);
    long v_changed = 0;
    for (int t = 0; t < n; t++)
        v_changed +=
            memcmp(&g[(size_t)t * ld + qk], &qkv[(size_t)t * ld + qk], (size_t)nkv * hd * 2) != 0;
    if (v_changed) fail_row("qk_norm_rope", shape, "v columns were modified");
}

/* The work list must hold every (sequence, query block) once, longest
 * first; returns false (after a FAIL line) when it does not. */
static bool check_work(const std::vector<int> &lens, const std::vector<int32_t> &work, int n_work,
                       const std::string &shape)
{
    int expect = 0;
    for (int l : lens)
        expect += (l + 63) / 64;
    std::vector<std::vector<int>> seen(lens.size());
    for (size_t s = 0; s < lens.size(); s++)
        seen[s].assign((size_t)(lens[s] + 63) / 64, 0);
    bool ok = n_work == expect;
    for (int i = 0; ok && i < n_work; i++) {
        const int s = work[2 * i], mb = work[2 * i + 1];
        ok = s >= 0 && s < (int)lens.size() && mb >= 0 && mb < (int)seen[s].size() &&
             !seen[s][mb]++ && (i == 0 || mb <= work[2 * i - 1]);
    }
    if (!ok)
        fail_row("attention", shape,
                 fmt("work list wrong: %d items, %d expected, or an "
                     "item repeated, out of range or out of order",
                     n_work, expect));
    return ok;
}

static void t_attention(const std::vector<int> &lens, int nh, int nkv, int hd)
{
    auto cu = make_cu(lens);
    const int n = cu.back(), ld = (nh + 2 * nkv) * hd, old = nh * hd;
    const int max_len = *std::max_element(lens.begin(), lens.end());
    auto qkv = rand_bf16((size_t)n * ld, 1.0);
    std::vector<bf16> out((size_t)n * old), tw((size_t)n * old);
    poison(out);
    std::vector<int32_t> work(2 * (size_t)n);
    const int n_work = eqk_attention_work(cu.data(), (int)lens.size(), work.data());
    work.resize(2 * (size_t)n_work); /* exact size: a read past the list is an overrun */
    work.shrink_to_fit();
    const std::string shape = fmt("%s h %d/%d hd %d", lens_str(lens).c_str(), nh, nkv, hd);
    if (!check_work(lens, work, n_work, shape)) return;
    const long blocks0 = eqk_emu_blocks_run();
    if (!launched(eqk_attention(qkv.data(), cu.data(), work.data(), n_work, nh, nkv, hd, out.data(),
                                nullptr),
                  "attention", shape))
        return;
    /* one block per item and head, none idle: the grid of n_seqs x heads x
     * ceil(max_len / 64) it replaces is printed beside it */
    const long blocks = eqk_emu_blocks_run() - blocks0;
    if (blocks != (long)n_work * nh)
        fail_row("attention", shape,
                 fmt("%ld blocks ran, %ld expected", blocks, (long)n_work * nh));
    eqt_attention(qkv.data(), cu.data(), (int)lens.size(), max_len, nh, nkv, hd, tw.data());
    /* per row: each (token, head) */
    check("attention", shape, out.data(), tw.data(), (size_t)n * nh, hd, hd, bf2f, 1e-2, false,
          fmt("  blocks %ld (full grid %ld)", blocks,
              (long)lens.size() * nh * ((max_len + 63) / 64)));
}

static void t_swiglu(int n, int inter, double gscale)
{
    const size_t sz = (size_t)n * inter;
    auto gu = rand_bf16(2 * sz, 1.0);
    for (int t = 0; t < n; t++) {
        auto gate = rand_bf16(inter, gscale);
        std::copy(gate.begin(), gate.end(), gu.begin() + (size_t)t * 2 * inter);
    }
    std::vector<bf16> out(sz), tw(sz);
    poison(out);
    const std::string shape = fmt("n %d inter %d gate~%g", n, inter, gscale);
    if (!launched(eqk_swiglu(gu.data(), n, inter, out.data(), nullptr), "swiglu", shape)) return;
    eqt_swiglu(gu.data(), n, inter, tw.data());
    check("swiglu", shape, out.data(), tw.data(), n, inter, inter, bf2f, 1e-2, true);
}

enum { OK = 0, INF_ROW = 1, HUGE_ROW = 2 };

static void t_pool(const std::vector<int> &lens, const std::vector<int> &dims,
                   const std::vector<int> &kind, int hidden, bool with_y)
{
    auto cu = make_cu(lens);
    const int n = cu.back(), ns = (int)lens.size();
    auto x = rand_f32((size_t)n * hidden, 0.0, 3.0);
    auto w = rand_f32(hidden, 1.0, 0.2);
    std::vector<bf16> y = with_y ? rand_bf16((size_t)n * hidden, 1.0) : std::vector<bf16>();
    for (int s = 0; s < ns; s++) {
        float *last = &x[(size_t)(cu[s + 1] - 1) * hidden];
        if (kind[s] == INF_ROW) last[rnd_int(0, hidden - 1)] = INFINITY;
        if (kind[s] == HUGE_ROW)
            for (int j = 0; j < hidden; j++)
                last[j] = (float)(1e30 * (1.0 + rnd_unit()));
    }
    std::vector<int32_t> dm(dims.begin(), dims.end()), bad(ns), tbad(ns);
    std::vector<float> out((size_t)ns * hidden), tout((size_t)ns * hidden);
    poison(out);
    poison(bad);
    const std::string shape = fmt("H %d y %s dims %s bad %s", hidden, with_y ? "bf16" : "NULL",
                                  lens_str(dims).c_str(), lens_str(kind).c_str());
    if (!launched(eqk_pool_normalize(x.data(), with_y ? y.data() : nullptr, w.data(), cu.data(),
                                     dm.data(), ns, hidden, 1e-6f, out.data(), bad.data(), nullptr),
                  "pool_normalize", shape))
        return;
    eqt_pool_normalize(x.data(), with_y ? y.data() : nullptr, w.data(), cu.data(), dm.data(), ns,
                       hidden, 1e-6f, tout.data(), tbad.data());
    std::vector<float> gg, tt;
    int flags_wrong = 0;
    for (int s = 0; s < ns; s++) {
        if (bad[s] != tbad[s] || tbad[s] != (kind[s] != OK)) flags_wrong++;
        if (tbad[s]) continue;
        gg.insert(gg.end(), out.begin() + (size_t)s * hidden,
                  out.begin() + (size_t)(s + 1) * hidden);
        tt.insert(tt.end(), tout.begin() + (size_t)s * hidden,
                  tout.begin() + (size_t)(s + 1) * hidden);
    }
    check("pool_normalize", shape, gg.data(), tt.data(), gg.size() / hidden, hidden, hidden, f2f,
          1e-4, false);
    if (flags_wrong) fail_row("pool_normalize", shape, "bad[] flags differ from the twin/expected");
}

/* Launchers with nothing to do return cudaSuccess and launch nothing;
 * broken preconditions are refused without a launch. */
static void t_config()
{
    std::vector<bf16> b(64, 0xffff);
    std::vector<float> f(64, NAN);
    std::vector<int32_t> i(64, 0);
    const long before = eqk_emu_blocks_run();
    bool ok =
        eqk_embed_gather(b.data(), i.data(), 0, 64, f.data(), nullptr) == cudaSuccess &&
        eqk_add_rmsnorm(f.data(), b.data(), f.data(), 0, 64, 1e-6f, b.data(), nullptr) ==
            cudaSuccess &&
        eqk_swiglu(b.data(), 0, 64, b.data(), nullptr) == cudaSuccess &&
        eqk_attention(b.data(), i.data(), i.data(), 0, 2, 1, 32, b.data(), nullptr) == cudaSuccess;
    ok = ok && eqk_emu_blocks_run() == before;
    for (bf16 v : b)
        ok = ok && v == 0xffff;
    (ok ? g_pass : g_fail)++;
    printf("%-15s %-44s %s\n", "(all)", "n = 0: cudaSuccess, nothing written",
           ok ? "PASS" : "FAIL");
    const cudaError_t inv = cudaErrorInvalidValue;
    bool ok2 =
        eqk_embed_gather(b.data() + 1, i.data(), 1, 8, f.data(), nullptr) == inv &&
        eqk_add_rmsnorm(f.data(), nullptr, f.data(), 1, 12, 1e-6f, b.data(), nullptr) == inv &&
        eqk_attention(b.data(), i.data(), i.data(), 1, 3, 2, 32, b.data(), nullptr) == inv &&
        eqk_attention(b.data(), i.data(), i.data(), 1, 2, 1, 48, b.data(), nullptr) == inv &&
        eqk_attention(b.data(), i.data(), i.data() + 1, 1, 2, 1, 32, b.data(), nullptr) == inv;
    (ok2 ? g_pass : g_fail)++;
    printf("%-15s %-44s %s\n", "(all)", "bad arguments: cudaErrorInvalidValue",
           ok2 ? "PASS" : "FAIL");

    /* Before eqk_init, attention at hd 128 (69632 bytes of dynamic shared
     * memory) must not launch: the attribute is set once at init, not per
     * launch, and a GPU refuses the launch without it. */
    std::vector<bf16> q(3 * 128, 0x3f80), o(128);
    std::vector<int32_t> cu = {0, 1}, work = {0, 0};
    const cudaError_t e3 =
        eqk_attention(q.data(), cu.data(), work.data(), 1, 1, 1, 128, o.data(), nullptr);
    const char *msg = eqk_emu_error();
    const bool ok3 = e3 != cudaSuccess && msg && strstr(msg, "MaxDynamicSharedMemorySize");
    eqk_emu_clear_error();
    (ok3 ? g_pass : g_fail)++;
    printf("%-15s %-44s %s\n", "attention", "hd 128 before eqk_init: refused",
           ok3 ? "PASS" : "FAIL");
}

int main(int argc, char **argv)
{
    uint64_t seed = 0x656d75ULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], nullptr, 0);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            g_only = argv[++i];
        else if (!strcmp(argv[i], "--quick"))
            g_quick = true;
        else {
            fprintf(stderr,
                    "emu_test: unknown argument '%s'\nusage: %s [--seed N] [--only OP] "
                    "[--quick]\n",
                    argv[i], argv[0]);
            return 2;
        }
    }
    g_rng = seed ? seed : 1;
    printf("emu_test: the kernels' source on the emulator vs the CPU twins, seed %llu (rerun: "
           "--seed %llu)\n",
           (unsigned long long)seed, (unsigned long long)seed);

    if (run("config")) t_config(); /* before eqk_init: checks the launch is refused without it */
    if (eqk_init() != cudaSuccess) {
        printf("emu_test: eqk_init failed\n");
        return 1;
    }

    if (run("embed_gather")) {
        for (int h : {96, 1024, 2560, 4096})
            t_embed_gather(300, h, 11); /* 11 rows: a partial second block */
    }
    if (run("add_rmsnorm")) {
        for (int h : {96, 1024, 2560, 4096})
            for (bool y : {false, true})
                t_add_rmsnorm(3, h, y);
        t_add_rmsnorm(2, 20480, true); /* the two-pass fallback */
        t_add_rmsnorm(3, 1024, true, 1e-3);
    }
    if (run("qk_norm_rope")) {
        const std::vector<int> packed = {1, 2, 63, 64, 65};
        for (int hd : {32, 64, 128})
            for (int r : {1, 2, 4})
                t_qk_norm_rope(packed, 2 * r, 2, hd);
        t_qk_norm_rope({1, 2, 7}, 16, 8, 128); /* 0.6B */
        t_qk_norm_rope({3}, 32, 8, 128);       /* 4B, 8B */
        t_qk_norm_rope({2}, 64, 16, 256);      /* loops inside the block */
    }
    if (run("attention")) {
        const std::vector<int> all = {1, 2, 63, 64, 65, 127, 128, 129};
        for (int hd : {32, 64, 128})
            for (int r : {1, 2, 4}) {
                t_attention(all, r, 1, hd); /* packed mix, one kv head */
            }
        for (int hd : {32, 64, 128})
            t_attention({129, 1, 64, 2, 65}, 4, 2, hd); /* GQA 2, two kv heads */
        t_attention({3, 70}, 16, 8, 128);               /* 0.6B heads */
        t_attention({65, 2}, 32, 8, 128);               /* 4B/8B heads */
        {
            /* the worker's normal batch: one long document and many short
             * chunks (here 1000 tokens and 40 chunks of 1..40) */
            std::vector<int> mixed = {1000};
            for (int s = 0; s < 40; s++)
                mixed.push_back(rnd_int(1, 40));
            t_attention(mixed, 2, 1, 64);
        }
        if (!g_quick) {
            t_attention({1000}, 2, 1, 128);
            t_attention({1000, 1, 63}, 4, 1, 64);
            t_attention({1000}, 2, 2, 32);
        }
    }
    if (run("swiglu")) {
        for (int inter : {160, 3072, 9728, 12288})
            t_swiglu(2, inter, 2.0);
        t_swiglu(3, 160, 60.0); /* exp(-g) overflows: no NaN */
    }
    if (run("pool_normalize")) {
        const std::vector<int> lens = {3, 1, 7, 2, 1};
        const std::vector<int> ok5 = {OK, OK, OK, OK, OK};
        for (int h : {96, 1024, 2560, 4096})
            for (bool y : {false, true}) {
                t_pool(lens, std::vector<int>(5, h), ok5, h, y);
                t_pool(lens, {32, h, 33, 1, h - 1}, ok5, h, y);
            }
        t_pool(lens, {1024, 100, 1024, 1024, 512}, {OK, INF_ROW, OK, HUGE_ROW, OK}, 1024, true);
    }

    printf("emu_test: %d passed, %d failed (%ld blocks emulated)\n", g_pass, g_fail,
           eqk_emu_blocks_run());
    return g_fail ? 1 : 0;
}
