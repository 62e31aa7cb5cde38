/* `ricochetctl transfer [--to NODE_ID]`: POST /v1/cluster/transfer {"to": N}
 * (0: any voter). Only the leader can hand leadership over: when the node
 * asked answers 421 with the leader's id, the command asks the leader
 * instead. The leader answers once it has stepped down; the command then
 * waits until the cluster agrees on a new leader and checks that it is the
 * one asked for. Raft gives no such promise: the target's election can
 * lose to another node's (e.g. when the target has just restarted and its
 * connections are not up yet), so the command asks whoever won to hand
 * over again, a bounded number of times. */
#include <string.h>

#include "node/ctl.h"

#define TRANSFER_ATTEMPTS 3
#define LEADER_WAIT_MS 15000
#define LEADER_POLL_MS 100

struct view_leader {
    json_int_t self;
    json_int_t leader; /* 0: none known */
    char leader_http[256];
};

/* What `server` says of itself and of the leader; with `want` nonzero,
 * leader_http is node `want`'s HTTP address instead of the leader's. */
static int view_leader_of(const struct ctl *c, const char *server, json_int_t want, struct view_leader *v)
{
    json_t *r;
    if (ctl_get_cluster(c, server, &r) != 0)
        return -1;
    v->self = json_integer_value(json_object_get(r, "self"));
    v->leader = json_integer_value(json_object_get(r, "leader"));
    const char *http = ctl_cluster_node_http(r, want ? want : v->leader);
    snprintf(v->leader_http, sizeof v->leader_http, "%s", http ? http : "");
    json_decref(r);
    return 0;
}

static int view_leader(const struct ctl *c, const char *server, struct view_leader *v)
{
    return view_leader_of(c, server, 0, v);
}

/* After `old` stepped down: waits until `server` knows a leader other than
 * `old`. Returns 0 and fills v, or -1 when none appeared in time. */
static int await_new_leader(const struct ctl *c, const char *server, json_int_t old, struct view_leader *v)
{
    for (int waited = 0; waited < LEADER_WAIT_MS; waited += LEADER_POLL_MS) {
        if (view_leader(c, server, v) == 0 && v->leader != 0 && v->leader != old && v->leader_http[0])
            return 0;
        ctl_sleep_ms(LEADER_POLL_MS);
    }
    return -1;
}

static int refused(const struct ctl *c, json_t *r, int status, const char *server)
{
    const char *msg = json_string_value(json_object_get(r, "error"));
    ctl_err("transfer: %s (HTTP %d from %s)", msg ? msg : "refused", status, server);
    if (c->json && r)
        ctl_print_json(r);
    json_decref(r);
    return CTL_REFUSED;
}

int ctl_transfer_run(const struct ctl *c, const char *start, uint64_t to, int64_t *leader)
{
    char server[256];
    snprintf(server, sizeof server, "%s", start);
    struct view_leader v = {0};
    for (int attempt = 1;; attempt++) {
        json_t *r;
        int status;
        int rv = ctl_request_to(c, server, "transfer", "POST", "/v1/cluster/transfer",
                                json_pack("{s:I}", "to", (json_int_t)to), &r, &status, true);
        char lhttp[256];
        json_int_t named_leader;
        if (rv == CTL_REFUSED && status == 421 &&
            ctl_leader_http(c, server, r, &named_leader, lhttp, sizeof lhttp) == 0) {
            json_decref(r);
            snprintf(server, sizeof server, "%s", lhttp);
            if (!c->json)
                fprintf(stderr, "ricochetctl: transfer: asking the leader at %s (node %lld)\n", server,
                        (long long)named_leader);
            rv = ctl_request_to(c, server, "transfer", "POST", "/v1/cluster/transfer",
                                json_pack("{s:I}", "to", (json_int_t)to), &r, &status, true);
        }
        if (rv == CTL_REFUSED)
            return refused(c, r, status, server);
        if (rv != CTL_OK)
            return rv;
        /* `server` is the node that just stepped down. Its answer names
         * the new leader when it knew it already; else wait for one. */
        json_int_t named = json_integer_value(json_object_get(r, "leader"));
        json_decref(r);
        struct view_leader old;
        json_int_t old_id = view_leader(c, server, &old) == 0 ? old.self : 0;
        if (named != 0 && named != old_id) {
            if (view_leader_of(c, server, named, &v) != 0)
                v.leader_http[0] = '\0';
            v.leader = named;
        } else if (await_new_leader(c, server, old_id, &v) != 0) {
            ctl_err("transfer: node %lld stepped down but no new leader was known within %d s",
                    (long long)old_id, LEADER_WAIT_MS / 1000);
            return CTL_REFUSED;
        }
        if (to == 0 || (uint64_t)v.leader == to)
            break;
        if (attempt == TRANSFER_ATTEMPTS || v.leader_http[0] == '\0') {
            ctl_err("transfer: node %lld won the election instead of node %llu (attempt %d of %d); giving up",
                    (long long)v.leader, (unsigned long long)to, attempt, TRANSFER_ATTEMPTS);
            if (c->json) {
                json_t *out = json_pack("{s:s, s:I, s:I}", "error", "leadership went elsewhere",
                                        "leader", v.leader, "attempts", (json_int_t)attempt);
                ctl_print_json(out);
                json_decref(out);
            }
            return CTL_REFUSED;
        }
        if (!c->json)
            fprintf(stderr, "ricochetctl: transfer: node %lld won the election instead of node %llu; "
                    "asking it to hand over (attempt %d of %d)\n",
                    (long long)v.leader, (unsigned long long)to, attempt + 1, TRANSFER_ATTEMPTS);
        snprintf(server, sizeof server, "%s", v.leader_http);
    }
    *leader = v.leader;
    return CTL_OK;
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
    int64_t leader = 0;
    int rv = ctl_transfer_run(c, c->server, to, &leader);
    if (rv != CTL_OK)
        return rv;
    if (c->json) {
        json_t *out = json_pack("{s:b, s:I}", "ok", 1, "leader", (json_int_t)leader);
        ctl_print_json(out);
        json_decref(out);
    } else {
        printf("leadership transferred: leader is now node %lld\n", (long long)leader);
    }
    return CTL_OK;
}
