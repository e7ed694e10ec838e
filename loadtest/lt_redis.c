/* lt_redis.c - hiredis helpers (lt_redis.h). */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "lt.h"
#include "lt_redis.h"

typedef struct {
    char host[256];
    int port;
    char user[128], pass[256];
    int db;
} redis_url;

static int hexv(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out (cap). 0 or -1. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n) return -1;
            int h = hexv(s[i + 1]), l = hexv(s[i + 2]);
            if (h < 0 || l < 0) return -1;
            c = (char)(h << 4 | l);
            i += 2;
        }
        if (o + 1 >= cap) return -1;
        out[o++] = c;
    }
    out[o] = 0;
    return 0;
}

static int parse_url(const char *url, redis_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (strncmp(url, "redis://", 8))
        return eq_err(err, errlen,
                      "--redis-url '%s': expected redis://[user:pass@]HOST[:PORT][/DB]", url);
    const char *p = url + 8, *end = p + strcspn(p, "/");
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p; /* no ':' -> the userinfo is the password */
        if ((colon && pct_decode(p, (size_t)(colon - p), u->user, sizeof u->user)) ||
            pct_decode(pw, (size_t)(at - pw), u->pass, sizeof u->pass))
            return eq_err(err, errlen, "--redis-url: bad user or password encoding");
        p = at + 1;
    }
    const char *hend;
    if (*p == '[') { /* [IPv6] */
        hend = memchr(p, ']', (size_t)(end - p));
        if (!hend) return eq_err(err, errlen, "--redis-url '%s': unterminated [", url);
        snprintf(u->host, sizeof u->host, "%.*s", (int)(hend - p - 1), p + 1);
        hend++;
    } else {
        hend = memchr(p, ':', (size_t)(end - p));
        if (!hend) hend = end;
        snprintf(u->host, sizeof u->host, "%.*s", (int)(hend - p), p);
    }
    if (!u->host[0]) return eq_err(err, errlen, "--redis-url '%s': no host", url);
    if (hend < end && *hend == ':') {
        char *e;
        long port = strtol(hend + 1, &e, 10);
        if (e != end || port < 1 || port > 65535)
            return eq_err(err, errlen, "--redis-url '%s': bad port", url);
        u->port = (int)port;
    }
    if (*end == '/' && end[1]) {
        char *e;
        long db = strtol(end + 1, &e, 10);
        if (*e || db < 0 || db > 100000)
            return eq_err(err, errlen, "--redis-url '%s': bad db", url);
        u->db = (int)db;
    }
    return 0;
}

redisReply *ltr_cmd(redisContext *c, int argc, const char **argv, const size_t *lens, char *err,
                    size_t errlen)
{
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    if (!r)
        return eq_err(err, errlen, "redis %s: %s", argv[0], c->errstr[0] ? c->errstr : "no reply"),
               NULL;
    if (r->type == REDIS_REPLY_ERROR) {
        eq_err(err, errlen, "redis %s: %s", argv[0], r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

redisContext *ltr_connect(const char *url, char *err, size_t errlen)
{
    redis_url u;
    if (parse_url(url, &u, err, errlen)) return NULL;
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(u.host, u.port, tv);
    if (!c) return eq_err(err, errlen, "cannot connect to Redis: out of memory"), NULL;
    if (c->err) {
        eq_err(err, errlen, "cannot connect to Redis at %s:%d: %s", u.host, u.port, c->errstr);
        redisFree(c);
        return NULL;
    }
    struct timeval cmd_tv = {30, 0};
    redisSetTimeout(c, cmd_tv);
    char e[LT_ERRLEN], dbs[16];
    redisReply *r = NULL;
    if (u.pass[0]) {
        const char *a[3] = {"AUTH", u.user[0] ? u.user : u.pass, u.pass};
        r = ltr_cmd(c, u.user[0] ? 3 : 2, a, NULL, e, sizeof e);
        if (!r) goto fail;
        freeReplyObject(r);
    }
    if (u.db) {
        snprintf(dbs, sizeof dbs, "%d", u.db);
        const char *a[2] = {"SELECT", dbs};
        r = ltr_cmd(c, 2, a, NULL, e, sizeof e);
        if (!r) goto fail;
        freeReplyObject(r);
    }
    const char *ping[1] = {"PING"};
    r = ltr_cmd(c, 1, ping, NULL, e, sizeof e);
    if (!r) goto fail;
    freeReplyObject(r);
    return c;
fail:
    eq_err(err, errlen, "Redis at %s:%d: %s", u.host, u.port, e);
    redisFree(c);
    return NULL;
}

static const redisReply *map_field(const redisReply *a, const char *name)
{
    if (!a || a->type != REDIS_REPLY_ARRAY) return NULL;
    size_t n = strlen(name);
    for (size_t i = 0; i + 1 < a->elements; i += 2) {
        const redisReply *k = a->element[i];
        if ((k->type == REDIS_REPLY_STRING || k->type == REDIS_REPLY_STATUS) && k->len == n &&
            !memcmp(k->str, name, n))
            return a->element[i + 1];
    }
    return NULL;
}

const redisReply *ltr_field(const redisReply *fields, const char *name)
{
    return map_field(fields, name);
}

int ltr_group_lag(redisContext *c, const char *stream, const char *group, int64_t *lag,
                  int64_t *pending, char *err, size_t errlen)
{
    const char *a[3] = {"XINFO", "GROUPS", stream};
    char e[LT_ERRLEN];
    redisReply *r = ltr_cmd(c, 3, a, NULL, e, sizeof e);
    if (!r) {
        if (strstr(e, "no such key")) return 1; /* the stream does not exist yet */
        return eq_err(err, errlen, "%s", e);
    }
    int rc = 1;
    size_t gl = strlen(group);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *name = map_field(r->element[i], "name");
        if (!name || name->type != REDIS_REPLY_STRING || name->len != gl ||
            memcmp(name->str, group, gl))
            continue;
        const redisReply *l = map_field(r->element[i], "lag");
        const redisReply *p = map_field(r->element[i], "pending");
        *lag = l && l->type == REDIS_REPLY_INTEGER ? l->integer : -1;
        *pending = p && p->type == REDIS_REPLY_INTEGER ? p->integer : 0;
        rc = 0;
        break;
    }
    freeReplyObject(r);
    return rc;
}

int64_t ltr_id_ms(const char *id, size_t len)
{
    const char *dash = memchr(id, '-', len);
    int64_t ms;
    if (!dash || lt_parse_i64(id, (size_t)(dash - id), &ms)) return -1;
    return ms;
}
