/* gpu_backend_test.c - the CUDA backend's plan against the CPU backend.
 *
 *   gpu_backend_test --device twin   (runs everywhere: the plan on the CPU twins)
 *   gpu_backend_test --device cuda   (the real thing; exits 77 without a GPU)
 *   gpu_backend_test --device emu    (the CUDA build of the plan on the kernel
 *                                     emulator: kernels/emu, no GPU needed)
 *
 * On a generated `tiny` checkpoint (random bf16 weights, real vocab size),
 * both backends embed the same packed batches and the test checks:
 *   - every vector against the fp32 CPU backend: cosine >= 0.999 (bf16
 *     activations), min and mean printed;
 *   - emu: every vector against the CPU backend at cosine >= 0.9999 (issue
 *     10), min printed;
 *   - packed equals single: each sequence alone gives the vector it gets in
 *     a packed batch (twin and emu: bit for bit, since every op there is
 *     row-local and summed in a fixed order; cuda: cosine >= 0.9999, as
 *     cuBLASLt may pick another kernel for another batch size);
 *   - Matryoshka: dims d gives the first d values of the full vector,
 *     renormalized, then zeros; every value written (output poisoned with
 *     NaN first); unit norms;
 *   - more sequences in one batch than the pooling chunk (1024): the
 *     chunked copy-back keeps every vector in its place;
 *   - a non-finite pooled state (final norm +Inf) fails the batch with a
 *     message and never returns NaN; the backend stays usable after it;
 *   - a batch over the token budget is refused.
 * --quick (or EMBEDQ_TEST_QUICK=1): shorter sequences, for sanitizer builds.
 */
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
#include "gpu_backend.h"
#include "model.h"

#define TEST_RNG_SEED 0x2545F4914F6CDD1Dull
#include "../common/check.h"

/* The backend under test: the CUDA build (cuda, twin) or the emulated one. */
static struct {
    gpu_backend *(*open)(const qw_model *, int, int, bool, char *, size_t);
    void (*close)(gpu_backend *);
    int (*embed)(gpu_backend *, const int32_t *, const int32_t *, int, const int *, float *, char *,
                 size_t);
    void (*info)(const gpu_backend *, eq_info *);
} be = {gpu_backend_new, gpu_backend_free, gpu_backend_embed, gpu_backend_info};

static void poison(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
}

typedef struct {
    int n;
    int32_t *cu;  /* n + 1 */
    int32_t *ids; /* cu[n] */
} batch;

static batch make_batch(const int *lens, int n, int vocab)
{
    batch b = {n, malloc(sizeof(int32_t) * (size_t)(n + 1)), NULL};
    b.cu[0] = 0;
    for (int i = 0; i < n; i++)
        b.cu[i + 1] = b.cu[i] + lens[i];
    b.ids = malloc(sizeof(int32_t) * (size_t)b.cu[n]);
    for (int t = 0; t < b.cu[n]; t++)
        b.ids[t] = (int32_t)(rng_next() % (uint32_t)vocab);
    return b;
}

static void free_batch(batch *b)
{
    free(b->cu);
    free(b->ids);
}

int main(int argc, char **argv)
{
    const char *device = "twin";
    bool quick = getenv("EMBEDQ_TEST_QUICK") && *getenv("EMBEDQ_TEST_QUICK") == '1';
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc)
            device = argv[++i];
        else if (!strcmp(argv[i], "--quick"))
            quick = true;
        else {
            fprintf(stderr, "usage: gpu_backend_test [--device twin|emu|cuda] [--quick]\n");
            return 2;
        }
    }
    const bool twin = !strcmp(device, "twin"), emu = !strcmp(device, "emu");
    if (!twin && !emu && strcmp(device, "cuda")) {
        fprintf(stderr, "gpu_backend_test: --device %s: expected twin, emu or cuda\n", device);
        return 2;
    }
    if (emu) {
#ifdef EMBEDQ_HAVE_EMU
        be.open = gpu_backend_emu_new;
        be.close = gpu_backend_emu_free;
        be.embed = gpu_backend_emu_embed;
        be.info = gpu_backend_emu_info;
#else
        fprintf(stderr, "gpu_backend_test: --device emu: built without the emulator\n");
        return 2;
#endif
    }
    if (!twin && !emu && gpu_device_count() < 1) {
        printf("gpu_backend_test: no CUDA device (or no CUDA backend in this build): skipped\n");
        return 77;
    }

    char err[EQ_ERRLEN];
    char dir[512];
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/embedq_gpu_backend_test.XXXXXX", tmp);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    qw_config cfg;
    genmodel_opts o = GENMODEL_OPTS_INIT;
    o.tokenizer_json = "";
    qw_model *m = NULL;
    if (genmodel_preset("tiny", &cfg, err, sizeof err) ||
        genmodel_write_cfg(&cfg, dir, 7, &o, err, sizeof err) ||
        qw_model_load(dir, &m, err, sizeof err)) {
        fprintf(stderr, "gpu_backend_test: generating the tiny model: %s\n", err);
        return 1;
    }
    const int H = m->cfg.hidden, V = m->cfg.vocab_rows;

    static const int lens_full[] = {1, 2, 7, 33, 64, 65, 127, 130, 300, 513, 700, 1100};
    static const int lens_quick[] = {1, 2, 7, 33, 64, 65, 130};
    const int *lens = quick ? lens_quick : lens_full;
    const int n = quick ? (int)(sizeof lens_quick / sizeof *lens_quick)
                        : (int)(sizeof lens_full / sizeof *lens_full);
    batch bt = make_batch(lens, n, V);
    const int total = bt.cu[n];
    const int max_tokens = total > 2048 ? total : 2048, max_len = 2048;

    cpu_backend *cpu =
        cpu_backend_new(m, max_tokens, max_len, 0, CPU_PRECISION_FP32, err, sizeof err);
    if (!cpu) {
        fprintf(stderr, "cpu_backend_new: %s\n", err);
        return 1;
    }
    gpu_backend *g = be.open(m, max_tokens, max_len, twin, err, sizeof err);
    if (!g) {
        fprintf(stderr, "gpu_backend_new(%s): %s\n", device, err);
        return 1;
    }
    eq_info info;
    be.info(g, &info);
    printf("device %s: %s; weights %.1f MB, activations %.1f MB, workspace %.1f MB\n", device,
           info.device_name, info.weight_bytes / 1e6, info.activation_bytes / 1e6,
           info.workspace_bytes / 1e6);

    float *ref = malloc(sizeof(float) * (size_t)n * (size_t)H);
    float *out = malloc(sizeof(float) * (size_t)n * (size_t)H);
    float *one = malloc(sizeof(float) * (size_t)H);

    /* 1. packed batch vs the fp32 CPU backend */
    CHECK(cpu_backend_embed(cpu, bt.ids, bt.cu, n, NULL, ref, err, sizeof err) == 0,
          "cpu_backend_embed: %s", err);
    poison(out, (size_t)n * (size_t)H);
    CHECK(be.embed(g, bt.ids, bt.cu, n, NULL, out, err, sizeof err) == 0, "gpu_backend_embed: %s",
          err);
    double cmin = 2, csum = 0;
    for (int i = 0; i < n; i++) {
        double c = cosine(out + (size_t)i * H, ref + (size_t)i * H, H);
        double nn = 0;
        for (int j = 0; j < H; j++)
            nn += (double)out[(size_t)i * H + j] * out[(size_t)i * H + j];
        const double want = emu ? 0.9999 : 0.999;
        CHECK(isfinite(c) && c >= want, "sequence %d (len %d): cosine vs cpu %.7f < %g", i, lens[i],
              c, want);
        CHECK(fabs(sqrt(nn) - 1) < 1e-5, "sequence %d: norm %.7f", i, sqrt(nn));
        if (c < cmin) cmin = c;
        csum += c;
    }
    printf("vs cpu backend: %d sequences, %d tokens: min cosine %.7f, mean %.7f\n", n, total, cmin,
           csum / n);

    /* 2. each sequence alone equals its packed vector */
    double smin = 2;
    int exact = 0;
    for (int i = 0; i < n; i++) {
        int32_t cu1[2] = {0, lens[i]};
        poison(one, (size_t)H);
        int rc = be.embed(g, bt.ids + bt.cu[i], cu1, 1, NULL, one, err, sizeof err);
        CHECK(rc == 0, "single %d: %s", i, err);
        if (rc) continue;
        if (!memcmp(one, out + (size_t)i * H, sizeof(float) * (size_t)H)) exact++;
        double c = cosine(one, out + (size_t)i * H, H);
        if (c < smin) smin = c;
        if (twin || emu)
            CHECK(!memcmp(one, out + (size_t)i * H, sizeof(float) * (size_t)H),
                  "%s: sequence %d alone differs from its packed vector (cosine %.9f)", device, i,
                  c);
        else
            CHECK(c >= 0.9999, "sequence %d alone vs packed: cosine %.7f", i, c);
    }
    printf("single vs packed: %d of %d bit-identical, min cosine %.9f\n", exact, n, smin);

    /* 3. Matryoshka and every value written */
    {
        int *dims = malloc(sizeof(int) * (size_t)n);
        for (int i = 0; i < n; i++)
            dims[i] = i % 3 == 0 ? H : 32 + (int)(rng_next() % (H - 32));
        float *md = malloc(sizeof(float) * (size_t)n * (size_t)H);
        poison(md, (size_t)n * (size_t)H);
        CHECK(be.embed(g, bt.ids, bt.cu, n, dims, md, err, sizeof err) == 0,
              "gpu_backend_embed(dims): %s", err);
        for (int i = 0; i < n; i++) {
            const float *full = out + (size_t)i * H, *v = md + (size_t)i * H;
            double nn = 0;
            for (int j = 0; j < dims[i]; j++)
                nn += (double)full[j] * full[j];
            double worst = 0;
            bool written = true;
            for (int j = 0; j < H; j++) {
                if (!isfinite(v[j])) written = false;
                double want = j < dims[i] ? full[j] / sqrt(nn) : 0.0;
                double d = fabs(v[j] - want);
                if (d > worst) worst = d;
            }
            CHECK(written, "sequence %d dims %d: a value was not written", i, dims[i]);
            CHECK(worst < 2e-6, "sequence %d dims %d: max error %.3g vs renormalized prefix", i,
                  dims[i], worst);
        }
        free(md);
        free(dims);
    }

    /* 4. more sequences than one pooling chunk */
    {
        const int many = quick ? 1100 : 1500;
        int *ml = malloc(sizeof(int) * (size_t)many);
        for (int i = 0; i < many; i++)
            ml[i] = 1 + (int)(rng_next() % 3);
        batch mb = make_batch(ml, many, V);
        cpu_backend *cpu2 =
            cpu_backend_new(m, mb.cu[many], max_len, 0, CPU_PRECISION_FP32, err, sizeof err);
        gpu_backend *g2 = be.open(m, mb.cu[many], max_len, twin, err, sizeof err);
        CHECK(cpu2 && g2, "backends for %d sequences: %s", many, err);
        if (cpu2 && g2) {
            float *a = malloc(sizeof(float) * (size_t)many * (size_t)H);
            float *b = malloc(sizeof(float) * (size_t)many * (size_t)H);
            poison(b, (size_t)many * (size_t)H);
            CHECK(cpu_backend_embed(cpu2, mb.ids, mb.cu, many, NULL, a, err, sizeof err) == 0,
                  "cpu: %s", err);
            CHECK(be.embed(g2, mb.ids, mb.cu, many, NULL, b, err, sizeof err) == 0, "gpu: %s", err);
            double mmin = 2;
            for (int i = 0; i < many; i++) {
                double c = cosine(a + (size_t)i * H, b + (size_t)i * H, H);
                if (!(c >= mmin)) mmin = c;
            }
            CHECK(mmin >= 0.999, "%d short sequences: min cosine %.6f", many, mmin);
            printf("%d sequences in one batch (pooled in chunks): min cosine %.7f\n", many, mmin);
            free(a);
            free(b);
        }
        cpu_backend_free(cpu2);
        be.close(g2);
        free_batch(&mb);
        free(ml);
    }

    /* 5. an overflow fails the batch; the backend keeps working */
    {
        qw_model inf_model = *m;
        uint16_t *inf_norm = malloc(sizeof(uint16_t) * (size_t)H);
        for (int i = 0; i < H; i++)
            inf_norm[i] = 0x7f80; /* bf16 +Inf */
        inf_model.final_norm.data = inf_norm;
        inf_model.final_norm.dtype = EQ_BF16;
        gpu_backend *gi = be.open(&inf_model, max_tokens, max_len, twin, err, sizeof err);
        CHECK(gi != NULL, "gpu_backend_new(inf norm): %s", err);
        if (gi) {
            err[0] = 0;
            CHECK(be.embed(gi, bt.ids, bt.cu, n, NULL, out, err, sizeof err) == -1 &&
                      strstr(err, "non-finite"),
                  "non-finite hidden state not reported (%s)", err);
            be.close(gi);
        }
        free(inf_norm);
        int32_t cu1[2] = {0, lens[1]};
        CHECK(be.embed(g, bt.ids + bt.cu[1], cu1, 1, NULL, one, err, sizeof err) == 0,
              "backend unusable after another backend's overflow: %s", err);
    }

    /* 6. over the budget */
    {
        int32_t cu_big[2] = {0, max_tokens + 1};
        int32_t *ids = calloc((size_t)max_tokens + 1, sizeof(int32_t));
        CHECK(be.embed(g, ids, cu_big, 1, NULL, out, err, sizeof err) == -1,
              "a batch over the token budget was accepted");
        free(ids);
    }

    be.close(g);
    cpu_backend_free(cpu);
    qw_model_free(m);
    free(ref);
    free(out);
    free(one);
    free_batch(&bt);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    if (failures) {
        fprintf(stderr, "gpu_backend_test (%s): %d failure(s)\n", device, failures);
        return 1;
    }
    printf("gpu_backend_test (%s): all checks passed\n", device);
    return 0;
}
