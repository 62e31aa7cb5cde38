/* UTF-8 for text that leaves the node as JSON (API, webhooks): a remote
 * server's reply, an address or a bounce's diagnostic may hold any bytes,
 * and JSON strings must be UTF-8. The state keeps the bytes as they came;
 * only what is shown is repaired. */
#ifndef RC_UTF8_H
#define RC_UTF8_H

#include <stdbool.h>

/* Well-formed UTF-8 (RFC 3629: no overlongs, surrogates or code points
 * past U+10FFFF). */
bool rc_utf8_valid(const char *s);

/* A malloc'd copy of s with every ill-formed sequence replaced by U+FFFD
 * (one per maximal invalid subpart, as Unicode recommends); NULL when out
 * of memory. */
char *rc_utf8_repair(const char *s);

#endif
