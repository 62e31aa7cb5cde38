/* The replicated message-state store. See rc_fsm.h for the rules. */
#include "raft/rc_fsm.h"
#include "raft/rc_notes.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <raft.h>
#include <stdlib.h>
#include <string.h>

#include "node/base/rc_log.h"
#include "proto/ricochet.pb-c.h"
#include "raft/rc_entry.h"
#include "raft/rc_map.h"

#define SCHEMA_VERSION 1u

struct rc_fsm {
    struct raft_fsm raft; /* first: libraft hands us &raft */
    struct rc_fsm_config cfg;
    struct rc_fsm_hooks hooks;
    void *data;
    rc_map *messages;     /* id -> struct rc_msg */
    rc_map *suppressions; /* lower-cased address -> struct rc_suppression */
    struct rc_view view;
    rc_map *dedup;        /* hex request id -> (void *)1 */
    char **dedup_ring;    /* insertion order, for eviction */
    size_t dedup_head, dedup_len;
    uint64_t applied, skipped, unknown;
    uint64_t forgotten; /* messages removed by retention since start (not replicated) */
    uint8_t digest[32];
    rc_notes *notes;      /* bounce notes (rc_notes.h) */
    struct snap_plan *plan; /* the snapshot being assembled off the loop, or NULL */
};

/* A message's MessageState, packed. Snapshots are assembled from these
 * (docs/ARCHITECTURE.md, Snapshots): a message is encoded again only after
 * it changed, and the bytes are read by libraft's worker thread while the
 * loop goes on applying. The count is touched on the loop only. */
struct rc_msg_blob {
    unsigned refs;
    size_t len;
    uint8_t data[];
};

static void blob_unref(struct rc_msg_blob *b)
{
    if (b != NULL && --b->refs == 0)
        free(b);
}

/* The message changed: its cached encoding is stale. */
static void msg_touch(struct rc_msg *m)
{
    blob_unref(m->snap);
    m->snap = NULL;
}

/* ------------------------------------------------------------- statuses */

static const struct {
    int status;
    const char *name;
    bool terminal;
} status_table[] = {
    {RC_ST_QUEUED, "queued", false},
    {RC_ST_DEFERRED, "deferred", false},
    {RC_ST_DELIVERED, "delivered", true},
    {RC_ST_BOUNCED, "bounced", true},
    {RC_ST_FAILED, "failed", true},
    {RC_ST_UNDELIVERABLE, "undeliverable", true},
    {RC_ST_EXPIRED, "expired", true},
    {RC_ST_REJECTED, "rejected", true},
    {RC_ST_DISCARDED, "discarded", true},
    {RC_ST_COMPLAINED, "complained", true},
    {RC_ST_LOST_IN_SPACE, "lost_in_space", true},
    {RC_ST_OPENED, "opened", false},
    {RC_ST_CLICKED, "clicked", false},
};

const char *rc_status_name(int status)
{
    for (size_t i = 0; i < sizeof status_table / sizeof status_table[0]; i++)
        if (status_table[i].status == status)
            return status_table[i].name;
    return "unknown";
}

int rc_status_parse(const char *name)
{
    for (size_t i = 0; i < sizeof status_table / sizeof status_table[0]; i++)
        if (strcmp(status_table[i].name, name) == 0)
            return status_table[i].status;
    return -1;
}

bool rc_status_terminal(int status)
{
    for (size_t i = 0; i < sizeof status_table / sizeof status_table[0]; i++)
        if (status_table[i].status == status)
            return status_table[i].terminal;
    return false;
}

#define BIT(s) (1u << (s))
#define ANY_OUTCOME                                                            \
    (BIT(RC_ST_DEFERRED) | BIT(RC_ST_DELIVERED) | BIT(RC_ST_BOUNCED) |        \
     BIT(RC_ST_FAILED) | BIT(RC_ST_UNDELIVERABLE) | BIT(RC_ST_EXPIRED) |      \
     BIT(RC_ST_REJECTED) | BIT(RC_ST_DISCARDED) | BIT(RC_ST_LOST_IN_SPACE))

/* DESIGN §5: queued and deferred may move to any outcome; delivered may
 * still become bounced (asynchronous bounce) or complained, and records
 * engagement events; every other status is final. */
static const unsigned allowed_next[RC_ST_LOST_IN_SPACE + 1] = {
    [RC_ST_QUEUED] = ANY_OUTCOME,
    [RC_ST_DEFERRED] = ANY_OUTCOME,
    [RC_ST_DELIVERED] = BIT(RC_ST_BOUNCED) | BIT(RC_ST_COMPLAINED),
};

bool rc_status_transition_allowed(int from, int to)
{
    if (from < RC_ST_QUEUED || from > RC_ST_LOST_IN_SPACE)
        return false;
    if (to == RC_ST_OPENED || to == RC_ST_CLICKED)
        return from == RC_ST_DELIVERED;
    if (to < RC_ST_QUEUED || to > RC_ST_LOST_IN_SPACE || to == RC_ST_QUEUED)
        return false;
    return (allowed_next[from] & BIT(to)) != 0;
}

/* --------------------------------------------------------------- memory */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void history_free(struct rc_history *h)
{
    free(h->enhanced);
    free(h->text);
    free(h->reason);
    free(h->remote_mta);
}

static void msg_free(struct rc_msg *m)
{
    if (m == NULL)
        return;
    msg_touch(m);
    for (size_t i = 0; i < m->n_rcpts; i++) {
        struct rc_rcpt *r = &m->rcpts[i];
        for (size_t j = 0; j < r->n_history; j++)
            history_free(&r->history[j]);
        free(r->history);
        free(r->address);
        free(r->notify);
        free(r->orcpt);
        free(r->reason);
    }
    free(m->rcpts);
    free(m->id);
    free(m->mail_from);
    free(m->ret);
    free(m->envid);
    free(m->body_type);
    free(m->auth_user);
    free(m->client_addr);
    free(m->helo);
    free(m);
}

static void suppression_free(struct rc_suppression *s)
{
    if (s == NULL)
        return;
    free(s->address);
    free(s->reason);
    free(s->source);
    free(s);
}

static void free_all_values(rc_map *m, void (*fn)(void *))
{
    size_t pos = 0;
    const char *k;
    void *v;
    while (rc_map_next(m, &pos, &k, &v))
        fn(v);
}

static void msg_free_v(void *v) { msg_free(v); }
static void suppression_free_v(void *v) { suppression_free(v); }

static struct rc_history *history_push(struct rc_rcpt *r)
{
    if (r->n_history == r->cap_history) {
        size_t ncap = r->cap_history ? r->cap_history * 2 : 4;
        struct rc_history *h = realloc(r->history, ncap * sizeof *h);
        if (h == NULL)
            return NULL;
        r->history = h;
        r->cap_history = ncap;
    }
    struct rc_history *h = &r->history[r->n_history++];
    memset(h, 0, sizeof *h);
    return h;
}

static void lower_copy(char *dst, size_t n, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < n; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    dst[i] = '\0';
}

/* --------------------------------------------------------------- dedup */

static void hex_of(const uint8_t *p, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[p[i] >> 4];
        out[2 * i + 1] = hx[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The ring keeps ids as the lower-case hex of hex_of(); back to bytes for
 * snapshots (sscanf per byte cost more than the rest of a snapshot). */
static unsigned hex_val(char c)
{
    return c >= 'a' ? (unsigned)(c - 'a' + 10) : c >= 'A' ? (unsigned)(c - 'A' + 10) : (unsigned)(c - '0');
}

static bool dedup_seen(rc_fsm *f, const char *key)
{
    return rc_map_get(f->dedup, key) != NULL;
}

static void dedup_add(rc_fsm *f, const char *key)
{
    if (f->cfg.dedup_capacity == 0 || rc_map_get(f->dedup, key))
        return;
    if (f->dedup_len == f->cfg.dedup_capacity) {
        char *old = f->dedup_ring[f->dedup_head];
        rc_map_remove(f->dedup, old);
        free(old);
        f->dedup_ring[f->dedup_head] = NULL;
        f->dedup_head = (f->dedup_head + 1) % f->cfg.dedup_capacity;
        f->dedup_len--;
    }
    char *k = strdup(key);
    if (k == NULL || rc_map_put(f->dedup, k, (void *)1) != 0) {
        free(k);
        return;
    }
    f->dedup_ring[(f->dedup_head + f->dedup_len) % f->cfg.dedup_capacity] = k;
    f->dedup_len++;
}

static void dedup_clear(rc_fsm *f)
{
    for (size_t i = 0; i < f->dedup_len; i++) {
        size_t j = (f->dedup_head + i) % f->cfg.dedup_capacity;
        free(f->dedup_ring[j]);
        f->dedup_ring[j] = NULL;
    }
    f->dedup_head = f->dedup_len = 0;
    rc_map_free(f->dedup);
    f->dedup = rc_map_new();
}

/* ------------------------------------------------------------ apply */

static struct rc_suppression *suppression_get_or_new(rc_fsm *f, const char *address)
{
    char key[512];
    lower_copy(key, sizeof key, address);
    struct rc_suppression *s = rc_map_get(f->suppressions, key);
    if (s)
        return s;
    s = calloc(1, sizeof *s);
    if (s == NULL || (s->address = strdup(key)) == NULL || rc_map_put(f->suppressions, key, s) != 0) {
        suppression_free(s);
        return NULL;
    }
    return s;
}

static const struct rc_suppression *suppression_active(const rc_fsm *f, const char *address)
{
    char key[512];
    lower_copy(key, sizeof key, address);
    const struct rc_suppression *s = rc_map_get(f->suppressions, key);
    return s && s->active ? s : NULL;
}

static void suppress(rc_fsm *f, const char *address, const char *reason,
                     const char *source, uint64_t at_ms)
{
    struct rc_suppression *s = suppression_get_or_new(f, address);
    if (s == NULL)
        return;
    if (!s->active) {
        s->active = true;
        s->since_ms = at_ms;
    }
    free(s->reason);
    free(s->source);
    s->reason = dup_or_null(reason);
    s->source = dup_or_null(source);
}

static void apply_accept(rc_fsm *f, const Ricochet__Accept *a)
{
    if (a->id == NULL || a->id[0] == '\0' || rc_map_get(f->messages, a->id)) {
        f->skipped++;
        rc_warn("fsm", "accept_skipped id=%s reason=%s", a->id ? a->id : "-",
                a->id && a->id[0] ? "duplicate" : "no_id");
        return;
    }
    struct rc_msg *m = calloc(1, sizeof *m);
    if (m == NULL)
        goto err;
    const Ricochet__Envelope *e = a->envelope;
    m->id = strdup(a->id);
    if (e) {
        m->mail_from = dup_or_null(e->mail_from);
        m->ret = dup_or_null(e->ret);
        m->envid = dup_or_null(e->envid);
        m->body_type = dup_or_null(e->body_type);
        m->auth_user = dup_or_null(e->auth_user);
        m->client_addr = dup_or_null(e->client_addr);
        m->helo = dup_or_null(e->helo);
        m->smtputf8 = e->has_smtputf8 && e->smtputf8;
    }
    m->received_ms = a->received_ms;
    m->expire_at_ms = a->expire_at_ms;
    m->ttr_at_ms = a->ttr_at_ms;
    m->accepted_by = a->accepted_by;
    m->body_size = a->has_body ? a->body.len : 0;
    if (a->has_body_sha256 && a->body_sha256.len == 32)
        memcpy(m->body_sha256, a->body_sha256.data, 32);
    else if (a->has_body)
        EVP_Digest(a->body.data, a->body.len, m->body_sha256, NULL, EVP_sha256(), NULL);
    m->rcpts = calloc(a->n_recipients ? a->n_recipients : 1, sizeof *m->rcpts);
    if (m->id == NULL || m->rcpts == NULL)
        goto err_after_msg;
    m->n_rcpts = a->n_recipients;
    for (size_t i = 0; i < a->n_recipients; i++) {
        const Ricochet__RecipientSpec *spec = a->recipients[i];
        struct rc_rcpt *r = &m->rcpts[i];
        r->address = strdup(spec->address ? spec->address : "");
        r->notify = dup_or_null(spec->notify);
        r->orcpt = dup_or_null(spec->orcpt);
        struct rc_history *h = history_push(r);
        if (r->address == NULL || h == NULL)
            goto err_after_msg;
        h->at_ms = a->received_ms;
        h->node = a->accepted_by;
        /* Suppression is decided here, at apply, so that every node decides
         * alike: a suppressed recipient ends rejected and is never tried. */
        const struct rc_suppression *s = suppression_active(f, r->address);
        if (s) {
            r->status = h->status = RC_ST_REJECTED;
            h->reason = strdup("suppressed");
            h->text = dup_or_null(s->reason);
        } else {
            r->status = h->status = RC_ST_QUEUED;
        }
    }
    if (rc_map_put(f->messages, m->id, m) != 0)
        goto err_after_msg;
    if (f->hooks.on_accept)
        f->hooks.on_accept(f->data, m, a->has_body ? a->body.data : NULL,
                           a->has_body ? a->body.len : 0);
    for (size_t i = 0; i < m->n_rcpts; i++)
        if (m->rcpts[i].status == RC_ST_REJECTED && f->hooks.on_status)
            f->hooks.on_status(f->data, m, i, RC_ST_QUEUED);
    return;
err_after_msg:
    msg_free(m);
err:
    /* Out of memory while applying: the node cannot stay consistent. */
    rc_error("fsm", "accept_failed id=%s reason=out_of_memory", a->id);
    abort();
}

static void apply_status(rc_fsm *f, const Ricochet__StatusUpdate *u)
{
    struct rc_msg *m = u->id ? rc_map_get(f->messages, u->id) : NULL;
    if (m == NULL || u->recipient >= m->n_rcpts) {
        f->skipped++;
        rc_warn("fsm", "status_skipped id=%s reason=unknown_message_or_recipient", u->id ? u->id : "-");
        return;
    }
    struct rc_rcpt *r = &m->rcpts[u->recipient];
    int to = (int)u->status, from = r->status;
    if (!rc_status_transition_allowed(from, to)) {
        f->skipped++;
        rc_info("fsm", "status_ignored id=%s rcpt=%u from=%s to=%s", m->id, u->recipient,
                rc_status_name(from), rc_status_name(to));
        return;
    }
    msg_touch(m);
    struct rc_history *h = history_push(r);
    if (h == NULL)
        abort();
    h->status = to;
    h->at_ms = u->at_ms;
    h->smtp_code = u->smtp_code;
    h->internal_code = u->internal_code;
    h->hard = u->has_hard && u->hard;
    h->node = u->node;
    h->enhanced = dup_or_null(u->enhanced);
    h->text = dup_or_null(u->text);
    h->reason = dup_or_null(u->reason);
    h->remote_mta = dup_or_null(u->remote_mta);
    if (to == RC_ST_OPENED || to == RC_ST_CLICKED) {
        /* Engagement proves the mail reached the inbox: soft bounces are
         * counted consecutively until then. A plain "delivered" does not
         * reset the count, because asynchronous bounces follow deliveries. */
        char key[512];
        lower_copy(key, sizeof key, r->address);
        struct rc_suppression *s = rc_map_get(f->suppressions, key);
        if (s && !s->active)
            suppression_free(rc_map_remove(f->suppressions, key));
        goto notify;
    }

    if (u->smtp_code || u->internal_code)
        r->attempts++;
    r->attempt_node = 0; /* the attempt (if any) has its outcome */
    r->attempt_at_ms = 0;
    r->status = to;
    r->next_attempt_ms = u->next_attempt_ms;
    free(r->reason);
    r->reason = dup_or_null(u->reason);
    r->hard = h->hard;

    /* Suppression rules (docs/STATUS.md): hard bounces, permanent failures
     * marked hard and complaints suppress at once; soft bounces count up to
     * the limit (an engagement event resets the count, see above). */
    if (to == RC_ST_COMPLAINED || ((to == RC_ST_BOUNCED || to == RC_ST_FAILED) && h->hard)) {
        suppress(f, r->address, u->reason ? u->reason : rc_status_name(to), rc_status_name(to), u->at_ms);
    } else if (to == RC_ST_BOUNCED) {
        struct rc_suppression *s = suppression_get_or_new(f, r->address);
        if (s && ++s->soft_bounces >= f->cfg.soft_bounce_limit)
            suppress(f, r->address, "soft_bounce_limit", "bounced", u->at_ms);
    }
notify:
    if (f->hooks.on_status)
        f->hooks.on_status(f->data, m, u->recipient, from);
}

/* Retention: a message leaves the state only when every recipient is final
 * (the leader checked too, but this is the decision every node makes). */
static void apply_forget(rc_fsm *f, const Ricochet__Forget *g)
{
    for (size_t i = 0; i < g->n_ids; i++) {
        struct rc_msg *m = g->ids[i] ? rc_map_get(f->messages, g->ids[i]) : NULL;
        if (m == NULL)
            continue;
        bool final = true;
        for (size_t k = 0; k < m->n_rcpts; k++)
            final &= rc_status_terminal(m->rcpts[k].status);
        if (!final) {
            rc_info("fsm", "forget_skipped id=%s reason=not_final", m->id);
            continue;
        }
        if (f->hooks.on_forget)
            f->hooks.on_forget(f->data, m);
        rc_map_remove(f->messages, m->id);
        msg_free(m);
        f->forgotten++;
    }
}

/* Marks recipients as being attempted (see AttemptStart in the schema).
 * A recipient that reached a final status keeps none. */
static void apply_attempt(rc_fsm *f, const Ricochet__AttemptStart *a)
{
    struct rc_msg *m = a->id ? rc_map_get(f->messages, a->id) : NULL;
    if (m == NULL) {
        f->skipped++;
        return;
    }
    for (size_t i = 0; i < a->n_recipients; i++) {
        if (a->recipients[i] >= m->n_rcpts)
            continue;
        struct rc_rcpt *r = &m->rcpts[a->recipients[i]];
        if (rc_status_terminal(r->status))
            continue;
        msg_touch(m);
        r->attempt_node = a->node ? a->node : 1;
        r->attempt_at_ms = a->at_ms;
    }
}

/* Webhook events acknowledged by the receiver: never moves back, never past
 * the history (a late ack of a forgotten message changes nothing). */
static void apply_webhook_ack(rc_fsm *f, const Ricochet__WebhookAck *a)
{
    for (size_t i = 0; i < a->n_items; i++) {
        const Ricochet__WebhookAckItem *it = a->items[i];
        struct rc_msg *m = it->id ? rc_map_get(f->messages, it->id) : NULL;
        if (m == NULL || it->recipient >= m->n_rcpts)
            continue;
        struct rc_rcpt *r = &m->rcpts[it->recipient];
        size_t upto = it->upto < r->n_history ? it->upto : r->n_history;
        if (upto > r->webhook_sent) {
            msg_touch(m);
            r->webhook_sent = upto;
        }
    }
}

static void apply_suppression(rc_fsm *f, const Ricochet__SuppressionChange *c)
{
    if (c->address == NULL || c->address[0] == '\0') {
        f->skipped++;
        return;
    }
    if (c->add) {
        suppress(f, c->address, c->reason, c->source ? c->source : "operator", c->at_ms);
        return;
    }
    char key[512];
    lower_copy(key, sizeof key, c->address);
    suppression_free(rc_map_remove(f->suppressions, key));
}

static struct rc_view_node *view_node(rc_fsm *f, uint64_t id)
{
    for (size_t i = 0; i < f->view.n_nodes; i++)
        if (f->view.nodes[i].id == id)
            return &f->view.nodes[i];
    if (f->view.n_nodes == sizeof f->view.nodes / sizeof f->view.nodes[0])
        return NULL;
    struct rc_view_node *n = &f->view.nodes[f->view.n_nodes++];
    *n = (struct rc_view_node){.id = id, .healthy = true, .drained = false};
    return n;
}

static void apply_view(rc_fsm *f, const Ricochet__ViewChange *v)
{
    bool changed = false;
    for (size_t i = 0; i < v->n_nodes; i++) {
        const Ricochet__NodeHealthChange *c = v->nodes[i];
        struct rc_view_node *n = view_node(f, c->node);
        if (n == NULL)
            continue;
        if (c->set_healthy && n->healthy != c->healthy) {
            n->healthy = c->healthy;
            changed = true;
        }
        if (c->set_drained && n->drained != c->drained) {
            n->drained = c->drained;
            changed = true;
        }
    }
    if (v->has_leader && v->leader != f->view.leader) {
        f->view.leader = v->leader;
        changed = true;
    }
    if (v->leader_site && strcmp(v->leader_site, f->view.leader_site) != 0) {
        snprintf(f->view.leader_site, sizeof f->view.leader_site, "%s", v->leader_site);
        changed = true;
    }
    if (!changed)
        return;
    f->view.serial++;
    if (f->hooks.on_view)
        f->hooks.on_view(f->data, &f->view);
}

static void apply_record(rc_fsm *f, const Ricochet__Record *rec)
{
    char key[2 * 64 + 1];
    bool has_key = rec->has_request_id && rec->request_id.len > 0 && rec->request_id.len <= 64;
    if (has_key) {
        hex_of(rec->request_id.data, rec->request_id.len, key);
        if (dedup_seen(f, key)) {
            f->skipped++;
            rc_info("fsm", "duplicate_request_skipped request=%s", key);
            return;
        }
    }
    switch (rec->kind_case) {
    case RICOCHET__RECORD__KIND_ACCEPT: apply_accept(f, rec->accept); break;
    case RICOCHET__RECORD__KIND_STATUS: apply_status(f, rec->status); break;
    case RICOCHET__RECORD__KIND_SUPPRESSION: apply_suppression(f, rec->suppression); break;
    case RICOCHET__RECORD__KIND_VIEW: apply_view(f, rec->view); break;
    case RICOCHET__RECORD__KIND_ATTEMPT: apply_attempt(f, rec->attempt); break;
    case RICOCHET__RECORD__KIND_FORGET: apply_forget(f, rec->forget); break;
    case RICOCHET__RECORD__KIND_WEBHOOK_ACK: apply_webhook_ack(f, rec->webhook_ack); break;
    case RICOCHET__RECORD__KIND_BOUNCE_NOTE:
        if (rec->bounce_note == NULL || rc_notes_add(f->notes, rec->bounce_note) != 0) {
            rc_error("fsm", "bounce_note_failed reason=%s", rec->bounce_note ? "out_of_memory" : "empty");
            abort(); /* as for every apply that cannot keep the state consistent */
        }
        break;
    case RICOCHET__RECORD__KIND_PROBE:
    case RICOCHET__RECORD__KIND_NOOP: break;
    default:
        /* Written by a newer node: skip, never fail (see the proto header). */
        f->unknown++;
        break;
    }
    if (has_key)
        dedup_add(f, key);
    f->applied++;
}

static void digest_update(rc_fsm *f, const uint8_t *p, size_t len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        abort();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, f->digest, sizeof f->digest);
    EVP_DigestUpdate(ctx, p, len);
    EVP_DigestFinal_ex(ctx, f->digest, NULL);
    EVP_MD_CTX_free(ctx);
}

void rc_fsm_apply_batch(rc_fsm *f, const uint8_t *payload, size_t len)
{
    digest_update(f, payload, len);
    Ricochet__Batch *b = ricochet__batch__unpack(NULL, len, payload);
    if (b == NULL) {
        f->skipped++;
        rc_error("fsm", "entry_undecodable len=%zu action=skipped", len);
        return;
    }
    if (b->schema > SCHEMA_VERSION)
        rc_warn("fsm", "entry_newer_schema schema=%u mine=%u", b->schema, SCHEMA_VERSION);
    for (size_t i = 0; i < b->n_records; i++)
        apply_record(f, b->records[i]);
    ricochet__batch__free_unpacked(b, NULL);
}

/* -------------------------------------------------------------- snapshot */

static void history_to_pb(const struct rc_history *h, Ricochet__HistoryEvent *e)
{
    ricochet__history_event__init(e);
    e->has_status = true;
    e->status = (Ricochet__Status)h->status;
    e->has_at_ms = true;
    e->at_ms = h->at_ms;
    e->has_smtp_code = h->smtp_code != 0;
    e->smtp_code = h->smtp_code;
    e->has_internal_code = h->internal_code != 0;
    e->internal_code = h->internal_code;
    e->has_hard = h->hard;
    e->hard = h->hard;
    e->has_node = h->node != 0;
    e->node = h->node;
    e->enhanced = h->enhanced;
    e->text = h->text;
    e->reason = h->reason;
    e->remote_mta = h->remote_mta;
}

/* Builds the Snapshot message with pointers into the live state; every
 * allocation made here is recorded in *arena so one call frees it. */
struct arena {
    void **ptrs;
    size_t n, cap;
};

static void *arena_alloc(struct arena *a, size_t size)
{
    if (a->n == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 256;
        void **p = realloc(a->ptrs, ncap * sizeof *p);
        if (p == NULL)
            return NULL;
        a->ptrs = p;
        a->cap = ncap;
    }
    void *p = calloc(1, size ? size : 1);
    if (p)
        a->ptrs[a->n++] = p;
    return p;
}

static void arena_free(struct arena *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->ptrs[i]);
    free(a->ptrs);
}

#define ARENA_NEW(a, type, count) ((type *)arena_alloc((a), sizeof(type) * (count)))

/* One message as a MessageState, allocated in a. */
static Ricochet__MessageState *msg_to_pb(struct arena *a, const struct rc_msg *m)
{
    Ricochet__MessageState *ms = ARENA_NEW(a, Ricochet__MessageState, 1);
    Ricochet__Envelope *env = ARENA_NEW(a, Ricochet__Envelope, 1);
    Ricochet__RecipientState **rs = ARENA_NEW(a, Ricochet__RecipientState *, m->n_rcpts);
    if (ms == NULL || env == NULL || rs == NULL)
        return NULL;
    ricochet__message_state__init(ms);
    ricochet__envelope__init(env);
    ms->id = m->id;
    env->mail_from = m->mail_from;
    env->ret = m->ret;
    env->envid = m->envid;
    env->body_type = m->body_type;
    env->auth_user = m->auth_user;
    env->client_addr = m->client_addr;
    env->helo = m->helo;
    env->has_smtputf8 = m->smtputf8;
    env->smtputf8 = m->smtputf8;
    ms->envelope = env;
    ms->has_body_sha256 = true;
    ms->body_sha256.data = (uint8_t *)m->body_sha256; /* only read by the packer */
    ms->body_sha256.len = 32;
    ms->has_body_size = ms->has_received_ms = ms->has_expire_at_ms = true;
    ms->has_ttr_at_ms = ms->has_accepted_by = true;
    ms->body_size = m->body_size;
    ms->received_ms = m->received_ms;
    ms->expire_at_ms = m->expire_at_ms;
    ms->ttr_at_ms = m->ttr_at_ms;
    ms->accepted_by = m->accepted_by;
    ms->recipients = rs;
    ms->n_recipients = m->n_rcpts;
    for (size_t i = 0; i < m->n_rcpts; i++) {
        const struct rc_rcpt *r = &m->rcpts[i];
        Ricochet__RecipientState *x = ARENA_NEW(a, Ricochet__RecipientState, 1);
        Ricochet__RecipientSpec *spec = ARENA_NEW(a, Ricochet__RecipientSpec, 1);
        Ricochet__HistoryEvent *ev = ARENA_NEW(a, Ricochet__HistoryEvent, r->n_history);
        Ricochet__HistoryEvent **evp = ARENA_NEW(a, Ricochet__HistoryEvent *, r->n_history);
        if (x == NULL || spec == NULL || ev == NULL || evp == NULL)
            return NULL;
        ricochet__recipient_state__init(x);
        ricochet__recipient_spec__init(spec);
        spec->address = r->address;
        spec->notify = r->notify;
        spec->orcpt = r->orcpt;
        x->spec = spec;
        x->has_status = x->has_attempts = x->has_next_attempt_ms = x->has_hard = true;
        x->status = (Ricochet__Status)r->status;
        x->attempts = r->attempts;
        x->next_attempt_ms = r->next_attempt_ms;
        x->hard = r->hard;
        x->reason = r->reason;
        if (r->attempt_node) {
            x->has_attempt_node = x->has_attempt_at_ms = true;
            x->attempt_node = r->attempt_node;
            x->attempt_at_ms = r->attempt_at_ms;
        }
        if (r->webhook_sent) {
            x->has_webhook_sent = true;
            x->webhook_sent = (uint32_t)r->webhook_sent;
        }
        for (size_t j = 0; j < r->n_history; j++) {
            history_to_pb(&r->history[j], &ev[j]);
            evp[j] = &ev[j];
        }
        x->history = evp;
        x->n_history = r->n_history;
        rs[i] = x;
    }
    return ms;
}

/* The message's packed MessageState: cached until the message changes. */
static struct rc_msg_blob *msg_blob(struct rc_msg *m)
{
    if (m->snap != NULL)
        return m->snap;
    struct arena a = {0};
    Ricochet__MessageState *ms = msg_to_pb(&a, m);
    struct rc_msg_blob *b = ms ? malloc(sizeof *b + ricochet__message_state__get_packed_size(ms)) : NULL;
    if (b != NULL) {
        b->refs = 1;
        b->len = ricochet__message_state__pack(ms, b->data);
        m->snap = b;
    }
    arena_free(&a);
    return b;
}

#ifndef NDEBUG
/* Debug builds (the sanitizer runs) check every cached encoding against a
 * fresh one: a change to a message that forgot msg_touch() would put stale
 * bytes into snapshots. */
static void msg_blob_check(struct rc_msg *m)
{
    struct rc_msg_blob *cached = m->snap;
    if (cached == NULL)
        return;
    m->snap = NULL;
    struct rc_msg_blob *fresh = msg_blob(m);
    if (fresh != NULL && (fresh->len != cached->len || memcmp(fresh->data, cached->data, cached->len) != 0)) {
        rc_error("fsm", "snapshot_cache_stale id=%s", m->id);
        abort();
    }
    blob_unref(fresh);
    m->snap = cached;
}
#endif

/* A snapshot's parts, taken on the loop: the fields before the messages
 * (1-3) and after them (5-10) packed now, the messages' cached encodings
 * referenced. snap_plan_assemble() makes the Snapshot of them, byte for
 * byte what packing it whole gives (protobuf-c writes fields in number
 * order, and a repeated message field is its elements one after the
 * other), without touching the state: on libraft's worker thread. */
struct snap_plan {
    uint8_t *head, *tail;
    size_t head_len, tail_len;
    struct rc_msg_blob **blobs;
    size_t n;
    uint64_t applied;
};

static void snap_plan_free(struct snap_plan *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++)
        blob_unref(p->blobs[i]);
    free(p->blobs);
    free(p->head);
    free(p->tail);
    free(p);
}

static uint8_t *pack_snapshot(const Ricochet__Snapshot *s, size_t *len)
{
    size_t size = ricochet__snapshot__get_packed_size(s);
    uint8_t *buf = malloc(size ? size : 1);
    if (buf != NULL)
        *len = ricochet__snapshot__pack(s, buf);
    return buf;
}

/* The fields after the messages: suppressions, view, request ids, counts
 * and bounce notes. */
static uint8_t *snap_tail(rc_fsm *f, size_t *len)
{
    struct arena a = {0};
    uint8_t *out = NULL;
    const char *k;
    void *v;
    size_t pos = 0;
    Ricochet__Snapshot s;
    ricochet__snapshot__init(&s);
    s.has_unknown_records = true;
    s.unknown_records = f->unknown;
    size_t ns = rc_map_count(f->suppressions);
    s.suppressions = ARENA_NEW(&a, Ricochet__Suppression *, ns);
    if (s.suppressions == NULL)
        goto out;
    while (rc_map_next(f->suppressions, &pos, &k, &v)) {
        struct rc_suppression *sp = v;
        Ricochet__Suppression *x = ARENA_NEW(&a, Ricochet__Suppression, 1);
        if (x == NULL)
            goto out;
        ricochet__suppression__init(x);
        x->address = sp->address;
        /* An inactive entry is a soft-bounce counter: no reason, no since. */
        x->reason = sp->active ? (sp->reason ? sp->reason : (char *)"") : NULL;
        x->source = sp->source;
        x->has_since_ms = sp->active;
        x->since_ms = sp->since_ms;
        x->has_soft_bounces = true;
        x->soft_bounces = sp->soft_bounces;
        s.suppressions[s.n_suppressions++] = x;
    }

    Ricochet__ClusterView view;
    ricochet__cluster_view__init(&view);
    view.has_serial = view.has_leader = true;
    view.serial = f->view.serial;
    view.leader = f->view.leader;
    view.leader_site = f->view.leader_site;
    Ricochet__NodeView nv[16], *nvp[16];
    for (size_t i = 0; i < f->view.n_nodes; i++) {
        ricochet__node_view__init(&nv[i]);
        nv[i].has_node = nv[i].has_healthy = nv[i].has_drained = true;
        nv[i].node = f->view.nodes[i].id;
        nv[i].healthy = f->view.nodes[i].healthy;
        nv[i].drained = f->view.nodes[i].drained;
        nvp[i] = &nv[i];
    }
    view.nodes = nvp;
    view.n_nodes = f->view.n_nodes;
    s.view = &view;

    s.recent_request_ids = ARENA_NEW(&a, ProtobufCBinaryData, f->dedup_len);
    uint8_t *raw = ARENA_NEW(&a, uint8_t, f->dedup_len * 64);
    if (s.recent_request_ids == NULL || raw == NULL)
        goto out;
    for (size_t i = 0; i < f->dedup_len; i++) {
        const char *hex = f->dedup_ring[(f->dedup_head + i) % f->cfg.dedup_capacity];
        size_t n = strlen(hex) / 2;
        for (size_t j = 0; j < n; j++)
            raw[i * 64 + j] = (uint8_t)(hex_val(hex[2 * j]) << 4 | hex_val(hex[2 * j + 1]));
        s.recent_request_ids[i].data = raw + i * 64;
        s.recent_request_ids[i].len = n;
    }
    s.n_recent_request_ids = f->dedup_len;

    uint64_t note_counts[RC_NOTE_KINDS];
    if (rc_notes_to_snapshot(f->notes, &s, note_counts) != 0)
        goto out;
    out = pack_snapshot(&s, len);
out:
    free(s.bounce_notes);
    arena_free(&a);
    return out;
}

static struct snap_plan *snap_plan_take(rc_fsm *f)
{
    struct snap_plan *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->applied = f->applied;
    Ricochet__Snapshot head;
    ricochet__snapshot__init(&head);
    head.has_schema = true;
    head.schema = SCHEMA_VERSION;
    head.has_applied_records = true;
    head.applied_records = f->applied;
    head.has_state_digest = true;
    head.state_digest.data = f->digest;
    head.state_digest.len = sizeof f->digest;
    p->head = pack_snapshot(&head, &p->head_len);
    p->tail = snap_tail(f, &p->tail_len);
    p->blobs = malloc((rc_map_count(f->messages) + 1) * sizeof *p->blobs);
    if (p->head == NULL || p->tail == NULL || p->blobs == NULL) {
        snap_plan_free(p);
        return NULL;
    }
    size_t pos = 0;
    const char *k;
    void *v;
    while (rc_map_next(f->messages, &pos, &k, &v)) {
#ifndef NDEBUG
        msg_blob_check(v);
#endif
        struct rc_msg_blob *b = msg_blob(v);
        if (b == NULL) {
            snap_plan_free(p);
            return NULL;
        }
        b->refs++;
        p->blobs[p->n++] = b;
    }
    return p;
}

static size_t varint_put(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    do {
        out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v != 0);
    return n;
}

/* Reads only the plan: safe off the loop while the state changes. */
static int snap_plan_assemble(const struct snap_plan *p, uint8_t **out, size_t *len)
{
    enum { MESSAGES_TAG = (4 << 3) | 2 }; /* Snapshot.messages, length-delimited */
    size_t size = p->head_len + p->tail_len;
    for (size_t i = 0; i < p->n; i++)
        size += 1 + 10 + p->blobs[i]->len;
    uint8_t *buf = malloc(size ? size : 1), *w = buf;
    if (buf == NULL)
        return -1;
    memcpy(w, p->head, p->head_len);
    w += p->head_len;
    for (size_t i = 0; i < p->n; i++) {
        *w++ = MESSAGES_TAG;
        w += varint_put(w, p->blobs[i]->len);
        memcpy(w, p->blobs[i]->data, p->blobs[i]->len);
        w += p->blobs[i]->len;
    }
    memcpy(w, p->tail, p->tail_len);
    w += p->tail_len;
    *out = buf;
    *len = (size_t)(w - buf);
    return 0;
}

int rc_fsm_snapshot_encode(rc_fsm *f, uint8_t **out, size_t *len)
{
    struct snap_plan *p = snap_plan_take(f);
    if (p == NULL)
        return -1;
    int rv = snap_plan_assemble(p, out, len);
    snap_plan_free(p);
    return rv;
}

void rc_fsm_snapshot_forget_cache(rc_fsm *f)
{
    size_t pos = 0;
    const char *k;
    void *v;
    while (rc_map_next(f->messages, &pos, &k, &v))
        msg_touch(v);
}

static struct rc_msg *msg_from_pb(const Ricochet__MessageState *ms)
{
    struct rc_msg *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->id = strdup(ms->id ? ms->id : "");
    const Ricochet__Envelope *e = ms->envelope;
    if (e) {
        m->mail_from = dup_or_null(e->mail_from);
        m->ret = dup_or_null(e->ret);
        m->envid = dup_or_null(e->envid);
        m->body_type = dup_or_null(e->body_type);
        m->auth_user = dup_or_null(e->auth_user);
        m->client_addr = dup_or_null(e->client_addr);
        m->helo = dup_or_null(e->helo);
        m->smtputf8 = e->smtputf8;
    }
    if (ms->body_sha256.len == 32)
        memcpy(m->body_sha256, ms->body_sha256.data, 32);
    m->body_size = ms->body_size;
    m->received_ms = ms->received_ms;
    m->expire_at_ms = ms->expire_at_ms;
    m->ttr_at_ms = ms->ttr_at_ms;
    m->accepted_by = ms->accepted_by;
    m->rcpts = calloc(ms->n_recipients ? ms->n_recipients : 1, sizeof *m->rcpts);
    if (m->id == NULL || m->rcpts == NULL)
        goto err;
    m->n_rcpts = ms->n_recipients;
    for (size_t i = 0; i < ms->n_recipients; i++) {
        const Ricochet__RecipientState *x = ms->recipients[i];
        struct rc_rcpt *r = &m->rcpts[i];
        const Ricochet__RecipientSpec *spec = x->spec;
        r->address = strdup(spec && spec->address ? spec->address : "");
        r->notify = spec ? dup_or_null(spec->notify) : NULL;
        r->orcpt = spec ? dup_or_null(spec->orcpt) : NULL;
        r->status = (int)x->status;
        r->attempts = x->attempts;
        r->next_attempt_ms = x->next_attempt_ms;
        r->reason = dup_or_null(x->reason);
        r->hard = x->hard;
        r->attempt_node = x->attempt_node;
        r->attempt_at_ms = x->attempt_at_ms;
        r->webhook_sent = x->webhook_sent < x->n_history ? x->webhook_sent : x->n_history;
        if (r->address == NULL)
            goto err;
        for (size_t j = 0; j < x->n_history; j++) {
            const Ricochet__HistoryEvent *ev = x->history[j];
            struct rc_history *h = history_push(r);
            if (h == NULL)
                goto err;
            h->status = (int)ev->status;
            h->at_ms = ev->at_ms;
            h->smtp_code = ev->smtp_code;
            h->internal_code = ev->internal_code;
            h->hard = ev->hard;
            h->node = ev->node;
            h->enhanced = dup_or_null(ev->enhanced);
            h->text = dup_or_null(ev->text);
            h->reason = dup_or_null(ev->reason);
            h->remote_mta = dup_or_null(ev->remote_mta);
        }
    }
    return m;
err:
    msg_free(m);
    return NULL;
}

int rc_fsm_restore(rc_fsm *f, const uint8_t *payload, size_t len)
{
    Ricochet__Snapshot *s = ricochet__snapshot__unpack(NULL, len, payload);
    if (s == NULL) {
        rc_error("fsm", "snapshot_undecodable len=%zu", len);
        return -1;
    }
    if (s->schema > SCHEMA_VERSION)
        rc_warn("fsm", "snapshot_newer_schema schema=%u mine=%u", s->schema, SCHEMA_VERSION);
    rc_map *msgs = rc_map_new(), *supp = rc_map_new();
    if (msgs == NULL || supp == NULL)
        goto err;
    for (size_t i = 0; i < s->n_messages; i++) {
        struct rc_msg *m = msg_from_pb(s->messages[i]);
        if (m == NULL || rc_map_put(msgs, m->id, m) != 0) {
            msg_free(m);
            goto err;
        }
        /* encoded now, while restoring, so that the next snapshot's share
         * on the loop is only what changes until then (a miss is encoded
         * then) */
        msg_blob(m);
    }
    for (size_t i = 0; i < s->n_suppressions; i++) {
        const Ricochet__Suppression *x = s->suppressions[i];
        struct rc_suppression *sp = calloc(1, sizeof *sp);
        if (sp == NULL || (sp->address = strdup(x->address ? x->address : "")) == NULL) {
            suppression_free(sp);
            goto err;
        }
        sp->active = x->reason != NULL;
        sp->reason = dup_or_null(x->reason);
        sp->source = dup_or_null(x->source);
        sp->since_ms = x->since_ms;
        sp->soft_bounces = x->soft_bounces;
        if (rc_map_put(supp, sp->address, sp) != 0) {
            suppression_free(sp);
            goto err;
        }
    }

    free_all_values(f->messages, msg_free_v);
    rc_map_free(f->messages);
    free_all_values(f->suppressions, suppression_free_v);
    rc_map_free(f->suppressions);
    f->messages = msgs;
    f->suppressions = supp;
    memset(&f->view, 0, sizeof f->view);
    if (s->view) {
        f->view.serial = s->view->serial;
        f->view.leader = s->view->leader;
        snprintf(f->view.leader_site, sizeof f->view.leader_site, "%s",
                 s->view->leader_site ? s->view->leader_site : "");
        for (size_t i = 0; i < s->view->n_nodes && i < 16; i++) {
            f->view.nodes[i].id = s->view->nodes[i]->node;
            f->view.nodes[i].healthy = s->view->nodes[i]->healthy;
            f->view.nodes[i].drained = s->view->nodes[i]->drained;
            f->view.n_nodes++;
        }
    }
    dedup_clear(f);
    for (size_t i = 0; i < s->n_recent_request_ids; i++) {
        char key[129];
        if (s->recent_request_ids[i].len == 0 || s->recent_request_ids[i].len > 64)
            continue;
        hex_of(s->recent_request_ids[i].data, s->recent_request_ids[i].len, key);
        dedup_add(f, key);
    }
    f->applied = s->applied_records;
    f->unknown = s->unknown_records;
    if (rc_notes_from_snapshot(f->notes, s) != 0)
        rc_error("fsm", "snapshot_bounce_notes_lost reason=out_of_memory");
    if (s->state_digest.len == sizeof f->digest)
        memcpy(f->digest, s->state_digest.data, sizeof f->digest);
    ricochet__snapshot__free_unpacked(s, NULL);
    rc_info("fsm", "snapshot_restored messages=%zu suppressions=%zu applied=%llu",
            rc_map_count(f->messages), rc_map_count(f->suppressions),
            (unsigned long long)f->applied);
    if (f->hooks.on_view)
        f->hooks.on_view(f->data, &f->view);
    if (f->hooks.on_restore)
        f->hooks.on_restore(f->data);
    return 0;
err:
    if (msgs) {
        free_all_values(msgs, msg_free_v);
        rc_map_free(msgs);
    }
    if (supp) {
        free_all_values(supp, suppression_free_v);
        rc_map_free(supp);
    }
    ricochet__snapshot__free_unpacked(s, NULL);
    rc_error("fsm", "snapshot_restore_failed reason=out_of_memory");
    return -1;
}

/* ------------------------------------------------- libraft FSM callbacks */

static int fsm_apply_cb(struct raft_fsm *raft_fsm, const struct raft_buffer *buf, void **result)
{
    rc_fsm *f = raft_fsm->data;
    const uint8_t *payload;
    size_t len;
    *result = NULL;
    int rv = rc_entry_unwrap(RC_ENTRY_LOG, buf->base, buf->len, &payload, &len);
    if (rv != RC_ENTRY_OK) {
        f->skipped++;
        rc_error("fsm", "entry_rejected len=%zu reason=\"%s\" action=skipped", buf->len,
                 rc_entry_strerror(rv));
        return 0; /* never fail: libraft would stall */
    }
    rc_fsm_apply_batch(f, payload, len);
    return 0;
}

/* Snapshots (version 3 FSM): the loop takes the plan (the messages'
 * cached encodings and the few other fields, snap_plan_take), libraft's
 * worker thread assembles and wraps it while the loop goes on applying
 * entries, and the loop frees it all when libraft is done (finalize). The
 * loop's share grows with the messages changed since the last snapshot,
 * not with the whole state. */
static int fsm_snapshot_cb(struct raft_fsm *raft_fsm, struct raft_buffer *bufs[], unsigned *n)
{
    rc_fsm *f = raft_fsm->data;
    if (f->plan != NULL)
        return RAFT_BUSY;
    if (f->hooks.before_snapshot && f->hooks.before_snapshot(f->data) != 0) {
        rc_warn("fsm", "snapshot_refused reason=spool_not_durable");
        return RAFT_IOERR;
    }
    struct raft_buffer *b = raft_calloc(1, sizeof *b); /* filled off the loop */
    if (b == NULL || (f->plan = snap_plan_take(f)) == NULL) {
        raft_free(b);
        return RAFT_NOMEM;
    }
    *bufs = b;
    *n = 1;
    return 0;
}

static int fsm_snapshot_async_cb(struct raft_fsm *raft_fsm, struct raft_buffer *bufs[], unsigned *n)
{
    rc_fsm *f = raft_fsm->data;
    uint8_t *payload;
    size_t len;
    if (*n != 1 || f->plan == NULL || snap_plan_assemble(f->plan, &payload, &len) != 0)
        return RAFT_NOMEM;
    int rv = rc_entry_wrap(RC_ENTRY_SNAPSHOT, payload, len, &(*bufs)[0]);
    free(payload);
    return rv == RC_ENTRY_OK ? 0 : RAFT_NOMEM;
}

static int fsm_snapshot_finalize_cb(struct raft_fsm *raft_fsm, struct raft_buffer *bufs[], unsigned *n)
{
    rc_fsm *f = raft_fsm->data;
    if (*bufs != NULL) {
        for (unsigned i = 0; i < *n; i++)
            raft_free((*bufs)[i].base);
        raft_free(*bufs);
    }
    *bufs = NULL;
    *n = 0;
    if (f->plan != NULL) {
        rc_info("fsm", "snapshot_taken messages=%zu applied=%llu", f->plan->n,
                (unsigned long long)f->plan->applied);
        snap_plan_free(f->plan);
        f->plan = NULL;
    }
    return 0;
}

static int fsm_restore_cb(struct raft_fsm *raft_fsm, struct raft_buffer *buf)
{
    rc_fsm *f = raft_fsm->data;
    const uint8_t *payload;
    size_t len;
    int rv = rc_entry_unwrap(RC_ENTRY_SNAPSHOT, buf->base, buf->len, &payload, &len);
    if (rv != RC_ENTRY_OK) {
        rc_error("fsm", "snapshot_rejected len=%zu reason=\"%s\"", buf->len, rc_entry_strerror(rv));
        return RAFT_MALFORMED;
    }
    if (rc_fsm_restore(f, payload, len) != 0)
        return RAFT_MALFORMED;
    raft_free(buf->base); /* restore owns the buffer on success */
    return 0;
}

/* ---------------------------------------------------------- life cycle */

int rc_fsm_new(rc_fsm **out, const struct rc_fsm_config *cfg,
               const struct rc_fsm_hooks *hooks, void *data)
{
    rc_fsm *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    f->cfg.dedup_capacity = cfg && cfg->dedup_capacity ? cfg->dedup_capacity : 100000;
    f->cfg.soft_bounce_limit = cfg && cfg->soft_bounce_limit ? cfg->soft_bounce_limit : 5;
    if (hooks)
        f->hooks = *hooks;
    f->data = data;
    f->messages = rc_map_new();
    f->suppressions = rc_map_new();
    f->dedup = rc_map_new();
    f->dedup_ring = calloc(f->cfg.dedup_capacity, sizeof *f->dedup_ring);
    f->cfg.bounce_notes_kept = cfg && cfg->bounce_notes_kept ? cfg->bounce_notes_kept : 100;
    f->notes = rc_notes_new(f->cfg.bounce_notes_kept);
    if (!f->messages || !f->suppressions || !f->dedup || !f->dedup_ring || !f->notes) {
        rc_fsm_free(f);
        return -1;
    }
    f->raft.version = 3;
    f->raft.data = f;
    f->raft.apply = fsm_apply_cb;
    f->raft.snapshot = fsm_snapshot_cb;
    f->raft.restore = fsm_restore_cb;
    f->raft.snapshot_finalize = fsm_snapshot_finalize_cb;
    f->raft.snapshot_async = fsm_snapshot_async_cb;
    *out = f;
    return 0;
}

void rc_fsm_free(rc_fsm *f)
{
    if (f == NULL)
        return;
    if (f->messages) {
        free_all_values(f->messages, msg_free_v);
        rc_map_free(f->messages);
    }
    if (f->suppressions) {
        free_all_values(f->suppressions, suppression_free_v);
        rc_map_free(f->suppressions);
    }
    if (f->dedup_ring && f->dedup) {
        for (size_t i = 0; i < f->dedup_len; i++)
            free(f->dedup_ring[(f->dedup_head + i) % f->cfg.dedup_capacity]);
    }
    free(f->dedup_ring);
    rc_map_free(f->dedup);
    rc_notes_free(f->notes);
    snap_plan_free(f->plan); /* closed while libraft still held a snapshot */
    free(f);
}

struct raft_fsm *rc_fsm_raft(rc_fsm *f) { return &f->raft; }
uint64_t rc_fsm_applied_records(const rc_fsm *f) { return f->applied; }
uint64_t rc_fsm_skipped_records(const rc_fsm *f) { return f->skipped; }
uint64_t rc_fsm_forgotten_messages(const rc_fsm *f) { return f->forgotten; }
void rc_fsm_digest_hex(const rc_fsm *f, char out[65]) { hex_of(f->digest, 32, out); }

bool rc_fsm_request_applied(const rc_fsm *f, const uint8_t *id, size_t len)
{
    char key[2 * 64 + 1];
    if (len == 0 || len > 64)
        return false;
    hex_of(id, len, key);
    return rc_map_get(f->dedup, key) != NULL;
}
const struct rc_msg *rc_fsm_message(const rc_fsm *f, const char *id) { return rc_map_get(f->messages, id); }
size_t rc_fsm_message_count(const rc_fsm *f) { return rc_map_count(f->messages); }
const struct rc_view *rc_fsm_view(const rc_fsm *f) { return &f->view; }

const struct rc_msg *rc_fsm_message_next(const rc_fsm *f, size_t *pos)
{
    const char *k;
    void *v;
    return rc_map_next(f->messages, pos, &k, &v) ? v : NULL;
}

const struct rc_suppression *rc_fsm_suppression(const rc_fsm *f, const char *address)
{
    return suppression_active(f, address);
}

const struct rc_suppression *rc_fsm_suppression_next(const rc_fsm *f, size_t *pos)
{
    const char *k;
    void *v;
    while (rc_map_next(f->suppressions, pos, &k, &v)) {
        const struct rc_suppression *s = v;
        if (s->active)
            return s;
    }
    return NULL;
}

const rc_notes *rc_fsm_notes(const rc_fsm *f)
{
    return f->notes;
}
