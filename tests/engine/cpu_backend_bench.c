/* cpu_backend_bench.c - tokens/s of cpu_backend_embed on a checkpoint.
 *
 * Usage: cpu_backend_bench MODEL_DIR N_SEQS SEQ_LEN [REPEATS [THREADS [fp32|bf16|auto]]]
 * Embeds one packed batch of N_SEQS sequences of SEQ_LEN random token ids,
 * REPEATS times (default 3) after one warm-up run, and prints the time of
 * each run and the best tokens/s. Not a test: numbers for docs/engine.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "cpu_backend.h"
#include "model.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL_DIR N_SEQS SEQ_LEN [REPEATS [THREADS [fp32|bf16|auto]]]\n",
                argv[0]);
        return 2;
    }
    const int n_seqs = atoi(argv[2]), len = atoi(argv[3]);
    const int repeats = argc > 4 ? atoi(argv[4]) : 3, threads = argc > 5 ? atoi(argv[5]) : 0;
    if (n_seqs < 1 || len < 1 || repeats < 1) {
        fprintf(stderr, "N_SEQS, SEQ_LEN and REPEATS must be >= 1\n");
        return 2;
    }
    cpu_precision prec = CPU_PRECISION_AUTO;
    if (argc > 6) {
        if (!strcmp(argv[6], "fp32"))
            prec = CPU_PRECISION_FP32;
        else if (!strcmp(argv[6], "bf16"))
            prec = CPU_PRECISION_BF16;
        else if (strcmp(argv[6], "auto")) {
            fprintf(stderr, "precision '%s': expected fp32, bf16 or auto\n", argv[6]);
            return 2;
        }
    }
    char err[EQ_ERRLEN];
    qw_model *m = NULL;
    if (qw_model_load(argv[1], &m, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const int total = n_seqs * len, D = m->cfg.hidden;
    cpu_backend *b = cpu_backend_new(m, total, len, threads, prec, err, sizeof err);
    if (!b) {
        fprintf(stderr, "%s\n", err);
        qw_model_free(m);
        return 1;
    }
    printf("%s\n", cpu_backend_precision(b));
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)total);
    int32_t *cu = malloc(sizeof(int32_t) * (size_t)(n_seqs + 1));
    float *out = malloc(sizeof(float) * (size_t)n_seqs * D);
    if (!ids || !cu || !out) return 1;
    uint32_t r = 12345;
    for (int i = 0; i < total; i++) {
        r = r * 1664525u + 1013904223u;
        ids[i] = (int32_t)((r >> 8) % (uint32_t)m->cfg.vocab_rows);
    }
    for (int s = 0; s <= n_seqs; s++)
        cu[s] = s * len;

    double best = 1e30;
    for (int it = 0; it <= repeats; it++) {
        double t0 = now();
        if (cpu_backend_embed(b, ids, cu, n_seqs, NULL, out, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        double dt = now() - t0;
        if (it > 0 && dt < best) best = dt;
        printf("%s %d x %d tokens: %.3f s%s\n", it ? "run" : "warm-up", n_seqs, len, dt,
               it ? "" : " (not counted)");
    }
    printf("best: %.1f tokens/s (%d x %d tokens, %.3f s)\n", total / best, n_seqs, len, best);
    free(ids);
    free(cu);
    free(out);
    cpu_backend_free(b);
    qw_model_free(m);
    return 0;
}
