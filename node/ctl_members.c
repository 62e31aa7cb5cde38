/* `ricochetctl members [sync]`: the raft membership the cluster holds
 * against the member table of the asked node's configuration file (GET
 * /v1/cluster/members), and `sync`, which has the leader make the changes
 * to that table (POST /v1/cluster/members/sync with the table; when the
 * node asked is not the leader, the command asks the leader). */
#include <string.h>

#include "node/ctl.h"

static const char *role_in(const json_t *list, json_int_t id)
{
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m) {
        if (json_integer_value(json_object_get(m, "id")) == id)
            return json_string_value(json_object_get(m, "role"));
    }
    return NULL;
}

static void print_step(const json_t *s, const char *prefix)
{
    const char *op = json_string_value(json_object_get(s, "op"));
    json_int_t id = json_integer_value(json_object_get(s, "id"));
    if (op && strcmp(op, "add") == 0)
        printf("%sadd node %lld at %s (as a spare)\n", prefix, (long long)id,
               json_string_value(json_object_get(s, "raft")));
    else if (op && strcmp(op, "assign") == 0)
        printf("%smake node %lld a %s\n", prefix, (long long)id, json_string_value(json_object_get(s, "role")));
    else
        printf("%sremove node %lld\n", prefix, (long long)id);
}

static void print_steps(const json_t *list, const char *prefix)
{
    size_t i;
    json_t *s;
    json_array_foreach(list, i, s) print_step(s, prefix);
}

static int show(const struct ctl *c)
{
    json_t *r;
    int rv = ctl_get_for_people(c, "members", "/v1/cluster/members", &r);
    if (rv != CTL_OK || r == NULL)
        return rv;
    json_t *have = json_object_get(r, "configuration"), *want = json_object_get(r, "file");
    static const char *const hdr[] = {"ID", "RAFT", "IN THE CLUSTER", "IN THE FILE"};
    ctl_table *t = ctl_table_new(4, hdr);
    json_t *lists[2] = {have, want};
    for (int l = 0; l < 2; l++) {
        size_t i;
        json_t *m;
        json_array_foreach(lists[l], i, m) {
            json_int_t id = json_integer_value(json_object_get(m, "id"));
            if (l == 1 && role_in(have, id) != NULL)
                continue; /* listed with the cluster's */
            char ids[32];
            snprintf(ids, sizeof ids, "%lld", (long long)id);
            const char *row[] = {ids, json_string_value(json_object_get(m, "raft")), role_in(have, id),
                                 role_in(want, id)};
            ctl_table_add(t, row);
        }
    }
    ctl_table_print(t, stdout);
    ctl_table_free(t);
    const char *err = json_string_value(json_object_get(r, "error"));
    json_t *changes = json_object_get(r, "changes");
    if (err != NULL)
        printf("\ncannot sync: %s\n", err);
    else if (json_array_size(changes) == 0)
        printf("\nin sync\n");
    else {
        printf("\n`ricochetctl members sync` would, one change at a time:\n");
        print_steps(changes, "  ");
    }
    json_decref(r);
    return CTL_OK;
}

/* The table to reach is the asked node's file; the leader makes the
 * changes, even when its own file differs (a leaving leader's still lists
 * itself). */
static int sync_members(const struct ctl *c)
{
    char server[256];
    snprintf(server, sizeof server, "%s", c->server);
    json_t *m;
    int rv = ctl_request(c, "members", "GET", "/v1/cluster/members", NULL, &m);
    if (rv != CTL_OK)
        return rv;
    json_t *body = json_pack("{s:O}", "members", json_object_get(m, "file"));
    json_decref(m);
    json_t *r;
    int status;
    rv = ctl_request_to(c, server, "members sync", "POST", "/v1/cluster/members/sync", json_incref(body), &r, &status,
                        true);
    char lhttp[256];
    json_int_t leader;
    if (rv == CTL_REFUSED && status == 421 && ctl_leader_http(c, server, r, &leader, lhttp, sizeof lhttp) == 0) {
        if (!c->json)
            fprintf(stderr, "ricochetctl: members sync: asking the leader at %s (node %lld)\n", lhttp,
                    (long long)leader);
        snprintf(server, sizeof server, "%s", lhttp);
        json_decref(r);
        rv = ctl_request_to(c, server, "members sync", "POST", "/v1/cluster/members/sync", json_incref(body), &r,
                            &status, true);
    }
    json_decref(body);
    if (rv == CTL_REFUSED) {
        const char *msg = json_string_value(json_object_get(r, "error"));
        ctl_err("members sync: %s (HTTP %d from %s)", msg ? msg : "refused", status, server);
        if (c->json && r)
            ctl_print_json(r);
        else if (r != NULL) {
            print_steps(json_object_get(r, "done"), "done: ");
            if (json_object_get(r, "failed"))
                print_step(json_object_get(r, "failed"), "failed: ");
        }
        json_decref(r);
        return CTL_REFUSED;
    }
    if (rv != CTL_OK)
        return rv;
    if (c->json) {
        ctl_print_json(r);
    } else {
        json_t *done = json_object_get(r, "done");
        if (json_array_size(done) == 0)
            printf("in sync: nothing to change\n");
        print_steps(done, "done: ");
    }
    json_decref(r);
    return CTL_OK;
}

int ctl_cmd_members(const struct ctl *c, int argc, char **argv)
{
    const struct ctl_command *cmd = ctl_find_command("members");
    if (argc == 2 && ctl_is_help(argv[1]))
        return ctl_help(cmd);
    if (argc == 1)
        return show(c);
    if (argc == 2 && strcmp(argv[1], "sync") == 0)
        return sync_members(c);
    return ctl_usage(cmd);
}
