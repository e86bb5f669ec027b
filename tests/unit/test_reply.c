/*
 * test_reply.c - common/policy/reply.c: a reply given as one line (a next
 * hop's answer) split into code, enhanced status code and text, and put
 * back together unchanged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "reply.h"

static void parsed(const char *line, int code, const char *xcode, const char *text)
{
    struct reply r;
    char back[512];
    assert_int_equal(reply_parse(&r, line), 0);
    assert_int_equal(r.code, code);
    assert_string_equal(r.xcode, xcode);
    assert_string_equal(r.text, text);
    reply_format(&r, back, sizeof back);
    assert_string_equal(back, line);   /* nothing lost, nothing added */
}

static void test_parse(void **state)
{
    (void)state;
    parsed("552 5.2.2 <okperm1@fake.test> Over quota", 552, "5.2.2", "<okperm1@fake.test> Over quota");
    parsed("250 2.0.0 <a@b> Saved", 250, "2.0.0", "<a@b> Saved");
    parsed("451 4.4.2 next hop fake: connection refused", 451, "4.4.2", "next hop fake: connection refused");
    parsed("550 User unknown", 550, "", "User unknown");          /* no enhanced code */
    parsed("554 5.7.1", 554, "5.7.1", "");                        /* no text */
    parsed("550 4.1.1 class differs", 550, "", "4.1.1 class differs");   /* RFC 3463: class must match */
    parsed("550 5.1234.1 too long", 550, "", "5.1234.1 too long");
    parsed("550 5.1.1.1 too many parts", 550, "", "5.1.1.1 too many parts");
    parsed("421", 421, "", "");
}

static void test_not_a_reply(void **state)
{
    (void)state;
    struct reply r;
    const char *bad[] = { "", "55", "hello", "650 5.0.0 no such class", "5500 5.0.0 x", "550-5.0.0 x", "x50 y" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(reply_parse(&r, bad[i]), -1);
        assert_int_equal(r.code, 0);
    }
}

static void test_set_and_class(void **state)
{
    (void)state;
    struct reply r;
    reply_set(&r, 451, "4.4.3", "verification unavailable for %s", "x");
    assert_int_equal(r.code, 451);
    assert_string_equal(r.xcode, "4.4.3");
    assert_string_equal(r.text, "verification unavailable for x");
    assert_true(reply_is_temporary(&r));
    reply_set(&r, 550, NULL, "no");
    assert_string_equal(r.xcode, "");
    assert_false(reply_is_temporary(&r));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_not_a_reply),
        cmocka_unit_test(test_set_and_class),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
