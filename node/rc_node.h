/* The daemon's wiring: one libuv loop owns the replicated core (raft/), the
 * peer channel, the HTTP API and, as they land, the SMTP and DNS services.
 * smtp/ and dns/ know nothing of raft/; this module translates. */
#ifndef RC_NODE_H
#define RC_NODE_H

#include <stddef.h>
#include <uv.h>

#include "node/rc_config.h"

typedef struct rc_node rc_node;

int rc_node_start(rc_node **out, uv_loop_t *loop, const struct rc_config *cfg,
                  char *err, size_t errlen);
/* Prints one line per listener ("where it listens") to stdout. */
void rc_node_print_listeners(const rc_node *n);
/* Graceful stop: stop accepting, let in-flight work finish, close raft;
 * then cb. Afterwards, once uv_run() has returned, rc_node_free(). */
void rc_node_stop(rc_node *n, void (*cb)(void *data), void *data);
void rc_node_free(rc_node *n);

#endif
