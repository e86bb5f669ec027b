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
 *
 * Must not: cache an error, or let a password reach a cache key, a log
 * line or Redis (an auth key holds a salted hash, and only locally).
 */
#ifndef NEXTHOP_LOOKUP_H
#define NEXTHOP_LOOKUP_H

#include <stdbool.h>
#include <stddef.h>

#include <stdint.h>

#include "ops.h"
#include "remote.h"

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

/*
 * The cache key of a lookup, as lookup_run() builds it (the address
 * normalized as the remote wants it; for auth the user and a salted hash of
 * the password). Returns its length, 0 when it does not fit.
 */
size_t lookup_key(const struct remote_def *r, enum lookup_kind kind, const char *arg,
                  const char *password, char *key, size_t keylen);

/* What the caches of a remote know of one recipient, for the control socket's `show`. */
struct lookup_cached {
    int answer;           /* 1 yes, 0 no, -1 not known */
    int64_t ms_left;      /* time to expiry; negative: a yes served stale while refreshed */
    const char *source;   /* "remote", "redis" or "catch-all" (its domain accepts anything) */
};
void lookup_cached(struct remote_rt *rt, const char *address, struct lookup_cached *out);

/*
 * Forgets what rt learned about what: an address ("alice@example.org"), a
 * domain ("@example.org") or everything (NULL): rcpt and vrfy answers and
 * AUTH checks of that user, in the local caches and in Redis (when
 * cache.redis is set), and the catch-all mark of the domain. *local_r gets
 * how many local entries went, *shared_r how many Redis entries (-1 when
 * Redis failed: returns -1 then, the local entries are gone all the same).
 */
int lookup_forget(struct remote_rt *rt, const char *what, size_t *local_r, long *shared_r);

#endif
