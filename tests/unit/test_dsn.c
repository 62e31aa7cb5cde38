/* Unit tests of the DSN builder (smtp/dsn.h): every DSN built here is
 * parsed back with GMime (structure, every delivery-status field), checked
 * line by line (CRLF only, no line over 998 octets, no injected header or
 * field), and fed to our own bounce analyser (smtp/bounce.h), which must
 * read back the recipient, action, status and reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <gmime/gmime.h>

#include "smtp/bounce.h"
#include "smtp/dsn.h"

#define T0 1700000000000ull /* 2023-11-14 22:13:20 UTC */

static const char orig_crlf[] = "From: Alice <alice@example.com>\r\n"
                                "To: bob@example.net\r\n"
                                "Subject: quarterly report\r\n"
                                "Message-ID: <m1@example.com>\r\n"
                                "X-Campaign: c42\r\n"
                                "\r\n"
                                "Hello Bob,\r\nthe report.\r\n";
/* bytes up to the empty line */
#define ORIG_HDR_LEN ((size_t)(strstr(orig_crlf, "\r\n\r\n") - orig_crlf + 2))

static struct dsn_input base_input(const struct dsn_rcpt *r, size_t n)
{
    struct dsn_input in = {
        .reporting_mta = "mail.ricochet.test",
        .from_address = "MAILER-DAEMON@mail.ricochet.test",
        .to_address = "alice@example.com",
        .queue_id = "7F3A9C",
        .arrival_ms = T0 - 3600000,
        .now_ms = T0 + 1000,
        .rcpts = r,
        .nrcpts = n,
        .original = (const uint8_t *)orig_crlf,
        .original_len = sizeof orig_crlf - 1,
    };
    return in;
}

/* The built DSN as a NUL-terminated string (it holds no NUL itself). */
static char *build(const struct dsn_input *in, size_t *len)
{
    uint8_t *out = NULL;
    size_t n = 0;
    assert_int_equal(dsn_build(in, &out, &n), DSN_OK);
    assert_non_null(out);
    assert_null(memchr(out, '\0', n));
    char *s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, out, n);
    s[n] = '\0';
    free(out);
    if (len)
        *len = n;
    return s;
}

/* Every line ends in CRLF (no bare LF, no bare CR) and is at most 998
 * octets; no line starts with "X-Injected". */
static void check_lines(const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r') {
            assert_true(i + 1 < n && s[i + 1] == '\n');
        } else if (s[i] == '\n') {
            assert_true(i > 0 && s[i - 1] == '\r');
            size_t len = i - 1 - start;
            assert_true(len <= 998);
            assert_true(strncasecmp(s + start, "X-Injected", 10) != 0);
            start = i + 1;
        }
    }
    assert_int_equal(start, n); /* ends with CRLF */
}

static GMimeMessage *parse(const char *s, size_t n)
{
    GMimeStream *st = g_mime_stream_mem_new_with_buffer(s, n);
    GMimeParser *p = g_mime_parser_new_with_stream(st);
    GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
    g_object_unref(p);
    g_object_unref(st);
    assert_non_null(m);
    return m;
}

static char *part_text(GMimeObject *o)
{
    assert_true(GMIME_IS_PART(o));
    GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(o));
    GMimeStream *mem = g_mime_stream_mem_new();
    g_mime_data_wrapper_write_to_stream(w, mem);
    GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    char *t = g_strndup((const char *)ba->data, ba->len);
    g_object_unref(mem);
    return t;
}

/* The delivery-status body as groups of unfolded "Name: value" fields. */
#define MAXF 16
#define MAXG 8
struct fgroup {
    size_t n;
    char *name[MAXF];
    char *value[MAXF];
};
struct fields {
    size_t ng;
    struct fgroup g[MAXG];
};

static void fields_parse(struct fields *f, const char *text)
{
    memset(f, 0, sizeof *f);
    GString *u = g_string_new(NULL); /* unfolded */
    for (const char *p = text; *p; p++) {
        if (p[0] == '\r' && p[1] == '\n' && (p[2] == ' ' || p[2] == '\t')) {
            p += 1;
            continue;
        }
        if (*p != '\r')
            g_string_append_c(u, *p);
    }
    char **lines = g_strsplit(u->str, "\n", -1);
    g_string_free(u, TRUE);
    bool open = false;
    for (char **l = lines; *l; l++) {
        if (**l == '\0') {
            open = false;
            continue;
        }
        if (!open) {
            assert_true(f->ng < MAXG);
            f->ng++;
            open = true;
        }
        struct fgroup *g = &f->g[f->ng - 1];
        char *colon = strchr(*l, ':');
        assert_non_null(colon);
        assert_true(g->n < MAXF);
        g->name[g->n] = g_strndup(*l, (gsize)(colon - *l));
        g->value[g->n] = g_strstrip(g_strdup(colon + 1));
        g->n++;
    }
    g_strfreev(lines);
}

static void fields_free(struct fields *f)
{
    for (size_t i = 0; i < f->ng; i++)
        for (size_t j = 0; j < f->g[i].n; j++) {
            g_free(f->g[i].name[j]);
            g_free(f->g[i].value[j]);
        }
}

static const char *fget(const struct fields *f, size_t group, const char *name)
{
    if (group >= f->ng)
        return NULL;
    for (size_t j = 0; j < f->g[group].n; j++)
        if (strcasecmp(f->g[group].name[j], name) == 0)
            return f->g[group].value[j];
    return NULL;
}

/* Parsed DSN: the message, its three (or two) parts, the fields. */
struct parsed {
    char *raw;
    size_t len;
    GMimeMessage *msg;
    GMimeMultipart *report;
    int nparts;
    char *human;
    struct fields f;
};

static void parsed_open(struct parsed *p, const struct dsn_input *in)
{
    memset(p, 0, sizeof *p);
    p->raw = build(in, &p->len);
    check_lines(p->raw, p->len);
    p->msg = parse(p->raw, p->len);
    GMimeObject *top = g_mime_message_get_mime_part(p->msg);
    assert_true(GMIME_IS_MULTIPART(top));
    GMimeContentType *ct = g_mime_object_get_content_type(top);
    assert_true(g_mime_content_type_is_type(ct, "multipart", "report"));
    assert_string_equal(g_mime_content_type_get_parameter(ct, "report-type"), "delivery-status");
    p->report = GMIME_MULTIPART(top);
    p->nparts = g_mime_multipart_get_count(p->report);
    assert_true(p->nparts == 2 || p->nparts == 3);
    GMimeObject *p1 = g_mime_multipart_get_part(p->report, 0);
    assert_true(g_mime_content_type_is_type(g_mime_object_get_content_type(p1), "text", "plain"));
    p->human = part_text(p1);
    GMimeObject *p2 = g_mime_multipart_get_part(p->report, 1);
    assert_true(g_mime_content_type_is_type(g_mime_object_get_content_type(p2), "message", "delivery-status"));
    char *ds = part_text(p2);
    fields_parse(&p->f, ds);
    g_free(ds);
    /* the fields of a DSN are ASCII, and so is the text */
    for (const char *c = p->human; *c; c++)
        assert_true((unsigned char)*c < 0x80);
}

static void parsed_close(struct parsed *p)
{
    fields_free(&p->f);
    g_free(p->human);
    g_object_unref(p->msg);
    free(p->raw);
}

static const char *top_header(const struct parsed *p, const char *name)
{
    return g_mime_object_get_header(GMIME_OBJECT(p->msg), name);
}

/* Our analyser reads the DSN back. */
static bounce_report *analyse(const struct parsed *p)
{
    bounce_report *r = NULL;
    char err[128];
    int rv = bounce_analyse(p->raw, p->len, NULL, &r, err, sizeof err);
    if (rv != BOUNCE_OK)
        fail_msg("bounce_analyse: %d %s", rv, err);
    assert_int_equal(bounce_report_kind(r), BOUNCE_KIND_DSN);
    return r;
}

static void test_failed_userunknown(void **state)
{
    struct dsn_rcpt r = {
        .final_recipient = "bob@example.net",
        .original_recipient = "rfc822;Bob@Example.NET",
        .action = "failed",
        .status = "5.1.1",
        .remote_mta = "mx1.example.net",
        .diagnostic = "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown in virtual "
                      "mailbox table",
        .diagnostic_is_smtp = 1,
        .last_attempt_ms = T0,
    };
    struct dsn_input in = base_input(&r, 1);
    in.envid = "QQ314159";
    struct parsed p;
    parsed_open(&p, &in);

    assert_string_equal(top_header(&p, "Subject"), "Undelivered Mail Returned to Sender");
    assert_string_equal(top_header(&p, "Auto-Submitted"), "auto-replied");
    assert_string_equal(top_header(&p, "MIME-Version"), "1.0");
    assert_string_equal(top_header(&p, "X-Ricochet-Queue-ID"), "7F3A9C");
    assert_non_null(strstr(top_header(&p, "From"), "<MAILER-DAEMON@mail.ricochet.test>"));
    assert_string_equal(top_header(&p, "To"), "alice@example.com");
    assert_string_equal(top_header(&p, "Date"), "Tue, 14 Nov 2023 22:13:21 +0000");
    const char *mid = g_mime_message_get_message_id(p.msg);
    assert_non_null(mid);
    assert_true(strncmp(mid, "7F3A9C.dsn.", 11) == 0);
    assert_non_null(strstr(mid, "@mail.ricochet.test"));

    assert_int_equal(p.f.ng, 2);
    assert_string_equal(fget(&p.f, 0, "Reporting-MTA"), "dns; mail.ricochet.test");
    assert_string_equal(fget(&p.f, 0, "Original-Envelope-Id"), "QQ314159");
    assert_string_equal(fget(&p.f, 0, "Arrival-Date"), "Tue, 14 Nov 2023 21:13:20 +0000");
    assert_string_equal(fget(&p.f, 1, "Original-Recipient"), "rfc822;Bob@Example.NET");
    assert_string_equal(fget(&p.f, 1, "Final-Recipient"), "rfc822; bob@example.net");
    assert_string_equal(fget(&p.f, 1, "Action"), "failed");
    assert_string_equal(fget(&p.f, 1, "Status"), "5.1.1");
    assert_string_equal(fget(&p.f, 1, "Remote-MTA"), "dns; mx1.example.net");
    assert_string_equal(fget(&p.f, 1, "Diagnostic-Code"), "smtp; 550 5.1.1 <bob@example.net>: Recipient "
                                                          "address rejected: User unknown in virtual "
                                                          "mailbox table");
    assert_string_equal(fget(&p.f, 1, "Last-Attempt-Date"), "Tue, 14 Nov 2023 22:13:20 +0000");
    assert_null(fget(&p.f, 1, "Will-Retry-Until"));

    assert_non_null(strstr(p.human, "<bob@example.net>: the message could not be delivered"));
    assert_non_null(strstr(p.human, "Remote server: mx1.example.net"));
    assert_non_null(strstr(p.human, "It replied: 550 5.1.1 <bob@example.net>"));
    assert_non_null(strstr(p.human, "Queue ID: 7F3A9C"));

    /* default RET with a small original: the whole message comes back */
    assert_int_equal(p.nparts, 3);
    GMimeObject *p3 = g_mime_multipart_get_part(p.report, 2);
    assert_true(GMIME_IS_MESSAGE_PART(p3));
    GMimeMessage *o = g_mime_message_part_get_message(GMIME_MESSAGE_PART(p3));
    assert_string_equal(g_mime_message_get_subject(o), "quarterly report");
    assert_non_null(strstr(p.raw, orig_crlf)); /* byte for byte */

    bounce_report *br = analyse(&p);
    assert_int_equal(bounce_report_rcpt_count(br), 1);
    const struct bounce_rcpt *b = bounce_report_rcpt(br, 0);
    assert_string_equal(b->recipient, "bob@example.net");
    assert_string_equal(b->action, "failed");
    assert_string_equal(b->status, "5.1.1");
    assert_string_equal(bounce_reason_name(b->reason), "userunknown");
    assert_int_equal(b->hard, 1);
    assert_string_equal(b->remote_mta, "mx1.example.net");
    assert_string_equal(bounce_report_orig_get(br, "Message-ID"), "<m1@example.com>");
    assert_string_equal(bounce_report_orig_get(br, "X-Campaign"), "c42");
    bounce_report_free(br);
    parsed_close(&p);
}

static void test_delayed(void **state)
{
    struct dsn_rcpt r = {
        .final_recipient = "carol@example.org",
        .action = "delayed",
        .status = "4.4.1",
        .remote_mta = "mx.example.org",
        .diagnostic = "connect to mx.example.org[192.0.2.7]:25: Connection timed out",
        .diagnostic_is_smtp = 0,
        .last_attempt_ms = T0,
        .will_retry_until_ms = T0 + 4ull * 86400000,
    };
    struct dsn_input in = base_input(&r, 1);
    in.ret = "HDRS";
    struct parsed p;
    parsed_open(&p, &in);
    assert_string_equal(top_header(&p, "Subject"), "Delayed Mail (still being retried)");
    assert_null(fget(&p.f, 0, "Original-Envelope-Id"));
    assert_null(fget(&p.f, 1, "Original-Recipient"));
    assert_string_equal(fget(&p.f, 1, "Action"), "delayed");
    assert_string_equal(fget(&p.f, 1, "Status"), "4.4.1");
    assert_string_equal(fget(&p.f, 1, "Diagnostic-Code"),
                        "X-Ricochet; connect to mx.example.org[192.0.2.7]:25: Connection timed out");
    assert_string_equal(fget(&p.f, 1, "Will-Retry-Until"), "Sat, 18 Nov 2023 22:13:20 +0000");
    assert_non_null(strstr(p.human, "We will keep trying until Sat, 18 Nov 2023 22:13:20 +0000"));
    assert_non_null(strstr(p.human, "Reason: connect to"));

    /* RET=HDRS: the header block only */
    assert_int_equal(p.nparts, 3);
    GMimeObject *p3 = g_mime_multipart_get_part(p.report, 2);
    assert_true(g_mime_content_type_is_type(g_mime_object_get_content_type(p3), "text", "rfc822-headers"));
    char *h = part_text(p3);
    assert_int_equal(strlen(h), ORIG_HDR_LEN);
    assert_memory_equal(h, orig_crlf, ORIG_HDR_LEN);
    g_free(h);

    bounce_report *br = analyse(&p);
    const struct bounce_rcpt *b = bounce_report_rcpt(br, 0);
    assert_string_equal(b->recipient, "carol@example.org");
    assert_string_equal(b->action, "delayed");
    assert_string_equal(b->status, "4.4.1");
    assert_string_equal(bounce_reason_name(b->reason), "expired");
    assert_int_equal(b->hard, 0);
    assert_string_equal(bounce_report_orig_get(br, "X-Campaign"), "c42");
    bounce_report_free(br);
    parsed_close(&p);
}

static void test_relayed(void **state)
{
    struct dsn_rcpt r[] = {
        {.final_recipient = "dave@example.com", .action = "relayed", .remote_mta = "mx.example.com",
         .diagnostic = "250 2.0.0 Ok: queued as 4Xyz", .diagnostic_is_smtp = 1, .last_attempt_ms = T0},
        {.final_recipient = "erin@example.com", .action = "delivered", .status = ""},
    };
    struct dsn_input in = base_input(r, 2);
    struct parsed p;
    parsed_open(&p, &in);
    assert_string_equal(top_header(&p, "Subject"), "Successful Mail Delivery Report");
    assert_int_equal(p.f.ng, 3);
    assert_string_equal(fget(&p.f, 1, "Action"), "relayed");
    assert_string_equal(fget(&p.f, 1, "Status"), "2.0.0"); /* derived */
    assert_string_equal(fget(&p.f, 2, "Action"), "delivered");
    assert_string_equal(fget(&p.f, 2, "Status"), "2.0.0");
    assert_null(fget(&p.f, 2, "Diagnostic-Code"));
    assert_null(fget(&p.f, 2, "Remote-MTA"));
    assert_null(fget(&p.f, 2, "Last-Attempt-Date"));
    bounce_report *br = analyse(&p);
    assert_int_equal(bounce_report_rcpt_count(br), 2);
    for (size_t i = 0; i < 2; i++) {
        const struct bounce_rcpt *b = bounce_report_rcpt(br, i);
        assert_string_equal(b->action, i == 0 ? "relayed" : "delivered");
        assert_string_equal(bounce_reason_name(b->reason), "delivered");
        assert_int_equal(b->hard, -1);
    }
    bounce_report_free(br);
    parsed_close(&p);
}

/* Mixed recipients: the failure subject; each recipient read back with its
 * own reason. Also the expired recipient: action failed, status 4.4.7, the
 * last 4xx reply as diagnostic. */
static void test_mixed_and_reasons(void **state)
{
    struct dsn_rcpt r[] = {
        {.final_recipient = "bob@example.net", .action = "failed", .status = "5.1.1",
         .diagnostic = "550 5.1.1 <bob@example.net>: user unknown", .diagnostic_is_smtp = 1},
        {.final_recipient = "full@example.net", .action = "failed", .status = "5.2.2",
         .remote_mta = "mx.example.net", .diagnostic = "552 5.2.2 Mailbox full", .diagnostic_is_smtp = 1},
        {.final_recipient = "slow@example.org", .action = "failed", .status = "4.4.7",
         .remote_mta = "mx.example.org",
         .diagnostic = "421 4.4.2 mx.example.org: connection timed out", .diagnostic_is_smtp = 1},
        {.final_recipient = "wait@example.org", .action = "delayed", .status = NULL,
         .will_retry_until_ms = T0 + 86400000},
        {.final_recipient = "ok@example.com", .action = "relayed"},
        {.final_recipient = "gone@example.invalid", .action = "failed", .status = "5.4.4",
         .diagnostic = "no MX or address record for example.invalid", .diagnostic_is_smtp = 0},
    };
    static const struct { const char *status, *reason; int hard; } want[] = {
        {"5.1.1", "userunknown", 1}, {"5.2.2", "mailboxfull", 0}, {"4.4.2", "expired", 0},
        {"4.0.0", "expired", 0},     {"2.0.0", "delivered", -1},  {"5.4.4", "hostunknown", 1},
    };
    size_t n = sizeof r / sizeof r[0];
    struct dsn_input in = base_input(r, n);
    struct parsed p;
    parsed_open(&p, &in);
    assert_string_equal(top_header(&p, "Subject"), "Undelivered Mail Returned to Sender");
    assert_int_equal(p.f.ng, n + 1);
    assert_string_equal(fget(&p.f, 3, "Status"), "4.4.7");
    assert_string_equal(fget(&p.f, 4, "Status"), "4.0.0");
    assert_non_null(fget(&p.f, 4, "Will-Retry-Until"));
    assert_non_null(strstr(p.human, "<slow@example.org>: the message could not be delivered before it expired"));
    bounce_report *br = analyse(&p);
    assert_int_equal(bounce_report_rcpt_count(br), n);
    for (size_t i = 0; i < n; i++) {
        const struct bounce_rcpt *b = bounce_report_rcpt(br, i);
        assert_string_equal(b->recipient, r[i].final_recipient);
        assert_string_equal(b->action, r[i].action);
        /* the analyser prefers the enhanced code quoted in an SMTP reply */
        assert_string_equal(b->status, want[i].status);
        assert_string_equal(bounce_reason_name(b->reason), want[i].reason);
        assert_int_equal(b->hard, want[i].hard);
    }
    bounce_report_free(br);
    parsed_close(&p);
}

static void test_ret_choices(void **state)
{
    struct dsn_rcpt r = {.final_recipient = "bob@example.net", .action = "failed", .status = "5.1.1"};
    struct dsn_input in = base_input(&r, 1);
    struct parsed p;

    /* RET=FULL */
    in.ret = "FULL";
    parsed_open(&p, &in);
    assert_true(GMIME_IS_MESSAGE_PART(g_mime_multipart_get_part(p.report, 2)));
    assert_non_null(strstr(p.human, "The original message is attached."));
    parsed_close(&p);

    /* RET=FULL but too big: headers, and the text says so */
    in.max_full_size = 64;
    parsed_open(&p, &in);
    GMimeObject *p3 = g_mime_multipart_get_part(p.report, 2);
    assert_true(g_mime_content_type_is_type(g_mime_object_get_content_type(p3), "text", "rfc822-headers"));
    assert_non_null(strstr(p.human, "too large"));
    parsed_close(&p);

    /* no RET, too big: the same */
    in.ret = NULL;
    parsed_open(&p, &in);
    p3 = g_mime_multipart_get_part(p.report, 2);
    assert_true(g_mime_content_type_is_type(g_mime_object_get_content_type(p3), "text", "rfc822-headers"));
    parsed_close(&p);

    /* no original at all, and an empty one: two parts */
    in.max_full_size = 0;
    in.original = NULL;
    in.original_len = 0;
    parsed_open(&p, &in);
    assert_int_equal(p.nparts, 2);
    assert_non_null(strstr(p.human, "not available"));
    parsed_close(&p);
    in.original = (const uint8_t *)"";
    parsed_open(&p, &in);
    assert_int_equal(p.nparts, 2);
    parsed_close(&p);
}

/* Originals that are not well formed still give a valid DSN. */
static void test_odd_originals(void **state)
{
    struct dsn_rcpt r = {.final_recipient = "bob@example.net", .action = "failed"};
    struct dsn_input in = base_input(&r, 1);
    struct parsed p;

    static const char bare_lf[] = "Subject: lf only\nFrom: a@b.example\n\nbody\nmore\n";
    in.original = (const uint8_t *)bare_lf;
    in.original_len = sizeof bare_lf - 1;
    parsed_open(&p, &in); /* check_lines: CRLF everywhere */
    assert_int_equal(p.nparts, 3);
    assert_non_null(strstr(p.raw, "Subject: lf only\r\nFrom: a@b.example\r\n\r\nbody\r\nmore\r\n"));
    assert_string_equal(fget(&p.f, 1, "Status"), "5.0.0"); /* derived */
    parsed_close(&p);

    in.ret = "HDRS";
    parsed_open(&p, &in);
    char *h = part_text(g_mime_multipart_get_part(p.report, 2));
    assert_string_equal(h, "Subject: lf only\r\nFrom: a@b.example\r\n");
    g_free(h);
    parsed_close(&p);

    static const char no_sep[] = "Subject: no body\r\nFrom: a@b.example\r\n";
    in.original = (const uint8_t *)no_sep;
    in.original_len = sizeof no_sep - 1;
    parsed_open(&p, &in);
    h = part_text(g_mime_multipart_get_part(p.report, 2));
    assert_string_equal(h, no_sep);
    g_free(h);
    parsed_close(&p);

    /* no headers at all (starts with the empty line): no part 3 */
    static const char no_hdr[] = "\r\nbody only\r\n";
    in.original = (const uint8_t *)no_hdr;
    in.original_len = sizeof no_hdr - 1;
    parsed_open(&p, &in);
    assert_int_equal(p.nparts, 2);
    parsed_close(&p);

    /* NUL bytes and an overlong line in the body: headers only */
    in.ret = "FULL";
    char big[3000];
    memcpy(big, "Subject: x\r\n\r\n", 14);
    memset(big + 14, 'a', sizeof big - 14);
    big[100] = '\0';
    in.original = (const uint8_t *)big;
    in.original_len = sizeof big;
    parsed_open(&p, &in);
    assert_int_equal(p.nparts, 3);
    h = part_text(g_mime_multipart_get_part(p.report, 2));
    assert_string_equal(h, "Subject: x\r\n");
    g_free(h);
    parsed_close(&p);

    /* a bare CR in the body (padding a line past 998 octets between LFs):
     * headers only */
    static const char bare_cr[] = "Subject: cr\r\n\r\nline one\rline two\r\n";
    in.original = (const uint8_t *)bare_cr;
    in.original_len = sizeof bare_cr - 1;
    parsed_open(&p, &in);
    h = part_text(g_mime_multipart_get_part(p.report, 2));
    assert_string_equal(h, "Subject: cr\r\n");
    g_free(h);
    assert_non_null(strstr(p.human, "bare CRs"));
    parsed_close(&p);

    /* an overlong header line: nothing returned */
    in.original = (const uint8_t *)big;
    memset(big, 'b', sizeof big);
    memcpy(big, "Subject: ", 9);
    in.original_len = sizeof big;
    parsed_open(&p, &in);
    assert_int_equal(p.nparts, 2);
    parsed_close(&p);

    /* 8-bit original: 8bit transfer encoding, bytes intact */
    static const char eight[] = "Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve\r\n";
    in.original = (const uint8_t *)eight;
    in.original_len = sizeof eight - 1;
    parsed_open(&p, &in);
    assert_non_null(strstr(p.raw, "Content-Transfer-Encoding: 8bit"));
    assert_non_null(strstr(p.raw, eight));
    parsed_close(&p);
}

static const char inject[] = "\r\nX-Injected: 1\r\n\r\nX-Injected: 2\nX-Injected: 3\rX-Injected: 4";

static char *hostile(const char *prefix)
{
    return g_strconcat(prefix, inject, NULL);
}

/* CR, LF, NUL, non-ASCII, overlong values in every field. */
static void test_hostile_fields(void **state)
{
    char *diag = hostile("550 5.1.1 user unknown");
    char *addr = hostile("bob@example.net");
    char *orcpt = hostile("rfc822;bob@example.net");
    char *mta = hostile("mx.example.net");
    char *envid = hostile("ENV");
    char *qid = hostile("Q1");
    char *to = hostile("alice@example.com");
    char *from = hostile("MAILER-DAEMON@x");
    char *rep = hostile("mail.ricochet.test");
    struct dsn_rcpt r[3] = {
        {.final_recipient = addr, .original_recipient = orcpt, .action = "failed", .status = "5.1.1\r\nX-Injected: 5",
         .remote_mta = mta, .diagnostic = diag, .diagnostic_is_smtp = 1},
        {.final_recipient = "nul@example.net\0X-Injected: 6", .action = "failed", .status = "5.1.1",
         .diagnostic = "550 5.1.1 caf\xc3\xa9 \xff\xfe user unknown\0\r\nX-Injected: 7", .diagnostic_is_smtp = 1},
        {.final_recipient = "long@example.net", .action = "failed", .status = "5.1.1", .diagnostic_is_smtp = 1},
    };
    /* 5000 bytes without a space, then 5000 with spaces */
    char *longdiag = malloc(10001);
    memcpy(longdiag, "550 5.1.1 ", 10);
    memset(longdiag + 10, 'x', 4990);
    for (size_t i = 5000; i < 10000; i++)
        longdiag[i] = (i % 7 == 0) ? ' ' : 'y';
    longdiag[10000] = '\0';
    r[2].diagnostic = longdiag;
    struct dsn_input in = base_input(r, 3);
    in.envid = envid;
    in.queue_id = qid;
    in.to_address = to;
    in.from_address = from;
    in.reporting_mta = rep;
    struct parsed p;
    parsed_open(&p, &in); /* check_lines: CRLF, <= 998, no X-Injected line */

    assert_null(top_header(&p, "X-Injected"));
    assert_int_equal(p.f.ng, 4);
    for (size_t g = 0; g < p.f.ng; g++)
        assert_null(fget(&p.f, g, "X-Injected"));
    /* everything before the original is ASCII */
    const char *end = strstr(p.raw, "Content-Description: Undelivered Message");
    assert_non_null(end);
    for (const char *c = p.raw; c < end; c++)
        assert_true((unsigned char)*c < 0x80);
    assert_string_equal(fget(&p.f, 1, "Status"), "5.0.0"); /* a bad status: derived */
    assert_string_equal(fget(&p.f, 2, "Final-Recipient"), "rfc822; nul@example.net");
    assert_string_equal(fget(&p.f, 2, "Diagnostic-Code"), "smtp; 550 5.1.1 caf?? ?? user unknown");
    const char *d = fget(&p.f, 3, "Diagnostic-Code");
    assert_true(strlen(d) <= DSN_MAX_FIELD + 6);
    assert_true(strncmp(d, "smtp; 550 5.1.1 xxx", 19) == 0);
    assert_non_null(strstr(fget(&p.f, 1, "Diagnostic-Code"), "X-Injected: 1"));

    bounce_report *br = analyse(&p);
    assert_int_equal(bounce_report_rcpt_count(br), 3);
    assert_true(strncasecmp(bounce_report_rcpt(br, 0)->recipient, "bob@example.net", 15) == 0);
    assert_string_equal(bounce_reason_name(bounce_report_rcpt(br, 1)->reason), "userunknown");
    bounce_report_free(br);
    parsed_close(&p);
    free(longdiag);
    g_free(diag);
    g_free(addr);
    g_free(orcpt);
    g_free(mta);
    g_free(envid);
    g_free(qid);
    g_free(to);
    g_free(from);
    g_free(rep);
}

static void test_einval(void **state)
{
    uint8_t *out = NULL;
    size_t n = 0;
    struct dsn_rcpt r = {.final_recipient = "bob@example.net", .action = "bounced"};
    struct dsn_input in = base_input(&r, 1);
    assert_int_equal(dsn_build(&in, &out, &n), DSN_EINVAL);
    r.action = "failed";
    r.final_recipient = "";
    assert_int_equal(dsn_build(&in, &out, &n), DSN_EINVAL);
    r.final_recipient = "bob@example.net";
    in.nrcpts = 0;
    assert_int_equal(dsn_build(&in, &out, &n), DSN_EINVAL);
    in.nrcpts = 1;
    in.to_address = NULL;
    assert_int_equal(dsn_build(&in, &out, &n), DSN_EINVAL);
    assert_int_equal(dsn_build(NULL, &out, &n), DSN_EINVAL);
    assert_null(out);
}

/* Two DSNs of the same queue id have different Message-IDs. */
static void test_unique_message_id(void **state)
{
    struct dsn_rcpt r = {.final_recipient = "bob@example.net", .action = "failed"};
    struct dsn_input in = base_input(&r, 1);
    struct parsed a, b;
    parsed_open(&a, &in);
    parsed_open(&b, &in);
    assert_string_not_equal(g_mime_message_get_message_id(a.msg), g_mime_message_get_message_id(b.msg));
    parsed_close(&a);
    parsed_close(&b);
}

int main(void)
{
    g_mime_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_userunknown), cmocka_unit_test(test_delayed),
        cmocka_unit_test(test_relayed),            cmocka_unit_test(test_mixed_and_reasons),
        cmocka_unit_test(test_ret_choices),        cmocka_unit_test(test_odd_originals),
        cmocka_unit_test(test_hostile_fields),     cmocka_unit_test(test_einval),
        cmocka_unit_test(test_unique_message_id),
    };
    int rv = cmocka_run_group_tests(tests, NULL, NULL);
    g_mime_shutdown();
    return rv;
}
