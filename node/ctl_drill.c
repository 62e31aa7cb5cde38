/* `ricochetctl drill --site SITE [--keep-drained] [--wait SECONDS]`: a
 * planned failover drill of one site, as docs/DRILLS.md describes.
 *
 * 1. reads the cluster (GET /v1/cluster) and refuses before changing
 *    anything when the drill would leave no MX or no leader outside SITE;
 * 2. moves leadership out of SITE (the transfer of `ricochetctl transfer`,
 *    which waits for the new leader and re-asks when another node won);
 * 3. drains SITE (POST /v1/cluster/drain): its nodes keep running but
 *    leave the MX set;
 * 4. asks every node's DNS responder for the relay name's MX records until
 *    none of them lists a host of SITE: that moment is when clients move;
 * 5. commits probe records through the new leader (POST /v1/admin/probe)
 *    and waits until every node has applied the log up to them: the
 *    cluster takes writes and every node follows;
 * 6. undrains SITE (unless --keep-drained) and waits until its hosts are
 *    back in every node's MX answer, at the fallback preference.
 * Leadership stays where the drill moved it. Each step is an event of the
 * timeline, printed as it happens (or as one JSON report with --json).
 *
 * DNS is asked over the wire with ldns, not through the node's API: the
 * drill reports what resolvers see. */
#include <ldns/ldns.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "node/ctl.h"

#define DRILL_MAX_NODES 64
#define DRILL_POLL_MS 100
#define DRILL_PROBES 50

struct drill_node {
    int64_t id;
    char site[64];
    bool witness, voter, healthy, drained;
    char http[256], dns[256], dns_name[256];
};

struct drill {
    const struct ctl *c;
    const char *site;
    long wait_ms;
    struct drill_node nodes[DRILL_MAX_NODES];
    size_t n;
    char relay[512];
    int64_t leader;
    char leader_site[64];
    int64_t messages;
    double t0;
    json_t *timeline;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Adds an event (fields stolen) to the timeline; prints the line for people. */
static void event(struct drill *d, const char *name, json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void event(struct drill *d, const char *name, json_t *fields, const char *fmt, ...)
{
    double t = now_ms() - d->t0;
    json_t *e = fields ? fields : json_object();
    json_object_set_new(e, "t_ms", json_integer((json_int_t)t));
    json_object_set_new(e, "event", json_string(name));
    json_array_append_new(d->timeline, e);
    if (d->c->json)
        return;
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    printf("%+8.3fs  %-13s %s\n", t / 1000.0, name, text);
    fflush(stdout);
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int load_cluster(struct drill *d, const char *server, json_t **out)
{
    return ctl_get_cluster(d->c, server, out);
}

static int read_members(struct drill *d, json_t *r)
{
    size_t i;
    json_t *o;
    d->n = 0;
    json_array_foreach(json_object_get(r, "nodes"), i, o) {
        if (d->n == DRILL_MAX_NODES)
            break;
        struct drill_node *x = &d->nodes[d->n++];
        memset(x, 0, sizeof *x);
        x->id = json_integer_value(json_object_get(o, "id"));
        snprintf(x->site, sizeof x->site, "%s", jstr(o, "site"));
        x->witness = json_is_true(json_object_get(o, "witness"));
        x->voter = strcmp(jstr(o, "role"), "voter") == 0;
        x->healthy = json_is_true(json_object_get(o, "healthy"));
        x->drained = json_is_true(json_object_get(o, "drained"));
        snprintf(x->http, sizeof x->http, "%s", jstr(o, "http"));
        snprintf(x->dns, sizeof x->dns, "%s", jstr(o, "dns"));
        snprintf(x->dns_name, sizeof x->dns_name, "%s", jstr(o, "dns_name"));
    }
    snprintf(d->relay, sizeof d->relay, "%s", jstr(json_object_get(r, "dns_names"), "relay_name"));
    d->leader = json_integer_value(json_object_get(r, "leader"));
    snprintf(d->leader_site, sizeof d->leader_site, "%s", jstr(r, "leader_site"));
    d->messages = json_integer_value(json_object_get(r, "messages"));
    return d->relay[0] && d->n ? 0 : -1;
}

static const struct drill_node *node_by_id(const struct drill *d, int64_t id)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->nodes[i].id == id)
            return &d->nodes[i];
    return NULL;
}

static const struct drill_node *node_by_dns_name(const struct drill *d, const char *name)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcasecmp(d->nodes[i].dns_name, name) == 0)
            return &d->nodes[i];
    return NULL;
}

/* ---- DNS over the wire --------------------------------------------------- */

struct mx_answer {
    int rcode; /* -1: no answer */
    size_t n;
    int pref[32];
    char host[32][256];
};

static void ask_mx(const char *hostport, const char *qname, struct mx_answer *a)
{
    memset(a, 0, sizeof *a);
    a->rcode = -1;
    char host[256];
    snprintf(host, sizeof host, "%s", hostport);
    char *colon = strrchr(host, ':');
    if (colon == NULL)
        return;
    *colon = '\0';
    int port = atoi(colon + 1);
    char *h = host;
    if (h[0] == '[') { /* [v6]:port */
        h++;
        h[strlen(h) - 1] = '\0';
    }
    ldns_resolver *res = ldns_resolver_new();
    ldns_rdf *ns = ldns_rdf_new_frm_str(strchr(h, ':') ? LDNS_RDF_TYPE_AAAA : LDNS_RDF_TYPE_A, h);
    ldns_rdf *name = ldns_dname_new_frm_str(qname);
    ldns_pkt *p = NULL;
    if (res && ns && name && ldns_resolver_push_nameserver(res, ns) == LDNS_STATUS_OK) {
        ldns_resolver_set_port(res, (uint16_t)port);
        ldns_resolver_set_recursive(res, false);
        ldns_resolver_set_retry(res, 1);
        ldns_resolver_set_timeout(res, (struct timeval){1, 0});
        if (ldns_resolver_send(&p, res, name, LDNS_RR_TYPE_MX, LDNS_RR_CLASS_IN, 0) != LDNS_STATUS_OK)
            p = NULL;
    }
    if (p != NULL) {
        a->rcode = ldns_pkt_get_rcode(p);
        ldns_rr_list *an = ldns_pkt_answer(p);
        for (size_t i = 0; an && i < ldns_rr_list_rr_count(an) && a->n < 32; i++) {
            ldns_rr *rr = ldns_rr_list_rr(an, i);
            if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_MX || ldns_rr_rd_count(rr) < 2)
                continue;
            char *ex = ldns_rdf2str(ldns_rr_rdf(rr, 1));
            if (ex == NULL)
                continue;
            a->pref[a->n] = ldns_rdf2native_int16(ldns_rr_rdf(rr, 0));
            snprintf(a->host[a->n++], sizeof a->host[0], "%s", ex);
            free(ex);
        }
        ldns_pkt_free(p);
    }
    ldns_rdf_deep_free(ns);
    ldns_rdf_deep_free(name);
    if (res)
        ldns_resolver_deep_free(res);
}

/* Hosts of `site` in the answer (-1: no usable answer). */
static int site_hosts(const struct drill *d, const struct mx_answer *a, const char *site)
{
    if (a->rcode != LDNS_RCODE_NOERROR || a->n == 0)
        return -1;
    int k = 0;
    for (size_t i = 0; i < a->n; i++) {
        const struct drill_node *x = node_by_dns_name(d, a->host[i]);
        k += x && strcmp(x->site, site) == 0;
    }
    return k;
}

static void describe(const struct mx_answer *a, char *out, size_t len)
{
    size_t w = 0;
    out[0] = '\0';
    for (size_t i = 0; i < a->n && w < len; i++)
        w += (size_t)snprintf(out + w, len - w, "%s%d %s", i ? ", " : "", a->pref[i], a->host[i]);
}

/* Asks every node's responder until want(site hosts) holds on each one that
 * answers. Returns 0 with the answering/silent counts, or -1 on timeout. */
static int wait_dns(struct drill *d, bool without_site, int *answering, int *silent, char *last, size_t lastlen)
{
    double deadline = now_ms() + (double)d->wait_ms;
    for (;;) {
        int ok = 0, ans = 0, quiet = 0;
        for (size_t i = 0; i < d->n; i++) {
            if (!d->nodes[i].dns[0])
                continue;
            struct mx_answer a;
            ask_mx(d->nodes[i].dns, d->relay, &a);
            int k = site_hosts(d, &a, d->site);
            if (a.rcode == -1) {
                quiet++;
                continue;
            }
            ans++;
            if (k >= 0 && (without_site ? k == 0 : k > 0))
                ok++;
            else
                describe(&a, last, lastlen);
        }
        *answering = ans;
        *silent = quiet;
        if (ans > 0 && ok == ans)
            return 0;
        if (now_ms() > deadline)
            return -1;
        ctl_sleep_ms(DRILL_POLL_MS);
    }
}

/* Every node that answers has applied the log up to `index` (the leader's
 * commit index once the probe records committed). Under live traffic the
 * nodes are never at the same record at one instant, so that is what is
 * waited for; when they happen to be, their state digests must agree. */
static int wait_caught_up(struct drill *d, int64_t index, int *nodes, bool *same_state, int64_t *messages)
{
    double deadline = now_ms() + (double)d->wait_ms;
    for (;;) {
        int seen = 0, behind = 0, same = 0;
        char first[80] = "";
        int64_t first_applied = -1;
        for (size_t i = 0; i < d->n; i++) {
            json_t *r;
            if (!d->nodes[i].http[0] || load_cluster(d, d->nodes[i].http, &r) != 0)
                continue;
            seen++;
            behind += json_integer_value(json_object_get(r, "applied_index")) < index;
            int64_t ap = json_integer_value(json_object_get(r, "applied_records"));
            if (seen == 1) {
                snprintf(first, sizeof first, "%s", jstr(r, "state_digest"));
                first_applied = ap;
                *messages = json_integer_value(json_object_get(r, "messages"));
            }
            same += ap == first_applied && strcmp(first, jstr(r, "state_digest")) == 0;
            json_decref(r);
        }
        if (seen > 0 && behind == 0) {
            *nodes = seen;
            *same_state = same == seen;
            return 0;
        }
        if (now_ms() > deadline)
            return -1;
        ctl_sleep_ms(DRILL_POLL_MS);
    }
}

/* POST to the leader. Leadership can still move while the cluster settles
 * (a healed partition, a restarted node): an answer that says "not the
 * leader" (421) or "try again" (503) is retried against whoever leads now,
 * until --wait runs out. */
static int post(struct drill *d, const char *server, const char *path, json_t *body, json_t **reply)
{
    char target[256];
    snprintf(target, sizeof target, "%s", server);
    double deadline = now_ms() + (double)d->wait_ms;
    for (;;) {
        int status = 0;
        json_t *r = NULL;
        int rv = ctl_request_to(d->c, target, "drill", "POST", path, json_incref(body), &r, &status, true);
        if (rv == CTL_OK || !(status == 421 || status == 503 || rv == CTL_UNREACHABLE) || now_ms() > deadline) {
            if (rv == CTL_REFUSED) {
                const char *msg = json_string_value(json_object_get(r, "error"));
                ctl_err("drill: %s: %s (HTTP %d from %s)", path, msg ? msg : "refused", status, target);
                json_decref(r);
                r = NULL;
            }
            json_decref(body);
            *reply = r;
            return rv;
        }
        json_decref(r);
        if (!d->c->json)
            fprintf(stderr, "ricochetctl: drill: %s: %s from %s, asking the leader again\n", path,
                    status ? "not served" : "no answer", target);
        ctl_sleep_ms(200);
        for (size_t i = 0; i < d->n; i++) {
            json_t *cl;
            if (!d->nodes[i].http[0] || load_cluster(d, d->nodes[i].http, &cl) != 0)
                continue;
            const struct drill_node *l = node_by_id(d, json_integer_value(json_object_get(cl, "leader")));
            json_decref(cl);
            if (l != NULL && l->http[0]) {
                snprintf(target, sizeof target, "%s", l->http);
                break;
            }
        }
    }
}

/* ---- the drill ----------------------------------------------------------- */

static int fail(struct drill *d, const char *why)
{
    event(d, "failed", json_pack("{s:s}", "error", why), "%s", why);
    return CTL_REFUSED;
}

static int run(struct drill *d, bool keep_drained)
{
    json_t *r;
    if (load_cluster(d, d->c->server, &r) != 0) {
        ctl_err("drill: cannot read the cluster from %s", d->c->server);
        return CTL_UNREACHABLE;
    }
    int bad = read_members(d, r);
    json_decref(r);
    if (bad) {
        ctl_err("drill: %s does not say which nodes and names the cluster has", d->c->server);
        return CTL_REFUSED;
    }
    /* Refuse before changing anything. */
    int in_site = 0, mx_elsewhere = 0;
    const struct drill_node *target = NULL, *writer = NULL;
    for (size_t i = 0; i < d->n; i++) {
        const struct drill_node *x = &d->nodes[i];
        bool here = strcmp(x->site, d->site) == 0;
        in_site += here && !x->witness;
        if (!here && !x->witness && x->healthy && !x->drained) {
            mx_elsewhere++;
            if (x->voter && target == NULL)
                target = x;
        }
    }
    if (in_site == 0) {
        ctl_err("drill: site %s has no mail nodes to drill", d->site);
        return CTL_REFUSED;
    }
    if (mx_elsewhere == 0 || target == NULL) {
        ctl_err("drill: no healthy, undrained voter outside site %s: the drill would leave no MX or no leader",
                d->site);
        return CTL_REFUSED;
    }
    if (!d->c->json)
        printf("drill of site %s: relay name %s, leader node %lld (site %s)\n", d->site, d->relay,
               (long long)d->leader, d->leader_site[0] ? d->leader_site : "?");
    d->t0 = now_ms();
    event(d, "start", json_pack("{s:I, s:s, s:I}", "leader", (json_int_t)d->leader, "leader_site", d->leader_site,
                                "messages", (json_int_t)d->messages),
          "leader %lld (site %s), %lld messages held", (long long)d->leader, d->leader_site, (long long)d->messages);

    /* leadership out of the site */
    const struct drill_node *leader = node_by_id(d, d->leader);
    int64_t new_leader = d->leader;
    if (leader == NULL || strcmp(leader->site, d->site) == 0) {
        double t = now_ms();
        int rv = ctl_transfer_run(d->c, leader ? leader->http : d->c->server, (uint64_t)target->id, &new_leader);
        if (rv != CTL_OK)
            return fail(d, "leadership did not move out of the site");
        const struct drill_node *nl = node_by_id(d, new_leader);
        event(d, "leader_moved", json_pack("{s:I, s:I, s:s, s:I}", "from", (json_int_t)d->leader, "to",
                                           (json_int_t)new_leader, "site", nl ? nl->site : "",
                                           "took_ms", (json_int_t)(now_ms() - t)),
              "node %lld -> node %lld (site %s) in %.0f ms", (long long)d->leader, (long long)new_leader,
              nl ? nl->site : "?", now_ms() - t);
    } else {
        event(d, "leader_stays", json_pack("{s:I}", "leader", (json_int_t)d->leader),
              "node %lld is outside site %s already", (long long)d->leader, d->site);
    }
    writer = node_by_id(d, new_leader);
    if (writer == NULL || !writer->http[0])
        return fail(d, "the new leader's API address is unknown");

    /* drain, then watch DNS move */
    json_t *reply = NULL;
    if (post(d, writer->http, "/v1/cluster/drain", json_pack("{s:s}", "site", d->site), &reply) != CTL_OK)
        return fail(d, "the drain was refused");
    json_decref(reply);
    double drained_at = now_ms();
    event(d, "drained", json_pack("{s:s}", "site", d->site), "site %s leaves the MX set", d->site);
    int answering, silent;
    char last[1024] = "";
    if (wait_dns(d, true, &answering, &silent, last, sizeof last) != 0) {
        char why[1200];
        snprintf(why, sizeof why, "a name server still lists site %s after %ld s: %s", d->site, d->wait_ms / 1000,
                 last[0] ? last : "no MX at all");
        return fail(d, why);
    }
    event(d, "dns_moved", json_pack("{s:I, s:i, s:i}", "after_drain_ms", (json_int_t)(now_ms() - drained_at),
                                    "answering", answering, "silent", silent),
          "every answering name server (%d, %d silent) lists no host of site %s, %.0f ms after the drain",
          answering, silent, d->site, now_ms() - drained_at);

    /* the cluster takes writes and agrees */
    reply = NULL;
    if (post(d, writer->http, "/v1/admin/probe",
             json_pack("{s:i, s:i, s:i}", "count", DRILL_PROBES, "size", 1024, "inflight", 8), &reply) != CTL_OK)
        return fail(d, "probe records were refused");
    json_int_t committed = json_integer_value(json_object_get(reply, "committed"));
    json_int_t failed = json_integer_value(json_object_get(reply, "failed"));
    json_decref(reply);
    event(d, "writes", json_pack("{s:I, s:I, s:I}", "node", (json_int_t)new_leader, "committed", committed,
                                 "failed", failed),
          "%lld probe records committed, %lld failed, through node %lld", (long long)committed,
          (long long)failed, (long long)new_leader);
    if (failed != 0 || committed != DRILL_PROBES)
        return fail(d, "not every probe record committed");
    json_t *lr;
    if (load_cluster(d, writer->http, &lr) != 0)
        return fail(d, "the new leader does not answer");
    int64_t index = json_integer_value(json_object_get(lr, "commit_index"));
    json_decref(lr);
    int nodes;
    bool same_state;
    int64_t messages = 0;
    if (wait_caught_up(d, index, &nodes, &same_state, &messages) != 0)
        return fail(d, "not every node applied the records committed during the drill");
    event(d, "caught_up", json_pack("{s:i, s:I, s:I}", "nodes", nodes, "index", (json_int_t)index, "messages",
                                    (json_int_t)messages),
          "%d nodes applied the log up to index %lld (with the drill's writes), %lld messages held", nodes,
          (long long)index, (long long)messages);
    if (same_state)
        event(d, "same_state", json_pack("{s:i}", "nodes", nodes),
              "and all %d were at the same record with the same state digest", nodes);

    if (keep_drained) {
        event(d, "kept_drained", NULL, "site %s stays drained (undo: ricochetctl undrain %s)", d->site, d->site);
        return CTL_OK;
    }
    reply = NULL;
    if (post(d, writer->http, "/v1/cluster/undrain", json_pack("{s:s}", "site", d->site), &reply) != CTL_OK)
        return fail(d, "the undrain was refused");
    json_decref(reply);
    double undrained_at = now_ms();
    if (wait_dns(d, false, &answering, &silent, last, sizeof last) != 0) {
        char why[1200];
        snprintf(why, sizeof why, "site %s is not back in every MX answer after %ld s: %s", d->site,
                 d->wait_ms / 1000, last[0] ? last : "no MX at all");
        return fail(d, why);
    }
    event(d, "restored", json_pack("{s:I}", "after_undrain_ms", (json_int_t)(now_ms() - undrained_at)),
          "site %s is back in every MX answer (fallback preference), %.0f ms after the undrain", d->site,
          now_ms() - undrained_at);
    return CTL_OK;
}

int ctl_cmd_drill(const struct ctl *c, int argc, char **argv)
{
    const struct ctl_command *cmd = ctl_find_command("drill");
    struct drill d = {.c = c, .wait_ms = 30000};
    bool keep = false;
    for (int i = 1; i < argc; i++) {
        uint64_t s;
        if (ctl_is_help(argv[i]))
            return ctl_help(cmd);
        if (strcmp(argv[i], "--site") == 0 && i + 1 < argc)
            d.site = argv[++i];
        else if (strcmp(argv[i], "--keep-drained") == 0)
            keep = true;
        else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc) {
            if (ctl_parse_u64("drill --wait", argv[++i], 1, 3600, &s) != 0)
                return CTL_USAGE;
            d.wait_ms = (long)s * 1000;
        } else
            return ctl_usage(cmd);
    }
    if (d.site == NULL || d.site[0] == '\0')
        return ctl_usage(cmd);
    d.timeline = json_array();
    int rv = run(&d, keep);
    if (json_array_size(d.timeline) > 0) {
        json_t *last = json_array_get(d.timeline, json_array_size(d.timeline) - 1);
        double total = (double)json_integer_value(json_object_get(last, "t_ms"));
        if (c->json) {
            json_t *report = json_pack("{s:s, s:b, s:I, s:o}", "site", d.site, "ok", rv == CTL_OK, "took_ms",
                                       (json_int_t)total, "timeline", json_incref(d.timeline));
            ctl_print_json(report);
            json_decref(report);
        } else {
            printf("drill of site %s %s in %.1f s\n", d.site, rv == CTL_OK ? "passed" : "FAILED", total / 1000.0);
        }
    }
    json_decref(d.timeline);
    return rv;
}
