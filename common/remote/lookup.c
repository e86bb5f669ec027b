/*
 * lookup.c - remote lookups through the cache (see lookup.h).
 *
 * Cache keys: "<kind>:<address>" for rcpt/vrfy/expn, and for auth
 * "a:<user>\0<hex sha256(salt, user, password)>" with a random salt per
 * process, so neither memory nor Redis ever holds a password.
 * Must not: log a password, or cache an error.
 */
#include "lookup.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "cache.h"
#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "util.h"

#define CATCH_ALL_DOMAINS 4096

static unsigned char auth_salt[32];
static pthread_once_t salt_once = PTHREAD_ONCE_INIT;

static void salt_init(void)
{
    if (gnutls_rnd(GNUTLS_RND_KEY, auth_salt, sizeof auth_salt) != 0) {
        log_error("cannot get random bytes for the auth cache salt");
        abort();
    }
}

struct remote_rt *remote_rt_create(const struct remote_cfg *r)
{
    struct remote_rt *rt = xcalloc(1, sizeof *rt);
    rt->remote = r;
    pthread_mutex_init(&rt->lock, NULL);
    pthread_cond_init(&rt->wake, NULL);
    rt->pool = pool_create(r);
    rt->cache = cache_create((size_t)r->cache_entries, r->ttl_positive_ms, r->ttl_negative_ms,
                             r->ttl_stale_ms);
    rt->catch_all = cache_create(CATCH_ALL_DOMAINS, r->ttl_positive_ms, r->ttl_negative_ms, 0);
    if (!rt->pool || !rt->cache || !rt->catch_all) {
        remote_rt_destroy(rt);
        return NULL;
    }
    return rt;
}

void remote_rt_destroy(struct remote_rt *rt)
{
    if (!rt)
        return;
    pthread_mutex_lock(&rt->lock);
    rt->stopping = true;
    pthread_cond_signal(&rt->wake);
    bool running = rt->prober_running;
    pthread_mutex_unlock(&rt->lock);
    if (running)
        pthread_join(rt->prober, NULL);
    for (int i = 0; i < rt->queued; i++)
        free(rt->queue[i]);
    pthread_mutex_destroy(&rt->lock);
    pthread_cond_destroy(&rt->wake);
    if (rt->pool)
        pool_destroy(rt->pool);
    if (rt->cache)
        cache_destroy(rt->cache);
    if (rt->catch_all)
        cache_destroy(rt->catch_all);
    free(rt);
}

struct fetch_ctx {
    struct remote_cfg *remote;
    enum lookup_kind kind;
    const char *arg;
    const char *password;
    struct lookup_info *info;
    bool from_redis;          /* answered by cache.redis */
};

/* A local miss: ask the shared cache (cache.redis, if set), then the remote. */
static int fetch_remote(void *vctx, const char *key, size_t keylen, char *err, size_t errlen)
{
    struct fetch_ctx *ctx = vctx;
    int shared = redis_cache_get(ctx->remote, ctx->kind, key, keylen);
    if (shared >= 0) {
        ctx->from_redis = true;
        return shared;
    }
    ctx->info->cached = false;
    int res = pool_lookup(ctx->remote->rt->pool, ctx->kind, ctx->arg, ctx->password, NULL,
                          ctx->info->reply, sizeof ctx->info->reply, err, errlen);
    redis_cache_put(ctx->remote, ctx->kind, key, keylen, res);
    return res;
}

/* Builds the cache key; returns its length. */
static size_t make_key(enum lookup_kind kind, const char *arg, const char *password, char *key,
                       size_t keylen)
{
    static const char kinds[] = "rvea";
    int n = snprintf(key, keylen, "%c:%s", kinds[kind], arg);
    if (n < 0 || (size_t)n >= keylen)
        return 0;
    if (kind != LOOKUP_AUTH)
        return (size_t)n;
    pthread_once(&salt_once, salt_init);
    unsigned char digest[32];
    gnutls_hash_hd_t h;
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
        return 0;
    gnutls_hash(h, auth_salt, sizeof auth_salt);
    gnutls_hash(h, arg, strlen(arg) + 1);
    gnutls_hash(h, password, strlen(password));
    gnutls_hash_deinit(h, digest);
    if ((size_t)n + 1 + 2 * sizeof digest >= keylen)
        return 0;
    key[n++] = '\0';
    for (size_t i = 0; i < sizeof digest; i++)
        n += snprintf(key + n, keylen - (size_t)n, "%02x", digest[i]);
    return (size_t)n;
}

/*
 * After a yes for user@domain, ask once per domain (per positive TTL)
 * whether the host accepts a random local part too: then the domain is a
 * catch-all and later recipients there need no probe.
 */
static void probe_catch_all(struct remote_rt *rt, const char *domain)
{
    char probe[ADDR_MAX], reply[256], err[ERRLEN];
    unsigned char rnd[8];
    size_t dlen = strlen(domain);
    if (cache_get(rt->catch_all, domain, dlen, now_ms()) >= 0)
        return;
    if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd) != 0)
        return;
    snprintf(probe, sizeof probe, "nexthop-probe-%02x%02x%02x%02x%02x%02x%02x%02x@%s", rnd[0], rnd[1],
             rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], domain);
    int res = pool_lookup(rt->pool, LOOKUP_RCPT, probe, NULL, NULL, reply, sizeof reply, err,
                          sizeof err);
    if (res == LOOKUP_ERROR) {
        log_debug("remote=%s domain=%s catch-all probe failed: %s", rt->remote->id, domain, err);
        return;
    }
    cache_put(rt->catch_all, domain, dlen, res == LOOKUP_YES, now_ms());
    if (res == LOOKUP_YES)
        log_info("remote=%s domain=%s accepts any local part: treated as catch-all",
                 rt->remote->id, domain);
}

static void *prober_main(void *arg)
{
    struct remote_rt *rt = arg;
    pthread_mutex_lock(&rt->lock);
    for (;;) {
        while (!rt->stopping && rt->queued == 0)
            pthread_cond_wait(&rt->wake, &rt->lock);
        if (rt->stopping)
            break;
        char *domain = rt->queue[--rt->queued];
        pthread_mutex_unlock(&rt->lock);
        probe_catch_all(rt, domain);
        free(domain);
        pthread_mutex_lock(&rt->lock);
    }
    pthread_mutex_unlock(&rt->lock);
    return NULL;
}

/* Queues a catch-all probe for domain (dropped when the queue is full). */
static void learn_catch_all(struct remote_rt *rt, const char *domain)
{
    if (!*domain || cache_get(rt->catch_all, domain, strlen(domain), now_ms()) >= 0)
        return;
    pthread_mutex_lock(&rt->lock);
    bool queued = false;
    for (int i = 0; i < rt->queued; i++)
        queued |= strcmp(rt->queue[i], domain) == 0;
    if (!queued && !rt->stopping && rt->queued < CATCH_ALL_QUEUE) {
        if (!rt->prober_running) {
            sigset_t all, old;
            sigfillset(&all);   /* the prober must not take the daemon's signals */
            pthread_sigmask(SIG_SETMASK, &all, &old);
            rt->prober_running = pthread_create(&rt->prober, NULL, prober_main, rt) == 0;
            pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
        if (rt->prober_running) {
            rt->queue[rt->queued++] = xstrdup(domain);
            pthread_cond_signal(&rt->wake);
        }
    }
    pthread_mutex_unlock(&rt->lock);
}

static const char *result_name(int res)
{
    return res == LOOKUP_YES ? "yes" : res == LOOKUP_NO ? "no" : "error";
}

enum lookup_result lookup_run(struct remote_cfg *r, enum lookup_kind kind, const char *arg,
                              const char *password, const char *queue_id,
                              struct lookup_info *info, char *err, size_t errlen)
{
    struct lookup_info local;
    char key[ADDR_MAX + 80], addr[ADDR_MAX + 1];
    int64_t start = now_ms();
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    info->cached = true;
    if (!r->rt) {
        set_error(err, errlen, "remote %s is not started", r->id);
        return LOOKUP_ERROR;
    }
    snprintf(addr, sizeof addr, "%s", arg);
    if (r->lowercase_localpart && kind != LOOKUP_AUTH)
        str_lower(addr);
    if (kind == LOOKUP_AUTH && !password)
        password = "";

    const char *domain = kind == LOOKUP_RCPT ? addr_domain(addr) : "";
    int res;
    bool from_redis = false;
    enum cache_source src = CACHE_SRC_HIT;
    if (kind == LOOKUP_RCPT && r->catch_all && *domain &&
        cache_get(r->rt->catch_all, domain, strlen(domain), now_ms()) == 1) {
        res = LOOKUP_YES;
        info->catch_all = true;
    } else if (kind == LOOKUP_EXPN) {
        /* members are not cached; expn goes to the remote every time */
        info->cached = false;
        res = pool_lookup(r->rt->pool, kind, addr, NULL, NULL, info->reply, sizeof info->reply, err, errlen);
        src = CACHE_SRC_REMOTE;
    } else {
        size_t klen = make_key(kind, addr, password, key, sizeof key);
        struct fetch_ctx ctx = { r, kind, addr, password, info, false };
        if (klen == 0) {
            set_error(err, errlen, "lookup key too long");
            return LOOKUP_ERROR;
        }
        res = cache_lookup(r->rt->cache, key, klen, fetch_remote, &ctx, &src, err, errlen);
        explicit_bzero(key, sizeof key);
        from_redis = ctx.from_redis;
        info->cached = src != CACHE_SRC_REMOTE || from_redis;
        if (res == LOOKUP_YES && src == CACHE_SRC_REMOTE && !from_redis && kind == LOOKUP_RCPT &&
            r->catch_all)
            learn_catch_all(r->rt, domain);
    }
    info->ms = (long)(now_ms() - start);
    static const char *const src_names[] = { "remote", "cache", "stale", "shared" };
    const char *source = info->catch_all ? "catch-all" : from_redis ? "redis" : src_names[src];
    char shown[ADDR_MAX + 1];
    str_printable(shown, sizeof shown, arg);
    log_info("lookup: queue=%s %s=<%s> remote=%s kind=%s result=%s source=%s ms=%ld%s%s%s",
             queue_id ? queue_id : "-", kind == LOOKUP_AUTH ? "user" : "rcpt", shown, r->id,
             lookup_kind_name(kind), result_name(res),
             source, info->ms,
             res == LOOKUP_ERROR ? " error=\"" : *info->reply ? " reply=\"" : "",
             res == LOOKUP_ERROR ? err : info->reply, res == LOOKUP_ERROR || *info->reply ? "\"" : "");
    metrics_lookup(r->id, kind, res, source, info->ms);
    return (enum lookup_result)res;
}
