/*
 * remote_set.c - runtimes of the remotes of one config, carried over
 * across reloads (remote_set.h).
 * Must not: read the config, or free a remote's runtime while another set
 * still holds it.
 */
#include "remote_set.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "catchall.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "util.h"

struct remote_set {
    int refs;                     /* atomic */
    size_t n;
    struct remote_rt **rts;
    bool *carried;
};

static struct remote_rt *rt_create(const struct remote_def *d, unsigned flags)
{
    struct remote_rt *rt = xcalloc(1, sizeof *rt);
    rt->refs = 1;
    rt->def = remote_def_dup(d);
    if (flags & REMOTE_SET_NO_LEARN)
        rt->def->catch_all = false;
    rt->pool = pool_create(rt->def);
    rt->cache = cache_create((size_t)d->cache_entries, d->ttl_positive_ms, d->ttl_negative_ms,
                             d->ttl_stale_ms);
    if (d->ttl_auth_ms > 0)
        rt->auth_cache = cache_create((size_t)d->cache_entries, d->ttl_auth_ms, 0, 0);
    if (rt->def->catch_all)
        rt->catch_all = catchall_create(rt->pool, rt->def->id, d->ttl_positive_ms, d->ttl_negative_ms);
    return rt;
}

static struct remote_rt *rt_ref(struct remote_rt *rt)
{
    atomic_fetch_add_explicit((_Atomic int *)&rt->refs, 1, memory_order_relaxed);
    return rt;
}

static void rt_unref(struct remote_rt *rt)
{
    if (!rt || atomic_fetch_sub_explicit((_Atomic int *)&rt->refs, 1, memory_order_acq_rel) != 1)
        return;
    catchall_destroy(rt->catch_all);   /* first: its thread uses the pool */
    pool_destroy(rt->pool);
    cache_destroy(rt->cache);
    cache_destroy(rt->auth_cache);
    remote_def_free(rt->def);
    free(rt);
}

struct remote_set *remote_set_create(const struct remote_def *defs, size_t n,
                                     const struct remote_set *previous, unsigned flags)
{
    struct remote_set *s = xcalloc(1, sizeof *s);
    s->refs = 1;
    s->n = n;
    s->rts = xcalloc(n + 1, sizeof *s->rts);
    s->carried = xcalloc(n + 1, sizeof *s->carried);
    for (size_t i = 0; i < n; i++) {
        struct remote_rt *old = previous ? remote_set_find(previous, defs[i].id) : NULL;
        if (old && !(flags & REMOTE_SET_NO_LEARN) && remote_def_equal(old->def, &defs[i])) {
            s->rts[i] = rt_ref(old);
            s->carried[i] = true;
            continue;
        }
        if (old)
            log_info("remote=%s settings changed: it starts with an empty cache and new connections",
                     defs[i].id);
        s->rts[i] = rt_create(&defs[i], flags);
    }
    return s;
}

struct remote_set *remote_set_ref(struct remote_set *s)
{
    atomic_fetch_add_explicit((_Atomic int *)&s->refs, 1, memory_order_relaxed);
    return s;
}

void remote_set_unref(struct remote_set *s)
{
    if (!s || atomic_fetch_sub_explicit((_Atomic int *)&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < s->n; i++)
        rt_unref(s->rts[i]);
    free(s->rts);
    free(s->carried);
    free(s);
}

struct remote_rt *remote_set_find(const struct remote_set *s, const char *id)
{
    for (size_t i = 0; s && id && i < s->n; i++)
        if (strcmp(s->rts[i]->def->id, id) == 0)
            return s->rts[i];
    return NULL;
}

size_t remote_set_size(const struct remote_set *s) { return s ? s->n : 0; }

struct remote_rt *remote_set_at(const struct remote_set *s, size_t i)
{
    return i < s->n ? s->rts[i] : NULL;
}

bool remote_set_carried(const struct remote_set *s, size_t i) { return i < s->n && s->carried[i]; }

void remote_set_live(const struct remote_set *s, struct metrics_remote_live *live)
{
    for (size_t i = 0; i < remote_set_size(s); i++) {
        struct cache_stats cs;
        struct pool_stats ps;
        struct metrics_remote_live *l = &live[i];
        cache_get_stats(s->rts[i]->cache, &cs);
        pool_get_stats(s->rts[i]->pool, &ps);
        memset(l, 0, sizeof *l);
        l->remote = s->rts[i]->def->id;
        l->hits_positive = cs.hits_positive;
        l->hits_negative = cs.hits_negative;
        l->misses = cs.misses;
        l->stale_served = cs.stale_served;
        l->evictions = cs.evictions;
        l->entries_positive = cs.entries_positive;
        l->entries_negative = cs.entries_negative;
        l->open = ps.open;
        l->idle = ps.idle;
        l->max_open = ps.max_open;
        l->connects = ps.connects;
        l->operations = ps.operations;
        l->down = ps.down;
    }
}
