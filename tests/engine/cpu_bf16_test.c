/* cpu_bf16_test.c - the CPU backend's bf16 path against its fp32 reference,
 * and the choice between them, on generated tiny checkpoints.
 *
 *   cpu_bf16_test            bf16 vs fp32: cosine >= 0.9999 for every vector
 *                            of 1..2048 tokens (1, 2, 63, 64, 65, 511, 512,
 *                            513, 1100, 2048), alone; packed == single on the
 *                            bf16 path (all in one batch, and in a random
 *                            grouping, vs each alone: cosine >= 1 - 1e-6);
 *                            "auto" picks bf16. Exit 77 (skipped) when the
 *                            CPU has no AVX512-BF16, saying so.
 *   cpu_bf16_test --fallback run with the bf16 path unavailable (ctest sets
 *                            ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI; any CPU
 *                            without AVX512-BF16 is the same): "auto" takes
 *                            fp32, says why, and gives exactly the fp32
 *                            reference's vectors; "bf16" fails naming the
 *                            reason. Runs on every CPU.
 * Both also check that an f16 checkpoint takes fp32 under "auto" ("the
 * checkpoint is F16") and is refused under "bf16". */
#include <dirent.h>
#include <math.h>
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

#define TEST_RNG_SEED 0x243f6a8885a308d3ull
#include "../common/check.h"

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

/* The tiny preset in dtype t, written to a new temp dir (*dir) and loaded. */
static qw_model *gen_and_load(eq_dtype t, char *dir, size_t dirlen)
{
    char err[EQ_ERRLEN];
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, dirlen, "%s/embedq_cpu_bf16_test.XXXXXX", tmp);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return NULL;
    }
    qw_config cfg;
    genmodel_opts o = GENMODEL_OPTS_INIT;
    o.tokenizer_json = ""; /* the backend needs no tokenizer */
    o.dtype = t;
    qw_model *m = NULL;
    if (genmodel_preset("tiny", &cfg, err, sizeof err) ||
        genmodel_write_cfg(&cfg, dir, 7, &o, err, sizeof err) ||
        qw_model_load(dir, &m, err, sizeof err)) {
        fprintf(stderr, "tiny checkpoint: %s\n", err);
        return NULL;
    }
    return m;
}

enum { N_SEQS = 10 };
static const int lens[N_SEQS] = {1, 2, 63, 64, 65, 511, 512, 513, 1100, 2048};

typedef struct {
    int32_t *ids; /* all sequences back to back */
    int32_t off[N_SEQS + 1];
} seqs;

/* Embeds the sequences order[0..k) as one packed batch into out (k, D).
 * Returns 0, or -1 (reported). */
static int embed(cpu_backend *b, const seqs *s, const int *order, int k, int D, float *out)
{
    static int32_t ids[1 << 13], cu[N_SEQS + 1];
    char err[EQ_ERRLEN];
    cu[0] = 0;
    for (int i = 0; i < k; i++) {
        const int q = order[i], len = s->off[q + 1] - s->off[q];
        memcpy(ids + cu[i], s->ids + s->off[q], sizeof(int32_t) * (size_t)len);
        cu[i + 1] = cu[i] + len;
    }
    for (size_t i = 0; i < (size_t)k * D; i++)
        out[i] = NAN;
    int rc = cpu_backend_embed(b, ids, cu, k, NULL, out, err, sizeof err);
    CHECK(rc == 0, "cpu_backend_embed: %s", err);
    for (size_t i = 0; rc == 0 && i < (size_t)k * D; i++)
        if (!isfinite(out[i])) {
            CHECK(0, "output value %zu not written / not finite", i);
            return -1;
        }
    return rc;
}

/* Each sequence alone into out (N_SEQS, D). */
static void embed_alone(cpu_backend *b, const seqs *s, int D, float *out)
{
    for (int i = 0; i < N_SEQS; i++)
        embed(b, s, &i, 1, D, out + (size_t)i * D);
}

/* An f16 checkpoint: "auto" takes fp32 and says the checkpoint is why;
 * "bf16" is refused with that reason. */
static void check_f16_checkpoint(void)
{
    char dir[4096], err[EQ_ERRLEN] = "";
    qw_model *m = gen_and_load(EQ_F16, dir, sizeof dir);
    CHECK(m != NULL, "f16 checkpoint");
    if (!m) return;
    cpu_backend *b = cpu_backend_new(m, 64, 64, 0, CPU_PRECISION_AUTO, err, sizeof err);
    CHECK(b != NULL, "auto on f16: %s", err);
    if (b) {
        CHECK(!cpu_backend_is_bf16(b), "auto on an f16 checkpoint took bf16");
        CHECK(strstr(cpu_backend_precision(b), "checkpoint is F16") != NULL,
              "auto on f16: banner '%s' does not say why fp32", cpu_backend_precision(b));
        cpu_backend_free(b);
    }
    b = cpu_backend_new(m, 64, 64, 0, CPU_PRECISION_BF16, err, sizeof err);
    CHECK(b == NULL && strstr(err, "checkpoint is F16"), "bf16 on f16: %s", b ? "accepted" : err);
    cpu_backend_free(b);
    qw_model_free(m);
    rm_dir(dir);
}

int main(int argc, char **argv)
{
    const bool fallback = argc > 1 && !strcmp(argv[1], "--fallback");
    char dir[4096], err[EQ_ERRLEN] = "";
    qw_model *m = gen_and_load(EQ_BF16, dir, sizeof dir);
    if (!m) return 1;
    const int D = m->cfg.hidden, V = m->cfg.vocab_rows;

    seqs s;
    s.off[0] = 0;
    for (int i = 0; i < N_SEQS; i++)
        s.off[i + 1] = s.off[i] + lens[i];
    const int total = s.off[N_SEQS];
    s.ids = malloc(sizeof(int32_t) * (size_t)total);
    for (int t = 0; t < total; t++)
        s.ids[t] = (int32_t)(rng_next() % (uint32_t)V);

    cpu_backend *ref = cpu_backend_new(m, total, 2048, 0, CPU_PRECISION_FP32, err, sizeof err);
    CHECK(ref != NULL, "fp32: %s", err);
    cpu_backend *bf = cpu_backend_new(m, total, 2048, 0, CPU_PRECISION_BF16, err, sizeof err);
    cpu_backend *au = cpu_backend_new(m, total, 2048, 0, CPU_PRECISION_AUTO, err, sizeof err);
    CHECK(au != NULL, "auto: %s", err);
    if (!ref || !au) return 1;
    CHECK(!cpu_backend_is_bf16(ref), "fp32 asked, bf16 taken");
    printf("fp32: %s\nauto: %s\n", cpu_backend_precision(ref), cpu_backend_precision(au));

    float *want = malloc(sizeof(float) * (size_t)N_SEQS * D);
    float *got = malloc(sizeof(float) * (size_t)N_SEQS * D);
    float *packed = malloc(sizeof(float) * (size_t)N_SEQS * D);
    embed_alone(ref, &s, D, want);

    if (fallback) {
        /* The bf16 path is not available: auto is the fp32 reference. */
        CHECK(bf == NULL && strstr(err, "bf16 asked for, but"), "bf16 without the instructions: %s",
              bf ? "accepted" : err);
        printf("bf16: refused: %s\n", bf ? "(accepted)" : err);
        CHECK(!cpu_backend_is_bf16(au), "auto took bf16 with the ISA limited");
        CHECK(strstr(cpu_backend_precision(au), "fp32 GEMMs") &&
                  (strstr(cpu_backend_precision(au), "BF16") ||
                   strstr(cpu_backend_precision(au), "bf16")),
              "auto's banner '%s' does not say fp32 and why", cpu_backend_precision(au));
        embed_alone(au, &s, D, got);
        CHECK(!memcmp(got, want, sizeof(float) * (size_t)N_SEQS * D),
              "auto (fp32 fallback) differs from the fp32 reference");
    } else if (!bf) {
        printf("SKIP: no bf16 path on this machine (%s); the fp32 fallback is checked by "
               "engine.cpu_bf16_fallback\n",
               err);
        cpu_backend_free(ref);
        cpu_backend_free(au);
        qw_model_free(m);
        rm_dir(dir);
        return 77;
    } else {
        CHECK(cpu_backend_is_bf16(bf) && cpu_backend_is_bf16(au), "bf16/auto did not take bf16");
        printf("bf16: %s\n", cpu_backend_precision(bf));
        /* 1. bf16 vs the fp32 reference, each sequence alone */
        embed_alone(bf, &s, D, got);
        double cmin = 1, dmax = 0;
        for (int i = 0; i < N_SEQS; i++) {
            double c = cosine(got + (size_t)i * D, want + (size_t)i * D, D);
            printf("  %4d tokens: bf16 vs fp32 cosine 1 - %.2e\n", lens[i], 1 - c);
            CHECK(c >= 0.9999, "%d tokens: bf16 vs fp32 cosine %.6f < 0.9999", lens[i], c);
            cmin = c < cmin ? c : cmin;
        }
        /* 2. packed == single on the bf16 path: all in one batch, then a
         *    random grouping into batches of 1..4 sequences */
        int order[N_SEQS];
        for (int i = 0; i < N_SEQS; i++)
            order[i] = i;
        embed(bf, &s, order, N_SEQS, D, packed);
        double pmin = 1;
        for (int i = 0; i < N_SEQS; i++) {
            double c = cosine(packed + (size_t)i * D, got + (size_t)i * D, D);
            for (int j = 0; j < D; j++) {
                double d = fabs(packed[(size_t)i * D + j] - got[(size_t)i * D + j]);
                dmax = d > dmax ? d : dmax;
            }
            pmin = c < pmin ? c : pmin;
            CHECK(c >= 1 - 1e-6, "%d tokens: bf16 packed vs alone cosine 1 - %.2e", lens[i], 1 - c);
        }
        for (int i = N_SEQS - 1; i > 0; i--) { /* shuffle */
            int j = (int)(rng_next() % (uint32_t)(i + 1)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int i = 0; i < N_SEQS;) {
            int k = 1 + (int)(rng_next() % 4u);
            k = i + k > N_SEQS ? N_SEQS - i : k;
            embed(bf, &s, order + i, k, D, packed);
            for (int j = 0; j < k; j++) {
                const int q = order[i + j];
                double c = cosine(packed + (size_t)j * D, got + (size_t)q * D, D);
                pmin = c < pmin ? c : pmin;
                CHECK(c >= 1 - 1e-6, "%d tokens in a group of %d: packed vs alone 1 - %.2e",
                      lens[q], k, 1 - c);
            }
            i += k;
        }
        printf("bf16 vs fp32: min cosine 1 - %.2e; bf16 packed vs alone: min cosine 1 - %.2e, "
               "max |diff| %.2e\n",
               1 - cmin, 1 - pmin, dmax);
    }
    check_f16_checkpoint();

    free(want);
    free(got);
    free(packed);
    free(s.ids);
    cpu_backend_free(ref);
    cpu_backend_free(bf);
    cpu_backend_free(au);
    qw_model_free(m);
    rm_dir(dir);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
