/* Open and click tracking (DESIGN §1, docs/TRACKING.md).
 *
 * A message submitted with the field "X-Ricochet-Track: opens, clicks"
 * is delivered to each recipient as its own copy: an open pixel is added to
 * every HTML part and the part's http(s) links point at the tracking
 * endpoint. Each URL names the message, the recipient's index and (clicks)
 * the link's target, and carries a truncated HMAC-SHA256 under the tracking
 * secret, so that the endpoint records events only for URLs it made and is
 * no open redirector:
 *
 *   BASE/t/o/<id>/<rcpt>/<mac>.gif
 *   BASE/t/c/<id>/<rcpt>/<mac>/<target, base64url>
 *
 * mac = base64url(HMAC-SHA256(secret, "ricochet-track" 0 event 0 id 0 rcpt
 * 0 target)[0..16)), event "o" or "c", rcpt in decimal.
 *
 * MIME (parts, transfer encodings, writing the copy) is GMime's; HTML is
 * gumbo's (the WHATWG parser): it gives each href's byte span, and only
 * those spans change, the rest of the HTML stays as the sender wrote it. */
#ifndef SMTP_TRACK_H
#define SMTP_TRACK_H

#include <stddef.h>
#include <stdint.h>

enum track_err {
    TRACK_OK = 0,
    TRACK_EINVAL = -22,
    TRACK_ENOMEM = -12,
    TRACK_EPARSE = -3100, /* rewrite: GMime could not read the message */
    TRACK_ENOTRACK,       /* parse: not a tracking path */
    TRACK_EBADMAC,        /* parse: signature does not match (forged, altered, other key) */
};
const char *track_strerror(int err);

#define TRACK_HEADER "X-Ricochet-Track"
#define TRACK_OPENS 1u
#define TRACK_CLICKS 2u
#define TRACK_ID_MAX 64        /* bytes of a message id: [A-Za-z0-9._-] */
#define TRACK_TARGET_MAX 2048  /* bytes of a link's target URL */
#define TRACK_SECRET_MIN 16
#define TRACK_URL_MAX 3072     /* longest URL this module writes (base up to 256) */
#define TRACK_BASE_MAX 256

struct track_key {
    const uint8_t *secret; /* tracking.secret, at least TRACK_SECRET_MIN bytes */
    size_t secret_len;
    const char *base;      /* public URL the endpoint is reached at, no trailing '/' */
};

/* What the message's header block asks for (TRACK_OPENS | TRACK_CLICKS):
 * the X-Ricochet-Track field's words "opens", "clicks", "all"; 0 when the
 * field is absent or says neither. Reads at most the first 64 KiB. */
unsigned track_wanted(const char *msg, size_t len);

struct track_limits {
    size_t max_html;  /* decoded bytes of one HTML part; larger ones are left as they are */
    size_t max_links; /* links rewritten per part; later ones are left as they are */
};

struct track_result {
    size_t html_parts; /* rewritten */
    size_t links;      /* rewritten */
    size_t skipped;    /* HTML parts left alone (too large, not an ASCII-compatible charset) */
};

/* The copy of msg for recipient rcpt of message id: pixel and links in each
 * inline text/html part (not attachments, not inside attached messages),
 * rewritten parts re-encoded quoted-printable unless base64, the
 * X-Ricochet-Track field removed, CRLF line ends. *out is malloc'd.
 * Line ends of the input may be CRLF or LF. */
int track_rewrite(const struct track_key *key, const char *id, uint32_t rcpt, unsigned what, const char *msg,
                  size_t len, const struct track_limits *lim, char **out, size_t *outlen, struct track_result *res);

/* Writes an event's URL into dst: TRACK_OPENS (target NULL) or
 * TRACK_CLICKS (target an http:// or https:// URL). */
int track_url(const struct track_key *key, unsigned event, const char *id, uint32_t rcpt, const char *target,
              char *dst, size_t dstlen);

struct track_hit {
    unsigned event; /* TRACK_OPENS or TRACK_CLICKS */
    char id[TRACK_ID_MAX + 1];
    uint32_t rcpt;
    char target[TRACK_TARGET_MAX + 1]; /* clicks */
};

/* Reads a request path ("/t/o/..." or "/t/c/..."; network bytes) and
 * checks its signature. */
int track_parse(const struct track_key *key, const char *path, struct track_hit *out);

#endif
