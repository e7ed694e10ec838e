/* bf16_gemm.h - y (n, out) [+]= x (n, in) W^T on bf16 inputs with fp32
 * accumulation and fp32 output, through oneDNN's matmul: the GEMMs of the
 * CPU backend's bf16 path (cpu_backend.c, docs/engine.md "bf16 path").
 *
 * W is row-major (out, in) bf16 exactly as mapped from the checkpoint (the
 * "ba" layout of a (in, out) matrix): it is read in place, never copied or
 * packed. x is row-major (n, in) bf16, y row-major (n, out) fp32.
 *
 * Threads: oneDNN here is built with the OpenMP runtime (Debian's libdnnl2:
 * DNNL_CPU_RUNTIME == OMP, it links libgomp), so a GEMM is an OpenMP
 * parallel region of omp_get_max_threads() threads of the calling thread:
 * the same pool as the rest of the backend, no second one.
 *
 * One bf16_gemm is used by one thread at a time. */
#ifndef EQ_BF16_GEMM_H
#define EQ_BF16_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bf16_gemm bf16_gemm;

/* true when this CPU has AVX512-BF16 (cpuid) and oneDNN will use it
 * (its effective ISA, which ONEDNN_MAX_CPU_ISA can lower). Otherwise false
 * and *why (static text) says which is missing. */
bool bf16_gemm_supported(const char **why);

/* oneDNN's effective ISA, as text ("avx512_core_bf16", ...). */
const char *bf16_gemm_isa(void);

/* Returns NULL with a message on failure. */
bf16_gemm *bf16_gemm_new(char *err, size_t errlen);
void bf16_gemm_free(bf16_gemm *g);

/* y (n, out) = x (n, in) W^T, or y += x W^T when accumulate. 1 <= n, in,
 * out. A oneDNN primitive is made for each new (n, in, out, accumulate) and
 * kept (the 64 most recently used): the first batch of a given token count
 * pays ~5-10 ms per shape. Returns 0, or -1 with a message. */
int bf16_gemm_run(bf16_gemm *g, float *y, const uint16_t *x, const uint16_t *w, int n, int in,
                  int out, bool accumulate, char *err, size_t errlen);

#endif
