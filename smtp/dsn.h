/* Delivery status notifications (RFC 3464 in an RFC 6522 multipart/report,
 * RFC 3461 semantics) built for the original envelope sender.
 *
 * dsn_build() writes the whole message: RFC 5322 headers (From, To,
 * Subject, Date, Message-ID, Auto-Submitted: auto-replied, MIME-Version),
 * then a multipart/report; report-type=delivery-status with three parts:
 * a human-readable text/plain, the message/delivery-status fields (one group
 * per recipient), and the original as text/rfc822-headers (RET=HDRS, or an
 * original over max_full_size) or message/rfc822 (RET=FULL, or no RET and
 * the original fits). CRLF line endings throughout.
 *
 * Every caller-supplied string is made safe first: CR, LF, NUL and other
 * control characters become spaces, bytes >= 0x80 become '?' (UTF-8 is only
 * allowed in message/global-delivery-status, RFC 6533, which this does not
 * write), and long values are folded or truncated so that no line exceeds
 * 998 octets. MIME structure, header encoding and folding are GMime's. */
#ifndef SMTP_DSN_H
#define SMTP_DSN_H

#include <stddef.h>
#include <stdint.h>

struct dsn_rcpt {
    const char *final_recipient;     /* the address tried, without <> */
    const char *original_recipient;  /* DSN ORCPT as received, "rfc822;addr", or NULL */
    const char *action;              /* "failed", "delayed", "delivered", "relayed", "expanded" */
    const char *status;              /* "5.1.1"; NULL/"": failed 5.0.0, delayed 4.0.0, others 2.0.0 */
    const char *remote_mta;          /* MX host that answered, or NULL */
    const char *diagnostic;          /* remote reply ("550 5.1.1 ...") or our own text; NULL if none */
    int diagnostic_is_smtp;          /* 1: "smtp; ...", 0: "X-Ricochet; ..." */
    uint64_t last_attempt_ms;        /* unix ms; 0: omitted */
    uint64_t will_retry_until_ms;    /* delayed only; 0: omitted */
};

struct dsn_input {
    const char *reporting_mta;       /* our host name */
    const char *from_address;        /* header From, e.g. "MAILER-DAEMON@host" */
    const char *to_address;          /* the original envelope sender */
    const char *envid;               /* Original-Envelope-Id, or NULL */
    const char *ret;                 /* "FULL", "HDRS" or NULL */
    const char *queue_id;            /* our message id */
    uint64_t arrival_ms;             /* Arrival-Date; 0: omitted */
    uint64_t now_ms;                 /* Date of the DSN */
    const struct dsn_rcpt *rcpts;
    size_t nrcpts;
    const uint8_t *original;         /* the original message, or NULL */
    size_t original_len;
    size_t max_full_size;            /* 0: 1 MiB */
};

enum dsn_err { DSN_OK = 0, DSN_EINVAL = -22, DSN_ENOMEM = -12 };

/* Builds the DSN into a malloc'd buffer (*out, *out_len). */
int dsn_build(const struct dsn_input *in, uint8_t **out, size_t *out_len);

#endif
