/*
 * request.c - checks and made-up replies for requests to a session
 * (request.h).
 *
 * Must not: do I/O, or put an argument's value into an error.
 */
#include "request.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

int request_check_arg(const char *what, const char *arg, bool is_secret, char *err,
                      size_t errlen)
{
    if (!arg) {
        set_error(err, errlen, "%s missing", what);
        return -1;
    }
    if (strlen(arg) > NET_ARG_MAX) {
        set_error(err, errlen, "%s longer than %d bytes", what, NET_ARG_MAX);
        return -1;
    }
    for (const unsigned char *p = (const unsigned char *)arg; *p; p++) {
        if (*p == '\r' || *p == '\n') {
            set_error(err, errlen, "%s contains CR or LF", what);
            return -1;
        }
        if (!is_secret && (*p < 0x20 || *p == 0x7f)) {
            set_error(err, errlen, "%s contains a control character", what);
            return -1;
        }
    }
    return 0;
}

int request_check_lookup(enum remote_proto proto, enum lookup_kind kind, const char *arg,
                         const char *password, char *err, size_t errlen)
{
    if ((unsigned)kind > LOOKUP_AUTH) {
        set_error(err, errlen, "unknown lookup kind");
        return -1;
    }
    if (proto == PROTO_IMAP && kind != LOOKUP_AUTH) {
        set_error(err, errlen, "%s lookups are not supported by imap", lookup_kind_name(kind));
        return -1;
    }
    if (request_check_arg(kind == LOOKUP_AUTH ? "user name" : "address", arg, false, err,
                          errlen) < 0)
        return -1;
    if (kind == LOOKUP_AUTH && request_check_arg("password", password, true, err, errlen) < 0)
        return -1;
    return 0;
}

int request_check_relay(enum remote_proto proto, const char *sender,
                        const struct relay_rcpt *rcpts, size_t n, char *err, size_t errlen)
{
    if (proto == PROTO_IMAP) {
        set_error(err, errlen, "relay is not supported by imap");
        return -1;
    }
    if (request_check_arg("sender", sender, false, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (request_check_arg("recipient", rcpts[i].addr, false, err, errlen) < 0)
            return -1;
    return 0;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static int64_t wait_limit(const struct endpoint *ep)
{
    return ep->timeout_ms > 0 ? min64(ep->timeout_ms, NET_WAIT_MAX_MS) : NET_WAIT_MAX_MS;
}

int64_t request_step_deadline(const struct endpoint *ep, int64_t deadline_ms)
{
    return min64(deadline_ms, now_ms() + wait_limit(ep));
}

int64_t request_lookup_deadline(const struct endpoint *ep) { return now_ms() + wait_limit(ep); }

bool request_needs_smtputf8(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s >= 0x80)
            return true;
    return false;
}

void request_nexthop_failure(char *out, size_t outlen, const char *remote, const char *why)
{
    snprintf(out, outlen, "451 4.4.2 next hop %s: %s", remote ? remote : "?", why ? why : "");
}

void request_fail_pending(struct relay_rcpt *rcpts, size_t n, const char *remote,
                          const char *why)
{
    for (size_t i = 0; i < n; i++) {
        if (rcpts[i].code != 0)
            continue;
        rcpts[i].code = 451;
        rcpts[i].ours = true;
        request_nexthop_failure(rcpts[i].reply, sizeof rcpts[i].reply, remote, why);
    }
}

void request_fail_all(struct relay_rcpt *rcpts, size_t n, const char *remote, const char *why)
{
    for (size_t i = 0; i < n; i++)
        rcpts[i].code = 0;
    request_fail_pending(rcpts, n, remote, why);
}
