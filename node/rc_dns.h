/* The zone view of a cluster state (node/rc_dns.c), separate from the
 * running responder so that tests can check it without sockets. */
#ifndef RC_DNS_H
#define RC_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns_server.h"
#include "node/rc_config.h"
#include "raft/rc_fsm.h"

struct rc_dns_view_storage {
    struct dns_view_node nodes[RC_CFG_MAX_MEMBERS];
    char names[RC_CFG_MAX_MEMBERS][24];
};

/* Fills v (pointing into st, c, rv and extra, which must outlive it) from
 * the member table and dns.* keys of c and the replicated view rv (NULL: no
 * view yet). Node names are "n<ID>"; every member serves DNS; every member
 * but the witness serves SMTP; members absent from rv are unhealthy; the
 * serial is rv's view serial. */
void rc_dns_view_from(const struct rc_config *c, const struct rc_view *rv, const char *const *extra,
                      size_t n_extra, struct dns_view *v, struct rc_dns_view_storage *st);

/* The label of node `id` in the zone ("n<ID>"). */
void rc_dns_node_label(uint64_t id, char *buf, size_t len);

#endif
