/* `ricochetctl message ID`: GET /v1/messages/ID, each recipient's status and
 * history. */
#include <stdlib.h>
#include <string.h>

#include "node/ctl.h"

int ctl_cmd_message(const struct ctl *c, int argc, char **argv)
{
    const struct ctl_command *cmd = ctl_find_command("message");
    bool consistent = false;
    const char *id = NULL;
    for (int i = 1; i < argc; i++) {
        if (ctl_is_help(argv[i]))
            return ctl_help(cmd);
        if (strcmp(argv[i], "--consistent") == 0)
            consistent = true;
        else if (id == NULL && argv[i][0] != '-')
            id = argv[i];
        else
            return ctl_usage(cmd);
    }
    if (id == NULL || *id == '\0' || strlen(id) > 200)
        return ctl_usage(cmd);
    char *esc = ctl_escape_segment(id);
    char path[700];
    snprintf(path, sizeof path, "/v1/messages/%s%s", esc ? esc : "", consistent ? "?consistent=1" : "");
    free(esc);
    json_t *r;
    int rv = ctl_get_for_people(c, "message", path, &r);
    if (rv != CTL_OK || r == NULL)
        return rv;
    char when[40], from[512], size[32], mid[256];
    ctl_fmt_time_ms(json_object_get(r, "received"), when, sizeof when);
    ctl_field(r, "from", "", from, sizeof from);
    ctl_field(r, "size", "?", size, sizeof size);
    printf("message %s from <%s> received %s size %s\n", ctl_field(r, "id", id, mid, sizeof mid), from, when, size);
    size_t i, j;
    json_t *rc, *h;
    json_array_foreach(json_object_get(r, "recipients"), i, rc) {
        char addr[512], status[32];
        printf("\n%s  %s\n", ctl_field(rc, "address", "?", addr, sizeof addr),
               ctl_field(rc, "status", "?", status, sizeof status));
        static const char *const hdr[] = {"  AT", "STATUS", "CODE", "ENHANCED", "REASON", "TEXT"};
        ctl_table *t = ctl_table_new(6, hdr);
        json_array_foreach(json_object_get(rc, "history"), j, h) {
            char at[40], st[32], code[16], enh[32], reason[64], text[512], at2[44];
            ctl_fmt_time_ms(json_object_get(h, "at"), at, sizeof at);
            snprintf(at2, sizeof at2, "  %s", at);
            /* no SMTP reply: the internal code (docs/EGRESS.md), e.g. "i146" */
            json_t *ic = json_object_get(h, "internal_code");
            if (json_object_get(h, "code") == NULL && json_is_integer(ic))
                snprintf(code, sizeof code, "i%lld", (long long)json_integer_value(ic));
            else
                ctl_field(h, "code", "-", code, sizeof code);
            const char *row[] = {at2, ctl_field(h, "status", "?", st, sizeof st), code,
                                 ctl_field(h, "enhanced", "-", enh, sizeof enh),
                                 ctl_field(h, "reason", "-", reason, sizeof reason),
                                 ctl_field(h, "text", "-", text, sizeof text)};
            ctl_table_add(t, row);
        }
        ctl_table_print(t, stdout);
        ctl_table_free(t);
    }
    json_decref(r);
    return CTL_OK;
}

/* `ricochetctl discard ID [--rcpt N]`: POST /v1/messages/ID/discard. */
int ctl_cmd_discard(const struct ctl *c, int argc, char **argv)
{
    const struct ctl_command *cmd = ctl_find_command("discard");
    const char *id = NULL;
    long rcpt = -1;
    for (int i = 1; i < argc; i++) {
        if (ctl_is_help(argv[i]))
            return ctl_help(cmd);
        if (strcmp(argv[i], "--rcpt") == 0 && i + 1 < argc) {
            char *end;
            rcpt = strtol(argv[++i], &end, 10);
            if (*end || rcpt < 0)
                return ctl_usage(cmd);
        } else if (id == NULL && argv[i][0] != '-') {
            id = argv[i];
        } else {
            return ctl_usage(cmd);
        }
    }
    if (id == NULL || *id == '\0' || strlen(id) > 120)
        return ctl_usage(cmd);
    char *esc = ctl_escape_segment(id);
    char path[700];
    snprintf(path, sizeof path, "/v1/messages/%s/discard", esc ? esc : "");
    free(esc);
    json_t *body = rcpt >= 0 ? json_pack("{s:I}", "recipient", (json_int_t)rcpt) : json_object();
    json_t *r;
    int rv = ctl_request(c, "discard", "POST", path, body, &r);
    if (rv != CTL_OK)
        return rv;
    if (c->json)
        ctl_print_json(r);
    else
        printf("discarded %lld recipient(s) of %s\n", (long long)json_integer_value(json_object_get(r, "discarded")), id);
    json_decref(r);
    return CTL_OK;
}

/* `ricochetctl engagement ID --rcpt N opened|clicked [--url URL]`:
 * POST /v1/messages/ID/engagement. */
int ctl_cmd_engagement(const struct ctl *c, int argc, char **argv)
{
    const struct ctl_command *cmd = ctl_find_command("engagement");
    const char *id = NULL, *event = NULL, *url = NULL;
    uint64_t rcpt = 0;
    bool have_rcpt = false;
    for (int i = 1; i < argc; i++) {
        if (ctl_is_help(argv[i]))
            return ctl_help(cmd);
        if (strcmp(argv[i], "--rcpt") == 0 && i + 1 < argc) {
            if (ctl_parse_u64("engagement --rcpt", argv[++i], 0, 1000000, &rcpt) != 0)
                return CTL_USAGE;
            have_rcpt = true;
        } else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) {
            url = argv[++i];
        } else if (argv[i][0] == '-') {
            return ctl_usage(cmd);
        } else if (id == NULL) {
            id = argv[i];
        } else if (event == NULL) {
            event = argv[i];
        } else {
            return ctl_usage(cmd);
        }
    }
    if (id == NULL || event == NULL || !have_rcpt || *id == '\0' || strlen(id) > 120)
        return ctl_usage(cmd);
    char *esc = ctl_escape_segment(id);
    char path[700];
    snprintf(path, sizeof path, "/v1/messages/%s/engagement", esc ? esc : "");
    free(esc);
    json_t *body = json_pack("{s:I, s:s}", "recipient", (json_int_t)rcpt, "event", event);
    if (url)
        json_object_set_new(body, "url", json_string(url));
    json_t *r;
    int rv = ctl_request(c, "engagement", "POST", path, body, &r);
    if (rv != CTL_OK)
        return rv;
    if (c->json)
        ctl_print_json(r);
    else
        printf("recorded: recipient %llu of %s %s\n", (unsigned long long)rcpt, id, event);
    json_decref(r);
    return CTL_OK;
}
