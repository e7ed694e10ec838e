/* tok_golden_test.c - the tokenizer against transformers.js, exactly.
 *
 *   tok_golden_test TOKENIZER_JSON corpus.jsonl goldens.jsonl.gz
 *                   exceptions.jsonl WORKDIR
 *
 * For every corpus entry and every mode (see make_goldens.mjs):
 *   d  document            q  query (instruction template)
 *   b  4B/8B (tok_set_vocab_rows 151665)
 *   t  truncation at each max_len of the goldens header, for d and q
 * the ids must equal the oracle's, except for the (entry, mode) pairs listed
 * in exceptions.jsonl, which must equal the HF-semantics ids recorded there
 * (docs/tokenizer.md explains each). Then:
 *   - the same with tokenizer.json rewritten to carry the TemplateProcessing
 *     post-processor, alone and inside a Sequence (files in WORKDIR): the
 *     ids must not change; these two runs also force every piece through
 *     the heap BPE and the rank-bucket BPE (tok_set_bpe_paths);
 *   - 4 threads encoding the corpus concurrently must give the
 *     single-threaded ids.
 * Prints the first mismatches with the token strings around them.
 */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <time.h>

#include "common.h"
#include "tok_testutil.h"
#include "tokenizer.h"

enum { M_D, M_Q, M_B, NMODES };
static const char *MODE_NAME[NMODES] = {"d", "q", "b"};

static text_t *texts;
static int ntexts;
static char **instructions;
static int ninstr;
static int max_lens[16], nmax;
static int32_t eos_id, rows_4b;
static ids_t *want[NMODES];  /* per entry */
static bool *is_exc[NMODES]; /* per entry: expectation comes from exceptions.jsonl */
static ids_t *ours[NMODES];  /* our single-threaded ids, for the thread check */
static int failures, reported;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int encode(const tok_tokenizer *t, int i, int mode, int max_len, ids_t *out, bool *trunc)
{
    char err[EQ_ERRLEN];
    const char *ins = mode == M_Q ? instructions[i % ninstr] : NULL;
    out->n = tok_encode(t, texts[i].s, texts[i].len, ins, ins ? strlen(ins) : 0, max_len, &out->v,
                        trunc, err, sizeof err);
    if (out->n < 0) {
        fprintf(stderr, "entry %d mode %s: tok_encode failed: %s\n", i, MODE_NAME[mode], err);
        out->v = NULL;
        return -1;
    }
    return 0;
}

static void fail(const tok_tokenizer *t, const char *what, int i, const int32_t *w, int nw,
                 const int32_t *g, int ng)
{
    failures++;
    if (reported++ < 12) tu_report(t, what, &texts[i], w, nw, g, ng);
}

/* Checks modes d, q, b and the truncations of d and q with tokenizer t.
 * keep: store our d/q ids for the thread check. Returns mismatches. */
static int check_all(tok_tokenizer *t, const char *label, bool keep, int *nchecked)
{
    int before = failures, checked = 0;
    char what[128];
    for (int mode = 0; mode < NMODES; mode++) {
        tok_set_vocab_rows(t, mode == M_B ? rows_4b : 0);
        for (int i = 0; i < ntexts; i++) {
            ids_t got;
            bool trunc;
            checked++;
            if (encode(t, i, mode, 0, &got, &trunc) != 0) {
                failures++;
                continue;
            }
            const ids_t *w = &want[mode][i];
            if (!tu_ids_eq(w->v, w->n, got.v, got.n) || trunc) {
                snprintf(what, sizeof what, "%s entry %d mode %s%s", label, i, MODE_NAME[mode],
                         is_exc[mode][i] ? " (exception)" : "");
                fail(t, what, i, w->v, w->n, got.v, got.n);
            }
            if (keep && mode != M_B) {
                ours[mode][i] = got;
            } else {
                free(got.v);
            }
            if (mode == M_B) continue;
            /* Truncation: keep the first max_len - 1 content ids, then EOS. */
            for (int k = 0; k < nmax; k++) {
                int L = max_lens[k], content = w->n - 1;
                int keep_n = content < L - 1 ? content : L - 1;
                bool want_trunc = content > L - 1;
                ids_t tg;
                checked++;
                if (encode(t, i, mode, L, &tg, &trunc) != 0) {
                    failures++;
                    continue;
                }
                bool ok = tg.n == keep_n + 1 && trunc == want_trunc && tg.v[keep_n] == eos_id &&
                          tu_ids_eq(w->v, keep_n, tg.v, keep_n);
                if (!ok) {
                    int32_t *exp = malloc(((size_t)keep_n + 1) * sizeof *exp);
                    memcpy(exp, w->v, (size_t)keep_n * sizeof *exp);
                    exp[keep_n] = eos_id;
                    snprintf(what, sizeof what,
                             "%s entry %d mode %s max_len %d (truncated: want %d, got %d)", label,
                             i, MODE_NAME[mode], L, want_trunc, trunc);
                    fail(t, what, i, exp, keep_n + 1, tg.v, tg.n);
                    free(exp);
                }
                free(tg.v);
            }
        }
    }
    tok_set_vocab_rows(t, 0);
    *nchecked = checked;
    return failures - before;
}

typedef struct {
    const tok_tokenizer *t;
    int start, bad;
} thread_arg;

static void *thread_main(void *p)
{
    thread_arg *a = p;
    for (int k = 0; k < ntexts; k++) {
        int i = (a->start + k) % ntexts;
        for (int mode = M_D; mode <= M_Q; mode++) {
            ids_t got;
            bool trunc;
            if (encode(a->t, i, mode, 0, &got, &trunc) != 0 ||
                !tu_ids_eq(ours[mode][i].v, ours[mode][i].n, got.v, got.n))
                a->bad++;
            free(got.v);
        }
    }
    return NULL;
}

static int load_goldens(const char *path)
{
    char **lines;
    int n = tu_read_lines(path, &lines);
    if (n < 1) return -1;
    cJSON *h = cJSON_Parse(lines[0]);
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(h, "instructions");
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(h, "max_lens");
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(h, "eos");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(h, "rows_4b");
    if (!cJSON_IsArray(ins) || !cJSON_IsArray(ml) || !cJSON_IsNumber(eos) ||
        !cJSON_IsNumber(rows)) {
        fprintf(stderr, "%s: bad header\n", path);
        return -1;
    }
    eos_id = (int32_t)eos->valuedouble;
    rows_4b = (int32_t)rows->valuedouble;
    ninstr = cJSON_GetArraySize(ins);
    instructions = calloc((size_t)ninstr, sizeof *instructions);
    for (int k = 0; k < ninstr; k++) {
        const char *s = cJSON_GetArrayItem(ins, k)->valuestring;
        instructions[k] = malloc(strlen(s) + 1);
        strcpy(instructions[k], s);
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, ml) if (nmax < 16) max_lens[nmax++] = (int)e->valuedouble;
    cJSON_Delete(h);
    if (n - 1 != ntexts) {
        fprintf(stderr, "%s: %d entries, corpus has %d: regenerate the goldens\n", path, n - 1,
                ntexts);
        return -1;
    }
    for (int m = 0; m < NMODES; m++) {
        want[m] = calloc((size_t)ntexts, sizeof *want[m]);
        is_exc[m] = calloc((size_t)ntexts, sizeof *is_exc[m]);
        ours[m] = calloc((size_t)ntexts, sizeof *ours[m]);
    }
    for (int i = 0; i < ntexts; i++) {
        cJSON *row = cJSON_Parse(lines[i + 1]);
        if (tu_ids_from_json(cJSON_GetObjectItemCaseSensitive(row, "d"), &want[M_D][i]) ||
            tu_ids_from_json(cJSON_GetObjectItemCaseSensitive(row, "q"), &want[M_Q][i])) {
            fprintf(stderr, "%s: line %d: bad ids\n", path, i + 2);
            return -1;
        }
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(row, "b");
        if (b) {
            if (tu_ids_from_json(b, &want[M_B][i])) return -1;
        } else { /* absent: same as d */
            want[M_B][i].n = want[M_D][i].n;
            want[M_B][i].v = malloc(((size_t)want[M_D][i].n + 1) * sizeof(int32_t));
            memcpy(want[M_B][i].v, want[M_D][i].v, (size_t)want[M_D][i].n * sizeof(int32_t));
        }
        cJSON_Delete(row);
        free(lines[i + 1]);
    }
    free(lines[0]);
    free(lines);
    return 0;
}

/* Applies exceptions.jsonl: each line names (entry, mode), the oracle's ids
 * (must equal the goldens: the file is in sync) and the expected ids. */
static int load_exceptions(const char *path, int *count)
{
    char **lines;
    int n = tu_read_lines(path, &lines);
    if (n < 0) return -1;
    for (int k = 0; k < n; k++) {
        cJSON *j = cJSON_Parse(lines[k]);
        const cJSON *ii = cJSON_GetObjectItemCaseSensitive(j, "i");
        const char *mode = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "mode"));
        ids_t oracle, exp;
        int m = -1;
        for (int q = 0; q < NMODES; q++)
            if (mode && !strcmp(mode, MODE_NAME[q])) m = q;
        if (!cJSON_IsNumber(ii) || m < 0 || ii->valueint < 0 || ii->valueint >= ntexts ||
            tu_ids_from_json(cJSON_GetObjectItemCaseSensitive(j, "oracle"), &oracle) ||
            tu_ids_from_json(cJSON_GetObjectItemCaseSensitive(j, "expected"), &exp)) {
            fprintf(stderr, "%s:%d: bad exception line\n", path, k + 1);
            return -1;
        }
        int i = ii->valueint;
        if (!tu_ids_eq(oracle.v, oracle.n, want[m][i].v, want[m][i].n)) {
            fprintf(stderr, "%s:%d: oracle ids differ from the goldens: regenerate both\n", path,
                    k + 1);
            return -1;
        }
        free(want[m][i].v);
        free(oracle.v);
        want[m][i] = exp;
        is_exc[m][i] = true;
        cJSON_Delete(j);
        free(lines[k]);
    }
    free(lines);
    *count = n;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr,
                "usage: %s TOKENIZER_JSON corpus.jsonl goldens.jsonl.gz exceptions.jsonl WORKDIR\n",
                argv[0]);
        return 2;
    }
    double t0 = now_s();
    ntexts = tu_read_corpus(argv[2], &texts);
    if (ntexts <= 0) return 1;
    int nexc = 0;
    if (load_goldens(argv[3]) != 0 || load_exceptions(argv[4], &nexc) != 0) return 1;
    size_t bytes = 0;
    for (int i = 0; i < ntexts; i++)
        bytes += texts[i].len;
    printf("tokenizer_golden: %d corpus entries (%zu bytes), %d instructions, max_lens", ntexts,
           bytes, ninstr);
    for (int k = 0; k < nmax; k++)
        printf(" %d", max_lens[k]);
    printf(", %d exceptions\n", nexc);

    char err[EQ_ERRLEN];
    tok_tokenizer *t = tok_load(argv[1], err, sizeof err);
    if (!t) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (tok_eos_id(t) != eos_id) {
        fprintf(stderr, "tok_eos_id %d, goldens say %d\n", tok_eos_id(t), eos_id);
        return 1;
    }
    double t1 = now_s();
    int checked;
    int bad = check_all(t, "npm tokenizer.json (ByteLevel post-processor)", true, &checked);
    printf("  ByteLevel post-processor: %d encodings (d, q, b x %d entries + %d truncations of d "
           "and q), %d mismatches [%.2f s]\n",
           checked, ntexts, nmax, bad, now_s() - t1);

    /* The same ids from the template post-processor, alone or in a Sequence;
     * these two also run every piece of 2+ bytes through the heap BPE and
     * the rank-bucket BPE respectively (the first run used the defaults:
     * linear scan up to 48 bytes, heap, buckets from 2048). */
    const char *variants[2][2] = {{"tokenizer_template_pp.json", TU_TEMPLATE_PP},
                                  {"tokenizer_sequence_pp.json", TU_SEQUENCE_PP}};
    const char *paths[2] = {"heap BPE", "rank-bucket BPE"};
    for (int v = 0; v < 2; v++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[5], variants[v][0]);
        if (tu_write_with_post_processor(argv[1], path, variants[v][1]) != 0) return 1;
        tok_tokenizer *tv = tok_load(path, err, sizeof err);
        if (!tv) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        tok_set_bpe_paths(tv, 1, v == 0 ? SIZE_MAX : 2);
        t1 = now_s();
        bad = check_all(tv, variants[v][0], false, &checked);
        printf("  %s, %s: %d encodings, %d mismatches [%.2f s]\n", variants[v][0], paths[v],
               checked, bad, now_s() - t1);
        tok_free(tv);
    }

    /* 4 threads sharing one tokenizer give the single-threaded ids. */
    t1 = now_s();
    pthread_t th[4];
    thread_arg ta[4];
    for (int k = 0; k < 4; k++) {
        ta[k] = (thread_arg){t, k * ntexts / 4, 0};
        if (pthread_create(&th[k], NULL, thread_main, &ta[k]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    int tbad = 0;
    for (int k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        tbad += ta[k].bad;
    }
    failures += tbad;
    printf("  4 threads x %d encodings (d, q): %d differ from 1 thread [%.2f s]\n", 2 * ntexts,
           tbad, now_s() - t1);

    tok_free(t);
    for (int m = 0; m < NMODES; m++) {
        for (int i = 0; i < ntexts; i++)
            free(want[m][i].v), free(ours[m][i].v);
        free(want[m]), free(ours[m]), free(is_exc[m]);
    }
    for (int i = 0; i < ntexts; i++)
        free(texts[i].s);
    free(texts);
    for (int k = 0; k < ninstr; k++)
        free(instructions[k]);
    free(instructions);
    printf("tokenizer_golden: %s (%d mismatches) in %.2f s\n", failures ? "FAIL" : "PASS", failures,
           now_s() - t0);
    return failures ? 1 : 0;
}
