/* Asynchronous MX resolver (see dns_resolver.h).
 *
 * Happy path: dns_resolver_mx() starts one MX query; its answer gives the
 * mail hosts (ordered, equal preferences shuffled); one A and one AAAA query
 * per host follow in parallel; when the last one completes, the addresses are
 * handed to the caller in host order. Each query: cache lookup, else a UDP
 * try on a fresh connected socket with a random id; an answer must come from
 * the server and match id and question, anything else is ignored; TC → the
 * same question over TCP; no answer within timeout_ms → next try.
 *
 * Failure modes: every query ends exactly once (answer, timeout after the
 * last try, network error, cancel); the lookup maps the errors to temporary
 * or permanent (dns_resolver.h). Handles are separate allocations, detached
 * from their query before uv_close and freed in their close_cb, so a query
 * may be freed at once; the resolver itself is freed in the last close_cb. */
#include "dns/dns_resolver.h"
#include "dns/dns_resolver_internal.h"
#include "node/base/rc_log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DNS_UDP_RECV_MAX 65536

typedef struct dns_query dns_query;
typedef struct dns_lookup dns_lookup;
typedef void (*dq_cb)(dns_query *q, int err, ldns_pkt *p);

struct dns_h {
    union { uv_handle_t h; uv_udp_t udp; uv_tcp_t tcp; uv_timer_t timer; } u;
    dns_resolver *r;
    dns_query *q;              /* NULL once detached */
    uv_connect_t connect;
    uv_write_t write;
    uint8_t *out;              /* TCP: length-prefixed question */
    uint8_t *in;               /* TCP: length-prefixed answer */
    size_t in_len, in_need;
};

struct cache_ent {
    struct cache_ent *hnext, *prev, *next;
    uint16_t type;
    uint64_t expires_ms;
    uint8_t *wire;
    size_t len;
    char name[DNS_NAME_MAX];
};

struct dns_query {
    dns_resolver *r;
    dns_query *prev, *next;
    dns_lookup *lk;
    size_t host_idx;
    dq_cb cb;
    char name[DNS_NAME_MAX];
    ldns_rdf *qname;
    ldns_rr_type type;
    uint16_t id;
    unsigned tries;
    int last_err;
    int tcp_mode;
    ldns_pkt *cached;
    struct dns_h *udp, *tcp, *timer;
};

struct lk_host {
    struct dns__mx mx;
    struct sockaddr_storage *a4, *a6;
    size_t n4, n6;
};

struct dns_lookup {
    dns_resolver *r;
    dns_lookup *prev, *next;
    char domain[DNS_NAME_MAX];
    dns_mx_cb cb;
    void *arg;
    int implicit;
    struct lk_host *hosts;
    size_t nhosts, outstanding;
    int temp_err;
};

struct dns_resolver {
    uv_loop_t *loop;
    struct dns_resolver_config cfg;
    struct sockaddr_storage server;
    char server_str[80];
    int closing;
    size_t nhandles;
    struct dns_h *keep;          /* one handle so that freeing always happens in a close_cb */
    void (*closed_cb)(void *);
    void *closed_arg;
    dns_query *queries;
    dns_lookup *lookups;
    struct cache_ent **buckets, *lru_head, *lru_tail;
    size_t nbuckets, cache_n, cache_bytes;
    uint8_t rbuf[DNS_UDP_RECV_MAX];
};

const char *dns_strerror(int err)
{
    switch (err) {
    case DNS_OK: return "ok";
    case DNS_ENOMEM: return "out of memory";
    case DNS_EINVAL: return "invalid argument";
    case DNS_ECANCELED: return "canceled";
    case DNS_EBADNAME: return "invalid domain name";
    case DNS_ENXDOMAIN: return "domain does not exist (NXDOMAIN)";
    case DNS_ENULLMX: return "domain accepts no mail (null MX)";
    case DNS_ENOADDR: return "no address for any mail host";
    case DNS_ESERVFAIL: return "resolver failure (SERVFAIL)";
    case DNS_ERCODE: return "resolver refused or failed";
    case DNS_ETIMEDOUT: return "DNS timeout";
    case DNS_ENET: return "DNS network error";
    case DNS_EFORMERR: return "malformed DNS answer";
    case DNS_EMISMATCH: return "answer does not match the question";
    }
    return "unknown error";
}

/* ---------------------------------------------------------------- wire */

int dns__response_match(const uint8_t *wire, size_t len, uint16_t id, const ldns_rdf *qname,
                        ldns_rr_type qtype, ldns_pkt **out)
{
    ldns_pkt *p = NULL;
    *out = NULL;
    if (len < 12 || len > 65535)
        return DNS_EFORMERR;
    if (((uint16_t)(wire[0] << 8 | wire[1])) != id || !(wire[2] & 0x80))
        return DNS_EMISMATCH;
    if (ldns_wire2pkt(&p, wire, len) != LDNS_STATUS_OK || p == NULL)
        return DNS_EFORMERR;
    int rv = DNS_EMISMATCH;
    if (!ldns_pkt_qr(p) || ldns_pkt_id(p) != id || ldns_pkt_get_opcode(p) != LDNS_PACKET_QUERY)
        goto err;
    ldns_rr_list *qs = ldns_pkt_question(p);
    if (qs == NULL || ldns_rr_list_rr_count(qs) != 1)
        goto err;
    ldns_rr *q = ldns_rr_list_rr(qs, 0);
    if (ldns_rr_get_type(q) != qtype || ldns_rr_get_class(q) != LDNS_RR_CLASS_IN ||
        ldns_rr_owner(q) == NULL || ldns_dname_compare(ldns_rr_owner(q), qname) != 0)
        goto err;
    *out = p;
    return DNS_OK;
err:
    ldns_pkt_free(p);
    return rv;
}

int dns__rcode_err(const ldns_pkt *p)
{
    switch (ldns_pkt_get_rcode(p)) {
    case LDNS_RCODE_NOERROR: return DNS_OK;
    case LDNS_RCODE_NXDOMAIN: return DNS_ENXDOMAIN;
    case LDNS_RCODE_SERVFAIL: return DNS_ESERVFAIL;
    default: return DNS_ERCODE;
    }
}

/* Writes a dname as text without the final dot, lowercased. */
static int dname_text(const ldns_rdf *d, char *dst, size_t size)
{
    if (d == NULL || ldns_rdf_get_type(d) != LDNS_RDF_TYPE_DNAME)
        return -1;
    char *s = ldns_rdf2str(d);
    if (s == NULL)
        return -1;
    size_t n = strlen(s);
    if (n > 1 && s[n - 1] == '.')
        n--;
    if (n + 1 > size) {
        free(s);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)tolower((unsigned char)s[i]);
    dst[n] = '\0';
    free(s);
    return 0;
}

int dns__mx_extract(const ldns_pkt *p, struct dns__mx *mx, size_t max)
{
    int rc = dns__rcode_err(p);
    if (rc != DNS_OK)
        return rc;
    ldns_rr_list *an = ldns_pkt_answer(p);
    size_t n = 0, nrr = an ? ldns_rr_list_rr_count(an) : 0, nmx = 0, nnull = 0;
    for (size_t i = 0; i < nrr; i++) {
        ldns_rr *rr = ldns_rr_list_rr(an, i);
        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_MX || ldns_rr_rd_count(rr) != 2)
            continue;
        ldns_rdf *pref = ldns_rr_rdf(rr, 0), *ex = ldns_rr_rdf(rr, 1);
        if (pref == NULL || ex == NULL || ldns_rdf_size(pref) != 2 ||
            ldns_rdf_get_type(ex) != LDNS_RDF_TYPE_DNAME)
            continue;
        nmx++;
        if (ldns_rdf_size(ex) == 1) { /* "." */
            nnull++;
            continue;
        }
        if (n >= max)
            continue;
        if (dname_text(ex, mx[n].host, sizeof mx[n].host) != 0)
            continue;
        mx[n].pref = ldns_rdf2native_int16(pref);
        n++;
    }
    /* RFC 7505: a single MX "." means no mail; "." mixed with real hosts is
     * ignored and the real hosts are used. */
    if (nnull > 0 && nnull == nmx)
        return DNS_ENULLMX;
    return (int)n;
}

int dns__addr_extract(const ldns_pkt *p, ldns_rr_type t, struct sockaddr_storage *a, size_t max)
{
    int rc = dns__rcode_err(p);
    if (rc != DNS_OK)
        return rc;
    ldns_rr_list *an = ldns_pkt_answer(p);
    size_t n = 0, nrr = an ? ldns_rr_list_rr_count(an) : 0;
    for (size_t i = 0; i < nrr && n < max; i++) {
        ldns_rr *rr = ldns_rr_list_rr(an, i);
        if (ldns_rr_get_type(rr) != t || ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN ||
            ldns_rr_rd_count(rr) != 1)
            continue;
        ldns_rdf *d = ldns_rr_rdf(rr, 0);
        memset(&a[n], 0, sizeof a[n]);
        if (t == LDNS_RR_TYPE_A && ldns_rdf_size(d) == 4) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&a[n];
            s4->sin_family = AF_INET;
            memcpy(&s4->sin_addr, ldns_rdf_data(d), 4);
            n++;
        } else if (t == LDNS_RR_TYPE_AAAA && ldns_rdf_size(d) == 16) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a[n];
            s6->sin6_family = AF_INET6;
            memcpy(&s6->sin6_addr, ldns_rdf_data(d), 16);
            n++;
        }
    }
    return (int)n;
}

uint32_t dns__cache_ttl(const ldns_pkt *p, uint32_t max_ttl, uint32_t neg_max)
{
    ldns_pkt_rcode rc = ldns_pkt_get_rcode(p);
    if (rc != LDNS_RCODE_NOERROR && rc != LDNS_RCODE_NXDOMAIN)
        return 0;
    ldns_rr_list *an = ldns_pkt_answer(p);
    size_t nan = an ? ldns_rr_list_rr_count(an) : 0;
    if (rc == LDNS_RCODE_NOERROR && nan > 0) {
        uint32_t ttl = max_ttl;
        for (size_t i = 0; i < nan; i++) {
            uint32_t t = ldns_rr_ttl(ldns_rr_list_rr(an, i));
            if (t < ttl)
                ttl = t;
        }
        return ttl;
    }
    /* negative answer: RFC 2308, min(SOA TTL, SOA MINIMUM) */
    ldns_rr_list *au = ldns_pkt_authority(p);
    size_t nau = au ? ldns_rr_list_rr_count(au) : 0;
    for (size_t i = 0; i < nau; i++) {
        ldns_rr *rr = ldns_rr_list_rr(au, i);
        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SOA || ldns_rr_rd_count(rr) != 7)
            continue;
        ldns_rdf *m = ldns_rr_rdf(rr, 6);
        if (m == NULL || ldns_rdf_size(m) != 4)
            continue;
        uint32_t ttl = ldns_rdf2native_int32(m);
        if (ldns_rr_ttl(rr) < ttl)
            ttl = ldns_rr_ttl(rr);
        return ttl < neg_max ? ttl : neg_max;
    }
    return 0;
}

void dns__mx_order(struct dns__mx *mx, size_t n, const uint32_t *rnd)
{
    /* insertion sort by preference (n is small and bounded by max_mx) */
    for (size_t i = 1; i < n; i++) {
        struct dns__mx t = mx[i];
        size_t j = i;
        while (j > 0 && mx[j - 1].pref > t.pref) {
            mx[j] = mx[j - 1];
            j--;
        }
        mx[j] = t;
    }
    /* Fisher-Yates within each run of equal preference */
    for (size_t s = 0; s < n;) {
        size_t e = s + 1;
        while (e < n && mx[e].pref == mx[s].pref)
            e++;
        for (size_t i = e - 1; i > s; i--) {
            size_t j = s + rnd[i] % (i - s + 1);
            struct dns__mx t = mx[i];
            mx[i] = mx[j];
            mx[j] = t;
        }
        s = e;
    }
}

int dns__parse_server(const char *s, struct sockaddr_storage *ss)
{
    char host[64];
    long port = 53;
    const char *p;
    memset(ss, 0, sizeof *ss);
    if (s == NULL || s[0] == '\0')
        return DNS_EINVAL;
    if (s[0] == '[') {
        const char *e = strchr(s, ']');
        if (e == NULL || (size_t)(e - s - 1) >= sizeof host)
            return DNS_EINVAL;
        memcpy(host, s + 1, (size_t)(e - s - 1));
        host[e - s - 1] = '\0';
        p = e + 1;
        if (*p == ':')
            p++;
        else if (*p != '\0')
            return DNS_EINVAL;
        else
            p = NULL;
    } else {
        const char *c = strchr(s, ':');
        if (c != NULL && strchr(c + 1, ':') != NULL) { /* bare IPv6 */
            c = NULL;
        }
        size_t hl = c ? (size_t)(c - s) : strlen(s);
        if (hl >= sizeof host)
            return DNS_EINVAL;
        memcpy(host, s, hl);
        host[hl] = '\0';
        p = c ? c + 1 : NULL;
    }
    if (p != NULL) {
        char *end;
        port = strtol(p, &end, 10);
        if (*p == '\0' || *end != '\0' || port <= 0 || port > 65535)
            return DNS_EINVAL;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        return DNS_OK;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        return DNS_OK;
    }
    return DNS_EINVAL;
}

int dns__resolv_conf_server(const char *path, char *dst, size_t dst_size)
{
    FILE *f = fopen(path, "r");
    char line[512];
    int rv = DNS_EINVAL;
    if (f == NULL)
        return DNS_EINVAL;
    while (fgets(line, sizeof line, f) != NULL) {
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (strncmp(s, "nameserver", 10) != 0 || (s[10] != ' ' && s[10] != '\t'))
            continue;
        s += 10;
        while (*s == ' ' || *s == '\t')
            s++;
        size_t n = strcspn(s, " \t\r\n#;%");
        if (n == 0 || n + 1 > dst_size)
            continue;
        memcpy(dst, s, n);
        dst[n] = '\0';
        rv = DNS_OK;
        break;
    }
    fclose(f);
    return rv;
}

static int sockaddr_eq(const struct sockaddr *a, const struct sockaddr_storage *b)
{
    if (a == NULL || a->sa_family != b->ss_family)
        return 0;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return 0;
}

/* --------------------------------------------------------------- cache */

static uint32_t cache_hash(const char *name, uint16_t type)
{
    uint32_t h = 2166136261u ^ type;
    for (const char *c = name; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    return h;
}

static void cache_unlink(dns_resolver *r, struct cache_ent *e)
{
    struct cache_ent **pp = &r->buckets[cache_hash(e->name, e->type) & (r->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->prev) e->prev->next = e->next; else r->lru_head = e->next;
    if (e->next) e->next->prev = e->prev; else r->lru_tail = e->prev;
    r->cache_n--;
    r->cache_bytes -= e->len;
    free(e->wire);
    free(e);
}

static struct cache_ent *cache_find(dns_resolver *r, const char *name, uint16_t type)
{
    if (r->buckets == NULL)
        return NULL;
    struct cache_ent *e = r->buckets[cache_hash(name, type) & (r->nbuckets - 1)];
    while (e != NULL && (e->type != type || strcmp(e->name, name) != 0))
        e = e->hnext;
    return e;
}

static ldns_pkt *cache_get(dns_resolver *r, const char *name, uint16_t type)
{
    struct cache_ent *e = cache_find(r, name, type);
    ldns_pkt *p = NULL;
    if (e == NULL)
        return NULL;
    if (e->expires_ms <= uv_now(r->loop)) {
        cache_unlink(r, e);
        return NULL;
    }
    if (ldns_wire2pkt(&p, e->wire, e->len) != LDNS_STATUS_OK)
        return NULL;
    return p;
}

static void cache_put(dns_resolver *r, const char *name, uint16_t type, const ldns_pkt *p)
{
    if (r->buckets == NULL)
        return;
    uint32_t ttl = dns__cache_ttl(p, r->cfg.cache_max_ttl, r->cfg.negative_ttl_max);
    if (ttl == 0)
        return;
    uint8_t *wire = NULL;
    size_t len = 0;
    if (ldns_pkt2wire(&wire, p, &len) != LDNS_STATUS_OK)
        return;
    if (len > r->cfg.cache_max_bytes) {
        free(wire);
        return;
    }
    struct cache_ent *old = cache_find(r, name, type);
    if (old != NULL)
        cache_unlink(r, old);
    while (r->lru_tail != NULL &&
           (r->cache_n >= r->cfg.cache_max_entries || r->cache_bytes + len > r->cfg.cache_max_bytes))
        cache_unlink(r, r->lru_tail);
    struct cache_ent *e = calloc(1, sizeof *e);
    if (e == NULL) {
        free(wire);
        return;
    }
    snprintf(e->name, sizeof e->name, "%s", name);
    e->type = type;
    e->wire = wire;
    e->len = len;
    e->expires_ms = uv_now(r->loop) + (uint64_t)ttl * 1000;
    struct cache_ent **b = &r->buckets[cache_hash(name, type) & (r->nbuckets - 1)];
    e->hnext = *b;
    *b = e;
    e->next = r->lru_head;
    if (r->lru_head) r->lru_head->prev = e; else r->lru_tail = e;
    r->lru_head = e;
    r->cache_n++;
    r->cache_bytes += len;
}

/* ------------------------------------------------------------- handles */

static void resolver_free(dns_resolver *r)
{
    while (r->lru_head != NULL)
        cache_unlink(r, r->lru_head);
    free(r->buckets);
    void (*cb)(void *) = r->closed_cb;
    void *arg = r->closed_arg;
    free(r);
    if (cb)
        cb(arg);
}

static void h_close_cb(uv_handle_t *hh)
{
    struct dns_h *h = hh->data;
    dns_resolver *r = h->r;
    free(h->out);
    free(h->in);
    free(h);
    if (--r->nhandles == 0 && r->closing)
        resolver_free(r);
}

static struct dns_h *h_new(dns_resolver *r, dns_query *q)
{
    struct dns_h *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->r = r;
    h->q = q;
    return h;
}

/* After a successful uv_*_init. */
static void h_inited(struct dns_h *h)
{
    h->u.h.data = h;
    h->connect.data = h;
    h->write.data = h;
    h->r->nhandles++;
}

static void h_close(struct dns_h *h)
{
    if (h == NULL)
        return;
    h->q = NULL;
    if (!uv_is_closing(&h->u.h))
        uv_close(&h->u.h, h_close_cb);
}

/* -------------------------------------------------------------- queries */

static int dq_try_udp(dns_query *q);
static int dq_start_tcp(dns_query *q);
static void dq_timer_cb(uv_timer_t *t);

static void dq_finish(dns_query *q, int err, ldns_pkt *p)
{
    dns_resolver *r = q->r;
    h_close(q->udp);
    h_close(q->tcp);
    h_close(q->timer);
    q->udp = q->tcp = q->timer = NULL;
    if (q->prev) q->prev->next = q->next; else r->queries = q->next;
    if (q->next) q->next->prev = q->prev;
    if (err == DNS_OK && p != NULL && q->cached == NULL)
        cache_put(r, q->name, q->type, p);
    q->cached = NULL;
    q->cb(q, err, p);
    ldns_rdf_deep_free(q->qname);
    free(q);
}

static int dq_wire(dns_query *q, uint8_t **wire, size_t *len)
{
    ldns_rdf *name = ldns_rdf_clone(q->qname);
    if (name == NULL)
        return DNS_ENOMEM;
    ldns_pkt *p = ldns_pkt_query_new(name, q->type, LDNS_RR_CLASS_IN, LDNS_RD);
    if (p == NULL) {
        ldns_rdf_deep_free(name);
        return DNS_ENOMEM;
    }
    ldns_pkt_set_id(p, q->id);
    if (!q->r->cfg.no_edns)
        ldns_pkt_set_edns_udp_size(p, q->r->cfg.edns_udp_size);
    ldns_status st = ldns_pkt2wire(wire, p, len);
    ldns_pkt_free(p);
    return st == LDNS_STATUS_OK ? DNS_OK : DNS_ENOMEM;
}

static void udp_alloc_cb(uv_handle_t *hh, size_t suggested, uv_buf_t *buf)
{
    struct dns_h *h = hh->data;
    buf->base = (char *)h->r->rbuf;
    buf->len = sizeof h->r->rbuf;
}

static void udp_recv_cb(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags)
{
    struct dns_h *h = u->data;
    dns_query *q = h->q;
    ldns_pkt *p = NULL;
    if (q == NULL || nread <= 0 || addr == NULL || (flags & UV_UDP_PARTIAL))
        return; /* errors (e.g. ICMP refused) are left to the timer: next try */
    if (!sockaddr_eq(addr, &q->r->server))
        return;
    int rv = dns__response_match((const uint8_t *)buf->base, (size_t)nread, q->id, q->qname,
                                 q->type, &p);
    if (rv != DNS_OK) {
        if (rv == DNS_EFORMERR)
            q->last_err = DNS_EFORMERR;
        rc_debug("dns", "answer_ignored name=%s err=%s", q->name, dns_strerror(rv));
        return;
    }
    if (ldns_pkt_tc(p)) {
        ldns_pkt_free(p);
        rc_debug("dns", "tcp_fallback name=%s type=%d", q->name, (int)q->type);
        h_close(q->udp);
        q->udp = NULL;
        rv = dq_start_tcp(q);
        if (rv != DNS_OK)
            dq_finish(q, rv, NULL);
        return;
    }
    dq_finish(q, DNS_OK, p);
}

static int dq_try_udp(dns_query *q)
{
    dns_resolver *r = q->r;
    uint8_t *wire = NULL;
    size_t len = 0;
    int rv;
    if (uv_random(NULL, NULL, &q->id, sizeof q->id, 0, NULL) != 0)
        return DNS_ENET;
    if ((rv = dq_wire(q, &wire, &len)) != DNS_OK)
        return rv;
    struct dns_h *h = h_new(r, q);
    if (h == NULL) {
        rv = DNS_ENOMEM;
        goto err_after_wire;
    }
    if (uv_udp_init(r->loop, &h->u.udp) != 0) {
        free(h);
        rv = DNS_ENET;
        goto err_after_wire;
    }
    h_inited(h);
    q->udp = h;
    /* connect: the kernel picks a fresh ephemeral source port for this socket
     * and drops datagrams from other sources */
    if (uv_udp_connect(&h->u.udp, (const struct sockaddr *)&r->server) != 0 ||
        uv_udp_recv_start(&h->u.udp, udp_alloc_cb, udp_recv_cb) != 0) {
        rv = DNS_ENET;
        goto err_after_wire;
    }
    uv_buf_t b = uv_buf_init((char *)wire, (unsigned)len);
    if (uv_udp_try_send(&h->u.udp, &b, 1, NULL) != (int)len) {
        rv = DNS_ENET;
        goto err_after_wire;
    }
    free(wire);
    return DNS_OK;
err_after_wire:
    free(wire);
    return rv;
}

static void tcp_alloc_cb(uv_handle_t *hh, size_t suggested, uv_buf_t *buf)
{
    struct dns_h *h = hh->data;
    buf->base = (char *)h->in + h->in_len;
    buf->len = h->in_need - h->in_len;
}

static void tcp_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct dns_h *h = s->data;
    dns_query *q = h->q;
    ldns_pkt *p = NULL;
    if (q == NULL || nread == 0)
        return;
    if (nread < 0) {
        dq_finish(q, DNS_ENET, NULL);
        return;
    }
    h->in_len += (size_t)nread;
    if (h->in_len < h->in_need)
        return;
    if (h->in_need == 2) {
        size_t l = (size_t)h->in[0] << 8 | h->in[1];
        if (l < 12) {
            dq_finish(q, DNS_EFORMERR, NULL);
            return;
        }
        h->in_need = 2 + l;
        return;
    }
    uv_read_stop(s);
    int rv = dns__response_match(h->in + 2, h->in_len - 2, q->id, q->qname, q->type, &p);
    if (rv != DNS_OK) {
        dq_finish(q, rv == DNS_EMISMATCH ? DNS_EFORMERR : rv, NULL);
        return;
    }
    dq_finish(q, DNS_OK, p);
}

static void tcp_write_cb(uv_write_t *w, int status)
{
    struct dns_h *h = w->data;
    if (h->q != NULL && status < 0)
        dq_finish(h->q, DNS_ENET, NULL);
}

static void tcp_connect_cb(uv_connect_t *c, int status)
{
    struct dns_h *h = c->data;
    dns_query *q = h->q;
    if (q == NULL)
        return;
    if (status < 0) {
        dq_finish(q, DNS_ENET, NULL);
        return;
    }
    size_t len = (size_t)h->out[0] << 8 | h->out[1];
    uv_buf_t b = uv_buf_init((char *)h->out, (unsigned)(len + 2));
    if (uv_write(&h->write, (uv_stream_t *)&h->u.tcp, &b, 1, tcp_write_cb) != 0 ||
        uv_read_start((uv_stream_t *)&h->u.tcp, tcp_alloc_cb, tcp_read_cb) != 0)
        dq_finish(q, DNS_ENET, NULL);
}

static int dq_start_tcp(dns_query *q)
{
    dns_resolver *r = q->r;
    uint8_t *wire = NULL;
    size_t len = 0;
    int rv;
    q->tcp_mode = 1;
    if ((rv = dq_wire(q, &wire, &len)) != DNS_OK)
        return rv;
    struct dns_h *h = h_new(r, q);
    if (h == NULL || (h->out = malloc(len + 2)) == NULL || (h->in = malloc(2 + 65535)) == NULL) {
        if (h) {
            free(h->out);
            free(h);
        }
        free(wire);
        return DNS_ENOMEM;
    }
    h->out[0] = (uint8_t)(len >> 8);
    h->out[1] = (uint8_t)len;
    memcpy(h->out + 2, wire, len);
    free(wire);
    h->in_need = 2;
    if (uv_tcp_init(r->loop, &h->u.tcp) != 0) {
        free(h->out);
        free(h->in);
        free(h);
        return DNS_ENET;
    }
    h_inited(h);
    q->tcp = h;
    if (uv_tcp_connect(&h->connect, &h->u.tcp, (const struct sockaddr *)&r->server,
                       tcp_connect_cb) != 0)
        return DNS_ENET;
    uv_timer_start(&q->timer->u.timer, dq_timer_cb, r->cfg.timeout_ms, 0);
    return DNS_OK;
}

static void dq_timer_cb(uv_timer_t *t)
{
    struct dns_h *h = t->data;
    dns_query *q = h->q;
    if (q == NULL)
        return;
    if (q->cached != NULL) {
        dq_finish(q, DNS_OK, q->cached);
        return;
    }
    if (q->tcp_mode) {
        dq_finish(q, DNS_ETIMEDOUT, NULL);
        return;
    }
    h_close(q->udp);
    q->udp = NULL;
    while (++q->tries < q->r->cfg.tries) {
        int rv = dq_try_udp(q);
        if (rv == DNS_OK) {
            uv_timer_start(&q->timer->u.timer, dq_timer_cb, q->r->cfg.timeout_ms, 0);
            return;
        }
        h_close(q->udp);
        q->udp = NULL;
        q->last_err = rv;
    }
    dq_finish(q, q->last_err ? q->last_err : DNS_ETIMEDOUT, NULL);
}

static int dq_start(dns_resolver *r, const char *name, ldns_rr_type type, dq_cb cb,
                    dns_lookup *lk, size_t host_idx)
{
    dns_query *q = calloc(1, sizeof *q);
    int rv = DNS_ENOMEM;
    if (q == NULL)
        goto err;
    q->r = r;
    q->cb = cb;
    q->lk = lk;
    q->host_idx = host_idx;
    q->type = type;
    snprintf(q->name, sizeof q->name, "%s", name);
    if ((q->qname = ldns_dname_new_frm_str(name)) == NULL) {
        rv = DNS_EBADNAME;
        goto err_after_alloc;
    }
    struct dns_h *th = h_new(r, q);
    if (th == NULL)
        goto err_after_name;
    if (uv_timer_init(r->loop, &th->u.timer) != 0) {
        free(th);
        rv = DNS_ENET;
        goto err_after_name;
    }
    h_inited(th);
    q->timer = th;
    q->next = r->queries;
    if (r->queries) r->queries->prev = q;
    r->queries = q;
    q->cached = cache_get(r, name, type);
    if (q->cached != NULL) {
        uv_timer_start(&th->u.timer, dq_timer_cb, 0, 0);
        return DNS_OK;
    }
    rv = dq_try_udp(q);
    if (rv != DNS_OK) { /* the timer retries */
        q->last_err = rv;
        h_close(q->udp);
        q->udp = NULL;
    }
    uv_timer_start(&th->u.timer, dq_timer_cb, r->cfg.timeout_ms, 0);
    return DNS_OK;
err_after_name:
    ldns_rdf_deep_free(q->qname);
err_after_alloc:
    free(q);
err:
    return rv;
}

/* -------------------------------------------------------------- lookups */

static int is_temp(int err)
{
    return err != DNS_OK && err != DNS_ENXDOMAIN && err != DNS_ENULLMX && err != DNS_ENOADDR &&
           err != DNS_EBADNAME;
}

static void lk_free(dns_lookup *lk)
{
    for (size_t i = 0; i < lk->nhosts; i++) {
        free(lk->hosts[i].a4);
        free(lk->hosts[i].a6);
    }
    free(lk->hosts);
    free(lk);
}

static void lk_unlink(dns_lookup *lk)
{
    dns_resolver *r = lk->r;
    if (lk->prev) lk->prev->next = lk->next; else r->lookups = lk->next;
    if (lk->next) lk->next->prev = lk->prev;
    lk->prev = lk->next = NULL;
}

static void lk_deliver(dns_lookup *lk, int err, const struct dns_mx_target *t, size_t n)
{
    struct dns_mx_result res;
    memset(&res, 0, sizeof res);
    res.err = err;
    res.status = err == DNS_OK ? DNS_MX_OK : is_temp(err) ? DNS_MX_TEMPFAIL : DNS_MX_PERMFAIL;
    res.implicit_mx = lk->implicit;
    res.targets = t;
    res.n = n;
    snprintf(res.errmsg, sizeof res.errmsg, "%.200s: %s", lk->domain, dns_strerror(err));
    rc_debug("dns", "mx_result domain=%s status=%d err=%d n=%zu implicit=%d", lk->domain,
             res.status, err, n, lk->implicit);
    lk_unlink(lk);
    lk->cb(&res, lk->arg);
    lk_free(lk);
}

static void lk_complete(dns_lookup *lk)
{
    dns_resolver *r = lk->r;
    size_t max = r->cfg.max_addrs, n = 0;
    struct dns_mx_target *t = calloc(max, sizeof *t);
    if (t == NULL) {
        lk_deliver(lk, DNS_ENOMEM, NULL, 0);
        return;
    }
    for (size_t i = 0; i < lk->nhosts && n < max; i++) {
        struct lk_host *h = &lk->hosts[i];
        for (size_t k = 0; k < h->n4 + h->n6 && n < max; k++) {
            t[n].addr = k < h->n4 ? h->a4[k] : h->a6[k - h->n4];
            t[n].preference = h->mx.pref;
            snprintf(t[n].host, sizeof t[n].host, "%s", h->mx.host);
            n++;
        }
    }
    if (n == 0)
        lk_deliver(lk, lk->temp_err ? lk->temp_err : DNS_ENOADDR, NULL, 0);
    else
        lk_deliver(lk, DNS_OK, t, n);
    free(t);
}

static void lk_addr_cb(dns_query *q, int err, ldns_pkt *p)
{
    dns_lookup *lk = q->lk;
    struct lk_host *h = &lk->hosts[q->host_idx];
    if (err == DNS_OK) {
        int is4 = q->type == LDNS_RR_TYPE_A;
        int n = dns__addr_extract(p, q->type, is4 ? h->a4 : h->a6, lk->r->cfg.max_addrs);
        if (n >= 0) {
            if (is4) h->n4 = (size_t)n; else h->n6 = (size_t)n;
        } else {
            err = n;
        }
    }
    if (p != NULL)
        ldns_pkt_free(p);
    if (is_temp(err))
        lk->temp_err = err;
    if (--lk->outstanding == 0 && err != DNS_ECANCELED)
        lk_complete(lk);
}

static void lk_mx_cb(dns_query *q, int err, ldns_pkt *p)
{
    dns_lookup *lk = q->lk;
    dns_resolver *r = lk->r;
    lk->outstanding--;
    if (err != DNS_OK) {
        if (p) ldns_pkt_free(p);
        if (err != DNS_ECANCELED)
            lk_deliver(lk, err, NULL, 0);
        return;
    }
    struct dns__mx *mx = calloc(r->cfg.max_mx, sizeof *mx);
    if (mx == NULL) {
        ldns_pkt_free(p);
        lk_deliver(lk, DNS_ENOMEM, NULL, 0);
        return;
    }
    int n = dns__mx_extract(p, mx, r->cfg.max_mx);
    ldns_pkt_free(p);
    if (n < 0) {
        free(mx);
        lk_deliver(lk, n, NULL, 0);
        return;
    }
    if (n == 0) { /* RFC 5321 §5.1: no MX, the domain is the implicit MX */
        lk->implicit = 1;
        mx[0].pref = 0;
        snprintf(mx[0].host, sizeof mx[0].host, "%s", lk->domain);
        n = 1;
    }
    uint32_t rnd[64];
    size_t nr = (size_t)n < 64 ? (size_t)n : 64;
    if (uv_random(NULL, NULL, rnd, nr * sizeof *rnd, 0, NULL) != 0)
        memset(rnd, 0, sizeof rnd);
    dns__mx_order(mx, nr, rnd);
    lk->hosts = calloc((size_t)n, sizeof *lk->hosts);
    if (lk->hosts == NULL) {
        free(mx);
        lk_deliver(lk, DNS_ENOMEM, NULL, 0);
        return;
    }
    lk->nhosts = (size_t)n;
    for (size_t i = 0; i < lk->nhosts; i++) {
        lk->hosts[i].mx = mx[i];
        lk->hosts[i].a4 = calloc(r->cfg.max_addrs, sizeof(struct sockaddr_storage));
        lk->hosts[i].a6 = calloc(r->cfg.max_addrs, sizeof(struct sockaddr_storage));
        if (lk->hosts[i].a4 == NULL || lk->hosts[i].a6 == NULL) {
            free(mx);
            lk_deliver(lk, DNS_ENOMEM, NULL, 0);
            return;
        }
    }
    free(mx);
    lk->outstanding = 1; /* held while starting, so that no early completion frees lk */
    for (size_t i = 0; i < lk->nhosts; i++) {
        int types[2] = { LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA };
        for (int k = 0; k < (r->cfg.no_ipv6 ? 1 : 2); k++) {
            int rv = dq_start(r, lk->hosts[i].mx.host, (ldns_rr_type)types[k], lk_addr_cb, lk, i);
            if (rv == DNS_OK)
                lk->outstanding++;
            else if (is_temp(rv))
                lk->temp_err = rv;
        }
    }
    if (--lk->outstanding == 0)
        lk_complete(lk);
}

int dns_resolver_mx(dns_resolver *r, const char *domain, dns_mx_cb cb, void *arg)
{
    if (r == NULL || domain == NULL || cb == NULL || r->closing)
        return DNS_EINVAL;
    size_t n = strlen(domain);
    if (n > 0 && domain[n - 1] == '.')
        n--;
    if (n == 0 || n >= 254)
        return DNS_EBADNAME;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)domain[i];
        if (!(isalnum(c) || c == '-' || c == '.' || c == '_'))
            return DNS_EBADNAME;
    }
    dns_lookup *lk = calloc(1, sizeof *lk);
    if (lk == NULL)
        return DNS_ENOMEM;
    for (size_t i = 0; i < n; i++)
        lk->domain[i] = (char)tolower((unsigned char)domain[i]);
    lk->domain[n] = '\0';
    lk->r = r;
    lk->cb = cb;
    lk->arg = arg;
    int rv = dq_start(r, lk->domain, LDNS_RR_TYPE_MX, lk_mx_cb, lk, 0);
    if (rv != DNS_OK) {
        free(lk);
        return rv;
    }
    lk->outstanding = 1;
    lk->next = r->lookups;
    if (r->lookups) r->lookups->prev = lk;
    r->lookups = lk;
    return DNS_OK;
}

/* ------------------------------------------------------------ lifecycle */

int dns_resolver_new(dns_resolver **out, uv_loop_t *loop, const struct dns_resolver_config *cfg,
                     char *errmsg, size_t errmsg_size)
{
    char server[80];
    int rv;
    dns_resolver *r = calloc(1, sizeof *r);
    if (r == NULL)
        return DNS_ENOMEM;
    r->loop = loop;
    if (cfg)
        r->cfg = *cfg;
    struct dns_resolver_config *c = &r->cfg;
    if (!c->timeout_ms) c->timeout_ms = 2000;
    if (!c->tries) c->tries = 3;
    if (!c->cache_max_entries) c->cache_max_entries = 4096;
    if (!c->cache_max_bytes) c->cache_max_bytes = 4u << 20;
    if (!c->cache_max_ttl) c->cache_max_ttl = 86400;
    if (!c->negative_ttl_max) c->negative_ttl_max = 900;
    if (!c->edns_udp_size) c->edns_udp_size = 1232;
    if (!c->max_mx) c->max_mx = 10;
    if (!c->max_addrs) c->max_addrs = 32;
    if (!c->resolv_conf) c->resolv_conf = "/etc/resolv.conf";
    if (c->server && c->server[0]) {
        snprintf(server, sizeof server, "%s", c->server);
    } else if (dns__resolv_conf_server(c->resolv_conf, server, sizeof server) != DNS_OK) {
        snprintf(errmsg, errmsg_size, "no nameserver in %s", c->resolv_conf);
        rv = DNS_EINVAL;
        goto err_after_alloc;
    }
    c->server = NULL; /* not kept: the caller's string */
    c->resolv_conf = NULL;
    if (dns__parse_server(server, &r->server) != DNS_OK) {
        snprintf(errmsg, errmsg_size, "bad resolver address %s", server);
        rv = DNS_EINVAL;
        goto err_after_alloc;
    }
    snprintf(r->server_str, sizeof r->server_str, "%s", server);
    if (!c->no_cache) {
        size_t nb = 16;
        while (nb < c->cache_max_entries && nb < (1u << 20))
            nb <<= 1;
        if ((r->buckets = calloc(nb, sizeof *r->buckets)) == NULL) {
            rv = DNS_ENOMEM;
            goto err_after_alloc;
        }
        r->nbuckets = nb;
    }
    if ((r->keep = h_new(r, NULL)) == NULL) {
        rv = DNS_ENOMEM;
        goto err_after_buckets;
    }
    if (uv_timer_init(loop, &r->keep->u.timer) != 0) {
        free(r->keep);
        rv = DNS_ENET;
        goto err_after_buckets;
    }
    h_inited(r->keep);
    *out = r;
    return DNS_OK;
err_after_buckets:
    free(r->buckets);
err_after_alloc:
    free(r);
    return rv;
}

const char *dns_resolver_server(const dns_resolver *r)
{
    return r->server_str;
}

void dns_resolver_close(dns_resolver *r, void (*closed_cb)(void *), void *arg)
{
    if (r == NULL || r->closing)
        return;
    r->closing = 1;
    r->closed_cb = closed_cb;
    r->closed_arg = arg;
    /* lookups first: each is delivered once with DNS_ECANCELED */
    while (r->lookups != NULL)
        lk_deliver(r->lookups, DNS_ECANCELED, NULL, 0);
    while (r->queries != NULL) {
        dns_query *q = r->queries;
        if (q->cached) {
            ldns_pkt_free(q->cached);
            q->cached = NULL;
        }
        q->lk = NULL;
        q->cb = NULL;
        h_close(q->udp);
        h_close(q->tcp);
        h_close(q->timer);
        r->queries = q->next;
        ldns_rdf_deep_free(q->qname);
        free(q);
    }
    h_close(r->keep);
}
