/* Node wiring. Start order: spool, raft (FSM hooks write bodies to the
 * spool), peer channel + forwarder, HTTP API, health loop. Stop order is
 * the reverse, each step waiting for the previous one's close callback. */
#include "node/rc_node_internal.h"

#include <errno.h>
#include <openssl/evp.h>
#include <limits.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/base/rc_log.h"
#include "proto/ricochet.pb-c.h"
#include "node/http_api.h"
#include "raft/rc_forward.h"

/* health.interval, health.fail_after, health.ok_after: see rc_config.c */

/* ------------------------------------------------------------ FSM hooks */

static void on_accept(void *data, const struct rc_msg *m, const uint8_t *body, size_t len)
{
    rc_node *n = data;
    if (body != NULL)
        rc_spool_put(n->spool, m->id, body, len);
    rc_delivery_on_accept(n, m);
    for (size_t i = 0; i < m->n_rcpts; i++)
        if (m->rcpts[i].status == RC_ST_QUEUED) /* rejected ones come through on_status */
            rc_webhooks_on_change(n, m, i);
}

static void on_forget(void *data, const struct rc_msg *m)
{
    rc_node *n = data;
    rc_spool_remove(n->spool, m->id);
}

static void on_status(void *data, const struct rc_msg *m, size_t rcpt, int old_status)
{
    rc_delivery_on_status(data, m, rcpt, old_status);
    rc_webhooks_on_change(data, m, rcpt);
}

static int before_snapshot(void *data)
{
    rc_node *n = data;
    return rc_spool_sync(n->spool);
}

/* ------------------------------------------------------- missing bodies */

#define MAX_BODY_FETCHES 16

static void on_restore(void *data)
{
    rc_node *n = data;
    n->body_scan_needed = true; /* scanned from the health timer, not inside apply */
    rc_delivery_on_restore(n);
    rc_webhooks_on_restore(n);
}

static void missing_push(rc_node *n, char *id)
{
    if (n->n_missing == n->cap_missing) {
        size_t ncap = n->cap_missing ? n->cap_missing * 2 : 64;
        char **nm = realloc(n->missing_bodies, ncap * sizeof *nm);
        if (nm == NULL) {
            rc_error("node", "body_fetch_dropped id=%s reason=out_of_memory", id);
            free(id);
            return;
        }
        n->missing_bodies = nm;
        n->cap_missing = ncap;
    }
    n->missing_bodies[n->n_missing++] = id;
}

static bool all_terminal(const struct rc_msg *m)
{
    for (size_t i = 0; i < m->n_rcpts; i++)
        if (!rc_status_terminal(m->rcpts[i].status))
            return false;
    return true;
}

static void scan_missing_bodies(rc_node *n)
{
    n->body_scan_needed = false;
    rc_fsm *fsm = rc_raft_fsm(n->raft);
    size_t pos = 0;
    const struct rc_msg *m;
    size_t found = 0;
    while ((m = rc_fsm_message_next(fsm, &pos)) != NULL) {
        if (all_terminal(m) || rc_spool_has(n->spool, m->id))
            continue;
        char *id = strdup(m->id);
        if (id)
            missing_push(n, id);
        found++;
    }
    if (found)
        rc_info("node", "bodies_missing count=%zu action=fetch_from_peers", found);
}

struct body_fetch {
    rc_node *n;
    char *id;
};

static void body_fetched(void *data, int status, const uint8_t *body, size_t len)
{
    struct body_fetch *bf = data;
    rc_node *n = bf->n;
    n->body_fetches_inflight--;
    if (status == RC_OK) {
        rc_spool_put(n->spool, bf->id, body, len);
        rc_info("node", "body_fetched id=%s bytes=%zu", bf->id, len);
        free(bf->id);
    } else if (!n->stopping) {
        rc_warn("node", "body_fetch_failed id=%s error=\"%s\" action=retry", bf->id, rc_strerror(status));
        missing_push(n, bf->id);
    } else {
        free(bf->id);
    }
    free(bf);
}

static void fetch_missing_bodies(rc_node *n)
{
    while (n->n_missing > 0 && n->body_fetches_inflight < MAX_BODY_FETCHES) {
        char *id = n->missing_bodies[--n->n_missing];
        const struct rc_msg *m = rc_fsm_message(rc_raft_fsm(n->raft), id);
        if (m == NULL || rc_spool_has(n->spool, id)) {
            free(id);
            continue;
        }
        struct body_fetch *bf = malloc(sizeof *bf);
        if (bf == NULL) {
            missing_push(n, id);
            return;
        }
        bf->n = n;
        bf->id = id;
        n->body_fetches_inflight++;
        int rv = rc_forward_fetch_body(n->fwd, id, m->body_sha256, body_fetched, bf);
        if (rv != RC_OK) {
            n->body_fetches_inflight--;
            missing_push(n, id);
            free(bf);
            return; /* no peer now: the next tick retries */
        }
    }
}

int rc_node_propose_accept(rc_node *n, const char *id, Ricochet__Envelope *env, Ricochet__RecipientSpec **rcpts,
                           size_t nrcpts, const uint8_t *body, size_t len, rc_propose_cb cb, void *data)
{
    uint8_t sha[32];
    if (!EVP_Digest(body, len, sha, NULL, EVP_sha256(), NULL))
        return RC_ENOMEM;
    uint64_t now = rc_now_ms();
    Ricochet__Accept a;
    ricochet__accept__init(&a);
    a.id = (char *)id;
    a.envelope = env;
    a.recipients = rcpts;
    a.n_recipients = nrcpts;
    a.has_body = a.has_body_sha256 = true;
    a.body.data = (uint8_t *)body;
    a.body.len = len;
    a.body_sha256.data = sha;
    a.body_sha256.len = sizeof sha;
    a.has_received_ms = a.has_expire_at_ms = a.has_ttr_at_ms = a.has_accepted_by = true;
    a.received_ms = now;
    a.expire_at_ms = now + n->cfg.expire_ms;
    a.ttr_at_ms = now + n->cfg.ttr_ms;
    a.accepted_by = n->cfg.node_id;
    Ricochet__Record rec;
    ricochet__record__init(&rec);
    rec.kind_case = RICOCHET__RECORD__KIND_ACCEPT;
    rec.accept = &a;
    return rc_raft_propose(n->raft, &rec, cb, data);
}

bool rc_node_does_leader_work(rc_node *n, struct rc_raft_status *st)
{
    rc_raft_get_status(n->raft, st);
    const struct rc_cfg_member *self = rc_config_member(&n->cfg, n->cfg.node_id);
    return st->state == 3 /* RAFT_LEADER */ && st->leader_ready && !(self && self->witness);
}

bool rc_node_has_body(rc_node *n, const char *id)
{
    return rc_spool_has(n->spool, id);
}

static void on_view(void *data, const struct rc_view *v)
{
    rc_dns_on_view(data, v);
    rc_info("node", "view_changed serial=%llu leader=%llu leader_site=%s",
            (unsigned long long)v->serial, (unsigned long long)v->leader, v->leader_site);
}

/* --------------------------------------------------------------- health */

struct health_state {
    uint64_t id;
    unsigned misses, hits;
};
static struct health_state health[RC_CFG_MAX_MEMBERS];
static bool health_inflight;
static uint64_t health_term; /* term of the leadership the counters belong to */

static void health_done(void *data, int status)
{
    (void)data;
    health_inflight = false;
    if (status != RC_OK)
        rc_warn("node", "health_update_failed error=\"%s\"", rc_strerror(status));
}

/* The leader decides which nodes are healthy (raft contact and, for SMTP
 * nodes, the SMTP probe of rc_health_probe.c) and writes changes to the log,
 * so that every node publishes the same view. */
static void health_cb(uv_timer_t *t)
{
    rc_node *n = t->data;
    if (n->body_scan_needed)
        scan_missing_bodies(n);
    fetch_missing_bodies(n);
    struct rc_raft_status st;
    rc_raft_get_status(n->raft, &st);
    if (st.state != 3 /* RAFT_LEADER */ || !st.leader_ready || health_inflight)
        return;
    if (st.term != health_term) { /* new leadership: earlier counters are stale */
        health_term = st.term;
        memset(health, 0, sizeof health);
        rc_health_probe_reset(n);
    }
    rc_health_probe_tick(n); /* results are read on the next tick */
    const struct rc_view *view = rc_fsm_view(rc_raft_fsm(n->raft));

    Ricochet__NodeHealthChange changes[RC_CFG_MAX_MEMBERS], *pchanges[RC_CFG_MAX_MEMBERS];
    size_t nchanges = 0;
    for (size_t i = 0; i < n->cfg.n_members; i++) {
        const struct rc_cfg_member *m = &n->cfg.members[i];
        struct health_state *h = &health[i];
        h->id = m->id;
        int contact = rc_raft_peer_contact(n->raft, m->id);
        if (contact < 0)
            continue;
        if (contact && rc_health_probe_result(n, i) == 0)
            contact = 0;
        if (contact) {
            h->hits++;
            h->misses = 0;
        } else {
            h->misses++;
            h->hits = 0;
        }
        bool known = false, healthy = true;
        for (size_t j = 0; j < view->n_nodes; j++)
            if (view->nodes[j].id == m->id) {
                known = true;
                healthy = view->nodes[j].healthy;
            }
        bool want = healthy;
        if (healthy && h->misses >= n->cfg.health_fail_after)
            want = false;
        else if (!healthy && h->hits >= n->cfg.health_ok_after)
            want = true;
        if (known && want == healthy)
            continue;
        Ricochet__NodeHealthChange *c = &changes[nchanges];
        ricochet__node_health_change__init(c);
        c->has_node = c->has_healthy = c->has_set_healthy = true;
        c->node = m->id;
        c->healthy = known ? want : (contact != 0);
        c->set_healthy = true;
        pchanges[nchanges++] = c;
    }
    bool leader_changed = view->leader != n->cfg.node_id || strcmp(view->leader_site, n->cfg.node_site) != 0;
    if (nchanges == 0 && !leader_changed)
        return;

    Ricochet__ViewChange vc;
    ricochet__view_change__init(&vc);
    vc.nodes = pchanges;
    vc.n_nodes = nchanges;
    vc.has_leader = true;
    vc.leader = n->cfg.node_id;
    vc.leader_site = n->cfg.node_site;
    vc.has_at_ms = true;
    vc.at_ms = rc_now_ms();
    Ricochet__Record rec;
    ricochet__record__init(&rec);
    rec.kind_case = RICOCHET__RECORD__KIND_VIEW;
    rec.view = &vc;
    for (size_t i = 0; i < nchanges; i++)
        rc_info("node", "health_decided node=%llu healthy=%s", (unsigned long long)pchanges[i]->node,
                pchanges[i]->healthy ? "true" : "false");
    if (rc_raft_propose(n->raft, &rec, health_done, n) == RC_OK) {
        health_inflight = true;
        n->health_proposals++;
    }
}

/* ------------------------------------------------------------ life cycle */

static void set_flag_cb(void *data)
{
    *(bool *)data = true;
}

/* A start that failed half-way: stops one part now (runs the loop). */
static void stop_now(rc_node *n, void (*stop)(rc_node *, void (*)(void *), void *))
{
    bool closed = false;
    stop(n, set_flag_cb, &closed);
    while (!closed)
        uv_run(n->loop, UV_RUN_ONCE);
}

static int mkdir_data_dir(const char *path, char *err, size_t errlen)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "node.data_dir: cannot create %s: %s", buf, strerror(errno));
            return -1;
        }
        *p = saved;
        if (saved == '\0')
            return 0;
    }
}

static int body_from_spool(void *data, const char *id, const uint8_t sha256[32], uint8_t **body, size_t *len)
{
    rc_node *n = data;
    return rc_spool_get(n->spool, id, sha256, body, len);
}

static void forward_config_from(const struct rc_config *c, rc_node *n, struct rc_forward_config *f)
{
    memset(f, 0, sizeof *f);
    const struct rc_cfg_member *self = rc_config_member(c, c->node_id);
    f->self_id = c->node_id;
    snprintf(f->listen, sizeof f->listen, "%s:%u", self->address, self->peer_port);
    f->secret = n->cfg.cluster_secret;
    f->max_frame = c->max_peer_frame;
    f->propose_timeout_ms = (unsigned)c->propose_timeout_ms;
    for (size_t i = 0; i < c->n_members; i++) {
        if (c->members[i].id == c->node_id)
            continue;
        struct rc_forward_peer *p = &f->peers[f->n_peers++];
        p->id = c->members[i].id;
        snprintf(p->addr, sizeof p->addr, "%s:%u", c->members[i].address, c->members[i].peer_port);
    }
    f->get_body = body_from_spool;
    f->get_body_data = n;
}

static int raft_config_from(const struct rc_config *c, struct rc_raft_config *rc)
{
    memset(rc, 0, sizeof *rc);
    rc->self_id = c->node_id;
    rc->data_dir = c->data_dir;
    for (size_t i = 0; i < c->n_members; i++) {
        const struct rc_cfg_member *m = &c->members[i];
        struct rc_member *x = &rc->members[rc->n_members++];
        x->id = m->id;
        snprintf(x->site, sizeof x->site, "%s", m->site);
        snprintf(x->raft_addr, sizeof x->raft_addr, "%s:%u", m->address, m->raft_port);
        x->role = strcmp(m->role, "voter") == 0     ? RC_ROLE_VOTER
                  : strcmp(m->role, "standby") == 0 ? RC_ROLE_STANDBY
                                                    : RC_ROLE_SPARE;
        x->witness = m->witness;
    }
    rc->election_timeout_ms = (unsigned)c->election_timeout_ms;
    rc->heartbeat_timeout_ms = (unsigned)c->heartbeat_timeout_ms;
    rc->pre_vote = c->pre_vote;
    rc->join = c->raft_join;
    rc->snapshot_threshold = (unsigned)c->snapshot_threshold;
    rc->snapshot_trailing = (unsigned)c->snapshot_trailing;
    rc->max_entry_bytes = c->max_entry_bytes;
    rc->max_record_bytes = c->max_peer_frame;
    rc->max_inflight_entries = (unsigned)c->max_inflight_entries;
    rc->propose_timeout_ms = (unsigned)c->propose_timeout_ms;
    rc->min_free_bytes = c->min_free_bytes;
    rc->auto_recovery = c->auto_recovery;
    rc->fsm.dedup_capacity = c->dedup_capacity;
    rc->fsm.soft_bounce_limit = (unsigned)c->soft_bounce_limit;
    rc->fsm.bounce_notes_kept = (size_t)c->bounce_notes_kept;
    return 0;
}

int rc_node_start(rc_node **out, uv_loop_t *loop, const struct rc_config *cfg, char *err, size_t errlen)
{
    rc_node *n = calloc(1, sizeof *n);
    if (n == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    n->loop = loop;
    n->cfg = *cfg;
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", cfg->data_dir) >= (int)sizeof path || mkdir_data_dir(path, err, errlen) != 0)
        goto err_after_alloc;
    snprintf(path, sizeof path, "%s/spool", cfg->data_dir);
    if (rc_spool_open(&n->spool, path, err, errlen) != 0)
        goto err_after_alloc;

    struct rc_raft_config rcfg;
    raft_config_from(cfg, &rcfg);
    struct rc_fsm_hooks hooks = {
        .on_accept = on_accept,
        .before_snapshot = before_snapshot,
        .on_view = on_view,
        .on_restore = on_restore,
        .on_status = on_status,
        .on_forget = on_forget,
    };
    if (rc_raft_start(&n->raft, loop, &rcfg, &hooks, n, err, errlen) != RC_OK)
        goto err_after_spool;
    struct rc_forward_config fcfg;
    forward_config_from(cfg, n, &fcfg);
    if (rc_forward_start(&n->fwd, loop, n->raft, &fcfg, err, errlen) != 0)
        goto err_after_raft;
    if (rc_api_start(n, err, errlen) != 0)
        goto err_after_fwd;
    if (rc_dns_start(n, err, errlen) != 0)
        goto err_after_api;
    if (rc_smtp_start(n, err, errlen) != 0 || rc_health_probe_new(n) != 0 ||
        rc_delivery_start(n, err, errlen) != 0 || rc_webhooks_start(n, err, errlen) != 0) {
        /* the API and DNS are up: close them through the normal stop path */
        if (n->delivery) {
            stop_now(n, rc_delivery_stop);
            rc_delivery_free(n);
            n->delivery = NULL;
        }
        if (n->smtp) {
            stop_now(n, rc_smtp_stop);
            rc_smtp_free(n);
        }
        n->smtp = NULL;
        stop_now(n, rc_health_probe_stop); /* frees it */
        stop_now(n, rc_dns_stop);
        goto err_after_api;
    }

    uv_timer_init(loop, &n->health_timer);
    n->health_timer.data = n;
    uv_timer_start(&n->health_timer, health_cb, n->cfg.health_interval_ms, n->cfg.health_interval_ms);
    *out = n;
    return 0;

err_after_api:
    stop_now(n, rc_api_stop);
    http_api_free(n->http);
err_after_fwd : {
    bool closed = false;
    rc_forward_stop(n->fwd, set_flag_cb, &closed);
    while (!closed)
        uv_run(loop, UV_RUN_ONCE);
}
err_after_raft : {
    bool closed = false;
    rc_raft_close(n->raft, set_flag_cb, &closed);
    while (!closed)
        uv_run(loop, UV_RUN_ONCE);
}
err_after_spool:
    rc_spool_close(n->spool);
err_after_alloc:
    free(n);
    return -1;
}

void rc_node_print_listeners(const rc_node *n)
{
    const struct rc_config *c = &n->cfg;
    const struct rc_cfg_member *self = rc_config_member(c, c->node_id);
    printf("ricochetd node=%llu site=%s data_dir=%s\n", (unsigned long long)c->node_id, c->node_site, c->data_dir);
    printf("  raft  %s:%u\n", self->address, self->raft_port);
    printf("  peer  %s:%u\n", self->address, self->peer_port);
    printf("  smtp  %s (MX/relay)\n", c->smtp_listen);
    if (c->submission_listen[0])
        printf("  smtp  %s (submission)\n", c->submission_listen);
    printf("  dns   %s (zone %s)\n", c->dns_listen, c->dns_zone);
    printf("  http  %s\n", c->http_listen);
    fflush(stdout);
}

static void stop_step(void *data);

static void stop_step(void *data)
{
    rc_node *n = data;
    if (--n->pending_closes > 0)
        return;
    rc_spool_close(n->spool);
    n->spool = NULL;
    for (size_t i = 0; i < n->n_missing; i++)
        free(n->missing_bodies[i]);
    free(n->missing_bodies);
    rc_info("node", "stopped");
    if (n->stop_cb)
        n->stop_cb(n->stop_data);
}

void rc_node_free(rc_node *n)
{
    if (n == NULL)
        return;
    http_api_free(n->http); /* runs the loop inside: never from a callback */
    rc_smtp_free(n);
    rc_delivery_free(n);
    rc_webhooks_free(n);
    rc_dsn_free(n);
    free(n);
}

static void after_front_closed(void *data)
{
    rc_node *n = data;
    if (--n->pending_closes > 0)
        return;
    /* Front ends are closed: nothing new comes in. Close raft last so that
     * proposals in flight get their answer. */
    n->pending_closes = 1;
    rc_raft_close(n->raft, stop_step, n);
}

static void health_closed_cb(uv_handle_t *h)
{
    after_front_closed(h->data);
}

static void after_smtp_stopped(void *data)
{
    rc_node *n = data;
    n->smtp = NULL;
    n->pending_closes = 7;
    uv_timer_stop(&n->health_timer);
    rc_delivery_stop(n, after_front_closed, n);
    rc_webhooks_stop(n, after_front_closed, n);
    uv_close((uv_handle_t *)&n->health_timer, health_closed_cb);
    rc_health_probe_stop(n, after_front_closed, n);
    rc_dns_stop(n, after_front_closed, n);
    rc_api_stop(n, after_front_closed, n);
    rc_forward_stop(n->fwd, after_front_closed, n);
}

void rc_node_stop(rc_node *n, void (*cb)(void *), void *data)
{
    if (n->stopping)
        return;
    n->stopping = true;
    n->stop_cb = cb;
    n->stop_data = data;
    rc_info("node", "stopping");
    /* SMTP first: sessions finish their transactions (their messages still
     * need raft and the forwarder), then the rest. */
    rc_smtp_stop(n, after_smtp_stopped, n);
}
