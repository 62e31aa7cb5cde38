/* Delivery status notifications (RFC 3464, RFC 6522, RFC 3461) that we send
 * back to the original envelope sender.
 *
 * dsn_build() makes one whole DSN message: RFC 5322 headers (From, To,
 * Subject, Date, Message-ID, MIME-Version, Auto-Submitted: auto-replied)
 * and a multipart/report; report-type=delivery-status body of three parts:
 * a short human-readable text/plain, the message/delivery-status fields,
 * and the original message (message/rfc822 for RET=FULL, else
 * text/rfc822-headers; no third part without an original). The caller
 * sends it from the null sender <> so that it never causes another DSN.
 *
 * Every string field may hold anything (the diagnostic is a remote MTA's
 * reply): CR, LF, TAB and other control characters become spaces, bytes
 * outside ASCII become '?' (UTF-8 is only allowed in
 * message/global-delivery-status, RFC 6533, which we do not send), and
 * values are cut to 900 bytes and folded, so that no field can add a line of
 * its own and no line exceeds 998 octets. Lines end in CRLF. All MIME work
 * is GMime's; this header includes no GLib or GMime. */
#ifndef SMTP_DSN_H
#define SMTP_DSN_H

#include <stddef.h>
#include <stdint.h>

struct dsn_rcpt {
    const char *final_recipient;     /* the address tried, without <> */
    const char *original_recipient;  /* DSN ORCPT as received, "rfc822;addr" (xtext-decoded), or NULL */
    const char *action;              /* "failed", "delayed", "delivered", "relayed", "expanded" */
    const char *status;              /* enhanced status "5.1.1"; NULL/"" -> derived: failed 5.0.0, delayed 4.0.0, relayed/delivered 2.0.0 */
    const char *remote_mta;          /* MX host name that answered, or NULL */
    const char *diagnostic;          /* remote reply text, e.g. "550 5.1.1 <x@y>: user unknown", or our own text; NULL if none */
    int diagnostic_is_smtp;          /* 1: Diagnostic-Code: smtp; ...  0: Diagnostic-Code: X-Ricochet; ... */
    uint64_t last_attempt_ms;        /* unix ms, 0: omitted */
    uint64_t will_retry_until_ms;    /* delayed only, 0: omitted */
};

struct dsn_input {
    const char *reporting_mta;       /* our host name (Reporting-MTA: dns; NAME) */
    const char *from_address;        /* e.g. "MAILER-DAEMON@host" (header From) */
    const char *to_address;          /* the original envelope sender (header To) */
    const char *envid;               /* Original-Envelope-Id, or NULL */
    const char *ret;                 /* "FULL", "HDRS" or NULL (NULL: FULL when the original fits max_full_size, else headers) */
    const char *queue_id;            /* our message id, for the human-readable text and X-Ricochet-Queue-ID */
    uint64_t arrival_ms;             /* Arrival-Date */
    uint64_t now_ms;                 /* Date of the DSN */
    const struct dsn_rcpt *rcpts;
    size_t nrcpts;
    const uint8_t *original;         /* the original message (headers + body), may be NULL */
    size_t original_len;
    size_t max_full_size;            /* 0: default 1 MiB. A larger original is returned as headers only, and the text says so */
};

enum dsn_err { DSN_OK = 0, DSN_EINVAL = -22, DSN_ENOMEM = -12 };

#define DSN_DEFAULT_MAX_FULL_SIZE (1u << 20)
/* Bytes of one field value kept (diagnostic, addresses, envid). */
#define DSN_MAX_FIELD 900

/* Builds the whole DSN message (RFC 5322 headers + multipart/report body, CRLF line endings)
 * into a malloc'd buffer. DSN_EINVAL: no recipient, no reporting_mta or
 * to_address, a recipient without final_recipient or with an unknown action.
 * The caller frees *out. */
int dsn_build(const struct dsn_input *in, uint8_t **out, size_t *out_len);

#endif
