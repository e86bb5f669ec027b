/*
 * test_lookup.c - lookups through a remote's runtime (common/remote/lookup.c,
 * remote_set.c, catchall.c) against the scripted fake remote: what is
 * cached and what is not (errors never; AUTH successes only, for
 * ttl.auth), catch-all domains learned after one probe, cache keys (AUTH
 * keys hold a salted hash, never the password), what `show` and `flush`
 * see, and a reload carrying a runtime over only when the remote's
 * definition is unchanged. The fake's command log says what reached it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "fake_remote.h"
#include "log.h"
#include "lookup.h"
#include "remote_set.h"
#include "util.h"

static struct remote_def def_for(int port)
{
    struct remote_def d = {
        .id = (char *)"fake",
        .ep = { .name = "fake", .address = (char *)"127.0.0.1", .port = port,
                .protocol = PROTO_LMTP, .timeout_ms = 3000, .tls_enable = false },
        .concurrency = 2, .lookup = true, .catch_all = true, .cache_entries = 100,
        .ttl_positive_ms = 60000, .ttl_negative_ms = 60000, .ttl_stale_ms = 0,
        .ttl_auth_ms = 60000, .limits_errors = 3, .limits_requests = 50,
    };
    return d;
}

static struct remote_set *start(const struct remote_def *d, struct remote_rt **rt_r)
{
    struct remote_set *s = remote_set_create(d, 1, NULL, 0);
    *rt_r = remote_set_find(s, d->id);
    assert_non_null(*rt_r);
    return s;
}

static int ask(struct remote_rt *rt, enum lookup_kind kind, const char *arg, const char *pw,
               struct lookup_info *info)
{
    char err[ERRLEN] = "";
    return lookup_run(rt, kind, arg, pw, "Q1", info, err, sizeof err);
}

static void test_answers_cached_errors_not(void **state)
{
    struct fake f;
    struct remote_rt *rt;
    struct lookup_info info;
    fake_start(&f, "normal", NULL);
    struct remote_def d = def_for(f.port);
    d.catch_all = false;
    struct remote_set *s = start(&d, &rt);
    assert_int_equal(ask(rt, LOOKUP_RCPT, "ok1@example.org", NULL, &info), LOOKUP_YES);
    assert_false(info.cached);
    assert_int_equal(ask(rt, LOOKUP_RCPT, "ok1@example.org", NULL, &info), LOOKUP_YES);
    assert_true(info.cached);
    assert_int_equal(ask(rt, LOOKUP_RCPT, "nobody@example.org", NULL, &info), LOOKUP_NO);
    assert_int_equal(ask(rt, LOOKUP_RCPT, "nobody@example.org", NULL, &info), LOOKUP_NO);
    assert_true(info.cached);
    assert_int_equal(log_count(&f, "RCPT TO:<ok1@example.org>"), 1);
    assert_int_equal(log_count(&f, "RCPT TO:<nobody@example.org>"), 1);
    remote_set_unref(s);
    fake_stop(&f);

    fake_start(&f, "tempfail-rcpt", NULL);
    d = def_for(f.port);
    s = start(&d, &rt);
    assert_int_equal(ask(rt, LOOKUP_RCPT, "ok1@example.org", NULL, &info), LOOKUP_ERROR);
    assert_int_equal(ask(rt, LOOKUP_RCPT, "ok1@example.org", NULL, &info), LOOKUP_ERROR);
    assert_int_equal(log_count(&f, "RCPT TO:<ok1@example.org>"), 2);   /* never cached */
    remote_set_unref(s);
    fake_stop(&f);
}

static void test_catch_all_learned(void **state)
{
    struct fake f;
    struct remote_rt *rt;
    struct lookup_info info;
    fake_start(&f, "normal", NULL);
    struct remote_def d = def_for(f.port);
    struct remote_set *s = start(&d, &rt);
    assert_int_equal(ask(rt, LOOKUP_RCPT, "ok1@catchall.example", NULL, &info), LOOKUP_YES);
    for (int i = 0; i < 100 && log_count_prefix(&f, "RCPT TO:<nexthop-probe-") == 0; i++)
        sleep_ms(50);   /* the probe runs on the remote's own thread */
    assert_int_equal(log_count_prefix(&f, "RCPT TO:<nexthop-probe-"), 1);
    for (int i = 0; i < 100; i++) {   /* its answer is stored just after the reply */
        ask(rt, LOOKUP_RCPT, "anyone@catchall.example", NULL, &info);
        if (info.catch_all)
            break;
        sleep_ms(50);
    }
    assert_true(info.catch_all);
    int before = log_count_prefix(&f, "RCPT TO:");
    assert_int_equal(ask(rt, LOOKUP_RCPT, "someone-else@catchall.example", NULL, &info), LOOKUP_YES);
    assert_true(info.catch_all);
    assert_int_equal(log_count_prefix(&f, "RCPT TO:"), before);   /* not asked */
    /* a domain that refuses the random local part is probed once, and not treated as catch-all */
    assert_int_equal(ask(rt, LOOKUP_RCPT, "ok2@example.org", NULL, &info), LOOKUP_YES);
    for (int i = 0; i < 100 && log_count_prefix(&f, "RCPT TO:<nexthop-probe-") < 2; i++)
        sleep_ms(50);
    assert_int_equal(ask(rt, LOOKUP_RCPT, "nobody@example.org", NULL, &info), LOOKUP_NO);
    assert_false(info.catch_all);
    assert_int_equal(ask(rt, LOOKUP_RCPT, "ok3@example.org", NULL, &info), LOOKUP_YES);
    sleep_ms(200);
    assert_int_equal(log_count_prefix(&f, "RCPT TO:<nexthop-probe-"), 2);
    remote_set_unref(s);
    fake_stop(&f);
}

static void test_auth_cache(void **state)
{
    struct fake f;
    struct remote_rt *rt;
    struct lookup_info info;
    fake_start(&f, "normal", "--auth", "alice@example.org:right", "--mechs", "PLAIN", NULL);
    struct remote_def d = def_for(f.port);
    d.ep.protocol = PROTO_SMTP;
    struct remote_set *s = start(&d, &rt);
    assert_int_equal(ask(rt, LOOKUP_AUTH, "alice@example.org", "right", &info), LOOKUP_YES);
    assert_int_equal(ask(rt, LOOKUP_AUTH, "alice@example.org", "right", &info), LOOKUP_YES);
    assert_true(info.cached);
    assert_int_equal(log_count_prefix(&f, "AUTH PLAIN"), 1);
    assert_int_equal(ask(rt, LOOKUP_AUTH, "alice@example.org", "wrong", &info), LOOKUP_NO);
    assert_int_equal(ask(rt, LOOKUP_AUTH, "alice@example.org", "wrong", &info), LOOKUP_NO);
    assert_false(info.cached);   /* a refused password is never cached */
    assert_int_equal(log_count_prefix(&f, "AUTH PLAIN"), 3);
    remote_set_unref(s);

    d.ttl_auth_ms = 0;           /* ttl.auth = 0: every check asks the remote */
    s = start(&d, &rt);
    assert_null(rt->auth_cache);
    assert_int_equal(ask(rt, LOOKUP_AUTH, "alice@example.org", "right", &info), LOOKUP_YES);
    assert_int_equal(ask(rt, LOOKUP_AUTH, "alice@example.org", "right", &info), LOOKUP_YES);
    assert_false(info.cached);
    assert_int_equal(log_count_prefix(&f, "AUTH PLAIN"), 5);
    remote_set_unref(s);
    fake_stop(&f);
}

static void test_keys(void **state)
{
    struct remote_def d = def_for(1);
    char k1[600], k2[600], k3[600];
    size_t n1 = lookup_key(&d, LOOKUP_RCPT, "Alice@example.org", NULL, k1, sizeof k1);
    assert_int_equal(n1, strlen("r:Alice@example.org"));
    assert_memory_equal(k1, "r:Alice@example.org", n1);
    d.lowercase_localpart = true;
    n1 = lookup_key(&d, LOOKUP_RCPT, "Alice@example.org", NULL, k1, sizeof k1);
    assert_memory_equal(k1, "r:alice@example.org", n1);

    n1 = lookup_key(&d, LOOKUP_AUTH, "alice", "Pass-Word-1", k1, sizeof k1);
    size_t n2 = lookup_key(&d, LOOKUP_AUTH, "alice", "Pass-Word-1", k2, sizeof k2);
    size_t n3 = lookup_key(&d, LOOKUP_AUTH, "alice", "Pass-Word-2", k3, sizeof k3);
    assert_int_equal(n1, strlen("a:alice") + 1 + 64);   /* user, NUL, hex SHA-256 */
    assert_true(n1 == n2 && memcmp(k1, k2, n1) == 0);
    assert_false(n1 == n3 && memcmp(k1, k3, n1) == 0);
    assert_null(memmem(k1, n1, "Pass-Word", 9));
    /* salted: the digest is not the plain SHA-256 of user and password */
    unsigned char plain[32];
    char hex[65];
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, "alice\0Pass-Word-1", 17, plain), 0);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", plain[i]);
    assert_null(memmem(k1, n1, hex, 64));
    assert_int_equal(lookup_key(&d, LOOKUP_RCPT, "x@example.org", NULL, k1, 4), 0);   /* too long */
}

static void test_show_and_forget(void **state)
{
    struct fake f;
    struct remote_rt *rt;
    struct lookup_info info;
    struct lookup_cached c;
    size_t local;
    long shared;
    fake_start(&f, "normal", NULL);
    struct remote_def d = def_for(f.port);
    d.catch_all = false;
    struct remote_set *s = start(&d, &rt);
    ask(rt, LOOKUP_RCPT, "ok1@example.org", NULL, &info);
    ask(rt, LOOKUP_RCPT, "nobody@example.org", NULL, &info);
    ask(rt, LOOKUP_RCPT, "ok1@example.net", NULL, &info);
    lookup_cached(rt, "ok1@example.org", &c);
    assert_int_equal(c.answer, 1);
    assert_string_equal(c.source, "remote");
    assert_true(c.ms_left > 50000 && c.ms_left <= 60000);
    lookup_cached(rt, "nobody@example.org", &c);
    assert_int_equal(c.answer, 0);
    lookup_cached(rt, "unseen@example.org", &c);
    assert_int_equal(c.answer, -1);

    assert_int_equal(lookup_forget(rt, "nobody@example.org", &local, &shared), 0);
    assert_int_equal(local, 1);
    assert_int_equal(shared, 0);   /* cache.redis is off */
    lookup_cached(rt, "nobody@example.org", &c);
    assert_int_equal(c.answer, -1);
    lookup_cached(rt, "ok1@example.org", &c);
    assert_int_equal(c.answer, 1);
    assert_int_equal(ask(rt, LOOKUP_RCPT, "nobody@example.org", NULL, &info), LOOKUP_NO);
    assert_false(info.cached);     /* asked again */

    assert_int_equal(lookup_forget(rt, "@EXAMPLE.org", &local, &shared), 0);
    assert_int_equal(local, 2);
    lookup_cached(rt, "ok1@example.net", &c);
    assert_int_equal(c.answer, 1);
    assert_int_equal(lookup_forget(rt, NULL, &local, &shared), 0);
    assert_int_equal(local, 1);
    lookup_cached(rt, "ok1@example.net", &c);
    assert_int_equal(c.answer, -1);
    remote_set_unref(s);
    fake_stop(&f);
}

static void test_reload_carries_unchanged_remotes(void **state)
{
    struct fake f;
    struct remote_rt *rt, *rt2;
    struct lookup_info info;
    fake_start(&f, "normal", NULL);
    struct remote_def defs[2] = { def_for(f.port), def_for(f.port) };
    defs[1].id = (char *)"other";
    defs[1].ep.name = "other";
    struct remote_set *s1 = remote_set_create(defs, 2, NULL, 0);
    rt = remote_set_find(s1, "fake");
    ask(rt, LOOKUP_RCPT, "ok1@example.org", NULL, &info);

    /* same definitions (a copy, as a new config has): the runtime comes over */
    struct remote_def same = *remote_set_find(s1, "fake")->def;
    struct remote_set *s2 = remote_set_create(&same, 1, s1, 0);
    rt2 = remote_set_find(s2, "fake");
    assert_ptr_equal(rt2, rt);
    assert_true(remote_set_carried(s2, 0));
    assert_null(remote_set_find(s2, "other"));
    remote_set_unref(s1);          /* the old set goes; the carried runtime stays */
    assert_int_equal(ask(rt2, LOOKUP_RCPT, "ok1@example.org", NULL, &info), LOOKUP_YES);
    assert_true(info.cached);

    /* a changed definition starts afresh */
    struct remote_def changed = same;
    changed.ep.timeout_ms = 4000;
    struct remote_set *s3 = remote_set_create(&changed, 1, s2, 0);
    struct remote_rt *rt3 = remote_set_find(s3, "fake");
    assert_ptr_not_equal(rt3, rt2);
    assert_false(remote_set_carried(s3, 0));
    assert_int_equal(ask(rt3, LOOKUP_RCPT, "ok1@example.org", NULL, &info), LOOKUP_YES);
    assert_false(info.cached);
    remote_set_unref(s2);
    remote_set_unref(s3);
    assert_int_equal(log_count(&f, "RCPT TO:<ok1@example.org>"), 2);
    fake_stop(&f);
}

int main(void)
{
    log_init("test_lookup", false, LOG_LVL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_answers_cached_errors_not, stop_leftovers),
        cmocka_unit_test_teardown(test_catch_all_learned, stop_leftovers),
        cmocka_unit_test_teardown(test_auth_cache, stop_leftovers),
        cmocka_unit_test(test_keys),
        cmocka_unit_test_teardown(test_show_and_forget, stop_leftovers),
        cmocka_unit_test_teardown(test_reload_carries_unchanged_remotes, stop_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
