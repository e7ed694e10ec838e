/* lt_corpus.c - reading and chunking a corpus (lt_corpus.h). */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lt.h"
#include "lt_corpus.h"

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

size_t lt_chunk_text(const char *s, size_t len, size_t max_bytes,
                     void (*fn)(const char *s, size_t n, void *arg), void *arg)
{
    size_t pos = 0, count = 0;
    if (max_bytes < 8) max_bytes = 8;
    while (pos < len) {
        while (pos < len && is_space(s[pos]))
            pos++;
        if (pos >= len) break;
        size_t end = len - pos <= max_bytes ? len : pos + max_bytes;
        if (end < len) {
            size_t cut = end;
            while (cut > pos + max_bytes / 2 && !is_space(s[cut]))
                cut--;
            if (is_space(s[cut]))
                end = cut;
            else /* no space: back off to a character boundary */
                while (end > pos + 1 && ((unsigned char)s[end] & 0xc0) == 0x80)
                    end--;
        }
        size_t stop = end;
        while (stop > pos && is_space(s[stop - 1]))
            stop--;
        if (stop > pos) {
            fn(s + pos, stop - pos, arg);
            count++;
        }
        pos = end;
    }
    return count;
}

typedef struct {
    lt_corpus *c;
    bool oom;
} add_ctx;

static void add_chunk(const char *s, size_t n, void *arg)
{
    add_ctx *a = arg;
    lt_corpus *c = a->c;
    if (!lt_utf8_valid(s, n)) {
        c->skipped_invalid++;
        return;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        lt_chunk *p = realloc(c->chunks, cap * sizeof *p);
        if (!p) {
            a->oom = true;
            return;
        }
        c->chunks = p;
        c->cap = cap;
    }
    c->chunks[c->n++] = (lt_chunk){s, n};
    c->bytes += n;
}

static bool ext_ok(const char *path, const char *exts)
{
    if (!exts || !*exts) return true;
    const char *base = strrchr(path, '/');
    const char *dot = strrchr(base ? base : path, '.');
    if (!dot) return false;
    size_t n = strlen(dot + 1);
    for (const char *e = exts; *e;) {
        size_t k = strcspn(e, ",");
        if (k == n && !strncmp(e, dot + 1, n)) return true;
        e += k;
        if (*e == ',') e++;
    }
    return false;
}

static int add_file(lt_corpus *c, const char *path, size_t max_bytes, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) return eq_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
    lt_buf b = {0};
    char tmp[65536];
    size_t got;
    int rc = 0;
    while ((got = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (lt_buf_add(&b, tmp, got)) {
            rc = eq_err(err, errlen, "out of memory reading %s", path);
            break;
        }
    if (!rc && ferror(f)) rc = eq_err(err, errlen, "reading %s: %s", path, strerror(errno));
    fclose(f);
    if (!rc && c->n_files == c->files_cap) {
        size_t cap = c->files_cap ? c->files_cap * 2 : 64;
        char **p = realloc(c->files, cap * sizeof *p);
        if (!p)
            rc = eq_err(err, errlen, "out of memory");
        else
            c->files = p, c->files_cap = cap;
    }
    if (rc || !b.data) {
        lt_buf_free(&b);
        return rc;
    }
    c->files[c->n_files++] = (char *)b.data; /* chunks point into it */
    add_ctx a = {c, false};
    lt_chunk_text((const char *)b.data, b.len, max_bytes, add_chunk, &a);
    return a.oom ? eq_err(err, errlen, "out of memory") : 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_path(lt_corpus *c, const char *path, const char *exts, size_t max_bytes, int depth,
                    char *err, size_t errlen);

static int add_dir(lt_corpus *c, const char *path, const char *exts, size_t max_bytes, int depth,
                   char *err, size_t errlen)
{
    DIR *d = opendir(path);
    if (!d) return eq_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) {
                rc = eq_err(err, errlen, "out of memory");
                break;
            }
            names = p;
        }
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        names[n] = malloc(len);
        if (!names[n]) {
            rc = eq_err(err, errlen, "out of memory");
            break;
        }
        snprintf(names[n++], len, "%s/%s", path, e->d_name);
    }
    closedir(d);
    if (!rc && n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (!rc) rc = add_path(c, names[i], exts, max_bytes, depth + 1, err, errlen);
        free(names[i]);
    }
    free(names);
    return rc;
}

static int add_path(lt_corpus *c, const char *path, const char *exts, size_t max_bytes, int depth,
                    char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st)) return eq_err(err, errlen, "cannot read %s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        if (depth > 32) return 0; /* a link loop */
        return add_dir(c, path, exts, max_bytes, depth, err, errlen);
    }
    if (!S_ISREG(st.st_mode)) return 0;
    if (depth > 0 && !ext_ok(path, exts)) return 0; /* a file named on the command line: always */
    return add_file(c, path, max_bytes, err, errlen);
}

int lt_corpus_add(lt_corpus *c, const char *path, const char *exts, size_t max_bytes, char *err,
                  size_t errlen)
{
    return add_path(c, path, exts, max_bytes, 0, err, errlen);
}

void lt_corpus_free(lt_corpus *c)
{
    for (size_t i = 0; i < c->n_files; i++)
        free(c->files[i]);
    free(c->files);
    free(c->chunks);
    memset(c, 0, sizeof *c);
}
