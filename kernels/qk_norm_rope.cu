/* qk_norm_rope.cu - per-head RMSNorm of q and k fused with NeoX RoPE, in
 * place on the fused QKV activation (kernels.h, eqk_qk_norm_rope).
 *
 * Design: a group of G = head_dim/16 lanes per (token, head) - 2, 4, 8 or
 * 16 lanes for head_dim 32, 64, 128, 256; groups are aligned inside a warp,
 * so a warp handles 32/G heads. Lane `sub` of a group holds the 8 values
 * [sub*8, sub*8+8) of the first half and the 8 values half + [sub*8,
 * sub*8+8) of the second half (two 16-byte loads), so every RoPE pair (i,
 * i + half) is in one lane: no shuffles for the rotation. The sum of
 * squares is reduced across the group with log2(G) xor shuffles. Cos/sin
 * for the lane's 8 indices are 64 contiguous bytes of the interleaved table
 * (four 16-byte loads); all heads of a token sit in one block and read the
 * same table row, so it is fetched once per token and hits L1 after that.
 * Weights (q_w or k_w) are 2 x 32 bytes per lane, cache-resident.
 *
 * Block shape: all lanes of a token's q and k heads (L = (n_heads +
 * n_kv_heads) * G), several tokens per block when L is small (up to 256
 * lanes), looping inside the block when L > 512.
 *
 * Memory per token: read + write 2 * (n_heads + n_kv_heads) * head_dim * 2
 * bytes; the v heads are not touched; + one table row (head_dim * 4 bytes)
 * and the position.
 */
#include <cuda_bf16.h>

#include "bf16_vec.cuh"
#include "kernels.h"
#include "launch.cuh"

namespace
{

constexpr int kMaxThreads = 512;

/* qkv viewed as 16-byte chunks (8 bf16); ld_chunks = row length / 8.
 * Tokens [blockIdx.x * tok_per_block, + tok_per_block). */
template <int HD>
__global__ void __launch_bounds__(kMaxThreads)
    k_qk_norm_rope(uint4 *__restrict__ qkv, const int32_t *__restrict__ pos, int n_tokens,
                   int heads, int n_heads, int ld_chunks, int tok_per_block,
                   const float4 *__restrict__ q_w, const float4 *__restrict__ k_w, float eps,
                   const float4 *__restrict__ rope_cs)
{
    constexpr int HALF = HD / 2, G = HALF / 8; /* lanes per head */
    const int lanes_per_tok = heads * G;
    const int total = tok_per_block * lanes_per_tok;
    const int lane = threadIdx.x & 31;
    /* l0 is the same for the whole warp, so every lane of a warp reaches the
     * shuffles together; inactive lanes carry zeros. */
    for (int l0 = threadIdx.x & ~31; l0 < total; l0 += blockDim.x) {
        const int l = l0 + lane;
        const int tl = l / lanes_per_tok;
        const int rem = l - tl * lanes_per_tok;
        const int t = blockIdx.x * tok_per_block + tl;
        const bool act = l < total && t < n_tokens;
        const int hh = rem / G, sub = rem % G; /* head (q heads, then k), lane in group */

        uint4 *p = qkv + (size_t)(act ? t : 0) * ld_chunks + hh * (HD / 8) + sub;
        float a[8], b[8]; /* a: indices sub*8 + k, b: half + sub*8 + k */
        float ss = 0.0f;
        if (act) {
            bf16x8_to_f32(p[0], a);
            bf16x8_to_f32(p[HALF / 8], b);
#pragma unroll
            for (int k = 0; k < 8; k++)
                ss += a[k] * a[k] + b[k] * b[k];
        }
#pragma unroll
        for (int o = G / 2; o > 0; o >>= 1)
            ss += __shfl_xor_sync(0xffffffffu, ss, o);
        if (!act) continue;

        const float r = rsqrtf(ss * (1.0f / HD) + eps);
        const float4 *w4 = hh < n_heads ? q_w : k_w;
        float wa[8], wb[8];
        load_f32x8(w4 + sub * 2, wa);
        load_f32x8(w4 + HALF / 4 + sub * 2, wb);
        /* cos/sin of indices sub*8 .. sub*8+7 at position pos[t] */
        const float4 *cs4 = rope_cs + ((size_t)__ldg(pos + t) * HALF + sub * 8) / 2;
        float cs[16];
        load_f32x8(cs4, cs);
        load_f32x8(cs4 + 2, cs + 8);
        float oa[8], ob[8];
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const float u1 = a[k] * r * wa[k], u2 = b[k] * r * wb[k];
            const float c = cs[2 * k], s = cs[2 * k + 1];
            oa[k] = u1 * c - u2 * s;
            ob[k] = u2 * c + u1 * s;
        }
        p[0] = f32_to_bf16x8(oa);
        p[HALF / 8] = f32_to_bf16x8(ob);
    }
}

template <int HD>
void launch(eqk_bf16 *qkv, const int32_t *pos, int n_tokens, int n_heads, int n_kv_heads,
            const float *q_w, const float *k_w, float eps, const float *rope_cs,
            cudaStream_t stream)
{
    constexpr int G = HD / 16;
    const int heads = n_heads + n_kv_heads;
    const int lanes = heads * G; /* per token */
    int tok_per_block, threads;
    if (lanes <= 256) {
        tok_per_block = 256 / lanes;
        threads = (tok_per_block * lanes + 31) / 32 * 32;
    } else {
        tok_per_block = 1;
        const int iters = (lanes + kMaxThreads - 1) / kMaxThreads;
        threads = ((lanes + iters - 1) / iters + 31) / 32 * 32;
    }
    const unsigned blocks = (unsigned)((n_tokens + tok_per_block - 1) / tok_per_block);
    const int ld_chunks = (heads + n_kv_heads) * HD / 8;
    EQK_LAUNCH((k_qk_norm_rope<HD>), blocks, threads, 0, stream, reinterpret_cast<uint4 *>(qkv),
               pos, n_tokens, heads, n_heads, ld_chunks, tok_per_block,
               reinterpret_cast<const float4 *>(q_w), reinterpret_cast<const float4 *>(k_w), eps,
               reinterpret_cast<const float4 *>(rope_cs));
}

/* 16-byte vector accesses: every pointer must be 16-byte aligned (cudaMalloc
 * gives 256). */
static bool aligned16(const void *p)
{
    return ((uintptr_t)p & 15) == 0;
}

} // namespace

extern "C" cudaError_t eqk_qk_norm_rope(eqk_bf16 *qkv, const int32_t *pos, int n_tokens,
                                        int n_heads, int n_kv_heads, int head_dim, const float *q_w,
                                        const float *k_w, float eps, const float *rope_cs,
                                        cudaStream_t stream)
{
    if (n_tokens <= 0 || n_heads + n_kv_heads <= 0) return cudaSuccess;
    if (!aligned16(qkv) || !aligned16(q_w) || !aligned16(k_w) || !aligned16(rope_cs))
        return cudaErrorInvalidValue;
    switch (head_dim) {
    case 32:
        launch<32>(qkv, pos, n_tokens, n_heads, n_kv_heads, q_w, k_w, eps, rope_cs, stream);
        break;
    case 64:
        launch<64>(qkv, pos, n_tokens, n_heads, n_kv_heads, q_w, k_w, eps, rope_cs, stream);
        break;
    case 128:
        launch<128>(qkv, pos, n_tokens, n_heads, n_kv_heads, q_w, k_w, eps, rope_cs, stream);
        break;
    case 256:
        launch<256>(qkv, pos, n_tokens, n_heads, n_kv_heads, q_w, k_w, eps, rope_cs, stream);
        break;
    default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}
