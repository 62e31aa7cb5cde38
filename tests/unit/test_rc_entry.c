/* Entry framing: the 8-byte padding that libraft 0.15 needs, and rejection
 * of truncated, foreign and tampered buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <raft.h>

#include "raft/rc_entry.h"

static void test_round_trip_every_length(void **state)
{
    uint8_t payload[300];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 7 + 1);
    for (size_t len = 0; len <= sizeof payload; len++) {
        struct raft_buffer b;
        assert_int_equal(rc_entry_wrap(RC_ENTRY_LOG, payload, len, &b), RC_ENTRY_OK);
        assert_int_equal(b.len % 8, 0);
        assert_true(b.len >= len + RC_ENTRY_HEADER);
        assert_true(b.len < len + RC_ENTRY_HEADER + 8);
        const uint8_t *p;
        size_t n;
        assert_int_equal(rc_entry_unwrap(RC_ENTRY_LOG, b.base, b.len, &p, &n), RC_ENTRY_OK);
        assert_int_equal(n, len);
        assert_memory_equal(p, payload, len);
        raft_free(b.base);
    }
}

static void test_rejects_hostile_buffers(void **state)
{
    const uint8_t payload[13] = "hello, world";
    struct raft_buffer b;
    const uint8_t *p;
    size_t n;
    assert_int_equal(rc_entry_wrap(RC_ENTRY_LOG, payload, sizeof payload, &b), RC_ENTRY_OK);
    uint8_t *raw = b.base;

    assert_int_equal(rc_entry_unwrap(RC_ENTRY_LOG, raw, 7, &p, &n), RC_ENTRY_ESHORT);
    assert_int_equal(rc_entry_unwrap(RC_ENTRY_LOG, NULL, 0, &p, &n), RC_ENTRY_ESHORT);
    /* truncated to a multiple of 8 that no longer holds the payload */
    assert_int_equal(rc_entry_unwrap(RC_ENTRY_LOG, raw, b.len - 8, &p, &n), RC_ENTRY_ELENGTH);
    /* not a multiple of 8 */
    assert_int_equal(rc_entry_unwrap(RC_ENTRY_LOG, raw, b.len - 1, &p, &n), RC_ENTRY_EPADDING);
    /* the wrong kind: a log entry is not a snapshot */
    assert_int_equal(rc_entry_unwrap(RC_ENTRY_SNAPSHOT, raw, b.len, &p, &n), RC_ENTRY_EMAGIC);
    /* length claims more than the buffer holds (4 GiB - 1) */
    uint8_t saved[4];
    memcpy(saved, raw + 4, 4);
    memset(raw + 4, 0xff, 4);
    assert_int_equal(rc_entry_unwrap(RC_ENTRY_LOG, raw, b.len, &p, &n), RC_ENTRY_ELENGTH);
    memcpy(raw + 4, saved, 4);
    /* non-zero padding */
    raw[b.len - 1] = 1;
    assert_int_equal(rc_entry_unwrap(RC_ENTRY_LOG, raw, b.len, &p, &n), RC_ENTRY_EPADDING);
    raw[b.len - 1] = 0;
    /* foreign magic */
    raw[0] = 'X';
    assert_int_equal(rc_entry_unwrap(RC_ENTRY_LOG, raw, b.len, &p, &n), RC_ENTRY_EMAGIC);
    raft_free(b.base);
}

static void test_padded_size(void **state)
{
    assert_int_equal(rc_entry_padded_size(0), 8);
    assert_int_equal(rc_entry_padded_size(1), 16);
    assert_int_equal(rc_entry_padded_size(8), 16);
    assert_int_equal(rc_entry_padded_size(9), 24);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_length),
        cmocka_unit_test(test_rejects_hostile_buffers),
        cmocka_unit_test(test_padded_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
