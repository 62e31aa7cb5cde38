/* TLS over a byte stream with OpenSSL memory BIOs, for both roles: the
 * server after STARTTLS (smtp_server.c) and, later, the egress client.
 *
 * The engine owns no socket. The owner feeds it the ciphertext it reads
 * (smtp_tls_feed), and the engine hands back what to put on the wire
 * (io.send) and the plaintext it decrypted (io.plain). Happy path:
 * smtp_tls_new -> smtp_tls_start (client: ClientHello) -> feed... ->
 * io.ready once the handshake is done -> smtp_tls_write / io.plain ->
 * smtp_tls_shutdown (close_notify) -> smtp_tls_free.
 * Failure modes: handshake or record errors make feed/write return a
 * negative smtp_tls_err with the reason in smtp_tls_errmsg(); a peer's
 * close_notify makes feed return SMTP_TLS_CLOSED. Contexts allow TLS 1.2
 * or newer only. */
#ifndef SMTP_TLS_H
#define SMTP_TLS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct smtp_tls smtp_tls;

enum smtp_tls_role { SMTP_TLS_ROLE_SERVER = 0, SMTP_TLS_ROLE_CLIENT = 1 };

enum smtp_tls_err {
    SMTP_TLS_OK = 0,
    SMTP_TLS_ENOMEM = -3201,
    SMTP_TLS_EHANDSHAKE = -3202, /* handshake failed */
    SMTP_TLS_EIO = -3203,        /* record layer error, or io.send failed */
    SMTP_TLS_CLOSED = -3204,     /* the peer sent close_notify */
    SMTP_TLS_ESTOPPED = -3205,   /* io.plain asked to stop */
};
const char *smtp_tls_strerror(int err);

struct smtp_tls_io {
    /* Ciphertext for the wire; 0, or -1 to fail the call that produced it. */
    int (*send)(void *data, const char *buf, size_t len);
    /* Decrypted bytes; return non-zero to stop delivering (e.g. the owner
     * is closing). The engine stays valid: free it only after feed returns. */
    int (*plain)(void *data, const char *buf, size_t len);
    /* Optional: the handshake completed (version and cipher are known). */
    void (*ready)(void *data);
};

/* ssl_ctx is an SSL_CTX* (from smtp_tls_server_ctx, smtp_tls_client_ctx or
 * the caller's own). sni: client role only, a host name or NULL. */
smtp_tls *smtp_tls_new(void *ssl_ctx, enum smtp_tls_role role, const char *sni, const struct smtp_tls_io *io,
                       void *data);
/* Client role: produces the ClientHello (through io.send). Server: no-op. */
int smtp_tls_start(smtp_tls *t);
/* Ciphertext read from the wire: drives the handshake, then decrypts. */
int smtp_tls_feed(smtp_tls *t, const char *buf, size_t len);
/* Plaintext to encrypt and send (only after io.ready). */
int smtp_tls_write(smtp_tls *t, const char *buf, size_t len);
/* Sends close_notify if the handshake completed; idempotent. */
void smtp_tls_shutdown(smtp_tls *t);
bool smtp_tls_ready(const smtp_tls *t);
const char *smtp_tls_version(const smtp_tls *t); /* "TLSv1.3", or "" */
const char *smtp_tls_cipher(const smtp_tls *t);  /* "TLS_AES_256_GCM_SHA384", or "" */
int smtp_tls_cipher_bits(const smtp_tls *t);
const char *smtp_tls_errmsg(const smtp_tls *t); /* reason of the last failure */
void smtp_tls_free(smtp_tls *t);

/* Contexts (TLS 1.2 or newer). Server: certificate chain and key, PEM.
 * Client: verify the peer against cafile (NULL: system store) when verify
 * is true. NULL with err on failure. */
void *smtp_tls_server_ctx(const char *cert_chain, const char *key, char *err, size_t errlen);
void *smtp_tls_client_ctx(bool verify, const char *cafile, char *err, size_t errlen);
void smtp_tls_ctx_free(void *ctx);

#endif
