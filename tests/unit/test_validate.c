/*
 * test_validate.c - common/policy/validate.c, the RCPT verdict: which
 * recipients are validated (lookup.domains, skip-authenticated,
 * <Postmaster>, an addresses rule that says false), against which list,
 * the verdicts exists / unknown / lookup error (inline and SQL lists, a
 * scripted remote and a remote that is down), the answer cache, and -t's
 * dry run that only names the list.
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

#include "addr.h"
#include "fake_remote.h"
#include "log.h"
#include "policy_fixture.h"
#include "runtime.h"
#include "validate.h"

static struct nh_runtime *run;
static char db_dir[64];

static int teardown(void **state)
{
    runtime_unref(run);
    run = NULL;
    if (*db_dir) {
        char path[128];
        snprintf(path, sizeof path, "%s/v.db", db_dir);
        unlink(path);
        rmdir(db_dir);
        db_dir[0] = '\0';
    }
    return stop_leftovers(state);
}

/* The verdict for rcpt (sender authenticated or not, dry run or not). */
static struct rcpt_check check(const char *rcpt, bool authenticated, bool dry_run)
{
    struct rule_vars v = { { 0 } };
    struct rcpt_check chk;
    struct list_env env = runtime_env(run, "QV");
    v.v[RV_RCPT] = rcpt;
    v.v[RV_RCPT_DOMAIN] = addr_domain(rcpt);
    validate_rcpt(&run->cfg->policy, &env, &v, authenticated, dry_run, &chk);
    return chk;
}

static void assert_verdict(const char *rcpt, enum rcpt_verdict verdict, const char *why, const char *list)
{
    struct rcpt_check chk = check(rcpt, false, false);
    if (chk.verdict != verdict || strcmp(chk.why, why) != 0 ||
        strcmp(chk.list ? chk.list : "(none)", list ? list : "(none)") != 0)
        fail_msg("%s: verdict %d why \"%s\" list %s, wanted %d \"%s\" %s (err: %s)", rcpt, chk.verdict,
                 chk.why, chk.list ? chk.list : "(none)", verdict, why, list ? list : "(none)", chk.err);
}

#define INLINE_LISTS                                                                   \
    "list = { domains = [ \"example.org\" ]; users = [ \"alice@example.org\" ]; };\n"

static void test_inline_lists(void **state)
{
    (void)state;
    run = fixture_runtime(INLINE_LISTS "session = { rcpt = { lookup = {"
                          " domains = \"list/domains\"; addresses = \"list/users\"; }; }; };");
    assert_verdict("alice@example.org", RCPT_ACCEPT, "exists", "list/users");
    assert_verdict("bob@example.org", RCPT_UNKNOWN, "unknown", "list/users");
    assert_verdict("carol@other.test", RCPT_ACCEPT, "domain not validated", NULL);
    assert_verdict("Postmaster", RCPT_ACCEPT, "postmaster (RFC 5321 4.5.1)", NULL);
    assert_verdict("POSTMASTER", RCPT_ACCEPT, "postmaster (RFC 5321 4.5.1)", NULL);

    /* skip-authenticated (default true): an authenticated sender's recipients are not checked */
    struct rcpt_check chk = check("bob@example.org", true, false);
    assert_int_equal(chk.verdict, RCPT_ACCEPT);
    assert_string_equal(chk.why, "sender authenticated");

    /* -t: the list is named, not asked */
    chk = check("bob@example.org", false, true);
    assert_int_equal(chk.verdict, RCPT_ACCEPT);
    assert_string_equal(chk.why, "would look up");
    assert_string_equal(chk.list, "list/users");
}

static void test_what_is_validated(void **state)
{
    (void)state;
    run = fixture_runtime(INLINE_LISTS);
    assert_verdict("bob@example.org", RCPT_ACCEPT, "no validation configured", NULL);
    runtime_unref(run);
    run = NULL;

    /* no lookup.domains: every domain; skip-authenticated = false: authenticated senders too */
    run = fixture_runtime(INLINE_LISTS "session = { rcpt = { lookup = { addresses = \"list/users\"; };"
                          " skip-authenticated = false; }; };");
    assert_verdict("carol@other.test", RCPT_UNKNOWN, "unknown", "list/users");
    assert_int_equal(check("bob@example.org", true, false).verdict, RCPT_UNKNOWN);
    runtime_unref(run);
    run = NULL;

    /* an addresses rule that says false for a domain */
    run = fixture_runtime(INLINE_LISTS "session = { rcpt = { lookup = { addresses = ("
                          " { if = \"rcpt-domain\"; eq = \"open.test\"; then = false; },"
                          " { else = \"list/users\"; } ); }; }; };");
    assert_verdict("anyone@open.test", RCPT_ACCEPT, "address not validated", NULL);
    assert_verdict("bob@example.org", RCPT_UNKNOWN, "unknown", "list/users");
}

/* A remote list: the answer comes from the scripted host, then from the cache. */
static void test_remote_list(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f, "normal", NULL);
    run = fixture_runtime("remote = { fake = { address = \"127.0.0.1\"; port = %d; protocol = \"lmtp\";"
                          " lookup = true; timeout = \"5s\"; tls = { enable = false; }; }; };\n"
                          "session = { rcpt = { lookup = { addresses = \"remote/fake\"; }; }; };",
                          f.port);
    struct rcpt_check chk = check("ok1@example.org", false, false);
    assert_int_equal(chk.verdict, RCPT_ACCEPT);
    assert_string_equal(chk.why, "exists");
    assert_string_equal(chk.list, "remote/fake");
    assert_false(chk.cached);
    chk = check("ok1@example.org", false, false);
    assert_true(chk.cached);
    assert_int_equal(log_count(&f, "RCPT TO:<ok1@example.org>"), 1);   /* asked once */

    chk = check("nobody@example.org", false, false);
    assert_int_equal(chk.verdict, RCPT_UNKNOWN);
    assert_string_equal(chk.why, "unknown");

    chk = check("nobody2@example.org", false, true);   /* dry run: never asked */
    assert_string_equal(chk.why, "would look up");
    assert_int_equal(log_count(&f, "RCPT TO:<nobody2@example.org>"), 0);
    fake_stop(&f);
}

static void test_remote_down(void **state)
{
    (void)state;
    run = fixture_runtime("remote = { fake = { address = \"127.0.0.1\"; port = %d; protocol = \"lmtp\";"
                          " lookup = true; timeout = \"5s\"; tls = { enable = false; }; }; };\n"
                          "session = { rcpt = { lookup = { addresses = \"remote/fake\"; }; }; };",
                          fixture_closed_port());
    struct rcpt_check chk = check("alice@example.org", false, false);
    assert_int_equal(chk.verdict, RCPT_TEMPFAIL);   /* never an answer */
    assert_string_equal(chk.why, "lookup failed");
    assert_non_null(strstr(chk.err, "refused"));
}

#define SQL_DB                                                                   \
    "database = { sql = { type = \"sqlite\"; path = \"%s\"; lookup = {"              \
    " domains = \"SELECT 1 FROM d WHERE name = ?\";"                                 \
    " users = \"SELECT 1 FROM u WHERE name = ?\"; }; }; };\n"

/* SQL lists whose table disappears after load: each rule or list failure is a lookup error. */
static void test_sql_failures(void **state)
{
    (void)state;
    char path[128];
    snprintf(db_dir, sizeof db_dir, "/tmp/test_validate.XXXXXX");
    assert_non_null(mkdtemp(db_dir));
    snprintf(path, sizeof path, "%s/v.db", db_dir);
    fixture_sql(path, "CREATE TABLE d (name TEXT); INSERT INTO d VALUES ('example.org');"
                   "CREATE TABLE u (name TEXT); INSERT INTO u VALUES ('alice@example.org');");
    run = fixture_runtime(SQL_DB "session = { rcpt = { lookup = {"
                          " domains = \"sql/domains\"; addresses = \"sql/users\"; }; }; };", path);
    assert_verdict("alice@example.org", RCPT_ACCEPT, "exists", "sql/users");
    assert_verdict("bob@example.org", RCPT_UNKNOWN, "unknown", "sql/users");
    fixture_sql(path, "DROP TABLE u;");
    assert_verdict("alice@example.org", RCPT_TEMPFAIL, "lookup failed", "sql/users");
    fixture_sql(path, "DROP TABLE d;");
    assert_verdict("alice@example.org", RCPT_TEMPFAIL, "domain lookup failed", NULL);
    runtime_unref(run);
    run = NULL;

    /* the same failure inside a rule's in-list */
    fixture_sql(path, "CREATE TABLE d (name TEXT); INSERT INTO d VALUES ('example.org');"
                   "CREATE TABLE u (name TEXT);");
    run = fixture_runtime(SQL_DB "list = { users = [ \"alice@example.org\" ]; };\n"
                          "session = { rcpt = { lookup = {"
                          " domains = ( { if = \"rcpt-domain\"; in-list = \"sql/domains\"; then = \"sql/domains\"; },"
                          "             { else = false; } );"
                          " addresses = ( { if = \"rcpt-domain\"; in-list = \"sql/domains\"; then = \"list/users\"; },"
                          "               { else = false; } ); }; }; };", path);
    assert_verdict("alice@example.org", RCPT_ACCEPT, "exists", "list/users");
    fixture_sql(path, "DROP TABLE d;");
    struct rcpt_check chk = check("alice@example.org", false, false);
    assert_int_equal(chk.verdict, RCPT_TEMPFAIL);
    assert_string_equal(chk.why, "domain rule lookup failed");
    assert_non_null(strstr(chk.err, "no such table: d"));
}

int main(void)
{
    log_init("test_validate", false, LOG_LVL_WARNING);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_inline_lists, teardown),
        cmocka_unit_test_teardown(test_what_is_validated, teardown),
        cmocka_unit_test_teardown(test_remote_list, teardown),
        cmocka_unit_test_teardown(test_remote_down, teardown),
        cmocka_unit_test_teardown(test_sql_failures, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
