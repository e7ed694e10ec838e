/* api.c - POST /v1/embeddings and GET /v1/models (api.h, docs/api.md).
 *
 * Requests are parsed with cJSON (Debian libcjson) for their shape and
 * types. The strings whose every byte matters (the model name, `input`,
 * `instruction`) are then read with the queue's own JSON decoder
 * (msg_json_string_list/msg_json_string_field in msg.c): cJSON turns the
 * escape \u0000 into the end of the string and does not check UTF-8, and an
 * input must be the same bytes whether it came over HTTP or through the
 * queue (U+0000 kept; invalid UTF-8 a 400 naming the input).
 * The base64 writer is ten lines, written here rather than linking a
 * library for it; replies are written by hand (not cJSON) because a reply
 * of 2,048 x 1,024 floats built as cJSON nodes costs far more memory and
 * time than printing them straight into one buffer.
 */
#include "api.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "msg.h"

#define API_DEFAULT_MAX_INPUTS 2048

struct api {
    api_options o;
    char *model_json; /* the served name as a JSON string literal */
    pipeline *pipe;   /* NULL while loading */
    bool draining;
    unsigned in_flight;
    long long created; /* start time, for /v1/models */
    metrics_family *requests;
    metrics_histogram *seconds;
};

/* One request, from the handler to its answer. */
typedef struct {
    api *a;
    http_exchange *ex;
    uint64_t t0_ns;
    bool b64;
    int hidden; /* the model's: read here, not from a->pipe, on the pool thread */
    /* set by the encoder (pool thread) */
    int status;
    char *body;
    size_t body_len;
} api_call;

/* ---- a growable string (pool thread or loop thread) ---- */

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_need(sbuf *b, size_t n)
{
    if (b->oom || b->n + n + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n + 1)
        cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) {
        b->oom = true;
        return;
    }
    b->p = q;
    b->cap = cap;
}

static void sb_put(sbuf *b, const char *s, size_t n)
{
    sb_need(b, n);
    if (b->oom) return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void sb_base64(sbuf *b, const uint8_t *s, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    sb_need(b, (n + 2) / 3 * 4);
    if (b->oom) return;
    char *o = b->p + b->n;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = t[v >> 18];
        *o++ = t[(v >> 12) & 63];
        *o++ = t[(v >> 6) & 63];
        *o++ = t[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        *o++ = t[v >> 18];
        *o++ = t[(v >> 12) & 63];
        *o++ = i + 1 < n ? t[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->n = (size_t)(o - b->p);
    b->p[b->n] = 0;
}

/* ---- errors ---- */

/* {"error":{...}} as a malloc'd string (NULL when out of memory). */
static char *error_json(const char *message, const char *type, const char *param, const char *code)
{
    cJSON *root = cJSON_CreateObject(), *e = cJSON_CreateObject();
    if (!root || !e) {
        cJSON_Delete(root);
        cJSON_Delete(e);
        return NULL;
    }
    cJSON_AddItemToObject(root, "error", e);
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", type);
    if (param)
        cJSON_AddStringToObject(e, "param", param);
    else
        cJSON_AddNullToObject(e, "param");
    if (code)
        cJSON_AddStringToObject(e, "code", code);
    else
        cJSON_AddNullToObject(e, "code");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

/* Sends the answer (loop thread) and frees the call. body: malloc'd or NULL
 * (then a bare 500). */
static void finish(api_call *c, int status, char *body, const char *retry_after)
{
    api *a = c->a;
    http_response *r = http_exchange_response(c->ex);
    if (!body) status = 500;
    http_response_status(r, status);
    http_response_content_type(r, "application/json");
    if (retry_after) http_response_header(r, "Retry-After", retry_after);
    if (body) {
        size_t n = strlen(body);
        http_response_adopt(r, body, n);
    }
    http_exchange_finish(c->ex);
    char st[16];
    snprintf(st, sizeof st, "%d", status);
    metrics_counter_inc(metrics_family_counter(a->requests, st, NULL));
    metrics_histogram_observe(a->seconds, (double)(now_ns() - c->t0_ns) * 1e-9);
    a->in_flight--;
    free(c);
}

static void fail(api_call *c, int status, const char *param, const char *code,
                 const char *retry_after, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void fail(api_call *c, int status, const char *param, const char *code,
                 const char *retry_after, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *type = status == 429   ? "rate_limit_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    finish(c, status, error_json(msg, type, param, code), retry_after);
}

/* ---- request checks ---- */

/* The nesting the queue's JSON decoder accepts in a request body (cJSON's
 * own limit is 1,000). */
#define API_MAX_DEPTH 128

/* A 400 (500 when out of memory) from the queue decoder's error on `param`. */
static void fail_msg(api_call *c, const char *param, const msg_error *me)
{
    switch (me->code) {
    case MSG_E_INVALID_UTF8:
        fail(c, 400, param, "invalid_utf8", NULL, "%s", me->detail);
        break;
    case MSG_E_DUPLICATE_KEY:
        fail(c, 400, param, "duplicate_key", NULL, "%s", me->detail);
        break;
    case MSG_E_INTERNAL:
        fail(c, 500, NULL, "internal", NULL, "%s", me->detail);
        break;
    default:
        fail(c, 400, NULL, "invalid_json", NULL, "%s",
             me->detail[0] ? me->detail : "the body could not be read");
    }
}

/* A JSON number that is an integer in [lo, hi]. */
static bool int_in(const cJSON *v, double lo, double hi, long *out)
{
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= lo && d <= hi) || d != floor(d)) return false;
    *out = (long)d;
    return true;
}

/* ---- the reply (pool thread) ---- */

static void api_encode(pipe_query *q)
{
    api_call *c = q->arg;
    api *a = c->a;
    for (int i = 0; i < q->n; i++) {
        const pipe_msg *m = &q->items[i];
        if (!m->dead) continue;
        const char *code = m->reason_code ? m->reason_code : "internal";
        const bool server = !strcmp(code, "embedding_failed") || !strcmp(code, "internal");
        char param[32];
        if (!strcmp(code, "instruction_too_long"))
            snprintf(param, sizeof param, "instruction");
        else
            snprintf(param, sizeof param, "input[%d]", i);
        char msg[400];
        snprintf(msg, sizeof msg, "%s: %s", param, m->reason);
        c->status = server ? 500 : 400;
        c->body = error_json(msg, server ? "server_error" : "invalid_request_error", param, code);
        return;
    }
    const int hidden = c->hidden;
    sbuf b = {0};
    sb_str(&b, "{\"object\":\"list\",\"data\":[");
    for (int i = 0; i < q->n; i++) {
        const pipe_msg *m = &q->items[i];
        const int d = m->in.dimensions ? m->in.dimensions : hidden;
        sb_printf(&b, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":", i ? "," : "", i);
        if (c->b64) {
            /* little-endian float32, whatever the host's order */
            uint8_t *raw = malloc((size_t)d * 4);
            if (!raw) {
                b.oom = true;
                break;
            }
            for (int k = 0; k < d; k++) {
                uint32_t u;
                memcpy(&u, &m->vec[k], 4);
                raw[4 * k] = (uint8_t)u;
                raw[4 * k + 1] = (uint8_t)(u >> 8);
                raw[4 * k + 2] = (uint8_t)(u >> 16);
                raw[4 * k + 3] = (uint8_t)(u >> 24);
            }
            sb_str(&b, "\"");
            sb_base64(&b, raw, (size_t)d * 4);
            sb_str(&b, "\"");
            free(raw);
        } else {
            sb_str(&b, "[");
            for (int k = 0; k < d; k++) {
                if (!isfinite(m->vec[k])) { /* the engine never gives these */
                    free(b.p);
                    c->status = 500;
                    c->body = error_json("non-finite embedding", "server_error", NULL, "internal");
                    return;
                }
                sb_printf(&b, "%s%.9g", k ? "," : "", (double)m->vec[k]);
            }
            sb_str(&b, "]");
        }
        sb_printf(&b, ",\"truncated\":%s}", m->truncated ? "true" : "false");
    }
    sb_str(&b, "],\"model\":");
    sb_str(&b, a->model_json);
    sb_printf(&b, ",\"usage\":{\"prompt_tokens\":%d,\"total_tokens\":%d}}", q->tokens, q->tokens);
    if (b.oom) {
        free(b.p);
        c->status = 500;
        c->body = error_json("out of memory", "server_error", NULL, "internal");
        return;
    }
    c->status = 200;
    c->body = b.p;
    c->body_len = b.n;
}

/* loop thread */
static void api_done(pipe_query *q)
{
    api_call *c = q->arg;
    const bool aborted = q->aborted;
    pipe_query_free(q);
    if (aborted) {
        free(c->body);
        fail(c, 503, NULL, "engine_stopped", NULL,
             "the server stopped before this request was embedded");
        return;
    }
    finish(c, c->status, c->body, NULL);
}

/* ---- the handlers (loop thread) ---- */

static void h_embeddings(http_exchange *ex, const http_request *req, http_response *resp, void *arg)
{
    api *a = arg;
    (void)resp;
    api_call *c = calloc(1, sizeof *c);
    if (!c) {
        http_response_status(http_exchange_response(ex), 500);
        http_exchange_finish(ex);
        return;
    }
    c->a = a;
    c->ex = ex;
    c->t0_ns = now_ns();
    a->in_flight++;
    if (a->draining) {
        fail(c, 503, NULL, "draining", NULL, "the server is shutting down");
        return;
    }
    if (!a->pipe) {
        fail(c, 503, NULL, "model_loading", "5", "the model is still loading; retry later");
        return;
    }
    const char *end = NULL;
    /* body_len + 1: the body is NUL-terminated, and cJSON then refuses
     * anything after the value but whitespace */
    cJSON *j = cJSON_ParseWithLengthOpts(req->body, req->body_len + 1, &end, true);
    if (!j) {
        size_t at = end && end >= req->body ? (size_t)(end - req->body) : 0;
        fail(c, 400, NULL, "invalid_json", NULL,
             "the body is not valid JSON (near byte %zu of %zu)", at, req->body_len);
        return;
    }
    pipe_query *q = NULL;
    msg_json_str *texts = NULL;
    char *instruction = NULL;
    size_t instruction_len = 0;
    msg_error me = {0};
    if (!cJSON_IsObject(j)) {
        fail(c, 400, NULL, "invalid_json", NULL, "the body must be a JSON object");
        goto out;
    }
    const int hidden = c->hidden = pipe_hidden(a->pipe);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (!cJSON_IsString(model)) {
        fail(c, 400, "model", model ? "invalid_type" : "missing_required_parameter", NULL,
             "'model' %s", model ? "must be a string" : "is required");
        goto out;
    }
    if (msg_json_string_list(req->body, req->body_len, "model", API_MAX_DEPTH, &texts, &me) !=
        1) {
        fail_msg(c, "model", &me);
        goto out;
    }
    const bool model_ok = texts[0].len == strlen(a->o.served_model_name) &&
                          !memcmp(texts[0].s, a->o.served_model_name, texts[0].len);
    free(texts);
    texts = NULL;
    if (!model_ok) {
        char *lit = cJSON_PrintUnformatted(model);
        fail(c, 404, "model", "model_not_found", NULL,
             "The model %.200s does not exist: this server serves %.200s", lit ? lit : "?",
             a->model_json);
        free(lit);
        goto out;
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "encoding_format");
    if (fmt && !cJSON_IsNull(fmt)) {
        if (cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "base64"))
            c->b64 = true;
        else if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "float") != 0) {
            fail(c, 400, "encoding_format", "invalid_value", NULL,
                 "'encoding_format' must be \"float\" or \"base64\"");
            goto out;
        }
    }
    long dims = 0;
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(j, "dimensions");
    if (dv && !cJSON_IsNull(dv) && !int_in(dv, MSG_MIN_DIMENSIONS, hidden, &dims)) {
        fail(c, 400, "dimensions", "invalid_value", NULL,
             "'dimensions' must be an integer from %d to %d", MSG_MIN_DIMENSIONS, hidden);
        goto out;
    }
    if (dims == hidden) dims = 0;
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(j, "user");
    if (user && !cJSON_IsNull(user) && !cJSON_IsString(user)) {
        fail(c, 400, "user", "invalid_type", NULL, "'user' must be a string");
        goto out;
    }
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(j, "instruction");
    if (ins && !cJSON_IsNull(ins)) {
        if (!cJSON_IsString(ins)) {
            fail(c, 400, "instruction", "invalid_type", NULL, "'instruction' must be a string");
            goto out;
        }
        if (msg_json_string_list(req->body, req->body_len, "instruction", API_MAX_DEPTH, &texts,
                                 &me) != 1) {
            fail_msg(c, "instruction", &me);
            goto out;
        }
        if (texts[0].bad != SIZE_MAX) {
            fail(c, 400, "instruction", "invalid_utf8", NULL,
                 "'instruction' is not valid UTF-8 (byte %zu)", texts[0].bad);
            goto out;
        }
        if (texts[0].len > 0) { /* "" = no instruction */
            instruction_len = texts[0].len;
            instruction = malloc(instruction_len + 1);
            if (!instruction) {
                fail(c, 500, NULL, "internal", NULL, "out of memory");
                goto out;
            }
            memcpy(instruction, texts[0].s, instruction_len + 1);
        }
        free(texts);
        texts = NULL;
    }
    bool truncate = true;
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(j, "truncate");
    if (tr && !cJSON_IsNull(tr)) {
        if (!cJSON_IsBool(tr)) {
            fail(c, 400, "truncate", "invalid_type", NULL, "'truncate' must be true or false");
            goto out;
        }
        truncate = cJSON_IsTrue(tr);
    }

    /* input: a string, strings, token ids, or arrays of token ids */
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(j, "input");
    const int max_inputs = a->o.max_inputs ? a->o.max_inputs : API_DEFAULT_MAX_INPUTS;
    enum { K_TEXT, K_TOKENS, K_TOKEN_LISTS } kind;
    int n;
    if (!in || cJSON_IsNull(in)) {
        fail(c, 400, "input", "missing_required_parameter", NULL, "'input' is required");
        goto out;
    }
    if (cJSON_IsString(in)) {
        kind = K_TEXT;
        n = 1;
    } else if (cJSON_IsArray(in)) {
        const int len = cJSON_GetArraySize(in);
        if (len == 0) {
            fail(c, 400, "input", "invalid_value", NULL, "'input' must not be an empty array");
            goto out;
        }
        const cJSON *first = in->child;
        if (cJSON_IsNumber(first)) {
            kind = K_TOKENS;
            n = 1;
        } else if (cJSON_IsArray(first)) {
            kind = K_TOKEN_LISTS;
            n = len;
        } else if (cJSON_IsString(first)) {
            kind = K_TEXT;
            n = len;
        } else {
            fail(c, 400, "input[0]", "invalid_type", NULL,
                 "'input' must be a string, an array of strings, an array of token ids or an "
                 "array of arrays of token ids");
            goto out;
        }
        if (n > max_inputs) {
            fail(c, 400, "input", "too_many_inputs", NULL,
                 "'input' has %d inputs; at most %d are accepted per request", n, max_inputs);
            goto out;
        }
    } else {
        fail(c, 400, "input", "invalid_type", NULL,
             "'input' must be a string, an array of strings, an array of token ids or an array "
             "of arrays of token ids");
        goto out;
    }
    if (kind != K_TEXT && instruction) {
        fail(c, 400, "instruction", "invalid_value", NULL,
             "'instruction' applies to text inputs, not to token ids");
        goto out;
    }
    if (kind == K_TEXT) {
        /* types first (cJSON), so that the error names the element */
        const cJSON *e = cJSON_IsArray(in) ? in->child : in;
        for (int i = 0; i < n; i++, e = e->next) {
            if (!cJSON_IsString(e)) {
                char pin[32];
                snprintf(pin, sizeof pin, "input[%d]", i);
                fail(c, 400, pin, "invalid_type", NULL,
                     "input[%d]: every input must be a string when the first one is", i);
                goto out;
            }
        }
        const int got = msg_json_string_list(req->body, req->body_len, "input", API_MAX_DEPTH,
                                             &texts, &me);
        if (got < 0) {
            fail_msg(c, "input", &me);
            goto out;
        }
        if (got != n) { /* cannot happen: both parsers read the same strings */
            fail(c, 500, NULL, "internal", NULL, "'input' read as %d strings, not %d", got, n);
            goto out;
        }
    }
    q = pipe_query_new(n);
    if (!q) {
        fail(c, 500, NULL, "internal", NULL, "out of memory");
        goto out;
    }
    const cJSON *el = cJSON_IsArray(in) && kind != K_TOKENS ? in->child : in;
    for (int i = 0; i < n; i++, el = el->next) {
        pipe_msg *m = &q->items[i];
        m->in.dimensions = (int)dims;
        char pin[32];
        snprintf(pin, sizeof pin, "input[%d]", i);
        if (kind == K_TEXT) {
            const size_t len = texts[i].len;
            if (len == 0) {
                fail(c, 400, pin, "empty_text", NULL, "input[%d]: empty string", i);
                goto out;
            }
            if (texts[i].bad != SIZE_MAX) {
                fail(c, 400, pin, "invalid_utf8", NULL, "input[%d]: not valid UTF-8 (byte %zu)", i,
                     texts[i].bad);
                goto out;
            }
            m->data = malloc(len + 1);
            if (!m->data) {
                fail(c, 500, NULL, "internal", NULL, "out of memory");
                goto out;
            }
            memcpy(m->data, texts[i].s, len + 1);
            m->len = len;
        } else {
            if (kind == K_TOKEN_LISTS && !cJSON_IsArray(el)) {
                fail(c, 400, pin, "invalid_type", NULL,
                     "input[%d]: every input must be an array of token ids when the first one is",
                     i);
                goto out;
            }
            const cJSON *list = kind == K_TOKENS ? in : el;
            const int k = cJSON_GetArraySize(list);
            if (k == 0) {
                fail(c, 400, pin, "empty_text", NULL, "input[%d]: empty array of token ids", i);
                goto out;
            }
            m->ids = malloc(sizeof(int32_t) * ((size_t)k + 1)); /* +1: the final <|endoftext|> */
            if (!m->ids) {
                fail(c, 500, NULL, "internal", NULL, "out of memory");
                goto out;
            }
            int t = 0;
            for (const cJSON *v = list->child; v; v = v->next, t++) {
                long id;
                if (!int_in(v, 0, INT32_MAX, &id)) {
                    fail(c, 400, pin, "invalid_token_id", NULL,
                         "input[%d]: element %d is not a token id (an integer >= 0)", i, t);
                    goto out;
                }
                m->ids[t] = (int32_t)id;
            }
            m->n_ids = k;
        }
    }
    if (instruction) {
        q->instruction = instruction; /* the query's now */
        q->instruction_len = instruction_len;
        instruction = NULL;
    }
    q->reject_long = !truncate;
    q->encode = api_encode;
    q->done = api_done;
    q->arg = c;
    const int rc = pipe_query_submit(a->pipe, q);
    if (rc == PIPE_BUSY) {
        fail(c, 429, NULL, "rate_limit_exceeded", "1",
             "too many inputs are waiting for the engine (%d); retry later",
             pipe_query_inputs(a->pipe));
        goto out;
    }
    if (rc != 0) {
        fail(c, 503, NULL, "draining", NULL, "the server is shutting down");
        goto out;
    }
    q = NULL; /* the pipeline's until api_done */
out:
    pipe_query_free(q);
    free(texts);
    free(instruction);
    cJSON_Delete(j);
}

static void h_models(const http_request *req, http_response *r, void *arg)
{
    api *a = arg;
    (void)req;
    http_response_content_type(r, "application/json");
    http_response_printf(r,
                         "{\"object\":\"list\",\"data\":[{\"id\":%s,\"object\":\"model\","
                         "\"created\":%lld,\"owned_by\":\"embedq\"}]}",
                         a->model_json, a->created);
    metrics_counter_inc(metrics_family_counter(a->requests, "200", NULL));
}

void api_count_own_answer(int status, void *arg)
{
    api *a = arg;
    char st[16];
    snprintf(st, sizeof st, "%d", status);
    metrics_counter_inc(metrics_family_counter(a->requests, st, NULL));
}

static int collect(metrics_buf *out, void *arg)
{
    api *a = arg;
    metrics_write_family(out, "embedq_api_requests_in_flight",
                         "API requests received and not yet answered", METRICS_GAUGE);
    metrics_write_sample(out, "embedq_api_requests_in_flight", NULL, 0, (double)a->in_flight);
    metrics_write_family(out, "embedq_api_queue_inputs",
                         "inputs of API requests waiting for (or in) the engine", METRICS_GAUGE);
    metrics_write_sample(out, "embedq_api_queue_inputs", NULL, 0,
                         a->pipe ? (double)pipe_query_inputs(a->pipe) : 0.0);
    return 0;
}

/* ---- life cycle ---- */

api *api_new(const api_options *o, char *err, size_t errlen)
{
    api *a = calloc(1, sizeof *a);
    if (!a) {
        eq_err(err, errlen, "out of memory");
        return NULL;
    }
    a->o = *o;
    cJSON *s = cJSON_CreateString(o->served_model_name);
    a->model_json = s ? cJSON_PrintUnformatted(s) : NULL;
    cJSON_Delete(s);
    a->created = (long long)time(NULL);
    static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                     0.25,  0.5,    1,     2.5,  5,     10,   30};
    a->requests =
        metrics_counter_family_new(o->reg, "embedq_api_requests_total",
                                   "API requests answered, by HTTP status", "status", NULL, 32);
    a->seconds = metrics_histogram_new(o->reg, "embedq_api_request_seconds",
                                       "API request time, from its parsed body to its answer",
                                       buckets, sizeof buckets / sizeof *buckets);
    if (!a->model_json || !a->requests || !a->seconds ||
        metrics_registry_add_collector(o->reg, collect, a) != 0) {
        eq_err(err, errlen, "api: %s",
               metrics_registry_error(o->reg) ? metrics_registry_error(o->reg) : "out of memory");
        api_free(a);
        return NULL;
    }
    return a;
}

int api_route(api *a, http_server *s)
{
    int rc = http_route_deferred(s, "POST", "/v1/embeddings", h_embeddings, a);
    if (rc == 0) rc = http_route(s, "GET", "/v1/models", h_models, a);
    return rc;
}

void api_set_pipeline(api *a, pipeline *p)
{
    a->pipe = p;
}

void api_set_draining(api *a)
{
    a->draining = true;
}

unsigned api_in_flight(const api *a)
{
    return a->in_flight;
}

void api_free(api *a)
{
    if (!a) return;
    free(a->model_json);
    free(a);
}
