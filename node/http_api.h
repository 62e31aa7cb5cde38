/* A small HTTP/1.1 JSON API server on the node's libuv loop, built on h2o
 * (libh2o, built with libuv). h2o parses HTTP; this module routes requests
 * by method and path prefix to handlers, which may answer at once or later
 * (after a raft commit, a barrier or a leadership transfer).
 *
 * Every response closes its connection (no keep-alive): API clients are
 * operators and scripts, and it lets a graceful stop finish without waiting
 * for idle keep-alive connections (h2o_context_dispose asserts on them). */
#ifndef HTTP_API_H
#define HTTP_API_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

typedef struct http_api http_api;
typedef struct http_request http_request;

enum http_api_err {
    HTTP_API_OK = 0,
    HTTP_API_ENOMEM = -3001,
    HTTP_API_EADDR = -3002,   /* listen address is not IP:port */
    HTTP_API_ELISTEN = -3003, /* bind or listen failed */
};
const char *http_api_strerror(int err);

struct http_api_config {
    const char *listen;       /* IPv4 literal:port, or [IPv6]:port */
    size_t max_body;          /* largest request body; default 1 MiB (413 beyond) */
    unsigned max_connections; /* default 256; beyond it new connections are closed */
};

typedef void (*http_handler)(http_request *req, void *data);

int http_api_start(http_api **out, uv_loop_t *loop, const struct http_api_config *cfg);
/* Routes METHOD and paths starting with prefix (longest prefix wins). */
int http_api_route(http_api *api, const char *method, const char *prefix, http_handler h, void *data);

const char *http_request_method(const http_request *req);
const char *http_request_path(const http_request *req);  /* normalized, no query */
const char *http_request_query(const http_request *req); /* after '?', or "" */
const char *http_request_body(const http_request *req, size_t *len);

/* Answer a request exactly once. Both take ownership (json is decref'd).
 * Safe after the client went away: the answer is dropped. */
void http_respond_json(http_request *req, int status, json_t *json);
void http_respond_text(http_request *req, int status, const char *content_type, const char *text);

/* Stops listening and calls cb once every open connection has closed and
 * every pending request has been answered. */
void http_api_stop(http_api *api, void (*cb)(void *data), void *data);
/* Releases h2o's context. Call after uv_run() has returned (h2o runs the
 * loop inside), and only after the stop callback. */
void http_api_free(http_api *api);

#endif
