/* SMTP listeners on libuv: accepts connections, enforces the connection
 * limits (total and per client address), runs one transport-free session
 * per connection, and arms its idle timer. Happy path: accept -> session
 * greeting -> reads fed to the session -> writes queued -> close. */
#include "smtp/smtp_server.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "node/base/rc_log.h"

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
    struct conn *conns;
    unsigned n_conns;
    void (*stop_cb)(void *);
    void *stop_data;
    char hostname[256];
};

struct conn {
    uv_tcp_t tcp;
    SSL *ssl; /* after STARTTLS: memory BIOs between the socket and OpenSSL */
    BIO *rbio, *wbio;
    uv_timer_t timer;
    smtp_server *srv;
    smtp_session *session;
    char addr[64];
    bool closing;
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

static unsigned conns_from(smtp_server *srv, const char *addr)
{
    unsigned n = 0;
    for (struct conn *c = srv->conns; c; c = c->next)
        if (!c->closing && strcmp(c->addr, addr) == 0)
            n++;
    return n;
}

static void maybe_stopped(smtp_server *srv)
{
    if (!srv->stopping || srv->open_handles > 0 || srv->n_conns > 0)
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
    SSL_free(c->ssl); /* frees both BIOs */
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

/* Moves what OpenSSL produced to the socket. */
static void tls_flush(struct conn *c)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(c->wbio, buf, sizeof buf)) > 0)
        raw_write(c, buf, (size_t)n);
}

static void tls_error(struct conn *c, const char *where)
{
    char msg[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, msg, sizeof msg);
    ERR_clear_error();
    char q[300];
    rc_warn("smtp", "tls_failed client=%s where=%s error=%s", c->addr, where, rc_log_quote(q, sizeof q, msg, strlen(msg)));
    conn_close(c);
}

static void io_write(void *io, const char *buf, size_t len)
{
    struct conn *c = io;
    if (c->closing)
        return;
    if (c->ssl) {
        if (SSL_write(c->ssl, buf, (int)len) <= 0) {
            tls_error(c, "write");
            return;
        }
        tls_flush(c);
        return;
    }
    raw_write(c, buf, len);
}

static void raw_write(struct conn *c, const char *buf, size_t len)
{
    if (c->closing)
        return;
    /* A client that never reads our replies cannot make us buffer forever. */
    if (c->write_queued + len > (1u << 20)) {
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

static void tls_flush(struct conn *c);

static void io_close(void *io)
{
    struct conn *c = io;
    if (c->closing)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (c->ssl && SSL_is_init_finished(c->ssl)) {
        SSL_shutdown(c->ssl); /* close_notify */
        tls_flush(c);
    }
    uv_shutdown_t *req = malloc(sizeof *req);
    if (req == NULL || uv_shutdown(req, (uv_stream_t *)&c->tcp, shutdown_cb) != 0) {
        free(req);
        conn_close(c);
        return;
    }
    req->data = c;
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
    if (c->srv->stopping && !c->closing && c->session && !smtp_session_busy(c->session)) {
        free(buf->base);
        smtp_session_timeout(c->session); /* between transactions: 421 and go */
        return;
    }
    if (nread < 0) {
        free(buf->base);
        if (!c->closing)
            conn_close(c);
        return;
    }
    if (nread > 0 && !c->closing && c->ssl) {
        BIO_write(c->rbio, buf->base, (int)nread);
        if (!SSL_is_init_finished(c->ssl)) {
            int rv = SSL_do_handshake(c->ssl);
            tls_flush(c);
            if (rv != 1) {
                int e = SSL_get_error(c->ssl, rv);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    tls_error(c, "handshake");
                free(buf->base);
                return;
            }
            rc_info("smtp", "tls client=%s version=%s cipher=%s", c->addr, SSL_get_version(c->ssl),
                    SSL_get_cipher(c->ssl));
        }
        char plain[16384];
        int n;
        while (!c->closing && (n = SSL_read(c->ssl, plain, sizeof plain)) > 0)
            smtp_session_input(c->session, plain, (size_t)n);
        if (!c->closing) {
            int e = SSL_get_error(c->ssl, n);
            if (e == SSL_ERROR_ZERO_RETURN)
                conn_close(c);
            else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                tls_error(c, "read");
            else
                tls_flush(c);
        }
        free(buf->base);
        return;
    }
    if (nread > 0 && !c->closing)
        smtp_session_input(c->session, buf->base, (size_t)nread);
    free(buf->base);
}

static int io_starttls(void *io)
{
    struct conn *c = io;
    if (c->srv->cfg.tls_ctx == NULL || c->ssl)
        return -1;
    c->ssl = SSL_new(c->srv->cfg.tls_ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        SSL_free(c->ssl);
        c->ssl = NULL;
        return -1;
    }
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_accept_state(c->ssl);
    return 0;
}

void *smtp_tls_server_ctx(const char *cert_chain, const char *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "SSL_CTX_new failed");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_chain) != 1) {
        snprintf(err, errlen, "cannot load certificate chain %s", cert_chain);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "cannot load private key %s (or it does not match the certificate)", key);
        goto fail;
    }
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

void smtp_tls_ctx_free(void *ctx)
{
    SSL_CTX_free(ctx);
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
    if (!c->closing)
        uv_timer_start(&c->timer, timer_cb, ms, 0);
}

static const struct smtp_session_io conn_io = {
    .write = io_write, .close = io_close, .pause = io_pause, .timeout = io_timeout, .starttls = io_starttls,
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
    /* this connection is counted in n_conns and in conns_from() */
    if (srv->n_conns > srv->cfg.max_connections || conns_from(srv, c->addr) > srv->cfg.max_connections_per_ip) {
        rc_warn("smtp", "connection_refused client=%s reason=%s", c->addr,
                srv->n_conns > srv->cfg.max_connections ? "max_connections" : "max_connections_per_ip");
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
        if (!c->closing && c->session && !smtp_session_busy(c->session))
            smtp_session_timeout(c->session);
}

unsigned smtp_server_sessions(const smtp_server *srv)
{
    return srv->n_conns;
}
