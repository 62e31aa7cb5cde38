/* `ricochetctl drain|undrain NODE_ID|SITE`: POST /v1/cluster/drain or
 * /v1/cluster/undrain with {"node": N} (a number) or {"site": "name"}. */
#include <string.h>

#include "node/ctl.h"

int ctl_cmd_drain(const struct ctl *c, int argc, char **argv)
{
    bool drain = strcmp(argv[0], "drain") == 0;
    const struct ctl_command *cmd = ctl_find_command(argv[0]);
    if (argc == 2 && ctl_is_help(argv[1]))
        return ctl_help(cmd);
    if (argc != 2 || argv[1][0] == '\0' || argv[1][0] == '-')
        return ctl_usage(cmd);
    json_t *body;
    if (argv[1][0] >= '0' && argv[1][0] <= '9') {
        uint64_t id;
        if (ctl_parse_u64(argv[0], argv[1], 1, INT64_MAX, &id) != 0)
            return CTL_USAGE;
        body = json_pack("{s:I}", "node", (json_int_t)id);
    } else {
        body = json_pack("{s:s}", "site", argv[1]);
    }
    json_t *r;
    int rv = ctl_request(c, argv[0], "POST", drain ? "/v1/cluster/drain" : "/v1/cluster/undrain", body, &r);
    if (rv != CTL_OK)
        return rv;
    if (c->json) {
        ctl_print_json(r);
    } else {
        char ids[256];
        printf("%s node(s) %s\n", drain ? "drained" : "undrained", ctl_field(r, "nodes", "?", ids, sizeof ids));
    }
    json_decref(r);
    return CTL_OK;
}
