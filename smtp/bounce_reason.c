/* The one classifier: a recipient's facts (SMTP reply code, RFC 3463
 * enhanced status, diagnostic text, the SMTP command that failed, the DSN
 * action, the remote host, and the reading of the reporting MTA's own
 * format) -> reason in the Sisimai taxonomy + hard/soft. Used for
 * asynchronous bounces and for the synchronous replies of the egress client.
 *
 * The order of decision is the one that Sisimai (https://libsisimai.org,
 * BSD 2-Clause, (C) azumakuniyuki) arrived at over years of real bounces;
 * this is our own implementation of it and the phrase tables re-express
 * its knowledge of what real MTAs write:
 *  1. a reason the format reader is sure of (an MTA's own message table,
 *     ARF, RFC 3834) stands, unless it is one of the weak ones (userunknown,
 *     hostunknown, systemerror, securityerror, networkerror, expired,
 *     onhold, undefined), which the next steps may refine;
 *  2. the local delivery agent (procmail, dovecot, maildrop, ...) quoted in
 *     the diagnostic;
 *  3. the remote provider's own error table (bounce_rhost.c), chosen by the
 *     recipient domain or the remote host name;
 *  4. "probes" in a fixed order: each reason looks at the enhanced status,
 *     the command, the reply code and its phrase list;
 *  5. the phrase lists alone, then the status class (x.6 content, x.7
 *     security), the diagnostic type (X-Unix: mailer), the reply code
 *     (50x syntax), the action (delayed: expired), the command (HELO:
 *     blocked);
 *  6. onhold when there is a diagnostic that says nothing we know,
 *     undefined when there is none.
 * All matching is on the lower-cased diagnostic with white space squeezed;
 * a phrase "a*b" means "a", then "b" later in the text. */
#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
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

/* ---- enhanced status codes (RFC 3463, RFC 5248, later registrations) ---- */

static const struct {
    const char *st;
    enum bounce_reason r;
} bounce_status_names[] = {
    {"2.1.5", BOUNCE_R_DELIVERED},
    {"4.1.6", BOUNCE_R_HASMOVED},        {"4.1.7", BOUNCE_R_REJECTED},       {"4.1.8", BOUNCE_R_REJECTED},
    {"4.1.9", BOUNCE_R_SYSTEMERROR},     {"4.2.1", BOUNCE_R_BLOCKED},        {"4.2.2", BOUNCE_R_MAILBOXFULL},
    {"4.2.3", BOUNCE_R_EXCEEDLIMIT},     {"4.2.4", BOUNCE_R_FILTERED},       {"4.3.1", BOUNCE_R_SYSTEMFULL},
    {"4.3.2", BOUNCE_R_NOTACCEPT},       {"4.3.3", BOUNCE_R_SYSTEMERROR},    {"4.3.5", BOUNCE_R_SYSTEMERROR},
    {"4.4.1", BOUNCE_R_EXPIRED},         {"4.4.2", BOUNCE_R_NETWORKERROR},   {"4.4.3", BOUNCE_R_SYSTEMERROR},
    {"4.4.4", BOUNCE_R_NETWORKERROR},    {"4.4.5", BOUNCE_R_SYSTEMFULL},     {"4.4.6", BOUNCE_R_NETWORKERROR},
    {"4.4.7", BOUNCE_R_EXPIRED},         {"4.4.8", BOUNCE_R_NETWORKERROR},   {"4.5.3", BOUNCE_R_SYSTEMERROR},
    {"4.5.5", BOUNCE_R_SYSTEMERROR},     {"4.6.0", BOUNCE_R_CONTENTERROR},   {"4.6.2", BOUNCE_R_CONTENTERROR},
    {"4.6.5", BOUNCE_R_CONTENTERROR},    {"4.7.1", BOUNCE_R_BLOCKED},        {"4.7.2", BOUNCE_R_BLOCKED},
    {"4.7.5", BOUNCE_R_SECURITYERROR},   {"4.7.6", BOUNCE_R_SECURITYERROR},  {"4.7.7", BOUNCE_R_SECURITYERROR},
    {"4.7.12", BOUNCE_R_SECURITYERROR},  {"4.7.15", BOUNCE_R_SECURITYERROR}, {"4.7.16", BOUNCE_R_MESGTOOBIG},
    {"4.7.24", BOUNCE_R_AUTHFAILURE},    {"4.7.25", BOUNCE_R_REQUIREPTR},    {"4.7.26", BOUNCE_R_AUTHFAILURE},
    {"5.1.0", BOUNCE_R_USERUNKNOWN},     {"5.1.1", BOUNCE_R_USERUNKNOWN},    {"5.1.2", BOUNCE_R_HOSTUNKNOWN},
    {"5.1.3", BOUNCE_R_USERUNKNOWN},     {"5.1.4", BOUNCE_R_FILTERED},       {"5.1.6", BOUNCE_R_HASMOVED},
    {"5.1.7", BOUNCE_R_REJECTED},        {"5.1.8", BOUNCE_R_REJECTED},       {"5.1.9", BOUNCE_R_SYSTEMERROR},
    {"5.1.10", BOUNCE_R_NOTACCEPT},      {"5.2.0", BOUNCE_R_FILTERED},       {"5.2.1", BOUNCE_R_FILTERED},
    {"5.2.2", BOUNCE_R_MAILBOXFULL},     {"5.2.3", BOUNCE_R_EXCEEDLIMIT},    {"5.2.4", BOUNCE_R_FILTERED},
    {"5.3.0", BOUNCE_R_SYSTEMERROR},     {"5.3.1", BOUNCE_R_SYSTEMFULL},     {"5.3.2", BOUNCE_R_NOTACCEPT},
    {"5.3.3", BOUNCE_R_SYSTEMERROR},     {"5.3.4", BOUNCE_R_MESGTOOBIG},     {"5.3.5", BOUNCE_R_SYSTEMERROR},
    {"5.4.0", BOUNCE_R_NETWORKERROR},    {"5.4.3", BOUNCE_R_SYSTEMERROR},    {"5.4.4", BOUNCE_R_HOSTUNKNOWN},
    {"5.5.2", BOUNCE_R_SYNTAXERROR},     {"5.5.3", BOUNCE_R_TOOMANYCONN},    {"5.5.4", BOUNCE_R_SYSTEMERROR},
    {"5.5.5", BOUNCE_R_SYSTEMERROR},     {"5.5.6", BOUNCE_R_SYNTAXERROR},    {"5.6.0", BOUNCE_R_CONTENTERROR},
    {"5.6.1", BOUNCE_R_CONTENTERROR},    {"5.6.2", BOUNCE_R_CONTENTERROR},   {"5.6.3", BOUNCE_R_CONTENTERROR},
    {"5.6.5", BOUNCE_R_CONTENTERROR},    {"5.6.6", BOUNCE_R_CONTENTERROR},   {"5.6.7", BOUNCE_R_CONTENTERROR},
    {"5.6.8", BOUNCE_R_CONTENTERROR},    {"5.6.9", BOUNCE_R_CONTENTERROR},   {"5.7.0", BOUNCE_R_SECURITYERROR},
    {"5.7.1", BOUNCE_R_SECURITYERROR},   {"5.7.2", BOUNCE_R_SECURITYERROR},  {"5.7.3", BOUNCE_R_SECURITYERROR},
    {"5.7.4", BOUNCE_R_SECURITYERROR},   {"5.7.5", BOUNCE_R_SECURITYERROR},  {"5.7.6", BOUNCE_R_SECURITYERROR},
    {"5.7.7", BOUNCE_R_SECURITYERROR},   {"5.7.8", BOUNCE_R_SECURITYERROR},  {"5.7.9", BOUNCE_R_SECURITYERROR},
    {"5.7.10", BOUNCE_R_SECURITYERROR},  {"5.7.11", BOUNCE_R_SECURITYERROR}, {"5.7.13", BOUNCE_R_SUSPEND},
    {"5.7.14", BOUNCE_R_SECURITYERROR},  {"5.7.15", BOUNCE_R_SECURITYERROR}, {"5.7.16", BOUNCE_R_MESGTOOBIG},
    {"5.7.17", BOUNCE_R_HASMOVED},       {"5.7.18", BOUNCE_R_HASMOVED},      {"5.7.19", BOUNCE_R_SECURITYERROR},
    {"5.7.20", BOUNCE_R_AUTHFAILURE},    {"5.7.21", BOUNCE_R_AUTHFAILURE},   {"5.7.22", BOUNCE_R_AUTHFAILURE},
    {"5.7.23", BOUNCE_R_AUTHFAILURE},    {"5.7.24", BOUNCE_R_AUTHFAILURE},   {"5.7.25", BOUNCE_R_REQUIREPTR},
    {"5.7.26", BOUNCE_R_AUTHFAILURE},    {"5.7.27", BOUNCE_R_NOTACCEPT},     {"5.7.28", BOUNCE_R_SPAMDETECTED},
    {"5.7.29", BOUNCE_R_AUTHFAILURE},    {"5.7.30", BOUNCE_R_FAILEDSTARTTLS},
};

/* "c.s.d" (c 2, 4 or 5; s one digit; d one or two) as a slot of
 * bounce_status_slot[], or -1: a decision asks once, and a strcmp per
 * entry of the list was a tenth of the decision's instructions. */
static int bounce_status_key(const char *st)
{
    int c = st[0] == '2' ? 0 : st[0] == '4' ? 1 : st[0] == '5' ? 2 : -1;
    if (c < 0 || st[1] != '.' || !isdigit((unsigned char)st[2]) || st[3] != '.' ||
        !isdigit((unsigned char)st[4]))
        return -1;
    int d = st[4] - '0';
    if (isdigit((unsigned char)st[5]))
        d = d * 10 + (st[5] - '0');
    return (c * 10 + (st[2] - '0')) * 100 + d;
}

/* 1 + index into bounce_status_names, 0: none. Built once. */
static unsigned char bounce_status_slot[3 * 10 * 100];
static pthread_once_t bounce_status_once = PTHREAD_ONCE_INIT;

static void bounce_status_init(void)
{
    for (size_t i = 0; i < sizeof bounce_status_names / sizeof bounce_status_names[0]; i++)
        bounce_status_slot[bounce_status_key(bounce_status_names[i].st)] = (unsigned char)(i + 1);
}

enum bounce_reason bounce__status_reason(const char *st)
{
    if (st == NULL || st[0] == '\0')
        return BOUNCE_R_NONE;
    int key = bounce_status_key(st);
    if (key < 0)
        return BOUNCE_R_NONE;
    pthread_once(&bounce_status_once, bounce_status_init);
    unsigned slot = bounce_status_slot[key];
    /* the key ignores what follows the code: the whole string must match */
    if (slot == 0 || strcmp(st, bounce_status_names[slot - 1].st) != 0)
        return BOUNCE_R_NONE;
    return bounce_status_names[slot - 1].r;
}

/* ---- phrases per reason --------------------------------------------------- */

static const char *const bounce_ph_authfailure[] = {
    "//spf.pobox.com", "bad spf records for", "dmarc policy", "please inspect your spf settings",
    "sender policy framework (spf) fail", "sender policy framework violation",
    "spf (sender policy framework) domain authentication fail", "spf check: fail",
    " is not allowed to send mail.*_401", "is not allowed to send from <* per it's spf record",
    NULL,
};
static const char *const bounce_ph_badreputation[] = {
    "a poor email reputation score", "has been temporarily rate limited due to ip reputation",
    "ip/domain reputation problems", "likely suspicious due to the very low reputation",
    "none/bad reputation", "temporarily deferred due to unexpected volume or user complaints",
    "the sending mta's poor reputation",
    NULL,
};
static const char *const bounce_ph_blocked[] = {
    " said: 550 blocked", "//www.spamcop.net/bl.", "bad sender ip address", "banned sending ip",
    "blacklisted by", "blocked using ", "blocked - see http", "dnsbl:attrbl",
    "client host rejected: abus detecte gu_eib_02", "client host rejected: abus detecte gu_eib_04",
    "client host rejected: may not be mail exchanger", "client host rejected: was not authenticated",
    "confirm this mail server", "connection dropped", "connection refused by", "connection reset by peer",
    "connection was dropped by remote host", "connections not accepted from ip addresses on spamhaus xbl",
    "currently sending spam see: ", "domain does not exist:", "dynamic/zombied/spam ips blocked",
    "error: no valid recipients from ", "esmtp not accepting connections", "extreme bad ip profile",
    "go away", "helo command rejected:", "host network not allowed", "hosts with dynamic ip",
    "invalid ip for sending mail of domain", "is in a black list", "is not allowed to send mail from",
    "no access from mail server", "no matches to nameserver query",
    "not currently accepting mail from your ip", "part of their network is on our block list",
    "please use the smtp server of your isp", "refused - see http", "rejected - multi-blacklist",
    "rejected because the sending mta or the sender has not passed validation", "rejecting open proxy",
    "sender ip address rejected", "server access forbidden by your ip ",
    "service not available, closing transmission channel",
    "smtp error from remote mail server after initial connection:",
    "sorry, that domain isn't in my list of allowed rcpthosts",
    "sorry, your remotehost looks suspiciously like spammer",
    "temporarily deferred due to unexpected volume or user complaints",
    "to submit messages to this e-mail system has been rejected", "too many spams from your ip",
    "too many unwanted messages have been sent from the following ip address above", "was blocked by ",
    "we do not accept mail from dynamic ips", "you are not allowed to connect", "you are sending spam",
    "your ip address is listed in the rbl", "your network is temporary blacklisted",
    "your server requires confirmation", "(*@*:blocked)", "access from ip address * blocked",
    "client host * blocked using",
    "connections will not be accepted from * because the ip is in spamhaus's list", "dnsbl:rbl *>_is_blocked",
    "email blocked by *.barracudacentral.org", "email blocked by *spamhaus",
    "host * refused to talk to me: * blocked", "ip * is blocked by earthlink", "is in an *rbl on ",
    "mail server at * is blocked", "mail from * refused:", "mail from * refused, see *orbs",
    "message from * rejected based on blacklist",
    "messages from * temporarily deferred due to user complaints", "server ip * listed as abusive",
    "sorry! your ip address* is blocked by rbl", "the domain * is blacklisted", "the email * is blacklisted",
    "the ip* is blacklisted", "veuillez essayer plus tard. service refused, please try later. *103",
    "veuillez essayer plus tard. service refused, please try later. *510",
    "your access ip* has been rejected", "your sender's ip address is listed at *.abuseat.org",
    NULL,
};
static const char *const bounce_ph_contenterror[] = {
    "duplicate header", "header size exceeds maximum permitted",
    "improper use of 8-bit data in message header",
    "message header size, or recipient list, exceeds policy limit",
    "message mime complexity exceeds the policy maximum",
    "routing loop detected -- too many received: headers", "this message contain invalid mime headers",
    "this message contain improperly-formatted binary content",
    "this message contain text that uses unnecessary base64 encoding",
    NULL,
};
static const char *const bounce_ph_exceedlimit[] = {
    "message header size exceeds limit", "message too large",
    NULL,
};
static const char *const bounce_ph_expired[] = {
    "connection timed out", "could not find a gateway for", "delivery attempts will continue to be",
    "delivery expired", "delivery time expired", "failed to deliver to domain ", "giving up on",
    "have been failing for a long time", "has been delayed", "it has not been collected after",
    "message expired after sitting in queue for", "message expired, cannot connect to remote server",
    "message expired, connection refulsed", "message timed out",
    "retry time not reached for any host after a long failure period", "server did not respond",
    "this message has been in the queue too long", "unable to deliver message after multiple retries",
    "was not reachable within the allowed queue period", "your message could not be delivered for more than",
    "could not be delivered for* days",
    NULL,
};
static const char *const bounce_ph_failedstarttls[] = {
    "starttls is required to send mail", "tls required but not supported",
    NULL,
};
static const char *const bounce_ph_filtered[] = {
    "because the recipient is only accepting mail from specific email addresses", "bounced address",
    "due to extended inactivity new mail is not currently being accepted for this mailbox",
    "has restricted sms e-mail", "is not accepting any mail", "message filtered",
    "message rejected due to user rules", "not found recipient account",
    "refused due to recipient preferences", "resolver.rst.notauthorized", "this account is protected by",
    "user not found", "user refuses to receive this mail", "user reject",
    "we failed to deliver mail because the following address recipient id refuse to receive mail",
    "you have been blocked by the recipient",
    NULL,
};
static const char *const bounce_ph_hasmoved[] = {
    " has been replaced by ",
    NULL,
};
static const char *const bounce_ph_hostunknown[] = {
    "domain does not exist", "domain is not reachable", "domain must exist", "host or domain name not found",
    "host unknown", "host unreachable", "mail domain mentioned in email address is unknown",
    "name or service not known", "no such domain", "recipient address rejected: unknown domain name",
    "recipient domain must exist", "the account or domain may not exist", "unknown host",
    "unroutable address", "unrouteable address", "553 * does not exist",
    NULL,
};
static const char *const bounce_ph_mailboxfull[] = {
    "452 insufficient disk space", "account disabled temporarly for exceeding receiving limits",
    "account is exceeding their quota", "account is over quota", "account is temporarily over quota",
    "boite du destinataire pleine", "delivery failed: over quota", "disc quota exceeded", "diskspace quota",
    "does not have enough space", "exceeded storage allocation", "exceeding its mailbox quota",
    "full mailbox", "is over disk quota", "is over quota temporarily",
    "mail file size exceeds the maximum size allowed for mail delivery", "mail quota exceeded",
    "mailbox exceeded the local limit", "mailbox full", "mailbox has exceeded its disk space limit",
    "mailbox is full", "mailbox over quota", "mailbox quota usage exceeded", "mailbox size limit exceeded",
    "maildir over quota", "maildir delivery failed: userdisk quota ",
    "maildir delivery failed: domaindisk quota ", "mailfolder is full", "no space left on device",
    "not enough disk space", "not enough storage space in", "not sufficient disk space",
    "over the allowed quota", "quota exceeded", "quota violation for", "recipient reached disk quota",
    "recipient rejected: mailbox would exceed maximum allowed storage",
    "the recipient mailbox has exceeded its disk space limit", "the user's space has been used up",
    "the user you are trying to reach is over quota", "too much mail data",
    "user has exceeded quota, bouncing mail", "user has too many messages on the server",
    "user is over quota", "user is over the quota", "user over quota", "user over quota. (#5.1.1)",
    "was automatically rejected: quota exceeded", "would be over the allowed quota",
    NULL,
};
static const char *const bounce_ph_mailererror[] = {
    " || exit ", "procmail: ", "bin/procmail", "bin/maidrop", "command failed: ", "command died with status ",
    "command output:", "mailer error", "pipe to |/", "x-unix; ",
    NULL,
};
static const char *const bounce_ph_mesgtoobig[] = {
    "exceeded maximum inbound message size", "exceeded the maximum incoming message size",
    "line limit exceeded", "max message size exceeded", "message file too big",
    "message length exceeds administrative limit", "message size exceeds fixed limit",
    "message size exceeds fixed maximum message size", "message size exceeds maximum value",
    "message too big", "message too large for this ", "size limit", "taille limite du message atteinte",
    NULL,
};
static const char *const bounce_ph_networkerror[] = {
    "could not connect and send the mail to", "dns records for the destination computer could not be found",
    "hop count exceeded - possible mail loop", "host is unreachable", "host name lookup failure",
    "host not found, try again", "mail forwarding loop for ", "malformed name server reply",
    "malformed or unexpected name server reply", "maximum forwarding loop count exceeded", "message looping",
    "message probably in a routing loop", "no route to host", "too many hops", "unable to resolve route ",
    "unrouteable mail domain",
    NULL,
};
static const char *const bounce_ph_norelaying[] = {
    "as a relay", "email address is not verified.", "insecure mail relay",
    "is not permitted to relay through this server without authentication",
    "mail server requires authentication when attempting to send to a non-local e-mail address",
    "no relaying", "not a gateway", "not allowed to relay through this machine",
    "not an open relay, so get lost", "not local host", "relay access denied", "relay denied",
    "relaying mail to ", "relay not permitted", "relaying denied", "relaying mail to ",
    "specified domain is not allowed", "that domain isn't in my list of allowed rcpthost",
    "this system is not configured to relay mail", "unable to relay for", "we don't handle mail for",
    NULL,
};
static const char *const bounce_ph_notaccept[] = {
    "does not accept mail (nullmx)", "host/domain does not accept mail", "host does not accept mail",
    "mail receiving disabled", "name server: .: host not found", "no mx record found for domain=",
    "no route for current request", "smtp protocol returned a permanent error",
    NULL,
};
static const char *const bounce_ph_notcompliantrfc[] = {
    "duplicate header", "this message is not rfc 5322 compliant",
    "https://support.google.com/mail/?p=rfcmessagenoncompliant", " multiple * header",
    NULL,
};
static const char *const bounce_ph_policyviolation[] = {
    "an illegal attachment on your message", "because the recipient is not accepting mail with ",
    "by non-member to a members-only list", "closed mailing list", "denied by policy",
    "email not accepted for policy reasons", "email rejected due to security policies",
    "header are not accepted", "header error", "local policy violation",
    "message bounced due to organizational settings", "message given low priority",
    "message not accepted for policy reasons", "message rejected due to local policy",
    "messages with multiple addresses", "rejected for policy reasons", "protocol violation",
    "the email address used to send your message is not subscribed to this group",
    "the message was rejected by organization policy",
    "this message was blocked because its content presents a potential",
    "we do not accept messages containing images or other attachments", "you're using a mass mailer",
    "you have exceeded the*allowable number of posts without solving a captcha",
    NULL,
};
static const char *const bounce_ph_rejected_isnot[] = {
    "5.1.0 address rejected", "recipient address rejected", "sender ip address rejected",
    NULL,
};
static const char *const bounce_ph_rejected[] = {
    "access denied (in reply to mail from command)", "access denied (sender blacklisted)", "address rejected",
    "administrative prohibition", "batv failed to verify", "batv validation failure",
    "backscatter protection detected an invalid or expired email address",
    "because the sender isn't on the recipient's list of senders to accept mail from", "bogus mail from",
    "can't determine purported responsible address",
    "connections not accepted from servers without a valid sender domain", "denied [bouncedeny]",
    "denied by secumail valid-address-filter", "delivery not authorized, message refused",
    "does not exist e2110", "domain of sender address ", "email address is on senderfilterconfig list",
    "emetteur invalide", "empty envelope senders not allowed", "envelope blocked - ",
    "error: no third-party dsns", "from: domain is invalid. please provide a valid from:",
    "fully qualified email address required", "invalid domain, see <url:", "invalid sender",
    "is not a registered gateway user", "mail from not owned by user",
    "message rejected: email address is not verified", "mx records for ", "null sender is not allowed",
    "recipient addresses rejected : access denied", "recipient not accepted. (batv: no tag",
    "returned mail not accepted here", "rfc 1035 violation: recursive cname records for",
    "rule imposed mailbox access for", "sending this from a different address or alias using the ",
    "sender address has been blacklisted", "sender email address rejected", "sender is in my black list",
    "sender is spammer", "sender not pre-approved", "sender rejected", "sender domain is empty",
    "sender verify failed", "sender was rejected", "spam reporting address",
    "syntax error: empty email address", "the message has been rejected by batv defense",
    "this server does not accept mail from", "transaction failed unsigned dsn for",
    "unroutable sender address", "you are not allowed to post to this mailing list",
    "you are sending to/from an address that has been blacklisted",
    "your access to submit messages to this e-mail system has been rejected",
    "your email address has been blacklisted",
    NULL,
};
static const char *const bounce_ph_requireptr[] = {
    "access denied. ip name lookup failed",
    "all mail servers must have a ptr record with a valid reverse dns entry", "bad dns ptr resource record",
    "cannot find your hostname", "cannot resolve your address.",
    "client host rejected: cannot find your hostname", "fix reverse dns for ", "ips with missing ptr records",
    "no ptr record found.", "please get a custom reverse dns name from your isp for your host",
    "ptr record setup", "reverse dns failed", "reverse dns required", "sender ip reverse lookup rejected",
    "the ip address sending this message does not have a ptr record setup",
    "the corresponding forward dns entry does not point to the sending ip",
    "this system will not accept messages from servers/devices with no reverse dns",
    "unresolvable relay host name",
    "we do not accept mail from hosts with dynamic ip or generic dns ptr-records",
    "domain * mismatches client ip", "dns lookup failure: * try again later",
    "reverse dns lookup for host * failed permanently",
    "server access * forbidden by invalid rdns record of your mail server",
    "service permits * unverifyable sending ips",
    NULL,
};
static const char *const bounce_ph_securityerror[] = {
    "account not subscribed to ses", "authentication credentials invalid", "authentication failure",
    "authentication required", "authentication turned on in your email client",
    "executable files are not allowed in compressed files", "insecure mail relay",
    "recipient address rejected: access denied",
    "sorry, you don't authenticate or the domain isn't in my list of allowed rcpthosts",
    "unauthenticated senders not allowed", "verification failure",
    "you are not authorized to send mail, authentication is required",
    "authentication failed; server * said: ", "authentification invalide*305", "authentification requise*402",
    "domain * is a dead domain", "user * is not authorized to perform ses:sendrawemail on resource",
    NULL,
};
static const char *const bounce_ph_spamdetected[] = {
    " - spam", "//www.spamhaus.org/help/help_spam_16.htm", "//dsbl.org/help/help_spam_16.htm",
    "//mail.163.com/help/help_spam_16.htm", "554 5.7.0 reject, id=", "appears to be unsolicited",
    "blacklisted url in message", "block for spam", "blocked by policy: no spam please",
    "blocked by spamassassin", "blocked for abuse. see http://att.net/blocks",
    "cannot be forwarded because it was detected as spam",
    "considered unsolicited bulk e-mail (spam) by our mail filters", "content filter rejection",
    "cyberoam anti spam engine has identified this email as a bulk email", "denied due to spam list",
    "high probability of spam", "is classified as spam and is rejected", "listed in work.drbl.imedia.ru",
    "the mail server detected your message as spam and has prevented delivery.",
    "mail appears to be unsolicited", "mail content denied", "may consider spam",
    "message considered as spam or virus", "message contains spam or virus", "message content rejected",
    "message detected as spam", "message filtered", "message filtered. please see the faqs section on spam",
    "message filtered. refer to the troubleshooting page at ", "message looks like spam",
    "message is being rejected as it seems to be a spam", "message refused by mailmarshal spamprofiler",
    "message refused by trustwave seg spamprofiler", "message rejected as spam",
    "message rejected because of unacceptable content", "message rejected due to suspected spam content",
    "message rejected for policy reasons", "message was rejected for possible spam/virus content",
    "our email server thinks this email is spam", "our system has detected that this message is ",
    "probable spam", "reject bulk.advertising", "rejected: spamassassin score ", "rejected - bulk email",
    "rejecting banned content", "rejecting mail content", "related to content with spam-like characteristics",
    "sender domain listed at ", "sending address not accepted due to spam filter", "spam blocked",
    "spam check", "spam content matched", "spam detected", "spam email", "spam email not accepted",
    "spam message rejected.", "spam not accepted", "spam refused", "spam rejection", "spam score ",
    "spambouncer identified spam", "spamming not allowed", "too many spam complaints", "too much spam.",
    "the email message was detected as spam", "the message has been rejected by spam filtering engine",
    "the message was rejected due to classification as bulk mail",
    "the content of this message looked like spam", "this message appears to be spam",
    "this message has been identified as spam", "this message has been scored as spam with a probability",
    "this message was classified as spam", "this message was rejected by recurrent pattern detection system",
    "transaction failed spam message not queued", "we dont accept spam",
    "your email appears similar to spam we have received before", "your email breaches local uribl policy",
    "your email had spam-like ", "your email is considered spam", "your email is probably spam",
    "your email was detected as spam", "your message as spam and has prevented delivery",
    "your message has been temporarily blocked by our filter",
    "your message has been rejected because it appears to be spam", "your message has triggered a spam block",
    "your message may contain the spam contents", "your message failed several antispam checks",
    "greylisted* please try again in", "mail score (* over ", "mail rejete. mail rejected. *506",
    "our filters rate at and above * percent probability of being spam", "rejected by * (spam)",
    "rejected due to spam *classification", "rejected due to spam *content",
    "rule imposed as * is blacklisted on", "spam * exceeded", "this message scored * spam points",
    NULL,
};
static const char *const bounce_ph_speeding[] = {
    "mail sent from your ip address has been temporarily rate limited", "please try again slower",
    "receiving mail at a rate that prevents additional messages from being delivered",
    NULL,
};
static const char *const bounce_ph_suspend[] = {
    " is currently suspended", " temporary locked", "archived recipient", "boite du destinataire archivee",
    "email account that you tried to reach is disabled", "has been suspended", "inactive account",
    "invalid/inactive user", "is a deactivated mailbox", "is unavailable: user is terminated",
    "mailbox currently suspended", "mailbox disabled", "mailbox is frozen",
    "mailbox unavailable or access denied", "recipient rejected: temporarily inactive",
    "recipient suspend the service", "this account has been disabled or discontinued",
    "this account has been temporarily suspended", "this address no longer accepts mail",
    "this mailbox is disabled", "user or domain is disabled", "user suspended",
    "vdelivermail: account is locked email bounced",
    NULL,
};
static const char *const bounce_ph_systemerror[] = {
    "aliasing/forwarding loop broken", "can't create user output file", "could not load drd for domain",
    "internal error reading data", "internal server error: operation now in progress",
    "interrupted system call", "it encountered an error while being processed", "it would create a mail loop",
    "local configuration error", "local error in processing", "loop was found in the mail exchanger",
    "loops back to myself", "mail system configuration error", "queue file write error",
    "recipient deferred because there is no mdb", "remote server is misconfigured",
    "server configuration error", "service currently unavailable", "system config error",
    "temporary local problem", "timeout waiting for input", "transaction failed ",
    "unable to connect *daemon",
    NULL,
};
static const char *const bounce_ph_systemfull[] = {
    "mail system full", "requested mail action aborted: exceeded storage allocation",
    NULL,
};
static const char *const bounce_ph_toomanyconn[] = {
    "all available ips are at maximum connection limit", "connection rate limit exceeded",
    "exceeds per-domain connection limit for", "has exceeded the max emails per hour ",
    "throttling failure: daily message quota exceeded", "throttling failure: maximum sending rate exceeded",
    "too many connections", "too many connections from your host.", "too many concurrent smtp connections",
    "too many errors from your ip", "too many recipients", "too many smtp sessions for this host",
    "trop de connexions, ", "we have already made numerous attempts to deliver this message",
    NULL,
};
static const char *const bounce_ph_userunknown[] = {
    "#5.1.1 bad address", "550 address invalid", "5.1.0 address rejected.", "address does not exist",
    "address not present in directory", "address unknown", "can't accept user", "does not exist.",
    "destination addresses were unknown", "destination server rejected recipients",
    "email address does not exist", "email address could not be found", "invalid address", "invalid mailbox",
    "invalid mailbox path", "invalid recipient", "is not a known user", "is not a valid mailbox",
    "is not an active address at this host", "mailbox does not exist", "mailbox invalid",
    "mailbox is inactive", "mailbox is unavailable", "mailbox not present", "mailbox not found",
    "mailbox unavaiable", "nessun utente simile in questo indirizzo", "no account by that name here",
    "no existe dicha persona", "no existe ese usuario ", "no mail box available for this user",
    "no mailbox by that name is currently available", "no mailbox found", "no such address here",
    "no such mailbox", "no such person at this address", "no such recipient", "no such user",
    "no thank you rejected: account unavailable", "no valid recipients, bye", "not a valid recipient",
    "not a valid user here", "not a local address", "not email addresses",
    "recipient address rejected. (in reply to rcpt to command)", "recipient address rejected: access denied",
    "recipient address rejected: invalid user", "recipient address rejected: invalid-recipient",
    "recipient address rejected: unknown user", "recipient address rejected: userunknown",
    "recipient does not exist", "recipient is not accepted", "recipient is not local", "recipient not exist",
    "recipient not found", "recipient not ok", "recipient refuses to accept your mail", "recipient unknown",
    "requested action not taken: mailbox unavailable", "resolver.adr.recipient notfound",
    "sorry, user unknown", "sorry, badrcptto", "sorry, no mailbox here by that name",
    "sorry, your envelope recipient has been denied",
    "that domain or user isn't in my list of allowed rcpthosts",
    "the email account that you tried to reach does not exist", "the following recipients was undeliverable",
    "the user's email name is not found", "there is no one at this address",
    "this address no longer accepts mail", "this email address is wrong or no longer valid",
    "this recipient is in my badrecipientto list", "this recipient is not in my validrcptto list",
    "this spectator does not exist", "unknown mailbox", "unknown recipient", "unknown user",
    "user does not exist", "user missing home directory", "user not active", "user not exist",
    "user not found", "user not known", "user unknown", "utilisateur inconnu !",
    "vdeliver: invalid or unknown virtual user", "your envelope recipient is in my badrcptto list",
    "<*> not found", "<*>... blocked by ", "account * does not exist at the organization",
    "adresse d au moins un destinataire invalide. invalid recipient.*416",
    "adresse d au moins un destinataire invalide. invalid recipient.*418", "bad*recipient",
    "mailbox *does not exist", "mailbox *unavailable or access denied", "no * in name directory",
    "non*existent user", "rcpt <* does not exist", "rcpt (*t exist ", "recipient * was not found in",
    "recipient address rejected: user *  does not exist",
    "recipient address rejected: user unknown in *  table", "said: 550-5.1.1 * user unknown ",
    "said: 550 5.1.1 * user unknown ", "this user doesn't have a * account", "unknown e*mail address",
    "unknown local*part", "user * was not found", "user * does not exist", "user (*) unknown",
    NULL,
};
static const char *const bounce_ph_vacation[] = {
    "i am away on vacation", "i am away until", "i am out of the office", "i will be traveling for work on",
    NULL,
};
static const char *const bounce_ph_virusdetected[] = {
    "it has a potentially executable attachment",
    "the message was rejected because it contains prohibited virus or spam content",
    "this form of attachment has been used by recent viruses or other malware", "virus detected",
    "virus phishing/malicious_url detected", "your message was infected with a virus",
    NULL,
};

static const char *const *const bounce_phrases[BOUNCE_R_COUNT] = {
    [BOUNCE_R_AUTHFAILURE] = bounce_ph_authfailure,     [BOUNCE_R_BADREPUTATION] = bounce_ph_badreputation,
    [BOUNCE_R_BLOCKED] = bounce_ph_blocked,             [BOUNCE_R_CONTENTERROR] = bounce_ph_contenterror,
    [BOUNCE_R_EXCEEDLIMIT] = bounce_ph_exceedlimit,     [BOUNCE_R_EXPIRED] = bounce_ph_expired,
    [BOUNCE_R_FAILEDSTARTTLS] = bounce_ph_failedstarttls, [BOUNCE_R_FILTERED] = bounce_ph_filtered,
    [BOUNCE_R_HASMOVED] = bounce_ph_hasmoved,           [BOUNCE_R_HOSTUNKNOWN] = bounce_ph_hostunknown,
    [BOUNCE_R_MAILBOXFULL] = bounce_ph_mailboxfull,     [BOUNCE_R_MAILERERROR] = bounce_ph_mailererror,
    [BOUNCE_R_MESGTOOBIG] = bounce_ph_mesgtoobig,       [BOUNCE_R_NETWORKERROR] = bounce_ph_networkerror,
    [BOUNCE_R_NORELAYING] = bounce_ph_norelaying,       [BOUNCE_R_NOTACCEPT] = bounce_ph_notaccept,
    [BOUNCE_R_NOTCOMPLIANTRFC] = bounce_ph_notcompliantrfc, [BOUNCE_R_POLICYVIOLATION] = bounce_ph_policyviolation,
    [BOUNCE_R_REJECTED] = bounce_ph_rejected,           [BOUNCE_R_REQUIREPTR] = bounce_ph_requireptr,
    [BOUNCE_R_SECURITYERROR] = bounce_ph_securityerror, [BOUNCE_R_SPAMDETECTED] = bounce_ph_spamdetected,
    [BOUNCE_R_SPEEDING] = bounce_ph_speeding,           [BOUNCE_R_SUSPEND] = bounce_ph_suspend,
    [BOUNCE_R_SYSTEMERROR] = bounce_ph_systemerror,     [BOUNCE_R_SYSTEMFULL] = bounce_ph_systemfull,
    [BOUNCE_R_TOOMANYCONN] = bounce_ph_toomanyconn,     [BOUNCE_R_USERUNKNOWN] = bounce_ph_userunknown,
    [BOUNCE_R_VACATION] = bounce_ph_vacation,           [BOUNCE_R_VIRUSDETECTED] = bounce_ph_virusdetected,
};

/* "a*b*c": each piece found after the end of the previous one. */
bool bounce__phrase_in(const char *text, const char *phrase)
{
    const char *star = strchr(phrase, '*');
    if (star == NULL)
        return strstr(text, phrase) != NULL;
    const char *p = text;
    for (;;) {
        char piece[160];
        size_t n = star ? (size_t)(star - phrase) : strlen(phrase);
        if (n >= sizeof piece)
            return false;
        memcpy(piece, phrase, n);
        piece[n] = '\0';
        const char *q = strstr(p, piece);
        if (q == NULL)
            return false;
        p = q + n;
        if (star == NULL)
            return true;
        phrase = star + 1;
        star = strchr(phrase, '*');
    }
}

bool bounce__phrase_any(const char *text, const char *const *list)
{
    if (text == NULL || text[0] == '\0' || list == NULL)
        return false;
    for (; *list != NULL; list++)
        if (bounce__phrase_in(text, *list))
            return true;
    return false;
}

/* As bounce__phrase_any, ignoring case (for texts not lower-cased yet). */
bool bounce__phrase_any_ci(const char *text, const char *const *list)
{
    if (text == NULL || text[0] == '\0' || list == NULL)
        return false;
    for (; *list != NULL; list++) {
        if (strchr(*list, '*') == NULL) {
            if (bounce__stristr(text, *list))
                return true;
            continue;
        }
        char *low = bounce__strndup(text, strlen(text));
        if (low == NULL)
            return false;
        bounce__lower(low);
        bool m = bounce__phrase_in(low, *list);
        free(low);
        if (m)
            return true;
    }
    return false;
}

/* ---- the decision ---------------------------------------------------------- */

#define BOUNCE_LDA_COUNT 6
/* Local delivery agents quoted in a diagnostic (after DATA or without a
 * command): the agent's own words name the reason, else it is a mailer
 * error. */
static const struct {
    const char *const *signs;
    struct { enum bounce_reason r; const char *const *p; } says[4];
} bounce_lda[BOUNCE_LDA_COUNT] = {
    {PH("your message to <*> was automatically rejected:"),
     {{BOUNCE_R_MAILBOXFULL, PH("not enough disk space", "quota exceeded")},
      {BOUNCE_R_USERUNKNOWN, PH("mailbox doesn't exist: ")}}},
    {PH("mail.local: "),
     {{BOUNCE_R_MAILBOXFULL, PH("disc quota exceeded", "mailbox full or quota exceeded")},
      {BOUNCE_R_SYSTEMERROR, PH("temporary file write error")},
      {BOUNCE_R_USERUNKNOWN, PH(": invalid mailbox path", ": unknown user:", ": user missing home directory",
                                ": user unknown")}}},
    {PH("procmail: ", "/procmail "),
     {{BOUNCE_R_MAILBOXFULL, PH("quota exceeded while writing", "user over quota")},
      {BOUNCE_R_SYSTEMERROR, PH("service unavailable")},
      {BOUNCE_R_SYSTEMFULL, PH("no space left to finish writing")}}},
    {PH("maildrop: "),
     {{BOUNCE_R_MAILBOXFULL, PH("maildir over quota.")},
      {BOUNCE_R_USERUNKNOWN, PH("cannot find system user", "invalid user specified.")}}},
    {PH("vdelivermail: "),
     {{BOUNCE_R_FILTERED, PH("user does not exist, but will deliver to ")},
      {BOUNCE_R_MAILBOXFULL, PH("domain is over quota", "user is over quota")},
      {BOUNCE_R_SUSPEND, PH("account is locked email bounced")},
      {BOUNCE_R_USERUNKNOWN, PH("sorry, no mailbox here by that name.")}}},
    {PH("vdeliver: "),
     {{BOUNCE_R_MAILBOXFULL, PH("delivery failed due to system quota violation")},
      {BOUNCE_R_USERUNKNOWN, PH("invalid or unknown base user or domain", "invalid or unknown virtual user",
                                "user name does not refer to a virtual user")}}},
};

/* Runs of four bytes ("grams") stand for the phrases and the diagnostic
 * in the index below, by a hash of 14 bits. */
#define BOUNCE_GRAM_BITS 14
#define BOUNCE_NGRAMS (1u << BOUNCE_GRAM_BITS)
#define BOUNCE_NO_GRAM BOUNCE_NGRAMS /* a bit always set */

static unsigned bounce_gram(uint32_t last4)
{
    return (uint32_t)(last4 * 2654435761u) >> (32 - BOUNCE_GRAM_BITS);
}

/* Phrases of all the lists together, at most (the tables are static:
 * bounce_sigs_init() stops the program at once if they outgrow it). */
#define BOUNCE_PH_MAX 1024

/* Each list of bounce_phrases[] (and the few below) with the grams of
 * each phrase (within a piece: "a*b" has the pieces "a" and "b"). A
 * phrase can match only if the diagnostic has all of its grams; most
 * phrases miss some, and a rare one most often (rarest by the letters'
 * frequency in English). The phrases are filed under that gram: the
 * diagnostic's grams name the few phrases worth a look, and only those are
 * searched for (a test of each phrase's rarest byte pair, list by list,
 * was a third of a decision). Built once; kept for the life of the process
 * like the tables. */
struct bounce_sigs {
    size_t n;
    size_t base;        /* its phrases are base .. base + n - 1 of all */
    const char *const *ph;
    uint32_t *first;    /* the other grams of phrase k: grams[first[k] .. first[k + 1]) */
    uint16_t *grams;
};
/* after the reasons' lists: the one that rules "rejected" out, and each
 * local delivery agent's signs */
#define BOUNCE_SIGS_ISNOT BOUNCE_R_COUNT
#define BOUNCE_SIGS_LDA (BOUNCE_R_COUNT + 1)
#define BOUNCE_SIGS_COUNT (BOUNCE_SIGS_LDA + BOUNCE_LDA_COUNT)
static struct bounce_sigs bounce_sigs[BOUNCE_SIGS_COUNT];
/* The phrases (numbers of all) filed under gram g, or under BOUNCE_NO_GRAM
 * (no piece of four bytes: always searched for):
 * bounce_by_rare[bounce_by_rare_first[g] .. bounce_by_rare_first[g + 1]). */
static uint16_t bounce_by_rare_first[BOUNCE_NGRAMS + 2];
static uint16_t bounce_by_rare[BOUNCE_PH_MAX];
/* The grams some phrase is filed under (BOUNCE_NO_GRAM aside), tested for
 * each gram of the diagnostic before its range: most ranges are empty, and
 * bounce_by_rare_first (32 KiB, larger than L1) read at random for every
 * byte cost more than this 2 KiB bitmap beside the gram bits. */
static uint64_t bounce_rare_bits[BOUNCE_NGRAMS / 64];
static pthread_once_t bounce_sigs_once = PTHREAD_ONCE_INIT;

struct bounce_judge {
    const struct bounce__fact *f;
    enum bounce_reason st;          /* reason named by the enhanced status, or NONE */
    signed char inc[BOUNCE_R_COUNT]; /* phrase list matched: -1 not tried yet, 0, 1 */
    bool indexed;                   /* grams and cand are set (when a phrase list is first asked) */
    uint64_t grams[BOUNCE_NGRAMS / 64 + 1]; /* which grams occur in the diagnostic */
    uint64_t cand[BOUNCE_PH_MAX / 64];      /* phrases filed under one of them */
};

static void bounce_cand_add(struct bounce_judge *j, unsigned g)
{
    for (unsigned x = bounce_by_rare_first[g], e = bounce_by_rare_first[g + 1]; x < e; x++)
        j->cand[bounce_by_rare[x] >> 6] |= 1ull << (bounce_by_rare[x] & 63);
}

static void bounce_index(struct bounce_judge *j)
{
    memset(j->grams, 0, sizeof j->grams);
    memset(j->cand, 0, sizeof j->cand);
    j->grams[BOUNCE_NO_GRAM >> 6] = ~0ull;
    bounce_cand_add(j, BOUNCE_NO_GRAM);
    const unsigned char *t = (const unsigned char *)j->f->diag;
    if (t[0] == '\0' || t[1] == '\0' || t[2] == '\0')
        return;
    uint32_t w = (uint32_t)t[0] << 16 | (uint32_t)t[1] << 8 | t[2];
    for (t += 3; *t != '\0'; t++) {
        w = w << 8 | *t;
        unsigned g = bounce_gram(w);
        uint64_t bit = 1ull << (g & 63);
        j->grams[g >> 6] |= bit;
        if (bounce_rare_bits[g >> 6] & bit)
            bounce_cand_add(j, g); /* again for a gram seen before: cheaper than a test */
    }
}

static bool bounce_gram_in(const struct bounce_judge *j, unsigned g)
{
    return (j->grams[g >> 6] >> (g & 63)) & 1;
}

/* How common a byte is in English text, roughly per mille; punctuation
 * and digits count as rare. */
static unsigned bounce_byte_common(unsigned char c)
{
    static const unsigned char letters[26] = {82, 15, 28, 43, 127, 22, 20, 61, 70, 2, 8, 40, 24,
                                              67, 75, 19, 1, 60, 63, 91, 28, 10, 24, 2, 20, 1};
    if (c == ' ')
        return 180;
    if (c >= 'a' && c <= 'z')
        return letters[c - 'a'];
    return c >= '0' && c <= '9' ? 5 : 3;
}

/* The phrases of list, numbered from base; *rare: the gram each is filed under. */
static void bounce_sigs_of(struct bounce_sigs *v, const char *const *list, size_t base, uint16_t *rare)
{
    size_t n = 0, bytes = 0;
    while (list != NULL && list[n] != NULL)
        bytes += strlen(list[n++]);
    if (base + n > BOUNCE_PH_MAX)
        abort(); /* raise BOUNCE_PH_MAX */
    v->n = n;
    v->base = base;
    v->ph = list;
    v->first = malloc((n + 1) * sizeof *v->first);
    v->grams = malloc((bytes + 1) * sizeof *v->grams);
    if (v->first == NULL || v->grams == NULL)
        abort(); /* a few KiB, once */
    uint32_t ng = 0;
    for (size_t k = 0; k < n; k++) {
        const unsigned char *ph = (const unsigned char *)list[k];
        uint32_t best = UINT32_MAX, at = ng, w = 0, c[4] = {0, 0, 0, 0};
        v->first[k] = ng;
        rare[base + k] = BOUNCE_NO_GRAM;
        for (size_t i = 0, run = 0; ph[i] != '\0'; i++) {
            if (ph[i] == '*') {
                run = 0;
                continue;
            }
            w = w << 8 | ph[i];
            c[i & 3] = bounce_byte_common(ph[i]);
            if (++run < 4)
                continue;
            uint32_t common = c[0] * c[1] * c[2] * c[3]; /* < 181^4 */
            v->grams[ng] = (uint16_t)bounce_gram(w);
            if (common < best) {
                best = common;
                at = ng;
            }
            ng++;
        }
        if (ng > v->first[k]) { /* the rarest out of the list, into rare */
            rare[base + k] = v->grams[at];
            v->grams[at] = v->grams[--ng];
        }
    }
    v->first[n] = ng;
}

static void bounce_sigs_init(void)
{
    uint16_t *rare = malloc(BOUNCE_PH_MAX * sizeof *rare);
    if (rare == NULL)
        abort();
    size_t base = 0;
    for (int r = 0; r < BOUNCE_SIGS_COUNT; r++) {
        const char *const *list = r < BOUNCE_R_COUNT     ? bounce_phrases[r]
                                  : r == BOUNCE_SIGS_ISNOT ? bounce_ph_rejected_isnot
                                                           : bounce_lda[r - BOUNCE_SIGS_LDA].signs;
        bounce_sigs_of(&bounce_sigs[r], list, base, rare);
        base += bounce_sigs[r].n;
    }
    /* filed by gram: counted, summed to the end of each gram's range, then
     * each phrase placed just before the end it moves down */
    for (size_t x = 0; x < base; x++) {
        bounce_by_rare_first[rare[x]]++;
        if (rare[x] != BOUNCE_NO_GRAM)
            bounce_rare_bits[rare[x] >> 6] |= 1ull << (rare[x] & 63);
    }
    for (size_t g = 1; g <= BOUNCE_NGRAMS; g++)
        bounce_by_rare_first[g] += bounce_by_rare_first[g - 1];
    bounce_by_rare_first[BOUNCE_NGRAMS + 1] = (uint16_t)base;
    for (size_t x = 0; x < base; x++)
        bounce_by_rare[--bounce_by_rare_first[rare[x]]] = (uint16_t)x;
    free(rare);
}

/* A phrase of the list is in the diagnostic. */
static bool bounce_list_in(const struct bounce_judge *j, int list)
{
    const struct bounce_sigs *v = &bounce_sigs[list];
    for (size_t x = v->base, end = v->base + v->n; x < end; x++) {
        uint64_t bits = j->cand[x >> 6] >> (x & 63);
        if (bits == 0) { /* none in the rest of this word */
            x |= 63;
            continue;
        }
        x += (size_t)__builtin_ctzll(bits);
        if (x >= end)
            break;
        size_t k = x - v->base;
        uint32_t e = v->first[k + 1], i = v->first[k];
        while (i < e && bounce_gram_in(j, v->grams[i]))
            i++;
        if (i == e && bounce__phrase_in(j->f->diag, v->ph[k]))
            return true;
    }
    return false;
}

/* A phrase of the list is in the diagnostic (the index made on first use). */
static bool bounce_in(struct bounce_judge *j, int list)
{
    if (!j->indexed) {
        bounce_index(j);
        j->indexed = true;
    }
    return j->f->diag[0] && bounce_list_in(j, list);
}

/* Phrase list of reason r matched the diagnostic (memoised per decision). */
static bool bounce_inc(struct bounce_judge *j, enum bounce_reason r)
{
    if (j->inc[r] < 0) {
        bool m = bounce_in(j, (int)r);
        if (m && r == BOUNCE_R_REJECTED && bounce_in(j, BOUNCE_SIGS_ISNOT))
            m = false;
        j->inc[r] = m;
    }
    return j->inc[r] != 0;
}

static bool bounce_cmd_before_data(enum bounce_smtp_cmd c)
{
    return c == BOUNCE_CMD_CONNECT || c == BOUNCE_CMD_HELO || c == BOUNCE_CMD_MAIL || c == BOUNCE_CMD_RCPT;
}

static bool bounce_is_explicit(enum bounce_reason r)
{
    return r != BOUNCE_R_NONE && r != BOUNCE_R_UNDEFINED && r != BOUNCE_R_ONHOLD;
}

/* Reasons that a format reader may set but later steps may still refine. */
static bool bounce_is_weak(enum bounce_reason r)
{
    switch (r) {
    case BOUNCE_R_NONE: case BOUNCE_R_UNDEFINED: case BOUNCE_R_ONHOLD: case BOUNCE_R_SYSTEMERROR:
    case BOUNCE_R_SECURITYERROR: case BOUNCE_R_EXPIRED: case BOUNCE_R_NETWORKERROR:
    case BOUNCE_R_HOSTUNKNOWN: case BOUNCE_R_USERUNKNOWN:
        return true;
    default:
        return false;
    }
}

/* One reason's own test: status, command, reply code and phrases together. */
static bool bounce_probe(struct bounce_judge *j, enum bounce_reason r)
{
    const struct bounce__fact *f = j->f;
    enum bounce_smtp_cmd c = f->cmd;
    if (f->hint == r)
        return true;
    switch (r) {
    case BOUNCE_R_MAILBOXFULL: case BOUNCE_R_EXCEEDLIMIT: case BOUNCE_R_AUTHFAILURE:
    case BOUNCE_R_REQUIREPTR: case BOUNCE_R_TOOMANYCONN: case BOUNCE_R_BLOCKED:
        return j->st == r || bounce_inc(j, r);
    case BOUNCE_R_MESGTOOBIG:
        if (j->st == r)
            return true;
        if (j->st == BOUNCE_R_EXCEEDLIMIT || strcmp(f->status, "5.2.3") == 0)
            return false;
        return bounce_inc(j, r);
    case BOUNCE_R_SUSPEND:
        return f->reply == 525 || bounce_inc(j, r);
    case BOUNCE_R_HASMOVED: case BOUNCE_R_NOTCOMPLIANTRFC: case BOUNCE_R_BADREPUTATION:
    case BOUNCE_R_SPEEDING:
        return bounce_inc(j, r);
    case BOUNCE_R_NORELAYING:
        if (f->hint == BOUNCE_R_SECURITYERROR || f->hint == BOUNCE_R_SYSTEMERROR ||
            f->hint == BOUNCE_R_UNDEFINED)
            return false;
        if (c == BOUNCE_CMD_CONNECT || c == BOUNCE_CMD_HELO)
            return false;
        return bounce_inc(j, r);
    case BOUNCE_R_USERUNKNOWN:
        if (j->st == BOUNCE_R_SUSPEND)
            return false;
        if (j->st == BOUNCE_R_USERUNKNOWN) {
            /* the status says "mailbox", unless the text says something else */
            static const enum bounce_reason other[] = {BOUNCE_R_NORELAYING, BOUNCE_R_BLOCKED, BOUNCE_R_MAILBOXFULL,
                                                       BOUNCE_R_HASMOVED, BOUNCE_R_REJECTED, BOUNCE_R_NOTACCEPT};
            for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
                if (bounce_inc(j, other[i]))
                    return false;
            return true;
        }
        return c == BOUNCE_CMD_RCPT && bounce_inc(j, r);
    case BOUNCE_R_FILTERED:
        if (j->st == BOUNCE_R_SUSPEND)
            return false;
        if (j->st == BOUNCE_R_FILTERED)
            return bounce_inc(j, BOUNCE_R_USERUNKNOWN) || bounce_inc(j, r);
        if (bounce_cmd_before_data(c))
            return false;
        return bounce_inc(j, r) || bounce_inc(j, BOUNCE_R_USERUNKNOWN);
    case BOUNCE_R_CONTENTERROR:
        if (bounce_probe(j, BOUNCE_R_SPAMDETECTED))
            return false;
        return j->st == r || bounce_inc(j, r);
    case BOUNCE_R_REJECTED: {
        enum bounce_reason t = j->st == BOUNCE_R_NONE ? BOUNCE_R_UNDEFINED : j->st;
        if (t == r)
            return true;
        if (c == BOUNCE_CMD_MAIL)
            return bounce_inc(j, r);
        if (c == BOUNCE_CMD_DATA)
            return t != BOUNCE_R_USERUNKNOWN && bounce_inc(j, r);
        if (!bounce_is_explicit(t) || t == BOUNCE_R_SECURITYERROR || t == BOUNCE_R_SYSTEMERROR)
            return bounce_inc(j, r);
        return false;
    }
    case BOUNCE_R_HOSTUNKNOWN:
        if (j->st == r)
            return !bounce_inc(j, BOUNCE_R_NETWORKERROR);
        return bounce_inc(j, r);
    case BOUNCE_R_SPAMDETECTED:
        if (f->status[0] == '\0')
            return false;
        if (j->st == r)
            return true;
        if (bounce_cmd_before_data(c))
            return false;
        return bounce_inc(j, r);
    case BOUNCE_R_VIRUSDETECTED:
        if (bounce_cmd_before_data(c))
            return false;
        return bounce_inc(j, r);
    case BOUNCE_R_FAILEDSTARTTLS:
        return c == BOUNCE_CMD_STARTTLS || f->reply == 523 || f->reply == 524 || f->reply == 538 ||
               bounce_inc(j, r);
    case BOUNCE_R_SYNTAXERROR:
        return (f->reply >= 400 && f->reply < 408) || (f->reply >= 500 && f->reply < 508);
    case BOUNCE_R_ONHOLD:
        return j->st == r;
    default:
        return false;
    }
}

/* Probed in this order while the diagnostic is an SMTP reply. */
static const enum bounce_reason bounce_probe_order[] = {
    BOUNCE_R_MAILBOXFULL, BOUNCE_R_MESGTOOBIG, BOUNCE_R_EXCEEDLIMIT, BOUNCE_R_SUSPEND, BOUNCE_R_HASMOVED,
    BOUNCE_R_NORELAYING, BOUNCE_R_AUTHFAILURE, BOUNCE_R_USERUNKNOWN, BOUNCE_R_FILTERED, BOUNCE_R_REQUIREPTR,
    BOUNCE_R_NOTCOMPLIANTRFC, BOUNCE_R_BADREPUTATION, BOUNCE_R_CONTENTERROR, BOUNCE_R_REJECTED,
    BOUNCE_R_HOSTUNKNOWN, BOUNCE_R_SPAMDETECTED, BOUNCE_R_SPEEDING, BOUNCE_R_TOOMANYCONN, BOUNCE_R_BLOCKED,
};

/* Phrase lists alone, in this order, when the probes found nothing. */
static const enum bounce_reason bounce_phrase_order[] = {
    BOUNCE_R_MAILBOXFULL, BOUNCE_R_AUTHFAILURE, BOUNCE_R_BADREPUTATION, BOUNCE_R_SPEEDING,
    BOUNCE_R_SPAMDETECTED, BOUNCE_R_VIRUSDETECTED, BOUNCE_R_POLICYVIOLATION, BOUNCE_R_NORELAYING,
    BOUNCE_R_SYSTEMERROR, BOUNCE_R_NETWORKERROR, BOUNCE_R_SUSPEND, BOUNCE_R_CONTENTERROR, BOUNCE_R_SYSTEMFULL,
    BOUNCE_R_NOTACCEPT, BOUNCE_R_EXPIRED, BOUNCE_R_FAILEDSTARTTLS, BOUNCE_R_SECURITYERROR, BOUNCE_R_MAILERERROR,
};

static bool bounce_dtype_smtp(const struct bounce__fact *f)
{
    return f->dtype[0] == '\0' || strcasecmp(f->dtype, "smtp") == 0;
}

/* Steps 5: phrases alone, status class, diagnostic type, code, action, command. */
static enum bounce_reason bounce_fallback(struct bounce_judge *j)
{
    const struct bounce__fact *f = j->f;
    if (bounce_is_explicit(f->hint))
        return f->hint;
    enum bounce_reason t = j->st;
    bool try = t == BOUNCE_R_NONE || bounce_is_weak(t) || strcasecmp(f->dtype, "smtp") == 0;
    if (!try)
        return t;
    for (size_t i = 0; i < sizeof bounce_phrase_order / sizeof bounce_phrase_order[0]; i++)
        if (bounce_inc(j, bounce_phrase_order[i]))
            return bounce_phrase_order[i];
    if (t != BOUNCE_R_NONE)
        return t;
    if (f->status[0] && f->status[1] == '.' && f->status[2] == '6' && f->status[3] == '.')
        return BOUNCE_R_CONTENTERROR;
    if (f->status[0] && f->status[1] == '.' && f->status[2] == '7' && f->status[3] == '.')
        return BOUNCE_R_SECURITYERROR;
    if (strncasecmp(f->dtype, "x-unix", 6) == 0)
        return BOUNCE_R_MAILERERROR;
    if (bounce_probe(j, BOUNCE_R_SYNTAXERROR))
        return BOUNCE_R_SYNTAXERROR;
    if (strcmp(f->action, "delayed") == 0 || strcmp(f->action, "expired") == 0)
        return BOUNCE_R_EXPIRED;
    if (f->cmd == BOUNCE_CMD_HELO)
        return BOUNCE_R_BLOCKED;
    return BOUNCE_R_NONE;
}

static enum bounce_reason bounce_find(struct bounce_judge *j)
{
    const struct bounce__fact *f = j->f;
    if (f->status[0] == '2')
        return BOUNCE_R_DELIVERED;
    enum bounce_reason r = BOUNCE_R_NONE;
    if (bounce_dtype_smtp(f)) {
        for (size_t i = 0; i < sizeof bounce_probe_order / sizeof bounce_probe_order[0]; i++)
            if (bounce_probe(j, bounce_probe_order[i])) {
                r = bounce_probe_order[i];
                break;
            }
    }
    if (r != BOUNCE_R_NONE && r != BOUNCE_R_UNDEFINED)
        return r;
    r = bounce_fallback(j);
    if (r == BOUNCE_R_UNDEFINED)
        r = BOUNCE_R_NONE;
    if (r == BOUNCE_R_NONE && strcmp(f->action, "delayed") == 0)
        r = BOUNCE_R_EXPIRED;
    if (r != BOUNCE_R_NONE)
        return r;
    if (bounce_inc(j, BOUNCE_R_VACATION))
        return BOUNCE_R_VACATION;
    return f->diag[0] ? BOUNCE_R_ONHOLD : BOUNCE_R_UNDEFINED;
}

/* indexed: the signs are looked up in the phrase index (worth its making
 * only when the decision goes on to the phrase lists, which need it too). */
static enum bounce_reason bounce_local_agent(struct bounce_judge *j, bool indexed)
{
    const struct bounce__fact *f = j->f;
    if (f->diag[0] == '\0' || (f->cmd != BOUNCE_CMD_UNKNOWN && f->cmd != BOUNCE_CMD_DATA))
        return BOUNCE_R_NONE;
    for (size_t i = 0; i < BOUNCE_LDA_COUNT; i++) {
        if (!(indexed ? bounce_in(j, BOUNCE_SIGS_LDA + (int)i) : bounce__phrase_any(f->diag, bounce_lda[i].signs)))
            continue;
        for (size_t k = 0; k < 4 && bounce_lda[i].says[k].p != NULL; k++)
            if (bounce__phrase_any(f->diag, bounce_lda[i].says[k].p))
                return bounce_lda[i].says[k].r;
        return BOUNCE_R_MAILERERROR;
    }
    return BOUNCE_R_NONE;
}

enum bounce_reason bounce__decide(const struct bounce__fact *f)
{
    if (!bounce_is_weak(f->hint))
        return f->hint;
    pthread_once(&bounce_sigs_once, bounce_sigs_init); /* the phrase index bounce_list_in() reads */
    /* grams (2 KiB) are set only when a phrase list is asked for */
    struct bounce_judge j;
    j.f = f;
    j.st = bounce__status_reason(f->status);
    j.indexed = false;
    memset(j.inc, -1, sizeof j.inc);
    /* the remote provider's table is asked before the agent, which
     * overrules it: when it says nothing, the phrase lists follow, and the
     * agent's signs are found through their index */
    enum bounce_reason rh = bounce__rhost(f);
    enum bounce_reason r = bounce_local_agent(&j, !bounce_is_explicit(rh));
    if (bounce_is_explicit(r))
        return r;
    if (bounce_is_explicit(rh))
        return rh;
    r = bounce_find(&j);
    if (bounce_is_explicit(r))
        return r;
    return f->diag[0] ? BOUNCE_R_ONHOLD : f->hint == BOUNCE_R_NONE ? BOUNCE_R_UNDEFINED : f->hint;
}

/* ---- hard or soft ---------------------------------------------------------- */

static bool bounce_text_temporary(const char *text)
{
    char st[16];
    if (bounce__status_find(text, st, sizeof st))
        return st[0] == '4';
    int code = bounce__reply_find(text, 0);
    if (code >= 400 && code < 500)
        return true;
    return bounce__memistr(text, strlen(text), " temporar") != NULL ||
           bounce__memistr(text, strlen(text), " persistent") != NULL;
}

int bounce__hard(enum bounce_reason r, const char *status, const char *diag)
{
    switch (r) {
    case BOUNCE_R_FEEDBACK: case BOUNCE_R_VACATION: case BOUNCE_R_DELIVERED:
        return -1;
    case BOUNCE_R_USERUNKNOWN: case BOUNCE_R_HOSTUNKNOWN: case BOUNCE_R_HASMOVED:
        return 1;
    case BOUNCE_R_NOTACCEPT: {
        char text[1024];
        snprintf(text, sizeof text, "%s %s", status ? status : "", diag ? diag : "");
        if (strlen(text) < 4)
            return 1;
        char st[16];
        if (bounce__status_find(text, st, sizeof st))
            return st[0] == '5' || !bounce_text_temporary(text);
        int code = bounce__reply_find(text, 0);
        return (code >= 500 && code < 600) || !bounce_text_temporary(text);
    }
    default:
        return 0;
    }
}

int bounce_reason_hard(enum bounce_reason r, int smtp_code, const char *enhanced)
{
    char text[32] = "";
    if (enhanced != NULL && enhanced[0])
        bounce__copy(text, sizeof text, enhanced);
    else if (smtp_code > 0)
        snprintf(text, sizeof text, "%d", smtp_code);
    return bounce__hard(r, text, "");
}

/* ---- the synchronous reply of the egress client ---------------------------- */

enum bounce_reason bounce_classify_reply(int code, const char *enhanced, const char *text, int *hard)
{
    return bounce_classify_smtp(code, enhanced, text, BOUNCE_CMD_UNKNOWN, hard);
}

enum bounce_reason bounce_classify_smtp(int code, const char *enhanced, const char *text,
                                        enum bounce_smtp_cmd cmd, int *hard)
{
    struct bounce__fact f;
    memset(&f, 0, sizeof f);
    char *diag = bounce__diag_clean(text ? text : "", strlen(text ? text : ""), false);
    if (diag != NULL)
        bounce__lower(diag);
    f.diag = diag ? diag : "";
    f.hint = BOUNCE_R_NONE;
    f.cmd = cmd;
    f.dtype = "smtp";
    f.rhost = f.lhost = f.dest = "";
    char st[16] = "";
    bounce__status_find(f.diag, st, sizeof st);
    if (code <= 0)
        code = bounce__reply_find(f.diag, st[0]);
    bounce__status_prefer(f.status, sizeof f.status, enhanced ? enhanced : "", st, code);
    f.reply = code;
    f.action = code >= 400 && code < 500 ? "delayed" : "failed";
    enum bounce_reason r = bounce__decide(&f);
    if (r == BOUNCE_R_UNDEFINED && (code >= 400 || f.status[0] == '4' || f.status[0] == '5'))
        r = BOUNCE_R_ONHOLD; /* a refusal that says nothing more */
    if (hard != NULL)
        *hard = bounce__hard(r, f.status, f.diag);
    free(diag);
    return r;
}
