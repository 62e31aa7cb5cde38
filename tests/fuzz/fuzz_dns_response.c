/* libFuzzer target: DNS answers as the resolver handles them. The input is
 * a datagram answering "example.org. MX" (the id is taken from the input so
 * that matching can succeed); a matching answer goes through every
 * extraction the resolver does (MX, null MX, A, AAAA, cache TTL). */
#include <stdint.h>
#include <stdlib.h>

#include "dns/dns_resolver_internal.h"

static ldns_rdf *qname;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (qname == NULL)
        qname = ldns_dname_new_frm_str("example.org.");
    if (size < 2)
        return 0;
    uint16_t id = (uint16_t)(data[0] << 8 | data[1]);
    static const ldns_rr_type types[] = { LDNS_RR_TYPE_MX, LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA };
    for (size_t t = 0; t < 3; t++) {
        ldns_pkt *p = NULL;
        int rv = dns__response_match(data, size, id, qname, types[t], &p);
        if (rv != DNS_OK) {
            if (p != NULL)
                abort();
            continue;
        }
        struct dns__mx mx[8];
        struct sockaddr_storage a[8];
        int n = dns__mx_extract(p, mx, 8);
        if (n > 8)
            abort();
        if (n > 0) {
            uint32_t rnd[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
            dns__mx_order(mx, (size_t)n, rnd);
            for (int i = 1; i < n; i++)
                if (mx[i - 1].pref > mx[i].pref)
                    abort();
        }
        if (dns__addr_extract(p, LDNS_RR_TYPE_A, a, 8) > 8 ||
            dns__addr_extract(p, LDNS_RR_TYPE_AAAA, a, 8) > 8)
            abort();
        if (dns__cache_ttl(p, 3600, 300) > 3600)
            abort();
        ldns_pkt_free(p);
    }
    return 0;
}
