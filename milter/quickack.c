/*
 * quickack.c - remove the 40 ms Nagle / delayed-ACK stalls on inet milter
 * connections.
 *
 * Postfix writes some milter commands back to back with no reply between
 * them (a macro packet, then the command it belongs to). The second write
 * waits for the ACK of the first (Nagle, on the MTA's side), and our kernel
 * delays that ACK by up to 40 ms because we have nothing to send yet. Every
 * message paid that stall several times over TCP. We cannot change the
 * MTA's socket, so on ours we ask for an immediate ACK (TCP_QUICKACK) after
 * every read: the MTA's next packet leaves at once.
 *
 * These are libmilter's accept(), read() and close() (see
 * libmilter_hooks.h): accept() turns Nagle off on the TCP connections it
 * returns and marks them, read() re-arms TCP_QUICKACK on marked
 * descriptors, close() forgets the mark. Unix-socket milters, and every
 * read() outside libmilter, are untouched.
 * Must not: change what the calls return (except accept's errno while the
 * listener is being stopped, see stop.c).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libmilter_hooks.h"
#include "stop.h"

#define MAX_TRACKED_FD 65536

static atomic_bool tcp_milter_fd[MAX_TRACKED_FD];

int nexthop_libmilter_accept(int sockfd, struct sockaddr *addr, socklen_t *addrlen)
{
    int fd = accept(sockfd, addr, addrlen);
    if (fd < 0) {
        /* the listener was shut down under libmilter's accept: make it try again, not give up */
        if (stop_listener_closed())
            errno = EAGAIN;
        return fd;
    }
    if (fd >= MAX_TRACKED_FD)
        return fd;
    int domain = 0, one = 1;
    socklen_t len = sizeof domain;
    bool tcp = getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 &&
               (domain == AF_INET || domain == AF_INET6);
    if (tcp)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    atomic_store_explicit(&tcp_milter_fd[fd], tcp, memory_order_relaxed);
    return fd;
}

ssize_t nexthop_libmilter_read(int fd, void *buf, size_t count)
{
    ssize_t n = read(fd, buf, count);
    if (n > 0 && fd >= 0 && fd < MAX_TRACKED_FD &&
        atomic_load_explicit(&tcp_milter_fd[fd], memory_order_relaxed)) {
        int saved = errno, one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
        errno = saved;
    }
    return n;
}

int nexthop_libmilter_close(int fd)
{
    if (fd >= 0 && fd < MAX_TRACKED_FD)
        atomic_store_explicit(&tcp_milter_fd[fd], false, memory_order_relaxed);
    return close(fd);
}
