/*
 * test_netaddr.c - unit tests of common/base/netaddr.c: IPv4/IPv6 address and
 * CIDR parsing, IPv4-mapped addresses against IPv4 networks, the error
 * messages an administrator sees for a bad network in a rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "netaddr.h"
#include "util.h"

struct match_case {
    const char *net;
    const char *addr;
    bool inside;
};

static const struct match_case match_cases[] = {
    { "192.0.2.0/24", "192.0.2.0", true },
    { "192.0.2.0/24", "192.0.2.255", true },
    { "192.0.2.0/24", "192.0.3.0", false },
    { "192.0.2.0/24", "192.0.1.255", false },
    { "192.0.2.7", "192.0.2.7", true },
    { "192.0.2.7", "192.0.2.8", false },
    { "192.0.2.7/32", "192.0.2.7", true },
    { "10.0.0.0/8", "10.255.1.2", true },
    { "10.0.0.0/8", "11.0.0.1", false },
    { "172.16.0.0/12", "172.31.255.255", true },
    { "172.16.0.0/12", "172.32.0.0", false },
    { "0.0.0.0/0", "203.0.113.9", true },
    { "0.0.0.0/0", "2001:db8::1", false },
    /* IPv4-mapped IPv6 peers are inside IPv4 networks */
    { "192.0.2.0/24", "::ffff:192.0.2.9", true },
    { "192.0.2.0/24", "::FFFF:c000:0209", true },
    { "192.0.2.0/24", "::ffff:192.0.3.9", false },
    { "::ffff:192.0.2.0/120", "192.0.2.44", true },
    /* ...but the IPv4-compatible (deprecated) form is not mapped */
    { "192.0.2.0/24", "::192.0.2.9", false },
    /* IPv6 */
    { "2001:db8::/32", "2001:db8::1", true },
    { "2001:db8::/32", "2001:DB8:ffff:1::5", true },
    { "2001:db8::/32", "2001:db9::1", false },
    { "2001:db8::/33", "2001:db8:8000::1", false },
    { "2001:db8::/33", "2001:db8:7fff::1", true },
    { "2001:db8::1", "2001:db8:0:0:0:0:0:1", true },
    { "2001:db8::1", "2001:db8::2", false },
    { "2001:db8::1/128", "2001:db8::1", true },
    { "fe80::/10", "fe80::1%eth0", true },
    { "::1", "::1", true },
    { "::1", "127.0.0.1", false },
    { "::/0", "2001:db8::1", true },
    /* documented: a short IPv6 prefix covers the mapped range too */
    { "::/0", "192.0.2.1", true },
    /* how MTAs may spell the peer */
    { "192.0.2.0/24", "[192.0.2.1]", true },
    { "2001:db8::/32", "[IPv6:2001:db8::1]", true },
    { "2001:db8::/32", "IPv6:2001:db8::1", true },
    /* not addresses at all never match */
    { "0.0.0.0/0", "", false },
    { "0.0.0.0/0", "localhost", false },
    { "0.0.0.0/0", "10.1", false },
    { "0.0.0.0/0", "256.1.1.1", false },
    { "0.0.0.0/0", "1.2.3.4.5", false },
    { "0.0.0.0/0", "01.2.3.4", false },
    { "::/0", "2001:db8:::1", false },
    { "::/0", "[]", false },
};

static void test_match_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(match_cases); i++) {
        const struct match_case *c = &match_cases[i];
        struct netaddr_net net;
        struct netaddr a;
        char err[ERRLEN] = "";
        if (netaddr_net_parse(c->net, &net, err, sizeof err) != 0)
            fail_msg("case %zu: network %s refused: %s", i, c->net, err);
        bool inside = netaddr_parse(c->addr, &a) == 0 && netaddr_net_contains(&net, &a);
        if (inside != c->inside)
            fail_msg("case %zu: %s in %s: got %d, want %d", i, c->addr, c->net, inside, c->inside);
    }
}

struct bad_net_case {
    const char *net;
    const char *message;   /* substring of the error */
};

static const struct bad_net_case bad_nets[] = {
    { "", "is not an IP address or network" },
    { "/24", "is not an IP address or network" },
    { "mail.example.org", "'mail.example.org' is not an IP address or network" },
    { "10.1/16", "is not an IP address or network" },
    { "300.1.2.3", "is not an IP address or network" },
    { "192.0.2.0/33", "'192.0.2.0/33': bad prefix length (0-32)" },
    { "2001:db8::/129", "bad prefix length (0-128)" },
    { "192.0.2.0/", "bad prefix length" },
    { "192.0.2.0/-1", "bad prefix length" },
    { "192.0.2.0/2x", "bad prefix length" },
    { "192.0.2.0/24/8", "bad prefix length" },
    { "192.168.9.1/24", "'192.168.9.1/24' has host bits set (did you mean 192.168.9.0/24?)" },
    { "2001:db8::1/32", "has host bits set (did you mean 2001:db8::/32?)" },
};

static void test_bad_networks(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(bad_nets); i++) {
        struct netaddr_net net;
        char err[ERRLEN] = "";
        if (netaddr_net_parse(bad_nets[i].net, &net, err, sizeof err) != -1)
            fail_msg("case %zu: '%s' accepted", i, bad_nets[i].net);
        if (!strstr(err, bad_nets[i].message))
            fail_msg("case %zu: '%s': error '%s' lacks '%s'", i, bad_nets[i].net, err,
                     bad_nets[i].message);
    }
}

static void test_format_round_trip(void **state)
{
    (void)state;
    static const char *const nets[][2] = {
        { "192.0.2.0/24", "192.0.2.0/24" },
        { "192.0.2.7", "192.0.2.7/32" },
        { "2001:DB8::/32", "2001:db8::/32" },
        { "::1", "::1/128" },
        { "0.0.0.0/0", "0.0.0.0/0" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(nets); i++) {
        struct netaddr_net net;
        char buf[80], err[ERRLEN];
        assert_int_equal(netaddr_net_parse(nets[i][0], &net, err, sizeof err), 0);
        netaddr_net_format(&net, buf, sizeof buf);
        assert_string_equal(buf, nets[i][1]);
    }
}

static void test_mapped_and_plain_are_one_address(void **state)
{
    (void)state;
    struct netaddr a, b;
    assert_int_equal(netaddr_parse("198.51.100.20", &a), 0);
    assert_int_equal(netaddr_parse("::ffff:198.51.100.20", &b), 0);
    assert_memory_equal(a.b, b.b, 16);
    assert_int_equal(netaddr_parse(NULL, &a), -1);
    /* longer than any address: refused, not truncated into something valid */
    assert_int_equal(netaddr_parse("1.2.3.4                                                              ", &a), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_bad_networks),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_mapped_and_plain_are_one_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
