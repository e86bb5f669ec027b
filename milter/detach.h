/*
 * detach.h - going to the background without losing the start's outcome:
 * the parent waits until the daemon says it is ready (exit 0) or why it
 * failed (its message on the terminal, its exit status).
 * Must not: let the parent exit 0 before the daemon serves.
 */
#ifndef NEXTHOP_DETACH_H
#define NEXTHOP_DETACH_H

#include <stdbool.h>

/*
 * Forks. Returns 0 in the daemon (the child); the parent never returns.
 * keep_stderr: do not point stderr at /dev/null (logging to stderr).
 * Returns -1 when fork failed (still in the one process).
 */
int detach_begin(bool keep_stderr);
/* The daemon is serving: the parent exits 0. */
void detach_ready(void);
/* The daemon cannot start: the parent prints message and exits with status. No-op when not detached. */
void detach_failed(int status, const char *message);

#endif
