/*
 * fake_remote.c - a scripted remote host for the unit tests: runs
 * tests/lib/fakeserver.py SCENARIO as a child process on a free port, and
 * reads back what it logged (every command received, the most concurrent
 * sessions). See fake_remote.h.
 * Must not: outlive the test (the child dies with its parent), or listen
 * anywhere but 127.0.0.1 (fakeserver.py binds there).
 */
#include "fake_remote.h"

#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "util.h"


void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

const char *fakeserver_path(void)
{
    static char path[1024];
    const char *src = getenv("NEXTHOP_SRC");
    if (src && *src)
        snprintf(path, sizeof path, "%s/tests/lib/fakeserver.py", src);
    else
        snprintf(path, sizeof path, "%s/../../lib/fakeserver.py", TEST_DATA_DIR);
    return path;
}

/* Fake servers of the running test, stopped by teardown if an assert jumped out. */
static struct fake running[8];

/* Starts fakeserver.py SCENARIO with extra options (NULL-terminated). */
void fake_start(struct fake *f, const char *scenario, ...)
{
    const char *argv[32];
    int argc = 0, fds[2];
    va_list ap;
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_fake.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->log, sizeof f->log, "%s/commands.log", f->dir);
    snprintf(f->status, sizeof f->status, "%s/status", f->dir);
    snprintf(f->data, sizeof f->data, "%s/data", f->dir);
    argv[argc++] = "python3";
    argv[argc++] = fakeserver_path();
    argv[argc++] = "--log";
    argv[argc++] = f->log;
    argv[argc++] = "--status";
    argv[argc++] = f->status;
    argv[argc++] = "--data";
    argv[argc++] = f->data;
    va_start(ap, scenario);
    for (const char *a; (a = va_arg(ap, const char *)) && argc < 28;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc++] = scenario;
    argv[argc] = NULL;
    assert_int_equal(pipe(fds), 0);
    f->pid = fork();
    assert_true(f->pid >= 0);
    if (f->pid == 0) {
        /* never outlive the test, never hold the test's stderr open */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        char errlog[300];
        snprintf(errlog, sizeof errlog, "%s/stderr", f->dir);
        int efd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (efd >= 0)
            dup2(efd, 2);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execvp("python3", (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    char buf[64] = "";
    size_t len = 0;
    struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
    while (!strchr(buf, '\n') && len + 1 < sizeof buf && poll(&pfd, 1, 10000) > 0) {
        ssize_t r = read(fds[0], buf + len, sizeof buf - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
    }
    close(fds[0]);
    for (size_t i = 0; i < ARRAY_SIZE(running); i++) {
        if (running[i].pid == 0) {
            running[i] = *f;
            break;
        }
    }
    assert_int_equal(sscanf(buf, "PORT %d", &f->port), 1);
}

void fake_stop(struct fake *f)
{
    char tmp[320];
    for (size_t i = 0; i < ARRAY_SIZE(running); i++)
        if (&running[i] != f && running[i].pid == f->pid)
            running[i].pid = 0;
    if (f->pid > 0) {
        kill(f->pid, SIGTERM);
        waitpid(f->pid, NULL, 0);
        f->pid = 0;
    }
    snprintf(tmp, sizeof tmp, "%s/stderr", f->dir);
    unlink(tmp);
    unlink(f->log);
    unlink(f->status);
    snprintf(tmp, sizeof tmp, "%s.tmp", f->status);
    unlink(tmp);
    unlink(f->data);
    rmdir(f->dir);
}

int stop_leftovers(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(running); i++)
        if (running[i].pid > 0)
            fake_stop(&running[i]);
    return 0;
}

char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return xstrdup("");
    char *buf = xmalloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* Lines of the command log equal to line. */
int log_count(const struct fake *f, const char *line)
{
    char *log = slurp(f->log);
    int n = 0;
    for (char *p = strtok(log, "\n"); p; p = strtok(NULL, "\n"))
        if (strcmp(p, line) == 0)
            n++;
    free(log);
    return n;
}

/* Lines of the command log starting with prefix. */
int log_count_prefix(const struct fake *f, const char *prefix)
{
    char *log = slurp(f->log);
    int n = 0;
    for (char *p = strtok(log, "\n"); p; p = strtok(NULL, "\n"))
        if (strncmp(p, prefix, strlen(prefix)) == 0)
            n++;
    free(log);
    return n;
}

bool log_has(const struct fake *f, const char *needle)
{
    char *log = slurp(f->log);
    bool has = strstr(log, needle) != NULL;
    free(log);
    return has;
}

static int status_field(const struct fake *f, const char *key)
{
    char *st = slurp(f->status);
    int v = -1;
    char *p = strstr(st, key);
    if (p)
        v = atoi(p + strlen(key));
    free(st);
    return v;
}

int fake_max_sessions(const struct fake *f) { return status_field(f, "max="); }

int fake_pipelined(const struct fake *f) { return status_field(f, "pipelined="); }


void remote_init(struct remote_def *r, int port, enum remote_proto proto)
{
    memset(r, 0, sizeof *r);
    r->id = (char *)"fake";
    r->ep.name = r->id;
    r->ep.address = (char *)"127.0.0.1";
    r->ep.port = port;
    r->ep.protocol = proto;
    r->concurrency = 4;
    r->ep.timeout_ms = 2000;
    r->lookup = true;
    r->ep.tls_enable = false;
    r->ep.tls_implicit = true;
    r->limits_errors = 3;
    r->limits_requests = 50;
}

enum lookup_result lookup(struct pool *p, enum lookup_kind kind, const char *arg,
                          const char *pw, char *reply, char *err)
{
    reply[0] = err[0] = '\0';
    return pool_lookup(p, kind, arg, pw, NULL, reply, 256, err, ERRLEN);
}
