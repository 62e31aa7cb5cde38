/* The peer channel: authenticated, length-framed protobuf over TCP between
 * the nodes of one cluster, on its own port (separate from libraft's
 * transport). node/ uses it to forward proposals to the leader and to fetch
 * message bodies (raft/rc_forward.c). Wire format, handshake, limits and
 * errors: docs/PEER.md.
 *
 * Connections: ONE TCP connection per pair of nodes, used in both
 * directions. The node with the lower id dials (and redials with backoff);
 * the node with the higher id only accepts. A peer is "up" while that
 * connection is authenticated; rc_peer_send() writes on it, whichever side
 * opened it. If the dialler reconnects while the acceptor still holds an
 * older connection, the newer authenticated one replaces it (down, then up).
 *
 * Callbacks run on the loop thread. The net may be closed from inside any
 * callback; rc_peer_send() may be called from inside any callback. */
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
    RC_PEER_EUNKNOWN = -2002,  /* no such peer id (or a duplicate/own id in rc_peer_net_add) */
    RC_PEER_ENOTCONN = -2003,  /* not (yet) connected and authenticated: retry later */
    RC_PEER_EQUEUE = -2004,    /* send queue full: retry later */
    RC_PEER_ETOOBIG = -2005,   /* frame larger than max_frame */
    RC_PEER_EADDR = -2006,     /* bad address (IPv4 literal:port expected) */
    RC_PEER_ELISTEN = -2007,   /* cannot bind/listen */
    RC_PEER_ECLOSING = -2008,  /* rc_peer_net_close was called */
    RC_PEER_EINVAL = -2009,    /* bad config or frame (no kind set, ...) */
};
const char *rc_peer_strerror(int err);

/* Zero in a numeric field means "default". */
struct rc_peer_config {
    uint64_t self_id;              /* non-zero */
    const char *listen_addr;       /* IPv4 literal:port */
    const char *secret;            /* cluster secret, >= 16 bytes, never sent; copied */
    size_t max_frame;              /* largest frame body after auth; default 32 MiB, at most 1 GiB */
    size_t pre_auth_max_frame;     /* largest frame before auth; default 1 KiB */
    unsigned handshake_timeout_ms; /* connect + Hello + HelloAuth; default 5000 */
    size_t max_queue_bytes;        /* per peer, encoded bytes not yet written; default 64 MiB */
    unsigned reconnect_min_ms;     /* first redial delay; default 100 */
    unsigned reconnect_max_ms;     /* delay doubles up to this; default 1000 */
    unsigned max_pending;          /* inbound connections not yet authenticated; default 64 */
    unsigned keepalive_s;          /* TCP keepalive idle time; default 10 */
};

struct rc_peer_callbacks {
    /* A frame from an authenticated peer (never Hello/HelloAuth). The frame
     * is borrowed for the duration of the call. */
    void (*on_frame)(rc_peer_net *net, uint64_t from, const Ricochet__PeerFrame *frame, void *data);
    /* The connection to peer id was authenticated (up) or lost (down).
     * Frames sent before a "down" may or may not have arrived. */
    void (*on_peer_state)(rc_peer_net *net, uint64_t id, bool up, void *data);
};

/* Binds and listens. On failure returns a negative rc_peer_err and *out is
 * untouched (memory is released in a close callback: keep running the loop). */
int rc_peer_net_start(rc_peer_net **out, uv_loop_t *loop, const struct rc_peer_config *cfg,
                      const struct rc_peer_callbacks *cb, void *data);
/* Adds a member; dials it at once when self_id < id. */
int rc_peer_net_add(rc_peer_net *net, uint64_t id, const char *addr);
/* Encodes frame and queues it on the connection with peer id. Returns 0, or
 * RC_PEER_EUNKNOWN / ENOTCONN / EQUEUE / ETOOBIG / EINVAL / ECLOSING / ENOMEM
 * (the frame was not queued: nothing of it reaches the peer). Never calls a
 * callback synchronously. Frames to one peer arrive in the order sent. */
int rc_peer_send(rc_peer_net *net, uint64_t id, const Ricochet__PeerFrame *frame);
bool rc_peer_is_up(const rc_peer_net *net, uint64_t id);
/* Closes every handle; cb (may be NULL) runs once, after the last close
 * callback, when all memory is released. No callback of the net runs after
 * this call returns. */
void rc_peer_net_close(rc_peer_net *net, void (*cb)(void *data), void *data);

struct rc_peer_stats {
    uint64_t frames_in, frames_out;
    uint64_t auth_failures;   /* unknown id, wrong MAC, handshake timeout, wrong direction */
    uint64_t protocol_errors; /* bad frames, unexpected frames */
    uint64_t queue_full;      /* rc_peer_send refused with EQUEUE */
    uint64_t refused_pending; /* inbound connections over max_pending */
};
void rc_peer_get_stats(const rc_peer_net *net, struct rc_peer_stats *st);

#endif
