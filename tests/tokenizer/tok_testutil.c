/* tok_testutil.c - see tok_testutil.h. */
#include "tok_testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

const char TU_TEMPLATE_PP[] =
    "{\"type\":\"TemplateProcessing\","
    "\"single\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
    "{\"SpecialToken\":{\"id\":\"<|endoftext|>\",\"type_id\":0}}],"
    "\"pair\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
    "{\"SpecialToken\":{\"id\":\"<|endoftext|>\",\"type_id\":0}},"
    "{\"Sequence\":{\"id\":\"B\",\"type_id\":1}},"
    "{\"SpecialToken\":{\"id\":\"<|endoftext|>\",\"type_id\":1}}],"
    "\"special_tokens\":{\"<|endoftext|>\":{\"id\":\"<|endoftext|>\",\"ids\":[151643],"
    "\"tokens\":[\"<|endoftext|>\"]}}}";

const char TU_SEQUENCE_PP[] =
    "{\"type\":\"Sequence\",\"processors\":["
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":false,"
    "\"use_regex\":false},"
    "{\"type\":\"TemplateProcessing\","
    "\"single\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
    "{\"SpecialToken\":{\"id\":\"<|endoftext|>\",\"type_id\":0}}],"
    "\"pair\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
    "{\"SpecialToken\":{\"id\":\"<|endoftext|>\",\"type_id\":0}},"
    "{\"Sequence\":{\"id\":\"B\",\"type_id\":1}},"
    "{\"SpecialToken\":{\"id\":\"<|endoftext|>\",\"type_id\":1}}],"
    "\"special_tokens\":{\"<|endoftext|>\":{\"id\":\"<|endoftext|>\",\"ids\":[151643],"
    "\"tokens\":[\"<|endoftext|>\"]}}}]}";

int tu_read_lines(const char *path, char ***out)
{
    size_t pl = strlen(path);
    bool gz = pl > 3 && !strcmp(path + pl - 3, ".gz");
    FILE *f;
    if (gz) {
        if (strchr(path, '\'')) return -1;
        char *cmd = malloc(pl + 32);
        if (!cmd) return -1;
        snprintf(cmd, pl + 32, "gzip -dc '%s'", path);
        f = popen(cmd, "r");
        free(cmd);
    } else {
        f = fopen(path, "rb");
    }
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return -1;
    }
    char **lines = NULL;
    int n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t ll;
    while ((ll = getline(&line, &lcap, f)) >= 0) {
        while (ll > 0 && (line[ll - 1] == '\n' || line[ll - 1] == '\r'))
            line[--ll] = 0;
        if (ll == 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            char **nl = realloc(lines, (size_t)cap * sizeof *nl);
            if (!nl) return -1;
            lines = nl;
        }
        lines[n] = malloc((size_t)ll + 1);
        if (!lines[n]) return -1;
        memcpy(lines[n], line, (size_t)ll + 1);
        n++;
    }
    free(line);
    int rc = gz ? pclose(f) : fclose(f);
    if (rc != 0) {
        fprintf(stderr, "%s: read failed\n", path);
        for (int i = 0; i < n; i++)
            free(lines[i]);
        free(lines);
        return -1;
    }
    *out = lines;
    return n;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int tu_read_corpus(const char *path, text_t **out)
{
    char **lines;
    int n = tu_read_lines(path, &lines);
    if (n < 0) return -1;
    text_t *t = calloc((size_t)n + 1, sizeof *t);
    if (!t) return -1;
    for (int i = 0; i < n; i++) {
        cJSON *j = cJSON_Parse(lines[i]);
        const cJSON *tx = cJSON_GetObjectItemCaseSensitive(j, "text");
        const cJSON *hx = cJSON_GetObjectItemCaseSensitive(j, "hex");
        if (!cJSON_IsString(tx)) {
            fprintf(stderr, "%s:%d: no text\n", path, i + 1);
            return -1;
        }
        if (cJSON_IsString(hx)) {
            size_t hl = strlen(hx->valuestring);
            t[i].s = malloc(hl / 2 + 1);
            for (size_t k = 0; k + 1 < hl; k += 2)
                t[i].s[k / 2] =
                    (char)(hexval(hx->valuestring[k]) * 16 + hexval(hx->valuestring[k + 1]));
            t[i].len = hl / 2;
            t[i].s[t[i].len] = 0;
        } else {
            t[i].len = strlen(tx->valuestring);
            t[i].s = malloc(t[i].len + 1);
            memcpy(t[i].s, tx->valuestring, t[i].len + 1);
        }
        cJSON_Delete(j);
        free(lines[i]);
    }
    free(lines);
    *out = t;
    return n;
}

int tu_ids_from_json(const cJSON *arr, ids_t *out)
{
    out->v = NULL;
    out->n = 0;
    if (!cJSON_IsArray(arr)) return -1;
    int n = cJSON_GetArraySize(arr);
    out->v = malloc(((size_t)n + 1) * sizeof *out->v);
    if (!out->v) return -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (!cJSON_IsNumber(e)) return -1;
        out->v[out->n++] = (int32_t)e->valuedouble;
    }
    return 0;
}

bool tu_ids_eq(const int32_t *a, int na, const int32_t *b, int nb)
{
    return na == nb && (na == 0 || !memcmp(a, b, (size_t)na * sizeof *a));
}

void tu_print_escaped(const char *s, size_t n, size_t max)
{
    size_t lim = n < max ? n : max;
    for (size_t i = 0; i < lim; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", stderr);
        else if (c == '\r')
            fputs("\\r", stderr);
        else if (c == '\t')
            fputs("\\t", stderr);
        else if (c == '\\')
            fputs("\\\\", stderr);
        else if (c >= 0x20 && c < 0x7f)
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    if (lim < n) fprintf(stderr, "...(%zu bytes)", n);
}

static void print_ids_around(const tok_tokenizer *t, const char *label, const int32_t *v, int n,
                             int at)
{
    int lo = at - 3 < 0 ? 0 : at - 3, hi = at + 6 > n ? n : at + 6;
    fprintf(stderr, "    %s (%d ids) [%d..%d):", label, n, lo, hi);
    for (int k = lo; k < hi; k++) {
        size_t bl;
        const char *b = tok_token_bytes(t, v[k], &bl);
        fprintf(stderr, " %s%d\"", k == at ? "*" : "", v[k]);
        if (b) tu_print_escaped(b, bl, 40);
        fputc('"', stderr);
    }
    fputc('\n', stderr);
}

void tu_report(const tok_tokenizer *t, const char *what, const text_t *text, const int32_t *want,
               int nwant, const int32_t *got, int ngot)
{
    int at = 0;
    while (at < nwant && at < ngot && want[at] == got[at])
        at++;
    fprintf(stderr, "MISMATCH %s: text \"", what);
    tu_print_escaped(text->s, text->len, 160);
    fprintf(stderr, "\"\n    first difference at id #%d\n", at);
    print_ids_around(t, "want", want, nwant, at);
    print_ids_around(t, "got ", got, ngot, at);
}

int tu_write_with_post_processor(const char *src, const char *dst, const char *pp)
{
    char err[EQ_ERRLEN];
    size_t len;
    char *buf = eq_read_file(src, &len, err, sizeof err);
    if (!buf) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    static const char key[] = "\"post_processor\"";
    char *k = buf;
    const char *vstart = NULL, *vend = NULL;
    while ((k = strstr(k, key)) != NULL) {
        if (k > buf && k[-1] == '\\') {
            k++;
            continue;
        }
        char *p = k + sizeof key - 1;
        while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
            p++;
        if (*p != ':') {
            k++;
            continue;
        }
        p++;
        while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
            p++;
        const char *end = NULL;
        cJSON *v = cJSON_ParseWithLengthOpts(p, len - (size_t)(p - buf), &end, false);
        if (!v) break;
        cJSON_Delete(v);
        vstart = p, vend = end;
        break;
    }
    if (!vstart) {
        fprintf(stderr, "%s: no top-level post_processor\n", src);
        free(buf);
        return -1;
    }
    FILE *f = fopen(dst, "wb");
    if (!f) {
        perror(dst);
        free(buf);
        return -1;
    }
    fwrite(buf, 1, (size_t)(vstart - buf), f);
    fputs(pp, f);
    fwrite(vend, 1, len - (size_t)(vend - buf), f);
    free(buf);
    return fclose(f) == 0 ? 0 : -1;
}
