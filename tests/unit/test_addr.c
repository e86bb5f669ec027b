/*
 * test_addr.c - address normalization: what is accepted, how it is
 * normalized, and that hostile input is refused; recipients without a
 * domain; host names fit for a Received: line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
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
        /* quoted-pair of printable ASCII (RFC 5321 4.1.2) */
        { "<\"a\\ b\"@example.org>", "\"a\\ b\"@example.org" },
        { "<\"a\\\\b\"@example.org>", "\"a\\\\b\"@example.org" },
        { "<\"a\\~\"@example.org>", "\"a\\~\"@example.org" },
        /* neighbours of the refused code points are ordinary characters */
        { "<a\xc2\xa1@example.org>", "a\xc2\xa1@example.org" },           /* U+00A1 */
        { "<a\xe2\x80\x90@example.org>", "a\xe2\x80\x90@example.org" },   /* U+2010 */
        { "<a\xe2\x80\xa7@example.org>", "a\xe2\x80\xa7@example.org" },   /* U+2027 */
        { "<a\xe2\x81\x9e@example.org>", "a\xe2\x81\x9e@example.org" },   /* U+205E */
        { "<a\xe2\x81\xb0@example.org>", "a\xe2\x81\xb0@example.org" },   /* U+2070 */
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
        /* a quoted-pair escapes printable ASCII only (issue 14, from an address corpus) */
        "\"test\\\xc2\xa9\"@example.org", "<\"test\\\xc2\xa9\"@example.org>",
        "<\"a\\\xe2\x80\xae\"@example.org>",
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

/* Characters that make a log line or a mail client show something else (issue 14). */
static void test_deceptive_refused(void **state)
{
    static const char *const chars[] = {
        "\xc2\x80", "\xc2\x85", "\xc2\x9b", "\xc2\x9f",                   /* C1: U+0080, NEL, CSI, U+009F */
        "\xe2\x80\xaa", "\xe2\x80\xab", "\xe2\x80\xac", "\xe2\x80\xad", "\xe2\x80\xae", /* U+202A..202E */
        "\xe2\x81\xa6", "\xe2\x81\xa7", "\xe2\x81\xa8", "\xe2\x81\xa9", /* U+2066..2069 */
        "\xe2\x80\x8b", "\xe2\x80\x8c", "\xe2\x80\x8d", "\xe2\x80\x8e", "\xe2\x80\x8f", /* U+200B..200F */
        "\xe2\x80\xa8", "\xe2\x80\xa9",                                     /* U+2028, U+2029 */
        "\xd8\x9c", "\xe2\x81\xa0", "\xef\xbb\xbf",                          /* U+061C, U+2060, U+FEFF */
        /* what an outside attack found passing (and logged raw) */
        "\xc2\xad", "\xcd\x8f", "\xe1\x85\x9f", "\xe1\xa0\x8e", "\xe2\x81\xa1", /* U+00AD, U+034F, U+115F, U+180E, U+2061 */
        "\xf3\xa0\x81\x81", "\xef\xbf\xbe", "\xc2\xa0", "\xe3\x80\x80",          /* U+E0041, U+FFFE, U+00A0, U+3000 */
        "\xef\xb8\x8f", "\xe3\x85\xa4",                                       /* U+FE0F, U+3164 */
        /* and what a recheck found next (format characters, the blank braille pattern) */
        "\xe2\xa0\x80", "\xf0\x9b\xb2\xa0", "\xf0\x93\x90\xb0", "\xf0\x9d\x85\xb3", /* U+2800, U+1BCA0, U+13430, U+1D173 */
        "\xd8\x80", "\xf0\x91\x82\xbd",                                     /* U+0600, U+110BD */
    };
    for (size_t i = 0; i < sizeof chars / sizeof chars[0]; i++) {
        char raw[3][64], out[ADDR_MAX + 1], err[256];
        snprintf(raw[0], sizeof raw[0], "<ali%sce@example.org>", chars[i]);
        snprintf(raw[1], sizeof raw[1], "<alice@exa%smple.org>", chars[i]);
        snprintf(raw[2], sizeof raw[2], "<\"ali%sce\"@example.org>", chars[i]);
        for (int j = 0; j < 3; j++) {
            err[0] = '\0';
            if (addr_normalize(raw[j], true, out, sizeof out, err, sizeof err) != -1)
                fail_msg("accepted char #%zu in %s", i, raw[j]);
            assert_non_null(strstr(err, "U+"));
        }
    }
}

/* RFC 5321 4.1.1.3: a path without a domain is only <Postmaster>. */
static void test_rcpt_without_domain(void **state)
{
    static const char *const refused[] = {
        "<test>", "test", "<\"test\">", "<postmaster2>", "<post.master>", "<@relay.example:test>",
        "<\"postmaster\">",
    };
    static const char *const postmaster[] = { "<Postmaster>", "<postmaster>", "<POSTMASTER>",
                                              "<pOsTmAsTeR>", "postmaster" };
    char out[ADDR_MAX + 1], err[256];
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        err[0] = '\0';
        if (addr_normalize_rcpt(refused[i], out, sizeof out, err, sizeof err) != -1)
            fail_msg("recipient %s accepted as %s", refused[i], out);
        assert_non_null(strstr(err, "without a domain"));
    }
    for (size_t i = 0; i < sizeof postmaster / sizeof postmaster[0]; i++) {
        if (addr_normalize_rcpt(postmaster[i], out, sizeof out, err, sizeof err) != 0)
            fail_msg("%s refused: %s", postmaster[i], err);
        assert_true(addr_is_postmaster(out));
        assert_string_equal(addr_domain(out), "");
    }
    assert_int_equal(addr_normalize_rcpt("<Postmaster@Example.ORG>", out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "Postmaster@example.org");
    assert_false(addr_is_postmaster(out));
    /* the sender and the other lookups keep the plain syntax check */
    assert_int_equal(addr_normalize("<test>", false, out, sizeof out, err, sizeof err), 0);
    /* a syntax error keeps its own reason */
    assert_int_equal(addr_normalize_rcpt("<a b>", out, sizeof out, err, sizeof err), -1);
    assert_null(strstr(err, "without a domain"));
}

static void test_hostname(void **state)
{
    static const char *const good[] = { "mx.example", "MX-1.Example.NET", "localhost", "host_1.example",
                                        "[192.0.2.7]", "[IPv6:2001:db8::1]", "mx.example." };
    static const char *const bad[] = {
        "", "mx example", "mx.example\r\nMAIL FROM:<x@y>", "client.example.net??MAIL", "evil(comment)",
        "a;b", "m\xc3\xbc.example", "mx\xe2\x80\xae.example", "[192.0.2.7", "[not.an.ip]", "a\"b",
        "<mx.example>", "mx.example]",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!addr_is_hostname(good[i]))
            fail_msg("%s is a host name", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (addr_is_hostname(bad[i]))
            fail_msg("bad #%zu taken for a host name", i);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_false(addr_is_hostname(longname));
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
        cmocka_unit_test(test_deceptive_refused),
        cmocka_unit_test(test_rcpt_without_domain),
        cmocka_unit_test(test_hostname),
        cmocka_unit_test(test_null_sender),
        cmocka_unit_test(test_domain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
