/* SMTP health probe, run by the leader on every health tick: connect to each
 * SMTP node's listener and read its greeting. A node is up for SMTP when the
 * first line starts with "220" within health.probe_timeout; a refused or
 * reset connection, a timeout, or any other greeting (421: the node has no
 * leader, is shutting down or its disk is low) is a failure. The probe never
 * sends a command: it closes once the greeting line is in.
 *
 * One probe per member at a time; its result stays until the next one
 * finishes. Everything is non-blocking on the node's loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/base/rc_log.h"
#include "node/rc_node_internal.h"

struct probe {
    struct rc_health_probe *hp;
    size_t idx;
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_timer_t timer;
    char buf[128];
    size_t len;
    int open_handles;
    bool finished;
};

struct rc_health_probe {
    rc_node *n;
    struct probe *inflight[RC_CFG_MAX_MEMBERS];
    int result[RC_CFG_MAX_MEMBERS]; /* -1 unknown, 0 down, 1 up */
    int live;                       /* probes not yet freed */
    bool stopping;
    void (*stop_cb)(void *);
    void *stop_data;
};

static void maybe_stopped(struct rc_health_probe *hp)
{
    if (!hp->stopping || hp->live > 0)
        return;
    void (*cb)(void *) = hp->stop_cb;
    void *data = hp->stop_data;
    free(hp);
    cb(data);
}

static void probe_handle_closed(uv_handle_t *h)
{
    struct probe *p = h->data;
    if (--p->open_handles > 0)
        return;
    struct rc_health_probe *hp = p->hp;
    free(p);
    hp->live--;
    maybe_stopped(hp);
}

static void probe_finish(struct probe *p, int up, const char *why)
{
    if (p->finished)
        return;
    p->finished = true;
    struct rc_health_probe *hp = p->hp;
    if (!hp->stopping) {
        int old = hp->result[p->idx];
        hp->result[p->idx] = up;
        if (old != up)
            rc_log(up ? RC_LOG_INFO : RC_LOG_WARN, "health", "smtp_probe node=%llu up=%s reason=%s",
                   (unsigned long long)hp->n->cfg.members[p->idx].id, up ? "true" : "false", why);
    }
    hp->inflight[p->idx] = NULL;
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, probe_handle_closed);
    uv_close((uv_handle_t *)&p->tcp, probe_handle_closed);
}

static void probe_timeout(uv_timer_t *t)
{
    probe_finish(t->data, 0, "timeout");
}

static void probe_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct probe *p = h->data;
    buf->base = p->buf + p->len;
    buf->len = sizeof p->buf - 1 - p->len;
}

static void probe_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct probe *p = s->data;
    if (nread < 0) {
        probe_finish(p, 0, nread == UV_EOF ? "closed" : "read_error");
        return;
    }
    p->len += (size_t)nread;
    p->buf[p->len] = '\0';
    if (memchr(p->buf, '\n', p->len) != NULL || p->len == sizeof p->buf - 1) {
        bool ok = p->len >= 4 && memcmp(p->buf, "220", 3) == 0 && (p->buf[3] == ' ' || p->buf[3] == '-');
        probe_finish(p, ok, ok ? "greeting_220" : "greeting_not_220");
    }
}

static void probe_connected(uv_connect_t *c, int status)
{
    struct probe *p = c->data;
    if (p->finished)
        return;
    if (status < 0) {
        probe_finish(p, 0, "connect_failed");
        return;
    }
    if (uv_read_start((uv_stream_t *)&p->tcp, probe_alloc, probe_read) != 0)
        probe_finish(p, 0, "read_error");
}

/* HOST:PORT (IPv4 or [IPv6]) into a sockaddr. */
static int parse_addr(const char *s, struct sockaddr_storage *ss)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL)
        return -1;
    char host[64];
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof host)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    int port = atoi(colon + 1);
    if (host[0] == '[' && hl > 2) {
        host[hl - 1] = '\0';
        return uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)ss);
    }
    return uv_ip4_addr(host, port, (struct sockaddr_in *)ss);
}

static void probe_start(struct rc_health_probe *hp, size_t idx)
{
    rc_node *n = hp->n;
    const struct rc_cfg_member *m = &n->cfg.members[idx];
    char addr[80];
    if (m->id == n->cfg.node_id)
        snprintf(addr, sizeof addr, "%s", n->cfg.smtp_listen);
    else
        snprintf(addr, sizeof addr, "%s:%u", m->address, m->smtp_port);
    struct sockaddr_storage ss;
    if (parse_addr(addr, &ss) != 0)
        return;
    struct probe *p = calloc(1, sizeof *p);
    if (p == NULL)
        return;
    p->hp = hp;
    p->idx = idx;
    uv_tcp_init(n->loop, &p->tcp);
    uv_timer_init(n->loop, &p->timer);
    p->tcp.data = p->timer.data = p->conn.data = p;
    p->open_handles = 2;
    hp->live++;
    hp->inflight[idx] = p;
    uv_timer_start(&p->timer, probe_timeout, n->cfg.health_probe_timeout_ms, 0);
    if (uv_tcp_connect(&p->conn, &p->tcp, (struct sockaddr *)&ss, probe_connected) != 0)
        probe_finish(p, 0, "connect_failed");
}

int rc_health_probe_new(rc_node *n)
{
    struct rc_health_probe *hp = calloc(1, sizeof *hp);
    if (hp == NULL)
        return -1;
    hp->n = n;
    for (size_t i = 0; i < RC_CFG_MAX_MEMBERS; i++)
        hp->result[i] = -1;
    n->hprobe = hp;
    return 0;
}

void rc_health_probe_tick(rc_node *n)
{
    struct rc_health_probe *hp = n->hprobe;
    if (hp == NULL || !n->cfg.health_smtp_probe)
        return;
    for (size_t i = 0; i < n->cfg.n_members; i++)
        if (!n->cfg.members[i].witness && hp->inflight[i] == NULL)
            probe_start(hp, i);
}

int rc_health_probe_result(rc_node *n, size_t idx)
{
    struct rc_health_probe *hp = n->hprobe;
    if (hp == NULL || !n->cfg.health_smtp_probe || n->cfg.members[idx].witness)
        return 1;
    return hp->result[idx];
}

void rc_health_probe_reset(rc_node *n)
{
    struct rc_health_probe *hp = n->hprobe;
    for (size_t i = 0; hp && i < RC_CFG_MAX_MEMBERS; i++)
        hp->result[i] = -1;
}

void rc_health_probe_stop(rc_node *n, void (*cb)(void *), void *data)
{
    struct rc_health_probe *hp = n->hprobe;
    n->hprobe = NULL;
    if (hp == NULL) {
        cb(data);
        return;
    }
    hp->stopping = true;
    hp->stop_cb = cb;
    hp->stop_data = data;
    for (size_t i = 0; i < RC_CFG_MAX_MEMBERS; i++)
        if (hp->inflight[i])
            probe_finish(hp->inflight[i], 0, "stopping");
    maybe_stopped(hp);
}
