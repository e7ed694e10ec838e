/* http.c - a minimal HTTP/1.1 server on libuv (see http.h).
 *
 * A connection's life:
 *
 *   accept -> READ_HEAD --complete head--> WRITING --written--> LINGER -> closed
 *                 |            (handler runs here)         shutdown(SHUT_WR),
 *                 |                                        read and discard
 *                 +--EOF, error, timeout, evicted---------------------+-> closed
 *
 * Probes must not starve: a connection has read_timeout_ms (2 s) in all to
 * send its request head, and when max_connections (512) are open, a new
 * connection evicts the oldest one still in READ_HEAD. Only connections
 * being answered can make the server refuse one.
 *
 * Lingering: closing a socket that still has unread input makes the kernel
 * send RST, which can destroy a response the client has not read yet. So
 * after the response the server half-closes, keeps reading (and discarding)
 * until the client's EOF, and only then closes; the timer bounds the wait.
 *
 * Memory: a connection is one allocation (its struct plus the head buffer
 * of max_head_bytes) and a response body grown by the handler; both are
 * freed after the close callbacks of its two handles (tcp, timer) ran. The
 * server is freed after its listener and all connections are gone.
 *
 * The listening socket is created, bound and put to listen with plain
 * socket calls, then handed to libuv (uv_tcp_open): so http_open fails
 * synchronously with nothing left to close, instead of leaving a libuv
 * handle whose close needs another loop turn.
 */
#include "http.h"

#include <errno.h>
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

#define HTTP_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define HTTP_LINGER_MS  2000u /* longest wait for the client's EOF after a response */
#define HTTP_TYPE_MAX   128
#define HTTP_DEFAULT_CT "text/plain; charset=utf-8"

struct http_response {
    int status;
    char content_type[HTTP_TYPE_MAX];
    char *body; /* malloc'd, or NULL */
    size_t len, cap;
    bool failed; /* out of memory: answer 500 */
};

typedef enum { CONN_READ_HEAD, CONN_WRITING, CONN_LINGER, CONN_CLOSING } conn_state;

typedef struct http_conn {
    uv_tcp_t tcp;     /* tcp.data = this            */
    uv_timer_t timer; /* timer.data = this          */
    http_server *server;
    struct http_conn *prev, *next; /* server->conns, while not closing */
    conn_state state;
    int handles;    /* initialized handles whose close callback is pending */
    bool refused;   /* over max_connections: closed at once, no buffer */
    bool peer_eof;  /* the client has shut down its side */
    bool shut_done; /* our shutdown completed */
    size_t in_len;  /* bytes of the head in `in` */
    size_t start;   /* first byte after leading blank lines */
    size_t scan;    /* where the search for the head's end resumes */
    http_request req;
    http_response resp;
    char out_head[1024]; /* status line + headers; content type < 128, Allow < 256 */
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    char in[]; /* (server->max_head) the request head; absent when refused */
} http_conn;

typedef struct http_route_entry {
    char *method, *path;
    http_handler_cb cb;
    void *arg;
} http_route_entry;

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener; /* listener.data = this */
    unsigned max_conns, timeout_ms;
    size_t max_head;
    http_route_entry *routes;
    size_t n_routes, cap_routes;
    http_conn *conns;   /* open, not closing */
    unsigned n_open;    /* connections in conns: the cap (max_conns) counts these */
    unsigned n_serving; /* accepted (not refused) connections not yet freed */
    unsigned n_live;    /* all connection structs not yet freed */
    bool closing, listener_closed;
    http_close_cb close_cb;
    void *close_arg;
};

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

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
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
    if (n == 0 || n >= HTTP_TYPE_MAX) return UV_EINVAL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)type[i] < 0x20 || type[i] == 0x7f) return UV_EINVAL;
    memcpy(resp->content_type, type, n + 1);
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

/* ---- connection teardown ---- */

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

static void conn_handle_closed_cb(uv_handle_t *h)
{
    http_conn *c = h->data;
    if (--c->handles > 0) return;
    http_server *s = c->server;
    if (!c->refused) {
        free(c->resp.body);
        s->n_serving--;
    }
    s->n_live--;
    free(c);
    server_maybe_finish(s);
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
        uv_close((uv_handle_t *)&c->timer, conn_handle_closed_cb);
    }
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed_cb);
}

static void conn_timeout_cb(uv_timer_t *t)
{
    conn_close(t->data);
}

/* ---- writing the response ---- */

static void conn_shutdown_cb(uv_shutdown_t *req, int status)
{
    http_conn *c = req->data;
    if (c->state == CONN_CLOSING) return;
    c->shut_done = true;
    if (status < 0 || c->peer_eof) conn_close(c);
    /* else: LINGER until the client's EOF or the timer. */
}

static void conn_write_cb(uv_write_t *req, int status)
{
    http_conn *c = req->data;
    if (c->state == CONN_CLOSING) return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    c->state = CONN_LINGER;
    unsigned linger =
        c->server->timeout_ms < HTTP_LINGER_MS ? c->server->timeout_ms : HTTP_LINGER_MS;
    uv_timer_start(&c->timer, conn_timeout_cb, linger, 0);
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, conn_shutdown_cb) < 0) conn_close(c);
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
                     "Connection: close\r\n"
                     "\r\n",
                     r->status, reason_phrase(r->status), r->content_type, r->len, date,
                     allow ? "Allow: " : "", allow ? allow : "", allow ? "\r\n" : "");
    HTTP_ASSERT(n > 0 && (size_t)n < sizeof c->out_head);

    uv_buf_t bufs[2] = {uv_buf_init(c->out_head, (unsigned)n),
                        uv_buf_init(r->body, (unsigned)r->len)};
    unsigned nbufs = (head_only || r->len == 0) ? 1 : 2;
    c->state = CONN_WRITING;
    /* The head buffer is free again: later input is read into it and
     * discarded. */
    c->in_len = 0;
    uv_timer_start(&c->timer, conn_timeout_cb, c->server->timeout_ms, 0);
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, nbufs, conn_write_cb) < 0)
        conn_close(c);
}

/* A response the server makes up itself. */
static void conn_send_error(http_conn *c, int status, const char *body, const char *allow)
{
    resp_reset(&c->resp);
    c->resp.status = status;
    http_response_append(&c->resp, body, strlen(body));
    conn_send(c, false, allow);
}

/* ---- parsing ---- */

/* Finds the end of the head in c->in (the byte after the blank line) or
 * returns 0. Skips blank lines before the request line (RFC 9112 2.2). */
static size_t head_end(http_conn *c)
{
    while (c->start < c->in_len && (c->in[c->start] == '\r' || c->in[c->start] == '\n'))
        c->start++;
    size_t i = c->scan > c->start ? c->scan : c->start;
    for (; i < c->in_len; i++) {
        if (c->in[i] != '\n') continue;
        if (i + 1 < c->in_len && c->in[i + 1] == '\n') return i + 2;
        if (i + 2 < c->in_len && c->in[i + 1] == '\r' && c->in[i + 2] == '\n') return i + 3;
        if (i + 2 >= c->in_len) break; /* need more bytes to decide */
    }
    c->scan = i;
    return 0;
}

/* The next line of [*p, end): NUL-terminates it in place (dropping CR LF or
 * LF) and returns it, with its length in *len. */
static char *next_line(char **p, char *end, size_t *len)
{
    char *line = *p;
    char *nl = memchr(line, '\n', (size_t)(end - line));
    HTTP_ASSERT(nl); /* the head ends with a blank line */
    *p = nl + 1;
    if (nl > line && nl[-1] == '\r') nl--;
    *nl = '\0';
    *len = (size_t)(nl - line);
    return line;
}

static bool valid_field_value(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return false;
    }
    return true;
}

/* Parses the request line into req (in place). Returns 0, or the status to
 * answer with (400, 505). */
static int parse_request_line(char *line, size_t n, http_request *req)
{
    char *sp1 = memchr(line, ' ', n);
    if (!sp1 || !is_token(line, (size_t)(sp1 - line))) return 400;
    char *target = sp1 + 1;
    char *sp2 = memchr(target, ' ', (size_t)(line + n - target));
    if (!sp2 || sp2 == target) return 400;
    char *version = sp2 + 1;
    size_t vlen = (size_t)(line + n - version);
    *sp1 = *sp2 = '\0';
    for (char *p = target; p < sp2; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) return 400;
    if (vlen != 8 || memcmp(version, "HTTP/", 5) != 0 || version[5] < '0' || version[5] > '9' ||
        version[6] != '.' || version[7] < '0' || version[7] > '9')
        return 400;
    if (version[5] != '1') return 505;
    req->method = line;
    req->version_minor = version[7] - '0';

    /* origin-form "/path?query", absolute-form "http://host/path?query"
     * (which servers must accept), or "*" (OPTIONS; never routed). */
    char *path = target;
    if (strncasecmp(target, "http://", 7) == 0 || strncasecmp(target, "https://", 8) == 0) {
        char *auth = strstr(target, "//") + 2;
        path = strchr(auth, '/');
        if (!path) {
            /* No path: route as "/"; the query, if any, is dropped. */
            req->path = "/";
            req->query = "";
            return 0;
        }
    } else if (*target != '/' && strcmp(target, "*") != 0) {
        return 400;
    }
    char *q = strchr(path, '?');
    if (q) *q = '\0';
    req->path = path;
    req->query = q ? q + 1 : "";
    return 0;
}

/* Parses c->in[start, end) into c->req and answers it. */
static void conn_handle_head(http_conn *c, size_t end)
{
    http_server *s = c->server;
    http_request *req = &c->req;
    memset(req, 0, sizeof *req);
    char *p = c->in + c->start, *e = c->in + end;
    size_t n;
    char *line = next_line(&p, e, &n);
    int status = parse_request_line(line, n, req);
    if (status) {
        conn_send_error(
            c, status, status == 505 ? "HTTP version not supported\n" : "bad request line\n", NULL);
        return;
    }

    int n_host = 0;
    bool has_body = false, bad = false;
    const char *content_length = NULL;
    while ((line = next_line(&p, e, &n)), n > 0) {
        if (line[0] == ' ' || line[0] == '\t') { /* obsolete line folding */
            bad = true;
            break;
        }
        char *colon = memchr(line, ':', n);
        if (!colon || !is_token(line, (size_t)(colon - line))) {
            bad = true;
            break;
        }
        *colon = '\0';
        char *v = colon + 1, *ve = line + n;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        if (!valid_field_value(v, (size_t)(ve - v))) {
            bad = true;
            break;
        }
        *ve = '\0';
        if (req->n_headers == HTTP_MAX_HEADERS) {
            conn_send_error(c, 431, "too many header fields\n", NULL);
            return;
        }
        req->headers[req->n_headers++] = (http_header){line, v};
        if (strcasecmp(line, "Host") == 0) n_host++;
        if (strcasecmp(line, "Transfer-Encoding") == 0) has_body = true;
        if (strcasecmp(line, "Content-Length") == 0) {
            if (*v == '\0' || strspn(v, "0123456789") != strlen(v) ||
                (content_length && strcmp(content_length, v) != 0)) {
                bad = true;
                break;
            }
            content_length = v;
            if (strspn(v, "0") != strlen(v)) has_body = true;
        }
    }
    if (bad || n_host > 1 || (req->version_minor >= 1 && n_host == 0)) {
        conn_send_error(c, 400, "bad request\n", NULL);
        return;
    }
    if (has_body) {
        conn_send_error(c, 413, "request bodies are not accepted\n", NULL);
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
            conn_send_error(c, 405, "method not allowed\n", allow);
        else
            conn_send_error(c, 404, "not found\n", NULL);
        return;
    }
    resp_reset(&c->resp);
    match->cb(req, &c->resp, match->arg);
    if (c->state == CONN_CLOSING) return; /* the handler called http_close */
    conn_send(c, head, NULL);
}

/* ---- reading ---- */

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    http_conn *c = h->data;
    size_t max = c->server->max_head;
    if (c->state == CONN_READ_HEAD)
        *buf = uv_buf_init(c->in + c->in_len, (unsigned)(max - c->in_len));
    else /* after the head: read into the whole buffer and discard */
        *buf = uv_buf_init(c->in, (unsigned)max);
}

static void conn_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    http_conn *c = stream->data;
    if (c->state == CONN_CLOSING || nread == 0) return;
    if (nread < 0) {
        if (nread == UV_EOF &&
            (c->state == CONN_WRITING || (c->state == CONN_LINGER && !c->shut_done))) {
            c->peer_eof = true; /* finish writing / shutting down first */
            uv_read_stop(stream);
            return;
        }
        conn_close(c); /* EOF before a head, EOF while lingering, or an error */
        return;
    }
    if (c->state != CONN_READ_HEAD) return; /* discard */
    c->in_len += (size_t)nread;
    size_t end = head_end(c);
    if (end)
        conn_handle_head(c, end);
    else if (c->in_len == c->server->max_head)
        conn_send_error(c, 431, "request head too large\n", NULL);
}

/* ---- accepting ---- */

/* The oldest open connection that has not sent a complete request head, or
 * NULL. New connections go to the front of s->conns, so it is the last one
 * in READ_HEAD. */
static http_conn *oldest_idle(http_server *s)
{
    http_conn *found = NULL;
    for (http_conn *c = s->conns; c; c = c->next)
        if (c->state == CONN_READ_HEAD) found = c;
    return found;
}

static void server_connection_cb(uv_stream_t *listener, int status)
{
    http_server *s = listener->data;
    if (status < 0 || s->closing) return;
    /* At the cap, a connection that has not sent its request yet gives way
     * to the new one (the oldest such first): idle or slow connections can
     * then never starve the probes, however many a client opens or how
     * fast it reopens them. Only connections that are being answered
     * (writing, lingering) make a new one be refused. */
    if (s->n_open >= s->max_conns) {
        http_conn *idle = oldest_idle(s);
        if (idle) conn_close(idle);
    }
    /* The cap counts open connections (s->conns): one closed above is freed
     * once its close callbacks run, on the next loop turn. */
    bool refuse = s->n_open >= s->max_conns;
    http_conn *c = calloc(1, sizeof *c + (refuse ? 0 : s->max_head));
    if (!c) return; /* libuv stops accepting until a later uv_accept; rare */
    c->server = s;
    c->refused = refuse;
    c->state = CONN_READ_HEAD;
    HTTP_ASSERT(uv_tcp_init(s->loop, &c->tcp) == 0);
    c->tcp.data = c;
    c->handles = 1;
    s->n_live++;
    if (refuse) {
        uv_accept(listener, (uv_stream_t *)&c->tcp);
        conn_close(c);
        return;
    }
    s->n_serving++;
    s->n_open++;
    HTTP_ASSERT(uv_timer_init(s->loop, &c->timer) == 0);
    c->timer.data = c;
    c->handles = 2;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0 ||
        uv_timer_start(&c->timer, conn_timeout_cb, s->timeout_ms, 0) < 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb) < 0)
        conn_close(c);
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

    http_server *s = calloc(1, sizeof *s);
    if (!s) return UV_ENOMEM;
    s->loop = loop;
    s->max_conns = cfg->max_connections ? cfg->max_connections : 512;
    s->timeout_ms = cfg->read_timeout_ms ? cfg->read_timeout_ms : 2000;
    s->max_head = max_head;

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

int http_route(http_server *s, const char *method, const char *path, http_handler_cb cb, void *arg)
{
    if (!method || !is_token(method, strlen(method)) || !path || path[0] != '/' || !cb)
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
    http_route_entry e = {strdup(method), strdup(path), cb, arg};
    if (!e.method || !e.path) {
        free(e.method);
        free(e.path);
        return UV_ENOMEM;
    }
    s->routes[s->n_routes++] = e;
    return 0;
}

static void server_listener_closed_cb(uv_handle_t *h)
{
    http_server *s = h->data;
    s->listener_closed = true;
    server_maybe_finish(s);
}

void http_close(http_server *s, http_close_cb cb, void *arg)
{
    HTTP_ASSERT(!s->closing);
    s->closing = true;
    s->close_cb = cb;
    s->close_arg = arg;
    uv_close((uv_handle_t *)&s->listener, server_listener_closed_cb);
    while (s->conns)
        conn_close(s->conns); /* unlinks it */
}
