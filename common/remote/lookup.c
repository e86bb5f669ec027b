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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "cache.h"
#include "catchall.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "redis.h"
#include "remote_set.h"
#include "util.h"

static unsigned char auth_salt[32];
static pthread_once_t salt_once = PTHREAD_ONCE_INIT;

static void salt_init(void)
{
    if (gnutls_rnd(GNUTLS_RND_KEY, auth_salt, sizeof auth_salt) != 0) {
        log_error("cannot get random bytes for the auth cache salt");
        abort();
    }
}

struct fetch_ctx {
    struct remote_rt *rt;
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
    int shared = redis_cache_get(ctx->rt->def, ctx->kind, key, keylen);
    if (shared >= 0) {
        ctx->from_redis = true;
        return shared;
    }
    ctx->info->cached = false;
    int res = pool_lookup(ctx->rt->pool, ctx->kind, ctx->arg, ctx->password, NULL,
                          ctx->info->reply, sizeof ctx->info->reply, err, errlen);
    redis_cache_put(ctx->rt->def, ctx->kind, key, keylen, res);
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

static const char *result_name(int res)
{
    return res == LOOKUP_YES ? "yes" : res == LOOKUP_NO ? "no" : "error";
}

/* The cache an answer of this kind lives in; NULL: never cached. */
static struct cache *cache_for(const struct remote_rt *rt, enum lookup_kind kind)
{
    return kind == LOOKUP_AUTH ? rt->auth_cache : kind == LOOKUP_EXPN ? NULL : rt->cache;
}

enum lookup_result lookup_run(struct remote_rt *rt, enum lookup_kind kind, const char *arg,
                              const char *password, const char *queue_id,
                              struct lookup_info *info, char *err, size_t errlen)
{
    const struct remote_def *r = rt->def;
    struct lookup_info local;
    char key[ADDR_MAX + 80], addr[ADDR_MAX + 1];
    int64_t start = now_ms();
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    info->cached = true;
    snprintf(addr, sizeof addr, "%s", arg);
    if (r->lowercase_localpart && kind != LOOKUP_AUTH)
        str_lower(addr);
    if (kind == LOOKUP_AUTH && !password)
        password = "";

    const char *domain = kind == LOOKUP_RCPT ? addr_domain(addr) : "";
    struct cache *cache = cache_for(rt, kind);
    int res;
    bool from_redis = false;
    enum cache_source src = CACHE_SRC_HIT;
    if (kind == LOOKUP_RCPT && rt->catch_all && catchall_is(rt->catch_all, domain)) {
        res = LOOKUP_YES;
        info->catch_all = true;
    } else if (!cache) {
        /* expn members and uncached AUTH (ttl.auth = 0) go to the remote every time */
        info->cached = false;
        res = pool_lookup(rt->pool, kind, addr, password, NULL, info->reply, sizeof info->reply,
                          err, errlen);
        src = CACHE_SRC_REMOTE;
    } else {
        size_t klen = make_key(kind, addr, password, key, sizeof key);
        struct fetch_ctx ctx = { rt, kind, addr, password, info, false };
        if (klen == 0) {
            set_error(err, errlen, "lookup key too long");
            return LOOKUP_ERROR;
        }
        res = cache_lookup(cache, key, klen, fetch_remote, &ctx, &src, err, errlen);
        explicit_bzero(key, sizeof key);
        from_redis = ctx.from_redis;
        info->cached = src != CACHE_SRC_REMOTE || from_redis;
        if (res == LOOKUP_YES && src == CACHE_SRC_REMOTE && !from_redis && kind == LOOKUP_RCPT &&
            rt->catch_all)
            catchall_learn(rt->catch_all, domain);
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
    metrics_lookup(r->id, lookup_kind_name(kind), res, source, info->ms);
    return (enum lookup_result)res;
}
