/* Shared inside the bounce library only (bounce__ prefix). No GLib here
 * either: bounce_mime.c turns GMime objects into these plain structures. */
#ifndef SMTP_BOUNCE_INTERNAL_H
#define SMTP_BOUNCE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

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

struct bounce__hdrs {
    struct bounce_header *v;  /* name/value strings owned (malloc) */
    size_t n, cap, max;
};

struct bounce__doc {
    struct bounce__hdrs top;      /* headers of the mail itself */
    struct bounce__hdrs orig;     /* headers of the returned message */
    bool have_orig;
    char *orig_body;              /* start of the returned message's body text, bounded */
    struct bounce__part *parts;
    size_t nparts, capparts;
    char content_type[64];        /* of the mail, lower case "type/subtype" */
    char report_type[48];         /* report-type= parameter, lower case */
    const struct bounce_limits *lim;
};

struct bounce_report {
    enum bounce_kind kind;
    char feedback_type[32];
    struct bounce_rcpt *v;
    char **ctx;                   /* per recipient: human text around its address */
    size_t n, cap, max;
    struct bounce__hdrs orig;
};

/* bounce.c */
int bounce__report_add(bounce_report *r, const char *recipient, const char *original,
                       const char *action, const char *status, const char *diag,
                       const char *remote_mta, const char *ctx);

/* bounce_dsn.c: RFC 3464, RFC 5965 and providers' structured formats */
int bounce__dsn_parse(struct bounce__doc *d, bounce_report *r);
int bounce__arf_parse(struct bounce__doc *d, bounce_report *r);
bool bounce__provider_complaint(struct bounce__doc *d, bounce_report *r);
bool bounce__provider_json(struct bounce__doc *d, bounce_report *r);

/* bounce_ndr.c: non-standard reports */
bool bounce__ndr_looks_like(const struct bounce__doc *d);
int bounce__ndr_parse(struct bounce__doc *d, bounce_report *r);
/* Fills r->ctx[i] with the text near each recipient's address. */
int bounce__dsn_context(struct bounce__doc *d, bounce_report *r);

/* bounce_classify.c */
enum bounce_reason bounce__classify_text(const char *normalised_text);
/* The SMTP command named last in a diagnostic or transcript. */
enum bounce_smtp_cmd bounce__find_command(const char *text);

/* bounce_mime.c */
int bounce__mime_parse(struct bounce__doc *d, const char *data, size_t len);
void bounce__doc_free(struct bounce__doc *d);
/* Parses a block of header lines (text) with GMime into h. */
void bounce__parse_header_block(struct bounce__hdrs *h, const char *text, size_t len);
int bounce__hdrs_add(struct bounce__hdrs *h, const char *name, const char *value);
const char *bounce__hdrs_get(const struct bounce__hdrs *h, const char *name);

/* bounce_util.c: small string helpers */
char *bounce__strndup(const char *s, size_t n);
const char *bounce__stristr(const char *hay, const char *needle);
const char *bounce__memistr(const char *hay, size_t len, const char *needle);
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
