/* The one classifier: SMTP reply code + RFC 3463 enhanced status + text ->
 * reason (Sisimai taxonomy) + hard/soft. Used for asynchronous bounces (the
 * diagnostic of each recipient) and for the synchronous replies the egress
 * client gets.
 *
 * Order of decision:
 *  1. an enhanced status whose meaning is specific (5.2.2 mailbox full,
 *     5.7.25 reverse DNS, 5.1.10 null MX, ...) decides at once;
 *  2. otherwise the text is matched against phrase tables of real MTAs and
 *     providers, reason by reason in a fixed order (more specific reasons
 *     first); a phrase "a*b" means "a", then later "b";
 *  3. otherwise the ambiguous status meanings (5.1.1 user unknown, 5.7.x
 *     security, 4.4.x network, ...) and then the bare reply code;
 *  4. otherwise onhold (a failure we cannot explain) or undefined.
 * All matching is on a lower-cased copy with white space squeezed. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/bounce_internal.h"

static const char *const bounce_reason_names[BOUNCE_R_COUNT] = {
    [BOUNCE_R_UNDEFINED] = "undefined",       [BOUNCE_R_ONHOLD] = "onhold",
    [BOUNCE_R_USERUNKNOWN] = "userunknown",   [BOUNCE_R_HOSTUNKNOWN] = "hostunknown",
    [BOUNCE_R_HASMOVED] = "hasmoved",         [BOUNCE_R_NOTACCEPT] = "notaccept",
    [BOUNCE_R_MAILBOXFULL] = "mailboxfull",   [BOUNCE_R_MESGTOOBIG] = "mesgtoobig",
    [BOUNCE_R_EXCEEDLIMIT] = "exceedlimit",   [BOUNCE_R_SUSPEND] = "suspend",
    [BOUNCE_R_FILTERED] = "filtered",         [BOUNCE_R_REJECTED] = "rejected",
    [BOUNCE_R_BLOCKED] = "blocked",           [BOUNCE_R_BADREPUTATION] = "badreputation",
    [BOUNCE_R_REQUIREPTR] = "requireptr",     [BOUNCE_R_AUTHFAILURE] = "authfailure",
    [BOUNCE_R_NOTCOMPLIANTRFC] = "notcompliantrfc", [BOUNCE_R_SPAMDETECTED] = "spamdetected",
    [BOUNCE_R_VIRUSDETECTED] = "virusdetected", [BOUNCE_R_POLICYVIOLATION] = "policyviolation",
    [BOUNCE_R_SECURITYERROR] = "securityerror", [BOUNCE_R_FAILEDSTARTTLS] = "failedstarttls",
    [BOUNCE_R_CONTENTERROR] = "contenterror", [BOUNCE_R_SYNTAXERROR] = "syntaxerror",
    [BOUNCE_R_NORELAYING] = "norelaying",     [BOUNCE_R_SPEEDING] = "speeding",
    [BOUNCE_R_TOOMANYCONN] = "toomanyconn",   [BOUNCE_R_NETWORKERROR] = "networkerror",
    [BOUNCE_R_EXPIRED] = "expired",           [BOUNCE_R_SYSTEMERROR] = "systemerror",
    [BOUNCE_R_SYSTEMFULL] = "systemfull",     [BOUNCE_R_MAILERERROR] = "mailererror",
    [BOUNCE_R_SUPPRESSED] = "suppressed",     [BOUNCE_R_FEEDBACK] = "feedback",
    [BOUNCE_R_VACATION] = "vacation",         [BOUNCE_R_DELIVERED] = "delivered",
};

const char *bounce_reason_name(enum bounce_reason r)
{
    if ((unsigned)r >= BOUNCE_R_COUNT)
        return "undefined";
    return bounce_reason_names[r];
}

int bounce_reason_from_name(const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < BOUNCE_R_COUNT; i++)
        if (strcasecmp(bounce_reason_names[i], name) == 0)
            return i;
    return -1;
}

int bounce_reason_hard(enum bounce_reason r, int smtp_code, const char *enhanced)
{
    switch (r) {
    case BOUNCE_R_FEEDBACK:
    case BOUNCE_R_VACATION:
    case BOUNCE_R_DELIVERED:
        return -1;
    case BOUNCE_R_USERUNKNOWN:
    case BOUNCE_R_HOSTUNKNOWN:
    case BOUNCE_R_HASMOVED:
        return 1;
    case BOUNCE_R_NOTACCEPT:
        if (smtp_code >= 400 && smtp_code < 500)
            return 0;
        if (smtp_code == 0 && enhanced != NULL && enhanced[0] == '4')
            return 0;
        return 1;
    default:
        return 0;
    }
}

/* ---- enhanced status codes ---------------------------------------------- */

struct bounce_status_map {
    const char *code; /* without the class digit: "1.1" for x.1.1 */
    enum bounce_reason r;
    int specific;     /* 1: decides before the text; 0: only a fallback */
};

static const struct bounce_status_map bounce_status_table[] = {
    {"1.0", BOUNCE_R_USERUNKNOWN, 0},    {"1.1", BOUNCE_R_USERUNKNOWN, 0},
    {"1.2", BOUNCE_R_HOSTUNKNOWN, 1},    {"1.3", BOUNCE_R_USERUNKNOWN, 0},
    {"1.4", BOUNCE_R_FILTERED, 0},       {"1.6", BOUNCE_R_HASMOVED, 1},
    {"1.7", BOUNCE_R_REJECTED, 0},       {"1.8", BOUNCE_R_REJECTED, 0},
    {"1.9", BOUNCE_R_SYSTEMERROR, 0},    {"1.10", BOUNCE_R_NOTACCEPT, 1},
    {"2.0", BOUNCE_R_FILTERED, 0},       {"2.1", BOUNCE_R_SUSPEND, 0},
    {"2.2", BOUNCE_R_MAILBOXFULL, 1},    {"2.3", BOUNCE_R_EXCEEDLIMIT, 0},
    {"2.4", BOUNCE_R_FILTERED, 0},       {"3.0", BOUNCE_R_SYSTEMERROR, 0},
    {"3.1", BOUNCE_R_SYSTEMFULL, 0},     {"3.2", BOUNCE_R_NOTACCEPT, 0},
    {"3.3", BOUNCE_R_SYSTEMERROR, 0},    {"3.4", BOUNCE_R_MESGTOOBIG, 1},
    {"3.5", BOUNCE_R_SYSTEMERROR, 0},    {"4.0", BOUNCE_R_NETWORKERROR, 0},
    {"4.1", BOUNCE_R_EXPIRED, 0},        {"4.2", BOUNCE_R_NETWORKERROR, 0},
    {"4.3", BOUNCE_R_SYSTEMERROR, 0},    {"4.4", BOUNCE_R_HOSTUNKNOWN, 0},
    {"4.5", BOUNCE_R_SYSTEMFULL, 0},     {"4.6", BOUNCE_R_NETWORKERROR, 0},
    {"4.7", BOUNCE_R_EXPIRED, 0},        {"5.0", BOUNCE_R_SYNTAXERROR, 0},
    {"5.1", BOUNCE_R_SYNTAXERROR, 0},    {"5.2", BOUNCE_R_SYNTAXERROR, 0},
    {"5.3", BOUNCE_R_TOOMANYCONN, 0},    {"5.4", BOUNCE_R_SYNTAXERROR, 0},
    {"5.5", BOUNCE_R_SYSTEMERROR, 0},    {"5.6", BOUNCE_R_SECURITYERROR, 0},
    {"6.0", BOUNCE_R_CONTENTERROR, 0},   {"6.1", BOUNCE_R_CONTENTERROR, 0},
    {"6.2", BOUNCE_R_CONTENTERROR, 0},   {"6.3", BOUNCE_R_CONTENTERROR, 0},
    {"6.5", BOUNCE_R_CONTENTERROR, 0},   {"6.6", BOUNCE_R_CONTENTERROR, 0},
    {"6.7", BOUNCE_R_CONTENTERROR, 0},   {"6.8", BOUNCE_R_CONTENTERROR, 0},
    {"6.9", BOUNCE_R_CONTENTERROR, 0},   {"7.0", BOUNCE_R_SECURITYERROR, 0},
    {"7.1", BOUNCE_R_SECURITYERROR, 0},  {"7.2", BOUNCE_R_SECURITYERROR, 0},
    {"7.3", BOUNCE_R_SECURITYERROR, 0},  {"7.4", BOUNCE_R_SECURITYERROR, 0},
    {"7.5", BOUNCE_R_SECURITYERROR, 0},  {"7.6", BOUNCE_R_SECURITYERROR, 0},
    {"7.7", BOUNCE_R_SECURITYERROR, 0},  {"7.8", BOUNCE_R_SECURITYERROR, 0},
    {"7.9", BOUNCE_R_SECURITYERROR, 0},  {"7.10", BOUNCE_R_SECURITYERROR, 0},
    {"7.11", BOUNCE_R_SECURITYERROR, 0}, {"7.12", BOUNCE_R_SECURITYERROR, 0},
    {"7.13", BOUNCE_R_SUSPEND, 1},       {"7.14", BOUNCE_R_SECURITYERROR, 0},
    {"7.15", BOUNCE_R_SECURITYERROR, 0}, {"7.16", BOUNCE_R_MESGTOOBIG, 1},
    {"7.17", BOUNCE_R_HASMOVED, 1},      {"7.18", BOUNCE_R_HASMOVED, 1},
    {"7.19", BOUNCE_R_SECURITYERROR, 0}, {"7.20", BOUNCE_R_AUTHFAILURE, 1},
    {"7.21", BOUNCE_R_AUTHFAILURE, 1},   {"7.22", BOUNCE_R_AUTHFAILURE, 1},
    {"7.23", BOUNCE_R_AUTHFAILURE, 1},   {"7.24", BOUNCE_R_AUTHFAILURE, 1},
    {"7.25", BOUNCE_R_REQUIREPTR, 1},    {"7.26", BOUNCE_R_AUTHFAILURE, 1},
    {"7.27", BOUNCE_R_NOTACCEPT, 1},     {"7.28", BOUNCE_R_SPAMDETECTED, 0},
    {"7.29", BOUNCE_R_AUTHFAILURE, 1},   {"7.30", BOUNCE_R_AUTHFAILURE, 1},
};

static const struct bounce_status_map *bounce_status_lookup(const char *enhanced)
{
    if (enhanced == NULL || (enhanced[0] != '4' && enhanced[0] != '5') || enhanced[1] != '.')
        return NULL;
    for (size_t i = 0; i < sizeof bounce_status_table / sizeof bounce_status_table[0]; i++)
        if (strcmp(enhanced + 2, bounce_status_table[i].code) == 0)
            return &bounce_status_table[i];
    return NULL;
}

/* ---- phrases -------------------------------------------------------------- */

struct bounce_phrases {
    enum bounce_reason r;
    const char *const *p;
};

#define PH(...) (const char *const[]){__VA_ARGS__, NULL}

/* Tried in this order; the first reason with a matching phrase wins. */
static const struct bounce_phrases bounce_phrase_table[] = {
    {BOUNCE_R_MAILBOXFULL, PH(
        "mailbox full", "mailbox is full", "mailbox is over quota", "mailbox over quota", "over quota",
        "overquota", "quota exceeded", "exceeded storage allocation", "exceeded its disk space",
        "mailbox size limit exceeded", "disk quota exceeded", "disc quota exceeded",
        "exceeding its mailbox quota", "exceeded the storage", "exceeds quota", "quota full",
        "insufficient disk space", "not enough storage space", "does not have enough space",
        "full mailbox", "mailfolder is full", "mailbox has exceeded", "too much mail data",
        "would exceed maximum allowed storage", "mailbox exceeded", "user has too many messages",
        "boite du destinataire pleine", "quota violation", "mail quota", "user is over the quota",
        "inbox is full", "inbox full", "exceeded their storage", "account is full", "mailbox size exceeded",
        "recipient reached disk quota", "storage quota", "mailbox would exceed")},
    {BOUNCE_R_MESGTOOBIG, PH(
        "message too big", "message is too big", "message size exceeds", "message length exceeds",
        "max message size exceeded", "exceeded maximum inbound message size", "message file too big",
        "message is larger than", "size limit", "message exceeds the maximum size", "too large for this",
        "maximum message size", "exceeds the size limit", "taille limite du message",
        "larger than the current system limit", "size exceeds", "message too large")},
    {BOUNCE_R_EXCEEDLIMIT, PH("message header size exceeds limit", "too many recipients for this message",
        "exceeded the limit of")},
    {BOUNCE_R_SUSPEND, PH(
        "has been suspended", "is currently suspended", "user suspended", "account suspended",
        "mailbox currently suspended", "account has been disabled", "account is disabled",
        "mailbox is disabled", "mailbox disabled", "is a deactivated mailbox", "account is inactive",
        "inactive account", "invalid/inactive user", "mailbox is frozen", "account is locked",
        "temporarily inactive", "has been disabled", "this account has been disabled or discontinued",
        "account that you tried to reach is disabled", "recipient suspend the service",
        "boite du destinataire archivee", "account deactivated", "account has been deactivated",
        "is inactive", "mailbox is inactive", "email account is inactive", "not active",
        "account unavailable", "currently inactive", "temporary locked")},
    {BOUNCE_R_HASMOVED, PH(" has been replaced by ", "has moved", "no longer with", "mailbox has moved")},
    {BOUNCE_R_NORELAYING, PH(
        "relay access denied", "relaying denied", "relay denied", "relay not permitted",
        "not permitted to relay", "unable to relay", "relaying mail to", "not allowed to relay",
        "insecure mail relay", "we do not relay", "not an open relay", "this system is not configured to relay",
        "relaying not allowed", "relay prohibited", "no relaying", "relaying is not allowed",
        "requires authentication when attempting to send to a non-local", "cannot relay", "as a relay")},
    {BOUNCE_R_AUTHFAILURE, PH(
        "spf check failed", "spf validation", "spf fail", "failed spf", "spf record", "sender policy framework",
        "dkim", "dmarc", "does not pass spf", "not designated by", "is not allowed to send mail from",
        "per it's spf record", "spf)", "authentication checks failed", "unauthenticated email",
        "sender is not authenticated", "sender authentication failed", "fails sender authentication",
        "email authentication", "not authorized to send on behalf")},
    {BOUNCE_R_REQUIREPTR, PH(
        "ptr record", "reverse dns", "no ptr", "reverse lookup", "rdns", "reverse-dns",
        "cannot find your hostname", "can't find your hostname", "cannot resolve your address",
        "ip name lookup failed", "reverse address", "hostname lookup failed", "reverse name",
        "unresolvable address", "cannot resolve ip", "does not resolve", "not have a valid reverse",
        "resolve your address", "hostname does not match", "no reverse")},
    {BOUNCE_R_USERUNKNOWN, PH(
        "user unknown", "unknown user", "no such user", "no such mailbox", "no such recipient",
        "no such person", "no such address", "no mailbox here", "no mailbox found", "mailbox not found",
        "mailbox unavailable", "mailbox does not exist", "mailbox * does not exist", "user does not exist",
        "user * does not exist", "does not exist", "doesn't exist", "not exist", "unknown recipient",
        "recipient unknown", "recipient not found", "recipient * was not found", "user not found",
        "user * not found", "address unknown", "unknown address", "unknown local part", "unknown local-part",
        "unknown mailbox", "invalid mailbox", "invalid recipient", "bad recipient", "bad-recipient",
        "badrcptto", "recipient rejected", "is not a valid mailbox", "not a valid recipient",
        "not a valid user", "is not a known user", "no account by that name", "not our customer",
        "address not present in directory", "recipient address rejected: user unknown",
        "recipient address rejected: unknown", "recipient address rejected: invalid",
        "recipient address rejected: access denied", "invalid address", "address invalid",
        "address not found", "addressee unknown", "no such local user", "unknown or illegal alias",
        "unrouteable address", "unroutable address", "recipient is not local",
        "the email account that you tried to reach does not exist", "this user doesn't have a",
        "mailbox not present", "no mail box available", "resolver.adr.recipientnotfound",
        "recipientnotfound", "not listed in", "there is no one at this address", "account does not exist",
        "utilisateur inconnu", "nessun utente", "no existe", "address is not recognized",
        "email address could not be found", "user not known", "unknown e-mail", "unknown email",
        "destination addresses were unknown", "no valid recipients", "no such account",
        "is not an active address", "invalid user", "undeliverable address", "unknown to address",
        "mailbox name not allowed", "recipient does not exist", "user missing home directory",
        "not a local address", "not valid", "was not found in", "address rejected")},
    {BOUNCE_R_FILTERED, PH(
        "user reject", "refused due to recipient preferences", "message rejected due to user rules",
        "is only accepting mail from specific email addresses", "you have been blocked by the recipient",
        "recipient id refuse to receive mail", "this account is protected by", "has restricted sms e-mail",
        "bounced address", "is not accepting any mail", "not accepting mail from", "refuse to receive")},
    {BOUNCE_R_BADREPUTATION, PH(
        "poor reputation", "bad reputation", "low reputation", "reputation", "poor email reputation",
        "sender score")},
    {BOUNCE_R_NOTCOMPLIANTRFC, PH(
        "rfc 5322", "rfc5322", "rfc 2822", "rfc2822", "rfc 822", "rfc822 specifications", "duplicate header",
        "multiple addresses in from", "not rfc compliant", "non-compliant", "there are multiple",
        "header field appears more than once", "more than one", "is not compliant with rfc")},
    {BOUNCE_R_REJECTED, PH(
        "sender rejected", "sender address rejected", "sender verify failed", "sender is spammer",
        "sender blacklisted", "sender address has been blacklisted", "invalid sender", "bogus mail from",
        "domain of sender address", "sender domain", "sender not pre-approved", "sender email address rejected",
        "null sender is not allowed", "empty envelope senders not allowed", "unroutable sender address",
        "batv", "returned mail not accepted here", "mail from not owned by user", "your email address",
        "address is not verified", "sender address is not", "not allowed to post", "sender is in my black list",
        "this server does not accept mail from", "permission to post", "groups.google.com", "fully qualified email address required",
        "emetteur invalide", "envelope blocked", "administrative prohibition", "sender unknown",
        "unknown sender", "sender mismatch", "sender not allowed", "rejected sender", "from address",
        "mail from", "sender")},
    {BOUNCE_R_HOSTUNKNOWN, PH(
        "host unknown", "unknown host", "no such domain", "domain does not exist", "domain not found",
        "host or domain name not found", "name or service not known", "domain is not reachable",
        "domain must exist", "unknown domain", "domain name not found", "mail domain mentioned in email address is unknown",
        "the account or domain may not exist", "unrouteable mail domain", "host not found", "hostname not found",
        "nxdomain", "no mx", "non-existent domain", "nonexistent domain", "invalid domain", "domain unknown",
        "domain * does not exist", "recipient domain", "unknown mail domain")},
    {BOUNCE_R_BLOCKED, PH(
        "blocked using", "blacklisted", "blocklisted", "black list", "blacklist", "blocklist", "block list",
        "dnsbl", "spamhaus", "spamcop", "barracudacentral", "client host", "your ip", "ip address",
        "sending ip", "dynamic ip", "dynamic/zombied", "helo command rejected", "refused to talk",
        "not accepting connections", "connection refused", "rbl")},
    {BOUNCE_R_SPAMDETECTED, PH(
        "spam", "junk mail", "unsolicited", "bulk mail", "blocked by content filter", "content filter",
        "message content rejected", "content rejected", "rejected due to content", "suspicious",
        "score too high", "spamassassin", "identified as", "classified as", "looks like")},
    {BOUNCE_R_SPEEDING, PH("rate limit", "rate-limit", "too fast", "sending rate", "too many messages",
        "throttl", "rate exceeded", "exceeded the rate", "temporarily deferred")},
    {BOUNCE_R_TOOMANYCONN, PH(
        "too many connections", "too many concurrent", "connection limit", "too many smtp sessions",
        "too many recipients", "too many errors", "maximum connection", "exceeds per-domain connection",
        "trop de connexions", "connection rate")},
    {BOUNCE_R_BLOCKED, PH(
        "barracuda", "banned", "helo", "ehlo", "access denied", "connection dropped",
        "go away", "dynamic ip", "dynamic/zombied", "listed", "not accepting connections",
        "reject your mail", "rejected your mail", "refused to talk", "blocked", "denied", "poor ip",
        "service unavailable", "host network not allowed", "not allowed to connect", "mail server at",
        "sending ip", "sending mta", "abus", "confirm this mail server", "server access forbidden")},
    {BOUNCE_R_MAILERERROR, PH(
        "x-unix", "command died", "command output", "exit status", "exited with", "unknown mailer error",
        "mailer error", "procmail", "pipe to", "|/", "permission denied", "local delivery failed")},
    {BOUNCE_R_VIRUSDETECTED, PH(
        "virus", "malware", "infected", "potentially executable attachment", "has been used by recent viruses")},
    {BOUNCE_R_POLICYVIOLATION, PH(
        "policy", "not accepted for policy reasons", "illegal attachment", "attachment", "members-only",
        "closed mailing list", "organizational settings", "organization policy", "header are not accepted",
        "protocol violation", "not subscribed", "captcha", "prohibited", "non-member", "moderator")},
    {BOUNCE_R_FAILEDSTARTTLS, PH("starttls", "tls required", "requires tls", "must issue a starttls",
        "tls negotiation", "encryption required", "tls is required")},
    {BOUNCE_R_SECURITYERROR, PH(
        "authentication required", "authentication is required", "authentication failed",
        "authentication credentials invalid", "must be authenticated", "submission requires auth",
        "security", "certificate", "encryption needed", "not authorized", "unauthorized", "insecure")},
    {BOUNCE_R_NOTACCEPT, PH(
        "does not accept mail", "host/domain does not accept mail", "nullmx", "null mx", "no mx record",
        "does not receive mail", "not accepting mail", "does not accept e-mail", "smtp protocol returned a permanent error",
        "no route for current request", "accepts no mail")},
    {BOUNCE_R_EXPIRED, PH(
        "retry time exceeded", "retry timeout exceeded", "delivery time expired", "message expired",
        "queue lifetime", "too long in the queue", "in the queue too long", "has been in the queue",
        "giving up", "gave up", "could not be delivered for", "could not be delivered within",
        "delivery attempts will continue", "have been failing for a long time", "message timed out",
        "timed out", "timeout", "time-out", "was not reachable within the allowed queue period",
        "unable to deliver message after multiple retries", "has not been collected after",
        "retry limit", "expired", "for more than", "has been delayed", "delivery has been delayed",
        "deferred for", "couldn't be delivered in", "undeliverable for", "sitting in queue", "retry period")},
    {BOUNCE_R_NETWORKERROR, PH(
        "mail loop", "mail forwarding loop", "routing loop", "too many hops", "hop count exceeded",
        "message looping", "loop count", "loops back", "host is unreachable", "host unreachable",
        "no route to host", "network is unreachable", "name server", "host name lookup failure",
        "dns lookup", "dns error", "dns failure", "lookup failure", "unable to resolve", "could not connect",
        "connection reset", "connection lost", "lost connection", "connection closed", "connection failed",
        "unable to connect", "cannot connect", "can't connect", "temporary failure in name resolution",
        "try again later", "no answer", "dns records for the destination", "servfail")},
    {BOUNCE_R_SYSTEMFULL, PH("mail system full", "disk full", "out of disk", "system full", "no space left",
        "insufficient system storage", "insufficient storage")},
    {BOUNCE_R_SYSTEMERROR, PH(
        "system error", "internal error", "server error", "local error", "configuration error",
        "misconfigured", "temporary local problem", "transaction failed", "service currently unavailable",
        "temporarily unavailable", "temporary failure", "system config", "interrupted system call",
        "queue file write error", "aliasing/forwarding loop", "loop was found", "mail loop",
        "temporary problem", "resources temporarily", "try again", "unavailable")},
    {BOUNCE_R_CONTENTERROR, PH(
        "improper use of 8-bit", "invalid mime", "mime complexity", "header size exceeds", "malformed",
        "improperly-formatted", "unnecessary base64", "content error", "8-bit data", "bare lf", "bare <lf>",
        "invalid header", "message header", "headers")},
    {BOUNCE_R_SYNTAXERROR, PH("syntax error", "command unrecognized", "unrecognized command",
        "command not recognized", "bad sequence of commands", "line too long", "invalid command")},
};

/* Case-insensitive on already lower-cased text: "a*b" = a then b within 200 bytes. */
static bool bounce_phrase_match(const char *text, const char *phrase)
{
    const char *star = strchr(phrase, '*');
    if (star == NULL)
        return strstr(text, phrase) != NULL;
    char first[128];
    size_t fl = (size_t)(star - phrase);
    if (fl >= sizeof first)
        return false;
    memcpy(first, phrase, fl);
    first[fl] = '\0';
    const char *rest = star + 1;
    for (const char *p = strstr(text, first); p != NULL; p = strstr(p + 1, first)) {
        const char *q = strstr(p + fl, rest);
        if (q != NULL && q - (p + fl) <= 200)
            return true;
    }
    return false;
}

/* Reason of text alone, BOUNCE_R_UNDEFINED when nothing matched. text must
 * be normalised (lower case, single spaces). */
enum bounce_reason bounce__classify_text(const char *text)
{
    if (text == NULL || text[0] == '\0')
        return BOUNCE_R_UNDEFINED;
    for (size_t i = 0; i < sizeof bounce_phrase_table / sizeof bounce_phrase_table[0]; i++)
        for (const char *const *p = bounce_phrase_table[i].p; *p != NULL; p++)
            if (bounce_phrase_match(text, *p))
                return bounce_phrase_table[i].r;
    return BOUNCE_R_UNDEFINED;
}

static enum bounce_reason bounce_from_code(int code)
{
    switch (code) {
    case 421: return BOUNCE_R_BLOCKED;
    case 450: return BOUNCE_R_ONHOLD;
    case 451: return BOUNCE_R_SYSTEMERROR;
    case 452: return BOUNCE_R_MAILBOXFULL;
    case 500: case 501: case 502: case 503: case 504: return BOUNCE_R_SYNTAXERROR;
    case 521: case 556: return BOUNCE_R_NOTACCEPT;
    case 550: return BOUNCE_R_ONHOLD;
    case 551: return BOUNCE_R_USERUNKNOWN;
    case 552: return BOUNCE_R_MAILBOXFULL;
    case 553: return BOUNCE_R_USERUNKNOWN;
    case 554: return BOUNCE_R_ONHOLD;
    default: return BOUNCE_R_UNDEFINED;
    }
}

enum bounce_smtp_cmd bounce__find_command(const char *text)
{
    static const struct { const char *p; enum bounce_smtp_cmd c; } cmds[] = {
        {"in reply to end of data command", BOUNCE_CMD_DATA}, {"in reply to data command", BOUNCE_CMD_DATA},
        {"after end of data", BOUNCE_CMD_DATA}, {"after data", BOUNCE_CMD_DATA}, {">>> data", BOUNCE_CMD_DATA},
        {"in reply to mail from command", BOUNCE_CMD_MAIL}, {"after mail from", BOUNCE_CMD_MAIL},
        {">>> mail from", BOUNCE_CMD_MAIL}, {"in reply to rcpt to command", BOUNCE_CMD_RCPT},
        {"after rcpt to", BOUNCE_CMD_RCPT}, {">>> rcpt to", BOUNCE_CMD_RCPT},
        {"after initial connection", BOUNCE_CMD_CONNECT}, {"in reply to helo command", BOUNCE_CMD_CONNECT},
        {"in reply to ehlo command", BOUNCE_CMD_CONNECT}, {"after helo", BOUNCE_CMD_CONNECT},
        {"after ehlo", BOUNCE_CMD_CONNECT}, {">>> helo", BOUNCE_CMD_CONNECT}, {">>> ehlo", BOUNCE_CMD_CONNECT},
    };
    /* The first command named as failed: "in reply to X command", "after X",
     * or a transcript line ">>> X" answered by "<<< 4xx/5xx". */
    const char *best = NULL;
    enum bounce_smtp_cmd c = BOUNCE_CMD_UNKNOWN;
    if (text == NULL)
        return c;
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        for (const char *p = bounce__stristr(text, cmds[i].p); p != NULL; p = bounce__stristr(p + 1, cmds[i].p)) {
            if (cmds[i].p[0] == '>') {
                const char *nl = strchr(p, '\n');
                if (nl == NULL || strncmp(nl + 1, "<<< ", 4) != 0 || (nl[5] != '4' && nl[5] != '5'))
                    continue;
            }
            if (best == NULL || p < best) {
                best = p;
                c = cmds[i].c;
            }
            break;
        }
    }
    return c;
}

static enum bounce_reason bounce_refine(enum bounce_reason r, enum bounce_smtp_cmd cmd, const char *st)
{
    switch (cmd) {
    case BOUNCE_CMD_DATA:
        /* a mailbox status (x.1.1) still means the mailbox, even at DATA */
        if (r == BOUNCE_R_USERUNKNOWN && !(st[0] && strcmp(st + 1, ".1.1") == 0))
            return BOUNCE_R_FILTERED;
        return r;
    case BOUNCE_CMD_MAIL:
        if (r == BOUNCE_R_USERUNKNOWN || r == BOUNCE_R_HOSTUNKNOWN || r == BOUNCE_R_FILTERED ||
            r == BOUNCE_R_ONHOLD || r == BOUNCE_R_UNDEFINED || r == BOUNCE_R_SECURITYERROR ||
            r == BOUNCE_R_SUSPEND || r == BOUNCE_R_SYSTEMERROR)
            return BOUNCE_R_REJECTED;
        return r;
    case BOUNCE_CMD_CONNECT:
        if (r == BOUNCE_R_USERUNKNOWN || r == BOUNCE_R_ONHOLD || r == BOUNCE_R_UNDEFINED ||
            r == BOUNCE_R_REJECTED || r == BOUNCE_R_SECURITYERROR)
            return BOUNCE_R_BLOCKED;
        return r;
    default:
        return r;
    }
}

enum bounce_reason bounce_classify_reply(int code, const char *enhanced, const char *text, int *hard)
{
    return bounce_classify_smtp(code, enhanced, text, BOUNCE_CMD_UNKNOWN, hard);
}

enum bounce_reason bounce_classify_smtp(int code, const char *enhanced, const char *text,
                                        enum bounce_smtp_cmd cmd, int *hard)
{
    char st[16] = "";
    char *norm = NULL;
    enum bounce_reason r = BOUNCE_R_UNDEFINED;
    if (enhanced != NULL && enhanced[0] != '\0')
        snprintf(st, sizeof st, "%s", enhanced);
    else if (text != NULL)
        bounce__find_status(text, st, sizeof st);
    if (code == 0 && text != NULL)
        code = bounce__find_code(text, NULL);

    if (st[0] == '2' || (st[0] == '\0' && code >= 200 && code < 300)) {
        r = BOUNCE_R_DELIVERED;
        goto out;
    }
    const struct bounce_status_map *sm = bounce_status_lookup(st);
    if (sm != NULL && sm->specific) {
        r = sm->r;
        goto out;
    }
    if (text != NULL) {
        size_t n = strlen(text);
        if (n > 8192)
            n = 8192; /* bounded work: the reason is in the first lines */
        norm = bounce__strndup(text, n);
        if (norm != NULL) {
            bounce__normalise(norm);
            r = bounce__classify_text(norm);
        }
    }
    if (r != BOUNCE_R_UNDEFINED)
        goto out;
    if (sm != NULL) {
        r = sm->r;
        goto out;
    }
    r = bounce_from_code(code);
    if (r == BOUNCE_R_UNDEFINED && ((code >= 400 && code < 600) || st[0] == '4' || st[0] == '5'))
        r = BOUNCE_R_ONHOLD;
out:
    free(norm);
    if (r != BOUNCE_R_DELIVERED)
        r = bounce_refine(r, cmd, st);
    if (hard != NULL)
        *hard = bounce_reason_hard(r, code, st);
    return r;
}
