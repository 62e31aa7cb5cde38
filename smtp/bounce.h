/* Bounce, complaint and auto-reply analysis (issue 6).
 *
 * bounce_analyse() reads one whole mail (headers and body, as received) and
 * tells what it is: a standard delivery status notification (RFC 3464
 * multipart/report with message/delivery-status), a non-standard NDR of some
 * MTA or provider (Postfix, Exim, Sendmail, qmail, Exchange, Gmail, ...), an
 * ARF complaint (RFC 5965 message/feedback-report), an automatic reply
 * (RFC 3834, vacation), or none of these. Per recipient it gives the final
 * and original recipient, action, status, diagnostic code, remote MTA and a
 * reason in the Sisimai taxonomy with the hard/soft flag; for the whole mail
 * the headers of the returned original message, so that the caller can map
 * the bounce back to the message it sent.
 *
 * bounce_classify_reply() is the same classifier on its own, for the
 * synchronous replies that the egress SMTP client receives
 * (code + enhanced status + text).
 *
 * Work per message is bounded (struct bounce_limits); no input crashes it.
 * MIME, base64, quoted-printable, RFC 2047 and charsets are decoded by GMime,
 * which stays inside this library: this header includes no GLib or GMime. */
#ifndef SMTP_BOUNCE_H
#define SMTP_BOUNCE_H

#include <stddef.h>

enum bounce_err {
    BOUNCE_OK = 0,
    BOUNCE_ENOMEM = -12,
    BOUNCE_EINVAL = -22,
    BOUNCE_ETOOBIG = -3000, /* the mail is larger than max_size */
    BOUNCE_EPARSE,          /* GMime could not make a message of it */
};
const char *bounce_strerror(int err);

/* Reasons (Sisimai taxonomy). docs/BOUNCES.md keeps the table. */
enum bounce_reason {
    BOUNCE_R_UNDEFINED = 0,
    BOUNCE_R_ONHOLD,
    BOUNCE_R_USERUNKNOWN,
    BOUNCE_R_HOSTUNKNOWN,
    BOUNCE_R_HASMOVED,
    BOUNCE_R_NOTACCEPT,
    BOUNCE_R_MAILBOXFULL,
    BOUNCE_R_MESGTOOBIG,
    BOUNCE_R_EXCEEDLIMIT,
    BOUNCE_R_SUSPEND,
    BOUNCE_R_FILTERED,
    BOUNCE_R_REJECTED,
    BOUNCE_R_BLOCKED,
    BOUNCE_R_BADREPUTATION,
    BOUNCE_R_REQUIREPTR,
    BOUNCE_R_AUTHFAILURE,
    BOUNCE_R_NOTCOMPLIANTRFC,
    BOUNCE_R_SPAMDETECTED,
    BOUNCE_R_VIRUSDETECTED,
    BOUNCE_R_POLICYVIOLATION,
    BOUNCE_R_SECURITYERROR,
    BOUNCE_R_FAILEDSTARTTLS,
    BOUNCE_R_CONTENTERROR,
    BOUNCE_R_SYNTAXERROR,
    BOUNCE_R_NORELAYING,
    BOUNCE_R_SPEEDING,
    BOUNCE_R_TOOMANYCONN,
    BOUNCE_R_NETWORKERROR,
    BOUNCE_R_EXPIRED,
    BOUNCE_R_SYSTEMERROR,
    BOUNCE_R_SYSTEMFULL,
    BOUNCE_R_MAILERERROR,
    BOUNCE_R_SUPPRESSED,
    /* not bounces: */
    BOUNCE_R_FEEDBACK,
    BOUNCE_R_VACATION,
    BOUNCE_R_DELIVERED,
    BOUNCE_R_COUNT
};

/* "userunknown", ...; "undefined" for an out-of-range value. */
const char *bounce_reason_name(enum bounce_reason r);
/* Inverse of bounce_reason_name(); -1 when unknown. */
int bounce_reason_from_name(const char *name);
/* 1 hard, 0 soft, -1 not a bounce (feedback, vacation, delivered).
 * Hard: userunknown, hostunknown, hasmoved, and notaccept unless the
 * SMTP code (or, without one, the enhanced status class) is 4xx. */
int bounce_reason_hard(enum bounce_reason r, int smtp_code, const char *enhanced);

/* The classifier. code: SMTP reply code or 0; enhanced: "x.y.z" or NULL/"";
 * text: the reply or diagnostic text or NULL. Never fails: without any clue
 * the reason is onhold (a failure code) or undefined. *hard (may be NULL)
 * receives bounce_reason_hard(). */
enum bounce_reason bounce_classify_reply(int code, const char *enhanced,
                                         const char *text, int *hard);

/* The SMTP command a reply answered, when known (egress knows it; in a
 * bounce it is read from "in reply to RCPT TO command", ">>> DATA", ...).
 * It refines the reason as real MTAs mean it: a "user unknown" after DATA
 * is a content filter (filtered), a refusal at MAIL FROM is about the
 * sender (rejected), one at connect/HELO about the client (blocked). */
enum bounce_smtp_cmd {
    BOUNCE_CMD_UNKNOWN = 0,
    BOUNCE_CMD_CONNECT,  /* the greeting (no command yet) */
    BOUNCE_CMD_MAIL,
    BOUNCE_CMD_RCPT,
    BOUNCE_CMD_DATA,     /* DATA or end of data */
    BOUNCE_CMD_HELO,     /* HELO or EHLO */
    BOUNCE_CMD_STARTTLS,
    BOUNCE_CMD_AUTH,
    BOUNCE_CMD_OTHER,    /* QUIT, XFORWARD, ... */
};
enum bounce_reason bounce_classify_smtp(int code, const char *enhanced, const char *text,
                                        enum bounce_smtp_cmd cmd, int *hard);

/* Limits; zero fields take the defaults. */
struct bounce_limits {
    size_t max_size;        /* bytes of mail analysed at all; default 16 MiB */
    unsigned max_depth;     /* MIME nesting walked; default 8 */
    unsigned max_parts;     /* MIME parts looked at; default 64 */
    size_t max_text;        /* bytes of decoded text kept per part; default 256 KiB */
    unsigned max_rcpts;     /* recipients reported; default 256 */
    unsigned max_headers;   /* original-message headers kept; default 64 */
};
#define BOUNCE_DEFAULT_MAX_SIZE (16u << 20)
#define BOUNCE_DEFAULT_MAX_DEPTH 8
#define BOUNCE_DEFAULT_MAX_PARTS 64
#define BOUNCE_DEFAULT_MAX_TEXT (256u << 10)
#define BOUNCE_DEFAULT_MAX_RCPTS 256
#define BOUNCE_DEFAULT_MAX_HEADERS 64

enum bounce_kind {
    BOUNCE_KIND_NONE = 0,   /* not a bounce, complaint or auto-reply */
    BOUNCE_KIND_DSN,        /* RFC 3464 delivery status notification */
    BOUNCE_KIND_NDR,        /* non-standard non-delivery report */
    BOUNCE_KIND_ARF,        /* complaint (RFC 5965 or a provider's own format) */
    BOUNCE_KIND_AUTOREPLY,  /* RFC 3834 automatic reply, vacation */
};
const char *bounce_kind_name(enum bounce_kind k); /* "none","dsn","ndr","arf","autoreply" */

/* One recipient of the report. Strings are never NULL ("" when unknown) and
 * live as long as the report. */
struct bounce_rcpt {
    const char *recipient;   /* final recipient, domain lower-cased; "" if none */
    const char *original;    /* Original-Recipient, or "" */
    const char *action;      /* failed, delayed, delivered, relayed, expanded or "" */
    const char *status;      /* enhanced status "x.y.z" or "" */
    const char *diagnostic;  /* diagnostic text (reply of the remote MTA) or "" */
    const char *remote_mta;  /* Remote-MTA host or "" */
    int smtp_code;           /* 0 when none */
    enum bounce_reason reason;
    int hard;                /* 1 hard, 0 soft, -1 not a bounce */
};

struct bounce_header {
    const char *name;
    const char *value;       /* unfolded, RFC 2047 decoded */
};

typedef struct bounce_report bounce_report;

/* Analyses len bytes of one mail. On success *out is a report (free it with
 * bounce_report_free); a mail that is no bounce gives a report of kind NONE
 * with no recipient. errmsg (may be NULL) receives a reason on failure. */
int bounce_analyse(const char *data, size_t len, const struct bounce_limits *lim,
                   bounce_report **out, char *errmsg, size_t errlen);
void bounce_report_free(bounce_report *r);

/* A file of several mails in mbox form (each after a "From " envelope line,
 * as mail archives and Sisimai's samples keep them): the offsets where its
 * mails start, found by GMime's mbox parser, each to be analysed on its own
 * (up to the next offset or the end). Returns how many (*starts malloc'd,
 * the caller frees it), or 0 when data is one mail (*starts NULL). */
size_t bounce_mbox_split(const char *data, size_t len, size_t **starts);

enum bounce_kind bounce_report_kind(const bounce_report *r);
/* ARF Feedback-Type (abuse, fraud, opt-out, virus, other, ...), or "". */
const char *bounce_report_feedback_type(const bounce_report *r);
/* ARF Original-Mail-From (the complained message's envelope sender, i.e.
 * our VERP return path), or "". */
const char *bounce_report_feedback_mail_from(const bounce_report *r);
size_t bounce_report_rcpt_count(const bounce_report *r);
const struct bounce_rcpt *bounce_report_rcpt(const bounce_report *r, size_t i);
/* Headers of the returned original message (Message-ID, From, To,
 * Return-Path, Subject, Date and every X- header, in order). */
size_t bounce_report_orig_header_count(const bounce_report *r);
const struct bounce_header *bounce_report_orig_header(const bounce_report *r, size_t i);
/* First original header of that name (case-insensitive), or NULL. */
const char *bounce_report_orig_get(const bounce_report *r, const char *name);

#endif
