#include "smtp/smtp_addr.h"

#include <ctype.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>

const char *smtp_addr_strerror(int err)
{
    switch (err) {
    case SMTP_ADDR_OK: return "ok";
    case SMTP_ADDR_ESYNTAX: return "syntax error in address";
    case SMTP_ADDR_ETOOLONG: return "address too long";
    case SMTP_ADDR_EROUTE: return "source routes are not accepted";
    case SMTP_ADDR_ERELAYHACK: return "%, ! and quoted @ are not accepted in local parts";
    case SMTP_ADDR_EDOMAIN: return "bad domain";
    case SMTP_ADDR_EUTF8: return "8-bit address without SMTPUTF8";
    }
    return "bad address";
}

/* atext of RFC 5322, less % and ! (refused as relay hacks by the caller) */
static bool atext(unsigned char c)
{
    return isalnum(c) || strchr("#$&'*+-/=?^_`{|}~", c) != NULL;
}

static int check_domain(const char *d, size_t n, bool utf8)
{
    if (n == 0 || n > 255 || d[0] == '[')
        return SMTP_ADDR_EDOMAIN; /* address literals are never relayed */
    if (d[n - 1] == '.' || d[0] == '.')
        return SMTP_ADDR_EDOMAIN;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c == '.') {
            if (label == 0 || d[i - 1] == '-')
                return SMTP_ADDR_EDOMAIN;
            label = 0;
            continue;
        }
        if (c >= 0x80) {
            if (!utf8)
                return SMTP_ADDR_EUTF8;
        } else if (!(isalnum(c) || (c == '-' && label > 0))) {
            return SMTP_ADDR_EDOMAIN;
        }
        if (++label > 63)
            return SMTP_ADDR_EDOMAIN;
    }
    return SMTP_ADDR_OK;
}

int smtp_addr_parse_path(const char *arg, bool allow_null, bool utf8, char *out, size_t outlen,
                         const char **params)
{
    while (*arg == ' ')
        arg++;
    if (*arg != '<')
        return SMTP_ADDR_ESYNTAX;
    const char *p = arg + 1;
    if (*p == '@')
        return SMTP_ADDR_EROUTE;
    /* find the closing '>' outside quotes */
    const char *q = p;
    bool quoted = false;
    for (; *q && (quoted || *q != '>'); q++) {
        if (*q == '\\' && quoted && q[1])
            q++;
        else if (*q == '"')
            quoted = !quoted;
    }
    if (*q != '>')
        return SMTP_ADDR_ESYNTAX;
    size_t n = (size_t)(q - p);
    if (n > 254)
        return SMTP_ADDR_ETOOLONG;
    if (params) {
        const char *r = q + 1;
        if (*r && *r != ' ')
            return SMTP_ADDR_ESYNTAX;
        while (*r == ' ')
            r++;
        *params = r;
    }
    if (n == 0) {
        if (!allow_null)
            return SMTP_ADDR_ESYNTAX;
        out[0] = '\0';
        return SMTP_ADDR_OK;
    }
    if (n + 1 > outlen)
        return SMTP_ADDR_ETOOLONG;
    /* local part */
    const char *at = NULL;
    size_t i = 0;
    if (p[0] == '"') {
        for (i = 1; i < n && p[i] != '"'; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c == '\\' && i + 1 < n) /* quoted-pair: judge the escaped octet */
                c = (unsigned char)p[++i];
            if (c == '@' || c == '%' || c == '!')
                return SMTP_ADDR_ERELAYHACK;
            else if (c < 0x20 || c == 0x7f)
                return SMTP_ADDR_ESYNTAX;
            else if (c >= 0x80 && !utf8)
                return SMTP_ADDR_EUTF8;
        }
        if (i >= n)
            return SMTP_ADDR_ESYNTAX;
        i++;
        if (i >= n || p[i] != '@')
            return SMTP_ADDR_ESYNTAX;
        at = p + i;
    } else {
        for (i = 0; i < n && p[i] != '@'; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c == '%' || c == '!')
                return SMTP_ADDR_ERELAYHACK;
            if (c == '.') {
                if (i == 0 || p[i - 1] == '.' || i + 1 >= n || p[i + 1] == '@')
                    return SMTP_ADDR_ESYNTAX;
                continue;
            }
            if (c >= 0x80) {
                if (!utf8)
                    return SMTP_ADDR_EUTF8;
                continue;
            }
            if (!atext(c))
                return SMTP_ADDR_ESYNTAX;
        }
        if (i == 0 || i >= n)
            return SMTP_ADDR_ESYNTAX; /* empty local part, or no @domain */
        at = p + i;
    }
    if ((size_t)(at - p) > 64)
        return SMTP_ADDR_ETOOLONG;
    const char *dom = at + 1;
    size_t dn = n - (size_t)(dom - p);
    if (memchr(dom, '@', dn))
        return SMTP_ADDR_ERELAYHACK;
    int rv = check_domain(dom, dn, utf8);
    if (rv != SMTP_ADDR_OK)
        return rv;
    memcpy(out, p, n);
    out[n] = '\0';
    return SMTP_ADDR_OK;
}

const char *smtp_addr_domain(const char *mailbox)
{
    const char *at = strrchr(mailbox, '@');
    return at && at[1] ? at + 1 : NULL;
}

int smtp_xtext_decode(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = in; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '+') {
            if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]))
                return -1;
            char hex[3] = {p[1], p[2], 0};
            c = (unsigned char)strtol(hex, NULL, 16);
            p += 2;
        } else if (c < 33 || c > 126 || c == '=') {
            return -1;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}
