/*
 * log.c - stderr or syslog output for log.h.
 *
 * Thread-safe: each message is formatted into a local buffer and written
 * with one call, so lines from worker threads never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static bool use_syslog;
static volatile int current_level = LOG_LVL_INFO;

static const char *const level_names[] = { "error", "warning", "info", "debug" };
static const int syslog_prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

void log_init(const char *ident, bool to_syslog, enum log_level level)
{
    use_syslog = to_syslog;
    current_level = level;
    if (to_syslog)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_level(enum log_level level) { current_level = level; }

int log_level_parse(const char *name)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

bool log_enabled(enum log_level level) { return (int)level <= current_level; }

void log_msg(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;

    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* Never let a control byte from a remote or a client reach the log. */
    for (char *p = line; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    if (use_syslog) {
        syslog(syslog_prio[level], "%s", line);
    } else {
        char out[2200];
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        int n = snprintf(out, sizeof out, "%02d:%02d:%02d.%03ld milter-nexthop[%d]: %s: %s\n",
                         tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
                         (int)getpid(), level_names[level], line);
        if (n > (int)sizeof out - 1)
            n = (int)sizeof out - 1;
        ssize_t w = write(STDERR_FILENO, out, (size_t)n);
        (void)w;
    }
}
