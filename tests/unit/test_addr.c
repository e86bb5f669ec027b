/*
 * test_addr.c - address normalization: what is accepted, how it is
 * normalized, and that hostile input is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "addr.h"

static void test_accepted(void **state)
{
    static const struct { const char *raw, *want; } cases[] = {
        { "<alice@Example.ORG>", "alice@example.org" },
        { "alice@example.org", "alice@example.org" },
        { "<Alice.Smith+tag@example.org>", "Alice.Smith+tag@example.org" },
        { "<\"john doe\"@example.org>", "\"john doe\"@example.org" },
        { "<\"a\\\"b\"@example.org>", "\"a\\\"b\"@example.org" },
        { "<@relay.example,@b.example:bob@Example.net>", "bob@example.net" },
        { "<postmaster>", "postmaster" },
        { "<user@[192.0.2.1]>", "user@[192.0.2.1]" },
        { "<bob@[IPv6:2001:DB8::1]>", "bob@[ipv6:2001:db8::1]" },
        { "bob@[ipv6:2001:db8::1]", "bob@[ipv6:2001:db8::1]" },   /* normalizing twice is stable */
        { "<j\xc3\xb6rg@b\xc3\xbc" "cher.example>", "j\xc3\xb6rg@b\xc3\xbc" "cher.example" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[ADDR_MAX + 1], err[256];
        if (addr_normalize(cases[i].raw, false, out, sizeof out, err, sizeof err) != 0)
            fail_msg("%s refused: %s", cases[i].raw, err);
        assert_string_equal(out, cases[i].want);
    }
}

static void test_refused(void **state)
{
    char longaddr[10001];
    memset(longaddr, 'a', sizeof longaddr - 1);
    longaddr[sizeof longaddr - 1] = '\0';
    static const char *const bad[] = {
        "<alice@example.org", "alice@example.org>", "<<alice@example.org>>", "<alice@example.org>\r\nRSET",
        "<alice\n@example.org>", "<ali\tce@example.org>", "<a b@example.org>", "<alice@exa mple.org>",
        "<alice@@example.org>", "<.alice@example.org>", "<alice.@example.org>", "<al..ice@example.org>",
        "<alice@-example.org>", "<alice@example..org>", "<alice@>", "<@example.org>", "<\"open@example.org>",
        "<alice@example.org\x7f>", "<\xff\xfe@example.org>", "<\xc3@example.org>", "<a\x01@example.org>",
        "<>", "", "<alice@exa<mple.org>",
        "<a\xed\xa0\x80@example.org>",      /* surrogate */
        "<a\xf4\x90\x80\x80@example.org>",  /* above U+10FFFF */
        "<a\xe0\x80\xaf@example.org>",      /* overlong */
        "<a\xc0\xaf@example.org>",          /* overlong */
        "<a@[dead.beef]>", "<a@[300.1.2.3]>", "<a@[IPv6:zz::1]>", "<a@[tag:content]>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[ADDR_MAX + 1], err[256] = "";
        if (addr_normalize(bad[i], false, out, sizeof out, err, sizeof err) != -1)
            fail_msg("accepted hostile address #%zu -> %s", i, out);
        assert_true(err[0] != '\0');
    }
    char out[ADDR_MAX + 1], err[256];
    assert_int_equal(addr_normalize(longaddr, false, out, sizeof out, err, sizeof err), -1);
}

static void test_null_sender(void **state)
{
    char out[ADDR_MAX + 1] = "x", err[256];
    assert_int_equal(addr_normalize("<>", true, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "");
    assert_string_equal(addr_domain(out), "");
}

static void test_domain(void **state)
{
    assert_string_equal(addr_domain("a@example.org"), "example.org");
    assert_string_equal(addr_domain("\"a@b\"@example.org"), "example.org");
    assert_string_equal(addr_domain("postmaster"), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_null_sender),
        cmocka_unit_test(test_domain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
