/* The zone view: an immutable in-memory zone computed from a dns_view.
 *
 * Happy path: every record is produced as zone-file text and parsed by ldns
 * (SOA; NS + glue for the DNS-serving healthy nodes; MX at relay_name and
 * bounce_name for the healthy, non-drained SMTP nodes, the leader's site at
 * mx_pref_leader and the others at mx_pref_other; A/AAAA for every node
 * name; the static extra records), owners are lower-cased, the list is
 * sorted canonically and cut into nodes (one per owner, empty non-terminals
 * added) holding one rrset per type. Lookups are a binary search.
 *
 * Failure modes: a missing or malformed field, a name outside the zone, an
 * address that does not parse, a forbidden extra record → DNS_SERVER_EVIEW
 * with the reason; allocation failure → DNS_SERVER_ENOMEM. Nothing is kept
 * from the view. */
#include "dns/dns_server_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ZONE_DEFAULT_TTL 30
#define ZONE_NAME_MAX (LDNS_MAX_DOMAINLEN + 2)

struct zb {
    const struct dns_view *v;
    dns_zone *z;
    ldns_rr_list *rrs;
    uint32_t ttl;
    char *errmsg;
    size_t errmsg_size;
};

static int zb_fail(struct zb *b, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int zb_fail(struct zb *b, int err, const char *fmt, ...)
{
    if (b->errmsg != NULL && b->errmsg_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->errmsg, b->errmsg_size, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* Host names we generate records from: letters, digits, '-', '_', '.'. */
static int name_chars_ok(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > LDNS_MAX_DOMAINLEN)
        return 0;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!isalnum(c) && c != '-' && c != '_' && c != '.')
            return 0;
    }
    return 1;
}

int dns_zone_name(const char *zone, const char *in, char *out, size_t out_size, char *err, size_t errlen)
{
    char apex[ZONE_NAME_MAX + 1];
    size_t zl = zone ? strlen(zone) : 0;
    int an = snprintf(apex, sizeof apex, "%.*s.", (int)(zl && zone[zl - 1] == '.' ? zl - 1 : zl), zone ? zone : "");
    if (zl == 0 || an < 0 || (size_t)an >= sizeof apex) {
        snprintf(err, errlen, "invalid zone \"%s\"", zone ? zone : "(null)");
        return DNS_SERVER_EVIEW;
    }
    for (char *p = apex; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    size_t alen = strlen(apex) - 1;
    if (in != NULL && strcmp(in, "@") == 0) {
        snprintf(out, out_size, "%s", apex);
        return DNS_SERVER_OK;
    }
    if (!name_chars_ok(in) || in[0] == '.' || strstr(in, "..") != NULL) {
        snprintf(err, errlen, "invalid name \"%s\"", in ? in : "(null)");
        return DNS_SERVER_EVIEW;
    }
    size_t len = strlen(in);
    int absolute = in[len - 1] == '.';
    size_t bare = absolute ? len - 1 : len;
    if (!absolute && bare >= alen && strncasecmp(in + bare - alen, apex, alen) == 0 &&
        (bare == alen || in[bare - alen - 1] == '.'))
        absolute = 1;
    int n = absolute ? snprintf(out, out_size, "%.*s.", (int)bare, in)
                     : snprintf(out, out_size, "%s.%s", in, apex);
    if (n < 0 || (size_t)n >= out_size || (size_t)n > LDNS_MAX_DOMAINLEN + 1) {
        snprintf(err, errlen, "name too long \"%s\"", in);
        return DNS_SERVER_EVIEW;
    }
    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    size_t olen = strlen(out);
    if (olen < alen + 1 || strcmp(out + olen - alen - 1, apex) != 0 ||
        (olen > alen + 1 && out[olen - alen - 2] != '.')) {
        snprintf(err, errlen, "\"%s\" is outside the zone %s", in, apex);
        return DNS_SERVER_EVIEW;
    }
    return DNS_SERVER_OK;
}

/* A view name resolved inside the zone being built (dns_zone_name). */
static int zb_name(struct zb *b, const char *what, const char *in, char *out, size_t out_size)
{
    char err[512];
    if (dns_zone_name(b->z->apex_str, in, out, out_size, err, sizeof err) != DNS_SERVER_OK)
        return zb_fail(b, DNS_SERVER_EVIEW, "%s: %s", what, err);
    return DNS_SERVER_OK;
}

static int zb_add(struct zb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int zb_add(struct zb *b, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        return zb_fail(b, DNS_SERVER_EVIEW, "record too long");
    ldns_rr *rr = NULL;
    ldns_status st = ldns_rr_new_frm_str(&rr, line, b->ttl, NULL, NULL);
    if (st != LDNS_STATUS_OK)
        return zb_fail(b, DNS_SERVER_EVIEW, "record \"%s\": %s", line, ldns_get_errorstr_by_id(st));
    if (!ldns_rr_list_push_rr(b->rrs, rr)) {
        ldns_rr_free(rr);
        return zb_fail(b, DNS_SERVER_ENOMEM, "out of memory");
    }
    return DNS_SERVER_OK;
}

static int node_in_mx(const struct dns_view_node *n)
{
    return n->smtp && n->healthy && !n->drained;
}

static int zb_mx(struct zb *b, const char *owner_in, const char *what)
{
    const struct dns_view *v = b->v;
    char owner[ZONE_NAME_MAX], host[ZONE_NAME_MAX];
    int rv = zb_name(b, what, owner_in, owner, sizeof owner);
    if (rv != DNS_SERVER_OK)
        return rv;
    uint16_t pl = v->mx_pref_leader ? v->mx_pref_leader : 10;
    uint16_t po = v->mx_pref_other ? v->mx_pref_other : 20;
    size_t listed = 0;
    for (size_t i = 0; i < v->n_nodes; i++) {
        const struct dns_view_node *n = &v->nodes[i];
        if (!node_in_mx(n))
            continue;
        if ((rv = zb_name(b, "node", n->name, host, sizeof host)) != DNS_SERVER_OK)
            return rv;
        int leader = v->leader_site != NULL && strcmp(v->leader_site, n->site) == 0;
        if ((rv = zb_add(b, "%s IN MX %u %s", owner, leader ? pl : po, host)) != DNS_SERVER_OK)
            return rv;
        listed++;
    }
    /* No healthy SMTP node: keep every non-drained SMTP node listed (at the
     * fallback preference) rather than publishing no MX at all, which senders
     * would treat as a permanent failure. */
    for (size_t i = 0; listed == 0 && i < v->n_nodes; i++) {
        const struct dns_view_node *n = &v->nodes[i];
        if (!n->smtp || n->drained)
            continue;
        if ((rv = zb_name(b, "node", n->name, host, sizeof host)) != DNS_SERVER_OK)
            return rv;
        if ((rv = zb_add(b, "%s IN MX %u %s", owner, po, host)) != DNS_SERVER_OK)
            return rv;
    }
    return DNS_SERVER_OK;
}

static int cmp_rdf(const void *a, const void *b)
{
    return ldns_dname_compare(*(ldns_rdf *const *)a, *(ldns_rdf *const *)b);
}

static int cmp_node(const void *a, const void *b)
{
    return ldns_dname_compare(((const struct dns__node *)a)->name, ((const struct dns__node *)b)->name);
}

/* Cuts the sorted record list into nodes and rrsets, adding empty
 * non-terminals between the apex and every owner. */
static int zb_index(struct zb *b)
{
    dns_zone *z = b->z;
    size_t n = ldns_rr_list_rr_count(z->all);
    /* owners, plus at most one ENT per label of each owner */
    size_t cap = 0;
    for (size_t i = 0; i < n; i++)
        cap += ldns_dname_label_count(ldns_rr_owner(ldns_rr_list_rr(z->all, i))) + 1;
    ldns_rdf **names = calloc(cap ? cap : 1, sizeof *names);
    if (names == NULL)
        return zb_fail(b, DNS_SERVER_ENOMEM, "out of memory");
    size_t nn = 0;
    int rv = DNS_SERVER_OK;
    for (size_t i = 0; i < n; i++) {
        ldns_rdf *owner = ldns_rr_owner(ldns_rr_list_rr(z->all, i));
        if (nn > 0 && ldns_dname_compare(names[nn - 1], owner) == 0)
            continue;
        if ((names[nn] = ldns_rdf_clone(owner)) == NULL) { rv = DNS_SERVER_ENOMEM; goto out; }
        nn++;
        ldns_rdf *p = ldns_dname_left_chop(owner);
        while (p != NULL && ldns_dname_is_subdomain(p, z->apex)) {
            names[nn++] = p;
            p = ldns_dname_left_chop(p);
        }
        ldns_rdf_deep_free(p);
    }
    qsort(names, nn, sizeof *names, cmp_rdf);
    z->nodes = calloc(nn ? nn : 1, sizeof *z->nodes);
    if (z->nodes == NULL) { rv = DNS_SERVER_ENOMEM; goto out; }
    for (size_t i = 0; i < nn; i++) {
        if (z->n_nodes > 0 && ldns_dname_compare(z->nodes[z->n_nodes - 1].name, names[i]) == 0)
            continue;
        z->nodes[z->n_nodes++].name = names[i];
        names[i] = NULL;
    }
    /* rrsets: the records are sorted by owner then type */
    for (size_t i = 0; i < n;) {
        ldns_rr *rr = ldns_rr_list_rr(z->all, i);
        struct dns__node key = { .name = ldns_rr_owner(rr) };
        struct dns__node *node = bsearch(&key, z->nodes, z->n_nodes, sizeof *z->nodes, cmp_node);
        size_t j = i;
        while (j < n && ldns_dname_compare(ldns_rr_owner(ldns_rr_list_rr(z->all, j)), key.name) == 0)
            j++;
        node->sets = calloc(j - i, sizeof *node->sets);
        if (node->sets == NULL) { rv = DNS_SERVER_ENOMEM; goto out; }
        for (size_t k = i; k < j; k++) {
            ldns_rr *r = ldns_rr_list_rr(z->all, k);
            struct dns__rrset *set = node->n_sets ? &node->sets[node->n_sets - 1] : NULL;
            if (set == NULL || set->type != ldns_rr_get_type(r)) {
                set = &node->sets[node->n_sets++];
                set->type = (uint16_t)ldns_rr_get_type(r);
                if ((set->rrs = ldns_rr_list_new()) == NULL) { rv = DNS_SERVER_ENOMEM; goto out; }
            }
            if (!ldns_rr_list_push_rr(set->rrs, r)) { rv = DNS_SERVER_ENOMEM; goto out; }
        }
        i = j;
    }
out:
    for (size_t i = 0; i < nn; i++)
        ldns_rdf_deep_free(names[i]);
    free(names);
    if (rv != DNS_SERVER_OK)
        return zb_fail(b, rv, "out of memory");
    return rv;
}

static int zb_extra(struct zb *b, const char *line)
{
    ldns_rr *rr = NULL;
    ldns_rdf *prev = NULL;
    ldns_status st = ldns_rr_new_frm_str(&rr, line, b->ttl, b->z->apex, &prev);
    ldns_rdf_deep_free(prev);
    if (st != LDNS_STATUS_OK)
        return zb_fail(b, DNS_SERVER_EVIEW, "extra record \"%s\": %s", line, ldns_get_errorstr_by_id(st));
    ldns_rr_type t = ldns_rr_get_type(rr);
    const char *why = NULL;
    if (t == LDNS_RR_TYPE_SOA || t == LDNS_RR_TYPE_NS || t == LDNS_RR_TYPE_CNAME || t == LDNS_RR_TYPE_DNAME)
        why = "SOA, NS, CNAME and DNAME are not allowed";
    else if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN)
        why = "class must be IN";
    else if (ldns_dname_compare(ldns_rr_owner(rr), b->z->apex) != 0 &&
             !ldns_dname_is_subdomain(ldns_rr_owner(rr), b->z->apex))
        why = "owner outside the zone";
    if (why != NULL) {
        ldns_rr_free(rr);
        return zb_fail(b, DNS_SERVER_EVIEW, "extra record \"%s\": %s", line, why);
    }
    if (!ldns_rr_list_push_rr(b->rrs, rr)) {
        ldns_rr_free(rr);
        return zb_fail(b, DNS_SERVER_ENOMEM, "out of memory");
    }
    return DNS_SERVER_OK;
}

static int zb_records(struct zb *b)
{
    const struct dns_view *v = b->v;
    dns_zone *z = b->z;
    char name[ZONE_NAME_MAX], mname[ZONE_NAME_MAX] = "", rname[ZONE_NAME_MAX];
    int rv;
    /* A/AAAA for every node; NS for the healthy DNS-serving ones (all DNS
     * nodes when none is healthy: a zone always has NS records). */
    int any_dns = 0, any_healthy_dns = 0;
    for (size_t i = 0; i < v->n_nodes; i++) {
        const struct dns_view_node *n = &v->nodes[i];
        if (n->site == NULL || *n->site == '\0')
            return zb_fail(b, DNS_SERVER_EVIEW, "node %s: no site", n->name ? n->name : "(null)");
        if ((rv = zb_name(b, "node", n->name, name, sizeof name)) != DNS_SERVER_OK)
            return rv;
        for (size_t k = 0; k < i; k++)
            if (strcasecmp(v->nodes[k].name, n->name) == 0)
                return zb_fail(b, DNS_SERVER_EVIEW, "node %s: listed twice", n->name);
        if (strcmp(name, z->apex_str) == 0)
            return zb_fail(b, DNS_SERVER_EVIEW, "node %s: a node cannot be the apex", n->name);
        unsigned char buf[16];
        if (n->ipv4 == NULL && n->ipv6 == NULL)
            return zb_fail(b, DNS_SERVER_EVIEW, "node %s: no address", n->name);
        if (n->ipv4 != NULL && inet_pton(AF_INET, n->ipv4, buf) != 1)
            return zb_fail(b, DNS_SERVER_EVIEW, "node %s: bad IPv4 \"%s\"", n->name, n->ipv4);
        if (n->ipv6 != NULL && inet_pton(AF_INET6, n->ipv6, buf) != 1)
            return zb_fail(b, DNS_SERVER_EVIEW, "node %s: bad IPv6 \"%s\"", n->name, n->ipv6);
        if (n->ipv4 != NULL && (rv = zb_add(b, "%s IN A %s", name, n->ipv4)) != DNS_SERVER_OK)
            return rv;
        if (n->ipv6 != NULL && (rv = zb_add(b, "%s IN AAAA %s", name, n->ipv6)) != DNS_SERVER_OK)
            return rv;
        any_dns |= n->dns;
        any_healthy_dns |= n->dns && n->healthy;
    }
    if (!any_dns)
        return zb_fail(b, DNS_SERVER_EVIEW, "no DNS-serving node: the zone would have no NS");
    for (size_t i = 0; i < v->n_nodes; i++) {
        const struct dns_view_node *n = &v->nodes[i];
        if (!n->dns || (any_healthy_dns && !n->healthy))
            continue;
        zb_name(b, "node", n->name, name, sizeof name);
        if ((rv = zb_add(b, "%s IN NS %s", z->apex_str, name)) != DNS_SERVER_OK)
            return rv;
        if (mname[0] == '\0' || strcmp(name, mname) < 0)
            snprintf(mname, sizeof mname, "%s", name);
    }
    if (v->soa_mname != NULL && (rv = zb_name(b, "soa_mname", v->soa_mname, mname, sizeof mname)) != DNS_SERVER_OK)
        return rv;
    if (v->soa_rname != NULL && name_chars_ok(v->soa_rname) && v->soa_rname[strlen(v->soa_rname) - 1] == '.')
        snprintf(rname, sizeof rname, "%s", v->soa_rname); /* a mailbox may live outside the zone */
    else if ((rv = zb_name(b, "soa_rname", v->soa_rname ? v->soa_rname : "hostmaster", rname, sizeof rname)) != DNS_SERVER_OK)
        return rv;
    uint32_t minimum = v->soa_minimum ? v->soa_minimum : b->ttl;
    if ((rv = zb_add(b, "%s IN SOA %s %s %u %u %u %u %u", z->apex_str, mname, rname, v->serial,
                     v->soa_refresh ? v->soa_refresh : 300, v->soa_retry ? v->soa_retry : 60,
                     v->soa_expire ? v->soa_expire : 86400, minimum)) != DNS_SERVER_OK)
        return rv;
    z->neg_ttl = minimum < b->ttl ? minimum : b->ttl;
    if (v->relay_name == NULL)
        return zb_fail(b, DNS_SERVER_EVIEW, "relay_name is required");
    if ((rv = zb_mx(b, v->relay_name, "relay_name")) != DNS_SERVER_OK)
        return rv;
    if (v->bounce_name != NULL && (rv = zb_mx(b, v->bounce_name, "bounce_name")) != DNS_SERVER_OK)
        return rv;
    for (size_t i = 0; i < v->n_extra; i++)
        if ((rv = zb_extra(b, v->extra[i])) != DNS_SERVER_OK)
            return rv;
    return DNS_SERVER_OK;
}

int dns_zone_build(dns_zone **out, const struct dns_view *v, char *errmsg, size_t errmsg_size)
{
    struct zb b = { .v = v, .errmsg = errmsg, .errmsg_size = errmsg_size };
    int rv;
    *out = NULL;
    if (v == NULL || !name_chars_ok(v->zone) || v->zone[0] == '.')
        return zb_fail(&b, DNS_SERVER_EVIEW, "zone: invalid apex \"%s\"", v && v->zone ? v->zone : "(null)");
    b.ttl = v->ttl ? v->ttl : ZONE_DEFAULT_TTL;
    if ((b.z = calloc(1, sizeof *b.z)) == NULL) { rv = zb_fail(&b, DNS_SERVER_ENOMEM, "out of memory"); goto err; }
    size_t zl = strlen(v->zone);
    int n = snprintf(b.z->apex_str, sizeof b.z->apex_str, "%.*s.", (int)(v->zone[zl - 1] == '.' ? zl - 1 : zl), v->zone);
    if (n < 0 || (size_t)n >= sizeof b.z->apex_str || strstr(b.z->apex_str, "..") != NULL) {
        rv = zb_fail(&b, DNS_SERVER_EVIEW, "zone: invalid apex \"%s\"", v->zone);
        goto err_after_zone;
    }
    for (char *p = b.z->apex_str; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (ldns_str2rdf_dname(&b.z->apex, b.z->apex_str) != LDNS_STATUS_OK) {
        rv = zb_fail(&b, DNS_SERVER_EVIEW, "zone: invalid apex \"%s\"", v->zone);
        goto err_after_zone;
    }
    b.z->serial = v->serial;
    if ((b.rrs = ldns_rr_list_new()) == NULL) { rv = zb_fail(&b, DNS_SERVER_ENOMEM, "out of memory"); goto err_after_zone; }
    if ((rv = zb_records(&b)) != DNS_SERVER_OK)
        goto err_after_list;
    /* canonical order, lower-case owners, duplicates removed */
    for (size_t i = 0; i < ldns_rr_list_rr_count(b.rrs); i++)
        ldns_dname2canonical(ldns_rr_owner(ldns_rr_list_rr(b.rrs, i)));
    ldns_rr_list_sort(b.rrs);
    if ((b.z->all = ldns_rr_list_new()) == NULL) { rv = zb_fail(&b, DNS_SERVER_ENOMEM, "out of memory"); goto err_after_list; }
    size_t total = ldns_rr_list_rr_count(b.rrs);
    for (size_t i = 0; i < total; i++) {
        ldns_rr *rr = ldns_rr_list_rr(b.rrs, i);
        size_t have = ldns_rr_list_rr_count(b.z->all);
        if (have > 0 && ldns_rr_compare(ldns_rr_list_rr(b.z->all, have - 1), rr) == 0) {
            ldns_rr_free(rr);
            continue;
        }
        ldns_rr_list_push_rr(b.z->all, rr); /* capacity grows; failure is handled below */
        if (ldns_rr_list_rr_count(b.z->all) == have) {
            ldns_rr_free(rr);
            for (size_t k = i + 1; k < total; k++)
                ldns_rr_free(ldns_rr_list_rr(b.rrs, k));
            ldns_rr_list_free(b.rrs);
            b.rrs = NULL;
            rv = zb_fail(&b, DNS_SERVER_ENOMEM, "out of memory");
            goto err_after_zone;
        }
    }
    ldns_rr_list_free(b.rrs); /* the records now belong to z->all */
    b.rrs = NULL;
    if ((rv = zb_index(&b)) != DNS_SERVER_OK)
        goto err_after_zone;
    const struct dns__node *apex = dns__zone_find(b.z, b.z->apex);
    const struct dns__rrset *soa = apex ? dns__node_rrset(apex, LDNS_RR_TYPE_SOA) : NULL;
    b.z->soa = soa ? ldns_rr_list_rr(soa->rrs, 0) : NULL;
    if (b.z->soa == NULL || (b.z->neg_soa = ldns_rr_clone(b.z->soa)) == NULL) {
        rv = zb_fail(&b, DNS_SERVER_ENOMEM, "out of memory");
        goto err_after_zone;
    }
    ldns_rr_set_ttl(b.z->neg_soa, b.z->neg_ttl);
    *out = b.z;
    return DNS_SERVER_OK;
err_after_list:
    ldns_rr_list_deep_free(b.rrs);
err_after_zone:
    dns_zone_free(b.z);
err:
    return rv;
}

void dns_zone_free(dns_zone *z)
{
    if (z == NULL)
        return;
    for (size_t i = 0; i < z->n_nodes; i++) {
        for (size_t k = 0; k < z->nodes[i].n_sets; k++)
            ldns_rr_list_free(z->nodes[i].sets[k].rrs);
        free(z->nodes[i].sets);
        ldns_rdf_deep_free(z->nodes[i].name);
    }
    free(z->nodes);
    ldns_rr_list_deep_free(z->all);
    ldns_rr_free(z->neg_soa);
    ldns_rdf_deep_free(z->apex);
    free(z);
}

uint32_t dns_zone_serial(const dns_zone *z) { return z->serial; }
const char *dns_zone_apex(const dns_zone *z) { return z->apex_str; }

void dns_zone_print(const dns_zone *z, FILE *out)
{
    for (size_t i = 0; i < ldns_rr_list_rr_count(z->all); i++)
        ldns_rr_print(out, ldns_rr_list_rr(z->all, i));
}

const struct dns__node *dns__zone_find(const dns_zone *z, const ldns_rdf *name)
{
    struct dns__node key = { .name = (ldns_rdf *)name };
    return bsearch(&key, z->nodes, z->n_nodes, sizeof *z->nodes, cmp_node);
}

const struct dns__rrset *dns__node_rrset(const struct dns__node *n, uint16_t type)
{
    for (size_t i = 0; i < n->n_sets; i++)
        if (n->sets[i].type == type)
            return &n->sets[i];
    return NULL;
}
