/* Structured reports: RFC 3464 message/delivery-status, RFC 5965
 * message/feedback-report, and the structured formats of providers
 * (Amazon SES/SNS JSON notifications, Hotmail/Outlook JMRP complaints).
 *
 * The fields of delivery-status and feedback-report parts are RFC 822-style
 * header lines (folded lines unfolded here), in blocks separated by blank
 * lines: the per-message block first, then one block per recipient. Broken
 * reports that put several recipients in one block are split at each new
 * Final-Recipient. */
#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/bounce_internal.h"

typedef int (*bounce_field_cb)(void *arg, const char *name, const char *value); /* name NULL: blank line */

#define BOUNCE_FIELD_MAX 2048

/* n bytes of src after the vl bytes of a field's value (size bytes, room
 * kept for its NUL), tabs made blanks; returns the new length. */
static size_t bounce_value_append(char *value, size_t size, size_t vl, const char *src, size_t n)
{
    if (n > size - 1 - vl)
        n = size - 1 - vl;
    char *w = value + vl;
    memcpy(w, src, n);
    for (char *t = memchr(w, '\t', n); t != NULL; t = memchr(t + 1, '\t', (size_t)(w + n - t - 1)))
        *t = ' ';
    return vl + n;
}

static int bounce_fields(const char *text, size_t len, bounce_field_cb cb, void *arg)
{
    char name[64], value[BOUNCE_FIELD_MAX];
    size_t vl = 0;
    bool have = false;
    const char *p = text, *end = text + len;
    int rv = 0;
    while (p < end && rv == 0) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        size_t ll = (size_t)(eol - p);
        if (ll > 0 && p[ll - 1] == '\r')
            ll--;
        bool blank = true;
        for (size_t i = 0; i < ll && blank; i++)
            blank = isspace((unsigned char)p[i]) != 0;
        if (!blank && (p[0] == ' ' || p[0] == '\t')) {
            if (have) /* continuation */
                vl = bounce_value_append(value, sizeof value, vl, p, ll);
        } else {
            if (have) {
                value[vl] = '\0';
                rv = cb(arg, name, value);
                have = false;
            }
            if (blank) {
                if (rv == 0)
                    rv = cb(arg, NULL, NULL);
            } else {
                const char *colon = memchr(p, ':', ll);
                if (colon != NULL && (size_t)(colon - p) < sizeof name && colon > p) {
                    size_t nl = (size_t)(colon - p);
                    memcpy(name, p, nl);
                    while (nl > 0 && isspace((unsigned char)name[nl - 1]))
                        nl--;
                    name[nl] = '\0';
                    const char *v = colon + 1;
                    while (v < p + ll && isspace((unsigned char)*v))
                        v++;
                    vl = bounce_value_append(value, sizeof value, 0, v, (size_t)(p + ll - v));
                    have = true;
                }
            }
        }
        p = eol + 1;
    }
    if (have && rv == 0) {
        value[vl] = '\0';
        rv = cb(arg, name, value);
    }
    return rv;
}

struct bounce_dsn_state {
    bounce_report *r;
    char fr[512], orcpt[512], action[32], status[32], diag[BOUNCE_FIELD_MAX], rmta[256];
    char status_note[256]; /* "Status: 5.2.1 (mailbox disabled, ...)": the comment */
    enum bounce_reason hint; /* PowerMTA's X-PowerMTA-BounceCategory */
    char dtype[16];          /* Diagnostic-Code type: smtp, x-unix, ... */
};

/* "rfc822; a@b" -> "a@b"; "dns; host" -> "host"; "smtp; 550 ..." -> "550 ..." */
static const char *bounce_strip_type(const char *v)
{
    const char *semi = strchr(v, ';');
    if (semi == NULL)
        return v;
    for (const char *p = v; p < semi; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != ' ')
            return v;
    semi++;
    while (*semi == ' ')
        semi++;
    return semi;
}

/* No recipient's fields yet. Only the first byte of each field is set:
 * the state is 3.6 KiB, and zeroing it all cost more than the fields'
 * parse. */
static void bounce_dsn_clear(struct bounce_dsn_state *s)
{
    s->fr[0] = s->orcpt[0] = s->action[0] = s->status[0] = s->diag[0] = s->rmta[0] = '\0';
    s->status_note[0] = '\0';
    s->hint = BOUNCE_R_NONE;
    s->dtype[0] = '\0';
}

static int bounce_dsn_flush(struct bounce_dsn_state *s)
{
    int rv = 0;
    if (s->fr[0] || s->orcpt[0]) {
        char *fr = s->fr[0] ? bounce__clean_addr(s->fr, strlen(s->fr)) : NULL;
        char *orc = s->orcpt[0] ? bounce__clean_addr(s->orcpt, strlen(s->orcpt)) : NULL;
        const char *rcpt = fr ? fr : orc ? orc : s->fr[0] ? bounce_strip_type(s->fr) : "";
        /* the Status comment says in words what the code means: part of the diagnostic */
        if (s->status_note[0] && !bounce__stristr(s->diag, s->status_note)) {
            size_t dl = strlen(s->diag);
            snprintf(s->diag + dl, sizeof s->diag - dl, "%s%s", dl ? " " : "", s->status_note);
        }
        size_t before = s->r->n;
        rv = bounce__report_add(s->r, rcpt, orc ? orc : "", s->action, s->status, s->diag, s->rmta, "");
        if (rv == 0 && s->r->n > before) {
            if (s->hint != BOUNCE_R_NONE)
                s->r->rx[s->r->n - 1].hint = s->hint;
            bounce__copy(s->r->rx[s->r->n - 1].dtype, sizeof s->r->rx[0].dtype, s->dtype);
        }
        free(fr);
        free(orc);
    }
    bounce_dsn_clear(s);
    return rv;
}

static void bounce_set(char *dst, size_t n, const char *v)
{
    bounce__copy(dst, n, v);
}

/* The first n bytes of src (no NUL among them) at dst, cut to size - 1. */
static void bounce_copy_n(char *dst, size_t size, const char *src, size_t n)
{
    if (n > size - 1)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* A recipient's address field: a second one of the same kind starts the
 * next recipient's group (the one before is flushed first). */
static int bounce_dsn_rcpt_field(struct bounce_dsn_state *s, char *field, size_t size, const char *value)
{
    int rv = field[0] ? bounce_dsn_flush(s) : 0;
    bounce_set(field, size, value);
    return rv;
}

/* Fields are told apart by their first letter before their name is
 * compared: most fields of a report (Reporting-MTA, Arrival-Date,
 * Last-Attempt-Date, ...) are none of these, and each used to be compared
 * with all of their names. */
static int bounce_dsn_field(void *arg, const char *name, const char *value)
{
    struct bounce_dsn_state *s = arg;
    if (name == NULL)
        return bounce_dsn_flush(s);
    switch (name[0] | 0x20) {
    case 'f':
        if (strcasecmp(name, "Final-Recipient") == 0)
            return bounce_dsn_rcpt_field(s, s->fr, sizeof s->fr, value);
        break;
    case 'o':
        if (strcasecmp(name, "Original-Recipient") == 0)
            return bounce_dsn_rcpt_field(s, s->orcpt, sizeof s->orcpt, value);
        break;
    case 'a':
        if (strcasecmp(name, "Action") == 0) {
            bounce_set(s->action, sizeof s->action, value);
            bounce__normalise(s->action);
            char *sp = strchr(s->action, ' ');
            if (sp != NULL)
                *sp = '\0';
        }
        break;
    case 's':
        if (strcasecmp(name, "Status") == 0) {
            char st[16];
            if (bounce__find_status(value, st, sizeof st))
                bounce_set(s->status, sizeof s->status, st);
            const char *open = strchr(value, '('), *close = open ? strrchr(open, ')') : NULL;
            if (open != NULL && close != NULL && close - open > 1)
                bounce_copy_n(s->status_note, sizeof s->status_note, open + 1, (size_t)(close - open - 1));
        }
        break;
    case 'd':
        if (strcasecmp(name, "Diagnostic-Code") == 0) {
            bounce_set(s->diag, sizeof s->diag, bounce_strip_type(value));
            const char *semi = strchr(value, ';');
            size_t tl = semi ? (size_t)(semi - value) : 0;
            while (tl > 0 && value[tl - 1] == ' ')
                tl--;
            if (semi != NULL && tl < sizeof s->dtype && bounce_strip_type(value) != value) {
                bounce_copy_n(s->dtype, sizeof s->dtype, value, tl);
                bounce__lower(s->dtype);
                if (strcmp(s->dtype, "x-postfix") == 0) /* Postfix's own failures read as SMTP */
                    bounce__copy(s->dtype, sizeof s->dtype, "smtp");
            }
        }
        break;
    case 'x':
        if (strcasecmp(name, "X-PowerMTA-BounceCategory") == 0) {
            static const struct { const char *cat; enum bounce_reason r; } cats[] = {
                {"bad-domain", BOUNCE_R_HOSTUNKNOWN}, {"bad-mailbox", BOUNCE_R_USERUNKNOWN},
                {"inactive-mailbox", BOUNCE_R_SUSPEND}, {"message-expired", BOUNCE_R_EXPIRED},
                {"no-answer-from-host", BOUNCE_R_NETWORKERROR}, {"policy-related", BOUNCE_R_POLICYVIOLATION},
                {"quota-issues", BOUNCE_R_MAILBOXFULL}, {"routing-errors", BOUNCE_R_SYSTEMERROR},
                {"spam-related", BOUNCE_R_SPAMDETECTED},
            };
            for (size_t i = 0; i < sizeof cats / sizeof cats[0]; i++)
                if (bounce__starts_ci(value, cats[i].cat))
                    s->hint = cats[i].r;
        }
        break;
    case 'r':
        if (strcasecmp(name, "Remote-MTA") == 0)
            bounce_set(s->rmta, sizeof s->rmta, bounce_strip_type(value));
        break;
    default:
        break;
    }
    return 0;
}

static int bounce_dsn_fields(bounce_report *r, const char *text, size_t len)
{
    struct bounce_dsn_state *s = malloc(sizeof *s);
    if (s == NULL)
        return BOUNCE_ENOMEM;
    s->r = r;
    bounce_dsn_clear(s);
    int rv = bounce_fields(text, len, bounce_dsn_field, s);
    if (rv == 0)
        rv = bounce_dsn_flush(s);
    free(s);
    return rv;
}

int bounce__dsn_parse(struct bounce__doc *d, bounce_report *r)
{
    for (size_t i = 0; i < d->nparts; i++) {
        if (d->parts[i].type != BOUNCE_P_DS)
            continue;
        int rv = bounce_dsn_fields(r, d->parts[i].text, d->parts[i].len);
        if (rv != 0)
            return rv;
    }
    return BOUNCE_OK;
}

/* A line of text that begins with name (case-insensitive), at a line start. */
static const char *bounce_line_with(const char *text, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = bounce__memistr(text, len, name); p != NULL;
         p = bounce__memistr(p + 1, len - (size_t)(p + 1 - text), name)) {
        if ((p == text || p[-1] == '\n') && (size_t)(text + len - p) > nl)
            return p;
    }
    return NULL;
}

/* Delivery-status fields that ended up in a text part: a report forwarded
 * as text, or MIME that did not parse (no Content-Type, a boundary that
 * does not match). Read from the first per-message or per-recipient field
 * to the returned message. */
bool bounce__dsn_in_text(struct bounce__doc *d, bounce_report *r, int *rv)
{
    *rv = BOUNCE_OK;
    for (size_t i = 0; i < d->nparts; i++) {
        if (d->parts[i].type != BOUNCE_P_TEXT)
            continue;
        const char *t = d->parts[i].text;
        size_t len = d->parts[i].len;
        const char *fr = bounce_line_with(t, len, "Final-Recipient:");
        if (fr == NULL || bounce_line_with(t, len, "Action:") == NULL)
            continue;
        const char *start = fr;
        static const char *const firsts[] = {"Reporting-MTA:", "Original-Envelope-Id:", "Arrival-Date:",
                                             "Original-Recipient:", "Action:", NULL};
        for (const char *const *f = firsts; *f; f++) {
            const char *p = bounce_line_with(t, (size_t)(fr - t), *f);
            if (p != NULL && p < start)
                start = p;
        }
        const char *end = t + len;
        static const char *const ends[] = {"Content-Type: message/rfc822", "Content-Type: text/rfc822-headers", NULL};
        for (const char *const *e = ends; *e; e++) {
            const char *p = bounce__memistr(start, (size_t)(end - start), *e);
            if (p != NULL)
                end = p;
        }
        size_t before = r->n;
        if ((*rv = bounce_dsn_fields(r, start, (size_t)(end - start))) != 0)
            return false;
        if (r->n > before)
            return true;
    }
    return false;
}

/* ---- ARF ------------------------------------------------------------------ */

struct bounce_arf_state {
    bounce_report *r;
    int added;
};

static int bounce_arf_field(void *arg, const char *name, const char *value)
{
    struct bounce_arf_state *s = arg;
    if (name == NULL)
        return 0;
    if (strcasecmp(name, "Feedback-Type") == 0) {
        if (s->r->feedback_type[0] == '\0') {
            bounce__copy(s->r->feedback_type, sizeof s->r->feedback_type, value);
            bounce__normalise(s->r->feedback_type);
        }
    } else if (strcasecmp(name, "Original-Mail-From") == 0) {
        if (s->r->feedback_mail_from[0] == '\0') {
            char *a = bounce__clean_addr(value, strlen(value));
            bounce__copy(s->r->feedback_mail_from, sizeof s->r->feedback_mail_from, a ? a : "");
            free(a);
        }
    } else if (strcasecmp(name, "Original-Rcpt-To") == 0 || strcasecmp(name, "Removal-Recipient") == 0) {
        char *a = bounce__clean_addr(value, strlen(value));
        if (a != NULL) {
            int rv = bounce__report_add(s->r, a, "", "", "", "", "", "");
            free(a);
            if (rv != 0)
                return rv;
            s->r->v[s->r->n - 1].reason = BOUNCE_R_FEEDBACK;
            s->added++;
        }
    }
    return 0;
}

static int bounce_add_feedback(bounce_report *r, const char *addr)
{
    char *a = addr ? bounce__clean_addr(addr, strlen(addr)) : NULL;
    int rv = bounce__report_add(r, a ? a : "", "", "", "", "", "", "");
    free(a);
    if (rv == 0 && r->n > 0)
        r->v[r->n - 1].reason = BOUNCE_R_FEEDBACK;
    return rv;
}

int bounce__arf_parse(struct bounce__doc *d, bounce_report *r)
{
    struct bounce_arf_state s = {.r = r};
    for (size_t i = 0; i < d->nparts; i++) {
        if (d->parts[i].type != BOUNCE_P_FR)
            continue;
        int rv = bounce_fields(d->parts[i].text, d->parts[i].len, bounce_arf_field, &s);
        if (rv != 0)
            return rv;
    }
    if (s.added == 0 && r->n == 0) {
        /* No Original-Rcpt-To: the returned message's To names the complainer,
         * when it names exactly one address. */
        const char *to = bounce__hdrs_get(bounce__doc_orig(d), "To");
        if (to != NULL && strchr(to, ',') == NULL)
            return bounce_add_feedback(r, to);
        return bounce_add_feedback(r, NULL);
    }
    return BOUNCE_OK;
}

/* Complaint formats without message/feedback-report: Hotmail/Outlook JMRP
 * returns the message with X-HmXmrOriginalRecipient; iCloud's unsubscribe
 * is a plain mail with X-Apple-Unsubscribe: true. */
bool bounce__provider_complaint(struct bounce__doc *d, bounce_report *r)
{
    /* iCloud Mail's "unsubscribe" button: a mail from the recipient */
    const char *au = bounce__hdrs_get(&d->top, "X-Apple-Unsubscribe");
    const char *from = bounce__hdrs_get(&d->top, "From");
    if (au != NULL && strcasecmp(au, "true") == 0 && from != NULL && strchr(from, '@') != NULL) {
        if (bounce_add_feedback(r, from) != 0)
            return false;
        snprintf(r->feedback_type, sizeof r->feedback_type, "opt-out");
        return true;
    }
    if (d->orig_block != NULL && !bounce__block_has(d->orig_block, "X-HmXmrOriginalRecipient", "@"))
        return false; /* not worth parsing the block */
    const char *hm = bounce__hdrs_get(bounce__doc_orig(d), "X-HmXmrOriginalRecipient");
    if (hm == NULL)
        return false;
    if (bounce_add_feedback(r, hm) != 0)
        return false;
    snprintf(r->feedback_type, sizeof r->feedback_type, "abuse");
    return true;
}

/* ---- Amazon SES notifications (JSON, possibly inside an SNS envelope) ----- */

static const char *bounce_jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

static bool bounce_ses(json_t *root, bounce_report *r)
{
    const char *type = bounce_jstr(root, "notificationType");
    if (type[0] == '\0')
        type = bounce_jstr(root, "eventType");
    if (strcasecmp(type, "Bounce") == 0) {
        json_t *b = json_object_get(root, "bounce");
        json_t *list = json_object_get(b, "bouncedRecipients");
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
            if (bounce__report_add(r, bounce_jstr(e, "emailAddress"), "", bounce_jstr(e, "action"),
                                   bounce_jstr(e, "status"), bounce_strip_type(bounce_jstr(e, "diagnosticCode")),
                                   bounce_jstr(b, "reportingMTA"), bounce_jstr(b, "bounceSubType")) != 0)
                break;
        }
        r->kind = BOUNCE_KIND_DSN;
        return r->n > 0;
    }
    if (strcasecmp(type, "Complaint") == 0) {
        json_t *c = json_object_get(root, "complaint");
        json_t *list = json_object_get(c, "complainedRecipients");
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
            if (bounce_add_feedback(r, bounce_jstr(e, "emailAddress")) != 0)
                break;
        }
        if (r->n == 0)
            bounce_add_feedback(r, NULL);
        const char *ft = bounce_jstr(c, "complaintFeedbackType");
        bounce__copy(r->feedback_type, sizeof r->feedback_type, ft[0] ? ft : "abuse");
        r->kind = BOUNCE_KIND_ARF;
        return true;
    }
    if (strcasecmp(type, "Delivery") == 0) {
        json_t *dl = json_object_get(root, "delivery");
        json_t *list = json_object_get(dl, "recipients");
        const char *resp = bounce_jstr(dl, "smtpResponse");
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
            if (!json_is_string(e))
                continue;
            char st[16] = "";
            bounce__find_status(resp, st, sizeof st);
            if (bounce__report_add(r, json_string_value(e), "", "delivered", st, resp,
                                   bounce_jstr(dl, "reportingMTA"), "") != 0)
                break;
        }
        r->kind = BOUNCE_KIND_DSN;
        return r->n > 0;
    }
    return false;
}

/* SNS delivers the JSON in a mail body folded at 990 columns with "!\n "
 * and followed by "\n\n--\n" and an unsubscribe footer. */
static char *bounce_sns_unfold(const char *t, size_t len)
{
    char *s = bounce__strndup(t, len);
    if (s == NULL)
        return NULL;
    char *foot = strstr(s, "\n\n--\n");
    if (foot != NULL)
        *foot = '\0';
    bounce__remove_all(s, "!\n ");
    bounce__remove_all(s, "!\r\n ");
    return s;
}

bool bounce__provider_json(struct bounce__doc *d, bounce_report *r)
{
    for (size_t i = 0; i < d->nparts; i++) {
        if (d->parts[i].type != BOUNCE_P_TEXT)
            continue;
        const char *t = d->parts[i].text;
        while (isspace((unsigned char)*t))
            t++;
        if (*t != '{' || strstr(t, "notificationType") == NULL)
            continue;
        char *js = bounce_sns_unfold(t, d->parts[i].len - (size_t)(t - d->parts[i].text));
        if (js == NULL)
            return false;
        json_error_t err;
        json_t *root = json_loadb(js, strlen(js), JSON_DISABLE_EOF_CHECK, &err);
        free(js);
        if (root == NULL)
            continue;
        bool ok = false;
        json_t *msg = json_object_get(root, "Message"); /* SNS envelope */
        if (json_is_string(msg)) {
            json_t *inner = json_loads(json_string_value(msg), 0, &err);
            if (inner != NULL) {
                ok = bounce_ses(inner, r);
                json_decref(inner);
            }
        } else {
            ok = bounce_ses(root, r);
        }
        json_decref(root);
        if (ok)
            return true;
    }
    return false;
}
