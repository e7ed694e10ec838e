/* pool_normalize.cu - last-token pooling with the final residual add and
 * final RMSNorm, Matryoshka truncation and L2 normalization (kernels.h,
 * eqk_pool_normalize). fp32 out, one bad flag per sequence.
 *
 * Design: one 256-thread block per sequence (n_seqs is the batch's
 * sequence count: small, and this runs once per forward pass). Threads walk
 * the pooled row in 16-byte chunks of 8 values, three passes: (1) v = x + y
 * and its sum of squares; (2) h = v * r * w and the sum of squares of h[j <
 * d], plus a non-finite check (__syncthreads_or); (3) out = h / norm, zeros
 * after d. Passes 2 and 3 recompute v and h from x, y, w (L1/L2 hits)
 * rather than staging the row in shared memory: any hidden works, with no
 * shared-memory sizing. Block sums: warp shuffles + one shared-memory step.
 *
 * d = dims[s] is clamped to hidden; d < 1 gives a zero norm, so bad = 1
 * (the twin does the same). Needs hidden % 8 == 0 and 16-byte aligned x, y,
 * w, out (cudaErrorInvalidValue otherwise), as every launcher here.
 *
 * Memory per sequence: read 4H (x) + 2H (y) + 4H (w) once from DRAM, write
 * 4H (out).
 */
#include <cuda_bf16.h>

#include "bf16_vec.cuh"
#include "kernels.h"
#include "launch.cuh"

namespace
{

constexpr int kThreads = 256;

/* Sum over the block (kThreads threads), returned to every thread. red[]
 * may be reused right after: the leading barrier orders it. */
__device__ __forceinline__ float block_sum(float v, float *red)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads(); /* earlier readers of red are done */
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < kThreads / 32; i++)
        s += red[i];
    return s;
}

/* v (8 values of chunk c) = x + y of the pooled row */
template <bool HasY>
__device__ __forceinline__ void load_v(const float4 *xr, const uint4 *yr, int c, float *v)
{
    load_f32x8(xr + 2 * c, v);
    if (HasY) {
        float yv[8];
        bf16x8_to_f32(__ldg(yr + c), yv);
#pragma unroll
        for (int k = 0; k < 8; k++)
            v[k] += yv[k];
    }
}

template <bool HasY>
__global__ void __launch_bounds__(kThreads)
    k_pool_normalize(const float4 *__restrict__ x, const uint4 *__restrict__ y,
                     const float4 *__restrict__ w, const int32_t *__restrict__ cu_seqlens,
                     const int32_t *__restrict__ dims, int hidden, float eps,
                     float4 *__restrict__ out, int32_t *__restrict__ bad)
{
    __shared__ float red[kThreads / 32];
    const int s = blockIdx.x;
    const int chunks = hidden / 8;
    const size_t r = (size_t)cu_seqlens[s + 1] - 1;
    const int d = min(dims[s], hidden);
    const float4 *xr = x + r * chunks * 2;
    const uint4 *yr = HasY ? y + r * chunks : nullptr;
    float4 *orow = out + (size_t)s * chunks * 2;

    float ss = 0.0f;
    for (int c = threadIdx.x; c < chunks; c += kThreads) {
        float v[8];
        load_v<HasY>(xr, yr, c, v);
#pragma unroll
        for (int k = 0; k < 8; k++)
            ss += v[k] * v[k];
    }
    const float rn = rsqrtf(block_sum(ss, red) / (float)hidden + eps);

    float ss2 = 0.0f;
    int nonfinite = 0;
    for (int c = threadIdx.x; c < chunks && c * 8 < d; c += kThreads) {
        float v[8], wv[8];
        load_v<HasY>(xr, yr, c, v);
        load_f32x8(w + 2 * c, wv);
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const float h = v[k] * rn * wv[k];
            if (c * 8 + k < d) {
                nonfinite |= !isfinite(h);
                ss2 += h * h;
            }
        }
    }
    const float norm = sqrtf(block_sum(ss2, red));
    const int any_nonfinite = __syncthreads_or(nonfinite);
    if (threadIdx.x == 0) bad[s] = any_nonfinite || !isfinite(norm) || norm == 0.0f;

    const float inv = 1.0f / norm;
    for (int c = threadIdx.x; c < chunks; c += kThreads) {
        float v[8], wv[8], o[8];
        load_v<HasY>(xr, yr, c, v);
        load_f32x8(w + 2 * c, wv);
#pragma unroll
        for (int k = 0; k < 8; k++)
            o[k] = c * 8 + k < d ? v[k] * rn * wv[k] * inv : 0.0f;
        orow[2 * c] = make_float4(o[0], o[1], o[2], o[3]);
        orow[2 * c + 1] = make_float4(o[4], o[5], o[6], o[7]);
    }
}

/* 16-byte vector accesses: every pointer must be 16-byte aligned (cudaMalloc
 * gives 256). */
static bool aligned16(const void *p)
{
    return ((uintptr_t)p & 15) == 0;
}

} // namespace

extern "C" cudaError_t eqk_pool_normalize(const float *x, const eqk_bf16 *y, const float *w,
                                          const int32_t *cu_seqlens, const int32_t *dims,
                                          int n_seqs, int hidden, float eps, float *out,
                                          int32_t *bad, cudaStream_t stream)
{
    if (n_seqs <= 0 || hidden <= 0) return cudaSuccess;
    if (hidden % 8 || !aligned16(x) || !aligned16(y) || !aligned16(w) || !aligned16(out))
        return cudaErrorInvalidValue;
    const float4 *x4 = reinterpret_cast<const float4 *>(x);
    const float4 *w4 = reinterpret_cast<const float4 *>(w);
    float4 *o4 = reinterpret_cast<float4 *>(out);
    if (y)
        EQK_LAUNCH((k_pool_normalize<true>), n_seqs, kThreads, 0, stream, x4,
                   reinterpret_cast<const uint4 *>(y), w4, cu_seqlens, dims, hidden, eps, o4, bad);
    else
        EQK_LAUNCH((k_pool_normalize<false>), n_seqs, kThreads, 0, stream, x4, nullptr, w4,
                   cu_seqlens, dims, hidden, eps, o4, bad);
    return cudaGetLastError();
}
