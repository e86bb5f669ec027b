/*
 * ctl.c - `milter-nexthop -c FILE -C COMMAND...`: sends one command to the
 * running daemon's control socket (control.socket of FILE) and prints its
 * answer. Exit 0 when the command succeeded, 1 when it failed, 75 when the
 * daemon cannot be reached (no control.socket, nothing listening, no
 * complete answer within the time), 78 when FILE cannot be parsed, 64 for
 * a command that cannot be sent. Only control.socket is read from FILE, so
 * `-C reload` works while the rest of the file has errors.
 *
 * Must not: touch a cache or the config itself (the daemon does), or wait
 * without a bound.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "config.h"
#include "milter.h"
#include "sockspec.h"
#include "util.h"

#define ANSWER_MS 60000        /* a reload may have much to check */
#define COMMAND_MAX 1000

static int unreachable(const char *path, const char *why)
{
    fprintf(stderr, "milter-nexthop: cannot reach the daemon at %s: %s\n", path, why);
    return EX_TEMPFAIL;
}

/* Prints the answer lines; returns the exit status their code stands for. */
static int print_answer(const char *path, char *buf, size_t len)
{
    int status = -1;
    char *p = buf, *end = buf + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        *nl = '\0';
        if (nl - p >= 4 && (p[3] == '-' || p[3] == ' ')) {
            printf("%s\n", p + 4);
            if (p[3] == ' ')
                status = p[0] == '2' ? 0 : 1;
        }
        p = nl + 1;
    }
    if (status < 0)
        return unreachable(path, "no complete answer");
    return status;
}

int ctl_command(const char *file, char **words, int n)
{
    char err[16384], cmd[COMMAND_MAX + 2] = "";
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        if (strpbrk(words[i], "\r\n") || !*words[i]) {
            fprintf(stderr, "milter-nexthop: -C: an empty word or a line break in \"%s\"\n", words[i]);
            return EX_USAGE;
        }
        int w = snprintf(cmd + used, sizeof cmd - used, "%s%s", i ? " " : "", words[i]);
        if (w < 0 || (size_t)w >= sizeof cmd - used) {
            fprintf(stderr, "milter-nexthop: -C: the command is longer than %d bytes\n", COMMAND_MAX);
            return EX_USAGE;
        }
        used += (size_t)w;
    }
    cmd[used++] = '\n';

    char *spec = NULL;
    int found = config_peek_string(file, "control.socket", &spec, err, sizeof err);
    if (found < 0) {
        fprintf(stderr, "milter-nexthop: %s cannot be parsed, so the daemon was not asked (it keeps "
                "running with the config it has):\n%s\n", file, err);
        return EX_CONFIG;
    }
    if (!found) {
        fprintf(stderr, "milter-nexthop: %s sets no control.socket: the daemon has no control socket\n", file);
        return EX_TEMPFAIL;
    }
    struct sockspec ss;   /* the spellings the daemon's listener took */
    int parsed = sockspec_parse(spec, &ss, err, sizeof err);
    if (parsed == 0 && !ss.is_unix)
        set_error(err, sizeof err, "'%s' is not a unix socket", spec);
    if (parsed < 0 || !ss.is_unix) {
        int rc = unreachable(spec, err);
        free(spec);
        return rc;
    }
    free(spec);
    const char *path = ss.path;

    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int rc = unreachable(path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    if (send(fd, cmd, used, MSG_NOSIGNAL) != (ssize_t)used) {
        int rc = unreachable(path, strerror(errno));
        close(fd);
        return rc;
    }
    shutdown(fd, SHUT_WR);

    size_t len = 0, cap = 4096;
    char *buf = xmalloc(cap);
    int64_t deadline = now_ms() + ANSWER_MS;
    for (;;) {
        if (fd_wait_until(fd, POLLIN, deadline) <= 0)
            break;
        if (len == cap)
            buf = xrealloc(buf, cap *= 2);
        ssize_t got = read(fd, buf + len, cap - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    int rc = print_answer(path, buf, len);
    free(buf);
    return rc;
}
