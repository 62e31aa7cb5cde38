/* Outbound SMTP client: one delivery transaction at a time on one connection,
 * on the caller's libuv loop (RFC 5321, with PIPELINING, SIZE, 8BITMIME and
 * STARTTLS).
 *
 * smtp_client_send() takes the candidate hosts in order (from the resolver,
 * with delivery.port set), the envelope and the body, and reports one outcome
 * per recipient through its callback:
 *   2xx → SMTP_OUT_DELIVERED, 4xx → SMTP_OUT_DEFERRED, 5xx → SMTP_OUT_FAILED,
 * with the reply code, enhanced status code, reply text and the remote host;
 * or an internal code (enum smtp_client_internal) when there was no reply.
 * Connection failures, a 421 or other non-2xx greeting, and failures of EHLO,
 * HELO or STARTTLS move on to the next host; once MAIL has been sent, the
 * transaction stays on its host.
 *
 * After a transaction the connection stays open (result.reusable); the next
 * smtp_client_send() on the same client sends RSET and reuses it, whatever
 * its host list says (the caller keeps one client per destination). If the
 * server dropped the idle connection, the client reconnects. */
#ifndef SMTP_CLIENT_H
#define SMTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

enum smtp_client_err {
    SMTP_CLIENT_OK = 0,
    SMTP_CLIENT_ENOMEM = -12,
    SMTP_CLIENT_EINVAL = -22,
    SMTP_CLIENT_EBUSY = -16,    /* a transaction is in progress, or the client is closing */
};
const char *smtp_client_strerror(int err);

enum smtp_client_outcome {
    SMTP_OUT_DELIVERED = 0, /* 2xx after the final dot */
    SMTP_OUT_DEFERRED = 1,  /* 4xx, or a temporary internal code */
    SMTP_OUT_FAILED = 2,    /* 5xx, or SMTP_INT_TOO_BIG */
};

/* Internal codes, reported when no reply decides the outcome. The three
 * timeouts keep the numbers older products used (160, 146, 147). */
enum smtp_client_internal {
    SMTP_INT_NONE = 0,
    SMTP_INT_DIALOGUE_TIMEOUT = 146,   /* temp: no reply to a command (or greeting) in time */
    SMTP_INT_DATA_TIMEOUT = 147,       /* temp: no reply after the final dot in time */
    SMTP_INT_CONNECT_TIMEOUT = 160,    /* temp: TCP connect did not complete in time */
    SMTP_INT_DROPPED_AFTER_DATA = 161, /* temp: connection lost after DATA, before the final reply */
    SMTP_INT_CONNECT_FAILED = 162,     /* temp: connect refused/unreachable on every host */
    SMTP_INT_CONNECTION_LOST = 163,    /* temp: connection lost during the dialogue */
    SMTP_INT_PROTOCOL = 164,           /* temp: malformed reply (see smtp_reply.h) */
    SMTP_INT_TLS_FAILED = 165,         /* temp: STARTTLS required but not offered, refused or failed */
    SMTP_INT_TOO_BIG = 166,            /* perm: message larger than the server's SIZE; not sent */
    SMTP_INT_CANCELED = 167,           /* temp: smtp_client_close() during the transaction */
    SMTP_INT_NO_HOSTS = 168,           /* temp: empty host list */
};
const char *smtp_client_internal_name(int internal); /* "connect_timeout", ... */

enum smtp_tls_policy {
    SMTP_TLS_OPPORTUNISTIC = 0, /* default: STARTTLS when offered, plain text otherwise */
    SMTP_TLS_NONE = 1,          /* never STARTTLS */
    SMTP_TLS_REQUIRED = 2,      /* no TLS → SMTP_INT_TLS_FAILED (next host first) */
};

/* Limits and settings; zero fields take the defaults shown. */
struct smtp_client_config {
    const char *helo_name;          /* EHLO/HELO argument; default "localhost" */
    unsigned connect_timeout_ms;    /* default 30000 */
    unsigned greeting_timeout_ms;   /* default 300000 (RFC 5321 §4.5.3.2.1: 5 min) */
    unsigned command_timeout_ms;    /* each command's reply, each body write; default 300000 */
    unsigned final_timeout_ms;      /* reply after the final dot; default 600000 (10 min) */
    unsigned quit_timeout_ms;       /* reply to QUIT when closing; default 10000 */
    int tls_policy;                 /* enum smtp_tls_policy */
    void *ssl_ctx;                  /* SSL_CTX * for STARTTLS (client role); NULL → a default
                                       context without certificate verification */
    size_t max_reply_line;          /* default SMTP_REPLY_DEFAULT_MAX_LINE */
    size_t max_reply_lines;         /* default SMTP_REPLY_DEFAULT_MAX_LINES */
    size_t max_hosts;               /* candidate hosts used per transaction, default 16 */
};

struct smtp_client_host {
    struct sockaddr_storage addr;   /* IP and port */
    const char *name;               /* MX host name for the report; may be NULL */
};

/* Borrowed until the callback: every pointer must stay valid until then. */
struct smtp_client_msg {
    const char *mail_from;          /* reverse-path without <>, "" for the null sender */
    const char *const *rcpts;       /* forward-paths without <> */
    size_t nrcpts;
    const uint8_t *body;            /* headers + body; any line endings, not dot-stuffed */
    size_t body_len;
    int body_8bit;                  /* 1: send BODY=8BITMIME when the server offers it (also
                                       done when the body has bytes >= 0x80) */
};

#define SMTP_CLIENT_TEXT_MAX 512
struct smtp_rcpt_result {
    int outcome;                    /* enum smtp_client_outcome */
    int code;                       /* SMTP reply code, 0 if none */
    int internal;                   /* enum smtp_client_internal */
    char enhanced[16];              /* "5.1.1" or "" */
    char text[SMTP_CLIENT_TEXT_MAX];/* remote reply text (lines joined by ' '), or our description */
};

struct smtp_client_result {
    size_t nrcpts;
    const struct smtp_rcpt_result *rcpts; /* same order as msg->rcpts; valid during the callback */
    char host[256];                 /* remote host name (or address) that gave the outcome */
    char addr[64];                  /* its "IP:PORT" */
    int tls;                        /* 1: the transaction ran over TLS */
    int reused;                     /* 1: ran on a connection kept from an earlier transaction */
    int reusable;                   /* 1: connection open and idle after this transaction */
};

typedef struct smtp_client smtp_client;
typedef void (*smtp_client_cb)(smtp_client *c, const struct smtp_client_result *res, void *arg);

int smtp_client_new(smtp_client **out, uv_loop_t *loop, const struct smtp_client_config *cfg);
/* Starts a transaction. Returns SMTP_CLIENT_OK and calls cb exactly once
 * later, or returns an error now and never calls cb. */
int smtp_client_send(smtp_client *c, const struct smtp_client_host *hosts, size_t nhosts,
                     const struct smtp_client_msg *msg, smtp_client_cb cb, void *arg);
/* 1 while an idle connection is kept open. */
int smtp_client_is_connected(const smtp_client *c);
/* Ends a transaction in progress (its recipients: deferred, SMTP_INT_CANCELED),
 * sends QUIT on an idle connection, closes; closed_cb (may be NULL) runs once
 * the client is freed. */
void smtp_client_close(smtp_client *c, void (*closed_cb)(void *arg), void *arg);

/* Body conversion used before sending (exposed for tests): CRLF line endings
 * (bare LF and bare CR become CRLF), dot-stuffing, a final CRLF if missing,
 * then ".\r\n". Returns a malloc'd buffer and its length in *out_len. */
uint8_t *smtp_client_wire_body(const uint8_t *body, size_t len, size_t *out_len);

#endif
