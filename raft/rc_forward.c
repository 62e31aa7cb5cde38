/* Proposal forwarding over the peer channel; see rc_forward.h. */
#include "raft/rc_forward.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/base/rc_log.h"
#include "proto/ricochet.pb-c.h"
#include "raft/rc_peer.h"

#define SWEEP_MS 200

struct pending {
    uint64_t req, leader, deadline;
    rc_propose_cb cb;
    void *data;
    struct pending *prev, *next;
};

/* One ProposeRequest received from a follower, answered once every record
 * in it has a result. */
struct remote_req {
    struct rc_forwarder_state *f;
    uint64_t from, req;
    size_t remaining;
    int worst;
};

/* A body fetch in progress: tries each peer in turn. */
struct fetch {
    uint64_t req, peer, deadline;
    char id[130];
    uint8_t sha256[32];
    size_t next_peer; /* index into cfg.peers of the next peer to ask */
    rc_body_cb cb;
    void *data;
    struct fetch *next;
};

struct rc_forwarder_state {
    uv_loop_t *loop;
    rc_raft *raft;
    rc_peer_net *net;
    struct rc_forward_config cfg;
    uv_timer_t sweep;
    struct pending *head;
    struct fetch *fetches;
    uint64_t next_req;
    bool stopping;
    int closing;
    void (*stop_cb)(void *);
    void *stop_data;
    struct rc_forward_stats stats;
};

static void pending_unlink(struct rc_forwarder_state *f, struct pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        f->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

static void pending_finish(struct rc_forwarder_state *f, struct pending *p, int status)
{
    pending_unlink(f, p);
    rc_propose_cb cb = p->cb;
    void *data = p->data;
    free(p);
    cb(data, status);
}

static int code_to_err(Ricochet__ProposeCode code)
{
    switch (code) {
    case RICOCHET__PROPOSE_CODE__PROPOSE_OK: return RC_OK;
    case RICOCHET__PROPOSE_CODE__PROPOSE_NOT_LEADER: return RC_ENOTLEADER;
    /* The leader stopping with the entry in flight: it may still commit. */
    case RICOCHET__PROPOSE_CODE__PROPOSE_SHUTDOWN:
    case RICOCHET__PROPOSE_CODE__PROPOSE_LEADERSHIP_LOST: return RC_ELOST;
    case RICOCHET__PROPOSE_CODE__PROPOSE_TOO_BIG: return RC_ETOOBIG;
    case RICOCHET__PROPOSE_CODE__PROPOSE_NO_SPACE: return RC_ENOSPACE;
    default: return RC_EIO;
    }
}

static Ricochet__ProposeCode err_to_code(int err)
{
    switch (err) {
    case RC_OK: return RICOCHET__PROPOSE_CODE__PROPOSE_OK;
    case RC_ENOTLEADER: return RICOCHET__PROPOSE_CODE__PROPOSE_NOT_LEADER;
    case RC_ELOST:
    case RC_ETIMEDOUT: return RICOCHET__PROPOSE_CODE__PROPOSE_LEADERSHIP_LOST;
    case RC_ESHUTDOWN: return RICOCHET__PROPOSE_CODE__PROPOSE_SHUTDOWN;
    case RC_ETOOBIG: return RICOCHET__PROPOSE_CODE__PROPOSE_TOO_BIG;
    case RC_ENOSPACE: return RICOCHET__PROPOSE_CODE__PROPOSE_NO_SPACE;
    default: return RICOCHET__PROPOSE_CODE__PROPOSE_ERROR;
    }
}

/* Severity order used when one request carries several records. */
static int worse(int a, int b)
{
    if (a == RC_OK)
        return b;
    if (b == RC_OK)
        return a;
    if (a == RC_ELOST || b == RC_ELOST)
        return RC_ELOST; /* unknown outcome dominates */
    return a;
}

/* ----------------------------------------------------------- follower */

static int forward(void *fwd_data, uint64_t leader, const Ricochet__Record *rec,
                   rc_propose_cb done, void *done_data)
{
    struct rc_forwarder_state *f = fwd_data;
    if (f->stopping)
        return RC_ESHUTDOWN;
    struct pending *p = calloc(1, sizeof *p);
    if (p == NULL)
        return RC_ENOMEM;
    p->req = ++f->next_req;
    p->leader = leader;
    p->deadline = uv_now(f->loop) + f->cfg.propose_timeout_ms;
    p->cb = done;
    p->data = done_data;

    Ricochet__ProposeRequest pr;
    ricochet__propose_request__init(&pr);
    pr.has_req = true;
    pr.req = p->req;
    Ricochet__Record *one = (Ricochet__Record *)rec;
    pr.records = &one;
    pr.n_records = 1;
    Ricochet__PeerFrame frame;
    ricochet__peer_frame__init(&frame);
    frame.kind_case = RICOCHET__PEER_FRAME__KIND_PROPOSE;
    frame.propose = &pr;
    int rv = rc_peer_send(f->net, leader, &frame);
    if (rv != 0) {
        free(p);
        /* Never sent: the leader has not seen it, a retry is safe. */
        return RC_ENOTLEADER;
    }
    p->next = f->head;
    if (f->head)
        f->head->prev = p;
    f->head = p;
    f->stats.forwarded++;
    return RC_OK;
}

static void on_result(struct rc_forwarder_state *f, uint64_t from, const Ricochet__ProposeResponse *r)
{
    for (struct pending *p = f->head; p; p = p->next) {
        if (p->req != r->req || p->leader != from)
            continue;
        int err = code_to_err(r->code);
        if (err == RC_OK)
            f->stats.answered_ok++;
        else
            f->stats.answered_err++;
        pending_finish(f, p, err);
        return;
    }
    rc_debug("forward", "late_result from=%llu req=%llu", (unsigned long long)from, (unsigned long long)r->req);
}

static void sweep_fetches(struct rc_forwarder_state *f, uint64_t now);

static void fail_pending_of(struct rc_forwarder_state *f, uint64_t leader, int err)
{
    struct pending *p = f->head;
    while (p) {
        struct pending *next = p->next;
        if (leader == 0 || p->leader == leader) {
            if (err == RC_ELOST)
                f->stats.lost++;
            pending_finish(f, p, err);
        }
        p = next;
    }
}

static void sweep_cb(uv_timer_t *t)
{
    struct rc_forwarder_state *f = t->data;
    uint64_t now = uv_now(f->loop);
    struct pending *p = f->head;
    while (p) {
        struct pending *next = p->next;
        if (p->deadline <= now) {
            f->stats.timeouts++;
            rc_warn("forward", "propose_timeout leader=%llu req=%llu", (unsigned long long)p->leader,
                    (unsigned long long)p->req);
            pending_finish(f, p, RC_ETIMEDOUT);
        }
        p = next;
    }
    sweep_fetches(f, now);
}

/* ------------------------------------------------------------- leader */

static void send_result(struct rc_forwarder_state *f, uint64_t to, uint64_t req, int err)
{
    Ricochet__ProposeResponse r;
    ricochet__propose_response__init(&r);
    r.has_req = r.has_code = true;
    r.req = req;
    r.code = err_to_code(err);
    if (err != RC_OK)
        r.message = (char *)rc_strerror(err);
    struct rc_raft_status st;
    rc_raft_get_status(f->raft, &st);
    r.has_leader = st.leader != 0;
    r.leader = st.leader;
    Ricochet__PeerFrame frame;
    ricochet__peer_frame__init(&frame);
    frame.kind_case = RICOCHET__PEER_FRAME__KIND_PROPOSE_RESULT;
    frame.propose_result = &r;
    if (rc_peer_send(f->net, to, &frame) != 0)
        rc_warn("forward", "result_undeliverable to=%llu req=%llu", (unsigned long long)to,
                (unsigned long long)req);
}

static void remote_done(void *data, int status)
{
    struct remote_req *rr = data;
    rr->worst = worse(rr->worst, status);
    if (--rr->remaining > 0)
        return;
    if (!rr->f->stopping)
        send_result(rr->f, rr->from, rr->req, rr->worst);
    free(rr);
}

static void on_propose(struct rc_forwarder_state *f, uint64_t from, const Ricochet__ProposeRequest *pr)
{
    struct rc_raft_status st;
    rc_raft_get_status(f->raft, &st);
    if (st.state != 3 /* RAFT_LEADER */ || pr->n_records == 0) {
        /* No second hop: the follower retries with the leader it learns. */
        send_result(f, from, pr->req, pr->n_records ? RC_ENOTLEADER : RC_EINVAL);
        return;
    }
    struct remote_req *rr = calloc(1, sizeof *rr);
    if (rr == NULL) {
        send_result(f, from, pr->req, RC_ENOMEM);
        return;
    }
    rr->f = f;
    rr->from = from;
    rr->req = pr->req;
    rr->remaining = pr->n_records + 1; /* +1 held while submitting */
    rr->worst = RC_OK;
    for (size_t i = 0; i < pr->n_records; i++) {
        int rv = rc_raft_propose(f->raft, pr->records[i], remote_done, rr);
        if (rv != RC_OK)
            remote_done(rr, rv);
    }
    remote_done(rr, RC_OK);
}

static void on_body_request(struct rc_forwarder_state *f, uint64_t from, const Ricochet__BodyRequest *br)
{
    Ricochet__BodyResponse resp;
    ricochet__body_response__init(&resp);
    resp.has_req = resp.has_found = true;
    resp.req = br->req;
    uint8_t *body = NULL;
    size_t len = 0;
    if (br->id && br->sha256.len == 32 && f->cfg.get_body &&
        f->cfg.get_body(f->cfg.get_body_data, br->id, br->sha256.data, &body, &len) == 0) {
        resp.found = true;
        resp.has_body = true;
        resp.body.data = body;
        resp.body.len = len;
        f->stats.served++;
    }
    Ricochet__PeerFrame frame;
    ricochet__peer_frame__init(&frame);
    frame.kind_case = RICOCHET__PEER_FRAME__KIND_BODY;
    frame.body = &resp;
    rc_peer_send(f->net, from, &frame);
    free(body);
}

/* --------------------------------------------------------- body fetch */

static void fetch_finish(struct rc_forwarder_state *f, struct fetch *x, int status,
                         const uint8_t *body, size_t len)
{
    for (struct fetch **pp = &f->fetches; *pp; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            break;
        }
    x->cb(x->data, status, body, len);
    free(x);
}

/* Sends the request to the next peer that is up; false when none is left. */
static bool fetch_ask_next(struct rc_forwarder_state *f, struct fetch *x)
{
    while (x->next_peer < f->cfg.n_peers) {
        uint64_t peer = f->cfg.peers[x->next_peer++].id;
        Ricochet__BodyRequest br;
        ricochet__body_request__init(&br);
        br.has_req = br.has_sha256 = true;
        br.req = x->req = ++f->next_req;
        br.id = x->id;
        br.sha256.data = x->sha256;
        br.sha256.len = 32;
        Ricochet__PeerFrame frame;
        ricochet__peer_frame__init(&frame);
        frame.kind_case = RICOCHET__PEER_FRAME__KIND_BODY_REQUEST;
        frame.body_request = &br;
        if (rc_peer_send(f->net, peer, &frame) == 0) {
            x->peer = peer;
            x->deadline = uv_now(f->loop) + f->cfg.propose_timeout_ms;
            return true;
        }
    }
    return false;
}

int rc_forward_fetch_body(struct rc_forwarder_state *f, const char *id, const uint8_t sha256[32],
                          rc_body_cb cb, void *data)
{
    if (f->stopping)
        return RC_ESHUTDOWN;
    if (strlen(id) >= sizeof ((struct fetch *)0)->id)
        return RC_EINVAL;
    struct fetch *x = calloc(1, sizeof *x);
    if (x == NULL)
        return RC_ENOMEM;
    snprintf(x->id, sizeof x->id, "%s", id);
    memcpy(x->sha256, sha256, 32);
    x->cb = cb;
    x->data = data;
    if (!fetch_ask_next(f, x)) {
        free(x);
        return RC_ENOTLEADER; /* no peer reachable now: retry later */
    }
    x->next = f->fetches;
    f->fetches = x;
    return RC_OK;
}

static void on_body(struct rc_forwarder_state *f, uint64_t from, const Ricochet__BodyResponse *b)
{
    struct fetch *x = f->fetches;
    while (x && !(x->req == b->req && x->peer == from))
        x = x->next;
    if (x == NULL)
        return;
    if (b->found && b->has_body) {
        uint8_t digest[32];
        if (EVP_Digest(b->body.data, b->body.len, digest, NULL, EVP_sha256(), NULL) &&
            CRYPTO_memcmp(digest, x->sha256, 32) == 0) {
            f->stats.bodies_fetched++;
            fetch_finish(f, x, RC_OK, b->body.data, b->body.len);
            return;
        }
        f->stats.bodies_corrupt++;
        rc_warn("forward", "body_digest_mismatch id=%s from=%llu", x->id, (unsigned long long)from);
    }
    if (!fetch_ask_next(f, x)) {
        f->stats.bodies_missing++;
        fetch_finish(f, x, RC_EIO, NULL, 0);
    }
}

static void sweep_fetches(struct rc_forwarder_state *f, uint64_t now)
{
    struct fetch *x = f->fetches;
    while (x) {
        struct fetch *next = x->next;
        if (x->deadline <= now && !fetch_ask_next(f, x))
            fetch_finish(f, x, RC_ETIMEDOUT, NULL, 0);
        x = next;
    }
}

/* ------------------------------------------------------------ channel */

static void on_frame(rc_peer_net *net, uint64_t from, const Ricochet__PeerFrame *frame, void *data)
{
    struct rc_forwarder_state *f = data;
    (void)net;
    if (f->stopping)
        return;
    switch (frame->kind_case) {
    case RICOCHET__PEER_FRAME__KIND_PROPOSE: on_propose(f, from, frame->propose); break;
    case RICOCHET__PEER_FRAME__KIND_PROPOSE_RESULT: on_result(f, from, frame->propose_result); break;
    case RICOCHET__PEER_FRAME__KIND_BODY_REQUEST: on_body_request(f, from, frame->body_request); break;
    case RICOCHET__PEER_FRAME__KIND_BODY: on_body(f, from, frame->body); break;
    default:
        rc_debug("forward", "frame_ignored from=%llu kind=%d", (unsigned long long)from, (int)frame->kind_case);
        break;
    }
}

static void on_peer_state(rc_peer_net *net, uint64_t id, bool up, void *data)
{
    struct rc_forwarder_state *f = data;
    (void)net;
    rc_info("forward", "peer_%s node=%llu", up ? "up" : "down", (unsigned long long)id);
    if (!up)
        fail_pending_of(f, id, RC_ELOST);
}

int rc_forward_start(struct rc_forwarder_state **out, uv_loop_t *loop, rc_raft *raft,
                     const struct rc_forward_config *cfg, char *err, size_t errlen)
{
    struct rc_forwarder_state *f = calloc(1, sizeof *f);
    if (f == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    f->loop = loop;
    f->raft = raft;
    f->cfg = *cfg;
    struct rc_peer_config pc;
    memset(&pc, 0, sizeof pc);
    pc.self_id = cfg->self_id;
    pc.listen_addr = f->cfg.listen;
    pc.secret = cfg->secret;
    pc.max_frame = cfg->max_frame;
    struct rc_peer_callbacks cbs = {.on_frame = on_frame, .on_peer_state = on_peer_state};
    int rv = rc_peer_net_start(&f->net, loop, &pc, &cbs, f);
    if (rv != 0) {
        snprintf(err, errlen, "peer channel on %s: %s", cfg->listen, rc_peer_strerror(rv));
        free(f);
        return -1;
    }
    for (size_t i = 0; i < cfg->n_peers; i++)
        rc_peer_net_add(f->net, cfg->peers[i].id, cfg->peers[i].addr);
    uv_timer_init(loop, &f->sweep);
    f->sweep.data = f;
    uv_timer_start(&f->sweep, sweep_cb, SWEEP_MS, SWEEP_MS);
    struct rc_forwarder fwd = {.forward = forward, .data = f};
    rc_raft_set_forwarder(raft, &fwd);
    *out = f;
    return 0;
}

static void stop_step(struct rc_forwarder_state *f)
{
    if (--f->closing > 0)
        return;
    void (*cb)(void *) = f->stop_cb;
    void *data = f->stop_data;
    free(f);
    if (cb)
        cb(data);
}

static void net_closed_cb(void *data)
{
    stop_step(data);
}

static void sweep_closed_cb(uv_handle_t *h)
{
    stop_step(h->data);
}

void rc_forward_stop(struct rc_forwarder_state *f, void (*cb)(void *), void *data)
{
    if (f->stopping)
        return;
    f->stopping = true;
    f->stop_cb = cb;
    f->stop_data = data;
    struct rc_forwarder none = {0};
    rc_raft_set_forwarder(f->raft, &none);
    fail_pending_of(f, 0, RC_ESHUTDOWN);
    while (f->fetches)
        fetch_finish(f, f->fetches, RC_ESHUTDOWN, NULL, 0);
    f->closing = 2;
    uv_timer_stop(&f->sweep);
    uv_close((uv_handle_t *)&f->sweep, sweep_closed_cb);
    rc_peer_net_close(f->net, net_closed_cb, f);
}

void rc_forward_get_stats(const struct rc_forwarder_state *f, struct rc_forward_stats *st)
{
    *st = f->stats;
}
