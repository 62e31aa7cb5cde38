/* dns_testd: the authoritative responder alone, serving a view read from a
 * small file, for real-client tests (dig, kdig) and benchmarks.
 *
 *   dns_testd --listen IP:PORT --view FILE [--no-rrl] [--rrl-rate N]
 *             [--rrl-slip N] [--tcp-max-clients N] [--tcp-idle-ms N]
 *             [--tcp-max-queries N] [--edns-size N] [--servfail] [--dump]
 *
 * View file, one item per line ('#' comments):
 *   zone mx.test | relay NAME | bounce NAME | ttl N | serial N
 *   leader_site SITE | soa_rname NAME | soa_mname NAME | soa_minimum N
 *   node NAME site=S [ipv4=A] [ipv6=A] [smtp=0|1] [dns=0|1] [healthy=0|1] [drained=0|1]
 *   extra RR-TEXT          (zone-file syntax, owner relative to the zone)
 * SIGHUP re-reads the view and swaps the zone (a bad view keeps the old
 * one); SIGUSR1 turns servfail mode on, SIGUSR2 off; SIGTERM/SIGINT close
 * everything and exit 0. --dump prints the zone and exits. */
#include "dns/dns_server.h"
#include "node/base/rc_log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NODES 64
#define MAX_EXTRA 64

struct vfile {
    struct dns_view v;
    struct dns_view_node nodes[MAX_NODES];
    const char *extra[MAX_EXTRA];
    char *strs[1024];
    size_t n_strs;
};

static const char *keep(struct vfile *f, const char *s, size_t len)
{
    if (f->n_strs >= sizeof f->strs / sizeof f->strs[0])
        return NULL;
    char *d = strndup(s, len);
    if (d != NULL)
        f->strs[f->n_strs++] = d;
    return d;
}

static void vfile_free(struct vfile *f)
{
    for (size_t i = 0; i < f->n_strs; i++)
        free(f->strs[i]);
    f->n_strs = 0;
}

static int parse_node(struct vfile *f, char *rest)
{
    if (f->v.n_nodes >= MAX_NODES)
        return -1;
    struct dns_view_node *n = &f->nodes[f->v.n_nodes++];
    memset(n, 0, sizeof *n);
    n->smtp = n->dns = n->healthy = 1;
    char *save = NULL;
    char *tok = strtok_r(rest, " \t", &save);
    if (tok == NULL)
        return -1;
    n->name = keep(f, tok, strlen(tok));
    while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
        char *eq = strchr(tok, '=');
        if (eq == NULL)
            return -1;
        *eq = '\0';
        const char *val = eq + 1;
        if (strcmp(tok, "site") == 0) n->site = keep(f, val, strlen(val));
        else if (strcmp(tok, "ipv4") == 0) n->ipv4 = keep(f, val, strlen(val));
        else if (strcmp(tok, "ipv6") == 0) n->ipv6 = keep(f, val, strlen(val));
        else if (strcmp(tok, "smtp") == 0) n->smtp = atoi(val);
        else if (strcmp(tok, "dns") == 0) n->dns = atoi(val);
        else if (strcmp(tok, "healthy") == 0) n->healthy = atoi(val);
        else if (strcmp(tok, "drained") == 0) n->drained = atoi(val);
        else return -1;
    }
    return 0;
}

static int vfile_read(struct vfile *f, const char *path)
{
    memset(&f->v, 0, sizeof f->v);
    f->v.nodes = f->nodes;
    f->v.extra = f->extra;
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        fprintf(stderr, "dns_testd: cannot open %s\n", path);
        return -1;
    }
    char line[1024];
    int lineno = 0, rv = 0;
    while (rv == 0 && fgets(line, sizeof line, fp) != NULL) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        char *p = line + strspn(line, " \t");
        if (*p == '\0' || *p == '#')
            continue;
        char *key = p;
        size_t klen = strcspn(p, " \t");
        char *rest = p + klen + strspn(p + klen, " \t");
        key[klen] = '\0';
        if (strcmp(key, "zone") == 0) f->v.zone = keep(f, rest, strlen(rest));
        else if (strcmp(key, "relay") == 0) f->v.relay_name = keep(f, rest, strlen(rest));
        else if (strcmp(key, "bounce") == 0) f->v.bounce_name = keep(f, rest, strlen(rest));
        else if (strcmp(key, "leader_site") == 0) f->v.leader_site = keep(f, rest, strlen(rest));
        else if (strcmp(key, "soa_rname") == 0) f->v.soa_rname = keep(f, rest, strlen(rest));
        else if (strcmp(key, "soa_mname") == 0) f->v.soa_mname = keep(f, rest, strlen(rest));
        else if (strcmp(key, "ttl") == 0) f->v.ttl = (uint32_t)strtoul(rest, NULL, 10);
        else if (strcmp(key, "serial") == 0) f->v.serial = (uint32_t)strtoul(rest, NULL, 10);
        else if (strcmp(key, "soa_minimum") == 0) f->v.soa_minimum = (uint32_t)strtoul(rest, NULL, 10);
        else if (strcmp(key, "node") == 0) rv = parse_node(f, rest);
        else if (strcmp(key, "extra") == 0 && f->v.n_extra < MAX_EXTRA)
            f->extra[f->v.n_extra++] = keep(f, rest, strlen(rest));
        else rv = -1;
        if (rv != 0)
            fprintf(stderr, "dns_testd: %s:%d: bad line\n", path, lineno);
    }
    fclose(fp);
    return rv;
}

static int load_zone(const char *path, dns_zone **out)
{
    struct vfile *f = calloc(1, sizeof *f);
    char err[256];
    int rv = -1;
    if (f == NULL)
        return -1;
    if (vfile_read(f, path) == 0) {
        if (dns_zone_build(out, &f->v, err, sizeof err) == DNS_SERVER_OK)
            rv = 0;
        else
            fprintf(stderr, "dns_testd: %s: %s\n", path, err);
    }
    vfile_free(f);
    free(f);
    return rv;
}

struct app {
    dns_server *srv;
    const char *view;
    uv_signal_t sig[5];
};

static void on_signal(uv_signal_t *h, int signum)
{
    struct app *a = h->data;
    if (signum == SIGHUP) {
        dns_zone *z = NULL;
        if (load_zone(a->view, &z) == 0)
            dns_server_set_zone(a->srv, z);
        else
            rc_warn("dns_testd", "reload_failed view=%s", a->view);
    } else if (signum == SIGUSR1 || signum == SIGUSR2) {
        dns_server_set_servfail(a->srv, signum == SIGUSR1);
    } else {
        for (size_t i = 0; i < 5; i++)
            uv_close((uv_handle_t *)&a->sig[i], NULL);
        dns_server_close(a->srv, NULL, NULL);
    }
}

int main(int argc, char **argv)
{
    struct dns_server_config cfg = { 0 };
    struct app a = { 0 };
    int dump = 0, servfail = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--dump") == 0) { dump = 1; continue; }
        if (strcmp(o, "--servfail") == 0) { servfail = 1; continue; }
        if (strcmp(o, "--no-rrl") == 0) { cfg.rrl_disable = 1; continue; }
        if (v == NULL) { fprintf(stderr, "dns_testd: %s needs a value\n", o); return 2; }
        i++;
        if (strcmp(o, "--listen") == 0) cfg.listen = v;
        else if (strcmp(o, "--view") == 0) a.view = v;
        else if (strcmp(o, "--rrl-rate") == 0) cfg.rrl.rate = (unsigned)atoi(v);
        else if (strcmp(o, "--rrl-slip") == 0) cfg.rrl.slip = (unsigned)atoi(v);
        else if (strcmp(o, "--tcp-max-clients") == 0) cfg.tcp_max_clients = (unsigned)atoi(v);
        else if (strcmp(o, "--tcp-idle-ms") == 0) cfg.tcp_idle_ms = (unsigned)atoi(v);
        else if (strcmp(o, "--tcp-max-queries") == 0) cfg.tcp_max_queries = (unsigned)atoi(v);
        else if (strcmp(o, "--edns-size") == 0) cfg.edns_udp_size = (uint16_t)atoi(v);
        else { fprintf(stderr, "dns_testd: unknown option %s\n", o); return 2; }
    }
    if (a.view == NULL || (!dump && cfg.listen == NULL)) {
        fprintf(stderr, "usage: dns_testd --listen IP:PORT --view FILE [options]\n");
        return 2;
    }
    dns_zone *z = NULL;
    if (load_zone(a.view, &z) != 0)
        return 1;
    if (dump) {
        dns_zone_print(z, stdout);
        dns_zone_free(z);
        return 0;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    if (dns_server_new(&a.srv, &loop, &cfg, err, sizeof err) != DNS_SERVER_OK) {
        fprintf(stderr, "dns_testd: %s\n", err);
        dns_zone_free(z);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return 1;
    }
    dns_server_set_zone(a.srv, z);
    dns_server_set_servfail(a.srv, servfail);
    static const int sigs[5] = { SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, SIGINT };
    for (size_t i = 0; i < 5; i++) {
        uv_signal_init(&loop, &a.sig[i]);
        a.sig[i].data = &a;
        uv_signal_start(&a.sig[i], on_signal, sigs[i]);
    }
    printf("ready addr=%s\n", dns_server_address(a.srv));
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
}
