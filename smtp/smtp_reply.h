/* Incremental, bounded parser for SMTP replies (RFC 5321 §4.2), client side.
 *
 * A reply is one or more lines "DDD-text" ending with a line "DDD text" (or a
 * bare "DDD"). Bytes are fed as they arrive from the network, in chunks of any
 * size; the parser keeps at most one line (max_line bytes) and a bounded copy
 * of the reply text. Pipelined replies that arrive in one chunk are returned
 * one at a time: feed() stops after the first complete reply and tells how
 * many bytes it used, and the caller feeds the rest again.
 *
 * Hostile input is refused, not repaired: an over-long line, too many lines,
 * a malformed code, a continuation line whose code differs from the first, or
 * a NUL byte put the parser in a sticky error state until reset. */
#ifndef SMTP_REPLY_H
#define SMTP_REPLY_H

#include <stddef.h>

enum smtp_reply_err {
    SMTP_REPLY_OK = 0,
    SMTP_REPLY_DONE = 1,        /* feed(): a complete reply is in *out */
    SMTP_REPLY_ENOMEM = -12,
    SMTP_REPLY_EINVAL = -22,
    SMTP_REPLY_ETOOLONG = -2000, /* a line longer than max_line */
    SMTP_REPLY_ETOOMANY,         /* more than max_lines lines */
    SMTP_REPLY_EBADCODE,         /* a line without a valid 3-digit code + ' ' or '-' */
    SMTP_REPLY_EMIXED,           /* continuation lines with different codes */
    SMTP_REPLY_ENUL,             /* a NUL byte inside a line */
};
const char *smtp_reply_strerror(int err);

/* Limits; zero fields take the defaults. */
struct smtp_reply_limits {
    size_t max_line;  /* bytes per line without CRLF; default 2048 (RFC 5321 minimum: 512) */
    size_t max_lines; /* lines per reply; default 128 */
};
#define SMTP_REPLY_DEFAULT_MAX_LINE 2048
#define SMTP_REPLY_DEFAULT_MAX_LINES 128
#define SMTP_REPLY_TEXT_MAX 4096 /* bytes of reply text kept; the rest is dropped */

typedef struct smtp_reply {
    int code;            /* 200..599 */
    char enhanced[16];   /* RFC 3463 "x.y.z" from the first line, class matching code; or "" */
    size_t nlines;
    int truncated;       /* text was cut at SMTP_REPLY_TEXT_MAX */
    size_t text_len;
    /* The text of every line after "DDD-"/"DDD ", lines joined by '\n',
     * NUL-terminated. The enhanced code is left in the text. */
    char text[SMTP_REPLY_TEXT_MAX];
} smtp_reply;

typedef struct smtp_reply_parser smtp_reply_parser;

int smtp_reply_parser_new(smtp_reply_parser **out, const struct smtp_reply_limits *lim);
void smtp_reply_parser_free(smtp_reply_parser *p);
/* Forget any partial reply and a sticky error. */
void smtp_reply_parser_reset(smtp_reply_parser *p);
/* Feeds len bytes. Returns SMTP_REPLY_DONE with *out filled and *used < len
 * possibly (call again with the rest), SMTP_REPLY_OK when every byte was used
 * and the reply is not complete yet, or a negative error (sticky). */
int smtp_reply_parser_feed(smtp_reply_parser *p, const char *data, size_t len,
                           size_t *used, smtp_reply *out);
/* Nonzero while a reply has been started but not completed. */
int smtp_reply_parser_pending(const smtp_reply_parser *p);

/* Extracts an RFC 3463 enhanced status code at the start of text ("5.1.1 ...")
 * whose class digit equals class_digit. Writes it to dst and returns its
 * length, or 0 when there is none. */
size_t smtp_reply_enhanced(const char *text, size_t len, int class_digit,
                           char *dst, size_t dst_size);

#endif
