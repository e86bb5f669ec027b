/*
 * lookup.h - a lookup against a remote host through its cache: what RCPT
 * validation, `in-list = "remote/<id>"`, `-q` and the auth service call.
 *
 * Builds the cache key (normalized address; for auth the user and a salted
 * hash of the password, never the password), asks the cache, and on a miss
 * the pool. Detects catch-all domains (a remote that accepts a random local
 * part) and remembers them for the positive TTL. Logs one line per lookup.
 */
#ifndef NEXTHOP_LOOKUP_H
#define NEXTHOP_LOOKUP_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "pool.h"

#include <pthread.h>

#define CATCH_ALL_QUEUE 64

struct remote_rt {
    const struct remote_cfg *remote;
    struct pool *pool;
    struct cache *cache;
    struct cache *catch_all;   /* domains found to accept anything */
    /* Catch-all probes run on one background thread, never on the RCPT path. */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    char *queue[CATCH_ALL_QUEUE];
    int queued;
    bool prober_running, stopping;
    pthread_t prober;
};

struct remote_rt *remote_rt_create(const struct remote_cfg *r);
void remote_rt_destroy(struct remote_rt *rt);

struct lookup_info {
    bool cached;          /* answered from the cache (or a catch-all mark) */
    bool catch_all;       /* answered by a catch-all domain mark */
    long ms;              /* time taken */
    char reply[256];      /* remote reply, when one was read */
};

/*
 * kind/arg/password as for pool_lookup(). queue_id (may be NULL) goes into
 * the log line. Returns LOOKUP_YES/NO/ERROR (err set on ERROR).
 */
enum lookup_result lookup_run(struct remote_cfg *r, enum lookup_kind kind, const char *arg,
                              const char *password, const char *queue_id,
                              struct lookup_info *info, char *err, size_t errlen);

#endif
