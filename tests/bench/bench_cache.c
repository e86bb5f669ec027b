/*
 * bench_cache.c - how fast a cache hit is and how much an entry costs.
 *
 * Prints cache_lookup() hits per second with 1 and 2 threads, nanoseconds
 * per hit (over all 100,000 keys, then over 1,000 hot ones), and heap bytes per entry beyond the key (mallinfo2() around
 * creating a cache and filling it with 100,000 entries, so the shard and
 * bucket arrays are charged to the entries too). Goals: a hit under 1 us,
 * under 256 bytes per entry beyond the key.
 *
 * A benchmark, not a test: it must not assert, and it never fetches (a
 * fetch here means the figures are wrong, so it aborts).
 */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "util.h"

#define NKEYS 100000
#define KEYLEN 32
#define RUN_MS 1000

static char keys[NKEYS][KEYLEN];
static size_t keylens[NKEYS];

static int fetch_unexpected(void *ctx, const char *key, size_t keylen, char *err, size_t errlen)
{
    fprintf(stderr, "bench_cache: unexpected fetch of %.*s\n", (int)keylen, key);
    abort();
}

static void make_keys(void)
{
    for (int i = 0; i < NKEYS; i++) {
        int n = snprintf(keys[i], KEYLEN, "r:user%06d@example.org", i);
        keylens[i] = (size_t)n;
    }
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static struct cache *fill_cache(double *bytes_per_entry)
{
    size_t before = heap_in_use();
    /* room to spare: shards fill unevenly, and every key must stay a hit */
    struct cache *c = cache_create(2 * NKEYS, 3600 * 1000, 3600 * 1000, 0);
    int64_t now = now_ms();
    size_t keybytes = 0;
    for (int i = 0; i < NKEYS; i++) {
        cache_put(c, keys[i], keylens[i], true, now);
        keybytes += keylens[i];
    }
    size_t after = heap_in_use();
    *bytes_per_entry = ((double)(after - before) - (double)keybytes) / NKEYS;
    return c;
}

struct worker {
    struct cache *c;
    unsigned seed;
    unsigned nkeys;             /* keys 0..nkeys-1 are asked, at random */
    uint64_t hits;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    int64_t end = now_ms() + RUN_MS;
    enum cache_source src;
    char err[64];
    uint64_t hits = 0;
    while (now_ms() < end) {
        for (int i = 0; i < 1000; i++) {
            w->seed = w->seed * 1103515245u + 12345u;
            unsigned k = (w->seed >> 8) % w->nkeys;
            hits += (uint64_t)cache_lookup(w->c, keys[k], keylens[k], fetch_unexpected, NULL,
                                           &src, err, sizeof err);
        }
    }
    w->hits = hits;
    return NULL;
}

static void run_threads(struct cache *c, int nthreads, unsigned nkeys)
{
    pthread_t th[8];
    struct worker w[8];
    int64_t t0 = now_us();
    for (int i = 0; i < nthreads; i++) {
        w[i] = (struct worker){ .c = c, .seed = 17u + (unsigned)i * 7919u, .nkeys = nkeys };
        pthread_create(&th[i], NULL, worker_run, &w[i]);
    }
    uint64_t hits = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        hits += w[i].hits;
    }
    double secs = (double)(now_us() - t0) / 1e6;
    double per_sec = (double)hits / secs;
    printf("keys=%-6u threads=%d hits_per_sec=%.0f ns_per_hit=%.1f (per thread)\n", nkeys,
           nthreads, per_sec, 1e9 * nthreads / per_sec);
}

int main(void)
{
    double bytes;
    make_keys();
    struct cache *c = fill_cache(&bytes);
    struct cache_stats st;
    cache_get_stats(c, &st);
    printf("entries=%zu bytes_per_entry_beyond_key=%.1f (goal < 256)\n", st.entries_positive,
           bytes);
    /* all 100,000 keys: mostly CPU cache misses; 1,000 hot keys: cache resident */
    run_threads(c, 1, NKEYS);
    run_threads(c, 2, NKEYS);
    run_threads(c, 1, 1000);
    run_threads(c, 2, 1000);
    cache_destroy(c);
    return 0;
}
