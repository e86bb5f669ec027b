/*
 * test_received.c - common/policy/received.c: our Received: line as MTAs
 * write it, with nothing from the client in it unchecked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "received.h"

/* 2026-12-01 10:00:00 UTC */
#define WHEN ((time_t)1796119200)

static int utc(void **state)
{
    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    return 0;
}

static void test_host_name_helo(void **state)
{
    (void)state;
    char buf[1024];
    size_t n = received_line(buf, sizeof buf, "mx.example", "192.0.2.7", "relay.test", "QID1", WHEN);
    assert_string_equal(buf, "Received: from mx.example ([192.0.2.7])\r\n"
                             "\tby relay.test (milter-nexthop) with ESMTP id QID1;\r\n"
                             "\tTue, 01 Dec 2026 10:00:00 +0000\r\n");
    assert_int_equal(n, strlen(buf));
}

static void test_untrusted_helo(void **state)
{
    (void)state;
    char buf[1024];
    const char *bad[] = { "evil(x).example", "mx.example\r\nRCPT TO:<x>", "", "a b", NULL };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        received_line(buf, sizeof buf, bad[i], "192.0.2.7", "relay.test", "QID1", WHEN);
        assert_int_equal(strncmp(buf, "Received: from unknown ([192.0.2.7])\r\n", 38), 0);
    }
    received_line(buf, sizeof buf, "[192.0.2.7]", "192.0.2.7", "relay.test", "QID1", WHEN);
    assert_int_equal(strncmp(buf, "Received: from [192.0.2.7] ([192.0.2.7])\r\n", 42), 0);
}

static void test_addresses_and_ids(void **state)
{
    (void)state;
    char buf[1024];
    received_line(buf, sizeof buf, "mx.example", "2001:db8::7", "relay.test", NULL, WHEN);
    assert_non_null(strstr(buf, "from mx.example ([IPv6:2001:db8::7])\r\n"));
    assert_non_null(strstr(buf, " with ESMTP id -;\r\n"));
    received_line(buf, sizeof buf, "mx.example", "", "", "", WHEN);
    assert_non_null(strstr(buf, "from mx.example (local)\r\n\tby localhost (milter-nexthop)"));
    /* cut, never overrun */
    assert_int_equal(received_line(buf, 20, "mx.example", "192.0.2.7", "relay.test", "Q", WHEN), 19);
    assert_int_equal(strlen(buf), 19);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_name_helo),
        cmocka_unit_test(test_untrusted_helo),
        cmocka_unit_test(test_addresses_and_ids),
    };
    return cmocka_run_group_tests(tests, utc, NULL);
}
