/* The peer channel on a real libuv loop over loopback: mutual
 * authentication, frames both ways in order, refusal of a wrong secret and
 * of a node that is not a member, the send-queue bound, and reconnection
 * after a peer restarts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "raft/rc_peer.h"

#define A_ADDR "127.0.0.91:12901"
#define B_ADDR "127.0.0.92:12902"
#define SECRET "the-cluster-secret-0123456789"

struct side {
    rc_peer_net *net;
    int up, down;
    uint64_t last_req;
    int frames;
    bool ordered;
};

static uv_loop_t loop;

static void on_frame(rc_peer_net *net, uint64_t from, const Ricochet__PeerFrame *f, void *data)
{
    struct side *s = data;
    (void)net;
    (void)from;
    if (f->kind_case == RICOCHET__PEER_FRAME__KIND_PROPOSE) {
        if (f->propose->req != s->last_req + 1)
            s->ordered = false;
        s->last_req = f->propose->req;
        s->frames++;
    }
}

static void on_state(rc_peer_net *net, uint64_t id, bool up, void *data)
{
    struct side *s = data;
    (void)net;
    (void)id;
    if (up)
        s->up++;
    else
        s->down++;
}

static void start(struct side *s, uint64_t self, const char *addr, const char *secret,
                  uint64_t peer, const char *peer_addr, size_t max_queue)
{
    memset(s, 0, sizeof *s);
    s->ordered = true;
    struct rc_peer_config cfg = {.self_id = self, .listen_addr = addr, .secret = secret,
                                 .max_frame = 1 << 20, .handshake_timeout_ms = 2000,
                                 .max_queue_bytes = max_queue, .reconnect_min_ms = 20,
                                 .reconnect_max_ms = 100};
    struct rc_peer_callbacks cb = {.on_frame = on_frame, .on_peer_state = on_state};
    assert_int_equal(rc_peer_net_start(&s->net, &loop, &cfg, &cb, s), RC_PEER_OK);
    assert_int_equal(rc_peer_net_add(s->net, peer, peer_addr), RC_PEER_OK);
}

static void closed_cb(void *data)
{
    *(int *)data = 1;
}

static void stop(struct side *s)
{
    if (s->net == NULL)
        return;
    int closed = 0;
    rc_peer_net_close(s->net, closed_cb, &closed);
    s->net = NULL;
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
}

/* Runs the loop until cond holds; the deadline only stops a hung test. */
static bool run_until(bool (*cond)(void *), void *arg)
{
    uint64_t deadline = uv_hrtime() + 10ull * 1000000000u;
    while (!cond(arg) && uv_hrtime() < deadline)
        uv_run(&loop, UV_RUN_NOWAIT);
    return cond(arg);
}

static struct side A, B;
static bool both_up(void *x) { (void)x; return rc_peer_is_up(A.net, 2) && rc_peer_is_up(B.net, 1); }
static bool b_got_100(void *x) { (void)x; return B.frames == 100 && A.frames == 100; }
static bool a_refused(void *x)
{
    (void)x;
    struct rc_peer_stats sa;
    rc_peer_get_stats(A.net, &sa);
    return sa.auth_failures >= 2; /* its own dial and B's dial */
}
static bool auth_failed_both(void *x)
{
    (void)x;
    struct rc_peer_stats sa, sb;
    rc_peer_get_stats(A.net, &sa);
    rc_peer_get_stats(B.net, &sb);
    return sa.auth_failures > 0 && sb.auth_failures > 0;
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

static void test_handshake_and_ordered_frames(void **state)
{
    start(&A, 1, A_ADDR, SECRET, 2, B_ADDR, 1 << 20);
    start(&B, 2, B_ADDR, SECRET, 1, A_ADDR, 1 << 20);
    assert_true(run_until(both_up, NULL));
    for (uint64_t i = 1; i <= 100; i++) {
        assert_int_equal(send_propose(A.net, 2, i, 100), RC_PEER_OK);
        assert_int_equal(send_propose(B.net, 1, i, 100), RC_PEER_OK);
    }
    assert_true(run_until(b_got_100, NULL));
    assert_true(A.ordered && B.ordered);
    assert_int_equal(send_propose(A.net, 9, 1, 1), RC_PEER_EUNKNOWN);

    /* B restarts: A sees it go down, redials, and it comes back up */
    stop(&B);
    start(&B, 2, B_ADDR, SECRET, 1, A_ADDR, 1 << 20);
    assert_true(run_until(both_up, NULL));
    assert_true(A.down >= 1);
    assert_true(A.up >= 2);
    stop(&A);
    stop(&B);
}

static void test_wrong_secret_refused_both_ways(void **state)
{
    start(&A, 1, A_ADDR, SECRET, 2, B_ADDR, 1 << 20);
    start(&B, 2, B_ADDR, "another-secret-entirely-000", 1, A_ADDR, 1 << 20);
    assert_true(run_until(auth_failed_both, NULL));
    assert_false(rc_peer_is_up(A.net, 2));
    assert_false(rc_peer_is_up(B.net, 1));
    assert_int_equal(send_propose(A.net, 2, 1, 1), RC_PEER_ENOTCONN);
    stop(&A);
    stop(&B);
}

static void test_non_member_refused(void **state)
{
    /* B claims id 3, which A does not know; A expects node 2 there */
    start(&A, 1, A_ADDR, SECRET, 2, B_ADDR, 1 << 20);
    start(&B, 3, B_ADDR, SECRET, 1, A_ADDR, 1 << 20);
    assert_true(run_until(a_refused, NULL));
    assert_false(rc_peer_is_up(A.net, 2));
    assert_false(rc_peer_is_up(B.net, 1));
    stop(&A);
    stop(&B);
}

static void test_queue_bound(void **state)
{
    start(&A, 1, A_ADDR, SECRET, 2, B_ADDR, 4096);
    start(&B, 2, B_ADDR, SECRET, 1, A_ADDR, 4096);
    assert_true(run_until(both_up, NULL));
    /* one frame larger than the whole queue is refused, memory stays bounded */
    assert_int_equal(send_propose(A.net, 2, 1, 8192), RC_PEER_EQUEUE);
    stop(&A);
    stop(&B);
}

/* A failed assertion skips the test's own stops: close what is left so the
 * next test can bind and the loop can end. */
static int teardown(void **state)
{
    stop(&A);
    stop(&B);
    return 0;
}

int main(void)
{
    uv_loop_init(&loop);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_handshake_and_ordered_frames, teardown),
        cmocka_unit_test_teardown(test_wrong_secret_refused_both_ways, teardown),
        cmocka_unit_test_teardown(test_non_member_refused, teardown),
        cmocka_unit_test_teardown(test_queue_bound, teardown),
    };
    int rv = cmocka_run_group_tests(tests, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return rv;
}
