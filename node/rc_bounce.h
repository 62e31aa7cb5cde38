/* Bounce and complaint intake (node/rc_bounce.c, docs/BOUNCES.md). */
#ifndef RC_BOUNCE_H
#define RC_BOUNCE_H

#include <stddef.h>
#include <stdint.h>

#include "node/rc_node.h"

struct smtp_envelope;
struct smtp_accept;

/* 1: every recipient is a VERP address on bounce.domain or the feedback
 * address (intake); 0: none is (a message to relay); -1: a mix. */
int rc_bounce_envelope(const rc_node *n, const struct smtp_envelope *env);

/* Analyses the report, proposes what it means, completes tok (250 after
 * commit, 451 otherwise). */
void rc_bounce_intake(rc_node *n, struct smtp_accept *tok, const char *id, const struct smtp_envelope *env,
                      const uint8_t *body, size_t len);

/* GET /v1/bounces (node/rc_api_bounces.c). */
void rc_api_bounces_routes(rc_node *n);

#endif
