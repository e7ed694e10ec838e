/* api.h - the OpenAI-compatible embeddings API (docs/api.md) on an
 * http_server, served by a pipeline's HTTP lane (pipeline.h, pipe_query).
 *
 *   POST /v1/embeddings   OpenAI's request and reply, plus the extensions
 *                         `instruction` and `truncate`
 *   GET  /v1/models       the one served model
 *
 * The handler parses and validates the request on the loop thread (cJSON,
 * Debian's libcjson, already linked for librdkafka's statistics), submits
 * one pipe_query, and answers when the pipeline is done with it; the reply
 * (up to 2,048 vectors) is encoded on a pool thread. Errors are in OpenAI's
 * shape {"error":{"message","type","param","code"}}.
 *
 * Metrics (registered in the registry given): embedq_api_requests_total
 * {status}, embedq_api_request_seconds, embedq_api_requests_in_flight,
 * embedq_api_queue_inputs.
 *
 * Threads: every function here runs on the loop thread.
 */
#ifndef EQ_API_H
#define EQ_API_H

#include <stdbool.h>

#include "http.h"
#include "metrics.h"
#include "pipeline.h"

typedef struct api api;

typedef struct {
    const char *served_model_name; /* compared with the request's `model`  */
    int max_inputs;                /* inputs per request; 0 = 2048        */
    metrics_registry *reg;         /* where its metrics go (required)     */
} api_options;

/* The API in state "loading" (every request 503) with its metrics in
 * o->reg. NULL with a message on failure. */
api *api_new(const api_options *o, char *err, size_t errlen);
/* Routes POST /v1/embeddings and GET /v1/models on s. 0 or a libuv error. */
int api_route(api *a, http_server *s);
/* The pipeline is up: requests are served (p must outlive the API's use,
 * i.e. until api_set_pipeline(a, NULL) or api_free). NULL: loading. */
void api_set_pipeline(api *a, pipeline *p);
/* Draining: new requests get 503 "draining"; those in progress finish. */
void api_set_draining(api *a);
/* Requests received and not yet answered. */
unsigned api_in_flight(const api *a);
/* Counts an answer the HTTP server gave by itself (404, 405, 408, 413, ...)
 * in embedq_api_requests_total: an http_config.on_own_answer for the
 * server the API is routed on (arg: the api). */
void api_count_own_answer(int status, void *arg);
/* Frees the API (after every request was answered). */
void api_free(api *a);

#endif
