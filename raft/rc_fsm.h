/* The replicated message-state store: the FSM that libraft drives.
 *
 * State (DESIGN §4): messages with their envelope and per-recipient status
 * history, the suppression list, the cluster view, the ids of recently
 * applied requests (so a retried proposal applies once), and a running
 * SHA-256 digest over every applied record (equal digests at equal applied
 * counts prove that two nodes applied the same records in the same order).
 *
 * Rules:
 *  * apply never fails: libraft 0.15 stalls applying on a non-zero return, so
 *    an undecodable entry or a forbidden status change is logged, counted and
 *    skipped;
 *  * bodies never stay in memory or go into snapshots: on apply of an Accept
 *    the on_accept hook stores the body (the node's spool), and the snapshot
 *    carries the digest only.
 * All functions run on the loop thread. */
#ifndef RC_FSM_H
#define RC_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct raft_fsm;

typedef struct rc_fsm rc_fsm;

enum rc_status {
    RC_ST_UNSPECIFIED = 0,
    RC_ST_QUEUED = 1,
    RC_ST_DEFERRED = 2,
    RC_ST_DELIVERED = 3,
    RC_ST_BOUNCED = 4,
    RC_ST_FAILED = 5,
    RC_ST_UNDELIVERABLE = 6,
    RC_ST_EXPIRED = 7,
    RC_ST_REJECTED = 8,
    RC_ST_DISCARDED = 9,
    RC_ST_COMPLAINED = 10,
    RC_ST_LOST_IN_SPACE = 11,
    RC_ST_OPENED = 20, /* engagement events: recorded, status unchanged */
    RC_ST_CLICKED = 21,
};

const char *rc_status_name(int status);
int rc_status_parse(const char *name); /* -1 when unknown */
bool rc_status_terminal(int status);
/* The allowed-transition table of DESIGN §5 (engagement events count as
 * transitions that keep the status). */
bool rc_status_transition_allowed(int from, int to);

struct rc_history {
    int status;
    uint64_t at_ms;
    unsigned smtp_code, internal_code;
    bool hard;
    uint64_t node;
    char *enhanced, *text, *reason, *remote_mta;
};

struct rc_rcpt {
    char *address, *notify, *orcpt;
    int status;
    unsigned attempts;
    uint64_t next_attempt_ms;
    /* Set by an AttemptStart, cleared by the next status change: an attempt
     * is (or was) under way without a recorded outcome. */
    uint64_t attempt_node, attempt_at_ms;
    char *reason;
    bool hard;
    struct rc_history *history;
    size_t n_history, cap_history;
    /* History entries the webhook receiver acknowledged (WebhookAck); the
     * ones after are still to be sent. */
    size_t webhook_sent;
};

struct rc_msg {
    char *id;
    char *mail_from, *ret, *envid, *body_type, *auth_user, *client_addr, *helo;
    bool smtputf8;
    struct rc_rcpt *rcpts;
    size_t n_rcpts;
    uint8_t body_sha256[32];
    uint64_t body_size;
    uint64_t received_ms, expire_at_ms, ttr_at_ms, accepted_by;
    struct rc_msg_blob *snap; /* rc_fsm.c's own: this message as snapshots encode it */
};

struct rc_suppression {
    char *address; /* lower-cased */
    char *reason, *source;
    uint64_t since_ms;
    unsigned soft_bounces;
    bool active; /* false: only a soft-bounce counter so far */
};

struct rc_view_node {
    uint64_t id;
    bool healthy, drained;
};

struct rc_view {
    uint64_t serial;
    uint64_t leader;
    char leader_site[32];
    struct rc_view_node nodes[16];
    size_t n_nodes;
};

struct rc_fsm_hooks {
    /* A message was accepted: store its body (durably before the next
     * snapshot). Must not fail the apply; report problems through logs. */
    void (*on_accept)(void *data, const struct rc_msg *msg, const uint8_t *body, size_t len);
    /* A recipient's status changed (or an engagement event was recorded). */
    void (*on_status)(void *data, const struct rc_msg *msg, size_t rcpt, int old_status);
    /* The cluster view changed. */
    void (*on_view)(void *data, const struct rc_view *view);
    /* A message leaves the state (retention): drop its body. */
    void (*on_forget)(void *data, const struct rc_msg *msg);
    /* The state was replaced by a snapshot (bodies may be missing locally). */
    void (*on_restore)(void *data);
    /* A snapshot is about to be taken: make every stored body durable.
     * Non-zero refuses the snapshot (libraft retries later). */
    int (*before_snapshot)(void *data);
};

struct rc_fsm_config {
    size_t dedup_capacity;      /* request ids remembered; default 100000 */
    unsigned soft_bounce_limit; /* consecutive soft bounces that suppress; default 5 */
    size_t bounce_notes_kept;   /* bounce notes kept (raft/rc_notes.h); default 100 */
};

int rc_fsm_new(rc_fsm **out, const struct rc_fsm_config *cfg,
               const struct rc_fsm_hooks *hooks, void *data);
void rc_fsm_free(rc_fsm *f);

/* The table handed to raft_init (version 2: snapshot + finalize). */
struct raft_fsm *rc_fsm_raft(rc_fsm *f);

/* Applies one entry payload (a serialized ricochet.Batch, unpadded). Used by
 * the raft apply callback and by tests. Never fails. */
void rc_fsm_apply_batch(rc_fsm *f, const uint8_t *payload, size_t len);

/* Snapshot of the whole state as a serialized ricochet.Snapshot (malloc'd). */
int rc_fsm_snapshot_encode(rc_fsm *f, uint8_t **out, size_t *len);
/* Drops every message's cached encoding (tests: the next snapshot encodes
 * each message afresh, and must come out byte for byte the same). */
void rc_fsm_snapshot_forget_cache(rc_fsm *f);
/* Replaces the state with a decoded snapshot; on error the state is kept. */
int rc_fsm_restore(rc_fsm *f, const uint8_t *payload, size_t len);

uint64_t rc_fsm_applied_records(const rc_fsm *f);
uint64_t rc_fsm_forgotten_messages(const rc_fsm *f); /* removed by retention since start */
uint64_t rc_fsm_skipped_records(const rc_fsm *f); /* duplicates, bad or forbidden */
void rc_fsm_digest_hex(const rc_fsm *f, char out[65]);
/* A record with this request id was applied (among the last
 * dedup_capacity ones). */
bool rc_fsm_request_applied(const rc_fsm *f, const uint8_t *id, size_t len);

const struct rc_msg *rc_fsm_message(const rc_fsm *f, const char *id);
size_t rc_fsm_message_count(const rc_fsm *f);
/* Iterate messages: pos starts at 0; returns NULL at the end. */
const struct rc_msg *rc_fsm_message_next(const rc_fsm *f, size_t *pos);

const struct rc_suppression *rc_fsm_suppression(const rc_fsm *f, const char *address);
/* Incoming bounces that changed nothing (raft/rc_notes.h). */
struct rc_notes;
const struct rc_notes *rc_fsm_notes(const rc_fsm *f);
const struct rc_suppression *rc_fsm_suppression_next(const rc_fsm *f, size_t *pos);

const struct rc_view *rc_fsm_view(const rc_fsm *f);

#endif
