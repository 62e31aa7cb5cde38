/* libFuzzer target: query bytes → the authoritative answer path (parser,
 * zone lookup, ldns rendering, truncation), over UDP and TCP limits and in
 * servfail mode, against a fixed zone. Every response must be a well-formed
 * DNS message no larger than the transport allows, echoing the query id, and
 * the server's answer cache must give the very same bytes (differential). */
#include "dns/dns_server.h"
#include "dns/dns_server_internal.h"

#include <ldns/ldns.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static dns_zone *zone;
static struct dns__cache cache;

static void zone_init(void)
{
    static const struct dns_view_node nodes[] = {
        { .name = "n1", .site = "a", .ipv4 = "127.0.0.31", .ipv6 = "fd00::31", .smtp = 1, .dns = 1, .healthy = 1 },
        { .name = "n2", .site = "a", .ipv4 = "127.0.0.32", .smtp = 1, .dns = 1, .healthy = 1 },
        { .name = "n3", .site = "b", .ipv4 = "127.0.0.33", .smtp = 1, .dns = 1, .healthy = 0 },
        { .name = "n4", .site = "b", .ipv4 = "127.0.0.34", .smtp = 1, .dns = 0, .healthy = 1, .drained = 1 },
        { .name = "w1.witness", .site = "c", .ipv6 = "fd00::35", .dns = 1, .healthy = 1 },
    };
    static const char *const extra[] = { "@ TXT \"v=spf1 -all\"", "_dmarc TXT \"v=DMARC1; p=reject\"" };
    struct dns_view v = { .zone = "mx.test", .relay_name = "relay", .bounce_name = "bounce",
                          .serial = 1, .leader_site = "a", .nodes = nodes, .n_nodes = 5,
                          .extra = extra, .n_extra = 2 };
    char err[256];
    if (dns_zone_build(&zone, &v, err, sizeof err) != DNS_SERVER_OK)
        abort();
    if (dns__cache_init(&cache, 256) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[65535], out2[65535];
    if (zone == NULL)
        zone_init();
    /* the input in a buffer of its exact size: ASan sees any overread */
    uint8_t *q = malloc(size ? size : 1);
    if (q == NULL)
        return 0;
    memcpy(q, data, size);
    for (int mode = 0; mode < 4; mode++) {
        struct dns_answer_opts o = { .tcp = mode == 1, .servfail = mode == 2, .truncate = mode == 3 };
        struct dns_answer_info info;
        size_t n = 0;
        if (dns_server_answer(zone, &o, q, size, out, sizeof out, &n, &info) != DNS_ANSWER_SEND)
            continue;
        if (n < 12 || (!o.tcp && n > 1232) || out[0] != q[0] || out[1] != q[1] || !(out[2] & 0x80))
            abort();
        /* cached: a miss (stores), then a hit; both equal to the plain answer */
        for (int pass = 0; pass < 2; pass++) {
            size_t n2 = 0;
            struct dns_answer_info info2;
            if (dns__answer(zone, &o, q, size, out2, sizeof out2, &n2, &info2, &cache) != DNS_ANSWER_SEND ||
                n2 != n || memcmp(out, out2, n) != 0 || info2.rcode != info.rcode)
                abort();
        }
        ldns_pkt *p = NULL;
        if (ldns_wire2pkt(&p, out, n) != LDNS_STATUS_OK)
            abort(); /* we produced something a client cannot parse */
        if (ldns_pkt_ra(p))
            abort();
        ldns_pkt_free(p);
    }
    free(q);
    return 0;
}
