/* cuda_bf16.h (emulator shim) - see cuda_runtime_api.h here. The bf16
 * types and the one conversion the kernels use are defined in emu.h. */
#ifndef EQK_EMU_CUDA_BF16_H
#define EQK_EMU_CUDA_BF16_H
#include "emu.h"
#endif
