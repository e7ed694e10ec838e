/* engine.h - the engine's public C API, independent of brokers.
 *
 *   eq_open(model_dir, options) -> engine   config.json, tokenizer.json, *.safetensors
 *   eq_encode(engine, text, instruction)     -> token ids      (thread-safe)
 *   eq_embed(engine, packed batch)           -> one vector per sequence
 *   eq_close(engine)
 *
 * A packed batch is the concatenation of the sequences' token ids with
 * cu_seqlens (n_seqs + 1 offsets, cu_seqlens[0] == 0): no padding. Positions
 * restart at 0 for every sequence. Each output vector is the final hidden
 * state at the sequence's last token, truncated to dims[i] values
 * (Matryoshka), then L2-normalized.
 *
 * Threads: eq_encode may be called from any thread concurrently; eq_embed
 * from one thread at a time per engine (the engine thread).
 */
#ifndef EQ_ENGINE_H
#define EQ_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef struct eq_engine eq_engine;

typedef struct {
    const char *device;   /* "cuda", "cpu" (bf16 GEMMs where the checkpoint
                             is bf16 and the CPU has AVX512-BF16, else fp32),
                             "cpu-fp32" (the fp32 reference), "cpu-bf16"
                             (bf16 or fail), "twin" (the CUDA backend's
                             plan on the kernels' CPU twins: tests only,
                             slow) or "emu" (its CUDA build on the kernel
                             emulator: tests only, slower); NULL or "auto"
                             = cuda when a GPU is present, else cpu         */
    int max_batch_tokens; /* token budget of one eq_embed call; 0 = 16384  */
    int max_seq_len;      /* truncation length incl. the final <|endoftext|>;
                             0 = 8192 (capped at max_position_embeddings)  */
    int threads;          /* CPU threads; 0 = all cores                   */
    bool tokenizer_only;  /* load config.json + tokenizer.json only: eq_encode
                             works, eq_embed fails (for `embedq tokenize`) */
} eq_options;

/* Opens model_dir. Returns 0 and *out, or -1 with a message in err. */
int eq_open(const char *model_dir, const eq_options *opt, eq_engine **out, char *err,
            size_t errlen);
void eq_close(eq_engine *e);

const qw_config *eq_config(const eq_engine *e);
int eq_max_seq_len(const eq_engine *e);
int eq_max_batch_tokens(const eq_engine *e);
/* The id of <|endoftext|>, which ends every input (eq_encode appends it). */
int32_t eq_eos_id(const eq_engine *e);

/* Tokenizes one input exactly as the model will see it: the query template
 * "Instruct: {instruction}\nQuery:{text}" when instruction != NULL, then the
 * tokenizer, truncation to max_seq_len - 1 content tokens, and the final
 * <|endoftext|>. On success returns the number of ids (>= 1) and sets *ids
 * (malloc'd; the caller frees) and *truncated. On bad input (e.g. invalid
 * UTF-8) returns -1 with a message. Thread-safe. */
int eq_encode(eq_engine *e, const char *text, size_t len, const char *instruction, size_t ilen,
              int32_t **ids, bool *truncated, char *err, size_t errlen);

/* eq_encode's failure when the instruction is too long (the message says
 * so): its query template ("Instruct: {instruction}\nQuery:" alone) takes
 * more than half of max_seq_len tokens. The rule keeps at least half of the
 * limit for the text, so truncation never cuts into the text's absence: a
 * huge instruction fails the input instead of making every text with it
 * the same vector. Other failures (invalid UTF-8) return -1. */
#define EQ_ENCODE_INSTRUCTION_TOO_LONG (-2)

typedef struct {
    bool truncated;         /* content was cut to fit max_seq_len            */
    int instruction_tokens; /* tokens of the query template alone (0 without
                               an instruction)                             */
} eq_encode_info;

/* eq_encode, also telling how many tokens the instruction's template took
 * (for messages that name what is too long). */
int eq_encode_ex(eq_engine *e, const char *text, size_t len, const char *instruction, size_t ilen,
                 int32_t **ids, eq_encode_info *info, char *err, size_t errlen);

/* Runs one packed batch. ids: cu_seqlens[n_seqs] token ids; dims: n_seqs
 * Matryoshka sizes (32..hidden; 0 = hidden); out: n_seqs * hidden floats,
 * vector i at out + i*hidden, its first dims[i] values set and normalized.
 * Total tokens must be <= max_batch_tokens and every sequence <= max_seq_len.
 * Returns 0, or -1 with a message (bad arguments; backend failure). */
int eq_embed(eq_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int n_seqs,
             const int *dims, float *out, char *err, size_t errlen);

/* NULL while the engine works; once its backend hit a device error (CUDA),
 * the error message: every later eq_embed fails with it, and the caller
 * should stop (a worker exits without acknowledging, so its input is
 * redelivered to a healthy one). A non-finite result on one input is not
 * such an error. */
const char *eq_fatal_error(const eq_engine *e);

/* What an opened engine runs on and what it holds. */
typedef struct {
    char backend[8];           /* "cpu", "cuda" or "twin"                     */
    char device_name[192];     /* GPU name, or "CPU (N threads, <precision>)" */
    int device_index;          /* CUDA device ordinal; -1 on the CPU          */
    uint64_t weight_bytes;     /* weights as held by the backend              */
    uint64_t activation_bytes; /* per-batch buffers, sized at open            */
    uint64_t workspace_bytes;  /* GEMM workspace, tables                      */
    uint64_t device_total;     /* GPU memory in all (0 on the CPU)            */
    uint64_t device_used;      /* GPU memory in use now, all processes        */
    int64_t attention_blocks;  /* CUDA plan (cuda, twin): attention blocks per
                                  layer in the last batch, one per (sequence,
                                  64-query block, head); 0 on the CPU        */
} eq_info;

/* Fills *info. eq_engine must have been opened with weights. */
void eq_get_info(const eq_engine *e, eq_info *info);

/* Measures the dense bf16 GEMM rate of the engine's device through the same
 * GEMM path the forward pass uses (cuBLASLt, fp32 accumulation), on an
 * n x n x n product of random data, median of `reps` timed runs after
 * warm-up. Returns TFLOP/s, or -1 with a message (CPU backends, errors). */
double eq_measure_gemm_tflops(eq_engine *e, int n, int reps, char *err, size_t errlen);

#endif
