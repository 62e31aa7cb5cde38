/* rc_utf8: well-formedness per Unicode table 3-7 and repair with one U+FFFD
 * per maximal invalid subpart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "node/base/rc_utf8.h"

#define FFFD "\xEF\xBF\xBD"

static void test_valid(void **state)
{
    (void)state;
    static const char *const good[] = {"", "plain ascii", "caf\xC3\xA9", "\xE2\x82\xAC 5", "\xF0\x9F\x93\xA7",
                                       "\xED\x9F\xBF", "\xF4\x8F\xBF\xBF", "\xEF\xBF\xBD"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(rc_utf8_valid(good[i]));
    static const char *const bad[] = {
        "caf\xE9",            /* Latin-1 */
        "\xC0\xAF",           /* overlong */
        "\xE0\x80\xAF",       /* overlong */
        "\xED\xA0\x80",       /* surrogate */
        "\xF4\x90\x80\x80",   /* past U+10FFFF */
        "\xF5\x80\x80\x80",   /* no such lead byte */
        "\x80",               /* lone continuation */
        "\xE2\x82",           /* truncated at the end */
        "\xE2\x82" "A",       /* truncated in the middle */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(rc_utf8_valid(bad[i]));
}

static void test_repair(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"caf\xC3\xA9", "caf\xC3\xA9"},
        {"caf\xE9 au lait", "caf" FFFD " au lait"},
        {"\xE2\x82" "A", FFFD "A"},                     /* maximal subpart: one replacement */
        {"\xC0\xAF", FFFD FFFD},                        /* C0 is never a lead byte */
        {"\xED\xA0\x80", FFFD FFFD FFFD},              /* surrogate: ED then two continuations */
        {"\xF0\x9F\x93", FFFD},                         /* truncated 4-byte sequence at the end */
        {"ok\xFF\xFEok", "ok" FFFD FFFD "ok"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *r = rc_utf8_repair(cases[i][0]);
        assert_non_null(r);
        assert_string_equal(r, cases[i][1]);
        assert_true(rc_utf8_valid(r));
        free(r);
    }
    /* every byte value after every other: the output is always valid */
    char in[3] = {0};
    for (int a = 1; a < 256; a++)
        for (int b = 1; b < 256; b++) {
            in[0] = (char)a;
            in[1] = (char)b;
            char *r = rc_utf8_repair(in);
            assert_true(rc_utf8_valid(r));
            free(r);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_repair),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
