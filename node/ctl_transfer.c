/* `ricochetctl transfer [--to NODE_ID]`: POST /v1/cluster/transfer {"to": N}
 * (0: any voter). Only the leader can hand leadership over: when the node
 * asked answers 421 with the leader's id, the command looks the leader's
 * HTTP address up in GET /v1/cluster and asks it instead (once). The node
 * answers when the transfer is done (or failed). */
#include <string.h>

#include "node/ctl.h"

/* HTTP address of node `id` from the cluster view served by `server`. */
static int leader_address(const struct ctl *c, json_int_t id, char *out, size_t n)
{
    json_t *r;
    if (ctl_request(c, "transfer (looking up the leader)", "GET", "/v1/cluster", NULL, &r) != CTL_OK)
        return -1;
    size_t i;
    json_t *node;
    int rv = -1;
    json_array_foreach(json_object_get(r, "nodes"), i, node) {
        const char *http = json_string_value(json_object_get(node, "http"));
        if (json_integer_value(json_object_get(node, "id")) == id && http) {
            snprintf(out, n, "%s", http);
            rv = 0;
        }
    }
    json_decref(r);
    return rv;
}

int ctl_cmd_transfer(const struct ctl *c, int argc, char **argv)
{
    const struct ctl_command *cmd = ctl_find_command("transfer");
    uint64_t to = 0;
    for (int i = 1; i < argc; i++) {
        if (ctl_is_help(argv[i]))
            return ctl_help(cmd);
        if (strcmp(argv[i], "--to") == 0 && i + 1 < argc) {
            if (ctl_parse_u64("transfer --to", argv[++i], 1, INT64_MAX, &to) != 0)
                return CTL_USAGE;
        } else if (strncmp(argv[i], "--to=", 5) == 0) {
            if (ctl_parse_u64("transfer --to", argv[i] + 5, 1, INT64_MAX, &to) != 0)
                return CTL_USAGE;
        } else {
            return ctl_usage(cmd);
        }
    }
    const char *server = c->server;
    char leader_http[256];
    json_t *r;
    int status;
    int rv = ctl_request_to(c, server, "transfer", "POST", "/v1/cluster/transfer",
                            json_pack("{s:I}", "to", (json_int_t)to), &r, &status, true);
    if (rv == CTL_REFUSED && status == 421 && json_is_integer(json_object_get(r, "leader")) &&
        leader_address(c, json_integer_value(json_object_get(r, "leader")), leader_http, sizeof leader_http) == 0) {
        json_decref(r);
        server = leader_http;
        if (!c->json)
            fprintf(stderr, "ricochetctl: transfer: asking the leader at %s\n", server);
        rv = ctl_request_to(c, server, "transfer", "POST", "/v1/cluster/transfer",
                            json_pack("{s:I}", "to", (json_int_t)to), &r, &status, true);
    }
    if (rv == CTL_REFUSED) {
        const char *msg = json_string_value(json_object_get(r, "error"));
        ctl_err("transfer: %s (HTTP %d from %s)", msg ? msg : "refused", status, server);
        if (c->json && r)
            ctl_print_json(r);
        json_decref(r);
        return rv;
    }
    if (rv != CTL_OK)
        return rv;
    if (c->json) {
        ctl_print_json(r);
    } else {
        char leader[32];
        printf("leadership transferred: leader is now node %s\n", ctl_field(r, "leader", "unknown", leader, sizeof leader));
    }
    json_decref(r);
    return CTL_OK;
}
