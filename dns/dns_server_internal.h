/* Shared inside dns/ between the zone, the answer builder and the server. */
#ifndef DNS_SERVER_INTERNAL_H
#define DNS_SERVER_INTERNAL_H

#include "dns/dns_server.h"

#include <ldns/ldns.h>

struct dns__rrset {
    uint16_t type;
    ldns_rr_list *rrs;          /* owned by the zone */
};

struct dns__node {
    ldns_rdf *name;             /* lower case, absolute */
    struct dns__rrset *sets;    /* sorted by type; none for an empty non-terminal */
    size_t n_sets;
};

struct dns_zone {
    ldns_rdf *apex;
    char apex_str[LDNS_MAX_DOMAINLEN + 2];
    uint32_t serial;
    uint32_t neg_ttl;           /* min(SOA TTL, SOA minimum) */
    ldns_rr *soa;               /* borrowed from the apex node */
    ldns_rr *neg_soa;           /* the SOA with the negative TTL (owned) */
    ldns_rr_list *all;          /* every record, canonical order (owned) */
    struct dns__node *nodes;    /* sorted canonically */
    size_t n_nodes;
};

/* NULL when the name does not exist (no records, not an empty non-terminal). */
const struct dns__node *dns__zone_find(const dns_zone *z, const ldns_rdf *name);
const struct dns__rrset *dns__node_rrset(const struct dns__node *n, uint16_t type);

#endif
