/*
 * resolve.h - a remote's host name to addresses for a TCP connect, within
 * the caller's deadline.
 *
 * Names go through the system's own name service (glibc getaddrinfo_a:
 * /etc/hosts, DNS as resolv.conf says, nss modules), but a caller waits at
 * most until its deadline, never for getaddrinfo's own retries (tens of
 * seconds behind a dead resolver, past Postfix's 30 s milter timeout).
 * An answer is kept RESOLVE_KEEP_MS for every caller. A request that is
 * still running when its caller gave up goes on in the background: the
 * next caller for that name joins it instead of asking again, so a dead
 * resolver sees one request per name at a time, and a late answer is kept.
 *
 * Must not: connect, log, keep a failure (the pool's down-marking paces
 * retries), or block a caller past its deadline.
 */
#ifndef NEXTHOP_RESOLVE_H
#define NEXTHOP_RESOLVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RESOLVE_MAX_ADDRS 8
#define RESOLVE_KEEP_MS 60000   /* getaddrinfo gives no TTL: a short fixed time */

struct resolved {
    size_t n;
    struct sockaddr_storage addr[RESOLVE_MAX_ADDRS];   /* port already set */
    socklen_t len[RESOLVE_MAX_ADDRS];
};

/*
 * Fills out with the addresses of host (a name or an IP literal) for TCP
 * port before deadline_ms (now_ms() clock). Returns 0, or -1 with err
 * starting "DNS lookup of HOST: " (no answer in time, no such name, ...).
 */
int resolve_tcp(const char *host, int port, int64_t deadline_ms, struct resolved *out,
                char *err, size_t errlen);

#endif
