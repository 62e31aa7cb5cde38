/* Asynchronous MX resolver for egress, on the caller's libuv loop.
 *
 * dns_resolver_mx("example.org") gives the ordered list of addresses to try
 * for a mail domain (RFC 5321 §5.1): MX records by preference, shuffled among
 * equal preferences, each host's A (then AAAA) addresses; the domain itself
 * when there is no MX; a classified error otherwise:
 *   permanent ("undeliverable"): NXDOMAIN, null MX (RFC 7505), no address
 *                                 for any host, a malformed domain name;
 *   temporary ("deferred"):      SERVFAIL/REFUSED/other rcodes, timeouts,
 *                                 network errors, malformed answers.
 * Queries go to one recursive resolver (config `delivery.resolver`) over UDP
 * (a new socket, hence a new source port, and a random id per try; answers
 * must match id, source and question), falling back to TCP when truncated.
 * Answers are cached by (name, type) for their TTL, within size limits. */
#ifndef DNS_RESOLVER_H
#define DNS_RESOLVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

enum dns_err {
    DNS_OK = 0,
    DNS_ENOMEM = -12,
    DNS_EINVAL = -22,
    DNS_ECANCELED = -125,
    DNS_EBADNAME = -4000, /* perm: not a valid domain name */
    DNS_ENXDOMAIN,        /* perm: the domain does not exist */
    DNS_ENULLMX,          /* perm: null MX, the domain accepts no mail */
    DNS_ENOADDR,          /* perm: no A/AAAA for any mail host */
    DNS_ESERVFAIL,        /* temp: SERVFAIL */
    DNS_ERCODE,           /* temp: REFUSED, NOTIMP, FORMERR, other rcodes */
    DNS_ETIMEDOUT,        /* temp: no answer after every try */
    DNS_ENET,             /* temp: socket error */
    DNS_EFORMERR,         /* temp: the answer could not be parsed */
    DNS_EMISMATCH,        /* internal: an answer to another question (ignored) */
};
const char *dns_strerror(int err);

/* Limits and settings; zero fields take the defaults shown. */
struct dns_resolver_config {
    const char *server;        /* "IP:PORT", "IP" (port 53), "[IPv6]:PORT"; NULL or "" →
                                  first nameserver of resolv_conf, port 53 */
    const char *resolv_conf;   /* default "/etc/resolv.conf" */
    unsigned timeout_ms;       /* per try, default 2000 */
    unsigned tries;            /* default 3 */
    size_t cache_max_entries;  /* default 4096 */
    size_t cache_max_bytes;    /* wire bytes kept in the cache, default 4 MiB */
    uint32_t cache_max_ttl;    /* seconds, default 86400 */
    uint32_t negative_ttl_max; /* seconds, NXDOMAIN/no-data caching cap, default 900 */
    int no_cache;              /* 1: do not cache */
    uint16_t edns_udp_size;    /* default 1232; advertised in EDNS0 */
    int no_edns;               /* 1: plain 512-byte DNS */
    size_t max_mx;             /* MX hosts used, default 10 */
    size_t max_addrs;          /* addresses in a result, default 32 */
    int no_ipv6;               /* 1: do not ask AAAA */
};

#define DNS_NAME_MAX 256

struct dns_mx_target {
    char host[DNS_NAME_MAX];       /* MX host name (or the domain, implicit MX), no final dot */
    uint16_t preference;
    struct sockaddr_storage addr;  /* port 0: the caller sets delivery.port */
};

enum dns_mx_status { DNS_MX_OK = 0, DNS_MX_TEMPFAIL = 1, DNS_MX_PERMFAIL = 2 };

struct dns_mx_result {
    int status;         /* enum dns_mx_status */
    int err;            /* DNS_OK or the enum dns_err cause */
    char errmsg[256];
    int implicit_mx;    /* 1: no MX, the domain's own A/AAAA (RFC 5321 §5.1) */
    size_t n;
    const struct dns_mx_target *targets; /* valid during the callback only */
};

typedef struct dns_resolver dns_resolver;
typedef void (*dns_mx_cb)(const struct dns_mx_result *res, void *arg);

int dns_resolver_new(dns_resolver **out, uv_loop_t *loop, const struct dns_resolver_config *cfg,
                     char *errmsg, size_t errmsg_size);
/* Starts a lookup. Returns DNS_OK and calls cb exactly once later (possibly
 * on the next loop iteration for a cache hit), or returns an error now
 * (DNS_EBADNAME, DNS_ENOMEM, DNS_EINVAL) and never calls cb. */
int dns_resolver_mx(dns_resolver *r, const char *domain, dns_mx_cb cb, void *arg);
/* Pending lookups complete with DNS_ECANCELED (status TEMPFAIL); handles are
 * closed; closed_cb (may be NULL) runs once everything is freed. */
void dns_resolver_close(dns_resolver *r, void (*closed_cb)(void *arg), void *arg);
/* The server in use, "IP:PORT". */
const char *dns_resolver_server(const dns_resolver *r);

#endif
