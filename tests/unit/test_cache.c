/*
 * test_cache.c - unit tests of the lookup cache (common/remote/cache.c): LRU
 * order and bounds, TTLs, errors never cached, single flight,
 * stale-while-refresh, the entries=0/1 edges and a threaded stress run.
 *
 * Threads never call cmocka asserts (they are not thread safe): they
 * record what they saw, and the main thread asserts after joining.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cache.h"
#include "util.h"

#define HOUR_MS (3600 * 1000)

static void put(struct cache *c, const char *key, bool positive, int64_t now)
{
    cache_put(c, key, strlen(key), positive, now);
}

static int get(struct cache *c, const char *key, int64_t now)
{
    return cache_get(c, key, strlen(key), now);
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ---- a scripted remote ---- */

struct remote {
    atomic_int calls;
    atomic_int started;       /* a fetch has begun */
    int answer;               /* 1, 0 or -1 */
    long delay_ms;
    atomic_int *entered;      /* optional: wait until this many callers entered */
    int expect_entered;
    char last_key[128];
};

static int remote_fetch(void *ctx, const char *key, size_t keylen, char *err, size_t errlen)
{
    struct remote *rm = ctx;
    atomic_fetch_add(&rm->calls, 1);
    atomic_store(&rm->started, 1);
    snprintf(rm->last_key, sizeof rm->last_key, "%.*s", (int)keylen, key);
    if (rm->delay_ms)
        sleep_ms(rm->delay_ms);
    /* Let every caller reach the cache before answering, however loaded the machine. */
    while (rm->entered && atomic_load(rm->entered) < rm->expect_entered)
        sleep_ms(1);
    if (rm->entered)
        sleep_ms(20);
    if (rm->answer < 0)
        set_error(err, errlen, "remote down: %s", rm->last_key);
    return rm->answer;
}

static int lookup(struct cache *c, const char *key, struct remote *rm, enum cache_source *src,
                  char *err, size_t errlen)
{
    return cache_lookup(c, key, strlen(key), remote_fetch, rm, src, err, errlen);
}

/* ---- LRU and bounds ---- */

static void test_lru_eviction_order(void **state)
{
    struct cache *c = cache_create(3, HOUR_MS, HOUR_MS, 0);
    put(c, "a", true, 1000);
    put(c, "b", true, 1000);
    put(c, "c", true, 1000);
    assert_int_equal(get(c, "a", 1001), 1);   /* a is now the most recent */
    put(c, "d", true, 1002);                  /* b is the least recent: out */
    assert_int_equal(get(c, "b", 1003), -1);
    assert_int_equal(get(c, "a", 1003), 1);
    assert_int_equal(get(c, "c", 1003), 1);
    assert_int_equal(get(c, "d", 1003), 1);
    put(c, "e", true, 1004);                  /* order now a, c, d: a goes */
    assert_int_equal(get(c, "a", 1005), -1);
    assert_int_equal(get(c, "c", 1005), 1);

    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.evictions, 2);
    assert_int_equal(st.entries_positive, 3);
    assert_int_equal(st.entries_negative, 0);
    cache_destroy(c);
}

static void test_put_renews_recency_and_answer(void **state)
{
    struct cache *c = cache_create(2, HOUR_MS, HOUR_MS, 0);
    put(c, "a", true, 0);
    put(c, "b", true, 0);
    put(c, "a", true, 1);                     /* re-put: a most recent, no growth */
    put(c, "c", true, 2);
    assert_int_equal(get(c, "a", 3), 1);
    assert_int_equal(get(c, "b", 3), -1);

    put(c, "a", false, 4);                    /* the answer changed to no */
    assert_int_equal(get(c, "a", 5), 0);
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.entries_positive, 1);
    assert_int_equal(st.entries_negative, 1);
    cache_destroy(c);
}

static void test_positive_negative_bounds_separate(void **state)
{
    struct cache *c = cache_create(2, HOUR_MS, HOUR_MS, 0);
    char key[32];
    put(c, "known1", true, 0);
    put(c, "known2", true, 0);
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "unknown%d", i);
        put(c, key, false, 1);
    }
    assert_int_equal(get(c, "known1", 2), 1);
    assert_int_equal(get(c, "known2", 2), 1);
    assert_int_equal(get(c, "unknown49", 2), 0);
    assert_int_equal(get(c, "unknown48", 2), 0);
    assert_int_equal(get(c, "unknown47", 2), -1);

    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.entries_positive, 2);
    assert_int_equal(st.entries_negative, 2);
    assert_int_equal(st.evictions, 48);
    cache_destroy(c);
}

/* Large caches are sharded; the total must still be exactly `entries`. */
static void test_sharded_bound_is_exact(void **state)
{
    struct cache *c = cache_create(1000, HOUR_MS, HOUR_MS, 0);
    char key[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "user%d@example.org", i);
        put(c, key, i % 2 == 0, 0);
    }
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.entries_positive, 1000);
    assert_int_equal(st.entries_negative, 1000);
    assert_int_equal(st.evictions, 18000);
    /* the most recent keys are all there */
    for (int i = 19990; i < 20000; i++) {
        snprintf(key, sizeof key, "user%d@example.org", i);
        assert_int_equal(get(c, key, 1), i % 2 == 0 ? 1 : 0);
    }
    cache_clear(c);
    cache_get_stats(c, &st);
    assert_int_equal(st.entries_positive + st.entries_negative, 0);
    assert_int_equal(get(c, "user19999@example.org", 1), -1);
    cache_destroy(c);
}

static void test_binary_keys(void **state)
{
    struct cache *c = cache_create(10, HOUR_MS, HOUR_MS, 0);
    const char k1[] = { 'a', 0, 'b' }, k2[] = { 'a', 0, 'c' };
    cache_put(c, k1, sizeof k1, true, 0);
    assert_int_equal(cache_get(c, k1, sizeof k1, 1), 1);
    assert_int_equal(cache_get(c, k2, sizeof k2, 1), -1);
    assert_int_equal(cache_get(c, k1, 1, 1), -1);      /* "a" is another key */
    cache_destroy(c);
}

/* ---- TTLs ---- */

static void test_ttl_per_kind(void **state)
{
    struct cache *c = cache_create(10, 1000, 100, 0);
    put(c, "yes", true, 5000);
    put(c, "no", false, 5000);
    assert_int_equal(get(c, "no", 5099), 0);
    assert_int_equal(get(c, "no", 5100), -1);
    assert_int_equal(get(c, "yes", 5100), 1);
    assert_int_equal(get(c, "yes", 5999), 1);
    assert_int_equal(get(c, "yes", 6000), -1);

    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.hits_positive, 2);
    assert_int_equal(st.hits_negative, 1);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.entries_positive, 0);     /* expired entries are freed */
    assert_int_equal(st.entries_negative, 0);
    cache_destroy(c);
}

static void test_zero_ttl_not_stored(void **state)
{
    struct cache *c = cache_create(10, HOUR_MS, 0, 0);
    put(c, "no", false, 0);
    assert_int_equal(get(c, "no", 0), -1);
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.entries_negative, 0);
    cache_destroy(c);
}

/* Absurd TTLs from a config must neither wrap around nor crash. */
static void test_extreme_ttls(void **state)
{
    struct cache *c = cache_create(10, INT64_MAX, -5, INT64_MAX);
    int64_t now = now_ms();
    put(c, "forever", true, now);
    put(c, "never", false, now);
    assert_int_equal(get(c, "forever", now + INT64_C(1000000000000)), 1);
    assert_int_equal(get(c, "never", now), -1);
    cache_destroy(c);
}

/* ---- lookups through fetch ---- */

static void test_lookup_caches_answers(void **state)
{
    struct cache *c = cache_create(10, HOUR_MS, HOUR_MS, 0);
    struct remote rm = { .answer = 0 };
    enum cache_source src;
    char err[ERRLEN] = "";

    assert_int_equal(lookup(c, "nobody@example.org", &rm, &src, err, sizeof err), 0);
    assert_int_equal(src, CACHE_SRC_REMOTE);
    assert_string_equal(rm.last_key, "nobody@example.org");
    assert_int_equal(lookup(c, "nobody@example.org", &rm, &src, err, sizeof err), 0);
    assert_int_equal(src, CACHE_SRC_HIT);
    assert_int_equal(atomic_load(&rm.calls), 1);

    rm.answer = 1;
    assert_int_equal(lookup(c, "user@example.org", &rm, &src, err, sizeof err), 1);
    assert_int_equal(src, CACHE_SRC_REMOTE);
    assert_int_equal(lookup(c, "user@example.org", &rm, &src, err, sizeof err), 1);
    assert_int_equal(src, CACHE_SRC_HIT);
    assert_int_equal(atomic_load(&rm.calls), 2);
    assert_int_equal(get(c, "user@example.org", now_ms()), 1);
    cache_destroy(c);
}

static void test_errors_never_cached(void **state)
{
    struct cache *c = cache_create(10, HOUR_MS, HOUR_MS, HOUR_MS);
    struct remote rm = { .answer = -1 };
    enum cache_source src;
    char err[ERRLEN] = "";

    assert_int_equal(lookup(c, "user@example.org", &rm, &src, err, sizeof err), -1);
    assert_string_equal(err, "remote down: user@example.org");
    assert_int_equal(src, CACHE_SRC_REMOTE);
    err[0] = '\0';
    assert_int_equal(lookup(c, "user@example.org", &rm, &src, err, sizeof err), -1);
    assert_string_equal(err, "remote down: user@example.org");
    assert_int_equal(atomic_load(&rm.calls), 2);
    assert_int_equal(get(c, "user@example.org", now_ms()), -1);

    rm.answer = 1;                                /* the remote is back */
    assert_int_equal(lookup(c, "user@example.org", &rm, &src, err, sizeof err), 1);
    assert_int_equal(src, CACHE_SRC_REMOTE);
    assert_int_equal(atomic_load(&rm.calls), 3);
    cache_destroy(c);
}

static int fetch_silent_failure(void *ctx, const char *key, size_t keylen, char *err,
                                size_t errlen)
{
    return -1;
}

static void test_error_without_text_gets_one(void **state)
{
    struct cache *c = cache_create(10, HOUR_MS, HOUR_MS, 0);
    char err[ERRLEN] = "";
    enum cache_source src;
    assert_int_equal(cache_lookup(c, "k", 1, fetch_silent_failure, NULL, &src, err, sizeof err),
                     -1);
    assert_true(strlen(err) > 0);
    cache_destroy(c);
}

/* ---- single flight ---- */

#define FLIGHT_THREADS 32

struct caller {
    struct cache *c;
    struct remote *rm;
    pthread_barrier_t *start;
    atomic_int *entered;
    const char *key;
    int result;
    enum cache_source src;
    char err[ERRLEN];
};

static void *caller_run(void *arg)
{
    struct caller *cl = arg;
    pthread_barrier_wait(cl->start);
    atomic_fetch_add(cl->entered, 1);
    cl->result = lookup(cl->c, cl->key, cl->rm, &cl->src, cl->err, sizeof cl->err);
    return NULL;
}

/* FLIGHT_THREADS callers ask for one missing key while the fetch takes 100 ms. */
static void run_flight(struct cache *c, struct remote *rm, struct caller *cl)
{
    pthread_t th[FLIGHT_THREADS];
    pthread_barrier_t start;
    atomic_int entered = 0;
    pthread_barrier_init(&start, NULL, FLIGHT_THREADS);
    rm->delay_ms = 100;
    rm->entered = &entered;
    rm->expect_entered = FLIGHT_THREADS;
    for (int i = 0; i < FLIGHT_THREADS; i++) {
        cl[i] = (struct caller){ .c = c, .rm = rm, .start = &start, .entered = &entered,
                                 .key = "shared@example.org" };
        assert_int_equal(pthread_create(&th[i], NULL, caller_run, &cl[i]), 0);
    }
    for (int i = 0; i < FLIGHT_THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    rm->entered = NULL;
    rm->delay_ms = 0;
}

static void check_flight(struct caller *cl, int want, const char *want_err)
{
    int remote = 0;
    for (int i = 0; i < FLIGHT_THREADS; i++) {
        assert_int_equal(cl[i].result, want);
        if (want_err)
            assert_string_equal(cl[i].err, want_err);
        if (cl[i].src == CACHE_SRC_REMOTE)
            remote++;
        else
            assert_int_equal(cl[i].src, CACHE_SRC_SHARED);
    }
    assert_int_equal(remote, 1);
}

static void test_single_flight_answer(void **state)
{
    struct cache *c = cache_create(100, HOUR_MS, HOUR_MS, 0);
    struct remote rm = { .answer = 1 };
    struct caller cl[FLIGHT_THREADS];
    run_flight(c, &rm, cl);
    assert_int_equal(atomic_load(&rm.calls), 1);
    check_flight(cl, 1, NULL);
    assert_int_equal(get(c, "shared@example.org", now_ms()), 1);

    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.misses, FLIGHT_THREADS);
    cache_destroy(c);
}

static void test_single_flight_error(void **state)
{
    struct cache *c = cache_create(100, HOUR_MS, HOUR_MS, 0);
    struct remote rm = { .answer = -1 };
    struct caller cl[FLIGHT_THREADS];
    run_flight(c, &rm, cl);
    assert_int_equal(atomic_load(&rm.calls), 1);
    check_flight(cl, -1, "remote down: shared@example.org");

    /* the error was shared, not stored: the next caller asks again */
    enum cache_source src;
    char err[ERRLEN] = "";
    assert_int_equal(lookup(c, "shared@example.org", &rm, &src, err, sizeof err), -1);
    assert_int_equal(atomic_load(&rm.calls), 2);
    cache_destroy(c);
}

/* ---- stale while refresh ---- */

#define TTL_POS 1000
#define TTL_STALE 60000

static struct cache *stale_cache(const char *key)
{
    struct cache *c = cache_create(100, TTL_POS, TTL_POS, TTL_STALE);
    put(c, key, true, now_ms() - TTL_POS - 500);   /* expired 500 ms ago */
    return c;
}

static void test_stale_refresh_renews(void **state)
{
    struct cache *c = stale_cache("user@example.org");
    struct remote rm = { .answer = 1 };
    enum cache_source src;
    char err[ERRLEN] = "";

    assert_int_equal(get(c, "user@example.org", now_ms()), -1);   /* not fresh */
    assert_int_equal(lookup(c, "user@example.org", &rm, &src, err, sizeof err), 1);
    assert_int_equal(src, CACHE_SRC_REMOTE);
    assert_int_equal(atomic_load(&rm.calls), 1);
    assert_int_equal(lookup(c, "user@example.org", &rm, &src, err, sizeof err), 1);
    assert_int_equal(src, CACHE_SRC_HIT);
    assert_int_equal(atomic_load(&rm.calls), 1);
    cache_destroy(c);
}

static void test_stale_failed_refresh_keeps_yes(void **state)
{
    struct cache *c = stale_cache("user@example.org");
    struct remote rm = { .answer = -1 };
    enum cache_source src;
    char err[ERRLEN] = "";

    assert_int_equal(lookup(c, "user@example.org", &rm, &src, err, sizeof err), 1);
    assert_int_equal(src, CACHE_SRC_STALE);
    assert_int_equal(lookup(c, "user@example.org", &rm, &src, err, sizeof err), 1);
    assert_int_equal(src, CACHE_SRC_STALE);
    assert_int_equal(atomic_load(&rm.calls), 2);   /* each later caller retries */

    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.stale_served, 2);
    assert_int_equal(st.entries_positive, 1);
    cache_destroy(c);
}

static void test_stale_refresh_says_no(void **state)
{
    struct cache *c = stale_cache("gone@example.org");
    struct remote rm = { .answer = 0 };
    enum cache_source src;
    char err[ERRLEN] = "";

    assert_int_equal(lookup(c, "gone@example.org", &rm, &src, err, sizeof err), 0);
    assert_int_equal(src, CACHE_SRC_REMOTE);
    assert_int_equal(lookup(c, "gone@example.org", &rm, &src, err, sizeof err), 0);
    assert_int_equal(src, CACHE_SRC_HIT);
    assert_int_equal(atomic_load(&rm.calls), 1);
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.entries_positive, 0);
    assert_int_equal(st.entries_negative, 1);
    cache_destroy(c);
}

struct refresher {
    struct cache *c;
    struct remote *rm;
    int result;
    enum cache_source src;
};

static void *refresher_run(void *arg)
{
    struct refresher *r = arg;
    char err[ERRLEN];
    r->result = lookup(r->c, "user@example.org", r->rm, &r->src, err, sizeof err);
    return NULL;
}

/* While one caller refreshes, the others get the stale yes at once. */
static void test_stale_served_during_refresh(void **state)
{
    struct cache *c = stale_cache("user@example.org");
    struct remote rm = { .answer = 1, .delay_ms = 300 };
    struct refresher r = { .c = c, .rm = &rm };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, refresher_run, &r), 0);
    while (!atomic_load(&rm.started))
        sleep_ms(1);

    enum cache_source src;
    char err[ERRLEN] = "";
    for (int i = 0; i < 5; i++) {
        int64_t t0 = now_ms();
        assert_int_equal(lookup(c, "user@example.org", &rm, &src, err, sizeof err), 1);
        assert_int_equal(src, CACHE_SRC_STALE);
        assert_true(now_ms() - t0 < 150);        /* did not wait for the refresh */
    }
    pthread_join(th, NULL);
    assert_int_equal(r.result, 1);
    assert_int_equal(r.src, CACHE_SRC_REMOTE);
    assert_int_equal(atomic_load(&rm.calls), 1);
    assert_int_equal(lookup(c, "user@example.org", &rm, &src, err, sizeof err), 1);
    assert_int_equal(src, CACHE_SRC_HIT);
    cache_destroy(c);
}

static void test_beyond_stale_window_is_miss(void **state)
{
    struct cache *c = cache_create(100, TTL_POS, TTL_POS, TTL_STALE);
    struct remote rm = { .answer = -1 };
    enum cache_source src;
    char err[ERRLEN] = "";
    put(c, "old@example.org", true, now_ms() - TTL_POS - TTL_STALE - 10);
    assert_int_equal(lookup(c, "old@example.org", &rm, &src, err, sizeof err), -1);
    assert_int_equal(src, CACHE_SRC_REMOTE);
    assert_string_equal(err, "remote down: old@example.org");
    assert_int_equal(atomic_load(&rm.calls), 1);
    cache_destroy(c);
}

static void test_negative_never_stale(void **state)
{
    struct cache *c = cache_create(100, TTL_POS, TTL_POS, TTL_STALE);
    struct remote rm = { .answer = -1 };
    enum cache_source src;
    char err[ERRLEN] = "";
    put(c, "nobody@example.org", false, now_ms() - TTL_POS - 10);
    assert_int_equal(lookup(c, "nobody@example.org", &rm, &src, err, sizeof err), -1);
    assert_int_equal(src, CACHE_SRC_REMOTE);
    assert_int_equal(atomic_load(&rm.calls), 1);
    cache_destroy(c);
}

/* ---- edges ---- */

static void test_entries_one(void **state)
{
    struct cache *c = cache_create(1, HOUR_MS, HOUR_MS, 0);
    put(c, "a", true, 0);
    put(c, "b", true, 0);
    assert_int_equal(get(c, "a", 1), -1);
    assert_int_equal(get(c, "b", 1), 1);
    put(c, "n", false, 0);                        /* the negative slot is separate */
    assert_int_equal(get(c, "b", 1), 1);
    assert_int_equal(get(c, "n", 1), 0);

    struct remote rm = { .answer = 1 };
    enum cache_source src;
    char err[ERRLEN] = "";
    assert_int_equal(lookup(c, "c", &rm, &src, err, sizeof err), 1);
    assert_int_equal(lookup(c, "c", &rm, &src, err, sizeof err), 1);
    assert_int_equal(src, CACHE_SRC_HIT);
    assert_int_equal(get(c, "b", now_ms()), -1);
    assert_int_equal(atomic_load(&rm.calls), 1);
    cache_destroy(c);
}

static void test_entries_zero_disables(void **state)
{
    struct cache *c = cache_create(0, HOUR_MS, HOUR_MS, HOUR_MS);
    put(c, "a", true, 0);
    put(c, "n", false, 0);
    assert_int_equal(get(c, "a", 1), -1);
    assert_int_equal(get(c, "n", 1), -1);

    struct remote rm = { .answer = 1 };
    enum cache_source src;
    char err[ERRLEN] = "";
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(lookup(c, "a", &rm, &src, err, sizeof err), 1);
        assert_int_equal(src, CACHE_SRC_REMOTE);
        assert_int_equal(atomic_load(&rm.calls), i);
    }
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.entries_positive + st.entries_negative, 0);

    /* still single flight */
    struct caller cl[FLIGHT_THREADS];
    atomic_store(&rm.calls, 0);
    run_flight(c, &rm, cl);
    assert_int_equal(atomic_load(&rm.calls), 1);
    check_flight(cl, 1, NULL);
    cache_destroy(c);
}

/* ---- stress ---- */

#define STRESS_THREADS 4
#define STRESS_OPS 40000
#define STRESS_KEYS 5000
#define STRESS_ENTRIES 500

struct stresser {
    struct cache *c;
    unsigned seed;
    long ops;
    bool bound_broken;
    bool bad_answer;
};

static unsigned next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

/* Answers are a pure function of the key, so any cached answer can be checked. */
static int key_answer(const char *key)
{
    return (int)(strlen(key) + (unsigned char)key[strlen(key) - 1]) % 3 - 1;
}

static int stress_fetch(void *ctx, const char *key, size_t keylen, char *err, size_t errlen)
{
    char k[64];
    snprintf(k, sizeof k, "%.*s", (int)keylen, key);
    int r = key_answer(k);
    if (r < 0)
        set_error(err, errlen, "flaky");
    return r;
}

static void stress_one(struct stresser *st, const char *key)
{
    int want = key_answer(key);
    unsigned op = next_rand(&st->seed) % 8;
    int r;
    enum cache_source src;
    char err[64];
    if (op < 3) {
        if (want >= 0)
            put(st->c, key, want == 1, now_ms());
        return;
    }
    if (op < 5)
        r = get(st->c, key, now_ms());
    else
        r = cache_lookup(st->c, key, strlen(key), stress_fetch, NULL, &src, err, sizeof err);
    if (r != -1 && r != want)
        st->bad_answer = true;
    st->ops++;
}

static void *stress_run(void *arg)
{
    struct stresser *st = arg;
    char key[64];
    for (int i = 0; i < STRESS_OPS; i++) {
        snprintf(key, sizeof key, "user%u@d%u.example", next_rand(&st->seed) % STRESS_KEYS,
                 i % 7);
        stress_one(st, key);
        if (i % 1000 == 0) {
            struct cache_stats cs;
            cache_get_stats(st->c, &cs);
            if (cs.entries_positive > STRESS_ENTRIES || cs.entries_negative > STRESS_ENTRIES)
                st->bound_broken = true;
        }
        if (i % 10000 == 0 && st->seed % 4 == 0)
            cache_clear(st->c);
    }
    return NULL;
}

static void test_concurrent_stress(void **state)
{
    struct cache *c = cache_create(STRESS_ENTRIES, 50, 20, 30);
    pthread_t th[STRESS_THREADS];
    struct stresser st[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++) {
        st[i] = (struct stresser){ .c = c, .seed = 7919u * (unsigned)(i + 1) };
        assert_int_equal(pthread_create(&th[i], NULL, stress_run, &st[i]), 0);
    }
    long ops = 0;
    for (int i = 0; i < STRESS_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_false(st[i].bound_broken);
        assert_false(st[i].bad_answer);
        ops += st[i].ops;
    }
    struct cache_stats cs;
    cache_get_stats(c, &cs);
    assert_true(cs.entries_positive <= STRESS_ENTRIES);
    assert_true(cs.entries_negative <= STRESS_ENTRIES);
    /* every get and lookup is counted exactly once */
    assert_int_equal(cs.hits_positive + cs.hits_negative + cs.misses + cs.stale_served,
                     (uint64_t)ops);
    assert_true(cs.hits_positive + cs.hits_negative > 0);
    cache_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lru_eviction_order),
        cmocka_unit_test(test_put_renews_recency_and_answer),
        cmocka_unit_test(test_positive_negative_bounds_separate),
        cmocka_unit_test(test_sharded_bound_is_exact),
        cmocka_unit_test(test_binary_keys),
        cmocka_unit_test(test_ttl_per_kind),
        cmocka_unit_test(test_zero_ttl_not_stored),
        cmocka_unit_test(test_extreme_ttls),
        cmocka_unit_test(test_lookup_caches_answers),
        cmocka_unit_test(test_errors_never_cached),
        cmocka_unit_test(test_error_without_text_gets_one),
        cmocka_unit_test(test_single_flight_answer),
        cmocka_unit_test(test_single_flight_error),
        cmocka_unit_test(test_stale_refresh_renews),
        cmocka_unit_test(test_stale_failed_refresh_keeps_yes),
        cmocka_unit_test(test_stale_refresh_says_no),
        cmocka_unit_test(test_stale_served_during_refresh),
        cmocka_unit_test(test_beyond_stale_window_is_miss),
        cmocka_unit_test(test_negative_never_stale),
        cmocka_unit_test(test_entries_one),
        cmocka_unit_test(test_entries_zero_disables),
        cmocka_unit_test(test_concurrent_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
