/* kernels.h - the CUDA kernels of the forward pass, one op per .cu file, each
 * with a host launcher (stream last) callable from C.
 *
 * Types: bf16 values cross this interface as raw uint16_t bit patterns
 * (eqk_bf16, the top 16 bits of an IEEE float32, round-to-nearest-even when
 * produced); fp32 as float; indices as int32_t. Every pointer is a device
 * pointer unless stated. Row-major everywhere.
 *
 * Each launcher returns the cudaError_t of the launch (cudaGetLastError()
 * right after it); it never synchronizes. Launchers with nothing to do
 * (n == 0) return cudaSuccess without launching.
 *
 * Every op has a CPU twin in twins.h with the same arguments minus the
 * stream, computing the same function with the same rounding points; the GPU
 * tests (tests/kernels/) compare each kernel with its twin.
 */
#ifndef EQ_KERNELS_H
#define EQ_KERNELS_H

#include <stdint.h>

#include <cuda_runtime_api.h>

/* On the kernel emulator (EQK_EMU; kernels/emu/) the launchers carry an
 * eqk_emu_ prefix, so that one binary can hold both the CUDA kernels and
 * their emulated build (the engine's cuda and emu devices). */
#ifdef EQK_EMU
#define eqk_init           eqk_emu_init
#define eqk_embed_gather   eqk_emu_embed_gather
#define eqk_add_rmsnorm    eqk_emu_add_rmsnorm
#define eqk_qk_norm_rope   eqk_emu_qk_norm_rope
#define eqk_attention      eqk_emu_attention
#define eqk_swiglu         eqk_emu_swiglu
#define eqk_pool_normalize eqk_emu_pool_normalize
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef uint16_t eqk_bf16;

/* Once per device (after cudaSetDevice), before any launch: sets the
 * per-function attributes the kernels need (attention's dynamic shared
 * memory above 48 KB), so that launches do not set them again. */
cudaError_t eqk_init(void);

/* x[t][j] = float(table[ids[t]][j])  for t < n_tokens, j < hidden.
 * table: (vocab, hidden) bf16; x: (n_tokens, hidden) fp32. */
cudaError_t eqk_embed_gather(const eqk_bf16 *table, const int32_t *ids, int n_tokens, int hidden,
                             float *x, cudaStream_t stream);

/* Fused residual add + RMSNorm, fp32 statistics. For each row t:
 *   if y != NULL:  x[t][j] += float(y[t][j])          (x updated in place)
 *   r = 1 / sqrt(mean_j(x[t][j]^2) + eps)
 *   out[t][j] = bf16(x[t][j] * r * w[j])
 * x: (n_tokens, hidden) fp32; y: (n_tokens, hidden) bf16 or NULL;
 * w: (hidden) fp32; out: (n_tokens, hidden) bf16. hidden % 8 == 0. */
cudaError_t eqk_add_rmsnorm(float *x, const eqk_bf16 *y, const float *w, int n_tokens, int hidden,
                            float eps, eqk_bf16 *out, cudaStream_t stream);

/* Per-head RMSNorm of q and k fused with NeoX RoPE, in place on the fused
 * QKV activation. qkv: (n_tokens, ld) bf16 with ld = (n_heads + 2*n_kv_heads)
 * * head_dim: q heads at columns [0, n_heads*hd), k heads next, v last (v is
 * not touched). For each token t and each q head (weights q_w) and k head
 * (weights k_w), with v = float(head values), half = hd/2:
 *   r = 1 / sqrt(mean_i(v[i]^2) + eps);  u[i] = v[i] * r * w[i]
 *   p = pos[t];  c = rope_cs[(p*half + i)*2], s = rope_cs[(p*half + i)*2 + 1]
 *   out[i]        = bf16(u[i] * c - u[i+half] * s)      (i < half)
 *   out[i + half] = bf16(u[i+half] * c + u[i] * s)
 * pos: (n_tokens) position of each token in its own sequence (restarting at
 * 0 per packed sequence); rope_cs: (max_pos, half, 2) fp32 cos/sin table;
 * q_w, k_w: (head_dim) fp32. head_dim in {32, 64, 128, 256}. */
cudaError_t eqk_qk_norm_rope(eqk_bf16 *qkv, const int32_t *pos, int n_tokens, int n_heads,
                             int n_kv_heads, int head_dim, const float *q_w, const float *k_w,
                             float eps, const float *rope_cs, cudaStream_t stream);

/* Causal GQA attention over packed variable-length sequences, flash style
 * (O(n) memory, tensor cores, fp32 softmax and accumulation).
 * qkv: as above (already normed and rotated); cu_seqlens: (n_seqs+1) device
 * offsets, cu_seqlens[0] = 0; work: (2 * n_work) device int32, 8-byte
 * aligned (cudaErrorInvalidValue otherwise), the list of
 * (sequence, 64-row query block) items eqk_attention_work (twins.h) builds
 * on the host from the same cu_seqlens, longest first; one block per item
 * and head; out: (n_tokens, n_heads*head_dim) bf16, where for token
 * t = cu_seqlens[s] + i and head h, with g = h / (n_heads/n_kv_heads):
 *   out[t][h*hd + d] = bf16( sum_{j<=i} p_j * v_j[d] ),
 *   p = softmax_j( (q_i . k_j) / sqrt(hd) ) over j in 0..i (fp32),
 * q_i, k_j, v_j the bf16 values of head h (q) and kv head g (k, v) of the
 * sequence's tokens i and j. head_dim in {32, 64, 128}; n_heads a multiple
 * of n_kv_heads; any sequence length from 1 to 32768 and beyond. */
cudaError_t eqk_attention(const eqk_bf16 *qkv, const int32_t *cu_seqlens, const int32_t *work,
                          int n_work, int n_heads, int n_kv_heads, int head_dim, eqk_bf16 *out,
                          cudaStream_t stream);

/* SwiGLU on the fused gate/up activation. gu: (n_tokens, 2*inter) bf16, gate
 * in columns [0, inter), up in [inter, 2*inter). With g, u as float:
 *   out[t][i] = bf16( g / (1 + exp(-g)) * u )
 * out: (n_tokens, inter) bf16. inter % 8 == 0. */
cudaError_t eqk_swiglu(const eqk_bf16 *gu, int n_tokens, int inter, eqk_bf16 *out,
                       cudaStream_t stream);

/* Last-token pooling with the final residual add and final RMSNorm, then
 * Matryoshka truncation and L2 normalization, fp32 out. For sequence s with
 * last row r = cu_seqlens[s+1] - 1 and d = dims[s] (1..hidden):
 *   v[j] = x[r][j] + (y ? float(y[r][j]) : 0)
 *   h[j] = v[j] / sqrt(mean_j(v^2) + eps) * w[j]            (all hidden j)
 *   out[s*hidden + j] = h[j] / sqrt(sum_{j<d} h[j]^2)  for j < d, 0 for j >= d
 *   bad[s] = 1 if any h[j], j < d, or the norm is not finite or the norm is 0,
 *            else 0 (then out's row is unspecified).
 * x: (n_tokens, hidden) fp32; y: bf16 or NULL; w: (hidden) fp32;
 * cu_seqlens, dims: device int32; out: (n_seqs, hidden) fp32; bad: (n_seqs). */
cudaError_t eqk_pool_normalize(const float *x, const eqk_bf16 *y, const float *w,
                               const int32_t *cu_seqlens, const int32_t *dims, int n_seqs,
                               int hidden, float eps, float *out, int32_t *bad,
                               cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
