/* cmd_bench.c - `embedq bench`: throughput, latency, memory and MFU of the
 * engine on fixed-length and mixed-length (real text) workloads.
 *
 *   embedq bench --preset 4b --gen-dir /tmp/m4b --json out.jsonl
 *
 * The model is a checkpoint directory (--model) or a random-weight one that
 * genmodel writes (--preset) into --gen-dir (kept, and reused by the next
 * run if its config matches the preset and it loads) or into a temporary
 * directory removed at exit (unless --keep).
 *
 * Workloads:
 *   lenN  packed batches of floor(budget / N) sequences of N random ids (from
 *         the base vocabulary, no special ids, each ending in <|endoftext|>);
 *         4 distinct batches rotate so no run reuses the previous inputs.
 *   mix   the texts of a file (JSONL with "text", or plain text with
 *         blank-line-separated paragraphs) tokenized with eq_encode and packed
 *         in file order into batches of at most --batch-tokens tokens.
 * Each workload: --warmup batches, then --iters timed batches (wall clock
 * around each eq_embed call, which returns when the vectors are on the
 * host). Figures: tokens/s and sequences/s (totals over the timed time),
 * median and p99 batch latency, model FLOPs (see docs/benchmarks.md), MFU
 * against the GEMM rate measured once per run (eq_measure_gemm_tflops), and
 * memory (eq_get_info after the workload).
 *
 * Output: a table on stdout, a row printed as each workload ends; with
 * --json FILE one JSON object per workload per line (JSONL), flushed as it
 * ends. Diagnostics go to stderr.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "engine.h"
#include "genmodel.h"

#ifndef EMBEDQ_BENCH_MIX
#define EMBEDQ_BENCH_MIX ""
#endif

#define ENDOFTEXT     151643 /* <|endoftext|>: every Qwen3 input ends with it */
#define BASE_VOCAB    151643 /* ids 0..151642 are BPE tokens; above: special */
#define MAX_LENGTHS   16
#define ROTATE_FIXED  4     /* distinct batches per fixed-length workload     */
#define BENCH_MAX_SEQ 32768 /* the longest sequence bench asks the engine for */

typedef struct {
    int32_t *ids; /* (n_tokens) packed ids                                */
    int32_t *cu;  /* (n_seqs + 1) cu_seqlens                              */
    int n_seqs;   /* sequences in the batch                               */
    int n_tokens; /* cu[n_seqs]                                           */
    double flops; /* model FLOPs of the batch (flops_seq summed)          */
} bench_batch;

typedef struct {
    char name[32];  /* "len512", "mix"                                  */
    int seq_len;    /* fixed length, 0 for the mix                      */
    bench_batch *b; /* (n_batches)                                      */
    int n_batches;
} workload;

typedef struct {
    int iters;              /* timed batches                               */
    double seconds;         /* sum of timed batch times                    */
    long long tokens, seqs; /* over the timed batches                      */
    double flops;           /* over the timed batches                      */
    double med_ms, p99_ms, max_ms;
} bench_result;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- model FLOPs (docs/benchmarks.md "FLOPs") ---- */

/* Parameters of the matrix products of all layers (the embedding lookup and
 * the norms do no multiply-adds worth counting). */
static double linear_params(const qw_config *c)
{
    const double h = c->hidden, q = (double)c->n_heads * c->head_dim,
                 kv = (double)c->n_kv_heads * c->head_dim, f = c->intermediate;
    return (double)c->n_layers * (h * q + 2.0 * h * kv + q * h + 3.0 * h * f);
}

/* One sequence of n tokens: 2 FLOPs per linear parameter per token, plus
 * causal attention: QK^T and PV are 2 * head_dim FLOPs each per (query, key)
 * pair and head, over the n(n+1)/2 pairs a causal mask keeps. */
static double flops_seq(const qw_config *c, double n)
{
    return 2.0 * linear_params(c) * n +
           4.0 * c->n_layers * c->n_heads * c->head_dim * (n * (n + 1.0) / 2.0);
}

/* ---- the generated checkpoint directory ---- */

static bool same_cfg(const qw_config *a, const qw_config *b)
{
    return a->hidden == b->hidden && a->n_layers == b->n_layers && a->n_heads == b->n_heads &&
           a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim &&
           a->intermediate == b->intermediate && a->vocab_rows == b->vocab_rows &&
           a->max_pos == b->max_pos && a->tie_word_embeddings == b->tie_word_embeddings;
}

/* True when dir holds a complete checkpoint of the preset's shapes: its
 * config matches, tokenizer.json exists, and the weights load (the loader
 * checks every tensor's presence, shape and extent, so a generation cut
 * short does not pass). */
static bool reusable(const char *dir, const qw_config *want)
{
    char path[4096], err[EQ_ERRLEN];
    qw_config have;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (access(path, R_OK) != 0 || qw_config_load(path, &have, err, sizeof err) != 0) return false;
    if (!same_cfg(&have, want)) return false;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (access(path, R_OK) != 0) return false;
    qw_model *m = NULL;
    if (qw_model_load(dir, &m, err, sizeof err) != 0) return false;
    qw_model_free(m);
    return true;
}

/* Removes the temporary checkpoint directory (flat: genmodel writes files
 * only). */
static void remove_flat_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        char path[4096];
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            unlink(path);
        }
        closedir(d);
    }
    if (rmdir(dir) != 0) fprintf(stderr, "embedq bench: could not remove %s\n", dir);
}

/* ---- workloads ---- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void free_workload(workload *w)
{
    for (int i = 0; i < w->n_batches; i++) {
        free(w->b[i].ids);
        free(w->b[i].cu);
    }
    free(w->b);
    memset(w, 0, sizeof *w);
}

/* ROTATE_FIXED batches of k = max(1, budget / len) sequences of len ids. */
static int make_fixed(workload *w, const qw_config *c, int len, int budget, uint64_t seed,
                      char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    snprintf(w->name, sizeof w->name, "len%d", len);
    w->seq_len = len;
    const int k = budget / len > 0 ? budget / len : 1;
    const uint32_t vocab = (uint32_t)(c->vocab_rows < BASE_VOCAB ? c->vocab_rows : BASE_VOCAB);
    const int32_t last = c->vocab_rows > ENDOFTEXT ? ENDOFTEXT : 0;
    w->b = calloc(ROTATE_FIXED, sizeof *w->b);
    if (!w->b) return eq_err(err, errlen, "out of memory");
    w->n_batches = ROTATE_FIXED;
    uint64_t s = seed * 0x100000001B3ull + (uint64_t)len;
    for (int bi = 0; bi < ROTATE_FIXED; bi++) {
        bench_batch *b = &w->b[bi];
        b->n_seqs = k;
        b->n_tokens = k * len;
        b->ids = malloc(sizeof(int32_t) * (size_t)b->n_tokens);
        b->cu = malloc(sizeof(int32_t) * (size_t)(k + 1));
        if (!b->ids || !b->cu) return eq_err(err, errlen, "out of memory");
        for (int i = 0; i <= k; i++)
            b->cu[i] = i * len;
        for (int i = 0; i < k; i++) {
            for (int t = 0; t < len - 1; t++)
                b->ids[i * len + t] = (int32_t)(splitmix64(&s) % vocab);
            b->ids[i * len + len - 1] = last;
        }
        b->flops = k * flops_seq(c, len);
    }
    return 0;
}

/* Reads the mix file's texts: JSONL objects with a "text" string (when the
 * first non-blank byte is '{'), else plain text whose blank-line-separated
 * paragraphs are the texts. Calls fn(text, len, ctx) for each; returns the
 * number of texts or -1. */
typedef int (*text_fn)(const char *text, size_t len, void *ctx, char *err, size_t errlen);

static int read_mix(const char *path, text_fn fn, void *ctx, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) return eq_err(err, errlen, "%s: %s", path, strerror(errno));
    char *line = NULL, *para = NULL;
    size_t cap = 0, plen = 0, pcap = 0;
    long n;
    int count = 0, rc = 0, mode = -1; /* -1 unknown, 1 JSONL, 0 text */
    long lineno = 0;
    while (rc == 0 && (n = jsonl_read_line(f, &line, &cap)) >= 0) {
        lineno++;
        size_t sp = strspn(line, " \t");
        if (mode < 0 && line[sp]) mode = line[sp] == '{';
        if (mode == 1) {
            if (!line[sp]) continue;
            cJSON *j = cJSON_ParseWithLength(line, (size_t)n);
            cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, "text") : NULL;
            if (!cJSON_IsString(t)) {
                rc = eq_err(err, errlen, "%s:%ld: expected a JSON object with a \"text\" string",
                            path, lineno);
            } else {
                rc = fn(t->valuestring, strlen(t->valuestring), ctx, err, errlen);
                count++;
            }
            cJSON_Delete(j);
            continue;
        }
        if (!line[sp]) { /* a blank line ends a paragraph */
            if (plen) {
                rc = fn(para, plen, ctx, err, errlen);
                count++;
            }
            plen = 0;
            continue;
        }
        if (plen + (size_t)n + 2 > pcap) {
            pcap = (plen + (size_t)n + 2) * 2;
            char *np = realloc(para, pcap);
            if (!np) {
                rc = eq_err(err, errlen, "out of memory");
                break;
            }
            para = np;
        }
        if (plen) para[plen++] = '\n';
        memcpy(para + plen, line, (size_t)n);
        plen += (size_t)n;
        para[plen] = 0;
    }
    if (rc == 0 && mode == 0 && plen) {
        rc = fn(para, plen, ctx, err, errlen);
        count++;
    }
    free(line);
    free(para);
    fclose(f);
    if (rc == 0 && count == 0) rc = eq_err(err, errlen, "%s: no texts", path);
    return rc ? -1 : count;
}

typedef struct {
    eq_engine *e;
    int32_t **seq; /* (n) tokenized sequences */
    int *len;
    int n, cap;
    int truncated;
} mix_ctx;

static int mix_add(const char *text, size_t len, void *vctx, char *err, size_t errlen)
{
    mix_ctx *m = vctx;
    if (m->n == m->cap) {
        int cap = m->cap ? m->cap * 2 : 1024;
        int32_t **s = realloc(m->seq, sizeof *s * (size_t)cap);
        if (s) m->seq = s;
        int *l = realloc(m->len, sizeof *l * (size_t)cap);
        if (l) m->len = l;
        if (!s || !l) return eq_err(err, errlen, "out of memory");
        m->cap = cap;
    }
    bool trunc = false;
    int n = eq_encode(m->e, text, len, NULL, 0, &m->seq[m->n], &trunc, err, errlen);
    if (n < 0) return -1;
    m->len[m->n++] = n;
    m->truncated += trunc;
    return 0;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int make_mix(workload *w, eq_engine *e, const char *path, int budget, char *err,
                    size_t errlen)
{
    memset(w, 0, sizeof *w);
    snprintf(w->name, sizeof w->name, "mix");
    mix_ctx m = {.e = e};
    int rc = read_mix(path, mix_add, &m, err, errlen) < 0 ? -1 : 0;
    const qw_config *c = eq_config(e);
    long long total = 0;
    for (int i = 0; rc == 0 && i < m.n; i++)
        total += m.len[i];
    /* Greedy packing in file order: a batch closes when the next sequence
     * would overflow the budget. */
    int start = 0;
    while (rc == 0 && start < m.n) {
        int end = start, tok = 0;
        while (end < m.n && (end == start || tok + m.len[end] <= budget))
            tok += m.len[end++];
        bench_batch *nb = realloc(w->b, sizeof *nb * (size_t)(w->n_batches + 1));
        if (!nb) {
            rc = eq_err(err, errlen, "out of memory");
            break;
        }
        w->b = nb;
        bench_batch *b = &w->b[w->n_batches++];
        memset(b, 0, sizeof *b);
        b->n_seqs = end - start;
        b->n_tokens = tok;
        b->ids = malloc(sizeof(int32_t) * (size_t)tok);
        b->cu = malloc(sizeof(int32_t) * (size_t)(b->n_seqs + 1));
        if (!b->ids || !b->cu) {
            rc = eq_err(err, errlen, "out of memory");
            break;
        }
        b->cu[0] = 0;
        for (int i = start; i < end; i++) {
            int k = i - start;
            memcpy(b->ids + b->cu[k], m.seq[i], sizeof(int32_t) * (size_t)m.len[i]);
            b->cu[k + 1] = b->cu[k] + m.len[i];
            b->flops += flops_seq(c, m.len[i]);
        }
        start = end;
    }
    if (rc == 0) {
        int *s = malloc(sizeof(int) * (size_t)m.n);
        if (s) {
            memcpy(s, m.len, sizeof(int) * (size_t)m.n);
            qsort(s, (size_t)m.n, sizeof(int), cmp_int);
            long long sum = 0, below[5] = {0};
            static const int edges[5] = {128, 256, 512, 1024, 2048};
            for (int i = 0; i < m.n; i++) {
                sum += s[i];
                for (int k = 0; k < 5; k++)
                    if (s[i] <= edges[k]) below[k]++;
            }
#define Q(p) s[(int)((double)(p) * (m.n - 1) + 0.5)]
            fprintf(stderr,
                    "mix %s: %d texts, %lld tokens (%d truncated); tokens per text: min %d, p10 "
                    "%d, p50 %d, mean %.0f, p90 %d, p99 %d, max %d\n",
                    path, m.n, total, m.truncated, s[0], Q(0.10), Q(0.50), (double)sum / m.n,
                    Q(0.90), Q(0.99), s[m.n - 1]);
#undef Q
            fprintf(stderr, "mix %s: share of texts <= 128/256/512/1024/2048 tokens: ", path);
            for (int k = 0; k < 5; k++)
                fprintf(stderr, "%s%.0f%%", k ? "/" : "", 100.0 * (double)below[k] / m.n);
            fprintf(stderr,
                    "; packed into %d batches of <= %d tokens (mean %.0f tokens, %.1f "
                    "texts)\n",
                    w->n_batches, budget, (double)total / w->n_batches, (double)m.n / w->n_batches);
            free(s);
        }
    }
    for (int i = 0; i < m.n; i++)
        free(m.seq[i]);
    free(m.seq);
    free(m.len);
    if (rc != 0) free_workload(w);
    return rc;
}

/* ---- running ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int run_workload(eq_engine *e, const workload *w, int warmup, int iters, float *vecs,
                        bench_result *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < warmup; i++) {
        const bench_batch *b = &w->b[i % w->n_batches];
        if (eq_embed(e, b->ids, b->cu, b->n_seqs, NULL, vecs, err, errlen) != 0) return -1;
    }
    double *t = malloc(sizeof(double) * (size_t)iters);
    if (!t) return eq_err(err, errlen, "out of memory");
    for (int i = 0; i < iters; i++) {
        /* The mix continues after its warm-up batches; fixed lengths rotate. */
        const bench_batch *b = &w->b[(warmup + i) % w->n_batches];
        double t0 = now_s();
        int rc = eq_embed(e, b->ids, b->cu, b->n_seqs, NULL, vecs, err, errlen);
        t[i] = now_s() - t0;
        if (rc != 0) {
            free(t);
            return -1;
        }
        r->seconds += t[i];
        r->tokens += b->n_tokens;
        r->seqs += b->n_seqs;
        r->flops += b->flops;
    }
    r->iters = iters;
    qsort(t, (size_t)iters, sizeof(double), cmp_double);
    r->med_ms = 1e3 * (iters % 2 ? t[iters / 2] : 0.5 * (t[iters / 2 - 1] + t[iters / 2]));
    /* Nearest rank: the smallest time >= 99% of the timed batches. */
    int k = (int)(0.99 * iters + 0.999999);
    r->p99_ms = 1e3 * t[(k < 1 ? 1 : k) - 1];
    r->max_ms = 1e3 * t[iters - 1];
    free(t);
    return 0;
}

static void fmt_bytes(char *b, size_t n, uint64_t v)
{
    if (v >= (1ull << 30))
        snprintf(b, n, "%.2f GiB", (double)v / (1ull << 30));
    else if (v >= (1ull << 20))
        snprintf(b, n, "%.1f MiB", (double)v / (1ull << 20));
    else
        snprintf(b, n, "%.1f KiB", (double)v / 1024.0);
}

static void print_header(void)
{
    printf("%-9s %6s %7s %5s %12s %10s %9s %9s %9s %8s %6s %10s %9s\n", "workload", "seqs/b",
           "tok/b", "iters", "tokens/s", "seqs/s", "med ms", "p99 ms", "GFLOP/tok", "TFLOP/s",
           "MFU", "dev used", "attn blk");
}

static void print_row(const workload *w, const bench_result *r, double gemm, const eq_info *info)
{
    const double tps = r->tokens / r->seconds, tf = r->flops / r->seconds * 1e-12;
    char mfu[16] = "n/a", used[32] = "-", blk[24] = "-";
    if (gemm > 0) snprintf(mfu, sizeof mfu, "%.1f%%", 100.0 * tf / gemm);
    if (info->device_used) fmt_bytes(used, sizeof used, info->device_used);
    /* attention blocks per layer of the workload's last batch (CUDA plan) */
    if (info->attention_blocks)
        snprintf(blk, sizeof blk, "%lld", (long long)info->attention_blocks);
    printf("%-9s %6.1f %7.0f %5d %12.0f %10.1f %9.2f %9.2f %9.4g %8.3g %6s %10s %9s\n", w->name,
           (double)r->seqs / r->iters, (double)r->tokens / r->iters, r->iters, tps,
           r->seqs / r->seconds, r->med_ms, r->p99_ms, r->flops / r->tokens * 1e-9, tf, mfu, used,
           blk);
    fflush(stdout);
}

static void put_json(FILE *f, const char *model, const char *dir, const char *preset,
                     const qw_config *c, const eq_info *info, int budget, double gemm,
                     const workload *w, const bench_result *r)
{
    const double tps = r->tokens / r->seconds, tf = r->flops / r->seconds * 1e-12;
    fputs("{\"engine\": \"embedq\", \"workload\": ", f);
    json_put_string(f, w->name, strlen(w->name));
    fprintf(f, ", \"seq_len\": %d, \"model\": ", w->seq_len);
    json_put_string(f, model, strlen(model));
    fputs(", \"model_dir\": ", f);
    json_put_string(f, dir, strlen(dir));
    fputs(", \"preset\": ", f);
    if (preset)
        json_put_string(f, preset, strlen(preset));
    else
        fputs("null", f);
    fprintf(f,
            ", \"hidden\": %d, \"layers\": %d, \"linear_params\": %.0f, \"backend\": \"%s\", "
            "\"device_name\": ",
            c->hidden, c->n_layers, linear_params(c), info->backend);
    json_put_string(f, info->device_name, strlen(info->device_name));
    fprintf(f,
            ", \"batch_tokens\": %d, \"iters\": %d, \"seconds\": %.6f, \"tokens\": %lld, "
            "\"seqs\": %lld, \"tokens_per_s\": %.3f, \"seqs_per_s\": %.3f, \"batch_ms_median\": "
            "%.4f, \"batch_ms_p99\": %.4f, \"batch_ms_max\": %.4f, \"tokens_per_batch\": %.2f, "
            "\"seqs_per_batch\": %.3f, \"flops_per_token\": %.6g, \"model_tflops\": %.4f, ",
            budget, r->iters, r->seconds, r->tokens, r->seqs, tps, r->seqs / r->seconds, r->med_ms,
            r->p99_ms, r->max_ms, (double)r->tokens / r->iters, (double)r->seqs / r->iters,
            r->flops / r->tokens, tf);
    if (gemm > 0)
        fprintf(f, "\"gemm_tflops\": %.3f, \"mfu\": %.5f, ", gemm, tf / gemm);
    else
        fputs("\"gemm_tflops\": null, \"mfu\": null, ", f);
    fprintf(f,
            "\"device_used_bytes\": %" PRIu64 ", \"device_total_bytes\": %" PRIu64
            ", \"weight_bytes\": %" PRIu64 ", \"activation_bytes\": %" PRIu64
            ", \"workspace_bytes\": %" PRIu64 "}\n",
            info->device_used, info->device_total, info->weight_bytes, info->activation_bytes,
            info->workspace_bytes);
    fflush(f);
}

static int parse_lengths(const char *s, int *out, int max_n)
{
    int n = 0;
    while (*s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || end == s || v < 1 || v > BENCH_MAX_SEQ || n == max_n) return -1;
        out[n++] = (int)v;
        if (*end == ',')
            s = end + 1;
        else if (*end)
            return -1;
        else
            s = end;
    }
    return n;
}

int cmd_bench(int argc, char **argv)
{
    static const cli_command cmd = {
        "bench",
        "--model DIR | --preset tiny|0.6b|4b|8b [--seq-len N[,N...] | --mix FILE] "
        "[--batch-tokens N] [--device D] [--warmup N] [--iters N] [--json FILE] [--gen-dir DIR] "
        "[--seed N]",
        "Measures the engine: tokens/s, sequences/s, batch latency (median, p99), model\n"
        "FLOPs per token, MFU against the device's measured bf16 GEMM rate, and memory.\n"
        "Workloads: fixed lengths (packed batches of random ids) and a mix of real texts\n"
        "(JSONL \"text\" fields or blank-line-separated paragraphs, tokenized, packed\n"
        "as they come). With neither --seq-len nor --mix: lengths 128,512,2048,8192 and\n"
        "the default mix (tests/bench/mix_chunks.jsonl). --preset generates a random-\n"
        "weight checkpoint (reused from --gen-dir when its config matches).\n"
        "See docs/benchmarks.md.",
        NULL};
    const char *model = NULL, *preset = NULL, *seq_len = NULL, *mix = NULL, *json = NULL,
               *gen_dir = NULL, *device_flag = "auto", *device = NULL, *tokenizer = NULL;
    int batch_tokens = 16384, warmup = 3, iters = 0, threads = 0, max_tokens = 0, gemm_n = 8192;
    uint64_t seed = 1;
    bool keep = false;
    cli_flag flags[] = {
        {"model", CLI_STR, &model, 0, 0, "checkpoint directory"},
        {"preset", CLI_STR, &preset, 0, 0,
         "generate a random-weight checkpoint: tiny | 0.6b | 4b | 8b (instead of --model)"},
        {"seq-len", CLI_STR, &seq_len, 0, 0,
         "fixed sequence lengths, comma-separated, 1..32768 (default with no --mix: "
         "128,512,2048,8192 and the default mix)"},
        {"mix", CLI_STR, &mix, 0, 0,
         "texts to tokenize and pack: JSONL with \"text\", or plain text (paragraphs)"},
        {"batch-tokens", CLI_INT, &batch_tokens, 1, 1 << 24, "token budget of one packed batch"},
        {"device", CLI_STR, &device_flag, 0, 0, CLI_DEVICE_HELP},
        {"warmup", CLI_INT, &warmup, 0, 1000000, "untimed batches before each workload"},
        {"iters", CLI_INT, &iters, 0, 1000000,
         "timed batches per workload (0 = 20 for a fixed length, one pass for the mix)"},
        {"json", CLI_STR, &json, 0, 0, "write one JSON object per workload to this file (JSONL)"},
        {"gen-dir", CLI_STR, &gen_dir, 0, 0,
         "where --preset writes (and reuses) its checkpoint (default: a temporary directory "
         "under $TMPDIR, removed at exit)"},
        {"keep", CLI_BOOL, &keep, 0, 0, "keep the temporary checkpoint directory"},
        {"seed", CLI_U64, &seed, 0, 0, "seed of the generated weights and the random ids"},
        {"tokenizer", CLI_STR, &tokenizer, 0, 0,
         "tokenizer.json that --preset copies (default: as gen-model)"},
        {"threads", CLI_INT, &threads, 0, 1024, "CPU threads (0 = all cores)"},
        {"max-tokens", CLI_INT, &max_tokens, 0, BENCH_MAX_SEQ,
         "engine max_seq_len (0 = the longest length asked, at least 8192 with a mix)"},
        {"gemm-n", CLI_INT, &gemm_n, 0, 65536,
         "size of the n x n x n GEMM whose rate MFU divides by (0 = skip)"},
    };
    int rc = cli_parse(&cmd, flags, (int)(sizeof flags / sizeof flags[0]), argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    if (cli_device(&cmd, device_flag, &device) != 0) return 2;
    if (model && preset) {
        fprintf(stderr, "embedq bench: give --model or --preset, not both\n");
        return 2;
    }
    if (!model && !preset) return cli_missing(&cmd, "model (or --preset)");

    int lengths[MAX_LENGTHS], n_lengths = 0;
    if (seq_len) {
        n_lengths = parse_lengths(seq_len, lengths, MAX_LENGTHS);
        if (n_lengths <= 0) {
            fprintf(stderr,
                    "embedq bench: flag --seq-len: expected up to %d comma-separated integers "
                    "in 1..%d, got '%s'\n",
                    MAX_LENGTHS, BENCH_MAX_SEQ, seq_len);
            return 2;
        }
    } else if (!mix) {
        static const int def[] = {128, 512, 2048, 8192};
        n_lengths = 4;
        memcpy(lengths, def, sizeof def);
        const char *env = getenv("EMBEDQ_BENCH_MIX");
        mix = env && *env ? env : EMBEDQ_BENCH_MIX;
        if (!*mix || access(mix, R_OK) != 0) {
            fprintf(stderr,
                    "embedq bench: default mix file '%s' not found (set EMBEDQ_BENCH_MIX or "
                    "pass --mix); running the fixed lengths only\n",
                    mix);
            mix = NULL;
        }
    }
    if (mix && access(mix, R_OK) != 0) {
        fprintf(stderr, "embedq bench: flag --mix: cannot read '%s': %s\n", mix, strerror(errno));
        return 2;
    }

    char err[EQ_ERRLEN], tmpdir[4096] = "";
    const char *dir = model;
    int status = 1;
    eq_engine *e = NULL;
    FILE *jf = NULL;
    float *vecs = NULL;
    workload w = {0};

    if (preset) {
        qw_config want;
        if (genmodel_preset(preset, &want, err, sizeof err) != 0) {
            fprintf(stderr, "embedq bench: flag --preset: %s\n", err);
            return 2;
        }
        if (!gen_dir) {
            const char *t = getenv("TMPDIR");
            snprintf(tmpdir, sizeof tmpdir, "%s/embedq-bench-XXXXXX", t && *t ? t : "/tmp");
            if (!mkdtemp(tmpdir)) {
                fprintf(stderr, "embedq bench: mkdtemp %s: %s\n", tmpdir, strerror(errno));
                return 1;
            }
            dir = tmpdir;
        } else {
            dir = gen_dir;
        }
        if (gen_dir && reusable(dir, &want)) {
            fprintf(stderr, "embedq bench: reusing the %s checkpoint in %s\n", preset, dir);
        } else {
            fprintf(stderr, "embedq bench: generating a %s checkpoint (seed %" PRIu64 ") in %s\n",
                    preset, seed, dir);
            double t0 = now_s();
            if (genmodel_write(preset, dir, seed, tokenizer, err, sizeof err) != 0) {
                fprintf(stderr, "embedq bench: %s\n", err);
                goto done;
            }
            fprintf(stderr, "embedq bench: generated in %.1f s\n", now_s() - t0);
        }
    }

    /* The engine's max_seq_len: the longest fixed length, and 8192 for a
     * mix (QWEN3.md's recommended maximum; real chunks are far shorter). */
    int max_len = max_tokens;
    if (!max_len) {
        max_len = mix ? 8192 : 1;
        for (int i = 0; i < n_lengths; i++)
            if (lengths[i] > max_len) max_len = lengths[i];
    }
    eq_options opt = {.device = device,
                      .max_batch_tokens = batch_tokens,
                      .max_seq_len = max_len,
                      .threads = threads};
    double t0 = now_s();
    if (eq_open(dir, &opt, &e, err, sizeof err) != 0) {
        fprintf(stderr, "embedq bench: %s\n", err);
        goto done;
    }
    const double t_open = now_s() - t0;
    const qw_config *c = eq_config(e);
    const int budget =
        eq_max_batch_tokens(e) < batch_tokens ? eq_max_batch_tokens(e) : batch_tokens;
    for (int i = 0; i < n_lengths; i++)
        if (lengths[i] > eq_max_seq_len(e)) {
            fprintf(stderr,
                    "embedq bench: --seq-len %d is longer than this engine's max_seq_len %d "
                    "(--max-tokens, capped at max_position_embeddings)\n",
                    lengths[i], eq_max_seq_len(e));
            status = 2;
            goto done;
        }

    eq_info info;
    eq_get_info(e, &info);
    char wb[32], ab[32], sb[32], tb[32], ub[32];
    fmt_bytes(wb, sizeof wb, info.weight_bytes);
    fmt_bytes(ab, sizeof ab, info.activation_bytes);
    fmt_bytes(sb, sizeof sb, info.workspace_bytes);
    fmt_bytes(tb, sizeof tb, info.device_total);
    fmt_bytes(ub, sizeof ub, info.device_used);
    printf("model     %s%s: hidden %d, layers %d, heads %d/%d x %d, ffn %d, vocab %d; %.4g "
           "linear params\n",
           preset ? "preset " : "", preset ? preset : dir, c->hidden, c->n_layers, c->n_heads,
           c->n_kv_heads, c->head_dim, c->intermediate, c->vocab_rows, linear_params(c));
    printf("engine    backend %s, device %s; opened in %.1f s; max_seq_len %d, batch budget %d "
           "tokens\n",
           info.backend, info.device_name, t_open, eq_max_seq_len(e), budget);
    printf("memory    weights %s, activations %s, workspace %s", wb, ab, sb);
    if (info.device_total)
        printf("; device used %s of %s\n", ub, tb);
    else
        printf("\n");

    double gemm = -1;
    if (gemm_n > 0) {
        char gerr[EQ_ERRLEN] = "";
        gemm = eq_measure_gemm_tflops(e, gemm_n, 10, gerr, sizeof gerr);
        if (gemm > 0)
            printf("gemm      bf16 %d x %d x %d: %.1f TFLOP/s (the MFU denominator)\n", gemm_n,
                   gemm_n, gemm_n, gemm);
        else if (!strcmp(info.backend, "cuda"))
            printf("gemm      bf16 rate: failed (%s); MFU n/a\n", gerr);
        else
            printf("gemm      bf16 rate: n/a on %s (%s)\n", info.backend, gerr);
    }
    fflush(stdout);

    if (json && !(jf = fopen(json, "w"))) {
        fprintf(stderr, "embedq bench: flag --json: cannot write '%s': %s\n", json,
                strerror(errno));
        goto done;
    }
    /* One output row per sequence: at most one sequence per token. */
    vecs = malloc(sizeof(float) * (size_t)eq_max_batch_tokens(e) * (size_t)c->hidden);
    if (!vecs) {
        fprintf(stderr, "embedq bench: out of memory\n");
        goto done;
    }
    print_header();
    /* The model's name in the JSON: the preset, else the directory's last
     * component (run.sh names checkpoint directories after their preset, and
     * bench_hf.py labels its rows the same way). */
    char label[256];
    if (preset) {
        snprintf(label, sizeof label, "%s", preset);
    } else {
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/')
            n--;
        size_t b = n;
        while (b > 0 && dir[b - 1] != '/')
            b--;
        snprintf(label, sizeof label, "%.*s", (int)(n - b), dir + b);
    }
    int failed = 0;
    for (int wi = 0; wi < n_lengths + (mix ? 1 : 0); wi++) {
        int r = wi < n_lengths ? make_fixed(&w, c, lengths[wi], budget, seed, err, sizeof err)
                               : make_mix(&w, e, mix, budget, err, sizeof err);
        bench_result res;
        if (r == 0) {
            int n = iters ? iters : (w.seq_len ? 20 : (w.n_batches > 3 ? w.n_batches : 3));
            r = run_workload(e, &w, warmup, n, vecs, &res, err, sizeof err);
        }
        if (r != 0) {
            fprintf(stderr, "embedq bench: workload %s: %s\n",
                    wi < n_lengths ? "fixed length" : "mix", err);
            failed = 1;
            free_workload(&w);
            continue;
        }
        eq_get_info(e, &info);
        print_row(&w, &res, gemm, &info);
        if (jf) put_json(jf, label, dir, preset, c, &info, budget, gemm, &w, &res);
        free_workload(&w);
    }
    status = failed;
done:
    free(vecs);
    if (jf && fclose(jf) != 0) {
        fprintf(stderr, "embedq bench: writing '%s' failed\n", json);
        status = 1;
    }
    eq_close(e);
    if (*tmpdir) {
        if (keep)
            fprintf(stderr, "embedq bench: kept the checkpoint in %s\n", tmpdir);
        else
            remove_flat_dir(tmpdir);
    }
    return status;
}
