/* MIME walk of a bounce with GMime 3: collects the text that the analyser
 * reads (delivery-status and feedback-report fields, human-readable parts),
 * the mail's own headers and the headers of the returned original message.
 *
 * All decoding (transfer encodings, RFC 2047, charsets) is GMime's. The walk
 * is bounded by depth, number of parts and bytes kept per part; anything
 * beyond is ignored, never an error. */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <gmime/gmime.h>
#include <iconv.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/bounce_internal.h"

static pthread_once_t bounce_gmime_once = PTHREAD_ONCE_INIT;

static void bounce_gmime_init(void)
{
    g_mime_init();
}

int bounce__hdrs_add(struct bounce__hdrs *h, const char *name, const char *value)
{
    if (name == NULL)
        return BOUNCE_OK;
    if (h->n >= h->max)
        return BOUNCE_OK; /* bounded: the rest is dropped */
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        struct bounce_header *v = realloc(h->v, cap * sizeof *v);
        if (v == NULL)
            return BOUNCE_ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    char *n = bounce__strndup(name, strlen(name));
    char *val = bounce__strndup(value ? value : "", value ? strlen(value) : 0);
    if (n == NULL || val == NULL) {
        free(n);
        free(val);
        return BOUNCE_ENOMEM;
    }
    h->v[h->n].name = n;
    h->v[h->n].value = val;
    h->n++;
    return BOUNCE_OK;
}

const char *bounce__hdrs_get(const struct bounce__hdrs *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->v[i].name, name) == 0)
            return h->v[i].value;
    return NULL;
}

static void bounce_hdrs_free(struct bounce__hdrs *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free((char *)h->v[i].name);
        free((char *)h->v[i].value);
    }
    free(h->v);
    memset(h, 0, sizeof *h);
}

void bounce__doc_free(struct bounce__doc *d)
{
    bounce_hdrs_free(&d->top);
    bounce_hdrs_free(&d->orig);
    for (size_t i = 0; i < d->nparts; i++)
        free(d->parts[i].text);
    free(d->parts);
    free(d->orig_block);
    d->orig_block = NULL;
    free(d->human);
    d->human = NULL;
    d->parts = NULL;
    d->nparts = d->capparts = 0;
}

/* Headers whose values may carry RFC 2047 encoded words that matter to
 * us; the others (Received, DKIM-Signature, X-...) are only unfolded,
 * which saves GMime's decoder on the bulk of every header block. */
static bool bounce_hdr_decodes(const char *name)
{
    static const char *const names[] = {"subject", "from", "to", "cc", "reply-to", "sender", NULL};
    for (const char *const *n = names; *n; n++)
        if (g_ascii_strcasecmp(name, *n) == 0)
            return true;
    return false;
}

/* raw folded header value -> one line, leading blanks dropped; malloc'd */
static char *bounce_unfold(const char *raw)
{
    while (*raw == ' ' || *raw == '\t')
        raw++;
    size_t n = strlen(raw);
    char *out = malloc(n + 1), *w = out;
    if (out == NULL)
        return NULL;
    for (const char *r = raw; *r; r++) {
        if (*r == '\r' || *r == '\n') {
            if (w > out && w[-1] != ' ')
                *w++ = ' ';
            while (r[1] == ' ' || r[1] == '\t')
                r++;
            continue;
        }
        *w++ = *r == '\t' ? ' ' : *r;
    }
    while (w > out && w[-1] == ' ')
        w--;
    *w = '\0';
    return out;
}

/* content_too: false for the report's own header block, which is read as
 * that of a message (its Content-* fields describe the MIME body, and the
 * walk reads them from there). */
static void bounce_copy_headers(struct bounce__hdrs *h, GMimeObject *obj, bool content_too)
{
    GMimeHeaderList *list = g_mime_object_get_header_list(obj);
    if (list == NULL)
        return;
    int n = g_mime_header_list_get_count(list);
    for (int i = 0; i < n; i++) {
        GMimeHeader *hd = g_mime_header_list_get_header_at(list, i);
        if (hd == NULL)
            continue;
        const char *name = g_mime_header_get_name(hd);
        if (name == NULL || (!content_too && g_ascii_strncasecmp(name, "Content-", 8) == 0))
            continue;
        if (bounce_hdr_decodes(name)) {
            if (bounce__hdrs_add(h, name, g_mime_header_get_value(hd)) != 0)
                return;
            continue;
        }
        const char *raw = g_mime_header_get_raw_value(hd);
        char *v = bounce_unfold(raw ? raw : "");
        int rv = v ? bounce__hdrs_add(h, name, v) : BOUNCE_ENOMEM;
        free(v);
        if (rv != 0)
            return;
    }
}

/* Decoded bytes of a leaf part, at most max bytes, NUL-terminated. Text parts
 * are converted to UTF-8 from their charset. */
/* Converters from a charset to UTF-8, kept for the life of the process:
 * opening one costs more than analysing a whole report. A converter is
 * taken out of the pool while in use (an iconv_t has state). */
#define BOUNCE_ICONV_POOL 16
static struct {
    char name[40];
    iconv_t cd;
    bool busy;
} bounce_iconv_pool[BOUNCE_ICONV_POOL];
static pthread_mutex_t bounce_iconv_lock = PTHREAD_MUTEX_INITIALIZER;

static iconv_t bounce_iconv_take(const char *name, int *slot)
{
    *slot = -1;
    pthread_mutex_lock(&bounce_iconv_lock);
    int freeslot = -1;
    for (int i = 0; i < BOUNCE_ICONV_POOL; i++) {
        if (bounce_iconv_pool[i].name[0] == '\0') {
            if (freeslot < 0)
                freeslot = i;
            continue;
        }
        if (!bounce_iconv_pool[i].busy && strcmp(bounce_iconv_pool[i].name, name) == 0) {
            bounce_iconv_pool[i].busy = true;
            *slot = i;
            pthread_mutex_unlock(&bounce_iconv_lock);
            iconv(bounce_iconv_pool[i].cd, NULL, NULL, NULL, NULL);
            return bounce_iconv_pool[i].cd;
        }
    }
    if (freeslot >= 0 && strlen(name) < sizeof bounce_iconv_pool[0].name) {
        snprintf(bounce_iconv_pool[freeslot].name, sizeof bounce_iconv_pool[freeslot].name, "%s", name);
        bounce_iconv_pool[freeslot].busy = true; /* reserved while opening */
        pthread_mutex_unlock(&bounce_iconv_lock);
        iconv_t cd = iconv_open("UTF-8", name);
        pthread_mutex_lock(&bounce_iconv_lock);
        if (cd == (iconv_t)-1) {
            bounce_iconv_pool[freeslot].name[0] = '\0';
            bounce_iconv_pool[freeslot].busy = false;
        } else {
            bounce_iconv_pool[freeslot].cd = cd;
            *slot = freeslot;
        }
        pthread_mutex_unlock(&bounce_iconv_lock);
        return cd;
    }
    pthread_mutex_unlock(&bounce_iconv_lock);
    return iconv_open("UTF-8", name); /* pool full: a private one */
}

static void bounce_iconv_give(iconv_t cd, int slot)
{
    if (slot < 0) {
        iconv_close(cd);
        return;
    }
    pthread_mutex_lock(&bounce_iconv_lock);
    bounce_iconv_pool[slot].busy = false;
    pthread_mutex_unlock(&bounce_iconv_lock);
}

/* in[0..n) from charset cs to UTF-8, malloc'd; bytes that do not convert
 * become '?'. NULL if the charset is unknown to iconv (caller keeps raw). */
static char *bounce_to_utf8(const char *cs, const char *in, size_t n, size_t max, size_t *outlen)
{
    const char *name = g_mime_charset_iconv_name(cs);
    int slot;
    iconv_t cd = bounce_iconv_take(name ? name : cs, &slot);
    if (cd == (iconv_t)-1)
        return NULL;
    size_t cap = n * 2 + 16, used = 0;
    char *out = malloc(cap + 1);
    char *ip = (char *)in;
    size_t il = n;
    while (out != NULL && il > 0 && used < max) {
        char *op = out + used;
        size_t ol = cap - used;
        size_t r = iconv(cd, &ip, &il, &op, &ol);
        used = (size_t)(op - out);
        if (r != (size_t)-1)
            break;
        if (errno == E2BIG) {
            char *no = realloc(out, cap * 2 + 1);
            if (no == NULL) {
                free(out);
                out = NULL;
                break;
            }
            out = no;
            cap *= 2;
        } else if (errno == EILSEQ) {
            if (used < cap)
                out[used++] = '?';
            ip++;
            il--;
        } else {
            break; /* EINVAL: a sequence cut at the end */
        }
    }
    bounce_iconv_give(cd, slot);
    if (out == NULL)
        return NULL;
    if (used > max)
        used = max;
    out[used] = '\0';
    *outlen = used;
    return out;
}

/* Decoded bytes of a leaf part, at most max bytes, NUL-terminated. Text parts
 * are converted to UTF-8 from their charset. GMime decodes the transfer
 * encoding; iconv converts. */
static char *bounce_leaf_bytes(GMimePart *part, bool text, size_t max, size_t *outlen)
{
    GMimeDataWrapper *w = g_mime_part_get_content(part);
    if (w == NULL)
        return NULL;
    GMimeStream *mem = g_mime_stream_mem_new();
    g_mime_data_wrapper_write_to_stream(w, mem);
    GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    const char *data = ba && ba->len ? (const char *)ba->data : "";
    size_t n = ba ? ba->len : 0;
    char *out = NULL;
    const char *cs = text ? g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset") : NULL;
    if (cs != NULL && n > 0 && g_ascii_strcasecmp(cs, "utf-8") != 0 && g_ascii_strcasecmp(cs, "us-ascii") != 0)
        out = bounce_to_utf8(cs, data, n, max, &n);
    if (out == NULL) {
        if (n > max)
            n = max;
        out = bounce__strndup(data, n);
    }
    g_object_unref(mem);
    if (out != NULL) {
        /* NUL bytes would cut the text short for the string scanners. */
        for (size_t i = 0; i < n; i++)
            if (out[i] == '\0')
                out[i] = ' ';
    }
    *outlen = n;
    return out;
}

static void bounce_strip_html(char *s)
{
    char *w = s;
    bool tag = false;
    for (char *r = s; *r; r++) {
        if (*r == '<') {
            tag = true;
            if (bounce__starts_ci(r, "<br") || bounce__starts_ci(r, "<p") ||
                bounce__starts_ci(r, "<div") || bounce__starts_ci(r, "<tr"))
                *w++ = '\n';
            continue;
        }
        if (tag) {
            if (*r == '>')
                tag = false;
            continue;
        }
        if (*r == '&') {
            static const struct { const char *ent; char c; } ents[] = {
                {"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&nbsp;", ' '}, {"&quot;", '"'}};
            bool done = false;
            for (size_t i = 0; i < sizeof ents / sizeof ents[0]; i++) {
                size_t l = strlen(ents[i].ent);
                if (strncasecmp(r, ents[i].ent, l) == 0) {
                    *w++ = ents[i].c;
                    r += l - 1;
                    done = true;
                    break;
                }
            }
            if (done)
                continue;
        }
        *w++ = *r;
    }
    *w = '\0';
}

static int bounce_add_part(struct bounce__doc *d, enum bounce__ptype t, char *text, size_t len)
{
    if (d->nparts == d->capparts) {
        size_t cap = d->capparts ? d->capparts * 2 : 8;
        struct bounce__part *p = realloc(d->parts, cap * sizeof *p);
        if (p == NULL) {
            free(text);
            return BOUNCE_ENOMEM;
        }
        d->parts = p;
        d->capparts = cap;
    }
    d->parts[d->nparts].type = t;
    d->parts[d->nparts].text = text;
    d->parts[d->nparts].len = len;
    d->nparts++;
    return BOUNCE_OK;
}

void bounce__parse_header_block(struct bounce__hdrs *h, const char *text, size_t len)
{
    pthread_once(&bounce_gmime_once, bounce_gmime_init);
    /* A header block followed by an empty line is a (body-less) message. */
    GMimeStream *s = g_mime_stream_mem_new();
    g_mime_stream_write(s, text, len);
    g_mime_stream_write(s, "\n\n", 2);
    g_mime_stream_seek(s, 0, GMIME_STREAM_SEEK_SET);
    GMimeParser *p = g_mime_parser_new_with_stream(s);
    GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
    if (m != NULL) {
        bounce_copy_headers(h, GMIME_OBJECT(m), true);
        g_object_unref(m);
    }
    g_object_unref(p);
    g_object_unref(s);
}

int bounce__doc_set_orig_block(struct bounce__doc *d, const char *text, size_t len)
{
    if (d->have_orig || len == 0)
        return BOUNCE_OK;
    if ((d->orig_block = bounce__strndup(text, len)) == NULL)
        return BOUNCE_ENOMEM;
    d->have_orig = true;
    return BOUNCE_OK;
}

const struct bounce__hdrs *bounce__doc_orig(struct bounce__doc *d)
{
    if (d->orig_block != NULL) {
        bounce__parse_header_block(&d->orig, d->orig_block, strlen(d->orig_block));
        free(d->orig_block);
        d->orig_block = NULL;
    }
    return &d->orig;
}

bool bounce__block_has(const char *block, const char *name, const char *needle)
{
    size_t nl = strlen(name);
    for (const char *l = block; l != NULL && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        if (strncasecmp(l, name, nl) != 0 || l[nl] != ':')
            continue;
        /* the field with its continuation lines */
        const char *e = l;
        do {
            e = strchr(e, '\n');
        } while (e != NULL && (e[1] == ' ' || e[1] == '\t') && e++);
        size_t n = e ? (size_t)(e - l) : strlen(l);
        if (bounce__memistr(l + nl + 1, n - nl - 1, needle))
            return true;
    }
    return false;
}

struct bounce_walk {
    struct bounce__doc *d;
    unsigned parts;
    int err;
};

static void bounce_walk(struct bounce_walk *wk, GMimeObject *obj, unsigned depth, bool inside_orig);

static void bounce_walk_message(struct bounce_walk *wk, GMimeMessage *m, unsigned depth)
{
    struct bounce__doc *d = wk->d;
    GMimeObject *body = g_mime_message_get_mime_part(m);
    bool nested_report = false;
    if (body != NULL) {
        GMimeContentType *ct = g_mime_object_get_content_type(body);
        nested_report = ct && g_mime_content_type_is_type(ct, "multipart", "report");
    }
    if (!d->have_orig) {
        bounce_copy_headers(&d->orig, GMIME_OBJECT(m), true);
        d->have_orig = true;
    }
    /* A bounce of a bounce (forwarded report): walk it as well. */
    if (nested_report && body != NULL)
        bounce_walk(wk, body, depth + 1, false);
}

/* Length of the header block at the start of text (up to its blank line). */
static size_t bounce_header_len(const char *text, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++)
        if (text[i] == '\n' && (text[i + 1] == '\n' || (text[i + 1] == '\r' && i + 2 < len && text[i + 2] == '\n')))
            return i + 1;
    return len;
}

/* A whole message given as text (a returned report): GMime parses it and
 * its parts are walked like the outer ones. */
static void bounce_walk_nested(struct bounce_walk *wk, const char *text, size_t len, unsigned depth)
{
    GMimeStream *s = g_mime_stream_mem_new_with_buffer(text, len);
    GMimeParser *p = g_mime_parser_new_with_stream(s);
    GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
    if (m != NULL) {
        bounce_walk(wk, g_mime_message_get_mime_part(m), depth, false);
        g_object_unref(m);
    }
    g_object_unref(p);
    g_object_unref(s);
}

static void bounce_walk(struct bounce_walk *wk, GMimeObject *obj, unsigned depth, bool inside_orig)
{
    struct bounce__doc *d = wk->d;
    const struct bounce_limits *lim = d->lim;
    if (obj == NULL || wk->err != 0 || depth > lim->max_depth || wk->parts >= lim->max_parts)
        return;
    wk->parts++;
    if (GMIME_IS_MULTIPART(obj)) {
        int n = g_mime_multipart_get_count(GMIME_MULTIPART(obj));
        for (int i = 0; i < n && wk->parts < lim->max_parts; i++)
            bounce_walk(wk, g_mime_multipart_get_part(GMIME_MULTIPART(obj), i), depth + 1, inside_orig);
        return;
    }
    if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
        if (m != NULL)
            bounce_walk_message(wk, m, depth + 1);
        return;
    }
    if (!GMIME_IS_PART(obj) || inside_orig)
        return;
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    const char *type = ct ? g_mime_content_type_get_media_type(ct) : "text";
    const char *sub = ct ? g_mime_content_type_get_media_subtype(ct) : "plain";
    if (type == NULL || sub == NULL)
        return;
    size_t len = 0;
    char *text = NULL;
    if (g_ascii_strcasecmp(type, "message") == 0 || g_ascii_strcasecmp(type, "text") == 0) {
        bool is_text = g_ascii_strcasecmp(type, "text") == 0;
        if (g_ascii_strcasecmp(sub, "rfc822-headers") == 0 || g_ascii_strcasecmp(sub, "rfc822") == 0 ||
            g_ascii_strcasecmp(sub, "global-headers") == 0) {
            /* text/rfc822-headers, or the returned message that
             * bounce__mime_parse() had GMime keep as a leaf */
            if (d->have_orig)
                return;
            text = bounce_leaf_bytes(GMIME_PART(obj), false, BOUNCE_ORIG_SCAN, &len);
            if (text == NULL) {
                wk->err = BOUNCE_ENOMEM;
                return;
            }
            size_t hl = bounce_header_len(text, len);
            if (bounce__doc_set_orig_block(d, text, hl) != 0)
                wk->err = BOUNCE_ENOMEM;
            else if (bounce__block_has(d->orig_block ? d->orig_block : "", "Content-Type", "multipart/report"))
                bounce_walk_nested(wk, text, len, depth + 1); /* a bounce of a bounce */
            free(text);
            return;
        }
        enum bounce__ptype pt;
        if (g_ascii_strcasecmp(sub, "delivery-status") == 0 ||
            g_ascii_strcasecmp(sub, "global-delivery-status") == 0)
            pt = BOUNCE_P_DS;
        else if (g_ascii_strcasecmp(sub, "feedback-report") == 0)
            pt = BOUNCE_P_FR;
        else if (is_text && g_ascii_strcasecmp(sub, "html") == 0)
            pt = BOUNCE_P_HTML;
        else if (is_text)
            pt = BOUNCE_P_TEXT;
        else
            return;
        text = bounce_leaf_bytes(GMIME_PART(obj), is_text, lim->max_text, &len);
        if (text == NULL) {
            wk->err = BOUNCE_ENOMEM;
            return;
        }
        if (pt == BOUNCE_P_HTML) {
            bounce_strip_html(text);
            len = strlen(text);
        }
        if (bounce_add_part(d, pt, text, len) != 0)
            wk->err = BOUNCE_ENOMEM;
    }
}

/* The returned original message is by far the largest part of most
 * reports, and only its headers matter here. Labelled text/rfc822-headers
 * instead of message/rfc822, GMime keeps it as one leaf (its boundaries
 * still found by GMime) instead of building the whole message tree; the
 * walk then reads just its header block. Only Content-Type lines of body
 * parts are relabelled; returns a malloc'd copy, or NULL if there is none. */
/* Next "message/rfc822" (any case) in [p, end) on a Content-Type line. */
static const char *bounce_next_rfc822(const char *data, const char *p, const char *end)
{
    static const char tail[] = "/rfc822";
    for (const char *q = memmem(p, (size_t)(end - p), tail, 7); q != NULL;
         q = memmem(q + 7, (size_t)(end - q - 7), tail, 7)) {
        if (q - p < 7 || strncasecmp(q - 7, "message", 7) != 0)
            continue;
        const char *ls = q - 7;
        while (ls > data && ls[-1] != '\n')
            ls--;
        if (bounce__starts_ci(ls, "content-type:"))
            return q - 7;
    }
    return NULL;
}

static char *bounce_opaque_returned(const char *data, size_t len, size_t *outlen)
{
    static const char to[] = "text/rfc822-headers";
    const size_t fl = 14, tl = sizeof to - 1;
    const char *end = data + len, *body = data + bounce_header_len(data, len);
    size_t count = 0;
    for (const char *p = bounce_next_rfc822(data, body, end); p != NULL; p = bounce_next_rfc822(data, p + fl, end))
        count++;
    if (count == 0)
        return NULL;
    char *out = malloc(len + count * (tl - fl) + 1), *w = out;
    if (out == NULL)
        return NULL;
    const char *r = data;
    for (const char *p = bounce_next_rfc822(data, body, end); p != NULL; p = bounce_next_rfc822(data, p + fl, end)) {
        memcpy(w, r, (size_t)(p - r));
        w += p - r;
        memcpy(w, to, tl);
        w += tl;
        r = p + fl;
    }
    memcpy(w, r, (size_t)(end - r));
    w += end - r;
    *w = '\0';
    *outlen = (size_t)(w - out);
    return out;
}

int bounce__mime_parse(struct bounce__doc *d, const char *data, size_t len)
{
    pthread_once(&bounce_gmime_once, bounce_gmime_init);
    int rv = BOUNCE_OK;
    size_t olen = 0;
    char *opaque = bounce_opaque_returned(data, len, &olen);
    /* the relabelled copy is handed over as it is (GLib allocates with
     * malloc); the caller's bytes are copied once */
    GMimeStream *s = opaque ? g_mime_stream_mem_new_with_byte_array(g_byte_array_new_take((guint8 *)opaque, olen))
                            : g_mime_stream_mem_new_with_buffer(data, len);
    /* An mbox envelope line ("From MAILER-DAEMON Tue Jun ...") before the
     * header block is no header: the entity starts after it. */
    if (len > 5 && memcmp(data, "From ", 5) == 0) {
        const char *eol = memchr(data, '\n', len);
        if (eol != NULL)
            g_mime_stream_seek(s, (gint64)(eol + 1 - data), GMIME_STREAM_SEEK_SET);
    }
    GMimeParser *p = g_mime_parser_new_with_stream(s);
    /* The report is parsed as a MIME entity, not as a GMimeMessage: its
     * header list is the same, and GMime skips building address lists,
     * dates and the message wrapper nobody here reads (10-20 % of its
     * parse time over the corpus). */
    GMimeObject *body = g_mime_parser_construct_part(p, NULL);
    if (body == NULL) {
        rv = BOUNCE_EPARSE;
        goto out;
    }
    bounce_copy_headers(&d->top, body, false);
    if (body != NULL) {
        GMimeContentType *ct = g_mime_object_get_content_type(body);
        if (ct != NULL) {
            snprintf(d->content_type, sizeof d->content_type, "%s/%s",
                     g_mime_content_type_get_media_type(ct) ? g_mime_content_type_get_media_type(ct) : "",
                     g_mime_content_type_get_media_subtype(ct) ? g_mime_content_type_get_media_subtype(ct) : "");
            const char *rt = g_mime_content_type_get_parameter(ct, "report-type");
            if (rt != NULL)
                snprintf(d->report_type, sizeof d->report_type, "%s", rt);
            bounce__normalise(d->content_type);
            bounce__normalise(d->report_type);
        }
    }
    struct bounce_walk wk = {.d = d};
    bounce_walk(&wk, body, 0, false);
    rv = wk.err;
    size_t kept = 0;
    for (size_t i = 0; i < d->nparts; i++)
        kept += d->parts[i].len;
    if (rv == 0 && kept == 0) {
        /* Nothing readable came out of the MIME structure (a multipart whose
         * boundary never occurs, a broken header): read the raw body as
         * text, as a person would. */
        gint64 off = g_mime_parser_get_headers_end(p);
        if (off > 0 && (size_t)off < len) {
            size_t n = len - (size_t)off;
            if (n > d->lim->max_text)
                n = d->lim->max_text;
            char *raw = bounce__strndup(data + off, n);
            if (raw == NULL)
                rv = BOUNCE_ENOMEM;
            else {
                for (size_t i = 0; i < n; i++)
                    if (raw[i] == '\0')
                        raw[i] = ' ';
                rv = bounce_add_part(d, BOUNCE_P_TEXT, raw, n);
            }
        }
    }
    g_object_unref(body);
out:
    g_object_unref(p);
    g_object_unref(s);
    return rv;
}
