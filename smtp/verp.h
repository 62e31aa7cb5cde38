/* VERP return paths: b+<token>@<bounce.domain>.
 *
 * The token names a message (its id, opaque bytes) and one recipient (its
 * index in the message) and carries a truncated HMAC-SHA256 under the bounce
 * secret, so that a bounce to the address can be mapped back to the recipient
 * and a forged or altered address is refused. The token is lowercase base32
 * (RFC 4648 alphabet, no padding) and decodes case-insensitively, because
 * some MTAs lowercase local parts. Format in docs/EGRESS.md. */
#ifndef SMTP_VERP_H
#define SMTP_VERP_H

#include <stddef.h>
#include <stdint.h>

enum verp_err {
    VERP_OK = 0,
    VERP_EINVAL = -22,
    VERP_ENOMEM = -12,
    VERP_ETOOLONG = -3000, /* encode: local part over 64 octets or buffer too small */
    VERP_EFORMAT,          /* decode: not "b+<token>@<domain>" */
    VERP_EDOMAIN,          /* decode: domain is not the expected bounce domain */
    VERP_EENCODING,        /* decode: a character outside base32, or non-canonical */
    VERP_ETRUNCATED,       /* decode: token shorter than the fixed parts */
    VERP_EVERSION,         /* decode: unknown format version */
    VERP_EBADMAC,          /* decode: MAC mismatch (forged, altered, wrong key) */
};
const char *verp_strerror(int err);

#define VERP_PREFIX "b+"
#define VERP_VERSION 1
#define VERP_ID_MAX 40          /* bytes of message id */
#define VERP_MAC_DEFAULT 10     /* bytes of HMAC kept (80 bits) */
#define VERP_MAC_MIN 8
#define VERP_SECRET_MIN 16      /* bytes */
#define VERP_LOCAL_MAX 64       /* RFC 5321 §4.5.3.1.1 */
/* Recipient index of a message-level return path: the transaction carried
 * several recipients, and a bounce is mapped by the recipient it names. */
#define VERP_RCPT_MESSAGE 0xFFFFFFFFu

struct verp_key {
    const uint8_t *secret; /* bounce.secret; at least VERP_SECRET_MIN bytes */
    size_t secret_len;
    size_t mac_len;        /* 0 → VERP_MAC_DEFAULT; VERP_MAC_MIN..32 */
};

/* Writes "b+<token>@<domain>" into dst (NUL-terminated). */
int verp_encode(const struct verp_key *key, const char *domain,
                const void *msg_id, size_t msg_id_len, uint32_t rcpt_index,
                char *dst, size_t dst_size);

/* Decodes addr (with or without <>; domain compared case-insensitively with
 * expected_domain unless that is NULL). On success copies the message id
 * (NUL-terminated, *id_len without the NUL) and the recipient index. */
int verp_decode(const struct verp_key *key, const char *expected_domain,
                const char *addr, size_t addr_len,
                char *id, size_t id_size, size_t *id_len, uint32_t *rcpt_index);

#endif
