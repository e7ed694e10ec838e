/* cpu_backend.h - the readable reference forward pass, fp32 math.
 *
 * Qwen3 as ../shared/QWEN3.md describes it, on packed variable-length
 * batches (cu_seqlens, no padding), last-token pooling, Matryoshka
 * truncation, L2 normalization. Weights are read from the mmap'd checkpoint
 * (bf16/f16/f32) and converted to fp32 per layer into a workspace; GEMMs go
 * through CBLAS (OpenBLAS); other loops use OpenMP.
 *
 * Threads: one cpu_backend may be used by one thread at a time.
 */
#ifndef EQ_CPU_BACKEND_H
#define EQ_CPU_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef struct cpu_backend cpu_backend;

/* Allocates every buffer needed for batches of up to max_tokens tokens and
 * sequences of up to max_seq_len tokens. m must outlive the backend.
 * threads <= 0: all cores. Returns NULL with a message on failure. */
cpu_backend *cpu_backend_new(const qw_model *m, int max_tokens, int max_seq_len, int threads,
                             char *err, size_t errlen);
void cpu_backend_free(cpu_backend *b);

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
