/* tok_bench.c - single-threaded tokenizer throughput, and a small driver.
 *
 *   tok_bench TOKENIZER_JSON INPUT.jsonl [--print] [--max-tokens N]
 *             [--rows N] [--repeat R]
 *
 * INPUT.jsonl holds {"text": "...", "instruction": "..."?} per line (the
 * `embedq tokenize` input). All lines are parsed into memory first; then
 * tok_encode runs over them R times (default 3) and the best pass is
 * reported on stderr as MB/s of text (text + instruction bytes) and
 * tokens/s. --print writes {"ids": [...]} per line to stdout (one pass).
 * Load time is reported separately and never counted in MB/s.
 */
#include <cjson/cJSON.h>
#include <time.h>

#include "common.h"
#include "tokenizer.h"

typedef struct {
    char *text, *instr;
    size_t tlen, ilen;
} input;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *dup_str(const char *s, size_t *len)
{
    *len = strlen(s);
    char *d = malloc(*len + 1);
    if (d) memcpy(d, s, *len + 1);
    return d;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr,
                "usage: %s TOKENIZER_JSON INPUT.jsonl [--print] [--max-tokens N] "
                "[--rows N] [--repeat R]\n",
                argv[0]);
        return 2;
    }
    bool print = false;
    int max_tokens = 0, repeat = 3;
    int32_t rows = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--print"))
            print = true;
        else if (!strcmp(argv[i], "--max-tokens") && i + 1 < argc)
            max_tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc)
            rows = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else {
            fprintf(stderr, "unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    char err[EQ_ERRLEN];
    double t0 = now_s();
    tok_tokenizer *t = tok_load(argv[1], err, sizeof err);
    if (!t) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    tok_set_vocab_rows(t, rows);
    double t_load = now_s() - t0;

    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    size_t n = 0, cap = 0, bytes = 0;
    input *in = NULL;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t ll;
    while ((ll = getline(&line, &lcap, f)) >= 0) {
        if (ll == 0 || line[0] == '\n') continue;
        cJSON *j = cJSON_ParseWithLength(line, (size_t)ll);
        const cJSON *tx = cJSON_GetObjectItemCaseSensitive(j, "text");
        const cJSON *ins = cJSON_GetObjectItemCaseSensitive(j, "instruction");
        if (!cJSON_IsString(tx)) {
            fprintf(stderr, "%s: line %zu: no \"text\"\n", argv[2], n + 1);
            return 1;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            in = realloc(in, cap * sizeof *in);
            if (!in) return 1;
        }
        input *e = &in[n++];
        memset(e, 0, sizeof *e);
        e->text = dup_str(tx->valuestring, &e->tlen);
        if (cJSON_IsString(ins)) e->instr = dup_str(ins->valuestring, &e->ilen);
        bytes += e->tlen + e->ilen;
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);

    if (print) repeat = 1;
    double best = 1e30;
    size_t ntok = 0;
    int failed = 0;
    for (int r = 0; r < repeat; r++) {
        ntok = 0;
        double s = now_s();
        for (size_t i = 0; i < n; i++) {
            int32_t *ids;
            bool trunc;
            int k = tok_encode(t, in[i].text, in[i].tlen, in[i].instr, in[i].ilen, max_tokens, &ids,
                               &trunc, err, sizeof err);
            if (k < 0) {
                if (print) printf("{\"line\": %zu, \"error\": \"%s\"}\n", i + 1, err);
                failed = 1;
                continue;
            }
            ntok += (size_t)k;
            if (print) {
                fputs("{\"ids\": [", stdout);
                for (int q = 0; q < k; q++)
                    printf(q ? ", %d" : "%d", ids[q]);
                fputs("]}\n", stdout);
            }
            free(ids);
        }
        double el = now_s() - s;
        if (el < best) best = el;
    }
    fprintf(stderr,
            "tok_bench: load %.3f s; %zu inputs, %.2f MB, %zu tokens; best of %d: %.3f s = "
            "%.1f MB/s, %.2f M tokens/s (1 thread)\n",
            t_load, n, (double)bytes / 1e6, ntok, repeat, best, (double)bytes / 1e6 / best,
            (double)ntok / 1e6 / best);
    for (size_t i = 0; i < n; i++)
        free(in[i].text), free(in[i].instr);
    free(in);
    tok_free(t);
    return failed;
}
