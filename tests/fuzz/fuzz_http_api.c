/* Raw bytes from a client into node/http_api.c over a real loopback TCP
 * connection on a real libuv loop: h2o's HTTP/1 parser, our routing, sync
 * and later (asynchronous) answers, JSON error bodies, and the connection
 * teardown. The client half-closes after sending; the run ends when the
 * server has closed the connection. Binds 127.0.0.41 (port from the kernel). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "node/http_api.h"

static uv_loop_t loop;
static http_api *api;
static int port;

static void h_sync(http_request *req, void *data)
{
    (void)data;
    size_t len;
    const char *b = http_request_body(req, &len);
    json_error_t err;
    json_t *j = json_loadb(b, len, 0, &err); /* node handlers parse bodies like this */
    http_respond_json(req, j ? 200 : 400, json_pack("{s:s, s:s, s:o}", "path", http_request_path(req), "query",
                      http_request_query(req), "body", j ? j : json_null()));
}

struct later {
    uv_timer_t t;
    http_request *req;
};

static void later_closed(uv_handle_t *h) { free(h->data); }

static void later_fire(uv_timer_t *t)
{
    struct later *l = t->data;
    http_respond_text(l->req, 202, "text/plain", "later\n");
    uv_close((uv_handle_t *)&l->t, later_closed);
}

static void h_later(http_request *req, void *data)
{
    (void)data;
    struct later *l = calloc(1, sizeof *l);
    l->req = req;
    uv_timer_init(&loop, &l->t);
    l->t.data = l;
    uv_timer_start(&l->t, later_fire, 0, 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    uv_loop_init(&loop);
    struct http_api_config cfg = {.listen = "127.0.0.41:0", .max_body = 4096, .idle_timeout_ms = 2000};
    if (http_api_start(&api, &loop, &cfg) != HTTP_API_OK)
        abort();
    port = http_api_port(api);
    http_api_route(api, "GET", "/v1/cluster", h_sync, NULL);
    http_api_route(api, "POST", "/v1/cluster/transfer", h_later, NULL);
    http_api_route(api, "GET", "/v1/messages/", h_later, NULL);
    http_api_route(api, "POST", "/v1/suppressions", h_sync, NULL);
    http_api_route(api, "DELETE", "/v1/suppressions/", h_sync, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (api == NULL)
        LLVMFuzzerInitialize(NULL, NULL);
    if (size > 65536)
        return 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        abort();
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.41", &sa.sin_addr);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    int rv = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    if (rv != 0 && errno != EINPROGRESS)
        abort();
    size_t sent = 0;
    bool shut = false, closed = false;
    char buf[65536];
    while (!closed) {
        uv_run(&loop, UV_RUN_NOWAIT);
        if (sent < size) {
            ssize_t k = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
            if (k > 0)
                sent += (size_t)k;
            else if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN)
                sent = size; /* the server closed early */
        }
        if (sent == size && !shut) {
            shutdown(fd, SHUT_WR);
            shut = true;
        }
        ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN))
            closed = true;
        else if (k < 0)
            uv_run(&loop, UV_RUN_ONCE); /* wait for the server to do something */
    }
    close(fd);
    /* let the server finish closing its side and any late answer */
    struct http_api_stats st;
    do {
        uv_run(&loop, UV_RUN_NOWAIT);
        http_api_get_stats(api, &st);
    } while (st.connections || st.pending);
    return 0;
}
