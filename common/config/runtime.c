/*
 * runtime.c - a config and the runtime of its remotes (runtime.h).
 * Must not: load or check a file beyond calling config_load(), or free a
 * config or remote set while a reference is out.
 */
#include "runtime.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "redis.h"
#include "util.h"

struct nh_runtime *runtime_start(struct nh_config *cfg, const struct nh_runtime *previous,
                                 unsigned flags, char *err, size_t errlen)
{
    if (redis_cache_configure(cfg->redis, cfg->redis_prefix, err, errlen) < 0) {
        config_unref(cfg);
        return NULL;
    }
    struct nh_runtime *rt = xcalloc(1, sizeof *rt);
    rt->refs = 1;
    rt->cfg = cfg;
    rt->remotes = remote_set_create(cfg->remotes, cfg->n_remotes,
                                    previous ? previous->remotes : NULL, flags);
    return rt;
}

struct nh_runtime *runtime_ref(struct nh_runtime *rt)
{
    atomic_fetch_add_explicit((_Atomic int *)&rt->refs, 1, memory_order_relaxed);
    return rt;
}

void runtime_unref(struct nh_runtime *rt)
{
    if (!rt || atomic_fetch_sub_explicit((_Atomic int *)&rt->refs, 1, memory_order_acq_rel) != 1)
        return;
    remote_set_unref(rt->remotes);
    config_unref(rt->cfg);
    free(rt);
}

struct list_env runtime_env(const struct nh_runtime *rt, const char *queue_id)
{
    struct list_env env = { rt->remotes, queue_id };
    return env;
}

struct nh_runtime *runtime_load(const char *file, const struct nh_runtime *previous,
                                unsigned flags, char *err, size_t errlen)
{
    struct nh_config *cfg = config_load(file, err, errlen);
    return cfg ? runtime_start(cfg, previous, flags, err, errlen) : NULL;
}
