/* http.h - a minimal HTTP/1.1 server on a libuv loop, for the worker's
 * /healthz, /readyz and /metrics.
 *
 * One request per connection: the server reads a request head (no bodies:
 * a request that announces one gets 413), calls the route's handler
 * synchronously, writes the response with `Connection: close`, shuts down
 * its side and closes once the client has closed too (or after a short
 * linger). Routes are (method, exact path); the query string is ignored for
 * matching. A GET route also answers HEAD.
 *
 * Answers the server gives by itself: 404 unknown path; 405 (with Allow)
 * known path, other method; 400 malformed request line or header, or a
 * missing/repeated Host in HTTP/1.1; 431 request head larger than
 * max_head_bytes (or more than HTTP_MAX_HEADERS headers); 413 a request
 * body; 505 an HTTP major version other than 1; 500 a handler that ran out
 * of memory or set a status outside 100..599.
 *
 * Limits: a connection that has not sent a complete head read_timeout_ms
 * after it was accepted is closed without an answer (idle and slow clients
 * alike); writing the response has the same budget again. Beyond
 * max_connections open connections, new ones are accepted and closed at
 * once.
 *
 * Threads: every function here runs on the loop's thread, and handlers are
 * called there; nothing blocks. The process must ignore SIGPIPE (libuv
 * writes to sockets with write(2); a client that resets the connection
 * would otherwise kill the process).
 */
#ifndef EQ_HTTP_H
#define EQ_HTTP_H

#include <stddef.h>

#include <uv.h>

#define HTTP_MAX_HEADERS 64 /* request headers kept per request (more: 431) */

typedef struct http_server http_server;
typedef struct http_response http_response;

typedef struct http_config {
    const char *host;         /* numeric IPv4 or IPv6 address to bind; NULL = "0.0.0.0" */
    int port;                 /* 0 = an ephemeral port (see http_port)            */
    unsigned max_connections; /* open at once; 0 = 512. At the cap a new connection
                                 evicts the oldest one that has not sent a
                                 complete request head (so idle connections
                                 cannot starve probes)                       */
    unsigned read_timeout_ms; /* to receive the whole request head; 0 = 2000    */
    size_t max_head_bytes;    /* request line + headers; 0 = 8192; at least 256   */
    int backlog;              /* listen(2) backlog; 0 = 128                       */
} http_config;

typedef struct http_header {
    const char *name;  /* as sent (compare case-insensitively)   */
    const char *value; /* leading and trailing whitespace removed */
} http_header;

/* A parsed request, valid only while the handler runs. */
typedef struct http_request {
    const char *method; /* "GET", "HEAD", ...                         */
    const char *path;   /* the path as routed, e.g. "/metrics"         */
    const char *query;  /* after '?', without it; "" when there is none */
    int version_minor;  /* HTTP/1.x                                   */
    size_t n_headers;
    http_header headers[HTTP_MAX_HEADERS];
} http_request;

/* Fills resp for req. Runs on the loop thread; must not block. The
 * response starts as 200, "text/plain; charset=utf-8", empty body. */
typedef void (*http_handler_cb)(const http_request *req, http_response *resp, void *arg);

/* Called once the server is gone (all its handles closed, memory freed). */
typedef void (*http_close_cb)(void *arg);

/* Binds cfg->host:cfg->port, listens, and returns the server in *out.
 * Returns 0, or a negative libuv error code (UV_EINVAL bad config or
 * address, UV_EADDRINUSE, UV_ENOMEM, ...; see uv_strerror) with *out = NULL
 * and nothing left to close. On success the server must be released with
 * http_close, and the loop run until its callback. */
int http_open(uv_loop_t *loop, const http_config *cfg, http_server **out);

/* The bound port (useful after port 0), or a negative libuv error. */
int http_port(const http_server *s);

/* Number of connections accepted and not yet freed (not counting those
 * refused over max_connections). */
unsigned http_connection_count(const http_server *s);

/* Routes method + exact path (both copied) to cb(req, resp, arg). Returns 0,
 * UV_EINVAL (path not starting with '/', bad method), UV_EEXIST (already
 * routed) or UV_ENOMEM. */
int http_route(http_server *s, const char *method, const char *path, http_handler_cb cb, void *arg);

/* Closes the listener and every connection (responses in progress are cut
 * off), frees the server, then calls cb(arg) (which may be NULL) from a
 * libuv close callback. s is invalid from this call on; call it once. */
void http_close(http_server *s, http_close_cb cb, void *arg);

/* ---- building a response (inside a handler) ---- */

/* Sets the status code (100..599; others are answered 500). */
void http_response_status(http_response *resp, int status);

/* Sets the Content-Type (copied, < 128 bytes, no control characters).
 * Returns 0 or UV_EINVAL (the type is left unchanged). */
int http_response_content_type(http_response *resp, const char *type);

/* Appends to the body. Return 0 or UV_ENOMEM; after a failure the
 * response becomes a 500. */
int http_response_append(http_response *resp, const void *data, size_t len);
int http_response_printf(http_response *resp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Replaces the body with data[0..len), taking ownership: data was
 * malloc'd and the server free()s it (NULL with len 0 empties the body). */
void http_response_adopt(http_response *resp, char *data, size_t len);

/* Case-insensitive lookup of a request header; NULL when absent. */
const char *http_request_header(const http_request *req, const char *name);

#endif /* EQ_HTTP_H */
