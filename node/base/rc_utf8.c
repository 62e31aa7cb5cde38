#include "node/base/rc_utf8.h"

#include <stdlib.h>
#include <string.h>

/* Length of the well-formed sequence at p (1-4), or 0 when ill-formed; sets
 * *bad to the bytes of the maximal invalid subpart then (at least 1). The
 * ranges are Unicode's table 3-7 of well-formed byte sequences. */
static size_t seq_len(const unsigned char *p, size_t *bad)
{
    unsigned char c = p[0];
    *bad = 1;
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        unsigned char b = p[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF))
            return 0;
        *bad = i + 1;
    }
    return n;
}

bool rc_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t bad, n = seq_len(p, &bad);
        if (n == 0)
            return false;
        p += n;
    }
    return true;
}

char *rc_utf8_repair(const char *s)
{
    size_t len = strlen(s);
    char *out = malloc(3 * len + 1); /* each bad byte at worst becomes 3 */
    if (out == NULL)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    while (*p) {
        size_t bad, n = seq_len(p, &bad);
        if (n > 0) {
            memcpy(out + o, p, n);
            o += n;
            p += n;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            p += bad;
        }
    }
    out[o] = '\0';
    return out;
}
