/* engine.c - the engine API (engine.h): ties the config, the tokenizer, the
 * checkpoint and a backend together, and validates every batch before a
 * backend sees it. */
#include "engine.h"

#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>

#include "cpu_backend.h"
#include "tokenizer.h"

#define DEFAULT_MAX_SEQ_LEN  8192
#define DEFAULT_BATCH_TOKENS 16384

struct eq_engine {
    qw_config cfg;
    tok_tokenizer *tok;
    qw_model *model;  /* NULL when tokenizer_only                       */
    cpu_backend *cpu; /* the backend (CUDA arrives with kernels/)        */
    int max_seq_len;
    int max_batch_tokens; /* the largest batch eq_embed accepts          */
    int *dims;            /* (max_batch_tokens) per-sequence dims scratch */
};

int eq_open(const char *model_dir, const eq_options *opt, eq_engine **out, char *err, size_t errlen)
{
    eq_options o = {0};
    if (opt) o = *opt;
    *out = NULL;
    if (o.device && strcmp(o.device, "cpu") != 0) {
        if (!strcmp(o.device, "cuda"))
            return eq_err(err, errlen,
                          "device 'cuda': this build has no CUDA backend yet; use --device cpu");
        return eq_err(err, errlen, "device '%s': unknown (expected cpu or cuda)", o.device);
    }
    if (o.max_seq_len < 0 || o.max_batch_tokens < 0)
        return eq_err(err, errlen, "max_seq_len and max_batch_tokens must be >= 0");

    eq_engine *e = calloc(1, sizeof *e);
    if (!e) return eq_err(err, errlen, "out of memory");
    char path[PATH_MAX];

    snprintf(path, sizeof path, "%s/config.json", model_dir);
    if (qw_config_load(path, &e->cfg, err, errlen) != 0) goto fail;

    snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
    e->tok = tok_load(path, err, errlen);
    if (!e->tok) goto fail;
    tok_set_vocab_rows(e->tok, e->cfg.vocab_rows);
#ifdef __GLIBC__
    /* Parsing tokenizer.json peaks near 75 MB of temporary JSON tree that
     * glibc would otherwise keep; hand it back. */
    malloc_trim(0);
#endif

    e->max_seq_len = o.max_seq_len ? o.max_seq_len : DEFAULT_MAX_SEQ_LEN;
    if (e->max_seq_len > e->cfg.max_pos) e->max_seq_len = e->cfg.max_pos;
    if (e->max_seq_len < 1) {
        eq_err(err, errlen, "max sequence length must be >= 1");
        goto fail;
    }
    int budget = o.max_batch_tokens ? o.max_batch_tokens : DEFAULT_BATCH_TOKENS;
    /* One sequence of max_seq_len must always fit in a batch. */
    e->max_batch_tokens = budget > e->max_seq_len ? budget : e->max_seq_len;

    if (!o.tokenizer_only) {
        if (qw_model_load(model_dir, &e->model, err, errlen) != 0) goto fail;
        e->dims = malloc(sizeof(int) * (size_t)e->max_batch_tokens);
        if (!e->dims) {
            eq_err(err, errlen, "out of memory");
            goto fail;
        }
        e->cpu =
            cpu_backend_new(e->model, e->max_batch_tokens, e->max_seq_len, o.threads, err, errlen);
        if (!e->cpu) goto fail;
    }
    *out = e;
    return 0;
fail:
    eq_close(e);
    return -1;
}

void eq_close(eq_engine *e)
{
    if (!e) return;
    cpu_backend_free(e->cpu);
    qw_model_free(e->model);
    tok_free(e->tok);
    free(e->dims);
    free(e);
}

const qw_config *eq_config(const eq_engine *e)
{
    return &e->cfg;
}
int eq_max_seq_len(const eq_engine *e)
{
    return e->max_seq_len;
}
int eq_max_batch_tokens(const eq_engine *e)
{
    return e->max_batch_tokens;
}

int eq_encode(eq_engine *e, const char *text, size_t len, const char *instruction, size_t ilen,
              int32_t **ids, bool *truncated, char *err, size_t errlen)
{
    return tok_encode(e->tok, text, len, instruction, ilen, e->max_seq_len, ids, truncated, err,
                      errlen);
}

int eq_embed(eq_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int n_seqs,
             const int *dims, float *out, char *err, size_t errlen)
{
    if (!e->cpu) return eq_err(err, errlen, "engine opened tokenizer-only: no weights loaded");
    if (n_seqs < 1) return eq_err(err, errlen, "empty batch");
    if (cu_seqlens[0] != 0) return eq_err(err, errlen, "cu_seqlens[0] must be 0");
    const int hidden = e->cfg.hidden;
    for (int i = 0; i < n_seqs; i++) {
        int len = cu_seqlens[i + 1] - cu_seqlens[i];
        if (len < 1 || len > e->max_seq_len)
            return eq_err(err, errlen, "sequence %d: length %d outside 1..%d", i, len,
                          e->max_seq_len);
        int d = dims ? dims[i] : 0;
        if (d != 0 && (d < 32 || d > hidden))
            return eq_err(err, errlen, "sequence %d: dimensions %d outside 32..%d", i, d, hidden);
    }
    int total = cu_seqlens[n_seqs];
    if (total > e->max_batch_tokens)
        return eq_err(err, errlen, "batch of %d tokens exceeds the budget of %d", total,
                      e->max_batch_tokens);
    for (int t = 0; t < total; t++)
        if (ids[t] < 0 || ids[t] >= e->cfg.vocab_rows)
            return eq_err(err, errlen, "token id %d at position %d outside the table (0..%d)",
                          ids[t], t, e->cfg.vocab_rows - 1);
    /* n_seqs <= total <= max_batch_tokens: the dims scratch always fits. */
    for (int i = 0; i < n_seqs; i++)
        e->dims[i] = (dims && dims[i]) ? dims[i] : hidden;
    /* CPU backend failures (e.g. a non-finite hidden state) fail this batch
     * only; the backend stays usable. */
    return cpu_backend_embed(e->cpu, ids, cu_seqlens, n_seqs, e->dims, out, err, errlen);
}
