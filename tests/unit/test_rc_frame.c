/* Peer-frame codec: round trips of every frame kind, input split at every
 * byte, and rejection of zero, oversized, truncated and garbage frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "raft/rc_frame.h"

static uint8_t *encode_propose(size_t *len)
{
    Ricochet__Probe probe;
    ricochet__probe__init(&probe);
    probe.has_payload = true;
    probe.payload.data = (uint8_t *)"payload";
    probe.payload.len = 7;
    Ricochet__Record rec, *prec = &rec;
    ricochet__record__init(&rec);
    rec.kind_case = RICOCHET__RECORD__KIND_PROBE;
    rec.probe = &probe;
    Ricochet__ProposeRequest pr;
    ricochet__propose_request__init(&pr);
    pr.has_req = true;
    pr.req = 77;
    pr.records = &prec;
    pr.n_records = 1;
    Ricochet__PeerFrame f;
    ricochet__peer_frame__init(&f);
    f.kind_case = RICOCHET__PEER_FRAME__KIND_PROPOSE;
    f.propose = &pr;
    uint8_t *out;
    assert_int_equal(rc_frame_encode(&f, 1 << 20, &out, len), RC_FRAME_OK);
    return out;
}

static void test_round_trip_all_kinds(void **state)
{
    Ricochet__PeerFrame f;
    uint8_t nonce[32] = {1, 2, 3};
    Ricochet__Hello h;
    ricochet__hello__init(&h);
    h.has_node_id = h.has_nonce = true;
    h.node_id = 3;
    h.nonce.data = nonce;
    h.nonce.len = 32;
    Ricochet__HelloAuth a;
    ricochet__hello_auth__init(&a);
    a.has_mac = true;
    a.mac.data = nonce;
    a.mac.len = 32;
    Ricochet__ProposeResponse pr;
    ricochet__propose_response__init(&pr);
    pr.has_req = pr.has_code = true;
    pr.req = 9;
    pr.code = RICOCHET__PROPOSE_CODE__PROPOSE_NOT_LEADER;
    Ricochet__BodyRequest br;
    ricochet__body_request__init(&br);
    br.id = "ABC";
    Ricochet__BodyResponse bs;
    ricochet__body_response__init(&bs);
    bs.has_found = true;
    bs.found = true;
    struct { int kind; void *msg; } kinds[] = {
        {RICOCHET__PEER_FRAME__KIND_HELLO, &h}, {RICOCHET__PEER_FRAME__KIND_AUTH, &a},
        {RICOCHET__PEER_FRAME__KIND_PROPOSE_RESULT, &pr}, {RICOCHET__PEER_FRAME__KIND_BODY_REQUEST, &br},
        {RICOCHET__PEER_FRAME__KIND_BODY, &bs},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        ricochet__peer_frame__init(&f);
        f.kind_case = kinds[i].kind;
        f.hello = kinds[i].msg; /* oneof members share storage */
        uint8_t *buf;
        size_t len;
        assert_int_equal(rc_frame_encode(&f, 1 << 20, &buf, &len), RC_FRAME_OK);
        struct rc_frame_decoder d;
        rc_frame_decoder_init(&d, 1 << 20);
        const uint8_t *p = buf;
        Ricochet__PeerFrame *out = NULL;
        assert_int_equal(rc_frame_decode(&d, &p, &len, &out), RC_FRAME_OK);
        assert_int_equal(len, 0);
        assert_int_equal(out->kind_case, kinds[i].kind);
        ricochet__peer_frame__free_unpacked(out, NULL);
        rc_frame_decoder_free(&d);
        free(buf);
    }
}

static void test_split_at_every_byte(void **state)
{
    size_t len;
    uint8_t *one = encode_propose(&len);
    /* two frames back to back, fed in two pieces split at every offset */
    uint8_t *two = malloc(2 * len);
    memcpy(two, one, len);
    memcpy(two + len, one, len);
    for (size_t cut = 0; cut <= 2 * len; cut++) {
        struct rc_frame_decoder d;
        rc_frame_decoder_init(&d, 1 << 20);
        int frames = 0;
        const uint8_t *pieces[2] = {two, two + cut};
        size_t sizes[2] = {cut, 2 * len - cut};
        for (int k = 0; k < 2; k++) {
            const uint8_t *p = pieces[k];
            size_t n = sizes[k];
            while (n > 0) {
                Ricochet__PeerFrame *f = NULL;
                int rv = rc_frame_decode(&d, &p, &n, &f);
                if (rv == RC_FRAME_MORE)
                    break;
                assert_int_equal(rv, RC_FRAME_OK);
                assert_int_equal(f->propose->req, 77);
                assert_int_equal(f->propose->records[0]->probe->payload.len, 7);
                ricochet__peer_frame__free_unpacked(f, NULL);
                frames++;
            }
        }
        assert_int_equal(frames, 2);
        rc_frame_decoder_free(&d);
    }
    free(two);
    free(one);
}

static int decode_all(const uint8_t *buf, size_t len, size_t max)
{
    struct rc_frame_decoder d;
    rc_frame_decoder_init(&d, max);
    int rv = RC_FRAME_MORE;
    while (len > 0) {
        Ricochet__PeerFrame *f = NULL;
        rv = rc_frame_decode(&d, &buf, &len, &f);
        if (rv == RC_FRAME_OK)
            ricochet__peer_frame__free_unpacked(f, NULL);
        else
            break;
    }
    rc_frame_decoder_free(&d);
    return rv;
}

static void test_hostile_frames(void **state)
{
    static const uint8_t zero[] = {0, 0, 0, 0};
    assert_int_equal(decode_all(zero, sizeof zero, 1024), RC_FRAME_EZERO);
    /* 4 GiB announced: refused before any allocation */
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3};
    assert_int_equal(decode_all(huge, sizeof huge, 1 << 20), RC_FRAME_ETOOBIG);
    static const uint8_t garbage[] = {0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(decode_all(garbage, sizeof garbage, 1024), RC_FRAME_EDECODE);
    /* a valid but empty PeerFrame (no kind) */
    static const uint8_t empty[] = {0, 0, 0, 2, 0x78, 0x01}; /* unknown field 15 */
    assert_int_equal(decode_all(empty, sizeof empty, 1024), RC_FRAME_EEMPTY);
    /* truncated: waits for more, never reads past */
    size_t len;
    uint8_t *one = encode_propose(&len);
    assert_int_equal(decode_all(one, len - 1, 1 << 20), RC_FRAME_MORE);
    /* over the configured limit */
    assert_int_equal(decode_all(one, len, 8), RC_FRAME_ETOOBIG);
    free(one);
    /* errors are sticky */
    struct rc_frame_decoder d;
    rc_frame_decoder_init(&d, 1024);
    const uint8_t *p = zero;
    size_t n = sizeof zero;
    Ricochet__PeerFrame *f;
    assert_int_equal(rc_frame_decode(&d, &p, &n, &f), RC_FRAME_EZERO);
    one = encode_propose(&len);
    p = one;
    assert_int_equal(rc_frame_decode(&d, &p, &len, &f), RC_FRAME_EZERO);
    free(one);
    rc_frame_decoder_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_all_kinds),
        cmocka_unit_test(test_split_at_every_byte),
        cmocka_unit_test(test_hostile_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
