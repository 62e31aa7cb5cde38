/* DSN builder (smtp/dsn.h): structure, fields, RET handling, hostile input,
 * and a round trip through our own bounce analyser (smtp/bounce.h), which
 * must read back the recipient, action, status and reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtp/bounce.h"
#include "smtp/dsn.h"

static const char ORIGINAL[] =
    "Received: from client by mx (Ricochet)\r\n"
    "From: Alice <alice@sender.test>\r\n"
    "To: bob@example.net\r\n"
    "Subject: hello\r\n"
    "Message-ID: <orig-1@sender.test>\r\n"
    "\r\n"
    "Body line one.\r\n"
    ".leading dot\r\n";

static char *build(const struct dsn_input *in, size_t *len)
{
    uint8_t *out = NULL;
    assert_int_equal(dsn_build(in, &out, len), DSN_OK);
    char *s = malloc(*len + 1);
    memcpy(s, out, *len);
    s[*len] = '\0';
    free(out);
    return s;
}

/* Every line ends in CRLF, none is longer than 998 octets, no NUL. */
static void assert_wire_clean(const char *s, size_t len)
{
    size_t line = 0;
    for (size_t i = 0; i < len; i++) {
        assert_int_not_equal(s[i], '\0');
        if (s[i] == '\n') {
            assert_true(i > 0 && s[i - 1] == '\r');
            line = 0;
        } else if (s[i] == '\r') {
            assert_true(i + 1 < len && s[i + 1] == '\n');
        } else {
            assert_true(++line <= 998);
        }
    }
}

static struct dsn_input base_input(struct dsn_rcpt *r, size_t n)
{
    struct dsn_input in = {
        .reporting_mta = "mx1.ricochet.test",
        .from_address = "MAILER-DAEMON@mx1.ricochet.test",
        .to_address = "alice@sender.test",
        .queue_id = "1A2050706B4010001",
        .arrival_ms = 1795000000000ull,
        .now_ms = 1795000060000ull,
        .rcpts = r,
        .nrcpts = n,
        .original = (const uint8_t *)ORIGINAL,
        .original_len = sizeof ORIGINAL - 1,
    };
    return in;
}

static void test_failed_round_trip(void **state)
{
    (void)state;
    struct dsn_rcpt r[] = {
        {.final_recipient = "bob@example.net", .original_recipient = "rfc822;Bob@Example.NET", .action = "failed",
         .status = "5.1.1", .remote_mta = "mx.example.net",
         .diagnostic = "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown in local recipient table",
         .diagnostic_is_smtp = 1, .last_attempt_ms = 1795000050000ull},
        {.final_recipient = "full@example.net", .action = "failed", .status = "5.2.2", .remote_mta = "mx.example.net",
         .diagnostic = "552 5.2.2 <full@example.net>: Mailbox full", .diagnostic_is_smtp = 1},
    };
    struct dsn_input in = base_input(r, 2);
    in.envid = "ENV-42";
    size_t len;
    char *s = build(&in, &len);
    assert_wire_clean(s, len);
    assert_non_null(strstr(s, "Content-Type: multipart/report"));
    assert_non_null(strstr(s, "report-type=delivery-status"));
    assert_non_null(strstr(s, "Content-Type: message/delivery-status"));
    assert_non_null(strstr(s, "Content-Type: message/rfc822")); /* no RET: whole, it is small */
    assert_non_null(strstr(s, "Auto-Submitted: auto-replied\r\n"));
    assert_non_null(strstr(s, "Subject: Undelivered Mail Returned to Sender\r\n"));
    assert_non_null(strstr(s, "Reporting-MTA: dns; mx1.ricochet.test\r\n"));
    assert_non_null(strstr(s, "Original-Envelope-Id: ENV-42\r\n"));
    assert_non_null(strstr(s, "Original-Recipient: rfc822;Bob@Example.NET\r\n"));
    assert_non_null(strstr(s, "Final-Recipient: rfc822; bob@example.net\r\n"));
    assert_non_null(strstr(s, "Action: failed\r\n"));
    assert_non_null(strstr(s, "Status: 5.1.1\r\n"));
    assert_non_null(strstr(s, "Remote-MTA: dns; mx.example.net\r\n"));
    assert_non_null(strstr(s, "Diagnostic-Code: smtp; 550 5.1.1"));
    assert_non_null(strstr(s, "Last-Attempt-Date: "));
    assert_non_null(strstr(s, "\r\n.leading dot\r\n")); /* the original, unchanged */
    if (getenv("DSN_PRINT"))
        fwrite(s, 1, len, stdout);

    bounce_report *rep = NULL;
    char err[128];
    assert_int_equal(bounce_analyse(s, len, NULL, &rep, err, sizeof err), 0);
    assert_int_equal(bounce_report_kind(rep), BOUNCE_KIND_DSN);
    assert_int_equal(bounce_report_rcpt_count(rep), 2);
    const struct bounce_rcpt *x = bounce_report_rcpt(rep, 0);
    assert_string_equal(x->recipient, "bob@example.net");
    assert_string_equal(x->action, "failed");
    assert_string_equal(x->status, "5.1.1");
    assert_int_equal(x->reason, BOUNCE_R_USERUNKNOWN);
    assert_int_equal(x->hard, 1);
    x = bounce_report_rcpt(rep, 1);
    assert_string_equal(x->recipient, "full@example.net");
    assert_int_equal(x->reason, BOUNCE_R_MAILBOXFULL);
    bounce_report_free(rep);
    free(s);
}

static void test_ret_hdrs_and_size(void **state)
{
    (void)state;
    struct dsn_rcpt r = {.final_recipient = "bob@example.net", .action = "failed"};
    struct dsn_input in = base_input(&r, 1);
    in.ret = "HDRS";
    size_t len;
    char *s = build(&in, &len);
    assert_non_null(strstr(s, "Content-Type: text/rfc822-headers"));
    assert_null(strstr(s, "Body line one."));
    assert_non_null(strstr(s, "Subject: hello\r\n"));
    assert_non_null(strstr(s, "Status: 5.0.0\r\n")); /* derived from the action */
    free(s);

    in.ret = NULL;
    in.max_full_size = 16; /* smaller than the original: headers only, said in the text */
    s = build(&in, &len);
    assert_non_null(strstr(s, "Content-Type: text/rfc822-headers"));
    assert_non_null(strstr(s, "too large to return whole"));
    free(s);

    in.ret = "FULL";
    in.max_full_size = 0;
    in.original = NULL;
    in.original_len = 0;
    s = build(&in, &len);
    assert_null(strstr(s, "Content-Type: message/rfc822"));
    assert_null(strstr(s, "Content-Type: text/rfc822-headers"));
    assert_wire_clean(s, len);
    free(s);
}

static void test_delayed_and_relayed(void **state)
{
    (void)state;
    struct dsn_rcpt r = {.final_recipient = "slow@example.net", .action = "delayed", .status = "4.4.1",
                         .will_retry_until_ms = 1795172800000ull, .diagnostic = "connection timed out"};
    struct dsn_input in = base_input(&r, 1);
    size_t len;
    char *s = build(&in, &len);
    assert_non_null(strstr(s, "Subject: Delayed Mail"));
    assert_non_null(strstr(s, "Will-Retry-Until: "));
    assert_non_null(strstr(s, "Diagnostic-Code: X-Ricochet; connection timed out"));
    free(s);
    struct dsn_rcpt ok = {.final_recipient = "bob@example.net", .action = "relayed"};
    in = base_input(&ok, 1);
    s = build(&in, &len);
    assert_non_null(strstr(s, "Subject: Successful Mail Delivery Report"));
    assert_non_null(strstr(s, "Status: 2.0.0\r\n"));
    free(s);
}

/* CR/LF/NUL in any field must not start a new header or field line; long
 * values fold; non-ASCII becomes '?'; an original without a blank line,
 * with bare LF, with NUL bytes still gives a clean DSN. */
static void test_hostile_input(void **state)
{
    (void)state;
    char longdiag[5000];
    memset(longdiag, 'x', sizeof longdiag - 1);
    for (size_t i = 50; i < sizeof longdiag - 1; i += 60)
        longdiag[i] = ' ';
    longdiag[sizeof longdiag - 1] = '\0';
    struct dsn_rcpt r[] = {
        {.final_recipient = "evil@example.net\r\nBcc: victim@example.org", .action = "failed",
         .diagnostic = "550 no\r\nX-Injected: yes\n\x01\xc3\xa9t\xc3\xa9", .diagnostic_is_smtp = 1,
         .remote_mta = "mx\r\nX-Injected-Mta: 1"},
        {.final_recipient = "long@example.net", .action = "FAILED", .diagnostic = longdiag},
    };
    static const char orig[] = "Subject: no blank line\nX: \0y\nbody without separator";
    struct dsn_input in = base_input(r, 2);
    in.envid = "a\r\nX-Injected-Envid: 1";
    in.original = (const uint8_t *)orig;
    in.original_len = sizeof orig - 1;
    size_t len;
    char *s = build(&in, &len);
    assert_wire_clean(s, len);
    assert_null(strstr(s, "\r\nBcc:"));
    assert_null(strstr(s, "\r\nX-Injected"));
    assert_non_null(strstr(s, "?t??")); /* é (2 bytes) each became '?' */
    assert_non_null(strstr(s, "Action: failed\r\n"));
    bounce_report *rep = NULL;
    assert_int_equal(bounce_analyse(s, len, NULL, &rep, NULL, 0), 0);
    assert_int_equal(bounce_report_rcpt_count(rep), 2);
    bounce_report_free(rep);
    free(s);

    uint8_t *out = NULL;
    struct dsn_rcpt bad = {.final_recipient = "x@y", .action = "exploded"};
    struct dsn_input bin = base_input(&bad, 1);
    assert_int_equal(dsn_build(&bin, &out, &len), DSN_EINVAL);
    bin.nrcpts = 0;
    assert_int_equal(dsn_build(&bin, &out, &len), DSN_EINVAL);
    struct dsn_rcpt good = {.final_recipient = "x@y", .action = "failed"};
    bin = base_input(&good, 1);
    bin.to_address = "";
    assert_int_equal(dsn_build(&bin, &out, &len), DSN_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_round_trip),
        cmocka_unit_test(test_ret_hdrs_and_size),
        cmocka_unit_test(test_delayed_and_relayed),
        cmocka_unit_test(test_hostile_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
