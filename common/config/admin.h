/*
 * admin.h - what the control socket's `flush` and `show` do to the
 * caches of a running runtime, written as text lines for the admin.
 *
 * Must not: know the socket, the command syntax or libmilter (the
 * daemon's control.c parses commands and moves the text), or print a
 * secret (AUTH cache keys are salted hashes and are never shown).
 */
#ifndef NEXTHOP_ADMIN_H
#define NEXTHOP_ADMIN_H

#include <stdio.h>

#include "runtime.h"

/*
 * Forgets what the remotes know about `what`: an address, "@domain", or
 * NULL for everything; only remote `remote_id` when it is not NULL.
 * Writes one line per remote ("ID: N removed (L local, R in Redis)") and
 * a total. Returns 0, or -1 after writing why (a bad address, no such
 * remote, Redis failed: the local entries are gone all the same).
 */
int admin_flush(struct nh_runtime *run, const char *what, const char *remote_id, FILE *out);

/*
 * Writes, per remote that does lookups, what its caches know of address:
 * "ID: yes, 3599 s left, from remote", "ID: no, ...", "ID: not cached".
 * Returns 0, or -1 after writing why (a bad address).
 */
int admin_show(struct nh_runtime *run, const char *address, FILE *out);

#endif
