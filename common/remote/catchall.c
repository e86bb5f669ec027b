/*
 * catchall.c - catch-all domain knowledge of one remote (catchall.h).
 * One mutex guards the probe queue; the table of answers is a cache of
 * its own (domain -> yes/no) with the remote's TTLs.
 * Must not: probe on the caller's thread, queue more than CATCH_ALL_QUEUE
 * domains (a full queue drops the request), or cache a failed probe.
 */
#include "catchall.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "cache.h"
#include "log.h"
#include "pool.h"
#include "util.h"

#define CATCH_ALL_DOMAINS 4096
#define CATCH_ALL_QUEUE 64

struct catchall {
    struct pool *pool;
    const char *remote_id;
    struct cache *known;          /* domain -> accepts any local part? */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    char *queue[CATCH_ALL_QUEUE];
    int queued;
    bool prober_running, stopping;
    pthread_t prober;
};

struct catchall *catchall_create(struct pool *pool, const char *remote_id, int64_t ttl_positive_ms,
                                 int64_t ttl_negative_ms)
{
    struct catchall *ca = xcalloc(1, sizeof *ca);
    ca->pool = pool;
    ca->remote_id = remote_id;
    ca->known = cache_create(CATCH_ALL_DOMAINS, ttl_positive_ms, ttl_negative_ms, 0);
    pthread_mutex_init(&ca->lock, NULL);
    pthread_cond_init(&ca->wake, NULL);
    return ca;
}

void catchall_destroy(struct catchall *ca)
{
    if (!ca)
        return;
    pthread_mutex_lock(&ca->lock);
    ca->stopping = true;
    pthread_cond_signal(&ca->wake);
    bool running = ca->prober_running;
    pthread_mutex_unlock(&ca->lock);
    if (running)
        pthread_join(ca->prober, NULL);
    for (int i = 0; i < ca->queued; i++)
        free(ca->queue[i]);
    pthread_mutex_destroy(&ca->lock);
    pthread_cond_destroy(&ca->wake);
    cache_destroy(ca->known);
    free(ca);
}

bool catchall_is(struct catchall *ca, const char *domain)
{
    return *domain && cache_get(ca->known, domain, strlen(domain), now_ms()) == 1;
}

/* One probe of a random local part at domain; its answer is remembered. */
static void probe(struct catchall *ca, const char *domain)
{
    char addr[ADDR_MAX], reply[256], err[ERRLEN];
    unsigned char rnd[8];
    size_t dlen = strlen(domain);
    if (cache_get(ca->known, domain, dlen, now_ms()) >= 0)
        return;
    if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd) != 0)
        return;
    snprintf(addr, sizeof addr, "nexthop-probe-%02x%02x%02x%02x%02x%02x%02x%02x@%s", rnd[0], rnd[1],
             rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], domain);
    int res = pool_lookup(ca->pool, LOOKUP_RCPT, addr, NULL, NULL, reply, sizeof reply, err,
                          sizeof err);
    if (res != LOOKUP_YES && res != LOOKUP_NO) {
        log_debug("remote=%s domain=%s catch-all probe failed: %s", ca->remote_id, domain, err);
        return;
    }
    cache_put(ca->known, domain, dlen, res == LOOKUP_YES, now_ms());
    if (res == LOOKUP_YES)
        log_info("remote=%s domain=%s accepts any local part: treated as catch-all", ca->remote_id,
                 domain);
}

static void *prober_main(void *arg)
{
    struct catchall *ca = arg;
    pthread_mutex_lock(&ca->lock);
    for (;;) {
        while (!ca->stopping && ca->queued == 0)
            pthread_cond_wait(&ca->wake, &ca->lock);
        if (ca->stopping)
            break;
        char *domain = ca->queue[--ca->queued];
        pthread_mutex_unlock(&ca->lock);
        probe(ca, domain);
        free(domain);
        pthread_mutex_lock(&ca->lock);
    }
    pthread_mutex_unlock(&ca->lock);
    return NULL;
}

static bool is_queued(const struct catchall *ca, const char *domain)
{
    for (int i = 0; i < ca->queued; i++)
        if (strcmp(ca->queue[i], domain) == 0)
            return true;
    return false;
}

void catchall_learn(struct catchall *ca, const char *domain)
{
    if (!*domain || cache_get(ca->known, domain, strlen(domain), now_ms()) >= 0)
        return;
    pthread_mutex_lock(&ca->lock);
    if (!is_queued(ca, domain) && !ca->stopping && ca->queued < CATCH_ALL_QUEUE) {
        if (!ca->prober_running) {
            sigset_t all, old;
            sigfillset(&all);   /* the prober must not take the daemon's signals */
            pthread_sigmask(SIG_SETMASK, &all, &old);
            ca->prober_running = pthread_create(&ca->prober, NULL, prober_main, ca) == 0;
            pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
        if (ca->prober_running) {
            ca->queue[ca->queued++] = xstrdup(domain);
            pthread_cond_signal(&ca->wake);
        }
    }
    pthread_mutex_unlock(&ca->lock);
}

struct domain_match {
    const char *domain;
    size_t len;
};

static bool matches_domain(const char *key, size_t keylen, void *ctx)
{
    const struct domain_match *m = ctx;
    return keylen == m->len && strncasecmp(key, m->domain, keylen) == 0;
}

size_t catchall_forget(struct catchall *ca, const char *domain)
{
    struct domain_match m = { domain, domain ? strlen(domain) : 0 };
    return cache_remove_if(ca->known, domain ? matches_domain : NULL, &m);
}
