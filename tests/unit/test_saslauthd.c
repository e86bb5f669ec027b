/*
 * test_saslauthd.c - the saslauthd wire format: requests as Cyrus SASL
 * writes them parse back to their four fields, partial input asks for
 * more, hostile input is refused, replies round-trip, and a refused or
 * parsed request leaves no password behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "saslauthd.h"

static struct saslauthd_request req;
static char err[512];

static void test_round_trip(void **state)
{
    unsigned char buf[SASLAUTHD_REQUEST_MAX];
    ssize_t n = saslauthd_format_request("alice@dovecot.test", "s3cret", "smtp", "", buf, sizeof buf);
    /* 2+18 + 2+6 + 2+4 + 2+0 */
    assert_int_equal(n, 36);
    assert_int_equal(buf[0], 0);
    assert_int_equal(buf[1], 18);
    assert_int_equal(saslauthd_parse_request(buf, (size_t)n, &req, err, sizeof err), n);
    assert_string_equal(req.login, "alice@dovecot.test");
    assert_string_equal(req.password, "s3cret");
    assert_string_equal(req.service, "smtp");
    assert_string_equal(req.realm, "");
}

/* The bytes as Cyrus SASL's checkpw.c puts them on the wire, written out by hand. */
static void test_hand_written_bytes(void **state)
{
    static const unsigned char wire[] = { 0, 3, 'b', 'o', 'b', 0, 2, 'p', 'w', 0, 4, 's', 'm',
                                          't', 'p', 0, 7, 'e', 'x', '.', 't', 'e', 's', 't' };
    assert_int_equal(saslauthd_parse_request(wire, sizeof wire, &req, err, sizeof err), sizeof wire);
    assert_string_equal(req.login, "bob");
    assert_string_equal(req.password, "pw");
    assert_string_equal(req.realm, "ex.test");
    char user[64];
    assert_int_equal(saslauthd_user(&req, user, sizeof user), 0);
    assert_string_equal(user, "bob@ex.test");
}

static void test_partial_input_wants_more(void **state)
{
    unsigned char buf[256];
    ssize_t n = saslauthd_format_request("alice", "pw", "smtp", "realm", buf, sizeof buf);
    for (size_t cut = 0; cut < (size_t)n; cut++)
        assert_int_equal(saslauthd_parse_request(buf, cut, &req, err, sizeof err), 0);
    assert_int_equal(saslauthd_parse_request(buf, (size_t)n, &req, err, sizeof err), n);
}

static void test_hostile_requests_are_refused(void **state)
{
    unsigned char buf[SASLAUTHD_REQUEST_MAX + 16];
    /* a field longer than saslauthd allows */
    buf[0] = 0x04, buf[1] = 0x01;
    assert_int_equal(saslauthd_parse_request(buf, sizeof buf, &req, err, sizeof err), -1);
    assert_non_null(strstr(err, "longer"));
    /* NUL in the login, CR LF in the login or password, empty login */
    static const unsigned char nul[] = { 0, 3, 'a', 0, 'b', 0, 1, 'p', 0, 0, 0, 0 };
    assert_int_equal(saslauthd_parse_request(nul, sizeof nul, &req, err, sizeof err), -1);
    ssize_t n = saslauthd_format_request("a\r\nb", "pw", "smtp", "", buf, sizeof buf);
    assert_int_equal(saslauthd_parse_request(buf, (size_t)n, &req, err, sizeof err), -1);
    assert_non_null(strstr(err, "login"));
    n = saslauthd_format_request("alice", "pw\r\nA1 LOGOUT", "smtp", "", buf, sizeof buf);
    assert_int_equal(saslauthd_parse_request(buf, (size_t)n, &req, err, sizeof err), -1);
    assert_non_null(strstr(err, "password"));
    n = saslauthd_format_request("", "pw", "smtp", "", buf, sizeof buf);
    assert_int_equal(saslauthd_parse_request(buf, (size_t)n, &req, err, sizeof err), -1);
    /* spaces and any byte but CR/LF/NUL are fine in a password */
    n = saslauthd_format_request("alice", "p w\t\"x\"", "smtp", "", buf, sizeof buf);
    assert_int_equal(saslauthd_parse_request(buf, (size_t)n, &req, err, sizeof err), n);
    assert_string_equal(req.password, "p w\t\"x\"");
}

static void test_no_password_left_behind(void **state)
{
    unsigned char buf[256];
    ssize_t n = saslauthd_format_request("alice", "hunter2", "smtp", "", buf, sizeof buf);
    assert_int_equal(saslauthd_parse_request(buf, (size_t)n, &req, err, sizeof err), n);
    saslauthd_request_clear(&req);
    assert_null(memmem(&req, sizeof req, "hunter2", 7));
    /* a request refused after the password was read is wiped too */
    n = saslauthd_format_request("a\nb", "hunter2", "smtp", "", buf, sizeof buf);
    assert_int_equal(saslauthd_parse_request(buf, (size_t)n, &req, err, sizeof err), -1);
    assert_null(memmem(&req, sizeof req, "hunter2", 7));
    assert_null(strstr(err, "hunter2"));
}

static void test_user_name(void **state)
{
    char user[32];
    snprintf(req.login, sizeof req.login, "alice@dovecot.test");
    snprintf(req.realm, sizeof req.realm, "mx.example");
    assert_int_equal(saslauthd_user(&req, user, sizeof user), 0);
    assert_string_equal(user, "alice@dovecot.test");   /* an address keeps its own domain */
    snprintf(req.login, sizeof req.login, "alice");
    req.realm[0] = '\0';
    assert_int_equal(saslauthd_user(&req, user, sizeof user), 0);
    assert_string_equal(user, "alice");
    snprintf(req.realm, sizeof req.realm, "a-very-long-realm-name.example");
    assert_int_equal(saslauthd_user(&req, user, sizeof user), -1);
}

static void test_replies(void **state)
{
    unsigned char buf[600];
    char text[128];
    ssize_t n = saslauthd_format_reply(true, NULL, buf, sizeof buf);
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "\0\2OK", 4);
    assert_int_equal(saslauthd_parse_reply(buf, (size_t)n, text, sizeof text), 1);
    n = saslauthd_format_reply(false, "authentication failed", buf, sizeof buf);
    assert_int_equal(saslauthd_parse_reply(buf, (size_t)n, text, sizeof text), 0);
    assert_string_equal(text, "NO authentication failed");
    assert_int_equal(saslauthd_parse_reply(buf, (size_t)n - 1, text, sizeof text), -2);
    assert_int_equal(saslauthd_format_reply(true, NULL, buf, 3), -1);
    static const unsigned char junk[] = { 0, 3, 'Y', 'E', 'S' };
    assert_int_equal(saslauthd_parse_reply(junk, sizeof junk, text, sizeof text), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_hand_written_bytes),
        cmocka_unit_test(test_partial_input_wants_more),
        cmocka_unit_test(test_hostile_requests_are_refused),
        cmocka_unit_test(test_no_password_left_behind),
        cmocka_unit_test(test_user_name),
        cmocka_unit_test(test_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
