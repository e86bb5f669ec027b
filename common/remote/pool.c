/*
 * pool.c - pooled client connections to one remote host (pool.h): the
 * slots, the idle list, health checks, relays. A lookup runs through
 * pool_lookup.c, which shares RCPT probes through pipeline.c; both take
 * their connections from here (pool_impl.h).
 *
 * One mutex guards the counters and the idle list; connecting, TLS and
 * protocol work always happen outside it. A slot (`open`) is taken before
 * connecting and given back only after the socket is closed, so the remote
 * never sees more than `concurrency` connections from this pool. Callers
 * that find every slot busy wait on a condition variable (monotonic clock)
 * until their deadline.
 *
 * Must not: cache answers, log secrets, hold the lock across I/O, or call
 * up into pool_lookup.c or pipeline.c.
 */
#include "pool_impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imap_client.h"
#include "log.h"
#include "request.h"
#include "smtp_client.h"
#include "util.h"

#define POOL_IDLE_MAX_MS 30000      /* idle connections older than this are closed */
#define POOL_FRESH_MS 1500          /* used this recently: reused without any check */
#define POOL_NOOP_AFTER_MS 5000     /* idle longer than this: NOOP before reuse */
#define POOL_DOWN_MIN_MS 1000
#define POOL_DOWN_MAX_MS 30000

/* RCPT probes one shared connection carries at once (pipeline.c) */
#define POOL_PIPELINE_DEPTH 10

/* ------------------------------------------------------------ lifecycle */

struct pool *pool_create(const struct remote_def *remote)
{
    struct pool *p = xcalloc(1, sizeof *p);
    pthread_condattr_t ca;
    p->r = remote;
    p->concurrency = remote->concurrency > 0 ? remote->concurrency : 10;
    p->max_requests = remote->limits_requests > 0 ? remote->limits_requests : 50;
    p->max_errors = remote->limits_errors > 0 ? remote->limits_errors : 3;
    p->backoff_ms = POOL_DOWN_MIN_MS;
    p->depth = POOL_PIPELINE_DEPTH;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    return p;
}

static void pconn_close(struct pconn *pc)
{
    if (pc->smtp)
        smtp_close(pc->smtp);
    if (pc->imap)
        imap_close(pc->imap);
    free(pc);
}

void pool_destroy(struct pool *p)
{
    if (!p)
        return;
    while (p->idle) {
        struct pconn *pc = p->idle;
        p->idle = pc->next;
        pconn_close(pc);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void pool_get_stats(struct pool *p, struct pool_stats *st)
{
    pthread_mutex_lock(&p->mu);
    st->open = p->open;
    st->idle = p->idle_count;
    st->max_open = p->max_open;
    st->connects = p->connects;
    st->operations = p->operations;
    st->down = now_ms() < p->down_until;
    st->pipelined = 0;
    for (const struct pconn *pc = p->active; pc; pc = pc->next_active)
        st->pipelined += pc->pending;
    pthread_mutex_unlock(&p->mu);
}

/* ------------------------------------------------------------ slots */

bool pool_conn_reusable(const struct pconn *pc)
{
    return pc->smtp ? smtp_reusable(pc->smtp) : imap_reusable(pc->imap);
}

void pool_close_conn(struct pool *p, struct pconn *pc)
{
    pconn_close(pc);
    pthread_mutex_lock(&p->mu);
    p->open--;
    pthread_cond_signal(&p->cv);   /* one slot: one waiter */
    pthread_mutex_unlock(&p->mu);
}

/* Under the lock: unlinks idle connections past POOL_IDLE_MAX_MS into *stale. */
static void take_expired(struct pool *p, int64_t now, struct pconn **stale)
{
    struct pconn **pp = &p->idle;
    while (*pp) {
        struct pconn *pc = *pp;
        if (now - pc->last_used > POOL_IDLE_MAX_MS) {
            *pp = pc->next;
            p->idle_count--;
            pc->next = *stale;
            *stale = pc;
        } else {
            pp = &pc->next;
        }
    }
}

static struct pconn *pop_idle(struct pool *p)
{
    struct pconn *pc = p->idle;
    p->idle = pc->next;
    p->idle_count--;
    pc->next = NULL;
    pc->reused = true;
    return pc;
}

bool pool_abstime(int64_t deadline_ms, clockid_t clock, struct timespec *ts)
{
    clock_gettime(clock, ts);
    int64_t left = deadline_ms - now_ms();
    if (left <= 0)
        return false;
    ts->tv_sec += left / 1000;
    ts->tv_nsec += (left % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
    return true;
}

static int wait_until(struct pool *p, int64_t deadline_ms)
{
    struct timespec ts;
    if (!pool_abstime(deadline_ms, CLOCK_MONOTONIC, &ts))
        return ETIMEDOUT;
    return pthread_cond_timedwait(&p->cv, &p->mu, &ts);
}

enum grab { GRAB_FAIL = -1, GRAB_REUSE, GRAB_OPEN, GRAB_RETRY };

/*
 * Under the lock: an idle connection (unless fresh), or a free slot to
 * open one (for fresh, an idle connection may be given up: *victim is to
 * be closed and its slot is ours), or RETRY after *stale were taken out.
 */
static enum grab grab_locked(struct pool *p, bool fresh, int64_t deadline_ms,
                             struct pconn **pc, struct pconn **victim, struct pconn **stale,
                             char *err, size_t errlen)
{
    for (;;) {
        int64_t now = now_ms();
        if (now < p->down_until) {
            set_error(err, errlen, "host marked down (%s; retry in %lld ms)", p->down_why,
                      (long long)(p->down_until - now));
            return GRAB_FAIL;
        }
        take_expired(p, now, stale);
        if (!fresh && p->idle) {
            *pc = pop_idle(p);
            return GRAB_REUSE;
        }
        if (p->open < p->concurrency) {
            p->open++;
            if (p->open > p->max_open)
                p->max_open = p->open;
            return GRAB_OPEN;
        }
        if (p->idle) {
            *victim = pop_idle(p);
            return GRAB_OPEN;
        }
        if (*stale)
            return GRAB_RETRY;
        if (now >= deadline_ms) {
            set_error(err, errlen, "pool busy: all %d connections in use", p->concurrency);
            return GRAB_FAIL;
        }
        wait_until(p, deadline_ms);
    }
}

static void mark_down_locked(struct pool *p)
{
    int64_t now = now_ms();
    if (now < p->down_until)
        return;   /* another caller already marked it */
    p->down_until = now + p->backoff_ms;
    log_debug("remote %s: marked down for %lld ms", p->r->id ? p->r->id : "?",
              (long long)p->backoff_ms);
    p->backoff_ms *= 2;
    if (p->backoff_ms > POOL_DOWN_MAX_MS)
        p->backoff_ms = POOL_DOWN_MAX_MS;
}

/* Opens a session in a slot already taken. On failure the slot is given back. */
static struct pconn *pconn_open(struct pool *p, bool with_auth, int64_t deadline_ms, char *err,
                                size_t errlen)
{
    struct pconn *pc = xcalloc(1, sizeof *pc);
    const char *down_why = NULL;
    if (p->r->ep.protocol == PROTO_IMAP)
        pc->imap = imap_open(&p->r->ep, deadline_ms, &down_why, err, errlen);
    else
        pc->smtp = smtp_open(&p->r->ep, with_auth, deadline_ms, &down_why, err, errlen);
    pthread_mutex_lock(&p->mu);
    if (!pc->smtp && !pc->imap) {
        p->open--;
        if (down_why) {
            snprintf(p->down_why, sizeof p->down_why, "%s", down_why);
            mark_down_locked(p);
        }
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        free(pc);
        return NULL;
    }
    p->connects++;
    p->down_until = 0;
    p->backoff_ms = POOL_DOWN_MIN_MS;
    pthread_mutex_unlock(&p->mu);
    log_debug("remote %s: new connection", p->r->id ? p->r->id : "?");
    return pc;
}

/*
 * A reused connection must still be alive. Used within POOL_FRESH_MS: no
 * check at all (a server that closed it meanwhile makes the lookup fail,
 * and pool_lookup() retries once on a fresh connection); idle longer: the
 * socket must be quiet (no EOF, no unsolicited 421); after
 * POOL_NOOP_AFTER_MS it must answer NOOP too.
 */
static bool pconn_healthy(struct pconn *pc, int64_t deadline_ms)
{
    char tmp[ERRLEN];
    int64_t idle = now_ms() - pc->last_used;
    if (idle <= POOL_FRESH_MS)
        return true;
    bool alive = pc->smtp ? smtp_idle_ok(pc->smtp) : imap_idle_ok(pc->imap);
    if (!alive)
        return false;
    if (idle <= POOL_NOOP_AFTER_MS)
        return true;
    int rc = pc->smtp ? smtp_noop(pc->smtp, deadline_ms, tmp, sizeof tmp)
                      : imap_noop(pc->imap, deadline_ms, tmp, sizeof tmp);
    if (rc < 0)
        log_debug("remote: idle connection failed its NOOP check: %s", tmp);
    return rc == 0;
}

static void close_list(struct pool *p, struct pconn *list)
{
    while (list) {
        struct pconn *next = list->next;
        pool_close_conn(p, list);
        list = next;
    }
}

struct pconn *pool_get_conn(struct pool *p, bool fresh, int64_t deadline_ms, char *err,
                            size_t errlen)
{
    for (;;) {
        struct pconn *pc = NULL, *victim = NULL, *stale = NULL;
        pthread_mutex_lock(&p->mu);
        enum grab g = grab_locked(p, fresh, deadline_ms, &pc, &victim, &stale, err, errlen);
        pthread_mutex_unlock(&p->mu);
        close_list(p, stale);
        if (g == GRAB_FAIL)
            return NULL;
        if (g == GRAB_RETRY)
            continue;
        if (g == GRAB_REUSE) {
            if (pconn_healthy(pc, deadline_ms))
                return pc;
            pool_close_conn(p, pc);
            continue;
        }
        if (victim)
            pconn_close(victim);   /* its slot is now ours */
        return pconn_open(p, !fresh, deadline_ms, err, errlen);
    }
}

void pool_put_conn(struct pool *p, struct pconn *pc, int ops, int failed)
{
    pc->requests += ops;
    pc->errors += failed;
    bool keep = pool_conn_reusable(pc) && pc->requests < p->max_requests
                && pc->errors < p->max_errors;
    struct pconn *stale = NULL;
    pthread_mutex_lock(&p->mu);
    p->operations += ops;
    take_expired(p, now_ms(), &stale);
    if (keep) {
        pc->last_used = now_ms();
        pc->reused = false;
        pc->next = p->idle;
        p->idle = pc;
        p->idle_count++;
        pthread_cond_signal(&p->cv);   /* one connection: one waiter */
    }
    pthread_mutex_unlock(&p->mu);
    close_list(p, stale);
    if (!keep)
        pool_close_conn(p, pc);
}

/* ------------------------------------------------------------ relay */

static void fail_all(const struct pool *p, struct relay_rcpt *rcpts, size_t n, const char *why)
{
    request_fail_all(rcpts, n, p->r->id ? p->r->id : p->r->ep.address, why);
}

int pool_relay(struct pool *p, const char *sender, struct relay_rcpt *rcpts, size_t n,
               struct spool *msg, void (*progress)(void *ctx), void *ctx, int64_t deadline_ms,
               char *err, size_t errlen)
{
    if (request_check_relay(p->r->ep.protocol, sender, rcpts, n, err, errlen) < 0) {
        fail_all(p, rcpts, n, err);
        return -1;
    }
    for (int attempt = 0;; attempt++) {
        struct pconn *pc = pool_get_conn(p, false, deadline_ms, err, errlen);
        if (!pc) {
            fail_all(p, rcpts, n, err);
            return -1;
        }
        bool reused = pc->reused;
        int rc = smtp_relay(pc->smtp, sender, rcpts, n, msg, progress, ctx, deadline_ms, err,
                            errlen);
        pool_put_conn(p, pc, 1, rc < 0);
        /* Nothing was committed (no DATA sent): a dropped reused connection is retried. */
        if (rc == SMTP_RELAY_RETRYABLE && reused && attempt == 0 && now_ms() < deadline_ms) {
            log_debug("remote %s: reused connection failed before DATA (%s), retrying",
                      p->r->id ? p->r->id : "?", err);
            continue;
        }
        return rc < 0 ? -1 : 0;
    }
}
