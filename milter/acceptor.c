/*
 * acceptor.c - one accept loop for the socketmap and auth-service
 * listeners (see acceptor.h).
 *
 * At most `total` connections are served at once; beyond that a client
 * either waits in the listen backlog (wait_for_slot) or is closed at once.
 * On a unix socket, no peer uid (SO_PEERCRED) may hold more than
 * `per_uid` of them: one local user who opens connections and keeps them
 * busy cannot take every slot from the MTA. A refused connection is closed
 * without an answer (the MTA reports a temporary failure); refusals are
 * logged at most once a minute per listener.
 * Threads start with the caller's signal mask, which blocks the daemon's
 * signals.
 * Must not: serve a connection beyond the limits, or block on
 * anything but a free slot.
 */
#include "acceptor.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

struct peer {
    uid_t uid;
    int n;
};

struct acceptor {
    int fd;
    bool is_unix;
    const char *name;
    struct acceptor_limits lim;
    acceptor_serve_fn *serve;
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t slot_free;
    int busy;
    struct peer *peers;     /* lim.total entries; n == 0 is free */
    int64_t last_warned;
};

struct conn {
    struct acceptor *a;
    int fd;
    uid_t uid;
    bool counted_uid;
};

static void warn_refused(struct acceptor *a, const char *why, long uid)
{
    int64_t now = now_ms();
    if (now - a->last_warned < 60000)
        return;
    a->last_warned = now;
    if (uid >= 0)
        log_warning("%s: refusing connections from uid %ld: %s (logged once a minute)", a->name, uid, why);
    else
        log_warning("%s: refusing connections: %s (logged once a minute)", a->name, why);
}

/* Counts a connection of uid; false when that uid is at its limit. Lock held. */
static bool peer_take(struct acceptor *a, uid_t uid)
{
    struct peer *slot = NULL;
    for (int i = 0; i < a->lim.total; i++) {
        if (a->peers[i].n > 0 && a->peers[i].uid == uid) {
            if (a->peers[i].n >= a->lim.per_uid)
                return false;
            a->peers[i].n++;
            return true;
        }
        if (a->peers[i].n == 0 && !slot)
            slot = &a->peers[i];
    }
    if (!slot)
        return false;
    slot->uid = uid;
    slot->n = 1;
    return true;
}

static void peer_drop(struct acceptor *a, uid_t uid)
{
    for (int i = 0; i < a->lim.total; i++)
        if (a->peers[i].n > 0 && a->peers[i].uid == uid) {
            a->peers[i].n--;
            return;
        }
}

static void release(struct conn *c)
{
    struct acceptor *a = c->a;
    pthread_mutex_lock(&a->lock);
    a->busy--;
    if (c->counted_uid)
        peer_drop(a, c->uid);
    pthread_cond_signal(&a->slot_free);
    pthread_mutex_unlock(&a->lock);
    close(c->fd);
    free(c);
}

static void *conn_thread(void *arg)
{
    struct conn *c = arg;
    c->a->serve(c->fd, c->a->arg);
    release(c);
    return NULL;
}

/* Takes a slot for the new connection c; false when it must be refused. */
static bool admit(struct acceptor *a, struct conn *c)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    bool uid_known = a->is_unix && getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0;
    pthread_mutex_lock(&a->lock);
    bool ok = a->busy < a->lim.total;
    if (!ok) {
        warn_refused(a, "every connection slot is busy", -1);
    } else if (uid_known && !(ok = peer_take(a, cred.uid))) {
        warn_refused(a, "too many connections from that uid", (long)cred.uid);
    } else {
        a->busy++;
        c->counted_uid = uid_known;
        c->uid = uid_known ? cred.uid : 0;
    }
    pthread_mutex_unlock(&a->lock);
    return ok;
}

static void *accept_loop(void *arg)
{
    struct acceptor *a = arg;
    for (;;) {
        if (a->lim.wait_for_slot) {
            pthread_mutex_lock(&a->lock);
            while (a->busy >= a->lim.total)
                pthread_cond_wait(&a->slot_free, &a->lock);
            pthread_mutex_unlock(&a->lock);
        }
        int fd = accept4(a->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN) {
                log_error("%s: accept: %s", a->name, strerror(errno));
                usleep(100000);   /* out of descriptors or memory: do not spin */
            }
            continue;
        }
        struct conn *c = xcalloc(1, sizeof *c);
        c->a = a;
        c->fd = fd;
        if (!admit(a, c)) {
            close(fd);
            free(c);
            continue;
        }
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&tid, &attr, conn_thread, c) != 0) {
            log_error("%s: cannot start a thread: %s", a->name, strerror(errno));
            release(c);
        }
        pthread_attr_destroy(&attr);
    }
    return NULL;
}

int acceptor_start(const struct listener *l, const char *name, const struct acceptor_limits *lim,
                   acceptor_serve_fn *serve, void *arg, char *err, size_t errlen)
{
    struct acceptor *a = xcalloc(1, sizeof *a);
    a->fd = l->fd;
    a->is_unix = l->family == AF_UNIX;
    a->name = name;
    a->lim = *lim;
    a->serve = serve;
    a->arg = arg;
    a->peers = xcalloc((size_t)lim->total, sizeof *a->peers);
    a->last_warned = -60000;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->slot_free, NULL);
    pthread_t tid;
    int rc = pthread_create(&tid, NULL, accept_loop, a);
    if (rc != 0) {
        set_error(err, errlen, "%s: cannot start its thread: %s", name, strerror(rc));
        free(a->peers);
        free(a);
        return -1;
    }
    pthread_detach(tid);
    return 0;
}
