/* The replicated core: libraft (uv io + TCP transport with TCP_NODELAY),
 * the FSM, batched proposals, leadership tracking and transfer.
 *
 * propose() works on any node: on the leader records are batched into raft
 * entries; on a follower they go to the forwarder (rc_forward.h), which sends
 * them to the leader over the peer channel and reports the commit result.
 *
 * Errors are retryable unless noted. RC_ELOST and RC_ETIMEDOUT mean the
 * outcome is unknown: the record may still commit. Every record carries a
 * request id, and the FSM applies a request id once, so a retry of the same
 * record never applies twice. */
#ifndef RC_RAFT_H
#define RC_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "raft/rc_fsm.h"

typedef struct rc_raft rc_raft;
struct Ricochet__Record;

enum rc_err {
    RC_OK = 0,
    RC_ENOTLEADER = -1001, /* no leader known, or the leader refused: retry */
    RC_ELOST = -1002,      /* leadership lost while in flight: outcome unknown */
    RC_ETIMEDOUT = -1003,  /* no commit within the propose timeout: outcome unknown */
    RC_ESHUTDOWN = -1004,  /* the node is stopping */
    RC_ETOOBIG = -1005,    /* record larger than the entry limit (permanent) */
    RC_ENOSPACE = -1006,   /* data directory below its free-space floor */
    RC_ENOMEM = -1007,
    RC_EIO = -1008,
    RC_EINVAL = -1009,     /* bad argument (permanent) */
    RC_EBUSY = -1010,      /* a transfer or change is already in progress */
    RC_EUNREACHABLE = -1011, /* a member a change needs did not answer (retry) */
};
const char *rc_strerror(int err);
/* Wall-clock milliseconds since the epoch (timestamps in records). */
uint64_t rc_now_ms(void);
bool rc_err_retryable(int err);

#define RC_MAX_MEMBERS 16

enum rc_role { RC_ROLE_VOTER = 1, RC_ROLE_STANDBY = 0, RC_ROLE_SPARE = 2 };

struct rc_member {
    uint64_t id;
    char site[32];
    char raft_addr[64]; /* IPv4 literal:port (libraft's requirement) */
    int role;           /* enum rc_role */
    bool witness;       /* votes, never keeps leadership */
};

struct rc_raft_config {
    uint64_t self_id;
    const char *data_dir;
    struct rc_member members[RC_MAX_MEMBERS];
    size_t n_members;
    unsigned election_timeout_ms;  /* default 1000; the witness uses 2x */
    unsigned heartbeat_timeout_ms; /* default 100 */
    bool pre_vote;                 /* default on (off gives ~3x slower failover) */
    bool join;                     /* do not bootstrap: the leader adds this node */
    unsigned snapshot_threshold;   /* entries between snapshots, default 8192 */
    unsigned snapshot_trailing;    /* entries kept after a snapshot, default 2048 */
    size_t max_entry_bytes;        /* batch size cap, default 1 MiB */
    size_t max_record_bytes;       /* one record, default 64 MiB */
    unsigned max_inflight_entries; /* raft_apply calls in flight, default 64 */
    unsigned propose_timeout_ms;   /* default 10000 */
    unsigned tick_ms;              /* state poll period, default 50 */
    uint64_t min_free_bytes;       /* refuse proposals below this, default 256 MiB */
    bool auto_recovery;            /* libraft truncating a corrupt open segment; default off */
    struct rc_fsm_config fsm;
};

/* The forwarder sends records to the leader on behalf of a follower. It
 * calls done(done_data, status) exactly once, or returns an error now. */
typedef void (*rc_propose_cb)(void *data, int status);
struct rc_forwarder {
    int (*forward)(void *fwd_data, uint64_t leader, const struct Ricochet__Record *rec,
                   rc_propose_cb done, void *done_data);
    void *data;
};

struct rc_raft_status {
    int state; /* RAFT_FOLLOWER, RAFT_CANDIDATE, RAFT_LEADER, RAFT_UNAVAILABLE */
    uint64_t leader;
    uint64_t term;
    uint64_t commit_index, applied_index, last_index;
    bool leader_ready;         /* leader whose barrier has committed */
    uint64_t ms_since_contact; /* time since a leader was last known */
    bool disk_low;
    uint64_t free_bytes;
    uint64_t proposals_ok, proposals_failed, entries_applied;
};

int rc_raft_start(rc_raft **out, uv_loop_t *loop, const struct rc_raft_config *cfg,
                  const struct rc_fsm_hooks *hooks, void *hook_data,
                  char *errmsg, size_t errlen);
void rc_raft_set_forwarder(rc_raft *r, const struct rc_forwarder *fwd);

/* Proposes one record (copied; a request id is added when it has none).
 * Returns an error now, or calls cb exactly once later. */
int rc_raft_propose(rc_raft *r, const struct Ricochet__Record *rec, rc_propose_cb cb, void *data);

/* Leader only: calls cb once every entry before it has been applied
 * (linearizable reads). */
int rc_raft_barrier(rc_raft *r, rc_propose_cb cb, void *data);
/* On any voter: cb(RC_OK) once this node has applied everything the leader
 * had committed when the call was made (a Noop goes through the leader and
 * is awaited in the local state: a read barrier for a follower whose copy
 * may trail). Returns an error now, or calls cb exactly once later with
 * RC_OK or the proposal's error (RC_ESHUTDOWN when the node closes). */
int rc_raft_catch_up(rc_raft *r, rc_propose_cb cb, void *data);

/* Leader only: hands leadership to node `to` (0: the most up-to-date voter).
 * cb gets RC_OK when this node is no longer the leader. */
int rc_raft_transfer(rc_raft *r, uint64_t to, rc_propose_cb cb, void *data);

/* The raft configuration as libraft holds it now (the latest configuration
 * entry of the log), which differs from the member table of the
 * configuration file until someone changes the membership (rc_raft_change).
 * Returns the number of servers written (at most max). */
struct rc_raft_server {
    uint64_t id;
    char raft_addr[64];
    int role; /* enum rc_role */
};
size_t rc_raft_servers(rc_raft *r, struct rc_raft_server *out, size_t max);

/* Leader only: one membership change at a time (RC_EBUSY while one, or a
 * transfer, is pending). ADD makes id a spare at raft_addr; ASSIGN gives it
 * a role (libraft catches a new voter up before the change is logged);
 * REMOVE takes it out. cb gets RC_OK once the change is committed; a
 * leader that removed or demoted itself then steps down (libraft).
 * RC_EINVAL: unknown or duplicate id, address or role; RC_EUNREACHABLE: a
 * new voter could not be caught up. */
enum rc_change { RC_CHANGE_ADD, RC_CHANGE_ASSIGN, RC_CHANGE_REMOVE };
int rc_raft_change(rc_raft *r, enum rc_change what, uint64_t id, const char *raft_addr, int role,
                   rc_propose_cb cb, void *data);

void rc_raft_get_status(rc_raft *r, struct rc_raft_status *st);

/* Leader only: 1 if node id answered raft messages within the last election
 * timeout, 0 if not, -1 when unknown (not the leader, or not a member). */
int rc_raft_peer_contact(rc_raft *r, uint64_t id);
rc_fsm *rc_raft_fsm(rc_raft *r);
const struct rc_raft_config *rc_raft_config(const rc_raft *r);
const struct rc_member *rc_raft_member(const rc_raft *r, uint64_t id);
uint64_t rc_raft_self(const rc_raft *r);

/* Closes libraft (pending proposals fail with RC_ESHUTDOWN), then calls cb. */
void rc_raft_close(rc_raft *r, void (*cb)(void *data), void *data);

/* Offline forced recovery (ricochetctl recover): rewrites the configuration
 * stored in data_dir to exactly the given members. The node must be stopped. */
int rc_raft_recover(const char *data_dir, uint64_t self_id, const char *self_addr,
                    const struct rc_member *members, size_t n, char *errmsg, size_t errlen);

#endif
