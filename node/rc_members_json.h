/* The member table in the body of POST /v1/cluster/members/sync:
 *   {"members": [{"id": 1, "raft": "HOST:PORT", "role": "voter"}, ...]}
 * (docs/API.md). Network bytes: parsed by jansson, checked here. */
#ifndef RC_MEMBERS_JSON_H
#define RC_MEMBERS_JSON_H

#include <stddef.h>

#include <jansson.h>

#include "raft/rc_raft.h"

/* Fills out[0..*n) (room for RC_MAX_MEMBERS): ids > 0 and unique, raft
 * addresses that fit, roles voter/standby/spare. -1 with err set when the
 * body is not such a table (then *n is meaningless). */
int rc_members_from_json(const json_t *body, struct rc_member *out, size_t *n, char *err, size_t errlen);

#endif
