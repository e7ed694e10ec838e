/* gpu_backend.h - the CUDA forward pass: bf16 weights uploaded once (fused
 * QKV and gate/up matrices), cuBLASLt bf16 GEMMs with fp32 accumulation,
 * the kernels of kernels/, every buffer allocated at open.
 *
 * The same plan also runs on the kernels' CPU twins ("twin" mode): the same
 * buffers, weight packing, op sequence and batch bookkeeping, with host
 * memory and kernels/twins.c in place of the GPU. It is slow and exists so
 * that everything but the device code itself is tested on machines without
 * a GPU (tests/engine/gpu_backend_test.c).
 *
 * Errors: a CUDA or cuBLAS failure is reported with the call, file and line;
 * the backend then refuses every later batch with that message (it never
 * returns vectors computed after a device error). A non-finite pooled state
 * (overflow on a pathological input) fails only its batch, as on the CPU.
 *
 * Threads: one thread at a time per backend (it may be a different thread
 * from the one that opened it).
 */
#ifndef EQ_GPU_BACKEND_H
#define EQ_GPU_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "model.h"

typedef struct gpu_backend gpu_backend;

/* The "emu" device: this file's functions from gpu_backend.c compiled a
 * second time against the kernel emulator (kernels/emu/: its host CUDA
 * runtime, the kernels' own source on the CPU, and a reference GEMM that
 * reads the plan's cuBLASLt descriptors), as gpu_backend_emu_* beside the
 * CUDA ones, with the same contracts (twin must be false). Built where the
 * emulator is (EMBEDQ_HAVE_EMU), CUDA toolkit or not. Slow (the tiny model
 * at a few hundred tokens per second): it is for tests. The emulated build
 * itself sees the usual names (EQK_EMU). */
#ifdef EQK_EMU
#define gpu_device_count        gpu_emu_device_count
#define gpu_backend_compiled    gpu_backend_emu_compiled
#define gpu_backend_new         gpu_backend_emu_new
#define gpu_backend_free        gpu_backend_emu_free
#define gpu_backend_embed       gpu_backend_emu_embed
#define gpu_backend_fatal       gpu_backend_emu_fatal
#define gpu_backend_info        gpu_backend_emu_info
#define gpu_backend_gemm_tflops gpu_backend_emu_gemm_tflops
#else
gpu_backend *gpu_backend_emu_new(const qw_model *m, int max_tokens, int max_seq_len, bool twin,
                                 char *err, size_t errlen);
void gpu_backend_emu_free(gpu_backend *b);
int gpu_backend_emu_embed(gpu_backend *b, const int32_t *ids, const int32_t *cu_seqlens, int n_seqs,
                          const int *dims, float *out, char *err, size_t errlen);
const char *gpu_backend_emu_fatal(const gpu_backend *b);
void gpu_backend_emu_info(const gpu_backend *b, eq_info *info);
#endif

/* Number of usable CUDA devices; 0 when this build has no CUDA backend, no
 * driver is installed, or no device is visible. Never fails. */
int gpu_device_count(void);

/* Whether this build includes the CUDA backend. */
bool gpu_backend_compiled(void);

/* Opens the backend for batches of up to max_tokens tokens and sequences of
 * up to max_seq_len, uploading m's weights. twin: run on the CPU twins.
 * Prints the memory plan (eq_log info) and refuses, with the plan in the
 * message, when weights plus buffers do not fit in the device's free
 * memory. Returns NULL with a message on failure. m must outlive it only
 * until this returns in CUDA mode (weights are copied); in twin mode too. */
gpu_backend *gpu_backend_new(const qw_model *m, int max_tokens, int max_seq_len, bool twin,
                             char *err, size_t errlen);
void gpu_backend_free(gpu_backend *b);

/* The contract of cpu_backend_embed (cpu_backend.h); dims[i] in 1..hidden. */
int gpu_backend_embed(gpu_backend *b, const int32_t *ids, const int32_t *cu_seqlens, int n_seqs,
                      const int *dims, float *out, char *err, size_t errlen);

/* NULL, or the first device error's message once there was one. */
const char *gpu_backend_fatal(const gpu_backend *b);

void gpu_backend_info(const gpu_backend *b, eq_info *info);

/* bf16 n x n x n GEMM rate through the backend's GEMM path; see
 * eq_measure_gemm_tflops. CUDA mode only. */
double gpu_backend_gemm_tflops(gpu_backend *b, int n, int reps, char *err, size_t errlen);

#endif
