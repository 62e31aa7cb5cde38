/* libFuzzer target: the SMTP reply parser. The first byte picks the chunk
 * size, the rest is fed in chunks; every complete reply is checked for its
 * invariants (code range, NUL-terminated bounded text, class of the enhanced
 * status code). Small limits so that the limit paths are reached. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = (size_t)(data[0] % 64) + 1;
    data++;
    size--;
    struct smtp_reply_limits lim = { 256, 16 };
    smtp_reply_parser *p = NULL;
    if (smtp_reply_parser_new(&p, &lim) != SMTP_REPLY_OK)
        return 0;
    smtp_reply *r = malloc(sizeof *r);
    size_t pos = 0;
    while (pos < size && r != NULL) {
        size_t n = size - pos < chunk ? size - pos : chunk;
        size_t used = 0;
        int rv = smtp_reply_parser_feed(p, (const char *)data + pos, n, &used, r);
        if (used > n)
            abort();
        pos += used;
        if (rv < 0) {
            smtp_reply_parser_reset(p);
            pos += (used == 0);
            continue;
        }
        if (rv == SMTP_REPLY_DONE) {
            if (r->code < 200 || r->code > 559 || r->nlines == 0 || r->nlines > 16 ||
                r->text_len >= SMTP_REPLY_TEXT_MAX || strlen(r->text) != r->text_len)
                abort();
            if (r->enhanced[0] != '\0' && r->enhanced[0] - '0' != r->code / 100)
                abort();
        } else if (used != n) {
            abort();
        }
    }
    free(r);
    smtp_reply_parser_free(p);
    return 0;
}
