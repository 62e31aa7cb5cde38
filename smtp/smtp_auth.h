/* SMTP AUTH users (RFC 4954, PLAIN and LOGIN, offered only under TLS).
 *
 * Users file: one user per line, "#" comments allowed:
 *     NAME:pbkdf2-sha256:ITERATIONS:SALT_BASE64:HASH_BASE64
 * (PBKDF2-HMAC-SHA256 from OpenSSL, 32-byte hash, 16-byte random salt).
 * `ricochetctl passwd NAME` prints such a line for a password read from
 * standard input. */
#ifndef SMTP_AUTH_H
#define SMTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

typedef struct smtp_users smtp_users;

#define SMTP_AUTH_DEFAULT_ITERATIONS 200000

/* Loads a users file; NULL with err on failure (which line, what is wrong). */
smtp_users *smtp_users_load(const char *path, char *err, size_t errlen);
void smtp_users_free(smtp_users *u);
/* Constant-time check of a user's password (unknown users cost the same). */
bool smtp_users_check(const smtp_users *u, const char *user, const char *password);
/* Base64 (RFC 4648, padded, as in AUTH and the users file) decoded by
 * OpenSSL into out (room for outlen bytes); the length, or -1 if in is not
 * base64 or does not fit. */
int smtp_b64_decode(const char *in, unsigned char *out, size_t outlen);
/* Formats a users-file line for name and password; -1 on error. */
int smtp_users_hash_line(const char *name, const char *password, unsigned iterations, char *out, size_t outlen);

#endif
