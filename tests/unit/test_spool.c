/*
 * test_spool.c - the message spool (common/base/spool.c): kept in memory up to
 * the limit, then spilled to a temporary file that is private (0600) and
 * already unlinked; reading back gives exactly the bytes written.
 */
#include <dirent.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "spool.h"
#include "util.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_spool.XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    setenv("TMPDIR", tmpdir, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rmdir(tmpdir);
    return 0;
}

static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* Open descriptors of this process that point into tmpdir; mode of the last. */
static int fds_into_tmpdir(mode_t *mode, bool *deleted)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        char link[64], target[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        if (strncmp(target, tmpdir, strlen(tmpdir)) != 0)
            continue;
        struct stat st;
        if (stat(link, &st) == 0)
            *mode = st.st_mode & 07777;
        *deleted = strstr(target, "(deleted)") != NULL;
        n++;
    }
    if (d)
        closedir(d);
    return n;
}

static void fill_pattern(unsigned char *buf, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (unsigned char)(seed >> 16);
    }
}

static void write_in_pieces(struct spool *s, const unsigned char *data, size_t n)
{
    char err[ERRLEN];
    size_t off = 0, piece = 1;
    while (off < n) {
        size_t k = piece < n - off ? piece : n - off;
        assert_int_equal(spool_write(s, data + off, k, err, sizeof err), 0);
        off += k;
        piece = piece * 3 + 1;   /* uneven sizes cross the limit mid-write */
    }
}

static void read_back(struct spool *s, const unsigned char *want, size_t n)
{
    char err[ERRLEN];
    unsigned char *got = xmalloc(n + 1);
    size_t off = 0;
    assert_int_equal(spool_rewind(s, err, sizeof err), 0);
    for (;;) {
        ssize_t r = spool_read(s, got + off, 777);
        assert_true(r >= 0);
        if (r == 0)
            break;
        off += (size_t)r;
        assert_true(off <= n);
    }
    assert_int_equal(off, n);
    assert_memory_equal(got, want, n);
    free(got);
}

static void test_memory_only(void **state)
{
    (void)state;
    unsigned char data[1000];
    fill_pattern(data, sizeof data, 1);
    struct spool *s = spool_create(4096);
    write_in_pieces(s, data, sizeof data);
    assert_int_equal(spool_size(s), sizeof data);
    mode_t mode = 0;
    bool deleted = false;
    assert_int_equal(fds_into_tmpdir(&mode, &deleted), 0);   /* no file at all */
    read_back(s, data, sizeof data);
    read_back(s, data, sizeof data);   /* rewind works twice */
    spool_destroy(s);
}

static void test_spill_to_private_unlinked_file(void **state)
{
    (void)state;
    size_t n = 300000;
    unsigned char *data = xmalloc(n);
    fill_pattern(data, n, 7);
    struct spool *s = spool_create(4096);
    write_in_pieces(s, data, n);
    assert_int_equal(spool_size(s), n);

    mode_t mode = 0;
    bool deleted = false;
    assert_int_equal(fds_into_tmpdir(&mode, &deleted), 1);
    assert_true(deleted);                         /* unlinked at once */
    assert_int_equal(mode, 0600);
    assert_int_equal(dir_entries(tmpdir), 0);     /* nothing visible on disk */

    read_back(s, data, n);
    /* writing after a read appends; reading again sees everything */
    char err[ERRLEN];
    assert_int_equal(spool_write(s, "tail", 4, err, sizeof err), 0);
    data = xrealloc(data, n + 4);
    memcpy(data + n, "tail", 4);
    read_back(s, data, n + 4);
    spool_destroy(s);
    assert_int_equal(fds_into_tmpdir(&mode, &deleted), 0);   /* closed */
    free(data);
}

static void test_exact_limit_stays_in_memory(void **state)
{
    (void)state;
    unsigned char data[4096];
    mode_t mode = 0;
    bool deleted = false;
    fill_pattern(data, sizeof data, 3);
    struct spool *s = spool_create(sizeof data);
    write_in_pieces(s, data, sizeof data);
    assert_int_equal(fds_into_tmpdir(&mode, &deleted), 0);
    char err[ERRLEN];
    assert_int_equal(spool_write(s, "x", 1, err, sizeof err), 0);   /* one more byte spills */
    assert_int_equal(fds_into_tmpdir(&mode, &deleted), 1);
    spool_destroy(s);
}

static void test_empty(void **state)
{
    (void)state;
    char buf[8], err[ERRLEN];
    struct spool *s = spool_create(0);
    assert_int_equal(spool_size(s), 0);
    assert_int_equal(spool_rewind(s, err, sizeof err), 0);
    assert_int_equal(spool_read(s, buf, sizeof buf), 0);
    spool_destroy(s);
}

static void test_unwritable_tmpdir(void **state)
{
    (void)state;
    char err[ERRLEN] = "";
    setenv("TMPDIR", "/nonexistent/dir", 1);
    struct spool *s = spool_create(4);
    assert_int_equal(spool_write(s, "abc", 3, err, sizeof err), 0);
    assert_int_equal(spool_write(s, "defgh", 5, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/dir"));
    spool_destroy(s);
    setenv("TMPDIR", tmpdir, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_only),
        cmocka_unit_test(test_spill_to_private_unlinked_file),
        cmocka_unit_test(test_exact_limit_stays_in_memory),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_unwritable_tmpdir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
