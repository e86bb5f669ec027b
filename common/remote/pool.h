/*
 * pool.h - pooled, TLS-capable client connections to one remote host.
 *
 * A pool owns at most `concurrency` connections to one remote.<id>. Each
 * connection is reused for up to limits.requests operations, closed after
 * limits.errors failures, closed when idle too long, and checked before
 * reuse unless it was used moments ago (NOOP after a few seconds idle). Callers wait for a free connection within the remote's
 * timeout. A host that refuses connections is marked down for a short,
 * growing interval, so callers fail at once instead of stalling.
 * Thread-safe: called from many milter worker threads.
 *
 * Must not: cache answers (lookup.c does), log secrets, or ever fall back
 * to plain text when TLS was asked for.
 */
#ifndef NEXTHOP_POOL_H
#define NEXTHOP_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops.h"
#include "remote.h"

struct pool;
struct spool;

struct pool *pool_create(const struct remote_def *remote);
/* Closes every connection. No caller may be inside the pool. */
void pool_destroy(struct pool *pool);

/*
 * One lookup on a pooled connection.
 *   arg:       the address (rcpt/vrfy/expn) or user name (auth); already
 *              normalized, never holding CR, LF or NUL.
 *   password:  auth only, else NULL.
 *   members_r: expn only (may be NULL): malloc'd, one member per line.
 *   reply:     the remote's final reply line(s), e.g. "550 5.1.1 <x> User
 *              doesn't exist", for logs and for passing through.
 * YES/NO are answers; ERROR (with err) is anything else: connect failure,
 * timeout, TLS failure, 4xx, garbage, host marked down.
 */
enum lookup_result pool_lookup(struct pool *pool, enum lookup_kind kind, const char *arg,
                               const char *password, char **members_r, char *reply,
                               size_t replylen, char *err, size_t errlen);

/*
 * Delivers the message in `msg` (headers and body, as the MTA will deliver
 * them) to this remote in one transaction: MAIL FROM:<sender>, RCPT TO each,
 * DATA with dot-stuffing and CRLF line ends; with LMTP one reply per
 * accepted recipient. progress(ctx) is called at least every few seconds
 * while waiting. The whole exchange ends by deadline_ms (now_ms() clock).
 * Every rcpts[i].code is set on return: 2xx delivered, 5xx refused for
 * good, 4xx (or 451 with our reason) anything else. Returns 0 when the
 * transaction ran, -1 (with err) when it failed as a whole.
 */
int pool_relay(struct pool *pool, const char *sender, struct relay_rcpt *rcpts, size_t n,
               struct spool *msg, void (*progress)(void *ctx), void *ctx, int64_t deadline_ms,
               char *err, size_t errlen);

/* Counters for tests and metrics. */
struct pool_stats {
    int open;          /* connections open now */
    int idle;          /* of which idle in the pool */
    int max_open;      /* highest `open` ever seen */
    long connects;     /* connections ever opened */
    long operations;   /* lookups + relays run */
    int pipelined;     /* RCPT lookups on shared connections now (sent or queued) */
    bool down;         /* host currently marked down */
};
void pool_get_stats(struct pool *pool, struct pool_stats *st);

#endif
