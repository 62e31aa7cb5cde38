#define _GNU_SOURCE
/* One SMTP server session, transport-free. Happy path: greeting, EHLO,
 * MAIL, RCPT..., DATA, body until CRLF.CRLF, then the node stores the
 * message and completes it (smtp_accept_done) with the final reply.
 *
 * Input is processed line by line from a bounded buffer; while a final
 * reply is pending the session reads nothing more (pipelined commands wait
 * in the buffer, up to max_pipeline bytes, and reading pauses beyond).
 *
 * DATA: the end is CRLF "." CRLF only. A bare LF or bare CR anywhere in the
 * data marks the message bad (SMTP smuggling): it is refused with 550 at
 * the end, and "\n.\n" never ends the data. Over max_message_size the data
 * is read and dropped, and the reply is 552. */
#include "smtp/smtp_server.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "node/base/rc_log.h"
#include "smtp/smtp_addr.h"
#include "smtp/smtp_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

enum auth_step { AUTH_NONE = 0, AUTH_PLAIN_WAIT, AUTH_LOGIN_USER, AUTH_LOGIN_PASS };

enum state {
    ST_CONNECTED = 1 << 0, /* before HELO/EHLO */
    ST_GREETED = 1 << 1,   /* no transaction */
    ST_MAIL = 1 << 2,      /* after MAIL */
    ST_RCPT = 1 << 3,      /* after at least one RCPT */
    ST_DATA = 1 << 4,      /* reading the message */
    ST_WAIT = 1 << 5,      /* final reply pending */
    ST_CLOSED = 1 << 6,
    ST_AUTHWAIT = 1 << 7,  /* the password hash runs off the loop */
};
#define ST_WAITING (ST_WAIT | ST_AUTHWAIT)

/* A password check in flight (io.offload); outlives the session if need be. */
struct auth_job {
    smtp_session *s; /* NULL once the session is gone */
    const smtp_users *users;
    char user[256], password[512];
    bool ok;
};

struct smtp_accept {
    smtp_session *s; /* NULL once the session is gone */
};

struct smtp_session {
    const struct smtp_server_config *cfg;
    const struct smtp_hooks *hooks;
    void *hook_data;
    const struct smtp_session_io *io;
    void *io_data;
    bool submission, esmtp, paused, in_process, drop_input, draining;
    char tls_info[160]; /* "using TLSv1.3 with cipher X (256/256 bits)" */
    int auth_step; /* AUTH_NONE, or waiting for a continuation line */
    char auth_user[256];
    int state;
    unsigned errors;
    struct smtp_envelope env;
    size_t rcpt_cap;
    char id[64];
    /* input */
    char *in;
    size_t in_len, in_cap;
    bool skip_line; /* discarding the rest of an overlong line */
    /* DATA */
    char *body;
    size_t body_len, body_cap;
    size_t hdr_len; /* our Received: header at the front of body */
    bool too_big, bad_eol, long_line;
    bool after_crlf; /* the previous data line ended with CRLF (or DATA just began) */
    smtp_accept *pending;
    struct auth_job *auth_job;
    /* replies of one batch of pipelined commands go out in one write */
    char out[1536];
    size_t out_len;
};

static const char *state_name(int st)
{
    switch (st) {
    case ST_CONNECTED: return "connected";
    case ST_GREETED: return "greeted";
    case ST_MAIL: return "mail";
    case ST_RCPT: return "rcpt";
    case ST_DATA: return "data";
    case ST_WAIT: return "wait";
    case ST_AUTHWAIT: return "authwait";
    default: return "closed";
    }
}

static void enter(smtp_session *s, int st)
{
    rc_debug("smtp", "state client=%s from=%s to=%s", s->env.client_addr, state_name(s->state), state_name(st));
    s->state = st;
}

/* Every public entry point ends with this (and STARTTLS before it switches). */
static void flush_out(smtp_session *s)
{
    if (s->out_len == 0 || s->state == ST_CLOSED)
        return;
    size_t n = s->out_len;
    s->out_len = 0;
    s->io->write(s->io_data, s->out, n);
}

static void reply(smtp_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(smtp_session *s, const char *fmt, ...)
{
    if (s->state == ST_CLOSED)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof buf - 3)
        n = sizeof buf - 3;
    buf[n++] = '\r';
    buf[n++] = '\n';
    if (s->out_len + (size_t)n > sizeof s->out)
        flush_out(s);
    if ((size_t)n > sizeof s->out) {
        s->io->write(s->io_data, buf, (size_t)n);
        return;
    }
    memcpy(s->out + s->out_len, buf, (size_t)n);
    s->out_len += (size_t)n;
}

static void close_session(smtp_session *s)
{
    if (s->state == ST_CLOSED)
        return;
    flush_out(s);
    s->state = ST_CLOSED;
    s->io->close(s->io_data);
}

static void free_envelope(struct smtp_envelope *e)
{
    free(e->mail_from);
    free(e->ret);
    free(e->envid);
    free(e->body_type);
    for (size_t i = 0; i < e->n_rcpts; i++) {
        free(e->rcpts[i].address);
        free(e->rcpts[i].notify);
        free(e->rcpts[i].orcpt);
    }
    free(e->rcpts);
    e->mail_from = e->ret = e->envid = e->body_type = NULL;
    e->rcpts = NULL;
    e->n_rcpts = 0;
    e->smtputf8 = false;
}

static void reset_transaction(smtp_session *s)
{
    free_envelope(&s->env);
    s->rcpt_cap = 0;
    free(s->body);
    s->body = NULL;
    s->body_len = s->body_cap = s->hdr_len = 0;
    s->too_big = s->bad_eol = s->long_line = false;
    s->id[0] = '\0';
}

static void arm_timer(smtp_session *s)
{
    if (s->io->timeout)
        s->io->timeout(s->io_data, s->state == ST_DATA ? s->cfg->data_timeout_ms : s->cfg->command_timeout_ms);
}

static bool bad_command(smtp_session *s)
{
    if (++s->errors >= s->cfg->max_errors) {
        reply(s, "421 4.7.0 %s Too many errors, closing", s->cfg->hostname);
        close_session(s);
        return true;
    }
    return false;
}

/* ------------------------------------------------------------ policy */

static bool in_network(const struct smtp_cidr *n, const char *addr)
{
    uint8_t a[16];
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (n->family == AF_INET) {
        if (inet_pton(AF_INET, addr, a) != 1) {
            /* ::ffff:192.0.2.1 from a dual-stack listener is that IPv4 client */
            uint8_t a6[16];
            if (inet_pton(AF_INET6, addr, a6) != 1 || memcmp(a6, v4mapped, 12) != 0)
                return false;
            memcpy(a, a6 + 12, 4);
        }
    } else if (inet_pton(AF_INET6, addr, a) != 1) {
        return false;
    }
    unsigned bits = n->prefix;
    for (unsigned i = 0; bits > 0; i++, bits = bits >= 8 ? bits - 8 : 0) {
        uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));
        if ((a[i] & mask) != (n->addr[i] & mask))
            return false;
    }
    return true;
}

static bool may_relay(const smtp_session *s)
{
    if (s->env.auth_user)
        return true;
    for (size_t i = 0; i < s->cfg->n_relay_networks; i++)
        if (in_network(&s->cfg->relay_networks[i], s->env.client_addr))
            return true;
    return false;
}

static bool local_domain(const smtp_session *s, const char *domain)
{
    for (size_t i = 0; i < s->cfg->n_local_domains; i++)
        if (strcasecmp(s->cfg->local_domains[i], domain) == 0)
            return true;
    return false;
}

/* ---------------------------------------------------------- commands */

static void cmd_helo(smtp_session *s, const char *arg, bool esmtp)
{
    if (*arg == '\0' || strlen(arg) > 255) {
        reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
        return;
    }
    reset_transaction(s);
    free(s->env.helo);
    s->env.helo = strdup(arg);
    s->esmtp = esmtp;
    enter(s, ST_GREETED);
    if (!esmtp) {
        reply(s, "250 %s", s->cfg->hostname);
        return;
    }
    reply(s, "250-%s", s->cfg->hostname);
    reply(s, "250-PIPELINING");
    reply(s, "250-SIZE %zu", s->cfg->max_message_size);
    reply(s, "250-8BITMIME");
    reply(s, "250-ENHANCEDSTATUSCODES");
    reply(s, "250-DSN");
    if (s->cfg->tls_ctx && !s->env.tls && s->io->starttls)
        reply(s, "250-STARTTLS");
    if (s->env.tls && s->cfg->users && !s->env.auth_user)
        reply(s, "250-AUTH PLAIN LOGIN");
    reply(s, "250 SMTPUTF8");
}

static int parse_mail_params(smtp_session *s, const char *params)
{
    char buf[1024];
    if (strlen(params) >= sizeof buf) {
        reply(s, "501 5.5.4 Parameters too long");
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", params);
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        char *val = eq ? eq + 1 : NULL;
        if (eq)
            *eq = '\0';
        if (strcasecmp(tok, "SIZE") == 0 && val) {
            char *end;
            unsigned long long n = strtoull(val, &end, 10);
            if (*end || !isdigit((unsigned char)*val)) {
                reply(s, "501 5.5.4 Bad SIZE parameter");
                return -1;
            }
            if (n > s->cfg->max_message_size) {
                reply(s, "552 5.3.4 Message size exceeds fixed maximum message size (%zu)", s->cfg->max_message_size);
                return -1;
            }
        } else if (strcasecmp(tok, "BODY") == 0 && val && (!strcasecmp(val, "7BIT") || !strcasecmp(val, "8BITMIME"))) {
            free(s->env.body_type);
            s->env.body_type = strdup(val);
            for (char *c = s->env.body_type; c && *c; c++)
                *c = (char)toupper((unsigned char)*c);
        } else if (strcasecmp(tok, "SMTPUTF8") == 0 && !val) {
            s->env.smtputf8 = true;
        } else if (strcasecmp(tok, "RET") == 0 && val && (!strcasecmp(val, "FULL") || !strcasecmp(val, "HDRS"))) {
            free(s->env.ret);
            s->env.ret = strdup(!strcasecmp(val, "FULL") ? "FULL" : "HDRS");
        } else if (strcasecmp(tok, "ENVID") == 0 && val) {
            char dec[101];
            if (strlen(val) > 100 || smtp_xtext_decode(val, dec, sizeof dec) != 0) {
                reply(s, "501 5.5.4 Bad ENVID parameter");
                return -1;
            }
            free(s->env.envid);
            s->env.envid = strdup(dec);
        } else if (strcasecmp(tok, "AUTH") == 0 && val) {
            /* RFC 4954 5: accepted and ignored */
        } else {
            reply(s, "555 5.5.4 Unsupported MAIL parameter %.40s", tok);
            return -1;
        }
    }
    return 0;
}

static void cmd_mail(smtp_session *s, const char *arg)
{
    if (s->draining) {
        reply(s, "421 4.3.2 %s Service shutting down, try another MX", s->cfg->hostname);
        close_session(s);
        return;
    }
    if (strncasecmp(arg, "FROM:", 5) != 0) {
        reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
        return;
    }
    reset_transaction(s);
    /* SMTPUTF8 may follow the path: look for it before checking 8-bit. */
    bool utf8 = strcasestr(arg, " SMTPUTF8") != NULL;
    char addr[260];
    const char *params = NULL;
    int rv = smtp_addr_parse_path(arg + 5, true, utf8, addr, sizeof addr, &params);
    if (rv != SMTP_ADDR_OK) {
        reply(s, "553 5.1.7 Bad sender address: %s", smtp_addr_strerror(rv));
        bad_command(s);
        return;
    }
    if (parse_mail_params(s, params) != 0) {
        reset_transaction(s);
        return;
    }
    for (const char *c = addr; utf8 && !s->env.smtputf8 && *c; c++)
        if ((unsigned char)*c >= 0x80) { /* " SMTPUTF8" was inside a quoted local part */
            reply(s, "553 5.6.7 Bad sender address: %s", smtp_addr_strerror(SMTP_ADDR_EUTF8));
            reset_transaction(s);
            bad_command(s);
            return;
        }
    if (s->submission && !may_relay(s)) {
        reply(s, "530 5.7.0 Authentication required");
        reset_transaction(s);
        return;
    }
    s->env.mail_from = strdup(addr);
    const char *refusal = s->hooks->admit ? s->hooks->admit(s->hook_data, &s->env) : NULL;
    if (refusal) {
        reply(s, "%s", refusal);
        reset_transaction(s);
        if (strncmp(refusal, "421", 3) == 0)
            close_session(s);
        return;
    }
    enter(s, ST_MAIL);
    reply(s, "250 2.1.0 Ok");
}

static int notify_ok(const char *v)
{
    if (!strcasecmp(v, "NEVER"))
        return 1;
    char buf[64];
    if (strlen(v) >= sizeof buf)
        return 0;
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (strcasecmp(t, "SUCCESS") && strcasecmp(t, "FAILURE") && strcasecmp(t, "DELAY"))
            return 0;
    return 1;
}

static void cmd_rcpt(smtp_session *s, const char *arg)
{
    if (strncasecmp(arg, "TO:", 3) != 0) {
        reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
        return;
    }
    if (s->env.n_rcpts >= s->cfg->max_recipients) {
        reply(s, "452 4.5.3 Too many recipients");
        return;
    }
    char addr[260];
    const char *params = NULL;
    int rv = smtp_addr_parse_path(arg + 3, false, s->env.smtputf8, addr, sizeof addr, &params);
    /* RFC 5321 4.5.1: "RCPT TO:<Postmaster>" without a domain must be
     * accepted: it stands for postmaster at our first local domain. */
    const char *pm = arg + 3;
    while (*pm == ' ')
        pm++;
    if (rv != SMTP_ADDR_OK && strncasecmp(pm, "<postmaster>", 12) == 0 && (pm[12] == '\0' || pm[12] == ' ') &&
        s->cfg->n_local_domains > 0) {
        snprintf(addr, sizeof addr, "postmaster@%.240s", s->cfg->local_domains[0]);
        params = pm + 12;
        while (*params == ' ')
            params++;
        rv = SMTP_ADDR_OK;
    }
    if (rv != SMTP_ADDR_OK) {
        if (rv == SMTP_ADDR_EROUTE || rv == SMTP_ADDR_ERELAYHACK)
            reply(s, "550 5.7.1 Relaying denied: %s", smtp_addr_strerror(rv));
        else
            reply(s, "553 5.1.3 Bad recipient address: %s", smtp_addr_strerror(rv));
        bad_command(s);
        return;
    }
    const char *domain = smtp_addr_domain(addr);
    if (!local_domain(s, domain) && !may_relay(s)) {
        reply(s, "550 5.7.1 <%s>: Relay access denied", addr);
        bad_command(s);
        return;
    }
    char *notify = NULL, *orcpt = NULL;
    char buf[600];
    if (strlen(params) >= sizeof buf) {
        reply(s, "501 5.5.4 Parameters too long");
        return;
    }
    snprintf(buf, sizeof buf, "%s", params);
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        char *val = eq ? eq + 1 : NULL;
        if (eq)
            *eq = '\0';
        if (strcasecmp(tok, "NOTIFY") == 0 && val && notify_ok(val) && !notify) {
            notify = strdup(val);
            for (char *c = notify; c && *c; c++)
                *c = (char)toupper((unsigned char)*c);
        } else if (strcasecmp(tok, "ORCPT") == 0 && val && strchr(val, ';') && !orcpt) {
            char dec[520];
            char *semi = strchr(val, ';');
            if (smtp_xtext_decode(semi + 1, dec, sizeof dec) != 0) {
                free(notify);
                reply(s, "501 5.5.4 Bad ORCPT parameter");
                return;
            }
            size_t n = (size_t)(semi - val) + 1 + strlen(dec) + 1;
            orcpt = malloc(n);
            if (orcpt)
                snprintf(orcpt, n, "%.*s;%s", (int)(semi - val), val, dec);
        } else {
            free(notify);
            free(orcpt);
            reply(s, "555 5.5.4 Unsupported RCPT parameter %.40s", tok);
            return;
        }
    }
    if (s->env.n_rcpts == s->rcpt_cap) {
        size_t ncap = s->rcpt_cap ? s->rcpt_cap * 2 : 4;
        struct smtp_rcpt *r = realloc(s->env.rcpts, ncap * sizeof *r);
        if (r == NULL) {
            free(notify);
            free(orcpt);
            reply(s, "452 4.3.1 Insufficient system resources");
            return;
        }
        s->env.rcpts = r;
        s->rcpt_cap = ncap;
    }
    struct smtp_rcpt *r = &s->env.rcpts[s->env.n_rcpts++];
    r->address = strdup(addr);
    r->notify = notify;
    r->orcpt = orcpt;
    enter(s, ST_RCPT);
    reply(s, "250 2.1.5 Ok");
}

static int body_append(smtp_session *s, const char *p, size_t n)
{
    if (s->too_big)
        return 0;
    if (s->body_len - s->hdr_len + n > s->cfg->max_message_size) { /* the client's bytes only */
        s->too_big = true;
        free(s->body);
        s->body = NULL;
        s->body_len = s->body_cap = 0;
        return 0;
    }
    if (s->body_len + n > s->body_cap) {
        size_t ncap = s->body_cap ? s->body_cap : 8192;
        while (ncap < s->body_len + n)
            ncap *= 2;
        char *nb = realloc(s->body, ncap);
        if (nb == NULL)
            return -1;
        s->body = nb;
        s->body_cap = ncap;
    }
    memcpy(s->body + s->body_len, p, n);
    s->body_len += n;
    return 0;
}

static void cmd_data(smtp_session *s, const char *arg)
{
    if (*arg) {
        reply(s, "501 5.5.4 Syntax: DATA");
        return;
    }
    if (s->hooks->new_id)
        s->hooks->new_id(s->hook_data, s->id, sizeof s->id);
    else
        snprintf(s->id, sizeof s->id, "0");
    /* Received: (RFC 5321 4.4) */
    char date[64], hdr[1024];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    const char *with = s->esmtp ? (s->env.auth_user ? (s->env.tls ? "ESMTPSA" : "ESMTPA") : (s->env.tls ? "ESMTPS" : "ESMTP"))
                                : "SMTP";
    /* the HELO name as given when it looks like a domain or literal; other
     * bytes become '?' so that the header stays one clean token */
    char helo_q[300];
    snprintf(helo_q, sizeof helo_q, "%s", s->env.helo && *s->env.helo ? s->env.helo : "unknown");
    for (char *c = helo_q; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr(".-_[]:", *c))
            *c = '?';
    char tls[200] = "";
    if (s->env.tls && s->tls_info[0])
        snprintf(tls, sizeof tls, "\r\n\t(%s)", s->tls_info);
    int n;
    if (s->env.n_rcpts == 1)
        n = snprintf(hdr, sizeof hdr, "Received: from %s ([%s])%s\r\n\tby %s (Ricochet) with %s id %s\r\n\tfor <%s>; %s\r\n",
                     helo_q, s->env.client_addr, tls, s->cfg->hostname, with, s->id, s->env.rcpts[0].address, date);
    else
        n = snprintf(hdr, sizeof hdr, "Received: from %s ([%s])%s\r\n\tby %s (Ricochet) with %s id %s;\r\n\t%s\r\n",
                     helo_q, s->env.client_addr, tls, s->cfg->hostname, with, s->id, date);
    if (n < 0 || (size_t)n >= sizeof hdr)
        n = 0;
    body_append(s, hdr, (size_t)n);
    s->hdr_len = s->body_len;
    s->after_crlf = true;
    enter(s, ST_DATA);
    reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void cmd_rset(smtp_session *s, const char *arg)
{
    (void)arg;
    reset_transaction(s);
    if (s->state != ST_CONNECTED)
        enter(s, ST_GREETED);
    reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(smtp_session *s, const char *arg)
{
    (void)arg;
    reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(smtp_session *s, const char *arg)
{
    (void)arg;
    reply(s, "221 2.0.0 %s Bye", s->cfg->hostname);
    close_session(s);
}

static void cmd_vrfy(smtp_session *s, const char *arg)
{
    (void)arg;
    reply(s, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_help(smtp_session *s, const char *arg)
{
    (void)arg;
    reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
}

static void cmd_starttls(smtp_session *s, const char *arg)
{
    if (*arg) {
        reply(s, "501 5.5.4 Syntax: STARTTLS");
        return;
    }
    if (!s->cfg->tls_ctx || !s->io->starttls || s->env.tls) {
        reply(s, "502 5.5.1 STARTTLS not available");
        return;
    }
    reply(s, "220 2.0.0 Ready to start TLS");
    /* Anything pipelined after STARTTLS was sent in plain text: drop it
     * (the command-injection attack of CVE-2011-0411). */
    s->drop_input = true;
    flush_out(s); /* the 220 goes out in clear text */
    if (s->io->starttls(s->io_data) != 0) {
        close_session(s);
        return;
    }
    s->env.tls = true;
    reset_transaction(s);
    free(s->env.helo);
    s->env.helo = NULL;
    enter(s, ST_CONNECTED); /* the client must EHLO again (RFC 3207 4.2) */
}

/* AUTH's base64 as a string (NUL-terminated in out); -1 if malformed. */
static int b64_decode(const char *in, char *out, size_t outlen)
{
    int len = smtp_b64_decode(in, (unsigned char *)out, outlen - 1);
    if (len >= 0)
        out[len] = '\0';
    return len;
}

static void auth_result(smtp_session *s, const char *user, bool ok)
{
    if (ok) {
        free(s->env.auth_user);
        s->env.auth_user = strdup(user);
        rc_info("smtp", "auth_ok client=%s user=%s", s->env.client_addr, user);
        reply(s, "235 2.7.0 Authentication successful");
        return;
    }
    char q[160];
    rc_warn("smtp", "auth_failed client=%s user=%s", s->env.client_addr, rc_log_quote(q, sizeof q, user, strlen(user)));
    reply(s, "535 5.7.8 Authentication credentials invalid");
    bad_command(s);
}

static void auth_work(void *arg)
{
    struct auth_job *j = arg;
    j->ok = smtp_users_check(j->users, j->user, j->password);
    OPENSSL_cleanse(j->password, sizeof j->password);
}

static void process(smtp_session *s);

static void auth_done(void *arg)
{
    struct auth_job *j = arg;
    smtp_session *s = j->s;
    if (s != NULL) {
        s->auth_job = NULL;
        enter(s, ST_GREETED);
        auth_result(s, j->user, j->ok);
        if (s->state != ST_CLOSED) {
            arm_timer(s);
            process(s); /* commands that waited */
        }
        flush_out(s);
    }
    free(j);
}

/* PBKDF2 costs tens of milliseconds: it runs off the event loop when the
 * transport can (io.offload), and the session waits in ST_AUTHWAIT. */
static void auth_finish(smtp_session *s, const char *user, const char *password)
{
    s->auth_step = AUTH_NONE;
    struct auth_job *j = s->io->offload ? calloc(1, sizeof *j) : NULL;
    if (j == NULL) {
        auth_result(s, user, smtp_users_check(s->cfg->users, user, password));
        return;
    }
    j->s = s;
    j->users = s->cfg->users;
    snprintf(j->user, sizeof j->user, "%s", user);
    snprintf(j->password, sizeof j->password, "%s", password);
    s->auth_job = j;
    enter(s, ST_AUTHWAIT);
    if (s->io->offload(s->io_data, auth_work, auth_done, j) != 0) {
        s->auth_job = NULL;
        enter(s, ST_GREETED);
        OPENSSL_cleanse(j->password, sizeof j->password);
        free(j);
        auth_result(s, user, smtp_users_check(s->cfg->users, user, password));
    }
}

static void auth_plain(smtp_session *s, const char *b64)
{
    char buf[768];
    int n = b64_decode(b64, buf, sizeof buf);
    /* authzid NUL authcid NUL passwd */
    const char *authcid = n > 0 ? memchr(buf, '\0', (size_t)n) : NULL;
    const char *passwd = authcid ? memchr(authcid + 1, '\0', (size_t)(buf + n - authcid - 1)) : NULL;
    if (passwd == NULL) {
        s->auth_step = AUTH_NONE;
        reply(s, "501 5.5.2 Malformed AUTH PLAIN response");
        bad_command(s);
        return;
    }
    if (buf[0] != '\0' && strcmp(buf, authcid + 1) != 0) {
        /* an authorization identity other than oneself: never granted */
        s->auth_step = AUTH_NONE;
        auth_result(s, authcid + 1, false);
        OPENSSL_cleanse(buf, sizeof buf);
        return;
    }
    auth_finish(s, authcid + 1, passwd + 1);
    OPENSSL_cleanse(buf, sizeof buf);
}

static void auth_line(smtp_session *s, const char *line)
{
    if (strcmp(line, "*") == 0) {
        s->auth_step = AUTH_NONE;
        reply(s, "501 5.0.0 Authentication cancelled");
        return;
    }
    char buf[512];
    switch (s->auth_step) {
    case AUTH_PLAIN_WAIT:
        auth_plain(s, line);
        return;
    case AUTH_LOGIN_USER:
        if (b64_decode(line, buf, sizeof buf) <= 0 || strlen(buf) >= sizeof s->auth_user) {
            s->auth_step = AUTH_NONE;
            reply(s, "501 5.5.2 Malformed AUTH LOGIN response");
            return;
        }
        memcpy(s->auth_user, buf, strlen(buf) + 1); /* shorter than auth_user: checked above */
        s->auth_step = AUTH_LOGIN_PASS;
        reply(s, "334 UGFzc3dvcmQ6");
        return;
    case AUTH_LOGIN_PASS:
        if (b64_decode(line, buf, sizeof buf) < 0) {
            s->auth_step = AUTH_NONE;
            reply(s, "501 5.5.2 Malformed AUTH LOGIN response");
            return;
        }
        auth_finish(s, s->auth_user, buf);
        OPENSSL_cleanse(buf, sizeof buf);
        return;
    }
}

static void cmd_auth(smtp_session *s, const char *arg)
{
    if (!s->env.tls || s->cfg->users == NULL) {
        reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
        bad_command(s);
        return;
    }
    if (s->env.auth_user) {
        reply(s, "503 5.5.1 Already authenticated");
        return;
    }
    char mech[16];
    const char *initial = strchr(arg, ' ');
    size_t ml = initial ? (size_t)(initial - arg) : strlen(arg);
    if (ml == 0 || ml >= sizeof mech) {
        reply(s, "501 5.5.4 Syntax: AUTH mechanism");
        return;
    }
    memcpy(mech, arg, ml);
    mech[ml] = '\0';
    while (initial && *initial == ' ')
        initial++;
    if (strcasecmp(mech, "PLAIN") == 0) {
        if (initial && *initial && strcmp(initial, "=") != 0)
            auth_plain(s, initial);
        else {
            s->auth_step = AUTH_PLAIN_WAIT;
            reply(s, "334 ");
        }
    } else if (strcasecmp(mech, "LOGIN") == 0) {
        if (initial && *initial) {
            s->auth_step = AUTH_LOGIN_USER;
            auth_line(s, initial);
        } else {
            s->auth_step = AUTH_LOGIN_USER;
            reply(s, "334 VXNlcm5hbWU6");
        }
    } else {
        reply(s, "504 5.5.4 Unrecognized authentication type");
    }
}

static void cmd_ehlo(smtp_session *s, const char *arg) { cmd_helo(s, arg, true); }
static void cmd_helo_plain(smtp_session *s, const char *arg) { cmd_helo(s, arg, false); }

#define ANY_GREETED (ST_GREETED | ST_MAIL | ST_RCPT)
#define ANY (ST_CONNECTED | ANY_GREETED)

static const struct smtp_cmd {
    const char *verb;
    int allowed; /* states in which the command may run */
    const char *wrong_state_reply;
    void (*run)(smtp_session *s, const char *arg);
} commands[] = {
    {"EHLO", ANY, NULL, cmd_ehlo},
    {"HELO", ANY, NULL, cmd_helo_plain},
    {"MAIL", ST_GREETED, "503 5.5.1 Error: send HELO/EHLO first, or a transaction is in progress", cmd_mail},
    {"RCPT", ST_MAIL | ST_RCPT, "503 5.5.1 Error: need MAIL command", cmd_rcpt},
    {"DATA", ST_RCPT, "503 5.5.1 Error: need RCPT command", cmd_data},
    {"RSET", ANY, NULL, cmd_rset},
    {"NOOP", ANY, NULL, cmd_noop},
    {"QUIT", ANY, NULL, cmd_quit},
    {"VRFY", ANY, NULL, cmd_vrfy},
    {"HELP", ANY, NULL, cmd_help},
    {"STARTTLS", ST_GREETED, "503 5.5.1 Error: send EHLO first, outside a transaction", cmd_starttls},
    {"AUTH", ST_GREETED, "503 5.5.1 Error: AUTH after EHLO, outside a transaction", cmd_auth},
};

static void dispatch(smtp_session *s, char *line, size_t len)
{
    if (memchr(line, '\0', len)) {
        reply(s, "500 5.5.2 NUL character in command");
        bad_command(s);
        return;
    }
    line[len] = '\0';
    char *arg = line;
    while (*arg && *arg != ' ')
        arg++;
    size_t verb_len = (size_t)(arg - line);
    while (*arg == ' ')
        arg++;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const struct smtp_cmd *c = &commands[i];
        if (strlen(c->verb) != verb_len || strncasecmp(c->verb, line, verb_len) != 0)
            continue;
        if (!(c->allowed & s->state)) {
            if (s->state == ST_CONNECTED && c->wrong_state_reply)
                reply(s, "503 5.5.1 Error: send HELO/EHLO first");
            else
                reply(s, "%s", c->wrong_state_reply ? c->wrong_state_reply : "503 5.5.1 Bad sequence of commands");
            bad_command(s);
            return;
        }
        c->run(s, arg);
        return;
    }
    if (verb_len == 4 && strncasecmp(line, "BDAT", 4) == 0)
        reply(s, "502 5.5.1 BDAT not implemented (CHUNKING is not offered)");
    else
        reply(s, "502 5.5.2 Error: command not recognized");
    bad_command(s);
}

/* ------------------------------------------------------------- DATA */

static void finish_data(smtp_session *s)
{
    arm_timer(s);
    if (s->too_big || s->bad_eol || s->long_line) {
        if (s->too_big)
            reply(s, "552 5.3.4 Message size exceeds fixed maximum message size (%zu)", s->cfg->max_message_size);
        else if (s->bad_eol)
            reply(s, "550 5.6.0 Message refused: bare CR or LF in the data (RFC 5321 2.3.8)");
        else
            reply(s, "500 5.5.2 Message refused: a line is longer than %zu octets", s->cfg->max_line);
        rc_info("smtp", "message_refused client=%s reason=%s", s->env.client_addr,
                s->too_big ? "too_big" : s->bad_eol ? "bare_cr_or_lf" : "long_line");
        reset_transaction(s);
        enter(s, ST_GREETED);
        return;
    }
    smtp_accept *tok = calloc(1, sizeof *tok);
    if (tok == NULL) {
        reply(s, "451 4.3.0 Insufficient system resources");
        reset_transaction(s);
        enter(s, ST_GREETED);
        return;
    }
    if (s->hooks->on_message == NULL) {
        free(tok);
        reply(s, "451 4.3.0 Message storage not available");
        reset_transaction(s);
        enter(s, ST_GREETED);
        return;
    }
    tok->s = s;
    s->pending = tok;
    enter(s, ST_WAIT);
    s->hooks->on_message(s->hook_data, tok, s->id, &s->env, (const uint8_t *)s->body, s->body_len);
}

/* Consumes DATA lines from the input buffer; returns bytes consumed. */
static size_t process_data(smtp_session *s, const char *buf, size_t len)
{
    size_t off = 0;
    while (off < len && s->state == ST_DATA) {
        const char *lf = memchr(buf + off, '\n', len - off);
        if (lf == NULL) {
            size_t partial = len - off;
            if (partial > s->cfg->max_line) {
                /* an overlong line: keep the flag, drop the bytes */
                s->long_line = true;
                s->skip_line = true;
                return len;
            }
            return off; /* wait for the rest of the line */
        }
        size_t n = (size_t)(lf - (buf + off)); /* without LF */
        const char *line = buf + off;
        bool crlf = n > 0 && line[n - 1] == '\r';
        size_t content = crlf ? n - 1 : n;
        off += n + 1;
        if (s->skip_line) {
            s->skip_line = false;
            s->after_crlf = crlf;
            continue;
        }
        bool bare = !crlf || memchr(line, '\r', content) != NULL;
        if (bare)
            s->bad_eol = true;
        /* Only CRLF "." CRLF ends the data: after a bare LF or CR, a "."
         * line is content (no smuggled end of data, no smuggled commands). */
        if (crlf && content == 1 && line[0] == '.' && s->after_crlf) {
            finish_data(s);
            return off;
        }
        s->after_crlf = !bare;
        if (content + 2 > s->cfg->max_line)
            s->long_line = true;
        if (content > 0 && line[0] == '.') { /* dot-unstuffing */
            line++;
            content--;
        }
        if (body_append(s, line, content) != 0 || body_append(s, "\r\n", 2) != 0) {
            s->too_big = true;
        }
    }
    return off;
}

/* ------------------------------------------------------------- input */

static void process(smtp_session *s)
{
    if (s->in_process)
        return;
    s->in_process = true;
    size_t off = 0;
    while (off < s->in_len && s->state != ST_CLOSED && !(s->state & ST_WAITING)) {
        if (s->state == ST_DATA) {
            off += process_data(s, s->in + off, s->in_len - off);
            if (s->state == ST_DATA)
                break; /* need more input */
            continue;
        }
        char *lf = memchr(s->in + off, '\n', s->in_len - off);
        if (lf == NULL) {
            if (s->in_len - off > s->cfg->max_line) {
                off = s->in_len; /* drop what we have of the overlong line */
                if (!s->skip_line) { /* one reply per line, however it arrives */
                    s->skip_line = true;
                    reply(s, "500 5.5.2 Line too long");
                    bad_command(s);
                }
            }
            break;
        }
        size_t n = (size_t)(lf - (s->in + off));
        char *line = s->in + off;
        off += n + 1;
        if (s->skip_line) {
            s->skip_line = false;
            continue;
        }
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (n + 2 > s->cfg->max_line) {
            reply(s, "500 5.5.2 Line too long");
            bad_command(s);
            continue;
        }
        if (s->auth_step != AUTH_NONE) {
            line[n] = '\0';
            auth_line(s, line);
            continue;
        }
        dispatch(s, line, n);
        if (s->drop_input) {
            s->drop_input = false;
            off = s->in_len;
        }
    }
    /* keep the unconsumed tail; an idle session holds no input buffer */
    if (off > 0) {
        memmove(s->in, s->in + off, s->in_len - off);
        s->in_len -= off;
    }
    if (s->in_len == 0 && s->in_cap > 0) {
        free(s->in);
        s->in = NULL;
        s->in_cap = 0;
    }
    bool want_pause = (s->state & ST_WAITING) || s->in_len > s->cfg->max_pipeline;
    if (want_pause != s->paused && s->io->pause && s->state != ST_CLOSED) {
        s->paused = want_pause;
        s->io->pause(s->io_data, want_pause);
    }
    s->in_process = false;
    /* shutting down: a session back between transactions with nothing
     * more to answer ends now */
    if (s->draining && !smtp_session_busy(s) && s->state != ST_CLOSED && s->in_len == 0)
        smtp_session_drain(s);
}

void smtp_session_input(smtp_session *s, const char *buf, size_t len)
{
    if (s->state == ST_CLOSED)
        return;
    arm_timer(s);
    size_t limit = s->cfg->max_pipeline + s->cfg->max_line + 2;
    while (len > 0) {
        size_t room = limit - s->in_len;
        size_t take = len < room ? len : room;
        if (take == 0) {
            if (s->state & ST_WAITING) {
                /* the client keeps sending while we wait: it must not
                 * hold memory without bound */
                reply(s, "421 4.7.0 %s Too much pipelined input, closing", s->cfg->hostname);
                close_session(s);
                return;
            }
            process(s);
            if (s->in_len >= limit) {
                reply(s, "500 5.5.2 Line too long");
                s->in_len = 0;
                s->skip_line = true;
            }
            continue;
        }
        if (s->in_len + take > s->in_cap) {
            size_t ncap = s->in_cap ? s->in_cap : 4096;
            while (ncap < s->in_len + take)
                ncap *= 2;
            char *nb = realloc(s->in, ncap);
            if (nb == NULL) {
                close_session(s);
                return;
            }
            s->in = nb;
            s->in_cap = ncap;
        }
        memcpy(s->in + s->in_len, buf, take);
        s->in_len += take;
        buf += take;
        len -= take;
        process(s);
    }
    flush_out(s);
}

void smtp_accept_done(smtp_accept *tok, const char *reply_line)
{
    smtp_session *s = tok->s;
    free(tok);
    if (s == NULL)
        return; /* the client left while we stored the message */
    s->pending = NULL;
    reply(s, "%s", reply_line);
    reset_transaction(s);
    if (s->state == ST_CLOSED)
        return;
    enter(s, ST_GREETED);
    arm_timer(s);
    process(s);
    flush_out(s);
}

/* ---------------------------------------------------------- lifecycle */

smtp_session *smtp_session_new(const struct smtp_server_config *cfg, const struct smtp_hooks *hooks,
                               void *hook_data, const struct smtp_session_io *io, void *io_data,
                               const char *client_addr, bool submission)
{
    smtp_session *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->cfg = cfg;
    s->hooks = hooks;
    s->hook_data = hook_data;
    s->io = io;
    s->io_data = io_data;
    s->submission = submission;
    s->state = ST_CONNECTED;
    snprintf(s->env.client_addr, sizeof s->env.client_addr, "%s", client_addr);
    return s;
}

void smtp_session_start(smtp_session *s)
{
    const char *refusal = s->hooks->admit ? s->hooks->admit(s->hook_data, NULL) : NULL;
    if (refusal) {
        reply(s, "%s", refusal);
        close_session(s);
        return;
    }
    reply(s, "220 %s ESMTP Ricochet", s->cfg->hostname);
    flush_out(s);
    arm_timer(s);
}

void smtp_session_timeout(smtp_session *s)
{
    if ((s->state & ST_WAITING) || s->state == ST_CLOSED)
        return; /* our own delay: the node answers within accept_timeout */
    rc_info("smtp", "session_ended client=%s state=%s reason=timeout_or_shutdown", s->env.client_addr,
            state_name(s->state));
    reply(s, "421 4.4.2 %s Closing connection (timeout or shutdown)", s->cfg->hostname);
    close_session(s);
}

void smtp_session_tls_info(smtp_session *s, const char *version, const char *cipher, int bits)
{
    snprintf(s->tls_info, sizeof s->tls_info, "using %.20s with cipher %.80s (%d/%d bits)", version ? version : "",
             cipher ? cipher : "", bits, bits);
}

void smtp_session_drain(smtp_session *s)
{
    if (s->state == ST_CLOSED)
        return;
    s->draining = true;
    if (!smtp_session_busy(s)) {
        reply(s, "421 4.3.2 %s Service shutting down, try another MX", s->cfg->hostname);
        close_session(s);
    }
}

size_t smtp_session_memory(const smtp_session *s)
{
    size_t n = sizeof *s + s->in_cap + s->body_cap + s->env.n_rcpts * sizeof(struct smtp_rcpt);
    for (size_t i = 0; i < s->env.n_rcpts; i++)
        n += strlen(s->env.rcpts[i].address) + 1;
    return n;
}

bool smtp_session_closing(const smtp_session *s)
{
    return s->state == ST_CLOSED;
}

bool smtp_session_busy(const smtp_session *s)
{
    return (s->state & (ST_MAIL | ST_RCPT | ST_DATA | ST_WAITING)) != 0;
}

void smtp_session_free(smtp_session *s)
{
    if (s == NULL)
        return;
    if (s->pending)
        s->pending->s = NULL;
    if (s->auth_job)
        s->auth_job->s = NULL;
    reset_transaction(s);
    free(s->env.helo);
    free(s->env.auth_user);
    free(s->in);
    free(s);
}

void smtp_server_config_defaults(struct smtp_server_config *c)
{
    memset(c, 0, sizeof *c);
    c->hostname = "localhost";
    c->max_message_size = 25u << 20;
    c->max_line = 1000;
    c->max_recipients = 100;
    c->max_errors = 10;
    c->max_connections = 10000;
    c->max_connections_per_ip = 100;
    c->command_timeout_ms = 300000;
    c->data_timeout_ms = 600000;
    c->max_pipeline = 64u << 10;
    c->max_unread_output = 1u << 20;
}

int smtp_parse_networks(struct smtp_server_config *c, const char *list, char *err, size_t errlen)
{
    char buf[1024];
    if (strlen(list) >= sizeof buf) {
        snprintf(err, errlen, "network list too long");
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", list);
    c->n_relay_networks = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (c->n_relay_networks == SMTP_MAX_NETWORKS) {
            snprintf(err, errlen, "more than %d networks", SMTP_MAX_NETWORKS);
            return -1;
        }
        struct smtp_cidr *n = &c->relay_networks[c->n_relay_networks];
        char *slash = strchr(tok, '/');
        if (slash)
            *slash = '\0';
        memset(n, 0, sizeof *n);
        if (inet_pton(AF_INET, tok, n->addr) == 1) {
            n->family = AF_INET;
            n->prefix = 32;
        } else if (inet_pton(AF_INET6, tok, n->addr) == 1) {
            n->family = AF_INET6;
            n->prefix = 128;
        } else {
            snprintf(err, errlen, "\"%s\" is not an IP address", tok);
            return -1;
        }
        if (slash) {
            char *end;
            long p = strtol(slash + 1, &end, 10);
            if (*end || p < 0 || (unsigned)p > n->prefix) {
                snprintf(err, errlen, "bad prefix length /%s", slash + 1);
                return -1;
            }
            n->prefix = (unsigned)p;
        }
        c->n_relay_networks++;
    }
    return 0;
}
