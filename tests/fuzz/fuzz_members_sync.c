/* Bytes as the body of POST /v1/cluster/members/sync: parsed as the API
 * parses it (jansson, then rc_members_from_json). A table that passes is
 * planned against a held configuration (three voters, node 1 leading; the
 * first input byte varies it), and the steps are played on a copy of that
 * configuration with libraft's rules: the result must be the table, no
 * step may leave it without a voter, and a change of the leader itself
 * must be the last step. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/rc_members_json.h"
#include "raft/rc_members.h"

static struct rc_raft_server *find(struct rc_raft_server *s, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (s[i].id == id)
            return &s[i];
    return NULL;
}

static void play(const struct rc_raft_server *have, size_t n_have, const struct rc_member *want, size_t n_want,
                 uint64_t leader)
{
    struct rc_member_step steps[RC_MEMBERS_MAX_STEPS];
    char err[256];
    int ns = rc_members_plan(have, n_have, want, n_want, leader, steps, err, sizeof err);
    if (ns < 0) {
        if (err[0] == '\0')
            abort(); /* a refusal always says why */
        return;
    }
    if (ns > RC_MEMBERS_MAX_STEPS)
        abort();
    struct rc_raft_server cur[RC_MAX_MEMBERS * 2];
    size_t n = n_have;
    memcpy(cur, have, n_have * sizeof *have);
    for (int i = 0; i < ns; i++) {
        const struct rc_member_step *s = &steps[i];
        struct rc_raft_server *m = find(cur, n, s->id);
        if (s->id == leader && i != ns - 1 && s->what != RC_CHANGE_ASSIGN)
            abort();
        if (s->id == leader && s->what == RC_CHANGE_ASSIGN && s->role != RC_ROLE_VOTER && i != ns - 1)
            abort();
        switch (s->what) {
        case RC_CHANGE_ADD: /* libraft: a new id, as a spare */
            if (m != NULL || n == sizeof cur / sizeof cur[0])
                abort();
            cur[n].id = s->id;
            memcpy(cur[n].raft_addr, s->raft_addr, sizeof cur[n].raft_addr);
            cur[n].role = RC_ROLE_SPARE;
            n++;
            break;
        case RC_CHANGE_ASSIGN:
            if (m == NULL || m->role == s->role)
                abort();
            m->role = s->role;
            break;
        case RC_CHANGE_REMOVE:
            if (m == NULL)
                abort();
            *m = cur[--n];
            break;
        }
        size_t voters = 0;
        for (size_t k = 0; k < n; k++)
            voters += cur[k].role == RC_ROLE_VOTER;
        if (voters == 0)
            abort(); /* the cluster would be left without a majority */
    }
    if (n != n_want)
        abort();
    for (size_t i = 0; i < n_want; i++) {
        struct rc_raft_server *m = find(cur, n, want[i].id);
        if (m == NULL || m->role != want[i].role || strcmp(m->raft_addr, want[i].raft_addr) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t variant = size > 0 ? data[0] : 0;
    json_error_t jerr;
    json_t *body = json_loadb((const char *)data, size, 0, &jerr);
    if (body == NULL)
        return 0;
    struct rc_member want[RC_MAX_MEMBERS];
    size_t n_want;
    char err[256];
    if (rc_members_from_json(body, want, &n_want, err, sizeof err) == 0) {
        if (n_want == 0 || n_want > RC_MAX_MEMBERS)
            abort();
        struct rc_raft_server have[3] = {
            {1, "127.0.0.1:7000", RC_ROLE_VOTER},
            {2, "127.0.0.2:7000", RC_ROLE_VOTER},
            {3, "127.0.0.3:7000", (variant & 1) ? RC_ROLE_STANDBY : RC_ROLE_VOTER},
        };
        play(have, 3, want, n_want, (variant & 2) ? 2 : 1);
    } else if (err[0] == '\0') {
        abort(); /* a refusal always says why */
    }
    json_decref(body);
    return 0;
}
