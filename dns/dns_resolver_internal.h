/* Response handling of dns_resolver.c, exposed for unit tests and the fuzz
 * target. Not part of the public API. */
#ifndef DNS_RESOLVER_INTERNAL_H
#define DNS_RESOLVER_INTERNAL_H

#include <ldns/ldns.h>
#include "dns/dns_resolver.h"

/* Parses wire and checks that it answers (id, qname, qtype, class IN):
 * DNS_OK with *out (caller frees), DNS_EMISMATCH for an answer to something
 * else, DNS_EFORMERR when it does not parse. */
int dns__response_match(const uint8_t *wire, size_t len, uint16_t id, const ldns_rdf *qname,
                        ldns_rr_type qtype, ldns_pkt **out);
/* Maps the rcode: DNS_OK, DNS_ENXDOMAIN, DNS_ESERVFAIL, DNS_ERCODE. */
int dns__rcode_err(const ldns_pkt *p);

struct dns__mx { uint16_t pref; char host[DNS_NAME_MAX]; };
/* Extracts MX records of the answer into mx (at most max): returns the
 * count, DNS_ENULLMX for a null MX, or a negative rcode error. */
int dns__mx_extract(const ldns_pkt *p, struct dns__mx *mx, size_t max);
/* Extracts A or AAAA addresses of the answer: count or negative rcode error. */
int dns__addr_extract(const ldns_pkt *p, ldns_rr_type t, struct sockaddr_storage *a, size_t max);
/* Seconds an answer may be cached (0: do not cache). */
uint32_t dns__cache_ttl(const ldns_pkt *p, uint32_t max_ttl, uint32_t neg_max);
/* Sorts by preference and shuffles equal preferences (rnd: random words). */
void dns__mx_order(struct dns__mx *mx, size_t n, const uint32_t *rnd);
/* "IP:PORT", "[IP6]:PORT", "IP" → sockaddr. */
int dns__parse_server(const char *s, struct sockaddr_storage *ss);
/* First "nameserver" of a resolv.conf file. */
int dns__resolv_conf_server(const char *path, char *dst, size_t dst_size);

#endif
