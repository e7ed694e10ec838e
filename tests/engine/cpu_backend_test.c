/* cpu_backend_test.c - the CPU backend on its own, on a generated checkpoint.
 *
 * Writes the `tiny` preset (genmodel.c, random bf16 weights, real vocab
 * size) into a temporary directory, loads it with qw_model_load, and checks:
 *   - packing: a sequence gives the same vector alone, packed with others in
 *     order, in reverse order, and in random groupings (cosine >= 0.99999);
 *   - threads: 1 thread and 2 threads agree (cosine >= 0.99999);
 *   - Matryoshka: dims[i] < hidden gives the first dims[i] values of the full
 *     pooled state, normalized after truncation, zeros after dims[i];
 *   - every output value is written (output poisoned with NaN first), every
 *     vector has unit norm, nothing is NaN/Inf;
 *   - dims == NULL and dims[i] == 0 mean hidden;
 *   - contract violations (bad id, too many tokens, too long a sequence)
 *     return -1 with a message, and so does a non-finite hidden state;
 *   - F16 and F32 checkpoints of the same seed give vectors close to the
 *     BF16 one (the dtype conversion paths).
 * Agreement with the model's math is tests/engine/embed_vs_ref.py's job.
 *
 * Usage: cpu_backend_test [--quick]   (--quick or EMBEDQ_TEST_QUICK=1:
 * fewer, shorter sequences, for sanitizer builds). Exit 0 on success.
 */
#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "cpu_backend.h"
#include "genmodel.h"
#include "model.h"

#define TEST_RNG_SEED 0x9e3779b97f4a7c15ull
#include "../common/check.h"

static void poison(float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = NAN;
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

/* Generates the tiny preset with dtype t into a new temp dir (*dir) and
 * loads it. Returns NULL on failure. */
static qw_model *gen_and_load(eq_dtype t, char *dir, size_t dirlen)
{
    char err[EQ_ERRLEN];
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, dirlen, "%s/embedq_cpu_backend_test.XXXXXX", tmp);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return NULL;
    }
    qw_config cfg;
    if (genmodel_preset("tiny", &cfg, err, sizeof err)) {
        fprintf(stderr, "genmodel_preset: %s\n", err);
        return NULL;
    }
    genmodel_opts o = GENMODEL_OPTS_INIT;
    o.tokenizer_json = ""; /* the backend needs no tokenizer */
    o.dtype = t;
    if (genmodel_write_cfg(&cfg, dir, 42, &o, err, sizeof err)) {
        fprintf(stderr, "genmodel_write_cfg: %s\n", err);
        return NULL;
    }
    qw_model *m = NULL;
    if (qw_model_load(dir, &m, err, sizeof err)) {
        fprintf(stderr, "qw_model_load: %s\n", err);
        return NULL;
    }
    return m;
}

typedef struct {
    int n_seqs;
    int *len;      /* (n_seqs) */
    int32_t **ids; /* (n_seqs) -> (len[i]) */
    int total, max_len;
} seq_set;

static void make_seqs(seq_set *s, const int *lens, int n, int vocab)
{
    s->n_seqs = n;
    s->len = malloc(sizeof(int) * (size_t)n);
    s->ids = malloc(sizeof(int32_t *) * (size_t)n);
    s->total = s->max_len = 0;
    for (int i = 0; i < n; i++) {
        s->len[i] = lens[i];
        s->ids[i] = malloc(sizeof(int32_t) * (size_t)lens[i]);
        for (int j = 0; j < lens[i]; j++)
            s->ids[i][j] = (int32_t)(rng_next() % (uint32_t)vocab);
        s->ids[i][0] = i == 0 ? 0 : s->ids[i][0]; /* the table's first row */
        if (i == 1)
            s->ids[i][lens[i] - 1] = vocab - 1; /* the table's last row */
        else if (i % 2 == 0)
            s->ids[i][lens[i] - 1] = 151643; /* <|endoftext|> */
        s->total += lens[i];
        if (lens[i] > s->max_len) s->max_len = lens[i];
    }
}

static void free_seqs(seq_set *s)
{
    for (int i = 0; i < s->n_seqs; i++)
        free(s->ids[i]);
    free(s->ids);
    free(s->len);
}

/* Embeds the sequences order[0..k) as one packed batch with dims (per
 * sequence index, may be NULL) into out (k, hidden) in `order` order.
 * Checks every value was written. Returns cpu_backend_embed's result. */
static int embed_packed(cpu_backend *b, const seq_set *s, const int *order, int k,
                        const int *dims_by_seq, int hidden, float *out, int32_t *ids, int32_t *cu,
                        int *dims)
{
    char err[EQ_ERRLEN];
    cu[0] = 0;
    for (int i = 0; i < k; i++) {
        int q = order[i];
        memcpy(ids + cu[i], s->ids[q], sizeof(int32_t) * (size_t)s->len[q]);
        cu[i + 1] = cu[i] + s->len[q];
        dims[i] = dims_by_seq ? dims_by_seq[q] : hidden;
    }
    poison(out, (size_t)k * hidden);
    int rc = cpu_backend_embed(b, ids, cu, k, dims, out, err, sizeof err);
    CHECK(rc == 0, "cpu_backend_embed: %s", err);
    for (size_t i = 0; i < (size_t)k * hidden; i++)
        if (!isfinite(out[i])) {
            CHECK(0, "output value %zu not written / not finite", i);
            break;
        }
    return rc;
}

int main(int argc, char **argv)
{
    bool quick = (argc > 1 && !strcmp(argv[1], "--quick")) ||
                 (getenv("EMBEDQ_TEST_QUICK") && strcmp(getenv("EMBEDQ_TEST_QUICK"), "0"));
    char err[EQ_ERRLEN], dir[4096];
    qw_model *m = gen_and_load(EQ_BF16, dir, sizeof dir);
    if (!m) return 1;
    const int D = m->cfg.hidden, V = m->cfg.vocab_rows;

    /* Lengths around the attention block size (64) and one long sequence. */
    static const int lens_full[] = {1, 2, 7, 63, 64, 65, 127, 129, 300, 1, 33, 700, 5, 2048};
    static const int lens_quick[] = {1, 2, 7, 63, 64, 65, 129, 1, 300};
    const int *lens = quick ? lens_quick : lens_full;
    const int n = quick ? (int)(sizeof lens_quick / sizeof *lens_quick)
                        : (int)(sizeof lens_full / sizeof *lens_full);
    seq_set s;
    make_seqs(&s, lens, n, V);

    cpu_backend *b = cpu_backend_new(m, s.total, s.max_len, 0, CPU_PRECISION_FP32, err, sizeof err);
    CHECK(b != NULL, "cpu_backend_new: %s", err);
    if (!b) return 1;

    float *single = malloc(sizeof(float) * (size_t)n * D); /* (n, D) reference */
    float *out = malloc(sizeof(float) * (size_t)n * D);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)s.total);
    int32_t *cu = malloc(sizeof(int32_t) * (size_t)(n + 1));
    int *dims = malloc(sizeof(int) * (size_t)n), *order = malloc(sizeof(int) * (size_t)n);

    /* 1. every sequence alone */
    for (int i = 0; i < n; i++) {
        embed_packed(b, &s, &i, 1, NULL, D, single + (size_t)i * D, ids, cu, dims);
        double nrm = sqrt(dot(single + (size_t)i * D, single + (size_t)i * D, D));
        CHECK(fabs(nrm - 1.0) < 1e-5, "seq %d: norm %.8f", i, nrm);
    }
    for (int i = 1; i < n; i++) /* different inputs, different vectors */
        CHECK(cosine(single, single + (size_t)i * D, D) < 0.999, "seq %d equals seq 0", i);

    /* 2. packed: in order, reversed, random groupings */
    double min_cos = 1.0, max_abs = 0.0;
    for (int trial = 0; trial < (quick ? 4 : 8); trial++) {
        for (int i = 0; i < n; i++)
            order[i] = trial == 1 ? n - 1 - i : i;
        if (trial >= 2)
            for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
                int j = (int)(rng_next() % (uint32_t)(i + 1)), t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        for (int start = 0; start < n;) {
            int k = trial < 2 ? n : 1 + (int)(rng_next() % (uint32_t)(n - start));
            if (start + k > n) k = n - start;
            embed_packed(b, &s, order + start, k, NULL, D, out, ids, cu, dims);
            for (int i = 0; i < k; i++) {
                const float *got = out + (size_t)i * D,
                            *want = single + (size_t)order[start + i] * D;
                double c = cosine(got, want, D);
                if (c < min_cos) min_cos = c;
                for (int j = 0; j < D; j++)
                    if (fabs(got[j] - want[j]) > max_abs) max_abs = fabs(got[j] - want[j]);
                CHECK(c >= 0.99999, "trial %d: seq %d (len %d) packed vs alone: cosine %.8f", trial,
                      order[start + i], s.len[order[start + i]], c);
            }
            start += k;
        }
    }
    printf("packed vs alone: min cosine %.9f, max |diff| %.3g (%d sequences, %d tokens)\n", min_cos,
           max_abs, n, s.total);

    /* 3. Matryoshka: truncate THEN normalize; zeros after dims; dims 0 = hidden */
    int *dseq = malloc(sizeof(int) * (size_t)n);
    static const int dchoice[] = {32, 33, 48, 95, 96, 0, 1};
    for (int i = 0; i < n; i++) {
        dseq[i] = dchoice[i % (int)(sizeof dchoice / sizeof *dchoice)];
        order[i] = i;
    }
    embed_packed(b, &s, order, n, dseq, D, out, ids, cu, dims);
    double min_mcos = 1.0;
    for (int i = 0; i < n; i++) {
        const int d = dseq[i] ? dseq[i] : D;
        const float *got = out + (size_t)i * D, *full = single + (size_t)i * D;
        double nrm = sqrt(dot(got, got, d)), c = cosine(got, full, d);
        if (c < min_mcos) min_mcos = c;
        CHECK(fabs(nrm - 1.0) < 1e-5, "seq %d dims %d: norm %.8f", i, d, nrm);
        CHECK(c >= 0.99999, "seq %d dims %d: cosine to the full vector's prefix %.8f", i, d, c);
        if (d < D) {
            double prefix_norm = sqrt(dot(full, full, d)); /* < 1: renormalized */
            CHECK(prefix_norm < 1.0 - 1e-4 || d == D, "seq %d: prefix norm %.6f", i, prefix_norm);
        }
        for (int j = d; j < D; j++)
            if (got[j] != 0.0f) {
                CHECK(0, "seq %d dims %d: value %d after dims is %g, not 0", i, d, j, got[j]);
                break;
            }
    }
    printf("Matryoshka: min cosine to the truncated full vector %.9f\n", min_mcos);

    /* dims == NULL means hidden for all */
    cu[0] = 0;
    for (int i = 0; i < 3; i++) {
        memcpy(ids + cu[i], s.ids[i], sizeof(int32_t) * (size_t)s.len[i]);
        cu[i + 1] = cu[i] + s.len[i];
    }
    poison(out, (size_t)3 * D);
    CHECK(cpu_backend_embed(b, ids, cu, 3, NULL, out, err, sizeof err) == 0, "dims NULL: %s", err);
    for (int i = 0; i < 3; i++)
        CHECK(cosine(out + (size_t)i * D, single + (size_t)i * D, D) >= 0.99999, "dims NULL seq %d",
              i);

    /* 4. contract violations return -1 with a message */
    int32_t bad_ids[2] = {5, V};
    int32_t cu2[2] = {0, 2};
    err[0] = 0;
    CHECK(cpu_backend_embed(b, bad_ids, cu2, 1, NULL, out, err, sizeof err) == -1 && err[0],
          "id == vocab_rows accepted");
    bad_ids[1] = -1;
    CHECK(cpu_backend_embed(b, bad_ids, cu2, 1, NULL, out, err, sizeof err) == -1,
          "negative id accepted");
    int32_t cu_big[2] = {0, s.total + 1};
    CHECK(cpu_backend_embed(b, ids, cu_big, 1, NULL, out, err, sizeof err) == -1,
          "more than max_tokens accepted");
    int32_t cu_empty[3] = {0, 0, 1};
    CHECK(cpu_backend_embed(b, ids, cu_empty, 2, NULL, out, err, sizeof err) == -1,
          "empty sequence accepted");
    int bad_dims[1] = {D + 1};
    CHECK(cpu_backend_embed(b, ids, cu2, 1, bad_dims, out, err, sizeof err) == -1,
          "dims > hidden accepted");
    /* The message states the range the check accepts: 0 (all) .. hidden. */
    char want[64];
    snprintf(want, sizeof want, "not in 0..%d (0 = all %d)", D, D);
    CHECK(strstr(err, want) != NULL, "dims message: %s", err);
    bad_dims[0] = -1;
    CHECK(cpu_backend_embed(b, ids, cu2, 1, bad_dims, out, err, sizeof err) == -1,
          "dims < 0 accepted");
    bad_dims[0] = 0;
    CHECK(cpu_backend_embed(b, ids, cu2, 1, bad_dims, out, err, sizeof err) == 0,
          "dims 0 (all) refused: %s", err);

    /* 5. one thread vs all threads */
    cpu_backend *b1 =
        cpu_backend_new(m, s.total, s.max_len, 1, CPU_PRECISION_FP32, err, sizeof err);
    CHECK(b1 != NULL, "cpu_backend_new(threads 1): %s", err);
    if (b1) {
        for (int i = 0; i < n; i++)
            order[i] = i;
        embed_packed(b1, &s, order, n, NULL, D, out, ids, cu, dims);
        double mc = 1.0;
        for (int i = 0; i < n; i++) {
            double c = cosine(out + (size_t)i * D, single + (size_t)i * D, D);
            if (c < mc) mc = c;
        }
        CHECK(mc >= 0.99999, "1 thread vs default threads: min cosine %.8f", mc);
        printf("1 thread vs %d: min cosine %.9f\n", omp_get_max_threads(), mc);
        cpu_backend_free(b1);
    }
    /* a backend for shorter sequences rejects longer ones */
    cpu_backend *bs = cpu_backend_new(m, s.total, 8, 0, CPU_PRECISION_FP32, err, sizeof err);
    CHECK(bs != NULL, "cpu_backend_new(max_seq_len 8): %s", err);
    if (bs) {
        int32_t cu9[2] = {0, 9};
        CHECK(cpu_backend_embed(bs, ids, cu9, 1, NULL, out, err, sizeof err) == -1,
              "sequence longer than max_seq_len accepted");
        cpu_backend_free(bs);
    }

    /* an overflow fails the batch instead of returning NaN/Inf: the same
     * weights but a final norm of +Inf */
    {
        qw_model inf_model = *m;
        uint16_t *inf_norm = malloc(sizeof(uint16_t) * (size_t)D);
        for (int i = 0; i < D; i++)
            inf_norm[i] = 0x7f80; /* bf16 +Inf */
        inf_model.final_norm.data = inf_norm;
        inf_model.final_norm.dtype = EQ_BF16;
        cpu_backend *bi =
            cpu_backend_new(&inf_model, s.total, s.max_len, 0, CPU_PRECISION_FP32, err, sizeof err);
        CHECK(bi != NULL, "cpu_backend_new(inf norm): %s", err);
        if (bi) {
            err[0] = 0;
            CHECK(cpu_backend_embed(bi, s.ids[3], cu2, 1, NULL, out, err, sizeof err) == -1 &&
                      strstr(err, "non-finite"),
                  "non-finite hidden state not reported (%s)", err);
            cpu_backend_free(bi);
        }
        free(inf_norm);
    }

    cpu_backend_free(b);
    qw_model_free(m);
    rm_dir(dir);

    /* 6. F16 / F32 checkpoints of the same seed: the conversion paths */
    static const eq_dtype other[] = {EQ_F16, EQ_F32};
    for (int t = 0; t < 2; t++) {
        char dir2[4096];
        qw_model *m2 = gen_and_load(other[t], dir2, sizeof dir2);
        CHECK(m2 != NULL, "%s checkpoint", eq_dtype_name(other[t]));
        if (!m2) continue;
        cpu_backend *b2 =
            cpu_backend_new(m2, s.total, s.max_len, 0, CPU_PRECISION_FP32, err, sizeof err);
        CHECK(b2 != NULL, "cpu_backend_new: %s", err);
        if (b2) {
            for (int i = 0; i < n; i++)
                order[i] = i;
            embed_packed(b2, &s, order, n, NULL, D, out, ids, cu, dims);
            double mc = 1.0;
            for (int i = 0; i < n; i++) {
                double c = cosine(out + (size_t)i * D, single + (size_t)i * D, D);
                if (c < mc) mc = c;
            }
            printf("%s weights vs BF16 weights (same seed): min cosine %.6f\n",
                   eq_dtype_name(other[t]), mc);
            CHECK(mc >= 0.99, "%s vs BF16: min cosine %.6f", eq_dtype_name(other[t]), mc);
            cpu_backend_free(b2);
        }
        qw_model_free(m2);
        rm_dir(dir2);
    }

    free(single);
    free(out);
    free(ids);
    free(cu);
    free(dims);
    free(dseq);
    free(order);
    free_seqs(&s);
    if (failures) {
        fprintf(stderr, "cpu_backend_test: %d failure(s)\n", failures);
        return 1;
    }
    printf("cpu_backend_test: all checks passed%s\n", quick ? " (quick)" : "");
    return 0;
}
