/*
 * spool.c - one message held for relaying (spool.h): in memory up to
 * memory_limit bytes, then in a temporary file created with mkstemp in
 * $TMPDIR (or /tmp), mode 0600 and unlinked at once, so nothing is left
 * behind even when the process dies.
 *
 * Must not: leave a named file on disk, or read the message back in any
 * other order than written.
 */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

struct spool {
    size_t limit;
    char *mem;          /* used while fd < 0 */
    size_t cap;
    int fd;             /* the unlinked temporary file, once spilled */
    size_t size;        /* bytes written */
    size_t rpos;        /* read position */
};

struct spool *spool_create(size_t memory_limit)
{
    struct spool *s = xcalloc(1, sizeof *s);
    s->limit = memory_limit;
    s->fd = -1;
    return s;
}

static int write_all(int fd, const char *p, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
        off += w;
    }
    return 0;
}

static int spill(struct spool *s, char *err, size_t errlen)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    if (!dir || !*dir)
        dir = "/tmp";
    snprintf(path, sizeof path, "%s/milter-nexthop.XXXXXX", dir);
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        set_error(err, errlen, "spool: cannot create a temporary file in %s: %s", dir,
                  strerror(errno));
        return -1;
    }
    unlink(path);
    fchmod(fd, 0600);
    if (s->size > 0 && write_all(fd, s->mem, s->size, 0) < 0) {
        set_error(err, errlen, "spool: write to temporary file: %s", strerror(errno));
        close(fd);
        return -1;
    }
    free(s->mem);
    s->mem = NULL;
    s->cap = 0;
    s->fd = fd;
    return 0;
}

int spool_write(struct spool *s, const void *data, size_t len, char *err, size_t errlen)
{
    if (len == 0)
        return 0;
    if (s->fd < 0 && s->size + len > s->limit && spill(s, err, errlen) < 0)
        return -1;
    if (s->fd >= 0) {
        if (write_all(s->fd, data, len, (off_t)s->size) < 0) {
            set_error(err, errlen, "spool: write to temporary file: %s", strerror(errno));
            return -1;
        }
    } else {
        if (s->size + len > s->cap) {
            size_t cap = s->cap ? s->cap : 4096;
            while (cap < s->size + len)
                cap *= 2;
            if (cap > s->limit)
                cap = s->limit;
            s->mem = xrealloc(s->mem, cap);
            s->cap = cap;
        }
        memcpy(s->mem + s->size, data, len);
    }
    s->size += len;
    return 0;
}

int spool_rewind(struct spool *s, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    s->rpos = 0;
    return 0;
}

ssize_t spool_read(struct spool *s, void *buf, size_t n)
{
    size_t left = s->size - s->rpos;
    if (n > left)
        n = left;
    if (n == 0)
        return 0;
    if (s->fd < 0) {
        memcpy(buf, s->mem + s->rpos, n);
        s->rpos += n;
        return (ssize_t)n;
    }
    for (;;) {
        ssize_t r = pread(s->fd, buf, n, (off_t)s->rpos);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        s->rpos += (size_t)r;
        return r;
    }
}

size_t spool_size(const struct spool *s) { return s->size; }

void spool_destroy(struct spool *s)
{
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    free(s->mem);
    free(s);
}
