/*
 * socketmap.c - the socketmap listener (socketmap.listen): answers the
 * Sendmail/Postfix socketmap protocol so either MTA can route natively
 * through queue.outbound.next-hop (Postfix transport_maps, Sendmail
 * mailertable). What the answers are is decided in common/policy/nexthop_map.c;
 * this file only moves netstrings between sockets and that function.
 *
 * One acceptor thread, one thread per client connection (at most
 * MAX_CLIENTS). A client may send any number of requests on a connection
 * (Postfix keeps it open); it is closed after IDLE_MS without a request,
 * when a request does not complete within REQUEST_MS of its first byte, or
 * on a malformed frame (after a PERM reply). Every request reads
 * runtime_current(), so a SIGUSR1 reload applies to the next request.
 * Threads start with the signal mask of the caller, which blocks the
 * signals libmilter and the reload thread wait for.
 *
 * Must not: decide anything about routing, or hold a config reference
 * between requests.
 */
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

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

static atomic_int clients;

struct client {
    int fd;
    char buf[BUF_SIZE];
    size_t len;              /* bytes of an unfinished request in buf */
    int64_t request_start;   /* when its first byte arrived */
};

/* Waits until fd is ready for events or timeout_ms passes; 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = events };
    int rc;
    do
        rc = poll(&p, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    return rc;
}

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
        int64_t left = deadline - now_ms();
        if (left <= 0 || wait_fd(fd, POLLOUT, (int)left) <= 0)
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
        int64_t left = deadline - now_ms();
        if (left <= 0 || wait_fd(c->fd, POLLIN, (int)left) <= 0)
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
        int64_t wait = c->len ? c->request_start + REQUEST_MS - now_ms() : IDLE_MS;
        int rc = wait > 0 ? wait_fd(c->fd, POLLIN, (int)wait) : 0;
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

static void *client_thread(void *arg)
{
    struct client *c = arg;
    serve(c);
    close(c->fd);
    free(c);
    atomic_fetch_sub(&clients, 1);
    return NULL;
}

static void start_client(int fd)
{
    pthread_t tid;
    pthread_attr_t attr;
    int one = 1;
    if (atomic_fetch_add(&clients, 1) >= MAX_CLIENTS) {
        atomic_fetch_sub(&clients, 1);
        log_warning("socketmap: %d clients already connected, refusing one more", MAX_CLIENTS);
        close(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);   /* fails harmlessly on unix */
    struct client *c = xcalloc(1, sizeof *c);
    c->fd = fd;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&tid, &attr, client_thread, c) != 0) {
        log_error("socketmap: cannot start a client thread: %s", strerror(errno));
        close(fd);
        free(c);
        atomic_fetch_sub(&clients, 1);
    }
    pthread_attr_destroy(&attr);
}

static void *accept_thread(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd >= 0) {
            start_client(fd);
        } else if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN) {
            log_error("socketmap: accept: %s", strerror(errno));
            usleep(100000);   /* out of descriptors or memory: do not spin */
        }
    }
    return NULL;
}

/* "inet:HOST:PORT" (HOST may be [v6]) -> bound socket. */
static int listen_inet(const char *spec, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || !colon[1] || (size_t)(colon - spec) >= sizeof host) {
        set_error(err, errlen, "expected inet:ADDRESS:PORT");
        return -1;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE };
    struct addrinfo *ai;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0) {
        set_error(err, errlen, "%s", gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
        set_error(err, errlen, "%s", strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* True when something already answers on the unix socket path. */
static bool unix_in_use(const struct sockaddr_un *sun)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool used = fd >= 0 && connect(fd, (const struct sockaddr *)sun, sizeof *sun) == 0;
    if (fd >= 0)
        close(fd);
    return used;
}

static int listen_unix(const char *path, const struct nh_config *cfg, char *err, size_t errlen)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    struct stat st;
    if (!*path || strlen(path) >= sizeof sun.sun_path) {
        set_error(err, errlen, "bad socket path");
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode) || unix_in_use(&sun)) {
            set_error(err, errlen, "%s exists and is %s", path,
                      S_ISSOCK(st.st_mode) ? "in use" : "not a socket");
            return -1;
        }
        unlink(path);   /* a stale socket of an earlier run */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen(fd, SOMAXCONN) < 0) {
        set_error(err, errlen, "%s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (chmod(path, (mode_t)cfg->socket_mode) != 0)
        log_warning("socketmap: chmod %s: %s", path, strerror(errno));
    if (cfg->group) {
        struct group *gr = getgrnam(cfg->group);
        if (!gr || chown(path, (uid_t)-1, gr->gr_gid) != 0)
            log_warning("socketmap: cannot give %s to group %s", path, cfg->group);
    }
    return fd;
}

int socketmap_start(const struct nh_config *cfg)
{
    const char *spec = cfg->socketmap_listen;
    char err[ERRLEN];
    pthread_t tid;
    int fd;
    if (!spec)
        return 0;
    if (strncmp(spec, "inet:", 5) == 0)
        fd = listen_inet(spec + 5, err, sizeof err);
    else if (strncmp(spec, "unix:", 5) == 0)
        fd = listen_unix(spec + 5, cfg, err, sizeof err);
    else
        fd = -1, set_error(err, sizeof err, "expected inet:ADDRESS:PORT or unix:/path");
    if (fd < 0) {
        log_error("socketmap: cannot listen on %s: %s", spec, err);
        return -1;
    }
    if (pthread_create(&tid, NULL, accept_thread, (void *)(intptr_t)fd) != 0) {
        log_error("socketmap: cannot start the listener thread");
        close(fd);
        return -1;
    }
    pthread_detach(tid);
    log_info("socketmap: listening on %s (maps nexthop, mailertable)", spec);
    return 0;
}
