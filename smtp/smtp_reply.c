/* Incremental SMTP reply parser (client side).
 *
 * Happy path: bytes are appended to a line buffer until LF; the line (CR
 * stripped) is checked for "DDD" followed by '-', ' ' or end of line; its text
 * is appended to the reply; a line that is not a continuation completes the
 * reply. Failure modes: every check in smtp_reply.h returns a negative code
 * and leaves the parser in that error until smtp_reply_parser_reset(). */
#include "smtp/smtp_reply.h"

#include <stdlib.h>
#include <string.h>

struct smtp_reply_parser {
    size_t max_line, max_lines;
    int err;            /* sticky error, 0 if none */
    size_t line_len;
    char *line;         /* max_line + 1 bytes (room for a CR) */
    smtp_reply cur;     /* reply being assembled */
};

const char *smtp_reply_strerror(int err)
{
    switch (err) {
    case SMTP_REPLY_OK: return "ok";
    case SMTP_REPLY_DONE: return "reply complete";
    case SMTP_REPLY_ENOMEM: return "out of memory";
    case SMTP_REPLY_EINVAL: return "invalid argument";
    case SMTP_REPLY_ETOOLONG: return "reply line too long";
    case SMTP_REPLY_ETOOMANY: return "too many reply lines";
    case SMTP_REPLY_EBADCODE: return "malformed reply code";
    case SMTP_REPLY_EMIXED: return "reply lines with different codes";
    case SMTP_REPLY_ENUL: return "NUL byte in reply";
    }
    return "unknown error";
}

int smtp_reply_parser_new(smtp_reply_parser **out, const struct smtp_reply_limits *lim)
{
    smtp_reply_parser *p = calloc(1, sizeof *p);
    if (p == NULL)
        return SMTP_REPLY_ENOMEM;
    p->max_line = (lim && lim->max_line) ? lim->max_line : SMTP_REPLY_DEFAULT_MAX_LINE;
    p->max_lines = (lim && lim->max_lines) ? lim->max_lines : SMTP_REPLY_DEFAULT_MAX_LINES;
    if (p->max_line < 4) {
        free(p);
        return SMTP_REPLY_EINVAL;
    }
    p->line = malloc(p->max_line + 1);
    if (p->line == NULL) {
        free(p);
        return SMTP_REPLY_ENOMEM;
    }
    *out = p;
    return SMTP_REPLY_OK;
}

void smtp_reply_parser_free(smtp_reply_parser *p)
{
    if (p == NULL)
        return;
    free(p->line);
    free(p);
}

static void reply_clear(smtp_reply *r)
{
    r->code = 0;
    r->enhanced[0] = '\0';
    r->nlines = 0;
    r->truncated = 0;
    r->text_len = 0;
    r->text[0] = '\0';
}

void smtp_reply_parser_reset(smtp_reply_parser *p)
{
    p->err = 0;
    p->line_len = 0;
    reply_clear(&p->cur);
}

int smtp_reply_parser_pending(const smtp_reply_parser *p)
{
    return p->line_len > 0 || p->cur.nlines > 0;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Reads "N.NNN.NNN" (1-3 digits per part after the class) at text, followed
 * by a space or the end. */
size_t smtp_reply_enhanced(const char *text, size_t len, int class_digit,
                           char *dst, size_t dst_size)
{
    size_t i = 0;
    if (len < 5 || text[0] != (char)('0' + class_digit))
        return 0;
    i = 1;
    for (int part = 0; part < 2; part++) {
        if (i >= len || text[i] != '.')
            return 0;
        i++;
        size_t start = i;
        while (i < len && is_digit(text[i]) && i - start < 4)
            i++;
        if (i == start || i - start > 3)
            return 0;
    }
    if (i < len && text[i] != ' ' && text[i] != '\t')
        return 0;
    if (i + 1 > dst_size)
        return 0;
    memcpy(dst, text, i);
    dst[i] = '\0';
    return i;
}

static void reply_append_text(smtp_reply *r, const char *s, size_t n)
{
    size_t room = sizeof r->text - 1 - r->text_len;
    if (r->nlines > 1) {
        if (room == 0) {
            r->truncated = 1;
            return;
        }
        r->text[r->text_len++] = '\n';
        room--;
    }
    if (n > room) {
        n = room;
        r->truncated = 1;
    }
    memcpy(r->text + r->text_len, s, n);
    r->text_len += n;
    r->text[r->text_len] = '\0';
}

/* Returns 1 when the line completed the reply, 0 when more lines follow. */
static int parse_line(smtp_reply_parser *p, const char *l, size_t n)
{
    if (n < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '5' || !is_digit(l[2]))
        return SMTP_REPLY_EBADCODE;
    if (n > 3 && l[3] != ' ' && l[3] != '-')
        return SMTP_REPLY_EBADCODE;
    int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
    int last = !(n > 3 && l[3] == '-');
    if (p->cur.nlines == 0)
        p->cur.code = code;
    else if (p->cur.code != code)
        return SMTP_REPLY_EMIXED;
    if (++p->cur.nlines > p->max_lines)
        return SMTP_REPLY_ETOOMANY;
    const char *text = n > 4 ? l + 4 : "";
    size_t tlen = n > 4 ? n - 4 : 0;
    if (p->cur.nlines == 1)
        smtp_reply_enhanced(text, tlen, l[0] - '0', p->cur.enhanced, sizeof p->cur.enhanced);
    reply_append_text(&p->cur, text, tlen);
    return last;
}

static void reply_copy(smtp_reply *dst, const smtp_reply *src)
{
    dst->code = src->code;
    memcpy(dst->enhanced, src->enhanced, sizeof dst->enhanced);
    dst->nlines = src->nlines;
    dst->truncated = src->truncated;
    dst->text_len = src->text_len;
    memcpy(dst->text, src->text, src->text_len + 1);
}

int smtp_reply_parser_feed(smtp_reply_parser *p, const char *data, size_t len,
                           size_t *used, smtp_reply *out)
{
    size_t i = 0;
    *used = 0;
    if (p->err)
        return p->err;
    while (i < len) {
        char c = data[i++];
        if (c != '\n') {
            if (c == '\0') {
                p->err = SMTP_REPLY_ENUL;
                goto fail;
            }
            if (p->line_len >= p->max_line + 1) {
                p->err = SMTP_REPLY_ETOOLONG;
                goto fail;
            }
            p->line[p->line_len++] = c;
            continue;
        }
        size_t n = p->line_len;
        if (n > 0 && p->line[n - 1] == '\r')
            n--;
        p->line_len = 0;
        if (n > p->max_line) {
            p->err = SMTP_REPLY_ETOOLONG;
            goto fail;
        }
        int rv = parse_line(p, p->line, n);
        if (rv < 0) {
            p->err = rv;
            goto fail;
        }
        if (rv == 1) {
            reply_copy(out, &p->cur);
            reply_clear(&p->cur);
            *used = i;
            return SMTP_REPLY_DONE;
        }
    }
    *used = i;
    return SMTP_REPLY_OK;
fail:
    *used = i;
    return p->err;
}
