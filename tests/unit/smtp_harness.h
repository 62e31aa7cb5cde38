/* A transport-free harness around smtp_session for tests and the fuzzer:
 * output is collected in a buffer, messages are recorded and completed
 * (at once, or later when `defer` is set). */
#ifndef SMTP_HARNESS_H
#define SMTP_HARNESS_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_server.h"

struct harness {
    char out[1 << 16];
    size_t out_len;
    bool closed, paused;
    int messages;
    char last_from[300], last_rcpts[1024], last_body[1 << 15];
    size_t last_body_len;
    char last_notify[64], last_orcpt[300], last_ret[8], last_envid[128];
    bool last_utf8;
    bool defer;
    smtp_accept *held;
    smtp_session *s;
    struct smtp_server_config cfg;
    smtp_users *users;
};

static inline void h_write(void *io, const char *buf, size_t len)
{
    struct harness *h = io;
    if (h->out_len + len < sizeof h->out) {
        memcpy(h->out + h->out_len, buf, len);
        h->out_len += len;
        h->out[h->out_len] = '\0';
    }
}
static void h_close(void *io) { ((struct harness *)io)->closed = true; }
static void h_pause(void *io, bool on) { ((struct harness *)io)->paused = on; }
static void h_timeout(void *io, unsigned ms) { (void)io; (void)ms; }
/* No real TLS here: the session is told the switch succeeded. */
static int h_starttls(void *io) { (void)io; return 0; }

static const struct smtp_session_io harness_io = {h_write, h_close, h_pause, h_timeout, h_starttls};

static const char *h_admit(void *data, const struct smtp_envelope *env)
{
    (void)data;
    if (env && env->mail_from && strcmp(env->mail_from, "refuse@example.org") == 0)
        return "451 4.3.0 Try later";
    return NULL;
}

static void h_new_id(void *data, char *buf, size_t len)
{
    struct harness *h = data;
    snprintf(buf, len, "ID%d", h->messages + 1);
}

static void h_on_message(void *data, smtp_accept *tok, const char *id, const struct smtp_envelope *env,
                         const uint8_t *body, size_t len)
{
    struct harness *h = data;
    h->messages++;
    snprintf(h->last_from, sizeof h->last_from, "%s", env->mail_from);
    h->last_rcpts[0] = '\0';
    for (size_t i = 0; i < env->n_rcpts; i++) {
        strncat(h->last_rcpts, env->rcpts[i].address, sizeof h->last_rcpts - strlen(h->last_rcpts) - 2);
        strncat(h->last_rcpts, ",", sizeof h->last_rcpts - strlen(h->last_rcpts) - 1);
    }
    snprintf(h->last_notify, sizeof h->last_notify, "%s", env->n_rcpts && env->rcpts[0].notify ? env->rcpts[0].notify : "");
    snprintf(h->last_orcpt, sizeof h->last_orcpt, "%s", env->n_rcpts && env->rcpts[0].orcpt ? env->rcpts[0].orcpt : "");
    snprintf(h->last_ret, sizeof h->last_ret, "%s", env->ret ? env->ret : "");
    snprintf(h->last_envid, sizeof h->last_envid, "%s", env->envid ? env->envid : "");
    h->last_utf8 = env->smtputf8;
    h->last_body_len = len < sizeof h->last_body ? len : sizeof h->last_body - 1;
    memcpy(h->last_body, body, h->last_body_len);
    h->last_body[h->last_body_len] = '\0';
    if (h->defer) {
        h->held = tok;
        return;
    }
    char line[128];
    snprintf(line, sizeof line, "250 2.0.0 Ok: queued as %s", id);
    smtp_accept_done(tok, line);
}

static const struct smtp_hooks harness_hooks = {h_admit, h_new_id, h_on_message};

static void harness_init(struct harness *h, const char *client, bool submission)
{
    memset(h, 0, sizeof *h);
    smtp_server_config_defaults(&h->cfg);
    h->cfg.hostname = "mx.test";
    h->cfg.max_message_size = 4096;
    h->cfg.max_recipients = 5;
    h->cfg.local_domains[h->cfg.n_local_domains++] = "bounce.test";
    char err[128];
    smtp_parse_networks(&h->cfg, "10.0.0.0/8, 2001:db8::/32", err, sizeof err);
    h->cfg.tls_ctx = (void *)1; /* offered; the harness fakes the switch */
    h->cfg.users = h->users;
    h->s = smtp_session_new(&h->cfg, &harness_hooks, h, &harness_io, h, client, submission);
    smtp_session_start(h->s);
}

static void harness_free(struct harness *h)
{
    smtp_session_free(h->s);
    if (h->held)
        smtp_accept_done(h->held, "451 4.3.0 gone"); /* token outlives the session */
    h->held = NULL;
}

static inline void harness_send(struct harness *h, const char *text)
{
    smtp_session_input(h->s, text, strlen(text));
}

#endif
