/*
 * detach.c - the fork to the background (see detach.h).
 *
 * A pipe joins the two processes. The daemon (child) writes either "0\n"
 * when it serves, or "STATUS\nMESSAGE" when its start failed; the parent
 * prints the message on stderr and exits with STATUS. If the pipe closes
 * without a word, the daemon died during its start: the parent says so and
 * exits EX_SOFTWARE. Until it is ready the daemon keeps its stdin/stdout/
 * stderr; then they go to /dev/null (stderr stays when logging to it).
 * Must not: let the parent exit 0 before the daemon serves.
 */
#include "detach.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

static int word_fd = -1;        /* the daemon's end of the pipe */
static bool keep_err;

static void write_all(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        s += n;
        len -= (size_t)n;
    }
}

/* In the parent: the daemon's word, then exit. */
static void wait_for_word(int fd, pid_t child)
{
    char buf[16384];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof buf - 1 && ((n = read(fd, buf + len, sizeof buf - 1 - len)) > 0 ||
                                    (n < 0 && errno == EINTR)))
        len += n > 0 ? (size_t)n : 0;
    buf[len] = '\0';
    if (len == 0) {
        int st = 0;
        waitpid(child, &st, 0);
        fprintf(stderr, "milter-nexthop: the daemon died during its start (%s %d)\n",
                WIFSIGNALED(st) ? "signal" : "exit status", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        _exit(EX_SOFTWARE);
    }
    int status = atoi(buf);
    char *message = strchr(buf, '\n');
    if (status != 0 && message && message[1])
        fprintf(stderr, "milter-nexthop: %s\n", message + 1);
    _exit(status);
}

int detach_begin(bool keep_stderr)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid > 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);   /* the waiting parent stays interruptible */
        close(p[1]);
        wait_for_word(p[0], pid);
    }
    close(p[0]);
    word_fd = p[1];
    keep_err = keep_stderr;
    setsid();
    return 0;
}

void detach_ready(void)
{
    if (word_fd < 0)
        return;
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        if (!keep_err)
            dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    write_all(word_fd, "0\n", 2);
    close(word_fd);
    word_fd = -1;
}

void detach_failed(int status, const char *message)
{
    char head[16];
    if (word_fd < 0)
        return;
    int n = snprintf(head, sizeof head, "%d\n", status);
    write_all(word_fd, head, (size_t)n);
    write_all(word_fd, message, strlen(message));
    close(word_fd);
    word_fd = -1;
}
