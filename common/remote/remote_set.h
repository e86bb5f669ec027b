/*
 * remote_set.h - the runtime of every remote of one configuration.
 *
 * Per remote a struct remote_rt: its own copy of the definition, the
 * connection pool, the lookup cache, the AUTH cache and the catch-all
 * knowledge. A set is built from the remote definitions of a loaded
 * config. On reload the new set is built with the running one as
 * `previous`: a remote whose definition did not change (every
 * remote.<id> key, secrets included) carries its runtime over - caches,
 * catch-all marks, idle connections, host-down state - and a new or changed
 * remote starts afresh. A runtime is freed with the last set that holds
 * it, so messages in flight keep what they started with.
 *
 * Must not: know the config file or its loader (it is handed plain
 * definitions), or block in create/unref beyond joining a probe thread.
 */
#ifndef NEXTHOP_REMOTE_SET_H
#define NEXTHOP_REMOTE_SET_H

#include <stdbool.h>
#include <stddef.h>

#include "remote.h"

struct pool;
struct cache;
struct catchall;
struct metrics_remote_live;

struct remote_rt {
    struct remote_def *def;       /* own copy; never changes */
    struct pool *pool;
    struct cache *cache;          /* rcpt/vrfy answers, ttl.positive/negative/stale */
    struct cache *auth_cache;     /* successful AUTH only, ttl.auth, never stale; NULL when 0 */
    struct catchall *catch_all;
    int refs;                     /* sets holding it; atomic */
};

struct remote_set;

enum remote_set_flags {
    REMOTE_SET_NO_LEARN = 1,      /* one-shot use (-q): no catch-all learning */
};

/*
 * Builds the runtime of defs[0..n-1], carrying over from previous (may be
 * NULL) every remote whose definition is unchanged. Never fails.
 */
struct remote_set *remote_set_create(const struct remote_def *defs, size_t n,
                                     const struct remote_set *previous, unsigned flags);
struct remote_set *remote_set_ref(struct remote_set *s);
void remote_set_unref(struct remote_set *s);

/* The runtime of remote id, NULL when the set has none. */
struct remote_rt *remote_set_find(const struct remote_set *s, const char *id);
size_t remote_set_size(const struct remote_set *s);
struct remote_rt *remote_set_at(const struct remote_set *s, size_t i);
/* True when the runtime at i came over from the previous set. */
bool remote_set_carried(const struct remote_set *s, size_t i);

/* Fills live[0..size-1] with the cache and pool numbers of each remote (for /metrics). */
void remote_set_live(const struct remote_set *s, struct metrics_remote_live *live);

#endif
