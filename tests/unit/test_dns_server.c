/* Unit tests of the authoritative responder: the zone computed from views
 * (dns_zone_build), every case of the answer builder (dns_server_answer),
 * and response rate limiting. Queries are built and answers parsed with
 * ldns, as a client would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dns/dns_server.h"
#include "dns/dns_server_internal.h"

#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NODES(...) ((const struct dns_view_node[]){ __VA_ARGS__ })

static const struct dns_view_node base_nodes[] = {
    { .name = "n1", .site = "a", .ipv4 = "127.0.0.31", .ipv6 = "fd00::31", .smtp = 1, .dns = 1, .healthy = 1 },
    { .name = "n2", .site = "a", .ipv4 = "127.0.0.32", .smtp = 1, .dns = 1, .healthy = 1 },
    { .name = "n3", .site = "b", .ipv4 = "127.0.0.33", .smtp = 1, .dns = 1, .healthy = 1 },
    { .name = "n4", .site = "b", .ipv4 = "127.0.0.34", .smtp = 1, .dns = 1, .healthy = 1 },
    { .name = "w1.witness", .site = "c", .ipv6 = "fd00::35", .smtp = 0, .dns = 1, .healthy = 1 },
};
static const char *const base_extra[] = { "@ TXT \"v=spf1 ip4:127.0.0.0/8 -all\"" };

static struct dns_view base_view(void)
{
    struct dns_view v = {
        .zone = "mx.test", .relay_name = "relay", .bounce_name = "bounce.mx.test.",
        .ttl = 30, .serial = 42, .leader_site = "a",
        .nodes = base_nodes, .n_nodes = 5, .extra = base_extra, .n_extra = 1,
    };
    return v;
}

static dns_zone *build(const struct dns_view *v)
{
    dns_zone *z = NULL;
    char err[256] = "";
    int rv = dns_zone_build(&z, v, err, sizeof err);
    if (rv != DNS_SERVER_OK)
        fprintf(stderr, "build: %s\n", err);
    assert_int_equal(rv, DNS_SERVER_OK);
    return z;
}

/* The zone as text, one record per line. */
static char *zone_text(const dns_zone *z)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    dns_zone_print(z, f);
    fclose(f);
    return buf;
}

static void assert_has(const char *text, const char *line)
{
    if (strstr(text, line) == NULL) {
        fprintf(stderr, "missing \"%s\" in:\n%s", line, text);
        fail();
    }
}

static void assert_lacks(const char *text, const char *line)
{
    if (strstr(text, line) != NULL) {
        fprintf(stderr, "unexpected \"%s\" in:\n%s", line, text);
        fail();
    }
}

/* ---- zone computation ---- */

static void test_zone_from_view(void **state)
{
    (void)state;
    struct dns_view v = base_view();
    dns_zone *z = build(&v);
    char *t = zone_text(z);
    assert_string_equal(dns_zone_apex(z), "mx.test.");
    assert_int_equal(dns_zone_serial(z), 42);
    assert_has(t, "mx.test.\t30\tIN\tSOA\tn1.mx.test. hostmaster.mx.test. 42 300 60 86400 30\n");
    assert_has(t, "mx.test.\t30\tIN\tNS\tn1.mx.test.\n");
    assert_has(t, "mx.test.\t30\tIN\tNS\tw1.witness.mx.test.\n");
    assert_has(t, "relay.mx.test.\t30\tIN\tMX\t10 n1.mx.test.\n");
    assert_has(t, "relay.mx.test.\t30\tIN\tMX\t10 n2.mx.test.\n");
    assert_has(t, "relay.mx.test.\t30\tIN\tMX\t20 n3.mx.test.\n");
    assert_has(t, "relay.mx.test.\t30\tIN\tMX\t20 n4.mx.test.\n");
    assert_has(t, "bounce.mx.test.\t30\tIN\tMX\t10 n1.mx.test.\n");
    assert_has(t, "n1.mx.test.\t30\tIN\tAAAA\tfd00::31\n");
    assert_has(t, "w1.witness.mx.test.\t30\tIN\tAAAA\tfd00::35\n");
    assert_has(t, "mx.test.\t30\tIN\tTXT\t\"v=spf1 ip4:127.0.0.0/8 -all\"\n");
    assert_lacks(t, "MX\t10 w1"); /* not an SMTP node */
    assert_lacks(t, "MX\t20 w1");
    free(t);
    dns_zone_free(z);
}

static void test_zone_health_drain_leader(void **state)
{
    (void)state;
    struct dns_view_node nodes[5];
    memcpy(nodes, base_nodes, sizeof nodes);
    nodes[0].healthy = 0; /* n1 down: out of MX and NS, keeps its A */
    nodes[3].drained = 1; /* n4 drained: out of MX, still NS */
    struct dns_view v = base_view();
    v.nodes = nodes;
    v.leader_site = "b"; /* leadership moved to site b */
    v.mx_pref_leader = 5;
    v.mx_pref_other = 50;
    dns_zone *z = build(&v);
    char *t = zone_text(z);
    assert_has(t, "relay.mx.test.\t30\tIN\tMX\t5 n3.mx.test.\n");
    assert_has(t, "relay.mx.test.\t30\tIN\tMX\t50 n2.mx.test.\n");
    assert_lacks(t, "MX\t5 n1");
    assert_lacks(t, "MX\t50 n1");
    assert_lacks(t, "MX\t5 n4");
    assert_lacks(t, "MX\t50 n4");
    assert_has(t, "mx.test.\t30\tIN\tNS\tn4.mx.test.\n");
    assert_lacks(t, "NS\tn1.mx.test.");
    assert_has(t, "n1.mx.test.\t30\tIN\tA\t127.0.0.31\n");
    assert_has(t, "SOA\tn2.mx.test."); /* first NS host */
    free(t);
    dns_zone_free(z);

    /* no leader known: every healthy SMTP node at the fallback preference */
    v.leader_site = NULL;
    z = build(&v);
    t = zone_text(z);
    assert_has(t, "relay.mx.test.\t30\tIN\tMX\t50 n2.mx.test.\n");
    assert_has(t, "relay.mx.test.\t30\tIN\tMX\t50 n3.mx.test.\n");
    free(t);
    dns_zone_free(z);

    /* no healthy SMTP node at all: every non-drained SMTP node stays listed */
    for (size_t i = 0; i < 5; i++)
        nodes[i].healthy = 0;
    z = build(&v);
    t = zone_text(z);
    assert_has(t, "relay.mx.test.\t30\tIN\tMX\t50 n1.mx.test.\n");
    assert_has(t, "relay.mx.test.\t30\tIN\tMX\t50 n3.mx.test.\n");
    assert_lacks(t, "MX\t50 n4"); /* drained */
    assert_has(t, "mx.test.\t30\tIN\tNS\tn1.mx.test.\n"); /* no healthy DNS node: all listed */
    free(t);
    dns_zone_free(z);
}

static void test_zone_soa_params(void **state)
{
    (void)state;
    struct dns_view v = base_view();
    v.soa_rname = "dns-admin.example.net.";
    v.soa_mname = "n3";
    v.soa_refresh = 100;
    v.soa_retry = 10;
    v.soa_expire = 1000;
    v.soa_minimum = 5;
    v.serial = 4000000000u;
    dns_zone *z = build(&v);
    char *t = zone_text(z);
    assert_has(t, "SOA\tn3.mx.test. dns-admin.example.net. 4000000000 100 10 1000 5\n");
    free(t);
    dns_zone_free(z);
}

static void expect_view_error(const struct dns_view *v, const char *needle)
{
    dns_zone *z = (dns_zone *)1;
    char err[256] = "";
    assert_int_equal(dns_zone_build(&z, v, err, sizeof err), DNS_SERVER_EVIEW);
    assert_null(z);
    if (strstr(err, needle) == NULL) {
        fprintf(stderr, "error \"%s\" lacks \"%s\"\n", err, needle);
        fail();
    }
}

static void test_zone_bad_views(void **state)
{
    (void)state;
    struct dns_view v = base_view();
    v.relay_name = "relay.example.net.";
    expect_view_error(&v, "outside the zone");
    v = base_view();
    v.relay_name = NULL;
    expect_view_error(&v, "relay_name");
    v = base_view();
    v.zone = "bad zone";
    expect_view_error(&v, "apex");
    v = base_view();
    v.nodes = NODES({ .name = "n1", .site = "a", .ipv4 = "300.1.1.1", .smtp = 1, .dns = 1, .healthy = 1 });
    v.n_nodes = 1;
    expect_view_error(&v, "bad IPv4");
    v.nodes = NODES({ .name = "n1 IN A", .site = "a", .ipv4 = "1.1.1.1", .dns = 1 });
    expect_view_error(&v, "invalid name");
    v.nodes = NODES({ .name = "n1", .site = "a", .smtp = 1, .dns = 1 });
    expect_view_error(&v, "no address");
    v.nodes = NODES({ .name = "n1", .site = "a", .ipv4 = "1.1.1.1", .dns = 1 },
                    { .name = "N1", .site = "b", .ipv4 = "1.1.1.2", .dns = 1 });
    v.n_nodes = 2;
    expect_view_error(&v, "listed twice");
    v.n_nodes = 1;
    v.nodes = NODES({ .name = "n1", .site = "a", .ipv4 = "1.1.1.1", .smtp = 1, .dns = 0 });
    expect_view_error(&v, "no DNS-serving node");
    v = base_view();
    const char *cname[] = { "www CNAME relay" };
    v.extra = cname;
    expect_view_error(&v, "not allowed");
    const char *outside[] = { "www.example.net. TXT \"x\"" };
    v.extra = outside;
    expect_view_error(&v, "outside the zone");
    const char *garbage[] = { "www TXT" };
    v.extra = garbage;
    expect_view_error(&v, "extra record");
}

/* ---- the answer builder ---- */

struct fx {
    dns_zone *z;
};

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    struct dns_view v = base_view();
    f->z = build(&v);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    dns_zone_free(f->z);
    free(f);
    return 0;
}

/* A query as wire bytes. edns: 0 none, else the advertised UDP size. */
static size_t mkq(uint8_t *out, const char *name, ldns_rr_type type, ldns_rr_class klass, uint16_t edns)
{
    ldns_rdf *dn = ldns_dname_new_frm_str(name);
    assert_non_null(dn);
    ldns_pkt *p = ldns_pkt_query_new(dn, type, klass, LDNS_RD);
    ldns_pkt_set_id(p, 0xBEEF);
    if (edns)
        ldns_pkt_set_edns_udp_size(p, edns);
    uint8_t *w = NULL;
    size_t len = 0;
    assert_int_equal(ldns_pkt2wire(&w, p, &len), LDNS_STATUS_OK);
    memcpy(out, w, len);
    free(w);
    ldns_pkt_free(p);
    return len;
}

static uint8_t resp_buf[65535];
static size_t resp_len;
static struct dns_answer_info info;

static ldns_pkt *ask_opts(const dns_zone *z, const struct dns_answer_opts *o, const uint8_t *q, size_t qlen)
{
    int act = dns_server_answer(z, o, q, qlen, resp_buf, sizeof resp_buf, &resp_len, &info);
    assert_int_equal(act, DNS_ANSWER_SEND);
    ldns_pkt *p = NULL;
    assert_int_equal(ldns_wire2pkt(&p, resp_buf, resp_len), LDNS_STATUS_OK);
    assert_int_equal(ldns_pkt_id(p), (q[0] << 8) | q[1]);
    assert_true(ldns_pkt_qr(p));
    assert_false(ldns_pkt_ra(p)); /* never recursion */
    return p;
}

static ldns_pkt *ask(const dns_zone *z, const char *name, ldns_rr_type type, uint16_t edns)
{
    uint8_t q[512];
    size_t n = mkq(q, name, type, LDNS_RR_CLASS_IN, edns);
    struct dns_answer_opts o = { 0 };
    return ask_opts(z, &o, q, n);
}

static void test_answer_mx(void **state)
{
    struct fx *f = *state;
    ldns_pkt *p = ask(f->z, "relay.mx.test.", LDNS_RR_TYPE_MX, 0);
    assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
    assert_true(ldns_pkt_aa(p));
    assert_true(ldns_pkt_rd(p)); /* echoed */
    assert_int_equal(ldns_pkt_ancount(p), 4);
    assert_int_equal(ldns_pkt_nscount(p), 0);
    assert_int_equal(ldns_pkt_arcount(p), 5); /* A/AAAA of the 4 exchanges */
    assert_null(ldns_pkt_edns(p) ? p : NULL); /* no OPT without EDNS in the query */
    ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_answer(p), 0);
    assert_int_equal(ldns_rr_get_type(rr), LDNS_RR_TYPE_MX);
    assert_int_equal(ldns_rr_ttl(rr), 30);
    ldns_pkt_free(p);
}

static void test_answer_a_aaaa_ns_soa_txt(void **state)
{
    struct fx *f = *state;
    ldns_pkt *p = ask(f->z, "n1.mx.test.", LDNS_RR_TYPE_A, 0);
    assert_int_equal(ldns_pkt_ancount(p), 1);
    char *s = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(p), 0), 0));
    assert_string_equal(s, "127.0.0.31");
    free(s);
    ldns_pkt_free(p);
    p = ask(f->z, "n1.mx.test.", LDNS_RR_TYPE_AAAA, 0);
    assert_int_equal(ldns_pkt_ancount(p), 1);
    ldns_pkt_free(p);
    p = ask(f->z, "mx.test.", LDNS_RR_TYPE_NS, 0);
    assert_int_equal(ldns_pkt_ancount(p), 5);
    assert_int_equal(ldns_pkt_arcount(p), 6); /* glue: 4 A + n1 AAAA + w1 AAAA */
    ldns_pkt_free(p);
    p = ask(f->z, "mx.test.", LDNS_RR_TYPE_SOA, 0);
    assert_int_equal(ldns_pkt_ancount(p), 1);
    assert_int_equal(ldns_pkt_arcount(p), 0);
    ldns_pkt_free(p);
    p = ask(f->z, "mx.test.", LDNS_RR_TYPE_TXT, 0);
    assert_int_equal(ldns_pkt_ancount(p), 1);
    ldns_pkt_free(p);
}

static void assert_negative(ldns_pkt *p, ldns_pkt_rcode rcode)
{
    assert_int_equal(ldns_pkt_get_rcode(p), rcode);
    assert_true(ldns_pkt_aa(p));
    assert_int_equal(ldns_pkt_ancount(p), 0);
    assert_int_equal(ldns_pkt_nscount(p), 1);
    ldns_rr *soa = ldns_rr_list_rr(ldns_pkt_authority(p), 0);
    assert_int_equal(ldns_rr_get_type(soa), LDNS_RR_TYPE_SOA);
    assert_int_equal(ldns_rr_ttl(soa), 30);
}

static void test_answer_nxdomain_nodata(void **state)
{
    struct fx *f = *state;
    ldns_pkt *p = ask(f->z, "nope.mx.test.", LDNS_RR_TYPE_A, 0);
    assert_negative(p, LDNS_RCODE_NXDOMAIN);
    ldns_pkt_free(p);
    p = ask(f->z, "deeper.n1.mx.test.", LDNS_RR_TYPE_A, 0);
    assert_negative(p, LDNS_RCODE_NXDOMAIN);
    ldns_pkt_free(p);
    p = ask(f->z, "relay.mx.test.", LDNS_RR_TYPE_A, 0); /* name exists, type does not */
    assert_negative(p, LDNS_RCODE_NOERROR);
    ldns_pkt_free(p);
    p = ask(f->z, "witness.mx.test.", LDNS_RR_TYPE_A, 0); /* empty non-terminal */
    assert_negative(p, LDNS_RCODE_NOERROR);
    ldns_pkt_free(p);
    p = ask(f->z, "n1.mx.test.", LDNS_RR_TYPE_CNAME, 0);
    assert_negative(p, LDNS_RCODE_NOERROR);
    ldns_pkt_free(p);
}

static void test_answer_negative_ttl(void **state)
{
    (void)state;
    struct dns_view v = base_view();
    v.soa_minimum = 7;
    dns_zone *z = build(&v);
    ldns_pkt *p = ask(z, "nope.mx.test.", LDNS_RR_TYPE_A, 0);
    assert_int_equal(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_authority(p), 0)), 7);
    ldns_pkt_free(p);
    dns_zone_free(z);
}

static void test_answer_refused(void **state)
{
    struct fx *f = *state;
    static const char *const names[] = { "example.com.", "test.", ".", "xmx.test.", "mx.test.example.com." };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        ldns_pkt *p = ask(f->z, names[i], LDNS_RR_TYPE_A, 0);
        assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_REFUSED);
        assert_false(ldns_pkt_aa(p));
        assert_int_equal(ldns_pkt_ancount(p) + ldns_pkt_nscount(p) + ldns_pkt_arcount(p), 0);
        assert_int_equal(info.in_zone, 0);
        ldns_pkt_free(p);
    }
    /* other classes, zone transfers */
    uint8_t q[512];
    struct dns_answer_opts o = { 0 };
    size_t n = mkq(q, "mx.test.", LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_CH, 0);
    ldns_pkt *p = ask_opts(f->z, &o, q, n);
    assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_REFUSED);
    ldns_pkt_free(p);
    p = ask(f->z, "mx.test.", LDNS_RR_TYPE_AXFR, 0);
    assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_REFUSED);
    ldns_pkt_free(p);
    p = ask(f->z, "mx.test.", LDNS_RR_TYPE_IXFR, 0);
    assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_REFUSED);
    ldns_pkt_free(p);
}

static void test_answer_case(void **state)
{
    struct fx *f = *state;
    uint8_t q[512];
    size_t n = mkq(q, "ReLaY.mX.TeSt.", LDNS_RR_TYPE_MX, LDNS_RR_CLASS_IN, 0);
    struct dns_answer_opts o = { 0 };
    ldns_pkt *p = ask_opts(f->z, &o, q, n);
    assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
    assert_int_equal(ldns_pkt_ancount(p), 4);
    /* the question is echoed byte for byte, case preserved */
    size_t qsec = n - 12;
    assert_memory_equal(resp_buf + 12, q + 12, qsec);
    ldns_pkt_free(p);
}

static void test_answer_compression(void **state)
{
    struct fx *f = *state;
    uint8_t q[512];
    size_t n = mkq(q, "relay.mx.test.", LDNS_RR_TYPE_MX, LDNS_RR_CLASS_IN, 0);
    struct dns_answer_opts o = { 0 };
    ldns_pkt *p = ask_opts(f->z, &o, q, n);
    /* the first answer's owner is a pointer to the question name (offset 12) */
    assert_int_equal(resp_buf[n], 0xC0);
    assert_int_equal(resp_buf[n + 1], 12);
    /* uncompressed, 4 MX + 5 glue records would need far more than this */
    size_t plain = 0;
    for (size_t s = LDNS_SECTION_ANSWER; s <= LDNS_SECTION_ADDITIONAL; s++) {
        ldns_rr_list *l = ldns_pkt_get_section_clone(p, (ldns_pkt_section)s);
        for (size_t i = 0; i < ldns_rr_list_rr_count(l); i++) {
            ldns_buffer *b = ldns_buffer_new(512);
            ldns_rr2buffer_wire(b, ldns_rr_list_rr(l, i), LDNS_SECTION_ANSWER);
            plain += ldns_buffer_position(b);
            ldns_buffer_free(b);
        }
        ldns_rr_list_deep_free(l);
    }
    assert_true(resp_len < n + plain);
    ldns_pkt_free(p);
}

static void test_answer_any_minimal(void **state)
{
    struct fx *f = *state;
    ldns_pkt *p = ask(f->z, "relay.mx.test.", LDNS_RR_TYPE_ANY, 0);
    assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
    assert_int_equal(ldns_pkt_ancount(p), 4); /* the MX rrset only */
    ldns_pkt_free(p);
    p = ask(f->z, "mx.test.", LDNS_RR_TYPE_ANY, 0);
    assert_int_equal(ldns_pkt_ancount(p), 1); /* SOA, not NS/TXT/SOA together */
    assert_int_equal(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_answer(p), 0)), LDNS_RR_TYPE_SOA);
    ldns_pkt_free(p);
    p = ask(f->z, "n1.mx.test.", LDNS_RR_TYPE_ANY, 0);
    assert_int_equal(ldns_pkt_ancount(p), 1);
    ldns_pkt_free(p);
    p = ask(f->z, "witness.mx.test.", LDNS_RR_TYPE_ANY, 0);
    assert_negative(p, LDNS_RCODE_NOERROR);
    ldns_pkt_free(p);
}

static void test_answer_edns(void **state)
{
    struct fx *f = *state;
    ldns_pkt *p = ask(f->z, "relay.mx.test.", LDNS_RR_TYPE_MX, 4096);
    assert_true(ldns_pkt_edns(p));
    assert_int_equal(ldns_pkt_edns_udp_size(p), 1232); /* ours */
    assert_int_equal(ldns_pkt_edns_version(p), 0);
    ldns_pkt_free(p);
    struct dns_answer_opts o = { .edns_udp_size = 4000 };
    uint8_t q[512];
    size_t n = mkq(q, "relay.mx.test.", LDNS_RR_TYPE_MX, LDNS_RR_CLASS_IN, 1400);
    p = ask_opts(f->z, &o, q, n);
    assert_int_equal(ldns_pkt_edns_udp_size(p), 4000);
    ldns_pkt_free(p);
    /* EDNS version 1 → BADVERS (extended rcode 16 = 1 << 4 | 0) */
    q[n - 11 + 6] = 1; /* OPT is last: name(1) type(2) class(2) ext-rcode(1), then version */
    p = ask_opts(f->z, &o, q, n);
    assert_int_equal(ldns_pkt_get_rcode(p), 0);
    assert_int_equal(ldns_pkt_edns_extended_rcode(p), 1);
    assert_int_equal(info.rcode, 16);
    ldns_pkt_free(p);
}

/* A zone with many SMTP nodes: the MX answer does not fit 512 bytes. */
static dns_zone *big_zone(size_t count)
{
    static struct dns_view_node nodes[120];
    static char names[120][64], addrs[120][32];
    for (size_t i = 0; i < count; i++) {
        snprintf(names[i], sizeof names[i], "smtp-node-with-a-longish-name-%03zu", i);
        snprintf(addrs[i], sizeof addrs[i], "10.0.%zu.%zu", i / 200, i % 200 + 1);
        nodes[i] = (struct dns_view_node){ .name = names[i], .site = i % 2 ? "a" : "b",
                                           .ipv4 = addrs[i], .smtp = 1, .dns = i < 2, .healthy = 1 };
    }
    struct dns_view v = base_view();
    v.nodes = nodes;
    v.n_nodes = count;
    v.n_extra = 0;
    return build(&v);
}

static void test_answer_truncation(void **state)
{
    (void)state;
    dns_zone *z = big_zone(20);
    /* no EDNS: 512 bytes; 20 MX (~45 bytes each) do not fit → TC, empty */
    ldns_pkt *p = ask(z, "relay.mx.test.", LDNS_RR_TYPE_MX, 0);
    assert_true(resp_len <= 512);
    assert_true(ldns_pkt_tc(p));
    assert_int_equal(ldns_pkt_ancount(p), 0);
    assert_int_equal(info.truncated, 1);
    ldns_pkt_free(p);
    /* EDNS 1232: the answer fits, the glue does not → no TC, no additional */
    p = ask(z, "relay.mx.test.", LDNS_RR_TYPE_MX, 1232);
    assert_true(resp_len <= 1232);
    assert_false(ldns_pkt_tc(p));
    assert_int_equal(ldns_pkt_ancount(p), 20);
    assert_int_equal(ldns_pkt_arcount(p), 0);
    assert_true(ldns_pkt_edns(p)); /* OPT kept */
    ldns_pkt_free(p);
    /* a client advertising less than 512 still gets 512 */
    p = ask(z, "relay.mx.test.", LDNS_RR_TYPE_MX, 100);
    assert_true(ldns_pkt_tc(p));
    assert_true(resp_len <= 512);
    ldns_pkt_free(p);
    /* TCP: everything */
    uint8_t q[512];
    size_t n = mkq(q, "relay.mx.test.", LDNS_RR_TYPE_MX, LDNS_RR_CLASS_IN, 0);
    struct dns_answer_opts o = { .tcp = 1 };
    p = ask_opts(z, &o, q, n);
    assert_false(ldns_pkt_tc(p));
    assert_int_equal(ldns_pkt_ancount(p), 20);
    assert_int_equal(ldns_pkt_arcount(p), 20);
    assert_true(resp_len > 1232);
    ldns_pkt_free(p);
    /* forced truncation (RRL slip) */
    o = (struct dns_answer_opts){ .truncate = 1 };
    n = mkq(q, "n1.mx.test.", LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, 0);
    p = ask_opts(z, &o, q, n);
    assert_true(ldns_pkt_tc(p));
    assert_int_equal(ldns_pkt_ancount(p), 0);
    ldns_pkt_free(p);
    dns_zone_free(z);
}

static void test_answer_servfail(void **state)
{
    struct fx *f = *state;
    uint8_t q[512];
    size_t n = mkq(q, "relay.mx.test.", LDNS_RR_TYPE_MX, LDNS_RR_CLASS_IN, 0);
    struct dns_answer_opts o = { .servfail = 1 };
    ldns_pkt *p = ask_opts(f->z, &o, q, n);
    assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_SERVFAIL);
    assert_int_equal(ldns_pkt_ancount(p), 0);
    ldns_pkt_free(p);
    n = mkq(q, "example.com.", LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, 0);
    p = ask_opts(f->z, &o, q, n);
    assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_REFUSED); /* still not a resolver */
    ldns_pkt_free(p);
    o.servfail = 0;
    p = ask_opts(NULL, &o, q, n); /* no zone yet */
    assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_SERVFAIL);
    ldns_pkt_free(p);
}

static void expect_rcode_header(const uint8_t *q, size_t n, int rcode)
{
    int act = dns_server_answer(NULL, NULL, q, n, resp_buf, sizeof resp_buf, &resp_len, &info);
    assert_int_equal(act, DNS_ANSWER_SEND);
    assert_int_equal(resp_len, 12);
    assert_int_equal(resp_buf[0], q[0]);
    assert_int_equal(resp_buf[1], q[1]);
    assert_true(resp_buf[2] & 0x80);
    assert_int_equal(resp_buf[3] & 0xF, rcode);
    assert_int_equal(info.rcode, rcode);
}

static void test_answer_malformed(void **state)
{
    struct fx *f = *state;
    uint8_t q[600];
    size_t n = mkq(q, "relay.mx.test.", LDNS_RR_TYPE_MX, LDNS_RR_CLASS_IN, 1232);
    uint8_t b[600];
    /* shorter than a header: dropped */
    for (size_t len = 0; len < 12; len++)
        assert_int_equal(dns_server_answer(f->z, NULL, q, len, resp_buf, sizeof resp_buf, &resp_len, &info),
                         DNS_ANSWER_DROP);
    /* a response: dropped (no reflection loops) */
    memcpy(b, q, n);
    b[2] |= 0x80;
    assert_int_equal(dns_server_answer(f->z, NULL, b, n, resp_buf, sizeof resp_buf, &resp_len, &info),
                     DNS_ANSWER_DROP);
    /* every truncation of a valid query: FORMERR, never a read past the end */
    for (size_t len = 12; len < n; len++) {
        uint8_t *copy = malloc(len); /* exact size: ASan catches any overread */
        memcpy(copy, q, len);
        expect_rcode_header(copy, len, LDNS_RCODE_FORMERR);
        free(copy);
    }
    /* qdcount 2, ancount 1 */
    memcpy(b, q, n);
    b[5] = 2;
    expect_rcode_header(b, n, LDNS_RCODE_FORMERR);
    memcpy(b, q, n);
    b[7] = 1;
    expect_rcode_header(b, n, LDNS_RCODE_FORMERR);
    /* a compression pointer in the question */
    memcpy(b, q, n);
    b[12] = 0xC0;
    b[13] = 12;
    expect_rcode_header(b, n, LDNS_RCODE_FORMERR);
    /* a label type 0x40 */
    memcpy(b, q, n);
    b[12] = 0x45;
    expect_rcode_header(b, n, LDNS_RCODE_FORMERR);
    /* two OPT records */
    memcpy(b, q, n);
    memcpy(b + n, q + n - 11, 11);
    b[11] = 2;
    expect_rcode_header(b, n + 11, LDNS_RCODE_FORMERR);
    /* an OPT whose rdlength runs past the end */
    memcpy(b, q, n);
    b[n - 1] = 40;
    expect_rcode_header(b, n, LDNS_RCODE_FORMERR);
    /* an OPT owner that is not the root */
    memcpy(b, q, n - 11);
    b[n - 11] = 0xC0;
    b[n - 10] = 12;
    memcpy(b + n - 9, q + n - 10, 10);
    expect_rcode_header(b, n + 1, LDNS_RCODE_FORMERR);
    /* OPT as the question type */
    size_t m = mkq(b, "mx.test.", LDNS_RR_TYPE_OPT, LDNS_RR_CLASS_IN, 0);
    expect_rcode_header(b, m, LDNS_RCODE_FORMERR);
    /* opcodes other than QUERY: NOTIMP */
    memcpy(b, q, n);
    b[2] = (uint8_t)((b[2] & 0x87) | (LDNS_PACKET_NOTIFY << 3));
    expect_rcode_header(b, n, LDNS_RCODE_NOTIMPL);
    b[2] = (uint8_t)((b[2] & 0x87) | (LDNS_PACKET_UPDATE << 3));
    expect_rcode_header(b, n, LDNS_RCODE_NOTIMPL);
    /* a name longer than 255 octets */
    uint8_t longq[400] = { 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0 };
    size_t off = 12;
    for (int i = 0; i < 5; i++) {
        longq[off++] = 63;
        memset(longq + off, 'a', 63);
        off += 63;
    }
    longq[off++] = 0;
    longq[off++] = 0; longq[off++] = 1; longq[off++] = 0; longq[off++] = 1;
    expect_rcode_header(longq, off, LDNS_RCODE_FORMERR);
    /* trailing garbage after a valid query is ignored */
    memcpy(b, q, n);
    memset(b + n, 0xFF, 7);
    int act = dns_server_answer(f->z, NULL, b, n + 7, resp_buf, sizeof resp_buf, &resp_len, &info);
    assert_int_equal(act, DNS_ANSWER_SEND);
    assert_int_equal(info.rcode, LDNS_RCODE_NOERROR);
}

/* The server's answer cache: a hit gives the same bytes as rendering the
 * query afresh, whatever the case of the name, the id, RD and CD. */
static void test_answer_cache_equivalent(void **state)
{
    struct fx *f = *state;
    struct dns__cache c;
    assert_int_equal(dns__cache_init(&c, 64), 0);
    static const char *const names[] = { "relay.mx.test.", "RELAY.MX.TEST.", "rElAy.Mx.TeSt.", "nope.mx.test.",
                                         "NoPe.MX.test.", "mx.test.", "MX.TEST.", "n1.MX.test.", "example.COM." };
    static const ldns_rr_type types[] = { LDNS_RR_TYPE_MX, LDNS_RR_TYPE_A, LDNS_RR_TYPE_NS, LDNS_RR_TYPE_ANY };
    static uint8_t plain[65535], cached[65535];
    size_t hits = 0;
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            for (size_t t = 0; t < 4; t++)
                for (int tcp = 0; tcp < 2; tcp++)
                    for (uint16_t edns = 0; edns <= 1232; edns += 1232) {
                        uint8_t q[512];
                        size_t n = mkq(q, names[i], types[t], LDNS_RR_CLASS_IN, edns);
                        q[0] = (uint8_t)(i * 7 + t);
                        q[1] = (uint8_t)round;
                        if (round == 1)
                            q[3] |= 0x10; /* CD */
                        struct dns_answer_opts o = { .tcp = tcp };
                        size_t pl = 0, cl = 0;
                        struct dns_answer_info pi, ci;
                        assert_int_equal(dns_server_answer(f->z, &o, q, n, plain, sizeof plain, &pl, &pi), DNS_ANSWER_SEND);
                        assert_int_equal(dns__answer(f->z, &o, q, n, cached, sizeof cached, &cl, &ci, &c), DNS_ANSWER_SEND);
                        assert_int_equal(pl, cl);
                        assert_memory_equal(plain, cached, pl);
                        assert_int_equal(pi.rcode, ci.rcode);
                        hits += round;
                    }
    assert_true(hits > 0);
    size_t used = 0;
    for (size_t i = 0; i < c.n; i++)
        used += c.ents[i].resp != NULL;
    assert_true(used > 0);
    dns__cache_free(&c);
}

/* ---- the server on a real loop ---- */

static void closed(void *arg) { *(int *)arg = 1; }

/* Sends q over UDP to addr and runs the loop until the answer arrives. */
static size_t udp_roundtrip(uv_loop_t *loop, const char *ip, int port, const uint8_t *q, size_t n, uint8_t *out)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, ip, &sa.sin_addr);
    assert_int_equal(sendto(fd, q, n, 0, (struct sockaddr *)&sa, sizeof sa), (ssize_t)n);
    ssize_t got = -1;
    for (int i = 0; i < 100000 && got < 0; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        got = recv(fd, out, 65535, 0);
    }
    close(fd);
    assert_true(got > 0);
    return (size_t)got;
}

static void test_server_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    dns_server *srv = NULL;
    char err[256];
    struct dns_server_config cfg = { .listen = "127.0.0.39:12195", .rrl_disable = 1 };
    assert_int_equal(dns_server_new(&srv, &loop, &cfg, err, sizeof err), DNS_SERVER_OK);
    assert_string_equal(dns_server_address(srv), "127.0.0.39:12195");
    /* a second server on the same address fails now, and cleans up */
    dns_server *dup = NULL;
    assert_int_equal(dns_server_new(&dup, &loop, &cfg, err, sizeof err), DNS_SERVER_ELISTEN);
    assert_non_null(strstr(err, "127.0.0.39:12195"));
    struct dns_server_config bad = { .listen = "nowhere" };
    assert_int_equal(dns_server_new(&dup, &loop, &bad, err, sizeof err), DNS_SERVER_EINVAL);

    uint8_t q[512], out[65535];
    size_t n = mkq(q, "relay.mx.test.", LDNS_RR_TYPE_MX, LDNS_RR_CLASS_IN, 0);
    size_t got = udp_roundtrip(&loop, "127.0.0.39", 12195, q, n, out);
    assert_int_equal(out[3] & 0xF, LDNS_RCODE_SERVFAIL); /* no zone yet */

    struct dns_view v = base_view();
    assert_int_equal(dns_server_set_view(srv, &v, err, sizeof err), DNS_SERVER_OK);
    got = udp_roundtrip(&loop, "127.0.0.39", 12195, q, n, out);
    ldns_pkt *p = NULL;
    assert_int_equal(ldns_wire2pkt(&p, out, got), LDNS_STATUS_OK);
    assert_int_equal(ldns_pkt_ancount(p), 4);
    ldns_pkt_free(p);

    /* a bad view is refused and the zone stays */
    struct dns_view badv = base_view();
    badv.relay_name = "relay.elsewhere.";
    assert_int_equal(dns_server_set_view(srv, &badv, err, sizeof err), DNS_SERVER_EVIEW);
    got = udp_roundtrip(&loop, "127.0.0.39", 12195, q, n, out);
    assert_int_equal(out[3] & 0xF, LDNS_RCODE_NOERROR);

    /* a new view: leader on site b, n1 drained */
    struct dns_view_node nodes[5];
    memcpy(nodes, base_nodes, sizeof nodes);
    nodes[0].drained = 1;
    v.nodes = nodes;
    v.leader_site = "b";
    v.serial = 43;
    assert_int_equal(dns_server_set_view(srv, &v, err, sizeof err), DNS_SERVER_OK);
    got = udp_roundtrip(&loop, "127.0.0.39", 12195, q, n, out);
    assert_int_equal(ldns_wire2pkt(&p, out, got), LDNS_STATUS_OK);
    assert_int_equal(ldns_pkt_ancount(p), 3);
    for (size_t i = 0; i < 3; i++) {
        ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_answer(p), i);
        char *host = ldns_rdf2str(ldns_rr_rdf(rr, 1));
        uint16_t pref = ldns_rdf2native_int16(ldns_rr_rdf(rr, 0));
        assert_int_equal(pref, strcmp(host, "n2.mx.test.") == 0 ? 20 : 10);
        free(host);
    }
    ldns_pkt_free(p);

    dns_server_set_servfail(srv, 1);
    got = udp_roundtrip(&loop, "127.0.0.39", 12195, q, n, out);
    assert_int_equal(out[3] & 0xF, LDNS_RCODE_SERVFAIL);
    dns_server_set_servfail(srv, 0);
    got = udp_roundtrip(&loop, "127.0.0.39", 12195, q, n, out);
    assert_int_equal(out[3] & 0xF, LDNS_RCODE_NOERROR);

    struct dns_server_stats st;
    dns_server_get_stats(srv, &st);
    assert_int_equal(st.queries, 6);
    assert_int_equal(st.servfail, 2);
    assert_int_equal(st.noerror, 4);

    int done = 0;
    dns_server_close(srv, closed, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- RRL ---- */

static struct sockaddr_storage v4(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &sin->sin_addr);
    return ss;
}

static void test_rrl(void **state)
{
    (void)state;
    dns_rrl *r = NULL;
    struct dns_rrl_config cfg = { .rate = 5, .burst = 5, .slip = 2 };
    assert_int_equal(dns_rrl_new(&r, &cfg), DNS_SERVER_OK);
    struct sockaddr_storage a = v4("192.0.2.1"), b = v4("192.0.2.77"), c = v4("198.51.100.1");
    for (int i = 0; i < 5; i++)
        assert_int_equal(dns_rrl_check(r, (struct sockaddr *)&a, 1000), DNS_RRL_PASS);
    /* same /24: limited, alternately dropped and slipped (slip 2) */
    assert_int_equal(dns_rrl_check(r, (struct sockaddr *)&b, 1000), DNS_RRL_DROP);
    assert_int_equal(dns_rrl_check(r, (struct sockaddr *)&a, 1000), DNS_RRL_SLIP);
    assert_int_equal(dns_rrl_check(r, (struct sockaddr *)&a, 1000), DNS_RRL_DROP);
    /* another prefix has its own bucket */
    assert_int_equal(dns_rrl_check(r, (struct sockaddr *)&c, 1000), DNS_RRL_PASS);
    /* 200 ms at 5/s gives one token back */
    assert_int_equal(dns_rrl_check(r, (struct sockaddr *)&a, 1200), DNS_RRL_PASS);
    assert_int_equal(dns_rrl_check(r, (struct sockaddr *)&a, 1200) != DNS_RRL_PASS, 1);
    /* a long pause refills up to the burst only */
    for (int i = 0; i < 5; i++)
        assert_int_equal(dns_rrl_check(r, (struct sockaddr *)&a, 100000), DNS_RRL_PASS);
    assert_int_equal(dns_rrl_check(r, (struct sockaddr *)&a, 100000) != DNS_RRL_PASS, 1);
    dns_rrl_free(r);

    /* IPv6 prefixes: /56 shared */
    cfg = (struct dns_rrl_config){ .rate = 1, .burst = 1, .slip = 1 };
    assert_int_equal(dns_rrl_new(&r, &cfg), DNS_SERVER_OK);
    struct sockaddr_in6 s6a = { .sin6_family = AF_INET6 }, s6b = s6a, s6c = s6a;
    inet_pton(AF_INET6, "2001:db8:0:100::1", &s6a.sin6_addr);
    inet_pton(AF_INET6, "2001:db8:0:1ff::2", &s6b.sin6_addr);
    inet_pton(AF_INET6, "2001:db8:0:200::1", &s6c.sin6_addr);
    assert_int_equal(dns_rrl_check(r, (struct sockaddr *)&s6a, 0), DNS_RRL_PASS);
    assert_int_equal(dns_rrl_check(r, (struct sockaddr *)&s6b, 0), DNS_RRL_SLIP); /* slip 1: always */
    assert_int_equal(dns_rrl_check(r, (struct sockaddr *)&s6c, 0), DNS_RRL_PASS);
    dns_rrl_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zone_from_view),
        cmocka_unit_test(test_zone_health_drain_leader),
        cmocka_unit_test(test_zone_soa_params),
        cmocka_unit_test(test_zone_bad_views),
        cmocka_unit_test_setup_teardown(test_answer_mx, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_answer_a_aaaa_ns_soa_txt, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_answer_nxdomain_nodata, fx_setup, fx_teardown),
        cmocka_unit_test(test_answer_negative_ttl),
        cmocka_unit_test_setup_teardown(test_answer_refused, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_answer_case, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_answer_compression, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_answer_any_minimal, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_answer_edns, fx_setup, fx_teardown),
        cmocka_unit_test(test_answer_truncation),
        cmocka_unit_test_setup_teardown(test_answer_servfail, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_answer_malformed, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_answer_cache_equivalent, fx_setup, fx_teardown),
        cmocka_unit_test(test_rrl),
        cmocka_unit_test(test_server_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
