/*
 * listener.c - the daemon's listening sockets (see listener.h): parse the
 * spelling, bind with the right permissions from the first moment, refuse
 * to take over a path that is not a stale socket, and remove the socket
 * file at exit only while it is still ours.
 *
 * Permissions: the mode is set through the umask around bind(), and the
 * group with lchown(), so nothing here ever follows a symbolic link that
 * someone who can write to the directory put in place of the socket. The
 * umask is process-wide: sockets are opened at start, before any thread
 * exists.
 * The milter socket is bound by libmilter; its listen() and unlink() are
 * ours (libmilter_hooks.h): listen() tells us its descriptor, unlink() does
 * nothing, since libmilter would remove whatever socket is at the path at
 * exit, even one a new instance made.
 * Spellings are sockspec.c's; the milter socket is handed to libmilter in
 * libmilter's own spelling (sockspec_milter), so Postfix's inet:HOST:PORT
 * binds what it says.
 * Must not: chmod/chown by path, unlink anything but a socket we made (or
 * a stale one nobody answers on), or be called once threads run (umask).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libmilter/mfapi.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "libmilter_hooks.h"
#include "listener.h"
#include "sockspec.h"
#include "util.h"

static int libmilter_listen_fd = -1;

int nexthop_libmilter_listen(int sockfd, int backlog)
{
    int rc = listen(sockfd, backlog);
    if (rc == 0)
        libmilter_listen_fd = sockfd;
    return rc;
}

int nexthop_libmilter_unlink(const char *path)
{
    (void)path;   /* listener_close() removes the socket file, and only ours */
    return 0;
}

/* True when something accepts connections on the unix socket path. */
static bool unix_answers(const struct sockaddr_un *sun)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool used = fd >= 0 && connect(fd, (const struct sockaddr *)sun, sizeof *sun) == 0;
    if (fd >= 0)
        close(fd);
    return used;
}

/* Before bind: the directory must be writable; an old socket nobody answers on is removed. */
static int unix_prepare(struct listener *l, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    char dir[sizeof sun.sun_path];
    struct stat st;
    if (!*path || strlen(path) >= sizeof sun.sun_path) {
        set_error(err, errlen, "%s: socket path '%s' is empty or longer than %zu bytes", l->what, path,
                  sizeof sun.sun_path - 1);
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    snprintf(l->path, sizeof l->path, "%s", path);
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    if (slash && access(dir, W_OK | X_OK) != 0) {
        set_error(err, errlen, "cannot create socket %s: directory %s: %s", path, dir, strerror(errno));
        return -1;
    }
    if (lstat(path, &st) != 0)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        set_error(err, errlen, "%s: %s exists and is not a socket", l->what, path);
        return -1;
    }
    if (unix_answers(&sun)) {
        set_error(err, errlen, "%s: %s is in use by another process", l->what, path);
        return -1;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        set_error(err, errlen, "%s: cannot remove the stale socket %s: %s", l->what, path, strerror(errno));
        return -1;
    }
    return 0;
}

/* After bind: remember which file we made, and give it its group without following links. */
static int unix_finish(struct listener *l, const struct listener_perm *perm, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(l->path, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        set_error(err, errlen, "%s: %s vanished after bind", l->what, l->path);
        return -1;
    }
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    if (perm && perm->group) {
        struct group *gr = getgrnam(perm->group);
        if (!gr) {
            set_error(err, errlen, "%s: cannot give %s to group %s: no such group", l->what, l->path,
                      perm->group);
            return -1;
        }
        if (lchown(l->path, (uid_t)-1, gr->gr_gid) != 0) {
            set_error(err, errlen, "%s: cannot give %s to group %s: %s", l->what, l->path, perm->group,
                      strerror(errno));
            return -1;
        }
    }
    return 0;
}

static mode_t umask_for(const struct listener_perm *perm)
{
    return (mode_t)(~(perm ? perm->mode : 0660) & 0777);
}

static int open_unix(struct listener *l, const char *path, const struct listener_perm *perm,
                     char *err, size_t errlen)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (unix_prepare(l, path, err, errlen) < 0)
        return -1;
    memcpy(sun.sun_path, l->path, strlen(l->path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_error(err, errlen, "%s: socket: %s", l->what, strerror(errno));
        return -1;
    }
    mode_t old = umask(umask_for(perm));
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
    int saved = errno;
    umask(old);
    if (rc != 0 || listen(fd, SOMAXCONN) != 0) {
        set_error(err, errlen, "%s: cannot listen on %s: %s", l->what, l->path, strerror(rc ? saved : errno));
        close(fd);
        return -1;
    }
    l->fd = fd;
    l->family = AF_UNIX;
    if (unix_finish(l, perm, err, errlen) < 0) {
        listener_close(l);
        return -1;
    }
    return 0;
}

static int open_inet(struct listener *l, const struct sockspec *ss, const char *spec, char *err,
                     size_t errlen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *ai;
    int gai = getaddrinfo(*ss->host ? ss->host : NULL, ss->port, &hints, &ai);
    if (gai != 0) {
        set_error(err, errlen, "%s: %s: %s", l->what, spec, gai_strerror(gai));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        set_error(err, errlen, "%s: cannot listen on %s: %s", l->what, spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    l->family = ai->ai_family;
    freeaddrinfo(ai);
    l->fd = fd;
    return fd < 0 ? -1 : 0;
}

static void listener_init(struct listener *l, const char *what)
{
    memset(l, 0, sizeof *l);
    l->what = what;
    l->fd = -1;
}

int listener_open(struct listener *l, const char *what, const char *spec, int kinds,
                  const struct listener_perm *perm, char *err, size_t errlen)
{
    struct sockspec ss;
    char e[ERRLEN];
    listener_init(l, what);
    if (sockspec_listen(spec, &ss, e, sizeof e) < 0) {
        set_error(err, errlen, "%s: %s", what, e);
        return -1;
    }
    if (ss.is_unix && (kinds & LISTEN_UNIX))
        return open_unix(l, ss.path, perm, err, errlen);
    if (!ss.is_unix && (kinds & LISTEN_INET))
        return open_inet(l, &ss, spec, err, errlen);
    set_error(err, errlen, "%s: '%s': expected %s", what, spec,
              kinds == LISTEN_UNIX ? "a unix socket path" : kinds == LISTEN_INET
              ? "ADDRESS:PORT" : "inet:ADDRESS:PORT or unix:/path");
    return -1;
}

int listener_open_milter(struct listener *l, const char *spec, const struct listener_perm *perm,
                         char *err, size_t errlen)
{
    static char conn[512];   /* kept: smfi_setconn copies it, but nothing is lost by keeping it */
    char e[ERRLEN];
    listener_init(l, "milter.socket");
    l->libmilter_fd = true;
    if (sockspec_milter(spec, conn, sizeof conn, e, sizeof e) < 0) {
        set_error(err, errlen, "milter.socket: %s", e);
        return -1;
    }
    bool is_unix = strncmp(conn, "unix:", 5) == 0;
    if (is_unix && unix_prepare(l, conn + 5, err, errlen) < 0)
        return -1;
    mode_t old = umask(umask_for(perm));
    errno = 0;
    libmilter_listen_fd = -1;
    int rc = smfi_setconn(conn) == MI_FAILURE || smfi_opensocket(false) == MI_FAILURE;
    int saved = errno;
    umask(old);
    if (rc || libmilter_listen_fd < 0) {
        set_error(err, errlen, "cannot listen on %s: %s (in use, or not permitted)", spec,
                  saved ? strerror(saved) : "libmilter refused it");
        return -1;
    }
    l->fd = libmilter_listen_fd;
    l->family = is_unix ? AF_UNIX : strncmp(conn, "inet6:", 6) == 0 ? AF_INET6 : AF_INET;
    return is_unix ? unix_finish(l, perm, err, errlen) : 0;
}

void listener_remove(struct listener *l)
{
    struct stat st;
    if (l->path[0] && l->ino && lstat(l->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
        st.st_dev == l->dev && st.st_ino == l->ino)
        unlink(l->path);
    l->path[0] = '\0';
}

void listener_refuse(struct listener *l)
{
    if (l->fd < 0)
        return;
    shutdown(l->fd, SHUT_RDWR);
    if (l->family == AF_UNIX) {
        /* unix connections already queued stay there after shutdown: close them (the MTA sees EOF) */
        int fd, flags = fcntl(l->fd, F_GETFL);
        if (flags >= 0 && fcntl(l->fd, F_SETFL, flags | O_NONBLOCK) == 0)
            while ((fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
                close(fd);
    }
    listener_remove(l);
}

void listener_close(struct listener *l)
{
    if (l->fd >= 0 && !l->libmilter_fd)
        close(l->fd);
    l->fd = -1;
    listener_remove(l);
}
