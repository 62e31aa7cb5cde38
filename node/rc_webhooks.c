/* Webhooks: every recipient's status changes, POSTed as signed JSON to
 * webhooks.url (docs/WEBHOOKS.md).
 *
 * The replicated state is the queue. Each recipient keeps its history and
 * `webhook_sent`, the number of history entries the receiver acknowledged
 * (a WebhookAck record, committed after a 2xx). Only the leader sends: when
 * it takes office it queues every recipient with entries past
 * webhook_sent, then each status change as it is applied. After a failover
 * the new leader starts again from what was acknowledged, so nothing is
 * lost and an event may come twice (at least once): receivers drop
 * duplicates by the event id, which names the message, the recipient and
 * the history entry.
 *
 * One POST at a time, on libuv's thread pool with libcurl's easy API (no
 * event-loop integration to write for one request in flight; the request
 * is bounded by webhooks.timeout and cut short at shutdown through the
 * progress callback). The easy handle is kept between POSTs, so the
 * connection (and TLS session) to the receiver is reused; only the worker
 * running the POST touches it, one at a time. Events of one recipient go out in history order:
 * the next batch is built only once the previous one is acknowledged. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "node/base/rc_log.h"
#include "node/rc_node_internal.h"
#include "proto/ricochet.pb-c.h"
#include "raft/rc_map.h"

#define TICK_MS 250
#define RETRY_FIRST_MS 1000
#define STATUS_BITS 32

struct wh_key {
    char *id;
    uint32_t rcpt;
};

struct wh_ack {
    char *id;
    uint32_t rcpt, upto;
};

enum wh_phase { WH_IDLE, WH_POSTING, WH_ACKING };

/* What the worker thread reads and writes; nothing else crosses threads. */
struct wh_post {
    char *body;
    size_t len;
    char url[512];
    char ts_header[64], sig_header[32 + 2 * EVP_MAX_MD_SIZE + 1];
    long timeout_ms;
    atomic_bool abort;
    CURL *curl; /* kept between POSTs: the connection to the receiver is reused */
    long http_status;
    char error[CURL_ERROR_SIZE];
};

struct rc_webhooks {
    rc_node *n;
    uv_timer_t timer;
    bool active, stopping;
    uint64_t term;
    uint32_t events_mask; /* bit per status value; all ones: every status */

    /* recipients with events to send, oldest first; `queued` dedupes */
    struct wh_key *q;
    size_t qhead, qlen, qcap;
    rc_map *queued;

    enum wh_phase phase;
    uv_work_t work;
    struct wh_post post;
    struct wh_ack *batch;
    size_t nbatch, batch_events;

    unsigned failures;
    uint64_t next_try_ms;
    struct rc_webhooks_stats stats;

    void (*stop_cb)(void *);
    void *stop_data;
    int closing;
};

static void tick(uv_timer_t *t);

static void key_name(char *out, size_t n, const char *id, uint32_t rcpt)
{
    snprintf(out, n, "%s\x1f%" PRIu32, id, rcpt);
}

static bool wanted(const struct rc_webhooks *w, int status)
{
    return status >= 0 && status < STATUS_BITS && (w->events_mask >> status) & 1u;
}

static void enqueue(struct rc_webhooks *w, const char *id, uint32_t rcpt)
{
    char name[300];
    key_name(name, sizeof name, id, rcpt);
    if (rc_map_get(w->queued, name))
        return;
    if (w->qhead + w->qlen == w->qcap) {
        if (w->qhead > 0) {
            memmove(w->q, w->q + w->qhead, w->qlen * sizeof *w->q);
            w->qhead = 0;
        } else {
            size_t cap = w->qcap ? 2 * w->qcap : 64;
            struct wh_key *q = realloc(w->q, cap * sizeof *q);
            if (q == NULL)
                goto nomem;
            w->q = q;
            w->qcap = cap;
        }
    }
    char *dup = strdup(id);
    if (dup == NULL || rc_map_put(w->queued, name, w) != 0) {
        free(dup);
        goto nomem;
    }
    w->q[w->qhead + w->qlen++] = (struct wh_key){dup, rcpt};
    return;
nomem:
    /* the state keeps the events: the next leadership (or restore) sends them */
    rc_error("webhooks", "queue_failed id=%s rcpt=%" PRIu32 " reason=out_of_memory", id, rcpt);
}

static void dequeue_front(struct rc_webhooks *w)
{
    struct wh_key *k = &w->q[w->qhead];
    char name[300];
    key_name(name, sizeof name, k->id, k->rcpt);
    rc_map_remove(w->queued, name);
    free(k->id);
    w->qhead++;
    w->qlen--;
    if (w->qlen == 0)
        w->qhead = 0;
}

static void clear_queue(struct rc_webhooks *w)
{
    while (w->qlen > 0)
        dequeue_front(w);
}

static void clear_batch(struct rc_webhooks *w)
{
    for (size_t i = 0; i < w->nbatch; i++)
        free(w->batch[i].id);
    free(w->batch);
    w->batch = NULL;
    w->nbatch = w->batch_events = 0;
}

static void activate(struct rc_webhooks *w, uint64_t term)
{
    clear_queue(w);
    rc_fsm *fsm = rc_raft_fsm(w->n->raft);
    size_t pos = 0, pending = 0;
    for (const struct rc_msg *m; (m = rc_fsm_message_next(fsm, &pos)) != NULL;)
        for (size_t i = 0; i < m->n_rcpts; i++)
            if (m->rcpts[i].webhook_sent < m->rcpts[i].n_history) {
                enqueue(w, m->id, (uint32_t)i);
                pending++;
            }
    w->active = true;
    w->term = term;
    w->failures = 0;
    w->next_try_ms = 0;
    rc_info("webhooks", "sending term=%" PRIu64 " recipients_pending=%zu", term, pending);
}

/* ------------------------------------------------------------ the POST */

static size_t discard_body(char *p, size_t size, size_t n, void *data)
{
    (void)p;
    (void)data;
    return size * n;
}

static int progress(void *data, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    struct wh_post *p = data;
    return atomic_load(&p->abort) ? 1 : 0;
}

static void post_work(uv_work_t *req)
{
    struct rc_webhooks *w = req->data;
    struct wh_post *p = &w->post;
    p->http_status = 0;
    p->error[0] = '\0';
    if (p->curl == NULL)
        p->curl = curl_easy_init();
    else
        curl_easy_reset(p->curl); /* options back to defaults; live connections kept */
    CURL *h = p->curl;
    if (h == NULL) {
        snprintf(p->error, sizeof p->error, "curl_easy_init failed");
        return;
    }
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, p->ts_header);
    hdrs = curl_slist_append(hdrs, p->sig_header);
    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(h, CURLOPT_URL, p->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "ricochet-webhooks/1");
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, p->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->len);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, p->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, p);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, p->error);
    CURLcode rc = hdrs ? curl_easy_perform(h) : CURLE_OUT_OF_MEMORY;
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &p->http_status);
    else if (p->error[0] == '\0')
        snprintf(p->error, sizeof p->error, "%s", curl_easy_strerror(rc));
    curl_slist_free_all(hdrs);
}

static void finish_stop_step(struct rc_webhooks *w)
{
    if (--w->closing > 0)
        return;
    void (*cb)(void *) = w->stop_cb;
    w->stop_cb = NULL;
    if (cb)
        cb(w->stop_data);
}

static void ack_done(void *data, int status)
{
    struct rc_webhooks *w = data;
    if (status != RC_OK)
        rc_warn("webhooks", "ack_failed events=%zu error=\"%s\" action=send_again", w->batch_events,
                rc_strerror(status));
    clear_batch(w);
    w->phase = WH_IDLE;
    if (w->stopping)
        finish_stop_step(w);
    else
        uv_timer_start(&w->timer, tick, 0, 0);
}

/* The receiver has the batch (or the batch held only filtered events):
 * record it in the replicated state. */
static void propose_ack(struct rc_webhooks *w)
{
    Ricochet__WebhookAckItem *items = calloc(w->nbatch, sizeof *items);
    Ricochet__WebhookAckItem **ptrs = calloc(w->nbatch, sizeof *ptrs);
    Ricochet__WebhookAck ack = RICOCHET__WEBHOOK_ACK__INIT;
    Ricochet__Record rec = RICOCHET__RECORD__INIT;
    int rv = RC_ENOMEM;
    if (items && ptrs) {
        for (size_t i = 0; i < w->nbatch; i++) {
            ricochet__webhook_ack_item__init(&items[i]);
            items[i].id = w->batch[i].id;
            items[i].has_recipient = items[i].has_upto = true;
            items[i].recipient = w->batch[i].rcpt;
            items[i].upto = w->batch[i].upto;
            ptrs[i] = &items[i];
        }
        ack.items = ptrs;
        ack.n_items = w->nbatch;
        rec.kind_case = RICOCHET__RECORD__KIND_WEBHOOK_ACK;
        rec.webhook_ack = &ack;
        w->phase = WH_ACKING;
        rv = rc_raft_propose(w->n->raft, &rec, ack_done, w);
    }
    free(items);
    free(ptrs);
    if (rv != RC_OK) {
        w->phase = WH_IDLE;
        rc_warn("webhooks", "ack_failed events=%zu error=\"%s\" action=send_again", w->batch_events, rc_strerror(rv));
        clear_batch(w);
    }
}

static void post_done(uv_work_t *req, int status)
{
    struct rc_webhooks *w = req->data;
    free(w->post.body);
    w->post.body = NULL;
    if (w->stopping) {
        clear_batch(w);
        w->phase = WH_IDLE;
        finish_stop_step(w);
        return;
    }
    long code = status == 0 ? w->post.http_status : 0;
    w->stats.last_status = code;
    if (code >= 200 && code <= 299) {
        w->stats.posts_ok++;
        w->stats.events_sent += w->batch_events;
        w->stats.last_ok_ms = rc_now_ms();
        w->stats.last_error[0] = '\0';
        w->failures = 0;
        w->next_try_ms = 0;
        propose_ack(w);
        return;
    }
    w->stats.posts_failed++;
    if (code != 0)
        snprintf(w->stats.last_error, sizeof w->stats.last_error, "HTTP %ld", code);
    else
        snprintf(w->stats.last_error, sizeof w->stats.last_error, "%s",
                 status == 0 ? w->post.error : uv_strerror(status));
    uint64_t wait = RETRY_FIRST_MS;
    for (unsigned i = 0; i < w->failures && wait < w->n->cfg.webhooks_retry_max_ms; i++)
        wait *= 2;
    if (wait > w->n->cfg.webhooks_retry_max_ms)
        wait = w->n->cfg.webhooks_retry_max_ms;
    w->failures++;
    w->next_try_ms = rc_now_ms() + wait;
    char q[sizeof w->stats.last_error + 16];
    rc_warn("webhooks", "post_failed events=%zu error=%s failures=%u retry_in_ms=%" PRIu64, w->batch_events,
            rc_log_quote(q, sizeof q, w->stats.last_error, strlen(w->stats.last_error)), w->failures, wait);
    clear_batch(w);
    w->phase = WH_IDLE;
    uv_timer_start(&w->timer, tick, wait, 0);
}

/* ------------------------------------------------------------ batches */

static json_t *event_json(const struct rc_msg *m, uint32_t rcpt, size_t k)
{
    const struct rc_rcpt *r = &m->rcpts[rcpt];
    char id[300];
    snprintf(id, sizeof id, "%s.%" PRIu32 ".%zu", m->id, rcpt, k);
    json_t *e = rc_api_history_json(&r->history[k]);
    json_object_set_new(e, "id", json_string(id));
    json_object_set_new(e, "message_id", json_string(m->id));
    json_object_set_new(e, "recipient", rc_api_text(r->address));
    json_object_set_new(e, "recipient_index", json_integer(rcpt));
    json_object_set_new(e, "sequence", json_integer((json_int_t)k));
    if (k > 0)
        json_object_set_new(e, "previous_status", json_string(rc_status_name(r->history[k - 1].status)));
    else
        json_object_set_new(e, "previous_status", json_null());
    if (m->mail_from && m->mail_from[0])
        json_object_set_new(e, "from", rc_api_text(m->mail_from));
    if (m->envid)
        json_object_set_new(e, "envid", rc_api_text(m->envid));
    return e;
}

/* Takes events from the front of the queue, up to batch_max; fills
 * w->batch with how far each recipient goes. Returns the events, NULL on
 * failure (out of memory). */
static json_t *build_batch(struct rc_webhooks *w)
{
    rc_fsm *fsm = rc_raft_fsm(w->n->raft);
    json_t *events = json_array();
    size_t max = w->n->cfg.webhooks_batch_max;
    size_t room = w->qlen;
    w->batch = calloc(room ? room : 1, sizeof *w->batch);
    if (events == NULL || w->batch == NULL) {
        json_decref(events);
        return NULL;
    }
    for (size_t i = 0; i < w->qlen && w->batch_events < max; i++) {
        const struct wh_key *key = &w->q[w->qhead + i];
        const struct rc_msg *m = rc_fsm_message(fsm, key->id);
        if (m == NULL || key->rcpt >= m->n_rcpts)
            continue; /* forgotten by retention: dropped below */
        const struct rc_rcpt *r = &m->rcpts[key->rcpt];
        size_t k = r->webhook_sent;
        for (; k < r->n_history && w->batch_events < max; k++) {
            if (!wanted(w, r->history[k].status))
                continue;
            json_array_append_new(events, event_json(m, key->rcpt, k));
            w->batch_events++;
        }
        if (k > r->webhook_sent) {
            struct wh_ack *a = &w->batch[w->nbatch];
            a->id = strdup(m->id);
            if (a->id == NULL)
                break;
            a->rcpt = key->rcpt;
            a->upto = (uint32_t)k;
            w->nbatch++;
        }
    }
    return events;
}

/* Recipients at the front with nothing left to send leave the queue: all
 * acknowledged, or their message was forgotten (retention) first. */
static void drop_done(struct rc_webhooks *w)
{
    rc_fsm *fsm = rc_raft_fsm(w->n->raft);
    while (w->qlen > 0) {
        const struct wh_key *key = &w->q[w->qhead];
        const struct rc_msg *m = rc_fsm_message(fsm, key->id);
        if (m != NULL && key->rcpt < m->n_rcpts && m->rcpts[key->rcpt].webhook_sent < m->rcpts[key->rcpt].n_history)
            break;
        if (m == NULL)
            w->stats.recipients_dropped++;
        dequeue_front(w);
    }
}

static void sign(struct rc_webhooks *w, const char *body, size_t len)
{
    struct wh_post *p = &w->post;
    long long ts = (long long)time(NULL);
    char tsbuf[32];
    int tl = snprintf(tsbuf, sizeof tsbuf, "%lld.", ts);
    snprintf(p->ts_header, sizeof p->ts_header, "X-Ricochet-Timestamp: %lld", ts);
    /* HMAC-SHA256(secret, timestamp "." body): a receiver rejects old
     * timestamps, so a captured POST cannot be replayed later */
    const char *secret = w->n->cfg.webhooks_secret;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    EVP_MAC *alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = alg ? EVP_MAC_CTX_new(alg) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0), OSSL_PARAM_construct_end()};
    size_t outl = 0;
    if (ctx && EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) &&
        EVP_MAC_update(ctx, (const unsigned char *)tsbuf, (size_t)tl) &&
        EVP_MAC_update(ctx, (const unsigned char *)body, len) && EVP_MAC_final(ctx, mac, &outl, sizeof mac))
        maclen = (unsigned)outl;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(alg);
    char hex[2 * EVP_MAX_MD_SIZE + 1] = "";
    for (unsigned i = 0; i < maclen; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    snprintf(p->sig_header, sizeof p->sig_header, "X-Ricochet-Signature: v1=%s", hex);
}

static void send_next(struct rc_webhooks *w)
{
    drop_done(w);
    if (w->qlen == 0)
        return;
    json_t *events = build_batch(w);
    if (events == NULL) {
        clear_batch(w);
        rc_error("webhooks", "batch_failed reason=out_of_memory");
        return;
    }
    if (w->nbatch == 0) { /* nothing that could be sent (cannot happen after drop_done) */
        json_decref(events);
        clear_batch(w);
        return;
    }
    if (w->batch_events == 0) {
        json_decref(events);
        propose_ack(w); /* only statuses webhooks.events leaves out */
        return;
    }
    json_t *doc = json_pack("{s:I, s:I, s:o}", "node", (json_int_t)w->n->cfg.node_id, "sent_at",
                            (json_int_t)rc_now_ms(), "events", events);
    char *body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (body == NULL) {
        clear_batch(w);
        rc_error("webhooks", "batch_failed reason=out_of_memory");
        return;
    }
    struct wh_post *p = &w->post;
    p->body = body;
    p->len = strlen(body);
    snprintf(p->url, sizeof p->url, "%s", w->n->cfg.webhooks_url);
    p->timeout_ms = (long)w->n->cfg.webhooks_timeout_ms;
    atomic_store(&p->abort, false);
    sign(w, body, p->len);
    w->work.data = w;
    w->phase = WH_POSTING;
    int rv = uv_queue_work(w->n->loop, &w->work, post_work, post_done);
    if (rv != 0) {
        free(p->body);
        p->body = NULL;
        clear_batch(w);
        w->phase = WH_IDLE;
        rc_error("webhooks", "post_failed error=\"%s\"", uv_strerror(rv));
    }
}

static void tick(uv_timer_t *t)
{
    struct rc_webhooks *w = t->data;
    if (w->stopping)
        return;
    struct rc_raft_status st;
    bool should = rc_node_does_leader_work(w->n, &st);
    if (!should && w->active) {
        rc_info("webhooks", "stopped_sending term=%" PRIu64 " recipients_pending=%zu", w->term, w->qlen);
        w->active = false;
        clear_queue(w);
    }
    if (should && (!w->active || st.term != w->term))
        activate(w, st.term);
    uint64_t next = TICK_MS;
    if (w->active && w->phase == WH_IDLE) {
        uint64_t now = rc_now_ms();
        if (now >= w->next_try_ms)
            send_next(w);
        else if (w->next_try_ms - now < next)
            next = w->next_try_ms - now;
    }
    uv_timer_start(&w->timer, tick, next, 0);
}

/* ------------------------------------------------------------ interface */

static int parse_events(const char *list, uint32_t *mask, char *err, size_t errlen)
{
    if (list[0] == '\0') {
        *mask = UINT32_MAX;
        return 0;
    }
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    *mask = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        int s = rc_status_parse(tok);
        if (s <= 0 || s >= STATUS_BITS) {
            snprintf(err, errlen, "webhooks.events: \"%s\" is not a status (queued, deferred, delivered, bounced, "
                     "failed, undeliverable, expired, rejected, discarded, complained, lost_in_space, opened, "
                     "clicked)", tok);
            return -1;
        }
        *mask |= 1u << s;
    }
    return 0;
}

int rc_webhooks_start(rc_node *n, char *err, size_t errlen)
{
    n->webhooks = NULL;
    if (n->cfg.webhooks_url[0] == '\0')
        return 0;
    struct rc_webhooks *w = calloc(1, sizeof *w);
    if (w == NULL || (w->queued = rc_map_new()) == NULL) {
        free(w);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (parse_events(n->cfg.webhooks_events, &w->events_mask, err, errlen) != 0) {
        rc_map_free(w->queued);
        free(w);
        return -1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc_map_free(w->queued);
        free(w);
        snprintf(err, errlen, "webhooks: libcurl initialisation failed");
        return -1;
    }
    w->n = n;
    uv_timer_init(n->loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, tick, TICK_MS, 0);
    n->webhooks = w;
    rc_info("webhooks", "configured url=%s events=%s batch_max=%" PRIu64, n->cfg.webhooks_url,
            n->cfg.webhooks_events[0] ? n->cfg.webhooks_events : "all", n->cfg.webhooks_batch_max);
    return 0;
}

void rc_webhooks_on_change(rc_node *n, const struct rc_msg *m, size_t rcpt)
{
    struct rc_webhooks *w = n->webhooks;
    if (w == NULL || !w->active || w->stopping)
        return;
    enqueue(w, m->id, (uint32_t)rcpt);
    if (w->phase == WH_IDLE && rc_now_ms() >= w->next_try_ms)
        uv_timer_start(&w->timer, tick, 0, 0);
}

void rc_webhooks_on_restore(rc_node *n)
{
    struct rc_webhooks *w = n->webhooks;
    if (w && w->active)
        w->term = 0; /* queue again from the restored state at the next tick */
}

void rc_webhooks_get_stats(rc_node *n, struct rc_webhooks_stats *out)
{
    struct rc_webhooks *w = n->webhooks;
    memset(out, 0, sizeof *out);
    if (w == NULL)
        return;
    *out = w->stats;
    out->configured = true;
    out->active = w->active;
    out->recipients_pending = w->qlen;
    out->in_flight = w->phase != WH_IDLE ? w->batch_events : 0;
    out->failures = w->failures;
    out->next_try_ms = w->failures ? w->next_try_ms : 0;
}

static void timer_closed(uv_handle_t *h)
{
    finish_stop_step(h->data);
}

void rc_webhooks_stop(rc_node *n, void (*cb)(void *), void *data)
{
    struct rc_webhooks *w = n->webhooks;
    if (w == NULL) {
        cb(data);
        return;
    }
    w->stopping = true;
    w->stop_cb = cb;
    w->stop_data = data;
    w->closing = 1;
    uv_timer_stop(&w->timer);
    w->closing++;
    uv_close((uv_handle_t *)&w->timer, timer_closed);
    if (w->phase == WH_POSTING) {
        /* post_done runs either way: at once when the work had not started */
        w->closing++;
        atomic_store(&w->post.abort, true);
        uv_cancel((uv_req_t *)&w->work);
    } else if (w->phase == WH_ACKING) {
        w->closing++; /* ack_done comes: raft closes after the front ends */
    }
    finish_stop_step(w);
}

void rc_webhooks_free(rc_node *n)
{
    struct rc_webhooks *w = n->webhooks;
    if (w == NULL)
        return;
    clear_queue(w);
    clear_batch(w);
    free(w->q);
    rc_map_free(w->queued);
    if (w->post.curl)
        curl_easy_cleanup(w->post.curl); /* no POST runs any more: stopped */
    free(w);
    n->webhooks = NULL;
    curl_global_cleanup();
}
