/* The SMTP session state machine, without sockets: pipelining, input split
 * at every byte, dot-stuffing, DSN parameters, the relay policy and the
 * open-relay tricks, SMTP smuggling, and every hostile-input limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "smtp_harness.h"

static struct harness h;

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static const char transaction[] =
    "EHLO client.example\r\n"
    "MAIL FROM:<sender@example.org> SIZE=100 RET=HDRS ENVID=abc+2Bdef\r\n"
    "RCPT TO:<user@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user+40example.com\r\n"
    "DATA\r\n"
    "Subject: test\r\n"
    "\r\n"
    "..leading dot\r\n"
    ".\r\n"
    "QUIT\r\n";

static void test_pipelined_transaction(void **state)
{
    harness_init(&h, "10.1.2.3", false);
    harness_send(&h, transaction);
    assert_true(h.closed);
    assert_int_equal(h.messages, 1);
    assert_non_null(strstr(h.out, "220 mx.test ESMTP"));
    assert_non_null(strstr(h.out, "250-PIPELINING"));
    assert_non_null(strstr(h.out, "250 2.0.0 Ok: queued as ID1"));
    assert_non_null(strstr(h.out, "221 2.0.0"));
    assert_string_equal(h.last_from, "sender@example.org");
    assert_string_equal(h.last_rcpts, "user@example.com,");
    assert_string_equal(h.last_notify, "SUCCESS,FAILURE");
    assert_string_equal(h.last_orcpt, "rfc822;user@example.com");
    assert_string_equal(h.last_ret, "HDRS");
    assert_string_equal(h.last_envid, "abc+def");
    /* Received: first, then the unstuffed body */
    assert_true(strncmp(h.last_body, "Received: from client.example ([10.1.2.3])\r\n\tby mx.test (Ricochet) with ESMTP id ID1", 84) == 0);
    assert_non_null(strstr(h.last_body, "id ID1\r\n\tfor <user@example.com>;"));
    assert_non_null(strstr(h.last_body, "\r\nSubject: test\r\n\r\n.leading dot\r\n"));
    assert_null(strstr(h.last_body, "..leading"));
    harness_free(&h);
}

static void test_split_at_every_byte(void **state)
{
    /* the same dialogue in two pieces, cut at every offset, gives the same result */
    harness_init(&h, "10.1.2.3", false);
    harness_send(&h, transaction);
    char expect_out[sizeof h.out], expect_body[sizeof h.last_body];
    snprintf(expect_out, sizeof expect_out, "%s", h.out);
    snprintf(expect_body, sizeof expect_body, "%s", h.last_body);
    harness_free(&h);
    size_t len = strlen(transaction);
    for (size_t cut = 0; cut <= len; cut++) {
        harness_init(&h, "10.1.2.3", false);
        smtp_session_input(h.s, transaction, cut);
        smtp_session_input(h.s, transaction + cut, len - cut);
        if (strcmp(h.out, expect_out) != 0)
            fail_msg("cut at %zu: output differs:\n%s", cut, h.out);
        /* the Received: date may tick between runs; compare from the body on */
        assert_string_equal(strstr(h.last_body, "Subject:"), strstr(expect_body, "Subject:"));
        harness_free(&h);
    }
    /* and byte by byte */
    harness_init(&h, "10.1.2.3", false);
    for (size_t i = 0; i < len; i++)
        smtp_session_input(h.s, transaction + i, 1);
    assert_string_equal(h.out, expect_out);
    harness_free(&h);
}

static void test_split_in_three_with_late_completion(void **state)
{
    /* every pair of cut points; the node answers only after all the input
     * arrived, so MAIL..QUIT after the dot wait in the buffer */
    static const char two[] =
        "EHLO c\r\nMAIL FROM:<a@example.org> BODY=8BITMIME\r\nRCPT TO:<b@bounce.test>\r\nDATA\r\n"
        "..x\r\n.\r\nMAIL FROM:<c@example.org>\r\nRCPT TO:<d@bounce.test>\r\nDATA\r\ny\r\n.\r\nQUIT\r\n";
    size_t len = strlen(two);
    static char expect[sizeof h.out];
    expect[0] = '\0';
    for (size_t a = 0; a <= len; a++) {
        for (size_t b = a; b <= len; b++) {
            harness_init(&h, "192.0.2.7", false);
            h.defer = true;
            smtp_session_input(h.s, two, a);
            smtp_session_input(h.s, two + a, b - a);
            smtp_session_input(h.s, two + b, len - b);
            assert_int_equal(h.messages, 1);
            assert_false(h.closed);
            smtp_accept *t = h.held;
            h.held = NULL;
            smtp_accept_done(t, "250 2.0.0 Ok: queued as A");
            assert_int_equal(h.messages, 2);
            t = h.held;
            h.held = NULL;
            smtp_accept_done(t, "250 2.0.0 Ok: queued as B");
            assert_true(h.closed);
            if (expect[0] == '\0')
                snprintf(expect, sizeof expect, "%s", h.out);
            else if (strcmp(h.out, expect) != 0)
                fail_msg("cuts %zu,%zu: output differs:\n%s", a, b, h.out);
            assert_true(h.last_body_len > 3 && strcmp(h.last_body + h.last_body_len - 3, "y\r\n") == 0);
            harness_free(&h);
        }
    }
    assert_non_null(strstr(expect, "queued as A\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 "));
    assert_non_null(strstr(expect, "queued as B\r\n221 2.0.0"));
}

static void test_waits_for_the_node_with_pipelined_commands(void **state)
{
    harness_init(&h, "10.1.2.3", false);
    h.defer = true;
    harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
                     "x\r\n.\r\nMAIL FROM:<c@example.org>\r\nRCPT TO:<d@example.com>\r\n");
    assert_true(h.paused);
    assert_null(strstr(h.out, "queued as"));
    assert_int_equal(count(h.out, "250 2.1.0"), 1); /* the second MAIL waits */
    smtp_accept_done(h.held, "250 2.0.0 Ok: queued as LATE");
    h.held = NULL;
    assert_non_null(strstr(h.out, "queued as LATE"));
    assert_int_equal(count(h.out, "250 2.1.0"), 2);
    assert_false(h.paused);
    harness_free(&h);

    /* the client leaves before the node answers: the token stays safe */
    harness_init(&h, "10.1.2.3", false);
    h.defer = true;
    harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nx\r\n.\r\n");
    smtp_accept *tok = h.held;
    h.held = NULL;
    smtp_session_free(h.s);
    smtp_accept_done(tok, "250 2.0.0 Ok"); /* no use-after-free (ASan) */
}

static void test_relay_policy(void **state)
{
    /* outside relay_networks, unauthenticated: only the local domains */
    harness_init(&h, "192.0.2.7", false);
    harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<x@example.com>\r\n");
    assert_non_null(strstr(h.out, "550 5.7.1 <x@example.com>: Relay access denied"));
    harness_send(&h, "RCPT TO:<b+token@bounce.test>\r\nRCPT TO:<c@BOUNCE.TEST>\r\n");
    assert_int_equal(count(h.out, "250 2.1.5"), 2);
    harness_free(&h);
    /* RCPT TO:<Postmaster> without a domain is ours (RFC 5321 4.5.1) */
    harness_init(&h, "192.0.2.7", false);
    harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<PostMaster> NOTIFY=NEVER\r\nDATA\r\nx\r\n.\r\n");
    assert_int_equal(h.messages, 1);
    assert_string_equal(h.last_rcpts, "postmaster@bounce.test,");
    assert_string_equal(h.last_notify, "NEVER");
    harness_free(&h);
    /* an IPv4 client seen through a dual-stack socket */
    harness_init(&h, "::ffff:10.9.8.7", false);
    harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<x@example.com>\r\n");
    assert_non_null(strstr(h.out, "250 2.1.5"));
    harness_free(&h);
    harness_init(&h, "::ffff:192.0.2.7", false);
    harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<x@example.com>\r\n");
    assert_non_null(strstr(h.out, "550 5.7.1"));
    harness_free(&h);
    /* inside a relay network (IPv6 too) */
    harness_init(&h, "2001:db8::25", false);
    harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<x@example.com>\r\n");
    assert_non_null(strstr(h.out, "250 2.1.5"));
    harness_free(&h);
}

static void test_open_relay_tricks_refused(void **state)
{
    static const char *tricks[] = {
        "RCPT TO:<user%example.com@bounce.test>",        /* percent hack */
        "RCPT TO:<example.com!user@bounce.test>",        /* bang path */
        "RCPT TO:<@bounce.test:user@example.com>",       /* source route */
        "RCPT TO:<@bounce.test,@x.test:user@example.com>",
        "RCPT TO:<\"user@example.com\"@bounce.test>",    /* quoted @ */
        "RCPT TO:<\"user\\@example.com\"@bounce.test>",  /* quoted-pair @ */
        "RCPT TO:<\"user\\%example.com\"@bounce.test>",  /* quoted-pair % */
        "RCPT TO:<user@example.com@bounce.test>",
        "RCPT TO:<user@bounce.test.>",                   /* trailing dot */
        "RCPT TO:<user@[192.0.2.1]>",                    /* address literal */
        "RCPT TO:<user>",                                /* no domain */
        "RCPT TO:user@example.com",                      /* no brackets */
        "RCPT TO:<user@example.com>",                    /* plain relay attempt */
        "RCPT TO:<user@sub.bounce.test>",                /* subdomains are not local */
    };
    for (size_t i = 0; i < sizeof tricks / sizeof tricks[0]; i++) {
        harness_init(&h, "192.0.2.7", false);
        harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org>\r\n");
        h.out_len = 0;
        h.out[0] = '\0';
        char line[300];
        snprintf(line, sizeof line, "%s\r\n", tricks[i]);
        harness_send(&h, line);
        if (h.out[0] != '5')
            fail_msg("%s was answered: %s", tricks[i], h.out);
        harness_free(&h);
    }
}

static void test_smuggling_refused(void **state)
{
    static const char *bodies[] = {
        "a\n.\nMAIL FROM:<evil@example.org>\r\n",   /* bare LF end-of-data */
        "a\r\n.\nRCPT TO:<x@example.com>\r\n",
        "a\r.\rb\r\n",                               /* bare CR */
        "line\n",
        /* bare LF, then CRLF "." CRLF: not an end of data after a bare LF */
        "a\n.\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<x@example.com>\r\nDATA\r\nevil\r\n",
        "a\r\nb\r.\r\nMAIL FROM:<evil@example.org>\r\n",  /* bare CR before the dot */
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        harness_init(&h, "10.1.2.3", false);
        harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
        harness_send(&h, bodies[i]);
        assert_int_equal(h.messages, 0); /* "\n.\n" did not end the data */
        harness_send(&h, "\r\n.\r\n");
        assert_int_equal(h.messages, 0);
        assert_non_null(strstr(h.out, "550 5.6.0"));
        assert_int_equal(count(h.out, "250 2.1.0"), 1); /* the smuggled MAIL never ran */
        harness_free(&h);
    }
}

static void test_limits(void **state)
{
    /* overlong command line */
    harness_init(&h, "10.1.2.3", false);
    char big[2100];
    memset(big, 'A', sizeof big - 3);
    memcpy(big + sizeof big - 3, "\r\n", 3);
    harness_send(&h, "EHLO c\r\n");
    harness_send(&h, big);
    assert_non_null(strstr(h.out, "500 5.5.2 Line too long"));
    harness_send(&h, "NOOP\r\n");
    assert_non_null(strstr(h.out, "250 2.0.0 Ok"));
    harness_free(&h);

    /* a 5000-octet line arriving byte by byte: one reply, bounded buffer */
    harness_init(&h, "10.1.2.3", false);
    harness_send(&h, "EHLO c\r\n");
    for (int i = 0; i < 5000; i++)
        harness_send(&h, "B");
    harness_send(&h, "\r\nNOOP\r\n");
    assert_int_equal(count(h.out, "500 5.5.2 Line too long"), 1);
    assert_non_null(strstr(h.out, "500 5.5.2 Line too long\r\n250 2.0.0 Ok"));
    assert_false(h.closed);
    harness_free(&h);

    /* SIZE announced too big, and data over the limit (read and dropped) */
    harness_init(&h, "10.1.2.3", false);
    harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org> SIZE=999999\r\n");
    assert_non_null(strstr(h.out, "552 5.3.4"));
    harness_send(&h, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
    for (int i = 0; i < 200; i++)
        harness_send(&h, "0123456789012345678901234567890123456789012345678901234567890123456789\r\n");
    harness_send(&h, ".\r\n");
    assert_int_equal(h.messages, 0);
    assert_int_equal(count(h.out, "552 5.3.4"), 2);
    harness_free(&h);

    /* exactly max_message_size (4096) of client data is accepted, our
     * Received: header not counted; one octet more is refused */
    for (int extra = 0; extra <= 1; extra++) {
        harness_init(&h, "10.1.2.3", false);
        harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
        for (int i = 0; i < 63; i++) /* 63 lines of 62 + CRLF = 4032 */
            harness_send(&h, "12345678901234567890123456789012345678901234567890123456789012\r\n");
        char tail[80];
        memset(tail, 'z', sizeof tail);
        snprintf(tail + 62 + extra, sizeof tail - 62 - (size_t)extra, "\r\n.\r\n"); /* 64 more octets */
        harness_send(&h, tail);
        assert_int_equal(h.messages, extra ? 0 : 1);
        assert_non_null(strstr(h.out, extra ? "552 5.3.4" : "queued as ID1"));
        harness_free(&h);
    }

    /* an oversize message is dropped as it arrives, not buffered whole */
    harness_init(&h, "10.1.2.3", false);
    harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
    size_t peak = 0;
    for (int i = 0; i < 20000; i++) { /* 1.4 MB against a 4 KiB limit */
        harness_send(&h, "0123456789012345678901234567890123456789012345678901234567890123456789\r\n");
        size_t m = smtp_session_memory(h.s);
        peak = m > peak ? m : peak;
    }
    assert_true(peak < 3 * 8192 + 16384);
    harness_send(&h, ".\r\n");
    assert_non_null(strstr(h.out, "552 5.3.4"));
    harness_free(&h);

    /* too many recipients */
    harness_init(&h, "10.1.2.3", false);
    harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org>\r\n");
    for (int i = 0; i < 7; i++)
        harness_send(&h, "RCPT TO:<b@example.com>\r\n");
    assert_int_equal(count(h.out, "250 2.1.5"), 5);
    assert_int_equal(count(h.out, "452 4.5.3"), 2);
    harness_free(&h);

    /* NUL bytes, unknown commands, bad sequence, too many errors */
    harness_init(&h, "10.1.2.3", false);
    smtp_session_input(h.s, "NO\0OP\r\n", 7);
    assert_non_null(strstr(h.out, "500 5.5.2 NUL"));
    harness_send(&h, "MAIL FROM:<a@example.org>\r\n");
    assert_non_null(strstr(h.out, "503 5.5.1"));
    harness_send(&h, "XYZZY\r\n");
    assert_non_null(strstr(h.out, "502 5.5.2"));
    for (int i = 0; i < 20 && !h.closed; i++)
        harness_send(&h, "XYZZY\r\n");
    assert_true(h.closed);
    assert_non_null(strstr(h.out, "421 4.7.0"));
    harness_free(&h);

    /* overlong parameters and unknown parameters */
    harness_init(&h, "10.1.2.3", false);
    harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org> FOO=BAR\r\n");
    assert_non_null(strstr(h.out, "555 5.5.4"));
    harness_send(&h, "MAIL FROM:<a@example.org> ENVID=");
    memset(big, 'x', 300);
    big[300] = '\0';
    harness_send(&h, big);
    harness_send(&h, "\r\n");
    assert_non_null(strstr(h.out, "501 5.5.4 Bad ENVID"));
    harness_free(&h);

    /* a client that floods while its message is pending is cut off */
    harness_init(&h, "10.1.2.3", false);
    h.defer = true;
    harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nx\r\n.\r\n");
    size_t most = 0;
    for (int i = 0; i < 2000 && !h.closed; i++) {
        harness_send(&h, "NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP\r\n");
        size_t m = smtp_session_memory(h.s);
        most = m > most ? m : most;
    }
    assert_true(h.closed);
    assert_true(most < 2 * (h.cfg.max_pipeline + h.cfg.max_line + 2) + 16384); /* bounded input */
    harness_free(&h);
}

static void test_smtputf8_and_admission(void **state)
{
    harness_init(&h, "10.1.2.3", false);
    harness_send(&h, "EHLO c\r\nMAIL FROM:<j\xc3\xb6rg@example.org>\r\n");
    assert_non_null(strstr(h.out, "553 5.1.7"));
    harness_send(&h, "MAIL FROM:<j\xc3\xb6rg@example.org> SMTPUTF8\r\nRCPT TO:<\xc3\xbc@b\xc3\xbc.example>\r\nDATA\r\nx\r\n.\r\n");
    assert_int_equal(h.messages, 1);
    assert_true(h.last_utf8);
    harness_send(&h, "MAIL FROM:<refuse@example.org>\r\n");
    assert_non_null(strstr(h.out, "451 4.3.0 Try later"));
    harness_free(&h);
}

static void test_starttls_and_auth(void **state)
{
    /* users file with alice / s3cret */
    char line[600];
    assert_int_equal(smtp_users_hash_line("alice", "s3cret", 1000, line, sizeof line), 0);
    FILE *f = fopen("/tmp/rc-smtp-users.test", "w");
    fprintf(f, "# test users\n%s\n", line);
    fclose(f);
    char err[200];
    smtp_users *users = smtp_users_load("/tmp/rc-smtp-users.test", err, sizeof err);
    assert_non_null(users);
    remove("/tmp/rc-smtp-users.test");

    memset(&h, 0, sizeof h);
    h.users = users;
    /* submission port, outside relay networks */
    h.users = users;
    struct harness *hp = &h;
    smtp_server_config_defaults(&hp->cfg);
    harness_init(&h, "192.0.2.9", true);
    h.cfg.users = users;
    harness_send(&h, "EHLO c\r\n");
    assert_non_null(strstr(h.out, "250-STARTTLS"));
    assert_null(strstr(h.out, "AUTH PLAIN"));
    /* AUTH before TLS is refused, and MAIL needs AUTH on submission */
    harness_send(&h, "AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n");
    assert_non_null(strstr(h.out, "538 5.7.11"));
    harness_send(&h, "MAIL FROM:<a@example.org>\r\n");
    assert_non_null(strstr(h.out, "530 5.7.0"));
    /* commands pipelined after STARTTLS are dropped (CVE-2011-0411) */
    h.out_len = 0;
    harness_send(&h, "STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n");
    assert_non_null(strstr(h.out, "220 2.0.0 Ready to start TLS"));
    assert_null(strstr(h.out, "530"));
    harness_send(&h, "MAIL FROM:<a@example.org>\r\n");
    assert_non_null(strstr(h.out, "503 5.5.1")); /* EHLO again first */
    harness_send(&h, "EHLO c\r\n");
    assert_non_null(strstr(h.out, "250-AUTH PLAIN LOGIN"));
    /* wrong password, then LOGIN, then PLAIN with the right one */
    harness_send(&h, "AUTH PLAIN AGFsaWNlAHdyb25n\r\n"); /* \0alice\0wrong */
    assert_non_null(strstr(h.out, "535 5.7.8"));
    /* right password, but asking to act as another user (authzid bob) */
    h.out_len = 0;
    harness_send(&h, "AUTH PLAIN Ym9iAGFsaWNlAHMzY3JldA==\r\n"); /* bob\0alice\0s3cret */
    assert_non_null(strstr(h.out, "535 5.7.8"));
    /* what is not base64 (or not padded to four) is refused as malformed */
    h.out_len = 0;
    harness_send(&h, "AUTH PLAIN AGFsaWNl!HMzY3JldA==\r\n");
    assert_non_null(strstr(h.out, "501 5.5.2"));
    h.out_len = 0;
    harness_send(&h, "AUTH LOGIN\r\nYWxpY2\r\n");
    assert_non_null(strstr(h.out, "501 5.5.2 Malformed AUTH LOGIN"));
    harness_send(&h, "AUTH LOGIN\r\n");
    assert_non_null(strstr(h.out, "334 VXNlcm5hbWU6"));
    harness_send(&h, "YWxpY2U=\r\n");
    assert_non_null(strstr(h.out, "334 UGFzc3dvcmQ6"));
    harness_send(&h, "czNjcmV0\r\n");
    assert_non_null(strstr(h.out, "235 2.7.0"));
    harness_send(&h, "MAIL FROM:<a@example.org>\r\nRCPT TO:<x@example.com>\r\nDATA\r\nx\r\n.\r\n");
    assert_int_equal(h.messages, 1);
    assert_non_null(strstr(h.last_body, "with ESMTPSA"));
    harness_free(&h);
    smtp_users_free(users);
}

static void test_dsn_parameters(void **state)
{
    static const struct {
        const char *cmd, *expect;
    } cases[] = {
        {"MAIL FROM:<a@example.org> RET=FULL ENVID=x+2By\r\n", "250 2.1.0"},
        {"MAIL FROM:<a@example.org> RET=BOGUS\r\n", "555 5.5.4"},
        {"MAIL FROM:<a@example.org> ENVID=a+ZZ\r\n", "501 5.5.4 Bad ENVID"},
        {"MAIL FROM:<a@example.org> BODY=8BITMIME\r\n", "250 2.1.0"},
        {"MAIL FROM:<a@example.org> BODY=BINARYMIME\r\n", "555 5.5.4"},
        {"MAIL FROM:<a@example.org> SIZE=12x\r\n", "501 5.5.4 Bad SIZE"},
        {"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com> NOTIFY=NEVER\r\n", "250 2.1.5"},
        {"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com> NOTIFY=NEVER,SUCCESS\r\n", "555 5.5.4"},
        {"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com> NOTIFY=SOMETIMES\r\n", "555 5.5.4"},
        {"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com> NOTIFY=DELAY NOTIFY=DELAY\r\n", "555 5.5.4"},
        {"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com> ORCPT=b@example.com\r\n", "555 5.5.4"},
        {"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com> ORCPT=rfc822;b+4\r\n", "501 5.5.4 Bad ORCPT"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        harness_init(&h, "10.1.2.3", false);
        harness_send(&h, "EHLO c\r\n");
        h.out_len = 0;
        h.out[0] = '\0';
        harness_send(&h, cases[i].cmd);
        const char *last = h.out;
        for (const char *p = h.out; (p = strstr(p, "\r\n")) != NULL && p[2]; p += 2)
            last = p + 2;
        if (strncmp(last, cases[i].expect, strlen(cases[i].expect)) != 0)
            fail_msg("%s got %s", cases[i].cmd, h.out);
        harness_free(&h);
    }
    /* recorded per envelope and per recipient, xtext decoded */
    harness_init(&h, "10.1.2.3", false);
    harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org> RET=FULL ENVID=Q+3DW BODY=8bitmime\r\n"
                     "RCPT TO:<b@example.com> NOTIFY=delay,failure ORCPT=rfc822;b+2Bx@example.com\r\n"
                     "DATA\r\nx\r\n.\r\n");
    assert_int_equal(h.messages, 1);
    assert_string_equal(h.last_ret, "FULL");
    assert_string_equal(h.last_envid, "Q=W");
    assert_string_equal(h.last_notify, "DELAY,FAILURE");
    assert_string_equal(h.last_orcpt, "rfc822;b+x@example.com");
    harness_free(&h);
}

static void test_data_line_limits_and_recovery(void **state)
{
    /* a data line over max_line refuses the message; the session goes on */
    harness_init(&h, "10.1.2.3", false);
    harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
    char line[1500];
    memset(line, 'y', sizeof line - 3);
    memcpy(line + sizeof line - 3, "\r\n", 3);
    harness_send(&h, line);
    harness_send(&h, "short\r\n.\r\n");
    assert_int_equal(h.messages, 0);
    assert_non_null(strstr(h.out, "500 5.5.2 Message refused: a line is longer"));
    harness_send(&h, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n.\r\n");
    assert_int_equal(h.messages, 1);
    assert_non_null(strstr(h.out, "queued as ID1"));
    /* HELO (not EHLO): "with SMTP"; BDAT is refused clearly */
    harness_send(&h, "HELO old.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nz\r\n.\r\n");
    assert_non_null(strstr(h.last_body, "with SMTP id"));
    harness_send(&h, "BDAT 10 LAST\r\n");
    assert_non_null(strstr(h.out, "502 5.5.1 BDAT not implemented"));
    harness_free(&h);
}

static void test_tls_info_in_received(void **state)
{
    harness_init(&h, "10.1.2.3", false);
    harness_send(&h, "EHLO c\r\nSTARTTLS\r\n");
    smtp_session_tls_info(h.s, "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256);
    harness_send(&h, "EHLO c\r\n");
    assert_null(strstr(h.out + 200, "250-STARTTLS")); /* not offered twice */
    harness_send(&h, "STARTTLS\r\n");
    assert_non_null(strstr(h.out, "502 5.5.1 STARTTLS not available"));
    harness_send(&h, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nx\r\n.\r\n");
    assert_int_equal(h.messages, 1);
    assert_non_null(strstr(h.last_body, "([10.1.2.3])\r\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))"));
    assert_non_null(strstr(h.last_body, "with ESMTPS id ID1"));
    harness_free(&h);
}

static void test_drain(void **state)
{
    /* idle: told to go at once */
    harness_init(&h, "10.1.2.3", false);
    harness_send(&h, "EHLO c\r\n");
    smtp_session_drain(h.s);
    assert_true(h.closed);
    assert_non_null(strstr(h.out, "421 4.3.2"));
    harness_free(&h);
    /* a message in flight finishes (the node's 250 reaches the client),
     * pipelined QUIT is answered, then the session ends */
    harness_init(&h, "10.1.2.3", false);
    h.defer = true;
    harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n");
    smtp_session_drain(h.s);
    assert_false(h.closed);
    smtp_accept_done(h.held, "250 2.0.0 Ok: queued as D1");
    h.held = NULL;
    assert_non_null(strstr(h.out, "queued as D1\r\n221 2.0.0"));
    assert_true(h.closed);
    harness_free(&h);
    /* inside a transaction: it may finish, a new MAIL is refused */
    harness_init(&h, "10.1.2.3", false);
    harness_send(&h, "EHLO c\r\nMAIL FROM:<a@example.org>\r\n");
    smtp_session_drain(h.s);
    assert_false(h.closed);
    harness_send(&h, "RCPT TO:<b@example.com>\r\nDATA\r\nx\r\n.\r\nMAIL FROM:<a@example.org>\r\n");
    assert_int_equal(h.messages, 1);
    assert_non_null(strstr(h.out, "queued as ID1\r\n421 4.3.2"));
    assert_true(h.closed);
    harness_free(&h);
}

/* An io whose offload holds the job until the test runs it (a thread pool
 * stand-in), to prove the session waits and the job survives the session. */
static struct {
    void (*work)(void *), (*done)(void *);
    void *arg;
} job;
static int t_offload(void *io, void (*work)(void *), void (*done)(void *), void *arg)
{
    (void)io;
    job.work = work;
    job.done = done;
    job.arg = arg;
    return 0;
}
static const struct smtp_session_io offload_io = {h_write, h_close, h_pause, h_timeout, h_starttls, t_offload};

static smtp_users *make_users(void)
{
    char line[600], err[200];
    assert_int_equal(smtp_users_hash_line("alice", "s3cret", 1000, line, sizeof line), 0);
    FILE *f = fopen("/tmp/rc-smtp-users2.test", "w");
    fprintf(f, "%s\n", line);
    fclose(f);
    smtp_users *u = smtp_users_load("/tmp/rc-smtp-users2.test", err, sizeof err);
    remove("/tmp/rc-smtp-users2.test");
    assert_non_null(u);
    return u;
}

static void test_auth_offloaded(void **state)
{
    smtp_users *users = make_users();
    harness_init(&h, "192.0.2.9", true);
    smtp_session_free(h.s);
    h.out_len = 0;
    h.cfg.users = users;
    h.s = smtp_session_new(&h.cfg, &harness_hooks, &h, &offload_io, &h, "192.0.2.9", true);
    smtp_session_start(h.s);
    harness_send(&h, "EHLO c\r\nSTARTTLS\r\n");
    harness_send(&h, "EHLO c\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\nMAIL FROM:<a@example.org>\r\n");
    if (job.work == NULL)
        fail_msg("%s", h.out);
    assert_true(h.paused);
    assert_null(strstr(h.out, "235"));
    assert_null(strstr(h.out, "530")); /* MAIL waits for the AUTH result */
    smtp_session_timeout(h.s); /* our own delay: no 421 */
    assert_false(h.closed);
    job.work(job.arg);
    job.done(job.arg);
    job.work = NULL;
    assert_non_null(strstr(h.out, "235 2.7.0 Authentication successful\r\n250 2.1.0 Ok"));
    assert_false(h.paused);
    /* the client leaves while the hash runs: the job completes safely */
    harness_send(&h, "RSET\r\n");
    smtp_session_free(h.s);
    h.s = smtp_session_new(&h.cfg, &harness_hooks, &h, &offload_io, &h, "192.0.2.9", true);
    smtp_session_start(h.s);
    harness_send(&h, "EHLO c\r\nSTARTTLS\r\n");
    harness_send(&h, "EHLO c\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n");
    assert_non_null(job.work);
    smtp_session_free(h.s);
    h.s = NULL;
    job.work(job.arg);
    job.done(job.arg); /* no use-after-free (ASan) */
    smtp_users_free(users);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_transaction),
        cmocka_unit_test(test_split_at_every_byte),
        cmocka_unit_test(test_split_in_three_with_late_completion),
        cmocka_unit_test(test_waits_for_the_node_with_pipelined_commands),
        cmocka_unit_test(test_relay_policy),
        cmocka_unit_test(test_open_relay_tricks_refused),
        cmocka_unit_test(test_smuggling_refused),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_smtputf8_and_admission),
        cmocka_unit_test(test_starttls_and_auth),
        cmocka_unit_test(test_dsn_parameters),
        cmocka_unit_test(test_data_line_limits_and_recovery),
        cmocka_unit_test(test_tls_info_in_received),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_auth_offloaded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
