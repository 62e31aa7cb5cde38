/* The body spool: every node keeps the body of each accepted message,
 * written when the Accept entry is applied, as a record appended to a
 * segment file (rc_spool.c explains the format and why). Bodies are made
 * durable before a snapshot lets libraft drop the log entries that carried
 * them. */
#ifndef RC_SPOOL_H
#define RC_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rc_spool rc_spool;

int rc_spool_open(rc_spool **out, const char *dir, char *err, size_t errlen);
void rc_spool_close(rc_spool *s);

/* Writes the body (not yet synced); -1 on error (logged). */
int rc_spool_put(rc_spool *s, const char *id, const uint8_t *body, size_t len);
/* Makes every body written since the last sync durable. */
int rc_spool_sync(rc_spool *s);
/* Reads a body and checks it against sha256; malloc'd into *out. -1: absent
 * or corrupt. */
int rc_spool_get(rc_spool *s, const char *id, const uint8_t sha256[32], uint8_t **out, size_t *len);
bool rc_spool_has(rc_spool *s, const char *id);
int rc_spool_remove(rc_spool *s, const char *id);
/* Segment size before a new one is started (tests); 0: 64 MiB. */
void rc_spool_set_segment_max(rc_spool *s, uint64_t bytes);

#endif
