/*
 * listener.h - the daemon's listening sockets, made one way: the milter
 * socket (bound by libmilter), socketmap.listen, auth-service.socket and
 * stats.listen.
 *
 * Spellings: "unix:/path", "local:/path" or "/path" for a unix socket;
 * "inet:PORT@HOST" (libmilter's), "inet:HOST:PORT", "HOST:PORT" or
 * "[IPV6]:PORT" for TCP. A unix socket gets its mode through the umask at
 * bind and its group with lchown (nothing follows a symbolic link); an
 * existing file is replaced only when it is a socket nobody answers on.
 * The socket file is removed at exit only while it is still the one we
 * made.
 * Must not: follow a symbolic link, or take over a socket another process
 * answers on.
 */
#ifndef NEXTHOP_LISTENER_H
#define NEXTHOP_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define LISTEN_UNIX 1
#define LISTEN_INET 2

struct listener_perm {
    int mode;                 /* unix sockets: permission bits */
    const char *group;        /* unix sockets: group name, NULL = the process's */
};

struct listener {
    const char *what;         /* the setting, for messages ("socketmap.listen") */
    int fd;                   /* -1 when closed */
    int family;               /* AF_UNIX, AF_INET, AF_INET6 */
    bool libmilter_fd;        /* the milter socket: libmilter closes it */
    char path[108];           /* unix: the socket file */
    dev_t dev;                /* ... and its identity when we made it */
    ino_t ino;
};

/*
 * Opens a listening socket for spec, of one of the kinds allowed
 * (LISTEN_UNIX | LISTEN_INET). Returns 0, or -1 with the reason in err.
 */
int listener_open(struct listener *l, const char *what, const char *spec, int kinds,
                  const struct listener_perm *perm, char *err, size_t errlen);

/* The same for the milter socket, which libmilter creates (smfi_setconn/smfi_opensocket). */
int listener_open_milter(struct listener *l, const char *spec, const struct listener_perm *perm,
                         char *err, size_t errlen);

/* New connections are refused from now on; connections waiting in the backlog are closed. */
void listener_refuse(struct listener *l);

/* Removes the socket file if it is still ours (at exit; the descriptor stays). */
void listener_remove(struct listener *l);

/* Closes the socket (not libmilter's) and removes its file if it is still ours. */
void listener_close(struct listener *l);

#endif
