/* Unit tests of the SMTP client's body conversion (CRLF, dot-stuffing) and
 * of the argument checks that keep CR/LF out of the dialogue. The dialogue
 * itself is tested against real servers in tests/peers/egress_smtp.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtp/smtp_client.h"

static void expect_wire(const char *in, const char *out)
{
    size_t n = 0;
    uint8_t *w = smtp_client_wire_body((const uint8_t *)in, strlen(in), &n);
    assert_non_null(w);
    assert_int_equal(n, strlen(out));
    assert_memory_equal(w, out, n);
    free(w);
}

static void test_wire_body(void **st)
{
    (void)st;
    expect_wire("", ".\r\n");
    expect_wire("a", "a\r\n.\r\n");
    expect_wire("a\n", "a\r\n.\r\n");
    expect_wire("a\r\n", "a\r\n.\r\n");
    expect_wire("a\rb", "a\r\nb\r\n.\r\n");
    expect_wire("a\n\nb", "a\r\n\r\nb\r\n.\r\n");
    expect_wire(".", "..\r\n.\r\n");
    expect_wire(".\r\n", "..\r\n.\r\n");
    expect_wire("x\n.\n..y\n", "x\r\n..\r\n...y\r\n.\r\n");
    expect_wire("x.y\r\n.z", "x.y\r\n..z\r\n.\r\n");
    expect_wire("a\r\r\nb", "a\r\n\r\nb\r\n.\r\n");
    expect_wire("\r\n.\r\n", "\r\n..\r\n.\r\n");
    /* binary bytes pass through */
    size_t n;
    uint8_t in[3] = { 0x00, 0xff, 0x80 };
    uint8_t *w = smtp_client_wire_body(in, 3, &n);
    assert_int_equal(n, 8);
    assert_memory_equal(w, "\x00\xff\x80\r\n.\r\n", 8);
    free(w);
}

static void noop_cb(smtp_client *c, const struct smtp_client_result *r, void *a)
{
    (void)c; (void)r; (void)a;
    fail();
}

static void test_injection_refused(void **st)
{
    (void)st;
    uv_loop_t loop;
    uv_loop_init(&loop);
    smtp_client *c = NULL;
    assert_int_equal(smtp_client_new(&c, &loop, NULL), SMTP_CLIENT_OK);
    struct smtp_client_host h;
    memset(&h, 0, sizeof h);
    uv_ip4_addr("127.0.0.69", 12599, (struct sockaddr_in *)&h.addr);
    const char *bad_rcpt[] = { "a@b\r\nDATA" };
    const char *ok_rcpt[] = { "a@b" };
    struct smtp_client_msg m = { "s@x", bad_rcpt, 1, (const uint8_t *)"x", 1, 0 };
    assert_int_equal(smtp_client_send(c, &h, 1, &m, noop_cb, NULL), SMTP_CLIENT_EINVAL);
    m.rcpts = ok_rcpt;
    m.mail_from = "s@x>\r\nRSET";
    assert_int_equal(smtp_client_send(c, &h, 1, &m, noop_cb, NULL), SMTP_CLIENT_EINVAL);
    m.mail_from = "s@x";
    m.nrcpts = 0;
    assert_int_equal(smtp_client_send(c, &h, 1, &m, noop_cb, NULL), SMTP_CLIENT_EINVAL);
    smtp_client_close(c, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_string_equal(smtp_client_internal_name(SMTP_INT_CONNECT_TIMEOUT), "connect_timeout");
    assert_int_equal(SMTP_INT_CONNECT_TIMEOUT, 160);
    assert_int_equal(SMTP_INT_DIALOGUE_TIMEOUT, 146);
    assert_int_equal(SMTP_INT_DATA_TIMEOUT, 147);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_body),
        cmocka_unit_test(test_injection_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
