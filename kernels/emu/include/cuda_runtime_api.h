/* cuda_runtime_api.h (emulator shim) - the few CUDA runtime types and calls
 * the kernels' host launchers use, for compiling the kernels' .cu files as host C++
 * on the kernel emulator (kernels/emu/emu.h). On the include path of the
 * emulator build only, ahead of any real toolkit: the emulator needs no
 * CUDA toolkit, so it builds in the ASan build (EMBEDQ_CUDA=OFF) and on
 * machines without one. Written by hand because the real header declares
 * the whole runtime, which has no host implementation here. */
#ifndef EQK_EMU_CUDA_RUNTIME_API_H
#define EQK_EMU_CUDA_RUNTIME_API_H

#ifndef __cplusplus
#error "the kernel emulator's CUDA shim is C++ only"
#endif

#include "emu.h"

#endif
