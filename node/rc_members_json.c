#include "node/rc_members_json.h"

#include <stdio.h>
#include <string.h>

#include "raft/rc_members.h"

static int role_of(const char *name)
{
    if (name == NULL)
        return -1;
    return strcmp(name, "voter") == 0     ? RC_ROLE_VOTER
           : strcmp(name, "standby") == 0 ? RC_ROLE_STANDBY
           : strcmp(name, "spare") == 0   ? RC_ROLE_SPARE
                                          : -1;
}

int rc_members_from_json(const json_t *body, struct rc_member *out, size_t *n, char *err, size_t errlen)
{
    const json_t *list = json_object_get(body, "members");
    *n = 0;
    if (!json_is_array(list) || json_array_size(list) == 0 || json_array_size(list) > RC_MAX_MEMBERS) {
        snprintf(err, errlen, "members: a list of 1 to %d members", RC_MAX_MEMBERS);
        return -1;
    }
    size_t i;
    const json_t *m;
    json_array_foreach(list, i, m) {
        json_int_t id = json_integer_value(json_object_get(m, "id"));
        const char *raft = json_string_value(json_object_get(m, "raft"));
        int role = role_of(json_string_value(json_object_get(m, "role")));
        if (id <= 0 || raft == NULL || raft[0] == '\0' || strlen(raft) >= sizeof out[0].raft_addr || role < 0) {
            snprintf(err, errlen, "members[%zu]: id (> 0), raft (HOST:PORT) and role (voter, standby, spare)", i);
            return -1;
        }
        for (size_t k = 0; k < *n; k++)
            if (out[k].id == (uint64_t)id) {
                snprintf(err, errlen, "members: node %lld twice", (long long)id);
                return -1;
            }
        memset(&out[*n], 0, sizeof out[*n]);
        out[*n].id = (uint64_t)id;
        out[*n].role = role;
        snprintf(out[*n].raft_addr, sizeof out[*n].raft_addr, "%s", raft);
        (*n)++;
    }
    return 0;
}

