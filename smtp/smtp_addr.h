/* SMTP paths and parameters (RFC 5321 4.1.2, RFC 6531 for SMTPUTF8).
 * Bounded: a path is at most 256 octets, a local part 64, a domain 255.
 * Refuses what open relays were once tricked with: source routes
 * (<@a:b@c>), percent hacks (a%b@c), bang paths (a!b@c), quoted local parts
 * hiding an @, trailing dots and address literals. */
#ifndef SMTP_ADDR_H
#define SMTP_ADDR_H

#include <stdbool.h>
#include <stddef.h>

enum smtp_addr_err {
    SMTP_ADDR_OK = 0,
    SMTP_ADDR_ESYNTAX = -1,   /* not <...>, bad characters */
    SMTP_ADDR_ETOOLONG = -2,
    SMTP_ADDR_EROUTE = -3,    /* source route */
    SMTP_ADDR_ERELAYHACK = -4,/* %, ! or quoted @ in the local part */
    SMTP_ADDR_EDOMAIN = -5,   /* missing, trailing dot, literal, bad label */
    SMTP_ADDR_EUTF8 = -6,     /* 8-bit without SMTPUTF8 */
};
const char *smtp_addr_strerror(int err);

/* Parses "<path> params" (after "FROM:" or "TO:", leading spaces allowed).
 * Writes the mailbox without brackets into out ("" for <> when allow_null)
 * and points *params at the rest. */
int smtp_addr_parse_path(const char *arg, bool allow_null, bool utf8, char *out, size_t outlen,
                         const char **params);

/* Domain part of a mailbox (after the last @), or NULL. */
const char *smtp_addr_domain(const char *mailbox);

/* Decodes xtext (RFC 3461 4: "+XX" escapes) into out; -1 if malformed. */
int smtp_xtext_decode(const char *in, char *out, size_t outlen);

#endif
