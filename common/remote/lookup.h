/*
 * lookup.h - a lookup against a remote host through its cache: what RCPT
 * validation, `in-list = "remote/<id>"`, `-q` and the auth service call.
 *
 * Builds the cache key (normalized address; for auth the user and a salted
 * hash of the password, never the password), asks the cache, and on a miss
 * the pool. Answers for a domain known to be a catch-all (catchall.h)
 * without asking; after a yes, has the domain probed. AUTH answers use
 * their own cache (ttl.auth; yes only, never stale). Logs one line per
 * lookup.
 */
#ifndef NEXTHOP_LOOKUP_H
#define NEXTHOP_LOOKUP_H

#include <stdbool.h>
#include <stddef.h>

#include "ops.h"

struct remote_rt;

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
enum lookup_result lookup_run(struct remote_rt *rt, enum lookup_kind kind, const char *arg,
                              const char *password, const char *queue_id,
                              struct lookup_info *info, char *err, size_t errlen);

#endif
