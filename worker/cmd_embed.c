/* cmd_embed.c - `embedq embed`: JSONL texts on stdin -> JSONL vectors.
 *
 * Lines are tokenized as they arrive and packed into batches of at most
 * --batch-tokens tokens (a sequence longer than the budget runs alone); each
 * batch is embedded and its lines printed in input order, bad lines included
 * as {"line": N, "error": "..."}. */
#include <cjson/cJSON.h>

#include "cli.h"
#include "common.h"
#include "engine.h"
#include "msg.h"

int input_fields(const char *line, size_t len, cJSON **j, char **text, size_t *text_len,
                 char **instruction, size_t *instruction_len, char *err, size_t errlen);

typedef struct {
    long lineno;
    char *id_json; /* the input's "id" re-serialized, or NULL            */
    char *error;   /* malloc'd message for a bad line, or NULL          */
    int seq;       /* index of its sequence in the batch (valid lines)  */
    int tokens;
    int dims;
    bool truncated;
} pending;

typedef struct {
    eq_engine *e;
    int hidden;
    int budget; /* --batch-tokens                                        */
    pending *items;
    int n_items, cap_items;
    int32_t *ids; /* (max_batch_tokens) packed ids                 */
    int32_t *cu;  /* (max_batch_tokens + 1)                        */
    int *dims;    /* (max_batch_tokens)                            */
    float *vecs;  /* (max_batch_tokens, hidden)                    */
    int n_seqs, n_tokens;
    int failed;
} embed_state;

static void put_error(long lineno, const char *id_json, const char *msg)
{
    printf("{\"line\": %ld, ", lineno);
    if (id_json) printf("\"id\": %s, ", id_json);
    fputs("\"error\": ", stdout);
    json_put_string(stdout, msg, strlen(msg));
    fputs("}\n", stdout);
}

/* Embeds the pending batch and prints every pending line in order. */
static void flush(embed_state *s)
{
    char err[EQ_ERRLEN] = "";
    int rc = 0;
    if (s->n_seqs > 0)
        rc = eq_embed(s->e, s->ids, s->cu, s->n_seqs, s->dims, s->vecs, err, sizeof err);
    /* A failed batch (e.g. one input overflowing to a non-finite state) is
     * re-run one sequence at a time, so only the culprit fails. */
    for (int i = 0; rc != 0 && i < s->n_items; i++) {
        pending *p = &s->items[i];
        if (p->error) continue;
        int32_t cu[2] = {0, p->tokens};
        if (eq_embed(s->e, s->ids + s->cu[p->seq], cu, 1, &p->dims,
                     s->vecs + (size_t)p->seq * (size_t)s->hidden, err, sizeof err) != 0)
            p->error = strdup(err);
    }
    for (int i = 0; i < s->n_items; i++) {
        pending *p = &s->items[i];
        if (p->error) {
            put_error(p->lineno, p->id_json, p->error);
            s->failed = 1;
        } else {
            fputs("{\"id\": ", stdout);
            fputs(p->id_json ? p->id_json : "null", stdout);
            fputs(", \"embedding\": [", stdout);
            const float *v = s->vecs + (size_t)p->seq * (size_t)s->hidden;
            for (int k = 0; k < p->dims; k++) {
                if (k) fputs(", ", stdout);
                json_put_float(stdout, v[k]);
            }
            printf("], \"tokens\": %d, \"truncated\": %s}\n", p->tokens,
                   p->truncated ? "true" : "false");
        }
        free(p->id_json);
        free(p->error);
    }
    fflush(stdout);
    s->n_items = s->n_seqs = s->n_tokens = 0;
    s->cu[0] = 0;
}

static pending *push_item(embed_state *s, long lineno)
{
    if (s->n_items == s->cap_items) {
        int cap = s->cap_items ? s->cap_items * 2 : 64;
        pending *n = realloc(s->items, sizeof *n * (size_t)cap);
        if (!n) {
            fprintf(stderr, "embedq embed: out of memory\n");
            exit(1);
        }
        s->items = n;
        s->cap_items = cap;
    }
    pending *p = &s->items[s->n_items++];
    memset(p, 0, sizeof *p);
    p->lineno = lineno;
    return p;
}

static void handle_line(embed_state *s, const char *line, size_t len, long lineno, int def_dims)
{
    char err[EQ_ERRLEN];
    cJSON *j;
    char *text, *instr;
    size_t text_len, instr_len;
    pending *p = push_item(s, lineno);
    int32_t *ids = NULL;
    int n = -1;
    if (input_fields(line, len, &j, &text, &text_len, &instr, &instr_len, err, sizeof err) == 0) {
        /* "" = no instruction, as in the worker (schemas/README.md) and the
         * API (docs/api.md): the same input gives the same vector every way
         * in. (`embedq tokenize` keeps "" as the template with an empty task:
         * it shows the tokenizer's own behavior.) */
        if (instr && instr_len == 0) {
            free(instr);
            instr = NULL;
        }
        cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        if (cJSON_IsString(id)) {
            /* Re-read with its length: cJSON's copy ends at a \u0000. */
            char *sid = NULL;
            size_t sid_len = 0;
            msg_error me;
            if (msg_json_string_field(line, len, "id", 0, &sid, &sid_len, &me) > 0) {
                size_t cap = 0;
                FILE *mf = open_memstream(&p->id_json, &cap);
                if (mf) {
                    json_put_string(mf, sid, sid_len);
                    fclose(mf);
                }
            }
            free(sid);
        } else if (id) {
            p->id_json = cJSON_PrintUnformatted(id);
        }
        cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "dimensions");
        p->dims = def_dims;
        if (d && !cJSON_IsNull(d)) {
            double v = cJSON_IsNumber(d) ? d->valuedouble : -1;
            if (!(v >= 32 && v <= s->hidden) || v != (double)(int)v) {
                eq_err(err, sizeof err, "\"dimensions\" must be an integer in 32..%d", s->hidden);
                goto bad;
            }
            p->dims = (int)v;
        }
        n = eq_encode(s->e, text, text_len, instr, instr_len, &ids, &p->truncated, err, sizeof err);
    }
    if (n < 0) goto bad;
    /* Close the current batch first if this sequence would overflow it. */
    if (s->n_seqs > 0 && s->n_tokens + n > s->budget) {
        /* flush() prints every pending item, this one included: move it out. */
        pending keep = *p;
        s->n_items--;
        flush(s);
        *push_item(s, lineno) = keep;
        p = &s->items[s->n_items - 1];
    }
    memcpy(s->ids + s->n_tokens, ids, sizeof(int32_t) * (size_t)n);
    p->seq = s->n_seqs;
    p->tokens = n;
    s->dims[s->n_seqs] = p->dims;
    s->n_tokens += n;
    s->cu[++s->n_seqs] = s->n_tokens;
    free(ids);
    free(text);
    free(instr);
    cJSON_Delete(j);
    if (s->n_tokens >= s->budget) flush(s);
    return;
bad:
    p->error = strdup(err);
    free(ids);
    free(text);
    free(instr);
    cJSON_Delete(j);
    if (s->n_seqs == 0) flush(s); /* nothing to wait for: print it now */
}

int cmd_embed(int argc, char **argv)
{
    static const cli_command cmd = {
        "embed", "--model DIR [--dimensions N] [--batch-tokens N] [--max-tokens N] [--device D]",
        "Reads JSONL on stdin, one {\"id\": ..., \"text\": \"...\", \"instruction\": \"...\"?,\n"
        "\"dimensions\": N?} per line, and prints one {\"id\": ..., \"embedding\": [...],\n"
        "\"tokens\": N, \"truncated\": bool} per line in input order. Vectors are\n"
        "last-token pooled, cut to `dimensions` values (Matryoshka), L2-normalized.\n"
        "A bad line prints {\"line\": N, \"error\": \"...\"} and the rest go on; the exit\n"
        "status is 1 if any line failed.",
        NULL};
    const char *model = NULL, *device_flag = "auto", *device = NULL;
    int dimensions = 0, batch_tokens = 16384, max_tokens = 8192, threads = 0;
    cli_flag flags[] = {
        {"model", CLI_STR, &model, 0, 0,
         "model directory (config.json, tokenizer.json, *.safetensors)"},
        {"dimensions", CLI_INT, &dimensions, 0, 1 << 20,
         "default output dimensions, 32..hidden_size (0 = hidden_size)"},
        {"batch-tokens", CLI_INT, &batch_tokens, 1, 1 << 24,
         "token budget of one packed batch (a longer sequence runs alone)"},
        {"max-tokens", CLI_INT, &max_tokens, 2, 1 << 20,
         "truncate inputs to this many tokens, <|endoftext|> included"},
        {"threads", CLI_INT, &threads, 0, 1024, "CPU threads (0 = all cores)"},
        {"device", CLI_STR, &device_flag, 0, 0, CLI_DEVICE_HELP},
    };
    int rc = cli_parse(&cmd, flags, (int)(sizeof flags / sizeof flags[0]), argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    if (!model) return cli_missing(&cmd, "model");
    if (cli_device(&cmd, device_flag, &device) != 0) return 2;

    char err[EQ_ERRLEN];
    eq_options opt = {.device = device,
                      .max_batch_tokens = batch_tokens,
                      .max_seq_len = max_tokens,
                      .threads = threads};
    embed_state s = {.budget = batch_tokens};
    if (eq_open(model, &opt, &s.e, err, sizeof err) != 0) {
        fprintf(stderr, "embedq embed: %s\n", err);
        return 1;
    }
    s.hidden = eq_config(s.e)->hidden;
    if (dimensions && (dimensions < 32 || dimensions > s.hidden)) {
        fprintf(stderr, "embedq embed: flag --dimensions: expected 32..%d for this model, got %d\n",
                s.hidden, dimensions);
        eq_close(s.e);
        return 2;
    }
    int def_dims = dimensions ? dimensions : s.hidden;
    size_t maxb = (size_t)eq_max_batch_tokens(s.e);
    s.ids = malloc(sizeof(int32_t) * maxb);
    s.cu = malloc(sizeof(int32_t) * (maxb + 1));
    s.dims = malloc(sizeof(int) * maxb);
    s.vecs = malloc(sizeof(float) * maxb * (size_t)s.hidden);
    if (!s.ids || !s.cu || !s.dims || !s.vecs) {
        fprintf(stderr, "embedq embed: out of memory for a %zu-token batch\n", maxb);
        return 1;
    }
    s.cu[0] = 0;
    char *line = NULL;
    size_t cap = 0;
    long n, lineno = 0;
    while ((n = jsonl_read_line(stdin, &line, &cap)) >= 0) {
        lineno++;
        if (n == 0) continue;
        handle_line(&s, line, (size_t)n, lineno, def_dims);
    }
    flush(&s);
    free(line);
    free(s.items);
    free(s.ids);
    free(s.cu);
    free(s.dims);
    free(s.vecs);
    eq_close(s.e);
    return s.failed;
}
