/* load_tool.c - loads a checkpoint directory with qw_model_load and prints
 * its config, files and parameter count, or the one-line error (exit 1).
 *     load_tool DIR
 */
#include <stdio.h>
#include <time.h>

#include "model.h"
#include "safetensors.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CHECKPOINT_DIR\n", argv[0]);
        return 2;
    }
    char err[EQ_ERRLEN];
    qw_model *m;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (qw_model_load(argv[1], &m, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const qw_config *c = &m->cfg;
    printf("hidden %d layers %d heads %d/%d head_dim %d intermediate %d "
           "vocab %d max_pos %d eps %g theta %g tie %d\n",
           c->hidden, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->intermediate,
           c->vocab_rows, c->max_pos, c->rms_eps, c->rope_theta, c->tie_word_embeddings);
    for (int i = 0; i < m->n_files; i++)
        printf("file %s: %zu tensors, %zu bytes\n", m->files[i].path, m->files[i].hdr.n_tensors,
               m->files[i].size);
    printf("params %llu (config implies %llu), dtype %s, loaded in %.3f s\n",
           (unsigned long long)m->n_params, (unsigned long long)qw_config_n_params(c),
           eq_dtype_name(m->embed.dtype),
           (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
    qw_model_free(m);
    return 0;
}
