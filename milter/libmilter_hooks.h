/*
 * libmilter_hooks.h - the libc calls of libmilter that are ours.
 *
 * milter/CMakeLists.txt links a copy of libmilter's static archive in
 * which these calls are renamed (objcopy --redefine-sym read=
 * nexthop_libmilter_read, ...). They therefore run for libmilter's own
 * calls only; the rest of the process (our code, GnuTLS, libpq, hiredis)
 * calls libc as usual. Each behaves like the libc function it replaces
 * unless its file says otherwise.
 *   quickack.c: accept, read, close - TCP_NODELAY/TCP_QUICKACK on inet milter connections
 *   listener.c: listen, unlink      - which descriptor is the listening socket; the socket
 *                                     file is removed by us, and only while it is ours
 *   stop.c:     poll, sigwait       - stopping the listener loop at once, and libmilter's
 *                                     signal thread (the signals are ours, daemon.c)
 * Must not: be called by anything but libmilter.
 */
#ifndef NEXTHOP_LIBMILTER_HOOKS_H
#define NEXTHOP_LIBMILTER_HOOKS_H

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>

int nexthop_libmilter_accept(int sockfd, struct sockaddr *addr, socklen_t *addrlen);
ssize_t nexthop_libmilter_read(int fd, void *buf, size_t count);
int nexthop_libmilter_close(int fd);

int nexthop_libmilter_listen(int sockfd, int backlog);
int nexthop_libmilter_unlink(const char *path);

int nexthop_libmilter_poll(struct pollfd *fds, nfds_t nfds, int timeout);
int nexthop_libmilter_sigwait(const sigset_t *set, int *sig);

#endif
