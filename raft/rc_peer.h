/* The peer channel: authenticated, length-framed protobuf over TCP between
 * the nodes of one cluster (separate from libraft's own transport). Used to
 * forward proposals to the leader and to fetch message bodies.
 *
 * Wire format and handshake: docs/PEER.md. Each node sends on the
 * connection it opened itself (one outbound connection per peer, redialled
 * with backoff) and receives on the connections peers opened to it. */
#ifndef RC_PEER_H
#define RC_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proto/ricochet.pb-c.h"

typedef struct rc_peer_net rc_peer_net;

enum rc_peer_err {
    RC_PEER_OK = 0,
    RC_PEER_ENOMEM = -2001,
    RC_PEER_EUNKNOWN = -2002,  /* no such peer id */
    RC_PEER_ENOTCONN = -2003,  /* not (yet) connected and authenticated */
    RC_PEER_EQUEUE = -2004,    /* send queue full */
    RC_PEER_ETOOBIG = -2005,   /* frame larger than max_frame */
    RC_PEER_EADDR = -2006,     /* bad address */
    RC_PEER_ELISTEN = -2007,   /* cannot listen */
    RC_PEER_ECLOSING = -2008,
};
const char *rc_peer_strerror(int err);

struct rc_peer_config {
    uint64_t self_id;
    const char *listen_addr;       /* IPv4 literal:port */
    const char *secret;            /* cluster secret, never sent */
    size_t max_frame;              /* default 64 MiB */
    unsigned handshake_timeout_ms; /* default 5000 */
    size_t max_queue_bytes;        /* per peer, default 256 MiB */
    unsigned reconnect_min_ms;     /* default 100, doubling to reconnect_max_ms */
    unsigned reconnect_max_ms;     /* default 5000 */
};

struct rc_peer_callbacks {
    void (*on_frame)(rc_peer_net *net, uint64_t from, const Ricochet__PeerFrame *frame, void *data);
    void (*on_peer_state)(rc_peer_net *net, uint64_t id, bool up, void *data);
};

int rc_peer_net_start(rc_peer_net **out, uv_loop_t *loop, const struct rc_peer_config *cfg,
                      const struct rc_peer_callbacks *cb, void *data);
int rc_peer_net_add(rc_peer_net *net, uint64_t id, const char *addr);
/* Encodes and queues a frame for peer id (on our outbound connection). */
int rc_peer_send(rc_peer_net *net, uint64_t id, const Ricochet__PeerFrame *frame);
bool rc_peer_is_up(const rc_peer_net *net, uint64_t id);
/* Closes every handle; cb runs once after the last close callback. */
void rc_peer_net_close(rc_peer_net *net, void (*cb)(void *data), void *data);

struct rc_peer_stats {
    uint64_t frames_in, frames_out, auth_failures, protocol_errors;
};
void rc_peer_get_stats(const rc_peer_net *net, struct rc_peer_stats *st);

#endif
