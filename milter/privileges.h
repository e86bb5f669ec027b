/*
 * privileges.h - the identity the daemon serves with: milter.user (-u)
 * and milter.group, taken once every socket and the pid file are open.
 * Must not: keep root once it returns, or switch before the sockets exist.
 */
#ifndef NEXTHOP_PRIVILEGES_H
#define NEXTHOP_PRIVILEGES_H

#include <stddef.h>

/*
 * user set: becomes user, with group (or user's primary group) and user's
 * supplementary groups. user unset, group set: becomes group (root), or
 * checks that the process already has it. Neither: keeps the identity
 * (warns when that is root). Returns 0, or -1 with the reason in err.
 */
int privileges_drop(const char *user, const char *group, char *err, size_t errlen);

#endif
