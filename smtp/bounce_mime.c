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
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "smtp/bounce_internal.h"

static pthread_once_t bounce_gmime_once = PTHREAD_ONCE_INIT;

/* A GMimeParser for each thread, used for mail after mail: one made and
 * freed for every report cost some 3,000 instructions a report. The
 * parser holds on to its last stream until it is given the next one; that
 * stream is emptied (given the empty array none) when the mail is done, so
 * that no mail's bytes outlive its analysis. Freed when the thread ends. */
struct bounce_parser {
    GMimeParser *p;
    GByteArray *none;
};
static pthread_key_t bounce_parser_key;
static bool bounce_parser_keyed; /* written once, under bounce_gmime_once */

static void bounce_parser_free(void *v)
{
    struct bounce_parser *bp = v;
    g_object_unref(bp->p); /* and its stream, which does not own none */
    g_byte_array_free(bp->none, TRUE);
    free(bp);
}

static void bounce_gmime_init(void)
{
    g_mime_init();
    bounce_parser_keyed = pthread_key_create(&bounce_parser_key, bounce_parser_free) == 0;
}

/* A parser reading s: this thread's, or a new one if it cannot have one. */
static GMimeParser *bounce_parser_take(GMimeStream *s)
{
    struct bounce_parser *bp = bounce_parser_keyed ? pthread_getspecific(bounce_parser_key) : NULL;
    if (bp == NULL && bounce_parser_keyed && (bp = malloc(sizeof *bp)) != NULL) {
        bp->p = g_mime_parser_new();
        bp->none = g_byte_array_new();
        if (pthread_setspecific(bounce_parser_key, bp) != 0) {
            bounce_parser_free(bp);
            bp = NULL;
        }
    }
    if (bp == NULL)
        return g_mime_parser_new_with_stream(s);
    g_mime_parser_init_with_stream(bp->p, s);
    return bp->p;
}

/* Done with p and with s, the memory stream it was given (nothing built
 * from them is left). */
static void bounce_parser_give(GMimeParser *p, GMimeStream *s)
{
    struct bounce_parser *bp = bounce_parser_keyed ? pthread_getspecific(bounce_parser_key) : NULL;
    if (bp != NULL && bp->p == p)
        g_mime_stream_mem_set_byte_array(GMIME_STREAM_MEM(s), bp->none); /* frees the mail's */
    else
        g_object_unref(p);
    g_object_unref(s);
}


/* Appends a field; own: name and value are one malloc'd block (freed here
 * when out of memory), else they point into one of h's arenas. fold: 1 +
 * bytes of a value still folded, 0 if it is ready. */
static int bounce_hdrs_push(struct bounce__hdrs *h, const char *name, const char *value, uint32_t key, uint32_t fold,
                            bool own)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        struct bounce_header *v = realloc(h->v, cap * sizeof *v);
        if (v != NULL)
            h->v = v;
        struct bounce__hkey *k = v != NULL ? realloc(h->k, cap * sizeof *k) : NULL;
        if (k == NULL) {
            if (own)
                free((char *)name);
            return BOUNCE_ENOMEM;
        }
        h->k = k;
        h->cap = cap;
    }
    uint32_t b = key % BOUNCE_HDR_BUCKETS;
    h->v[h->n].name = name;
    h->v[h->n].value = value;
    h->k[h->n] = (struct bounce__hkey){.key = key, .fold = fold, .own = own};
    if (h->tail[b] != 0)
        h->k[h->tail[b] - 1].next = (uint32_t)h->n + 1;
    else
        h->head[b] = (uint32_t)h->n + 1;
    h->tail[b] = (uint32_t)h->n + 1;
    h->n++;
    return BOUNCE_OK;
}

static size_t bounce_unfold_into(char *out, const char *raw, size_t n);

const char *bounce__hdrs_next(const struct bounce__hdrs *h, const char *name, uint32_t key, size_t *i)
{
    /* A bucket's chain runs in field order: after a match at *i - 1 (the
     * usual loop over the fields of a name), the search goes on from its
     * successor instead of from the bucket's head. */
    uint32_t j = *i > 0 && *i <= h->n && h->k[*i - 1].key == key ? h->k[*i - 1].next
                                                                   : h->head[key % BOUNCE_HDR_BUCKETS];
    for (; j != 0; j = h->k[j - 1].next) {
        size_t k = j - 1;
        if (k < *i || h->k[k].key != key)
            continue;
        /* most names are spelt as asked, byte for byte */
        const char *have = h->v[k].name;
        if (strcmp(have, name) == 0 || bounce__ieq(have, name)) {
            *i = k + 1;
            if (h->k[k].fold != 0) {
                /* Made one line now, in place in the arena, on the first
                 * lookup (most fields of a mail's own header block never
                 * have one). The header set is logically unchanged, and
                 * only the analysing thread owns the doc it belongs to: the
                 * write goes through the const pointer (no hdrs object is
                 * defined const). */
                struct bounce__hkey *hk = (struct bounce__hkey *)&h->k[k];
                bounce_unfold_into((char *)h->v[k].value, h->v[k].value, hk->fold - 1);
                hk->fold = 0;
            }
            return h->v[k].value;
        }
    }
    *i = h->n;
    return NULL;
}

int bounce__hdrs_add(struct bounce__hdrs *h, const char *name, const char *value)
{
    if (name == NULL || h->n >= h->max)
        return BOUNCE_OK; /* bounded: the rest is dropped */
    size_t nl = strlen(name), vl = value ? strlen(value) : 0;
    char *block = malloc(nl + vl + 2);
    if (block == NULL)
        return BOUNCE_ENOMEM;
    memcpy(block, name, nl + 1);
    memcpy(block + nl + 1, value ? value : "", vl + 1);
    return bounce_hdrs_push(h, block, block + nl + 1, bounce__hdr_key_n(block, nl), 0, true);
}

/* A header block's text, which the fields read from it point into. */
struct bounce_arena {
    struct bounce_arena *next;
    char text[];
};

void bounce__hdrs_free(struct bounce__hdrs *h)
{
    for (size_t i = 0; i < h->n; i++)
        if (h->k[i].own)
            free((char *)h->v[i].name);
    for (struct bounce_arena *a = h->arenas, *next; a != NULL; a = next) {
        next = a->next;
        free(a);
    }
    free(h->v);
    free(h->k);
    size_t max = h->max;
    memset(h, 0, sizeof *h);
    h->max = max;
}

void bounce__doc_free(struct bounce__doc *d)
{
    bounce__hdrs_free(&d->top);
    bounce__hdrs_free(&d->orig);
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
static bool bounce_hdr_decodes(const char *name, size_t n)
{
    switch (name[0] | 0x20) {
    case 's':
        return (n == 7 && bounce__ieq(name, "subject")) ||
               (n == 6 && bounce__ieq(name, "sender"));
    case 'f': return n == 4 && bounce__ieq(name, "from");
    case 't': return n == 2 && bounce__ieq(name, "to");
    case 'c': return n == 2 && bounce__ieq(name, "cc");
    case 'r': return n == 8 && bounce__ieq(name, "reply-to");
    default: return false;
    }
}

/* A raw folded header value (n bytes) as one line at out (room for n + 1;
 * out may be raw: it is written from its start, never ahead of what is
 * read), leading and trailing blanks dropped; returns its length. */
static size_t bounce_unfold_into(char *out, const char *raw, size_t n)
{
    const char *r = raw, *end = raw + n;
    char *w = out;
    while (r < end && (*r == ' ' || *r == '\t'))
        r++;
    while (r < end) {
        /* a run up to the next line break, tabs made spaces */
        const char *nl = memchr(r, '\n', (size_t)(end - r));
        const char *cr = memchr(r, '\r', (size_t)((nl ? nl : end) - r));
        const char *stop = cr ? cr : nl ? nl : end;
        size_t run = (size_t)(stop - r);
        memmove(w, r, run); /* out may be raw itself (w <= r) */
        for (char *t = memchr(w, '\t', run); t != NULL; t = memchr(t + 1, '\t', (size_t)(w + run - t - 1)))
            *t = ' ';
        w += run;
        r = stop;
        if (r >= end)
            break;
        if (w > out && w[-1] != ' ')
            *w++ = ' ';
        r++;
        while (r < end && (*r == ' ' || *r == '\t' || *r == '\r' || *r == '\n'))
            r++;
    }
    while (w > out && w[-1] == ' ')
        w--;
    *w = '\0';
    return (size_t)(w - out);
}

/* raw folded header value -> one line, malloc'd */
static char *bounce_unfold(const char *raw)
{
    size_t n = strlen(raw);
    char *out = malloc(n + 1);
    if (out != NULL)
        bounce_unfold_into(out, raw, n);
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
        if (name == NULL || (!content_too && bounce__ieq_n(name, "Content-", 8)))
            continue;
        if (bounce_hdr_decodes(name, strlen(name))) {
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

/* One RFC 5322 header field: its name and its raw value (after the colon,
 * up to the end of its last continuation line). */
struct bounce_field {
    const char *name, *value;
    size_t name_len, value_len;
    const char *start; /* the whole field, as it was written */
    size_t len;
};

/* The end of a field name at l: its first byte that is a control, a
 * blank, ':', DEL or not ASCII. Names are read 16 bytes at a time (the
 * byte-wise loop was a tenth of a header block's cost). */
static const char *bounce_name_end(const char *l, const char *end)
{
    const char *c = l;
#ifdef __SSE2__
    const __m128i low = _mm_set1_epi8('!'), colon = _mm_set1_epi8(':'), del = _mm_set1_epi8(127);
    for (; end - c >= 16; c += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)c);
        /* signed: bytes of 128 and above are below '!' too */
        __m128i stop = _mm_or_si128(_mm_cmplt_epi8(v, low), _mm_or_si128(_mm_cmpeq_epi8(v, colon), _mm_cmpeq_epi8(v, del)));
        unsigned mask = (unsigned)_mm_movemask_epi8(stop);
        if (mask != 0)
            return c + __builtin_ctz(mask);
    }
#endif
    while (c < end && *c != ':' && (unsigned char)*c > ' ' && (unsigned char)*c < 127)
        c++;
    return c;
}

/* Next field of the header block at *p. Returns 1 with f filled in, 0 at
 * the end of the block (*p is then past its blank line, or at end), and -1
 * at a line that is no header field. Lines end in LF or CRLF. */
static int bounce_next_field(const char **p, const char *end, struct bounce_field *f)
{
    const char *l = *p;
    if (l >= end)
        return 0;
    if (*l == '\n' || (*l == '\r' && l + 1 < end && l[1] == '\n')) {
        *p = l + (*l == '\r' ? 2 : 1);
        return 0;
    }
    const char *c = bounce_name_end(l, end);
    f->name = l;
    f->name_len = (size_t)(c - l);
    while (c < end && (*c == ' ' || *c == '\t')) /* obsolete "Name :" */
        c++;
    if (f->name_len == 0 || c >= end || *c != ':')
        return -1;
    f->value = c + 1;
    const char *e = c + 1;
    for (;;) {
        const char *nl = memchr(e, '\n', (size_t)(end - e));
        if (nl == NULL) {
            e = end;
            break;
        }
        e = nl + 1;
        if (e >= end || (*e != ' ' && *e != '\t'))
            break;
        /* a continuation line of blanks only would end the block for
         * some readers and not for others: not ours to decide */
        const char *b = e;
        while (b < end && (*b == ' ' || *b == '\t'))
            b++;
        if (b >= end || *b == '\n' || *b == '\r')
            return -1;
    }
    f->value_len = (size_t)(e - f->value);
    f->start = l;
    f->len = (size_t)(e - l);
    *p = e;
    return 1;
}

static bool bounce_field_is(const struct bounce_field *f, const char *name)
{
    size_t n = strlen(name);
    return f->name_len == n && bounce__ieq_n(f->name, name, n);
}

/* Content-* fields describe the MIME entity (GMime reads them), not the
 * mail: they are not among the mail's headers. */
static bool bounce_field_content(const struct bounce_field *f)
{
    return f->name_len >= 8 && (f->name[0] | 0x20) == 'c' && bounce__ieq_n(f->name, "Content-", 8);
}

/* The fields GMime is given: the only two that decide how the body is
 * read. GMime would build an object for every other one (MIME-Version,
 * Content-Description, Content-ID, Content-Disposition with its
 * parameters), and nothing reads them. */
static bool bounce_field_mime(const struct bounce_field *f)
{
    return bounce_field_is(f, "Content-Type") || bounce_field_is(f, "Content-Transfer-Encoding");
}

static bool bounce_lwsp(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* A raw header value (n bytes, up to a NUL) unfolded as GMime's
 * g_mime_utils_header_unfold() does: blanks and line breaks around it
 * dropped, CR and LF inside removed, the blanks of each fold kept. Written
 * at out (room for n + 1; out may be raw itself); returns its length. */
static size_t bounce_unfold_keep(char *out, const char *raw, size_t n)
{
    const char *s = raw, *e = raw + strnlen(raw, n);
    while (s < e && bounce_lwsp(*s))
        s++;
    while (e > s && bounce_lwsp(e[-1]))
        e--;
    /* runs between line break bytes, copied whole (out may be raw: w <= s) */
    char *w = out;
    while (s < e) {
        const char *stop = memchr(s, '\n', (size_t)(e - s));
        const char *cr = memchr(s, '\r', (size_t)((stop ? stop : e) - s));
        stop = cr ? cr : stop ? stop : e;
        memmove(w, s, (size_t)(stop - s));
        w += stop - s;
        s = stop < e ? stop + 1 : e;
    }
    *w = '\0';
    return (size_t)(w - out);
}

/* ASCII text without an encoded word comes out of GMime's decoder as it
 * went in. v holds n bytes, none of them NUL, and a NUL after them. Both
 * tests in one pass, 16 bytes at a time (a byte loop after strstr() was
 * most of the cost of the decoded fields). */
static bool bounce_header_plain(const char *v, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    const __m128i eq = _mm_set1_epi8('=');
    for (; n - i >= 16; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(v + i));
        if (_mm_movemask_epi8(x) != 0)
            return false;
        /* v[n] is the NUL: a '=' last has a byte after it */
        for (unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, eq)); m != 0; m &= m - 1)
            if (v[i + (unsigned)__builtin_ctz(m) + 1] == '?')
                return false;
    }
#endif
    for (; i < n; i++)
        if ((unsigned char)v[i] >= 0x80 || (v[i] == '=' && v[i + 1] == '?'))
            return false;
    return true;
}

/* A header value (n bytes of raw text after the colon) as GMime's
 * g_mime_header_get_value() gives it: unfolded, encoded words and 8-bit
 * text decoded. g_malloc'd. */
static char *bounce_header_decode(const char *raw, size_t n)
{
    char *unfolded = g_malloc(n + 1);
    if (bounce_header_plain(unfolded, bounce_unfold_keep(unfolded, raw, n)))
        return unfolded;
    char *decoded = g_mime_utils_header_decode_text(NULL, unfolded);
    g_free(unfolded);
    return decoded;
}

/* Field i of h (name and raw value in an arena, the name terminated) as
 * the rest of the analyser reads it: unfolded, and for the fields that can
 * carry them, encoded words and 8-bit text decoded by GMime (into a block
 * of its own: decoding may lengthen it). With lazy, the other fields are
 * unfolded when first looked up (bounce__hdrs_next). */
static int bounce_field_ready(struct bounce__hdrs *h, size_t i, size_t name_len, bool lazy)
{
    const char *name = h->v[i].name;
    char *value = (char *)h->v[i].value;
    size_t n = h->k[i].fold - 1;
    if (!bounce_hdr_decodes(name, name_len)) {
        if (!lazy) {
            bounce_unfold_into(value, value, n);
            h->k[i].fold = 0;
        }
        return BOUNCE_OK;
    }
    h->k[i].fold = 0;
    /* unfolded the way GMime's decoder expects (blanks of a fold kept) */
    if (bounce_header_plain(value, bounce_unfold_keep(value, value, n)))
        return BOUNCE_OK;
    char *decoded = g_mime_utils_header_decode_text(NULL, value);
    size_t vl = decoded ? strlen(decoded) : 0;
    char *block = malloc(name_len + vl + 2);
    if (block != NULL) {
        memcpy(block, name, name_len + 1);
        memcpy(block + name_len + 1, decoded ? decoded : "", vl + 1);
        h->v[i].name = block;
        h->v[i].value = block + name_len + 1;
        h->k[i].own = true;
    }
    g_free(decoded);
    return block != NULL ? BOUNCE_OK : BOUNCE_ENOMEM;
}

/* The fields from first on, which point into text, moved into a copy of
 * the block (its first blen bytes, one allocation for all of them instead
 * of one each): names terminated in place of their colon, values made
 * ready (bounce_field_ready). */
static int bounce_fields_place(struct bounce__hdrs *h, size_t first, const char *text, size_t blen, bool lazy)
{
    if (first == h->n)
        return BOUNCE_OK;
    struct bounce_arena *a = malloc(sizeof *a + blen + 1);
    if (a == NULL)
        return BOUNCE_ENOMEM;
    memcpy(a->text, text, blen);
    a->text[blen] = '\0'; /* a last value not ended by a line break */
    a->next = h->arenas;
    h->arenas = a;
    for (size_t i = first; i < h->n; i++) {
        char *name = a->text + (h->v[i].name - text), *value = a->text + (h->v[i].value - text);
        /* the name ends before the colon and any blanks ahead of it */
        char *ne = value - 1;
        while (ne[-1] == ' ' || ne[-1] == '\t')
            ne--;
        *ne = '\0';
        h->v[i].name = name;
        h->v[i].value = value;
        int rv = bounce_field_ready(h, i, (size_t)(ne - name), lazy);
        if (rv != BOUNCE_OK)
            return rv;
    }
    return BOUNCE_OK;
}

/* The fields of a header block into h, Content-* left out; with mime, the
 * fields GMime needs (Content-Type, Content-Transfer-Encoding) are also
 * copied there as written (room for len bytes), *mime_len their length;
 * lazy: see bounce_field_ready. Returns the offset of the body, or -1 if a
 * line is no header field (h is then left empty, for GMime to read the
 * block its own way). */
static ssize_t bounce_fields_read(struct bounce__hdrs *h, const char *text, size_t len, char *mime,
                                  size_t *mime_len, bool lazy, int *err)
{
    const char *p = text, *end = text + len;
    struct bounce_field f;
    int r;
    size_t first = h->n;
    *err = BOUNCE_OK;
    if (mime_len != NULL)
        *mime_len = 0;
    while ((r = bounce_next_field(&p, end, &f)) == 1) {
        if (bounce_field_content(&f)) {
            if (mime != NULL && bounce_field_mime(&f)) {
                memcpy(mime + *mime_len, f.start, f.len);
                *mime_len += f.len;
            }
            continue;
        }
        if (h->n >= h->max)
            continue; /* bounded: the rest is dropped */
        if (f.value_len >= UINT32_MAX) { /* beyond what fold can say: GMime's */
            r = -1;
            break;
        }
        /* into text until the block's end is known (bounce_fields_place) */
        if ((*err = bounce_hdrs_push(h, f.name, f.value, bounce__hdr_key_n(f.name, f.name_len),
                                     (uint32_t)f.value_len + 1, false)) != BOUNCE_OK)
            break;
    }
    if (r == 0 && *err == BOUNCE_OK)
        *err = bounce_fields_place(h, first, text, (size_t)(p - text), lazy);
    if (r < 0 || *err != BOUNCE_OK) {
        bounce__hdrs_free(h);
        return -1;
    }
    return p - text;
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
        bounce__copy(bounce_iconv_pool[freeslot].name, sizeof bounce_iconv_pool[freeslot].name, name);
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

/* Charsets (iconv names) in which glibc converts every byte below 0x80 to
 * itself, one for one, with no state: the ISO-8859 parts and Windows
 * 1250-1257 (not 1258, which holds a base letter back for a combining
 * mark that may follow). */
static bool bounce_charset_ascii_same(const char *name)
{
    if (bounce__ieq_n(name, "iso-8859-", 9)) {
        const char *d = name + 9; /* parts 1 to 16 */
        size_t k = d[0] == '1' && d[1] >= '0' && d[1] <= '6' ? 2 : d[0] >= '1' && d[0] <= '9' ? 1 : 0;
        return k != 0 && d[k] == '\0';
    }
    const char *w = bounce__ieq_n(name, "windows-", 8) ? name + 8 : bounce__ieq_n(name, "cp", 2) ? name + 2 : NULL;
    return w != NULL && strncmp(w, "125", 3) == 0 && w[3] >= '0' && w[3] <= '7' && w[4] == '\0';
}

/* No byte of s[0..n) is 0x80 or above; read eight at a time. */
static bool bounce_ascii(const char *s, size_t n)
{
    uint64_t any = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        any |= w;
    }
    for (; i < n; i++)
        any |= (unsigned char)s[i];
    return (any & 0x8080808080808080u) == 0;
}

/* in[0..n) from charset cs to UTF-8, malloc'd; bytes that do not convert
 * become '?'. NULL if the charset is unknown to iconv, or if iconv would
 * hand back the first max bytes as they are (caller keeps raw). */
static char *bounce_to_utf8(const char *cs, const char *in, size_t n, size_t max, size_t *outlen)
{
    const char *name = g_mime_charset_iconv_name(cs);
    if (name == NULL)
        name = cs;
    /* Most text labelled Latin-1 or ISO-2022-JP is ASCII, each byte of which
     * iconv converts to itself: its output's first max bytes would be the
     * input's. ISO-2022-JP is ASCII until an escape sequence (glibc reads
     * SO and SI there as controls; they are left to iconv all the same). */
    size_t m = n < max ? n : max;
    if (bounce_ascii(in, m) &&
        (bounce_charset_ascii_same(name) ||
         (bounce__ieq(name, "iso-2022-jp") && memchr(in, 0x1b, m) == NULL && memchr(in, 0x0e, m) == NULL &&
          memchr(in, 0x0f, m) == NULL)))
        return NULL;
    int slot;
    iconv_t cd = bounce_iconv_take(name, &slot);
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

/* A charset whose text is read as it is (no conversion). */
static bool bounce_charset_as_is(const char *cs)
{
    return cs == NULL || bounce__ieq(cs, "utf-8") || bounce__ieq(cs, "us-ascii");
}

/* Transfer encodings decoded here with GMime's decoder state (no filter
 * stream, no objects); uuencode needs GMime's filter, which finds the
 * "begin" line first. */
static bool bounce_encoding_stepped(GMimeContentEncoding e)
{
    return e == GMIME_CONTENT_ENCODING_BASE64 || e == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE;
}

static bool bounce_encoding_identity(GMimeContentEncoding e)
{
    return e == GMIME_CONTENT_ENCODING_DEFAULT || e == GMIME_CONTENT_ENCODING_7BIT ||
           e == GMIME_CONTENT_ENCODING_8BIT || e == GMIME_CONTENT_ENCODING_BINARY;
}

/* in[0..n) decoded from base64 or quoted-printable by GMime; malloc'd,
 * room for one more byte; NULL if out of memory. */
static char *bounce_decode(GMimeContentEncoding e, const char *in, size_t n, size_t *outlen)
{
    GMimeEncoding st;
    g_mime_encoding_init_decode(&st, e);
    char *out = malloc(g_mime_encoding_outlen(&st, n) + 1);
    if (out != NULL)
        *outlen = g_mime_encoding_step(&st, in, n, out);
    return out;
}

/* The end of every leaf's bytes (raw: malloc'd, n bytes, room for one
 * more): converted to UTF-8 from charset cs unless it is read as it is,
 * cut at max bytes, NUL bytes made blanks (they would cut the text short
 * for the string scanners). Takes raw; returns the text or NULL. */
static char *bounce_leaf_finish(char *raw, size_t n, const char *cs, size_t max, size_t *outlen)
{
    char *out = NULL;
    if (!bounce_charset_as_is(cs) && n > 0)
        out = bounce_to_utf8(cs, raw, n, max, &n);
    if (out != NULL)
        free(raw);
    else {
        out = raw;
        if (n > max)
            n = max;
    }
    out[n] = '\0';
    for (char *z = memchr(out, '\0', n); z != NULL; z = memchr(z + 1, '\0', (size_t)(out + n - z - 1)))
        *z = ' ';
    *outlen = n;
    return out;
}

/* Up to want bytes of a stream of known length, from its start; malloc'd
 * with room for one more byte, NULL if out of memory. */
static char *bounce_stream_bytes(GMimeStream *cs, size_t want, size_t *outlen)
{
    gint64 total = g_mime_stream_length(cs); /* known: checked by the caller */
    if ((size_t)total < want)
        want = (size_t)total;
    char *buf = malloc(want + 1);
    size_t n = 0;
    if (buf == NULL || g_mime_stream_reset(cs) != 0) {
        free(buf);
        return NULL;
    }
    while (n < want) {
        ssize_t got = g_mime_stream_read(cs, buf + n, want - n);
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    *outlen = n;
    return buf;
}

/* Decoded bytes of a leaf part, at most max bytes, NUL-terminated. Text parts
 * are converted to UTF-8 from their charset. The content is read straight
 * from the part's stream and decoded with GMime's decoder state: GMime's
 * writer would copy it through a filter stream (three objects per part);
 * uuencoded content still goes that way. */
static char *bounce_leaf_bytes(GMimePart *part, bool text, size_t max, size_t *outlen)
{
    GMimeDataWrapper *w = g_mime_part_get_content(part);
    if (w == NULL)
        return NULL;
    const char *cs = text ? g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset") : NULL;
    GMimeContentEncoding enc = g_mime_data_wrapper_get_encoding(w);
    GMimeStream *content = g_mime_data_wrapper_get_stream(w);
    bool known = content != NULL && g_mime_stream_length(content) >= 0;
    char *raw = NULL;
    size_t n = 0;
    if (known && bounce_encoding_identity(enc)) {
        /* all of it when a charset conversion follows (its output is cut) */
        if ((raw = bounce_stream_bytes(content, bounce_charset_as_is(cs) ? max : (size_t)-1 / 2, &n)) == NULL)
            return NULL;
    } else if (known && bounce_encoding_stepped(enc)) {
        char *in = bounce_stream_bytes(content, (size_t)-1 / 2, &n);
        if (in == NULL)
            return NULL;
        raw = bounce_decode(enc, in, n, &n);
        free(in);
        if (raw == NULL)
            return NULL;
    } else {
        /* GMime decodes the transfer encoding into memory of its own */
        GMimeStream *mem = g_mime_stream_mem_new();
        g_mime_data_wrapper_write_to_stream(w, mem);
        GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
        g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
        n = ba->len;
        g_byte_array_append(ba, (const guint8 *)"", 1);
        raw = (char *)g_byte_array_free(ba, FALSE); /* GLib allocates with malloc */
        g_object_unref(mem);
    }
    return bounce_leaf_finish(raw, n, cs, max, outlen);
}

/* A tag name (after its '<') that starts with "br", "p", "div" or "tr", in
 * any case: the tags that start a block. Bytes compared folded (OR 0x20),
 * which maps only the letter's two cases onto it; one test for most tags. */
static bool bounce_html_block(const char *t)
{
    switch (t[0] | 0x20) {
    case 'p': return true;
    case 'b': return (t[1] | 0x20) == 'r';
    case 't': return (t[1] | 0x20) == 'r';
    case 'd': return (t[1] | 0x20) == 'i' && (t[2] | 0x20) == 'v';
    default: return false;
    }
}

/* Tags dropped (a line break for those that start a block), the common
 * entities decoded. Runs of plain text are copied whole. */
static void bounce_strip_html(char *s)
{
    static const struct { const char *ent; size_t len; char c; } ents[] = {
        {"&lt;", 4, '<'}, {"&gt;", 4, '>'}, {"&amp;", 5, '&'}, {"&nbsp;", 6, ' '}, {"&quot;", 6, '"'}};
    char *w = s, *r = s;
    while (*r) {
        size_t run = strcspn(r, "<&");
        memmove(w, r, run);
        w += run;
        r += run;
        if (*r == '<') {
            if (bounce_html_block(r + 1))
                *w++ = '\n';
            char *gt = strchr(r, '>');
            r = gt ? gt + 1 : r + strlen(r);
        } else if (*r == '&') {
            size_t i = 0;
            while (i < sizeof ents / sizeof ents[0] && strncasecmp(r, ents[i].ent, ents[i].len) != 0)
                i++;
            if (i < sizeof ents / sizeof ents[0]) {
                *w++ = ents[i].c;
                r += ents[i].len;
            } else {
                *w++ = *r++;
            }
        }
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
    int err;
    if (bounce_fields_read(h, text, len, NULL, NULL, false, &err) >= 0 || err != BOUNCE_OK)
        return;
    /* Not a plain block of fields: GMime reads it as the header block of a
     * (body-less) message. */
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

size_t bounce__block_field_len(const char *l)
{
    const char *e = l;
    do {
        e = strchr(e, '\n');
    } while (e != NULL && (e[1] == ' ' || e[1] == '\t') && e++);
    return e ? (size_t)(e - l) : strlen(l);
}

/* Whether the line at l (in block) is a field name: its value holds needle. */
static bool bounce_block_line_has(const char *l, const char *name, size_t nl, int c0, const char *needle)
{
    if (g_ascii_tolower(*l) != c0 || strncasecmp(l, name, nl) != 0 || l[nl] != ':')
        return false;
    size_t n = bounce__block_field_len(l);
    return bounce__memistr(l + nl + 1, n - nl - 1, needle);
}

bool bounce__block_has(const char *block, const char *name, const char *needle)
{
    size_t nl = strlen(name);
    int c0 = g_ascii_tolower(name[0]);
    if (bounce_block_line_has(block, name, nl, c0, needle))
        return true;
    /* The other lines: only those after a LF whose first byte is the
     * name's, in either case (c0 | 0x20 is the mark of both), are tested,
     * 16 LFs at a time (a strchr() per line was most of the cost; any
     * match answers, so the order does not matter). */
    size_t len = strlen(block), i = 0;
    unsigned char mark = (unsigned char)(c0 | 0x20);
#ifdef __SSE2__
    const __m128i lf = _mm_set1_epi8('\n'), fold = _mm_set1_epi8(0x20), want = _mm_set1_epi8((char)mark);
    for (; len - i >= 16; i += 16) { /* block[i + 16] is at most the NUL */
        __m128i a = _mm_loadu_si128((const __m128i *)(block + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(block + i + 1));
        unsigned m = (unsigned)_mm_movemask_epi8(
            _mm_and_si128(_mm_cmpeq_epi8(a, lf), _mm_cmpeq_epi8(_mm_or_si128(b, fold), want)));
        for (; m != 0; m &= m - 1)
            if (bounce_block_line_has(block + i + (unsigned)__builtin_ctz(m) + 1, name, nl, c0, needle))
                return true;
    }
#endif
    for (; i < len; i++)
        if (block[i] == '\n' && (unsigned char)(block[i + 1] | 0x20) == mark &&
            bounce_block_line_has(block + i + 1, name, nl, c0, needle))
            return true;
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
    const char *end = text + len;
    for (const char *nl = memchr(text, '\n', len); nl != NULL && nl + 1 < end;
         nl = memchr(nl + 1, '\n', (size_t)(end - nl - 1)))
        if (nl[1] == '\n' || (nl[1] == '\r' && nl + 2 < end && nl[2] == '\n'))
            return (size_t)(nl + 1 - text);
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
    if (bounce__ieq(type, "message") || bounce__ieq(type, "text")) {
        bool is_text = bounce__ieq(type, "text");
        if (bounce__ieq(sub, "rfc822-headers") || bounce__ieq(sub, "rfc822") ||
            bounce__ieq(sub, "global-headers")) {
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
        if (bounce__ieq(sub, "delivery-status") ||
            bounce__ieq(sub, "global-delivery-status"))
            pt = BOUNCE_P_DS;
        else if (bounce__ieq(sub, "feedback-report"))
            pt = BOUNCE_P_FR;
        else if (is_text && bounce__ieq(sub, "html"))
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
/* Whether "/rfc822" is at q (q + 7 <= end) and ends a "message/rfc822"
 * ("message" in any case) that starts at r or later, on a line (from data
 * or a LF on) that starts with "Content-Type:" (any case). */
static bool bounce_rfc822_at(const char *data, const char *r, const char *q)
{
    if (q - r < 7 || memcmp(q, "/rfc822", 7) != 0 || strncasecmp(q - 7, "message", 7) != 0)
        return false;
    const char *ls = q - 7;
    while (ls > data && ls[-1] != '\n')
        ls--;
    return bounce__starts_ci(ls, "content-type:");
}

static const char bounce_relabel_to[] = "text/rfc822-headers";
#define BOUNCE_RELABEL_FROM 14 /* strlen("message/rfc822") */
#define BOUNCE_RELABEL_TO (sizeof bounce_relabel_to - 1)

/* Room for n bytes once relabelled: each relabelling turns 14 bytes into 19. */
static size_t bounce_relabel_room(size_t n)
{
    return n + n / BOUNCE_RELABEL_FROM * (BOUNCE_RELABEL_TO - BOUNCE_RELABEL_FROM);
}

/* Writes [body, end) at w with every returned message relabelled; returns
 * the end of what it wrote (at most bounce_relabel_room(end - body)). The
 * body is searched for "/rfc822" (a '/' with a '2' six bytes on, 32
 * positions at a time) in the same pass that copies it, instead of one
 * pass each: a block is stored where its bytes go so far, and a
 * relabelling moves what follows, which is then written again where it
 * now goes. No store reaches past the end of the whole output: that is at
 * least as far from the block as end is. */
static char *bounce_relabel(char *w, const char *body, const char *end)
{
    const char *r = body, *i = body; /* copied to w from r; searched up to i */
#ifdef __SSE2__
    const __m128i slash = _mm_set1_epi8('/'), two = _mm_set1_epi8('2');
    while (end - i >= 32 + 6) {
        __m128i a = _mm_loadu_si128((const __m128i *)i);
        __m128i b = _mm_loadu_si128((const __m128i *)(i + 6));
        __m128i c = _mm_loadu_si128((const __m128i *)(i + 16));
        __m128i d = _mm_loadu_si128((const __m128i *)(i + 22));
        _mm_storeu_si128((__m128i *)(w + (i - r)), a);
        _mm_storeu_si128((__m128i *)(w + (i - r) + 16), c);
        unsigned mask = (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, slash), _mm_cmpeq_epi8(b, two))) |
                        (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(c, slash), _mm_cmpeq_epi8(d, two))) << 16;
        i += 32;
        for (; mask != 0; mask &= mask - 1) {
            const char *q = i - 32 + __builtin_ctz(mask);
            if (bounce_rfc822_at(body, r, q)) {
                w += q - 7 - r;
                memcpy(w, bounce_relabel_to, BOUNCE_RELABEL_TO);
                w += BOUNCE_RELABEL_TO;
                r = i = q + 7;
                break;
            }
        }
    }
    /* [r, i) is stored; the last bytes (and without SSE2 all) are read one
     * by one, and the 7 before them copied again: they may be the "message"
     * of a "/rfc822" there */
    if (i - r > 7) {
        w += i - 7 - r;
        r = i - 7;
    }
#endif
    for (const char *q = i; end - q >= 7; q++) {
        if (*q == '/' && bounce_rfc822_at(body, r, q)) {
            memcpy(w, r, (size_t)(q - 7 - r));
            w += q - 7 - r;
            memcpy(w, bounce_relabel_to, BOUNCE_RELABEL_TO);
            w += BOUNCE_RELABEL_TO;
            r = q + 7;
        }
    }
    memcpy(w, r, (size_t)(end - r));
    return w + (end - r);
}

/* Offset of the header block: after an mbox envelope line ("From
 * MAILER-DAEMON Tue Jun ..."), which is no header field. */
static size_t bounce_mbox_skip(const char *data, size_t len)
{
    if (len <= 5 || memcmp(data, "From ", 5) != 0)
        return 0;
    const char *eol = memchr(data, '\n', len);
    return eol ? (size_t)(eol + 1 - data) : len;
}

/* The mail's own header block is read here, field by field, and GMime is
 * given only the fields that decide how the body is read (Content-Type,
 * Content-Transfer-Encoding), the blank line and the relabelled body. Most
 * fields of a report's header block (Received,
 * DKIM, ARC, X-...) are only ever read as text, and GMime would build an
 * object for each (a third of its parse time over the corpus). What needs
 * decoding is still GMime's: encoded words and charsets
 * (bounce_field_add), everything MIME. Returns the bytes for GMime
 * (malloc'd) and the offset of the body in data; NULL with *err == 0 when
 * a line of the block is no header field (then GMime reads it all). */
static char *bounce_top_read(struct bounce__doc *d, const char *data, size_t len, size_t *outlen,
                             size_t *mime_len, size_t *body_off, int *err)
{
    size_t hs = bounce_mbox_skip(data, len), mime;
    /* the MIME fields, the blank line and the body: never more than this */
    char *out = malloc(bounce_relabel_room(len - hs) + 2);
    if (out == NULL) {
        *err = BOUNCE_ENOMEM;
        return NULL;
    }
    ssize_t off = bounce_fields_read(&d->top, data + hs, len - hs, out, &mime, true, err);
    if (off < 0) {
        free(out);
        return NULL;
    }
    char *w = out + mime;
    *w++ = '\n';
    w = bounce_relabel(w, data + hs + off, data + len);
    *w = '\0';
    *outlen = (size_t)(w - out);
    *mime_len = mime;
    *body_off = hs + (size_t)off;
    return out;
}

/* When the header block is not plain fields: GMime reads it, from a copy
 * in which only the body is relabelled. */
static GMimeStream *bounce_whole_for_gmime(const char *data, size_t len)
{
    size_t hl = bounce_header_len(data, len);
    char *out = malloc(hl + bounce_relabel_room(len - hl) + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, data, hl);
    char *w = bounce_relabel(out + hl, data + hl, data + len);
    *w = '\0';
    GMimeStream *s = g_mime_stream_mem_new_with_byte_array(g_byte_array_new_take((guint8 *)out, (size_t)(w - out)));
    g_mime_stream_seek(s, (gint64)bounce_mbox_skip(data, len), GMIME_STREAM_SEEK_SET);
    return s;
}

/* The value of a MIME field as GMime reads it (unfolded, encoded words
 * decoded); g_malloc'd. */
static char *bounce_field_value(const struct bounce_field *f)
{
    return bounce_header_decode(f->value, f->value_len);
}

/* The top-level Content-Type and Content-Transfer-Encoding of fields, each
 * at most once and named exactly. False if one repeats, or a name has
 * blanks before its colon: GMime's parser has its own reading of those. */
static bool bounce_single_fields(const char *fields, size_t len, struct bounce_field *ct, struct bounce_field *cte)
{
    const char *p = fields, *end = fields + len;
    struct bounce_field f;
    int r;
    ct->name = cte->name = NULL;
    while ((r = bounce_next_field(&p, end, &f)) == 1) {
        struct bounce_field *slot = bounce_field_is(&f, "Content-Type")                ? ct
                                    : bounce_field_is(&f, "Content-Transfer-Encoding") ? cte
                                                                                       : NULL;
        if (slot == NULL)
            continue;
        if (slot->name != NULL || f.name + f.name_len + 1 != f.value)
            return false;
        *slot = f;
    }
    return r == 0;
}

/* The report's own "type/subtype" and report-type parameter, lower-cased;
 * no Content-Type (ct NULL) is text/plain. */
static void bounce_doc_set_type(struct bounce__doc *d, GMimeContentType *ct)
{
    const char *type = ct ? g_mime_content_type_get_media_type(ct) : "text";
    const char *sub = ct ? g_mime_content_type_get_media_subtype(ct) : "plain";
    const char *rt = ct ? g_mime_content_type_get_parameter(ct, "report-type") : NULL;
    /* what snprintf("%s/%s") wrote, cut to the same size: it cost more
     * than the rest of the function */
    size_t room = sizeof d->content_type - 1, n = 0;
    const char *piece[3] = {type ? type : "", "/", sub ? sub : ""};
    for (int k = 0; k < 3; k++) {
        size_t pl = strnlen(piece[k], room - n);
        memcpy(d->content_type + n, piece[k], pl);
        n += pl;
    }
    d->content_type[n] = '\0';
    if (rt != NULL)
        bounce__copy(d->report_type, sizeof d->report_type, rt);
    bounce__normalise(d->content_type);
    bounce__normalise(d->report_type);
}

/* A mail whose body is one text part: no Content-Type (text/plain by RFC
 * 2045), or text/plain or text/html, with no transfer encoding or base64
 * or quoted-printable. It has no MIME structure to find, and GMime's parser
 * would build nine objects to hand back the bytes after the header block.
 * What is MIME stays GMime's: the Content-Type is parsed by
 * g_mime_content_type_parse, the encoding named by GMime and decoded by
 * GMime's decoder (bounce_leaf_finish as for every part). Anything else
 * (multipart, message, uuencode, a field twice) returns false, untouched,
 * and GMime's parser reads the mail. */
static bool bounce_single_text(struct bounce__doc *d, const char *fields, size_t flen, char *body, size_t blen,
                               int *err)
{
    struct bounce_field ctf, ctef;
    if (!bounce_single_fields(fields, flen, &ctf, &ctef))
        return false;
    GMimeContentEncoding enc = GMIME_CONTENT_ENCODING_DEFAULT;
    if (ctef.name != NULL) {
        char *v = bounce_field_value(&ctef);
        enc = g_mime_content_encoding_from_string(v);
        bool named = v[0] != '\0';
        g_free(v);
        /* a name GMime does not know, or uuencode: GMime's way */
        if ((enc == GMIME_CONTENT_ENCODING_DEFAULT && named) ||
            (!bounce_encoding_identity(enc) && !bounce_encoding_stepped(enc)))
            return false;
    }
    GMimeContentType *ct = NULL;
    const char *sub = "plain", *cs = NULL;
    if (ctf.name != NULL) {
        char *v = bounce_field_value(&ctf);
        /* most reports are multipart: spare them a parse made twice */
        if (!bounce__starts_ci(v, "text/")) {
            g_free(v);
            return false;
        }
        ct = g_mime_content_type_parse(NULL, v);
        g_free(v);
        const char *type = g_mime_content_type_get_media_type(ct);
        sub = g_mime_content_type_get_media_subtype(ct);
        if (type == NULL || sub == NULL || !bounce__ieq(type, "text") ||
            (!bounce__ieq(sub, "plain") && !bounce__ieq(sub, "html"))) {
            g_object_unref(ct);
            return false;
        }
        cs = g_mime_content_type_get_parameter(ct, "charset");
    }
    bounce_doc_set_type(d, ct);
    bool html = bounce__ieq(sub, "html");
    char *raw = NULL;
    size_t n = 0;
    if (bounce_encoding_stepped(enc))
        raw = bounce_decode(enc, body, blen, &n);
    else if ((raw = malloc((n = blen) + 1)) != NULL)
        memcpy(raw, body, blen);
    char *text = raw ? bounce_leaf_finish(raw, n, cs, d->lim->max_text, &n) : NULL;
    if (ct != NULL)
        g_object_unref(ct);
    if (text == NULL) {
        *err = BOUNCE_ENOMEM;
        return true;
    }
    if (html) {
        bounce_strip_html(text);
        n = strlen(text);
    }
    *err = bounce_add_part(d, html ? BOUNCE_P_HTML : BOUNCE_P_TEXT, text, n);
    return true;
}

/* Nothing readable came out of the MIME structure (a multipart whose
 * boundary never occurs, a broken header): the raw body is read as text,
 * as a person would. */
static int bounce_raw_fallback(struct bounce__doc *d, const char *data, size_t len, size_t body_off)
{
    size_t kept = 0;
    for (size_t i = 0; i < d->nparts; i++)
        kept += d->parts[i].len;
    if (kept > 0 || body_off == 0 || body_off >= len)
        return BOUNCE_OK;
    size_t n = len - body_off;
    if (n > d->lim->max_text)
        n = d->lim->max_text;
    char *raw = bounce__strndup(data + body_off, n);
    if (raw == NULL)
        return BOUNCE_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (raw[i] == '\0')
            raw[i] = ' ';
    return bounce_add_part(d, BOUNCE_P_TEXT, raw, n);
}

int bounce__mime_parse(struct bounce__doc *d, const char *data, size_t len)
{
    pthread_once(&bounce_gmime_once, bounce_gmime_init);
    int rv = BOUNCE_OK;
    size_t olen = 0, mime_len = 0, body_off = 0;
    char *own = bounce_top_read(d, data, len, &olen, &mime_len, &body_off, &rv);
    if (rv != BOUNCE_OK)
        return rv;
    if (own != NULL && bounce_single_text(d, own, mime_len, own + mime_len + 1, olen - mime_len - 1, &rv)) {
        free(own);
        return rv != BOUNCE_OK ? rv : bounce_raw_fallback(d, data, len, body_off);
    }
    /* the copy is handed over as it is (GLib allocates with malloc) */
    GMimeStream *s = own ? g_mime_stream_mem_new_with_byte_array(g_byte_array_new_take((guint8 *)own, olen))
                         : bounce_whole_for_gmime(data, len);
    if (s == NULL)
        return BOUNCE_ENOMEM;
    GMimeParser *p = bounce_parser_take(s);
    /* The report is parsed as a MIME entity, not as a GMimeMessage: GMime
     * skips building address lists, dates and the message wrapper nobody
     * here reads. */
    GMimeObject *body = g_mime_parser_construct_part(p, NULL);
    if (body == NULL) {
        rv = BOUNCE_EPARSE;
        goto out;
    }
    if (own == NULL) {
        bounce_copy_headers(&d->top, body, false);
        gint64 he = g_mime_parser_get_headers_end(p);
        body_off = he > 0 ? (size_t)he : 0;
    }
    GMimeContentType *ct = g_mime_object_get_content_type(body);
    if (ct != NULL)
        bounce_doc_set_type(d, ct);
    struct bounce_walk wk = {.d = d};
    bounce_walk(&wk, body, 0, false);
    rv = wk.err;
    if (rv == BOUNCE_OK)
        rv = bounce_raw_fallback(d, data, len, body_off);
    g_object_unref(body);
out:
    bounce_parser_give(p, s);
    return rv;
}

size_t bounce_mbox_split(const char *data, size_t len, size_t **starts)
{
    *starts = NULL;
    if (bounce_mbox_skip(data, len) == 0) /* no envelope line: one mail */
        return 0;
    /* lines ending in bare CRs: split as LF (same offsets) */
    char *lf = bounce__cr_lines(data, len) ? bounce__cr_to_lf(data, len) : NULL;
    const char *text = lf ? lf : data;
    /* one mail unless a second envelope line follows the first */
    if (memmem(text, len, "\nFrom ", 6) == NULL) {
        free(lf);
        return 0;
    }
    pthread_once(&bounce_gmime_once, bounce_gmime_init);
    GMimeStream *s = g_mime_stream_mem_new_with_buffer(text, len);
    free(lf);
    GMimeParser *p = g_mime_parser_new_with_stream(s);
    g_mime_parser_set_format(p, GMIME_FORMAT_MBOX);
    size_t n = 0, cap = 0;
    size_t *v = NULL;
    while (!g_mime_parser_eos(p)) {
        GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
        if (m == NULL)
            break;
        g_object_unref(m);
        gint64 off = g_mime_parser_get_mbox_marker_offset(p);
        if (off < 0 || (size_t)off >= len || (n > 0 && (size_t)off <= v[n - 1]))
            break;
        if (n == cap) {
            size_t *nv = realloc(v, (cap ? cap * 2 : 8) * sizeof *nv);
            if (nv == NULL)
                break;
            v = nv;
            cap = cap ? cap * 2 : 8;
        }
        v[n++] = (size_t)off;
    }
    g_object_unref(p);
    g_object_unref(s);
    if (n < 2 || v[0] != 0) {
        free(v);
        return 0;
    }
    *starts = v;
    return n;
}
