/* add_rmsnorm.cu - fused residual add + RMSNorm (kernels.h, eqk_add_rmsnorm):
 *   x[t] += float(y[t]) (when y != NULL);  out[t] = bf16(x[t] * r * w),
 *   r = 1/sqrt(mean(x[t]^2) + eps), fp32 statistics.
 *
 * Design: one block per row. The row is cut into chunks of 8 values
 * (hidden % 8 == 0); each thread owns C chunks (chunk threadIdx.x + c *
 * blockDim.x), C = ceil(chunks / 256) chosen at launch (a template
 * parameter, 1..8: hidden up to 16384), so the row is read once into
 * registers: 2 x 16-byte fp32 loads + one 16-byte bf16 load per chunk, x
 * written back in place, then one block reduction (warp shuffles, one
 * shared-memory step) and one 16-byte bf16 store per chunk. Wider rows take
 * a two-pass fallback (C = 0) that re-reads x from global memory (L2).
 *
 * Memory per token: read 4H (x) + 2H (y) + 4H (w, cache-resident), write 4H
 * (x, only when y != NULL) + 2H (out).
 */
#include <cuda_bf16.h>

#include "bf16_vec.cuh"
#include "kernels.h"
#include "launch.cuh"

namespace
{

constexpr int kMaxThreads = 256;
constexpr int kMaxChunksPerThread = 8;

/* Sum over the block, returned to every thread. blockDim.x % 32 == 0. */
__device__ __forceinline__ float block_sum(float v, float *red /* [32] */)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    const int warps = blockDim.x >> 5;
    if (warps == 1) return v;
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    float s = 0.0f;
    for (int i = 0; i < warps; i++)
        s += red[i];
    return s;
}

__device__ __forceinline__ void load_x8(const float4 *xr, int c, float *v)
{
    const float4 a = xr[2 * c], b = xr[2 * c + 1];
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
    v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

__device__ __forceinline__ void store_x8(float4 *xr, int c, const float *v)
{
    xr[2 * c] = make_float4(v[0], v[1], v[2], v[3]);
    xr[2 * c + 1] = make_float4(v[4], v[5], v[6], v[7]);
}

/* out chunk = bf16(v * r * w) */
__device__ __forceinline__ uint4 norm8(const float *v, float r, const float4 *w4, int c)
{
    const float4 wa = __ldg(w4 + 2 * c), wb = __ldg(w4 + 2 * c + 1);
    const float wv[8] = {wa.x, wa.y, wa.z, wa.w, wb.x, wb.y, wb.z, wb.w};
    float o[8];
#pragma unroll
    for (int k = 0; k < 8; k++)
        o[k] = v[k] * r * wv[k];
    return f32_to_bf16x8(o);
}

/* C > 0: the row in registers (C chunks of 8 per thread). C == 0: any
 * width, two passes over global memory. */
template <int C, bool HasY>
__global__ void __launch_bounds__(kMaxThreads)
    k_add_rmsnorm(float *__restrict__ x, const uint4 *__restrict__ y, const float4 *__restrict__ w,
                  int chunks, float inv_hidden, float eps, uint4 *__restrict__ out)
{
    __shared__ float red[32];
    const size_t row = blockIdx.x;
    float4 *xr = reinterpret_cast<float4 *>(x) + row * chunks * 2;
    const uint4 *yr = HasY ? y + row * chunks : nullptr;
    uint4 *orow = out + row * chunks;
    float ss = 0.0f;

    if constexpr (C > 0) {
        float v[C][8];
#pragma unroll
        for (int c = 0; c < C; c++) {
            const int ci = threadIdx.x + c * blockDim.x;
            if (ci < chunks) {
                load_x8(xr, ci, v[c]);
                if (HasY) {
                    float yv[8];
                    bf16x8_to_f32(__ldg(yr + ci), yv);
#pragma unroll
                    for (int k = 0; k < 8; k++)
                        v[c][k] += yv[k];
                    store_x8(xr, ci, v[c]);
                }
#pragma unroll
                for (int k = 0; k < 8; k++)
                    ss += v[c][k] * v[c][k];
            }
        }
        const float r = rsqrtf(block_sum(ss, red) * inv_hidden + eps);
#pragma unroll
        for (int c = 0; c < C; c++) {
            const int ci = threadIdx.x + c * blockDim.x;
            if (ci < chunks) orow[ci] = norm8(v[c], r, w, ci);
        }
    } else {
        for (int ci = threadIdx.x; ci < chunks; ci += blockDim.x) {
            float v[8];
            load_x8(xr, ci, v);
            if (HasY) {
                float yv[8];
                bf16x8_to_f32(__ldg(yr + ci), yv);
#pragma unroll
                for (int k = 0; k < 8; k++)
                    v[k] += yv[k];
                store_x8(xr, ci, v);
            }
#pragma unroll
            for (int k = 0; k < 8; k++)
                ss += v[k] * v[k];
        }
        const float r = rsqrtf(block_sum(ss, red) * inv_hidden + eps);
        /* each thread re-reads only the chunks it wrote itself */
        for (int ci = threadIdx.x; ci < chunks; ci += blockDim.x) {
            float v[8];
            load_x8(xr, ci, v);
            orow[ci] = norm8(v, r, w, ci);
        }
    }
}

template <int C>
void launch(float *x, const eqk_bf16 *y, const float *w, int n_tokens, int chunks, int threads,
            float eps, eqk_bf16 *out, cudaStream_t stream)
{
    const float inv_hidden = 1.0f / (float)(chunks * 8);
    const float4 *w4 = reinterpret_cast<const float4 *>(w);
    if (y)
        EQK_LAUNCH((k_add_rmsnorm<C, true>), n_tokens, threads, 0, stream, x,
                   reinterpret_cast<const uint4 *>(y), w4, chunks, inv_hidden, eps,
                   reinterpret_cast<uint4 *>(out));
    else
        EQK_LAUNCH((k_add_rmsnorm<C, false>), n_tokens, threads, 0, stream, x, nullptr, w4, chunks,
                   inv_hidden, eps, reinterpret_cast<uint4 *>(out));
}

/* 16-byte vector accesses: every pointer must be 16-byte aligned (cudaMalloc
 * gives 256). */
static bool aligned16(const void *p)
{
    return ((uintptr_t)p & 15) == 0;
}

} // namespace

extern "C" cudaError_t eqk_add_rmsnorm(float *x, const eqk_bf16 *y, const float *w, int n_tokens,
                                       int hidden, float eps, eqk_bf16 *out, cudaStream_t stream)
{
    if (n_tokens <= 0 || hidden <= 0) return cudaSuccess;
    if (hidden % 8 || !aligned16(x) || !aligned16(y) || !aligned16(w) || !aligned16(out))
        return cudaErrorInvalidValue;
    const int chunks = hidden / 8;
    /* C chunks per thread, and the fewest warps that cover the row with C */
    const int c = (chunks + kMaxThreads - 1) / kMaxThreads;
    const int threads =
        c <= kMaxChunksPerThread ? ((chunks + c - 1) / c + 31) / 32 * 32 : kMaxThreads;
    switch (c) {
    case 1:
        launch<1>(x, y, w, n_tokens, chunks, threads, eps, out, stream);
        break;
    case 2:
        launch<2>(x, y, w, n_tokens, chunks, threads, eps, out, stream);
        break;
    case 3:
        launch<3>(x, y, w, n_tokens, chunks, threads, eps, out, stream);
        break;
    case 4:
        launch<4>(x, y, w, n_tokens, chunks, threads, eps, out, stream);
        break;
    case 5:
        launch<5>(x, y, w, n_tokens, chunks, threads, eps, out, stream);
        break;
    case 6:
        launch<6>(x, y, w, n_tokens, chunks, threads, eps, out, stream);
        break;
    case 7:
        launch<7>(x, y, w, n_tokens, chunks, threads, eps, out, stream);
        break;
    case 8:
        launch<8>(x, y, w, n_tokens, chunks, threads, eps, out, stream);
        break;
    default:
        launch<0>(x, y, w, n_tokens, chunks, threads, eps, out, stream);
        break;
    }
    return cudaGetLastError();
}
