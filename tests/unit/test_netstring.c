/*
 * test_netstring.c - unit tests of common/base/netstring.c: frames that parse,
 * every prefix of a valid frame asks for more, each kind of malformed
 * frame is refused as soon as it can be seen, the length bound holds, and
 * random garbage never crashes the parser nor yields a frame outside the
 * buffer. Encoding round-trips and refuses buffers that are too small.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "netstring.h"
#include "util.h"

#define MAX 10000

static enum netstring_status parse(const char *buf, size_t len, const char **p, size_t *plen,
                                   size_t *used, char *err)
{
    return netstring_parse(buf, len, MAX, p, plen, used, err, ERRLEN);
}

static void test_valid(void **state)
{
    (void)state;
    const char *p;
    size_t plen, used;
    char err[ERRLEN];
    const char *in = "11:hello there,";
    assert_int_equal(parse(in, strlen(in), &p, &plen, &used, err), NETSTRING_OK);
    assert_int_equal(plen, 11);
    assert_memory_equal(p, "hello there", 11);
    assert_int_equal(used, strlen(in));

    assert_int_equal(parse("0:,", 3, &p, &plen, &used, err), NETSTRING_OK);
    assert_int_equal(plen, 0);
    assert_int_equal(used, 3);

    /* binary payload, NUL and comma included */
    const char bin[] = "4:a\0,b,";
    assert_int_equal(parse(bin, sizeof bin - 1, &p, &plen, &used, err), NETSTRING_OK);
    assert_int_equal(plen, 4);
    assert_memory_equal(p, "a\0,b", 4);
}

static void test_two_frames(void **state)
{
    (void)state;
    const char *p;
    size_t plen, used;
    char err[ERRLEN];
    const char *in = "3:abc,5:hello,";
    assert_int_equal(parse(in, strlen(in), &p, &plen, &used, err), NETSTRING_OK);
    assert_memory_equal(p, "abc", 3);
    assert_int_equal(used, 6);
    assert_int_equal(parse(in + used, strlen(in) - used, &p, &plen, &used, err), NETSTRING_OK);
    assert_memory_equal(p, "hello", 5);
}

static void test_every_prefix_wants_more(void **state)
{
    (void)state;
    const char *p;
    size_t plen, used;
    char err[ERRLEN];
    const char *in = "25:nexthop alice@example.org,";
    for (size_t n = 0; n < strlen(in); n++)
        assert_int_equal(parse(in, n, &p, &plen, &used, err), NETSTRING_MORE);
    assert_int_equal(parse(in, strlen(in), &p, &plen, &used, err), NETSTRING_OK);
}

static void test_malformed(void **state)
{
    (void)state;
    static const struct { const char *in; const char *why; } bad[] = {
        { ":", "expected a length" },
        { ",", "expected a length" },
        { "a:", "expected a length" },
        { "-1:x,", "expected a length" },
        { " 5:hello,", "expected a length" },
        { "5x", "expected ':'" },
        { "5 :hello,", "expected ':'" },
        { "05:hello,", "leading zero" },
        { "00:,", "leading zero" },
        { "5:hello;", "does not end with ','" },
        { "5:hellox", "does not end with ','" },
        { "10001:", "longer than 10000 bytes" },
        { "99999999999999999999999:", "longer than" },
        { "000000000", "more than 8 digits" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        const char *p;
        size_t plen, used;
        char err[ERRLEN] = "";
        enum netstring_status st = parse(bad[i].in, strlen(bad[i].in), &p, &plen, &used, err);
        if (st != NETSTRING_ERROR || !strstr(err, bad[i].why))
            fail_msg("\"%s\": status %d, err \"%s\", wanted error with \"%s\"", bad[i].in, st, err,
                     bad[i].why);
    }
}

static void test_bound(void **state)
{
    (void)state;
    const char *p;
    size_t plen, used;
    char err[ERRLEN];
    /* exactly at the bound parses; one more is refused before any payload arrives */
    size_t n = MAX + 8;
    char *buf = xmalloc(n);
    int h = snprintf(buf, n, "%d:", MAX);
    memset(buf + h, 'x', MAX);
    buf[h + MAX] = ',';
    assert_int_equal(parse(buf, (size_t)h + MAX + 1, &p, &plen, &used, err), NETSTRING_OK);
    assert_int_equal(plen, MAX);
    assert_int_equal(parse("10001", 5, &p, &plen, &used, err), NETSTRING_ERROR);
    /* a small bound */
    assert_int_equal(netstring_parse("4:abcd,", 7, 3, &p, &plen, &used, err, sizeof err),
                     NETSTRING_ERROR);
    free(buf);
}

/* xorshift: deterministic garbage */
static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void test_garbage(void **state)
{
    (void)state;
    static const char alphabet[] = "0123456789:,, \0\xff" "ab";
    uint32_t seed = 0x9e3779b9;
    char buf[64];
    size_t ok = 0, more = 0, bad = 0;
    for (int round = 0; round < 200000; round++) {
        size_t len = rnd(&seed) % sizeof buf;
        for (size_t i = 0; i < len; i++)
            buf[i] = (round & 1) ? (char)rnd(&seed) : alphabet[rnd(&seed) % (sizeof alphabet - 1)];
        const char *p = NULL;
        size_t plen = 0, used = 0;
        char err[ERRLEN] = "";
        switch (netstring_parse(buf, len, 20, &p, &plen, &used, err, sizeof err)) {
        case NETSTRING_OK:
            ok++;
            assert_true(used <= len);
            assert_true(plen <= 20);
            assert_true(p > buf && p + plen < buf + used);
            assert_int_equal(buf[used - 1], ',');
            break;
        case NETSTRING_MORE:
            more++;
            assert_true(len < 2 + 20 + 1 + 1);   /* never waits beyond the bound */
            break;
        case NETSTRING_ERROR:
            bad++;
            assert_true(err[0] != '\0');
            break;
        }
    }
    /* the alphabet makes every outcome common enough to be exercised */
    assert_true(ok > 100 && more > 100 && bad > 100);
}

static void test_encode(void **state)
{
    (void)state;
    char out[32];
    const char *p;
    size_t plen, used;
    char err[ERRLEN];
    long n = netstring_encode("OK lmtp:inet:127.0.0.1:24", 25, out, sizeof out);
    assert_int_equal(n, 29);
    assert_memory_equal(out, "25:OK lmtp:inet:127.0.0.1:24,", 29);
    assert_int_equal(parse(out, (size_t)n, &p, &plen, &used, err), NETSTRING_OK);
    assert_int_equal(plen, 25);

    assert_int_equal(netstring_encode("NOTFOUND ", 9, out, sizeof out), 12);
    assert_memory_equal(out, "9:NOTFOUND ,", 12);
    assert_int_equal(netstring_encode("", 0, out, sizeof out), 3);
    assert_memory_equal(out, "0:,", 3);
    /* exact fit, then one byte short */
    assert_int_equal(netstring_encode("abc", 3, out, 6), 6);
    assert_int_equal(netstring_encode("abc", 3, out, 5), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_two_frames),
        cmocka_unit_test(test_every_prefix_wants_more),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
