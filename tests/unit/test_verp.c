/* Unit tests of the VERP codec: round trip, every character tampered, wrong
 * key, case folding, truncation, foreign domain. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <ctype.h>
#include <stdio.h>
#include <cmocka.h>

#include "smtp/verp.h"

static const uint8_t secret[] = "0123456789abcdef-bounce-secret";
static const struct verp_key key = { secret, sizeof secret - 1, 0 };

static void test_round_trip(void **st)
{
    (void)st;
    char a[256], id[64];
    size_t idl;
    uint32_t rc;
    const char *ids[] = { "", "M1", "0123456789ABCDEF", "01HZX3Q8Y2K5N7P9R4T6" };
    uint32_t rcs[] = { 0, 1, 127, 128, 99999, 0xffffffffu };
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
        for (size_t j = 0; j < sizeof rcs / sizeof *rcs; j++) {
            assert_int_equal(verp_encode(&key, "bounce.example.net", ids[i], strlen(ids[i]),
                                         rcs[j], a, sizeof a), VERP_OK);
            assert_true(strncmp(a, "b+", 2) == 0);
            assert_true(strchr(a, '@') - a <= VERP_LOCAL_MAX);
            for (const char *c = a + 2; *c != '@'; c++)
                assert_true(islower((unsigned char)*c) || (*c >= '2' && *c <= '7'));
            assert_int_equal(verp_decode(&key, "bounce.example.net", a, strlen(a), id, sizeof id,
                                         &idl, &rc), VERP_OK);
            assert_string_equal(id, ids[i]);
            assert_int_equal(idl, strlen(ids[i]));
            assert_int_equal(rc, rcs[j]);
        }
}

static void test_case_folded(void **st)
{
    (void)st;
    char a[256], id[64];
    size_t idl;
    uint32_t rc;
    assert_int_equal(verp_encode(&key, "bounce.example.net", "MSG42", 5, 3, a, sizeof a), VERP_OK);
    for (char *c = a; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    char br[260];
    snprintf(br, sizeof br, "<%s>", a);
    assert_int_equal(verp_decode(&key, "bounce.example.net", br, strlen(br), id, sizeof id, &idl, &rc),
                     VERP_OK);
    assert_string_equal(id, "MSG42");
    assert_int_equal(rc, 3);
}

static void test_tamper_every_char(void **st)
{
    (void)st;
    char a[256], t[256], id[64];
    size_t idl;
    uint32_t rc;
    assert_int_equal(verp_encode(&key, "bounce.example.net", "01HZX3Q8Y2K5N7P9", 16, 7, a, sizeof a),
                     VERP_OK);
    size_t at = (size_t)(strchr(a, '@') - a);
    const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    for (size_t i = 2; i < at; i++) {
        for (size_t k = 0; k < 32; k++) {
            if (alphabet[k] == a[i])
                continue;
            memcpy(t, a, sizeof a);
            t[i] = alphabet[k];
            int rv = verp_decode(&key, "bounce.example.net", t, strlen(t), id, sizeof id, &idl, &rc);
            assert_true(rv == VERP_EBADMAC || rv == VERP_EENCODING || rv == VERP_EVERSION ||
                        rv == VERP_ETRUNCATED);
        }
        /* a character outside the alphabet */
        memcpy(t, a, sizeof a);
        t[i] = '1';
        assert_int_equal(verp_decode(&key, NULL, t, strlen(t), id, sizeof id, &idl, &rc),
                         VERP_EENCODING);
    }
    /* every truncation of the token */
    for (size_t cut = 2; cut < at; cut++) {
        snprintf(t, sizeof t, "%.*s%s", (int)cut, a, a + at);
        int rv = verp_decode(&key, NULL, t, strlen(t), id, sizeof id, &idl, &rc);
        assert_true(rv < 0);
        assert_true(rv != VERP_OK);
    }
    /* an appended character */
    snprintf(t, sizeof t, "%.*sa%s", (int)at, a, a + at);
    assert_true(verp_decode(&key, NULL, t, strlen(t), id, sizeof id, &idl, &rc) < 0);
}

static void test_distinct_errors(void **st)
{
    (void)st;
    char a[256], id[64];
    size_t idl;
    uint32_t rc;
    static const uint8_t other[] = "another-secret-of-sufficient-len";
    struct verp_key k2 = { other, sizeof other - 1, 0 };
    assert_int_equal(verp_encode(&key, "bounce.example.net", "M", 1, 0, a, sizeof a), VERP_OK);
    assert_int_equal(verp_decode(&k2, NULL, a, strlen(a), id, sizeof id, &idl, &rc), VERP_EBADMAC);
    assert_int_equal(verp_decode(&key, "other.example", a, strlen(a), id, sizeof id, &idl, &rc),
                     VERP_EDOMAIN);
    assert_int_equal(verp_decode(&key, NULL, "user@example.org", 16, id, sizeof id, &idl, &rc),
                     VERP_EFORMAT);
    assert_int_equal(verp_decode(&key, NULL, "b+@example.org", 14, id, sizeof id, &idl, &rc),
                     VERP_EFORMAT);
    assert_int_equal(verp_decode(&key, NULL, "b+aaaa", 6, id, sizeof id, &idl, &rc), VERP_EFORMAT);
    assert_int_equal(verp_decode(&key, NULL, "b+aa@x", 6, id, sizeof id, &idl, &rc), VERP_ETRUNCATED);
    assert_int_equal(verp_decode(&key, NULL, "b+a!aa@x", 8, id, sizeof id, &idl, &rc), VERP_EENCODING);
    /* version byte 2: "ei" = 0x02 followed by zero bits... build from a valid token */
    char t[256];
    memcpy(t, a, sizeof a);
    t[2] = 'b'; /* first 5 bits 00001 → version byte 0x08.. */
    assert_int_equal(verp_decode(&key, NULL, t, strlen(t), id, sizeof id, &idl, &rc), VERP_EVERSION);
    /* weak keys and oversize ids are refused when encoding */
    struct verp_key weak = { (const uint8_t *)"short", 5, 0 };
    assert_int_equal(verp_encode(&weak, "b.example", "M", 1, 0, a, sizeof a), VERP_EINVAL);
    char longid[VERP_ID_MAX + 1];
    memset(longid, 'x', sizeof longid);
    assert_int_equal(verp_encode(&key, "b.example", longid, sizeof longid, 0, a, sizeof a),
                     VERP_ETOOLONG);
    assert_int_equal(verp_encode(&key, "b.example", "M", 1, 0, a, 10), VERP_ETOOLONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_case_folded),
        cmocka_unit_test(test_tamper_every_char),
        cmocka_unit_test(test_distinct_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
