/* Unit tests of the bounce library: the classifier on SMTP replies, and the
 * analysis of small DSN, NDR, ARF and auto-reply mails written here. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/bounce.h"

struct reply_case {
    int code;
    const char *status;
    const char *text;
    enum bounce_smtp_cmd cmd;
    const char *reason;
    int hard;
};

static const struct reply_case reply_cases[] = {
    {550, "5.1.1", "<x@example.com>: Recipient address rejected: User unknown in local recipient table",
     BOUNCE_CMD_RCPT, "userunknown", 1},
    {450, "4.1.1", "<x@example.com>: Recipient address rejected: User unknown", BOUNCE_CMD_RCPT, "userunknown", 1},
    {550, "5.1.1", "The email account that you tried to reach does not exist.", BOUNCE_CMD_UNKNOWN, "userunknown", 1},
    {552, "5.2.2", "Mailbox full", BOUNCE_CMD_RCPT, "mailboxfull", 0},
    {452, "4.2.2", "The email account that you tried to reach is over quota.", BOUNCE_CMD_RCPT, "mailboxfull", 0},
    {550, "5.1.1", "user over quota", BOUNCE_CMD_UNKNOWN, "mailboxfull", 0},
    {552, "5.3.4", "Message size exceeds fixed limit", BOUNCE_CMD_DATA, "mesgtoobig", 0},
    {554, "5.7.1", "Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
     BOUNCE_CMD_RCPT, "blocked", 0},
    {550, "5.7.25", "The IP address sending this message does not have a PTR record setup", BOUNCE_CMD_UNKNOWN,
     "requireptr", 0},
    {550, "5.7.26", "This message does not pass authentication checks (SPF and DKIM both do not pass).",
     BOUNCE_CMD_DATA, "authfailure", 0},
    {554, "5.7.1", "Relay access denied", BOUNCE_CMD_RCPT, "norelaying", 0},
    {550, "5.1.10", "Recipient address has null MX", BOUNCE_CMD_RCPT, "notaccept", 1},
    {556, "5.1.10", "domain does not accept mail", BOUNCE_CMD_UNKNOWN, "notaccept", 1},
    {421, "4.7.0", "Too many concurrent SMTP connections; please try again later.", BOUNCE_CMD_CONNECT,
     "toomanyconn", 0},
    {550, "5.1.6", "Recipient has moved", BOUNCE_CMD_RCPT, "hasmoved", 1},
    {554, "5.7.1", "Message rejected as spam by Content Filtering.", BOUNCE_CMD_DATA, "spamdetected", 0},
    {552, "5.7.0", "Our system detected an illegal attachment on your message.", BOUNCE_CMD_DATA, "policyviolation", 0},
    {550, "5.2.1", "The email account that you tried to reach is disabled.", BOUNCE_CMD_RCPT, "suspend", 0},
    {553, "5.1.8", "<s@example.net>... Domain of sender address s@example.net does not exist",
     BOUNCE_CMD_MAIL, "rejected", 0},
    {500, "5.5.1", "Command unrecognized", BOUNCE_CMD_UNKNOWN, "syntaxerror", 0},
    {550, NULL, "User unknown", BOUNCE_CMD_DATA, "filtered", 0},
    {550, "5.1.1", "User unknown", BOUNCE_CMD_DATA, "userunknown", 1},
    {250, "2.0.0", "Ok: queued as 1234", BOUNCE_CMD_DATA, "delivered", -1},
    {554, NULL, "", BOUNCE_CMD_UNKNOWN, "onhold", 0},
    {0, NULL, NULL, BOUNCE_CMD_UNKNOWN, "undefined", 0},
    {550, NULL, "5.4.4 Host or domain name not found", BOUNCE_CMD_RCPT, "hostunknown", 1},
    {451, "4.4.1", "Connection timed out", BOUNCE_CMD_UNKNOWN, "expired", 0},
};

static void test_classify_replies(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof reply_cases / sizeof reply_cases[0]; i++) {
        const struct reply_case *c = &reply_cases[i];
        int hard = 99;
        enum bounce_reason r = bounce_classify_smtp(c->code, c->status, c->text, c->cmd, &hard);
        if (strcmp(bounce_reason_name(r), c->reason) != 0 || hard != c->hard)
            fail_msg("case %zu (%d %s \"%s\"): got %s/%d, want %s/%d", i, c->code, c->status ? c->status : "",
                     c->text ? c->text : "", bounce_reason_name(r), hard, c->reason, c->hard);
    }
}

static void test_reason_names(void **state)
{
    (void)state;
    for (int i = 0; i < BOUNCE_R_COUNT; i++)
        assert_int_equal(bounce_reason_from_name(bounce_reason_name((enum bounce_reason)i)), i);
    assert_int_equal(bounce_reason_from_name("nonsense"), -1);
    assert_string_equal(bounce_reason_name((enum bounce_reason)999), "undefined");
    assert_int_equal(bounce_reason_hard(BOUNCE_R_NOTACCEPT, 421, NULL), 0);
    assert_int_equal(bounce_reason_hard(BOUNCE_R_NOTACCEPT, 0, "5.1.10"), 1);
    assert_int_equal(bounce_reason_hard(BOUNCE_R_USERUNKNOWN, 450, "4.1.1"), 1);
    assert_int_equal(bounce_reason_hard(BOUNCE_R_FEEDBACK, 0, NULL), -1);
}

static bounce_report *analyse(const char *mail)
{
    bounce_report *r = NULL;
    char err[128] = "";
    int rv = bounce_analyse(mail, strlen(mail), NULL, &r, err, sizeof err);
    if (rv != BOUNCE_OK)
        fail_msg("bounce_analyse: %d %s", rv, err);
    return r;
}

static const char dsn_mail[] =
    "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n"
    "To: sender@example.net\n"
    "Subject: Undelivered Mail Returned to Sender\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B1\"\n\n"
    "--B1\nContent-Type: text/plain\n\nI'm sorry to have to inform you that your message could not be delivered.\n\n"
    "--B1\nContent-Type: message/delivery-status\n\n"
    "Reporting-MTA: dns; mx.example.org\n\n"
    "Final-Recipient: rfc822; nobody@Example.COM\n"
    "Original-Recipient: rfc822;Nobody@example.com\n"
    "Action: failed\nStatus: 5.1.1\nRemote-MTA: dns; mx.example.com\n"
    "Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.com>: Recipient address\n"
    "    rejected: User unknown in virtual mailbox table\n\n"
    "Final-Recipient: rfc822; full@example.com\n"
    "Action: failed\nStatus: 5.2.2\n"
    "Diagnostic-Code: smtp; 552 5.2.2 Mailbox full\n\n"
    "Final-Recipient: rfc822; ok@example.com\n"
    "Action: relayed\nStatus: 2.0.0\n\n"
    "--B1\nContent-Type: text/rfc822-headers\n\n"
    "Return-Path: <b+token@bounce.example.net>\nFrom: sender@example.net\nTo: nobody@example.com\n"
    "Message-ID: <m1@example.net>\nX-Ricochet-Id: 42\nSubject: =?utf-8?q?h=C3=A9llo?=\n\n"
    "--B1--\n";

static void test_dsn(void **state)
{
    (void)state;
    bounce_report *r = analyse(dsn_mail);
    assert_int_equal(bounce_report_kind(r), BOUNCE_KIND_DSN);
    assert_int_equal(bounce_report_rcpt_count(r), 3);
    const struct bounce_rcpt *a = bounce_report_rcpt(r, 0);
    assert_string_equal(a->recipient, "nobody@example.com");
    assert_string_equal(a->original, "Nobody@example.com");
    assert_string_equal(a->action, "failed");
    assert_string_equal(a->status, "5.1.1");
    assert_string_equal(a->remote_mta, "mx.example.com");
    assert_non_null(strstr(a->diagnostic, "virtual mailbox table"));
    assert_int_equal(a->smtp_code, 550);
    assert_int_equal(a->reason, BOUNCE_R_USERUNKNOWN);
    assert_int_equal(a->hard, 1);
    const struct bounce_rcpt *b = bounce_report_rcpt(r, 1);
    assert_string_equal(b->recipient, "full@example.com");
    assert_int_equal(b->reason, BOUNCE_R_MAILBOXFULL);
    assert_int_equal(b->hard, 0);
    const struct bounce_rcpt *c = bounce_report_rcpt(r, 2);
    assert_int_equal(c->reason, BOUNCE_R_DELIVERED);
    assert_int_equal(c->hard, -1);
    assert_null(bounce_report_rcpt(r, 3));
    assert_string_equal(bounce_report_orig_get(r, "message-id"), "<m1@example.net>");
    assert_string_equal(bounce_report_orig_get(r, "X-Ricochet-Id"), "42");
    assert_string_equal(bounce_report_orig_get(r, "Return-Path"), "<b+token@bounce.example.net>");
    assert_string_equal(bounce_report_orig_get(r, "Subject"), "h\xc3\xa9llo");
    bounce_report_free(r);
}

static const char arf_mail[] =
    "From: fbl@isp.example\nTo: abuse@example.net\nSubject: Abuse report\nMIME-Version: 1.0\n"
    "Content-Type: multipart/report; report-type=feedback-report; boundary=\"B2\"\n\n"
    "--B2\nContent-Type: text/plain\n\nThis is an email abuse report.\n"
    "--B2\nContent-Type: message/feedback-report\n\n"
    "Feedback-Type: Abuse\nUser-Agent: test/1.0\nVersion: 1\n"
    "Original-Rcpt-To: <user@isp.example>\nOriginal-Rcpt-To: other@ISP.example\n\n"
    "--B2\nContent-Type: message/rfc822\n\n"
    "From: sender@example.net\nTo: user@isp.example\nMessage-ID: <m2@example.net>\nSubject: buy\n\nhello\n"
    "--B2--\n";

static void test_arf(void **state)
{
    (void)state;
    bounce_report *r = analyse(arf_mail);
    assert_int_equal(bounce_report_kind(r), BOUNCE_KIND_ARF);
    assert_string_equal(bounce_report_feedback_type(r), "abuse");
    assert_int_equal(bounce_report_rcpt_count(r), 2);
    assert_string_equal(bounce_report_rcpt(r, 0)->recipient, "user@isp.example");
    assert_string_equal(bounce_report_rcpt(r, 1)->recipient, "other@isp.example");
    assert_int_equal(bounce_report_rcpt(r, 0)->reason, BOUNCE_R_FEEDBACK);
    assert_int_equal(bounce_report_rcpt(r, 0)->hard, -1);
    assert_string_equal(bounce_report_orig_get(r, "Message-ID"), "<m2@example.net>");
    bounce_report_free(r);
}

static void test_autoreply(void **state)
{
    (void)state;
    static const char *const mails[] = {
        "From: Jane <jane@example.com>\nTo: s@example.net\nSubject: hello\nAuto-Submitted: auto-replied\n\nAway.\n",
        "From: jane@example.com\nTo: s@example.net\nSubject: Automatic reply: hello\n\nAway until Monday.\n",
        "From: jane@example.com\nTo: s@example.net\nSubject: hi\nX-Autoreply: yes\n\nAway.\n",
    };
    for (size_t i = 0; i < 3; i++) {
        bounce_report *r = analyse(mails[i]);
        assert_int_equal(bounce_report_kind(r), BOUNCE_KIND_AUTOREPLY);
        assert_int_equal(bounce_report_rcpt_count(r), 1);
        assert_string_equal(bounce_report_rcpt(r, 0)->recipient, "jane@example.com");
        assert_int_equal(bounce_report_rcpt(r, 0)->reason, BOUNCE_R_VACATION);
        assert_int_equal(bounce_report_rcpt(r, 0)->hard, -1);
        bounce_report_free(r);
    }
    /* Auto-Submitted: auto-generated alone is no auto-reply */
    bounce_report *r = analyse("From: a@example.com\nTo: b@example.net\nSubject: news\n"
                               "Auto-Submitted: auto-generated\n\nHello.\n");
    assert_int_equal(bounce_report_kind(r), BOUNCE_KIND_NONE);
    assert_int_equal(bounce_report_rcpt_count(r), 0);
    bounce_report_free(r);
}

static const char exim_mail[] =
    "From: Mail Delivery System <Mailer-Daemon@mx.example.org>\nTo: sender@example.net\n"
    "Subject: Mail delivery failed: returning message to sender\n\n"
    "This message was created automatically by mail delivery software.\n\n"
    "A message that you sent could not be delivered to one or more of its\n"
    "recipients. This is a permanent error. The following address(es) failed:\n\n"
    "  gone@example.com\n"
    "    SMTP error from remote mail server after RCPT TO:<gone@example.com>:\n"
    "    host mx.example.com [192.0.2.2]: 550 5.1.1 No such user here\n"
    "  full@example.com\n"
    "    SMTP error from remote mail server after RCPT TO:<full@example.com>:\n"
    "    host mx.example.com [192.0.2.2]: 452 4.2.2 Mailbox full\n\n"
    "------ This is a copy of the message, including all the headers. ------\n\n"
    "Return-path: <sender@example.net>\nFrom: sender@example.net\nTo: gone@example.com\n"
    "Message-ID: <m3@example.net>\nSubject: hi\n\nbody mentioning spam@example.org\n";

static void test_ndr_text(void **state)
{
    (void)state;
    bounce_report *r = analyse(exim_mail);
    assert_int_equal(bounce_report_kind(r), BOUNCE_KIND_NDR);
    assert_int_equal(bounce_report_rcpt_count(r), 2);
    const struct bounce_rcpt *a = bounce_report_rcpt(r, 0), *b = bounce_report_rcpt(r, 1);
    assert_string_equal(a->recipient, "gone@example.com");
    assert_int_equal(a->reason, BOUNCE_R_USERUNKNOWN);
    assert_int_equal(a->smtp_code, 550);
    assert_string_equal(a->status, "5.1.1");
    assert_string_equal(b->recipient, "full@example.com");
    assert_int_equal(b->reason, BOUNCE_R_MAILBOXFULL);
    assert_int_equal(b->smtp_code, 452);
    assert_string_equal(bounce_report_orig_get(r, "Message-ID"), "<m3@example.net>");
    bounce_report_free(r);
}

/* A report whose body is one text part needs no MIME structure; it is
 * read without GMime's parser (its Content-Type and transfer encoding
 * still read and decoded by GMime). Every way of writing the same text
 * gives the same report, and what the shortcut leaves to the parser
 * (uuencode, a repeated field, a name spelt "Content-Type :") still gets
 * an answer. */
static const char single_head[] =
    "From: Mail Delivery System <Mailer-Daemon@mx.example.org>\nTo: sender@example.net\n"
    "Subject: Mail delivery failed: returning message to sender\n";
static const char single_body[] =
    "This message was created automatically by mail delivery software.\n\n"
    "A message that you sent could not be delivered to one or more of its\n"
    "recipients. This is a permanent error. The following address(es) failed:\n\n"
    "  gone@example.com\n"
    "    SMTP error from remote mail server after RCPT TO:<gone@example.com>:\n"
    "    host mx.example.com [192.0.2.2]: 550 5.1.1 No such user here\n";

static bounce_report *analyse_single(const char *fields, const char *body)
{
    size_t n = strlen(single_head) + strlen(fields) + strlen(body) + 2;
    char *mail = malloc(n);
    assert_non_null(mail);
    snprintf(mail, n, "%s%s\n%s", single_head, fields, body);
    bounce_report *r = analyse(mail);
    free(mail);
    return r;
}

static void assert_gone(bounce_report *r, const char *diag_part)
{
    assert_int_equal(bounce_report_rcpt_count(r), 1);
    const struct bounce_rcpt *a = bounce_report_rcpt(r, 0);
    assert_string_equal(a->recipient, "gone@example.com");
    assert_int_equal(a->reason, BOUNCE_R_USERUNKNOWN);
    assert_int_equal(a->smtp_code, 550);
    assert_string_equal(a->status, "5.1.1");
    if (diag_part != NULL && strstr(a->diagnostic, diag_part) == NULL)
        fail_msg("diagnostic \"%s\" lacks \"%s\"", a->diagnostic, diag_part);
    bounce_report_free(r);
}

static void test_single_part_bodies(void **state)
{
    (void)state;
    /* no MIME at all, and the same text declared every way it may be */
    assert_gone(analyse_single("", single_body), "No such user here");
    assert_gone(analyse_single("MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n"
                               "Content-Transfer-Encoding: 7bit\n", single_body), "No such user here");
    assert_gone(analyse_single("Content-Type: TEXT/PLAIN;\n charset=\"UTF-8\"\nContent-Transfer-Encoding: 8BIT\n",
                               single_body), "No such user here");
    /* quoted-printable in Latin-1: decoded by GMime, converted to UTF-8 */
    assert_gone(analyse_single("Content-Type: text/plain; charset=iso-8859-1\n"
                               "Content-Transfer-Encoding: quoted-printable\n",
                               "This message was created automatically by mail delivery software.\n\n"
                               "A message that you sent could not be delivered to one or more of its\n"
                               "recipients. This is a permanent error. The following address(es) fail=\ned:\n\n"
                               "  gone@example.com\n"
                               "    SMTP error from remote mail server after RCPT TO:<gone@example.com>:\n"
                               "    host mx.example.com [192.0.2.2]: 550 5.1.1 No such user here (M=FCller)\n"),
                "(M\xc3\xbcller)");
    /* HTML in base64, without a charset */
    assert_gone(analyse_single("Content-Type: text/html\nContent-Transfer-Encoding: base64\n",
                               "PGh0bWw+PGJvZHk+PHA+VGhpcyBtZXNzYWdlIHdhcyBjcmVhdGVkIGF1dG9tYXRpY2FsbHkgYnkg\n"
                               "bWFpbCBkZWxpdmVyeSBzb2Z0d2FyZS48L3A+PHA+QSBtZXNzYWdlIHRoYXQgeW91IHNlbnQgY291\n"
                               "bGQgbm90IGJlIGRlbGl2ZXJlZCB0byBvbmUgb3IgbW9yZSBvZiBpdHMgcmVjaXBpZW50cy4gVGhp\n"
                               "cyBpcyBhIHBlcm1hbmVudCBlcnJvci4gVGhlIGZvbGxvd2luZyBhZGRyZXNzKGVzKSBmYWlsZWQ6\n"
                               "PC9wPjxwPmdvbmVAZXhhbXBsZS5jb208YnI+U01UUCBlcnJvciBmcm9tIHJlbW90ZSBtYWlsIHNl\n"
                               "cnZlciBhZnRlciBSQ1BUIFRPOiZsdDtnb25lQGV4YW1wbGUuY29tJmd0Ozo8YnI+aG9zdCBteC5l\n"
                               "eGFtcGxlLmNvbSBbMTkyLjAuMi4yXTogNTUwIDUuMS4xIE5vIHN1Y2ggdXNlciBoZXJlPC9wPjwv\n"
                               "Ym9keT48L2h0bWw+Cg==\n"),
                "No such user here");
    /* left to GMime's parser: the text is still read */
    assert_gone(analyse_single("Content-Type: text/plain\nContent-Type: text/plain\n", single_body), NULL);
    assert_gone(analyse_single("Content-Type : text/plain\n", single_body), NULL);
    assert_gone(analyse_single("Content-Transfer-Encoding: x-unknown\n", single_body), NULL);
    assert_gone(analyse_single("Content-Type: text/plain; charset=no-such-charset\n", single_body), NULL);
    /* uuencode that is not: GMime's filter finds no "begin" line, the
     * empty part leaves the raw body to be read */
    assert_gone(analyse_single("Content-Transfer-Encoding: x-uuencode\n", single_body), NULL);
    /* a text part that is empty, and a body that is only a header block */
    bounce_report *r = analyse_single("Content-Type: text/plain\n", "");
    assert_int_equal(bounce_report_rcpt_count(r), 0);
    bounce_report_free(r);
    r = analyse("Subject: x\nContent-Type: text/plain\nContent-Transfer-Encoding: base64");
    assert_int_equal(bounce_report_rcpt_count(r), 0);
    bounce_report_free(r);
}

/* Text in a single-byte charset is read as it is when all of it is ASCII,
 * converted to UTF-8 by iconv otherwise; ISO-2022-JP is ASCII only until
 * an escape sequence switches it. The same answers either way. */
static void test_charsets(void **state)
{
    (void)state;
    assert_gone(analyse_single("Content-Type: text/plain; charset=windows-1252\n", single_body),
                "No such user here");
    char body[1024];
    snprintf(body, sizeof body, "%s", single_body);
    char *here = strstr(body, "No such user here");
    assert_non_null(here);
    /* "No such user \x93here\x94": cp1252's curly quotes */
    memcpy(here, "No such user \x93here\x94\n", 20);
    here[20] = '\0';
    assert_gone(analyse_single("Content-Type: text/plain; charset=windows-1252\n", body),
                "\xe2\x80\x9chere\xe2\x80\x9d");
    assert_gone(analyse_single("Content-Type: text/plain; charset=ISO-8859-15\n", single_body),
                "No such user here");
    assert_gone(analyse_single("Content-Type: text/plain; charset=iso-2022-jp\n", single_body),
                "No such user here");
    /* JIS X 0208 after ESC $ B: "\x1b$B%F%9%H\x1b(B" is katakana TESUTO */
    snprintf(body, sizeof body, "%s    \x1b$B%%F%%9%%H\x1b(B\n", single_body);
    bounce_report *r = analyse_single("Content-Type: text/plain; charset=iso-2022-jp\n", body);
    assert_int_equal(bounce_report_rcpt_count(r), 1);
    assert_int_equal(bounce_report_rcpt(r, 0)->reason, BOUNCE_R_USERUNKNOWN);
    bounce_report_free(r);
}

/* The analyser runs on many threads at once (the daemon's pool, classify
 * -j): per-thread parsers and the indexes built once must give every
 * thread the answers one thread gets. */
struct thread_case {
    const char *mail;
    char want[512];
};

static void report_line(const char *mail, char *out, size_t n)
{
    bounce_report *r = NULL;
    out[0] = '\0';
    if (bounce_analyse(mail, strlen(mail), NULL, &r, NULL, 0) != BOUNCE_OK)
        return;
    size_t used = 0;
    for (size_t i = 0; i < bounce_report_rcpt_count(r) && used < n; i++) {
        const struct bounce_rcpt *a = bounce_report_rcpt(r, i);
        int w = snprintf(out + used, n - used, "%s %d %s %d;", a->recipient, (int)a->reason, a->status, a->hard);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    bounce_report_free(r);
}

static void *thread_run(void *arg)
{
    struct thread_case *cases = arg;
    char got[512];
    for (int round = 0; round < 50; round++)
        for (struct thread_case *c = cases; c->mail != NULL; c++) {
            report_line(c->mail, got, sizeof got);
            if (strcmp(got, c->want) != 0)
                return (void *)c;
        }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    char *single = malloc(strlen(single_head) + strlen(single_body) + 2);
    assert_non_null(single);
    sprintf(single, "%s\n%s", single_head, single_body);
    struct thread_case cases[] = {{dsn_mail, ""}, {single, ""}, {dsn_mail, ""}, {NULL, ""}};
    for (struct thread_case *c = cases; c->mail != NULL; c++) {
        report_line(c->mail, c->want, sizeof c->want);
        assert_true(c->want[0] != '\0');
    }
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thread_run, cases), 0);
    for (int i = 0; i < 4; i++) {
        void *bad = NULL;
        assert_int_equal(pthread_join(th[i], &bad), 0);
        assert_null(bad);
    }
    free(single);
}

static void test_limits_and_hostile(void **state)
{
    (void)state;
    bounce_report *r = NULL;
    struct bounce_limits lim = {.max_size = 100};
    assert_int_equal(bounce_analyse(dsn_mail, strlen(dsn_mail), &lim, &r, NULL, 0), BOUNCE_ETOOBIG);
    assert_null(r);
    assert_int_equal(bounce_analyse(NULL, 0, NULL, &r, NULL, 0), BOUNCE_EINVAL);
    /* max_rcpts bounds the recipients */
    lim = (struct bounce_limits){.max_rcpts = 1};
    assert_int_equal(bounce_analyse(dsn_mail, strlen(dsn_mail), &lim, &r, NULL, 0), BOUNCE_OK);
    assert_int_equal(bounce_report_rcpt_count(r), 1);
    bounce_report_free(r);
    /* deep nesting, beyond max_depth: no crash, nothing found below */
    size_t cap = 200000, n = 0;
    char *deep = malloc(cap);
    assert_non_null(deep);
    for (int i = 0; i < 2000 && n + 100 < cap; i++)
        n += (size_t)snprintf(deep + n, cap - n, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i);
    deep[n] = '\0';
    assert_int_equal(bounce_analyse(deep, n, NULL, &r, NULL, 0), BOUNCE_OK);
    assert_int_equal(bounce_report_kind(r), BOUNCE_KIND_NONE);
    bounce_report_free(r);
    /* binary garbage, empty input, a DSN part full of junk */
    for (size_t i = 0; i < cap; i++)
        deep[i] = (char)(i * 7919 % 251);
    int grv = bounce_analyse(deep, cap, NULL, &r, NULL, 0);
    assert_true(grv == BOUNCE_OK || grv == BOUNCE_EPARSE);
    bounce_report_free(r);
    free(deep);
    int rv = bounce_analyse("", 0, NULL, &r, NULL, 0);
    assert_true(rv == BOUNCE_OK || rv == BOUNCE_EPARSE);
    if (rv == BOUNCE_OK)
        bounce_report_free(r);
    else
        assert_null(r);
    static const char junk[] = "Content-Type: multipart/report; boundary=x\n\n--x\n"
                               "Content-Type: message/delivery-status\n\n"
                               "Final-Recipient: ;;;\n : \n\tcontinued\nStatus: 9.9.9.9.9\nAction:\n--x--\n";
    assert_int_equal(bounce_analyse(junk, strlen(junk), NULL, &r, NULL, 0), BOUNCE_OK);
    bounce_report_free(r);
}


/* One recipient's reason, hard flag and command-sensitive reading from a
 * small mail written in the style of a real MTA. */
static void expect_one(const char *mail, const char *rcpt, const char *reason, int hard)
{
    bounce_report *r = analyse(mail);
    const struct bounce_rcpt *x = NULL;
    for (size_t i = 0; i < bounce_report_rcpt_count(r); i++)
        if (strcmp(bounce_report_rcpt(r, i)->recipient, rcpt) == 0)
            x = bounce_report_rcpt(r, i);
    if (x == NULL)
        fail_msg("no recipient %s (%zu found)", rcpt, bounce_report_rcpt_count(r));
    if (strcmp(bounce_reason_name(x->reason), reason) != 0 || x->hard != hard)
        fail_msg("%s: got %s/%d, want %s/%d (diagnostic \"%s\")", rcpt, bounce_reason_name(x->reason), x->hard,
                 reason, hard, x->diagnostic);
    bounce_report_free(r);
}

static void test_mta_readings(void **state)
{
    (void)state;
    /* Exim: "retry timeout exceeded" is Exim giving up */
    expect_one("From: Mail Delivery System <Mailer-Daemon@mx.example.org>\n"
               "Subject: Mail delivery failed: returning message to sender\n"
               "Message-Id: <E1aBcDe-000AbC-Xy@mx.example.org>\n"
               "X-Failed-Recipients: gone@example.com\n\n"
               "This message was created automatically by mail delivery software.\n\n"
               "A message that you sent could not be delivered to one or more of its\n"
               "recipients. This is a permanent error. The following address(es) failed:\n\n"
               "  gone@example.com\n    retry timeout exceeded\n\n"
               "------ This is a copy of the message, including all the headers. ------\n\n"
               "From: s@example.net\nTo: gone@example.com\nSubject: hi\n\nhi\n",
               "gone@example.com", "expired", 0);
    /* Exim: a refusal at the greeting is about the client */
    expect_one("From: Mail Delivery System <Mailer-Daemon@mx.example.org>\n"
               "Subject: Mail delivery failed: returning message to sender\n"
               "Message-Id: <E1aBcDe-000AbC-Xy@mx.example.org>\n\n"
               "This message was created automatically by mail delivery software.\n\n"
               "The following address(es) failed:\n\n"
               "  who@example.com\n    host mx.example.com [192.0.2.1]\n"
               "    SMTP error from remote mail server after initial connection:\n"
               "    550 Access denied\n\n",
               "who@example.com", "blocked", 0);
    /* Gmail's "(state 14)": failed at RCPT */
    expect_one("From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\n"
               "Subject: Delivery Status Notification (Failure)\n\n"
               "Delivery to the following recipient failed permanently:\n\n     nobody@example.jp\n\n"
               "Technical details of permanent failure:\nGoogle tried to deliver your message, but it was "
               "rejected by the server for the recipient domain example.jp by mx.example.jp. [192.0.2.1].\n\n"
               "The error that the other server returned was:\n550 No such mailbox (state 14).\n",
               "nobody@example.jp", "userunknown", 1);
    /* qmail: "does not like recipient" + disk quota */
    expect_one("From: MAILER-DAEMON@example.ad.jp\nSubject: failure notice\n\n"
               "Hi. This is the qmail-send program at example.ad.jp.\n"
               "I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"
               "<full@example.ad.jp>:\n192.0.2.1 does not like recipient.\n"
               "Remote host said: 552 Error: disk quota exceeded\nGiving up on 192.0.2.1.\n\n"
               "--- Below this line is a copy of the message.\n\nFrom: s@example.net\n\nhi\n",
               "full@example.ad.jp", "mailboxfull", 0);
}

/* Readings that hold for any MTA's wording (not one MTA's format). */
static void test_ndr_layouts(void **state)
{
    (void)state;
    /* the reply is stated once, above the list of recipients it concerns */
    expect_one("From: postmaster@relay.example.org\nSubject: Undeliverable Mail: \"hi\"\n\n"
               "Your message:\n   From:    s@example.net\n   Subject: hi\n\n"
               "Could not be delivered because of\n\n550 5.1.1 User unknown\n\n"
               "The following recipients were affected: \n\n    gone@example.com\n\n"
               "Additional Information\n======================\nReporting-MTA:      <relay.example.org>\n",
               "gone@example.com", "userunknown", 1);
    /* a session transcript: the refusal, not the "250 2.1.5 Ok" before it
     * or the "221 2.0.0 Bye" after it, is the answer */
    bounce_report *r = analyse("From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n"
                               "Subject: Undelivered Mail Returned to Sender\n\n"
                               "Transcript of session follows.\n\n"
                               " Out: 220 mx.example.org ESMTP\n In:  MAIL FROM:<s@example.net>\n"
                               " Out: 250 2.1.0 Ok\n In:  RCPT TO:<who@example.com>\n Out: 250 2.1.5 Ok\n"
                               " In:  DATA\n Out: 354 End data with <CR><LF>.<CR><LF>\n"
                               " Out: 451 4.3.0 Error: queue file write error\n In:  QUIT\n"
                               " Out: 221 2.0.0 Bye\n");
    assert_int_equal(bounce_report_rcpt_count(r), 1);
    const struct bounce_rcpt *x = bounce_report_rcpt(r, 0);
    assert_string_equal(x->recipient, "who@example.com");
    assert_string_equal(x->status, "4.3.0");
    assert_int_equal(x->smtp_code, 451);
    assert_int_equal(x->reason, BOUNCE_R_SYSTEMERROR);
    bounce_report_free(r);
    /* Postfix's text wraps the reply onto a line that names the address
     * again; "(in reply to RCPT TO command)" there makes 5.2.1 "User
     * Unknown" a user unknown, not a message filtered after DATA */
    static const char wrapped[] =
        "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n"
        "Subject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n"
        "--b\nContent-Type: text/plain\n\nThis is the mail system at host mx.example.org.\n\n"
        "<who@example.com>: host mx.example.com[192.0.2.22] said: 550 5.2.1\n"
        "<who@example.com>... User Unknown (in reply to %s command)\n\n"
        "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n"
        "Final-Recipient: rfc822; who@example.com\nAction: failed\nStatus: 5.2.1\n"
        "Remote-MTA: dns; mx.example.com\nDiagnostic-Code: smtp; 550 5.2.1 <who@example.com>... User Unknown\n\n"
        "--b--\n";
    char mail[sizeof wrapped + 32];
    snprintf(mail, sizeof mail, wrapped, "RCPT TO");
    expect_one(mail, "who@example.com", "userunknown", 1);
    snprintf(mail, sizeof mail, wrapped, "end of DATA");
    expect_one(mail, "who@example.com", "filtered", 0);
}

static void test_dsn_details(void **state)
{
    (void)state;
    /* a Status comment says what the code means; a PowerMTA category is a hint */
    expect_one("From: MAILER-DAEMON@mta.example.net\nSubject: Delivery report\nMIME-Version: 1.0\n"
               "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n"
               "--b\nContent-Type: text/plain\n\nDelivery failed.\n\n--b\n"
               "Content-Type: message/delivery-status\n\nReporting-MTA: dns;mta.example.net\n\n"
               "Final-Recipient: rfc822;off@example.jp\nAction: failed\n"
               "Status: 5.2.1 (mailbox disabled, not accepting messages)\n"
               "Diagnostic-Code: smtp;550 5.2.1 <off@example.jp>... User Unknown\n"
               "X-PowerMTA-BounceCategory: bad-mailbox\n\n--b--\n",
               "off@example.jp", "suspend", 0);
    /* X-Unix diagnostics come from a local mailer program */
    expect_one("From: MAILER-DAEMON@mx.example.net\nSubject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
               "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n"
               "--b\nContent-Type: text/plain\n\n<u@example.net>: temporary failure\n\n--b\n"
               "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
               "Final-Recipient: rfc822; u@example.net\nAction: failed\nStatus: 4.3.0\n"
               "Diagnostic-Code: x-unix; temporary failure\n\n--b--\n",
               "u@example.net", "mailererror", 0);
    /* DSN fields in a plain text body (no MIME at all) */
    expect_one("From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.jp>\n"
               "Subject: Returned mail: see transcript for details\n\n"
               "   ----- Transcript of session follows -----\n"
               "... while talking to mx.example.org.:\n>>> RCPT To:<x@example.org>\n"
               "<<< 550 5.1.1 <x@example.org>... User unknown\n\n"
               "Reporting-MTA: dns; mx.example.jp\n\nFinal-Recipient: RFC822; x@example.org\n"
               "Action: failed\nStatus: 5.1.1\nDiagnostic-Code: SMTP; 550 5.1.1 <x@example.org>... User unknown\n",
               "x@example.org", "userunknown", 1);
    /* Postfix's text says which command the refusal answered */
    expect_one("From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\n"
               "Subject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
               "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n"
               "--b\nContent-Type: text/plain\n\n                   The mail system\n\n"
               "<r@example.ne.jp>: host mail.example.ne.jp[192.0.2.2] said: 550\n"
               "    5.7.1 Access denied (in reply to MAIL FROM command)\n\n--b\n"
               "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
               "Final-Recipient: rfc822; r@example.ne.jp\nAction: failed\nStatus: 5.7.1\n"
               "Remote-MTA: dns; mail.example.ne.jp\nDiagnostic-Code: smtp; 550 5.7.1 Access denied\n\n--b--\n",
               "r@example.ne.jp", "rejected", 0);
}

static void test_provider_tables(void **state)
{
    (void)state;
    /* the words decide what a bare 5.7.1 means; without any, it is a security refusal */
    int hard;
    enum bounce_reason r = bounce_classify_reply(550, "5.7.1",
        "[192.0.2.1] Our system has detected that this message is likely unsolicited mail.", &hard);
    assert_string_equal(bounce_reason_name(r), "spamdetected");
    r = bounce_classify_reply(550, "5.7.1", "Unauthenticated email is not accepted from this domain.", &hard);
    assert_string_equal(bounce_reason_name(r), "securityerror");
    /* Orange's "OFR_999" block code, with the provider chosen by the recipient domain */
    expect_one("From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\n"
               "Subject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
               "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n"
               "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
               "Final-Recipient: rfc822; x@orange.fr\nAction: failed\nStatus: 5.0.0\n"
               "Diagnostic-Code: smtp; 550 mwinf5c77 ME Service refuse. Veuillez essayer plus tard. OFR_999 [999]\n\n"
               "--b--\n",
               "x@orange.fr", "blocked", 0);
}

/* Several mails in one mbox file: split where GMime's mbox parser finds
 * each envelope line, also with bare-CR line ends; one mail, or no envelope
 * line, is no split. */
static void test_mbox_split(void **state)
{
    (void)state;
    static const char env[] = "From MAILER-DAEMON  Thu Apr 29 23:34:45 2015\n";
    size_t cap = 3 * (sizeof env + sizeof dsn_mail) + 1, len = 0, want[3];
    char *box = malloc(cap);
    assert_non_null(box);
    for (int i = 0; i < 3; i++) {
        want[i] = len;
        len += (size_t)snprintf(box + len, cap - len, "%s%s%s", env, dsn_mail, i < 2 ? "\n" : "");
    }
    size_t *starts = NULL;
    assert_int_equal(bounce_mbox_split(box, len, &starts), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(starts[i], want[i]);
    /* each piece is a whole report */
    for (int i = 0; i < 3; i++) {
        bounce_report *r = NULL;
        size_t end = i < 2 ? starts[i + 1] : len;
        assert_int_equal(bounce_analyse(box + starts[i], end - starts[i], NULL, &r, NULL, 0), BOUNCE_OK);
        assert_int_equal(bounce_report_rcpt_count(r), 3);
        bounce_report_free(r);
    }
    free(starts);
    /* bare CR line ends: the same offsets */
    for (size_t i = 0; i < len; i++)
        if (box[i] == '\n')
            box[i] = '\r';
    assert_int_equal(bounce_mbox_split(box, len, &starts), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(starts[i], want[i]);
    free(starts);
    /* one mail with its envelope line, a mail without one, garbage */
    snprintf(box, cap, "%s%s", env, dsn_mail);
    assert_int_equal(bounce_mbox_split(box, strlen(box), &starts), 0);
    assert_null(starts);
    assert_int_equal(bounce_mbox_split(dsn_mail, strlen(dsn_mail), &starts), 0);
    static const char junk[] = "From \nFrom \nFrom \n\n\nFrom x\n";
    size_t n = bounce_mbox_split(junk, sizeof junk - 1, &starts);
    for (size_t i = 0; i < n; i++)
        assert_true(starts[i] < sizeof junk - 1);
    free(starts);
    free(box);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_replies), cmocka_unit_test(test_reason_names),
        cmocka_unit_test(test_dsn),              cmocka_unit_test(test_arf),
        cmocka_unit_test(test_autoreply),        cmocka_unit_test(test_ndr_text),
        cmocka_unit_test(test_limits_and_hostile), cmocka_unit_test(test_mta_readings), cmocka_unit_test(test_ndr_layouts),
        cmocka_unit_test(test_dsn_details),        cmocka_unit_test(test_provider_tables),
        cmocka_unit_test(test_mbox_split),
        cmocka_unit_test(test_single_part_bodies),
        cmocka_unit_test(test_charsets),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
