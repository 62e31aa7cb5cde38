/* Unit tests of the resolver's response handling: matching answers to
 * questions, rcode classification, MX / null MX / address extraction, cache
 * TTLs, preference ordering with shuffling, server address parsing. Packets
 * are built with ldns, as a server would send them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "dns/dns_resolver_internal.h"

static ldns_pkt *answer(const char *qname, ldns_rr_type t, uint16_t id, ldns_pkt_rcode rc,
                        const char *const *an, const char *const *au)
{
    ldns_pkt *p = ldns_pkt_query_new(ldns_dname_new_frm_str(qname), t, LDNS_RR_CLASS_IN, LDNS_RD);
    assert_non_null(p);
    ldns_pkt_set_id(p, id);
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_rcode(p, (uint8_t)rc);
    for (; an && *an; an++) {
        ldns_rr *rr = NULL;
        assert_int_equal(ldns_rr_new_frm_str(&rr, *an, 0, NULL, NULL), LDNS_STATUS_OK);
        ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
    }
    for (; au && *au; au++) {
        ldns_rr *rr = NULL;
        assert_int_equal(ldns_rr_new_frm_str(&rr, *au, 0, NULL, NULL), LDNS_STATUS_OK);
        ldns_pkt_push_rr(p, LDNS_SECTION_AUTHORITY, rr);
    }
    return p;
}

static int match(ldns_pkt *a, uint16_t id, const char *qname, ldns_rr_type t, ldns_pkt **out)
{
    uint8_t *w = NULL;
    size_t n = 0;
    assert_int_equal(ldns_pkt2wire(&w, a, &n), LDNS_STATUS_OK);
    ldns_rdf *q = ldns_dname_new_frm_str(qname);
    int rv = dns__response_match(w, n, id, q, t, out);
    ldns_rdf_deep_free(q);
    free(w);
    return rv;
}

static void test_match(void **st)
{
    (void)st;
    ldns_pkt *a = answer("Example.ORG.", LDNS_RR_TYPE_MX, 0x1234, LDNS_RCODE_NOERROR, NULL, NULL);
    ldns_pkt *o = NULL;
    assert_int_equal(match(a, 0x1234, "example.org.", LDNS_RR_TYPE_MX, &o), DNS_OK); /* 0x20 case */
    ldns_pkt_free(o);
    assert_int_equal(match(a, 0x1235, "example.org.", LDNS_RR_TYPE_MX, &o), DNS_EMISMATCH);
    assert_int_equal(match(a, 0x1234, "example.net.", LDNS_RR_TYPE_MX, &o), DNS_EMISMATCH);
    assert_int_equal(match(a, 0x1234, "example.org.", LDNS_RR_TYPE_A, &o), DNS_EMISMATCH);
    assert_null(o);
    ldns_pkt_set_qr(a, false); /* a query, not an answer */
    assert_int_equal(match(a, 0x1234, "example.org.", LDNS_RR_TYPE_MX, &o), DNS_EMISMATCH);
    ldns_pkt_free(a);
    ldns_rdf *q = ldns_dname_new_frm_str("example.org.");
    uint8_t junk[40] = { 0x12, 0x34, 0x81, 0x80, 0, 1, 0, 5 };
    assert_int_equal(dns__response_match(junk, sizeof junk, 0x1234, q, LDNS_RR_TYPE_MX, &o),
                     DNS_EFORMERR);
    assert_int_equal(dns__response_match(junk, 5, 0x1234, q, LDNS_RR_TYPE_MX, &o), DNS_EFORMERR);
    ldns_rdf_deep_free(q);
}

static void test_mx_extract(void **st)
{
    (void)st;
    struct dns__mx mx[4];
    const char *an[] = { "example.org. 300 IN MX 20 MX2.example.org.",
                         "example.org. 60 IN MX 10 mx1.example.org.",
                         "example.org. 300 IN TXT \"x\"", NULL };
    ldns_pkt *p = answer("example.org.", LDNS_RR_TYPE_MX, 1, LDNS_RCODE_NOERROR, an, NULL);
    assert_int_equal(dns__mx_extract(p, mx, 4), 2);
    assert_string_equal(mx[0].host, "mx2.example.org");
    assert_int_equal(mx[0].pref, 20);
    assert_string_equal(mx[1].host, "mx1.example.org");
    assert_int_equal(dns__mx_extract(p, mx, 1), 1); /* bounded */
    assert_int_equal(dns__cache_ttl(p, 86400, 900), 60);
    assert_int_equal(dns__cache_ttl(p, 30, 900), 30);
    ldns_pkt_free(p);

    const char *nul[] = { "nomail.example. 300 IN MX 0 .", NULL };
    p = answer("nomail.example.", LDNS_RR_TYPE_MX, 1, LDNS_RCODE_NOERROR, nul, NULL);
    assert_int_equal(dns__mx_extract(p, mx, 4), DNS_ENULLMX);
    ldns_pkt_free(p);

    const char *mixed[] = { "m.example. 300 IN MX 0 .", "m.example. 300 IN MX 10 mx.m.example.", NULL };
    p = answer("m.example.", LDNS_RR_TYPE_MX, 1, LDNS_RCODE_NOERROR, mixed, NULL);
    assert_int_equal(dns__mx_extract(p, mx, 4), 1);
    assert_string_equal(mx[0].host, "mx.m.example");
    ldns_pkt_free(p);

    const char *soa[] = { "example. 3600 IN SOA ns.example. h.example. 1 3600 600 86400 120", NULL };
    p = answer("nx.example.", LDNS_RR_TYPE_MX, 1, LDNS_RCODE_NXDOMAIN, NULL, soa);
    assert_int_equal(dns__mx_extract(p, mx, 4), DNS_ENXDOMAIN);
    assert_int_equal(dns__cache_ttl(p, 86400, 900), 120);
    assert_int_equal(dns__cache_ttl(p, 86400, 60), 60);
    ldns_pkt_free(p);

    p = answer("noMX.example.", LDNS_RR_TYPE_MX, 1, LDNS_RCODE_NOERROR, NULL, soa);
    assert_int_equal(dns__mx_extract(p, mx, 4), 0); /* NODATA: implicit MX */
    assert_int_equal(dns__cache_ttl(p, 86400, 900), 120);
    ldns_pkt_free(p);

    p = answer("sf.example.", LDNS_RR_TYPE_MX, 1, LDNS_RCODE_SERVFAIL, NULL, NULL);
    assert_int_equal(dns__mx_extract(p, mx, 4), DNS_ESERVFAIL);
    assert_int_equal(dns__cache_ttl(p, 86400, 900), 0);
    ldns_pkt_free(p);
    p = answer("rf.example.", LDNS_RR_TYPE_MX, 1, LDNS_RCODE_REFUSED, NULL, NULL);
    assert_int_equal(dns__mx_extract(p, mx, 4), DNS_ERCODE);
    ldns_pkt_free(p);
    p = answer("nosoa.example.", LDNS_RR_TYPE_MX, 1, LDNS_RCODE_NXDOMAIN, NULL, NULL);
    assert_int_equal(dns__cache_ttl(p, 86400, 900), 0); /* negative without SOA: not cached */
    ldns_pkt_free(p);
}

static void test_addr_extract(void **st)
{
    (void)st;
    struct sockaddr_storage a[4];
    const char *an[] = { "mx.example. 300 IN CNAME host.example.", "host.example. 300 IN A 127.0.0.61",
                         "host.example. 300 IN A 127.0.0.62", "host.example. 300 IN AAAA ::1", NULL };
    ldns_pkt *p = answer("mx.example.", LDNS_RR_TYPE_A, 1, LDNS_RCODE_NOERROR, an, NULL);
    assert_int_equal(dns__addr_extract(p, LDNS_RR_TYPE_A, a, 4), 2);
    char s[64];
    inet_ntop(AF_INET, &((struct sockaddr_in *)&a[1])->sin_addr, s, sizeof s);
    assert_string_equal(s, "127.0.0.62");
    assert_int_equal(dns__addr_extract(p, LDNS_RR_TYPE_A, a, 1), 1);
    assert_int_equal(dns__addr_extract(p, LDNS_RR_TYPE_AAAA, a, 4), 1);
    assert_int_equal(a[0].ss_family, AF_INET6);
    ldns_pkt_free(p);
}

static void test_mx_order(void **st)
{
    (void)st;
    struct dns__mx mx[6];
    const uint16_t prefs[6] = { 30, 10, 20, 10, 10, 5 };
    int seen_first[6] = { 0 };
    for (uint32_t seed = 0; seed < 64; seed++) {
        for (int i = 0; i < 6; i++) {
            mx[i].pref = prefs[i];
            snprintf(mx[i].host, sizeof mx[i].host, "h%d", i);
        }
        uint32_t rnd[6];
        for (int i = 0; i < 6; i++)
            rnd[i] = seed * 2654435761u + (uint32_t)i * 40503u + (seed >> 2);
        dns__mx_order(mx, 6, rnd);
        assert_int_equal(mx[0].pref, 5);
        assert_string_equal(mx[0].host, "h5");
        for (int i = 1; i < 6; i++)
            assert_true(mx[i - 1].pref <= mx[i].pref);
        assert_string_equal(mx[4].host, "h2");
        assert_string_equal(mx[5].host, "h0");
        seen_first[mx[1].host[1] - '0'] = 1;
    }
    /* each of the three pref-10 hosts comes first for some random input */
    assert_true(seen_first[1] && seen_first[3] && seen_first[4]);
}

static void test_parse_server(void **st)
{
    (void)st;
    struct sockaddr_storage ss;
    assert_int_equal(dns__parse_server("127.0.0.61:12553", &ss), DNS_OK);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 12553);
    assert_int_equal(dns__parse_server("127.0.0.1", &ss), DNS_OK);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 53);
    assert_int_equal(dns__parse_server("[::1]:5353", &ss), DNS_OK);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(dns__parse_server("::1", &ss), DNS_OK);
    assert_int_equal(dns__parse_server("127.0.0.1:0", &ss), DNS_EINVAL);
    assert_int_equal(dns__parse_server("127.0.0.1:99999", &ss), DNS_EINVAL);
    assert_int_equal(dns__parse_server("localhost:53", &ss), DNS_EINVAL);
    assert_int_equal(dns__parse_server("127.0.0.1:", &ss), DNS_EINVAL);
    char path[] = "/tmp/egress-resolv-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *conf = "# comment\nsearch example\n  nameserver\t10.1.2.3 # x\nnameserver 10.9.9.9\n";
    assert_int_equal(write(fd, conf, strlen(conf)), (ssize_t)strlen(conf));
    close(fd);
    char srv[64];
    assert_int_equal(dns__resolv_conf_server(path, srv, sizeof srv), DNS_OK);
    assert_string_equal(srv, "10.1.2.3");
    unlink(path);
    assert_int_equal(dns__resolv_conf_server("/nonexistent/resolv.conf", srv, sizeof srv), DNS_EINVAL);
}

static void test_bad_names(void **st)
{
    (void)st;
    uv_loop_t loop;
    uv_loop_init(&loop);
    dns_resolver *r = NULL;
    char err[128];
    struct dns_resolver_config cfg = { .server = "127.0.0.69:12599" };
    assert_int_equal(dns_resolver_new(&r, &loop, &cfg, err, sizeof err), DNS_OK);
    assert_string_equal(dns_resolver_server(r), "127.0.0.69:12599");
    assert_int_equal(dns_resolver_mx(r, "", NULL, NULL), DNS_EINVAL);
    assert_int_equal(dns_resolver_mx(r, "bad domain", (dns_mx_cb)1, NULL), DNS_EBADNAME);
    assert_int_equal(dns_resolver_mx(r, "a..b", (dns_mx_cb)1, NULL), DNS_EBADNAME);
    dns_resolver_close(r, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    struct dns_resolver_config bad = { .server = "nonsense" };
    assert_int_equal(dns_resolver_new(&r, &loop, &bad, err, sizeof err), DNS_EINVAL);
}

/* ---- on a real loop, against an in-process UDP responder that first sends
 * forged answers (wrong id, wrong question, garbage, wrong source) and then
 * the right one; the resolver must pick the right one and cache it. */
static struct {
    uv_udp_t srv, spoof;
    int queries;
    int done;
    struct dns_mx_result res;
    char host0[DNS_NAME_MAX];
    char addr0[64];
} L;

static void srv_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    static char buf[4096];
    (void)h; (void)s;
    b->base = buf;
    b->len = sizeof buf;
}

static void srv_send(uv_udp_t *from, ldns_pkt *p, const struct sockaddr *to)
{
    uint8_t *w = NULL;
    size_t n = 0;
    assert_int_equal(ldns_pkt2wire(&w, p, &n), LDNS_STATUS_OK);
    uv_buf_t b = uv_buf_init((char *)w, (unsigned)n);
    assert_int_equal(uv_udp_try_send(from, &b, 1, to), (int)n);
    free(w);
}

static void srv_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                     unsigned flags)
{
    (void)flags;
    if (nread <= 0 || addr == NULL)
        return;
    ldns_pkt *q = NULL;
    assert_int_equal(ldns_wire2pkt(&q, (const uint8_t *)buf->base, (size_t)nread), LDNS_STATUS_OK);
    L.queries++;
    ldns_rr *qr = ldns_rr_list_rr(ldns_pkt_question(q), 0);
    char *name = ldns_rdf2str(ldns_rr_owner(qr));
    ldns_rr_type t = ldns_rr_get_type(qr);
    uint16_t id = ldns_pkt_id(q);
    char rr_good[256], rr_bad[256];
    const char *good[2] = { rr_good, NULL }, *bad[2] = { rr_bad, NULL };
    if (t == LDNS_RR_TYPE_MX) {
        snprintf(rr_good, sizeof rr_good, "%s 300 IN MX 10 mx.spoof.test.", name);
        snprintf(rr_bad, sizeof rr_bad, "%s 300 IN MX 10 evil.example.", name);
    } else if (t == LDNS_RR_TYPE_A) {
        snprintf(rr_good, sizeof rr_good, "%s 300 IN A 127.0.0.9", name);
        snprintf(rr_bad, sizeof rr_bad, "%s 300 IN A 6.6.6.6", name);
    } else {
        good[0] = NULL;
        snprintf(rr_bad, sizeof rr_bad, "%s 300 IN AAAA ::6", name);
    }
    ldns_pkt *p;
    p = answer(name, t, (uint16_t)(id + 1), LDNS_RCODE_NOERROR, bad, NULL); /* wrong id */
    srv_send(u, p, addr);
    ldns_pkt_free(p);
    p = answer("other.test.", t, id, LDNS_RCODE_NOERROR, NULL, NULL); /* wrong question */
    srv_send(u, p, addr);
    ldns_pkt_free(p);
    uint8_t junk[20] = { (uint8_t)(id >> 8), (uint8_t)id, 0x81, 0x80, 0, 1, 0, 9 };
    uv_buf_t jb = uv_buf_init((char *)junk, sizeof junk);
    uv_udp_try_send(u, &jb, 1, addr); /* garbage with the right id */
    p = answer(name, t, id, LDNS_RCODE_NOERROR, bad, NULL); /* right id, wrong source */
    srv_send(&L.spoof, p, addr);
    ldns_pkt_free(p);
    /* no AAAA: NODATA with an SOA, so that it is cached (RFC 2308) */
    static const char *const soa[] = { "spoof.test. 300 IN SOA ns.spoof.test. h.spoof.test. 1 1 1 1 60",
                                       NULL };
    p = answer(name, t, id, LDNS_RCODE_NOERROR, good[0] ? good : NULL, good[0] ? NULL : soa);
    srv_send(u, p, addr);
    ldns_pkt_free(p);
    free(name);
    ldns_pkt_free(q);
}

static void loop_mx_cb(const struct dns_mx_result *r, void *arg)
{
    (void)arg;
    L.done++;
    L.res = *r;
    L.res.targets = NULL;
    if (r->n > 0) {
        snprintf(L.host0, sizeof L.host0, "%s", r->targets[0].host);
        inet_ntop(AF_INET, &((const struct sockaddr_in *)&r->targets[0].addr)->sin_addr, L.addr0,
                  sizeof L.addr0);
    }
}

static void closed(void *arg) { *(int *)arg = 1; }

static void test_loop_forged_answers_and_cache(void **st)
{
    (void)st;
    uv_loop_t loop;
    uv_loop_init(&loop);
    memset(&L, 0, sizeof L);
    struct sockaddr_in a, b;
    uv_ip4_addr("127.0.0.67", 12540, &a);
    uv_ip4_addr("127.0.0.68", 12541, &b);
    uv_udp_init(&loop, &L.srv);
    uv_udp_init(&loop, &L.spoof);
    assert_int_equal(uv_udp_bind(&L.srv, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_udp_bind(&L.spoof, (const struct sockaddr *)&b, 0), 0);
    uv_udp_recv_start(&L.srv, srv_alloc, srv_recv);
    dns_resolver *r = NULL;
    char err[128];
    struct dns_resolver_config cfg = { .server = "127.0.0.67:12540", .timeout_ms = 5000 };
    assert_int_equal(dns_resolver_new(&r, &loop, &cfg, err, sizeof err), DNS_OK);
    assert_int_equal(dns_resolver_mx(r, "Spoof.Test.", loop_mx_cb, NULL), DNS_OK);
    while (L.done == 0)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(L.res.status, DNS_MX_OK);
    assert_int_equal(L.res.n, 1);
    assert_string_equal(L.host0, "mx.spoof.test");
    assert_string_equal(L.addr0, "127.0.0.9");
    assert_int_equal(L.queries, 3); /* MX, A, AAAA */
    /* the same lookup again is answered from the cache */
    assert_int_equal(dns_resolver_mx(r, "spoof.test", loop_mx_cb, NULL), DNS_OK);
    while (L.done == 1)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(L.res.status, DNS_MX_OK);
    assert_string_equal(L.addr0, "127.0.0.9");
    assert_int_equal(L.queries, 3);
    /* a lookup in flight when the resolver closes completes as canceled */
    assert_int_equal(dns_resolver_mx(r, "other.spoof.test", loop_mx_cb, NULL), DNS_OK);
    int is_closed = 0;
    dns_resolver_close(r, closed, &is_closed);
    assert_int_equal(L.done, 3);
    assert_int_equal(L.res.err, DNS_ECANCELED);
    assert_int_equal(L.res.status, DNS_MX_TEMPFAIL);
    uv_run(&loop, UV_RUN_NOWAIT);
    /* a cache limited to 2 entries cannot keep MX + A + AAAA: the MX is
     * evicted (LRU) and asked again */
    struct dns_resolver_config small = { .server = "127.0.0.67:12540", .timeout_ms = 5000,
                                         .cache_max_entries = 2 };
    assert_int_equal(dns_resolver_new(&r, &loop, &small, err, sizeof err), DNS_OK);
    L.done = 0;
    L.queries = 0;
    assert_int_equal(dns_resolver_mx(r, "spoof.test", loop_mx_cb, NULL), DNS_OK);
    while (L.done == 0)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(L.queries, 3);
    assert_int_equal(dns_resolver_mx(r, "spoof.test", loop_mx_cb, NULL), DNS_OK);
    while (L.done == 1)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(L.res.status, DNS_MX_OK);
    /* MX asked again; storing it evicts the older address entry, which is asked
     * again too; the other one comes from the cache */
    assert_int_equal(L.queries, 5);
    dns_resolver_close(r, NULL, NULL);
    uv_close((uv_handle_t *)&L.srv, NULL);
    uv_close((uv_handle_t *)&L.spoof, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(is_closed);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_mx_extract),
        cmocka_unit_test(test_addr_extract),
        cmocka_unit_test(test_mx_order),
        cmocka_unit_test(test_parse_server),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_loop_forged_answers_and_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
