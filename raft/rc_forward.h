/* Proposal forwarding over the peer channel (rc_peer.h).
 *
 * A follower's rc_raft_propose() hands the record to this module, which
 * sends it to the leader in a ProposeRequest and calls the proposer back
 * with the leader's ProposeResponse. On the leader, requests from peers are
 * proposed locally and answered after commit. Outcomes:
 *   leader answered OK           -> RC_OK
 *   leader answered NOT_LEADER   -> RC_ENOTLEADER (never proposed: retry)
 *   leader lost / conn dropped   -> RC_ELOST (outcome unknown: the request
 *                                   id makes a retry apply at most once)
 *   no answer in propose_timeout -> RC_ETIMEDOUT (outcome unknown)
 * The same channel serves message bodies to nodes that restored a snapshot
 * without them. */
#ifndef RC_FORWARD_H
#define RC_FORWARD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "raft/rc_raft.h"

struct rc_forwarder_state;

struct rc_forward_peer {
    uint64_t id;
    char addr[64]; /* IPv4 literal:port of its peer channel */
};

struct rc_forward_config {
    uint64_t self_id;
    char listen[64];
    const char *secret;
    size_t max_frame;
    unsigned propose_timeout_ms;
    struct rc_forward_peer peers[RC_MAX_MEMBERS];
    size_t n_peers;
    /* Serves BodyRequest frames: returns a malloc'd body or -1. */
    int (*get_body)(void *data, const char *id, const uint8_t sha256[32], uint8_t **body, size_t *len);
    void *get_body_data;
};

int rc_forward_start(struct rc_forwarder_state **out, uv_loop_t *loop, rc_raft *raft,
                     const struct rc_forward_config *cfg, char *err, size_t errlen);
/* Fails every pending forward with RC_ESHUTDOWN, closes the channel, then
 * calls cb (may be NULL). */
void rc_forward_stop(struct rc_forwarder_state *f, void (*cb)(void *), void *data);

/* Asks peers, one after the other, for the body of message id; verifies
 * it against sha256. cb gets RC_OK with the body (borrowed for the call),
 * or RC_ETIMEDOUT / RC_ENOTLEADER-like errors when no peer had it. */
typedef void (*rc_body_cb)(void *data, int status, const uint8_t *body, size_t len);
int rc_forward_fetch_body(struct rc_forwarder_state *f, const char *id, const uint8_t sha256[32],
                          rc_body_cb cb, void *data);

struct rc_forward_stats {
    uint64_t forwarded, answered_ok, answered_err, timeouts, lost, served;
    uint64_t bodies_fetched, bodies_missing, bodies_corrupt;
};
void rc_forward_get_stats(const struct rc_forwarder_state *f, struct rc_forward_stats *st);

#endif
