/*
 * pipeline.c - concurrent RCPT lookups sharing pooled connections
 * (pipeline.h: pool_pipelined_rcpt).
 *
 * A lookup that would otherwise wait for a connection (none idle, every
 * slot taken) and finds one in use by other probes, to a remote that
 * offers PIPELINING and with room (fewer than p->depth probes on it,
 * limits.requests not reached), joins it: its probe is queued on the
 * connection and its thread sleeps on a semaphore of its own (posted once
 * the lock is released, so it never wakes only to wait for the lock).
 * Otherwise it takes a connection from the pool and becomes the reader of
 * that connection. The reader writes every queued probe in one batch,
 * reads replies in order (smtp_probe_read), hands each answer to its
 * waiter (waking that waiter alone) and writes the probes queued
 * meanwhile; once its own answer is in (and the replies already buffered
 * are handed out), it passes the reading on to the oldest waiter (woken
 * once, to read its own answer) or, with none left, puts the connection
 * back in the pool.
 *
 * A probe's failure (4xx, a refused MAIL) is its own; a connection that
 * fails fails the probes it has sent (pool_lookup() may retry them once
 * on a fresh connection), and those only queued on it are run again
 * elsewhere. Each waiter gives up at its own deadline.
 *
 * Must not: hold p->mu across I/O, wake a waiter for anything but its
 * answer or its turn to read, or let a waiter's memory be used after it
 * returned (a waiter that gave up on a sent probe is freed by the reader).
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "pipeline.h"
#include "pool_impl.h"
#include "smtp_client.h"
#include "util.h"

/* One lookup on a shared connection; heap-allocated, since a waiter that
 * gave up leaves it to the reader. */
struct pwait {
    struct pwait *next;
    struct pwait *next_wake;        /* to be woken once p->mu is released */
    struct smtp_probe probe;
    sem_t wake;                     /* posted once: answered, or its turn to read */
    char arg[NET_ARG_MAX + 1];
    char reply[256], err[ERRLEN];
    bool sent;                      /* its RCPT went out */
    bool done;                      /* answered, or failed with the connection */
    bool lead;                      /* its turn to read the connection */
    bool abandoned;                 /* its caller gave up: whoever finishes it frees it */
    struct pool_outcome o;
};

static struct pwait *pwait_new(const char *arg)
{
    struct pwait *w = xcalloc(1, sizeof *w);
    sem_init(&w->wake, 0, 0);
    snprintf(w->arg, sizeof w->arg, "%s", arg);
    w->probe.arg = w->arg;
    w->probe.reply = w->reply;
    w->probe.replylen = sizeof w->reply;
    w->probe.err = w->err;
    w->probe.errlen = sizeof w->err;
    return w;
}

static void pwait_free(struct pwait *w)
{
    sem_destroy(&w->wake);
    free(w);
}

/* ------------------------------------------------------------ under p->mu */

static void enqueue(struct pconn *pc, struct pwait *w)
{
    struct pwait **pp = &pc->waiters;
    while (*pp)
        pp = &(*pp)->next;
    *pp = w;
    w->o.reused = pc->reused || pc->requests > 0;
    pc->pending++;
}

static void unlink_waiter(struct pconn *pc, struct pwait *w)
{
    for (struct pwait **pp = &pc->waiters; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            pc->pending--;
            return;
        }
    }
}

/*
 * Waiters to wake, posted only after p->mu is released: a waiter woken
 * while the lock is held would wake only to sleep again on the lock.
 */
struct wake_list {
    struct pwait *head;
};

static void wake_later(struct wake_list *wl, struct pwait *w)
{
    w->next_wake = wl->head;
    wl->head = w;
}

/* Without p->mu. A posted waiter may free itself at once: w is not touched after. */
static void wake_now(struct wake_list *wl)
{
    struct pwait *w = wl->head;
    wl->head = NULL;
    while (w) {
        struct pwait *next = w->next_wake;
        sem_post(&w->wake);
        w = next;
    }
}

/* The waiter w is finished: counted, woken (unless it is the reader), or
 * freed when its caller gave up. */
static void finish(struct pool *p, struct pconn *pc, struct pwait *w, const struct pwait *me,
                   struct wake_list *wl)
{
    unlink_waiter(pc, w);
    w->done = true;
    if (w->sent && !w->o.broke) {
        pc->requests++;
        pc->errors += w->probe.res == LOOKUP_ERROR;
        p->operations++;
    }
    if (w->abandoned)
        pwait_free(w);
    else if (w != me)
        wake_later(wl, w);
}

/* The connection failed: its sent probes fail with why, the others go elsewhere. */
static void fail_waiters(struct pool *p, struct pconn *pc, const char *why, const struct pwait *me,
                         struct wake_list *wl)
{
    while (pc->waiters) {
        struct pwait *w = pc->waiters;
        w->o.broke = w->sent;
        w->o.unsent = !w->sent;
        w->probe.res = LOOKUP_ERROR;
        snprintf(w->err, sizeof w->err, "%s", why);
        finish(p, pc, w, me, wl);
    }
}

static void unlink_active(struct pool *p, struct pconn *pc)
{
    for (struct pconn **pp = &p->active; *pp; pp = &(*pp)->next_active) {
        if (*pp == pc) {
            *pp = pc->next_active;
            break;
        }
    }
    pc->next_active = NULL;
}

/* A shared connection with room for one more probe, the least busy one. */
static struct pconn *joinable(struct pool *p)
{
    struct pconn *best = NULL;
    for (struct pconn *pc = p->active; pc; pc = pc->next_active) {
        if (pc->pending >= p->depth || pc->requests + pc->pending >= p->max_requests
            || pc->errors >= p->max_errors)
            continue;
        if (!best || pc->pending < best->pending)
            best = pc;
    }
    return best;
}

enum turn { TURN_DONE, TURN_LEAD, TURN_TIMEOUT };

/*
 * A joined waiter sleeps until its answer or its turn to read. Called with
 * p->mu held; returns with it held for TURN_LEAD and TURN_TIMEOUT (then a
 * sent probe is left to the reader), released for TURN_DONE.
 */
static enum turn wait_turn(struct pool *p, struct pconn *pc, struct pwait *w, int64_t deadline_ms)
{
    /* sem_timedwait (CLOCK_REALTIME) rather than sem_clockwait: the
     * sanitizers know it, so ThreadSanitizer sees the post order the
     * reader's writes before this thread's reads */
    struct timespec ts;
    pool_abstime(deadline_ms, CLOCK_REALTIME, &ts);   /* passed: times out at once */
    pthread_mutex_unlock(&p->mu);
    int rc;
    while ((rc = sem_timedwait(&w->wake, &ts)) < 0 && errno == EINTR)
        ;
    if (rc == 0 && w->done)   /* the post orders the reader's writes before this */
        return TURN_DONE;
    pthread_mutex_lock(&p->mu);
    if (rc < 0 && (w->done || w->lead)) {
        /* answered as the deadline came: its post is on the way */
        pthread_mutex_unlock(&p->mu);
        while (sem_wait(&w->wake) < 0 && errno == EINTR)
            ;
        pthread_mutex_lock(&p->mu);
    }
    if (w->done) {
        pthread_mutex_unlock(&p->mu);
        return TURN_DONE;
    }
    if (w->lead)
        return TURN_LEAD;
    if (w->sent)
        w->abandoned = true;
    else
        unlink_waiter(pc, w);
    return TURN_TIMEOUT;
}

/* ------------------------------------------------------------ the reader */

/*
 * me reads pc until its own probe is answered (or the connection fails),
 * writing the probes queued meanwhile before each read; then, while more
 * replies are already buffered, it hands them out too, and writes what was
 * queued since, so the next reader need not be woken for those. Called
 * with p->mu held, returns without it.
 */
static void read_until_answered(struct pool *p, struct pconn *pc, struct pwait *me,
                                int64_t deadline_ms)
{
    struct smtp_probe *batch[SMTP_PIPELINE_MAX];
    struct wake_list wl = { NULL };
    char err[ERRLEN];
    for (;;) {
        size_t n = 0;
        for (struct pwait *w = pc->waiters; w && n < SMTP_PIPELINE_MAX; w = w->next) {
            if (!w->sent) {
                w->sent = true;
                batch[n++] = &w->probe;
            }
        }
        bool must_read = !me->done;
        if (n == 0 && !must_read && !(pc->waiters && smtp_reply_buffered(pc->smtp)))
            break;
        pthread_mutex_unlock(&p->mu);
        wake_now(&wl);
        bool ok = n == 0 || smtp_probe_send(pc->smtp, batch, n, deadline_ms, err, sizeof err) == 0;
        if (ok && smtp_probes_awaiting(pc->smtp) > 0
            && (must_read ? !me->probe.answered : smtp_reply_buffered(pc->smtp)))
            ok = smtp_probe_read(pc->smtp, deadline_ms, err, sizeof err) != NULL;
        bool usable = ok && smtp_reusable(pc->smtp);
        pthread_mutex_lock(&p->mu);
        for (struct pwait *w = pc->waiters, *next; w; w = next) {
            next = w->next;
            if (!w->probe.answered)
                continue;
            /* e.g. 421: the connection went with this answer */
            w->o.broke = w->probe.res == LOOKUP_ERROR && !usable;
            finish(p, pc, w, me, &wl);
        }
        if (!usable)
            fail_waiters(p, pc, ok ? "connection closed by the remote" : err, me, &wl);
        if (me->done && !smtp_reply_buffered(pc->smtp) && n == 0)
            break;
    }
    pthread_mutex_unlock(&p->mu);
    wake_now(&wl);
}

/* After the reader's answer: the oldest waiter reads on; with only
 * waiters that gave up left, or none, the connection leaves the shared set. */
static void hand_over(struct pool *p, struct pconn *pc, const struct pwait *me)
{
    struct wake_list wl = { NULL };
    pthread_mutex_lock(&p->mu);
    for (struct pwait *w = pc->waiters; w; w = w->next) {
        if (!w->abandoned) {
            w->lead = true;
            wake_later(&wl, w);
            pthread_mutex_unlock(&p->mu);
            wake_now(&wl);
            return;
        }
    }
    if (pc->waiters)   /* replies nobody waits for: not worth reading */
        fail_waiters(p, pc, "abandoned", me, &wl);
    unlink_active(p, pc);
    pthread_mutex_unlock(&p->mu);
    /* the probes were counted one by one in finish() */
    if (smtp_probes_awaiting(pc->smtp) == 0)
        pool_put_conn(p, pc, 0, 0);
    else
        pool_close_conn(p, pc);
}

/* ------------------------------------------------------------ entry */

/* A connection of the pool's for w, which reads it; NULL with err. A
 * remote without PIPELINING gets the probe on it at once (*res set).
 * Called with p->mu held, returns with it held when a connection is
 * returned. */
static struct pconn *take_conn(struct pool *p, struct pwait *w, int64_t deadline_ms,
                               enum lookup_result *res, char *err, size_t errlen)
{
    pthread_mutex_unlock(&p->mu);
    struct pconn *pc = pool_get_conn(p, false, deadline_ms, err, errlen);
    if (pc && smtp_pipelining(pc->smtp)) {
        pthread_mutex_lock(&p->mu);
        pc->next_active = p->active;
        p->active = pc;
        enqueue(pc, w);
        w->o.reused = pc->reused;
        w->lead = true;
        return pc;
    }
    *res = LOOKUP_ERROR;
    if (!pc)
        return NULL;
    w->o.reused = pc->reused;
    *res = smtp_lookup(pc->smtp, LOOKUP_RCPT, w->arg, NULL, NULL, w->reply, sizeof w->reply,
                       deadline_ms, err, errlen);
    w->o.broke = *res == LOOKUP_ERROR && !smtp_reusable(pc->smtp);
    pool_put_conn(p, pc, 1, *res == LOOKUP_ERROR);
    return NULL;
}

/*
 * Under p->mu: a shared connection to join, or NULL: take one of its own.
 * Sharing only where the lookup would otherwise wait for a connection
 * (none idle, every slot taken): measured with Dovecot, one connection per
 * concurrent lookup answers sooner while the pool has them to give, since
 * limits.requests replaces a shared connection every few rounds and all
 * its lookups wait for its successor (README, Performance).
 */
static struct pconn *find_joinable(struct pool *p)
{
    if (p->idle || p->open < p->concurrency)
        return NULL;
    return joinable(p);
}

enum lookup_result pool_pipelined_rcpt(struct pool *p, const char *arg, char *reply,
                                       size_t replylen, int64_t deadline_ms,
                                       struct pool_outcome *o, char *err, size_t errlen)
{
    struct pwait *w = pwait_new(arg);
    enum lookup_result res;
    pthread_mutex_lock(&p->mu);
    struct pconn *pc = p->depth > 1 ? find_joinable(p) : NULL;
    if (pc) {
        enqueue(pc, w);
        if (wait_turn(p, pc, w, deadline_ms) == TURN_TIMEOUT) {
            bool sent = w->sent;   /* then the reader frees w */
            pthread_mutex_unlock(&p->mu);
            set_error(err, errlen, "timeout waiting for the reply to RCPT TO (%s)",
                      p->r->id ? p->r->id : p->r->ep.address);
            if (!sent)
                pwait_free(w);
            return LOOKUP_ERROR;
        }
    } else {
        pc = take_conn(p, w, deadline_ms, &res, err, errlen);
        if (!pc) {
            *o = w->o;
            snprintf(reply, replylen, "%s", w->reply);
            pwait_free(w);
            return res;
        }
    }
    if (!w->done) {   /* its turn to read, p->mu held */
        read_until_answered(p, pc, w, deadline_ms);
        hand_over(p, pc, w);
    }
    *o = w->o;
    res = w->probe.res;
    snprintf(reply, replylen, "%s", w->reply);
    if (res == LOOKUP_ERROR)
        set_error(err, errlen, "%s", w->err);
    pwait_free(w);
    return res;
}
