/*
 * test_duration.c - durations: units, combinations, bare milliseconds, errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "duration.h"

static void test_valid(void **state)
{
    static const struct { const char *text; int64_t ms; } cases[] = {
        { "0", 0 }, { "250", 250 }, { "250ms", 250 }, { "1s", 1000 }, { "30s", 30000 },
        { "1m", 60000 }, { "2h", 7200000 }, { "1d", 86400000 }, { "1m30s", 90000 },
        { "1h30m", 5400000 }, { "1d2h3m4s5ms", 93784005 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ms = -1;
        char err[256];
        assert_int_equal(duration_parse(cases[i].text, &ms, err, sizeof err), 0);
        assert_int_equal(ms, cases[i].ms);
    }
}

static void test_invalid(void **state)
{
    static const char *const bad[] = { "", "s", "1x", "1 s", "-1s", "1.5s", "1s2", "99999999999999999999",
                                       "1h 30m", "ms", "10 ", "1S" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms;
        char err[256] = "";
        assert_int_equal(duration_parse(bad[i], &ms, err, sizeof err), -1);
        assert_true(err[0] != '\0');
    }
}

static void test_format(void **state)
{
    char buf[32];
    duration_format(86400000, buf, sizeof buf);
    assert_string_equal(buf, "1d");
    duration_format(90000, buf, sizeof buf);
    assert_string_equal(buf, "90s");
    duration_format(250, buf, sizeof buf);
    assert_string_equal(buf, "250ms");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
