/* The TLS engine in both roles, wired back to back in memory: handshake,
 * data both ways (also fed one byte at a time), close_notify, TLS 1.2 as
 * the floor, and garbage from the peer. The certificate is made here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "smtp/smtp_tls.h"

struct end {
    smtp_tls *t;
    struct end *peer;
    char wire[1 << 16]; /* ciphertext waiting for the peer */
    size_t wire_len;
    char got[4096];
    size_t got_len;
    int ready;
    int stop_after; /* plain(): stop after this many calls when > 0 */
    int plain_calls;
    size_t total; /* plaintext octets delivered */
};

static int e_send(void *data, const char *buf, size_t len)
{
    struct end *e = data;
    if (e->wire_len + len > sizeof e->wire)
        return -1;
    memcpy(e->wire + e->wire_len, buf, len);
    e->wire_len += len;
    return 0;
}

static int e_plain(void *data, const char *buf, size_t len)
{
    struct end *e = data;
    e->total += len;
    for (size_t i = 0; i < len; i++)
        if (e->total > 8 && buf[i] != 'q') /* after "EHLO c\r\n" only q's come */
            return -1;
    if (e->got_len + len < sizeof e->got) {
        memcpy(e->got + e->got_len, buf, len);
        e->got_len += len;
    }
    return e->stop_after > 0 && ++e->plain_calls >= e->stop_after;
}

static void e_ready(void *data) { ((struct end *)data)->ready++; }

static const struct smtp_tls_io end_io = {e_send, e_plain, e_ready};

/* Moves ciphertext between the ends until both are quiet; returns the
 * last non-OK result of a feed, or OK. */
static int pump(struct end *a, struct end *b, int bytewise)
{
    int rv = SMTP_TLS_OK;
    for (int round = 0; round < 100 && (a->wire_len || b->wire_len); round++) {
        struct end *ends[2] = {a, b};
        for (int i = 0; i < 2; i++) {
            struct end *from = ends[i], *to = ends[1 - i];
            char buf[sizeof from->wire];
            size_t n = from->wire_len;
            memcpy(buf, from->wire, n);
            from->wire_len = 0;
            for (size_t off = 0; off < n;) {
                size_t step = bytewise ? 1 : n - off;
                int r = smtp_tls_feed(to->t, buf + off, step);
                if (r != SMTP_TLS_OK)
                    rv = r;
                off += step;
            }
        }
    }
    return rv;
}

static void make_cert(const char *cert_path, const char *key_path)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    assert_non_null(pkey);
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pkey);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"tls.test", -1, -1, 0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
    FILE *f = fopen(cert_path, "w");
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key_path, "w");
    PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pkey);
}

static void *server_ctx, *client_ctx;

static int setup(void **state)
{
    (void)state;
    char cert[64], key[64], err[256];
    snprintf(cert, sizeof cert, "/tmp/rc-tls-cert.%d", (int)getpid());
    snprintf(key, sizeof key, "/tmp/rc-tls-key.%d", (int)getpid());
    make_cert(cert, key);
    server_ctx = smtp_tls_server_ctx(cert, key, err, sizeof err);
    remove(cert);
    remove(key);
    if (server_ctx == NULL)
        fail_msg("server ctx: %s", err);
    client_ctx = smtp_tls_client_ctx(false, NULL, err, sizeof err);
    assert_non_null(client_ctx);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    smtp_tls_ctx_free(server_ctx);
    smtp_tls_ctx_free(client_ctx);
    return 0;
}

static void session(int bytewise)
{
    static struct end s, c;
    memset(&s, 0, sizeof s);
    memset(&c, 0, sizeof c);
    s.t = smtp_tls_new(server_ctx, SMTP_TLS_ROLE_SERVER, NULL, &end_io, &s);
    c.t = smtp_tls_new(client_ctx, SMTP_TLS_ROLE_CLIENT, "tls.test", &end_io, &c);
    assert_non_null(s.t);
    assert_non_null(c.t);
    assert_int_equal(smtp_tls_write(c.t, "early", 5), SMTP_TLS_EIO); /* not before the handshake */
    assert_int_equal(smtp_tls_start(s.t), SMTP_TLS_OK); /* server: nothing to say first */
    assert_int_equal(s.wire_len, 0);
    assert_int_equal(smtp_tls_start(c.t), SMTP_TLS_OK);
    assert_true(c.wire_len > 0); /* ClientHello */
    assert_int_equal(pump(&s, &c, bytewise), SMTP_TLS_OK);
    assert_true(smtp_tls_ready(s.t) && smtp_tls_ready(c.t));
    assert_int_equal(s.ready, 1);
    assert_int_equal(c.ready, 1);
    assert_string_equal(smtp_tls_version(s.t), smtp_tls_version(c.t));
    assert_true(strcmp(smtp_tls_version(s.t), "TLSv1.2") == 0 || strcmp(smtp_tls_version(s.t), "TLSv1.3") == 0);
    assert_true(smtp_tls_cipher_bits(s.t) >= 128);
    assert_string_equal(smtp_tls_cipher(s.t), smtp_tls_cipher(c.t));
    /* both ways */
    assert_int_equal(smtp_tls_write(c.t, "EHLO c\r\n", 8), SMTP_TLS_OK);
    assert_int_equal(smtp_tls_write(s.t, "250 ok\r\n", 8), SMTP_TLS_OK);
    assert_int_equal(pump(&s, &c, bytewise), SMTP_TLS_OK);
    assert_int_equal(s.got_len, 8);
    assert_memory_equal(s.got, "EHLO c\r\n", 8);
    assert_int_equal(c.got_len, 8);
    assert_memory_equal(c.got, "250 ok\r\n", 8);
    /* a large write crosses record boundaries */
    char big[40000];
    memset(big, 'q', sizeof big);
    s.got_len = 0;
    assert_int_equal(smtp_tls_write(c.t, big, sizeof big), SMTP_TLS_OK);
    assert_int_equal(pump(&s, &c, 0), SMTP_TLS_OK);
    assert_int_equal(s.total, 8 + sizeof big);
    /* close_notify */
    smtp_tls_shutdown(c.t);
    smtp_tls_shutdown(c.t); /* idempotent */
    assert_int_equal(pump(&s, &c, 0), SMTP_TLS_CLOSED);
    assert_int_equal(smtp_tls_write(c.t, "x", 1), SMTP_TLS_EIO); /* after shutdown */
    smtp_tls_free(s.t);
    smtp_tls_free(c.t);
}

static void test_both_roles(void **state)
{
    (void)state;
    session(0);
}

static void test_fed_one_byte_at_a_time(void **state)
{
    (void)state;
    session(1);
}

static void test_plain_can_stop_delivery(void **state)
{
    (void)state;
    static struct end s, c;
    memset(&s, 0, sizeof s);
    memset(&c, 0, sizeof c);
    s.t = smtp_tls_new(server_ctx, SMTP_TLS_ROLE_SERVER, NULL, &end_io, &s);
    c.t = smtp_tls_new(client_ctx, SMTP_TLS_ROLE_CLIENT, NULL, &end_io, &c);
    smtp_tls_start(c.t);
    pump(&s, &c, 0);
    s.stop_after = 1;
    smtp_tls_write(c.t, "one", 3);
    smtp_tls_write(c.t, "two", 3);
    assert_int_equal(pump(&s, &c, 0), SMTP_TLS_ESTOPPED);
    assert_int_equal(s.plain_calls, 1);
    smtp_tls_free(s.t);
    smtp_tls_free(c.t);
}

static void test_garbage_and_old_versions_refused(void **state)
{
    (void)state;
    static struct end s, c;
    memset(&s, 0, sizeof s);
    s.t = smtp_tls_new(server_ctx, SMTP_TLS_ROLE_SERVER, NULL, &end_io, &s);
    int rv = smtp_tls_feed(s.t, "EHLO plain text\r\n", 17);
    assert_int_equal(rv, SMTP_TLS_EHANDSHAKE);
    assert_true(strlen(smtp_tls_errmsg(s.t)) > 0);
    assert_false(smtp_tls_ready(s.t));
    smtp_tls_free(s.t);
    /* a client capped at TLS 1.1 cannot get through */
    SSL_CTX *old = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(old, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(old, TLS1_1_VERSION);
    SSL_CTX_set_security_level(old, 0);
    memset(&s, 0, sizeof s);
    memset(&c, 0, sizeof c);
    s.t = smtp_tls_new(server_ctx, SMTP_TLS_ROLE_SERVER, NULL, &end_io, &s);
    c.t = smtp_tls_new(old, SMTP_TLS_ROLE_CLIENT, NULL, &end_io, &c);
    smtp_tls_start(c.t);
    assert_true(pump(&s, &c, 0) < 0);
    assert_false(smtp_tls_ready(s.t));
    smtp_tls_free(s.t);
    smtp_tls_free(c.t);
    SSL_CTX_free(old);
    /* no context, no engine */
    assert_null(smtp_tls_new(NULL, SMTP_TLS_ROLE_SERVER, NULL, &end_io, &s));
    char err[128];
    assert_null(smtp_tls_server_ctx("/nonexistent/cert.pem", "/nonexistent/key.pem", err, sizeof err));
    assert_non_null(strstr(err, "certificate"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_roles),
        cmocka_unit_test(test_fed_one_byte_at_a_time),
        cmocka_unit_test(test_plain_can_stop_delivery),
        cmocka_unit_test(test_garbage_and_old_versions_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
