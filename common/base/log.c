/*
 * log.c - stderr or syslog output for log.h.
 *
 * Thread-safe: each message is formatted into a local buffer and written
 * with one call, so lines from worker threads never interleave. Every line
 * is escaped here (str_escape), so no caller has to remember to.
 * Must not: write a line unescaped, or split one message into two writes.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

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
    char raw[2048], line[4 * sizeof raw];
    va_list ap;

    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    /*
     * The one place where text from remotes, clients and macros meets the
     * log: control bytes, invalid UTF-8 and characters that reorder or hide
     * text are shown escaped ("\x1b", "\u202e"), so a line reads as it is.
     */
    str_escape(line, sizeof line, raw);
    if (use_syslog) {
        syslog(syslog_prio[level], "%s", line);
    } else {
        char out[sizeof line + 100];
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
