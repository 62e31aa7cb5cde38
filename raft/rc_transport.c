#include "raft/rc_transport.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "node/base/rc_log.h"

struct wrapped_connect {
    struct raft_uv_connect inner;
    struct raft_uv_connect *outer;
    struct rc_transport *t;
};

static void set_nodelay(struct uv_stream_s *stream)
{
    if (stream && stream->type == UV_TCP) {
        int rv = uv_tcp_nodelay((uv_tcp_t *)stream, 1);
        if (rv != 0)
            rc_warn("raft", "tcp_nodelay_failed error=%s", uv_strerror(rv));
    }
}

static int wrap_init(struct raft_uv_transport *outer, raft_id id, const char *address)
{
    struct rc_transport *t = outer->impl;
    snprintf(t->address, sizeof t->address, "%s", address);
    int rv = t->inner.init(&t->inner, id, address);
    if (rv != 0)
        memcpy(outer->errmsg, t->inner.errmsg, sizeof outer->errmsg);
    return rv;
}

static void wrap_accept_cb(struct raft_uv_transport *inner, raft_id id,
                           const char *address, struct uv_stream_s *stream)
{
    struct rc_transport *t = inner->data;
    set_nodelay(stream);
    t->accepted++;
    t->accept_cb(&t->outer, id, address, stream);
}

/* libraft's TCP listen fails with a bare RAFT_IOERR and no message. Binding
 * the address once more here finds the reason an operator can act on
 * (address in use, not on this host). Runs only on that failure path. */
static void explain_listen_failure(const char *address, char *msg, size_t len)
{
    char host[256];
    snprintf(host, sizeof host, "%s", address);
    char *colon = strrchr(host, ':');
    if (colon == NULL) {
        snprintf(msg, len, "cannot listen on %s: not HOST:PORT", address);
        return;
    }
    *colon = '\0';
    const char *port = colon + 1;
    char *h = host;
    if (h[0] == '[' && h[strlen(h) - 1] == ']') {
        h[strlen(h) - 1] = '\0';
        h++;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    int gai = getaddrinfo(h, port, &hints, &ai);
    if (gai != 0) {
        snprintf(msg, len, "cannot listen on %s: %s", address, gai_strerror(gai));
        return;
    }
    int err = 0;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = errno;
    } else {
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1) != 0)
            err = errno;
        close(fd);
    }
    freeaddrinfo(ai);
    snprintf(msg, len, "cannot listen on %s: %s", address, err ? strerror(err) : "unknown reason");
}

static int wrap_listen(struct raft_uv_transport *outer, raft_uv_accept_cb cb)
{
    struct rc_transport *t = outer->impl;
    t->accept_cb = cb;
    int rv = t->inner.listen(&t->inner, wrap_accept_cb);
    if (rv != 0) {
        memcpy(outer->errmsg, t->inner.errmsg, sizeof outer->errmsg);
        if (outer->errmsg[0] == '\0')
            explain_listen_failure(t->address, outer->errmsg, sizeof outer->errmsg);
    }
    return rv;
}

static void wrap_connect_cb(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    struct wrapped_connect *w = req->data;
    struct raft_uv_connect *outer = w->outer;
    if (status == 0) {
        set_nodelay(stream);
        w->t->connected++;
    }
    free(w);
    outer->cb(outer, stream, status);
}

static int wrap_connect(struct raft_uv_transport *outer, struct raft_uv_connect *req,
                        raft_id id, const char *address, raft_uv_connect_cb cb)
{
    struct rc_transport *t = outer->impl;
    struct wrapped_connect *w = calloc(1, sizeof *w);
    if (w == NULL)
        return RAFT_NOMEM;
    w->inner.data = w;
    w->outer = req;
    w->t = t;
    req->cb = cb;
    int rv = t->inner.connect(&t->inner, &w->inner, id, address, wrap_connect_cb);
    if (rv != 0) {
        memcpy(outer->errmsg, t->inner.errmsg, sizeof outer->errmsg);
        free(w); /* the callback will never run (libuv contract) */
    }
    return rv;
}

static void wrap_close_cb(struct raft_uv_transport *inner)
{
    struct rc_transport *t = inner->data;
    raft_uv_transport_close_cb cb = t->close_cb;
    t->close_cb = NULL;
    if (cb)
        cb(&t->outer);
}

static void wrap_close(struct raft_uv_transport *outer, raft_uv_transport_close_cb cb)
{
    struct rc_transport *t = outer->impl;
    t->close_cb = cb;
    t->inner.close(&t->inner, wrap_close_cb);
}

int rc_transport_init(struct rc_transport *t, uv_loop_t *loop)
{
    memset(t, 0, sizeof *t);
    int rv = raft_uv_tcp_init(&t->inner, loop);
    if (rv != 0)
        return rv;
    t->inner.data = t;
    t->outer.impl = t;
    t->outer.init = wrap_init;
    t->outer.listen = wrap_listen;
    t->outer.connect = wrap_connect;
    t->outer.close = wrap_close;
    return 0;
}

void rc_transport_close(struct rc_transport *t)
{
    raft_uv_tcp_close(&t->inner);
}
