#include "raft/rc_transport.h"

#include <stdlib.h>
#include <string.h>

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

static int wrap_listen(struct raft_uv_transport *outer, raft_uv_accept_cb cb)
{
    struct rc_transport *t = outer->impl;
    t->accept_cb = cb;
    int rv = t->inner.listen(&t->inner, wrap_accept_cb);
    if (rv != 0)
        memcpy(outer->errmsg, t->inner.errmsg, sizeof outer->errmsg);
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
