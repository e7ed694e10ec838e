/* attention.cu - causal GQA attention over packed variable-length sequences,
 * flash style (FlashAttention-2's schedule, written for this engine).
 *
 * One block of 4 warps computes 64 query rows (16 per warp) of one head of
 * one sequence. It walks the key/value blocks of 64 rows from the start of
 * the sequence up to the diagonal block, double-buffered in shared memory
 * with cp.async (rows past the sequence end are zero-filled, never read
 * from the next sequence). S = Q K^T and O += P V run on the tensor cores
 * (mma.sync m16n8k16, bf16 in, fp32 accumulate; operands loaded with
 * ldmatrix, V transposed by ldmatrix.trans); the softmax is online, in fp32
 * and base 2, with the running max and sum kept per row in registers. P is
 * rounded to bf16 for the P V product, as FlashAttention does. Memory is
 * O(n): nothing of size n^2 is ever stored.
 *
 * Grid: (n_work, n_heads) over a work list the host builds per batch
 * (eqk_attention_work, twins.c): one item per (sequence, query block) that
 * exists, longest first, so the blocks that walk the most key tiles start
 * first and no block is launched for a query block past a sequence's end.
 * (A grid of n_seqs x ceil(max_seqlen / 64) blocks left over 99% of them
 * idle on a batch of one 8192-token document and hundreds of short chunks,
 * each still holding a slot sized for its shared memory.) Shared memory: two stages of K and V
 * tiles, rows padded by 16 bytes so that ldmatrix's 8 row addresses fall in
 * distinct banks; Q is staged once in the second stage's K tile.
 */
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

#include "bf16_vec.cuh"
#include "kernels.h"
#include "launch.cuh"

namespace
{

typedef __nv_bfloat16 bf16;

constexpr int BM = 64; /* query rows per block (16 per warp)   */
constexpr int BN = 64; /* key rows per tile                    */
constexpr int NWARPS = 4;
constexpr int NTHREADS = NWARPS * 32;

template <int D> struct Tile {
    static constexpr int LDS = D + 8;               /* padded row, elements */
    static constexpr int ELEMS = BN * LDS;          /* one K or V tile      */
    static constexpr size_t SMEM = 4u * ELEMS * 2u; /* 2 stages x (K, V)    */
};

__device__ __forceinline__ uint32_t smem_u32(const void *p)
{
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

/* 16-byte async copy; src_bytes 0 zero-fills the destination. */
__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, int src_bytes)
{
#ifdef EQK_EMU
    eqk_emu::cp_async16(dst, src, src_bytes);
#else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(src_bytes));
#endif
}
__device__ __forceinline__ void cp_async_commit()
{
#ifdef EQK_EMU
    eqk_emu::cp_async_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N> __device__ __forceinline__ void cp_async_wait()
{
#ifdef EQK_EMU
    eqk_emu::cp_async_wait(N);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

__device__ __forceinline__ void ldsm_x4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3,
                                        uint32_t addr)
{
#ifdef EQK_EMU
    uint32_t r[4];
    eqk_emu::ldmatrix_x4(false, addr, r);
    r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
#endif
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3,
                                          uint32_t addr)
{
#ifdef EQK_EMU
    uint32_t r[4];
    eqk_emu::ldmatrix_x4(true, addr, r);
    r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
#endif
}

/* c += a (16x16, row) * b (16x8, col); bf16 in, fp32 accumulate. */
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1)
{
#ifdef EQK_EMU
    eqk_emu::mma_m16n8k16_bf16(c, a, b0, b1);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

/* Copies rows [0, 64) x D of a tile whose row r starts at src + r*ld; rows
 * r >= n_valid are zero-filled (src row 0, always valid, is passed so the
 * address stays in bounds). */
template <int D>
__device__ __forceinline__ void load_tile(bf16 *dst, const bf16 *src, int ld, int n_valid, int tid)
{
    constexpr int CH = D / 8; /* 16-byte chunks per row */
    constexpr int LDS = Tile<D>::LDS;
#pragma unroll
    for (int i = tid; i < BN * CH; i += NTHREADS) {
        const int r = i / CH, c = i % CH;
        const bool ok = r < n_valid;
        const bf16 *s = src + (ok ? (size_t)r * ld : 0) + c * 8;
        cp_async16(smem_u32(dst + r * LDS + c * 8), s, ok ? 16 : 0);
    }
}

template <int D>
__global__ void __launch_bounds__(NTHREADS)
    attention_kernel(const bf16 *__restrict__ qkv, const int32_t *__restrict__ cu_seqlens,
                     const int32_t *__restrict__ work, int n_heads, int n_kv_heads,
                     float scale_log2, bf16 *__restrict__ out)
{
    constexpr int LDS = Tile<D>::LDS;
    constexpr int ELEMS = Tile<D>::ELEMS;
    constexpr int KSTEPS = D / 16; /* k-steps of Q K^T     */
    constexpr int NT_S = BN / 8;   /* n8 tiles of S        */
    constexpr int NT_O = D / 8;    /* n8 tiles of O        */

    /* one 8-byte load (sm_90 ptxas: two 4-byte loads spilled 24 bytes at hd
     * 32; this spills 8 at hd 64; docs/kernels.md) */
    const int2 item = __ldg(reinterpret_cast<const int2 *>(work) + blockIdx.x);
    const int seq = item.x;
    const int mb = item.y;
    const int h = blockIdx.y;
    const int start = cu_seqlens[seq];
    const int len = cu_seqlens[seq + 1] - start;
    const int m0 = mb * BM;
    if (m0 >= len) return;

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int ld = (n_heads + 2 * n_kv_heads) * D;
    const int kvh = h / (n_heads / n_kv_heads);
    const bf16 *qg = qkv + (size_t)(start + m0) * ld + (size_t)h * D;
    const bf16 *kg = qkv + (size_t)start * ld + (size_t)(n_heads + kvh) * D;
    const bf16 *vg = qkv + (size_t)start * ld + (size_t)(n_heads + n_kv_heads + kvh) * D;

    EQK_DYNAMIC_SHARED(unsigned char, smem_raw);
    bf16 *const smem = reinterpret_cast<bf16 *>(smem_raw);
    /* stage s: K at smem + 2*s*ELEMS, V right after it */
    bf16 *const sQ = smem + 2 * ELEMS; /* stage 1's K tile, free before the loop */

    /* BM == BN and m0 < len: key blocks 0..mb, the last one on the diagonal. */
    const int n_blocks = mb + 1;

    load_tile<D>(sQ, qg, ld, min(BM, len - m0), tid);
    load_tile<D>(smem, kg, ld, min(BN, len), tid);
    load_tile<D>(smem + ELEMS, vg, ld, min(BN, len), tid);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    uint32_t qf[KSTEPS][4];
#pragma unroll
    for (int kk = 0; kk < KSTEPS; kk++)
        ldsm_x4(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3],
                smem_u32(sQ + (warp * 16 + (lane & 15)) * LDS + kk * 16 + (lane >> 4) * 8));
    __syncthreads(); /* sQ is overwritten by the first prefetch */

    float o[NT_O][4];
#pragma unroll
    for (int t = 0; t < NT_O; t++)
        o[t][0] = o[t][1] = o[t][2] = o[t][3] = 0.f;
    float row_max[2] = {-INFINITY, -INFINITY};
    float row_sum[2] = {0.f, 0.f}; /* this thread's partial sums */

    const int q_row = m0 + warp * 16 + (lane >> 2); /* rows q_row and q_row + 8 */
    const int mi = lane >> 3, mr = lane & 7;        /* ldmatrix: matrix, row     */

    for (int j = 0; j < n_blocks; j++) {
        const int stage = j & 1;
        if (j + 1 < n_blocks) {
            const int n1 = (j + 1) * BN;
            bf16 *nk = smem + 2 * (stage ^ 1) * ELEMS;
            load_tile<D>(nk, kg + (size_t)n1 * ld, ld, min(BN, len - n1), tid);
            load_tile<D>(nk + ELEMS, vg + (size_t)n1 * ld, ld, min(BN, len - n1), tid);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bf16 *sK = smem + 2 * stage * ELEMS;
        const bf16 *sV = sK + ELEMS;

        /* S = Q K^T: 16 x 64 per warp. */
        float s[NT_S][4];
#pragma unroll
        for (int t = 0; t < NT_S; t++)
            s[t][0] = s[t][1] = s[t][2] = s[t][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < KSTEPS; kk++) {
#pragma unroll
            for (int p = 0; p < BN / 16; p++) {
                uint32_t b0, b1, b2, b3;
                ldsm_x4(
                    b0, b1, b2, b3,
                    smem_u32(sK + (p * 16 + (mi >> 1) * 8 + mr) * LDS + kk * 16 + (mi & 1) * 8));
                mma16816(s[2 * p], qf[kk], b0, b1);
                mma16816(s[2 * p + 1], qf[kk], b2, b3);
            }
        }

        /* Scale to base 2; mask keys past the diagonal or the sequence end
         * (only the diagonal block has any). */
        const bool diag = (j == n_blocks - 1);
        const int n0 = j * BN;
#pragma unroll
        for (int t = 0; t < NT_S; t++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float v = s[t][e] * scale_log2;
                if (diag) {
                    const int key = n0 + t * 8 + (lane & 3) * 2 + (e & 1);
                    const int q = q_row + (e >> 1) * 8;
                    if (key > q || key >= len) v = -INFINITY;
                }
                s[t][e] = v;
            }
        }

        /* Online softmax: new row max over the quad, rescale, exponentiate. */
        float mx[2] = {row_max[0], row_max[1]};
#pragma unroll
        for (int t = 0; t < NT_S; t++) {
            mx[0] = fmaxf(mx[0], fmaxf(s[t][0], s[t][1]));
            mx[1] = fmaxf(mx[1], fmaxf(s[t][2], s[t][3]));
        }
        float alpha[2], base[2];
#pragma unroll
        for (int i = 0; i < 2; i++) {
            mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
            mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
            /* A row with every key masked so far keeps max -inf: use 0 as
             * the base so that exp2(-inf - 0) = 0 instead of NaN. */
            base[i] = mx[i] == -INFINITY ? 0.f : mx[i];
            alpha[i] = exp2f(row_max[i] - base[i]);
            row_max[i] = mx[i];
        }
        float part[2] = {0.f, 0.f};
#pragma unroll
        for (int t = 0; t < NT_S; t++) {
            s[t][0] = exp2f(s[t][0] - base[0]);
            s[t][1] = exp2f(s[t][1] - base[0]);
            s[t][2] = exp2f(s[t][2] - base[1]);
            s[t][3] = exp2f(s[t][3] - base[1]);
            part[0] += s[t][0] + s[t][1];
            part[1] += s[t][2] + s[t][3];
        }
        row_sum[0] = row_sum[0] * alpha[0] + part[0];
        row_sum[1] = row_sum[1] * alpha[1] + part[1];
#pragma unroll
        for (int t = 0; t < NT_O; t++) {
            o[t][0] *= alpha[0];
            o[t][1] *= alpha[0];
            o[t][2] *= alpha[1];
            o[t][3] *= alpha[1];
        }

        /* O += P V: P's accumulator layout is the A operand's layout, two
         * n8 tiles of S making one k16 step. */
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            const uint32_t a[4] = {pack_bf16x2(s[2 * kk][0], s[2 * kk][1]),
                                   pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                                   pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                   pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int q = 0; q < D / 16; q++) {
                uint32_t b0, b1, b2, b3;
                ldsm_x4_t(
                    b0, b1, b2, b3,
                    smem_u32(sV + (kk * 16 + (mi & 1) * 8 + mr) * LDS + q * 16 + (mi >> 1) * 8));
                mma16816(o[2 * q], a, b0, b1);
                mma16816(o[2 * q + 1], a, b2, b3);
            }
        }
        __syncthreads(); /* this stage is refilled two iterations on */
    }

    /* Normalize and store the rows that belong to the sequence. */
    float inv[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
        float l = row_sum[i];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        inv[i] = 1.f / l;
    }
    const size_t ldo = (size_t)n_heads * D;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int q = q_row + i * 8;
        if (q >= len) continue;
        bf16 *dst = out + (size_t)(start + q) * ldo + (size_t)h * D + (lane & 3) * 2;
#pragma unroll
        for (int t = 0; t < NT_O; t++)
            *reinterpret_cast<uint32_t *>(dst + t * 8) =
                pack_bf16x2(o[t][2 * i] * inv[i], o[t][2 * i + 1] * inv[i]);
    }
}

/* Above 48 KB of dynamic shared memory a kernel must be allowed it once
 * per device (eqk_init). */
template <int D> cudaError_t allow_smem()
{
    const size_t smem = Tile<D>::SMEM;
    if (smem <= 48 * 1024) return cudaSuccess;
    return cudaFuncSetAttribute(attention_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                (int)smem);
}

template <int D>
cudaError_t launch(const bf16 *qkv, const int32_t *cu_seqlens, const int32_t *work, int n_work,
                   int n_heads, int n_kv_heads, bf16 *out, cudaStream_t stream)
{
    const size_t smem = Tile<D>::SMEM;
    const dim3 grid((unsigned)n_work, (unsigned)n_heads);
    const float scale_log2 = (float)(1.4426950408889634 / sqrt((double)D));
    EQK_LAUNCH((attention_kernel<D>), grid, NTHREADS, smem, stream, qkv, cu_seqlens, work, n_heads,
               n_kv_heads, scale_log2, out);
    return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t eqk_init(void)
{
    cudaError_t e = allow_smem<32>();
    if (e == cudaSuccess) e = allow_smem<64>();
    if (e == cudaSuccess) e = allow_smem<128>();
    return e;
}

extern "C" cudaError_t eqk_attention(const eqk_bf16 *qkv, const int32_t *cu_seqlens,
                                     const int32_t *work, int n_work, int n_heads, int n_kv_heads,
                                     int head_dim, eqk_bf16 *out, cudaStream_t stream)
{
    if (n_work <= 0) return cudaSuccess;
    if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0) return cudaErrorInvalidValue;
    if (n_heads > 65535 || ((uintptr_t)work & 7)) return cudaErrorInvalidValue;
    const bf16 *q = reinterpret_cast<const bf16 *>(qkv);
    bf16 *o = reinterpret_cast<bf16 *>(out);
    switch (head_dim) {
    case 32:
        return launch<32>(q, cu_seqlens, work, n_work, n_heads, n_kv_heads, o, stream);
    case 64:
        return launch<64>(q, cu_seqlens, work, n_work, n_heads, n_kv_heads, o, stream);
    case 128:
        return launch<128>(q, cu_seqlens, work, n_work, n_heads, n_kv_heads, o, stream);
    default:
        return cudaErrorInvalidValue;
    }
}
