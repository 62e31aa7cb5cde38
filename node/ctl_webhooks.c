/* `ricochetctl webhooks`: GET /v1/webhooks, what the node's webhook sender
 * does (docs/WEBHOOKS.md). */
#include <stdio.h>

#include "node/ctl.h"

int ctl_cmd_webhooks(const struct ctl *c, int argc, char **argv)
{
    const struct ctl_command *cmd = ctl_find_command("webhooks");
    for (int i = 1; i < argc; i++)
        return ctl_is_help(argv[i]) ? ctl_help(cmd) : ctl_usage(cmd);
    json_t *r;
    int rv = ctl_get_for_people(c, "webhooks", "/v1/webhooks", &r);
    if (rv != CTL_OK || r == NULL)
        return rv;
    if (!json_is_true(json_object_get(r, "configured"))) {
        printf("webhooks: not configured on this node (webhooks.url)\n");
        json_decref(r);
        return CTL_OK;
    }
    char buf[512], last_ok[40], next[40];
    printf("url                 %s\n", ctl_field(r, "url", "-", buf, sizeof buf));
    printf("sending             %s\n", json_is_true(json_object_get(r, "sending"))
                                           ? "yes (this node leads)"
                                           : "no (only the leader sends: ask it)");
    printf("recipients pending  %s\n", ctl_field(r, "recipients_pending", "0", buf, sizeof buf));
    printf("events in flight    %s\n", ctl_field(r, "in_flight", "0", buf, sizeof buf));
    printf("events sent         %s\n", ctl_field(r, "events_sent", "0", buf, sizeof buf));
    char ok[32], failed[32];
    printf("posts               %s ok, %s failed\n", ctl_field(r, "posts_ok", "0", ok, sizeof ok),
           ctl_field(r, "posts_failed", "0", failed, sizeof failed));
    json_int_t failures = json_integer_value(json_object_get(r, "failures"));
    ctl_fmt_time_ms(json_object_get(r, "next_try"), next, sizeof next);
    if (failures > 0)
        printf("failing             %lld in a row: %s; next try %s\n", (long long)failures,
               ctl_field(r, "last_error", "-", buf, sizeof buf), next);
    ctl_fmt_time_ms(json_object_get(r, "last_ok"), last_ok, sizeof last_ok);
    printf("last 2xx            %s\n", last_ok);
    printf("recipients dropped  %s (forgotten by retention before acknowledged)\n",
           ctl_field(r, "recipients_dropped", "0", buf, sizeof buf));
    json_decref(r);
    return CTL_OK;
}
