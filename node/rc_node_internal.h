/* Shared between the node's own files (rc_node.c, rc_api.c, rc_probe.c). */
#ifndef RC_NODE_INTERNAL_H
#define RC_NODE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "node/rc_config.h"
#include "node/rc_node.h"
#include "node/rc_spool.h"
#include "raft/rc_raft.h"

struct http_api;
struct smtp_server;
struct rc_peer_net;
struct rc_forwarder_state;
struct rc_dns;
struct rc_health_probe;
struct rc_view;
struct rc_delivery;
struct rc_dsn;
struct rc_msg;

struct rc_node {
    uv_loop_t *loop;
    struct rc_config cfg;
    rc_raft *raft;
    rc_spool *spool;
    struct http_api *http;
    struct smtp_server *smtp;
    void *tls_ctx;
    struct smtp_users *users;
    uint32_t id_seq;
    uint64_t accepted, accept_timeouts;
    struct rc_peer_net *peers;
    struct rc_forwarder_state *fwd;
    uv_timer_t health_timer;
    bool stopping;
    int pending_closes;
    void (*stop_cb)(void *);
    void *stop_data;
    uint64_t health_proposals;
    /* Bodies this node lacks after restoring a snapshot (fetched from peers). */
    char **missing_bodies;
    size_t n_missing, cap_missing;
    unsigned body_fetches_inflight;
    bool body_scan_needed;
    struct rc_dns *dns;                /* rc_dns.c */
    struct rc_health_probe *hprobe;    /* rc_health_probe.c */
    struct rc_delivery *delivery;      /* rc_delivery.c */
    struct rc_dsn *dsn;                /* rc_dsn.c */
    struct rc_webhooks *webhooks;      /* rc_webhooks.c; NULL without webhooks.url */
    /* tracking hits (rc_api_tracking.c): recorded, not recorded (message
     * unknown or forgotten, recipient not delivered, no leader), refused
     * (not a URL this cluster made) */
    uint64_t tracking_recorded, tracking_not_recorded, tracking_refused, tracking_skipped;
    /* hits this node proposed lately (hash of message, recipient, event,
     * link → when): repeats within tracking.repeat_window not yet in the
     * history are recognised too */
    struct { uint64_t key, at_ms; } tracking_recent[256];
};

/* Proposes a new message accepted by this node now (SMTP ingress, DSNs):
 * the Accept record with the body, its SHA-256, and expiry and ttr from
 * delivery.expire and delivery.ttr. Returns rc_raft_propose()'s result. */
struct Ricochet__Envelope;
struct Ricochet__RecipientSpec;
int rc_node_propose_accept(rc_node *n, const char *id, struct Ricochet__Envelope *env,
                           struct Ricochet__RecipientSpec **rcpts, size_t nrcpts, const uint8_t *body, size_t len,
                           rc_propose_cb cb, void *data);

/* True when the node holds the body of message id (delivery waits for it). */
bool rc_node_has_body(rc_node *n, const char *id);

int rc_api_start(rc_node *n, char *err, size_t errlen);
int rc_smtp_start(rc_node *n, char *err, size_t errlen);
void rc_smtp_stop(rc_node *n, void (*cb)(void *), void *data);
void rc_smtp_free(rc_node *n);
void rc_api_stop(rc_node *n, void (*cb)(void *), void *data);

/* rc_dns.c: the responder fed from the cluster view (docs/DNS.md). */
int rc_dns_start(rc_node *n, char *err, size_t errlen);
void rc_dns_on_view(rc_node *n, const struct rc_view *v);
void rc_dns_stop(rc_node *n, void (*cb)(void *), void *data);

/* rc_health_probe.c: the leader's SMTP probe of every SMTP node. */
int rc_health_probe_new(rc_node *n);
void rc_health_probe_tick(rc_node *n);                 /* starts the probes not in flight */
int rc_health_probe_result(rc_node *n, size_t member); /* -1 unknown, 0 down, 1 up */
void rc_health_probe_reset(rc_node *n);                /* forget results (new leadership) */
void rc_health_probe_stop(rc_node *n, void (*cb)(void *), void *data);

/* rc_delivery.c: the delivery scheduler (leader only, docs/EGRESS.md). */
#define RC_INT_DNS_TEMPFAIL 170 /* internal code: MX lookup failed temporarily */
struct rc_delivery_stats {
    bool active;
    size_t queue;
    unsigned inflight_transactions, connections;
    uint64_t transactions, rcpt_attempts, connections_reused;
    uint64_t delivered, deferred, failed, undeliverable, expired, lost;
    uint64_t repeats, proposals_failed;
    uint64_t dsn_sent, dsn_failed;
    uint64_t tracked_copies, tracking_failed; /* recipients' copies rewritten / sent unchanged after an error */
};
int rc_delivery_start(rc_node *n, char *err, size_t errlen);
void rc_delivery_on_accept(rc_node *n, const struct rc_msg *m);
void rc_delivery_on_status(rc_node *n, const struct rc_msg *m, size_t rcpt, int old_status);
void rc_delivery_on_restore(rc_node *n);
/* Planned transfer: no new attempts; cb once those in flight ended (or
 * after delivery.transfer_wait). -1 if a quiesce is already running. */
int rc_delivery_quiesce(rc_node *n, void (*cb)(void *), void *data);
void rc_delivery_resume(rc_node *n); /* the transfer failed: deliver again */
void rc_delivery_get_stats(rc_node *n, struct rc_delivery_stats *out);
void rc_delivery_stop(rc_node *n, void (*cb)(void *), void *data);
void rc_delivery_free(rc_node *n);
void rc_delivery_count_dsn(rc_node *n, bool queued);

/* rc_dsn.c: delivery status notifications to senders (leader only). */
void rc_dsn_check(rc_node *n, const struct rc_msg *m, size_t rcpt); /* final or deferred: DSN owed? */
void rc_dsn_run(rc_node *n);    /* builds and proposes the DSNs owed */
void rc_dsn_forget(rc_node *n); /* leadership lost: the next leader rescans */
void rc_dsn_free(rc_node *n);

/* Requests only the leader can serve: true on the leader; elsewhere answers
 * 421 {"error": why, "leader": id|null, "leader_raft": addr|null} (rc_api.c). */
struct http_request;
bool rc_api_leader_or_421(rc_node *n, struct http_request *req, const char *why);

/* GET /v1/cluster/members, POST /v1/cluster/members/sync (rc_api_members.c). */
void rc_api_members_routes(rc_node *n);

/* GET /t/...: the tracking endpoint (rc_api_tracking.c, docs/TRACKING.md). */
void rc_api_tracking_routes(rc_node *n);

/* Records an engagement event (opened/clicked) of recipient what->rcpt of
 * message id once the recipient is delivered in this node's copy (catching
 * up with the leader first when it is not). With req, answers it as the
 * API does; without (a tracking hit, already answered), logs the result.
 * RC_ENOMEM: nothing started, req not answered. (rc_api.c) */
struct rc_engagement;
int rc_engagement_record(rc_node *n, const char *id, const struct rc_engagement *what, struct http_request *req);

/* Whether this node does the leader's own work now (delivery, webhooks): it
 * leads, its leadership is ready, and it is no witness (a witness that wins
 * an election hands leadership on at once). Fills *st. */
bool rc_node_does_leader_work(rc_node *n, struct rc_raft_status *st);

/* rc_webhooks.c: status changes POSTed to webhooks.url by the leader
 * (docs/WEBHOOKS.md). Every function is a no-op without webhooks.url. */
struct rc_webhooks_stats {
    bool configured, active;
    size_t recipients_pending; /* recipients with events not yet acknowledged */
    size_t in_flight;          /* events in the POST (or ack) under way */
    unsigned failures;         /* consecutive failed POSTs */
    uint64_t next_try_ms;      /* after a failure: when the next POST goes */
    uint64_t posts_ok, posts_failed, events_sent, recipients_dropped;
    long last_status;          /* HTTP status of the last POST (0: none or no answer) */
    uint64_t last_ok_ms;
    char last_error[256];
};
int rc_webhooks_start(rc_node *n, char *err, size_t errlen);
void rc_webhooks_on_change(rc_node *n, const struct rc_msg *m, size_t rcpt);
void rc_webhooks_on_restore(rc_node *n);
void rc_webhooks_get_stats(rc_node *n, struct rc_webhooks_stats *out);
void rc_webhooks_stop(rc_node *n, void (*cb)(void *), void *data);
void rc_webhooks_free(rc_node *n);

/* rc_api.c: one history entry as the API and the webhooks show it; a
 * string as JSON (NULL: null; bytes that are not UTF-8 repaired). */
struct rc_history;
json_t *rc_api_history_json(const struct rc_history *h);
json_t *rc_api_text(const char *s);

#endif
