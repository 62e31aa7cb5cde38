/* The cluster's membership against the configuration file's member table:
 *   GET  /v1/cluster/members       what the cluster holds, what the file
 *                                  says, and the changes between them;
 *   POST /v1/cluster/members/sync  (admin, leader) makes the changes to
 *                                  the table in the body ({"members": [...]},
 *                                  else the leader's file), one libraft
 *                                  change at a time, answering when all are
 *                                  committed (docs/OPERATIONS.md).
 * The planning is raft/rc_members.c; this file maps it to HTTP. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <raft.h>

#include "node/http_api.h"
#include "node/rc_members_json.h"
#include "node/rc_node_internal.h"
#include "raft/rc_members.h"

static const char *change_name(enum rc_change c)
{
    return c == RC_CHANGE_ADD ? "add" : c == RC_CHANGE_ASSIGN ? "assign" : "remove";
}

static json_t *step_json(const struct rc_member_step *s)
{
    json_t *o = json_pack("{s:s, s:I}", "op", change_name(s->what), "id", (json_int_t)s->id);
    if (s->what == RC_CHANGE_ADD)
        json_object_set_new(o, "raft", json_string(s->raft_addr));
    if (s->what == RC_CHANGE_ASSIGN)
        json_object_set_new(o, "role", json_string(rc_members_role_name(s->role)));
    return o;
}

/* The plan from this node's view to `want` (NULL: its file's member table);
 * returns the step count or -1 (err set). */
static int plan(rc_node *n, uint64_t leader, const struct rc_member *want, size_t n_want,
                struct rc_member_step *steps, char *err, size_t errlen, json_t **have_json, json_t **want_json)
{
    struct rc_raft_server have[RC_MAX_MEMBERS];
    size_t nh = rc_raft_servers(n->raft, have, RC_MAX_MEMBERS);
    const struct rc_raft_config *rc = rc_raft_config(n->raft);
    if (want == NULL) {
        want = rc->members;
        n_want = rc->n_members;
    }
    if (have_json) {
        *have_json = json_array();
        for (size_t i = 0; i < nh; i++)
            json_array_append_new(*have_json, json_pack("{s:I, s:s, s:s}", "id", (json_int_t)have[i].id, "raft",
                                                        have[i].raft_addr, "role", rc_members_role_name(have[i].role)));
    }
    if (want_json) {
        *want_json = json_array();
        for (size_t i = 0; i < n_want; i++)
            json_array_append_new(*want_json, json_pack("{s:I, s:s, s:s}", "id", (json_int_t)want[i].id, "raft",
                                                        want[i].raft_addr, "role", rc_members_role_name(want[i].role)));
    }
    if (nh == 0) {
        snprintf(err, errlen, "this node holds no configuration yet (it joins: ask a member of the cluster)");
        return -1;
    }
    return rc_members_plan(have, nh, want, n_want, leader, steps, err, errlen);
}

static void get_members(http_request *req, void *data)
{
    rc_node *n = data;
    struct rc_raft_status st;
    rc_raft_get_status(n->raft, &st);
    struct rc_member_step steps[RC_MEMBERS_MAX_STEPS];
    char err[256] = "";
    json_t *have, *want, *changes = json_array();
    int ns = plan(n, st.leader, NULL, 0, steps, err, sizeof err, &have, &want);
    for (int i = 0; i < ns; i++)
        json_array_append_new(changes, step_json(&steps[i]));
    http_respond_json(req, 200, json_pack("{s:I, s:o, s:o, s:o, s:o, s:o}", "self", (json_int_t)rc_raft_self(n->raft),
                                          "leader", st.leader ? json_integer((json_int_t)st.leader) : json_null(),
                                          "configuration", have, "file", want, "changes", changes,
                                          "error", ns < 0 ? json_string(err) : json_null()));
}

struct sync_job {
    http_request *req;
    rc_node *n;
    struct rc_member_step steps[RC_MEMBERS_MAX_STEPS];
    int n_steps, at;
    json_t *done;
};

static void sync_finish(struct sync_job *j, int status)
{
    if (status == RC_OK) {
        http_respond_json(j->req, 200, json_pack("{s:b, s:o}", "ok", 1, "done", j->done));
    } else {
        http_respond_json(j->req, rc_err_retryable(status) ? 503 : 409,
                          json_pack("{s:s, s:b, s:o, s:o}", "error", rc_strerror(status), "retryable",
                                    rc_err_retryable(status), "done", j->done, "failed", step_json(&j->steps[j->at])));
    }
    free(j);
}

static void sync_next(void *data, int status);

static void sync_run(struct sync_job *j)
{
    if (j->at >= j->n_steps) {
        sync_finish(j, RC_OK);
        return;
    }
    const struct rc_member_step *s = &j->steps[j->at];
    int rv = rc_raft_change(j->n->raft, s->what, s->id, s->raft_addr, s->role, sync_next, j);
    if (rv != RC_OK)
        sync_finish(j, rv);
}

static void sync_next(void *data, int status)
{
    struct sync_job *j = data;
    if (status != RC_OK) {
        sync_finish(j, status);
        return;
    }
    json_array_append_new(j->done, step_json(&j->steps[j->at]));
    j->at++;
    sync_run(j);
}

static void post_members_sync(http_request *req, void *data)
{
    rc_node *n = data;
    if (!rc_api_leader_or_421(n, req, "not the leader; ask the leader"))
        return;
    /* The table to reach: the body's (the CLI sends the one of the node it
     * was asked, which may differ from this leader's file: a leaving
     * leader's file still lists itself), else this node's file. */
    size_t blen;
    const char *text = http_request_body(req, &blen);
    struct rc_member want[RC_MAX_MEMBERS];
    size_t n_want = 0;
    char err[256] = "";
    if (blen > 0) {
        json_error_t jerr;
        json_t *body = json_loadb(text, blen, 0, &jerr);
        int bad = 0;
        if (body == NULL) {
            snprintf(err, sizeof err, "%s", jerr.text);
            bad = -1;
        } else {
            bad = rc_members_from_json(body, want, &n_want, err, sizeof err);
            json_decref(body);
        }
        if (bad) {
            http_respond_json(req, 400, json_pack("{s:s}", "error", err));
            return;
        }
    }
    struct sync_job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        http_respond_json(req, 503, json_pack("{s:s}", "error", "out of memory"));
        return;
    }
    j->n_steps = plan(n, rc_raft_self(n->raft), blen > 0 ? want : NULL, n_want, j->steps, err, sizeof err, NULL,
                      NULL);
    if (j->n_steps < 0) {
        free(j);
        http_respond_json(req, 409, json_pack("{s:s}", "error", err));
        return;
    }
    j->req = req;
    j->n = n;
    j->done = json_array();
    sync_run(j);
}

void rc_api_members_routes(rc_node *n)
{
    http_api_route(n->http, "GET", "/v1/cluster/members", get_members, n);
    if (n->cfg.http_admin)
        http_api_route(n->http, "POST", "/v1/cluster/members/sync", post_members_sync, n);
}
