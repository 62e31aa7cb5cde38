/* The answer builder: query bytes → response bytes, from memory.
 *
 * Happy path: a bounds-checked cursor reads the header, the one question
 * (name kept as asked, for the echo) and the additional section (EDNS0 OPT);
 * the zone gives the rrset (or NXDOMAIN / NODATA with the SOA in the
 * authority section); ldns renders the response with name compression. An
 * answer larger than the client's limit (512 without EDNS, min(client,
 * ours) with it, 65535 on TCP) loses its additional section first, then its
 * answer and authority with TC set, so the client retries over TCP.
 *
 * Failure modes: shorter than a header, or a response (QR) → dropped (no
 * reflection); other opcodes → NOTIMP; bad counts, a bad name, a truncated
 * record, two OPTs → FORMERR (header only, id echoed); EDNS version > 0 →
 * BADVERS; class other than IN, names outside the zone, zone transfers →
 * REFUSED; servfail mode or no zone → SERVFAIL. Only memory is read; the
 * cursor never moves past qlen. */
#include "dns/dns_server_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define DNS_HDR 12
#define RCODE_BADVERS 16

struct cur {
    const uint8_t *p;
    size_t len, off;
    int err;
};

static uint8_t cur_u8(struct cur *c)
{
    if (c->err || c->off + 1 > c->len) { c->err = 1; return 0; }
    return c->p[c->off++];
}

static uint16_t cur_u16(struct cur *c)
{
    if (c->err || c->off + 2 > c->len) { c->err = 1; return 0; }
    uint16_t v = (uint16_t)(c->p[c->off] << 8 | c->p[c->off + 1]);
    c->off += 2;
    return v;
}

static uint32_t cur_u32(struct cur *c)
{
    uint32_t hi = cur_u16(c);
    return hi << 16 | cur_u16(c);
}

static void cur_skip(struct cur *c, size_t n)
{
    if (c->err || n > c->len - c->off) { c->err = 1; return; }
    c->off += n;
}

/* A question name: uncompressed labels, copied as asked into out. */
static size_t cur_qname(struct cur *c, uint8_t *out)
{
    size_t n = 0;
    for (;;) {
        uint8_t l = cur_u8(c);
        if (c->err || (l & 0xC0) != 0 || n + 1 + l > LDNS_MAX_DOMAINLEN) { c->err = 1; return 0; }
        out[n++] = l;
        if (l == 0)
            return n;
        if (l > c->len - c->off) { c->err = 1; return 0; }
        memcpy(out + n, c->p + c->off, l);
        c->off += l;
        n += l;
    }
}

/* Any name in a record: skipped; a compression pointer ends it. */
static int cur_skip_name(struct cur *c)
{
    size_t total = 0;
    for (;;) {
        uint8_t l = cur_u8(c);
        if (c->err)
            return -1;
        if ((l & 0xC0) == 0xC0) { cur_u8(c); return c->err ? -1 : 0; }
        if ((l & 0xC0) != 0 || (total += (size_t)l + 1) > LDNS_MAX_DOMAINLEN) { c->err = 1; return -1; }
        if (l == 0)
            return 0;
        cur_skip(c, l);
    }
}

struct query {
    uint16_t id, flags;
    uint8_t qname[LDNS_MAX_DOMAINLEN + 1];
    size_t qname_len;
    uint16_t qtype, qclass;
    int edns;
    uint16_t edns_size;
    uint8_t edns_version;
    int edns_do;
};

enum parse_res { P_OK, P_DROP, P_FORMERR, P_NOTIMP };

static int parse_query(struct query *q, const uint8_t *buf, size_t len)
{
    struct cur c = { .p = buf, .len = len };
    if (len < DNS_HDR)
        return P_DROP;
    q->id = cur_u16(&c);
    q->flags = cur_u16(&c);
    uint16_t qd = cur_u16(&c), an = cur_u16(&c), ns = cur_u16(&c), ar = cur_u16(&c);
    if (q->flags & 0x8000)
        return P_DROP; /* a response: never answer it */
    if (((q->flags >> 11) & 0xF) != LDNS_PACKET_QUERY)
        return P_NOTIMP;
    if (qd != 1 || an != 0 || ns != 0)
        return P_FORMERR;
    q->qname_len = cur_qname(&c, q->qname);
    q->qtype = cur_u16(&c);
    q->qclass = cur_u16(&c);
    if (c.err)
        return P_FORMERR;
    for (unsigned i = 0; i < ar; i++) {
        size_t name_at = c.off;
        if (cur_skip_name(&c) != 0)
            return P_FORMERR;
        int root = c.off == name_at + 1 && buf[name_at] == 0;
        uint16_t type = cur_u16(&c), klass = cur_u16(&c);
        uint32_t ttl = cur_u32(&c);
        uint16_t rdlen = cur_u16(&c);
        cur_skip(&c, rdlen);
        if (c.err)
            return P_FORMERR;
        if (type == LDNS_RR_TYPE_OPT) {
            if (q->edns || !root)
                return P_FORMERR;
            q->edns = 1;
            q->edns_size = klass;
            q->edns_version = (uint8_t)(ttl >> 16);
            q->edns_do = (ttl & 0x8000) != 0;
        }
    }
    return P_OK;
}

/* A response of a bare header: FORMERR/NOTIMP when the question is unusable. */
static size_t header_only(const uint8_t *q, size_t qlen, int rcode, uint8_t *out)
{
    memset(out, 0, DNS_HDR);
    out[0] = q[0];
    out[1] = q[1];
    /* QR, opcode echoed, RD echoed */
    out[2] = (uint8_t)(0x80 | (qlen > 2 ? (q[2] & 0x79) : 0));
    out[3] = (uint8_t)(rcode & 0xF);
    return DNS_HDR;
}

#define MAX_RRS 512

struct resp {
    int rcode, aa;
    const ldns_rr *an[MAX_RRS], *ns[4], *ad[MAX_RRS];
    size_t n_an, n_ns, n_ad;
};

static void add_glue(const dns_zone *z, struct resp *r, const ldns_rdf *host)
{
    const struct dns__node *n = dns__zone_find(z, host);
    if (n == NULL)
        return;
    static const uint16_t types[] = { LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA };
    for (size_t t = 0; t < 2; t++) {
        const struct dns__rrset *s = dns__node_rrset(n, types[t]);
        for (size_t i = 0; s != NULL && i < ldns_rr_list_rr_count(s->rrs) && r->n_ad < MAX_RRS; i++)
            r->ad[r->n_ad++] = ldns_rr_list_rr(s->rrs, i);
    }
}

/* RFC 8482: ANY gets one rrset of the name, the most useful one. */
static const struct dns__rrset *any_rrset(const struct dns__node *n)
{
    static const uint16_t pref[] = { LDNS_RR_TYPE_MX, LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA, LDNS_RR_TYPE_SOA };
    for (size_t i = 0; i < sizeof pref / sizeof pref[0]; i++) {
        const struct dns__rrset *s = dns__node_rrset(n, pref[i]);
        if (s != NULL)
            return s;
    }
    return n->n_sets ? &n->sets[0] : NULL;
}

static void lookup(const dns_zone *z, const ldns_rdf *qname, uint16_t qtype, struct resp *r)
{
    r->aa = 1;
    const struct dns__node *n = dns__zone_find(z, qname);
    if (n == NULL) {
        r->rcode = LDNS_RCODE_NXDOMAIN;
        r->ns[r->n_ns++] = z->neg_soa;
        return;
    }
    const struct dns__rrset *s = qtype == LDNS_RR_TYPE_ANY ? any_rrset(n) : dns__node_rrset(n, qtype);
    r->rcode = LDNS_RCODE_NOERROR;
    if (s == NULL) {
        r->ns[r->n_ns++] = z->neg_soa;
        return;
    }
    for (size_t i = 0; i < ldns_rr_list_rr_count(s->rrs) && r->n_an < MAX_RRS; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(s->rrs, i);
        r->an[r->n_an++] = rr;
        if (s->type == LDNS_RR_TYPE_MX)
            add_glue(z, r, ldns_rr_rdf(rr, 1));
        else if (s->type == LDNS_RR_TYPE_NS)
            add_glue(z, r, ldns_rr_rdf(rr, 0));
    }
}

enum { R_FULL = 0, R_NO_ADDITIONAL = 1, R_TRUNCATED = 2 };

/* Renders r; the zone's records are borrowed (pushed, then unlinked before
 * the packet is freed). Returns the wire length (copied into out only when
 * it fits), 0 on failure. */
static size_t render(const struct query *q, const struct resp *r, const struct dns_answer_opts *o,
                     int mode, uint8_t *out, size_t out_cap)
{
    size_t len = 0;
    ldns_pkt *p = ldns_pkt_new();
    ldns_rr *qrr = ldns_rr_new();
    ldns_rdf *qname = ldns_dname_new_frm_data((uint16_t)q->qname_len, q->qname);
    if (p == NULL || qrr == NULL || qname == NULL) {
        ldns_rdf_deep_free(qname);
        ldns_rr_free(qrr);
        ldns_pkt_free(p);
        return 0;
    }
    ldns_rr_set_owner(qrr, qname);
    ldns_rr_set_type(qrr, q->qtype);
    ldns_rr_set_class(qrr, q->qclass);
    ldns_rr_set_question(qrr, true);
    ldns_pkt_set_id(p, q->id);
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_opcode(p, LDNS_PACKET_QUERY);
    ldns_pkt_set_rd(p, (q->flags & 0x0100) != 0);
    ldns_pkt_set_cd(p, (q->flags & 0x0010) != 0);
    ldns_pkt_set_aa(p, r->aa);
    ldns_pkt_set_tc(p, mode == R_TRUNCATED);
    ldns_pkt_set_rcode(p, (uint8_t)(r->rcode & 0xF));
    int ok = ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, qrr);
    if (!ok)
        ldns_rr_free(qrr);
    if (mode != R_TRUNCATED) {
        for (size_t i = 0; ok && i < r->n_an; i++)
            ok = ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, (ldns_rr *)r->an[i]);
        for (size_t i = 0; ok && i < r->n_ns; i++)
            ok = ldns_pkt_push_rr(p, LDNS_SECTION_AUTHORITY, (ldns_rr *)r->ns[i]);
    }
    if (mode == R_FULL)
        for (size_t i = 0; ok && i < r->n_ad; i++)
            ok = ldns_pkt_push_rr(p, LDNS_SECTION_ADDITIONAL, (ldns_rr *)r->ad[i]);
    if (q->edns) {
        ldns_pkt_set_edns_udp_size(p, o->edns_udp_size);
        ldns_pkt_set_edns_version(p, 0);
        ldns_pkt_set_edns_do(p, false);
        if (r->rcode > 0xF)
            ldns_pkt_set_edns_extended_rcode(p, (uint8_t)(r->rcode >> 4));
    }
    uint8_t *wire = NULL;
    size_t wlen = 0;
    if (ok && ldns_pkt2wire(&wire, p, &wlen) == LDNS_STATUS_OK) {
        if (wlen <= out_cap)
            memcpy(out, wire, wlen);
        len = wlen; /* the caller checks it against its limit (<= out_cap) */
    }
    free(wire);
    /* unlink the borrowed records, then free the packet and the question */
    ldns_rr_list_set_rr_count(ldns_pkt_answer(p), 0);
    ldns_rr_list_set_rr_count(ldns_pkt_authority(p), 0);
    ldns_rr_list_set_rr_count(ldns_pkt_additional(p), 0);
    ldns_pkt_free(p);
    return len;
}

/* ---- the answer cache (per server; see dns_server_internal.h) ---- */

int dns__cache_init(struct dns__cache *c, size_t entries)
{
    c->n = entries;
    c->ents = entries ? calloc(entries, sizeof *c->ents) : NULL;
    return entries == 0 || c->ents != NULL ? 0 : -1;
}

void dns__cache_clear(struct dns__cache *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->ents[i].resp);
        c->ents[i].resp = NULL;
    }
}

void dns__cache_free(struct dns__cache *c)
{
    dns__cache_clear(c);
    free(c->ents);
    c->ents = NULL;
    c->n = 0;
}

/* The key: the question name in lower case, type, class, the size limit,
 * EDNS present, servfail mode. Everything else in a response is the same for
 * equal keys but the id, RD/CD and the question's case, which are patched. */
static size_t cache_key(uint8_t *key, const struct query *q, size_t limit, int servfail)
{
    for (size_t i = 0; i < q->qname_len; i++)
        key[i] = (uint8_t)tolower(q->qname[i]);
    size_t n = q->qname_len;
    key[n++] = (uint8_t)(q->qtype >> 8);
    key[n++] = (uint8_t)q->qtype;
    key[n++] = (uint8_t)(q->qclass >> 8);
    key[n++] = (uint8_t)q->qclass;
    key[n++] = (uint8_t)(limit >> 8);
    key[n++] = (uint8_t)limit;
    key[n++] = (uint8_t)((q->edns ? 1 : 0) | (servfail ? 2 : 0) | (limit > 0xFFFF ? 4 : 0));
    return n;
}

static uint32_t cache_hash(const uint8_t *key, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ key[i]) * 16777619u;
    return h;
}

static void cache_patch(uint8_t *out, const uint8_t *qbuf, const struct query *q)
{
    out[0] = qbuf[0];
    out[1] = qbuf[1];
    out[2] = (uint8_t)((out[2] & ~0x01) | (qbuf[2] & 0x01)); /* RD */
    out[3] = (uint8_t)((out[3] & ~0x10) | (qbuf[3] & 0x10)); /* CD */
    memcpy(out + DNS_HDR, q->qname, q->qname_len);        /* the name as asked */
}

int dns_server_answer(const dns_zone *zone, const struct dns_answer_opts *opts, const uint8_t *qbuf,
                      size_t qlen, uint8_t *out, size_t out_cap, size_t *out_len,
                      struct dns_answer_info *info)
{
    return dns__answer(zone, opts, qbuf, qlen, out, out_cap, out_len, info, NULL);
}

int dns__answer(const dns_zone *zone, const struct dns_answer_opts *opts, const uint8_t *qbuf,
                size_t qlen, uint8_t *out, size_t out_cap, size_t *out_len,
                struct dns_answer_info *info, struct dns__cache *cache)
{
    struct dns_answer_opts o = opts ? *opts : (struct dns_answer_opts){ 0 };
    struct dns_answer_info dummy;
    info = info ? info : &dummy;
    memset(info, 0, sizeof *info);
    info->rcode = -1;
    if (o.edns_udp_size < 512)
        o.edns_udp_size = o.edns_udp_size ? 512 : 1232;
    if (out_cap < 512)
        return DNS_ANSWER_DROP;
    struct query q;
    memset(&q, 0, sizeof q);
    int pr = parse_query(&q, qbuf, qlen);
    if (pr == P_DROP)
        return DNS_ANSWER_DROP;
    if (pr == P_FORMERR || pr == P_NOTIMP) {
        info->rcode = pr == P_FORMERR ? LDNS_RCODE_FORMERR : LDNS_RCODE_NOTIMPL;
        *out_len = header_only(qbuf, qlen, info->rcode, out);
        return DNS_ANSWER_SEND;
    }
    info->qtype = q.qtype;

    size_t limit = 65535;
    if (!o.tcp) {
        limit = 512;
        if (q.edns && q.edns_size > 512)
            limit = q.edns_size < o.edns_udp_size ? q.edns_size : o.edns_udp_size;
    }
    if (limit > out_cap)
        limit = out_cap;
    uint8_t key[LDNS_MAX_DOMAINLEN + 16];
    size_t klen = 0;
    uint32_t hash = 0;
    struct dns__cache_ent *ce = NULL;
    if (cache != NULL && cache->n > 0 && zone != NULL && !o.truncate && !(q.edns && q.edns_version != 0)) {
        klen = cache_key(key, &q, limit, o.servfail);
        hash = cache_hash(key, klen);
        ce = &cache->ents[hash % cache->n];
        if (ce->resp != NULL && ce->hash == hash && ce->klen == klen && memcmp(ce->key, key, klen) == 0 &&
            ce->len <= out_cap) {
            memcpy(out, ce->resp, ce->len);
            cache_patch(out, qbuf, &q);
            *info = ce->info;
            *out_len = ce->len;
            return DNS_ANSWER_SEND;
        }
    }

    struct resp r;
    r.rcode = 0;
    r.aa = 0;
    r.n_an = r.n_ns = r.n_ad = 0;
    ldns_rdf *qname = NULL;
    if (q.edns && q.edns_version != 0) {
        r.rcode = RCODE_BADVERS;
    } else if (q.qtype == LDNS_RR_TYPE_OPT || q.qtype == LDNS_RR_TYPE_TSIG) {
        info->rcode = LDNS_RCODE_FORMERR;
        *out_len = header_only(qbuf, qlen, info->rcode, out);
        return DNS_ANSWER_SEND;
    } else if (q.qclass != LDNS_RR_CLASS_IN && q.qclass != LDNS_RR_CLASS_ANY) {
        r.rcode = LDNS_RCODE_REFUSED;
    } else if (zone == NULL) {
        r.rcode = LDNS_RCODE_SERVFAIL;
    } else {
        qname = ldns_dname_new_frm_data((uint16_t)q.qname_len, q.qname);
        if (qname == NULL)
            return DNS_ANSWER_DROP;
        info->in_zone = ldns_dname_compare(qname, zone->apex) == 0 || ldns_dname_is_subdomain(qname, zone->apex);
        if (!info->in_zone || q.qtype == LDNS_RR_TYPE_AXFR || q.qtype == LDNS_RR_TYPE_IXFR)
            r.rcode = LDNS_RCODE_REFUSED;
        else if (o.servfail)
            r.rcode = LDNS_RCODE_SERVFAIL;
        else if (q.qtype == LDNS_RR_TYPE_MAILA || q.qtype == LDNS_RR_TYPE_MAILB)
            r.rcode = LDNS_RCODE_NOTIMPL;
        else
            lookup(zone, qname, q.qtype, &r);
        ldns_rdf_deep_free(qname);
    }

    size_t n = limit + 1;
    if (!o.truncate) {
        n = render(&q, &r, &o, R_FULL, out, out_cap);
        if (n > limit)
            n = render(&q, &r, &o, R_NO_ADDITIONAL, out, out_cap);
    }
    if (n > limit) {
        n = render(&q, &r, &o, R_TRUNCATED, out, out_cap);
        info->truncated = 1;
    }
    if (n == 0 || n > limit)
        return DNS_ANSWER_DROP;
    info->rcode = r.rcode;
    *out_len = n;
    if (ce != NULL && n <= DNS_CACHE_MAX_RESP) {
        uint8_t *copy = malloc(n);
        if (copy != NULL) {
            free(ce->resp);
            memcpy(copy, out, n);
            ce->resp = copy;
            ce->len = (uint16_t)n;
            ce->hash = hash;
            ce->klen = (uint16_t)klen;
            memcpy(ce->key, key, klen);
            ce->info = *info;
        }
    }
    return DNS_ANSWER_SEND;
}
