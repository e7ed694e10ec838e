/* lt_corpus.h - a corpus of documents cut into text chunks for `replay`.
 *
 * A path is a text file or a directory, walked recursively in name order
 * (hidden entries skipped), keeping files whose extension is in a comma list
 * ("md,txt"; empty: every file). Each file is cut into chunks of at most
 * max_bytes bytes, at whitespace where there is some in the second half of
 * the window (else at a UTF-8 character boundary), with surrounding
 * whitespace trimmed; empty chunks are dropped, and so are chunks that are
 * not valid UTF-8 (counted in skipped_invalid: the worker would dead-letter
 * them as invalid_utf8, which is not what a corpus is for).
 */
#ifndef LT_CORPUS_H
#define LT_CORPUS_H

#include <stddef.h>

typedef struct {
    const char *text; /* points into the owning file's buffer (not NUL-terminated) */
    size_t len;
} lt_chunk;

typedef struct {
    lt_chunk *chunks; /* (n) in file order */
    size_t n, cap;
    char **files; /* (n_files) file contents, owned */
    size_t n_files, files_cap;
    size_t skipped_invalid;
    size_t bytes; /* total chunk bytes */
} lt_corpus;

/* Adds the files under path. 0, or -1 + err (unreadable path). */
int lt_corpus_add(lt_corpus *c, const char *path, const char *exts, size_t max_bytes, char *err,
                  size_t errlen);
void lt_corpus_free(lt_corpus *c);

/* Cuts text[0..len) into chunks of at most max_bytes, calling fn for each.
 * Exposed for tests. Returns the number of chunks. */
size_t lt_chunk_text(const char *text, size_t len, size_t max_bytes,
                     void (*fn)(const char *s, size_t n, void *arg), void *arg);

#endif
