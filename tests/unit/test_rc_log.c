#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "node/base/rc_log.h"

static void test_quote_escapes_hostile_bytes(void **state)
{
    char out[64];
    const char in[] = "a\"b\\c\r\n\x00\xff";
    rc_log_quote(out, sizeof out, in, sizeof in - 1);
    assert_string_equal(out, "\"a\\\"b\\\\c\\x0d\\x0a\\x00\\xff\"");
}

static void test_quote_truncates(void **state)
{
    char out[12];
    rc_log_quote(out, sizeof out, "0123456789abcdef", 16);
    assert_true(strlen(out) < sizeof out);
    assert_non_null(strstr(out, "...\""));
}

static void test_level_parse(void **state)
{
    assert_int_equal(rc_log_level_parse("DEBUG"), RC_LOG_DEBUG);
    assert_int_equal(rc_log_level_parse("error"), RC_LOG_ERROR);
    assert_int_equal(rc_log_level_parse("loud"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote_escapes_hostile_bytes),
        cmocka_unit_test(test_quote_truncates),
        cmocka_unit_test(test_level_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
