/* emu.h - the kernel emulator: the kernels' .cu files compiled as host C++ (with
 * EQK_EMU defined and kernels/emu/include first on the include path) and run
 * on the CPU, for the kernel tests and the engine's emu device (docs/kernels.md,
 * "The kernel emulator" and "The engine on the emulator"; the host CUDA
 * runtime and fake cuBLASLt are runtime.cpp's).
 *
 * Execution model (emu.cpp): each CUDA thread of a block is a fiber
 * (ucontext) with its own stack; a block's fibers run one at a time until
 * they reach a block barrier (__syncthreads) or a warp-synchronous
 * operation (shuffles, ldmatrix, mma.sync), which are barriers over the
 * block or over the warp's 32 lanes: lanes deposit their operands, the last
 * to arrive computes every lane's result per the PTX ISA tables, and all
 * continue. Blocks run one at a time per worker thread (EQK_EMU_THREADS,
 * default: the number of cores, at most 4).
 *
 * What it checks, besides running the arithmetic unchanged:
 *   - dynamic shared memory is one heap block per block of exactly the
 *     launch's size (AddressSanitizer sees any overrun of it), and every
 *     wrapper access (ldmatrix, cp.async) is bounds- and alignment-checked;
 *   - a shadow map of dynamic shared memory: two threads touching the same
 *     bytes between two barriers, at least one writing, is a race; an
 *     in-flight cp.async is a write from its issue to the barrier after
 *     its wait; a copy lands only at its wait (the worst case);
 *   - divergent warp operations, barriers some threads never reach, and
 *     cp.async groups still pending at exit;
 *   - launch configurations: block size, grid limits, dynamic shared memory
 *     above 48 KB without cudaFuncSetAttribute, above 99 KB (sm_86/89).
 * Any of these sets a sticky error: the launcher's cudaGetLastError()
 * returns cudaErrorLaunchFailure and eqk_emu_error() gives the message.
 *
 * Not modelled: timing, occupancy, registers, bank conflicts, the memory
 * model between blocks or between threads outside barriers, plain C++
 * accesses to shared memory (only the wrappers' are shadowed), static
 * __shared__ arrays (thread-local storage, not a heap block; missing
 * barriers around them show in the results, through the scheduling order:
 * emu.cpp, yield_fiber).
 *
 * The bf16 helpers and CUDA types here are written by hand rather than
 * taken from the toolkit's cuda_bf16.h so that the emulator builds and runs
 * without a CUDA toolkit (the ASan build is configured with CUDA off).
 */
#ifndef EQK_EMU_H
#define EQK_EMU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "eqk_emu_runtime.h"

#include <functional>
#include <memory>
#include <tuple>
#include <utility>

/* ---- CUDA keywords and built-in types ---------------------------------- */

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
/* Static __shared__ arrays: per OS thread, and a worker thread runs one
 * block at a time, so one copy per running block. */
#define __shared__ thread_local

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) int2 {
    int x, y;
};
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w)
{
    return uint4{x, y, z, w};
}
static inline float4 make_float4(float x, float y, float z, float w)
{
    return float4{x, y, z, w};
}

enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

/* ---- bf16 ---------------------------------------------------------------- */

struct __nv_bfloat16 {
    uint16_t bits;
};
struct alignas(4) __nv_bfloat162 {
    __nv_bfloat16 x, y;
};

namespace eqk_emu
{
/* Round to nearest even, as cvt.rn.bf16.f32; NaN stays a (quiet) NaN. */
static inline uint16_t f32_to_bf16_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
} // namespace eqk_emu

static inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi)
{
    return __nv_bfloat162{{eqk_emu::f32_to_bf16_bits(lo)}, {eqk_emu::f32_to_bf16_bits(hi)}};
}

/* ---- device math and memory helpers ------------------------------------ */

static inline float __uint_as_float(unsigned u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline float rsqrtf(float x)
{
    return 1.0f / sqrtf(x);
}
/* glibc declares an __expf of its own (the same function as expf) */
#define __expf(x) expf(x)
static inline int min(int a, int b)
{
    return a < b ? a : b;
}
template <typename T> static inline T __ldg(const T *p)
{
    return *p;
}

/* ---- thread and block indices ------------------------------------------ */

extern thread_local dim3 blockIdx, blockDim, gridDim;
namespace eqk_emu
{
const dim3 &thread_idx();
}
#define threadIdx (::eqk_emu::thread_idx())

/* ---- the emulator's runtime (emu.cpp) ------------------------------------ */

namespace eqk_emu
{
/* Block barrier; __syncthreads_or: barrier + OR of pred over the block. */
void syncthreads();
int syncthreads_or(int pred);
/* Warp shuffle: lane L receives v of lane L ^ lane_mask (all 32 lanes). */
float shfl_xor(unsigned mask, float v, int lane_mask);
/* Offset of generic pointer p in the block's dynamic shared memory. */
uint32_t cvta_to_shared(const void *p);
/* The block's dynamic shared memory (exactly the launch's size). */
unsigned char *dynamic_smem();
/* The PTX instructions behind the kernels' wrappers (emu.cpp cites the
 * PTX ISA sections). */
void cp_async16(uint32_t dst, const void *src, int src_bytes);
void cp_async_commit();
void cp_async_wait(int n);
void ldmatrix_x4(bool trans, uint32_t addr, uint32_t r[4]);
void mma_m16n8k16_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1);

/* Records an emulator error (sticky; the first message is kept). */
void error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

typedef void (*kernel_id)();
cudaError_t set_max_dynamic_smem(kernel_id k, int bytes);
cudaError_t get_last_error();
/* Checks the launch configuration (an error is recorded for
 * cudaGetLastError, and nothing runs), then runs body() as every thread of
 * every block of the grid: at once on the NULL stream, else when the
 * stream is synchronized (runtime.cpp). */
void launch_raw(kernel_id k, const char *name, dim3 grid, dim3 block, size_t smem,
                cudaStream_t stream, std::function<void()> body);
/* Queues op on stream (runtime.cpp); runs it now when stream is NULL. */
void stream_enqueue(cudaStream_t stream, std::function<void()> op);

template <typename... P, typename... A>
void launch(void (*k)(P...), const char *name, dim3 grid, dim3 block, size_t smem,
            cudaStream_t stream, A &&...args)
{
    /* kernel parameters are copies, converted to the parameter types, kept
     * until the launch runs */
    auto params = std::make_shared<const std::tuple<typename std::decay<P>::type...>>(
        std::forward<A>(args)...);
    launch_raw(reinterpret_cast<kernel_id>(k), name, grid, block, smem, stream,
               [params, k] { std::apply(k, *params); });
}
} // namespace eqk_emu

#define __syncthreads()     ::eqk_emu::syncthreads()
#define __syncthreads_or(p) ::eqk_emu::syncthreads_or(p)
static inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask)
{
    return eqk_emu::shfl_xor(mask, v, lane_mask);
}
static inline size_t __cvta_generic_to_shared(const void *p)
{
    return eqk_emu::cvta_to_shared(p);
}

template <typename T>
static inline cudaError_t cudaFuncSetAttribute(T *k, cudaFuncAttribute a, int v)
{
    if (a != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
    return eqk_emu::set_max_dynamic_smem(reinterpret_cast<eqk_emu::kernel_id>(k), v);
}

/* The launch macro of kernels/launch.cuh, emulated. */
#define EQK_EMU_STRIP(...) __VA_ARGS__
#define EQK_LAUNCH(kernel, grid, block, smem, stream, ...)                                         \
    ::eqk_emu::launch(EQK_EMU_STRIP kernel, #kernel, (grid), (block), (smem), (stream), __VA_ARGS__)

#define EQK_DYNAMIC_SHARED(type, name)                                                             \
    type *const name = reinterpret_cast<type *>(::eqk_emu::dynamic_smem())

extern "C" {
/* The first emulator error since the last eqk_emu_clear_error(), or NULL. */
const char *eqk_emu_error(void);
void eqk_emu_clear_error(void);
/* Counters since start: blocks run, races found. */
long eqk_emu_blocks_run(void);
}

#endif
