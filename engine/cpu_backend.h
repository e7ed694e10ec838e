/* cpu_backend.h - the forward pass on the CPU: the readable fp32 reference
 * and a bf16-GEMM path.
 *
 * Qwen3 as ../shared/QWEN3.md describes it, on packed variable-length
 * batches (cu_seqlens, no padding), last-token pooling, Matryoshka
 * truncation, L2 normalization. Weights are read from the mmap'd checkpoint
 * (bf16/f16/f32). fp32 path: converted to fp32 per layer into a workspace,
 * GEMMs through CBLAS (OpenBLAS). bf16 path (bf16 checkpoints on CPUs with
 * AVX512-BF16): the bf16 weights are read as mapped by oneDNN's bf16 GEMMs
 * (fp32 accumulation); norms, RoPE, attention and the residual stay fp32.
 * Other loops use OpenMP.
 *
 * Threads: one cpu_backend may be used by one thread at a time.
 */
#ifndef EQ_CPU_BACKEND_H
#define EQ_CPU_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef struct cpu_backend cpu_backend;

/* The GEMM precision. AUTO: bf16 when every projection of the checkpoint
 * is bf16 and the CPU has AVX512-BF16 (and oneDNN uses it), else fp32 (the
 * reason is in cpu_backend_precision). FP32: the reference. BF16: bf16 or
 * fail with the reason. */
typedef enum { CPU_PRECISION_AUTO, CPU_PRECISION_FP32, CPU_PRECISION_BF16 } cpu_precision;

const char *cpu_precision_name(cpu_precision p); /* "auto", "fp32", "bf16" */

/* Allocates every buffer needed for batches of up to max_tokens tokens and
 * sequences of up to max_seq_len tokens. m must outlive the backend.
 * threads <= 0: all cores. Returns NULL with a message on failure. */
cpu_backend *cpu_backend_new(const qw_model *m, int max_tokens, int max_seq_len, int threads,
                             cpu_precision precision, char *err, size_t errlen);
void cpu_backend_free(cpu_backend *b);

/* The path taken, for the start-up banner: "bf16 GEMMs (oneDNN ...)" or
 * "fp32 GEMMs (OpenBLAS sgemm)..." with why fp32 when bf16 was possible to
 * ask for. */
const char *cpu_backend_precision(const cpu_backend *b);
bool cpu_backend_is_bf16(const cpu_backend *b);
/* Bytes the backend allocated (activations, scratch, fp32 layer). */
size_t cpu_backend_bytes(const cpu_backend *b);

/* Same contract as eq_embed (engine.h), arguments already validated:
 * every id < vocab_rows, 1 <= seq len <= max_seq_len, total <= max_tokens,
 * dims[i] in 1..hidden. Writes n_seqs * hidden floats to out: row i holds
 * dims[i] normalized values, then zeros up to hidden. Returns 0.
 * Also accepted: dims == NULL or dims[i] == 0 for hidden. The cheap
 * invariants are re-checked: a batch that breaks them returns -1 with a
 * message (a bug in the caller) and writes nothing. A pooled hidden state
 * that is not finite (overflow) also returns -1; out is then partly
 * written. No NaN/Inf is ever returned with 0. */
int cpu_backend_embed(cpu_backend *b, const int32_t *ids, const int32_t *cu_seqlens, int n_seqs,
                      const int *dims, float *out, char *err, size_t errlen);

#endif
