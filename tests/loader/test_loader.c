/* test_loader.c - checkpoint loader, gen-model and safetensors writer.
 *
 *   test_loader [--tiny-only | --micro-only]
 *
 * Each case writes into its own directory under $TMPDIR (removed at the
 * end) and checks either a successful load or the exact error text: the
 * file path and the tensor name. "micro" checkpoints (hidden 16, vocab 50)
 * are written by genmodel_write_cfg or by hand through st_writer; "tiny"
 * (real vocabulary) through genmodel_write. Runs in a few seconds, also
 * under ASan+UBSan.
 */
#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "genmodel.h"
#include "model.h"
#include "safetensors.h"

static int failures, checks;
static char base[1024];

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

/* ---- helpers ---- */

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[2048];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            rm_rf(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static const char *newdir(const char *name)
{
    static char bufs[8][1100];
    static int k;
    char *p = bufs[k++ % 8];
    snprintf(p, 1100, "%s/%s", base, name);
    rm_rf(p);
    mkdir(p, 0777);
    return p;
}

static const char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static const char *fmt(const char *f, ...)
{
    static char bufs[8][2048];
    static int k;
    char *p = bufs[k++ % 8];
    va_list ap;
    va_start(ap, f);
    vsnprintf(p, 2048, f, ap);
    va_end(ap);
    return p;
}

static char *slurp(const char *path, size_t *len)
{
    char err[EQ_ERRLEN];
    return eq_read_file(path, len, err, sizeof err);
}

static bool same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *x = slurp(a, &la), *y = slurp(b, &lb);
    bool same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    EQ_ASSERT(f);
    EQ_ASSERT(fwrite(data, 1, n, f) == n);
    fclose(f);
}

/* Writes 8-byte length + json + data_len zero bytes. */
static void write_raw(const char *path, const char *json, size_t data_len)
{
    size_t n = strlen(json);
    uint8_t *b = calloc(1, 8 + n + data_len);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(b + 8, json, n);
    write_file(path, b, 8 + n + data_len);
    free(b);
}

static qw_config micro_cfg(void)
{
    qw_config c = {0};
    c.hidden = 16;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 6; /* heads*head_dim = 24 != hidden */
    c.intermediate = 24;
    c.vocab_rows = 50;
    c.max_pos = 128;
    c.rms_eps = 1e-6f;
    c.rope_theta = 1e6f;
    c.tie_word_embeddings = true;
    return c;
}

static int gen_micro(const char *dir, uint64_t seed, genmodel_opts *o)
{
    qw_config c = micro_cfg();
    genmodel_opts d = GENMODEL_OPTS_INIT;
    if (!o) o = &d;
    o->tokenizer_json = "";
    char err[EQ_ERRLEN];
    int rc = genmodel_write_cfg(&c, dir, seed, o, err, sizeof err);
    if (rc) fprintf(stderr, "genmodel: %s\n", err);
    return rc;
}

/* Expect qw_model_load(dir) to fail with a message containing every
 * non-NULL needle. */
static void expect_fail(int line, const char *dir, const char *n1, const char *n2, const char *n3)
{
    char err[EQ_ERRLEN] = "";
    qw_model *m = NULL;
    int rc = qw_model_load(dir, &m, err, sizeof err);
    checks++;
    if (rc == 0) {
        failures++;
        fprintf(stderr, "FAIL line %d: %s loaded, expected an error\n", line, dir);
        qw_model_free(m);
        return;
    }
    const char *need[] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (need[i] && !strstr(err, need[i])) {
            failures++;
            fprintf(stderr, "FAIL line %d: error lacks \"%s\":\n  %s\n", line, need[i], err);
            return;
        }
    printf("  ok (expected error): %s\n", err);
}
#define EXPECT_FAIL(dir, a, b, c) expect_fail(__LINE__, dir, a, b, c)

static qw_model *load_ok(int line, const char *dir)
{
    char err[EQ_ERRLEN] = "";
    qw_model *m = NULL;
    checks++;
    if (qw_model_load(dir, &m, err, sizeof err) != 0) {
        failures++;
        fprintf(stderr, "FAIL line %d: load %s: %s\n", line, dir, err);
        return NULL;
    }
    return m;
}
#define LOAD_OK(dir) load_ok(__LINE__, dir)

/* Every qw_weight of a model, in a fixed order. */
static int all_weights(const qw_model *m, const qw_weight **w)
{
    int n = 0;
    w[n++] = &m->embed;
    w[n++] = &m->final_norm;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const qw_layer *L = &m->layers[l];
        const qw_weight *lw[] = {&L->attn_norm, &L->q,      &L->k,      &L->v,
                                 &L->o,         &L->q_norm, &L->k_norm, &L->post_norm,
                                 &L->gate,      &L->up,     &L->down};
        for (int i = 0; i < 11; i++)
            w[n++] = lw[i];
    }
    return n;
}

/* ---- micro checkpoints written by hand ---- */

typedef struct {
    char name[96];
    st_desc d;
} mdesc;

/* The tensors of the micro config, in state-dict order. */
static int micro_list(mdesc *out, const char *pfx)
{
    qw_config c = micro_cfg();
    const int64_t H = c.hidden, I = c.intermediate, D = c.head_dim, QD = c.n_heads * D,
                  KD = c.n_kv_heads * D;
    int n = 0;
#define T(r, k, ...)                                                                               \
    do {                                                                                           \
        int w_ = snprintf(out[n].name, 96, "%s", pfx);                                             \
        snprintf(out[n].name + w_, (size_t)(96 - w_), __VA_ARGS__);                                \
        out[n].d.dtype = ST_BF16;                                                                  \
        out[n].d.ndim = (k) ? 2 : 1;                                                               \
        out[n].d.shape[0] = (r);                                                                   \
        out[n].d.shape[1] = (k);                                                                   \
        n++;                                                                                       \
    } while (0)
    T(c.vocab_rows, H, "embed_tokens.weight");
    for (int l = 0; l < c.n_layers; l++) {
        T(QD, H, "layers.%d.self_attn.q_proj.weight", l);
        T(KD, H, "layers.%d.self_attn.k_proj.weight", l);
        T(KD, H, "layers.%d.self_attn.v_proj.weight", l);
        T(H, QD, "layers.%d.self_attn.o_proj.weight", l);
        T(D, 0, "layers.%d.self_attn.q_norm.weight", l);
        T(D, 0, "layers.%d.self_attn.k_norm.weight", l);
        T(I, H, "layers.%d.mlp.gate_proj.weight", l);
        T(I, H, "layers.%d.mlp.up_proj.weight", l);
        T(H, I, "layers.%d.mlp.down_proj.weight", l);
        T(H, 0, "layers.%d.input_layernorm.weight", l);
        T(H, 0, "layers.%d.post_attention_layernorm.weight", l);
    }
    T(H, 0, "norm.weight");
#undef T
    for (int i = 0; i < n; i++)
        out[i].d.name = out[i].name;
    return n;
}

static mdesc *find_md(mdesc *l, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(l[i].name, name)) return &l[i];
    EQ_ASSERT(!"tensor not in list");
    return NULL;
}

/* Writes tensors [from, to) of l into path (zero data). */
static void write_st(const char *path, mdesc *l, int from, int to)
{
    st_desc d[64] = {{0}};
    int n = 0;
    for (int i = from; i < to; i++)
        d[n++] = l[i].d;
    char err[EQ_ERRLEN];
    st_writer *w = st_writer_open(path, d, (size_t)n, NULL, 0, err, sizeof err);
    EQ_ASSERT(w);
    static uint8_t zero[4096];
    for (int i = 0; i < n; i++)
        for (uint64_t b = st_desc_bytes(&d[i]); b;) {
            size_t k = b < sizeof zero ? (size_t)b : sizeof zero;
            EQ_ASSERT(st_writer_write(w, zero, k, err, sizeof err) == 0);
            b -= k;
        }
    EQ_ASSERT(st_writer_close(w, err, sizeof err) == 0);
}

static void write_micro_config(const char *dir)
{
    qw_config c = micro_cfg();
    char err[EQ_ERRLEN];
    /* Let genmodel write config + weights, then the test replaces weights. */
    genmodel_opts o = GENMODEL_OPTS_INIT;
    o.tokenizer_json = "";
    EQ_ASSERT(genmodel_write_cfg(&c, dir, 1, &o, err, sizeof err) == 0);
    unlink(fmt("%s/model.safetensors", dir));
}

/* ---- cases ---- */

static void test_tiny(void)
{
    printf("tiny round trip\n");
    char err[EQ_ERRLEN];
    const char *a = newdir("tiny_a"), *b = newdir("tiny_b"), *c = newdir("tiny_c"),
               *s = newdir("tiny_sharded");
    CHECK(genmodel_write("tiny", a, 7, NULL, err, sizeof err) == 0, "%s", err);
    qw_model *m = LOAD_OK(a);
    if (!m) return;
    qw_config t;
    genmodel_preset("tiny", &t, err, sizeof err);
    CHECK(m->cfg.hidden == 96 && m->cfg.n_layers == 2 && m->cfg.n_heads == 4 &&
              m->cfg.n_kv_heads == 2 && m->cfg.head_dim == 32 && m->cfg.intermediate == 160 &&
              m->cfg.vocab_rows == 151669 && m->cfg.max_pos == 32768 &&
              m->cfg.tie_word_embeddings && m->cfg.rms_eps == 1e-6f && m->cfg.rope_theta == 1e6f,
          "config");
    CHECK(m->n_params == qw_config_n_params(&t), "n_params %llu", (unsigned long long)m->n_params);
    CHECK(m->n_files == 1, "files %d", m->n_files);
    CHECK(m->embed.rows == 151669 && m->embed.cols == 96 && m->embed.dtype == EQ_BF16, "embed");
    CHECK(m->layers[1].q.rows == 128 && m->layers[1].q.cols == 96, "q");
    CHECK(m->layers[1].k.rows == 64 && m->layers[1].o.rows == 96 && m->layers[1].o.cols == 128,
          "k/o");
    CHECK(m->layers[0].down.rows == 96 && m->layers[0].down.cols == 160, "down");
    CHECK(m->layers[0].q_norm.rows == 32 && m->layers[0].q_norm.cols == 1, "q_norm");
    /* Norms in [0.7, 1.3] and not all 1; linears ~N(0, 1/in). */
    float v[160];
    eq_to_f32(v, m->final_norm.data, EQ_BF16, 96);
    int ones = 0;
    for (int i = 0; i < 96; i++) {
        CHECK(v[i] >= 0.69f && v[i] <= 1.31f, "norm %g", v[i]);
        ones += v[i] == 1.0f;
    }
    CHECK(ones < 10, "norm weights all 1");
    double ss = 0;
    for (int r = 0; r < 160; r++) {
        eq_to_f32(v, (const uint16_t *)m->layers[1].up.data + r * 96, EQ_BF16, 96);
        for (int i = 0; i < 96; i++)
            ss += (double)v[i] * v[i];
    }
    double sd = sqrt(ss / (160 * 96));
    CHECK(sd > 0.09 && sd < 0.115, "up_proj std %g (want ~1/sqrt(96))", sd);

    /* tokenizer.json: the embedding repos' post-processor. */
    size_t len;
    char *tj = slurp(fmt("%s/tokenizer.json", a), &len);
    CHECK(tj != NULL, "tokenizer.json");
    if (tj) {
        cJSON *j = cJSON_ParseWithLength(tj, len);
        const cJSON *pp = cJSON_GetObjectItemCaseSensitive(j, "post_processor");
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(pp, "type");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(pp, "single");
        CHECK(cJSON_IsString(ty) && !strcmp(ty->valuestring, "TemplateProcessing"),
              "post_processor type");
        CHECK(cJSON_GetArraySize(st) == 2, "single");
        const cJSON *added = cJSON_GetObjectItemCaseSensitive(j, "added_tokens");
        CHECK(cJSON_GetArraySize(added) == 26, "added tokens %d", cJSON_GetArraySize(added));
        cJSON_Delete(j);
        free(tj);
    }
    qw_config tc;
    CHECK(qw_config_load(fmt("%s/config.json", a), &tc, err, sizeof err) == 0, "%s", err);

    /* Determinism: same seed -> identical bytes (also with one thread);
     * another seed -> different weights. */
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    CHECK(genmodel_write("tiny", b, 7, NULL, err, sizeof err) == 0, "%s", err);
    omp_set_num_threads(nt);
    CHECK(genmodel_write("tiny", c, 8, NULL, err, sizeof err) == 0, "%s", err);
    const char *files[] = {"config.json", "tokenizer.json", "tokenizer_config.json",
                           "model.safetensors"};
    for (int i = 0; i < 4; i++)
        CHECK(same_file(fmt("%s/%s", a, files[i]), fmt("%s/%s", b, files[i])),
              "seed 7 twice: %s differs", files[i]);
    CHECK(!same_file(fmt("%s/model.safetensors", a), fmt("%s/model.safetensors", c)),
          "seeds 7 and 8 gave the same weights");
    CHECK(same_file(fmt("%s/config.json", a), fmt("%s/config.json", c)), "config differs by seed");

    /* Sharded: 200 kB shards -> embed alone, layer 0, layer 1 + norm. */
    genmodel_opts o = GENMODEL_OPTS_INIT;
    o.max_shard_bytes = 200000;
    qw_config tiny;
    genmodel_preset("tiny", &tiny, err, sizeof err);
    CHECK(genmodel_write_cfg(&tiny, s, 7, &o, err, sizeof err) == 0, "%s", err);
    struct stat sb;
    CHECK(stat(fmt("%s/model.safetensors", s), &sb) != 0, "single file too");
    CHECK(stat(fmt("%s/model-00003-of-00003.safetensors", s), &sb) == 0, "3 shards");
    CHECK(stat(fmt("%s/model-00004-of-00004.safetensors", s), &sb) != 0, "not 4 shards");
    CHECK(same_file(fmt("%s/tokenizer.json", a), fmt("%s/tokenizer.json", s)), "tokenizer differs");
    size_t ilen;
    char *ij = slurp(fmt("%s/model.safetensors.index.json", s), &ilen);
    cJSON *idx = cJSON_ParseWithLength(ij, ilen);
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(idx, "metadata"), "total_size");
    CHECK(cJSON_IsNumber(ts) && (uint64_t)ts->valuedouble == 2 * qw_config_n_params(&tiny),
          "total_size");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(idx, "weight_map")) == 2 + 2 * 11,
          "weight_map size");
    cJSON_Delete(idx);
    free(ij);
    qw_model *ms = LOAD_OK(s);
    if (ms) {
        CHECK(ms->n_files == 3, "n_files %d", ms->n_files);
        CHECK(ms->n_params == m->n_params, "n_params");
        const qw_weight *wa[64], *wb[64];
        int na = all_weights(m, wa), nb = all_weights(ms, wb);
        CHECK(na == nb, "weights");
        for (int i = 0; i < na; i++)
            CHECK(wa[i]->rows == wb[i]->rows && wa[i]->cols == wb[i]->cols &&
                      wa[i]->dtype == wb[i]->dtype &&
                      !memcmp(wa[i]->data, wb[i]->data, (size_t)(wa[i]->rows * wa[i]->cols) * 2),
                  "weight %d differs between single and sharded", i);
        qw_model_free(ms);
    }
    /* Re-writing as a single file removes the stale index. */
    CHECK(genmodel_write("tiny", s, 7, "", err, sizeof err) == 0, "%s", err);
    CHECK(stat(fmt("%s/model.safetensors.index.json", s), &sb) != 0, "stale index left behind");
    CHECK(same_file(fmt("%s/model.safetensors", a), fmt("%s/model.safetensors", s)),
          "single after sharded differs");
    qw_model_free(m);
}

static void test_params(void)
{
    printf("parameter counts of the real configs\n");
    /* The config.json files of the Qwen3-Embedding repos. */
    static const struct {
        const char *preset;
        const char *json;
        uint64_t params;
    } real[] = {
        {"0.6b",
         "{\"architectures\":[\"Qwen3ForCausalLM\"],\"attention_bias\":false,"
         "\"attention_dropout\":0.0,\"bos_token_id\":151643,\"eos_token_id\":"
         "151643,\"head_dim\":128,\"hidden_act\":\"silu\",\"hidden_size\":1024,"
         "\"initializer_range\":0.02,\"intermediate_size\":3072,"
         "\"max_position_embeddings\":32768,\"max_window_layers\":28,"
         "\"model_type\":\"qwen3\",\"num_attention_heads\":16,"
         "\"num_hidden_layers\":28,\"num_key_value_heads\":8,\"rms_norm_eps\":"
         "1e-06,\"rope_scaling\":null,\"rope_theta\":1000000,\"sliding_window\":"
         "null,\"tie_word_embeddings\":true,\"torch_dtype\":\"bfloat16\","
         "\"transformers_version\":\"4.51.3\",\"use_cache\":true,"
         "\"use_sliding_window\":false,\"vocab_size\":151669}",
         595776512ull},
        {"4b",
         "{\"architectures\":[\"Qwen3ForCausalLM\"],\"attention_bias\":false,"
         "\"head_dim\":128,\"hidden_act\":\"silu\",\"hidden_size\":2560,"
         "\"intermediate_size\":9728,\"max_position_embeddings\":40960,"
         "\"model_type\":\"qwen3\",\"num_attention_heads\":32,"
         "\"num_hidden_layers\":36,\"num_key_value_heads\":8,\"rms_norm_eps\":"
         "1e-06,\"rope_scaling\":null,\"rope_theta\":1000000,"
         "\"tie_word_embeddings\":true,\"vocab_size\":151665}",
         4021774336ull},
        {"8b",
         "{\"architectures\":[\"Qwen3ForCausalLM\"],\"attention_bias\":false,"
         "\"head_dim\":128,\"hidden_act\":\"silu\",\"hidden_size\":4096,"
         "\"intermediate_size\":12288,\"max_position_embeddings\":40960,"
         "\"model_type\":\"qwen3\",\"num_attention_heads\":32,"
         "\"num_hidden_layers\":36,\"num_key_value_heads\":8,\"rms_norm_eps\":"
         "1e-06,\"rope_scaling\":null,\"rope_theta\":1000000,"
         "\"tie_word_embeddings\":false,\"vocab_size\":151665}",
         7567295488ull},
    };
    const char *d = newdir("params");
    char err[EQ_ERRLEN];
    for (int i = 0; i < 3; i++) {
        const char *p = fmt("%s/%s.json", d, real[i].preset);
        write_file(p, real[i].json, strlen(real[i].json));
        qw_config c, g;
        CHECK(qw_config_load(p, &c, err, sizeof err) == 0, "%s", err);
        CHECK(qw_config_n_params(&c) == real[i].params, "%s: %llu != %llu", real[i].preset,
              (unsigned long long)qw_config_n_params(&c), (unsigned long long)real[i].params);
        /* gen-model's preset and the config.json it writes agree. */
        CHECK(genmodel_preset(real[i].preset, &g, err, sizeof err) == 0, "%s", err);
        CHECK(!memcmp(&g, &c, sizeof c), "preset %s != real config", real[i].preset);
    }
}

static void test_micro_ok(void)
{
    printf("micro: prefix, lm_head, F16, F32\n");
    const char *b16 = newdir("m_bf16"), *pfx = newdir("m_prefix"), *f16 = newdir("m_f16"),
               *f32 = newdir("m_f32");
    genmodel_opts o = GENMODEL_OPTS_INIT;
    CHECK(gen_micro(b16, 3, &o) == 0, "gen");
    o = (genmodel_opts)GENMODEL_OPTS_INIT;
    o.name_prefix = "model.";
    o.lm_head = true;
    CHECK(gen_micro(pfx, 3, &o) == 0, "gen");
    o = (genmodel_opts)GENMODEL_OPTS_INIT;
    o.dtype = EQ_F16;
    CHECK(gen_micro(f16, 3, &o) == 0, "gen");
    o = (genmodel_opts)GENMODEL_OPTS_INIT;
    o.dtype = EQ_F32;
    o.max_shard_bytes = 3000; /* many shards */
    CHECK(gen_micro(f32, 3, &o) == 0, "gen");

    qw_model *mb = LOAD_OK(b16), *mp = LOAD_OK(pfx), *mh = LOAD_OK(f16), *mf = LOAD_OK(f32);
    if (mb && mp && mh && mf) {
        qw_config c = micro_cfg();
        CHECK(mb->n_params == qw_config_n_params(&c), "n_params");
        CHECK(mp->n_params == mb->n_params && mh->n_params == mb->n_params &&
                  mf->n_params == mb->n_params,
              "n_params differ");
        CHECK(mf->n_files > 3, "f32 shards %d", mf->n_files);
        const qw_weight *wb[64], *wp[64], *wh[64], *wf[64];
        int n = all_weights(mb, wb);
        all_weights(mp, wp);
        all_weights(mh, wh);
        all_weights(mf, wf);
        for (int i = 0; i < n; i++) {
            size_t k = (size_t)(wb[i]->rows * wb[i]->cols);
            CHECK(!memcmp(wb[i]->data, wp[i]->data, k * 2), "prefix changed weight %d", i);
            CHECK(wh[i]->dtype == EQ_F16 && wf[i]->dtype == EQ_F32, "dtype");
            float *x = malloc(k * 4), *y = malloc(k * 4), *z = malloc(k * 4);
            eq_to_f32(x, wb[i]->data, EQ_BF16, k);
            eq_to_f32(y, wh[i]->data, EQ_F16, k);
            eq_to_f32(z, wf[i]->data, EQ_F32, k);
            for (size_t j = 0; j < k; j++) {
                CHECK(fabsf(x[j] - z[j]) <= fabsf(z[j]) * (1.0f / 128), "bf16 %g vs f32 %g", x[j],
                      z[j]);
                CHECK(fabsf(y[j] - z[j]) <= fabsf(z[j]) * (1.0f / 1024) + 1e-7f, "f16 %g vs f32 %g",
                      y[j], z[j]);
            }
            free(x);
            free(y);
            free(z);
        }
    }
    qw_model_free(mb);
    qw_model_free(mp);
    qw_model_free(mh);
    qw_model_free(mf);
}

static void test_errors(void)
{
    printf("error cases\n");
    mdesc l[64];
    int n;
    const char *d;

    d = newdir("e_noconfig");
    EXPECT_FAIL(d, fmt("%s/config.json: cannot open", d), NULL, NULL);

    d = newdir("e_noweights");
    write_micro_config(d);
    EXPECT_FAIL(d, fmt("%s: no model.safetensors", d), NULL, NULL);

    d = newdir("e_truncated");
    gen_micro(d, 1, NULL);
    {
        const char *p = fmt("%s/model.safetensors", d);
        struct stat sb;
        stat(p, &sb);
        CHECK(truncate(p, sb.st_size - 10) == 0, "truncate");
        EXPECT_FAIL(d, fmt("%s/model.safetensors: ", d), "tensor norm.weight: data_offsets",
                    "truncated");
        CHECK(truncate(p, 5) == 0, "truncate");
        EXPECT_FAIL(d, fmt("%s/model.safetensors: file too short (5 bytes)", d), NULL, NULL);
    }

    d = newdir("e_hdrlen");
    write_micro_config(d);
    {
        uint8_t b[40] = {0xe8, 0x03}; /* header length 1000, 32 bytes follow */
        write_file(fmt("%s/model.safetensors", d), b, sizeof b);
        EXPECT_FAIL(d,
                    fmt("%s/model.safetensors: header length 1000 beyond "
                        "the end of the file (40 bytes)",
                        d),
                    NULL, NULL);
        b[0] = 0;
        b[7] = 0x80; /* huge */
        write_file(fmt("%s/model.safetensors", d), b, sizeof b);
        EXPECT_FAIL(d, fmt("%s/model.safetensors: header length", d),
                    "exceeds the 100000000-byte limit", NULL);
    }

    d = newdir("e_shape");
    write_micro_config(d);
    n = micro_list(l, "");
    find_md(l, n, "layers.1.mlp.up_proj.weight")->d.shape[1] = 15;
    write_st(fmt("%s/model.safetensors", d), l, 0, n);
    EXPECT_FAIL(d,
                fmt("%s/model.safetensors: tensor layers.1.mlp.up_proj.weight: "
                    "shape [24, 15], expected [24, 16] (intermediate_size, "
                    "hidden_size)",
                    d),
                NULL, NULL);

    d = newdir("e_shape_nd");
    write_micro_config(d);
    n = micro_list(l, "model.");
    find_md(l, n, "model.layers.0.self_attn.k_norm.weight")->d.ndim = 2;
    find_md(l, n, "model.layers.0.self_attn.k_norm.weight")->d.shape[1] = 1;
    write_st(fmt("%s/model.safetensors", d), l, 0, n);
    EXPECT_FAIL(d,
                fmt("%s/model.safetensors: tensor "
                    "model.layers.0.self_attn.k_norm.weight: shape [6, 1], "
                    "expected [6] (head_dim)",
                    d),
                NULL, NULL);

    d = newdir("e_dtype_unknown");
    write_micro_config(d);
    write_raw(fmt("%s/model.safetensors", d),
              "{\"norm.weight\":{\"dtype\":\"BF16\",\"shape\":[16],"
              "\"data_offsets\":[0,32]},\"layers.0.mlp.up_proj.weight\":{"
              "\"dtype\":\"Q4_K\",\"shape\":[24,16],\"data_offsets\":[32,"
              "224]}}",
              224);
    EXPECT_FAIL(d,
                fmt("%s/model.safetensors: tensor layers.0.mlp.up_proj.weight: "
                    "unknown dtype \"Q4_K\"",
                    d),
                NULL, NULL);

    d = newdir("e_dtype_int");
    write_micro_config(d);
    n = micro_list(l, "");
    find_md(l, n, "layers.0.self_attn.v_proj.weight")->d.dtype = ST_I8;
    write_st(fmt("%s/model.safetensors", d), l, 0, n);
    EXPECT_FAIL(d,
                fmt("%s/model.safetensors: tensor layers.0.self_attn.v_proj."
                    "weight: dtype I8 not supported",
                    d),
                NULL, NULL);

    d = newdir("e_missing");
    write_micro_config(d);
    n = micro_list(l, "");
    {
        mdesc *k = find_md(l, n, "layers.1.self_attn.k_norm.weight");
        memmove(k, k + 1, (size_t)(&l[n] - (k + 1)) * sizeof *k);
        n--;
        for (int i = 0; i < n; i++)
            l[i].d.name = l[i].name;
    }
    write_st(fmt("%s/model.safetensors", d), l, 0, n);
    EXPECT_FAIL(d,
                fmt("%s/model.safetensors: tensor "
                    "layers.1.self_attn.k_norm.weight: missing",
                    d),
                NULL, NULL);

    d = newdir("e_layer_beyond");
    write_micro_config(d);
    n = micro_list(l, "");
    snprintf(l[n].name, 96, "layers.2.mlp.up_proj.weight");
    l[n].d = find_md(l, n, "layers.1.mlp.up_proj.weight")->d;
    l[n].d.name = l[n].name;
    write_st(fmt("%s/model.safetensors", d), l, 0, n + 1);
    EXPECT_FAIL(d,
                fmt("%s/model.safetensors: tensor layers.2.mlp.up_proj.weight: "
                    "layer 2, but num_hidden_layers is 2",
                    d),
                NULL, NULL);

    d = newdir("e_dup_prefix");
    write_micro_config(d);
    n = micro_list(l, "");
    snprintf(l[n].name, 96, "model.norm.weight");
    l[n].d = find_md(l, n, "norm.weight")->d;
    l[n].d.name = l[n].name;
    write_st(fmt("%s/model.safetensors", d), l, 0, n + 1);
    EXPECT_FAIL(d,
                fmt("%s/model.safetensors: tensor model.norm.weight: "
                    "duplicate, also in %s/model.safetensors as norm.weight",
                    d, d),
                NULL, NULL);

    /* Sharded by hand: shard 1 = embed + layer 0, shard 2 = the rest. */
    const char *idx_fmt = "{\"metadata\":{},\"weight_map\":{\"embed_tokens.weight\":"
                          "\"model-00001-of-00002.safetensors\",\"norm.weight\":"
                          "\"%s\"}}";
    d = newdir("e_dup_shards");
    write_micro_config(d);
    n = micro_list(l, "");
    write_st(fmt("%s/model-00001-of-00002.safetensors", d), l, 0, 12);
    {
        mdesc l2[64];
        int n2 = 0;
        for (int i = 12; i < n; i++)
            l2[n2++] = l[i];
        l2[n2++] = l[0]; /* embed again */
        for (int i = 0; i < n2; i++)
            l2[i].d.name = l2[i].name;
        write_st(fmt("%s/model-00002-of-00002.safetensors", d), l2, 0, n2);
    }
    {
        const char *j = fmt(idx_fmt, "model-00002-of-00002.safetensors");
        write_file(fmt("%s/model.safetensors.index.json", d), j, strlen(j));
    }
    EXPECT_FAIL(d,
                fmt("%s/model-00002-of-00002.safetensors: tensor "
                    "embed_tokens.weight: duplicate, also in "
                    "%s/model-00001-of-00002.safetensors",
                    d, d),
                NULL, NULL);

    d = newdir("e_missing_shard");
    write_micro_config(d);
    n = micro_list(l, "");
    write_st(fmt("%s/model-00001-of-00002.safetensors", d), l, 0, 12);
    {
        const char *j = fmt(idx_fmt, "model-00002-of-00002.safetensors");
        write_file(fmt("%s/model.safetensors.index.json", d), j, strlen(j));
    }
    EXPECT_FAIL(d, fmt("%s/model-00002-of-00002.safetensors: cannot open", d),
                fmt("(shard named in %s/model.safetensors.index.json for "
                    "tensor norm.weight)",
                    d),
                NULL);

    d = newdir("e_wrong_shard");
    write_micro_config(d);
    n = micro_list(l, "");
    write_st(fmt("%s/model-00001-of-00002.safetensors", d), l, 0, 12);
    write_st(fmt("%s/model-00002-of-00002.safetensors", d), l, 12, n);
    {
        const char *j = fmt(idx_fmt, "model-00001-of-00002.safetensors");
        write_file(fmt("%s/model.safetensors.index.json", d), j, strlen(j));
    }
    EXPECT_FAIL(d,
                fmt("%s/model.safetensors.index.json: tensor norm.weight: "
                    "not in %s/model-00001-of-00002.safetensors",
                    d, d),
                NULL, NULL);
    /* ...and the same files with a correct index load. */
    {
        const char *j = fmt(idx_fmt, "model-00002-of-00002.safetensors");
        write_file(fmt("%s/model.safetensors.index.json", d), j, strlen(j));
        qw_model *m = LOAD_OK(d);
        CHECK(m && m->n_files == 2, "hand-sharded");
        qw_model_free(m);
    }

    d = newdir("e_shard_path");
    write_micro_config(d);
    n = micro_list(l, "");
    write_st(fmt("%s/model-00001-of-00002.safetensors", d), l, 0, 12);
    {
        const char *j = fmt(idx_fmt, "../x.safetensors");
        write_file(fmt("%s/model.safetensors.index.json", d), j, strlen(j));
    }
    EXPECT_FAIL(d,
                fmt("%s/model.safetensors.index.json: tensor norm.weight: "
                    "shard must be a file name",
                    d),
                NULL, NULL);
}

static void test_config_errors(void)
{
    printf("config errors\n");
    const char *d = newdir("cfg");
    static const struct {
        const char *json, *needle;
    } cases[] = {
        {"[1]", "not a JSON object"},
        {"{\"num_hidden_layers\":2,\"num_attention_heads\":4,"
         "\"intermediate_size\":8,\"vocab_size\":10}",
         "field \"hidden_size\" missing"},
        {"{\"hidden_size\":-16,\"num_hidden_layers\":2,\"num_attention_heads\":"
         "4,\"intermediate_size\":8,\"vocab_size\":10}",
         "field \"hidden_size\" must be a positive integer"},
        {"{\"hidden_size\":16,\"num_hidden_layers\":2.5,\"num_attention_heads\":"
         "4,\"intermediate_size\":8,\"vocab_size\":10}",
         "field \"num_hidden_layers\" must be a positive integer"},
        {"{\"hidden_size\":16,\"num_hidden_layers\":2,\"num_attention_heads\":"
         "4,\"num_key_value_heads\":3,\"intermediate_size\":8,\"vocab_size\":"
         "10}",
         "not a multiple of num_key_value_heads (3)"},
        {"{\"hidden_size\":16,\"num_hidden_layers\":2,\"num_attention_heads\":"
         "4,\"head_dim\":5,\"intermediate_size\":8,\"vocab_size\":10}",
         "field \"head_dim\" (5) must be even"},
        {"{\"hidden_size\":16,\"num_hidden_layers\":2,\"num_attention_heads\":"
         "4,\"intermediate_size\":8,\"vocab_size\":10,\"hidden_act\":\"gelu\"}",
         "field \"hidden_act\""},
        {"{\"hidden_size\":16,\"num_hidden_layers\":2,\"num_attention_heads\":"
         "4,\"intermediate_size\":8,\"vocab_size\":10,\"rope_scaling\":"
         "{\"rope_type\":\"yarn\",\"factor\":4}}",
         "field \"rope_scaling\""},
        {"{\"hidden_size\":16,\"num_hidden_layers\":2,\"num_attention_heads\":"
         "4,\"intermediate_size\":8,\"vocab_size\":10,\"rms_norm_eps\":0}",
         "field \"rms_norm_eps\" must be a positive number"},
    };
    char err[EQ_ERRLEN];
    const char *p = fmt("%s/config.json", d);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(p, cases[i].json, strlen(cases[i].json));
        qw_config c;
        err[0] = 0;
        int rc = qw_config_load(p, &c, err, sizeof err);
        CHECK(rc != 0 && strstr(err, p) && strstr(err, cases[i].needle),
              "case %zu: rc %d err \"%s\"", i, rc, err);
    }
    /* Defaults. */
    const char *ok = "{\"hidden_size\":16,\"num_hidden_layers\":2,"
                     "\"num_attention_heads\":4,\"intermediate_size\":8,"
                     "\"vocab_size\":10,\"rope_scaling\":{\"rope_type\":"
                     "\"default\"}}";
    write_file(p, ok, strlen(ok));
    qw_config c;
    CHECK(qw_config_load(p, &c, err, sizeof err) == 0, "%s", err);
    CHECK(c.head_dim == 4 && c.n_kv_heads == 4 && c.rms_eps == 1e-6f && c.rope_theta == 1e6f &&
              c.max_pos == 32768,
          "defaults");
}

static void test_writer(void)
{
    printf("safetensors writer/reader\n");
    const char *d = newdir("writer");
    const char *p = fmt("%s/w.safetensors", d);
    st_desc desc[3] = {
        {"a\"quoted\\name", ST_F32, 2, {3, 5}},
        {"scalar", ST_I64, 0, {0}},
        {"empty", ST_BF16, 2, {0, 7}},
    };
    const char *meta[] = {"format", "pt", "k", "v"};
    char err[EQ_ERRLEN];
    st_writer *w = st_writer_open(p, desc, 3, meta, 2, err, sizeof err);
    CHECK(w != NULL, "%s", err);
    if (!w) return;
    float a[15];
    for (int i = 0; i < 15; i++)
        a[i] = (float)i * 0.5f;
    int64_t s = -42;
    CHECK(st_writer_write(w, a, 20, err, sizeof err) == 0, "%s", err);
    CHECK(st_writer_write(w, (char *)a + 20, 40, err, sizeof err) == 0, "%s", err);
    CHECK(st_writer_write(w, &s, 8, err, sizeof err) == 0, "%s", err);
    CHECK(st_writer_write(w, &s, 1, err, sizeof err) != 0, "overrun accepted");
    CHECK(st_writer_close(w, err, sizeof err) != 0, "close after overrun ok");

    w = st_writer_open(p, desc, 3, meta, 2, err, sizeof err);
    st_writer_write(w, a, 60, err, sizeof err);
    CHECK(st_writer_close(w, err, sizeof err) != 0 &&
              strstr(err, "wrote 60 bytes of tensor data, header declares 68"),
          "short write: %s", err);

    w = st_writer_open(p, desc, 3, meta, 2, err, sizeof err);
    st_writer_write(w, a, 60, err, sizeof err);
    st_writer_write(w, &s, 8, err, sizeof err);
    CHECK(st_writer_close(w, err, sizeof err) == 0, "%s", err);
    st_file f;
    CHECK(st_open(&f, p, err, sizeof err) == 0, "%s", err);
    CHECK(f.hdr.data_start % 8 == 0, "data not 8-aligned");
    CHECK(f.hdr.n_tensors == 3 && f.hdr.n_meta == 2, "counts");
    CHECK(st_header_meta(&f.hdr, "k") && !strcmp(st_header_meta(&f.hdr, "k"), "v"), "meta");
    const st_tensor *t = st_find(&f, "a\"quoted\\name");
    CHECK(t && t->ndim == 2 && t->shape[1] == 5 && t->numel == 15 && !memcmp(st_data(&f, t), a, 60),
          "tensor a");
    t = st_find(&f, "scalar");
    CHECK(t && t->ndim == 0 && t->numel == 1 && !memcmp(st_data(&f, t), &s, 8), "scalar");
    t = st_find(&f, "empty");
    CHECK(t && t->numel == 0 && t->begin == t->end, "empty");
    CHECK(st_find(&f, "nope") == NULL, "absent");
    st_close(&f);
    st_close(&f); /* idempotent */

    CHECK(st_open(&f, fmt("%s/none.safetensors", d), err, sizeof err) != 0 &&
              strstr(err, "none.safetensors: cannot open"),
          "%s", err);
}

/* Header-level checks, straight on buffers. */
static void test_parser(void)
{
    printf("header parser\n");
    static const struct {
        const char *json;
        size_t data;
        const char *needle; /* NULL: must parse */
    } cases[] = {
        {"{}", 0, NULL},
        {"{\"__metadata__\":{\"format\":\"pt\"}}   ", 0, NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}",
         24, NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
         24, "tensor b: data_offsets [8, 16] overlap tensor a"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}",
         24, "tensor a: listed twice"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 16,
         "tensor a: data_offsets [0, 12] hold 12 bytes, but F32 [2, 2] "
         "needs 16"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 16,
         "tensor a: data_offsets [8, 4]: begin > end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 16,
         "tensor a: shape dimension 0 is not a non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 16,
         "tensor a: shape dimension 0"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
         "\"data_offsets\":[0,4]}}",
         16, "tensor a: element count overflows"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
         "\"data_offsets\":[0,4]}}",
         16, "tensor a: shape has 9 dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 16,
         "tensor a: \"data_offsets\" is not a [begin, end] pair"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 16,
         "tensor a: missing or non-string \"dtype\""},
        {"{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 16,
         "tensor a: unknown dtype \"f32\""},
        {"{\"a\":[]}", 0, "tensor a: entry is not a JSON object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
         "tensor a: data_offsets [0, 16] beyond the data section (8 bytes)"},
        {"{\"__metadata__\":{\"x\":1}}", 0, "\"__metadata__\" value for \"x\" is not a string"},
        {"{\"__metadata__\":[]}", 0, "\"__metadata__\" is not a JSON object"},
        {"{} x", 0, "data after the JSON object"},
        {"{\"a\":", 0, "not valid JSON"},
        {"[]", 0, "not a JSON object"},
        {"{\"e\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},"
         "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}",
         2, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].json), len = 8 + n + cases[i].data;
        uint8_t *b = calloc(1, len);
        for (int k = 0; k < 8; k++)
            b[k] = (uint8_t)((uint64_t)n >> (8 * k));
        memcpy(b + 8, cases[i].json, n);
        st_header h;
        char err[EQ_ERRLEN] = "";
        int rc = st_parse_header(b, len, &h, err, sizeof err);
        if (!cases[i].needle)
            CHECK(rc == 0, "case %zu should parse: %s", i, err);
        else
            CHECK(rc != 0 && strstr(err, cases[i].needle),
                  "case %zu: rc %d, err \"%s\", want \"%s\"", i, rc, err, cases[i].needle);
        st_header_free(&h);
        free(b);
    }
    st_header h;
    char err[EQ_ERRLEN];
    CHECK(st_parse_header((const uint8_t *)"1234567", 7, &h, err, sizeof err) != 0 &&
              strstr(err, "file too short (7 bytes)"),
          "%s", err);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : "";
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/embedq_loader_XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    if (strcmp(only, "--tiny-only") != 0) {
        test_parser();
        test_writer();
        test_config_errors();
        test_params();
        test_micro_ok();
        test_errors();
    }
    if (strcmp(only, "--micro-only") != 0) test_tiny();
    if (!getenv("EMBEDQ_KEEP_TEST_DIRS")) rm_rf(base);
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
