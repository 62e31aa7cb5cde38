/* Unit tests of the bounce library's own text readers: the case-insensitive
 * search every rule leans on, the header-field reader that takes a
 * report's header block off GMime's hands, and whole mails whose header
 * blocks are written the ways real MTAs write them (CRLF, folds, mbox
 * envelope lines, obsolete "Name :" fields, lines that are no field). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/bounce.h"
#include "smtp/bounce_internal.h"

static const char *naive_memistr(const char *hay, size_t len, const char *needle)
{
    size_t nl = strlen(needle);
    if (nl == 0)
        return hay;
    for (size_t i = 0; i + nl <= len; i++) {
        size_t k = 0;
        while (k < nl) {
            unsigned char a = (unsigned char)hay[i + k], b = (unsigned char)needle[k];
            if (a >= 'A' && a <= 'Z')
                a = (unsigned char)(a + 32);
            if (b >= 'A' && b <= 'Z')
                b = (unsigned char)(b + 32);
            if (a != b)
                break;
            k++;
        }
        if (k == nl)
            return hay + i;
    }
    return NULL;
}

static uint32_t rng = 2463534242u;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* The vector path must find exactly what a byte-by-byte search finds:
 * first match, matches at both ends, near misses, bytes whose OR 0x20 is
 * equal but which are not letters. */
static void test_memistr(void **state)
{
    (void)state;
    static const char alphabet[] = "aAbB@`[{ \xc0\xe0\x80-.5";
    char hay[200], needle[24];
    for (int round = 0; round < 20000; round++) {
        size_t len = next_rand() % sizeof hay;
        for (size_t i = 0; i < len; i++)
            hay[i] = alphabet[next_rand() % (sizeof alphabet - 1)];
        size_t nl = 1 + next_rand() % (sizeof needle - 1);
        if (len > 0 && next_rand() % 2) {
            /* a piece of the haystack with its case flipped */
            size_t at = next_rand() % len;
            if (nl > len - at)
                nl = len - at;
            for (size_t k = 0; k < nl; k++) {
                char c = hay[at + k];
                needle[k] = (char)((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ? c ^ 0x20 : c);
            }
        } else {
            for (size_t k = 0; k < nl; k++)
                needle[k] = alphabet[next_rand() % (sizeof alphabet - 1)];
        }
        needle[nl] = '\0';
        const char *want = naive_memistr(hay, len, needle), *got = bounce__memistr(hay, len, needle);
        if (want != got)
            fail_msg("round %d: len %zu needle \"%s\": got %td, want %td", round, len, needle,
                     got ? got - hay : -1, want ? want - hay : -1);
    }
    const char *t = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxUser Unknown";
    assert_ptr_equal(bounce__memistr(t, strlen(t), "user unknown"), t + 40);
    assert_null(bounce__memistr(t, strlen(t) - 1, "user unknown")); /* one byte short */
    assert_null(bounce__memistr("\xe0\xe0", 2, "\xc0\xc0"));      /* no case outside ASCII */
    assert_null(bounce__memistr("@@@@@@@@@@@@@@@@@@@@", 20, "``"));
    assert_ptr_equal(bounce__memistr("abc", 3, ""), "abc");
}

static const char *hdr(const struct bounce__hdrs *h, const char *name)
{
    const char *v = bounce__hdrs_get(h, name);
    if (v == NULL)
        fail_msg("no %s", name);
    return v;
}

static void test_header_block(void **state)
{
    (void)state;
    static const char block[] = "Received: from a.example (a.example [192.0.2.1])\r\n"
                                "\tby b.example; Tue, 1 Jun 2021 10:00:00 +0900\r\n"
                                "Subject : =?UTF-8?B?44GC?=\r\n"
                                " =?ISO-8859-1?Q?caf=E9?= folded\r\n"
                                "Content-Type: text/plain;\r\n charset=us-ascii\r\n"
                                "MIME-Version: 1.0\r\n"
                                "X-Empty:\r\n"
                                "To: a@example.com,\r\n    b@example.com\r\n";
    struct bounce__hdrs h = {.max = 16};
    bounce__parse_header_block(&h, block, strlen(block));
    assert_string_equal(hdr(&h, "received"), "from a.example (a.example [192.0.2.1]) by b.example; Tue, 1 Jun 2021 "
                                             "10:00:00 +0900");
    assert_non_null(strstr(hdr(&h, "Subject"), "caf\xc3\xa9"));  /* RFC 2047, by GMime */
    assert_non_null(strstr(hdr(&h, "Subject"), "\xe3\x81\x82")); /* the UTF-8 word */
    assert_null(bounce__hdrs_get(&h, "Content-Type"));            /* the entity's, not the mail's */
    assert_string_equal(hdr(&h, "MIME-Version"), "1.0");
    assert_string_equal(hdr(&h, "X-Empty"), "");
    assert_non_null(strstr(hdr(&h, "To"), "b@example.com"));
    bounce__hdrs_free(&h);
    assert_int_equal(h.n, 0);
    assert_int_equal(h.max, 16);

    /* bounded: fields beyond max are dropped */
    struct bounce__hdrs few = {.max = 2};
    bounce__parse_header_block(&few, block, strlen(block));
    assert_int_equal(few.n, 2);
    bounce__hdrs_free(&few);

    /* a line that is no field: GMime reads the block its own way, and the
     * fields before that line are there either way */
    static const char odd[] = "From: a@example.com\nthis line has no colon\nSubject: s\n";
    struct bounce__hdrs o = {.max = 16};
    bounce__parse_header_block(&o, odd, strlen(odd));
    assert_string_equal(hdr(&o, "From"), "a@example.com");
    bounce__hdrs_free(&o);
}

static bounce_report *analyse(const char *mail, size_t len)
{
    bounce_report *r = NULL;
    char err[128] = "";
    int rv = bounce_analyse(mail, len, NULL, &r, err, sizeof err);
    if (rv != BOUNCE_OK)
        fail_msg("bounce_analyse: %d %s", rv, err);
    return r;
}

static void expect_rcpt(const bounce_report *r, const char *rcpt, const char *reason)
{
    for (size_t i = 0; i < bounce_report_rcpt_count(r); i++) {
        const struct bounce_rcpt *x = bounce_report_rcpt(r, i);
        if (strcmp(x->recipient, rcpt) == 0) {
            assert_string_equal(bounce_reason_name(x->reason), reason);
            return;
        }
    }
    fail_msg("no recipient %s among %zu", rcpt, bounce_report_rcpt_count(r));
}

/* A Postfix-style DSN, with the header block written in different ways. */
static char *dsn_with_header(const char *header_block, const char *eol, size_t returned, size_t *outlen)
{
    size_t cap = 64 * 1024, n = 0;
    char *m = malloc(cap);
    assert_non_null(m);
    n += (size_t)snprintf(m + n, cap - n, "%s", header_block);
    const char *body[] = {"",
                          "--B1",
                          "Content-Type: text/plain",
                          "",
                          "I'm sorry to have to inform you that your message could not be delivered.",
                          "",
                          "--B1",
                          "Content-Type: message/delivery-status",
                          "",
                          "Reporting-MTA: dns; mx.example.org",
                          "",
                          "Final-Recipient: rfc822; nobody@example.com",
                          "Action: failed",
                          "Status: 5.1.1",
                          "Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.com>: Recipient address rejected: "
                          "User unknown in local recipient table",
                          NULL};
    for (const char **l = body; *l; l++)
        n += (size_t)snprintf(m + n, cap - n, "%s%s", *l, eol);
    for (size_t i = 0; i < returned; i++)
        n += (size_t)snprintf(m + n, cap - n,
                              "%s--B1%sContent-Type: message/rfc822%s%sFrom: s@example.net%sTo: nobody@example.com%s"
                              "Message-ID: <m%zu@example.net>%s%sbody%s",
                              eol, eol, eol, eol, eol, eol, i, eol, eol, eol);
    n += (size_t)snprintf(m + n, cap - n, "%s--B1--%s", eol, eol);
    *outlen = n;
    return m;
}

static void test_report_header_blocks(void **state)
{
    (void)state;
    static const struct {
        const char *header, *eol;
        size_t returned;
    } cases[] = {
        /* plain LF, the boundary parameter on a continuation line */
        {"From: MAILER-DAEMON@mx.example.org\nSubject: Undelivered Mail Returned to Sender\n"
         "MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status;\n"
         "\tboundary=\"B1\"\n",
         "\n", 1},
        /* CRLF throughout, an mbox envelope line first */
        {"From MAILER-DAEMON Tue Jun  1 10:00:00 2021\r\nFrom: MAILER-DAEMON@mx.example.org\r\n"
         "Subject: Undelivered Mail\r\nContent-Type: multipart/report; report-type=delivery-status; "
         "boundary=B1\r\n",
         "\r\n", 1},
        /* a line in the header block that is no field: GMime reads it all */
        {"From: MAILER-DAEMON@mx.example.org\nnot a header line\n"
         "Content-Type: multipart/report; report-type=delivery-status; boundary=B1\n",
         "\n", 1},
        /* more returned messages than the relabeller remembers at once */
        {"From: MAILER-DAEMON@mx.example.org\nContent-Type: multipart/report; boundary=\"B1\"\n", "\n", 12},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        char *m = dsn_with_header(cases[i].header, cases[i].eol, cases[i].returned, &len);
        bounce_report *r = analyse(m, len);
        if (i == 2 && bounce_report_kind(r) != BOUNCE_KIND_DSN) {
            /* GMime may end the header block at the odd line: then the
             * report is read as text, and still must name the recipient */
            expect_rcpt(r, "nobody@example.com", "userunknown");
        } else {
            assert_int_equal(bounce_report_kind(r), BOUNCE_KIND_DSN);
            expect_rcpt(r, "nobody@example.com", "userunknown");
            assert_string_equal(bounce_report_orig_get(r, "Message-ID"), "<m0@example.net>");
        }
        bounce_report_free(r);
        free(m);
    }
}

/* The top header block decides what an auto-reply is: folded and encoded
 * fields must read the same as GMime would give them. */
static void test_autoreply_fields(void **state)
{
    (void)state;
    static const char mail[] = "From: =?UTF-8?Q?J=C3=BCrgen?=\r\n <juergen@example.de>\r\n"
                               "To: sender@example.net\r\n"
                               "Subject: =?UTF-8?Q?Abwesenheitsnotiz?=\r\n"
                               "Auto-Submitted:\r\n auto-replied\r\n"
                               "Content-Type: text/plain; charset=utf-8\r\n"
                               "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                               "Ich bin bis 10. Juni nicht im B=C3=BCro.\r\n";
    bounce_report *r = analyse(mail, strlen(mail));
    assert_int_equal(bounce_report_kind(r), BOUNCE_KIND_AUTOREPLY);
    assert_int_equal(bounce_report_rcpt_count(r), 1);
    assert_string_equal(bounce_report_rcpt(r, 0)->recipient, "juergen@example.de");
    bounce_report_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memistr),
        cmocka_unit_test(test_header_block),
        cmocka_unit_test(test_report_header_blocks),
        cmocka_unit_test(test_autoreply_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
