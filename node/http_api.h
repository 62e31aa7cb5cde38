/* A small HTTP/1.1 JSON API server on the node's libuv loop, built on h2o
 * 2.2 (libh2o, built with libuv). h2o parses HTTP; this module routes
 * requests by method and path prefix to handlers, which may answer at once
 * or later (after a raft commit, a barrier or a leadership transfer).
 *
 * Behaviour
 *   - HTTP/1.1 only (no h2c upgrade), keep-alive supported.
 *   - 404 {"error":"not found"} for an unknown path, 405 {"error":"method not
 *     allowed"} with an Allow header when the path exists for other methods,
 *     413 {"error":"request entity is too large"} beyond max_body, 503
 *     {"error":"node is stopping"} for requests that arrive during a stop.
 *     Every error that h2o itself emits (400 broken chunked body, 413, 417)
 *     also has a JSON body {"error": "...", "status": N}.
 *   - Request bodies are buffered whole by h2o before the handler runs, so
 *     max_body bounds memory per connection; the header block is bounded by
 *     h2o at compile time (100 headers, about 408 KiB).
 *
 * Lifecycle (the safe order, checked by tests/unit/test_http_api.c)
 *   1. http_api_start() on a loop, then http_api_route() for each route.
 *   2. http_api_stop(api, cb, data): closes the listener, marks the context
 *      as shutting down (answers now carry "Connection: close"), shuts down
 *      the read side of every open connection so that idle keep-alive
 *      connections close at once and busy ones close after their answer,
 *      and calls cb once the listener and every connection are closed and
 *      every pending request has been answered. Handlers must still answer
 *      their pending requests: stop waits for them.
 *   3. h2o's own loop handles (timers, the cross-thread queue) are
 *      unreferenced, so after the stop callback uv_run() returns by itself
 *      once the rest of the program closed its handles (uv_stop works too).
 *   4. http_api_free() AFTER uv_run() returned, never from a callback:
 *      h2o_context_dispose() runs the loop itself (UV_RUN_NOWAIT) to close
 *      its timers, and it asserts if a connection is still open.
 */
#ifndef HTTP_API_H
#define HTTP_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct http_api http_api;
typedef struct http_request http_request;

enum http_api_err {
    HTTP_API_OK = 0,
    HTTP_API_ENOMEM = -3001,
    HTTP_API_EADDR = -3002,   /* listen address is not IPv4:port or [IPv6]:port */
    HTTP_API_ELISTEN = -3003, /* bind or listen failed (logged with the reason) */
    HTTP_API_EINVAL = -3004,  /* bad route (method/prefix too long, prefix not "/...") */
    HTTP_API_EFULL = -3005,   /* route table full (HTTP_API_MAX_ROUTES) */
};
const char *http_api_strerror(int err);

#define HTTP_API_DEFAULT_MAX_BODY (1u << 20)    /* bytes */
#define HTTP_API_DEFAULT_MAX_CONNECTIONS 256u
#define HTTP_API_DEFAULT_IDLE_TIMEOUT_MS 10000u
#define HTTP_API_MAX_ROUTES 64
#define HTTP_API_MAX_METHOD 15 /* longest method name in a route */
#define HTTP_API_MAX_PREFIX 127

/* Zero means the default for every numeric field. */
struct http_api_config {
    const char *listen;        /* "127.0.0.1:8080" (IPv4 literal:port) or "[::1]:8080";
                                  port 0 picks a free port (see http_api_port) */
    size_t max_body;           /* largest request body in bytes; default 1 MiB; 413 beyond */
    unsigned max_connections;  /* open connections; default 256; beyond it new
                                  connections are accepted and closed at once */
    unsigned idle_timeout_ms;  /* keep-alive idle time and the time to read one
                                  request (slow clients); default 10000 */
};

/* Runs on the loop thread. The handler answers req exactly once, at once or
 * later, with http_respond_json() or http_respond_text(). */
typedef void (*http_handler)(http_request *req, void *data);

int http_api_start(http_api **out, uv_loop_t *loop, const struct http_api_config *cfg);
/* Routes METHOD and every path equal to prefix or below it ("/v1/cluster"
 * matches "/v1/cluster" and "/v1/cluster/drain" but not "/v1/clusters"; a
 * prefix ending in '/' matches anything below it). The longest matching
 * prefix for the method wins. Returns HTTP_API_OK, _EINVAL or _EFULL. */
int http_api_route(http_api *api, const char *method, const char *prefix, http_handler h, void *data);
/* The port actually bound (useful with port 0). */
int http_api_port(const http_api *api);

struct http_api_stats {
    unsigned connections;          /* open now */
    unsigned pending;              /* requests handed to handlers, not answered yet */
    uint64_t requests;             /* handed to handlers since start */
    uint64_t refused_connections;  /* closed because of max_connections */
};
void http_api_get_stats(const http_api *api, struct http_api_stats *st);

/* Request accessors: valid until the request is answered. */
const char *http_request_method(const http_request *req);
const char *http_request_path(const http_request *req);  /* normalized and %-decoded, no query */
const char *http_request_query(const http_request *req); /* raw, after '?', or "" */
/* The body (not NUL-terminated; len 0 and "" when there is none, or when the
 * client went away). */
const char *http_request_body(const http_request *req, size_t *len);
/* 1 while the client can still receive the answer, 0 once h2o dropped it. */
int http_request_alive(const http_request *req);

/* Answer a request exactly once; req is freed by the call. Both take
 * ownership of what they are given (json is decref'd; NULL json gives a 500).
 * Safe after the client went away: the answer is dropped. */
void http_respond_json(http_request *req, int status, json_t *json);
void http_respond_text(http_request *req, int status, const char *content_type, const char *text);
/* Any body, with more header fields: lower-case name, value pairs ending
 * in NULL (e.g. {"location", url, "cache-control", "no-store", NULL}). */
void http_respond_bytes(http_request *req, int status, const char *content_type, const void *body, size_t len,
                        const char *const *fields);
/* {"error": message} with the status. */
void http_respond_error(http_request *req, int status, const char *message);

/* Graceful stop (see the lifecycle above). cb is called exactly once, from
 * the loop, never from inside this call; a second stop is ignored. */
void http_api_stop(http_api *api, void (*cb)(void *data), void *data);
/* Releases h2o's context and the api. Call after the stop callback, and
 * after uv_run() has returned (never from a callback). NULL is ignored. */
void http_api_free(http_api *api);

#endif
