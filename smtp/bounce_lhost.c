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

static const char *bounce_top(const struct bounce__doc *d, const char *name)
{
    const char *v = bounce__hdrs_get(&d->top, name);
    return v ? v : "";
}

static bool bounce_hdr_has(const struct bounce__doc *d, const char *name, const char *needle)
{
    uint32_t key = bounce__hdr_key(name);
    size_t i = 0;
    for (const char *v; (v = bounce__hdrs_next(&d->top, name, key, &i)) != NULL;)
        if (bounce__stristr(v, needle))
            return true;
    return false;
}

static bool bounce_has_hdr(const struct bounce__doc *d, const char *name)
{
    return bounce__hdrs_get(&d->top, name) != NULL;
}

static bool bounce_subj_starts(const struct bounce__doc *d, const char *prefix)
{
    const char *s = bounce_top(d, "Subject");
    while (*s == ' ')
        s++;
    return bounce__starts_ci(s, prefix);
}

/* ---- per-MTA readings --------------------------------------------------------- */

struct bounce_rdr {
    const struct bounce__doc *d;
    bounce_report *r;
    const char *text;     /* human-readable part of the report, as received */
};

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
static bool bounce_is_exim(const struct bounce__doc *d)
{
    static const char *const titles[] = {"Delivery Status Notification", "Mail delivery failed", "Mail failure",
                                         "Message frozen", "Warning: message ", "error(s) in forwarding or filtering",
                                         NULL};
    int score = 0;
    if (bounce_hdr_has(d, "From", "Mail Delivery System"))
        score++;
    const char *mid = bounce_top(d, "Message-ID");
    /* <E1Abcde-000Xyz-Q1@host>: Exim's message id */
    if (mid[0] == '<' && strlen(mid) > 18 && mid[8] == '-' && mid[18] == '@')
        score++;
    for (const char *const *t = titles; *t; t++)
        if (bounce__stristr(bounce_top(d, "Subject"), *t)) {
            score++;
            break;
        }
    bool third = bounce_has_hdr(d, "X-MX-Bounce") || bounce_has_hdr(d, "X-MXL-Hash") ||
                 bounce_has_hdr(d, "X-MXL-NoteHash") || bounce__starts_ci(mid, "<mxl~");
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
static void bounce_rd_exim(const struct bounce_rdr *k)
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
static bool bounce_is_dragonfly(const struct bounce__doc *d)
{
    return bounce_hdr_has(d, "Received", "(DragonFly Mail Agent");
}

static const struct bounce_msg bounce_t_dragonfly_msgs[] = {
    {BOUNCE_R_EXPIRED, PH("could not deliver for the last ")},
    {BOUNCE_R_HOSTUNKNOWN, PH("dns lookup failure: host ")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_dragonfly(const struct bounce_rdr *k)
{
    bounce_hint_all(k, bounce_t_dragonfly_msgs);
}

/* Gmail (mailer-daemon@googlemail.com), G Suite relays and Google Groups */
static bool bounce_is_google(const struct bounce__doc *d)
{
    return bounce_hdr_has(d, "From", "<mailer-daemon@googlemail.com>") &&
           bounce_hdr_has(d, "Subject", "Delivery Status Notification");
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
static void bounce_rd_google(const struct bounce_rdr *k)
{
    /* Google Groups refuses a post: a list of possible causes, as bullets */
    if (bounce__stristr(k->text, "Google Groups") && bounce_has_hdr(k->d, "X-Failed-Recipients")) {
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
static bool bounce_is_imail(const struct bounce__doc *d)
{
    return bounce_subj_starts(d, "Undeliverable Mail ") || bounce__starts_ci(bounce_top(d, "X-Mailer"), "<SMTP32 v");
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
static void bounce_rd_imail(const struct bounce_rdr *k)
{
    bounce_hint_all(k, bounce_t_imail_msgs);
}

/* OpenSMTPD */
static bool bounce_is_opensmtpd(const struct bounce__doc *d)
{
    int score = bounce_hdr_has(d, "Subject", "Delivery status notification") +
                bounce_hdr_has(d, "From", "Mailer Daemon <") + bounce_hdr_has(d, "Received", " (OpenSMTPD) with ");
    return score >= 2 || bounce_hdr_has(d, "Received", " (OpenSMTPD) with ");
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
static void bounce_rd_opensmtpd(const struct bounce_rdr *k)
{
    bounce_hint_all(k, bounce_t_opensmtpd_msgs);
}

/* Zoho Mail */
static bool bounce_is_zoho(const struct bounce__doc *d)
{
    return bounce_has_hdr(d, "X-ZohoMail");
}

static const struct bounce_msg bounce_t_zoho_msgs[] = {
    {BOUNCE_R_EXPIRED, PH("host not reachable")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_zoho(const struct bounce_rdr *k)
{
    bounce_hint_all(k, bounce_t_zoho_msgs);
}

/* GMX / web.de */
static bool bounce_is_gmx(const struct bounce__doc *d)
{
    return bounce_has_hdr(d, "X-GMX-Antispam");
}

static const struct bounce_msg bounce_t_gmx_msgs[] = {
    {BOUNCE_R_EXPIRED, PH("delivery retry timeout exceeded")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_gmx(const struct bounce_rdr *k)
{
    bounce_hint_all(k, bounce_t_gmx_msgs);
}

/* Courier MTA */
static bool bounce_is_courier(const struct bounce__doc *d)
{
    return bounce_hdr_has(d, "From", "Courier mail server at ") ||
           bounce_hdr_has(d, "Subject", "NOTICE: mail delivery status.") ||
           bounce_hdr_has(d, "Subject", "WARNING: delayed mail.") ||
           bounce__starts_ci(bounce_top(d, "Message-ID"), "<courier.");
}

static const struct bounce_msg bounce_t_courier_msgs[] = {
    {BOUNCE_R_HOSTUNKNOWN, PH("no such domain.")},
    {BOUNCE_R_SYSTEMERROR, PH("this domain's dns violates rfc 1035.")},
    {BOUNCE_R_NETWORKERROR, PH("dns lookup failed.")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_courier(const struct bounce_rdr *k)
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
static bool bounce_is_qmail(const struct bounce__doc *d)
{
    const char *s = bounce_top(d, "Subject");
    if (strcasecmp(s, "failure notice") == 0)
        return true;
    uint32_t key = bounce__hdr_key("Received");
    size_t i = 0;
    for (const char *v; (v = bounce__hdrs_next(&d->top, "Received", key, &i)) != NULL;)
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
static void bounce_rd_qmail(const struct bounce_rdr *k)
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
static bool bounce_is_kddi(const struct bounce__doc *d)
{
    return bounce_hdr_has(d, "From", "no-reply@.") || bounce_hdr_has(d, "From", ".dion.ne.jp") ||
           bounce_hdr_has(d, "Reply-To", "no-reply@app.auone-net.jp") || bounce_hdr_has(d, "Received", "ezweb.ne.jp (") ||
           bounce_hdr_has(d, "Received", ".au.com (");
}

static const struct bounce_msg bounce_t_kddi_msgs[] = {
    {BOUNCE_R_MAILBOXFULL, PH("as their mailbox is full")},
    {BOUNCE_R_NORELAYING, PH("due to the following smtp relay error")},
    {BOUNCE_R_HOSTUNKNOWN, PH("as the remote domain doesnt exist")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_kddi(const struct bounce_rdr *k)
{
    bounce_hint_all(k, bounce_t_kddi_msgs);
}

/* au (EZweb) */
static bool bounce_is_ezweb(const struct bounce__doc *d)
{
    int score = bounce_hdr_has(d, "From", "Postmaster@ezweb.ne.jp") + bounce_hdr_has(d, "From", "Postmaster@au.com") +
                (strcasecmp(bounce_top(d, "Subject"), "Mail System Error - Returned Mail") == 0) +
                (bounce_hdr_has(d, "Received", "ezweb.ne.jp (EZweb Mail) with") ||
                 bounce_hdr_has(d, "Received", ".au.com (")) +
                bounce_hdr_has(d, "Message-ID", ".ezweb.ne.jp>") + bounce_hdr_has(d, "Message-ID", ".au.com>");
    return score >= 2;
}

static const struct bounce_msg bounce_t_ezweb_msgs[] = {
    {BOUNCE_R_EXPIRED, PH("your message was not delivered within ")},
    {BOUNCE_R_MAILBOXFULL, PH("the user(s) account is temporarily over quota")},
    {BOUNCE_R_ONHOLD, PH("each of the following recipients was rejected by a remote mail server")},
    {BOUNCE_R_SUSPEND, PH("the user(s) account is disabled.", "the user(s) account is temporarily limited.")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_ezweb(const struct bounce_rdr *k)
{
    bool spam = strcasecmp(bounce_top(k->d, "X-SPASIGN"), "NG") == 0;
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
static bool bounce_is_biglobe(const struct bounce__doc *d)
{
    static const char *const isp[] = {"@biglobe.ne.jp", "@inacatv.ne.jp", "@tmtv.ne.jp", "@ttv.ne.jp", NULL};
    for (const char *const *p = isp; *p; p++)
        if (bounce_hdr_has(d, "From", *p))
            return true;
    return false;
}

static const struct bounce_msg bounce_t_biglobe_msgs[] = {
    {BOUNCE_R_FILTERED, PH("mail delivery failed... user unknown")},
    {BOUNCE_R_MAILBOXFULL, PH("the number of messages in recipient's mailbox exceeded the local limit.")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_biglobe(const struct bounce_rdr *k)
{
    for (size_t i = 0; i < k->r->n; i++)
        if (k->r->rx[i].hint == BOUNCE_R_NONE)
            k->r->rx[i].hint = bounce_msgs_find(k->text, bounce_t_biglobe_msgs);
}

/* IBM/HCL Domino and Lotus Notes */
static bool bounce_is_domino(const struct bounce__doc *d)
{
    return bounce_subj_starts(d, "DELIVERY FAILURE:") || bounce_subj_starts(d, "DELIVERY_FAILURE:");
}

static const struct bounce_msg bounce_t_domino_msgs[] = {
    {BOUNCE_R_FILTERED, PH("cannot route mail to user")},
    {BOUNCE_R_SYSTEMERROR, PH("several matches found in domino directory")},
    {BOUNCE_R_USERUNKNOWN, PH("not listed in domino directory", "not listed in public name & address book",
                              "no se encuentra en el directorio de domino", "dans l'annuaire domino",
                              "domino ディレクトリには見つかりません")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_domino(const struct bounce_rdr *k)
{
    for (size_t i = 0; i < k->r->n; i++)
        if (k->r->rx[i].hint == BOUNCE_R_NONE) {
            enum bounce_reason h = bounce_msgs_find(bounce_rtext(k, i), bounce_t_domino_msgs);
            k->r->rx[i].hint = h != BOUNCE_R_NONE ? h : bounce_msgs_find(k->text, bounce_t_domino_msgs);
        }
}

static bool bounce_is_notes(const struct bounce__doc *d)
{
    return bounce_subj_starts(d, "Undeliverable message");
}

static const struct bounce_msg bounce_t_notes_msgs[] = {
    {BOUNCE_R_NETWORKERROR, PH("message has exceeded maximum hop count")},
    {BOUNCE_R_USERUNKNOWN, PH("user not listed in public name & address book", "ディレクトリのリストにありません")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_notes(const struct bounce_rdr *k)
{
    for (size_t i = 0; i < k->r->n; i++)
        if (k->r->rx[i].hint == BOUNCE_R_NONE)
            k->r->rx[i].hint = bounce_msgs_find(k->text, bounce_t_notes_msgs);
}

/* Microsoft Exchange Server 2003 and older: MSEXCH error codes */
static bool bounce_is_exchange2003(const struct bounce__doc *d)
{
    return bounce_has_hdr(d, "X-MS-Embedded-Report") ||
           bounce__starts_ci(bounce_top(d, "X-Mailer"), "Internet Mail Service (") ||
           bounce__starts_ci(bounce_top(d, "X-Mailer"), "Microsoft Exchange Server Internet Mail Connector") ||
           bounce__starts_ci(bounce_top(d, "X-MimeOLE"), "Produced By Microsoft Exchange") ||
           bounce_hdr_has(d, "Received", " with Internet Mail Service (");
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
static void bounce_rd_exchange2003(const struct bounce_rdr *k)
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
static bool bounce_is_exchange2007(const struct bounce__doc *d, const char *text)
{
    static const char *const titles[] = {"Undeliverable", "Non_remis_", "Non remis ", "Non recapitabile",
                                         "Olevererbart", NULL};
    int score = 0;
    for (const char *const *t = titles; *t; t++)
        if (bounce__stristr(bounce_top(d, "Subject"), *t)) {
            score++;
            break;
        }
    if (bounce_hdr_has(d, "From", "postmaster@outlook.com") || bounce_hdr_has(d, "From", ".onmicrosoft.com"))
        score++;
    if (strstr(text, " RESOLVER.") || strstr(text, " QUEUE."))
        score++;
    if (bounce__stristr(text, "Diagnostic information for administrators") || strstr(text, "Error Details"))
        score++;
    if (bounce_has_hdr(d, "Content-Language"))
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
static void bounce_rd_exchange2007(const struct bounce_rdr *k)
{
    bounce_hint_all(k, bounce_t_exchange2007_codes);
}

/* fml mailing list manager */
static bool bounce_is_fml(const struct bounce__doc *d)
{
    return bounce_has_hdr(d, "X-MLServer") && bounce_hdr_has(d, "From", "-admin@") &&
           bounce_hdr_has(d, "Message-ID", ".FML");
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
static void bounce_rd_fml(const struct bounce_rdr *k)
{
    for (size_t i = 0; i < k->r->n; i++) {
        if (k->r->rx[i].hint != BOUNCE_R_NONE)
            continue;
        enum bounce_reason h = bounce_msgs_find(k->text, bounce_t_fml_body);
        k->r->rx[i].hint = h != BOUNCE_R_NONE ? h : bounce_msgs_find(bounce_top(k->d, "Subject"), bounce_t_fml_title);
    }
}

/* Trend Micro InterScan MSS */
static bool bounce_is_interscan(const struct bounce__doc *d)
{
    return bounce__starts_ci(bounce_top(d, "From"), "\"InterScan") ||
           bounce_hdr_has(d, "Subject", "Mail could not be delivered") ||
           bounce_hdr_has(d, "Subject", "メッセージを配信できません。") ||
           bounce_hdr_has(d, "Subject", "メール配信に失敗しました");
}

static void bounce_rd_interscan(const struct bounce_rdr *k)
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
static bool bounce_is_verizon(const struct bounce__doc *d)
{
    const char *f = bounce_top(d, "From");
    return bounce__stristr(f, "post_master@vtext.com") || bounce__phrase_in(f, "sysadmin@*.vzwpix.com");
}

static const struct bounce_msg bounce_t_verizon_msgs[] = {
    {BOUNCE_R_USERUNKNOWN, PH("550 - requested action not taken: no such user here", "no valid recipients")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_verizon(const struct bounce_rdr *k)
{
    for (size_t i = 0; i < k->r->n; i++)
        if (k->r->rx[i].hint == BOUNCE_R_NONE)
            k->r->rx[i].hint = bounce_msgs_find(k->text, bounce_t_verizon_msgs);
}

/* Oracle/Sun Messaging Server */
static bool bounce_is_messagingserver(const struct bounce__doc *d)
{
    return bounce_hdr_has(d, "Content-Type", "Boundary_(ID_") || bounce_subj_starts(d, "Delivery Notification: ");
}

static const struct bounce_msg bounce_t_messagingserver_msgs[] = {
    {BOUNCE_R_HOSTUNKNOWN, PH("illegal host/domain name found")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_messagingserver(const struct bounce_rdr *k)
{
    bounce_hint_all(k, bounce_t_messagingserver_msgs);
}

/* 1&1 (IONOS) */
static bool bounce_is_einsundeins(const struct bounce__doc *d, const char *text)
{
    return bounce_hdr_has(d, "From", "\"Mail Delivery System\"") &&
           strstr(text, "--- The header of the original message is following. ---") != NULL;
}

static const struct bounce_msg bounce_t_einsundeins_msgs[] = {
    {BOUNCE_R_MESGTOOBIG, PH("mail size limit exceeded")},
    {BOUNCE_R_NONE, NULL},
};
static void bounce_rd_einsundeins(const struct bounce_rdr *k)
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
    return bounce_is_google(d) || bounce_is_dragonfly(d) || bounce_is_fml(d) || bounce_is_zoho(d) ||
           bounce_is_gmx(d) || bounce_is_ezweb(d) || bounce_is_kddi(d) || bounce_is_biglobe(d) ||
           bounce_is_verizon(d) || bounce_is_courier(d) || bounce_is_imail(d) || bounce_is_domino(d) ||
           bounce_is_notes(d) || bounce_is_interscan(d) || bounce_is_messagingserver(d) ||
           bounce_is_exchange2003(d) || bounce_is_opensmtpd(d) || bounce_is_qmail(d) || bounce_is_exim(d);
}

void bounce__lhost_read(const struct bounce__doc *d, bounce_report *r, const char *text)
{
    struct bounce_rdr k = {.d = d, .r = r, .text = text ? text : ""};
    if (r->n == 0)
        return;
    /* the most specific signatures first */
    if (bounce_is_google(d))
        bounce_rd_google(&k);
    else if (bounce_is_dragonfly(d))
        bounce_rd_dragonfly(&k);
    else if (bounce_is_fml(d))
        bounce_rd_fml(&k);
    else if (bounce_is_zoho(d))
        bounce_rd_zoho(&k);
    else if (bounce_is_gmx(d))
        bounce_rd_gmx(&k);
    else if (bounce_is_ezweb(d))
        bounce_rd_ezweb(&k);
    else if (bounce_is_kddi(d))
        bounce_rd_kddi(&k);
    else if (bounce_is_biglobe(d))
        bounce_rd_biglobe(&k);
    else if (bounce_is_verizon(d))
        bounce_rd_verizon(&k);
    else if (bounce_is_courier(d))
        bounce_rd_courier(&k);
    else if (bounce_is_imail(d))
        bounce_rd_imail(&k);
    else if (bounce_is_domino(d))
        bounce_rd_domino(&k);
    else if (bounce_is_notes(d))
        bounce_rd_notes(&k);
    else if (bounce_is_interscan(d))
        bounce_rd_interscan(&k);
    else if (bounce_is_messagingserver(d))
        bounce_rd_messagingserver(&k);
    else if (bounce_is_exchange2003(d))
        bounce_rd_exchange2003(&k);
    else if (bounce_is_exchange2007(d, k.text))
        bounce_rd_exchange2007(&k);
    else if (bounce_is_einsundeins(d, k.text))
        bounce_rd_einsundeins(&k);
    else if (bounce_is_opensmtpd(d))
        bounce_rd_opensmtpd(&k);
    else if (bounce_is_qmail(d))
        bounce_rd_qmail(&k);
    else if (bounce_is_exim(d))
        bounce_rd_exim(&k);
}
