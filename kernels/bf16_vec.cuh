/* bf16_vec.cuh - the 16-byte bf16/fp32 vector helpers the kernels share.
 * A uint4 holds 8 bf16 values (one 16-byte load or store); bf16 -> fp32 is
 * a shift, fp32 -> bf16 rounds to nearest even (cvt.rn.bf16x2.f32). */
#ifndef EQ_BF16_VEC_CUH
#define EQ_BF16_VEC_CUH

#include <cuda_bf16.h>
#include <stdint.h>

/* Two floats -> one bf16x2 word; lo goes to the lower address. */
static __device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* 8 bf16 (one uint4) -> 8 floats. */
static __device__ __forceinline__ void bf16x8_to_f32(const uint4 v, float *f)
{
    f[0] = __uint_as_float(v.x << 16);
    f[1] = __uint_as_float(v.x & 0xffff0000u);
    f[2] = __uint_as_float(v.y << 16);
    f[3] = __uint_as_float(v.y & 0xffff0000u);
    f[4] = __uint_as_float(v.z << 16);
    f[5] = __uint_as_float(v.z & 0xffff0000u);
    f[6] = __uint_as_float(v.w << 16);
    f[7] = __uint_as_float(v.w & 0xffff0000u);
}

/* 8 floats -> 8 bf16 (one uint4), round to nearest even. */
static __device__ __forceinline__ uint4 f32_to_bf16x8(const float *f)
{
    return make_uint4(pack_bf16x2(f[0], f[1]), pack_bf16x2(f[2], f[3]), pack_bf16x2(f[4], f[5]),
                      pack_bf16x2(f[6], f[7]));
}

/* 8 floats from two read-only 16-byte loads. */
static __device__ __forceinline__ void load_f32x8(const float4 *p, float *f)
{
    const float4 a = __ldg(p), b = __ldg(p + 1);
    f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w;
    f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}

#endif
