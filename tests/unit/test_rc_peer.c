/* The peer channel on one real libuv loop over loopback (127.0.0.51-59,
 * ports 12401-12409): three nodes authenticate pairwise and exchange frames
 * in order both ways; a wrong secret is refused and logged on both sides; a
 * node that is not a member is refused; raw garbage, oversized, zero-length,
 * truncated, premature and silent input from a plain uv TCP client is
 * refused with a WARN line naming the client's address and the reason, and
 * the node keeps serving; both ends reconnect after the other restarts; the
 * send queue bound; the pending-connection bound; closing the net from
 * inside its callbacks.
 *
 * Log lines are checked by pointing fd 2 at a temporary file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "raft/rc_frame.h"
#include "raft/rc_peer.h"

#define ADDR1 "127.0.0.51:12401"
#define ADDR2 "127.0.0.52:12402"
#define ADDR3 "127.0.0.53:12403"
#define CLIENT_IP "127.0.0.59"
#define SECRET "the-cluster-secret-0123456789"

static uv_loop_t loop;

/* ------------------------------------------------------------ log capture */

static FILE *log_file;
static int saved_stderr = -1;

static void log_capture(void)
{
    fflush(stderr);
    log_file = tmpfile();
    assert_non_null(log_file);
    saved_stderr = dup(2);
    dup2(fileno(log_file), 2);
}

/* Stops capturing; returns the text (caller frees) and echoes it. */
static char *log_release(void)
{
    if (saved_stderr < 0)
        return strdup("");
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    saved_stderr = -1;
    long n = ftell(log_file);
    char *text = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
    rewind(log_file);
    size_t got = fread(text, 1, (size_t)(n > 0 ? n : 0), log_file);
    text[got] = '\0';
    fclose(log_file);
    fputs(text, stderr);
    return text;
}

/* True when one line of text contains every needle. */
static bool log_has(const char *text, const char *a, const char *b, const char *c)
{
    const char *line = text;
    while (*line) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char *l = strndup(line, len);
        bool ok = strstr(l, a) && (!b || strstr(l, b)) && (!c || strstr(l, c));
        free(l);
        if (ok)
            return true;
        line += len + (eol ? 1 : 0);
    }
    return false;
}

/* ------------------------------------------------------------- a node */

struct node {
    rc_peer_net *net;
    uint64_t id;
    int up, down;
    uint64_t last_req[8]; /* per sender */
    int frames[8];
    bool ordered;
    int close_on_frame, close_on_up;
    int *closed_flag;
};

static void closed_cb(void *data)
{
    (*(int *)data)++;
}

static int close_count;

static void on_frame(rc_peer_net *net, uint64_t from, const Ricochet__PeerFrame *f, void *data)
{
    struct node *s = data;
    assert_true(from < 8);
    if (f->kind_case == RICOCHET__PEER_FRAME__KIND_PROPOSE) {
        if (f->propose->req != s->last_req[from] + 1)
            s->ordered = false;
        s->last_req[from] = f->propose->req;
    }
    s->frames[from]++;
    if (s->close_on_frame) {
        rc_peer_net_close(net, closed_cb, &close_count);
        s->net = NULL;
    }
}

static void on_state(rc_peer_net *net, uint64_t id, bool up, void *data)
{
    struct node *s = data;
    (void)id;
    if (up)
        s->up++;
    else
        s->down++;
    if (up && s->close_on_up) {
        rc_peer_net_close(net, closed_cb, &close_count);
        s->net = NULL;
    }
}

struct opts {
    const char *secret;
    size_t max_queue;
    unsigned handshake_ms;
    unsigned max_pending;
};

static void start(struct node *s, uint64_t self, const char *addr, const struct opts *o, ...)
{
    memset(s, 0, sizeof *s);
    s->ordered = true;
    s->id = self;
    struct rc_peer_config cfg = {.self_id = self, .listen_addr = addr,
                                 .secret = o && o->secret ? o->secret : SECRET,
                                 .max_frame = 1 << 20,
                                 .handshake_timeout_ms = o && o->handshake_ms ? o->handshake_ms : 5000,
                                 .max_queue_bytes = o ? o->max_queue : 0,
                                 .max_pending = o ? o->max_pending : 0,
                                 .reconnect_min_ms = 20, .reconnect_max_ms = 100};
    struct rc_peer_callbacks cb = {.on_frame = on_frame, .on_peer_state = on_state};
    assert_int_equal(rc_peer_net_start(&s->net, &loop, &cfg, &cb, s), RC_PEER_OK);
    /* peers: (id, addr) pairs ending with id 0 */
    va_list ap;
    va_start(ap, o);
    for (;;) {
        uint64_t id = va_arg(ap, uint64_t);
        if (id == 0)
            break;
        const char *a = va_arg(ap, const char *);
        assert_int_equal(rc_peer_net_add(s->net, id, a), RC_PEER_OK);
    }
    va_end(ap);
}

static void stop(struct node *s)
{
    if (s->net == NULL)
        return;
    int closed = 0;
    rc_peer_net_close(s->net, closed_cb, &closed);
    s->net = NULL;
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(closed, 1);
}

/* Runs the loop until cond holds. The guard only stops a hung test from
 * hanging CI; no test asserts anything about elapsed time. */
static uv_timer_t tick;
static void tick_cb(uv_timer_t *t) { (void)t; }
static bool run_until(bool (*cond)(void *), void *arg)
{
    uint64_t guard = uv_hrtime() + 30ull * 1000000000u;
    uv_timer_start(&tick, tick_cb, 20, 20);
    while (!cond(arg) && uv_hrtime() < guard)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&tick);
    return cond(arg);
}

static int send_propose(rc_peer_net *net, uint64_t to, uint64_t req, size_t payload)
{
    uint8_t *buf = calloc(1, payload ? payload : 1);
    Ricochet__Probe probe;
    ricochet__probe__init(&probe);
    probe.has_payload = true;
    probe.payload.data = buf;
    probe.payload.len = payload;
    Ricochet__Record rec, *prec = &rec;
    ricochet__record__init(&rec);
    rec.kind_case = RICOCHET__RECORD__KIND_PROBE;
    rec.probe = &probe;
    Ricochet__ProposeRequest pr;
    ricochet__propose_request__init(&pr);
    pr.has_req = true;
    pr.req = req;
    pr.records = &prec;
    pr.n_records = 1;
    Ricochet__PeerFrame f;
    ricochet__peer_frame__init(&f);
    f.kind_case = RICOCHET__PEER_FRAME__KIND_PROPOSE;
    f.propose = &pr;
    int rv = rc_peer_send(net, to, &f);
    free(buf);
    return rv;
}

static struct node N1, N2, N3, X;

static bool up12(void *x) { (void)x; return rc_peer_is_up(N1.net, 2) && rc_peer_is_up(N2.net, 1); }
static bool all_up(void *x)
{
    (void)x;
    return rc_peer_is_up(N1.net, 2) && rc_peer_is_up(N1.net, 3) && rc_peer_is_up(N2.net, 1) &&
           rc_peer_is_up(N2.net, 3) && rc_peer_is_up(N3.net, 1) && rc_peer_is_up(N3.net, 2);
}

/* ------------------------------------------------------- a raw client */

struct raw {
    uv_tcp_t tcp;
    uv_connect_t cr;
    uv_write_t wr;
    uv_shutdown_t sr;
    uint8_t out[4096];
    size_t out_len;
    bool shut, connected, ended, closed;
    size_t got;
    uint8_t in[4096];
};

static void raw_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    (void)n;
    static char scratch[65536];
    b->base = scratch;
    b->len = sizeof scratch;
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct raw *r = s->data;
    if (n < 0) {
        r->ended = true;
        uv_read_stop(s);
        return;
    }
    if (r->got + (size_t)n <= sizeof r->in)
        memcpy(r->in + r->got, b->base, (size_t)n);
    r->got += (size_t)n;
}

static void raw_written(uv_write_t *w, int status) { (void)w; (void)status; }
static void raw_shut(uv_shutdown_t *s, int status) { (void)s; (void)status; }

static void raw_connected(uv_connect_t *c, int status)
{
    struct raw *r = c->data;
    if (status < 0) {
        r->ended = true;
        return;
    }
    r->connected = true;
    uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
    if (r->out_len) {
        uv_buf_t b = uv_buf_init((char *)r->out, (unsigned)r->out_len);
        uv_write(&r->wr, (uv_stream_t *)&r->tcp, &b, 1, raw_written);
    }
    if (r->shut)
        uv_shutdown(&r->sr, (uv_stream_t *)&r->tcp, raw_shut);
}

static void raw_start(struct raw *r, const char *to_ip, int to_port, const void *data, size_t len, bool shut)
{
    memset(r, 0, sizeof *r);
    assert_true(len <= sizeof r->out);
    if (len)
        memcpy(r->out, data, len);
    r->out_len = len;
    r->shut = shut;
    uv_tcp_init(&loop, &r->tcp);
    r->tcp.data = r;
    struct sockaddr_in local, dst;
    uv_ip4_addr(CLIENT_IP, 0, &local);
    assert_int_equal(uv_tcp_bind(&r->tcp, (const struct sockaddr *)&local, 0), 0);
    uv_ip4_addr(to_ip, to_port, &dst);
    r->cr.data = r;
    assert_int_equal(uv_tcp_connect(&r->cr, &r->tcp, (const struct sockaddr *)&dst, raw_connected), 0);
}

static void raw_closed(uv_handle_t *h) { ((struct raw *)h->data)->closed = true; }
static bool raw_is_closed(void *x) { return ((struct raw *)x)->closed; }
static bool raw_ended(void *x) { return ((struct raw *)x)->ended; }

static void raw_close(struct raw *r)
{
    if (!uv_is_closing((uv_handle_t *)&r->tcp))
        uv_close((uv_handle_t *)&r->tcp, raw_closed);
    run_until(raw_is_closed, r);
}

/* ---------------------------------------------------------------- tests */

static bool three_got_all(void *x)
{
    (void)x;
    struct node *ns[3] = {&N1, &N2, &N3};
    for (int i = 0; i < 3; i++)
        for (uint64_t from = 1; from <= 3; from++)
            if (from != ns[i]->id && ns[i]->frames[from] != 200)
                return false;
    return true;
}

static void test_three_nodes_frames_in_order_both_ways(void **state)
{
    (void)state;
    log_capture();
    start(&N1, 1, ADDR1, NULL, (uint64_t)2, ADDR2, (uint64_t)3, ADDR3, (uint64_t)0);
    start(&N2, 2, ADDR2, NULL, (uint64_t)1, ADDR1, (uint64_t)3, ADDR3, (uint64_t)0);
    start(&N3, 3, ADDR3, NULL, (uint64_t)1, ADDR1, (uint64_t)2, ADDR2, (uint64_t)0);
    /* not up yet: nothing can be sent */
    assert_int_equal(send_propose(N1.net, 2, 1, 10), RC_PEER_ENOTCONN);
    assert_true(run_until(all_up, NULL));
    assert_int_equal(N1.up, 2);
    assert_int_equal(N2.up, 2);
    assert_int_equal(N3.up, 2);
    struct node *ns[3] = {&N1, &N2, &N3};
    for (uint64_t req = 1; req <= 200; req++)
        for (int i = 0; i < 3; i++)
            for (uint64_t to = 1; to <= 3; to++)
                if (to != ns[i]->id)
                    assert_int_equal(send_propose(ns[i]->net, to, req, 100 + req), RC_PEER_OK);
    assert_true(run_until(three_got_all, NULL));
    for (int i = 0; i < 3; i++)
        assert_true(ns[i]->ordered);
    /* user code cannot inject handshake frames; unknown ids are refused */
    Ricochet__Hello h;
    ricochet__hello__init(&h);
    Ricochet__PeerFrame f;
    ricochet__peer_frame__init(&f);
    f.kind_case = RICOCHET__PEER_FRAME__KIND_HELLO;
    f.hello = &h;
    assert_int_equal(rc_peer_send(N1.net, 2, &f), RC_PEER_EINVAL);
    assert_int_equal(send_propose(N1.net, 9, 1, 1), RC_PEER_EUNKNOWN);
    assert_int_equal(rc_peer_net_add(N1.net, 2, ADDR2), RC_PEER_EUNKNOWN);
    assert_int_equal(rc_peer_net_add(N1.net, 1, ADDR2), RC_PEER_EUNKNOWN);
    assert_int_equal(rc_peer_net_add(N1.net, 7, "localhost:1"), RC_PEER_EADDR);
    struct rc_peer_stats st;
    rc_peer_get_stats(N2.net, &st);
    assert_int_equal(st.auth_failures, 0);
    assert_int_equal(st.protocol_errors, 0);
    stop(&N1);
    stop(&N2);
    stop(&N3);
    char *text = log_release();
    /* one connection per pair: node 1 dialled 2 and 3, node 2 dialled 3 */
    assert_true(log_has(text, "event=authenticated", "node=2 direction=out", NULL));
    assert_true(log_has(text, "event=authenticated", "node=3 direction=out", NULL));
    assert_false(log_has(text, "event=authenticated", "node=1 direction=out", NULL));
    assert_false(log_has(text, "level=warn", NULL, NULL));
    free(text);
}

static bool auth_failed_both(void *x)
{
    (void)x;
    struct rc_peer_stats s1, s2;
    rc_peer_get_stats(N1.net, &s1);
    rc_peer_get_stats(N2.net, &s2);
    return s1.auth_failures > 0 && s2.auth_failures > 0;
}

static void test_wrong_secret_refused_both_sides(void **state)
{
    (void)state;
    log_capture();
    start(&N1, 1, ADDR1, NULL, (uint64_t)2, ADDR2, (uint64_t)0);
    struct opts o = {.secret = "another-secret-entirely-000"};
    start(&N2, 2, ADDR2, &o, (uint64_t)1, ADDR1, (uint64_t)0);
    assert_true(run_until(auth_failed_both, NULL));
    assert_false(rc_peer_is_up(N1.net, 2));
    assert_false(rc_peer_is_up(N2.net, 1));
    assert_int_equal(N1.up + N2.up, 0);
    assert_int_equal(send_propose(N1.net, 2, 1, 1), RC_PEER_ENOTCONN);
    assert_int_equal(send_propose(N2.net, 1, 1, 1), RC_PEER_ENOTCONN);
    stop(&N1);
    stop(&N2);
    char *text = log_release();
    assert_true(log_has(text, "level=warn module=peer event=connection_closed remote=" ADDR2,
                        "direction=out", "reason=\"bad MAC"));
    assert_true(log_has(text, "level=warn module=peer event=connection_closed remote=127.0.0.51:",
                        "direction=in", "reason=\"bad MAC"));
    assert_false(log_has(text, "event=authenticated", NULL, NULL));
    free(text);
}

static bool n1_refused(void *x)
{
    (void)x;
    struct rc_peer_stats s;
    rc_peer_get_stats(N1.net, &s);
    return s.auth_failures >= 1;
}

static void test_non_member_refused(void **state)
{
    (void)state;
    log_capture();
    /* node 5 knows only node 2; node 3 (a lower id, so it dials) claims to
     * be a member and knows 5 */
    start(&N1, 5, ADDR1, NULL, (uint64_t)2, ADDR2, (uint64_t)0);
    start(&X, 3, ADDR3, NULL, (uint64_t)5, ADDR1, (uint64_t)0);
    assert_true(run_until(n1_refused, NULL));
    assert_false(rc_peer_is_up(X.net, 5));
    assert_int_equal(N1.up + X.up, 0);
    stop(&X);
    stop(&N1);
    char *text = log_release();
    assert_true(log_has(text, "level=warn module=peer event=connection_closed remote=127.0.0.53:",
                        "direction=in", "reason=\"node id 3 is not a member\""));
    free(text);
}

struct hostile {
    const char *name;
    uint8_t bytes[64];
    size_t len;
    bool shut;
    const char *reason;
};

static void test_raw_client_hostile_input(void **state)
{
    (void)state;
    log_capture();
    struct opts o = {.handshake_ms = 300};
    start(&N1, 1, ADDR1, &o, (uint64_t)2, ADDR2, (uint64_t)0);

    /* a Propose frame before authentication */
    Ricochet__ProposeRequest pr;
    ricochet__propose_request__init(&pr);
    pr.has_req = true;
    pr.req = 1;
    Ricochet__PeerFrame f;
    ricochet__peer_frame__init(&f);
    f.kind_case = RICOCHET__PEER_FRAME__KIND_PROPOSE;
    f.propose = &pr;
    uint8_t *early;
    size_t early_len;
    assert_int_equal(rc_frame_encode(&f, 1024, &early, &early_len), RC_FRAME_OK);

    struct hostile cases[] = {
        {"http", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27, false, "frame larger than the limit"},
        {"undecodable", {0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff}, 8, false, "undecodable frame"},
        {"over 1 KiB", {0, 0, 0x04, 0x01, 0x0a}, 5, false, "frame larger than the limit"},
        {"4 GiB", {0xff, 0xff, 0xff, 0xff, 1, 2, 3}, 7, false, "frame larger than the limit"},
        {"zero", {0, 0, 0, 0}, 4, false, "zero-length frame"},
        {"no kind", {0, 0, 0, 2, 0x78, 0x01}, 6, false, "frame without content"},
        {"truncated", {0, 0, 0, 100, 0x0a, 0x10}, 6, true, "truncated frame"},
        {"early frame", {0}, 0, false, "frame before authentication"},
        {"silent", {0}, 0, false, "handshake timeout"},
    };
    size_t n = sizeof cases / sizeof cases[0];
    memcpy(cases[7].bytes, early, early_len);
    cases[7].len = early_len;
    free(early);
    for (size_t i = 0; i < n; i++) {
        struct raw r;
        raw_start(&r, "127.0.0.51", 12401, cases[i].bytes, cases[i].len, cases[i].shut);
        assert_true(run_until(raw_ended, &r)); /* the node closed the connection */
        assert_true(r.connected);
        /* what the node sent first was its Hello, nothing else */
        struct rc_frame_decoder d;
        rc_frame_decoder_init(&d, 1024, NULL);
        const uint8_t *p = r.in;
        size_t len = r.got;
        Ricochet__PeerFrame *hello = NULL;
        assert_int_equal(rc_frame_decode(&d, &p, &len, &hello), RC_FRAME_OK);
        assert_int_equal(hello->kind_case, RICOCHET__PEER_FRAME__KIND_HELLO);
        assert_int_equal(hello->hello->node_id, 1);
        assert_int_equal(hello->hello->nonce.len, 32);
        assert_int_equal(len, 0);
        rc_frame_free(&d, hello);
        rc_frame_decoder_free(&d);
        raw_close(&r);
    }
    struct rc_peer_stats st;
    rc_peer_get_stats(N1.net, &st);
    assert_int_equal(st.protocol_errors + st.auth_failures, n);

    /* the node still serves: its real peer connects and frames flow */
    start(&N2, 2, ADDR2, NULL, (uint64_t)1, ADDR1, (uint64_t)0);
    assert_true(run_until(up12, NULL));
    stop(&N2);
    stop(&N1);
    char *text = log_release();
    for (size_t i = 0; i < n; i++) {
        char reason[96];
        snprintf(reason, sizeof reason, "reason=\"%s\"", cases[i].reason);
        if (!log_has(text, "level=warn module=peer event=connection_closed remote=" CLIENT_IP ":",
                     "direction=in", reason))
            fail_msg("no warn line for case %s (%s)", cases[i].name, reason);
    }
    free(text);
}

static bool n1_down(void *x) { (void)x; return N1.down == 1; }
static bool n2_back(void *x) { (void)x; return up12(NULL) && N2.up == 2; }

static void test_reconnect_after_restart(void **state)
{
    (void)state;
    log_capture();
    start(&N1, 1, ADDR1, NULL, (uint64_t)2, ADDR2, (uint64_t)0);
    start(&N2, 2, ADDR2, NULL, (uint64_t)1, ADDR1, (uint64_t)0);
    assert_true(run_until(up12, NULL));

    /* the acceptor restarts: the dialler sees it down, redials, up again */
    stop(&N2);
    assert_true(run_until(n1_down, NULL));
    assert_false(rc_peer_is_up(N1.net, 2));
    assert_int_equal(send_propose(N1.net, 2, 1, 1), RC_PEER_ENOTCONN);
    start(&N2, 2, ADDR2, NULL, (uint64_t)1, ADDR1, (uint64_t)0);
    assert_true(run_until(up12, NULL));
    assert_int_equal(N1.up, 2);
    assert_int_equal(send_propose(N1.net, 2, 1, 1), RC_PEER_OK);
    assert_int_equal(send_propose(N2.net, 1, 1, 1), RC_PEER_OK);

    /* the dialler restarts: the acceptor sees it down, then back */
    int down_before = N2.down;
    stop(&N1);
    start(&N1, 1, ADDR1, NULL, (uint64_t)2, ADDR2, (uint64_t)0);
    assert_true(run_until(n2_back, NULL));
    assert_int_equal(N2.down, down_before + 1);
    assert_int_equal(N2.up, 2);
    assert_int_equal(send_propose(N2.net, 1, 1, 1), RC_PEER_OK);
    stop(&N1);
    stop(&N2);
    free(log_release());
}

static bool n2_got(void *x)
{
    return N2.frames[1] == *(int *)x;
}

static void test_queue_limit(void **state)
{
    (void)state;
    log_capture();
    struct opts o = {.max_queue = 64 * 1024};
    start(&N1, 1, ADDR1, &o, (uint64_t)2, ADDR2, (uint64_t)3, ADDR3, (uint64_t)0);
    start(&N2, 2, ADDR2, &o, (uint64_t)1, ADDR1, (uint64_t)0);
    assert_true(run_until(up12, NULL));
    /* write callbacks only run on the next loop turn, so frames queued in
     * one go stay counted: the limit must stop them */
    int sent = 0, rv;
    while ((rv = send_propose(N1.net, 2, (uint64_t)sent + 1, 1000)) == RC_PEER_OK)
        sent++;
    assert_int_equal(rv, RC_PEER_EQUEUE);
    assert_true(sent > 0);
    assert_true((size_t)sent * 1000 <= 64 * 1024);
    struct rc_peer_stats st;
    rc_peer_get_stats(N1.net, &st);
    assert_int_equal(st.queue_full, 1);
    /* everything accepted arrives, in order, and the queue drains */
    assert_true(run_until(n2_got, &sent));
    assert_true(N2.ordered);
    assert_int_equal(send_propose(N1.net, 2, (uint64_t)sent + 1, 1000), RC_PEER_OK);
    /* a frame larger than the whole queue, and one over max_frame */
    assert_int_equal(send_propose(N1.net, 2, 1, 65 * 1024), RC_PEER_EQUEUE);
    assert_int_equal(send_propose(N1.net, 2, 1, 2 << 20), RC_PEER_ETOOBIG);
    /* a member that is not running */
    assert_int_equal(send_propose(N1.net, 3, 1, 10), RC_PEER_ENOTCONN);
    stop(&N1);
    stop(&N2);
    free(log_release());
}

static bool pending_refused(void *x)
{
    (void)x;
    struct rc_peer_stats st;
    rc_peer_get_stats(N1.net, &st);
    return st.refused_pending == 1;
}
static bool got_hello(void *x) { return ((struct raw *)x)->got > 0; }

static void test_pending_connection_limit(void **state)
{
    (void)state;
    log_capture();
    struct opts o = {.max_pending = 2, .handshake_ms = 60000};
    start(&N1, 1, ADDR1, &o, (uint64_t)2, ADDR2, (uint64_t)0);
    struct raw a, b, c;
    raw_start(&a, "127.0.0.51", 12401, NULL, 0, false);
    raw_start(&b, "127.0.0.51", 12401, NULL, 0, false);
    assert_true(run_until(got_hello, &a));
    assert_true(run_until(got_hello, &b));
    raw_start(&c, "127.0.0.51", 12401, NULL, 0, false);
    assert_true(run_until(raw_ended, &c));
    assert_true(pending_refused(NULL));
    assert_int_equal(c.got, 0); /* refused before any Hello */
    assert_false(a.ended || b.ended);
    raw_close(&a);
    raw_close(&b);
    raw_close(&c);
    stop(&N1);
    char *text = log_release();
    assert_true(log_has(text, "remote=" CLIENT_IP ":", "reason=\"too many unauthenticated connections\"", NULL));
    free(text);
}

static bool closed_once(void *x) { (void)x; return close_count == 1; }

static void test_close_from_callbacks(void **state)
{
    (void)state;
    log_capture();
    /* node 2 closes its net from inside on_frame */
    close_count = 0;
    start(&N1, 1, ADDR1, NULL, (uint64_t)2, ADDR2, (uint64_t)0);
    start(&N2, 2, ADDR2, NULL, (uint64_t)1, ADDR1, (uint64_t)0);
    assert_true(run_until(up12, NULL));
    N2.close_on_frame = 1;
    for (uint64_t i = 1; i <= 5; i++)
        assert_int_equal(send_propose(N1.net, 2, i, 10), RC_PEER_OK);
    assert_true(run_until(closed_once, NULL));
    assert_null(N2.net);
    assert_int_equal(N2.frames[1], 1); /* nothing after the close */
    assert_true(run_until(n1_down, NULL));

    /* node 2 restarts and closes its net from inside on_peer_state(up) */
    close_count = 0;
    start(&N2, 2, ADDR2, NULL, (uint64_t)1, ADDR1, (uint64_t)0);
    N2.close_on_up = 1;
    assert_true(run_until(closed_once, NULL));
    assert_null(N2.net);
    stop(&N1);
    free(log_release());
}

static void test_config_errors(void **state)
{
    (void)state;
    rc_peer_net *net = NULL;
    struct rc_peer_callbacks cb = {0};
    struct rc_peer_config cfg = {.self_id = 1, .listen_addr = ADDR1, .secret = "short"};
    assert_int_equal(rc_peer_net_start(&net, &loop, &cfg, &cb, NULL), RC_PEER_EINVAL);
    cfg.secret = SECRET;
    cfg.listen_addr = "nowhere";
    assert_int_equal(rc_peer_net_start(&net, &loop, &cfg, &cb, NULL), RC_PEER_EADDR);
    cfg.listen_addr = "127.0.0.51:99999";
    assert_int_equal(rc_peer_net_start(&net, &loop, &cfg, &cb, NULL), RC_PEER_EADDR);
    cfg.listen_addr = ADDR1;
    cfg.self_id = 0;
    assert_int_equal(rc_peer_net_start(&net, &loop, &cfg, &cb, NULL), RC_PEER_EINVAL);
    cfg.self_id = 1;
    cfg.max_frame = 512;
    cfg.pre_auth_max_frame = 1024;
    assert_int_equal(rc_peer_net_start(&net, &loop, &cfg, &cb, NULL), RC_PEER_EINVAL);
    cfg.pre_auth_max_frame = 0;
    cfg.max_frame = ((size_t)1 << 30) + 1;
    assert_int_equal(rc_peer_net_start(&net, &loop, &cfg, &cb, NULL), RC_PEER_EINVAL);
    assert_null(net);
    /* the port is taken: ELISTEN, memory released by the loop */
    cfg.max_frame = cfg.pre_auth_max_frame = 0;
    log_capture();
    start(&N1, 1, ADDR1, NULL, (uint64_t)0);
    assert_int_equal(rc_peer_net_start(&net, &loop, &cfg, &cb, NULL), RC_PEER_ELISTEN);
    assert_null(net);
    stop(&N1);
    free(log_release());
}

/* A failed assertion skips the test's own stops: close what is left so the
 * next test can bind and the loop can end. */
static int teardown(void **state)
{
    (void)state;
    stop(&N1);
    stop(&N2);
    stop(&N3);
    stop(&X);
    free(log_release());
    return 0;
}

int main(void)
{
    uv_loop_init(&loop);
    uv_timer_init(&loop, &tick);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_three_nodes_frames_in_order_both_ways, teardown),
        cmocka_unit_test_teardown(test_wrong_secret_refused_both_sides, teardown),
        cmocka_unit_test_teardown(test_non_member_refused, teardown),
        cmocka_unit_test_teardown(test_raw_client_hostile_input, teardown),
        cmocka_unit_test_teardown(test_reconnect_after_restart, teardown),
        cmocka_unit_test_teardown(test_queue_limit, teardown),
        cmocka_unit_test_teardown(test_pending_connection_limit, teardown),
        cmocka_unit_test_teardown(test_close_from_callbacks, teardown),
        cmocka_unit_test_teardown(test_config_errors, teardown),
    };
    int rv = cmocka_run_group_tests(tests, NULL, NULL);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        rv = 1;
    return rv;
}
