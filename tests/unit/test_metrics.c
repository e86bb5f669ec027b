/*
 * test_metrics.c - counters and histograms come out of metrics_render() as
 * valid Prometheus text with the numbers that were put in: per remote,
 * cumulative buckets, exact totals under concurrent bumps, and the live
 * cache and pool numbers of a started config.
 */
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cache.h"
#include "config.h"
#include "lookup.h"
#include "pool.h"
#include "runtime.h"
#include "metrics.h"
#include "util.h"

static int reset(void **state)
{
    metrics_reset();
    return 0;
}

/* The value of the sample whose line starts with `series ` ("name{labels}"); -1 when absent. */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return atof(p + n + 1);
    return -1;
}

/* Renders with the live numbers of run's remotes (run may be NULL). */
static char *render(const struct nh_runtime *run)
{
    size_t len = 0, n = remote_set_size(run ? run->remotes : NULL);
    struct metrics_remote_live live[8];
    assert_true(n <= 8);
    if (run)
        remote_set_live(run->remotes, live);
    char *text = metrics_render(live, n, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

static void test_lookup_counters(void **state)
{
    metrics_lookup("lmtp", "rcpt", LOOKUP_YES, "remote", 3);
    metrics_lookup("lmtp", "rcpt", LOOKUP_YES, "cache", 0);
    metrics_lookup("lmtp", "rcpt", LOOKUP_NO, "redis", 1);
    metrics_lookup("lmtp", "rcpt", LOOKUP_ERROR, "remote", 25000);
    metrics_lookup("imap", "auth", LOOKUP_YES, "remote", 40);
    char *t = render(NULL);
    assert_true(value_of(t, "nexthop_lookups_total{remote=\"lmtp\",kind=\"rcpt\",result=\"yes\"}") == 2);
    assert_true(value_of(t, "nexthop_lookups_total{remote=\"lmtp\",kind=\"rcpt\",result=\"no\"}") == 1);
    assert_true(value_of(t, "nexthop_lookups_total{remote=\"lmtp\",kind=\"rcpt\",result=\"error\"}") == 1);
    assert_true(value_of(t, "nexthop_lookups_total{remote=\"lmtp\",kind=\"auth\",result=\"yes\"}") == 0);
    assert_true(value_of(t, "nexthop_lookups_total{remote=\"imap\",kind=\"auth\",result=\"yes\"}") == 1);
    assert_true(value_of(t, "nexthop_lookup_sources_total{remote=\"lmtp\",source=\"remote\"}") == 2);
    assert_true(value_of(t, "nexthop_lookup_sources_total{remote=\"lmtp\",source=\"cache\"}") == 1);
    assert_true(value_of(t, "nexthop_lookup_sources_total{remote=\"lmtp\",source=\"redis\"}") == 1);
    assert_true(value_of(t, "nexthop_lookup_sources_total{remote=\"lmtp\",source=\"stale\"}") == 0);
    free(t);
}

static void test_histogram_is_cumulative(void **state)
{
    long samples[] = { 0, 1, 3, 7, 60000 };
    for (size_t i = 0; i < ARRAY_SIZE(samples); i++)
        metrics_lookup("h", "rcpt", LOOKUP_YES, "remote", samples[i]);
    char *t = render(NULL);
    const char *b = "nexthop_lookup_duration_seconds_bucket{remote=\"h\",le=";
    char series[256];
    struct { const char *le; double want; } rows[] = {
        { "0.001", 2 }, { "0.005", 3 }, { "0.01", 4 }, { "30", 4 }, { "+Inf", 5 },
    };
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        snprintf(series, sizeof series, "%s\"%s\"}", b, rows[i].le);
        assert_true(value_of(t, series) == rows[i].want);
    }
    assert_true(value_of(t, "nexthop_lookup_duration_seconds_count{remote=\"h\"}") == 5);
    assert_true(value_of(t, "nexthop_lookup_duration_seconds_sum{remote=\"h\"}") == 60.011);
    free(t);
}

static void test_relays_events_and_redis(void **state)
{
    int codes[] = { 250, 250, 451, 0, 550 };
    for (size_t i = 0; i < ARRAY_SIZE(codes); i++)
        metrics_relay_rcpt("out", codes[i]);
    metrics_relay_time("out", 120);
    metrics_count(METRICS_AUTHSVC_OK);
    metrics_count(METRICS_AUTHSVC_NO);
    metrics_count(METRICS_AUTHSVC_NO);
    metrics_count(METRICS_REDIS_ERROR);
    metrics_redis("out", METRICS_REDIS_HIT);
    metrics_redis("out", METRICS_REDIS_STORE);
    char *t = render(NULL);
    assert_true(value_of(t, "nexthop_relay_recipients_total{remote=\"out\",result=\"delivered\"}") == 2);
    assert_true(value_of(t, "nexthop_relay_recipients_total{remote=\"out\",result=\"deferred\"}") == 2);
    assert_true(value_of(t, "nexthop_relay_recipients_total{remote=\"out\",result=\"refused\"}") == 1);
    assert_true(value_of(t, "nexthop_relay_duration_seconds_bucket{remote=\"out\",le=\"0.1\"}") == 0);
    assert_true(value_of(t, "nexthop_relay_duration_seconds_bucket{remote=\"out\",le=\"0.25\"}") == 1);
    assert_true(value_of(t, "nexthop_auth_service_requests_total{result=\"ok\"}") == 1);
    assert_true(value_of(t, "nexthop_auth_service_requests_total{result=\"no\"}") == 2);
    assert_true(value_of(t, "nexthop_auth_service_requests_total{result=\"error\"}") == 0);
    assert_true(value_of(t, "nexthop_redis_errors_total") == 1);
    assert_true(value_of(t, "nexthop_redis_requests_total{remote=\"out\",result=\"hit\"}") == 1);
    assert_true(value_of(t, "nexthop_redis_requests_total{remote=\"out\",result=\"miss\"}") == 0);
    free(t);
}

static void test_label_values_are_escaped(void **state)
{
    metrics_lookup("we\"ird\\", "rcpt", LOOKUP_YES, "remote", 1);
    char *t = render(NULL);
    assert_true(value_of(t, "nexthop_lookups_total{remote=\"we\\\"ird\\\\\",kind=\"rcpt\",result=\"yes\"}") == 1);
    free(t);
}

/* Every line is a HELP, a TYPE or a sample of a family whose TYPE came first, declared once. */
static void test_text_format_is_valid(void **state)
{
    metrics_lookup("lmtp", "rcpt", LOOKUP_YES, "remote", 3);
    metrics_relay_rcpt("lmtp", 250);
    char *t = render(NULL);
    regex_t sample_re, type_re;
    assert_int_equal(regcomp(&sample_re,
                             "^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\""
                             "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\")*\\})? [0-9]+(\\.[0-9]+)?$",
                             REG_EXTENDED), 0);
    assert_int_equal(regcomp(&type_re, "^# TYPE ([a-z_]+) (counter|gauge|histogram)$", REG_EXTENDED), 0);
    char families[128][96];
    size_t nf = 0, samples = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        regmatch_t m[2];
        if (strncmp(line, "# HELP ", 7) == 0)
            continue;
        if (regexec(&type_re, line, 2, m, 0) == 0) {
            char name[96];
            snprintf(name, sizeof name, "%.*s", (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
            for (size_t i = 0; i < nf; i++)
                if (strcmp(families[i], name) == 0)
                    fail_msg("family %s declared twice", name);
            assert_true(nf < ARRAY_SIZE(families));
            snprintf(families[nf++], sizeof families[0], "%s", name);
            continue;
        }
        if (regexec(&sample_re, line, 2, m, 0) != 0)
            fail_msg("not a valid sample line: '%s'", line);
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
        bool declared = nf > 0 && (strcmp(families[nf - 1], name) == 0 ||
                                   (strncmp(name, families[nf - 1], strlen(families[nf - 1])) == 0 &&
                                    (strstr(name, "_bucket") || strstr(name, "_sum") || strstr(name, "_count"))));
        if (!declared)
            fail_msg("sample '%s' does not follow its own # TYPE", line);
        samples++;
    }
    assert_true(nf >= 20);
    assert_true(samples > 30);
    regfree(&sample_re);
    regfree(&type_re);
    free(t);
}

#define THREADS 4
#define BUMPS 50000

static void *bumper(void *arg)
{
    const char *names[] = { "a", "b" };
    char own[32];
    snprintf(own, sizeof own, "t%ld", (long)(intptr_t)arg);
    for (int i = 0; i < BUMPS; i++) {
        metrics_lookup(names[i & 1], "rcpt", LOOKUP_YES, "cache", i % 40);
        if (i % 1000 == 0) {   /* many new ids at once: some land in "_other" */
            char id[48];
            snprintf(id, sizeof id, "%s-%d", own, i / 1000);
            metrics_lookup(id, "rcpt", LOOKUP_NO, "remote", 1);
        }
    }
    return NULL;
}

static void test_concurrent_bumps_are_exact(void **state)
{
    pthread_t tid[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&tid[i], NULL, bumper, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(tid[i], NULL);
    char *t = render(NULL);
    double a = value_of(t, "nexthop_lookups_total{remote=\"a\",kind=\"rcpt\",result=\"yes\"}");
    double b = value_of(t, "nexthop_lookups_total{remote=\"b\",kind=\"rcpt\",result=\"yes\"}");
    assert_true(a == THREADS * BUMPS / 2);
    assert_true(b == THREADS * BUMPS / 2);
    assert_true(value_of(t, "nexthop_lookup_duration_seconds_count{remote=\"a\"}") == THREADS * BUMPS / 2);
    /* 4 threads x 50 new ids = 200 > 64 slots: the rest share "_other", none is lost */
    double no_total = 0;
    size_t remotes = 0;
    for (char *p = strstr(t, "kind=\"rcpt\",result=\"no\"} "); p; p = strstr(p + 1, "kind=\"rcpt\",result=\"no\"} ")) {
        no_total += atof(p + strlen("kind=\"rcpt\",result=\"no\"} "));
        remotes++;
    }
    assert_true(no_total == THREADS * (BUMPS / 1000));
    assert_true(remotes <= 64);
    assert_true(value_of(t, "nexthop_lookups_total{remote=\"_other\",kind=\"rcpt\",result=\"no\"}") > 0);
    free(t);
}

/* Cache and pool numbers of a started config: entries, hits, a host marked down. */
static void test_runtime_numbers_of_a_config(void **state)
{
    char path[] = "/tmp/test_metrics.XXXXXX", err[4096];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *conf = "remote = { store = { address = \"127.0.0.1\"; port = 1; protocol = \"lmtp\";\n"
                       "  lookup = true; timeout = \"500ms\"; tls = { enable = false; }; }; };\n";
    assert_int_equal(write(fd, conf, strlen(conf)), (ssize_t)strlen(conf));
    close(fd);
    struct nh_config *cfg = config_load(path, err, sizeof err);
    unlink(path);
    assert_non_null(cfg);
    struct nh_runtime *run = runtime_start(cfg, NULL, 0, err, sizeof err);
    assert_non_null(run);
    struct remote_rt *r = remote_set_find(run->remotes, "store");

    char *t = render(run);
    assert_true(value_of(t, "nexthop_pool_connections_open{remote=\"store\"}") == 0);
    assert_true(value_of(t, "nexthop_remote_down{remote=\"store\"}") == 0);
    assert_true(value_of(t, "nexthop_lookups_total{remote=\"store\",kind=\"rcpt\",result=\"yes\"}") == 0);
    free(t);

    cache_put(r->cache, "k1", 2, true, now_ms());
    cache_put(r->cache, "k2", 2, false, now_ms());
    assert_int_equal(cache_get(r->cache, "k1", 2, now_ms()), 1);
    char reply[256];
    assert_int_equal(pool_lookup(r->pool, LOOKUP_RCPT, "a@example.org", NULL, NULL, reply,
                                 sizeof reply, err, sizeof err), LOOKUP_ERROR);
    t = render(run);
    assert_true(value_of(t, "nexthop_cache_entries{remote=\"store\",answer=\"yes\"}") == 1);
    assert_true(value_of(t, "nexthop_cache_entries{remote=\"store\",answer=\"no\"}") == 1);
    assert_true(value_of(t, "nexthop_cache_hits_total{remote=\"store\",answer=\"yes\"}") == 1);
    assert_true(value_of(t, "nexthop_remote_down{remote=\"store\"}") == 1);
    free(t);
    runtime_unref(run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_lookup_counters, reset),
        cmocka_unit_test_setup(test_histogram_is_cumulative, reset),
        cmocka_unit_test_setup(test_relays_events_and_redis, reset),
        cmocka_unit_test_setup(test_label_values_are_escaped, reset),
        cmocka_unit_test_setup(test_text_format_is_valid, reset),
        cmocka_unit_test_setup(test_concurrent_bumps_are_exact, reset),
        cmocka_unit_test_setup(test_runtime_numbers_of_a_config, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
