/*
 * test_rcpt.c - session.rcpt.mode (enforce | report) and
 * session.rcpt.on-error (tempfail | accept), as common/policy/rcpt.c
 * answers RCPT TO through message.c, against a scripted LMTP store
 * (tests/lib/fakeserver.py: RCPT "ok*" exists, others are unknown; no
 * SMTPUTF8 unless asked) or a store that is down (a closed port):
 *   report mode        550 5.1.1 -> accepted, logged result=would-reject
 *                      451 4.4.3 -> accepted, logged result=would-tempfail
 *                      553 5.6.7 -> accepted, logged result=would-reject
 *                      501 5.1.3 -> still refused (syntax is always enforced)
 *   on-error = accept  lookup error -> accepted, logged result=accept-on-error;
 *                      an unknown user still gets 550 5.1.1
 *   defaults           451 4.4.3, 550 5.1.1, 553 5.6.7, mode=report never logged
 *   rules              report for one domain, enforce for the other
 *   metric             nexthop_rcpt_unenforced_total{result} counts each
 *   end of message     a recipient accepted that way gets no next hop of
 *                      ours: the MTA delivers it by its own route
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_remote.h"
#include "log.h"
#include "message.h"
#include "metrics.h"
#include "policy_fixture.h"
#include "runtime.h"

/* fake.test and report.test are validated at the store and relayed there. */
#define CONF                                                                                       \
    "remote = { fake = { address = \"127.0.0.1\"; port = %d; protocol = \"lmtp\"; lookup = true;" \
    "                    timeout = \"5s\"; tls = { enable = false; }; }; };\n"                      \
    "list = { local = [ \"fake.test\", \"report.test\" ]; };\n"                                    \
    "session = { rcpt = { lookup = { domains = \"list/local\"; addresses = \"remote/fake\"; };\n"  \
    "                     %s }; };\n"                                                              \
    "queue = { outbound = { next-hop = ( { if = \"rcpt-domain\"; in-list = \"list/local\";"        \
    "                                      then = \"fake\"; }, { else = false; } ); }; };\n"        \
    "routing = { action = \"relay\"; timeout = \"10s\"; };\n"

#define REPORT "mode = \"report\";"
#define ON_ERROR_ACCEPT "on-error = \"accept\";"
#define REPORT_FOR_REPORT_TEST                                                                     \
    "mode = ( { if = \"rcpt-domain\"; eq = \"report.test\"; then = \"report\"; },"                  \
    "         { else = \"enforce\"; } );"

static const struct client_info client = { "192.0.2.7", "127.0.0.1", "mx.example", "smtpd" };

static struct {
    struct fake fake;
    struct nh_runtime *run;
    struct message *msg;
} fx;

static int setup(void **state)
{
    (void)state;
    metrics_reset();
    log_set_level(LOG_LVL_INFO);
    return 0;
}

static int teardown(void **state)
{
    message_free(fx.msg);
    runtime_unref(fx.run);
    memset(&fx, 0, sizeof fx);
    return stop_leftovers(state);
}

/* The config with `session` inside session.rcpt, against a live store (or a down one). */
static void start(const char *session, bool store_up)
{
    int port = fixture_closed_port();
    if (store_up) {
        fake_start(&fx.fake, "normal", NULL);
        port = fx.fake.port;
    }
    fx.run = fixture_runtime(CONF, port, session);
    struct answer a;
    char *args[] = { (char *)"<s@example.net>", NULL };
    fx.msg = message_begin(&fx.run->cfg->policy, fx.run->remotes, &client, args, "", &a);
    assert_int_equal(a.reply.code, 0);
    message_set_queue_id(fx.msg, "QR");
}

static void rcpt(const char *to, struct answer *a)
{
    char *args[] = { (char *)to, NULL };
    message_rcpt(fx.msg, args, a);
}

static void assert_reply(const struct reply *r, int code, const char *xcode, const char *text)
{
    if (r->code != code || strcmp(r->xcode, xcode) != 0 || strcmp(r->text, text) != 0)
        fail_msg("reply \"%d %s %s\", wanted \"%d %s %s\"", r->code, r->xcode, r->text, code, xcode,
                 text);
}

static void assert_accepted(const struct answer *a)
{
    if (a->reply.code != 0)
        fail_msg("refused with \"%d %s %s\" (log: %s)", a->reply.code, a->reply.xcode, a->reply.text,
                 a->log);
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle))
        fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

static void assert_lacks(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle))
        fail_msg("\"%s\" contains \"%s\"", haystack, needle);
}

/* The value of nexthop_rcpt_unenforced_total{result="..."} in /metrics. */
static long unenforced(const char *result)
{
    size_t len = 0;
    char key[128];
    char *text = metrics_render(NULL, 0, &len);
    assert_non_null(text);
    snprintf(key, sizeof key, "nexthop_rcpt_unenforced_total{result=\"%s\"} ", result);
    const char *p = strstr(text, key);
    long n = p ? strtol(p + strlen(key), NULL, 10) : -1;
    free(text);
    return n;
}

/* End of message: the recipient addr was not relayed by us (left to the MTA, kept in its copy). */
static void assert_left_to_mta(const char *addr)
{
    message_header(fx.msg, "Subject", "left");
    message_eoh(fx.msg);
    message_body(fx.msg, "body\r\n", 6);
    const struct eom_result *r = message_eom(fx.msg, NULL, NULL);
    assert_int_equal(r->reply.code, 0);
    for (size_t i = 0; i < r->n_rcpts; i++)
        if (strcmp(r->rcpts[i].addr, addr) == 0) {
            assert_int_equal(r->rcpts[i].code, 0);
            assert_false(r->rcpts[i].delete_from_mta);
            return;
        }
    fail_msg("no recipient %s in the result", addr);
}

/* ---------------------------------------------------------------- enforce (the default) */

static void test_enforce_refuses(void **state)
{
    (void)state;
    struct answer a;
    start("", true);
    rcpt("<nobody@fake.test>", &a);
    assert_reply(&a.reply, 550, "5.1.1", "Recipient address rejected: User unknown");
    assert_contains(a.log, "rcpt: queue=QR rcpt=<nobody@fake.test> list=remote/fake result=reject code=550 ");
    assert_lacks(a.log, "mode=report");
    rcpt("<j\xc3\xb6rg@fake.test>", &a);   /* the store offers no SMTPUTF8 */
    assert_reply(&a.reply, 553, "5.6.7", "Non-ASCII address not supported by the mail store");
    assert_contains(a.log, "result=reject code=553 ");
    assert_int_equal(unenforced("would-reject"), 0);
    assert_int_equal(unenforced("would-tempfail"), 0);
    assert_int_equal(unenforced("accept-on-error"), 0);
}

static void test_enforce_lookup_error(void **state)
{
    (void)state;
    struct answer a;
    start("", false);
    rcpt("<ok1@fake.test>", &a);
    assert_reply(&a.reply, 451, "4.4.3", "Recipient address verification unavailable, try again later");
    assert_contains(a.log, "rcpt: queue=QR rcpt=<ok1@fake.test> result=tempfail code=451 why=\"lookup failed: ");
    assert_int_equal(unenforced("accept-on-error"), 0);
}

/* ---------------------------------------------------------------- report */

static void test_report_unknown_is_accepted(void **state)
{
    (void)state;
    struct answer a;
    start(REPORT, true);
    rcpt("<nobody@fake.test>", &a);
    assert_accepted(&a);
    assert_int_equal(a.log_level, LOG_LVL_WARNING);   /* seen with milter.log.level = warning */
    assert_contains(a.log, "rcpt: queue=QR rcpt=<nobody@fake.test> list=remote/fake result=would-reject code=550 ");
    assert_contains(a.log, " mode=report");
    rcpt("<ok1@fake.test>", &a);   /* an existing user: as in enforce mode */
    assert_accepted(&a);
    assert_int_equal(unenforced("would-reject"), 1);
    assert_int_equal(log_count(&fx.fake, "RCPT TO:<nobody@fake.test>"), 1);   /* really asked */
    assert_left_to_mta("nobody@fake.test");   /* no next hop of ours: the MTA decides */
}

static void test_report_lookup_error_is_accepted(void **state)
{
    (void)state;
    struct answer a;
    start(REPORT, false);
    rcpt("<ok1@fake.test>", &a);
    assert_accepted(&a);
    assert_int_equal(a.log_level, LOG_LVL_WARNING);
    assert_contains(a.log, "rcpt: queue=QR rcpt=<ok1@fake.test> result=would-tempfail code=451 why=\"lookup failed: ");
    assert_contains(a.log, " mode=report");
    rcpt("<ok2@fake.test>", &a);
    assert_accepted(&a);
    assert_int_equal(unenforced("would-tempfail"), 2);
    assert_int_equal(unenforced("would-reject"), 0);
}

static void test_report_utf8_without_smtputf8(void **state)
{
    (void)state;
    struct answer a;
    start(REPORT, true);
    rcpt("<j\xc3\xb6rg@fake.test>", &a);
    assert_accepted(&a);
    assert_contains(a.log, "rcpt: queue=QR rcpt=<j\xc3\xb6rg@fake.test> list=remote/fake result=would-reject code=553 ");
    assert_int_equal(unenforced("would-reject"), 1);
}

static void test_syntax_refused_in_both_modes(void **state)
{
    (void)state;
    const char *modes[] = { "", REPORT, ON_ERROR_ACCEPT };
    for (size_t i = 0; i < 3; i++) {
        struct answer a;
        start(modes[i], true);
        rcpt("<bad address@fake.test>", &a);
        assert_reply(&a.reply, 501, "5.1.3", "Bad recipient address syntax");
        assert_contains(a.log, "result=reject why=");
        rcpt("<test>", &a);   /* no domain */
        assert_reply(&a.reply, 501, "5.1.3", "Bad recipient address syntax");
        assert_int_equal(log_count_prefix(&fx.fake, "RCPT TO:"), 0);
        teardown(state);
    }
    assert_int_equal(unenforced("would-reject"), 0);
}

/* ---------------------------------------------------------------- on-error */

static void test_on_error_accept(void **state)
{
    (void)state;
    struct answer a;
    start(ON_ERROR_ACCEPT, false);
    rcpt("<ok1@fake.test>", &a);
    assert_accepted(&a);
    assert_int_equal(a.log_level, LOG_LVL_WARNING);
    assert_contains(a.log, "rcpt: queue=QR rcpt=<ok1@fake.test> result=accept-on-error why=\"lookup failed: ");
    assert_int_equal(unenforced("accept-on-error"), 1);
    assert_int_equal(unenforced("would-tempfail"), 0);
    assert_left_to_mta("ok1@fake.test");   /* not verified: not relayed by us */
}

static void test_on_error_accept_still_refuses_unknown(void **state)
{
    (void)state;
    struct answer a;
    start(ON_ERROR_ACCEPT, true);   /* the store answers: on-error has nothing to do */
    rcpt("<nobody@fake.test>", &a);
    assert_reply(&a.reply, 550, "5.1.1", "Recipient address rejected: User unknown");
    assert_int_equal(unenforced("accept-on-error"), 0);
}

static void test_on_error_accept_beats_report(void **state)
{
    (void)state;
    struct answer a;
    start(REPORT " " ON_ERROR_ACCEPT, false);
    rcpt("<ok1@fake.test>", &a);
    assert_accepted(&a);
    assert_contains(a.log, "result=accept-on-error");
    assert_int_equal(unenforced("accept-on-error"), 1);
    assert_int_equal(unenforced("would-tempfail"), 0);
}

/* ---------------------------------------------------------------- per domain */

static void test_report_per_domain(void **state)
{
    (void)state;
    struct answer a;
    start(REPORT_FOR_REPORT_TEST, true);
    rcpt("<nobody@report.test>", &a);
    assert_accepted(&a);
    assert_contains(a.log, "rcpt=<nobody@report.test> list=remote/fake result=would-reject code=550 ");
    rcpt("<nobody@fake.test>", &a);
    assert_reply(&a.reply, 550, "5.1.1", "Recipient address rejected: User unknown");
    assert_contains(a.log, "rcpt=<nobody@fake.test> list=remote/fake result=reject code=550 ");
    assert_int_equal(unenforced("would-reject"), 1);
}

static void test_on_error_per_domain(void **state)
{
    (void)state;
    struct answer a;
    start("on-error = ( { if = \"rcpt-domain\"; eq = \"report.test\"; then = \"accept\"; },"
          "             { else = \"tempfail\"; } );",
          false);
    rcpt("<ok1@report.test>", &a);
    assert_accepted(&a);
    assert_contains(a.log, "result=accept-on-error");
    rcpt("<ok1@fake.test>", &a);
    assert_reply(&a.reply, 451, "4.4.3", "Recipient address verification unavailable, try again later");
    assert_int_equal(unenforced("accept-on-error"), 1);
}

int main(void)
{
    log_init("test_rcpt", false, LOG_LVL_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enforce_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enforce_lookup_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_unknown_is_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_lookup_error_is_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_utf8_without_smtputf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_refused_in_both_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_on_error_accept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_on_error_accept_still_refuses_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_on_error_accept_beats_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_per_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_on_error_per_domain, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
