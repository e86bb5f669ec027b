/*
 * log.h - the one logging interface of milter-nexthop.
 *
 * Messages go to stderr (foreground, tools, tests) or syslog (daemon).
 * One line per event; callers put the queue id, recipient, remote, outcome
 * and milliseconds in the line so an administrator can grep for them.
 * Never pass a secret (password, auth secret) to these functions.
 * Must not: be handed a secret, or be the place where an error is decided
 * (errors travel up as text, see util.h, and are logged once at the top).
 */
#ifndef NEXTHOP_LOG_H
#define NEXTHOP_LOG_H

#include <stdbool.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARNING, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_init(const char *ident, bool to_syslog, enum log_level level);
void log_set_level(enum log_level level);
/* Parses "error", "warning", "info", "debug"; returns -1 when unknown. */
int log_level_parse(const char *name);
bool log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) \
    do { if (log_enabled(LOG_LVL_DEBUG)) log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

#endif
