/* DNS wiring: the dns/ responder fed from the replicated cluster view.
 *
 * Every node computes its zone from the same replicated state (the FSM's
 * view: leader, leader site, per-node healthy/drained) plus the static
 * member table, so that every node publishes the same records. The SOA
 * serial is the view's serial, which the FSM increments on every applied
 * view change and keeps in snapshots: it moves on every change and is
 * monotone across leader changes and restarts.
 *
 * A lease timer flips SERVFAIL for the zone when the node has had no leader
 * contact for longer than dns.lease (the same rule that makes SMTP answer
 * 421), and back when it rejoins.
 *
 * Failure modes: a bad dns.* setting (zone, names, extra records) refuses to
 * start with the builder's message; a view that does not build at run time
 * (should not happen once the start check passed) keeps the previous zone and
 * logs dns_view_rejected. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/rc_dns.h"

#include "node/base/rc_log.h"
#include "node/rc_node_internal.h"

#define DNS_EXTRA_MAX 32
#define LEASE_CHECK_MS 100

struct rc_dns {
    rc_node *n;
    dns_server *srv;
    uv_timer_t lease_timer;
    bool servfail;
    uint64_t started_ms;
    int pending_closes;
    void (*stop_cb)(void *);
    void *stop_data;
    /* dns.extra split at '|' (pointers into extra_buf) */
    char extra_buf[sizeof(((struct rc_config *)0)->dns_extra)];
    const char *extra[DNS_EXTRA_MAX];
    size_t n_extra;
};

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t l = strlen(s);
    while (l > 0 && (s[l - 1] == ' ' || s[l - 1] == '\t'))
        s[--l] = '\0';
    return s;
}

static int split_extra(struct rc_dns *d, const char *in, char *err, size_t errlen)
{
    snprintf(d->extra_buf, sizeof d->extra_buf, "%s", in);
    d->n_extra = 0;
    char *save = NULL;
    for (char *tok = strtok_r(d->extra_buf, "|", &save); tok; tok = strtok_r(NULL, "|", &save)) {
        tok = trim(tok);
        if (*tok == '\0')
            continue;
        if (d->n_extra == DNS_EXTRA_MAX) {
            snprintf(err, errlen, "dns.extra: more than %d records", DNS_EXTRA_MAX);
            return -1;
        }
        d->extra[d->n_extra++] = tok;
    }
    return 0;
}

void rc_dns_view_from(const struct rc_config *c, const struct rc_view *rv, const char *const *extra,
                      size_t n_extra, struct dns_view *v, struct rc_dns_view_storage *st)
{
    memset(v, 0, sizeof *v);
    v->zone = c->dns_zone;
    v->relay_name = c->dns_relay_name;
    v->bounce_name = c->dns_bounce_name[0] ? c->dns_bounce_name : NULL;
    v->ttl = (uint32_t)c->dns_ttl;
    v->serial = rv ? (uint32_t)rv->serial : 0;
    v->leader_site = rv && rv->leader_site[0] ? rv->leader_site : NULL;
    v->mx_pref_leader = (uint16_t)c->dns_mx_pref_leader;
    v->mx_pref_other = (uint16_t)c->dns_mx_pref_other;
    v->extra = extra;
    v->n_extra = n_extra;
    for (size_t i = 0; i < c->n_members; i++) {
        const struct rc_cfg_member *m = &c->members[i];
        struct dns_view_node *vn = &st->nodes[i];
        memset(vn, 0, sizeof *vn);
        rc_dns_node_label(m->id, st->names[i], sizeof st->names[i]);
        vn->name = st->names[i];
        vn->site = m->site;
        vn->ipv4 = m->address;
        vn->ipv6 = m->address6[0] ? m->address6 : NULL;
        /* The witness votes but does not keep leadership nor take mail:
         * it is a name server, never an MX. */
        vn->smtp = !m->witness;
        vn->dns = 1;
        /* A member the leader has not judged yet counts as unhealthy. */
        for (size_t j = 0; rv && j < rv->n_nodes; j++)
            if (rv->nodes[j].id == m->id) {
                vn->healthy = rv->nodes[j].healthy;
                vn->drained = rv->nodes[j].drained;
            }
    }
    v->nodes = st->nodes;
    v->n_nodes = c->n_members;
}

void rc_dns_node_label(uint64_t id, char *buf, size_t len)
{
    snprintf(buf, len, "n%llu", (unsigned long long)id);
}

static void view_from(struct rc_dns *d, const struct rc_view *rv, struct dns_view *v, struct rc_dns_view_storage *st)
{
    rc_dns_view_from(&d->n->cfg, rv, d->extra, d->n_extra, v, st);
}

static void publish(struct rc_dns *d, const struct rc_view *rv)
{
    struct dns_view v;
    struct rc_dns_view_storage st;
    view_from(d, rv, &v, &st);
    const struct dns_view_node *nodes = st.nodes;
    char err[256];
    int e = dns_server_set_view(d->srv, &v, err, sizeof err);
    if (e != DNS_SERVER_OK) {
        rc_error("dns", "dns_view_rejected serial=%u error=\"%s\"", v.serial, err);
        return;
    }
    size_t mx = 0;
    for (size_t i = 0; i < v.n_nodes; i++)
        mx += nodes[i].smtp && nodes[i].healthy && !nodes[i].drained;
    rc_info("dns", "zone_published serial=%u leader_site=%s mx_nodes=%zu", v.serial,
            v.leader_site ? v.leader_site : "-", mx);
}

void rc_dns_on_view(rc_node *n, const struct rc_view *v)
{
    if (n->dns == NULL || n->dns->srv == NULL || v->serial == 0)
        return;
    publish(n->dns, v);
}

static void lease_cb(uv_timer_t *t)
{
    struct rc_dns *d = t->data;
    struct rc_raft_status st;
    rc_raft_get_status(d->n->raft, &st);
    bool lost = st.leader == 0 && st.ms_since_contact > d->n->cfg.dns_lease_ms;
    if (lost == d->servfail)
        return;
    d->servfail = lost;
    dns_server_set_servfail(d->srv, lost);
    uint64_t up = rc_now_ms() - d->started_ms;
    if (lost)
        rc_warn("dns", "lease_lost ms_since_contact=%llu action=servfail",
                (unsigned long long)(st.ms_since_contact < up ? st.ms_since_contact : up));
    else
        rc_info("dns", "lease_regained leader=%llu action=answer", (unsigned long long)st.leader);
}

int rc_dns_start(rc_node *n, char *err, size_t errlen)
{
    const struct rc_config *c = &n->cfg;
    struct rc_dns *d = calloc(1, sizeof *d);
    if (d == NULL) {
        snprintf(err, errlen, "dns: out of memory");
        return -1;
    }
    d->n = n;
    d->started_ms = rc_now_ms();
    if (split_extra(d, c->dns_extra, err, errlen) != 0)
        goto err_after_alloc;

    /* Check the settings now, with every node up and a leader site, so that a
     * bad zone, name or extra record stops the start instead of a later view. */
    struct dns_view v;
    struct rc_dns_view_storage st;
    view_from(d, NULL, &v, &st);
    for (size_t i = 0; i < v.n_nodes; i++)
        st.nodes[i].healthy = 1;
    v.leader_site = c->node_site;
    v.serial = 1;
    dns_zone *probe;
    char msg[256];
    if (dns_zone_build(&probe, &v, msg, sizeof msg) != DNS_SERVER_OK) {
        snprintf(err, errlen, "dns.zone/relay_name/bounce_name/extra: %s", msg);
        goto err_after_alloc;
    }
    dns_zone_free(probe);

    struct dns_server_config sc;
    memset(&sc, 0, sizeof sc);
    sc.listen = c->dns_listen;
    sc.edns_udp_size = (uint16_t)c->dns_edns_udp_size;
    sc.tcp_max_clients = (unsigned)c->dns_tcp_max_clients;
    sc.tcp_idle_ms = (unsigned)c->dns_tcp_idle_ms;
    sc.tcp_max_queries = (unsigned)c->dns_tcp_max_queries;
    sc.tcp_max_pending = (size_t)c->dns_tcp_max_pending;
    sc.answer_cache_entries = (size_t)c->dns_answer_cache;
    sc.answer_cache_disable = c->dns_answer_cache == 0;
    sc.rrl_disable = !c->dns_rrl;
    sc.rrl.rate = (unsigned)c->dns_rrl_rate;
    sc.rrl.burst = (unsigned)c->dns_rrl_burst;
    sc.rrl.slip = (unsigned)c->dns_rrl_slip;
    sc.rrl.ipv4_prefix = (unsigned)c->dns_rrl_ipv4_prefix;
    sc.rrl.ipv6_prefix = (unsigned)c->dns_rrl_ipv6_prefix;
    if (dns_server_new(&d->srv, n->loop, &sc, msg, sizeof msg) != DNS_SERVER_OK) {
        snprintf(err, errlen, "dns.listen %s: %s", c->dns_listen, msg);
        goto err_after_alloc; /* the server's handles are freed by the loop */
    }
    uv_timer_init(n->loop, &d->lease_timer);
    d->lease_timer.data = d;
    uv_timer_start(&d->lease_timer, lease_cb, LEASE_CHECK_MS, LEASE_CHECK_MS);
    n->dns = d;
    /* Views applied before the server existed (log replay at start). */
    const struct rc_view *rv = rc_fsm_view(rc_raft_fsm(n->raft));
    if (rv->serial != 0)
        publish(d, rv);
    return 0;

err_after_alloc:
    free(d);
    return -1;
}

static void dns_part_closed(void *data)
{
    struct rc_dns *d = data;
    if (--d->pending_closes > 0)
        return;
    void (*cb)(void *) = d->stop_cb;
    void *cb_data = d->stop_data;
    free(d);
    cb(cb_data);
}

static void lease_timer_closed(uv_handle_t *h)
{
    dns_part_closed(h->data);
}

void rc_dns_stop(rc_node *n, void (*cb)(void *), void *data)
{
    struct rc_dns *d = n->dns;
    if (d == NULL) {
        cb(data);
        return;
    }
    n->dns = NULL;
    d->stop_cb = cb;
    d->stop_data = data;
    d->pending_closes = 2;
    uv_timer_stop(&d->lease_timer);
    uv_close((uv_handle_t *)&d->lease_timer, lease_timer_closed);
    dns_server_close(d->srv, dns_part_closed, d);
}
