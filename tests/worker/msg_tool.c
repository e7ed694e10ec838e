/* msg_tool.c - decodes one message file and writes its output message, for
 * the schema checks (schemas/tools/check_examples.py) and to regenerate the
 * golden output examples by hand:
 *
 *   msg_tool [--hidden N] FORMAT FILE
 *
 * FORMAT: msgpack | json | qdrant (the output, to stdout, with the golden
 * vector of msg_golden.h) or key (the output record key, no input key).
 * A message that does not decode: its dead-letter reason on stdout, exit 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "msg_golden.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t k;
    while (b && (k = fread(b + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) b = realloc(b, cap *= 2);
    }
    fclose(f);
    *len = n;
    return b;
}

int main(int argc, char **argv)
{
    msg_limits lim = {0, 0, 1024, 0, MSG_FMT_MSGPACK};
    int a = 1;
    if (a + 1 < argc && !strcmp(argv[a], "--hidden")) {
        lim.hidden_size = atoi(argv[a + 1]);
        a += 2;
    }
    if (argc - a != 2) {
        fprintf(stderr, "usage: msg_tool [--hidden N] msgpack|json|qdrant|pgvector|key FILE\n");
        return 1;
    }
    const char *fmt = argv[a];
    if (!strcmp(fmt, "json")) lim.out_format = MSG_FMT_JSON;
    if (!strcmp(fmt, "qdrant")) lim.out_format = MSG_FMT_QDRANT;
    if (!strcmp(fmt, "pgvector")) lim.out_format = MSG_FMT_PGVECTOR;
    size_t len = 0;
    char *buf = slurp(argv[a + 1], &len);
    if (!buf) {
        perror(argv[a + 1]);
        return 1;
    }
    msg_input in;
    msg_error e;
    int rc = msg_decode(buf, len, &lim, &in, &e);
    free(buf);
    if (rc != 0) {
        char reason[MSG_REASON_LEN];
        msg_error_format(&e, reason, sizeof reason);
        printf("%s\n", reason);
        return 2;
    }
    int d = in.dimensions ? in.dimensions : GOLDEN_DIMS;
    float *v = malloc(sizeof(float) * (size_t)d);
    golden_vector(v, d);
    msg_buf out = {0};
    if (!strcmp(fmt, "msgpack"))
        rc = msg_encode_msgpack(&in, GOLDEN_MODEL, v, d, GOLDEN_TOKENS, false, &out, &e);
    else if (!strcmp(fmt, "json"))
        rc = msg_encode_json(&in, GOLDEN_MODEL, v, d, GOLDEN_TOKENS, false, &out, &e);
    else if (!strcmp(fmt, "qdrant"))
        rc = msg_encode_qdrant(&in, GOLDEN_COLLECTION, GOLDEN_MODEL, v, d, GOLDEN_TOKENS, false,
                               &out, &e);
    else if (!strcmp(fmt, "pgvector"))
        rc = msg_encode_pgvector(&in, GOLDEN_MODEL, v, d, GOLDEN_TOKENS, false, &out, &e);
    else
        rc = msg_output_key(&in, NULL, 0, &out, &e);
    if (rc != 0) {
        char reason[MSG_REASON_LEN];
        msg_error_format(&e, reason, sizeof reason);
        printf("%s\n", reason);
        rc = 2;
    } else {
        fwrite(out.data, 1, out.len, stdout);
    }
    msg_buf_free(&out);
    msg_input_free(&in);
    free(v);
    return rc;
}
