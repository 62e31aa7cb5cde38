/* Response rate limiting per client prefix (UDP only).
 *
 * A token bucket per prefix (IPv4 /24, IPv6 /56 by default) in a fixed hash
 * table: rate tokens per second, at most burst. A response that finds no
 * token is limited: every slip-th one is sent as an empty truncated answer
 * (a real client retries over TCP, a spoofed victim gets a small packet),
 * the others are dropped. A slot taken by another prefix is reset to the
 * newcomer (a full bucket): the table is bounded, collisions forget state. */
#include "dns/dns_server.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

struct rrl_ent {
    uint8_t key[17];   /* family byte + masked address */
    uint8_t used;
    uint64_t tokens;   /* thousandths of a response */
    uint64_t last_ms;
    unsigned limited;
};

struct dns_rrl {
    struct dns_rrl_config cfg;
    struct rrl_ent *tab;
};

int dns_rrl_new(dns_rrl **out, const struct dns_rrl_config *cfg)
{
    dns_rrl *r = calloc(1, sizeof *r);
    if (r == NULL)
        return DNS_SERVER_ENOMEM;
    if (cfg != NULL)
        r->cfg = *cfg;
    if (r->cfg.rate == 0)
        r->cfg.rate = 100;
    if (r->cfg.burst == 0)
        r->cfg.burst = 2 * r->cfg.rate;
    if (r->cfg.slip == 0)
        r->cfg.slip = 2;
    if (r->cfg.ipv4_prefix == 0 || r->cfg.ipv4_prefix > 32)
        r->cfg.ipv4_prefix = 24;
    if (r->cfg.ipv6_prefix == 0 || r->cfg.ipv6_prefix > 128)
        r->cfg.ipv6_prefix = 56;
    if (r->cfg.buckets == 0)
        r->cfg.buckets = 4096;
    if ((r->tab = calloc(r->cfg.buckets, sizeof *r->tab)) == NULL) {
        free(r);
        return DNS_SERVER_ENOMEM;
    }
    *out = r;
    return DNS_SERVER_OK;
}

void dns_rrl_free(dns_rrl *r)
{
    if (r == NULL)
        return;
    free(r->tab);
    free(r);
}

static void mask_copy(uint8_t *dst, const uint8_t *src, size_t bytes, unsigned prefix)
{
    for (size_t i = 0; i < bytes; i++) {
        unsigned bits = prefix >= (i + 1) * 8 ? 8 : (prefix > i * 8 ? prefix - (unsigned)i * 8 : 0);
        dst[i] = (uint8_t)(src[i] & (uint8_t)(0xFF00 >> bits));
    }
}

int dns_rrl_check(dns_rrl *r, const struct sockaddr *addr, uint64_t now_ms)
{
    uint8_t key[17] = { 0 };
    if (addr->sa_family == AF_INET) {
        key[0] = 4;
        mask_copy(key + 1, (const uint8_t *)&((const struct sockaddr_in *)addr)->sin_addr, 4, r->cfg.ipv4_prefix);
    } else if (addr->sa_family == AF_INET6) {
        key[0] = 6;
        mask_copy(key + 1, ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr, 16, r->cfg.ipv6_prefix);
    } else {
        return DNS_RRL_PASS;
    }
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < sizeof key; i++)
        h = (h ^ key[i]) * 16777619u;
    struct rrl_ent *e = &r->tab[h % r->cfg.buckets];
    uint64_t cap = (uint64_t)r->cfg.burst * 1000;
    if (!e->used || memcmp(e->key, key, sizeof key) != 0) {
        memcpy(e->key, key, sizeof key);
        e->used = 1;
        e->tokens = cap;
        e->last_ms = now_ms;
        e->limited = 0;
    }
    if (now_ms > e->last_ms) {
        uint64_t add = (now_ms - e->last_ms) * r->cfg.rate;
        e->tokens = add >= cap || e->tokens + add > cap ? cap : e->tokens + add;
        e->last_ms = now_ms;
    }
    if (e->tokens >= 1000) {
        e->tokens -= 1000;
        return DNS_RRL_PASS;
    }
    e->limited++;
    return e->limited % r->cfg.slip == 0 ? DNS_RRL_SLIP : DNS_RRL_DROP;
}
