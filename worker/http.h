/* http.h - the HTTP/1.1 server of embedq (every endpoint: /healthz,
 * /readyz, /metrics, and the OpenAI-compatible API), on a libuv loop.
 *
 * Requests are parsed by Node's former parser, libhttp-parser (Debian's
 * libhttp-parser-dev; see http.c for why this one). Connections are
 * persistent (HTTP/1.1 keep-alive; HTTP/1.0 with `Connection: keep-alive`)
 * and may pipeline: requests are answered one at a time, in order. Bodies
 * (Content-Length or chunked) are read whole, up to max_body_bytes, before
 * the handler runs. Routes are (method, exact path); the query string is
 * ignored for matching. A GET route also answers HEAD.
 *
 * Handlers are synchronous (http_route: the response is sent when the
 * handler returns) or deferred (http_route_deferred: the handler keeps the
 * http_exchange and calls http_exchange_finish later, on the loop thread,
 * for work done elsewhere, e.g. by the engine).
 *
 * Answers the server gives by itself: 404 unknown path; 405 (with Allow)
 * known path, other method; 400 a request the parser rejects (its reason
 * in the body), or a missing/repeated Host in HTTP/1.1; 431 request head
 * larger than max_head_bytes (or more than HTTP_MAX_HEADERS headers); 413
 * a body larger than max_body_bytes (also answered before the body is sent
 * when the client asks `Expect: 100-continue`); 503 + Retry-After a body
 * that would take the bodies held over max_bodies_bytes, or while stopping;
 * 505 an HTTP major version
 * other than 1; 500 a handler that ran out of memory or set a status
 * outside 100..599. Every one of these closes the connection after the
 * answer.
 *
 * Limits and timeouts (none can be starved by idle or slow clients):
 *   - a new connection must send a complete request head within
 *     read_timeout_ms; between two requests, a persistent connection may
 *     stay idle keep_alive_ms, and then has read_timeout_ms again from the
 *     next request's first byte; the whole body must arrive within
 *     body_timeout_ms of the head's end, and a response be written within
 *     body_timeout_ms. A connection that misses a deadline is closed
 *     without an answer (the head and idle cases) or after a 408 (body).
 *   - at most max_connections open; at the cap a new connection evicts the
 *     oldest one that is idle (no request in progress). Only when every
 *     open connection has a request in progress is a new one refused
 *     (accepted and closed at once).
 *
 * Threads: every function here runs on the loop's thread, and handlers are
 * called there; nothing blocks. The process must ignore SIGPIPE (libuv
 * writes to sockets with write(2); a client that resets the connection
 * would otherwise kill the process).
 */
#ifndef EQ_HTTP_H
#define EQ_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#define HTTP_MAX_HEADERS 64 /* request headers kept per request (more: 431) */

typedef struct http_server http_server;
typedef struct http_response http_response;
typedef struct http_exchange http_exchange;

typedef struct http_config {
    const char *host;         /* numeric IPv4 or IPv6 address to bind; NULL = "0.0.0.0" */
    int port;                 /* 0 = an ephemeral port (see http_port)            */
    unsigned max_connections; /* open at once; 0 = 512 (see above)                 */
    unsigned read_timeout_ms; /* to receive a request head; 0 = 2000               */
    unsigned keep_alive_ms;   /* idle between two requests; 0 = 5000               */
    unsigned body_timeout_ms; /* to receive a body, and to write a response;
                                 0 = 30000                                       */
    size_t max_head_bytes;    /* request line + headers; 0 = 8192; at least 256.
                                 libhttp-parser holds this limit process-wide:
                                 the last http_open's value applies to all  */
    size_t max_body_bytes;    /* 0 = no body accepted (413); otherwise the cap    */
    size_t max_bodies_bytes;  /* request bodies held in memory at once, over all
                                 connections (read, or waiting for their
                                 answer); a request that would go over gets
                                 503 + Retry-After: 1 (as soon as its
                                 Content-Length says so). 0 = no cap      */
    int backlog;              /* listen(2) backlog; 0 = 128                       */
    bool json_errors;         /* the answers the server gives by itself (below)
                                 in OpenAI's error shape, application/json:
                                 {"error":{"message","type","param":null,
                                 "code":null}}; type invalid_request_error
                                 (4xx) or server_error (5xx). Else plain text */
    void (*on_own_answer)(int status, void *arg); /* optional: called (loop thread)
                                 with the status of each answer the server
                                 gives by itself, e.g. to count it            */
    void *own_answer_arg;
} http_config;

typedef struct http_header {
    const char *name;  /* as sent (compare case-insensitively)   */
    const char *value; /* leading and trailing whitespace removed */
} http_header;

/* A parsed request, valid until the response is sent (http_route: while
 * the handler runs; http_route_deferred: until http_exchange_finish). */
typedef struct http_request {
    const char *method; /* "GET", "HEAD", "POST", ...                  */
    const char *path;   /* the path as routed, e.g. "/metrics"          */
    const char *query;  /* after '?', without it; "" when there is none */
    int version_minor;  /* HTTP/1.x                                    */
    size_t n_headers;
    http_header headers[HTTP_MAX_HEADERS];
    const char *body; /* the whole body (NUL-terminated; may hold NULs),
                         "" when there is none                         */
    size_t body_len;
} http_request;

/* Fills resp for req. Runs on the loop thread; must not block. The
 * response starts as 200, "text/plain; charset=utf-8", empty body. */
typedef void (*http_handler_cb)(const http_request *req, http_response *resp, void *arg);

/* A deferred handler: it fills resp (now or later) and must call
 * http_exchange_finish(ex) exactly once, on the loop thread, also when the
 * client has gone away meanwhile (http_exchange_gone). */
typedef void (*http_deferred_cb)(http_exchange *ex, const http_request *req, http_response *resp,
                                 void *arg);

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
/* The same for a deferred handler. */
int http_route_deferred(http_server *s, const char *method, const char *path, http_deferred_cb cb,
                        void *arg);

/* Sends the exchange's response (loop thread), or just releases it when
 * the client is gone or the server is closing. ex is invalid afterwards. */
void http_exchange_finish(http_exchange *ex);
/* True once the exchange's connection has closed (a reset or error from
 * the client, or http_close): its response will not be sent. A client
 * that only shuts down its side (EOF) is still answered: HTTP allows a
 * half-close after the request. */
bool http_exchange_gone(const http_exchange *ex);
/* The exchange's response (to fill before http_exchange_finish). */
http_response *http_exchange_response(http_exchange *ex);

/* Stops accepting new connections and new requests on open ones (a request
 * that arrives gets 503 and `Connection: close`); requests in progress are
 * answered. For a drain. Idempotent. */
void http_stop_accepting(http_server *s);
/* Requests whose response has not been sent yet (deferred ones included). */
unsigned http_requests_in_progress(const http_server *s);

/* Closes the listener and every connection (responses in progress are cut
 * off), then calls cb(arg) (which may be NULL) once the server is freed:
 * from a libuv close callback, or before http_close returns when nothing
 * was left open (after http_stop_accepting and a drain). Exchanges still
 * deferred keep the server until they are finished. s is invalid from this
 * call on; call it once. */
void http_close(http_server *s, http_close_cb cb, void *arg);

/* ---- building a response (inside a handler) ---- */

/* Sets the status code (100..599; others are answered 500). */
void http_response_status(http_response *resp, int status);

/* Sets the Content-Type (copied, < 128 bytes, no control characters).
 * Returns 0 or UV_EINVAL (the type is left unchanged). */
int http_response_content_type(http_response *resp, const char *type);

/* Adds a response header line "name: value" (both copied; a token name and
 * a value without control characters; at most 512 bytes in all per
 * response). Returns 0 or UV_EINVAL. */
int http_response_header(http_response *resp, const char *name, const char *value);

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
