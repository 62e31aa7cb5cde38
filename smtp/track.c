/* Open and click tracking: signed URLs, and the recipient's copy of a
 * message with its HTML rewritten (smtp/track.h). */
#include "smtp/track.h"

#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <gmime/gmime.h>
#include <gumbo.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define TRACK_MAC_LEN 16                /* bytes of HMAC kept (128 bits) */
#define TRACK_MAC_B64 22                /* its base64url length */
#define TRACK_HEADER_SCAN (64u << 10)   /* track_wanted reads no further */
#define TRACK_HTML_ERRORS 100           /* gumbo keeps at most this many parse errors */

const char *track_strerror(int err)
{
    switch (err) {
    case TRACK_OK: return "ok";
    case TRACK_EINVAL: return "invalid argument";
    case TRACK_ENOMEM: return "out of memory";
    case TRACK_EPARSE: return "the message is not MIME that can be written back as it came";
    case TRACK_ENOTRACK: return "not a tracking URL";
    case TRACK_EBADMAC: return "signature does not match";
    default: return "unknown error";
    }
}

/* ---------------------------------------------------------------- base64url */

/* Base64url without padding (RFC 4648 §5) of n bytes; dst holds 4*ceil(n/3)+1. */
static size_t track_b64url(char *dst, const uint8_t *src, size_t n)
{
    int w = EVP_EncodeBlock((unsigned char *)dst, src, (int)n);
    while (w > 0 && dst[w - 1] == '=')
        w--;
    for (int i = 0; i < w; i++)
        dst[i] = dst[i] == '+' ? '-' : dst[i] == '/' ? '_' : dst[i];
    dst[w] = '\0';
    return (size_t)w;
}

/* Decodes n base64url characters into dst (room for max bytes); -1 on a
 * character outside the alphabet, a bad length or too long a result. */
static ssize_t track_unb64url(uint8_t *dst, size_t max, const char *src, size_t n)
{
    if (n % 4 == 1 || (n + 3) / 4 * 3 > max + 2)
        return -1;
    size_t padded = (n + 3) / 4 * 4;
    char *tmp = malloc(padded + 1);
    uint8_t *raw = malloc(padded / 4 * 3 + 1);
    if (tmp == NULL || raw == NULL) {
        free(tmp);
        free(raw);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (!(isalnum((unsigned char)c) || c == '-' || c == '_')) {
            free(tmp);
            free(raw);
            return -1;
        }
        tmp[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    for (size_t i = n; i < padded; i++)
        tmp[i] = '=';
    int got = EVP_DecodeBlock(raw, (const unsigned char *)tmp, (int)padded);
    free(tmp);
    ssize_t len = got < 0 ? -1 : (ssize_t)got - (ssize_t)(padded - n);
    if (len >= 0 && (size_t)len <= max)
        memcpy(dst, raw, (size_t)len);
    else
        len = -1;
    free(raw);
    return len;
}

/* ---------------------------------------------------------------- signatures */

static bool track_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > TRACK_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)id[i]) || id[i] == '.' || id[i] == '_' || id[i] == '-'))
            return false;
    return true;
}

static bool track_target_ok(const char *t, size_t n)
{
    if (n == 0 || n > TRACK_TARGET_MAX)
        return false;
    if (!(n > 7 && strncasecmp(t, "http://", 7) == 0) && !(n > 8 && strncasecmp(t, "https://", 8) == 0))
        return false;
    /* it becomes a Location field: printable ASCII only */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return false;
    return true;
}

static int track_mac(const struct track_key *key, char event, const char *id, uint32_t rcpt, const char *target,
                     char out[TRACK_MAC_B64 + 1])
{
    if (key == NULL || key->secret == NULL || key->secret_len < TRACK_SECRET_MIN)
        return TRACK_EINVAL;
    char rs[16];
    int rl = snprintf(rs, sizeof rs, "%u", rcpt);
    size_t tl = target ? strlen(target) : 0, il = strlen(id);
    static const char tag[] = "ricochet-track";
    size_t n = sizeof tag + 2 + il + 1 + (size_t)rl + 1 + tl;
    uint8_t *buf = malloc(n), md[EVP_MAX_MD_SIZE];
    if (buf == NULL)
        return TRACK_ENOMEM;
    size_t w = 0;
    memcpy(buf + w, tag, sizeof tag); /* with its NUL */
    w += sizeof tag;
    buf[w++] = (uint8_t)event;
    buf[w++] = 0;
    memcpy(buf + w, id, il + 1);
    w += il + 1;
    memcpy(buf + w, rs, (size_t)rl + 1);
    w += (size_t)rl + 1;
    if (tl)
        memcpy(buf + w, target, tl);
    w += tl;
    unsigned mdlen = 0;
    uint8_t *ok = HMAC(EVP_sha256(), key->secret, (int)key->secret_len, buf, w, md, &mdlen);
    free(buf);
    if (ok == NULL || mdlen < TRACK_MAC_LEN)
        return TRACK_ENOMEM;
    char b64[(TRACK_MAC_LEN + 2) / 3 * 4 + 1]; /* EVP_EncodeBlock writes the padding, then cut */
    track_b64url(b64, md, TRACK_MAC_LEN);
    memcpy(out, b64, TRACK_MAC_B64 + 1);
    return TRACK_OK;
}

int track_url(const struct track_key *key, unsigned event, const char *id, uint32_t rcpt, const char *target,
              char *dst, size_t dstlen)
{
    if (key == NULL || key->base == NULL || strlen(key->base) > TRACK_BASE_MAX || id == NULL || !track_id_ok(id) ||
        (event != TRACK_OPENS && event != TRACK_CLICKS) ||
        (event == TRACK_CLICKS && (target == NULL || !track_target_ok(target, strlen(target)))))
        return TRACK_EINVAL;
    char mac[TRACK_MAC_B64 + 1];
    int rv = track_mac(key, event == TRACK_OPENS ? 'o' : 'c', id, rcpt, event == TRACK_CLICKS ? target : NULL, mac);
    if (rv != TRACK_OK)
        return rv;
    int n;
    if (event == TRACK_OPENS) {
        n = snprintf(dst, dstlen, "%s/t/o/%s/%u/%s.gif", key->base, id, rcpt, mac);
    } else {
        char enc[(TRACK_TARGET_MAX + 2) / 3 * 4 + 1];
        track_b64url(enc, (const uint8_t *)target, strlen(target));
        n = snprintf(dst, dstlen, "%s/t/c/%s/%u/%s/%s", key->base, id, rcpt, mac, enc);
    }
    return n < 0 || (size_t)n >= dstlen ? TRACK_EINVAL : TRACK_OK;
}

/* Next '/'-separated segment of *p (advanced past it); its length. */
static size_t track_segment(const char **p, const char **seg)
{
    *seg = *p;
    const char *e = strchr(*p, '/');
    size_t n = e ? (size_t)(e - *p) : strlen(*p);
    *p += n + (e ? 1 : 0);
    return n;
}

int track_parse(const struct track_key *key, const char *path, struct track_hit *out)
{
    memset(out, 0, sizeof *out);
    if (path == NULL || strncmp(path, "/t/", 3) != 0 || strlen(path) > TRACK_URL_MAX)
        return TRACK_ENOTRACK;
    const char *p = path + 3, *seg;
    size_t n = track_segment(&p, &seg);
    if (n != 1 || (seg[0] != 'o' && seg[0] != 'c'))
        return TRACK_ENOTRACK;
    out->event = seg[0] == 'o' ? TRACK_OPENS : TRACK_CLICKS;
    n = track_segment(&p, &seg);
    if (n == 0 || n > TRACK_ID_MAX)
        return TRACK_ENOTRACK;
    memcpy(out->id, seg, n);
    out->id[n] = '\0';
    if (!track_id_ok(out->id))
        return TRACK_ENOTRACK;
    n = track_segment(&p, &seg);
    /* the recipient's index, canonical decimal */
    if (n == 0 || n > 10 || (n > 1 && seg[0] == '0'))
        return TRACK_ENOTRACK;
    uint64_t r = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)seg[i]))
            return TRACK_ENOTRACK;
        r = r * 10 + (uint64_t)(seg[i] - '0');
    }
    if (r > UINT32_MAX)
        return TRACK_ENOTRACK;
    out->rcpt = (uint32_t)r;
    const char *mac;
    n = track_segment(&p, &mac);
    if (out->event == TRACK_OPENS) {
        if (n != TRACK_MAC_B64 + 4 || strcmp(mac + TRACK_MAC_B64, ".gif") != 0 || *p != '\0')
            return TRACK_ENOTRACK;
    } else {
        if (n != TRACK_MAC_B64)
            return TRACK_ENOTRACK;
        size_t tn = strlen(p);
        ssize_t got = track_unb64url((uint8_t *)out->target, TRACK_TARGET_MAX, p, tn);
        if (got <= 0 || !track_target_ok(out->target, (size_t)got) || memchr(out->target, '\0', (size_t)got))
            return TRACK_ENOTRACK;
        out->target[got] = '\0';
    }
    char want[TRACK_MAC_B64 + 1];
    int rv = track_mac(key, out->event == TRACK_OPENS ? 'o' : 'c', out->id, out->rcpt,
                       out->event == TRACK_CLICKS ? out->target : NULL, want);
    if (rv != TRACK_OK)
        return rv;
    if (CRYPTO_memcmp(want, mac, TRACK_MAC_B64) != 0)
        return TRACK_EBADMAC;
    return TRACK_OK;
}

/* ---------------------------------------------------------------- the request field */

static unsigned track_words(const char *v, size_t n)
{
    unsigned what = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',' || v[i] == ';' || v[i] == '\r' || v[i] == '\n'))
            i++;
        size_t s = i;
        while (i < n && !(v[i] == ' ' || v[i] == '\t' || v[i] == ',' || v[i] == ';' || v[i] == '\r' || v[i] == '\n'))
            i++;
        size_t wl = i - s;
        const char *w = v + s;
        if ((wl == 5 && strncasecmp(w, "opens", 5) == 0) || (wl == 4 && strncasecmp(w, "open", 4) == 0))
            what |= TRACK_OPENS;
        else if ((wl == 6 && strncasecmp(w, "clicks", 6) == 0) || (wl == 5 && strncasecmp(w, "click", 5) == 0))
            what |= TRACK_CLICKS;
        else if (wl == 3 && strncasecmp(w, "all", 3) == 0)
            what |= TRACK_OPENS | TRACK_CLICKS;
    }
    return what;
}

/* One field of the header block, read by hand: the decision is made before
 * the message is handed to GMime (which then writes the copy), on every
 * delivery, and needs no more than the field's unfolded words. */
unsigned track_wanted(const char *msg, size_t len)
{
    static const char name[] = TRACK_HEADER ":";
    const size_t nl = sizeof name - 1;
    if (len > TRACK_HEADER_SCAN)
        len = TRACK_HEADER_SCAN;
    for (size_t i = 0; i < len;) {
        const char *l = msg + i;
        const char *e = memchr(l, '\n', len - i);
        size_t ll = e ? (size_t)(e - l) : len - i;
        if (ll == 0 || (ll == 1 && l[0] == '\r'))
            return 0; /* end of the header block */
        i += ll + 1;
        if (ll < nl || strncasecmp(l, name, nl) != 0)
            continue;
        /* the value and its continuation lines */
        size_t vs = (size_t)(l - msg) + nl, ve = i;
        while (ve < len && (msg[ve] == ' ' || msg[ve] == '\t')) {
            const char *e2 = memchr(msg + ve, '\n', len - ve);
            ve = e2 ? (size_t)(e2 - msg) + 1 : len;
        }
        return track_words(msg + vs, (ve > len ? len : ve) - vs);
    }
    return 0;
}

/* ---------------------------------------------------------------- HTML */

struct track_edit {
    size_t at, len; /* span of the part replaced */
    char *with;     /* malloc'd */
};

struct track_part {
    const struct track_key *key;
    const char *id;
    uint32_t rcpt;
    unsigned what;
    const struct track_limits *lim;
    struct track_result *res;
    int err;
};

static int track_edit_cmp(const void *a, const void *b)
{
    const struct track_edit *x = a, *y = b;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* Writes an attribute value for an URL we made: quoted, & and " escaped. */
static char *track_attr(const char *url)
{
    size_t n = 2;
    for (const char *c = url; *c; c++)
        n += *c == '&' ? 5 : *c == '"' ? 6 : 1;
    char *s = malloc(n + 1), *w = s;
    if (s == NULL)
        return NULL;
    *w++ = '"';
    for (const char *c = url; *c; c++) {
        if (*c == '&') {
            memcpy(w, "&amp;", 5);
            w += 5;
        } else if (*c == '"') {
            memcpy(w, "&quot;", 6);
            w += 6;
        } else {
            *w++ = *c;
        }
    }
    *w++ = '"';
    *w = '\0';
    return s;
}

/* The link's target as a browser would take it from the attribute: blanks
 * around it dropped; NULL when it is not an http(s) URL of printable ASCII
 * (left untouched then). */
static char *track_link_target(const char *v)
{
    while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r' || *v == '\f')
        v++;
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\n' || v[n - 1] == '\r' || v[n - 1] == '\f'))
        n--;
    if (!track_target_ok(v, n))
        return NULL;
    char *t = malloc(n + 1);
    if (t != NULL) {
        memcpy(t, v, n);
        t[n] = '\0';
    }
    return t;
}

static int track_edits_push(struct track_edit **e, size_t *n, size_t *cap, size_t at, size_t len, char *with)
{
    if (with == NULL)
        return TRACK_ENOMEM;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct track_edit *ne = realloc(*e, nc * sizeof *ne);
        if (ne == NULL) {
            free(with);
            return TRACK_ENOMEM;
        }
        *e = ne;
        *cap = nc;
    }
    (*e)[(*n)++] = (struct track_edit){.at = at, .len = len, .with = with};
    return TRACK_OK;
}

/* The edits for one HTML text: each http(s) href of <a> and <area>, and the
 * pixel before </body> (at the end when there is none). Iterative walk: a
 * hostile part may nest elements deeply. */
static int track_html_edits(struct track_part *tp, const char *html, size_t len, GumboOutput *doc,
                            struct track_edit **edits, size_t *ne)
{
    size_t cap = 0, links = 0;
    int rv = TRACK_OK;
    size_t body_end = len;
    size_t stack_cap = 64, depth = 0;
    GumboNode **stack = malloc(stack_cap * sizeof *stack);
    if (stack == NULL)
        return TRACK_ENOMEM;
    stack[depth++] = doc->root;
    while (depth > 0 && rv == TRACK_OK) {
        GumboNode *node = stack[--depth];
        if (node->type != GUMBO_NODE_ELEMENT && node->type != GUMBO_NODE_TEMPLATE)
            continue;
        GumboElement *el = &node->v.element;
        if (el->tag == GUMBO_TAG_BODY && el->original_end_tag.length > 0 && el->original_end_tag.data >= html &&
            el->original_end_tag.data < html + len)
            body_end = (size_t)(el->original_end_tag.data - html);
        if ((tp->what & TRACK_CLICKS) && (el->tag == GUMBO_TAG_A || el->tag == GUMBO_TAG_AREA) &&
            links < tp->lim->max_links) {
            GumboAttribute *href = gumbo_get_attribute(&el->attributes, "href");
            const char *src = href ? href->original_value.data : NULL;
            if (src != NULL && src >= html && src + href->original_value.length <= html + len &&
                href->original_value.length > 0) {
                char *target = track_link_target(href->value);
                if (target != NULL) {
                    char url[TRACK_URL_MAX + 1];
                    if (track_url(tp->key, TRACK_CLICKS, tp->id, tp->rcpt, target, url, sizeof url) == TRACK_OK) {
                        rv = track_edits_push(edits, ne, &cap, (size_t)(src - html), href->original_value.length,
                                              track_attr(url));
                        links++;
                    }
                    free(target);
                }
            }
        }
        for (unsigned i = el->children.length; i-- > 0;) {
            if (depth == stack_cap) {
                GumboNode **ns = realloc(stack, stack_cap * 2 * sizeof *ns);
                if (ns == NULL) {
                    rv = TRACK_ENOMEM;
                    break;
                }
                stack = ns;
                stack_cap *= 2;
            }
            stack[depth++] = el->children.data[i];
        }
    }
    free(stack);
    if (rv == TRACK_OK && (tp->what & TRACK_OPENS)) {
        char url[TRACK_URL_MAX + 1], *img = NULL;
        if (track_url(tp->key, TRACK_OPENS, tp->id, tp->rcpt, NULL, url, sizeof url) == TRACK_OK) {
            char *attr = track_attr(url);
            size_t n = attr ? strlen(attr) + 96 : 0;
            img = attr ? malloc(n) : NULL;
            if (img != NULL)
                snprintf(img, n, "<img src=%s width=\"1\" height=\"1\" alt=\"\" style=\"border:0\">", attr);
            free(attr);
            rv = track_edits_push(edits, ne, &cap, body_end, 0, img);
        }
    }
    return rv;
}

/* Applies sorted edits to html; an edit that overlaps the one before (the
 * parser copies an <a> it reopens, with the same source span) is dropped. */
static GByteArray *track_apply(const char *html, size_t len, struct track_edit *edits, size_t ne, size_t *applied)
{
    qsort(edits, ne, sizeof *edits, track_edit_cmp);
    GByteArray *out = g_byte_array_sized_new((guint)(len + len / 4 + 256));
    size_t pos = 0;
    *applied = 0;
    for (size_t i = 0; i < ne; i++) {
        if (edits[i].at < pos || edits[i].at + edits[i].len > len)
            continue;
        g_byte_array_append(out, (const guint8 *)html + pos, (guint)(edits[i].at - pos));
        g_byte_array_append(out, (const guint8 *)edits[i].with, (guint)strlen(edits[i].with));
        pos = edits[i].at + edits[i].len;
        if (edits[i].len > 0)
            (*applied)++;
    }
    g_byte_array_append(out, (const guint8 *)html + pos, (guint)(len - pos));
    return out;
}

static bool track_charset_ascii_compatible(GMimeObject *obj)
{
    const char *cs = g_mime_object_get_content_type_parameter(obj, "charset");
    if (cs == NULL)
        return true;
    return strncasecmp(cs, "utf-16", 6) != 0 && strncasecmp(cs, "utf-32", 6) != 0 &&
           strncasecmp(cs, "ucs-", 4) != 0 && strncasecmp(cs, "utf-7", 5) != 0;
}

static void track_part_rewrite(struct track_part *tp, GMimePart *part)
{
    GMimeObject *obj = GMIME_OBJECT(part);
    GMimeDataWrapper *w = g_mime_part_get_content(part);
    if (w == NULL)
        return;
    if (!track_charset_ascii_compatible(obj)) {
        tp->res->skipped++;
        return;
    }
    GMimeStream *mem = g_mime_stream_mem_new();
    g_mime_data_wrapper_write_to_stream(w, mem); /* decoded */
    GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    if (ba->len > tp->lim->max_html) {
        tp->res->skipped++;
        g_object_unref(mem);
        return;
    }
    const char *html = ba->data ? (const char *)ba->data : ""; /* an empty part has no buffer */
    size_t len = ba->len;
    GumboOptions opt = kGumboDefaultOptions;
    opt.max_errors = TRACK_HTML_ERRORS;
    GumboOutput *doc = gumbo_parse_with_options(&opt, html, len);
    if (doc == NULL) {
        tp->err = TRACK_ENOMEM;
        g_object_unref(mem);
        return;
    }
    struct track_edit *edits = NULL;
    size_t ne = 0;
    int rv = track_html_edits(tp, html, len, doc, &edits, &ne);
    gumbo_destroy_output(&opt, doc);
    if (rv == TRACK_OK && ne > 0) {
        size_t links = 0;
        GByteArray *nb = track_apply(html, len, edits, ne, &links);
        GMimeStream *ns = g_mime_stream_mem_new_with_byte_array(nb);
        GMimeDataWrapper *nw = g_mime_data_wrapper_new_with_stream(ns, GMIME_CONTENT_ENCODING_DEFAULT);
        g_mime_part_set_content(part, nw);
        g_object_unref(nw);
        g_object_unref(ns);
        /* URLs lengthen lines: only an encoding with soft line breaks keeps
         * them under SMTP's 1000 octets */
        GMimeContentEncoding enc = g_mime_part_get_content_encoding(part);
        if (enc != GMIME_CONTENT_ENCODING_BASE64 && enc != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE)
            g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
        tp->res->html_parts++;
        tp->res->links += links;
    }
    for (size_t i = 0; i < ne; i++)
        free(edits[i].with);
    free(edits);
    if (rv != TRACK_OK)
        tp->err = rv;
    g_object_unref(mem);
}

static void track_visit(GMimeObject *parent, GMimeObject *obj, gpointer data)
{
    (void)parent;
    struct track_part *tp = data;
    if (tp->err != TRACK_OK || !GMIME_IS_PART(obj))
        return;
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    if (ct == NULL || !g_mime_content_type_is_type(ct, "text", "html"))
        return;
    GMimeContentDisposition *cd = g_mime_object_get_content_disposition(obj);
    if (cd != NULL && g_mime_content_disposition_is_attachment(cd))
        return;
    track_part_rewrite(tp, GMIME_PART(obj));
}

/* ---------------------------------------------------------------- the copy */

/* GMime's reports of input it cannot write back as it came (a header line
 * that is no field, a multipart without its boundary, a truncated
 * message): the copy would lose or change those bytes, so the message is
 * sent as submitted instead. Harmless oddities (duplicate fields, 8-bit
 * header bytes, bad parameters) are kept as they are by GMime. */
static void track_parser_warning(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer data)
{
    (void)offset;
    (void)item;
    bool *unsafe = data;
    switch (code) {
    case GMIME_WARN_MALFORMED_MULTIPART: case GMIME_WARN_TRUNCATED_MESSAGE: case GMIME_WARN_MALFORMED_MESSAGE:
    case GMIME_CRIT_INVALID_HEADER_NAME: case GMIME_CRIT_CONFLICTING_HEADER: case GMIME_CRIT_CONFLICTING_PARAMETER:
    case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY: case GMIME_CRIT_NESTING_OVERFLOW: case GMIME_WARN_PART_WITHOUT_CONTENT:
    case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
        *unsafe = true;
        break;
    default:
        break;
    }
}

static pthread_once_t track_gmime_once = PTHREAD_ONCE_INIT;

/* The same initialisation as the bounce analyser and the DSN builder:
 * g_mime_init() counts its callers. */
static void track_gmime_init(void)
{
    g_mime_init();
}

/* Writes n bytes through filter (taken over) into mem, then rewinds mem. */
static void track_write_filtered(GMimeStream *mem, GMimeFilter *filter, const char *data, size_t n)
{
    GMimeStream *f = g_mime_stream_filter_new(mem);
    g_mime_stream_filter_add(GMIME_STREAM_FILTER(f), filter);
    g_object_unref(filter);
    if (n > 0)
        g_mime_stream_write(f, data, n);
    g_mime_stream_flush(f);
    g_object_unref(f);
    g_mime_stream_seek(mem, 0, GMIME_STREAM_SEEK_SET);
}

int track_rewrite(const struct track_key *key, const char *id, uint32_t rcpt, unsigned what, const char *msg,
                  size_t len, const struct track_limits *lim, char **out, size_t *outlen, struct track_result *res)
{
    *out = NULL;
    *outlen = 0;
    struct track_result dummy;
    if (res == NULL)
        res = &dummy;
    memset(res, 0, sizeof *res);
    if (key == NULL || id == NULL || !track_id_ok(id) || msg == NULL || lim == NULL)
        return TRACK_EINVAL;
    pthread_once(&track_gmime_once, track_gmime_init);
    /* GMime reads and writes LF line ends; the spool and SMTP use CRLF.
     * GMime's own line-end filters convert both ways (as in dsn.c). */
    GMimeStream *s = g_mime_stream_mem_new();
    track_write_filtered(s, g_mime_filter_dos2unix_new(FALSE), msg, len);
    GMimeParser *p = g_mime_parser_new_with_stream(s);
    GMimeParserOptions *po = g_mime_parser_options_new();
    bool unsafe = false;
    g_mime_parser_options_set_warning_callback(po, track_parser_warning, &unsafe);
    GMimeMessage *m = g_mime_parser_construct_message(p, po);
    g_object_unref(p);
    g_mime_parser_options_free(po);
    if (m == NULL || unsafe) {
        if (m != NULL)
            g_object_unref(m);
        g_object_unref(s);
        return TRACK_EPARSE;
    }
    struct track_part tp = {.key = key, .id = id, .rcpt = rcpt, .what = what, .lim = lim, .res = res};
    g_mime_message_foreach(m, track_visit, &tp);
    int rv = tp.err;
    if (rv == TRACK_OK) {
        g_mime_object_remove_header(GMIME_OBJECT(m), TRACK_HEADER);
        GMimeStream *lf = g_mime_stream_mem_new();
        if (g_mime_object_write_to_stream(GMIME_OBJECT(m), NULL, lf) < 0) {
            rv = TRACK_ENOMEM;
        } else {
            GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(lf));
            GMimeStream *o = g_mime_stream_mem_new();
            track_write_filtered(o, g_mime_filter_unix2dos_new(FALSE), (const char *)ba->data, ba->len);
            ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(o));
            char *w = malloc(ba->len + 1);
            if (w == NULL) {
                rv = TRACK_ENOMEM;
            } else {
                memcpy(w, ba->data, ba->len);
                w[ba->len] = '\0';
                *out = w;
                *outlen = ba->len;
            }
            g_object_unref(o);
        }
        g_object_unref(lf);
    }
    g_object_unref(m);
    g_object_unref(s);
    return rv;
}
