/* SMTP ingress wiring: the smtp/ server's hooks mapped onto the replicated
 * core. A message is proposed as one Accept record (body included) from
 * whichever node the client reached; the client hears 250 only after the
 * record committed on a quorum, 451 when that did not happen within
 * smtp.accept_timeout (the record may still commit later: at-least-once), and
 * 421 at connect or MAIL when this node knows no leader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/base/rc_log.h"
#include "node/rc_bounce.h"
#include "node/rc_node_internal.h"
#include "proto/ricochet.pb-c.h"
#include "smtp/smtp_addr.h"
#include "smtp/smtp_server.h"

struct pending_accept {
    rc_node *n;
    smtp_accept *tok;
    char id[64];
    uv_timer_t timer;
    bool answered, proposal_done, timer_closed;
    uint64_t started;
};

static const char *admit(void *data, const struct smtp_envelope *env)
{
    rc_node *n = data;
    struct rc_raft_status st;
    rc_raft_get_status(n->raft, &st);
    if (n->stopping)
        return "421 4.3.2 Node shutting down, try another MX";
    if (st.leader == 0 && st.ms_since_contact > n->cfg.dns_lease_ms)
        return "421 4.3.2 No cluster leader, try another MX";
    if (st.disk_low)
        return env ? "452 4.3.1 Insufficient system storage" : "421 4.3.1 Insufficient system storage, try another MX";
    return NULL;
}

static void new_id(void *data, char *buf, size_t len)
{
    rc_node *n = data;
    /* time (ms, 11 hex digits), node id, a per-node sequence: unique, short
     * (VERP tokens carry it), and safe as a spool file name */
    snprintf(buf, len, "%011llX%02llX%04X", (unsigned long long)rc_now_ms(),
             (unsigned long long)(n->cfg.node_id & 0xff), (unsigned)(++n->id_seq & 0xffff));
}

static void pending_maybe_free(struct pending_accept *p)
{
    if (p->proposal_done && p->timer_closed)
        free(p);
}

static void timer_closed(uv_handle_t *h)
{
    struct pending_accept *p = h->data;
    p->timer_closed = true;
    pending_maybe_free(p);
}

static void answer(struct pending_accept *p, const char *line)
{
    if (p->answered)
        return;
    p->answered = true;
    smtp_accept_done(p->tok, line);
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, timer_closed);
}

static void accept_timeout(uv_timer_t *t)
{
    struct pending_accept *p = t->data;
    rc_warn("smtp", "accept_timeout id=%s action=451", p->id);
    p->n->accept_timeouts++;
    answer(p, "451 4.3.0 Message not confirmed by the cluster in time, try again later");
}

static void accept_committed(void *data, int status)
{
    struct pending_accept *p = data;
    p->proposal_done = true;
    char line[160];
    if (status == RC_OK) {
        snprintf(line, sizeof line, "250 2.0.0 Ok: queued as %s", p->id);
        p->n->accepted++;
    } else if (status == RC_ETOOBIG) {
        snprintf(line, sizeof line, "552 5.3.4 Message too big for the cluster");
    } else {
        snprintf(line, sizeof line, "451 4.3.0 Message not stored (%s), try again later", rc_strerror(status));
        rc_warn("smtp", "accept_failed id=%s error=\"%s\"", p->id, rc_strerror(status));
    }
    if (!p->answered)
        answer(p, line);
    else if (status == RC_OK)
        rc_warn("smtp", "accepted_after_451 id=%s note=the_client_may_send_it_again", p->id);
    pending_maybe_free(p);
}

static void on_message(void *data, smtp_accept *tok, const char *id, const struct smtp_envelope *env,
                       const uint8_t *body, size_t len)
{
    rc_node *n = data;
    /* mail to the bounce domain or the feedback address is a report about
     * our own messages, not a message to relay (node/rc_bounce.c) */
    int intake = rc_bounce_envelope(n, env);
    if (intake > 0) {
        rc_bounce_intake(n, tok, id, env, body, len);
        return;
    }
    if (intake < 0) {
        smtp_accept_done(tok, "554 5.5.0 Reports (bounce domain, feedback address) and other recipients in one "
                              "transaction; send them apart");
        return;
    }
    struct pending_accept *p = calloc(1, sizeof *p);
    if (p == NULL) {
        smtp_accept_done(tok, "451 4.3.0 Insufficient system resources");
        return;
    }
    p->n = n;
    p->tok = tok;
    snprintf(p->id, sizeof p->id, "%s", id);

    Ricochet__Envelope e;
    ricochet__envelope__init(&e);
    e.mail_from = env->mail_from;
    e.ret = env->ret;
    e.envid = env->envid;
    e.body_type = env->body_type;
    e.has_smtputf8 = env->smtputf8;
    e.smtputf8 = env->smtputf8;
    e.auth_user = env->auth_user;
    e.client_addr = (char *)env->client_addr;
    e.helo = env->helo;
    Ricochet__RecipientSpec *specs = calloc(env->n_rcpts, sizeof *specs);
    Ricochet__RecipientSpec **pspecs = calloc(env->n_rcpts, sizeof *pspecs);
    if (specs == NULL || pspecs == NULL) {
        free(specs);
        free(pspecs);
        free(p);
        smtp_accept_done(tok, "451 4.3.0 Insufficient system resources");
        return;
    }
    for (size_t i = 0; i < env->n_rcpts; i++) {
        ricochet__recipient_spec__init(&specs[i]);
        specs[i].address = env->rcpts[i].address;
        specs[i].notify = env->rcpts[i].notify;
        specs[i].orcpt = env->rcpts[i].orcpt;
        pspecs[i] = &specs[i];
    }
    uv_timer_init(n->loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, accept_timeout, n->cfg.accept_timeout_ms, 0);
    int rv = rc_node_propose_accept(n, id, &e, pspecs, env->n_rcpts, body, len, accept_committed, p);
    free(specs);
    free(pspecs);
    if (rv != RC_OK)
        accept_committed(p, rv);
}

static const struct smtp_hooks hooks = {.admit = admit, .new_id = new_id, .on_message = on_message};

int rc_smtp_start(rc_node *n, char *err, size_t errlen)
{
    struct smtp_server_config sc;
    smtp_server_config_defaults(&sc);
    const struct rc_config *c = &n->cfg;
    sc.hostname = c->hostname;
    sc.max_message_size = c->max_message_size;
    sc.max_line = c->max_line;
    sc.max_recipients = (unsigned)c->max_recipients;
    sc.max_connections = (unsigned)c->max_connections;
    sc.max_connections_per_ip = (unsigned)c->max_connections_per_ip;
    sc.command_timeout_ms = (unsigned)c->command_timeout_ms;
    sc.data_timeout_ms = (unsigned)c->data_timeout_ms;
    sc.max_errors = (unsigned)c->max_errors;
    sc.max_pipeline = c->max_pipeline;
    sc.max_unread_output = c->max_unread_output;
    if (c->bounce_domain[0])
        sc.local_domains[sc.n_local_domains++] = c->bounce_domain;
    if (c->feedback_address[0]) {
        const char *fb = smtp_addr_domain(c->feedback_address);
        sc.local_domains[sc.n_local_domains++] = fb ? fb : c->feedback_address;
    }
    if (smtp_parse_networks(&sc, c->relay_networks, err, errlen) != 0) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s", err);
        snprintf(err, errlen, "smtp.relay_networks: %s", tmp);
        return -1;
    }
    if (c->tls_cert[0]) {
        char tmp[256];
        if ((n->tls_ctx = smtp_tls_server_ctx(c->tls_cert, c->tls_key, tmp, sizeof tmp)) == NULL) {
            snprintf(err, errlen, "smtp.tls_cert/tls_key: %s", tmp);
            return -1;
        }
        sc.tls_ctx = n->tls_ctx;
    }
    if (c->users_file[0]) {
        char tmp[300];
        if ((n->users = smtp_users_load(c->users_file, tmp, sizeof tmp)) == NULL) {
            snprintf(err, errlen, "smtp.users_file: %s", tmp);
            smtp_tls_ctx_free(n->tls_ctx);
            n->tls_ctx = NULL;
            return -1;
        }
        sc.users = n->users;
    }
    int rv = smtp_server_start(&n->smtp, n->loop, &sc, &hooks, n, c->smtp_listen, c->submission_listen, err, errlen);
    if (rv != SMTP_SERVER_OK) {
        n->smtp = NULL;
        smtp_tls_ctx_free(n->tls_ctx);
        smtp_users_free(n->users);
        n->tls_ctx = NULL;
        n->users = NULL;
        return -1;
    }
    return 0;
}

void rc_smtp_free(rc_node *n)
{
    smtp_tls_ctx_free(n->tls_ctx);
    smtp_users_free(n->users);
    n->tls_ctx = NULL;
    n->users = NULL;
}

void rc_smtp_stop(rc_node *n, void (*cb)(void *), void *data)
{
    if (n->smtp == NULL) {
        cb(data);
        return;
    }
    smtp_server_stop(n->smtp, cb, data);
}
