/* emu_runtime_test.c - the emu device's host CUDA runtime and fake cuBLASLt
 * (kernels/emu/runtime.cpp), compiled as C against the shim headers exactly
 * as engine/gpu_backend.c is for the emu device.
 *
 *   - the reference GEMM against a float64 computation written here from
 *     cuBLAS's column-major definition, for each transa/transb pair, with
 *     leading dimensions above the row counts (the padding must stay
 *     untouched), bf16 and fp32 outputs, alpha and beta (C apart from D);
 *   - stream work is deferred: a GEMM and an async copy land only at the
 *     synchronization;
 *   - every refusal is a failure with a message naming the cause: an
 *     epilogue, an attribute the reference does not model, a row-major
 *     order, a batch, another compute type, a leading dimension below the
 *     rows, disagreeing shapes, an algo found for another problem, a
 *     workspace smaller than the algo's, an operand outside every device
 *     allocation;
 *   - the runtime: copies whose device side is not device memory are
 *     refused, cudaFree of an unknown pointer too, free memory falls by
 *     what is allocated.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "../common/check.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
}

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float from_bf16(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The refusal's message must name want. */
static void refused(cublasStatus_t s, const char *want, const char *what)
{
    const char *msg = cublasLtGetStatusString(s);
    CHECK(s != CUBLAS_STATUS_SUCCESS, "%s: accepted", what);
    CHECK(s == CUBLAS_STATUS_SUCCESS || strstr(msg, want), "%s: message '%s' lacks '%s'", what, msg,
          want);
}

/* One GEMM: D (m x n) = alpha op(A) op(B) + beta C with the given
 * transposes, lds = rows + pad, D type dt. Returns 0 when it ran. */
static void gemm_case(cublasLtHandle_t h, int ta, int tb, cudaDataType_t dt, float alpha,
                      float beta)
{
    const int m = 13, n = 7, k = 24, pad = 3;
    cudaStream_t st;
    cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
    /* stored shapes (column-major) */
    const int ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m;
    const int br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
    const int lda = ar + pad, ldb = br + pad, ldc = m + pad;
    const size_t es = dt == CUDA_R_32F ? 4 : 2;
    uint16_t *ha = malloc((size_t)lda * ac * 2), *hb = malloc((size_t)ldb * bc * 2);
    unsigned char *hc = malloc((size_t)ldc * n * es), *hd = malloc((size_t)ldc * n * es);
    for (int i = 0; i < lda * ac; i++)
        ha[i] = to_bf16(frand());
    for (int i = 0; i < ldb * bc; i++)
        hb[i] = to_bf16(frand());
    for (int i = 0; i < ldc * n; i++) {
        float v = frand();
        if (dt == CUDA_R_32F)
            memcpy(hc + (size_t)i * 4, &v, 4);
        else {
            uint16_t b = to_bf16(v);
            memcpy(hc + (size_t)i * 2, &b, 2);
        }
    }
    memset(hd, 0x7f, (size_t)ldc * n * es); /* poison, padding included */
    void *da, *db, *dc, *dd, *ws;
    cudaMalloc(&da, (size_t)lda * ac * 2);
    cudaMalloc(&db, (size_t)ldb * bc * 2);
    cudaMalloc(&dc, (size_t)ldc * n * es);
    cudaMalloc(&dd, (size_t)ldc * n * es);
    cudaMalloc(&ws, 1 << 20);
    cudaMemcpy(da, ha, (size_t)lda * ac * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(db, hb, (size_t)ldb * bc * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dc, hc, (size_t)ldc * n * es, cudaMemcpyHostToDevice);
    cudaMemcpy(dd, hd, (size_t)ldc * n * es, cudaMemcpyHostToDevice);

    cublasLtMatmulDesc_t d;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulDescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, (uint64_t)ar, (uint64_t)ac, lda);
    cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, (uint64_t)br, (uint64_t)bc, ldb);
    cublasLtMatrixLayoutCreate(&lc, dt, (uint64_t)m, (uint64_t)n, ldc);
    cublasLtMatmulPreference_t pref;
    size_t wsmax = 1 << 20;
    cublasLtMatmulPreferenceCreate(&pref);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsmax,
                                         sizeof wsmax);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(h, d, la, lb, lc, lc, pref, 1, &res, &found);
    CHECK(s == CUBLAS_STATUS_SUCCESS && found == 1, "heuristic: %s", cublasLtGetStatusString(s));
    s = cublasLtMatmul(h, d, &alpha, da, la, db, lb, &beta, dc, lc, dd, lc, &res.algo, ws,
                       res.workspaceSize, st);
    CHECK(s == CUBLAS_STATUS_SUCCESS, "matmul ta %d tb %d: %s", ta, tb, cublasLtGetStatusString(s));
    /* deferred: D is still the poison until the stream is synchronized */
    CHECK(!memcmp(dd, hd, (size_t)ldc * n * es), "ta %d tb %d: D written before the sync", ta, tb);
    CHECK(cudaStreamSynchronize(st) == cudaSuccess, "sync");
    cudaMemcpy(hd, dd, (size_t)ldc * n * es, cudaMemcpyDeviceToHost);
    double worst = 0;
    int pad_ok = 1;
    for (int j = 0; j < n; j++) {
        for (int i = 0; i < ldc; i++) {
            const size_t o = (size_t)i + (size_t)j * ldc;
            float got;
            if (dt == CUDA_R_32F)
                memcpy(&got, hd + o * 4, 4);
            else {
                uint16_t b;
                memcpy(&b, hd + o * 2, 2);
                got = from_bf16(b);
            }
            if (i >= m) { /* padding: untouched poison */
                unsigned char p[4];
                memset(p, 0x7f, 4);
                if (memcmp(hd + o * es, p, es)) pad_ok = 0;
                continue;
            }
            double want = 0, mag = 0;
            for (int q = 0; q < k; q++) {
                const double a = from_bf16(ta == CUBLAS_OP_N ? ha[i + q * lda] : ha[q + i * lda]);
                const double b = from_bf16(tb == CUBLAS_OP_N ? hb[q + j * ldb] : hb[j + q * ldb]);
                want += a * b;
                mag += fabs(a * b);
            }
            float cv;
            if (dt == CUDA_R_32F)
                memcpy(&cv, hc + o * 4, 4);
            else {
                uint16_t b;
                memcpy(&b, hc + o * 2, 2);
                cv = from_bf16(b);
            }
            want = alpha * want + beta * cv;
            mag = fabs(alpha) * mag + fabs(beta * cv);
            const double e = fabs(got - want) / (mag > 1e-6 ? mag : 1e-6);
            if (e > worst) worst = e;
        }
    }
    /* fp32 sums: ~k ulp of the magnitude; a bf16 D adds half a bf16 ulp */
    const double tol = dt == CUDA_R_32F ? 1e-5 : 1.0 / 256;
    CHECK(worst <= tol, "ta %d tb %d D %s: worst relative error %.3g > %.3g", ta, tb,
          dt == CUDA_R_32F ? "fp32" : "bf16", worst, tol);
    CHECK(pad_ok, "ta %d tb %d: the padding rows of D (ld > m) were written", ta, tb);
    printf("reference GEMM %c%c, D %s, alpha %.1f beta %.1f: worst relative error %.2e\n",
           ta ? 'T' : 'N', tb ? 'T' : 'N', dt == CUDA_R_32F ? "fp32" : "bf16", alpha, beta, worst);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(d);
    cudaFree(da);
    cudaFree(db);
    cudaFree(dc);
    cudaFree(dd);
    cudaFree(ws);
    cudaStreamDestroy(st);
    free(ha);
    free(hb);
    free(hc);
    free(hd);
}

static void refusals(cublasLtHandle_t h)
{
    const int m = 16, n = 8, k = 32;
    void *da, *db, *dd, *ws;
    cudaMalloc(&da, (size_t)m * k * 2);
    cudaMalloc(&db, (size_t)k * n * 2);
    cudaMalloc(&dd, (size_t)m * n * 2);
    cudaMalloc(&ws, 4096);
    cublasLtMatmulDesc_t d;
    cublasLtMatrixLayout_t la, lb, ld_, other;
    cublasLtMatmulDescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, m, k, m);
    cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, k, n, k);
    cublasLtMatrixLayoutCreate(&ld_, CUDA_R_16BF, m, n, m);
    cublasLtMatrixLayoutCreate(&other, CUDA_R_16BF, m, n, m + 8);

    uint32_t epi = 2; /* CUBLASLT_EPILOGUE_RELU */
    refused(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi),
            "EPILOGUE", "a ReLU epilogue");
    int64_t bias = 0;
    refused(
        cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias),
        "not modelled", "the bias pointer attribute");
    int32_t tc = CUBLAS_OP_C;
    refused(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSA, &tc, sizeof tc),
            "TRANSA", "CUBLAS_OP_C");
    int64_t wide = CUBLAS_OP_T;
    refused(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSB, &wide, sizeof wide),
            "TRANSB", "TRANSB with an 8-byte value");
    int32_t row = CUBLASLT_ORDER_ROW, batch = 4;
    refused(cublasLtMatrixLayoutSetAttribute(la, CUBLASLT_MATRIX_LAYOUT_ORDER, &row, sizeof row),
            "ORDER", "a row-major layout");
    refused(cublasLtMatrixLayoutSetAttribute(la, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch,
                                             sizeof batch),
            "BATCH_COUNT", "a batched layout");
    cublasLtMatrixLayout_t bad;
    refused(cublasLtMatrixLayoutCreate(&bad, CUDA_R_16BF, m, n, m - 1), "leading dimension",
            "ld < rows");

    const float one = 1, zero = 0;
    cudaStream_t st;
    cudaStreamCreate(&st);
    /* shapes: B's rows must be A's columns */
    refused(cublasLtMatmul(h, d, &one, da, la, da, la, &zero, dd, ld_, dd, ld_, NULL, NULL, 0, st),
            "shapes disagree", "A times A (16x32 by 16x32)");
    /* an algo found for another problem (D with another ld) */
    cublasLtMatmulPreference_t pref;
    size_t wsmax = 4096;
    cublasLtMatmulPreferenceCreate(&pref);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsmax,
                                         sizeof wsmax);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    CHECK(cublasLtMatmulAlgoGetHeuristic(h, d, la, lb, other, other, pref, 1, &res, &found) ==
                  CUBLAS_STATUS_SUCCESS &&
              found == 1,
          "heuristic for the other layout");
    refused(cublasLtMatmul(h, d, &one, da, la, db, lb, &zero, dd, ld_, dd, ld_, &res.algo, ws, 4096,
                           st),
            "another problem", "an algo of another problem");
    CHECK(cublasLtMatmulAlgoGetHeuristic(h, d, la, lb, ld_, ld_, pref, 1, &res, &found) ==
              CUBLAS_STATUS_SUCCESS,
          "heuristic");
    CHECK(res.workspaceSize == 4096, "workspace asked %zu, expected the preference's 4096",
          res.workspaceSize);
    refused(
        cublasLtMatmul(h, d, &one, da, la, db, lb, &zero, dd, ld_, dd, ld_, &res.algo, ws, 16, st),
        "workspace of 16 bytes", "a workspace below the algo's");
    /* an operand in host memory */
    void *host = malloc((size_t)m * k * 2);
    refused(cublasLtMatmul(h, d, &one, host, la, db, lb, &zero, dd, ld_, dd, ld_, &res.algo, ws,
                           4096, st),
            "not inside one device allocation", "A in host memory");
    /* an operand that runs past its allocation: B read as 32 x 16 */
    cublasLtMatrixLayout_t lb_big;
    cublasLtMatrixLayoutCreate(&lb_big, CUDA_R_16BF, k, 2 * n, k);
    cublasLtMatrixLayout_t ld_big;
    cublasLtMatrixLayoutCreate(&ld_big, CUDA_R_16BF, m, 2 * n, m);
    refused(cublasLtMatmul(h, d, &one, da, la, db, lb_big, &zero, dd, ld_big, dd, ld_big, NULL,
                           NULL, 0, st),
            "not inside one device allocation", "B past its allocation");
    /* a compute type the reference does not model */
    cublasLtMatmulDesc_t d16;
    cublasLtMatmulDescCreate(&d16, CUBLAS_COMPUTE_32F_FAST_TF32, CUDA_R_32F);
    refused(
        cublasLtMatmul(h, d16, &one, da, la, db, lb, &zero, dd, ld_, dd, ld_, NULL, NULL, 0, st),
        "compute type", "CUBLAS_COMPUTE_32F_FAST_TF32");
    /* the same call, correct, goes through */
    CHECK(cublasLtMatmul(h, d, &one, da, la, db, lb, &zero, dd, ld_, dd, ld_, &res.algo, ws, 4096,
                         st) == CUBLAS_STATUS_SUCCESS,
          "the correct call was refused: %s", cublasLtGetStatusString(CUBLAS_STATUS_INVALID_VALUE));
    CHECK(cudaStreamSynchronize(st) == cudaSuccess, "sync");
    printf("refusals: epilogue, unmodelled attribute, OP_C, wrong attribute size, row order, "
           "batch, ld < rows, shapes, foreign algo, small workspace, host operand, overrun, "
           "compute type: each refused with its message\n");

    /* the runtime's copy checks */
    CHECK(cudaMemcpy(host, da, 64, cudaMemcpyHostToDevice) == cudaErrorInvalidValue,
          "a host-to-device copy into host memory was accepted");
    CHECK(cudaMemcpyAsync(da, host, (size_t)m * k * 2 + 2, cudaMemcpyHostToDevice, st) ==
              cudaErrorInvalidValue,
          "a copy past the end of a device allocation was accepted");
    CHECK(cudaFree(host) == cudaErrorInvalidValue, "cudaFree of host memory was accepted");
    /* deferred copies */
    uint16_t src[8] = {1, 2, 3, 4, 5, 6, 7, 8}, back[8] = {0};
    CHECK(cudaMemcpyAsync(dd, src, sizeof src, cudaMemcpyHostToDevice, st) == cudaSuccess, "h2d");
    CHECK(cudaMemcpyAsync(back, dd, sizeof back, cudaMemcpyDeviceToHost, st) == cudaSuccess, "d2h");
    CHECK(back[0] == 0, "an async copy landed before the sync");
    CHECK(cudaStreamSynchronize(st) == cudaSuccess,
          "a refused copy made the stream fail (only kernel faults are sticky)");
    CHECK(!memcmp(src, back, sizeof src), "the async copies did not land at the sync");

    free(host);
    cudaStreamDestroy(st);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatmulDescDestroy(d);
    cublasLtMatmulDescDestroy(d16);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lb_big);
    cublasLtMatrixLayoutDestroy(ld_);
    cublasLtMatrixLayoutDestroy(ld_big);
    cublasLtMatrixLayoutDestroy(other);
    cudaFree(da);
    cudaFree(db);
    cudaFree(dd);
    cudaFree(ws);
}

int main(void)
{
    size_t f0, f1, total;
    cudaMemGetInfo(&f0, &total);
    void *p;
    CHECK(cudaMalloc(&p, 1000000) == cudaSuccess, "cudaMalloc");
    cudaMemGetInfo(&f1, &total);
    CHECK(f0 - f1 == 1000000, "free memory fell by %zu, expected 1000000", f0 - f1);
    cudaFree(p);

    cublasLtHandle_t h;
    cublasLtCreate(&h);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            gemm_case(h, ta, tb, CUDA_R_16BF, 1.0f, 0.0f);
    gemm_case(h, CUBLAS_OP_T, CUBLAS_OP_N, CUDA_R_32F, 1.5f, 0.5f);
    gemm_case(h, CUBLAS_OP_N, CUBLAS_OP_T, CUDA_R_16BF, -2.0f, 1.0f);
    refusals(h);
    cublasLtDestroy(h);
    if (failures) {
        fprintf(stderr, "emu_runtime_test: %d failure(s)\n", failures);
        return 1;
    }
    printf("emu_runtime_test: all checks passed\n");
    return 0;
}
