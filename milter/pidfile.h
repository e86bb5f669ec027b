/*
 * pidfile.h - the pid file (milter.pidfile, -P): opened without following
 * a symbolic link, locked for as long as the daemon runs (a second
 * instance with the same pid file refuses to start), removed at exit.
 * Must not: follow a symbolic link, or remove a pid file it does not hold.
 */
#ifndef NEXTHOP_PIDFILE_H
#define NEXTHOP_PIDFILE_H

#include <stddef.h>

/* Opens and locks path. Returns 0, or -1 with the reason in err. */
int pidfile_open(const char *path, char *err, size_t errlen);
/* Writes the calling process's pid (after detaching). */
int pidfile_write(char *err, size_t errlen);
/* Removes the file if it is still ours (or empties it when the directory forbids removal). */
void pidfile_remove(void);

#endif
