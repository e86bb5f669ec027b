/*
 * pidfile.c - the pid file (see pidfile.h).
 *
 * The file is opened as root in a directory the daemon's user may own, so
 * it is opened with O_NOFOLLOW (a symbolic link is refused, never
 * followed), must be a regular file with one link, and is emptied only
 * once it is locked. The lock (flock) belongs to the open file, so it
 * survives the fork in detach.c and is held by the daemon until it exits;
 * a second instance finds it taken and names the pid that holds it.
 * Must not: write through a link, truncate a file before holding its lock,
 * or remove a file that is no longer ours.
 */
#include "pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static int pid_fd = -1;
static char pid_path[4096];
static struct stat pid_st;

/* The pid the holder of the lock wrote, or "unknown". */
static void holder(int fd, char *out, size_t len)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    snprintf(out, len, "%s", *buf ? buf : "unknown");
}

int pidfile_open(const char *path, char *err, size_t errlen)
{
    char who[32];
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0) {
        set_error(err, errlen, "cannot open pid file %s: %s", path,
                  errno == ELOOP ? "it is a symbolic link" : strerror(errno));
        return -1;
    }
    if (fstat(fd, &pid_st) != 0 || !S_ISREG(pid_st.st_mode) || pid_st.st_nlink != 1) {
        set_error(err, errlen, "cannot use pid file %s: not a regular file with a single link", path);
        close(fd);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        holder(fd, who, sizeof who);
        set_error(err, errlen, "pid file %s is locked by a running milter-nexthop (pid %s): "
                  "not starting a second one", path, who);
        close(fd);
        return -1;
    }
    pid_fd = fd;
    snprintf(pid_path, sizeof pid_path, "%s", path);
    return 0;
}

int pidfile_write(char *err, size_t errlen)
{
    char line[32];
    int n = snprintf(line, sizeof line, "%ld\n", (long)getpid());
    if (pid_fd < 0)
        return 0;
    if (ftruncate(pid_fd, 0) != 0 || pwrite(pid_fd, line, (size_t)n, 0) != n) {
        set_error(err, errlen, "cannot write pid file %s: %s", pid_path, strerror(errno));
        return -1;
    }
    return 0;
}

void pidfile_remove(void)
{
    struct stat st;
    if (pid_fd < 0)
        return;
    /* Only our file: the path may have been replaced since (removed by hand, a new instance). */
    if (lstat(pid_path, &st) != 0 || st.st_dev != pid_st.st_dev || st.st_ino != pid_st.st_ino ||
        unlink(pid_path) != 0) {
        int rc = ftruncate(pid_fd, 0);   /* cannot remove it (e.g. a root-owned directory): empty it */
        (void)rc;
    }
    close(pid_fd);
    pid_fd = -1;
}
