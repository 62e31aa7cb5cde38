/* Outbound SMTP delivery transaction (see smtp_client.h).
 *
 * Happy path: CONNECTING → GREETING (220) → EHLO (extensions) → [STARTTLS →
 * TLS → EHLO] → MAIL (+ every RCPT in one write when PIPELINING is offered)
 * → RCPT … → DATA (354) → BODY (dot-stuffed body, final reply) → READY. A
 * later transaction on the same client goes READY → RSET → MAIL.
 *
 * Failure modes: before MAIL, a connect error/timeout, a non-2xx greeting,
 * a failed EHLO+HELO, STARTTLS trouble or a lost connection move to the next
 * host (CONNECTING again); with no host left every recipient gets the last
 * failure. From MAIL on, a reply decides the recipients it concerns; a
 * timeout, a lost connection or a malformed reply ends the transaction with
 * an internal code (smtp_client.h) for every recipient still undecided, and
 * the connection is closed (IDLE). Every state change goes through sm_move(),
 * which checks the allowed-transition table. The TCP handle is a separate
 * allocation detached before uv_close and freed in its close_cb; the client
 * is freed in the last close_cb after smtp_client_close(). */
#include "smtp/smtp_client.h"
#include "smtp/smtp_reply.h"
#include "node/base/rc_log.h"

#include <arpa/inet.h>
#include <assert.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum client_state {
    ST_IDLE,        /* no connection */
    ST_CONNECTING,
    ST_GREETING,
    ST_EHLO,
    ST_HELO,
    ST_STARTTLS,
    ST_TLS,         /* TLS handshake */
    ST_READY,       /* connected, no transaction */
    ST_RSET,
    ST_MAIL,        /* MAIL sent (and, pipelined, every RCPT) */
    ST_RCPT,        /* one RCPT at a time (no PIPELINING) */
    ST_DATA,
    ST_BODY,        /* body being written, then the final reply */
    ST_QUIT,
    ST_CLOSING,
    ST_CLOSED,
    ST_NR
};

#define BIT(s) (1u << (s))
static const struct client_sm_conf {
    const char *name;
    unsigned allowed;
} client_states[ST_NR] = {
    [ST_IDLE] = { "idle", BIT(ST_CONNECTING) | BIT(ST_CLOSING) },
    [ST_CONNECTING] = { "connecting",
                        BIT(ST_GREETING) | BIT(ST_CONNECTING) | BIT(ST_IDLE) | BIT(ST_CLOSING) },
    [ST_GREETING] = { "greeting",
                      BIT(ST_EHLO) | BIT(ST_CONNECTING) | BIT(ST_IDLE) | BIT(ST_CLOSING) },
    [ST_EHLO] = { "ehlo", BIT(ST_HELO) | BIT(ST_STARTTLS) | BIT(ST_MAIL) | BIT(ST_RCPT) |
                              BIT(ST_READY) | BIT(ST_CONNECTING) | BIT(ST_IDLE) | BIT(ST_CLOSING) },
    [ST_HELO] = { "helo", BIT(ST_MAIL) | BIT(ST_RCPT) | BIT(ST_READY) | BIT(ST_CONNECTING) |
                              BIT(ST_IDLE) | BIT(ST_CLOSING) },
    [ST_STARTTLS] = { "starttls", BIT(ST_TLS) | BIT(ST_MAIL) | BIT(ST_RCPT) | BIT(ST_READY) |
                                      BIT(ST_CONNECTING) | BIT(ST_IDLE) | BIT(ST_CLOSING) },
    [ST_TLS] = { "tls", BIT(ST_EHLO) | BIT(ST_CONNECTING) | BIT(ST_IDLE) | BIT(ST_CLOSING) },
    [ST_READY] = { "ready", BIT(ST_RSET) | BIT(ST_QUIT) | BIT(ST_IDLE) | BIT(ST_CLOSING) },
    [ST_RSET] = { "rset", BIT(ST_MAIL) | BIT(ST_RCPT) | BIT(ST_READY) | BIT(ST_CONNECTING) |
                              BIT(ST_IDLE) | BIT(ST_CLOSING) },
    [ST_MAIL] = { "mail", BIT(ST_RCPT) | BIT(ST_DATA) | BIT(ST_READY) | BIT(ST_IDLE) |
                              BIT(ST_CLOSING) },
    [ST_RCPT] = { "rcpt", BIT(ST_DATA) | BIT(ST_READY) | BIT(ST_IDLE) | BIT(ST_CLOSING) },
    [ST_DATA] = { "data", BIT(ST_BODY) | BIT(ST_READY) | BIT(ST_IDLE) | BIT(ST_CLOSING) },
    [ST_BODY] = { "body", BIT(ST_READY) | BIT(ST_IDLE) | BIT(ST_CLOSING) },
    [ST_QUIT] = { "quit", BIT(ST_IDLE) | BIT(ST_CLOSING) },
    [ST_CLOSING] = { "closing", BIT(ST_CLOSED) },
    [ST_CLOSED] = { "closed", 0 },
};

struct smtp_conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    smtp_client *c;          /* NULL once detached */
};

struct smtp_wreq {
    uv_write_t req;
    smtp_client *c;          /* NULL once the connection was detached */
    struct smtp_conn *conn;
    uint8_t *data;
    int is_body;
};

struct smtp_client {
    uv_loop_t *loop;
    struct smtp_client_config cfg;
    char helo[256];
    int state;
    uv_timer_t timer;
    int timer_closed;
    struct smtp_conn *conn;
    smtp_reply_parser *parser;
    smtp_reply reply;
    char rbuf[16384];
    void (*closed_cb)(void *);
    void *closed_arg;
    int close_requested;

    /* session */
    int ext_pipelining, ext_8bitmime, ext_starttls, ext_esmtp;
    uint64_t ext_size;
    int tls_active;
    SSL_CTX *own_ctx;    /* default context when cfg.ssl_ctx is NULL */
    SSL *ssl;            /* STARTTLS: TLS over memory BIOs, ciphertext via conn */
    BIO *rbio, *wbio;
    char pbuf[16384];    /* plaintext read out of TLS */
    int conn_reused;     /* this transaction runs on a kept connection */

    /* transaction */
    int tx_active;
    unsigned tx_gen;
    smtp_client_cb cb;
    void *cb_arg;
    struct smtp_client_msg msg;
    struct smtp_client_host *hosts;
    size_t nhosts, host_i;
    struct smtp_rcpt_result *res;
    int *decided;
    int *accepted;
    size_t naccepted;
    size_t reply_i;      /* MAIL = 0, RCPT k = k + 1 */
    int mail_ok;
    smtp_reply mail_reply;
    uint8_t *wire;
    size_t wire_len;
    int body_sent;
    /* last host-level failure, used when no host is left */
    int last_code, last_internal;
    char last_enhanced[16];
    char last_text[SMTP_CLIENT_TEXT_MAX];
    char cur_host[256], cur_addr[64];
};

const char *smtp_client_strerror(int err)
{
    switch (err) {
    case SMTP_CLIENT_OK: return "ok";
    case SMTP_CLIENT_ENOMEM: return "out of memory";
    case SMTP_CLIENT_EINVAL: return "invalid argument";
    case SMTP_CLIENT_EBUSY: return "transaction in progress or client closing";
    }
    return "unknown error";
}

const char *smtp_client_internal_name(int internal)
{
    switch (internal) {
    case SMTP_INT_NONE: return "none";
    case SMTP_INT_DIALOGUE_TIMEOUT: return "dialogue_timeout";
    case SMTP_INT_DATA_TIMEOUT: return "data_timeout";
    case SMTP_INT_CONNECT_TIMEOUT: return "connect_timeout";
    case SMTP_INT_DROPPED_AFTER_DATA: return "dropped_after_data";
    case SMTP_INT_CONNECT_FAILED: return "connect_failed";
    case SMTP_INT_CONNECTION_LOST: return "connection_lost";
    case SMTP_INT_PROTOCOL: return "protocol_error";
    case SMTP_INT_TLS_FAILED: return "tls_failed";
    case SMTP_INT_TOO_BIG: return "message_too_big";
    case SMTP_INT_CANCELED: return "canceled";
    case SMTP_INT_NO_HOSTS: return "no_hosts";
    }
    return "unknown";
}

static void sm_move(smtp_client *c, int to)
{
    assert(to >= 0 && to < ST_NR);
    if (!(client_states[c->state].allowed & BIT(to))) {
        rc_error("smtp_client", "bad_transition from=%s to=%s", client_states[c->state].name,
                 client_states[to].name);
        abort();
    }
    rc_debug("smtp_client", "state from=%s to=%s host=%s", client_states[c->state].name,
             client_states[to].name, c->cur_addr);
    c->state = to;
    /* invariants */
    assert(to != ST_READY || c->conn != NULL);
    assert(to != ST_IDLE || c->conn == NULL);
}

uint8_t *smtp_client_wire_body(const uint8_t *body, size_t len, size_t *out_len)
{
    /* worst case: every byte a bare CR/LF or a dot at line start doubles */
    if (len > (SIZE_MAX - 8) / 2)
        return NULL;
    uint8_t *w = malloc(2 * len + 8);
    size_t o = 0;
    int bol = 1;
    if (w == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = body[i];
        if (b == '\r' || b == '\n') {
            if (b == '\r' && i + 1 < len && body[i + 1] == '\n')
                i++;
            w[o++] = '\r';
            w[o++] = '\n';
            bol = 1;
            continue;
        }
        if (bol && b == '.')
            w[o++] = '.';
        w[o++] = b;
        bol = 0;
    }
    if (!bol) {
        w[o++] = '\r';
        w[o++] = '\n';
    }
    memcpy(w + o, ".\r\n", 3);
    o += 3;
    *out_len = o;
    return w;
}

/* ----------------------------------------------------------- connection */

static void conn_close_cb(uv_handle_t *h)
{
    free(h->data);
}

static void client_maybe_free(smtp_client *c);

/* Detaches and closes the connection; pending writes complete with
 * ECANCELED and see a detached request. */
static void conn_drop(smtp_client *c)
{
    struct smtp_conn *k = c->conn;
    if (k == NULL)
        return;
    c->conn = NULL;
    k->c = NULL;
    k->tcp.data = k;
    uv_close((uv_handle_t *)&k->tcp, conn_close_cb);
    if (c->ssl != NULL) {
        SSL_free(c->ssl); /* frees both BIOs */
        c->ssl = NULL;
        c->rbio = c->wbio = NULL;
    }
    c->tls_active = 0;
    c->ext_pipelining = c->ext_8bitmime = c->ext_starttls = c->ext_esmtp = 0;
    c->ext_size = 0;
    smtp_reply_parser_reset(c->parser);
}

static void timer_arm(smtp_client *c, unsigned ms);
static void timer_cb(uv_timer_t *t);
static void on_io_error(smtp_client *c, int internal, const char *what);

static void write_cb(uv_write_t *w, int status)
{
    struct smtp_wreq *r = (struct smtp_wreq *)w;
    smtp_client *c = r->conn->c;
    int is_body = r->is_body;
    free(r->data);
    free(r);
    if (c == NULL)
        return;
    if (status < 0) {
        on_io_error(c, SMTP_INT_CONNECTION_LOST, uv_strerror(status));
        return;
    }
    if (is_body && c->state == ST_BODY) {
        c->body_sent = 1;
        timer_arm(c, c->cfg.final_timeout_ms);
    }
}

/* Writes len raw bytes to the socket; takes ownership of data (malloc'd). */
static int conn_write_raw(smtp_client *c, uint8_t *data, size_t len, int is_body)
{
    struct smtp_wreq *r = calloc(1, sizeof *r);
    if (r == NULL || c->conn == NULL) {
        free(r);
        free(data);
        return SMTP_CLIENT_ENOMEM;
    }
    r->conn = c->conn;
    r->data = data;
    r->is_body = is_body;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int rv = uv_write(&r->req, (uv_stream_t *)&c->conn->tcp, &b, 1, write_cb);
    if (rv != 0) {
        free(data);
        free(r);
        return rv;
    }
    return SMTP_CLIENT_OK;
}

/* Moves the ciphertext TLS produced to the socket. */
static int tls_flush(smtp_client *c, int is_body)
{
    size_t n = (size_t)BIO_ctrl_pending(c->wbio);
    if (n == 0)
        return SMTP_CLIENT_OK;
    uint8_t *d = malloc(n);
    if (d == NULL)
        return SMTP_CLIENT_ENOMEM;
    if (BIO_read(c->wbio, d, (int)n) != (int)n) {
        free(d);
        return SMTP_CLIENT_EINVAL;
    }
    return conn_write_raw(c, d, n, is_body);
}

/* Sends len bytes of dialogue (through TLS once it is up); takes ownership. */
static int conn_send_owned(smtp_client *c, uint8_t *data, size_t len, int is_body)
{
    if (c->ssl == NULL || !c->tls_active)
        return conn_write_raw(c, data, len, is_body);
    int rv = len > INT_MAX ? -1 : SSL_write(c->ssl, data, (int)len);
    free(data);
    if (rv != (int)len) {
        ERR_clear_error();
        return SMTP_CLIENT_EINVAL;
    }
    return tls_flush(c, is_body);
}

static int conn_sendf(smtp_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int conn_sendf(smtp_client *c, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf)
        return SMTP_CLIENT_EINVAL;
    uint8_t *d = malloc((size_t)n);
    if (d == NULL)
        return SMTP_CLIENT_ENOMEM;
    memcpy(d, buf, (size_t)n);
    return conn_send_owned(c, d, (size_t)n, 0);
}

/* ---------------------------------------------------------------- results */

static void text_copy(char *dst, size_t size, const char *src)
{
    size_t n = 0;
    for (; *src && n + 1 < size; src++)
        dst[n++] = (*src == '\n' || *src == '\r') ? ' ' : *src;
    dst[n] = '\0';
}

static int outcome_of_code(int code)
{
    return code >= 200 && code < 300 ? SMTP_OUT_DELIVERED
         : code >= 500 ? SMTP_OUT_FAILED : SMTP_OUT_DEFERRED;
}

static void rcpt_set_reply(smtp_client *c, size_t k, const smtp_reply *r)
{
    struct smtp_rcpt_result *x = &c->res[k];
    x->outcome = outcome_of_code(r->code);
    x->code = r->code;
    x->internal = SMTP_INT_NONE;
    snprintf(x->enhanced, sizeof x->enhanced, "%s", r->enhanced);
    text_copy(x->text, sizeof x->text, r->text);
    c->decided[k] = 1;
}

static void rcpt_set_internal(smtp_client *c, size_t k, int outcome, int code, const char *enh,
                              int internal, const char *text)
{
    struct smtp_rcpt_result *x = &c->res[k];
    x->outcome = outcome;
    x->code = code;
    x->internal = internal;
    snprintf(x->enhanced, sizeof x->enhanced, "%s", enh ? enh : "");
    text_copy(x->text, sizeof x->text, text ? text : "");
    c->decided[k] = 1;
}

static void tx_free(smtp_client *c)
{
    free(c->hosts);
    free(c->res);
    free(c->decided);
    free(c->accepted);
    free(c->wire);
    c->hosts = NULL;
    c->res = NULL;
    c->decided = c->accepted = NULL;
    c->wire = NULL;
    c->tx_active = 0;
}

/* Ends the transaction: undecided recipients get (internal, text); the
 * callback runs last (it may start the next transaction or close). */
static void tx_finish(smtp_client *c, int internal, const char *text)
{
    if (!c->tx_active)
        return;
    char qt[SMTP_CLIENT_TEXT_MAX + 64];
    for (size_t k = 0; k < c->msg.nrcpts; k++) {
        if (!c->decided[k])
            rcpt_set_internal(c, k, internal == SMTP_INT_TOO_BIG ? SMTP_OUT_FAILED : SMTP_OUT_DEFERRED,
                              0, "", internal, text);
        struct smtp_rcpt_result *x = &c->res[k];
        rc_info("smtp_client", "rcpt_result rcpt=%s outcome=%s code=%d enhanced=%s internal=%s host=%s text=%s",
                c->msg.rcpts[k],
                x->outcome == SMTP_OUT_DELIVERED ? "delivered"
                : x->outcome == SMTP_OUT_FAILED  ? "failed" : "deferred",
                x->code, x->enhanced[0] ? x->enhanced : "-", smtp_client_internal_name(x->internal),
                c->cur_addr, rc_log_quote(qt, sizeof qt, x->text, strlen(x->text)));
    }
    struct smtp_client_result res;
    memset(&res, 0, sizeof res);
    res.nrcpts = c->msg.nrcpts;
    res.rcpts = c->res;
    snprintf(res.host, sizeof res.host, "%s", c->cur_host);
    snprintf(res.addr, sizeof res.addr, "%s", c->cur_addr);
    res.tls = c->tls_active;
    res.reused = c->conn_reused;
    res.reusable = c->state == ST_READY;
    struct smtp_rcpt_result *keep = c->res;
    c->res = NULL;
    smtp_client_cb cb = c->cb;
    void *arg = c->cb_arg;
    tx_free(c);
    c->tx_gen++;
    cb(c, &res, arg);
    free(keep);
}

/* Closes the connection and ends the transaction (from MAIL on). */
static void tx_abort(smtp_client *c, int internal, const char *text)
{
    uv_timer_stop(&c->timer);
    conn_drop(c);
    sm_move(c, ST_IDLE);
    tx_finish(c, internal, text);
    client_maybe_free(c);
}

/* ------------------------------------------------------------ dialogue */

static void connect_next(smtp_client *c);
static void start_transaction(smtp_client *c);

static void timer_arm(smtp_client *c, unsigned ms)
{
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, timer_cb, ms, 0);
}

static int in_session_setup(const smtp_client *c)
{
    return c->state == ST_CONNECTING || c->state == ST_GREETING || c->state == ST_EHLO ||
           c->state == ST_HELO || c->state == ST_STARTTLS || c->state == ST_TLS;
}

/* A failure before MAIL: remember it and try the next host. */
static void host_failed(smtp_client *c, int code, const char *enh, int internal, const char *text)
{
    c->last_code = code;
    c->last_internal = internal;
    snprintf(c->last_enhanced, sizeof c->last_enhanced, "%s", enh ? enh : "");
    text_copy(c->last_text, sizeof c->last_text, text ? text : "");
    rc_info("smtp_client", "host_failed host=%s code=%d internal=%s", c->cur_addr, code,
            smtp_client_internal_name(internal));
    uv_timer_stop(&c->timer);
    conn_drop(c);
    c->host_i++;
    if (c->tx_active && c->host_i < c->nhosts && !c->close_requested) {
        sm_move(c, ST_CONNECTING);
        connect_next(c);
        return;
    }
    sm_move(c, ST_IDLE);
    if (c->tx_active) {
        for (size_t k = 0; k < c->msg.nrcpts; k++) {
            if (code)
                rcpt_set_internal(c, k, outcome_of_code(code), code, c->last_enhanced,
                                  SMTP_INT_NONE, c->last_text);
            else
                rcpt_set_internal(c, k, SMTP_OUT_DEFERRED, 0, "", internal, c->last_text);
        }
        tx_finish(c, internal, c->last_text);
    }
    client_maybe_free(c);
}

static void on_io_error(smtp_client *c, int internal, const char *what)
{
    char text[SMTP_CLIENT_TEXT_MAX];
    if (in_session_setup(c)) {
        snprintf(text, sizeof text, "%s: %s", c->cur_addr, what);
        host_failed(c, 0, "", internal, text);
        return;
    }
    if (c->state == ST_RSET) { /* the kept connection was gone: start afresh */
        uv_timer_stop(&c->timer);
        conn_drop(c);
        c->conn_reused = 0;
        c->host_i = 0;
        sm_move(c, ST_CONNECTING);
        connect_next(c);
        return;
    }
    if (c->state == ST_READY || c->state == ST_QUIT) {
        uv_timer_stop(&c->timer);
        conn_drop(c);
        sm_move(c, ST_IDLE);
        client_maybe_free(c);
        return;
    }
    if (c->state == ST_BODY && internal == SMTP_INT_CONNECTION_LOST)
        internal = SMTP_INT_DROPPED_AFTER_DATA;
    snprintf(text, sizeof text, "%s: %s", c->cur_addr, what);
    tx_abort(c, internal, text);
}

static void timer_cb(uv_timer_t *t)
{
    smtp_client *c = t->data;
    switch (c->state) {
    case ST_CONNECTING:
        on_io_error(c, SMTP_INT_CONNECT_TIMEOUT, "connect timeout");
        break;
    case ST_BODY:
        on_io_error(c, c->body_sent ? SMTP_INT_DATA_TIMEOUT : SMTP_INT_DIALOGUE_TIMEOUT,
                    c->body_sent ? "timeout after end of data" : "timeout sending data");
        break;
    case ST_GREETING:
        on_io_error(c, SMTP_INT_DIALOGUE_TIMEOUT, "timeout waiting for greeting");
        break;
    default:
        on_io_error(c, SMTP_INT_DIALOGUE_TIMEOUT, "timeout waiting for reply");
        break;
    }
}

static void send_or_fail(smtp_client *c, int rv)
{
    if (rv != SMTP_CLIENT_OK)
        on_io_error(c, SMTP_INT_CONNECTION_LOST, "write failed");
}

static void parse_ehlo(smtp_client *c, const smtp_reply *r)
{
    const char *s = r->text;
    c->ext_esmtp = 1;
    /* first line is the greeting name; each following line one keyword */
    s = strchr(s, '\n');
    while (s != NULL) {
        s++;
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n >= 10 && strncasecmp(s, "PIPELINING", 10) == 0 && (n == 10 || s[10] == ' '))
            c->ext_pipelining = 1;
        else if (n >= 8 && strncasecmp(s, "8BITMIME", 8) == 0 && (n == 8 || s[8] == ' '))
            c->ext_8bitmime = 1;
        else if (n >= 8 && strncasecmp(s, "STARTTLS", 8) == 0 && (n == 8 || s[8] == ' '))
            c->ext_starttls = 1;
        else if (n >= 4 && strncasecmp(s, "SIZE", 4) == 0 && (n == 4 || s[4] == ' ')) {
            uint64_t v = 0;
            for (size_t i = 5; i < n && isdigit((unsigned char)s[i]) && v < (UINT64_MAX / 10 - 10); i++)
                v = v * 10 + (uint64_t)(s[i] - '0');
            c->ext_size = v;
        }
        s = e;
    }
}

static int tls_available(void)
{
    return 1;
}

/* Drives the handshake; on success the session starts again with EHLO
 * (RFC 3207 §4.2: forget everything learnt before TLS). */
static void tls_step(smtp_client *c)
{
    int rv = SSL_do_handshake(c->ssl);
    if (tls_flush(c, 0) != SMTP_CLIENT_OK) {
        on_io_error(c, SMTP_INT_CONNECTION_LOST, "write failed");
        return;
    }
    if (rv == 1) {
        c->tls_active = 1;
        c->ext_pipelining = c->ext_8bitmime = c->ext_starttls = 0;
        c->ext_size = 0;
        rc_info("smtp_client", "tls host=%s version=%s cipher=%s", c->cur_addr,
                SSL_get_version(c->ssl), SSL_get_cipher(c->ssl));
        sm_move(c, ST_EHLO);
        timer_arm(c, c->cfg.command_timeout_ms);
        send_or_fail(c, conn_sendf(c, "EHLO %s\r\n", c->helo));
        return;
    }
    int e = SSL_get_error(c->ssl, rv);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return;
    char text[SMTP_CLIENT_TEXT_MAX];
    unsigned long le = ERR_get_error();
    snprintf(text, sizeof text, "%s: TLS handshake failed: %s", c->cur_addr,
             le ? ERR_reason_error_string(le) : "connection closed");
    ERR_clear_error();
    host_failed(c, 0, "", SMTP_INT_TLS_FAILED, text);
}

static int tls_start(smtp_client *c)
{
    SSL_CTX *ctx = c->cfg.ssl_ctx;
    if (ctx == NULL) {
        if (c->own_ctx == NULL) {
            c->own_ctx = SSL_CTX_new(TLS_client_method());
            if (c->own_ctx == NULL)
                return -1;
            SSL_CTX_set_min_proto_version(c->own_ctx, TLS1_2_VERSION);
            SSL_CTX_set_verify(c->own_ctx, SSL_VERIFY_NONE, NULL);
        }
        ctx = c->own_ctx;
    }
    c->ssl = SSL_new(ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
        SSL_free(c->ssl);
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        c->ssl = NULL;
        c->rbio = c->wbio = NULL;
        return -1;
    }
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_connect_state(c->ssl);
    struct in6_addr tmp;
    if (inet_pton(AF_INET, c->cur_host, &tmp) != 1 && inet_pton(AF_INET6, c->cur_host, &tmp) != 1 &&
        strchr(c->cur_host, ':') == NULL)
        SSL_set_tlsext_host_name(c->ssl, c->cur_host);
    return 0;
}

/* After EHLO/HELO (and TLS): the session is ready for the transaction. */
static void session_ready(smtp_client *c)
{
    int pol = c->cfg.tls_policy;
    if (!c->tls_active && pol != SMTP_TLS_NONE) {
        if (c->ext_starttls && tls_available()) {
            sm_move(c, ST_STARTTLS);
            timer_arm(c, c->cfg.command_timeout_ms);
            send_or_fail(c, conn_sendf(c, "STARTTLS\r\n"));
            return;
        }
        if (pol == SMTP_TLS_REQUIRED) {
            host_failed(c, 0, "", SMTP_INT_TLS_FAILED,
                        c->ext_starttls ? "STARTTLS offered but TLS is not available here"
                                        : "STARTTLS required but not offered");
            return;
        }
    }
    start_transaction(c);
}

static void send_rcpt(smtp_client *c, size_t k)
{
    send_or_fail(c, conn_sendf(c, "RCPT TO:<%s>\r\n", c->msg.rcpts[k]));
}

static void start_transaction(smtp_client *c)
{
    char size_arg[40] = "", body_arg[20] = "";
    if (c->ext_size > 0 && c->wire_len > c->ext_size) {
        char text[200];
        snprintf(text, sizeof text, "message size %zu exceeds the limit %llu of %s", c->wire_len,
                 (unsigned long long)c->ext_size, c->cur_addr);
        uv_timer_stop(&c->timer);
        sm_move(c, ST_READY);
        for (size_t k = 0; k < c->msg.nrcpts; k++)
            rcpt_set_internal(c, k, SMTP_OUT_FAILED, 552, "5.3.4", SMTP_INT_TOO_BIG, text);
        tx_finish(c, SMTP_INT_TOO_BIG, text);
        return;
    }
    if (c->ext_size > 0)
        snprintf(size_arg, sizeof size_arg, " SIZE=%zu", c->wire_len);
    if (c->msg.body_8bit && c->ext_8bitmime)
        snprintf(body_arg, sizeof body_arg, " BODY=8BITMIME");
    c->reply_i = 0;
    c->mail_ok = 0;
    c->naccepted = 0;
    c->body_sent = 0;
    timer_arm(c, c->cfg.command_timeout_ms);
    if (c->ext_pipelining) {
        /* MAIL and every RCPT in one write (RFC 2920); DATA waits for the replies */
        size_t cap = 64 + strlen(c->msg.mail_from);
        for (size_t k = 0; k < c->msg.nrcpts; k++)
            cap += 16 + strlen(c->msg.rcpts[k]);
        uint8_t *buf = malloc(cap);
        if (buf == NULL) {
            tx_abort(c, SMTP_INT_CONNECTION_LOST, "out of memory");
            return;
        }
        int n = snprintf((char *)buf, cap, "MAIL FROM:<%s>%s%s\r\n", c->msg.mail_from, size_arg,
                         body_arg);
        size_t off = (size_t)n;
        for (size_t k = 0; k < c->msg.nrcpts; k++)
            off += (size_t)snprintf((char *)buf + off, cap - off, "RCPT TO:<%s>\r\n", c->msg.rcpts[k]);
        sm_move(c, ST_MAIL);
        send_or_fail(c, conn_send_owned(c, buf, off, 0));
        return;
    }
    sm_move(c, ST_MAIL);
    send_or_fail(c, conn_sendf(c, "MAIL FROM:<%s>%s%s\r\n", c->msg.mail_from, size_arg, body_arg));
}

static void after_rcpts(smtp_client *c)
{
    if (!c->mail_ok) {
        for (size_t k = 0; k < c->msg.nrcpts; k++)
            rcpt_set_reply(c, k, &c->mail_reply);
    }
    if (c->naccepted == 0) {
        uv_timer_stop(&c->timer);
        sm_move(c, ST_READY);
        tx_finish(c, SMTP_INT_NONE, "");
        return;
    }
    sm_move(c, ST_DATA);
    timer_arm(c, c->cfg.command_timeout_ms);
    send_or_fail(c, conn_sendf(c, "DATA\r\n"));
}

/* A reply that decides every accepted recipient, then READY (or closed on 421). */
static void finish_with_reply(smtp_client *c, const smtp_reply *r)
{
    for (size_t k = 0; k < c->msg.nrcpts; k++)
        if (c->accepted[k] && !c->decided[k])
            rcpt_set_reply(c, k, r);
    uv_timer_stop(&c->timer);
    if (r->code == 421) {
        conn_drop(c);
        sm_move(c, ST_IDLE);
    } else {
        sm_move(c, ST_READY);
    }
    tx_finish(c, SMTP_INT_NONE, "");
}

static void on_reply(smtp_client *c, const smtp_reply *r)
{
    char qt[256];
    rc_debug("smtp_client", "reply state=%s code=%d text=%s", client_states[c->state].name, r->code,
             rc_log_quote(qt, sizeof qt, r->text, r->text_len));
    switch (c->state) {
    case ST_GREETING:
        if (r->code != 220) {
            host_failed(c, r->code, r->enhanced, SMTP_INT_NONE, r->text);
            return;
        }
        sm_move(c, ST_EHLO);
        timer_arm(c, c->cfg.command_timeout_ms);
        send_or_fail(c, conn_sendf(c, "EHLO %s\r\n", c->helo));
        return;
    case ST_EHLO:
        if (r->code == 250) {
            parse_ehlo(c, r);
            session_ready(c);
            return;
        }
        if (r->code == 421) {
            host_failed(c, r->code, r->enhanced, SMTP_INT_NONE, r->text);
            return;
        }
        if (c->tls_active) { /* EHLO refused after STARTTLS: give up on this host */
            host_failed(c, r->code, r->enhanced, SMTP_INT_NONE, r->text);
            return;
        }
        sm_move(c, ST_HELO);
        timer_arm(c, c->cfg.command_timeout_ms);
        send_or_fail(c, conn_sendf(c, "HELO %s\r\n", c->helo));
        return;
    case ST_HELO:
        if (r->code != 250) {
            host_failed(c, r->code, r->enhanced, SMTP_INT_NONE, r->text);
            return;
        }
        c->ext_esmtp = 0;
        session_ready(c);
        return;
    case ST_STARTTLS:
        if (r->code != 220) {
            if (c->cfg.tls_policy == SMTP_TLS_REQUIRED) {
                host_failed(c, 0, "", SMTP_INT_TLS_FAILED, r->text);
                return;
            }
            start_transaction(c); /* opportunistic: carry on in plain text */
            return;
        }
        if (tls_start(c) != 0) {
            host_failed(c, 0, "", SMTP_INT_TLS_FAILED, "cannot create a TLS session");
            return;
        }
        sm_move(c, ST_TLS);
        timer_arm(c, c->cfg.command_timeout_ms);
        tls_step(c);
        return;
    case ST_RSET:
        if (r->code != 250) {
            uv_timer_stop(&c->timer);
            conn_drop(c);
            c->conn_reused = 0;
            c->host_i = 0;
            sm_move(c, ST_CONNECTING);
            connect_next(c);
            return;
        }
        start_transaction(c);
        return;
    case ST_MAIL:
    case ST_RCPT:
        if (c->reply_i == 0) {
            c->mail_ok = r->code >= 200 && r->code < 300;
            if (!c->mail_ok)
                c->mail_reply = *r;
            c->reply_i = 1;
            if (!c->ext_pipelining) {
                if (!c->mail_ok) {
                    after_rcpts(c);
                    return;
                }
                sm_move(c, ST_RCPT);
                timer_arm(c, c->cfg.command_timeout_ms);
                send_rcpt(c, 0);
            } else if (c->msg.nrcpts == 0) {
                after_rcpts(c);
            }
            return;
        }
        {
            size_t k = c->reply_i - 1;
            if (c->mail_ok) {
                if (r->code >= 200 && r->code < 300) {
                    c->accepted[k] = 1;
                    c->naccepted++;
                } else {
                    rcpt_set_reply(c, k, r);
                }
            }
            c->reply_i++;
            if (r->code == 421 && c->mail_ok) { /* server is closing: nothing more will come */
                uv_timer_stop(&c->timer);
                for (size_t j = 0; j < c->msg.nrcpts; j++)
                    if (!c->decided[j]) {
                        c->accepted[j] = 0;
                        rcpt_set_reply(c, j, r);
                    }
                conn_drop(c);
                sm_move(c, ST_IDLE);
                tx_finish(c, SMTP_INT_NONE, "");
                client_maybe_free(c);
                return;
            }
            if (c->reply_i <= c->msg.nrcpts) {
                if (!c->ext_pipelining) {
                    timer_arm(c, c->cfg.command_timeout_ms);
                    send_rcpt(c, c->reply_i - 1);
                }
                return;
            }
            after_rcpts(c);
        }
        return;
    case ST_DATA:
        if (r->code != 354) {
            finish_with_reply(c, r);
            client_maybe_free(c);
            return;
        }
        sm_move(c, ST_BODY);
        timer_arm(c, c->cfg.command_timeout_ms);
        {
            uint8_t *w = c->wire;
            c->wire = NULL;
            send_or_fail(c, conn_send_owned(c, w, c->wire_len, 1));
        }
        return;
    case ST_BODY:
        finish_with_reply(c, r);
        client_maybe_free(c);
        return;
    case ST_QUIT:
        uv_timer_stop(&c->timer);
        conn_drop(c);
        sm_move(c, ST_IDLE);
        client_maybe_free(c);
        return;
    case ST_READY: /* unsolicited, e.g. 421 before an idle close */
        uv_timer_stop(&c->timer);
        conn_drop(c);
        sm_move(c, ST_IDLE);
        client_maybe_free(c);
        return;
    default:
        return;
    }
}

static void read_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct smtp_conn *k = h->data;
    smtp_client *c = k->c;
    if (c == NULL) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = c->rbuf;
    buf->len = sizeof c->rbuf;
}

/* Parses plaintext dialogue bytes; stops when the connection changes, the
 * client closes, or STARTTLS begins (plaintext after the 220 to STARTTLS is
 * dropped: it would be injected into the TLS session, CVE-2011-0411). */
static void feed_plain(smtp_client *c, const char *data, size_t n)
{
    size_t pos = 0;
    struct smtp_conn *conn = c->conn;
    while (pos < n && c->conn == conn && c->state != ST_CLOSING && c->state != ST_CLOSED &&
           c->state != ST_TLS) {
        size_t used = 0;
        int rv = smtp_reply_parser_feed(c->parser, data + pos, n - pos, &used, &c->reply);
        pos += used;
        if (rv < 0) {
            on_io_error(c, SMTP_INT_PROTOCOL, smtp_reply_strerror(rv));
            return;
        }
        if (rv != SMTP_REPLY_DONE)
            break;
        on_reply(c, &c->reply);
    }
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct smtp_conn *k = s->data;
    smtp_client *c = k->c;
    if (c == NULL || nread == 0)
        return;
    if (nread < 0) {
        on_io_error(c, SMTP_INT_CONNECTION_LOST,
                    nread == UV_EOF ? "connection closed by peer" : uv_strerror((int)nread));
        return;
    }
    if (c->ssl == NULL) {
        feed_plain(c, buf->base, (size_t)nread);
        return;
    }
    if (BIO_write(c->rbio, buf->base, (int)nread) != (int)nread) {
        on_io_error(c, SMTP_INT_TLS_FAILED, "TLS buffer");
        return;
    }
    if (c->state == ST_TLS) {
        tls_step(c);
        if (c->ssl == NULL || c->state == ST_TLS)
            return;
    }
    struct smtp_conn *conn = c->conn;
    while (c->ssl != NULL && c->conn == conn && c->tls_active) {
        int r = SSL_read(c->ssl, c->pbuf, sizeof c->pbuf);
        if (r <= 0) {
            int e = SSL_get_error(c->ssl, r);
            ERR_clear_error();
            if (e == SSL_ERROR_WANT_READ)
                return;
            on_io_error(c, SMTP_INT_CONNECTION_LOST,
                        e == SSL_ERROR_ZERO_RETURN ? "TLS closed by peer" : "TLS error");
            return;
        }
        feed_plain(c, c->pbuf, (size_t)r);
    }
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct smtp_conn *k = req->data;
    smtp_client *c = k->c;
    if (c == NULL)
        return;
    if (status < 0) {
        on_io_error(c, SMTP_INT_CONNECT_FAILED, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&k->tcp, 1);
    sm_move(c, ST_GREETING);
    timer_arm(c, c->cfg.greeting_timeout_ms);
    int rv = uv_read_start((uv_stream_t *)&k->tcp, read_alloc_cb, read_cb);
    if (rv != 0)
        on_io_error(c, SMTP_INT_CONNECTION_LOST, uv_strerror(rv));
}

static void addr_text(const struct sockaddr_storage *ss, char *dst, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const void *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        port = ntohs(s4->sin_port);
        snprintf(dst, size, "%s:%u", ip, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        port = ntohs(s6->sin6_port);
        snprintf(dst, size, "[%s]:%u", ip, port);
    } else {
        snprintf(dst, size, "?");
    }
}

/* Connects to hosts[host_i]; state is CONNECTING. */
static void connect_next(smtp_client *c)
{
    while (c->host_i < c->nhosts) {
        struct smtp_client_host *h = &c->hosts[c->host_i];
        addr_text(&h->addr, c->cur_addr, sizeof c->cur_addr);
        snprintf(c->cur_host, sizeof c->cur_host, "%s", h->name ? h->name : c->cur_addr);
        struct smtp_conn *k = calloc(1, sizeof *k);
        if (k == NULL)
            break;
        if (uv_tcp_init(c->loop, &k->tcp) != 0) {
            free(k);
            break;
        }
        k->c = c;
        k->tcp.data = k;
        k->connect.data = k;
        c->conn = k;
        c->conn_reused = 0;
        rc_debug("smtp_client", "connect host=%s addr=%s", c->cur_host, c->cur_addr);
        timer_arm(c, c->cfg.connect_timeout_ms);
        int rv = uv_tcp_connect(&k->connect, &k->tcp, (const struct sockaddr *)&h->addr, connect_cb);
        if (rv == 0)
            return;
        c->last_code = 0;
        c->last_internal = SMTP_INT_CONNECT_FAILED;
        snprintf(c->last_text, sizeof c->last_text, "%s: %s", c->cur_addr, uv_strerror(rv));
        uv_timer_stop(&c->timer);
        conn_drop(c);
        c->host_i++;
    }
    sm_move(c, ST_IDLE);
    if (c->nhosts == 0) {
        c->last_internal = SMTP_INT_NO_HOSTS;
        snprintf(c->last_text, sizeof c->last_text, "no host to connect to");
    }
    tx_finish(c, c->last_internal ? c->last_internal : SMTP_INT_CONNECT_FAILED, c->last_text);
    client_maybe_free(c);
}

/* ------------------------------------------------------------- public */

int smtp_client_new(smtp_client **out, uv_loop_t *loop, const struct smtp_client_config *cfg)
{
    smtp_client *c = calloc(1, sizeof *c);
    int rv;
    if (c == NULL)
        return SMTP_CLIENT_ENOMEM;
    c->loop = loop;
    if (cfg)
        c->cfg = *cfg;
    struct smtp_client_config *k = &c->cfg;
    snprintf(c->helo, sizeof c->helo, "%s", k->helo_name && k->helo_name[0] ? k->helo_name : "localhost");
    k->helo_name = NULL;
    if (!k->connect_timeout_ms) k->connect_timeout_ms = 30000;
    if (!k->greeting_timeout_ms) k->greeting_timeout_ms = 300000;
    if (!k->command_timeout_ms) k->command_timeout_ms = 300000;
    if (!k->final_timeout_ms) k->final_timeout_ms = 600000;
    if (!k->quit_timeout_ms) k->quit_timeout_ms = 10000;
    if (!k->max_hosts) k->max_hosts = 16;
    struct smtp_reply_limits lim = { k->max_reply_line, k->max_reply_lines };
    if ((rv = smtp_reply_parser_new(&c->parser, &lim)) != SMTP_REPLY_OK) {
        rv = rv == SMTP_REPLY_ENOMEM ? SMTP_CLIENT_ENOMEM : SMTP_CLIENT_EINVAL;
        goto err_after_alloc;
    }
    if (uv_timer_init(loop, &c->timer) != 0) {
        rv = SMTP_CLIENT_EINVAL;
        goto err_after_parser;
    }
    c->timer.data = c;
    c->state = ST_IDLE;
    *out = c;
    return SMTP_CLIENT_OK;
err_after_parser:
    smtp_reply_parser_free(c->parser);
err_after_alloc:
    free(c);
    return rv;
}

int smtp_client_send(smtp_client *c, const struct smtp_client_host *hosts, size_t nhosts,
                     const struct smtp_client_msg *msg, smtp_client_cb cb, void *arg)
{
    if (c == NULL || msg == NULL || cb == NULL || msg->mail_from == NULL ||
        (msg->nrcpts > 0 && msg->rcpts == NULL) || (msg->body == NULL && msg->body_len > 0) ||
        (hosts == NULL && nhosts > 0))
        return SMTP_CLIENT_EINVAL;
    if (c->tx_active || c->close_requested || (c->state != ST_IDLE && c->state != ST_READY))
        return SMTP_CLIENT_EBUSY;
    /* CR, LF or '>' in a path would inject commands */
    if (strpbrk(msg->mail_from, "\r\n<>") != NULL)
        return SMTP_CLIENT_EINVAL;
    for (size_t k = 0; k < msg->nrcpts; k++)
        if (msg->rcpts[k] == NULL || msg->rcpts[k][0] == '\0' || strpbrk(msg->rcpts[k], "\r\n<>") ||
            strlen(msg->rcpts[k]) > 1000)
            return SMTP_CLIENT_EINVAL;
    if (strlen(msg->mail_from) > 1000 || msg->nrcpts == 0)
        return SMTP_CLIENT_EINVAL;
    if (nhosts > c->cfg.max_hosts)
        nhosts = c->cfg.max_hosts;
    c->msg = *msg;
    for (size_t i = 0; i < msg->body_len && !c->msg.body_8bit; i++)
        if (msg->body[i] & 0x80)
            c->msg.body_8bit = 1;
    c->hosts = calloc(nhosts ? nhosts : 1, sizeof *c->hosts);
    c->res = calloc(msg->nrcpts, sizeof *c->res);
    c->decided = calloc(msg->nrcpts, sizeof *c->decided);
    c->accepted = calloc(msg->nrcpts, sizeof *c->accepted);
    c->wire = smtp_client_wire_body(msg->body ? msg->body : (const uint8_t *)"", msg->body_len,
                                    &c->wire_len);
    if (c->hosts == NULL || c->res == NULL || c->decided == NULL || c->accepted == NULL ||
        c->wire == NULL) {
        tx_free(c);
        return SMTP_CLIENT_ENOMEM;
    }
    if (nhosts)
        memcpy(c->hosts, hosts, nhosts * sizeof *hosts);
    c->nhosts = nhosts;
    c->host_i = 0;
    c->cb = cb;
    c->cb_arg = arg;
    c->tx_active = 1;
    c->last_code = 0;
    c->last_internal = 0;
    c->last_enhanced[0] = '\0';
    c->last_text[0] = '\0';
    if (c->state == ST_READY) {
        c->conn_reused = 1;
        sm_move(c, ST_RSET);
        timer_arm(c, c->cfg.command_timeout_ms);
        send_or_fail(c, conn_sendf(c, "RSET\r\n"));
        return SMTP_CLIENT_OK;
    }
    sm_move(c, ST_CONNECTING);
    connect_next(c);
    return SMTP_CLIENT_OK;
}

int smtp_client_is_connected(const smtp_client *c)
{
    return c->state == ST_READY;
}

static void client_timer_close_cb(uv_handle_t *h)
{
    smtp_client *c = h->data;
    void (*cb)(void *) = c->closed_cb;
    void *arg = c->closed_arg;
    smtp_reply_parser_free(c->parser);
    SSL_CTX_free(c->own_ctx);
    free(c);
    if (cb)
        cb(arg);
}

/* Frees the client once close was requested and the connection is gone. */
static void client_maybe_free(smtp_client *c)
{
    if (!c->close_requested || c->tx_active || c->conn != NULL || c->state == ST_CLOSING ||
        c->state == ST_CLOSED)
        return;
    sm_move(c, ST_CLOSING);
    uv_timer_stop(&c->timer);
    sm_move(c, ST_CLOSED);
    uv_close((uv_handle_t *)&c->timer, client_timer_close_cb);
}

void smtp_client_close(smtp_client *c, void (*closed_cb)(void *), void *arg)
{
    if (c == NULL || c->close_requested)
        return;
    c->close_requested = 1;
    c->closed_cb = closed_cb;
    c->closed_arg = arg;
    if (c->tx_active) {
        uv_timer_stop(&c->timer);
        conn_drop(c);
        sm_move(c, ST_IDLE);
        tx_finish(c, SMTP_INT_CANCELED, "canceled");
    }
    if (c->state == ST_READY) {
        sm_move(c, ST_QUIT);
        timer_arm(c, c->cfg.quit_timeout_ms);
        if (conn_sendf(c, "QUIT\r\n") == SMTP_CLIENT_OK)
            return;
        uv_timer_stop(&c->timer);
        conn_drop(c);
        sm_move(c, ST_IDLE);
    }
    if (c->conn != NULL) { /* QUIT in flight: its reply or timeout closes */
        return;
    }
    client_maybe_free(c);
}
