/* Builds the DSN that goes back to the original sender (smtp/dsn.h).
 *
 * Happy path: check the input, clean every field into one safe line, write
 * the human-readable text and the delivery-status fields, pick how much of
 * the original to return, and let GMime assemble and serialise the
 * multipart/report; a GMime unix2dos filter makes every line end in CRLF.
 *
 * Failure modes: DSN_EINVAL for input the scheduler should never pass (no
 * recipient, an unknown action); DSN_ENOMEM when the output buffer cannot
 * be allocated (GLib itself aborts on allocation failure). A hostile field
 * is never an error: it is cleaned. A hostile original (NUL bytes, a bare
 * CR, a line over 998 octets) is returned as headers only, or not at all,
 * and the text says so. */
#define _GNU_SOURCE
#include <gmime/gmime.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "smtp/dsn.h"

/* RFC 5322 2.1.1: a line is at most 998 octets without its CRLF. */
#define DSN_LINE_MAX 998
/* Fold field lines near this column when the value has spaces. */
#define DSN_FOLD_COL 76

static pthread_once_t dsn_gmime_once = PTHREAD_ONCE_INIT;

/* The same initialisation as the bounce analyser: g_mime_init() counts its
 * callers, so both libraries in one process are fine. */
static void dsn_gmime_init(void)
{
    g_mime_init();
}

enum dsn_kind { DSN_K_FAILED, DSN_K_DELAYED, DSN_K_SUCCESS };

static const struct {
    const char *action;
    enum dsn_kind kind;
    const char *status;   /* when none is given */
    const char *says;     /* human-readable */
} dsn_actions[] = {
    {"failed", DSN_K_FAILED, "5.0.0", "could not be delivered; we have given up"},
    {"delayed", DSN_K_DELAYED, "4.0.0", "has not been delivered yet; we are still trying"},
    {"delivered", DSN_K_SUCCESS, "2.0.0", "was delivered to the mailbox"},
    {"relayed", DSN_K_SUCCESS, "2.0.0",
     "was handed to a server that does not send delivery reports; no further notice will follow"},
    {"expanded", DSN_K_SUCCESS, "2.0.0",
     "was delivered to an alias or list, which may send reports of its own"},
};
#define DSN_NACTIONS (sizeof dsn_actions / sizeof dsn_actions[0])

static int dsn_action_index(const char *action)
{
    if (action == NULL)
        return -1;
    for (size_t i = 0; i < DSN_NACTIONS; i++)
        if (strcasecmp(action, dsn_actions[i].action) == 0)
            return (int)i;
    return -1;
}

/* One line of printable ASCII from anything: controls (CR, LF, TAB, ...)
 * become spaces, non-ASCII bytes '?'; at most max bytes ("..." marks a
 * cut); leading and trailing spaces go. NULL gives "". g_free() it. */
static char *dsn_clean(const char *s, size_t max)
{
    if (s == NULL)
        s = "";
    size_t n = strnlen(s, max + 1);
    bool cut = n > max;
    if (cut)
        n = max;
    char *o = g_malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        o[i] = c >= 0x80 ? '?' : (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    o[n] = '\0';
    if (cut && n >= 3)
        memcpy(o + n - 3, "...", 3);
    return g_strstrip(o);
}

/* An address for Final-Recipient and the text: cleaned, without the <>. */
static char *dsn_clean_addr(const char *s)
{
    char *o = dsn_clean(s, DSN_MAX_FIELD);
    size_t n = strlen(o);
    if (n >= 2 && o[0] == '<' && o[n - 1] == '>') {
        memmove(o, o + 1, n - 2);
        o[n - 2] = '\0';
    }
    return o;
}

/* An address for the From/To header: also no space or character that
 * would end the address or start another one. */
static char *dsn_header_addr(const char *s)
{
    char *o = dsn_clean_addr(s);
    for (char *p = o; *p; p++)
        if (strchr(" ,;<>()\"\\", *p) != NULL)
            *p = '_';
    return o;
}

/* A host name (or [address literal]) for Reporting-MTA/Remote-MTA: only the
 * characters a name or literal can have. */
static char *dsn_clean_host(const char *s)
{
    char *o = dsn_clean(s, 255);
    char *w = o;
    for (const char *p = o; *p; p++)
        if (g_ascii_isalnum(*p) || strchr(".-_[]:", *p) != NULL)
            *w++ = *p;
    *w = '\0';
    return o;
}

/* A token for the Message-ID left side. */
static char *dsn_clean_token(const char *s)
{
    char *o = dsn_clean(s, 64);
    for (char *p = o; *p; p++)
        if (!g_ascii_isalnum(*p) && *p != '.' && *p != '-' && *p != '_')
            *p = '_';
    return o;
}

/* "name: value" folded at spaces near DSN_FOLD_COL. value is one clean
 * line of at most DSN_MAX_FIELD bytes, so even unfoldable it stays short of
 * 998 octets. Runs of spaces become one. */
static void dsn_field(GString *g, const char *name, const char *value)
{
    g_string_append_printf(g, "%s:", name);
    size_t col = strlen(name) + 1;
    const char *p = value;
    for (;;) {
        while (*p == ' ')
            p++;
        const char *w = p;
        while (*p != '\0' && *p != ' ')
            p++;
        size_t wl = (size_t)(p - w);
        if (wl == 0)
            break;
        if (col + 1 + wl > DSN_FOLD_COL && col > strlen(name) + 1) {
            g_string_append(g, "\n ");
            col = 1;
        } else {
            g_string_append_c(g, ' ');
            col++;
        }
        g_string_append_len(g, w, (gssize)wl);
        col += wl;
    }
    g_string_append_c(g, '\n');
}

/* RFC 5322 date-time in UTC, by GMime. */
static char *dsn_date(uint64_t ms)
{
    GDateTime *dt = g_date_time_new_from_unix_utc((gint64)(ms / 1000));
    if (dt == NULL) /* past year 9999 */
        dt = g_date_time_new_from_unix_utc(0);
    char *s = g_mime_utils_header_format_date(dt);
    g_date_time_unref(dt);
    return s;
}

/* Enhanced status "c.s.d" with class 2, 4 or 5 (RFC 3463). */
static bool dsn_status_ok(const char *s)
{
    if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return false;
    const char *p = s + 2;
    for (int part = 0; part < 2; part++) {
        int digits = 0;
        while (g_ascii_isdigit(*p) && digits < 4) {
            p++;
            digits++;
        }
        if (digits == 0 || digits > 3)
            return false;
        if (part == 0 && *p++ != '.')
            return false;
    }
    return *p == '\0';
}

/* Bytes that can travel as a message/rfc822 or text/rfc822-headers body
 * as they are: no NUL, no bare CR (RFC 5322 forbids it, and our output has
 * only CRLF line ends), no line longer than 998 octets. A bare LF is fine:
 * the output filter makes it CRLF. */
static bool dsn_raw_ok(const uint8_t *b, size_t n)
{
    if (memchr(b, '\0', n) != NULL)
        return false;
    size_t line = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i] == '\n') {
            line = 0;
        } else if (b[i] == '\r') {
            if (i + 1 >= n || b[i + 1] != '\n')
                return false;
        } else if (++line > DSN_LINE_MAX) {
            return false;
        }
    }
    return true;
}

static bool dsn_has_8bit(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] >= 0x80)
            return true;
    return false;
}

/* Length of the header block: up to and including the line end before the
 * first empty line; the whole original when there is no empty line. */
static size_t dsn_header_len(const uint8_t *b, size_t n)
{
    size_t start = 0; /* start of the current line */
    for (size_t i = 0; i < n; i++) {
        if (b[i] != '\n')
            continue;
        size_t len = i - start;
        if (len == 0 || (len == 1 && b[start] == '\r'))
            return start;
        start = i + 1;
    }
    return n;
}

/* A leaf part holding data as it is, with that Content-Transfer-Encoding. */
static GMimePart *dsn_leaf(const char *type, const char *subtype, const void *data, size_t len,
                           GMimeContentEncoding enc, const char *description)
{
    GMimePart *part = g_mime_part_new_with_type(type, subtype);
    GMimeStream *s = g_mime_stream_mem_new();
    if (len > 0)
        g_mime_stream_write(s, data, len);
    g_mime_stream_seek(s, 0, GMIME_STREAM_SEEK_SET);
    GMimeDataWrapper *w = g_mime_data_wrapper_new_with_stream(s, GMIME_CONTENT_ENCODING_DEFAULT);
    g_mime_part_set_content(part, w);
    g_object_unref(w);
    g_object_unref(s);
    g_mime_part_set_content_encoding(part, enc);
    if (description != NULL)
        g_mime_object_set_header(GMIME_OBJECT(part), "Content-Description", description, NULL);
    return part;
}

/* What goes into part 3. */
enum dsn_return { DSN_RET_NONE, DSN_RET_FULL, DSN_RET_HDRS };

struct dsn_plan {
    enum dsn_return what;
    size_t len;          /* bytes of the original returned */
    const char *note;    /* for the human-readable text */
};

static struct dsn_plan dsn_plan_return(const struct dsn_input *in)
{
    struct dsn_plan p = {DSN_RET_NONE, 0, NULL};
    size_t max_full = in->max_full_size ? in->max_full_size : DSN_DEFAULT_MAX_FULL_SIZE;
    if (in->original == NULL || in->original_len == 0) {
        p.note = "The original message is not available.";
        return p;
    }
    bool hdrs_asked = in->ret != NULL && strcasecmp(in->ret, "HDRS") == 0;
    if (!hdrs_asked) {
        if (in->original_len > max_full)
            p.note = "The original message was too large to return; its headers are attached.";
        else if (!dsn_raw_ok(in->original, in->original_len))
            p.note = "The original message holds NUL bytes, bare CRs or overlong lines; its headers are attached.";
        else {
            p.what = DSN_RET_FULL;
            p.len = in->original_len;
            p.note = "The original message is attached.";
            return p;
        }
    } else {
        p.note = "The headers of the original message are attached.";
    }
    size_t hl = dsn_header_len(in->original, in->original_len);
    if (hl == 0 || !dsn_raw_ok(in->original, hl)) {
        p.note = "The headers of the original message could not be returned.";
        return p;
    }
    p.what = DSN_RET_HDRS;
    p.len = hl;
    return p;
}

static void dsn_human(GString *g, const struct dsn_input *in, const char *host, const char *qid,
                      enum dsn_kind subject_kind, const struct dsn_plan *plan)
{
    g_string_append_printf(g, "This is the mail delivery system at %s.\n\n", host);
    switch (subject_kind) {
    case DSN_K_FAILED:
        g_string_append(g, "Your message could not be delivered to one or more of its recipients.\n"
                           "The recipients and the reasons are listed below.\n");
        break;
    case DSN_K_DELAYED:
        g_string_append(g, "Your message has not been delivered yet to one or more of its recipients.\n"
                           "We are still trying; you do not need to send it again.\n");
        break;
    case DSN_K_SUCCESS:
        g_string_append(g, "You asked for a notice of successful delivery; here it is.\n");
        break;
    }
    char *arrived = dsn_date(in->arrival_ms);
    g_string_append_printf(g, "\nQueue ID: %s\nArrived:  %s\n", qid[0] ? qid : "(none)", arrived);
    g_free(arrived);
    for (size_t i = 0; i < in->nrcpts; i++) {
        const struct dsn_rcpt *r = &in->rcpts[i];
        char *addr = dsn_clean_addr(r->final_recipient);
        int a = dsn_action_index(r->action);
        /* failed with a 4.x.x status: retried until the message expired */
        bool expired = dsn_actions[a].kind == DSN_K_FAILED && dsn_status_ok(r->status) && r->status[0] == '4';
        g_string_append_printf(g, "\n<%s>: the message %s.\n", addr,
                               expired ? "could not be delivered before it expired; we have stopped retrying"
                                       : dsn_actions[a].says);
        g_free(addr);
        if (r->remote_mta != NULL && r->remote_mta[0] != '\0') {
            char *mta = dsn_clean_host(r->remote_mta);
            g_string_append_printf(g, "    Remote server: %s\n", mta);
            g_free(mta);
        }
        if (r->diagnostic != NULL && r->diagnostic[0] != '\0') {
            char *d = dsn_clean(r->diagnostic, DSN_MAX_FIELD);
            g_string_append_printf(g, "    %s %s\n",
                                   r->diagnostic_is_smtp ? "It replied:" : "Reason:", d);
            g_free(d);
        }
        if (dsn_actions[a].kind == DSN_K_DELAYED && r->will_retry_until_ms != 0) {
            char *until = dsn_date(r->will_retry_until_ms);
            g_string_append_printf(g, "    We will keep trying until %s.\n", until);
            g_free(until);
        }
    }
    g_string_append_printf(g, "\n%s\n", plan->note);
}

static void dsn_fields(GString *g, const struct dsn_input *in, const char *host)
{
    char *v;
    char *line = g_strdup_printf("dns; %s", host);
    dsn_field(g, "Reporting-MTA", line);
    g_free(line);
    if (in->envid != NULL && in->envid[0] != '\0') {
        v = dsn_clean(in->envid, DSN_MAX_FIELD);
        dsn_field(g, "Original-Envelope-Id", v);
        g_free(v);
    }
    v = dsn_date(in->arrival_ms);
    dsn_field(g, "Arrival-Date", v);
    g_free(v);
    for (size_t i = 0; i < in->nrcpts; i++) {
        const struct dsn_rcpt *r = &in->rcpts[i];
        int a = dsn_action_index(r->action);
        g_string_append_c(g, '\n');
        if (r->original_recipient != NULL && r->original_recipient[0] != '\0') {
            v = dsn_clean(r->original_recipient, DSN_MAX_FIELD);
            /* "addr-type;addr"; a bare address is taken as rfc822 */
            line = strchr(v, ';') != NULL ? g_strdup(v) : g_strdup_printf("rfc822;%s", v);
            dsn_field(g, "Original-Recipient", line);
            g_free(line);
            g_free(v);
        }
        v = dsn_clean_addr(r->final_recipient);
        line = g_strdup_printf("rfc822; %s", v);
        dsn_field(g, "Final-Recipient", line);
        g_free(line);
        g_free(v);
        dsn_field(g, "Action", dsn_actions[a].action);
        dsn_field(g, "Status", dsn_status_ok(r->status) ? r->status : dsn_actions[a].status);
        if (r->remote_mta != NULL && r->remote_mta[0] != '\0') {
            v = dsn_clean_host(r->remote_mta);
            if (v[0] != '\0') {
                line = g_strdup_printf("dns; %s", v);
                dsn_field(g, "Remote-MTA", line);
                g_free(line);
            }
            g_free(v);
        }
        if (r->diagnostic != NULL && r->diagnostic[0] != '\0') {
            v = dsn_clean(r->diagnostic, DSN_MAX_FIELD);
            line = g_strdup_printf("%s; %s", r->diagnostic_is_smtp ? "smtp" : "X-Ricochet", v);
            dsn_field(g, "Diagnostic-Code", line);
            g_free(line);
            g_free(v);
        }
        if (r->last_attempt_ms != 0) {
            v = dsn_date(r->last_attempt_ms);
            dsn_field(g, "Last-Attempt-Date", v);
            g_free(v);
        }
        if (dsn_actions[a].kind == DSN_K_DELAYED && r->will_retry_until_ms != 0) {
            v = dsn_date(r->will_retry_until_ms);
            dsn_field(g, "Will-Retry-Until", v);
            g_free(v);
        }
    }
}

static int dsn_check(const struct dsn_input *in, uint8_t **out, size_t *out_len)
{
    if (in == NULL || out == NULL || out_len == NULL || in->rcpts == NULL || in->nrcpts == 0 ||
        in->reporting_mta == NULL || in->to_address == NULL)
        return DSN_EINVAL;
    for (size_t i = 0; i < in->nrcpts; i++)
        if (in->rcpts[i].final_recipient == NULL || in->rcpts[i].final_recipient[0] == '\0' ||
            dsn_action_index(in->rcpts[i].action) < 0)
            return DSN_EINVAL;
    return DSN_OK;
}

int dsn_build(const struct dsn_input *in, uint8_t **out, size_t *out_len)
{
    int rv = dsn_check(in, out, out_len);
    if (rv != DSN_OK)
        return rv;
    pthread_once(&dsn_gmime_once, dsn_gmime_init);

    /* One subject for the whole report: a mix of kinds is told as a failure. */
    enum dsn_kind kind = dsn_actions[dsn_action_index(in->rcpts[0].action)].kind;
    for (size_t i = 1; i < in->nrcpts; i++)
        if (dsn_actions[dsn_action_index(in->rcpts[i].action)].kind != kind)
            kind = DSN_K_FAILED;
    static const char *const subjects[] = {
        [DSN_K_FAILED] = "Undelivered Mail Returned to Sender",
        [DSN_K_DELAYED] = "Delayed Mail (still being retried)",
        [DSN_K_SUCCESS] = "Successful Mail Delivery Report",
    };

    char *host = dsn_clean_host(in->reporting_mta);
    if (host[0] == '\0') {
        g_free(host);
        host = g_strdup("localhost");
    }
    char *qid = dsn_clean_token(in->queue_id);
    char *from = in->from_address != NULL && in->from_address[0] != '\0'
                     ? dsn_header_addr(in->from_address)
                     : g_strdup_printf("MAILER-DAEMON@%s", host);
    char *to = dsn_header_addr(in->to_address);
    struct dsn_plan plan = dsn_plan_return(in);

    GMimeMessage *msg = g_mime_message_new(FALSE);
    g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_FROM, "Mail Delivery System", from);
    if (to[0] != '\0')
        g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_TO, NULL, to);
    g_mime_message_set_subject(msg, subjects[kind], NULL);
    GDateTime *now = g_date_time_new_from_unix_utc((gint64)(in->now_ms / 1000));
    if (now == NULL)
        now = g_date_time_new_from_unix_utc(0);
    g_mime_message_set_date(msg, now);
    g_date_time_unref(now);
    uint64_t rnd;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd = ((uint64_t)g_random_int() << 32) | g_random_int();
    char *mid = g_strdup_printf("%s.dsn.%016llx@%s", qid[0] ? qid : "noqueue", (unsigned long long)rnd,
                                host);
    g_mime_message_set_message_id(msg, mid);
    g_free(mid);
    g_mime_object_set_header(GMIME_OBJECT(msg), "Auto-Submitted", "auto-replied", NULL);
    if (qid[0] != '\0')
        g_mime_object_set_header(GMIME_OBJECT(msg), "X-Ricochet-Queue-ID", qid, NULL);

    GMimeMultipart *report = g_mime_multipart_new_with_subtype("report");
    g_mime_object_set_content_type_parameter(GMIME_OBJECT(report), "report-type", "delivery-status");

    GString *text = g_string_new(NULL);
    dsn_human(text, in, host, qid, kind, &plan);
    GMimePart *p1 = dsn_leaf("text", "plain", text->str, text->len, GMIME_CONTENT_ENCODING_7BIT,
                             "Notification");
    g_mime_object_set_content_type_parameter(GMIME_OBJECT(p1), "charset", "us-ascii");
    g_string_free(text, TRUE);
    g_mime_multipart_add(report, GMIME_OBJECT(p1));
    g_object_unref(p1);

    GString *fields = g_string_new(NULL);
    dsn_fields(fields, in, host);
    GMimePart *p2 = dsn_leaf("message", "delivery-status", fields->str, fields->len,
                             GMIME_CONTENT_ENCODING_7BIT, "Delivery report");
    g_string_free(fields, TRUE);
    g_mime_multipart_add(report, GMIME_OBJECT(p2));
    g_object_unref(p2);

    if (plan.what != DSN_RET_NONE) {
        bool full = plan.what == DSN_RET_FULL;
        GMimeContentEncoding enc = dsn_has_8bit(in->original, plan.len) ? GMIME_CONTENT_ENCODING_8BIT
                                                                       : GMIME_CONTENT_ENCODING_7BIT;
        GMimePart *p3 = dsn_leaf(full ? "message" : "text", full ? "rfc822" : "rfc822-headers",
                                 in->original, plan.len, enc,
                                 full ? "Undelivered Message" : "Undelivered Message Headers");
        g_mime_multipart_add(report, GMIME_OBJECT(p3));
        g_object_unref(p3);
    }
    g_mime_message_set_mime_part(msg, GMIME_OBJECT(report));
    g_object_unref(report);

    /* Serialise; the filter turns every bare LF (ours, GMime's, the
     * original's) into CRLF. */
    GMimeStream *mem = g_mime_stream_mem_new();
    GMimeStream *filtered = g_mime_stream_filter_new(mem);
    GMimeFilter *crlf = g_mime_filter_unix2dos_new(FALSE);
    g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered), crlf);
    g_object_unref(crlf);
    g_mime_object_write_to_stream(GMIME_OBJECT(msg), NULL, filtered);
    g_mime_stream_flush(filtered);
    g_object_unref(filtered);
    GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    uint8_t *buf = malloc(ba->len ? ba->len : 1);
    if (buf == NULL) {
        rv = DSN_ENOMEM;
    } else {
        memcpy(buf, ba->data, ba->len);
        *out = buf;
        *out_len = ba->len;
    }
    g_object_unref(mem);
    g_object_unref(msg);
    g_free(host);
    g_free(qid);
    g_free(from);
    g_free(to);
    return rv;
}
