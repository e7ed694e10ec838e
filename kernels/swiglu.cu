/* swiglu.cu - SwiGLU on the fused gate/up activation (kernels.h,
 * eqk_swiglu): out[t][i] = bf16(silu(g) * u), silu(g) = g / (1 + exp(-g)),
 * g = gu[t][i], u = gu[t][inter + i].
 *
 * Design: element-wise, 8 outputs per thread per step: one 16-byte load of
 * gate, one of up, one 16-byte store (inter % 8 == 0). The (token, chunk)
 * space is flattened (64-bit) and walked grid-stride, so any n_tokens
 * works with a 1-D grid. silu is computed as g * (1 / (1 + exp(-g))): for
 * g < -88 exp overflows to inf and the reciprocal is 0 (the product -0, as
 * the twin's g / inf), never NaN.
 *
 * Memory per token: read 4 * inter bytes, write 2 * inter.
 */
#include <cuda_bf16.h>

#include "bf16_vec.cuh"
#include "kernels.h"
#include "launch.cuh"

namespace
{

constexpr int kThreads = 256;

/* Idx: uint32_t when the chunk count fits (cheaper division), else uint64_t. */
template <typename Idx>
__global__ void __launch_bounds__(kThreads)
    k_swiglu(const uint4 *__restrict__ gu, Idx total, Idx chunks, uint4 *__restrict__ out)
{
    for (Idx c = (Idx)blockIdx.x * kThreads + threadIdx.x; c < total;
         c += (Idx)gridDim.x * kThreads) {
        const Idx t = c / chunks;
        /* gate chunk of c: row t of gu (2 * chunks wide), column c - t*chunks */
        const Idx gi = c + t * chunks;
        float g[8], u[8], o[8];
        bf16x8_to_f32(__ldg(gu + gi), g);
        bf16x8_to_f32(__ldg(gu + gi + chunks), u);
#pragma unroll
        for (int k = 0; k < 8; k++)
            o[k] = g[k] * (1.0f / (1.0f + __expf(-g[k]))) * u[k];
        out[c] = make_uint4(pack_bf16x2(o[0], o[1]), pack_bf16x2(o[2], o[3]),
                            pack_bf16x2(o[4], o[5]), pack_bf16x2(o[6], o[7]));
    }
}

/* 16-byte vector accesses: every pointer must be 16-byte aligned (cudaMalloc
 * gives 256). */
static bool aligned16(const void *p)
{
    return ((uintptr_t)p & 15) == 0;
}

} // namespace

extern "C" cudaError_t eqk_swiglu(const eqk_bf16 *gu, int n_tokens, int inter, eqk_bf16 *out,
                                  cudaStream_t stream)
{
    if (n_tokens <= 0 || inter <= 0) return cudaSuccess;
    if (inter % 8 || !aligned16(gu) || !aligned16(out)) return cudaErrorInvalidValue;
    const unsigned long long chunks = (unsigned long long)(inter / 8);
    const unsigned long long total = (unsigned long long)n_tokens * chunks;
    /* enough blocks to fill any GPU many times over; the loop covers the rest */
    const unsigned long long want = (total + kThreads - 1) / kThreads;
    const unsigned blocks = (unsigned)(want < (1ull << 20) ? want : (1ull << 20));
    const uint4 *g = reinterpret_cast<const uint4 *>(gu);
    uint4 *o = reinterpret_cast<uint4 *>(out);
    /* gi = c + t*chunks < 2 * total must fit the index type too */
    if (2 * total + (unsigned long long)blocks * kThreads < (1ull << 32))
        EQK_LAUNCH((k_swiglu<uint32_t>), blocks, kThreads, 0, stream, g, (uint32_t)total,
                   (uint32_t)chunks, o);
    else
        EQK_LAUNCH((k_swiglu<unsigned long long>), blocks, kThreads, 0, stream, g, total, chunks,
                   o);
    return cudaGetLastError();
}
