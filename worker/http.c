/* http.c - the HTTP/1.1 server (see http.h) on libuv + libhttp-parser.
 *
 * Why libhttp-parser: requests are parsed by a library, not by hand. Of the
 * three in Debian 12, libhttp-parser (2.9.4) is Node.js's parser of many
 * years: a push parser with callbacks and no allocation, that takes bytes
 * in any split and never blocks, which is exactly what a libuv read
 * callback hands us; it does chunked bodies, keep-alive rules and
 * pipelining. h2o's libuv build is a whole server with its own loop
 * integration, TLS and HTTP/2 (far more than the endpoints need), and
 * civetweb runs a thread per connection, which breaks the rule that all
 * I/O is on the loop thread. What remains here is the connection's life,
 * limits, routing and responses.
 *
 * A connection's life (one request at a time; pipelined requests wait in
 * the input buffer, unparsed, until the previous response is written):
 *
 *   accept -> IDLE --first byte--> HEAD --head--> BODY --body--> HANDLING
 *              ^                                                   |
 *              |                          (handler, maybe deferred)v
 *              +---------- keep-alive ----------------------- WRITING
 *                                                                 | close
 *   closed <-- client's EOF or timer -- LINGER <-- shutdown(SHUT_WR)
 *
 * Lingering: closing a socket that still has unread input makes the kernel
 * send RST, which can destroy a response the client has not read yet. So
 * after the last response the server half-closes, keeps reading (and
 * discarding) until the client's EOF, and only then closes; the timer
 * bounds the wait.
 *
 * Timers (one per connection): IDLE keep_alive_ms (read_timeout_ms for a
 * new connection), HEAD read_timeout_ms from the request's first byte (a
 * new connection: from accept), BODY and WRITING body_timeout_ms, HANDLING
 * none (the server's own work), LINGER 2 s.
 *
 * Memory: a connection is one allocation (its struct, an input buffer and
 * a head buffer of max_head_bytes each), plus a body and a response body
 * grown as needed; all freed after the close callbacks of its two handles
 * (tcp, timer) ran and any deferred exchange was finished. The server is
 * freed after its listener and all connections are gone.
 *
 * The listening socket is created, bound and put to listen with plain
 * socket calls, then handed to libuv (uv_tcp_open): so http_open fails
 * synchronously with nothing left to close, instead of leaving a libuv
 * handle whose close needs another loop turn.
 */
#include "http.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

#define HTTP_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define HTTP_LINGER_MS  2000u /* longest wait for the client's EOF after a response */
#define HTTP_TYPE_MAX   128
#define HTTP_EXTRA_MAX  512 /* extra response header lines */
#define HTTP_DEFAULT_CT "text/plain; charset=utf-8"

struct http_response {
    int status;
    char content_type[HTTP_TYPE_MAX];
    char extra[HTTP_EXTRA_MAX]; /* "Name: value\r\n" lines */
    size_t extra_len;
    char *body; /* malloc'd, or NULL */
    size_t len, cap;
    bool failed; /* out of memory: answer 500 */
};

typedef enum {
    CONN_IDLE,     /* no request in progress (new, or between two)   */
    CONN_HEAD,     /* receiving a request head                       */
    CONN_BODY,     /* receiving its body                             */
    CONN_HANDLING, /* the handler runs, or was deferred              */
    CONN_WRITING,  /* writing the response                           */
    CONN_LINGER,   /* last response written; waiting for the EOF     */
    CONN_CLOSING
} conn_state;

typedef struct http_route_entry http_route_entry;
typedef struct http_conn http_conn;

struct http_exchange {
    http_conn *conn;
};

struct http_conn {
    uv_tcp_t tcp;     /* tcp.data = this            */
    uv_timer_t timer; /* timer.data = this          */
    http_server *server;
    struct http_conn *prev, *next; /* server->conns, while not closing */
    conn_state state;
    int handles;       /* initialized handles whose close callback is pending */
    bool handles_gone; /* both close callbacks ran                  */
    bool refused;      /* over max_connections: closed at once, no buffers */
    bool peer_eof;     /* the client has shut down its side         */
    bool shut_done;    /* our shutdown completed                    */
    bool reading;      /* uv_read_start is in effect                */
    bool keep_alive;   /* the current request allows another after it */
    bool deferred;     /* an exchange is with a deferred handler    */
    bool in_progress;  /* counted in server->n_in_progress          */
    bool complete;     /* the parser finished a request (paused)    */
    unsigned served;   /* responses written on this connection      */
    int error_status;  /* set by a parser callback that refused the request */
    const char *error_text;
    http_parser parser;
    /* input: in[in_pos, in_len) is not parsed yet (in_cap = max_head) */
    size_t in_len, in_pos;
    /* the request head: url '\0' (name '\0' value '\0')* in head[0, head_len) */
    size_t head_len;
    size_t url_len;
    int last_cb; /* 0 url, 1 field, 2 value */
    int n_fields;
    size_t field_off[HTTP_MAX_HEADERS], value_off[HTTP_MAX_HEADERS];
    char *body; /* malloc'd, NUL-terminated */
    size_t body_len, body_cap;
    size_t body_expected; /* Content-Length (0: chunked, or no body) */
    http_request req;
    http_response resp;
    struct http_exchange ex;
    char out_head[1024 + HTTP_EXTRA_MAX];
    uv_write_t write_req, continue_req;
    uv_shutdown_t shutdown_req;
    char *head; /* = buf + max_head */
    char buf[]; /* in (max_head) then head (max_head + 1); absent when refused */
};

struct http_route_entry {
    char *method, *path;
    http_handler_cb cb;
    http_deferred_cb deferred;
    void *arg;
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener; /* listener.data = this */
    unsigned max_conns, head_ms, keep_alive_ms, body_ms;
    size_t max_head, max_body;
    size_t max_bodies, bodies; /* request bodies held, all connections (bytes) */
    bool json_errors;
    void (*on_own_answer)(int status, void *arg);
    void *own_answer_arg;
    http_route_entry *routes;
    size_t n_routes, cap_routes;
    http_conn *conns;       /* open, not closing */
    unsigned n_open;        /* connections in conns: the cap counts these */
    unsigned n_serving;     /* accepted (not refused) connections not yet freed */
    unsigned n_live;        /* all connection structs not yet freed */
    unsigned n_in_progress; /* requests dispatched, response not yet written */
    bool closing, stopping, listener_closing, listener_closed;
    http_close_cb close_cb;
    void *close_arg;
};

static http_parser_settings parser_settings; /* set once in http_open */

/* ---- small helpers ---- */

static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(const char *s, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i])) return false;
    return true;
}

static bool valid_field_value(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return false;
    }
    return true;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return status < 300   ? "OK"
               : status < 400 ? "Redirect"
               : status < 500 ? "Client Error"
                              : "Server Error";
    }
}

/* ---- responses ---- */

static void resp_reset(http_response *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
    r->status = 200;
    strcpy(r->content_type, HTTP_DEFAULT_CT);
}

void http_response_status(http_response *resp, int status)
{
    resp->status = status;
}

int http_response_content_type(http_response *resp, const char *type)
{
    size_t n = strlen(type);
    if (n == 0 || n >= HTTP_TYPE_MAX || !valid_field_value(type, n)) return UV_EINVAL;
    memcpy(resp->content_type, type, n + 1);
    return 0;
}

int http_response_header(http_response *resp, const char *name, const char *value)
{
    size_t nn = strlen(name), vn = strlen(value);
    if (!is_token(name, nn) || !valid_field_value(value, vn) ||
        resp->extra_len + nn + vn + 4 >= HTTP_EXTRA_MAX)
        return UV_EINVAL;
    int n = snprintf(resp->extra + resp->extra_len, HTTP_EXTRA_MAX - resp->extra_len, "%s: %s\r\n",
                     name, value);
    resp->extra_len += (size_t)n;
    return 0;
}

static int resp_reserve(http_response *r, size_t n)
{
    if (r->failed) return UV_ENOMEM;
    if (r->len + n + 1 <= r->cap) return 0;
    size_t cap = r->cap ? r->cap : 1024;
    while (cap < r->len + n + 1) {
        if (cap > SIZE_MAX / 2) goto oom;
        cap *= 2;
    }
    char *p = realloc(r->body, cap);
    if (!p) goto oom;
    r->body = p;
    r->cap = cap;
    return 0;
oom:
    r->failed = true;
    return UV_ENOMEM;
}

int http_response_append(http_response *resp, const void *data, size_t len)
{
    if (resp_reserve(resp, len) < 0) return UV_ENOMEM;
    if (len) memcpy(resp->body + resp->len, data, len);
    resp->len += len;
    resp->body[resp->len] = '\0';
    return 0;
}

int http_response_printf(http_response *resp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return UV_EINVAL;
    if (resp_reserve(resp, (size_t)n) < 0) return UV_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(resp->body + resp->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    resp->len += (size_t)n;
    return 0;
}

void http_response_adopt(http_response *resp, char *data, size_t len)
{
    free(resp->body);
    resp->body = data;
    resp->len = len;
    resp->cap = len; /* a later append reallocs */
    if (!data) resp->len = resp->cap = 0;
}

const char *http_request_header(const http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0) return req->headers[i].value;
    return NULL;
}

/* ---- closing ---- */

static void server_maybe_finish(http_server *s)
{
    if (!s->closing || !s->listener_closed || s->n_live > 0) return;
    http_close_cb cb = s->close_cb;
    void *arg = s->close_arg;
    for (size_t i = 0; i < s->n_routes; i++) {
        free(s->routes[i].method);
        free(s->routes[i].path);
    }
    free(s->routes);
    free(s);
    if (cb) cb(arg);
}

static void conn_free(http_conn *c)
{
    http_server *s = c->server;
    if (!c->refused) {
        s->bodies -= c->body_cap;
        free(c->body);
        free(c->resp.body);
        s->n_serving--;
    }
    s->n_live--;
    free(c);
    server_maybe_finish(s);
}

static void conn_handle_closed_cb(uv_handle_t *h)
{
    http_conn *c = h->data;
    if (--c->handles > 0) return;
    c->handles_gone = true;
    if (!c->deferred) conn_free(c); /* else http_exchange_finish frees it */
}

static void request_done(http_conn *c)
{
    if (!c->in_progress) return;
    c->in_progress = false;
    c->server->n_in_progress--;
}

/* Starts closing c (idempotent). Pending write and shutdown requests are
 * cancelled by libuv (their callbacks see UV_ECANCELED) before the close
 * callbacks run. */
static void conn_close(http_conn *c)
{
    if (c->state == CONN_CLOSING) return;
    c->state = CONN_CLOSING;
    http_server *s = c->server;
    if (!c->refused) {
        if (c->prev)
            c->prev->next = c->next;
        else
            s->conns = c->next;
        if (c->next) c->next->prev = c->prev;
        c->prev = c->next = NULL;
        s->n_open--;
        if (!c->deferred) request_done(c); /* a deferred one counts until finished */
        uv_close((uv_handle_t *)&c->timer, conn_handle_closed_cb);
    }
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed_cb);
}

static void conn_send_error(http_conn *c, int status, const char *body, const char *allow,
                            bool keep);

/* A missed deadline: a body that stopped arriving gets 408; anything else
 * (no complete head, idle, a response the client does not read, the
 * linger) is closed without an answer. */
static void conn_timeout_cb(uv_timer_t *t)
{
    http_conn *c = t->data;
    if (c->state == CONN_BODY) {
        c->keep_alive = false;
        conn_send_error(c, 408, "request body timeout\n", NULL, false);
        return;
    }
    conn_close(c);
}

static void conn_timer(http_conn *c, unsigned ms)
{
    uv_timer_start(&c->timer, conn_timeout_cb, ms, 0);
}

/* ---- reading control ---- */

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void conn_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void conn_read(http_conn *c, bool on)
{
    if (c->state == CONN_CLOSING || on == c->reading) return;
    if (on && c->peer_eof) return;
    if (on) {
        if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb) < 0) {
            conn_close(c);
            return;
        }
    } else {
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    c->reading = on;
}

/* ---- writing the response ---- */

static void conn_process(http_conn *c);

static void conn_shutdown_cb(uv_shutdown_t *req, int status)
{
    http_conn *c = req->data;
    if (c->state == CONN_CLOSING) return;
    c->shut_done = true;
    if (status < 0 || c->peer_eof) conn_close(c);
    /* else: LINGER until the client's EOF or the timer. */
}

static void conn_linger(http_conn *c)
{
    c->state = CONN_LINGER;
    http_server *s = c->server;
    conn_timer(c, s->head_ms < HTTP_LINGER_MS ? s->head_ms : HTTP_LINGER_MS);
    c->in_len = c->in_pos = 0; /* what follows is discarded */
    conn_read(c, true);
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, conn_shutdown_cb) < 0) conn_close(c);
}

/* Clears the request just answered, for the next one on this connection. */
static void conn_next_request(http_conn *c)
{
    c->server->bodies -= c->body_cap;
    free(c->body);
    c->body = NULL;
    c->body_len = c->body_cap = c->body_expected = 0;
    resp_reset(&c->resp);
    memset(&c->req, 0, sizeof c->req);
    c->head_len = c->url_len = 0;
    c->n_fields = 0;
    c->last_cb = 0;
    c->error_status = 0;
    c->error_text = NULL;
    c->complete = false;
}

static void conn_write_cb(uv_write_t *req, int status)
{
    http_conn *c = req->data;
    if (c->state == CONN_CLOSING) return;
    request_done(c);
    if (status < 0) {
        conn_close(c);
        return;
    }
    c->served++;
    if (!c->keep_alive || c->server->stopping) {
        conn_linger(c);
        return;
    }
    conn_next_request(c);
    c->state = CONN_IDLE;
    conn_timer(c, c->server->keep_alive_ms);
    if (c->in_pos < c->in_len) {
        conn_process(c); /* a pipelined request is waiting */
    } else if (c->peer_eof) {
        conn_close(c); /* the client has nothing more to send */
        return;
    }
    if (c->state <= CONN_BODY) conn_read(c, true);
}

/* Sends c->resp (headers only for HEAD) and enters WRITING. allow: the
 * Allow header's value for 405, else NULL. */
static void conn_send(http_conn *c, bool head_only, const char *allow)
{
    http_response *r = &c->resp;
    if (r->failed || r->status < 100 || r->status > 599) {
        resp_reset(r);
        r->status = 500;
        http_response_append(r, "internal error\n", 15);
    }
    if (c->server->stopping) c->keep_alive = false;
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    int n = snprintf(c->out_head, sizeof c->out_head,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Date: %s\r\n"
                     "%s%s%s"
                     "%.*s"
                     "Connection: %s\r\n"
                     "\r\n",
                     r->status, reason_phrase(r->status), r->content_type, r->len, date,
                     allow ? "Allow: " : "", allow ? allow : "", allow ? "\r\n" : "",
                     (int)r->extra_len, r->extra, c->keep_alive ? "keep-alive" : "close");
    HTTP_ASSERT(n > 0 && (size_t)n < sizeof c->out_head);

    uv_buf_t bufs[2] = {uv_buf_init(c->out_head, (unsigned)n),
                        uv_buf_init(r->body, (unsigned)r->len)};
    unsigned nbufs = (head_only || r->len == 0) ? 1 : 2;
    c->state = CONN_WRITING;
    conn_timer(c, c->server->body_ms);
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, nbufs, conn_write_cb) < 0)
        conn_close(c);
}

/* A response the server makes up itself. keep: the connection may serve
 * another request after it (the input is still in sync). */
static void conn_send_error(http_conn *c, int status, const char *body, const char *allow,
                            bool keep)
{
    resp_reset(&c->resp);
    c->resp.status = status;
    if (c->server->on_own_answer) c->server->on_own_answer(status, c->server->own_answer_arg);
    if (status == 503) http_response_header(&c->resp, "Retry-After", "1");
    if (c->server->json_errors) {
        /* The message is ours or the parser's: printable ASCII; escaped
         * anyway, the final newline dropped. */
        char m[512];
        size_t k = 0, n = strlen(body);
        while (n > 0 && body[n - 1] == '\n')
            n--;
        for (size_t i = 0; i < n && k + 7 < sizeof m; i++) {
            unsigned char ch = (unsigned char)body[i];
            if (ch == '"' || ch == '\\') {
                m[k++] = '\\';
                m[k++] = (char)ch;
            } else if (ch < 0x20 || ch >= 0x7f) {
                k += (size_t)snprintf(m + k, sizeof m - k, "\\u%04x", ch);
            } else {
                m[k++] = (char)ch;
            }
        }
        m[k] = 0;
        strcpy(c->resp.content_type, "application/json");
        http_response_printf(&c->resp,
                             "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,"
                             "\"code\":null}}\n",
                             m, status >= 500 ? "server_error" : "invalid_request_error");
    } else {
        http_response_append(&c->resp, body, strlen(body));
    }
    c->keep_alive = c->keep_alive && keep;
    if (!c->in_progress) {
        c->in_progress = true;
        c->server->n_in_progress++;
    }
    if (c->reading && !keep) conn_read(c, false);
    conn_send(c, false, allow);
}

/* ---- parsing (libhttp-parser callbacks; parser.data = the connection) ---- */

/* Appends to the head buffer; -1 (and 431) when it would not fit (the
 * parser's own limit, the same size on the raw head, fires first). */
static int head_put(http_conn *c, const char *at, size_t n)
{
    if (c->head_len + n + 1 > c->server->max_head) {
        c->error_status = 431;
        c->error_text = "request head too large\n";
        return -1;
    }
    memcpy(c->head + c->head_len, at, n);
    c->head_len += n;
    return 0;
}

static int on_message_begin(http_parser *p)
{
    http_conn *c = p->data;
    if (c->state == CONN_IDLE && c->served > 0) conn_timer(c, c->server->head_ms);
    c->state = CONN_HEAD;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    http_conn *c = p->data;
    if (head_put(c, at, n) < 0) return -1;
    c->url_len += n;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    http_conn *c = p->data;
    if (c->last_cb != 1) { /* a new field: end the url or the last value */
        if (c->n_fields == HTTP_MAX_HEADERS) {
            c->error_status = 431;
            c->error_text = "too many header fields\n";
            return -1;
        }
        if (head_put(c, "", 1) < 0) return -1;
        c->value_off[c->n_fields] = 0;
        c->field_off[c->n_fields++] = c->head_len;
        c->last_cb = 1;
    }
    return head_put(c, at, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    http_conn *c = p->data;
    if (c->last_cb != 2) {
        if (head_put(c, "", 1) < 0) return -1;
        c->value_off[c->n_fields - 1] = c->head_len;
        c->last_cb = 2;
    }
    return head_put(c, at, n);
}

/* Splits the target into path and query (in place). Returns false when it
 * is not origin-form, absolute-form or "*". */
static bool split_target(char *target, http_request *req)
{
    char *path = target;
    if (strncasecmp(target, "http://", 7) == 0 || strncasecmp(target, "https://", 8) == 0) {
        char *auth = strstr(target, "//") + 2;
        path = strchr(auth, '/');
        if (!path) { /* no path: route as "/"; a query is dropped */
            req->path = "/";
            req->query = "";
            return true;
        }
    } else if (*target != '/' && strcmp(target, "*") != 0) {
        return false;
    }
    char *q = strchr(path, '?');
    if (q) *q = '\0';
    req->path = path;
    req->query = q ? q + 1 : "";
    return true;
}

static void continue_write_cb(uv_write_t *req, int status)
{
    (void)req;
    (void)status;
}

static int on_headers_complete(http_parser *p)
{
    http_conn *c = p->data;
    http_server *s = c->server;
    http_request *req = &c->req;
    if (head_put(c, "", 1) < 0) return -1;
    memset(req, 0, sizeof *req);
    req->method = http_method_str((enum http_method)p->method);
    req->version_minor = p->http_minor;
    req->body = "";
    if (p->http_major != 1) {
        c->error_status = 505;
        c->error_text = "HTTP version not supported\n";
        return -1;
    }
    int n_host = 0;
    for (int i = 0; i < c->n_fields; i++) {
        char *name = c->head + c->field_off[i];
        char *v = c->head + c->value_off[i];
        if (c->value_off[i] == 0) v = c->head + c->head_len - 1; /* a field without value */
        /* trim the value (the parser leaves trailing whitespace) */
        size_t vn = strlen(v);
        while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
            v[--vn] = '\0';
        while (*v == ' ' || *v == '\t')
            v++;
        /* The parser is lenient where RFC 9112 says a server must refuse:
         * whitespace in or after a field name (5.1), and obsolete line
         * folding or bare CR in a value (5.2, 5.5). */
        if (!is_token(name, strlen(name)) || !valid_field_value(v, strlen(v))) {
            c->error_status = 400;
            c->error_text = "bad header field\n";
            return -1;
        }
        req->headers[req->n_headers++] = (http_header){name, v};
        if (strcasecmp(name, "Host") == 0) n_host++;
    }
    if (n_host > 1 || (p->http_minor >= 1 && n_host == 0)) {
        c->error_status = 400;
        c->error_text = n_host ? "repeated Host header\n" : "missing Host header\n";
        return -1;
    }
    if (!split_target(c->head, req)) {
        c->error_status = 400;
        c->error_text = "bad request target\n";
        return -1;
    }
    c->keep_alive = http_should_keep_alive(p) != 0;
    bool chunked = (p->flags & F_CHUNKED) != 0;
    bool has_len = p->content_length > 0 && p->content_length != ULLONG_MAX;
    if (chunked || has_len) {
        if (s->max_body == 0 || (has_len && p->content_length > s->max_body)) {
            c->error_status = 413;
            c->error_text =
                s->max_body ? "request body too large\n" : "request bodies are not accepted\n";
            return -1;
        }
        c->body_expected = has_len ? (size_t)p->content_length : 0;
        if (has_len && s->max_bodies && p->content_length + 1 > s->max_bodies - s->bodies) {
            c->error_status = 503;
            c->error_text = "the server holds too many request bodies; retry later\n";
            return -1;
        }
        c->state = CONN_BODY;
        conn_timer(c, s->body_ms);
        const char *expect = http_request_header(req, "Expect");
        if (expect && strcasecmp(expect, "100-continue") == 0 && p->http_minor >= 1) {
            static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            uv_buf_t b = uv_buf_init(cont, sizeof cont - 1);
            if (uv_write(&c->continue_req, (uv_stream_t *)&c->tcp, &b, 1, continue_write_cb) < 0)
                return -1;
        }
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    http_conn *c = p->data;
    size_t max = c->server->max_body;
    if (c->body_len + n > max) {
        c->error_status = 413;
        c->error_text = "request body too large\n";
        return -1;
    }
    if (c->body_len + n + 1 > c->body_cap) {
        /* the declared length at once, else from 4 KiB doubling */
        size_t cap = c->body_cap         ? c->body_cap
                     : c->body_expected ? c->body_expected + 1
                                        : 4096;
        while (cap < c->body_len + n + 1)
            cap *= 2;
        if (cap > max + 1) cap = max + 1;
        http_server *s = c->server;
        if (s->max_bodies && cap - c->body_cap > s->max_bodies - s->bodies) {
            c->error_status = 503;
            c->error_text = "the server holds too many request bodies; retry later\n";
            return -1;
        }
        char *b = realloc(c->body, cap);
        if (!b) {
            c->error_status = 500;
            c->error_text = "out of memory for the request body\n";
            return -1;
        }
        c->body = b;
        s->bodies += cap - c->body_cap;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, at, n);
    c->body_len += n;
    c->body[c->body_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_conn *c = p->data;
    c->complete = true;
    http_parser_pause(p, 1); /* one request at a time: the rest waits */
    return 0;
}

/* Routes and answers the complete request in c->req. */
static void conn_dispatch(http_conn *c)
{
    http_server *s = c->server;
    http_request *req = &c->req;
    if (c->body) {
        req->body = c->body;
        req->body_len = c->body_len;
    }
    c->state = CONN_HANDLING;
    uv_timer_stop(&c->timer);
    c->in_progress = true;
    s->n_in_progress++;
    if (s->stopping) {
        c->keep_alive = false;
        conn_send_error(c, 503, "shutting down\n", NULL, false);
        return;
    }
    /* Route: exact path; GET routes answer HEAD too. */
    bool head = strcmp(req->method, "HEAD") == 0;
    http_route_entry *match = NULL;
    char allow[256] = "";
    bool known = false;
    for (size_t i = 0; i < s->n_routes; i++) {
        http_route_entry *r = &s->routes[i];
        if (strcmp(r->path, req->path) != 0) continue;
        known = true;
        bool get = strcmp(r->method, "GET") == 0;
        if (strcmp(r->method, req->method) == 0 || (head && get)) match = r;
        size_t used = strlen(allow);
        snprintf(allow + used, sizeof allow - used, "%s%s%s", used ? ", " : "", r->method,
                 get ? ", HEAD" : "");
    }
    if (!match) {
        if (known)
            conn_send_error(c, 405, "method not allowed\n", allow, true);
        else
            conn_send_error(c, 404, "not found\n", NULL, true);
        return;
    }
    resp_reset(&c->resp);
    if (match->deferred) {
        c->deferred = true;
        c->ex.conn = c;
        match->deferred(&c->ex, req, &c->resp, match->arg);
        return;
    }
    match->cb(req, &c->resp, match->arg);
    if (c->state == CONN_CLOSING) return; /* the handler called http_close */
    conn_send(c, head, NULL);
}

/* Parses what is buffered, answering a request once it is complete. */
static void conn_process(http_conn *c)
{
    while (c->state <= CONN_BODY && c->in_pos < c->in_len) {
        size_t n = http_parser_execute(&c->parser, &parser_settings, c->buf + c->in_pos,
                                       c->in_len - c->in_pos);
        c->in_pos += n;
        if (c->complete) {
            http_parser_pause(&c->parser, 0);
            c->complete = false;
            conn_dispatch(c);
            break;
        }
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e != HPE_OK) {
            char msg[160];
            int status = c->error_status ? c->error_status : 400;
            const char *text = c->error_text;
            if (!text) {
                snprintf(msg, sizeof msg, "bad request: %s\n", http_errno_description(e));
                text = msg;
            }
            if (status == 400 && e == HPE_HEADER_OVERFLOW) status = 431;
            c->keep_alive = false;
            conn_send_error(c, status, text, NULL, false);
            return;
        }
    }
    /* Drop what was parsed; keep what waits (a pipelined request). */
    if (c->in_pos > 0) {
        memmove(c->buf, c->buf + c->in_pos, c->in_len - c->in_pos);
        c->in_len -= c->in_pos;
        c->in_pos = 0;
    }
}

/* ---- reading ---- */

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    http_conn *c = h->data;
    size_t max = c->server->max_head;
    if (c->state == CONN_LINGER) /* discard: read into the whole buffer */
        *buf = uv_buf_init(c->buf, (unsigned)max);
    else
        *buf = uv_buf_init(c->buf + c->in_len, (unsigned)(max - c->in_len));
}

static void conn_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    http_conn *c = stream->data;
    if (c->state == CONN_CLOSING) return;
    if (nread == UV_ENOBUFS) { /* the buffer is full of a pipelined request */
        conn_read(c, false);
        return;
    }
    if (nread == 0) return;
    if (nread < 0) {
        if (nread == UV_EOF && (c->state == CONN_HANDLING || c->state == CONN_WRITING ||
                                (c->state == CONN_LINGER && !c->shut_done))) {
            c->peer_eof = true; /* answer first (pipelined requests too) */
            conn_read(c, false);
            return;
        }
        conn_close(c); /* EOF mid-request or idle, EOF while lingering, or an error */
        return;
    }
    if (c->state == CONN_LINGER) return; /* discard */
    c->in_len += (size_t)nread;
    if (c->state <= CONN_BODY) conn_process(c);
    if (c->state != CONN_CLOSING && c->in_len == c->server->max_head) conn_read(c, false);
}

/* ---- deferred exchanges ---- */

void http_exchange_finish(http_exchange *ex)
{
    http_conn *c = ex->conn;
    HTTP_ASSERT(c && c->deferred);
    c->deferred = false;
    ex->conn = NULL;
    if (c->handles_gone) { /* closed meanwhile: only the memory is left */
        request_done(c);
        conn_free(c);
        return;
    }
    if (c->state == CONN_CLOSING) {
        request_done(c);
        return; /* the close callbacks free it */
    }
    conn_send(c, strcmp(c->req.method, "HEAD") == 0, NULL);
}

bool http_exchange_gone(const http_exchange *ex)
{
    return ex->conn->state == CONN_CLOSING;
}

http_response *http_exchange_response(http_exchange *ex)
{
    return &ex->conn->resp;
}

/* ---- accepting ---- */

/* The oldest open connection without a complete request (idle, or still
 * sending its head), or NULL. New connections go to the front of
 * s->conns, so it is the last such one. */
static http_conn *oldest_idle(http_server *s)
{
    http_conn *found = NULL;
    for (http_conn *c = s->conns; c; c = c->next)
        if (c->state == CONN_IDLE || c->state == CONN_HEAD) found = c;
    return found;
}

static void server_connection_cb(uv_stream_t *listener, int status)
{
    http_server *s = listener->data;
    if (status < 0 || s->closing || s->stopping) return;
    /* At the cap, a connection without a complete request gives way to the
     * new one (the oldest first): idle or slow connections can then never
     * starve the probes, however many a client opens or how fast it
     * reopens them. Only connections with a request in progress make a new
     * one be refused. */
    if (s->n_open >= s->max_conns) {
        http_conn *idle = oldest_idle(s);
        if (idle) conn_close(idle);
    }
    /* The cap counts open connections (s->conns): one closed above is freed
     * once its close callbacks run, on the next loop turn. */
    bool refuse = s->n_open >= s->max_conns;
    http_conn *c = calloc(1, sizeof *c + (refuse ? 0 : 2 * s->max_head + 1));
    if (!c) return; /* libuv stops accepting until a later uv_accept; rare */
    c->server = s;
    c->refused = refuse;
    c->state = CONN_IDLE;
    HTTP_ASSERT(uv_tcp_init(s->loop, &c->tcp) == 0);
    c->tcp.data = c;
    c->handles = 1;
    s->n_live++;
    if (refuse) {
        uv_accept(listener, (uv_stream_t *)&c->tcp);
        conn_close(c);
        return;
    }
    c->head = c->buf + s->max_head;
    resp_reset(&c->resp);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    s->n_serving++;
    s->n_open++;
    HTTP_ASSERT(uv_timer_init(s->loop, &c->timer) == 0);
    c->timer.data = c;
    c->handles = 2;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    conn_timer(c, s->head_ms);
    conn_read(c, true);
}

/* ---- server ---- */

int http_open(uv_loop_t *loop, const http_config *cfg, http_server **out)
{
    *out = NULL;
    if (!loop || !cfg || cfg->port < 0 || cfg->port > 65535) return UV_EINVAL;
    size_t max_head = cfg->max_head_bytes ? cfg->max_head_bytes : 8192;
    if (max_head < 256 || max_head > (1u << 24)) return UV_EINVAL;
    const char *host = cfg->host ? cfg->host : "0.0.0.0";
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    socklen_t addrlen;
    if (uv_ip4_addr(host, cfg->port, (struct sockaddr_in *)&addr) == 0)
        addrlen = sizeof(struct sockaddr_in);
    else if (uv_ip6_addr(host, cfg->port, (struct sockaddr_in6 *)&addr) == 0)
        addrlen = sizeof(struct sockaddr_in6);
    else
        return UV_EINVAL;

    /* The raw head limit (request line + headers) is the parser's own, and
     * libhttp-parser keeps it process-wide: the last http_open sets it. */
    http_parser_set_max_header_size((uint32_t)max_head);
    http_parser_settings_init(&parser_settings);
    parser_settings.on_message_begin = on_message_begin;
    parser_settings.on_url = on_url;
    parser_settings.on_header_field = on_header_field;
    parser_settings.on_header_value = on_header_value;
    parser_settings.on_headers_complete = on_headers_complete;
    parser_settings.on_body = on_body;
    parser_settings.on_message_complete = on_message_complete;

    http_server *s = calloc(1, sizeof *s);
    if (!s) return UV_ENOMEM;
    s->loop = loop;
    s->max_conns = cfg->max_connections ? cfg->max_connections : 512;
    s->head_ms = cfg->read_timeout_ms ? cfg->read_timeout_ms : 2000;
    s->keep_alive_ms = cfg->keep_alive_ms ? cfg->keep_alive_ms : 5000;
    s->body_ms = cfg->body_timeout_ms ? cfg->body_timeout_ms : 30000;
    s->max_head = max_head;
    s->max_body = cfg->max_body_bytes;
    s->max_bodies = cfg->max_bodies_bytes;
    s->json_errors = cfg->json_errors;
    s->on_own_answer = cfg->on_own_answer;
    s->own_answer_arg = cfg->own_answer_arg;

    int rc, one = 1;
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) goto err_errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&addr, addrlen) < 0 ||
        listen(fd, cfg->backlog > 0 ? cfg->backlog : 128) < 0)
        goto err_errno;
    /* From here on fd belongs to the handle, and errors need uv_close. */
    HTTP_ASSERT(uv_tcp_init(loop, &s->listener) == 0);
    s->listener.data = s;
    rc = uv_tcp_open(&s->listener, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, cfg->backlog > 0 ? cfg->backlog : 128,
                       server_connection_cb);
    /* Neither fails on a fresh handle and a listening socket. */
    HTTP_ASSERT(rc == 0);
    *out = s;
    return 0;
err_errno:
    rc = uv_translate_sys_error(errno);
    if (fd >= 0) close(fd);
    free(s);
    return rc;
}

int http_port(const http_server *s)
{
    struct sockaddr_storage a;
    int len = sizeof a;
    int rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&a, &len);
    if (rc < 0) return rc;
    if (a.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&a)->sin_port);
    if (a.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
    return UV_EINVAL;
}

unsigned http_connection_count(const http_server *s)
{
    return s->n_serving;
}

unsigned http_requests_in_progress(const http_server *s)
{
    return s->n_in_progress;
}

static int route_add(http_server *s, const char *method, const char *path, http_handler_cb cb,
                     http_deferred_cb deferred, void *arg)
{
    if (!method || !is_token(method, strlen(method)) || !path || path[0] != '/' ||
        (!cb && !deferred))
        return UV_EINVAL;
    for (size_t i = 0; i < s->n_routes; i++)
        if (strcmp(s->routes[i].method, method) == 0 && strcmp(s->routes[i].path, path) == 0)
            return UV_EEXIST;
    if (s->n_routes == s->cap_routes) {
        size_t cap = s->cap_routes ? 2 * s->cap_routes : 8;
        http_route_entry *r = realloc(s->routes, cap * sizeof *r);
        if (!r) return UV_ENOMEM;
        s->routes = r;
        s->cap_routes = cap;
    }
    http_route_entry e = {strdup(method), strdup(path), cb, deferred, arg};
    if (!e.method || !e.path) {
        free(e.method);
        free(e.path);
        return UV_ENOMEM;
    }
    s->routes[s->n_routes++] = e;
    return 0;
}

int http_route(http_server *s, const char *method, const char *path, http_handler_cb cb, void *arg)
{
    return route_add(s, method, path, cb, NULL, arg);
}

int http_route_deferred(http_server *s, const char *method, const char *path, http_deferred_cb cb,
                        void *arg)
{
    return route_add(s, method, path, NULL, cb, arg);
}

static void server_listener_closed_cb(uv_handle_t *h)
{
    http_server *s = h->data;
    s->listener_closed = true;
    server_maybe_finish(s);
}

static void close_listener(http_server *s)
{
    if (s->listener_closing) return;
    s->listener_closing = true;
    uv_close((uv_handle_t *)&s->listener, server_listener_closed_cb);
}

void http_stop_accepting(http_server *s)
{
    if (s->stopping || s->closing) return;
    s->stopping = true;
    close_listener(s);
    /* Connections without a request in progress have nothing to finish. */
    http_conn *c = s->conns;
    while (c) {
        http_conn *next = c->next;
        if (c->state == CONN_IDLE) conn_close(c);
        c = next;
    }
}

void http_close(http_server *s, http_close_cb cb, void *arg)
{
    HTTP_ASSERT(!s->closing);
    s->closing = true;
    s->close_cb = cb;
    s->close_arg = arg;
    close_listener(s);
    while (s->conns)
        conn_close(s->conns); /* unlinks it */
    server_maybe_finish(s);   /* everything may be closed already (a drain) */
}
