/* Unit tests of the SMTP reply parser: multiline replies, every split point,
 * pipelined replies in one chunk, and hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtp/smtp_reply.h"

static smtp_reply_parser *mk(size_t max_line, size_t max_lines)
{
    smtp_reply_parser *p = NULL;
    struct smtp_reply_limits lim = { max_line, max_lines };
    assert_int_equal(smtp_reply_parser_new(&p, &lim), SMTP_REPLY_OK);
    return p;
}

/* Feeds s whole; returns the result of the last feed. */
static int feed_all(smtp_reply_parser *p, const char *s, size_t n, smtp_reply *r, size_t *used)
{
    return smtp_reply_parser_feed(p, s, n, used, r);
}

static void test_single_line(void **st)
{
    (void)st;
    smtp_reply_parser *p = mk(0, 0);
    smtp_reply r;
    size_t used;
    const char *s = "250 2.1.0 Ok\r\n";
    assert_int_equal(feed_all(p, s, strlen(s), &r, &used), SMTP_REPLY_DONE);
    assert_int_equal(used, strlen(s));
    assert_int_equal(r.code, 250);
    assert_string_equal(r.enhanced, "2.1.0");
    assert_string_equal(r.text, "2.1.0 Ok");
    assert_int_equal(r.nlines, 1);
    assert_false(smtp_reply_parser_pending(p));
    smtp_reply_parser_free(p);
}

static const char ehlo[] =
    "250-mx.example.org Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
    "250-8BITMIME\r\n250-STARTTLS\r\n250 SMTPUTF8\r\n";

static void test_multiline_every_split(void **st)
{
    (void)st;
    size_t n = strlen(ehlo);
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b++) {
            smtp_reply_parser *p = mk(0, 0);
            smtp_reply r;
            size_t used;
            int done = 0;
            size_t cuts[3] = { a, b, n };
            size_t pos = 0;
            for (int k = 0; k < 3; k++) {
                int rv = smtp_reply_parser_feed(p, ehlo + pos, cuts[k] - pos, &used, &r);
                assert_true(rv >= 0);
                pos += used;
                if (rv == SMTP_REPLY_DONE) {
                    done = 1;
                    assert_int_equal(pos, n);
                }
            }
            assert_true(done);
            assert_int_equal(r.code, 250);
            assert_int_equal(r.nlines, 6);
            assert_string_equal(r.text, "mx.example.org Hello\nPIPELINING\nSIZE 10240000\n"
                                        "8BITMIME\nSTARTTLS\nSMTPUTF8");
            smtp_reply_parser_free(p);
        }
    }
}

static void test_every_byte_singly(void **st)
{
    (void)st;
    smtp_reply_parser *p = mk(0, 0);
    smtp_reply r;
    size_t used;
    size_t n = strlen(ehlo);
    for (size_t i = 0; i < n; i++) {
        int rv = smtp_reply_parser_feed(p, ehlo + i, 1, &used, &r);
        assert_int_equal(used, 1);
        assert_int_equal(rv, i + 1 == n ? SMTP_REPLY_DONE : SMTP_REPLY_OK);
    }
    assert_int_equal(r.nlines, 6);
    smtp_reply_parser_free(p);
}

static void test_pipelined(void **st)
{
    (void)st;
    smtp_reply_parser *p = mk(0, 0);
    smtp_reply r;
    size_t used;
    const char *s = "250 2.1.0 Ok\r\n550 5.1.1 <x@y>: unknown\r\n451-4.3.0 try\r\n451 4.3.0 later\r\n";
    size_t n = strlen(s), pos = 0;
    int codes[3], k = 0;
    while (pos < n) {
        int rv = smtp_reply_parser_feed(p, s + pos, n - pos, &used, &r);
        pos += used;
        if (rv == SMTP_REPLY_DONE)
            codes[k++] = r.code;
    }
    assert_int_equal(k, 3);
    assert_int_equal(codes[0], 250);
    assert_int_equal(codes[1], 550);
    assert_int_equal(codes[2], 451);
    assert_string_equal(r.enhanced, "4.3.0");
    assert_string_equal(r.text, "4.3.0 try\n4.3.0 later");
    smtp_reply_parser_free(p);
}

static void test_bare_code_and_lf(void **st)
{
    (void)st;
    smtp_reply_parser *p = mk(0, 0);
    smtp_reply r;
    size_t used;
    assert_int_equal(smtp_reply_parser_feed(p, "354\n", 4, &used, &r), SMTP_REPLY_DONE);
    assert_int_equal(r.code, 354);
    assert_string_equal(r.text, "");
    assert_string_equal(r.enhanced, "");
    smtp_reply_parser_free(p);
}

static void test_enhanced_rules(void **st)
{
    (void)st;
    char d[16];
    assert_int_equal(smtp_reply_enhanced("5.1.1 no", 8, 5, d, sizeof d), 5);
    assert_int_equal(smtp_reply_enhanced("5.1.1", 5, 5, d, sizeof d), 5);
    assert_int_equal(smtp_reply_enhanced("4.1.1 x", 7, 5, d, sizeof d), 0); /* class mismatch */
    assert_int_equal(smtp_reply_enhanced("5.1111.1 x", 10, 5, d, sizeof d), 0);
    assert_int_equal(smtp_reply_enhanced("5.1.1x", 6, 5, d, sizeof d), 0);
    assert_int_equal(smtp_reply_enhanced("5..1 x", 6, 5, d, sizeof d), 0);
    assert_int_equal(smtp_reply_enhanced("5.100.100 x", 11, 5, d, sizeof d), 9);
    assert_string_equal(d, "5.100.100");
}

static void expect_err(const char *s, size_t n, size_t max_line, size_t max_lines, int err)
{
    smtp_reply_parser *p = mk(max_line, max_lines);
    smtp_reply r;
    size_t used;
    int rv = smtp_reply_parser_feed(p, s, n, &used, &r);
    assert_int_equal(rv, err);
    /* sticky */
    assert_int_equal(smtp_reply_parser_feed(p, "250 ok\r\n", 8, &used, &r), err);
    smtp_reply_parser_reset(p);
    assert_int_equal(smtp_reply_parser_feed(p, "250 ok\r\n", 8, &used, &r), SMTP_REPLY_DONE);
    smtp_reply_parser_free(p);
}

static void test_hostile(void **st)
{
    (void)st;
    char big[5000];
    memset(big, 'a', sizeof big);
    memcpy(big, "250 ", 4);
    expect_err(big, sizeof big, 0, 0, SMTP_REPLY_ETOOLONG);
    /* exactly max_line is fine, one more is not (with and without CR) */
    {
        smtp_reply_parser *p = mk(10, 0);
        smtp_reply r;
        size_t used;
        assert_int_equal(smtp_reply_parser_feed(p, "250 abcdef\r\n", 12, &used, &r), SMTP_REPLY_DONE);
        smtp_reply_parser_free(p);
    }
    expect_err("250 abcdefg\r\n", 13, 10, 0, SMTP_REPLY_ETOOLONG);
    expect_err("250 abcdefg\n", 12, 10, 0, SMTP_REPLY_ETOOLONG);
    expect_err("250-a\r\n250-b\r\n250-c\r\n250 d\r\n", 28, 0, 3, SMTP_REPLY_ETOOMANY);
    expect_err("25 ok\r\n", 7, 0, 0, SMTP_REPLY_EBADCODE);
    expect_err("2500 ok\r\n", 9, 0, 0, SMTP_REPLY_EBADCODE);
    expect_err("150 ok\r\n", 8, 0, 0, SMTP_REPLY_EBADCODE);
    expect_err("650 ok\r\n", 8, 0, 0, SMTP_REPLY_EBADCODE);
    expect_err("2a0 ok\r\n", 8, 0, 0, SMTP_REPLY_EBADCODE);
    expect_err("290 ok\r\n", 8, 0, 0, SMTP_REPLY_EBADCODE);
    expect_err("\r\n", 2, 0, 0, SMTP_REPLY_EBADCODE);
    expect_err("250_ok\r\n", 8, 0, 0, SMTP_REPLY_EBADCODE);
    expect_err("250-ok\r\n550 no\r\n", 16, 0, 0, SMTP_REPLY_EMIXED);
    expect_err("250-ok\r\n251 no\r\n", 16, 0, 0, SMTP_REPLY_EMIXED);
    expect_err("250 o\0k\r\n", 9, 0, 0, SMTP_REPLY_ENUL);
    expect_err("2\0", 2, 0, 0, SMTP_REPLY_ENUL);
}

static void test_text_truncated(void **st)
{
    (void)st;
    smtp_reply_parser *p = mk(1000, 100);
    smtp_reply r;
    size_t used;
    char line[1006];
    memcpy(line, "250-", 4);
    memset(line + 4, 'x', 996);
    memcpy(line + 1000, "\r\n", 2);
    for (int i = 0; i < 10; i++)
        assert_int_equal(smtp_reply_parser_feed(p, line, 1002, &used, &r), SMTP_REPLY_OK);
    assert_int_equal(smtp_reply_parser_feed(p, "250 end\r\n", 9, &used, &r), SMTP_REPLY_DONE);
    assert_true(r.truncated);
    assert_int_equal(r.text_len, SMTP_REPLY_TEXT_MAX - 1);
    assert_int_equal(strlen(r.text), r.text_len);
    assert_int_equal(r.nlines, 11);
    smtp_reply_parser_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_line),
        cmocka_unit_test(test_multiline_every_split),
        cmocka_unit_test(test_every_byte_singly),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_bare_code_and_lf),
        cmocka_unit_test(test_enhanced_rules),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_text_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
