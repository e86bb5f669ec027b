/*
 * socketmap.c - the socketmap listener (socketmap.listen): answers the
 * Sendmail/Postfix socketmap protocol so either MTA can route natively
 * through queue.outbound.next-hop (Postfix transport_maps, Sendmail
 * mailertable). What the answers are is decided in common/policy/nexthop_map.c;
 * this file only moves netstrings between sockets and that function.
 *
 * Connections are served by acceptor.c, one thread each: at most
 * MAX_CLIENTS at once (more are closed at once), at most half of them from
 * one peer uid on a unix socket. A client may send any number of requests
 * on a connection (Postfix keeps it open); it is closed after IDLE_MS
 * without a request, when a request does not complete within REQUEST_MS
 * of its first byte however slowly it trickles in, or on a malformed frame
 * (after a PERM reply). Every request reads runtime_current(), so a reload
 * applies to the next request. The socket is opened by listener.c.
 *
 * Must not: decide anything about routing, or hold a config reference
 * between requests.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acceptor.h"
#include "log.h"
#include "milter.h"
#include "netstring.h"
#include "nexthop_map.h"
#include "services.h"
#include "util.h"

#define MAX_CLIENTS 128
#define IDLE_MS 120000      /* no request for this long: close */
#define REQUEST_MS 10000    /* a started request or a reply must complete within this */
#define BUF_SIZE (NEXTHOP_MAP_REQUEST_MAX + NETSTRING_OVERHEAD)

struct client {
    int fd;
    char buf[BUF_SIZE];
    size_t len;              /* bytes of an unfinished request in buf */
    int64_t request_start;   /* when its first byte arrived */
};

static int send_frame(int fd, const char *payload)
{
    char frame[NEXTHOP_MAP_REPLY_MAX + NETSTRING_OVERHEAD];
    long n = netstring_encode(payload, strlen(payload), frame, sizeof frame);
    int64_t deadline = now_ms() + REQUEST_MS;
    for (long off = 0; n > 0 && off < n;) {
        ssize_t w = send(fd, frame + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w > 0) {
            off += w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (fd_wait_until(fd, POLLOUT, deadline) <= 0)
            return -1;
    }
    return n > 0 ? 0 : -1;
}

/* Answers one request; -1 when the reply could not be sent. */
static int answer(struct client *c, const char *payload, size_t plen)
{
    char reply[NEXTHOP_MAP_REPLY_MAX], raw[96], shown[96];
    int64_t start = now_ms();
    struct nh_runtime *run = runtime_current();
    if (run) {
        struct list_env env = runtime_env(run, NULL);
        nexthop_map_answer(&run->cfg->policy, &env, payload, plen, reply, sizeof reply);
        runtime_unref(run);
    } else {
        snprintf(reply, sizeof reply, "TEMP milter-nexthop is not ready");
    }
    snprintf(raw, sizeof raw, "%.*s", plen > 80 ? 80 : (int)plen, payload);
    str_printable(shown, sizeof shown, raw);
    if (!strncmp(reply, "TEMP ", 5) || !strncmp(reply, "PERM ", 5))
        log_warning("socketmap: request=\"%s\" reply=\"%s\"", shown, reply);
    else
        log_debug("socketmap: request=\"%s\" reply=\"%s\" ms=%ld", shown, reply,
                  (long)(now_ms() - start));
    return send_frame(c->fd, reply);
}

/*
 * Answers every complete frame in the buffer. Returns 0, -1 when the
 * stream must be closed, -2 after a malformed frame (closed gently).
 */
static int drain(struct client *c)
{
    for (;;) {
        const char *payload;
        size_t plen, used;
        char err[ERRLEN], reply[ERRLEN + 8];
        switch (netstring_parse(c->buf, c->len, NEXTHOP_MAP_REQUEST_MAX, &payload, &plen, &used,
                                err, sizeof err)) {
        case NETSTRING_MORE:
            return 0;
        case NETSTRING_ERROR:
            snprintf(reply, sizeof reply, "PERM %s", err);
            log_warning("socketmap: closing a client: %s", err);
            send_frame(c->fd, reply);
            return -2;
        case NETSTRING_OK:
            if (answer(c, payload, plen) < 0)
                return -1;
            memmove(c->buf, c->buf + used, c->len - used);
            c->len -= used;
            c->request_start = now_ms();   /* what is left is the next request */
            break;
        }
    }
}

/*
 * After a PERM for a malformed frame: stop sending and discard what the
 * client still sends for a moment, so the reply reaches it instead of a
 * connection reset (closing a socket with unread input resets it).
 */
static void linger_close(struct client *c)
{
    int64_t deadline = now_ms() + 1000;
    size_t discarded = 0;
    shutdown(c->fd, SHUT_WR);
    while (discarded < 65536) {
        if (fd_wait_until(c->fd, POLLIN, deadline) <= 0)
            return;
        ssize_t r = recv(c->fd, c->buf, sizeof c->buf, 0);
        if (r <= 0 && !(r < 0 && errno == EINTR))
            return;
        discarded += r > 0 ? (size_t)r : 0;
    }
}

static void serve(struct client *c)
{
    for (;;) {
        /* idle: IDLE_MS; inside a request: what is left of REQUEST_MS */
        int64_t until = c->len ? c->request_start + REQUEST_MS : now_ms() + IDLE_MS;
        int rc = fd_wait_until(c->fd, POLLIN, until);
        if (rc <= 0) {
            if (rc == 0)
                log_debug("socketmap: closing a client that stayed %s", c->len ? "in a request" : "idle");
            return;
        }
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            return;
        if (c->len == 0)
            c->request_start = now_ms();
        c->len += (size_t)r;
        int drained = drain(c);
        if (drained == -2)
            linger_close(c);
        if (drained < 0)
            return;
    }
}

static void serve_client(int fd, void *arg)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);   /* fails harmlessly on unix */
    struct client *c = xcalloc(1, sizeof *c);
    c->fd = fd;
    serve(c);
    free(c);
}

int socketmap_start(const struct listener *l, const char *spec, char *err, size_t errlen)
{
    const struct acceptor_limits lim = { .total = MAX_CLIENTS, .per_uid = MAX_CLIENTS / 2,
                                         .wait_for_slot = false };
    if (acceptor_start(l, "socketmap", &lim, serve_client, NULL, err, errlen) < 0)
        return -1;
    log_info("socketmap: listening on %s (maps nexthop, mailertable)", spec);
    return 0;
}
