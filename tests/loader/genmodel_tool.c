/* genmodel_tool.c - test driver for genmodel_write_cfg (the `embedq
 * gen-model` CLI lives in worker/; this exposes the test-only options).
 *
 *   genmodel_tool PRESET OUT_DIR [--seed N] [--tokenizer PATH|--no-tokenizer]
 *                 [--shard-bytes N] [--dtype bf16|f16|f32] [--prefix P]
 *                 [--lm-head] [--layers N] [--vocab N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "genmodel.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s PRESET OUT_DIR [options]\n", argv[0]);
        return 2;
    }
    char err[EQ_ERRLEN];
    qw_config cfg;
    if (genmodel_preset(argv[1], &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    genmodel_opts o = GENMODEL_OPTS_INIT;
    uint64_t seed = 0;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--lm-head")) {
            o.lm_head = true;
            continue;
        }
        if (!strcmp(a, "--no-tokenizer")) {
            o.tokenizer_json = "";
            continue;
        }
        if (!v) {
            fprintf(stderr, "%s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--tokenizer"))
            o.tokenizer_json = v;
        else if (!strcmp(a, "--shard-bytes"))
            o.max_shard_bytes = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--prefix"))
            o.name_prefix = v;
        else if (!strcmp(a, "--layers"))
            cfg.n_layers = atoi(v);
        else if (!strcmp(a, "--vocab"))
            cfg.vocab_rows = atoi(v);
        else if (!strcmp(a, "--dtype")) {
            if (!strcmp(v, "bf16"))
                o.dtype = EQ_BF16;
            else if (!strcmp(v, "f16"))
                o.dtype = EQ_F16;
            else if (!strcmp(v, "f32"))
                o.dtype = EQ_F32;
            else {
                fprintf(stderr, "bad dtype %s\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (genmodel_write_cfg(&cfg, argv[2], seed, &o, err, sizeof err) != 0) {
        fprintf(stderr, "genmodel: %s\n", err);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "genmodel: wrote %s in %.2f s\n", argv[2],
            (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
    return 0;
}
