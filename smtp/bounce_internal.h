/* Shared inside the bounce library only (bounce__ prefix). No GLib here
 * either: bounce_mime.c turns GMime objects into these plain structures. */
#ifndef SMTP_BOUNCE_INTERNAL_H
#define SMTP_BOUNCE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtp/bounce.h"

enum bounce__ptype {
    BOUNCE_P_TEXT = 0,   /* text/plain (or a bare body) */
    BOUNCE_P_HTML,       /* text/html, tags stripped */
    BOUNCE_P_DS,         /* message/delivery-status, message/global-delivery-status */
    BOUNCE_P_FR,         /* message/feedback-report */
};

struct bounce__part {
    enum bounce__ptype type;
    char *text;          /* UTF-8 (as far as the charset allowed), NUL-terminated */
    size_t len;
};

/* Headers are found by the hash of their name: a lookup visits only the
 * headers of its bucket (a report's analysis asks some hundred times). */
#define BOUNCE_HDR_BUCKETS 32
struct bounce__hkey {
    uint32_t key;  /* bounce__hdr_key() of the name */
    uint32_t next; /* 1 + index of the next header of the same bucket, 0: none */
    uint32_t fold; /* 1 + bytes of a value still folded (made one line when
                    * first looked up), 0: the value is ready */
    bool own;      /* name and value are one malloc'd block, else in an arena */
};

struct bounce__hdrs {
    struct bounce_header *v;  /* name and value: see own in k */
    struct bounce__hkey *k;   /* per header */
    void *arenas;             /* header blocks' text the fields point into (bounce_mime.c) */
    uint32_t head[BOUNCE_HDR_BUCKETS], tail[BOUNCE_HDR_BUCKETS]; /* 1 + index, 0: none */
    size_t n, cap, max;
};

struct bounce__doc {
    struct bounce__hdrs top;      /* headers of the mail itself; its values are
                                   * unfolded on first lookup: read them only
                                   * through bounce__hdrs_next/get, never top.v */
    struct bounce__hdrs orig;     /* headers of the returned message (bounce__doc_orig) */
    bool have_orig;               /* orig, or orig_block, holds them */
    char *orig_block;             /* their text, parsed only when asked for */
    struct bounce__part *parts;
    size_t nparts, capparts;
    char *human;                  /* cached bounce__human_text(), or NULL */
    size_t human_len;
    char content_type[64];        /* of the mail, lower case "type/subtype" */
    char report_type[48];         /* report-type= parameter, lower case */
    const struct bounce_limits *lim;
};

/* Per recipient, what the format reader learnt besides struct bounce_rcpt. */
struct bounce__rx {
    enum bounce_smtp_cmd cmd;     /* the command that failed, when the report says */
    char dtype[16];               /* Diagnostic-Code type: "smtp", "x-unix", ... */
    enum bounce_reason hint;      /* the MTA's own wording says this, or NONE */
    int reply;                    /* reply code the report gives apart from the text, or 0 */
};

struct bounce_report {
    enum bounce_kind kind;
    char feedback_type[32];
    char feedback_mail_from[256]; /* ARF Original-Mail-From, or "" */
    struct bounce_rcpt *v;
    struct bounce__rx *rx;
    char **ctx;                   /* per recipient: human text around its address */
    size_t n, cap, max;
    struct bounce__hdrs orig;     /* kept headers of the returned message */
    char *orig_block;             /* or their text, parsed when first asked for */
};

/* bounce.c */
/* The first line break of data is a bare CR (classic Mac OS files). */
bool bounce__cr_lines(const char *data, size_t len);
/* A malloc'd copy of data (NUL-terminated) with every bare CR made LF. */
char *bounce__cr_to_lf(const char *data, size_t len);
int bounce__report_add(bounce_report *r, const char *recipient, const char *original,
                       const char *action, const char *status, const char *diag,
                       const char *remote_mta, const char *ctx);

/* bounce_dsn.c: RFC 3464, RFC 5965 and providers' structured formats */
int bounce__dsn_parse(struct bounce__doc *d, bounce_report *r);
/* Delivery-status fields inside a text part; true if recipients were added
 * (*rv: an error). */
bool bounce__dsn_in_text(struct bounce__doc *d, bounce_report *r, int *rv);
int bounce__arf_parse(struct bounce__doc *d, bounce_report *r);
bool bounce__provider_complaint(struct bounce__doc *d, bounce_report *r);
bool bounce__provider_json(struct bounce__doc *d, bounce_report *r);

/* bounce_ndr.c: non-standard reports */
bool bounce__ndr_looks_like(const struct bounce__doc *d);
int bounce__ndr_parse(struct bounce__doc *d, bounce_report *r);
/* Fills r->ctx[i] with the text near each recipient's address. */
int bounce__dsn_context(struct bounce__doc *d, bounce_report *r);
/* The human-readable text of the report, cut before the returned message;
 * owned by d (computed once), NULL when out of memory. */
const char *bounce__human_text(struct bounce__doc *d, size_t *len);

/* "No reason yet" inside the library (never reported). */
#define BOUNCE_R_NONE ((enum bounce_reason)BOUNCE_R_COUNT)

/* A NULL-terminated list of string literals. */
#define PH(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Bytes of the returned message read for its headers. */
#define BOUNCE_ORIG_SCAN (64u << 10)

/* Bytes of diagnostic text that the classifier reads at most. */
#define BOUNCE_DIAG_MAX 8192

/* What is known about one recipient when its reason is decided. Strings are
 * never NULL; diag is lower-cased and squeezed (bounce__diag_clean). */
struct bounce__fact {
    const char *diag;
    char status[16];            /* enhanced status "x.y.z" or "" */
    int reply;                  /* SMTP reply code or 0 */
    enum bounce_smtp_cmd cmd;
    const char *dtype;          /* diagnostic type: "smtp", "x-unix", ... or "" */
    const char *action;         /* failed, delayed, ... lower case, or "" */
    const char *rhost;          /* remote host, lower case, or "" */
    const char *lhost;          /* reporting host, lower case, or "" */
    const char *dest;           /* recipient's domain, lower case, or "" */
    enum bounce_reason hint;    /* what the reporting MTA's format says, or NONE */
};

/* bounce_reason.c: the decision */
enum bounce_reason bounce__decide(const struct bounce__fact *f);
/* Reason an enhanced status code names by itself, or NONE. */
enum bounce_reason bounce__status_reason(const char *status);
/* 1 hard, 0 soft, -1 not a bounce. */
int bounce__hard(enum bounce_reason r, const char *status, const char *diag);
bool bounce__phrase_in(const char *text, const char *phrase);
bool bounce__phrase_any(const char *text, const char *const *list);
bool bounce__phrase_any_ci(const char *text, const char *const *list);

/* bounce_lhost.c: the reporting MTA's own wording -> hints and commands.
 * text: the human-readable part of the report. */
void bounce__lhost_read(const struct bounce__doc *d, bounce_report *r, const char *text);
/* The headers carry the signature of an MTA bounce__lhost_read() knows. */
bool bounce__lhost_known(const struct bounce__doc *d);

/* bounce_rhost.c: remote providers' own error tables; NONE when the
 * recipient's provider is not known or says nothing we know. */
enum bounce_reason bounce__rhost(const struct bounce__fact *f);

/* bounce_mime.c */
int bounce__mime_parse(struct bounce__doc *d, const char *data, size_t len);
void bounce__doc_free(struct bounce__doc *d);
/* Parses a block of header lines (text) with GMime into h. */
void bounce__parse_header_block(struct bounce__hdrs *h, const char *text, size_t len);
/* The returned message's headers come as text (text/rfc822-headers, or
 * inline in the report): kept as text, parsed when first needed. */
int bounce__doc_set_orig_block(struct bounce__doc *d, const char *text, size_t len);
const struct bounce__hdrs *bounce__doc_orig(struct bounce__doc *d);
/* The header block text has a header name: whose value contains needle. */
bool bounce__block_has(const char *block, const char *name, const char *needle);
/* Length of the field that starts at l in a header block given as text,
 * with its continuation lines (up to its last line's LF, or the end). */
size_t bounce__block_field_len(const char *l);
int bounce__hdrs_add(struct bounce__hdrs *h, const char *name, const char *value);
void bounce__hdrs_free(struct bounce__hdrs *h); /* emptied; max kept */
/* A header name's hash, ASCII case folded (equal for names equal but for
 * case): its length and three of its bytes. A lookup compares names only
 * when the hashes are equal, and this cheap one leaves few such pairs among
 * a header block's names (FNV-1a over every byte of the name was 2 % of a
 * report's instructions). */
static inline uint32_t bounce__hdr_key_n(const char *name, size_t n)
{
    if (n == 0)
        return 0;
    uint32_t a = (unsigned char)name[0] | 0x20u, b = (unsigned char)name[n / 2] | 0x20u,
             c = (unsigned char)name[n - 1] | 0x20u;
    return ((uint32_t)n * 2654435761u) ^ (a << 16) ^ (b << 8) ^ c;
}
static inline uint32_t bounce__hdr_key(const char *name)
{
    return bounce__hdr_key_n(name, strlen(name));
}
/* The value of the next field called name at or after *i (then *i is past
 * it), or NULL; key is bounce__hdr_key(name). */
const char *bounce__hdrs_next(const struct bounce__hdrs *h, const char *name, uint32_t key, size_t *i);
/* The value of the first field called name, or NULL. */
static inline const char *bounce__hdrs_get(const struct bounce__hdrs *h, const char *name)
{
    size_t i = 0;
    return bounce__hdrs_next(h, name, bounce__hdr_key(name), &i);
}

/* bounce_util.c: small string helpers */
/* The enhanced status a free text gives (the most telling of several);
 * out >= 16 bytes. */
bool bounce__status_find(const char *text, char *out, size_t outlen);
void bounce__status_prefer(char *out, size_t outlen, const char *field, const char *intext, int reply);
/* First SMTP reply code of class cls ('2','4','5'; 0: any) in text, or 0. */
int bounce__reply_find(const char *text, char cls);
enum bounce_smtp_cmd bounce__cmd_find(const char *text);
/* A diagnostic as the classifier reads it (one line, reply prefixes folded,
 * HTML dropped, blanks squeezed; cut_boundary: cut at " --"). malloc'd. */
char *bounce__diag_clean(const char *raw, size_t len, bool cut_boundary);
/* The same, with the status (cs, 16 bytes) and reply code (*cr) of the
 * one-line text: those of raw itself when len <= BOUNCE_DIAG_MAX. */
char *bounce__diag_clean_codes(const char *raw, size_t len, bool cut_boundary, char cs[16], int *cr);
void bounce__remove_all(char *s, const char *needle);
/* The remote host a diagnostic names ("host mx.example.net[192.0.2.1]
 * said:", "while talking to ..."); out lower-cased; false if none. */
bool bounce__host_find(const char *text, char *out, size_t outlen);
void bounce__lower(char *s);
/* A string literal and its length, as two arguments or initialisers. */
#define BOUNCE_LIT(s) s, sizeof(s) - 1
/* Each byte with ASCII capitals made small (the C locale's tolower()). */
extern const unsigned char bounce__fold[256];
/* strncasecmp(a, b, n) == 0 of the C locale, inline: the names compared
 * (media types, charsets, header names) mostly differ at their first
 * byte, where the library call's set-up would not be done yet. */
static inline bool bounce__ieq_n(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (bounce__fold[x] != bounce__fold[y])
            return false;
        if (x == '\0')
            break;
    }
    return true;
}
/* strcasecmp(a, b) == 0 of the C locale. */
static inline bool bounce__ieq(const char *a, const char *b)
{
    return bounce__ieq_n(a, b, SIZE_MAX);
}
char *bounce__strndup(const char *s, size_t n);
const char *bounce__stristr(const char *hay, const char *needle);
const char *bounce__memistr(const char *hay, size_t len, const char *needle);
/* snprintf(dst, size, "%s", src) without the formatter (a tenth of its
 * cost): src cut to size - 1 bytes, always terminated; size > 0. */
void bounce__copy(char *dst, size_t size, const char *src);
/* memmem(), faster on the long texts the analyser scans. */
const char *bounce__memmem(const char *hay, size_t len, const char *needle, size_t nl);
bool bounce__starts_ci(const char *s, const char *prefix);
/* Finds the first "ddd" reply code (2xx..5xx) standing alone; 0 if none. */
int bounce__find_code(const char *s, const char **where);
/* Finds the first RFC 3463 status "c.s.d" (c 2,4,5) in s; writes it to out
 * (>= 16 bytes); returns true if found. */
bool bounce__find_status(const char *s, char *out, size_t outlen);
/* Copies an address out of s (strips "rfc822;", <>, quotes, blanks),
 * lower-cases the domain. Returns a malloc'd string or NULL if s holds
 * no plausible address. */
char *bounce__clean_addr(const char *s, size_t n);
/* Lower-cases ASCII in place and squeezes white space to single spaces. */
void bounce__normalise(char *s);

#endif
