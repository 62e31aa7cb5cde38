/* TLS engine on OpenSSL memory BIOs (see smtp_tls.h). Happy path: bytes in
 * -> BIO_write(rbio) -> SSL_do_handshake until done -> SSL_read loop ->
 * io.plain; SSL_write -> BIO_read(wbio) -> io.send. Failure modes: any
 * SSL error other than WANT_READ/WANT_WRITE fails the call with the
 * OpenSSL reason kept in errmsg; the error queue is always left empty. */
#include "smtp/smtp_tls.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

struct smtp_tls {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    struct smtp_tls_io io;
    void *data;
    bool ready, shut;
    char errmsg[256];
};

const char *smtp_tls_strerror(int err)
{
    switch (err) {
    case SMTP_TLS_OK: return "ok";
    case SMTP_TLS_ENOMEM: return "out of memory";
    case SMTP_TLS_EHANDSHAKE: return "TLS handshake failed";
    case SMTP_TLS_EIO: return "TLS error";
    case SMTP_TLS_CLOSED: return "TLS closed by peer";
    case SMTP_TLS_ESTOPPED: return "stopped";
    default: return "unknown TLS error";
    }
}

static void set_err(smtp_tls *t, const char *what)
{
    unsigned long e = ERR_get_error();
    char reason[200] = "";
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    snprintf(t->errmsg, sizeof t->errmsg, "%s%s%s", what, e ? ": " : "", reason);
    ERR_clear_error();
}

/* Moves what OpenSSL produced to the wire. */
static int flush_out(smtp_tls *t)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(t->wbio, buf, sizeof buf)) > 0) {
        if (t->io.send(t->data, buf, (size_t)n) != 0) {
            snprintf(t->errmsg, sizeof t->errmsg, "send failed");
            return SMTP_TLS_EIO;
        }
    }
    return SMTP_TLS_OK;
}

smtp_tls *smtp_tls_new(void *ssl_ctx, enum smtp_tls_role role, const char *sni, const struct smtp_tls_io *io,
                       void *data)
{
    if (ssl_ctx == NULL || io == NULL || io->send == NULL || io->plain == NULL)
        return NULL;
    smtp_tls *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->io = *io;
    t->data = data;
    t->ssl = SSL_new(ssl_ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    if (role == SMTP_TLS_ROLE_CLIENT) {
        SSL_set_connect_state(t->ssl);
        if (sni && *sni)
            SSL_set_tlsext_host_name(t->ssl, sni);
    } else {
        SSL_set_accept_state(t->ssl);
    }
    return t;
}

static int handshake(smtp_tls *t)
{
    int rv = SSL_do_handshake(t->ssl);
    int frv = flush_out(t);
    if (frv != SMTP_TLS_OK)
        return frv;
    if (rv == 1) {
        t->ready = true;
        if (t->io.ready)
            t->io.ready(t->data);
        return SMTP_TLS_OK;
    }
    int e = SSL_get_error(t->ssl, rv);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return SMTP_TLS_OK;
    }
    set_err(t, "handshake");
    return SMTP_TLS_EHANDSHAKE;
}

int smtp_tls_start(smtp_tls *t)
{
    if (SSL_is_server(t->ssl))
        return SMTP_TLS_OK;
    return handshake(t);
}

int smtp_tls_feed(smtp_tls *t, const char *buf, size_t len)
{
    while (len > 0) {
        int chunk = len > INT_MAX ? INT_MAX : (int)len;
        int w = BIO_write(t->rbio, buf, chunk);
        if (w <= 0) {
            set_err(t, "buffer");
            return SMTP_TLS_ENOMEM;
        }
        buf += w;
        len -= (size_t)w;
    }
    if (!t->ready) {
        int rv = handshake(t);
        if (rv != SMTP_TLS_OK || !t->ready)
            return rv;
    }
    char plain[16384];
    for (;;) {
        int n = SSL_read(t->ssl, plain, sizeof plain);
        if (n > 0) {
            if (t->io.plain(t->data, plain, (size_t)n) != 0)
                return SMTP_TLS_ESTOPPED;
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        int frv = flush_out(t); /* post-handshake messages, key updates */
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            ERR_clear_error();
            return frv;
        }
        if (e == SSL_ERROR_ZERO_RETURN) {
            ERR_clear_error();
            snprintf(t->errmsg, sizeof t->errmsg, "close_notify");
            return SMTP_TLS_CLOSED;
        }
        set_err(t, "read");
        return SMTP_TLS_EIO;
    }
}

int smtp_tls_write(smtp_tls *t, const char *buf, size_t len)
{
    if (!t->ready || t->shut) {
        snprintf(t->errmsg, sizeof t->errmsg, "write before handshake or after shutdown");
        return SMTP_TLS_EIO;
    }
    while (len > 0) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        int n = SSL_write(t->ssl, buf, chunk);
        if (n <= 0) {
            set_err(t, "write");
            return SMTP_TLS_EIO;
        }
        buf += n;
        len -= (size_t)n;
        int frv = flush_out(t);
        if (frv != SMTP_TLS_OK)
            return frv;
    }
    return SMTP_TLS_OK;
}

void smtp_tls_shutdown(smtp_tls *t)
{
    if (t->shut || !t->ready)
        return;
    t->shut = true;
    SSL_shutdown(t->ssl);
    ERR_clear_error();
    flush_out(t);
}

bool smtp_tls_ready(const smtp_tls *t)
{
    return t->ready;
}

const char *smtp_tls_version(const smtp_tls *t)
{
    return t->ready ? SSL_get_version(t->ssl) : "";
}

const char *smtp_tls_cipher(const smtp_tls *t)
{
    const char *c = t->ready ? SSL_get_cipher_name(t->ssl) : NULL;
    return c ? c : "";
}

int smtp_tls_cipher_bits(const smtp_tls *t)
{
    return t->ready ? SSL_get_cipher_bits(t->ssl, NULL) : 0;
}

const char *smtp_tls_errmsg(const smtp_tls *t)
{
    return t->errmsg;
}

void smtp_tls_free(smtp_tls *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl); /* frees both BIOs */
    free(t);
}

void *smtp_tls_server_ctx(const char *cert_chain, const char *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "SSL_CTX_new failed");
        ERR_clear_error();
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

void *smtp_tls_client_ctx(bool verify, const char *cafile, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "SSL_CTX_new failed");
        ERR_clear_error();
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (verify) {
        int ok = cafile ? SSL_CTX_load_verify_locations(ctx, cafile, NULL) : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            snprintf(err, errlen, "cannot load CA certificates %s", cafile ? cafile : "(system)");
            ERR_clear_error();
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

void smtp_tls_ctx_free(void *ctx)
{
    SSL_CTX_free(ctx);
}
