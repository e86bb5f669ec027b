/*
 * lookup.c - remote lookups through the cache (see lookup.h).
 *
 * Cache keys: "<kind>:<address>" for rcpt/vrfy/expn, and for auth
 * "a:<user>\0<hex sha256(salt, user, password)>" with a random salt per
 * process, so neither memory nor Redis ever holds a password.
 * Must not: log a password, or cache an error or LOOKUP_UTF8_UNSUPPORTED
 * (not an answer about the user).
 */
#include "lookup.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "cache.h"
#include "catchall.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "redis.h"
#include "remote_set.h"
#include "request.h"
#include "util.h"

#define CACHE_TAG_REDIS 1   /* an answer the fleet cache gave */

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
    bool utf8_unsupported;    /* LOOKUP_UTF8_UNSUPPORTED: kept out of every cache */
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
    if (res == LOOKUP_UTF8_UNSUPPORTED) {
        /* not an answer about the user: the cache must not keep it as a no */
        ctx->utf8_unsupported = true;
        set_error(err, errlen, "%s", ctx->info->reply);
        return LOOKUP_ERROR;
    }
    redis_cache_put(ctx->rt->def, ctx->kind, key, keylen, res);
    return res;
}

/* Builds the cache key of an already normalized argument; returns its length. */
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
    return res == LOOKUP_YES ? "yes" : res == LOOKUP_NO ? "no"
           : res == LOOKUP_UTF8_UNSUPPORTED ? "utf8-unsupported" : "error";
}

/* arg as the remote is asked for it: local part lower-cased when the remote says so. */
static void normalize_arg(const struct remote_def *r, enum lookup_kind kind, const char *arg,
                          char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", arg);
    if (r->lowercase_localpart && kind != LOOKUP_AUTH)
        str_lower(out);
}

size_t lookup_key(const struct remote_def *r, enum lookup_kind kind, const char *arg,
                  const char *password, char *key, size_t keylen)
{
    char addr[ADDR_MAX + 1];
    normalize_arg(r, kind, arg, addr, sizeof addr);
    return make_key(kind, addr, password ? password : "", key, keylen);
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
    normalize_arg(r, kind, arg, addr, sizeof addr);
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
        struct fetch_ctx ctx = { rt, kind, addr, password, info, false, false };
        if (klen == 0) {
            set_error(err, errlen, "lookup key too long");
            return LOOKUP_ERROR;
        }
        res = cache_lookup(cache, key, klen, fetch_remote, &ctx, &src, err, errlen);
        if (ctx.from_redis && res >= 0)
            cache_tag(cache, key, klen, CACHE_TAG_REDIS);   /* for `show` */
        explicit_bzero(key, sizeof key);
        from_redis = ctx.from_redis;
        if (ctx.utf8_unsupported)
            res = LOOKUP_UTF8_UNSUPPORTED;
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
    if (res == LOOKUP_UTF8_UNSUPPORTED)
        set_error(err, errlen, "%s: %s does not offer SMTPUTF8", REQUEST_UTF8_REPLY, r->id);
    metrics_lookup(r->id, lookup_kind_name(kind), res == LOOKUP_UTF8_UNSUPPORTED ? LOOKUP_NO : res,
                   source, info->ms);
    return (enum lookup_result)res;
}

void lookup_cached(struct remote_rt *rt, const char *address, struct lookup_cached *out)
{
    char key[ADDR_MAX + 80];
    uint8_t tag = 0;
    memset(out, 0, sizeof *out);
    out->answer = -1;
    size_t klen = lookup_key(rt->def, LOOKUP_RCPT, address, NULL, key, sizeof key);
    if (klen)
        out->answer = cache_peek(rt->cache, key, klen, now_ms(), &out->ms_left, &tag);
    if (out->answer >= 0) {
        out->source = tag == CACHE_TAG_REDIS ? "redis" : "remote";
        return;
    }
    if (rt->catch_all && catchall_is(rt->catch_all, addr_domain(address))) {
        out->answer = 1;
        out->source = "catch-all";
    }
}

/* What lookup_forget matches: one address (its rcpt/vrfy keys, its AUTH user), or a domain. */
struct forget_match {
    const char *addr;         /* normalized address, or NULL */
    const char *domain;       /* domain, or NULL */
};

/* The address or user a cache key is about ("r:a@b", "a:user\0hash"), into buf. */
static const char *key_subject(const char *key, size_t keylen, char *buf, size_t len)
{
    if (keylen < 2 || key[1] != ':')
        return "";
    size_t n = strnlen(key + 2, keylen - 2);
    snprintf(buf, len, "%.*s", (int)n, key + 2);
    return buf;
}

static bool forget_matches(const char *key, size_t keylen, void *ctx)
{
    const struct forget_match *m = ctx;
    char subject[ADDR_MAX + 1];
    key_subject(key, keylen, subject, sizeof subject);
    if (m->addr)   /* in any case: forgetting Alice@ along with alice@ costs one lookup */
        return strcasecmp(subject, m->addr) == 0;
    const char *at = strrchr(subject, '@');
    return at && strcasecmp(at + 1, m->domain) == 0;
}

int lookup_forget(struct remote_rt *rt, const char *what, size_t *local_r, long *shared_r)
{
    char norm[ADDR_MAX + 1], glob[4 * ADDR_MAX + 16], esc[4 * ADDR_MAX + 2];
    struct forget_match m = { NULL, NULL };
    const char *domain = NULL;
    if (what && what[0] == '@') {
        m.domain = domain = what + 1;
        redis_cache_glob_escape(esc, sizeof esc, domain);
        snprintf(glob, sizeof glob, "[rv]:*@%s", esc);
    } else if (what) {
        normalize_arg(rt->def, LOOKUP_RCPT, what, norm, sizeof norm);
        m.addr = norm;
        domain = addr_domain(norm);
        redis_cache_glob_escape(esc, sizeof esc, norm);
        snprintf(glob, sizeof glob, "[rv]:%s", esc);
    }
    cache_match_fn match = what ? forget_matches : NULL;
    size_t local = cache_remove_if(rt->cache, match, &m);
    if (rt->auth_cache)
        local += cache_remove_if(rt->auth_cache, match, &m);
    if (rt->catch_all && (!what || *domain))
        local += catchall_forget(rt->catch_all, what ? domain : NULL);
    long shared = redis_cache_forget(rt->def, what ? glob : NULL);
    *local_r = local;
    *shared_r = shared;
    return shared < 0 ? -1 : 0;
}
