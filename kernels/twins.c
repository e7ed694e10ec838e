/* twins.c - CPU twins of the CUDA kernels (see twins.h, kernels.h).
 *
 * Written plainly, to the contracts in kernels.h: bf16 inputs widened to
 * fp32, fp32 arithmetic, sums in index order, one round-to-nearest-even to
 * bf16 where the kernel stores bf16. Nothing here is tuned except
 * eqt_gemm_bf16 (blocked, OpenMP over rows; each output element is still one
 * fp32 sum in index order, so the result does not depend on the thread
 * count).
 */
#include "twins.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Allocation failure in a twin is a test-harness invariant: log and abort. */
static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "%s:%d: twins: out of memory (%zu bytes)\n", __FILE__, __LINE__, n);
        abort();
    }
    return p;
}

float eqt_bf16_to_f32(eqk_bf16 v)
{
    uint32_t u = (uint32_t)v << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

eqk_bf16 eqt_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it a (quiet) NaN */
        return (eqk_bf16)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u); /* round half to even */
    return (eqk_bf16)(u >> 16);
}

void eqt_embed_gather(const eqk_bf16 *table, const int32_t *ids, int n_tokens, int hidden, float *x)
{
    for (int t = 0; t < n_tokens; t++) {
        const eqk_bf16 *row = table + (size_t)ids[t] * hidden;
        float *xr = x + (size_t)t * hidden;
        for (int j = 0; j < hidden; j++)
            xr[j] = eqt_bf16_to_f32(row[j]);
    }
}

void eqt_add_rmsnorm(float *x, const eqk_bf16 *y, const float *w, int n_tokens, int hidden,
                     float eps, eqk_bf16 *out)
{
    for (int t = 0; t < n_tokens; t++) {
        float *xr = x + (size_t)t * hidden;
        eqk_bf16 *o = out + (size_t)t * hidden;
        if (y) {
            const eqk_bf16 *yr = y + (size_t)t * hidden;
            for (int j = 0; j < hidden; j++)
                xr[j] += eqt_bf16_to_f32(yr[j]);
        }
        float ss = 0.0f;
        for (int j = 0; j < hidden; j++)
            ss += xr[j] * xr[j];
        const float r = 1.0f / sqrtf(ss / (float)hidden + eps);
        for (int j = 0; j < hidden; j++)
            o[j] = eqt_f32_to_bf16(xr[j] * r * w[j]);
    }
}

/* One head of hd values at v (bf16, in place): RMSNorm with weights w, then
 * NeoX RoPE with the (half, 2) cos/sin row cs. u: hd floats of scratch. */
static void norm_rope_head(eqk_bf16 *v, int hd, const float *w, float eps, const float *cs,
                           float *u)
{
    const int half = hd / 2;
    float ss = 0.0f;
    for (int i = 0; i < hd; i++) {
        u[i] = eqt_bf16_to_f32(v[i]);
        ss += u[i] * u[i];
    }
    const float r = 1.0f / sqrtf(ss / (float)hd + eps);
    for (int i = 0; i < hd; i++)
        u[i] = u[i] * r * w[i];
    for (int i = 0; i < half; i++) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        v[i] = eqt_f32_to_bf16(u[i] * c - u[i + half] * s);
        v[i + half] = eqt_f32_to_bf16(u[i + half] * c + u[i] * s);
    }
}

void eqt_qk_norm_rope(eqk_bf16 *qkv, const int32_t *pos, int n_tokens, int n_heads, int n_kv_heads,
                      int head_dim, const float *q_w, const float *k_w, float eps,
                      const float *rope_cs)
{
    const int hd = head_dim, half = hd / 2;
    const size_t ld = (size_t)(n_heads + 2 * n_kv_heads) * hd;
    float *u = xmalloc((size_t)hd * sizeof *u);
    for (int t = 0; t < n_tokens; t++) {
        eqk_bf16 *row = qkv + (size_t)t * ld;
        const float *cs = rope_cs + (size_t)pos[t] * half * 2;
        for (int h = 0; h < n_heads; h++)
            norm_rope_head(row + (size_t)h * hd, hd, q_w, eps, cs, u);
        for (int h = 0; h < n_kv_heads; h++)
            norm_rope_head(row + (size_t)(n_heads + h) * hd, hd, k_w, eps, cs, u);
    }
    free(u);
}

/* dot(q, k) over hd values, summed in index order. */
static float dot_f32(const float *q, const float *k, int hd)
{
    float dot = 0.0f;
    for (int d = 0; d < hd; d++)
        dot += q[d] * k[d];
    return dot;
}

void eqt_attention(const eqk_bf16 *qkv, const int32_t *cu_seqlens, int n_seqs, int max_seqlen,
                   int n_heads, int n_kv_heads, int head_dim, eqk_bf16 *out)
{
    (void)max_seqlen;
    const int hd = head_dim;
    const size_t ld = (size_t)(n_heads + 2 * n_kv_heads) * hd;
    const size_t out_ld = (size_t)n_heads * hd;
    const int group = n_heads / n_kv_heads;
    const float scale = 1.0f / sqrtf((float)hd);

    int longest = 1;
    for (int s = 0; s < n_seqs; s++)
        if (cu_seqlens[s + 1] - cu_seqlens[s] > longest)
            longest = cu_seqlens[s + 1] - cu_seqlens[s];
    float *sc = xmalloc((size_t)longest * sizeof *sc);      /* scores of one query */
    float *q = xmalloc((size_t)hd * sizeof *q);             /* the query, widened  */
    float *acc = xmalloc((size_t)hd * sizeof *acc);         /* sum_j p_j v_j       */
    float *kf = xmalloc((size_t)longest * hd * sizeof *kf); /* keys of one kv head */
    float *vf = xmalloc((size_t)longest * hd * sizeof *vf); /* values of one kv head */

    for (int s = 0; s < n_seqs; s++) {
        const int start = cu_seqlens[s], len = cu_seqlens[s + 1] - start;
        for (int h = 0; h < n_heads; h++) {
            const int g = h / group;
            const size_t qcol = (size_t)h * hd;
            const size_t kcol = (size_t)(n_heads + g) * hd;
            const size_t vcol = (size_t)(n_heads + n_kv_heads + g) * hd;
            if (h % group == 0) /* widen kv head g's keys and values once */
                for (int j = 0; j < len; j++)
                    for (int d = 0; d < hd; d++) {
                        const eqk_bf16 *row = qkv + (size_t)(start + j) * ld;
                        kf[(size_t)j * hd + d] = eqt_bf16_to_f32(row[kcol + d]);
                        vf[(size_t)j * hd + d] = eqt_bf16_to_f32(row[vcol + d]);
                    }
            for (int i = 0; i < len; i++) {
                const eqk_bf16 *qr = qkv + (size_t)(start + i) * ld + qcol;
                for (int d = 0; d < hd; d++)
                    q[d] = eqt_bf16_to_f32(qr[d]);
                /* scores of keys 0..i (causal), then softmax, max subtracted */
                float mx = -INFINITY;
                for (int j = 0; j <= i; j++) {
                    sc[j] = dot_f32(q, kf + (size_t)j * hd, hd) * scale;
                    if (sc[j] > mx) mx = sc[j];
                }
                float sum = 0.0f;
                for (int j = 0; j <= i; j++) {
                    sc[j] = expf(sc[j] - mx);
                    sum += sc[j];
                }
                for (int d = 0; d < hd; d++)
                    acc[d] = 0.0f;
                for (int j = 0; j <= i; j++) {
                    const float p = sc[j], *vj = vf + (size_t)j * hd;
                    for (int d = 0; d < hd; d++)
                        acc[d] += p * vj[d];
                }
                eqk_bf16 *o = out + (size_t)(start + i) * out_ld + qcol;
                for (int d = 0; d < hd; d++)
                    o[d] = eqt_f32_to_bf16(acc[d] / sum);
            }
        }
    }
    free(vf);
    free(kf);
    free(acc);
    free(q);
    free(sc);
}

void eqt_swiglu(const eqk_bf16 *gu, int n_tokens, int inter, eqk_bf16 *out)
{
    for (int t = 0; t < n_tokens; t++) {
        const eqk_bf16 *gr = gu + (size_t)t * 2 * inter, *ur = gr + inter;
        eqk_bf16 *o = out + (size_t)t * inter;
        for (int i = 0; i < inter; i++) {
            const float g = eqt_bf16_to_f32(gr[i]), u = eqt_bf16_to_f32(ur[i]);
            o[i] = eqt_f32_to_bf16(g / (1.0f + expf(-g)) * u);
        }
    }
}

void eqt_pool_normalize(const float *x, const eqk_bf16 *y, const float *w,
                        const int32_t *cu_seqlens, const int32_t *dims, int n_seqs, int hidden,
                        float eps, float *out, int32_t *bad)
{
    float *h = xmalloc((size_t)hidden * sizeof *h);
    for (int s = 0; s < n_seqs; s++) {
        const size_t r = (size_t)cu_seqlens[s + 1] - 1;
        const int d = dims[s] < hidden ? dims[s] : hidden; /* d < 1: norm 0, bad */
        float ss = 0.0f;
        for (int j = 0; j < hidden; j++) {
            h[j] = x[r * hidden + j] + (y ? eqt_bf16_to_f32(y[r * hidden + j]) : 0.0f);
            ss += h[j] * h[j];
        }
        const float rn = 1.0f / sqrtf(ss / (float)hidden + eps);
        int nonfinite = 0;
        float ss2 = 0.0f;
        for (int j = 0; j < hidden; j++) {
            h[j] = h[j] * rn * w[j];
            if (j < d) {
                nonfinite |= !isfinite(h[j]);
                ss2 += h[j] * h[j];
            }
        }
        const float norm = sqrtf(ss2);
        bad[s] = nonfinite || !isfinite(norm) || norm == 0.0f;
        float *o = out + (size_t)s * hidden;
        for (int j = 0; j < hidden; j++)
            o[j] = j < d ? h[j] / norm : 0.0f;
    }
    free(h);
}

int eqk_attention_work(const int32_t *cu_seqlens, int n_seqs, int32_t *work)
{
    int max_blocks = 0;
    for (int s = 0; s < n_seqs; s++) {
        const int nb = (cu_seqlens[s + 1] - cu_seqlens[s] + 63) / 64;
        if (nb > max_blocks) max_blocks = nb;
    }
    /* query block mb of every sequence that has one, mb from the last down:
     * O(n_seqs * max_blocks), a few hundred thousand steps at most */
    int n = 0;
    for (int mb = max_blocks - 1; mb >= 0; mb--)
        for (int s = 0; s < n_seqs; s++)
            if (mb * 64 < cu_seqlens[s + 1] - cu_seqlens[s]) {
                work[2 * n] = s;
                work[2 * n + 1] = mb;
                n++;
            }
    return n;
}

/* Rows of a handled together, and output columns per block: the block's
 * slice of w^T (GEMM_NB x k fp32) is reused by GEMM_MB rows, and the
 * accumulators (GEMM_MB x GEMM_NB) stay in L1. */
#define GEMM_MB 4
#define GEMM_NB 256

void eqt_gemm_bf16(const eqk_bf16 *a, const eqk_bf16 *w, int m, int n, int k, eqk_bf16 *out)
{
    if (m <= 0 || n <= 0) return;
    /* wt (k, n) = float(w)^T: the inner loop then runs over contiguous
     * output columns (vectorizable) while each column's sum stays a single
     * fp32 accumulation in index order l = 0..k-1. */
    float *wt = xmalloc((size_t)k * n * sizeof *wt);
#pragma omp parallel for schedule(static)
    for (int l = 0; l < k; l++)
        for (int j = 0; j < n; j++)
            wt[(size_t)l * n + j] = eqt_bf16_to_f32(w[(size_t)j * k + l]);

    const int row_blocks = (m + GEMM_MB - 1) / GEMM_MB;
#pragma omp parallel
    {
        float *ar = xmalloc((size_t)GEMM_MB * (k ? k : 1) * sizeof *ar);
        float acc[GEMM_MB][GEMM_NB];
#pragma omp for schedule(dynamic, 1)
        for (int rb = 0; rb < row_blocks; rb++) {
            const int i0 = rb * GEMM_MB, mb = m - i0 < GEMM_MB ? m - i0 : GEMM_MB;
            for (int r = 0; r < mb; r++)
                for (int l = 0; l < k; l++)
                    ar[(size_t)r * k + l] = eqt_bf16_to_f32(a[(size_t)(i0 + r) * k + l]);
            for (int j0 = 0; j0 < n; j0 += GEMM_NB) {
                const int nb = n - j0 < GEMM_NB ? n - j0 : GEMM_NB;
                for (int r = 0; r < mb; r++)
                    for (int j = 0; j < nb; j++)
                        acc[r][j] = 0.0f;
                for (int l = 0; l < k; l++) {
                    const float *wl = wt + (size_t)l * n + j0;
                    for (int r = 0; r < mb; r++) {
                        const float av = ar[(size_t)r * k + l];
                        float *ac = acc[r];
                        for (int j = 0; j < nb; j++)
                            ac[j] += av * wl[j];
                    }
                }
                for (int r = 0; r < mb; r++)
                    for (int j = 0; j < nb; j++)
                        out[(size_t)(i0 + r) * n + j0 + j] = eqt_f32_to_bf16(acc[r][j]);
            }
        }
        free(ar);
    }
    free(wt);
}

void eqt_rope_table(float *rope_cs, int max_pos, int head_dim, float theta)
{
    const int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        const float inv_freq = (float)(1.0 / pow((double)theta, (double)(2 * i) / head_dim));
        for (int p = 0; p < max_pos; p++) {
            const float angle = (float)p * inv_freq;
            rope_cs[((size_t)p * half + i) * 2] = (float)cos((double)angle);
            rope_cs[((size_t)p * half + i) * 2 + 1] = (float)sin((double)angle);
        }
    }
}
