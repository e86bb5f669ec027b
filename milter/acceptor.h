/*
 * acceptor.h - serving a listening socket: one thread accepts, each
 * connection runs on a thread of its own, within limits.
 * Must not: know what a service says on its connections (socketmap.c,
 * authsvc.c do).
 */
#ifndef NEXTHOP_ACCEPTOR_H
#define NEXTHOP_ACCEPTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "listener.h"

struct acceptor_limits {
    int total;              /* connections served at once */
    int per_uid;            /* unix sockets: at once from one peer uid (SO_PEERCRED) */
    bool wait_for_slot;     /* at the total: leave clients in the backlog (else close them) */
};

/* Runs serve(fd, arg) for each connection; the descriptor is closed afterwards. */
typedef void acceptor_serve_fn(int fd, void *arg);

/* Starts serving l. Returns 0, or -1 with the reason in err. */
int acceptor_start(const struct listener *l, const char *name, const struct acceptor_limits *lim,
                   acceptor_serve_fn *serve, void *arg, char *err, size_t errlen);

#endif
