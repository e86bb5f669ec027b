/*
 * remote.h - the definition of one remote host (remote.<id> in the
 * config): how to reach it (struct endpoint) and how the milter uses it -
 * connection limits, lookups, cache sizes and lifetimes.
 *
 * Plain, immutable data once loaded. The runtime that belongs to a remote
 * (pool, cache, catch-all knowledge) keeps its own copy (remote_def_dup),
 * so it can outlive the config it was built from across a reload.
 *
 * Must not: hold runtime state, or be printed whole (ep.auth_secret).
 */
#ifndef NEXTHOP_REMOTE_H
#define NEXTHOP_REMOTE_H

#include <stdbool.h>
#include <stdint.h>

#include "endpoint.h"

struct remote_def {
    char *id;
    struct endpoint ep;       /* address, port, protocol, timeout, TLS, our credentials */
    int concurrency;
    bool lookup;              /* may be used for lookups */
    bool lowercase_localpart;
    bool catch_all;           /* detect catch-all domains */
    int cache_entries;
    int64_t ttl_positive_ms, ttl_negative_ms, ttl_stale_ms, ttl_auth_ms;
    int limits_errors, limits_requests;
    int line;                 /* where it was defined, for messages */
};

/* A deep copy of d (secrets included); free it with remote_def_free(). */
struct remote_def *remote_def_dup(const struct remote_def *d);
/* Frees what d owns (wiping the secret), not d itself. */
void remote_def_clear(struct remote_def *d);
void remote_def_free(struct remote_def *d);
/* True when a and b define the same remote: every setting, secrets included. */
bool remote_def_equal(const struct remote_def *a, const struct remote_def *b);

#endif
