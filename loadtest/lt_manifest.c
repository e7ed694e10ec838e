/* lt_manifest.c - writing and tailing manifests (lt_manifest.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lt.h"
#include "lt_manifest.h"

/* ---- writing ---------------------------------------------------------------------- */

int lt_manifest_create(lt_manifest_writer *w, const char *path, const char *broker,
                       const char *target, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    w->f = fopen(path, "w");
    if (!w->f) return eq_err(err, errlen, "cannot create %s: %s", path, strerror(errno));
    w->path = path;
    lt_buf t = {0};
    if (lt_escape(&t, target, strlen(target))) {
        fclose(w->f);
        w->f = NULL;
        return eq_err(err, errlen, "out of memory");
    }
    fprintf(w->f, "%s\n# broker %s\n# target %s\n", LT_MANIFEST_MAGIC, broker, (char *)t.data);
    lt_buf_free(&t);
    fflush(w->f);
    return 0;
}

void lt_manifest_started(lt_manifest_writer *w, int64_t us)
{
    if (!w->f) return;
    fprintf(w->f, "# started_us %" PRId64 "\n", us);
    fflush(w->f);
}

void lt_manifest_mark(lt_manifest_writer *w, const char *name, int64_t us)
{
    if (!w->f) return;
    fprintf(w->f, "# mark %s %" PRId64 "\n", name, us);
    fflush(w->f);
}

void lt_manifest_add(lt_manifest_writer *w, int64_t sent_us, const char *pos, char kind,
                     const void *id, size_t id_len)
{
    if (!w->f) return;
    lt_buf e = {0};
    if (lt_escape(&e, id, id_len) || lt_buf_add(&e, "", 0)) {
        w->failed = true;
        lt_buf_free(&e);
        return;
    }
    if (fprintf(w->f, "%" PRId64 "\t%s\t%c\t%s\n", sent_us, pos, kind, (char *)e.data) < 0)
        w->failed = true;
    w->count++;
    lt_buf_free(&e);
}

void lt_manifest_flush(lt_manifest_writer *w)
{
    if (w->f && fflush(w->f)) w->failed = true;
}

int lt_manifest_close(lt_manifest_writer *w, char *err, size_t errlen)
{
    if (!w->f) return 0;
    fprintf(w->f, "# end %ld\n", w->count);
    int rc = 0;
    if (fflush(w->f) || ferror(w->f) || w->failed)
        rc = eq_err(err, errlen, "writing %s: %s", w->path, strerror(errno));
    if (fclose(w->f) && !rc) rc = eq_err(err, errlen, "closing %s: %s", w->path, strerror(errno));
    w->f = NULL;
    return rc;
}

/* ---- reading ---------------------------------------------------------------------- */

int lt_manifest_open(lt_manifest_reader *r, const char *path, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        int e = errno;
        eq_err(err, errlen, "cannot open the manifest %s: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    r->path = path;
    return 0;
}

/* One "# ..." line (NUL-terminated, without the newline). */
static int header_line(lt_manifest_reader *r, char *s, const lt_manifest_cb *cb, void *arg,
                       char *err, size_t errlen)
{
    char name[128];
    long long v;
    if (!strcmp(s, LT_MANIFEST_MAGIC)) {
        r->header_ok = true;
    } else if (!r->header_ok) {
        return eq_err(err, errlen, "%s is not an embedq-loadtest manifest (first line: %.60s)",
                      r->path, s);
    } else if (!strncmp(s, "# broker ", 9)) {
        snprintf(r->broker, sizeof r->broker, "%s", s + 9);
    } else if (!strncmp(s, "# target ", 9)) {
        snprintf(r->target, sizeof r->target, "%s", s + 9);
        long n = lt_unescape(r->target, strlen(r->target));
        if (n < 0) return eq_err(err, errlen, "%s:%ld: bad escape", r->path, r->line_no);
    } else if (sscanf(s, "# started_us %lld", &v) == 1) {
        r->started_us = v;
    } else if (sscanf(s, "# mark %127s %lld", name, &v) == 2) {
        if (cb->mark) cb->mark(arg, name, v);
    } else if (sscanf(s, "# end %lld", &v) == 1) {
        r->ended = true;
        r->end_count = (long)v;
    } /* other comments: ignored (forward compatible) */
    return 0;
}

/* One entry line, split in place. */
static int entry_line(lt_manifest_reader *r, char *s, size_t len, const lt_manifest_cb *cb,
                      void *arg, char *err, size_t errlen)
{
    char *t1 = memchr(s, '\t', len);
    char *t2 = t1 ? memchr(t1 + 1, '\t', len - (size_t)(t1 + 1 - s)) : NULL;
    char *t3 = t2 ? memchr(t2 + 1, '\t', len - (size_t)(t2 + 1 - s)) : NULL;
    int64_t sent;
    if (!r->header_ok) return eq_err(err, errlen, "%s is not an embedq-loadtest manifest", r->path);
    if (!t3 || t3 != t2 + 2 || lt_parse_i64(s, (size_t)(t1 - s), &sent))
        return eq_err(err, errlen, "%s:%ld: expected SENT_US<tab>POSITION<tab>KIND<tab>ID", r->path,
                      r->line_no);
    *t2 = 0;
    char kind = t2[1];
    char *id = t3 + 1;
    long id_len = lt_unescape(id, len - (size_t)(id - s));
    if (id_len < 0) return eq_err(err, errlen, "%s:%ld: bad escape in the id", r->path, r->line_no);
    r->entries++;
    if (cb->entry) cb->entry(arg, sent, t1 + 1, kind, id, (size_t)id_len);
    return 0;
}

long lt_manifest_poll(lt_manifest_reader *r, const lt_manifest_cb *cb, void *arg, char *err,
                      size_t errlen)
{
    long lines = 0;
    for (;;) {
        if (r->cap - r->len < 65536) {
            char *b = realloc(r->buf, r->cap + 65536);
            if (!b) return eq_err(err, errlen, "out of memory");
            r->buf = b;
            r->cap += 65536;
        }
        ssize_t got = read(r->fd, r->buf + r->len, r->cap - r->len - 1);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return eq_err(err, errlen, "reading %s: %s", r->path, strerror(errno));
        if (got == 0) return lines;
        r->len += (size_t)got;
        size_t start = 0;
        for (;;) {
            char *nl = memchr(r->buf + start, '\n', r->len - start);
            if (!nl) break;
            *nl = 0;
            char *s = r->buf + start;
            size_t n = (size_t)(nl - s);
            r->line_no++;
            lines++;
            int rc = s[0] == '#' ? header_line(r, s, cb, arg, err, errlen)
                     : n         ? entry_line(r, s, n, cb, arg, err, errlen)
                                 : 0;
            if (rc) return -1;
            start = (size_t)(nl - r->buf) + 1;
        }
        memmove(r->buf, r->buf + start, r->len - start);
        r->len -= start;
    }
}

void lt_manifest_close_reader(lt_manifest_reader *r)
{
    if (r->fd >= 0) close(r->fd);
    free(r->buf);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}
