/*
 * control.c - the control socket (control.socket): one command per
 * connection from `milter-nexthop -C`, answered in SMTP style lines
 * ("200-text" ... "200 text", or 5xx when the command failed).
 *
 * Commands: flush ADDRESS|@DOMAIN|all [REMOTE], show ADDRESS, reload,
 * stats, help. flush and show are common/config/admin.c, reload is
 * reload_now() (what SIGUSR1 does, but the errors come back), stats is
 * the text of /metrics without its comments. Only the socket's mode and
 * group (control.mode, control.group) guard it; every command is
 * logged with the peer's uid and how it ended.
 *
 * Must not: decide what a command does to the caches (admin.c does),
 * block a mail thread, or wait on a client past REQUEST_MS.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acceptor.h"
#include "admin.h"
#include "log.h"
#include "milter.h"
#include "services.h"
#include "util.h"

/*
 * -C writes its whole command line at once, so a client that has not sent
 * it within REQUEST_MS is stalled, not slow; and no one uid may hold more
 * than CONTROL_PER_UID of the slots, so a few stalled clients of one user
 * (the MTA's, say) cannot lock out the admin's -C.
 */
#define CONTROL_CLIENTS 8
#define CONTROL_PER_UID 3
#define REQUEST_MS 2000        /* the command line must arrive within this */
#define SEND_MS 10000          /* and the answer leave within this */
#define LINE_MAX_BYTES 1024
#define MAX_WORDS 4

/* Reads one line (without its LF) by the deadline; 0, or -1 with why. */
static int read_line(int fd, char *line, size_t len, const char **why)
{
    size_t got = 0;
    int64_t deadline = now_ms() + REQUEST_MS;
    for (;;) {
        int ready = fd_wait_until(fd, POLLIN, deadline);
        if (ready <= 0) {
            *why = ready == 0 ? "no command in time" : "poll failed";
            return -1;
        }
        ssize_t n = read(fd, line + got, len - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            line[got] = '\0';
            if (got) /* a command without LF, then EOF (shutdown of the client's side) */
                return 0;
            *why = "closed without a command";
            return -1;
        }
        got += (size_t)n;
        line[got] = '\0';
        char *lf = memchr(line, '\n', got);
        if (lf) {
            *lf = '\0';
            if (lf > line && lf[-1] == '\r')
                lf[-1] = '\0';
            return 0;
        }
        if (got == len - 1) {
            *why = "command too long";
            return -1;
        }
    }
}

static void send_all(int fd, const char *buf, size_t len)
{
    int64_t deadline = now_ms() + SEND_MS;
    while (len > 0) {
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w > 0) {
            buf += w;
            len -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) ||
            fd_wait_until(fd, POLLOUT, deadline) <= 0)
            return;
    }
}

/* Sends text (lines) as "CODE-line" ... "CODE line"; an empty text as "CODE ok". */
static void answer(int fd, int code, const char *text)
{
    const char *p = *text ? text : "ok\n";
    size_t len = strlen(p), lines = 1;
    for (const char *c = p; *c; c++)
        lines += *c == '\n';
    char *out = xmalloc(len + 5 * lines + 1), *o = out;   /* "NNN-" and a LF per line */
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        const char *next = nl ? nl + 1 : p + n;
        o += sprintf(o, "%03d%c", code, *next ? '-' : ' ');
        memcpy(o, p, n);
        o += n;
        *o++ = '\n';
        p = next;
    }
    send_all(fd, out, (size_t)(o - out));
    free(out);
}

/* The text of /metrics without its # HELP / # TYPE lines. */
static void stats(FILE *out)
{
    size_t len = 0;
    char *text = stats_text(&len), *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (line[0] != '#')
            fprintf(out, "%s\n", line);
    free(text);
}

static const char help[] =
    "flush ADDRESS [REMOTE]   forget what the caches know of one recipient\n"
    "flush @DOMAIN [REMOTE]   ... of every recipient of a domain, and its catch-all mark\n"
    "flush all [REMOTE]       ... of everything\n"
    "show ADDRESS             what each remote's cache holds for a recipient\n"
    "reload                   load the config file again (as SIGUSR1), errors shown\n"
    "stats                    the counters of /metrics\n";

/* Runs the command in words[0..n-1]; writes its text to out; 0 or -1. */
static int run(char **words, int n, FILE *out)
{
    static char err[16384];
    const char *cmd = n ? words[0] : "";
    struct nh_runtime *rt;
    int rc = -1;
    if (strcmp(cmd, "flush") == 0 && (n == 2 || n == 3)) {
        if (!(rt = runtime_current())) {
            fprintf(out, "the daemon has no config yet\n");
            return -1;
        }
        rc = admin_flush(rt, strcmp(words[1], "all") == 0 ? NULL : words[1], n == 3 ? words[2] : NULL, out);
        runtime_unref(rt);
    } else if (strcmp(cmd, "show") == 0 && n == 2) {
        if (!(rt = runtime_current())) {
            fprintf(out, "the daemon has no config yet\n");
            return -1;
        }
        rc = admin_show(rt, words[1], out);
        runtime_unref(rt);
    } else if (strcmp(cmd, "reload") == 0 && n == 1) {
        rc = reload_now("control socket", err, sizeof err);
        fprintf(out, "%s\n", err);
    } else if (strcmp(cmd, "stats") == 0 && n == 1) {
        stats(out);
        rc = 0;
    } else if (strcmp(cmd, "help") == 0 && n == 1) {
        fputs(help, out);
        rc = 0;
    } else {
        fprintf(out, "unknown command or wrong arguments; the commands are:\n%s", help);
    }
    return rc;
}

static void serve(int fd, void *arg)
{
    char line[LINE_MAX_BYTES], *words[MAX_WORDS + 1], *save = NULL;
    const char *why = NULL;
    struct ucred cred = { .uid = (uid_t)-1 };
    socklen_t cl = sizeof cred;
    int64_t start = now_ms();
    (void)arg;
    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl);
    if (read_line(fd, line, sizeof line, &why) < 0) {
        log_warning("control: uid=%ld result=error why=\"%s\"", (long)(int)cred.uid, why);
        answer(fd, 500, why);
        return;
    }
    char logged[LINE_MAX_BYTES];
    snprintf(logged, sizeof logged, "%s", line);
    int n = 0;
    for (char *w = strtok_r(line, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
        if (n <= MAX_WORDS)
            words[n++] = w;

    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    int rc = out ? run(words, n > MAX_WORDS ? MAX_WORDS + 1 : n, out) : -1;
    if (out)
        fclose(out);
    answer(fd, rc == 0 ? 200 : 500, text ? text : "out of memory");
    log_msg(rc == 0 ? LOG_LVL_INFO : LOG_LVL_WARNING,
            "control: uid=%ld command=\"%s\" result=%s ms=%ld", (long)(int)cred.uid, logged,
            rc == 0 ? "ok" : "failed", (long)(now_ms() - start));
    free(text);
}

int control_start(const struct listener *l, const char *spec, char *err, size_t errlen)
{
    const struct acceptor_limits lim = { .total = CONTROL_CLIENTS, .per_uid = CONTROL_PER_UID,
                                         .wait_for_slot = true };
    if (acceptor_start(l, "control", &lim, serve, NULL, err, errlen) < 0)
        return -1;
    log_info("control: listening on %s (milter-nexthop -C)", spec);
    return 0;
}
