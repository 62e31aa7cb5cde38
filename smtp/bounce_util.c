/* Small bounded string helpers of the bounce library. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/bounce_internal.h"

char *bounce__strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

const char *bounce__memistr(const char *hay, size_t len, const char *needle)
{
    size_t nl = strlen(needle);
    if (nl == 0)
        return hay;
    if (len < nl)
        return NULL;
    int c0 = tolower((unsigned char)needle[0]);
    for (size_t i = 0; i + nl <= len; i++) {
        if (tolower((unsigned char)hay[i]) != c0)
            continue;
        if (strncasecmp(hay + i, needle, nl) == 0)
            return hay + i;
    }
    return NULL;
}

const char *bounce__stristr(const char *hay, const char *needle)
{
    return bounce__memistr(hay, strlen(hay), needle);
}

bool bounce__starts_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

int bounce__find_code(const char *s, const char **where)
{
    for (const char *p = s; *p; p++) {
        if (p[0] < '2' || p[0] > '5' || !isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]))
            continue;
        if (p > s && (isalnum((unsigned char)p[-1]) || p[-1] == '.' || p[-1] == '-' || p[-1] == '#' ||
                      p[-1] == '/' || p[-1] == ':' || p[-1] == '+'))
            continue;
        char c = p[3];
        if (c != ' ' && c != '-' && c != '\0' && c != '\n' && c != '\r' && c != '\t' && c != ']' &&
            c != ',' && c != ')' && c != '"' && c != ';')
            continue;
        /* "550-5.1.1" or "550 5.1.1" or "550 text"; skip things like "500 ms" or years */
        int code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
        if (p[1] > '5')
            continue;
        if (where)
            *where = p;
        return code;
    }
    return 0;
}

bool bounce__find_status(const char *s, char *out, size_t outlen)
{
    for (const char *p = s; *p; p++) {
        if ((p[0] != '2' && p[0] != '4' && p[0] != '5') || p[1] != '.')
            continue;
        if (p > s && (isalnum((unsigned char)p[-1]) || p[-1] == '.'))
            continue;
        const char *q = p + 2;
        size_t d1 = 0, d2 = 0;
        while (isdigit((unsigned char)q[d1]) && d1 < 4)
            d1++;
        if (d1 == 0 || d1 > 3 || q[d1] != '.')
            continue;
        const char *r = q + d1 + 1;
        while (isdigit((unsigned char)r[d2]) && d2 < 4)
            d2++;
        if (d2 == 0 || d2 > 3)
            continue;
        if (isalnum((unsigned char)r[d2]) || (r[d2] == '.' && isdigit((unsigned char)r[d2 + 1])))
            continue;
        size_t n = (size_t)(r + d2 - p);
        if (n + 1 > outlen)
            return false;
        memcpy(out, p, n);
        out[n] = '\0';
        return true;
    }
    return false;
}

static bool bounce_addr_char(int c)
{
    return isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~.@", c) != NULL || c >= 0x80;
}

char *bounce__clean_addr(const char *s, size_t n)
{
    const char *end = s + n;
    /* "rfc822; addr" */
    const char *semi = memchr(s, ';', n);
    if (semi != NULL)
        s = semi + 1;
    const char *at = memchr(s, '@', (size_t)(end - s));
    if (at == NULL)
        return NULL;
    const char *b = at, *e = at + 1;
    while (b > s && bounce_addr_char((unsigned char)b[-1]))
        b--;
    while (e < end && bounce_addr_char((unsigned char)*e))
        e++;
    while (e > at + 1 && (e[-1] == '.' || e[-1] == '\''))
        e--;
    while (b < at && (*b == '.' || *b == '\''))
        b++;
    if (b == at || e == at + 1 || (size_t)(e - b) > 254)
        return NULL;
    /* the domain needs a dot or to be a plain host name of letters */
    char *out = bounce__strndup(b, (size_t)(e - b));
    if (out == NULL)
        return NULL;
    char *d = strchr(out, '@');
    if (strchr(d + 1, '@') != NULL) {
        free(out);
        return NULL;
    }
    for (char *p = d + 1; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return out;
}

void bounce__normalise(char *s)
{
    char *w = s;
    bool sp = false;
    for (char *r = s; *r; r++) {
        unsigned char c = (unsigned char)*r;
        if (isspace(c)) {
            sp = true;
            continue;
        }
        if (sp && w != s)
            *w++ = ' ';
        sp = false;
        *w++ = (char)tolower(c);
    }
    *w = '\0';
}
