/* gpu_backend_emu.c - gpu_backend.c, unchanged, for the "emu" device: this
 * file is compiled with EQK_EMU and kernels/emu/include ahead of everything
 * (engine/CMakeLists.txt), so the CUDA plan's runtime calls, kernel
 * launches and cuBLASLt calls reach the kernel emulator, and its entry
 * points are the gpu_backend_emu_* of gpu_backend.h. A file of its own so
 * that its object does not replace gpu_backend.c's in the engine archive. */
#include "gpu_backend.c"
