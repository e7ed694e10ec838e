/* model.h - Qwen3 checkpoint: config.json + (sharded) safetensors, mmap'd.
 *
 * model_load() reads config.json, opens model.safetensors or the shards named
 * by model.safetensors.index.json, maps them read-only, and checks every
 * tensor the forward pass needs: present once, dtype BF16/F16/F32, shape as
 * the config implies. A `model.` name prefix is accepted; `lm_head.*` is
 * ignored. Every failure is one message naming the file and the tensor.
 *
 * Weights stay in the mapped files: a qw_weight points into the mapping and
 * is valid until model_free(). Linear weights are row-major
 * [out_features, in_features] (y = x W^T), as Hugging Face stores them.
 *
 * Thread safety: a loaded model is read-only and may be shared by threads.
 */
#ifndef EQ_MODEL_H
#define EQ_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

typedef struct {
    int hidden;       /* hidden_size                                    */
    int n_layers;     /* num_hidden_layers                              */
    int n_heads;      /* num_attention_heads                            */
    int n_kv_heads;   /* num_key_value_heads                            */
    int head_dim;     /* head_dim (q/k/v per head)                      */
    int intermediate; /* intermediate_size                              */
    int vocab_rows;   /* vocab_size: rows of embed_tokens               */
    int max_pos;      /* max_position_embeddings                        */
    float rms_eps;    /* rms_norm_eps                                   */
    float rope_theta; /* rope_theta                                     */
    bool tie_word_embeddings;
} qw_config;

typedef struct {
    const void *data; /* into the mmap'd file; NULL if absent            */
    eq_dtype dtype;
    int64_t rows; /* out_features (or length for 1-D tensors)        */
    int64_t cols; /* in_features (1 for 1-D tensors)                 */
} qw_weight;

typedef struct {
    qw_weight attn_norm; /* (hidden)                                     */
    qw_weight q;         /* (n_heads*head_dim, hidden)                   */
    qw_weight k;         /* (n_kv_heads*head_dim, hidden)                */
    qw_weight v;         /* (n_kv_heads*head_dim, hidden)                */
    qw_weight o;         /* (hidden, n_heads*head_dim)                   */
    qw_weight q_norm;    /* (head_dim)                                   */
    qw_weight k_norm;    /* (head_dim)                                   */
    qw_weight post_norm; /* (hidden)                                     */
    qw_weight gate;      /* (intermediate, hidden)                       */
    qw_weight up;        /* (intermediate, hidden)                       */
    qw_weight down;      /* (hidden, intermediate)                       */
} qw_layer;

struct st_file; /* safetensors.h */

typedef struct {
    qw_config cfg;
    qw_weight embed;      /* (vocab_rows, hidden)                        */
    qw_weight final_norm; /* (hidden)                                    */
    qw_layer *layers;     /* n_layers entries                            */
    uint64_t n_params;    /* sum of element counts of the tensors used   */
    struct st_file *files;
    int n_files;
} qw_model;

/* Parses config.json at path into cfg. Missing optional fields take the
 * Qwen3 defaults (head_dim = hidden/heads, eps 1e-6, theta 1e6). Returns 0,
 * or -1 with a message naming the file and the field. */
int qw_config_load(const char *path, qw_config *cfg, char *err, size_t errlen);

/* Loads the checkpoint in dir. Returns 0 and *out (free with qw_model_free),
 * or -1 with one message naming the file and the tensor. */
int qw_model_load(const char *dir, qw_model **out, char *err, size_t errlen);
void qw_model_free(qw_model *m);

/* Parameter count the config implies: the element counts of every tensor
 * the forward pass uses (embed_tokens, all layers, final norm; no lm_head).
 * Equals qw_model.n_params of a checkpoint that loads with this config
 * (595,776,512 / 4,021,774,336 / 7,567,295,488 for 0.6B / 4B / 8B). */
uint64_t qw_config_n_params(const qw_config *cfg);

#endif
