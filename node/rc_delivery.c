/* The delivery scheduler (DESIGN §3, docs/EGRESS.md "Scheduler").
 *
 * Runs on the leader only (not on a witness): the leader holds the
 * committed state, so one node decides every attempt and no two nodes send
 * the same recipient at once. A follower keeps nothing here.
 *
 *   due heap ──pop when due──▶ per-domain ready list ──▶ transaction
 *   (rebuilt from the FSM       (grouped per message,      AttemptStart committed
 *    at each leadership,         at most max_rcpts)         → MX lookup → SMTP
 *    fed by the FSM hooks)                                  → one StatusUpdate per rcpt
 *
 * Every outcome is a StatusUpdate in the log; the FSM hooks push the next
 * due time (deferred) back into the heap, so the leader's memory is only a
 * cache of the replicated state. A recipient whose AttemptStart mark is
 * still set when a new leader takes over had an attempt without a recorded
 * outcome: it is tried again and counted as a repeat (metric and log).
 *
 * Connections: one pool per recipient domain (smtp_client reuses its
 * connection with RSET), limited per domain and in total; idle ones are
 * closed after delivery.idle_timeout. */
#include "node/rc_node_internal.h"

#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns/dns_resolver.h"
#include "node/base/rc_log.h"
#include "proto/ricochet.pb-c.h"
#include "raft/rc_map.h"
#include "smtp/bounce.h"
#include "smtp/smtp_addr.h"
#include "smtp/smtp_client.h"
#include "smtp/track.h"
#include "smtp/verp.h"

#define ID_MAX (VERP_ID_MAX + 4)
#define WAKE_MAX_MS 500      /* housekeeping period: expiry of in-flight, idle connections, leadership */
#define POP_BUDGET 20000     /* due entries moved per wake; more wait for the next (immediate) wake */
#define BODY_RETRY_MS 1000   /* body not yet in the local spool */
#define BUSY_RETRY_MS 1000   /* proposal refused (leadership moving) */
#define RETENTION_SWEEP_MS 5000 /* how often the leader looks for messages past delivery.retention */
#define FORGET_MAX 1000      /* messages per Forget record */

struct due {
    uint64_t at;
    uint32_t rcpt;
    char id[ID_MAX];
};

struct work {
    uint32_t rcpt;
    char id[ID_MAX];
};

struct dest;

struct conn {
    struct dest *d;
    smtp_client *client;
    bool busy;
    uint64_t idle_since;
    struct conn *next;
};

struct dest {
    char domain[DNS_NAME_MAX];
    struct work *ready;
    size_t head, n, cap; /* ready[head..n) */
    struct conn *conns;
    unsigned nconns, nbusy;
};

struct tx {
    struct rc_delivery *dl;
    struct dest *d;
    struct conn *conn;
    char id[ID_MAX];
    uint32_t *rcpts;
    char **addrs;
    size_t n;
    char mail_from[VERP_LOCAL_MAX + DNS_NAME_MAX + 2];
    uint8_t *body;
    size_t body_len;
    bool body_8bit;
    char (*host_names)[DNS_NAME_MAX]; /* MX names: the client keeps pointers to them until its callback */
    struct smtp_client_host *hosts;   /* resolved, in the order to try */
    size_t nhosts;
    uint64_t deadline; /* earliest ttr of its recipients */
    unsigned track;    /* TRACK_OPENS | TRACK_CLICKS the message asks for (tracking.url set) */
    bool resolving;    /* copy being made or MX lookup running: nobody contacted, no attempt marked yet */
    bool lost;         /* lost_in_space already proposed */
    struct tx *prev, *next;
};

struct rc_delivery {
    rc_node *n;
    uv_timer_t wake;
    dns_resolver *resolver;
    struct smtp_client_config ccfg;
    uint64_t delays[RC_RETRY_MAX];
    size_t ndelays;
    struct verp_key verp;
    struct track_key track;      /* base NULL: tracking off */
    struct track_limits track_lim;

    bool active;        /* this node delivers (leader, ready, not a witness) */
    uint64_t term;      /* leadership the state below belongs to */
    bool quiescing;     /* planned transfer: no new transactions */
    void (*quiesce_cb)(void *);
    void *quiesce_data;
    uint64_t quiesce_deadline;

    struct due *heap;
    size_t nheap, capheap;
    rc_map *inflight;   /* "ID/INDEX" → tx */
    rc_map *dests;      /* domain → struct dest */
    struct tx *txs;     /* active transactions */
    unsigned pending_outcomes; /* status proposals not yet answered */
    unsigned ntx, nconns;

    size_t sweep_pos; /* where the next retention sweep goes on */
    uint64_t last_sweep_ms;
    bool forget_inflight;

    bool stopping;
    int closing;        /* handles and clients still closing */
    void (*stop_cb)(void *);
    void *stop_data;

    struct rc_delivery_stats stats;
};

/* ------------------------------------------------------------ due heap */

static bool due_less(const struct due *a, const struct due *b)
{
    return a->at < b->at;
}

static void heap_push(struct rc_delivery *dl, const char *id, uint32_t rcpt, uint64_t at)
{
    if (strlen(id) >= ID_MAX)
        return;
    if (dl->nheap == dl->capheap) {
        size_t ncap = dl->capheap ? dl->capheap * 2 : 1024;
        struct due *nh = realloc(dl->heap, ncap * sizeof *nh);
        if (nh == NULL) {
            rc_error("delivery", "due_dropped id=%s rcpt=%u reason=out_of_memory action=next_leadership_rescan", id, rcpt);
            return;
        }
        dl->heap = nh;
        dl->capheap = ncap;
    }
    size_t i = dl->nheap++;
    struct due e = {.at = at, .rcpt = rcpt};
    memcpy(e.id, id, strlen(id) + 1);
    while (i > 0 && due_less(&e, &dl->heap[(i - 1) / 2])) {
        dl->heap[i] = dl->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    dl->heap[i] = e;
}

static void heap_pop(struct rc_delivery *dl, struct due *out)
{
    *out = dl->heap[0];
    struct due last = dl->heap[--dl->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= dl->nheap)
            break;
        if (c + 1 < dl->nheap && due_less(&dl->heap[c + 1], &dl->heap[c]))
            c++;
        if (!due_less(&dl->heap[c], &last))
            break;
        dl->heap[i] = dl->heap[c];
        i = c;
    }
    if (dl->nheap)
        dl->heap[i] = last;
}

/* --------------------------------------------------------------- helpers */

static void inflight_key(char *key, size_t len, const char *id, uint32_t rcpt)
{
    snprintf(key, len, "%s/%u", id, rcpt);
}

static bool is_inflight(struct rc_delivery *dl, const char *id, uint32_t rcpt)
{
    char key[ID_MAX + 16];
    inflight_key(key, sizeof key, id, rcpt);
    return rc_map_get(dl->inflight, key) != NULL;
}

/* The domain of an address, lower-cased; false for no usable domain. */
static bool address_domain(const char *addr, char *out, size_t len)
{
    const char *dom = smtp_addr_domain(addr);
    if (dom == NULL || dom == addr + 1 || strlen(dom) >= len)
        return false;
    size_t i = 0;
    for (const char *p = dom; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>')
            return false;
        out[i++] = (char)tolower((unsigned char)*p);
    }
    out[i] = '\0';
    return true;
}

static void kick_now(struct rc_delivery *dl);

/* A recipient whose outcome is proposed but not yet applied stays "in
 * flight" (value PENDING_OUTCOME) until the proposal's callback, which runs
 * after the apply: otherwise a due entry could start a second attempt in
 * between. */
static char pending_outcome_marker;
#define PENDING_OUTCOME ((void *)&pending_outcome_marker)

struct status_ctx {
    struct rc_delivery *dl;
    char key[ID_MAX + 16];
};

static void status_done(void *data, int status)
{
    struct status_ctx *c = data;
    struct rc_delivery *dl = c->dl;
    dl->pending_outcomes--;
    if (status != RC_OK) {
        dl->stats.proposals_failed++;
        rc_warn("delivery", "status_proposal_failed rcpt=%s error=\"%s\"", c->key, rc_strerror(status));
    }
    if (rc_map_get(dl->inflight, c->key) == PENDING_OUTCOME)
        rc_map_remove(dl->inflight, c->key);
    free(c);
    if (dl->quiescing)
        kick_now(dl);
}

struct outcome {
    int status;
    unsigned code, internal;
    const char *enhanced, *text, *reason, *remote_mta;
    bool hard;
    uint64_t next_attempt_ms;
};

static void propose_status(struct rc_delivery *dl, const char *id, uint32_t rcpt, const struct outcome *o)
{
    Ricochet__StatusUpdate u;
    ricochet__status_update__init(&u);
    u.id = (char *)id;
    u.has_recipient = u.has_status = u.has_at_ms = u.has_node = true;
    u.recipient = rcpt;
    u.status = (Ricochet__Status)o->status;
    u.at_ms = rc_now_ms();
    u.node = dl->n->cfg.node_id;
    if (o->code) {
        u.has_smtp_code = true;
        u.smtp_code = o->code;
    }
    if (o->internal) {
        u.has_internal_code = true;
        u.internal_code = o->internal;
    }
    u.enhanced = o->enhanced && o->enhanced[0] ? (char *)o->enhanced : NULL;
    u.text = o->text && o->text[0] ? (char *)o->text : NULL;
    u.reason = o->reason ? (char *)o->reason : NULL;
    u.remote_mta = o->remote_mta && o->remote_mta[0] ? (char *)o->remote_mta : NULL;
    u.has_hard = o->hard;
    u.hard = o->hard;
    if (o->next_attempt_ms) {
        u.has_next_attempt_ms = true;
        u.next_attempt_ms = o->next_attempt_ms;
    }
    Ricochet__Record rec;
    ricochet__record__init(&rec);
    rec.kind_case = RICOCHET__RECORD__KIND_STATUS;
    rec.status = &u;
    struct status_ctx *c = malloc(sizeof *c);
    if (c == NULL) {
        rc_error("delivery", "status_dropped id=%s rcpt=%u reason=out_of_memory", id, rcpt);
        return;
    }
    c->dl = dl;
    inflight_key(c->key, sizeof c->key, id, rcpt);
    rc_map_put(dl->inflight, c->key, PENDING_OUTCOME);
    dl->pending_outcomes++;
    int rv = rc_raft_propose(dl->n->raft, &rec, status_done, c);
    if (rv != RC_OK)
        status_done(c, rv);
}

/* When the next attempt is due after `attempts` attempts: the schedule's
 * delay (the last repeats), never past expiry or ttr, so that those
 * deadlines are met on time. */
static uint64_t next_attempt(const struct rc_delivery *dl, const struct rc_msg *m, unsigned attempts, uint64_t now)
{
    size_t k = attempts ? attempts - 1 : 0;
    if (k >= dl->ndelays)
        k = dl->ndelays - 1;
    uint64_t at = now + dl->delays[k];
    if (m->expire_at_ms && at > m->expire_at_ms)
        at = m->expire_at_ms;
    if (m->ttr_at_ms && at > m->ttr_at_ms)
        at = m->ttr_at_ms;
    return at > now ? at : now + 1;
}

/* The last attempt's reply, for an expired recipient's record. */
static const struct rc_history *last_attempt(const struct rc_rcpt *r)
{
    for (size_t i = r->n_history; i-- > 0;)
        if (r->history[i].smtp_code || r->history[i].internal_code)
            return &r->history[i];
    return NULL;
}

/* ------------------------------------------------------------ connections */

static void client_closed(void *arg)
{
    struct rc_delivery *dl = arg;
    if (--dl->closing == 0 && dl->stopping && dl->stop_cb) {
        void (*cb)(void *) = dl->stop_cb;
        dl->stop_cb = NULL;
        cb(dl->stop_data);
    }
}

static void conn_close(struct rc_delivery *dl, struct conn *c)
{
    struct dest *d = c->d;
    for (struct conn **pp = &d->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    d->nconns--;
    dl->nconns--;
    dl->closing++;
    smtp_client_close(c->client, client_closed, dl);
    free(c);
}

static struct conn *conn_get(struct rc_delivery *dl, struct dest *d)
{
    for (struct conn *c = d->conns; c; c = c->next)
        if (!c->busy && smtp_client_is_connected(c->client)) {
            c->busy = true;
            d->nbusy++;
            return c;
        }
    for (struct conn *c = d->conns; c; c = c->next)
        if (!c->busy) {
            c->busy = true;
            d->nbusy++;
            return c;
        }
    if (d->nconns >= dl->n->cfg.delivery_max_conns_domain || dl->nconns >= dl->n->cfg.delivery_max_conns)
        return NULL;
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL || smtp_client_new(&c->client, dl->n->loop, &dl->ccfg) != SMTP_CLIENT_OK) {
        free(c);
        return NULL;
    }
    c->d = d;
    c->busy = true;
    c->next = d->conns;
    d->conns = c;
    d->nconns++;
    d->nbusy++;
    dl->nconns++;
    return c;
}

static void conn_release(struct rc_delivery *dl, struct conn *c)
{
    c->busy = false;
    c->d->nbusy--;
    c->idle_since = rc_now_ms();
    if (dl->n->cfg.delivery_idle_timeout_ms == 0 || !dl->active || dl->stopping)
        conn_close(dl, c);
}

/* Closes idle connections (all of them, or those idle for longer than
 * delivery.idle_timeout) and forgets domains with nothing left, so that the
 * table does not grow with every domain ever seen. */
static void close_idle(struct rc_delivery *dl, bool all)
{
    uint64_t now = rc_now_ms();
    size_t pos = 0, nempty = 0;
    const char *key;
    void *value;
    struct dest *empty[64];
    while (rc_map_next(dl->dests, &pos, &key, &value)) {
        struct dest *d = value;
        struct conn *c = d->conns;
        while (c) {
            struct conn *next = c->next;
            if (!c->busy && (all || now - c->idle_since >= dl->n->cfg.delivery_idle_timeout_ms ||
                             !smtp_client_is_connected(c->client)))
                conn_close(dl, c);
            c = next;
        }
        if (!dl->stopping && d->nconns == 0 && d->head == d->n && nempty < sizeof empty / sizeof empty[0])
            empty[nempty++] = d;
    }
    for (size_t i = 0; i < nempty; i++) {
        rc_map_remove(dl->dests, empty[i]->domain);
        free(empty[i]->ready);
        free(empty[i]);
    }
}

static struct dest *dest_get(struct rc_delivery *dl, const char *domain)
{
    struct dest *d = rc_map_get(dl->dests, domain);
    if (d)
        return d;
    d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    snprintf(d->domain, sizeof d->domain, "%s", domain);
    if (rc_map_put(dl->dests, domain, d) != 0) {
        free(d);
        return NULL;
    }
    return d;
}

static void ready_push(struct dest *d, const char *id, uint32_t rcpt)
{
    if (d->head > 0 && d->head == d->n)
        d->head = d->n = 0;
    if (d->n == d->cap) {
        if (d->head > d->cap / 2) {
            memmove(d->ready, d->ready + d->head, (d->n - d->head) * sizeof *d->ready);
            d->n -= d->head;
            d->head = 0;
        } else {
            size_t ncap = d->cap ? d->cap * 2 : 64;
            struct work *nr = realloc(d->ready, ncap * sizeof *nr);
            if (nr == NULL)
                return; /* found again at the next leadership rescan */
            d->ready = nr;
            d->cap = ncap;
        }
    }
    struct work *w = &d->ready[d->n++];
    w->rcpt = rcpt;
    snprintf(w->id, sizeof w->id, "%s", id);
}

/* ---------------------------------------------------------- transactions */

static void tx_free(struct tx *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->addrs[i]);
    free(t->addrs);
    free(t->rcpts);
    free(t->body);
    free(t->host_names);
    free(t->hosts);
    free(t);
}

/* Ends a transaction: recipients leave the in-flight set; the connection
 * goes back to its pool. */
static void tx_end(struct tx *t)
{
    struct rc_delivery *dl = t->dl;
    for (size_t i = 0; i < t->n; i++) {
        char key[ID_MAX + 16];
        inflight_key(key, sizeof key, t->id, t->rcpts[i]);
        if (rc_map_get(dl->inflight, key) == t)
            rc_map_remove(dl->inflight, key);
    }
    if (t->prev)
        t->prev->next = t->next;
    else
        dl->txs = t->next;
    if (t->next)
        t->next->prev = t->prev;
    dl->ntx--;
    if (t->conn)
        conn_release(dl, t->conn);
    tx_free(t);
    kick_now(dl);
}

/* Every recipient of the transaction gets the same outcome (DNS results,
 * a refused proposal). */
static void tx_outcome_all(struct tx *t, const struct outcome *o)
{
    if (t->lost)
        return;
    for (size_t i = 0; i < t->n; i++)
        propose_status(t->dl, t->id, t->rcpts[i], o);
}

static void tx_defer_all(struct tx *t, unsigned internal, const char *text, const char *reason)
{
    struct rc_delivery *dl = t->dl;
    const struct rc_msg *m = rc_fsm_message(rc_raft_fsm(dl->n->raft), t->id);
    if (m == NULL || t->lost)
        return;
    uint64_t now = rc_now_ms();
    for (size_t i = 0; i < t->n; i++) {
        const struct rc_rcpt *r = &m->rcpts[t->rcpts[i]];
        struct outcome o = {.status = RC_ST_DEFERRED, .internal = internal, .text = text, .reason = reason,
                            .next_attempt_ms = next_attempt(dl, m, r->attempts + 1, now)};
        propose_status(dl, t->id, t->rcpts[i], &o);
    }
}

static void tx_sent(smtp_client *c, const struct smtp_client_result *res, void *arg)
{
    (void)c;
    struct tx *t = arg;
    struct rc_delivery *dl = t->dl;
    const struct rc_msg *m = rc_fsm_message(rc_raft_fsm(dl->n->raft), t->id);
    uint64_t now = rc_now_ms();
    if (res->reused)
        dl->stats.connections_reused++;
    for (size_t i = 0; i < res->nrcpts && i < t->n && m && !t->lost; i++) {
        const struct smtp_rcpt_result *x = &res->rcpts[i];
        const struct rc_rcpt *r = &m->rcpts[t->rcpts[i]];
        struct outcome o = {.code = (unsigned)x->code, .internal = (unsigned)x->internal,
                            .enhanced = x->enhanced, .text = x->text, .remote_mta = res->host};
        int hard = 0;
        switch (x->outcome) {
        case SMTP_OUT_DELIVERED:
            o.status = RC_ST_DELIVERED;
            dl->stats.delivered++;
            break;
        case SMTP_OUT_FAILED:
            o.status = RC_ST_FAILED;
            o.reason = bounce_reason_name(x->code ? bounce_classify_reply(x->code, x->enhanced, x->text, &hard)
                                                  : BOUNCE_R_MESGTOOBIG);
            o.hard = hard == 1;
            dl->stats.failed++;
            break;
        default:
            o.status = RC_ST_DEFERRED;
            if (x->code)
                o.reason = bounce_reason_name(bounce_classify_reply(x->code, x->enhanced, x->text, &hard));
            o.next_attempt_ms = next_attempt(dl, m, r->attempts + 1, now);
            dl->stats.deferred++;
            break;
        }
        propose_status(dl, t->id, t->rcpts[i], &o);
    }
    /* A client whose connection dropped stays in the pool: the next
     * transaction reconnects with it. */
    tx_end(t);
}

static void tx_attempt_committed(void *data, int status);

/* Marks the attempt in the log before the first byte goes out, so that a
 * new leader knows this attempt may have happened (repeat counting). */
static void tx_mark_attempt(struct tx *t)
{
    Ricochet__AttemptStart a;
    ricochet__attempt_start__init(&a);
    a.id = t->id;
    a.recipients = t->rcpts;
    a.n_recipients = t->n;
    a.has_node = a.has_at_ms = true;
    a.node = t->dl->n->cfg.node_id;
    a.at_ms = rc_now_ms();
    Ricochet__Record rec;
    ricochet__record__init(&rec);
    rec.kind_case = RICOCHET__RECORD__KIND_ATTEMPT;
    rec.attempt = &a;
    int rv = rc_raft_propose(t->dl->n->raft, &rec, tx_attempt_committed, t);
    if (rv != RC_OK)
        tx_attempt_committed(t, rv);
}

/* The MX lookup comes first: it contacts nobody, so a planned transfer
 * need not wait for it and a new leader has no attempt to count. */
/* Before anyone was contacted (copy made, MX looked up): true when
 * leadership is going (or gone) and t was ended. The recipients stay as they
 * are, for this leader after a failed transfer or for the next one. */
static bool tx_abandoned(struct tx *t)
{
    struct rc_delivery *dl = t->dl;
    if (dl->active && !dl->stopping && !dl->quiescing)
        return false;
    t->resolving = false;
    if (dl->active && !dl->stopping)
        for (size_t i = 0; i < t->n; i++)
            heap_push(dl, t->id, t->rcpts[i], rc_now_ms() + BUSY_RETRY_MS);
    tx_end(t); /* kicks the scheduler, which sees the quiesce through */
    return true;
}

static void tx_resolved(const struct dns_mx_result *res, void *arg)
{
    struct tx *t = arg;
    struct rc_delivery *dl = t->dl;
    if (tx_abandoned(t))
        return;
    t->resolving = false;
    if (res->status == DNS_MX_PERMFAIL) {
        struct outcome o = {.status = RC_ST_UNDELIVERABLE, .text = res->errmsg,
                            .reason = res->err == DNS_ENULLMX ? "notaccept" : "hostunknown", .hard = true};
        dl->stats.undeliverable += t->n;
        tx_outcome_all(t, &o);
        tx_end(t);
        return;
    }
    if (res->status != DNS_MX_OK || res->n == 0) {
        dl->stats.deferred += t->n;
        tx_defer_all(t, RC_INT_DNS_TEMPFAIL, res->errmsg[0] ? res->errmsg : "MX lookup failed", "networkerror");
        tx_end(t);
        return;
    }
    t->hosts = calloc(res->n, sizeof *t->hosts);
    t->host_names = calloc(res->n, sizeof *t->host_names);
    if (t->hosts == NULL || t->host_names == NULL) {
        tx_defer_all(t, RC_INT_DNS_TEMPFAIL, "out of memory", NULL);
        tx_end(t);
        return;
    }
    for (size_t i = 0; i < res->n; i++) {
        t->hosts[i].addr = res->targets[i].addr;
        snprintf(t->host_names[i], sizeof t->host_names[i], "%s", res->targets[i].host);
        t->hosts[i].name = t->host_names[i];
        if (t->hosts[i].addr.ss_family == AF_INET)
            ((struct sockaddr_in *)&t->hosts[i].addr)->sin_port = htons((uint16_t)dl->n->cfg.delivery_port);
        else
            ((struct sockaddr_in6 *)&t->hosts[i].addr)->sin6_port = htons((uint16_t)dl->n->cfg.delivery_port);
    }
    t->nhosts = res->n;
    tx_mark_attempt(t);
}

static void tx_attempt_committed(void *data, int status)
{
    struct tx *t = data;
    struct rc_delivery *dl = t->dl;
    if (status != RC_OK || dl->stopping) {
        /* Not sent: the recipients stay as they are; the leader that holds
         * the log (this one after a retry, or the next) tries them. */
        rc_info("delivery", "attempt_not_started id=%s error=\"%s\"", t->id, rc_strerror(status));
        if (dl->active && !dl->stopping)
            for (size_t i = 0; i < t->n; i++)
                heap_push(dl, t->id, t->rcpts[i], rc_now_ms() + BUSY_RETRY_MS);
        tx_end(t);
        return;
    }
    struct smtp_client_msg msg = {
        .mail_from = t->mail_from,
        .rcpts = (const char *const *)t->addrs,
        .nrcpts = t->n,
        .body = t->body,
        .body_len = t->body_len,
        .body_8bit = t->body_8bit,
    };
    dl->stats.transactions++;
    dl->stats.rcpt_attempts += t->n;
    int rv = smtp_client_send(t->conn->client, t->hosts, t->nhosts, &msg, tx_sent, t);
    if (rv != SMTP_CLIENT_OK) {
        rc_warn("delivery", "send_failed id=%s error=\"%s\"", t->id, smtp_client_strerror(rv));
        tx_defer_all(t, SMTP_INT_CANCELED, smtp_client_strerror(rv), NULL);
        tx_end(t);
    }
}

static void tx_resolve(struct tx *t)
{
    struct rc_delivery *dl = t->dl;
    int rv = dns_resolver_mx(dl->resolver, t->d->domain, tx_resolved, t);
    if (rv != DNS_OK) {
        struct dns_mx_result r = {.status = rv == DNS_EBADNAME ? DNS_MX_PERMFAIL : DNS_MX_TEMPFAIL, .err = rv};
        snprintf(r.errmsg, sizeof r.errmsg, "%.200s: %s", t->d->domain, dns_strerror(rv));
        tx_resolved(&r, t);
    }
}

/* The recipient's tracked copy is made on libuv's thread pool (GMime and
 * gumbo over a whole message can take milliseconds), then the MX lookup
 * goes on as for any transaction. Nothing else touches the transaction
 * meanwhile (resolving: no connection used, no attempt marked), and the
 * node's stop waits for it (closing). */
struct tx_track_job {
    uv_work_t req;
    struct tx *t;
    char *copy;
    size_t copy_len;
    int rv;
    struct track_result res;
};

static void tx_track_work(uv_work_t *req)
{
    struct tx_track_job *j = req->data;
    struct tx *t = j->t;
    struct rc_delivery *dl = t->dl;
    j->rv = track_rewrite(&dl->track, t->id, t->rcpts[0], t->track, (const char *)t->body, t->body_len,
                          &dl->track_lim, &j->copy, &j->copy_len, &j->res);
}

static void tx_track_done(uv_work_t *req, int status)
{
    struct tx_track_job *j = req->data;
    struct tx *t = j->t;
    struct rc_delivery *dl = t->dl;
    if (status == 0 && j->rv == TRACK_OK) {
        free(t->body);
        t->body = (uint8_t *)j->copy;
        t->body_len = j->copy_len;
        dl->stats.tracked_copies++;
        rc_debug("delivery", "tracked_copy id=%s rcpt=%u html_parts=%zu links=%zu skipped=%zu", t->id, t->rcpts[0],
                 j->res.html_parts, j->res.links, j->res.skipped);
    } else {
        /* the mail goes out as it was submitted: losing the tracking is
         * better than losing or holding the mail */
        free(j->copy);
        dl->stats.tracking_failed++;
        rc_warn("delivery", "tracking_skipped id=%s rcpt=%u error=\"%s\" action=sent_unchanged", t->id, t->rcpts[0],
                status != 0 ? uv_strerror(status) : track_strerror(j->rv));
    }
    free(j);
    if (!tx_abandoned(t))
        tx_resolve(t);
    client_closed(dl);
}

static void tx_track(struct tx *t)
{
    struct rc_delivery *dl = t->dl;
    struct tx_track_job *j = calloc(1, sizeof *j);
    if (j != NULL) {
        j->t = t;
        j->req.data = j;
        dl->closing++;
        if (uv_queue_work(dl->n->loop, &j->req, tx_track_work, tx_track_done) == 0)
            return;
        dl->closing--;
        free(j);
    }
    dl->stats.tracking_failed++;
    rc_warn("delivery", "tracking_skipped id=%s rcpt=%u error=\"out of memory\" action=sent_unchanged", t->id,
            t->rcpts[0]);
    tx_resolve(t);
}

/* Takes the first ready recipient of d and the other ready recipients of
 * the same message (up to delivery.max_rcpts) into one transaction. Returns
 * false when no connection slot is free. */
static bool tx_start(struct rc_delivery *dl, struct dest *d)
{
    rc_fsm *fsm = rc_raft_fsm(dl->n->raft);
    struct work first = d->ready[d->head];
    const struct rc_msg *m = rc_fsm_message(fsm, first.id);
    if (m == NULL || first.rcpt >= m->n_rcpts || rc_status_terminal(m->rcpts[first.rcpt].status) ||
        is_inflight(dl, first.id, first.rcpt)) {
        d->head++;
        return true;
    }
    struct conn *c = conn_get(dl, d);
    if (c == NULL)
        return false;
    struct tx *t = calloc(1, sizeof *t);
    if (t == NULL) {
        conn_release(dl, c);
        return false;
    }
    t->dl = dl;
    t->d = d;
    t->conn = c;
    snprintf(t->id, sizeof t->id, "%s", first.id);
    if (rc_spool_get(dl->n->spool, m->id, m->body_sha256, &t->body, &t->body_len) != 0) {
        /* Not in the local spool yet (restored snapshot: fetched from peers). */
        heap_push(dl, first.id, first.rcpt, rc_now_ms() + BODY_RETRY_MS);
        d->head++;
        t->conn = NULL;
        conn_release(dl, c);
        tx_free(t);
        return true;
    }
    /* a message that asks for tracking: each recipient gets its own copy */
    t->track = dl->track.base ? track_wanted((const char *)t->body, t->body_len) : 0;
    size_t max = dl->n->cfg.delivery_verp_per_rcpt || t->track ? 1 : dl->n->cfg.delivery_max_rcpts;
    if ((t->rcpts = calloc(max, sizeof *t->rcpts)) == NULL || (t->addrs = calloc(max, sizeof *t->addrs)) == NULL) {
        t->conn = NULL;
        conn_release(dl, c);
        tx_free(t);
        return false;
    }
    /* the client also marks a body with bytes >= 0x80 as 8-bit */
    t->body_8bit = m->body_type && strcasecmp(m->body_type, "8BITMIME") == 0;
    /* Gather: the first entry, then same-message entries among the next ones. */
    size_t scan_end = d->n - d->head > 256 ? d->head + 256 : d->n;
    t->deadline = m->ttr_at_ms;
    for (size_t k = d->head; k < scan_end && t->n < max; k++) {
        struct work *w = &d->ready[k];
        if (w->id[0] == '\0' || strcmp(w->id, first.id) != 0)
            continue;
        bool dup = false;
        for (size_t j = 0; j < t->n; j++)
            dup |= t->rcpts[j] == w->rcpt;
        const struct rc_rcpt *r = w->rcpt < m->n_rcpts ? &m->rcpts[w->rcpt] : NULL;
        if (!dup && r && !rc_status_terminal(r->status) && !is_inflight(dl, w->id, w->rcpt)) {
            t->addrs[t->n] = strdup(r->address);
            if (t->addrs[t->n] == NULL)
                break;
            t->rcpts[t->n++] = w->rcpt;
        }
        w->id[0] = '\0'; /* taken (or stale) */
    }
    while (d->head < d->n && d->ready[d->head].id[0] == '\0')
        d->head++;
    if (t->n == 0) {
        t->conn = NULL;
        conn_release(dl, c);
        tx_free(t);
        return true;
    }
    /* Return path: the sender's null path stays null (DSNs, bounces);
     * otherwise VERP on bounce.domain naming the message and, when the
     * transaction carries one recipient, that recipient. */
    if (m->mail_from == NULL || m->mail_from[0] == '\0') {
        t->mail_from[0] = '\0';
    } else {
        uint32_t index = t->n == 1 ? t->rcpts[0] : VERP_RCPT_MESSAGE;
        int rv = verp_encode(&dl->verp, dl->n->cfg.bounce_domain, m->id, strlen(m->id), index, t->mail_from,
                             sizeof t->mail_from);
        if (rv != VERP_OK) {
            rc_warn("delivery", "verp_failed id=%s error=\"%s\" action=plain_return_path", m->id, verp_strerror(rv));
            snprintf(t->mail_from, sizeof t->mail_from, "%s", m->mail_from);
        }
    }
    for (size_t i = 0; i < t->n; i++) {
        char key[ID_MAX + 16];
        inflight_key(key, sizeof key, t->id, t->rcpts[i]);
        rc_map_put(dl->inflight, key, t);
    }
    t->next = dl->txs;
    if (dl->txs)
        dl->txs->prev = t;
    dl->txs = t;
    dl->ntx++;

    t->resolving = true;
    if (t->track)
        tx_track(t);
    else
        tx_resolve(t);
    return true;
}

/* ---------------------------------------------------------- the wake-up */

/* A due recipient: final statuses and deadlines are decided here; the rest
 * goes to its domain's ready list. */
static void due_one(struct rc_delivery *dl, const struct due *e, uint64_t now)
{
    const struct rc_msg *m = rc_fsm_message(rc_raft_fsm(dl->n->raft), e->id);
    if (m == NULL || e->rcpt >= m->n_rcpts)
        return;
    const struct rc_rcpt *r = &m->rcpts[e->rcpt];
    if (rc_status_terminal(r->status) || is_inflight(dl, e->id, e->rcpt))
        return;
    if (r->status == RC_ST_DEFERRED && r->next_attempt_ms > now)
        return; /* an older entry: the deferral pushed its own */
    if (m->ttr_at_ms && now >= m->ttr_at_ms) {
        struct outcome o = {.status = RC_ST_LOST_IN_SPACE, .reason = "lost_in_space",
                            .text = "no outcome recorded within delivery.ttr"};
        dl->stats.lost++;
        propose_status(dl, m->id, e->rcpt, &o);
        return;
    }
    if (m->expire_at_ms && now >= m->expire_at_ms) {
        const struct rc_history *h = last_attempt(r);
        struct outcome o = {.status = RC_ST_EXPIRED, .reason = "expired",
                            .text = h && h->text ? h->text : "only temporary failures until delivery.expire",
                            .enhanced = h ? h->enhanced : NULL, .remote_mta = h ? h->remote_mta : NULL};
        dl->stats.expired++;
        propose_status(dl, m->id, e->rcpt, &o);
        return;
    }
    char domain[DNS_NAME_MAX];
    if (!address_domain(r->address, domain, sizeof domain)) {
        struct outcome o = {.status = RC_ST_UNDELIVERABLE, .reason = "syntaxerror", .hard = true,
                            .text = "recipient address has no usable domain"};
        dl->stats.undeliverable++;
        propose_status(dl, m->id, e->rcpt, &o);
        return;
    }
    struct dest *d = dest_get(dl, domain);
    if (d)
        ready_push(d, e->id, e->rcpt);
}

static void start_transactions(struct rc_delivery *dl)
{
    if (dl->quiescing)
        return;
    size_t pos = 0;
    const char *key;
    void *value;
    while (rc_map_next(dl->dests, &pos, &key, &value)) {
        struct dest *d = value;
        while (d->head < d->n && tx_start(dl, d)) /* false: no connection slot free */
            ;
    }
}

/* In-flight attempts past their time to respond: lost_in_space now; the
 * late reply will be ignored (the FSM refuses changes after it). */
static void expire_inflight(struct rc_delivery *dl, uint64_t now)
{
    for (struct tx *t = dl->txs; t; t = t->next) {
        if (t->lost || t->resolving || t->deadline == 0 || now < t->deadline)
            continue;
        t->lost = true;
        struct outcome o = {.status = RC_ST_LOST_IN_SPACE, .reason = "lost_in_space",
                            .text = "attempt in flight without an outcome at delivery.ttr"};
        dl->stats.lost += t->n;
        for (size_t i = 0; i < t->n; i++)
            propose_status(dl, t->id, t->rcpts[i], &o);
    }
}

/* What a planned transfer waits for: transactions that contacted (or may
 * have contacted) a remote host and whose outcome still counts (not already
 * lost_in_space), and outcomes not yet committed. MX lookups are not
 * waited for: they end without a record while quiescing. */
static unsigned awaited_transactions(const struct rc_delivery *dl)
{
    unsigned k = dl->pending_outcomes;
    for (const struct tx *t = dl->txs; t; t = t->next)
        k += !t->lost && !t->resolving;
    return k;
}

static void deactivate(struct rc_delivery *dl)
{
    dl->active = false;
    dl->nheap = 0;
    size_t pos = 0;
    const char *key;
    void *value;
    while (rc_map_next(dl->dests, &pos, &key, &value)) {
        struct dest *d = value;
        d->head = d->n = 0;
    }
    close_idle(dl, true);
    rc_dsn_forget(dl->n);
    if (dl->quiescing) {
        dl->quiescing = false;
        if (dl->quiesce_cb) {
            void (*cb)(void *) = dl->quiesce_cb;
            dl->quiesce_cb = NULL;
            cb(dl->quiesce_data);
        }
    }
}

static void forget_done(void *data, int status)
{
    struct rc_delivery *dl = data;
    dl->forget_inflight = false;
    if (status != RC_OK)
        rc_warn("delivery", "forget_proposal_failed error=\"%s\"", rc_strerror(status));
}

/* Retention: messages whose every recipient is final and whose last event
 * is older than delivery.retention leave the state (and the spools), in
 * Forget records of at most FORGET_MAX ids, one in flight at a time. With
 * webhooks, a message also waits until the receiver acknowledged all its
 * events, or webhooks.max_hold more. A sweep goes on from where the last
 * one stopped and looks at no more than delivery.retention_scan_max
 * messages, so a large state is covered over several sweeps instead of in
 * one long pass on the loop. */
static bool webhooks_hold(const struct rc_delivery *dl, const struct rc_msg *m, uint64_t last, uint64_t now)
{
    const struct rc_config *c = &dl->n->cfg;
    if (c->webhooks_url[0] == '\0' || last + c->delivery_retention_ms + c->webhooks_max_hold_ms <= now)
        return false;
    for (size_t i = 0; i < m->n_rcpts; i++)
        if (m->rcpts[i].webhook_sent < m->rcpts[i].n_history)
            return true;
    return false;
}

static void retention_sweep(struct rc_delivery *dl, uint64_t now)
{
    if (dl->forget_inflight || now - dl->last_sweep_ms < RETENTION_SWEEP_MS)
        return;
    dl->last_sweep_ms = now;
    uint64_t retention = dl->n->cfg.delivery_retention_ms;
    if (now < retention)
        return;
    rc_fsm *fsm = rc_raft_fsm(dl->n->raft);
    char **ids = malloc(FORGET_MAX * sizeof *ids);
    if (ids == NULL)
        return;
    size_t n = 0, scanned = 0;
    const struct rc_msg *m;
    while (n < FORGET_MAX && scanned++ < dl->n->cfg.delivery_retention_scan_max) {
        if ((m = rc_fsm_message_next(fsm, &dl->sweep_pos)) == NULL) {
            dl->sweep_pos = 0; /* the end: the next sweep starts over */
            break;
        }
        uint64_t last = m->received_ms;
        bool final = true;
        for (size_t i = 0; i < m->n_rcpts && final; i++) {
            const struct rc_rcpt *r = &m->rcpts[i];
            final = rc_status_terminal(r->status);
            if (r->n_history && r->history[r->n_history - 1].at_ms > last)
                last = r->history[r->n_history - 1].at_ms;
        }
        if (final && last + retention <= now && !webhooks_hold(dl, m, last, now))
            ids[n++] = m->id;
    }
    if (n > 0) {
        Ricochet__Forget g;
        ricochet__forget__init(&g);
        g.ids = ids;
        g.n_ids = n;
        g.has_at_ms = true;
        g.at_ms = now;
        Ricochet__Record rec;
        ricochet__record__init(&rec);
        rec.kind_case = RICOCHET__RECORD__KIND_FORGET;
        rec.forget = &g;
        rc_info("delivery", "retention_forget messages=%zu", n);
        if (rc_raft_propose(dl->n->raft, &rec, forget_done, dl) == RC_OK)
            dl->forget_inflight = true;
    }
    free(ids); /* the record was copied */
}

/* A new leadership: every non-terminal recipient goes into the heap. */
static void activate(struct rc_delivery *dl, uint64_t term)
{
    dl->active = true;
    dl->term = term;
    dl->nheap = 0;
    rc_fsm *fsm = rc_raft_fsm(dl->n->raft);
    size_t pos = 0, pending = 0, repeats = 0;
    const struct rc_msg *m;
    while ((m = rc_fsm_message_next(fsm, &pos)) != NULL) {
        for (size_t i = 0; i < m->n_rcpts; i++) {
            const struct rc_rcpt *r = &m->rcpts[i];
            if (rc_status_terminal(r->status)) {
                rc_dsn_check(dl->n, m, i);
                continue;
            }
            if (r->attempt_node && !is_inflight(dl, m->id, (uint32_t)i)) {
                repeats++;
                rc_warn("delivery", "delivery_repeat id=%s rcpt=%zu previous_node=%llu attempt_at=%llu "
                        "reason=attempt_without_outcome_before_leader_change", m->id, i,
                        (unsigned long long)r->attempt_node, (unsigned long long)r->attempt_at_ms);
            }
            heap_push(dl, m->id, (uint32_t)i, r->status == RC_ST_DEFERRED ? r->next_attempt_ms : 0);
            pending++;
        }
    }
    dl->stats.repeats += repeats;
    rc_info("delivery", "delivering term=%llu pending=%zu repeats=%zu", (unsigned long long)term, pending, repeats);
}

static void wake_cb(uv_timer_t *timer)
{
    struct rc_delivery *dl = timer->data;
    if (dl->stopping)
        return;
    struct rc_raft_status st;
    bool should = rc_node_does_leader_work(dl->n, &st);
    if (!should && dl->active) {
        rc_info("delivery", "stopped_delivering term=%llu inflight=%u", (unsigned long long)dl->term, dl->ntx);
        deactivate(dl);
    }
    if (should && (!dl->active || st.term != dl->term)) {
        if (dl->active)
            deactivate(dl);
        activate(dl, st.term);
    }
    uint64_t now = rc_now_ms();
    uint64_t next = WAKE_MAX_MS;
    if (dl->active) {
        size_t budget = POP_BUDGET;
        while (dl->nheap > 0 && dl->heap[0].at <= now && budget-- > 0) {
            struct due e;
            heap_pop(dl, &e);
            due_one(dl, &e, now);
        }
        expire_inflight(dl, now);
        start_transactions(dl);
        retention_sweep(dl, now);
        rc_dsn_run(dl->n);
        if (dl->nheap > 0) {
            uint64_t at = dl->heap[0].at;
            next = at <= now ? 1 : at - now < next ? at - now : next;
        }
        if (dl->quiescing && (awaited_transactions(dl) == 0 || now >= dl->quiesce_deadline)) {
            void (*cb)(void *) = dl->quiesce_cb;
            dl->quiesce_cb = NULL;
            rc_info("delivery", "quiesced inflight=%u", dl->ntx);
            if (cb)
                cb(dl->quiesce_data);
        }
    }
    close_idle(dl, false);
    uv_timer_start(&dl->wake, wake_cb, next, 0);
}

/* ------------------------------------------------------------- interface */

static void kick_now(struct rc_delivery *dl)
{
    if (!dl->stopping && dl->active)
        uv_timer_start(&dl->wake, wake_cb, 0, 0);
}

void rc_delivery_on_accept(rc_node *n, const struct rc_msg *m)
{
    struct rc_delivery *dl = n->delivery;
    if (dl == NULL || !dl->active)
        return;
    for (size_t i = 0; i < m->n_rcpts; i++)
        if (m->rcpts[i].status == RC_ST_QUEUED)
            heap_push(dl, m->id, (uint32_t)i, 0);
    kick_now(dl);
}

void rc_delivery_on_status(rc_node *n, const struct rc_msg *m, size_t rcpt, int old_status)
{
    (void)old_status;
    struct rc_delivery *dl = n->delivery;
    if (dl == NULL || !dl->active)
        return;
    const struct rc_rcpt *r = &m->rcpts[rcpt];
    if (r->status == RC_ST_DEFERRED) {
        heap_push(dl, m->id, (uint32_t)rcpt, r->next_attempt_ms);
        rc_dsn_check(n, m, rcpt); /* a delay warning, if NOTIFY asks */
        kick_now(dl);
    } else if (rc_status_terminal(r->status)) {
        rc_dsn_check(n, m, rcpt);
        kick_now(dl);
    }
}

void rc_delivery_on_restore(rc_node *n)
{
    struct rc_delivery *dl = n->delivery;
    if (dl && dl->active)
        dl->term = 0; /* rebuild from the restored state at the next wake */
}

int rc_delivery_quiesce(rc_node *n, void (*cb)(void *), void *data)
{
    struct rc_delivery *dl = n->delivery;
    if (dl == NULL || !dl->active || awaited_transactions(dl) == 0 || n->cfg.delivery_transfer_wait_ms == 0) {
        cb(data);
        return 0;
    }
    if (dl->quiescing)
        return -1;
    dl->quiescing = true;
    dl->quiesce_cb = cb;
    dl->quiesce_data = data;
    dl->quiesce_deadline = rc_now_ms() + n->cfg.delivery_transfer_wait_ms;
    rc_info("delivery", "quiescing inflight=%u wait_ms=%llu", dl->ntx,
            (unsigned long long)n->cfg.delivery_transfer_wait_ms);
    return 0;
}

void rc_delivery_resume(rc_node *n)
{
    struct rc_delivery *dl = n->delivery;
    if (dl && dl->quiescing) {
        dl->quiescing = false;
        dl->quiesce_cb = NULL;
        kick_now(dl);
    }
}

void rc_delivery_count_dsn(rc_node *n, bool queued)
{
    if (n->delivery == NULL)
        return;
    if (queued)
        n->delivery->stats.dsn_sent++;
    else
        n->delivery->stats.dsn_failed++;
}

void rc_delivery_get_stats(rc_node *n, struct rc_delivery_stats *out)
{
    struct rc_delivery *dl = n->delivery;
    memset(out, 0, sizeof *out);
    if (dl == NULL)
        return;
    *out = dl->stats;
    out->active = dl->active;
    out->queue = dl->nheap;
    out->inflight_transactions = dl->ntx;
    out->connections = dl->nconns;
}

int rc_delivery_start(rc_node *n, char *err, size_t errlen)
{
    struct rc_delivery *dl = calloc(1, sizeof *dl);
    if (dl == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    dl->n = n;
    dl->inflight = rc_map_new();
    dl->dests = rc_map_new();
    if (dl->inflight == NULL || dl->dests == NULL)
        goto nomem;
    if (rc_retry_schedule_parse(n->cfg.retry_schedule, dl->delays, RC_RETRY_MAX, &dl->ndelays) != 0) {
        snprintf(err, errlen, "delivery.retry_schedule: invalid");
        goto fail;
    }
    struct dns_resolver_config rcfg = {.server = n->cfg.resolver};
    char rerr[256];
    if (dns_resolver_new(&dl->resolver, n->loop, &rcfg, rerr, sizeof rerr) != DNS_OK) {
        snprintf(err, errlen, "delivery.resolver: %s", rerr);
        goto fail;
    }
    dl->ccfg.helo_name = n->cfg.hostname;
    dl->ccfg.connect_timeout_ms = (unsigned)n->cfg.delivery_connect_timeout_ms;
    dl->ccfg.greeting_timeout_ms = (unsigned)n->cfg.delivery_command_timeout_ms;
    dl->ccfg.command_timeout_ms = (unsigned)n->cfg.delivery_command_timeout_ms;
    dl->ccfg.final_timeout_ms = (unsigned)n->cfg.delivery_data_timeout_ms;
    dl->ccfg.tls_policy = strcmp(n->cfg.delivery_tls, "none") == 0       ? SMTP_TLS_NONE
                          : strcmp(n->cfg.delivery_tls, "required") == 0 ? SMTP_TLS_REQUIRED
                                                                         : SMTP_TLS_OPPORTUNISTIC;
    dl->verp.secret = (const uint8_t *)n->cfg.bounce_secret;
    dl->verp.secret_len = strlen(n->cfg.bounce_secret);
    if (n->cfg.tracking_url[0] != '\0') {
        dl->track.base = n->cfg.tracking_url;
        dl->track.secret = (const uint8_t *)n->cfg.tracking_secret;
        dl->track.secret_len = strlen(n->cfg.tracking_secret);
        dl->track_lim.max_html = (size_t)n->cfg.tracking_max_html;
        dl->track_lim.max_links = (size_t)n->cfg.tracking_max_links;
    }
    uv_timer_init(n->loop, &dl->wake);
    dl->wake.data = dl;
    uv_timer_start(&dl->wake, wake_cb, WAKE_MAX_MS, 0);
    n->delivery = dl;
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    rc_map_free(dl->inflight);
    rc_map_free(dl->dests);
    free(dl);
    return -1;
}

static void wake_closed(uv_handle_t *h)
{
    client_closed(h->data);
}

static void resolver_closed(void *arg)
{
    client_closed(arg);
}

void rc_delivery_stop(rc_node *n, void (*cb)(void *), void *data)
{
    struct rc_delivery *dl = n->delivery;
    if (dl == NULL) {
        cb(data);
        return;
    }
    dl->stopping = true;
    dl->stop_cb = cb;
    dl->stop_data = data;
    dl->closing++; /* held until everything below has started closing */
    uv_timer_stop(&dl->wake);
    dl->closing++;
    uv_close((uv_handle_t *)&dl->wake, wake_closed);
    /* Transactions in flight end with SMTP_INT_CANCELED (deferred); their
     * proposals still go out while raft is open (it closes after us). A
     * transaction waiting for its AttemptStart or its MX lookup ends when
     * that answers (raft shutdown, resolver cancel). */
    for (struct tx *t = dl->txs, *next; t; t = next) {
        next = t->next;
        struct conn *c = t->conn;
        if (c) {
            t->conn = NULL;
            c->busy = false;
            c->d->nbusy--;
            conn_close(dl, c); /* may run tx_sent (canceled), which ends t */
        }
    }
    close_idle(dl, true);
    dl->closing++;
    dns_resolver_close(dl->resolver, resolver_closed, dl);
    client_closed(dl);
}

void rc_delivery_free(rc_node *n)
{
    struct rc_delivery *dl = n->delivery;
    if (dl == NULL)
        return;
    size_t pos = 0;
    const char *key;
    void *value;
    while (rc_map_next(dl->dests, &pos, &key, &value)) {
        struct dest *d = value;
        struct conn *c = d->conns;
        while (c) {
            struct conn *next = c->next;
            free(c);
            c = next;
        }
        free(d->ready);
        free(d);
    }
    rc_map_free(dl->dests);
    rc_map_free(dl->inflight);
    free(dl->heap);
    free(dl);
    n->delivery = NULL;
}
