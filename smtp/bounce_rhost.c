/* Remote providers' own error tables. Big mailbox providers answer with
 * their own wording and codes (Gmail, Microsoft 365, Yahoo, iCloud, Orange,
 * GoDaddy, Cox, Mimecast, ...); the generic phrase lists cannot tell their
 * "5.7.1" apart, their tables can. The provider is chosen by the recipient's
 * domain, else by the remote host's name, else by the reporting host's.
 *
 * Knowledge of these tables comes from Sisimai's rhost modules
 * (https://libsisimai.org, BSD 2-Clause, (C) azumakuniyuki), re-expressed
 * here; the providers' documented codes are cited where the tables use
 * them. Matching is on the lower-cased diagnostic. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/bounce_internal.h"

struct bounce_rh_phrase {
    enum bounce_reason r;
    const char *p;
};

/* reply code and status (their class digits ignored, as the providers use
 * both for the same condition) and a phrase */
struct bounce_rh_triple {
    enum bounce_reason r;
    int reply;
    const char *status;
    const char *p;
};

/* status prefix with the third number in [lo, hi] (lo == hi == 0: the
 * status equals prefix) and a phrase */
struct bounce_rh_range {
    enum bounce_reason r;
    const char *status;
    int lo, hi;
    const char *p;
};

static const struct bounce_rh_phrase bounce_rh_aol[] = {
    {BOUNCE_R_HOSTUNKNOWN, "host or domain name not found"},
    {BOUNCE_R_NOTACCEPT, "type=mx: malformed or unexpected name server reply"},
    {BOUNCE_R_NONE, NULL},
};
static const struct bounce_rh_phrase bounce_rh_apple[] = {
    {BOUNCE_R_AUTHFAILURE, "s dmarc policy"},
    {BOUNCE_R_AUTHFAILURE, "blocked for failing both spf and dkim autentication checks"},
    {BOUNCE_R_BLOCKED, "rejected due to having a domain present in the spamhaus"},
    {BOUNCE_R_BLOCKED, "rejected due to listing in spamhaus"},
    {BOUNCE_R_BLOCKED, "blocked - see https://support.proofpoint.com/dnsbl-lookup"},
    {BOUNCE_R_BLOCKED, "not accepting connections"},
    {BOUNCE_R_HASMOVED, "recipient no longer on server"},
    {BOUNCE_R_MAILBOXFULL, "user is over quota"},
    {BOUNCE_R_NORELAYING, "relay access denied"},
    {BOUNCE_R_NOTACCEPT, "host/domain does not accept mail"},
    {BOUNCE_R_POLICYVIOLATION, "due to local policy"},
    {BOUNCE_R_REJECTED, "sender address rejected"},
    {BOUNCE_R_SPEEDING, "due to excessive volume"},
    {BOUNCE_R_USERUNKNOWN, "inactive email address"},
    {BOUNCE_R_USERUNKNOWN, "user does not exist"},
    {BOUNCE_R_USERUNKNOWN, "unknown or illegal alias"},
    {BOUNCE_R_NONE, NULL},
};
static const struct bounce_rh_phrase bounce_rh_cox[] = {
    {BOUNCE_R_BLOCKED, "cox too many bad commands from"},
    {BOUNCE_R_BLOCKED, "too many invalid recipients"},
    {BOUNCE_R_REQUIREPTR, "dns check failure - try again later"},
    {BOUNCE_R_REQUIREPTR, "rejected - no rdns"},
    {BOUNCE_R_POLICYVIOLATION, "esmtp no data before greeting"},
    {BOUNCE_R_POLICYVIOLATION, "attachment extension is forbidden"},
    {BOUNCE_R_REJECTED, "sender rejected"},
    {BOUNCE_R_SYSTEMERROR, "esmtp server temporarily not available"},
    {BOUNCE_R_TOOMANYCONN, "too many sessions from"},
    {BOUNCE_R_TOOMANYCONN, "requested action aborted: try again later"},
    {BOUNCE_R_TOOMANYCONN, "message threshold exceeded"},
    {BOUNCE_R_USERUNKNOWN, "recipient rejected"},
    {BOUNCE_R_NONE, NULL},
};
static const struct bounce_rh_phrase bounce_rh_godaddy[] = {
    {BOUNCE_R_BLOCKED, "rbl reject"},
    {BOUNCE_R_BLOCKED, "www.spamhaus.org/query/bl?ip="},
    {BOUNCE_R_EXPIRED, "has been in the queue too long"},
    {BOUNCE_R_EXPIRED, "delivery timeout"},
    {BOUNCE_R_MAILBOXFULL, "account storage limit"},
    {BOUNCE_R_SPAMDETECTED, "message rejected for spam or virus content"},
    {BOUNCE_R_SUSPEND, "account disabled"},
    {BOUNCE_R_SYSTEMERROR, "message is looping"},
    {BOUNCE_R_USERUNKNOWN, "recipient not found"},
    {BOUNCE_R_USERUNKNOWN, "account does not exist"},
    {BOUNCE_R_NONE, NULL},
};
static const struct bounce_rh_phrase bounce_rh_gsuite[] = {
    {BOUNCE_R_HOSTUNKNOWN, " responded with code nxdomain"},
    {BOUNCE_R_HOSTUNKNOWN, "domain name not found"},
    {BOUNCE_R_NETWORKERROR, " had no relevant answers."},
    {BOUNCE_R_NETWORKERROR, "responded with code nxdomain"},
    {BOUNCE_R_NETWORKERROR, "domain name not found"},
    {BOUNCE_R_NOTACCEPT, "null mx"},
    {BOUNCE_R_USERUNKNOWN, "because the address couldn't be found. check for typos or unnecessary spaces and try again."},
    {BOUNCE_R_NONE, NULL},
};
static const struct bounce_rh_phrase bounce_rh_kddi[] = {
    {BOUNCE_R_FILTERED, "550 : user unknown"},
    {BOUNCE_R_USERUNKNOWN, ">: user unknown"},
    {BOUNCE_R_NONE, NULL},
};
static const struct bounce_rh_phrase bounce_rh_messagelabs[] = {
    {BOUNCE_R_SECURITYERROR, "please turn on smtp authentication in your mail client"},
    {BOUNCE_R_USERUNKNOWN, "542 "},
    {BOUNCE_R_USERUNKNOWN, " rejected"},
    {BOUNCE_R_USERUNKNOWN, "no such user"},
    {BOUNCE_R_NONE, NULL},
};
static const struct bounce_rh_phrase bounce_rh_nttdocomo[] = {
    {BOUNCE_R_MAILBOXFULL, "552 too much mail data"},
    {BOUNCE_R_TOOMANYCONN, "552 too many recipients"},
    {BOUNCE_R_SYNTAXERROR, "503 bad sequence of commands"},
    {BOUNCE_R_SYNTAXERROR, "504 command parameter not implemented"},
    {BOUNCE_R_NONE, NULL},
};
static const struct bounce_rh_phrase bounce_rh_outlook[] = {
    {BOUNCE_R_HOSTUNKNOWN, "the mail could not be delivered to the recipient because the domain is not reachable"},
    {BOUNCE_R_USERUNKNOWN, "requested action not taken: mailbox unavailable"},
    {BOUNCE_R_NONE, NULL},
};
static const struct bounce_rh_phrase bounce_rh_tencent[] = {
    {BOUNCE_R_AUTHFAILURE, "spf check failed"},
    {BOUNCE_R_AUTHFAILURE, "dmarc check failed"},
    {BOUNCE_R_BLOCKED, "suspected bounce attacks"},
    {BOUNCE_R_BLOCKED, "suspected spam ip"},
    {BOUNCE_R_BLOCKED, "connection denied"},
    {BOUNCE_R_MESGTOOBIG, "message too large"},
    {BOUNCE_R_REJECTED, "suspected spam"},
    {BOUNCE_R_REJECTED, "mail is rejected by recipients"},
    {BOUNCE_R_SPAMDETECTED, "spam is embedded in the email"},
    {BOUNCE_R_SPAMDETECTED, "mail content denied"},
    {BOUNCE_R_SPEEDING, "mailbox unavailable or access denined"},
    {BOUNCE_R_SUSPEND, "is a deactivated mailbox"},
    {BOUNCE_R_SYNTAXERROR, "bad address syntax"},
    {BOUNCE_R_TOOMANYCONN, "ip frequency limited"},
    {BOUNCE_R_TOOMANYCONN, "domain frequency limited"},
    {BOUNCE_R_TOOMANYCONN, "sender frequency limited"},
    {BOUNCE_R_TOOMANYCONN, "connection frequency limited"},
    {BOUNCE_R_USERUNKNOWN, "mailbox not found"},
    {BOUNCE_R_NONE, NULL},
};
static const struct bounce_rh_phrase bounce_rh_yahooinc[] = {
    {BOUNCE_R_AUTHFAILURE, "yahoo requires all senders to authenticate with either spf or dkim"},
    {BOUNCE_R_NORELAYING, "relaying denied for "},
    {BOUNCE_R_NOTCOMPLIANTRFC, "headers are not rfc compliant"},
    {BOUNCE_R_POLICYVIOLATION, "not accepted for policy reasons"},
    {BOUNCE_R_REJECTED, "temporarily deferred due to unexpected volume or user complaints"},
    {BOUNCE_R_REJECTED, "due to unresolvable rfc.5321 domain"},
    {BOUNCE_R_REJECTED, " will be permanently deferred"},
    {BOUNCE_R_SPEEDING, "user is receiving mail too quickly"},
    {BOUNCE_R_SUSPEND, " is no longer valid."},
    {BOUNCE_R_SUSPEND, "this mailbox is disabled"},
    {BOUNCE_R_SYNTAXERROR, "syntax error in parameters or arguments"},
    {BOUNCE_R_TOOMANYCONN, "max message per connection reached"},
    {BOUNCE_R_USERUNKNOWN, "dd this user doesn't have a "},
    {BOUNCE_R_USERUNKNOWN, "mailbox not found"},
    {BOUNCE_R_BLOCKED, " because the ip is in spamhaus's list;"},
    {BOUNCE_R_BLOCKED, "not accepted from ip addresses on spamhaus xbl"},
    {BOUNCE_R_NONE, NULL},
};
static const struct bounce_rh_triple bounce_rh_google[] = {
    {BOUNCE_R_AUTHFAILURE, 451, "4.7.24", "the spf record of the sending domain"},
    {BOUNCE_R_AUTHFAILURE, 550, "5.7.24", "the spf record of the sending domain"},
    {BOUNCE_R_AUTHFAILURE, 421, "4.7.26", "senders to authenticate with either spf or dkim"},
    {BOUNCE_R_AUTHFAILURE, 550, "5.7.26", "senders to authenticate with either spf or dkim"},
    {BOUNCE_R_AUTHFAILURE, 550, "5.7.26", "fails to pass spf checks for an spf record with a hard fail"},
    {BOUNCE_R_AUTHFAILURE, 550, "5.7.26", "has an spf record with a hard fail policy"},
    {BOUNCE_R_AUTHFAILURE, 451, "4.7.26", "is not accepted due to domain's dmarc policy"},
    {BOUNCE_R_AUTHFAILURE, 550, "5.7.26", "is not accepted due to domain's dmarc policy"},
    {BOUNCE_R_AUTHFAILURE, 550, "5.7.26", "is not accepted due to domain's dmarc policy"},
    {BOUNCE_R_AUTHFAILURE, 550, "5.7.1", "fails to pass authentication checks"},
    {BOUNCE_R_AUTHFAILURE, 550, "5.7.26", "fails to pass authentication checks"},
    {BOUNCE_R_AUTHFAILURE, 421, "4.7.27", "senders to authenticate with spf"},
    {BOUNCE_R_AUTHFAILURE, 421, "4.7.27", "senders to authenticate their email with spf"},
    {BOUNCE_R_AUTHFAILURE, 550, "5.7.27", "senders to authenticate with spf"},
    {BOUNCE_R_AUTHFAILURE, 421, "4.7.30", "senders to authenticate their email with dkim"},
    {BOUNCE_R_AUTHFAILURE, 550, "5.7.30", "senders to authenticate with dkim"},
    {BOUNCE_R_AUTHFAILURE, 421, "4.7.32", "aligned with either the authenticated spf or dkim"},
    {BOUNCE_R_BADREPUTATION, 421, "4.7.0", "very low reputation of the sending ip address"},
    {BOUNCE_R_BADREPUTATION, 421, "4.7.0", "very low reputation of the sending domain"},
    {BOUNCE_R_BADREPUTATION, 550, "5.7.1", "due to the very low reputation of the sending ip address"},
    {BOUNCE_R_BADREPUTATION, 550, "5.7.1", "due to the very low reputation of the sending domain"},
    {BOUNCE_R_BLOCKED, 421, "4.7.0", "ip not in whitelist for rcpt domain"},
    {BOUNCE_R_BLOCKED, 421, "4.7.0", "try again later, closing connection."},
    {BOUNCE_R_BLOCKED, 501, "5.5.4", "empty helo/ehlo argument not allowed"},
    {BOUNCE_R_BLOCKED, 501, "5.5.4", "helo/ehlo argument is invalid"},
    {BOUNCE_R_BLOCKED, 421, "4.7.0", "an unusual rate of unsolicited mail"},
    {BOUNCE_R_BLOCKED, 421, "4.7.28", "an unusual rate of mail"},
    {BOUNCE_R_BLOCKED, 550, "5.7.1", "an unusual rate of unsolicited mail"},
    {BOUNCE_R_BLOCKED, 550, "5.7.28", "an unusual rate of unsolicited mail"},
    {BOUNCE_R_EXCEEDLIMIT, 552, "5.2.3", "exceeded google's message size limits"},
    {BOUNCE_R_EXCEEDLIMIT, 552, "5.3.4", "exceeds google's limit of limit attachments."},
    {BOUNCE_R_EXCEEDLIMIT, 552, "5.3.4", "your message exceeded google's message header size limits"},
    {BOUNCE_R_EXCEEDLIMIT, 552, "5.3.4", "bytes per individual header size"},
    {BOUNCE_R_EXCEEDLIMIT, 552, "5.3.4", "exceeds google's header name limit of"},
    {BOUNCE_R_EXCEEDLIMIT, 552, "5.3.4", "exceeds google's message header size limit"},
    {BOUNCE_R_EXPIRED, 421, "4.7.0", "connection expired"},
    {BOUNCE_R_EXPIRED, 451, "4.4.2", "timeout - closing connection"},
    {BOUNCE_R_FAILEDSTARTTLS, 530, "5.7.0", "must issue a starttls command first"},
    {BOUNCE_R_FAILEDSTARTTLS, 454, "5.5.1", "starttls may not be repeated"},
    {BOUNCE_R_FAILEDSTARTTLS, 421, "4.7.0", "tls required for rcpt domain"},
    {BOUNCE_R_FAILEDSTARTTLS, 421, "4.7.29", "senders to use tls/ssl for smtp"},
    {BOUNCE_R_FAILEDSTARTTLS, 550, "5.7.29", "senders to use tls/ssl for smtp"},
    {BOUNCE_R_MAILBOXFULL, 452, "4.2.2", "inbox is out of storage space"},
    {BOUNCE_R_MAILBOXFULL, 552, "5.2.2", "inbox is out of storage space and inactive"},
    {BOUNCE_R_MAILBOXFULL, 452, "4.2.2", "is over quota"},
    {BOUNCE_R_MAILBOXFULL, 552, "5.2.2", "is over quota"},
    {BOUNCE_R_MAILBOXFULL, 550, "5.7.1", "email quota exceeded"},
    {BOUNCE_R_MESGTOOBIG, 552, "5.3.4", "exceeds google's message size limit of"},
    {BOUNCE_R_NETWORKERROR, 554, "5.4.6", "message exceeded 50 hops"},
    {BOUNCE_R_NETWORKERROR, 554, "5.6.0", "message exceeded 50 hops"},
    {BOUNCE_R_NORELAYING, 550, "5.7.0", "mail relay denied"},
    {BOUNCE_R_NORELAYING, 550, "5.7.1", "invalid credentials for relay"},
    {BOUNCE_R_NORELAYING, 550, "5.7.1", "is not authorized to send email directly to our servers"},
    {BOUNCE_R_NOTCOMPLIANTRFC, 550, "5.7.1", "missing a valid address in the from: header"},
    {BOUNCE_R_NOTCOMPLIANTRFC, 550, "5.7.1", "multiple addresses in from: header are not accepted"},
    {BOUNCE_R_NOTCOMPLIANTRFC, 550, "5.7.1", "is not rfc 5322 compliant"},
    {BOUNCE_R_NOTCOMPLIANTRFC, 550, "5.7.1", "missing a valid message-id: header"},
    {BOUNCE_R_NOTCOMPLIANTRFC, 550, "5.7.1", "contains a unicode character in a disallowed header"},
    {BOUNCE_R_NOTCOMPLIANTRFC, 550, "5.7.1", "encoded-word syntax is not permitted"},
    {BOUNCE_R_NOTCOMPLIANTRFC, 553, "5.1.7", "is not a valid rfc 5321 address"},
    {BOUNCE_R_NOTCOMPLIANTRFC, 554, "5.6.0", "mail message is malformed"},
    {BOUNCE_R_POLICYVIOLATION, 552, "5.7.0", "illegal attachment on your message"},
    {BOUNCE_R_POLICYVIOLATION, 552, "5.7.0", "blocked because its content presents a potential security issue"},
    {BOUNCE_R_POLICYVIOLATION, 550, "5.7.1", "you are sending to (or from) has a policy that prohibited"},
    {BOUNCE_R_POLICYVIOLATION, 421, "4.7.28", "sending messages with the same message-id:"},
    {BOUNCE_R_REJECTED, 550, "5.7.0", "mail sending denied"},
    {BOUNCE_R_REJECTED, 550, "5.7.1", "unauthenticated email is not accepted"},
    {BOUNCE_R_REQUIREPTR, 421, "4.7.0", "does not have a ptr record"},
    {BOUNCE_R_REQUIREPTR, 421, "4.7.23", " have a ptr record, or the ptr record"},
    {BOUNCE_R_REQUIREPTR, 550, "5.7.1", "does not meet ipv6 sending guidelines regarding ptr records and authentication"},
    {BOUNCE_R_REQUIREPTR, 550, "5.7.25", "does not have a ptr record"},
    {BOUNCE_R_REQUIREPTR, 550, "5.7.25", "does not match the ip address of the hostname"},
    {BOUNCE_R_SECURITYERROR, 454, "4.7.0", "too many login attempts"},
    {BOUNCE_R_SECURITYERROR, 501, "5.5.2", "cannot decode response"},
    {BOUNCE_R_SECURITYERROR, 503, "5.7.0", "no identity changes permitted"},
    {BOUNCE_R_SECURITYERROR, 530, "5.5.1", "authentication required."},
    {BOUNCE_R_SECURITYERROR, 530, "5.7.0", "authentication required."},
    {BOUNCE_R_SECURITYERROR, 535, "5.7.1", "application-specific password required"},
    {BOUNCE_R_SECURITYERROR, 535, "5.7.9", "application-specific password required"},
    {BOUNCE_R_SECURITYERROR, 535, "5.7.1", "please log in with your web browser"},
    {BOUNCE_R_SECURITYERROR, 534, "5.7.9", "please log in with your web browser"},
    {BOUNCE_R_SECURITYERROR, 534, "5.7.14", "please log in through your web browser"},
    {BOUNCE_R_SECURITYERROR, 535, "5.7.1", "username and password not accepted"},
    {BOUNCE_R_SECURITYERROR, 535, "5.7.8", "username and password not accepted"},
    {BOUNCE_R_SPAMDETECTED, 421, "4.7.0", "due to the nature of the content or the links within"},
    {BOUNCE_R_SPAMDETECTED, 550, "5.7.1", "likely unsolicited mail"},
    {BOUNCE_R_SPEEDING, 450, "4.2.1", "is receiving mail too quickly"},
    {BOUNCE_R_SPEEDING, 450, "4.2.1", "peak smtp relay limit exceeded for customer"},
    {BOUNCE_R_SPEEDING, 450, "4.2.1", "rate that prevents additional messages from being delivered"},
    {BOUNCE_R_SPEEDING, 550, "5.2.1", "rate that prevents additional messages from being delivered"},
    {BOUNCE_R_SPEEDING, 550, "5.4.5", "daily sending quota exceeded"},
    {BOUNCE_R_SPEEDING, 550, "5.4.5", "daily user sending limit exceeded"},
    {BOUNCE_R_SPEEDING, 550, "5.4.5", "daily smtp relay limit exceeded for"},
    {BOUNCE_R_SPEEDING, 550, "5.7.1", "daily smtp relay limit exceeded for"},
    {BOUNCE_R_SPEEDING, 550, "5.7.1", "daily smtp relay sending limit exceeded for"},
    {BOUNCE_R_SPEEDING, 550, "5.7.1", "this mail has been rate limited"},
    {BOUNCE_R_SUSPEND, 550, "5.2.1", "account that you tried to reach is disabled"},
    {BOUNCE_R_SUSPEND, 550, "5.2.1", "account that you tried to reach is inactive"},
    {BOUNCE_R_SYNTAXERROR, 451, "4.5.0", "smtp protocol violation"},
    {BOUNCE_R_SYNTAXERROR, 454, "4.5.0", "smtp protocol violation"},
    {BOUNCE_R_SYNTAXERROR, 525, "5.7.10", "smtp protocol violation"},
    {BOUNCE_R_SYNTAXERROR, 535, "5.5.4", "optional argument not permitted"},
    {BOUNCE_R_SYNTAXERROR, 501, "5.7.11", "syntax error"},
    {BOUNCE_R_SYNTAXERROR, 501, "5.5.2", "syntax error"},
    {BOUNCE_R_SYNTAXERROR, 555, "5.5.2", "syntax error"},
    {BOUNCE_R_SYNTAXERROR, 502, "5.5.1", "too many unrecognized commands, goodbye"},
    {BOUNCE_R_SYNTAXERROR, 502, "5.5.1", "unimplemented command"},
    {BOUNCE_R_SYNTAXERROR, 502, "5.5.1", "unrecognized command"},
    {BOUNCE_R_SYNTAXERROR, 503, "5.5.1", "bad sequence of commands"},
    {BOUNCE_R_SYNTAXERROR, 503, "5.5.1", "ehlo/helo first"},
    {BOUNCE_R_SYNTAXERROR, 503, "5.5.1", "mail first"},
    {BOUNCE_R_SYNTAXERROR, 503, "5.5.1", "rcpt first"},
    {BOUNCE_R_SYNTAXERROR, 503, "5.5.1", "no data after bdat"},
    {BOUNCE_R_SYNTAXERROR, 504, "5.7.4", "unrecognized authentication type"},
    {BOUNCE_R_SYNTAXERROR, 504, "5.7.4", "xoauth is no longer supported"},
    {BOUNCE_R_SYNTAXERROR, 554, "5.7.0", "too many unauthenticated commands"},
    {BOUNCE_R_SYSTEMERROR, 421, "4.3.0", "temporary system problem"},
    {BOUNCE_R_SYSTEMERROR, 421, "4.7.0", "temporary system problem"},
    {BOUNCE_R_SYSTEMERROR, 421, "4.4.5", "server busy"},
    {BOUNCE_R_SYSTEMERROR, 451, "4.3.0", "multiple destination domains per transaction is unsupported"},
    {BOUNCE_R_SYSTEMERROR, 451, "4.3.0", "mail server has temporarily rejected this message"},
    {BOUNCE_R_SYSTEMERROR, 451, "4.3.0", "mail server temporarily rejected message"},
    {BOUNCE_R_SYSTEMERROR, 452, "4.5.3", "domain policy size per transaction exceeded"},
    {BOUNCE_R_SYSTEMERROR, 454, "4.7.0", "cannot authenticate due to temporary system problem"},
    {BOUNCE_R_TOOMANYCONN, 452, "4.5.3", "your message has too many recipients"},
    {BOUNCE_R_TOOMANYCONN, 550, "5.5.3", "too many recipients for this sender"},
    {BOUNCE_R_USERUNKNOWN, 550, "5.1.1", "the email account that you tried to reach does not exist"},
    {BOUNCE_R_USERUNKNOWN, 553, "5.1.2", "we weren't able to find the recipient domain"},
    {BOUNCE_R_USERUNKNOWN, 553, "5.1.3", "is not a valid rfc 5321 address"},
    {BOUNCE_R_NONE, 0, NULL, NULL},
};
static const struct bounce_rh_range bounce_rh_microsoft[] = {
    {BOUNCE_R_AUTHFAILURE, "4.7.26", 0, 0, "must pass either spf or dkim validation, this message is not signed"},
    {BOUNCE_R_AUTHFAILURE, "5.7.23", 0, 0, "the message was rejected because of sender policy framework violation"},
    {BOUNCE_R_AUTHFAILURE, "5.7.509", 0, 0, "does not pass dmarc verification"},
    {BOUNCE_R_BADREPUTATION, "4.7.650", 0, 0, "has been temporarily rate limited due to ip reputation"},
    {BOUNCE_R_BLOCKED, "4.4.2", 0, 0, "connection dropped"},
    {BOUNCE_R_BLOCKED, "4.7.", 850, 899, "access denied, please try again later"},
    {BOUNCE_R_BLOCKED, "5.7.25", 0, 0, "must have a reverse dns record"},
    {BOUNCE_R_BLOCKED, "5.7.506", 0, 0, "access denied, bad helo"},
    {BOUNCE_R_BLOCKED, "5.7.507", 0, 0, "access denied, rejected by recipient"},
    {BOUNCE_R_BLOCKED, "5.7.510", 0, 0, "does not accept email over ipv6"},
    {BOUNCE_R_BLOCKED, "5.7.511", 0, 0, "access denied, banned sender"},
    {BOUNCE_R_BLOCKED, "5.7.513", 0, 0, "using customer block list"},
    {BOUNCE_R_BLOCKED, "5.7.", 606, 649, "access denied, banned sending ip "},
    {BOUNCE_R_BLOCKED, "4.7.", 500, 699, "access denied, please try again later"},
    {BOUNCE_R_BLOCKED, "5.5.4", 0, 0, "invalid domain name"},
    {BOUNCE_R_BLOCKED, "5.7.1", 0, 0, "part of their network is on our block list (s3150)"},
    {BOUNCE_R_CONTENTERROR, "5.3.0", 0, 0, "too many related errors"},
    {BOUNCE_R_CONTENTERROR, "5.6.11", 0, 0, "invalid characters"},
    {BOUNCE_R_CONTENTERROR, "5.4.11", 0, 0, "agent generated message depth exceeded"},
    {BOUNCE_R_CONTENTERROR, "5.5.6", 0, 0, "invalid message content"},
    {BOUNCE_R_EXCEEDLIMIT, "5.2.3", 0, 0, "resolver.rst.recipsizelimit; message too large for this recipient"},
    {BOUNCE_R_EXPIRED, "4.4.1", 0, 0, "connection timed out"},
    {BOUNCE_R_EXPIRED, "4.4.7", 0, 0, "message delayed"},
    {BOUNCE_R_EXPIRED, "4.4.7", 0, 0, "queue expired; message expired"},
    {BOUNCE_R_EXPIRED, "4.4.7", 0, 0, "message expired"},
    {BOUNCE_R_EXPIRED, "5.4.300", 0, 0, "message expired"},
    {BOUNCE_R_EXPIRED, "5.4.316", 0, 0, "message expired"},
    {BOUNCE_R_FAILEDSTARTTLS, "4.4.8", 0, 0, " failed mta-sts validation"},
    {BOUNCE_R_FAILEDSTARTTLS, "5.4.8", 0, 0, " failed mta-sts validation"},
    {BOUNCE_R_FAILEDSTARTTLS, "4.4.317", 0, 0, "starttls is required to send mail"},
    {BOUNCE_R_FAILEDSTARTTLS, "5.4.317", 0, 0, "starttls is required to send mail"},
    {BOUNCE_R_FAILEDSTARTTLS, "4.7.5", 0, 0, "remote certificate failed mta-sts validation"},
    {BOUNCE_R_FAILEDSTARTTLS, "5.7.5", 0, 0, "remote certificate failed mta-sts validation"},
    {BOUNCE_R_FAILEDSTARTTLS, "5.7.51", 0, 0, "restrictdomainstoipaddresses or restrictdomainstocertificate"},
    {BOUNCE_R_FAILEDSTARTTLS, "4.7.321", 0, 0, "starttls-not-supported: destination mail server must support tls to receive mail"},
    {BOUNCE_R_FAILEDSTARTTLS, "5.7.321", 0, 0, "starttls-not-supported: destination mail server must support tls to receive mail"},
    {BOUNCE_R_FAILEDSTARTTLS, "5.7.322", 0, 0, "certificate-expired: destination mail server's certificate is expired"},
    {BOUNCE_R_FAILEDSTARTTLS, "4.7.323", 0, 0, "tlsa-invalid: the domain failed dane validation"},
    {BOUNCE_R_FAILEDSTARTTLS, "5.7.323", 0, 0, "tlsa-invalid: the domain failed dane validation"},
    {BOUNCE_R_FAILEDSTARTTLS, "4.7.324", 0, 0, "dnssec-invalid: destination domain returned invalid dnssec records"},
    {BOUNCE_R_FAILEDSTARTTLS, "5.7.324", 0, 0, "dnssec-invalid: destination domain returned invalid dnssec records"},
    {BOUNCE_R_FAILEDSTARTTLS, "4.7.325", 0, 0, "certificate-host-mismatch: remote certificate must have a common name or subject alternative name matching the hostname (dane)"},
    {BOUNCE_R_FAILEDSTARTTLS, "5.7.325", 0, 0, "certificate-host-mismatch: remote certificate must have a common name or subject alternative name matching the hostname (dane)"},
    {BOUNCE_R_MAILBOXFULL, "5.2.2", 0, 0, "mailbox full"},
    {BOUNCE_R_MESGTOOBIG, "5.3.4", 0, 0, "message size exceeds fixed maximum message size"},
    {BOUNCE_R_MESGTOOBIG, "5.3.4", 0, 0, "message too big for system"},
    {BOUNCE_R_NETWORKERROR, "5.4.4", 0, 0, "smtpsend.dns.nonexistentdomain; nonexistent domain"},
    {BOUNCE_R_NETWORKERROR, "5.4.6", 0, 0, "hop count exceeded - possible mail loop"},
    {BOUNCE_R_NETWORKERROR, "4.4.312", 0, 0, "dns query failed"},
    {BOUNCE_R_NETWORKERROR, "5.4.312", 0, 0, "dns query failed"},
    {BOUNCE_R_NETWORKERROR, "4.4.316", 0, 0, "connection refused"},
    {BOUNCE_R_NETWORKERROR, "5.4.316", 0, 0, "connection refused"},
    {BOUNCE_R_NETWORKERROR, "5.4.4", 0, 0, "invalid arguments"},
    {BOUNCE_R_NETWORKERROR, "5.4.6", 0, 0, "routing loop detected"},
    {BOUNCE_R_NETWORKERROR, "5.4.14", 0, 0, "routing loop detected"},
    {BOUNCE_R_NETWORKERROR, "4.4.312", 0, 0, "dns query failed"},
    {BOUNCE_R_NETWORKERROR, "5.4.312", 0, 0, "dns query failed"},
    {BOUNCE_R_NORELAYING, "5.7.1", 0, 0, "unable to relay"},
    {BOUNCE_R_NORELAYING, "5.7.1", 0, 0, "client was not authenticated"},
    {BOUNCE_R_NORELAYING, "5.4.1", 0, 0, "relay access denied"},
    {BOUNCE_R_NORELAYING, "5.7.1", 0, 0, "unable to relay"},
    {BOUNCE_R_NORELAYING, "5.7.64", 0, 0, "tenantattribution; relay access denied"},
    {BOUNCE_R_NORELAYING, "5.4.310", 0, 0, "does not exist"},
    {BOUNCE_R_NOTACCEPT, "4.3.2", 0, 0, "system not accepting network messages"},
    {BOUNCE_R_NOTACCEPT, "4.4.4", 0, 0, "hosted tenant which has no mail-enabled subscriptions"},
    {BOUNCE_R_NOTACCEPT, "5.3.2", 0, 0, "storedrv.deliver: missing or bad storedriver mdb properties"},
    {BOUNCE_R_POLICYVIOLATION, "5.0.350", 0, 0, "x-dg-ref header is too long"},
    {BOUNCE_R_POLICYVIOLATION, "5.0.350", 0, 0, "requested action not taken: policy violation detected (as345)"},
    {BOUNCE_R_POLICYVIOLATION, "5.7.", 900, 999, "delivery not authorized, message refused"},
    {BOUNCE_R_REJECTED, "5.1.7", 0, 0, "invalid address"},
    {BOUNCE_R_REJECTED, "5.1.7", 0, 0, "unknown sender address"},
    {BOUNCE_R_REJECTED, "5.1.0", 0, 0, "sender denied"},
    {BOUNCE_R_REJECTED, "5.1.8", 0, 0, "access denied, bad outbound sender"},
    {BOUNCE_R_REJECTED, "5.7.1", 0, 0, "delivery not authorized"},
    {BOUNCE_R_REJECTED, "5.7.12", 0, 0, "sender was not authenticated by organization"},
    {BOUNCE_R_REJECTED, "5.7.124", 0, 0, "sender not in allowed-senders list"},
    {BOUNCE_R_REJECTED, "5.7.133", 0, 0, "sender not authenticated for group"},
    {BOUNCE_R_REJECTED, "5.7.134", 0, 0, "sender was not authenticated for mailbox"},
    {BOUNCE_R_REJECTED, "5.7.13", 0, 0, "sender was not authenticated for public folder"},
    {BOUNCE_R_REJECTED, "5.7.135", 0, 0, "sender was not authenticated for public folder"},
    {BOUNCE_R_REJECTED, "5.7.136", 0, 0, "sender was not authenticated"},
    {BOUNCE_R_REJECTED, "5.7.", 501, 503, "access denied, spam abuse detected"},
    {BOUNCE_R_REJECTED, "5.7.512", 0, 0, "access denied, message must be rfc 5322 section 3.6.2 compliant"},
    {BOUNCE_R_REJECTED, "5.7.750", 0, 0, "service unavailable. client blocked from sending from unregistered domains"},
    {BOUNCE_R_REJECTED, "5.7.", 501, 503, "access denied, banned sender"},
    {BOUNCE_R_SECURITYERROR, "5.7.3", 0, 0, "cannot achieve exchange server authentication"},
    {BOUNCE_R_SECURITYERROR, "5.7.3", 0, 0, "not authorized"},
    {BOUNCE_R_SECURITYERROR, "5.7.1", 0, 0, "client was not authenticated"},
    {BOUNCE_R_SECURITYERROR, "5.7.57", 0, 0, "client was not authenticated to send anonymous mail during mail from"},
    {BOUNCE_R_SPAMDETECTED, "5.2.1", 0, 0, "content filter agent quarantined this message"},
    {BOUNCE_R_SPEEDING, "4.3.2", 0, 0, "storedrv.deliver; recipient thread limit exceeded"},
    {BOUNCE_R_SPEEDING, "5.1.90", 0, 0, "your message can't be sent because you've reached your daily limit for message recipients"},
    {BOUNCE_R_SPEEDING, "5.2.2", 0, 0, "submission quota exceeded"},
    {BOUNCE_R_SPEEDING, "5.2.121", 0, 0, "recipient's per hour message receive limit from specific sender exceeded"},
    {BOUNCE_R_SPEEDING, "5.2.122", 0, 0, "recipient's per hour message receive limit exceeded"},
    {BOUNCE_R_SPEEDING, "5.7.508", 0, 0, "has exceeded permitted limits within"},
    {BOUNCE_R_SPEEDING, "5.7.", 700, 749, "access denied, tenant has exceeded threshold"},
    {BOUNCE_R_SPEEDING, "5.7.", 700, 749, "access denied, traffic not accepted from this ip"},
    {BOUNCE_R_SUSPEND, "5.7.504", 0, 0, "recipient address rejected: access denied"},
    {BOUNCE_R_SUSPEND, "5.7.505", 0, 0, "access denied, banned recipient"},
    {BOUNCE_R_SUSPEND, "5.2.1", 0, 0, "mailbox cannot be accessed"},
    {BOUNCE_R_SYNTAXERROR, "5.3.3", 0, 0, "unrecognized command"},
    {BOUNCE_R_SYNTAXERROR, "5.5.2", 0, 0, "send hello first"},
    {BOUNCE_R_SYSTEMERROR, "4.3.2", 0, 0, "service not available"},
    {BOUNCE_R_SYSTEMERROR, "4.3.2", 0, 0, "service not active"},
    {BOUNCE_R_SYSTEMERROR, "5.3.5", 0, 0, "system incorrectly configured"},
    {BOUNCE_R_SYSTEMERROR, "5.3.190", 0, 0, "journaling on-premises messages to microsoft 365 or office 365 not supported when journaling archive is disabled"},
    {BOUNCE_R_SYSTEMERROR, "5.0.0", 0, 0, "helo / ehlo requires domain address"},
    {BOUNCE_R_SYSTEMERROR, "5.1.4", 0, 0, "destination mailbox address ambiguous"},
    {BOUNCE_R_SYSTEMERROR, "5.2.4", 0, 0, "mailing list expansion problem"},
    {BOUNCE_R_SYSTEMERROR, "5.2.14", 0, 0, "misconfigured forwarding address"},
    {BOUNCE_R_SYSTEMERROR, "4.4.3", 0, 0, "temporary server error. please try again later attr18"},
    {BOUNCE_R_SYSTEMERROR, "4.7.0", 0, 0, "temporary server error. please try again later. prx4 nexthop:"},
    {BOUNCE_R_SYSTEMERROR, "4.4.24", 0, 0, "message failed to be replicated: insufficient system resource:"},
    {BOUNCE_R_SYSTEMERROR, "4.4.25", 0, 0, "message failed to be replicated: no healthy secondary server available to accept replica at this time."},
    {BOUNCE_R_SYSTEMERROR, "4.4.28", 0, 0, "message failed to be replicated: the operation was canceled"},
    {BOUNCE_R_SYSTEMERROR, "4.4.318", 0, 0, "(suspiciousremoteservererror)"},
    {BOUNCE_R_SYSTEMERROR, "5.4.318", 0, 0, "(suspiciousremoteservererror)"},
    {BOUNCE_R_SYSTEMERROR, "4.7.500", 0, 0, "server busy. please try again later from "},
    {BOUNCE_R_SYSTEMERROR, "4.7.700", 0, 0, "pfa agent busy, please try again."},
    {BOUNCE_R_SYSTEMFULL, "4.3.1", 0, 0, "insufficient system resources"},
    {BOUNCE_R_TOOMANYCONN, "5.5.3", 0, 0, "too many recipients"},
    {BOUNCE_R_TOOMANYCONN, "4.5.3", 0, 0, "too many recipients"},
    {BOUNCE_R_TOOMANYCONN, "4.7.652", 0, 0, "has exceeded the maximum number of connections"},
    {BOUNCE_R_TOOMANYCONN, "5.2.122", 0, 0, "the recipient has exceeded their limit for"},
    {BOUNCE_R_USERUNKNOWN, "5.1.1", 0, 0, "resolver.adr.exrecipnotfound; not found"},
    {BOUNCE_R_USERUNKNOWN, "5.1.1", 0, 0, "user unknown"},
    {BOUNCE_R_USERUNKNOWN, "5.1.3", 0, 0, "storedrv.submit; invalid recipient address"},
    {BOUNCE_R_USERUNKNOWN, "5.1.", 4, 5, "recipient address reserved by rfc 2606"},
    {BOUNCE_R_USERUNKNOWN, "5.1.6", 0, 0, "recipient addresses in single label domains not accepted"},
    {BOUNCE_R_USERUNKNOWN, "5.1.1", 0, 0, "bad destination mailbox address"},
    {BOUNCE_R_USERUNKNOWN, "5.1.10", 0, 0, "recipient not found"},
    {BOUNCE_R_USERUNKNOWN, "5.4.1", 0, 0, "recipient address rejected: access denied"},
    {BOUNCE_R_USERUNKNOWN, "5.5.0", 0, 0, "requested action not taken: mailbox unavailable"},
    {BOUNCE_R_USERUNKNOWN, "5.1.2", 0, 0, "invalid x.400 address"},
    {BOUNCE_R_USERUNKNOWN, "5.1.351", 0, 0, "remote server returned unknown recipient or mailbox unavailable"},
    {BOUNCE_R_NONE, NULL, 0, 0, NULL},
};
static const struct bounce_rh_triple bounce_rh_mimecast[] = {
    {BOUNCE_R_AUTHFAILURE, 550, "", "dkim sender invalid - envelope rejected"},
    {BOUNCE_R_AUTHFAILURE, 550, "", "dmarc sender invalid - envelope rejected"},
    {BOUNCE_R_BADREPUTATION, 451, "", "internal resources are temporarily unavailable"},
    {BOUNCE_R_BADREPUTATION, 550, "", "local ct ip reputation - (reject)"},
    {BOUNCE_R_BLOCKED, 451, "", "recipient temporarily unavailable"},
    {BOUNCE_R_BLOCKED, 451, "", "ip temporarily blacklisted"},
    {BOUNCE_R_EXPIRED, 550, "", "journal messages past the expiration"},
    {BOUNCE_R_FAILEDSTARTTLS, 553, "", "this route requires encryption (tls)"},
    {BOUNCE_R_FAILEDSTARTTLS, 553, "", "this route requires tls version 1.2 or greater"},
    {BOUNCE_R_FAILEDSTARTTLS, 553, "", "this route requires high-strength ciphers"},
    {BOUNCE_R_FAILEDSTARTTLS, 554, "", "configuration is invalid for this certificate"},
    {BOUNCE_R_MESGTOOBIG, 554, "", "maximum email size exceeded"},
    {BOUNCE_R_NETWORKERROR, 451, "", "the incorrect hostname used for inbounds"},
    {BOUNCE_R_NETWORKERROR, 550, "", "the incorrect hostname used for inbounds"},
    {BOUNCE_R_NETWORKERROR, 554, "", "mail loop detected"},
    {BOUNCE_R_NORELAYING, 451, "", "open relay not allowed"},
    {BOUNCE_R_NORELAYING, 451, "", "open relay is not allowed"},
    {BOUNCE_R_NOTACCEPT, 451, "", "account inbounds disabled"},
    {BOUNCE_R_ONHOLD, 451, "", "account outbounds disabled"},
    {BOUNCE_R_ONHOLD, 451, "", "hostname is not authorized"},
    {BOUNCE_R_ONHOLD, 550, "", "journal message past expiration"},
    {BOUNCE_R_POLICYVIOLATION, 550, "", "anti-spoofing policy - inbound not allowed"},
    {BOUNCE_R_POLICYVIOLATION, 550, "", "rejected by header-based anti-spoofing policy"},
    {BOUNCE_R_POLICYVIOLATION, 550, "", "message bounced due to content examination policy"},
    {BOUNCE_R_POLICYVIOLATION, 554, "", "host network not allowed"},
    {BOUNCE_R_POLICYVIOLATION, 554, "", "host network, not allowed"},
    {BOUNCE_R_REJECTED, 550, "", "administrative prohibition envelope blocked"},
    {BOUNCE_R_REJECTED, 550, "", "envelope blocked - user entry"},
    {BOUNCE_R_REJECTED, 550, "", "envelope blocked - user domain entry"},
    {BOUNCE_R_REJECTED, 550, "", "rejected by header-based manually blocked senders - block for manual block"},
    {BOUNCE_R_REJECTED, 550, "", "rejected by header-based blocked senders - block policy for header from"},
    {BOUNCE_R_REJECTED, 550, "", "envelope rejected - block policy for envelope from address"},
    {BOUNCE_R_SECURITYERROR, 535, "", "incorrect authentication data"},
    {BOUNCE_R_SECURITYERROR, 550, "", "submitter failed to disabled"},
    {BOUNCE_R_SECURITYERROR, 550, "", "submitter failed to authenticate"},
    {BOUNCE_R_SYSTEMERROR, 451, "", "unable to process connection at this time"},
    {BOUNCE_R_SYSTEMERROR, 451, "", "message ended early"},
    {BOUNCE_R_SYSTEMERROR, 451, "", "unable to process command"},
    {BOUNCE_R_SYSTEMERROR, 451, "", "unable to process an email at this time"},
    {BOUNCE_R_TOOMANYCONN, 451, "", "account service is temporarily unavailable"},
    {BOUNCE_R_TOOMANYCONN, 452, "", "too many recipients"},
    {BOUNCE_R_TOOMANYCONN, 550, "", "exceeding outbound thread limit"},
    {BOUNCE_R_USERUNKNOWN, 501, "", "invalid address"},
    {BOUNCE_R_USERUNKNOWN, 503, "", "user unknown"},
    {BOUNCE_R_USERUNKNOWN, 550, "", "invalid recipient"},
    {BOUNCE_R_VIRUSDETECTED, 554, "", "email rejected due to security policies"},
    {BOUNCE_R_NONE, 0, NULL, NULL},
};

static enum bounce_reason bounce_rh_phrases(const struct bounce__fact *f, const struct bounce_rh_phrase *t)
{
    for (; t->p != NULL; t++)
        if (strstr(f->diag, t->p) != NULL)
            return t->r;
    return BOUNCE_R_NONE;
}

static bool bounce_status_valid(const char *st)
{
    return (st[0] == '2' || st[0] == '4' || st[0] == '5') && st[1] == '.' && strlen(st) >= 5;
}

/* Gmail / Google Workspace: https://support.google.com/a/answer/3726730 */
static enum bounce_reason bounce_rh_google_find(const struct bounce__fact *f)
{
    if (f->reply < 200 || !bounce_status_valid(f->status))
        return BOUNCE_R_NONE;
    const char *sub = f->status + 2;
    for (const struct bounce_rh_triple *t = bounce_rh_google; t->p != NULL; t++) {
        if (t->reply % 100 != f->reply % 100 || strncmp(t->status + 2, sub, strlen(sub)) != 0)
            continue;
        if (strstr(f->diag, t->p) != NULL)
            return t->r;
    }
    return BOUNCE_R_NONE;
}

/* Exchange Online / Microsoft 365 NDR codes */
static enum bounce_reason bounce_rh_microsoft_find(const struct bounce__fact *f)
{
    if (!bounce_status_valid(f->status))
        return BOUNCE_R_NONE;
    const char *third = strchr(f->status + 2, '.');
    int n3 = third ? atoi(third + 1) : -1;
    for (const struct bounce_rh_range *t = bounce_rh_microsoft; t->p != NULL; t++) {
        if (t->lo == t->hi) {
            if (strcmp(f->status, t->status) != 0)
                continue;
        } else if (strstr(f->status, t->status) == NULL || n3 < t->lo || n3 > t->hi) {
            continue;
        }
        if (strstr(f->diag, t->p) != NULL)
            return t->r;
    }
    return BOUNCE_R_NONE;
}

static enum bounce_reason bounce_rh_mimecast_find(const struct bounce__fact *f)
{
    for (const struct bounce_rh_triple *t = bounce_rh_mimecast; t->p != NULL; t++)
        if (t->reply == f->reply && strstr(f->diag, t->p) != NULL)
            return t->r;
    return BOUNCE_R_NONE;
}

/* Copies into out the token of text that follows the first begin, up to
 * the next until; "" if none. */
static void bounce_select(const char *text, const char *begin, const char *until, char *out, size_t outlen)
{
    out[0] = '\0';
    const char *p = strstr(text, begin);
    if (p == NULL)
        return;
    p += strlen(begin);
    const char *e = *p ? strstr(p + 1, until) : NULL;
    if (e == NULL)
        return;
    size_t n = (size_t)(e - p);
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* Cox: "AUP#CXBL" style codes (https://www.cox.com/residential/support/email-error-codes.html) */
static enum bounce_reason bounce_rh_cox_find(const struct bounce__fact *f)
{
    static const struct { const char *code; enum bounce_reason r; } codes[] = {
        {"cxbl", BOUNCE_R_BLOCKED}, {"cxdns", BOUNCE_R_REQUIREPTR}, {"cxsndr", BOUNCE_R_AUTHFAILURE},
        {"cxsmtp", BOUNCE_R_REJECTED}, {"cxcnct", BOUNCE_R_TOOMANYCONN}, {"cxmxrt", BOUNCE_R_TOOMANYCONN},
        {"cdrbl", BOUNCE_R_BLOCKED}, {"cxthrt", BOUNCE_R_SECURITYERROR}, {"cxmj", BOUNCE_R_SECURITYERROR},
        {"urlbl011", BOUNCE_R_SPAMDETECTED}, {"urlbl101", BOUNCE_R_SPAMDETECTED},
        {"urlbl110", BOUNCE_R_SPAMDETECTED}, {"urlbl1001", BOUNCE_R_SPAMDETECTED},
    };
    char code[32], text[BOUNCE_DIAG_MAX + 2];
    snprintf(text, sizeof text, "%s ", f->diag);
    bounce_select(text, "aup#", " ", code, sizeof code);
    if (strncmp(code, "ipbl", 4) == 0)
        return BOUNCE_R_BLOCKED; /* the sending IP is on a block list */
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(code, codes[i].code) == 0)
            return codes[i].r;
    return bounce_rh_phrases(f, bounce_rh_cox);
}

/* Facebook: "RCP-P1" style codes */
static enum bounce_reason bounce_rh_facebook_find(const struct bounce__fact *f)
{
    static const struct { const char *code; enum bounce_reason r; } codes[] = {
        {"pol-p7", BOUNCE_R_AUTHFAILURE}, {"pol-p1", BOUNCE_R_BLOCKED}, {"pol-p2", BOUNCE_R_BLOCKED},
        {"pol-p3", BOUNCE_R_BLOCKED}, {"pol-p4", BOUNCE_R_BLOCKED}, {"pol-t1", BOUNCE_R_BLOCKED},
        {"pol-t2", BOUNCE_R_BLOCKED}, {"pol-t3", BOUNCE_R_BLOCKED}, {"msg-p2", BOUNCE_R_CONTENTERROR},
        {"rcp-p2", BOUNCE_R_FILTERED}, {"rcp-p3", BOUNCE_R_FILTERED}, {"msg-p1", BOUNCE_R_MESGTOOBIG},
        {"int-p2", BOUNCE_R_MESGTOOBIG}, {"msg-p3", BOUNCE_R_NOTCOMPLIANTRFC}, {"dns-p1", BOUNCE_R_REJECTED},
        {"dns-p2", BOUNCE_R_REJECTED}, {"dns-t1", BOUNCE_R_REJECTED}, {"dns-p3", BOUNCE_R_REQUIREPTR},
        {"dns-t2", BOUNCE_R_REQUIREPTR}, {"pol-p6", BOUNCE_R_SPAMDETECTED}, {"rcp-t4", BOUNCE_R_SUSPEND},
        {"rcp-t1", BOUNCE_R_SYSTEMERROR}, {"con-t1", BOUNCE_R_TOOMANYCONN}, {"con-t2", BOUNCE_R_TOOMANYCONN},
        {"con-t3", BOUNCE_R_TOOMANYCONN}, {"con-t4", BOUNCE_R_TOOMANYCONN}, {"msg-t1", BOUNCE_R_TOOMANYCONN},
        {"rcp-p1", BOUNCE_R_USERUNKNOWN}, {"int-p1", BOUNCE_R_USERUNKNOWN}, {"int-p3", BOUNCE_R_USERUNKNOWN},
        {"int-p4", BOUNCE_R_USERUNKNOWN}, {"pol-p5", BOUNCE_R_VIRUSDETECTED},
    };
    const char *dash = strchr(f->diag, '-');
    if (dash == NULL || dash - f->diag < 3 || strlen(dash) < 3)
        return BOUNCE_R_NONE;
    char label[8];
    memcpy(label, dash - 3, 6);
    label[6] = '\0';
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(label, codes[i].code) == 0)
            return codes[i].r;
    return BOUNCE_R_NONE;
}

/* Orange / La Poste: "LPN007_510", "OFR_999" style labels */
static enum bounce_reason bounce_rh_franceptt_find(const struct bounce__fact *f)
{
    static const struct { int code; enum bounce_reason r; } codes[] = {
        {101, BOUNCE_R_BLOCKED}, {102, BOUNCE_R_BLOCKED}, {103, BOUNCE_R_BLOCKED}, {104, BOUNCE_R_TOOMANYCONN},
        {305, BOUNCE_R_SECURITYERROR}, {401, BOUNCE_R_AUTHFAILURE}, {402, BOUNCE_R_SECURITYERROR},
        {403, BOUNCE_R_REJECTED}, {405, BOUNCE_R_REJECTED}, {415, BOUNCE_R_REJECTED}, {416, BOUNCE_R_USERUNKNOWN},
        {417, BOUNCE_R_MAILBOXFULL}, {420, BOUNCE_R_SUSPEND}, {421, BOUNCE_R_REJECTED}, {426, BOUNCE_R_SUSPEND},
        {505, BOUNCE_R_SYSTEMERROR}, {506, BOUNCE_R_SPAMDETECTED}, {510, BOUNCE_R_BLOCKED},
        {514, BOUNCE_R_MESGTOOBIG}, {517, BOUNCE_R_AUTHFAILURE}, {630, BOUNCE_R_POLICYVIOLATION},
        {999, BOUNCE_R_BLOCKED},
        /* 105, 107, 108, 109, 201, 423, 424, 513: "try again later", no reason */
    };
    static const char *const labels[] = {"lpn", "lpnaaa", "ofr", "ouk"};
    char text[BOUNCE_DIAG_MAX + 1];
    bounce__copy(text, sizeof text, f->diag);
    for (char *p = text; *p; p++)
        if (*p == '_')
            *p = '-';
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++) {
        const char *at = NULL;
        for (const char *p = strstr(text, labels[i]); p != NULL; p = strstr(p + 1, labels[i]))
            at = p; /* the last one */
        if (at == NULL)
            continue;
        /* the code is the number at the end of the label's word */
        const char *e = at;
        while (*e && *e != ' ')
            e++;
        const char *d = e;
        while (d > at && isdigit((unsigned char)d[-1]))
            d--;
        if (e - d >= 3) {
            int code = atoi(e - 3);
            for (size_t k = 0; k < sizeof codes / sizeof codes[0]; k++)
                if (codes[k].code == code)
                    return codes[k].r;
        }
        break;
    }
    if (strstr(f->diag, "spf/dns de votre nom de domaine") != NULL)
        return BOUNCE_R_AUTHFAILURE;
    return BOUNCE_R_NONE;
}

/* GoDaddy: " IB401" style codes */
static enum bounce_reason bounce_rh_godaddy_find(const struct bounce__fact *f)
{
    static const struct { const char *code; enum bounce_reason r; } codes[] = {
        {"ib401", BOUNCE_R_SECURITYERROR}, {"ib501", BOUNCE_R_NOTCOMPLIANTRFC}, {"ib502", BOUNCE_R_NOTCOMPLIANTRFC},
        {"ib506", BOUNCE_R_REJECTED}, {"ib508", BOUNCE_R_AUTHFAILURE}, {"ib108", BOUNCE_R_REQUIREPTR},
        {"ib212", BOUNCE_R_SPAMDETECTED}, {"ib705", BOUNCE_R_VIRUSDETECTED}, {"ib605", BOUNCE_R_TOOMANYCONN},
        {"ib007", BOUNCE_R_TOOMANYCONN}, {"ib101", BOUNCE_R_SPEEDING}, {"ib110", BOUNCE_R_BLOCKED},
        {"ib111", BOUNCE_R_BLOCKED}, {"ib112", BOUNCE_R_BLOCKED}, {"ib113", BOUNCE_R_BLOCKED},
        {"ib504", BOUNCE_R_SPEEDING}, {"ib510", BOUNCE_R_SPEEDING}, {"ib607", BOUNCE_R_SPEEDING},
        {"ib103", BOUNCE_R_BADREPUTATION}, {"ib104", BOUNCE_R_BLOCKED}, {"ib105", BOUNCE_R_BLOCKED},
        {"ib106", BOUNCE_R_BLOCKED},
    };
    char code[32] = "ib", tail[24];
    bounce_select(f->diag, " ib", " ", tail, sizeof tail);
    bounce__copy(code + 2, sizeof code - 2, tail);
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(code, codes[i].code) == 0)
            return codes[i].r;
    return bounce_rh_phrases(f, bounce_rh_godaddy);
}

/* i.ua: ".i.ua/err/NN/" */
static enum bounce_reason bounce_rh_iua_find(const struct bounce__fact *f)
{
    static const enum bounce_reason codes[] = {
        BOUNCE_R_NONE, BOUNCE_R_NORELAYING, BOUNCE_R_USERUNKNOWN, BOUNCE_R_SUSPEND, BOUNCE_R_MAILBOXFULL,
        BOUNCE_R_TOOMANYCONN, BOUNCE_R_NORELAYING, BOUNCE_R_BLOCKED, BOUNCE_R_REJECTED, BOUNCE_R_BLOCKED,
        BOUNCE_R_FILTERED,
    };
    char code[16];
    bounce_select(f->diag, ".i.ua/err/", "/", code, sizeof code);
    int n = atoi(code);
    return n > 0 && n <= 10 ? codes[n] : BOUNCE_R_NONE;
}

/* Spectrum (Charter): "AUP#1260" */
static enum bounce_reason bounce_rh_spectrum_find(const struct bounce__fact *f)
{
    static const struct { int lo, hi; enum bounce_reason r; } codes[] = {
        {1000, 1000, BOUNCE_R_BLOCKED}, {1010, 1010, BOUNCE_R_REJECTED}, {1020, 1080, BOUNCE_R_REJECTED},
        {1090, 1090, BOUNCE_R_SYSTEMERROR}, {1100, 1150, BOUNCE_R_REQUIREPTR},
        {1160, 1190, BOUNCE_R_POLICYVIOLATION}, {1200, 1250, BOUNCE_R_BLOCKED},
        {1260, 1260, BOUNCE_R_NETWORKERROR}, {1300, 1340, BOUNCE_R_TOOMANYCONN},
        {1350, 1490, BOUNCE_R_SPEEDING}, {1500, 1500, BOUNCE_R_REJECTED}, {1520, 1520, BOUNCE_R_REJECTED},
        {1530, 1530, BOUNCE_R_MESGTOOBIG}, {1540, 1550, BOUNCE_R_SPEEDING},
        {1560, 1560, BOUNCE_R_POLICYVIOLATION}, {1580, 1580, BOUNCE_R_SPEEDING},
    };
    const char *p = strstr(f->diag, "aup#");
    if (p == NULL)
        return BOUNCE_R_NONE;
    int n = 0, digits = 0;
    for (p += 4; *p && digits < 4; p++) {
        if (isdigit((unsigned char)*p)) {
            n = n * 10 + (*p - '0');
            digits++;
        } else {
            n = digits = 0;
        }
    }
    if (digits != 4)
        return BOUNCE_R_NONE;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (n >= codes[i].lo && n <= codes[i].hi)
            return codes[i].r;
    return BOUNCE_R_NONE;
}

/* G Suite relays: DNS answers the Google resolver got */
static enum bounce_reason bounce_rh_gsuite_find(const struct bounce__fact *f)
{
    char sc = f->status[0], rc = f->reply ? (char)('0' + f->reply / 100) : '\0';
    for (const struct bounce_rh_phrase *t = bounce_rh_gsuite; t->p != NULL; t++) {
        if (strstr(f->diag, t->p) == NULL)
            continue;
        if (t->r == BOUNCE_R_NETWORKERROR && (sc == '5' || rc == '5'))
            continue;
        if (t->r == BOUNCE_R_HOSTUNKNOWN && (sc == '4' || sc == '\0' || rc == '4' || rc == '\0'))
            continue;
        return t->r;
    }
    return BOUNCE_R_NONE;
}

/* NTT docomo: the status says most */
static enum bounce_reason bounce_rh_nttdocomo_find(const struct bounce__fact *f)
{
    if (strcmp(f->status, "5.1.1") == 0)
        return BOUNCE_R_USERUNKNOWN;
    if (strcmp(f->status, "5.2.0") == 0)
        return BOUNCE_R_FILTERED;
    enum bounce_reason r = bounce_rh_phrases(f, bounce_rh_nttdocomo);
    if (r != BOUNCE_R_NONE)
        return r;
    if (strcmp(f->status, "5.0.0") == 0) {
        if (f->cmd == BOUNCE_CMD_RCPT)
            return BOUNCE_R_USERUNKNOWN;
        if (f->cmd == BOUNCE_CMD_DATA)
            return BOUNCE_R_REJECTED;
    }
    return BOUNCE_R_NONE;
}

#define RH_PHRASES(name)                                                     \
    static enum bounce_reason bounce_rh_##name##_find(const struct bounce__fact *f) \
    {                                                                        \
        return bounce_rh_phrases(f, bounce_rh_##name);                       \
    }
RH_PHRASES(aol)
RH_PHRASES(apple)
RH_PHRASES(kddi)
RH_PHRASES(messagelabs)
RH_PHRASES(outlook)
RH_PHRASES(tencent)
RH_PHRASES(yahooinc)

/* A host name suffix with its length: a decision compares some ninety of
 * them with up to three names, and two strlen() per comparison were most
 * of the cost. */
struct bounce_rh_host {
    const char *s;
    size_t n;
};
#define RH(...) ((const struct bounce_rh_host[]){__VA_ARGS__, {NULL, 0}})
#define H(lit) {BOUNCE_LIT(lit)}

static const struct {
    const struct bounce_rh_host *hosts;
    enum bounce_reason (*find)(const struct bounce__fact *f);
} bounce_rh_providers[] = {
    {RH(H(".mail.aol.com"), H(".mx.aol.com")), bounce_rh_aol_find},
    {RH(H(".mail.icloud.com"), H(".apple.com"), H(".me.com")), bounce_rh_apple_find},
    {RH(H("cox.net")), bounce_rh_cox_find},
    {RH(H(".facebook.com")), bounce_rh_facebook_find},
    {RH(H(".laposte.net"), H(".orange.fr"), H(".wanadoo.fr")), bounce_rh_franceptt_find},
    {RH(H("smtp.secureserver.net"), H("mailstore1.secureserver.net")), bounce_rh_godaddy_find},
    {RH(H("aspmx.l.google.com"), H("gmail-smtp-in.l.google.com")), bounce_rh_google_find},
    {RH(H("googlemail.com")), bounce_rh_gsuite_find},
    {RH(H(".email.ua")), bounce_rh_iua_find},
    {RH(H(".ezweb.ne.jp"), H("msmx.au.com")), bounce_rh_kddi_find},
    {RH(H(".messagelabs.com")), bounce_rh_messagelabs_find},
    {RH(H(".prod.outlook.com"), H(".protection.outlook.com"), H(".onmicrosoft.com"), H(".exchangelabs.com")),
     bounce_rh_microsoft_find},
    {RH(H(".mimecast.com")), bounce_rh_mimecast_find},
    {RH(H("mfsmax.docomo.ne.jp")), bounce_rh_nttdocomo_find},
    {RH(H(".hotmail.com")), bounce_rh_outlook_find},
    {RH(H("charter.net")), bounce_rh_spectrum_find},
    {RH(H(".qq.com")), bounce_rh_tencent_find},
    {RH(H(".yahoodns.net")), bounce_rh_yahooinc_find},
};
#undef H
#undef RH

/* The suffix's first and last bytes tested before the call to memcmp():
 * they rule out nearly every one of a decision's comparisons. */
static bool bounce_ends_with(const char *s, size_t n, const char *suffix, size_t m)
{
    return n >= m && (m == 0 || (s[n - 1] == suffix[m - 1] && s[n - m] == suffix[0])) &&
           memcmp(s + n - m, suffix, m) == 0;
}

/* The first provider (in table order) one of whose suffixes ends in the
 * recipient's domain (dest_in_host) or that the host name ends in; -1: none. */
static int bounce_rh_match(const char *name, bool dest_in_host)
{
    size_t n = strlen(name);
    if (n == 0)
        return -1;
    for (size_t i = 0; i < sizeof bounce_rh_providers / sizeof bounce_rh_providers[0]; i++)
        for (const struct bounce_rh_host *h = bounce_rh_providers[i].hosts; h->s; h++)
            if (dest_in_host ? bounce_ends_with(h->s, h->n, name, n) : bounce_ends_with(name, n, h->s, h->n))
                return (int)i;
    return -1;
}

enum bounce_reason bounce__rhost(const struct bounce__fact *f)
{
    if (f->diag[0] == '\0')
        return BOUNCE_R_NONE;
    /* the recipient's domain: a provider whose host names end in it; else
     * the remote host's name, else the reporting host's */
    int found = bounce_rh_match(f->dest, true);
    if (found < 0)
        found = bounce_rh_match(f->rhost, false);
    if (found < 0)
        found = bounce_rh_match(f->lhost, false);
    return found < 0 ? BOUNCE_R_NONE : bounce_rh_providers[found].find(f);
}
