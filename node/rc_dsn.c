/* Delivery status notifications to the envelope sender (docs/EGRESS.md,
 * "Delivery status notifications").
 *
 * The leader checks every recipient that reaches a final status (and, at a
 * new leadership, every final recipient): a DSN is owed when delivery.dsn
 * is on, the sender is not the null sender, and NOTIFY asks for it
 * (failures when NOTIFY was not given). The DSN is built by smtp/dsn.h and
 * proposed as a new message from <> whose id is derived from the original
 * message and recipient ("<ID>D<INDEX>" for a failure, "<ID>S<INDEX>" for
 * success). The FSM applies one Accept per id, so a DSN proposed twice (a
 * retry, or two leaders) is sent once; a DSN is from <>, so its own failure
 * can never cause another. */
#include "node/rc_node_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "node/base/rc_log.h"
#include "proto/ricochet.pb-c.h"
#include "raft/rc_map.h"
#include "smtp/dsn.h"

#define DSN_ID_MAX 64
#define DSN_PER_RUN 64 /* DSNs built per scheduler wake-up; the rest wait */

struct dsn_job {
    char id[DSN_ID_MAX];     /* the original message */
    uint32_t rcpt;
    char dsn_id[DSN_ID_MAX];
};

struct rc_dsn {
    struct dsn_job *jobs;
    size_t njobs, cap;
    rc_map *proposed;        /* DSN ids proposed and not yet applied */
};

static struct rc_dsn *dsn_state(rc_node *n)
{
    if (n->dsn == NULL) {
        n->dsn = calloc(1, sizeof *n->dsn);
        if (n->dsn && (n->dsn->proposed = rc_map_new()) == NULL) {
            free(n->dsn);
            n->dsn = NULL;
        }
    }
    return n->dsn;
}

/* NOTIFY holds a comma-separated list (RFC 3461 §4.1). */
static bool notify_has(const char *notify, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = notify; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == wl && strncasecmp(p, word, wl) == 0)
            return true;
        p = comma ? comma + 1 : NULL;
    }
    return false;
}

static bool is_failure(int status)
{
    return status == RC_ST_FAILED || status == RC_ST_BOUNCED || status == RC_ST_UNDELIVERABLE ||
           status == RC_ST_EXPIRED;
}

/* 'D' for a failure DSN, 'S' for a success DSN, 'W' for a delay warning,
 * 0 when none is owed. */
static char dsn_kind(const rc_node *n, const struct rc_msg *m, const struct rc_rcpt *r)
{
    if (!n->cfg.delivery_dsn || m->mail_from == NULL || m->mail_from[0] == '\0')
        return 0;
    if (r->status == RC_ST_DEFERRED) {
        /* One warning: at the deferral that crosses delivery.delay_warning
         * (not at every later one, and not again once the warning itself
         * has left the state by retention). */
        if (r->notify == NULL || !notify_has(r->notify, "DELAY") || n->cfg.delivery_delay_warning_ms == 0 ||
            r->n_history == 0)
            return 0;
        uint64_t due = m->received_ms + n->cfg.delivery_delay_warning_ms;
        uint64_t last = r->history[r->n_history - 1].at_ms;
        uint64_t prev = r->n_history >= 2 ? r->history[r->n_history - 2].at_ms : 0;
        return last >= due && prev < due ? 'W' : 0;
    }
    if (is_failure(r->status))
        return r->notify == NULL || notify_has(r->notify, "FAILURE") ? 'D' : 0;
    if (r->status == RC_ST_DELIVERED && r->notify && notify_has(r->notify, "SUCCESS"))
        return 'S';
    return 0;
}

void rc_dsn_check(rc_node *n, const struct rc_msg *m, size_t rcpt)
{
    const struct rc_rcpt *r = &m->rcpts[rcpt];
    char kind = dsn_kind(n, m, r);
    if (kind == 0)
        return;
    char dsn_id[DSN_ID_MAX];
    if (snprintf(dsn_id, sizeof dsn_id, "%s%c%zu", m->id, kind, rcpt) >= (int)sizeof dsn_id)
        return;
    struct rc_dsn *d = dsn_state(n);
    if (d == NULL || rc_fsm_message(rc_raft_fsm(n->raft), dsn_id) || rc_map_get(d->proposed, dsn_id))
        return;
    for (size_t i = 0; i < d->njobs; i++)
        if (strcmp(d->jobs[i].dsn_id, dsn_id) == 0)
            return;
    if (d->njobs == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 16;
        struct dsn_job *nj = realloc(d->jobs, ncap * sizeof *nj);
        if (nj == NULL)
            return; /* found again at the next leadership */
        d->jobs = nj;
        d->cap = ncap;
    }
    struct dsn_job *j = &d->jobs[d->njobs++];
    snprintf(j->id, sizeof j->id, "%s", m->id);
    snprintf(j->dsn_id, sizeof j->dsn_id, "%s", dsn_id);
    j->rcpt = (uint32_t)rcpt;
}

/* The enhanced status of a recipient without one from a remote reply
 * (RFC 3463). */
static const char *derived_status(const struct rc_rcpt *r)
{
    const char *reason = r->reason ? r->reason : "";
    if (r->status == RC_ST_EXPIRED)
        return "4.4.7";
    if (strcmp(reason, "hostunknown") == 0)
        return "5.1.2";
    if (strcmp(reason, "notaccept") == 0)
        return "5.1.10";
    if (strcmp(reason, "syntaxerror") == 0)
        return "5.1.3";
    return r->status == RC_ST_DELIVERED ? "2.0.0" : "5.0.0";
}

struct dsn_proposal {
    rc_node *n;
    char dsn_id[DSN_ID_MAX];
};

static void dsn_proposed(void *data, int status)
{
    struct dsn_proposal *p = data;
    rc_node *n = p->n;
    if (n->dsn)
        rc_map_remove(n->dsn->proposed, p->dsn_id);
    if (status == RC_OK) {
        rc_delivery_count_dsn(n, true);
        rc_info("dsn", "queued id=%s", p->dsn_id);
    } else {
        rc_delivery_count_dsn(n, false);
        rc_warn("dsn", "proposal_failed id=%s error=\"%s\" action=retry_at_next_leadership", p->dsn_id,
                rc_strerror(status));
    }
    free(p);
}

static void dsn_build_and_propose(rc_node *n, const struct dsn_job *j)
{
    const struct rc_msg *m = rc_fsm_message(rc_raft_fsm(n->raft), j->id);
    if (m == NULL || j->rcpt >= m->n_rcpts || rc_fsm_message(rc_raft_fsm(n->raft), j->dsn_id))
        return;
    const struct rc_rcpt *r = &m->rcpts[j->rcpt];
    const struct rc_history *h = r->n_history ? &r->history[r->n_history - 1] : NULL;
    /* the last attempt with a reply says most (an expiry record repeats it) */
    for (size_t i = r->n_history; i-- > 0;)
        if (r->history[i].smtp_code) {
            h = &r->history[i];
            break;
        }
    char diag[1024] = "";
    int diag_smtp = 0;
    if (h && h->smtp_code) {
        snprintf(diag, sizeof diag, "%u %s%s%s", h->smtp_code, h->enhanced ? h->enhanced : "",
                 h->enhanced ? " " : "", h->text ? h->text : "");
        diag_smtp = 1;
    } else if (h && h->text) {
        snprintf(diag, sizeof diag, "%s", h->text);
    }
    char kind = j->dsn_id[strlen(j->id)];
    const char *status = h && h->enhanced && h->enhanced[0] && r->status != RC_ST_EXPIRED ? h->enhanced
                                                                                       : derived_status(r);
    if (kind == 'W' && status[0] != '4')
        status = "4.0.0";
    struct dsn_rcpt dr = {
        .final_recipient = r->address,
        .original_recipient = r->orcpt,
        .action = kind == 'S' ? "relayed" : kind == 'W' ? "delayed" : "failed",
        .will_retry_until_ms = kind == 'W' ? m->expire_at_ms : 0,
        .status = status,
        .remote_mta = h ? h->remote_mta : NULL,
        .diagnostic = diag[0] ? diag : NULL,
        .diagnostic_is_smtp = diag_smtp,
        .last_attempt_ms = h ? h->at_ms : 0,
    };
    char from[RC_CFG_STR + 16];
    snprintf(from, sizeof from, "MAILER-DAEMON@%s", n->cfg.hostname);
    uint8_t *orig = NULL;
    size_t orig_len = 0;
    if (rc_spool_get(n->spool, m->id, m->body_sha256, &orig, &orig_len) != 0) {
        orig = NULL; /* the DSN goes out without the original */
        orig_len = 0;
    }
    uint64_t now = rc_now_ms();
    struct dsn_input in = {
        .reporting_mta = n->cfg.hostname,
        .from_address = from,
        .to_address = m->mail_from,
        .envid = m->envid,
        .ret = m->ret,
        .queue_id = m->id,
        .arrival_ms = m->received_ms,
        .now_ms = now,
        .rcpts = &dr,
        .nrcpts = 1,
        .original = orig,
        .original_len = orig_len,
        .max_full_size = (size_t)n->cfg.delivery_dsn_max_full,
    };
    uint8_t *body = NULL;
    size_t body_len = 0;
    int rv = dsn_build(&in, &body, &body_len);
    free(orig);
    if (rv != DSN_OK) {
        rc_error("dsn", "build_failed id=%s error=%d", j->dsn_id, rv);
        return;
    }
    Ricochet__Envelope e;
    ricochet__envelope__init(&e);
    e.mail_from = "";
    e.body_type = "7BIT";
    Ricochet__RecipientSpec spec;
    ricochet__recipient_spec__init(&spec);
    spec.address = m->mail_from;
    spec.notify = "NEVER"; /* RFC 3461 §6.2: never a DSN about a DSN */
    Ricochet__RecipientSpec *pspec = &spec;
    struct dsn_proposal *p = calloc(1, sizeof *p);
    if (p == NULL) {
        free(body);
        return;
    }
    p->n = n;
    snprintf(p->dsn_id, sizeof p->dsn_id, "%s", j->dsn_id);
    rc_map_put(n->dsn->proposed, p->dsn_id, p);
    rv = rc_node_propose_accept(n, j->dsn_id, &e, &pspec, 1, body, body_len, dsn_proposed, p);
    free(body); /* the record was copied */
    if (rv != RC_OK)
        dsn_proposed(p, rv);
}

void rc_dsn_run(rc_node *n)
{
    struct rc_dsn *d = n->dsn;
    if (d == NULL || d->njobs == 0)
        return;
    size_t k = d->njobs < DSN_PER_RUN ? d->njobs : DSN_PER_RUN;
    for (size_t i = 0; i < k; i++)
        dsn_build_and_propose(n, &d->jobs[i]);
    memmove(d->jobs, d->jobs + k, (d->njobs - k) * sizeof *d->jobs);
    d->njobs -= k;
}

void rc_dsn_forget(rc_node *n)
{
    if (n->dsn)
        n->dsn->njobs = 0;
}

void rc_dsn_free(rc_node *n)
{
    if (n->dsn == NULL)
        return;
    /* proposals still pending own their struct dsn_proposal: raft has
     * closed before this runs, so every callback has fired */
    rc_map_free(n->dsn->proposed);
    free(n->dsn->jobs);
    free(n->dsn);
    n->dsn = NULL;
}
