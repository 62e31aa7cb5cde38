/* smtp_testd: the SMTP server library standalone, for tests with real
 * clients (swaks, smtp-source). No Raft: every complete message is written
 * to SPOOL/ID.eml (envelope lines, a blank line, then the body as received,
 * Received: header included) and then answered "250 2.0.0 Ok: queued as
 * ID" from a timer, so the asynchronous completion path is exercised.
 *
 *   smtp_testd --mx IP:PORT [--submission IP:PORT] --spool DIR
 *              [--cert PEM --key PEM] [--users FILE] [--local-domain D]...
 *              [--relay-networks CIDRS] [--max-size N] [--max-rcpt N]
 *              [--max-conn N] [--max-conn-ip N] [--delay-ms N]
 *              [--refuse-connect] [--hostname NAME]
 * Prints "ready" once listening; SIGTERM stops it gracefully (in-flight
 * sessions finish) and it prints "stopped". */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "smtp/smtp_server.h"

struct pending {
    uv_timer_t timer;
    smtp_accept *tok;
    char reply[128];
};

static struct {
    uv_loop_t *loop;
    smtp_server *srv;
    const char *spool;
    unsigned delay_ms;
    bool refuse_connect;
    unsigned seq;
    uv_signal_t sigterm, sigint;
} g;

static const char *admit(void *data, const struct smtp_envelope *env)
{
    (void)data;
    if (env == NULL && g.refuse_connect)
        return "421 4.3.2 No cluster leader, try another MX";
    if (env && env->mail_from && strcmp(env->mail_from, "tempfail@example.org") == 0)
        return "451 4.3.0 Try again later";
    return NULL;
}

static void new_id(void *data, char *buf, size_t len)
{
    (void)data;
    snprintf(buf, len, "T%06u", ++g.seq);
}

static void pending_closed(uv_handle_t *h)
{
    free(h->data);
}

static void pending_fire(uv_timer_t *t)
{
    struct pending *p = t->data;
    smtp_accept_done(p->tok, p->reply);
    uv_close((uv_handle_t *)&p->timer, pending_closed);
}

static int write_message(const char *id, const struct smtp_envelope *env, const uint8_t *body, size_t len)
{
    char path[4096], tmp[4096];
    snprintf(path, sizeof path, "%s/%s.eml", g.spool, id);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", g.spool, id);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL)
        return -1;
    fprintf(f, "X-Env-From: <%s>\n", env->mail_from);
    for (size_t i = 0; i < env->n_rcpts; i++)
        fprintf(f, "X-Env-Rcpt: <%s> notify=%s orcpt=%s\n", env->rcpts[i].address,
                env->rcpts[i].notify ? env->rcpts[i].notify : "-", env->rcpts[i].orcpt ? env->rcpts[i].orcpt : "-");
    fprintf(f, "X-Env-Ret: %s\nX-Env-Envid: %s\nX-Env-Body: %s\nX-Env-Smtputf8: %d\n", env->ret ? env->ret : "-",
            env->envid ? env->envid : "-", env->body_type ? env->body_type : "-", env->smtputf8);
    fprintf(f, "X-Env-Auth: %s\nX-Env-Client: %s\nX-Env-Helo: %s\nX-Env-Tls: %d\n\n",
            env->auth_user ? env->auth_user : "-", env->client_addr, env->helo ? env->helo : "-", env->tls);
    fwrite(body, 1, len, f);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

static void on_message(void *data, smtp_accept *tok, const char *id, const struct smtp_envelope *env,
                       const uint8_t *body, size_t len)
{
    (void)data;
    struct pending *p = calloc(1, sizeof *p);
    if (p == NULL) {
        smtp_accept_done(tok, "451 4.3.0 Insufficient system resources");
        return;
    }
    p->tok = tok;
    if (write_message(id, env, body, len) == 0)
        snprintf(p->reply, sizeof p->reply, "250 2.0.0 Ok: queued as %s", id);
    else
        snprintf(p->reply, sizeof p->reply, "451 4.3.0 Cannot store: %s", strerror(errno));
    uv_timer_init(g.loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, pending_fire, g.delay_ms, 0);
}

static void stopped(void *data)
{
    (void)data;
    printf("stopped\n");
    fflush(stdout);
    uv_close((uv_handle_t *)&g.sigterm, NULL);
    uv_close((uv_handle_t *)&g.sigint, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    uv_signal_stop(&g.sigterm);
    uv_signal_stop(&g.sigint);
    smtp_server_stop(g.srv, stopped, NULL);
}

int main(int argc, char **argv)
{
    struct smtp_server_config cfg;
    smtp_server_config_defaults(&cfg);
    cfg.hostname = "testd.ricochet.test";
    const char *mx = NULL, *sub = NULL, *cert = NULL, *key = NULL, *users = NULL;
    char err[256];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--refuse-connect") == 0) {
            g.refuse_connect = true;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "missing value for %s\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--mx") == 0)
            mx = v;
        else if (strcmp(a, "--submission") == 0)
            sub = v;
        else if (strcmp(a, "--spool") == 0)
            g.spool = v;
        else if (strcmp(a, "--cert") == 0)
            cert = v;
        else if (strcmp(a, "--key") == 0)
            key = v;
        else if (strcmp(a, "--users") == 0)
            users = v;
        else if (strcmp(a, "--hostname") == 0)
            cfg.hostname = v;
        else if (strcmp(a, "--local-domain") == 0 && cfg.n_local_domains < SMTP_MAX_LOCAL_DOMAINS)
            cfg.local_domains[cfg.n_local_domains++] = v;
        else if (strcmp(a, "--relay-networks") == 0) {
            if (smtp_parse_networks(&cfg, v, err, sizeof err) != 0) {
                fprintf(stderr, "relay networks: %s\n", err);
                return 2;
            }
        } else if (strcmp(a, "--max-size") == 0)
            cfg.max_message_size = strtoull(v, NULL, 10);
        else if (strcmp(a, "--max-rcpt") == 0)
            cfg.max_recipients = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--max-conn") == 0)
            cfg.max_connections = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--max-conn-ip") == 0)
            cfg.max_connections_per_ip = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--delay-ms") == 0)
            g.delay_ms = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--command-timeout-ms") == 0)
            cfg.command_timeout_ms = (unsigned)strtoul(v, NULL, 10);
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    if (mx == NULL || g.spool == NULL) {
        fprintf(stderr, "usage: smtp_testd --mx IP:PORT --spool DIR [options]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int rc = 1;
    smtp_users *u = NULL;
    if (cert && key && (cfg.tls_ctx = smtp_tls_server_ctx(cert, key, err, sizeof err)) == NULL) {
        fprintf(stderr, "tls: %s\n", err);
        goto out;
    }
    if (users && (u = smtp_users_load(users, err, sizeof err)) == NULL) {
        fprintf(stderr, "users: %s\n", err);
        goto out;
    }
    cfg.users = u;
    g.loop = uv_default_loop();
    static const struct smtp_hooks hooks = {.admit = admit, .new_id = new_id, .on_message = on_message};
    if (smtp_server_start(&g.srv, g.loop, &cfg, &hooks, NULL, mx, sub, err, sizeof err) != SMTP_SERVER_OK) {
        fprintf(stderr, "start: %s\n", err);
        uv_run(g.loop, UV_RUN_DEFAULT); /* lets the listeners close */
        goto out;
    }
    uv_signal_init(g.loop, &g.sigterm);
    uv_signal_init(g.loop, &g.sigint);
    uv_signal_start(&g.sigterm, on_signal, SIGTERM);
    uv_signal_start(&g.sigint, on_signal, SIGINT);
    printf("ready\n");
    fflush(stdout);
    uv_run(g.loop, UV_RUN_DEFAULT);
    rc = 0;
out:
    if (g.loop)
        uv_loop_close(g.loop);
    smtp_users_free(u);
    smtp_tls_ctx_free(cfg.tls_ctx);
    return rc;
}
