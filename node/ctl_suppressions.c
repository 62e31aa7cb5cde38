/* `ricochetctl suppressions list|add ADDR [--reason R]|remove ADDR`:
 * GET /v1/suppressions, POST /v1/suppressions {"address","reason"},
 * DELETE /v1/suppressions/ADDR. */
#include <stdlib.h>
#include <string.h>

#include "node/ctl.h"

static int list(const struct ctl *c)
{
    json_t *r;
    int rv = ctl_get_for_people(c, "suppressions list", "/v1/suppressions", &r);
    if (rv != CTL_OK || r == NULL)
        return rv;
    static const char *const hdr[] = {"ADDRESS", "SINCE", "SOURCE", "REASON"};
    ctl_table *t = ctl_table_new(4, hdr);
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(r, "suppressions"), i, s) {
        char addr[512], since[40], source[64], reason[256];
        ctl_fmt_time_ms(json_object_get(s, "since"), since, sizeof since);
        const char *row[] = {ctl_field(s, "address", "?", addr, sizeof addr), since,
                             ctl_field(s, "source", "-", source, sizeof source),
                             ctl_field(s, "reason", "-", reason, sizeof reason)};
        ctl_table_add(t, row);
    }
    ctl_table_print(t, stdout);
    printf("%zu suppressed address(es)\n", json_array_size(json_object_get(r, "suppressions")));
    ctl_table_free(t);
    json_decref(r);
    return CTL_OK;
}

int ctl_cmd_suppressions(const struct ctl *c, int argc, char **argv)
{
    const struct ctl_command *cmd = ctl_find_command("suppressions");
    for (int i = 1; i < argc; i++)
        if (ctl_is_help(argv[i]))
            return ctl_help(cmd);
    if (argc < 2)
        return ctl_usage(cmd);
    const char *sub = argv[1];
    if (strcmp(sub, "list") == 0) {
        if (argc != 2)
            return ctl_usage(cmd);
        return list(c);
    }
    if (argc < 3 || argv[2][0] == '\0' || argv[2][0] == '-' || strlen(argv[2]) > 320)
        return ctl_usage(cmd);
    const char *addr = argv[2];
    json_t *r;
    int rv;
    if (strcmp(sub, "add") == 0) {
        const char *reason = NULL;
        if (argc == 5 && strcmp(argv[3], "--reason") == 0)
            reason = argv[4];
        else if (argc == 4 && strncmp(argv[3], "--reason=", 9) == 0)
            reason = argv[3] + 9;
        else if (argc != 3)
            return ctl_usage(cmd);
        json_t *body = reason ? json_pack("{s:s, s:s}", "address", addr, "reason", reason)
                              : json_pack("{s:s}", "address", addr);
        if (body == NULL) {
            ctl_err("suppressions add: the address and reason must be UTF-8");
            return CTL_USAGE;
        }
        rv = ctl_request(c, "suppressions add", "POST", "/v1/suppressions", body, &r);
    } else if (strcmp(sub, "remove") == 0) {
        if (argc != 3)
            return ctl_usage(cmd);
        char *esc = ctl_escape_segment(addr);
        char path[1200];
        snprintf(path, sizeof path, "/v1/suppressions/%s", esc ? esc : "");
        free(esc);
        rv = ctl_request(c, "suppressions remove", "DELETE", path, NULL, &r);
    } else {
        return ctl_usage(cmd);
    }
    if (rv != CTL_OK)
        return rv;
    if (c->json) {
        ctl_print_json(r);
    } else {
        char a[512];
        printf("%s %s\n", ctl_field(r, "address", addr, a, sizeof a),
               json_is_false(json_object_get(r, "suppressed")) ? "is no longer suppressed" : "is suppressed");
    }
    json_decref(r);
    return CTL_OK;
}
