/*
 * cache.c - the lookup cache of one remote (see cache.h).
 *
 * NAME
 *     cache - sharded positive/negative LRU with single flight and
 *     stale-while-refresh
 *
 * DESCRIPTION
 *     Keys are hashed to one of up to 16 shards; each shard has its own
 *     mutex, one chained hash table holding both kinds of entries, and two
 *     intrusive doubly linked LRU lists (positive and negative) with their
 *     own capacities. A key is in at most one list at a time.
 *
 *     Sharding and bounds: the shard count is the largest power of two
 *     <= 16 that still leaves every shard at least SHARD_MIN_ENTRIES
 *     entries (a cache of fewer than 128 entries is a single shard).
 *     `entries` is split between shards as entries / n, with the remainder
 *     handed out one each to the first shards, so the shard capacities of
 *     each kind add up to exactly `entries`: the bound holds globally, and
 *     LRU order is kept per shard, so it is approximate across shards.
 *     Within a list, a hit on an entry that is already among the newest
 *     quarter (by push count) is not relinked (see lru_touch()), so the
 *     order is exact LRU for lists of fewer than 8 entries and for
 *     everything beyond the newest quarter of larger ones.
 *
 *     Single flight: a miss registers a flight in its shard; later misses
 *     of the same key wait on the flight's condition variable and take its
 *     answer (an error too) without fetching. A refresh of a stale positive
 *     entry is a flight as well: meanwhile lookups that still find the
 *     stale entry get the stale yes at once, lookups that no longer find it
 *     (evicted) wait for the refresh. The refreshing caller fetches inline:
 *     a yes renews the entry and a no replaces it with a negative one (it
 *     returns that answer, CACHE_SRC_REMOTE); an error keeps the stale yes
 *     and returns it (CACHE_SRC_STALE), and the next caller tries again.
 *     Negative entries never go stale.
 *
 *     Memory: one allocation per entry, a 48-byte header followed by the
 *     key (at most INT32_MAX bytes; longer keys are never stored); the
 *     bucket array grows by doubling at load factor 1.
 *
 *     Statistics: every cache_get and cache_lookup counts exactly once, as
 *     a positive hit, a negative hit, a stale answer or a miss (a miss is
 *     any answer that needed a fetch, whether fetched or shared). Evictions
 *     count entries pushed out by capacity, not expiries.
 *
 *     Must not: know what a key means, log, or call a remote itself: it
 *     only calls the fetch function it is given, never with a shard lock
 *     held, and never caches an error.
 */
#include "cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MAX_SHARDS 16
#define SHARD_MIN_ENTRIES 64
#define INITIAL_BUCKETS 16

struct entry {
    struct entry *chain;          /* next in the hash bucket */
    struct entry *newer, *older;  /* neighbours in the LRU list of its kind */
    uint64_t hash;
    int64_t expires;              /* now_ms() clock */
    uint32_t keylen : 31;
    uint32_t positive : 1;
    uint32_t stamp;               /* lru.clock when last made newest */
    uint8_t tag;                  /* the caller's note on where the answer came from */
    char key[];
};

struct lru {
    struct entry *newest, *oldest;
    size_t count, cap;
    uint32_t clock;               /* counts pushes to the newest end */
};

struct flight {
    struct flight *next;
    uint64_t hash;
    const char *key;              /* the fetcher's key; valid while listed */
    size_t keylen;
    pthread_cond_t done_cv;
    int refs;                     /* fetcher + waiters; the last one frees */
    bool done;
    bool stale_kept;              /* refresh failed; the answer is the stale yes */
    int result;
    char err[ERRLEN];
};

struct shard {
    pthread_mutex_t mu;
    struct entry **buckets;
    size_t nbuckets;              /* power of two */
    struct lru pos, neg;
    struct flight *flights;
    uint64_t hits_positive, hits_negative, misses, stale_served, evictions;
    char pad[64];                 /* keep neighbouring shards' locks apart */
};

struct cache {
    struct shard *shards;
    unsigned nshards;
    size_t entries;
    int64_t ttl_positive, ttl_negative, ttl_stale;
};

/* ---- hashing ---- */

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* MurmurHash64A-style: 8 bytes per step, then a final avalanche. */
static uint64_t hash_key(const char *key, size_t len)
{
    const uint64_t m = 0xc6a4a7935bd1e995ULL;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (len * m);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t k;
        memcpy(&k, key + i, 8);
        k *= m;
        k ^= k >> 47;
        k *= m;
        h = (h ^ k) * m;
    }
    uint64_t tail = 0;
    if (i < len) {
        memcpy(&tail, key + i, len - i);
        h = (h ^ tail) * m;
    }
    return mix64(h);
}

static struct shard *shard_of(struct cache *c, uint64_t hash)
{
    return &c->shards[(hash >> 32) & (c->nshards - 1)];
}

static bool key_equal(const struct entry *e, uint64_t hash, const char *key, size_t keylen)
{
    return e->hash == hash && e->keylen == keylen && memcmp(e->key, key, keylen) == 0;
}

/* ---- LRU lists ---- */

static void lru_unlink(struct lru *l, struct entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        l->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        l->oldest = e->newer;
    e->newer = e->older = NULL;
    l->count--;
}

static void lru_push_newest(struct lru *l, struct entry *e)
{
    e->newer = NULL;
    e->stamp = l->clock++;
    e->older = l->newest;
    if (l->newest)
        l->newest->newer = e;
    else
        l->oldest = e;
    l->newest = e;
    l->count++;
}

/*
 * Makes e the newest, unless it is already among the newest quarter: it
 * has at most clock - stamp entries before it, so it is still at least
 * 3/4 of the capacity away from eviction. Skipping the relink keeps hits
 * on hot keys from writing to neighbours' cache lines.
 */
static void lru_touch(struct lru *l, struct entry *e)
{
    if (l->newest == e || (size_t)(uint32_t)(l->clock - e->stamp) < l->cap / 4)
        return;
    lru_unlink(l, e);
    lru_push_newest(l, e);
}

static struct lru *lru_of(struct shard *s, const struct entry *e)
{
    return e->positive ? &s->pos : &s->neg;
}

/* ---- hash table ---- */

static struct entry **bucket_of(struct shard *s, uint64_t hash)
{
    return &s->buckets[hash & (s->nbuckets - 1)];
}

static struct entry *table_find(struct shard *s, uint64_t hash, const char *key, size_t keylen)
{
    for (struct entry *e = *bucket_of(s, hash); e; e = e->chain)
        if (key_equal(e, hash, key, keylen))
            return e;
    return NULL;
}

static void table_grow(struct shard *s)
{
    size_t n = s->nbuckets * 2;
    struct entry **b = xcalloc(n, sizeof *b);
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct entry *e = s->buckets[i];
        while (e) {
            struct entry *next = e->chain;
            struct entry **slot = &b[e->hash & (n - 1)];
            e->chain = *slot;
            *slot = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

static void table_insert(struct shard *s, struct entry *e)
{
    if (s->pos.count + s->neg.count >= s->nbuckets)
        table_grow(s);
    struct entry **slot = bucket_of(s, e->hash);
    e->chain = *slot;
    *slot = e;
}

static void table_remove(struct shard *s, struct entry *e)
{
    struct entry **p = bucket_of(s, e->hash);
    while (*p != e)
        p = &(*p)->chain;
    *p = e->chain;
}

/* ---- entries ---- */

static void entry_drop(struct shard *s, struct entry *e)
{
    table_remove(s, e);
    lru_unlink(lru_of(s, e), e);
    free(e);
}

static void evict_over_cap(struct shard *s, struct lru *l)
{
    while (l->count > l->cap && l->oldest) {
        entry_drop(s, l->oldest);
        s->evictions++;
    }
}

static int64_t ttl_of(const struct cache *c, bool positive)
{
    return positive ? c->ttl_positive : c->ttl_negative;
}

/* An answer is worth storing only if it can be served at some point. */
static bool worth_storing(const struct cache *c, struct shard *s, bool positive)
{
    const struct lru *l = positive ? &s->pos : &s->neg;
    int64_t usable = ttl_of(c, positive) + (positive ? c->ttl_stale : 0);
    return l->cap > 0 && usable > 0;
}

/* Stores or replaces an answer; caller holds s->mu. */
static void shard_put(struct cache *c, struct shard *s, uint64_t hash, const char *key,
                      size_t keylen, bool positive, int64_t now)
{
    if (keylen > INT32_MAX)
        return;
    struct entry *e = table_find(s, hash, key, keylen);
    if (!worth_storing(c, s, positive)) {
        if (e)
            entry_drop(s, e);  /* an old answer must not outlive a newer one */
        return;
    }
    if (e) {
        lru_unlink(lru_of(s, e), e);
    } else {
        e = xmalloc(sizeof *e + keylen);
        e->hash = hash;
        e->keylen = (uint32_t)keylen;
        memcpy(e->key, key, keylen);
        table_insert(s, e);
    }
    e->positive = positive;
    e->tag = 0;
    int64_t ttl = ttl_of(c, positive);
    e->expires = now > INT64_MAX - ttl ? INT64_MAX : now + ttl;  /* "forever" must not wrap */
    struct lru *l = lru_of(s, e);
    lru_push_newest(l, e);
    evict_over_cap(s, l);
}

enum entry_state { ENTRY_NONE, ENTRY_FRESH, ENTRY_STALE };

/*
 * Finds the entry for key and classifies it at time now. An entry past all
 * use is freed on the way. Caller holds s->mu.
 */
static enum entry_state shard_find(struct cache *c, struct shard *s, uint64_t hash,
                                   const char *key, size_t keylen, int64_t now,
                                   struct entry **e_r)
{
    struct entry *e = table_find(s, hash, key, keylen);
    *e_r = e;
    if (!e)
        return ENTRY_NONE;
    if (now < e->expires) {
        lru_touch(lru_of(s, e), e);
        return ENTRY_FRESH;
    }
    if (e->positive && now - e->expires < c->ttl_stale) {
        lru_touch(&s->pos, e);
        return ENTRY_STALE;
    }
    entry_drop(s, e);
    *e_r = NULL;
    return ENTRY_NONE;
}

static int count_hit(struct shard *s, const struct entry *e)
{
    if (e->positive)
        s->hits_positive++;
    else
        s->hits_negative++;
    return e->positive ? 1 : 0;
}

/* ---- creation ---- */

static unsigned shard_count(size_t entries)
{
    unsigned n = 1;
    while (n < MAX_SHARDS && (size_t)n * 2 * SHARD_MIN_ENTRIES <= entries)
        n *= 2;
    return n;
}

/* Keeps ttl sums and now + ttl far from overflow. */
static int64_t clamp_ttl(int64_t ttl)
{
    if (ttl < 0)
        return 0;
    return ttl > INT64_MAX / 4 ? INT64_MAX / 4 : ttl;
}

static void shard_init(struct shard *s, size_t cap)
{
    pthread_mutex_init(&s->mu, NULL);
    s->nbuckets = INITIAL_BUCKETS;
    s->buckets = xcalloc(s->nbuckets, sizeof *s->buckets);
    s->pos.cap = cap;
    s->neg.cap = cap;
}

struct cache *cache_create(size_t entries, int64_t ttl_positive_ms, int64_t ttl_negative_ms,
                           int64_t ttl_stale_ms)
{
    struct cache *c = xcalloc(1, sizeof *c);
    c->entries = entries;
    c->ttl_positive = clamp_ttl(ttl_positive_ms);
    c->ttl_negative = clamp_ttl(ttl_negative_ms);
    c->ttl_stale = clamp_ttl(ttl_stale_ms);
    c->nshards = shard_count(entries);
    c->shards = xcalloc(c->nshards, sizeof *c->shards);
    for (unsigned i = 0; i < c->nshards; i++)
        shard_init(&c->shards[i], entries / c->nshards + (i < entries % c->nshards ? 1 : 0));
    return c;
}

static void shard_empty(struct shard *s)
{
    while (s->pos.oldest)
        entry_drop(s, s->pos.oldest);
    while (s->neg.oldest)
        entry_drop(s, s->neg.oldest);
}

void cache_destroy(struct cache *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        shard_empty(s);
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    free(c->shards);
    free(c);
}

void cache_clear(struct cache *c)
{
    cache_remove_if(c, NULL, NULL);
}

static size_t lru_remove_if(struct shard *s, struct lru *l, cache_match_fn match, void *ctx)
{
    size_t n = 0;
    for (struct entry *e = l->oldest, *newer; e; e = newer) {
        newer = e->newer;
        if (!match || match(e->key, e->keylen, ctx)) {
            entry_drop(s, e);
            n++;
        }
    }
    return n;
}

size_t cache_remove_if(struct cache *c, cache_match_fn match, void *ctx)
{
    size_t n = 0;
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        pthread_mutex_lock(&s->mu);
        n += lru_remove_if(s, &s->pos, match, ctx);
        n += lru_remove_if(s, &s->neg, match, ctx);
        pthread_mutex_unlock(&s->mu);
    }
    return n;
}

void cache_tag(struct cache *c, const char *key, size_t keylen, uint8_t tag)
{
    uint64_t hash = hash_key(key, keylen);
    struct shard *s = shard_of(c, hash);
    pthread_mutex_lock(&s->mu);
    struct entry *e = table_find(s, hash, key, keylen);
    if (e)
        e->tag = tag;
    pthread_mutex_unlock(&s->mu);
}

int cache_peek(struct cache *c, const char *key, size_t keylen, int64_t now, int64_t *ms_left_r,
               uint8_t *tag_r)
{
    uint64_t hash = hash_key(key, keylen);
    struct shard *s = shard_of(c, hash);
    int r = -1;
    pthread_mutex_lock(&s->mu);
    struct entry *e = table_find(s, hash, key, keylen);
    if (e && (now < e->expires || (e->positive && now - e->expires < c->ttl_stale))) {
        r = e->positive ? 1 : 0;
        if (ms_left_r)
            *ms_left_r = e->expires - now;
        if (tag_r)
            *tag_r = e->tag;
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}

/* ---- direct access ---- */

int cache_get(struct cache *c, const char *key, size_t keylen, int64_t now)
{
    uint64_t hash = hash_key(key, keylen);
    struct shard *s = shard_of(c, hash);
    struct entry *e;
    int r = -1;
    pthread_mutex_lock(&s->mu);
    if (shard_find(c, s, hash, key, keylen, now, &e) == ENTRY_FRESH)
        r = count_hit(s, e);
    else
        s->misses++;
    pthread_mutex_unlock(&s->mu);
    return r;
}

void cache_put(struct cache *c, const char *key, size_t keylen, bool positive, int64_t now)
{
    uint64_t hash = hash_key(key, keylen);
    struct shard *s = shard_of(c, hash);
    pthread_mutex_lock(&s->mu);
    shard_put(c, s, hash, key, keylen, positive, now);
    pthread_mutex_unlock(&s->mu);
}

void cache_get_stats(struct cache *c, struct cache_stats *st)
{
    memset(st, 0, sizeof *st);
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        pthread_mutex_lock(&s->mu);
        st->hits_positive += s->hits_positive;
        st->hits_negative += s->hits_negative;
        st->misses += s->misses;
        st->stale_served += s->stale_served;
        st->evictions += s->evictions;
        st->entries_positive += s->pos.count;
        st->entries_negative += s->neg.count;
        pthread_mutex_unlock(&s->mu);
    }
}

/* ---- single flight ---- */

static struct flight *flight_find(struct shard *s, uint64_t hash, const char *key,
                                  size_t keylen)
{
    for (struct flight *f = s->flights; f; f = f->next)
        if (f->hash == hash && f->keylen == keylen && memcmp(f->key, key, keylen) == 0)
            return f;
    return NULL;
}

static struct flight *flight_start(struct shard *s, uint64_t hash, const char *key,
                                   size_t keylen)
{
    struct flight *f = xcalloc(1, sizeof *f);
    f->hash = hash;
    f->key = key;
    f->keylen = keylen;
    f->refs = 1;
    pthread_cond_init(&f->done_cv, NULL);
    f->next = s->flights;
    s->flights = f;
    return f;
}

/* Drops one reference; caller holds s->mu. */
static void flight_release(struct flight *f)
{
    if (--f->refs > 0)
        return;
    pthread_cond_destroy(&f->done_cv);
    free(f);
}

/* Publishes the answer, unlists the flight and wakes its waiters. */
static void flight_finish(struct shard *s, struct flight *f, int result, bool stale_kept)
{
    struct flight **p = &s->flights;
    while (*p != f)
        p = &(*p)->next;
    *p = f->next;
    f->key = NULL;
    f->result = result;
    f->stale_kept = stale_kept;
    f->done = true;
    pthread_cond_broadcast(&f->done_cv);
}

/* Waits for another caller's fetch; caller holds s->mu. */
static int flight_wait(struct shard *s, struct flight *f, enum cache_source *src_r, char *err,
                       size_t errlen)
{
    f->refs++;
    while (!f->done)
        pthread_cond_wait(&f->done_cv, &s->mu);
    int r = f->result;
    if (r < 0)
        set_error(err, errlen, "%s", f->err);
    if (f->stale_kept)
        s->stale_served++;
    else
        s->misses++;
    *src_r = f->stale_kept ? CACHE_SRC_STALE : CACHE_SRC_SHARED;
    flight_release(f);
    return r;
}

/* Calls fetch without the lock; returns 1, 0 or -1 with f->err set. */
static int flight_fetch(struct shard *s, struct flight *f, const char *key, size_t keylen,
                        cache_fetch_fn fetch, void *ctx)
{
    pthread_mutex_unlock(&s->mu);
    int r = fetch(ctx, key, keylen, f->err, sizeof f->err);
    pthread_mutex_lock(&s->mu);
    if (r == 0 || r == 1)
        return r;
    if (r > 1)
        set_error(f->err, sizeof f->err, "cache: fetch returned %d", r);
    else if (!f->err[0])
        set_error(f->err, sizeof f->err, "cache: fetch failed without a reason");
    return -1;
}

/*
 * Fetches as the one caller in flight for this key and stores a yes/no.
 * refresh: a stale yes exists, so a failed fetch answers that stale yes.
 * Caller holds s->mu.
 */
static int fetch_and_store(struct cache *c, struct shard *s, uint64_t hash, const char *key,
                           size_t keylen, cache_fetch_fn fetch, void *ctx, bool refresh,
                           enum cache_source *src_r, char *err, size_t errlen)
{
    struct flight *f = flight_start(s, hash, key, keylen);
    int r = flight_fetch(s, f, key, keylen, fetch, ctx);
    bool stale_kept = refresh && r < 0;
    if (r >= 0)
        shard_put(c, s, hash, key, keylen, r == 1, now_ms());
    else if (!refresh)
        set_error(err, errlen, "%s", f->err);
    flight_finish(s, f, stale_kept ? 1 : r, stale_kept);
    flight_release(f);
    if (stale_kept) {
        s->stale_served++;
        *src_r = CACHE_SRC_STALE;
        return 1;
    }
    s->misses++;
    *src_r = CACHE_SRC_REMOTE;
    return r;
}

int cache_lookup(struct cache *c, const char *key, size_t keylen, cache_fetch_fn fetch,
                 void *ctx, enum cache_source *src_r, char *err, size_t errlen)
{
    enum cache_source src_dummy;
    if (!src_r)
        src_r = &src_dummy;
    uint64_t hash = hash_key(key, keylen);
    struct shard *s = shard_of(c, hash);
    int64_t now = now_ms();
    struct entry *e;
    int r;

    pthread_mutex_lock(&s->mu);
    enum entry_state st = shard_find(c, s, hash, key, keylen, now, &e);
    struct flight *f = st == ENTRY_FRESH ? NULL : flight_find(s, hash, key, keylen);
    if (st == ENTRY_FRESH) {
        *src_r = CACHE_SRC_HIT;
        r = count_hit(s, e);
    } else if (st == ENTRY_STALE && f) {
        s->stale_served++;
        *src_r = CACHE_SRC_STALE;
        r = 1;
    } else if (f) {
        r = flight_wait(s, f, src_r, err, errlen);
    } else {
        r = fetch_and_store(c, s, hash, key, keylen, fetch, ctx, st == ENTRY_STALE, src_r,
                            err, errlen);
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}
