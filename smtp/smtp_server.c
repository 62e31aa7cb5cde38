/* SMTP listeners on libuv: accepts connections, enforces the connection
 * limits (total and per client address), runs one transport-free session
 * per connection, and arms its idle timer. Happy path: accept -> session
 * greeting -> reads fed to the session -> writes queued -> close. */
#include "smtp/smtp_server.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/base/rc_log.h"
#include "smtp/smtp_tls.h"

struct conn;

struct listener {
    uv_tcp_t tcp;
    smtp_server *srv;
    bool submission;
};

struct smtp_server {
    uv_loop_t *loop;
    struct smtp_server_config cfg;
    struct smtp_hooks hooks;
    void *hook_data;
    struct listener mx, sub;
    bool has_sub, stopping;
    int open_handles; /* listeners still open while stopping */
    unsigned n_work;  /* offloaded jobs in flight (they read cfg.users) */
    struct conn *conns;
    unsigned n_conns;
    void (*stop_cb)(void *);
    void *stop_data;
    char hostname[256];
};

struct conn {
    uv_tcp_t tcp;
    smtp_tls *tls; /* after STARTTLS */
    uv_timer_t timer;
    smtp_server *srv;
    smtp_session *session;
    char addr[64];
    bool closing, refused;
    int handles;
    size_t write_queued;
    struct conn *prev, *next;
};

struct wreq {
    uv_write_t req;
    struct conn *c;
    size_t len;
    char data[];
};

static const struct smtp_session_io conn_io;
static int io_starttls(void *io);

/* Live connections, in total and from addr; connections already refused or
 * closing do not count. */
static void count_conns(smtp_server *srv, const char *addr, unsigned *total, unsigned *same)
{
    *total = *same = 0;
    for (struct conn *c = srv->conns; c; c = c->next) {
        if (c->closing || c->refused)
            continue;
        ++*total;
        if (strcmp(c->addr, addr) == 0)
            ++*same;
    }
}

static void maybe_stopped(smtp_server *srv)
{
    if (!srv->stopping || srv->open_handles > 0 || srv->n_conns > 0 || srv->n_work > 0)
        return;
    void (*cb)(void *) = srv->stop_cb;
    void *data = srv->stop_data;
    free(srv);
    if (cb)
        cb(data);
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles > 0)
        return;
    smtp_server *srv = c->srv;
    smtp_session_free(c->session);
    smtp_tls_free(c->tls);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_conns--;
    free(c);
    maybe_stopped(srv);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->handles = 2;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    (void)status;
    struct conn *c = req->data;
    free(req);
    conn_close(c);
}

/* ---------------------------------------------------------- session io */

static void write_cb(uv_write_t *req, int status)
{
    struct wreq *w = req->data;
    struct conn *c = w->c;
    c->write_queued -= w->len;
    free(w);
    if (status < 0 && !c->closing)
        conn_close(c);
}

static void raw_write(struct conn *c, const char *buf, size_t len);

static void tls_error(struct conn *c, const char *where, int rv)
{
    char q[300];
    const char *msg = smtp_tls_errmsg(c->tls);
    rc_warn("smtp", "tls_failed client=%s where=%s error=%s reason=%s", c->addr, where, smtp_tls_strerror(rv),
            rc_log_quote(q, sizeof q, msg, strlen(msg)));
    conn_close(c);
}

static void io_write(void *io, const char *buf, size_t len)
{
    struct conn *c = io;
    if (c->closing)
        return;
    if (c->tls) {
        int rv = smtp_tls_write(c->tls, buf, len);
        if (rv != SMTP_TLS_OK)
            tls_error(c, "write", rv);
        return;
    }
    raw_write(c, buf, len);
}

static void raw_write(struct conn *c, const char *buf, size_t len)
{
    if (c->closing)
        return;
    /* A client that never reads our replies cannot make us buffer forever. */
    if (c->write_queued + len > c->srv->cfg.max_unread_output) {
        rc_warn("smtp", "client_not_reading client=%s action=close", c->addr);
        conn_close(c);
        return;
    }
    struct wreq *w = malloc(sizeof *w + len);
    if (w == NULL) {
        conn_close(c);
        return;
    }
    w->req.data = w;
    w->c = c;
    w->len = len;
    memcpy(w->data, buf, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb) != 0) {
        free(w);
        conn_close(c);
        return;
    }
    c->write_queued += len;
}

static void linger_expired(uv_timer_t *t)
{
    conn_close(t->data);
}

static void io_close(void *io)
{
    struct conn *c = io;
    if (c->closing)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (c->tls)
        smtp_tls_shutdown(c->tls); /* close_notify */
    uv_shutdown_t *req = malloc(sizeof *req);
    if (req == NULL || uv_shutdown(req, (uv_stream_t *)&c->tcp, shutdown_cb) != 0) {
        free(req);
        conn_close(c);
        return;
    }
    req->data = c;
    /* a client that never reads cannot keep the shutdown pending forever */
    uv_timer_start(&c->timer, linger_expired, c->srv->cfg.command_timeout_ms, 0);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = malloc(16384);
    buf->len = buf->base ? 16384 : 0;
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    if (nread < 0) {
        free(buf->base);
        if (!c->closing)
            conn_close(c);
        return;
    }
    if (nread > 0 && !c->closing && c->tls) {
        int rv = smtp_tls_feed(c->tls, buf->base, (size_t)nread);
        if (rv == SMTP_TLS_CLOSED)
            conn_close(c);
        else if (rv != SMTP_TLS_OK && rv != SMTP_TLS_ESTOPPED && !c->closing)
            tls_error(c, smtp_tls_ready(c->tls) ? "read" : "handshake", rv);
    } else if (nread > 0 && !c->closing) {
        smtp_session_input(c->session, buf->base, (size_t)nread);
    }
    free(buf->base);
}

static int tls_send(void *data, const char *buf, size_t len)
{
    struct conn *c = data;
    raw_write(c, buf, len);
    return c->closing ? -1 : 0;
}

static int tls_plain(void *data, const char *buf, size_t len)
{
    struct conn *c = data;
    if (c->closing)
        return 1;
    smtp_session_input(c->session, buf, len);
    return c->closing ? 1 : 0;
}

static void tls_ready(void *data)
{
    struct conn *c = data;
    rc_info("smtp", "tls client=%s version=%s cipher=%s", c->addr, smtp_tls_version(c->tls), smtp_tls_cipher(c->tls));
    smtp_session_tls_info(c->session, smtp_tls_version(c->tls), smtp_tls_cipher(c->tls), smtp_tls_cipher_bits(c->tls));
}

static const struct smtp_tls_io conn_tls_io = {.send = tls_send, .plain = tls_plain, .ready = tls_ready};

static int io_starttls(void *io)
{
    struct conn *c = io;
    if (c->srv->cfg.tls_ctx == NULL || c->tls)
        return -1;
    c->tls = smtp_tls_new(c->srv->cfg.tls_ctx, SMTP_TLS_ROLE_SERVER, NULL, &conn_tls_io, c);
    return c->tls ? 0 : -1;
}

static void io_pause(void *io, bool on)
{
    struct conn *c = io;
    if (c->closing)
        return;
    if (on)
        uv_read_stop((uv_stream_t *)&c->tcp);
    else
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

static void timer_cb(uv_timer_t *t)
{
    struct conn *c = t->data;
    smtp_session_timeout(c->session);
}

static void io_timeout(void *io, unsigned ms)
{
    struct conn *c = io;
    if (!c->closing && !(c->session && smtp_session_closing(c->session))) /* not over the linger timer */
        uv_timer_start(&c->timer, timer_cb, ms, 0);
}

struct work {
    uv_work_t req;
    smtp_server *srv;
    void (*work)(void *);
    void (*done)(void *);
    void *arg;
};

static void work_run(uv_work_t *req)
{
    struct work *w = req->data;
    w->work(w->arg);
}

static void work_after(uv_work_t *req, int status)
{
    (void)status; /* UV_ECANCELED cannot happen: we never cancel */
    struct work *w = req->data;
    smtp_server *srv = w->srv;
    w->done(w->arg);
    free(w);
    srv->n_work--;
    maybe_stopped(srv);
}

static int io_offload(void *io, void (*fn)(void *), void (*done)(void *), void *arg)
{
    struct conn *c = io;
    struct work *w = malloc(sizeof *w);
    if (w == NULL)
        return -1;
    w->req.data = w;
    w->srv = c->srv;
    w->work = fn;
    w->done = done;
    w->arg = arg;
    if (uv_queue_work(c->srv->loop, &w->req, work_run, work_after) != 0) {
        free(w);
        return -1;
    }
    c->srv->n_work++;
    return 0;
}

static const struct smtp_session_io conn_io = {
    .write = io_write, .close = io_close, .pause = io_pause, .timeout = io_timeout, .starttls = io_starttls,
    .offload = io_offload,
};

/* ------------------------------------------------------------ accept */

static void on_connection(uv_stream_t *server, int status)
{
    struct listener *l = server->data;
    smtp_server *srv = l->srv;
    if (status < 0 || srv->stopping)
        return;
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->srv = srv;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    snprintf(c->addr, sizeof c->addr, "unknown");
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, c->addr, sizeof c->addr);
        else
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->addr, sizeof c->addr);
    }
    /* this connection is counted too */
    unsigned total, same;
    count_conns(srv, c->addr, &total, &same);
    if (total > srv->cfg.max_connections || same > srv->cfg.max_connections_per_ip) {
        rc_warn("smtp", "connection_refused client=%s reason=%s", c->addr,
                total > srv->cfg.max_connections ? "max_connections" : "max_connections_per_ip");
        c->refused = true;
        static const char line[] = "421 4.7.0 Too many connections, try again later\r\n";
        io_write(c, line, sizeof line - 1);
        io_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->session = smtp_session_new(&srv->cfg, &srv->hooks, srv->hook_data, &conn_io, c, c->addr, l->submission);
    if (c->session == NULL) {
        conn_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    smtp_session_start(c->session);
}

static int parse_listen(const char *s, struct sockaddr_storage *ss)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof host)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    int port = atoi(colon + 1);
    if (port < 1 || port > 65535)
        return -1;
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 3 || host[n - 1] != ']')
            return -1;
        host[n - 1] = '\0';
        return uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)ss);
    }
    return uv_ip4_addr(host, port, (struct sockaddr_in *)ss);
}

static int start_listener(smtp_server *srv, struct listener *l, const char *addr, bool submission,
                          char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (parse_listen(addr, &ss) != 0) {
        snprintf(err, errlen, "bad listen address %s", addr);
        return SMTP_SERVER_EADDR;
    }
    uv_tcp_init(srv->loop, &l->tcp);
    l->tcp.data = l;
    l->srv = srv;
    l->submission = submission;
    srv->open_handles++;
    int rv = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
    if (rv != 0) {
        snprintf(err, errlen, "listen on %s: %s", addr, uv_strerror(rv));
        return SMTP_SERVER_ELISTEN;
    }
    rc_info("smtp", "listening addr=%s mode=%s", addr, submission ? "submission" : "mx");
    return SMTP_SERVER_OK;
}

static void listener_closed(uv_handle_t *h)
{
    struct listener *l = h->data;
    l->srv->open_handles--;
    maybe_stopped(l->srv);
}

int smtp_server_start(smtp_server **out, uv_loop_t *loop, const struct smtp_server_config *cfg,
                      const struct smtp_hooks *hooks, void *hook_data,
                      const char *mx_listen, const char *submission_listen,
                      char *err, size_t errlen)
{
    smtp_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return SMTP_SERVER_ENOMEM;
    srv->loop = loop;
    srv->cfg = *cfg;
    snprintf(srv->hostname, sizeof srv->hostname, "%s", cfg->hostname ? cfg->hostname : "localhost");
    srv->cfg.hostname = srv->hostname;
    srv->hooks = *hooks;
    srv->hook_data = hook_data;
    int rv = start_listener(srv, &srv->mx, mx_listen, false, err, errlen);
    if (rv == SMTP_SERVER_OK && submission_listen && *submission_listen) {
        srv->has_sub = true;
        rv = start_listener(srv, &srv->sub, submission_listen, true, err, errlen);
    }
    if (rv != SMTP_SERVER_OK) {
        srv->stopping = true;
        bool done = false;
        srv->stop_cb = NULL;
        if (srv->mx.srv)
            uv_close((uv_handle_t *)&srv->mx.tcp, listener_closed);
        if (srv->sub.srv)
            uv_close((uv_handle_t *)&srv->sub.tcp, listener_closed);
        (void)done;
        /* frees srv in maybe_stopped once the handles are closed */
        return rv;
    }
    *out = srv;
    return SMTP_SERVER_OK;
}

void smtp_server_stop(smtp_server *srv, void (*cb)(void *), void *data)
{
    if (srv->stopping)
        return;
    srv->stopping = true;
    srv->stop_cb = cb;
    srv->stop_data = data;
    uv_close((uv_handle_t *)&srv->mx.tcp, listener_closed);
    if (srv->has_sub)
        uv_close((uv_handle_t *)&srv->sub.tcp, listener_closed);
    /* Idle sessions are told to go; sessions in a transaction finish it. */
    for (struct conn *c = srv->conns; c; c = c->next)
        if (!c->closing && c->session)
            smtp_session_drain(c->session);
    maybe_stopped(srv);
}

unsigned smtp_server_sessions(const smtp_server *srv)
{
    return srv->n_conns;
}
