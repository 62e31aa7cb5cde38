/* What the reporting MTA's own wording says. Many MTAs and providers write
 * their non-delivery reports in fixed phrases of their own ("retry timeout
 * exceeded" is Exim giving up, "(state 14)" is Gmail failing at RCPT, "The
 * user(s) account is disabled" is au/EZweb); recognised by their headers,
 * each report gets the MTA's own reading as a hint, and the SMTP command
 * when the MTA names it its own way. The decision itself stays in
 * bounce__decide(), which may still refine a weak hint.
 *
 * The MTA signatures and message tables re-express the knowledge of
 * Sisimai's lhost modules (https://libsisimai.org, BSD 2-Clause,
 * (C) azumakuniyuki). Matching is case-insensitive. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/bounce_internal.h"

struct bounce_msg {
    enum bounce_reason r;
    const char *const *p;
};

/* ---- header tests ----------------------------------------------------------- */

/* The header names whose values the signatures search. */
enum bounce_hn {
    BOUNCE_HN_FROM,
    BOUNCE_HN_SUBJECT,
    BOUNCE_HN_RECEIVED,
    BOUNCE_HN_MSGID,
    BOUNCE_HN_REPLYTO,
    BOUNCE_HN_CTYPE,
    BOUNCE_HN_COUNT
};
static const char *const bounce_hn_names[BOUNCE_HN_COUNT] = {"From",       "Subject",  "Received",
                                                              "Message-ID", "Reply-To", "Content-Type"};

/* Every value of one header name, ASCII lower-cased, one a line. The
 * signatures ask some twenty times per report whether a From, Subject or
 * Received contains a phrase; one exact search of this text answers for all
 * the values at once (a case-folding search of each value paid its set-up
 * per value, and most values are short). */
struct bounce_hvals {
    bool done;          /* the fields below are set */
    const char *first;  /* the first value as received, or NULL: no such header */
    char *low;          /* the values, or NULL: none, or out of memory */
    size_t len;         /* of low */
    size_t first_len;   /* of the first value, the start of low */
};

/* The state of one question to the readers: the report, and its headers'
 * values as bounce_hv() collects them on first use (freed by bounce_rdr_free). */
struct bounce_rdr {
    const struct bounce__doc *d;
    bounce_report *r;
    const char *text;     /* human-readable part of the report, as received */
    struct bounce_hvals hv[BOUNCE_HN_COUNT];
};

static void bounce_rdr_free(struct bounce_rdr *k)
{
    for (size_t i = 0; i < BOUNCE_HN_COUNT; i++)
        free(k->hv[i].low);
}

static struct bounce_hvals *bounce_hv(struct bounce_rdr *k, enum bounce_hn hn)
{
    struct bounce_hvals *hv = &k->hv[hn];
    if (hv->done)
        return hv;
    hv->done = true;
    const char *name = bounce_hn_names[hn];
    uint32_t key = bounce__hdr_key(name);
    size_t i = 0, cap = 0;
    bool whole = true;
    for (const char *v; (v = bounce__hdrs_next(&k->d->top, name, key, &i)) != NULL;) {
        size_t n = strlen(v);
        if (hv->first == NULL) {
            hv->first = v;
            hv->first_len = n;
        }
        if (!whole)
            continue;
        if (n + 2 > cap - hv->len) { /* the value, its line break, the NUL */
            size_t need = hv->len + n + 2;
            size_t ncap = need <= SIZE_MAX / 2 ? 2 * need : need;
            char *p = realloc(hv->low, ncap);
            if (p == NULL) {
                whole = false; /* bounce_has_n() reads the values one by one */
                continue;
            }
            hv->low = p;
            cap = ncap;
        }
        memcpy(hv->low + hv->len, v, n);
        hv->len += n;
        hv->low[hv->len++] = '\n';
    }
    if (!whole) {
        free(hv->low);
        hv->low = NULL;
        hv->len = 0;
    } else if (hv->low != NULL) {
        hv->low[hv->len] = '\0';
        bounce__lower(hv->low); /* folds as bounce__memistr() does: ASCII only */
    }
    return hv;
}

/* The first value of the header, or "". */
static const char *bounce_top(struct bounce_rdr *k, enum bounce_hn hn)
{
    const char *v = bounce_hv(k, hn)->first;
    return v ? v : "";
}

/* A value of the header contains needle (nl bytes), case ignored (as
 * bounce__stristr). needle: in lower case, not empty, no line break. */
static bool bounce_has_n(struct bounce_rdr *k, enum bounce_hn hn, const char *needle, size_t nl)
{
    struct bounce_hvals *hv = bounce_hv(k, hn);
    if (hv->low != NULL)
        return bounce__memmem(hv->low, hv->len, needle, nl) != NULL;
    if (hv->first == NULL)
        return false;
    const char *name = bounce_hn_names[hn];
    uint32_t key = bounce__hdr_key(name);
    size_t i = 0;
    for (const char *v; (v = bounce__hdrs_next(&k->d->top, name, key, &i)) != NULL;)
        if (bounce__stristr(v, needle))
            return true;
    return false;
}

/* The same for a string literal: its length is known here (a strlen()
 * per search was a tenth of the signatures' cost). */
#define bounce_has(k, hn, lit) bounce_has_n(k, hn, BOUNCE_LIT("" lit ""))

/* The first value of the header contains needle (as bounce_has). */
static bool bounce_first_has(struct bounce_rdr *k, enum bounce_hn hn, const char *needle)
{
    const struct bounce_hvals *hv = bounce_hv(k, hn);
    if (hv->low != NULL)
        return bounce__memmem(hv->low, hv->first_len, needle, strlen(needle)) != NULL;
    return hv->first != NULL && bounce__stristr(hv->first, needle) != NULL;
}

/* The first value of a header that no signature searches, or "". */
static const char *bounce_top_other(const struct bounce_rdr *k, const char *name)
{
    const char *v = bounce__hdrs_get(&k->d->top, name);
    return v ? v : "";
}

static bool bounce_has_hdr(const struct bounce_rdr *k, const char *name)
{
    return bounce__hdrs_get(&k->d->top, name) != NULL;
}

static bool bounce_subj_starts(struct bounce_rdr *k, const char *prefix)
{
    const char *s = bounce_top(k, BOUNCE_HN_SUBJECT);
    while (*s == ' ')
        s++;
    return bounce__starts_ci(s, prefix);
}

/* ---- per-MTA readings --------------------------------------------------------- */

/* The recipient's text: its diagnostic, else the text around its address. */
static const char *bounce_rtext(const struct bounce_rdr *k, size_t i)
{
    const char *t = k->r->v[i].diagnostic;
    return t[0] ? t : k->r->ctx[i];
}

/* First reason of the table whose phrase is in text (case and runs of
 * blanks ignored). */
static enum bounce_reason bounce_msgs_find(const char *text, const struct bounce_msg *m)
{
    size_t n = strlen(text);
    char *low = bounce__strndup(text, n < BOUNCE_DIAG_MAX ? n : BOUNCE_DIAG_MAX);
    if (low == NULL)
        return BOUNCE_R_NONE;
    bounce__normalise(low);
    enum bounce_reason r = BOUNCE_R_NONE;
    for (; m->p != NULL && r == BOUNCE_R_NONE; m++)
        for (const char *const *p = m->p; *p; p++)
            if (strstr(low, *p)) {
                r = m->r;
                break;
            }
    free(low);
    return r;
}

/* Sets the hint of every recipient whose text matches the table. */
static void bounce_hint_all(const struct bounce_rdr *k, const struct bounce_msg *m)
{
    for (size_t i = 0; i < k->r->n; i++) {
        if (k->r->rx[i].hint != BOUNCE_R_NONE)
            continue;
        enum bounce_reason h = bounce_msgs_find(bounce_rtext(k, i), m);
        if (h != BOUNCE_R_NONE)
            k->r->rx[i].hint = h;
    }
}

/* Exim: https://www.exim.org (deliver.c, the bounce message texts) */
static bool bounce_is_exim(struct bounce_rdr *k)
{
    static const char *const titles[] = {"delivery status notification", "mail delivery failed", "mail failure",
                                         "message frozen", "warning: message ", "error(s) in forwarding or filtering",
                                         NULL};
    int score = 0;
    if (bounce_has(k, BOUNCE_HN_FROM, "mail delivery system"))
        score++;
    const char *mid = bounce_top(k, BOUNCE_HN_MSGID);
    /* <E1Abcde-000Xyz-Q1@host>: Exim's message id */
    if (mid[0] == '<' && strlen(mid) > 18 && mid[8] == '-' && mid[18] == '@')
        score++;
    for (const char *const *t = titles; *t; t++)
        if (bounce_first_has(k, BOUNCE_HN_SUBJECT, *t)) {
            score++;
            break;
        }
    bool third = bounce_has_hdr(k, "X-MX-Bounce") || bounce_has_hdr(k, "X-MXL-Hash") ||
                 bounce_has_hdr(k, "X-MXL-NoteHash") || bounce__starts_ci(mid, "<mxl~");
    return score >= 2 || third;
}

static const struct bounce_msg bounce_t_exim_msgs[] = {
    {BOUNCE_R_USERUNKNOWN, PH("user not found")},
    {BOUNCE_R_HOSTUNKNOWN, PH("all host address lookups failed permanently",
                              "all relevant mx records point to non-existent hosts", "unrouteable address")},
    {BOUNCE_R_MAILBOXFULL, PH("mailbox is full", "error: quota exceed")},
    {BOUNCE_R_NOTACCEPT, PH("an mx or srv record indicated no smtp service",
                            "no host found for existing smtp connection")},
    {BOUNCE_R_SYNTAXERROR, PH("angle-brackets nested too deep", "expected word or \"<\"",
                              "domain missing in source-routed address", "malformed address:")},
    {BOUNCE_R_SYSTEMERROR, PH("delivery to file forbidden", "delivery to pipe forbidden", "local delivery failed",
                              "lmtp error after ")},
    {BOUNCE_R_CONTENTERROR, PH("too many \"received\" headers")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_exim(struct bounce_rdr *k)
{
    static const char *const delayed[] = {"retry timeout exceeded", "no action is required on your part",
                                          "retry time not reached for any host after a long failure period",
                                          "all hosts have been failing for a long time and were last tried",
                                          "delay reason: ", "has been frozen", "was frozen on arrival by ", NULL};
    for (size_t i = 0; i < k->r->n; i++) {
        struct bounce__rx *rx = &k->r->rx[i];
        const char *t = bounce_rtext(k, i);
        if (bounce__stristr(t, "smtp error from remote ") || bounce__stristr(t, "lmtp error after ")) {
            enum bounce_smtp_cmd c = bounce__cmd_find(t);
            if (c != BOUNCE_CMD_UNKNOWN)
                rx->cmd = c;
        }
        if (rx->hint != BOUNCE_R_NONE)
            continue;
        if (rx->cmd == BOUNCE_CMD_HELO)
            rx->hint = BOUNCE_R_BLOCKED;
        else if (rx->cmd == BOUNCE_CMD_MAIL)
            rx->hint = BOUNCE_R_ONHOLD;
        else if ((rx->hint = bounce_msgs_find(t, bounce_t_exim_msgs)) != BOUNCE_R_NONE)
            ;
        else if (bounce__phrase_any_ci(t, delayed))
            rx->hint = BOUNCE_R_EXPIRED;
        else if (bounce__stristr(t, "pipe to |"))
            rx->hint = BOUNCE_R_MAILERERROR;
    }
}

/* DragonFly Mail Agent (dma) */
static bool bounce_is_dragonfly(struct bounce_rdr *k)
{
    return bounce_has(k, BOUNCE_HN_RECEIVED, "(dragonfly mail agent");
}

static const struct bounce_msg bounce_t_dragonfly_msgs[] = {
    {BOUNCE_R_EXPIRED, PH("could not deliver for the last ")},
    {BOUNCE_R_HOSTUNKNOWN, PH("dns lookup failure: host ")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_dragonfly(struct bounce_rdr *k)
{
    bounce_hint_all(k, bounce_t_dragonfly_msgs);
}

/* Gmail (mailer-daemon@googlemail.com), G Suite relays and Google Groups */
static bool bounce_is_google(struct bounce_rdr *k)
{
    return bounce_has(k, BOUNCE_HN_FROM, "<mailer-daemon@googlemail.com>") &&
           bounce_has(k, BOUNCE_HN_SUBJECT, "delivery status notification");
}

static const struct bounce_msg bounce_t_google_msgs[] = {
    {BOUNCE_R_EXPIRED, PH("dns error: could not contact dns servers",
                          "delivery to the following recipient has been delayed",
                          "the recipient server did not accept our requests to connect")},
    {BOUNCE_R_HOSTUNKNOWN, PH("dns error: domain name not found",
                              "dns error: dns server returned answer with no data")},
    {BOUNCE_R_NETWORKERROR, PH(" had no relevant answers.", " responded with code nxdomain")},
    {BOUNCE_R_NOTACCEPT, PH("null mx")},
    {BOUNCE_R_USERUNKNOWN, PH("because the address couldn't be found. check for typos")},
    {BOUNCE_R_NONE, NULL},
};
static const struct { int state; enum bounce_smtp_cmd c; enum bounce_reason r; } bounce_t_google_states[] = {
    {6, BOUNCE_CMD_MAIL, BOUNCE_R_FAILEDSTARTTLS}, {8, BOUNCE_CMD_AUTH, BOUNCE_R_SYSTEMERROR},
    {9, BOUNCE_CMD_AUTH, BOUNCE_R_FAILEDSTARTTLS}, {12, BOUNCE_CMD_AUTH, BOUNCE_R_NORELAYING},
    {13, BOUNCE_CMD_HELO, BOUNCE_R_BLOCKED},      {14, BOUNCE_CMD_RCPT, BOUNCE_R_USERUNKNOWN},
    {15, BOUNCE_CMD_DATA, BOUNCE_R_FILTERED},     {17, BOUNCE_CMD_DATA, BOUNCE_R_FILTERED},
    {18, BOUNCE_CMD_DATA, BOUNCE_R_FILTERED},
};
static void bounce_rd_google(struct bounce_rdr *k)
{
    /* Google Groups refuses a post: a list of possible causes, as bullets */
    if (bounce__stristr(k->text, "Google Groups") && bounce_has_hdr(k, "X-Failed-Recipients")) {
        int bullets = 0;
        for (const char *p = strchr(k->text, '\n'); p != NULL; p = strchr(p + 1, '\n'))
            if (p[1] == '*' || (p[1] == ' ' && p[2] == '*'))
                bullets++;
        for (size_t i = 0; i < k->r->n; i++)
            if (k->r->rx[i].hint == BOUNCE_R_NONE)
                k->r->rx[i].hint = bullets >= 4 ? BOUNCE_R_REJECTED : BOUNCE_R_ONHOLD;
        return;
    }
    /* "(state N)": where in the SMTP dialogue Gmail's client failed */
    for (size_t i = 0; i < k->r->n; i++) {
        struct bounce__rx *rx = &k->r->rx[i];
        const char *t = bounce_rtext(k, i);
        const char *s = bounce__stristr(t, " (state ");
        if (s != NULL) {
            int n = atoi(s + 8);
            for (size_t j = 0; j < sizeof bounce_t_google_states / sizeof bounce_t_google_states[0]; j++)
                if (bounce_t_google_states[j].state == n) {
                    rx->cmd = bounce_t_google_states[j].c;
                    if (rx->hint == BOUNCE_R_NONE)
                        rx->hint = bounce_t_google_states[j].r;
                }
        }
        if (rx->hint == BOUNCE_R_NONE)
            rx->hint = bounce_msgs_find(t, bounce_t_google_msgs);
        if (rx->hint == BOUNCE_R_NONE)
            continue;
        /* a specific status in the text says more than Gmail's own words */
        char st[16];
        if (bounce__status_find(t, st, sizeof st) && strstr(st, ".0") == NULL) {
            enum bounce_reason sr = bounce__status_reason(st);
            rx->hint = sr;
        }
    }
}

/* IMail Server (Ipswitch) */
static bool bounce_is_imail(struct bounce_rdr *k)
{
    return bounce_subj_starts(k, "Undeliverable Mail ") || bounce__starts_ci(bounce_top_other(k, "X-Mailer"), "<SMTP32 v");
}

static const struct bounce_msg bounce_t_imail_msgs[] = {
    {BOUNCE_R_HOSTUNKNOWN, PH("unknown host")},
    {BOUNCE_R_USERUNKNOWN, PH("unknown user", "invalid final delivery userid")},
    {BOUNCE_R_MAILBOXFULL, PH("user mailbox exceeds allowed size")},
    {BOUNCE_R_VIRUSDETECTED, PH("requested action not taken: virus detected")},
    {BOUNCE_R_SPAMDETECTED, PH("blacklisted url in message")},
    {BOUNCE_R_EXPIRED, PH("delivery failed ")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_imail(struct bounce_rdr *k)
{
    bounce_hint_all(k, bounce_t_imail_msgs);
}

/* OpenSMTPD */
static bool bounce_is_opensmtpd(struct bounce_rdr *k)
{
    /* two of subject, sender and relay; the relay alone suffices */
    return (bounce_has(k, BOUNCE_HN_SUBJECT, "delivery status notification") &&
            bounce_has(k, BOUNCE_HN_FROM, "mailer daemon <")) ||
           bounce_has(k, BOUNCE_HN_RECEIVED, " (opensmtpd) with ");
}

static const struct bounce_msg bounce_t_opensmtpd_msgs[] = {
    {BOUNCE_R_EXPIRED, PH("envelope expired")},
    {BOUNCE_R_SECURITYERROR, PH("could not retrieve credentials")},
    {BOUNCE_R_HOSTUNKNOWN, PH("invalid domain name", "domain does not exist")},
    {BOUNCE_R_NETWORKERROR, PH("address family mismatch on destination mxs", "all routes to destination blocked",
                               "bad dns lookup error code", "could not retrieve source address", "loop detected",
                               "network error on destination mxs", "no valid route to remote mx",
                               "no valid route to destination", "temporary failure in mx lookup")},
    {BOUNCE_R_NOTACCEPT, PH("destination seem to reject all mails", "no mx found for domain",
                            "no mx found for destination")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_opensmtpd(struct bounce_rdr *k)
{
    bounce_hint_all(k, bounce_t_opensmtpd_msgs);
}

/* Zoho Mail */
static bool bounce_is_zoho(struct bounce_rdr *k)
{
    return bounce_has_hdr(k, "X-ZohoMail");
}

static const struct bounce_msg bounce_t_zoho_msgs[] = {
    {BOUNCE_R_EXPIRED, PH("host not reachable")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_zoho(struct bounce_rdr *k)
{
    bounce_hint_all(k, bounce_t_zoho_msgs);
}

/* GMX / web.de */
static bool bounce_is_gmx(struct bounce_rdr *k)
{
    return bounce_has_hdr(k, "X-GMX-Antispam");
}

static const struct bounce_msg bounce_t_gmx_msgs[] = {
    {BOUNCE_R_EXPIRED, PH("delivery retry timeout exceeded")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_gmx(struct bounce_rdr *k)
{
    bounce_hint_all(k, bounce_t_gmx_msgs);
}

/* Courier MTA */
static bool bounce_is_courier(struct bounce_rdr *k)
{
    return bounce_has(k, BOUNCE_HN_FROM, "courier mail server at ") ||
           bounce_has(k, BOUNCE_HN_SUBJECT, "notice: mail delivery status.") ||
           bounce_has(k, BOUNCE_HN_SUBJECT, "warning: delayed mail.") ||
           bounce__starts_ci(bounce_top(k, BOUNCE_HN_MSGID), "<courier.");
}

static const struct bounce_msg bounce_t_courier_msgs[] = {
    {BOUNCE_R_HOSTUNKNOWN, PH("no such domain.")},
    {BOUNCE_R_SYSTEMERROR, PH("this domain's dns violates rfc 1035.")},
    {BOUNCE_R_NETWORKERROR, PH("dns lookup failed.")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_courier(struct bounce_rdr *k)
{
    bounce_hint_all(k, bounce_t_courier_msgs);
    /* ">>> RCPT TO:<...>" in Courier's transcript names the command */
    enum bounce_smtp_cmd c = BOUNCE_CMD_UNKNOWN;
    for (const char *p = strstr(k->text, ">>> "); p != NULL; p = strstr(p + 1, ">>> ")) {
        char line[128];
        size_t n = strcspn(p, "\n");
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line - 1 ? n : sizeof line - 1), p);
        enum bounce_smtp_cmd lc = bounce__cmd_find(line);
        if (lc != BOUNCE_CMD_UNKNOWN)
            c = lc;
    }
    for (size_t i = 0; i < k->r->n && c != BOUNCE_CMD_UNKNOWN; i++)
        if (k->r->rx[i].cmd == BOUNCE_CMD_UNKNOWN)
            k->r->rx[i].cmd = c;
}

/* qmail and its clones (qmail-send.c: "Hi. This is the qmail-send program") */
static bool bounce_is_qmail(struct bounce_rdr *k)
{
    const char *s = bounce_top(k, BOUNCE_HN_SUBJECT);
    if (strcasecmp(s, "failure notice") == 0)
        return true;
    /* both phrases start "(qmail ", which most reports lack in any case */
    if (!bounce_has(k, BOUNCE_HN_RECEIVED, "(qmail "))
        return false;
    uint32_t key = bounce__hdr_key("Received");
    size_t i = 0;
    for (const char *v; (v = bounce__hdrs_next(&k->d->top, "Received", key, &i)) != NULL;)
        if (bounce__phrase_in(v, "(qmail *invoked for bounce)") || bounce__phrase_in(v, "(qmail *invoked from *network)"))
            return true;
    return false;
}

static const struct { enum bounce_smtp_cmd c; const char *const *p; } bounce_t_qmail_cmds[] = {
    {BOUNCE_CMD_CONNECT, PH(" but greeting failed.")},
    {BOUNCE_CMD_HELO, PH(" but my name was rejected.")},
    {BOUNCE_CMD_MAIL, PH(" but sender was rejected.")},
    {BOUNCE_CMD_RCPT, PH(" does not like recipient.")},
    {BOUNCE_CMD_DATA, PH(" failed on data command", " failed after i sent the message")},
};
static const struct bounce_msg bounce_t_qmail_ldap[] = {
    {BOUNCE_R_EXCEEDLIMIT, PH("the message exeeded the maximum size the user accepts")},
    {BOUNCE_R_SUSPEND, PH("mailaddress is administrativly disabled", "mailaddress is administrativley disabled",
                          "mailaddress is administratively disabled", "mailaddress is administrativeley disabled")},
    {BOUNCE_R_SYSTEMERROR, PH("automatic homedir creator crashed", "illegal value in ldap attribute",
                              "ldap attribute is not given but mandatory",
                              "timeout while performing search on ldap server",
                              "too many results returned but needs to be unique",
                              "permanent error while executing qmail-forward",
                              "temporary error in automatic homedir creation",
                              "temporary error while executing qmail-forward", "temporary failure in ldap lookup",
                              "unable to contact ldap server", "unable to login into ldap server, bad credentials")},
    {BOUNCE_R_USERUNKNOWN, PH("sorry, no mailbox here by that name")},
    {BOUNCE_R_NONE, NULL},
};
static const struct bounce_msg bounce_t_qmail_msgs[] = {
    {BOUNCE_R_HOSTUNKNOWN, PH("sorry, i couldn't find any host ")},
    {BOUNCE_R_MAILBOXFULL, PH("disk quota exceeded")},
    {BOUNCE_R_MESGTOOBIG, PH("message size exceeds fixed maximum message size:")},
    {BOUNCE_R_NETWORKERROR, PH("sorry, i wasn't able to establish an smtp connection",
                               "sorry. although i'm listed as a best-preference mx or a for that host")},
    {BOUNCE_R_NOTACCEPT, PH("sorry, i couldn't find a mail exchanger or ip address")},
    {BOUNCE_R_SYSTEMERROR, PH("bad interpreter: no such file or directory", "system error", "unable to")},
    {BOUNCE_R_SYSTEMFULL, PH("requested action not taken: mailbox unavailable (not enough free space)")},
    {BOUNCE_R_USERUNKNOWN, PH("no mailbox here by that name")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_qmail(struct bounce_rdr *k)
{
    for (size_t i = 0; i < k->r->n; i++) {
        struct bounce__rx *rx = &k->r->rx[i];
        const char *t = bounce_rtext(k, i);
        for (size_t j = 0; j < sizeof bounce_t_qmail_cmds / sizeof bounce_t_qmail_cmds[0]; j++)
            if (bounce__phrase_any_ci(t, bounce_t_qmail_cmds[j].p))
                rx->cmd = bounce_t_qmail_cmds[j].c;
        if (rx->hint != BOUNCE_R_NONE)
            continue;
        if (rx->cmd == BOUNCE_CMD_CONNECT || rx->cmd == BOUNCE_CMD_HELO) {
            rx->hint = BOUNCE_R_BLOCKED; /* the remote side refused us, not the message */
            continue;
        }
        /* "does not like recipient" and "too long in the queue" together: Sisimai leaves it on hold */
        if (bounce__stristr(t, " does not like recipient.") &&
            bounce__stristr(t, "this message has been in the queue too long.")) {
            rx->hint = BOUNCE_R_ONHOLD;
            continue;
        }
        enum bounce_reason h = bounce_msgs_find(t, bounce_t_qmail_msgs);
        if (h == BOUNCE_R_NONE)
            h = bounce_msgs_find(t, bounce_t_qmail_ldap);
        if (h == BOUNCE_R_NONE && bounce__stristr(t, "this message has been in the queue too long."))
            h = BOUNCE_R_EXPIRED;
        rx->hint = h;
    }
}

/* KDDI (au) */
static bool bounce_is_kddi(struct bounce_rdr *k)
{
    return bounce_has(k, BOUNCE_HN_FROM, "no-reply@.") || bounce_has(k, BOUNCE_HN_FROM, ".dion.ne.jp") ||
           bounce_has(k, BOUNCE_HN_REPLYTO, "no-reply@app.auone-net.jp") || bounce_has(k, BOUNCE_HN_RECEIVED, "ezweb.ne.jp (") ||
           bounce_has(k, BOUNCE_HN_RECEIVED, ".au.com (");
}

static const struct bounce_msg bounce_t_kddi_msgs[] = {
    {BOUNCE_R_MAILBOXFULL, PH("as their mailbox is full")},
    {BOUNCE_R_NORELAYING, PH("due to the following smtp relay error")},
    {BOUNCE_R_HOSTUNKNOWN, PH("as the remote domain doesnt exist")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_kddi(struct bounce_rdr *k)
{
    bounce_hint_all(k, bounce_t_kddi_msgs);
}

/* au (EZweb) */
static bool bounce_is_ezweb(struct bounce_rdr *k)
{
    int score = bounce_has(k, BOUNCE_HN_FROM, "postmaster@ezweb.ne.jp") + bounce_has(k, BOUNCE_HN_FROM, "postmaster@au.com") +
                (strcasecmp(bounce_top(k, BOUNCE_HN_SUBJECT), "Mail System Error - Returned Mail") == 0) +
                (bounce_has(k, BOUNCE_HN_RECEIVED, "ezweb.ne.jp (ezweb mail) with") ||
                 bounce_has(k, BOUNCE_HN_RECEIVED, ".au.com (")) +
                bounce_has(k, BOUNCE_HN_MSGID, ".ezweb.ne.jp>") + bounce_has(k, BOUNCE_HN_MSGID, ".au.com>");
    return score >= 2;
}

static const struct bounce_msg bounce_t_ezweb_msgs[] = {
    {BOUNCE_R_EXPIRED, PH("your message was not delivered within ")},
    {BOUNCE_R_MAILBOXFULL, PH("the user(s) account is temporarily over quota")},
    {BOUNCE_R_ONHOLD, PH("each of the following recipients was rejected by a remote mail server")},
    {BOUNCE_R_SUSPEND, PH("the user(s) account is disabled.", "the user(s) account is temporarily limited.")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_ezweb(struct bounce_rdr *k)
{
    bool spam = strcasecmp(bounce_top_other(k, "X-SPASIGN"), "NG") == 0;
    for (size_t i = 0; i < k->r->n; i++) {
        struct bounce__rx *rx = &k->r->rx[i];
        if (rx->hint != BOUNCE_R_NONE)
            continue;
        /* the recipient's own filter (X-SPASIGN: NG) refused it */
        rx->hint = spam ? BOUNCE_R_FILTERED : bounce_msgs_find(k->text, bounce_t_ezweb_msgs);
        const char *rc = k->r->v[i].recipient;
        if (rx->hint == BOUNCE_R_NONE && !bounce__stristr(rc, "@ezweb.ne.jp") && !bounce__stristr(rc, "@au.com")) {
            /* a line that starts with the address: the remote domain refused it */
            const char *t = bounce_rtext(k, i);
            while (isspace((unsigned char)*t))
                t++;
            if (*t == '<')
                rx->hint = BOUNCE_R_USERUNKNOWN;
        }
    }
}

/* BIGLOBE and its partner ISPs */
static bool bounce_is_biglobe(struct bounce_rdr *k)
{
    static const char *const isp[] = {"@biglobe.ne.jp", "@inacatv.ne.jp", "@tmtv.ne.jp", "@ttv.ne.jp", NULL};
    for (const char *const *p = isp; *p; p++)
        if (bounce_has_n(k, BOUNCE_HN_FROM, *p, strlen(*p)))
            return true;
    return false;
}

static const struct bounce_msg bounce_t_biglobe_msgs[] = {
    {BOUNCE_R_FILTERED, PH("mail delivery failed... user unknown")},
    {BOUNCE_R_MAILBOXFULL, PH("the number of messages in recipient's mailbox exceeded the local limit.")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_biglobe(struct bounce_rdr *k)
{
    for (size_t i = 0; i < k->r->n; i++)
        if (k->r->rx[i].hint == BOUNCE_R_NONE)
            k->r->rx[i].hint = bounce_msgs_find(k->text, bounce_t_biglobe_msgs);
}

/* IBM/HCL Domino and Lotus Notes */
static bool bounce_is_domino(struct bounce_rdr *k)
{
    return bounce_subj_starts(k, "DELIVERY FAILURE:") || bounce_subj_starts(k, "DELIVERY_FAILURE:");
}

static const struct bounce_msg bounce_t_domino_msgs[] = {
    {BOUNCE_R_FILTERED, PH("cannot route mail to user")},
    {BOUNCE_R_SYSTEMERROR, PH("several matches found in domino directory")},
    {BOUNCE_R_USERUNKNOWN, PH("not listed in domino directory", "not listed in public name & address book",
                              "no se encuentra en el directorio de domino", "dans l'annuaire domino",
                              "domino ディレクトリには見つかりません")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_domino(struct bounce_rdr *k)
{
    for (size_t i = 0; i < k->r->n; i++)
        if (k->r->rx[i].hint == BOUNCE_R_NONE) {
            enum bounce_reason h = bounce_msgs_find(bounce_rtext(k, i), bounce_t_domino_msgs);
            k->r->rx[i].hint = h != BOUNCE_R_NONE ? h : bounce_msgs_find(k->text, bounce_t_domino_msgs);
        }
}

static bool bounce_is_notes(struct bounce_rdr *k)
{
    return bounce_subj_starts(k, "Undeliverable message");
}

static const struct bounce_msg bounce_t_notes_msgs[] = {
    {BOUNCE_R_NETWORKERROR, PH("message has exceeded maximum hop count")},
    {BOUNCE_R_USERUNKNOWN, PH("user not listed in public name & address book", "ディレクトリのリストにありません")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_notes(struct bounce_rdr *k)
{
    for (size_t i = 0; i < k->r->n; i++)
        if (k->r->rx[i].hint == BOUNCE_R_NONE)
            k->r->rx[i].hint = bounce_msgs_find(k->text, bounce_t_notes_msgs);
}

/* Microsoft Exchange Server 2003 and older: MSEXCH error codes */
static bool bounce_is_exchange2003(struct bounce_rdr *k)
{
    const char *mailer = bounce_top_other(k, "X-Mailer");
    return bounce_has_hdr(k, "X-MS-Embedded-Report") || bounce__starts_ci(mailer, "Internet Mail Service (") ||
           bounce__starts_ci(mailer, "Microsoft Exchange Server Internet Mail Connector") ||
           bounce__starts_ci(bounce_top_other(k, "X-MimeOLE"), "Produced By Microsoft Exchange") ||
           bounce_has(k, BOUNCE_HN_RECEIVED, " with internet mail service (");
}

static const struct bounce_msg bounce_t_exchange2003_codes[] = {
    {BOUNCE_R_USERUNKNOWN, PH("000c05a6")},                 /* unknown recipient */
    {BOUNCE_R_FILTERED, PH("000c0595")},                    /* ambiguous recipient */
    {BOUNCE_R_SYSTEMERROR, PH("00010256", "000d06b5")},     /* too many recipients, no proxy */
    {BOUNCE_R_NETWORKERROR, PH("00120270")},                /* too many hops */
    {BOUNCE_R_CONTENTERROR, PH("00050311", "000502cc")},    /* conversion failed */
    {BOUNCE_R_SECURITYERROR, PH("000b0981")},               /* AUTH not supported */
    {BOUNCE_R_ONHOLD, PH("000b099c", "000b09aa", "000b09b6")}, /* the remote MTA's own error */
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_exchange2003(struct bounce_rdr *k)
{
    for (size_t i = 0; i < k->r->n; i++) {
        if (k->r->rx[i].hint != BOUNCE_R_NONE)
            continue;
        const char *t = bounce_rtext(k, i);
        const char *m = bounce__stristr(t, "msexch:");
        k->r->rx[i].hint = m ? bounce_msgs_find(m, bounce_t_exchange2003_codes) : BOUNCE_R_NONE;
    }
}

/* Microsoft Exchange 2007 and later, Office 365: "RESOLVER.ADR.RecipNotFound;" */
static bool bounce_is_exchange2007(struct bounce_rdr *k)
{
    static const char *const titles[] = {"undeliverable", "non_remis_", "non remis ", "non recapitabile",
                                         "olevererbart", NULL};
    int score = 0;
    for (const char *const *t = titles; *t; t++)
        if (bounce_first_has(k, BOUNCE_HN_SUBJECT, *t)) {
            score++;
            break;
        }
    if (bounce_has(k, BOUNCE_HN_FROM, "postmaster@outlook.com") || bounce_has(k, BOUNCE_HN_FROM, ".onmicrosoft.com"))
        score++;
    if (bounce_has_hdr(k, "Content-Language"))
        score++;
    /* the text's signs cost a scan of it each: asked only while they can
     * still decide (the last one only from one sign to two) */
    if (score < 2 && (strstr(k->text, " RESOLVER.") || strstr(k->text, " QUEUE.")))
        score++;
    if (score == 1 &&
        (bounce__stristr(k->text, "Diagnostic information for administrators") || strstr(k->text, "Error Details")))
        score++;
    return score >= 2;
}

static const struct bounce_msg bounce_t_exchange2007_codes[] = {
    {BOUNCE_R_HOSTUNKNOWN, PH("smtpsend.dns.nonexistentdomain;")},
    {BOUNCE_R_NETWORKERROR, PH("smtpsend.dns.mxloopback;")},
    {BOUNCE_R_SYSTEMERROR, PH("resolver.adr.badprimary;", "resolver.adr.invalidinsmtp;", "resolver.adr.ambiguous;")},
    {BOUNCE_R_USERUNKNOWN, PH("resolver.adr.recipnotfound;", "resolver.adr.recipientnotfound;",
                              "resolver.adr.exrecipnotfound;")},
    {BOUNCE_R_TOOMANYCONN, PH("resolver.adr.reciplimit;")},
    {BOUNCE_R_SECURITYERROR, PH("resolver.rst.authrequired;")},
    {BOUNCE_R_REJECTED, PH("resolver.rst.notauthorized;")},
    {BOUNCE_R_EXCEEDLIMIT, PH("resolver.rst.recipsizelimit;")},
    {BOUNCE_R_EXPIRED, PH("queue.expired;")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_exchange2007(struct bounce_rdr *k)
{
    bounce_hint_all(k, bounce_t_exchange2007_codes);
}

/* fml mailing list manager */
static bool bounce_is_fml(struct bounce_rdr *k)
{
    return bounce_has_hdr(k, "X-MLServer") && bounce_has(k, BOUNCE_HN_FROM, "-admin@") &&
           bounce_has(k, BOUNCE_HN_MSGID, ".fml");
}

static const struct bounce_msg bounce_t_fml_body[] = {
    {BOUNCE_R_REJECTED, PH(" header may cause mail loop", "not member article from ", "reject mail from ",
                           "reject spammers:", "you are not a member of this mailing list")},
    {BOUNCE_R_SYSTEMERROR, PH(" has detected a loop condition so that", "duplicated message-id",
                              "loop back warning:")},
    {BOUNCE_R_SECURITYERROR, PH("security alert:")},
    {BOUNCE_R_NONE, NULL},
};
static const struct bounce_msg bounce_t_fml_title[] = {
    {BOUNCE_R_REJECTED, PH(" are not member", "not member article from ", "reject mail ",
                           "spam mail from a spammer is rejected")},
    {BOUNCE_R_SYSTEMERROR, PH("fml system error message", "loop alert: ", "loop back warning: ",
                              "warning: unix from loop")},
    {BOUNCE_R_SECURITYERROR, PH("security alert")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_fml(struct bounce_rdr *k)
{
    for (size_t i = 0; i < k->r->n; i++) {
        if (k->r->rx[i].hint != BOUNCE_R_NONE)
            continue;
        enum bounce_reason h = bounce_msgs_find(k->text, bounce_t_fml_body);
        k->r->rx[i].hint = h != BOUNCE_R_NONE ? h : bounce_msgs_find(bounce_top(k, BOUNCE_HN_SUBJECT), bounce_t_fml_title);
    }
}

/* Trend Micro InterScan MSS */
static bool bounce_is_interscan(struct bounce_rdr *k)
{
    return bounce__starts_ci(bounce_top(k, BOUNCE_HN_FROM), "\"InterScan") ||
           bounce_has(k, BOUNCE_HN_SUBJECT, "mail could not be delivered") ||
           bounce_has(k, BOUNCE_HN_SUBJECT, "メッセージを配信できません。") ||
           bounce_has(k, BOUNCE_HN_SUBJECT, "メール配信に失敗しました");
}

static void bounce_rd_interscan(struct bounce_rdr *k)
{
    for (size_t i = 0; i < k->r->n; i++) {
        struct bounce__rx *rx = &k->r->rx[i];
        const char *t = bounce_rtext(k, i);
        /* "Sent <<< RCPT TO:<...>" names the command, "Received >>> 550 ..." the reply */
        const char *s = bounce__stristr(k->text, "Sent <<< ");
        if (s != NULL) {
            char line[128];
            size_t n = strcspn(s, "\n");
            snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line - 1 ? n : sizeof line - 1), s);
            enum bounce_smtp_cmd c = bounce__cmd_find(line);
            if (c != BOUNCE_CMD_UNKNOWN)
                rx->cmd = c;
        }
        if (rx->hint == BOUNCE_R_NONE && bounce__stristr(t, "Unable to deliver"))
            rx->hint = BOUNCE_R_USERUNKNOWN;
    }
}

/* Verizon Wireless (vtext.com, vzwpix.com) */
static bool bounce_is_verizon(struct bounce_rdr *k)
{
    const char *f = bounce_top(k, BOUNCE_HN_FROM);
    return bounce_first_has(k, BOUNCE_HN_FROM, "post_master@vtext.com") || bounce__phrase_in(f, "sysadmin@*.vzwpix.com");
}

static const struct bounce_msg bounce_t_verizon_msgs[] = {
    {BOUNCE_R_USERUNKNOWN, PH("550 - requested action not taken: no such user here", "no valid recipients")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_verizon(struct bounce_rdr *k)
{
    for (size_t i = 0; i < k->r->n; i++)
        if (k->r->rx[i].hint == BOUNCE_R_NONE)
            k->r->rx[i].hint = bounce_msgs_find(k->text, bounce_t_verizon_msgs);
}

/* Oracle/Sun Messaging Server */
static bool bounce_is_messagingserver(struct bounce_rdr *k)
{
    return bounce_has(k, BOUNCE_HN_CTYPE, "boundary_(id_") || bounce_subj_starts(k, "Delivery Notification: ");
}

static const struct bounce_msg bounce_t_messagingserver_msgs[] = {
    {BOUNCE_R_HOSTUNKNOWN, PH("illegal host/domain name found")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_messagingserver(struct bounce_rdr *k)
{
    bounce_hint_all(k, bounce_t_messagingserver_msgs);
}

/* 1&1 (IONOS) */
static bool bounce_is_einsundeins(struct bounce_rdr *k)
{
    return bounce_has(k, BOUNCE_HN_FROM, "\"mail delivery system\"") &&
           strstr(k->text, "--- The header of the original message is following. ---") != NULL;
}

static const struct bounce_msg bounce_t_einsundeins_msgs[] = {
    {BOUNCE_R_MESGTOOBIG, PH("mail size limit exceeded")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_einsundeins(struct bounce_rdr *k)
{
    for (size_t i = 0; i < k->r->n; i++) {
        struct bounce__rx *rx = &k->r->rx[i];
        const char *t = bounce_rtext(k, i);
        if (bounce__stristr(t, "for TEXT command"))
            rx->cmd = BOUNCE_CMD_DATA;
        if (rx->hint == BOUNCE_R_NONE)
            rx->hint = bounce_msgs_find(k->text, bounce_t_einsundeins_msgs);
    }
}

/* ---- dispatch ----------------------------------------------------------------- */

bool bounce__lhost_known(const struct bounce__doc *d)
{
    struct bounce_rdr k = {.d = d, .text = ""};
    bool known = bounce_is_google(&k) || bounce_is_dragonfly(&k) || bounce_is_fml(&k) || bounce_is_zoho(&k) ||
           bounce_is_gmx(&k) || bounce_is_ezweb(&k) || bounce_is_kddi(&k) || bounce_is_biglobe(&k) ||
           bounce_is_verizon(&k) || bounce_is_courier(&k) || bounce_is_imail(&k) || bounce_is_domino(&k) ||
           bounce_is_notes(&k) || bounce_is_interscan(&k) || bounce_is_messagingserver(&k) ||
           bounce_is_exchange2003(&k) || bounce_is_opensmtpd(&k) || bounce_is_qmail(&k) || bounce_is_exim(&k);
    bounce_rdr_free(&k);
    return known;
}

void bounce__lhost_read(const struct bounce__doc *d, bounce_report *r, const char *text)
{
    if (r->n == 0)
        return;
    struct bounce_rdr k = {.d = d, .r = r, .text = text ? text : ""};
    /* the most specific signatures first */
    if (bounce_is_google(&k))
        bounce_rd_google(&k);
    else if (bounce_is_dragonfly(&k))
        bounce_rd_dragonfly(&k);
    else if (bounce_is_fml(&k))
        bounce_rd_fml(&k);
    else if (bounce_is_zoho(&k))
        bounce_rd_zoho(&k);
    else if (bounce_is_gmx(&k))
        bounce_rd_gmx(&k);
    else if (bounce_is_ezweb(&k))
        bounce_rd_ezweb(&k);
    else if (bounce_is_kddi(&k))
        bounce_rd_kddi(&k);
    else if (bounce_is_biglobe(&k))
        bounce_rd_biglobe(&k);
    else if (bounce_is_verizon(&k))
        bounce_rd_verizon(&k);
    else if (bounce_is_courier(&k))
        bounce_rd_courier(&k);
    else if (bounce_is_imail(&k))
        bounce_rd_imail(&k);
    else if (bounce_is_domino(&k))
        bounce_rd_domino(&k);
    else if (bounce_is_notes(&k))
        bounce_rd_notes(&k);
    else if (bounce_is_interscan(&k))
        bounce_rd_interscan(&k);
    else if (bounce_is_messagingserver(&k))
        bounce_rd_messagingserver(&k);
    else if (bounce_is_exchange2003(&k))
        bounce_rd_exchange2003(&k);
    else if (bounce_is_exchange2007(&k))
        bounce_rd_exchange2007(&k);
    else if (bounce_is_einsundeins(&k))
        bounce_rd_einsundeins(&k);
    else if (bounce_is_opensmtpd(&k))
        bounce_rd_opensmtpd(&k);
    else if (bounce_is_qmail(&k))
        bounce_rd_qmail(&k);
    else if (bounce_is_exim(&k))
        bounce_rd_exim(&k);
    bounce_rdr_free(&k);
}
