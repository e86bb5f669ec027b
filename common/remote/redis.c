/*
 * redis.c - the cache.redis client (see redis.h), on hiredis.
 *
 * One connection, used under a lock: each command is a single round trip
 * of well under a millisecond on a LAN, bounded by REDIS_TIMEOUT_MS, and
 * single-flight in cache.c already folds concurrent misses of one key.
 * Any failure drops the connection and marks Redis down until
 * `down_until`; that time is read without the lock, so while Redis is
 * down lookups skip it at the cost of one atomic load. The pause grows
 * with each failure and only a command that succeeds ends it: a Redis
 * that accepts connections but never answers (hung) is not "back".
 * Must not: block longer than REDIS_TIMEOUT_MS per call, log per lookup
 * while Redis is down (only the transitions), or store auth answers.
 */
#include "redis.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

#define REDIS_TIMEOUT_MS 100
#define REDIS_BACKOFF_MIN_MS 1000
#define REDIS_BACKOFF_MAX_MS 30000
#define REDIS_KEY_MAX 1024
#define REDIS_FORGET_MAX_MS 5000   /* a flush gives up (answering an error) after this */

/* "unix:/path", "host:port", "[v6]:port" -> host/path and port (0 for unix). */
static int parse_address(const char *address, char *host, size_t hlen, int *port_r)
{
    if (strncmp(address, "unix:", 5) == 0) {
        *port_r = 0;
        return address[5] == '/' && strlen(address + 5) < hlen
                   ? (snprintf(host, hlen, "%s", address + 5), 0) : -1;
    }
    const char *colon = strrchr(address, ':');
    if (!colon || colon == address)
        return -1;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535)
        return -1;
    const char *h = address;
    size_t n = (size_t)(colon - address);
    if (*h == '[') {
        if (n < 3 || colon[-1] != ']')
            return -1;
        h++;
        n -= 2;
    }
    if (n >= hlen)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    *port_r = (int)port;
    return 0;
}

int redis_cache_check(const char *address, char *err, size_t errlen)
{
    char host[256];
    int port;
    if (!address)
        return 0;
    if (parse_address(address, host, sizeof host, &port) < 0) {
        set_error(err, errlen, "cache.redis: '%s' is not ADDRESS:PORT or unix:/path", address);
        return -1;
    }
#ifndef NEXTHOP_HAVE_HIREDIS
    set_error(err, errlen, "cache.redis is set but this build has no hiredis "
                           "(install libhiredis-dev and build again)");
    return -1;
#endif
    return 0;
}

#ifdef NEXTHOP_HAVE_HIREDIS
#include <hiredis/hiredis.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool enabled;
static _Atomic int64_t down_until;    /* now_ms() before which Redis is skipped */
static struct {
    char *address, *prefix;
    char host[256];
    int port;
    redisContext *ctx;
    int64_t backoff_ms;
    bool down;                         /* for logging transitions only */
} rs;

static void mark_down(const char *reason)
{
    char why[256];
    snprintf(why, sizeof why, "%s", reason && *reason ? reason : "no answer");
    if (rs.ctx) {
        redisFree(rs.ctx);
        rs.ctx = NULL;
    }
    rs.backoff_ms = rs.backoff_ms ? rs.backoff_ms * 2 : REDIS_BACKOFF_MIN_MS;
    if (rs.backoff_ms > REDIS_BACKOFF_MAX_MS)
        rs.backoff_ms = REDIS_BACKOFF_MAX_MS;
    atomic_store(&down_until, now_ms() + rs.backoff_ms);
    metrics_count(METRICS_REDIS_ERROR);
    if (!rs.down)
        log_warning("cache.redis: %s unavailable (%s): lookups go to the remote hosts; retrying "
                    "with a growing pause", rs.address, why);
    rs.down = true;
}

/* Called with the lock held. */
static bool ensure_connected(void)
{
    struct timeval tv = { .tv_sec = 0, .tv_usec = REDIS_TIMEOUT_MS * 1000 };
    if (rs.ctx)
        return true;
    rs.ctx = rs.port ? redisConnectWithTimeout(rs.host, rs.port, tv)
                     : redisConnectUnixWithTimeout(rs.host, tv);
    if (!rs.ctx || rs.ctx->err) {
        mark_down(rs.ctx ? rs.ctx->errstr : "out of memory");
        return false;
    }
    redisSetTimeout(rs.ctx, tv);
    metrics_count(METRICS_REDIS_CONNECT);
    log_debug("cache.redis: connected to %s", rs.address);
    return true;
}

/* A command got its answer: Redis works. Called with the lock held. */
static void mark_up(void)
{
    if (rs.down)
        log_info("cache.redis: %s is back", rs.address);
    rs.down = false;
    rs.backoff_ms = 0;
}

static void clear_locked(void)
{
    if (rs.ctx)
        redisFree(rs.ctx);
    free(rs.address);
    free(rs.prefix);
    memset(&rs, 0, sizeof rs);
    atomic_store(&down_until, 0);
}

int redis_cache_configure(const char *address, const char *prefix, char *err, size_t errlen)
{
    char host[256] = "";
    int port = 0;
    if (redis_cache_check(address, err, errlen) < 0)
        return -1;
    if (address)
        parse_address(address, host, sizeof host, &port);
    pthread_mutex_lock(&lock);
    bool same = address && rs.address && strcmp(address, rs.address) == 0 && rs.prefix &&
                strcmp(prefix ? prefix : "", rs.prefix) == 0;
    if (!same) {
        clear_locked();
        if (address) {
            rs.address = xstrdup(address);
            rs.prefix = xstrdup(prefix ? prefix : "");
            snprintf(rs.host, sizeof rs.host, "%s", host);
            rs.port = port;
        }
        atomic_store(&enabled, address != NULL);
    }
    pthread_mutex_unlock(&lock);
    return 0;
}

static bool wanted(enum lookup_kind kind)
{
    return (kind == LOOKUP_RCPT || kind == LOOKUP_VRFY) && atomic_load(&enabled) &&
           now_ms() >= atomic_load(&down_until);
}

/* prefix + remote id + ":" + key; returns its length, 0 when too long. Lock held. */
static size_t full_key(const struct remote_def *r, const char *key, size_t keylen, char *out)
{
    int n = snprintf(out, REDIS_KEY_MAX, "%s%s:", rs.prefix, r->id);
    if (n < 0 || (size_t)n + keylen >= REDIS_KEY_MAX)
        return 0;
    memcpy(out + n, key, keylen);
    return (size_t)n + keylen;
}

int redis_cache_get(const struct remote_def *r, enum lookup_kind kind, const char *key, size_t keylen)
{
    char k[REDIS_KEY_MAX];
    int answer = -1;
    bool asked = false;
    if (!wanted(kind))
        return -1;
    pthread_mutex_lock(&lock);
    size_t klen = full_key(r, key, keylen, k);
    if (klen && atomic_load(&enabled) && ensure_connected()) {
        redisReply *reply = redisCommand(rs.ctx, "GET %b", k, klen);
        if (!reply || reply->type == REDIS_REPLY_ERROR) {
            mark_down(reply ? reply->str : rs.ctx->errstr);
        } else {
            asked = true;
            mark_up();
            if (reply->type == REDIS_REPLY_STRING && reply->len == 1 &&
                (reply->str[0] == '1' || reply->str[0] == '0'))
                answer = reply->str[0] == '1';
        }
        if (reply)
            freeReplyObject(reply);
    }
    pthread_mutex_unlock(&lock);
    if (asked)
        metrics_redis(r->id, answer >= 0 ? METRICS_REDIS_HIT : METRICS_REDIS_MISS);
    return answer;
}

void redis_cache_put(const struct remote_def *r, enum lookup_kind kind, const char *key, size_t keylen,
                     int answer)
{
    char k[REDIS_KEY_MAX];
    long long ttl = answer == LOOKUP_YES ? r->ttl_positive_ms : r->ttl_negative_ms;
    if ((answer != LOOKUP_YES && answer != LOOKUP_NO) || ttl <= 0 || !wanted(kind))
        return;
    pthread_mutex_lock(&lock);
    size_t klen = full_key(r, key, keylen, k);
    if (klen && atomic_load(&enabled) && ensure_connected()) {
        redisReply *reply = redisCommand(rs.ctx, "SET %b %s PX %lld", k, klen,
                                         answer == LOOKUP_YES ? "1" : "0", ttl);
        if (!reply || reply->type == REDIS_REPLY_ERROR) {
            mark_down(reply ? reply->str : rs.ctx->errstr);
        } else {
            mark_up();
            metrics_redis(r->id, METRICS_REDIS_STORE);
        }
        if (reply)
            freeReplyObject(reply);
    }
    pthread_mutex_unlock(&lock);
}

/*
 * Copies s into out as a Redis glob that matches s in any case (a letter
 * becomes "[aA]"), other glob characters escaped; returns the new end.
 */
static char *glob_escape(char *out, const char *end, const char *s)
{
    for (; *s && out + 4 < end; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalpha(c) && c < 0x80) {
            *out++ = '[';
            *out++ = (char)tolower(c);
            *out++ = (char)toupper(c);
            *out++ = ']';
            continue;
        }
        if (strchr("*?[]\\^", c))
            *out++ = '\\';
        *out++ = (char)c;
    }
    *out = '\0';
    return out;
}

/* One SCAN step and the DEL of what it found; -1 when Redis failed. Lock held. */
static long scan_and_delete(const char *pattern, char *cursor, size_t cursorlen)
{
    redisReply *reply = redisCommand(rs.ctx, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
    long n = 0;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING) {
        mark_down(reply && reply->type == REDIS_REPLY_ERROR ? reply->str : rs.ctx->errstr);
        n = -1;
    } else {
        snprintf(cursor, cursorlen, "%s", reply->element[0]->str);
        redisReply *keys = reply->element[1];
        for (size_t i = 0; i < keys->elements && n >= 0; i++) {
            redisReply *d = redisCommand(rs.ctx, "UNLINK %b", keys->element[i]->str,
                                         (size_t)keys->element[i]->len);
            if (!d || d->type == REDIS_REPLY_ERROR) {
                mark_down(d ? d->str : rs.ctx->errstr);
                n = -1;
            } else if (d->type == REDIS_REPLY_INTEGER) {
                n += d->integer;
            }
            if (d)
                freeReplyObject(d);
        }
    }
    if (reply)
        freeReplyObject(reply);
    return n;
}

long redis_cache_forget(const struct remote_def *r, const char *match)
{
    char pattern[REDIS_KEY_MAX + 64], cursor[32] = "0";
    long total = 0;
    int64_t deadline = now_ms() + REDIS_FORGET_MAX_MS;
    if (!atomic_load(&enabled))
        return 0;
    pthread_mutex_lock(&lock);
    char *p = glob_escape(pattern, pattern + sizeof pattern, rs.prefix);
    p = glob_escape(p, pattern + sizeof pattern, r->id);
    snprintf(p, (size_t)(pattern + sizeof pattern - p), ":%s", match ? match : "*");
    pthread_mutex_unlock(&lock);
    do {   /* the lock is let go between steps: lookups keep their turn */
        pthread_mutex_lock(&lock);
        long n = ensure_connected() ? scan_and_delete(pattern, cursor, sizeof cursor) : -1;
        pthread_mutex_unlock(&lock);
        if (n < 0)
            return -1;
        total += n;
    } while (strcmp(cursor, "0") != 0 && now_ms() < deadline);
    return strcmp(cursor, "0") == 0 ? total : -1;
}

void redis_cache_glob_escape(char *out, size_t len, const char *s)
{
    glob_escape(out, out + len, s);
}

const char *redis_client_version(void)
{
    static char v[32];
    snprintf(v, sizeof v, "hiredis %d.%d.%d", HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
    return v;
}

#else /* built without hiredis */

int redis_cache_configure(const char *address, const char *prefix, char *err, size_t errlen)
{
    return redis_cache_check(address, err, errlen);
}

int redis_cache_get(const struct remote_def *r, enum lookup_kind kind, const char *key, size_t keylen)
{
    return -1;
}

void redis_cache_put(const struct remote_def *r, enum lookup_kind kind, const char *key, size_t keylen,
                     int answer)
{
}

long redis_cache_forget(const struct remote_def *r, const char *match) { return 0; }

void redis_cache_glob_escape(char *out, size_t len, const char *s)
{
    snprintf(out, len, "%s", s);
}

const char *redis_client_version(void) { return NULL; }

#endif
