/* Non-standard non-delivery reports (no usable message/delivery-status):
 * Exim, qmail, old Sendmail, Exchange, Gmail, Yahoo, Courier, ... all write
 * a human-readable text that names the failed recipient and quotes the
 * remote server's reply near it, then a copy of the original message.
 *
 * Generic reading, no per-MTA tables:
 *  - is it a report at all: X-Failed-Recipients, a daemon sender
 *    (mailer-daemon, postmaster, "Mail Delivery ..."), a null Return-Path,
 *    or a subject of the usual kind;
 *  - the text is cut where the returned message starts (a separator line
 *    such as "--- Below this line is a copy of the message" or an inline
 *    header block), whose headers become the original headers;
 *  - recipients are X-Failed-Recipients, else the addresses in the text that
 *    are not the bounce's own or the original sender's, else the original
 *    To:;
 *  - each recipient's context is the text from its line onwards until the
 *    next recipient (bounded), the diagnostic its first line with a reply
 *    code or status. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/bounce_internal.h"

#define BOUNCE_CTX_MAX 2048
#define BOUNCE_TEXT_SCAN (64u << 10)

static bool bounce_has_addr(const char *hdr, const char *local)
{
    return hdr != NULL && bounce__stristr(hdr, local) != NULL;
}

bool bounce__ndr_looks_like(const struct bounce__doc *d)
{
    if (bounce__hdrs_get(&d->top, "X-Failed-Recipients") != NULL)
        return true;
    if (strcmp(d->report_type, "delivery-status") == 0)
        return true;
    const char *from = bounce__hdrs_get(&d->top, "From");
    static const char *const daemons[] = {"mailer-daemon", "postmaster", "mail delivery", "maildelivery",
                                          "mail administrator", "mail system", "mdaemon", "mailerdaemon",
                                          "mail-daemon", "bounce", "notify", NULL};
    for (const char *const *p = daemons; *p; p++)
        if (bounce_has_addr(from, *p))
            return true;
    const char *subj = bounce__hdrs_get(&d->top, "Subject");
    static const char *const subjects[] = {"undeliver", "undelivered", "delivery fail", "delivery status",
                                           "failure notice", "returned mail", "mail delivery", "could not be delivered",
                                           "non remis", "nondeliver", "non-deliver", "delivery problem",
                                           "delivery notification", "not delivered", "delivery error",
                                           "mail system error", "failed delivery", "delivery report",
                                           "returned to sender", "rejected", "bounce", "warning: could not send",
                                           "unzustellbar", "no se puede entregar", "error sending", "mail error",
                                           "delivery has failed", "message you sent", NULL};
    for (const char *const *p = subjects; subj && *p; p++)
        if (bounce__stristr(subj, *p))
            return true;
    const char *rp = bounce__hdrs_get(&d->top, "Return-Path");
    if (rp != NULL && (strcmp(rp, "<>") == 0 || rp[0] == '\0'))
        return true;
    return bounce__lhost_known(d);
}

/* Line starts with a separator that introduces the returned message. */
static bool bounce_is_separator(const char *line, size_t ll)
{
    size_t i = 0;
    while (i < ll && (line[i] == ' ' || line[i] == '\t'))
        i++;
    const char *l = line + i;
    size_t n = ll - i;
    if (n == 0)
        return false;
    /* every line of a report's text is tested: most are dropped on their
     * first byte, the rest compared only with the phrases that can match */
    unsigned char c = (unsigned char)l[0];
    if (c != '-' && c != '=' && c != '*' && c != '_') {
        static const struct { const char *s; size_t n; } plain[] = {
            {BOUNCE_LIT("original message headers")}, {BOUNCE_LIT("original message follows")},
            {BOUNCE_LIT("the original message headers")}, {BOUNCE_LIT("below this line is a copy")}};
        int c0 = c | 0x20; /* 'o' for 'o' and 'O' only, ... */
        if (c0 != 'o' && c0 != 't' && c0 != 'b')
            return false;
        for (size_t k = 0; k < sizeof plain / sizeof plain[0]; k++)
            if (c0 == plain[k].s[0] && n >= plain[k].n && strncasecmp(l, plain[k].s, plain[k].n) == 0)
                return true;
        return false;
    }
    /* every mark below says "message" or "original" (so does the line
     * "----- original message ..."); MIME boundaries and rules of dashes
     * say neither */
    if (!bounce__memistr(l, n, "message") && !bounce__memistr(l, n, "original"))
        return false;
    static const char *const marks[] = {"original message", "copy of the message", "unsent message",
                                        "returned message", "header of the original", "headers of the original",
                                        "message header follows", "rejected message", "original mail",
                                        "copy of your message", "undelivered message", "message headers follow",
                                        NULL};
    for (const char *const *p = marks; *p; p++)
        if (bounce__memistr(l, n, *p))
            return true;
    return false;
}

static bool bounce_is_header_line(const char *l, size_t n)
{
    size_t i = 0;
    while (i < n && (isalnum((unsigned char)l[i]) || l[i] == '-'))
        i++;
    return i > 0 && i < n && l[i] == ':' && i + 1 <= n;
}

/* p: lower case, its second byte a letter, compared first (the lines tested
 * begin with the first already) */
static bool bounce_prefix_ci(const char *l, size_t n, const char *p, size_t pl)
{
    return n >= pl && (l[1] | 0x20) == p[1] && strncasecmp(l, p, pl) == 0;
}

/* A line that starts a returned message's header block. */
static bool bounce_is_orig_start(const char *l, size_t n)
{
    if (n == 0)
        return false;
    switch (l[0] | 0x20) {
    case 'r':
        return bounce_prefix_ci(l, n, BOUNCE_LIT("return-path:")) || bounce_prefix_ci(l, n, BOUNCE_LIT("received:"));
    case 'm':
        return bounce_prefix_ci(l, n, BOUNCE_LIT("message-id:")) || bounce_prefix_ci(l, n, BOUNCE_LIT("mime-version:"));
    case 'd':
        return bounce_prefix_ci(l, n, BOUNCE_LIT("dkim-signature:")) || bounce_prefix_ci(l, n, BOUNCE_LIT("date:")) ||
               bounce_prefix_ci(l, n, BOUNCE_LIT("delivered-to:"));
    case 'f': return bounce_prefix_ci(l, n, BOUNCE_LIT("from:"));
    case 't': return bounce_prefix_ci(l, n, BOUNCE_LIT("to:"));
    case 's': return bounce_prefix_ci(l, n, BOUNCE_LIT("subject:"));
    default: return false;
    }
}

/* The first "\n\n" or "\n\r\n" in the string s, where a header block
 * ends, or NULL: one pass (a strstr() for each ran to the end of the part
 * when it had no CR). */
static const char *bounce_block_end(const char *s)
{
    for (const char *nl = strchr(s, '\n'); nl != NULL; nl = strchr(nl + 1, '\n'))
        if (nl[1] == '\n' || (nl[1] == '\r' && nl[2] == '\n'))
            return nl;
    return NULL;
}

/* Returns the offset in t where the returned message begins (len if none).
 * If an inline header block is found, hdr and hdrlen delimit it. */
static size_t bounce_cut(const char *t, size_t len, const char **hdr, size_t *hdrlen)
{
    *hdr = NULL;
    *hdrlen = 0;
    const char *p = t, *end = t + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        size_t ll = (size_t)(eol - p);
        if (bounce_is_separator(p, ll)) {
            /* the headers follow after optional blank lines */
            const char *q = eol < end ? eol + 1 : end;
            while (q < end && (*q == '\n' || *q == '\r'))
                q++;
            const char *e2 = memchr(q, '\n', (size_t)(end - q));
            if (q < end && bounce_is_header_line(q, e2 ? (size_t)(e2 - q) : (size_t)(end - q))) {
                const char *b = bounce_block_end(q);
                *hdr = q;
                *hdrlen = b ? (size_t)(b - q) : (size_t)(end - q);
            }
            return (size_t)(p - t);
        }
        if (bounce_is_orig_start(p, ll)) {
            /* three header lines in a row make a header block */
            int hl = 1;
            const char *q = eol < end ? eol + 1 : end;
            while (q < end && hl < 3) {
                const char *e2 = memchr(q, '\n', (size_t)(end - q));
                size_t l2 = e2 ? (size_t)(e2 - q) : (size_t)(end - q);
                if (l2 > 0 && (q[0] == ' ' || q[0] == '\t' || bounce_is_header_line(q, l2)))
                    hl++;
                else
                    break;
                q = e2 ? e2 + 1 : end;
            }
            if (hl >= 3) {
                const char *b = strstr(p, "\n\n");
                *hdr = p;
                *hdrlen = b ? (size_t)(b - p) : (size_t)(end - p);
                return (size_t)(p - t);
            }
        }
        p = eol + 1;
    }
    return len;
}

/* The human-readable text of the report, cut before the returned message;
 * malloc'd. Also fills the original headers from an inline block. */
static char *bounce_human_text(struct bounce__doc *d, size_t *outlen);

const char *bounce__human_text(struct bounce__doc *d, size_t *outlen)
{
    if (d->human == NULL)
        d->human = bounce_human_text(d, &d->human_len);
    *outlen = d->human_len;
    return d->human;
}

static char *bounce_human_text(struct bounce__doc *d, size_t *outlen)
{
    size_t cap = 0;
    for (size_t i = 0; i < d->nparts; i++)
        if (d->parts[i].type == BOUNCE_P_TEXT || d->parts[i].type == BOUNCE_P_HTML)
            cap += d->parts[i].len + 1;
    if (cap > BOUNCE_TEXT_SCAN)
        cap = BOUNCE_TEXT_SCAN;
    char *t = malloc(cap + 1);
    if (t == NULL)
        return NULL;
    size_t n = 0;
    bool have_text = false;
    for (size_t i = 0; i < d->nparts; i++)
        have_text |= d->parts[i].type == BOUNCE_P_TEXT;
    for (size_t i = 0; i < d->nparts && n < cap; i++) {
        struct bounce__part *p = &d->parts[i];
        if (p->type != BOUNCE_P_TEXT && !(p->type == BOUNCE_P_HTML && !have_text))
            continue;
        const char *hdr;
        size_t hdrlen;
        size_t cut = bounce_cut(p->text, p->len, &hdr, &hdrlen);
        if (hdr != NULL && !d->have_orig)
            bounce__doc_set_orig_block(d, hdr, hdrlen);
        if (cut > cap - n)
            cut = cap - n;
        memcpy(t + n, p->text, cut);
        n += cut;
        if (n < cap)
            t[n++] = '\n';
        if (cut < p->len)
            break; /* the rest is the returned message */
    }
    t[n] = '\0';
    *outlen = n;
    return t;
}

/* Where the report and the returned message name their own senders: each
 * candidate address is looked for there. Read once per bounce_candidates():
 * the returned message's header block used to be walked once per candidate
 * and header name (bounce__block_has(), 0.6 M instructions of a corpus
 * pass). */
#define BOUNCE_OWN_MAX 16
struct bounce_own {
    bool read;
    const char *top[5];  /* the report's From, Return-Path, Sender, Reply-To, To, or NULL */
    struct {
        const char *p;
        size_t n;
    } f[BOUNCE_OWN_MAX];  /* the returned message's From, Return-Path, Sender, Reply-To */
    size_t nf;
    bool many;           /* more fields than f holds: bounce__block_has() instead */
};

static void bounce_own_read(const struct bounce__doc *d, struct bounce_own *o)
{
    static const char *const hdrs[] = {"From", "Return-Path", "Sender", "Reply-To", "To"};
    for (size_t i = 0; i < 5; i++)
        o->top[i] = bounce__hdrs_get(&d->top, hdrs[i]);
    o->read = true;
    o->nf = 0;
    o->many = false;
    if (d->orig_block == NULL) {
        for (size_t i = 0; i < 4; i++) {
            const char *v = bounce__hdrs_get(&d->orig, hdrs[i]);
            if (v != NULL) {
                o->f[o->nf].p = v;
                o->f[o->nf++].n = strlen(v);
            }
        }
        return;
    }
    /* the fields bounce__block_has() would read: a name at a line's start,
     * then ':', the body with its continuation lines */
    for (const char *l = d->orig_block; l != NULL && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        size_t nl;
        switch (*l | 0x20) {
        case 'f': nl = strncasecmp(l, "From:", 5) == 0 ? 4 : 0; break;
        case 's': nl = strncasecmp(l, "Sender:", 7) == 0 ? 6 : 0; break;
        case 'r':
            nl = strncasecmp(l, "Return-Path:", 12) == 0 ? 11 : strncasecmp(l, "Reply-To:", 9) == 0 ? 8 : 0;
            break;
        default: nl = 0; break;
        }
        if (nl == 0)
            continue;
        if (o->nf == BOUNCE_OWN_MAX) {
            o->many = true;
            return;
        }
        size_t n = bounce__block_field_len(l);
        o->f[o->nf].p = l + nl + 1;
        o->f[o->nf++].n = n - nl - 1;
    }
}

static bool bounce_excluded(const struct bounce__doc *d, struct bounce_own *o, const char *addr, bool strict)
{
    const char *at = strchr(addr, '@');
    size_t ll = at ? (size_t)(at - addr) : strlen(addr);
    static const struct { const char *s; size_t n; } locals[] = {
        {BOUNCE_LIT("mailer-daemon")}, {BOUNCE_LIT("postmaster")}, {BOUNCE_LIT("mailerdaemon")},
        {BOUNCE_LIT("mail-daemon")}, {BOUNCE_LIT("root")}, {BOUNCE_LIT("noreply")},
        {BOUNCE_LIT("no-reply")}, {BOUNCE_LIT("abuse")}, {BOUNCE_LIT("bounce")},
        {BOUNCE_LIT("bounces")}};
    for (size_t k = 0; k < sizeof locals / sizeof locals[0]; k++)
        if (ll == locals[k].n && strncasecmp(addr, locals[k].s, ll) == 0)
            return true;
    if (!strict)
        return false; /* only the daemons' own addresses */
    if (!o->read)
        bounce_own_read(d, o);
    for (size_t i = 0; i < 5; i++)
        if (o->top[i] != NULL && bounce__stristr(o->top[i], addr))
            return true;
    if (o->many) {
        static const char *const ohdrs[] = {"From", "Return-Path", "Sender", "Reply-To", NULL};
        for (const char *const *h = ohdrs; *h; h++)
            if (bounce__block_has(d->orig_block, *h, addr))
                return true;
        return false;
    }
    for (size_t i = 0; i < o->nf; i++)
        if (bounce__memistr(o->f[i].p, o->f[i].n, addr))
            return true;
    return false;
}

/* Line of t containing position p: [*ls, *le) */
static void bounce_line_of(const char *t, const char *p, const char **ls, const char **le)
{
    const char *s = p;
    while (s > t && s[-1] != '\n')
        s--;
    const char *e = strchr(p, '\n');
    *ls = s;
    *le = e ? e : p + strlen(p);
}

static bool bounce_line_is_noise(const char *ls, size_t n)
{
    static const struct { const char *s; size_t n; } noise[] = {
        {BOUNCE_LIT("message-id")}, {BOUNCE_LIT("message id")}, {BOUNCE_LIT("references:")},
        {BOUNCE_LIT("in-reply-to")}, {BOUNCE_LIT("http://")}, {BOUNCE_LIT("https://")},
        {BOUNCE_LIT("mailto:")}, {BOUNCE_LIT("received:")}, {BOUNCE_LIT("by ")},
        {BOUNCE_LIT("envelope-from")}, {BOUNCE_LIT("x-")}, {BOUNCE_LIT("sender:")},
        {BOUNCE_LIT("from:")}, {BOUNCE_LIT("reply-to")}, {BOUNCE_LIT("return-path")}};
    size_t i = 0;
    while (i < n && (ls[i] == ' ' || ls[i] == '\t' || ls[i] == '>'))
        i++;
    /* each prefix starts with a lower-case letter: only those whose first
     * letter the line's matches are compared */
    int c0 = (unsigned char)ls[i] | 0x20;
    for (size_t k = 0; k < sizeof noise / sizeof noise[0]; k++)
        if (c0 == noise[k].s[0] && n - i >= noise[k].n && strncasecmp(ls + i, noise[k].s, noise[k].n) == 0)
            return true;
    if (bounce__memistr(ls, n, "message-id") || bounce__memistr(ls, n, "original sender") ||
        bounce__memistr(ls, n, "sender address") || bounce__memistr(ls, n, "mail from:"))
        return true;
    return false;
}

struct bounce_cand {
    char *addr;
    const char *first; /* first occurrence in the text */
};

/* Diagnostic = first line of ctx with a reply code or a status, plus
 * its indented continuation lines. */
static void bounce_pick_diag(const char *ctx, char *out, size_t outlen)
{
    out[0] = '\0';
    const char *p = ctx;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        char line[600];
        size_t cl = ll < sizeof line - 1 ? ll : sizeof line - 1;
        memcpy(line, p, cl);
        line[cl] = '\0';
        char st[16];
        if (bounce__find_code(line, NULL) || bounce__find_status(line, st, sizeof st)) {
            size_t n = 0;
            const char *q = p;
            for (int lines = 0; *q && lines < 4; lines++) {
                const char *e = strchr(q, '\n');
                size_t l2 = e ? (size_t)(e - q) : strlen(q);
                if (lines > 0 && (l2 == 0 || !(q[0] == ' ' || q[0] == '\t' || isdigit((unsigned char)q[0]))))
                    break;
                for (size_t i = 0; i < l2 && n + 2 < outlen; i++)
                    out[n++] = q[i] == '\t' || q[i] == '\r' ? ' ' : q[i];
                if (n + 2 < outlen)
                    out[n++] = ' ';
                q = e ? e + 1 : q + l2;
            }
            out[n] = '\0';
            return;
        }
        p = eol ? eol + 1 : p + ll;
    }
}

static bool bounce_line_names_other(const char *l, size_t n, struct bounce_cand *c, size_t nc, const char *self)
{
    for (size_t i = 0; i < nc; i++)
        if (c[i].addr != self && strcmp(c[i].addr, self) != 0 && bounce__memistr(l, n, c[i].addr))
            return true;
    return false;
}

static bool bounce_line_blank(const char *l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)l[i]))
            return false;
    return true;
}

/* The line [ls, le) gives a reason next to the address at [a, a+al): words
 * after it ("550 <a@b>... User unknown", "<a@b>: host x said: ..."), or a
 * reply code before it; not an introduction that ends with the address
 * ("... delivering your mail to <a@b>."). */
static bool bounce_line_says_more(const char *ls, const char *le, const char *a, size_t al)
{
    int words = 0;
    for (const char *p = a + al; p < le;) {
        while (p < le && !isalpha((unsigned char)*p))
            p++;
        const char *w = p;
        while (p < le && !isspace((unsigned char)*p))
            p++;
        if (p - w >= 2)
            words++;
    }
    if (words >= 2)
        return true;
    char before[64];
    size_t n = (size_t)(a - ls) < sizeof before - 1 ? (size_t)(a - ls) : sizeof before - 1;
    memcpy(before, ls, n);
    before[n] = '\0';
    return bounce__find_code(before, NULL) != 0 && words >= 1;
}

/* ">>> RCPT TO:<...>", "<<< 550 ...", "While talking to host:" */
static bool bounce_is_transcript(const char *l, size_t n)
{
    while (n > 0 && (*l == ' ' || *l == '\t')) {
        l++;
        n--;
    }
    /* tested on most lines near a recipient: bytes compared, not strncmp() */
    if (n >= 8 && l[0] == '>' && l[1] == '>' && l[2] == '>' && l[3] == ' ') {
        static const char *const cmds[] = {"MAIL", "RCPT", "DATA", "HELO", "EHLO", "QUIT", "RSET", "STARTTLS", ".",
                                           NULL};
        for (const char *const *c = cmds; *c; c++)
            if (strncasecmp(l + 4, *c, strlen(*c)) == 0)
                return true;
        return false;
    }
    return (n >= 4 && l[0] == '<' && l[1] == '<' && l[2] == '<' && l[3] == ' ') ||
           (n >= 16 && (l[0] | 0x20) == 'w' && strncasecmp(l, "while talking to", 16) == 0);
}

/* The block of text that belongs to the address at first:
 *  - the address's line says why ("550 <a@b>... User unknown", Postfix's
 *    "<a@b>: host ... said: ..."): that line, the SMTP transcript lines
 *    just before it (">>> DATA", "<<< 550 ..."), and the indented lines
 *    that continue it;
 *  - the address stands alone (Exim, Gmail, ...): the lines after it up
 *    to the next recipient, or when there is nothing after it, the
 *    paragraph before it.
 * At most BOUNCE_CTX_MAX bytes; never another recipient's line. t is the
 * report's human text (bounce__human_text()). */
static char *bounce_context(const char *t, const char *first, struct bounce_cand *c, size_t nc,
                            const char *self)
{
    const char *ls, *le;
    bounce_line_of(t, first, &ls, &le);
    const char *start = ls, *end = le;
    const char *tend = t + strlen(t);
    /* an SMTP transcript goes on with the server's answers */
    bool transcript = bounce_is_transcript(ls, (size_t)(le - ls));
    if (transcript || bounce_line_says_more(ls, le, first, strlen(self))) {
        /* transcript lines right above */
        while (start > t) {
            const char *s = start - 1;
            while (s > t && s[-1] != '\n')
                s--;
            size_t n = (size_t)(start - 1 - s);
            if (!bounce_is_transcript(s, n) || bounce_line_names_other(s, n, c, nc, self))
                break;
            start = s;
        }
        /* indented continuation lines below */
        while (end < tend && *end == '\n') {
            const char *l1 = end + 1;
            const char *e1 = strchr(l1, '\n');
            if (e1 == NULL)
                e1 = tend;
            size_t n = (size_t)(e1 - l1);
            /* Postfix wraps "<a@b>: host x said: 550 5.2.1" before the
             * reply's text, which names the address again */
            bool more = (l1[0] == ' ' || l1[0] == '\t') || bounce_is_transcript(l1, n) ||
                        (transcript && bounce__find_code(l1, NULL) != 0) || bounce__memistr(l1, n, self) != NULL;
            if (n == 0 || bounce_line_blank(l1, n) || !more || bounce_line_names_other(l1, n, c, nc, self))
                break;
            end = e1;
        }
    } else {
        bool content = false;
        while (end < tend && *end == '\n') {
            const char *l1 = end + 1;
            const char *e1 = strchr(l1, '\n');
            if (e1 == NULL)
                e1 = tend;
            size_t n = (size_t)(e1 - l1);
            /* (no line of t is a separator: bounce_human_text() cut it
             * before the first) */
            if (bounce_line_names_other(l1, n, c, nc, self))
                break;
            if (!bounce_line_blank(l1, n))
                content = true;
            end = e1;
            if ((size_t)(end - start) > BOUNCE_CTX_MAX)
                break;
        }
        if (!content) {
            /* the reason came before the address: its paragraph */
            const char *s = ls;
            bool seen = false;
            while (s > t) {
                const char *p = s - 1;
                while (p > t && p[-1] != '\n')
                    p--;
                size_t n = (size_t)(s - 1 - p);
                if (bounce_line_names_other(p, n, c, nc, self))
                    break;
                if (bounce_line_blank(p, n)) {
                    if (seen)
                        break;
                } else {
                    seen = true;
                }
                s = p;
                if ((size_t)(ls - s) > BOUNCE_CTX_MAX)
                    break;
            }
            start = s;
        }
    }
    if ((size_t)(end - start) > BOUNCE_CTX_MAX)
        end = start + BOUNCE_CTX_MAX;
    return bounce__strndup(start, (size_t)(end - start));
}

static int bounce_candidates(const struct bounce__doc *d, const char *t, struct bounce_cand *c, size_t max,
                             size_t *nc, bool strict)
{
    *nc = 0;
    struct bounce_own own = {.read = false};
    for (const char *at = strchr(t, '@'); at != NULL && *nc < max; at = strchr(at + 1, '@')) {
        const char *b = at;
        while (b > t && !isspace((unsigned char)b[-1]) && b[-1] != '<' && b[-1] != '(' && b[-1] != '"' &&
               b[-1] != '\'' && b[-1] != ':' && b[-1] != '[' && b[-1] != ',' && b[-1] != ';')
            b--;
        if (b > t && b[-1] == '=')
            continue;
        const char *e = at + 1;
        while (*e && !isspace((unsigned char)*e) && *e != '>' && *e != ')' && *e != '"' && *e != '\'' &&
               *e != ',' && *e != ';' && *e != ']' && *e != '<')
            e++;
        char *a = bounce__clean_addr(b, (size_t)(e - b));
        if (a == NULL)
            continue;
        const char *dom = strchr(a, '@') + 1;
        /* the cheaper tests first: any one drops the address */
        bool drop = strchr(dom, '.') == NULL;
        for (size_t i = 0; i < *nc && !drop; i++)
            drop = strcasecmp(c[i].addr, a) == 0;
        if (!drop) {
            const char *ls, *le;
            bounce_line_of(t, at, &ls, &le);
            drop = bounce_line_is_noise(ls, (size_t)(le - ls)) || bounce_excluded(d, &own, a, strict);
        }
        if (drop) {
            free(a);
            continue;
        }
        c[*nc].addr = a;
        c[*nc].first = at;
        (*nc)++;
    }
    return BOUNCE_OK;
}

int bounce__ndr_parse(struct bounce__doc *d, bounce_report *r)
{
    size_t tl = 0;
    const char *t = bounce__human_text(d, &tl);
    if (t == NULL)
        return BOUNCE_ENOMEM;
    enum { MAXC = 32 };
    struct bounce_cand c[MAXC];
    size_t nc = 0;
    int rv = BOUNCE_OK;
    char diag[600];
    const char *xf = bounce__hdrs_get(&d->top, "X-Failed-Recipients");
    if (xf != NULL) {
        const char *p = xf;
        while (*p && nc < MAXC) {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            char *a = bounce__clean_addr(p, n);
            if (a != NULL) {
                const char *f = bounce__stristr(t, a);
                c[nc].addr = a;
                c[nc].first = f; /* NULL: not in the text */
                nc++;
            }
            p += n + (comma ? 1 : 0);
        }
    }
    if (nc == 0)
        bounce_candidates(d, t, c, MAXC, &nc, true);
    /* a report sent to the very address that failed (a test to oneself):
     * the text names it all the same */
    if (nc == 0)
        bounce_candidates(d, t, c, MAXC, &nc, false);
    if (nc == 0) {
        const char *to = bounce__hdrs_get(bounce__doc_orig(d), "To");
        char *a = to ? bounce__clean_addr(to, strlen(to)) : NULL;
        if (a != NULL) {
            bounce_pick_diag(t, diag, sizeof diag);
            char ctx[BOUNCE_CTX_MAX + 1];
            bounce__copy(ctx, sizeof ctx, t);
            rv = bounce__report_add(r, a, "", "failed", "", diag, "", ctx);
            free(a);
        }
        goto out;
    }
    /* "Could not be delivered because of\n550 5.1.1 User unknown\nThe
     * following recipients were affected: a@b": a reply stated once
     * above the list belongs to every recipient whose own text has none */
    char lead[600] = "";
    bool lead_read = false;
    for (size_t i = 0; i < nc && rv == 0; i++) {
        char *ctx = c[i].first ? bounce_context(t, c[i].first, c, nc, c[i].addr)
                               : bounce__strndup(t, strlen(t) < BOUNCE_CTX_MAX ? strlen(t) : BOUNCE_CTX_MAX);
        if (ctx == NULL) {
            rv = BOUNCE_ENOMEM;
            break;
        }
        char st[16];
        bool says = c[i].first == NULL || bounce__find_code(ctx, NULL) != 0 || bounce__find_status(ctx, st, sizeof st);
        if (!says && !lead_read) {
            /* the text above the first recipient, read once */
            lead_read = true;
            const char *top = NULL;
            for (size_t k = 0; k < nc; k++)
                if (c[k].first != NULL && (top == NULL || c[k].first < top))
                    top = c[k].first;
            const char *ls, *le;
            bounce_line_of(t, top, &ls, &le);
            char *pre = bounce__strndup(t, (size_t)(ls - t));
            if (pre == NULL) {
                free(ctx);
                rv = BOUNCE_ENOMEM;
                break;
            }
            bounce_pick_diag(pre, lead, sizeof lead);
            free(pre);
        }
        if (!says && lead[0] != '\0') {
            size_t n = strlen(lead) + strlen(ctx) + 2;
            char *both = malloc(n);
            if (both == NULL) {
                free(ctx);
                rv = BOUNCE_ENOMEM;
                break;
            }
            snprintf(both, n, "%s\n%s", lead, ctx);
            free(ctx);
            ctx = both;
        }
        rv = bounce__report_add(r, c[i].addr, "", "failed", "", ctx, "", ctx);
        free(ctx);
    }
out:
    for (size_t i = 0; i < nc; i++)
        free(c[i].addr);
    return rv;
}

/* s contains needle, both compared lower-cased with blanks squeezed. */
static bool bounce_contains_squeezed(const char *s, const char *needle)
{
    /* the needle first: when it is short, s is not copied */
    char *b = bounce__strndup(needle, strlen(needle)), *a = NULL;
    bool m = false;
    if (b != NULL) {
        bounce__normalise(b);
        if (strlen(b) >= 8 && (a = bounce__strndup(s, strlen(s))) != NULL) {
            bounce__normalise(a);
            m = strstr(a, b) != NULL;
        }
    }
    free(a);
    free(b);
    return m;
}

/* The reporting MTA's text often says more than its Diagnostic-Code field
 * ("... said: 550 Recipient address rejected. (in reply to RCPT TO
 * command)"): when the text around the address repeats the field, the text
 * is the diagnostic. */
static void bounce_prefer_text(struct bounce_rcpt *x, const char *ctx)
{
    if (ctx[0] == '\0' || strlen(ctx) >= BOUNCE_CTX_MAX || x->diagnostic[0] == '\0')
        return;
    /* only where the address's own line carries the reason (Postfix's
     * "<a@b>: host x said: ..."), not a transcript of several commands */
    const char *a = bounce__stristr(ctx, x->recipient);
    if (a == NULL)
        return;
    const char *ls, *le;
    bounce_line_of(ctx, a, &ls, &le);
    if (!bounce_line_says_more(ls, le, a, strlen(x->recipient)) || !bounce_contains_squeezed(ctx, x->diagnostic))
        return;
    char *d = bounce__strndup(ctx, strlen(ctx));
    if (d != NULL) {
        free((char *)x->diagnostic);
        x->diagnostic = d;
    }
}

/* Sendmail's "Transcript of session follows": the server's replies ("<<<
 * 550-5.7.1 ...") say more than its Diagnostic-Code (often cut at the first
 * line) and go before it; the first client command (">>> DATA") is the one
 * that failed. One recipient only: with several, the transcript cannot be
 * shared out. */
static void bounce_sendmail_transcript(bounce_report *r, const char *t)
{
    char replies[2048] = "";
    size_t rl = 0;
    enum bounce_smtp_cmd first = BOUNCE_CMD_UNKNOWN;
    /* lines are copied with memcpy(): a line ends before any NUL (strcspn) */
    for (const char *l = t; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        if (l[0] == '>' && l[1] == '>' && l[2] == '>' && l[3] == ' ' && first == BOUNCE_CMD_UNKNOWN) {
            size_t n = strcspn(l, "\r\n");
            if (n <= 4)
                continue;
            char line[128];
            size_t k = n < sizeof line - 1 ? n : sizeof line - 1;
            memcpy(line, l, k);
            line[k] = '\0';
            first = bounce__cmd_find(line);
        } else if (l[0] == '<' && l[1] == '<' && l[2] == '<' && l[3] == ' ') {
            size_t n = strcspn(l, "\r\n");
            if (n <= 4)
                continue;
            char line[600];
            size_t k = n - 4 < sizeof line - 1 ? n - 4 : sizeof line - 1;
            memcpy(line, l + 4, k);
            line[k] = '\0';
            if (!strstr(replies, line) && rl + k + 2 < sizeof replies) {
                if (rl > 0)
                    replies[rl++] = ' ';
                memcpy(replies + rl, line, k + 1);
                rl += k;
            }
        }
    }
    if (first != BOUNCE_CMD_UNKNOWN && r->rx[0].cmd == BOUNCE_CMD_UNKNOWN)
        r->rx[0].cmd = first;
    if (rl == 0)
        return;
    struct bounce_rcpt *x = &r->v[0];
    size_t dl = strlen(x->diagnostic);
    char *d = malloc(rl + dl + 2);
    if (d == NULL)
        return;
    memcpy(d, replies, rl);
    d[rl] = ' ';
    memcpy(d + rl + 1, x->diagnostic, dl + 1);
    free((char *)x->diagnostic);
    x->diagnostic = d;
}

int bounce__dsn_context(struct bounce__doc *d, bounce_report *r)
{
    size_t tl = 0;
    const char *t = bounce__human_text(d, &tl);
    if (t == NULL)
        return BOUNCE_ENOMEM;
    /* A Final-Recipient without a local part ("rfc822; @host"): the text
     * names the real one when it names a single address. */
    for (size_t i = 0; i < r->n; i++) {
        const char *a = r->v[i].recipient;
        if (a[0] != '@' && a[0] != '\0')
            continue;
        enum { MAXC = 8 };
        struct bounce_cand cand[MAXC];
        size_t nc = 0;
        bounce_candidates(d, t, cand, MAXC, &nc, true);
        if (nc == 1) {
            free((char *)r->v[i].recipient);
            r->v[i].recipient = cand[0].addr;
            cand[0].addr = NULL;
        }
        for (size_t k = 0; k < nc; k++)
            free(cand[k].addr);
    }
    struct bounce_cand *c = calloc(r->n ? r->n : 1, sizeof *c);
    if (c == NULL)
        return BOUNCE_ENOMEM;
    for (size_t i = 0; i < r->n; i++)
        c[i].addr = (char *)r->v[i].recipient;
    for (size_t i = 0; i < r->n; i++) {
        if (r->ctx[i][0])
            continue;
        const char *a = r->v[i].recipient;
        const char *f = a[0] ? bounce__stristr(t, a) : NULL;
        char *ctx = f ? bounce_context(t, f, c, r->n, a) : bounce__strndup(t, tl < BOUNCE_CTX_MAX ? tl : BOUNCE_CTX_MAX);
        if (ctx == NULL)
            break;
        free(r->ctx[i]);
        r->ctx[i] = ctx;
        if (f != NULL)
            bounce_prefer_text(&r->v[i], ctx);
    }
    free(c);
    if (r->n == 1 && bounce__stristr(t, "Transcript of session follows"))
        bounce_sendmail_transcript(r, t);
    return BOUNCE_OK;
}
