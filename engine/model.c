/* model.c - config.json + (sharded) safetensors loader; see model.h.
 *
 * Loading is three steps:
 *   1. qw_config_load: config.json -> qw_config, validated.
 *   2. open the weight files: model.safetensors.index.json and every shard
 *      its weight_map names (each listed tensor must be in its shard), or
 *      model.safetensors alone. st_open checks each header (safetensors.c).
 *   3. walk every tensor of every file: strip an optional `model.` prefix,
 *      skip lm_head.* and unknown names (debug log), and bind the rest to
 *      their slot in qw_model after checking dtype, shape and alignment.
 *      A slot bound twice (same name in two shards, or with and without the
 *      prefix) is an error; so is a slot left empty.
 * Every error is one line: "<file>: tensor <name>: <what>".
 */
#include "model.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "safetensors.h"

/* ---- config ---- */

static const cJSON *field(const cJSON *root, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsNull(j) ? NULL : j;
}

/* Reads a positive int field; required fields must be present. Returns 1 if
 * set, 0 if absent (optional), -1 on error. */
static int get_int(const cJSON *root, const char *key, bool required, int *out, const char *path,
                   char *err, size_t errlen)
{
    const cJSON *j = field(root, key);
    if (!j) {
        if (required) return eq_err(err, errlen, "%s: field \"%s\" missing", path, key);
        return 0;
    }
    double d = cJSON_IsNumber(j) ? j->valuedouble : -1.0;
    if (!(d >= 1.0) || d > (double)INT_MAX || d != floor(d))
        return eq_err(err, errlen, "%s: field \"%s\" must be a positive integer", path, key);
    *out = (int)d;
    return 1;
}

static int get_pos_float(const cJSON *root, const char *key, float *out, const char *path,
                         char *err, size_t errlen)
{
    const cJSON *j = field(root, key);
    if (!j) return 0;
    if (!cJSON_IsNumber(j) || !(j->valuedouble > 0.0) || !isfinite((float)j->valuedouble))
        return eq_err(err, errlen, "%s: field \"%s\" must be a positive number", path, key);
    *out = (float)j->valuedouble;
    return 1;
}

static int get_bool(const cJSON *root, const char *key, bool *out, const char *path, char *err,
                    size_t errlen)
{
    const cJSON *j = field(root, key);
    if (!j) return 0;
    if (!cJSON_IsBool(j))
        return eq_err(err, errlen, "%s: field \"%s\" must be true or false", path, key);
    *out = cJSON_IsTrue(j);
    return 1;
}

int qw_config_load(const char *path, qw_config *cfg, char *err, size_t errlen)
{
    size_t len = 0;
    char *text = eq_read_file(path, &len, err, errlen);
    if (!text) return -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return eq_err(err, errlen, "%s: not a JSON object", path);
    }
    qw_config c = {0};
    c.max_pos = 32768;
    c.rms_eps = 1e-6f;
    c.rope_theta = 1000000.0f;
    c.tie_word_embeddings = false; /* Qwen3Config's default */
    int rc = -1;
    if (get_int(root, "hidden_size", true, &c.hidden, path, err, errlen) < 0 ||
        get_int(root, "num_hidden_layers", true, &c.n_layers, path, err, errlen) < 0 ||
        get_int(root, "num_attention_heads", true, &c.n_heads, path, err, errlen) < 0 ||
        get_int(root, "intermediate_size", true, &c.intermediate, path, err, errlen) < 0 ||
        get_int(root, "vocab_size", true, &c.vocab_rows, path, err, errlen) < 0)
        goto out;
    int r;
    c.n_kv_heads = c.n_heads; /* transformers' default */
    if (get_int(root, "num_key_value_heads", false, &c.n_kv_heads, path, err, errlen) < 0) goto out;
    if ((r = get_int(root, "head_dim", false, &c.head_dim, path, err, errlen)) < 0) goto out;
    if (r == 0) {
        if (c.hidden % c.n_heads) {
            eq_err(err, errlen,
                   "%s: field \"head_dim\" missing and hidden_size %d is not a multiple of "
                   "num_attention_heads %d",
                   path, c.hidden, c.n_heads);
            goto out;
        }
        c.head_dim = c.hidden / c.n_heads;
    }
    if (get_int(root, "max_position_embeddings", false, &c.max_pos, path, err, errlen) < 0 ||
        get_pos_float(root, "rms_norm_eps", &c.rms_eps, path, err, errlen) < 0 ||
        get_pos_float(root, "rope_theta", &c.rope_theta, path, err, errlen) < 0 ||
        get_bool(root, "tie_word_embeddings", &c.tie_word_embeddings, path, err, errlen) < 0)
        goto out;
    if (c.n_heads % c.n_kv_heads) {
        eq_err(
            err, errlen,
            "%s: field \"num_attention_heads\" (%d) is not a multiple of num_key_value_heads (%d)",
            path, c.n_heads, c.n_kv_heads);
        goto out;
    }
    if (c.head_dim % 2) {
        eq_err(err, errlen, "%s: field \"head_dim\" (%d) must be even (RoPE)", path, c.head_dim);
        goto out;
    }
    /* Things this engine does not compute: refuse rather than be wrong. */
    const cJSON *j = field(root, "hidden_act");
    if (j && !(cJSON_IsString(j) && !strcmp(j->valuestring, "silu"))) {
        eq_err(err, errlen, "%s: field \"hidden_act\": only \"silu\" is supported", path);
        goto out;
    }
    bool flag = false;
    if (get_bool(root, "attention_bias", &flag, path, err, errlen) < 0) goto out;
    if (flag) {
        eq_err(err, errlen,
               "%s: field \"attention_bias\": true is not supported (Qwen3 has no attention bias)",
               path);
        goto out;
    }
    flag = false;
    if (get_bool(root, "use_sliding_window", &flag, path, err, errlen) < 0) goto out;
    if (flag) {
        eq_err(err, errlen, "%s: field \"use_sliding_window\": true is not supported", path);
        goto out;
    }
    j = field(root, "rope_scaling");
    if (j) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "rope_type");
        if (!t) t = cJSON_GetObjectItemCaseSensitive(j, "type");
        if (!cJSON_IsObject(j) || !cJSON_IsString(t) || strcmp(t->valuestring, "default") != 0) {
            eq_err(err, errlen,
                   "%s: field \"rope_scaling\": only null or the default rope is supported", path);
            goto out;
        }
    }
    j = field(root, "model_type");
    if (j && !(cJSON_IsString(j) && !strcmp(j->valuestring, "qwen3")))
        eq_log(EQ_LOG_WARN, "%s: model_type is not \"qwen3\"; loading anyway", path);
    *cfg = c;
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

uint64_t qw_config_n_params(const qw_config *c)
{
    const uint64_t H = (uint64_t)c->hidden, I = (uint64_t)c->intermediate,
                   D = (uint64_t)c->head_dim;
    const uint64_t QD = (uint64_t)c->n_heads * D, KD = (uint64_t)c->n_kv_heads * D;
    uint64_t layer = 2 * QD * H + 2 * KD * H + 3 * I * H + 2 * D + 2 * H;
    return (uint64_t)c->vocab_rows * H + (uint64_t)c->n_layers * layer + H;
}

/* ---- tensor slots ---- */

/* The 11 per-layer tensors: suffix after "layers.N.", and their shapes. */
enum { D_HID, D_QD, D_KD, D_INT, D_HD, D_VOCAB, D_ONE };
static const char *dim_names[] = {
    [D_HID] = "hidden_size",
    [D_QD] = "num_attention_heads*head_dim",
    [D_KD] = "num_key_value_heads*head_dim",
    [D_INT] = "intermediate_size",
    [D_HD] = "head_dim",
    [D_VOCAB] = "vocab_size",
    [D_ONE] = "",
};

static const struct {
    const char *suffix;
    size_t off; /* offset of the qw_weight in qw_layer */
    int rows, cols;
} layer_slots[] = {
    {"input_layernorm.weight", offsetof(qw_layer, attn_norm), D_HID, D_ONE},
    {"self_attn.q_proj.weight", offsetof(qw_layer, q), D_QD, D_HID},
    {"self_attn.k_proj.weight", offsetof(qw_layer, k), D_KD, D_HID},
    {"self_attn.v_proj.weight", offsetof(qw_layer, v), D_KD, D_HID},
    {"self_attn.o_proj.weight", offsetof(qw_layer, o), D_HID, D_QD},
    {"self_attn.q_norm.weight", offsetof(qw_layer, q_norm), D_HD, D_ONE},
    {"self_attn.k_norm.weight", offsetof(qw_layer, k_norm), D_HD, D_ONE},
    {"post_attention_layernorm.weight", offsetof(qw_layer, post_norm), D_HID, D_ONE},
    {"mlp.gate_proj.weight", offsetof(qw_layer, gate), D_INT, D_HID},
    {"mlp.up_proj.weight", offsetof(qw_layer, up), D_INT, D_HID},
    {"mlp.down_proj.weight", offsetof(qw_layer, down), D_HID, D_INT},
};
#define N_LAYER_SLOTS (sizeof layer_slots / sizeof layer_slots[0])

static int64_t dim_value(const qw_config *c, int d)
{
    switch (d) {
    case D_HID:
        return c->hidden;
    case D_QD:
        return (int64_t)c->n_heads * c->head_dim;
    case D_KD:
        return (int64_t)c->n_kv_heads * c->head_dim;
    case D_INT:
        return c->intermediate;
    case D_HD:
        return c->head_dim;
    case D_VOCAB:
        return c->vocab_rows;
    default:
        return 1;
    }
}

typedef struct {
    qw_weight *w;
    int rows, cols;   /* D_* */
    int file;         /* index of the file it was bound from, -1 if not */
    const char *name; /* name as stored in that file */
} slot;

/* Finds the slot for a canonical name (prefix already stripped). Returns
 * the slot index, -1 for an unknown name, -2 for a layer index beyond the
 * config (written into *bad_layer). */
static long slot_index(const qw_config *c, const char *nm, long *bad_layer)
{
    if (!strcmp(nm, "embed_tokens.weight")) return 0;
    if (!strcmp(nm, "norm.weight")) return 1;
    if (strncmp(nm, "layers.", 7) != 0) return -1;
    const char *p = nm + 7;
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9')) return -1;
    long l = 0;
    while (*p >= '0' && *p <= '9') {
        l = l * 10 + (*p++ - '0');
        if (l > 1000000) return -1;
    }
    if (*p++ != '.') return -1;
    for (size_t s = 0; s < N_LAYER_SLOTS; s++) {
        if (strcmp(p, layer_slots[s].suffix) != 0) continue;
        if (l >= c->n_layers) {
            *bad_layer = l;
            return -2;
        }
        return 2 + l * (long)N_LAYER_SLOTS + (long)s;
    }
    return -1;
}

static void fmt_shape(char *buf, size_t n, const int64_t *d, int nd)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)d[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

static void fmt_expected(char *buf, size_t n, const qw_config *c, const slot *s)
{
    if (s->cols == D_ONE)
        snprintf(buf, n, "[%lld] (%s)", (long long)dim_value(c, s->rows), dim_names[s->rows]);
    else
        snprintf(buf, n, "[%lld, %lld] (%s, %s)", (long long)dim_value(c, s->rows),
                 (long long)dim_value(c, s->cols), dim_names[s->rows], dim_names[s->cols]);
}

/* Binds tensor t of file f to slot s after checking it. */
static int bind(const qw_config *c, slot *s, const st_file *f, int fi, const st_tensor *t,
                char *err, size_t errlen)
{
    eq_dtype dt;
    switch (t->dtype) {
    case ST_BF16:
        dt = EQ_BF16;
        break;
    case ST_F16:
        dt = EQ_F16;
        break;
    case ST_F32:
        dt = EQ_F32;
        break;
    default:
        return eq_err(err, errlen,
                      "%s: tensor %s: dtype %s not supported (expected BF16, F16 or F32)", f->path,
                      t->name, st_dtype_name(t->dtype));
    }
    int want_nd = s->cols == D_ONE ? 1 : 2;
    int64_t r = dim_value(c, s->rows), k = dim_value(c, s->cols);
    if (t->ndim != want_nd || t->shape[0] != r || (want_nd == 2 && t->shape[1] != k)) {
        char got[128], want[160];
        fmt_shape(got, sizeof got, t->shape, t->ndim);
        fmt_expected(want, sizeof want, c, s);
        return eq_err(err, errlen, "%s: tensor %s: shape %s, expected %s", f->path, t->name, got,
                      want);
    }
    const uint8_t *p = st_data(f, t);
    if ((uintptr_t)p % eq_dtype_size(dt))
        return eq_err(err, errlen,
                      "%s: tensor %s: data at file offset %llu is not aligned to its %zu-byte "
                      "elements; re-save the checkpoint",
                      f->path, t->name, (unsigned long long)(f->hdr.data_start + t->begin),
                      eq_dtype_size(dt));
    s->w->data = p;
    s->w->dtype = dt;
    s->w->rows = r;
    s->w->cols = want_nd == 2 ? k : 1;
    s->file = fi;
    s->name = t->name;
    return 0;
}

/* ---- files ---- */

static bool file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Opens the shards named by the index at ipath into m->files and checks
 * that every tensor listed is in its shard. */
static int open_sharded(const char *dir, const char *ipath, qw_model *m, char *err, size_t errlen)
{
    size_t len = 0;
    char *text = eq_read_file(ipath, &len, err, errlen);
    if (!text) return -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    int rc = -1;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(root) || !cJSON_IsObject(wm)) {
        eq_err(err, errlen, "%s: no \"weight_map\" object", ipath);
        goto out;
    }
    int n = cJSON_GetArraySize(wm);
    if (n == 0) {
        eq_err(err, errlen, "%s: \"weight_map\" is empty", ipath);
        goto out;
    }
    const char **names = calloc((size_t)n, sizeof(char *)); /* shards */
    m->files = calloc((size_t)n, sizeof(st_file));
    if (!names || !m->files) {
        free(names);
        eq_err(err, errlen, "%s: out of memory", ipath);
        goto out;
    }
    int ns = 0;
    for (const cJSON *e = wm->child; e; e = e->next) {
        const char *sh = cJSON_IsString(e) ? e->valuestring : NULL;
        if (!sh || !*sh || strchr(sh, '/') || !strcmp(sh, "..")) {
            eq_err(err, errlen, "%s: tensor %s: shard must be a file name in the same directory",
                   ipath, e->string ? e->string : "?");
            goto out_names;
        }
        int fi = 0;
        while (fi < ns && strcmp(names[fi], sh) != 0)
            fi++;
        if (fi == ns) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, sh);
            char msg[EQ_ERRLEN];
            if (st_open(&m->files[ns], path, msg, sizeof msg) != 0) {
                eq_err(err, errlen, "%s (shard named in %s for tensor %s)", msg, ipath, e->string);
                goto out_names;
            }
            names[ns++] = sh;
            m->n_files = ns;
        }
        if (!st_find(&m->files[fi], e->string)) {
            eq_err(err, errlen, "%s: tensor %s: not in %s, the shard the weight_map names", ipath,
                   e->string, m->files[fi].path);
            goto out_names;
        }
    }
    rc = 0;
out_names:
    free(names);
out:
    cJSON_Delete(root);
    return rc;
}

int qw_model_load(const char *dir, qw_model **out, char *err, size_t errlen)
{
    *out = NULL;
    char path[4096], ipath[4096], wpath[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    qw_model *m = calloc(1, sizeof *m);
    if (!m) return eq_err(err, errlen, "%s: out of memory", dir);
    slot *slots = NULL;
    if (qw_config_load(path, &m->cfg, err, errlen) != 0) goto fail;
    const qw_config *c = &m->cfg;

    /* Weight files. */
    snprintf(ipath, sizeof ipath, "%s/model.safetensors.index.json", dir);
    snprintf(wpath, sizeof wpath, "%s/model.safetensors", dir);
    const char *where; /* the file a missing tensor is reported against */
    if (file_exists(ipath)) {
        if (open_sharded(dir, ipath, m, err, errlen) != 0) goto fail;
        where = ipath;
    } else if (file_exists(wpath)) {
        m->files = calloc(1, sizeof(st_file));
        if (!m->files) {
            eq_err(err, errlen, "%s: out of memory", wpath);
            goto fail;
        }
        if (st_open(&m->files[0], wpath, err, errlen) != 0) goto fail;
        m->n_files = 1;
        where = wpath;
    } else {
        eq_err(err, errlen, "%s: no model.safetensors or model.safetensors.index.json", dir);
        goto fail;
    }

    /* Slots: 0 embed, 1 final norm, then n_layers * 11. */
    m->layers = calloc((size_t)c->n_layers, sizeof(qw_layer));
    size_t n_slots = 2 + (size_t)c->n_layers * N_LAYER_SLOTS;
    slots = calloc(n_slots, sizeof(slot));
    if (!m->layers || !slots) {
        eq_err(err, errlen, "%s: out of memory", dir);
        goto fail;
    }
    slots[0] = (slot){&m->embed, D_VOCAB, D_HID, -1, NULL};
    slots[1] = (slot){&m->final_norm, D_HID, D_ONE, -1, NULL};
    for (int l = 0; l < c->n_layers; l++)
        for (size_t s = 0; s < N_LAYER_SLOTS; s++) {
            slot *sl = &slots[2 + (size_t)l * N_LAYER_SLOTS + s];
            sl->w = (qw_weight *)((char *)&m->layers[l] + layer_slots[s].off);
            sl->rows = layer_slots[s].rows;
            sl->cols = layer_slots[s].cols;
            sl->file = -1;
        }

    /* Bind every tensor of every file. */
    for (int fi = 0; fi < m->n_files; fi++) {
        const st_file *f = &m->files[fi];
        for (size_t i = 0; i < f->hdr.n_tensors; i++) {
            const st_tensor *t = &f->hdr.tensors[i];
            const char *nm = t->name;
            if (!strncmp(nm, "model.", 6)) nm += 6;
            if (!strncmp(nm, "lm_head.", 8)) {
                eq_log(EQ_LOG_DEBUG, "%s: ignoring %s", f->path, t->name);
                continue;
            }
            long bad_layer = 0;
            long si = slot_index(c, nm, &bad_layer);
            if (si == -1) {
                eq_log(EQ_LOG_DEBUG, "%s: ignoring unknown tensor %s", f->path, t->name);
                continue;
            }
            if (si == -2) {
                eq_err(err, errlen, "%s: tensor %s: layer %ld, but num_hidden_layers is %d",
                       f->path, t->name, bad_layer, c->n_layers);
                goto fail;
            }
            slot *s = &slots[si];
            if (s->file >= 0) {
                eq_err(err, errlen, "%s: tensor %s: duplicate, also in %s as %s", f->path, t->name,
                       m->files[s->file].path, s->name);
                goto fail;
            }
            if (bind(c, s, f, fi, t, err, errlen) != 0) goto fail;
            m->n_params += t->numel;
        }
    }
    for (size_t si = 0; si < n_slots; si++) {
        if (slots[si].file >= 0) continue;
        char nm[96], want[160];
        if (si == 0)
            snprintf(nm, sizeof nm, "embed_tokens.weight");
        else if (si == 1)
            snprintf(nm, sizeof nm, "norm.weight");
        else
            snprintf(nm, sizeof nm, "layers.%zu.%s", (si - 2) / N_LAYER_SLOTS,
                     layer_slots[(si - 2) % N_LAYER_SLOTS].suffix);
        fmt_expected(want, sizeof want, c, &slots[si]);
        eq_err(err, errlen, "%s: tensor %s: missing (expected shape %s)", where, nm, want);
        goto fail;
    }
    EQ_ASSERT(m->n_params == qw_config_n_params(c));
    free(slots);
    eq_log(EQ_LOG_DEBUG, "%s: %d file(s), %llu parameters", dir, m->n_files,
           (unsigned long long)m->n_params);
    *out = m;
    return 0;
fail:
    free(slots);
    qw_model_free(m);
    return -1;
}

void qw_model_free(qw_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_files; i++)
        st_close(&m->files[i]);
    free(m->files);
    free(m->layers);
    free(m);
}
