/* The peer channel. Happy path: every node dials each peer once (outbound
 * connection), both ends send Hello{id, nonce}, then HelloAuth{mac}; the
 * connection is up when the other side's MAC verifies. Frames then flow.
 *
 * Failure modes: a peer not in the member list, a wrong MAC, a frame before
 * authentication other than Hello/HelloAuth, garbage, an oversized frame, or
 * no handshake within the timeout -> the connection is closed with a WARN
 * line naming the remote address and the reason. Outbound connections are
 * redialled with exponential backoff. */
#include "raft/rc_peer.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "node/base/rc_log.h"
#include "raft/rc_frame.h"

#define NONCE_LEN 32
#define MAC_LEN 32
#define PRE_AUTH_MAX_FRAME 1024
#define PROTO_VERSION 1
#define MAX_PEERS 16
static const char mac_label[] = "ricochet-peer-v1";

struct peer;

struct conn {
    rc_peer_net *net;
    uv_tcp_t tcp;
    uv_timer_t hs_timer;
    uv_connect_t connect_req;
    struct peer *peer; /* outbound: the peer dialled */
    bool outbound, got_hello, authed, closing;
    uint64_t their_id;
    uint8_t my_nonce[NONCE_LEN], their_nonce[NONCE_LEN];
    struct rc_frame_decoder dec;
    size_t queued;
    int open_handles;
    char remote[64];
    struct conn *prev, *next;
};

struct peer {
    uint64_t id;
    char addr[64];
    struct sockaddr_in sa;
    struct conn *out;
    bool up;
    unsigned backoff_ms;
    uv_timer_t redial;
    rc_peer_net *net;
};

struct rc_peer_net {
    uv_loop_t *loop;
    struct rc_peer_config cfg;
    char *secret;
    struct rc_peer_callbacks cb;
    void *data;
    uv_tcp_t listener;
    struct peer peers[MAX_PEERS];
    size_t n_peers;
    struct conn *conns;
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
    }
    return "unknown error";
}

static int parse_addr(const char *s, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof host)
        return RC_PEER_EADDR;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535 || uv_ip4_addr(host, (int)port, sa) != 0)
        return RC_PEER_EADDR;
    return 0;
}

static struct peer *peer_by_id(rc_peer_net *net, uint64_t id)
{
    for (size_t i = 0; i < net->n_peers; i++)
        if (net->peers[i].id == id)
            return &net->peers[i];
    return NULL;
}

/* ------------------------------------------------------------- closing */

static void net_handle_closed(rc_peer_net *net)
{
    if (--net->open_handles > 0)
        return;
    void (*cb)(void *) = net->close_cb;
    void *data = net->close_data;
    free(net->secret);
    free(net);
    if (cb)
        cb(data);
}

static void net_handle_close_cb(uv_handle_t *h)
{
    net_handle_closed(h->data);
}

static void schedule_redial(struct peer *p, rc_peer_net *net);

static void conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    rc_peer_net *net = c->net;
    rc_frame_decoder_free(&c->dec);
    free(c);
    if (net->closing)
        net_handle_closed(net);
}

static void conn_close(struct conn *c, const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    rc_peer_net *net = c->net;
    if (reason)
        rc_warn("peer", "connection_closed remote=%s node=%llu direction=%s reason=\"%s\"", c->remote,
                (unsigned long long)c->their_id, c->outbound ? "out" : "in", reason);
    if (c->prev)
        c->prev->next = c->next;
    else
        net->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (net->closing)
        net->open_handles++; /* the net waits for this connection */
    c->open_handles = 2;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->hs_timer, conn_handle_closed);
    if (c->outbound && c->peer && c->peer->out == c) {
        struct peer *p = c->peer;
        p->out = NULL;
        bool was_up = p->up;
        p->up = false;
        if (!net->closing) {
            schedule_redial(p, net);
            if (was_up && net->cb.on_peer_state)
                net->cb.on_peer_state(net, p->id, false, net->data);
        }
    }
}

static void refuse(struct conn *c, const char *reason)
{
    c->net->stats.protocol_errors++;
    conn_close(c, reason);
}

/* ------------------------------------------------------------- writing */

static void write_cb(uv_write_t *req, int status)
{
    struct write_req *w = req->data;
    struct conn *c = w->c;
    c->queued -= w->len;
    free(w->buf);
    free(w);
    if (status < 0 && status != UV_ECANCELED && !c->closing)
        conn_close(c, uv_strerror(status));
}

static int conn_send(struct conn *c, const Ricochet__PeerFrame *frame)
{
    rc_peer_net *net = c->net;
    uint8_t *buf;
    size_t len;
    int rv = rc_frame_encode(frame, net->cfg.max_frame, &buf, &len);
    if (rv == RC_FRAME_ETOOBIG)
        return RC_PEER_ETOOBIG;
    if (rv != RC_FRAME_OK)
        return RC_PEER_ENOMEM;
    if (c->queued + len > net->cfg.max_queue_bytes) {
        free(buf);
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
        conn_close(c, uv_strerror(rv));
        return RC_PEER_ENOTCONN;
    }
    c->queued += len;
    net->stats.frames_out++;
    return RC_PEER_OK;
}

/* ----------------------------------------------------------- handshake */

static void compute_mac(rc_peer_net *net, uint64_t sender, uint64_t receiver,
                        const uint8_t receiver_nonce[NONCE_LEN], const uint8_t sender_nonce[NONCE_LEN],
                        uint8_t out[MAC_LEN])
{
    uint8_t msg[sizeof mac_label - 1 + 16 + 2 * NONCE_LEN];
    size_t o = 0;
    memcpy(msg, mac_label, sizeof mac_label - 1);
    o += sizeof mac_label - 1;
    for (int i = 7; i >= 0; i--)
        msg[o++] = (uint8_t)(sender >> (8 * i));
    for (int i = 7; i >= 0; i--)
        msg[o++] = (uint8_t)(receiver >> (8 * i));
    memcpy(msg + o, receiver_nonce, NONCE_LEN);
    o += NONCE_LEN;
    memcpy(msg + o, sender_nonce, NONCE_LEN);
    o += NONCE_LEN;
    unsigned int mac_len = MAC_LEN;
    HMAC(EVP_sha256(), net->secret, (int)strlen(net->secret), msg, o, out, &mac_len);
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
    conn_send(c, &f);
}

static void on_hello(struct conn *c, const Ricochet__Hello *h)
{
    rc_peer_net *net = c->net;
    if (c->got_hello) {
        refuse(c, "second hello");
        return;
    }
    if (!h->has_node_id || h->nonce.len != NONCE_LEN) {
        refuse(c, "malformed hello");
        return;
    }
    if (h->node_id == net->cfg.self_id || peer_by_id(net, h->node_id) == NULL) {
        net->stats.auth_failures++;
        char why[80];
        snprintf(why, sizeof why, "node id %llu is not a member", (unsigned long long)h->node_id);
        conn_close(c, why);
        return;
    }
    if (c->outbound && h->node_id != c->peer->id) {
        net->stats.auth_failures++;
        conn_close(c, "answered with another node id than the one dialled");
        return;
    }
    c->got_hello = true;
    c->their_id = h->node_id;
    memcpy(c->their_nonce, h->nonce.data, NONCE_LEN);

    uint8_t mac[MAC_LEN];
    compute_mac(net, net->cfg.self_id, c->their_id, c->their_nonce, c->my_nonce, mac);
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
    conn_send(c, &f);
}

static void on_auth(struct conn *c, const Ricochet__HelloAuth *a)
{
    rc_peer_net *net = c->net;
    if (!c->got_hello || a->node_id != c->their_id || a->mac.len != MAC_LEN) {
        net->stats.auth_failures++;
        conn_close(c, "authentication out of order or malformed");
        return;
    }
    uint8_t expect[MAC_LEN];
    compute_mac(net, c->their_id, net->cfg.self_id, c->my_nonce, c->their_nonce, expect);
    if (CRYPTO_memcmp(expect, a->mac.data, MAC_LEN) != 0) {
        net->stats.auth_failures++;
        conn_close(c, "bad MAC (wrong cluster secret?)");
        return;
    }
    c->authed = true;
    c->dec.max_frame = net->cfg.max_frame;
    uv_timer_stop(&c->hs_timer);
    rc_info("peer", "authenticated remote=%s node=%llu direction=%s", c->remote,
            (unsigned long long)c->their_id, c->outbound ? "out" : "in");
    if (c->outbound) {
        c->peer->up = true;
        c->peer->backoff_ms = 0;
        if (net->cb.on_peer_state)
            net->cb.on_peer_state(net, c->peer->id, true, net->data);
    }
}

static void hs_timeout_cb(uv_timer_t *t)
{
    struct conn *c = t->data;
    c->net->stats.auth_failures++;
    conn_close(c, "handshake timeout");
}

/* ------------------------------------------------------------- reading */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (nread < 0) {
        free(buf->base);
        conn_close(c, nread == UV_EOF ? NULL : uv_strerror((int)nread));
        if (nread == UV_EOF)
            rc_info("peer", "connection_ended remote=%s node=%llu", c->remote, (unsigned long long)c->their_id);
        return;
    }
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t len = (size_t)nread;
    while (len > 0 && !c->closing) {
        Ricochet__PeerFrame *f = NULL;
        int rv = rc_frame_decode(&c->dec, &p, &len, &f);
        if (rv == RC_FRAME_MORE)
            break;
        if (rv != RC_FRAME_OK) {
            refuse(c, rc_frame_strerror(rv));
            break;
        }
        c->net->stats.frames_in++;
        if (f->kind_case == RICOCHET__PEER_FRAME__KIND_HELLO)
            on_hello(c, f->hello);
        else if (f->kind_case == RICOCHET__PEER_FRAME__KIND_AUTH)
            on_auth(c, f->auth);
        else if (!c->authed)
            refuse(c, "frame before authentication");
        else if (c->net->cb.on_frame) {
            rc_peer_net *net = c->net;
            net->cb.on_frame(net, c->their_id, f, net->data);
        }
        ricochet__peer_frame__free_unpacked(f, NULL);
    }
    free(buf->base);
}

/* --------------------------------------------------------- connections */

static struct conn *conn_new(rc_peer_net *net, bool outbound)
{
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->net = net;
    c->outbound = outbound;
    rc_frame_decoder_init(&c->dec, PRE_AUTH_MAX_FRAME);
    if (RAND_bytes(c->my_nonce, NONCE_LEN) != 1) {
        free(c);
        return NULL;
    }
    uv_tcp_init(net->loop, &c->tcp);
    uv_timer_init(net->loop, &c->hs_timer);
    c->tcp.data = c->hs_timer.data = c;
    c->next = net->conns;
    if (net->conns)
        net->conns->prev = c;
    net->conns = c;
    snprintf(c->remote, sizeof c->remote, "-");
    return c;
}

static void conn_started(struct conn *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    uv_timer_start(&c->hs_timer, hs_timeout_cb, c->net->cfg.handshake_timeout_ms, 0);
    int rv = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (rv != 0) {
        conn_close(c, uv_strerror(rv));
        return;
    }
    send_hello(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    rc_peer_net *net = server->data;
    if (status < 0 || net->closing)
        return;
    struct conn *c = conn_new(net, false);
    if (c == NULL)
        return;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c, "accept failed");
        return;
    }
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET) {
        char ip[INET_ADDRSTRLEN];
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        uv_ip4_name(sin, ip, sizeof ip);
        snprintf(c->remote, sizeof c->remote, "%s:%u", ip, ntohs(sin->sin_port));
    }
    conn_started(c);
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (c->closing)
        return;
    if (status < 0) {
        rc_debug("peer", "connect_failed node=%llu addr=%s error=%s", (unsigned long long)c->peer->id,
                 c->peer->addr, uv_strerror(status));
        conn_close(c, NULL);
        return;
    }
    conn_started(c);
}

static void dial(struct peer *p, rc_peer_net *net)
{
    if (net->closing || p->out)
        return;
    struct conn *c = conn_new(net, true);
    if (c == NULL) {
        schedule_redial(p, net);
        return;
    }
    c->peer = p;
    c->their_id = p->id;
    snprintf(c->remote, sizeof c->remote, "%s", p->addr);
    p->out = c;
    c->connect_req.data = c;
    int rv = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&p->sa, connect_cb);
    if (rv != 0)
        conn_close(c, uv_strerror(rv));
}

static void redial_cb(uv_timer_t *t)
{
    struct peer *p = t->data;
    dial(p, p->net);
}

static void schedule_redial(struct peer *p, rc_peer_net *net)
{
    unsigned min = net->cfg.reconnect_min_ms, max = net->cfg.reconnect_max_ms;
    p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : min;
    if (p->backoff_ms > max)
        p->backoff_ms = max;
    uv_timer_start(&p->redial, redial_cb, p->backoff_ms, 0);
}

/* --------------------------------------------------------------- public */

int rc_peer_net_start(rc_peer_net **out, uv_loop_t *loop, const struct rc_peer_config *cfg,
                      const struct rc_peer_callbacks *cb, void *data)
{
    struct sockaddr_in sa;
    if (parse_addr(cfg->listen_addr, &sa) != 0)
        return RC_PEER_EADDR;
    rc_peer_net *net = calloc(1, sizeof *net);
    if (net == NULL)
        return RC_PEER_ENOMEM;
    net->loop = loop;
    net->cfg = *cfg;
    if (!net->cfg.max_frame) net->cfg.max_frame = 64u << 20;
    if (!net->cfg.handshake_timeout_ms) net->cfg.handshake_timeout_ms = 5000;
    if (!net->cfg.max_queue_bytes) net->cfg.max_queue_bytes = 256u << 20;
    if (!net->cfg.reconnect_min_ms) net->cfg.reconnect_min_ms = 100;
    if (!net->cfg.reconnect_max_ms) net->cfg.reconnect_max_ms = 5000;
    net->secret = strdup(cfg->secret ? cfg->secret : "");
    net->cfg.listen_addr = NULL;
    net->cfg.secret = NULL;
    if (cb)
        net->cb = *cb;
    net->data = data;
    if (net->secret == NULL) {
        free(net);
        return RC_PEER_ENOMEM;
    }
    uv_tcp_init(loop, &net->listener);
    net->listener.data = net;
    int rv = uv_tcp_bind(&net->listener, (const struct sockaddr *)&sa, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&net->listener, 128, on_connection);
    if (rv != 0) {
        rc_error("peer", "listen_failed addr=%s error=%s", cfg->listen_addr, uv_strerror(rv));
        net->open_handles = 1;
        uv_close((uv_handle_t *)&net->listener, net_handle_close_cb);
        return RC_PEER_ELISTEN; /* freed in the close callback */
    }
    rc_info("peer", "listening addr=%s", cfg->listen_addr);
    *out = net;
    return RC_PEER_OK;
}

int rc_peer_net_add(rc_peer_net *net, uint64_t id, const char *addr)
{
    if (net->closing)
        return RC_PEER_ECLOSING;
    if (peer_by_id(net, id) || net->n_peers == MAX_PEERS || id == net->cfg.self_id)
        return RC_PEER_EUNKNOWN;
    struct peer *p = &net->peers[net->n_peers];
    memset(p, 0, sizeof *p);
    if (parse_addr(addr, &p->sa) != 0)
        return RC_PEER_EADDR;
    p->id = id;
    p->net = net;
    snprintf(p->addr, sizeof p->addr, "%s", addr);
    uv_timer_init(net->loop, &p->redial);
    p->redial.data = p;
    net->n_peers++;
    dial(p, net);
    return RC_PEER_OK;
}

int rc_peer_send(rc_peer_net *net, uint64_t id, const Ricochet__PeerFrame *frame)
{
    if (net->closing)
        return RC_PEER_ECLOSING;
    struct peer *p = peer_by_id(net, id);
    if (p == NULL)
        return RC_PEER_EUNKNOWN;
    if (p->up && p->out && !p->out->closing)
        return conn_send(p->out, frame);
    /* Our own connection is not up yet: answer on one the peer opened. */
    for (struct conn *c = net->conns; c; c = c->next)
        if (!c->outbound && c->authed && !c->closing && c->their_id == id)
            return conn_send(c, frame);
    return RC_PEER_ENOTCONN;
}

bool rc_peer_is_up(const rc_peer_net *net, uint64_t id)
{
    for (size_t i = 0; i < net->n_peers; i++)
        if (net->peers[i].id == id)
            return net->peers[i].up;
    return false;
}

void rc_peer_net_close(rc_peer_net *net, void (*cb)(void *), void *data)
{
    if (net->closing)
        return;
    net->closing = true;
    net->close_cb = cb;
    net->close_data = data;
    net->open_handles = 1; /* held until the end of this function */
    while (net->conns)
        conn_close(net->conns, NULL);
    for (size_t i = 0; i < net->n_peers; i++) {
        net->open_handles++;
        uv_close((uv_handle_t *)&net->peers[i].redial, net_handle_close_cb);
        net->peers[i].redial.data = net;
    }
    net->open_handles++;
    uv_close((uv_handle_t *)&net->listener, net_handle_close_cb);
    net_handle_closed(net);
}

void rc_peer_get_stats(const rc_peer_net *net, struct rc_peer_stats *st)
{
    *st = net->stats;
}
