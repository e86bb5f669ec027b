/*
 * cache.h - the lookup cache of one remote: separate positive and negative
 * LRU caches, each bounded, each with its own TTL.
 *
 * O(1) get and put, sharded so worker threads do not contend on one lock.
 * Only answers (yes/no) are cached, never errors. Concurrent misses for
 * one key share one fetch (single flight). An expired positive entry is
 * still served for ttl_stale after expiry while one caller refreshes it;
 * if that refresh fails, the stale yes is kept (a remote outage does not
 * turn known users into temporary failures).
 *
 * Keys are opaque bytes (lookup.c builds them: kind + normalized address,
 * or kind + user + salted hash for auth).
 *
 * Must not: know what a key means, log, call a remote itself (the caller
 * passes the fetch function), or cache an error.
 */
#ifndef NEXTHOP_CACHE_H
#define NEXTHOP_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache;

struct cache *cache_create(size_t entries, int64_t ttl_positive_ms, int64_t ttl_negative_ms,
                           int64_t ttl_stale_ms);
void cache_destroy(struct cache *c);

/* The answer a fetch produced: 1 yes, 0 no, -1 error (never cached). */
typedef int (*cache_fetch_fn)(void *ctx, const char *key, size_t keylen, char *err,
                              size_t errlen);

enum cache_source { CACHE_SRC_REMOTE = 0, CACHE_SRC_HIT, CACHE_SRC_STALE, CACHE_SRC_SHARED };

/*
 * Returns 1/0 from the cache or from fetch (called at most once per key
 * among concurrent callers; the others wait for its answer), or -1 with err
 * when the fetch failed. *src_r tells where the answer came from.
 */
int cache_lookup(struct cache *c, const char *key, size_t keylen, cache_fetch_fn fetch,
                 void *ctx, enum cache_source *src_r, char *err, size_t errlen);

/* Direct access, for tests, Redis fill-in and catch-all marks. now_ms from util.h. */
int cache_get(struct cache *c, const char *key, size_t keylen, int64_t now);  /* 1, 0, -1 = miss */
void cache_put(struct cache *c, const char *key, size_t keylen, bool positive, int64_t now);
void cache_clear(struct cache *c);

/* True when key (keylen bytes, not NUL-terminated) is one to remove. */
typedef bool (*cache_match_fn)(const char *key, size_t keylen, void *ctx);
/* Removes every entry that match accepts (match NULL: every entry); returns how many. */
size_t cache_remove_if(struct cache *c, cache_match_fn match, void *ctx);
/*
 * A note on an entry (e.g. where its answer came from), kept until the
 * entry is replaced; a new entry starts with 0. Nothing when key is absent.
 */
void cache_tag(struct cache *c, const char *key, size_t keylen, uint8_t tag);
/*
 * What the cache holds for key, without counting a hit or touching the LRU
 * order: 1 yes, 0 no, -1 nothing that can be served. *ms_left_r (may be
 * NULL) gets the time to expiry, negative for a yes served stale; *tag_r
 * (may be NULL) the entry's note.
 */
int cache_peek(struct cache *c, const char *key, size_t keylen, int64_t now, int64_t *ms_left_r,
               uint8_t *tag_r);

struct cache_stats {
    uint64_t hits_positive, hits_negative, misses, stale_served, evictions;
    size_t entries_positive, entries_negative;
};
void cache_get_stats(struct cache *c, struct cache_stats *st);

#endif
