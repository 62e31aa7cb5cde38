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

/* A direct-mapped cache of rendered responses, owned by one server and
 * cleared whenever its zone changes. */
#define DNS_CACHE_MAX_RESP 4096
struct dns__cache_ent {
    uint8_t *resp;              /* NULL: empty slot */
    uint16_t len, klen;
    uint32_t hash;
    struct dns_answer_info info;
    uint8_t key[LDNS_MAX_DOMAINLEN + 16];
};
struct dns__cache {
    struct dns__cache_ent *ents;
    size_t n;
};
int dns__cache_init(struct dns__cache *c, size_t entries);
void dns__cache_clear(struct dns__cache *c);
void dns__cache_free(struct dns__cache *c);
/* dns_server_answer() with an optional cache (NULL: none). */
int dns__answer(const dns_zone *zone, const struct dns_answer_opts *opts, const uint8_t *q, size_t qlen,
                uint8_t *out, size_t out_cap, size_t *out_len, struct dns_answer_info *info,
                struct dns__cache *cache);

/* NULL when the name does not exist (no records, not an empty non-terminal). */
const struct dns__node *dns__zone_find(const dns_zone *z, const ldns_rdf *name);
const struct dns__rrset *dns__node_rrset(const struct dns__node *n, uint16_t type);

#endif
