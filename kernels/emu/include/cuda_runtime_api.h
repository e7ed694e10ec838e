/* cuda_runtime_api.h (emulator shim) - on the include path of the emulator
 * builds only, ahead of any real toolkit, so that the kernels' .cu files
 * (as host C++) and engine/gpu_backend.c (as C, the "emu" device) compile
 * against the emulator: the runtime subset of eqk_emu_runtime.h for both,
 * and for C++ the CUDA keywords and device built-ins of emu.h. The
 * emulator needs no CUDA toolkit, so it builds in the ASan build
 * (EMBEDQ_CUDA=OFF) and on machines without one. Written by hand because
 * the real header declares the whole runtime, which has no host
 * implementation here. */
#ifndef EQK_EMU_CUDA_RUNTIME_API_H
#define EQK_EMU_CUDA_RUNTIME_API_H

#include "eqk_emu_runtime.h"
#ifdef __cplusplus
#include "emu.h"
#endif

#endif
