/*
 * pool_impl.h - the inside of a pool, shared by pool.c (slots, idle list,
 * health checks, one operation per connection, relays), pipeline.c
 * (concurrent RCPT probes sharing a connection) and pool_lookup.c (one
 * lookup, on a connection of its own or a shared one).
 *
 * Everyone else uses pool.h.
 *
 * Must not: be included outside the pool; hold p->mu across I/O.
 */
#ifndef NEXTHOP_POOL_IMPL_H
#define NEXTHOP_POOL_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "pool.h"

struct pwait;

struct pconn {
    struct pconn *next;             /* idle list */
    struct smtp_session *smtp;      /* one of smtp/imap is set */
    struct imap_session *imap;
    int64_t last_used;
    int requests, errors;
    bool reused;                    /* handed out from the idle list */
    /* pipeline.c: while shared by pipelined probes (on p->active) */
    struct pconn *next_active;
    struct pwait *waiters;          /* oldest first: sent, then queued */
    int pending;                    /* waiters */
};

struct pool {
    const struct remote_def *r;
    pthread_mutex_t mu;
    pthread_cond_t cv;              /* a slot or an idle connection came free */
    struct pconn *idle;             /* most recently used first */
    struct pconn *active;           /* shared by pipelined probes */
    int concurrency, max_requests, max_errors;
    int depth;                      /* probes one connection carries at once */
    int open, idle_count, max_open;
    long connects, operations;
    int64_t down_until, backoff_ms;
    char down_why[32];              /* "connect failed", "it refused our AUTH" */
};

/* A connection for one operation: a healthy idle one, or a new one.
 * fresh: always a new session, not logged in as the relay user. */
struct pconn *pool_get_conn(struct pool *p, bool fresh, int64_t deadline_ms, char *err,
                            size_t errlen);
/* Back to the idle list after `ops` operations (`failed` of them failed),
 * or closed when used up, failing or out of sync. Without the lock. */
void pool_put_conn(struct pool *p, struct pconn *pc, int ops, int failed);
/* Closes a connection and gives its slot back. Without the lock. */
void pool_close_conn(struct pool *p, struct pconn *pc);
/* The session is in step and may serve another operation. */
bool pool_conn_reusable(const struct pconn *pc);
/* deadline_ms (now_ms() clock) as an absolute time of clock for timed
 * waits; false when it has passed (*ts is then now). */
bool pool_abstime(int64_t deadline_ms, clockid_t clock, struct timespec *ts);

/* What became of a lookup, for pool_lookup()'s one retry. */
struct pool_outcome {
    bool reused;                    /* the connection had served before */
    bool broke;                     /* it failed before the answer came */
    bool unsent;                    /* it failed before the probe went out */
};

#endif
