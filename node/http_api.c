/* h2o glue: one catch-all h2o handler at "/" dispatches to our route table,
 * so 404 and 405 are ours. Pending (asynchronous) requests are tracked with
 * a marker allocated in h2o's request pool: when h2o disposes the request
 * (client gone), the marker's dispose callback detaches our request, and a
 * late answer is dropped instead of touching freed memory. */
#include "node/http_api.h"

#include <arpa/inet.h>
#include <h2o.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "node/base/rc_log.h"

#define MAX_ROUTES 32

struct route {
    char method[8];
    char prefix[64];
    http_handler h;
    void *data;
};

struct http_api {
    uv_loop_t *loop;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    struct route routes[MAX_ROUTES];
    size_t n_routes;
    unsigned open_conns, pending;
    unsigned max_connections;
    bool stopping, listener_closed, stop_called;
    void (*stop_cb)(void *);
    void *stop_data;
};

struct marker {
    http_request *hr;
};

struct http_request {
    http_api *api;
    h2o_req_t *req; /* NULL once h2o disposed it */
    struct marker *marker;
    char *method, *path, *query;
};

struct api_handler {
    h2o_handler_t super;
    http_api *api;
};

const char *http_api_strerror(int err)
{
    switch (err) {
    case HTTP_API_OK: return "ok";
    case HTTP_API_ENOMEM: return "out of memory";
    case HTTP_API_EADDR: return "bad listen address (expected IP:port)";
    case HTTP_API_ELISTEN: return "cannot listen";
    }
    return "unknown error";
}

static void maybe_stopped(http_api *api)
{
    if (!api->stopping || api->stop_called || !api->listener_closed || api->open_conns || api->pending)
        return;
    api->stop_called = true;
    if (api->stop_cb)
        api->stop_cb(api->stop_data);
}

static void request_free(http_request *hr)
{
    http_api *api = hr->api;
    free(hr->method);
    free(hr->path);
    free(hr->query);
    free(hr);
    api->pending--;
    maybe_stopped(api);
}

static void marker_dispose(void *p)
{
    struct marker *m = p;
    if (m->hr)
        m->hr->req = NULL; /* the client went away before the answer */
}

static void send_body(http_request *hr, int status, const char *ctype, const char *body, size_t len)
{
    h2o_req_t *req = hr->req;
    if (req != NULL) {
        hr->marker->hr = NULL;
        req->res.status = status;
        req->res.reason = status == 200 ? "OK" : status == 400 ? "Bad Request" : status == 404 ? "Not Found"
                          : status == 405 ? "Method Not Allowed" : status == 413 ? "Payload Too Large"
                          : status == 409 ? "Conflict" : status == 421 ? "Misdirected Request"
                          : status == 503 ? "Service Unavailable" : "Error";
        req->res.content_length = len;
        req->http1_is_persistent = 0;
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype, strlen(ctype));
        /* h2o_send_inline copies the body into the request's pool. */
        h2o_send_inline(req, body, len);
    }
    request_free(hr);
}

void http_respond_json(http_request *hr, int status, json_t *json)
{
    char *text = json ? json_dumps(json, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(json);
    if (text == NULL) {
        send_body(hr, 500, "application/json", "{\"error\":\"cannot encode response\"}\n", 35);
        return;
    }
    size_t n = strlen(text);
    char *withnl = realloc(text, n + 2);
    if (withnl) {
        withnl[n] = '\n';
        withnl[n + 1] = '\0';
        text = withnl;
        n++;
    }
    send_body(hr, status, "application/json", text, n);
    free(text);
}

void http_respond_text(http_request *hr, int status, const char *content_type, const char *text)
{
    send_body(hr, status, content_type, text, strlen(text));
}

const char *http_request_method(const http_request *hr) { return hr->method; }
const char *http_request_path(const http_request *hr) { return hr->path; }
const char *http_request_query(const http_request *hr) { return hr->query; }

const char *http_request_body(const http_request *hr, size_t *len)
{
    if (hr->req == NULL || hr->req->entity.base == NULL) {
        *len = 0;
        return "";
    }
    *len = hr->req->entity.len;
    return hr->req->entity.base;
}

static char *dup_iovec(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    http_api *api = ((struct api_handler *)self)->api;
    http_request *hr = calloc(1, sizeof *hr);
    if (hr == NULL)
        return -1;
    hr->api = api;
    hr->req = req;
    api->pending++;
    hr->method = dup_iovec(req->method.base, req->method.len);
    hr->path = dup_iovec(req->path_normalized.base, req->path_normalized.len);
    hr->query = req->query_at != SIZE_MAX
                    ? dup_iovec(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1)
                    : dup_iovec("", 0);
    hr->marker = h2o_mem_alloc_shared(&req->pool, sizeof *hr->marker, marker_dispose);
    hr->marker->hr = hr;
    if (hr->method == NULL || hr->path == NULL || hr->query == NULL) {
        send_body(hr, 500, "application/json", "{\"error\":\"out of memory\"}\n", 26);
        return 0;
    }
    if (api->stopping) {
        http_respond_json(hr, 503, json_pack("{s:s}", "error", "node is stopping"));
        return 0;
    }
    struct route *best = NULL;
    bool path_known = false;
    for (size_t i = 0; i < api->n_routes; i++) {
        struct route *r = &api->routes[i];
        size_t pl = strlen(r->prefix);
        bool match = strncmp(hr->path, r->prefix, pl) == 0 &&
                     (r->prefix[pl - 1] == '/' || hr->path[pl] == '\0' || hr->path[pl] == '/');
        if (!match)
            continue;
        path_known = true;
        if (strcmp(r->method, hr->method) == 0 && (best == NULL || pl > strlen(best->prefix)))
            best = r;
    }
    if (best == NULL) {
        int status = path_known ? 405 : 404;
        http_respond_json(hr, status, json_pack("{s:s, s:s}", "error",
                          status == 405 ? "method not allowed" : "not found", "path", hr->path));
        return 0;
    }
    best->h(hr, best->data);
    return 0;
}

/* h2o_uv_socket_create() takes over handle->data, so the api pointer
 * lives next to the handle. */
struct api_conn {
    uv_tcp_t tcp; /* first: the close callback gets &tcp */
    http_api *api;
};

static void conn_closed(uv_handle_t *h)
{
    struct api_conn *c = (struct api_conn *)h;
    http_api *api = c->api;
    free(c);
    api->open_conns--;
    maybe_stopped(api);
}

static void too_many_closed(uv_handle_t *h)
{
    free(h);
}

static void on_accept(uv_stream_t *listener, int status)
{
    http_api *api = listener->data;
    if (status != 0 || api->stopping)
        return;
    struct api_conn *conn = calloc(1, sizeof *conn);
    if (conn == NULL)
        return;
    conn->api = api;
    uv_tcp_init(api->loop, &conn->tcp);
    if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0) {
        uv_close((uv_handle_t *)&conn->tcp, too_many_closed);
        return;
    }
    if (api->open_conns >= api->max_connections) {
        rc_warn("http", "connection_refused reason=max_connections limit=%u", api->max_connections);
        uv_close((uv_handle_t *)&conn->tcp, too_many_closed);
        return;
    }
    api->open_conns++;
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&conn->tcp, conn_closed);
    h2o_accept(&api->accept_ctx, sock);
}

int http_api_start(http_api **out, uv_loop_t *loop, const struct http_api_config *cfg)
{
    struct sockaddr_storage ss;
    char host[64];
    const char *colon = cfg->listen ? strrchr(cfg->listen, ':') : NULL;
    if (colon == NULL || (size_t)(colon - cfg->listen) >= sizeof host)
        return HTTP_API_EADDR;
    memcpy(host, cfg->listen, (size_t)(colon - cfg->listen));
    host[colon - cfg->listen] = '\0';
    int port = atoi(colon + 1);
    if (host[0] == '[') {
        size_t hl = strlen(host);
        if (hl < 3 || host[hl - 1] != ']')
            return HTTP_API_EADDR;
        host[hl - 1] = '\0';
        if (uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)&ss) != 0)
            return HTTP_API_EADDR;
    } else if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 || port < 1 || port > 65535) {
        return HTTP_API_EADDR;
    }

    http_api *api = calloc(1, sizeof *api);
    if (api == NULL)
        return HTTP_API_ENOMEM;
    api->loop = loop;
    api->max_connections = cfg->max_connections ? cfg->max_connections : 256;
    h2o_config_init(&api->config);
    api->config.max_request_entity_size = cfg->max_body ? cfg->max_body : 1u << 20;
    api->config.http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *host_conf = h2o_config_register_host(&api->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path_conf = h2o_config_register_path(host_conf, "/", 0);
    struct api_handler *h = (struct api_handler *)h2o_create_handler(path_conf, sizeof *h);
    h->super.on_req = on_req;
    h->api = api;
    h2o_context_init(&api->ctx, loop, &api->config);
    api->accept_ctx.ctx = &api->ctx;
    api->accept_ctx.hosts = api->config.hosts;

    uv_tcp_init(loop, &api->listener);
    api->listener.data = api;
    int rv = uv_tcp_bind(&api->listener, (struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&api->listener, 128, on_accept);
    if (rv != 0) {
        rc_error("http", "listen_failed addr=%s error=%s", cfg->listen, uv_strerror(rv));
        /* The caller frees us after uv_run via stop + free; do it here. */
        api->stopping = true;
        uv_close((uv_handle_t *)&api->listener, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
        h2o_context_dispose(&api->ctx);
        h2o_config_dispose(&api->config);
        free(api);
        return HTTP_API_ELISTEN;
    }
    rc_info("http", "listening addr=%s", cfg->listen);
    *out = api;
    return HTTP_API_OK;
}

int http_api_route(http_api *api, const char *method, const char *prefix, http_handler h, void *data)
{
    if (api->n_routes == MAX_ROUTES || strlen(method) >= 8 || strlen(prefix) >= 64 || prefix[0] != '/')
        return -1;
    struct route *r = &api->routes[api->n_routes++];
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->prefix, sizeof r->prefix, "%s", prefix);
    r->h = h;
    r->data = data;
    return 0;
}

static void listener_closed(uv_handle_t *h)
{
    http_api *api = h->data;
    api->listener_closed = true;
    maybe_stopped(api);
}

void http_api_stop(http_api *api, void (*cb)(void *), void *data)
{
    if (api->stopping)
        return;
    api->stopping = true;
    api->stop_cb = cb;
    api->stop_data = data;
    uv_close((uv_handle_t *)&api->listener, listener_closed);
}

void http_api_free(http_api *api)
{
    if (api == NULL)
        return;
    h2o_context_dispose(&api->ctx);
    h2o_config_dispose(&api->config);
    free(api);
}
