/* tok_testutil.h - shared helpers for the tokenizer tests: the corpus,
 * goldens and exceptions files, id lists, and readable mismatch reports. */
#ifndef TOK_TESTUTIL_H
#define TOK_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

typedef struct {
    int32_t *v;
    int n;
} ids_t;

typedef struct {
    char *s; /* UTF-8 bytes (may contain NUL) */
    size_t len;
} text_t;

/* corpus.jsonl: {"text": ..., "hex"?: ...} per line. Returns count or -1. */
int tu_read_corpus(const char *path, text_t **out);

/* Runs `gzip -dc path` (or reads a plain file when path does not end in
 * .gz) and returns the lines (malloc'd, NUL-terminated). Returns count or -1. */
int tu_read_lines(const char *path, char ***out);

/* Parses a JSON array of integers. Returns 0 or -1. */
struct cJSON;
int tu_ids_from_json(const struct cJSON *arr, ids_t *out);

bool tu_ids_eq(const int32_t *a, int na, const int32_t *b, int nb);

/* Prints a mismatch: the text (escaped, shortened), the first differing
 * position, and both id lists around it with their token bytes. */
void tu_report(const tok_tokenizer *t, const char *what, const text_t *text, const int32_t *want,
               int nwant, const int32_t *got, int ngot);

/* Prints s[0..n) escaped (non-printable and non-ASCII as \xNN or \u), at
 * most max bytes of input. */
void tu_print_escaped(const char *s, size_t n, size_t max);

/* Writes a copy of the tokenizer.json at src to dst with its top-level
 * "post_processor" value replaced by `pp` (JSON text). Returns 0 or -1. */
int tu_write_with_post_processor(const char *src, const char *dst, const char *pp);

/* The embedding repos' TemplateProcessing post-processor (appends EOS), and
 * the same wrapped in a Sequence after ByteLevel. */
extern const char TU_TEMPLATE_PP[];
extern const char TU_SEQUENCE_PP[];

#endif
