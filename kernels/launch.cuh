/* launch.cuh - the two spots of a .cu that the kernel emulator
 * (kernels/emu/) cannot take as CUDA C++ writes them, as macros that are
 * plain CUDA under nvcc and emulated when the file is compiled as host C++
 * with EQK_EMU (kernels/emu/emu.h defines them there):
 *
 *   EQK_LAUNCH((kernel), grid, block, smem, stream, args...)
 *       kernel<<<grid, block, smem, stream>>>(args...); the kernel goes in
 *       parentheses so that template arguments may hold commas.
 *   EQK_DYNAMIC_SHARED(type, name);
 *       extern __shared__ __align__(16) type name[]; (the launch's dynamic
 *       shared memory; on the emulator, the block's own heap block). */
#ifndef EQ_LAUNCH_CUH
#define EQ_LAUNCH_CUH

#ifndef EQK_EMU
#define EQK_STRIP(...) __VA_ARGS__
#define EQK_LAUNCH(kernel, grid, block, smem, stream, ...)                                         \
    EQK_STRIP kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__)
#define EQK_DYNAMIC_SHARED(type, name) extern __shared__ __align__(16) type name[]
#endif

#endif
