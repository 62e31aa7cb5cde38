/* node/http_api.c on a real libuv loop (in a thread) with libcurl and raw
 * sockets as clients on 127.0.0.41 (port chosen by the kernel).
 *
 * Every test ends with the graceful stop (teardown): POST /t/stop, then the
 * server thread's uv_run() must return by itself, the stop callback must
 * have run, http_api_free() must release h2o, and uv_loop_close() must find
 * no handle left open. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/http_api.h"

#define HOST "127.0.0.41"
#define MAX_HELD 8

struct server {
    uv_loop_t loop;
    http_api *api;
    uv_async_t release_async; /* main thread -> loop: answer held requests */
    int port;
    /* loop thread only */
    http_request *held[MAX_HELD];
    int n_held;
    /* shared */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int held_total;    /* requests ever held */
    int stop_requested; /* set before /t/stop answers */
    int stop_cb_calls;
    int run_returned;
};

static struct server *S;

/* ------------------------------------------------------------ handlers */

static void h_echo(http_request *req, void *data)
{
    (void)data;
    size_t len;
    const char *body = http_request_body(req, &len);
    http_respond_json(req, 200, json_pack("{s:s, s:s, s:s, s:s%, s:I}", "method", http_request_method(req),
                      "path", http_request_path(req), "query", http_request_query(req), "body", body, len,
                      "body_len", (json_int_t)len));
}

static void h_text(http_request *req, void *data)
{
    (void)data;
    http_respond_text(req, 200, "text/plain; version=0.0.4", "metric 1\n");
}

static void h_deeper(http_request *req, void *data)
{
    (void)data;
    http_respond_json(req, 200, json_pack("{s:s}", "route", "deeper"));
}

static void h_hold(http_request *req, void *data)
{
    struct server *s = data;
    if (s->n_held == MAX_HELD) {
        http_respond_error(req, 503, "too many held");
        return;
    }
    s->held[s->n_held++] = req;
    pthread_mutex_lock(&s->mu);
    s->held_total++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int release_all(struct server *s)
{
    int n = s->n_held;
    for (int i = 0; i < n; i++)
        http_respond_json(s->held[i], 200, json_pack("{s:b}", "released", 1));
    s->n_held = 0;
    return n;
}

static void h_release(http_request *req, void *data)
{
    int n = release_all(data);
    http_respond_json(req, 200, json_pack("{s:i}", "released", n));
}

static void h_stats(http_request *req, void *data)
{
    struct server *s = data;
    struct http_api_stats st;
    http_api_get_stats(s->api, &st);
    http_respond_json(req, 200, json_pack("{s:i, s:i, s:I, s:I}", "connections", (int)st.connections,
                      "pending", (int)st.pending, "requests", (json_int_t)st.requests,
                      "refused", (json_int_t)st.refused_connections));
}

static void release_async_cb(uv_async_t *a)
{
    release_all(a->data);
}

static void stopped_cb(void *data)
{
    struct server *s = data;
    pthread_mutex_lock(&s->mu);
    s->stop_cb_calls++;
    pthread_mutex_unlock(&s->mu);
    uv_close((uv_handle_t *)&s->release_async, NULL);
}

static void h_stop(http_request *req, void *data)
{
    struct server *s = data;
    pthread_mutex_lock(&s->mu);
    s->stop_requested = 1;
    pthread_mutex_unlock(&s->mu);
    http_respond_json(req, 200, json_pack("{s:b}", "stopping", 1));
    http_api_stop(s->api, stopped_cb, s);
}

/* One loop thread for the whole program, parked between tests and never
 * joined: h2o keeps recycled memory in thread-local free lists, which
 * LeakSanitizer sees as reachable only while their thread lives. */
static pthread_mutex_t worker_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t worker_cv = PTHREAD_COND_INITIALIZER;
static struct server *worker_job;

static void *worker_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&worker_mu);
        while (worker_job == NULL)
            pthread_cond_wait(&worker_cv, &worker_mu);
        struct server *s = worker_job;
        worker_job = NULL;
        pthread_mutex_unlock(&worker_mu);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        pthread_mutex_lock(&s->mu);
        s->run_returned = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

static int server_up(void **state, const struct http_api_config *extra)
{
    struct server *s = calloc(1, sizeof *s);
    assert_non_null(s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    assert_int_equal(uv_loop_init(&s->loop), 0);
    struct http_api_config cfg = {.listen = HOST ":0", .max_body = 4096};
    if (extra) {
        cfg.max_connections = extra->max_connections;
        cfg.idle_timeout_ms = extra->idle_timeout_ms;
    }
    assert_int_equal(http_api_start(&s->api, &s->loop, &cfg), HTTP_API_OK);
    s->port = http_api_port(s->api);
    assert_true(s->port > 0);
    assert_int_equal(http_api_route(s->api, "GET", "/v1/echo", h_echo, s), 0);
    assert_int_equal(http_api_route(s->api, "POST", "/v1/echo", h_echo, s), 0);
    assert_int_equal(http_api_route(s->api, "GET", "/v1/items/", h_echo, s), 0);
    assert_int_equal(http_api_route(s->api, "GET", "/v1/items/special", h_deeper, s), 0);
    assert_int_equal(http_api_route(s->api, "GET", "/metrics", h_text, s), 0);
    assert_int_equal(http_api_route(s->api, "GET", "/t/hold", h_hold, s), 0);
    assert_int_equal(http_api_route(s->api, "POST", "/t/release", h_release, s), 0);
    assert_int_equal(http_api_route(s->api, "GET", "/t/stats", h_stats, s), 0);
    assert_int_equal(http_api_route(s->api, "POST", "/t/stop", h_stop, s), 0);
    uv_async_init(&s->loop, &s->release_async, release_async_cb);
    s->release_async.data = s;
    pthread_mutex_lock(&worker_mu);
    worker_job = s;
    pthread_cond_signal(&worker_cv);
    pthread_mutex_unlock(&worker_mu);
    S = s;
    *state = s;
    return 0;
}

static int setup(void **state) { return server_up(state, NULL); }

/* ------------------------------------------------------- client helpers */

struct reply {
    long status;
    char body[65536];
    size_t len;
    char ctype[128];
    char allow[256];
    char connection[256];
    curl_off_t content_length;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct reply *r = ud;
    size_t len = sz * n;
    if (r->len + len >= sizeof r->body)
        return 0;
    memcpy(r->body + r->len, p, len);
    r->len += len;
    r->body[r->len] = '\0';
    return len;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct reply *r = ud;
    size_t len = sz * n;
    char line[256];
    snprintf(line, sizeof line, "%.*s", (int)len, p);
    line[strcspn(line, "\r\n")] = '\0';
    if (strncasecmp(line, "allow: ", 7) == 0)
        snprintf(r->allow, sizeof r->allow, "%s", line + 7);
    if (strncasecmp(line, "connection: ", 12) == 0)
        snprintf(r->connection, sizeof r->connection, "%s", line + 12);
    return len;
}

/* Performs one request on a fresh connection; returns the curl code. */
static CURLcode http(const char *method, const char *path, const char *body, size_t body_len, bool chunked,
                     struct reply *r)
{
    memset(r, 0, sizeof *r);
    char url[256];
    snprintf(url, sizeof url, "http://%s:%d%s", HOST, S->port, path);
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        if (chunked) {
            hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
            curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        } else {
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        }
    }
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
        char *ct = NULL;
        curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
        snprintf(r->ctype, sizeof r->ctype, "%s", ct ? ct : "");
        curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &r->content_length);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return rc;
}

static json_t *reply_json(const struct reply *r)
{
    json_error_t err;
    json_t *j = json_loadb(r->body, r->len, 0, &err);
    if (j == NULL)
        fail_msg("not JSON: %.*s (%s)", (int)r->len, r->body, err.text);
    return j;
}

static const char *jstr(json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : "(missing)";
}

static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 60}; /* a guard against hanging forever, not a check */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S->port)};
    inet_pton(AF_INET, HOST, &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void raw_send(int fd, const char *s)
{
    size_t len = strlen(s);
    assert_int_equal(send(fd, s, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Reads one response with a Content-Length; returns its status, copies the
 * header block into hdrs and the body into body. */
static int raw_response(int fd, char *hdrs, size_t hcap, char *body, size_t bcap)
{
    char buf[16384];
    size_t n = 0;
    char *end = NULL;
    while ((end = memmem(buf, n, "\r\n\r\n", 4)) == NULL) {
        ssize_t k = recv(fd, buf + n, sizeof buf - n - 1, 0);
        if (k <= 0)
            fail_msg("connection ended before a response (%zd, %s)", k, strerror(errno));
        n += (size_t)k;
    }
    size_t hlen = (size_t)(end - buf) + 4;
    snprintf(hdrs, hcap, "%.*s", (int)hlen, buf);
    const char *cl = strcasestr(hdrs, "content-length:");
    assert_non_null(cl);
    size_t blen = strtoul(cl + 15, NULL, 10);
    assert_true(blen < bcap && hlen + blen < sizeof buf);
    while (n < hlen + blen) {
        ssize_t k = recv(fd, buf + n, sizeof buf - n - 1, 0);
        if (k <= 0)
            fail_msg("connection ended inside a body");
        n += (size_t)k;
    }
    memcpy(body, buf + hlen, blen);
    body[blen] = '\0';
    int status = 0;
    sscanf(hdrs, "HTTP/1.%*d %d", &status);
    return status;
}

/* 0 when the peer closed the connection (EOF or reset). */
static int raw_wait_closed(int fd)
{
    char c;
    ssize_t k = recv(fd, &c, 1, 0);
    if (k == 0 || (k < 0 && errno == ECONNRESET))
        return 0;
    return -1;
}

static void wait_held(int total)
{
    pthread_mutex_lock(&S->mu);
    while (S->held_total < total)
        pthread_cond_wait(&S->cv, &S->mu);
    pthread_mutex_unlock(&S->mu);
}

static json_t *stats(void)
{
    struct reply r;
    assert_int_equal(http("GET", "/t/stats", NULL, 0, false, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    return reply_json(&r);
}

/* NULL when the server refused the connection (max_connections). */
static json_t *stats_try(void)
{
    struct reply r;
    if (http("GET", "/t/stats", NULL, 0, false, &r) != CURLE_OK)
        return NULL;
    assert_int_equal(r.status, 200);
    return reply_json(&r);
}

/* Waits until the server has only the stats request itself open. */
static void wait_quiet(void)
{
    for (;;) {
        json_t *st = stats_try();
        if (st == NULL) {
            usleep(1000);
            continue;
        }
        json_int_t conns = json_integer_value(json_object_get(st, "connections"));
        json_int_t pending = json_integer_value(json_object_get(st, "pending"));
        json_decref(st);
        if (conns == 1 && pending == 1)
            return;
        usleep(1000);
    }
}

static int teardown(void **state)
{
    struct server *s = *state;
    struct reply r;
    /* The stop request itself may race with nothing else: all tests have
     * closed or released what they opened (or closed the api themselves). */
    pthread_mutex_lock(&s->mu);
    int stopped = s->stop_requested;
    pthread_mutex_unlock(&s->mu);
    if (!stopped) {
        assert_int_equal(http("POST", "/t/stop", "", 0, false, &r), CURLE_OK);
        assert_int_equal(r.status, 200);
    }
    pthread_mutex_lock(&s->mu);
    while (!s->run_returned) /* uv_run returns by itself after the stop */
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    assert_int_equal(s->stop_cb_calls, 1);
    http_api_free(s->api);                          /* after uv_run returned */
    assert_int_equal(uv_loop_close(&s->loop), 0);   /* no handle left behind */
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    S = NULL;
    return 0;
}

/* ---------------------------------------------------------------- tests */

static void test_routes(void **state)
{
    (void)state;
    struct reply r;
    assert_int_equal(http("GET", "/v1/echo?x=1&y=a%20b", NULL, 0, false, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "application/json");
    assert_int_equal(r.content_length, (curl_off_t)r.len); /* Content-Length, not chunked */
    json_t *j = reply_json(&r);
    assert_string_equal(jstr(j, "method"), "GET");
    assert_string_equal(jstr(j, "path"), "/v1/echo");
    assert_string_equal(jstr(j, "query"), "x=1&y=a%20b");
    json_decref(j);

    /* a prefix with a trailing slash matches below it; %xx is decoded */
    assert_int_equal(http("GET", "/v1/items/a%40b.example", NULL, 0, false, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    j = reply_json(&r);
    assert_string_equal(jstr(j, "path"), "/v1/items/a@b.example");
    json_decref(j);

    /* the longest prefix wins */
    assert_int_equal(http("GET", "/v1/items/special", NULL, 0, false, &r), CURLE_OK);
    j = reply_json(&r);
    assert_string_equal(jstr(j, "route"), "deeper");
    json_decref(j);

    /* "/v1/echo" matches "/v1/echo/x" (segment boundary) but not "/v1/echoes" */
    assert_int_equal(http("GET", "/v1/echo/x", NULL, 0, false, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(http("GET", "/v1/echoes", NULL, 0, false, &r), CURLE_OK);
    assert_int_equal(r.status, 404);

    /* POST body reaches the handler */
    assert_int_equal(http("POST", "/v1/echo", "{\"to\":3}", 8, false, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    j = reply_json(&r);
    assert_string_equal(jstr(j, "method"), "POST");
    assert_string_equal(jstr(j, "body"), "{\"to\":3}");
    json_decref(j);

    /* text answers keep their content type */
    assert_int_equal(http("GET", "/metrics", NULL, 0, false, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "text/plain; version=0.0.4");
    assert_string_equal(r.body, "metric 1\n");
}

static void test_404_405(void **state)
{
    (void)state;
    struct reply r;
    assert_int_equal(http("GET", "/nope", NULL, 0, false, &r), CURLE_OK);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.ctype, "application/json");
    json_t *j = reply_json(&r);
    assert_string_equal(jstr(j, "error"), "not found");
    assert_string_equal(jstr(j, "path"), "/nope");
    json_decref(j);

    assert_int_equal(http("DELETE", "/v1/echo", NULL, 0, false, &r), CURLE_OK);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET, POST");
    j = reply_json(&r);
    assert_string_equal(jstr(j, "error"), "method not allowed");
    json_decref(j);

    assert_int_equal(http("PUT", "/v1/items/x", "x", 1, false, &r), CURLE_OK);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET");
}

static void test_413(void **state)
{
    (void)state;
    struct reply r;
    char *big = malloc(8192);
    memset(big, 'a', 8192);
    /* exactly max_body (4096) is accepted */
    assert_int_equal(http("POST", "/v1/echo", big, 4096, false, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    json_t *j = reply_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "body_len")), 4096);
    json_decref(j);

    /* one more byte: 413 with a JSON body, from h2o before any handler */
    assert_int_equal(http("POST", "/v1/echo", big, 4097, false, &r), CURLE_OK);
    assert_int_equal(r.status, 413);
    assert_string_equal(r.ctype, "application/json");
    j = reply_json(&r);
    assert_string_equal(jstr(j, "error"), "request entity is too large");
    json_decref(j);

    /* chunked bodies are bounded too */
    big[8191] = '\0';
    assert_int_equal(http("POST", "/v1/echo", big, 0, true, &r), CURLE_OK);
    assert_int_equal(r.status, 413);
    j = reply_json(&r);
    assert_string_equal(jstr(j, "error"), "request entity is too large");
    json_decref(j);
    free(big);
    wait_quiet();
}

static void test_async_answer(void **state)
{
    (void)state;
    int fd = raw_connect();
    raw_send(fd, "GET /t/hold HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_held(1);
    json_t *st = stats();
    assert_int_equal(json_integer_value(json_object_get(st, "pending")), 2); /* hold + stats */
    json_decref(st);
    struct reply r;
    assert_int_equal(http("POST", "/t/release", "", 0, false, &r), CURLE_OK);
    json_t *j = reply_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "released")), 1);
    json_decref(j);
    char hdrs[4096], body[4096];
    assert_int_equal(raw_response(fd, hdrs, sizeof hdrs, body, sizeof body), 200);
    assert_string_equal(body, "{\"released\":true}\n");
    /* keep-alive: a second request on the same connection works */
    raw_send(fd, "GET /v1/echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(raw_response(fd, hdrs, sizeof hdrs, body, sizeof body), 200);
    close(fd);
    wait_quiet();
}

static void test_late_answer_after_disconnect(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++) {
        int fd = raw_connect();
        raw_send(fd, "GET /t/hold HTTP/1.1\r\nHost: x\r\n\r\n");
        wait_held(i + 1);
        if (i == 2) { /* abortive close: RST instead of FIN */
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(fd);
        /* answer after the client is gone: dropped, no use after free */
        struct reply r;
        assert_int_equal(http("POST", "/t/release", "", 0, false, &r), CURLE_OK);
        json_t *j = reply_json(&r);
        assert_int_equal(json_integer_value(json_object_get(j, "released")), 1);
        json_decref(j);
        wait_quiet(); /* the dead connection is closed and nothing is pending */
    }
}

static void test_stop_with_keepalive_and_pending(void **state)
{
    (void)state;
    char hdrs[4096], body[4096];
    /* A: idle keep-alive connection after one answered request */
    int a = raw_connect();
    raw_send(a, "GET /v1/echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(raw_response(a, hdrs, sizeof hdrs, body, sizeof body), 200);
    assert_null(strcasestr(hdrs, "connection: close"));
    /* B: a request held by its handler */
    int b = raw_connect();
    raw_send(b, "GET /t/hold HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_held(1);

    struct reply r;
    assert_int_equal(http("POST", "/t/stop", "", 0, false, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    /* the idle keep-alive connection is closed by the server */
    assert_int_equal(raw_wait_closed(a), 0);
    close(a);
    /* stop waits for the pending request */
    pthread_mutex_lock(&S->mu);
    assert_int_equal(S->stop_cb_calls, 0);
    pthread_mutex_unlock(&S->mu);
    /* no new connections */
    struct reply r2;
    assert_int_not_equal(http("GET", "/v1/echo", NULL, 0, false, &r2), CURLE_OK);

    uv_async_send(&S->release_async);
    assert_int_equal(raw_response(b, hdrs, sizeof hdrs, body, sizeof body), 200);
    assert_string_equal(body, "{\"released\":true}\n");
    assert_non_null(strcasestr(hdrs, "connection: close"));
    assert_int_equal(raw_wait_closed(b), 0);
    close(b);
    /* teardown checks that uv_run returned and the stop callback ran once */
}

static int setup_two_conns(void **state)
{
    struct http_api_config c = {.max_connections = 2};
    return server_up(state, &c);
}

static void test_max_connections(void **state)
{
    (void)state;
    char hdrs[4096], body[4096];
    int a = raw_connect();
    raw_send(a, "GET /v1/echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(raw_response(a, hdrs, sizeof hdrs, body, sizeof body), 200);
    int b = raw_connect();
    raw_send(b, "GET /v1/echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(raw_response(b, hdrs, sizeof hdrs, body, sizeof body), 200);
    /* a third is accepted and closed at once */
    int c = raw_connect();
    assert_int_equal(raw_wait_closed(c), 0);
    close(c);
    /* b still works */
    raw_send(b, "GET /t/stats HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(raw_response(b, hdrs, sizeof hdrs, body, sizeof body), 200);
    json_t *st = json_loads(body, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(st, "refused")), 1);
    assert_int_equal(json_integer_value(json_object_get(st, "connections")), 2);
    json_decref(st);
    close(a);
    close(b);
    wait_quiet(); /* a new connection is served once the others closed */
}

static int setup_short_idle(void **state)
{
    struct http_api_config c = {.idle_timeout_ms = 50};
    return server_up(state, &c);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    char hdrs[4096], body[4096];
    int a = raw_connect();
    raw_send(a, "GET /v1/echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(raw_response(a, hdrs, sizeof hdrs, body, sizeof body), 200);
    assert_int_equal(raw_wait_closed(a), 0); /* the server closes the idle connection */
    close(a);
    /* a client that never finishes its request is cut too */
    int b = raw_connect();
    raw_send(b, "GET /v1/echo HTTP/1.1\r\nHost:");
    assert_int_equal(raw_wait_closed(b), 0);
    close(b);
    wait_quiet();
}

static void test_hostile_requests(void **state)
{
    (void)state;
    char hdrs[4096], body[4096];
    static const char *bad[] = {
        "BLAH\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        "POST /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: 200-ok\r\n\r\n",
        "GET /v1/items/a%00b HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /v1/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = raw_connect();
        raw_send(fd, bad[i]);
        char buf[4096];
        ssize_t k = recv(fd, buf, sizeof buf - 1, 0);
        if (k > 0) { /* an answer, never a 200 with our data for these */
            buf[k] = '\0';
            int status = 0;
            sscanf(buf, "HTTP/1.%*d %d", &status);
            assert_true(status >= 400 || (i == 7 && status == 404));
        }
        close(fd);
    }
    /* a header block over h2o's limit */
    int fd = raw_connect();
    raw_send(fd, "GET /v1/echo HTTP/1.1\r\n");
    char line[1024];
    memset(line, 'a', sizeof line);
    memcpy(line, "X-Pad: ", 7);
    line[sizeof line - 2] = '\r';
    line[sizeof line - 1] = '\n';
    int status = -1;
    for (int i = 0; i < 600; i++)
        if (send(fd, line, sizeof line, MSG_NOSIGNAL) < 0)
            break;
    char buf[256];
    ssize_t k = recv(fd, buf, sizeof buf - 1, 0);
    if (k > 0) {
        buf[k] = '\0';
        sscanf(buf, "HTTP/1.%*d %d", &status);
        assert_int_equal(status, 400);
    }
    close(fd);
    /* still serving */
    int ok = raw_connect();
    raw_send(ok, "GET /v1/echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(raw_response(ok, hdrs, sizeof hdrs, body, sizeof body), 200);
    close(ok);
    wait_quiet();
}

/* Start and route errors, without a server thread. */
static void test_start_errors(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_api *api = NULL;
    static const char *bad[] = {"", "127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:99999", "localhost:80",
                                "127.0.0.1:80x", "[::1:80", "300.1.1.1:80", NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct http_api_config c = {.listen = bad[i]};
        assert_int_equal(http_api_start(&api, &loop, &c), HTTP_API_EADDR);
    }
    struct http_api_config c = {.listen = HOST ":0"};
    assert_int_equal(http_api_start(&api, &loop, &c), HTTP_API_OK);
    char taken[64];
    snprintf(taken, sizeof taken, HOST ":%d", http_api_port(api));
    http_api *second = NULL;
    struct http_api_config c2 = {.listen = taken};
    assert_int_equal(http_api_start(&second, &loop, &c2), HTTP_API_ELISTEN);
    assert_null(second);

    assert_int_equal(http_api_route(api, "", "/x", h_echo, NULL), HTTP_API_EINVAL);
    assert_int_equal(http_api_route(api, "GET", "x", h_echo, NULL), HTTP_API_EINVAL);
    assert_int_equal(http_api_route(api, "GETTINGTOOLONGMETHOD", "/x", h_echo, NULL), HTTP_API_EINVAL);
    assert_int_equal(http_api_route(api, "GET", "/x", NULL, NULL), HTTP_API_EINVAL);
    int rv = 0, n = 0;
    while ((rv = http_api_route(api, "GET", "/x", h_echo, NULL)) == HTTP_API_OK)
        n++;
    assert_int_equal(rv, HTTP_API_EFULL);
    assert_int_equal(n, HTTP_API_MAX_ROUTES);

    http_api_stop(api, NULL, NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0); /* returns by itself */
    http_api_free(api);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_string_equal(http_api_strerror(HTTP_API_EADDR),
                        "bad listen address (expected IPv4:port or [IPv6]:port)");
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_t worker;
    if (pthread_create(&worker, NULL, worker_main, NULL) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_404_405, setup, teardown),
        cmocka_unit_test_setup_teardown(test_413, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_answer_after_disconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_keepalive_and_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_connections, setup_two_conns, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, setup_short_idle, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_requests, setup, teardown),
    };
    int rv = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rv;
}
