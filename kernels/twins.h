/* twins.h - CPU twins of the CUDA kernels (kernels.h) and of the bf16 GEMM.
 *
 * Each eqt_* function takes the arguments of its eqk_* kernel minus the
 * stream, on host memory, and computes the same function with the same
 * rounding points: bf16 inputs widened to fp32, fp32 arithmetic, one
 * round-to-nearest-even to bf16 where the kernel stores bf16. Sums run in
 * index order (the GPU's order differs; tests compare with a tolerance).
 * They are plain C11, single-threaded except eqt_gemm_bf16 (OpenMP), and
 * are what the GPU tests compare the kernels against and what the "twin"
 * device runs the CUDA backend's plan on (engine/gpu_backend.c).
 */
#ifndef EQ_TWINS_H
#define EQ_TWINS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint16_t eqk_bf16;

float eqt_bf16_to_f32(eqk_bf16 v);
eqk_bf16 eqt_f32_to_bf16(float f); /* round to nearest even; NaN stays NaN */

void eqt_embed_gather(const eqk_bf16 *table, const int32_t *ids, int n_tokens, int hidden,
                      float *x);
void eqt_add_rmsnorm(float *x, const eqk_bf16 *y, const float *w, int n_tokens, int hidden,
                     float eps, eqk_bf16 *out);
void eqt_qk_norm_rope(eqk_bf16 *qkv, const int32_t *pos, int n_tokens, int n_heads, int n_kv_heads,
                      int head_dim, const float *q_w, const float *k_w, float eps,
                      const float *rope_cs);
/* cu_seqlens is a host array here; max_seqlen is accepted and unused. */
void eqt_attention(const eqk_bf16 *qkv, const int32_t *cu_seqlens, int n_seqs, int max_seqlen,
                   int n_heads, int n_kv_heads, int head_dim, eqk_bf16 *out);
void eqt_swiglu(const eqk_bf16 *gu, int n_tokens, int inter, eqk_bf16 *out);
void eqt_pool_normalize(const float *x, const eqk_bf16 *y, const float *w,
                        const int32_t *cu_seqlens, const int32_t *dims, int n_seqs, int hidden,
                        float eps, float *out, int32_t *bad);

/* The work list of eqk_attention (kernels.h), built on the host: one item
 * per (sequence, 64-row query block), stored as the pair (sequence, query
 * block) in work[2i], work[2i+1], longest first (query block index
 * descending: those blocks walk the most key tiles, so they start first).
 * cu_seqlens: host offsets of n_seqs sequences, each of length >= 1.
 * work: room for 2 * cu_seqlens[n_seqs] values (a block covers at least one
 * token, so there are at most that many items). Returns the item count. No
 * allocation. */
int eqk_attention_work(const int32_t *cu_seqlens, int n_seqs, int32_t *work);

/* The GEMM the CUDA backend runs through cuBLASLt: a (m, k) activations
 * times w (n, k) weights transposed, fp32 accumulation, bf16 out (m, n):
 *   out[i][j] = bf16( sum_l float(a[i][l]) * float(w[j][l]) ). */
void eqt_gemm_bf16(const eqk_bf16 *a, const eqk_bf16 *w, int m, int n, int k, eqk_bf16 *out);

/* The RoPE table the backend uploads: rope_cs[(p*half + i)*2 + {0,1}] =
 * {cos, sin}(fp32(p) * inv_freq_i), inv_freq_i = fp32(1/theta^(2i/hd)),
 * the angle rounded to fp32 as transformers computes it, cos/sin in double
 * then rounded (the CPU backend's table). */
void eqt_rope_table(float *rope_cs, int max_pos, int head_dim, float theta);

#ifdef __cplusplus
}
#endif

#endif
