/* cmd_tokenize.c - `embedq tokenize`: JSONL {"text", "instruction"?} on stdin,
 * {"ids": [...]} per line on stdout: exactly the ids the model sees. */
#include <cjson/cJSON.h>

#include "cli.h"
#include "common.h"
#include "engine.h"
#include "msg.h"

/* Decodes one input line: *j gets the parsed object (the caller reads the
 * other fields from it and frees it with cJSON_Delete, also on failure);
 * *text and *instruction get malloc'd copies (lengths in *text_len,
 * *instruction_len; the caller frees both, also on failure), read by the
 * worker's own JSON decoder (msg_json_string_field) so that they are the
 * exact bytes the worker would embed: \u0000 is kept as a NUL byte (cJSON
 * ends its strings there). *instruction is NULL when absent or null; "" is
 * kept (the query template with an empty task, as before; the worker reads
 * "" as no instruction).
 * Returns 0 or -1 with a message. Shared by tokenize and embed. */
int input_fields(const char *line, size_t len, cJSON **j, char **text, size_t *text_len,
                 char **instruction, size_t *instruction_len, char *err, size_t errlen)
{
    *j = NULL;
    *text = *instruction = NULL;
    *text_len = *instruction_len = 0;
    cJSON *root = cJSON_ParseWithLength(line, len);
    if (!root) return eq_err(err, errlen, "not valid JSON");
    *j = root;
    if (!cJSON_IsObject(root)) return eq_err(err, errlen, "expected a JSON object");
    cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "text");
    if (!t) return eq_err(err, errlen, "missing \"text\"");
    if (!cJSON_IsString(t)) return eq_err(err, errlen, "\"text\" must be a string");
    cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "instruction");
    if (in && !cJSON_IsNull(in) && !cJSON_IsString(in))
        return eq_err(err, errlen, "\"instruction\" must be a string");
    msg_error me;
    if (msg_json_string_field(line, len, "text", 0, text, text_len, &me) < 0 ||
        msg_json_string_field(line, len, "instruction", 0, instruction, instruction_len, &me) < 0) {
        char reason[MSG_REASON_LEN];
        msg_error_format(&me, reason, sizeof reason);
        return eq_err(err, errlen, "%s", reason);
    }
    if (*text == NULL) return eq_err(err, errlen, "missing \"text\"");
    return 0;
}

/* Writes {"ids": [...]} and a newline with one fwrite: printf per id costs
 * more than the tokenizer itself. *buf grows as needed. */
static void put_ids(char **buf, size_t *cap, const int32_t *ids, int n)
{
    size_t need = 16 + (size_t)n * 13;
    if (need > *cap) {
        char *nb = realloc(*buf, need);
        if (!nb) {
            fprintf(stderr, "embedq tokenize: out of memory\n");
            exit(1);
        }
        *buf = nb;
        *cap = need;
    }
    char *p = *buf;
    memcpy(p, "{\"ids\": [", 9);
    p += 9;
    for (int i = 0; i < n; i++) {
        if (i) {
            *p++ = ',';
            *p++ = ' ';
        }
        char tmp[12];
        int k = 0;
        uint32_t v = (uint32_t)ids[i]; /* ids are non-negative */
        do {
            tmp[k++] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        while (k)
            *p++ = tmp[--k];
    }
    memcpy(p, "]}\n", 3);
    p += 3;
    fwrite(*buf, 1, (size_t)(p - *buf), stdout);
}

int cmd_tokenize(int argc, char **argv)
{
    static const cli_command cmd = {
        "tokenize", "--model DIR [--max-tokens N]",
        "Reads JSONL on stdin, one {\"text\": \"...\", \"instruction\": \"...\"?} per line, and\n"
        "prints one {\"ids\": [...]} per line: exactly the ids the model sees (query\n"
        "template, truncation and the final <|endoftext|> included). A bad line prints\n"
        "{\"line\": N, \"error\": \"...\"} and the rest go on; the exit status is 1 if any\n"
        "line failed.",
        NULL};
    const char *model = NULL;
    int max_tokens = 8192;
    cli_flag flags[] = {
        {"model", CLI_STR, &model, 0, 0, "model directory (config.json, tokenizer.json)"},
        {"max-tokens", CLI_INT, &max_tokens, 2, 1 << 20,
         "truncate to this many ids, <|endoftext|> included (capped at max_position_embeddings)"},
    };
    int rc = cli_parse(&cmd, flags, (int)(sizeof flags / sizeof flags[0]), argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    if (!model) return cli_missing(&cmd, "model");

    char err[EQ_ERRLEN];
    eq_options opt = {.max_seq_len = max_tokens, .tokenizer_only = true};
    eq_engine *e;
    if (eq_open(model, &opt, &e, err, sizeof err) != 0) {
        fprintf(stderr, "embedq tokenize: %s\n", err);
        return 1;
    }
    char *line = NULL, *out = NULL;
    size_t cap = 0, out_cap = 0;
    long n, lineno = 0;
    int failed = 0;
    while ((n = jsonl_read_line(stdin, &line, &cap)) >= 0) {
        lineno++;
        if (n == 0) continue; /* blank lines are skipped */
        cJSON *j;
        char *text, *instr;
        size_t text_len, instr_len;
        int32_t *ids = NULL;
        bool trunc;
        int nids = -1;
        if (input_fields(line, (size_t)n, &j, &text, &text_len, &instr, &instr_len, err,
                         sizeof err) == 0)
            nids = eq_encode(e, text, text_len, instr, instr_len, &ids, &trunc, err, sizeof err);
        if (nids < 0) {
            printf("{\"line\": %ld, \"error\": ", lineno);
            json_put_string(stdout, err, strlen(err));
            fputs("}\n", stdout);
            failed = 1;
        } else {
            put_ids(&out, &out_cap, ids, nids);
        }
        free(ids);
        free(text);
        free(instr);
        cJSON_Delete(j);
    }
    free(line);
    free(out);
    eq_close(e);
    return failed;
}
