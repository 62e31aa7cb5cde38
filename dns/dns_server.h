/* Authoritative DNS responder for the cluster's zone, on the caller's libuv
 * loop. Knows nothing of Raft: node/ builds a dns_zone from its replicated
 * cluster view (dns_zone_build), hands it over with dns_server_set_zone()
 * whenever the view changes, and flips dns_server_set_servfail() when the
 * node has had no leader contact for longer than its lease.
 *
 *   dns_view  --dns_zone_build-->  dns_zone (immutable)  --set_zone-->  server
 *   query bytes --dns_server_answer(zone)--> response bytes (UDP and TCP)
 *
 * What is published and when is described in docs/DNS.md. */
#ifndef DNS_SERVER_H
#define DNS_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <uv.h>

enum dns_server_err {
    DNS_SERVER_OK = 0,
    DNS_SERVER_ENOMEM = -12,
    DNS_SERVER_EINVAL = -22,
    DNS_SERVER_EVIEW = -4100, /* the view does not give a valid zone */
    DNS_SERVER_ELISTEN,       /* bind/listen failed */
};
const char *dns_server_strerror(int err);

/* ---- The view: what node/ knows about the cluster ---------------------- */

struct dns_view_node {
    const char *name;  /* host label(s) under the zone ("n1", "n1.site-a"), required */
    const char *site;  /* site name, required */
    const char *ipv4;  /* dotted quad or NULL */
    const char *ipv6;  /* IPv6 text or NULL; at least one address is required */
    int smtp;          /* 1: serves SMTP (candidate for MX) */
    int dns;           /* 1: serves DNS (candidate for NS) */
    int healthy;       /* 1: the leader considers it up */
    int drained;       /* 1: taken out of MX on purpose (drain) */
};

/* Names (zone, relay_name, bounce_name, soa_mname, soa_rname) are taken as
 * absolute when they end with "." or equal/end with the zone apex, otherwise
 * relative to the zone; "@" is the apex. Every published name must be inside
 * the zone. Zero numeric fields take the defaults shown. */
struct dns_view {
    const char *zone;         /* apex, e.g. "mx.example.net", required */
    const char *relay_name;   /* MX owner for the relay, required ("relay") */
    const char *bounce_name;  /* MX owner for bounces, NULL: none */
    uint32_t ttl;             /* every record, default 30 s */
    uint32_t serial;          /* SOA serial, supplied by the caller (must move
                                 on every view change, monotone) */
    const char *soa_mname;    /* default: the first NS host */
    const char *soa_rname;    /* default "hostmaster" (under the zone) */
    uint32_t soa_refresh;     /* default 300 */
    uint32_t soa_retry;       /* default 60 */
    uint32_t soa_expire;      /* default 86400 */
    uint32_t soa_minimum;     /* negative TTL, default = ttl */
    const char *leader_site;  /* the leader's site, NULL: no leader known */
    uint16_t mx_pref_leader;  /* preference for the leader's site, default 10 */
    uint16_t mx_pref_other;   /* preference for the other sites, default 20 */
    const struct dns_view_node *nodes;
    size_t n_nodes;
    const char *const *extra; /* static RR lines in zone-file syntax, owners
                                 relative to the zone ("@ TXT \"v=spf1 -all\"");
                                 SOA, NS, CNAME and DNAME are rejected */
    size_t n_extra;
};

typedef struct dns_zone dns_zone;

/* Builds an immutable zone. Returns DNS_SERVER_OK, or DNS_SERVER_EVIEW /
 * DNS_SERVER_ENOMEM with a message in errmsg. The view is not kept. */
int dns_zone_build(dns_zone **out, const struct dns_view *v, char *errmsg, size_t errmsg_size);
void dns_zone_free(dns_zone *z);
uint32_t dns_zone_serial(const dns_zone *z);
/* The absolute, lower-case name (final dot) that a view name stands for:
 * "@" is the apex, a name ending in the zone (with or without the final
 * dot) is taken as it is, any other is relative to the zone. The zone
 * builder and anyone naming the zone's records (the node's API) use it.
 * Returns DNS_SERVER_OK, or DNS_SERVER_EVIEW with why in err (a bad name,
 * too long, outside the zone). */
int dns_zone_name(const char *zone, const char *name, char *out, size_t out_size, char *err, size_t errlen);
/* The apex, absolute, lower case, with the final dot. */
const char *dns_zone_apex(const dns_zone *z);
/* Every record, one per line, in canonical order (owner, type, rdata). */
void dns_zone_print(const dns_zone *z, FILE *out);

/* ---- The answer builder (no I/O; used by the server, tests, fuzzing) --- */

struct dns_answer_opts {
    int tcp;                  /* 1: no size limit but 65535 */
    int servfail;             /* 1: SERVFAIL for the zone (lease lost) */
    uint16_t edns_udp_size;   /* our advertised/maximum UDP payload, default 1232 */
    int truncate;             /* 1: TC set, no records (RRL slip) */
};

enum dns_answer_action { DNS_ANSWER_DROP = 0, DNS_ANSWER_SEND = 1 };

struct dns_answer_info {
    int rcode;        /* the rcode sent (extended: 16 = BADVERS), -1 if dropped */
    int truncated;    /* TC was set */
    int in_zone;      /* the question was inside the zone */
    uint16_t qtype;
};

/* Parses one query (bounded, never reads past q[qlen-1]) and writes the
 * response into out (capacity out_cap, at least 512). Returns
 * DNS_ANSWER_SEND with *out_len set, or DNS_ANSWER_DROP (too short for a
 * header, a response, or out of memory). zone may be NULL (SERVFAIL). */
int dns_server_answer(const dns_zone *zone, const struct dns_answer_opts *opts,
                      const uint8_t *q, size_t qlen, uint8_t *out, size_t out_cap,
                      size_t *out_len, struct dns_answer_info *info);

/* ---- Response rate limiting (UDP), per client prefix ------------------- */

typedef struct dns_rrl dns_rrl;
struct dns_rrl_config {
    unsigned rate;      /* responses per second per prefix, default 100 */
    unsigned burst;     /* bucket size, default 2 * rate */
    unsigned slip;      /* every slip-th limited response is sent truncated
                           (TC, empty) instead of dropped; default 2, 1 = always */
    unsigned ipv4_prefix; /* default 24 */
    unsigned ipv6_prefix; /* default 56 */
    size_t buckets;     /* table size, default 4096 */
};
enum dns_rrl_verdict { DNS_RRL_PASS = 0, DNS_RRL_DROP = 1, DNS_RRL_SLIP = 2 };
int dns_rrl_new(dns_rrl **out, const struct dns_rrl_config *cfg);
void dns_rrl_free(dns_rrl *r);
/* One response to addr at time now_ms: pass, drop, or slip. */
int dns_rrl_check(dns_rrl *r, const struct sockaddr *addr, uint64_t now_ms);

/* ---- The server ---------------------------------------------------------- */

struct dns_server_config {
    const char *listen;        /* "IP:PORT" or "[IPv6]:PORT", required (UDP and TCP) */
    uint16_t edns_udp_size;    /* default 1232 */
    unsigned tcp_max_clients;  /* concurrent TCP connections, default 128;
                                  more are accepted and closed at once */
    unsigned tcp_idle_ms;      /* idle TCP connection closed after, default 10000 */
    unsigned tcp_max_queries;  /* queries per TCP connection, default 1000 */
    size_t tcp_max_pending;    /* unsent bytes per TCP connection before reading
                                  pauses, default 65536 */
    size_t answer_cache_entries; /* rendered responses kept, default 1024
                                  (cleared on every zone change) */
    int answer_cache_disable;  /* 1: render every response */
    int rrl_disable;           /* 1: no rate limiting */
    struct dns_rrl_config rrl; /* see above */
};

struct dns_server_stats {
    uint64_t queries, responses, dropped, rrl_dropped, rrl_slipped, truncated;
    uint64_t noerror, nxdomain, refused, servfail, formerr, notimp;
    uint64_t tcp_accepted, tcp_rejected;
};

typedef struct dns_server dns_server;

/* Binds UDP and TCP on cfg->listen and starts answering (SERVFAIL until a
 * zone is set). Returns an error now with a message in errmsg; handles
 * already opened are then closed and freed by the loop (keep running it). */
int dns_server_new(dns_server **out, uv_loop_t *loop, const struct dns_server_config *cfg,
                   char *errmsg, size_t errmsg_size);
/* Atomic swap: takes ownership of zone (NULL allowed), frees the previous
 * one; every later query sees the new zone, whole. Loop thread only. */
void dns_server_set_zone(dns_server *s, dns_zone *zone);
/* dns_zone_build() + dns_server_set_zone(); on error the current zone stays. */
int dns_server_set_view(dns_server *s, const struct dns_view *v, char *errmsg, size_t errmsg_size);
/* 1: SERVFAIL for every query inside the zone (outside stays REFUSED). */
void dns_server_set_servfail(dns_server *s, int on);
void dns_server_get_stats(const dns_server *s, struct dns_server_stats *st);
/* The bound address "IP:PORT" (useful with port 0). */
const char *dns_server_address(const dns_server *s);
/* Closes every handle; frees the zone and the server; closed_cb (may be
 * NULL) runs once everything is freed. */
void dns_server_close(dns_server *s, void (*closed_cb)(void *arg), void *arg);

#endif
