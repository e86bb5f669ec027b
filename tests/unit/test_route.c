/*
 * test_route.c - common/policy/route.c: the next hop and action of each
 * recipient (rules, <Postmaster>, unverified recipients, a list lookup
 * that fails while planning), and relaying: one transaction per next hop,
 * each recipient's reply kept as code, enhanced code and text, and the
 * outcome - discard, continue, reject, and a failure under each
 * routing.on-tempfail - against scripted LMTP next hops
 * (tests/lib/fakeserver.py), a next hop that is down, a next hop the
 * remote set does not run, and a message that was not spooled.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_remote.h"
#include "log.h"
#include "policy_fixture.h"
#include "route.h"
#include "runtime.h"
#include "spool.h"
#include "util.h"

#define REMOTE(id) \
    id " = { address = \"127.0.0.1\"; port = %d; protocol = \"lmtp\"; timeout = \"5s\"; tls = { enable = false; }; };"

/* fake.test and down.test to remote one, two.test to remote two; hold.test is quarantined. */
#define ROUTES                                                                                  \
    "queue = { outbound = { next-hop = ( { if = \"rcpt-domain\"; eq = \"two.test\"; then = \"two\"; }," \
    "  { if = \"rcpt-domain\"; ends-with = \".test\"; then = \"one\"; }, { else = false; } ); }; };\n" \
    "routing = { action = ( { if = \"rcpt-domain\"; eq = \"header.test\"; then = \"header\"; },"     \
    "  { if = \"rcpt-domain\"; eq = \"hold.test\"; then = \"quarantine\"; }, { else = \"relay\"; } );" \
    "  on-tempfail = \"%s\"; timeout = \"10s\"; };\n"

static struct nh_runtime *run;
static struct route_rcpt rcpts[8];
static size_t n_rcpts;
static struct spool *spool;

/* Forgets the recipients, the spool and the config of a case. */
static void reset(void)
{
    for (size_t i = 0; i < n_rcpts; i++)
        free(rcpts[i].raw);
    n_rcpts = 0;
    if (spool)
        spool_destroy(spool);
    spool = NULL;
    runtime_unref(run);
    run = NULL;
}

static int teardown(void **state)
{
    reset();
    return stop_leftovers(state);
}

/* Remotes one and two (LMTP on these ports) and the ROUTES rules. */
static struct nh_runtime *routes(int one, int two, const char *on_tempfail)
{
    return fixture_runtime("remote = { " REMOTE("one") " " REMOTE("two") " };\n" ROUTES, one, two,
                           on_tempfail);
}

static void add(const char *addr, bool unverified)
{
    struct route_rcpt *r = &rcpts[n_rcpts++];
    memset(r, 0, sizeof *r);
    r->raw = xstrdup(addr);
    r->unverified = unverified;
    snprintf(r->addr, sizeof r->addr, "%s", addr);
}

static struct route_rcpt *find(const char *addr)
{
    for (size_t i = 0; i < n_rcpts; i++)
        if (strcmp(rcpts[i].addr, addr) == 0)
            return &rcpts[i];
    fail_msg("no recipient %s", addr);
    return NULL;
}

static struct route_msg planned(void)
{
    char err[ERRLEN] = "";
    struct rule_vars v = { { 0 } };
    struct route_msg m = { rcpts, n_rcpts, "s@example.net", "QROUTE", NULL };
    struct list_env env = runtime_env(run, "QROUTE");
    v.v[RV_SENDER] = "s@example.net";
    assert_int_equal(route_plan(&run->cfg->policy, &env, &v, &m, err, sizeof err), 0);
    if (spool)
        spool_destroy(spool);
    spool = spool_create(1 << 16);
    assert_int_equal(spool_write(spool, "Subject: route\r\n\r\nbody\r\n", 24, err, sizeof err), 0);
    m.spool = spool;
    return m;
}

static const char *hop_of(const char *addr)
{
    const struct route_rcpt *r = find(addr);
    return r->hop ? r->hop->id : "false";
}

static void test_plan(void **state)
{
    (void)state;
    char reason[512];
    int port = fixture_closed_port();
    run = routes(port, port, "quarantine");
    add("a@fake.test", false);
    add("b@two.test", false);
    add("c@header.test", false);
    add("d@elsewhere.example", false);
    add("Postmaster", false);
    add("e@fake.test", true);   /* accepted without a "yes": left to the MTA */
    struct route_msg m = planned();
    assert_string_equal(hop_of("a@fake.test"), "one");
    assert_int_equal(find("a@fake.test")->action, ACTION_RELAY);
    assert_string_equal(hop_of("b@two.test"), "two");
    assert_string_equal(hop_of("c@header.test"), "one");
    assert_int_equal(find("c@header.test")->action, ACTION_HEADER);
    assert_string_equal(hop_of("d@elsewhere.example"), "false");
    assert_string_equal(hop_of("Postmaster"), "false");
    assert_string_equal(hop_of("e@fake.test"), "false");
    assert_true(route_needs_body(&m));
    assert_false(route_wants_quarantine(&m, reason, sizeof reason));

    add("f@hold.test", false);
    m = planned();
    assert_true(route_wants_quarantine(&m, reason, sizeof reason));
    assert_string_equal(reason, "routing.action = quarantine for <f@hold.test> (next hop one)");
}

static void test_plan_lookup_failure(void **state)
{
    (void)state;
    char err[ERRLEN] = "";
    struct rule_vars v = { { 0 } };
    int port = fixture_closed_port();
    /* next-hop keyed on a remote list whose host is down: the condition is false, and said so */
    run = fixture_runtime("remote = { one = { address = \"127.0.0.1\"; port = %d; protocol = \"lmtp\";"
                          " lookup = true; timeout = \"5s\"; tls = { enable = false; }; }; };\n"
                          "queue = { outbound = { next-hop = ( { if = \"rcpt\"; in-list = \"remote/one\";"
                          " then = \"one\"; }, { else = false; } ); }; };", port);
    add("a@fake.test", false);
    struct route_msg m = { rcpts, n_rcpts, "", "QROUTE", NULL };
    struct list_env env = runtime_env(run, "QROUTE");
    assert_int_equal(route_plan(&run->cfg->policy, &env, &v, &m, err, sizeof err), -1);
    assert_string_equal(hop_of("a@fake.test"), "false");
    assert_non_null(strstr(err, "refused"));
}

/* Relays what planned() gives to the fakes; returns the outcome. */
static struct route_result relay(struct route_msg *m)
{
    struct route_result res;
    route_relay(&run->cfg->policy, run->remotes, m, NULL, NULL, &res);
    return res;
}

static void test_relay_outcomes(void **state)
{
    (void)state;
    struct fake one, two;
    fake_start(&one, "normal", NULL);
    fake_start(&two, "normal", NULL);
    run = routes(one.port, two.port, "quarantine");

    /* all delivered, over one transaction per next hop */
    add("ok1@fake.test", false);
    add("ok2@fake.test", false);
    add("ok3@two.test", false);
    struct route_msg m = planned();
    struct route_result res = relay(&m);
    assert_int_equal(res.outcome, ROUTE_CONTINUE);   /* never a discard: the MTA may hold bcc recipients */
    assert_int_equal(res.delivered, 3);
    assert_int_equal(log_count(&one, "DATA"), 1);
    assert_int_equal(log_count(&two, "DATA"), 1);
    assert_int_equal(find("ok3@two.test")->code, 250);
    assert_int_equal(find("ok3@two.test")->reply.code, 250);
    assert_string_equal(find("ok3@two.test")->reply.xcode, "2.0.0");
    assert_string_equal(find("ok3@two.test")->reply.text, "<ok3@two.test> Saved");
    reset();

    /* delivered, plus a recipient that is the MTA's */
    run = routes(one.port, two.port, "quarantine");
    add("ok4@fake.test", false);
    add("x@elsewhere.example", false);
    m = planned();
    res = relay(&m);
    assert_int_equal(res.outcome, ROUTE_CONTINUE);
    assert_int_equal(res.delivered, 1);
    assert_int_equal(find("x@elsewhere.example")->code, 0);
    reset();

    /* every recipient refused for good: reject with the first one's reply */
    run = routes(one.port, two.port, "quarantine");
    add("okperm1@fake.test", false);
    add("okperm2@two.test", false);
    m = planned();
    res = relay(&m);
    assert_int_equal(res.outcome, ROUTE_REJECT);
    assert_int_equal(res.reply.code, 552);
    assert_string_equal(res.reply.xcode, "5.2.2");
    assert_string_equal(res.reply.text, "<okperm1@fake.test> Over quota");
    assert_int_equal(res.delivered, 0);
    fake_stop(&one);
    fake_stop(&two);
}

/* One delivered and one deferred recipient: the outcome is routing.on-tempfail's. */
static void test_on_tempfail(void **state)
{
    (void)state;
    static const struct { const char *choice; enum route_outcome outcome; } cases[] = {
        { "quarantine", ROUTE_QUARANTINE }, { "tempfail", ROUTE_TEMPFAIL }, { "accept", ROUTE_CONTINUE },
    };
    struct fake one;
    fake_start(&one, "normal", NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run = routes(one.port, one.port, cases[i].choice);
        add("ok5@fake.test", false);
        add("oktemp5@fake.test", false);
        struct route_msg m = planned();
        struct route_result res = relay(&m);
        assert_int_equal(res.outcome, cases[i].outcome);
        assert_int_equal(res.delivered, 1);
        assert_string_equal(res.reason, "relay to one failed for <oktemp5@fake.test>: "
                                        "452 4.2.2 <oktemp5@fake.test> Mailbox full");
        assert_int_equal(res.reply.code, 452);
        assert_string_equal(res.reply.text, "<oktemp5@fake.test> Mailbox full");
        reset();
    }
    fake_stop(&one);
}

/* Failures of our own: the recipient gets 451 4.4.2 naming the next hop. */
static void test_relay_failures(void **state)
{
    (void)state;
    int port = fixture_closed_port();
    run = routes(port, port, "tempfail");
    add("ok6@fake.test", false);
    struct route_msg m = planned();
    struct route_result res = relay(&m);   /* the next hop is down */
    assert_int_equal(res.outcome, ROUTE_TEMPFAIL);
    assert_int_equal(find("ok6@fake.test")->code, 451);
    assert_string_equal(find("ok6@fake.test")->reply.xcode, "4.4.2");
    assert_non_null(strstr(find("ok6@fake.test")->reply.text, "next hop one: "));

    find("ok6@fake.test")->code = 0;
    m.spool = NULL;   /* nothing was spooled */
    res = relay(&m);
    assert_string_equal(find("ok6@fake.test")->reply.text, "next hop one: message was not spooled");

    /* a remote set that does not run the next hop (e.g. another config's) */
    struct nh_runtime *other = fixture_runtime("milter = { socket = \"unix:/nonexistent\"; };");
    find("ok6@fake.test")->code = 0;
    m.spool = spool;
    route_relay(&run->cfg->policy, other->remotes, &m, NULL, NULL, &res);
    assert_string_equal(find("ok6@fake.test")->reply.text, "next hop one: remote one is not running");
    runtime_unref(other);
}

int main(void)
{
    log_init("test_route", false, LOG_LVL_WARNING);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_plan, teardown),
        cmocka_unit_test_teardown(test_plan_lookup_failure, teardown),
        cmocka_unit_test_teardown(test_relay_outcomes, teardown),
        cmocka_unit_test_teardown(test_on_tempfail, teardown),
        cmocka_unit_test_teardown(test_relay_failures, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
