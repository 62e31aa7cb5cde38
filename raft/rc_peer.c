/* The peer channel; see rc_peer.h and docs/PEER.md.
 *
 * Happy path: the lower id dials the higher id; once TCP is up both ends send
 * Hello{id, nonce, version}; on the other's Hello each end checks the id and
 * answers HelloAuth{id, mac}; when the other's MAC verifies the connection is
 * UP, the frame limit rises from pre_auth_max_frame to max_frame, and frames
 * flow both ways on that one connection.
 *
 * Failure modes: an id that is not a member (or that should not dial us), a
 * wrong MAC, an unsupported version, a frame other than Hello/HelloAuth before
 * authentication, a bad frame (zero, oversized, undecodable, truncated), or no
 * authentication within handshake_timeout_ms -> the connection is closed with
 * a WARN line naming the remote address and the reason. A refused connection
 * is shut down gracefully first so that our own HelloAuth reaches the other
 * side (both ends then log the bad MAC). The dialler redials with backoff.
 *
 * Memory: every connection and every peer's redial timer counts in
 * net->open_handles; the net is freed when it is closing and the count
 * reaches zero (always from a close callback or from rc_peer_net_close). */
#include "raft/rc_peer.h"

#include <arpa/inet.h>
#include <assert.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/base/rc_log.h"
#include "raft/rc_frame.h"

#define NONCE_LEN 32
#define MAC_LEN 32
#define PROTO_VERSION 1
#define MIN_SECRET 16
#define READ_BUF (64 * 1024)
static const char mac_label[] = "ricochet-peer-v1";

#define DEF_MAX_FRAME ((size_t)32 << 20)
#define DEF_PRE_AUTH_MAX_FRAME 1024
#define DEF_HANDSHAKE_MS 5000
#define DEF_QUEUE ((size_t)64 << 20)
#define DEF_RECONNECT_MIN_MS 100
#define DEF_RECONNECT_MAX_MS 1000
#define DEF_MAX_PENDING 64
#define DEF_KEEPALIVE_S 10
#define MAX_MAX_FRAME ((size_t)1 << 30) /* an encoded frame fits uv_buf_t's unsigned length */

/* Connection states and the moves allowed between them (STYLE.md §10). */
enum conn_state { CS_CONNECTING, CS_HELLO, CS_AUTH, CS_UP, CS_CLOSING, CS_NR };
#define BIT(s) (1u << (s))
static const struct {
    const char *name;
    unsigned allowed;
} conn_states[CS_NR] = {
    [CS_CONNECTING] = {"connecting", BIT(CS_HELLO) | BIT(CS_CLOSING)},
    [CS_HELLO] = {"wait_hello", BIT(CS_AUTH) | BIT(CS_CLOSING)},
    [CS_AUTH] = {"wait_auth", BIT(CS_UP) | BIT(CS_CLOSING)},
    [CS_UP] = {"up", BIT(CS_CLOSING)},
    [CS_CLOSING] = {"closing", 0},
};

struct peer;

struct conn {
    rc_peer_net *net;
    uv_tcp_t tcp;
    uv_timer_t timer; /* handshake timeout, then deferred close */
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    struct peer *peer; /* outbound: the peer dialled; inbound: set when UP */
    bool outbound, pending;
    enum conn_state st;
    uint64_t their_id;
    uint8_t my_nonce[NONCE_LEN], their_nonce[NONCE_LEN];
    struct rc_frame_decoder dec;
    size_t queued;
    int open_handles;
    const char *deferred_reason;
    char remote[48];
    struct conn *prev, *next;
    uint8_t rbuf[READ_BUF];
};

struct peer {
    uint64_t id;
    char addr[48];
    struct sockaddr_in sa;
    struct conn *conn; /* dialler: the outbound conn in any state; acceptor: the UP conn */
    bool up, dialler;
    unsigned backoff_ms;
    uv_timer_t redial;
    rc_peer_net *net;
    struct peer *next;
};

struct rc_peer_net {
    uv_loop_t *loop;
    struct rc_peer_config cfg;
    char *secret;
    size_t secret_len;
    struct rc_peer_callbacks cb;
    void *data;
    uv_tcp_t listener;
    struct sockaddr_in local; /* listen IP, port 0: source of our dials */
    struct peer *peers;
    struct conn *conns;
    unsigned n_pending;
    bool closing;
    int open_handles;
    void (*close_cb)(void *);
    void *close_data;
    struct rc_peer_stats stats;
};

struct write_req {
    uv_write_t req;
    struct conn *c;
    size_t len;
    uint8_t *buf;
};

const char *rc_peer_strerror(int err)
{
    switch (err) {
    case RC_PEER_OK: return "ok";
    case RC_PEER_ENOMEM: return "out of memory";
    case RC_PEER_EUNKNOWN: return "unknown peer";
    case RC_PEER_ENOTCONN: return "peer not connected";
    case RC_PEER_EQUEUE: return "send queue full";
    case RC_PEER_ETOOBIG: return "frame too big";
    case RC_PEER_EADDR: return "bad address (expected IPv4:port)";
    case RC_PEER_ELISTEN: return "cannot listen";
    case RC_PEER_ECLOSING: return "closing";
    case RC_PEER_EINVAL: return "invalid argument";
    }
    return "unknown error";
}

static int parse_addr(const char *s, struct sockaddr_in *sa)
{
    char host[INET_ADDRSTRLEN];
    if (s == NULL)
        return RC_PEER_EADDR;
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof host)
        return RC_PEER_EADDR;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || port < 1 || port > 65535)
        return RC_PEER_EADDR;
    struct in_addr ia;
    if (inet_pton(AF_INET, host, &ia) != 1 || uv_ip4_addr(host, (int)port, sa) != 0)
        return RC_PEER_EADDR;
    return 0;
}

static struct peer *peer_by_id(const rc_peer_net *net, uint64_t id)
{
    for (struct peer *p = net->peers; p; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

static void conn_move(struct conn *c, enum conn_state to)
{
    assert(conn_states[c->st].allowed & BIT(to));
    c->st = to;
}

/* ------------------------------------------------------------- closing */

static void net_unref(rc_peer_net *net)
{
    assert(net->open_handles > 0);
    if (--net->open_handles > 0 || !net->closing)
        return;
    void (*cb)(void *) = net->close_cb;
    void *data = net->close_data;
    OPENSSL_cleanse(net->secret, net->secret_len);
    free(net->secret);
    free(net);
    if (cb)
        cb(data);
}

static void listener_closed(uv_handle_t *h)
{
    net_unref(h->data);
}

static void peer_timer_closed(uv_handle_t *h)
{
    struct peer *p = h->data;
    rc_peer_net *net = p->net;
    free(p);
    net_unref(net);
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    rc_peer_net *net = c->net;
    rc_frame_decoder_free(&c->dec);
    free(c);
    net_unref(net);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    (void)status;
    struct conn *c = req->data;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
}

static void schedule_redial(struct peer *p, bool reset);

static void conn_log_close(struct conn *c, int level, const char *reason)
{
    char q[160];
    rc_log(level, "peer", "connection_closed remote=%s node=%llu direction=%s state=%s reason=%s", c->remote,
           (unsigned long long)c->their_id, c->outbound ? "out" : "in", conn_states[c->st].name,
           rc_log_quote(q, sizeof q, reason, strlen(reason)));
}

/* Closes c. reason NULL: quiet (normal end); level: of the log line. May
 * call on_peer_state(down), which may close the whole net. */
static void conn_close_lvl(struct conn *c, int level, const char *reason)
{
    if (c->st == CS_CLOSING)
        return;
    rc_peer_net *net = c->net;
    bool was_up = c->st == CS_UP;
    bool handshake = c->st == CS_HELLO || c->st == CS_AUTH;
    if (reason)
        conn_log_close(c, level, reason);
    conn_move(c, CS_CLOSING);
    if (c->pending) {
        c->pending = false;
        net->n_pending--;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        net->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;

    c->open_handles = 2;
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    /* During the handshake our few bytes (Hello, HelloAuth) are flushed
     * before the FIN, so the other side can see why it failed. */
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->shutdown_req.data = c;
    if (!(handshake && !net->closing &&
          uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, shutdown_cb) == 0))
        uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);

    struct peer *p = c->peer;
    if (p && p->conn == c) {
        p->conn = NULL;
        p->up = false;
        if (!net->closing) {
            if (p->dialler)
                schedule_redial(p, was_up);
            if (was_up && net->cb.on_peer_state)
                net->cb.on_peer_state(net, p->id, false, net->data);
        }
    }
}

static void refuse(struct conn *c, const char *reason)
{
    c->net->stats.protocol_errors++;
    conn_close_lvl(c, RC_LOG_WARN, reason);
}

static void refuse_auth(struct conn *c, const char *reason)
{
    c->net->stats.auth_failures++;
    conn_close_lvl(c, RC_LOG_WARN, reason);
}

static void deferred_close_cb(uv_timer_t *t)
{
    struct conn *c = t->data;
    conn_close_lvl(c, RC_LOG_WARN, c->deferred_reason ? c->deferred_reason : "write failed");
}

/* Closes c from the next loop iteration (for paths inside rc_peer_send,
 * which must not call back into the user). */
static void conn_close_later(struct conn *c, const char *reason)
{
    c->deferred_reason = reason;
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, deferred_close_cb, 0, 0);
}

/* ------------------------------------------------------------- writing */

static void write_cb(uv_write_t *req, int status)
{
    struct write_req *w = req->data;
    struct conn *c = w->c;
    c->queued -= w->len;
    free(w->buf);
    free(w);
    if (status < 0 && c->st != CS_CLOSING)
        conn_close_lvl(c, RC_LOG_WARN, uv_strerror(status));
}

static int conn_send(struct conn *c, const Ricochet__PeerFrame *frame, size_t max_frame)
{
    rc_peer_net *net = c->net;
    uint8_t *buf;
    size_t len;
    int rv = rc_frame_encode(frame, max_frame, &buf, &len);
    if (rv == RC_FRAME_ETOOBIG)
        return RC_PEER_ETOOBIG;
    if (rv == RC_FRAME_ENOMEM)
        return RC_PEER_ENOMEM;
    if (rv != RC_FRAME_OK)
        return RC_PEER_EINVAL;
    if (len > net->cfg.max_queue_bytes || c->queued > net->cfg.max_queue_bytes - len) {
        free(buf);
        net->stats.queue_full++;
        return RC_PEER_EQUEUE;
    }
    struct write_req *w = calloc(1, sizeof *w);
    if (w == NULL) {
        free(buf);
        return RC_PEER_ENOMEM;
    }
    w->req.data = w;
    w->c = c;
    w->len = len;
    w->buf = buf;
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
    if (rv != 0) {
        free(buf);
        free(w);
        conn_close_later(c, uv_strerror(rv));
        return RC_PEER_ENOTCONN;
    }
    c->queued += len;
    net->stats.frames_out++;
    return RC_PEER_OK;
}

/* ----------------------------------------------------------- handshake */

static void put_u64(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* mac = HMAC-SHA256(secret, label || dialler nonce || acceptor nonce ||
 *                   dialler id || acceptor id || direction)
 * direction: 'D' in the dialler's HelloAuth, 'A' in the acceptor's. */
static int compute_mac(const rc_peer_net *net, const struct conn *c, bool from_dialler, uint8_t out[MAC_LEN])
{
    uint8_t msg[sizeof mac_label - 1 + 2 * NONCE_LEN + 16 + 1];
    size_t o = 0;
    const uint8_t *dn = c->outbound ? c->my_nonce : c->their_nonce;
    const uint8_t *an = c->outbound ? c->their_nonce : c->my_nonce;
    uint64_t did = c->outbound ? net->cfg.self_id : c->their_id;
    uint64_t aid = c->outbound ? c->their_id : net->cfg.self_id;
    memcpy(msg + o, mac_label, sizeof mac_label - 1);
    o += sizeof mac_label - 1;
    memcpy(msg + o, dn, NONCE_LEN);
    o += NONCE_LEN;
    memcpy(msg + o, an, NONCE_LEN);
    o += NONCE_LEN;
    put_u64(msg + o, did);
    o += 8;
    put_u64(msg + o, aid);
    o += 8;
    msg[o++] = from_dialler ? 'D' : 'A';
    unsigned int mac_len = MAC_LEN;
    if (HMAC(EVP_sha256(), net->secret, (int)net->secret_len, msg, o, out, &mac_len) == NULL ||
        mac_len != MAC_LEN)
        return -1;
    return 0;
}

static void send_hello(struct conn *c)
{
    Ricochet__Hello h;
    ricochet__hello__init(&h);
    h.has_node_id = h.has_nonce = h.has_version = true;
    h.node_id = c->net->cfg.self_id;
    h.nonce.data = c->my_nonce;
    h.nonce.len = NONCE_LEN;
    h.version = PROTO_VERSION;
    Ricochet__PeerFrame f;
    ricochet__peer_frame__init(&f);
    f.kind_case = RICOCHET__PEER_FRAME__KIND_HELLO;
    f.hello = &h;
    conn_send(c, &f, c->net->cfg.pre_auth_max_frame);
}

static void on_hello(struct conn *c, const Ricochet__Hello *h)
{
    rc_peer_net *net = c->net;
    char why[128];
    if (c->st != CS_HELLO) {
        refuse(c, "unexpected hello");
        return;
    }
    if (!h->has_node_id || !h->has_nonce || h->nonce.len != NONCE_LEN || !h->has_version) {
        refuse(c, "malformed hello");
        return;
    }
    c->their_id = h->node_id;
    if (h->version != PROTO_VERSION) {
        snprintf(why, sizeof why, "unsupported version %u", (unsigned)h->version);
        refuse(c, why);
        return;
    }
    if (h->node_id == 0 || h->node_id == net->cfg.self_id || peer_by_id(net, h->node_id) == NULL) {
        snprintf(why, sizeof why, "node id %llu is not a member", (unsigned long long)h->node_id);
        refuse_auth(c, why);
        return;
    }
    if (c->outbound && h->node_id != c->peer->id) {
        snprintf(why, sizeof why, "answered as node %llu, dialled node %llu", (unsigned long long)h->node_id,
                 (unsigned long long)c->peer->id);
        refuse_auth(c, why);
        return;
    }
    if (!c->outbound && h->node_id > net->cfg.self_id) {
        snprintf(why, sizeof why, "node %llu dialled us, but the lower id dials", (unsigned long long)h->node_id);
        refuse_auth(c, why);
        return;
    }
    memcpy(c->their_nonce, h->nonce.data, NONCE_LEN);

    uint8_t mac[MAC_LEN];
    if (compute_mac(net, c, c->outbound, mac) != 0) {
        refuse(c, "HMAC failed");
        return;
    }
    Ricochet__HelloAuth a;
    ricochet__hello_auth__init(&a);
    a.has_node_id = a.has_mac = true;
    a.node_id = net->cfg.self_id;
    a.mac.data = mac;
    a.mac.len = MAC_LEN;
    Ricochet__PeerFrame f;
    ricochet__peer_frame__init(&f);
    f.kind_case = RICOCHET__PEER_FRAME__KIND_AUTH;
    f.auth = &a;
    conn_move(c, CS_AUTH);
    conn_send(c, &f, net->cfg.pre_auth_max_frame);
    OPENSSL_cleanse(mac, sizeof mac);
}

static void on_auth(struct conn *c, const Ricochet__HelloAuth *a)
{
    rc_peer_net *net = c->net;
    if (c->st != CS_AUTH) {
        refuse(c, "unexpected hello_auth");
        return;
    }
    if (!a->has_node_id || a->node_id != c->their_id || !a->has_mac || a->mac.len != MAC_LEN) {
        refuse_auth(c, "malformed hello_auth");
        return;
    }
    uint8_t expect[MAC_LEN];
    if (compute_mac(net, c, !c->outbound, expect) != 0) {
        refuse(c, "HMAC failed");
        return;
    }
    int diff = CRYPTO_memcmp(expect, a->mac.data, MAC_LEN);
    OPENSSL_cleanse(expect, sizeof expect);
    if (diff != 0) {
        refuse_auth(c, "bad MAC (wrong cluster secret?)");
        return;
    }
    struct peer *p = peer_by_id(net, c->their_id);
    conn_move(c, CS_UP);
    if (c->pending) {
        c->pending = false;
        net->n_pending--;
    }
    uv_timer_stop(&c->timer);
    rc_frame_decoder_set_max(&c->dec, net->cfg.max_frame);
    rc_info("peer", "authenticated remote=%s node=%llu direction=%s", c->remote,
            (unsigned long long)c->their_id, c->outbound ? "out" : "in");
    if (p->conn && p->conn != c) {
        /* the dialler reconnected before we noticed its old connection die */
        conn_close_lvl(p->conn, RC_LOG_INFO, "replaced by a newer connection");
        if (net->closing || c->st != CS_UP)
            return;
    }
    p->conn = c;
    c->peer = p;
    p->up = true;
    p->backoff_ms = 0;
    if (net->cb.on_peer_state)
        net->cb.on_peer_state(net, p->id, true, net->data);
}

static void handshake_timeout_cb(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->st == CS_CONNECTING && c->outbound) {
        /* the dialled address does not answer: not a hostile peer */
        conn_close_lvl(c, RC_LOG_INFO, "connect timeout");
        return;
    }
    refuse_auth(c, "handshake timeout");
}

/* ------------------------------------------------------------- reading */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = h->data;
    buf->base = (char *)c->rbuf;
    buf->len = sizeof c->rbuf;
}

static void on_eof(struct conn *c)
{
    int rv = rc_frame_decoder_finish(&c->dec);
    if (rv < 0) {
        refuse(c, rc_frame_strerror(rv));
        return;
    }
    if (c->st == CS_UP)
        conn_close_lvl(c, RC_LOG_INFO, "closed by the peer");
    else
        conn_close_lvl(c, RC_LOG_WARN, "closed by the peer during the handshake");
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (c->st == CS_CLOSING)
        return;
    if (nread == UV_EOF) {
        on_eof(c);
        return;
    }
    if (nread < 0) {
        conn_close_lvl(c, c->st == CS_UP ? RC_LOG_INFO : RC_LOG_WARN, uv_strerror((int)nread));
        return;
    }
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t len = (size_t)nread;
    rc_peer_net *net = c->net;
    while (len > 0 && c->st != CS_CLOSING) {
        Ricochet__PeerFrame *f = NULL;
        int rv = rc_frame_decode(&c->dec, &p, &len, &f);
        if (rv == RC_FRAME_MORE)
            break;
        if (rv != RC_FRAME_OK) {
            refuse(c, rc_frame_strerror(rv));
            break;
        }
        net->stats.frames_in++;
        switch (f->kind_case) {
        case RICOCHET__PEER_FRAME__KIND_HELLO: on_hello(c, f->hello); break;
        case RICOCHET__PEER_FRAME__KIND_AUTH: on_auth(c, f->auth); break;
        default:
            if (c->st != CS_UP)
                refuse(c, "frame before authentication");
            else if (net->cb.on_frame)
                net->cb.on_frame(net, c->their_id, f, net->data);
            break;
        }
        rc_frame_free(&c->dec, f);
    }
}

/* --------------------------------------------------------- connections */

static struct conn *conn_new(rc_peer_net *net, bool outbound)
{
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if (RAND_bytes(c->my_nonce, NONCE_LEN) != 1) {
        rc_error("peer", "rand_failed");
        free(c);
        return NULL;
    }
    c->net = net;
    c->outbound = outbound;
    c->st = outbound ? CS_CONNECTING : CS_HELLO;
    rc_frame_decoder_init(&c->dec, net->cfg.pre_auth_max_frame, NULL);
    uv_tcp_init(net->loop, &c->tcp);
    uv_timer_init(net->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->next = net->conns;
    if (net->conns)
        net->conns->prev = c;
    net->conns = c;
    net->open_handles++;
    snprintf(c->remote, sizeof c->remote, "-");
    uv_timer_start(&c->timer, handshake_timeout_cb, net->cfg.handshake_timeout_ms, 0);
    return c;
}

/* TCP is up: start reading and send our Hello. */
static void conn_started(struct conn *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, c->net->cfg.keepalive_s);
    int rv = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (rv != 0) {
        conn_close_lvl(c, RC_LOG_WARN, uv_strerror(rv));
        return;
    }
    send_hello(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    rc_peer_net *net = server->data;
    if (net->closing)
        return;
    if (status < 0) {
        rc_warn("peer", "accept_failed error=%s", uv_strerror(status));
        return;
    }
    struct conn *c = conn_new(net, false);
    if (c == NULL)
        return;
    c->pending = true;
    net->n_pending++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close_lvl(c, RC_LOG_WARN, "accept failed");
        return;
    }
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET) {
        char ip[INET_ADDRSTRLEN];
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        uv_ip4_name(sin, ip, sizeof ip);
        snprintf(c->remote, sizeof c->remote, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
    }
    if (net->n_pending > net->cfg.max_pending) {
        net->stats.refused_pending++;
        conn_close_lvl(c, RC_LOG_WARN, "too many unauthenticated connections");
        return;
    }
    conn_started(c);
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (c->st == CS_CLOSING)
        return;
    if (status < 0) {
        rc_debug("peer", "connect_failed node=%llu addr=%s error=%s", (unsigned long long)c->peer->id,
                 c->peer->addr, uv_strerror(status));
        conn_close_lvl(c, RC_LOG_DEBUG, NULL);
        return;
    }
    conn_move(c, CS_HELLO);
    conn_started(c);
}

static void dial(struct peer *p)
{
    rc_peer_net *net = p->net;
    if (net->closing || p->conn)
        return;
    struct conn *c = conn_new(net, true);
    if (c == NULL) {
        schedule_redial(p, false);
        return;
    }
    c->peer = p;
    c->their_id = p->id;
    snprintf(c->remote, sizeof c->remote, "%s", p->addr);
    p->conn = c;
    c->connect_req.data = c;
    /* dial from our listen IP, so peers see a stable source address */
    int rv = uv_tcp_bind(&c->tcp, (const struct sockaddr *)&net->local, 0);
    if (rv == 0)
        rv = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&p->sa, connect_cb);
    if (rv != 0)
        conn_close_lvl(c, RC_LOG_WARN, uv_strerror(rv));
}

static void redial_cb(uv_timer_t *t)
{
    dial(t->data);
}

static void schedule_redial(struct peer *p, bool reset)
{
    const struct rc_peer_config *cfg = &p->net->cfg;
    if (reset || p->backoff_ms == 0)
        p->backoff_ms = cfg->reconnect_min_ms;
    else
        p->backoff_ms = p->backoff_ms > cfg->reconnect_max_ms / 2 ? cfg->reconnect_max_ms : p->backoff_ms * 2;
    if (p->backoff_ms > cfg->reconnect_max_ms)
        p->backoff_ms = cfg->reconnect_max_ms;
    uv_timer_start(&p->redial, redial_cb, p->backoff_ms, 0);
}

/* --------------------------------------------------------------- public */

static int apply_defaults(struct rc_peer_config *c)
{
    if (!c->max_frame) c->max_frame = DEF_MAX_FRAME;
    if (!c->pre_auth_max_frame) c->pre_auth_max_frame = DEF_PRE_AUTH_MAX_FRAME;
    if (!c->handshake_timeout_ms) c->handshake_timeout_ms = DEF_HANDSHAKE_MS;
    if (!c->max_queue_bytes) c->max_queue_bytes = DEF_QUEUE;
    if (!c->reconnect_min_ms) c->reconnect_min_ms = DEF_RECONNECT_MIN_MS;
    if (!c->reconnect_max_ms) c->reconnect_max_ms = DEF_RECONNECT_MAX_MS;
    if (!c->max_pending) c->max_pending = DEF_MAX_PENDING;
    if (!c->keepalive_s) c->keepalive_s = DEF_KEEPALIVE_S;
    if (c->self_id == 0 || c->max_frame > MAX_MAX_FRAME || c->pre_auth_max_frame > c->max_frame ||
        c->reconnect_min_ms > c->reconnect_max_ms)
        return RC_PEER_EINVAL;
    return RC_PEER_OK;
}

int rc_peer_net_start(rc_peer_net **out, uv_loop_t *loop, const struct rc_peer_config *cfg,
                      const struct rc_peer_callbacks *cb, void *data)
{
    struct sockaddr_in sa;
    int rv;
    if (out == NULL || loop == NULL || cfg == NULL)
        return RC_PEER_EINVAL;
    if (cfg->secret == NULL || strlen(cfg->secret) < MIN_SECRET)
        return RC_PEER_EINVAL;
    if (parse_addr(cfg->listen_addr, &sa) != 0)
        return RC_PEER_EADDR;
    rc_peer_net *net = calloc(1, sizeof *net);
    if (net == NULL)
        return RC_PEER_ENOMEM;
    net->cfg = *cfg;
    net->local = sa;
    net->local.sin_port = 0;
    if ((rv = apply_defaults(&net->cfg)) != RC_PEER_OK)
        goto err_after_alloc;
    net->loop = loop;
    net->secret_len = strlen(cfg->secret);
    if ((net->secret = strdup(cfg->secret)) == NULL) {
        rv = RC_PEER_ENOMEM;
        goto err_after_alloc;
    }
    net->cfg.listen_addr = NULL;
    net->cfg.secret = NULL;
    if (cb)
        net->cb = *cb;
    net->data = data;
    uv_tcp_init(loop, &net->listener);
    net->listener.data = net;
    net->open_handles = 1; /* the listener */
    rv = uv_tcp_bind(&net->listener, (const struct sockaddr *)&sa, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&net->listener, 128, on_connection);
    if (rv != 0) {
        rc_error("peer", "listen_failed addr=%s error=%s", cfg->listen_addr, uv_strerror(rv));
        goto err_after_listener;
    }
    rc_info("peer", "listening addr=%s node=%llu", cfg->listen_addr, (unsigned long long)cfg->self_id);
    *out = net;
    return RC_PEER_OK;

err_after_listener:
    net->closing = true; /* freed in listener_closed */
    uv_close((uv_handle_t *)&net->listener, listener_closed);
    return RC_PEER_ELISTEN;
err_after_alloc:
    free(net);
    return rv;
}

int rc_peer_net_add(rc_peer_net *net, uint64_t id, const char *addr)
{
    if (net->closing)
        return RC_PEER_ECLOSING;
    if (id == 0 || id == net->cfg.self_id || peer_by_id(net, id))
        return RC_PEER_EUNKNOWN;
    struct sockaddr_in sa;
    if (parse_addr(addr, &sa) != 0)
        return RC_PEER_EADDR;
    struct peer *p = calloc(1, sizeof *p);
    if (p == NULL)
        return RC_PEER_ENOMEM;
    p->id = id;
    p->net = net;
    p->sa = sa;
    p->dialler = net->cfg.self_id < id;
    snprintf(p->addr, sizeof p->addr, "%s", addr);
    uv_timer_init(net->loop, &p->redial);
    p->redial.data = p;
    net->open_handles++;
    p->next = net->peers;
    net->peers = p;
    if (p->dialler)
        dial(p);
    return RC_PEER_OK;
}

int rc_peer_send(rc_peer_net *net, uint64_t id, const Ricochet__PeerFrame *frame)
{
    if (net->closing)
        return RC_PEER_ECLOSING;
    if (frame == NULL || frame->kind_case == RICOCHET__PEER_FRAME__KIND_HELLO ||
        frame->kind_case == RICOCHET__PEER_FRAME__KIND_AUTH)
        return RC_PEER_EINVAL;
    struct peer *p = peer_by_id(net, id);
    if (p == NULL)
        return RC_PEER_EUNKNOWN;
    if (!p->up || p->conn == NULL || p->conn->st != CS_UP || p->conn->deferred_reason)
        return RC_PEER_ENOTCONN;
    return conn_send(p->conn, frame, net->cfg.max_frame);
}

bool rc_peer_is_up(const rc_peer_net *net, uint64_t id)
{
    const struct peer *p = peer_by_id(net, id);
    return p && p->up;
}

void rc_peer_net_close(rc_peer_net *net, void (*cb)(void *), void *data)
{
    if (net->closing)
        return;
    net->closing = true;
    net->close_cb = cb;
    net->close_data = data;
    net->open_handles++; /* held until the end of this function */
    while (net->conns)
        conn_close_lvl(net->conns, RC_LOG_DEBUG, NULL);
    while (net->peers) {
        struct peer *p = net->peers;
        net->peers = p->next;
        uv_close((uv_handle_t *)&p->redial, peer_timer_closed);
    }
    uv_close((uv_handle_t *)&net->listener, listener_closed);
    net_unref(net);
}

void rc_peer_get_stats(const rc_peer_net *net, struct rc_peer_stats *st)
{
    *st = net->stats;
}
