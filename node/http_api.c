/* h2o glue for the node's HTTP API (see http_api.h for the contract).
 *
 * Happy path: on_accept() wraps each accepted uv_tcp_t in an h2o socket and
 * hands it to h2o's HTTP/1 layer; h2o parses the request and buffers the
 * body (bounded by max_request_entity_size), then calls on_req(), our one
 * catch-all handler at "/", which copies method/path/query into an
 * http_request and dispatches on our route table (so 404 and 405 are ours).
 * The handler answers through http_respond_*(), now or later.
 *
 * Failure modes handled here:
 *   - the client goes away before a late answer: the http_request holds a
 *     marker allocated in h2o's request pool whose dispose hook clears our
 *     pointer to the h2o request; the late answer is then dropped (in
 *     HTTP/1, h2o 2.2.5 stops reading while a handler runs, so usually it
 *     only learns of the disconnect when the answer's write fails; either way
 *     nothing touches freed memory);
 *   - errors emitted by h2o before a request reaches us (413, 400 broken
 *     chunked body, 417) are bound to the host's fallback path: a filter there
 *     replaces their text/plain body with JSON;
 *   - too many connections: accepted and closed at once (counted, logged);
 *   - stop with idle keep-alive connections: h2o 2.2.5 has no call that
 *     closes them, and closing the uv handle under h2o would free the socket
 *     while h2o's connection still points at it. shutdown(fd, SHUT_RD) makes
 *     h2o read EOF, and h2o closes the connection itself (at once when idle,
 *     after the answer when busy). */
#include "node/http_api.h"

#include <h2o.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "node/base/rc_log.h"

struct route {
    char method[HTTP_API_MAX_METHOD + 1];
    char prefix[HTTP_API_MAX_PREFIX + 1];
    size_t prefix_len;
    http_handler h;
    void *data;
};

/* One accepted connection. h2o_uv_socket_create() takes over tcp.data, so
 * the api pointer lives next to the handle. */
struct api_conn {
    uv_tcp_t tcp; /* first: the close callback gets &tcp */
    http_api *api;
    struct api_conn *prev, *next;
};

struct api_handler {
    h2o_handler_t super;
    http_api *api;
};

struct http_api {
    uv_loop_t *loop;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    bool ctx_inited;
    uv_tcp_t listener;
    int port;
    struct route routes[HTTP_API_MAX_ROUTES];
    size_t n_routes;
    struct api_conn *conns; /* open connections (list) */
    unsigned open_conns, pending, max_connections;
    uint64_t requests, refused;
    bool stopping, listener_closed, stop_called;
    void (*stop_cb)(void *);
    void *stop_data;
};

/* Lives in h2o's request pool; its dispose hook runs when h2o frees the
 * request. */
struct marker {
    http_request *hr;
};

struct http_request {
    http_api *api;
    h2o_req_t *req; /* NULL once h2o disposed it */
    struct marker *marker;
    char *method, *path, *query;
};

const char *http_api_strerror(int err)
{
    switch (err) {
    case HTTP_API_OK: return "ok";
    case HTTP_API_ENOMEM: return "out of memory";
    case HTTP_API_EADDR: return "bad listen address (expected IPv4:port or [IPv6]:port)";
    case HTTP_API_ELISTEN: return "cannot listen (address in use or not local?)";
    case HTTP_API_EINVAL: return "bad route";
    case HTTP_API_EFULL: return "route table full";
    }
    return "unknown error";
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    }
    return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
}

/* ------------------------------------------------------------- stopping */

static void maybe_stopped(http_api *api)
{
    if (!api->stopping || api->stop_called || !api->listener_closed || api->open_conns || api->pending)
        return;
    api->stop_called = true;
    rc_info("http", "stopped");
    if (api->stop_cb)
        api->stop_cb(api->stop_data);
}

static void listener_closed_cb(uv_handle_t *h)
{
    http_api *api = h->data;
    api->listener_closed = true;
    maybe_stopped(api);
}

/* Makes h2o see EOF on the connection (see the top of this file). */
static void conn_shutdown_read(struct api_conn *c)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
        (void)shutdown(fd, SHUT_RD);
}

void http_api_stop(http_api *api, void (*cb)(void *), void *data)
{
    if (api == NULL || api->stopping)
        return;
    api->stopping = true;
    api->stop_cb = cb;
    api->stop_data = data;
    /* New requests parsed from now on are not persistent. */
    api->ctx.shutdown_requested = 1;
    rc_info("http", "stopping connections=%u pending=%u", api->open_conns, api->pending);
    uv_close((uv_handle_t *)&api->listener, listener_closed_cb);
    for (struct api_conn *c = api->conns; c; c = c->next)
        conn_shutdown_read(c);
}

void http_api_free(http_api *api)
{
    if (api == NULL)
        return;
    if (api->ctx_inited)
        h2o_context_dispose(&api->ctx); /* runs the loop (NOWAIT): never from a callback */
    h2o_config_dispose(&api->config);
    free(api);
}

/* ------------------------------------------------------------- answering */

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
        m->hr->req = NULL; /* h2o freed the request before our answer */
}

static void send_body_fields(http_request *hr, int status, const char *ctype, const char *body, size_t len,
                             const char *const *fields)
{
    h2o_req_t *req = hr->req;
    if (req != NULL) {
        hr->marker->hr = NULL; /* from here h2o owns the request alone */
        req->res.status = status;
        req->res.reason = reason_phrase(status);
        req->res.content_length = len;
        if (hr->api->stopping)
            req->http1_is_persistent = 0;
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype, strlen(ctype));
        /* h2o keeps pointers to header names and values: copies in the
         * request's pool outlive the caller's buffers */
        for (size_t i = 0; fields && fields[i] && fields[i + 1]; i += 2) {
            h2o_iovec_t name = h2o_strdup(&req->pool, fields[i], strlen(fields[i]));
            h2o_iovec_t value = h2o_strdup(&req->pool, fields[i + 1], strlen(fields[i + 1]));
            h2o_add_header_by_str(&req->pool, &req->res.headers, name.base, name.len, 1, NULL, value.base, value.len);
        }
        /* h2o_send_inline copies the body into the request's pool. */
        h2o_send_inline(req, body, len);
    } else {
        rc_debug("http", "answer_dropped reason=client_gone status=%d", status);
    }
    request_free(hr);
}

static void send_body(http_request *hr, int status, const char *ctype, const char *body, size_t len,
                      const char *allow)
{
    const char *const fields[] = {"allow", allow, NULL};
    send_body_fields(hr, status, ctype, body, len, allow ? fields : NULL);
}

void http_respond_bytes(http_request *hr, int status, const char *content_type, const void *body, size_t len,
                        const char *const *fields)
{
    send_body_fields(hr, status, content_type, body, len, fields);
}

static void respond_json_allow(http_request *hr, int status, json_t *json, const char *allow)
{
    char *text = json ? json_dumps(json, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(json);
    if (text == NULL) {
        static const char oom[] = "{\"error\":\"cannot encode the answer\"}\n";
        send_body(hr, 500, "application/json", oom, sizeof oom - 1, NULL);
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
    send_body(hr, status, "application/json", text, n, allow);
    free(text);
}

void http_respond_json(http_request *hr, int status, json_t *json)
{
    respond_json_allow(hr, status, json, NULL);
}

void http_respond_text(http_request *hr, int status, const char *content_type, const char *text)
{
    send_body(hr, status, content_type, text, strlen(text), NULL);
}

void http_respond_error(http_request *hr, int status, const char *message)
{
    http_respond_json(hr, status, json_pack("{s:s}", "error", message));
}

const char *http_request_method(const http_request *hr) { return hr->method; }
const char *http_request_path(const http_request *hr) { return hr->path; }
const char *http_request_query(const http_request *hr) { return hr->query; }
int http_request_alive(const http_request *hr) { return hr->req != NULL; }

const char *http_request_body(const http_request *hr, size_t *len)
{
    if (hr->req == NULL || hr->req->entity.base == NULL) {
        *len = 0;
        return "";
    }
    *len = hr->req->entity.len;
    return hr->req->entity.base;
}

/* -------------------------------------------------------------- routing */

static char *dup_iovec(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static bool route_matches(const struct route *r, const char *path)
{
    if (strncmp(path, r->prefix, r->prefix_len) != 0)
        return false;
    char next = path[r->prefix_len];
    return r->prefix[r->prefix_len - 1] == '/' || next == '\0' || next == '/';
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    http_api *api = ((struct api_handler *)self)->api;
    http_request *hr = calloc(1, sizeof *hr);
    if (hr == NULL) {
        h2o_send_error_generic(req, 503, "Service Unavailable", "out of memory", H2O_SEND_ERROR_HTTP1_CLOSE_CONNECTION);
        return 0;
    }
    hr->api = api;
    hr->req = req;
    api->pending++;
    api->requests++;
    hr->marker = h2o_mem_alloc_shared(&req->pool, sizeof *hr->marker, marker_dispose);
    hr->marker->hr = hr;
    hr->method = dup_iovec(req->method.base, req->method.len);
    hr->path = dup_iovec(req->path_normalized.base, req->path_normalized.len);
    hr->query = req->query_at != SIZE_MAX
                    ? dup_iovec(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1)
                    : dup_iovec("", 0);
    if (hr->method == NULL || hr->path == NULL || hr->query == NULL) {
        static const char oom[] = "{\"error\":\"out of memory\"}\n";
        send_body(hr, 503, "application/json", oom, sizeof oom - 1, NULL);
        return 0;
    }
    if (api->stopping) {
        http_respond_error(hr, 503, "node is stopping");
        return 0;
    }
    if (memchr(req->path_normalized.base, '\0', req->path_normalized.len) != NULL) {
        http_respond_error(hr, 400, "NUL byte in the path");
        return 0;
    }
    const struct route *best = NULL;
    char allow[128] = "";
    size_t allow_len = 0;
    size_t known_len = 0; /* longest prefix matching the path, any method */
    for (size_t i = 0; i < api->n_routes; i++)
        if (route_matches(&api->routes[i], hr->path) && api->routes[i].prefix_len > known_len)
            known_len = api->routes[i].prefix_len;
    for (size_t i = 0; i < api->n_routes; i++) {
        const struct route *r = &api->routes[i];
        if (!route_matches(r, hr->path))
            continue;
        if (strcmp(r->method, hr->method) == 0 && (best == NULL || r->prefix_len > best->prefix_len))
            best = r;
        /* Allow lists the methods of the most specific matching routes. */
        if (r->prefix_len == known_len && strstr(allow, r->method) == NULL) {
            int n = snprintf(allow + allow_len, sizeof allow - allow_len, "%s%s", allow_len ? ", " : "", r->method);
            if (n > 0 && (size_t)n < sizeof allow - allow_len)
                allow_len += (size_t)n;
        }
    }
    if (best == NULL) {
        if (known_len == 0) {
            http_respond_json(hr, 404, json_pack("{s:s, s:s}", "error", "not found", "path", hr->path));
        } else {
            respond_json_allow(hr, 405, json_pack("{s:s, s:s, s:s}", "error", "method not allowed",
                               "method", hr->method, "allow", allow), allow);
        }
        return 0;
    }
    best->h(hr, best->data);
    return 0;
}

int http_api_route(http_api *api, const char *method, const char *prefix, http_handler h, void *data)
{
    size_t ml = strlen(method), pl = strlen(prefix);
    if (ml == 0 || ml > HTTP_API_MAX_METHOD || pl == 0 || pl > HTTP_API_MAX_PREFIX || prefix[0] != '/' || h == NULL)
        return HTTP_API_EINVAL;
    if (api->n_routes == HTTP_API_MAX_ROUTES)
        return HTTP_API_EFULL;
    struct route *r = &api->routes[api->n_routes++];
    memcpy(r->method, method, ml + 1);
    memcpy(r->prefix, prefix, pl + 1);
    r->prefix_len = pl;
    r->h = h;
    r->data = data;
    return HTTP_API_OK;
}

/* ------------------------------------------- JSON bodies for h2o's errors */

struct json_error_ostream {
    h2o_ostream_t super;
    h2o_iovec_t body;
    bool sent;
};

static void json_error_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                               h2o_send_state_t state)
{
    struct json_error_ostream *o = (struct json_error_ostream *)self;
    (void)bufs;
    (void)bufcnt;
    if (!o->sent && (state != H2O_SEND_STATE_IN_PROGRESS || bufcnt)) {
        o->sent = true;
        h2o_ostream_send_next(&o->super, req, &o->body, 1, state);
    } else {
        h2o_ostream_send_next(&o->super, req, NULL, 0, state);
    }
}

/* Runs for responses bound to the fallback path: h2o's own errors. */
static void json_error_setup(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    if (req->res.status >= 400) {
        const char *msg = req->res.status == 413 ? "request entity is too large"
                          : req->res.status == 400 ? "bad request"
                          : req->res.status == 404 ? "not found"
                          : req->res.status == 417 ? "expectation failed"
                                                   : "error";
        char buf[128];
        int n = snprintf(buf, sizeof buf, "{\"error\":\"%s\",\"status\":%d}\n", msg, req->res.status);
        if (n > 0 && (size_t)n < sizeof buf) {
            struct json_error_ostream *o = (struct json_error_ostream *)h2o_add_ostream(req, sizeof *o, slot);
            o->super.do_send = json_error_do_send;
            o->body = h2o_strdup(&req->pool, buf, (size_t)n);
            o->sent = false;
            req->res.content_length = (size_t)n;
            h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, H2O_STRLIT("application/json"), 1);
            slot = &o->super.next;
        }
    }
    h2o_setup_next_ostream(req, slot);
}

/* ---------------------------------------------------------- connections */

static void conn_closed(uv_handle_t *h)
{
    struct api_conn *c = (struct api_conn *)h;
    http_api *api = c->api;
    if (c->prev)
        c->prev->next = c->next;
    else
        api->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
    api->open_conns--;
    maybe_stopped(api);
}

static void free_handle_cb(uv_handle_t *h)
{
    free(h);
}

static void on_accept(uv_stream_t *listener, int status)
{
    http_api *api = listener->data;
    if (status != 0) {
        rc_warn("http", "accept_failed error=%s", uv_strerror(status));
        return;
    }
    if (api->stopping)
        return;
    struct api_conn *conn = calloc(1, sizeof *conn);
    if (conn == NULL)
        return;
    conn->api = api;
    uv_tcp_init(api->loop, &conn->tcp);
    if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0) {
        uv_close((uv_handle_t *)&conn->tcp, free_handle_cb);
        return;
    }
    if (api->open_conns >= api->max_connections) {
        api->refused++;
        rc_warn("http", "connection_refused reason=max_connections limit=%u", api->max_connections);
        uv_close((uv_handle_t *)&conn->tcp, free_handle_cb);
        return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    api->open_conns++;
    conn->next = api->conns;
    if (api->conns)
        api->conns->prev = conn;
    api->conns = conn;
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&conn->tcp, conn_closed);
    h2o_accept(&api->accept_ctx, sock);
}

/* ---------------------------------------------------------------- start */

static int parse_listen(const char *listen, struct sockaddr_storage *ss)
{
    char host[64];
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    if (colon == NULL || colon == listen || (size_t)(colon - listen) >= sizeof host)
        return HTTP_API_EADDR;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535)
        return HTTP_API_EADDR;
    memset(ss, 0, sizeof *ss);
    if (host[0] == '[') {
        size_t hl = strlen(host);
        if (hl < 3 || host[hl - 1] != ']')
            return HTTP_API_EADDR;
        host[hl - 1] = '\0';
        if (uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss) != 0)
            return HTTP_API_EADDR;
    } else if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) != 0) {
        return HTTP_API_EADDR;
    }
    return HTTP_API_OK;
}

struct handle_set {
    uv_handle_t **h;
    size_t n, cap;
    bool failed;
};

static void collect_handle(uv_handle_t *h, void *arg)
{
    struct handle_set *s = arg;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        uv_handle_t **nh = realloc(s->h, cap * sizeof *nh);
        if (nh == NULL) {
            s->failed = true;
            return;
        }
        s->h = nh;
        s->cap = cap;
    }
    s->h[s->n++] = h;
}

static void unref_new_handle(uv_handle_t *h, void *arg)
{
    struct handle_set *before = arg;
    if (before->failed)
        return; /* cannot tell ours from the caller's: leave all referenced */
    for (size_t i = 0; i < before->n; i++)
        if (before->h[i] == h)
            return;
    uv_unref(h);
}

static void failed_listener_closed(uv_handle_t *h)
{
    http_api_free(h->data); /* no h2o context yet: nothing runs the loop */
}

int http_api_start(http_api **out, uv_loop_t *loop, const struct http_api_config *cfg)
{
    struct sockaddr_storage ss;
    int rv = parse_listen(cfg->listen, &ss);
    if (rv != HTTP_API_OK) {
        rc_error("http", "bad_listen_address addr=%s", cfg->listen ? cfg->listen : "(none)");
        return rv;
    }
    http_api *api = calloc(1, sizeof *api);
    if (api == NULL)
        return HTTP_API_ENOMEM;
    api->loop = loop;
    api->max_connections = cfg->max_connections ? cfg->max_connections : HTTP_API_DEFAULT_MAX_CONNECTIONS;
    h2o_config_init(&api->config);
    api->config.max_request_entity_size = cfg->max_body ? cfg->max_body : HTTP_API_DEFAULT_MAX_BODY;
    api->config.http1.upgrade_to_http2 = 0;
    api->config.http1.req_timeout = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : HTTP_API_DEFAULT_IDLE_TIMEOUT_MS;
    api->config.server_name = h2o_iovec_init(H2O_STRLIT("ricochet"));

    /* Listen first: a failure then needs no h2o context. */
    uv_tcp_init(loop, &api->listener);
    api->listener.data = api;
    rv = uv_tcp_bind(&api->listener, (struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&api->listener, 128, on_accept);
    if (rv != 0) {
        rc_error("http", "listen_failed addr=%s error=%s", cfg->listen, uv_strerror(rv));
        /* api is freed in the close callback, the next time the loop runs. */
        uv_close((uv_handle_t *)&api->listener, failed_listener_closed);
        return HTTP_API_ELISTEN;
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    if (uv_tcp_getsockname(&api->listener, (struct sockaddr *)&bound, &blen) == 0)
        api->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                      : ((struct sockaddr_in *)&bound)->sin_port);

    h2o_hostconf_t *host_conf = h2o_config_register_host(&api->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path_conf = h2o_config_register_path(host_conf, "/", 0);
    struct api_handler *h = (struct api_handler *)h2o_create_handler(path_conf, sizeof *h);
    h->super.on_req = on_req;
    h->api = api;
    h2o_filter_t *f = h2o_create_filter(&host_conf->fallback_path, sizeof *f);
    f->on_setup_ostream = json_error_setup;

    /* h2o's context adds loop handles (timers, a cross-thread queue) that
     * would keep uv_run() going forever: unreference the new ones. */
    struct handle_set before = {0};
    uv_walk(loop, collect_handle, &before);
    h2o_context_init(&api->ctx, loop, &api->config);
    uv_walk(loop, unref_new_handle, &before);
    free(before.h);
    api->ctx_inited = true;
    api->accept_ctx.ctx = &api->ctx;
    api->accept_ctx.hosts = api->config.hosts;

    rc_info("http", "listening addr=%s port=%d max_body=%zu max_connections=%u idle_timeout_ms=%" PRIu64,
            cfg->listen, api->port, api->config.max_request_entity_size, api->max_connections,
            api->config.http1.req_timeout);
    *out = api;
    return HTTP_API_OK;
}

int http_api_port(const http_api *api)
{
    return api->port;
}

void http_api_get_stats(const http_api *api, struct http_api_stats *st)
{
    st->connections = api->open_conns;
    st->pending = api->pending;
    st->requests = api->requests;
    st->refused_connections = api->refused;
}
