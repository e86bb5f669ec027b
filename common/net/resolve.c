/*
 * resolve.c - host names resolved within a deadline, answers kept for a
 * short time (resolve.h).
 *
 * Why getaddrinfo_a and not c-ares: it is glibc's own resolver, so names
 * resolve exactly as for every other program on the machine (nsswitch,
 * /etc/hosts, nss-resolve, nscd) and nothing is added to build, package or
 * trust. What it lacks: TTLs (so answers are kept a fixed RESOLVE_KEEP_MS),
 * and cancelling a request in progress (so a request whose caller gave up
 * keeps its entry until it ends, and later callers join it).
 *
 * One entry per name. Its request is started by the first caller that
 * finds no fresh answer; every caller waits for it with gai_suspend() up
 * to its own deadline, and whoever sees it finished first (now or on a
 * later call) copies the answer out of glibc's list under the lock.
 *
 * Must not: connect, log, keep failures, free an entry glibc still
 * writes to (pending) or one a caller waits on (waiters > 0).
 */
#include "resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util.h"

#define HOST_MAX 256

struct entry {
    struct entry *next;
    char host[HOST_MAX];
    bool pending;            /* cb is with glibc */
    int waiters;             /* callers between lock releases in wait_for() */
    int64_t kept_until;      /* addrs is an answer until then; 0 = none */
    int last_rc;             /* gai result of the request that ended last */
    struct resolved addrs;   /* ports 0 */
    struct addrinfo hints;
    struct gaicb cb;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct entry *entries;

/* Copies the TCP addresses of an addrinfo list (ports left as they are). */
static void copy_addrs(const struct addrinfo *res, struct resolved *out)
{
    out->n = 0;
    for (const struct addrinfo *ai = res; ai && out->n < RESOLVE_MAX_ADDRS; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof out->addr[0])
            continue;
        memcpy(&out->addr[out->n], ai->ai_addr, ai->ai_addrlen);
        out->len[out->n] = ai->ai_addrlen;
        out->n++;
    }
}

static void set_ports(struct resolved *r, int port)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->addr[i].ss_family == AF_INET)
            ((struct sockaddr_in *)&r->addr[i])->sin_port = htons((uint16_t)port);
        else
            ((struct sockaddr_in6 *)&r->addr[i])->sin6_port = htons((uint16_t)port);
    }
}

/* IP literals need no resolver: getaddrinfo with AI_NUMERICHOST never waits. */
static bool numeric_host(const char *host, struct resolved *out)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST };
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return false;
    copy_addrs(res, out);
    freeaddrinfo(res);
    return out->n > 0;
}

/* Under mu: takes the answer of a request glibc has finished. */
static void collect_locked(struct entry *e)
{
    if (!e->pending || gai_error(&e->cb) == EAI_INPROGRESS)
        return;
    e->pending = false;
    e->last_rc = gai_error(&e->cb);
    if (e->last_rc == 0) {
        copy_addrs(e->cb.ar_result, &e->addrs);
        if (e->addrs.n == 0)
            e->last_rc = EAI_NODATA;
    }
    if (e->cb.ar_result)
        freeaddrinfo(e->cb.ar_result);
    e->cb.ar_result = NULL;
    e->kept_until = e->last_rc == 0 ? now_ms() + RESOLVE_KEEP_MS : 0;
}

/* Under mu: the entry for host, made when missing; ended, unused entries are dropped. */
static struct entry *entry_for_locked(const char *host, int64_t now)
{
    struct entry **pp = &entries, *found = NULL;
    while (*pp) {
        struct entry *e = *pp;
        collect_locked(e);
        if (strcasecmp(e->host, host) == 0) {
            found = e;
        } else if (!e->pending && e->waiters == 0 && e->kept_until <= now) {
            *pp = e->next;
            free(e);
            continue;
        }
        pp = &e->next;
    }
    if (found)
        return found;
    found = xcalloc(1, sizeof *found);
    snprintf(found->host, sizeof found->host, "%s", host);
    found->next = entries;
    entries = found;
    return found;
}

/* Under mu: hands a new request for e->host to glibc. Returns 0 or a gai error. */
static int start_locked(struct entry *e)
{
    e->hints = (struct addrinfo){ .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    e->cb = (struct gaicb){ .ar_name = e->host, .ar_request = &e->hints };
    struct gaicb *list[1] = { &e->cb };
    int rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
    if (rc == 0)
        e->pending = true;
    return rc;
}

/*
 * Waits (mu released) until e's request ends or the deadline passes.
 * Returns with mu held; e->pending says which.
 */
static void wait_for(struct entry *e, int64_t deadline_ms)
{
    e->waiters++;
    for (;;) {
        collect_locked(e);
        int64_t left = deadline_ms - now_ms();
        if (!e->pending || left <= 0)
            break;
        const struct gaicb *list[1] = { &e->cb };
        struct timespec ts = { .tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000 };
        pthread_mutex_unlock(&mu);
        gai_suspend(list, 1, &ts);   /* ends early on completion or EAI_INTR: re-checked */
        pthread_mutex_lock(&mu);
    }
    e->waiters--;
}

int resolve_tcp(const char *host, int port, int64_t deadline_ms, struct resolved *out,
                char *err, size_t errlen)
{
    if (!host || !*host || strlen(host) >= HOST_MAX) {
        set_error(err, errlen, "DNS lookup of %.64s: not a host name", host ? host : "");
        return -1;
    }
    if (numeric_host(host, out)) {
        set_ports(out, port);
        return 0;
    }
    int64_t started = now_ms();
    pthread_mutex_lock(&mu);
    struct entry *e = entry_for_locked(host, started);
    if (e->kept_until <= started && !e->pending) {
        int rc = start_locked(e);
        if (rc != 0) {
            pthread_mutex_unlock(&mu);
            set_error(err, errlen, "DNS lookup of %s: cannot start: %s", host, gai_strerror(rc));
            return -1;
        }
    }
    if (e->kept_until <= started)
        wait_for(e, deadline_ms);
    int rc = 0;
    if (e->kept_until > started)   /* kept, or just answered */
        *out = e->addrs;
    else
        rc = e->pending ? EAI_INPROGRESS : e->last_rc;
    pthread_mutex_unlock(&mu);

    if (rc == EAI_INPROGRESS) {
        set_error(err, errlen, "DNS lookup of %s: no answer after %lld ms", host,
                  (long long)(now_ms() - started));
        return -1;
    }
    if (rc != 0) {
        set_error(err, errlen, "DNS lookup of %s: %s", host, gai_strerror(rc));
        return -1;
    }
    set_ports(out, port);
    return 0;
}
