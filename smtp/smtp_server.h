/* ESMTP server (RFC 5321) on libuv: the MX/relay and submission listeners.
 *
 * The session (smtp_session.c) is an explicit state machine with a command
 * table; it is transport-free, so tests and the fuzzer drive it directly.
 * The server (smtp_server.c) adds sockets, limits and timeouts.
 *
 * The node decides what "accepted" means through hooks: admission at
 * connect and MAIL, a message id for the Received: header, and the final
 * reply after the message is stored (asynchronously: the session waits,
 * pipelined commands queue, and a late completion after the client left is
 * safe). smtp/ knows nothing of Raft. */
#ifndef SMTP_SERVER_H
#define SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "smtp/smtp_auth.h"
#include "smtp/smtp_tls.h"

#define SMTP_MAX_LOCAL_DOMAINS 8
#define SMTP_MAX_NETWORKS 32

struct smtp_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned prefix;
};

struct smtp_server_config {
    const char *hostname;          /* greeting and Received: */
    size_t max_message_size;       /* SIZE; default 25 MiB; larger -> 552 5.3.4, data dropped */
    size_t max_line;               /* command/text line incl. CRLF; default 1000 */
    unsigned max_recipients;       /* default 100; more -> 452 4.5.3 */
    unsigned max_errors;           /* bad commands before 421 and close; default 10 */
    unsigned max_connections;      /* default 10000; more -> 421 4.7.0 */
    unsigned max_connections_per_ip; /* default 100; more -> 421 4.7.0 */
    unsigned command_timeout_ms;   /* default 300000 (RFC 5321 4.5.3.2) */
    unsigned data_timeout_ms;      /* default 600000 */
    size_t max_pipeline;           /* input buffered while a reply is pending; default 64 KiB;
                                    * a client that floods past it while waiting gets 421 4.7.0 */
    size_t max_unread_output;      /* replies queued to a client that does not read; default 1 MiB,
                                    * beyond: the connection is closed */
    /* Domains that take mail from anyone (the cluster's bounce and feedback
     * domains); subdomains are not included. */
    const char *local_domains[SMTP_MAX_LOCAL_DOMAINS];
    size_t n_local_domains;
    struct smtp_cidr relay_networks[SMTP_MAX_NETWORKS];
    size_t n_relay_networks;
    void *tls_ctx;                 /* SSL_CTX for STARTTLS; NULL: not offered */
    const struct smtp_users *users;/* AUTH PLAIN/LOGIN after STARTTLS; NULL: no AUTH */
};
/* The SSL_CTX for tls_ctx comes from smtp_tls_server_ctx() (smtp_tls.h). */
void smtp_server_config_defaults(struct smtp_server_config *c);
/* Parses "10.0.0.0/8, ::1/128" into c->relay_networks; -1 with err. */
int smtp_parse_networks(struct smtp_server_config *c, const char *list, char *err, size_t errlen);

struct smtp_rcpt {
    char *address;  /* as given, without <> */
    char *notify;   /* DSN NOTIFY, NULL if absent */
    char *orcpt;    /* DSN ORCPT, NULL if absent */
};

struct smtp_envelope {
    char *mail_from; /* "" for <> */
    char *ret;       /* FULL or HDRS, NULL if absent */
    char *envid;
    char *body_type; /* 7BIT, 8BITMIME */
    bool smtputf8;
    char *auth_user;
    char client_addr[64];
    char *helo;
    struct smtp_rcpt *rcpts;
    size_t n_rcpts;
    bool tls;
};

typedef struct smtp_accept smtp_accept; /* completion token */

struct smtp_hooks {
    /* At connect (mail_from NULL) and at MAIL: NULL to proceed, or a full
     * reply line ("421 4.3.2 ...", "451 4.3.0 ...") to refuse with. A 421
     * closes the session. */
    const char *(*admit)(void *data, const struct smtp_envelope *env_or_null);
    /* A message id for the Received: header and the final reply. */
    void (*new_id)(void *data, char *buf, size_t len);
    /* The message is complete (Received: header prepended to body). The
     * node must call smtp_accept_done(tok, reply) exactly once. */
    void (*on_message)(void *data, smtp_accept *tok, const char *id,
                       const struct smtp_envelope *env, const uint8_t *body, size_t len);
};

/* Completes a pending message with a full reply line (without CRLF), e.g.
 * "250 2.0.0 Ok: queued as ID". Safe after the client disconnected. */
void smtp_accept_done(smtp_accept *tok, const char *reply);

/* ------------------------------------------------- transport-free session */

typedef struct smtp_session smtp_session;

struct smtp_session_io {
    void (*write)(void *io, const char *buf, size_t len);
    void (*close)(void *io);          /* after the queued writes */
    void (*pause)(void *io, bool on); /* stop/resume reading (a reply is pending) */
    void (*timeout)(void *io, unsigned ms); /* (re)arm the idle timer */
    /* Switch to TLS (server side) after the 220 just written; 0 or -1. */
    int (*starttls)(void *io);
    /* Optional: run work(arg) off the event loop (a thread), then done(arg)
     * on the loop, exactly once, even after the session was freed (the
     * session detaches). 0, or -1 to run inline. Used for the PBKDF2 of
     * AUTH; NULL: inline. */
    int (*offload)(void *io, void (*work)(void *arg), void (*done)(void *arg), void *arg);
};

smtp_session *smtp_session_new(const struct smtp_server_config *cfg, const struct smtp_hooks *hooks,
                               void *hook_data, const struct smtp_session_io *io, void *io_data,
                               const char *client_addr, bool submission);
void smtp_session_start(smtp_session *s);              /* greeting or refusal */
void smtp_session_input(smtp_session *s, const char *buf, size_t len);
void smtp_session_timeout(smtp_session *s);            /* the idle timer fired */
/* The transport finished the TLS handshake after STARTTLS: the version and
 * cipher go into the Received: header ("using TLSv1.3 with cipher ..."). */
void smtp_session_tls_info(smtp_session *s, const char *version, const char *cipher, int bits);
/* Graceful shutdown: an idle session answers 421 4.3.2 and closes now; a
 * session inside a transaction finishes it (the node's reply included),
 * then any further MAIL gets 421 4.3.2 and the session closes. */
void smtp_session_drain(smtp_session *s);
void smtp_session_free(smtp_session *s);               /* detaches a pending token */
bool smtp_session_closing(const smtp_session *s);
/* Heap bytes this session holds (input buffer, message, envelope): for
 * tests and for the node's memory accounting. */
size_t smtp_session_memory(const smtp_session *s);
bool smtp_session_busy(const smtp_session *s); /* inside a transaction */

/* ---------------------------------------------------------------- server */

typedef struct smtp_server smtp_server;

enum smtp_server_err {
    SMTP_SERVER_OK = 0,
    SMTP_SERVER_ENOMEM = -3101,
    SMTP_SERVER_EADDR = -3102,
    SMTP_SERVER_ELISTEN = -3103,
};

/* Starts listeners: mx_listen (MX/relay) and, when not NULL or empty,
 * submission_listen. Addresses are IP:port or [IPv6]:port. cfg is copied
 * (local_domains strings, tls_ctx and users must outlive the server).
 * On failure *out is untouched and the half-made server frees itself once
 * its handles have closed (the loop must run). */
int smtp_server_start(smtp_server **out, uv_loop_t *loop, const struct smtp_server_config *cfg,
                      const struct smtp_hooks *hooks, void *hook_data,
                      const char *mx_listen, const char *submission_listen,
                      char *err, size_t errlen);
/* Stops listening; sessions finish (each ends at QUIT or timeout, pending
 * messages get their reply); cb once every session has closed. */
void smtp_server_stop(smtp_server *srv, void (*cb)(void *), void *data);
unsigned smtp_server_sessions(const smtp_server *srv);

#endif
