/*
 * authsvc.c - the auth-service: a unix socket speaking the saslauthd
 * protocol, so Cyrus SASL in Postfix or Sendmail (pwcheck_method:
 * saslauthd) checks SMTP AUTH passwords against a remote IMAP or SMTP host
 * through lookup_run(): the pool and the hashed cache of that remote.
 *
 * One request per connection, as saslauthd does: read four counted
 * strings (bounded, and complete within AUTHSVC_REQUEST_S of the
 * connection, however slowly they trickle in), answer "OK" or "NO reason",
 * close. When the password could not be checked (remote down, timeout)
 * there is no answer, which Cyrus SASL turns into a temporary failure.
 * Connections are served by acceptor.c: at most AUTHSVC_THREADS at once
 * (further clients wait in the listen backlog), at most three quarters of
 * them from one peer uid: every smtpd of the MTA is one uid, so a flood of
 * wrong passwords from the network must not hit that limit before the
 * MTA's own process limit (Postfix: 100), while another local user cannot
 * take every slot. The remote is taken from the current config per request,
 * so a reload applies; the socket is fixed at start (listener.c).
 * Must not: log or keep a password (buffers are wiped), or answer OK for
 * anything but a yes from the remote.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "acceptor.h"
#include "addr.h"
#include "log.h"
#include "lookup.h"
#include "metrics.h"
#include "milter.h"
#include "saslauthd.h"
#include "services.h"
#include "util.h"

#define AUTHSVC_THREADS 128
#define AUTHSVC_REQUEST_S 10

/*
 * Reads until one whole request is parsed, by the deadline. Returns 1, 0
 * on EOF or timeout (err says which), -1 when malformed.
 */
static int read_request(int fd, int64_t deadline, struct saslauthd_request *req, char *err, size_t errlen)
{
    unsigned char buf[SASLAUTHD_REQUEST_MAX];
    size_t len = 0;
    int rc = 0;
    for (;;) {
        int ready = fd_wait_until(fd, POLLIN, deadline);
        if (ready <= 0) {
            set_error(err, errlen, "%s", ready == 0 ? "no complete request in time" : strerror(errno));
            break;
        }
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

static void serve(int fd, void *arg)
{
    struct saslauthd_request req;
    char err[ERRLEN];
    struct timeval tv = { .tv_sec = AUTHSVC_REQUEST_S };
    int64_t deadline = now_ms() + AUTHSVC_REQUEST_S * 1000;
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);   /* the reply is one short write */
    int rc = read_request(fd, deadline, &req, err, sizeof err);
    if (rc > 0) {
        check_password(fd, &req);
    } else if (rc < 0) {
        log_warning("auth-service: bad request dropped: %s", err);
        metrics_count(METRICS_AUTHSVC_BAD);
        send_reply(fd, false, "bad request");
    } else if (now_ms() >= deadline) {
        log_warning("auth-service: connection closed: no complete request within %d s", AUTHSVC_REQUEST_S);
    }
    saslauthd_request_clear(&req);
}

int authsvc_start(const struct listener *l, const struct nh_config *cfg, char *err, size_t errlen)
{
    const struct acceptor_limits lim = { .total = AUTHSVC_THREADS, .per_uid = AUTHSVC_THREADS * 3 / 4,
                                         .wait_for_slot = true };
    if (acceptor_start(l, "auth-service", &lim, serve, NULL, err, errlen) < 0)
        return -1;
    log_info("auth-service: saslauthd protocol on %s, passwords checked by %s", l->path,
             cfg->auth_service_lookup);
    return 0;
}
