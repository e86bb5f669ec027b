/*
 * stop.c - the graceful stop (see stop.h), and libmilter's poll() and
 * sigwait() (libmilter_hooks.h), which it needs.
 *
 * libmilter alone would stop badly: its signal thread takes SIGTERM and
 * stops every session at once (the MTA sees its milter connections reset
 * mid-message), SIGHUP stops it too, and its listener notices the stop only
 * when its 5 s poll() times out. So:
 * - libmilter's sigwait() never returns: the signals are daemon.c's;
 * - libmilter's poll() on its listening socket also waits on an eventfd:
 *   stop_begin() wakes it, and it then parks the listener loop (holding
 *   libmilter's listener lock, so nothing is accepted) until the messages
 *   in flight are done;
 * - a drain thread waits for the in-flight count to reach zero or for the
 *   deadline, then releases the listener and calls smfi_stop(): libmilter's
 *   listener loop ends and smfi_main() returns.
 * Until then libmilter's workers keep serving the open connections.
 * Must not: block any poll() but the listener's, or stop libmilter before
 * the drain ends.
 */
#include "stop.h"

#include <errno.h>
#include <libmilter/mfapi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "libmilter_hooks.h"
#include "log.h"
#include "util.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed;          /* in_flight fell, hurry or released set */
static struct listener *milter_listener;
static int wake_fd = -1;                /* written once the stop begins */
static atomic_bool closed;              /* the stop has begun */
static bool hurry;                      /* a second signal: do not wait any longer */
static bool released;                   /* the drain is over: libmilter may stop */
static bool listening;                  /* libmilter's listener loop has polled once */
static int in_flight;
static struct timespec deadline;        /* CLOCK_MONOTONIC */

void stop_init(struct listener *milter)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&changed, &attr);
    pthread_condattr_destroy(&attr);
    milter_listener = milter;
    wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

bool stop_message_begin(void)
{
    pthread_mutex_lock(&lock);
    bool ok = !atomic_load(&closed);
    if (ok)
        in_flight++;
    pthread_mutex_unlock(&lock);
    return ok;
}

void stop_message_end(void)
{
    pthread_mutex_lock(&lock);
    if (--in_flight == 0 && atomic_load(&closed))
        pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

bool stop_listener_closed(void) { return atomic_load(&closed); }

int stop_messages_left(void)
{
    pthread_mutex_lock(&lock);
    int n = in_flight;
    pthread_mutex_unlock(&lock);
    return n;
}

static void *drain(void *arg)
{
    int64_t start = now_ms();
    pthread_mutex_lock(&lock);
    /* A stop right after the start: smfi_stop() before smfi_main() would make libmilter reopen its socket. */
    while (!listening)
        pthread_cond_wait(&changed, &lock);
    while (in_flight > 0 && !hurry)
        if (pthread_cond_timedwait(&changed, &lock, &deadline) == ETIMEDOUT)
            break;
    int left = in_flight;
    released = true;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    if (left > 0)
        log_warning("stopping with %d message(s) still in flight after %ld ms: the MTA applies "
                    "its milter_default_action to them", left, (long)(now_ms() - start));
    else
        log_info("stopping: no message in flight (waited %ld ms)", (long)(now_ms() - start));
    smfi_stop();
    return NULL;
}

void stop_begin(int64_t drain_ms)
{
    pthread_mutex_lock(&lock);
    if (atomic_load(&closed)) {
        hurry = true;
        pthread_cond_broadcast(&changed);
        pthread_mutex_unlock(&lock);
        log_info("stopping now: asked again while messages were in flight");
        return;
    }
    atomic_store(&closed, true);
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += drain_ms / 1000;
    deadline.tv_nsec += (drain_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    int n = in_flight;
    pthread_mutex_unlock(&lock);

    uint64_t one = 1;
    if (wake_fd >= 0 && write(wake_fd, &one, sizeof one) < 0)
        log_debug("stop: cannot wake the listener: %s", strerror(errno));
    if (milter_listener)
        listener_refuse(milter_listener);
    log_info("stopping: new milter connections are refused; %d message(s) in flight get up to "
             "%ld s to end", n, (long)(drain_ms / 1000));
    pthread_t tid;
    if (pthread_create(&tid, NULL, drain, NULL) == 0)
        pthread_detach(tid);
    else
        drain(NULL);
}

int nexthop_libmilter_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    static atomic_bool seen;
    if (nfds != 1 || !milter_listener || fds[0].fd != milter_listener->fd)
        return poll(fds, nfds, timeout);
    if (!atomic_load(&seen)) {
        atomic_store(&seen, true);
        pthread_mutex_lock(&lock);
        listening = true;
        pthread_cond_broadcast(&changed);
        pthread_mutex_unlock(&lock);
    }
    if (!atomic_load(&closed)) {
        struct pollfd both[2] = { fds[0], { .fd = wake_fd, .events = POLLIN } };
        int rc = wake_fd >= 0 ? poll(both, 2, timeout) : poll(both, 1, timeout < 0 || timeout > 200 ? 200 : timeout);
        if (!atomic_load(&closed)) {
            fds[0].revents = both[0].revents;
            return rc < 0 ? rc : fds[0].revents != 0;
        }
    }
    /* Stopping: hold libmilter's listener here (nothing is accepted) until the drain is over. */
    pthread_mutex_lock(&lock);
    while (!released)
        pthread_cond_wait(&changed, &lock);
    pthread_mutex_unlock(&lock);
    fds[0].revents = 0;
    poll(NULL, 0, 1);   /* smfi_stop() is setting libmilter's stop flag: no busy loop meanwhile */
    return 0;
}

int nexthop_libmilter_sigwait(const sigset_t *set, int *sig)
{
    /* libmilter's signal thread: SIGTERM, SIGINT and SIGHUP are daemon.c's. Wait for ever. */
    static pthread_mutex_t never_lock = PTHREAD_MUTEX_INITIALIZER;
    static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
    (void)set;
    (void)sig;
    pthread_mutex_lock(&never_lock);
    for (;;)
        pthread_cond_wait(&never, &never_lock);
}
