/*
 * catchall.h - what one remote host has shown about catch-all domains.
 *
 * A domain whose host accepts any local part needs no probe per
 * recipient. After a yes for user@domain, catchall_learn() queues one
 * probe of a random local part at that domain; a background thread of this
 * remote (started on first use) runs it on the pool, never on the RCPT
 * path. What the probe found is kept for the positive TTL (a yes) or the
 * negative TTL (a no), in a bounded table.
 *
 * Must not: block its caller, probe a domain again while its answer is
 * known, or take the daemon's signals on its thread.
 */
#ifndef NEXTHOP_CATCHALL_H
#define NEXTHOP_CATCHALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct catchall;
struct pool;

/* remote_id is kept by reference: it must outlive the catchall. */
struct catchall *catchall_create(struct pool *pool, const char *remote_id, int64_t ttl_positive_ms,
                                 int64_t ttl_negative_ms);
/* Stops the probe thread (waiting for a probe under way) and frees everything. */
void catchall_destroy(struct catchall *ca);

/* True when domain is known to accept any local part. */
bool catchall_is(struct catchall *ca, const char *domain);
/* Queues a probe of domain unless its answer is known or queued (dropped when the queue is full). */
void catchall_learn(struct catchall *ca, const char *domain);
/* Forgets what is known of domain (NULL: of every domain); returns how many answers went. */
size_t catchall_forget(struct catchall *ca, const char *domain);

#endif
