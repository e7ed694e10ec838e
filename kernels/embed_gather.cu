/* embed_gather.cu - x[t][:] = float(table[ids[t]][:]): the embedding lookup.
 *
 * Design: one warp per token row, 8 rows per 256-thread block. Each lane
 * moves 8 values at a time (one 16-byte bf16 load, two 16-byte fp32
 * stores), striding the row by 32 chunks, so a warp reads 512 contiguous
 * bytes and writes 1 KiB per step. Needs hidden % 8 == 0 and 16-byte aligned
 * pointers (the launcher returns cudaErrorInvalidValue otherwise). Pure data
 * movement: 2*hidden bytes read, 4*hidden written per token (+4 for the id).
 */
#include <cuda_bf16.h>

#include "kernels.h"
#include "launch.cuh"

namespace
{

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / 32;

__global__ void __launch_bounds__(kThreads)
    k_embed_gather(const uint4 *__restrict__ table, const int32_t *__restrict__ ids, int n_tokens,
                   int chunks, float4 *__restrict__ x)
{
    const int lane = threadIdx.x & 31;
    const int t = blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5);
    if (t >= n_tokens) return;
    const uint4 *src = table + (size_t)ids[t] * chunks;
    float4 *dst = x + (size_t)t * chunks * 2;
#pragma unroll 4
    for (int c = lane; c < chunks; c += 32) {
        const uint4 v = __ldg(src + c);
        /* bf16 -> fp32 is exact: the bf16 bits become the top half */
        dst[2 * c] = make_float4(__uint_as_float(v.x << 16), __uint_as_float(v.x & 0xffff0000u),
                                 __uint_as_float(v.y << 16), __uint_as_float(v.y & 0xffff0000u));
        dst[2 * c + 1] =
            make_float4(__uint_as_float(v.z << 16), __uint_as_float(v.z & 0xffff0000u),
                        __uint_as_float(v.w << 16), __uint_as_float(v.w & 0xffff0000u));
    }
}

/* 16-byte vector accesses: every pointer must be 16-byte aligned (cudaMalloc
 * gives 256). */
static bool aligned16(const void *p)
{
    return ((uintptr_t)p & 15) == 0;
}

} // namespace

extern "C" cudaError_t eqk_embed_gather(const eqk_bf16 *table, const int32_t *ids, int n_tokens,
                                        int hidden, float *x, cudaStream_t stream)
{
    if (n_tokens <= 0 || hidden <= 0) return cudaSuccess;
    if (hidden % 8 || !aligned16(table) || !aligned16(x)) return cudaErrorInvalidValue;
    const unsigned blocks = (unsigned)((n_tokens + kRowsPerBlock - 1) / kRowsPerBlock);
    EQK_LAUNCH((k_embed_gather), blocks, kThreads, 0, stream,
               reinterpret_cast<const uint4 *>(table), ids, n_tokens, hidden / 8,
               reinterpret_cast<float4 *>(x));
    return cudaGetLastError();
}
