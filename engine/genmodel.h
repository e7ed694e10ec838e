/* genmodel.h - write a random-weight Qwen3 checkpoint in the Hugging Face
 * layout of the Qwen3-Embedding repos (for tests, benchmarks and CI without
 * downloading real weights).
 *
 * Output directory:
 *   config.json             Qwen3ForCausalLM / qwen3, every field transformers'
 *                           Qwen3Config reads, torch_dtype bfloat16
 *   tokenizer.json          the given real Qwen3 tokenizer.json with the
 *                           embedding repos' TemplateProcessing post-processor
 *                           (appends <|endoftext|>)
 *   tokenizer_config.json   copied from beside the source tokenizer.json if
 *                           present, with "model_max_length": 32768
 *   model.safetensors       when the weights fit in one shard, else
 *   model-0000K-of-0000N.safetensors + model.safetensors.index.json
 *                           (shards of at most 5e9 bytes, as HF cuts them)
 *
 * Presets: tiny | 0.6b | 4b | 8b (genmodel_preset). Tensor names carry no
 * `model.` prefix, no lm_head (the embedding repos' layout).
 *
 * Values are a pure function of (seed, tensor name without the optional
 * prefix, element index): the same seed gives byte-identical files whatever
 * the sharding or thread count.
 *   embed_tokens     ~N(0, 1)
 *   linear weights   ~N(0, 1/in_features)   (keeps activations O(1))
 *   norm weights     ~U(0.7, 1.3)           (a missing multiply shows)
 * Normals are Irwin-Hall(4) approximations from a counter-based splitmix64.
 * Generation is OpenMP-parallel and streamed in chunks (<= 64 MB in memory).
 *
 * Thread safety: call from one thread; it uses OpenMP internally.
 */
#ifndef EQ_GENMODEL_H
#define EQ_GENMODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "model.h"

#define GENMODEL_MAX_SHARD_BYTES 5000000000ull /* HF's default "5GB" */

typedef struct {
    /* Source tokenizer.json. NULL: $EMBEDQ_TOKENIZER_JSON, else the
     * build-time EMBEDQ_DEFAULT_TOKENIZER_JSON. "": write no tokenizer. */
    const char *tokenizer_json;
    /* Max bytes per shard. 0: $EMBEDQ_GENMODEL_MAX_SHARD_BYTES, else
     * GENMODEL_MAX_SHARD_BYTES. A tensor larger than this gets a shard of
     * its own. */
    uint64_t max_shard_bytes;
    eq_dtype dtype;          /* weights dtype (config torch_dtype follows) */
    const char *name_prefix; /* prepended to every tensor name, e.g.
                                "model."; NULL = none                     */
    bool lm_head;            /* also write lm_head.weight (vocab, hidden) */
} genmodel_opts;

#define GENMODEL_OPTS_INIT                                                                         \
    {                                                                                              \
        NULL, 0, EQ_BF16, NULL, false                                                              \
    }

/* Fills *cfg for a preset name (tiny, 0.6b, 4b, 8b). Returns 0, or -1 with
 * a message listing the presets. */
int genmodel_preset(const char *preset, qw_config *cfg, char *err, size_t errlen);

/* Writes the preset's checkpoint into out_dir (created if missing; files of
 * the same names are overwritten). tokenizer_json as in genmodel_opts.
 * Returns 0, or -1 with a message naming the file. */
int genmodel_write(const char *preset, const char *out_dir, uint64_t seed,
                   const char *tokenizer_json, char *err, size_t errlen);

/* Same for any config, with options (opts NULL = GENMODEL_OPTS_INIT). */
int genmodel_write_cfg(const qw_config *cfg, const char *out_dir, uint64_t seed,
                       const genmodel_opts *opts, char *err, size_t errlen);

#endif
