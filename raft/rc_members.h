/* Membership changes: from the raft configuration the cluster holds to the
 * member table of the configuration file, one libraft change at a time.
 * Pure planning (no I/O); the leader runs the steps (rc_raft_change). */
#ifndef RC_MEMBERS_H
#define RC_MEMBERS_H

#include <stddef.h>
#include <stdint.h>

#include "raft/rc_raft.h"

struct rc_member_step {
    enum rc_change what;
    uint64_t id;
    char raft_addr[64]; /* RC_CHANGE_ADD */
    int role;           /* RC_CHANGE_ASSIGN */
};

#define RC_MEMBERS_MAX_STEPS (3 * RC_MAX_MEMBERS)

/* Fills steps (at most RC_MEMBERS_MAX_STEPS) that turn `have` into `want`,
 * in an order that adds before it removes, so the voters of either table
 * keep their majority throughout: new members (each added as a spare,
 * then given its role; libraft catches a new voter up first), then
 * promotions, then demotions, then removals, and a change of the leader
 * itself (removal or demotion) last of all: libraft has a leader step down
 * once such a change commits. Returns the number of steps, or -1 with err
 * set when the change cannot be planned: a member's raft address differs
 * (libraft cannot move a server: remove it, then add it under a new id), or
 * the table has no voter. */
int rc_members_plan(const struct rc_raft_server *have, size_t n_have, const struct rc_member *want,
                    size_t n_want, uint64_t leader, struct rc_member_step *steps, char *err, size_t errlen);

const char *rc_members_role_name(int role);

#endif
