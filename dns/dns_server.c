/* libuv UDP and TCP listeners around the answer builder.
 *
 * Happy path, UDP: a datagram lands in the server's receive buffer, RRL
 * decides pass/slip/drop for the client's prefix, dns_server_answer()
 * writes the response into the send buffer. Responses to the datagrams of
 * one recvmmsg(2) batch are sent together with one sendmmsg(2) on the
 * socket (the system call per datagram was most of the server's time); a
 * single datagram goes out with uv_udp_try_send() at once. Nothing is
 * queued, nothing allocated. TCP: each connection reads
 * into its own buffer, answers every complete length-prefixed message in
 * order (pipelining), queues one write per answer; an idle timer closes it.
 *
 * Failure modes: a UDP send that would block is dropped (counted); a TCP
 * message shorter than a header, a read error, the idle timeout closes the
 * connection; EOF or tcp_max_queries answered close it once the queued
 * answers are written (FIN first, then the rest of the input is discarded
 * until the client's EOF or the idle timeout); too many unsent bytes
 * pause reading until the writes drain; connections above tcp_max_clients
 * are accepted and closed at once. Every handle is freed in its close_cb;
 * the server is freed after the last one. */
#define _GNU_SOURCE /* sendmmsg */
#include "dns/dns_server_internal.h"
#include "node/base/rc_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>

#define MSG_MAX 65535
#define UDP_BATCH 16 /* datagrams per recvmmsg(2) call */
#define DNS_UDP_RESPONSE_MAX 4096 /* largest UDP response (edns_udp_size is at most 4096) */

typedef struct tconn tconn;

struct dns_server {
    uv_loop_t *loop;
    struct dns_server_config cfg;
    uv_udp_t udp;
    uv_tcp_t tcp;
    int handles;           /* udp + tcp still open */
    dns_zone *zone;
    int servfail;
    dns_rrl *rrl;
    struct dns__cache cache;
    struct dns_server_stats st;
    tconn *conns;
    unsigned n_conns;
    int closing;
    void (*closed_cb)(void *);
    void *closed_arg;
    char addr[80];
    uint8_t obuf[MSG_MAX];
    uint8_t rbuf[UDP_BATCH * 65536]; /* libuv cuts it into 64 KiB slots */
    /* responses to one recvmmsg batch, sent with one sendmmsg */
    struct {
        struct sockaddr_storage addr;
        socklen_t addrlen;
        size_t len;
        uint8_t data[DNS_UDP_RESPONSE_MAX];
    } out[UDP_BATCH];
    size_t n_out;
};

struct tconn {
    dns_server *s;
    tconn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t sreq;
    int handles;
    int closing;
    int draining;          /* FIN sent; unread input is discarded until EOF */
    int paused;
    int done;              /* tcp_max_queries reached: close after the writes */
    unsigned queries;
    size_t pending, writes;
    size_t in_len;
    uint8_t in[2 + MSG_MAX];
};

struct twrite {
    uv_write_t req;
    tconn *c;
    size_t len;
    uint8_t data[];
};

const char *dns_server_strerror(int err)
{
    switch (err) {
    case DNS_SERVER_OK: return "ok";
    case DNS_SERVER_ENOMEM: return "out of memory";
    case DNS_SERVER_EINVAL: return "invalid argument";
    case DNS_SERVER_EVIEW: return "invalid view";
    case DNS_SERVER_ELISTEN: return "cannot listen";
    default: return "unknown error";
    }
}

static void count_rcode(dns_server *s, const struct dns_answer_info *info)
{
    switch (info->rcode) {
    case LDNS_RCODE_NOERROR: s->st.noerror++; break;
    case LDNS_RCODE_NXDOMAIN: s->st.nxdomain++; break;
    case LDNS_RCODE_REFUSED: s->st.refused++; break;
    case LDNS_RCODE_SERVFAIL: s->st.servfail++; break;
    case LDNS_RCODE_FORMERR: s->st.formerr++; break;
    case LDNS_RCODE_NOTIMPL: s->st.notimp++; break;
    default: break;
    }
    if (info->truncated)
        s->st.truncated++;
}

static int answer(dns_server *s, const uint8_t *q, size_t qlen, int tcp, int truncate, size_t *out_len)
{
    struct dns_answer_opts o = {
        .tcp = tcp, .servfail = s->servfail, .edns_udp_size = s->cfg.edns_udp_size, .truncate = truncate,
    };
    struct dns_answer_info info;
    s->st.queries++;
    int act = dns__answer(s->zone, &o, q, qlen, s->obuf, sizeof s->obuf, out_len, &info, &s->cache);
    if (act != DNS_ANSWER_SEND) {
        s->st.dropped++;
        return 0;
    }
    count_rcode(s, &info);
    s->st.responses++;
    return 1;
}

static void maybe_free(dns_server *s)
{
    if (!s->closing || s->handles > 0 || s->conns != NULL)
        return;
    void (*cb)(void *) = s->closed_cb;
    void *arg = s->closed_arg;
    dns_zone_free(s->zone);
    dns_rrl_free(s->rrl);
    dns__cache_free(&s->cache);
    free(s);
    if (cb != NULL)
        cb(arg);
}

/* ---- UDP ---- */

static void udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    dns_server *s = h->data;
    buf->base = (char *)s->rbuf;
    buf->len = sizeof s->rbuf;
}

static void udp_flush(dns_server *s)
{
    size_t k = s->n_out;
    s->n_out = 0;
    if (k == 0)
        return;
    uv_os_fd_t fd;
    size_t sent = 0;
    if (uv_fileno((uv_handle_t *)&s->udp, &fd) == 0) {
        struct mmsghdr m[UDP_BATCH];
        struct iovec iov[UDP_BATCH];
        memset(m, 0, sizeof m);
        for (size_t i = 0; i < k; i++) {
            iov[i].iov_base = s->out[i].data;
            iov[i].iov_len = s->out[i].len;
            m[i].msg_hdr.msg_name = &s->out[i].addr;
            m[i].msg_hdr.msg_namelen = s->out[i].addrlen;
            m[i].msg_hdr.msg_iov = &iov[i];
            m[i].msg_hdr.msg_iovlen = 1;
        }
        while (sent < k) {
            int r = sendmmsg(fd, m + sent, (unsigned)(k - sent), MSG_DONTWAIT);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            sent += (size_t)r;
        }
    }
    if (sent < k) { /* would block (or failed): dropped, as a single send would be */
        s->st.dropped += k - sent;
        rc_debug("dns", "udp_send_failed count=%zu err=%s", k - sent, strerror(errno));
    }
}

static void udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                     unsigned flags)
{
    dns_server *s = h->data;
    if (flags & UV_UDP_MMSG_FREE) { /* end of a recvmmsg batch */
        udp_flush(s);
        return;
    }
    if (nread <= 0 || addr == NULL || s->closing || (flags & UV_UDP_PARTIAL))
        return;
    int truncate = 0;
    if (s->rrl != NULL) {
        int v = dns_rrl_check(s->rrl, addr, uv_now(s->loop));
        if (v == DNS_RRL_DROP) {
            s->st.queries++;
            s->st.rrl_dropped++;
            s->st.dropped++;
            return;
        }
        if (v == DNS_RRL_SLIP) {
            s->st.rrl_slipped++;
            truncate = 1;
        }
    }
    size_t n = 0;
    if (!answer(s, (const uint8_t *)buf->base, (size_t)nread, 0, truncate, &n))
        return;
    if ((flags & UV_UDP_MMSG_CHUNK) && n <= DNS_UDP_RESPONSE_MAX && s->n_out < UDP_BATCH) {
        socklen_t alen = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
        memcpy(&s->out[s->n_out].addr, addr, alen);
        s->out[s->n_out].addrlen = alen;
        memcpy(s->out[s->n_out].data, s->obuf, n);
        s->out[s->n_out].len = n;
        if (++s->n_out == UDP_BATCH)
            udp_flush(s);
        return;
    }
    uv_buf_t out = uv_buf_init((char *)s->obuf, (unsigned)n);
    int rv = uv_udp_try_send(&s->udp, &out, 1, addr);
    if (rv < 0) {
        s->st.dropped++;
        rc_debug("dns", "udp_send_failed err=%s", uv_err_name(rv));
    }
}

/* ---- TCP ---- */

static void conn_handle_closed(uv_handle_t *h)
{
    tconn *c = h->data;
    if (--c->handles > 0)
        return;
    dns_server *s = c->s;
    if (c->prev) c->prev->next = c->next; else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->n_conns--;
    free(c);
    maybe_free(s);
}

static void conn_close(tconn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void conn_idle(uv_timer_t *t)
{
    tconn *c = t->data;
    rc_debug("dns", "tcp_idle_timeout");
    conn_close(c);
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    tconn *c = h->data;
    buf->base = (char *)c->in + c->in_len;
    buf->len = sizeof c->in - c->in_len;
}

static void conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void conn_shutdown_done(uv_shutdown_t *req, int status)
{
    tconn *c = req->data;
    if (status < 0 && !c->closing)
        conn_close(c);
}

/* Every answer is written: send FIN, then read and discard whatever the
 * client still sends until its EOF (or the idle timeout), so that closing
 * never meets unread input (which would reset the connection and could
 * destroy answers the client has not read yet). */
static void conn_finish(tconn *c)
{
    if (c->closing || c->draining)
        return;
    c->draining = 1;
    c->in_len = 0;
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, conn_shutdown_done) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read) != 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, conn_idle, c->s->cfg.tcp_idle_ms, 0);
}

static void conn_write_done(uv_write_t *req, int status)
{
    struct twrite *w = req->data;
    tconn *c = w->c;
    c->pending -= w->len;
    c->writes--;
    free(w);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->done && c->writes == 0) {
        conn_finish(c);
        return;
    }
    if (c->paused && c->pending <= c->s->cfg.tcp_max_pending / 2) {
        c->paused = 0;
        if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read) != 0)
            conn_close(c);
    }
}

/* Answers every complete message in the buffer, in order. */
static void conn_process(tconn *c)
{
    dns_server *s = c->s;
    size_t off = 0;
    while (!c->closing && !c->done && c->in_len - off >= 2) {
        size_t mlen = (size_t)c->in[off] << 8 | c->in[off + 1];
        if (mlen < 12) {
            conn_close(c);
            return;
        }
        if (c->in_len - off < 2 + mlen)
            break;
        size_t n = 0;
        if (answer(s, c->in + off + 2, mlen, 1, 0, &n)) {
            struct twrite *w = malloc(sizeof *w + 2 + n);
            if (w == NULL) {
                conn_close(c);
                return;
            }
            w->c = c;
            w->len = 2 + n;
            w->req.data = w;
            w->data[0] = (uint8_t)(n >> 8);
            w->data[1] = (uint8_t)n;
            memcpy(w->data + 2, s->obuf, n);
            uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
            if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_write_done) != 0) {
                free(w);
                conn_close(c);
                return;
            }
            c->pending += w->len;
            c->writes++;
        }
        off += 2 + mlen;
        if (++c->queries >= s->cfg.tcp_max_queries)
            c->done = 1;
    }
    if (off > 0 && !c->closing) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    if (c->closing)
        return;
    if (c->done) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        if (c->writes == 0)
            conn_finish(c);
    } else if (c->pending > s->cfg.tcp_max_pending && !c->paused) {
        c->paused = 1;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

static void conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    tconn *c = st->data;
    (void)buf;
    if (c->closing)
        return;
    if (c->draining) {
        c->in_len = 0; /* discarded */
        if (nread < 0)
            conn_close(c);
        return;
    }
    if (nread < 0) {
        /* EOF after pipelined queries (a half-close): answer them first */
        if (nread == UV_EOF && c->writes > 0) {
            c->done = 1;
            uv_read_stop(st);
        } else {
            conn_close(c);
        }
        return;
    }
    if (nread == 0)
        return;
    c->in_len += (size_t)nread;
    uv_timer_start(&c->timer, conn_idle, c->s->cfg.tcp_idle_ms, 0);
    conn_process(c);
}

static void reject_closed(uv_handle_t *h) { free(h); }

static void tcp_accept(uv_stream_t *ls, int status)
{
    dns_server *s = ls->data;
    if (status < 0 || s->closing)
        return;
    if (s->n_conns >= s->cfg.tcp_max_clients) {
        uv_tcp_t *t = malloc(sizeof *t);
        if (t == NULL)
            return;
        if (uv_tcp_init(s->loop, t) != 0) {
            free(t);
            return;
        }
        uv_accept(ls, (uv_stream_t *)t);
        uv_close((uv_handle_t *)t, reject_closed);
        s->st.tcp_rejected++;
        rc_debug("dns", "tcp_reject conns=%u max=%u", s->n_conns, s->cfg.tcp_max_clients);
        return;
    }
    tconn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    c->s = s;
    if (uv_tcp_init(s->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    c->tcp.data = c;
    c->timer.data = c;
    uv_timer_init(s->loop, &c->timer);
    c->handles = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    s->st.tcp_accepted++;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read) != 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, conn_idle, s->cfg.tcp_idle_ms, 0);
    rc_debug("dns", "tcp_accept conns=%u", s->n_conns);
}

/* ---- life cycle ---- */

static int parse_listen(const char *spec, struct sockaddr_storage *ss)
{
    char host[64];
    const char *colon;
    if (spec == NULL)
        return -1;
    if (spec[0] == '[') {
        const char *end = strchr(spec, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - spec - 1) >= sizeof host)
            return -1;
        memcpy(host, spec + 1, (size_t)(end - spec - 1));
        host[end - spec - 1] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(spec, ':');
        if (colon == NULL || (size_t)(colon - spec) >= sizeof host)
            return -1;
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = '\0';
    }
    char *endp;
    long port = strtol(colon + 1, &endp, 10);
    if (*endp != '\0' || colon[1] == '\0' || port < 0 || port > 65535)
        return -1;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return -1;
}

static void handle_closed(uv_handle_t *h)
{
    dns_server *s = h->data;
    s->handles--;
    maybe_free(s);
}

int dns_server_new(dns_server **out, uv_loop_t *loop, const struct dns_server_config *cfg,
                   char *errmsg, size_t errmsg_size)
{
    struct sockaddr_storage ss;
    int rv;
    if (cfg == NULL || parse_listen(cfg->listen, &ss) != 0) {
        snprintf(errmsg, errmsg_size, "dns.listen: expected IP:PORT, got \"%s\"",
                 cfg && cfg->listen ? cfg->listen : "(null)");
        return DNS_SERVER_EINVAL;
    }
    dns_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(errmsg, errmsg_size, "out of memory");
        return DNS_SERVER_ENOMEM;
    }
    s->loop = loop;
    s->cfg = *cfg;
    if (s->cfg.edns_udp_size < 512)
        s->cfg.edns_udp_size = 1232;
    if (s->cfg.tcp_max_clients == 0)
        s->cfg.tcp_max_clients = 128;
    if (s->cfg.tcp_idle_ms == 0)
        s->cfg.tcp_idle_ms = 10000;
    if (s->cfg.tcp_max_queries == 0)
        s->cfg.tcp_max_queries = 1000;
    if (s->cfg.tcp_max_pending == 0)
        s->cfg.tcp_max_pending = 65536;
    if (s->cfg.answer_cache_entries == 0)
        s->cfg.answer_cache_entries = 1024;
    if (dns__cache_init(&s->cache, s->cfg.answer_cache_disable ? 0 : s->cfg.answer_cache_entries) != 0) {
        snprintf(errmsg, errmsg_size, "out of memory");
        free(s);
        return DNS_SERVER_ENOMEM;
    }
    s->cfg.listen = NULL; /* not kept */
    if (!cfg->rrl_disable && dns_rrl_new(&s->rrl, &cfg->rrl) != DNS_SERVER_OK) {
        snprintf(errmsg, errmsg_size, "out of memory");
        rv = DNS_SERVER_ENOMEM;
        goto err_after_alloc;
    }
    if ((rv = uv_udp_init_ex(loop, &s->udp, ss.ss_family | UV_UDP_RECVMMSG)) != 0) {
        snprintf(errmsg, errmsg_size, "udp init: %s", uv_strerror(rv));
        rv = DNS_SERVER_ELISTEN;
        goto err_after_rrl;
    }
    s->udp.data = s;
    s->handles = 1;
    if ((rv = uv_tcp_init(loop, &s->tcp)) != 0) {
        snprintf(errmsg, errmsg_size, "tcp init: %s", uv_strerror(rv));
        rv = DNS_SERVER_ELISTEN;
        goto err_after_udp;
    }
    s->tcp.data = s;
    s->handles = 2;
    /* UDP first; with port 0 TCP then takes the port the kernel gave UDP */
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    if ((rv = uv_udp_bind(&s->udp, (struct sockaddr *)&ss, 0)) != 0 ||
        (rv = uv_udp_getsockname(&s->udp, (struct sockaddr *)&bound, &blen)) != 0 ||
        (rv = uv_udp_recv_start(&s->udp, udp_alloc, udp_recv)) != 0 ||
        (rv = uv_tcp_bind(&s->tcp, (struct sockaddr *)&bound, 0)) != 0 ||
        (rv = uv_listen((uv_stream_t *)&s->tcp, 128, tcp_accept)) != 0) {
        snprintf(errmsg, errmsg_size, "listen %s: %s", cfg->listen, uv_strerror(rv));
        rv = DNS_SERVER_ELISTEN;
        goto err_after_handles;
    }
    char ip[64] = "?";
    int port = 0;
    {
        if (bound.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&bound, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
            snprintf(s->addr, sizeof s->addr, "%s:%d", ip, port);
        } else {
            uv_ip6_name((struct sockaddr_in6 *)&bound, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
            snprintf(s->addr, sizeof s->addr, "[%s]:%d", ip, port);
        }
    }
    rc_info("dns", "listening addr=%s rrl=%s", s->addr, s->rrl ? "on" : "off");
    *out = s;
    return DNS_SERVER_OK;

err_after_handles:
    /* the handles are closed; the server is freed in the last close_cb */
    s->closing = 1;
    uv_close((uv_handle_t *)&s->tcp, handle_closed);
    uv_close((uv_handle_t *)&s->udp, handle_closed);
    return rv;
err_after_udp:
    s->closing = 1;
    uv_close((uv_handle_t *)&s->udp, handle_closed);
    return rv;
err_after_rrl:
    dns_rrl_free(s->rrl);
err_after_alloc:
    dns__cache_free(&s->cache);
    free(s);
    return rv;
}

void dns_server_set_zone(dns_server *s, dns_zone *zone)
{
    dns_zone *old = s->zone;
    s->zone = zone;
    dns__cache_clear(&s->cache); /* answers of the old zone go with it */
    dns_zone_free(old);
    if (zone != NULL)
        rc_info("dns", "zone_loaded apex=%s serial=%u", dns_zone_apex(zone), dns_zone_serial(zone));
}

int dns_server_set_view(dns_server *s, const struct dns_view *v, char *errmsg, size_t errmsg_size)
{
    dns_zone *z = NULL;
    int rv = dns_zone_build(&z, v, errmsg, errmsg_size);
    if (rv != DNS_SERVER_OK) {
        char q[300];
        rc_warn("dns", "view_rejected serial=%u reason=%s", v ? v->serial : 0,
                rc_log_quote(q, sizeof q, errmsg ? errmsg : "", errmsg ? strnlen(errmsg, errmsg_size) : 0));
        return rv;
    }
    dns_server_set_zone(s, z);
    return DNS_SERVER_OK;
}

void dns_server_set_servfail(dns_server *s, int on)
{
    /* the cache key includes the mode: nothing to clear */
    if (!!on != s->servfail)
        rc_info("dns", "servfail_mode on=%d", !!on);
    s->servfail = !!on;
}

void dns_server_get_stats(const dns_server *s, struct dns_server_stats *st) { *st = s->st; }
const char *dns_server_address(const dns_server *s) { return s->addr; }

void dns_server_close(dns_server *s, void (*closed_cb)(void *arg), void *arg)
{
    if (s == NULL || s->closing)
        return;
    s->closing = 1;
    s->closed_cb = closed_cb;
    s->closed_arg = arg;
    for (tconn *c = s->conns; c != NULL; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&s->udp, handle_closed);
    uv_close((uv_handle_t *)&s->tcp, handle_closed);
}
