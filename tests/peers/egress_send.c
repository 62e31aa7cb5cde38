/* Test driver for the egress libraries: resolves a mail domain with
 * dns_resolver (or takes --host IP:PORT), delivers one message with
 * smtp_client and prints one line per outcome for the peer scripts:
 *   mx status=ok|tempfail|permfail err=NAME implicit=0|1 n=N
 *   target host=NAME addr=IP:PORT pref=N
 *   rcpt=ADDR outcome=delivered|deferred|failed code=N enhanced=X internal=NAME(N)
 *        host=NAME addr=IP:PORT tls=0|1 reused=0|1 text="..."
 * --verp-secret/--verp-domain/--msgid: MAIL FROM is the VERP address of each
 * recipient, one transaction per recipient on the same connection (and the
 * address is decoded again, "verp_ok=1"). --repeat N sends the message N
 * times on the same client (connection reuse). */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns_resolver.h"
#include "smtp/smtp_client.h"
#include "smtp/verp.h"

#define MAXR 64
#define MAXH 32

static struct {
    uv_loop_t *loop;
    const char *resolver, *domain, *from, *verp_secret, *verp_domain, *msgid;
    const char *rcpts[MAXR];
    size_t nrcpts;
    struct smtp_client_host hosts[MAXH];
    char names[MAXH][256];
    size_t nhosts;
    int port;
    uint8_t *body;
    size_t body_len;
    int repeat, sent, eight_bit;
    struct smtp_client_config ccfg;
    smtp_client *client;
    dns_resolver *res;
    char verp_from[300];
    size_t verp_i;
    const char *one_rcpt[1];
    int rc;
} g;

static void send_next(void);

static const char *outcome_name(int o)
{
    return o == SMTP_OUT_DELIVERED ? "delivered" : o == SMTP_OUT_FAILED ? "failed" : "deferred";
}

static void print_quoted(const char *s)
{
    putchar('"');
    for (; *s; s++)
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\x%02x", (unsigned char)*s);
        else
            putchar(*s);
    putchar('"');
}

static void client_closed(void *arg)
{
    (void)arg;
    g.client = NULL;
}

static void sent_cb(smtp_client *c, const struct smtp_client_result *res, void *arg)
{
    const char *const *rcpts = arg;
    for (size_t k = 0; k < res->nrcpts; k++) {
        const struct smtp_rcpt_result *x = &res->rcpts[k];
        printf("rcpt=%s outcome=%s code=%d enhanced=%s internal=%s(%d) host=%s addr=%s tls=%d "
               "reused=%d reusable=%d text=",
               rcpts[k], outcome_name(x->outcome), x->code, x->enhanced[0] ? x->enhanced : "-",
               smtp_client_internal_name(x->internal), x->internal, res->host, res->addr, res->tls,
               res->reused, res->reusable);
        print_quoted(x->text);
        putchar('\n');
    }
    fflush(stdout);
    send_next();
}

static void send_next(void)
{
    struct smtp_client_msg m = { 0 };
    m.body = g.body;
    m.body_len = g.body_len;
    m.body_8bit = g.eight_bit;
    const char *const *rcpts;
    if (g.verp_secret) {
        if (g.verp_i >= g.nrcpts) {
            smtp_client_close(g.client, client_closed, NULL);
            return;
        }
        struct verp_key key = { (const uint8_t *)g.verp_secret, strlen(g.verp_secret), 0 };
        int rv = verp_encode(&key, g.verp_domain, g.msgid, strlen(g.msgid), (uint32_t)g.verp_i,
                             g.verp_from, sizeof g.verp_from);
        if (rv != VERP_OK) {
            fprintf(stderr, "verp_encode: %s\n", verp_strerror(rv));
            g.rc = 1;
            smtp_client_close(g.client, client_closed, NULL);
            return;
        }
        char id[64];
        size_t idl;
        uint32_t idx;
        rv = verp_decode(&key, g.verp_domain, g.verp_from, strlen(g.verp_from), id, sizeof id, &idl, &idx);
        printf("verp from=%s verp_ok=%d index=%u\n", g.verp_from,
               rv == VERP_OK && idx == g.verp_i && strcmp(id, g.msgid) == 0, idx);
        g.one_rcpt[0] = g.rcpts[g.verp_i++];
        m.mail_from = g.verp_from;
        m.rcpts = g.one_rcpt;
        m.nrcpts = 1;
        rcpts = g.one_rcpt;
    } else {
        if (g.sent >= g.repeat) {
            smtp_client_close(g.client, client_closed, NULL);
            return;
        }
        g.sent++;
        m.mail_from = g.from;
        m.rcpts = g.rcpts;
        m.nrcpts = g.nrcpts;
        rcpts = g.rcpts;
    }
    int rv = smtp_client_send(g.client, g.hosts, g.nhosts, &m, sent_cb, (void *)rcpts);
    if (rv != SMTP_CLIENT_OK) {
        fprintf(stderr, "smtp_client_send: %s\n", smtp_client_strerror(rv));
        g.rc = 1;
        smtp_client_close(g.client, client_closed, NULL);
    }
}

static void start_delivery(void)
{
    if (smtp_client_new(&g.client, g.loop, &g.ccfg) != SMTP_CLIENT_OK) {
        fprintf(stderr, "smtp_client_new failed\n");
        g.rc = 1;
        return;
    }
    send_next();
}

static const char *mx_err_name(int err)
{
    switch (err) {
    case DNS_OK: return "ok";
    case DNS_ENXDOMAIN: return "nxdomain";
    case DNS_ENULLMX: return "nullmx";
    case DNS_ENOADDR: return "noaddr";
    case DNS_ESERVFAIL: return "servfail";
    case DNS_ERCODE: return "rcode";
    case DNS_ETIMEDOUT: return "timeout";
    case DNS_ENET: return "net";
    case DNS_EFORMERR: return "formerr";
    case DNS_ECANCELED: return "canceled";
    }
    return "other";
}

static void resolver_closed(void *arg)
{
    (void)arg;
    g.res = NULL;
}

static void mx_cb(const struct dns_mx_result *r, void *arg)
{
    (void)arg;
    printf("mx status=%s err=%s implicit=%d n=%zu\n",
           r->status == DNS_MX_OK ? "ok" : r->status == DNS_MX_TEMPFAIL ? "tempfail" : "permfail",
           mx_err_name(r->err), r->implicit_mx, r->n);
    for (size_t i = 0; i < r->n && g.nhosts < MAXH; i++) {
        struct smtp_client_host *h = &g.hosts[g.nhosts];
        h->addr = r->targets[i].addr;
        char ip[64] = "";
        if (h->addr.ss_family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&h->addr;
            s4->sin_port = htons((uint16_t)g.port);
            inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        } else {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&h->addr;
            s6->sin6_port = htons((uint16_t)g.port);
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        }
        snprintf(g.names[g.nhosts], sizeof g.names[0], "%s", r->targets[i].host);
        h->name = g.names[g.nhosts];
        printf("target host=%s addr=%s:%d pref=%u\n", h->name, ip, g.port, r->targets[i].preference);
        g.nhosts++;
    }
    fflush(stdout);
    dns_resolver_close(g.res, resolver_closed, NULL);
    if (r->status == DNS_MX_OK && g.nrcpts > 0)
        start_delivery();
}

static int add_host(const char *s)
{
    char ip[64];
    const char *c = strrchr(s, ':');
    if (c == NULL || (size_t)(c - s) >= sizeof ip || g.nhosts >= MAXH)
        return -1;
    memcpy(ip, s, (size_t)(c - s));
    ip[c - s] = '\0';
    struct sockaddr_in *s4 = (struct sockaddr_in *)&g.hosts[g.nhosts].addr;
    if (uv_ip4_addr(ip, atoi(c + 1), s4) != 0)
        return -1;
    snprintf(g.names[g.nhosts], sizeof g.names[0], "%s", s);
    g.hosts[g.nhosts].name = g.names[g.nhosts];
    g.nhosts++;
    return 0;
}

static int read_body(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    size_t cap = 1 << 16;
    g.body = malloc(cap);
    size_t n;
    while (g.body && (n = fread(g.body + g.body_len, 1, cap - g.body_len, f)) > 0) {
        g.body_len += n;
        if (g.body_len == cap)
            g.body = realloc(g.body, cap *= 2);
    }
    fclose(f);
    return g.body ? 0 : -1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "resolver", 1, 0, 'R' }, { "domain", 1, 0, 'd' }, { "host", 1, 0, 'H' },
        { "port", 1, 0, 'p' }, { "from", 1, 0, 'f' }, { "rcpt", 1, 0, 'r' },
        { "body", 1, 0, 'b' }, { "body-size", 1, 0, 'B' }, { "tls", 1, 0, 't' },
        { "connect-timeout", 1, 0, 1 }, { "greeting-timeout", 1, 0, 2 },
        { "command-timeout", 1, 0, 3 }, { "final-timeout", 1, 0, 4 }, { "dns-timeout", 1, 0, 5 },
        { "repeat", 1, 0, 'n' }, { "verp-secret", 1, 0, 6 }, { "verp-domain", 1, 0, 7 },
        { "msgid", 1, 0, 8 }, { "8bit", 0, 0, 9 }, { "helo", 1, 0, 10 }, { 0, 0, 0, 0 },
    };
    struct dns_resolver_config dcfg = { 0 };
    g.port = 25;
    g.repeat = 1;
    g.from = "sender@example.net";
    g.msgid = "MSGID0001";
    g.ccfg.helo_name = "egress-test.example.net";
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'R': g.resolver = optarg; break;
        case 'd': g.domain = optarg; break;
        case 'H':
            if (add_host(optarg) != 0) {
                fprintf(stderr, "bad --host %s\n", optarg);
                return 2;
            }
            break;
        case 'p': g.port = atoi(optarg); break;
        case 'f': g.from = optarg; break;
        case 'r': if (g.nrcpts < MAXR) g.rcpts[g.nrcpts++] = optarg; break;
        case 'b':
            if (read_body(optarg) != 0) {
                fprintf(stderr, "cannot read %s\n", optarg);
                return 2;
            }
            break;
        case 'B': {
            size_t n = strtoul(optarg, NULL, 10);
            g.body = malloc(n + 64);
            g.body_len = (size_t)snprintf((char *)g.body, 64, "Subject: big\r\n\r\n");
            for (size_t i = 0; i < n; i++)
                g.body[g.body_len++] = (i % 77 == 76) ? '\n' : 'x';
            break;
        }
        case 't':
            g.ccfg.tls_policy = !strcmp(optarg, "none") ? SMTP_TLS_NONE
                              : !strcmp(optarg, "required") ? SMTP_TLS_REQUIRED : SMTP_TLS_OPPORTUNISTIC;
            break;
        case 1: g.ccfg.connect_timeout_ms = (unsigned)atoi(optarg); break;
        case 2: g.ccfg.greeting_timeout_ms = (unsigned)atoi(optarg); break;
        case 3: g.ccfg.command_timeout_ms = (unsigned)atoi(optarg); break;
        case 4: g.ccfg.final_timeout_ms = (unsigned)atoi(optarg); break;
        case 5: dcfg.timeout_ms = (unsigned)atoi(optarg); break;
        case 'n': g.repeat = atoi(optarg); break;
        case 6: g.verp_secret = optarg; break;
        case 7: g.verp_domain = optarg; break;
        case 8: g.msgid = optarg; break;
        case 9: g.eight_bit = 1; break;
        case 10: g.ccfg.helo_name = optarg; break;
        default: return 2;
        }
    }
    if (g.body == NULL) {
        static const char def[] = "From: sender@example.net\nTo: rcpt@example.org\nSubject: test\n\n"
                                  "Hello.\n.leading dot\n..two dots\n.\nlast line without newline";
        g.body = malloc(sizeof def);
        memcpy(g.body, def, sizeof def - 1);
        g.body_len = sizeof def - 1;
    }
    if (g.verp_secret && !g.verp_domain)
        g.verp_domain = "bounce.example.net";
    g.loop = uv_default_loop();
    if (g.domain) {
        char err[256] = "";
        dcfg.server = g.resolver;
        int rv = dns_resolver_new(&g.res, g.loop, &dcfg, err, sizeof err);
        if (rv != DNS_OK) {
            fprintf(stderr, "resolver: %s %s\n", dns_strerror(rv), err);
            return 2;
        }
        rv = dns_resolver_mx(g.res, g.domain, mx_cb, NULL);
        if (rv != DNS_OK) {
            printf("mx status=permfail err=%s implicit=0 n=0\n", dns_strerror(rv));
            dns_resolver_close(g.res, resolver_closed, NULL);
        }
    } else {
        start_delivery();
    }
    uv_run(g.loop, UV_RUN_DEFAULT);
    free(g.body);
    uv_loop_close(g.loop);
    return g.rc;
}
