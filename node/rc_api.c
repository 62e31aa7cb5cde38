/* The node's HTTP API (DESIGN §7): JSON under /v1/, Prometheus text at
 * /metrics. The HTTP protocol itself is h2o's (node/http_api.c); this file
 * only maps node state to JSON and admin requests to raft operations. */
#include <inttypes.h>
#include <jansson.h>
#include <raft.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns/dns_server.h"
#include "node/base/rc_log.h"
#include "node/base/rc_utf8.h"
#include "node/http_api.h"
#include "node/rc_bounce.h"
#include "node/rc_dns.h"
#include "node/rc_engagement_json.h"
#include "node/rc_node_internal.h"
#include "proto/ricochet.pb-c.h"
#include "raft/rc_forward.h"

static const char *state_name(int s)
{
    switch (s) {
    case RAFT_FOLLOWER: return "follower";
    case RAFT_CANDIDATE: return "candidate";
    case RAFT_LEADER: return "leader";
    default: return "unknown";
    }
}

static json_t *addr_json(const char *host, unsigned port)
{
    if (port == 0)
        return json_null();
    return json_sprintf("%s:%u", host, port);
}

static const struct rc_view_node *view_node(const struct rc_view *v, uint64_t id)
{
    for (size_t i = 0; i < v->n_nodes; i++)
        if (v->nodes[i].id == id)
            return &v->nodes[i];
    return NULL;
}

/* The absolute name the responder publishes for a view name (null when
 * the name is unusable; the node refuses such a configuration at start). */
static json_t *dns_fqdn(const char *name, const char *zone)
{
    char out[512], err[256];
    return dns_zone_name(zone, name, out, sizeof out, err, sizeof err) == DNS_SERVER_OK ? json_string(out)
                                                                                    : json_null();
}

static json_t *cluster_json(rc_node *n)
{
    struct rc_raft_status st;
    rc_raft_get_status(n->raft, &st);
    rc_fsm *fsm = rc_raft_fsm(n->raft);
    const struct rc_view *view = rc_fsm_view(fsm);
    char digest[65];
    rc_fsm_digest_hex(fsm, digest);

    json_t *nodes = json_array();
    for (size_t i = 0; i < n->cfg.n_members; i++) {
        const struct rc_cfg_member *m = &n->cfg.members[i];
        const struct rc_view_node *vn = view_node(view, m->id);
        const char *state = m->id == n->cfg.node_id ? state_name(st.state)
                            : m->id == st.leader     ? "leader"
                            : st.leader              ? "follower"
                                                     : "unknown";
        json_array_append_new(nodes, json_pack("{s:I, s:s, s:s, s:b, s:b, s:b, s:s, s:o, s:o, s:o, s:o, s:o, s:o}",
            "id", (json_int_t)m->id,
            "site", m->site,
            "role", m->role,
            "witness", m->witness,
            "healthy", vn ? vn->healthy : 1,
            "drained", vn ? vn->drained : 0,
            "state", state,
            "smtp", addr_json(m->address, m->smtp_port),
            "submission", addr_json(m->address, m->submission_port),
            "dns", addr_json(m->address, m->dns_port),
            "http", addr_json(m->address, m->http_port),
            "raft", addr_json(m->address, m->raft_port),
            "peer", addr_json(m->address, m->peer_port)));
        char name[32];
        rc_dns_node_label(m->id, name, sizeof name);
        json_object_set_new(json_array_get(nodes, json_array_size(nodes) - 1), "dns_name",
                            dns_fqdn(name, n->cfg.dns_zone));
    }
    json_t *names = json_pack("{s:o, s:o, s:o}", "zone", dns_fqdn("@", n->cfg.dns_zone),
        "relay_name", dns_fqdn(n->cfg.dns_relay_name, n->cfg.dns_zone),
        "bounce_name", n->cfg.dns_bounce_name[0] ? dns_fqdn(n->cfg.dns_bounce_name, n->cfg.dns_zone) : json_null());
    return json_pack("{s:I, s:s, s:o, s:I, s:I, s:I, s:I, s:b, s:I, s:s, s:I, s:s, s:I, s:b, s:o, s:o}",
        "self", (json_int_t)n->cfg.node_id,
        "state", state_name(st.state),
        "leader", st.leader ? json_integer((json_int_t)st.leader) : json_null(),
        "term", (json_int_t)st.term,
        "commit_index", (json_int_t)st.commit_index,
        "applied_index", (json_int_t)st.applied_index,
        "last_index", (json_int_t)st.last_index,
        "leader_ready", st.leader_ready,
        "applied_records", (json_int_t)rc_fsm_applied_records(fsm),
        "state_digest", digest,
        "view_serial", (json_int_t)view->serial,
        "leader_site", view->leader_site,
        "messages", (json_int_t)rc_fsm_message_count(fsm),
        "disk_low", st.disk_low,
        "dns_names", names,
        "nodes", nodes);
}

static void get_cluster(http_request *req, void *data)
{
    http_respond_json(req, 200, cluster_json(data));
}

json_t *rc_api_text(const char *s)
{
    if (s == NULL)
        return json_null();
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    char *fixed = rc_utf8_repair(s); /* jansson refuses what is not UTF-8 */
    j = fixed ? json_string(fixed) : NULL;
    free(fixed);
    return j ? j : json_null();
}

json_t *rc_api_history_json(const struct rc_history *h)
{
    json_t *e = json_pack("{s:s, s:I}", "status", rc_status_name(h->status), "at", (json_int_t)h->at_ms);
    if (h->smtp_code) json_object_set_new(e, "code", json_integer(h->smtp_code));
    if (h->internal_code) json_object_set_new(e, "internal_code", json_integer(h->internal_code));
    if (h->enhanced) json_object_set_new(e, "enhanced", rc_api_text(h->enhanced));
    if (h->text) json_object_set_new(e, "text", rc_api_text(h->text));
    if (h->reason) json_object_set_new(e, "reason", rc_api_text(h->reason));
    if (h->remote_mta) json_object_set_new(e, "remote_mta", rc_api_text(h->remote_mta));
    if (h->reason || h->status == RC_ST_BOUNCED) json_object_set_new(e, "hard", json_boolean(h->hard));
    if (h->node) json_object_set_new(e, "node", json_integer((json_int_t)h->node));
    return e;
}

static json_t *message_json(rc_node *n, const struct rc_msg *m)
{
    json_t *rcpts = json_array();
    for (size_t i = 0; i < m->n_rcpts; i++) {
        const struct rc_rcpt *r = &m->rcpts[i];
        json_t *hist = json_array();
        for (size_t j = 0; j < r->n_history; j++)
            json_array_append_new(hist, rc_api_history_json(&r->history[j]));
        json_array_append_new(rcpts, json_pack("{s:o, s:s, s:I, s:o, s:o, s:o, s:o, s:I}",
            "address", rc_api_text(r->address),
            "status", rc_status_name(r->status),
            "attempts", (json_int_t)r->attempts,
            "reason", rc_api_text(r->reason),
            "notify", rc_api_text(r->notify),
            "orcpt", rc_api_text(r->orcpt),
            "history", hist,
            "webhook_sent", (json_int_t)r->webhook_sent));
    }
    char sha[65];
    for (int i = 0; i < 32; i++)
        snprintf(sha + 2 * i, 3, "%02x", m->body_sha256[i]);
    return json_pack("{s:s, s:o, s:I, s:I, s:I, s:I, s:s, s:b, s:I, s:o, s:o, s:b, s:o}",
        "id", m->id,
        "from", rc_api_text(m->mail_from),
        "received", (json_int_t)m->received_ms,
        "expire_at", (json_int_t)m->expire_at_ms,
        "ttr_at", (json_int_t)m->ttr_at_ms,
        "size", (json_int_t)m->body_size,
        "sha256", sha,
        "body_present", rc_node_has_body(n, m->id),
        "accepted_by", (json_int_t)m->accepted_by,
        "ret", rc_api_text(m->ret),
        "envid", rc_api_text(m->envid),
        "smtputf8", m->smtputf8,
        "recipients", rcpts);
}

static void answer_message(http_request *req, rc_node *n)
{
    const char *id = http_request_path(req) + strlen("/v1/messages/");
    const struct rc_msg *m = rc_fsm_message(rc_raft_fsm(n->raft), id);
    if (m == NULL) {
        http_respond_json(req, 404, json_pack("{s:s, s:s}", "error", "no such message", "id", id));
        return;
    }
    http_respond_json(req, 200, message_json(n, m));
}

struct read_ctx {
    http_request *req;
    rc_node *n;
};

static void barrier_done(void *data, int status)
{
    struct read_ctx *r = data;
    if (status == RC_OK)
        answer_message(r->req, r->n);
    else
        http_respond_json(r->req, 503, json_pack("{s:s, s:b}", "error", rc_strerror(status), "retryable", 1));
    free(r);
}

/* Requests only the leader can serve: true on the leader; elsewhere answers
 * 421 with why, the leader's id (or null), which the CLI follows, and its
 * raft address: a leader that is leaving may be in no member table any
 * more, and the CLI can still find it by its host. */
bool rc_api_leader_or_421(rc_node *n, http_request *req, const char *why)
{
    struct rc_raft_status st;
    rc_raft_get_status(n->raft, &st);
    if (st.state == RAFT_LEADER)
        return true;
    struct rc_raft_server have[RC_MAX_MEMBERS];
    size_t nh = rc_raft_servers(n->raft, have, RC_MAX_MEMBERS);
    const char *raft = NULL;
    for (size_t i = 0; i < nh; i++)
        if (st.leader != 0 && have[i].id == st.leader)
            raft = have[i].raft_addr;
    http_respond_json(req, 421, json_pack("{s:s, s:o, s:o}", "error", why,
                      "leader", st.leader ? json_integer((json_int_t)st.leader) : json_null(),
                      "leader_raft", raft ? json_string(raft) : json_null()));
    return false;
}

/* A plain read answers from this node's state (it may lag the leader by a
 * few milliseconds). With ?consistent=1 the leader first commits a barrier,
 * so the answer reflects every write acknowledged before the request
 * (libraft 0.15 has no read index). */
static void get_message(http_request *req, void *data)
{
    rc_node *n = data;
    if (strstr(http_request_query(req), "consistent=1") == NULL) {
        answer_message(req, n);
        return;
    }
    if (!rc_api_leader_or_421(n, req, "consistent reads are served by the leader"))
        return;
    struct read_ctx *r = calloc(1, sizeof *r);
    r->req = req;
    r->n = n;
    int rv = rc_raft_barrier(n->raft, barrier_done, r);
    if (rv != RC_OK)
        barrier_done(r, rv);
}

/* ------------------------------------------------------------ transfer */

struct transfer_ctx {
    http_request *req;
    rc_node *n;
    uint64_t to;
};

static void transfer_done(void *data, int status)
{
    struct transfer_ctx *t = data;
    struct rc_raft_status st;
    rc_raft_get_status(t->n->raft, &st);
    if (status == RC_OK) {
        http_respond_json(t->req, 200, json_pack("{s:b, s:o}", "ok", 1,
                          "leader", st.leader ? json_integer((json_int_t)st.leader) : json_null()));
    } else {
        rc_delivery_resume(t->n);
        http_respond_json(t->req, 409, json_pack("{s:s}", "error", rc_strerror(status)));
    }
    free(t);
}

static json_t *body_json(http_request *req, json_error_t *jerr)
{
    size_t len;
    const char *body = http_request_body(req, &len);
    if (len == 0)
        return json_object();
    return json_loadb(body, len, 0, jerr);
}

/* Deliveries in flight have finished (or delivery.transfer_wait passed):
 * hand over now. */
static void transfer_quiesced(void *data)
{
    struct transfer_ctx *t = data;
    int rv = rc_raft_transfer(t->n->raft, t->to, transfer_done, t);
    if (rv != RC_OK) {
        rc_delivery_resume(t->n);
        http_respond_json(t->req, rv == RC_EINVAL ? 400 : 409,
                          json_pack("{s:s}", "error", rv == RC_EINVAL ? "no such voter" : rc_strerror(rv)));
        free(t);
    }
}

static void post_transfer(http_request *req, void *data)
{
    rc_node *n = data;
    json_error_t jerr;
    json_t *body = body_json(req, &jerr);
    if (body == NULL) {
        http_respond_json(req, 400, json_pack("{s:s}", "error", jerr.text));
        return;
    }
    json_int_t to = json_integer_value(json_object_get(body, "to"));
    json_decref(body);
    if (!rc_api_leader_or_421(n, req, "not the leader; ask the leader"))
        return;
    if (to < 0 || (to > 0 && rc_raft_member(n->raft, (uint64_t)to) == NULL)) {
        http_respond_json(req, 400, json_pack("{s:s}", "error", "no such voter"));
        return;
    }
    struct transfer_ctx *t = calloc(1, sizeof *t);
    if (t == NULL) {
        http_respond_json(req, 503, json_pack("{s:s}", "error", "out of memory"));
        return;
    }
    t->req = req;
    t->n = n;
    t->to = (uint64_t)to;
    /* A planned transfer lets the attempts in flight finish first, so that
     * their outcomes are recorded here and the next leader repeats none. */
    if (rc_delivery_quiesce(n, transfer_quiesced, t) != 0) {
        free(t);
        http_respond_json(req, 409, json_pack("{s:s}", "error", "a transfer is already in progress"));
    }
}

/* ---------------------------------------------------------- proposals */

struct propose_ctx {
    http_request *req;
    json_t *ok_body;
};

static void propose_done(void *data, int status)
{
    struct propose_ctx *p = data;
    if (status == RC_OK)
        http_respond_json(p->req, 200, p->ok_body);
    else {
        json_decref(p->ok_body);
        http_respond_json(p->req, rc_err_retryable(status) ? 503 : 400,
                          json_pack("{s:s, s:b}", "error", rc_strerror(status), "retryable", rc_err_retryable(status)));
    }
    free(p);
}

static void propose_and_answer(rc_node *n, http_request *req, Ricochet__Record *rec, json_t *ok_body)
{
    struct propose_ctx *p = calloc(1, sizeof *p);
    p->req = req;
    p->ok_body = ok_body;
    int rv = rc_raft_propose(n->raft, rec, propose_done, p);
    if (rv != RC_OK)
        propose_done(p, rv);
}

/* ------------------------------------------------------------- discard */

struct discard_ctx {
    http_request *req;
    unsigned pending, ok;
    int err;
};

static void discard_release(struct discard_ctx *d)
{
    if (--d->pending > 0)
        return;
    if (d->err == RC_OK)
        http_respond_json(d->req, 200, json_pack("{s:b, s:I}", "ok", 1, "discarded", (json_int_t)d->ok));
    else
        http_respond_json(d->req, rc_err_retryable(d->err) ? 503 : 400,
                          json_pack("{s:s, s:b, s:I}", "error", rc_strerror(d->err), "retryable",
                                    rc_err_retryable(d->err), "discarded", (json_int_t)d->ok));
    free(d);
}

static void discard_done(void *data, int status)
{
    struct discard_ctx *d = data;
    if (status == RC_OK)
        d->ok++;
    else
        d->err = status;
    discard_release(d);
}

/* POST /v1/messages/ID/discard [{"recipient": N}]: an operator ends the
 * recipients that are not final yet (all, or one) as `discarded`; they are
 * never attempted again. */
static void post_discard(http_request *req, rc_node *n, const struct rc_msg *m, char *id, json_t *body)
{
    json_t *jr = json_object_get(body, "recipient"); /* borrowed from body */
    bool bad = jr && !json_is_integer(jr);
    long only = jr ? (long)json_integer_value(jr) : -1;
    json_decref(body);
    if (bad || (jr && (only < 0 || (size_t)only >= m->n_rcpts))) {
        http_respond_json(req, 400, json_pack("{s:s}", "error", "recipient: no such index"));
        return;
    }
    struct discard_ctx *d = calloc(1, sizeof *d);
    if (d == NULL) {
        http_respond_json(req, 503, json_pack("{s:s}", "error", "out of memory"));
        return;
    }
    d->req = req;
    d->pending = 1; /* held until every proposal is out */
    for (size_t i = 0; i < m->n_rcpts; i++) {
        if ((only >= 0 && (size_t)only != i) || rc_status_terminal(m->rcpts[i].status))
            continue;
        Ricochet__StatusUpdate u;
        ricochet__status_update__init(&u);
        u.id = id;
        u.has_recipient = u.has_status = u.has_at_ms = u.has_node = true;
        u.recipient = (uint32_t)i;
        u.status = RICOCHET__STATUS__DISCARDED;
        u.at_ms = rc_now_ms();
        u.node = n->cfg.node_id;
        u.reason = "discarded";
        u.text = "discarded by an operator";
        Ricochet__Record rec;
        ricochet__record__init(&rec);
        rec.kind_case = RICOCHET__RECORD__KIND_STATUS;
        rec.status = &u;
        d->pending++;
        int rv = rc_raft_propose(n->raft, &rec, discard_done, d);
        if (rv != RC_OK)
            discard_done(d, rv);
    }
    if (d->pending == 1 && d->ok == 0 && d->err == RC_OK) {
        free(d);
        http_respond_json(req, 409, json_pack("{s:s}", "error", "no recipient left to discard (all final)"));
        return;
    }
    discard_release(d);
}

struct engagement {
    http_request *req; /* NULL: a tracking hit, answered already; results are logged */
    rc_node *n;
    char id[128];
    struct rc_engagement what;
    bool caught_up;
};

static const char *engagement_event(const struct engagement *e)
{
    return e->what.status == RC_ST_OPENED ? "opened" : "clicked";
}

/* The end of an engagement: the API's answer, or a tracking hit's log line. */
static void engagement_finish(struct engagement *e, int status, int http_status, json_t *answer)
{
    if (e->req != NULL) {
        if (answer == NULL)
            answer = status == RC_OK ? json_pack("{s:b}", "ok", 1)
                                     : json_pack("{s:s, s:b}", "error", rc_strerror(status), "retryable",
                                                 rc_err_retryable(status));
        http_respond_json(e->req, http_status, answer);
    } else {
        json_decref(answer);
        if (status == RC_OK && http_status == 200) {
            e->n->tracking_recorded++;
            rc_debug("api", "tracking_recorded id=%s rcpt=%zu event=%s", e->id, e->what.rcpt, engagement_event(e));
        } else {
            e->n->tracking_not_recorded++;
            rc_info("api", "tracking_not_recorded id=%s rcpt=%zu event=%s reason=\"%s\"", e->id, e->what.rcpt,
                    engagement_event(e), status != RC_OK ? rc_strerror(status)
                                         : http_status == 404 ? "no such message"
                                                              : "recipient not delivered");
        }
    }
    free(e);
}

static void engagement_done(void *data, int status)
{
    struct engagement *e = data;
    engagement_finish(e, status, status == RC_OK ? 200 : rc_err_retryable(status) ? 503 : 409, NULL);
}

static void engagement_record(struct engagement *e);

static void engagement_caught_up(void *data, int status)
{
    struct engagement *e = data;
    if (status != RC_OK) {
        engagement_done(e, status);
        return;
    }
    e->caught_up = true;
    engagement_record(e);
}

/* Proposes the event once this node's copy shows the recipient delivered;
 * a follower whose copy may trail first catches up with the leader. */
static void engagement_record(struct engagement *e)
{
    const struct rc_msg *m = rc_fsm_message(rc_raft_fsm(e->n->raft), e->id);
    int now = m && e->what.rcpt < m->n_rcpts ? m->rcpts[e->what.rcpt].status : RC_ST_UNSPECIFIED;
    if (now != RC_ST_DELIVERED) {
        struct rc_raft_status st;
        rc_raft_get_status(e->n->raft, &st);
        if (!e->caught_up && st.state != 3 /* RAFT_LEADER */) {
            int rv = rc_raft_catch_up(e->n->raft, engagement_caught_up, e);
            if (rv != RC_OK)
                engagement_caught_up(e, rv);
            return;
        }
        engagement_finish(e, RC_OK, m ? 409 : 404,
                          m ? json_pack("{s:s, s:s}", "error", "engagement is recorded only on a delivered recipient",
                                        "status", rc_status_name(now))
                            : json_pack("{s:s, s:s}", "error", "no such message", "id", e->id));
        return;
    }
    Ricochet__StatusUpdate u;
    ricochet__status_update__init(&u);
    u.id = e->id;
    u.has_recipient = u.has_status = u.has_at_ms = u.has_node = true;
    u.recipient = (uint32_t)e->what.rcpt;
    u.status = (Ricochet__Status)e->what.status;
    u.at_ms = e->what.at_ms ? e->what.at_ms : rc_now_ms();
    u.node = e->n->cfg.node_id;
    u.text = e->what.url[0] ? e->what.url : NULL;
    Ricochet__Record rec;
    ricochet__record__init(&rec);
    rec.kind_case = RICOCHET__RECORD__KIND_STATUS;
    rec.status = &u;
    int rv = rc_raft_propose(e->n->raft, &rec, engagement_done, e); /* packs the record now */
    if (rv != RC_OK)
        engagement_done(e, rv);
}

int rc_engagement_record(rc_node *n, const char *id, const struct rc_engagement *what, http_request *req)
{
    struct engagement *e = calloc(1, sizeof *e);
    if (e == NULL)
        return RC_ENOMEM;
    e->req = req;
    e->n = n;
    snprintf(e->id, sizeof e->id, "%s", id);
    e->what = *what;
    engagement_record(e);
    return RC_OK;
}

/* POST /v1/messages/ID/engagement {"recipient": N, "event": "opened"|
 * "clicked", "url", "at"}: a tracking system reports that a delivered
 * recipient opened the message or followed a link. Recorded in the history
 * (status unchanged; it resets the soft-bounce count, docs/STATUS.md) and
 * sent to the webhook receiver. */
static void post_engagement(http_request *req, rc_node *n, const struct rc_msg *m, char *id, json_t *body)
{
    struct rc_engagement what;
    const char *bad = rc_engagement_from_json(body, m->n_rcpts, &what);
    json_decref(body);
    if (bad) {
        http_respond_json(req, 400, json_pack("{s:s}", "error", bad));
        return;
    }
    if (rc_engagement_record(n, id, &what, req) != RC_OK)
        http_respond_json(req, 503, json_pack("{s:s}", "error", "out of memory"));
}

/* POST /v1/messages/ID/ACTION */
static void post_message_action(http_request *req, void *data)
{
    rc_node *n = data;
    const char *rest = http_request_path(req) + strlen("/v1/messages/");
    const char *slash = strchr(rest, '/');
    bool discard = slash && strcmp(slash, "/discard") == 0, engagement = slash && strcmp(slash, "/engagement") == 0;
    if (!(discard || engagement) || slash == rest || (size_t)(slash - rest) >= 128) {
        http_respond_json(req, 404, json_pack("{s:s}", "error", "POST /v1/messages/ID/discard or .../engagement"));
        return;
    }
    char id[128];
    memcpy(id, rest, (size_t)(slash - rest));
    id[slash - rest] = '\0';
    const struct rc_msg *m = rc_fsm_message(rc_raft_fsm(n->raft), id);
    if (m == NULL) {
        http_respond_json(req, 404, json_pack("{s:s, s:s}", "error", "no such message", "id", id));
        return;
    }
    json_error_t jerr;
    json_t *body = body_json(req, &jerr); /* the handler owns it */
    if (body == NULL)
        http_respond_json(req, 400, json_pack("{s:s}", "error", jerr.text));
    else if (discard)
        post_discard(req, n, m, id, body);
    else
        post_engagement(req, n, m, id, body);
}

static void drain_common(http_request *req, rc_node *n, bool drain)
{
    json_error_t jerr;
    json_t *body = body_json(req, &jerr);
    if (body == NULL) {
        http_respond_json(req, 400, json_pack("{s:s}", "error", jerr.text));
        return;
    }
    json_int_t node = json_integer_value(json_object_get(body, "node"));
    const char *site = json_string_value(json_object_get(body, "site"));
    Ricochet__NodeHealthChange ch[RC_CFG_MAX_MEMBERS], *pch[RC_CFG_MAX_MEMBERS];
    size_t nch = 0;
    json_t *ids = json_array();
    for (size_t i = 0; i < n->cfg.n_members; i++) {
        const struct rc_cfg_member *m = &n->cfg.members[i];
        if (!((node && (uint64_t)node == m->id) || (site && strcmp(site, m->site) == 0)))
            continue;
        ricochet__node_health_change__init(&ch[nch]);
        ch[nch].has_node = ch[nch].has_drained = ch[nch].has_set_drained = true;
        ch[nch].node = m->id;
        ch[nch].drained = drain;
        ch[nch].set_drained = true;
        pch[nch] = &ch[nch];
        nch++;
        json_array_append_new(ids, json_integer((json_int_t)m->id));
    }
    json_decref(body);
    if (nch == 0) {
        json_decref(ids);
        http_respond_json(req, 404, json_pack("{s:s}", "error", "no such node or site"));
        return;
    }
    Ricochet__ViewChange vc;
    ricochet__view_change__init(&vc);
    vc.nodes = pch;
    vc.n_nodes = nch;
    Ricochet__Record rec;
    ricochet__record__init(&rec);
    rec.kind_case = RICOCHET__RECORD__KIND_VIEW;
    rec.view = &vc;
    propose_and_answer(n, req, &rec, json_pack("{s:b, s:o, s:b}", "ok", 1, "nodes", ids, "drained", drain));
}

static void post_drain(http_request *req, void *data) { drain_common(req, data, true); }
static void post_undrain(http_request *req, void *data) { drain_common(req, data, false); }

static void suppressions(http_request *req, void *data)
{
    rc_node *n = data;
    const char *method = http_request_method(req);
    const char *path = http_request_path(req);
    const char *addr = strncmp(path, "/v1/suppressions/", 17) == 0 ? path + 17 : NULL;
    rc_fsm *fsm = rc_raft_fsm(n->raft);
    if (strcmp(method, "GET") == 0) {
        json_t *list = json_array();
        size_t pos = 0;
        const struct rc_suppression *s;
        while ((s = rc_fsm_suppression_next(fsm, &pos)) != NULL) {
            if (addr && *addr && strcasecmp(addr, s->address) != 0)
                continue;
            json_array_append_new(list, json_pack("{s:o, s:o, s:o, s:I}", "address", rc_api_text(s->address),
                "reason", rc_api_text(s->reason), "source", rc_api_text(s->source), "since", (json_int_t)s->since_ms));
        }
        if (addr && *addr && json_array_size(list) == 0) {
            json_decref(list);
            http_respond_json(req, 404, json_pack("{s:s}", "error", "not suppressed"));
            return;
        }
        http_respond_json(req, 200, json_pack("{s:o}", "suppressions", list));
        return;
    }
    Ricochet__SuppressionChange c;
    ricochet__suppression_change__init(&c);
    c.has_add = c.has_at_ms = true;
    c.at_ms = rc_now_ms();
    json_t *body = NULL;
    if (strcmp(method, "POST") == 0) {
        json_error_t jerr;
        body = body_json(req, &jerr);
        if (body == NULL) {
            http_respond_json(req, 400, json_pack("{s:s}", "error", jerr.text));
            return;
        }
        c.address = (char *)json_string_value(json_object_get(body, "address"));
        c.reason = (char *)json_string_value(json_object_get(body, "reason"));
        c.add = true;
    } else if (strcmp(method, "DELETE") == 0) {
        c.address = (char *)addr;
        c.add = false;
    }
    if (c.address == NULL || *c.address == '\0' || strchr(c.address, '@') == NULL) {
        json_decref(body);
        http_respond_json(req, 400, json_pack("{s:s}", "error", "an address (local@domain) is required"));
        return;
    }
    c.source = "operator";
    if (c.reason == NULL)
        c.reason = c.add ? "operator" : NULL;
    Ricochet__Record rec;
    ricochet__record__init(&rec);
    rec.kind_case = RICOCHET__RECORD__KIND_SUPPRESSION;
    rec.suppression = &c;
    propose_and_answer(n, req, &rec, json_pack("{s:b, s:s, s:b}", "ok", 1, "address", c.address, "suppressed", c.add));
    json_decref(body);
}

/* --------------------------------------------------------------- probe */

struct probe_run {
    rc_node *n;
    http_request *req;
    uint64_t count, size, inflight, rate;
    uv_timer_t pacer; /* open-loop submission at `rate` per second */
    uint64_t started, submitted, done, ok, failed;
    uint64_t t0;
    uint64_t *lat_ns;
    uint8_t *payload;
};

struct probe_one {
    struct probe_run *run;
    uint64_t t_start;
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void probe_submit(struct probe_run *p);

static void probe_pacer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void probe_done(void *data, int status)
{
    struct probe_one *one = data;
    struct probe_run *p = one->run;
    uint64_t now = uv_hrtime();
    if (status == RC_OK)
        p->lat_ns[p->ok++] = now - one->t_start;
    else
        p->failed++;
    free(one);
    p->done++;
    if (p->done == p->count) {
        double secs = (double)(now - p->t0) / 1e9;
        qsort(p->lat_ns, p->ok, sizeof *p->lat_ns, cmp_u64);
        double p50 = p->ok ? (double)p->lat_ns[p->ok / 2] / 1e6 : 0;
        double p99 = p->ok ? (double)p->lat_ns[(p->ok * 99) / 100 < p->ok ? (p->ok * 99) / 100 : p->ok - 1] / 1e6 : 0;
        http_respond_json(p->req, 200, json_pack("{s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f}",
            "count", (json_int_t)p->count, "size", (json_int_t)p->size,
            "committed", (json_int_t)p->ok, "failed", (json_int_t)p->failed,
            "seconds", secs, "per_second", secs > 0 ? (double)p->ok / secs : 0.0,
            "p50_ms", p50, "p99_ms", p99));
        free(p->lat_ns);
        free(p->payload);
        if (p->rate)
            uv_close((uv_handle_t *)&p->pacer, probe_pacer_closed);
        else
            free(p);
        return;
    }
    if (!p->rate)
        probe_submit(p);
}

static void probe_submit(struct probe_run *p)
{
    uint64_t allowed = p->count;
    if (p->rate) {
        uint64_t elapsed_ns = uv_hrtime() - p->t0;
        allowed = elapsed_ns / 1000 * p->rate / 1000000 + 1;
        if (allowed > p->count)
            allowed = p->count;
        if (p->submitted >= p->count)
            uv_timer_stop(&p->pacer);
    }
    while (p->submitted < allowed && p->submitted - p->done < p->inflight) {
        Ricochet__Probe pr;
        ricochet__probe__init(&pr);
        pr.has_payload = true;
        pr.payload.data = p->payload;
        pr.payload.len = p->size;
        Ricochet__Record rec;
        ricochet__record__init(&rec);
        rec.kind_case = RICOCHET__RECORD__KIND_PROBE;
        rec.probe = &pr;
        struct probe_one *one = malloc(sizeof *one);
        one->run = p;
        one->t_start = uv_hrtime();
        p->submitted++;
        /* vary the payload so no two records are alike */
        memcpy(p->payload, &p->submitted, p->size < 8 ? p->size : 8);
        int rv = rc_raft_propose(p->n->raft, &rec, probe_done, one);
        if (rv != RC_OK) {
            probe_done(one, rv); /* may recurse into submit; bounded by count */
            return;
        }
    }
}

static void probe_pacer_cb(uv_timer_t *t)
{
    probe_submit(t->data);
}

static void post_probe(http_request *req, void *data)
{
    rc_node *n = data;
    json_error_t jerr;
    json_t *body = body_json(req, &jerr);
    if (body == NULL) {
        http_respond_json(req, 400, json_pack("{s:s}", "error", jerr.text));
        return;
    }
    json_int_t count = json_integer_value(json_object_get(body, "count"));
    json_int_t size = json_integer_value(json_object_get(body, "size"));
    json_int_t inflight = json_integer_value(json_object_get(body, "inflight"));
    json_int_t rate = json_integer_value(json_object_get(body, "rate"));
    json_decref(body);
    if (count < 1 || count > 10000000 || size < 0 || size > (json_int_t)(n->cfg.max_peer_frame / 2) ||
        inflight < 1 || inflight > 100000 || rate < 0 || rate > 1000000) {
        http_respond_json(req, 400, json_pack("{s:s}", "error",
                          "count 1..10000000, size 0..max_peer_frame/2, inflight 1..100000"));
        return;
    }
    struct probe_run *p = calloc(1, sizeof *p);
    p->n = n;
    p->req = req;
    p->count = (uint64_t)count;
    p->size = (uint64_t)size;
    p->inflight = (uint64_t)inflight;
    p->lat_ns = calloc(p->count, sizeof *p->lat_ns);
    p->payload = calloc(1, p->size ? p->size : 1);
    for (uint64_t i = 0; i < p->size; i++)
        p->payload[i] = (uint8_t)('a' + i % 26);
    p->rate = (uint64_t)rate;
    p->t0 = uv_hrtime();
    if (p->rate) {
        uv_timer_init(n->loop, &p->pacer);
        p->pacer.data = p;
        uv_timer_start(&p->pacer, probe_pacer_cb, 0, 1);
        return;
    }
    probe_submit(p);
}

/* ------------------------------------------------------------ webhooks */

static void get_webhooks(http_request *req, void *data)
{
    rc_node *n = data;
    struct rc_webhooks_stats w;
    rc_webhooks_get_stats(n, &w);
    http_respond_json(req, 200, json_pack("{s:o, s:b, s:b, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:o, s:o}",
        "url", n->cfg.webhooks_url[0] ? json_string(n->cfg.webhooks_url) : json_null(),
        "configured", w.configured,
        "sending", w.active,
        "recipients_pending", (json_int_t)w.recipients_pending,
        "in_flight", (json_int_t)w.in_flight,
        "failures", (json_int_t)w.failures,
        "next_try", w.next_try_ms ? json_integer((json_int_t)w.next_try_ms) : json_null(),
        "posts_ok", (json_int_t)w.posts_ok,
        "posts_failed", (json_int_t)w.posts_failed,
        "events_sent", (json_int_t)w.events_sent,
        "recipients_dropped", (json_int_t)w.recipients_dropped,
        "last_status", (json_int_t)w.last_status,
        "last_ok", w.last_ok_ms ? json_integer((json_int_t)w.last_ok_ms) : json_null(),
        "last_error", w.last_error[0] ? json_string(w.last_error) : json_null()));
}

/* ------------------------------------------------------------- metrics */

static void get_metrics(http_request *req, void *data)
{
    rc_node *n = data;
    struct rc_raft_status st;
    rc_raft_get_status(n->raft, &st);
    struct rc_forward_stats fs;
    rc_forward_get_stats(n->fwd, &fs);
    rc_fsm *fsm = rc_raft_fsm(n->raft);
    char buf[12288];
    int len = snprintf(buf, sizeof buf,
        "# HELP ricochet_raft_term Current raft term.\n# TYPE ricochet_raft_term gauge\nricochet_raft_term %" PRIu64 "\n"
        "# HELP ricochet_raft_is_leader 1 when this node is the leader.\n# TYPE ricochet_raft_is_leader gauge\nricochet_raft_is_leader %d\n"
        "# HELP ricochet_raft_commit_index Highest committed log index.\n# TYPE ricochet_raft_commit_index gauge\nricochet_raft_commit_index %" PRIu64 "\n"
        "# HELP ricochet_raft_applied_index Highest applied log index.\n# TYPE ricochet_raft_applied_index gauge\nricochet_raft_applied_index %" PRIu64 "\n"
        "# HELP ricochet_fsm_records_applied_total Records applied by the FSM.\n# TYPE ricochet_fsm_records_applied_total counter\nricochet_fsm_records_applied_total %" PRIu64 "\n"
        "# HELP ricochet_fsm_records_skipped_total Records skipped (duplicates, undecodable, forbidden transitions).\n# TYPE ricochet_fsm_records_skipped_total counter\nricochet_fsm_records_skipped_total %" PRIu64 "\n"
        "# HELP ricochet_proposals_total Proposals finished on this node, by result.\n# TYPE ricochet_proposals_total counter\n"
        "ricochet_proposals_total{result=\"ok\"} %" PRIu64 "\nricochet_proposals_total{result=\"failed\"} %" PRIu64 "\n"
        "# HELP ricochet_forwarded_total Proposals forwarded to the leader.\n# TYPE ricochet_forwarded_total counter\nricochet_forwarded_total %" PRIu64 "\n"
        "# HELP ricochet_forward_timeouts_total Forwarded proposals without an answer in time.\n# TYPE ricochet_forward_timeouts_total counter\nricochet_forward_timeouts_total %" PRIu64 "\n"
        "# HELP ricochet_forward_lost_total Forwarded proposals whose leader went away.\n# TYPE ricochet_forward_lost_total counter\nricochet_forward_lost_total %" PRIu64 "\n"
        "# HELP ricochet_messages Messages in the replicated store.\n# TYPE ricochet_messages gauge\nricochet_messages %zu\n"
        "# HELP ricochet_disk_free_bytes Free space in the data directory.\n# TYPE ricochet_disk_free_bytes gauge\nricochet_disk_free_bytes %" PRIu64 "\n"
        "# HELP ricochet_disk_low 1 when proposals are refused for lack of disk space.\n# TYPE ricochet_disk_low gauge\nricochet_disk_low %d\n",
        st.term, st.state == RAFT_LEADER, st.commit_index, st.applied_index, rc_fsm_applied_records(fsm),
        rc_fsm_skipped_records(fsm), st.proposals_ok, st.proposals_failed, fs.forwarded, fs.timeouts, fs.lost,
        rc_fsm_message_count(fsm), st.free_bytes, st.disk_low);
    if (len < 0 || (size_t)len >= sizeof buf)
        len = (int)strlen(buf);
    struct rc_delivery_stats ds;
    rc_delivery_get_stats(n, &ds);
    snprintf(buf + len, sizeof buf - (size_t)len,
        "# HELP ricochet_delivery_active 1 when this node delivers (the leader).\n# TYPE ricochet_delivery_active gauge\nricochet_delivery_active %d\n"
        "# HELP ricochet_delivery_queue Recipients waiting for their next attempt (leader).\n# TYPE ricochet_delivery_queue gauge\nricochet_delivery_queue %zu\n"
        "# HELP ricochet_delivery_inflight Delivery transactions in flight.\n# TYPE ricochet_delivery_inflight gauge\nricochet_delivery_inflight %u\n"
        "# HELP ricochet_delivery_connections Outgoing SMTP connections open.\n# TYPE ricochet_delivery_connections gauge\nricochet_delivery_connections %u\n"
        "# HELP ricochet_delivery_transactions_total SMTP transactions started by this node.\n# TYPE ricochet_delivery_transactions_total counter\nricochet_delivery_transactions_total %" PRIu64 "\n"
        "# HELP ricochet_delivery_attempts_total Recipient attempts made by this node.\n# TYPE ricochet_delivery_attempts_total counter\nricochet_delivery_attempts_total %" PRIu64 "\n"
        "# HELP ricochet_delivery_connections_reused_total Transactions sent on a kept connection.\n# TYPE ricochet_delivery_connections_reused_total counter\nricochet_delivery_connections_reused_total %" PRIu64 "\n"
        "# HELP ricochet_delivery_outcomes_total Recipient outcomes decided by this node.\n# TYPE ricochet_delivery_outcomes_total counter\n"
        "ricochet_delivery_outcomes_total{status=\"delivered\"} %" PRIu64 "\nricochet_delivery_outcomes_total{status=\"deferred\"} %" PRIu64 "\n"
        "ricochet_delivery_outcomes_total{status=\"failed\"} %" PRIu64 "\nricochet_delivery_outcomes_total{status=\"undeliverable\"} %" PRIu64 "\n"
        "ricochet_delivery_outcomes_total{status=\"expired\"} %" PRIu64 "\nricochet_delivery_outcomes_total{status=\"lost_in_space\"} %" PRIu64 "\n"
        "# HELP ricochet_delivery_repeats_total Recipients tried again after a leader change because an earlier attempt had no recorded outcome.\n# TYPE ricochet_delivery_repeats_total counter\nricochet_delivery_repeats_total %" PRIu64 "\n"
        "# HELP ricochet_dsn_sent_total Delivery status notifications queued to senders.\n# TYPE ricochet_dsn_sent_total counter\nricochet_dsn_sent_total %" PRIu64 "\n"
        "# HELP ricochet_tracking_copies_total Recipients' copies made with open and click tracking (leader).\n# TYPE ricochet_tracking_copies_total counter\n"
        "ricochet_tracking_copies_total{result=\"rewritten\"} %" PRIu64 "\nricochet_tracking_copies_total{result=\"sent_unchanged\"} %" PRIu64 "\n"
        "# HELP ricochet_tracking_hits_total Requests to the tracking endpoint of this node, by result.\n# TYPE ricochet_tracking_hits_total counter\n"
        "ricochet_tracking_hits_total{result=\"recorded\"} %" PRIu64 "\nricochet_tracking_hits_total{result=\"not_recorded\"} %" PRIu64 "\n"
        "ricochet_tracking_hits_total{result=\"skipped\"} %" PRIu64 "\nricochet_tracking_hits_total{result=\"refused\"} %" PRIu64 "\n"
        "# HELP ricochet_messages_forgotten_total Messages removed from the state by delivery.retention since this node started.\n# TYPE ricochet_messages_forgotten_total counter\nricochet_messages_forgotten_total %" PRIu64 "\n",
        ds.active, ds.queue, ds.inflight_transactions, ds.connections, ds.transactions, ds.rcpt_attempts,
        ds.connections_reused, ds.delivered, ds.deferred, ds.failed, ds.undeliverable, ds.expired, ds.lost,
        ds.repeats, ds.dsn_sent, ds.tracked_copies, ds.tracking_failed, n->tracking_recorded,
        n->tracking_not_recorded, n->tracking_skipped, n->tracking_refused, rc_fsm_forgotten_messages(fsm));
    len = (int)strlen(buf);
    struct rc_webhooks_stats ws;
    rc_webhooks_get_stats(n, &ws);
    snprintf(buf + len, sizeof buf - (size_t)len,
        "# HELP ricochet_webhook_pending_recipients Recipients with events the receiver has not acknowledged (leader).\n# TYPE ricochet_webhook_pending_recipients gauge\nricochet_webhook_pending_recipients %zu\n"
        "# HELP ricochet_webhook_consecutive_failures Failed webhook POSTs in a row.\n# TYPE ricochet_webhook_consecutive_failures gauge\nricochet_webhook_consecutive_failures %u\n"
        "# HELP ricochet_webhook_posts_total Webhook POSTs made by this node, by result.\n# TYPE ricochet_webhook_posts_total counter\n"
        "ricochet_webhook_posts_total{result=\"ok\"} %" PRIu64 "\nricochet_webhook_posts_total{result=\"failed\"} %" PRIu64 "\n"
        "# HELP ricochet_webhook_events_sent_total Events in webhook POSTs answered 2xx.\n# TYPE ricochet_webhook_events_sent_total counter\nricochet_webhook_events_sent_total %" PRIu64 "\n"
        "# HELP ricochet_webhook_recipients_dropped_total Recipients whose message was forgotten (delivery.retention) before all their events were acknowledged.\n# TYPE ricochet_webhook_recipients_dropped_total counter\nricochet_webhook_recipients_dropped_total %" PRIu64 "\n",
        ws.recipients_pending, ws.failures, ws.posts_ok, ws.posts_failed, ws.events_sent, ws.recipients_dropped);
    http_respond_text(req, 200, "text/plain; version=0.0.4", buf);
}

int rc_api_start(rc_node *n, char *err, size_t errlen)
{
    struct http_api_config hc;
    memset(&hc, 0, sizeof hc);
    hc.listen = n->cfg.http_listen;
    hc.max_body = n->cfg.http_max_body;
    int rv = http_api_start(&n->http, n->loop, &hc);
    if (rv != 0) {
        snprintf(err, errlen, "http.listen %s: %s", n->cfg.http_listen, http_api_strerror(rv));
        return -1;
    }
    http_api_route(n->http, "GET", "/v1/cluster", get_cluster, n);
    http_api_route(n->http, "GET", "/v1/messages/", get_message, n);
    http_api_route(n->http, "GET", "/v1/suppressions", suppressions, n);
    http_api_route(n->http, "GET", "/metrics", get_metrics, n);
    http_api_route(n->http, "GET", "/v1/webhooks", get_webhooks, n);
    rc_api_bounces_routes(n);
    rc_api_members_routes(n);
    rc_api_tracking_routes(n);
    if (n->cfg.http_admin) {
        http_api_route(n->http, "POST", "/v1/suppressions", suppressions, n);
        http_api_route(n->http, "DELETE", "/v1/suppressions/", suppressions, n);
        http_api_route(n->http, "POST", "/v1/cluster/transfer", post_transfer, n);
        http_api_route(n->http, "POST", "/v1/messages/", post_message_action, n);
        http_api_route(n->http, "POST", "/v1/cluster/drain", post_drain, n);
        http_api_route(n->http, "POST", "/v1/cluster/undrain", post_undrain, n);
        http_api_route(n->http, "POST", "/v1/admin/probe", post_probe, n);
    }
    return 0;
}

void rc_api_stop(rc_node *n, void (*cb)(void *), void *data)
{
    http_api_stop(n->http, cb, data);
}
