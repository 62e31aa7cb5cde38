/* Membership planning (rc_members.h). */
#include <stdio.h>
#include <string.h>

#include "raft/rc_members.h"

const char *rc_members_role_name(int role)
{
    switch (role) {
    case RC_ROLE_VOTER: return "voter";
    case RC_ROLE_STANDBY: return "standby";
    case RC_ROLE_SPARE: return "spare";
    default: return "?";
    }
}

static const struct rc_raft_server *have_of(const struct rc_raft_server *have, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (have[i].id == id)
            return &have[i];
    return NULL;
}

static const struct rc_member *want_of(const struct rc_member *want, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (want[i].id == id)
            return &want[i];
    return NULL;
}

static struct rc_member_step *step(struct rc_member_step *steps, int *n, enum rc_change what, uint64_t id)
{
    struct rc_member_step *s = &steps[(*n)++];
    memset(s, 0, sizeof *s);
    s->what = what;
    s->id = id;
    return s;
}

int rc_members_plan(const struct rc_raft_server *have, size_t n_have, const struct rc_member *want,
                    size_t n_want, uint64_t leader, struct rc_member_step *steps, char *err, size_t errlen)
{
    if (n_have > RC_MAX_MEMBERS || n_want > RC_MAX_MEMBERS) {
        snprintf(err, errlen, "more than %d members", RC_MAX_MEMBERS);
        return -1;
    }
    size_t voters = 0;
    for (size_t i = 0; i < n_want; i++)
        voters += want[i].role == RC_ROLE_VOTER;
    if (voters == 0) {
        snprintf(err, errlen, "the member table has no voter");
        return -1;
    }
    for (size_t i = 0; i < n_want; i++) {
        const struct rc_raft_server *h = have_of(have, n_have, want[i].id);
        if (h != NULL && strcmp(h->raft_addr, want[i].raft_addr) != 0) {
            snprintf(err, errlen,
                     "node %llu: raft address %s in the configuration, %s in the cluster (libraft cannot move "
                     "a server: remove it, then add it back under a new id)",
                     (unsigned long long)want[i].id, want[i].raft_addr, h->raft_addr);
            return -1;
        }
    }
    int n = 0;
    for (size_t i = 0; i < n_want; i++) /* new members */
        if (have_of(have, n_have, want[i].id) == NULL) {
            struct rc_member_step *s = step(steps, &n, RC_CHANGE_ADD, want[i].id);
            snprintf(s->raft_addr, sizeof s->raft_addr, "%s", want[i].raft_addr);
            if (want[i].role != RC_ROLE_SPARE)
                step(steps, &n, RC_CHANGE_ASSIGN, want[i].id)->role = want[i].role;
        }
    for (int pass = 0; pass < 2; pass++) /* promotions, then demotions */
        for (size_t i = 0; i < n_want; i++) {
            const struct rc_raft_server *h = have_of(have, n_have, want[i].id);
            if (h == NULL || h->role == want[i].role || want[i].id == leader)
                continue;
            bool promote = want[i].role == RC_ROLE_VOTER ||
                           (want[i].role == RC_ROLE_STANDBY && h->role == RC_ROLE_SPARE);
            if (promote == (pass == 0))
                step(steps, &n, RC_CHANGE_ASSIGN, want[i].id)->role = want[i].role;
        }
    for (size_t i = 0; i < n_have; i++) /* removals */
        if (have[i].id != leader && want_of(want, n_want, have[i].id) == NULL)
            step(steps, &n, RC_CHANGE_REMOVE, have[i].id);
    /* The leader last: once its own demotion or removal commits, libraft
     * has it step down, and the others elect a leader among themselves. */
    const struct rc_raft_server *hl = have_of(have, n_have, leader);
    const struct rc_member *wl = want_of(want, n_want, leader);
    if (hl != NULL && wl == NULL)
        step(steps, &n, RC_CHANGE_REMOVE, leader);
    else if (hl != NULL && hl->role != wl->role)
        step(steps, &n, RC_CHANGE_ASSIGN, leader)->role = wl->role;
    return n;
}
