/* DSN builder (smtp/dsn.h). The delivery-status fields are plain text that
 * we write ourselves (RFC 3464 §2.2/§2.3: header-like lines); the MIME
 * structure around them, the header encoding and the serialisation are
 * GMime's. GMime/GLib stay private to this file. */
#include "smtp/dsn.h"

#include <gmime/gmime.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DSN_DEFAULT_MAX_FULL (1u << 20)
#define DSN_VALUE_MAX 900 /* octets of one field value; folded at FOLD_AT */
#define DSN_FOLD_AT 76

static pthread_once_t dsn_gmime_once = PTHREAD_ONCE_INIT;

static void dsn_gmime_init(void)
{
    g_mime_init();
}

/* ------------------------------------------------------------ text buffer */

struct text {
    char *p;
    size_t len, cap;
    bool oom;
};

static void text_add(struct text *t, const char *s, size_t n)
{
    if (t->oom)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t ncap = t->cap ? t->cap : 1024;
        while (ncap < t->len + n + 1)
            ncap *= 2;
        char *np = realloc(t->p, ncap);
        if (np == NULL) {
            t->oom = true;
            return;
        }
        t->p = np;
        t->cap = ncap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void text_str(struct text *t, const char *s)
{
    text_add(t, s, strlen(s));
}

static void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(struct text *t, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        text_add(t, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* A caller's string made safe for one header-like line: controls to
 * spaces, non-ASCII to '?', runs of spaces kept, at most max octets. */
static void safe_copy(char *dst, size_t size, const char *src, size_t max)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)(src ? src : ""); *p && n + 1 < size && n < max; p++)
        dst[n++] = *p < 0x20 || *p == 0x7f ? ' ' : *p >= 0x80 ? '?' : (char)*p;
    while (n > 0 && dst[n - 1] == ' ')
        n--;
    dst[n] = '\0';
}

/* "Name: value" folded at spaces so that lines stay short (RFC 5322 §2.2.3
 * folding, which RFC 3464 fields share); a word longer than a line stays
 * whole (values are capped at DSN_VALUE_MAX, far below 998). */
static void field(struct text *t, const char *name, const char *value)
{
    char v[DSN_VALUE_MAX + 1];
    safe_copy(v, sizeof v, value, DSN_VALUE_MAX);
    size_t col = strlen(name) + 2;
    text_printf(t, "%s:", name);
    const char *p = v;
    while (*p == ' ')
        p++;
    bool first = true;
    while (*p) {
        const char *end = strchr(p, ' ');
        size_t wl = end ? (size_t)(end - p) : strlen(p);
        if (!first && col + 1 + wl > DSN_FOLD_AT) {
            text_str(t, "\n");
            col = 0;
        }
        text_str(t, " ");
        text_add(t, p, wl);
        col += 1 + wl;
        first = false;
        p += wl;
        while (*p == ' ')
            p++;
    }
    text_str(t, "\n");
}

static void rfc5322_date(uint64_t ms, char *out, size_t size)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, size, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static const char *default_status(const char *action)
{
    if (strcasecmp(action, "failed") == 0)
        return "5.0.0";
    if (strcasecmp(action, "delayed") == 0)
        return "4.0.0";
    return "2.0.0";
}

static bool valid_action(const char *a)
{
    static const char *const ok[] = {"failed", "delayed", "delivered", "relayed", "expanded"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcasecmp(a, ok[i]) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------- the parts */

static void human_text(struct text *t, const struct dsn_input *in, bool any_failed, bool any_delayed,
                       bool headers_only_for_size)
{
    char host[256], qid[128];
    safe_copy(host, sizeof host, in->reporting_mta, 255);
    safe_copy(qid, sizeof qid, in->queue_id, 127);
    text_printf(t, "This is the mail system at %s.\n\n", host);
    if (any_failed)
        text_str(t, "Your message could not be delivered to one or more recipients.\n"
                    "It is attached below, or its headers are.\n\n");
    else if (any_delayed)
        text_str(t, "Your message has not been delivered yet to the recipients below;\n"
                    "delivery is still being retried. No action is needed.\n\n");
    else
        text_str(t, "Your message was delivered or relayed as you asked (NOTIFY=SUCCESS).\n\n");
    for (size_t i = 0; i < in->nrcpts; i++) {
        const struct dsn_rcpt *r = &in->rcpts[i];
        char addr[512], diag[DSN_VALUE_MAX + 1], mta[256];
        safe_copy(addr, sizeof addr, r->final_recipient, 511);
        safe_copy(diag, sizeof diag, r->diagnostic, DSN_VALUE_MAX);
        safe_copy(mta, sizeof mta, r->remote_mta, 255);
        struct text line = {0};
        char what[900];
        snprintf(what, sizeof what, "<%s>: %s%s%s%s", addr, r->action, mta[0] ? " (remote host " : "", mta,
                 mta[0] ? ")" : "");
        field(&line, "Recipient", what);
        if (diag[0])
            field(&line, "Reason", diag);
        if (!line.oom && line.p)
            text_add(t, line.p, line.len);
        free(line.p);
        text_str(t, "\n");
    }
    if (qid[0])
        text_printf(t, "Queue ID: %s\n", qid);
    if (headers_only_for_size)
        text_str(t, "The original message was too large to return whole; only its headers are attached.\n");
}

static void status_fields(struct text *t, const struct dsn_input *in)
{
    char v[DSN_VALUE_MAX + 32], date[64], tmp[DSN_VALUE_MAX + 1];
    safe_copy(tmp, sizeof tmp, in->reporting_mta, 255);
    snprintf(v, sizeof v, "dns; %s", tmp);
    field(t, "Reporting-MTA", v);
    if (in->envid && in->envid[0])
        field(t, "Original-Envelope-Id", in->envid);
    if (in->arrival_ms) {
        rfc5322_date(in->arrival_ms, date, sizeof date);
        field(t, "Arrival-Date", date);
    }
    for (size_t i = 0; i < in->nrcpts; i++) {
        const struct dsn_rcpt *r = &in->rcpts[i];
        text_str(t, "\n");
        if (r->original_recipient && r->original_recipient[0]) {
            /* "addr-type;address"; without a type it is an rfc822 address */
            safe_copy(tmp, sizeof tmp, r->original_recipient, 600);
            if (strchr(tmp, ';'))
                field(t, "Original-Recipient", tmp);
            else {
                snprintf(v, sizeof v, "rfc822;%s", tmp);
                field(t, "Original-Recipient", v);
            }
        }
        safe_copy(tmp, sizeof tmp, r->final_recipient, 600);
        snprintf(v, sizeof v, "rfc822; %s", tmp);
        field(t, "Final-Recipient", v);
        safe_copy(tmp, sizeof tmp, r->action, 16);
        for (char *p = tmp; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        field(t, "Action", tmp);
        safe_copy(tmp, sizeof tmp, r->status && r->status[0] ? r->status : default_status(r->action), 15);
        field(t, "Status", tmp);
        if (r->remote_mta && r->remote_mta[0]) {
            safe_copy(tmp, sizeof tmp, r->remote_mta, 255);
            snprintf(v, sizeof v, "dns; %s", tmp);
            field(t, "Remote-MTA", v);
        }
        if (r->diagnostic && r->diagnostic[0]) {
            safe_copy(tmp, sizeof tmp, r->diagnostic, DSN_VALUE_MAX - 16);
            snprintf(v, sizeof v, "%s; %s", r->diagnostic_is_smtp ? "smtp" : "X-Ricochet", tmp);
            field(t, "Diagnostic-Code", v);
        }
        if (r->last_attempt_ms) {
            rfc5322_date(r->last_attempt_ms, date, sizeof date);
            field(t, "Last-Attempt-Date", date);
        }
        if (r->will_retry_until_ms && strcasecmp(r->action, "delayed") == 0) {
            rfc5322_date(r->will_retry_until_ms, date, sizeof date);
            field(t, "Will-Retry-Until", date);
        }
    }
}

/* Length of the original's header block (up to the empty line, or all of
 * it when there is none), with either line ending. */
static size_t header_block_len(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n')
            continue;
        if (i + 1 < n && p[i + 1] == '\n')
            return i + 1;
        if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
            return i + 1;
    }
    return n;
}

/* The original as a part's content: NUL bytes (not allowed in 8bit MIME,
 * RFC 2045 §2.8) become spaces; the 8bit flag says whether any byte is
 * non-ASCII. */
static GMimePart *original_part(const uint8_t *p, size_t n, bool whole)
{
    GMimePart *part = whole ? g_mime_part_new_with_type("message", "rfc822")
                            : g_mime_part_new_with_type("text", "rfc822-headers");
    GByteArray *ba = g_byte_array_sized_new((guint)n);
    bool eight = false;
    for (size_t i = 0; i < n; i++) {
        guint8 c = p[i] ? p[i] : ' ';
        eight |= c >= 0x80;
        g_byte_array_append(ba, &c, 1);
    }
    GMimeStream *s = g_mime_stream_mem_new_with_byte_array(ba); /* takes ba */
    GMimeDataWrapper *w = g_mime_data_wrapper_new_with_stream(s, GMIME_CONTENT_ENCODING_DEFAULT);
    g_mime_part_set_content(part, w);
    g_mime_part_set_content_encoding(part, eight ? GMIME_CONTENT_ENCODING_8BIT : GMIME_CONTENT_ENCODING_7BIT);
    g_object_unref(w);
    g_object_unref(s);
    return part;
}

static GMimePart *text_part(const char *type, const char *subtype, const char *text)
{
    GMimePart *part = g_mime_part_new_with_type(type, subtype);
    GMimeStream *s = g_mime_stream_mem_new_with_buffer(text, strlen(text));
    GMimeDataWrapper *w = g_mime_data_wrapper_new_with_stream(s, GMIME_CONTENT_ENCODING_DEFAULT);
    g_mime_part_set_content(part, w);
    g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_7BIT);
    if (strcmp(type, "text") == 0)
        g_mime_object_set_content_type_parameter(GMIME_OBJECT(part), "charset", "us-ascii");
    g_object_unref(w);
    g_object_unref(s);
    return part;
}

int dsn_build(const struct dsn_input *in, uint8_t **out, size_t *out_len)
{
    if (in == NULL || out == NULL || out_len == NULL || in->nrcpts == 0 || in->rcpts == NULL ||
        in->reporting_mta == NULL || in->from_address == NULL || in->to_address == NULL || in->to_address[0] == '\0')
        return DSN_EINVAL;
    bool any_failed = false, any_delayed = false;
    for (size_t i = 0; i < in->nrcpts; i++) {
        const struct dsn_rcpt *r = &in->rcpts[i];
        if (r->final_recipient == NULL || r->action == NULL || !valid_action(r->action))
            return DSN_EINVAL;
        any_failed |= strcasecmp(r->action, "failed") == 0;
        any_delayed |= strcasecmp(r->action, "delayed") == 0;
    }
    pthread_once(&dsn_gmime_once, dsn_gmime_init);

    size_t max_full = in->max_full_size ? in->max_full_size : DSN_DEFAULT_MAX_FULL;
    bool have_orig = in->original != NULL && in->original_len > 0;
    bool want_full = in->ret == NULL || strcasecmp(in->ret, "HDRS") != 0;
    bool too_big = have_orig && want_full && in->original_len > max_full;
    bool whole = have_orig && want_full && !too_big;

    struct text human = {0}, fields = {0};
    human_text(&human, in, any_failed, any_delayed, too_big);
    status_fields(&fields, in);
    if (human.oom || fields.oom) {
        free(human.p);
        free(fields.p);
        return DSN_ENOMEM;
    }

    GMimeMessage *msg = g_mime_message_new(TRUE);
    char addr[512], subject_host[256], mid[512];
    safe_copy(addr, sizeof addr, in->from_address, 511);
    g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_FROM, "Mail Delivery System", addr);
    safe_copy(addr, sizeof addr, in->to_address, 511);
    g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_TO, NULL, addr);
    g_mime_message_set_subject(msg,
                               any_failed    ? "Undelivered Mail Returned to Sender"
                               : any_delayed ? "Delayed Mail (still being retried)"
                                             : "Successful Mail Delivery Report",
                               NULL);
    GDateTime *dt = g_date_time_new_from_unix_utc((gint64)(in->now_ms / 1000));
    g_mime_message_set_date(msg, dt);
    g_date_time_unref(dt);
    safe_copy(subject_host, sizeof subject_host, in->reporting_mta, 255);
    char qid[128];
    safe_copy(qid, sizeof qid, in->queue_id ? in->queue_id : "dsn", 127);
    for (char *p = qid; *p; p++)
        if (*p == ' ' || *p == '<' || *p == '>' || *p == '@')
            *p = '_';
    snprintf(mid, sizeof mid, "%s.dsn.%llu@%s", qid, (unsigned long long)in->now_ms, subject_host);
    g_mime_message_set_message_id(msg, mid);
    g_mime_object_set_header(GMIME_OBJECT(msg), "Auto-Submitted", "auto-replied", NULL);

    GMimeMultipart *report = g_mime_multipart_new_with_subtype("report");
    g_mime_object_set_content_type_parameter(GMIME_OBJECT(report), "report-type", "delivery-status");
    GMimePart *p1 = text_part("text", "plain", human.p);
    g_mime_part_set_content_description(p1, "Notification");
    g_mime_multipart_add(report, GMIME_OBJECT(p1));
    g_object_unref(p1);
    GMimePart *p2 = text_part("message", "delivery-status", fields.p);
    g_mime_part_set_content_description(p2, "Delivery report");
    g_mime_multipart_add(report, GMIME_OBJECT(p2));
    g_object_unref(p2);
    if (have_orig) {
        size_t n = whole ? in->original_len : header_block_len(in->original, in->original_len);
        GMimePart *p3 = original_part(in->original, n, whole);
        g_mime_part_set_content_description(p3, whole ? "Undelivered Message" : "Undelivered Message Headers");
        g_mime_multipart_add(report, GMIME_OBJECT(p3));
        g_object_unref(p3);
    }
    g_mime_message_set_mime_part(msg, GMIME_OBJECT(report));
    g_object_unref(report);
    free(human.p);
    free(fields.p);

    GMimeFormatOptions *fo = g_mime_format_options_clone(NULL);
    g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
    GMimeStream *mem = g_mime_stream_mem_new();
    GMimeStream *filtered = g_mime_stream_filter_new(mem);
    /* Content streams keep the caller's line endings; one unix2dos pass over
     * the whole output makes every line end in CRLF (existing CRLF kept). */
    GMimeFilter *crlf = g_mime_filter_unix2dos_new(FALSE);
    g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered), crlf);
    g_object_unref(crlf);
    ssize_t w = g_mime_object_write_to_stream(GMIME_OBJECT(msg), fo, filtered);
    g_mime_stream_flush(filtered);
    g_mime_format_options_free(fo);
    g_object_unref(msg);
    int rv = DSN_OK;
    GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    if (w < 0 || ba == NULL) {
        rv = DSN_ENOMEM;
    } else {
        *out = malloc(ba->len ? ba->len : 1);
        if (*out == NULL) {
            rv = DSN_ENOMEM;
        } else {
            memcpy(*out, ba->data, ba->len);
            *out_len = ba->len;
        }
    }
    g_object_unref(filtered);
    g_object_unref(mem);
    return rv;
}
