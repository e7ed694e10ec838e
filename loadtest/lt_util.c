/* lt_util.c - flags, clocks, buffers, the string map and escaping (lt.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lt.h"

volatile sig_atomic_t lt_stop;

void lt_warn(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s %s: ", LT_PROG, cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- clocks --------------------------------------------------------------------- */

int64_t lt_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void lt_sleep_us(int64_t us)
{
    if (us <= 0) return;
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL); /* EINTR: the caller checks lt_stop */
}

double lt_us_to_s(int64_t us)
{
    return (double)us / 1e6;
}

static void on_signal(int sig)
{
    (void)sig;
    lt_stop = 1;
}

void lt_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* ---- flags ---------------------------------------------------------------------- */

static void print_default(const lt_flag *f)
{
    switch (f->kind) {
    case LT_STR:
        if (*(const char **)f->dst) printf(" (default: %s)", *(const char **)f->dst);
        break;
    case LT_INT:
        printf(" (default: %ld)", *(long *)f->dst);
        break;
    case LT_DBL:
        printf(" (default: %g)", *(double *)f->dst);
        break;
    case LT_BOOL:
    case LT_LIST:
        break;
    }
}

static void print_help(const lt_command *cmd, const lt_flag *flags, int nflags)
{
    printf("usage: %s %s %s\n\n%s\n\nflags:\n", LT_PROG, cmd->name, cmd->usage, cmd->summary);
    for (int i = 0; i < nflags; i++) {
        printf("  --%-18s %s", flags[i].name, flags[i].help);
        print_default(&flags[i]);
        if (flags[i].kind == LT_LIST) printf(" (repeatable)");
        printf("\n");
    }
    printf("  --%-18s %s\n", "help", "print this help and exit");
}

int lt_usage_error(const lt_command *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s %s: ", LT_PROG, cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see %s %s --help)\n", LT_PROG, cmd->name);
    return 2;
}

/* Stores one flag value. Returns 0 or 2 (message printed). */
static int apply(const lt_command *cmd, const lt_flag *f, const char *val)
{
    char *end = NULL;
    switch (f->kind) {
    case LT_STR:
        *(const char **)f->dst = val;
        return 0;
    case LT_LIST: {
        lt_list *l = f->dst;
        if (l->n >= LT_LIST_MAX)
            return lt_usage_error(cmd, "--%s: at most %d values", f->name, LT_LIST_MAX);
        l->items[l->n++] = val;
        return 0;
    }
    case LT_INT: {
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end)
            return lt_usage_error(cmd, "--%s: expected an integer, got '%s'", f->name, val);
        if ((double)v < f->min || (double)v > f->max)
            return lt_usage_error(cmd, "--%s: %ld is outside %.0f..%.0f", f->name, v, f->min,
                                  f->max);
        *(long *)f->dst = v;
        return 0;
    }
    case LT_DBL: {
        errno = 0;
        double v = strtod(val, &end);
        if (errno || end == val || *end || !isfinite(v))
            return lt_usage_error(cmd, "--%s: expected a number, got '%s'", f->name, val);
        if (v < f->min || v > f->max)
            return lt_usage_error(cmd, "--%s: %g is outside %g..%g", f->name, v, f->min, f->max);
        *(double *)f->dst = v;
        return 0;
    }
    case LT_BOOL:
        if (!strcmp(val, "true") || !strcmp(val, "1"))
            *(bool *)f->dst = true;
        else if (!strcmp(val, "false") || !strcmp(val, "0"))
            *(bool *)f->dst = false;
        else
            return lt_usage_error(cmd, "--%s: expected true or false, got '%s'", f->name, val);
        return 0;
    }
    return 2;
}

int lt_parse_flags(const lt_command *cmd, const lt_flag *flags, int nflags, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_help(cmd, flags, nflags);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) return lt_usage_error(cmd, "unexpected argument '%s'", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const lt_flag *f = NULL;
        for (int k = 0; k < nflags && !f; k++)
            if (strlen(flags[k].name) == nlen && !strncmp(flags[k].name, name, nlen)) f = &flags[k];
        if (!f) return lt_usage_error(cmd, "unknown flag --%.*s", (int)nlen, name);
        const char *val = eq ? eq + 1 : NULL;
        if (!val && f->kind == LT_BOOL) val = "true";
        if (!val) {
            if (i + 1 >= argc) return lt_usage_error(cmd, "--%s needs a value", f->name);
            val = argv[++i];
        }
        int rc = apply(cmd, f, val);
        if (rc) return rc;
    }
    return 0;
}

/* ---- buffers -------------------------------------------------------------------- */

int lt_buf_reserve(lt_buf *b, size_t n)
{
    if (b->cap - b->len >= n) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int lt_buf_add(lt_buf *b, const void *p, size_t n)
{
    if (lt_buf_reserve(b, n + 1)) return -1;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0; /* always NUL-terminated for text users */
    return 0;
}

int lt_buf_addf(lt_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || lt_buf_reserve(b, (size_t)n + 1)) return -1;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void lt_buf_free(lt_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid. */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

bool lt_utf8_valid(const void *p, size_t len)
{
    const uint8_t *s = p;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq(s + i, len - i);
        if (!k) return false;
        i += k;
    }
    return true;
}

int lt_buf_json_string(lt_buf *b, const void *p, size_t len)
{
    const uint8_t *s = p;
    if (lt_buf_add(b, "\"", 1)) return -1;
    for (size_t i = 0; i < len;) {
        uint8_t c = s[i];
        int rc = 0;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            rc = lt_buf_add(b, e, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            const char *named = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : NULL;
            rc = named ? lt_buf_add(b, named, 2) : lt_buf_addf(b, "\\u%04x", c);
            i++;
        } else {
            size_t k = utf8_seq(s + i, len - i);
            if (k)
                rc = lt_buf_add(b, s + i, k), i += k;
            else
                rc = lt_buf_add(b, "\\ufffd", 6), i++;
        }
        if (rc) return -1;
    }
    return lt_buf_add(b, "\"", 1);
}

void lt_json_string(FILE *f, const void *s, size_t len)
{
    lt_buf b = {0};
    if (lt_buf_json_string(&b, s, len) == 0)
        fwrite(b.data, 1, b.len, f);
    else
        fputs("\"(out of memory)\"", f);
    lt_buf_free(&b);
}

/* ---- escaping ------------------------------------------------------------------- */

int lt_escape(lt_buf *b, const void *p, size_t len)
{
    const uint8_t *s = p;
    if (lt_buf_reserve(b, len + 1)) return -1;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        int rc;
        if (c == '\\')
            rc = lt_buf_add(b, "\\\\", 2);
        else if (c == '\t')
            rc = lt_buf_add(b, "\\t", 2);
        else if (c == '\n')
            rc = lt_buf_add(b, "\\n", 2);
        else if (c == '\r')
            rc = lt_buf_add(b, "\\r", 2);
        else if (c < 0x20 || c == 0x7f)
            rc = lt_buf_addf(b, "\\x%02x", c);
        else
            rc = lt_buf_add(b, &c, 1);
        if (rc) return -1;
    }
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long lt_unescape(char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\\') {
            s[o++] = s[i];
            continue;
        }
        if (++i >= len) return -1;
        switch (s[i]) {
        case '\\':
            s[o++] = '\\';
            break;
        case 't':
            s[o++] = '\t';
            break;
        case 'n':
            s[o++] = '\n';
            break;
        case 'r':
            s[o++] = '\r';
            break;
        case 'x': {
            if (i + 2 >= len) return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0) return -1;
            s[o++] = (char)(h << 4 | l);
            i += 2;
            break;
        }
        default:
            return -1;
        }
    }
    s[o] = 0;
    return (long)o;
}

/* ---- string map ----------------------------------------------------------------- */

struct lt_map_slot {
    char *key; /* NULL: empty */
    size_t len;
    uint64_t hash;
    int64_t v;
};

static uint64_t fnv1a(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static struct lt_map_slot *find_slot(struct lt_map_slot *slots, size_t cap, const void *key,
                                     size_t len, uint64_t h)
{
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        struct lt_map_slot *s = &slots[i];
        if (!s->key || (s->hash == h && s->len == len && !memcmp(s->key, key, len))) return s;
    }
}

int64_t *lt_map_get(const lt_map *m, const void *key, size_t len)
{
    if (!m->cap) return NULL;
    struct lt_map_slot *s = find_slot(m->slots, m->cap, key, len, fnv1a(key, len));
    return s->key ? &s->v : NULL;
}

static int grow(lt_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    struct lt_map_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        struct lt_map_slot *o = &m->slots[i];
        if (o->key) *find_slot(slots, cap, o->key, o->len, o->hash) = *o;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int64_t *lt_map_put(lt_map *m, const void *key, size_t len, int64_t v, bool *added)
{
    if ((m->n + 1) * 2 > m->cap && grow(m)) return NULL;
    uint64_t h = fnv1a(key, len);
    struct lt_map_slot *s = find_slot(m->slots, m->cap, key, len, h);
    if (added) *added = !s->key;
    if (s->key) return &s->v;
    char *k = malloc(len + 1);
    if (!k) return NULL;
    if (len) memcpy(k, key, len);
    k[len] = 0;
    s->key = k;
    s->len = len;
    s->hash = h;
    s->v = v;
    m->n++;
    return &s->v;
}

void lt_map_each(const lt_map *m, void (*fn)(const char *key, size_t len, int64_t v, void *arg),
                 void *arg)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key) fn(m->slots[i].key, m->slots[i].len, m->slots[i].v, arg);
}

void lt_map_free(lt_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- misc ----------------------------------------------------------------------- */

int lt_parse_i64(const char *s, size_t len, int64_t *out)
{
    char tmp[32];
    if (!len || len >= sizeof tmp) return -1;
    memcpy(tmp, s, len);
    tmp[len] = 0;
    char *end;
    errno = 0;
    long long v = strtoll(tmp, &end, 10);
    if (errno || *end || end == tmp) return -1;
    *out = v;
    return 0;
}
