/* libFuzzer target: the DSN builder (smtp/dsn.h) on hostile fields and
 * originals. The first byte picks action, diagnostic type and RET; the rest
 * is cut at 0x01 bytes into diagnostic, final recipient, ORCPT, remote MTA,
 * envid, To address, status, and the original (the rest, any bytes). The
 * output must hold only CRLF line ends, no NUL, no line over 998 octets
 * outside the returned original, and its top-level header block only the
 * header names we write. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp/dsn.h"

#define NSEG 7

static void check(const uint8_t *o, size_t n)
{
    if (n < 4 || memchr(o, '\0', n) != NULL)
        abort();
    static const char *const names[] = {"From:", "To:", "Subject:", "Date:", "Message-Id:",
                                        "Auto-Submitted:", "X-Ricochet-Queue-ID:", "MIME-Version:",
                                        "Content-Type:", NULL};
    int in_header = 1;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (o[i] == '\r' && (i + 1 >= n || o[i + 1] != '\n'))
            abort();
        if (o[i] != '\n')
            continue;
        if (i == 0 || o[i - 1] != '\r')
            abort();
        size_t len = i - 1 - start;
        if (len > 998)
            abort();
        if (in_header) {
            const char *l = (const char *)o + start;
            if (len == 0) {
                in_header = 0;
            } else if (l[0] != ' ' && l[0] != '\t') {
                int known = 0;
                for (size_t k = 0; names[k] != NULL && !known; k++)
                    known = strncasecmp(l, names[k], strlen(names[k])) == 0;
                if (!known)
                    abort();
            }
        }
        start = i + 1;
    }
    if (start != n)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *const actions[] = {"failed", "delayed", "delivered", "relayed", "expanded"};
    static const char *const rets[] = {NULL, "FULL", "HDRS", "bogus"};
    uint8_t sel = data[0];
    data++;
    size--;
    char *seg[NSEG] = {0};
    size_t pos = 0;
    for (int i = 0; i < NSEG; i++) {
        const uint8_t *end = pos < size ? memchr(data + pos, 0x01, size - pos) : NULL;
        size_t len = end ? (size_t)(end - (data + pos)) : size - pos;
        seg[i] = malloc(len + 1);
        if (seg[i] == NULL)
            abort();
        memcpy(seg[i], data + pos, len);
        seg[i][len] = '\0';
        pos += len + (end ? 1 : 0);
    }
    struct dsn_rcpt r[2] = {
        {.final_recipient = seg[1][0] ? seg[1] : "x@example.com", .original_recipient = seg[2],
         .action = actions[sel % 5], .status = seg[6], .remote_mta = seg[3], .diagnostic = seg[0],
         .diagnostic_is_smtp = (sel >> 3) & 1, .last_attempt_ms = (uint64_t)sel << 40,
         .will_retry_until_ms = UINT64_MAX},
        {.final_recipient = seg[2][0] ? seg[2] : "y@example.com", .action = actions[(sel >> 4) % 5],
         .diagnostic = seg[0]},
    };
    struct dsn_input in = {
        .reporting_mta = seg[3],
        .from_address = seg[5],
        .to_address = seg[5],
        .envid = seg[4],
        .ret = rets[(sel >> 6) & 3],
        .queue_id = seg[4],
        .arrival_ms = UINT64_MAX,
        .now_ms = 0,
        .rcpts = r,
        .nrcpts = (sel & 0x20) ? 2 : 1,
        .original = pos < size ? data + pos : NULL,
        .original_len = pos < size ? size - pos : 0,
        .max_full_size = (sel & 0x04) ? 256 : 0,
    };
    uint8_t *out = NULL;
    size_t n = 0;
    if (dsn_build(&in, &out, &n) == DSN_OK) {
        check(out, n);
        free(out);
    }
    for (int i = 0; i < NSEG; i++)
        free(seg[i]);
    return 0;
}
