/*
 * redis.h - cache.redis: an optional second-level lookup cache shared by a
 * fleet of filters. The local LRU stays the first level; on a local miss
 * lookup.c asks Redis before the remote host, and stores what the remote
 * answered with the remote's TTLs (SET ... PX).
 *
 * Redis is a help, never a dependency: every command is bounded (100 ms to
 * connect or answer); a failure marks Redis down for a growing pause
 * (1 s doubling to 30 s) during which calls return at once, and the lookup
 * simply goes to the remote. Password checks (auth) and expn are never
 * stored in Redis. Keys: cache.prefix + remote id + ":" + the cache key.
 *
 * Must not: fail or stall a lookup because Redis is slow or down, or put
 * anything derived from a password into Redis.
 */
#ifndef NEXTHOP_REDIS_H
#define NEXTHOP_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include "ops.h"
#include "remote.h"

/*
 * Sets the process-wide client from cache.redis ("ADDRESS:PORT",
 * "[V6ADDRESS]:PORT" or "unix:/path"; NULL = off) and cache.prefix. Does
 * not connect (the first lookup does); keeps the connection when nothing
 * changed, so a reload is cheap. Returns -1 with err for an address that
 * cannot be parsed, or when this build has no hiredis.
 */
int redis_cache_configure(const char *address, const char *prefix, char *err, size_t errlen);

/*
 * What redis_cache_configure() would refuse, without touching the client:
 * for config checks (-n). Returns -1 with err, 0 when address is usable.
 */
int redis_cache_check(const char *address, char *err, size_t errlen);

/* 1 yes, 0 no, -1 not there (or Redis off, down, or not used for this kind). */
int redis_cache_get(const struct remote_def *r, enum lookup_kind kind, const char *key, size_t keylen);

/* Stores answer (LOOKUP_YES/NO; errors are ignored) with the remote's TTL. */
void redis_cache_put(const struct remote_def *r, enum lookup_kind kind, const char *key, size_t keylen,
                     int answer);

/*
 * Deletes the entries of remote r whose cache key matches match, a Redis
 * glob over the cache key ("r:alice@example.org", "[rv]:*@example.org";
 * NULL: every entry of r; escape user text with redis_cache_glob_escape).
 * Scans in steps, letting lookups in between, for at most 5 s. Returns how
 * many were deleted, 0 when cache.redis is off, -1 when Redis failed or the
 * scan ran out of time.
 */
long redis_cache_forget(const struct remote_def *r, const char *match);
/* Copies s into out (len bytes, 4 per letter) as a glob matching s in any case, escaped. */
void redis_cache_glob_escape(char *out, size_t len, const char *s);

/* "hiredis X.Y.Z", or NULL when built without it (for -V). */
const char *redis_client_version(void);

#endif
