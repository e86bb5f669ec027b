/*
 * runtime.h - a loaded config together with the runtime of its remotes:
 * what a message, a socketmap request or an auth check works with from
 * start to end.
 *
 * runtime_start() builds the remote set of a config, carrying over from
 * the running runtime (on reload) every remote whose definition did not
 * change, and points the process-wide Redis client at cache.redis. A
 * runtime is reference-counted: whoever takes it at the start of a piece
 * of work keeps config and remotes alive until it lets go, whatever
 * reloads happen meanwhile.
 *
 * Must not: load files (config.c does), or touch libmilter.
 */
#ifndef NEXTHOP_RUNTIME_H
#define NEXTHOP_RUNTIME_H

#include <stddef.h>

#include "config.h"
#include "lists.h"
#include "remote_set.h"

struct nh_runtime {
    struct nh_config *cfg;
    struct remote_set *remotes;
    int refs;                 /* atomic */
};

/*
 * Starts cfg (takes over the caller's reference to it). previous may be
 * NULL. flags as for remote_set_create(). Returns NULL with err when the
 * Redis address cannot be used (cfg is released then).
 */
struct nh_runtime *runtime_start(struct nh_config *cfg, const struct nh_runtime *previous,
                                 unsigned flags, char *err, size_t errlen);
struct nh_runtime *runtime_ref(struct nh_runtime *rt);
void runtime_unref(struct nh_runtime *rt);

/* The list_env of rt, for lookups logged under queue_id (may be NULL). */
struct list_env runtime_env(const struct nh_runtime *rt, const char *queue_id);

/* Loads file and starts it: config_load() then runtime_start(). */
struct nh_runtime *runtime_load(const char *file, const struct nh_runtime *previous,
                                unsigned flags, char *err, size_t errlen);

#endif
