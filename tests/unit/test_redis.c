/*
 * test_redis.c - cache.redis, the fleet's second-level cache
 * (common/remote/redis.c) with a real redis-server on a private unix
 * socket: what one runtime learned, a fresh one (another filter of the
 * fleet) answers from Redis without asking the remote; `show` says where
 * the answer came from; `flush` deletes an address, a domain or all of a
 * remote's keys there too; AUTH answers never reach Redis.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_remote.h"
#include "log.h"
#include "lookup.h"
#include "redis.h"
#include "remote_set.h"
#include "util.h"

static char dir[64], sock[128], spec[140];
static pid_t redis_pid;

static int redis_up(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_redis.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(sock, sizeof sock, "%s/redis.sock", dir);
    snprintf(spec, sizeof spec, "unix:%s", sock);
    redis_pid = fork();
    if (redis_pid == 0) {
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
               "--appendonly", "no", "--dir", dir, "--loglevel", "warning", "--logfile", "redis.log",
               (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {
        struct stat st;
        if (stat(sock, &st) == 0)
            return 0;
        sleep_ms(50);
    }
    fprintf(stderr, "redis-server did not start (tests/run.sh installs it)\n");
    return -1;
}

static int redis_down(void **state)
{
    (void)state;
    char err[ERRLEN];
    redis_cache_configure(NULL, NULL, err, sizeof err);
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
    }
    char log[128];
    snprintf(log, sizeof log, "%s/redis.log", dir);
    unlink(log);
    unlink(sock);
    rmdir(dir);
    return 0;
}

static struct remote_def def_for(int port)
{
    struct remote_def d = {
        .id = (char *)"fake",
        .ep = { .name = "fake", .address = (char *)"127.0.0.1", .port = port,
                .protocol = PROTO_SMTP, .timeout_ms = 3000, .tls_enable = false },
        .concurrency = 2, .lookup = true, .catch_all = false, .cache_entries = 100,
        .ttl_positive_ms = 60000, .ttl_negative_ms = 60000, .ttl_auth_ms = 60000,
        .limits_errors = 3, .limits_requests = 50,
    };
    return d;
}

static int ask(struct remote_set *s, enum lookup_kind kind, const char *arg, const char *pw,
               struct lookup_info *info)
{
    char err[ERRLEN] = "";
    return lookup_run(remote_set_find(s, "fake"), kind, arg, pw, NULL, info, err, sizeof err);
}

static void test_fleet_shares_and_flushes(void **state)
{
    struct fake f;
    struct lookup_info info;
    struct lookup_cached c;
    char err[ERRLEN];
    size_t local;
    long shared;
    assert_int_equal(redis_cache_configure(spec, "t:", err, sizeof err), 0);
    fake_start(&f, "normal", "--auth", "alice@example.org:right", "--mechs", "PLAIN", NULL);
    struct remote_def d = def_for(f.port);

    struct remote_set *a = remote_set_create(&d, 1, NULL, 0);
    assert_int_equal(ask(a, LOOKUP_RCPT, "ok1@example.org", NULL, &info), LOOKUP_YES);
    assert_int_equal(ask(a, LOOKUP_RCPT, "nobody@example.org", NULL, &info), LOOKUP_NO);
    assert_int_equal(ask(a, LOOKUP_RCPT, "ok2@example.net", NULL, &info), LOOKUP_YES);
    assert_int_equal(ask(a, LOOKUP_AUTH, "alice@example.org", "right", &info), LOOKUP_YES);

    /* another filter of the fleet: an empty local cache, the answers come from Redis */
    struct remote_set *b = remote_set_create(&d, 1, NULL, 0);
    assert_int_equal(ask(b, LOOKUP_RCPT, "ok1@example.org", NULL, &info), LOOKUP_YES);
    assert_true(info.cached);
    assert_int_equal(ask(b, LOOKUP_RCPT, "nobody@example.org", NULL, &info), LOOKUP_NO);
    assert_int_equal(log_count(&f, "RCPT TO:<ok1@example.org>"), 1);
    assert_int_equal(log_count(&f, "RCPT TO:<nobody@example.org>"), 1);
    lookup_cached(remote_set_find(b, "fake"), "ok1@example.org", &c);
    assert_int_equal(c.answer, 1);
    assert_string_equal(c.source, "redis");
    /* AUTH never goes to Redis: b asks the remote itself */
    assert_int_equal(ask(b, LOOKUP_AUTH, "alice@example.org", "right", &info), LOOKUP_YES);
    assert_false(info.cached);

    /* flush one address: gone locally (1) and from Redis (1); a third filter asks the remote */
    assert_int_equal(lookup_forget(remote_set_find(a, "fake"), "nobody@example.org", &local, &shared), 0);
    assert_int_equal(local, 1);
    assert_int_equal(shared, 1);
    struct remote_set *c3 = remote_set_create(&d, 1, NULL, 0);
    assert_int_equal(ask(c3, LOOKUP_RCPT, "nobody@example.org", NULL, &info), LOOKUP_NO);
    assert_int_equal(log_count(&f, "RCPT TO:<nobody@example.org>"), 2);
    /* flush a domain, then everything of the remote */
    assert_int_equal(lookup_forget(remote_set_find(a, "fake"), "@example.org", &local, &shared), 0);
    assert_int_equal(shared, 2);   /* ok1@ and nobody@ (stored again by c3) */
    assert_int_equal(lookup_forget(remote_set_find(a, "fake"), NULL, &local, &shared), 0);
    assert_int_equal(shared, 1);   /* ok2@example.net */
    remote_set_unref(a);
    remote_set_unref(b);
    remote_set_unref(c3);
    fake_stop(&f);
}

int main(void)
{
    log_init("test_redis", false, LOG_LVL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fleet_shares_and_flushes, stop_leftovers),
    };
    return cmocka_run_group_tests(tests, redis_up, redis_down);
}
