/* genmodel.c - see genmodel.h.
 *
 * Design: the tensor list is built in Hugging Face state-dict order, cut
 * into shards greedily (a new shard when the next tensor would pass the
 * limit, as transformers' shard_checkpoint does), and each shard is streamed
 * through st_writer: the header first, then every tensor generated chunk by
 * chunk in parallel. Element i of a tensor is a function of
 * (key(seed, name), i) only (counter-based splitmix64), so output does not
 * depend on chunk size, thread count or sharding.
 */
#include "genmodel.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "safetensors.h"

#ifndef EMBEDQ_DEFAULT_TOKENIZER_JSON
#define EMBEDQ_DEFAULT_TOKENIZER_JSON ""
#endif

#define CHUNK_ELEMS (16u << 20) /* elements generated per write            */
#define GOLDEN      0x9E3779B97F4A7C15ull

/* ---- presets ---- */

int genmodel_preset(const char *preset, qw_config *cfg, char *err, size_t errlen)
{
    qw_config c = {0};
    c.rms_eps = 1e-6f;
    c.rope_theta = 1000000.0f;
    c.head_dim = 128;
    c.n_kv_heads = 8;
    c.tie_word_embeddings = true;
    if (!preset) preset = "";
    if (!strcmp(preset, "tiny")) {
        /* Real vocabulary, heads*head_dim (128) != hidden (96) and
         * intermediate not a multiple of hidden, so shape bugs show. */
        c.hidden = 96;
        c.n_layers = 2;
        c.n_heads = 4;
        c.n_kv_heads = 2;
        c.head_dim = 32;
        c.intermediate = 160;
        c.vocab_rows = 151669;
        c.max_pos = 32768;
    } else if (!strcmp(preset, "0.6b")) {
        c.hidden = 1024;
        c.n_layers = 28;
        c.n_heads = 16;
        c.intermediate = 3072;
        c.vocab_rows = 151669;
        c.max_pos = 32768;
    } else if (!strcmp(preset, "4b")) {
        c.hidden = 2560;
        c.n_layers = 36;
        c.n_heads = 32;
        c.intermediate = 9728;
        c.vocab_rows = 151665;
        c.max_pos = 40960;
    } else if (!strcmp(preset, "8b")) {
        c.hidden = 4096;
        c.n_layers = 36;
        c.n_heads = 32;
        c.intermediate = 12288;
        c.vocab_rows = 151665;
        c.max_pos = 40960;
        c.tie_word_embeddings = false;
    } else {
        return eq_err(err, errlen, "unknown preset \"%s\" (expected tiny, 0.6b, 4b or 8b)", preset);
    }
    *cfg = c;
    return 0;
}

/* ---- random numbers ---- */

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t tensor_key(uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return mix64(h ^ mix64(seed + GOLDEN));
}

static uint16_t f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf / nan */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 */
    if (ax < 0x38800000u) { /* below 2^-14: subnormal (exact scaling) */
        float a;
        memcpy(&a, &ax, 4);
        return (uint16_t)(sign | (uint32_t)lrintf(a * 16777216.0f));
    }
    uint32_t h = ((((ax >> 23) - 127 + 15)) << 10) | ((ax & 0x7fffffu) >> 13);
    uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

enum { K_EMBED, K_LINEAR, K_NORM };

typedef struct {
    char name[128];
    int kind;
    int64_t rows, cols; /* cols 0: 1-D tensor of length rows */
    int shard;
    int pfx_len; /* the RNG key uses name + pfx_len: no prefix */
} gtensor;

static void gen_chunk(void *dst, eq_dtype dt, const gtensor *t, uint64_t key, uint64_t start,
                      size_t n)
{
    float scale = 1.0f;
    if (t->kind == K_LINEAR) scale = 1.0f / sqrtf((float)t->cols);
    const int kind = t->kind;
    /* Irwin-Hall(4): four 16-bit uniforms, mean 2, variance 1/3. */
    const float ih = 1.7320508f / 65536.0f;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        uint64_t r = mix64(key + (start + i + 1) * GOLDEN);
        float v;
        if (kind == K_NORM) {
            v = 0.7f + 0.6f * (float)(r >> 40) * (1.0f / 16777216.0f);
        } else {
            float s = (float)(r & 0xffff) + (float)((r >> 16) & 0xffff) +
                      (float)((r >> 32) & 0xffff) + (float)(r >> 48) + 2.0f - 131072.0f;
            v = s * ih * scale;
        }
        switch (dt) {
        case EQ_BF16:
            ((uint16_t *)dst)[i] = eq_f32_to_bf16(v);
            break;
        case EQ_F16:
            ((uint16_t *)dst)[i] = f32_to_f16(v);
            break;
        case EQ_F32:
            ((float *)dst)[i] = v;
            break;
        }
    }
}

/* ---- tensor list ---- */

static int build_list(const qw_config *c, const char *pfx, bool lm_head, gtensor **out,
                      size_t *n_out)
{
    size_t cap = 2 + (size_t)c->n_layers * 11 + 1;
    gtensor *t = calloc(cap, sizeof *t);
    if (!t) return -1;
    size_t n = 0;
    const int64_t H = c->hidden, I = c->intermediate, D = c->head_dim;
    const int64_t QD = (int64_t)c->n_heads * D, KD = (int64_t)c->n_kv_heads * D;
#define ADD(kind_, r_, c_, ...)                                                                    \
    do {                                                                                           \
        gtensor *g = &t[n++];                                                                      \
        int w_ = snprintf(g->name, sizeof g->name, "%s", pfx);                                     \
        snprintf(g->name + w_, sizeof g->name - (size_t)w_, __VA_ARGS__);                          \
        g->kind = kind_;                                                                           \
        g->pfx_len = w_;                                                                           \
        g->rows = r_;                                                                              \
        g->cols = c_;                                                                              \
    } while (0)
    ADD(K_EMBED, c->vocab_rows, H, "embed_tokens.weight");
    for (int l = 0; l < c->n_layers; l++) {
        ADD(K_LINEAR, QD, H, "layers.%d.self_attn.q_proj.weight", l);
        ADD(K_LINEAR, KD, H, "layers.%d.self_attn.k_proj.weight", l);
        ADD(K_LINEAR, KD, H, "layers.%d.self_attn.v_proj.weight", l);
        ADD(K_LINEAR, H, QD, "layers.%d.self_attn.o_proj.weight", l);
        ADD(K_NORM, D, 0, "layers.%d.self_attn.q_norm.weight", l);
        ADD(K_NORM, D, 0, "layers.%d.self_attn.k_norm.weight", l);
        ADD(K_LINEAR, I, H, "layers.%d.mlp.gate_proj.weight", l);
        ADD(K_LINEAR, I, H, "layers.%d.mlp.up_proj.weight", l);
        ADD(K_LINEAR, H, I, "layers.%d.mlp.down_proj.weight", l);
        ADD(K_NORM, H, 0, "layers.%d.input_layernorm.weight", l);
        ADD(K_NORM, H, 0, "layers.%d.post_attention_layernorm.weight", l);
    }
    ADD(K_NORM, H, 0, "norm.weight");
#undef ADD
    if (lm_head) { /* HF names it without the model. prefix */
        gtensor *g = &t[n++];
        snprintf(g->name, sizeof g->name, "lm_head.weight");
        g->kind = K_LINEAR;
        g->rows = c->vocab_rows;
        g->cols = H;
    }
    *out = t;
    *n_out = n;
    return 0;
}

static uint64_t gt_numel(const gtensor *t)
{
    return (uint64_t)t->rows * (uint64_t)(t->cols ? t->cols : 1);
}

/* ---- files ---- */

static int mkdir_p(const char *dir, char *err, size_t errlen)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp)
        return eq_err(err, errlen, "%s: path too long", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
            return eq_err(err, errlen, "%s: cannot create directory: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
        return eq_err(err, errlen, "%s: cannot create directory: %s", tmp, strerror(errno));
    struct stat sb;
    if (stat(tmp, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return eq_err(err, errlen, "%s: not a directory", tmp);
    return 0;
}

static int write_text(const char *path, const char *text, char *err, size_t errlen)
{
    FILE *f = fopen(path, "wb");
    if (!f) return eq_err(err, errlen, "%s: cannot create: %s", path, strerror(errno));
    size_t n = strlen(text);
    int bad = fwrite(text, 1, n, f) != n;
    if (fclose(f) != 0) bad = 1;
    if (bad) return eq_err(err, errlen, "%s: write error: %s", path, strerror(errno));
    return 0;
}

static const char *torch_dtype(eq_dtype t)
{
    return t == EQ_F32 ? "float32" : t == EQ_F16 ? "float16" : "bfloat16";
}

static int write_config(const char *path, const qw_config *c, eq_dtype dt, char *err, size_t errlen)
{
    char buf[2048];
    /* Keys sorted, 2-space indent: what transformers' save_pretrained
     * writes for the Qwen3-Embedding repos. */
    snprintf(buf, sizeof buf,
             "{\n"
             "  \"architectures\": [\n"
             "    \"Qwen3ForCausalLM\"\n"
             "  ],\n"
             "  \"attention_bias\": false,\n"
             "  \"attention_dropout\": 0.0,\n"
             "  \"bos_token_id\": 151643,\n"
             "  \"eos_token_id\": 151643,\n"
             "  \"head_dim\": %d,\n"
             "  \"hidden_act\": \"silu\",\n"
             "  \"hidden_size\": %d,\n"
             "  \"initializer_range\": 0.02,\n"
             "  \"intermediate_size\": %d,\n"
             "  \"max_position_embeddings\": %d,\n"
             "  \"max_window_layers\": %d,\n"
             "  \"model_type\": \"qwen3\",\n"
             "  \"num_attention_heads\": %d,\n"
             "  \"num_hidden_layers\": %d,\n"
             "  \"num_key_value_heads\": %d,\n"
             "  \"rms_norm_eps\": 1e-06,\n"
             "  \"rope_scaling\": null,\n"
             "  \"rope_theta\": 1000000,\n"
             "  \"sliding_window\": null,\n"
             "  \"tie_word_embeddings\": %s,\n"
             "  \"torch_dtype\": \"%s\",\n"
             "  \"transformers_version\": \"4.51.3\",\n"
             "  \"use_cache\": true,\n"
             "  \"use_sliding_window\": false,\n"
             "  \"vocab_size\": %d\n"
             "}\n",
             c->head_dim, c->hidden, c->intermediate, c->max_pos, c->n_layers, c->n_heads,
             c->n_layers, c->n_kv_heads, c->tie_word_embeddings ? "true" : "false", torch_dtype(dt),
             c->vocab_rows);
    return write_text(path, buf, err, errlen);
}

static const char *post_processor_json =
    "{\"type\":\"TemplateProcessing\","
    "\"single\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
    "{\"SpecialToken\":{\"id\":\"<|endoftext|>\",\"type_id\":0}}],"
    "\"pair\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
    "{\"SpecialToken\":{\"id\":\"<|endoftext|>\",\"type_id\":0}},"
    "{\"Sequence\":{\"id\":\"B\",\"type_id\":1}},"
    "{\"SpecialToken\":{\"id\":\"<|endoftext|>\",\"type_id\":1}}],"
    "\"special_tokens\":{\"<|endoftext|>\":{\"id\":\"<|endoftext|>\","
    "\"ids\":[151643],\"tokens\":[\"<|endoftext|>\"]}}}";

static int write_json_file(const char *path, cJSON *j, bool pretty, char *err, size_t errlen)
{
    char *s = pretty ? cJSON_Print(j) : cJSON_PrintUnformatted(j);
    if (!s) return eq_err(err, errlen, "%s: out of memory printing JSON", path);
    int rc = write_text(path, s, err, errlen);
    cJSON_free(s);
    return rc;
}

static int write_tokenizer(const char *src, const char *out_dir, char *err, size_t errlen)
{
    char path[4096];
    size_t len = 0;
    char msg[EQ_ERRLEN];
    char *text = eq_read_file(src, &len, msg, sizeof msg);
    if (!text)
        return eq_err(err, errlen,
                      "%s (the tokenizer.json gen-model copies: pass "
                      "--tokenizer PATH or set EMBEDQ_TOKENIZER_JSON)",
                      msg);
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(root) || !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "model"))) {
        cJSON_Delete(root);
        return eq_err(err, errlen,
                      "%s: not a Hugging Face tokenizer.json (JSON object "
                      "with \"model\")",
                      src);
    }
    cJSON *pp = cJSON_Parse(post_processor_json);
    EQ_ASSERT(pp);
    if (cJSON_HasObjectItem(root, "post_processor"))
        cJSON_ReplaceItemInObjectCaseSensitive(root, "post_processor", pp);
    else
        cJSON_AddItemToObject(root, "post_processor", pp);
    snprintf(path, sizeof path, "%s/tokenizer.json", out_dir);
    int rc = write_json_file(path, root, false, err, errlen);
    cJSON_Delete(root);
    if (rc) return rc;

    /* tokenizer_config.json from beside the source, if any. */
    char cfg_src[4096];
    snprintf(cfg_src, sizeof cfg_src, "%s", src);
    char *slash = strrchr(cfg_src, '/');
    if (slash)
        slash[1] = 0;
    else
        cfg_src[0] = 0;
    strncat(cfg_src, "tokenizer_config.json", sizeof cfg_src - strlen(cfg_src) - 1);
    if (access(cfg_src, R_OK) != 0) return 0;
    text = eq_read_file(cfg_src, &len, err, errlen);
    if (!text) return -1;
    root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return eq_err(err, errlen, "%s: not a JSON object", cfg_src);
    }
    cJSON *mml = cJSON_CreateNumber(32768);
    if (cJSON_HasObjectItem(root, "model_max_length"))
        cJSON_ReplaceItemInObjectCaseSensitive(root, "model_max_length", mml);
    else
        cJSON_AddItemToObject(root, "model_max_length", mml);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", out_dir);
    rc = write_json_file(path, root, true, err, errlen);
    cJSON_Delete(root);
    return rc;
}

static int cmp_gt_name(const void *a, const void *b)
{
    return strcmp((*(const gtensor *const *)a)->name, (*(const gtensor *const *)b)->name);
}

static int write_index(const char *path, gtensor *t, size_t n, int n_shards, uint64_t total,
                       eq_dtype dt, char *err, size_t errlen)
{
    gtensor **ord = malloc(n * sizeof *ord);
    if (!ord) return eq_err(err, errlen, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++)
        ord[i] = &t[i];
    qsort(ord, n, sizeof *ord, cmp_gt_name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(ord);
        return eq_err(err, errlen, "%s: cannot create: %s", path, strerror(errno));
    }
    (void)dt;
    fprintf(f,
            "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n"
            "  \"weight_map\": {\n",
            (unsigned long long)total);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "    \"%s\": \"model-%05d-of-%05d.safetensors\"%s\n", ord[i]->name,
                ord[i]->shard + 1, n_shards, i + 1 < n ? "," : "");
    fprintf(f, "  }\n}\n");
    free(ord);
    int bad = ferror(f);
    if (fclose(f) != 0) bad = 1;
    if (bad) return eq_err(err, errlen, "%s: write error: %s", path, strerror(errno));
    return 0;
}

static int write_shard(const char *path, gtensor *t, size_t n, int shard, uint64_t seed,
                       eq_dtype dt, void *chunk, char *err, size_t errlen)
{
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++)
        cnt += t[i].shard == shard;
    st_desc *d = calloc(cnt, sizeof *d);
    if (!d) return eq_err(err, errlen, "%s: out of memory", path);
    st_dtype sdt = dt == EQ_F32 ? ST_F32 : dt == EQ_F16 ? ST_F16 : ST_BF16;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i].shard != shard) continue;
        d[k].name = t[i].name;
        d[k].dtype = sdt;
        d[k].ndim = t[i].cols ? 2 : 1;
        d[k].shape[0] = t[i].rows;
        d[k].shape[1] = t[i].cols;
        k++;
    }
    static const char *meta[] = {"format", "pt"};
    st_writer *w = st_writer_open(path, d, cnt, meta, 1, err, errlen);
    free(d);
    if (!w) return -1;
    const size_t es = eq_dtype_size(dt);
    for (size_t i = 0; i < n; i++) {
        if (t[i].shard != shard) continue;
        uint64_t key = tensor_key(seed, t[i].name + t[i].pfx_len);
        uint64_t total = gt_numel(&t[i]);
        for (uint64_t s = 0; s < total; s += CHUNK_ELEMS) {
            size_t m = (size_t)(total - s < CHUNK_ELEMS ? total - s : CHUNK_ELEMS);
            gen_chunk(chunk, dt, &t[i], key, s, m);
            if (st_writer_write(w, chunk, m * es, err, errlen) != 0) {
                st_writer_abort(w);
                return -1;
            }
        }
    }
    return st_writer_close(w, err, errlen);
}

int genmodel_write_cfg(const qw_config *cfg, const char *out_dir, uint64_t seed,
                       const genmodel_opts *opts, char *err, size_t errlen)
{
    genmodel_opts o = GENMODEL_OPTS_INIT;
    if (opts) o = *opts;
    if (cfg->hidden <= 0 || cfg->n_layers <= 0 || cfg->n_heads <= 0 || cfg->n_kv_heads <= 0 ||
        cfg->head_dim <= 0 || cfg->intermediate <= 0 || cfg->vocab_rows <= 0)
        return eq_err(err, errlen, "genmodel: config has non-positive sizes");
    if (o.dtype != EQ_BF16 && o.dtype != EQ_F16 && o.dtype != EQ_F32)
        return eq_err(err, errlen, "genmodel: bad dtype");
    uint64_t max_shard = o.max_shard_bytes;
    if (!max_shard) {
        const char *e = getenv("EMBEDQ_GENMODEL_MAX_SHARD_BYTES");
        max_shard = e && *e ? strtoull(e, NULL, 10) : 0;
        if (!max_shard) max_shard = GENMODEL_MAX_SHARD_BYTES;
    }
    const char *tok = o.tokenizer_json;
    if (!tok) {
        tok = getenv("EMBEDQ_TOKENIZER_JSON");
        if (!tok || !*tok) tok = EMBEDQ_DEFAULT_TOKENIZER_JSON;
        if (!*tok)
            return eq_err(err, errlen,
                          "genmodel: no tokenizer.json given (set "
                          "EMBEDQ_TOKENIZER_JSON or pass --tokenizer)");
    }
    if (*tok && access(tok, R_OK) != 0) /* fail before writing anything */
        return eq_err(err, errlen,
                      "%s: cannot open: %s (the tokenizer.json gen-model "
                      "copies: pass --tokenizer PATH or set "
                      "EMBEDQ_TOKENIZER_JSON)",
                      tok, strerror(errno));
    if (mkdir_p(out_dir, err, errlen) != 0) return -1;

    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    if (write_config(path, cfg, o.dtype, err, errlen) != 0) return -1;
    if (*tok && write_tokenizer(tok, out_dir, err, errlen) != 0) return -1;

    gtensor *t = NULL;
    size_t n = 0;
    if (build_list(cfg, o.name_prefix ? o.name_prefix : "", o.lm_head, &t, &n) != 0)
        return eq_err(err, errlen, "genmodel: out of memory");
    const size_t es = eq_dtype_size(o.dtype);
    uint64_t total = 0, cur = 0;
    int shard = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t b = gt_numel(&t[i]) * es;
        if (cur > 0 && cur + b > max_shard) {
            shard++;
            cur = 0;
        }
        t[i].shard = shard;
        cur += b;
        total += b;
    }
    const int n_shards = shard + 1;

    void *chunk = malloc((size_t)CHUNK_ELEMS * es);
    if (!chunk) {
        free(t);
        return eq_err(err, errlen, "genmodel: out of memory");
    }
    int rc = 0;
    char stale[4096];
    if (n_shards == 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
        snprintf(stale, sizeof stale, "%s/model.safetensors.index.json", out_dir);
        rc = write_shard(path, t, n, 0, seed, o.dtype, chunk, err, errlen);
    } else {
        snprintf(stale, sizeof stale, "%s/model.safetensors", out_dir);
        for (int s = 0; s < n_shards && rc == 0; s++) {
            snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", out_dir, s + 1,
                     n_shards);
            rc = write_shard(path, t, n, s, seed, o.dtype, chunk, err, errlen);
        }
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", out_dir);
        if (rc == 0) rc = write_index(path, t, n, n_shards, total, o.dtype, err, errlen);
    }
    /* A file of the other layout left by an earlier run would make the
     * directory ambiguous; remove it. */
    if (rc == 0 && unlink(stale) == 0) eq_log(EQ_LOG_INFO, "genmodel: removed stale %s", stale);
    free(chunk);
    free(t);
    return rc;
}

int genmodel_write(const char *preset, const char *out_dir, uint64_t seed,
                   const char *tokenizer_json, char *err, size_t errlen)
{
    qw_config cfg;
    if (genmodel_preset(preset, &cfg, err, errlen) != 0) return -1;
    genmodel_opts o = GENMODEL_OPTS_INIT;
    o.tokenizer_json = tokenizer_json;
    return genmodel_write_cfg(&cfg, out_dir, seed, &o, err, errlen);
}
