/* engine.c - the engine API (engine.h): ties the config, the tokenizer, the
 * checkpoint and a backend together, and validates every batch before a
 * backend sees it. */
#include "engine.h"

#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cpu_backend.h"
#include "gpu_backend.h"
#include "tokenizer.h"

#define DEFAULT_MAX_SEQ_LEN  8192
#define DEFAULT_BATCH_TOKENS 16384

struct eq_engine {
    qw_config cfg;
    tok_tokenizer *tok;
    qw_model *model;  /* NULL when tokenizer_only                       */
    cpu_backend *cpu; /* one of the two backends, NULL when tokenizer_only */
    gpu_backend *gpu; /* CUDA, or its plan on the CPU twins ("twin")       */
    bool emu;         /* gpu is the emulated build (gpu_backend_emu_*)     */
    int threads;      /* CPU backend threads (0 = all cores)               */
    int max_seq_len;
    int max_batch_tokens; /* the largest batch eq_embed accepts          */
    int *dims;            /* (max_batch_tokens) per-sequence dims scratch */
};

int eq_open(const char *model_dir, const eq_options *opt, eq_engine **out, char *err, size_t errlen)
{
    eq_options o = {0};
    if (opt) o = *opt;
    *out = NULL;
    /* Backend: cuda when asked, or by default when a GPU is visible. */
    enum { DEV_CPU, DEV_CUDA, DEV_TWIN, DEV_EMU } dev;
    cpu_precision prec = CPU_PRECISION_AUTO;
    if (!o.device || !strcmp(o.device, "auto"))
        dev = gpu_device_count() > 0 ? DEV_CUDA : DEV_CPU;
    else if (!strcmp(o.device, "cpu"))
        dev = DEV_CPU;
    else if (!strcmp(o.device, "cpu-fp32"))
        dev = DEV_CPU, prec = CPU_PRECISION_FP32;
    else if (!strcmp(o.device, "cpu-bf16"))
        dev = DEV_CPU, prec = CPU_PRECISION_BF16;
    else if (!strcmp(o.device, "cuda"))
        dev = DEV_CUDA;
    else if (!strcmp(o.device, "twin"))
        dev = DEV_TWIN;
    else if (!strcmp(o.device, "emu"))
        dev = DEV_EMU;
    else
        return eq_err(err, errlen,
                      "device '%s': unknown (expected cuda, cpu, cpu-fp32, cpu-bf16, twin, emu or "
                      "auto)",
                      o.device);
#ifndef EMBEDQ_HAVE_EMU
    if (dev == DEV_EMU)
        return eq_err(err, errlen,
                      "device 'emu': this embedq was built without the kernel emulator "
                      "(EMBEDQ_EMU=OFF); use --device twin or cpu");
#endif
    if (dev == DEV_CUDA && !gpu_backend_compiled())
        return eq_err(err, errlen,
                      "device 'cuda': this embedq was built without the CUDA backend (no CUDA "
                      "toolkit at build time); use --device cpu");
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
        e->threads = o.threads;
        if (dev == DEV_CPU) {
            e->cpu = cpu_backend_new(e->model, e->max_batch_tokens, e->max_seq_len, o.threads, prec,
                                     err, errlen);
            if (!e->cpu) goto fail;
        } else {
#ifdef EMBEDQ_HAVE_EMU
            e->emu = dev == DEV_EMU;
            if (e->emu)
                e->gpu = gpu_backend_emu_new(e->model, e->max_batch_tokens, e->max_seq_len, false,
                                             err, errlen);
            else
#endif
                e->gpu = gpu_backend_new(e->model, e->max_batch_tokens, e->max_seq_len,
                                         dev == DEV_TWIN, err, errlen);
            if (!e->gpu) goto fail;
            /* The GPU backend holds its own copy of the weights: unmap the
             * checkpoint (and let the page cache go). */
            qw_model_free(e->model);
            e->model = NULL;
        }
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
#ifdef EMBEDQ_HAVE_EMU
    if (e->emu)
        gpu_backend_emu_free(e->gpu);
    else
#endif
        gpu_backend_free(e->gpu);
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
int32_t eq_eos_id(const eq_engine *e)
{
    return tok_eos_id(e->tok);
}

int eq_encode_ex(eq_engine *e, const char *text, size_t len, const char *instruction, size_t ilen,
                 int32_t **ids, eq_encode_info *info, char *err, size_t errlen)
{
    *ids = NULL;
    info->truncated = false;
    info->instruction_tokens = 0;
    if (instruction) {
        /* The template alone, cut at max_seq_len like the real input (the
         * tokenizer stops early there, so a huge instruction costs at most
         * max_seq_len tokens of work here). */
        int32_t *pids = NULL;
        bool cut = false;
        int np =
            tok_encode(e->tok, "", 0, instruction, ilen, e->max_seq_len, &pids, &cut, err, errlen);
        free(pids);
        if (np < 0) return -1;
        info->instruction_tokens = np - 1; /* without the final <|endoftext|> */
        const int share = e->max_seq_len / 2;
        if (cut || info->instruction_tokens > share) {
            eq_err(err, errlen,
                   "instruction too long: its query template takes %s%d tokens, more than half "
                   "of the %d-token limit (%d)",
                   cut ? "at least " : "", info->instruction_tokens, e->max_seq_len, share);
            return EQ_ENCODE_INSTRUCTION_TOO_LONG;
        }
    }
    return tok_encode(e->tok, text, len, instruction, ilen, e->max_seq_len, ids, &info->truncated,
                      err, errlen);
}

int eq_encode(eq_engine *e, const char *text, size_t len, const char *instruction, size_t ilen,
              int32_t **ids, bool *truncated, char *err, size_t errlen)
{
    eq_encode_info info;
    int n = eq_encode_ex(e, text, len, instruction, ilen, ids, &info, err, errlen);
    *truncated = info.truncated;
    return n;
}

int eq_embed(eq_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int n_seqs,
             const int *dims, float *out, char *err, size_t errlen)
{
    if (!e->cpu && !e->gpu)
        return eq_err(err, errlen, "engine opened tokenizer-only: no weights loaded");
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
        /* A non-finite hidden state fails this batch only; a device error stops
         * the CUDA backend for good (every later batch gets the error). */
#ifdef EMBEDQ_HAVE_EMU
    if (e->emu)
        return gpu_backend_emu_embed(e->gpu, ids, cu_seqlens, n_seqs, e->dims, out, err, errlen);
#endif
    if (e->gpu)
        return gpu_backend_embed(e->gpu, ids, cu_seqlens, n_seqs, e->dims, out, err, errlen);
    return cpu_backend_embed(e->cpu, ids, cu_seqlens, n_seqs, e->dims, out, err, errlen);
}

void eq_get_info(const eq_engine *e, eq_info *info)
{
#ifdef EMBEDQ_HAVE_EMU
    if (e->emu) {
        gpu_backend_emu_info(e->gpu, info);
        return;
    }
#endif
    if (e->gpu) {
        gpu_backend_info(e->gpu, info);
        return;
    }
    memset(info, 0, sizeof *info);
    snprintf(info->backend, sizeof info->backend, "cpu");
    int threads = e->threads > 0 ? e->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (e->cpu)
        snprintf(info->device_name, sizeof info->device_name, "CPU (%d threads, %s)", threads,
                 cpu_backend_precision(e->cpu));
    else
        snprintf(info->device_name, sizeof info->device_name, "CPU (%d threads)", threads);
    info->device_index = -1;
    if (e->cpu) info->activation_bytes = cpu_backend_bytes(e->cpu);
    if (e->model) {
        /* The CPU backend reads the mapped checkpoint in place. */
        info->weight_bytes = e->model->n_params * eq_dtype_size(e->model->embed.dtype);
    }
}

double eq_measure_gemm_tflops(eq_engine *e, int n, int reps, char *err, size_t errlen)
{
    if (!e->gpu || e->emu || !gpu_backend_compiled())
        return eq_err(err, errlen, "the GEMM rate is measured on the cuda device only");
    return gpu_backend_gemm_tflops(e->gpu, n, reps, err, errlen);
}

const char *eq_fatal_error(const eq_engine *e)
{
#ifdef EMBEDQ_HAVE_EMU
    if (e->emu) return gpu_backend_emu_fatal(e->gpu);
#endif
    return e->gpu ? gpu_backend_fatal(e->gpu) : NULL;
}
