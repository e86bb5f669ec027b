/*
 * metrics.h - counters and latency histograms for Prometheus.
 *
 * Modules bump them with one call where the event happens (lookup.c after
 * a lookup, route.c after a relay, the services per request); the stats
 * listener renders them, together with the live cache and pool numbers its
 * caller gathers from the running remotes (struct metrics_remote_live), in
 * the Prometheus text format (version 0.0.4).
 *
 * Every bump is lock-free (relaxed atomics); a remote's counters live in a
 * slot found by its id, registered once under a lock. Counters live for the
 * whole process, across reloads; cache and pool numbers belong to each
 * remote's runtime (kept by a reload unless the remote changed).
 * Must not: block a mail thread, allocate on the bump path, take a label
 * value from a client (remote ids come from the config only), or know the
 * layers above (it is base: callers pass names and numbers).
 */
#ifndef NEXTHOP_METRICS_H
#define NEXTHOP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Process-wide events without a remote label. */
enum metrics_event {
    METRICS_AUTHSVC_OK = 0,      /* auth-service answered OK */
    METRICS_AUTHSVC_NO,          /* answered NO: wrong password or unknown user */
    METRICS_AUTHSVC_ERROR,       /* answered NO because the lookup failed */
    METRICS_AUTHSVC_BAD,         /* malformed or oversized request, dropped */
    METRICS_REDIS_ERROR,         /* a Redis command failed or timed out */
    METRICS_REDIS_CONNECT,       /* a connection to Redis was made */
    METRICS_SOCKETMAP_OK,        /* socketmap answered OK */
    METRICS_SOCKETMAP_NOTFOUND,  /* socketmap answered NOTFOUND */
    METRICS_SOCKETMAP_TEMP,      /* socketmap answered TEMP */
    METRICS_SOCKETMAP_PERM,      /* socketmap answered PERM (bad request) */
    METRICS_RELOAD_OK,           /* SIGUSR1 swapped in a new config */
    METRICS_RELOAD_FAILED,       /* SIGUSR1 found an invalid config */
    METRICS_RCPT_WOULD_REJECT,   /* session.rcpt.mode = report: accepted, enforce would say 550 */
    METRICS_RCPT_WOULD_TEMPFAIL, /* session.rcpt.mode = report: accepted, enforce would say 451 */
    METRICS_RCPT_ACCEPT_ON_ERROR,/* session.rcpt.on-error = accept: accepted after a failed lookup */
    METRICS_EVENT_COUNT
};

/* Where a lookup's answer came from (the source= of its log line). */
enum metrics_source {
    METRICS_SRC_REMOTE = 0, METRICS_SRC_CACHE, METRICS_SRC_STALE, METRICS_SRC_SHARED,
    METRICS_SRC_CATCH_ALL, METRICS_SRC_REDIS, METRICS_SRC_COUNT
};

/* Redis outcomes of the second-level cache, per remote. */
enum metrics_redis { METRICS_REDIS_HIT = 0, METRICS_REDIS_MISS, METRICS_REDIS_STORE, METRICS_REDIS_COUNT };

void metrics_count(enum metrics_event ev);

/*
 * One lookup finished: remote id, kind ("rcpt", "vrfy", "expn", "auth"),
 * its result (1 yes, 0 no, -1 error),
 * where the answer came from ("remote", "cache", "stale", "shared",
 * "catch-all", "redis"; anything else counts as "remote") and how long it took.
 */
void metrics_lookup(const char *remote, const char *kind, int result, const char *source,
                    long ms);

/* One relayed recipient got `code` from the next hop (2xx, 4xx, 5xx; 0 = none). */
void metrics_relay_rcpt(const char *remote, int code);
/* One relay transaction to `remote` took ms. */
void metrics_relay_time(const char *remote, long ms);

void metrics_redis(const char *remote, enum metrics_redis what);

/* The upper bounds of the latency buckets, in milliseconds (+Inf follows). */
extern const long metrics_buckets_ms[];
extern const size_t metrics_n_buckets;

/* The live numbers of one remote's cache and pool, gathered by the caller. */
struct metrics_remote_live {
    const char *remote;
    uint64_t hits_positive, hits_negative, misses, stale_served, evictions;
    uint64_t entries_positive, entries_negative;
    long open, idle, max_open, connects, operations;
    bool down;
};

/*
 * Renders every counter, plus the live numbers of the running remotes
 * (live[0..n_live-1]), as Prometheus text. Returns a malloc'd string
 * (*len_r its length).
 */
char *metrics_render(const struct metrics_remote_live *live, size_t n_live, size_t *len_r);

/* Forgets every counter: for tests only. */
void metrics_reset(void);

#endif
