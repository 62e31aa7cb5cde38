/* `ricochetctl cluster`: GET /v1/cluster, as a table or as the node's JSON. */
#include <string.h>

#include "node/ctl.h"

int ctl_cmd_cluster(const struct ctl *c, int argc, char **argv)
{
    const struct ctl_command *cmd = ctl_find_command("cluster");
    if (argc == 2 && ctl_is_help(argv[1]))
        return ctl_help(cmd);
    if (argc != 1)
        return ctl_usage(cmd);
    json_t *r;
    int rv = ctl_get_for_people(c, "cluster", "/v1/cluster", &r);
    if (rv != CTL_OK || r == NULL)
        return rv;
    char leader[32], term[32], commit[32], applied[32], self[32], state[32], digest[80];
    ctl_field(r, "leader", "none", leader, sizeof leader);
    ctl_field(r, "term", "?", term, sizeof term);
    ctl_field(r, "commit_index", "?", commit, sizeof commit);
    ctl_field(r, "applied_index", "?", applied, sizeof applied);
    ctl_field(r, "self", "?", self, sizeof self);
    ctl_field(r, "state", "?", state, sizeof state);
    ctl_field(r, "state_digest", "-", digest, sizeof digest);
    printf("leader: %s  term: %s  commit: %s  applied: %s\n", leader, term, commit, applied);
    printf("answered by node %s (%s), state digest %.16s\n\n", self, state, digest);

    static const char *const hdr[] = {"ID", "SITE", "ROLE", "STATE", "HEALTH", "SMTP", "DNS", "HTTP", "RAFT"};
    ctl_table *t = ctl_table_new(9, hdr);
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(r, "nodes"), i, n) {
        char id[32], site[64], role[48], nstate[32], smtp[80], dns[80], http[80], raft[80];
        ctl_field(n, "id", "?", id, sizeof id);
        ctl_field(n, "site", "-", site, sizeof site);
        ctl_field(n, "role", "?", role, sizeof role);
        if (json_is_true(json_object_get(n, "witness"))) {
            size_t rl = strlen(role);
            snprintf(role + rl, sizeof role - rl, "/witness");
        }
        ctl_field(n, "state", "unknown", nstate, sizeof nstate);
        const char *health = json_is_true(json_object_get(n, "drained"))   ? "drained"
                             : json_is_true(json_object_get(n, "healthy")) ? "ok"
                             : json_is_false(json_object_get(n, "healthy")) ? "DOWN"
                                                                           : "?";
        const char *row[] = {id, site, role, nstate, health,
                             ctl_field(n, "smtp", "-", smtp, sizeof smtp), ctl_field(n, "dns", "-", dns, sizeof dns),
                             ctl_field(n, "http", "-", http, sizeof http), ctl_field(n, "raft", "-", raft, sizeof raft)};
        ctl_table_add(t, row);
    }
    ctl_table_print(t, stdout);
    ctl_table_free(t);
    json_decref(r);
    return CTL_OK;
}
