/* safetensors.c - see safetensors.h for the format and what is checked.
 *
 * The parser trusts nothing in the buffer: every length is checked against
 * the buffer before use, every number in the JSON must be an exact
 * non-negative integer (cJSON stores numbers as doubles, so we accept values
 * up to 2^53), and element/byte counts are computed with overflow checks.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[ST_NDTYPES] = {
    [ST_BOOL] = {"BOOL", 1},       [ST_U8] = {"U8", 1},           [ST_I8] = {"I8", 1},
    [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1}, [ST_F8_E8M0] = {"F8_E8M0", 1},
    [ST_I16] = {"I16", 2},         [ST_U16] = {"U16", 2},         [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2},       [ST_I32] = {"I32", 4},         [ST_U32] = {"U32", 4},
    [ST_F32] = {"F32", 4},         [ST_F64] = {"F64", 8},         [ST_I64] = {"I64", 8},
    [ST_U64] = {"U64", 8},
};

size_t st_dtype_size(st_dtype t)
{
    return (unsigned)t < ST_NDTYPES ? dtypes[t].size : 0;
}

const char *st_dtype_name(st_dtype t)
{
    return (unsigned)t < ST_NDTYPES ? dtypes[t].name : "?";
}

int st_dtype_parse(const char *s, st_dtype *out)
{
    for (int i = 0; i < ST_NDTYPES; i++)
        if (!strcmp(s, dtypes[i].name)) {
            *out = (st_dtype)i;
            return 0;
        }
    return -1;
}

/* ---- parser ---- */

#define ST_MAX_EXACT 9007199254740992.0 /* 2^53: largest exact double int */

/* An exact non-negative integer from a JSON number, or -1. */
static int json_u64(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0.0) || d > ST_MAX_EXACT) return -1;
    uint64_t v = (uint64_t)d;      /* in range: well defined */
    if ((double)v != d) return -1; /* not an integer */
    *out = v;
    return 0;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

void st_header_free(st_header *h)
{
    if (!h) return;
    for (size_t i = 0; i < h->n_tensors; i++)
        free(h->tensors[i].name);
    free(h->tensors);
    free(h->by_name);
    for (size_t i = 0; i < h->n_meta; i++) {
        free(h->meta_keys[i]);
        free(h->meta_vals[i]);
    }
    free(h->meta_keys);
    free(h->meta_vals);
    memset(h, 0, sizeof *h);
}

/* qsort has no context argument in C11; the sorts below use a file-local
 * pointer. The parser is therefore not reentrant across threads during the
 * sort; keep the pointer thread-local. */
static _Thread_local const st_tensor *sort_base;

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(sort_base[*(const size_t *)a].name, sort_base[*(const size_t *)b].name);
}

static int cmp_by_offset(const void *a, const void *b)
{
    const st_tensor *x = &sort_base[*(const size_t *)a];
    const st_tensor *y = &sort_base[*(const size_t *)b];
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static void shape_str(const st_tensor *t, char *buf, size_t n)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int d = 0; d < t->ndim && o < n; d++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* Parses one tensor entry into t (name already set). */
static int parse_tensor(const cJSON *j, st_tensor *t, uint64_t data_len, char *err, size_t errlen)
{
    const char *nm = t->name;
    if (!cJSON_IsObject(j)) return eq_err(err, errlen, "tensor %s: entry is not a JSON object", nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!cJSON_IsString(dt))
        return eq_err(err, errlen, "tensor %s: missing or non-string \"dtype\"", nm);
    if (st_dtype_parse(dt->valuestring, &t->dtype) != 0)
        return eq_err(err, errlen, "tensor %s: unknown dtype \"%.32s\"", nm, dt->valuestring);
    if (!cJSON_IsArray(sh))
        return eq_err(err, errlen, "tensor %s: missing or non-array \"shape\"", nm);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_DIMS)
        return eq_err(err, errlen, "tensor %s: shape has %d dimensions (max %d)", nm, nd,
                      ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    int d = 0;
    for (const cJSON *e = sh->child; e; e = e->next, d++) {
        uint64_t v;
        if (json_u64(e, &v) != 0)
            return eq_err(err, errlen,
                          "tensor %s: shape dimension %d is not a non-negative "
                          "integer",
                          nm, d);
        t->shape[d] = (int64_t)v;
        if (__builtin_mul_overflow(numel, v, &numel))
            return eq_err(err, errlen, "tensor %s: element count overflows 64 bits", nm);
    }
    t->numel = numel;
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2)
        return eq_err(err, errlen, "tensor %s: \"data_offsets\" is not a [begin, end] pair", nm);
    if (json_u64(of->child, &t->begin) != 0 || json_u64(of->child->next, &t->end) != 0)
        return eq_err(err, errlen, "tensor %s: data_offsets are not non-negative integers", nm);
    if (t->begin > t->end)
        return eq_err(err, errlen, "tensor %s: data_offsets [%llu, %llu]: begin > end", nm,
                      (unsigned long long)t->begin, (unsigned long long)t->end);
    uint64_t bytes;
    if (__builtin_mul_overflow(numel, (uint64_t)st_dtype_size(t->dtype), &bytes))
        return eq_err(err, errlen, "tensor %s: byte size overflows 64 bits", nm);
    if (t->end - t->begin != bytes) {
        char s[160];
        shape_str(t, s, sizeof s);
        return eq_err(err, errlen,
                      "tensor %s: data_offsets [%llu, %llu] hold %llu bytes, "
                      "but %s %s needs %llu",
                      nm, (unsigned long long)t->begin, (unsigned long long)t->end,
                      (unsigned long long)(t->end - t->begin), st_dtype_name(t->dtype), s,
                      (unsigned long long)bytes);
    }
    if (t->end > data_len)
        return eq_err(err, errlen,
                      "tensor %s: data_offsets [%llu, %llu] beyond the data "
                      "section (%llu bytes); file truncated?",
                      nm, (unsigned long long)t->begin, (unsigned long long)t->end,
                      (unsigned long long)data_len);
    return 0;
}

int st_parse_header(const uint8_t *buf, size_t len, st_header *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!buf || len < 8)
        return eq_err(err, errlen, "file too short (%zu bytes) for a safetensors header", len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | buf[i];
    if (n > ST_MAX_HEADER)
        return eq_err(err, errlen,
                      "header length %llu exceeds the %u-byte limit; not a "
                      "safetensors file?",
                      (unsigned long long)n, (unsigned)ST_MAX_HEADER);
    if (n > len - 8)
        return eq_err(err, errlen,
                      "header length %llu beyond the end of the file (%zu "
                      "bytes); file truncated?",
                      (unsigned long long)n, len);
    if (n < 2 || buf[8] != '{') return eq_err(err, errlen, "header is not a JSON object");

    const char *js = (const char *)buf + 8;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(js, (size_t)n, &end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t pos = (at && at >= js && at <= js + n) ? (size_t)(at - js) : 0;
        return eq_err(err, errlen, "header is not valid JSON (near byte %zu)", pos);
    }
    /* Only whitespace (HF pads with spaces) may follow the object. */
    if (end && end >= js && end <= js + n) {
        for (const char *p = end; p < js + n; p++)
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
                cJSON_Delete(root);
                return eq_err(err, errlen,
                              "header has data after the JSON object (byte "
                              "%zu)",
                              (size_t)(p - js));
            }
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return eq_err(err, errlen, "header is not a JSON object");
    }

    out->header_len = n;
    out->data_start = 8 + n;
    out->data_len = (uint64_t)len - 8 - n;

    size_t count = 0, n_meta = 0;
    const cJSON *meta = NULL;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!e->string) goto bad_json;
        if (!strcmp(e->string, "__metadata__")) {
            if (meta) {
                eq_err(err, errlen, "duplicate \"__metadata__\"");
                goto fail;
            }
            meta = e;
        } else {
            count++;
        }
    }
    if (meta) {
        if (!cJSON_IsObject(meta)) {
            eq_err(err, errlen, "\"__metadata__\" is not a JSON object");
            goto fail;
        }
        for (const cJSON *e = meta->child; e; e = e->next) {
            if (!e->string) goto bad_json;
            if (!cJSON_IsString(e)) {
                eq_err(err, errlen, "\"__metadata__\" value for \"%.64s\" is not a string",
                       e->string);
                goto fail;
            }
            n_meta++;
        }
        if (n_meta) {
            out->meta_keys = calloc(n_meta, sizeof(char *));
            out->meta_vals = calloc(n_meta, sizeof(char *));
            if (!out->meta_keys || !out->meta_vals) goto oom;
            for (const cJSON *e = meta->child; e; e = e->next) {
                size_t i = out->n_meta;
                out->meta_keys[i] = xstrdup(e->string);
                out->meta_vals[i] = xstrdup(e->valuestring);
                out->n_meta++;
                if (!out->meta_keys[i] || !out->meta_vals[i]) goto oom;
            }
        }
    }

    if (count) {
        out->tensors = calloc(count, sizeof(st_tensor));
        out->by_name = calloc(count, sizeof(size_t));
        if (!out->tensors || !out->by_name) goto oom;
    }
    for (const cJSON *e = root->child; e; e = e->next) {
        if (e == meta) continue;
        st_tensor *t = &out->tensors[out->n_tensors];
        t->name = xstrdup(e->string);
        if (!t->name) goto oom;
        out->n_tensors++;
        if (parse_tensor(e, t, out->data_len, err, errlen) != 0) goto fail;
    }
    cJSON_Delete(root);
    root = NULL;

    /* Duplicate names (cJSON keeps repeated keys as separate children). */
    for (size_t i = 0; i < count; i++)
        out->by_name[i] = i;
    sort_base = out->tensors;
    if (count > 1) qsort(out->by_name, count, sizeof(size_t), cmp_by_name);
    for (size_t i = 1; i < count; i++) {
        const char *a = out->tensors[out->by_name[i - 1]].name;
        const char *b = out->tensors[out->by_name[i]].name;
        if (!strcmp(a, b)) {
            eq_err(err, errlen, "tensor %s: listed twice in the header", a);
            goto fail;
        }
    }

    /* Overlaps: sort by offset, every non-empty tensor must start at or
     * after the furthest end seen so far. */
    if (count > 1) {
        size_t *ord = malloc(count * sizeof(size_t));
        if (!ord) goto oom;
        for (size_t i = 0; i < count; i++)
            ord[i] = i;
        qsort(ord, count, sizeof(size_t), cmp_by_offset);
        uint64_t reach = 0;
        size_t who = 0;
        for (size_t i = 0; i < count; i++) {
            const st_tensor *t = &out->tensors[ord[i]];
            if (t->begin == t->end) continue;
            if (t->begin < reach) {
                eq_err(err, errlen,
                       "tensor %s: data_offsets [%llu, %llu] overlap tensor "
                       "%s",
                       t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                       out->tensors[who].name);
                free(ord);
                goto fail;
            }
            reach = t->end;
            who = ord[i];
        }
        free(ord);
    }
    return 0;

bad_json:
    eq_err(err, errlen, "header is not a JSON object with named entries");
    goto fail;
oom:
    eq_err(err, errlen, "out of memory parsing the header");
fail:
    cJSON_Delete(root);
    st_header_free(out);
    return -1;
}

const st_tensor *st_header_find(const st_header *h, const char *name)
{
    size_t lo = 0, hi = h->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const st_tensor *t = &h->tensors[h->by_name[mid]];
        int c = strcmp(name, t->name);
        if (!c) return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *st_header_meta(const st_header *h, const char *key)
{
    for (size_t i = 0; i < h->n_meta; i++)
        if (!strcmp(h->meta_keys[i], key)) return h->meta_vals[i];
    return NULL;
}

/* ---- mapped files ---- */

int st_open(st_file *f, const char *path, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return eq_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        eq_err(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return eq_err(err, errlen, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        close(fd);
        return eq_err(err, errlen,
                      "%s: file too short (%zu bytes) for a safetensors "
                      "header; truncated?",
                      path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED)
        return eq_err(err, errlen, "%s: mmap failed: %s", path, strerror(map_errno));
    char msg[EQ_ERRLEN];
    if (st_parse_header(map, size, &f->hdr, msg, sizeof msg) != 0) {
        munmap(map, size);
        memset(f, 0, sizeof *f);
        return eq_err(err, errlen, "%s: %s", path, msg);
    }
    f->path = xstrdup(path);
    if (!f->path) {
        st_header_free(&f->hdr);
        munmap(map, size);
        memset(f, 0, sizeof *f);
        return eq_err(err, errlen, "%s: out of memory", path);
    }
    f->map = map;
    f->size = size;
    return 0;
}

void st_close(st_file *f)
{
    if (!f) return;
    if (f->map) munmap((void *)f->map, f->size);
    st_header_free(&f->hdr);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    return st_header_find(&f->hdr, name);
}

const void *st_data(const st_file *f, const st_tensor *t)
{
    return f->map + f->hdr.data_start + t->begin;
}

/* ---- writer ---- */

struct st_writer {
    FILE *fp;
    char *path;
    uint64_t expect; /* bytes of data declared by the header */
    uint64_t written;
    int failed;
};

uint64_t st_desc_bytes(const st_desc *d)
{
    uint64_t n = st_dtype_size(d->dtype);
    for (int i = 0; i < d->ndim; i++)
        n *= (uint64_t)d->shape[i];
    return n;
}

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->oom = 1;
        return;
    }
    sb_put(b, tmp, (size_t)n);
}

static void sb_jstr(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
        } else if (c < 0x20) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

st_writer *st_writer_open(const char *path, const st_desc *desc, size_t n,
                          const char *const *meta_kv, size_t n_meta, char *err, size_t errlen)
{
    sbuf b = {0};
    sb_put(&b, "{", 1);
    int first = 1;
    if (n_meta) {
        sb_put(&b, "\"__metadata__\":{", 16);
        for (size_t i = 0; i < n_meta; i++) {
            if (i) sb_put(&b, ",", 1);
            sb_jstr(&b, meta_kv[2 * i]);
            sb_put(&b, ":", 1);
            sb_jstr(&b, meta_kv[2 * i + 1]);
        }
        sb_put(&b, "}", 1);
        first = 0;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const st_desc *d = &desc[i];
        if (d->ndim < 0 || d->ndim > ST_MAX_DIMS || (unsigned)d->dtype >= ST_NDTYPES) {
            free(b.p);
            eq_err(err, errlen, "%s: tensor %s: bad description", path, d->name);
            return NULL;
        }
        if (!first) sb_put(&b, ",", 1);
        first = 0;
        sb_jstr(&b, d->name);
        sb_printf(&b, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(d->dtype));
        for (int k = 0; k < d->ndim; k++)
            sb_printf(&b, "%s%lld", k ? "," : "", (long long)d->shape[k]);
        uint64_t bytes = st_desc_bytes(d);
        sb_printf(&b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                  (unsigned long long)(off + bytes));
        off += bytes;
    }
    sb_put(&b, "}", 1);
    while (!b.oom && (8 + b.len) % 8)
        sb_put(&b, " ", 1);
    if (b.oom) {
        free(b.p);
        eq_err(err, errlen, "%s: out of memory building the header", path);
        return NULL;
    }

    st_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = xstrdup(path))) {
        free(w);
        free(b.p);
        eq_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    w->expect = off;
    w->fp = fopen(path, "wb");
    if (!w->fp) {
        eq_err(err, errlen, "%s: cannot create: %s", path, strerror(errno));
        free(w->path);
        free(w);
        free(b.p);
        return NULL;
    }
    setvbuf(w->fp, NULL, _IOFBF, 1 << 20);
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)((uint64_t)b.len >> (8 * i));
    if (fwrite(le, 1, 8, w->fp) != 8 || fwrite(b.p, 1, b.len, w->fp) != b.len) {
        eq_err(err, errlen, "%s: write error: %s", path, strerror(errno));
        free(b.p);
        st_writer_abort(w);
        return NULL;
    }
    free(b.p);
    return w;
}

int st_writer_write(st_writer *w, const void *data, size_t bytes, char *err, size_t errlen)
{
    if (w->failed) return eq_err(err, errlen, "%s: earlier write failed", w->path);
    if (bytes > w->expect - w->written) {
        w->failed = 1;
        return eq_err(err, errlen,
                      "%s: writing more data than the header declares "
                      "(%llu bytes)",
                      w->path, (unsigned long long)w->expect);
    }
    if (bytes && fwrite(data, 1, bytes, w->fp) != bytes) {
        w->failed = 1;
        return eq_err(err, errlen, "%s: write error: %s", w->path, strerror(errno));
    }
    w->written += bytes;
    return 0;
}

int st_writer_close(st_writer *w, char *err, size_t errlen)
{
    int rc = 0;
    if (w->failed) {
        rc = eq_err(err, errlen, "%s: earlier write failed", w->path);
    } else if (w->written != w->expect) {
        rc = eq_err(err, errlen, "%s: wrote %llu bytes of tensor data, header declares %llu",
                    w->path, (unsigned long long)w->written, (unsigned long long)w->expect);
    }
    if (fclose(w->fp) != 0 && rc == 0)
        rc = eq_err(err, errlen, "%s: write error on close: %s", w->path, strerror(errno));
    free(w->path);
    free(w);
    return rc;
}

void st_writer_abort(st_writer *w)
{
    if (!w) return;
    fclose(w->fp);
    remove(w->path);
    free(w->path);
    free(w);
}
