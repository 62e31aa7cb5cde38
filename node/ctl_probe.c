/* `ricochetctl probe --count N --size BYTES --inflight K [--rate R]`:
 * POST /v1/admin/probe, the node's built-in commit self-test. Exit 1 when
 * any probe record failed to commit. */
#include <inttypes.h>
#include <string.h>

#include "node/ctl.h"

int ctl_cmd_probe(const struct ctl *c, int argc, char **argv)
{
    const struct ctl_command *cmd = ctl_find_command("probe");
    uint64_t count = 1000, size = 1024, inflight = 16, rate = 0;
    for (int i = 1; i < argc; i += 2) {
        if (ctl_is_help(argv[i]))
            return ctl_help(cmd);
        static const struct {
            const char *opt;
            uint64_t min, max;
        } opts[] = {{"--count", 1, 10000000}, {"--size", 0, 64u << 20}, {"--inflight", 1, 100000}, {"--rate", 0, 1000000}};
        uint64_t *dst[] = {&count, &size, &inflight, &rate};
        size_t k;
        for (k = 0; k < 4; k++)
            if (strcmp(argv[i], opts[k].opt) == 0)
                break;
        if (k == 4 || i + 1 == argc)
            return ctl_usage(cmd);
        if (ctl_parse_u64(argv[i], argv[i + 1], opts[k].min, opts[k].max, dst[k]) != 0)
            return CTL_USAGE;
    }
    json_t *body = json_pack("{s:I, s:I, s:I}", "count", (json_int_t)count, "size", (json_int_t)size, "inflight",
                             (json_int_t)inflight);
    if (rate)
        json_object_set_new(body, "rate", json_integer((json_int_t)rate));
    json_t *r;
    int rv = ctl_request(c, "probe", "POST", "/v1/admin/probe", body, &r);
    if (rv != CTL_OK)
        return rv;
    if (c->json)
        ctl_print_json(r);
    else
        printf("committed %" JSON_INTEGER_FORMAT " of %" PRIu64 " (failed %" JSON_INTEGER_FORMAT
               ") in %.3f s: %.0f/s, p50 %.3f ms, p99 %.3f ms\n",
               json_integer_value(json_object_get(r, "committed")), count,
               json_integer_value(json_object_get(r, "failed")), json_number_value(json_object_get(r, "seconds")),
               json_number_value(json_object_get(r, "per_second")), json_number_value(json_object_get(r, "p50_ms")),
               json_number_value(json_object_get(r, "p99_ms")));
    rv = json_integer_value(json_object_get(r, "failed")) > 0 ? CTL_REFUSED : CTL_OK;
    if (rv != CTL_OK && !c->json)
        ctl_err("probe: %" JSON_INTEGER_FORMAT " record(s) failed to commit",
                json_integer_value(json_object_get(r, "failed")));
    json_decref(r);
    return rv;
}
