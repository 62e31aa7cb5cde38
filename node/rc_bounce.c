/* Bounce and complaint intake (issue 6, docs/BOUNCES.md).
 *
 * Mail whose every recipient is a VERP address on bounce.domain or the
 * feedback address never becomes a message: it is analysed here
 * (smtp/bounce.h) and written to the log as what it means for the
 * recipient it names:
 *  - a bounce for b+TOKEN@bounce.domain: the token (smtp/verp.h) names the
 *    message and the recipient; a StatusUpdate `bounced` with the reason,
 *    hard/soft, codes and the remote diagnostic; the FSM applies the
 *    transition table and the suppression rules (hard bounce, N soft);
 *  - a complaint (ARF) at the feedback address or at a VERP address: the
 *    complained message is found by its VERP return path (the report's
 *    Original-Mail-From, else the returned headers); StatusUpdate
 *    `complained` (applied by the FSM to a delivered recipient), and a
 *    SuppressionChange: a complaint suppresses the address even when the
 *    recipient is not (yet) `delivered`, it is the recipient's own word;
 *  - a delivery report (Action: delivered) for a recipient not yet
 *    delivered: StatusUpdate `delivered`;
 *  - anything that changes no recipient is a BounceNote: `forged` (bad MAC:
 *    counted, recorded, nothing else), `unmapped` (no such message or
 *    recipient, no token), `unrecognized` (no reason found, not a report),
 *    `ignored` (auto-reply, delivery report, a final status).
 * The client hears 250 once the records committed (as for any accepted
 * mail), 451 when they did not within smtp.accept_timeout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <raft.h>

#include "node/base/rc_log.h"
#include "node/rc_bounce.h"
#include "node/rc_node_internal.h"
#include "proto/ricochet.pb-c.h"
#include "raft/rc_fsm.h"
#include "raft/rc_notes.h"
#include "smtp/bounce.h"
#include "smtp/smtp_server.h"
#include "smtp/verp.h"

#define RC_BOUNCE_TEXT_MAX 512 /* bytes of diagnostic kept in the history */

static bool rc_bounce_is_verp(const rc_node *n, const char *addr)
{
    const char *at = strrchr(addr, '@');
    return n->cfg.bounce_domain[0] && at && strcasecmp(at + 1, n->cfg.bounce_domain) == 0;
}

static bool rc_bounce_is_feedback(const rc_node *n, const char *addr)
{
    return n->cfg.feedback_address[0] && strcasecmp(addr, n->cfg.feedback_address) == 0;
}

int rc_bounce_envelope(const rc_node *n, const struct smtp_envelope *env)
{
    size_t ours = 0;
    for (size_t i = 0; i < env->n_rcpts; i++)
        if (rc_bounce_is_verp(n, env->rcpts[i].address) || rc_bounce_is_feedback(n, env->rcpts[i].address))
            ours++;
    if (ours == 0)
        return 0;
    return ours == env->n_rcpts ? 1 : -1;
}

/* ---- records ------------------------------------------------------------------ */

/* Owned copies of everything a record points to, freed after proposing. */
struct rc_bounce_rec {
    Ricochet__Record rec;
    Ricochet__StatusUpdate st;
    Ricochet__SuppressionChange sc;
    Ricochet__BounceNote note;
    char *s[8];
    size_t ns;
};

struct rc_bounce_work;

/* From the end of the analysis to the answer: the catch-up with the leader
 * (if needed), the records and their commits, under one timer. */
struct rc_bounce_job {
    rc_node *n;
    smtp_accept *tok;
    char id[64];
    uv_timer_t timer;        /* what is left of smtp.accept_timeout */
    unsigned pending, failed; /* a catch-up or proposals in flight */
    bool answered, timer_closed;
    struct rc_bounce_work *work; /* the analysis, kept while catching up */
    struct rc_bounce_rec *recs;
    size_t nrecs, caprecs;
};

static char *rc_bounce_keep(struct rc_bounce_rec *r, const char *s, size_t max)
{
    if (s == NULL || r->ns >= sizeof r->s / sizeof r->s[0])
        return NULL;
    size_t n = strlen(s);
    if (n > max)
        n = max;
    char *c = malloc(n + 1);
    if (c == NULL)
        return NULL;
    memcpy(c, s, n);
    c[n] = '\0';
    /* one line, blanks squeezed: the history and the API show it as text */
    char *w = c;
    for (char *p = c; *p; p++) {
        char ch = (*p == '\r' || *p == '\n' || *p == '\t') ? ' ' : *p;
        if (ch == ' ' && (w == c || w[-1] == ' '))
            continue;
        *w++ = ch;
    }
    *w = '\0';
    r->s[r->ns++] = c;
    return c;
}

static struct rc_bounce_rec *rc_bounce_new_rec(struct rc_bounce_job *j)
{
    if (j->nrecs == j->caprecs) {
        size_t cap = j->caprecs ? j->caprecs * 2 : 4;
        struct rc_bounce_rec *v = realloc(j->recs, cap * sizeof *v);
        if (v == NULL)
            return NULL;
        j->recs = v;
        j->caprecs = cap;
    }
    struct rc_bounce_rec *r = &j->recs[j->nrecs++];
    memset(r, 0, sizeof *r);
    ricochet__record__init(&r->rec);
    return r;
}

static void rc_bounce_note(struct rc_bounce_job *j, Ricochet__BounceNoteKind kind, const char *msg_id,
                           long rcpt, const char *address, const char *reason, const char *detail,
                           const char *sender)
{
    struct rc_bounce_rec *r = rc_bounce_new_rec(j);
    if (r == NULL)
        return;
    ricochet__bounce_note__init(&r->note);
    r->note.has_kind = true;
    r->note.kind = kind;
    r->note.message_id = rc_bounce_keep(r, msg_id, 64);
    if (rcpt >= 0) {
        r->note.has_recipient = true;
        r->note.recipient = (uint32_t)rcpt;
    }
    r->note.address = rc_bounce_keep(r, address, 320);
    r->note.reason = rc_bounce_keep(r, reason, 64);
    r->note.detail = rc_bounce_keep(r, detail, RC_BOUNCE_TEXT_MAX);
    r->note.sender = rc_bounce_keep(r, sender, 320);
    r->note.has_at_ms = r->note.has_node = true;
    r->note.at_ms = rc_now_ms();
    r->note.node = j->n->cfg.node_id;
    r->rec.kind_case = RICOCHET__RECORD__KIND_BOUNCE_NOTE;
    r->rec.bounce_note = &r->note;
    rc_info("bounce", "note kind=%s id=%s rcpt=%ld address=%s reason=%s detail=\"%s\"",
            rc_note_kind_name((int)kind), msg_id ? msg_id : "-", rcpt, address ? address : "-",
            reason ? reason : "-", detail ? detail : "");
}

static void rc_bounce_status(struct rc_bounce_job *j, const struct rc_msg *m, uint32_t rcpt, int status,
                             const struct bounce_rcpt *x, const char *text)
{
    struct rc_bounce_rec *r = rc_bounce_new_rec(j);
    if (r == NULL)
        return;
    Ricochet__StatusUpdate *u = &r->st;
    ricochet__status_update__init(u);
    u->id = rc_bounce_keep(r, m->id, 64);
    u->has_recipient = u->has_status = u->has_at_ms = u->has_node = true;
    u->recipient = rcpt;
    u->status = (Ricochet__Status)status;
    u->at_ms = rc_now_ms();
    u->node = j->n->cfg.node_id;
    u->reason = rc_bounce_keep(r, bounce_reason_name(x->reason), 64);
    if (x->hard >= 0) {
        u->has_hard = true;
        u->hard = x->hard == 1;
    }
    if (x->smtp_code > 0) {
        u->has_smtp_code = true;
        u->smtp_code = (uint32_t)x->smtp_code;
    }
    u->enhanced = x->status[0] ? rc_bounce_keep(r, x->status, 16) : NULL;
    u->text = rc_bounce_keep(r, text, RC_BOUNCE_TEXT_MAX);
    u->remote_mta = x->remote_mta[0] ? rc_bounce_keep(r, x->remote_mta, 255) : NULL;
    r->rec.kind_case = RICOCHET__RECORD__KIND_STATUS;
    r->rec.status = u;
    rc_info("bounce", "status id=%s rcpt=%u address=%s status=%s reason=%s hard=%d code=%d enhanced=%s", m->id, rcpt,
            m->rcpts[rcpt].address, rc_status_name(status), bounce_reason_name(x->reason), x->hard, x->smtp_code,
            x->status[0] ? x->status : "-");
}

static void rc_bounce_suppress(struct rc_bounce_job *j, const char *address, const char *reason)
{
    struct rc_bounce_rec *r = rc_bounce_new_rec(j);
    if (r == NULL)
        return;
    ricochet__suppression_change__init(&r->sc);
    r->sc.address = rc_bounce_keep(r, address, 320);
    r->sc.has_add = r->sc.has_at_ms = true;
    r->sc.add = true;
    r->sc.at_ms = rc_now_ms();
    r->sc.reason = rc_bounce_keep(r, reason, 128);
    r->sc.source = rc_bounce_keep(r, "complained", 32);
    r->rec.kind_case = RICOCHET__RECORD__KIND_SUPPRESSION;
    r->rec.suppression = &r->sc;
}

/* ---- analysis --------------------------------------------------------------------- */

/* The report entry that names the address (Final- or Original-Recipient). */
static const struct bounce_rcpt *rc_bounce_entry_exact(const bounce_report *rep, const char *address)
{
    size_t n = bounce_report_rcpt_count(rep);
    for (size_t i = 0; i < n; i++) {
        const struct bounce_rcpt *x = bounce_report_rcpt(rep, i);
        if (strcasecmp(x->recipient, address) == 0 || strcasecmp(x->original, address) == 0)
            return x;
    }
    return NULL;
}

/* For a recipient's own return path: the entry that names it, else the
 * only entry, else the first one with a class. A message-level return path
 * (VERP_RCPT_MESSAGE) uses rc_bounce_entry_exact only: guessing could
 * bounce the wrong recipient. */
static const struct bounce_rcpt *rc_bounce_entry(const bounce_report *rep, const char *address)
{
    const struct bounce_rcpt *x = rc_bounce_entry_exact(rep, address);
    if (x != NULL)
        return x;
    size_t n = bounce_report_rcpt_count(rep);
    if (n == 1)
        return bounce_report_rcpt(rep, 0);
    for (size_t i = 0; i < n; i++) {
        x = bounce_report_rcpt(rep, i);
        if (x->hard >= 0)
            return x;
    }
    return NULL;
}

/* A VERP address in text ("b+TOKEN@bounce.domain", possibly in <> or among
 * other words); copied to out. */
static bool rc_bounce_find_verp(const rc_node *n, const char *text, char *out, size_t outlen)
{
    if (text == NULL)
        return false;
    for (const char *p = strstr(text, VERP_PREFIX); p != NULL; p = strstr(p + 1, VERP_PREFIX)) {
        if (p > text && p[-1] != '<' && p[-1] != ' ' && p[-1] != ';' && p[-1] != ':' && p[-1] != '"')
            continue;
        size_t len = strcspn(p, " \t\r\n<>;,\"");
        if (len >= outlen)
            continue;
        memcpy(out, p, len);
        out[len] = '\0';
        if (rc_bounce_is_verp(n, out))
            return true;
    }
    return false;
}

/* The return path a complaint names: the report's Original-Mail-From, else
 * the returned message's Return-Path, else any returned header (Sender:, a
 * copy of MAIL FROM). */
static bool rc_bounce_complaint_verp(const rc_node *n, const bounce_report *rep, char *verp, size_t len)
{
    if (rc_bounce_find_verp(n, bounce_report_feedback_mail_from(rep), verp, len) ||
        rc_bounce_find_verp(n, bounce_report_orig_get(rep, "Return-Path"), verp, len))
        return true;
    for (size_t i = 0; i < bounce_report_orig_header_count(rep); i++)
        if (rc_bounce_find_verp(n, bounce_report_orig_header(rep, i)->value, verp, len))
            return true;
    verp[0] = '\0';
    return false;
}

/* One VERP address (the envelope recipient, or the return path a complaint
 * names): decoded and checked against the state. Returns the message, with
 * *rcpt; NULL after writing a note. */
static const struct rc_msg *rc_bounce_map(struct rc_bounce_job *j, const char *verp, const char *reason,
                                          const char *sender, uint32_t *rcpt)
{
    rc_node *n = j->n;
    struct verp_key key = {(const uint8_t *)n->cfg.bounce_secret, strlen(n->cfg.bounce_secret), 0};
    char id[VERP_ID_MAX + 1];
    size_t idlen = 0;
    int rv = verp_decode(&key, n->cfg.bounce_domain, verp, strlen(verp), id, sizeof id, &idlen, rcpt);
    if (rv == VERP_EBADMAC) {
        rc_bounce_note(j, RICOCHET__BOUNCE_NOTE_KIND__NOTE_FORGED, NULL, -1, verp, reason,
                       "VERP token with a bad MAC (forged, altered or another key)", sender);
        rc_warn("bounce", "forged address=%s sender=%s", verp, sender);
        return NULL;
    }
    if (rv != VERP_OK) {
        char d[96];
        snprintf(d, sizeof d, "VERP address not decodable: %s", verp_strerror(rv));
        rc_bounce_note(j, RICOCHET__BOUNCE_NOTE_KIND__NOTE_UNMAPPED, NULL, -1, verp, reason, d, sender);
        return NULL;
    }
    const struct rc_msg *m = rc_fsm_message(rc_raft_fsm(n->raft), id);
    if (m == NULL || (*rcpt >= m->n_rcpts && *rcpt != VERP_RCPT_MESSAGE)) {
        rc_bounce_note(j, RICOCHET__BOUNCE_NOTE_KIND__NOTE_UNMAPPED, id, (long)*rcpt, verp, reason,
                       m ? "no such recipient in the message" : "no such message (expired or never ours)", sender);
        return NULL;
    }
    return m;
}

static void rc_bounce_complaint(struct rc_bounce_job *j, const bounce_report *rep, const char *sender,
                                const char *verp_rcpt)
{
    char verp[512] = "";
    if (verp_rcpt != NULL)
        snprintf(verp, sizeof verp, "%s", verp_rcpt);
    else
        rc_bounce_complaint_verp(j->n, rep, verp, sizeof verp);
    const struct bounce_rcpt *x = bounce_report_rcpt_count(rep) ? bounce_report_rcpt(rep, 0) : NULL;
    if (!verp[0]) {
        rc_bounce_note(j, RICOCHET__BOUNCE_NOTE_KIND__NOTE_UNMAPPED, NULL, -1, x ? x->recipient : NULL, "feedback",
                       "complaint names no VERP return path of ours", sender);
        return;
    }
    uint32_t rcpt;
    const struct rc_msg *m = rc_bounce_map(j, verp, "feedback", sender, &rcpt);
    if (m == NULL)
        return;
    if (rcpt == VERP_RCPT_MESSAGE) {
        for (size_t i = 0; i < m->n_rcpts && rcpt == VERP_RCPT_MESSAGE; i++)
            if (rc_bounce_entry_exact(rep, m->rcpts[i].address))
                rcpt = (uint32_t)i;
        if (rcpt == VERP_RCPT_MESSAGE && m->n_rcpts == 1)
            rcpt = 0;
        if (rcpt == VERP_RCPT_MESSAGE) {
            rc_bounce_note(j, RICOCHET__BOUNCE_NOTE_KIND__NOTE_UNMAPPED, m->id, -1, x ? x->recipient : NULL, "feedback",
                           "message-level return path, and the complaint names none of its recipients", sender);
            return;
        }
    }
    const struct rc_rcpt *r = &m->rcpts[rcpt];
    char text[96];
    snprintf(text, sizeof text, "feedback-type: %s",
             bounce_report_feedback_type(rep)[0] ? bounce_report_feedback_type(rep) : "unknown");
    struct bounce_rcpt fx = {.recipient = r->address, .original = "", .action = "", .status = "", .diagnostic = "",
                             .remote_mta = "", .reason = BOUNCE_R_FEEDBACK, .hard = -1};
    /* This node's view may lag behind the leader's (a `delivered` on its
     * way): `complained` is proposed whenever it could still apply, and the
     * FSM decides; the address is suppressed in any case, because the
     * complaint is the recipient's own word. */
    if (r->status == RC_ST_QUEUED || r->status == RC_ST_DEFERRED || r->status == RC_ST_DELIVERED)
        rc_bounce_status(j, m, rcpt, RC_ST_COMPLAINED, &fx, text);
    char reason[128];
    snprintf(reason, sizeof reason, "complaint (%s)", text);
    rc_bounce_suppress(j, r->address, reason);
}

/* One recipient named by a bounce (x: its entry in the report, or NULL). */
static void rc_bounce_rcpt(struct rc_bounce_job *j, enum bounce_kind kind, const struct rc_msg *m, uint32_t rcpt,
                           const struct bounce_rcpt *x, const char *sender)
{
    const struct rc_rcpt *r = &m->rcpts[rcpt];
    if (kind == BOUNCE_KIND_NONE || x == NULL) {
        rc_bounce_note(j, RICOCHET__BOUNCE_NOTE_KIND__NOTE_UNRECOGNIZED, m->id, (long)rcpt, r->address, NULL,
                       "not a bounce report: no recipient or status found", sender);
        return;
    }
    if (x->reason == BOUNCE_R_DELIVERED && strcmp(x->action, "delivered") == 0 &&
        rc_status_transition_allowed(r->status, RC_ST_DELIVERED)) {
        /* a delivery report (DSN NOTIFY=SUCCESS) from the final MTA */
        rc_bounce_status(j, m, rcpt, RC_ST_DELIVERED, x, x->diagnostic);
        return;
    }
    if (x->reason == BOUNCE_R_VACATION || x->reason == BOUNCE_R_DELIVERED) {
        rc_bounce_note(j, RICOCHET__BOUNCE_NOTE_KIND__NOTE_IGNORED, m->id, (long)rcpt, r->address,
                       bounce_reason_name(x->reason),
                       x->reason == BOUNCE_R_VACATION ? "automatic reply" : "delivery report", sender);
        return;
    }
    if (x->reason == BOUNCE_R_UNDEFINED) {
        rc_bounce_note(j, RICOCHET__BOUNCE_NOTE_KIND__NOTE_UNRECOGNIZED, m->id, (long)rcpt, r->address, "undefined",
                       x->diagnostic[0] ? x->diagnostic : "bounce without any reason", sender);
        return;
    }
    if (!rc_status_transition_allowed(r->status, RC_ST_BOUNCED)) {
        char d[128];
        snprintf(d, sizeof d, "bounce for a recipient in final status %s", rc_status_name(r->status));
        rc_bounce_note(j, RICOCHET__BOUNCE_NOTE_KIND__NOTE_IGNORED, m->id, (long)rcpt, r->address,
                       bounce_reason_name(x->reason), d, sender);
        return;
    }
    rc_bounce_status(j, m, rcpt, RC_ST_BOUNCED, x, x->diagnostic);
}

static void rc_bounce_verp(struct rc_bounce_job *j, const bounce_report *rep, const char *verp, const char *sender)
{
    enum bounce_kind kind = bounce_report_kind(rep);
    if (kind == BOUNCE_KIND_ARF) {
        rc_bounce_complaint(j, rep, sender, verp);
        return;
    }
    uint32_t rcpt;
    const struct rc_msg *m = rc_bounce_map(j, verp, NULL, sender, &rcpt);
    if (m == NULL)
        return;
    if (rcpt != VERP_RCPT_MESSAGE) {
        rc_bounce_rcpt(j, kind, m, rcpt, rc_bounce_entry(rep, m->rcpts[rcpt].address), sender);
        return;
    }
    /* A message-level return path (several recipients in one transaction):
     * each recipient the report names. */
    bool any = false;
    for (size_t i = 0; i < m->n_rcpts; i++) {
        const struct bounce_rcpt *x = rc_bounce_entry_exact(rep, m->rcpts[i].address);
        if (x != NULL) {
            any = true;
            rc_bounce_rcpt(j, kind, m, (uint32_t)i, x, sender);
        }
    }
    if (!any)
        rc_bounce_note(j, kind == BOUNCE_KIND_NONE ? RICOCHET__BOUNCE_NOTE_KIND__NOTE_UNRECOGNIZED
                                                   : RICOCHET__BOUNCE_NOTE_KIND__NOTE_UNMAPPED,
                       m->id, -1, NULL, NULL,
                       "message-level return path, and the report names none of the message's recipients", sender);
}

/* ---- proposing ---------------------------------------------------------------- */

static void rc_bounce_work_free(struct rc_bounce_work *w);

static void rc_bounce_job_free(struct rc_bounce_job *j)
{
    if (j->work != NULL)
        rc_bounce_work_free(j->work);
    for (size_t i = 0; i < j->nrecs; i++)
        for (size_t k = 0; k < j->recs[i].ns; k++)
            free(j->recs[i].s[k]);
    free(j->recs);
    free(j);
}

static void rc_bounce_maybe_free(struct rc_bounce_job *j)
{
    if (j->pending == 0 && j->timer_closed)
        rc_bounce_job_free(j);
}

static void rc_bounce_timer_closed(uv_handle_t *h)
{
    struct rc_bounce_job *j = h->data;
    j->timer_closed = true;
    rc_bounce_maybe_free(j);
}

static void rc_bounce_answer(struct rc_bounce_job *j, const char *line)
{
    if (j->answered)
        return;
    j->answered = true;
    smtp_accept_done(j->tok, line);
    uv_timer_stop(&j->timer);
    uv_close((uv_handle_t *)&j->timer, rc_bounce_timer_closed);
}

static void rc_bounce_timeout(uv_timer_t *t)
{
    struct rc_bounce_job *j = t->data;
    rc_warn("bounce", "accept_timeout id=%s action=451", j->id);
    rc_bounce_answer(j, "451 4.3.0 Report not confirmed by the cluster in time, try again later");
}

static void rc_bounce_committed(void *data, int status)
{
    struct rc_bounce_job *j = data;
    if (status != RC_OK) {
        j->failed++;
        rc_warn("bounce", "record_failed id=%s error=\"%s\"", j->id, rc_strerror(status));
    }
    if (--j->pending == 0) {
        char line[160];
        if (j->failed)
            snprintf(line, sizeof line, "451 4.3.0 Report not stored, try again later");
        else
            snprintf(line, sizeof line, "250 2.0.0 Ok: report recorded as %s", j->id);
        rc_bounce_answer(j, line);
    }
    rc_bounce_maybe_free(j);
}

/* What the analysis on the thread pool needs, copied: the SMTP session may
 * go away (client disconnect) while the work runs. */
struct rc_bounce_work {
    uv_work_t req;
    rc_node *n;
    smtp_accept *tok;
    char id[64];
    char *sender;
    char **rcpts;
    size_t n_rcpts;
    char *body;
    size_t len;
    struct bounce_limits lim;
    bounce_report *rep;
    int rv;
    char err[160];
    uint64_t arrived_ms; /* when the report was accepted for analysis */
};

static void rc_bounce_work_free(struct rc_bounce_work *w)
{
    for (size_t i = 0; i < w->n_rcpts; i++)
        free(w->rcpts[i]);
    free(w->rcpts);
    free(w->sender);
    free(w->body);
    bounce_report_free(w->rep);
    free(w);
}

static struct rc_bounce_work *rc_bounce_work_new(rc_node *n, smtp_accept *tok, const char *id,
                                                 const struct smtp_envelope *env, const uint8_t *body, size_t len)
{
    struct rc_bounce_work *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->n = n;
    w->tok = tok;
    w->arrived_ms = rc_now_ms();
    snprintf(w->id, sizeof w->id, "%s", id);
    w->lim.max_size = (size_t)n->cfg.bounce_max_size;
    w->sender = strdup(env->mail_from ? env->mail_from : "");
    w->rcpts = calloc(env->n_rcpts ? env->n_rcpts : 1, sizeof *w->rcpts);
    w->body = malloc(len ? len : 1);
    if (w->sender == NULL || w->rcpts == NULL || w->body == NULL) {
        rc_bounce_work_free(w);
        return NULL;
    }
    memcpy(w->body, body, len);
    w->len = len;
    for (; w->n_rcpts < env->n_rcpts; w->n_rcpts++) {
        w->rcpts[w->n_rcpts] = strdup(env->rcpts[w->n_rcpts].address);
        if (w->rcpts[w->n_rcpts] == NULL) {
            rc_bounce_work_free(w);
            return NULL;
        }
    }
    return w;
}

/* On a libuv worker thread: the analysis touches nothing of the node. */
static void rc_bounce_analyse_work(uv_work_t *req)
{
    struct rc_bounce_work *w = req->data;
    w->rv = bounce_analyse(w->body, w->len, &w->lim, &w->rep, w->err, sizeof w->err);
}

static void rc_bounce_record(struct rc_bounce_job *j, struct rc_bounce_work *w);

/* ---- waiting for the log ------------------------------------------------------ */

/* A message that the report's VERP address names (with a valid MAC) and that
 * this node's state does not hold. */
static bool rc_bounce_names_unknown(rc_node *n, const char *verp)
{
    struct verp_key key = {(const uint8_t *)n->cfg.bounce_secret, strlen(n->cfg.bounce_secret), 0};
    char id[VERP_ID_MAX + 1];
    size_t idlen = 0;
    uint32_t rcpt;
    if (verp_decode(&key, n->cfg.bounce_domain, verp, strlen(verp), id, sizeof id, &idlen, &rcpt) != VERP_OK)
        return false;
    return rc_fsm_message(rc_raft_fsm(n->raft), id) == NULL;
}

static bool rc_bounce_all_known(struct rc_bounce_work *w)
{
    if (w->rv != BOUNCE_OK)
        return true;
    bool arf = bounce_report_kind(w->rep) == BOUNCE_KIND_ARF;
    for (size_t i = 0; i < w->n_rcpts; i++) {
        char verp[512];
        if (rc_bounce_is_feedback(w->n, w->rcpts[i])) {
            if (arf && rc_bounce_complaint_verp(w->n, w->rep, verp, sizeof verp) &&
                rc_bounce_names_unknown(w->n, verp))
                return false;
        } else if (rc_bounce_names_unknown(w->n, w->rcpts[i])) {
            return false;
        }
    }
    return true;
}

static bool rc_bounce_need_catch_up(struct rc_bounce_work *w)
{
    struct rc_raft_status st;
    rc_raft_get_status(w->n->raft, &st);
    return st.state != RAFT_LEADER && !rc_bounce_all_known(w);
}

/* The bounce domain's MX is every node, and a follower's copy of the log
 * may trail the leader's: a report can name a message that is committed
 * but not applied here yet. Such a node first catches up with the leader
 * (rc_raft_catch_up: a Noop through the leader, awaited in the local
 * state); the message was committed before it was ever delivered, so it is
 * then known if it exists. Without a leader the answer is 451, and the
 * reporting MTA tries again. */
static void rc_bounce_caught_up(void *data, int status)
{
    struct rc_bounce_job *j = data;
    struct rc_bounce_work *w = j->work;
    j->work = NULL;
    j->pending--;
    if (status != RC_OK)
        rc_warn("bounce", "catch_up_failed id=%s error=\"%s\"", j->id, rc_strerror(status));
    if (j->answered) {
        /* timed out meanwhile: the client has its 451 */
    } else if (status == RC_OK && !j->n->stopping) {
        rc_bounce_record(j, w);
    } else {
        rc_bounce_answer(j, "451 4.3.0 Report not mapped, cluster not reachable; try again later");
    }
    rc_bounce_work_free(w);
    rc_bounce_maybe_free(j);
}

static void rc_bounce_analysed(uv_work_t *req, int status)
{
    struct rc_bounce_work *w = req->data;
    rc_node *n = w->n;
    struct rc_bounce_job *j = NULL;
    if (status != 0 || n->stopping) {
        smtp_accept_done(w->tok, "451 4.3.0 Node shutting down, try again later");
    } else if ((j = calloc(1, sizeof *j)) == NULL) {
        smtp_accept_done(w->tok, "451 4.3.0 Insufficient system resources");
    } else {
        j->n = n;
        j->tok = w->tok;
        snprintf(j->id, sizeof j->id, "%s", w->id);
        uv_timer_init(n->loop, &j->timer);
        j->timer.data = j;
        /* the client's budget counts from the report's arrival */
        uint64_t spent = rc_now_ms() - w->arrived_ms;
        uv_timer_start(&j->timer, rc_bounce_timeout,
                       spent < n->cfg.accept_timeout_ms ? n->cfg.accept_timeout_ms - spent : 1, 0);
        if (rc_bounce_need_catch_up(w)) {
            rc_info("bounce", "catch_up id=%s reason=\"names a message not applied here yet\"", j->id);
            j->work = w;
            j->pending = 1;
            int rv = rc_raft_catch_up(n->raft, rc_bounce_caught_up, j);
            if (rv == RC_OK)
                return;
            rc_bounce_caught_up(j, rv);
            return;
        }
        rc_bounce_record(j, w);
        rc_bounce_maybe_free(j);
    }
    rc_bounce_work_free(w);
}

/* A report can be large (bounce.max_size) and its MIME tree deep: it is
 * analysed on the libuv thread pool, never on the event loop that serves
 * SMTP, DNS and raft; what it means is written to the log back on the loop. */
void rc_bounce_intake(rc_node *n, smtp_accept *tok, const char *id, const struct smtp_envelope *env,
                      const uint8_t *body, size_t len)
{
    struct rc_bounce_work *w = rc_bounce_work_new(n, tok, id, env, body, len);
    if (w == NULL) {
        smtp_accept_done(tok, "451 4.3.0 Insufficient system resources");
        return;
    }
    w->req.data = w;
    if (uv_queue_work(n->loop, &w->req, rc_bounce_analyse_work, rc_bounce_analysed) != 0) {
        rc_bounce_analyse_work(&w->req);
        rc_bounce_analysed(&w->req, 0);
    }
}

/* Maps the analysis to records and proposes them; the answer follows
 * their commits (rc_bounce_committed) or the timer. */
static void rc_bounce_record(struct rc_bounce_job *j, struct rc_bounce_work *w)
{
    rc_node *n = w->n;
    const char *sender = w->sender;
    const bounce_report *rep = w->rep;
    int rv = w->rv;
    const char *err = w->err;
    for (size_t i = 0; i < w->n_rcpts; i++) {
        const char *to = w->rcpts[i];
        if (rv != BOUNCE_OK) {
            char d[200];
            snprintf(d, sizeof d, "not analysed: %s", err[0] ? err : bounce_strerror(rv));
            rc_bounce_note(j, RICOCHET__BOUNCE_NOTE_KIND__NOTE_UNRECOGNIZED, NULL, -1, to, NULL, d, sender);
        } else if (rc_bounce_is_feedback(n, to)) {
            if (bounce_report_kind(rep) == BOUNCE_KIND_ARF)
                rc_bounce_complaint(j, rep, sender, NULL);
            else
                rc_bounce_note(j, RICOCHET__BOUNCE_NOTE_KIND__NOTE_UNRECOGNIZED, NULL, -1, to,
                               bounce_kind_name(bounce_report_kind(rep)),
                               "mail to the feedback address that is no complaint", sender);
        } else {
            rc_bounce_verp(j, rep, to, sender);
        }
    }

    if (j->nrecs == 0) { /* out of memory for every record */
        rc_bounce_answer(j, "451 4.3.0 Insufficient system resources");
        return;
    }
    for (size_t i = 0; i < j->nrecs; i++) { /* the array moved while it grew */
        struct rc_bounce_rec *r = &j->recs[i];
        if (r->rec.kind_case == RICOCHET__RECORD__KIND_STATUS)
            r->rec.status = &r->st;
        else if (r->rec.kind_case == RICOCHET__RECORD__KIND_SUPPRESSION)
            r->rec.suppression = &r->sc;
        else
            r->rec.bounce_note = &r->note;
    }
    j->pending = (unsigned)j->nrecs + 1; /* +1 held until every proposal is made */
    for (size_t i = 0; i < j->nrecs; i++) {
        int prv = rc_raft_propose(n->raft, &j->recs[i].rec, rc_bounce_committed, j);
        if (prv != RC_OK)
            rc_bounce_committed(j, prv);
    }
    rc_bounce_committed(j, RC_OK);
}
