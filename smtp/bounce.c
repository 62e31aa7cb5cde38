/* bounce_analyse(): what kind of mail is this, who are the recipients, why
 * did each fail.
 *
 *  1. GMime walk (bounce_mime.c) -> parts and headers.
 *  2. message/feedback-report, or a provider complaint format -> ARF.
 *  3. message/delivery-status -> DSN recipients (bounce_dsn.c).
 *  4. RFC 3834 auto-reply signs -> AUTOREPLY (not a bounce).
 *  5. otherwise, if the mail looks like a non-delivery report, the
 *     human-readable text is read for recipients and their diagnostics
 *     (bounce_ndr.c) -> NDR.
 * Each recipient's diagnostic (plus the text around its address when the
 * diagnostic alone says nothing) goes to the one classifier. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "smtp/bounce_internal.h"

const char *bounce_strerror(int err)
{
    switch (err) {
    case BOUNCE_OK: return "ok";
    case BOUNCE_ENOMEM: return "out of memory";
    case BOUNCE_EINVAL: return "invalid argument";
    case BOUNCE_ETOOBIG: return "mail larger than max_size";
    case BOUNCE_EPARSE: return "not a parsable mail";
    default: return "unknown error";
    }
}

const char *bounce_kind_name(enum bounce_kind k)
{
    switch (k) {
    case BOUNCE_KIND_DSN: return "dsn";
    case BOUNCE_KIND_NDR: return "ndr";
    case BOUNCE_KIND_ARF: return "arf";
    case BOUNCE_KIND_AUTOREPLY: return "autoreply";
    default: return "none";
    }
}

void bounce_report_free(bounce_report *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        struct bounce_rcpt *x = &r->v[i];
        free((char *)x->recipient);
        free((char *)x->original);
        free((char *)x->action);
        free((char *)x->status);
        free((char *)x->diagnostic);
        free((char *)x->remote_mta);
        free(r->ctx[i]);
    }
    free(r->v);
    free(r->rx);
    free(r->ctx);
    bounce__hdrs_free(&r->orig);
    free(r->orig_block);
    free(r);
}

enum bounce_kind bounce_report_kind(const bounce_report *r) { return r->kind; }
const char *bounce_report_feedback_type(const bounce_report *r) { return r->feedback_type; }
const char *bounce_report_feedback_mail_from(const bounce_report *r) { return r->feedback_mail_from; }
size_t bounce_report_rcpt_count(const bounce_report *r) { return r->n; }

const struct bounce_rcpt *bounce_report_rcpt(const bounce_report *r, size_t i)
{
    return i < r->n ? &r->v[i] : NULL;
}

static int bounce_keep_orig(bounce_report *r, const struct bounce__hdrs *h);

/* Headers given as text are parsed on the first question about them. */
static void bounce_report_orig_ready(const bounce_report *cr)
{
    bounce_report *r = (bounce_report *)cr;
    if (r->orig_block == NULL)
        return;
    struct bounce__hdrs h = {.max = r->orig.max * 2};
    bounce__parse_header_block(&h, r->orig_block, strlen(r->orig_block));
    bounce_keep_orig(r, &h);
    bounce__hdrs_free(&h);
    free(r->orig_block);
    r->orig_block = NULL;
}

size_t bounce_report_orig_header_count(const bounce_report *r)
{
    bounce_report_orig_ready(r);
    return r->orig.n;
}

const struct bounce_header *bounce_report_orig_header(const bounce_report *r, size_t i)
{
    bounce_report_orig_ready(r);
    return i < r->orig.n ? &r->orig.v[i] : NULL;
}

const char *bounce_report_orig_get(const bounce_report *r, const char *name)
{
    bounce_report_orig_ready(r);
    return bounce__hdrs_get(&r->orig, name);
}

static char *bounce_dup(const char *s)
{
    return bounce__strndup(s ? s : "", s ? strlen(s) : 0);
}

int bounce__report_add(bounce_report *r, const char *recipient, const char *original,
                       const char *action, const char *status, const char *diag,
                       const char *remote_mta, const char *ctx)
{
    if (r->n >= r->max)
        return BOUNCE_OK;
    /* one entry per recipient address */
    if (recipient != NULL && recipient[0] != '\0')
        for (size_t i = 0; i < r->n; i++)
            if (strcasecmp(r->v[i].recipient, recipient) == 0)
                return BOUNCE_OK;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4;
        struct bounce_rcpt *v = realloc(r->v, cap * sizeof *v);
        if (v == NULL)
            return BOUNCE_ENOMEM;
        r->v = v;
        char **c = realloc(r->ctx, cap * sizeof *c);
        if (c == NULL)
            return BOUNCE_ENOMEM;
        r->ctx = c;
        struct bounce__rx *rx = realloc(r->rx, cap * sizeof *rx);
        if (rx == NULL)
            return BOUNCE_ENOMEM;
        r->rx = rx;
        r->cap = cap;
    }
    struct bounce_rcpt *x = &r->v[r->n];
    memset(x, 0, sizeof *x);
    memset(&r->rx[r->n], 0, sizeof r->rx[r->n]);
    r->rx[r->n].hint = BOUNCE_R_NONE;
    x->recipient = bounce_dup(recipient);
    x->original = bounce_dup(original);
    x->action = bounce_dup(action);
    x->status = bounce_dup(status);
    x->diagnostic = bounce_dup(diag);
    x->remote_mta = bounce_dup(remote_mta);
    r->ctx[r->n] = bounce_dup(ctx);
    r->n++;
    if (!x->recipient || !x->original || !x->action || !x->status || !x->diagnostic || !x->remote_mta ||
        !r->ctx[r->n - 1])
        return BOUNCE_ENOMEM;
    return BOUNCE_OK;
}

/* Keeps Message-ID, From, To, Cc, Return-Path, Subject, Date and X- headers. */
static int bounce_keep_orig(bounce_report *r, const struct bounce__hdrs *h)
{
    static const char *const keep[] = {"message-id", "from", "to", "cc", "return-path", "subject", "date",
                                       "sender", "reply-to", NULL};
    for (size_t i = 0; i < h->n; i++) {
        bool ok = strncasecmp(h->v[i].name, "x-", 2) == 0;
        for (const char *const *k = keep; !ok && *k; k++)
            ok = strcasecmp(h->v[i].name, *k) == 0;
        if (ok && bounce__hdrs_add(&r->orig, h->v[i].name, h->v[i].value) != 0)
            return BOUNCE_ENOMEM;
    }
    return BOUNCE_OK;
}

/* RFC 3834 automatic replies (vacation, out of office). Reports of mail
 * systems (From: mailer-daemon, postmaster, root; X-Failed-Recipients) are
 * not auto-replies even when they carry Auto-Submitted. */
static bool bounce_is_autoreply(const struct bounce__doc *d)
{
    const char *from = bounce__hdrs_get(&d->top, "From");
    const char *to = bounce__hdrs_get(&d->top, "To");
    const char *subj = bounce__hdrs_get(&d->top, "Subject");
    static const char *const daemons[] = {"root@", "postmaster", "mailer-daemon", NULL};
    for (const char *const *p = daemons; from && *p; p++)
        if (bounce__stristr(from, *p))
            return false;
    if (to != NULL && bounce__stristr(to, "root@"))
        return false;
    if (subj != NULL && (bounce__stristr(subj, "security information for") || bounce__stristr(subj, "mail failure -")))
        return false;
    if (bounce__hdrs_get(&d->top, "X-Failed-Recipients") != NULL)
        return false;
    const char *as = bounce__hdrs_get(&d->top, "Auto-Submitted");
    /* auto-generated alone (RFC 3834: automatic, but no reply) is not one */
    if (as != NULL && (bounce__starts_ci(as, "auto-replied") || bounce__starts_ci(as, "auto-notified")))
        return true;
    if (bounce__hdrs_get(&d->top, "X-Autoreply") || bounce__hdrs_get(&d->top, "X-Autorespond") ||
        bounce__hdrs_get(&d->top, "X-Vacation"))
        return true;
    const char *apple = bounce__hdrs_get(&d->top, "X-Apple-Action");
    if (apple != NULL && bounce__starts_ci(apple, "vacation"))
        return true;
    const char *prec = bounce__hdrs_get(&d->top, "Precedence");
    if (prec != NULL && bounce__starts_ci(prec, "auto_reply"))
        return true;
    if (subj != NULL) {
        static const char *const pfx[] = {"auto:", "auto response:", "automatic reply:", "auto reply:", "auto-reply:",
                                          "autoreply:", "out of office:", "out of the office:", "abwesenheitsnotiz:",
                                          "réponse automatique:", "reponse automatique:", "respuesta automática:",
                                          "risposta automatica:", NULL};
        while (*subj == ' ')
            subj++;
        for (const char *const *p = pfx; *p; p++)
            if (bounce__starts_ci(subj, *p))
                return true;
    }
    return false;
}

static void bounce_set_limits(struct bounce_limits *l, const struct bounce_limits *in)
{
    if (in != NULL)
        *l = *in;
    else
        memset(l, 0, sizeof *l);
    if (l->max_size == 0) l->max_size = BOUNCE_DEFAULT_MAX_SIZE;
    if (l->max_depth == 0) l->max_depth = BOUNCE_DEFAULT_MAX_DEPTH;
    if (l->max_parts == 0) l->max_parts = BOUNCE_DEFAULT_MAX_PARTS;
    if (l->max_text == 0) l->max_text = BOUNCE_DEFAULT_MAX_TEXT;
    if (l->max_rcpts == 0) l->max_rcpts = BOUNCE_DEFAULT_MAX_RCPTS;
    if (l->max_headers == 0) l->max_headers = BOUNCE_DEFAULT_MAX_HEADERS;
}

/* Host names from Received: headers: the last hop that is a real host name
 * (the remote side of the failed delivery is usually not there, but the
 * provider that wrote the bounce is). */
static void bounce_received_host(const struct bounce__hdrs *h, bool last, char *out, size_t outlen)
{
    out[0] = '\0';
    uint32_t key = bounce__hdr_key("Received");
    size_t i = 0;
    for (const char *v; (v = bounce__hdrs_next(h, "Received", key, &i)) != NULL;) {
        if (!bounce__starts_ci(v, "from "))
            continue;
        const char *p = v + 5;
        size_t n = strcspn(p, " \t;()[]");
        if (n == 0 || n >= outlen || memchr(p, '.', n) == NULL)
            continue;
        memcpy(out, p, n);
        out[n] = '\0';
        bounce__lower(out);
        if (!last)
            return;
    }
}

/* Classifies every recipient from its diagnostic, status, command, action,
 * the MTA's own reading and the remote host. */
static void bounce_classify_all(bounce_report *r, const struct bounce__doc *d)
{
    char lhost[256];
    bounce_received_host(&d->top, false, lhost, sizeof lhost);
    for (size_t i = 0; i < r->n; i++) {
        struct bounce_rcpt *x = &r->v[i];
        struct bounce__rx *rx = &r->rx[i];
        if (x->reason == BOUNCE_R_FEEDBACK || x->reason == BOUNCE_R_VACATION) {
            x->hard = -1;
            continue;
        }
        const char *raw = x->diagnostic[0] ? x->diagnostic : r->ctx[i];
        size_t rl = strlen(raw);
        /* codes as the text gives them, before multi-line prefixes are
         * folded: the cleaning finds them in raw made one line, which
         * reads the same unless raw was cut */
        char cs[16];
        int cr;
        char *diag = bounce__diag_clean_codes(raw, rl, r->kind == BOUNCE_KIND_DSN, cs, &cr);
        if (diag == NULL)
            continue;
        if (rl > BOUNCE_DIAG_MAX) {
            bounce__status_find(raw, cs, sizeof cs);
            cr = bounce__reply_find(raw, cs[0]);
        }
        struct bounce__fact f;
        memset(&f, 0, sizeof f);
        bounce__status_prefer(f.status, sizeof f.status, x->status, cs, cr);
        f.reply = rx->reply ? rx->reply : cr;
        f.cmd = rx->cmd != BOUNCE_CMD_UNKNOWN ? rx->cmd : bounce__cmd_find(diag);
        if (f.cmd == BOUNCE_CMD_UNKNOWN && r->ctx[i][0])
            f.cmd = bounce__cmd_find(r->ctx[i]);
        /* Postfix: "host x refused to talk to me: 554 ..." is the greeting */
        if (f.cmd == BOUNCE_CMD_UNKNOWN && bounce__stristr(diag, "refused to talk to me"))
            f.cmd = BOUNCE_CMD_HELO;
        bounce__lower(diag);
        f.diag = diag;
        f.dtype = rx->dtype;
        f.action = x->action;
        char rhost[256];
        bounce__copy(rhost, sizeof rhost, x->remote_mta);
        /* "mx.example.jp (192.0.2.1)", "[192.0.2.1]": the first host name */
        for (char *c = rhost; *c; c++)
            if (*c == ' ' || *c == '(' || *c == '[') {
                *c = '\0';
                break;
            }
        if (rhost[0] == '\0')
            bounce__host_find(raw, rhost, sizeof rhost);
        bounce__lower(rhost);
        f.rhost = rhost;
        f.lhost = lhost;
        const char *at = strrchr(x->recipient, '@');
        f.dest = at ? at + 1 : "";
        f.hint = rx->hint;
        if (strcmp(x->action, "delivered") == 0 || strcmp(x->action, "relayed") == 0 ||
            strcmp(x->action, "expanded") == 0)
            x->reason = BOUNCE_R_DELIVERED;
        else
            x->reason = bounce__decide(&f);
        x->smtp_code = f.reply;
        if (f.status[0] && strcmp(x->status, f.status) != 0) {
            char *s = bounce_dup(f.status);
            if (s != NULL) {
                free((char *)x->status);
                x->status = s;
            }
        }
        x->hard = bounce__hard(x->reason, f.status, diag);
        free(diag);
    }
}

/* Lines that end in a bare CR (classic Mac OS mail files, some archives):
 * true if the first line break of data is one. No MIME reader splits such
 * a mail into lines, so it is read as if its CRs were LFs. */
bool bounce__cr_lines(const char *data, size_t len)
{
    /* the first CR before the first LF, if any (memchr() instead of a
     * byte loop over every mail's first line) */
    const char *lf = memchr(data, '\n', len);
    const char *cr = memchr(data, '\r', lf != NULL ? (size_t)(lf - data) : len);
    if (cr == NULL)
        return false;
    size_t i = (size_t)(cr - data);
    return i + 1 >= len || data[i + 1] != '\n';
}

/* A copy of data with every bare CR made LF (CRLF kept). */
char *bounce__cr_to_lf(const char *data, size_t len)
{
    char *c = malloc(len + 1);
    if (c == NULL)
        return NULL;
    memcpy(c, data, len);
    c[len] = '\0';
    for (char *p = memchr(c, '\r', len); p != NULL; p = memchr(p + 1, '\r', (size_t)(c + len - p - 1)))
        if (p + 1 >= c + len || p[1] != '\n')
            *p = '\n';
    return c;
}

int bounce_analyse(const char *data, size_t len, const struct bounce_limits *lim, bounce_report **out,
                   char *errmsg, size_t errlen)
{
    if (data != NULL && out != NULL && bounce__cr_lines(data, len)) {
        char *lf = bounce__cr_to_lf(data, len);
        if (lf == NULL)
            return BOUNCE_ENOMEM;
        int rv = bounce_analyse(lf, len, lim, out, errmsg, errlen);
        free(lf);
        return rv;
    }
    int rv;
    struct bounce_limits l;
    struct bounce__doc d;
    bounce_report *r = NULL;
    if (data == NULL || out == NULL)
        return BOUNCE_EINVAL;
    *out = NULL;
    bounce_set_limits(&l, lim);
    if (len > l.max_size) {
        if (errmsg)
            snprintf(errmsg, errlen, "mail of %zu bytes exceeds max_size %zu", len, l.max_size);
        return BOUNCE_ETOOBIG;
    }
    memset(&d, 0, sizeof d);
    d.lim = &l;
    d.top.max = l.max_headers * 4;
    d.orig.max = l.max_headers * 2;
    if ((r = calloc(1, sizeof *r)) == NULL)
        return BOUNCE_ENOMEM;
    r->max = l.max_rcpts;
    r->orig.max = l.max_headers;
    if ((rv = bounce__mime_parse(&d, data, len)) != 0) {
        if (errmsg)
            snprintf(errmsg, errlen, "mime: %s", bounce_strerror(rv));
        goto err;
    }
    bool have_ds = false, have_fr = false;
    for (size_t i = 0; i < d.nparts; i++) {
        have_ds |= d.parts[i].type == BOUNCE_P_DS;
        have_fr |= d.parts[i].type == BOUNCE_P_FR;
    }
    if (have_fr || bounce__provider_complaint(&d, r)) {
        if (have_fr && (rv = bounce__arf_parse(&d, r)) != 0)
            goto err;
        r->kind = BOUNCE_KIND_ARF;
    } else if (bounce__provider_json(&d, r)) {
        /* kind and recipients set */
    } else if (have_ds && ((rv = bounce__dsn_parse(&d, r)) != 0 || r->n > 0)) {
        if (rv != 0)
            goto err;
        r->kind = BOUNCE_KIND_DSN;
    } else if (bounce__dsn_in_text(&d, r, &rv) || rv != 0) {
        if (rv != 0)
            goto err;
        r->kind = BOUNCE_KIND_DSN;
    } else if (bounce_is_autoreply(&d)) {
        r->kind = BOUNCE_KIND_AUTOREPLY;
        const char *from = bounce__hdrs_get(&d.top, "From");
        char *a = from ? bounce__clean_addr(from, strlen(from)) : NULL;
        rv = bounce__report_add(r, a ? a : "", "", "", "", "", "", "");
        free(a);
        if (rv != 0)
            goto err;
        r->v[r->n - 1].reason = BOUNCE_R_VACATION;
    } else if (bounce__ndr_looks_like(&d)) {
        if ((rv = bounce__ndr_parse(&d, r)) != 0)
            goto err;
        r->kind = r->n ? BOUNCE_KIND_NDR : BOUNCE_KIND_NONE;
    }
    if (r->kind == BOUNCE_KIND_DSN || r->kind == BOUNCE_KIND_NDR) {
        if ((rv = bounce__dsn_context(&d, r)) != 0)
            goto err;
    }
    if (r->kind == BOUNCE_KIND_DSN || r->kind == BOUNCE_KIND_NDR) {
        size_t tl = 0;
        const char *text = bounce__human_text(&d, &tl);
        if (text == NULL) {
            rv = BOUNCE_ENOMEM;
            goto err;
        }
        bounce__lhost_read(&d, r, text);
    }
    if (d.orig_block != NULL) {
        if ((r->orig_block = bounce__strndup(d.orig_block, strlen(d.orig_block))) == NULL) {
            rv = BOUNCE_ENOMEM;
            goto err;
        }
    } else if ((rv = bounce_keep_orig(r, &d.orig)) != 0) {
        goto err;
    }
    bounce_classify_all(r, &d);
    bounce__doc_free(&d);
    *out = r;
    return BOUNCE_OK;
err:
    bounce__doc_free(&d);
    bounce_report_free(r);
    return rv;
}
