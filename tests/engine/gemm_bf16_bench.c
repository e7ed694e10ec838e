/* gemm_bf16_bench.c - the GEMMs of one Qwen3-0.6B layer (q 1024->2048,
 * k/v 1024->1024, o 2048->1024, gate/up 1024->3072, down 3072->1024) at
 * M = 256, 512, 2048 tokens, three ways, for docs/engine.md "bf16 path":
 *   - fp32 cblas_sgemm, columns cut into one single-threaded slice per
 *     OpenMP thread (the fp32 path's matmul);
 *   - oneDNN matmul, bf16 x bf16 -> fp32, weights packed once (format any);
 *   - the same with the weights as mapped (plain "ba" layout: the bf16 path).
 * OpenBLAS's cblas_sbgemm is compiled only with -DHAVE_SBGEMM: Debian's
 * OpenBLAS 0.3.21 declares it but does not export it (built without
 * BUILD_BFLOAT16). Best of REPS after a warm-up. Not a test.
 * Usage: gemm_bf16_bench [THREADS [REPS]] */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
static uint16_t f2bf(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return u >> 16;
}
#define CK(x)                                                                                      \
    do {                                                                                           \
        dnnl_status_t s_ = (x);                                                                    \
        if (s_ != dnnl_success) {                                                                  \
            fprintf(stderr, "%s: %d\n", #x, s_);                                                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
enum { NG = 7 };
static const int G_in[NG] = {1024, 1024, 1024, 2048, 1024, 1024, 3072};
static const int G_out[NG] = {2048, 1024, 1024, 1024, 3072, 3072, 1024};
static int T;

static void mm_f32(float *y, const float *x, const float *w, int n, int in, int out)
{
    int nt = T, slice = (out + nt - 1) / nt;
    slice = (slice + 15) / 16 * 16;
    int ns = (out + slice - 1) / slice;
#pragma omp parallel for num_threads(ns) schedule(static, 1)
    for (int j = 0; j < ns; j++) {
        int c0 = j * slice, cols = out - c0 < slice ? out - c0 : slice;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, cols, in, 1.f, x, in,
                    w + (size_t)c0 * in, in, 0.f, y + c0, out);
    }
}
#ifdef HAVE_SBGEMM
static void mm_sb(float *y, const uint16_t *x, const uint16_t *w, int n, int in, int out)
{
    int nt = T, slice = (out + nt - 1) / nt;
    slice = (slice + 15) / 16 * 16;
    int ns = (out + slice - 1) / slice;
#pragma omp parallel for num_threads(ns) schedule(static, 1)
    for (int j = 0; j < ns; j++) {
        int c0 = j * slice, cols = out - c0 < slice ? out - c0 : slice;
        cblas_sbgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, cols, in, 1.f, (const bfloat16 *)x,
                     in, (const bfloat16 *)(w + (size_t)c0 * in), in, 0.f, y + c0, out);
    }
}
#endif
int main(int argc, char **argv)
{
    T = argc > 1 ? atoi(argv[1]) : 2;
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    openblas_set_num_threads(1);
    omp_set_num_threads(T);
    printf("openblas: %s / %s; dnnl isa 0x%x\n", openblas_get_config(), openblas_get_corename(),
           (unsigned)dnnl_get_effective_cpu_isa());
    const int Ms[] = {256, 512, 2048};
    size_t maxw = 3072 * 1024, maxx = 2048 * 3072, maxy = 2048 * 3072;
    float *wf[NG];
    uint16_t *wb[NG];
    srand(1);
    for (int g = 0; g < NG; g++) {
        size_t n = (size_t)G_in[g] * G_out[g];
        wf[g] = malloc(n * 4);
        wb[g] = malloc(n * 2);
        for (size_t i = 0; i < n; i++) {
            float v = (rand() / (float)RAND_MAX - 0.5f) * 0.1f;
            wb[g][i] = f2bf(v);
            uint32_t u = (uint32_t)wb[g][i] << 16;
            memcpy(&wf[g][i], &u, 4);
        }
    }
    (void)maxw;
    float *xf = malloc(maxx * 4), *y = malloc(maxy * 4);
    uint16_t *xb = malloc(maxx * 2);
    for (size_t i = 0; i < maxx; i++) {
        xf[i] = rand() / (float)RAND_MAX - 0.5f;
        xb[i] = f2bf(xf[i]);
    }
    dnnl_engine_t eng;
    CK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    dnnl_stream_t st;
    CK(dnnl_stream_create(&st, eng, dnnl_stream_default_flags));
    for (int mi = 0; mi < 3; mi++) {
        int M = Ms[mi];
        double flop = 0;
        for (int g = 0; g < NG; g++)
            flop += 2.0 * M * G_in[g] * G_out[g];
        double best;
        /* fp32 */
        best = 1e9;
        for (int r = 0; r < reps + 1; r++) {
            double t0 = now();
            for (int g = 0; g < NG; g++)
                mm_f32(y, xf, wf[g], M, G_in[g], G_out[g]);
            double t = now() - t0;
            if (r && t < best) best = t;
        }
        printf("M=%4d fp32 sgemm (2 slices)     %7.1f GFLOP/s\n", M, flop / best * 1e-9);
#ifdef HAVE_SBGEMM
        best = 1e9;
        for (int r = 0; r < reps + 1; r++) {
            double t0 = now();
            for (int g = 0; g < NG; g++)
                mm_sb(y, xb, wb[g], M, G_in[g], G_out[g]);
            double t = now() - t0;
            if (r && t < best) best = t;
        }
        printf("M=%4d openblas sbgemm (2 slices) %7.1f GFLOP/s\n", M, flop / best * 1e-9);
        best = 1e9;
        for (int r = 0; r < reps + 1; r++) {
            double t0 = now();
            cblas_sbgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, 3072, 1024, 1.f,
                         (const bfloat16 *)xb, 1024, (const bfloat16 *)wb[4], 1024, 0.f, y, 3072);
            double t = now() - t0;
            if (r && t < best) best = t;
        }
        printf("M=%4d openblas sbgemm 1 thread, gate only %7.1f GFLOP/s\n", M,
               2.0 * M * 3072 * 1024 / best * 1e-9);
#endif
        /* oneDNN: weights packed once (format any), src bf16, dst f32 */
        dnnl_primitive_t prim[NG];
        dnnl_memory_t wm[NG], sm[NG], dm[NG];
        for (int g = 0; g < NG; g++) {
            dnnl_dims_t sd = {M, G_in[g]}, wd = {G_in[g], G_out[g]}, dd = {M, G_out[g]};
            dnnl_memory_desc_t smd, wmd_any, wmd_ba, dmd;
            CK(dnnl_memory_desc_init_by_tag(&smd, 2, sd, dnnl_bf16, dnnl_ab));
            CK(dnnl_memory_desc_init_by_tag(&wmd_any, 2, wd, dnnl_bf16, dnnl_format_tag_any));
            CK(dnnl_memory_desc_init_by_tag(&wmd_ba, 2, wd, dnnl_bf16, dnnl_ba));
            CK(dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dnnl_f32, dnnl_ab));
            dnnl_matmul_desc_t md;
            CK(dnnl_matmul_desc_init(&md, &smd, &wmd_any, NULL, &dmd));
            dnnl_primitive_desc_t pd;
            CK(dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL));
            const char *impl;
            dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
            if (g == 0) printf("M=%4d dnnl impl %s\n", M, impl);
            const dnnl_memory_desc_t *pw =
                dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
            CK(dnnl_memory_create(&wm[g], pw, eng, DNNL_MEMORY_ALLOCATE));
            dnnl_memory_t wsrc;
            CK(dnnl_memory_create(&wsrc, &wmd_ba, eng, wb[g]));
            dnnl_primitive_desc_t rpd;
            CK(dnnl_reorder_primitive_desc_create(&rpd, &wmd_ba, eng, pw, eng, NULL));
            dnnl_primitive_t rp;
            CK(dnnl_primitive_create(&rp, rpd));
            dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, wsrc}, {DNNL_ARG_TO, wm[g]}};
            CK(dnnl_primitive_execute(rp, st, 2, ra));
            dnnl_stream_wait(st);
            CK(dnnl_memory_create(&sm[g], &smd, eng, xb));
            CK(dnnl_memory_create(&dm[g], &dmd, eng, y));
            CK(dnnl_primitive_create(&prim[g], pd));
        }
        best = 1e9;
        for (int r = 0; r < reps + 1; r++) {
            double t0 = now();
            for (int g = 0; g < NG; g++) {
                dnnl_exec_arg_t a[3] = {
                    {DNNL_ARG_SRC, sm[g]}, {DNNL_ARG_WEIGHTS, wm[g]}, {DNNL_ARG_DST, dm[g]}};
                CK(dnnl_primitive_execute(prim[g], st, 3, a));
            }
            dnnl_stream_wait(st);
            double t = now() - t0;
            if (r && t < best) best = t;
        }
        printf("M=%4d onednn matmul bf16 packed  %7.1f GFLOP/s\n", M, flop / best * 1e-9);
        /* oneDNN with plain (ba) weights, no packing */
        for (int g = 0; g < NG; g++) {
            dnnl_dims_t sd = {M, G_in[g]}, wd = {G_in[g], G_out[g]}, dd = {M, G_out[g]};
            dnnl_memory_desc_t smd, wmd, dmd;
            CK(dnnl_memory_desc_init_by_tag(&smd, 2, sd, dnnl_bf16, dnnl_ab));
            CK(dnnl_memory_desc_init_by_tag(&wmd, 2, wd, dnnl_bf16, dnnl_ba));
            CK(dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dnnl_f32, dnnl_ab));
            dnnl_matmul_desc_t md;
            CK(dnnl_matmul_desc_init(&md, &smd, &wmd, NULL, &dmd));
            dnnl_primitive_desc_t pd;
            CK(dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL));
            const char *impl;
            dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
            if (g == 0) printf("M=%4d dnnl plain impl %s\n", M, impl);
            dnnl_primitive_destroy(prim[g]);
            CK(dnnl_primitive_create(&prim[g], pd));
            dnnl_memory_destroy(wm[g]);
            CK(dnnl_memory_create(&wm[g], &wmd, eng, wb[g]));
        }
        best = 1e9;
        for (int r = 0; r < reps + 1; r++) {
            double t0 = now();
            for (int g = 0; g < NG; g++) {
                dnnl_exec_arg_t a[3] = {
                    {DNNL_ARG_SRC, sm[g]}, {DNNL_ARG_WEIGHTS, wm[g]}, {DNNL_ARG_DST, dm[g]}};
                CK(dnnl_primitive_execute(prim[g], st, 3, a));
            }
            dnnl_stream_wait(st);
            double t = now() - t0;
            if (r && t < best) best = t;
        }
        printf("M=%4d onednn matmul bf16 plain   %7.1f GFLOP/s\n", M, flop / best * 1e-9);
        fflush(stdout);
    }
    return 0;
}
