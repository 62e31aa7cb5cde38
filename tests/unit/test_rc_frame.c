/* Peer-frame codec: the bounds-checked cursor; round trips of every frame
 * kind; input split at every byte boundary (two and three pieces, and one
 * byte at a time); rejection of zero, oversized, truncated, garbage and
 * kind-less frames with distinct errors; no allocation for an announced
 * 4 GiB frame, and memory that grows only with the bytes that arrive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "raft/rc_frame.h"

/* ------------------------------------------------ a counting allocator */

struct counts {
    size_t allocs, bytes, live, max_single;
};

static void *count_alloc(void *data, size_t n)
{
    struct counts *c = data;
    c->allocs++;
    c->bytes += n;
    c->live++;
    if (n > c->max_single)
        c->max_single = n;
    return malloc(n);
}

static void count_free(void *data, void *p)
{
    struct counts *c = data;
    if (p)
        c->live--;
    free(p);
}

/* --------------------------------------------------------- frame kinds */

static uint8_t nonce[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
static uint8_t payload[300];

/* Builds frame kind k (1..6) into *f using storage in *s. */
struct storage {
    Ricochet__Hello h;
    Ricochet__HelloAuth a;
    Ricochet__Probe probe;
    Ricochet__Record rec, *prec;
    Ricochet__ProposeRequest pr;
    Ricochet__ProposeResponse ps;
    Ricochet__BodyRequest br;
    Ricochet__BodyResponse bs;
};

static void build(int k, Ricochet__PeerFrame *f, struct storage *s)
{
    ricochet__peer_frame__init(f);
    switch (k) {
    case RICOCHET__PEER_FRAME__KIND_HELLO:
        ricochet__hello__init(&s->h);
        s->h.has_node_id = s->h.has_nonce = s->h.has_version = true;
        s->h.node_id = 3;
        s->h.nonce.data = nonce;
        s->h.nonce.len = 32;
        s->h.version = 1;
        f->hello = &s->h;
        break;
    case RICOCHET__PEER_FRAME__KIND_AUTH:
        ricochet__hello_auth__init(&s->a);
        s->a.has_node_id = s->a.has_mac = true;
        s->a.node_id = 4;
        s->a.mac.data = nonce;
        s->a.mac.len = 32;
        f->auth = &s->a;
        break;
    case RICOCHET__PEER_FRAME__KIND_PROPOSE:
        ricochet__probe__init(&s->probe);
        s->probe.has_payload = true;
        s->probe.payload.data = payload;
        s->probe.payload.len = sizeof payload;
        ricochet__record__init(&s->rec);
        s->rec.kind_case = RICOCHET__RECORD__KIND_PROBE;
        s->rec.probe = &s->probe;
        s->prec = &s->rec;
        ricochet__propose_request__init(&s->pr);
        s->pr.has_req = true;
        s->pr.req = 77;
        s->pr.records = &s->prec;
        s->pr.n_records = 1;
        f->propose = &s->pr;
        break;
    case RICOCHET__PEER_FRAME__KIND_PROPOSE_RESULT:
        ricochet__propose_response__init(&s->ps);
        s->ps.has_req = s->ps.has_code = s->ps.has_leader = true;
        s->ps.req = 9;
        s->ps.code = RICOCHET__PROPOSE_CODE__PROPOSE_NOT_LEADER;
        s->ps.leader = 2;
        s->ps.message = "not the leader";
        f->propose_result = &s->ps;
        break;
    case RICOCHET__PEER_FRAME__KIND_BODY_REQUEST:
        ricochet__body_request__init(&s->br);
        s->br.has_req = s->br.has_sha256 = true;
        s->br.req = 11;
        s->br.id = "MSG-ABC";
        s->br.sha256.data = nonce;
        s->br.sha256.len = 32;
        f->body_request = &s->br;
        break;
    case RICOCHET__PEER_FRAME__KIND_BODY:
        ricochet__body_response__init(&s->bs);
        s->bs.has_req = s->bs.has_found = s->bs.has_body = true;
        s->bs.req = 12;
        s->bs.found = true;
        s->bs.body.data = payload;
        s->bs.body.len = sizeof payload;
        f->body = &s->bs;
        break;
    }
    f->kind_case = k;
}

static void check(int k, const Ricochet__PeerFrame *f)
{
    assert_int_equal(f->kind_case, k);
    switch (k) {
    case RICOCHET__PEER_FRAME__KIND_HELLO:
        assert_int_equal(f->hello->node_id, 3);
        assert_int_equal(f->hello->version, 1);
        assert_int_equal(f->hello->nonce.len, 32);
        assert_memory_equal(f->hello->nonce.data, nonce, 32);
        break;
    case RICOCHET__PEER_FRAME__KIND_AUTH:
        assert_int_equal(f->auth->node_id, 4);
        assert_int_equal(f->auth->mac.len, 32);
        assert_memory_equal(f->auth->mac.data, nonce, 32);
        break;
    case RICOCHET__PEER_FRAME__KIND_PROPOSE:
        assert_int_equal(f->propose->req, 77);
        assert_int_equal(f->propose->n_records, 1);
        assert_int_equal(f->propose->records[0]->kind_case, RICOCHET__RECORD__KIND_PROBE);
        assert_int_equal(f->propose->records[0]->probe->payload.len, sizeof payload);
        assert_memory_equal(f->propose->records[0]->probe->payload.data, payload, sizeof payload);
        break;
    case RICOCHET__PEER_FRAME__KIND_PROPOSE_RESULT:
        assert_int_equal(f->propose_result->req, 9);
        assert_int_equal(f->propose_result->code, RICOCHET__PROPOSE_CODE__PROPOSE_NOT_LEADER);
        assert_int_equal(f->propose_result->leader, 2);
        assert_string_equal(f->propose_result->message, "not the leader");
        break;
    case RICOCHET__PEER_FRAME__KIND_BODY_REQUEST:
        assert_int_equal(f->body_request->req, 11);
        assert_string_equal(f->body_request->id, "MSG-ABC");
        assert_memory_equal(f->body_request->sha256.data, nonce, 32);
        break;
    case RICOCHET__PEER_FRAME__KIND_BODY:
        assert_int_equal(f->body->req, 12);
        assert_true(f->body->found);
        assert_memory_equal(f->body->body.data, payload, sizeof payload);
        break;
    default:
        fail();
    }
}

static uint8_t *encode_kind(int k, size_t *len)
{
    Ricochet__PeerFrame f;
    struct storage s;
    build(k, &f, &s);
    uint8_t *out;
    assert_int_equal(rc_frame_encode(&f, 1 << 20, &out, len), RC_FRAME_OK);
    return out;
}

/* All six kinds back to back. */
static uint8_t *encode_stream(size_t *len)
{
    uint8_t *all = NULL;
    *len = 0;
    for (int k = 1; k <= 6; k++) {
        size_t n;
        uint8_t *one = encode_kind(k, &n);
        all = realloc(all, *len + n);
        assert_non_null(all);
        memcpy(all + *len, one, n);
        *len += n;
        free(one);
    }
    return all;
}

/* Feeds pieces [cuts[i], cuts[i+1]) and checks the six frames in order. */
static void feed_pieces(const uint8_t *buf, size_t len, const size_t *cuts, size_t n_cuts)
{
    struct counts cnt = {0};
    ProtobufCAllocator a = {count_alloc, count_free, &cnt};
    struct rc_frame_decoder d;
    rc_frame_decoder_init(&d, 1 << 20, &a);
    int next = 1;
    size_t start = 0;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        const uint8_t *p = buf + start;
        size_t n = end - start;
        for (;;) {
            Ricochet__PeerFrame *f = NULL;
            int rv = rc_frame_decode(&d, &p, &n, &f);
            if (rv == RC_FRAME_MORE) {
                assert_int_equal(n, 0);
                break;
            }
            assert_int_equal(rv, RC_FRAME_OK);
            check(next++, f);
            rc_frame_free(&d, f);
        }
        start = end;
    }
    assert_int_equal(next, 7);
    assert_int_equal(rc_frame_decoder_finish(&d), RC_FRAME_OK);
    rc_frame_decoder_free(&d);
    assert_int_equal(cnt.live, 0);
}

/* ---------------------------------------------------------------- tests */

static void test_cursor(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x01, 0x02, 0x03, 0x04, 0xAA, 0xBB};
    struct rc_cur c;
    rc_cur_init(&c, b, sizeof b);
    assert_int_equal(rc_cur_u32be(&c), 0x01020304u);
    assert_int_equal(c.err, 0);
    assert_int_equal(c.left, 2);
    assert_null(rc_cur_bytes(&c, 3)); /* overrun: error, cursor unchanged */
    assert_int_equal(c.err, RC_FRAME_ETRUNC);
    assert_int_equal(c.left, 2);
    assert_int_equal(rc_cur_u32be(&c), 0); /* sticky: every later read fails */
    uint8_t dst[4];
    assert_int_equal(rc_cur_copy_upto(&c, dst, 4), 0);
    rc_cur_init(&c, b, sizeof b);
    assert_int_equal(rc_cur_copy_upto(&c, dst, 4), 4);
    assert_int_equal(rc_cur_copy_upto(&c, dst, 4), 2);
    assert_memory_equal(dst, b + 4, 2);
    assert_int_equal(c.err, 0);
    assert_int_equal(rc_cur_copy_upto(&c, dst, 4), 0);
    assert_non_null(rc_cur_bytes(&c, 0));
    assert_int_equal(c.err, 0);
}

static void test_round_trip_all_kinds(void **state)
{
    (void)state;
    for (int k = 1; k <= 6; k++) {
        size_t len;
        uint8_t *buf = encode_kind(k, &len);
        struct rc_frame_decoder d;
        rc_frame_decoder_init(&d, 1 << 20, NULL);
        const uint8_t *p = buf;
        size_t n = len;
        Ricochet__PeerFrame *out = NULL;
        assert_int_equal(rc_frame_decode(&d, &p, &n, &out), RC_FRAME_OK);
        assert_int_equal(n, 0);
        assert_ptr_equal(p, buf + len);
        check(k, out);
        /* re-encoding gives the same bytes */
        uint8_t *again;
        size_t again_len;
        assert_int_equal(rc_frame_encode(out, 1 << 20, &again, &again_len), RC_FRAME_OK);
        assert_int_equal(again_len, len);
        assert_memory_equal(again, buf, len);
        free(again);
        rc_frame_free(&d, out);
        rc_frame_decoder_free(&d);
        free(buf);
    }
}

static void test_split_at_every_byte(void **state)
{
    (void)state;
    size_t len;
    uint8_t *all = encode_stream(&len);
    /* two pieces, cut at every offset */
    for (size_t i = 0; i <= len; i++)
        feed_pieces(all, len, &i, 1);
    /* three pieces, every pair of cuts in the first 80 bytes (header of the
     * first frame, its body, the next header) and around the 4th frame */
    for (size_t i = 0; i < 80; i++)
        for (size_t j = i; j < 80; j++) {
            size_t cuts[2] = {i, j};
            feed_pieces(all, len, cuts, 2);
        }
    /* one byte at a time */
    size_t *cuts = malloc(len * sizeof *cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i;
    feed_pieces(all, len, cuts, len);
    free(cuts);
    free(all);
}

static int decode_all(const uint8_t *buf, size_t len, size_t max, struct counts *cnt)
{
    ProtobufCAllocator a = {count_alloc, count_free, cnt};
    struct rc_frame_decoder d;
    rc_frame_decoder_init(&d, max, cnt ? &a : NULL);
    int rv = RC_FRAME_MORE;
    while (len > 0) {
        Ricochet__PeerFrame *f = NULL;
        rv = rc_frame_decode(&d, &buf, &len, &f);
        if (rv != RC_FRAME_OK)
            break;
        rc_frame_free(&d, f);
    }
    if (rv == RC_FRAME_MORE || rv == RC_FRAME_OK)
        rv = rc_frame_decoder_finish(&d);
    rc_frame_decoder_free(&d);
    return rv;
}

static void test_hostile_frames(void **state)
{
    (void)state;
    static const uint8_t zero[] = {0, 0, 0, 0};
    assert_int_equal(decode_all(zero, sizeof zero, 1024, NULL), RC_FRAME_EZERO);

    static const uint8_t garbage[] = {0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(decode_all(garbage, sizeof garbage, 1024, NULL), RC_FRAME_EDECODE);
    /* protobuf wire type 7 does not exist */
    static const uint8_t badwire[] = {0, 0, 0, 2, 0x0f, 0x01};
    assert_int_equal(decode_all(badwire, sizeof badwire, 1024, NULL), RC_FRAME_EDECODE);
    /* a Hello whose length-delimited field claims more bytes than the frame */
    static const uint8_t overrun[] = {0, 0, 0, 3, 0x0a, 0x7f, 0x08};
    assert_int_equal(decode_all(overrun, sizeof overrun, 1024, NULL), RC_FRAME_EDECODE);
    /* a valid PeerFrame with no kind: only an unknown field 15 */
    static const uint8_t empty[] = {0, 0, 0, 2, 0x78, 0x01};
    assert_int_equal(decode_all(empty, sizeof empty, 1024, NULL), RC_FRAME_EEMPTY);

    /* truncated inside the body and inside the header */
    size_t len;
    uint8_t *one = encode_kind(RICOCHET__PEER_FRAME__KIND_PROPOSE, &len);
    assert_int_equal(decode_all(one, len - 1, 1 << 20, NULL), RC_FRAME_ETRUNC);
    assert_int_equal(decode_all(one, 2, 1 << 20, NULL), RC_FRAME_ETRUNC);
    assert_int_equal(decode_all(one, len, 1 << 20, NULL), RC_FRAME_OK);
    /* over the configured limit (by one byte, and far) */
    assert_int_equal(decode_all(one, len, len - 4 - 1, NULL), RC_FRAME_ETOOBIG);
    assert_int_equal(decode_all(one, len, len - 4, NULL), RC_FRAME_OK);
    assert_int_equal(decode_all(one, len, 8, NULL), RC_FRAME_ETOOBIG);

    /* the errors are distinct */
    int errs[] = {RC_FRAME_EZERO, RC_FRAME_ETOOBIG, RC_FRAME_EDECODE, RC_FRAME_EEMPTY, RC_FRAME_ETRUNC};
    for (size_t i = 0; i < 5; i++)
        for (size_t j = i + 1; j < 5; j++) {
            assert_int_not_equal(errs[i], errs[j]);
            assert_string_not_equal(rc_frame_strerror(errs[i]), rc_frame_strerror(errs[j]));
        }

    /* errors are sticky: a good frame after a bad one is not decoded */
    struct rc_frame_decoder d;
    rc_frame_decoder_init(&d, 1024, NULL);
    const uint8_t *p = zero;
    size_t n = sizeof zero;
    Ricochet__PeerFrame *f;
    assert_int_equal(rc_frame_decode(&d, &p, &n, &f), RC_FRAME_EZERO);
    p = one;
    n = len;
    assert_int_equal(rc_frame_decode(&d, &p, &n, &f), RC_FRAME_EZERO);
    assert_int_equal(rc_frame_decoder_finish(&d), RC_FRAME_EZERO);
    rc_frame_decoder_free(&d);
    free(one);

    /* encoder refusals */
    Ricochet__PeerFrame nothing;
    ricochet__peer_frame__init(&nothing);
    uint8_t *out;
    assert_int_equal(rc_frame_encode(&nothing, 1024, &out, &len), RC_FRAME_EEMPTY);
    Ricochet__PeerFrame big;
    struct storage s;
    build(RICOCHET__PEER_FRAME__KIND_BODY, &big, &s);
    assert_int_equal(rc_frame_encode(&big, 100, &out, &len), RC_FRAME_ETOOBIG);
}

static void test_4gib_prefix_does_not_allocate(void **state)
{
    (void)state;
    /* 4 GiB - 1 announced (the largest a 4-byte prefix can say), with the
     * limit at 32 MiB: refused from the header alone, nothing allocated */
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8};
    struct counts cnt = {0};
    assert_int_equal(decode_all(huge, sizeof huge, (size_t)32 << 20, &cnt), RC_FRAME_ETOOBIG);
    assert_int_equal(cnt.allocs, 0);
    /* split before the last header byte: still nothing */
    memset(&cnt, 0, sizeof cnt);
    ProtobufCAllocator a = {count_alloc, count_free, &cnt};
    struct rc_frame_decoder d;
    rc_frame_decoder_init(&d, (size_t)32 << 20, &a);
    const uint8_t *p = huge;
    size_t n = 3;
    Ricochet__PeerFrame *f;
    assert_int_equal(rc_frame_decode(&d, &p, &n, &f), RC_FRAME_MORE);
    n = sizeof huge - 3;
    assert_int_equal(rc_frame_decode(&d, &p, &n, &f), RC_FRAME_ETOOBIG);
    assert_int_equal(cnt.allocs, 0);
    rc_frame_decoder_free(&d);

    /* even with the limit at 4 GiB - 1, memory follows the bytes that
     * arrived (one 64 KiB chunk for 8 bytes), not the announced length */
    memset(&cnt, 0, sizeof cnt);
    rc_frame_decoder_init(&d, RC_FRAME_MAX_LIMIT, &a);
    p = huge;
    n = sizeof huge;
    assert_int_equal(rc_frame_decode(&d, &p, &n, &f), RC_FRAME_MORE);
    assert_int_equal(cnt.allocs, 1);
    assert_true(cnt.max_single <= 64 * 1024);
    assert_int_equal(rc_frame_decoder_finish(&d), RC_FRAME_ETRUNC);
    rc_frame_decoder_free(&d);
    assert_int_equal(cnt.live, 0);
}

static void test_large_frame_in_small_pieces(void **state)
{
    (void)state;
    /* a 1 MiB body fed 1000 bytes at a time: the buffer grows by doubling */
    size_t blen = 1 << 20;
    uint8_t *body = malloc(blen);
    for (size_t i = 0; i < blen; i++)
        body[i] = (uint8_t)(i * 31);
    Ricochet__BodyResponse bs;
    ricochet__body_response__init(&bs);
    bs.has_body = true;
    bs.body.data = body;
    bs.body.len = blen;
    Ricochet__PeerFrame f;
    ricochet__peer_frame__init(&f);
    f.kind_case = RICOCHET__PEER_FRAME__KIND_BODY;
    f.body = &bs;
    uint8_t *enc;
    size_t len;
    assert_int_equal(rc_frame_encode(&f, 2 << 20, &enc, &len), RC_FRAME_OK);
    struct counts cnt = {0};
    ProtobufCAllocator a = {count_alloc, count_free, &cnt};
    struct rc_frame_decoder d;
    rc_frame_decoder_init(&d, 2 << 20, &a);
    Ricochet__PeerFrame *out = NULL;
    for (size_t off = 0; off < len; off += 1000) {
        const uint8_t *p = enc + off;
        size_t n = len - off < 1000 ? len - off : 1000;
        int rv = rc_frame_decode(&d, &p, &n, &out);
        if (off + 1000 < len)
            assert_int_equal(rv, RC_FRAME_MORE);
        else
            assert_int_equal(rv, RC_FRAME_OK);
    }
    assert_non_null(out);
    assert_int_equal(out->body->body.len, blen);
    assert_memory_equal(out->body->body.data, body, blen);
    rc_frame_free(&d, out);
    rc_frame_decoder_free(&d);
    assert_int_equal(cnt.live, 0);
    free(enc);
    free(body);
}

int main(void)
{
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 7 + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor),
        cmocka_unit_test(test_round_trip_all_kinds),
        cmocka_unit_test(test_split_at_every_byte),
        cmocka_unit_test(test_hostile_frames),
        cmocka_unit_test(test_4gib_prefix_does_not_allocate),
        cmocka_unit_test(test_large_frame_in_small_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
