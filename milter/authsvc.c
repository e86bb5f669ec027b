/*
 * authsvc.c - the auth-service: a unix socket speaking the saslauthd
 * protocol, so Cyrus SASL in Postfix or Sendmail (pwcheck_method:
 * saslauthd) checks SMTP AUTH passwords against a remote IMAP or SMTP host
 * through lookup_run(): the pool and the hashed cache of that remote.
 *
 * One request per connection, as saslauthd does: read four counted
 * strings (bounded, with a timeout), answer "OK" or "NO reason", close.
 * When the password could not be checked (remote down, timeout) there is
 * no answer, which Cyrus SASL turns into a temporary failure.
 * Each connection runs on its own short-lived thread, at most
 * AUTHSVC_THREADS at once; further clients wait in the listen backlog.
 * The remote is taken from the current config per request, so a reload
 * applies; the socket path is fixed at start.
 * Must not: log or keep a password (buffers are wiped), or answer OK for
 * anything but a yes from the remote.
 */
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "lookup.h"
#include "metrics.h"
#include "milter.h"
#include "saslauthd.h"
#include "services.h"
#include "util.h"

#define AUTHSVC_THREADS 32
#define AUTHSVC_BACKLOG 64
#define AUTHSVC_IO_TIMEOUT_S 10

static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slot_free = PTHREAD_COND_INITIALIZER;
static int busy;

/* Reads until one whole request is parsed. Returns 1, 0 on EOF/timeout, -1 when malformed. */
static int read_request(int fd, struct saslauthd_request *req, char *err, size_t errlen)
{
    unsigned char buf[SASLAUTHD_REQUEST_MAX];
    size_t len = 0;
    int rc = 0;
    for (;;) {
        ssize_t got = read(fd, buf + len, sizeof buf - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            set_error(err, errlen, "%s", got == 0 ? "client closed the connection" : strerror(errno));
            break;
        }
        len += (size_t)got;
        ssize_t used = saslauthd_parse_request(buf, len, req, err, errlen);
        if (used != 0) {
            rc = used > 0 ? 1 : -1;
            break;
        }
        if (len == sizeof buf) {   /* cannot happen: the largest request fits */
            set_error(err, errlen, "request too long");
            rc = -1;
            break;
        }
    }
    explicit_bzero(buf, sizeof buf);
    return rc;
}

static void send_reply(int fd, bool ok, const char *reason)
{
    unsigned char out[600];
    ssize_t n = saslauthd_format_reply(ok, reason, out, sizeof out);
    if (n > 0 && write(fd, out, (size_t)n) != n)
        log_debug("auth-service: reply not sent: %s", strerror(errno));
}

/* Checks the password with the remote named by auth-service.lookup; sends the answer. */
static void check_password(int fd, const struct saslauthd_request *req)
{
    char user[ADDR_MAX + 1], err[ERRLEN], shown[ADDR_MAX + 1];
    struct nh_runtime *run = runtime_current();
    const char *lk = run ? run->cfg->auth_service_lookup : NULL;
    struct remote_rt *r = lk && strncmp(lk, "remote/", 7) == 0
                              ? remote_set_find(run->remotes, lk + 7) : NULL;
    str_printable(shown, sizeof shown, req->login);
    if (!r) {
        log_warning("auth-service: user=<%s> result=error: auth-service.lookup is not set", shown);
        metrics_count(METRICS_AUTHSVC_ERROR);   /* no answer: a temporary failure, as below */
    } else if (saslauthd_user(req, user, sizeof user) < 0) {
        log_warning("auth-service: user=<%s> result=no: user name too long", shown);
        metrics_count(METRICS_AUTHSVC_NO);
        send_reply(fd, false, "user name too long");
    } else {
        struct lookup_info info;
        enum lookup_result res = lookup_run(r, LOOKUP_AUTH, user, req->password, NULL, &info, err, sizeof err);
        metrics_count(res == LOOKUP_YES ? METRICS_AUTHSVC_OK
                      : res == LOOKUP_NO ? METRICS_AUTHSVC_NO : METRICS_AUTHSVC_ERROR);
        /*
         * An error gets no answer at all: Cyrus SASL then reports a
         * temporary failure (Postfix: 454 4.7.0) and the client retries,
         * where "NO" would tell the user the password is wrong.
         */
        if (res != LOOKUP_ERROR)
            send_reply(fd, res == LOOKUP_YES, res == LOOKUP_YES ? NULL : "authentication failed");
        explicit_bzero(user, sizeof user);
    }
    runtime_unref(run);
}

static void *serve_client(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct saslauthd_request req;
    char err[ERRLEN];
    int rc = read_request(fd, &req, err, sizeof err);
    if (rc > 0) {
        check_password(fd, &req);
    } else if (rc < 0) {
        log_warning("auth-service: bad request dropped: %s", err);
        metrics_count(METRICS_AUTHSVC_BAD);
        send_reply(fd, false, "bad request");
    }
    saslauthd_request_clear(&req);
    close(fd);
    pthread_mutex_lock(&slots_lock);
    busy--;
    pthread_cond_signal(&slot_free);
    pthread_mutex_unlock(&slots_lock);
    return NULL;
}

static void set_timeouts(int fd)
{
    struct timeval tv = { .tv_sec = AUTHSVC_IO_TIMEOUT_S };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static void *accept_loop(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        pthread_mutex_lock(&slots_lock);
        while (busy >= AUTHSVC_THREADS)
            pthread_cond_wait(&slot_free, &slots_lock);
        busy++;
        pthread_mutex_unlock(&slots_lock);
        int fd;
        do
            fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        while (fd < 0 && (errno == EINTR || errno == ECONNABORTED));
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (fd >= 0)
            set_timeouts(fd);
        if (fd < 0 || pthread_create(&tid, &attr, serve_client, (void *)(intptr_t)fd) != 0) {
            log_error("auth-service: %s: %s", fd < 0 ? "accept" : "cannot start a thread", strerror(errno));
            if (fd >= 0)
                close(fd);
            pthread_mutex_lock(&slots_lock);
            busy--;
            pthread_mutex_unlock(&slots_lock);
            sleep(1);
        }
        pthread_attr_destroy(&attr);
    }
    return NULL;
}

/* Removes a socket file left by a previous run; refuses one that still answers, or a non-socket. */
static int clear_stale(const char *path, const struct sockaddr_un *sa)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        log_error("auth-service.socket: %s exists and is not a socket", path);
        return -1;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool alive = probe >= 0 && connect(probe, (const struct sockaddr *)sa, sizeof *sa) == 0;
    if (probe >= 0)
        close(probe);
    if (alive) {
        log_error("auth-service.socket: %s is in use by another process", path);
        return -1;
    }
    unlink(path);
    return 0;
}

static void set_owner(const char *path, const struct nh_config *cfg)
{
    if (chmod(path, (mode_t)cfg->socket_mode) != 0)
        log_warning("auth-service.socket: chmod %s: %s", path, strerror(errno));
    if (cfg->group) {
        struct group *gr = getgrnam(cfg->group);
        if (!gr || chown(path, (uid_t)-1, gr->gr_gid) != 0)
            log_warning("auth-service.socket: cannot give %s to group %s: %s", path, cfg->group,
                        gr ? strerror(errno) : "no such group");
    }
}

int authsvc_start(const struct nh_config *cfg)
{
    const char *path = cfg->auth_service_socket;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (!path)
        return 0;
    if (strlen(path) >= sizeof sa.sun_path) {
        log_error("auth-service.socket: %s is longer than %zu bytes", path, sizeof sa.sun_path - 1);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (clear_stale(path, &sa) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, AUTHSVC_BACKLOG) != 0) {
        log_error("auth-service.socket: cannot listen on %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    set_owner(path, cfg);
    pthread_t tid;
    if (pthread_create(&tid, NULL, accept_loop, (void *)(intptr_t)fd) != 0) {
        log_error("auth-service: cannot start its thread");
        close(fd);
        return -1;
    }
    pthread_detach(tid);
    log_info("auth-service: saslauthd protocol on %s, passwords checked by %s", path,
             cfg->auth_service_lookup);
    return 0;
}
